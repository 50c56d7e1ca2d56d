//! Remedies for what `check` attributes: for each cause, the standard fix packagers apply,
//! verified by building the wheel again on both sides with it (the same variations as the
//! check), and written as per-package settings the next run can take (`--settings`).

use crate::build::job::{ENV_DIR_PLACEHOLDER, ENV_REMAP, Recipe, SOURCE_DIR, Settings};
use crate::verify::variation::Variation;
use serde::Serialize;
use std::collections::BTreeMap;

/// One standard fix, as a change to a package's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Build with umask 022 whatever the run's: backends that store on-disk modes then store
    /// the same ones.
    FixedUmask,
    /// Map the source tree's and the build environment's paths away in compiled files:
    /// `-ffile-prefix-map` for C and C++, `--remap-path-prefix` for Rust. Both at once: an
    /// extension embeds its sources and its build dependencies' headers alike.
    PrefixMap,
    /// Give the build a `SOURCE_DATE_EPOCH`: tools that honour it stop embedding the clock.
    SourceDateEpoch(u64),
    /// Pin the variables the variation changes (`PYTHONHASHSEED`, `TZ`, `LC_ALL` with
    /// `LANGUAGE`).
    Pin(&'static [(&'static str, &'static str)]),
}

/// The epoch written when the run had none: the first second zip files can hold.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

impl Remedy {
    /// The standard remedy for what a variation leaked, if there is one.
    pub fn for_variation(v: Variation, base: &Settings) -> Option<Remedy> {
        match v {
            Variation::Umask => Some(Remedy::FixedUmask),
            Variation::BuildPath | Variation::Home | Variation::BuildEnvPath => {
                Some(Remedy::PrefixMap)
            }
            Variation::Time => base
                .source_date_epoch
                .is_none()
                .then_some(Remedy::SourceDateEpoch(DEFAULT_EPOCH)),
            Variation::HashSeed => Some(Remedy::Pin(&[("PYTHONHASHSEED", "0")])),
            Variation::Timezone => Some(Remedy::Pin(&[("TZ", "UTC")])),
            // LANGUAGE=C: Python's gettext reads LANGUAGE before LC_ALL, and `C` in it means
            // no translation.
            Variation::Locale => Some(Remedy::Pin(&[("LC_ALL", "C.UTF-8"), ("LANGUAGE", "C")])),
            // What a build reads of the host itself (its name, the user, the shell, the
            // niceness) has no setting that hides it.
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Remedy::FixedUmask => "a fixed umask 022".into(),
            Remedy::PrefixMap => format!(
                "-ffile-prefix-map=<source dir>=. and <build environment>={ENV_REMAP} in CFLAGS/CXXFLAGS (--remap-path-prefix in RUSTFLAGS)"
            ),
            Remedy::SourceDateEpoch(epoch) => format!("SOURCE_DATE_EPOCH={epoch}"),
            Remedy::Pin(pins) => pins
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Add this remedy to a package's recipe (what the verification builds with).
    pub fn apply(&self, recipe: &mut Recipe) {
        let mut append = |key: &str, flag: String| {
            let value = match recipe.env.get(key) {
                Some(old) if !old.is_empty() => format!("{old} {flag}"),
                _ => flag,
            };
            recipe.env.insert(key.to_string(), value);
        };
        match self {
            Remedy::FixedUmask => recipe.umask = Some(0o022),
            Remedy::PrefixMap => {
                let c = format!(
                    "-ffile-prefix-map={SOURCE_DIR}=. -ffile-prefix-map={ENV_DIR_PLACEHOLDER}={ENV_REMAP}"
                );
                append("CFLAGS", c.clone());
                append("CXXFLAGS", c);
                append(
                    "RUSTFLAGS",
                    format!(
                        "--remap-path-prefix={SOURCE_DIR}=. --remap-path-prefix={ENV_DIR_PLACEHOLDER}={ENV_REMAP}"
                    ),
                );
            }
            Remedy::SourceDateEpoch(epoch) => {
                recipe
                    .env
                    .insert("SOURCE_DATE_EPOCH".into(), epoch.to_string());
            }
            Remedy::Pin(pins) => {
                for (key, value) in *pins {
                    recipe.env.insert(key.to_string(), value.to_string());
                }
            }
        }
    }
}

/// What remedy verification found for one differing wheel, in the report's row.
#[derive(Debug, Clone, Serialize)]
pub struct RemedyReport {
    /// The causes the remedies answer (attributed variations).
    pub causes: Vec<Variation>,
    /// The remedies tried together, described; empty when no cause has a known remedy.
    pub remedies: Vec<String>,
    /// Building both sides again with the remedies gave identical wheels.
    pub verified: bool,
    /// The package's settings that carry the remedies, when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<PackageRemedy>,
}

/// The per-package settings a verified remedy amounts to.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackageRemedy {
    pub package: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umask: Option<String>,
}

impl RemedyReport {
    /// One line for the text report.
    pub fn line(&self) -> String {
        if self.remedies.is_empty() {
            return NO_KNOWN_REMEDY.into();
        }
        match self.verified {
            true => format!(
                "remedy verified: {} makes it reproducible",
                self.remedies.join(" + ")
            ),
            false => format!(
                "remedy tried, not enough: {} still differs; report it upstream",
                self.remedies.join(" + ")
            ),
        }
    }
}

/// The tries `--remedies` makes for a differing wheel: the remedies of its attributed causes,
/// then, when those are not all and every cause can be hidden by a setting, every standard
/// remedy of the varied set together (what attribution cannot see: a hash seed reordering
/// generated code, two causes in one entry). A try with no remedy is skipped.
pub fn tries(causes: &[Variation], set: &[Variation], base: &Settings) -> Vec<Vec<Remedy>> {
    let attributed = remedies_for(causes, base);
    let every = remedies_for(set, base);
    // A cause no setting hides (the hostname) is not worth the second try.
    let hidable = causes
        .iter()
        .all(|c| Remedy::for_variation(*c, base).is_some());
    let more = hidable && every.len() > attributed.len();
    let mut out = vec![attributed];
    if more {
        out.push(every);
    }
    out
}

/// What a differing wheel's row says when no remedy was tried for it: the remedies
/// `--remedies` would try first, or that its causes have none.
#[derive(Debug, Clone, Serialize)]
pub struct RemedyHint {
    /// `not-tried`: `check --remedies` would try `remedies`; `no-known-remedy`: no setting
    /// hides its causes.
    pub status: HintStatus,
    /// The attributed causes (variations).
    pub causes: Vec<Variation>,
    /// The remedies the first try would build with, described; empty for `no-known-remedy`.
    pub remedies: Vec<String>,
    /// The remedies are every standard one of the varied set, since no cause was attributed
    /// that names one.
    pub every: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HintStatus {
    NotTried,
    NoKnownRemedy,
}

impl RemedyHint {
    /// The hint for a differing wheel with these attributed causes.
    pub fn of(causes: &[Variation], set: &[Variation], base: &Settings) -> RemedyHint {
        let tries = tries(causes, set, base);
        let first = tries.iter().position(|t| !t.is_empty());
        RemedyHint {
            status: match first {
                Some(_) => HintStatus::NotTried,
                None => HintStatus::NoKnownRemedy,
            },
            causes: causes.to_vec(),
            remedies: first
                .map(|i| tries[i].iter().map(Remedy::describe).collect())
                .unwrap_or_default(),
            every: first.is_some_and(|i| i > 0),
        }
    }

    /// One line for the reports.
    pub fn line(&self) -> String {
        match self.status {
            HintStatus::NoKnownRemedy => NO_KNOWN_REMEDY.into(),
            HintStatus::NotTried => format!(
                "known remedy, not tried: run with --remedies to verify {}{}",
                if self.every {
                    "every standard remedy of the varied set: "
                } else {
                    ""
                },
                self.remedies.join(" + ")
            ),
        }
    }
}

/// What a row says when no setting hides the cause.
pub const NO_KNOWN_REMEDY: &str = "no known remedy: report it upstream";

/// What a user runs next after a check that found differences, in the order to run them.
#[derive(Debug, Clone, Serialize)]
pub struct NextStep {
    /// Why, in one sentence.
    pub advice: String,
    /// Commands to run in turn; empty when nothing rewheel knows would help.
    pub commands: Vec<NextCommand>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextCommand {
    /// What the command does and costs.
    pub purpose: String,
    /// One shell line, words quoted where a shell would change them.
    pub command: String,
}

/// The remedies `causes` call for, deduplicated, in a stable order.
pub fn remedies_for(causes: &[Variation], base: &Settings) -> Vec<Remedy> {
    let mut out: Vec<Remedy> = Vec::new();
    for &v in causes {
        if let Some(r) = Remedy::for_variation(v, base)
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out
}

/// The settings the remedies add to a package, as a table of a settings file.
pub fn package_remedy(package: &str, remedies: &[Remedy]) -> PackageRemedy {
    let mut recipe = Recipe::default();
    for r in remedies {
        r.apply(&mut recipe);
    }
    PackageRemedy {
        package: package.to_string(),
        env: recipe.env,
        umask: recipe.umask.map(|m| format!("{m:03o}")),
    }
}

/// Verified remedies as a settings file (`rewheel check --settings FILE` reads it back).
pub fn settings_file(remedies: &[PackageRemedy], from_run: &crate::ids::RunId) -> String {
    let mut text = format!(
        "# Remedies `rewheel check` verified on run {from_run}: with these settings each package's\n\
         # wheel was built identically under the check's variations. Pass with --settings FILE.\n"
    );
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    for r in remedies {
        text.push_str(&format!("\n[packages.{}]\n", r.package));
        if let Some(umask) = &r.umask {
            text.push_str(&format!("umask = {}\n", quote(umask)));
        }
        if !r.env.is_empty() {
            let pairs: Vec<String> = r
                .env
                .iter()
                .map(|(k, v)| format!("{k} = {}", quote(v)))
                .collect();
            text.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_gets_its_standard_remedy_once() {
        let base = Settings::default();
        let r = remedies_for(
            &[
                Variation::Umask,
                Variation::BuildPath,
                Variation::Home,
                Variation::Hostname,
            ],
            &base,
        );
        assert_eq!(r, [Remedy::FixedUmask, Remedy::PrefixMap]);
        // Moving only the build environment calls for the same map, which names it too.
        assert_eq!(
            remedies_for(&[Variation::BuildEnvPath, Variation::BuildPath], &base),
            [Remedy::PrefixMap]
        );
        assert_eq!(
            remedies_for(&[Variation::User, Variation::Nice, Variation::BinSh], &base),
            []
        );
        // With SOURCE_DATE_EPOCH already set, the clock has no further remedy.
        let with_epoch = Settings {
            source_date_epoch: Some(1),
            ..Settings::default()
        };
        assert!(remedies_for(&[Variation::Time], &with_epoch).is_empty());
        assert_eq!(
            remedies_for(&[Variation::Time], &base),
            [Remedy::SourceDateEpoch(DEFAULT_EPOCH)]
        );
    }

    #[test]
    fn the_settings_file_reads_back_as_package_settings() {
        let remedy = package_remedy("markupsafe", &[Remedy::FixedUmask, Remedy::PrefixMap]);
        let run = crate::ids::RunId::parse("20261130-120000").unwrap();
        let text = settings_file(&[remedy], &run);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remedies.toml");
        std::fs::write(&path, &text).unwrap();
        let settings = crate::packages::PackageSettings::load(&path).unwrap();
        let name = "markupsafe".parse().unwrap();
        let config = settings.get(&name).unwrap();
        assert_eq!(config.umask, Some(0o022));
        assert_eq!(
            config.env["CFLAGS"],
            "-ffile-prefix-map={source_dir}=. -ffile-prefix-map={env_dir}=/rewheel/env"
        );
        assert_eq!(
            config.env["RUSTFLAGS"],
            "--remap-path-prefix={source_dir}=. --remap-path-prefix={env_dir}=/rewheel/env"
        );
    }
}
