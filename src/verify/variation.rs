//! Reproducibility variations, reprotest's idea: the second build of `check` changes one or more
//! of these inputs; each can be switched on and off (`--vary build-path,umask,-time`).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Variation {
    /// Another build folder (C extensions and some version files embed it).
    BuildPath,
    /// The wall clock: ten years ahead through libfaketime (and the second build starts at
    /// least 2 s after the first); entry times and embedded dates move unless
    /// SOURCE_DATE_EPOCH pins them, which stays as it was.
    Time,
    /// umask 002 instead of 022, applied to the unpacked sources and the build.
    Umask,
    /// A timezone 14 hours from UTC (a POSIX TZ string, no tzdata needed).
    Timezone,
    /// Another locale name in LANG and LC_ALL.
    Locale,
    /// Another hostname (a UTS namespace locally, the container's hostname in docker).
    Hostname,
    /// Another NIS domain name beside the hostname (the container's; docker backend: setting
    /// it needs CAP_SYS_ADMIN in the job's UTS namespace, which local jobs do not get).
    Domain,
    /// Another uid and gid (reprotest's user_group).
    Uid,
    /// Another PYTHONHASHSEED: set and dict ordering of strings changes.
    HashSeed,
    /// Extra environment variables.
    Env,
    /// One CPU instead of all (docker backend, cpuset).
    NumCpus,
    /// Another `$HOME`.
    Home,
    /// The same `PATH` folders in another order.
    ExecPath,
    /// Another kernel release in `uname` (`setarch --uname-2.6`).
    Kernel,
    /// Address-space randomization off for the second build (`setarch -R`; local backend).
    Aslr,
    /// The sources listed in reverse directory order (copied onto a tmpfs in the order the
    /// first build's filesystem listed them).
    FileOrder,
    /// `/bin/sh` is the other of dash and bash (build scripts that run `sh`).
    BinSh,
    /// The build user's name (`USER`, `LOGNAME`), GECOS field and login shell, in the job's
    /// own /etc/passwd.
    User,
    /// Another niceness.
    Nice,
    /// The build environment's folder, and only it, moves (the sources stay).
    BuildEnvPath,
}

pub const ALL: &[Variation] = &[
    Variation::BuildPath,
    Variation::Time,
    Variation::Umask,
    Variation::Timezone,
    Variation::Locale,
    Variation::Hostname,
    Variation::Domain,
    Variation::Uid,
    Variation::HashSeed,
    Variation::Env,
    Variation::NumCpus,
    Variation::Home,
    Variation::ExecPath,
    Variation::Kernel,
    Variation::Aslr,
    Variation::FileOrder,
    Variation::BinSh,
    Variation::User,
    Variation::Nice,
    Variation::BuildEnvPath,
];

impl Variation {
    pub fn name(self) -> &'static str {
        match self {
            Variation::BuildPath => "build-path",
            Variation::Time => "time",
            Variation::Umask => "umask",
            Variation::Timezone => "timezone",
            Variation::Locale => "locale",
            Variation::Hostname => "hostname",
            Variation::Domain => "domain",
            Variation::Uid => "uid",
            Variation::HashSeed => "hash-seed",
            Variation::Env => "env",
            Variation::NumCpus => "num-cpus",
            Variation::Home => "home",
            Variation::ExecPath => "exec-path",
            Variation::Kernel => "kernel",
            Variation::Aslr => "aslr",
            Variation::FileOrder => "file-order",
            Variation::BinSh => "bin-sh",
            Variation::User => "user",
            Variation::Nice => "nice",
            Variation::BuildEnvPath => "build-env-path",
        }
    }
}

impl fmt::Display for Variation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|v| v.name()).collect();
            format!("unknown variation `{s}`; known: {}", names.join(", "))
        })
    }
}

/// `--vary` syntax: `all`, names to switch on, `-name` to switch off, applied left to right on
/// top of the default (all of them).
pub fn parse_set(spec: &str) -> Result<Vec<Variation>, String> {
    let mut set: Vec<Variation> = ALL.to_vec();
    let mut first = true;
    for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word == "all" {
            set = ALL.to_vec();
        } else if let Some(name) = word.strip_prefix('-') {
            let v: Variation = name.parse()?;
            set.retain(|x| *x != v);
        } else {
            let v: Variation = word.parse()?;
            // A bare list names exactly what varies.
            if first {
                set.clear();
            }
            if !set.contains(&v) {
                set.push(v);
            }
        }
        first = false;
    }
    set.sort();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variation_is_named_alike_in_vary_and_in_reports() {
        for v in ALL {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
            assert_eq!(v.name().parse::<Variation>().unwrap(), *v);
        }
    }

    #[test]
    fn vary_lists_switch_variations_on_and_off() {
        assert_eq!(
            parse_set("build-path,umask").unwrap(),
            [Variation::BuildPath, Variation::Umask]
        );
        assert_eq!(parse_set("-time").unwrap().len(), ALL.len() - 1);
        assert!(
            !parse_set("all,-time,-uid")
                .unwrap()
                .contains(&Variation::Uid)
        );
        assert!(
            parse_set("colour")
                .unwrap_err()
                .contains("unknown variation `colour`")
        );
    }
}
