//! The variations reprotest has and the first set lacked (home, exec-path, kernel, aslr,
//! user-group, a faked clock), and those Debian's rebuilders and Python builds add (the build
//! user, niceness, /bin/sh, LANGUAGE, the build environment's folder), each with a fixture
//! whose backend leaks exactly that value:
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

#[test]
fn the_build_user_is_a_real_user_of_each_sides_world_and_its_name_is_caught() {
    let world = World::new();
    // What setuptools' and many a build script's `getpass.getuser()` read, and the GECOS
    // field some record as the packager's name.
    leak(
        &world,
        "whoami",
        r#"(__import__("getpass").getuser(), __import__("pwd").getpwuid(os.getuid()).pw_gecos, __import__("pwd").getpwuid(os.getuid()).pw_shell)"#,
    );
    // Under another uid alone, the user is still the same one, and real: a verdict, not a
    // build failure ("getpwuid(): uid not found: 1001").
    let r = check(&world, &["whoami==1.0", "--vary", "uid"]);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    // With the hostname too: its default, `rewheel`, is in the user's names, which are
    // looked for first.
    let r = check(&world, &["whoami==1.0", "--vary", "uid,user,hostname"]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let row = block(&r.stdout, "whoami-1.0");
    assert!(
        row.contains("contains the build user's name `rewheel1` (user)"),
        "{row}"
    );
    // Each side's user is the job's own, never one of the host's.
    assert!(
        row.contains("('rewheel1', 'rewheel first build,,,', '/bin/sh')"),
        "{row}"
    );
    assert!(
        row.contains("('rewheel2', 'rewheel second build,room 2,+1 555 0100,,', '/bin/bash')"),
        "{row}"
    );
}

#[test]
fn niceness_is_caught_by_rebuilding_with_it_alone() {
    let world = World::new();
    leak(&world, "niceleak", "os.nice(0)");
    let r = check(
        &world,
        &[
            "niceleak==1.0",
            "--vary",
            "nice,hash-seed",
            "--find-culprit",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let row = block(&r.stdout, "niceleak-1.0");
    assert!(
        row.contains("-LEAK = 0") && row.contains("+LEAK = 10"),
        "{row}"
    );
    assert!(
        row.contains("varying only nice reproduces the difference"),
        "{row}"
    );
}

#[test]
fn bin_sh_as_the_other_of_dash_and_bash_is_caught() {
    if let Err(why) = rewheel::build::backend::other_shell() {
        skip(&format!("variations: bin-sh cannot vary here ({why})"));
        return;
    }
    let world = World::new();
    // `echo -e` is dash's and bash's classic disagreement: dash prints the `-e`.
    leak(
        &world,
        "shleak",
        r#"__import__("subprocess").run(["sh", "-c", "echo -e x"], capture_output=True).stdout"#,
    );
    let r = check(
        &world,
        &[
            "shleak==1.0",
            "--vary",
            "bin-sh,hash-seed",
            "--find-culprit",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let row = block(&r.stdout, "shleak-1.0");
    assert!(
        row.contains("varying only bin-sh reproduces the difference"),
        "{row}"
    );
}

#[test]
fn language_varies_with_the_locale_and_its_remedy_pins_both() {
    let world = World::new();
    leak(&world, "langleak", r#"os.environ.get("LANGUAGE")"#);
    let file = world.path().join("remedies.toml");
    let remedies = format!("--remedies={}", file.display());
    let r = check(&world, &["langleak==1.0", "--vary", "locale", &remedies]);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let row = block(&r.stdout, "langleak-1.0");
    assert!(
        row.contains("contains the locale `fr_CH:fr` (locale)"),
        "{row}"
    );
    assert!(
        row.contains("remedy verified: LC_ALL=C.UTF-8 LANGUAGE=C makes it reproducible"),
        "{row}"
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("LANGUAGE = \"C\""), "{written}");
}

/// A build dependency whose module is also a C header (a Python docstring to Python, code to
/// the preprocessor), as numpy's or pybind11's headers sit in the build environment.
fn header_dependency(world: &World) {
    crate::common::Sdist::new("incdep", "1.0")
        .pyproject(&[], "tinybuild", Some("."))
        .pkg_info("2.2", &[])
        .file("tinybuild.py", crate::common::TINYBUILD)
        .file("NAME", "incdep 1.0")
        .file("needs.txt", "")
        .file(
            "module.py",
            "#if 0\n\"\"\"\n#endif\nstatic int answer(void) { return 42; }\n#if 0\n\"\"\"\n#endif\n",
        )
        .write(world.path());
}

#[test]
fn the_build_environments_folder_is_told_apart_from_the_sources_and_mapped_by_the_remedy() {
    let world = World::new();
    header_dependency(&world);
    // Where a build dependency's files are, as an include path records it.
    package("envleak", "1.0", &["incdep"], &[])
        .file(
            "hook.py",
            "import incdep\nopen('module.py', 'a').write(f'HEADERS = {os.path.dirname(incdep.__file__)!r}\\n')",
        )
        .write(world.path());
    // Where a build dependency's console script is, as a build that records its tools' paths
    // leaks it: the scripts move with the environment.
    package("tooldep", "1.0", &[], &[])
        .file(
            "entry_points.txt",
            "[console_scripts]\ntooldep = tooldep:main\n",
        )
        .write(world.path());
    package("toolleak", "1.0", &["tooldep"], &[])
        .file(
            "hook.py",
            "import shutil\nopen('module.py', 'a').write(f'TOOL = {shutil.which(\"tooldep\")!r}\\n')",
        )
        .write(world.path());
    package("srcleak", "1.0", &[], &[])
        .file(
            "hook.py",
            "open('module.py', 'a').write(f'WHERE = {os.getcwd()!r}\\n')",
        )
        .write(world.path());
    // A C object with debug information: its sources' folder and the header's.
    package("envcext", "1.0", &["incdep"], &[])
        .file(
            "hook.py",
            r#"import subprocess, shlex, incdep
site = os.path.dirname(os.path.dirname(incdep.__file__))
open("ext.c", "w").write('#include "incdep/__init__.py"\nint use(void) { return answer(); }\n')
flags = shlex.split(os.environ.get("CFLAGS", ""))
subprocess.run(["gcc", "-g", "-O0", *flags, "-I", site, "-c", os.path.abspath("ext.c"), "-o", "ext.o"], check=True)
open("module.py", "a").write(f"OBJ = {open('ext.o', 'rb').read()!r}\n")
"#,
        )
        .write(world.path());
    // Both moved: each wheel names the folder it embeds.
    let r = check(
        &world,
        &[
            "envleak==1.0",
            "toolleak==1.0",
            "srcleak==1.0",
            "--vary",
            "build-path,build-env-path",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let env = block(&r.stdout, "envleak-1.0");
    assert!(
        env.contains("contains the build environment's folder") && env.contains("(build-env-path)"),
        "{env}"
    );
    let tool = block(&r.stdout, "toolleak-1.0");
    assert!(
        tool.contains("env-bin/tooldep") && tool.contains("(build-env-path)"),
        "{tool}"
    );
    let src = block(&r.stdout, "srcleak-1.0");
    assert!(src.contains("(build-path)"), "{src}");
    assert!(!src.contains("build-env-path"), "{src}");
    // The environment alone moved: the sources' leak stays identical.
    let r = check(
        &world,
        &[
            "envleak==1.0",
            "toolleak==1.0",
            "srcleak==1.0",
            "--vary",
            "build-env-path",
        ],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        block(&r.stdout, "srcleak-1.0").contains("identical"),
        "{}",
        r.stdout
    );
    for wheel in ["envleak-1.0", "toolleak-1.0"] {
        assert!(
            block(&r.stdout, wheel).contains("(build-env-path)"),
            "{wheel}: {}",
            r.stdout
        );
    }

    // The remedy maps the environment's folder as well as the sources'.
    let file = world.path().join("remedies.toml");
    let remedies = format!("--remedies={}", file.display());
    let r = check(
        &world,
        &["envcext==1.0", "--vary", "build-env-path", &remedies],
    );
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let row = block(&r.stdout, "envcext-1.0");
    assert!(row.contains("(build-env-path)"), "{row}");
    assert!(row.contains("remedy verified: -ffile-prefix-map"), "{row}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("-ffile-prefix-map={env_dir}=/rewheel/env"),
        "{written}"
    );
    let remedied = file.display().to_string();
    let again = check(
        &world,
        &[
            "envcext==1.0",
            "--vary",
            "build-env-path",
            "--settings",
            &remedied,
        ],
    );
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
    // The sources' map alone, the remedy before this variation existed, is not enough.
    let sources_only = world.path().join("sources-only.toml");
    std::fs::write(
        &sources_only,
        "[packages.envcext]\nenv = { CFLAGS = \"-ffile-prefix-map={source_dir}=.\" }\n",
    )
    .unwrap();
    let sources_only = sources_only.display().to_string();
    let not_enough = check(
        &world,
        &[
            "envcext==1.0",
            "--vary",
            "build-env-path",
            "--settings",
            &sources_only,
        ],
    );
    assert_eq!(
        not_enough.code,
        ExitCode::NotReproducible,
        "{}{}",
        not_enough.stdout,
        not_enough.stderr
    );
}

#[test]
fn without_bubblewrap_bin_sh_says_it_cannot_vary_and_user_varies_only_the_variables() {
    let world = World::new();
    leak(&world, "loginleak", r#"__import__("getpass").getuser()"#);
    let mut command = world.command(
        "check",
        &["loginleak==1.0", "--vary", "user,bin-sh,hash-seed"],
    );
    command.env("REWHEEL_NO_BWRAP", "1");
    let r = run(command);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains("note: bin-sh is not varied here"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("only USER and LOGNAME vary with user: /etc/passwd is the host's"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("varying hash-seed, user"), "{}", r.stderr);
    assert!(
        block(&r.stdout, "loginleak-1.0").contains("(user)"),
        "{}",
        r.stdout
    );
}
