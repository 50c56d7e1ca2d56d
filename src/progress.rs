//! Progress for long work: a spinner on a terminal, nothing in pipes (logs go through tracing);
//! for builds, the `Events` a run reports and `JobDisplay`, which shows them: a bar per cell
//! and a line per running job on a terminal, plain lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// What a run reports as it goes, one typed event per step of a job; `JobDisplay` shows
/// them, tests stay quiet or count them.
pub trait Events: Send + Sync {
    fn on(&self, event: JobEvent<'_>);
}

/// One step of a job's life, as the reporter hears it.
#[derive(Debug, Clone, Copy)]
pub enum JobEvent<'a> {
    Started {
        cell: &'a str,
        label: &'a str,
        /// Only its hook is asked (a plan's probe).
        probe: bool,
    },
    Finished {
        cell: &'a str,
        label: &'a str,
        seconds: f64,
        ending: Ending<'a>,
    },
}

/// How a job's turn ended.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    Built,
    /// A finished job of this run (`from` is `None`: the interrupted run itself) or of
    /// another, with the same inputs.
    Reused {
        from: Option<&'a crate::ids::RunId>,
    },
    /// Its backend named requirements that are not installed: they are built first and the
    /// job runs again.
    Asked {
        requirements: &'a [String],
    },
    /// A plan's probe asked its hook; `requirements` is what it added to the graph.
    Probed {
        requirements: &'a [String],
    },
    Failed {
        why: &'a str,
    },
}

impl Ending<'_> {
    fn verb(&self) -> &'static str {
        match self {
            Ending::Failed { .. } => "FAILED",
            Ending::Probed { .. } => "probed",
            Ending::Built | Ending::Reused { .. } | Ending::Asked { .. } => "built",
        }
    }

    /// What follows the job's line, in the words users grep logs for.
    fn note(&self) -> String {
        match self {
            Ending::Built => String::new(),
            Ending::Reused { from: None } => ": reused from the interrupted run".into(),
            Ending::Reused { from: Some(run) } => format!(": reused from run {run}"),
            Ending::Asked { requirements } => format!(
                ": its backend asks for {requirements:?}: resolving and building them first"
            ),
            Ending::Probed { requirements: [] } => ": its hook asks for nothing new".into(),
            Ending::Probed { requirements } => {
                format!(": its backend asks for {requirements:?}: building them first")
            }
            Ending::Failed { why } => format!(": {why}"),
        }
    }
}

/// `--quiet`: no spinner, no bars, no progress lines; results and errors only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn stderr(enabled: bool) -> Self {
        if !enabled || quiet() || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    pub fn hidden() -> Self {
        Self { bar: None }
    }

    pub fn message(&self, message: String) {
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => tracing::debug!("{message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A bar per cell and a line per running job on a terminal; plain lines otherwise.
pub struct JobDisplay {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    jobs: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl JobDisplay {
    pub fn new(cells: &[String], counts: &HashMap<String, u64>) -> Self {
        if quiet() || !std::io::stderr().is_terminal() {
            return Self {
                multi: None,
                bars: HashMap::new(),
                jobs: Mutex::default(),
            };
        }
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len}")
            .expect("valid template");
        let bars = cells
            .iter()
            .map(|cell| {
                let bar = multi.add(ProgressBar::new(counts.get(cell).copied().unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(cell.clone());
                (cell.clone(), bar)
            })
            .collect();
        Self {
            multi: Some(multi),
            bars,
            jobs: Mutex::default(),
        }
    }

    pub fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

impl Events for JobDisplay {
    fn on(&self, event: JobEvent<'_>) {
        match event {
            JobEvent::Started { cell, label, probe } => self.started(cell, label, probe),
            JobEvent::Finished {
                cell,
                label,
                seconds,
                ending,
            } => self.finished(cell, label, seconds, ending),
        }
    }
}

impl JobDisplay {
    fn started(&self, cell: &str, label: &str, probe: bool) {
        match &self.multi {
            Some(multi) => {
                let spinner = multi.add(ProgressBar::new_spinner());
                spinner.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .expect("valid template"),
                );
                spinner.set_message(format!("[{cell}] {label}"));
                spinner.enable_steady_tick(Duration::from_millis(120));
                self.jobs
                    .lock()
                    .unwrap()
                    .insert((cell.into(), label.into()), spinner);
            }
            None if probe => say(format_args!("[{cell}] asking the hook of {label}")),
            None => say(format_args!("[{cell}] building {label}")),
        }
    }

    fn finished(&self, cell: &str, label: &str, seconds: f64, ending: Ending<'_>) {
        let verb = ending.verb();
        let note = ending.note();
        match &self.multi {
            Some(multi) => {
                if let Some(spinner) = self
                    .jobs
                    .lock()
                    .unwrap()
                    .remove(&(cell.into(), label.into()))
                {
                    spinner.finish_and_clear();
                    multi.remove(&spinner);
                }
                if let Some(bar) = self.bars.get(cell) {
                    bar.inc(1);
                }
                let _ = multi.println(format!("[{cell}] {verb} {label} ({seconds:.1} s){note}"));
            }
            None => say(format_args!(
                "[{cell}] {verb} {label} ({seconds:.1} s){note}"
            )),
        }
    }
}

/// An informational line on stderr, which `--quiet` hides.
pub fn note(line: std::fmt::Arguments<'_>) {
    say(line)
}

/// A progress line on stderr. A reader that went away (`2>&1 | head`) must not stop the build:
/// `eprintln!` would panic on EPIPE in the middle of the jobs, so the line is dropped instead.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if !quiet() {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}
