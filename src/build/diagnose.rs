//! The likely cause of a failed build, read from its log, as one line with the setting that
//! fixes it: a packager meets these failures first, and the log's last lines rarely say which
//! Debian package is missing.

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What a log says went wrong, most telling first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A compiler or build tool the image does not carry (`x86_64-linux-gnu-g++: not found`).
    Tool { tool: String },
    /// `fatal error: ffi.h: No such file or directory`: a header, and the package that ships
    /// it when the suite's Contents index says.
    Header {
        header: String,
        package: Option<String>,
    },
    /// pkg-config was asked for a library it does not know (`Package libxml-2.0 was not found`).
    PkgConfig {
        library: String,
        package: Option<String>,
    },
    /// A Rust build with no cargo, whose helper tried to download a toolchain.
    RustDownload,
    /// The build tried the network, which a job does not have.
    Network,
}

/// The log's lines that name a cause, first match wins in this order: a missing header says
/// more than the compiler's exit that follows it.
pub fn scan(log: &str) -> Option<Cause> {
    let lines: Vec<&str> = log.lines().collect();
    let find = |f: &dyn Fn(&str) -> Option<Cause>| lines.iter().find_map(|l| f(l));
    find(&header)
        .or_else(|| find(&pkg_config))
        .or_else(|| find(&rust_download))
        .or_else(|| find(&tool))
        .or_else(|| find(&network))
}

fn header(line: &str) -> Option<Cause> {
    // gcc: `x.c:1:10: fatal error: ffi.h: No such file or directory`
    let (_, rest) = line.split_once("fatal error: ")?;
    let (name, tail) = rest.split_once(": No such file or directory")?;
    let name = name
        .trim()
        .trim_matches(|c| c == '\'' || c == '"' || c == '<' || c == '>');
    let _ = tail;
    (!name.is_empty() && !name.contains(' ')).then(|| Cause::Header {
        header: name.to_string(),
        package: None,
    })
}

fn pkg_config(line: &str) -> Option<Cause> {
    // pkg-config: `Package libxml-2.0 was not found in the pkg-config search path.`
    // meson: `Run-time dependency libffi found: NO (tried pkgconfig)`
    if let Some(rest) = line.split_once("Package ").map(|(_, r)| r)
        && let Some((name, _)) = rest.split_once(" was not found in the pkg-config search path")
    {
        return Some(Cause::PkgConfig {
            library: name.trim_matches(|c| c == '\'' || c == '"').to_string(),
            package: None,
        });
    }
    // Rust's pkg-config crate: `The system library `libpq` required by crate `pq-sys` was
    // not found.`
    if let Some(rest) = line.split_once("The system library `").map(|(_, r)| r)
        && let Some((name, tail)) = rest.split_once('`')
        && tail.contains("was not found")
    {
        return Some(Cause::PkgConfig {
            library: name.to_string(),
            package: None,
        });
    }
    // openssl-sys looks through pkg-config for openssl.pc, then gives up with this.
    if line.contains("Could not find directory of OpenSSL installation") {
        return Some(Cause::PkgConfig {
            library: "openssl".into(),
            package: None,
        });
    }
    let rest = line.split_once("Run-time dependency ")?.1;
    let (name, found) = rest.split_once(" found: ")?;
    found.starts_with("NO").then(|| Cause::PkgConfig {
        library: name.to_string(),
        package: None,
    })
}

fn rust_download(line: &str) -> Option<Cause> {
    (line.contains("Rust not found, installing into a temporary directory")
        || line.contains("can't find Rust compiler")
        || line.contains("cargo: not found")
        || line.contains("No such file or directory: 'cargo'"))
    .then_some(Cause::RustDownload)
}

fn tool(line: &str) -> Option<Cause> {
    // dash: `sh: 1: x86_64-linux-gnu-g++: not found`
    if let Some(rest) = line.strip_suffix(": not found") {
        let name = rest.rsplit(": ").next()?.trim();
        if is_build_tool(name) {
            return Some(Cause::Tool { tool: name.into() });
        }
    }
    // setuptools: `error: command 'gcc' failed: No such file or directory`
    if let Some(rest) = line.split_once("error: command '").map(|(_, r)| r)
        && let Some((cmd, tail)) = rest.split_once('\'')
        && tail.contains("No such file or directory")
    {
        let name = cmd.rsplit('/').next().unwrap_or(cmd);
        return Some(Cause::Tool { tool: name.into() });
    }
    // `unable to execute 'x86_64-linux-gnu-gcc': No such file or directory`
    let rest = line.split_once("unable to execute '")?.1;
    let (cmd, tail) = rest.split_once('\'')?;
    tail.contains("No such file or directory")
        .then(|| Cause::Tool {
            tool: cmd.rsplit('/').next().unwrap_or(cmd).into(),
        })
}

fn is_build_tool(name: &str) -> bool {
    let base = name.rsplit('-').next().unwrap_or(name);
    matches!(
        base,
        "gcc" | "g++" | "cc" | "c++" | "make" | "pkg-config" | "cmake" | "ninja" | "gfortran"
    ) || matches!(name, "cargo" | "rustc")
}

fn network(line: &str) -> Option<Cause> {
    [
        "Temporary failure in name resolution",
        "Name or service not known",
        "Network is unreachable",
        "Could not resolve host",
        "failed to lookup address information",
    ]
    .iter()
    .any(|n| line.contains(n))
    .then_some(Cause::Network)
}

/// The Debian package that carries a compiler or tool, as Debian names it.
fn tool_package(tool: &str) -> &'static str {
    let base = tool.rsplit('-').next().unwrap_or(tool);
    match (tool, base) {
        ("cargo" | "rustc", _) => "cargo",
        (_, "g++" | "c++") => "g++",
        (_, "gfortran") => "gfortran",
        (_, "make") => "make",
        (_, "pkg-config") => "pkg-config",
        (_, "cmake") => "cmake",
        (_, "ninja") => "ninja-build",
        _ => "gcc",
    }
}

impl Cause {
    /// One line for the summary: what is missing and the setting that adds it.
    pub fn hint(&self, package: &str) -> String {
        let add = |debian: &str| {
            format!("add `[packages.{package}] system = [\"{debian}\"]` to the settings file")
        };
        match self {
            Cause::Tool { tool } => {
                format!("{tool} is not in the image: {}", add(tool_package(tool)))
            }
            Cause::Header {
                header,
                package: Some(debian),
            } => format!(
                "the header {header} is missing; {debian} ships it: {}",
                add(debian)
            ),
            Cause::Header {
                header,
                package: None,
            } => format!(
                "the header {header} is missing: add the Debian package that ships it (`apt-file search {header}`) as `[packages.{package}] system = [...]`"
            ),
            Cause::PkgConfig {
                library,
                package: Some(debian),
            } => format!(
                "pkg-config does not know {library}; {debian} ships {library}.pc: {}",
                add(debian)
            ),
            Cause::PkgConfig {
                library,
                package: None,
            } => format!(
                "pkg-config does not know {library}: add the -dev package that ships {library}.pc (`apt-file search {library}.pc`) as `[packages.{package}] system = [...]`"
            ),
            Cause::RustDownload => format!(
                "the build looked for Rust and tried to download it: {}",
                add("cargo")
            ),
            Cause::Network => format!(
                "the build tried the network, which a job does not have: add what it fetched as a build requirement (`[packages.{package}] build-requires`) or a system package"
            ),
        }
    }
}

/// The log's text, capped: the causes are near the end, and a log can be huge.
pub fn read_log(path: &Path) -> Option<String> {
    const CAP: u64 = 4 << 20;
    let len = std::fs::metadata(path).ok()?.len();
    let mut file = std::fs::File::open(path).ok()?;
    if len > CAP {
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(len - CAP)).ok()?;
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A suite's Contents index (`dists/SUITE/main/Contents-amd64.gz`), as apt-file reads it:
/// which package ships which path.
pub struct Contents {
    path: PathBuf,
}

impl Contents {
    /// The index kept in the cache for `suite`, fetched from `mirror` once when `fetch` allows.
    pub fn open(cache_dir: &Path, mirror: &str, suite: &str, fetch: bool) -> Option<Self> {
        let dir = cache_dir.join("contents-v1");
        let path = dir.join(format!("{suite}-amd64.gz"));
        if !path.exists() {
            if !fetch {
                return None;
            }
            std::fs::create_dir_all(&dir).ok()?;
            let url = format!("{mirror}/dists/{suite}/main/Contents-amd64.gz");
            let got = crate::http::Http::new(2)
                .download(&url, &dir, crate::http::Cap::download())
                .map_err(|e| tracing::warn!("{url}: {e}"))
                .ok()?;
            got.file.persist(&path).ok()?;
        }
        Some(Self { path })
    }

    /// A Contents index at `path` (tests, mirrors).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The package that ships `header` under `/usr/include`, preferring the plain path over a
    /// multiarch or nested one, as a compiler's search order does.
    pub fn header_package(&self, header: &str) -> Option<String> {
        let exact = format!("usr/include/{header}");
        let suffix = format!("/{header}");
        self.best(|path| {
            if path == exact {
                Some(0)
            } else if path.starts_with("usr/include/x86_64-linux-gnu/")
                && path.ends_with(&suffix)
                && path.matches('/').count() == header.matches('/').count() + 3
            {
                Some(1)
            } else if path.starts_with("usr/include/") && path.ends_with(&suffix) {
                Some(2)
            } else {
                None
            }
        })
    }

    /// The package that ships pkg-config's `LIBRARY.pc`, in the multiarch folder first.
    pub fn pc_package(&self, library: &str) -> Option<String> {
        let suffix = format!("/pkgconfig/{library}.pc");
        self.best(|path| {
            if !path.ends_with(&suffix) {
                None
            } else if path.starts_with("usr/lib/x86_64-linux-gnu/") {
                Some(0)
            } else {
                Some(1)
            }
        })
    }

    /// The first package of the best-ranked path (0 is best; `None` is no match).
    fn best(&self, rank: impl Fn(&str) -> Option<u8>) -> Option<String> {
        let file = std::fs::File::open(&self.path).ok()?;
        let reader = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file));
        let mut best: Option<(u8, String)> = None;
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let Some((path, packages)) = line.rsplit_once(char::is_whitespace) else {
                continue;
            };
            let Some(rank) = rank(path.trim_end()) else {
                continue;
            };
            let package = packages
                .split(',')
                .next()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or_default()
                .to_string();
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, package));
                if rank == 0 {
                    break;
                }
            }
        }
        best.map(|(_, p)| p)
    }
}

/// Where a cell's jobs run: the Debian suite (and its archive) whose packages a hint names.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub mirror: String,
}

impl Suite {
    /// A cell's image suite, or for a cell built on this host (no image), the host's own.
    pub fn of(cell: &crate::cell::Cell) -> Option<Self> {
        // A supplied image's distribution is the user's: no Debian suite to look in.
        if cell.supplied_image.is_some() {
            return None;
        }
        match &cell.image {
            Some(image) => {
                let recipe = crate::build::images::Image::named(image).ok()?.recipe;
                Some(Self {
                    name: recipe.suite,
                    mirror: recipe.mirror,
                })
            }
            None => {
                let release = std::fs::read_to_string("/etc/os-release").ok()?;
                let name = release
                    .lines()
                    .find_map(|l| l.strip_prefix("VERSION_CODENAME="))?
                    .trim_matches('"')
                    .to_string();
                (release.contains("ID=debian") && !name.is_empty()).then(|| Self {
                    name,
                    mirror: crate::build::images::DEFAULT_MIRROR.into(),
                })
            }
        }
    }
}

/// Give each failed job of `summary` the likely cause its log names. A missing header is
/// looked up in the cell's suite's Contents index, fetched into `cache_dir` unless `offline`.
pub fn annotate(
    summary: &mut crate::build::executor::Summary,
    cells: &[crate::cell::Cell],
    cache_dir: &Path,
    offline: bool,
) {
    for outcome in summary.outcomes.iter_mut().filter(|o| o.result.is_err()) {
        let log = outcome
            .log
            .as_deref()
            .and_then(read_log)
            .unwrap_or_else(|| outcome.log_tail.join("\n"));
        let Some(mut cause) = scan(&log) else {
            continue;
        };
        let contents = || {
            let suite = cells
                .iter()
                .find(|c| c.id == outcome.cell)
                .and_then(Suite::of)?;
            Contents::open(cache_dir, &suite.mirror, &suite.name, !offline)
        };
        match &mut cause {
            Cause::Header { header, package } => {
                *package = contents().and_then(|c| c.header_package(header));
            }
            Cause::PkgConfig { library, package } => {
                *package = contents().and_then(|c| c.pc_package(library));
            }
            _ => {}
        }
        let name = outcome.label.split_whitespace().next().unwrap_or_default();
        outcome.hint = Some(cause.hint(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cxx_compiler_is_named_with_its_package() {
        let log = "building 'frozenlist._frozenlist' extension\nsh: 1: x86_64-linux-gnu-g++: not found\nerror: command '/usr/bin/x86_64-linux-gnu-g++' failed with exit code 127\n";
        let cause = scan(log).unwrap();
        assert_eq!(
            cause,
            Cause::Tool {
                tool: "x86_64-linux-gnu-g++".into()
            }
        );
        assert!(
            cause
                .hint("frozenlist")
                .contains("`[packages.frozenlist] system = [\"g++\"]`")
        );
    }

    #[test]
    fn a_compiler_setuptools_could_not_start_is_named() {
        let log = "error: command 'gcc' failed: No such file or directory\n";
        assert_eq!(scan(log), Some(Cause::Tool { tool: "gcc".into() }));
        let log = "unable to execute 'x86_64-linux-gnu-gcc': No such file or directory\n";
        assert!(scan(log).unwrap().hint("x").contains("[\"gcc\"]"));
    }

    #[test]
    fn a_missing_header_wins_over_the_compiler_s_exit() {
        let log = "c/_cffi_backend.c:15:10: fatal error: ffi.h: No such file or directory\n   15 | #include <ffi.h>\ncompilation terminated.\nerror: command '/usr/bin/x86_64-linux-gnu-gcc' failed with exit code 1\n";
        assert_eq!(
            scan(log),
            Some(Cause::Header {
                header: "ffi.h".into(),
                package: None
            })
        );
        let log = "src/lxml/includes/etree_defs.h:14:10: fatal error: libxml/xmlversion.h: No such file or directory\n";
        assert!(
            matches!(scan(log), Some(Cause::Header { header, .. }) if header == "libxml/xmlversion.h")
        );
    }

    #[test]
    fn pkg_config_naming_a_library_is_read() {
        let log = "Package libffi was not found in the pkg-config search path.\nPerhaps you should add the directory containing `libffi.pc'\n";
        assert_eq!(
            scan(log),
            Some(Cause::PkgConfig {
                library: "libffi".into(),
                package: None
            })
        );
        let log = "Run-time dependency yaml-0.1 found: NO (tried pkgconfig and cmake)\n";
        assert!(scan(log).unwrap().hint("pyyaml").contains("yaml-0.1.pc"));
    }

    #[test]
    fn rust_sys_crates_name_the_library_pkg_config_did_not_find() {
        // openssl-sys, as cryptography 50.0.2 failed in trixie with no settings file.
        let log = "warning: openssl-sys@0.9.117: Could not find directory of OpenSSL installation, and this `-sys` crate cannot proceed\n";
        assert_eq!(
            scan(log),
            Some(Cause::PkgConfig {
                library: "openssl".into(),
                package: None
            })
        );
        let log = "  The system library `libpq` required by crate `pq-sys` was not found.\n";
        assert_eq!(
            scan(log),
            Some(Cause::PkgConfig {
                library: "libpq".into(),
                package: None
            })
        );
    }

    #[test]
    fn a_rust_download_and_the_network_are_told_apart() {
        let log = "Rust not found, installing into a temporary directory\nhttpx.ConnectError: [Errno -3] Temporary failure in name resolution\n";
        assert_eq!(scan(log), Some(Cause::RustDownload));
        assert!(scan(log).unwrap().hint("x").contains("[\"cargo\"]"));
        let log = "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>\n";
        assert_eq!(scan(log), Some(Cause::Network));
        assert_eq!(scan("error: something else\n"), None);
    }

    #[test]
    fn the_contents_index_maps_a_header_to_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Contents-amd64.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(
            &mut gz,
            b"usr/include/ffi.h-not                                 libdevel/other\n\
              usr/include/x86_64-linux-gnu/ffi.h                    libdevel/libffi-dev\n\
              usr/include/libxml2/libxml/xmlversion.h               libdevel/libxml2-dev\n\
              usr/include/yaml.h                                    libdevel/libyaml-dev,libdevel/x\n\
              usr/lib/x86_64-linux-gnu/pkgconfig/libxml-2.0.pc      libdevel/libxml2-dev\n",
        )
        .unwrap();
        gz.finish().unwrap();
        let contents = Contents::at(path);
        assert_eq!(
            contents.header_package("ffi.h").as_deref(),
            Some("libffi-dev")
        );
        assert_eq!(
            contents.header_package("libxml/xmlversion.h").as_deref(),
            Some("libxml2-dev")
        );
        assert_eq!(
            contents.header_package("yaml.h").as_deref(),
            Some("libyaml-dev")
        );
        assert_eq!(contents.header_package("nope.h"), None);
        assert_eq!(
            contents.pc_package("libxml-2.0").as_deref(),
            Some("libxml2-dev")
        );
    }
}
