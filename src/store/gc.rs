//! Cache hygiene: drop old runs and every blob no kept run names. A blob is shared by every
//! run that built or reused the same wheel, so only the rows that remain decide what stays.

use super::tally::{blobs, tally};
use super::{RunStatus, Store, StoreError};
use crate::digest::Sha256;
use crate::ids::RunId;
use rusqlite::params;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// Which runs survive.
#[derive(Debug, Clone, Copy)]
pub enum Keep {
    /// The newest N runs.
    Last(usize),
    /// Runs started at or after this instant.
    Since(jiff::Timestamp),
}

/// What a collection removed (or would remove, in a dry run).
#[derive(Debug, Default, serde::Serialize)]
pub struct Collected {
    pub runs: Vec<RunId>,
    pub blobs: usize,
    pub bytes: u64,
}

/// A blob this young may belong to a job whose row is not committed yet (rows follow their
/// blobs): never collected.
const FRESH: Duration = Duration::from_secs(3600);

impl Store {
    /// Remove the runs `keep` does not keep (never one still running), their rows, their
    /// `check/` folders, and every blob that no remaining job names.
    pub fn gc(&self, keep: Keep, dry_run: bool) -> Result<Collected, StoreError> {
        let runs = self.runs()?;
        let newest_first: Vec<_> = runs.iter().rev().collect();
        let doomed: Vec<RunId> = newest_first
            .iter()
            .enumerate()
            .filter(|(i, run)| {
                run.status != RunStatus::Running
                    && match keep {
                        Keep::Last(n) => *i >= n,
                        Keep::Since(t) => run
                            .started
                            .parse::<jiff::Timestamp>()
                            .is_ok_and(|started| started < t),
                    }
            })
            .map(|(_, run)| run.id.clone())
            .collect();
        let mut collected = Collected {
            runs: doomed.clone(),
            ..Collected::default()
        };
        if !dry_run {
            let tx = self.db.unchecked_transaction().map_err(self.sql())?;
            for id in &doomed {
                tx.execute("DELETE FROM jobs WHERE run_id = ?1", params![id])
                    .map_err(self.sql())?;
                tx.execute("DELETE FROM runs WHERE id = ?1", params![id])
                    .map_err(self.sql())?;
                tx.execute(
                    "INSERT OR IGNORE INTO collected_runs (id) VALUES (?1)",
                    params![id],
                )
                .map_err(self.sql())?;
            }
            tx.commit().map_err(self.sql())?;
            for id in &doomed {
                let _ = std::fs::remove_dir_all(self.root.join("check").join(id));
            }
        }
        let mut needed: HashSet<Sha256> = HashSet::new();
        for run in self.runs()? {
            if dry_run && doomed.contains(&run.id) {
                continue;
            }
            for job in self.jobs(&run.id)? {
                needed.extend(job.wheel().map(|(_, sha)| sha.clone()));
                needed.extend(job.log_sha256.clone());
            }
        }
        let now = SystemTime::now();
        for (path, name, meta) in blobs(&self.root.join("blobs")) {
            let fresh = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < FRESH);
            if needed.contains(name.as_str()) || fresh {
                continue;
            }
            if dry_run || std::fs::remove_file(&path).is_ok() {
                collected.blobs += 1;
                collected.bytes += meta.len();
            }
        }
        if !dry_run {
            // Counted again from the files: blobs removed, and any a killed process wrote
            // without its row in the tally.
            let tx = self.db.unchecked_transaction().map_err(self.sql())?;
            tx.execute("DELETE FROM blobs", []).map_err(self.sql())?;
            tally(&tx, &self.root.join("blobs")).map_err(self.sql())?;
            tx.commit().map_err(self.sql())?;
        }
        Ok(collected)
    }

    /// How many blobs the store holds and their bytes, as the store's tally has them.
    pub fn size(&self) -> Result<(usize, u64), StoreError> {
        self.db
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM blobs",
                [],
                |row| Ok((row.get::<_, i64>(0)? as usize, row.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.sql())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::CellId;
    use crate::store::{JobIdentity, JobOutcome, JobRecord};
    use std::path::Path;

    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    fn job(store: &Store, run: &RunId, name: &str, wheel: &[u8]) -> Sha256 {
        let sha = store.put_blob(wheel).unwrap();
        age(&store.blob_path(&sha));
        let identity = JobIdentity {
            cell: CellId::new("cp311").unwrap(),
            name: name.into(),
            version: "1".into(),
            stage: 0,
        };
        let outcome = JobOutcome::built(
            identity,
            name.into(),
            1.0,
            (format!("{name}.whl"), sha.clone()),
        );
        store
            .record_job(&JobRecord::new(run, outcome, None))
            .unwrap();
        sha
    }

    #[test]
    fn the_tally_of_blobs_follows_writes_and_a_store_from_before_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.size().unwrap(), (0, 0));
        store.put_blob(b"one").unwrap();
        store.put_blob(b"three").unwrap();
        store.put_blob(b"one").unwrap();
        assert_eq!(store.size().unwrap(), (2, 8));
        // A store made before the tally: its blob files are counted when it is opened.
        store.db.execute_batch("DROP TABLE blobs").unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.size().unwrap(), (2, 8));
    }

    #[test]
    fn gc_keeps_every_blob_a_kept_run_needs_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = store.new_run(&[]).unwrap();
        let shared = job(&store, &old, "shared", b"both runs use this wheel");
        let only_old = job(&store, &old, "gone", b"only the old run built this");
        store.finish_run(&old, RunStatus::Built).unwrap();
        let new = store.new_run(&[]).unwrap();
        // The new run reused the shared wheel: its row names the same blob.
        let reused = store
            .find_built(&crate::fsutil::sha256_hex(b"shared"))
            .unwrap();
        store.record_job(&reused.unwrap().reused_by(&new)).unwrap();
        store.finish_run(&new, RunStatus::Built).unwrap();
        let fresh = store
            .put_blob(b"written a moment ago, row not yet committed")
            .unwrap();

        let dry = store.gc(Keep::Last(1), true).unwrap();
        assert_eq!(dry.runs, vec![old.clone()]);
        assert_eq!(dry.blobs, 1);
        assert!(
            store.blob_path(&only_old).is_file(),
            "a dry run removes nothing"
        );

        let done = store.gc(Keep::Last(1), false).unwrap();
        assert_eq!((done.runs.len(), done.blobs), (1, 1));
        assert!(store.blob_path(&shared).is_file());
        assert!(!store.blob_path(&only_old).exists());
        assert!(
            store.blob_path(&fresh).is_file(),
            "young blobs are left alone"
        );
        assert!(store.run(&old).unwrap().is_none());
        assert_eq!(store.jobs(&new).unwrap().len(), 1);
        assert!(store.verify(|_| String::new()).unwrap().is_empty());
        let kept =
            [&shared, &fresh].map(|sha| std::fs::metadata(store.blob_path(sha)).unwrap().len());
        assert_eq!(store.size().unwrap(), (2, kept.iter().sum()));
        // A run started now never takes the collected run's id, which the kept rows name.
        for _ in 0..3 {
            assert_ne!(store.new_run(&[]).unwrap(), old);
        }
    }
}
