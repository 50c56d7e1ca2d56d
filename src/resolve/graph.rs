//! The build graph of one cell: nodes are (name, version) to build, edges say why one needs
//! another. Cycles, the build order and "why is this here" are questions about this graph.

use crate::names::PackageName;
use pep508_rs::pep440_rs::Version;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// `[build-system] requires` (or the PEP 517 fallback) of the source node.
    BuildSystem,
    /// Requirements the build backend adds through its hook (setuptools' `setup_requires`).
    BuildBackend,
    /// A runtime requirement of a package that gets installed into some environment.
    Install,
}

impl EdgeKind {
    /// Build edges must be satisfied before the source node can be built; install edges only
    /// say what travels along when the source is installed.
    pub fn is_build(self) -> bool {
        !matches!(self, EdgeKind::Install)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::BuildSystem => "build-system",
            EdgeKind::BuildBackend => "build-backend",
            EdgeKind::Install => "install",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edge {
    pub kind: EdgeKind,
    /// The requirement string as written, e.g. `setuptools_scm[toml]>=3.4.1`.
    pub requirement: String,
    /// The marker that had to hold for the edge to exist, if any.
    pub marker: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: PackageName,
    pub version: Version,
    /// Asked for by the user (or a runtime dependency of what was asked for).
    pub target: bool,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CycleKind {
    /// Inside the bootstrap set: built in stages from a seed, not an error.
    Bootstrap,
    Error,
}

#[derive(Debug, Clone)]
pub struct Cycle {
    pub kind: CycleKind,
    /// Every node of the strongly connected component, sorted by name.
    pub members: Vec<NodeIndex>,
    /// The shortest way in from a root, ending at `loop_edges`' first source.
    pub entry_path: Vec<EdgeIndex>,
    /// A shortest closed walk through the entry node that contains a build edge.
    pub loop_edges: Vec<EdgeIndex>,
}

#[derive(Debug, Default, Clone)]
pub struct BuildGraph {
    pub graph: DiGraph<Node, Edge>,
    index: HashMap<(PackageName, Version), NodeIndex>,
    edge_set: HashSet<(NodeIndex, NodeIndex, Edge)>,
    pub roots: Vec<NodeIndex>,
}

impl BuildGraph {
    pub fn node(&mut self, name: &PackageName, version: &Version) -> (NodeIndex, bool) {
        let key = (name.clone(), version.clone());
        if let Some(&ix) = self.index.get(&key) {
            return (ix, false);
        }
        let ix = self.graph.add_node(Node {
            name: name.clone(),
            version: version.clone(),
            target: false,
        });
        self.index.insert(key, ix);
        (ix, true)
    }

    pub fn find(&self, name: &PackageName, version: &Version) -> Option<NodeIndex> {
        self.index.get(&(name.clone(), version.clone())).copied()
    }

    pub fn mark_root(&mut self, ix: NodeIndex) {
        self.graph[ix].target = true;
        if !self.roots.contains(&ix) {
            self.roots.push(ix);
        }
    }

    pub fn mark_target(&mut self, ix: NodeIndex) {
        self.graph[ix].target = true;
    }

    /// Add an edge once; the same reason found in several environments is one edge.
    pub fn edge(&mut self, from: NodeIndex, to: NodeIndex, edge: Edge) {
        if self.edge_set.insert((from, to, edge.clone())) {
            self.graph.add_edge(from, to, edge);
        }
    }

    /// Breadth-first from the roots: for each reachable node, the edge it was first reached by.
    fn first_reached(&self) -> Vec<Option<EdgeIndex>> {
        let mut via = vec![None; self.graph.node_count()];
        let mut seen = vec![false; self.graph.node_count()];
        let mut queue = VecDeque::new();
        for &root in &self.roots {
            if !seen[root.index()] {
                seen[root.index()] = true;
                queue.push_back(root);
            }
        }
        while let Some(n) = queue.pop_front() {
            // petgraph lists the newest edge first; the first-written reason reads best.
            let mut edges: Vec<_> = self.graph.edges(n).collect();
            edges.reverse();
            for e in edges {
                let t = e.target();
                if !seen[t.index()] {
                    seen[t.index()] = true;
                    via[t.index()] = Some(e.id());
                    queue.push_back(t);
                }
            }
        }
        via
    }

    fn path_to(&self, via: &[Option<EdgeIndex>], node: NodeIndex) -> Vec<EdgeIndex> {
        let mut path = Vec::new();
        let mut at = node;
        while let Some(e) = via[at.index()] {
            path.push(e);
            at = self.graph.edge_endpoints(e).expect("edge exists").0;
            if path.len() > self.graph.node_count() {
                break;
            }
        }
        path.reverse();
        path
    }

    /// Every cycle that blocks a build: strongly connected components holding a build edge.
    /// Components of install edges alone are not cycles for building (A and B may need each
    /// other at run time and still each build without the other).
    pub fn cycles(&self, bootstrap: &HashSet<PackageName>) -> Vec<Cycle> {
        let sccs = tarjan_scc(&self.graph);
        let mut component = vec![usize::MAX; self.graph.node_count()];
        for (c, scc) in sccs.iter().enumerate() {
            for n in scc {
                component[n.index()] = c;
            }
        }
        let via = self.first_reached();
        let depth = |n: NodeIndex| self.path_to(&via, n).len();
        let mut cycles = Vec::new();
        for (c, scc) in sccs.iter().enumerate() {
            let internal_build_edge = scc.iter().any(|&n| {
                self.graph
                    .edges(n)
                    .any(|e| e.weight().kind.is_build() && component[e.target().index()] == c)
            });
            if !internal_build_edge {
                continue;
            }
            let reachable: Vec<NodeIndex> = scc
                .iter()
                .copied()
                .filter(|n| via[n.index()].is_some() || self.roots.contains(n))
                .collect();
            let entry = reachable
                .iter()
                .copied()
                .min_by_key(|&n| (depth(n), self.graph[n].name.clone()))
                .unwrap_or(scc[0]);
            let loop_edges = self.shortest_build_loop(entry, &component, c);
            let mut members = scc.clone();
            members.sort_by(|a, b| self.graph[*a].name.cmp(&self.graph[*b].name));
            let kind = if members
                .iter()
                .all(|n| bootstrap.contains(&self.graph[*n].name))
            {
                CycleKind::Bootstrap
            } else {
                CycleKind::Error
            };
            cycles.push(Cycle {
                kind,
                members,
                entry_path: self.path_to(&via, entry),
                loop_edges,
            });
        }
        cycles.sort_by_key(|c| {
            (
                c.kind == CycleKind::Bootstrap,
                self.graph[c.members[0]].name.clone(),
            )
        });
        cycles
    }

    /// Breadth-first over (node, passed a build edge yet) inside one component, from `entry`
    /// back to `entry` having passed one.
    fn shortest_build_loop(
        &self,
        entry: NodeIndex,
        component: &[usize],
        c: usize,
    ) -> Vec<EdgeIndex> {
        let mut prev: HashMap<(NodeIndex, bool), ((NodeIndex, bool), EdgeIndex)> = HashMap::new();
        let mut queue = VecDeque::from([(entry, false)]);
        let goal = (entry, true);
        while let Some(state) = queue.pop_front() {
            for e in self.graph.edges(state.0) {
                let t = e.target();
                if component[t.index()] != c {
                    continue;
                }
                let next = (t, state.1 || e.weight().kind.is_build());
                if next == (entry, false) || prev.contains_key(&next) {
                    continue;
                }
                prev.insert(next, (state, e.id()));
                if next == goal {
                    let mut path = Vec::new();
                    let mut at = goal;
                    loop {
                        let (before, edge) = prev[&at];
                        path.push(edge);
                        if before == (entry, false) {
                            break;
                        }
                        at = before;
                    }
                    path.reverse();
                    return path;
                }
                queue.push_back(next);
            }
        }
        Vec::new()
    }

    /// Build order: every node after everything it needs; within a cycle, by name. Each entry
    /// carries its level (0 = needs nothing built), the stages a CI plan can run in parallel.
    pub fn order(&self) -> Vec<(NodeIndex, usize)> {
        // tarjan_scc yields components in reverse topological order: dependencies first.
        let sccs = tarjan_scc(&self.graph);
        let mut level = vec![0usize; self.graph.node_count()];
        let mut component = vec![usize::MAX; self.graph.node_count()];
        let mut out = Vec::with_capacity(self.graph.node_count());
        for (c, scc) in sccs.into_iter().enumerate() {
            for n in &scc {
                component[n.index()] = c;
            }
            let mut l = 0;
            for &n in &scc {
                for e in self.graph.edges(n) {
                    let t = e.target();
                    if component[t.index()] != c {
                        l = l.max(level[t.index()] + 1);
                    }
                }
            }
            for n in scc {
                level[n.index()] = l;
                out.push((n, l));
            }
        }
        // Within a level nothing depends on anything else (outside a cycle), so sorting by
        // level then name keeps the order topological and makes it stable to read.
        out.sort_by(|(a, la), (b, lb)| {
            let (a, b) = (&self.graph[*a], &self.graph[*b]);
            (la, &a.name, &a.version).cmp(&(lb, &b.name, &b.version))
        });
        out
    }

    /// The shortest chain of edges from a root to each node with this name.
    pub fn why(&self, name: &PackageName) -> Vec<(NodeIndex, Vec<EdgeIndex>)> {
        let via = self.first_reached();
        self.graph
            .node_indices()
            .filter(|&n| &self.graph[n].name == name)
            .map(|n| (n, self.path_to(&via, n)))
            .collect()
    }

    /// `a 1 —kind [marker] (requirement)→ b 2 —…→ c 3`
    pub fn render_chain(&self, start: NodeIndex, edges: &[EdgeIndex]) -> String {
        let mut text = self.graph[start].to_string();
        for &e in edges {
            let (_, to) = self.graph.edge_endpoints(e).expect("edge exists");
            let edge = &self.graph[e];
            text.push_str(" —");
            text.push_str(edge.kind.as_str());
            if let Some(marker) = &edge.marker {
                text.push_str(&format!(" [{marker}]"));
            }
            text.push_str(&format!(" ({})→ {}", edge.requirement, self.graph[to]));
        }
        text
    }

    pub fn source(&self, e: EdgeIndex) -> NodeIndex {
        self.graph.edge_endpoints(e).expect("edge exists").0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn add(g: &mut BuildGraph, name: &str) -> NodeIndex {
        g.node(
            &PackageName::from_str(name).unwrap(),
            &Version::from_str("1").unwrap(),
        )
        .0
    }

    fn edge(kind: EdgeKind, req: &str) -> Edge {
        Edge {
            kind,
            requirement: req.into(),
            marker: None,
        }
    }

    #[test]
    fn install_only_loops_are_not_cycles_but_build_loops_are() {
        let mut g = BuildGraph::default();
        let (app, a, b, scm, meta) = (
            add(&mut g, "app"),
            add(&mut g, "a"),
            add(&mut g, "b"),
            add(&mut g, "scm"),
            add(&mut g, "meta"),
        );
        g.mark_root(app);
        g.edge(app, a, edge(EdgeKind::BuildSystem, "a"));
        g.edge(a, b, edge(EdgeKind::Install, "b"));
        g.edge(b, a, edge(EdgeKind::Install, "a"));
        assert!(g.cycles(&HashSet::new()).is_empty());

        g.edge(app, scm, edge(EdgeKind::BuildSystem, "scm"));
        g.edge(scm, meta, edge(EdgeKind::Install, "meta"));
        g.edge(meta, scm, edge(EdgeKind::BuildSystem, "scm"));
        let cycles = g.cycles(&HashSet::new());
        assert_eq!(cycles.len(), 1);
        let chain = g.render_chain(
            app,
            &[cycles[0].entry_path.clone(), cycles[0].loop_edges.clone()].concat(),
        );
        assert_eq!(
            chain,
            "app 1 —build-system (scm)→ scm 1 —install (meta)→ meta 1 —build-system (scm)→ scm 1"
        );
        // Order: dependencies before dependents, app last.
        let order: Vec<_> = g
            .order()
            .into_iter()
            .map(|(n, _)| g.graph[n].name.to_string())
            .collect();
        assert_eq!(order.last().unwrap(), "app");
    }

    #[test]
    fn cycles_inside_the_bootstrap_set_are_bootstrap() {
        let mut g = BuildGraph::default();
        let (st, wheel) = (add(&mut g, "setuptools"), add(&mut g, "wheel"));
        g.mark_root(wheel);
        g.edge(st, wheel, edge(EdgeKind::BuildSystem, "wheel"));
        g.edge(wheel, st, edge(EdgeKind::BuildSystem, "setuptools>=40.8.0"));
        g.edge(wheel, wheel, edge(EdgeKind::BuildSystem, "wheel"));
        let boot: HashSet<_> = ["setuptools", "wheel"]
            .iter()
            .map(|n| PackageName::from_str(n).unwrap())
            .collect();
        let cycles = g.cycles(&boot);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].kind, CycleKind::Bootstrap);
        assert_eq!(g.cycles(&HashSet::new())[0].kind, CycleKind::Error);
    }
}
