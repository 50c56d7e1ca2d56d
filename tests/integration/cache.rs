//! The job cache across runs: a finished job whose inputs match is reused (and says so), a
//! bump builds only what changed and what its change reaches, `--rebuild` forces, `runs gc`
//! keeps what kept runs need.

use crate::common::{World, package, run};
use rewheel::exit::ExitCode;

/// Labels of the jobs a run really built (not reused), from its progress lines.
fn built(stderr: &str) -> Vec<String> {
    let mut labels: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("] built ") && !l.contains("reused from run"))
        .filter_map(|l| {
            let label = l.split("] built ").nth(1)?;
            Some(label.split(" (").next()?.to_string())
        })
        .collect();
    labels.sort();
    labels
}

fn world() -> World {
    let world = World::new();
    for version in ["1.0", "1.1"] {
        package("base", version, &[], &[]).write(world.path());
        package("other", version, &[], &[]).write(world.path());
    }
    package("mid", "1.0", &["base"], &[]).write(world.path());
    package("top", "1.0", &["mid"], &[]).write(world.path());
    world
}

fn pins(world: &World, name: &str, text: &str) -> String {
    let path = world.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_second_run_reuses_every_job_and_a_bump_builds_only_what_it_reaches() {
    let world = world();
    let old = pins(&world, "old.txt", "base==1.0\n");
    let first = world.build(&["top==1.0", "other==1.0", "--build-constraints", &old]);
    assert_eq!(
        first.code,
        ExitCode::Success,
        "{}{}",
        first.stdout,
        first.stderr
    );
    assert_eq!(
        built(&first.stderr),
        ["base 1.0", "mid 1.0", "other 1.0", "top 1.0"]
    );

    // The same lock again: nothing is built, every wheel is still written out.
    std::fs::remove_dir_all(world.path().join("wheelhouse")).unwrap();
    let again = world.build(&["top==1.0", "other==1.0", "--build-constraints", &old]);
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    assert!(built(&again.stderr).is_empty(), "{}", again.stderr);
    assert!(again.stdout.contains("(4 reused)"), "{}", again.stdout);
    assert_eq!(
        world.wheels(),
        [
            "base-1.0-py3-none-any.whl",
            "mid-1.0-py3-none-any.whl",
            "other-1.0-py3-none-any.whl",
            "top-1.0-py3-none-any.whl"
        ]
    );

    // A build dependency bumped: it and the job whose environment holds it are built; top's
    // environment holds mid's wheel, which came out byte-identical, so top is reused.
    let new = pins(&world, "new.txt", "base==1.1\n");
    let bumped = world.build(&["top==1.0", "other==1.0", "--build-constraints", &new]);
    assert_eq!(
        bumped.code,
        ExitCode::Success,
        "{}{}",
        bumped.stdout,
        bumped.stderr
    );
    assert_eq!(built(&bumped.stderr), ["base 1.1", "mid 1.0"]);

    // A pin bumped: only that package.
    let pinned = world.build(&["top==1.0", "other==1.1", "--build-constraints", &new]);
    assert_eq!(built(&pinned.stderr), ["other 1.1"]);

    // --rebuild forces all, --rebuild=NAME that package.
    let all = world.build(&["top==1.0", "--build-constraints", &new, "--rebuild"]);
    assert_eq!(built(&all.stderr), ["base 1.1", "mid 1.0", "top 1.0"]);
    let one = world.build(&["top==1.0", "--build-constraints", &new, "--rebuild=MID"]);
    assert_eq!(built(&one.stderr), ["mid 1.0"]);

    // The store says which jobs were reused, and from where.
    let mut list = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    list.args(["runs", "list", "--store"])
        .arg(world.path().join(".store"));
    let list = run(list);
    assert!(list.stdout.contains("(4 reused)"), "{}", list.stdout);
    assert!(list.stdout.starts_with("store: "), "{}", list.stdout);
}

#[test]
fn gc_keeps_what_the_kept_runs_need_and_they_still_verify() {
    let world = world();
    let old = pins(&world, "old.txt", "base==1.0\n");
    let r = world.build(&["top==1.0", "--build-constraints", &old]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let r = world.build(&["top==1.0", "--build-constraints", &old]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let store = world.path().join(".store");
    let runs_gc = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .args(["runs", "gc"])
            .args(args)
            .arg("--store")
            .arg(&store);
        run(command)
    };
    // Blobs are fresh (under an hour old): nothing goes but the older run's rows.
    let gc = runs_gc(&["--keep", "1", "--json"]);
    assert_eq!(gc.code, ExitCode::Success, "{}{}", gc.stdout, gc.stderr);
    let doc: serde_json::Value = serde_json::from_str(&gc.stdout).unwrap();
    assert_eq!(doc["removed"]["runs"].as_array().unwrap().len(), 1);
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    verify.args(["runs", "verify", "--store"]).arg(&store);
    let v = run(verify);
    assert_eq!(
        v.code,
        ExitCode::Success,
        "the kept run reused the removed run's wheels: {}",
        v.stdout
    );
    // The kept run's jobs still serve as a cache.
    let third = world.build(&["top==1.0", "--build-constraints", &old]);
    assert!(built(&third.stderr).is_empty(), "{}", third.stderr);
    let bad = runs_gc(&["--older-than", "soon"]);
    assert_eq!(bad.code, ExitCode::Input, "{}", bad.stderr);
    assert!(bad.stderr.contains("not an age like 30d"), "{}", bad.stderr);
}
