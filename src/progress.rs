//! Progress for long work: a spinner on a terminal, nothing in pipes (logs go through tracing);
//! for builds, the `Events` a run reports and `JobDisplay`, which shows them: a bar per cell
//! and a line per running job on a terminal, plain lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// What a build reports as it goes; `JobDisplay` shows it, tests stay quiet.
pub trait Events: Send + Sync {
    fn started(&self, cell: &str, label: &str);
    fn finished(&self, cell: &str, label: &str, ok: bool, seconds: f64, note: &str);
}

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn stderr(enabled: bool) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
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
        if !std::io::stderr().is_terminal() {
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
    fn started(&self, cell: &str, label: &str) {
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
            None => eprintln!("[{cell}] building {label}"),
        }
    }

    fn finished(&self, cell: &str, label: &str, ok: bool, seconds: f64, note: &str) {
        let verb = if ok { "built" } else { "FAILED" };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(": {note}")
        };
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
            None => eprintln!("[{cell}] {verb} {label} ({seconds:.1} s){note}"),
        }
    }
}
