//! `compare` of crafted wheels: what a zip is ambiguous about (a name given twice, a local
//! header that names another entry, a size the data does not have) is a difference with its
//! reason, never "same content" with an empty one; wheels of 300,000 entries are read in one
//! pass; a damaged blob of the run store is the environment's fault (exit 5).

use crate::common::{Run, World, package, run};
use rewheel::exit::ExitCode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn compare(a: &Path, b: &Path, extra: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command.arg("compare").arg(a).arg(b).args(extra);
    run(command)
}

/// A zip of stored entries (their bytes appear as written, so tests can find and patch them).
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn write(dir: &Path, sub: &str, bytes: &[u8]) -> PathBuf {
    let folder = dir.join(sub);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("w-1.0-py3-none-any.whl");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Where each occurrence of `needle` starts.
fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

const CENTRAL: &[u8] = b"PK\x01\x02";
const LOCAL: &[u8] = b"PK\x03\x04";

/// No report line may give a difference without its reason.
fn assert_no_empty_reason(r: &Run) {
    assert!(!r.stdout.contains("()"), "an empty reason: {}", r.stdout);
}

const W_PY: &[u8] = b"print('the reviewed code')\n";

#[test]
fn a_second_entry_with_the_same_name_is_a_named_difference() {
    let dir = tempfile::tempdir().unwrap();
    let clean = stored_zip(&[("w.py", W_PY), ("x.py", b"1\n")]);
    // `v.py` renamed `w.py` in both its headers: a second `w.py` carrying other code.
    let mut twice = stored_zip(&[
        ("w.py", W_PY),
        ("x.py", b"1\n"),
        ("v.py", b"import os; os.system('evil')\n"),
    ]);
    for at in positions(&twice, b"v.py") {
        twice[at..at + 4].copy_from_slice(b"w.py");
    }
    let a = write(dir.path(), "a", &clean);
    let b = write(dir.path(), "b", &twice);
    let r = compare(&a, &b, &[]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("w.py") && r.stdout.contains("duplicate name"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("their contents differ"), "{}", r.stdout);
    assert!(!r.stdout.contains("same content"), "{}", r.stdout);
    assert!(!r.stdout.contains("entry order"), "{}", r.stdout);
    assert_no_empty_reason(&r);
    // The same in the JSON report, where tools read it.
    let json = compare(&a, &b, &["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let anomalies = &doc["pairs"][0]["anomalies"];
    assert_eq!(anomalies[0]["kind"], "duplicate-name", "{}", json.stdout);
    assert_eq!(anomalies[0]["entry"], "w.py", "{}", json.stdout);
    assert_eq!(anomalies[0]["side"], "b", "{}", json.stdout);
}

#[test]
fn a_local_header_naming_another_entry_is_a_named_difference() {
    let dir = tempfile::tempdir().unwrap();
    let clean = stored_zip(&[("w.py", W_PY), ("v.py", b"2\n")]);
    // The local header of `v.py` says `e.py`; the central directory still says `v.py`.
    let mut other = clean.clone();
    let local = positions(&other, LOCAL)[1];
    let name = local + 30;
    assert_eq!(&other[name..name + 4], b"v.py");
    other[name..name + 4].copy_from_slice(b"e.py");
    let a = write(dir.path(), "a", &clean);
    let b = write(dir.path(), "b", &other);
    let r = compare(&a, &b, &[]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("v.py: in ")
            && r.stdout
                .contains("local header disagrees with the central directory on the name")
            && r.stdout.contains("`e.py`"),
        "{}",
        r.stdout
    );
    assert_no_empty_reason(&r);
}

#[test]
fn a_size_lie_is_a_named_difference() {
    let dir = tempfile::tempdir().unwrap();
    let clean = stored_zip(&[("w.py", W_PY)]);
    // Both headers declare 9 bytes more than `w.py` holds: they agree, and both lie.
    let mut lying = clean.clone();
    let declared = W_PY.len() as u32 + 9;
    for (at, field) in [
        (positions(&lying, LOCAL)[0], 22),
        (positions(&lying, CENTRAL)[0], 24),
    ] {
        lying[at + field..at + field + 4].copy_from_slice(&declared.to_le_bytes());
    }
    let a = write(dir.path(), "a", &clean);
    let b = write(dir.path(), "b", &lying);
    let r = compare(&a, &b, &[]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("w.py: in ")
            && r.stdout.contains(&format!(
                "a size lie: declares {declared} bytes but holds {}",
                W_PY.len()
            )),
        "{}",
        r.stdout
    );
    assert_no_empty_reason(&r);
}

#[test]
fn differing_bytes_outside_every_entry_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let clean = stored_zip(&[("w.py", W_PY)]);
    // Same entries, same headers, the zip's end record differs only in bytes after it.
    let mut padded = clean.clone();
    padded.extend_from_slice(b"\0\0\0\0");
    let a = write(dir.path(), "a", &clean);
    let b = write(dir.path(), "b", &padded);
    let r = compare(&a, &b, &[]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout
            .contains("same content, different archive (zip layout"),
        "{}",
        r.stdout
    );
    assert_no_empty_reason(&r);
}

#[test]
fn a_zip_declaring_too_many_entries_is_refused_with_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    // A zip64 end record declaring two million entries, its locator, and the end record.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"PK\x06\x06");
    bytes.extend_from_slice(&44u64.to_le_bytes());
    bytes.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&2_000_000u64.to_le_bytes());
    bytes.extend_from_slice(&2_000_000u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(b"PK\x06\x07\0\0\0\0");
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(
        b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0",
    );
    let a = write(dir.path(), "a", &stored_zip(&[("w.py", W_PY)]));
    let b = write(dir.path(), "b", &bytes);
    let r = compare(&a, &b, &[]);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the zip declares 2000000 entries, more than 1000000"),
        "{}",
        r.stderr
    );
}

/// A wheel of `n` small stored entries whose content names its side.
fn many(dir: &Path, side: &str, n: usize) -> PathBuf {
    let folder = dir.join(side);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("many-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..n {
        zip.start_file(format!("many/m{i}.py"), options).unwrap();
        writeln!(zip, "side = '{side}'").unwrap();
    }
    zip.finish().unwrap();
    path
}

#[test]
fn fifty_thousand_changed_entries_are_compared_in_one_pass() {
    // Every entry is changed, diffed and searched for clues: none of that reads the zip again.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (many(dir.path(), "a", 50_000), many(dir.path(), "b", 50_000));
    let start = std::time::Instant::now();
    let r = compare(&a, &b, &["--format", "json"]);
    eprintln!("50,000 changed entries compared in {:?}", start.elapsed());
    assert_eq!(r.code, ExitCode::NotReproducible, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["pairs"][0]["changed"].as_array().unwrap().len(), 50_000);
}

#[test]
fn three_hundred_thousand_added_entries_are_compared() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (many(dir.path(), "a", 1), many(dir.path(), "b", 300_000));
    let start = std::time::Instant::now();
    let r = compare(&a, &b, &["--format", "json"]);
    eprintln!("300,000 added entries compared in {:?}", start.elapsed());
    assert_eq!(r.code, ExitCode::NotReproducible, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["pairs"][0]["added"].as_array().unwrap().len(), 299_999);
}

#[test]
fn a_damaged_blob_is_an_environment_error_naming_runs_verify() {
    let world = World::new();
    package("solid", "1.0", &[], &[]).write(world.path());
    let built = world.build(&["solid==1.0"]);
    assert_eq!(
        built.code,
        ExitCode::Success,
        "{}{}",
        built.stdout,
        built.stderr
    );
    let id = built
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("the run id is printed")
        .to_string();
    let wheelhouse = world.path().join("wheelhouse");
    let cell = std::fs::read_dir(&wheelhouse)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(cell.join("solid-1.0-py3-none-any.whl")).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&good));
    let blob = world.path().join(".store/blobs").join(&sha[..2]).join(&sha);
    let mut damaged = good.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(&blob, &damaged).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["compare", &id])
        .arg(&wheelhouse)
        .arg("--store")
        .arg(world.path().join(".store"));
    let r = run(command);
    assert_eq!(r.code, ExitCode::Environment, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("changed after it was written")
            && r.stderr.contains("rewheel runs verify"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(cell.join("solid-1.0-py3-none-any.whl")).unwrap(),
        good
    );
}

/// The run id a build printed.
fn run_id(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .expect("the run id is printed")
        .to_string()
}

#[test]
fn two_runs_compared_name_the_build_dependency_that_moved_or_say_nothing_did() {
    let world = World::new();
    let dir = world.path();
    // app's wheel carries the version of the tool it was built with, as a plugin's output would.
    let app = || {
        package("app", "1.0", &["tool"], &[])
            .file(
                "hook.py",
                "import importlib.metadata as m\nopen('module.py', 'w').write(f'NAME = \"app\"\\nTOOL = {m.version(\"tool\")!r}\\n')",
            )
            .write(dir)
    };
    package("tool", "1.0", &[], &[]).write(dir);
    app();
    let first = world.build(&["app==1.0"]);
    assert_eq!(
        first.code,
        ExitCode::Success,
        "{}{}",
        first.stdout,
        first.stderr
    );
    // A month later: a new upload of the build dependency, the same app.
    package("tool", "1.1", &[], &[]).write(dir);
    let second = world.build(&["app==1.0", "--rebuild"]);
    assert_eq!(
        second.code,
        ExitCode::Success,
        "{}{}",
        second.stdout,
        second.stderr
    );
    let (a, b) = (run_id(&first), run_id(&second));
    let compare = |format: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .args(["compare", &a, &b, "--format", format])
            .arg("--store")
            .arg(dir.join(".store"));
        run(command)
    };
    let json = compare("json");
    assert_eq!(
        json.code,
        ExitCode::NotReproducible,
        "{}{}",
        json.stdout,
        json.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let pair = doc["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["wheel"] == "app-1.0-py3-none-any.whl")
        .expect("app is compared");
    assert_eq!(pair["same_inputs"], false, "{pair}");
    assert_eq!(
        pair["moved_inputs"],
        serde_json::json!([{"input": "build-dependency", "name": "tool", "a": "1.0", "b": "1.1"}]),
        "{pair}"
    );
    // The text leads with the cause, before the hashes.
    let text = compare("text");
    let block = crate::common::block(&text.stdout, "app-1.0-py3-none-any.whl");
    let moved = block
        .find("inputs moved: build dependency tool 1.0 → 1.1")
        .unwrap_or_else(|| panic!("{block}"));
    assert!(moved < block.find("raw sha256").unwrap(), "{block}");

    // The same inputs built twice to other bytes: nothing moved, the build is to blame.
    let clocked = World::new();
    package("clocked", "1.0", &[], &[])
        .file("clock_times.txt", "")
        .write(clocked.path());
    let one = clocked.build(&["clocked==1.0"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let two = clocked.build(&["clocked==1.0", "--rebuild"]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["compare", &run_id(&one), &run_id(&two)])
        .arg("--store")
        .arg(clocked.path().join(".store"));
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
            .contains("same inputs, different bytes: the build is not reproducible"),
        "{}",
        r.stdout
    );
}

#[test]
fn pure_wheels_are_compared_across_cells_and_one_that_embeds_the_interpreter_differs() {
    let (Some(_), Some(_)) = (
        crate::common::host_has_python("3.11"),
        crate::common::host_has_python("3.10"),
    ) else {
        crate::common::skip("across cells: needs Python 3.10 and 3.11 on the host");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    package("plain", "1.0", &[], &[]).write(dir);
    package("embeds", "1.0", &[], &[])
        .file(
            "hook.py",
            "import sys\nopen('module.py', 'w').write(f'NAME = \"embeds\"\\nBUILT_BY = {sys.version_info[:2]!r}\\n')",
        )
        .write(dir);
    let rewheel = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rewheel"));
        c.args(args)
            .args(["--store"])
            .arg(dir.join(".store"))
            .env_remove("PIP_INDEX_URL");
        c
    };
    let mut build = rewheel(&[
        "build",
        "plain==1.0",
        "embeds==1.0",
        "--python",
        "3.11",
        "--python",
        "3.10",
        "--backend",
        "local",
        "--source-date-epoch",
        "1700000000",
        "--no-index",
    ]);
    build
        .arg("--find-links")
        .arg(dir)
        .arg("--cache-dir")
        .arg(dir.join(".cache"))
        .arg("--out")
        .arg(dir.join("wheelhouse"))
        .arg("--build-path")
        .arg(dir.join(".build"));
    let built = run(build);
    assert_eq!(
        built.code,
        ExitCode::Success,
        "{}{}",
        built.stdout,
        built.stderr
    );
    let id = run_id(&built);
    let r = run(rewheel(&[
        "compare",
        &id,
        "--across-cells",
        "--format",
        "json",
    ]));
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let pair = |wheel: &str| {
        doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["wheel"] == wheel)
            .unwrap_or_else(|| panic!("{wheel} in {doc}"))
            .clone()
    };
    let plain = pair("plain-1.0-py3-none-any.whl");
    assert_eq!(plain["verdict"], "identical", "{plain}");
    let embeds = pair("embeds-1.0-py3-none-any.whl");
    assert_eq!(embeds["verdict"], "content-differs", "{embeds}");
    assert!(
        embeds["cell"].as_str().unwrap().contains(" vs "),
        "{embeds}"
    );
    assert!(
        embeds["moved_inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["input"] == "interpreter-version"),
        "{embeds}"
    );
    let text = run(rewheel(&["compare", &id, "--across-cells"]));
    assert!(
        text.stdout
            .contains("inputs moved: interpreter version 3.1"),
        "{}",
        text.stdout
    );
}
