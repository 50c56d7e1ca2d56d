//! The zip of a wheel read as one model, in one pass: the end record, every central directory
//! record, and the local header each one points to, checked against each other. What readers
//! could disagree on (a name given twice, a local header that says another name, size or method
//! than the central directory, a size the data does not have, entries counted two ways) is an
//! [`Anomaly`] with its reason; what no reader could use (entries overlapping, data past the
//! end) is an error. Bounded: entry count, name length and central directory size are capped,
//! and entry data is streamed through fixed buffers, never held whole.

use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

/// More entries than this is no wheel (the largest on PyPI hold tens of thousands).
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Longer entry names than this cannot be installed on Linux (PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// The central directory's size, which bounds the memory its records take once read.
pub const MAX_CENTRAL_DIRECTORY: u64 = 256 << 20;

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
const END_LEN: usize = 22;
const LOCATOR64_LEN: u64 = 20;
const END64_LEN: u64 = 56;
const LOCAL_LEN: usize = 30;
const CENTRAL_LEN: usize = 46;
/// Bit 3 of the flags: crc and sizes follow the data; the local header holds zeros.
const DATA_DESCRIPTOR: u16 = 1 << 3;
const ENCRYPTED: u16 = 1;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;
const CHUNK: usize = 1 << 16;

/// Bytes that can be read at any offset: an open file, or a wheel in memory.
pub trait Source {
    fn size(&self) -> io::Result<u64>;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl Source for std::fs::File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A window `[pos, end)` of a source, read in order: no shared cursor, so one open file serves
/// any number of readers.
struct Window<'a, S: Source + ?Sized> {
    source: &'a S,
    pos: u64,
    end: u64,
}

impl<S: Source + ?Sized> Read for Window<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.source.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ZipError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ZipError> {
    Err(ZipError(message.into()))
}

fn io_fail(what: &str) -> impl Fn(io::Error) -> ZipError + '_ {
    move |e| ZipError(format!("{what}: {e}"))
}

/// Something readers of this zip could disagree on, or a promise its data breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The entry, or "(archive)".
    pub entry: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// Two entries or more carry one name.
    DuplicateName,
    /// A local header says another name, method, crc or size than the central directory.
    HeaderDisagreement,
    /// The data inflates to another size than declared.
    SizeLie,
    /// The data's crc32 is not the declared one.
    Crc,
    /// The central directory and its end record count the entries differently.
    EntryCount,
    /// Bytes no entry accounts for precede the zip.
    Prefix,
}

impl Anomaly {
    fn new(kind: AnomalyKind, entry: &str, reason: String) -> Self {
        Self {
            kind,
            entry: entry.to_string(),
            reason,
        }
    }
}

/// One central directory record, with where its data starts after its local header.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    /// Position in the central directory.
    pub index: usize,
    pub made_by: u16,
    pub needed: u16,
    pub flags: u16,
    pub method: u16,
    pub dos_time: u16,
    pub dos_date: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    /// The size the central directory declares.
    pub size: u64,
    pub extra_len: usize,
    pub comment: Vec<u8>,
    pub internal_attr: u16,
    pub external_attr: u32,
    /// Where the local header starts, in the file.
    pub local_offset: u64,
    /// Where the entry's data starts, in the file.
    pub data_offset: u64,
}

impl Header {
    /// The Unix mode an installer reads (pip takes the high half of the attributes as is).
    pub fn mode(&self) -> u32 {
        self.external_attr >> 16
    }

    pub fn method_name(&self) -> String {
        match self.method {
            STORED => "Stored".into(),
            DEFLATED => "Deflated".into(),
            other => format!("method {other}"),
        }
    }
}

#[derive(Debug)]
pub struct Archive {
    pub headers: Vec<Header>,
    pub comment: Vec<u8>,
    pub anomalies: Vec<Anomaly>,
}

/// Little-endian fields, in order, out of a fixed-size record.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u16(&mut self) -> u16 {
        let (v, rest) = self.0.split_at(2);
        self.0 = rest;
        u16::from_le_bytes([v[0], v[1]])
    }
    fn u32(&mut self) -> u32 {
        let (v, rest) = self.0.split_at(4);
        self.0 = rest;
        u32::from_le_bytes([v[0], v[1], v[2], v[3]])
    }
    fn u64(&mut self) -> u64 {
        let (v, rest) = self.0.split_at(8);
        self.0 = rest;
        u64::from_le_bytes(v.try_into().expect("8 bytes"))
    }
}

fn read_exact_at<S: Source + ?Sized>(source: &S, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut window = Window {
        source,
        pos: offset,
        end: offset.saturating_add(buf.len() as u64),
    };
    window.read_exact(buf)
}

/// Where the central directory is, as the end records say.
struct End {
    /// Where the end structures start (the zip64 record when there is one).
    at: u64,
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
    comment: Vec<u8>,
}

/// The last end record whose comment fits in the file, as Python's zipfile finds it.
fn find_end<S: Source + ?Sized>(source: &S, len: u64) -> Result<End, ZipError> {
    let tail_len = len.min((END_LEN + u16::MAX as usize) as u64);
    let mut tail = vec![0u8; tail_len as usize];
    let tail_at = len - tail_len;
    read_exact_at(source, &mut tail, tail_at).map_err(io_fail("reading the end of the zip"))?;
    let found = (0..tail.len().saturating_sub(END_LEN - 1))
        .rev()
        .find(|&i| {
            tail[i..i + 4] == END.to_le_bytes() && {
                let comment = u16::from_le_bytes([tail[i + 20], tail[i + 21]]) as usize;
                i + END_LEN + comment <= tail.len()
            }
        });
    let Some(i) = found else {
        return fail("no end of central directory record: not a zip");
    };
    let mut f = Fields(&tail[i + 4..i + END_LEN]);
    let (disk, cd_disk, _, entries) = (f.u16(), f.u16(), f.u16(), f.u16());
    let (cd_size, cd_offset, comment_len) = (f.u32(), f.u32(), f.u16());
    let comment = tail[i + END_LEN..i + END_LEN + comment_len as usize].to_vec();
    let at = tail_at + i as u64;
    if disk != 0 || cd_disk != 0 {
        return fail("the zip spans several disks");
    }
    let end = End {
        at,
        entries: entries.into(),
        cd_size: cd_size.into(),
        cd_offset: cd_offset.into(),
        comment,
    };
    match zip64_end(source, at)? {
        Some(z) => Ok(End {
            comment: end.comment,
            ..z
        }),
        None => Ok(end),
    }
}

/// The zip64 end record, when a locator precedes the end record.
fn zip64_end<S: Source + ?Sized>(source: &S, end_at: u64) -> Result<Option<End>, ZipError> {
    let Some(locator_at) = end_at.checked_sub(LOCATOR64_LEN) else {
        return Ok(None);
    };
    let mut locator = [0u8; LOCATOR64_LEN as usize];
    read_exact_at(source, &mut locator, locator_at)
        .map_err(io_fail("reading the zip64 locator"))?;
    let mut f = Fields(&locator);
    if f.u32() != LOCATOR64 {
        return Ok(None);
    }
    let (_, recorded_at) = (f.u32(), f.u64());
    // Right before the locator, as zipfile looks; else where the locator says.
    let candidates = [locator_at.checked_sub(END64_LEN), Some(recorded_at)];
    for at in candidates.into_iter().flatten() {
        let mut record = [0u8; END64_LEN as usize];
        if read_exact_at(source, &mut record, at).is_err() {
            continue;
        }
        let mut f = Fields(&record);
        if f.u32() != END64 {
            continue;
        }
        let (_, _, _, disk, cd_disk) = (f.u64(), f.u16(), f.u16(), f.u32(), f.u32());
        let (_, entries, cd_size, cd_offset) = (f.u64(), f.u64(), f.u64(), f.u64());
        if disk != 0 || cd_disk != 0 {
            return fail("the zip spans several disks");
        }
        return Ok(Some(End {
            at,
            entries,
            cd_size,
            cd_offset,
            comment: Vec::new(),
        }));
    }
    fail("a zip64 locator points to no zip64 end record")
}

/// The zip64 extra field's values, for the fields the fixed record left at their maximum.
fn zip64_values(extra: &[u8], sizes: [&mut u64; 2], offset: Option<&mut u64>) {
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[(4 + len).min(rest.len())..];
        if id != 1 {
            continue;
        }
        let mut values = body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        // The order is fixed: size, compressed size, offset; each only when needed.
        let [size, compressed] = sizes;
        for field in [size, compressed].into_iter().chain(offset) {
            if *field == u32::MAX as u64 {
                match values.next() {
                    Some(v) => *field = v,
                    None => return,
                }
            }
        }
        return;
    }
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The central directory records, read in one pass through a buffer.
fn central_records<S: Source + ?Sized>(
    source: &S,
    start: u64,
    end: &End,
    anomalies: &mut Vec<Anomaly>,
) -> Result<Vec<Header>, ZipError> {
    let mut reader = BufReader::with_capacity(
        CHUNK,
        Window {
            source,
            pos: start,
            end: start + end.cd_size,
        },
    );
    let read_err = io_fail("reading the central directory");
    // Room for what was declared, as far as the directory's size can hold: a few bytes that
    // declare a million entries get no memory for them.
    let room = end.entries.min(end.cd_size / CENTRAL_LEN as u64);
    let mut headers = Vec::with_capacity(room.min(MAX_ENTRIES) as usize);
    let mut fixed = [0u8; CENTRAL_LEN];
    loop {
        match reader.read_exact(&mut fixed[..4]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(read_err(e)),
        }
        if fixed[..4] != CENTRAL.to_le_bytes() {
            break;
        }
        if headers.len() as u64 >= MAX_ENTRIES {
            return fail(format!(
                "the central directory holds more than {MAX_ENTRIES} entries, more than any wheel"
            ));
        }
        reader.read_exact(&mut fixed[4..]).map_err(&read_err)?;
        let mut f = Fields(&fixed[4..]);
        let (made_by, needed, flags, method) = (f.u16(), f.u16(), f.u16(), f.u16());
        let (dos_time, dos_date, crc32) = (f.u16(), f.u16(), f.u32());
        let (mut compressed_size, mut size) = (f.u32() as u64, f.u32() as u64);
        let (name_len, extra_len, comment_len) =
            (f.u16() as usize, f.u16() as usize, f.u16() as usize);
        let (_disk, internal_attr, external_attr) = (f.u16(), f.u16(), f.u32());
        let mut local_offset = f.u32() as u64;
        if name_len > MAX_NAME {
            return fail(format!(
                "entry {}: its name is {name_len} bytes long, more than {MAX_NAME}",
                headers.len()
            ));
        }
        let mut name = vec![0u8; name_len];
        let mut extra = vec![0u8; extra_len];
        let mut comment = vec![0u8; comment_len];
        for part in [&mut name, &mut extra, &mut comment] {
            reader.read_exact(part).map_err(&read_err)?;
        }
        zip64_values(
            &extra,
            [&mut size, &mut compressed_size],
            Some(&mut local_offset),
        );
        headers.push(Header {
            name: name_of(&name),
            index: headers.len(),
            made_by,
            needed,
            flags,
            method,
            dos_time,
            dos_date,
            crc32,
            compressed_size,
            size,
            extra_len,
            comment,
            internal_attr,
            external_attr,
            local_offset,
            data_offset: 0,
        });
    }
    if headers.len() as u64 != end.entries {
        anomalies.push(Anomaly::new(
            AnomalyKind::EntryCount,
            "(archive)",
            format!(
                "the central directory holds {} entries but its end record declares {}: readers that count one way or the other see different wheels",
                headers.len(),
                end.entries
            ),
        ));
    }
    Ok(headers)
}

/// Check a record against its local header; sets where its data starts.
fn check_local<S: Source + ?Sized>(
    source: &S,
    shift: u64,
    header: &mut Header,
    anomalies: &mut Vec<Anomaly>,
) -> Result<(), ZipError> {
    let name = header.name.clone();
    let at = header
        .local_offset
        .checked_add(shift)
        .ok_or_else(|| ZipError(format!("entry `{name}`: its offset is past any file")))?;
    header.local_offset = at;
    let mut fixed = [0u8; LOCAL_LEN];
    read_exact_at(source, &mut fixed, at).map_err(|e| {
        ZipError(format!(
            "entry `{name}`: no local header at offset {at}: {e}"
        ))
    })?;
    let mut f = Fields(&fixed);
    if f.u32() != LOCAL {
        return fail(format!("entry `{name}`: no local header at offset {at}"));
    }
    let (_needed, flags, method) = (f.u16(), f.u16(), f.u16());
    let (_time, _date, crc32) = (f.u16(), f.u16(), f.u32());
    let (mut compressed_size, mut size) = (f.u32() as u64, f.u32() as u64);
    let (name_len, extra_len) = (f.u16() as usize, f.u16() as usize);
    let mut local_name = vec![0u8; name_len];
    let mut extra = vec![0u8; extra_len];
    read_exact_at(source, &mut local_name, at + LOCAL_LEN as u64)
        .and_then(|()| read_exact_at(source, &mut extra, at + (LOCAL_LEN + name_len) as u64))
        .map_err(|e| {
            ZipError(format!(
                "entry `{name}`: its local header is cut short: {e}"
            ))
        })?;
    zip64_values(&extra, [&mut size, &mut compressed_size], None);
    header.data_offset = at + (LOCAL_LEN + name_len + extra_len) as u64;
    let mut disagree = |what: &str, central: String, local: String| {
        anomalies.push(Anomaly::new(
            AnomalyKind::HeaderDisagreement,
            &name,
            format!(
                "its local header disagrees with the central directory on the {what} (central {central}, local {local}): readers that trust one or the other see different wheels"
            ),
        ));
    };
    let local_name = name_of(&local_name);
    if local_name != header.name {
        disagree(
            "name",
            format!("`{}`", header.name),
            format!("`{local_name}`"),
        );
    }
    if method != header.method {
        disagree(
            "compression method",
            header.method.to_string(),
            method.to_string(),
        );
    }
    if (flags ^ header.flags) & ENCRYPTED != 0 {
        disagree(
            "encryption flag",
            header.flags.to_string(),
            flags.to_string(),
        );
    }
    // With a data descriptor the local header holds zeros; the data itself is checked later.
    if flags & DATA_DESCRIPTOR == 0 {
        if crc32 != header.crc32 {
            disagree(
                "crc32",
                format!("{:08x}", header.crc32),
                format!("{crc32:08x}"),
            );
        }
        if compressed_size != header.compressed_size {
            disagree(
                "compressed size",
                header.compressed_size.to_string(),
                compressed_size.to_string(),
            );
        }
        if size != header.size {
            disagree("size", header.size.to_string(), size.to_string());
        }
    }
    Ok(())
}

/// Read the archive's structure, checking every record against its local header. Entry data
/// is not read here: see [`entry_reader`] and [`verify_entry`].
pub fn read<S: Source + ?Sized>(source: &S) -> Result<Archive, ZipError> {
    let len = source.size().map_err(io_fail("reading the zip's size"))?;
    let end = find_end(source, len)?;
    if end.entries > MAX_ENTRIES {
        return fail(format!(
            "the zip declares {} entries, more than {MAX_ENTRIES}",
            end.entries
        ));
    }
    if end.cd_size > MAX_CENTRAL_DIRECTORY {
        return fail(format!(
            "the central directory is {} bytes, more than {MAX_CENTRAL_DIRECTORY}",
            end.cd_size
        ));
    }
    // Bytes before the first entry shift every offset (zipfile reads such zips too).
    let Some(shift) = end
        .at
        .checked_sub(end.cd_size)
        .and_then(|s| s.checked_sub(end.cd_offset))
    else {
        return fail(format!(
            "the central directory is said to be {} bytes at offset {}, past where it ends ({})",
            end.cd_size, end.cd_offset, end.at
        ));
    };
    let mut anomalies = Vec::new();
    if shift > 0 {
        anomalies.push(Anomaly::new(
            AnomalyKind::Prefix,
            "(archive)",
            format!("{shift} bytes that belong to no entry precede the zip"),
        ));
    }
    let cd_start = shift + end.cd_offset;
    let mut headers = central_records(source, cd_start, &end, &mut anomalies)?;
    for header in &mut headers {
        check_local(source, shift, header, &mut anomalies)?;
    }
    check_layout(&headers, cd_start)?;
    anomalies.extend(duplicates(&headers));
    Ok(Archive {
        headers,
        comment: end.comment,
        anomalies,
    })
}

/// Every entry's bytes lie before the central directory and apart from every other's: a zip
/// whose entries share bytes inflates to more than it holds (the overlapping zip bomb).
fn check_layout(headers: &[Header], cd_start: u64) -> Result<(), ZipError> {
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(headers.len());
    for h in headers {
        let end = h.data_offset.checked_add(h.compressed_size);
        match end {
            Some(end) if end <= cd_start => spans.push((h.local_offset, end, &h.name)),
            _ => {
                return fail(format!(
                    "entry `{}`: its {} bytes of data at offset {} run past the entries' area, which ends at {cd_start}",
                    h.name, h.compressed_size, h.data_offset
                ));
            }
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        if start < end {
            return fail(format!(
                "entries `{a}` and `{b}` share bytes (offset {start}): a zip bomb's construction, or two names for one entry"
            ));
        }
    }
    Ok(())
}

/// Each name given to more than one entry, once, with how many carry it.
fn duplicates(headers: &[Header]) -> Vec<Anomaly> {
    let mut count: HashMap<&str, usize> = HashMap::with_capacity(headers.len());
    for h in headers {
        *count.entry(&h.name).or_default() += 1;
    }
    let mut out: Vec<Anomaly> = headers
        .iter()
        .filter_map(|h| {
            let n = count.remove(h.name.as_str()).filter(|&n| n > 1)?;
            Some(Anomaly::new(
                AnomalyKind::DuplicateName,
                &h.name,
                format!(
                    "a duplicate name: {n} entries are called `{}`, and installers keep only one of them",
                    h.name
                ),
            ))
        })
        .collect();
    out.sort_by(|a, b| a.entry.cmp(&b.entry));
    out
}

/// The names given to more than one entry of a zip, each once; empty when the bytes are no
/// zip (other checks refuse those). For refusing a job's own wheel.
pub fn duplicate_entries(zip: &[u8]) -> Vec<String> {
    read(zip)
        .map(|a| {
            duplicates(&a.headers)
                .into_iter()
                .map(|d| d.entry)
                .collect()
        })
        .unwrap_or_default()
}

/// An entry's data as stored, decompressed; at most `limit` bytes come out.
pub fn entry_reader<'a, S: Source + ?Sized>(
    source: &'a S,
    header: &Header,
    limit: u64,
) -> Result<Box<dyn Read + 'a>, ZipError> {
    let raw = Window {
        source,
        pos: header.data_offset,
        end: header.data_offset.saturating_add(header.compressed_size),
    };
    if header.flags & ENCRYPTED != 0 {
        return fail(format!("entry `{}` is encrypted", header.name));
    }
    // A buffer no larger than the data: most entries are small, and there may be a million.
    let buffer = usize::try_from(header.compressed_size).map_or(CHUNK, |n| n.clamp(1, CHUNK));
    Ok(match header.method {
        STORED => Box::new(raw.take(limit)),
        DEFLATED => Box::new(Inflate::new(BufReader::with_capacity(buffer, raw)).take(limit)),
        other => {
            return fail(format!(
                "entry `{}`: compression method {other} is none a wheel uses (stored, deflate)",
                header.name
            ));
        }
    })
}

thread_local! {
    /// A decompressor left by the last entry read on this thread: making one zeroes tens of
    /// kilobytes, which, per entry of a wheel with 300,000, was most of the time `compare` took.
    static SPARE: std::cell::Cell<Option<flate2::Decompress>> = const { std::cell::Cell::new(None) };
}

/// A raw deflate stream, decompressed with this thread's spare decompressor when it has one.
struct Inflate<R: io::BufRead> {
    input: R,
    state: Option<flate2::Decompress>,
    done: bool,
}

impl<R: io::BufRead> Inflate<R> {
    fn new(input: R) -> Self {
        let state = SPARE
            .take()
            .unwrap_or_else(|| flate2::Decompress::new(false));
        Self {
            input,
            state: Some(state),
            done: false,
        }
    }
}

impl<R: io::BufRead> Read for Inflate<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(state) = self.state.as_mut() else {
            return Ok(0);
        };
        while !self.done && !out.is_empty() {
            let input = self.input.fill_buf()?;
            let (before_in, before_out) = (state.total_in(), state.total_out());
            let status = state
                .decompress(input, out, flate2::FlushDecompress::None)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (state.total_in() - before_in) as usize;
            let produced = (state.total_out() - before_out) as usize;
            self.input.consume(consumed);
            self.done = status == flate2::Status::StreamEnd;
            // A stream cut short (or stalled) ends there: the size it declared tells.
            if produced > 0 || self.done || consumed == 0 {
                return Ok(produced);
            }
        }
        Ok(0)
    }
}

impl<R: io::BufRead> Drop for Inflate<R> {
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            state.reset(false);
            SPARE.set(Some(state));
        }
    }
}

/// Stream an entry's data into `sink` through `buf`, stopping one byte past its declared size;
/// returns the size it had, and what it broke of its declarations.
pub fn verify_entry<S: Source + ?Sized>(
    source: &S,
    header: &Header,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]),
) -> Result<(u64, Vec<Anomaly>), ZipError> {
    let mut reader = entry_reader(source, header, header.size.saturating_add(1))?;
    let mut crc = flate2::Crc::new();
    let mut size = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(format!("entry `{}`: {e}", header.name)),
        };
        crc.update(&buf[..n]);
        sink(&buf[..n]);
        size += n as u64;
    }
    let mut anomalies = Vec::new();
    if size > header.size {
        anomalies.push(Anomaly::new(
            AnomalyKind::SizeLie,
            &header.name,
            format!(
                "a size lie: declares {} bytes but holds more (reading stopped there)",
                header.size
            ),
        ));
    } else if size < header.size {
        anomalies.push(Anomaly::new(
            AnomalyKind::SizeLie,
            &header.name,
            format!(
                "a size lie: declares {} bytes but holds {size}",
                header.size
            ),
        ));
    } else if crc.sum() != header.crc32 {
        anomalies.push(Anomaly::new(
            AnomalyKind::Crc,
            &header.name,
            format!(
                "its crc32 is {:08x}, the central directory declares {:08x}: the data was changed",
                crc.sum(),
                header.crc32
            ),
        ));
    }
    Ok((size, anomalies))
}

/// Whether a zip's entries are sane: the structure readable, no anomaly in it or in any
/// entry's data. Returns every anomaly found; an error when it is no zip a reader could use.
pub fn anomalies<S: Source + ?Sized>(source: &S) -> Result<Vec<Anomaly>, ZipError> {
    let archive = read(source)?;
    let mut found = archive.anomalies;
    let mut buf = vec![0u8; CHUNK];
    for header in &archive.headers {
        found.extend(verify_entry(source, header, &mut buf, |_| {})?.1);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of stored entries: their bytes can be found and changed in it.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            zip.start_file(*name, stored).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_clean_zip_has_no_anomaly() {
        let bytes = zip_of(&[("a.py", b"1"), ("b/c.py", b"2\n")]);
        assert_eq!(anomalies(bytes.as_slice()).unwrap(), []);
        let archive = read(bytes.as_slice()).unwrap();
        let names: Vec<&str> = archive.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a.py", "b/c.py"]);
        assert!(duplicate_entries(&bytes).is_empty());
    }

    #[test]
    fn a_renamed_central_record_is_a_duplicate_and_a_disagreement() {
        let mut bytes = zip_of(&[("w.py", b"good"), ("v.py", b"evil")]);
        // The second central record's name becomes `w.py`; its local header still says `v.py`.
        let cd = bytes
            .windows(4)
            .rposition(|w| w == CENTRAL.to_le_bytes())
            .unwrap();
        bytes[cd + CENTRAL_LEN..cd + CENTRAL_LEN + 4].copy_from_slice(b"w.py");
        assert_eq!(duplicate_entries(&bytes), ["w.py"]);
        let found = anomalies(bytes.as_slice()).unwrap();
        assert!(
            found.iter().any(|a| a.reason.contains("duplicate")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|a| a.reason.contains("disagrees") && a.reason.contains("`v.py`")),
            "{found:?}"
        );
    }

    #[test]
    fn the_caps_are_refusals_that_name_them() {
        let long = "a".repeat(MAX_NAME + 1);
        let bytes = zip_of(&[(long.as_str(), b"1")]);
        let err = read(bytes.as_slice()).unwrap_err().to_string();
        assert!(
            err.contains("its name is 4097 bytes long, more than 4096"),
            "{err}"
        );
        // An end record declaring a central directory of 1 GiB.
        let mut end = b"PK\x05\x06\0\0\0\0\x01\0\x01\0".to_vec();
        end.extend_from_slice(&(1u32 << 30).to_le_bytes());
        end.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let err = read(end.as_slice()).unwrap_err().to_string();
        assert!(err.contains("more than 268435456"), "{err}");
    }

    #[test]
    fn a_size_lie_and_a_changed_byte_are_named() {
        let mut bytes = zip_of(&[("w.py", b"print(1)\n")]);
        let data = bytes.windows(8).position(|w| w == b"print(1)").unwrap();
        bytes[data + 6] = b'2';
        let found = anomalies(bytes.as_slice()).unwrap();
        assert!(
            found[0].kind == AnomalyKind::Crc && found[0].entry == "w.py",
            "{found:?}"
        );
        let central = bytes
            .windows(4)
            .position(|w| w == CENTRAL.to_le_bytes())
            .unwrap();
        bytes[central + 24] += 1;
        let found = anomalies(bytes.as_slice()).unwrap();
        let kinds: Vec<AnomalyKind> = found.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [AnomalyKind::HeaderDisagreement, AnomalyKind::SizeLie],
            "{found:?}"
        );
        assert!(
            found[1].reason.contains("declares 10 bytes but holds 9"),
            "{found:?}"
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let bytes = zip_of(&[("a.py", b"1")]);
        for cut in 0..bytes.len() {
            let _ = anomalies(&bytes[..cut]);
        }
        assert!(read(b"not a zip".as_slice()).is_err());
    }
}
