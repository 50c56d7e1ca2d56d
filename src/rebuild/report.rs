//! What `rebuild` found, as text: the inferences, then "reproduced with recipe R" or the
//! closest attempt with its entry-level differences, or why no attempt built.

use crate::rebuild::search::{Outcome, Rebuilt, describe};
use std::fmt::Write;

/// How a rebuild ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Reproduced,
    /// Built, never identical.
    Differs,
    /// No attempt built.
    Failed,
}

/// A rebuild's exit code: 3 if a wheel did not build, 0 if every one is bit for bit, else 1.
pub fn exit_code(endings: &[Ending]) -> crate::exit::ExitCode {
    use crate::exit::ExitCode;
    if endings.contains(&Ending::Failed) {
        ExitCode::BuildFailed
    } else if endings.iter().all(|e| *e == Ending::Reproduced) {
        ExitCode::Success
    } else {
        ExitCode::NotReproducible
    }
}

pub fn ending(found: &Rebuilt) -> Ending {
    match (found.reproduced(), found.closest()) {
        (Some(_), _) => Ending::Reproduced,
        (None, Some(_)) => Ending::Differs,
        (None, None) => Ending::Failed,
    }
}

pub fn text(found: &Rebuilt, wheel_name: &str) -> String {
    let mut out = String::new();
    for reason in crate::rebuild::infer::guess(&found.observed).reasons {
        let _ = writeln!(out, "inferred: {reason}");
    }
    let cutoff = found.exclude_newer.as_ref();
    if let Some(a) = found.reproduced().or_else(|| found.closest()) {
        let _ = writeln!(
            out,
            "built: {} jobs, the wheel and its build environment (its runtime dependencies are not inputs of its bytes)",
            a.jobs
        );
    }
    if let Some(a) = found.reproduced() {
        let _ = writeln!(
            out,
            "reproduced {wheel_name} bit for bit with recipe: {}",
            describe(&a.guess, cutoff)
        );
    } else if let Some(a) = found.closest() {
        let _ = writeln!(
            out,
            "not reproduced in {} attempts; the closest: {}",
            found.attempts.len(),
            describe(&a.guess, cutoff)
        );
        if let Outcome::Differs(pair) = &a.outcome {
            let report = crate::verify::compare::CompareReport {
                schema_version: crate::verify::compare::SCHEMA_VERSION,
                a: "published".into(),
                b: "rebuilt".into(),
                pairs: vec![(**pair).clone()],
                only_in_a: Vec::new(),
                only_in_b: Vec::new(),
                failed: Vec::new(),
                next: None,
            };
            out.push_str(&crate::verify::report::text(&report));
        }
    } else {
        for (n, a) in found.attempts.iter().enumerate() {
            if let Outcome::Failed(why) = &a.outcome {
                let _ = writeln!(out, "attempt {}: did not build: {why}", n + 1);
            }
        }
    }
    out
}
