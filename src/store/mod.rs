//! The run store: SQLite for runs and jobs, content-addressed files for wheels and logs.
//!
//! Every finished job is one committed row (WAL mode), written after its files are in place, so
//! a run killed at any instant leaves a consistent store that `--resume` continues from.

pub mod gc;
pub mod lock;
pub mod report;
mod tally;

use crate::cell::CellId;
use crate::digest::Sha256;
use crate::fsutil::write_atomic;
use crate::ids::RunId;
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
    NoRun(RunId),
    /// The store's database is there but is not one rewheel can read: it is left as it is.
    #[error("run store {}: {why}; rewheel leaves it as it is\nhint: restore it from a backup, or move it away (`mv {} {}.damaged`) to start a new, empty store (the blobs beside it stay)", path.display(), path.display(), path.display())]
    Unreadable { path: PathBuf, why: String },
    /// Another live process builds this run.
    #[error("run {run} is being built by {holder} (it holds {}); two processes never build one run\nhint: wait for it to end, or stop it, then resume again", path.display())]
    Busy {
        run: RunId,
        holder: String,
        path: PathBuf,
    },
    #[error("run store {}: the blob's content has sha256 {actual}, not its name; it was changed after it was written\nhint: `rewheel runs verify` lists every damaged blob; rebuilding replaces it", path.display())]
    Corrupt { path: PathBuf, actual: Sha256 },
}

/// What became of one job: a job recorded as built always has its wheel, a failed one its
/// error, so no reader checks for a "built" job without a wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Built {
        wheel_filename: String,
        wheel_sha256: Sha256,
    },
    Failed {
        error: String,
    },
}

impl JobStatus {
    /// The status column's word, and the `status` of a job's document.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Built { .. } => "built",
            Self::Failed { .. } => "failed",
        }
    }

    pub fn is_built(&self) -> bool {
        matches!(self, Self::Built { .. })
    }

    /// A built job's wheel: its filename and sha256.
    pub fn wheel(&self) -> Option<(&String, &Sha256)> {
        match self {
            Self::Built {
                wheel_filename,
                wheel_sha256,
            } => Some((wheel_filename, wheel_sha256)),
            Self::Failed { .. } => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Failed { error } => Some(error),
            Self::Built { .. } => None,
        }
    }

    /// A status from its flat fields (a CI result document), refused when they disagree: a
    /// document from a CI machine is data, and "built" without a wheel is no build.
    fn from_fields(
        word: &str,
        wheel: (Option<String>, Option<Sha256>),
        error: Option<String>,
    ) -> Result<Self, String> {
        match (word, wheel, error) {
            ("built", (Some(wheel_filename), Some(wheel_sha256)), None) => Ok(Self::Built {
                wheel_filename,
                wheel_sha256,
            }),
            ("built", ..) => Err(
                "a job whose status is `built` has a wheel_filename and a wheel_sha256, and no error"
                    .into(),
            ),
            ("failed", (None, None), error) => Ok(Self::Failed {
                error: error.unwrap_or_else(|| NO_ERROR.into()),
            }),
            ("failed", ..) => Err("a job whose status is `failed` names no wheel".into()),
            (other, ..) => Err(format!("unknown job status `{other}`")),
        }
    }

    /// A status from a row of the store. Rows written before the type said so may be "built"
    /// with no wheel (a merge of a result without one): that job has nothing to reuse or
    /// compare, so it reads as failed, saying why.
    fn from_row(
        word: &str,
        wheel: (Option<String>, Option<Sha256>),
        error: Option<String>,
    ) -> Result<Self, String> {
        match (word, wheel) {
            ("built", (Some(wheel_filename), Some(wheel_sha256))) => Ok(Self::Built {
                wheel_filename,
                wheel_sha256,
            }),
            ("built", _) => Ok(Self::Failed {
                error:
                    "recorded as built, but without a wheel (by an older rewheel); build it again"
                        .into(),
            }),
            ("failed", _) => Ok(Self::Failed {
                error: error.unwrap_or_else(|| NO_ERROR.into()),
            }),
            (other, _) => Err(format!("unknown status `{other}`")),
        }
    }
}

/// The error of a failed job whose row or document holds none.
const NO_ERROR: &str = "(no error was recorded)";

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Built,
    Failed,
    Interrupted,
    /// Stopped before any build by a dependency cycle.
    Cycle,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
        impl rusqlite::types::FromSql for $t {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                match value.as_str()? {
                    $($s => Ok(Self::$v),)*
                    other => Err(rusqlite::types::FromSqlError::Other(
                        format!("unknown status `{other}`").into(),
                    )),
                }
            }
        }
    };
}

text_enum!(RunStatus {
    Running => "running",
    Built => "built",
    Failed => "failed",
    Interrupted => "interrupted",
    Cycle => "cycle",
});

impl rusqlite::types::ToSql for CellId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for CellId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        CellId::new(value.as_str()?).map_err(|err| rusqlite::types::FromSqlError::Other(err.into()))
    }
}

// A store's rows are read back as checked as any input: a damaged or hand-edited row that
// names no blob or no run is refused where it is read, not followed as a path.
impl rusqlite::types::ToSql for Sha256 {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for Sha256 {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Sha256::parse(value.as_str()?)
            .map_err(|err| rusqlite::types::FromSqlError::Other(err.into()))
    }
}

impl rusqlite::types::ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for RunId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        RunId::parse(value.as_str()?)
            .map_err(|err| rusqlite::types::FromSqlError::Other(err.into()))
    }
}

pub struct Store {
    root: PathBuf,
    db: Connection,
}

/// What became of one job. The store's row (`JobRecord`) and the CI result document
/// (`ci::plan_doc::JobResult`) are both this, plus where each keeps the log. Its document is
/// flat (`status`, `wheel_filename`, `wheel_sha256`, `error` side by side), as CI result
/// documents have always been.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(into = "OutcomeDoc", try_from = "OutcomeDoc")]
pub struct JobOutcome {
    pub cell: CellId,
    pub name: String,
    pub version: String,
    /// 0 for an ordinary build; 1..=3 for the stages of a bootstrap build.
    pub stage: u32,
    pub status: JobStatus,
    pub fingerprint: String,
    pub seconds: f64,
}

/// A job's outcome as its document spells it: the contract of CI result documents.
#[derive(Serialize, serde::Deserialize)]
struct OutcomeDoc {
    cell: CellId,
    name: String,
    version: String,
    stage: u32,
    status: String,
    wheel_filename: Option<String>,
    wheel_sha256: Option<String>,
    fingerprint: String,
    seconds: f64,
    error: Option<String>,
}

impl From<JobOutcome> for OutcomeDoc {
    fn from(o: JobOutcome) -> Self {
        let status = o.status.as_str().to_string();
        let (wheel_filename, wheel_sha256, error) = match o.status {
            JobStatus::Built {
                wheel_filename,
                wheel_sha256,
            } => (Some(wheel_filename), Some(wheel_sha256.into()), None),
            JobStatus::Failed { error } => (None, None, Some(error)),
        };
        Self {
            cell: o.cell,
            name: o.name,
            version: o.version,
            stage: o.stage,
            status,
            wheel_filename,
            wheel_sha256,
            fingerprint: o.fingerprint,
            seconds: o.seconds,
            error,
        }
    }
}

impl TryFrom<OutcomeDoc> for JobOutcome {
    type Error = String;
    fn try_from(d: OutcomeDoc) -> Result<Self, String> {
        // Parsed here rather than by its type so the refusal names the field.
        let wheel_sha256 = d
            .wheel_sha256
            .map(|sha| Sha256::parse(&sha))
            .transpose()
            .map_err(|err| format!("wheel_sha256: {err}"))?;
        Ok(Self {
            status: JobStatus::from_fields(&d.status, (d.wheel_filename, wheel_sha256), d.error)?,
            cell: d.cell,
            name: d.name,
            version: d.version,
            stage: d.stage,
            fingerprint: d.fingerprint,
            seconds: d.seconds,
        })
    }
}

impl JobOutcome {
    /// A job that built `wheel_filename` with these bytes' `wheel_sha256`.
    pub fn built(
        job: JobIdentity,
        fingerprint: String,
        seconds: f64,
        (wheel_filename, wheel_sha256): (String, Sha256),
    ) -> Self {
        Self::of(
            job,
            fingerprint,
            seconds,
            JobStatus::Built {
                wheel_filename,
                wheel_sha256,
            },
        )
    }

    /// A job that failed, and why.
    pub fn failed(job: JobIdentity, fingerprint: String, seconds: f64, error: String) -> Self {
        Self::of(job, fingerprint, seconds, JobStatus::Failed { error })
    }

    fn of(job: JobIdentity, fingerprint: String, seconds: f64, status: JobStatus) -> Self {
        Self {
            cell: job.cell,
            name: job.name,
            version: job.version,
            stage: job.stage,
            status,
            fingerprint,
            seconds,
        }
    }

    /// A built job's wheel: its filename and sha256.
    pub fn wheel(&self) -> Option<(&String, &Sha256)> {
        self.status.wheel()
    }

    pub fn fingerprint_sha256(&self) -> Sha256 {
        crate::fsutil::sha256_hex(self.fingerprint.as_bytes())
    }
}

/// Which job: cell, package, version and bootstrap stage.
#[derive(Debug, Clone)]
pub struct JobIdentity {
    pub cell: CellId,
    pub name: String,
    pub version: String,
    pub stage: u32,
}

/// A job's row in the store: its outcome, the run it belongs to, and its log's blob.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub run_id: RunId,
    #[serde(flatten)]
    pub outcome: JobOutcome,
    pub log_sha256: Option<Sha256>,
    pub fingerprint_sha256: Sha256,
    /// The run whose job this one reused (same fingerprint), when it was not built again.
    pub reused_from: Option<RunId>,
}

impl JobRecord {
    pub fn new(run_id: &RunId, outcome: JobOutcome, log_sha256: Option<Sha256>) -> Self {
        Self {
            run_id: run_id.clone(),
            fingerprint_sha256: outcome.fingerprint_sha256(),
            outcome,
            log_sha256,
            reused_from: None,
        }
    }

    /// This finished job, taken over by `run_id` without building it again.
    pub fn reused_by(&self, run_id: &RunId) -> Self {
        let mut record = self.clone();
        record.reused_from = Some(self.reused_from.clone().unwrap_or(self.run_id.clone()));
        record.run_id = run_id.clone();
        record
    }
}

impl std::ops::Deref for JobRecord {
    type Target = JobOutcome;
    fn deref(&self) -> &JobOutcome {
        &self.outcome
    }
}

/// How many jobs a run has, built and reused: what `runs list` says of it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobCounts {
    pub jobs: usize,
    pub built: usize,
    pub reused: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub started: String,
    pub finished: Option<String>,
    pub status: RunStatus,
    /// The command line, for people (`runs list`, `runs show`); never parsed again.
    pub argv: Vec<String>,
    /// The run's settings document (versioned JSON), which `--resume` reads back; `None` for
    /// runs recorded before there was one, and for runs nothing resumes (a merge). Its stage
    /// reads it (`build::record`): the store only keeps it.
    #[serde(skip)]
    pub settings: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    argv TEXT NOT NULL,
    settings TEXT
);
-- Ids of runs `runs gc` removed: never given out again, since other runs' rows name them
-- (`reused_from`) and a recycled id would make them lie.
CREATE TABLE IF NOT EXISTS collected_runs (id TEXT PRIMARY KEY);
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
CREATE INDEX IF NOT EXISTS jobs_by_fingerprint ON jobs (fingerprint_sha256, status);
-- The scheduler asks each job's last build time (`last_seconds`): without this, a table scan
-- per job, which grew with the store until it was a fifth of a warm run.
CREATE INDEX IF NOT EXISTS jobs_by_package ON jobs (cell, name, version);
";

/// The store's database, in its root folder.
const DATABASE: &str = "runs.sqlite3";

/// Make a new store's database when there is none: made whole under a temporary name, then
/// given its name only if that is still free, so no process ever opens a half-made store and
/// an existing file (even an empty one) is never written over.
fn create_if_absent(root: &Path, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    // Rows not yet copied into the database live in its write-ahead log: a log without its
    // database is a store whose main file was lost, not a store that never was.
    let wal = root.join(format!("{DATABASE}-wal"));
    if std::fs::symlink_metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            why: format!(
                "it is missing, but its write-ahead log {} is there (the store's latest rows)",
                wal.display()
            ),
        });
    }
    let fresh = tempfile::Builder::new()
        .prefix(".runs.sqlite3.new-")
        .tempfile_in(root)
        .map_err(io)?;
    let sql = |source| StoreError::Sql {
        path: fresh.path().to_path_buf(),
        source,
    };
    // Readable like a database SQLite makes itself (temporary files are private).
    fresh
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    let db = Connection::open(fresh.path()).map_err(sql)?;
    init(&db, root).map_err(sql)?;
    // Closing the only connection moves the write-ahead log into the file and removes it.
    db.close().map_err(|(_, err)| sql(err))?;
    match std::fs::hard_link(fresh.path(), path) {
        // Another process made the store first: its database is the store.
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(io(err)),
        _ => Ok(()),
    }
}

/// Open the database that is there, never creating one.
fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    })
}

/// A store's database has its table of runs; SQLite reads an empty file as an empty database,
/// and writing the schema into it would pass off a lost store as a new one.
fn recognise(db: &Connection, path: &Path) -> Result<(), StoreError> {
    let unreadable = |why: String| StoreError::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let tables: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
            [],
            |row| row.get(0),
        )
        .map_err(|err| match err.sqlite_error_code() {
            // Another process holds it: a store in use, not a damaged one.
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Sql {
                    path: path.to_path_buf(),
                    source: err,
                }
            }
            _ => unreadable(format!("it cannot be read as a database ({err})")),
        })?;
    if tables > 0 {
        return Ok(());
    }
    let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    Err(unreadable(if empty {
        "it is empty (0 bytes), so the store's runs are not in it".into()
    } else {
        "it is a database, but not a rewheel store (it has no table of runs)".into()
    }))
}

/// WAL, the schema, and the migrations of older stores, in one write transaction: several
/// processes opening a new or old store at once take turns instead of racing to alter it.
fn init(db: &Connection, root: &Path) -> rusqlite::Result<()> {
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch("BEGIN IMMEDIATE")?;
    db.execute_batch(SCHEMA)?;
    // Stores made before the job cache lack the column that says a job was reused.
    if !has_column(db, "jobs", "reused_from")? {
        db.execute_batch("ALTER TABLE jobs ADD COLUMN reused_from TEXT")?;
    }
    // Stores made before runs kept their settings: their runs have only a command line, and
    // resuming one says so (`build::record`).
    if !has_column(db, "runs", "settings")? {
        db.execute_batch("ALTER TABLE runs ADD COLUMN settings TEXT")?;
    }
    // `runs list` counts each run's jobs from this index alone: reading the rows (a
    // fingerprint each) took 0.2 s at 100,000 of them.
    db.execute_batch(
        "CREATE INDEX IF NOT EXISTS jobs_by_run ON jobs (run_id, status, reused_from)",
    )?;
    // The blobs and their sizes, for `runs list`, which looked at every blob file (0.9 s at
    // 100,000 blobs). A store from before has its blobs counted once, here.
    let has_tally = db.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'blobs'",
        [],
        |row| row.get::<_, i64>(0),
    )? > 0;
    if !has_tally {
        db.execute_batch("CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, bytes INTEGER NOT NULL)")?;
        tally::tally(db, &root.join("blobs"))?;
    }
    db.execute_batch("COMMIT")
}

fn has_column(db: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    Ok(db.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |row| row.get::<_, i64>(0),
    )? > 0)
}

impl Store {
    /// Where the store lives unless told otherwise: `$XDG_DATA_HOME/rewheel`.
    pub fn default_root() -> Option<PathBuf> {
        dirs::data_dir().map(|d| d.join("rewheel"))
    }

    /// Open the store at `root`, creating it only when it does not exist yet: a database that
    /// is there but unreadable (empty, damaged, not a store) is refused and never replaced, so
    /// a store's history is not lost to a new, empty one.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let path = root.join(DATABASE);
        create_if_absent(root, &path)?;
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let db = open_existing(&path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        recognise(&db, &path)?;
        // Switching a new database to WAL takes an exclusive lock and does not wait for a
        // busy one: when several processes open a fresh store at once, the losers retry.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match init(&db, root) {
                Ok(()) => break,
                Err(err)
                    if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    let _ = db.execute_batch("ROLLBACK");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => return Err(sql(err)),
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            db,
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.root.join(DATABASE),
            source,
        }
    }

    /// Keep bytes under their sha256; returns the digest. A blob already there is kept only
    /// if its content still matches its name; a damaged one is replaced.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Sha256, StoreError> {
        let sha = crate::fsutil::sha256_hex(bytes);
        let path = self.blob_path(&sha);
        let intact = match hash_file(&path) {
            Ok(actual) => actual == sha,
            Err(_) => false,
        };
        if !intact {
            write_atomic(&path, bytes).map_err(|source| StoreError::Io { path, source })?;
        }
        self.db
            .prepare_cached("INSERT OR REPLACE INTO blobs (sha256, bytes) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute(params![sha, bytes.len() as i64]))
            .map_err(self.sql())?;
        Ok(sha)
    }

    /// A blob's bytes, checked against its name: the store never hands over a changed byte.
    pub fn read_blob(&self, sha256: &Sha256) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(sha256);
        let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = crate::fsutil::sha256_hex(&bytes);
        if actual != *sha256 {
            return Err(StoreError::Corrupt { path, actual });
        }
        Ok(bytes)
    }

    /// Check a blob in place without keeping its bytes.
    pub fn verify_blob(&self, sha256: &Sha256) -> Result<(), StoreError> {
        let path = self.blob_path(sha256);
        let actual = hash_file(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        if actual != *sha256 {
            return Err(StoreError::Corrupt { path, actual });
        }
        Ok(())
    }

    /// fsck: job rows whose blobs are missing or damaged, and runs still marked running;
    /// `resume` says how a stranded run continues (its stage reads the run's settings).
    pub fn verify(&self, resume: impl Fn(&RunId) -> String) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        let mut checked = std::collections::HashMap::new();
        for run in self.runs()? {
            // A run a live process still builds is running, not stranded.
            if run.status == RunStatus::Running && self.run_holder(&run.id).is_none() {
                problems.push(Problem {
                    run: run.id.clone(),
                    job: None,
                    what: format!(
                        "marked running, but no rewheel is finishing it (killed?); {}",
                        resume(&run.id)
                    ),
                });
            }
            for job in self.jobs(&run.id)? {
                let wheel = job.wheel().map(|(_, sha)| sha);
                for (kind, sha) in [("wheel", wheel), ("log", job.log_sha256.as_ref())] {
                    let Some(sha) = sha else { continue };
                    let verdict = checked
                        .entry(sha.clone())
                        .or_insert_with(|| match self.verify_blob(sha) {
                            Ok(()) => None,
                            Err(StoreError::Io { source, .. })
                                if source.kind() == std::io::ErrorKind::NotFound =>
                            {
                                Some("is missing".to_string())
                            }
                            Err(StoreError::Corrupt { actual, .. }) => {
                                Some(format!("does not match its name (content sha256 {actual})"))
                            }
                            Err(other) => Some(other.to_string()),
                        })
                        .clone();
                    if let Some(what) = verdict {
                        problems.push(Problem {
                            run: run.id.clone(),
                            job: Some(format!(
                                "{} {} {} stage {}",
                                job.cell, job.name, job.version, job.stage
                            )),
                            what: format!("{kind} blob {} {what}", &sha[..16]),
                        });
                    }
                }
            }
        }
        Ok(problems)
    }

    pub fn blob_path(&self, sha256: &Sha256) -> PathBuf {
        self.root.join("blobs").join(&sha256[..2]).join(sha256)
    }

    /// A new run with only its command line: one nothing resumes (a merge).
    pub fn new_run(&self, argv: &[String]) -> Result<RunId, StoreError> {
        self.new_run_with(argv, None)
    }

    /// A new run, with its command line (for people) and its settings document (for
    /// `--resume`).
    pub fn new_run_with(
        &self,
        argv: &[String],
        settings: Option<&str>,
    ) -> Result<RunId, StoreError> {
        let now = jiff::Timestamp::now();
        // Two runs in one second (also from two processes) get a suffix: the insert itself
        // decides, so there is no window between looking and taking.
        for n in 1.. {
            let candidate = RunId::started(now, n);
            let inserted = self
                .db
                .execute(
                    "INSERT OR IGNORE INTO runs (id, started, status, argv, settings)
                     SELECT ?1, ?2, 'running', ?3, ?4
                     WHERE NOT EXISTS (SELECT 1 FROM collected_runs WHERE id = ?1)",
                    params![
                        candidate,
                        now.to_string(),
                        serde_json::to_string(argv).unwrap(),
                        settings
                    ],
                )
                .map_err(self.sql())?;
            if inserted == 1 {
                return Ok(candidate);
            }
        }
        unreachable!("some suffix is free")
    }

    /// Forget a run that never got a job (its input was refused before any): `runs list`
    /// shows runs that did something. A run with jobs is kept; the answer says which happened.
    pub fn drop_empty_run(&self, id: &RunId) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                "DELETE FROM runs WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = ?1)",
                params![id],
            )
            .map_err(self.sql())?;
        Ok(deleted == 1)
    }

    pub fn finish_run(&self, id: &RunId, status: RunStatus) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE runs SET status = ?2, finished = ?3 WHERE id = ?1",
                params![id, status, jiff::Timestamp::now().to_string()],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    pub fn run(&self, id: &RunId) -> Result<Option<RunRecord>, StoreError> {
        self.db
            .query_row(
                "SELECT id, started, finished, status, argv, settings FROM runs WHERE id = ?1",
                params![id],
                run_from_row,
            )
            .optional()
            .map_err(self.sql())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self
            .db
            .prepare(
                "SELECT id, started, finished, status, argv, settings FROM runs ORDER BY started",
            )
            .map_err(self.sql())?;
        let rows = stmt.query_map([], run_from_row).map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Every run, oldest first, with its job counts.
    pub fn runs_counted(&self) -> Result<Vec<(RunRecord, JobCounts)>, StoreError> {
        let mut counts: std::collections::HashMap<String, JobCounts> =
            std::collections::HashMap::new();
        let mut stmt = self
            .db
            .prepare(
                "SELECT run_id, COUNT(*), SUM(status = 'built'), SUM(reused_from IS NOT NULL)
                 FROM jobs GROUP BY run_id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |row| {
                let count = |i| row.get::<_, i64>(i).map(|n| n as usize);
                Ok((
                    row.get::<_, String>(0)?,
                    JobCounts {
                        jobs: count(1)?,
                        built: count(2)?,
                        reused: count(3)?,
                    },
                ))
            })
            .map_err(self.sql())?;
        for row in rows {
            let (run, c) = row.map_err(self.sql())?;
            counts.insert(run, c);
        }
        Ok(self
            .runs()?
            .into_iter()
            .map(|run| {
                let c = counts.get(run.id.as_str()).copied().unwrap_or_default();
                (run, c)
            })
            .collect())
    }

    pub fn record_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO jobs (run_id, cell, name, version, stage, status, wheel_filename,
                 wheel_sha256, log_sha256, fingerprint, fingerprint_sha256, error, seconds, reused_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    job.run_id,
                    job.cell,
                    job.name,
                    job.version,
                    job.stage,
                    job.status.as_str(),
                    job.wheel().map(|(filename, _)| filename),
                    job.wheel().map(|(_, sha)| sha),
                    job.log_sha256,
                    job.fingerprint,
                    job.fingerprint_sha256,
                    job.status.error(),
                    job.seconds,
                    job.reused_from
                ],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    pub fn jobs(&self, run_id: &RunId) -> Result<Vec<JobRecord>, StoreError> {
        self.select_jobs("WHERE run_id = ?1 ORDER BY cell, rowid", params![run_id])
    }

    /// The newest finished job anywhere in the store whose inputs had this fingerprint: the
    /// job cache. Its blobs are the caller's to verify before use.
    pub fn find_built(&self, fingerprint_sha256: &Sha256) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .select_jobs(
                "WHERE fingerprint_sha256 = ?1 AND status = 'built' AND wheel_sha256 IS NOT NULL
                 ORDER BY rowid DESC LIMIT 1",
                params![fingerprint_sha256],
            )?
            .pop())
    }

    /// Seconds the newest finished build of this package took in this cell, for scheduling.
    pub fn last_seconds(&self, cell: &str, name: &str, version: &str) -> Option<f64> {
        self.db
            .query_row(
                "SELECT seconds FROM jobs WHERE cell = ?1 AND name = ?2 AND version = ?3
                 AND status = 'built' AND reused_from IS NULL ORDER BY rowid DESC LIMIT 1",
                params![cell, name, version],
                |row| row.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }

    fn select_jobs(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let mut stmt = self
            .db
            .prepare(&format!(
                "SELECT run_id, cell, name, version, stage, status, wheel_filename, wheel_sha256,
                 log_sha256, fingerprint, fingerprint_sha256, error, seconds, reused_from
                 FROM jobs {filter}"
            ))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(args, |row| {
                Ok(JobRecord {
                    run_id: row.get(0)?,
                    outcome: JobOutcome {
                        cell: row.get(1)?,
                        name: row.get(2)?,
                        version: row.get(3)?,
                        stage: row.get(4)?,
                        status: JobStatus::from_row(
                            &row.get::<_, String>(5)?,
                            (row.get(6)?, row.get(7)?),
                            row.get(11)?,
                        )
                        .map_err(|why| {
                            rusqlite::Error::FromSqlConversionFailure(
                                5,
                                rusqlite::types::Type::Text,
                                why.into(),
                            )
                        })?,
                        fingerprint: row.get(9)?,
                        seconds: row.get(12)?,
                    },
                    log_sha256: row.get(8)?,
                    fingerprint_sha256: row.get(10)?,
                    reused_from: row.get(13)?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

/// Something `rewheel runs verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub run: RunId,
    pub job: Option<String>,
    pub what: String,
}

fn hash_file(path: &Path) -> std::io::Result<Sha256> {
    crate::fsutil::sha256_reader(std::fs::File::open(path)?)
}

fn run_from_row(row: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let argv: String = row.get(4)?;
    Ok(RunRecord {
        id: row.get(0)?,
        started: row.get(1)?,
        finished: row.get(2)?,
        status: row.get(3)?,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
        settings: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_blob_is_refused_on_read_and_replaced_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sha = store.put_blob(b"the real wheel").unwrap();
        std::fs::write(store.blob_path(&sha), b"tampered").unwrap();
        let err = store.read_blob(&sha).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        store.put_blob(b"the real wheel").unwrap();
        assert_eq!(store.read_blob(&sha).unwrap(), b"the real wheel");
    }

    #[test]
    fn runs_started_in_the_same_second_by_two_processes_get_their_own_ids() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<RunId> = (0..4)
            .map(|_| {
                let root = dir.path().to_path_buf();
                std::thread::spawn(move || Store::open(&root).unwrap().new_run(&[]).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4, "{ids:?}");
    }

    #[test]
    fn a_store_whose_database_was_lost_but_not_its_log_is_not_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("runs.sqlite3-wal");
        std::fs::write(&wal, b"rows not yet in the database").unwrap();
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("write-ahead log"), "{err}");
        assert!(!dir.path().join("runs.sqlite3").exists());
        assert_eq!(
            std::fs::read(&wal).unwrap(),
            b"rows not yet in the database"
        );
    }

    fn identity() -> JobIdentity {
        JobIdentity {
            cell: CellId::new("cp311").unwrap(),
            name: "six".into(),
            version: "1.16.0".into(),
            stage: 0,
        }
    }

    fn wheel_sha() -> Sha256 {
        Sha256::of(b"the wheel")
    }

    #[test]
    fn a_job_outcome_keeps_the_flat_document_ci_results_have_always_had() {
        let built = JobOutcome::built(
            identity(),
            "f".into(),
            1.0,
            ("six-1.16.0-py3-none-any.whl".into(), wheel_sha()),
        );
        assert_eq!(
            serde_json::to_value(&built).unwrap(),
            serde_json::json!({
                "cell": "cp311", "name": "six", "version": "1.16.0", "stage": 0,
                "status": "built", "wheel_filename": "six-1.16.0-py3-none-any.whl",
                "wheel_sha256": wheel_sha().as_str(), "fingerprint": "f", "seconds": 1.0,
                "error": null
            })
        );
        let failed = JobOutcome::failed(identity(), "f".into(), 1.0, "boom".into());
        let doc = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            (&doc["status"], &doc["wheel_filename"], &doc["error"]),
            (&"failed".into(), &serde_json::Value::Null, &"boom".into())
        );
        let back: JobOutcome = serde_json::from_value(doc).unwrap();
        assert_eq!(back.status.error(), Some("boom"));
    }

    #[test]
    fn a_document_that_says_built_without_a_wheel_is_refused() {
        let mut doc = serde_json::to_value(JobOutcome::built(
            identity(),
            "f".into(),
            1.0,
            ("six-1.16.0-py3-none-any.whl".into(), wheel_sha()),
        ))
        .unwrap();
        doc["wheel_sha256"] = serde_json::Value::Null;
        let err = serde_json::from_value::<JobOutcome>(doc.clone()).unwrap_err();
        assert!(err.to_string().contains("wheel_sha256"), "{err}");
        doc["status"] = "failed".into();
        doc["error"] = "boom".into();
        let err = serde_json::from_value::<JobOutcome>(doc).unwrap_err();
        assert!(err.to_string().contains("names no wheel"), "{err}");
    }

    #[test]
    fn a_document_whose_wheel_sha256_is_not_one_is_refused_by_field() {
        let mut doc = serde_json::to_value(JobOutcome::built(
            identity(),
            "f".into(),
            1.0,
            ("six-1.16.0-py3-none-any.whl".into(), wheel_sha()),
        ))
        .unwrap();
        for bad in ["00", "../../etc/passwd", &wheel_sha().to_uppercase()] {
            doc["wheel_sha256"] = bad.into();
            let err = serde_json::from_value::<JobOutcome>(doc.clone()).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("wheel_sha256: sha256 `{bad}` is not 64")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_row_whose_hash_or_run_id_is_not_one_is_refused_where_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = store.new_run(&[]).unwrap();
        store
            .db
            .execute(
                "INSERT INTO jobs (run_id, cell, name, version, stage, status, wheel_filename,
                 wheel_sha256, fingerprint, fingerprint_sha256, seconds) VALUES (?1, 'cp311',
                 'six', '1.16.0', 0, 'built', 'six.whl', '../../x', 'f', ?2, 1.0)",
                params![run, Sha256::of(b"f")],
            )
            .unwrap();
        let err = store.jobs(&run).unwrap_err();
        assert!(matches!(err, StoreError::Sql { .. }), "{err}");
        assert!(
            err.to_string().contains("sha256 `../../x` is not 64"),
            "{err}"
        );
        store
            .db
            .execute(
                "INSERT INTO runs (id, started, status, argv) VALUES ('../x', 'then', 'built', '[]')",
                [],
            )
            .unwrap();
        let err = store.runs().unwrap_err();
        assert!(err.to_string().contains("`../x` is not a run id"), "{err}");
    }

    #[test]
    fn an_old_row_built_without_a_wheel_reads_as_failed_and_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let run = store.new_run(&[]).unwrap();
        store
            .db
            .execute(
                "INSERT INTO jobs (run_id, cell, name, version, stage, status, fingerprint,
                 fingerprint_sha256, seconds) VALUES (?1, 'cp311', 'six', '1.16.0', 0, 'built',
                 'f', ?2, 1.0)",
                params![run, Sha256::of(b"f")],
            )
            .unwrap();
        let jobs = store.jobs(&run).unwrap();
        assert!(!jobs[0].status.is_built());
        assert!(
            jobs[0].status.error().unwrap().contains("without a wheel"),
            "{:?}",
            jobs[0].status
        );
        assert!(store.find_built(&Sha256::of(b"f")).unwrap().is_none());
    }

    #[test]
    fn a_store_from_before_run_settings_gains_the_column_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Connection::open(dir.path().join(DATABASE)).unwrap();
        db.execute_batch(
            "CREATE TABLE runs (id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT,
             status TEXT NOT NULL, argv TEXT NOT NULL);
             INSERT INTO runs VALUES ('20250101-000000', 'then', NULL, 'interrupted',
             '[\"rewheel\",\"build\",\"six==1.16.0\"]');",
        )
        .unwrap();
        drop(db);
        let store = Store::open(dir.path()).unwrap();
        let old = RunId::parse("20250101-000000").unwrap();
        let old = store.run(&old).unwrap().unwrap();
        assert_eq!(old.argv, ["rewheel", "build", "six==1.16.0"]);
        assert_eq!(old.settings, None);
        let new = store.new_run_with(&[], Some("{}")).unwrap();
        assert_eq!(
            store.run(&new).unwrap().unwrap().settings.as_deref(),
            Some("{}")
        );
    }

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
            .record_job(&JobRecord::new(
                &run,
                JobOutcome::built(
                    JobIdentity {
                        cell: CellId::new("cp311").unwrap(),
                        name: "six".into(),
                        version: "1.16.0".into(),
                        stage: 0,
                    },
                    "{}".into(),
                    1.5,
                    ("six-1.16.0-py2.py3-none-any.whl".into(), sha),
                ),
                None,
            ))
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.jobs(&run).unwrap().len(), 1);
        assert_eq!(store.runs().unwrap()[0].argv, ["build", "six==1.16.0"]);
    }

    #[test]
    fn runs_are_counted_as_their_rows_say() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let job = |name: &str| JobIdentity {
            cell: CellId::new("cp311").unwrap(),
            name: name.into(),
            version: "1.0".into(),
            stage: 0,
        };
        let first = store.new_run(&[]).unwrap();
        let built = |name: &str| {
            JobOutcome::built(
                job(name),
                name.into(),
                1.0,
                (
                    format!("{name}-1.0-py3-none-any.whl"),
                    Sha256::of(name.as_bytes()),
                ),
            )
        };
        for name in ["a", "b"] {
            store
                .record_job(&JobRecord::new(&first, built(name), None))
                .unwrap();
        }
        store
            .record_job(&JobRecord::new(
                &first,
                JobOutcome::failed(job("c"), "c".into(), 1.0, "no".into()),
                None,
            ))
            .unwrap();
        let second = store.new_run(&[]).unwrap();
        let reused = JobRecord::new(&first, built("a"), None).reused_by(&second);
        store.record_job(&reused).unwrap();
        store
            .record_job(&JobRecord::new(&second, built("b"), None))
            .unwrap();
        let empty = store.new_run(&[]).unwrap();
        let counted: Vec<(RunId, JobCounts)> = store
            .runs_counted()
            .unwrap()
            .into_iter()
            .map(|(run, counts)| (run.id, counts))
            .collect();
        let counts = |jobs, built, reused| JobCounts {
            jobs,
            built,
            reused,
        };
        assert_eq!(
            counted,
            [
                (first, counts(3, 2, 0)),
                (second, counts(2, 2, 1)),
                (empty, counts(0, 0, 0))
            ]
        );
    }
}
