//! Every bisection, its probes and its answer, kept in the store's `bisect/` folder.

use super::engine::Settings;
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// Write the record of a bisection under `store_root`; where it went, when it could be written.
pub fn keep(
    store_root: &Path,
    settings: &Settings,
    (good, bad): (Option<String>, Option<String>),
    probes: &[(String, bool)],
    outcome: &anyhow::Result<String>,
) -> Option<PathBuf> {
    let record = serde_json::json!({
        "schema_version": 1,
        "target": settings.target,
        "until": format!("{:?}", settings.until),
        "good": good,
        "bad": bad,
        "probes": probes
            .iter()
            .map(|(label, bad)| serde_json::json!({ "state": label, "bad": bad }))
            .collect::<Vec<_>>(),
        "answer": match outcome {
            Ok(answer) => answer.clone(),
            Err(e) => format!("error: {e}"),
        },
    });
    let path = store_root.join("bisect").join(format!(
        "{}.json",
        Timestamp::now().strftime("%Y%m%d-%H%M%S")
    ));
    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
    crate::fsutil::write_atomic(&path, text.as_bytes())
        .ok()
        .map(|()| path)
}
