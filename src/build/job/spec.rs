//! The job's types, shared by every stage: what goes in (spec, settings, recipe,
//! environment), what identifies it (fingerprint), and how it ends.

use crate::digest::Sha256;
use crate::packages::{ConfigValue, PackageConfig, Patch};
use crate::resolve::archive::Limits;
use crate::resolve::crates::CrateRef;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where jobs build by default: a fixed path, since C extensions embed it.
pub const DEFAULT_BUILD_ROOT: &str = "/tmp/rewheel-build";
/// The same with a trailing slash, as it appears inside built files.
pub const DEFAULT_BUILD_ROOT_SLASH: &str = "/tmp/rewheel-build/";

/// The shipped PEP 517 frontend, written into every job.
pub const FRONTEND: &str = include_str!("../frontend.py");

/// Where the unpacked sources are mounted when the file-order variation copies them onto a
/// tmpfs at `src`.
pub const STAGED_SRC: &str = "src-staged";

/// The `PATH` every job gets; the `exec-path` variation reverses it.
pub const JOB_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Where Debian's libfaketime lives, on the host and in the images (`time` variation).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The job's build environment's folder, under its folder, unless the `build-env-path`
/// variation moves it.
pub const ENV_DIR: &str = "env";

/// The job's own `/etc/passwd` and `/etc/group`, generated under its folder and bound over the
/// world's: the build user is a real user on both sides, whatever the uid, and never one of
/// the host's.
pub const IDENTITY: &str = "identity";

/// Inputs that change a build's bytes; all recorded in the fingerprint. Fields added after
/// the first release are left out of it at their default, so fingerprints (and the job
/// cache) of builds that do not use them stay as they were, and older plans still read.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub source_date_epoch: Option<u64>,
    pub umask: u32,
    pub locale: String,
    pub timezone: String,
    pub hash_seed: String,
    /// The hostname the build sees (a UTS namespace locally, the container's in docker).
    pub hostname: String,
    /// Extra environment variables (the `env` variation).
    pub extra_env: Vec<(String, String)>,
    /// The uid a container runs as (docker backend).
    pub uid: u32,
    /// A cpuset for the container, e.g. "0" (docker backend); all CPUs when unset.
    pub cpus: Option<String>,
    /// The gid the build runs as (both backends).
    #[serde(skip_serializing_if = "is_default_gid")]
    pub gid: u32,
    /// `$HOME`, a folder of this name in the job's folder (the `home` variation).
    #[serde(skip_serializing_if = "is_default_home")]
    pub home: String,
    /// `$PATH` (the `exec-path` variation: the same folders in another order).
    #[serde(skip_serializing_if = "is_default_path")]
    pub path: String,
    /// `uname -r` says 2.6.x (`setarch --uname-2.6`; the `kernel` variation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub uname_2_6: bool,
    /// Address-space randomization off (`setarch -R`; the `aslr` variation, local backend).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aslr_off: bool,
    /// A clock moved by this libfaketime offset (`+3650d`), `SOURCE_DATE_EPOCH` untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faketime: Option<String>,
    /// The sources listed in reverse directory order (the `file-order` variation): the job
    /// copies them onto a tmpfs, which lists a folder newest first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub file_order_reversed: bool,
    /// The NIS domain name (the `domain` variation; docker backend). Empty: the default.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// The build user's name (`USER`, `LOGNAME`, its entry in the job's own /etc/passwd), its
    /// GECOS field and login shell (the `user` variation). Never left out of the fingerprint:
    /// jobs before these existed saw the host's /etc/passwd and no `USER`, another input.
    pub user: String,
    pub gecos: String,
    pub login_shell: String,
    /// The niceness the build runs at (the `nice` variation).
    #[serde(skip_serializing_if = "is_zero")]
    pub nice: i32,
    /// `LANGUAGE`, gettext's list of languages (the `locale` variation sets it with
    /// `LANG`/`LC_ALL`); unset when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// `/bin/sh` is the other of dash and bash than the world's own (the `bin-sh` variation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other_sh: bool,
    /// The build environment's folder, a plain name in the job's folder (the `build-env-path`
    /// variation moves it, and only it).
    #[serde(skip_serializing_if = "is_default_env_dir")]
    pub env_dir: String,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_default_env_dir(dir: &String) -> bool {
    dir == ENV_DIR
}

fn is_default_gid(gid: &u32) -> bool {
    *gid == 1000
}

fn is_default_home(home: &String) -> bool {
    home == "home"
}

fn is_default_path(path: &String) -> bool {
    path == JOB_PATH
}

impl Settings {
    /// The program and arguments that run `command` with this build's personality (the
    /// `kernel` and `aslr` variations) and niceness (`nice`), found on the host or in the
    /// image: the same words in both backends.
    pub fn personality(&self, command: Vec<String>) -> Vec<String> {
        let mut argv = Vec::new();
        if self.nice != 0 {
            argv.extend(["nice".to_string(), "-n".into(), self.nice.to_string()]);
        }
        if self.uname_2_6 || self.aslr_off {
            argv.extend(["setarch".to_string(), std::env::consts::ARCH.to_string()]);
        }
        if self.uname_2_6 {
            argv.push("--uname-2.6".into());
        }
        if self.aslr_off {
            argv.push("-R".into());
        }
        argv.extend(command);
        argv
    }

    /// The job's own `/etc/passwd` and `/etc/group`: root, the build user at its uid and gid
    /// with its name, GECOS field, home and login shell, and nobody. What a plan from elsewhere
    /// names is checked first: a colon or a line break would write other entries.
    pub fn identity_files(&self, home: &Path) -> Result<(String, String), String> {
        let name_ok = !self.user.is_empty()
            && self.user.len() <= 32
            && self
                .user
                .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && self
                .user
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if !name_ok {
            return Err(format!("`{}` is not a plain user name", self.user));
        }
        let field_ok = |s: &str| !s.contains([':', '\n', '\r', '\0']);
        let home = home.display().to_string();
        for (what, value) in [
            ("GECOS field", &self.gecos),
            ("login shell", &self.login_shell),
            ("home folder", &home),
        ] {
            if !field_ok(value) {
                return Err(format!(
                    "the build user's {what} `{value}` cannot be a passwd field"
                ));
            }
        }
        let (uid, gid) = (self.uid, self.gid);
        let mut passwd = format!(
            "root:x:0:0:root:/root:/bin/sh\n{}:x:{uid}:{gid}:{}:{home}:{}\n",
            self.user, self.gecos, self.login_shell
        );
        let mut group = format!("root:x:0:\n{}:x:{gid}:\n", self.user);
        if uid != 65534 {
            passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
        }
        if gid != 65534 {
            group.push_str("nogroup:x:65534:\n");
        }
        Ok((passwd, group))
    }

    /// Seconds the faked clock is ahead (`+3650d` → 315,360,000), for attribution.
    pub fn clock_offset(&self) -> i64 {
        let Some(offset) = &self.faketime else {
            return 0;
        };
        // An absolute clock (`2021-05-05 14:18:16`, a rebuild's frozen one) is no offset.
        if offset.contains([' ', ':']) {
            return 0;
        }
        let offset = offset.trim_start_matches('+');
        let digits = offset
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(offset.len());
        let (number, unit) = offset.split_at(digits);
        let n: i64 = number.parse().unwrap_or(0);
        n * match unit {
            "d" => 86_400,
            "h" => 3600,
            "m" => 60,
            "y" => 365 * 86_400,
            _ => 1,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            source_date_epoch: None,
            umask: 0o022,
            locale: "C.UTF-8".into(),
            timezone: "UTC".into(),
            hash_seed: "0".into(),
            hostname: "rewheel".into(),
            extra_env: Vec::new(),
            uid: 1000,
            cpus: None,
            gid: 1000,
            home: "home".into(),
            path: JOB_PATH.into(),
            uname_2_6: false,
            aslr_off: false,
            faketime: None,
            file_order_reversed: false,
            domainname: String::new(),
            user: "rewheel1".into(),
            gecos: "rewheel first build,,,".into(),
            login_shell: "/bin/sh".into(),
            nice: 0,
            language: String::new(),
            other_sh: false,
            env_dir: ENV_DIR.into(),
        }
    }
}

/// What a package's settings (`[packages.NAME]`) add to its job. All of it changes bytes, so
/// all of it is in the fingerprint (patches by hash) and in CI plans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Recipe {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config_settings: BTreeMap<String, ConfigValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Debian packages the image carries for this build (the docker backend builds an image
    /// with them; the local backend checks the host has them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<String>,
    /// Build requirements the image's own tools satisfy (`[provided]`), as `name==version`:
    /// recorded in the environment as installed, so the backend's checks pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provided: Vec<String>,
    /// A umask pinned for this package (a remedy for builds that store on-disk modes): it
    /// wins over the run's and the umask variation's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    /// Unpacked files keep the times the sdist gives them, as `tar -xf` keeps them (backends
    /// that store file times then store those).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sdist_times: bool,
    /// CPU slots of `--jobs` this build takes, and the parallelism its tools are told
    /// (`MAKEFLAGS`, `CMAKE_BUILD_PARALLEL_LEVEL`, `CARGO_BUILD_JOBS`, `MAX_JOBS`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<usize>,
    /// A clock frozen at this local time (libfaketime), winning over the `time` variation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// A published release of the package's own backend, which the job uses instead of the
    /// in-tree one: its `backend-path` is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// `setup.py bdist_wheel` with these options instead of the PEP 517 hooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_py: Option<Vec<String>>,
    /// Folders the build reads list in ext4's hash order under this seed (`ext4:UUID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_order: Option<String>,
    /// The cell's repair step (`auditwheel`), run on a platform wheel after its build: the
    /// job's wheel is its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
}

impl Recipe {
    pub fn of(config: &PackageConfig) -> Self {
        Self {
            env: config.env.clone(),
            config_settings: config.config_settings.clone(),
            patches: config.patches.clone(),
            system: config.system.clone(),
            provided: Vec::new(),
            umask: config.umask,
            sdist_times: config.sdist_times,
            cpus: config.cpus,
            clock: config.clock.clone(),
            backend: config.backend.clone(),
            setup_py: config.setup_py.clone(),
            listing_order: config.listing_order.clone(),
            repair: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The recipe as the fingerprint records it: patches by name and hash, not their text.
    fn fingerprint(&self) -> Option<serde_json::Value> {
        if self.is_empty() {
            return None;
        }
        let mut value = serde_json::to_value(self).expect("recipes serialize");
        if let Some(patches) = value.get_mut("patches").and_then(|p| p.as_array_mut()) {
            for patch in patches {
                if let Some(patch) = patch.as_object_mut() {
                    patch.remove("text");
                }
            }
        }
        Some(value)
    }
}

/// A crate archive on this host, for the job's vendor folder.
#[derive(Debug, Clone)]
pub struct VendoredCrate {
    pub krate: CrateRef,
    pub path: PathBuf,
}

/// The placeholder per-package env values may use for the job's source tree.
pub const SOURCE_DIR: &str = "{source_dir}";

/// The placeholder per-package env values may use for the job's build environment's folder.
pub const ENV_DIR_PLACEHOLDER: &str = "{env_dir}";

/// What compiled code says instead of the build environment's folder, under the prefix-map
/// remedy: where pip or uv would have put it is nobody's business in a wheel.
pub const ENV_REMAP: &str = "/rewheel/env";

/// What compiled code says instead of the vendor folder's path, which moves with the build
/// path: the crates' place is rewheel's choice, not the package's, so it must not reach a wheel.
pub const VENDOR_REMAP: &str = "/rewheel/vendor";

/// The vendoring layout, in the fingerprints of jobs that vendor crates: v2 remaps the vendor
/// folder (earlier results carry the job's path in panic locations and debug info).
const VENDOR_LAYOUT: &str = "v2-remapped";

/// Where a job finds vendored crates and cargo's configuration, under its folder.
pub const VENDOR: &str = "vendor";
pub const CARGO_HOME: &str = "cargo-home";

#[derive(Debug, Clone, Serialize)]
pub struct EnvWheel {
    pub name: String,
    pub version: String,
    pub sha256: Sha256,
    #[serde(skip)]
    pub path: PathBuf,
    /// Where a wheel not built here (a seed, a binary) can be fetched again, for CI plans.
    #[serde(skip)]
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct JobSpec {
    pub cell: crate::cell::CellId,
    pub name: String,
    pub version: String,
    pub stage: u32,
    pub sdist: PathBuf,
    pub sdist_sha256: Sha256,
    pub backend: String,
    pub backend_path: Vec<String>,
    pub env: Vec<EnvWheel>,
    pub settings: Settings,
    /// What the package's own settings add (env, config settings, patches, system packages).
    pub recipe: Recipe,
    /// Rust crates its `Cargo.lock` files pin, fetched and verified, vendored into the job.
    pub crates: Vec<VendoredCrate>,
    pub timeout: Duration,
    pub limits: Limits,
    /// Build even if the backend's hook names requirements that are not installed (set once
    /// rewheel has checked their markers and found nothing missing for this cell).
    pub proceed: bool,
    /// Ask the backend's hook only, build nothing: how a plan learns what a backend adds at
    /// build time before it emits jobs.
    pub probe: bool,
}

impl JobSpec {
    /// The umask the job unpacks and builds with: the package's pin, else the run's.
    pub fn umask(&self) -> u32 {
        self.recipe.umask.unwrap_or(self.settings.umask)
    }

    /// The job's folder under the build root: fixed per package, so paths that builds embed
    /// repeat across runs; bootstrap stages, which may run side by side, get one each.
    pub fn folder_name(&self) -> String {
        match self.stage {
            0 => format!("{}-{}", self.name, self.version),
            stage => format!("{}-{}.stage{stage}", self.name, self.version),
        }
    }

    /// Which job this is, as the store and the CI result name it.
    pub fn identity(&self) -> crate::store::JobIdentity {
        crate::store::JobIdentity {
            cell: self.cell.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            stage: self.stage,
        }
    }

    pub fn label(&self) -> String {
        match self.stage {
            0 => format!("{} {}", self.name, self.version),
            s => format!("{} {} (bootstrap stage {s})", self.name, self.version),
        }
    }
}

/// What a backend tells the fingerprint about the runtime of a cell.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub backend: &'static str,
    /// Image id or interpreter path.
    pub id: String,
    pub interpreter_version: String,
}

/// Everything that decides a job's output, as recorded in the store: equal fingerprints mean a
/// finished job can be reused by `--resume`.
#[derive(Debug, Serialize)]
pub struct Fingerprint<'a> {
    pub backend: &'a str,
    /// Image id (docker) or interpreter path (local).
    pub runtime: &'a str,
    pub interpreter_version: &'a str,
    pub sdist_sha256: &'a Sha256,
    pub build_backend: &'a str,
    pub build_env: &'a [EnvWheel],
    pub settings: &'a Settings,
    pub build_path: String,
    /// Left out when the package has no settings, so such jobs keep their fingerprints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crates: Vec<&'a CrateRef>,
    /// How crates are laid out for cargo (`VENDOR_LAYOUT`), only for jobs that vendor any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_layout: Option<&'static str>,
    /// How the frontend stamps the files a build under a faked clock writes
    /// (`FILE_CLOCK`), only for jobs whose clock is faked: their wheels changed with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_clock: Option<&'static str>,
    /// What an unpacking that keeps the sdist's file times keeps (`SDIST_KEEPS`), only for
    /// such jobs: their permission bits changed with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdist_keeps: Option<&'static str>,
}

/// What `sdist-times` keeps of the archive's entries: their times and permission bits, as
/// `python -m build` unpacks an sdist (tarfile sets the archive's bits, whatever the umask).
pub const SDIST_KEEPS: &str = "times-modes-v1";

/// The frontend's file clock (frontend.py, `install_file_clock`): files written during the
/// build read at the faked clock's time. A new way of stamping them is a new name here.
pub const FILE_CLOCK: &str = "stat-v1";

impl Fingerprint<'_> {
    /// The fingerprint of a job about to run on a backend, as JSON and its sha256.
    pub fn of(spec: &JobSpec, runtime: Option<&Runtime>, root: &Path) -> (String, Sha256) {
        let (id, interpreter) = runtime
            .map(|r| (r.id.as_str(), r.interpreter_version.as_str()))
            .unwrap_or_default();
        let json = serde_json::to_string(&Fingerprint {
            backend: runtime.map(|r| r.backend).unwrap_or("none"),
            runtime: id,
            interpreter_version: interpreter,
            sdist_sha256: &spec.sdist_sha256,
            build_backend: &spec.backend,
            build_env: &spec.env,
            settings: &spec.settings,
            build_path: root.display().to_string(),
            recipe: spec.recipe.fingerprint(),
            crates: spec.crates.iter().map(|c| &c.krate).collect(),
            vendor_layout: (!spec.crates.is_empty()).then_some(VENDOR_LAYOUT),
            file_clock: (spec.recipe.clock.is_some() || spec.settings.faketime.is_some())
                .then_some(FILE_CLOCK),
            sdist_keeps: spec.recipe.sdist_times.then_some(SDIST_KEEPS),
        })
        .expect("fingerprints serialize");
        let sha = crate::fsutil::sha256_hex(json.as_bytes());
        (json, sha)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("preparing the job: {0}")]
    Setup(String),
    /// The job's inputs are at fault (an unsafe or broken sdist): an input error, not a build
    /// failure.
    #[error("{0}")]
    Input(String),
    #[error("{message}")]
    Failed { message: String, log: Vec<u8> },
    #[error("timed out after {0:?}")]
    Timeout(Duration, Vec<u8>),
}

impl JobError {
    pub fn log(&self) -> &[u8] {
        match self {
            JobError::Setup(_) | JobError::Input(_) => &[],
            JobError::Failed { log, .. } | JobError::Timeout(_, log) => log,
        }
    }
}

/// What a job hands back, checked: the wheel's bytes were read from a regular file of the
/// job's output folder (never through a link), parse as a zip, and its filename names the job's
/// package and version.
pub struct JobOutput {
    pub wheel_filename: String,
    pub wheel: Vec<u8>,
    pub log: Vec<u8>,
    /// What the backend's get_requires_for_build_wheel hook answered.
    pub requires: Vec<String>,
}

/// How a job that ran to its end ended: with a wheel, or with the hook's answer alone.
pub enum JobEnd {
    Wheel(JobOutput),
    /// The job stopped after `get_requires_for_build_wheel`: it named requirements for this
    /// interpreter that are not installed (`missing`), or it was a probe (`JobSpec::probe`).
    Asked {
        requires: Vec<String>,
        missing: Vec<String>,
    },
}

/// A wheel larger than this is not taken from a job (the store holds wheels whole).
pub const MAX_WHEEL: u64 = 2 << 30;

/// The most of a build log that is kept: its head and its tail, with a line saying what was cut.
pub const MAX_LOG: u64 = 4 << 20;

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn the_faked_clock_offset_reads_libfaketime_syntax() {
        let offset = |f: &str| {
            Settings {
                faketime: Some(f.into()),
                ..Settings::default()
            }
            .clock_offset()
        };
        assert_eq!(offset("+3650d"), 3650 * 86_400);
        assert_eq!(offset("2h"), 7200);
        assert_eq!(offset("+90"), 90);
        assert_eq!(Settings::default().clock_offset(), 0);
    }

    #[test]
    fn the_jobs_own_passwd_names_the_build_user_at_its_uid_and_refuses_forged_fields() {
        let home = std::path::Path::new("/tmp/rewheel-build/cp311/six-1.0/home");
        let settings = Settings {
            uid: 1001,
            gid: 1001,
            ..Settings::default()
        };
        let (passwd, group) = settings.identity_files(home).unwrap();
        assert!(passwd.contains(&format!(
            "\nrewheel1:x:1001:1001:rewheel first build,,,:{}:/bin/sh\n",
            home.display()
        )));
        assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("\nnobody:x:65534:"));
        assert!(group.contains("\nrewheel1:x:1001:\n"), "{group}");
        // A plan from elsewhere cannot write entries of its own through a field.
        for forged in [
            Settings {
                gecos: "x:0:0::/:/bin/sh\nroot2".into(),
                ..Settings::default()
            },
            Settings {
                user: "root:x".into(),
                ..Settings::default()
            },
            Settings {
                login_shell: "/bin/sh\nevil:x:0:0::/:/bin/sh".into(),
                ..Settings::default()
            },
        ] {
            assert!(forged.identity_files(home).is_err());
        }
    }
}
