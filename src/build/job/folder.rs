//! The job's folder: laid out the same for every backend, filled from inputs opened once and
//! checked by hash through that handle, handed to the job's user, swept when orphaned.

use super::spec::{
    CARGO_HOME, ENV_DIR_PLACEHOLDER, FRONTEND, IDENTITY, JobError, JobSpec, LIBFAKETIME,
    SOURCE_DIR, STAGED_SRC, VENDOR, VENDOR_REMAP,
};
use crate::build::site_cache::{Compile, SiteCache};
use crate::build::wheel_install::install_wheel_file;
use crate::resolve::archive;
use std::path::{Path, PathBuf};

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
/// `src/<sdist top>/`, `env/` (the build environment; another name under the `build-env-path`
/// variation), `out/`, `frontend/`, `tmp/`, `home/`, `identity/` (passwd and group).
pub struct Prepared {
    pub source_top: String,
    /// Where the job sees the unpacked source tree (`{source_dir}` in per-package env values).
    pub source_dir: PathBuf,
    /// Where the job sees its build environment (`{env_dir}` in per-package env values).
    pub env_dir: PathBuf,
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
    // A plan from elsewhere names the home and environment folders: plain names in the job's
    // folder only, and none of the folders the job's layout holds.
    let env_dir = spec.settings.env_dir.as_str();
    for (what, name) in [
        ("home", spec.settings.home.as_str()),
        ("environment", env_dir),
    ] {
        if crate::cell::CellId::new(name).is_err() {
            return Err(JobError::Input(format!(
                "{what} folder `{name}` is not a plain folder name"
            )));
        }
    }
    // The environment's console scripts go beside it, in `<env_dir>-bin`.
    let bin_dir = format!("{env_dir}-bin");
    let layout = [
        "src", "out", "frontend", "tmp", IDENTITY, STAGED_SRC, VENDOR, CARGO_HOME,
    ];
    let home = spec.settings.home.as_str();
    if layout.contains(&env_dir)
        || layout.contains(&bin_dir.as_str())
        || [env_dir, bin_dir.as_str()].contains(&home)
    {
        return Err(JobError::Input(format!(
            "environment folder `{env_dir}` is a folder the job's layout already has"
        )));
    }
    for sub in [
        "src",
        env_dir,
        "out",
        "frontend",
        "tmp",
        IDENTITY,
        spec.settings.home.as_str(),
    ] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| setup("creating the build folder", &e))?;
    }
    let (passwd, group) = spec
        .settings
        .identity_files(&root.join(&spec.settings.home))
        .map_err(JobError::Input)?;
    for (name, text) in [("passwd", passwd), ("group", group)] {
        std::fs::write(dir.join(IDENTITY).join(name), text)
            .map_err(|e| setup("writing the job's user entries", &e))?;
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
            EnvFill::Unpack => install_wheel_file(file, &wheel.path, &dir.join(env_dir))
                .map_err(|e| setup("installing the build environment", &e))?,
            EnvFill::Link { cache, compile } => cache
                .install(
                    &wheel.path,
                    &file,
                    &wheel.sha256,
                    &dir.join(env_dir),
                    *compile,
                )
                .map_err(|e| setup("installing the build environment", &e))?,
        }
    }
    if !spec.crates.is_empty() {
        vendor(spec, dir, root)?;
    }
    for provided in &spec.recipe.provided {
        record_provided(&dir.join(env_dir), provided)
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
        "site_dirs": [root.join(env_dir)],
        "bin_dir": root.join(&bin_dir),
        "installed": installed_names(spec),
        "proceed": spec.proceed,
        "probe": spec.probe,
        "config_settings": spec.recipe.config_settings,
        "setup_py": spec.recipe.setup_py,
        "repair": spec.recipe.repair.as_ref().map(|program| [program]),
        "listing_order": spec.recipe.listing_order,
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
        env_dir: root.join(env_dir),
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
pub(super) fn open_verified(
    path: &Path,
    sha256: &crate::digest::Sha256,
    what: &str,
) -> Result<std::fs::File, JobError> {
    let reading = |e: std::io::Error| JobError::Setup(format!("reading {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(reading)?;
    let actual = crate::fsutil::sha256_reader(&file).map_err(reading)?;
    if actual != *sha256 {
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

/// The environment a job sees: an allow-list, nothing inherited, then what the package's
/// settings set (which wins: a per-package pin is how a remedy holds against a variation).
pub fn environment(spec: &JobSpec, root: &Path, prepared: &Prepared) -> Vec<(String, String)> {
    let settings = &spec.settings;
    let mut env = vec![
        ("USER".into(), settings.user.clone()),
        ("LOGNAME".into(), settings.user.clone()),
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
    if !settings.language.is_empty() {
        env.push(("LANGUAGE".into(), settings.language.clone()));
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
        // The frontend fakes the times of the files the build writes (frontend.py's file
        // clock); libfaketime must not shift every file's time on top of it.
        env.push(("NO_FAKE_STAT".into(), "1".into()));
    }
    env.extend(settings.extra_env.iter().cloned());
    for (key, value) in &spec.recipe.env {
        env.retain(|(k, _)| k != key);
        // `{source_dir}` is where this job's tree is, `{env_dir}` its build environment: what
        // -ffile-prefix-map needs to name.
        let mut value = value
            .replace(SOURCE_DIR, &prepared.source_dir.display().to_string())
            .replace(ENV_DIR_PLACEHOLDER, &prepared.env_dir.display().to_string());
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
}
