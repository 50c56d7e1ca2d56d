//! The emitted CI files, run as each system runs them: every job in a fresh folder holding
//! only what that system places there, its script lines run verbatim by `bash -e`, its
//! artifacts kept as the system keeps them; then the merge job, then `compare` against a
//! local build. A simulator that meets a step it does not model fails the test.

use crate::common::{World, host_has_python, package, run, skip, three_package_closure};
use rewheel::exit::ExitCode;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What is built: the requirement and index arguments of every `rewheel` call, and the index
/// cache the jobs share (a CI cache), or none (each job starts cold).
struct Lock {
    specs: Vec<&'static str>,
    cache: Option<PathBuf>,
}

/// The three-package closure of `world()`, from its find-links folder.
fn hermetic() -> Lock {
    Lock {
        specs: vec![
            "app==1.0",
            "--no-index",
            "--find-links",
            ".",
            "--source-date-epoch",
            "1700000000",
        ],
        cache: None,
    }
}

/// Files of one artifact, by path relative to where they are placed.
type Artifact = BTreeMap<PathBuf, Vec<u8>>;

fn rewheel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rewheel"))
}

/// Every file below `root`, relative to `base`.
fn collect(root: &Path, base: &Path) -> Artifact {
    let mut out = Artifact::new();
    if root.is_file() {
        out.insert(
            root.strip_prefix(base).unwrap().to_path_buf(),
            std::fs::read(root).unwrap(),
        );
        return out;
    }
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        out.extend(collect(&entry.path(), base));
    }
    out
}

fn place(artifact: &Artifact, at: &Path) {
    for (path, bytes) in artifact {
        let to = at.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

/// The script lines of a job, run as a CI runner does: one `bash -e`, rewheel on the PATH, the
/// run store where the CI variables say.
fn sh(lock: &Lock, dir: &Path, lines: &[String], store: &Path) -> crate::common::Run {
    let bin = Path::new(env!("CARGO_BIN_EXE_rewheel")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut c = Command::new("bash");
    c.arg("-e")
        .arg("-c")
        .arg(lines.join("\n"))
        .current_dir(dir)
        .env("PATH", path)
        .env("REWHEEL_STORE", store)
        .env(
            "REWHEEL_CACHE_DIR",
            lock.cache.clone().unwrap_or_else(|| dir.join(".cache")),
        )
        .env_remove("PIP_INDEX_URL");
    run(c)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Two cells when the host has both interpreters, else one.
fn cells() -> Vec<&'static str> {
    let mut cells = vec!["3.11"];
    if host_has_python("3.10").is_some() {
        cells.push("3.10");
    } else {
        skip("ci_layout: a second cell (no Python 3.10 on this host)");
    }
    cells
}

/// A world with a three-package closure; `app`'s build embeds its build folder, so the CI
/// jobs and the local build must agree on it too.
fn world() -> World {
    let world = World::new();
    three_package_closure(world.path());
    world
}

/// `rewheel plan` (or `build`) arguments for the world: relative to it, so that emitted
/// files name no temporary folder.
fn args<'a>(lock: &Lock, cells: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = lock.specs.clone();
    for python in cells {
        out.extend(["--python", python]);
    }
    out.extend(extra);
    out
}

fn in_world(lock: &Lock, world: &World, sub: &str, args: &[&str]) -> crate::common::Run {
    let mut c = rewheel();
    c.arg(sub)
        .args(args)
        .current_dir(world.path())
        .env(
            "REWHEEL_CACHE_DIR",
            lock.cache
                .clone()
                .unwrap_or_else(|| world.path().join(".cache")),
        )
        .env("REWHEEL_STORE", world.path().join(".store"))
        .env_remove("PIP_INDEX_URL");
    run(c)
}

/// The merged run against a local build of the same lock (default build folder, as the CI
/// jobs use): every wheel identical.
fn compare_with_local(
    lock: &Lock,
    world: &World,
    merged: &crate::common::Run,
    store: &Path,
    cells: &[&str],
) {
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
        .trim_end_matches(':');
    let local = world.path().join("local");
    let out = local.display().to_string();
    let r = in_world(
        lock,
        world,
        "build",
        &args(lock, cells, &["--backend", "local", "--out", &out]),
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let mut c = rewheel();
    c.args(["compare", run_id])
        .arg(&local)
        .arg("--store")
        .arg(store);
    let r = run(c);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    // `cpXY: N of N reproducible`, one line per cell.
    let per_cell: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains(" reproducible"))
        .collect();
    assert_eq!(per_cell.len(), cells.len(), "{}", r.stdout);
    for line in per_cell {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[1], words[3], "{}", r.stdout);
    }
}

/// Jobs in an order where each comes after every job it needs.
fn in_needs_order(jobs: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    while done.len() < jobs.len() {
        let before = done.len();
        for (name, needs) in jobs {
            if !done.contains(name) && needs.iter().all(|n| done.contains(n)) {
                done.push(name.clone());
            }
        }
        assert!(done.len() > before, "needs form a cycle: {jobs:?}");
    }
    done
}

#[test]
fn the_gitlab_child_pipeline_runs_as_emitted() {
    simulate_gitlab(&hermetic(), &world(), &cells());
}

/// How many jobs the plan in `plan.json` under `dir` has.
fn plan_jobs(dir: &Path) -> usize {
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    doc["jobs"].as_array().unwrap().len()
}

fn simulate_gitlab(lock: &Lock, world: &World, cells: &[&str]) {
    let cells = cells.to_vec();
    // The parent pipeline's plan job: its artifact is plan.json at the top of the checkout.
    let r = in_world(
        lock,
        world,
        "plan",
        &args(lock, &cells, &["-o", "plan.json"]),
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let parent: Artifact = collect(&world.path().join("plan.json"), world.path());
    let r = in_world(
        lock,
        world,
        "plan",
        &args(lock, &cells, &["--emit", "gitlab", "-o", "child.yml"]),
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(world.path().join("child.yml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let root = doc.as_mapping().unwrap();
    assert_eq!(strs(&doc["stages"]), ["build", "merge"]);

    // Each job, what it needs (jobs of this pipeline), and the parent job it takes the plan from.
    let mut needs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, job) in root {
        let name = name.as_str().unwrap();
        if ["stages", "default", "variables"].contains(&name) {
            continue;
        }
        let mut own = Vec::new();
        let mut from_parent = false;
        for need in job["needs"].as_sequence().unwrap() {
            if need.get("pipeline").is_some() {
                assert_eq!(need["pipeline"].as_str(), Some("$PARENT_PIPELINE_ID"));
                assert_eq!(need["job"].as_str(), Some("rewheel-plan"));
                from_parent = true;
            } else {
                assert_eq!(need["artifacts"].as_bool(), Some(true), "{name}");
                own.push(need["job"].as_str().unwrap().to_string());
            }
        }
        assert!(
            from_parent,
            "{name} does not fetch the plan from the parent pipeline"
        );
        assert!(
            job["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("python:3.1")),
            "{name}"
        );
        needs.insert(name.to_string(), own);
    }
    assert_eq!(
        needs.len(),
        plan_jobs(world.path()) + 1,
        "a job per plan job and a merge"
    );

    let store = world.path().join("gitlab-store");
    let mut artifacts: BTreeMap<String, Artifact> = BTreeMap::new();
    for (n, name) in in_needs_order(&needs).iter().enumerate() {
        let job = &doc[name.as_str()];
        // A fresh checkout with the parent's plan and the needed jobs' artifacts at their paths.
        let dir = world.path().join("gitlab").join(n.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        place(&parent, &dir);
        for need in &needs[name] {
            place(&artifacts[need], &dir);
        }
        let mut lines = strs(&doc["default"]["before_script"]);
        lines.extend(strs(&job["script"]));
        let r = sh(lock, &dir, &lines, &store);
        if name == "rewheel-merge" {
            compare_with_local(lock, world, &r, &store, &cells);
            continue;
        }
        assert_eq!(
            r.code,
            ExitCode::Success,
            "{name}: {}{}",
            r.stdout,
            r.stderr
        );
        let mut kept = Artifact::new();
        for path in strs(&job["artifacts"]["paths"]) {
            let found = dir.join(path.trim_end_matches('/'));
            assert!(found.exists(), "{name}: no artifact at {path}");
            kept.extend(collect(&found, &dir));
        }
        artifacts.insert(name.clone(), kept);
    }
}

/// minimatch as `actions/download-artifact` applies it to artifact names: `{a,b}` and `*`.
fn matches(pattern: &str, name: &str) -> bool {
    if let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) {
        return pattern[open + 1..close].split(',').any(|alt| {
            matches(
                &format!("{}{alt}{}", &pattern[..open], &pattern[close + 1..]),
                name,
            )
        });
    }
    match pattern.split_once('*') {
        Some((head, tail)) => {
            name.starts_with(head) && name.len() >= head.len() + tail.len() && name.ends_with(tail)
        }
        None => pattern == name,
    }
}

/// `${{ matrix.KEY }}` filled in from the matrix entry.
fn fill(text: &str, entry: &Value) -> String {
    let mut out = text.to_string();
    if let Some(m) = entry.as_mapping() {
        for (k, v) in m {
            out = out.replace(
                &format!("${{{{ matrix.{} }}}}", k.as_str().unwrap()),
                v.as_str().unwrap(),
            );
        }
    }
    out
}

/// One GitHub job (one matrix entry) in a fresh checkout of `repo`.
fn github_job(
    lock: &Lock,
    steps: &Value,
    entry: &Value,
    dir: &Path,
    repo: &Artifact,
    artifacts: &mut BTreeMap<String, Artifact>,
    store: &Path,
) -> crate::common::Run {
    std::fs::create_dir_all(dir).unwrap();
    let mut last = None;
    for step in steps.as_sequence().unwrap() {
        if let Some(cond) = step["if"].as_str() {
            let skip = match cond {
                "matrix.needs != ''" => entry["needs"].as_str() == Some(""),
                "always()" => false,
                other => panic!("the simulator does not model `if: {other}`"),
            };
            if skip {
                continue;
            }
        }
        let with = &step["with"];
        match (step["uses"].as_str(), step["run"].as_str()) {
            (Some("actions/checkout@v4"), _) => place(repo, dir),
            (Some("actions/download-artifact@v4"), _) => {
                let path = dir.join(with["path"].as_str().unwrap());
                if let Some(name) = with["name"].as_str() {
                    // One artifact by name: its files straight into `path`.
                    place(&artifacts[name], &path);
                } else {
                    // By pattern: each matching artifact in a folder named after it.
                    let pattern = fill(with["pattern"].as_str().unwrap(), entry);
                    let found: Vec<&String> =
                        artifacts.keys().filter(|n| matches(&pattern, n)).collect();
                    assert!(!found.is_empty(), "nothing matches {pattern}");
                    for name in found {
                        place(&artifacts[name], &path.join(name));
                    }
                }
            }
            (Some("actions/upload-artifact@v4"), _) => {
                let name = fill(with["name"].as_str().unwrap(), entry);
                let path = dir.join(fill(with["path"].as_str().unwrap(), entry));
                assert!(path.exists(), "nothing to upload at {}", path.display());
                // A folder's files are stored relative to it; a file by its name.
                let base = if path.is_dir() {
                    path.clone()
                } else {
                    path.parent().unwrap().into()
                };
                assert!(
                    artifacts
                        .insert(name.clone(), collect(&path, &base))
                        .is_none(),
                    "two jobs upload `{name}`"
                );
            }
            (None, Some(line)) => {
                let r = sh(lock, dir, &[fill(line, entry)], store);
                if r.code != ExitCode::Success {
                    return r;
                }
                last = Some(r);
            }
            other => panic!("the simulator does not model the step {other:?}"),
        }
    }
    last.expect("a job that runs something")
}

/// Runs the emitted workflow job by job; returns where the workflow is in the repository.
fn simulate_github(lock: &Lock, world: &World, cells: &[&str]) -> &'static str {
    let cells = cells.to_vec();
    let workflow = ".github/workflows/rewheel.yml";

    let r = in_world(
        lock,
        world,
        "plan",
        &args(lock, &cells, &["--emit", "github-workflow", "-o", workflow]),
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(world.path().join(workflow)).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    // The repository a checkout brings: the sdists' folder stands in for it, workflow included.
    let repo: Artifact = collect(world.path(), world.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".cache") && !p.starts_with(".store"))
        .collect();

    let jobs = doc["jobs"].as_mapping().unwrap();
    let names: Vec<String> = jobs
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("plan"));
    assert_eq!(names.last().map(String::as_str), Some("merge"));

    let store = world.path().join("github-store");
    let mut artifacts: BTreeMap<String, Artifact> = BTreeMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        let job = &jobs[name.as_str()];
        for need in strs(&job["needs"]) {
            assert!(done.contains(&need), "{name} runs before {need}");
        }
        let entries: Vec<Value> = match job["strategy"]["matrix"]["include"].as_sequence() {
            Some(include) => include.clone(),
            None => vec![Value::Null],
        };
        for (i, entry) in entries.iter().enumerate() {
            let dir = world.path().join("github").join(format!("{name}-{i}"));
            let r = github_job(
                lock,
                &job["steps"],
                entry,
                &dir,
                &repo,
                &mut artifacts,
                &store,
            );
            if name == "merge" {
                compare_with_local(lock, world, &r, &store, &cells);
            } else {
                assert_eq!(
                    r.code,
                    ExitCode::Success,
                    "{name} {entry:?}: {}{}",
                    r.stdout,
                    r.stderr
                );
            }
        }
        done.insert(name.clone());
    }
    assert!(artifacts.contains_key("rewheel-plan"));
    let plan_dir = world.path().join("plan-artifact");
    place(&artifacts["rewheel-plan"], &plan_dir);
    assert_eq!(
        artifacts.len(),
        1 + plan_jobs(&plan_dir),
        "one artifact per plan job"
    );
    workflow
}

#[test]
fn the_github_workflow_runs_as_emitted_and_knows_when_it_is_stale() {
    let lock = &hermetic();
    let world = world();
    let cells = cells();
    let workflow = simulate_github(lock, &world, &cells);
    let text = std::fs::read_to_string(world.path().join(workflow)).unwrap();
    let levels = text.lines().filter(|l| l.starts_with("  level-")).count();
    assert_eq!(levels, 2, "lib and tool, then app:\n{text}");

    // A lock that moves on (one more level) makes the committed workflow stale, and says so.
    package("top", "1.0", &["app"], &[]).write(world.path());
    let mut moved = args(
        lock,
        &cells,
        &["--emit", "github-workflow", "--check", workflow],
    );
    moved[0] = "top==1.0";
    let r = in_world(lock, &world, "plan", &moved);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains("no longer matches the plan"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("now has 3 levels, the file 2"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_simulated_pattern_matching_is_minimatch_enough() {
    assert!(matches("result-{a,b}", "result-b"));
    assert!(!matches("result-{a,b}", "result-c"));
    assert!(matches("result-*", "result-cp311__six-1.16.0"));
    assert!(!matches("result-*", "rewheel-plan"));
    assert!(matches("rewheel-plan", "rewheel-plan"));
}

/// check-jsonschema (from PyPI; `.ci/run` installs it), when this host has it.
fn check_jsonschema() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REWHEEL_CHECK_JSONSCHEMA") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("check-jsonschema"))
            .find(|p| p.is_file())
    })
}

#[test]
fn the_emitted_files_validate_against_the_published_schemas() {
    let Some(checker) = check_jsonschema() else {
        skip("ci_layout: schema validation (no check-jsonschema; pip install check-jsonschema)");
        return;
    };
    let lock = &hermetic();
    let world = world();
    let cells = cells();
    for (emit, schema) in [
        ("gitlab", "vendor.gitlab-ci"),
        ("github-workflow", "vendor.github-workflows"),
    ] {
        let file = format!("{emit}.yml");
        let r = in_world(
            lock,
            &world,
            "plan",
            &args(
                lock,
                &cells,
                &[
                    "--emit",
                    emit,
                    "-o",
                    &file,
                    "--ci-setup",
                    "./ci/install-rewheel.sh",
                ],
            ),
        );
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        let mut c = Command::new(&checker);
        c.args(["--builtin-schema", schema])
            .arg(world.path().join(&file));
        let r = run(c);
        assert_eq!(
            r.code,
            ExitCode::Success,
            "{emit} against {schema}: {}{}",
            r.stdout,
            r.stderr
        );
    }
    // The checker rejects what is not a pipeline, so the pass above means something.
    std::fs::write(world.path().join("bad.yml"), "jobs: 3\non: [push]\n").unwrap();
    let mut c = Command::new(&checker);
    c.args(["--builtin-schema", "vendor.github-workflows"])
        .arg(world.path().join("bad.yml"));
    assert_ne!(run(c).code, ExitCode::Success);
}

/// Words of a command line as `sh` splits them (plain words and single quotes are enough here).
fn shell_split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match (c, quoted) {
            ('\'', _) => {
                quoted = !quoted;
                started = true;
            }
            (' ', false) => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (c, _) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[test]
fn the_readme_shows_the_emitted_files_as_they_are() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let world = world();
    let mut fresh = String::new();
    let mut rest = readme.as_str();
    let mut blocks = 0;
    while let Some(at) = rest.find("<!-- emitted: ") {
        let (before, from) = rest.split_at(at);
        fresh.push_str(before);
        let header_end = from.find(" -->\n").unwrap() + " -->\n".len();
        let header = &from[..header_end];
        let command = header
            .trim_start_matches("<!-- emitted: ")
            .trim_end_matches(" -->\n");
        let words = shell_split(command);
        assert_eq!(&words[..2], ["rewheel", "plan"], "{command}");
        let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
        let r = in_world(&hermetic(), &world, "plan", &args);
        assert_eq!(r.code, ExitCode::Success, "{command}: {}", r.stderr);
        let end = from.find("<!-- /emitted -->").unwrap();
        fresh.push_str(header);
        fresh.push_str("```yaml\n");
        fresh.push_str(&r.stdout);
        fresh.push_str("```\n");
        rest = &from[end..];
        blocks += 1;
    }
    fresh.push_str(rest);
    assert_eq!(blocks, 2, "the README shows a GitLab and a GitHub example");
    if std::env::var_os("REWHEEL_BLESS").is_some() {
        std::fs::write(&readme_path, &fresh).unwrap();
    }
    assert!(
        fresh == readme,
        "README.md's CI examples differ from what rewheel emits now; REWHEEL_BLESS=1 rewrites them"
    );
}

/// python-dateutil's closure as PyPI stood on 15 July 2022 (setuptools and wheel bootstrap
/// each other in three stages), the jobs sharing one index cache as a CI cache would.
fn dateutil() -> Lock {
    Lock {
        specs: vec![
            "python-dateutil==2.8.2",
            "--exclude-newer",
            "2022-07-15T00:00:00Z",
            "--source-date-epoch",
            "1657843200",
        ],
        cache: Some(std::env::temp_dir().join("rewheel-test-pypi-cache")),
    }
}

fn index_answers() -> bool {
    use std::net::ToSocketAddrs;
    let ok = "pypi.org:443".to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(5)).is_ok()
        })
    });
    if !ok {
        skip("ci_layout: the real closure (the package index is unreachable)");
    }
    ok
}

#[test]
fn the_real_dateutil_closure_on_two_cells_runs_as_emitted_on_gitlab() {
    if index_answers() {
        simulate_gitlab(&dateutil(), &World::new(), &cells());
    }
}

#[test]
fn the_real_dateutil_closure_on_two_cells_runs_as_emitted_on_github() {
    if index_answers() {
        simulate_github(&dateutil(), &World::new(), &cells());
    }
}
