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

/// The commands of a text report's `next:` section, in order.
fn next_commands(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("next: "))
        .filter_map(|l| l.strip_prefix("     rewheel "))
        .map(|rest| format!("rewheel {rest}"))
        .collect()
}

/// A suggested command line run as a user pastes it: by a shell, in the folder the check ran
/// in, with `rewheel` on PATH.
fn paste(world: &World, line: &str) -> crate::common::Run {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rewheel"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", line])
        .current_dir(world.path())
        .env("PATH", path)
        .env_remove("PIP_INDEX_URL");
    run(command)
}

/// The quickstart's path to green (issue 26 §2): a check whose wheel differs by umask names
/// the remedy and the command to run next, in text, JSON and HTML; that command verifies and
/// writes the remedy, and the check it then suggests ends with exit 0.
#[test]
fn a_check_that_differs_says_what_to_run_next_and_following_it_ends_green() {
    let world = World::new();
    fixtures(&world);
    let check = |extra: &[&str]| {
        let mut args = vec!["modeleak==1.0", "--vary", "umask"];
        args.extend(extra);
        let mut command = world.command("check", &args);
        command.current_dir(world.path());
        run(command)
    };
    let first = check(&["--html", "report.html"]);
    assert_eq!(
        first.code,
        ExitCode::NotReproducible,
        "{}{}",
        first.stdout,
        first.stderr
    );
    let row = block(&first.stdout, "modeleak-1.0");
    assert!(
        row.contains("known remedy, not tried: run with --remedies to verify a fixed umask 022"),
        "{row}"
    );
    assert!(
        first
            .stdout
            .contains("next: 1 differing wheel has a known remedy, not tried (a fixed umask 022)"),
        "{}",
        first.stdout
    );
    let suggested = next_commands(&first.stdout);
    assert_eq!(suggested.len(), 2, "{}", first.stdout);
    assert!(
        suggested[0].ends_with(" --remedies=rewheel-remedies.toml"),
        "{suggested:?}"
    );
    assert!(
        suggested[1].ends_with(" --settings rewheel-remedies.toml"),
        "{suggested:?}"
    );
    // The HTML page says the same, and no remedy cell is left empty.
    let page = std::fs::read_to_string(world.path().join("report.html")).unwrap();
    assert!(page.contains("<section id=\"next\">"), "{page}");
    assert!(page.contains("known remedy, not tried"), "{page}");
    assert!(!page.contains("<td></td>"), "{page}");

    // The JSON report carries the same step.
    let json = check(&["--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["pairs"][0]["remedy_hint"]["status"], "not-tried");
    assert_eq!(doc["pairs"][0]["remedy_hint"]["causes"][0], "umask");
    let commands = doc["next"]["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 2, "{}", json.stdout);
    let verify = commands[0]["command"].as_str().unwrap();
    assert!(
        verify.contains(" --format json ") && verify.ends_with(" --remedies=rewheel-remedies.toml"),
        "{verify}"
    );

    // Step 1, as pasted: the remedy is verified, written, and the next command is the check
    // with it (the same line as suggested before).
    let remedies = paste(&world, &suggested[0]);
    assert_eq!(
        remedies.code,
        ExitCode::NotReproducible,
        "{}{}",
        remedies.stdout,
        remedies.stderr
    );
    assert!(
        block(&remedies.stdout, "modeleak-1.0")
            .contains("remedy verified: a fixed umask 022 makes it reproducible"),
        "{}",
        remedies.stdout
    );
    let written = std::fs::read_to_string(world.path().join("rewheel-remedies.toml")).unwrap();
    assert!(written.contains("[packages.modeleak]"), "{written}");
    assert_eq!(
        next_commands(&remedies.stdout),
        [suggested[1].clone()],
        "{}",
        remedies.stdout
    );

    // Step 2, as pasted: green, and nothing more to do.
    let green = paste(&world, &suggested[1]);
    assert_eq!(
        green.code,
        ExitCode::Success,
        "{}{}",
        green.stdout,
        green.stderr
    );
    assert!(!green.stdout.contains("next:"), "{}", green.stdout);
}
