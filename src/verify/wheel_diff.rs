//! What differs between two wheels, entry by entry: the archive (timestamps, order, permissions,
//! compression, extra fields) or the content (entries added, removed, changed, with a unified
//! diff for text and the first differing offset for binaries). Also a stabilized hash: the
//! wheel's meaning without what carries none.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One entry of a wheel as read from its zip: hashed in full, its bytes left in the file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// Position in the zip's central directory, to read the entry again.
    pub index: usize,
    /// Bytes the entry decompresses to (counted, not as declared).
    pub size: u64,
    pub sha256: [u8; 32],
    /// DOS date and time as stored.
    pub modified: Option<(u16, u8, u8, u8, u8, u8)>,
    pub mode: Option<u32>,
    pub compression: String,
    pub extra_len: usize,
}

#[derive(Debug)]
pub struct Wheel {
    pub path: PathBuf,
    pub sha256: String,
    pub entries: Vec<Entry>,
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
    pub fn read(path: &Path) -> Result<Self, WheelError> {
        let fail = |message: String| WheelError {
            path: path.display().to_string(),
            message,
        };
        let open = || std::fs::File::open(path).map_err(|e| fail(e.to_string()));
        let sha256 = crate::fsutil::sha256_reader(open()?).map_err(|e| fail(e.to_string()))?;
        let mut zip = zip::ZipArchive::new(open()?).map_err(|e| fail(e.to_string()))?;
        let mut entries = Vec::with_capacity(zip.len());
        let mut buf = vec![0u8; CHUNK];
        for index in 0..zip.len() {
            let mut file = zip.by_index(index).map_err(|e| fail(e.to_string()))?;
            let name = file.name().map_err(|e| fail(e.to_string()))?.into_owned();
            let modified = file.last_modified().map(|d| {
                (
                    d.year(),
                    d.month(),
                    d.day(),
                    d.hour(),
                    d.minute(),
                    d.second(),
                )
            });
            let mode = file.unix_mode();
            let compression = format!("{:?}", file.compression());
            let extra_len = file.extra_data().map(|e| e.len()).unwrap_or(0);
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| fail(format!("{name}: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            entries.push(Entry {
                name,
                index,
                size,
                sha256: hasher.finalize().into(),
                modified,
                mode,
                compression,
                extra_len,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            sha256,
            entries,
        })
    }

    /// The first `max` bytes of an entry, read again from the file.
    pub fn entry_head(&self, entry: &Entry, max: u64) -> std::io::Result<Vec<u8>> {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&self.path)?)
            .map_err(std::io::Error::other)?;
        let file = zip.by_index(entry.index).map_err(std::io::Error::other)?;
        let mut data = Vec::new();
        file.take(max).read_to_end(&mut data)?;
        Ok(data)
    }

    /// A hash of what the wheel means: entries sorted by name, their content, and whether they
    /// are executable; RECORD left out, since it only restates the other entries.
    pub fn stabilized_sha256(&self) -> String {
        let mut entries: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !e.name.ends_with(".dist-info/RECORD"))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut hasher = Sha256::new();
        for e in entries {
            let exec = e.mode.is_some_and(|m| m & 0o111 != 0);
            hasher.update(e.name.as_bytes());
            hasher.update([0, exec as u8]);
            hasher.update(e.sha256);
        }
        hex::encode(hasher.finalize())
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
    },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveAspect {
    EntryTimestamps,
    EntryOrder,
    Permissions,
    Compression,
    ExtraFields,
}

impl ArchiveAspect {
    pub fn describe(self) -> &'static str {
        match self {
            ArchiveAspect::EntryTimestamps => "entry timestamps",
            ArchiveAspect::EntryOrder => "entry order",
            ArchiveAspect::Permissions => "permissions",
            ArchiveAspect::Compression => "compression",
            ArchiveAspect::ExtraFields => "zip extra fields",
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

pub fn compare(a: &Wheel, b: &Wheel) -> Verdict {
    if a.sha256 == b.sha256 {
        return Verdict::Identical;
    }
    let by_name = |w: &Wheel| -> BTreeMap<String, usize> {
        w.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect()
    };
    let (ia, ib) = (by_name(a), by_name(b));
    let added: Vec<String> = ib
        .keys()
        .filter(|n| !ia.contains_key(*n))
        .cloned()
        .collect();
    let removed: Vec<String> = ia
        .keys()
        .filter(|n| !ib.contains_key(*n))
        .cloned()
        .collect();
    let mut changed = Vec::new();
    let mut archive = std::collections::BTreeSet::new();
    let common: Vec<&String> = ia.keys().filter(|n| ib.contains_key(*n)).collect();
    for name in &common {
        let (ea, eb) = (&a.entries[ia[*name]], &b.entries[ib[*name]]);
        if ea.modified != eb.modified {
            archive.insert(ArchiveAspect::EntryTimestamps);
        }
        if ea.mode != eb.mode {
            archive.insert(ArchiveAspect::Permissions);
        }
        if ea.compression != eb.compression {
            archive.insert(ArchiveAspect::Compression);
        }
        if ea.extra_len != eb.extra_len {
            archive.insert(ArchiveAspect::ExtraFields);
        }
        if ea.sha256 != eb.sha256 {
            changed.push(describe_change(a, ea, b, eb));
        }
    }
    let order_a: Vec<&String> = a
        .entries
        .iter()
        .map(|e| &e.name)
        .filter(|n| ib.contains_key(*n))
        .collect();
    let order_b: Vec<&String> = b
        .entries
        .iter()
        .map(|e| &e.name)
        .filter(|n| ia.contains_key(*n))
        .collect();
    if order_a != order_b {
        archive.insert(ArchiveAspect::EntryOrder);
    }
    let others_changed =
        !added.is_empty() || !removed.is_empty() || changed.iter().any(|c| !is_record(&c.entry));
    for change in &mut changed {
        change.follows_other_changes = is_record(&change.entry) && others_changed;
    }
    let archive: Vec<ArchiveAspect> = archive.into_iter().collect();
    if added.is_empty() && removed.is_empty() && changed.is_empty() {
        Verdict::SameContent { archive }
    } else {
        Verdict::ContentDiffers {
            added,
            removed,
            changed,
            archive,
        }
    }
}

fn is_record(name: &str) -> bool {
    name.ends_with(".dist-info/RECORD")
}

fn describe_change(wa: &Wheel, a: &Entry, wb: &Wheel, b: &Entry) -> Change {
    let binary = |first_difference: Option<u64>| Change {
        entry: a.name.clone(),
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
                .header(&format!("a/{}", a.name), &format!("b/{}", b.name))
                .to_string();
            Change {
                entry: a.name.clone(),
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
    let open = |w: &Wheel| -> std::io::Result<zip::ZipArchive<std::fs::File>> {
        zip::ZipArchive::new(std::fs::File::open(&w.path)?).map_err(std::io::Error::other)
    };
    let (mut za, mut zb) = (open(wa)?, open(wb)?);
    let mut ra = za.by_index(a.index).map_err(std::io::Error::other)?;
    let mut rb = zb.by_index(b.index).map_err(std::io::Error::other)?;
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
        w.entries
            .iter()
            .find(|e| e.name == name)
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
