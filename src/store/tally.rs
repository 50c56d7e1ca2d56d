//! The blob files of a store, as they are on disk, and their tally in the database: kept apart
//! from `gc` so that opening a store (which counts a store from before once) and collecting
//! garbage share it without importing each other.

use rusqlite::params;
use std::path::Path;

/// Every blob file under `root` into the tally.
pub(super) fn tally(db: &rusqlite::Connection, root: &Path) -> rusqlite::Result<()> {
    let mut insert = db.prepare("INSERT OR REPLACE INTO blobs (sha256, bytes) VALUES (?1, ?2)")?;
    for (_, name, meta) in blobs(root) {
        insert.execute(params![name, meta.len() as i64])?;
    }
    Ok(())
}

/// Every blob file: `blobs/<2 hex>/<sha256>`.
pub(super) fn blobs(root: &Path) -> Vec<(std::path::PathBuf, String, std::fs::Metadata)> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                out.push((entry.path(), name, meta));
            }
        }
    }
    out
}
