//! How a local job is confined. With bubblewrap (`bwrap`): its own user, PID, network, IPC and
//! UTS namespaces; a read-only view of the host with the places secrets live hidden (`/root`,
//! `/home`, `/run` and its Docker socket, `/etc/shadow`); a private `/tmp`; the job folder the
//! only writable path, mounted at the fixed build path so that jobs sharing one path never see
//! each other. The namespace's first process is the job: when it ends, or rewheel dies, the
//! kernel ends every process left in it. Without bwrap, `unshare` gives the network, UTS and PID
//! namespaces only, and the job can read and write what rewheel can.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Limits set on the job's processes before they start (rlimits survive exec).
#[derive(Debug, Clone, Copy)]
pub struct ResourceLimits {
    /// Address space, bytes (RLIMIT_AS).
    pub memory: u64,
    /// Processes of the job's user (RLIMIT_NPROC); see SECURITY.md for when it binds.
    pub processes: u64,
    /// Largest file the job may write, bytes (RLIMIT_FSIZE): logs and wheels included.
    pub file_size: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            memory: 16 << 30,
            processes: 4096,
            file_size: 8 << 30,
        }
    }
}

/// What confines a local job on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Bwrap,
    /// `unshare -rnu --pid --fork --kill-child`: no network, own hostname, own PID namespace.
    Unshare,
    None,
}

impl Isolation {
    /// The strongest isolation that works here (each is tried for real, not guessed).
    pub fn probe() -> Self {
        let works = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if std::env::var_os("REWHEEL_NO_BWRAP").is_none()
            && works(
                "bwrap",
                &[
                    "--unshare-all",
                    "--unshare-user",
                    "--die-with-parent",
                    "--ro-bind",
                    "/",
                    "/",
                    "--proc",
                    "/proc",
                    "true",
                ],
            )
        {
            Isolation::Bwrap
        } else if works(
            "unshare",
            &["-rnu", "--pid", "--fork", "--kill-child", "true"],
        ) {
            Isolation::Unshare
        } else {
            Isolation::None
        }
    }

    /// Said once per run, so that nobody mistakes the fallback for a sandbox.
    pub fn describe(self) -> &'static str {
        match self {
            Isolation::Bwrap => {
                "bubblewrap: own user, PID, network and hostname namespaces; read-only host with /root, /home, /run hidden; only the job folder writable"
            }
            Isolation::Unshare => {
                "unshare (no bubblewrap found): no network, own hostname and PID namespace; the job can still read and write what rewheel can (install bubblewrap)"
            }
            Isolation::None => {
                "none (neither bubblewrap nor unshare work here): jobs can reach the network and everything rewheel can"
            }
        }
    }
}

/// Folders hidden from a bwrap job (each replaced by an empty tmpfs), and files masked.
const HIDDEN_DIRS: &[&str] = &[
    "/root", "/home", "/run", "/tmp", "/var/tmp", "/mnt", "/media",
];
const MASKED_FILES: &[&str] = &["/etc/shadow", "/etc/gshadow", "/etc/sudoers"];

/// Everything a sandboxed command needs to know.
pub struct Confinement<'a> {
    pub isolation: Isolation,
    /// The job folder on the host, and where the job sees it.
    pub host_dir: &'a Path,
    pub inside_dir: &'a Path,
    /// The interpreter, whose installation must stay visible.
    pub interpreter: &'a Path,
    pub hostname: &'a str,
    /// The uid and gid the job runs as (bubblewrap).
    pub uid: u32,
    pub gid: u32,
    /// The file-order variation: the unpacked tree read-only at `src-staged`, a tmpfs where the
    /// sources go.
    pub reorder_sources: bool,
    /// The unpacked tree on the host and where the job sees it (`DIR/<Name-Version>`).
    pub source: Option<(&'a Path, &'a Path)>,
    /// The job's environment, set inside the sandbox only: the programs that start it on the
    /// host run with none of it (a plan's PATH or LD_PRELOAD would choose or load them).
    pub env: &'a [(String, String)],
    /// The build environment's folder under the job's folder (bound read-only).
    pub env_dir: &'a str,
    /// The job's own `passwd` and `group` files, bound over the host's.
    pub identity: Option<&'a Path>,
    /// A shell bound over `/bin/sh` (the `bin-sh` variation).
    pub sh: Option<&'a Path>,
}

impl Confinement<'_> {
    /// A confinement for a command of rewheel's own (bytecode compilation): nothing of a
    /// job's world but its folder.
    pub fn plain<'a>(
        host_dir: &'a Path,
        interpreter: &'a Path,
        uid: u32,
        gid: u32,
    ) -> Confinement<'a> {
        Confinement {
            isolation: Isolation::Bwrap,
            host_dir,
            inside_dir: host_dir,
            interpreter,
            hostname: "rewheel",
            uid,
            gid,
            reorder_sources: false,
            source: None,
            env: &[],
            env_dir: crate::build::job::ENV_DIR,
            identity: None,
            sh: None,
        }
    }
}

/// The other of dash and bash than the host's `/bin/sh`, for the `bin-sh` variation; why not,
/// when the host has another shell there or lacks the other one.
pub fn other_shell() -> Result<PathBuf, String> {
    let current = std::fs::canonicalize("/bin/sh").map_err(|e| format!("/bin/sh: {e}"))?;
    let other = match current.file_name().and_then(|n| n.to_str()) {
        Some("dash") => "bash",
        Some("bash") => "dash",
        _ => {
            return Err(format!(
                "/bin/sh is {}, neither dash nor bash",
                current.display()
            ));
        }
    };
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(other))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("/bin/sh is {} and there is no {other}", current.display()))
}

/// A program found on rewheel's own PATH (the operator's), never on the job's.
fn program(name: &str) -> Result<String, String> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| p.display().to_string())
        .ok_or_else(|| format!("`{name}` is not on PATH"))
}

/// A folder bound into the sandbox must be a real folder, not a link (resolved by bubblewrap
/// on the host, as root where rewheel runs as root).
fn bind_source(path: &Path) -> Result<String, String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(path.display().to_string()),
        Ok(_) => Err(format!(
            "{} is not a folder (a link?): not bound into the sandbox",
            path.display()
        )),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

/// A file bound into the sandbox must be a regular file of the job's folder, not a link.
fn bind_file(path: &Path) -> Result<String, String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(path.display().to_string()),
        Ok(_) => Err(format!(
            "{} is not a regular file (a link?): not bound into the sandbox",
            path.display()
        )),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

/// The program and arguments that run `command` confined, with `c.env` as its whole
/// environment.
pub fn wrap(c: &Confinement, command: &[String]) -> Result<Vec<String>, String> {
    let mut argv: Vec<String> = Vec::new();
    let s = |p: &Path| p.display().to_string();
    let assignments = || c.env.iter().map(|(k, v)| format!("{k}={v}"));
    match c.isolation {
        Isolation::Bwrap => {
            argv.push(program("bwrap")?);
            argv.extend(
                [
                    "--unshare-all",
                    "--unshare-user",
                    "--die-with-parent",
                    "--new-session",
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                ]
                .map(String::from),
            );
            for dir in HIDDEN_DIRS {
                if Path::new(dir).is_dir() && !Path::new(dir).is_symlink() {
                    argv.extend(["--tmpfs".into(), dir.to_string()]);
                }
            }
            for file in MASKED_FILES.iter().filter(|f| Path::new(f).is_file()) {
                argv.extend(["--ro-bind".into(), "/dev/null".into(), file.to_string()]);
            }
            if let Some(prefix) = install_prefix(c.interpreter)
                && HIDDEN_DIRS.iter().any(|d| prefix.starts_with(d))
            {
                argv.extend(["--ro-bind".into(), s(&prefix), s(&prefix)]);
            }
            let source_parent = c.source.and_then(|(_, inside)| inside.parent());
            if c.reorder_sources {
                // The tmpfs first: the job's own folder may lie below it.
                let at = source_parent
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| c.inside_dir.join("src"));
                argv.extend(["--tmpfs".into(), s(&at)]);
            }
            argv.extend(["--bind".into(), bind_source(c.host_dir)?, s(c.inside_dir)]);
            // The build environment is an input, and its files are the site cache's, shared
            // with every job by hard links: read-only.
            if c.host_dir.join(c.env_dir).exists() {
                argv.extend([
                    "--ro-bind".into(),
                    bind_source(&c.host_dir.join(c.env_dir))?,
                    s(&c.inside_dir.join(c.env_dir)),
                ]);
            }
            // The job's own user entries: the build user exists whatever its uid, and the
            // host's users are nobody's business.
            if let Some(identity) = c.identity {
                for file in ["passwd", "group"] {
                    argv.extend([
                        "--ro-bind".into(),
                        bind_file(&identity.join(file))?,
                        format!("/etc/{file}"),
                    ]);
                }
            }
            // A bind over /bin/sh lands on the file its link names (dash's, on Debian), so
            // `dash` runs bash too: what counts is that every `sh` the build runs is the
            // other shell, and a read-only host leaves no link to change.
            if let Some(sh) = c.sh {
                argv.extend(["--ro-bind".into(), s(sh), "/bin/sh".into()]);
            }
            if c.reorder_sources {
                use crate::build::job::STAGED_SRC;
                argv.extend([
                    "--ro-bind".into(),
                    bind_source(&c.host_dir.join("src"))?,
                    s(&c.inside_dir.join(STAGED_SRC)),
                ]);
            } else if let Some((host, inside)) = c.source {
                argv.extend(["--bind".into(), bind_source(host)?, s(inside)]);
            }
            argv.push("--clearenv".into());
            for (k, v) in c.env {
                argv.extend(["--setenv".into(), k.clone(), v.clone()]);
            }
            argv.extend([
                "--chdir".into(),
                s(c.inside_dir),
                "--hostname".into(),
                c.hostname.to_string(),
                "--uid".into(),
                c.uid.to_string(),
                "--gid".into(),
                c.gid.to_string(),
                "--".into(),
            ]);
        }
        Isolation::Unshare => {
            argv.push(program("unshare")?);
            argv.extend(
                [
                    "-rnu",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "/bin/sh",
                    "-c",
                    "hostname \"$0\" && exec \"$@\"",
                ]
                .map(String::from),
            );
            argv.push(c.hostname.to_string());
            argv.extend([program("env")?, "-i".into()]);
            argv.extend(assignments());
        }
        Isolation::None => {
            argv.extend([program("env")?, "-i".into()]);
            argv.extend(assignments());
        }
    }
    argv.extend(command.iter().cloned());
    Ok(argv)
}

/// The folder an interpreter is installed under (`…/bin/python3.X` → `…`), links resolved.
fn install_prefix(interpreter: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(interpreter).ok()?;
    let bin = real.parent()?;
    Some(bin.parent().unwrap_or(bin).to_path_buf())
}

/// Set the limits in the child, between fork and exec.
pub fn apply_limits(limits: ResourceLimits) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct and touches only this process.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, limits.memory)?;
    set(libc::RLIMIT_NPROC, limits.processes)?;
    set(libc::RLIMIT_FSIZE, limits.file_size)?;
    set(libc::RLIMIT_CORE, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bwrap_job_sees_its_folder_at_the_fixed_path_and_the_interpreter_it_needs() {
        let t = tempfile::tempdir().unwrap();
        let job = t.path().join(".jobs/1");
        std::fs::create_dir_all(job.join("src/six-1.0")).unwrap();
        let env = [("LD_PRELOAD".to_string(), "/x.so".to_string())];
        let confinement = |source: PathBuf| {
            wrap(
                &Confinement {
                    isolation: Isolation::Bwrap,
                    host_dir: &job,
                    inside_dir: Path::new("/tmp/rewheel-build/cp311/six-1.0"),
                    interpreter: Path::new("/bin/sh"),
                    hostname: "rewheel",
                    uid: 1000,
                    gid: 1000,
                    reorder_sources: false,
                    source: Some((&source, Path::new("/tmp/rewheel-build/six-1.0"))),
                    env: &env,
                    env_dir: "env",
                    identity: None,
                    sh: None,
                },
                &["python".into()],
            )
        };
        let text = confinement(job.join("src/six-1.0")).unwrap().join(" ");
        let j = job.display();
        assert!(text.contains(&format!("--bind {j} /tmp/rewheel-build/cp311/six-1.0")));
        // The sources where `tar -xf SDIST -C /tmp/rewheel-build` would put them.
        assert!(text.contains(&format!(
            "--bind {j}/src/six-1.0 /tmp/rewheel-build/six-1.0"
        )));
        assert!(text.contains("--tmpfs /run"));
        // The bind comes after the tmpfs over /tmp, or the tmpfs would hide it.
        assert!(text.find("--tmpfs /tmp").unwrap() < text.find("--bind").unwrap());
        // The job's environment is set inside the sandbox, never on bwrap itself.
        assert!(text.contains("--clearenv --setenv LD_PRELOAD /x.so"));
        assert!(text.starts_with('/'), "bwrap by its absolute path: {text}");
        assert!(text.ends_with("-- python"));
        // A bind source a build turned into a link is not bound.
        std::os::unix::fs::symlink("/", job.join("src/link")).unwrap();
        let err = confinement(job.join("src/link")).unwrap_err();
        assert!(err.contains("is not a folder (a link?)"), "{err}");
    }
}
