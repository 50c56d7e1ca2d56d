//! Warming the repository before resolving: the resolver asks for one package at a time, so a
//! cold resolution waits on one download after another. This crawl follows what the newest
//! versions require (at run time and to build), fetching on several threads at once; the
//! resolver then finds nearly everything in memory. A guess that the resolver does not take
//! costs a download, never a wrong answer.
//!
//! Where the input pins a version (a lock's `==`, a constraint), the crawl follows the newest
//! version the pins allow, not the newest on the index: a 15-pin lock otherwise fetched and
//! inspected 16 sdists no build used (each pin's newer release, and what those require).

use crate::cell::Cell;
use crate::names::PackageName;
use crate::resolve::provider::{VersionRange, requirement_range};
use crate::resolve::repository::Repository;
use pep508_rs::Requirement;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Condvar, Mutex};

/// Threads fetching at once; the work is waiting on the network, not the CPU.
const WORKERS: usize = 8;
/// The crawl stops after this many packages, whatever it finds.
const LIMIT: usize = 400;

/// Crawl from `roots`; `pins` (the roots again, constraints) narrow which version of a name
/// the crawl follows.
pub fn warm(repo: &Repository, cell: &Cell, roots: &[Requirement], pins: &[&Requirement]) {
    let mut narrow: HashMap<PackageName, VersionRange> = HashMap::new();
    for pin in pins {
        let range = requirement_range(pin);
        let entry = narrow
            .entry(pin.name.clone())
            .or_insert_with(VersionRange::full);
        *entry = entry.intersection(&range);
    }
    let queue: Mutex<(VecDeque<PackageName>, HashSet<PackageName>, usize)> = Mutex::new((
        roots.iter().map(|r| r.name.clone()).collect(),
        roots.iter().map(|r| r.name.clone()).collect(),
        0,
    ));
    // Woken when work is queued or the last busy worker finishes.
    let changed = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let name = {
                        let mut q = queue.lock().unwrap();
                        loop {
                            if let Some(name) = q.0.pop_front() {
                                q.2 += 1;
                                break Some(name);
                            }
                            if q.2 == 0 {
                                break None;
                            }
                            q = changed.wait(q).unwrap();
                        }
                    };
                    let Some(name) = name else { break };
                    let found = requirements_of_newest(repo, cell, &name, narrow.get(&name));
                    let mut q = queue.lock().unwrap();
                    q.2 -= 1;
                    for dep in found {
                        if q.1.len() < LIMIT && q.1.insert(dep.clone()) {
                            q.0.push_back(dep);
                        }
                    }
                    changed.notify_all();
                }
            });
        }
    });
}

/// The names the newest fitting version of `name` (within `pinned`, when some version fits
/// it) requires here, fetching it on the way.
fn requirements_of_newest(
    repo: &Repository,
    cell: &Cell,
    name: &PackageName,
    pinned: Option<&VersionRange>,
) -> Vec<PackageName> {
    let Ok(candidates) = repo.candidates(name) else {
        return Vec::new();
    };
    let fits = |c: &&crate::resolve::repository::Candidate| {
        c.sdist.is_some() && !c.yanked && c.fits_python(cell) && !c.version.any_prerelease()
    };
    let within = pinned.and_then(|range| {
        candidates
            .iter()
            .filter(fits)
            .find(|c| range.contains(&c.version))
    });
    // A pin no version meets is the resolver's error to report; the crawl just guesses.
    let Some(newest) = within.or_else(|| candidates.iter().find(fits)) else {
        return Vec::new();
    };
    let Ok(dist) = repo.dist(name, &newest.version, cell) else {
        return Vec::new();
    };
    let mut names: Vec<PackageName> = dist
        .requires_dist
        .iter()
        .filter(|r| r.evaluate_markers(cell.markers(), &[]))
        .map(|r| r.name.clone())
        .collect();
    if let Some(info) = &dist.sdist {
        names.extend(
            info.build_requires
                .iter()
                .chain(&info.setup_requires)
                .filter_map(|r| crate::names::parse_requirement(r).ok())
                .filter(|r| r.evaluate_markers(cell.markers(), &[]))
                .map(|r| r.name),
        );
    }
    names
}
