//! CI documents as an attacker writes them: a result document or a plan that names a host
//! file, a link, a FIFO or a file past its cap, and `--inputs` holding links. `merge` and
//! `build --job` refuse each one (exit 2, by document, field and path, with a hint), read
//! nothing outside the folder they were given, and leave the host file as it was.

use crate::common::{Run, World, host_python, package, run};
use rewheel::exit::ExitCode;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"host secret: not for any store\n";

fn rewheel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rewheel"))
}

/// A host file outside every folder rewheel is given.
fn sentinel(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let path = outside.join("sentinel");
    std::fs::write(&path, SECRET).unwrap();
    path
}

fn assert_untouched(sentinel: &Path) {
    assert_eq!(std::fs::read(sentinel).unwrap(), SECRET);
}

/// Whether any file below `root` holds the sentinel's bytes.
fn holds_secret(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    entries.flatten().any(|e| {
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            holds_secret(&e.path())
        } else {
            kind.is_file()
                && std::fs::read(e.path())
                    .unwrap()
                    .windows(SECRET.len())
                    .any(|w| w == SECRET)
        }
    })
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Run with a memory ceiling and a time limit: before the fix a FIFO blocked the merge for
/// ever, and `/dev/zero` was read until memory ran out.
fn bounded(mut command: Command) -> Run {
    use std::os::unix::process::CommandExt;
    let t = tempfile::tempdir().unwrap();
    let (out, err) = (t.path().join("out"), t.path().join("err"));
    command
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    Run {
        code,
        stdout: text(&out),
        stderr: text(&err),
    }
}

fn assert_refused(r: &Run, needles: &[&str]) {
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    for needle in needles.iter().chain(&["hint:"]) {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
}

/// A result document as `build --job` writes one, for job `cp-x/a-1.0`.
fn result_doc(wheel: Option<(&str, &str)>, log_file: &str) -> String {
    let (status, filename, sha) = match wheel {
        Some((f, s)) => ("built", Some(f), Some(s)),
        None => ("failed", None, None),
    };
    serde_json::json!({
        "schema_version": 1,
        "job": "cp-x/a-1.0",
        "cell": "cp-x",
        "name": "a",
        "version": "1.0",
        "stage": 0,
        "status": status,
        "wheel_filename": filename,
        "wheel_sha256": sha,
        "fingerprint": "f",
        "seconds": 1.0,
        "error": if wheel.is_none() { Some("failed") } else { None },
        "log_file": log_file,
    })
    .to_string()
}

fn merge(results: &Path, store: &Path) -> Run {
    let mut c = rewheel();
    c.arg("merge").arg(results).arg("--store").arg(store);
    bounded(c)
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn merge_reads_no_log_outside_its_folder_nor_any_that_is_not_a_plain_file() {
    let t = tempfile::tempdir().unwrap();
    let secret = sentinel(t.path());
    let abs = secret.to_str().unwrap().to_string();
    type Setup = fn(&Path, &Path);
    let cases: Vec<(&str, String, Setup, &str)> = vec![
        ("absolute", abs.clone(), |_, _| {}, "is not a relative path"),
        (
            "device",
            "/dev/zero".into(),
            |_, _| {},
            "is not a relative path",
        ),
        (
            "parent",
            "../outside/sentinel".into(),
            |_, _| {},
            "is not a relative path",
        ),
        (
            "link",
            "a.log".into(),
            |r, s| std::os::unix::fs::symlink(s, r.join("a.log")).unwrap(),
            "is or passes through a link",
        ),
        (
            "folder link",
            "logs/a.log".into(),
            |r, s| std::os::unix::fs::symlink(s.parent().unwrap(), r.join("logs")).unwrap(),
            "is or passes through a link",
        ),
        (
            "fifo",
            "a.log".into(),
            |r, _| mkfifo(&r.join("a.log")),
            "is not a regular file",
        ),
        (
            "huge",
            "a.log".into(),
            |r, _| {
                let f = std::fs::File::create(r.join("a.log")).unwrap();
                f.set_len(64 << 20).unwrap();
            },
            "is over the limit",
        ),
    ];
    for (case, log_file, setup, needle) in cases {
        let results = t.path().join(case.replace(' ', "-"));
        let store = t.path().join(format!("{}.store", case.replace(' ', "-")));
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("cp-x__a-1.0.result.json"),
            result_doc(None, &log_file),
        )
        .unwrap();
        setup(&results, &secret);
        let r = merge(&results, &store);
        assert_refused(
            &r,
            &[
                "cp-x__a-1.0.result.json",
                "log_file",
                &format!("`{log_file}`"),
                needle,
            ],
        );
        assert_untouched(&secret);
        assert!(!holds_secret(&store), "{case}");
        assert!(!store.exists(), "{case}: a refused merge leaves no store");
    }
}

#[test]
fn merge_takes_no_wheel_that_is_a_link_out_of_its_folder() {
    let t = tempfile::tempdir().unwrap();
    let secret = sentinel(t.path());
    let wheel = "a-1.0-py3-none-any.whl";
    let sha = sha256(SECRET);
    for case in ["file link", "folder link"] {
        let results = t.path().join(case.replace(' ', "-"));
        let store = t.path().join(format!("{}.store", case.replace(' ', "-")));
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("cp-x__a-1.0.result.json"),
            result_doc(Some((wheel, &sha)), "cp-x__a-1.0.log"),
        )
        .unwrap();
        std::fs::write(results.join("cp-x__a-1.0.log"), "log").unwrap();
        match case {
            "file link" => std::os::unix::fs::symlink(&secret, results.join(wheel)).unwrap(),
            _ => {
                let outside = t.path().join("outside-wheels");
                std::fs::create_dir_all(&outside).unwrap();
                std::fs::copy(&secret, outside.join(wheel)).unwrap();
                std::os::unix::fs::symlink(&outside, results.join("more")).unwrap();
            }
        }
        let r = merge(&results, &store);
        assert_refused(
            &r,
            &["cp-x/a-1.0", wheel, "is not beside its result", "link"],
        );
        assert_untouched(&secret);
        assert!(!holds_secret(&store), "{case}");
    }
}

#[test]
fn merge_refuses_a_result_whose_wheel_sha256_is_not_one_by_file_and_field() {
    let t = tempfile::tempdir().unwrap();
    let wheel = "a-1.0-py3-none-any.whl";
    let upper = sha256(b"a wheel").to_uppercase();
    for (case, bad) in [
        ("short", "00"),
        ("path", "../../outside/sentinel"),
        ("upper", upper.as_str()),
    ] {
        let results = t.path().join(case);
        let store = t.path().join(format!("{case}.store"));
        std::fs::create_dir_all(&results).unwrap();
        std::fs::write(
            results.join("cp-x__a-1.0.result.json"),
            result_doc(Some((wheel, bad)), "cp-x__a-1.0.log"),
        )
        .unwrap();
        std::fs::write(results.join(wheel), b"a wheel").unwrap();
        let r = merge(&results, &store);
        assert_eq!(r.code, ExitCode::Input, "{case}: {}{}", r.stdout, r.stderr);
        for needle in [
            "cp-x__a-1.0.result.json: not a job result",
            &format!("wheel_sha256: sha256 `{bad}` is not 64 lowercase hexadecimal digits"),
        ] {
            assert!(r.stderr.contains(needle), "{case}: {needle}: {}", r.stderr);
        }
        assert!(!store.exists(), "{case}: a refused merge leaves no store");
    }
}

/// Where a CI job of the attacks runs: how its plan is made (`-o PATH` is added) and which
/// backend arguments `build --job` gets.
pub(crate) struct CiBackend<'a> {
    pub plan: &'a dyn Fn(&[&str]) -> Command,
    pub job_args: Vec<std::ffi::OsString>,
}

/// `rewheel build --plan PLAN --job ID --inputs INPUTS --out OUT` on the backend.
fn job(ci: &CiBackend, dir: &Path, plan: &Path, inputs: &Path, out: &Path) -> Run {
    bounded(job_command(ci, dir, plan, inputs, out))
}

fn job_command(ci: &CiBackend, dir: &Path, plan: &Path, inputs: &Path, out: &Path) -> Command {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let id = doc["jobs"][0]["id"].as_str().unwrap().to_string();
    let mut c = rewheel();
    c.args(["build", "--plan"])
        .arg(plan)
        .args(["--job", &id, "--inputs"])
        .arg(inputs)
        .arg("--out")
        .arg(out)
        .args(&ci.job_args)
        .arg("--build-path")
        .arg(dir.join(".build"));
    c
}

/// The plan of `lib==2.0` from the find-links folder, changed by `edit`.
fn plan(
    ci: &CiBackend,
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let path = dir.join(name);
    let r = run((ci.plan)(&["lib==2.0", "-o", path.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

#[test]
fn a_ci_job_reads_no_input_through_a_link_a_parent_path_or_a_device() {
    let world = World::new();
    let (python, _) = host_python();
    let plan = |args: &[&str]| world.command("plan", args);
    ci_job_attacks(
        world.path(),
        &CiBackend {
            plan: &plan,
            job_args: vec![
                "--backend".into(),
                "local".into(),
                "--python-path".into(),
                python.into(),
            ],
        },
    );
}

/// `build --job` given a plan and inputs an attacker wrote, on one backend.
pub(crate) fn ci_job_attacks(dir: &Path, ci: &CiBackend) {
    package("lib", "2.0", &[], &[]).write(dir);
    let secret = sentinel(dir);
    let stem = |doc: &serde_json::Value| doc["jobs"][0]["id"].as_str().unwrap().replace('/', "__");

    // A plan naming its sdist with a parent path: refused before anything is fetched.
    let climbing = plan(ci, dir, "climbing.json", |doc| {
        doc["jobs"][0]["sdist"]["filename"] = "../escape.tar.gz".into();
    });
    let out = dir.join("out-climbing");
    let r = job(ci, dir, &climbing, &dir.join("none"), &out);
    assert_refused(
        &r,
        &[
            "climbing.json",
            "jobs[0].sdist.filename",
            "`../escape.tar.gz`",
            "plain file name",
        ],
    );
    assert!(!out.join("escape.tar.gz").exists());

    // A plan locating its sdist at a device: never read (it was, for ever).
    let device = plan(ci, dir, "device.json", |doc| {
        doc["jobs"][0]["sdist"]["url"] = "file:///dev/zero".into();
        doc["jobs"][0]["sdist"]["filename"] = "zero.tar.gz".into();
    });
    let r = job(ci, dir, &device, &dir.join("none"), &dir.join("out-device"));
    assert_refused(&r, &["/dev/zero", "is not a regular file"]);

    // An earlier job's result under --inputs naming its wheel with a parent path.
    let dep = "cp-x/dep-1.0";
    let needing = plan(ci, dir, "needing.json", |doc| {
        doc["jobs"][0]["build_env"] = serde_json::json!([
            { "from": "job", "job": dep, "name": "dep", "version": "1.0" }
        ]);
    });
    let inputs = dir.join("inputs-climbing/dep");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(
        inputs.join("cp-x__dep-1.0.result.json"),
        result_doc(Some(("../../outside/sentinel", &sha256(SECRET))), "x.log")
            .replace("cp-x/a-1.0", dep),
    )
    .unwrap();
    let r = job(
        ci,
        dir,
        &needing,
        &dir.join("inputs-climbing"),
        &dir.join("out-2"),
    );
    assert_refused(
        &r,
        &[
            "cp-x__dep-1.0.result.json",
            "wheel_filename",
            "`../../outside/sentinel`",
        ],
    );

    // The same result and its wheel reached through links out of --inputs: not seen.
    let linked = dir.join("inputs-linked");
    std::fs::create_dir_all(&linked).unwrap();
    let elsewhere = dir.join("outside/dep");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let wheel = "dep-1.0-py3-none-any.whl";
    std::fs::write(
        elsewhere.join("cp-x__dep-1.0.result.json"),
        result_doc(Some((wheel, &sha256(SECRET))), "x.log").replace("cp-x/a-1.0", dep),
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, elsewhere.join(wheel)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("dep")).unwrap();
    let r = job(ci, dir, &needing, &linked, &dir.join("out-3"));
    assert_refused(
        &r,
        &[
            "the result of `cp-x/dep-1.0` is not among the inputs",
            "link",
        ],
    );
    assert!(!holds_secret(&dir.join("out-3")));

    // A CI cache of this very job whose log is a link to a host file: refused, not copied
    // into the job's output (which CI uploads).
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&climbing).unwrap()).unwrap();
    let stem = stem(&doc);
    let honest = plan(ci, dir, "honest.json", |_| {});
    let cache = dir.join("cache/lib");
    // Built as usual: a sandbox is not started under the memory ceiling.
    let first = run(job_command(ci, dir, &honest, &dir.join("none"), &cache));
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    std::fs::remove_file(cache.join(format!("{stem}.log"))).unwrap();
    std::os::unix::fs::symlink(&secret, cache.join(format!("{stem}.log"))).unwrap();
    let again = job(ci, dir, &honest, &dir.join("cache"), &dir.join("out-4"));
    assert_refused(
        &again,
        &[
            &format!("{stem}.result.json"),
            "log_file",
            "is or passes through a link",
        ],
    );
    assert!(!holds_secret(&dir.join("out-4")));
    assert_untouched(&secret);
}

#[test]
fn a_plan_that_is_a_fifo_or_past_its_cap_is_refused_not_read() {
    let t = tempfile::tempdir().unwrap();
    let results = t.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let fifo = t.path().join("plan.json");
    mkfifo(&fifo);
    let huge = t.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    for (plan, needle) in [
        (&fifo, "is not a regular file"),
        (&huge, "is over the limit"),
    ] {
        let store = t.path().join("store");
        let mut c = rewheel();
        c.arg("merge")
            .arg(&results)
            .arg("--plan")
            .arg(plan)
            .arg("--store")
            .arg(&store);
        let r = bounded(c);
        assert_refused(&r, &[plan.file_name().unwrap().to_str().unwrap(), needle]);
        assert!(!store.exists());
    }
}
