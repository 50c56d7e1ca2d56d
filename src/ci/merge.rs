//! `rewheel merge`: the result documents of a plan's CI jobs, with their wheels and logs,
//! joined into one run of the store; missing, duplicate and unknown jobs are refused by name.

use super::job_runner::files_below;
use super::plan_doc::{JobResult, PlanDoc};
use crate::fsutil::sha256_file;
use crate::store::{JobRecord, JobStatus, RunStatus, Store};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a merge made.
pub struct Merged {
    pub run_id: String,
    pub jobs: usize,
    pub failed: usize,
}

/// Join the results found under `roots` into a new run of the store at `store_root`, recorded with `argv`.
pub fn merge(
    roots: &[PathBuf],
    plan_file: Option<&Path>,
    store_root: &Path,
    argv: &[String],
) -> anyhow::Result<Merged> {
    let mut results: BTreeMap<String, Vec<(PathBuf, JobResult)>> = BTreeMap::new();
    let mut all_files = Vec::new();
    for root in roots {
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
    let duplicates: Vec<&str> = results
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.as_str())
        .collect();
    if !duplicates.is_empty() {
        bail!("jobs with more than one result: {}", duplicates.join(", "));
    }
    if let Some(plan_file) = plan_file {
        let plan: PlanDoc = serde_json::from_slice(
            &std::fs::read(plan_file)
                .with_context(|| format!("cannot read {}", plan_file.display()))?,
        )
        .with_context(|| format!("{}: not a rewheel plan", plan_file.display()))?;
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
    // Opened only once the results are known to be whole: a refused merge leaves no store.
    let store = Store::open(store_root)?;
    let run_id = store.new_run(argv)?;
    let mut failed = 0;
    for (id, docs) in &results {
        let (path, doc) = &docs[0];
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut outcome = doc.outcome.clone();
        // The wheel's blob is what the store names; the document's claim is checked first.
        outcome.wheel_sha256 = None;
        if let (Some(filename), Some(sha)) =
            (&doc.outcome.wheel_filename, &doc.outcome.wheel_sha256)
        {
            let wheel = all_files
                .iter()
                .find(|p| {
                    p.file_name().is_some_and(|n| n == filename.as_str())
                        && sha256_file(p).ok().as_deref() == Some(sha)
                })
                .with_context(|| {
                    format!("{id}: its wheel {filename} (sha256 {sha}) is not beside its result")
                })?;
            outcome.wheel_sha256 = Some(store.put_blob(&std::fs::read(wheel)?)?);
        }
        let log_sha256 = match &doc.log_file {
            Some(log) => match std::fs::read(dir.join(log)) {
                Ok(bytes) => Some(store.put_blob(&bytes)?),
                Err(_) => None,
            },
            None => None,
        };
        failed += usize::from(outcome.status != JobStatus::Built);
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
        jobs: results.len(),
        failed,
    })
}
