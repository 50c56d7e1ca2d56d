//! The exit codes, one table for every command: the enum is the only place a number is written;
//! `--help` and README show tables made from it.

use std::sync::LazyLock;

/// Declares the codes once, so the list the tables walk cannot miss one.
macro_rules! exit_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal, $help:literal, $readme:literal;)*) => {
        /// How a command ended, as the process exits.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum ExitCode {
            $($(#[doc = $doc])* $name = $code,)*
        }

        impl ExitCode {
            /// Every code, in the order of the tables.
            pub const ALL: &[ExitCode] = &[$(ExitCode::$name),*];

            /// Its line in `--help`.
            pub const fn help(self) -> &'static str {
                match self {
                    $(ExitCode::$name => $help,)*
                }
            }

            /// Its row in README's table, which has room for examples.
            pub const fn readme(self) -> &'static str {
                match self {
                    $(ExitCode::$name => $readme,)*
                }
            }
        }
    };
}

exit_codes! {
    /// Success; for `check`, every wheel reproducible.
    Success = 0,
    "success (for check: everything reproducible)",
    "success (for `check`: everything reproducible)";
    /// Not reproducible, or a hash differs from what was expected.
    NotReproducible = 1,
    "not reproducible, or a hash differs from --expect",
    "not reproducible, or a hash differs from `--expect`";
    /// Bad usage or input: a requirements line, an unknown package or version, a hash mismatch,
    /// an invalid or unsafe sdist, an unreachable index.
    Input = 2,
    "usage or input error (requirements, index, sdist, hash)",
    "usage or input error: requirements, unknown package or version, hash mismatch, invalid or unsafe sdist, unreachable index";
    /// A build failed.
    BuildFailed = 3,
    "build failure",
    "build failure";
    /// A dependency cycle in at least one cell.
    Cycle = 4,
    "dependency cycle in at least one cell",
    "dependency cycle in at least one cell";
    /// rewheel itself could not work: the run store, the Docker engine, the disk. Not the
    /// input's fault, and not a build's.
    Environment = 5,
    "rewheel could not work: the run store, the Docker engine, the disk",
    "rewheel could not work: the run store (damaged blob, SQLite), the Docker engine, the disk (full, read-only, permissions)";
    /// Interrupted by a terminating signal (SIGINT as Ctrl-C sends it, SIGTERM, SIGHUP): one
    /// code for all three, since each ends the run the same way; a build continues with
    /// `--resume`.
    Interrupted = 130,
    "interrupted (Ctrl-C, SIGTERM, SIGHUP); `rewheel build --resume RUN` continues",
    "interrupted (Ctrl-C, SIGTERM, SIGHUP): the run is recorded interrupted; `build --resume RUN` (or `check --resume RUN`) continues";
}

impl ExitCode {
    /// The number the process exits with.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// A check's verdict: `Success` when it found nothing, `NotReproducible` when it found a
    /// difference (a wheel, a hash, a blob).
    pub const fn checked(ok: bool) -> Self {
        if ok {
            ExitCode::Success
        } else {
            ExitCode::NotReproducible
        }
    }

    /// The code a process exited with, if it is one of rewheel's.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        code.code().into()
    }
}

/// What `std::process::ExitStatus::code` gives.
impl From<ExitCode> for i32 {
    fn from(code: ExitCode) -> Self {
        code.code().into()
    }
}

/// So a test compares the status it read with the code by name.
impl PartialEq<ExitCode> for i32 {
    fn eq(&self, code: &ExitCode) -> bool {
        *self == i32::from(*code)
    }
}

/// The table `--help` ends with.
pub fn table() -> &'static str {
    static TABLE: LazyLock<String> = LazyLock::new(|| {
        let mut text = String::from("Exit codes:");
        for code in ExitCode::ALL {
            text.push_str(&format!("\n  {}  {}", code.code(), code.help()));
        }
        text
    });
    &TABLE
}

/// A command stopped by a terminating signal, as an error: exit `Interrupted`.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The process ends right after its command: what resolution read (every index page of the
/// closure, as candidates) is left for the OS to reclaim, not freed one allocation at a time,
/// which was a fifth of a warm `resolve` of a 40-pin lock and came after the last job of a build.
pub fn keep_until_exit<T>(value: T) {
    std::mem::forget(value);
}

/// The error and its causes, each said once: our errors already include their cause in their
/// message, while context added at the edge does not.
pub fn describe(err: &anyhow::Error) -> String {
    said_once(err.chain().map(|cause| cause.to_string()))
}

/// Messages from the outermost in, joined by `: `, each skipped when what was said holds it.
pub fn said_once(messages: impl IntoIterator<Item = String>) -> String {
    let mut text = String::new();
    for message in messages {
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README's table, made from the codes.
    fn readme_table() -> String {
        let mut text = String::from("| code | meaning |\n|---|---|\n");
        for code in ExitCode::ALL {
            text.push_str(&format!("| {} | {} |\n", code.code(), code.readme()));
        }
        text
    }

    #[test]
    fn readme_shows_the_codes_as_the_enum_declares_them() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Exit codes\n\n")
            .nth(1)
            .expect("README has an `## Exit codes` section");
        let table: String = section
            .lines()
            .take_while(|line| line.starts_with('|'))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            table,
            readme_table(),
            "README's exit codes differ from `ExitCode`\nhint: change the code's texts in src/exit.rs, and paste the table it makes into README"
        );
    }

    #[test]
    fn help_shows_every_code_once_in_order() {
        let lines: Vec<&str> = table().lines().skip(1).collect();
        assert_eq!(lines.len(), ExitCode::ALL.len());
        for (line, code) in lines.iter().zip(ExitCode::ALL) {
            assert_eq!(*line, format!("  {}  {}", code.code(), code.help()));
        }
        assert!(ExitCode::ALL.windows(2).all(|w| w[0].code() < w[1].code()));
    }

    #[test]
    fn a_status_reads_back_as_its_code() {
        for code in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(code.code()), Some(*code));
            assert_eq!(i32::from(*code), *code);
        }
        assert_eq!(ExitCode::from_code(6), None);
        assert_eq!(ExitCode::checked(false), ExitCode::NotReproducible);
    }
}
