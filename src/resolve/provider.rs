//! One environment resolved with pubgrub over PEP 440 versions, as a build frontend installs it:
//! newest versions that fit, markers evaluated for the cell, constraints honoured.

use crate::cell::Cell;
use crate::names::PackageName;
use crate::resolve::repository::{Candidate, RepoError, Repository};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{ExtraName, Requirement, VersionOrUrl};
use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics, Ranges,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

pub type VersionRange = Ranges<Version>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pkg {
    Root,
    Name(PackageName),
    /// `name[extra]`: depends on `name` at the same version plus the extra's requirements.
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => write!(f, "the requirements"),
            Pkg::Name(n) => write!(f, "{n}"),
            Pkg::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

/// Pins that narrow a package wherever it appears, without requiring it (pip's `-c`).
#[derive(Debug, Default, Clone)]
pub struct Constraints(HashMap<PackageName, VersionRange>);

impl Constraints {
    pub fn from_requirements<'a>(
        reqs: impl IntoIterator<Item = &'a Requirement>,
        cell: &Cell,
    ) -> Self {
        let mut map: HashMap<PackageName, VersionRange> = HashMap::new();
        for req in reqs {
            if !req.evaluate_markers(cell.markers(), &[]) {
                continue;
            }
            let range = requirement_range(req);
            map.entry(req.name.clone())
                .and_modify(|r| *r = r.intersection(&range))
                .or_insert(range);
        }
        Self(map)
    }

    pub fn with(&self, name: PackageName, range: VersionRange) -> Self {
        let mut next = self.clone();
        next.0
            .entry(name)
            .and_modify(|r| *r = r.intersection(&range))
            .or_insert(range);
        next
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PackageName, &VersionRange)> {
        self.0.iter()
    }

    fn narrow(&self, name: &PackageName, range: VersionRange) -> VersionRange {
        match self.0.get(name) {
            Some(c) => range.intersection(c),
            None => range,
        }
    }
}

pub fn requirement_range(req: &Requirement) -> VersionRange {
    match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(spec)) => VersionRange::from(spec.clone()),
        _ => VersionRange::full(),
    }
}

/// What one environment resolved to.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub packages: BTreeMap<PackageName, Version>,
    /// Extras requested of each package, which switch on more of its requirements.
    pub extras: BTreeMap<PackageName, BTreeSet<ExtraName>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    NoSolution(String),
    #[error("{context}: {source}")]
    Repo {
        context: String,
        #[source]
        source: Box<RepoError>,
    },
}

/// How far an environment's resolution follows requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The requirements and everything they need at run time: an installable environment.
    Closure,
    /// The requirements alone (pip's --no-deps): a rebuild needs a wheel's sdist and build
    /// environment, not what it imports when installed.
    Named,
}

pub fn resolve_env(
    repo: &Repository,
    cell: &Cell,
    roots: &[Requirement],
    constraints: &Constraints,
    reach: Reach,
    cutoff: Option<jiff::Timestamp>,
) -> Result<Resolution, ResolveError> {
    // A requirement that no version can meet once constrained deserves a plain sentence, not
    // a derivation.
    for req in roots
        .iter()
        .filter(|r| r.evaluate_markers(cell.markers(), &[]))
    {
        if let Some(constraint) = constraints.0.get(&req.name)
            && requirement_range(req).intersection(constraint).is_empty()
        {
            let mut bare = req.clone();
            bare.marker = pep508_rs::MarkerTree::TRUE;
            return Err(ResolveError::NoSolution(format!(
                "`{bare}` conflicts with the constraint on {} ({constraint})\nhint: loosen the constraint, or pin the package that needs it too",
                req.name
            )));
        }
    }
    let provider = Provider {
        repo,
        cell,
        roots,
        constraints,
        reach,
        cutoff,
    };
    match pubgrub::resolve(&provider, Pkg::Root, Version::new([0])) {
        Ok(selected) => {
            let mut resolution = Resolution::default();
            for (pkg, version) in selected {
                match pkg {
                    Pkg::Name(name) => {
                        resolution.packages.insert(name, version);
                    }
                    Pkg::Extra(name, extra) => {
                        resolution.extras.entry(name).or_default().insert(extra);
                    }
                    Pkg::Root => {}
                }
            }
            Ok(resolution)
        }
        Err(pubgrub::PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let report =
                <pubgrub::DefaultStringReporter as pubgrub::Reporter<_, _, _>>::report(&tree)
                    .replace("the requirements 0", "the requirements");
            Err(ResolveError::NoSolution(report))
        }
        Err(pubgrub::PubGrubError::ErrorRetrievingDependencies {
            package,
            version,
            source,
        }) => Err(ResolveError::Repo {
            context: format!("reading the requirements of {package} {version}"),
            source: Box::new(source),
        }),
        Err(pubgrub::PubGrubError::ErrorChoosingVersion { package, source }) => {
            Err(ResolveError::Repo {
                context: format!("listing the versions of {package}"),
                source: Box::new(source),
            })
        }
        Err(pubgrub::PubGrubError::ErrorInShouldCancel(source)) => Err(ResolveError::Repo {
            context: "resolving".into(),
            source: Box::new(source),
        }),
    }
}

struct Provider<'a> {
    repo: &'a Repository,
    cell: &'a Cell,
    roots: &'a [Requirement],
    constraints: &'a Constraints,
    reach: Reach,
    /// Only versions on the index by then (a package's `build-date`), on top of the
    /// repository's own `--exclude-newer`.
    cutoff: Option<jiff::Timestamp>,
}

impl Provider<'_> {
    fn usable(&self, name: &PackageName, candidate: &Candidate, range: &VersionRange) -> bool {
        if !range.contains(&candidate.version) || !candidate.fits_python(self.cell) {
            return false;
        }
        if self.repo.is_provided(name) {
            return true;
        }
        if let (Some(cutoff), Some(uploaded)) = (self.cutoff, candidate.uploaded)
            && uploaded > cutoff
        {
            return false;
        }
        // A yanked release is only taken when pinned exactly (PEP 592).
        if candidate.yanked && range.as_singleton().is_none() {
            return false;
        }
        if self.repo.is_binary(name) {
            candidate.wheel_for(self.cell).is_some()
        } else {
            candidate.sdist.is_some()
        }
    }

    fn dependencies_of(
        &self,
        requirements: &[Requirement],
        extras: &[ExtraName],
    ) -> BTreeMap<Pkg, VersionRange> {
        let mut merged: BTreeMap<Pkg, VersionRange> = BTreeMap::new();
        for req in requirements {
            if !req.evaluate_markers(self.cell.markers(), extras) {
                continue;
            }
            let range = self.constraints.narrow(&req.name, requirement_range(req));
            let mut add = |pkg: Pkg| {
                merged
                    .entry(pkg)
                    .and_modify(|r| *r = r.intersection(&range))
                    .or_insert_with(|| range.clone());
            };
            add(Pkg::Name(req.name.clone()));
            for extra in &req.extras {
                add(Pkg::Extra(req.name.clone(), extra.clone()));
            }
        }
        merged
    }
}

impl PartialOrd for Pkg {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pkg {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = VersionRange;
    type M = String;
    type Err = RepoError;
    /// Packages that conflict often first, then pinned ones, then the rest by name.
    type Priority = (u32, bool, Reverse<String>);

    fn prioritize(
        &self,
        package: &Pkg,
        range: &VersionRange,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        (
            stats.conflict_count(),
            range.as_singleton().is_some(),
            Reverse(package.to_string()),
        )
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &VersionRange,
    ) -> Result<Option<Version>, RepoError> {
        let name = match package {
            Pkg::Root => return Ok(Some(Version::new([0]))),
            Pkg::Name(name) | Pkg::Extra(name, _) => name,
        };
        let candidates = self.repo.candidates(name)?;
        let usable = |c: &&Candidate| self.usable(name, c, range);
        // Pre-releases only when nothing final fits, as pip does.
        let chosen = candidates
            .iter()
            .filter(usable)
            .find(|c| !c.version.any_prerelease())
            .or_else(|| candidates.iter().find(usable));
        Ok(chosen.map(|c| c.version.clone()))
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, VersionRange, String>, RepoError> {
        match package {
            Pkg::Root => Ok(available(self.dependencies_of(self.roots, &[]))),
            Pkg::Name(name) => {
                let dist = self.repo.dist(name, version, self.cell)?;
                if let Some(spec) = &dist.requires_python
                    && !spec.contains(self.cell.python_version())
                {
                    return Ok(Dependencies::Unavailable(format!(
                        "it requires Python {spec}"
                    )));
                }
                if self.reach == Reach::Named {
                    return Ok(available(Default::default()));
                }
                Ok(available(self.dependencies_of(&dist.requires_dist, &[])))
            }
            Pkg::Extra(name, extra) => {
                let dist = self.repo.dist(name, version, self.cell)?;
                let mut deps = match self.reach {
                    Reach::Closure => {
                        self.dependencies_of(&dist.requires_dist, std::slice::from_ref(extra))
                    }
                    Reach::Named => Default::default(),
                };
                let same = VersionRange::singleton(version.clone());
                deps.entry(Pkg::Name(name.clone()))
                    .and_modify(|r| *r = r.intersection(&same))
                    .or_insert(same);
                Ok(available(deps))
            }
        }
    }
}

fn available(deps: BTreeMap<Pkg, VersionRange>) -> Dependencies<Pkg, VersionRange, String> {
    Dependencies::Available(deps.into_iter().collect::<DependencyConstraints<_, _>>())
}
