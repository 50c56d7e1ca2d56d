//! Verified remedies: for each attributed cause with a standard fix (a fixed umask,
//! -ffile-prefix-map for the build path, SOURCE_DATE_EPOCH for the clock), `check --remedies`
//! builds both sides again with it, says whether it worked, and writes the verified ones as
//! per-package settings; a check with those settings is then reproducible.

use crate::common::{World, block, package, run};
use rewheel::exit::ExitCode;

fn fixtures(world: &World) {
    // setuptools-style: stores the on-disk mode of its sources, which the umask sets.
    // Like setuptools' copies into build/, the hook writes the file anew: its mode is
    // 0666 less the umask.
    package("modeleak", "1.0", &[], &[])
        .file("modes.txt", "")
        .file(
            "hook.py",
            "os.remove('module.py')\nopen('module.py', 'w').write('NAME = \"modeleak\"\\n')",
        )
        .write(world.path());
    // A C object with debug information records where it was compiled; the hook keeps it.
    package("cext", "1.0", &[], &[])
        .file("ext.c", "int answer(void) { return 42; }\n")
        .file(
            "hook.py",
            "import subprocess, shlex\n\
             flags = shlex.split(os.environ.get('CFLAGS', ''))\n\
             subprocess.run(['gcc', '-g', '-O0', *flags, '-c', os.path.abspath('ext.c'), '-o', 'ext.o'], check=True)\n\
             open('module.py', 'a').write(f'OBJ = {open(\"ext.o\", \"rb\").read().hex()!r}\\n')",
        )
        .write(world.path());
    // Embeds the clock unless SOURCE_DATE_EPOCH says what time it is.
    package("clockleak", "1.0", &[], &[])
        .file(
            "hook.py",
            "import time\nopen('module.py', 'a').write(f'WHEN = {os.environ.get(\"SOURCE_DATE_EPOCH\") or int(time.time())!r}\\n')",
        )
        .write(world.path());
    // Embeds the hostname: nothing a setting can hide.
    package("hostleak", "1.0", &[], &[])
        .file(
            "hook.py",
            "import socket\nopen('module.py', 'a').write(f'HOST = {socket.gethostname()!r}\\n')",
        )
        .write(world.path());
}

#[test]
fn remedies_are_verified_written_and_make_the_next_check_reproducible() {
    let world = World::new();
    fixtures(&world);
    let file = world.path().join("remedies.toml");
    let specs = [
        "modeleak==1.0",
        "cext==1.0",
        "clockleak==1.0",
        "hostleak==1.0",
    ];
    let mut args: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
    // The object is kept as hex, which no value search reads: the culprit search names it.
    args.extend([
        "--vary".into(),
        "umask,build-path,time,hostname".into(),
        "--find-culprit".into(),
    ]);
    args.push(format!("--remedies={}", file.display()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(world.command("check", &argv));
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    let out = &r.stdout;
    let row = |w: &str| block(out, w);
    assert!(
        row("modeleak-1.0").contains("remedy verified: a fixed umask 022 makes it reproducible"),
        "{}",
        row("modeleak-1.0")
    );
    assert!(
        row("cext-1.0").contains("remedy verified: -ffile-prefix-map"),
        "{}",
        row("cext-1.0")
    );
    assert!(
        row("clockleak-1.0").contains("remedy verified: SOURCE_DATE_EPOCH=315532800"),
        "{}",
        row("clockleak-1.0")
    );
    assert!(
        row("hostleak-1.0").contains("no known remedy: report it upstream"),
        "{}",
        row("hostleak-1.0")
    );

    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("[packages.modeleak]\numask = \"022\""),
        "{written}"
    );
    assert!(written.contains("[packages.cext]"), "{written}");
    assert!(!written.contains("hostleak"), "{written}");

    // The next check with the written settings: the three remedied wheels are identical.
    let file = file.display().to_string();
    let again = run(world.command(
        "check",
        &[
            "modeleak==1.0",
            "cext==1.0",
            "clockleak==1.0",
            "--vary",
            "umask,build-path,time,hostname",
            "--settings",
            &file,
        ],
    ));
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
}

/// A fleet-wide policy (`[defaults]`) reaches packages no table names: the same remedies,
/// written once for every build.
#[test]
fn a_defaults_policy_remedies_packages_no_table_names() {
    let world = World::new();
    fixtures(&world);
    let policy = world.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[defaults]\numask = \"022\"\nenv = { CFLAGS = \"-ffile-prefix-map={source_dir}=.\" }\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let check = |extra: &[&str]| {
        let mut args = vec!["modeleak==1.0", "cext==1.0", "--vary", "umask,build-path"];
        args.extend(extra);
        run(world.command("check", &args))
    };
    let without = check(&[]);
    assert_eq!(
        without.code,
        ExitCode::NotReproducible,
        "{}{}",
        without.stdout,
        without.stderr
    );
    let with = check(&["--settings", &policy]);
    assert_eq!(
        with.code,
        ExitCode::Success,
        "{}{}",
        with.stdout,
        with.stderr
    );
    // The graph says where each package's settings came from.
    let python = crate::common::host_python().1;
    let graph = crate::common::rewheel(
        world.path(),
        &[
            "resolve",
            "modeleak==1.0",
            "--python",
            &python,
            "--settings",
            &policy,
        ],
    );
    assert!(
        graph.stdout.contains("umask: 022"),
        "{}{}",
        graph.stdout,
        graph.stderr
    );
}

#[test]
fn a_difference_nothing_names_gets_every_standard_remedy_together() {
    let world = World::new();
    // The order of a set of strings follows the hash seed; the wheel holds no seed value, so
    // attribution names nothing (as Cython's generated code, reordered by the seed).
    package("seedleak", "1.0", &[], &[])
        .file(
            "hook.py",
            "words = {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'}\n\
             open('module.py', 'a').write(f'ORDER = {\",\".join(words)!r}\\n')",
        )
        .write(world.path());
    let file = world.path().join("remedies.toml");
    let remedies = format!("--remedies={}", file.display());
    let r = run(world.command(
        "check",
        &["seedleak==1.0", "--vary", "hash-seed,umask", &remedies],
    ));
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains("verifying every standard remedy: "),
        "{}",
        r.stderr
    );
    let row = block(&r.stdout, "seedleak-1.0");
    assert!(row.contains("remedy verified"), "{row}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("PYTHONHASHSEED = \"0\""), "{written}");
    let file = file.display().to_string();
    let again = run(world.command(
        "check",
        &[
            "seedleak==1.0",
            "--vary",
            "hash-seed,umask",
            "--settings",
            &file,
        ],
    ));
    assert_eq!(
        again.code,
        ExitCode::Success,
        "{}{}",
        again.stdout,
        again.stderr
    );
}
