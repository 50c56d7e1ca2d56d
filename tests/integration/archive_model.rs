//! What is inspected is what is built: `resolve` (which reads an sdist's build files) and
//! `build` (whose job unpacks it) read one model of the tree and give the same answer, on paths
//! too deep to unpack, on build files that are hard links, on archives with more than one top
//! folder. Tar and zip where both can say it.

use crate::common::{RawEntry, World};
use crate::hostile::{Sentinel, assert_refused, entries_of, resolve, write_tar};
use rewheel::exit::ExitCode;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in files {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// A well-formed package plus one file 30,000 components deep (its name about 60 KB).
fn deep_files(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = entries_of(name, "1.0", None);
    files.push((
        format!("{name}-1.0/{}f", "a/".repeat(29_998)),
        b"deep".to_vec(),
    ));
    files
}

/// The largest resident size any child of this test reached, in MiB.
fn children_peak_mib() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss / 1024
}

#[test]
fn a_path_of_30000_components_is_refused_at_once_in_small_memory_by_resolve_and_build() {
    let world = World::new();
    let sentinel = Sentinel::new();
    // The tar names it in a GNU long-name record, the zip in its 16-bit name field.
    let tar = world.path().join("deeptar-1.0.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tar).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    for (path, data) in deep_files("deeptar") {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    write_zip(
        &world.path().join("deepzip-1.0.zip"),
        &deep_files("deepzip"),
    );

    let started = Instant::now();
    for name in ["deeptar", "deepzip"] {
        let spec = format!("{name}==1.0");
        for r in [resolve(&world, &spec), world.build(&[&spec])] {
            assert_refused(
                &r,
                ExitCode::Input,
                "components, longer than pip could unpack; the limit is 4095 bytes and 256 components",
            );
            // The entry is named, cut short: the message is not 60 KB.
            assert_refused(&r, ExitCode::Input, &format!("entry `{name}-1.0/a/a/a/"));
            assert!(r.stderr.len() < 4096, "{} bytes of stderr", r.stderr.len());
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let peak = children_peak_mib();
    assert!(peak < 100, "rewheel peaked at {peak} MiB");
    sentinel.assert_untouched();
    assert!(world.wheels().is_empty());
}

fn resolve_json(world: &World, spec: &str) -> serde_json::Value {
    let (_, version) = crate::common::host_python();
    let r = crate::common::rewheel(
        world.path(),
        &["resolve", spec, "--python", &version, "--format", "json"],
    );
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// The `Generator:` line of the wheel `build` made: which backend wrote it.
fn generator_of_built_wheel(world: &World, wheel: &str) -> String {
    let cell = std::fs::read_dir(world.path().join("wheelhouse"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = std::fs::File::open(cell.join(wheel)).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let info = wheel.split('-').take(2).collect::<Vec<_>>().join("-");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name(&format!("{info}.dist-info/WHEEL")).unwrap(),
        &mut text,
    )
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Generator: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_hard_linked_pyproject_names_the_same_backend_to_resolve_and_to_the_job() {
    let world = World::new();
    let sentinel = Sentinel::new();
    // The build-system table under a name no inspection reads, and pyproject.toml a hard link
    // to it: pip's tarfile unpacks a copy, so that is the file both must read.
    let mut files = entries_of("hardpy", "1.0", None);
    for (path, _) in &mut files {
        if path == "hardpy-1.0/pyproject.toml" {
            *path = "hardpy-1.0/data/build-system.toml".into();
        }
    }
    write_tar(
        world.path(),
        "hardpy",
        &files,
        &[RawEntry {
            path: "hardpy-1.0/pyproject.toml",
            kind: tar::EntryType::Link,
            link: Some("hardpy-1.0/data/build-system.toml"),
            data: Vec::new(),
        }],
    );
    let doc = resolve_json(&world, "hardpy==1.0");
    let node = doc["cells"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "hardpy")
        .unwrap()
        .clone();
    assert_eq!(node["build_backend"], "tinybuild", "{node}");
    assert_eq!(node["build_requires_source"], "pyproject.toml", "{node}");
    assert_eq!(node["in_tree_backend"], true, "{node}");

    let r = world.build(&["hardpy==1.0"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        generator_of_built_wheel(&world, "hardpy-1.0-py3-none-any.whl"),
        "tinybuild"
    );
    sentinel.assert_untouched();
}

#[test]
fn a_second_top_folder_with_its_own_backend_is_refused_by_resolve_and_build_alike() {
    let world = World::new();
    let sentinel = Sentinel::new();
    // Were it ever run, this backend would write beside the canary.
    let evil = format!(
        "open({:?} + '/pwned', 'w').write('owned')\ndef build_wheel(*args, **kwargs):\n    raise SystemExit('the backend of the second folder ran')\n",
        sentinel.path().display().to_string()
    );
    let second = [
        (
            "other/pyproject.toml".to_string(),
            b"[build-system]\nrequires = []\nbuild-backend = \"evilbuild\"\nbackend-path = [\".\"]\n"
                .to_vec(),
        ),
        ("other/evilbuild.py".to_string(), evil.into_bytes()),
    ];
    let mut files = entries_of("twotar", "1.0", None);
    files.extend(second.iter().cloned());
    write_tar(world.path(), "twotar", &files, &[]);
    let mut files = entries_of("twozip", "1.0", None);
    files.extend(second.iter().cloned());
    write_zip(&world.path().join("twozip-1.0.zip"), &files);

    for name in ["twotar", "twozip"] {
        let spec = format!("{name}==1.0");
        // pip strips a leading folder only when every entry shares it; with two it would build
        // from the archive's root. Neither reader guesses: both refuse, with the same words.
        let needle = format!(
            "entry `other/pyproject.toml` is outside the top folder `{name}-1.0`; an sdist holds all its files in one folder"
        );
        assert_refused(&resolve(&world, &spec), ExitCode::Input, &needle);
        assert_refused(&world.build(&[&spec]), ExitCode::Input, &needle);
    }
    sentinel.assert_untouched();
    assert!(world.wheels().is_empty());
}
