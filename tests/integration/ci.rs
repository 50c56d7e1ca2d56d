//! CI splitting: a whole plan run job by job, each in its own process with only the files a CI
//! job would have (the plan, and the outputs of the jobs it needs), merged, and compared with a
//! local build.

use crate::common::run;
use crate::common::{World, host_python, package, three_package_closure};
use rewheel::exit::ExitCode;
use std::path::Path;
use std::process::Command;

fn rewheel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rewheel"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `rewheel build --plan PLAN --job ID` for the plan's first job, as a CI job runs it here.
fn first_job(
    dir: &Path,
    plan: &Path,
    inputs: &Path,
    out: &Path,
    extra: &[&str],
) -> crate::common::Run {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let id = doc["jobs"][0]["id"].as_str().unwrap().to_string();
    let (python, _) = host_python();
    let mut c = rewheel();
    c.args(["build", "--plan"])
        .arg(plan)
        .args(["--job", &id, "--inputs"])
        .arg(inputs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .args(["--backend", "local", "--python-path"])
        .arg(&python)
        .arg("--build-path")
        .arg(dir.join(".build"));
    run(c)
}

fn doc_jobs(plan: &Path) -> usize {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    doc["jobs"].as_array().unwrap().len()
}

#[test]
fn a_plan_run_job_by_job_gives_the_wheels_of_a_local_build() {
    let world = World::new();
    let dir = world.path();
    three_package_closure(dir);
    let (python, _) = host_python();
    let sde = ["--source-date-epoch", "1700000000"];
    // The plan, in its three shapes.
    let plan = dir.join("plan.json");
    let r = run(world.command(
        "plan",
        &["app==1.0", "-o", plan.to_str().unwrap(), sde[0], sde[1]],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let levels = doc["levels"].as_array().unwrap();
    for emit in ["github", "gitlab"] {
        let r = run(world.command("plan", &["app==1.0", "--emit", emit, sde[0], sde[1]]));
        assert_eq!(r.code, ExitCode::Success, "{}", r.stderr);
        match emit {
            "github" => {
                let gh: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                assert_eq!(gh["stages"].as_array().unwrap().len(), levels.len());
                assert!(gh["stages"][0]["matrix"]["include"][0]["job"].is_string());
            }
            _ => {
                // Run as emitted in `ci_layout`; here only that it is a pipeline of the plan.
                let doc: serde_norway::Value = serde_norway::from_str(&r.stdout).unwrap();
                let jobs = doc.as_mapping().unwrap().len() - 1;
                assert_eq!(jobs, doc_jobs(&plan) + 1, "{}", r.stdout);
                assert!(
                    r.stdout.contains("rewheel build --plan plan.json --job"),
                    "{}",
                    r.stdout
                );
            }
        }
    }

    // Every job in its own process, level by level, with only what its `needs` produced.
    let jobs = doc["jobs"].as_array().unwrap();
    let results = dir.join("results");
    for level in levels {
        for id in level.as_array().unwrap() {
            let id = id.as_str().unwrap();
            let job = jobs.iter().find(|j| j["id"] == id).unwrap();
            let stem = id.replace('/', "__");
            let inputs = dir.join("ci").join(&stem).join("inputs");
            std::fs::create_dir_all(&inputs).unwrap();
            for need in job["needs"].as_array().unwrap() {
                let need = need.as_str().unwrap().replace('/', "__");
                copy_dir(&results.join(&need), &inputs.join(&need));
            }
            let mut c = rewheel();
            c.args(["build", "--plan"])
                .arg(&plan)
                .args(["--job", id, "--inputs"])
                .arg(&inputs);
            c.arg("--out").arg(results.join(&stem));
            c.args(["--backend", "local", "--python-path"])
                .arg(&python)
                .arg("--build-path")
                .arg(dir.join(".build"));
            let r = run(c);
            assert_eq!(r.code, ExitCode::Success, "{id}: {}{}", r.stdout, r.stderr);
        }
    }
    // Merged into one run, and compared with the same build done locally in one go.
    let mut c = rewheel();
    c.arg("merge")
        .arg(&results)
        .arg("--plan")
        .arg(&plan)
        .arg("--store")
        .arg(dir.join(".store"));
    let merged = run(c);
    assert_eq!(
        merged.code,
        ExitCode::Success,
        "{}{}",
        merged.stdout,
        merged.stderr
    );
    let run_id = merged
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let local = run(world.command_out("build", &["app==1.0", sde[0], sde[1]], &dir.join("local")));
    assert_eq!(
        local.code,
        ExitCode::Success,
        "{}{}",
        local.stdout,
        local.stderr
    );
    let mut c = rewheel();
    c.args(["compare", &run_id])
        .arg(dir.join("local"))
        .arg("--store")
        .arg(dir.join(".store"));
    let r = run(c);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("3 of 3 reproducible"), "{}", r.stdout);

    // A missing result is named.
    std::fs::remove_dir_all(results.join(levels[0][0].as_str().unwrap().replace('/', "__")))
        .unwrap();
    let mut c = rewheel();
    c.arg("merge")
        .arg(&results)
        .arg("--plan")
        .arg(&plan)
        .arg("--store")
        .arg(dir.join(".store"));
    let r = run(c);
    assert_eq!(r.code, ExitCode::Input, "{}", r.stderr);
    assert!(
        r.stderr.contains("jobs of the plan without a result: "),
        "{}",
        r.stderr
    );
}

/// Every job of `plan` in its own process, level by level, with only what its `needs`
/// produced under `--inputs`; each job's result goes to `results/<job>`. `backend` picks
/// where jobs run (`--backend …`).
pub(crate) fn run_jobs_as_ci_does(
    dir: &Path,
    plan: &Path,
    results: &Path,
    backend: &[String],
) -> Vec<(String, crate::common::Run)> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap();
    let jobs = doc["jobs"].as_array().unwrap();
    let mut ran = Vec::new();
    for level in doc["levels"].as_array().unwrap() {
        for id in level.as_array().unwrap() {
            let id = id.as_str().unwrap();
            let job = jobs.iter().find(|j| j["id"] == id).unwrap();
            let stem = id.replace('/', "__");
            let inputs = dir.join("ci").join(&stem).join("inputs");
            std::fs::create_dir_all(&inputs).unwrap();
            for need in job["needs"].as_array().unwrap() {
                let need = need.as_str().unwrap().replace('/', "__");
                copy_dir(&results.join(&need), &inputs.join(&need));
            }
            let mut c = rewheel();
            c.args(["build", "--plan"])
                .arg(plan)
                .args(["--job", id, "--inputs"])
                .arg(&inputs)
                .arg("--out")
                .arg(results.join(&stem))
                .args(backend)
                .arg("--build-path")
                .arg(dir.join(".build"));
            ran.push((id.to_string(), run(c)));
        }
    }
    ran
}

#[test]
fn a_plan_asks_the_hooks_first_so_its_jobs_build_what_a_backend_names_at_build_time() {
    let world = World::new();
    let dir = world.path();
    package("helper", "1.0", &[], &[]).write(dir);
    // As hatchling does: the hook names a requirement the sdist's metadata does not.
    package("late", "1.0", &[], &[])
        .file("dynamic.txt", "helper")
        .file("needs.txt", "helper")
        .write(dir);
    let plan = |name: &str| {
        let out = dir.join(name);
        let r = run(world.command("plan", &["late==1.0", "-o", out.to_str().unwrap()]));
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        (doc, r.stderr)
    };
    // A fresh cache, no build before: the plan asks late's hook and holds helper's job.
    let (doc, said) = plan("plan.json");
    assert!(said.contains("probed"), "{said}");
    let jobs = doc["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{doc}");
    let late = jobs.iter().find(|j| j["name"] == "late").unwrap();
    assert_eq!(late["needs"].as_array().unwrap().len(), 1, "{late}");
    // Run as CI runs it, each job on its own: late builds with helper installed.
    let (python, _) = host_python();
    let local = [
        "--backend",
        "local",
        "--python-path",
        python.to_str().unwrap(),
    ]
    .map(String::from);
    for (id, r) in run_jobs_as_ci_does(dir, &dir.join("plan.json"), &dir.join("results"), &local) {
        assert_eq!(r.code, ExitCode::Success, "{id}: {}{}", r.stdout, r.stderr);
    }
    // Known now: the next plan asks nobody and is the same.
    let (again, said) = plan("again.json");
    assert!(!said.contains("probed"), "{said}");
    assert_eq!(again["jobs"], doc["jobs"]);
}

#[test]
fn a_ci_job_honours_the_sdist_size_limit() {
    let world = World::new();
    let dir = world.path();
    package("lib", "2.0", &[], &[])
        .file("big.txt", "x".repeat(200_000))
        .write(dir);
    let plan = dir.join("plan.json");
    let r = run(world.command("plan", &["lib==2.0", "-o", plan.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let r = first_job(
        dir,
        &plan,
        &dir.join("inputs"),
        &dir.join("out"),
        &["--max-sdist-size", "100000"],
    );
    assert_ne!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("expands past the limit of 100000 bytes"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn a_ci_job_reuses_a_cached_result_with_the_same_inputs_and_only_then() {
    let world = World::new();
    let dir = world.path();
    package("lib", "2.0", &[], &[]).write(dir);
    let job = |plan: &Path, inputs: &Path, out: &Path| first_job(dir, plan, inputs, out, &[]);
    let plan = dir.join("plan.json");
    let r = run(world.command("plan", &["lib==2.0", "-o", plan.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}", r.stderr);
    let first = job(&plan, &dir.join("none"), &dir.join("cache/lib"));
    assert_eq!(first.code, ExitCode::Success, "{}", first.stderr);
    assert!(
        first.stderr.contains("building lib 2.0"),
        "{}",
        first.stderr
    );

    // The CI cache restored under --inputs: the same job with the same inputs is not built.
    let again = job(&plan, &dir.join("cache"), &dir.join("out"));
    assert_eq!(again.code, ExitCode::Success, "{}", again.stderr);
    assert!(again.stderr.contains("reused lib 2.0"), "{}", again.stderr);
    assert!(!again.stderr.contains("building"), "{}", again.stderr);
    let names = |d: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&dir.join("out")), names(&dir.join("cache/lib")));

    // Other settings, another fingerprint: built again.
    let other = dir.join("other.json");
    let r = run(world.command(
        "plan",
        &["lib==2.0", "--umask", "002", "-o", other.to_str().unwrap()],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}", r.stderr);
    let changed = job(&other, &dir.join("cache"), &dir.join("out2"));
    assert_eq!(changed.code, ExitCode::Success, "{}", changed.stderr);
    assert!(
        changed.stderr.contains("building lib 2.0"),
        "{}",
        changed.stderr
    );
}

#[test]
fn a_ci_job_builds_on_when_what_the_hook_names_does_not_apply_to_its_cell() {
    let world = World::new();
    let dir = world.path();
    // The hook names an extra's requirement, as pyparsing's flit hook does.
    package("marked", "1.0", &[], &[])
        .file("dynamic.txt", r#"helper;extra=="diagrams""#)
        .write(dir);
    let plan = dir.join("plan.json");
    let r = run(world.command("plan", &["marked==1.0", "-o", plan.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}", r.stderr);
    let r = first_job(dir, &plan, &dir.join("none"), &dir.join("out"), &[]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(dir.join("out/marked-1.0-py3-none-any.whl").is_file());
}
