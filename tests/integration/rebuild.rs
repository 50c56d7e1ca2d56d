//! `rewheel rebuild`: a wheel built by a known recipe (a pinned backend version,
//! SOURCE_DATE_EPOCH, a umask) is handed over without the recipe; rebuild infers it from the
//! wheel, reproduces the wheel bit for bit, and writes a recipe `build` takes.

use crate::common::{Sdist, World, run};
use rewheel::exit::ExitCode;

/// A backend that stores what `wheel` stores: SOURCE_DATE_EPOCH (else file times) as entry
/// times, on-disk modes of the copies it makes, its own version as `Generator:`; version 2.0
/// writes its entries in another order, so only the right pin gives the same bytes.
fn backend(version: &str) -> String {
    format!(
        r#"
import base64, hashlib, os, time, zipfile
VERSION = "{version}"

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = open("NAME").read().split()
    dist = name.replace("-", "_")
    info = f"{{dist}}-{{version}}.dist-info"
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    entries = []
    for path in open("PACK").read().split():
        copy = os.path.join("build", path)
        os.makedirs(os.path.dirname(copy), exist_ok=True)
        with open(copy, "wb") as f:
            f.write(open(path, "rb").read())
        st = os.stat(copy)
        entries.append((path, open(copy, "rb").read(), st.st_mode & 0o777, int(sde) if sde else int(st.st_mtime)))
    wheel = f"Wheel-Version: 1.0\nGenerator: tinywheel ({{VERSION}})\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    now = int(sde) if sde else int(time.time())
    entries.append((f"{{info}}/METADATA", open("PKG-INFO", "rb").read(), 0o644, now))
    entries.append((f"{{info}}/WHEEL", wheel.encode(), 0o644, now))
    if VERSION != "1.0":
        entries.reverse()
    record = []
    for path, data, _, _ in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{info}}/RECORD,,")
    entries.append((f"{{info}}/RECORD", ("\n".join(record) + "\n").encode(), 0o644, now))
    filename = f"{{dist}}-{{version}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data, mode, t in entries:
            entry = zipfile.ZipInfo(path, date_time=time.gmtime(max(t, 315532800))[:6])
            entry.external_attr = mode << 16
            z.writestr(entry, data)
    return filename
"#
    )
}

/// The one cell folder a build wrote its wheels in.
fn only_cell(out: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn world() -> World {
    let world = World::new();
    for version in ["1.0", "2.0"] {
        Sdist::new("tinywheel", version)
            .pyproject(&[], "tinywheel", Some("."))
            .pkg_info("2.2", &[])
            .file("tinywheel.py", backend(version))
            .file("NAME", format!("tinywheel {version}"))
            .file("PACK", "tinywheel.py")
            .write(world.path());
    }
    Sdist::new("app", "1.0")
        .pyproject(&["tinywheel"], "tinywheel", None)
        .pkg_info("2.2", &[])
        .file("NAME", "app 1.0")
        .file("PACK", "app/__init__.py")
        .file("app/__init__.py", "NAME = 'app'\n")
        .write(world.path());
    world
}

/// Build `app` with a recipe and keep the wheel as "published".
fn publish(world: &World, umask: &str) -> std::path::PathBuf {
    let pins = world.path().join("known-recipe.txt");
    std::fs::write(&pins, "tinywheel==1.0\n").unwrap();
    let out = world.path().join("published-build");
    let r = run(world.command_out(
        "build",
        &[
            "app==1.0",
            "--build-constraints",
            pins.to_str().unwrap(),
            "--source-date-epoch",
            "1600000000",
            "--umask",
            umask,
        ],
        &out,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let dir = world.path().join("published");
    std::fs::create_dir_all(&dir).unwrap();
    let wheel = dir.join("app-1.0-py3-none-any.whl");
    let cell = only_cell(&out);
    std::fs::copy(cell.join("app-1.0-py3-none-any.whl"), &wheel).unwrap();
    wheel
}

#[test]
fn a_wheel_of_a_known_recipe_is_rebuilt_bit_for_bit_without_it() {
    let world = world();
    let published = publish(&world, "022");
    let recipe = world.path().join("recipe/app.toml");
    let r = run(world.command(
        "rebuild",
        &[
            published.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "reproduced app-1.0-py3-none-any.whl bit for bit with recipe: tinywheel==1.0, SOURCE_DATE_EPOCH=1600000000, umask 022"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("inferred: WHEEL says `Generator: tinywheel (1.0)` → tinywheel==1.0"),
        "{}",
        r.stdout
    );

    // The recipe file builds the same bytes again.
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(
        text.contains("build-constraints = [\"app-constraints.txt\"]"),
        "{text}"
    );
    let again = world.path().join("again");
    let r = run(world.command_out(
        "build",
        &["--matrix", recipe.to_str().unwrap(), "--rebuild"],
        &again,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&again);
    assert_eq!(
        std::fs::read(cell.join("app-1.0-py3-none-any.whl")).unwrap(),
        std::fs::read(&published).unwrap(),
        "the recipe rebuilds the published bytes"
    );
}

#[test]
fn a_group_writable_wheel_is_rebuilt_with_umask_002_and_a_miss_shows_its_diff() {
    let world = world();
    let published = publish(&world, "002");
    let r = run(world.command("rebuild", &[published.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("umask 002"), "{}", r.stdout);

    // A wheel no recipe of the bounded search reaches: its closest attempt and why.
    let bytes = std::fs::read(&published).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let odd = world.path().join("odd/app-1.0-py3-none-any.whl");
    std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&odd).unwrap());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "app/__init__.py" {
            data = b"NAME = 'app'  # patched by someone\n".to_vec();
        }
        let options = zip::write::SimpleFileOptions::default()
            .last_modified_time(entry.last_modified().unwrap())
            .unix_permissions(0o664);
        writer.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut writer, &data).unwrap();
    }
    writer.finish().unwrap();
    let r = run(world.command("rebuild", &[odd.to_str().unwrap(), "--attempts", "2"]));
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("not reproduced in 2 attempts"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("+NAME = 'app'"), "{}", r.stdout);
}

#[test]
fn a_requirements_file_names_the_wheels_to_rebuild_by_hash() {
    let world = world();
    let published = publish(&world, "022");
    // The published wheel sits on the index (here the find-links folder), named by its hash.
    let on_index = world.path().join("app-1.0-py3-none-any.whl");
    std::fs::copy(&published, &on_index).unwrap();
    let sha = rewheel::fsutil::sha256_file(&on_index).unwrap();
    let reqs = world.path().join("signed.txt");
    std::fs::write(&reqs, format!("app==1.0 --hash=sha256:{sha}\n")).unwrap();
    let r = run(world.command("rebuild", &[reqs.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("reproduced app-1.0-py3-none-any.whl bit for bit"),
        "{}",
        r.stdout
    );
}

/// A backend that builds as setuptools' bdist_wheel does without SOURCE_DATE_EPOCH: sources
/// copied into `build/lib` keeping their times, dist-info files written there, and every
/// entry stamped with its file's modification time (RECORD with the clock's).
const STAMPING_BACKEND: &str = r#"
import base64, hashlib, os, shutil, time, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = open("NAME").read().split()
    info = f"{name}-{version}.dist-info"
    lib = os.path.join("build", "lib")
    for path in open("PACK").read().split():
        os.makedirs(os.path.join(lib, os.path.dirname(path)), exist_ok=True)
        shutil.copy2(path, os.path.join(lib, path))
    os.makedirs(os.path.join(lib, info), exist_ok=True)
    shutil.copyfile("PKG-INFO", os.path.join(lib, info, "METADATA"))
    with open(os.path.join(lib, info, "WHEEL"), "w") as f:
        f.write("Wheel-Version: 1.0\nGenerator: stamper (1.0)\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = lambda t: time.gmtime(max(int(sde) if sde else int(t), 315532800))[:6]
    filename = f"{name}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for folder, dirs, files in os.walk(lib):
            dirs.sort()
            for file in sorted(files):
                full = os.path.join(folder, file)
                arc = os.path.relpath(full, lib)
                data = open(full, "rb").read()
                entry = zipfile.ZipInfo(arc, date_time=stamp(os.stat(full).st_mtime))
                entry.external_attr = 0o644 << 16
                z.writestr(entry, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record.append(f"{arc},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        entry = zipfile.ZipInfo(f"{info}/RECORD", date_time=stamp(time.time()))
        entry.external_attr = 0o644 << 16
        z.writestr(entry, "\n".join(record) + "\n")
    return filename
"#;

#[test]
fn a_wheel_stamped_with_its_files_build_times_is_rebuilt_bit_for_bit_without_source_date_epoch() {
    if !std::path::Path::new(rewheel::build::job::LIBFAKETIME).is_file() {
        return crate::common::skip("no libfaketime on this host");
    }
    let world = World::new();
    Sdist::new("stamper", "1.0")
        .pyproject(&[], "stamper", Some("."))
        .pkg_info("2.2", &[])
        .file("stamper.py", STAMPING_BACKEND)
        .file("NAME", "stamper 1.0")
        .file("PACK", "stamper.py")
        .write(world.path());
    let sdist = Sdist::new("clocked", "1.0")
        .pyproject(&["stamper"], "stamper", None)
        .pkg_info("2.2", &[])
        .file("NAME", "clocked 1.0")
        .file("PACK", "clocked/__init__.py")
        .file("clocked/__init__.py", "NAME = 'clocked'\n")
        .write(world.path());

    // Published as a maintainer builds: the sdist unpacked with its times, the backend run
    // with the real clock and no SOURCE_DATE_EPOCH.
    let maintainer = world.path().join("maintainer");
    std::fs::create_dir_all(&maintainer).unwrap();
    let (python, _) = crate::common::host_python();
    let script = format!(
        r#"
import os, sys, tarfile
tarfile.open({sdist:?}).extractall({maintainer:?})
sys.path.insert(0, {backend:?})
os.chdir(os.path.join({maintainer:?}, "clocked-1.0"))
os.environ.pop("SOURCE_DATE_EPOCH", None)
import stamper
print(stamper.build_wheel({maintainer:?}))
"#,
        sdist = sdist.to_str().unwrap(),
        maintainer = maintainer.to_str().unwrap(),
        backend = world.path().to_str().unwrap(),
    );
    std::fs::write(world.path().join("stamper.py"), STAMPING_BACKEND).unwrap();
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published = maintainer.join("clocked-1.0-py3-none-any.whl");
    // The rebuild's clock is not the publisher's: its files are written seconds later, in
    // another two-second step of a zip entry's time.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let r = run(world.command("rebuild", &[published.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("reproduced clocked-1.0-py3-none-any.whl bit for bit"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("clock"), "{}", r.stdout);
}

#[test]
fn a_rebuild_builds_the_wheel_and_its_build_environment_not_its_runtime_dependencies() {
    let world = world();
    // `needy` imports `broken` when installed; `broken` does not build at all.
    Sdist::new("needy", "1.0")
        .pyproject(&["tinywheel"], "tinywheel", None)
        .pkg_info("2.2", &["broken"])
        .file("NAME", "needy 1.0")
        .file("PACK", "needy/__init__.py")
        .file("needy/__init__.py", "import broken\n")
        .write(world.path());
    Sdist::new("broken", "1.0")
        .pyproject(&[], "nosuchbackend", None)
        .pkg_info("2.2", &[])
        .write(world.path());
    let pins = world.path().join("known-recipe.txt");
    std::fs::write(&pins, "tinywheel==1.0\n").unwrap();
    let out = world.path().join("published-build");
    let r = run(world.command_out(
        "build",
        &[
            "needy==1.0",
            "--no-deps",
            "--build-constraints",
            pins.to_str().unwrap(),
            "--source-date-epoch",
            "1600000000",
        ],
        &out,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&out);
    assert!(
        !cell.join("broken-1.0-py3-none-any.whl").exists(),
        "--no-deps builds no runtime dependency"
    );
    let published = cell.join("needy-1.0-py3-none-any.whl");

    let r = run(world.command("rebuild", &[published.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("reproduced needy-1.0-py3-none-any.whl bit for bit"),
        "{}",
        r.stdout
    );
    // needy and its backend: two jobs, broken not among them.
    assert!(
        r.stdout
            .contains("built: 2 jobs, the wheel and its build environment"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_self_hosting_backend_published_by_an_older_release_of_itself_is_rebuilt_with_that_release() {
    let world = world();
    // tinywheel 2.0 as its maintainer published it: built by tinywheel 1.0, not by itself.
    let settings = world.path().join("older.toml");
    std::fs::write(
        &settings,
        "[packages.tinywheel]\nbackend = \"tinywheel==1.0\"\n",
    )
    .unwrap();
    let out = world.path().join("published-build");
    let r = run(world.command_out(
        "build",
        &[
            "tinywheel==2.0",
            "--settings",
            settings.to_str().unwrap(),
            "--source-date-epoch",
            "1600000000",
        ],
        &out,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&out);
    let published = world.path().join("tinywheel-2.0-py3-none-any.whl");
    std::fs::copy(cell.join("tinywheel-2.0-py3-none-any.whl"), &published).unwrap();

    let recipe = world.path().join("recipe/tinywheel.toml");
    let r = run(world.command(
        "rebuild",
        &[
            published.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "reproduced tinywheel-2.0-py3-none-any.whl bit for bit with recipe: tinywheel==1.0"
        ),
        "{}",
        r.stdout
    );
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("backend = \"tinywheel==1.0\""), "{text}");

    // A backend setting that names another package is refused where it is written.
    std::fs::write(
        &settings,
        "[packages.tinywheel]\nbackend = \"flit-core==3.9\"\n",
    )
    .unwrap();
    let r = crate::common::rewheel(
        world.path(),
        &[
            "resolve",
            "tinywheel==2.0",
            "--python",
            "3.11",
            "--settings",
            settings.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "packages.tinywheel.backend: `flit-core==3.9` is not a pin of tinywheel itself"
        ),
        "{}",
        r.stderr
    );
}

/// A backend that, as setuptools does, lets plugins installed beside it add files: every
/// `finderwheel.file_finders` entry point found in the build environment names files to pack.
const FINDER_BACKEND: &str = r#"
import base64, hashlib, os, zipfile
from importlib.metadata import entry_points

def get_requires_for_build_wheel(config_settings=None):
    return []

def finders():
    eps = entry_points()
    group = "finderwheel.file_finders"
    found = eps.select(group=group) if hasattr(eps, "select") else eps.get(group, [])
    return sorted(found, key=lambda e: e.name)

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = open("NAME").read().split()
    info = f"{name}-{version}.dist-info"
    files = open("PACK").read().split()
    for finder in finders():
        files += [f for f in finder.load()() if f not in files]
    entries = [(p, open(p, "rb").read()) for p in files]
    entries.append((f"{info}/METADATA", open("PKG-INFO", "rb").read()))
    entries.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: finderwheel (1.0)\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    if os.path.exists("ENTRY_POINTS"):
        entries.append((f"{info}/entry_points.txt", open("ENTRY_POINTS", "rb").read()))
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}" for p, d in entries]
    entries.append((f"{info}/RECORD", ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()))
    t = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)
    import time
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data in entries:
            entry = zipfile.ZipInfo(path, date_time=time.gmtime(t)[:6])
            entry.external_attr = 0o644 << 16
            z.writestr(entry, data)
    return filename
"#;

#[test]
fn a_wheel_built_in_a_shared_build_environment_is_reproduced_with_it_and_differs_without() {
    let world = World::new();
    Sdist::new("finderwheel", "1.0")
        .pyproject(&[], "finderwheel", Some("."))
        .pkg_info("2.2", &[])
        .file("finderwheel.py", FINDER_BACKEND)
        .file("NAME", "finderwheel 1.0")
        .file("PACK", "finderwheel.py")
        .write(world.path());
    // A plugin of the backend, as setuptools-scm is a file finder of setuptools: it is in the
    // release team's toolchain, and no package names it.
    Sdist::new("gitfiles", "1.0")
        .pyproject(&["finderwheel"], "finderwheel", None)
        .pkg_info("2.2", &[])
        .file("NAME", "gitfiles 1.0")
        .file("PACK", "gitfiles.py")
        .file(
            "gitfiles.py",
            "import os\n\ndef find():\n    return open('GITFILES').read().split() if os.path.exists('GITFILES') else []\n",
        )
        .file("ENTRY_POINTS", "[finderwheel.file_finders]\ngit = gitfiles:find\n")
        .write(world.path());
    Sdist::new("app", "1.0")
        .pyproject(&["finderwheel"], "finderwheel", None)
        .pkg_info("2.2", &[])
        .file("NAME", "app 1.0")
        .file("PACK", "app/__init__.py")
        .file("GITFILES", "app/data.txt")
        .file("app/__init__.py", "NAME = 'app'\n")
        .file("app/data.txt", "tracked by git\n")
        .write(world.path());
    let shared = world.path().join("toolchain.toml");
    std::fs::write(
        &shared,
        "[defaults]\nshared-env = [\"finderwheel==1.0\", \"gitfiles==1.0\"]\n",
    )
    .unwrap();

    let publish = |name: &str, settings: &[&str]| {
        let out = world.path().join(name);
        let mut args = vec!["app==1.0", "--source-date-epoch", "1600000000"];
        args.extend_from_slice(settings);
        let r = run(world.command_out("build", &args, &out));
        assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
        let cell = only_cell(&out);
        cell.join("app-1.0-py3-none-any.whl")
    };
    let names = |wheel: &std::path::Path| {
        let zip = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
        zip.file_names()
            .map(|n| n.unwrap().into_owned())
            .collect::<Vec<_>>()
    };
    // The release team's wheel, built in their one toolchain: the plugin packed data.txt.
    let published = publish("released", &["--settings", shared.to_str().unwrap()]);
    assert!(names(&published).contains(&"app/data.txt".to_string()));
    // Built in its own isolated environment, as the sdist alone says: no plugin, no file.
    let isolated = publish("isolated", &[]);
    assert!(!names(&isolated).contains(&"app/data.txt".to_string()));

    let r = run(world.command("rebuild", &[published.to_str().unwrap(), "--attempts", "2"]));
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("app/data.txt"), "{}", r.stdout);

    let recipe = world.path().join("recipe/app.toml");
    let r = run(world.command(
        "rebuild",
        &[
            published.to_str().unwrap(),
            "--settings",
            shared.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("reproduced app-1.0-py3-none-any.whl bit for bit"),
        "{}",
        r.stdout
    );
    // The recipe keeps the toolchain, and builds the same bytes again.
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(
        text.contains("shared-env = [\"finderwheel==1.0\", \"gitfiles==1.0\"]"),
        "{text}"
    );
    let again = world.path().join("again");
    let r = run(world.command_out(
        "build",
        &["--matrix", recipe.to_str().unwrap(), "--rebuild"],
        &again,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&again);
    assert_eq!(
        std::fs::read(cell.join("app-1.0-py3-none-any.whl")).unwrap(),
        std::fs::read(&published).unwrap()
    );
}

#[test]
fn a_batch_rebuilds_wheels_side_by_side_keeps_each_verdict_and_reports_the_rates() {
    let world = world();
    let app = publish(&world, "022");
    let out = world.path().join("backend-build");
    let r = run(world.command_out(
        "build",
        &["tinywheel==1.0", "--source-date-epoch", "1600000000"],
        &out,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&out);
    // Both published on the index (the find-links folder), named by hash.
    let mut lines = String::new();
    for (wheel, name) in [
        (app, "app==1.0"),
        (
            cell.join("tinywheel-1.0-py3-none-any.whl"),
            "tinywheel==1.0",
        ),
    ] {
        let on_index = world.path().join(wheel.file_name().unwrap());
        std::fs::copy(&wheel, &on_index).unwrap();
        let sha = rewheel::fsutil::sha256_file(&on_index).unwrap();
        lines.push_str(&format!("{name} --hash=sha256:{sha}\n"));
    }
    let reqs = world.path().join("release.txt");
    std::fs::write(&reqs, lines).unwrap();
    let report = world.path().join("batch.json");
    let page = world.path().join("batch.html");
    let args = [
        reqs.to_str().unwrap(),
        "--parallel",
        "2",
        "--report",
        report.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ];
    let r = run(world.command("rebuild", &args));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("2 wheels: 2/2 bit for bit, 2/2 equal after normalising entry times"),
        "{}",
        r.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["all"]["identical"], 2);
    assert_eq!(json["by_family"]["other"]["wheels"], 2, "{json}");
    assert_eq!(json["wheels"][0]["name"], "app");
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("2 published wheels rebuilt")
    );

    // Run again (as after a kill): the store has both verdicts, nothing is rebuilt.
    let r = run(world.command("rebuild", &args));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.matches("kept from an earlier batch").count(),
        2,
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("attempt 1"), "{}", r.stderr);
}

#[test]
fn a_rebuild_statement_names_its_inputs_and_someone_else_verifies_it_by_rebuilding() {
    let world = world();
    let published = publish(&world, "022");
    let attest = world.path().join("statements");
    let r = run(world.command(
        "rebuild",
        &[
            published.to_str().unwrap(),
            "--attest",
            attest.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let file = attest.join("app-1.0-py3-none-any.whl.rebuild.intoto.json");
    assert!(r.stdout.contains("statement written to"), "{}", r.stdout);
    let text = std::fs::read_to_string(&file).unwrap();
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sha = rewheel::fsutil::sha256_file(&published)
        .unwrap()
        .to_string();
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(s["subject"][0]["digest"]["sha256"], sha);
    let rebuild = &s["predicate"]["buildDefinition"]["externalParameters"]["rebuild"];
    assert_eq!(rebuild["verdict"], "identical");
    assert_eq!(rebuild["published"]["digest"]["sha256"], sha);
    assert_eq!(rebuild["recipe"]["pins"][0], "tinywheel==1.0");
    // The sdist and the build environment's wheels, by digest.
    let deps = s["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(deps.iter().any(|d| d["name"] == "app-1.0.tar.gz"), "{text}");
    assert!(deps.iter().any(|d| d["name"] == "tinywheel==1.0"), "{text}");

    // Someone else, with a store of their own, rebuilds from the statement alone.
    let other = tempfile::tempdir().unwrap();
    let verify = |statement: &std::path::Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rewheel"));
        command
            .args(["rebuild", statement.to_str().unwrap(), "--backend", "local"])
            .args(["--no-index", "--find-links", world.path().to_str().unwrap()])
            .arg("--cache-dir")
            .arg(other.path().join("cache"))
            .arg("--store")
            .arg(other.path().join("store"))
            .arg("--build-path")
            .arg(other.path().join("build"))
            .env_remove("PIP_INDEX_URL");
        run(command)
    };
    let r = verify(&file);
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "app-1.0-py3-none-any.whl: the statement says identical; rebuilt from it here: bit for bit, verified"
        ),
        "{}",
        r.stdout
    );
    // A statement whose recipe was changed does not give the published bytes.
    let mut forged = s.clone();
    forged["predicate"]["buildDefinition"]["externalParameters"]["rebuild"]["recipe"]["pins"] =
        serde_json::json!(["tinywheel==2.0"]);
    let forged_file = world.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let r = verify(&forged_file);
    assert_eq!(
        r.code,
        ExitCode::NotReproducible,
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("rebuilt from it here: different bytes"),
        "{}",
        r.stdout
    );
    // One that names another wheel than the one at its address is refused before building.
    let mut wrong = s.clone();
    wrong["predicate"]["buildDefinition"]["externalParameters"]["rebuild"]["published"]["digest"]
        ["sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(&forged_file, wrong.to_string()).unwrap();
    let r = verify(&forged_file);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("the statement names 0000"),
        "{}",
        r.stderr
    );
    // A statement's build folder becomes a folder on this host: none outside /tmp is taken
    // from it, and nothing is made there.
    let mut far = s.clone();
    far["predicate"]["buildDefinition"]["externalParameters"]["rebuild"]["recipe"]["build_path"] =
        serde_json::json!("/var/rewheel-statement-test/../../etc");
    std::fs::write(&forged_file, far.to_string()).unwrap();
    let r = verify(&forged_file);
    assert_eq!(r.code, ExitCode::Input, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("outside /tmp"), "{}", r.stderr);
    assert!(!std::path::Path::new("/var/rewheel-statement-test").exists());
    // A recipe value cannot become another setting: this one would have asked the host for a
    // Debian package had it been pasted into the attempt's settings as text.
    let mut sneaky = s.clone();
    sneaky["predicate"]["buildDefinition"]["externalParameters"]["rebuild"]["recipe"]["listing_order"] =
        serde_json::json!("hfs+\"\nsystem = [\"rewheel-sneaked-in\"]\n#");
    std::fs::write(&forged_file, sneaky.to_string()).unwrap();
    let r = verify(&forged_file);
    assert_ne!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("listing-order"), "{said}");
    assert!(!said.contains("rewheel-sneaked-in` "), "{said}");
    assert!(!said.contains("lacks"), "{said}");
}

#[test]
fn a_wheel_built_by_a_backend_outside_the_sdists_range_is_rebuilt_with_that_backend() {
    let world = world();
    // The sdist names tinywheel<2, but its maintainer built it with tinywheel 2.0's own
    // command line (as typer 0.9.0 says `flit 3.8.0` and names `flit-core>=2,<3`).
    Sdist::new("oldrange", "1.0")
        .pyproject(&["tinywheel<2"], "tinywheel", None)
        .pkg_info("2.2", &[])
        .file("NAME", "oldrange 1.0")
        .file("PACK", "oldrange/__init__.py")
        .file("oldrange/__init__.py", "X = 1\n")
        .write(world.path());
    let toolchain = world.path().join("maintainer.toml");
    std::fs::write(
        &toolchain,
        "[packages.oldrange]\nshared-env = [\"tinywheel==2.0\"]\n",
    )
    .unwrap();
    let out = world.path().join("published-build");
    let r = run(world.command_out(
        "build",
        &[
            "oldrange==1.0",
            "--settings",
            toolchain.to_str().unwrap(),
            "--source-date-epoch",
            "1600000000",
        ],
        &out,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    let cell = only_cell(&out);
    let published = world.path().join("oldrange-1.0-py3-none-any.whl");
    std::fs::copy(cell.join("oldrange-1.0-py3-none-any.whl"), &published).unwrap();

    let r = run(world.command("rebuild", &[published.to_str().unwrap()]));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "bit for bit with recipe: tinywheel==2.0, over the sdist's own build requirements"
        ),
        "{}",
        r.stdout
    );
}

/// setuptools as it was before PEP 517 (no `build_meta`), in one module: `setup()` runs the
/// `bdist_wheel` command line, `--universal` tagging the wheel py2.py3 as wheel's command did.
const OLD_SETUPTOOLS: &str = r#"
import base64, hashlib, os, sys, time, zipfile

def setup(name, version, packages=()):
    args = sys.argv[1:]
    assert args[0] == "bdist_wheel", args
    dist = args[args.index("--dist-dir") + 1]
    tags = ["py2", "py3"] if "--universal" in args else ["py3"]
    info = f"{name}-{version}.dist-info"
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = time.gmtime(int(sde) if sde else 315532800)[:6]
    entries = []
    for package in packages:
        for file in sorted(os.listdir(package)):
            entries.append((f"{package}/{file}", open(os.path.join(package, file), "rb").read()))
    wheel = "Wheel-Version: 1.0\nGenerator: bdist_wheel (0.30.0)\nRoot-Is-Purelib: true\n"
    wheel += "".join(f"Tag: {t}-none-any\n" for t in tags)
    entries.append((f"{info}/METADATA", f"Metadata-Version: 2.0\nName: {name}\nVersion: {version}\n".encode()))
    entries.append((f"{info}/WHEEL", wheel.encode()))
    record = []
    for path, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(dist, exist_ok=True)
    with zipfile.ZipFile(os.path.join(dist, f"{name}-{version}-{'.'.join(tags)}-none-any.whl"), "w") as z:
        for path, data in entries:
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = 0o644 << 16
            z.writestr(entry, data)
"#;

/// A wheel of `files` with a METADATA file, as the index would serve a published one.
fn published_wheel(dir: &std::path::Path, name: &str, version: &str, files: &[(&str, &str)]) {
    use std::io::Write;
    let path = dir.join(format!("{name}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    let info = format!("{name}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for (entry, text) in files
        .iter()
        .copied()
        .chain([(format!("{info}/METADATA").as_str(), metadata.as_str())])
    {
        zip.start_file(entry, options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_wheel_made_by_running_setup_py_by_hand_is_rebuilt_by_running_it_so() {
    let world = World::new();
    // The toolchain of the day, published as wheels: setuptools older than 40.8 (no PEP 517
    // hooks) and wheel 0.30.0.
    published_wheel(
        world.path(),
        "setuptools",
        "36.0",
        &[("setuptools/__init__.py", OLD_SETUPTOOLS)],
    );
    published_wheel(
        world.path(),
        "wheel",
        "0.30.0",
        &[("wheel/__init__.py", "")],
    );
    let sdist = Sdist::new("oldapp", "1.0")
        .file(
            "setup.py",
            "from setuptools import setup\nsetup(name='oldapp', version='1.0', packages=['oldapp'])\n",
        )
        .pkg_info("2.1", &[])
        .file("oldapp/__init__.py", "NAME = 'oldapp'\n")
        .write(world.path());

    // Published as its maintainer made it: `python setup.py bdist_wheel --universal`.
    let maintainer = world.path().join("maintainer");
    let toolchain = world.path().join("toolchain");
    std::fs::create_dir_all(toolchain.join("setuptools")).unwrap();
    std::fs::write(toolchain.join("setuptools/__init__.py"), OLD_SETUPTOOLS).unwrap();
    let (python, _) = crate::common::host_python();
    let script = format!(
        r#"
import os, subprocess, sys, tarfile
tarfile.open({sdist:?}).extractall({maintainer:?})
os.chdir(os.path.join({maintainer:?}, "oldapp-1.0"))
env = dict(os.environ, PYTHONPATH={toolchain:?})
subprocess.run([sys.executable, "setup.py", "bdist_wheel", "--universal", "--dist-dir", {maintainer:?}], env=env, check=True)
"#,
        sdist = sdist.to_str().unwrap(),
        maintainer = maintainer.to_str().unwrap(),
        toolchain = toolchain.to_str().unwrap(),
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published = maintainer.join("oldapp-1.0-py2.py3-none-any.whl");
    assert!(published.is_file());

    let recipe = world.path().join("recipe.toml");
    let r = run(world.command(
        "rebuild",
        &[
            published.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    // PEP 517's fallback needs setuptools 40.8: the search ran setup.py instead, then gave it
    // the `--universal` the py2.py3 tags say was typed.
    assert!(
        r.stderr.contains("setup.py bdist_wheel,")
            && r.stderr.contains("setup.py bdist_wheel --universal"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains(
            "reproduced oldapp-1.0-py2.py3-none-any.whl bit for bit with recipe: wheel==0.30.0, setup.py bdist_wheel --universal"
        ),
        "{}",
        r.stdout
    );
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("setup-py = [\"--universal\"]"), "{text}");
    assert!(
        text.contains("[packages.setuptools]\nallow-binary = true"),
        "{text}"
    );
}

/// What the listing backends share: a RECORD, entry times from SOURCE_DATE_EPOCH, the
/// entries in the order given.
const WRITE_WHEEL: &str = r#"
import base64, hashlib, os, time, zipfile

def write_wheel(wheel_directory, filename, info, files):
    record = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    stamp = time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")))[:6]
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data in files:
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = 0o644 << 16
            z.writestr(entry, data)
    return filename
"#;

/// A backend that writes its metadata folder, then zips it in the order the folder lists
/// (as poetry-core copies its metadata with `glob`): the builder's filesystem decides.
const LISTING_BACKEND: &str = r#"
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = "lister-1.0.dist-info"
    meta = os.path.join(wheel_directory, "..", "meta-" + str(os.getpid()))
    os.makedirs(meta)
    written = {
        "entry_points.txt": b"[console_scripts]\nlister = lister:main\n",
        "WHEEL": b"Wheel-Version: 1.0\nGenerator: lister (1.0)\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "METADATA": open("PKG-INFO", "rb").read(),
        "LICENSE": b"Do what you like.\n",
        "top_level.txt": b"lister\n",
        "AUTHORS": b"Someone\n",
    }
    for name, data in written.items():
        with open(os.path.join(meta, name), "wb") as f:
            f.write(data)
    files = [("lister/__init__.py", open("lister/__init__.py", "rb").read())]
    files += [(f"{info}/{name}", open(os.path.join(meta, name), "rb").read()) for name in os.listdir(meta)]
    return write_wheel(wheel_directory, "lister-1.0-py3-none-any.whl", info, files)
"#;

#[test]
fn metadata_zipped_in_the_publishers_listing_order_is_rebuilt_with_an_ext4_hash_order() {
    let world = World::new();
    let sdist = Sdist::new("lister", "1.0")
        .pyproject(&[], "listerbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("listerbuild.py", format!("{WRITE_WHEEL}{LISTING_BACKEND}"))
        .file("lister/__init__.py", "def main():\n    pass\n")
        .write(world.path());
    // Published from a machine whose filesystem listed the folder in an order of its own,
    // neither the order written nor a sorted one (six names: one order in 720).
    let published = world.path().join("published");
    std::fs::create_dir_all(&published).unwrap();
    let (python, _) = crate::common::host_python();
    let order = [
        "METADATA",
        "AUTHORS",
        "entry_points.txt",
        "WHEEL",
        "top_level.txt",
        "LICENSE",
    ];
    let script = format!(
        r#"
import os, sys, tarfile
tarfile.open({sdist:?}).extractall({published:?})
os.chdir(os.path.join({published:?}, "lister-1.0"))
listed = os.listdir
os.listdir = lambda path: {order:?} if "meta-" in str(path) else listed(path)
sys.path.insert(0, ".")
import listerbuild
os.makedirs("dist")
listerbuild.build_wheel("dist")
"#,
        sdist = sdist.to_str().unwrap(),
        published = published.to_str().unwrap(),
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wheel = published.join("lister-1.0/dist/lister-1.0-py3-none-any.whl");

    let recipe = world.path().join("recipe.toml");
    let r = run(world.command(
        "rebuild",
        &[
            wheel.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("folders listed in the order of ext4:"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    // The recipe names the seed; `build` with it makes the published bytes again.
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("listing-order = \"ext4:"), "{text}");
    let again = world.path().join("again");
    let r = run(world.command_out(
        "build",
        &["--matrix", recipe.to_str().unwrap(), "--rebuild"],
        &again,
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(only_cell(&again).join("lister-1.0-py3-none-any.whl")).unwrap(),
        std::fs::read(&wheel).unwrap(),
        "the recipe rebuilds the published bytes"
    );
}

/// A backend that zips a package's modules in the order the folder lists, as wheel 0.29's
/// `os.walk` did.
const WALKING_BACKEND: &str = r#"
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = "walker-1.0.dist-info"
    files = [(f"walker/{n}", open(os.path.join("walker", n), "rb").read()) for n in os.listdir("walker")]
    files.append((f"{info}/METADATA", open("PKG-INFO", "rb").read()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: walker (1.0)\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    return write_wheel(wheel_directory, "walker-1.0-py3-none-any.whl", info, files)
"#;

#[test]
fn modules_zipped_in_a_macs_sorted_listing_are_rebuilt_with_the_hfs_order() {
    let world = World::new();
    let mut sdist = Sdist::new("walker", "1.0")
        .pyproject(&[], "walkerbuild", Some("."))
        .pkg_info("2.2", &[])
        .file("walkerbuild.py", format!("{WRITE_WHEEL}{WALKING_BACKEND}"));
    // Sorted without case (a, B, c, …), which neither a byte order nor ext4 nor tmpfs gives.
    for module in [
        "walker/a.py",
        "walker/B.py",
        "walker/c.py",
        "walker/D.py",
        "walker/e.py",
        "walker/F.py",
    ] {
        sdist = sdist.file(module, format!("# {module}\n"));
    }
    let sdist = sdist.write(world.path());
    let published = world.path().join("published");
    std::fs::create_dir_all(&published).unwrap();
    let (python, _) = crate::common::host_python();
    let script = format!(
        r#"
import os, sys, tarfile
tarfile.open({sdist:?}).extractall({published:?})
os.chdir(os.path.join({published:?}, "walker-1.0"))
listed = os.listdir
os.listdir = lambda path: sorted(listed(path), key=str.lower)
sys.path.insert(0, ".")
import walkerbuild
os.makedirs("dist")
walkerbuild.build_wheel("dist")
"#,
        sdist = sdist.to_str().unwrap(),
        published = published.to_str().unwrap(),
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wheel = published.join("walker-1.0/dist/walker-1.0-py3-none-any.whl");
    let recipe = world.path().join("recipe.toml");
    let r = run(world.command(
        "rebuild",
        &[
            wheel.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, ExitCode::Success, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("folders listed in the order of hfs+"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("listing-order = \"hfs+\""), "{text}");
}
