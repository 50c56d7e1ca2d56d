//! Build images made without a registry: a Debian suite's root filesystem, made by mmdebstrap
//! (or debootstrap where the host has no mmdebstrap), imported into the local engine through
//! the Engine API. Tags carry the recipe's digest.
//!
//! mmdebstrap runs without root (user namespaces) and, with SOURCE_DATE_EPOCH fixed, writes
//! the same tarball for the same package set: the image's layer digest (`docker inspect`,
//! `RootFS.Layers`) is then one someone else can check by building the recipe again.

use super::pocket::Pocket;
use bollard::Docker;
use futures_util::StreamExt;
use serde::Deserialize;
use std::path::Path;

/// The recipes shipped in `images/`, compiled in so the binary works outside the repository.
const RECIPES: &[(&str, &str)] = &[
    (
        "bullseye",
        include_str!("../../images/bullseye/recipe.toml"),
    ),
    (
        "bookworm",
        include_str!("../../images/bookworm/recipe.toml"),
    ),
    ("trixie", include_str!("../../images/trixie/recipe.toml")),
    ("forky", include_str!("../../images/forky/recipe.toml")),
];

pub const REPOSITORY: &str = "rewheel";

/// Where root filesystems are debootstrapped before import (removed after).
pub const SCRATCH: &str = "/var/tmp/rewheel-images";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub suite: String,
    pub variant: String,
    pub packages: Vec<String>,
    #[serde(default = "default_mirror")]
    pub mirror: String,
    /// Packages installed from a pocket of the suite after debootstrap, as `NAME/POCKET`
    /// (newer toolchains: `cargo/backports`, `rustc-web/security`; see `pocket`).
    #[serde(default)]
    pub pockets: Vec<String>,
}

/// Debian's archive, where images (and CI jobs' backports) come from.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

fn default_mirror() -> String {
    DEFAULT_MIRROR.into()
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("no image recipe `{0}`; known: bullseye, bookworm, trixie, forky")]
    Unknown(String),
    #[error("debootstrap is not installed\nhint: apt-get install debootstrap")]
    NoDebootstrap,
    #[error("debootstrap {suite} failed ({status}); its log: {log}")]
    Debootstrap {
        suite: String,
        status: String,
        log: String,
    },
    #[error("the Docker engine: {0}")]
    Engine(#[from] bollard::errors::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A Debian package installed in an image, as `dpkg-query` inside the image lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
}

/// What `dpkg-query -W -f` prints per package: its state, name and version (dpkg expands the
/// escapes itself).
pub const DPKG_QUERY_FORMAT: &str = r"${db:Status-Abbrev}\t${Package}\t${Version}\n";

/// The installed packages of a listing in `DPKG_QUERY_FORMAT`, sorted by name. Packages dpkg
/// only remembers (removed with their configuration files left) are not in the image.
pub fn installed_packages(listing: &str) -> Vec<DebPackage> {
    let mut out: Vec<DebPackage> = listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (status, name, version) = (fields.next()?, fields.next()?, fields.next()?);
            (status.starts_with("ii") && !name.is_empty() && !version.is_empty()).then(|| {
                DebPackage {
                    name: name.to_string(),
                    version: version.to_string(),
                }
            })
        })
        .collect();
    // A package of two architectures is listed once per architecture.
    out.sort();
    out.dedup();
    out
}

/// What `ensure` did.
pub enum Ensured {
    Present(String),
    Built {
        id: String,
        seconds: f64,
        /// The root filesystem layer's digest (`RootFS.Layers`): the same for the same package
        /// set when mmdebstrap made it, so someone else can check it.
        layer: Option<String>,
    },
}

impl Ensured {
    /// What `images build` says of it, after the image's reference.
    pub fn describe(&self) -> String {
        match self {
            Ensured::Present(id) => format!("already built ({})", short_id(id)),
            Ensured::Built { id, seconds, layer } => {
                let layer = layer.as_deref().map(|l| format!(", layer {l}"));
                let id = short_id(id);
                format!(
                    "built in {seconds:.0} s ({id}){}",
                    layer.unwrap_or_default()
                )
            }
        }
    }
}

/// An engine id as people read it: `sha256:` and 12 digits.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(19)]
}

pub struct Image {
    pub name: &'static str,
    pub recipe: Recipe,
    pub digest: String,
    /// Packages added to the shipped recipe (per-package `system` settings).
    pub extra: Vec<String>,
}

impl Image {
    pub fn named(name: &str) -> Result<Self, ImageError> {
        let (name, text) = RECIPES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ImageError::Unknown(name.to_string()))?;
        let recipe: Recipe = toml::from_str(text).expect("shipped recipes parse");
        Ok(Self {
            name,
            recipe,
            digest: crate::fsutil::sha256_hex(text.as_bytes())[..12].to_string(),
            extra: Vec::new(),
        })
    }

    /// The recipe's `NAME/POCKET` packages, by pocket.
    fn by_pocket(&self) -> std::collections::BTreeMap<Pocket, Vec<&str>> {
        let mut by_pocket: std::collections::BTreeMap<Pocket, Vec<&str>> = Default::default();
        for entry in &self.recipe.pockets {
            if let (name, Some(pocket)) = Pocket::split(entry) {
                by_pocket.entry(pocket).or_default().push(name);
            }
        }
        by_pocket
    }

    /// `apt-get install -t <suite>-<pocket>` inside the new root, a pocket at a time (the
    /// host's network; this is the image build, not a job).
    fn install_from_pockets(&self, root: &Path, log: &Path) -> Result<(), ImageError> {
        let suite = &self.recipe.suite;
        let _ = std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"));
        for (pocket, names) in self.by_pocket() {
            let release = pocket.release(suite);
            std::fs::write(
                root.join(format!("etc/apt/sources.list.d/{release}.list")),
                pocket.source_line(&self.recipe.mirror, suite) + "\n",
            )?;
            let log_file = std::fs::OpenOptions::new().append(true).open(log)?;
            let script = format!(
                "apt-get update -qq && {} && apt-get clean",
                pocket_install(&release, &names)
            );
            let status = std::process::Command::new("chroot")
                .arg(root)
                .args(["/bin/sh", "-c", &script])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .status()?;
            if !status.success() {
                let _ = std::fs::remove_file(root.join("etc/resolv.conf"));
                return Err(ImageError::Debootstrap {
                    suite: release,
                    status: status.to_string(),
                    log: log.display().to_string(),
                });
            }
        }
        let _ = std::fs::remove_file(root.join("etc/resolv.conf"));
        Ok(())
    }

    /// This image with more Debian packages: another recipe, so another tag (the digest covers
    /// the whole package list), so another image id in every fingerprint.
    pub fn with_packages(mut self, extra: &[String]) -> Self {
        let mut added: Vec<String> = extra
            .iter()
            .filter(|p| !self.recipe.packages.contains(p) && !self.recipe.pockets.contains(p))
            .cloned()
            .collect();
        added.sort();
        added.dedup();
        if added.is_empty() {
            return self;
        }
        // `cargo/backports`: from a pocket of the suite, installed after debootstrap.
        for p in &added {
            match Pocket::split(p) {
                (_, Some(_)) => self.recipe.pockets.push(p.clone()),
                (_, None) => self.recipe.packages.push(p.clone()),
            }
        }
        let whole = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.recipe.suite,
            self.recipe.variant,
            self.recipe.mirror,
            self.recipe.packages.join(","),
            self.recipe
                .pockets
                .iter()
                // Backports entries were digested by bare name before other pockets existed;
                // keeping that keeps the tags (and so every fingerprint) of existing images.
                .map(|p| match Pocket::split(p) {
                    (name, Some(Pocket::Backports)) => name,
                    _ => p.as_str(),
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        self.digest = crate::fsutil::sha256_hex(whole.as_bytes())[..12].to_string();
        self.extra = added;
        self
    }

    /// The named recipes, or all of them for no name.
    pub fn selected(names: &[String]) -> Result<Vec<Self>, ImageError> {
        if names.is_empty() {
            return Ok(Self::all());
        }
        names.iter().map(|n| Self::named(n)).collect()
    }

    /// Build this image unless the engine has it (or `force`); says on stderr when it starts.
    pub async fn ensure(
        &self,
        docker: &Docker,
        scratch: &Path,
        force: bool,
    ) -> Result<Ensured, ImageError> {
        if !force && let Some(id) = self.id(docker).await {
            return Ok(Ensured::Present(id));
        }
        std::fs::create_dir_all(scratch)?;
        let start = std::time::Instant::now();
        let log = scratch.join(format!("{}-{}.log", self.name, self.digest));
        eprintln!(
            "{}: {} {} (log: {})",
            self.reference(),
            if has_mmdebstrap() {
                "mmdebstrap"
            } else {
                "debootstrap"
            },
            self.recipe.suite,
            log.display()
        );
        let id = self.build(docker, scratch, &log).await?;
        let layer = docker
            .inspect_image(&self.reference())
            .await
            .ok()
            .and_then(|i| i.root_fs)
            .and_then(|r| r.layers)
            .and_then(|l| l.into_iter().next());
        Ok(Ensured::Built {
            layer,
            id,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    pub fn all() -> Vec<Self> {
        RECIPES
            .iter()
            .map(|(n, _)| Self::named(n).expect("shipped"))
            .collect()
    }

    /// `rewheel/bookworm:<recipe digest>`.
    pub fn reference(&self) -> String {
        format!("{REPOSITORY}/{}:{}", self.name, self.digest)
    }

    /// The engine's id for this image, if it has been built.
    pub async fn id(&self, docker: &Docker) -> Option<String> {
        docker
            .inspect_image(&self.reference())
            .await
            .ok()
            .and_then(|i| i.id)
    }

    /// Make the suite's root filesystem (mmdebstrap, else debootstrap) and import it as this
    /// image.
    pub async fn build(
        &self,
        docker: &Docker,
        scratch: &Path,
        log: &Path,
    ) -> Result<String, ImageError> {
        if has_mmdebstrap() {
            let tarball = scratch.join(format!("{}-{}.tar", self.name, self.digest));
            let made = self.mmdebstrap(&tarball, log).await;
            let imported = match made {
                Ok(()) => self.import(docker, &tarball).await,
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&tarball);
            return imported;
        }
        self.debootstrap_and_import(docker, scratch, log).await
    }

    /// The root filesystem as one tarball, made by mmdebstrap (as root, or in a user
    /// namespace without it): the recipe's packages, then those of the suite's pockets, with
    /// file times clamped to `IMAGE_EPOCH` and the host's resolver and name left out, so the
    /// same package set gives the same bytes.
    async fn mmdebstrap(&self, tarball: &Path, log: &Path) -> Result<(), ImageError> {
        let suite = &self.recipe.suite;
        let mirror = self.recipe.mirror.trim_end_matches('/');
        let mut sources = vec![format!("deb {mirror} {suite} main")];
        let mut hooks = Vec::new();
        // A pocket's package takes its dependencies from the pocket too (`-t`), as
        // `install_from_pockets` does after debootstrap.
        for (pocket, names) in self.by_pocket() {
            sources.push(pocket.source_line(mirror, suite));
            hooks.push(format!(
                "chroot \"$1\" env DEBIAN_FRONTEND=noninteractive {}",
                pocket_install(&pocket.release(suite), &names)
            ));
        }
        hooks.push("rm -f \"$1/etc/resolv.conf\" \"$1/etc/hostname\"".into());
        let mut command = tokio::process::Command::new("mmdebstrap");
        command
            .arg("--mode=auto")
            // A snapshot of the archive (how an image is made again later, elsewhere) has a
            // Release file past its Valid-Until; debootstrap never checks it either.
            .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
            .arg(format!("--variant={}", self.recipe.variant))
            .arg(format!("--include={}", self.recipe.packages.join(",")));
        for hook in &hooks {
            command.arg(format!("--customize-hook={hook}"));
        }
        command
            .arg(suite)
            .arg(tarball)
            .args(&sources)
            .env("SOURCE_DATE_EPOCH", IMAGE_EPOCH.to_string());
        let status = run_logged(command, log).await?;
        if status.success() {
            Ok(())
        } else {
            Err(ImageError::Debootstrap {
                suite: format!("{suite} (mmdebstrap)"),
                status: status.to_string(),
                log: log.display().to_string(),
            })
        }
    }

    /// Import a root filesystem tarball as this image.
    async fn import(&self, docker: &Docker, tarball: &Path) -> Result<String, ImageError> {
        let file = tokio::fs::File::open(tarball).await?;
        self.import_stream(docker, file).await
    }

    async fn import_stream<R>(&self, docker: &Docker, tar: R) -> Result<String, ImageError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(tar));
        let options = bollard::query_parameters::CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(format!("{REPOSITORY}/{}", self.name)),
            tag: Some(self.digest.clone()),
            changes: vec!["USER 1000:1000".into(), "WORKDIR /build".into()],
            ..Default::default()
        };
        let mut progress = docker.create_image(Some(options), Some(body), None);
        while let Some(event) = progress.next().await {
            event?;
        }
        Ok(self.id(docker).await.unwrap_or_default())
    }

    /// debootstrap the suite into a scratch folder and import it as this image.
    async fn debootstrap_and_import(
        &self,
        docker: &Docker,
        scratch: &Path,
        log: &Path,
    ) -> Result<String, ImageError> {
        let which = tokio::process::Command::new("debootstrap")
            .arg("--version")
            .output()
            .await;
        if which.is_err() && !Path::new("/usr/sbin/debootstrap").exists() {
            return Err(ImageError::NoDebootstrap);
        }
        let root = scratch.join(format!("{}-{}", self.name, self.digest));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        let mut command = tokio::process::Command::new("debootstrap");
        command
            .arg(format!("--variant={}", self.recipe.variant))
            .arg(format!("--include={}", self.recipe.packages.join(",")))
            .arg(&self.recipe.suite)
            .arg(&root)
            .arg(&self.recipe.mirror)
            .args(script_for(
                &self.recipe.suite,
                Path::new(DEBOOTSTRAP_SCRIPTS),
            ));
        let status = run_logged(command, log).await?;
        if !status.success() {
            return Err(ImageError::Debootstrap {
                suite: self.recipe.suite.clone(),
                status: status.to_string(),
                log: log.display().to_string(),
            });
        }
        if !self.recipe.pockets.is_empty() {
            self.install_from_pockets(&root, log)?;
        }
        // Caches the image does not need; smaller images import faster.
        for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let _ = std::fs::remove_dir_all(root.join(dir));
        }
        let mut tar = tokio::process::Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&root)
            .args(["-c", "."])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = tar.stdout.take().expect("piped");
        let id = self.import_stream(docker, stdout).await?;
        tar.wait().await?;
        let _ = std::fs::remove_dir_all(&root);
        Ok(id)
    }
}

/// The time mmdebstrap clamps the root filesystem's file times to (2024-01-01 UTC): fixed,
/// so the tarball depends on the package set alone.
pub const IMAGE_EPOCH: u64 = 1_704_067_200;

/// Whether the host has mmdebstrap (preferred: no root needed, reproducible tarballs); asked
/// once per process.
fn has_mmdebstrap() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        std::process::Command::new("mmdebstrap")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A pocket's packages installed with their dependencies from that pocket (`-t`), the same
/// after debootstrap and in mmdebstrap's hook.
fn pocket_install(release: &str, names: &[&str]) -> String {
    format!(
        "apt-get install -y -qq --no-install-recommends -t {release} {}",
        names.join(" ")
    )
}

/// Run a root filesystem builder with a plain `PATH` (it runs `/usr/sbin` tools), its output
/// in `log`.
async fn run_logged(
    mut command: tokio::process::Command,
    log: &Path,
) -> Result<std::process::ExitStatus, ImageError> {
    let log_file = std::fs::File::create(log)?;
    Ok(command
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .await?)
}

/// Where debootstrap keeps a script per suite it knows.
const DEBOOTSTRAP_SCRIPTS: &str = "/usr/share/debootstrap/scripts";

/// The script to pass debootstrap for a suite newer than the host's debootstrap knows (forky
/// on a bookworm host): `sid`'s, which every suite since jessie links to; none when it knows it.
fn script_for(suite: &str, scripts: &Path) -> Option<std::path::PathBuf> {
    (!scripts.join(suite).exists() && scripts.join("sid").exists()).then(|| scripts.join("sid"))
}

#[cfg(test)]
mod tests {
    use super::Image;

    #[test]
    fn only_installed_packages_are_listed_once_each() {
        let listing = "ii \tpython3\t3.11.2-1+b1\n\
                       rc \told-tool\t1.0-1\n\
                       ii \tlibc6\t2.36-9\n\
                       ii \tlibc6\t2.36-9\n\
                       garbage\n\
                       ii \tnoversion\t\n";
        let names: Vec<String> = super::installed_packages(listing)
            .into_iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        assert_eq!(names, ["libc6=2.36-9", "python3=3.11.2-1+b1"]);
    }

    #[test]
    fn a_suite_debootstrap_does_not_know_takes_sid_s_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sid"), "").unwrap();
        std::os::unix::fs::symlink("sid", dir.path().join("bookworm")).unwrap();
        assert_eq!(super::script_for("bookworm", dir.path()), None);
        assert_eq!(
            super::script_for("forky", dir.path()),
            Some(dir.path().join("sid"))
        );
    }

    #[test]
    fn system_packages_make_another_recipe_and_backports_go_their_own_way() {
        let base = Image::named("trixie").unwrap();
        let digest = base.digest.clone();
        let derived = Image::named("trixie")
            .unwrap()
            .with_packages(&["libffi-dev".into(), "cargo/backports".into()]);
        assert_ne!(
            derived.digest, digest,
            "another package list is another image"
        );
        assert!(derived.recipe.packages.contains(&"libffi-dev".to_string()));
        assert_eq!(derived.recipe.pockets, ["cargo/backports"]);
        let same = Image::named("trixie")
            .unwrap()
            .with_packages(&["cargo/backports".into(), "libffi-dev".into()]);
        assert_eq!(
            same.digest, derived.digest,
            "the order of the list does not matter"
        );
        assert_eq!(
            Image::named("trixie").unwrap().with_packages(&[]).digest,
            digest
        );
    }
}
