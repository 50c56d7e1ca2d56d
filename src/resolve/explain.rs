//! Ways out of a cycle, each checked against the index (and, for pins, by resolving again).

use crate::cell::Cell;
use crate::names::PackageName;
use crate::resolve::graph::{CycleKind, EdgeKind};
use crate::resolve::provider::{Constraints, VersionRange};
use crate::resolve::repository::Repository;
use crate::resolve::{CellGraph, ResolveInput, resolve_cell};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WayOut {
    /// Pin a version outside the cycle in `--build-constraints`.
    BuildConstraint {
        pin: String,
        reason: String,
        /// Resolving again with the pin found no error cycle in this cell.
        verified: bool,
    },
    /// Take one package as a wheel from the index instead of building it.
    AllowBinary { package: String, flag: String },
    /// Build the cycle in stages from a seed, like the toolchain roots.
    Bootstrap { packages: Vec<String>, flag: String },
}

impl std::fmt::Display for WayOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WayOut::BuildConstraint {
                pin,
                reason,
                verified,
            } => {
                let check = if *verified {
                    "; checked: the cell then resolves without this cycle"
                } else {
                    ""
                };
                write!(f, "pin `{pin}` with --build-constraints ({reason}{check})")
            }
            WayOut::AllowBinary { package, flag } => {
                write!(
                    f,
                    "take {package} as a wheel from the index instead of building it: {flag}"
                )
            }
            WayOut::Bootstrap { flag, .. } => {
                write!(f, "build the cycle in stages from a seed: {flag}")
            }
        }
    }
}

/// Older versions looked at per edge when searching for a pin that leaves the cycle.
const PIN_SEARCH_DEPTH: usize = 12;

pub fn ways_out(
    repo: &Repository,
    input: &ResolveInput,
    cell_graph: &CellGraph,
    cycle_index: usize,
) -> Vec<WayOut> {
    let graph = &cell_graph.graph;
    let cycle = &cell_graph.cycles[cycle_index];
    let cell = &cell_graph.cell;
    let members: BTreeSet<PackageName> = cycle
        .members
        .iter()
        .map(|&n| graph.graph[n].name.clone())
        .collect();
    let mut ways = Vec::new();
    let mut tried = BTreeSet::new();
    for &e in &cycle.loop_edges {
        let (from, to) = graph.graph.edge_endpoints(e).expect("edge exists");
        let (from, to, kind) = (&graph.graph[from], &graph.graph[to], graph.graph[e].kind);
        if !tried.insert(from.name.clone()) {
            continue;
        }
        if let Some(version) =
            version_avoiding(repo, cell, &from.name, &from.version, &to.name, kind)
        {
            let pin = format!("{}=={}", from.name, version);
            let verified = verify_pin(repo, input, cell, &pin, &members);
            ways.push(WayOut::BuildConstraint {
                reason: format!(
                    "the newest {} before {} whose {} do not name {}",
                    from.name,
                    from.version,
                    if kind == EdgeKind::Install {
                        "runtime requirements"
                    } else {
                        "build requirements"
                    },
                    to.name
                ),
                pin,
                verified,
            });
        }
    }
    let mut binaries = BTreeSet::new();
    for &e in &cycle.loop_edges {
        if graph.graph[e].kind.is_build() {
            binaries.insert(graph.graph[graph.source(e)].name.clone());
        }
    }
    for name in binaries {
        ways.push(WayOut::AllowBinary {
            flag: format!("--allow-binary {name}"),
            package: name.to_string(),
        });
    }
    if cycle.kind == CycleKind::Error {
        let mut set: BTreeSet<String> = input.bootstrap.iter().map(|n| n.to_string()).collect();
        set.extend(members.iter().map(|n| n.to_string()));
        let packages: Vec<String> = set.into_iter().collect();
        ways.push(WayOut::Bootstrap {
            flag: format!("--bootstrap {}", packages.join(" ")),
            packages,
        });
    }
    ways
}

/// The newest version of `name` older than `current` that does not require `avoid` here.
fn version_avoiding(
    repo: &Repository,
    cell: &Cell,
    name: &PackageName,
    current: &pep508_rs::pep440_rs::Version,
    avoid: &PackageName,
    kind: EdgeKind,
) -> Option<pep508_rs::pep440_rs::Version> {
    let candidates = repo.candidates(name).ok()?;
    let older = candidates
        .iter()
        .filter(|c| &c.version < current && c.sdist.is_some() && !c.yanked && c.fits_python(cell))
        .filter(|c| !c.version.any_prerelease())
        .take(PIN_SEARCH_DEPTH);
    for candidate in older {
        let Ok(dist) = repo.dist(name, &candidate.version, cell) else {
            continue;
        };
        let names_avoided = match kind {
            EdgeKind::Install => dist
                .requires_dist
                .iter()
                .any(|r| &r.name == avoid && r.evaluate_markers(cell.markers(), &[])),
            EdgeKind::BuildSystem | EdgeKind::BuildBackend => {
                let Some(info) = &dist.sdist else { continue };
                info.build_requires
                    .iter()
                    .chain(&info.setup_requires)
                    .filter_map(|r| crate::names::parse_requirement(r).ok())
                    .any(|r| &r.name == avoid && r.evaluate_markers(cell.markers(), &[]))
            }
        };
        if !names_avoided {
            return Some(candidate.version.clone());
        }
    }
    None
}

fn verify_pin(
    repo: &Repository,
    input: &ResolveInput,
    cell: &Cell,
    pin: &str,
    members: &BTreeSet<PackageName>,
) -> bool {
    let Ok(req) = crate::names::parse_requirement(pin) else {
        return false;
    };
    let extra = Constraints::default().with(
        req.name.clone(),
        VersionRange::from(crate::resolve::provider::requirement_range(&req)),
    );
    match resolve_cell(repo, cell, input, &extra) {
        Ok(again) => !again.cycles.iter().any(|c| {
            c.kind == CycleKind::Error
                && c.members
                    .iter()
                    .any(|&n| members.contains(&again.graph.graph[n].name))
        }),
        Err(_) => false,
    }
}
