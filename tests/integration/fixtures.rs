//! Tiny sdists (and one wheel) written by the tests, and a way to run the binary on them.

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
