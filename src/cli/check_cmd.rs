//! `rewheel check`: build everything, build it again under variations, compare, explain.

use super::build_cmd::{BuildArgs, Stage, build_run};
use super::compare_cmd::{ReportArgs, emit_report};
use crate::exit;
use crate::verify::check::{Rebuilt, clues, per_wheel_clues, rebuild, vary};
use crate::verify::compare::{Attribution, Clues, Side, compare_sides};
use crate::verify::variation::{Variation, parse_set};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) build: BuildArgs,
    /// What the second build varies: names to vary only those, `-name` to leave one out
    /// (`--vary build-path,umask`, or `--vary=-time` with the `=`). Default: all of build-path, time, umask, timezone,
    /// locale, hostname, uid, hash-seed, env, num-cpus.
    #[arg(long, default_value = "all", value_parser = parse_vary, value_name = "LIST", allow_hyphen_values = true)]
    vary: VarySet,
    /// Rebuild the whole closure the second time, not just each wheel with the first build's
    /// build dependencies.
    #[arg(long)]
    independent: bool,
    /// For differences no variation value explains, rebuild with one variation at a time and
    /// name those that reproduce it.
    #[arg(long)]
    find_culprit: bool,

    #[command(flatten)]
    report: ReportArgs,
}

/// The variations of the second build, as `--vary` named them.
#[derive(Clone, Debug)]
pub(crate) struct VarySet(Vec<Variation>);

fn parse_vary(s: &str) -> Result<VarySet, String> {
    parse_set(s).map(VarySet)
}

pub(crate) fn run(args: CheckArgs, argv: Vec<String>) -> anyhow::Result<u8> {
    let set = args.vary.0.clone();
    let built = match build_run(args.build.clone(), argv)? {
        Stage::Stopped(code) => return Ok(code),
        Stage::Built(built) => built,
    };
    if let Some(code) = built.conclude(false)? {
        super::build_cmd::print_summary_of(&built);
        eprintln!("error: the first build did not succeed; nothing to check");
        return Ok(code);
    }
    let base = built.options.settings.clone();
    let varied = vary(&base, &set);
    let build_path_varies = set.contains(&Variation::BuildPath);
    let backend2 = if build_path_varies {
        let host = PathBuf::from(format!("{}-varied", args.build.build_path_arg().display()));
        built
            .backend
            .with_build_path(host, PathBuf::from("/build-varied/tree"))
    } else {
        built.backend.clone()
    };
    let finals = built.summary.finals.clone();
    let second_dir = built.store_root().join("check").join(&built.run_id);
    eprintln!(
        "second build of {} wheels, varying {}",
        finals.len(),
        names(&set)
    );
    let mut second_failures = 0;
    let rebuilt: Vec<Rebuilt> = if args.independent {
        let planned = built.planner.plan_all_with(&varied)?;
        // A run of its own in the store, its wheels beside the first build's, not over them.
        let second_run = built
            .store
            .new_run(&[format!("check {}: independent second build", built.run_id)])?;
        let mut options = super::build_cmd::options_of(&built.args, built.options.limits);
        options.settings = varied.clone();
        options.out_dir = second_dir.join("wheelhouse");
        let summary = built.runtime.block_on(crate::build::execute(
            built.planner.clone(),
            planned,
            backend2.clone(),
            &built.store,
            &second_run,
            &options,
            built.events.clone(),
            built.interrupt.clone(),
        ))?;
        built.store.finish_run(
            &second_run,
            if summary.failures() > 0 {
                crate::store::RunStatus::Failed
            } else {
                crate::store::RunStatus::Built
            },
        )?;
        eprintln!("second build: run {second_run}");
        second_failures = summary.failures();
        summary
            .finals
            .into_iter()
            .map(|f| Rebuilt {
                cell: f.spec.cell.clone(),
                filename: f.filename.clone(),
                result: Ok((f.path.clone(), f.sha256.clone())),
                window: f.window,
                build_path: f.build_path.clone(),
            })
            .collect()
    } else {
        built.runtime.block_on(rebuild(
            &finals,
            backend2.clone(),
            &varied,
            built.options.jobs,
            set.contains(&Variation::Time),
            second_dir.clone(),
        ))
    };
    for r in &rebuilt {
        if let Err(e) = &r.result {
            eprintln!("[{}] second build of {} failed: {e}", r.cell, r.filename);
        }
    }

    let mut a = Side {
        label: format!("run {}", built.run_id),
        ..Side::default()
    };
    for f in &finals {
        a.wheels
            .insert((f.spec.cell.clone(), f.filename.clone()), f.path.clone());
    }
    let mut b = Side {
        label: format!("run {} varied ({})", built.run_id, names(&set)),
        ..Side::default()
    };
    for r in &rebuilt {
        if let Ok((path, _)) = &r.result {
            b.wheels
                .insert((r.cell.clone(), r.filename.clone()), path.clone());
        }
    }
    let mut clue = Clues {
        values: clues(&base, &varied, &set),
        source_date_epoch: base.source_date_epoch.is_some(),
        ..Clues::default()
    };
    per_wheel_clues(&finals, &rebuilt, &mut clue, build_path_varies);
    let mut report = compare_sides(&a, &b, &clue)?;

    if args.find_culprit {
        for pair in report.pairs.iter_mut().filter(|p| !p.reproducible()) {
            if pair.attribution.iter().all(|a| a.variation.is_some()) {
                continue;
            }
            let Some(first) = finals
                .iter()
                .find(|f| f.spec.cell == pair.cell && f.filename == pair.wheel)
            else {
                continue;
            };
            let mut culprits = Vec::new();
            for &v in &set {
                let backend = if v == Variation::BuildPath {
                    backend2.clone()
                } else {
                    built.backend.clone()
                };
                let one = built.runtime.block_on(rebuild(
                    std::slice::from_ref(first),
                    backend,
                    &vary(&base, &[v]),
                    1,
                    v == Variation::Time,
                    second_dir.join(format!("culprit-{v}")),
                ));
                if let Some(Ok((_, sha))) = one.first().map(|r| &r.result)
                    && sha != &first.sha256
                {
                    culprits.push(v);
                }
            }
            pair.attribution.retain(|a| a.variation.is_some());
            pair.attribution.push(Attribution {
                entry: "(rebuilt one variation at a time)".into(),
                variation: culprits.first().copied().filter(|_| culprits.len() == 1),
                evidence: match culprits.len() {
                    0 => {
                        "no single variation reproduces the difference; only their combination does"
                            .into()
                    }
                    _ => format!(
                        "varying only {} reproduces the difference",
                        names(&culprits)
                    ),
                },
            });
        }
    }

    emit_report(&report, &args.report)?;
    // A second build that failed proves nothing about reproducibility: it is a build failure.
    if second_failures > 0 || rebuilt.iter().any(|r| r.result.is_err()) {
        eprintln!("error: the second build did not finish for every wheel; see above");
        return Ok(exit::BUILD_FAILED);
    }
    let mut ok = report.all_reproducible();
    if let Some(file) = &args.build.expect {
        ok &= crate::verify::expect::print(&crate::verify::expect::check(file, &finals)?);
    }
    Ok(if ok {
        exit::SUCCESS
    } else {
        exit::NOT_REPRODUCIBLE
    })
}

fn names(set: &[Variation]) -> String {
    set.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
}
