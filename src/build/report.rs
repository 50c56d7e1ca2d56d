//! A build run's summary as text: per cell, what was built (and reused), what failed with
//! the tail of its log, and bootstrap stages that did not reach a fixpoint.

use super::executor::Summary;
use std::fmt::Write;
use std::path::Path;

pub fn text(summary: &Summary, out: &Path) -> String {
    let mut text = String::new();
    let mut cells: Vec<&str> = summary.outcomes.iter().map(|o| o.cell.as_str()).collect();
    cells.dedup();
    cells.sort();
    cells.dedup();
    for cell in cells {
        let of_cell: Vec<_> = summary.outcomes.iter().filter(|o| o.cell == cell).collect();
        let ok = of_cell.iter().filter(|o| o.result.is_ok()).count();
        let reused = of_cell.iter().filter(|o| o.reused).count();
        let _ = writeln!(
            text,
            "{cell}: {ok} built{}, {} failed → {}",
            if reused > 0 {
                format!(" ({reused} reused)")
            } else {
                String::new()
            },
            of_cell.len() - ok,
            out.join(cell).display()
        );
        for o in &of_cell {
            if let Ok((filename, sha)) = &o.result {
                let _ = writeln!(
                    text,
                    "  ok    {:<40} {filename} sha256:{}",
                    o.label,
                    &sha[..16]
                );
            }
        }
        for o in &of_cell {
            if let Err(why) = &o.result {
                let _ = writeln!(text, "  FAIL  {:<40} {why}", o.label);
                if let Some(hint) = &o.hint {
                    let _ = writeln!(text, "        likely cause: {hint}");
                }
                for line in &o.log_tail {
                    let _ = writeln!(text, "        | {line}");
                }
                if let Some(log) = &o.log {
                    let _ = writeln!(text, "        log: {}", log.display());
                }
            }
        }
    }
    for line in &summary.no_fixpoint {
        let _ = writeln!(text, "bootstrap did not reach a fixpoint: {line}");
    }
    text
}

/// What a run that ran out of space says: each full file system, and what to do.
pub fn out_of_space(summary: &Summary, run_id: &crate::ids::RunId) -> String {
    let mut text = String::new();
    for full in &summary.out_of_space {
        let _ = writeln!(text, "error: {full}");
    }
    let _ = writeln!(
        text,
        "hint: free space there, or give --build-path a folder on a larger disk; then `rewheel build --resume {run_id}`"
    );
    text
}
