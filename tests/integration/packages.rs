//! Per-package build settings (`[packages.NAME]` in `--settings FILE` or a matrix): env,
//! config settings, extra build requirements, patches and system packages reach the build, are
//! shown by `resolve`, and are inputs of the fingerprint.

use crate::common::{World, package, rewheel};
use std::io::Read;

/// The text of `<pkg>/__init__.py` in the one wheel of `world`'s wheelhouse named `pkg`.
fn module_text(world: &World, pkg: &str) -> String {
    let cell = std::fs::read_dir(world.path().join("wheelhouse"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let wheel = std::fs::read_dir(&cell)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(pkg))
        .expect("the wheel is there");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(&format!("{pkg}/__init__.py"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn settings(world: &World, text: &str) -> String {
    let path = world.path().join("settings.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const PATCH: &str =
    "--- a/module.py\n+++ b/module.py\n@@ -1 +1,2 @@\n NAME = \"app\"\n+PATCHED = VALUE\n";

fn app(world: &World) {
    // The hook records what the build saw: an env variable and the config settings.
    package("app", "1.0", &[], &[])
        .file(
            "hook.py",
            "open('module.py', 'a').write(f'ENV = {os.environ.get(\"APP_FLAVOUR\")!r}\\nCONFIG = {config_settings!r}\\n')",
        )
        .write(world.path());
}

#[test]
fn env_config_settings_and_patches_reach_the_build_and_resolve_shows_them() {
    let world = World::new();
    app(&world);
    std::fs::write(world.path().join("one.patch"), PATCH.replace("VALUE", "1")).unwrap();
    let file = settings(
        &world,
        "[packages.app]\nenv = { APP_FLAVOUR = \"mild\" }\n\
         config-settings = { mode = \"fast\", opts = [\"-a\", \"-b\"] }\npatches = [\"one.patch\"]\n",
    );
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = module_text(&world, "app");
    assert!(text.contains("PATCHED = 1"), "{text}");
    assert!(text.contains("ENV = 'mild'"), "{text}");
    assert!(
        text.contains("CONFIG = {'mode': 'fast', 'opts': ['-a', '-b']}"),
        "{text}"
    );

    let (_, version) = crate::common::host_python();
    let shown = rewheel(
        world.path(),
        &[
            "resolve",
            "app==1.0",
            "--python",
            &version,
            "--settings",
            &file,
        ],
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("app 1.0  (env: APP_FLAVOUR; config-settings: 2; patches: one.patch)"),
        "{}",
        shown.stdout
    );
    let json = rewheel(
        world.path(),
        &[
            "resolve",
            "app==1.0",
            "--python",
            &version,
            "--settings",
            &file,
            "--format",
            "json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let node = &doc["cells"][0]["nodes"][0];
    assert_eq!(node["settings"]["env"]["APP_FLAVOUR"], "mild");
    assert_eq!(node["settings"]["patches"][0]["name"], "one.patch");
    assert_eq!(
        node["settings"]["patches"][0]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn a_changed_patch_is_a_new_job_and_the_same_patch_is_reused() {
    let world = World::new();
    app(&world);
    let patch = world.path().join("one.patch");
    let file = settings(&world, "[packages.app]\npatches = [\"one.patch\"]\n");
    std::fs::write(&patch, PATCH.replace("VALUE", "1")).unwrap();
    let first = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let again = world.build(&["app==1.0", "--settings", &file]);
    assert!(again.stdout.contains("(1 reused)"), "{}", again.stdout);

    std::fs::write(&patch, PATCH.replace("VALUE", "2")).unwrap();
    let changed = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(changed.code, 0, "{}{}", changed.stdout, changed.stderr);
    assert!(!changed.stdout.contains("reused"), "{}", changed.stdout);
    assert!(module_text(&world, "app").contains("PATCHED = 2"));

    // Without the settings the job is the plain one again: another fingerprint still.
    let plain = world.build(&["app==1.0"]);
    assert!(!plain.stdout.contains("reused"), "{}", plain.stdout);
    assert!(!module_text(&world, "app").contains("PATCHED"));
}

#[test]
fn build_requires_add_to_the_build_environment() {
    let world = World::new();
    package("helper", "1.0", &[], &[]).write(world.path());
    // `needy` imports helper while building but does not declare it.
    package("needy", "1.0", &[], &[])
        .file("needs.txt", "helper")
        .write(world.path());
    let without = world.build(&["needy==1.0"]);
    assert_eq!(without.code, 3, "{}{}", without.stdout, without.stderr);
    let file = settings(&world, "[packages.needy]\nbuild-requires = [\"helper\"]\n");
    let with = world.build(&["needy==1.0", "--settings", &file]);
    assert_eq!(with.code, 0, "{}{}", with.stdout, with.stderr);
}

#[test]
fn settings_errors_name_the_file_line_and_what_to_do() {
    let world = World::new();
    app(&world);
    let file = settings(&world, "[packages.app]\nsytem = [\"libffi-dev\"]\n");
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("settings.toml"), "{}", out.stderr);
    assert!(out.stderr.contains("line 2, column 1"), "{}", out.stderr);

    // A system package the host lacks stops the local backend before any job, with the fix.
    let file = settings(
        &world,
        "[packages.app]\nsystem = [\"rewheel-no-such-package\"]\n",
    );
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("system packages this host lacks: rewheel-no-such-package"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: apt-get install"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_patch_cannot_write_outside_the_source_tree() {
    let world = World::new();
    app(&world);
    let sentinel = tempfile::tempdir().unwrap();
    let victim = sentinel.path().join("victim");
    std::fs::write(&victim, "NAME = \"app\"\n").unwrap();
    // Enough `..` to reach `/` from any job folder, then the victim's absolute path.
    let escape = format!(
        "{}{}",
        "../".repeat(40),
        victim.display().to_string().trim_start_matches('/')
    );
    let hostile = PATCH
        .replace("a/module.py", &format!("a/{escape}"))
        .replace("b/module.py", &format!("b/{escape}"));
    std::fs::write(world.path().join("evil.patch"), hostile).unwrap();
    let file = settings(&world, "[packages.app]\npatches = [\"evil.patch\"]\n");
    let out = world.build(&["app==1.0", "--settings", &file]);
    assert_eq!(out.code, 2, "an input error: {}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("patch evil.patch") && all.contains("is not a path inside the source tree"),
        "{all}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "NAME = \"app\"\n",
        "the file outside the job is untouched"
    );
}
