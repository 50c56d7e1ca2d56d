//! The model of the tree an archive makes: one node per path component, so an entry `depth`
//! components deep costs `depth` nodes and a lookup `depth` steps. (A map keyed by whole paths
//! held every prefix of every path: memory and time the square of the depth, which one entry
//! of 30,000 components turned into an abort.)

use std::collections::HashMap;

/// What the archive has made at a path.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Dir,
    /// A regular file holding the bytes of entry number `origin` (a hard link holds those of
    /// the file it copies).
    File {
        size: u64,
        mode: u32,
        origin: usize,
    },
    Link {
        target: String,
    },
}

pub(super) type Id = usize;

/// The archive's root: the folder it unpacks into.
pub(super) const ROOT: Id = 0;

struct Slot {
    node: Node,
    children: HashMap<String, Id>,
}

pub(super) struct Tree {
    slots: Vec<Slot>,
}

impl Tree {
    pub(super) fn new() -> Self {
        Self {
            slots: vec![Slot {
                node: Node::Dir,
                children: HashMap::new(),
            }],
        }
    }

    pub(super) fn node(&self, id: Id) -> &Node {
        &self.slots[id].node
    }

    pub(super) fn child(&self, at: Id, name: &str) -> Option<Id> {
        self.slots[at].children.get(name).copied()
    }

    /// The node at `parts` below the root, if the archive made one.
    pub(super) fn find(&self, parts: &[String]) -> Option<Id> {
        parts.iter().try_fold(ROOT, |at, part| self.child(at, part))
    }

    pub(super) fn get(&self, parts: &[String]) -> Option<&Node> {
        self.find(parts).map(|id| self.node(id))
    }

    /// The nodes from the root's child down to `parts`, as far as they exist.
    pub(super) fn chain(&self, parts: &[String]) -> Vec<Option<Id>> {
        let mut at = Some(ROOT);
        parts
            .iter()
            .map(|part| {
                at = at.and_then(|id| self.child(id, part));
                at
            })
            .collect()
    }

    /// The child `name` of `at`, made a directory if the archive has not made it yet.
    pub(super) fn dir(&mut self, at: Id, name: &str) -> Id {
        if let Some(id) = self.child(at, name) {
            return id;
        }
        self.add(at, name, Node::Dir)
    }

    /// Set what is at `name` below `at`, making it if needed.
    pub(super) fn set(&mut self, at: Id, name: &str, node: Node) -> Id {
        match self.child(at, name) {
            Some(id) => {
                self.slots[id].node = node;
                id
            }
            None => self.add(at, name, node),
        }
    }

    fn add(&mut self, at: Id, name: &str, node: Node) -> Id {
        let id = self.slots.len();
        self.slots.push(Slot {
            node,
            children: HashMap::new(),
        });
        self.slots[at].children.insert(name.to_string(), id);
        id
    }

    /// Every node below `from`, depth first and by name (the order a sorted list of their paths
    /// has), at most `max_depth` below it, with the path of names and the chain of nodes from
    /// `from` down to it. Iterative: the depth of a tree is the archive's to choose.
    pub(super) fn visit(
        &self,
        from: Id,
        max_depth: usize,
        mut each: impl FnMut(&[&str], &[Id], &Node) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut names: Vec<&str> = Vec::new();
        let mut ids: Vec<Id> = Vec::new();
        // Each frame: the sorted children of a folder still to visit, last first.
        let mut stack: Vec<Vec<(&str, Id)>> = vec![self.sorted_children(from)];
        while let Some(frame) = stack.last_mut() {
            let Some((name, id)) = frame.pop() else {
                stack.pop();
                names.pop();
                ids.pop();
                continue;
            };
            names.push(name);
            ids.push(id);
            each(&names, &ids, self.node(id))?;
            if names.len() < max_depth && self.node(id) == &Node::Dir {
                stack.push(self.sorted_children(id));
            } else {
                names.pop();
                ids.pop();
            }
        }
        Ok(())
    }

    fn sorted_children(&self, id: Id) -> Vec<(&str, Id)> {
        let mut children: Vec<(&str, Id)> = self.slots[id]
            .children
            .iter()
            .map(|(name, id)| (name.as_str(), *id))
            .collect();
        children.sort_unstable_by(|a, b| b.0.cmp(a.0));
        children
    }

    /// The only entry at the archive's root, when there is exactly one.
    pub(super) fn single_top(&self) -> Option<(&str, Id)> {
        let children = &self.slots[ROOT].children;
        if children.len() != 1 {
            return None;
        }
        children
            .iter()
            .next()
            .map(|(name, id)| (name.as_str(), *id))
    }
}
