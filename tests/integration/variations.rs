//! The variations reprotest has and the first set lacked (home, exec-path, kernel, aslr,
//! user-group, a faked clock), each with a fixture whose backend leaks exactly that value:
//! `check` says "not reproducible" and names the variation, from the value it finds or by
//! rebuilding with one variation at a time.

use crate::common::{Run, World, block, package, run, skip};
use rewheel::exit::ExitCode;

fn check(world: &World, args: &[&str]) -> Run {
    run(world.command("check", args))
}

fn leak(world: &World, name: &str, expression: &str) {
    package(name, "1.0", &[], &[])
        .file(
            "hook.py",
            format!(
                "import os, platform, time\nopen('module.py', 'w').write(f'NAME = \"{name}\"\\nLEAK = {{{expression}!r}}\\n')"
            ),
        )
        .write(world.path());
}

#[test]
fn each_new_variation_is_caught_and_named() {
    let world = World::new();
    leak(&world, "homeleak", r#"os.environ["HOME"]"#);
    leak(&world, "pathleak", r#"os.environ["PATH"].split(":")[0]"#);
    leak(&world, "kernelleak", "platform.release()");
    leak(&world, "userleak", "(os.getuid(), os.getgid())");
    package("steady", "1.0", &[], &[]).write(world.path());
    let r = check(
        &world,
        &[
            "homeleak==1.0",
            "pathleak==1.0",
            "kernelleak==1.0",
            "userleak==1.0",
            "steady==1.0",
            "--vary",
            "home,exec-path,kernel,uid",
            "--find-culprit",
            "--source-date-epoch",
            "1700000000",
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
    assert!(block(out, "steady-1.0").contains("identical"), "{out}");
    let home = block(out, "homeleak-1.0");
    assert!(home.contains("contains the home folder"), "{home}");
    assert!(home.contains("(home)"), "{home}");
    let path = block(out, "pathleak-1.0");
    assert!(
        path.contains("contains the first PATH folder `/usr/local/bin` (exec-path)"),
        "{path}"
    );
    let kernel = block(out, "kernelleak-1.0");
    assert!(kernel.contains("contains the kernel release"), "{kernel}");
    assert!(kernel.contains("(kernel)"), "{kernel}");
    let user = block(out, "userleak-1.0");
    assert!(
        user.contains("varying only uid reproduces the difference"),
        "{user}"
    );
}

#[test]
fn a_faked_clock_ten_years_ahead_is_caught_and_source_date_epoch_stays() {
    if !std::path::Path::new(rewheel::build::job::LIBFAKETIME).is_file() {
        skip("variations: the faked clock (no libfaketime; apt-get install libfaketime)");
        return;
    }
    let world = World::new();
    leak(&world, "clockleak", "int(time.time())");
    leak(&world, "sdeonly", r#"os.environ["SOURCE_DATE_EPOCH"]"#);
    // A tool run with a timeout, as scikit-build-core runs `cmake -E capabilities`: with
    // libfaketime's FAKETIME_DONT_FAKE_MONOTONIC it failed with EINVAL, and pyzmq and pybind11
    // could not find CMake on the second side.
    leak(
        &world,
        "toolrun",
        r#"__import__("subprocess").run(["true"], timeout=10).returncode"#,
    );
    let r = check(
        &world,
        &[
            "clockleak==1.0",
            "sdeonly==1.0",
            "toolrun==1.0",
            "--vary",
            "time",
            "--source-date-epoch",
            "1700000000",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let clock = block(&r.stdout, "clockleak-1.0");
    assert!(clock.contains("a time during its build (time)"), "{clock}");
    // The second build's value is ten years on: the clock was moved, not merely waited for.
    let year = jiff::Timestamp::now()
        .strftime("%Y")
        .to_string()
        .parse::<i32>()
        .unwrap();
    let later = jiff::civil::date((year + 9) as i16, 6, 1)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    let values: Vec<i64> = clock
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .filter(|n: &i64| *n > 1_000_000_000)
        .collect();
    assert!(values.iter().any(|v| *v > later), "{clock}");
    // SOURCE_DATE_EPOCH is an input, not the clock: honest builds still agree.
    assert!(
        block(&r.stdout, "sdeonly-1.0").contains("identical"),
        "{}",
        r.stdout
    );
    assert!(
        block(&r.stdout, "toolrun-1.0").contains("identical"),
        "{}",
        r.stdout
    );
}

#[test]
fn address_randomization_off_is_caught_by_rebuilding_with_it_alone() {
    let world = World::new();
    // The personality says whether randomization is off (0x0040000): addresses themselves
    // differ between any two runs, so they could not show that the variation was applied.
    leak(
        &world,
        "addrleak",
        r#"open("/proc/self/personality").read().strip()"#,
    );
    let r = check(
        &world,
        &["addrleak==1.0", "--vary", "aslr", "--find-culprit"],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let addr = block(&r.stdout, "addrleak-1.0");
    assert!(
        addr.contains("varying only aslr reproduces the difference"),
        "{addr}"
    );
}

#[test]
fn file_order_reverses_what_an_unsorted_walk_of_the_sources_sees() {
    let world = World::new();
    leak(&world, "walker", r#"os.listdir(".")"#);
    let r = check(
        &world,
        &["walker==1.0", "--vary", "file-order", "--find-culprit"],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let walk = block(&r.stdout, "walker-1.0");
    assert!(
        walk.contains("varying only file-order reproduces the difference"),
        "{walk}"
    );
    // The same names, another order: the tree was copied whole.
    let control = check(&world, &["walker==1.0", "--vary", "hash-seed"]);
    assert_eq!(
        control.code,
        ExitCode::Success,
        "{}{}",
        control.stdout,
        control.stderr
    );
}
