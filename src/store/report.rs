//! The store as text: a line per run, a run's jobs, what `runs verify` found, sizes.

use super::{JobCounts, JobRecord, Problem, RunRecord};
use std::fmt::Write;

/// `ID  STATUS  built/jobs  (reused)  ARGS`.
pub fn list_line(run: &RunRecord, counts: JobCounts) -> String {
    let JobCounts {
        jobs,
        built,
        reused,
    } = counts;
    let reused = if reused > 0 {
        format!(" ({reused} reused)")
    } else {
        String::new()
    };
    format!(
        "{}  {:<11}  {built}/{jobs} jobs built{reused}  {}",
        run.id,
        run.status,
        run.argv.get(1..).unwrap_or_default().join(" ")
    )
}

/// A run and each of its jobs: status, wheel hash, time, error, where a reused job came from.
pub fn run_text(run: &RunRecord, jobs: &[JobRecord]) -> String {
    let mut text = format!("run {} ({}) started {}\n", run.id, run.status, run.started);
    let _ = writeln!(text, "  {}", run.argv.join(" "));
    for job in jobs {
        let stage = if job.stage > 0 {
            format!(" stage {}", job.stage)
        } else {
            String::new()
        };
        let _ = write!(
            text,
            "  {:<14} {:<7} {} {}{stage}  {}  {:.1} s",
            job.cell,
            job.status,
            job.name,
            job.version,
            job.wheel().map(|(_, s)| &s[..16]).unwrap_or("-"),
            job.seconds
        );
        match &job.reused_from {
            Some(from) => {
                let _ = writeln!(text, "  reused from run {from}");
            }
            None => text.push('\n'),
        }
        if let Some(error) = job.status.error() {
            let _ = writeln!(text, "      {error}");
        }
    }
    text
}

pub fn problems_text(problems: &[Problem]) -> String {
    let mut text = String::new();
    for p in problems {
        let _ = match &p.job {
            Some(job) => writeln!(text, "run {}: {job}: {}", p.run, p.what),
            None => writeln!(text, "run {}: {}", p.run, p.what),
        };
    }
    let _ = writeln!(text, "{} problem(s)", problems.len());
    text
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}
