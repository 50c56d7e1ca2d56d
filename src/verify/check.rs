//! The second build of `check`: every wheel of the first build built again under variations,
//! with the same build-dependency wheels, so that a difference belongs to the package itself.

use crate::build::FinalJob;
use crate::build::attempt::{Attempted, Placement, attempt, needs_message};
use crate::build::backend::Backend;
use crate::build::job::{LIBFAKETIME, Settings};
use crate::build::run::BuiltRun;
use crate::digest::Sha256;
use crate::store::RunStatus;
use crate::verify::compare::{Attribution, Clues, CompareReport, FailedBuild, Side, compare_sides};
use crate::verify::remedy::RemedyHint;
use crate::verify::variation::Variation;
use std::path::PathBuf;
use std::sync::Arc;

/// What the second build does, as plain settings (kept with the run, for `check --resume`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckSettings {
    pub vary: Vec<Variation>,
    /// Rebuild the whole closure, not only each wheel over the first build's environment.
    pub independent: bool,
    /// Rebuild one variation at a time for differences no value explains.
    pub find_culprit: bool,
    /// Try and verify the standard remedy of each attributed cause.
    pub remedies: bool,
    /// Where the verified remedies are written, as per-package settings.
    pub remedies_file: Option<PathBuf>,
}

/// What `check` found after the first build succeeded.
pub struct Checked {
    pub report: CompareReport,
    /// Wheels the second build could not make: a build failure, which proves nothing about
    /// reproducibility.
    pub second_failures: usize,
}

/// The variations' names, comma-separated.
pub fn names(set: &[Variation]) -> String {
    set.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
}

/// Build every wheel of `built` again under the variations, compare, attribute, and (when
/// asked) find the culprit of what no variation value explains.
pub fn check(built: &BuiltRun, settings: &CheckSettings) -> anyhow::Result<Checked> {
    let finals = &built.summary.finals;
    let local = finals
        .first()
        .and_then(|f| built.backend.runtime(&f.spec.cell))
        .is_some_and(|r| r.backend == "local");
    let mut set = settings.vary.clone();
    if !local && set.contains(&Variation::Aslr) {
        eprintln!("note: aslr is not varied in docker (the engine's seccomp profile forbids it)");
        set.retain(|v| *v != Variation::Aslr);
    }
    if local && set.contains(&Variation::Domain) {
        eprintln!(
            "note: domain is not varied locally (the NIS domain needs CAP_SYS_ADMIN in the job's namespace; the docker backend varies it)"
        );
        set.retain(|v| *v != Variation::Domain);
    }
    let mounts = built.backend.replaces_system_files();
    if local && set.contains(&Variation::BinSh) {
        let why = match mounts {
            false => Some("binding another shell needs bubblewrap's mount namespace".to_string()),
            true => crate::build::backend::other_shell().err(),
        };
        if let Some(why) = why {
            eprintln!("note: bin-sh is not varied here ({why})");
            set.retain(|v| *v != Variation::BinSh);
        }
    }
    if !mounts && set.contains(&Variation::User) {
        eprintln!(
            "note: without bubblewrap only USER and LOGNAME vary with user: /etc/passwd is the host's\nhint: apt-get install bubblewrap"
        );
    }
    let set = &set;
    let base = built.options.settings.clone();
    let mut varied = vary(&base, set);
    if varied.faketime.is_some() && local && !std::path::Path::new(LIBFAKETIME).is_file() {
        eprintln!(
            "note: no libfaketime on this host ({LIBFAKETIME}): the time variation only starts the second build later\nhint: apt-get install libfaketime"
        );
        varied.faketime = None;
    }
    let build_path_varies = set.contains(&Variation::BuildPath);
    let backend2 = if build_path_varies {
        let host = PathBuf::from(format!(
            "{}-varied",
            built.settings.backend.build_path.display()
        ));
        // The same claim as the first build path's: anyone could make this one first too.
        crate::build::backend::claim_build_root(&host)?;
        built
            .backend
            .with_build_path(host, PathBuf::from("/build-varied/tree"))
    } else {
        built.backend.clone()
    };
    let second_dir = built.settings.store_root.join("check").join(&built.run_id);
    eprintln!(
        "second build of {} wheels, varying {}",
        finals.len(),
        names(set)
    );
    let mut second_failures = 0;
    let mut failed = failures(&built.summary, "first");
    let rebuilt: Vec<Rebuilt> = if settings.independent {
        let planned = built.planner.plan_all_with(&varied)?;
        // A run of its own in the store, its wheels beside the first build's, not over them.
        let second_run = crate::build::record::new_second_side(&built.store, &built.run_id)?;
        let mut options = built.settings.options.clone();
        options.settings = varied.clone();
        options.rebuild = crate::build::plan::Rebuild::All;
        options.out_dir = second_dir.join("wheelhouse");
        let summary = built.execute(planned, backend2.clone(), &second_run, &options)?;
        built.store.finish_run(
            &second_run,
            if summary.interrupted {
                RunStatus::Interrupted
            } else if summary.failures() > 0 {
                RunStatus::Failed
            } else {
                RunStatus::Built
            },
        )?;
        eprintln!("second build: run {second_run}");
        second_failures = summary.failures();
        failed.extend(failures(&summary, "second"));
        summary
            .finals
            .into_iter()
            .map(|f| Rebuilt {
                cell: f.spec.cell.clone(),
                filename: f.filename.clone(),
                result: Ok((f.path.clone(), f.sha256.clone())),
                window: f.window,
                build_path: f.build_path.clone(),
                source_parent: f.source_parent.clone(),
            })
            .collect()
    } else {
        built.runtime.block_on(rebuild(
            finals,
            backend2.clone(),
            &varied,
            built.options.jobs,
            set.contains(&Variation::Time),
            second_dir.clone(),
            built.interrupt.clone(),
        ))
    };
    for r in &rebuilt {
        if let Err(e) = &r.result {
            eprintln!("[{}] second build of {} failed: {e}", r.cell, r.filename);
            let job = finals
                .iter()
                .find(|f| f.spec.cell == r.cell && f.filename == r.filename)
                .map_or_else(|| r.filename.clone(), |f| f.spec.label());
            failed.push(FailedBuild {
                cell: r.cell.to_string(),
                job,
                side: "second",
                error: e.clone(),
            });
        }
    }
    second_failures += rebuilt.iter().filter(|r| r.result.is_err()).count();

    let mut a = Side {
        label: format!("run {}", built.run_id),
        ..Side::default()
    };
    for f in finals {
        a.wheels.insert(
            (f.spec.cell.to_string(), f.filename.clone()),
            f.path.clone(),
        );
    }
    let mut b = Side {
        label: format!("run {} varied ({})", built.run_id, names(set)),
        ..Side::default()
    };
    for r in &rebuilt {
        if let Ok((path, _)) = &r.result {
            b.wheels
                .insert((r.cell.to_string(), r.filename.clone()), path.clone());
        }
    }
    let mut clue = Clues {
        values: clues(&base, &varied, set),
        source_date_epoch: base.source_date_epoch.is_some(),
        ..Clues::default()
    };
    per_wheel_clues(finals, &rebuilt, &mut clue, (&base, &varied), set);
    let mut report = compare_sides(&a, &b, &clue)?;
    report.failed = failed;
    if settings.find_culprit {
        find_culprits(built, &mut report, set, &backend2, &second_dir);
    }
    if settings.remedies {
        verify_remedies(built, &mut report, set, (&varied, &backend2), &second_dir);
    } else {
        // Untried, a differing wheel's row still says what would fix it, or that nothing
        // rewheel knows would: the remedies cost builds, so they are asked for, not run.
        for pair in report.pairs.iter_mut().filter(|p| !p.reproducible()) {
            pair.remedy_hint = Some(RemedyHint::of(&pair.causes(), set, &base));
        }
    }
    Ok(Checked {
        report,
        second_failures,
    })
}

/// A side's failed jobs, for the report: nothing of theirs is compared.
fn failures(summary: &crate::build::Summary, side: &'static str) -> Vec<FailedBuild> {
    summary
        .outcomes
        .iter()
        .filter_map(|o| {
            let error = o.result.as_ref().err()?;
            Some(FailedBuild {
                cell: o.cell.to_string(),
                job: o.label.clone(),
                side,
                error: error.clone(),
            })
        })
        .collect()
}

/// The first build's job of a compared wheel.
fn first_build_of<'a>(
    built: &'a BuiltRun,
    pair: &crate::verify::compare::PairReport,
) -> Option<&'a crate::build::FinalJob> {
    built
        .summary
        .finals
        .iter()
        .find(|f| f.spec.cell.as_str() == pair.cell && f.filename == pair.wheel)
}

/// For each differing wheel that no variation value explains, rebuild it with one variation
/// at a time and name those that reproduce the difference.
fn find_culprits(
    built: &BuiltRun,
    report: &mut CompareReport,
    set: &[Variation],
    varied_backend: &Arc<dyn Backend>,
    second_dir: &std::path::Path,
) {
    let base = &built.options.settings;
    for pair in report.pairs.iter_mut().filter(|p| !p.reproducible()) {
        if pair.attribution.iter().all(|a| a.variation.is_some()) {
            continue;
        }
        let Some(first) = first_build_of(built, pair) else {
            continue;
        };
        let mut culprits = Vec::new();
        for &v in set {
            let backend = if v == Variation::BuildPath {
                varied_backend.clone()
            } else {
                built.backend.clone()
            };
            let one = built.runtime.block_on(rebuild(
                std::slice::from_ref(first),
                backend,
                &vary(base, &[v]),
                1,
                v == Variation::Time,
                second_dir.join(format!("culprit-{v}")),
                built.interrupt.clone(),
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
                0 => "no single variation reproduces the difference; only their combination does"
                    .into(),
                _ => format!(
                    "varying only {} reproduces the difference",
                    names(&culprits)
                ),
            },
        });
    }
}

/// For each differing wheel, build it on both sides again with the remedies of its attributed
/// causes; the remedy is verified when the two wheels are then identical. Every wheel's two
/// sides run together, `--jobs` at a time; the wheels a round does not fix get one more round
/// with every standard remedy of the varied set.
fn verify_remedies(
    built: &BuiltRun,
    report: &mut CompareReport,
    set: &[Variation],
    (varied, varied_backend): (&Settings, &Arc<dyn Backend>),
    second_dir: &std::path::Path,
) {
    use crate::verify::remedy::{Remedy, RemedyReport, package_remedy, tries};
    let base = &built.options.settings;
    // Per differing wheel: its first build, and the remedies of each try.
    let mut plans: Vec<(usize, &FinalJob, Vec<Vec<Remedy>>)> = Vec::new();
    for (i, pair) in report.pairs.iter_mut().enumerate() {
        if pair.reproducible() {
            continue;
        }
        let Some(first) = first_build_of(built, pair) else {
            continue;
        };
        let causes = pair.causes();
        let tries = tries(&causes, set, base);
        pair.remedy = Some(RemedyReport {
            causes,
            remedies: tries[0].iter().map(Remedy::describe).collect(),
            verified: false,
            settings: None,
        });
        plans.push((i, first, tries));
    }
    for round in 0..2 {
        // After Ctrl-C every rebuild returns at once: say nothing more.
        if *built.interrupt.borrow() {
            return;
        }
        let dir = second_dir.join(if round == 0 { "remedy" } else { "remedy-all" });
        let mut tasks = Vec::new();
        let mut tried = Vec::new();
        for (k, (i, first, tries)) in plans.iter().enumerate() {
            let pair = &report.pairs[*i];
            if pair.remedy.as_ref().is_some_and(|r| r.verified) {
                continue;
            }
            let Some(remedies) = tries.get(round).filter(|r| !r.is_empty()) else {
                continue;
            };
            let mut remedied = (*first).clone();
            for r in remedies {
                r.apply(&mut remedied.spec.recipe);
            }
            let described: Vec<String> = remedies.iter().map(|r| r.describe()).collect();
            eprintln!(
                "[{}] verifying {}{} for {}",
                pair.cell,
                if round > 0 {
                    "every standard remedy: "
                } else {
                    ""
                },
                described.join(" + "),
                pair.wheel
            );
            let side = |settings: &Settings, backend: &Arc<dyn Backend>, later, name| Rebuild {
                job: remedied.clone(),
                backend: backend.clone(),
                settings: settings.clone(),
                vary_time: later,
                out_dir: dir.join(name),
            };
            tasks.push(side(base, &built.backend, false, "a"));
            tasks.push(side(
                varied,
                varied_backend,
                set.contains(&Variation::Time),
                "b",
            ));
            tried.push((k, described));
        }
        if tasks.is_empty() {
            continue;
        }
        let rebuilt = built.runtime.block_on(rebuild_all(
            tasks,
            built.options.jobs,
            built.interrupt.clone(),
        ));
        if *built.interrupt.borrow() {
            return;
        }
        // Each wheel's two results, told apart by the folder of their side.
        let sha_of = |side: &str, cell: &crate::cell::CellId, filename: &str| {
            rebuilt
                .iter()
                .filter(|r| &r.cell == cell && r.filename == filename)
                .filter_map(|r| r.result.as_ref().ok())
                .find(|(path, _)| path.starts_with(dir.join(side)))
                .map(|(_, sha)| sha.clone())
        };
        for (k, described) in tried {
            let (i, first, tries) = &plans[k];
            let (cell, filename) = (&first.spec.cell, &first.filename);
            let (a, b) = (sha_of("a", cell, filename), sha_of("b", cell, filename));
            let outcome = report.pairs[*i].remedy.as_mut().expect("set above");
            outcome.remedies = described;
            outcome.verified = a.is_some() && a == b;
            if outcome.verified {
                outcome.settings = Some(package_remedy(&first.spec.name, &tries[round]));
            }
        }
    }
}

/// A first build with failures but wheels to check: its summary and what `check` goes on
/// with, on stderr (stdout carries the report, which may be JSON).
pub fn say_partial_first_build(built: &BuiltRun) {
    let out = &built.settings.options.out_dir;
    eprint!("{}", crate::build::report::text(&built.summary, out));
    eprintln!(
        "error: {} of the first build's jobs failed (above); checking the {} wheels that built",
        built.summary.failures(),
        built.summary.finals.len()
    );
}

/// Write the verified remedies of a report as a settings file; returns how many.
pub fn write_verified(
    report: &crate::verify::compare::CompareReport,
    file: &std::path::Path,
    from_run: &crate::ids::RunId,
) -> std::io::Result<usize> {
    let verified: Vec<crate::verify::remedy::PackageRemedy> = report
        .pairs
        .iter()
        .filter_map(|p| p.remedy.as_ref()?.settings.clone())
        .collect();
    std::fs::write(
        file,
        crate::verify::remedy::settings_file(&verified, from_run),
    )?;
    Ok(verified.len())
}

/// How far the `time` variation moves the clock (libfaketime's syntax).
pub const TEN_YEARS: &str = "+3650d";

/// The second build's settings: each variation in `set` changes its input.
pub fn vary(base: &Settings, set: &[Variation]) -> Settings {
    let mut s = base.clone();
    for v in set {
        match v {
            Variation::Umask => s.umask = if base.umask == 0o022 { 0o002 } else { 0o022 },
            Variation::Timezone => s.timezone = "XXX-14".into(),
            // gettext's LANGUAGE with it: one setting in practice (GNU gettext reads it only
            // under a locale that is not C, Python's gettext before LC_ALL), one remedy.
            Variation::Locale => {
                s.locale = "en_US.UTF-8".into();
                s.language = "fr_CH:fr".into();
            }
            Variation::Hostname => s.hostname = format!("{}-varied", base.hostname),
            Variation::Domain => s.domainname = "nis.varied".into(),
            Variation::Uid => {
                s.uid = base.uid + 1;
                s.gid = base.gid + 1;
            }
            Variation::Home => s.home = format!("{}-varied", base.home),
            Variation::ExecPath => {
                s.path = base.path.split(':').rev().collect::<Vec<_>>().join(":");
            }
            Variation::Kernel => s.uname_2_6 = true,
            Variation::Aslr => s.aslr_off = true,
            Variation::FileOrder => s.file_order_reversed = true,
            Variation::Time => s.faketime = Some(TEN_YEARS.into()),
            Variation::HashSeed => s.hash_seed = "1234567".into(),
            Variation::Env => s
                .extra_env
                .push(("REWHEEL_NOISE".into(), "rewheel-variation-noise".into())),
            Variation::NumCpus => s.cpus = Some("0".into()),
            Variation::BinSh => s.other_sh = true,
            Variation::User => {
                s.user = "rewheel2".into();
                s.gecos = "rewheel second build,room 2,+1 555 0100,,".into();
                s.login_shell = "/bin/bash".into();
            }
            Variation::Nice => s.nice = base.nice + 10,
            Variation::BuildEnvPath => s.env_dir = format!("{}-varied", base.env_dir),
            // The build path is the backend's folder.
            Variation::BuildPath => {}
        }
    }
    s
}

/// What the variations put where a build can see it, for attribution.
pub fn clues(
    base: &Settings,
    varied: &Settings,
    set: &[Variation],
) -> Vec<(Variation, String, String)> {
    let mut out = Vec::new();
    // First, as the more specific: the user's names hold the default hostname. The name,
    // and the GECOS field's first part (the full name): a login shell is too common a string
    // to tell anything.
    if set.contains(&Variation::User) {
        let full_name = |s: &Settings| s.gecos.split(',').next().unwrap_or_default().to_string();
        out.push((Variation::User, base.user.clone(), varied.user.clone()));
        out.push((Variation::User, full_name(base), full_name(varied)));
    }
    if set.contains(&Variation::Hostname) {
        out.push((
            Variation::Hostname,
            base.hostname.clone(),
            varied.hostname.clone(),
        ));
    }
    if set.contains(&Variation::Domain) {
        out.push((Variation::Domain, String::new(), varied.domainname.clone()));
    }
    if set.contains(&Variation::Locale) {
        out.push((
            Variation::Locale,
            base.locale.clone(),
            varied.locale.clone(),
        ));
        out.push((
            Variation::Locale,
            base.language.clone(),
            varied.language.clone(),
        ));
    }
    if set.contains(&Variation::Timezone) {
        out.push((Variation::Timezone, String::new(), varied.timezone.clone()));
    }
    if set.contains(&Variation::ExecPath) {
        // The first folder of PATH, as a build that records "where tools are" leaks it.
        let first = |p: &str| p.split(':').next().unwrap_or_default().to_string();
        out.push((Variation::ExecPath, first(&base.path), String::new()));
    }
    if set.contains(&Variation::Kernel)
        && let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease")
    {
        out.push((Variation::Kernel, release.trim().to_string(), String::new()));
    }
    if set.contains(&Variation::Env) {
        out.push((
            Variation::Env,
            String::new(),
            "rewheel-variation-noise".into(),
        ));
    }
    out
}

/// One wheel built again.
pub struct Rebuilt {
    pub cell: crate::cell::CellId,
    pub filename: String,
    pub result: Result<(PathBuf, Sha256), String>,
    pub window: (i64, i64),
    pub build_path: PathBuf,
    /// Where it saw the sdist's top folder unpacked.
    pub source_parent: PathBuf,
}

/// Build each final wheel again with `settings` on `backend`, `jobs` at a time. With the time
/// variation, no job starts within 2 s of its first build (zip times have 2 s steps).
pub async fn rebuild(
    finals: &[FinalJob],
    backend: Arc<dyn Backend>,
    settings: &Settings,
    jobs: usize,
    vary_time: bool,
    out_dir: PathBuf,
    interrupt: tokio::sync::watch::Receiver<bool>,
) -> Vec<Rebuilt> {
    let tasks = finals
        .iter()
        .map(|f| Rebuild {
            job: f.clone(),
            backend: backend.clone(),
            settings: settings.clone(),
            vary_time,
            out_dir: out_dir.clone(),
        })
        .collect();
    rebuild_all(tasks, jobs, interrupt).await
}

/// One wheel to build again, on its own backend and settings (a remedy's two sides differ).
pub struct Rebuild {
    pub job: FinalJob,
    pub backend: Arc<dyn Backend>,
    pub settings: Settings,
    /// Start no sooner than 2 s after the first build ended.
    pub vary_time: bool,
    /// The wheel goes to `out_dir/CELL/FILENAME`.
    pub out_dir: PathBuf,
}

/// Run every rebuild, `jobs` at a time; Ctrl-C stops them all.
pub async fn rebuild_all(
    tasks: Vec<Rebuild>,
    jobs: usize,
    mut interrupt: tokio::sync::watch::Receiver<bool>,
) -> Vec<Rebuilt> {
    // An interrupted wheel is a failed rebuild, never a missing one.
    let interrupted = |(cell, filename): (crate::cell::CellId, String)| Rebuilt {
        cell,
        filename,
        result: Err("interrupted".into()),
        window: (0, 0),
        build_path: PathBuf::new(),
        source_parent: PathBuf::new(),
    };
    if *interrupt.borrow() {
        return tasks
            .iter()
            .map(|t| interrupted((t.job.spec.cell.clone(), t.job.filename.clone())))
            .collect();
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut names = std::collections::HashMap::new();
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    // The longest first builds start first: a set of independent jobs ends soonest that way,
    // rather than with maturin started last, alone on the machine.
    let mut tasks = tasks;
    tasks.sort_by(|a, b| b.job.seconds.total_cmp(&a.job.seconds));
    let mut turn: Option<tokio::sync::oneshot::Receiver<()>> = None;
    for task in tasks {
        let Rebuild {
            job: f,
            backend,
            settings,
            vary_time,
            out_dir,
        } = task;
        if !backends.iter().any(|b| Arc::ptr_eq(b, &backend)) {
            backends.push(backend.clone());
        }
        let mut spec = f.spec.clone();
        spec.settings = settings;
        // `proceed` stays as the first build left it: a job that asked and was given what it
        // asked for asks again here only if the variations change its answer.
        spec.probe = false;
        let markers = f.markers.clone();
        let semaphore = semaphore.clone();
        let (ended, cell, filename) = (f.window.1, f.spec.cell.clone(), f.filename.clone());
        let what = (cell.clone(), filename.clone());
        // Tasks start polling in whatever order the runtime's workers take them: each waits
        // for the one before it to hold a permit, so permits go out in the sorted order.
        let my_turn = turn.take();
        let (after_me, next) = tokio::sync::oneshot::channel::<()>();
        turn = Some(next);
        let handle = running.spawn(async move {
            if let Some(my_turn) = my_turn {
                let _ = my_turn.await;
            }
            let _permit = semaphore.acquire_owned().await.expect("never closed");
            let _ = after_me.send(());
            if vary_time {
                let wait = ended + 2 - jiff::Timestamp::now().as_second();
                if wait > 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(wait as u64)).await;
                }
            }
            let placement = Placement::of(backend.as_ref(), &spec);
            let done = attempt(backend.as_ref(), &spec, &placement, markers.as_deref()).await;
            let window = done.window;
            let result = match done.attempted {
                Attempted::Built(output) => {
                    let sha = crate::fsutil::sha256_hex(&output.wheel);
                    let path = out_dir.join(&cell).join(&filename);
                    crate::fsutil::write_atomic(&path, &output.wheel)
                        .map(|()| (path, sha))
                        .map_err(|e| e.to_string())
                }
                // The first build's environment holds everything its hook asked for: asking
                // for more under the variations means the variation changed what the build
                // needs, which is itself a difference between the two builds.
                Attempted::Needs(requirements) => Err(format!(
                    "{}, which the first build did not need: the variations change the build's requirements",
                    needs_message(&requirements)
                )),
                Attempted::Probed(_) => Err("a probe builds no wheel".into()),
                Attempted::Failed(failure) => Err(failure.message),
            };
            let (root, sources) = (placement.build_path, placement.source_parent);
            Rebuilt {
                cell,
                filename,
                result,
                window,
                build_path: root,
                source_parent: sources,
            }
        });
        names.insert(handle.id(), what);
    }
    let mut out = Vec::new();
    loop {
        // Ctrl-C stops the second builds too, and removes their containers.
        let done = tokio::select! {
            done = running.join_next_with_id() => done,
            _ = interrupt.changed() => {
                running.abort_all();
                while running.join_next().await.is_some() {}
                for backend in &backends {
                    backend.cleanup().await;
                }
                out.extend(names.into_values().map(interrupted));
                break;
            }
        };
        let Some(done) = done else { break };
        match done {
            Ok((id, r)) => {
                names.remove(&id);
                // Progress for logs: a second build of a large closure runs for an hour.
                if r.result.is_ok() {
                    let secs = r.window.1 - r.window.0;
                    eprintln!("[{}] built again {} ({secs} s)", r.cell, r.filename);
                }
                out.push(r)
            }
            // A rebuild that panicked is a failed rebuild of that wheel, not a missing wheel.
            Err(err) => {
                if let Some((cell, filename)) = names.remove(&err.id()) {
                    out.push(Rebuilt {
                        cell,
                        filename,
                        result: Err(format!("rewheel failed while rebuilding it (a bug): {err}")),
                        window: (0, 0),
                        build_path: PathBuf::new(),
                        source_parent: PathBuf::new(),
                    });
                }
            }
        }
    }
    out
}

/// Clues per wheel from both builds: the build folders, home folders and windows (the second
/// moved by the faked clock's offset).
pub fn per_wheel_clues(
    finals: &[FinalJob],
    rebuilt: &[Rebuilt],
    clues: &mut Clues,
    (base, varied): (&Settings, &Settings),
    set: &[Variation],
) {
    let offset = varied.clock_offset();
    for r in rebuilt {
        let Some(f) = finals
            .iter()
            .find(|f| f.spec.cell == r.cell && f.filename == r.filename)
        else {
            continue;
        };
        let key = (r.cell.to_string(), r.filename.clone());
        let moved = (r.window.0 + offset, r.window.1 + offset);
        clues.windows.insert(key.clone(), [f.window, moved]);
        let mut values = Vec::new();
        // The more specific first: a home folder and the build environment lie inside the
        // build folder.
        if set.contains(&Variation::BuildEnvPath) {
            values.push((
                Variation::BuildEnvPath,
                f.build_path.join(&base.env_dir).display().to_string(),
                r.build_path.join(&varied.env_dir).display().to_string(),
            ));
        }
        if set.contains(&Variation::Home) {
            values.push((
                Variation::Home,
                f.build_path.join(&base.home).display().to_string(),
                r.build_path.join(&varied.home).display().to_string(),
            ));
        }
        if set.contains(&Variation::BuildPath) {
            values.push((
                Variation::BuildPath,
                f.source_parent.display().to_string(),
                r.source_parent.display().to_string(),
            ));
        }
        if !values.is_empty() {
            clues.per_wheel.insert(key, values);
        }
    }
}
