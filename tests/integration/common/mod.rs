//! What every integration test shares: tiny sdists (and one wheel) written by the tests, a
//! one-file PEP 517 backend (`TINYBUILD`), the `World` a local-backend test runs in, and ways
//! to run the binary and to skip a gated test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Sdist<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub files: Vec<(&'a str, String)>,
}

impl<'a> Sdist<'a> {
    pub fn new(name: &'a str, version: &'a str) -> Self {
        Self {
            name,
            version,
            files: Vec::new(),
        }
    }

    pub fn file(mut self, path: &'a str, text: impl Into<String>) -> Self {
        self.files.push((path, text.into()));
        self
    }

    /// `[build-system]` with these requirements and backend.
    pub fn pyproject(self, requires: &[&str], backend: &str, backend_path: Option<&str>) -> Self {
        let requires: Vec<String> = requires.iter().map(|r| format!("{r:?}")).collect();
        let mut text = format!(
            "[build-system]\nrequires = [{}]\nbuild-backend = {backend:?}\n",
            requires.join(", ")
        );
        if let Some(path) = backend_path {
            text.push_str(&format!("backend-path = [{path:?}]\n"));
        }
        self.file("pyproject.toml", text)
    }

    /// PKG-INFO with the given metadata version and Requires-Dist lines.
    pub fn pkg_info(self, metadata_version: &str, requires: &[&str]) -> Self {
        let mut text = format!(
            "Metadata-Version: {metadata_version}\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        for r in requires {
            text.push_str(&format!("Requires-Dist: {r}\n"));
        }
        self.file("PKG-INFO", text)
    }

    pub fn write(self, dir: &Path) -> PathBuf {
        let top = format!("{}-{}", self.name.replace('-', "_"), self.version);
        let path = dir.join(format!("{top}.tar.gz"));
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        for (rel, text) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("{top}/{rel}"), text.as_bytes())
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }
}

/// A raw tar entry, written without the tar crate's path checks, to make hostile archives.
pub struct RawEntry<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub link: Option<&'a str>,
    pub data: Vec<u8>,
}

pub fn write_raw_tar_gz(path: &Path, entries: &[RawEntry]) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_gnu_mut().unwrap().name;
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = entry.link {
            let field = &mut header.as_gnu_mut().unwrap().linkname;
            field[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        tar.append(&header, entry.data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// A pure wheel with a METADATA file, for `--allow-binary`.
pub fn write_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    let dist = name.replace('-', "_");
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for r in requires {
        metadata.push_str(&format!("Requires-Dist: {r}\n"));
    }
    zip.start_file(format!("{dist}-{version}.dist-info/METADATA"), options)
        .unwrap();
    zip.write_all(metadata.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

/// The fixture world: a miniature of the 2022 setuptools-scm / importlib-metadata cycle, with
/// every way an sdist can state its needs.
///
/// - `dateapp 1.0`: pyproject requires an in-tree backend and `scm-tool`; PKG-INFO 2.2 (reliable).
/// - `scm-tool 7.0`: setup.py only (PEP 517 fallback); egg-info requires.txt needing `meta-lib`
///   on Python < 3.8 and `tomli-like` for its `toml` extra. `scm-tool 6.0` needs no `meta-lib`.
/// - `meta-lib 4.0`: requires `scm_tool[toml]>=3.4.1` to build, `zipp-like` at run time.
/// - `zipp-like 3.0`: setuptools backend with `setup_requires` in setup.cfg.
/// - `sixish 1.0`: setup.py whose literal `setup_requires` names `tomli-like`.
/// - `tomli-like 2.0`, `flit-core 3.7`: flit-style; flit-core's backend is in-tree.
/// - `inhouse-backend 1.0`: an in-tree backend that lists itself in its requirements.
/// - `setuptools 70.0` (in-tree, requires wheel) and `wheel 0.37` (setup.py only): the
///   toolchain roots, which need each other.
pub fn world(dir: &Path) {
    let setuptools_backend = "setuptools.build_meta";
    Sdist::new("dateapp", "1.0")
        .pyproject(&["inhouse-backend", "scm-tool"], "inhouse_backend", None)
        .pkg_info("2.2", &["sixish"])
        .write(dir);
    Sdist::new("inhouse-backend", "1.0")
        .pyproject(&["inhouse-backend"], "inhouse_backend", Some("."))
        .pkg_info("2.2", &[])
        .write(dir);
    for (version, meta) in [("7.0", true), ("6.0", false)] {
        let mut requires = String::from("packagingish>=20\n");
        if meta {
            requires.push_str("\n[:python_version < \"3.8\"]\nmeta-lib\n");
        }
        requires.push_str("\n[toml]\ntomli-like>=1\n");
        Sdist::new("scm-tool", version)
            .file("setup.py", "from setuptools import setup\nsetup()\n")
            .pkg_info("2.1", &[])
            .file("src/scm_tool.egg-info/requires.txt", requires)
            .file("src/scm_tool.egg-info/PKG-INFO", "Metadata-Version: 2.1\n")
            .write(dir);
    }
    Sdist::new("meta-lib", "4.0")
        .pyproject(
            &["setuptools>=56", "scm_tool[toml]>=3.4.1"],
            setuptools_backend,
            None,
        )
        .pkg_info("2.1", &[])
        .file("meta_lib.egg-info/requires.txt", "zipp-like>=0.5\n")
        .write(dir);
    Sdist::new("zipp-like", "3.0")
        .pyproject(&["setuptools"], setuptools_backend, None)
        .file(
            "setup.cfg",
            "[metadata]\nname = zipp-like\n[options]\nsetup_requires =\n    scm-tool>=3\n",
        )
        .pkg_info("2.1", &[])
        .file("zipp_like.egg-info/PKG-INFO", "Metadata-Version: 2.1\n")
        .write(dir);
    Sdist::new("sixish", "1.0")
        .file("setup.py", "from setuptools import setup\nREQS = ['tomli-like']\nsetup(name='sixish', setup_requires=REQS)\n")
        .pkg_info("2.1", &[])
        .file("sixish.egg-info/PKG-INFO", "Metadata-Version: 2.1\n")
        .write(dir);
    Sdist::new("packagingish", "21.0")
        .pyproject(&["flit_core >=3.2,<4"], "flit_core.buildapi", None)
        .pkg_info("2.1", &[])
        .write(dir);
    Sdist::new("tomli-like", "2.0")
        .pyproject(&["flit_core >=3.2,<4"], "flit_core.buildapi", None)
        .pkg_info("2.1", &[])
        .write(dir);
    Sdist::new("flit-core", "3.7")
        .pyproject(&[], "flit_core.buildapi", Some("."))
        .pkg_info("2.1", &[])
        .write(dir);
    Sdist::new("setuptools", "70.0")
        .pyproject(&["wheel"], "setuptools.build_meta", Some("."))
        .pkg_info("2.2", &[])
        .write(dir);
    Sdist::new("wheel", "0.37")
        .file("setup.py", "from setuptools import setup\nsetup()\n")
        .pkg_info("2.1", &[])
        .file("wheel.egg-info/PKG-INFO", "Metadata-Version: 2.1\n")
        .write(dir);
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `rewheel ARGS` with a private cache and no index but the given find-links folder.
pub fn rewheel(find_links: &Path, args: &[&str]) -> Run {
    let cache = find_links.join(".cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(args)
        .arg("--no-index")
        .arg("--find-links")
        .arg(find_links)
        .arg("--cache-dir")
        .arg(&cache)
        .env_remove("PIP_INDEX_URL")
        .env_remove("RUST_LOG");
    run(command)
}

pub fn run(mut command: Command) -> Run {
    let out = command.output().expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Skip a gated test, saying why: on the terminal, and in the file `REWHEEL_SKIP_LOG` names,
/// which `.ci/run` prints at the end (the test runner hides what passing tests print).
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIPPED {test}: {reason}");
    println!("SKIPPED {test}: {reason}");
    if let Ok(path) = std::env::var("REWHEEL_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "SKIPPED {test}: {reason}");
        }
    }
}

/// A PEP 517 backend in one file: imports what `needs.txt` names (so a missing build
/// dependency fails the build), runs `hook.py` if present, writes a wheel with fixed times.
pub const TINYBUILD: &str = r#"
import importlib, os, zipfile, hashlib, base64

def _meta():
    name, version = open("NAME").read().split()
    return name, version

def get_requires_for_build_wheel(config_settings=None):
    # What the backend decides at build time, as hatchling's own in-tree hook does.
    return open("dynamic.txt").read().split() if os.path.exists("dynamic.txt") else []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _meta()
    for module in open("needs.txt").read().split():
        importlib.import_module(module)
    if os.path.exists("hook.py"):
        exec(open("hook.py").read())
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": open("module.py", "rb").read(),
        f"{info}/METADATA": open("PKG-INFO", "rb").read(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tinybuild\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if os.path.exists("entry_points.txt"):
        files[f"{info}/entry_points.txt"] = open("entry_points.txt", "rb").read()
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = f"{dist}-{version}-py3-none-any.whl"
    import time
    # Two ways real backends leak the environment into the archive, switched on by a file.
    stamp = time.localtime()[:6] if os.path.exists("clock_times.txt") else (1980, 1, 1, 0, 0, 0)
    mode = os.stat("module.py").st_mode & 0o777 if os.path.exists("modes.txt") else 0o644
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = mode << 16
            z.writestr(entry, data)
    return filename
"#;

pub fn package<'a>(
    name: &'a str,
    version: &'a str,
    build_requires: &[&str],
    runtime: &[&str],
) -> Sdist<'a> {
    let needs: Vec<String> = build_requires.iter().map(|r| r.replace('-', "_")).collect();
    Sdist::new(name, version)
        .pyproject(build_requires, "tinybuild", Some("."))
        .pkg_info("2.2", runtime)
        .file("tinybuild.py", TINYBUILD)
        .file("NAME", format!("{name} {version}"))
        .file("needs.txt", needs.join("\n"))
        .file("module.py", format!("NAME = {name:?}\n"))
}

/// The host's real interpreter (not a shim), and its X.Y.
/// The real interpreter for X.Y on this host, if there is one, found as rewheel finds it.
pub fn host_has_python(version: &str) -> Option<PathBuf> {
    let (major, minor) = version.split_once('.')?;
    rewheel::build::interpreter::find(major.parse().ok()?, minor.parse().ok()?, &[]).map(|i| i.path)
}

pub fn host_python() -> (PathBuf, String) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        PathBuf::from(lines.next().unwrap()),
        lines.next().unwrap().to_string(),
    )
}

pub struct World {
    dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rewheel SUB ARGS` on the local backend, with this world's find-links folder, cache,
    /// store, wheelhouse and build folder, and the host's interpreter as the cell.
    pub fn command(&self, sub: &str, args: &[&str]) -> Command {
        self.command_out(sub, args, &self.path().join("wheelhouse"))
    }

    /// The same, with the wheels going to `out`.
    pub fn command_out(&self, sub: &str, args: &[&str], out: &Path) -> Command {
        let (python, version) = host_python();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .arg(sub)
            .args(args)
            .args([
                "--python",
                &version,
                "--backend",
                "local",
                "--no-index",
                "--find-links",
            ])
            .arg(self.path())
            .arg("--python-path")
            .arg(python)
            .arg("--cache-dir")
            .arg(self.path().join(".cache"))
            .arg("--store")
            .arg(self.path().join(".store"))
            .arg("--out")
            .arg(out)
            .arg("--build-path")
            .arg(self.path().join(".build"))
            .env_remove("PIP_INDEX_URL");
        command
    }

    pub fn build(&self, args: &[&str]) -> Run {
        run(self.command("build", args))
    }

    pub fn wheels(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join("wheelhouse"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|cell| std::fs::read_dir(cell.path()).unwrap().flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A three-package closure (`lib`; `tool` needing `lib`; `app` built with `tool`) whose `app`
/// embeds its build folder, so builds elsewhere must agree on that folder too.
pub fn three_package_closure(dir: &Path) {
    package("lib", "2.0", &[], &[]).write(dir);
    package("tool", "1.0", &[], &["lib"]).write(dir);
    package("app", "1.0", &["tool"], &["lib"])
        .file(
            "hook.py",
            "open('module.py', 'a').write(f'WHERE = {os.getcwd()!r}\\n')",
        )
        .write(dir);
}

/// The lines a check or compare report gives under a wheel, up to the next wheel.
pub fn block(out: &str, wheel: &str) -> String {
    let mut lines = out.lines().skip_while(|l| !l.contains(wheel));
    let mut text = String::from(lines.next().unwrap_or_default());
    for l in lines.take_while(|l| !l.starts_with("  ok") && !l.starts_with("  DIFF")) {
        text.push('\n');
        text.push_str(l);
    }
    text
}
