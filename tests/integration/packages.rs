//! Per-package build settings (`[packages.NAME]` in `--settings FILE` or a matrix): env,
//! config settings, extra build requirements, patches and system packages reach the build, are
//! shown by `resolve`, and are inputs of the fingerprint.

use crate::common::{World, package, rewheel};
use rewheel::exit::ExitCode;
use std::io::Read;

/// The text of `<pkg>/__init__.py` in the one wheel of `world`'s wheelhouse named `pkg`.
fn module_text(world: &World, pkg: &str) -> String {
    let cell = std::fs::read_dir(world.path().join("wheelhouse"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let wheel = std::fs::read_dir(&cell)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(pkg))
        .expect("the wheel is there");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(&format!("{pkg}/__init__.py"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// `rewheel resolve ARGS` for the host's interpreter, on `world`'s find-links folder.
fn resolve(world: &World, args: &[&str]) -> crate::common::Run {
    let (_, version) = crate::common::host_python();
    let mut all = vec!["resolve", "--python", &version];
    all.extend_from_slice(args);
    rewheel(world.path(), &all)
}

fn settings(world: &World, text: &str) -> String {
    let path = world.path().join("settings.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const PATCH: &str =
    "--- a/module.py\n+++ b/module.py\n@@ -1 +1,2 @@\n NAME = \"app\"\n+PATCHED = VALUE\n";

fn app(world: &World) {
    // The hook records what the build saw: an env variable and the config settings.
    package("app", "1.0", &[], &[])
        .file(
            "hook.py",
            "open('module.py', 'a').write(f'ENV = {os.environ.get(\"APP_FLAVOUR\")!r}\\nCONFIG = {config_settings!r}\\n')",
        )
        .write(world.path());
}

#[test]
fn env_config_settings_and_patches_reach_the_build_and_resolve_shows_them() {
    let world = World::new();
    app(&world);
    std::fs::write(world.path().join("one.patch"), PATCH.replace("VALUE", "1")).unwrap();
    let file = settings(
        &world,
        "[packages.app]\nenv = { APP_FLAVOUR = \"mild\" }\n\
         config-settings = { mode = \"fast\", opts = [\"-a\", \"-b\"] }\npatches = [\"one.patch\"]\n",
    );
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    let text = module_text(&world, "app");
    assert!(text.contains("PATCHED = 1"), "{text}");
    assert!(text.contains("ENV = 'mild'"), "{text}");
    assert!(
        text.contains("CONFIG = {'mode': 'fast', 'opts': ['-a', '-b']}"),
        "{text}"
    );

    let shown = resolve(&world, &["app==1.0", "--settings", &file]);
    assert_eq!(shown.code, ExitCode::Success, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("app 1.0  (env: APP_FLAVOUR; config-settings: 2; patches: one.patch)"),
        "{}",
        shown.stdout
    );
    let json = resolve(
        &world,
        &["app==1.0", "--settings", &file, "--format", "json"],
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let node = &doc["cells"][0]["nodes"][0];
    assert_eq!(node["settings"]["env"]["APP_FLAVOUR"], "mild");
    assert_eq!(node["settings"]["patches"][0]["name"], "one.patch");
    assert_eq!(
        node["settings"]["patches"][0]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn a_changed_patch_is_a_new_job_and_the_same_patch_is_reused() {
    let world = World::new();
    app(&world);
    let patch = world.path().join("one.patch");
    let file = settings(&world, "[packages.app]\npatches = [\"one.patch\"]\n");
    std::fs::write(&patch, PATCH.replace("VALUE", "1")).unwrap();
    let first = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(
        first.code,
        ExitCode::Success,
        "{}{}",
        first.stdout,
        first.stderr
    );
    let again = world.build(&["app==1.0", "--settings", &file]);
    assert!(again.stdout.contains("(1 reused)"), "{}", again.stdout);

    std::fs::write(&patch, PATCH.replace("VALUE", "2")).unwrap();
    let changed = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(
        changed.code,
        ExitCode::Success,
        "{}{}",
        changed.stdout,
        changed.stderr
    );
    assert!(!changed.stdout.contains("reused"), "{}", changed.stdout);
    assert!(module_text(&world, "app").contains("PATCHED = 2"));

    // Without the settings the job is the plain one again: another fingerprint still.
    let plain = world.build(&["app==1.0"]);
    assert!(!plain.stdout.contains("reused"), "{}", plain.stdout);
    assert!(!module_text(&world, "app").contains("PATCHED"));
}

#[test]
fn build_requires_add_to_the_build_environment() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    // `needy` imports helper while building but does not declare it.
    package("needy", "1.0", &[], &[])
        .file("needs.txt", "helper")
        .write(world.path());
    let without = world.build(&["needy==1.0"]);
    assert_eq!(
        without.code,
        ExitCode::BuildFailed,
        "{}{}",
        without.stdout,
        without.stderr
    );
    let file = settings(&world, "[packages.needy]\nbuild-requires = [\"helper\"]\n");
    let with = world.build(&["needy==1.0", "--settings", &file]);
    assert_eq!(
        with.code,
        ExitCode::Success,
        "{}{}",
        with.stdout,
        with.stderr
    );
}

#[test]
fn settings_errors_name_the_file_line_and_what_to_do() {
    let world = World::new();
    app(&world);
    let file = settings(&world, "[packages.app]\nsytem = [\"libffi-dev\"]\n");
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Input, "{}", out.stderr);
    assert!(out.stderr.contains("settings.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("line 2, column 1"), "{}", out.stderr);

    // A system package the host lacks stops the local backend before any job, with the fix.
    let file = settings(
        &world,
        "[packages.app]\nsystem = [\"rewheel-no-such-package\"]\n",
    );
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Input, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("system packages this host lacks: rewheel-no-such-package"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: apt-get install"),
        "{}",
        out.stderr
    );

    // A provided tool's packages are the image's whether or not this resolution uses the
    // tool: the image does not change when a later run learns a build-time requirement.
    let file = settings(
        &world,
        "[provided]\nsometool = { version = \"1.0\", system = [\"rewheel-no-such-tool\"] }\n",
    );
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Input, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("system packages this host lacks: rewheel-no-such-tool"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_patch_cannot_write_outside_the_source_tree() {
    let world = World::new();
    app(&world);
    let sentinel = tempfile::tempdir().unwrap();
    let victim = sentinel.path().join("victim");
    std::fs::write(&victim, "NAME = \"app\"\n").unwrap();
    // Enough `..` to reach `/` from any job folder, then the victim's absolute path.
    let escape = format!(
        "{}{}",
        "../".repeat(40),
        victim.display().to_string().trim_start_matches('/')
    );
    let hostile = PATCH
        .replace("a/module.py", &format!("a/{escape}"))
        .replace("b/module.py", &format!("b/{escape}"));
    std::fs::write(world.path().join("evil.patch"), hostile).unwrap();
    let file = settings(&world, "[packages.app]\npatches = [\"evil.patch\"]\n");
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(
        out.code,
        ExitCode::Input,
        "an input error: {}{}",
        out.stdout,
        out.stderr
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("patch evil.patch") && all.contains("is not a path inside the source tree"),
        "{all}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "NAME = \"app\"\n",
        "the file outside the job is untouched"
    );
}

/// A PEP 517 backend that builds a Rust cdylib with cargo, offline, and wheels it.
const RUSTBUILD: &str = r#"
import base64, hashlib, os, subprocess, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    subprocess.run(["cargo", "build", "--release", "--locked"], check=True)
    files = {
        "rustext/__init__.py": b"",
        "rustext/_native.so": open("target/release/librustext.so", "rb").read(),
        "rustext-0.1.0.dist-info/METADATA": open("PKG-INFO", "rb").read(),
        "rustext-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: rustbuild\nRoot-Is-Purelib: false\nTag: py3-none-linux_x86_64\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("rustext-0.1.0.dist-info/RECORD,,")
    files["rustext-0.1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    name = "rustext-0.1.0-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return name
"#;

/// The compiled library of the `rustext` wheel a world built.
fn native_library(world: &World) -> Vec<u8> {
    use std::io::Read;
    let wheel = std::fs::read_dir(world.path().join("wheelhouse"))
        .unwrap()
        .flatten()
        .map(|cell| cell.path().join("rustext-0.1.0-py3-none-linux_x86_64.whl"))
        .find(|w| w.exists())
        .expect("the rustext wheel");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
    let mut bytes = Vec::new();
    zip.by_name("rustext/_native.so")
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// A tiny Rust extension whose Cargo.lock pins one small crate from the registry.
pub fn rust_extension(dir: &std::path::Path) {
    crate::common::Sdist::new("rustext", "0.1.0")
        .pyproject(&[], "rustbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("rustbuild.py", RUSTBUILD)
        .file(
            "Cargo.toml",
            "[package]\nname = \"rustext\"\nversion = \"0.1.0\"\nedition = \"2018\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\npath = \"lib.rs\"\n\n\
             [dependencies]\nitoa = \"=1.0.11\"\n\n\
             [profile.release]\ndebug = true\n",
        )
        .file(
            "Cargo.lock",
            "version = 3\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
             source = \"registry+https://github.com/rust-lang/crates.io-index\"\n\
             checksum = \"49f1f14873335454500d59611f1cf4a4b0f786f9ac11f4312a78e4cf2566695b\"\n\n\
             [[package]]\nname = \"rustext\"\nversion = \"0.1.0\"\ndependencies = [\n \"itoa\",\n]\n",
        )
        .file(
            "lib.rs",
            "#[no_mangle]\npub extern \"C\" fn answer_len() -> usize {\n    itoa::Buffer::new().format(42u32).len()\n}\n",
        )
        .write(dir);
}

pub fn crates_io_answers() -> bool {
    std::process::Command::new("curl")
        .args([
            "-sfI",
            "--max-time",
            "10",
            &format!(
                "{}/itoa/itoa-1.0.11.crate",
                rewheel::resolve::crates::CRATES_URL
            ),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_rust_extension_builds_offline_from_crates_vendored_by_hash() {
    if !crates_io_answers() {
        return crate::common::skip("the crate registry does not answer");
    }
    // The toolchain is the system's (Debian's cargo), declared as a system package, as it
    // would be for an image.
    if !std::path::Path::new("/usr/bin/cargo").exists() {
        return crate::common::skip("no Debian cargo (apt-get install cargo)");
    }
    let world = World::new();
    rust_extension(world.path());
    let file = settings(&world, "[packages.rustext]\nsystem = [\"cargo\"]\n");
    let shown = resolve(&world, &["rustext==0.1.0", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        doc["cells"][0]["nodes"][0]["crates"][0]["name"], "itoa",
        "{}",
        shown.stdout
    );

    let out = world.build(&["rustext==0.1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    assert_eq!(world.wheels(), ["rustext-0.1.0-py3-none-linux_x86_64.whl"]);
    // The vendored crates' folder is rewheel's choice: their debug info names a fixed folder,
    // never the job's, which moves with the build path.
    let so = native_library(&world);
    let has = |needle: &str| so.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("/rewheel/vendor/itoa-1.0.11"), "no remapped crate path");
    assert!(
        !String::from_utf8_lossy(&so)
            .split(|c: char| c.is_control())
            .any(|s| s.contains("/vendor/itoa") && !s.starts_with("/rewheel/vendor/")),
        "a crate path outside the remapped folder is in the library"
    );

    // The lock's checksum is what is trusted: a lock naming another sum fails before the job.
    let tampered = World::new();
    crate::common::Sdist::new("rustext", "0.1.0")
        .pyproject(&[], "rustbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("rustbuild.py", RUSTBUILD)
        .file(
            "Cargo.lock",
            format!(
                "version = 3\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
                "0".repeat(64)
            ),
        )
        .write(tampered.path());
    let out = tampered.build(&["rustext==0.1.0"]);
    assert_ne!(out.code, ExitCode::Success);
    assert!(
        out.stderr.contains("hash mismatch for itoa-1.0.11"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_provided_tool_stands_in_for_a_build_requirement_and_is_shown() {
    let world = World::new();
    // Requires PyPI's cmake to build; the find-links folder has none.
    package("usescmake", "1.0", &["cmake>=3.18"], &[])
        .file("needs.txt", "")
        .file(
            "hook.py",
            "import importlib.metadata\nopen('module.py', 'a').write(f'CMAKE = {importlib.metadata.version(\"cmake\")!r}\\n')",
        )
        .write(world.path());
    let without = world.build(&["usescmake==1.0"]);
    assert_ne!(without.code, ExitCode::Success, "{}", without.stderr);
    assert!(without.stderr.contains("cmake"), "{}", without.stderr);

    let file = settings(&world, "[provided]\ncmake = { version = \"3.25.1\" }\n");
    let out = world.build(&["usescmake==1.0", "--settings", &file]);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    assert_eq!(world.wheels(), ["usescmake-1.0-py3-none-any.whl"]);
    assert!(module_text(&world, "usescmake").contains("CMAKE = '3.25.1'"));

    let shown = resolve(&world, &["usescmake==1.0", "--settings", &file]);
    assert!(
        shown
            .stdout
            .contains("cmake 3.25.1  (provided by the image)"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("1 packages to build from source"),
        "{}",
        shown.stdout
    );
    let reqs = resolve(
        &world,
        &[
            "usescmake==1.0",
            "--settings",
            &file,
            "--format",
            "requirements",
        ],
    );
    assert!(
        reqs.stdout
            .contains("# cmake==3.25.1: provided by the image"),
        "{}",
        reqs.stdout
    );

    // A provided version the requirement excludes is a resolution error, not a silent pass.
    let old = settings(&world, "[provided]\ncmake = { version = \"3.10\" }\n");
    let out = world.build(&["usescmake==1.0", "--settings", &old]);
    assert_eq!(out.code, ExitCode::Input, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("cmake"), "{}", out.stderr);
}

#[test]
fn a_python_the_build_starts_sees_the_build_environment() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    // As cmake runs `python3 -m cython`: a child interpreter imports a build dependency.
    package("spawner", "1.0", &["helper"], &[])
        .file(
            "hook.py",
            "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import helper'], check=True)\n",
        )
        .write(world.path());
    let out = world.build(&["spawner==1.0"]);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
}

#[test]
fn the_build_environment_s_commands_are_on_path() {
    let world = World::new();
    // A build tool distributed with a console script, as meson is (a wheel taken as is).
    let wheel = world.path().join("toolcmd-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, body) in [
        (
            "toolcmd/__init__.py",
            "def main():\n    print('tool ran')\n    return 0\n",
        ),
        (
            "toolcmd-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: toolcmd\nVersion: 1.0\n",
        ),
        (
            "toolcmd-1.0.dist-info/entry_points.txt",
            "[console_scripts]\ntoolcmd = toolcmd:main\n",
        ),
        // As maturin ships its binary: a script of the wheel's own, not an entry point.
        (
            "toolcmd-1.0.data/scripts/toolbin",
            "#!/bin/sh\necho bin ran\n",
        ),
        // A Python script, whose `#!python` line an installer points at the interpreter.
        (
            "toolcmd-1.0.data/scripts/toolpy",
            "#!python\nimport sys\nprint('py ran', sys.version_info[0])\n",
        ),
    ] {
        let mode = if name.contains(".data/scripts/") {
            0o755
        } else {
            0o644
        };
        zip.start_file(name, options.unix_permissions(mode))
            .unwrap();
        std::io::Write::write_all(&mut zip, body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    // meson-python runs `meson`; this backend runs `toolcmd`, found on PATH.
    package("usestool", "1.0", &["toolcmd"], &[])
        .file("needs.txt", "")
        .file(
            "hook.py",
            "def run(c):\n    import subprocess\n    return subprocess.run([c], check=True, capture_output=True, text=True).stdout.strip()\n\
             open('module.py', 'a').write(f'RAN = {run(\"toolcmd\")!r}\\nBIN = {run(\"toolbin\")!r}\\nPY = {run(\"toolpy\")!r}\\n')",
        )
        .write(world.path());
    let out = world.build(&["usestool==1.0", "--allow-binary", "toolcmd"]);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    let module = module_text(&world, "usestool");
    assert!(module.contains("RAN = 'tool ran'"), "{module}");
    assert!(module.contains("BIN = 'bin ran'"), "{module}");
    assert!(module.contains("PY = 'py ran 3'"), "{module}");
}

/// The Debian archive answers: the Contents index a hint is looked up in can be fetched.
fn debian_archive_answers() -> bool {
    std::process::Command::new("curl")
        .args([
            "-sfI",
            "--max-time",
            "10",
            &format!(
                "{}/dists/bookworm/main/Contents-amd64.gz",
                rewheel::build::images::DEFAULT_MIRROR
            ),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_build_missing_a_header_is_told_which_debian_package_ships_it() {
    let codename = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if !codename.contains("VERSION_CODENAME=bookworm") {
        return crate::common::skip("the host is not Debian bookworm (its suite's Contents)");
    }
    if std::path::Path::new("/usr/include/zmq.h").exists() {
        return crate::common::skip("the host has zmq.h (libzmq3-dev installed)");
    }
    if !debian_archive_answers() {
        return crate::common::skip("the Debian archive does not answer");
    }
    let world = World::new();
    // A C extension that includes a header of a library the host lacks, as pyzmq does.
    crate::common::Sdist::new("needszmq", "1.0")
        .pyproject(&[], "ccbuild", Some("."))
        .pkg_info("2.2", &[])
        .file(
            "ccbuild.py",
            "import subprocess\n\
             def get_requires_for_build_wheel(config_settings=None):\n    return []\n\
             def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n    \
             subprocess.run(['cc', '-c', 'm.c', '-o', 'm.o'], check=True)\n",
        )
        .file("m.c", "#include <zmq.h>\nint f(void) { return 0; }\n")
        .write(world.path());
    let out = world.build(&["needszmq==1.0"]);
    assert_ne!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "likely cause: the header zmq.h is missing; libzmq3-dev ships it: add `[packages.needszmq] system = [\"libzmq3-dev\"]`"
        ),
        "{}{}",
        out.stdout,
        out.stderr
    );
}
