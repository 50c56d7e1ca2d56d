//! The shape of the code, checked: modules form no import cycle (a module never imports one
//! that imports it back, parents and re-exports included), clap stays in `cli/`, and `cli/`
//! stays thin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the library by path (`build::backend::open`), with its source.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                let source = std::fs::read_to_string(&path).unwrap();
                out.insert(parts.join("::"), without_tests(&source));
            }
        }
    }
    out
}

/// Unit tests may reach anywhere; only the code proper counts.
fn without_tests(source: &str) -> String {
    match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => source[..at].to_string(),
        None => source.to_string(),
    }
}

/// Paths like `a::b::c` that start at `at` in `text`.
fn path_at(text: &str, at: usize) -> String {
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect::<String>()
        .trim_end_matches(':')
        .to_string()
}

/// The longest prefix of `path` that is a module.
fn module_of(path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn declared_children(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

fn imports(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (module, source) in modules {
        let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
        let join = |base: &str, rest: &str| {
            if base.is_empty() {
                rest.to_string()
            } else {
                format!("{base}::{rest}")
            }
        };
        let mut deps = BTreeSet::new();
        let mut add = |path: String| {
            if let Some(m) = module_of(&path, modules)
                && &m != module
            {
                deps.insert(m);
            }
        };
        for (at, _) in source.match_indices("crate::") {
            add(path_at(source, at + "crate::".len()));
        }
        for (at, _) in source.match_indices("super::") {
            let rest = &source[at + "super::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(0)];
                for name in group.split(',') {
                    let name = name.trim().split("::").next().unwrap_or("").trim();
                    add(join(parent, name));
                }
            } else {
                add(join(parent, &path_at(source, at + "super::".len())));
            }
        }
        // A parent that uses (or re-exports) a child depends on it.
        let body: String = source
            .lines()
            .filter(|l| {
                !l.trim_start()
                    .trim_start_matches("pub ")
                    .starts_with("mod ")
            })
            .collect::<Vec<_>>()
            .join("\n");
        for child in declared_children(source) {
            let needle = format!("{child}::");
            let used = body.match_indices(&needle).any(|(at, _)| {
                !body[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c == ':' || c.is_ascii_alphanumeric() || c == '_')
            });
            if used {
                add(join(module, &child));
            }
        }
        edges.insert(module.clone(), deps);
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_through(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in edges.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let modules = modules();
    assert!(
        modules.contains_key("build::executor"),
        "{:?}",
        modules.keys()
    );
    let edges = imports(&modules);
    // The checker sees real edges: the CLI reaches the build stage, the build stage the store.
    assert!(
        edges["cli::build_cmd"]
            .iter()
            .any(|m| m.starts_with("build"))
    );
    assert!(edges["build::executor"].contains("store"));
    let cycles: Vec<String> = modules
        .keys()
        .filter_map(|m| cycle_through(m, &edges))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut modules = BTreeMap::new();
    modules.insert("a".to_string(), "use crate::b::thing;".to_string());
    modules.insert("b".to_string(), "fn f() { crate::a::other() }".to_string());
    modules.insert("c".to_string(), "mod d;\npub use d::x;".to_string());
    modules.insert("c::d".to_string(), "use super::Y;".to_string());
    let edges = imports(&modules);
    assert!(cycle_through("a", &edges).is_some());
    assert!(cycle_through("c", &edges).is_some(), "{edges:?}");
}

#[test]
fn clap_stays_in_the_command_line_and_the_command_line_stays_thin() {
    let modules = modules();
    let below: Vec<&String> = modules
        .iter()
        .filter(|(m, s)| !m.starts_with("cli") && s.contains("clap::"))
        .map(|(m, _)| m)
        .collect();
    assert!(below.is_empty(), "clap below cli/: {below:?}");
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    // The flag definitions (`args.rs`, mostly help text) grow with every option; what must
    // stay small is the rest: settings, dispatch and printing.
    let lines: usize = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "args.rs"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert!(
        lines <= 900,
        "cli/ has {lines} lines besides its flags; move engine code into its stage"
    );
}

/// One engine per concept: a job is run on a backend in one function (`build::attempt`),
/// which `build`, `check`'s second side, a plan's probes and a CI job all call; the command
/// line orchestrates nothing (no runtime, no backend, no executor, no attempt).
#[test]
fn one_function_runs_a_job_and_the_command_line_orchestrates_nothing() {
    let modules = modules();
    // The backends define `run_job`; the one caller is the attempt.
    let callers: Vec<&String> = modules
        .iter()
        .filter(|(_, s)| s.contains(".run_job("))
        .map(|(m, _)| m)
        .collect();
    assert_eq!(callers, ["build::attempt"], "who runs jobs");
    let attempt_callers: BTreeSet<&str> = modules
        .iter()
        .filter(|(m, s)| m.as_str() != "build::attempt" && s.contains("attempt("))
        .map(|(m, _)| m.as_str())
        .collect();
    for stage in ["build::executor", "verify::check", "ci::job_runner"] {
        assert!(
            attempt_callers.contains(stage),
            "{stage} does not run its jobs through the attempt: {attempt_callers:?}"
        );
    }
    let engine = [
        "tokio::",
        "block_on",
        "Executor",
        "attempt(",
        "backend::open",
        "Planner",
    ];
    let orchestrating: Vec<String> = modules
        .iter()
        .filter(|(m, _)| m.starts_with("cli"))
        .flat_map(|(m, s)| {
            engine
                .iter()
                .filter(|word| s.contains(*word))
                .map(move |word| format!("{m}: {word}"))
        })
        .collect();
    assert!(
        orchestrating.is_empty(),
        "orchestration in cli/: {orchestrating:?}"
    );
}
