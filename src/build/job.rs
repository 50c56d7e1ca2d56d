//! One build job: an sdist, the wheels of its build environment and the settings that matter for
//! reproducibility, in; a wheel and a log, out. Backends only differ in where the job runs.

use crate::beneath::{Beneath, BeneathError};
use crate::build::site_cache::{Compile, SiteCache};
use crate::build::wheel_install::install_wheel_file;
use crate::packages::{ConfigValue, PackageConfig, Patch};
use crate::resolve::archive::{self, Limits};
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
pub const FRONTEND: &str = include_str!("frontend.py");

/// Where the unpacked sources are mounted when the file-order variation copies them onto a
/// tmpfs at `src`.
pub const STAGED_SRC: &str = "src-staged";

/// The `PATH` every job gets; the `exec-path` variation reverses it.
pub const JOB_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Where Debian's libfaketime lives, on the host and in the images (`time` variation).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

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
    /// `kernel` and `aslr` variations), found on the host or in the image.
    pub fn personality(&self, command: Vec<String>) -> Vec<String> {
        if !self.uname_2_6 && !self.aslr_off {
            return command;
        }
        let mut argv = vec!["setarch".to_string(), std::env::consts::ARCH.to_string()];
        if self.uname_2_6 {
            argv.push("--uname-2.6".into());
        }
        if self.aslr_off {
            argv.push("-R".into());
        }
        argv.extend(command);
        argv
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
    pub sha256: String,
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
    pub sdist_sha256: String,
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
    pub sdist_sha256: &'a str,
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
}

impl Fingerprint<'_> {
    /// The fingerprint of a job about to run on a backend, as JSON and its sha256.
    pub fn of(spec: &JobSpec, runtime: Option<&Runtime>, root: &Path) -> (String, String) {
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
    /// The backend's get_requires_for_build_wheel named requirements that are not installed.
    #[error("the build backend asks for {0:?} at build time")]
    Needs(Vec<String>),
}

impl JobError {
    pub fn log(&self) -> &[u8] {
        match self {
            JobError::Setup(_) | JobError::Input(_) | JobError::Needs(_) => &[],
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

/// A wheel larger than this is not taken from a job (the store holds wheels whole).
pub const MAX_WHEEL: u64 = 2 << 30;

/// The most of a build log that is kept: its head and its tail, with a line saying what was cut.
pub const MAX_LOG: u64 = 4 << 20;

/// How `prepare` fills a job's `env/`.
#[derive(Clone, Copy)]
pub enum EnvFill<'a> {
    /// Unpack every wheel: the job's own copy.
    Unpack,
    /// Hard links into the cache's unpacked trees, for jobs that see `env/` read-only; with
    /// bytecode for the interpreter the tag names when `compile` is given.
    Link {
        cache: &'a SiteCache,
        compile: Option<(&'a str, Compile<'a>)>,
    },
}

/// The job folder, laid out the same for every backend:
/// `src/<sdist top>/`, `env/` (the build environment), `out/`, `frontend/`, `tmp/`, `home/`.
pub struct Prepared {
    pub source_top: String,
    /// Where the job sees the unpacked source tree (`{source_dir}` in per-package env values).
    pub source_dir: PathBuf,
}

/// Fill `dir` (the host side of the build path) for a job. `root` is how the job itself sees
/// `dir` (the same path for local jobs, the mount point inside a container).
pub fn prepare(
    spec: &JobSpec,
    dir: &Path,
    root: &Path,
    source_parent: Option<&Path>,
    fill: EnvFill,
) -> Result<Prepared, JobError> {
    let setup = |what: &str, err: &dyn std::fmt::Display| JobError::Setup(format!("{what}: {err}"));
    // Whatever an earlier attempt left, however deep and whatever links it holds.
    crate::beneath::remove_tree(dir).map_err(|e| setup("clearing the build folder", &e))?;
    // A plan from elsewhere names the user: never root, whose files on the host are root's.
    if spec.settings.uid == 0 || spec.settings.gid == 0 {
        return Err(JobError::Input(format!(
            "a job never runs as uid or gid 0 (asked: {}:{})",
            spec.settings.uid, spec.settings.gid
        )));
    }
    // A plan from elsewhere names the home folder: a plain name in the job's folder only.
    if crate::cell::CellId::new(spec.settings.home.as_str()).is_err() {
        return Err(JobError::Input(format!(
            "home folder `{}` is not a plain folder name",
            spec.settings.home
        )));
    }
    for sub in [
        "src",
        "env",
        "out",
        "frontend",
        "tmp",
        spec.settings.home.as_str(),
    ] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| setup("creating the build folder", &e))?;
    }
    // Unpacked from the handle its hash was read through: the bytes built are the ones the
    // fingerprint, the provenance and the job cache name.
    let sdist = open_verified(&spec.sdist, &spec.sdist_sha256, "the sdist")?;
    let unpack = rewound(&sdist).map_err(|e| setup("reading the sdist", &e))?;
    let top = archive::extract_sdist_file(
        unpack,
        &spec.sdist,
        &dir.join("src"),
        spec.limits,
        spec.umask(),
    )
    .map_err(|e| match e.is_input() {
        true => JobError::Input(e.to_string()),
        false => setup("unpacking the sdist", &e),
    })?;
    let source_top = top
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| JobError::Setup("the sdist has no top folder".into()))?;
    for patch in &spec.recipe.patches {
        crate::build::patch::apply(&top, patch).map_err(JobError::Input)?;
    }
    for wheel in &spec.env {
        // The fingerprint names this hash: what is installed is read through the same handle.
        let file = open_verified(&wheel.path, &wheel.sha256, "the build-environment wheel")?;
        match &fill {
            EnvFill::Unpack => install_wheel_file(file, &wheel.path, &dir.join("env"))
                .map_err(|e| setup("installing the build environment", &e))?,
            EnvFill::Link { cache, compile } => cache
                .install(
                    &wheel.path,
                    &file,
                    &wheel.sha256,
                    &dir.join("env"),
                    *compile,
                )
                .map_err(|e| setup("installing the build environment", &e))?,
        }
    }
    if !spec.crates.is_empty() {
        vendor(spec, dir, root)?;
    }
    for provided in &spec.recipe.provided {
        record_provided(&dir.join("env"), provided)
            .map_err(|e| setup("recording a provided tool", &e))?;
    }
    std::fs::write(dir.join("frontend/frontend.py"), FRONTEND)
        .map_err(|e| setup("writing the frontend", &e))?;
    // With a source parent (`--build-path DIR`), the tree is where `tar -xf SDIST -C DIR` puts
    // it: the backend mounts it at DIR/<Name-Version>.
    let parent = source_parent
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("src"));
    let request = serde_json::json!({
        "source_dir": parent.join(&source_top),
        "out_dir": root.join("out"),
        "backend": spec.backend,
        "backend_path": spec.backend_path,
        "site_dirs": [root.join("env")],
        "installed": installed_names(spec),
        "proceed": spec.proceed,
        "config_settings": spec.recipe.config_settings,
    });
    let mut request = request;
    if spec.recipe.sdist_times {
        // Set inside the job, after any file-order copy: the paths are the archive's, so
        // hostile, and only the sandbox may follow them.
        let again = rewound(&sdist).map_err(|e| setup("reading the sdist", &e))?;
        let times = archive::entry_times_file(again, &spec.sdist, spec.limits)
            .map_err(|e| JobError::Input(e.to_string()))?;
        std::fs::write(
            dir.join("times.json"),
            serde_json::to_string(&times).expect("times serialize"),
        )
        .map_err(|e| setup("writing the sdist's file times", &e))?;
        request["times"] = serde_json::json!(root.join("times.json"));
        request["times_base"] = serde_json::json!(parent);
    }
    if spec.settings.file_order_reversed {
        // The backend mounts the unpacked tree read-only here and a tmpfs at `src`.
        std::fs::create_dir_all(dir.join(STAGED_SRC))
            .map_err(|e| setup("creating the staging folder", &e))?;
        request["order_from"] = serde_json::json!(root.join(STAGED_SRC));
        request["order_to"] = serde_json::json!(parent);
    }
    std::fs::write(dir.join("request.json"), request.to_string())
        .map_err(|e| setup("writing the request", &e))?;
    Ok(Prepared {
        source_dir: parent.join(&source_top),
        source_top,
    })
}

/// A dist-info with only METADATA for a tool the image provides, so that `importlib.metadata`
/// and setuptools' requirement checks find it installed. It has no files: the tool is on PATH.
fn record_provided(env: &Path, pin: &str) -> std::io::Result<()> {
    let (name, version) = pin.split_once("==").unwrap_or((pin, "0"));
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'))
    };
    if !plain(name) || !plain(version) || name.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{pin}` is not a name==version pin"),
        ));
    }
    let info = env.join(format!("{}-{version}.dist-info", name.replace('-', "_")));
    std::fs::create_dir_all(&info)?;
    std::fs::write(
        info.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
    )?;
    std::fs::write(info.join("INSTALLER"), "rewheel (provided by the image)\n")
}

/// Unpack every crate (hostile data, as an sdist is) into `vendor/<name>-<version>`, with the
/// checksum file cargo checks against the lock, and point cargo at it, offline.
fn vendor(spec: &JobSpec, dir: &Path, root: &Path) -> Result<(), JobError> {
    let setup = |what: &str, err: &dyn std::fmt::Display| JobError::Setup(format!("{what}: {err}"));
    let vendor = dir.join(VENDOR);
    for c in &spec.crates {
        let krate = &c.krate;
        let what = format!("crate {} {}", krate.name, krate.version);
        let file = open_verified(&c.path, &krate.sha256, &what)?;
        let top = archive::extract_sdist_file(file, &c.path, &vendor, spec.limits, 0o022)
            .map_err(|e| JobError::Input(format!("crate {} {}: {e}", krate.name, krate.version)))?;
        let expected = format!("{}-{}", krate.name, krate.version);
        if top.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
            return Err(JobError::Input(format!(
                "crate {} {} unpacks to {}, not {expected}",
                krate.name,
                krate.version,
                top.display()
            )));
        }
        // No per-file sums: the archive's own sha256 was checked above (through the handle it
        // was unpacked from) and cargo checks the
        // package sum against Cargo.lock.
        let sums = serde_json::json!({ "files": {}, "package": krate.sha256 });
        std::fs::write(top.join(".cargo-checksum.json"), sums.to_string())
            .map_err(|e| setup("writing a crate checksum file", &e))?;
    }
    let home = dir.join(CARGO_HOME);
    std::fs::create_dir_all(&home).map_err(|e| setup("creating CARGO_HOME", &e))?;
    // Cargo concatenates `build.rustflags` of every config file, so a project's own flags
    // stay; a RUSTFLAGS variable would replace them all (see `vendor_remap`).
    let config = format!(
        "[source.crates-io]\nreplace-with = \"vendored\"\n\n[source.vendored]\ndirectory = {:?}\n\n[net]\noffline = true\n\n[build]\nrustflags = [{:?}]\n",
        root.join(VENDOR).display().to_string(),
        vendor_remap(root)
    );
    std::fs::write(home.join("config.toml"), config)
        .map_err(|e| setup("writing cargo's config", &e))
}

/// Open an input of the job once and check its sha256 through that handle, which is then the
/// only way the job reads it: a file replaced at `path` after this is not what gets unpacked.
fn open_verified(path: &Path, sha256: &str, what: &str) -> Result<std::fs::File, JobError> {
    let reading = |e: std::io::Error| JobError::Setup(format!("reading {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(reading)?;
    let actual = crate::fsutil::sha256_reader(&file).map_err(reading)?;
    if actual != sha256 {
        return Err(JobError::Input(format!(
            "hash mismatch for {what} {}: expected sha256 {sha256}, got {actual} (changed on disk since it was fetched?)",
            path.display()
        )));
    }
    rewound(&file).map_err(reading)
}

/// Another handle on the same open file, at its start.
fn rewound(file: &std::fs::File) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let mut again = file.try_clone()?;
    again.rewind()?;
    Ok(again)
}

/// The rustc flag that names the vendor folder `VENDOR_REMAP` in compiled code.
fn vendor_remap(root: &Path) -> String {
    format!(
        "--remap-path-prefix={}={VENDOR_REMAP}",
        root.join(VENDOR).display()
    )
}

/// Where a backend puts the host folders of its jobs under a build root, each named
/// `PID-N-CELL-NAME` for the process that made it.
pub fn jobs_folder(build_root: &Path) -> PathBuf {
    build_root.join(".jobs")
}

/// Remove the job folders of processes that died without cleaning up (SIGKILL, a crash, a
/// power cut): called when a backend starts on a build root.
pub fn sweep_orphan_jobs(build_root: &Path) {
    let jobs = jobs_folder(build_root);
    // Only rewheel's user may enter job folders: when rewheel runs as root, a build's files
    // are root's on the host, and a setuid copy of a shell left in a kept folder must not be
    // reachable by anyone else.
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&jobs);
    let _ = std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o700));
    crate::fsutil::sweep_orphans(&jobs, |name| name.split('-').next());
}

/// Give the job folder to the uid a container runs as, so the backend can write into the
/// unpacked sources (egg-info, build/). Without the right to chown, open it up instead.
pub fn hand_over(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).is_err()
        && !meta.file_type().is_symlink()
    {
        let mode = meta.permissions().mode();
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode(mode | 0o666 | if meta.is_dir() { 0o111 } else { 0 }),
        )?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            hand_over(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Normalized names the job has: its environment, and itself for an in-tree backend.
fn installed_names(spec: &JobSpec) -> Vec<String> {
    let normalize = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
    let mut names: Vec<String> = spec.env.iter().map(|w| normalize(&w.name)).collect();
    names.push(normalize(&spec.name));
    names.extend(
        spec.recipe
            .provided
            .iter()
            .filter_map(|p| p.split("==").next())
            .map(normalize),
    );
    names
}

/// Read what the frontend reported and take the wheel it names, checked. Everything is read
/// below a handle on the job's folder, opened here once: a build that swaps `out/` (or any
/// other part of its folder) for a link reaches nothing of the host through it.
pub fn collect(
    spec: &JobSpec,
    dir: &Path,
    log: Vec<u8>,
    exit_ok: bool,
) -> Result<JobOutput, JobError> {
    let folder = match Beneath::open(dir) {
        Ok(folder) => folder,
        Err(err) => {
            return Err(JobError::Failed {
                message: format!("the job's folder {} cannot be opened: {err}", dir.display()),
                log,
            });
        }
    };
    let result: serde_json::Value = folder
        .read(Path::new("result.json"), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let requires = strings("requires");
    if exit_ok && result["phase"] == "needs" {
        // Asked once, the requirements were installed and the job ran with `proceed`: a
        // backend that asks again would loop for ever.
        if spec.proceed {
            return Err(JobError::Failed {
                message: format!(
                    "the backend asked again for {:?}, which were installed",
                    strings("missing")
                ),
                log,
            });
        }
        return Err(JobError::Needs(strings("missing")));
    }
    if !exit_ok || result["phase"] != "done" {
        // What the job wrote is printed: control characters (a forged summary line, a
        // terminal escape) are shown escaped.
        let shown = |text: &str| -> String {
            text.chars()
                .flat_map(|c| match c.is_control() {
                    true => c.escape_default().collect::<Vec<_>>(),
                    false => vec![c],
                })
                .collect()
        };
        let message = match result["error"].as_str() {
            Some(error) => format!(
                "{} failed: {}",
                shown(result["phase"].as_str().unwrap_or("the build")),
                shown(error)
            ),
            None => "the build failed before the frontend reported anything".to_string(),
        };
        return Err(JobError::Failed { message, log });
    }
    let wheel_name = result["wheel"].as_str().unwrap_or_default();
    match read_wheel(spec, &folder, wheel_name) {
        Ok(wheel) => Ok(JobOutput {
            wheel_filename: wheel_name.to_string(),
            wheel,
            log,
            requires,
        }),
        Err(why) => Err(JobError::Failed {
            message: format!("the backend's wheel `{wheel_name}` was refused: {why}"),
            log,
        }),
    }
}

/// Read what the job says is its wheel as untrusted: a plain name in `out/` of the job's
/// folder, opened below its handle with no link followed anywhere on the way, bounded in size,
/// then checked as `check_wheel` does.
pub fn read_wheel(spec: &JobSpec, folder: &Beneath, filename: &str) -> Result<Vec<u8>, String> {
    if filename.is_empty()
        || filename.contains('/')
        || filename.contains('\0')
        || filename == "."
        || filename == ".."
    {
        return Err("not a file name in the output folder".into());
    }
    check_filename(&spec.name, &spec.version, filename)?;
    let bytes = folder
        .read(&Path::new("out").join(filename), MAX_WHEEL)
        .map_err(|err| match err {
            BeneathError::Link(_) => "it is a link, or lies behind one, not a file".to_string(),
            BeneathError::NotFile(_) => "it is not a regular file".into(),
            BeneathError::TooLarge { .. } => format!("it is over {MAX_WHEEL} bytes"),
            other => format!("it cannot be opened: {other}"),
        })?;
    check_wheel(&spec.name, &spec.version, filename, &bytes)?;
    Ok(bytes)
}

/// A wheel's filename as the job's: plain characters only (it is printed and becomes a file
/// name), parsing as a wheel filename of this package and version.
fn check_filename(name: &str, version: &str, filename: &str) -> Result<(), String> {
    let plain = filename
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'));
    if !plain {
        return Err(format!(
            "the name `{}` holds characters no wheel filename has",
            filename.escape_debug()
        ));
    }
    let (got_name, got_version) = crate::names::parse_wheel_filename(filename)
        .ok_or("the name does not parse as a wheel filename (NAME-VERSION-PY-ABI-PLATFORM.whl)")?;
    let expected_name = crate::names::PackageName::new(name.to_string()).ok();
    let expected_version = version.parse::<pep508_rs::pep440_rs::Version>().ok();
    if expected_name.as_ref() != Some(&got_name) || expected_version.as_ref() != Some(&got_version)
    {
        return Err(format!(
            "it names {got_name} {got_version}, but this job builds {name} {version}"
        ));
    }
    Ok(())
}

/// A wheel as the output of a job building `name` `version` (also what `merge` and a CI
/// cache take): its filename is the job's, its archive is one that every zip reader lists the
/// same way (`zipdir`), its entries stay inside the folder they are installed into, each
/// once, and its metadata is the job's: one `.dist-info` folder, of this name and version,
/// whose RECORD names only entries of the archive.
pub fn check_wheel(name: &str, version: &str, filename: &str, bytes: &[u8]) -> Result<(), String> {
    check_filename(name, version, filename)?;
    check_entries(bytes)?;
    let names = crate::zipdir::central_names(bytes).map_err(|e| format!("its archive: {e}"))?;
    let names: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let mut infos: Vec<&str> = names
        .iter()
        .filter_map(|n| n.split('/').next())
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    infos.sort_unstable();
    infos.dedup();
    let [info] = infos[..] else {
        return Err(format!(
            "it holds {} .dist-info folders, not one: {infos:?}",
            infos.len()
        ));
    };
    let stem = info.trim_end_matches(".dist-info");
    let ours = stem.rsplit_once('-').is_some_and(|(n, v)| {
        crate::names::PackageName::new(n.to_string()).ok()
            == crate::names::PackageName::new(name.to_string()).ok()
            && v.parse::<pep508_rs::pep440_rs::Version>().ok()
                == version.parse::<pep508_rs::pep440_rs::Version>().ok()
    });
    if !ours {
        return Err(format!(
            "its metadata folder `{}` is not {name} {version}'s",
            info.escape_debug()
        ));
    }
    let record_name = format!("{info}/RECORD");
    if names.contains(&record_name) {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|err| format!("it is not a zip archive ({err})"))?;
        let mut record = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                archive
                    .by_name(&record_name)
                    .map_err(|e| format!("its RECORD cannot be read ({e})"))?,
                64 << 20,
            ),
            &mut record,
        )
        .map_err(|e| format!("its RECORD cannot be read ({e})"))?;
        let entries: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        for line in record.lines().filter(|l| !l.trim().is_empty()) {
            let path = record_path(line);
            if !entries.contains(path.as_str()) {
                return Err(format!(
                    "its RECORD lists `{}`, which is not in the archive",
                    path.escape_debug()
                ));
            }
        }
    }
    Ok(())
}

/// The path of one RECORD row (CSV: the first field, maybe quoted).
fn record_path(line: &str) -> String {
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().unwrap_or_default().to_string();
    };
    let mut path = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                path.push('"');
                chars.next();
            }
            '"' => break,
            c => path.push(c),
        }
    }
    path
}

/// A wheel's entries as an installer would write them: each a relative path that stays
/// inside the folder it is unpacked into, and no name twice (which entry "wins" would depend
/// on the reader: what is compared would not be what is installed).
pub fn check_entries(bytes: &[u8]) -> Result<(), String> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|err| format!("it is not a zip archive ({err})"))?;
    let declared = crate::zipdir::central_names(bytes)
        .map_err(|err| format!("its archive is ambiguous ({err})"))?;
    let mut seen = std::collections::HashSet::new();
    for name in &declared {
        if !seen.insert(name.as_slice()) {
            return Err(format!(
                "the entry `{}` appears more than once",
                String::from_utf8_lossy(name).escape_debug()
            ));
        }
    }
    for name in &declared {
        let raw = String::from_utf8_lossy(name);
        let plain = !raw.is_empty()
            && !raw.starts_with('/')
            && !raw.chars().any(|c| c.is_control())
            && !raw.contains('\\')
            && raw.split('/').all(|part| part != ".." && part != ".");
        if !plain {
            return Err(format!(
                "the entry `{}` would land outside the folder it is installed into",
                raw.escape_debug()
            ));
        }
    }
    Ok(())
}

/// A log arriving in pieces (from the Engine API), kept as `read_log` keeps a file: the head
/// and the tail, never more than `MAX_LOG` in memory.
#[derive(Default)]
pub struct CappedLog {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    cut: u64,
}

impl CappedLog {
    pub fn push(&mut self, mut bytes: &[u8]) {
        let half = (MAX_LOG / 2) as usize;
        let room = half.saturating_sub(self.head.len());
        let (now, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(now);
        bytes = rest;
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(half);
        self.tail.drain(..over);
        self.cut += over as u64;
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = self.head;
        if self.cut > 0 {
            out.extend_from_slice(cut_notice(self.cut).as_bytes());
        }
        out.extend(self.tail);
        out
    }
}

/// The line that stands where a log was cut, the same for files and for streams.
fn cut_notice(cut: u64) -> String {
    format!(
        "\n[rewheel: {cut} bytes of this log were cut; the first and last {} are kept]\n",
        MAX_LOG / 2
    )
}

/// Read a job's log from the handle rewheel created it with (never by its path, which the job
/// could have replaced): at most `MAX_LOG` bytes kept, the head and the tail, with the cut said
/// in between. Positioned reads leave the file offset, shared with the job's stdout, alone.
pub fn read_log(file: &std::fs::File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let read = |from: u64, len: u64, into: &mut Vec<u8>| {
        let start = into.len();
        into.resize(start + len as usize, 0);
        let mut got = 0;
        while got < len as usize {
            match file.read_at(&mut into[start + got..], from + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        into.truncate(start + got);
    };
    let len = meta.len();
    let mut bytes = Vec::new();
    if len <= MAX_LOG {
        read(0, len, &mut bytes);
        return bytes;
    }
    let half = MAX_LOG / 2;
    bytes.reserve(MAX_LOG as usize + 128);
    read(0, half, &mut bytes);
    bytes.extend_from_slice(cut_notice(len - 2 * half).as_bytes());
    read(len - half, half, &mut bytes);
    bytes
}

/// The environment a job sees: an allow-list, nothing inherited, then what the package's
/// settings set (which wins: a per-package pin is how a remedy holds against a variation).
pub fn environment(spec: &JobSpec, root: &Path, source_dir: &Path) -> Vec<(String, String)> {
    let settings = &spec.settings;
    let mut env = vec![
        ("PATH".into(), settings.path.clone()),
        (
            "HOME".into(),
            root.join(&settings.home).display().to_string(),
        ),
        ("TMPDIR".into(), root.join("tmp").display().to_string()),
        ("LANG".into(), settings.locale.clone()),
        ("LC_ALL".into(), settings.locale.clone()),
        ("TZ".into(), settings.timezone.clone()),
        ("PYTHONHASHSEED".into(), settings.hash_seed.clone()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ("PYTHONNOUSERSITE".into(), "1".into()),
        ("PIP_NO_INDEX".into(), "1".into()),
    ];
    if let Some(cpus) = spec.recipe.cpus {
        let n = cpus.to_string();
        env.push(("MAKEFLAGS".into(), format!("-j{n}")));
        for var in [
            "CMAKE_BUILD_PARALLEL_LEVEL",
            "CARGO_BUILD_JOBS",
            "MAX_JOBS",
            "NPY_NUM_BUILD_JOBS",
        ] {
            env.push((var.into(), n.clone()));
        }
    }
    if !spec.crates.is_empty() {
        env.push((
            "CARGO_HOME".into(),
            root.join(CARGO_HOME).display().to_string(),
        ));
        env.push(("CARGO_NET_OFFLINE".into(), "true".into()));
    }
    if let Some(epoch) = settings.source_date_epoch {
        env.push(("SOURCE_DATE_EPOCH".into(), epoch.to_string()));
    }
    if let Some(offset) = spec.recipe.clock.as_ref().or(settings.faketime.as_ref()) {
        // The monotonic clock moves by the same offset, which keeps its differences, so
        // timeouts hold. FAKETIME_DONT_FAKE_MONOTONIC would keep it real, but Debian's
        // libfaketime (0.9.10) then fails Python's subprocess timeouts with EINVAL:
        // scikit-build-core found no CMake, and pyzmq and pybind11 did not build.
        env.push(("LD_PRELOAD".into(), LIBFAKETIME.into()));
        env.push(("FAKETIME".into(), offset.clone()));
    }
    env.extend(settings.extra_env.iter().cloned());
    for (key, value) in &spec.recipe.env {
        env.retain(|(k, _)| k != key);
        // `{source_dir}` is where this job's tree is: what -ffile-prefix-map needs to name.
        let mut value = value.replace(SOURCE_DIR, &source_dir.display().to_string());
        // RUSTFLAGS replaces cargo's configured flags, the vendor remap among them.
        if key == "RUSTFLAGS" && !spec.crates.is_empty() {
            value = format!("{value} {}", vendor_remap(root));
        }
        env.push((key.clone(), value));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn an_input_whose_bytes_are_not_its_recorded_hash_is_refused_by_name() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-1.0.tar.gz");
        std::fs::write(&path, b"A").unwrap();
        let sha = crate::fsutil::sha256_hex(b"A");
        let mut file = super::open_verified(&path, &sha, "the sdist").unwrap();
        // Replaced after the check: the handle still reads what was checked.
        std::fs::write(dir.path().join("b"), b"B").unwrap();
        std::fs::rename(dir.path().join("b"), &path).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"A");
        let err = super::open_verified(&path, &sha, "the sdist").unwrap_err();
        assert!(
            err.to_string().contains("hash mismatch for the sdist")
                && err.to_string().contains("x-1.0.tar.gz"),
            "{err}"
        );
    }

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
}
