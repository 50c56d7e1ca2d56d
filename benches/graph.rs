//! Graph analysis at scale: SCCs, cycle explanation and build order on a synthetic graph of
//! 100,000 nodes and 500,000 edges (goal: under 1 s, linear in size).
//!
//! Run: `cargo bench --bench graph`

use pep508_rs::PackageName;
use pep508_rs::pep440_rs::Version;
use rewheel::resolve::graph::{BuildGraph, Edge, EdgeKind};
use std::collections::HashSet;
use std::str::FromStr;

fn main() {
    divan::main();
}

/// A layered DAG (each node needs five nodes of lower index) with a sprinkling of back edges
/// that close build cycles, so the cycle path is exercised too.
fn synthetic(nodes: usize, edges_per_node: usize) -> BuildGraph {
    let mut g = BuildGraph::default();
    let version = Version::from_str("1.0").unwrap();
    let ix: Vec<_> = (0..nodes)
        .map(|i| {
            g.node(
                &PackageName::from_str(&format!("pkg-{i}")).unwrap(),
                &version,
            )
            .0
        })
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 1..nodes {
        let mut first = 0;
        for k in 0..edges_per_node {
            let j = (next() as usize) % i;
            let kind = if k == 0 {
                EdgeKind::BuildSystem
            } else {
                EdgeKind::Install
            };
            if k == 0 {
                first = j;
            }
            g.edge(
                ix[i],
                ix[j],
                Edge {
                    kind,
                    requirement: format!("pkg-{j}"),
                    marker: None,
                },
            );
        }
        if i % 1000 == 0 {
            // A runtime edge back up: with the build edge i -> first, a build cycle.
            g.edge(
                ix[first],
                ix[i],
                Edge {
                    kind: EdgeKind::Install,
                    requirement: format!("pkg-{i}"),
                    marker: None,
                },
            );
        }
    }
    g.mark_root(ix[nodes - 1]);
    g
}

#[divan::bench(args = [10_000, 100_000], sample_count = 5)]
fn cycles_and_order(bencher: divan::Bencher, nodes: usize) {
    let g = synthetic(nodes, 5);
    let bootstrap = HashSet::new();
    bencher.bench(|| {
        let cycles = g.cycles(&bootstrap);
        assert!(
            cycles.len() >= nodes / 1000 / 2,
            "the synthetic graph has cycles"
        );
        let order = g.order();
        let chains: usize = cycles
            .iter()
            .map(|c| {
                g.render_chain(g.source(c.loop_edges[0]), &c.loop_edges)
                    .len()
            })
            .sum();
        divan::black_box((cycles.len(), order.len(), chains))
    });
}
