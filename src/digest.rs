//! A sha256 as rewheel names content by it: 64 lowercase hexadecimal digits, checked when made
//! or read back. Blobs, cache entries and CI inputs are files named by their hash, and CI
//! documents and store rows come from elsewhere: a value of this type is one of the 2^256
//! names, never a path, an empty string or an uppercase spelling that compares unequal.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(String);

/// How long a sha256 is spelled: 32 bytes, two digits each.
const LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("sha256 `{}` is not 64 lowercase hexadecimal digits", shown(.0))]
pub struct BadSha256(pub String);

/// A value from outside (a CI document, a store row, the command line), said in a message:
/// escaped, and cut short so a megabyte of it does not become the message.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 80;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &escaped[..at]),
        None => escaped,
    }
}

impl Sha256 {
    pub fn parse(value: &str) -> Result<Self, BadSha256> {
        let valid = value.len() == LEN
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(Self(value.to_string()))
        } else {
            Err(BadSha256(value.to_string()))
        }
    }

    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = Self::hasher();
        sha2::Digest::update(&mut hasher, bytes);
        Self::finish(hasher)
    }

    /// A hasher to stream bytes through; `finish` names what it saw.
    pub fn hasher() -> sha2::Sha256 {
        <sha2::Sha256 as sha2::Digest>::new()
    }

    pub fn finish(hasher: sha2::Sha256) -> Self {
        Self(hex::encode(sha2::Digest::finalize(hasher)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, as messages and folder names abbreviate a hash.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for Sha256 {
    type Error = BadSha256;
    fn try_from(value: String) -> Result<Self, BadSha256> {
        Self::parse(&value)
    }
}

impl From<Sha256> for String {
    fn from(sha: Sha256) -> String {
        sha.0
    }
}

impl std::str::FromStr for Sha256 {
    type Err = BadSha256;
    fn from_str(value: &str) -> Result<Self, BadSha256> {
        Self::parse(value)
    }
}

impl std::ops::Deref for Sha256 {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Sha256 {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Sha256 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for Sha256 {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for Sha256 {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Sha256 {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_sha256_is_64_lowercase_hex_digits() {
        assert_eq!(Sha256::parse(EMPTY).unwrap().as_str(), EMPTY);
        for bad in [
            "",
            "00",
            &EMPTY[1..],
            &format!("{EMPTY}0"),
            &EMPTY.to_uppercase(),
            &EMPTY.replace('e', "g"),
            &format!("../{}", &EMPTY[3..]),
            &format!("é{}", &EMPTY[2..]),
        ] {
            assert!(Sha256::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_makes_one_and_short_is_its_first_12_digits() {
        let sha = Sha256::of(b"");
        assert_eq!(sha, EMPTY);
        assert_eq!(sha.short(), &EMPTY[..12]);
        let mut hasher = Sha256::hasher();
        sha2::Digest::update(&mut hasher, b"");
        assert_eq!(Sha256::finish(hasher), sha);
    }

    #[test]
    fn it_is_a_plain_string_in_documents_and_a_bad_one_is_refused_by_value() {
        let sha = Sha256::of(b"");
        assert_eq!(serde_json::to_string(&sha).unwrap(), format!("\"{EMPTY}\""));
        let back: Sha256 = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(back, sha);
        let err = serde_json::from_str::<Sha256>("\"00\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("sha256 `00` is not 64 lowercase hexadecimal digits"),
            "{err}"
        );
        let huge = "x".repeat(1 << 20);
        let said = BadSha256(huge).to_string();
        assert!(said.len() < 200, "{said}");
    }
}
