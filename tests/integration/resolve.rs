//! `rewheel resolve` on the fixture world, offline.

use crate::common::{Sdist, rewheel, world, write_wheel};
use rewheel::exit::ExitCode;

fn world_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    world(dir.path());
    dir
}

#[test]
fn the_cycle_closes_on_python_37_only_and_is_explained() {
    let dir = world_dir();
    let run = rewheel(dir.path(), &["resolve", "dateapp==1.0", "--python", "3.7"]);
    assert_eq!(run.code, ExitCode::Cycle, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "dateapp 1.0 —build-system (scm-tool)→ scm-tool 7.0 —install [python_version < \"3.8\"] \
             (meta-lib)→ meta-lib 4.0 —build-system (scm_tool[toml]>=3.4.1)→ scm-tool 7.0"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("cycle: meta-lib==4.0, scm-tool==7.0, zipp-like==3.0"),
        "{}",
        run.stdout
    );
    // The way out through an older pin is found on the index and checked by resolving again.
    assert!(
        run.stdout
            .contains("pin `scm-tool==6.0` with --build-constraints"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("checked: the cell then resolves without this cycle"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("--allow-binary meta-lib"),
        "{}",
        run.stdout
    );
    // The toolchain roots need each other: a bootstrap cycle, reported but not an error.
    assert!(
        run.stdout.contains(
            "bootstrap cycle (built in stages from a seed): setuptools==70.0, wheel==0.37"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn python_39_resolves_and_orders_build_tools_first() {
    let dir = world_dir();
    let run = rewheel(dir.path(), &["resolve", "dateapp==1.0", "--python", "3.9"]);
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    let position = |name: &str| {
        run.stdout
            .lines()
            .position(|l| l.contains(&format!("] {name} ")))
            .unwrap_or_else(|| panic!("{name} missing from\n{}", run.stdout))
    };
    assert!(position("scm-tool") < position("dateapp"));
    assert!(position("flit-core") < position("tomli-like"));
    assert!(!run.stdout.contains("meta-lib"), "{}", run.stdout);
}

#[test]
fn json_report_is_a_versioned_contract_with_typed_edges() {
    let dir = world_dir();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--python",
            "3.9",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, ExitCode::Cycle, "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    let cp37 = &cells[0];
    assert_eq!(cp37["id"], "cp37");
    let edges = cp37["edges"].as_array().unwrap();
    let find = |from: &str, to: &str| {
        edges
            .iter()
            .find(|e| e["from"] == from && e["to"] == to)
            .unwrap_or_else(|| panic!("no edge {from} -> {to}"))
    };
    let closing = find("meta-lib==4.0", "scm-tool==7.0");
    assert_eq!(closing["kind"], "build-system");
    assert_eq!(closing["requirement"], "scm_tool[toml]>=3.4.1");
    let install = find("scm-tool==7.0", "meta-lib==4.0");
    assert_eq!(install["kind"], "install");
    assert_eq!(install["marker"], "python_version < \"3.8\"");
    // setup.cfg setup_requires and a literal setup.py setup_requires are backend edges.
    assert_eq!(
        find("zipp-like==3.0", "scm-tool==7.0")["kind"],
        "build-backend"
    );
    assert_eq!(
        find("sixish==1.0", "tomli-like==2.0")["kind"],
        "build-backend"
    );
    // The toml extra of scm-tool brings tomli-like into meta-lib's build environment.
    assert_eq!(
        find("scm-tool==7.0", "tomli-like==2.0")["marker"],
        "extra == \"toml\""
    );
    // An in-tree backend that lists itself is no cycle.
    assert!(edges.iter().all(|e| e["from"] != "inhouse-backend==1.0"));
    let cycles = cp37["cycles"].as_array().unwrap();
    let kinds: Vec<_> = cycles.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["error", "bootstrap"]);
    assert_eq!(cycles[0]["ways_out"][0]["kind"], "build-constraint");
    assert_eq!(cycles[0]["ways_out"][0]["verified"], true);
    let order: Vec<_> = cp37["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"dateapp==1.0"));
    assert_eq!(
        cells[1]["cycles"].as_array().unwrap().len(),
        1,
        "cp39 keeps only the bootstrap cycle"
    );
}

#[test]
fn a_build_constraint_breaks_the_cycle() {
    let dir = world_dir();
    let constraints = dir.path().join("build-constraints.txt");
    std::fs::write(&constraints, "scm-tool==6.0\n").unwrap();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--build-constraints",
            constraints.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("scm-tool 6.0"), "{}", run.stdout);
    assert!(!run.stdout.contains("scm-tool 7.0"), "{}", run.stdout);
}

#[test]
fn allowing_one_binary_breaks_the_cycle() {
    let dir = world_dir();
    write_wheel(dir.path(), "meta-lib", "4.0", &["zipp-like>=0.5"]);
    write_wheel(dir.path(), "zipp-like", "3.0", &[]);
    // With meta-lib a wheel, zipp-like (built with scm-tool, needed by meta-lib) still closes a
    // loop, as the real zipp does; the report says so and names it as the next way out.
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--allow-binary",
            "meta-lib",
        ],
    );
    assert_eq!(run.code, ExitCode::Cycle, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("--allow-binary zipp-like"),
        "{}",
        run.stdout
    );
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--allow-binary",
            "meta-lib",
            "--allow-binary",
            "zipp-like",
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("meta-lib 4.0  (wheel from the index)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bootstrap_set_that_covers_the_cycle_makes_it_a_staged_build() {
    let dir = world_dir();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--bootstrap",
            "setuptools",
            "wheel",
            "flit-core",
            "scm-tool",
            "meta-lib",
            "zipp-like",
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
}

#[test]
fn why_answers_with_the_chain_from_a_root() {
    let dir = world_dir();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--why",
            "tomli-like",
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("cp39: dateapp 1.0 —build-system (scm-tool)→ scm-tool 7.0 —install [extra == \"toml\"]")
            || run.stdout.starts_with("cp39: dateapp 1.0 —install (sixish)→ sixish 1.0 —build-backend (tomli-like)→ tomli-like 2.0"),
        "{}",
        run.stdout
    );
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--why",
            "meta-lib",
        ],
    );
    assert_eq!(run.code, ExitCode::Input, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("cp39: meta-lib is not in this cell's graph"),
        "{}",
        run.stdout
    );
}

#[test]
fn dot_output_marks_the_cycle() {
    let dir = world_dir();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.7",
            "--format",
            "dot",
        ],
    );
    assert_eq!(run.code, ExitCode::Cycle);
    assert!(run.stdout.starts_with("digraph rewheel {"));
    assert!(
        run.stdout.contains(
            "\"cp37/meta-lib==4.0\" -> \"cp37/scm-tool==7.0\" [label=\"build-system\", color=red];"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_matrix_file_selects_cells_by_glob() {
    let dir = world_dir();
    let matrix = dir.path().join("m.toml");
    std::fs::write(
        &matrix,
        "[cells.cp37-buster]\npython = \"3.7.3\"\n[cells.cp39-bullseye]\npython = \"3.9.2\"\n[cells.cp311-bookworm]\npython = \"3.11.2\"\n",
    )
    .unwrap();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--matrix",
            matrix.to_str().unwrap(),
            "--cells",
            "cp3{9,11}-*",
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("cp39-bullseye (Python 3.9.2)"));
    assert!(run.stdout.contains("cp311-bookworm (Python 3.11.2)"));
    assert!(!run.stdout.contains("cp37"));
}

#[test]
fn warm_runs_work_offline_from_the_cache() {
    let dir = world_dir();
    let first = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--format",
            "json",
        ],
    );
    let second = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--format",
            "json",
            "--offline",
        ],
    );
    assert_eq!(first.code, ExitCode::Success);
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn the_shipped_matrices_load_and_select() {
    let dir = world_dir();
    for matrix in ["matrices/debian.toml", "matrices/local.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(matrix);
        let run = rewheel(
            dir.path(),
            &[
                "resolve",
                "dateapp==1.0",
                "--matrix",
                path.to_str().unwrap(),
                "--cells",
                "cp3{9,11}-*",
            ],
        );
        assert_eq!(
            run.code,
            ExitCode::Success,
            "{matrix}: {}{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(
            run.stdout.lines().filter(|l| l.starts_with("cp3")).count(),
            2,
            "{}",
            run.stdout
        );
    }
}

#[test]
fn the_build_closure_as_a_requirements_file_pins_by_hash_and_says_why() {
    let dir = world_dir();
    let run = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--format",
            "requirements",
        ],
    );
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    let text = &run.stdout;
    assert!(
        text.contains("dateapp==1.0 \\\n    --hash=sha256:"),
        "{text}"
    );
    assert!(text.contains("scm-tool=="), "{text}");
    assert!(text.contains("(build-system)"), "{text}");
    assert!(text.contains("# via the requirements"), "{text}");
    // Every pin carries a hash: pip reads it with --require-hashes.
    let pins = text.lines().filter(|l| l.contains("==")).count();
    let hashes = text
        .lines()
        .filter(|l| l.contains("--hash=sha256:"))
        .count();
    assert_eq!(pins, hashes, "{text}");
    let parsed = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-index",
            "--require-hashes",
            "-r",
            "/dev/stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(out) = parsed {
        // pip reads the file; it fails only for want of an index, never on the file itself.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Invalid requirement") && !err.contains("line "),
            "{err}"
        );
    }
    // Two cells cannot share one requirements file.
    let two = rewheel(
        dir.path(),
        &[
            "resolve",
            "dateapp==1.0",
            "--python",
            "3.9",
            "--python",
            "3.7",
            "--format",
            "requirements",
        ],
    );
    assert_eq!(two.code, ExitCode::Input, "{}", two.stderr);
    assert!(
        two.stderr.contains("writes one cell's closure"),
        "{}",
        two.stderr
    );
}

#[test]
fn a_pinned_lock_reads_the_pinned_sdists_not_the_newest() {
    // The crawl that warms the cache before resolving follows each pin; before it did, a lock
    // fetched and inspected every pin's newest release too, and what that one required.
    let dir = tempfile::tempdir().unwrap();
    for (version, requires) in [("1.0", vec![]), ("2.0", vec!["newdep"])] {
        Sdist::new("pinned", version)
            .pyproject(&[], "inhouse_backend", Some("."))
            .pkg_info("2.2", &requires)
            .write(dir.path());
    }
    Sdist::new("newdep", "1.0")
        .pyproject(&[], "inhouse_backend", Some("."))
        .pkg_info("2.2", &[])
        .write(dir.path());
    let run = rewheel(dir.path(), &["resolve", "pinned==1.0", "--python", "3.11"]);
    assert_eq!(run.code, ExitCode::Success, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("pinned 1.0"), "{}", run.stdout);
    let inspected: Vec<String> = std::fs::read_dir(dir.path().join(".cache/inspect-v3"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(inspected.len(), 1, "{inspected:?}");
}

/// An old sdist's PKG-INFO (1.1) names no dependency, and the index serves no PEP 658
/// metadata for its wheel (flit-core 3.0.0 on PyPI, which needs pytoml): the pure wheel's own
/// METADATA is read, so what builds with it gets its runtime dependency.
#[test]
fn an_old_sdists_dependencies_come_from_its_pure_wheels_metadata() {
    let dir = tempfile::tempdir().unwrap();
    Sdist::new("oldtool", "1.0")
        .pyproject(&[], "tinybuild", Some("."))
        .pkg_info("1.1", &[])
        .file("tinybuild.py", crate::common::TINYBUILD)
        .write(dir.path());
    write_wheel(dir.path(), "oldtool", "1.0", &["helperlib"]);
    crate::common::package("helperlib", "2.0", &[], &[]).write(dir.path());
    let run = rewheel(dir.path(), &["resolve", "oldtool==1.0", "--python", "3.11"]);
    assert!(
        run.stdout.contains("helperlib 2.0"),
        "{}{}",
        run.stdout,
        run.stderr
    );
}
