//! What a check that found differences says to do next: the command lines that verify the
//! known remedies and write them as settings, then the check that takes those settings, each
//! made from the command line the check was given (or its run was recorded with), so that
//! it can be pasted as it is.

use crate::verify::check::CheckSettings;
use crate::verify::compare::CompareReport;
use crate::verify::remedy::{HintStatus, NextCommand, NextStep};

/// Where the remedies are written when the check's command line names no file.
pub const REMEDIES_FILE: &str = "rewheel-remedies.toml";

/// The next step after `report`, or `None` when every wheel is reproducible. `argv` is the
/// check's command line as given, program name first.
pub fn next_step(
    report: &CompareReport,
    check: &CheckSettings,
    argv: &[String],
) -> Option<NextStep> {
    let differing: Vec<_> = report.pairs.iter().filter(|p| !p.reproducible()).collect();
    if differing.is_empty() {
        return None;
    }
    let untried: Vec<_> = differing
        .iter()
        .filter_map(|p| p.remedy_hint.as_ref())
        .filter(|h| h.status == HintStatus::NotTried)
        .collect();
    let verified = differing
        .iter()
        .filter(|p| p.remedy.as_ref().is_some_and(|r| r.verified))
        .count();
    let stuck = differing.len() - untried.len() - verified;
    let words = without_remedies(argv);
    let settings_with = |file: &str| {
        let mut w = words.clone();
        w.extend(["--settings".to_string(), file.to_string()]);
        // A wheel that did not build fails every check until it builds: no green to promise.
        let purpose = match report.failed.is_empty() {
            true => "then check with them: it ends with exit 0 once they cover every difference",
            false => "then check with them (the jobs that did not build still fail it)",
        };
        NextCommand {
            purpose: purpose.into(),
            command: shell_line(&w),
        }
    };
    let write_to = |file: &str, what: String| {
        let mut w = words.clone();
        w.push(format!("--remedies={file}"));
        NextCommand {
            purpose: what,
            command: shell_line(&w),
        }
    };
    let rest = match stuck {
        0 => String::new(),
        n => format!("; {} no known remedy: report it upstream", has(n)),
    };
    let (advice, commands) = if !untried.is_empty() {
        let mut remedies: Vec<&str> = untried
            .iter()
            .flat_map(|h| h.remedies.iter().map(String::as_str))
            .collect();
        remedies.sort();
        remedies.dedup();
        let file = free_file(&words);
        let which = match untried.len() {
            1 => "that wheel".to_string(),
            n => format!("each of those {n} wheels"),
        };
        let cost = format!(
            "verify the remedies, building {which} again on both sides (once more when the first try is not enough), and write the verified ones as settings"
        );
        (
            format!(
                "{} a known remedy, not tried ({}){rest}",
                has(untried.len()),
                remedies.join(", ")
            ),
            vec![write_to(&file, cost), settings_with(&file)],
        )
    } else if verified > 0 {
        match &check.remedies_file {
            Some(file) => {
                let file = file.display().to_string();
                (
                    format!(
                        "{} a verified remedy, written to {file}{rest}",
                        has(verified)
                    ),
                    vec![settings_with(&file)],
                )
            }
            None => {
                let file = free_file(&words);
                (
                    format!(
                        "{} a verified remedy, not written anywhere{rest}",
                        has(verified)
                    ),
                    vec![
                        write_to(&file, "verify them again and write them as settings".into()),
                        settings_with(&file),
                    ],
                )
            }
        }
    } else {
        let what = match differing.len() {
            1 => "this difference: report it",
            _ => "these differences: report them",
        };
        (
            format!("no setting rewheel knows hides {what} upstream, with the diffs above"),
            Vec::new(),
        )
    };
    Some(NextStep { advice, commands })
}

/// "1 differing wheel has", "3 differing wheels have".
fn has(n: usize) -> String {
    match n {
        1 => "1 differing wheel has".into(),
        n => format!("{n} differing wheels have"),
    }
}

/// The command line as `rewheel …`, without the remedy flag it may carry (the next command
/// says where remedies go, or that it takes them as settings).
fn without_remedies(argv: &[String]) -> Vec<String> {
    let mut words = vec!["rewheel".to_string()];
    words.extend(
        argv.iter()
            .skip(1)
            .filter(|w| *w != "--remedies" && !w.starts_with("--remedies="))
            .cloned(),
    );
    words
}

/// A remedies file the command line does not already read as settings: writing over one it
/// reads would drop the remedies that already work.
fn free_file(words: &[String]) -> String {
    let mut taken = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--settings" {
            taken.extend(it.next().cloned());
        } else if let Some(file) = w.strip_prefix("--settings=") {
            taken.push(file.to_string());
        }
    }
    (1..)
        .map(|n| match n {
            1 => REMEDIES_FILE.to_string(),
            n => format!("rewheel-remedies-{n}.toml"),
        })
        .find(|f| !taken.contains(f))
        .expect("some name is free")
}

/// Words as one POSIX shell line: a word a shell would split, expand or glob is single-quoted.
pub fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+=:,./@%".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::job::Settings;
    use crate::verify::compare::{FailedBuild, PairReport};
    use crate::verify::remedy::{RemedyHint, RemedyReport};
    use crate::verify::variation::Variation;
    use crate::verify::wheel_diff::Verdict;

    fn pair(wheel: &str, differs: bool) -> PairReport {
        PairReport {
            cell: "cp311".into(),
            wheel: wheel.into(),
            b_wheel: None,
            a_sha256: crate::digest::Sha256::of(b"a"),
            b_sha256: crate::digest::Sha256::of(if differs { b"b" } else { b"a" }),
            a_stabilized_sha256: None,
            b_stabilized_sha256: None,
            normalizations: Vec::new(),
            verdict: match differs {
                true => Verdict::SameContent {
                    archive: Vec::new(),
                },
                false => Verdict::Identical,
            },
            attribution: Vec::new(),
            remedy: None,
            remedy_hint: None,
            same_inputs: None,
            moved_inputs: Vec::new(),
        }
    }

    fn report(pairs: Vec<PairReport>) -> CompareReport {
        CompareReport {
            schema_version: 1,
            a: "a".into(),
            b: "b".into(),
            pairs,
            only_in_a: Vec::new(),
            only_in_b: Vec::new(),
            failed: Vec::new(),
            next: None,
        }
    }

    fn check(remedies: bool, file: Option<&str>) -> CheckSettings {
        CheckSettings {
            vary: vec![Variation::Umask, Variation::Hostname],
            independent: false,
            find_culprit: false,
            remedies,
            remedies_file: file.map(std::path::PathBuf::from),
        }
    }

    #[test]
    fn each_ending_gets_its_next_step() {
        let argv = words(&["rewheel", "check", "a==1"]);
        let set = [Variation::Umask, Variation::Hostname];
        let base = Settings::default();
        // Nothing differs: nothing to do.
        let green = report(vec![pair("a", false)]);
        assert!(next_step(&green, &check(false, None), &argv).is_none());

        // Untried: verify, then check with the settings written.
        let mut umask = pair("a", true);
        umask.remedy_hint = Some(RemedyHint::of(&[Variation::Umask], &set, &base));
        let mut host = pair("b", true);
        host.remedy_hint = Some(RemedyHint::of(&[Variation::Hostname], &set, &base));
        let untried = report(vec![umask.clone(), host]);
        let next = next_step(&untried, &check(false, None), &argv).unwrap();
        assert_eq!(
            next.advice,
            "1 differing wheel has a known remedy, not tried (a fixed umask 022); \
             1 differing wheel has no known remedy: report it upstream"
        );
        let lines: Vec<&str> = next.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(
            lines,
            [
                "rewheel check a==1 --remedies=rewheel-remedies.toml",
                "rewheel check a==1 --settings rewheel-remedies.toml"
            ]
        );

        // Verified and written: only the check with them, which a failed job still fails.
        let mut fixed = umask.clone();
        fixed.remedy_hint = None;
        fixed.remedy = Some(RemedyReport {
            causes: vec![Variation::Umask],
            remedies: vec!["a fixed umask 022".into()],
            verified: true,
            settings: None,
        });
        let mut written = report(vec![fixed]);
        written.failed.push(FailedBuild {
            cell: "cp311".into(),
            job: "c 1".into(),
            side: "first",
            error: "no compiler".into(),
        });
        let argv = words(&["rewheel", "check", "a==1", "--remedies=r.toml"]);
        let next = next_step(&written, &check(true, Some("r.toml")), &argv).unwrap();
        assert_eq!(next.commands.len(), 1);
        assert_eq!(
            next.commands[0].command,
            "rewheel check a==1 --settings r.toml"
        );
        assert!(next.commands[0].purpose.contains("did not build"));

        // Nothing known helps: say so, and suggest no command.
        let mut host = pair("b", true);
        host.remedy_hint = Some(RemedyHint::of(&[Variation::Hostname], &set, &base));
        let next = next_step(&report(vec![host]), &check(false, None), &argv).unwrap();
        assert!(next.commands.is_empty());
        assert!(
            next.advice.contains("report it upstream"),
            "{}",
            next.advice
        );
    }

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_shell_reads_the_line_back_as_the_same_words() {
        let w = words(&[
            "rewheel",
            "check",
            "--cells",
            "cp3{9,11}-*",
            "--html",
            "my report.html",
            "it's",
            "",
            "--vary=-time",
        ]);
        let line = shell_line(&w);
        assert_eq!(
            line,
            r"rewheel check --cells 'cp3{9,11}-*' --html 'my report.html' 'it'\''s' '' --vary=-time"
        );
        let echoed = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {line}")])
            .output()
            .unwrap();
        let back: Vec<String> = String::from_utf8(echoed.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(back, w);
    }

    #[test]
    fn the_remedy_flag_is_dropped_and_a_settings_file_in_use_is_not_written_over() {
        let argv = words(&[
            "/usr/local/bin/rewheel",
            "check",
            "six==1.16.0",
            "--remedies",
            "--settings",
            "rewheel-remedies.toml",
            "--remedies=x.toml",
        ]);
        let w = without_remedies(&argv);
        assert_eq!(
            w,
            words(&[
                "rewheel",
                "check",
                "six==1.16.0",
                "--settings",
                "rewheel-remedies.toml"
            ])
        );
        assert_eq!(free_file(&w), "rewheel-remedies-2.toml");
        assert_eq!(free_file(&words(&["rewheel", "check"])), REMEDIES_FILE);
    }
}
