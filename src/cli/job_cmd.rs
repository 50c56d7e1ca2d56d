//! CI splitting: `rewheel plan` (one job per wheel and cell), `rewheel build --job ID` (one job
//! from its inputs), and `rewheel merge` (results into one run of the store).

use super::build_cmd::{BuildArgs, backend_request, store_dir};
use crate::build::job::{EnvWheel, Fingerprint, JobError, JobSpec};
use crate::build::plan::Planner;
use crate::cell::Cell;
use crate::ci::plan_doc::{self as ci_plan, EnvEntry, JobResult, PlanDoc, file_stem};
use crate::exit;
use crate::fsutil::{sha256_hex, write_atomic};
use crate::store::{JobRecord, Store};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// `json`: the plan itself; `github`: a matrix per level for `strategy.matrix`; `gitlab`: a
    /// child pipeline with `needs:` edges.
    #[arg(long, value_enum, default_value_t = Emit::Json)]
    emit: Emit,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    Json,
    Github,
    Gitlab,
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// Result documents (`*.result.json`) or folders holding them and their wheels.
    #[arg(required = true)]
    results: Vec<PathBuf>,
    /// The plan the results come from: every job must be there, once.
    #[arg(long = "plan", value_name = "FILE")]
    plan_file: Option<PathBuf>,
    #[arg(long, env = "REWHEEL_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
}

pub(crate) fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    let resolved = super::resolve_inputs(&args.build.input, true)?;
    if super::has_error_cycle(&resolved) {
        print!(
            "{}",
            crate::resolve::report::text(&super::resolve_report(&resolved))
        );
        return Ok(exit::CYCLE);
    }
    let options = Arc::new(super::build_cmd::options_of(&args.build, resolved.limits));
    let graphs: Vec<_> = resolved.graphs.into_iter().map(|(cg, _)| cg).collect();
    let planner = Planner::new(Arc::new(resolved.repo), graphs, options);
    let doc = ci_plan::document(&planner.plan_all()?);
    let text = match args.emit {
        Emit::Json => serde_json::to_string_pretty(&doc)? + "\n",
        Emit::Github => serde_json::to_string_pretty(&ci_plan::github(&doc))? + "\n",
        Emit::Gitlab => ci_plan::gitlab(&doc),
    };
    super::emit(&text, args.output.as_deref())?;
    Ok(exit::SUCCESS)
}

/// Every file below `root` (or `root` itself), for finding a job's inputs wherever CI put them.
fn files_below(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file with this name and hash among the inputs, else fetched from `url` and checked.
fn obtain(
    inputs: &[PathBuf],
    filename: &str,
    sha256: &str,
    url: Option<&str>,
    scratch: &Path,
) -> anyhow::Result<PathBuf> {
    for path in inputs
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == filename))
    {
        if crate::verify::compare::sha256_file(path).ok().as_deref() == Some(sha256) {
            return Ok(path.clone());
        }
    }
    let Some(url) = url else {
        bail!("{filename} (sha256 {sha256}) is not among the inputs");
    };
    if let Some(path) = crate::resolve::index::local_path(url) {
        let got = crate::verify::compare::sha256_file(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if got != sha256 {
            bail!("hash mismatch for {filename}: expected sha256 {sha256}, got {got}");
        }
        return Ok(path);
    }
    let response = crate::http::Http::new(4).get(url, "*/*")?;
    let got = sha256_hex(&response.body);
    if got != sha256 {
        bail!("hash mismatch for {filename}: expected sha256 {sha256}, got {got}");
    }
    let path = scratch.join(filename);
    write_atomic(&path, &response.body)?;
    Ok(path)
}

/// `rewheel build --plan PLAN --job ID --inputs DIR --out DIR`.
pub(crate) fn run_one(args: &BuildArgs) -> anyhow::Result<u8> {
    let (Some(id), Some(plan_file), Some(inputs_dir)) = (&args.job, &args.plan_file, &args.inputs)
    else {
        bail!("--job needs --plan FILE and --inputs DIR");
    };
    let plan: PlanDoc = serde_json::from_slice(
        &std::fs::read(plan_file)
            .with_context(|| format!("cannot read {}", plan_file.display()))?,
    )
    .with_context(|| format!("{}: not a rewheel plan", plan_file.display()))?;
    let job = plan
        .jobs
        .iter()
        .find(|j| &j.id == id)
        .with_context(|| format!("no job `{id}` in {}", plan_file.display()))?;
    let out = &args.out;
    std::fs::create_dir_all(out)?;
    let scratch = out.join(".inputs");
    std::fs::create_dir_all(&scratch)?;
    let inputs = files_below(inputs_dir);
    let sdist = obtain(
        &inputs,
        &job.sdist.filename,
        &job.sdist.sha256,
        Some(&job.sdist.url),
        &scratch,
    )?;
    let mut env = Vec::new();
    for entry in &job.build_env {
        let wheel = match entry {
            EnvEntry::Job {
                job: dep,
                name,
                version,
            } => {
                let result_name = format!("{}.result.json", file_stem(dep));
                let result_path = inputs
                    .iter()
                    .find(|p| p.file_name().is_some_and(|n| n == result_name.as_str()))
                    .with_context(|| {
                        format!("the result of `{dep}` is not among the inputs ({result_name})")
                    })?;
                let result: JobResult = serde_json::from_slice(&std::fs::read(result_path)?)?;
                let (Some(filename), Some(sha)) = (result.wheel_filename, result.wheel_sha256)
                else {
                    bail!("`{dep}` did not build a wheel");
                };
                EnvWheel {
                    name: name.clone(),
                    version: version.clone(),
                    path: obtain(&inputs, &filename, &sha, None, &scratch)?,
                    sha256: sha,
                    url: None,
                }
            }
            EnvEntry::Wheel {
                name,
                version,
                filename,
                url,
                sha256,
            } => EnvWheel {
                name: name.clone(),
                version: version.clone(),
                path: obtain(&inputs, filename, sha256, url.as_deref(), &scratch)?,
                sha256: sha256.clone(),
                url: url.clone(),
            },
        };
        env.push(wheel);
    }
    let spec = JobSpec {
        cell: job.cell.clone(),
        name: job.name.clone(),
        version: job.version.clone(),
        stage: job.stage,
        sdist,
        sdist_sha256: job.sdist.sha256.clone(),
        backend: job.build_backend.clone(),
        backend_path: job.backend_path.clone(),
        env,
        settings: job.settings.clone(),
        timeout: Duration::from_secs(job.timeout_secs),
        limits: super::limits_of(&args.input.index),
        proceed: false,
    };
    let cell = Cell::new(job.cell.clone(), &job.python, job.image.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_tx, interrupt) = tokio::sync::watch::channel(false);
    let Some(backend) =
        crate::build::backend::open(&backend_request(args), &[cell], &runtime, interrupt)?
    else {
        return Ok(exit::INTERRUPTED);
    };
    let (dir, root) = backend.job_dir(&spec);
    let (fingerprint, _) = Fingerprint::of(&spec, backend.runtime(&spec.cell).as_ref(), &root);
    eprintln!("[{}] building {}", spec.cell, spec.label());
    let start = std::time::Instant::now();
    let result = runtime.block_on(backend.run(&spec, &dir));
    let stem = file_stem(id);
    let mut doc = JobResult {
        schema_version: ci_plan::SCHEMA_VERSION,
        job: id.to_string(),
        cell: spec.cell.clone(),
        name: spec.name.clone(),
        version: spec.version.clone(),
        stage: spec.stage,
        status: crate::store::JobStatus::Built,
        wheel_filename: None,
        wheel_sha256: None,
        log_file: Some(format!("{stem}.log")),
        fingerprint,
        seconds: start.elapsed().as_secs_f64(),
        error: None,
    };
    let code = match result {
        Ok(output) => {
            let bytes = output.wheel;
            let filename = output.wheel_filename;
            write_atomic(&out.join(&filename), &bytes)?;
            write_atomic(&out.join(format!("{stem}.log")), &output.log)?;
            doc.wheel_sha256 = Some(sha256_hex(&bytes));
            doc.wheel_filename = Some(filename.clone());
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "[{}] built {} → {}",
                spec.cell,
                spec.label(),
                out.join(&filename).display()
            );
            exit::SUCCESS
        }
        Err(err) => {
            write_atomic(&out.join(format!("{stem}.log")), err.log())?;
            doc.status = crate::store::JobStatus::Failed;
            doc.error = Some(match &err {
                JobError::Needs(r) => format!(
                    "the backend asks for {r:?} at build time, which the plan did not know; a local `rewheel build` finds such requirements and adds them"
                ),
                other => other.to_string(),
            });
            eprintln!(
                "error: {}: {}",
                id,
                doc.error.as_deref().unwrap_or_default()
            );
            exit::BUILD_FAILED
        }
    };
    write_atomic(
        &out.join(format!("{stem}.result.json")),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(code)
}

/// `rewheel merge`: job results into one run of the store.
pub(crate) fn merge(args: MergeArgs, argv: Vec<String>) -> anyhow::Result<u8> {
    let mut results: BTreeMap<String, Vec<(PathBuf, JobResult)>> = BTreeMap::new();
    let mut all_files = Vec::new();
    for root in &args.results {
        let files = files_below(root);
        for path in files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".result.json"))
        {
            let doc: JobResult = serde_json::from_slice(&std::fs::read(path)?)
                .with_context(|| format!("{}: not a job result", path.display()))?;
            results
                .entry(doc.job.clone())
                .or_default()
                .push((path.clone(), doc));
        }
        all_files.extend(files);
    }
    let duplicates: Vec<&String> = results
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    if !duplicates.is_empty() {
        bail!(
            "jobs with more than one result: {}",
            duplicates
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(plan_file) = &args.plan_file {
        let plan: PlanDoc = serde_json::from_slice(&std::fs::read(plan_file)?)?;
        let missing: Vec<&str> = plan
            .jobs
            .iter()
            .filter(|j| !results.contains_key(&j.id))
            .map(|j| j.id.as_str())
            .collect();
        if !missing.is_empty() {
            bail!("jobs of the plan without a result: {}", missing.join(", "));
        }
        let unknown: Vec<&str> = results
            .keys()
            .filter(|id| !plan.jobs.iter().any(|j| &j.id == *id))
            .map(|s| s.as_str())
            .collect();
        if !unknown.is_empty() {
            bail!(
                "results of jobs the plan does not have: {}",
                unknown.join(", ")
            );
        }
    }
    let store = Store::open(&store_dir(args.store.as_ref())?)?;
    let run_id = store.new_run(&argv)?;
    let mut failed = 0;
    for (id, docs) in &results {
        let (path, doc) = &docs[0];
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut record = JobRecord {
            run_id: run_id.clone(),
            cell: doc.cell.clone(),
            name: doc.name.clone(),
            version: doc.version.clone(),
            stage: doc.stage,
            status: doc.status,
            wheel_filename: doc.wheel_filename.clone(),
            wheel_sha256: None,
            log_sha256: None,
            fingerprint: doc.fingerprint.clone(),
            fingerprint_sha256: sha256_hex(doc.fingerprint.as_bytes()),
            error: doc.error.clone(),
            seconds: doc.seconds,
        };
        if let (Some(filename), Some(sha)) = (&doc.wheel_filename, &doc.wheel_sha256) {
            let wheel = all_files
                .iter()
                .find(|p| {
                    p.file_name().is_some_and(|n| n == filename.as_str())
                        && crate::verify::compare::sha256_file(p).ok().as_deref() == Some(sha)
                })
                .with_context(|| {
                    format!("{id}: its wheel {filename} (sha256 {sha}) is not beside its result")
                })?;
            record.wheel_sha256 = Some(store.put_blob(&std::fs::read(wheel)?)?);
        }
        if let Some(log) = &doc.log_file
            && let Ok(bytes) = std::fs::read(dir.join(log))
        {
            record.log_sha256 = Some(store.put_blob(&bytes)?);
        }
        failed += usize::from(doc.status != crate::store::JobStatus::Built);
        store.record_job(&record)?;
    }
    store.finish_run(
        &run_id,
        if failed > 0 {
            crate::store::RunStatus::Failed
        } else {
            crate::store::RunStatus::Built
        },
    )?;
    println!(
        "run {run_id}: {} job results merged, {failed} failed",
        results.len()
    );
    Ok(if failed > 0 {
        exit::BUILD_FAILED
    } else {
        exit::SUCCESS
    })
}
