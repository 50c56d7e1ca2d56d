//! The run store: SQLite for runs and jobs, content-addressed files for wheels and logs.
//!
//! Every finished job is one committed row (WAL mode), written after its files are in place, so
//! a run killed at any instant leaves a consistent store that `--resume` continues from.

use crate::fsutil::write_atomic;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run store {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("run store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no run `{0}` in the store; `rewheel runs list` shows them")]
    NoRun(String),
}

pub struct Store {
    root: PathBuf,
    db: Connection,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub run_id: String,
    pub cell: String,
    pub name: String,
    pub version: String,
    /// 0 for an ordinary build; 1..=3 for the stages of a bootstrap build.
    pub stage: u32,
    pub status: String,
    pub wheel_filename: Option<String>,
    pub wheel_sha256: Option<String>,
    pub log_sha256: Option<String>,
    pub fingerprint: String,
    pub fingerprint_sha256: String,
    pub error: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub started: String,
    pub finished: Option<String>,
    pub status: String,
    pub argv: Vec<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    argv TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    cell TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    stage INTEGER NOT NULL,
    status TEXT NOT NULL,
    wheel_filename TEXT,
    wheel_sha256 TEXT,
    log_sha256 TEXT,
    fingerprint TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    error TEXT,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, cell, name, version, stage)
);
";

impl Store {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let path = root.join("runs.sqlite3");
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let db = Connection::open(&path).map_err(sql)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        db.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self {
            root: root.to_path_buf(),
            db,
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.root.join("runs.sqlite3"),
            source,
        }
    }

    /// Keep bytes under their sha256; returns the digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = crate::fsutil::sha256_hex(bytes);
        let path = self.blob_path(&sha);
        if !path.exists() {
            write_atomic(&path, bytes).map_err(|source| StoreError::Io { path, source })?;
        }
        Ok(sha)
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(&sha256[..2]).join(sha256)
    }

    pub fn new_run(&self, argv: &[String]) -> Result<String, StoreError> {
        let now = jiff::Timestamp::now();
        let id = format!("{}", now.strftime("%Y%m%d-%H%M%S"));
        // Two runs in one second get a suffix.
        let mut candidate = id.clone();
        let mut n = 1;
        while self.run(&candidate)?.is_some() {
            n += 1;
            candidate = format!("{id}-{n}");
        }
        self.db
            .execute(
                "INSERT INTO runs (id, started, status, argv) VALUES (?1, ?2, 'running', ?3)",
                params![
                    candidate,
                    now.to_string(),
                    serde_json::to_string(argv).unwrap()
                ],
            )
            .map_err(self.sql())?;
        Ok(candidate)
    }

    pub fn finish_run(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE runs SET status = ?2, finished = ?3 WHERE id = ?1",
                params![id, status, jiff::Timestamp::now().to_string()],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.db
            .query_row(
                "SELECT id, started, finished, status, argv FROM runs WHERE id = ?1",
                params![id],
                run_from_row,
            )
            .optional()
            .map_err(self.sql())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT id, started, finished, status, argv FROM runs ORDER BY started")
            .map_err(self.sql())?;
        let rows = stmt.query_map([], run_from_row).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    pub fn record_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO jobs (run_id, cell, name, version, stage, status, wheel_filename,
                 wheel_sha256, log_sha256, fingerprint, fingerprint_sha256, error, seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    job.run_id,
                    job.cell,
                    job.name,
                    job.version,
                    job.stage,
                    job.status,
                    job.wheel_filename,
                    job.wheel_sha256,
                    job.log_sha256,
                    job.fingerprint,
                    job.fingerprint_sha256,
                    job.error,
                    job.seconds
                ],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    pub fn jobs(&self, run_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT run_id, cell, name, version, stage, status, wheel_filename, wheel_sha256,
                 log_sha256, fingerprint, fingerprint_sha256, error, seconds
                 FROM jobs WHERE run_id = ?1 ORDER BY cell, rowid",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(params![run_id], |row| {
                Ok(JobRecord {
                    run_id: row.get(0)?,
                    cell: row.get(1)?,
                    name: row.get(2)?,
                    version: row.get(3)?,
                    stage: row.get(4)?,
                    status: row.get(5)?,
                    wheel_filename: row.get(6)?,
                    wheel_sha256: row.get(7)?,
                    log_sha256: row.get(8)?,
                    fingerprint: row.get(9)?,
                    fingerprint_sha256: row.get(10)?,
                    error: row.get(11)?,
                    seconds: row.get(12)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

fn run_from_row(row: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let argv: String = row.get(4)?;
    Ok(RunRecord {
        id: row.get(0)?,
        started: row.get(1)?,
        finished: row.get(2)?,
        status: row.get(3)?,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_jobs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = store
            .new_run(&["build".into(), "six==1.16.0".into()])
            .unwrap();
        let sha = store.put_blob(b"wheel bytes").unwrap();
        assert!(store.blob_path(&sha).is_file());
        store
            .record_job(&JobRecord {
                run_id: run.clone(),
                cell: "cp311".into(),
                name: "six".into(),
                version: "1.16.0".into(),
                stage: 0,
                status: "built".into(),
                wheel_filename: Some("six-1.16.0-py2.py3-none-any.whl".into()),
                wheel_sha256: Some(sha),
                log_sha256: None,
                fingerprint: "{}".into(),
                fingerprint_sha256: "f".into(),
                error: None,
                seconds: 1.5,
            })
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.jobs(&run).unwrap().len(), 1);
        assert_eq!(store.runs().unwrap()[0].argv, ["build", "six==1.16.0"]);
    }
}
