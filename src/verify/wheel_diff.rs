//! What differs between two wheels, entry by entry: the archive (timestamps, order, permissions,
//! compression, extra fields) or the content (entries added, removed, changed, with a unified
//! diff for text and the first differing offset for binaries), and what either zip is ambiguous
//! about (duplicate names, headers that disagree, size lies). Also a stabilized hash: the
//! wheel's meaning without what carries none.

use crate::digest::Sha256;
use crate::verify::wheel_zip::{self, Anomaly, AnomalyKind, Header};
use serde::Serialize;
use sha2::Digest;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One entry of a wheel as read from its zip: hashed in full, its bytes left in the file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub header: Header,
    /// Bytes the entry decompresses to (counted, not as declared; reading stops one byte past
    /// the declared size).
    pub size: u64,
    pub sha256: [u8; 32],
}

impl Entry {
    pub fn name(&self) -> &str {
        &self.header.name
    }
}

#[derive(Debug)]
pub struct Wheel {
    pub path: PathBuf,
    /// The handle every byte of the wheel is read through, once opened.
    file: File,
    pub sha256: Sha256,
    pub entries: Vec<Entry>,
    /// The zip's comment.
    pub comment: Vec<u8>,
    /// What readers of this zip could disagree on, in the order found.
    pub anomalies: Vec<Anomaly>,
    /// Entry by name; for a name given twice, the last, which an installer writes last.
    by_name: HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: not a readable wheel: {message}")]
pub struct WheelError {
    pub path: String,
    pub message: String,
}

/// Entries up to this size on both sides get a text diff; larger ones are compared as bytes,
/// streamed. Memory stays bounded by buffers of this order, whatever the wheel holds.
pub const MAX_DIFFED: u64 = 1 << 20;
/// How much of a differing entry is searched for the values a variation set.
pub const MAX_SEARCHED: u64 = 16 << 20;
const CHUNK: usize = 1 << 16;

impl Wheel {
    /// The host system every entry's "version made by" names (0: MS-DOS, what Python's
    /// zipfile writes on Windows; 3: Unix), when they agree.
    pub fn made_on(&self) -> Option<u8> {
        let mut systems = self.entries.iter().map(|e| (e.header.made_by >> 8) as u8);
        let first = systems.next()?;
        systems.all(|s| s == first).then_some(first)
    }

    pub fn read(path: &Path) -> Result<Self, WheelError> {
        let file = File::open(path).map_err(|e| WheelError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let sha256 = crate::fsutil::sha256_reader(&file).map_err(|e| WheelError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_file(file, path, sha256)
    }

    /// Read a wheel through a handle already open, whose bytes hash to `sha256`: the zip is
    /// parsed once, each entry's data streamed once, in order.
    pub fn from_file(file: File, path: &Path, sha256: Sha256) -> Result<Self, WheelError> {
        let fail = |e: wheel_zip::ZipError| WheelError {
            path: path.display().to_string(),
            message: e.0,
        };
        let archive = wheel_zip::read(&file).map_err(fail)?;
        let mut anomalies = archive.anomalies;
        let mut entries = Vec::with_capacity(archive.headers.len());
        let mut buf = vec![0u8; CHUNK];
        for header in archive.headers {
            let mut hasher = Sha256::hasher();
            let (size, found) =
                wheel_zip::verify_entry(&file, &header, &mut buf, |chunk| hasher.update(chunk))
                    .map_err(fail)?;
            anomalies.extend(found);
            entries.push(Entry {
                header,
                size,
                sha256: hasher.finalize().into(),
            });
        }
        let by_name: HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name().to_string(), i))
            .collect();
        say_which_duplicates_differ(&mut anomalies, &entries);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            sha256,
            entries,
            comment: archive.comment,
            anomalies,
            by_name,
        })
    }

    /// The entry an installer ends up with under this name.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// An entry's data, as far as it was counted, read again through the wheel's handle.
    fn entry_data<'a>(&'a self, entry: &Entry) -> std::io::Result<Box<dyn Read + 'a>> {
        wheel_zip::entry_reader(&self.file, &entry.header, entry.size)
            .map_err(std::io::Error::other)
    }

    /// The first `max` bytes of an entry, read again through the wheel's handle.
    pub fn entry_head(&self, entry: &Entry, max: u64) -> std::io::Result<Vec<u8>> {
        let reader = wheel_zip::entry_reader(&self.file, &entry.header, max)
            .map_err(std::io::Error::other)?;
        let mut data = Vec::new();
        reader.take(max).read_to_end(&mut data)?;
        Ok(data)
    }

    /// A hash of what the wheel means: entries sorted by name, their content, and whether they
    /// are executable; RECORD left out, since it only restates the other entries. What the zip
    /// is ambiguous about is part of it: such a wheel means what each reader makes of it.
    pub fn stabilized_sha256(&self) -> Sha256 {
        let mut entries: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !is_record(e.name()))
            .collect();
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        let mut hasher = Sha256::hasher();
        for e in entries {
            let exec = e.header.mode() & 0o111 != 0;
            hasher.update(e.name().as_bytes());
            hasher.update([0, exec as u8]);
            hasher.update(e.sha256);
        }
        for a in &self.anomalies {
            hasher.update([1]);
            hasher.update(a.entry.as_bytes());
            hasher.update([0]);
            hasher.update(a.reason.as_bytes());
        }
        Sha256::finish(hasher)
    }
}

/// A duplicate name hides content when its entries differ: say so, and where.
fn say_which_duplicates_differ(anomalies: &mut [Anomaly], entries: &[Entry]) {
    let mut duplicated: HashMap<&str, Vec<&Entry>> = anomalies
        .iter()
        .filter(|a| a.kind == AnomalyKind::DuplicateName)
        .map(|a| (a.entry.as_str(), Vec::new()))
        .collect();
    if duplicated.is_empty() {
        return;
    }
    for e in entries {
        if let Some(list) = duplicated.get_mut(e.name()) {
            list.push(e);
        }
    }
    let notes: HashMap<String, String> = duplicated
        .into_iter()
        .map(|(name, list)| {
            let contents: std::collections::BTreeSet<[u8; 32]> =
                list.iter().map(|e| e.sha256).collect();
            let at: Vec<String> = list.iter().map(|e| e.header.index.to_string()).collect();
            let note = if contents.len() > 1 {
                format!(
                    "; their contents differ ({} versions, at positions {})",
                    contents.len(),
                    at.join(", ")
                )
            } else {
                format!(
                    "; their contents are the same (positions {})",
                    at.join(", ")
                )
            };
            (name.to_string(), note)
        })
        .collect();
    for a in anomalies
        .iter_mut()
        .filter(|a| a.kind == AnomalyKind::DuplicateName)
    {
        if let Some(note) = notes.get(&a.entry) {
            a.reason.push_str(note);
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Identical,
    /// Same entries with the same bytes; only the archive differs.
    SameContent {
        archive: Vec<ArchiveAspect>,
    },
    ContentDiffers {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<Change>,
        archive: Vec<ArchiveAspect>,
        /// What either zip is ambiguous about: its content is then not one thing, so such a
        /// pair never has the same content.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        anomalies: Vec<SideAnomaly>,
    },
}

impl Verdict {
    /// How the two archives differ beyond their entries' bytes (none when identical).
    pub fn archive(&self) -> &[ArchiveAspect] {
        match self {
            Verdict::Identical => &[],
            Verdict::SameContent { archive } | Verdict::ContentDiffers { archive, .. } => archive,
        }
    }
}

/// An anomaly of one side's zip.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SideAnomaly {
    /// `a` or `b`.
    pub side: &'static str,
    pub kind: AnomalyKind,
    pub entry: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveAspect {
    EntryTimestamps,
    EntryOrder,
    Permissions,
    Compression,
    ExtraFields,
    Comments,
    HeaderFields,
    /// Bytes no entry, header field or comment accounts for: padding, gaps, trailing bytes.
    ZipLayout,
}

impl ArchiveAspect {
    pub fn describe(self) -> &'static str {
        match self {
            ArchiveAspect::EntryTimestamps => "entry timestamps",
            ArchiveAspect::EntryOrder => "entry order",
            ArchiveAspect::Permissions => "permissions",
            ArchiveAspect::Compression => "compression",
            ArchiveAspect::ExtraFields => "zip extra fields",
            ArchiveAspect::Comments => "zip comments",
            ArchiveAspect::HeaderFields => "zip header fields (versions, flags, attributes)",
            ArchiveAspect::ZipLayout => {
                "zip layout (bytes between or around the entries, compressed streams)"
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub entry: String,
    /// A unified diff for text entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// For binary entries: the sizes and where they first differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<u64>,
    /// True when only RECORD changed because other entries did.
    pub follows_other_changes: bool,
}

/// Each name of a wheel once, sorted.
fn names(w: &Wheel) -> Vec<&str> {
    let mut names: Vec<&str> = w.by_name.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// How two entries of one name differ as archive members, not as content.
fn archive_aspects(a: &Header, b: &Header, found: &mut std::collections::BTreeSet<ArchiveAspect>) {
    if (a.dos_date, a.dos_time) != (b.dos_date, b.dos_time) {
        found.insert(ArchiveAspect::EntryTimestamps);
    }
    if a.mode() != b.mode() {
        found.insert(ArchiveAspect::Permissions);
    }
    if a.method != b.method {
        found.insert(ArchiveAspect::Compression);
    }
    if a.extra_len != b.extra_len {
        found.insert(ArchiveAspect::ExtraFields);
    }
    if a.comment != b.comment {
        found.insert(ArchiveAspect::Comments);
    }
    let fields = |h: &Header| {
        (
            h.made_by,
            h.needed,
            h.flags,
            h.internal_attr,
            h.external_attr & 0xffff,
        )
    };
    if fields(a) != fields(b) {
        found.insert(ArchiveAspect::HeaderFields);
    }
}

pub fn compare(a: &Wheel, b: &Wheel) -> Verdict {
    if a.sha256 == b.sha256 {
        return Verdict::Identical;
    }
    let (na, nb) = (names(a), names(b));
    let added: Vec<String> = nb
        .iter()
        .filter(|n| a.entry(n).is_none())
        .map(|n| n.to_string())
        .collect();
    let removed: Vec<String> = na
        .iter()
        .filter(|n| b.entry(n).is_none())
        .map(|n| n.to_string())
        .collect();
    let mut changed = Vec::new();
    let mut archive = std::collections::BTreeSet::new();
    for name in &na {
        let (Some(ea), Some(eb)) = (a.entry(name), b.entry(name)) else {
            continue;
        };
        archive_aspects(&ea.header, &eb.header, &mut archive);
        if ea.sha256 != eb.sha256 {
            changed.push(describe_change(a, ea, b, eb));
        }
    }
    // A name given twice has no one place: its anomaly says so, not an order difference.
    let unique = |w: &Wheel| w.by_name.len() == w.entries.len();
    if unique(a) && unique(b) && order_among(a, b) != order_among(b, a) {
        archive.insert(ArchiveAspect::EntryOrder);
    }
    if a.comment != b.comment {
        archive.insert(ArchiveAspect::Comments);
    }
    let anomalies: Vec<SideAnomaly> = [("a", a), ("b", b)]
        .into_iter()
        .flat_map(|(side, w)| {
            w.anomalies.iter().map(move |x| SideAnomaly {
                side,
                kind: x.kind,
                entry: x.entry.clone(),
                reason: x.reason.clone(),
            })
        })
        .collect();
    let others_changed =
        !added.is_empty() || !removed.is_empty() || changed.iter().any(|c| !is_record(&c.entry));
    for change in &mut changed {
        change.follows_other_changes = is_record(&change.entry) && others_changed;
    }
    // The hashes differ, so something does: what no aspect above names is the zip's layout.
    if archive.is_empty() && added.is_empty() && removed.is_empty() && changed.is_empty() {
        archive.insert(ArchiveAspect::ZipLayout);
    }
    let archive: Vec<ArchiveAspect> = archive.into_iter().collect();
    if added.is_empty() && removed.is_empty() && changed.is_empty() && anomalies.is_empty() {
        Verdict::SameContent { archive }
    } else {
        Verdict::ContentDiffers {
            added,
            removed,
            changed,
            archive,
            anomalies,
        }
    }
}

/// The order of `w`'s entries that `other` has too.
fn order_among<'a>(w: &'a Wheel, other: &Wheel) -> Vec<&'a str> {
    w.entries
        .iter()
        .map(Entry::name)
        .filter(|n| other.entry(n).is_some())
        .collect()
}

fn is_record(name: &str) -> bool {
    name.ends_with(".dist-info/RECORD")
}

fn describe_change(wa: &Wheel, a: &Entry, wb: &Wheel, b: &Entry) -> Change {
    let binary = |first_difference: Option<u64>| Change {
        entry: a.name().to_string(),
        diff: None,
        sizes: Some((a.size, b.size)),
        first_difference,
        follows_other_changes: false,
    };
    if a.size > MAX_DIFFED || b.size > MAX_DIFFED {
        return binary(first_difference(wa, a, wb, b).ok());
    }
    let (Ok(da), Ok(db)) = (wa.entry_head(a, MAX_DIFFED), wb.entry_head(b, MAX_DIFFED)) else {
        return binary(None);
    };
    let text = |d: &[u8]| {
        std::str::from_utf8(d)
            .ok()
            .filter(|t| !t.contains('\0'))
            .map(str::to_string)
    };
    match (text(&da), text(&db)) {
        (Some(ta), Some(tb)) => {
            let diff = similar::TextDiff::from_lines(&ta, &tb)
                .unified_diff()
                .context_radius(2)
                .header(&format!("a/{}", a.name()), &format!("b/{}", b.name()))
                .to_string();
            Change {
                entry: a.name().to_string(),
                diff: Some(diff),
                sizes: None,
                first_difference: None,
                follows_other_changes: false,
            }
        }
        _ => binary(Some(
            da.iter()
                .zip(&db)
                .position(|(x, y)| x != y)
                .unwrap_or(da.len().min(db.len())) as u64,
        )),
    }
}

/// Where two entries first differ, both streamed side by side: memory is two buffers.
fn first_difference(wa: &Wheel, a: &Entry, wb: &Wheel, b: &Entry) -> std::io::Result<u64> {
    let (mut ra, mut rb) = (wa.entry_data(a)?, wb.entry_data(b)?);
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut ra, &mut ba)?;
        let nb = read_full(&mut rb, &mut bb)?;
        let n = na.min(nb);
        if let Some(at) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(offset + at as u64);
        }
        if na != nb || n == 0 {
            return Ok(offset + n as u64);
        }
        offset += n as u64;
    }
}

/// Fill `buf` as far as the reader goes.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The first bytes of an entry on each side, for attribution.
pub fn entry_pair(a: &Wheel, b: &Wheel, name: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let find = |w: &Wheel| {
        w.entry(name)
            .and_then(|e| w.entry_head(e, MAX_SEARCHED).ok())
    };
    (find(a), find(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// (entry name, text, unix mode, (year, month, day))
    type Spec<'a> = (&'a str, &'a str, u32, (u16, u8, u8));

    fn wheel(dir: &Path, name: &str, entries: &[Spec]) -> Wheel {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (entry, text, mode, (y, m, d)) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .unix_permissions(*mode)
                .last_modified_time(
                    zip::DateTime::from_date_and_time(*y, *m, *d, 0, 0, 0).unwrap(),
                );
            zip.start_file(*entry, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        Wheel::read(&path).unwrap()
    }

    #[test]
    fn archive_only_differences_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel(
            dir.path(),
            "a.whl",
            &[
                ("x.py", "1", 0o644, (2020, 1, 1)),
                ("y.py", "2", 0o644, (2020, 1, 1)),
            ],
        );
        let b = wheel(
            dir.path(),
            "b.whl",
            &[
                ("y.py", "2", 0o664, (2021, 1, 1)),
                ("x.py", "1", 0o644, (2020, 1, 1)),
            ],
        );
        assert_eq!(
            compare(&a, &b),
            Verdict::SameContent {
                archive: vec![
                    ArchiveAspect::EntryTimestamps,
                    ArchiveAspect::EntryOrder,
                    ArchiveAspect::Permissions
                ]
            }
        );
        assert_eq!(a.stabilized_sha256(), b.stabilized_sha256());
        assert_eq!(compare(&a, &a), Verdict::Identical);
    }

    #[test]
    fn content_changes_get_a_diff_and_record_follows() {
        let dir = tempfile::tempdir().unwrap();
        let day = (2020, 1, 1);
        let a = wheel(
            dir.path(),
            "a.whl",
            &[
                ("p/v.py", "path = '/build/a'\n", 0o644, day),
                ("p-1.dist-info/RECORD", "p/v.py,sha256=a,1\n", 0o644, day),
            ],
        );
        let b = wheel(
            dir.path(),
            "b.whl",
            &[
                ("p/v.py", "path = '/build/b'\n", 0o644, day),
                ("p-1.dist-info/RECORD", "p/v.py,sha256=b,1\n", 0o644, day),
                ("new.py", "", 0o644, day),
            ],
        );
        let Verdict::ContentDiffers { added, changed, .. } = compare(&a, &b) else {
            panic!()
        };
        assert_eq!(added, ["new.py"]);
        assert_eq!(changed.len(), 2);
        let v = changed.iter().find(|c| c.entry == "p/v.py").unwrap();
        assert!(
            v.diff
                .as_ref()
                .unwrap()
                .contains("-path = '/build/a'\n+path = '/build/b'"),
            "{:?}",
            v.diff
        );
        assert!(
            changed
                .iter()
                .find(|c| c.entry.ends_with("RECORD"))
                .unwrap()
                .follows_other_changes
        );
        assert_ne!(a.stabilized_sha256(), b.stabilized_sha256());
    }

    /// A stored entry of `len` zeros with one byte changed at `at`: the difference is found
    /// however deep it lies, reading in chunks.
    fn zeros(dir: &Path, name: &str, len: usize, at: Option<usize>) -> Wheel {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("big.bin", options).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0;
        while written < len {
            let n = chunk.len().min(len - written);
            let mut part = chunk[..n].to_vec();
            if let Some(at) = at
                && (written..written + n).contains(&at)
            {
                part[at - written] = 1;
            }
            zip.write_all(&part).unwrap();
            written += n;
        }
        zip.finish().unwrap();
        Wheel::read(&path).unwrap()
    }

    #[test]
    fn a_difference_past_64_mib_is_found_and_placed() {
        let dir = tempfile::tempdir().unwrap();
        let len = 80 << 20;
        let a = zeros(dir.path(), "a.whl", len, None);
        let b = zeros(dir.path(), "b.whl", len, Some(73_400_320));
        let Verdict::ContentDiffers { changed, .. } = compare(&a, &b) else {
            panic!("a difference at byte 73,400,320 must be seen")
        };
        assert_eq!(changed[0].first_difference, Some(73_400_320));
        assert_eq!(changed[0].sizes, Some((len as u64, len as u64)));
    }
}
