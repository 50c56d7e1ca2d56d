//! A zip's central directory as it is written, entry by entry. Zip readers (the zip crate
//! included) keep one entry per name, so an archive that names a file twice, with other bytes
//! the second time, looks whole to them; installers and other tools may take either copy.
//! This walk sees every record, so duplicates can be refused or reported.

/// Most entries a directory may declare: far above any wheel (the largest seen hold tens of
/// thousands), far below what would make the names' memory matter.
pub const MAX_ENTRIES: u64 = 1 << 21;

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Where the central directory lies and how many records it declares.
fn locate(bytes: &[u8]) -> Result<(usize, u64), String> {
    const EOCD: &[u8] = &[0x50, 0x4b, 0x05, 0x06];
    // The end record is 22 bytes plus a comment of at most 64 KiB.
    let from = bytes.len().saturating_sub(22 + 0xffff);
    let eocd = (from..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes.get(i..i + 4) == Some(EOCD))
        .ok_or("no end of central directory record")?;
    let mut count = u16_at(bytes, eocd + 10).ok_or("truncated end record")?;
    let mut offset = u32_at(bytes, eocd + 16).ok_or("truncated end record")?;
    if (count == 0xffff || offset == 0xffff_ffff) && eocd >= 20 {
        // Zip64: the locator sits right before the end record and points at the real one.
        if bytes.get(eocd - 20..eocd - 16) == Some(&[0x50, 0x4b, 0x06, 0x07]) {
            let at = u64_at(bytes, eocd - 12).ok_or("truncated zip64 locator")? as usize;
            if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x06, 0x06]) {
                return Err("the zip64 locator points at no zip64 end record".into());
            }
            count = u64_at(bytes, at + 32).ok_or("truncated zip64 end record")?;
            offset = u64_at(bytes, at + 48).ok_or("truncated zip64 end record")?;
        }
    }
    if count > MAX_ENTRIES {
        return Err(format!(
            "it declares {count} entries (at most {MAX_ENTRIES})"
        ));
    }
    let offset = usize::try_from(offset).map_err(|_| "central directory offset out of range")?;
    Ok((offset, count))
}

/// Every name the central directory holds, in its order, duplicates kept.
pub fn central_names(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let (mut at, count) = locate(bytes)?;
    let mut names = Vec::with_capacity(count.min(1 << 16) as usize);
    for i in 0..count {
        if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x01, 0x02]) {
            return Err(format!(
                "central directory record {i} is not where it should be"
            ));
        }
        let field = |off| u16_at(bytes, at + off).ok_or(format!("record {i} is truncated"));
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let name = bytes
            .get(at + 46..at + 46 + name_len as usize)
            .ok_or(format!("record {i}'s name is truncated"))?;
        names.push(name.to_vec());
        at += 46 + (name_len + extra_len + comment_len) as usize;
    }
    Ok(names)
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

    #[test]
    fn every_record_is_seen_even_one_a_zip_reader_would_hide() {
        let bytes = zip_of(&["a.py", "b.py"]);
        assert_eq!(
            super::central_names(&bytes).unwrap(),
            vec![b"a.py".to_vec(), b"b.py".to_vec()]
        );
        // Rename the second entry to the first, in both headers: the same length, so the
        // offsets hold. The zip crate then reports one entry; the walk reports both.
        let dup: Vec<u8> = {
            let mut b = bytes.clone();
            for i in 0..b.len() - 4 {
                if &b[i..i + 4] == b"b.py" {
                    b[i..i + 4].copy_from_slice(b"a.py");
                }
            }
            b
        };
        assert_eq!(
            super::central_names(&dup).unwrap(),
            vec![b"a.py".to_vec(), b"a.py".to_vec()]
        );
        assert!(super::central_names(b"not a zip").is_err());
        assert!(super::central_names(&bytes[..bytes.len() - 5]).is_err());
    }
}
