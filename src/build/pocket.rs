//! Archive pockets a system package may come from besides the suite itself: `NAME/backports`
//! and `NAME/security`. A suite's main archive can be too old for a toolchain (bookworm's rustc
//! is 1.63, trixie's 1.85; maturin ≥ 1.10 needs 1.88), while its backports (trixie: rustc 1.97)
//! or its security pocket (bookworm: rustc-web 1.96) has a new enough one.

/// Where a package outside the suite's main archive comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pocket {
    Backports,
    Security,
}

impl Pocket {
    pub const ALL: [Pocket; 2] = [Pocket::Backports, Pocket::Security];

    fn suffix(self) -> &'static str {
        match self {
            Pocket::Backports => "backports",
            Pocket::Security => "security",
        }
    }

    /// `cargo/backports` → (`cargo`, Some(Backports)); `cargo` → (`cargo`, None).
    pub fn split(package: &str) -> (&str, Option<Pocket>) {
        for pocket in Self::ALL {
            if let Some(name) = package
                .strip_suffix(pocket.suffix())
                .and_then(|p| p.strip_suffix('/'))
            {
                return (name, Some(pocket));
            }
        }
        (package, None)
    }

    /// apt's target release for a suite, `bookworm-security`.
    pub fn release(self, codename: &str) -> String {
        format!("{codename}-{}", self.suffix())
    }

    /// The sources.list line for a suite's pocket. Debian serves security updates from a
    /// sibling of the main archive (`…/debian-security`).
    pub fn source_line(self, mirror: &str, codename: &str) -> String {
        let mirror = mirror.trim_end_matches('/');
        let archive = match self {
            Pocket::Backports => mirror.to_string(),
            Pocket::Security => format!("{mirror}-security"),
        };
        format!("deb {archive} {} main", self.release(codename))
    }
}

#[cfg(test)]
mod tests {
    use super::Pocket;

    #[test]
    fn packages_name_their_pocket() {
        assert_eq!(
            Pocket::split("cargo/backports"),
            ("cargo", Some(Pocket::Backports))
        );
        assert_eq!(
            Pocket::split("rustc-web/security"),
            ("rustc-web", Some(Pocket::Security))
        );
        assert_eq!(Pocket::split("libffi-dev"), ("libffi-dev", None));
        assert_eq!(Pocket::split("cargo/unstable"), ("cargo/unstable", None));
        assert_eq!(
            Pocket::Security.source_line("http://deb.debian.org/debian/", "bookworm"),
            "deb http://deb.debian.org/debian-security bookworm-security main"
        );
        assert_eq!(
            Pocket::Backports.source_line("http://deb.debian.org/debian", "trixie"),
            "deb http://deb.debian.org/debian trixie-backports main"
        );
    }
}
