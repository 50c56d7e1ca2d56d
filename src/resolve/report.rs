//! What `resolve` prints: text for people, JSON (a versioned contract) for programs, DOT for
//! graph viewers. Data comes in resolved; nothing here fetches or decides.

use crate::digest::Sha256;
use crate::resolve::CellGraph;
use crate::resolve::explain::WayOut;
use crate::resolve::graph::{BuildGraph, CycleKind};
use petgraph::graph::{EdgeIndex, NodeIndex};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write;

/// Bumped on any breaking change to the JSON document; see CHANGELOG.md.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct ResolveReport {
    pub schema_version: u32,
    pub tool: String,
    pub exclude_newer: Option<String>,
    pub bootstrap: Vec<String>,
    pub cells: Vec<CellReport>,
}

#[derive(Serialize)]
pub struct CellReport {
    pub id: String,
    pub python: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub build_environments: usize,
    pub nodes: Vec<NodeReport>,
    pub edges: Vec<EdgeReport>,
    pub cycles: Vec<CycleReport>,
    pub order: Vec<OrderEntry>,
}

#[derive(Serialize)]
pub struct NodeReport {
    pub id: String,
    pub name: String,
    pub version: String,
    /// Named by the user.
    pub root: bool,
    /// Part of what the user asked for (a root or its runtime dependency), not only a build tool.
    pub target: bool,
    /// Taken as a wheel (`--allow-binary`), not built.
    pub binary: bool,
    /// Satisfied by the image's own tool (`[provided]`): neither built nor installed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub provided: bool,
    pub filename: String,
    /// `""` when there is none (what the image provides), as the report has always said it.
    #[serde(serialize_with = "or_empty")]
    pub sha256: Option<Sha256>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_backend: Option<String>,
    pub in_tree_backend: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_requires_source: Option<String>,
    pub requires_source: String,
    /// What the package's settings (`[packages.NAME]`) add to its build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<NodeSettings>,
    /// Rust crates its Cargo.lock pins, vendored into its job by hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crates: Vec<crate::resolve::crates::CrateRef>,
}

/// A package's settings as `resolve` shows them: patches by name and hash.
#[derive(Serialize)]
pub struct NodeSettings {
    pub origin: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub config_settings: std::collections::BTreeMap<String, crate::packages::ConfigValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_requires: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_py: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_date: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_env: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sdist_times: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<usize>,
}

#[derive(Serialize)]
pub struct PatchReport {
    pub name: String,
    pub sha256: Sha256,
}

fn or_empty<S: serde::Serializer>(sha: &Option<Sha256>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(sha.as_ref().map_or("", |sha| sha.as_str()))
}

impl NodeSettings {
    fn of(config: &crate::packages::PackageConfig) -> Self {
        Self {
            origin: config.origin.display().to_string(),
            system: config.system.clone(),
            env: config.env.clone(),
            config_settings: config.config_settings.clone(),
            build_requires: config.build_requires.clone(),
            patches: config
                .patches
                .iter()
                .map(|p| PatchReport {
                    name: p.name.clone(),
                    sha256: p.sha256.clone(),
                })
                .collect(),
            umask: config.umask.map(|m| format!("{m:03o}")),
            clock: config.clock.clone(),
            backend: config.backend.clone(),
            setup_py: config.setup_py.clone(),
            build_date: config.build_date.map(|t| t.to_string()),
            shared_env: config.shared_env.clone(),
            sdist_times: config.sdist_times,
            cpus: config.cpus,
        }
    }

    /// One line for text and DOT: what the build gets besides its sdist.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.system.is_empty() {
            parts.push(format!("system: {}", self.system.join(" ")));
        }
        if !self.env.is_empty() {
            let keys: Vec<&str> = self.env.keys().map(String::as_str).collect();
            parts.push(format!("env: {}", keys.join(" ")));
        }
        if !self.config_settings.is_empty() {
            parts.push(format!("config-settings: {}", self.config_settings.len()));
        }
        if !self.build_requires.is_empty() {
            parts.push(format!("build-requires: {}", self.build_requires.join(" ")));
        }
        if let Some(umask) = &self.umask {
            parts.push(format!("umask: {umask}"));
        }
        if let Some(clock) = &self.clock {
            parts.push(format!("clock: {clock}"));
        }
        if let Some(backend) = &self.backend {
            parts.push(format!("backend: {backend}"));
        }
        if let Some(date) = &self.build_date {
            parts.push(format!("build env as of {date}"));
        }
        if let Some(options) = &self.setup_py {
            parts.push(
                format!("setup.py bdist_wheel {}", options.join(" "))
                    .trim_end()
                    .to_string(),
            );
        }
        if !self.shared_env.is_empty() {
            parts.push(format!("shared env: {}", self.shared_env.join(" ")));
        }
        if self.sdist_times {
            parts.push("sdist-times".into());
        }
        if let Some(cpus) = self.cpus {
            parts.push(format!("cpus: {cpus}"));
        }
        if !self.patches.is_empty() {
            let names: Vec<&str> = self.patches.iter().map(|p| p.name.as_str()).collect();
            parts.push(format!("patches: {}", names.join(" ")));
        }
        parts.join("; ")
    }
}

#[derive(Serialize)]
pub struct EdgeReport {
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    pub requirement: String,
    pub marker: Option<String>,
}

#[derive(Serialize)]
pub struct CycleReport {
    pub kind: CycleKind,
    pub members: Vec<String>,
    pub chain: String,
    pub steps: Vec<EdgeReport>,
    pub ways_out: Vec<WayOut>,
}

#[derive(Serialize)]
pub struct OrderEntry {
    pub id: String,
    pub level: usize,
}

fn node_id(g: &BuildGraph, n: NodeIndex) -> String {
    format!("{}=={}", g.graph[n].name, g.graph[n].version)
}

fn edge_report(g: &BuildGraph, e: EdgeIndex) -> EdgeReport {
    let (from, to) = g.graph.edge_endpoints(e).expect("edge exists");
    let edge = &g.graph[e];
    EdgeReport {
        from: node_id(g, from),
        to: node_id(g, to),
        kind: edge.kind.as_str(),
        requirement: edge.requirement.clone(),
        marker: edge.marker.clone(),
    }
}

pub fn cell_report(cg: &CellGraph, ways: &[Vec<WayOut>]) -> CellReport {
    let g = &cg.graph;
    let nodes = g
        .graph
        .node_indices()
        .map(|n| {
            let dist = &cg.dists[&n];
            let info = dist.sdist.as_ref();
            NodeReport {
                id: node_id(g, n),
                name: dist.name.to_string(),
                version: dist.version.to_string(),
                root: g.roots.contains(&n),
                target: g.graph[n].target,
                binary: dist.binary,
                provided: dist.provided,
                filename: dist.file.filename.clone(),
                sha256: dist.sha256.clone(),
                url: dist.file.url.clone(),
                build_backend: info.map(|i| i.build_backend.clone()),
                in_tree_backend: info.is_some_and(|i| !i.backend_path.is_empty()),
                build_requires_source: info.map(|i| i.build_requires_source.clone()),
                requires_source: dist.requires_source.clone(),
                crates: info.map(|i| i.crates.clone()).unwrap_or_default(),
                settings: (!dist.binary)
                    .then(|| cg.packages.get(&dist.name).map(|c| NodeSettings::of(&c)))
                    .flatten(),
            }
        })
        .collect();
    let cycles = cg
        .cycles
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let steps: Vec<EdgeIndex> = c.entry_path.iter().chain(&c.loop_edges).copied().collect();
            let start = steps.first().map(|&e| g.source(e)).unwrap_or(c.members[0]);
            CycleReport {
                kind: c.kind,
                members: c.members.iter().map(|&n| node_id(g, n)).collect(),
                chain: g.render_chain(start, &steps),
                steps: steps.iter().map(|&e| edge_report(g, e)).collect(),
                ways_out: ways.get(i).cloned().unwrap_or_default(),
            }
        })
        .collect();
    CellReport {
        id: cg.cell.id.to_string(),
        python: cg.cell.python.clone(),
        image: cg.cell.image.clone(),
        build_environments: cg.build_envs(),
        nodes,
        edges: g.graph.edge_indices().map(|e| edge_report(g, e)).collect(),
        cycles,
        order: g
            .order()
            .into_iter()
            .map(|(n, level)| OrderEntry {
                id: node_id(g, n),
                level,
            })
            .collect(),
    }
}

pub fn text(report: &ResolveReport) -> String {
    let mut out = String::new();
    for cell in &report.cells {
        let errors = cell
            .cycles
            .iter()
            .filter(|c| c.kind == CycleKind::Error)
            .count();
        let _ = writeln!(
            out,
            "{} (Python {}): {} packages to build from source, {} build environments, {}",
            cell.id,
            cell.python,
            cell.nodes
                .iter()
                .filter(|n| !n.binary && !n.provided)
                .count(),
            cell.build_environments,
            match errors {
                0 => "no cycle".to_string(),
                1 => "1 cycle".to_string(),
                n => format!("{n} cycles"),
            }
        );
        for cycle in &cell.cycles {
            let label = match cycle.kind {
                CycleKind::Error => "cycle",
                CycleKind::Bootstrap => "bootstrap cycle (built in stages from a seed)",
            };
            let _ = writeln!(out, "  {label}: {}", cycle.members.join(", "));
            let _ = writeln!(out, "    {}", cycle.chain);
            if !cycle.ways_out.is_empty() {
                let _ = writeln!(out, "    ways out:");
                for way in &cycle.ways_out {
                    let _ = writeln!(out, "      - {way}");
                }
            }
        }
        let _ = writeln!(out, "  build order:");
        let binary: HashSet<&str> = cell
            .nodes
            .iter()
            .filter(|n| n.binary)
            .map(|n| n.id.as_str())
            .collect();
        for (i, entry) in cell.order.iter().enumerate() {
            let settings = cell
                .nodes
                .iter()
                .find(|n| n.id == entry.id)
                .and_then(|n| n.settings.as_ref());
            let node = cell.nodes.iter().find(|n| n.id == entry.id);
            let mut parts: Vec<String> = settings.map(NodeSettings::summary).into_iter().collect();
            if let Some(node) = node.filter(|n| !n.crates.is_empty()) {
                parts.push(format!("crates: {} vendored", node.crates.len()));
            }
            let note = if binary.contains(entry.id.as_str()) {
                "  (wheel from the index)".to_string()
            } else if node.is_some_and(|n| n.provided) {
                "  (provided by the image)".to_string()
            } else if !parts.is_empty() {
                format!("  ({})", parts.join("; "))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "    {:>3}. [{}] {}{note}",
                i + 1,
                entry.level,
                entry.id.replace("==", " ")
            );
        }
    }
    out
}

pub fn dot(report: &ResolveReport) -> String {
    let mut out = String::from("digraph rewheel {\n  rankdir=LR;\n  node [shape=box];\n");
    for (c, cell) in report.cells.iter().enumerate() {
        let in_cycle: HashSet<(&str, &str)> = cell
            .cycles
            .iter()
            .filter(|c| c.kind == CycleKind::Error)
            .flat_map(|c| c.steps.iter().map(|s| (s.from.as_str(), s.to.as_str())))
            .collect();
        let _ = writeln!(
            out,
            "  subgraph cluster_{c} {{\n    label={};",
            quote(&cell.id)
        );
        for node in &cell.nodes {
            let style = match (node.root, node.provided) {
                (true, _) => ", style=bold",
                (_, true) => ", style=dashed",
                _ => "",
            };
            let mut label = format!("{} {}", node.name, node.version);
            if let Some(settings) = &node.settings {
                label.push('\n');
                label.push_str(&settings.summary());
            }
            let _ = writeln!(
                out,
                "    {} [label={}{style}];",
                quote(&format!("{}/{}", cell.id, node.id)),
                quote(&label)
            );
        }
        for edge in &cell.edges {
            let mut attrs = format!("label={}", quote(edge.kind));
            if edge.kind == "install" {
                attrs.push_str(", style=dashed");
            }
            if in_cycle.contains(&(edge.from.as_str(), edge.to.as_str())) {
                attrs.push_str(", color=red");
            }
            let _ = writeln!(
                out,
                "    {} -> {} [{attrs}];",
                quote(&format!("{}/{}", cell.id, edge.from)),
                quote(&format!("{}/{}", cell.id, edge.to))
            );
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One cell's whole build closure as a pip requirements file, the `build-requirements.txt`
/// release teams keep: every package built from source (or taken as a binary) pinned to its
/// file by hash, with `# via` lines naming who needs it and through which edge.
pub fn requirements(cell: &CellReport) -> String {
    use std::fmt::Write;
    let mut text = format!(
        "# The build closure of cell {} (Python {}), as rewheel {} resolved it: every\n\
         # package built for it, pinned to the file it is built from.\n",
        cell.id,
        cell.python,
        env!("CARGO_PKG_VERSION")
    );
    let mut nodes: Vec<&NodeReport> = cell.nodes.iter().collect();
    nodes.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    for node in nodes {
        if node.provided {
            // Not a pin pip could install: the image's own tool stands in for it.
            let _ = writeln!(
                text,
                "# {}=={}: provided by the image ([provided]), not built",
                node.name, node.version
            );
            continue;
        }
        let _ = write!(text, "{}=={}", node.name, node.version);
        if let Some(sha256) = &node.sha256 {
            let _ = write!(text, " \\\n    --hash=sha256:{sha256}");
        }
        text.push('\n');
        let mut via: Vec<String> = cell
            .edges
            .iter()
            .filter(|e| e.to == node.id)
            .map(|e| {
                let from = cell.nodes.iter().find(|n| n.id == e.from);
                let name = from.map(|n| n.name.as_str()).unwrap_or(e.from.as_str());
                format!("{name} ({})", e.kind)
            })
            .collect();
        via.sort();
        via.dedup();
        if node.root {
            via.insert(0, "the requirements".to_string());
        }
        if node.binary {
            via.push("(taken as a binary: --allow-binary)".to_string());
        }
        if node.provided {
            via.push("(provided by the image, not built: [provided])".to_string());
        }
        match via.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(text, "    # via {one}");
            }
            many => {
                let _ = writeln!(text, "    # via");
                for v in many {
                    let _ = writeln!(text, "    #   {v}");
                }
            }
        }
    }
    text
}
