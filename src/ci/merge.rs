//! `rewheel merge`: the result documents of a plan's CI jobs, with their wheels and logs,
//! joined into one run of the store; missing, duplicate and unknown jobs are refused by name.

use super::inputs::{self, Folders, Found, MAX_LOG_FILE, MAX_RESULT, refused};
use super::plan_doc::{JobResult, RESULT_HINT};
use crate::build::job::MAX_WHEEL;
use crate::digest::Sha256;
use crate::fsutil::{sha256_hex, sha256_reader};
use crate::ids::{JobId, RunId};
use crate::store::{JobRecord, JobStatus, RunStatus, Store};
use anyhow::bail;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a merge made.
pub struct Merged {
    pub run_id: RunId,
    pub jobs: usize,
    pub failed: usize,
}

/// One job's result, with the files it names found and checked.
struct Taken<'a> {
    doc: JobResult,
    wheel: Option<(Found<'a>, Sha256)>,
    log: Option<Found<'a>>,
}

/// Join the results found under `roots` into a new run of the store at `store_root`, recorded with `argv`.
pub fn merge(
    roots: &[PathBuf],
    plan_file: Option<&Path>,
    store_root: &Path,
    argv: &[String],
) -> anyhow::Result<Merged> {
    let folders = Folders::open(roots, false)?;
    let mut results: BTreeMap<JobId, Vec<(Found, JobResult)>> = BTreeMap::new();
    for found in folders
        .files()
        .filter(|f| f.name().to_string_lossy().ends_with(".result.json"))
    {
        let bytes = found
            .read(MAX_RESULT)
            .map_err(|e| refused(&found.shown(), "", e, RESULT_HINT))?;
        let doc = JobResult::parse(&bytes, &found.shown())?;
        results
            .entry(doc.job.clone())
            .or_default()
            .push((found, doc));
    }
    let duplicates: Vec<&str> = results
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.as_str())
        .collect();
    if !duplicates.is_empty() {
        bail!("jobs with more than one result: {}", duplicates.join(", "));
    }
    if let Some(plan_file) = plan_file {
        let plan = inputs::plan(plan_file)?;
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
    // Every file the results name is found and checked before the store is opened: a
    // refused merge leaves no store and no run.
    let mut taken = Vec::new();
    for (id, docs) in results {
        let (found, doc) = docs.into_iter().next().expect("one result per job");
        taken.push(take(&folders, &id, &found, doc)?);
    }
    let store = Store::open(store_root)?;
    let run_id = store.new_run(argv)?;
    let mut failed = 0;
    for job in &taken {
        let mut outcome = job.doc.outcome.clone();
        // The wheel's blob is what the store names, read again and checked again; a built
        // job's wheel was found beside its result (`take`), or the merge was refused.
        if let (JobStatus::Built { wheel_sha256, .. }, Some((wheel, sha))) =
            (&mut outcome.status, &job.wheel)
        {
            let bytes = wheel
                .read(MAX_WHEEL)
                .map_err(|e| refused(&wheel.shown(), "", e, RESULT_HINT))?;
            if sha256_hex(&bytes) != *sha {
                bail!("{}: changed while it was merged", wheel.shown().display());
            }
            *wheel_sha256 = store.put_blob(&bytes)?;
        }
        let log_sha256 = match &job.log {
            Some(log) => {
                let bytes = log
                    .read(MAX_LOG_FILE)
                    .map_err(|e| refused(&log.shown(), "", e, RESULT_HINT))?;
                Some(store.put_blob(&bytes)?)
            }
            None => None,
        };
        failed += usize::from(!outcome.status.is_built());
        store.record_job(&JobRecord::new(&run_id, outcome, log_sha256))?;
    }
    store.finish_run(
        &run_id,
        if failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Built
        },
    )?;
    Ok(Merged {
        run_id,
        jobs: taken.len(),
        failed,
    })
}

/// The result of job `id` found at `found`, with its wheel (by name and hash, anywhere
/// below the folders) and its log (beside it; a missing log is not kept).
fn take<'a>(
    folders: &'a Folders,
    id: &JobId,
    found: &Found<'a>,
    doc: JobResult,
) -> anyhow::Result<Taken<'a>> {
    let wheel = match doc.outcome.wheel() {
        Some((filename, sha)) => {
            let wheel = wheel_named(folders, id, filename, sha)?;
            // A job's wheel, checked as a job's own output is: a CI machine is not rewheel's,
            // and what it uploaded is data like any other.
            let bytes = wheel
                .read(MAX_WHEEL)
                .map_err(|e| refused(&wheel.shown(), "", e, RESULT_HINT))?;
            let outcome = &doc.outcome;
            crate::build::job::check_wheel(&outcome.name, &outcome.version, filename, &bytes)
                .map_err(|why| {
                    anyhow::anyhow!(
                        "{}: the wheel of `{id}` is refused: {why}\nhint: {RESULT_HINT}",
                        wheel.shown().display()
                    )
                })?;
            Some((wheel, sha.clone()))
        }
        None => None,
    };
    let log = match &doc.log_file {
        Some(log_file) => {
            let log = found.beside(log_file);
            match log.open(MAX_LOG_FILE) {
                Ok(_) => Some(log),
                Err(err) if err.is_not_found() => None,
                Err(err) => {
                    return Err(refused(&found.shown(), "log_file", err, RESULT_HINT).into());
                }
            }
        }
        None => None,
    };
    Ok(Taken { doc, wheel, log })
}

/// The file named `filename` whose bytes hash to `sha`.
fn wheel_named<'a>(
    folders: &'a Folders,
    id: &JobId,
    filename: &str,
    sha: &Sha256,
) -> anyhow::Result<Found<'a>> {
    for found in folders.named(filename) {
        let file = found
            .open(MAX_WHEEL)
            .map_err(|e| refused(&found.shown(), "", e, RESULT_HINT))?;
        let got = sha256_reader(std::io::Read::take(file, MAX_WHEEL + 1))
            .map_err(|e| anyhow::anyhow!("{}: {e}", found.shown().display()))?;
        if got == *sha {
            return Ok(found);
        }
    }
    bail!(
        "{id}: its wheel {filename} (sha256 {sha}) is not beside its result\nhint: only plain files below the folders given are read, never a link: merge the folders `rewheel build --job` wrote, as CI saved them"
    )
}
