//! `rewheel runs list|show|verify`: read and check the run store.

use super::args::RunsCommand;
use super::settings::store_root as store_dir;
use crate::build::record::resume_hint;
use crate::store::gc::Keep;
use crate::store::{Store, StoreError};
use crate::{errors::Error, exit::ExitCode};

pub(crate) fn run(command: RunsCommand) -> Result<ExitCode, Error> {
    match command {
        RunsCommand::Verify { store, json } => {
            let root = store_dir(store.as_ref())?;
            let problems = Store::open(&root)?.verify(|id| resume_hint(&root, id))?;
            if json {
                let doc = serde_json::json!({ "schema_version": 1, "problems": problems });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else if problems.is_empty() {
                println!("the store is consistent: every blob matches its name");
            } else {
                print!("{}", crate::store::report::problems_text(&problems));
            }
            return Ok(ExitCode::checked(problems.is_empty()));
        }
        RunsCommand::Gc {
            store,
            keep,
            older_than,
            dry_run,
            json,
        } => {
            let store = Store::open(&store_dir(store.as_ref())?)?;
            let keep = match (keep, older_than) {
                (Some(n), _) => Keep::Last(n),
                (None, Some(age)) => Keep::Since(
                    jiff::Timestamp::now().checked_sub(jiff::SignedDuration::try_from(age)?)?,
                ),
                (None, None) => unreachable!("clap requires one"),
            };
            let collected = store.gc(keep, dry_run)?;
            if json {
                let doc = serde_json::json!({ "schema_version": 1, "dry_run": dry_run, "removed": collected });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!(
                    "{verb} {} runs and {} blobs ({})",
                    collected.runs.len(),
                    collected.blobs,
                    crate::store::report::human_bytes(collected.bytes)
                );
            }
        }
        RunsCommand::List { store } => {
            let store = Store::open(&store_dir(store.as_ref())?)?;
            let (blobs, bytes) = store.size()?;
            println!(
                "store: {blobs} blobs, {}",
                crate::store::report::human_bytes(bytes)
            );
            for (run, counts) in store.runs_counted()? {
                println!("{}", crate::store::report::list_line(&run, counts));
            }
        }
        RunsCommand::Show { run, store, json } => {
            let run = crate::ids::RunId::parse(&run)?;
            let store = Store::open(&store_dir(store.as_ref())?)?;
            let record = store
                .run(&run)?
                .ok_or_else(|| StoreError::NoRun(run.clone()))?;
            let jobs = store.jobs(&run)?;
            if json {
                let doc = serde_json::json!({ "schema_version": 1, "run": record, "jobs": jobs });
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::Success);
            }
            print!("{}", crate::store::report::run_text(&record, &jobs));
        }
    }
    Ok(ExitCode::Success)
}
