//! Arguments become library settings here, once: nothing below `cli/` sees a clap type.

use super::args::{BackendKind, BuildArgs, CheckArgs, IndexArgs, InputArgs, PlanArgs};
use crate::build::backend::{self, BackendRequest};
use crate::build::job::Settings;
use crate::build::plan::{BuildOptions, Rebuild};
use crate::build::record::{Begin, BuildRequest, Outputs};
use crate::build::run::BuildSettings;
use crate::ci::emit::CiOptions;
use crate::names::PackageName;
use crate::resolve::archive::Limits;
use crate::resolve::session::{IndexSettings, ResolveSettings};
use crate::store::Store;
use crate::verify::check::CheckSettings;
use crate::verify::check_run::CheckRequest;
use anyhow::Context;
use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub(crate) fn store_root(explicit: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    explicit
        .cloned()
        .or_else(Store::default_root)
        .context("no place for the run store; give --store DIR")
}

pub(crate) fn index(args: &IndexArgs) -> anyhow::Result<IndexSettings> {
    Ok(IndexSettings {
        index_url: args.index_url.clone(),
        no_index: args.no_index,
        find_links: args.find_links.clone(),
        cache_dir: args
            .cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("rewheel")))
            .context("no cache directory; give --cache-dir")?,
        offline: args.offline,
        attempts: args.retries,
        exclude_newer: args.exclude_newer,
        limits: Limits {
            max_unpacked: args.max_sdist_size,
            ..Limits::default()
        },
        max_page: args.max_page_size,
    })
}

fn names(list: &[String], flag: &str) -> anyhow::Result<Vec<(String, PackageName)>> {
    list.iter()
        .map(|n| {
            PackageName::from_str(n)
                .map(|name| (n.clone(), name))
                .with_context(|| format!("{flag} {n}: not a package name"))
        })
        .collect()
}

pub(crate) fn resolve(args: &InputArgs) -> anyhow::Result<ResolveSettings> {
    Ok(ResolveSettings {
        specs: args.specs.clone(),
        requirement_files: args.requirement_files.clone(),
        constraint_files: args.constraint_files.clone(),
        build_constraint_files: args.build_constraints.clone(),
        pythons: args.cells.python.clone(),
        matrix: args.cells.matrix.clone(),
        cells: args.cells.cells.clone(),
        index: index(&args.index)?,
        allow_binary: names(&args.allow_binary, "--allow-binary")?
            .into_iter()
            .map(|(_, n)| n)
            .collect::<HashSet<_>>(),
        bootstrap: names(&args.bootstrap, "--bootstrap")?,
        settings_files: args.settings_files.clone(),
        no_deps: args.no_deps,
    })
}

pub(crate) fn backend_request(args: &BuildArgs) -> BackendRequest {
    BackendRequest {
        kind: match args.backend {
            BackendKind::Auto => backend::BackendKind::Auto,
            BackendKind::Local => backend::BackendKind::Local,
            BackendKind::Docker => backend::BackendKind::Docker,
        },
        build_path: args.build_path.clone(),
        python_paths: args.python_path.clone(),
        image_scratch: PathBuf::from(crate::build::images::SCRATCH),
    }
}

pub(crate) fn build(args: &BuildArgs) -> anyhow::Result<BuildSettings> {
    // `--rebuild NAME` is `--rebuild` (every job) and a requirement NAME: say so.
    let argv: Vec<String> = std::env::args().collect();
    if let Some(w) = argv
        .windows(2)
        .find(|w| w[0] == "--rebuild" && !w[1].starts_with('-'))
    {
        tracing::warn!(
            "`--rebuild {0}` rebuilds every job and builds `{0}`; to rebuild only it, write `--rebuild={0}`",
            w[1]
        );
    }
    let resolve = resolve(&args.input)?;
    let rebuild = match args.rebuild.as_deref() {
        None => Rebuild::Nothing,
        Some(names) if names.iter().any(|n| n == ":all:") => Rebuild::All,
        Some(list) => Rebuild::Packages(
            names(list, "--rebuild")?
                .into_iter()
                .map(|(_, n)| n)
                .collect(),
        ),
    };
    let options = BuildOptions {
        rebuild,
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        out_dir: args.out.clone(),
        settings: Settings {
            source_date_epoch: args.source_date_epoch,
            umask: args.umask,
            ..Settings::default()
        },
        timeout: Duration::from_secs(args.timeout),
        seed_dir: args.seed_wheels.clone(),
        limits: resolve.index.limits,
    };
    Ok(BuildSettings {
        backend: backend_request(args),
        options,
        store_root: store_root(args.store.as_ref())?,
        resolve,
    })
}

/// Which run `build` or `check` works on: a new one of `request`, or the one `--resume`
/// names, which keeps its own settings (`--expect` and `--provenance` given again replace its own).
pub(crate) fn begin<T>(
    args: &BuildArgs,
    argv: Vec<String>,
    request: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<Begin<T>> {
    Ok(match &args.resume {
        Some(id) => Begin::Resume {
            store_root: store_root(args.store.as_ref())?,
            id: crate::ids::RunId::parse(id)?,
            outputs: outputs(args),
        },
        None => Begin::New {
            argv,
            request: request()?,
        },
    })
}

fn outputs(args: &BuildArgs) -> Outputs {
    Outputs {
        expect: args.expect.clone(),
        provenance: args.provenance.clone(),
    }
}

pub(crate) fn build_request(args: &BuildArgs) -> anyhow::Result<BuildRequest> {
    Ok(BuildRequest {
        build: build(args)?,
        outputs: outputs(args),
    })
}

pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<CheckRequest> {
    Ok(CheckRequest {
        first: build_request(&args.build)?,
        check: CheckSettings {
            vary: args.vary.0.clone(),
            independent: args.independent,
            find_culprit: args.find_culprit,
            remedies: args.remedies.is_some(),
            remedies_file: args.remedies.clone().filter(|f| !f.as_os_str().is_empty()),
        },
    })
}

/// How emitted CI files run: images, setup, where the plan lives. The plan arguments are the
/// command line's own, less what says where this one output goes.
pub(crate) fn ci_options(args: &PlanArgs, argv: &[String]) -> CiOptions {
    let mut plan_args = Vec::new();
    let mut words = argv.iter().skip(2);
    while let Some(word) = words.next() {
        let flag = word.split('=').next().unwrap_or(word);
        if ["--emit", "-o", "--output", "--check"].contains(&flag) {
            if !word.contains('=') {
                words.next();
            }
            continue;
        }
        plan_args.push(word.clone());
    }
    CiOptions {
        plan_args,
        image: args.ci_image.clone(),
        setup: args.ci_setup.clone(),
        plan_job: args.ci_plan_job.clone(),
        workflow_path: args.ci_workflow_path.clone(),
    }
}
