//! One job of a plan, as a CI job runs it: its inputs found wherever CI put them (or fetched
//! and checked by hash), the job run on a backend, and its wheel, log and result document
//! written for the jobs after it and for `merge`.

use super::inputs::{
    self, Folders, Found, INPUTS_HINT, MAX_ARCHIVE, MAX_LOG_FILE, MAX_RESULT, copy_checked,
    open_located, refused,
};
use super::plan_doc::{EnvEntry, JobResult, SCHEMA_VERSION, crate_file};
use crate::build::attempt::{Attempted, Placement, attempt, needs_message};
use crate::build::backend::{self, BackendRequest};
use crate::build::job::{EnvWheel, JobSpec};
use crate::cell::Cell;
use crate::digest::Sha256;
use crate::fsutil::write_atomic;
use crate::ids::JobId;
use crate::resolve::archive::Limits;
use crate::store::JobOutcome;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One CI job, as plain settings.
#[derive(Debug, Clone)]
pub struct JobRunSettings {
    pub plan_file: PathBuf,
    pub job: JobId,
    /// What earlier jobs left, searched recursively.
    pub inputs: PathBuf,
    pub out: PathBuf,
    pub backend: BackendRequest,
    pub limits: Limits,
}

/// How the job ended; its result document is written either way.
pub enum JobRun {
    Built {
        wheel: PathBuf,
    },
    Failed {
        error: String,
    },
    /// Ctrl-C while the backend was being opened: nothing was written.
    Interrupted,
}

/// A file with this name and hash among the inputs, else fetched from `url` and checked,
/// copied into `scratch` while hashed: the job reads that copy, never the inputs.
fn obtain(
    inputs: &Folders,
    filename: &str,
    sha256: &Sha256,
    url: Option<&str>,
    scratch: &Path,
) -> anyhow::Result<PathBuf> {
    // The plan's and results' file names are checked plain when parsed.
    let to = scratch.join(filename);
    for found in inputs.named(filename) {
        let file = found
            .open(MAX_ARCHIVE)
            .map_err(|e| refused(&found.shown(), "", e, INPUTS_HINT))?;
        if copy_checked(file, MAX_ARCHIVE, sha256, &to)
            .with_context(|| format!("{}", found.shown().display()))?
        {
            return Ok(to);
        }
    }
    let Some(url) = url else {
        bail!("{filename} (sha256 {sha256}) is not among the inputs\nhint: {INPUTS_HINT}");
    };
    if let Some(path) = crate::resolve::index::local_path(url) {
        let file = open_located(&path, MAX_ARCHIVE)?;
        if !copy_checked(file, MAX_ARCHIVE, sha256, &to)? {
            bail!("hash mismatch for {filename}: expected sha256 {sha256}, got other bytes");
        }
        return Ok(to);
    }
    let download =
        crate::http::Http::new(4).download(url, scratch, crate::http::Cap::download())?;
    if download.sha256 != *sha256 {
        bail!(
            "hash mismatch for {filename}: expected sha256 {sha256}, got {}",
            download.sha256
        );
    }
    download
        .file
        .persist(&to)
        .with_context(|| format!("cannot write {}", to.display()))?;
    Ok(to)
}

/// The result document of job `dep` among the inputs, read within its cap and checked.
fn result_of<'a>(inputs: &'a Folders, dep: &JobId) -> anyhow::Result<(Found<'a>, Vec<u8>)> {
    let result_name = format!("{}.result.json", dep.file_stem());
    let found = inputs.named(&result_name).next().with_context(|| {
        format!(
            "the result of `{dep}` is not among the inputs ({result_name})\nhint: {INPUTS_HINT}"
        )
    })?;
    let bytes = found
        .read(MAX_RESULT)
        .map_err(|e| refused(&found.shown(), "", e, INPUTS_HINT))?;
    Ok((found, bytes))
}

/// The wheel an earlier job of the plan built, through its result document.
fn wheel_of_job(
    inputs: &Folders,
    dep: &JobId,
    scratch: &Path,
) -> anyhow::Result<(PathBuf, Sha256)> {
    let (found, bytes) = result_of(inputs, dep)?;
    let result = JobResult::parse(&bytes, &found.shown())?;
    let crate::store::JobStatus::Built {
        wheel_filename: filename,
        wheel_sha256: sha,
    } = result.outcome.status
    else {
        bail!("`{dep}` did not build a wheel");
    };
    Ok((obtain(inputs, &filename, &sha, None, scratch)?, sha))
}

/// A finished result of this very job among the inputs (a CI cache restored there), built from
/// the same inputs: its wheel (checked by hash), log and result document go to `out` as they
/// are, and nothing is built.
fn reuse(
    inputs: &Folders,
    id: &JobId,
    fingerprint: &str,
    out: &Path,
    scratch: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let stem = id.file_stem();
    let name = format!("{stem}.result.json");
    for found in inputs.named(&name) {
        let bytes = found
            .read(MAX_RESULT)
            .map_err(|e| refused(&found.shown(), "", e, INPUTS_HINT))?;
        // A document of another shape (an older rewheel's) is not reused; one that names a
        // file other than plainly is refused.
        let Ok(doc) = serde_json::from_slice::<JobResult>(&bytes) else {
            continue;
        };
        doc.check(&found.shown())?;
        let outcome = &doc.outcome;
        let Some((filename, sha)) = outcome.wheel() else {
            continue;
        };
        if doc.job != *id || outcome.fingerprint != fingerprint {
            continue;
        }
        let Ok(wheel) = obtain(inputs, filename, sha, None, scratch) else {
            continue;
        };
        let bytes = std::fs::read(&wheel)?;
        crate::build::job::check_wheel(&outcome.name, &outcome.version, filename, &bytes).map_err(
            |why| {
                anyhow::anyhow!(
                    "{}: the cached wheel is refused: {why}\nhint: {INPUTS_HINT}",
                    found.shown().display()
                )
            },
        )?;
        let log_file = doc.log_file.clone().unwrap_or(format!("{stem}.log"));
        let log = match found.beside(&log_file).read(MAX_LOG_FILE) {
            Ok(bytes) => bytes,
            Err(err) if err.is_not_found() => Vec::new(),
            Err(err) => return Err(refused(&found.shown(), "log_file", err, INPUTS_HINT).into()),
        };
        let kept = out.join(filename);
        std::fs::rename(&wheel, &kept)?;
        write_atomic(&out.join(format!("{stem}.log")), &log)?;
        write_atomic(&out.join(&name), &bytes)?;
        return Ok(Some(kept));
    }
    Ok(None)
}

/// `rewheel build --plan PLAN --job ID --inputs DIR --out DIR`.
pub fn run_job(settings: &JobRunSettings) -> anyhow::Result<JobRun> {
    let (id, plan_file, out) = (&settings.job, &settings.plan_file, &settings.out);
    let plan = inputs::plan(plan_file)?;
    let job = plan
        .jobs
        .iter()
        .find(|j| &j.id == id)
        .with_context(|| format!("no job `{id}` in {}", plan_file.display()))?;
    std::fs::create_dir_all(out)?;
    let scratch = out.join(".inputs");
    std::fs::create_dir_all(&scratch)?;
    let inputs = Folders::open(std::slice::from_ref(&settings.inputs), true)?;
    let sdist = obtain(
        &inputs,
        &job.sdist.filename,
        &job.sdist.sha256,
        Some(&job.sdist.url),
        &scratch,
    )?;
    let mut env = Vec::new();
    for entry in &job.build_env {
        env.push(match entry {
            EnvEntry::Job {
                job: dep,
                name,
                version,
            } => {
                let (path, sha256) = wheel_of_job(&inputs, dep, &scratch)?;
                EnvWheel {
                    name: name.clone(),
                    version: version.clone(),
                    path,
                    sha256,
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
        });
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
        recipe: job.recipe.clone(),
        crates: job
            .crates
            .iter()
            .map(|krate| {
                let filename = crate_file(krate);
                Ok(crate::build::job::VendoredCrate {
                    krate: krate.clone(),
                    path: obtain(
                        &inputs,
                        &filename,
                        &krate.sha256,
                        Some(&krate.url()),
                        &scratch,
                    )?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        timeout: Duration::from_secs(job.timeout_secs),
        limits: settings.limits,
        proceed: false,
        probe: false,
    };
    let mut cell = Cell::new(job.cell.clone(), &job.python, job.image.clone())?;
    cell.system = job.recipe.system.clone();
    let cell_of = cell.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_tx, interrupt) = tokio::sync::watch::channel(false);
    let Some(backend) = backend::open(&settings.backend, &[cell], &runtime, interrupt)? else {
        return Ok(JobRun::Interrupted);
    };
    let placement = Placement::of(backend.as_ref(), &spec);
    if let Some(wheel) = reuse(&inputs, id, &placement.fingerprint, out, &scratch)? {
        eprintln!(
            "[{}] reused {}: a result of this job with the same inputs is under --inputs",
            spec.cell,
            spec.label()
        );
        let _ = crate::beneath::remove_tree(&scratch);
        return Ok(JobRun::Built { wheel });
    }
    eprintln!("[{}] building {}", spec.cell, spec.label());
    let done = runtime.block_on(attempt(
        backend.as_ref(),
        &spec,
        &placement,
        Some(cell_of.markers()),
    ));
    let stem = id.file_stem();
    let log_file = format!("{stem}.log");
    write_atomic(&out.join(&log_file), done.log())?;
    let (outcome, run) = match &done.attempted {
        Attempted::Built(output) => {
            let wheel = out.join(&output.wheel_filename);
            write_atomic(&wheel, &output.wheel)?;
            eprintln!(
                "[{}] built {} → {}",
                spec.cell,
                spec.label(),
                wheel.display()
            );
            (
                done.outcome(&spec, &placement, None),
                JobRun::Built { wheel },
            )
        }
        other => {
            let error = match other {
                // `plan` probes every hook it does not know before it emits jobs: this is a
                // plan made where it could not (or a hook that answers differently here).
                Attempted::Needs(r) => format!(
                    "{}, which the plan did not know\nhint: make the plan where its cells can run (`rewheel plan` probes each backend's hook), or run `rewheel build` once with the same cache",
                    needs_message(r)
                ),
                Attempted::Failed(failure) => failure.message.clone(),
                Attempted::Built(_) | Attempted::Probed(_) => unreachable!("not a probe"),
            };
            let outcome = JobOutcome::failed(
                spec.identity(),
                placement.fingerprint.clone(),
                done.seconds,
                error.clone(),
            );
            (outcome, JobRun::Failed { error })
        }
    };
    let doc = JobResult {
        schema_version: SCHEMA_VERSION,
        job: id.clone(),
        outcome,
        log_file: Some(log_file),
    };
    write_atomic(
        &out.join(format!("{stem}.result.json")),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    let _ = crate::beneath::remove_tree(&scratch);
    Ok(run)
}
