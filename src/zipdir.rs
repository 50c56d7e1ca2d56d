//! A zip's central directory as it is written, entry by entry, read strictly. Zip readers (the
//! zip crate included) keep one entry per name and each resolves ambiguous layouts its own
//! way, so an archive can show one file list to rewheel and another to pip or `installer`: a
//! name written twice, an end record that counts fewer records than the directory holds, a
//! directory offset that points at a decoy while the real one lies elsewhere, local headers
//! naming other files than the directory, a second name in an extra field, entries sharing
//! their bytes (a bomb). Each of these is refused here, so that every reader sees one list.

/// Most entries a directory may declare: far above any wheel (the largest seen hold tens of
/// thousands), far below what would make the names' memory matter.
pub const MAX_ENTRIES: u64 = 1 << 21;

fn slice(b: &[u8], at: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(at).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

fn u16_at(b: &[u8], at: u64) -> Option<u64> {
    Some(u16::from_le_bytes(slice(b, at, 2)?.try_into().ok()?) as u64)
}

fn u32_at(b: &[u8], at: u64) -> Option<u64> {
    Some(u32::from_le_bytes(slice(b, at, 4)?.try_into().ok()?) as u64)
}

fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    Some(u64::from_le_bytes(slice(b, at, 8)?.try_into().ok()?))
}

/// One record of the central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Vec<u8>,
    /// Where its local header starts, and how many bytes its data takes.
    pub offset: u64,
    pub compressed: u64,
}

/// Where the central directory lies, its size, and how many records it declares; checked to
/// end exactly where the end records begin, with nothing after the end record's comment.
fn locate(bytes: &[u8]) -> Result<(u64, u64, u64), String> {
    const EOCD: &[u8] = &[0x50, 0x4b, 0x05, 0x06];
    let len = bytes.len() as u64;
    if len < 22 {
        return Err("too short for a zip".into());
    }
    // The end record is 22 bytes plus a comment of at most 64 KiB, and the comment runs to the
    // end of the file: the last signature whose comment length says so.
    let from = len.saturating_sub(22 + 0xffff);
    let eocd = (from..=len - 22)
        .rev()
        .find(|&i| {
            slice(bytes, i, 4) == Some(EOCD)
                && u16_at(bytes, i + 20).is_some_and(|comment| i + 22 + comment == len)
        })
        .ok_or("no end of central directory record at the end (data after it?)")?;
    let count32 = u16_at(bytes, eocd + 10).ok_or("truncated end record")?;
    let size32 = u32_at(bytes, eocd + 12).ok_or("truncated end record")?;
    let offset32 = u32_at(bytes, eocd + 16).ok_or("truncated end record")?;
    let zip64 = eocd >= 20 && slice(bytes, eocd - 20, 4) == Some(&[0x50, 0x4b, 0x06, 0x07]);
    let (count, size, offset, end) = if zip64 {
        // The locator sits right before the end record and points at the real one, which
        // the directory must end at.
        let at = u64_at(bytes, eocd - 12).ok_or("truncated zip64 locator")?;
        if slice(bytes, at, 4) != Some(&[0x50, 0x4b, 0x06, 0x06]) {
            return Err("the zip64 locator points at no zip64 end record".into());
        }
        let record_end = u64_at(bytes, at + 4)
            .and_then(|n| n.checked_add(at + 12))
            .ok_or("truncated zip64 end record")?;
        if record_end != eocd - 20 {
            return Err("the zip64 end record does not end at its locator".into());
        }
        let field = |off| u64_at(bytes, at + off).ok_or("truncated zip64 end record");
        let (count, size, offset) = (field(32)?, field(40)?, field(48)?);
        // The 32-bit fields either agree or say "see zip64".
        let agrees = |short: u64, long: u64, all_ones: u64| short == long || short == all_ones;
        if !agrees(count32, count, 0xffff)
            || !agrees(size32, size, 0xffff_ffff)
            || !agrees(offset32, offset, 0xffff_ffff)
        {
            return Err("the zip64 end record and the end record disagree".into());
        }
        (count, size, offset, at)
    } else {
        (count32, size32, offset32, eocd)
    };
    if count > MAX_ENTRIES {
        return Err(format!(
            "it declares {count} entries (at most {MAX_ENTRIES})"
        ));
    }
    if offset.checked_add(size) != Some(end) {
        return Err(
            "the central directory does not end where the end record begins (a decoy directory?)"
                .into(),
        );
    }
    Ok((offset, size, count))
}

/// The zip64 extra field's values for the fields a record marks 0xFFFFFFFF, in order.
fn zip64_values(extra: &[u8], wanted: usize) -> Option<Vec<u64>> {
    let mut at = 0u64;
    while let (Some(id), Some(len)) = (u16_at(extra, at), u16_at(extra, at + 2)) {
        if id == 0x0001 {
            let body = slice(extra, at + 4, len)?;
            return (0..wanted).map(|i| u64_at(body, 8 * i as u64)).collect();
        }
        at += 4 + len;
    }
    None
}

/// Whether an extra field carries a second name (Info-ZIP's unicode path 0x7075, or its
/// comment twin 0x6375), which some readers prefer to the header's own.
fn second_name(extra: &[u8]) -> bool {
    let mut at = 0u64;
    while let (Some(id), Some(len)) = (u16_at(extra, at), u16_at(extra, at + 2)) {
        if id == 0x7075 || id == 0x6375 {
            return true;
        }
        at += 4 + len;
    }
    false
}

/// Every record of the central directory, in its order, duplicates kept, each checked against
/// its local header; refused when any reader could see another list.
pub fn records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let (start, size, count) = locate(bytes)?;
    let end = start + size;
    let mut at = start;
    let mut records = Vec::with_capacity(count.min(1 << 16) as usize);
    for i in 0..count {
        if slice(bytes, at, 4) != Some(&[0x50, 0x4b, 0x01, 0x02]) {
            return Err(format!(
                "central directory record {i} is not where it should be"
            ));
        }
        let field = |off| u16_at(bytes, at + off).ok_or(format!("record {i} is truncated"));
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let name =
            slice(bytes, at + 46, name_len).ok_or(format!("record {i}'s name is truncated"))?;
        let extra = slice(bytes, at + 46 + name_len, extra_len)
            .ok_or(format!("record {i}'s extra field is truncated"))?;
        if second_name(extra) {
            return Err(format!(
                "the entry `{}` carries a second name in an extra field",
                String::from_utf8_lossy(name).escape_debug()
            ));
        }
        let mut compressed = u32_at(bytes, at + 20).ok_or(format!("record {i} is truncated"))?;
        let uncompressed = u32_at(bytes, at + 24).ok_or(format!("record {i} is truncated"))?;
        let mut offset = u32_at(bytes, at + 42).ok_or(format!("record {i} is truncated"))?;
        // zip64 values come in this order, each only when its field says 0xFFFFFFFF.
        let marks = [uncompressed, compressed, offset]
            .iter()
            .filter(|v| **v == 0xffff_ffff)
            .count();
        if marks > 0 {
            let values = zip64_values(extra, marks)
                .ok_or(format!("record {i} lacks the zip64 values it announces"))?;
            let mut next = values.into_iter();
            if uncompressed == 0xffff_ffff {
                next.next();
            }
            if compressed == 0xffff_ffff {
                compressed = next.next().unwrap_or(u64::MAX);
            }
            if offset == 0xffff_ffff {
                offset = next.next().unwrap_or(u64::MAX);
            }
        }
        // The local header must name the same file.
        if slice(bytes, offset, 4) != Some(&[0x50, 0x4b, 0x03, 0x04]) {
            return Err(format!("record {i}'s local header is not where it points"));
        }
        let local_name_len = u16_at(bytes, offset + 26).ok_or("truncated local header")?;
        let local_extra_len = u16_at(bytes, offset + 28).ok_or("truncated local header")?;
        let local_name =
            slice(bytes, offset + 30, local_name_len).ok_or("truncated local header")?;
        if local_name != name {
            return Err(format!(
                "the entry `{}` is named `{}` in its local header",
                String::from_utf8_lossy(name).escape_debug(),
                String::from_utf8_lossy(local_name).escape_debug()
            ));
        }
        let local_extra = slice(bytes, offset + 30 + local_name_len, local_extra_len)
            .ok_or("truncated local header")?;
        if second_name(local_extra) {
            return Err(format!(
                "the entry `{}` carries a second name in an extra field",
                String::from_utf8_lossy(name).escape_debug()
            ));
        }
        let data_end = (offset + 30 + local_name_len + local_extra_len)
            .checked_add(compressed)
            .filter(|e| *e <= start)
            .ok_or(format!(
                "the entry `{}` runs past the central directory",
                String::from_utf8_lossy(name).escape_debug()
            ))?;
        records.push(Record {
            name: name.to_vec(),
            offset,
            compressed: data_end - offset,
        });
        at += 46 + name_len + extra_len + comment_len;
        if at > end {
            return Err("the central directory is longer than it says".into());
        }
    }
    if at != end {
        return Err(format!(
            "the central directory holds more than the {count} records it declares"
        ));
    }
    // Entries share no bytes: overlapping entries make a small archive inflate to any size.
    let mut spans: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r.offset, r.offset + r.compressed))
        .collect();
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err("two entries share their bytes (overlapping entries)".into());
    }
    Ok(records)
}

/// Every name the central directory holds, in its order, duplicates kept.
pub fn central_names(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    Ok(records(bytes)?.into_iter().map(|r| r.name).collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    fn zip_of(names: &[&str]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for name in names {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(name.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        for i in 0..b.len() - from.len() {
            if &b[i..i + from.len()] == from {
                b[i..i + to.len()].copy_from_slice(to);
            }
        }
        b
    }

    #[test]
    fn every_record_is_seen_even_one_a_zip_reader_would_hide() {
        let bytes = zip_of(&["a.py", "b.py"]);
        assert_eq!(
            super::central_names(&bytes).unwrap(),
            vec![b"a.py".to_vec(), b"b.py".to_vec()]
        );
        // The second entry renamed to the first, in both headers: the zip crate then reports
        // one entry; the walk reports both.
        let dup = replace_all(&bytes, b"b.py", b"a.py");
        assert_eq!(
            super::central_names(&dup).unwrap(),
            vec![b"a.py".to_vec(), b"a.py".to_vec()]
        );
        assert!(super::central_names(b"not a zip").is_err());
        assert!(super::central_names(&bytes[..bytes.len() - 5]).is_err());
    }

    #[test]
    fn layouts_that_readers_resolve_differently_are_refused() {
        let bytes = zip_of(&["a.py", "b.py"]);
        let eocd = bytes.len() - 22;
        let refused = |b: &[u8], needle: &str| {
            let err = super::records(b).unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        // Data after the end record.
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"junk");
        refused(&trailing, "no end of central directory record at the end");
        // An end record that counts one record fewer than the directory holds.
        let mut fewer = bytes.clone();
        fewer[eocd + 8] = 1;
        fewer[eocd + 10] = 1;
        refused(&fewer, "more than the 1 records it declares");
        // A directory offset that does not meet the end record.
        let mut decoy = bytes.clone();
        decoy[eocd + 16] = decoy[eocd + 16].wrapping_add(1);
        refused(&decoy, "does not end where the end record begins");
        // A local header that names another file than the directory.
        let local = bytes.iter().position(|_| true).unwrap();
        let mut renamed = bytes.clone();
        renamed[local + 30..local + 34].copy_from_slice(b"../x");
        refused(&renamed, "is named `../x` in its local header");
        // A zip64 locator pointing past the end: no overflow, a refusal.
        let mut wild = bytes[..eocd].to_vec();
        wild.extend_from_slice(&[0x50, 0x4b, 0x06, 0x07, 0, 0, 0, 0]);
        wild.extend_from_slice(&u64::MAX.to_le_bytes());
        wild.extend_from_slice(&[1, 0, 0, 0]);
        wild.extend_from_slice(&bytes[eocd..]);
        assert!(super::records(&wild).is_err());
    }
}
