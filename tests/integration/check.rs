//! `rewheel check` on fixture sdists, one per cause of irreproducibility, on the local backend.

use crate::common::{Run, run};
use crate::common::{World, block, package};
use rewheel::exit::ExitCode;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

fn check(world: &World, args: &[&str]) -> Run {
    run(world.command("check", args))
}

fn causes(world: &World) {
    let dir = world.path();
    package("embedpath", "1.0", &[], &[])
        .file(
            "hook.py",
            "open('module.py', 'w').write(f'NAME = \"embedpath\"\\nWHERE = {os.getcwd()!r}\\n')",
        )
        .write(dir);
    package("wallclock", "1.0", &[], &[])
        .file("hook.py", "import time\nopen('module.py', 'w').write(f'NAME = \"wallclock\"\\nBUILT = {time.time()!r}\\n')")
        .write(dir);
    package("hashorder", "1.0", &[], &[])
        .file(
            "hook.py",
            "names = {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'}\n\
             open('module.py', 'w').write(f'NAME = \"hashorder\"\\nORDER = {list(names)!r}\\n')",
        )
        .write(dir);
    // A file the build writes gets 0666 less the umask; the backend stores on-disk modes.
    package("diskmodes", "1.0", &[], &[])
        .file("modes.txt", "")
        .file(
            "hook.py",
            "os.remove('module.py')\nopen('module.py', 'w').write('NAME = \"diskmodes\"\\n')",
        )
        .write(dir);
    package("zipclock", "1.0", &[], &[])
        .file("clock_times.txt", "")
        .write(dir);
    package("steady", "1.0", &[], &[]).write(dir);
}

fn line<'a>(out: &'a str, wheel: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(wheel))
        .unwrap_or_else(|| panic!("{wheel} missing in\n{out}"))
}

#[test]
fn check_names_the_cause_and_the_variation_of_each_difference() {
    let world = World::new();
    causes(&world);
    let html = world.path().join("report.html");
    let junit = world.path().join("junit.xml");
    let r = check(
        &world,
        &[
            "embedpath==1.0",
            "wallclock==1.0",
            "hashorder==1.0",
            "diskmodes==1.0",
            "zipclock==1.0",
            "steady==1.0",
            "--find-culprit",
            "--html",
            html.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let out = &r.stdout;
    assert!(line(out, "steady-1.0").contains("identical"), "{out}");

    let path = block(out, "embedpath-1.0");
    assert!(path.contains("content differs"), "{path}");
    assert!(
        path.contains("embedpath/__init__.py: contains the build path"),
        "{path}"
    );
    assert!(path.contains("(build-path)"), "{path}");

    let clock = block(out, "wallclock-1.0");
    assert!(
        clock.contains("wallclock/__init__.py: contains `1"),
        "{clock}"
    );
    assert!(clock.contains("a time during its build (time)"), "{clock}");

    let order = block(out, "hashorder-1.0");
    assert!(order.contains("content differs"), "{order}");
    assert!(
        order.contains("varying only hash-seed reproduces the difference"),
        "{order}"
    );

    let modes = block(out, "diskmodes-1.0");
    assert!(
        modes.contains("same content, different archive (permissions)"),
        "{modes}"
    );
    assert!(
        modes.contains("stored on-disk modes, which the umask sets"),
        "{modes}"
    );

    let zipclock = block(out, "zipclock-1.0");
    assert!(
        zipclock.contains("same content, different archive (entry timestamps)"),
        "{zipclock}"
    );
    assert!(
        zipclock.contains("zip entry timestamps follow the clock"),
        "{zipclock}"
    );
    assert!(
        zipclock.contains("equal after normalizing entry timestamps"),
        "{zipclock}"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"6\" failures=\"5\""), "{xml}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("1 of 6 wheels reproducible"), "{page}");
}

#[test]
fn a_reproducible_lock_checks_clean_and_matches_expected_hashes() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    package("calm", "2.0", &["steady"], &["steady"]).write(world.path());
    let r = check(&world, &["calm==2.0", "--format", "json"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let pairs = doc["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    assert!(pairs.iter().all(|p| p["verdict"] == "identical"));

    // --expect: the hashes of this run match; a wrong one is reported and fails the check.
    let digest = |p: &serde_json::Value| p["a_sha256"].as_str().unwrap().to_string();
    let calm = pairs
        .iter()
        .find(|p| p["wheel"].as_str().unwrap().starts_with("calm"))
        .unwrap();
    let expect = world.path().join("expect.txt");
    std::fs::write(
        &expect,
        format!(
            "calm==2.0 --hash=sha256:{}\nsteady==1.0 --hash=sha256:{}\n",
            digest(calm),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let r = check(&world, &["calm==2.0", "--expect", expect.to_str().unwrap()]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("expect ok        cp3"), "{}", r.stdout);
    assert!(
        r.stdout.contains("expect MISMATCH") && r.stdout.contains("steady-1.0-py3-none-any.whl"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_wheel_that_fails_to_build_does_not_hide_the_others_from_check() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    package("broken", "1.0", &[], &[])
        .file(
            "hook.py",
            "raise RuntimeError('this package does not build')",
        )
        .write(world.path());
    let junit = world.path().join("junit.xml");
    let r = check(
        &world,
        &[
            "steady==1.0",
            "broken==1.0",
            "--format",
            "json",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, ExitCode::BuildFailed, "{}{}", r.stdout, r.stderr);
    // CI's test view shows the job that did not build as an error, beside the wheel that did.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"2\" failures=\"0\" errors=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"broken 1.0\">\n      <error message=\"did not build (first side)\">"),
        "{xml}"
    );
    assert!(
        r.stderr.contains("checking the 1 wheels that built"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("broken"), "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let pairs = doc["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{}", r.stdout);
    assert!(pairs[0]["wheel"].as_str().unwrap().starts_with("steady"));
    assert_eq!(pairs[0]["verdict"], "identical");
    // The JSON says what was not compared, and why: no silent drop.
    let failed = doc["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{}", r.stdout);
    assert_eq!(failed[0]["job"], "broken 1.0");
    assert_eq!(failed[0]["side"], "first");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_wheel_that_builds_only_once_is_named_in_the_check_report() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    package("fussy", "1.0", &[], &[])
        .file(
            "hook.py",
            "import os\nm = os.umask(0o22)\nos.umask(m)\nif m != 0o22:\n    raise RuntimeError('builds only under umask 022')",
        )
        .write(world.path());
    let r = check(
        &world,
        &[
            "steady==1.0",
            "fussy==1.0",
            "--vary",
            "umask",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, ExitCode::BuildFailed, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("second build of fussy"), "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let failed = doc["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{}", r.stdout);
    assert_eq!(failed[0]["job"], "fussy 1.0");
    assert_eq!(failed[0]["side"], "second");
    assert!(
        doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["wheel"].as_str().unwrap().starts_with("steady")),
        "{}",
        r.stdout
    );
}

#[test]
fn compare_explains_two_folders() {
    let world = World::new();
    package("zipclock", "1.0", &[], &[])
        .file("clock_times.txt", "")
        .write(world.path());
    let first = check(&world, &["zipclock==1.0", "--vary", "time"]);
    assert_eq!(
        first.code,
        ExitCode::NotReproducible,
        "{}{}",
        first.stdout,
        first.stderr
    );
    // The same two builds, through `compare` on the run's folder and a second build's.
    let out2 = world.path().join("again");
    // `--rebuild`: the job cache would hand back the first wheel, timestamps and all.
    let command = world.command_out("build", &["zipclock==1.0", "--rebuild"], &out2);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(run(command).code, ExitCode::Success);
    let html = world.path().join("compare.html");
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .arg("compare")
        .arg(world.path().join("wheelhouse"))
        .arg(&out2)
        .arg("--html")
        .arg(&html);
    let r = run(command);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout
            .contains("same content, different archive (entry timestamps)"),
        "{}",
        r.stdout
    );
    // Outside a check no remedy was tried, and the page says how one would be.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<td>not tried: `rewheel check --remedies` builds"),
        "{page}"
    );
    assert!(!page.contains("<td></td>"), "{page}");
}

/// The HTML report in a real headless browser: it loads, shows the summary table and a diff.
#[test]
fn the_html_report_renders_in_a_browser() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        crate::common::skip("no headless browser (apt-get install chromium)");
        return;
    };
    let world = World::new();
    causes(&world);
    let html = world.path().join("report.html");
    let r = check(
        &world,
        &[
            "embedpath==1.0",
            "steady==1.0",
            "--vary",
            "build-path",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<table id=\"summary\">"),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("1 of 2 wheels reproducible"), "{dom}");
    assert!(dom.contains("<span class=\"add\">+WHERE = "), "{dom}");
    // It leads with what needs action: a chart by cause, then the differing wheel first.
    assert!(dom.contains("<svg id=\"causes\""), "{dom}");
    let first_row = dom.split("<tbody>").nth(1).unwrap_or_default();
    assert!(
        first_row.starts_with("<tr class=\"diff\" data-cause=\"build-path\">"),
        "{first_row}"
    );
    assert!(
        dom.contains("data-filter=\"identical\">identical (1)</button>"),
        "{dom}"
    );
    // A filter (also given in the address, so it can be linked) hides the other rows.
    let filtered = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}?cause=identical", html.display()))
        .output()
        .unwrap();
    let filtered = String::from_utf8_lossy(&filtered.stdout);
    assert!(
        filtered.contains("<tr class=\"diff\" data-cause=\"build-path\" hidden=\"\">"),
        "{filtered}"
    );
    assert!(
        filtered.contains("<tr class=\"ok\" data-cause=\"identical\">"),
        "{filtered}"
    );
    let shot = world.path().join("report.png");
    let status = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,900",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        status.status.success() && shot.is_file(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    if let Ok(keep) = std::env::var("REWHEEL_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn an_independent_second_build_rebuilds_the_closure() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    package("calm", "2.0", &["steady"], &["steady"]).write(world.path());
    causes(&world);
    let r = check(
        &world,
        &[
            "calm==2.0",
            "embedpath==1.0",
            "--independent",
            "--vary",
            "build-path,hash-seed",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stderr.contains("second build: run "), "{}", r.stderr);
    // The build dependency was built again (a second `built steady` line), and compared.
    assert_eq!(
        r.stderr.matches("] built steady 1.0").count(),
        2,
        "{}",
        r.stderr
    );
    assert!(
        line(&r.stdout, "calm-2.0").contains("identical"),
        "{}",
        r.stdout
    );
    assert!(
        block(&r.stdout, "embedpath-1.0").contains("(build-path)"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_second_build_that_fails_is_a_build_failure_not_a_verdict() {
    let world = World::new();
    package("fragile", "1.0", &[], &[])
        .file(
            "hook.py",
            "import socket\nif socket.gethostname() != 'rewheel':\n    raise SystemExit('this build only works on one host')\n",
        )
        .write(world.path());
    let r = check(&world, &["fragile==1.0", "--vary", "hostname"]);
    assert_eq!(r.code, ExitCode::BuildFailed, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("second build of fragile"), "{}", r.stderr);
}

/// `rewheel check --resume RUN --store STORE ARGS`.
fn resume(world: &World, command: &str, id: &str, args: &[&str]) -> Run {
    let mut resume = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    resume
        .args([command, "--resume", id])
        .args(args)
        .arg("--store")
        .arg(world.path().join(".store"));
    run(resume)
}

/// A check stopped by SIGINT while its second side builds resumes from the run's settings:
/// the first side takes over the run's own jobs, the second is built again, and the report is
/// the one an uninterrupted check gives.
#[test]
fn an_interrupted_check_resumes_with_its_first_build_taken_over() {
    let world = World::new();
    // The second side waits while this file is there: a file outside the sdist, so the first
    // side's jobs keep their fingerprints. Jobs see the host read-only, but not /tmp.
    let held = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let hold = held.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    package("steady", "1.0", &[], &[]).write(world.path());
    package("patient", "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import socket, time\nwhile socket.gethostname() != 'rewheel' and os.path.exists({:?}):\n    time.sleep(0.2)\n",
                hold.display().to_string()
            ),
        )
        .write(world.path());
    let args = [
        "steady==1.0",
        "patient==1.0",
        "--vary",
        "hostname",
        "--format",
        "json",
    ];
    let mut child = world
        .command("check", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (second_side, started) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut said = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("second build of") {
                let _ = second_side.send(());
            }
            said.push_str(&line);
            said.push('\n');
        }
        said
    });
    started
        .recv_timeout(Duration::from_secs(120))
        .expect("the second side starts");
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let said = reader.join().unwrap();
    assert_eq!(status.code(), Some(ExitCode::Interrupted.into()), "{said}");
    let id = said
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .unwrap()
        .to_string();
    assert!(
        said.contains(&format!("continue with `rewheel check --resume {id}`")),
        "{said}"
    );
    let list = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.args(["runs", "list", "--store"])
            .arg(world.path().join(".store"));
        c
    });
    assert!(
        list.stdout.contains(&format!("{id}  interrupted")),
        "{}",
        list.stdout
    );

    std::fs::remove_file(&hold).unwrap();
    let resumed = resume(&world, "check", &id, &["--format", "json"]);
    assert_eq!(
        resumed.code,
        ExitCode::Success,
        "{}{}",
        resumed.stdout,
        resumed.stderr
    );
    assert_eq!(
        resumed
            .stderr
            .matches("reused from the interrupted run")
            .count(),
        2,
        "{}",
        resumed.stderr
    );
    assert_eq!(
        resumed.stderr.matches("] built again ").count(),
        2,
        "{}",
        resumed.stderr
    );
    let whole = check(&world, &args);
    assert_eq!(
        whole.code,
        ExitCode::Success,
        "{}{}",
        whole.stdout,
        whole.stderr
    );
    let pairs =
        |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap()["pairs"].clone();
    assert_eq!(pairs(&resumed.stdout), pairs(&whole.stdout));
    assert_eq!(pairs(&resumed.stdout).as_array().unwrap().len(), 2);
}

/// A run recorded by an older rewheel (a command line, no settings) is not resumed: it says
/// so and how to go on, and the run is still shown as it was.
#[test]
fn a_run_with_only_its_command_line_is_not_resumed_and_says_what_to_do() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    let first = world.build(&["steady==1.0"]);
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    let id = first.stderr.lines().next().unwrap()["run ".len()..].to_string();
    let db = rusqlite::Connection::open(world.path().join(".store/runs.sqlite3")).unwrap();
    db.execute("UPDATE runs SET settings = NULL", []).unwrap();
    drop(db);
    let r = resume(&world, "build", &id, &[]);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("recorded by an older rewheel")
            && r.stderr
                .contains("hint: run `rewheel build steady==1.0 --python"),
        "{}",
        r.stderr
    );
    let r = resume(&world, "check", &id, &[]);
    assert!(r.stderr.contains("older rewheel"), "{}", r.stderr);
    let mut show = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    show.args(["runs", "show", &id, "--store"])
        .arg(world.path().join(".store"));
    let show = run(show);
    assert!(
        show.stdout.contains("build steady==1.0 --python"),
        "{}",
        show.stdout
    );
}

/// A build is not resumed as a check, nor a check's second side on its own: each says which
/// command continues it.
#[test]
fn a_run_resumes_only_through_the_command_that_made_it() {
    let world = World::new();
    package("steady", "1.0", &[], &[]).write(world.path());
    let first = world.build(&["steady==1.0"]);
    let id = first.stderr.lines().next().unwrap()["run ".len()..].to_string();
    let r = resume(&world, "check", &id, &[]);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("hint: `rewheel build --resume {id}` continues it")),
        "{}",
        r.stderr
    );
    let checked = check(&world, &["steady==1.0", "--independent", "--vary", "umask"]);
    assert_eq!(
        checked.code,
        ExitCode::Success,
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    let of = checked.stderr.lines().next().unwrap()["run ".len()..].to_string();
    let second = checked
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("second build: run "))
        .unwrap();
    let r = resume(&world, "build", second, &[]);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "hint: `rewheel check --resume {of}` builds that side again"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn check_builds_both_sides_of_a_package_whose_backend_names_requirements_at_build_time() {
    let world = World::new();
    let dir = world.path();
    package("helper", "1.0", &[], &[]).write(dir);
    package("late", "1.0", &[], &[])
        .file("dynamic.txt", "helper")
        .file("needs.txt", "helper")
        .write(dir);
    // A cache of its own: the first side learns what the hook names, the second is asked the
    // same way and has it installed.
    let r = check(&world, &["late==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("late-1.0-py3-none-any.whl"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("failed"), "{}", r.stderr);
}
