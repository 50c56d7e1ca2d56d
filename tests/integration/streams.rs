//! Bytes from outside, where rewheel uses them (issue 24, items 4 and 5): an sdist replaced in
//! its find-links folder while the run goes on is not what gets built, and a hostile index on
//! 127.0.0.1 (an endless page, a gzip bomb, an endless download) meets a cap and a clear error
//! while rewheel's memory stays small.

use crate::common::{Run, Sdist, TINYBUILD, World, package, run};
use rewheel::exit::ExitCode;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `second 1.0`, built with `first`; `module` is its `module.py`.
fn second(module: &str) -> Sdist<'static> {
    Sdist::new("second", "1.0")
        .pyproject(&["first"], "tinybuild", Some("."))
        .pkg_info("2.2", &[])
        .file("tinybuild.py", TINYBUILD)
        .file("NAME", "second 1.0")
        .file("needs.txt", "first")
        .file("module.py", module.to_string())
}

fn job_folder(world: &World, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(world.path().join(".build"))
        .ok()?
        .flatten()
        .map(|cell| cell.path().join(name))
        .find(|p| p.is_dir())
}

fn wheel_module(world: &World, wheel: &str, entry: &str) -> String {
    let cells = std::fs::read_dir(world.path().join("wheelhouse")).unwrap();
    let path = cells
        .flatten()
        .map(|c| c.path().join(wheel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no {wheel} in the wheelhouse"));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(entry)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn an_sdist_replaced_in_its_find_links_folder_during_the_run_is_not_what_gets_built() {
    let world = World::new();
    // `first` builds slowly, so `second` (built with it) is unpacked seconds after planning.
    package("first", "1.0", &[], &[])
        .file("hook.py", "import time\ntime.sleep(4)\n")
        .write(world.path());
    second("NAME = 'A'\n").write(world.path());
    let mut command = world.command("build", &["first==1.0", "second==1.0"]);
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while job_folder(&world, "first-1.0").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "first never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Replace A by B in one rename, as anyone who can write the folder could.
    let elsewhere = tempfile::tempdir().unwrap();
    let b = second("NAME = 'B'\n").write(elsewhere.path());
    std::fs::rename(&b, world.path().join("second-1.0.tar.gz")).unwrap();
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // What resolution hashed (A) is what is built, and what the store and the wheel carry.
    assert_eq!(
        r.code,
        ExitCode::Success,
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    let module = wheel_module(&world, "second-1.0-py3-none-any.whl", "second/__init__.py");
    assert_eq!(module, "NAME = 'A'\n", "B was built under A's hash");
}

/// What a route of the hostile index answers: headers, then a body of `chunk` repeated.
struct Answer {
    headers: String,
    chunk: Vec<u8>,
    times: usize,
}

impl Answer {
    fn new(content_type: &str, extra: &str, chunk: Vec<u8>, times: usize) -> Self {
        Self {
            headers: format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{extra}Connection: close\r\n\r\n"
            ),
            chunk,
            times,
        }
    }
}

/// A tiny HTTP server on 127.0.0.1 answering every request with what `route` says for its
/// path; the body has no length, so the client reads until the server stops.
fn hostile_index(route: fn(&str) -> Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, route));
        }
    });
    port
}

fn serve(mut stream: TcpStream, route: fn(&str) -> Answer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let answer = route(&path);
    if stream.write_all(answer.headers.as_bytes()).is_err() {
        return;
    }
    for _ in 0..answer.times {
        // The client hanging up ends the answer.
        if stream.write_all(&answer.chunk).is_err() {
            return;
        }
    }
}

/// `rewheel resolve SPEC` against the hostile index, and the peak resident memory of rewheel
/// in MiB.
fn resolve_from(port: u16, spec: &str, extra: &[&str]) -> (Run, i64) {
    let cache = tempfile::tempdir().unwrap();
    let (_, version) = crate::common::host_python();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["resolve", spec, "--python", &version, "--retries", "1"])
        .arg("--index-url")
        .arg(format!("http://127.0.0.1:{port}/simple"))
        .arg("--cache-dir")
        .arg(cache.path())
        .args(extra)
        .env_remove("PIP_INDEX_URL")
        .env_remove("RUST_LOG");
    let r = run(command);
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    (r, usage.ru_maxrss / 1024)
}

fn assert_refused(r: &Run, code: ExitCode, needles: &[&str]) {
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    for needle in needles {
        assert!(all.contains(needle), "expected `{needle}` in:\n{all}");
    }
}

/// 1 MiB of zeros as one gzip member: about a kilobyte.
fn gzip_mib() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_huge_index_page_is_refused_past_the_cap_with_memory_bounded() {
    let port = hostile_index(|_| Answer::new("text/html", "", vec![b' '; 1 << 16], 300 * 16));
    let (r, peak) = resolve_from(port, "huge==1.0", &[]);
    assert_refused(
        &r,
        ExitCode::Input,
        &[
            &format!("http://127.0.0.1:{port}/simple/huge/"),
            "larger than 67108864 bytes",
            "--max-page-size",
        ],
    );
    assert!(peak < 100, "rewheel peaked at {peak} MiB");
    // The flag moves the cap.
    let (r, _) = resolve_from(port, "huge==1.0", &["--max-page-size", "1000"]);
    assert_refused(&r, ExitCode::Input, &["larger than 1000 bytes"]);
}

#[test]
fn a_gzip_bomb_of_a_page_is_a_clear_error_not_an_unknown_package() {
    // 300 members of 1 MiB each: 300 KiB on the wire, 300 MiB decoded.
    let port =
        hostile_index(|_| Answer::new("text/html", "Content-Encoding: gzip\r\n", gzip_mib(), 300));
    let (r, peak) = resolve_from(port, "bomb==1.0", &[]);
    assert_refused(
        &r,
        ExitCode::Input,
        &[
            &format!("http://127.0.0.1:{port}/simple/bomb/"),
            "larger than 67108864 bytes after decompression",
        ],
    );
    assert!(!r.stderr.contains("`bomb` is not on"), "{}", r.stderr);
    assert!(peak < 100, "rewheel peaked at {peak} MiB");
}

#[test]
fn a_page_in_an_encoding_rewheel_does_not_decode_is_named() {
    let port = hostile_index(|_| {
        Answer::new(
            "text/html",
            "Content-Encoding: br\r\n",
            b"\x1b\x00".to_vec(),
            1,
        )
    });
    let (r, _) = resolve_from(port, "brotli==1.0", &[]);
    assert_refused(
        &r,
        ExitCode::Input,
        &[
            &format!("http://127.0.0.1:{port}/simple/brotli/"),
            "Content-Encoding `br`",
        ],
    );
}

/// A page listing `big-1.0.tar.gz` (with the size 1000 on the JSON page), whose download is
/// 300 MiB.
fn big_download(path: &str) -> Answer {
    match path {
        "/simple/big/" => Answer::new(
            "application/vnd.pypi.simple.v1+json",
            "",
            br#"{"meta": {"api-version": "1.1"}, "name": "big", "files": [{"filename": "big-1.0.tar.gz", "url": "/files/big-1.0.tar.gz", "hashes": {}, "size": 1000}]}"#.to_vec(),
            1,
        ),
        "/simple/large/" => Answer::new(
            "text/html",
            "",
            br#"<a href="/files/large-1.0.tar.gz">large-1.0.tar.gz</a>"#.to_vec(),
            1,
        ),
        _ => Answer::new("application/octet-stream", "", vec![7u8; 1 << 16], 300 * 16),
    }
}

#[test]
fn an_sdist_download_is_capped_by_its_listed_size_or_the_sdist_cap_and_streamed() {
    let port = hostile_index(big_download);
    let (r, peak) = resolve_from(port, "big==1.0", &[]);
    assert_refused(
        &r,
        ExitCode::Input,
        &[
            &format!("http://127.0.0.1:{port}/files/big-1.0.tar.gz"),
            "larger than 1000 bytes",
        ],
    );
    assert!(peak < 100, "rewheel peaked at {peak} MiB");
    let (r, peak) = resolve_from(port, "large==1.0", &["--max-sdist-size", "200000000"]);
    assert_refused(
        &r,
        ExitCode::Input,
        &[
            &format!("http://127.0.0.1:{port}/files/large-1.0.tar.gz"),
            "larger than 200000000 bytes",
            "--max-sdist-size",
        ],
    );
    assert!(peak < 100, "rewheel peaked at {peak} MiB");
}
