//! The real 2022 case against PyPI. These need the network: each checks that the index answers
//! first and, when it does not, prints why it skips.

use crate::fixtures::{Run, run};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const INDEX_HOST: &str = "pypi.org:443";

fn index_unreachable() -> Option<String> {
    let addrs = match INDEX_HOST.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(err) => return Some(format!("cannot resolve {INDEX_HOST}: {err}")),
    };
    for addr in &addrs {
        if TcpStream::connect_timeout(addr, Duration::from_secs(5)).is_ok() {
            return None;
        }
    }
    Some(format!("cannot connect to {INDEX_HOST}"))
}

macro_rules! require_index {
    () => {
        if let Some(reason) = index_unreachable() {
            eprintln!("SKIPPED: the package index is unreachable ({reason})");
            println!("SKIPPED: the package index is unreachable ({reason})");
            return;
        }
    };
}

/// Shared cache between the PyPI tests: the sdists are the same.
fn resolve(python: &str, extra: &[&str]) -> Run {
    let cache = std::env::temp_dir().join("rewheel-test-pypi-cache");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
    command
        .args(["resolve", "python-dateutil==2.8.2", "--python", python])
        .args(["--exclude-newer", "2022-07-15T00:00:00Z", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env_remove("PIP_INDEX_URL");
    run(command)
}

#[test]
fn dateutil_on_python_37_in_july_2022_has_the_scm_cycle() {
    require_index!();
    let r = resolve("3.7", &["--format", "json"]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let cycle = doc["cells"][0]["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "error")
        .expect("an error cycle");
    let members: Vec<&str> = cycle["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(members.contains(&"setuptools-scm==7.0.5"), "{members:?}");
    assert!(
        members.contains(&"importlib-metadata==4.12.0"),
        "{members:?}"
    );
    let closing = cycle["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["from"] == "setuptools-scm==7.0.5" && s["to"] == "importlib-metadata==4.12.0")
        .expect("the edge that closes the cycle");
    assert_eq!(closing["kind"], "install");
    assert_eq!(closing["marker"], "python_version < \"3.8\"");
    let chain = cycle["chain"].as_str().unwrap();
    assert!(
        chain.starts_with("python-dateutil 2.8.2 —build-system (setuptools_scm"),
        "{chain}"
    );
}

#[test]
fn dateutil_on_python_39_in_july_2022_resolves() {
    require_index!();
    let r = resolve("3.9", &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let line = |name: &str| {
        r.stdout
            .lines()
            .position(|l| l.contains(&format!("] {name} ")))
            .unwrap()
    };
    assert!(
        line("setuptools-scm") < line("python-dateutil"),
        "{}",
        r.stdout
    );
}
