//! Per-package build settings: what a package needs beyond its sdist to build, written as
//! `[packages.NAME]` in a matrix file or in a settings file (`--settings FILE`) that `resolve`,
//! `build`, `check`, `plan` and `bisect` share.
//!
//! ```toml
//! [packages.cffi]
//! system = ["libffi-dev", "pkg-config"]       # Debian packages the image must carry
//! env = { CFLAGS = "-ffile-prefix-map={source_dir}=." }   # set in the build (wins over
//!                                             # variations; {source_dir}: the job's tree,
//!                                             # {env_dir}: its build environment's folder)
//! config-settings = { "--build-option" = ["--no-cython"] }   # PEP 517 config_settings
//! build-requires = ["setuptools-rust>=1.7"]   # added to the build environment
//! patches = ["patches/cffi-no-network.patch"] # applied to the unpacked source (-p1)
//! allow-binary = false                        # take the index's wheel instead of building
//! umask = "022"                               # pinned for this build (wins over variations)
//! cpus = 2                                    # CPU slots of --jobs it takes
//! clock = "2021-05-05 14:18:16"               # a frozen clock (libfaketime), for rebuilds
//! backend = "poetry-core==1.8.1"              # a published backend instead of the in-tree one
//! setup-py = ["--universal"]                  # `python setup.py bdist_wheel OPTIONS`, as pip
//!                                             # ran it before PEP 517 (and maintainers by hand)
//! build-date = "2023-05-22"                   # its build environment as the index stood then
//! listing-order = "ext4:59a6c369-63de-d100-9f91-0976116d73ad"
//!                                             # folders list in ext4's hash order, this seed
//!                                             # ("hfs+": sorted without case, as macOS's HFS+)
//!
//! [defaults]                                  # every package built from source, unless its
//! shared-env = ["setuptools==79.0.0", "setuptools-scm==8.3.1", "wheel==0.45.1"]
//!                                             # one build environment for all (--no-isolation)
//! umask = "022"                               # own table sets the same key
//! env = { CFLAGS = "-ffile-prefix-map={source_dir}=." }
//! ```
//!
//! Everything here that changes bytes (env, config settings, patches by hash, system
//! packages) is part of a job's fingerprint; patches are read and hashed once, here.

use crate::names::PackageName;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A PEP 517 config setting's value: a string, or a list of strings for repeated options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    One(String),
    Many(Vec<String>),
}

/// One `[packages.NAME]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageSpec {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub config_settings: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    pub build_requires: Vec<String>,
    #[serde(default)]
    pub patches: Vec<PathBuf>,
    #[serde(default)]
    pub system: Vec<String>,
    #[serde(default)]
    pub allow_binary: bool,
    /// A umask pinned for this package's build, in octal (`"022"`).
    #[serde(default)]
    pub umask: Option<String>,
    /// Unpacked files keep the sdist's file times (as `tar -xf` does).
    #[serde(default)]
    pub sdist_times: bool,
    /// CPU slots of `--jobs` the build takes (its tools are told to use as many).
    #[serde(default)]
    pub cpus: Option<usize>,
    /// A clock frozen at this local time (`"2021-05-05 14:18:16"`, libfaketime), as a rebuild
    /// of a wheel written without SOURCE_DATE_EPOCH needs.
    #[serde(default)]
    pub clock: Option<String>,
    /// A published release of the package's own backend to build with instead of the in-tree
    /// one (`backend-path`): a self-hosting backend's wheel made by an older release of itself
    /// (`poetry-core==1.8.1` for poetry-core 1.9.0).
    #[serde(default)]
    pub backend: Option<String>,
    /// Build by running `setup.py bdist_wheel` with these options, not through a PEP 517
    /// hook: how pip built before PEP 517 and maintainers by hand (`--universal`), which
    /// setuptools older than 40.8 (no `build_meta`) needs too.
    #[serde(default)]
    pub setup_py: Option<Vec<String>>,
    /// Its build environment resolved as the index stood at this instant (RFC 3339 or a
    /// date): each wheel of a lock with the toolchain of the day it was built, in one run.
    #[serde(default)]
    pub build_date: Option<String>,
    /// The order the build's folders list in: `ext4:UUID`, an ext4 filesystem's hash order
    /// under that seed, or `hfs+`, sorted without case as macOS's HFS+ lists them: as the
    /// builder's filesystem listed them (`rebuild::listing`).
    #[serde(default)]
    pub listing_order: Option<String>,
    /// The shared build environment this package builds in (pins), over `[defaults]`'s: a
    /// group of packages is those naming the same set.
    #[serde(default)]
    pub shared_env: Vec<String>,
}

/// A settings file: `[packages.*]` tables, the `[provided]` table and `[defaults]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    packages: BTreeMap<String, PackageSpec>,
    #[serde(default)]
    provided: BTreeMap<String, ProvidedSpec>,
    #[serde(default)]
    defaults: DefaultsSpec,
}

/// `[defaults]`: what every package built from source gets, as a fleet-wide reproducibility
/// policy would say it (a fixed umask, prefix maps), key by key under the package's own table.
/// Only what holds for any package: system packages, patches or config settings name one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DefaultsSpec {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub umask: Option<String>,
    /// One build environment every package built from source builds in, beside its own
    /// requirements, as release pipelines build with `--no-isolation` in one toolchain (whose
    /// setuptools plugins, file finders and commands reach every build). Its own members build
    /// in their own environments.
    #[serde(default)]
    pub shared_env: Vec<String>,
}

/// `[defaults]`, checked.
#[derive(Debug, Clone, Default, PartialEq)]
struct Defaults {
    env: BTreeMap<String, String>,
    umask: Option<u32>,
    shared_env: Vec<String>,
    origin: PathBuf,
}

impl Defaults {
    fn is_empty(&self) -> bool {
        self.env.is_empty() && self.umask.is_none() && self.shared_env.is_empty()
    }
}

/// Each entry of a shared build environment must be a pin (`NAME==VERSION`): what a release
/// pipeline's toolchain held that day.
fn check_shared_env(table: &str, pins: &[String]) -> Result<(), String> {
    for pin in pins {
        let pinned = pin.split_once("==").is_some_and(|(n, v)| {
            PackageName::from_str(n.trim()).is_ok()
                && pep508_rs::pep440_rs::Version::from_str(v.trim()).is_ok()
        });
        if !pinned {
            return Err(format!(
                "{table}.shared-env: `{pin}` is not a pin like \"setuptools==79.0.0\"\nhint: a shared build environment is the exact toolchain the builds ran in"
            ));
        }
    }
    Ok(())
}

/// A requirement the image satisfies with its own tool instead of a wheel built here:
/// `[provided] cmake = { version = "3.25.1", system = ["cmake"] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidedSpec {
    /// The tool's version in the image, which requirements are checked against.
    pub version: String,
    /// The Debian packages that put it there.
    #[serde(default)]
    pub system: Vec<String>,
}

/// A provided tool, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Provided {
    pub version: pep508_rs::pep440_rs::Version,
    pub system: Vec<String>,
    pub origin: PathBuf,
}

/// A patch as read from its file: its bytes are part of the fingerprint through `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// The file name, for messages.
    pub name: String,
    pub sha256: crate::digest::Sha256,
    pub text: String,
}

/// One package's settings, checked and with its patches read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageConfig {
    pub env: BTreeMap<String, String>,
    pub config_settings: BTreeMap<String, ConfigValue>,
    pub build_requires: Vec<String>,
    pub patches: Vec<Patch>,
    pub system: Vec<String>,
    pub allow_binary: bool,
    pub umask: Option<u32>,
    pub sdist_times: bool,
    pub cpus: Option<usize>,
    pub clock: Option<String>,
    /// A published backend instead of the in-tree one (`poetry-core==1.8.1`).
    pub backend: Option<String>,
    /// `setup.py bdist_wheel` with these options instead of a PEP 517 hook.
    pub setup_py: Option<Vec<String>>,
    /// Its build environment as the index stood then (on top of `--exclude-newer`).
    pub build_date: Option<jiff::Timestamp>,
    /// Folders list in ext4's hash order under this seed (`ext4:UUID`).
    pub listing_order: Option<String>,
    /// The shared build environment's pins (its own or `[defaults]`'s).
    pub shared_env: Vec<String>,
    /// The file that said so, for messages.
    pub origin: PathBuf,
}

impl PackageConfig {
    /// The shared build environment `name` builds in: none for its own members, which build
    /// in their own environments (as a toolchain is installed before it is used).
    pub fn shared_env_for(&self, name: &PackageName) -> &[String] {
        let member = self.shared_env.iter().any(|pin| {
            pin.split_once("==")
                .and_then(|(n, _)| PackageName::from_str(n.trim()).ok())
                .is_some_and(|n| &n == name)
        });
        if member { &[] } else { &self.shared_env }
    }

    /// The published backend `version` builds with: none for the release the pin names,
    /// which builds itself.
    pub fn backend_for(&self, version: &pep508_rs::pep440_rs::Version) -> Option<&str> {
        let pin = self.backend.as_deref()?;
        let pinned = pin
            .split_once("==")
            .and_then(|(_, v)| pep508_rs::pep440_rs::Version::from_str(v.trim()).ok());
        (pinned.as_ref() != Some(version)).then_some(pin)
    }
}

/// Every package's settings, by normalized name.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    packages: BTreeMap<PackageName, PackageConfig>,
    provided: BTreeMap<PackageName, Provided>,
    defaults: Defaults,
}

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("{}: cannot read settings file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), message.trim_end())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{}: packages.{name}.patches: cannot read {}: {source}",
        path.display(),
        patch.display()
    )]
    Patch {
        path: PathBuf,
        name: String,
        patch: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "package {name} is set in both {} and {}\nhint: set each key of a package in one file",
        first.display(),
        second.display()
    )]
    Twice {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Debian package names: what `--include` and apt take, nothing a shell or an option could
/// read as something else.
fn is_debian_package(name: &str) -> bool {
    // `NAME/backports`, `NAME/security`: from a pocket of the cell's suite.
    let (name, _) = crate::build::pocket::Pocket::split(name);
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
}

/// Variables a job's sandbox owns: setting them per package would break the job itself.
const RESERVED_ENV: &[&str] = &["LD_PRELOAD", "FAKETIME", "TMPDIR", "PYTHONNOUSERSITE"];

/// Environment names a table may set: plain names, none the sandbox owns.
fn check_env(table: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    for var in env.keys() {
        let plain = !var.is_empty()
            && !var.starts_with(|c: char| c.is_ascii_digit())
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(format!(
                "{table}.env: `{var}` is not an environment variable name"
            ));
        }
        if RESERVED_ENV.contains(&var.as_str()) {
            return Err(format!(
                "{table}.env: `{var}` is set by rewheel for every job and cannot be changed per package"
            ));
        }
    }
    Ok(())
}

fn parse_umask(table: &str, text: Option<&str>) -> Result<Option<u32>, String> {
    let Some(text) = text else { return Ok(None) };
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .map(Some)
        .ok_or_else(|| format!("{table}.umask: `{text}` is not an octal umask like \"022\""))
}

/// The shipped settings, compiled in so the binary works outside the repository.
const SHIPPED: &str = include_str!("../matrices/native-settings.toml");
/// How messages name the shipped settings.
const SHIPPED_ORIGIN: &str = "(rewheel's shipped settings)";

/// Settings for thousands of packages are far below this; a patch too.
const MAX_SETTINGS_FILE: u64 = 16 << 20;
const MAX_PATCH: u64 = 64 << 20;

impl PackageSettings {
    /// Read a settings file (`--settings FILE`).
    pub fn load(path: &Path) -> Result<Self, PackagesError> {
        let text = crate::fsutil::read_text_capped(path, MAX_SETTINGS_FILE, "settings file")
            .map_err(|source| PackagesError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let file: SettingsFile = toml::from_str(&text).map_err(|err| PackagesError::Invalid {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        Self::from_specs(path, file.packages, file.provided, file.defaults)
    }

    /// Check tables read from `path` (a settings or matrix file): names, system packages,
    /// environment names; read patches relative to the file.
    pub fn from_specs(
        path: &Path,
        specs: BTreeMap<String, PackageSpec>,
        provided_specs: BTreeMap<String, ProvidedSpec>,
        defaults: DefaultsSpec,
    ) -> Result<Self, PackagesError> {
        let invalid = |message: String| PackagesError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut packages = BTreeMap::new();
        for (key, spec) in specs {
            let name = PackageName::from_str(&key)
                .map_err(|_| invalid(format!("packages.{key}: not a package name")))?;
            if let Some(bad) = spec.system.iter().find(|p| !is_debian_package(p)) {
                return Err(invalid(format!(
                    "packages.{key}.system: `{bad}` is not a Debian package name"
                )));
            }
            check_env(&format!("packages.{key}"), &spec.env).map_err(invalid)?;
            for requirement in &spec.build_requires {
                crate::names::parse_requirement(requirement).map_err(|err| {
                    invalid(format!(
                        "packages.{key}.build-requires: `{requirement}`: {}",
                        err.to_string().lines().next().unwrap_or_default()
                    ))
                })?;
            }
            let mut patches = Vec::new();
            for rel in &spec.patches {
                let file = base.join(rel);
                let text = crate::fsutil::read_text_capped(&file, MAX_PATCH, "patch").map_err(
                    |source| PackagesError::Patch {
                        path: path.to_path_buf(),
                        name: key.clone(),
                        patch: file.clone(),
                        source,
                    },
                )?;
                patches.push(Patch {
                    name: rel.display().to_string(),
                    sha256: crate::fsutil::sha256_hex(text.as_bytes()),
                    text,
                });
            }
            if let Some(clock) = &spec.clock
                && jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", clock).is_err()
            {
                return Err(invalid(format!(
                    "packages.{key}.clock: `{clock}` is not a time like \"2021-05-05 14:18:16\""
                )));
            }
            if let Some(backend) = &spec.backend
                && !backend.split_once("==").is_some_and(|(n, v)| {
                    PackageName::from_str(n.trim()).is_ok_and(|n| n == name)
                        && pep508_rs::pep440_rs::Version::from_str(v.trim()).is_ok()
                })
            {
                return Err(invalid(format!(
                    "packages.{key}.backend: `{backend}` is not a pin of {key} itself, like \"{key}==1.0\"\nhint: it names the release of the package's own backend to build with instead of the in-tree one"
                )));
            }
            let build_date = spec
                .build_date
                .as_deref()
                .map(crate::resolve::index::parse_instant)
                .transpose()
                .map_err(|e| invalid(format!("packages.{key}.build-date: {e}")))?;
            if let Some(order) = &spec.listing_order
                && !crate::rebuild::listing::is_valid(order)
            {
                return Err(invalid(format!(
                    "packages.{key}.listing-order: `{order}` is not an ext4 hash seed like \"ext4:59a6c369-63de-d100-9f91-0976116d73ad\""
                )));
            }
            check_shared_env(&format!("packages.{key}"), &spec.shared_env).map_err(invalid)?;
            let umask =
                parse_umask(&format!("packages.{key}"), spec.umask.as_deref()).map_err(invalid)?;
            let mut system = spec.system;
            system.sort();
            system.dedup();
            packages.insert(
                name,
                PackageConfig {
                    env: spec.env,
                    config_settings: spec.config_settings,
                    build_requires: spec.build_requires,
                    patches,
                    system,
                    allow_binary: spec.allow_binary,
                    umask,
                    sdist_times: spec.sdist_times,
                    cpus: spec.cpus.filter(|n| *n > 0),
                    clock: spec.clock,
                    backend: spec.backend,
                    setup_py: spec.setup_py,
                    build_date,
                    listing_order: spec.listing_order,
                    shared_env: spec.shared_env,
                    origin: path.to_path_buf(),
                },
            );
        }
        let mut provided = BTreeMap::new();
        for (key, spec) in provided_specs {
            let name = PackageName::from_str(&key)
                .map_err(|_| invalid(format!("provided.{key}: not a package name")))?;
            let version = spec.version.parse().map_err(|_| {
                invalid(format!(
                    "provided.{key}.version: `{}` is not a version",
                    spec.version
                ))
            })?;
            if let Some(bad) = spec.system.iter().find(|p| !is_debian_package(p)) {
                return Err(invalid(format!(
                    "provided.{key}.system: `{bad}` is not a Debian package name"
                )));
            }
            provided.insert(
                name,
                Provided {
                    version,
                    system: spec.system,
                    origin: path.to_path_buf(),
                },
            );
        }
        check_env("defaults", &defaults.env).map_err(invalid)?;
        check_shared_env("defaults", &defaults.shared_env).map_err(invalid)?;
        let defaults = Defaults {
            umask: parse_umask("defaults", defaults.umask.as_deref()).map_err(invalid)?,
            env: defaults.env,
            shared_env: defaults.shared_env,
            origin: path.to_path_buf(),
        };
        Ok(Self {
            packages,
            provided,
            defaults,
        })
    }

    /// The settings rewheel ships (`matrices/native-settings.toml`): what common native packages need
    /// from Debian, so that they build with no settings file.
    pub fn shipped() -> Self {
        let file: SettingsFile = toml::from_str(SHIPPED).expect("the shipped settings parse");
        Self::from_specs(
            Path::new(SHIPPED_ORIGIN),
            file.packages,
            file.provided,
            file.defaults,
        )
        .expect("the shipped settings are valid")
    }

    /// Put `shipped` beneath these settings, key by key: a package's key set here wins, a key
    /// only `shipped` sets is taken.
    pub fn underlay(&mut self, shipped: PackageSettings) {
        for (name, base) in shipped.packages {
            let Some(own) = self.packages.get_mut(&name) else {
                self.packages.insert(name, base);
                continue;
            };
            if own.system.is_empty() {
                own.system = base.system;
            }
            for (key, value) in base.env {
                own.env.entry(key).or_insert(value);
            }
            for (key, value) in base.config_settings {
                own.config_settings.entry(key).or_insert(value);
            }
            if own.build_requires.is_empty() {
                own.build_requires = base.build_requires;
            }
        }
        for (name, base) in shipped.provided {
            self.provided.entry(name).or_insert(base);
        }
    }

    /// Requirements the image satisfies itself (`[provided]`).
    pub fn provided(&self) -> &BTreeMap<PackageName, Provided> {
        &self.provided
    }

    /// Take another file's tables. One package may be configured in two files (a remedies
    /// file beside a hand-written one) as long as no key is set twice: a key set in both is
    /// an error, not a silent override.
    pub fn merge(&mut self, other: PackageSettings) -> Result<(), PackagesError> {
        for (name, config) in other.packages {
            let Some(first) = self.packages.get_mut(&name) else {
                self.packages.insert(name, config);
                continue;
            };
            let twice = |key: &str| PackagesError::Twice {
                name: format!("{name} ({key})"),
                first: first.origin.clone(),
                second: config.origin.clone(),
            };
            if let Some(key) = config.env.keys().find(|k| first.env.contains_key(*k)) {
                return Err(twice(&format!("env.{key}")));
            }
            if let Some(key) = config
                .config_settings
                .keys()
                .find(|k| first.config_settings.contains_key(*k))
            {
                return Err(twice(&format!("config-settings.{key}")));
            }
            if first.umask.is_some() && config.umask.is_some() {
                return Err(twice("umask"));
            }
            first.env.extend(config.env);
            first.config_settings.extend(config.config_settings);
            first.build_requires.extend(config.build_requires);
            first.patches.extend(config.patches);
            first.system.extend(config.system);
            first.system.sort();
            first.system.dedup();
            first.allow_binary |= config.allow_binary;
            first.umask = first.umask.or(config.umask);
            first.sdist_times |= config.sdist_times;
            if first.cpus.is_some() && config.cpus.is_some() {
                return Err(twice("cpus"));
            }
            first.cpus = first.cpus.or(config.cpus);
            if first.clock.is_some() && config.clock.is_some() {
                return Err(twice("clock"));
            }
            if first.clock.is_none() {
                first.clock = config.clock;
            }
            if first.backend.is_some() && config.backend.is_some() {
                return Err(twice("backend"));
            }
            if first.backend.is_none() {
                first.backend = config.backend;
            }
            if first.setup_py.is_some() && config.setup_py.is_some() {
                return Err(twice("setup-py"));
            }
            if first.setup_py.is_none() {
                first.setup_py = config.setup_py;
            }
            if first.build_date.is_some() && config.build_date.is_some() {
                return Err(twice("build-date"));
            }
            first.build_date = first.build_date.or(config.build_date);
            if first.listing_order.is_some() && config.listing_order.is_some() {
                return Err(twice("listing-order"));
            }
            if first.listing_order.is_none() {
                first.listing_order = config.listing_order;
            }
            if !first.shared_env.is_empty() && !config.shared_env.is_empty() {
                return Err(twice("shared-env"));
            }
            if first.shared_env.is_empty() {
                first.shared_env = config.shared_env;
            }
        }
        for (name, provided) in other.provided {
            if let Some(first) = self.provided.get(&name) {
                return Err(PackagesError::Twice {
                    name: name.to_string(),
                    first: first.origin.clone(),
                    second: provided.origin,
                });
            }
            self.provided.insert(name, provided);
        }
        let (first, second) = (&mut self.defaults, other.defaults);
        let twice = |key: &str| PackagesError::Twice {
            name: format!("[defaults] ({key})"),
            first: first.origin.clone(),
            second: second.origin.clone(),
        };
        if let Some(key) = second.env.keys().find(|k| first.env.contains_key(*k)) {
            return Err(twice(&format!("env.{key}")));
        }
        if first.umask.is_some() && second.umask.is_some() {
            return Err(twice("umask"));
        }
        if !first.shared_env.is_empty() && !second.shared_env.is_empty() {
            return Err(twice("shared-env"));
        }
        if first.is_empty() {
            first.origin = second.origin;
        }
        first.env.extend(second.env);
        first.umask = first.umask.or(second.umask);
        if first.shared_env.is_empty() {
            first.shared_env = second.shared_env;
        }
        Ok(())
    }

    /// A package's settings: its own table over `[defaults]`, key by key.
    pub fn get(&self, name: &PackageName) -> Option<Cow<'_, PackageConfig>> {
        let own = self.packages.get(name);
        if self.defaults.is_empty() {
            return own.map(Cow::Borrowed);
        }
        let mut config = own.cloned().unwrap_or_else(|| PackageConfig {
            origin: self.defaults.origin.clone(),
            ..PackageConfig::default()
        });
        for (key, value) in &self.defaults.env {
            config
                .env
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        config.umask = config.umask.or(self.defaults.umask);
        if config.shared_env.is_empty() {
            config.shared_env = self.defaults.shared_env.clone();
        }
        Some(Cow::Owned(config))
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.provided.is_empty() && self.defaults.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PackageName, &PackageConfig)> {
        self.packages.iter()
    }

    /// Packages to take as wheels from the index (`allow-binary = true`).
    pub fn allow_binary(&self) -> impl Iterator<Item = &PackageName> {
        self.packages
            .iter()
            .filter(|(_, c)| c.allow_binary)
            .map(|(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<PackageSettings, PackagesError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fix.patch"), "--- a/x\n+++ b/x\n").unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, text).unwrap();
        PackageSettings::load(&path)
    }

    #[test]
    fn reads_every_key_and_normalizes_names() {
        let s = load(
            "[packages.Foo_Bar]\nsystem = [\"pkg-config\", \"libffi-dev\", \"pkg-config\"]\n\
             env = { CFLAGS = \"-O2\" }\nconfig-settings = { a = \"1\", b = [\"x\", \"y\"] }\n\
             build-requires = [\"cython>=3\"]\npatches = [\"fix.patch\"]\nallow-binary = true\n",
        )
        .unwrap();
        let c = s.get(&PackageName::from_str("foo-bar").unwrap()).unwrap();
        assert_eq!(c.system, ["libffi-dev", "pkg-config"]);
        assert_eq!(c.env["CFLAGS"], "-O2");
        assert_eq!(
            c.config_settings["b"],
            ConfigValue::Many(vec!["x".into(), "y".into()])
        );
        assert_eq!(c.patches[0].name, "fix.patch");
        assert_eq!(c.patches[0].sha256.len(), 64);
        assert_eq!(s.allow_binary().count(), 1);
    }

    #[test]
    fn refuses_what_would_be_misread() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        let e = err("[packages.cffi]\nsytem = [\"libffi-dev\"]\n");
        assert!(e.contains("line 2, column 1") && e.contains("sytem"), "{e}");
        let e = err("[packages.cffi]\nsystem = [\"--force-yes\"]\n");
        assert!(e.contains("not a Debian package name"), "{e}");
        let e = err("[packages.cffi]\nenv = { LD_PRELOAD = \"x\" }\n");
        assert!(e.contains("set by rewheel"), "{e}");
        let e = err("[packages.cffi]\npatches = [\"missing.patch\"]\n");
        assert!(e.contains("missing.patch"), "{e}");
        let e = err("[packages.cffi]\nbuild-requires = [\"not a requirement!\"]\n");
        assert!(e.contains("build-requires"), "{e}");
        let e = err("[packages.cffi]\nclock = \"yesterday\"\n");
        assert!(e.contains("not a time like"), "{e}");
    }

    #[test]
    fn defaults_reach_every_package_under_its_own_table() {
        let mut a = load(
            "[defaults]\numask = \"022\"\nenv = { CFLAGS = \"-g0\", X = \"d\" }\n\
             [packages.cffi]\nenv = { CFLAGS = \"-O1\" }\numask = \"027\"\n",
        )
        .unwrap();
        let name = |n: &str| PackageName::from_str(n).unwrap();
        // A package no table names gets the defaults, with the file that set them.
        let six = a.get(&name("six")).unwrap();
        assert_eq!(
            (six.umask, six.env["CFLAGS"].as_str()),
            (Some(0o022), "-g0")
        );
        assert!(six.origin.ends_with("settings.toml"));
        // The package's own keys win, one by one; the rest still comes from the defaults.
        let cffi = a.get(&name("cffi")).unwrap();
        assert_eq!(cffi.umask, Some(0o027));
        assert_eq!(
            (cffi.env["CFLAGS"].as_str(), cffi.env["X"].as_str()),
            ("-O1", "d")
        );
        // Without defaults, an unnamed package has no settings at all.
        assert!(load("").unwrap().get(&name("six")).is_none());
        // Two files may both hold defaults, but not the same key.
        a.merge(load("[defaults]\nenv = { Y = \"1\" }\n").unwrap())
            .unwrap();
        assert_eq!(a.get(&name("six")).unwrap().env["Y"], "1");
        let err = a
            .merge(load("[defaults]\numask = \"077\"\n").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("[defaults] (umask) is set in both"), "{err}");
        // What names one package has no place in the defaults; names are checked as anywhere.
        let err = load("[defaults]\nsystem = [\"libffi-dev\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `system`"), "{err}");
        let err = load("[defaults]\nenv = { LD_PRELOAD = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaults.env: `LD_PRELOAD` is set by rewheel"),
            "{err}"
        );
        let err = load("[defaults]\numask = \"9\"\n").unwrap_err().to_string();
        assert!(
            err.contains("defaults.umask: `9` is not an octal umask"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_settings_lie_beneath_the_user_s_key_by_key() {
        let name = |n: &str| PackageName::from_str(n).unwrap();
        let mut none = PackageSettings::default();
        none.underlay(PackageSettings::shipped());
        assert_eq!(none.get(&name("cffi")).unwrap().system, ["libffi-dev"]);
        // The user's `system` replaces the shipped one; their other keys stand beside it.
        let mut own =
            load("[packages.cffi]\nsystem = [\"libffi-dev\", \"x11proto-dev\"]\n").unwrap();
        own.underlay(PackageSettings::shipped());
        assert_eq!(
            own.get(&name("cffi")).unwrap().system,
            ["libffi-dev", "x11proto-dev"]
        );
        let mut env = load("[packages.cffi]\nenv = { X = \"1\" }\n").unwrap();
        env.underlay(PackageSettings::shipped());
        let cffi = env.get(&name("cffi")).unwrap();
        assert_eq!(
            (cffi.system.as_slice(), cffi.env["X"].as_str()),
            (&["libffi-dev".to_string()][..], "1")
        );
    }

    #[test]
    fn one_package_in_two_files_merges_unless_a_key_is_set_twice() {
        let mut a = load("[packages.cffi]\nsystem = [\"libffi-dev\"]\n").unwrap();
        let b = load("[packages.CFFI]\nenv = { X = \"1\" }\numask = \"022\"\n").unwrap();
        a.merge(b).unwrap();
        let cffi = a.get(&PackageName::from_str("cffi").unwrap()).unwrap();
        assert_eq!(cffi.system, ["libffi-dev"]);
        assert_eq!(cffi.env["X"], "1");
        let c = load("[packages.cffi]\nenv = { X = \"2\" }\n").unwrap();
        let err = a.merge(c).unwrap_err().to_string();
        assert!(err.contains("cffi (env.X) is set in both"), "{err}");
    }
}
