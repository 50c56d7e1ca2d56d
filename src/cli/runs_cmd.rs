//! `rewheel runs list|show|verify`: read and check the run store.

use super::args::RunsCommand;
use super::settings::store_root as store_dir;
use crate::exit;
use crate::store::{Store, StoreError};

pub(crate) fn run(command: RunsCommand) -> anyhow::Result<u8> {
    match command {
        RunsCommand::Verify { store, json } => {
            let store = Store::open(&store_dir(store.as_ref())?)?;
            let problems = store.verify()?;
            if json {
                let doc = serde_json::json!({ "schema_version": 1, "problems": problems });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else if problems.is_empty() {
                println!("the store is consistent: every blob matches its name");
            } else {
                for p in &problems {
                    match &p.job {
                        Some(job) => println!("run {}: {job}: {}", p.run, p.what),
                        None => println!("run {}: {}", p.run, p.what),
                    }
                }
                println!("{} problem(s)", problems.len());
            }
            return Ok(if problems.is_empty() {
                exit::SUCCESS
            } else {
                exit::NOT_REPRODUCIBLE
            });
        }
        RunsCommand::List { store } => {
            let store = Store::open(&store_dir(store.as_ref())?)?;
            for run in store.runs()? {
                let jobs = store.jobs(&run.id)?;
                let built = jobs
                    .iter()
                    .filter(|j| j.status == crate::store::JobStatus::Built)
                    .count();
                println!(
                    "{}  {:<11}  {built}/{} jobs built  {}",
                    run.id,
                    run.status,
                    jobs.len(),
                    run.argv.get(1..).unwrap_or_default().join(" ")
                );
            }
        }
        RunsCommand::Show { run, store, json } => {
            let store = Store::open(&store_dir(store.as_ref())?)?;
            let record = store
                .run(&run)?
                .ok_or_else(|| StoreError::NoRun(run.clone()))?;
            let jobs = store.jobs(&run)?;
            if json {
                let doc = serde_json::json!({ "schema_version": 1, "run": record, "jobs": jobs });
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(exit::SUCCESS);
            }
            println!(
                "run {} ({}) started {}",
                record.id, record.status, record.started
            );
            println!("  {}", record.argv.join(" "));
            for job in jobs {
                let stage = if job.stage > 0 {
                    format!(" stage {}", job.stage)
                } else {
                    String::new()
                };
                println!(
                    "  {:<14} {:<7} {} {}{stage}  {}  {:.1} s",
                    job.cell,
                    job.status,
                    job.name,
                    job.version,
                    job.wheel_sha256.as_deref().map(|s| &s[..16]).unwrap_or("-"),
                    job.seconds
                );
                if let Some(error) = &job.error {
                    println!("      {error}");
                }
            }
        }
    }
    Ok(exit::SUCCESS)
}
