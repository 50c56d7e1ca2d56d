//! A finished job's output, read as untrusted: the frontend's report, the wheel it names and
//! the log, each below a handle rewheel opened, bounded, and checked before anything uses it.

use super::spec::{JobEnd, JobError, JobOutput, JobSpec, MAX_LOG, MAX_WHEEL};
use crate::beneath::{Beneath, BeneathError};
use std::path::Path;

/// Read what the frontend reported and take the wheel it names, checked. Everything is read
/// below a handle on the job's folder, opened here once: a build that swaps `out/` (or any
/// other part of its folder) for a link reaches nothing of the host through it.
pub fn collect(
    spec: &JobSpec,
    dir: &Path,
    log: Vec<u8>,
    exit_ok: bool,
) -> Result<JobEnd, JobError> {
    let folder = match Beneath::open(dir) {
        Ok(folder) => folder,
        Err(err) => {
            return Err(JobError::Failed {
                message: format!("the job's folder {} cannot be opened: {err}", dir.display()),
                log,
            });
        }
    };
    let result: serde_json::Value = folder
        .read(Path::new("result.json"), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let requires = strings("requires");
    if exit_ok && result["phase"] == "requires" && spec.probe {
        return Ok(JobEnd::Asked {
            requires,
            missing: Vec::new(),
        });
    }
    if exit_ok && result["phase"] == "needs" {
        // Asked once, the requirements were installed and the job ran with `proceed`: a
        // backend that asks again would loop for ever.
        if spec.proceed {
            return Err(JobError::Failed {
                message: format!(
                    "the backend asked again for {:?}, which were installed",
                    strings("missing")
                ),
                log,
            });
        }
        return Ok(JobEnd::Asked {
            requires,
            missing: strings("missing"),
        });
    }
    if !exit_ok || result["phase"] != "done" {
        // What the job wrote is printed: control characters (a forged summary line, a
        // terminal escape) are shown escaped.
        let shown = |text: &str| -> String {
            text.chars()
                .flat_map(|c| match c.is_control() {
                    true => c.escape_default().collect::<Vec<_>>(),
                    false => vec![c],
                })
                .collect()
        };
        let message = match result["error"].as_str() {
            Some(error) => format!(
                "{} failed: {}",
                shown(result["phase"].as_str().unwrap_or("the build")),
                shown(error)
            ),
            None => "the build failed before the frontend reported anything".to_string(),
        };
        return Err(JobError::Failed { message, log });
    }
    let wheel_name = result["wheel"].as_str().unwrap_or_default();
    match read_wheel(spec, &folder, wheel_name) {
        Ok(wheel) => Ok(JobEnd::Wheel(JobOutput {
            wheel_filename: wheel_name.to_string(),
            wheel,
            log,
            requires,
        })),
        Err(why) => Err(JobError::Failed {
            message: format!("the backend's wheel `{wheel_name}` was refused: {why}"),
            log,
        }),
    }
}

/// Read what the job says is its wheel as untrusted: a plain name in `out/` of the job's
/// folder, opened below its handle with no link followed anywhere on the way, bounded in size,
/// then checked as `check_wheel` does.
pub fn read_wheel(spec: &JobSpec, folder: &Beneath, filename: &str) -> Result<Vec<u8>, String> {
    if filename.is_empty()
        || filename.contains('/')
        || filename.contains('\0')
        || filename == "."
        || filename == ".."
    {
        return Err("not a file name in the output folder".into());
    }
    check_filename(&spec.name, &spec.version, filename)?;
    let bytes = folder
        .read(&Path::new("out").join(filename), MAX_WHEEL)
        .map_err(|err| match err {
            BeneathError::Link(_) => "it is a link, or lies behind one, not a file".to_string(),
            BeneathError::NotFile(_) => "it is not a regular file".into(),
            BeneathError::TooLarge { .. } => format!("it is over {MAX_WHEEL} bytes"),
            other => format!("it cannot be opened: {other}"),
        })?;
    check_wheel(&spec.name, &spec.version, filename, &bytes)?;
    Ok(bytes)
}

/// A wheel's filename as the job's: plain characters only (it is printed and becomes a file
/// name), parsing as a wheel filename of this package and version.
fn check_filename(name: &str, version: &str, filename: &str) -> Result<(), String> {
    let plain = filename
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '!'));
    if !plain {
        return Err(format!(
            "the name `{}` holds characters no wheel filename has",
            filename.escape_debug()
        ));
    }
    let (got_name, got_version) = crate::names::parse_wheel_filename(filename)
        .ok_or("the name does not parse as a wheel filename (NAME-VERSION-PY-ABI-PLATFORM.whl)")?;
    let expected_name = crate::names::PackageName::new(name.to_string()).ok();
    let expected_version = version.parse::<pep508_rs::pep440_rs::Version>().ok();
    if expected_name.as_ref() != Some(&got_name) || expected_version.as_ref() != Some(&got_version)
    {
        return Err(format!(
            "it names {got_name} {got_version}, but this job builds {name} {version}"
        ));
    }
    Ok(())
}

/// A wheel as the output of a job building `name` `version` (also what `merge` and a CI
/// cache take): its filename is the job's, its archive is one that every zip reader lists the
/// same way (`zipdir`), its entries stay inside the folder they are installed into, each
/// once, and its metadata is the job's: one `.dist-info` folder, of this name and version,
/// whose RECORD names only entries of the archive.
pub fn check_wheel(name: &str, version: &str, filename: &str, bytes: &[u8]) -> Result<(), String> {
    check_filename(name, version, filename)?;
    check_entries(bytes)?;
    let names = crate::zipdir::central_names(bytes).map_err(|e| format!("its archive: {e}"))?;
    let names: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let mut infos: Vec<&str> = names
        .iter()
        .filter_map(|n| n.split('/').next())
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    infos.sort_unstable();
    infos.dedup();
    let [info] = infos[..] else {
        return Err(format!(
            "it holds {} .dist-info folders, not one: {infos:?}",
            infos.len()
        ));
    };
    let stem = info.trim_end_matches(".dist-info");
    let ours = stem.rsplit_once('-').is_some_and(|(n, v)| {
        crate::names::PackageName::new(n.to_string()).ok()
            == crate::names::PackageName::new(name.to_string()).ok()
            && v.parse::<pep508_rs::pep440_rs::Version>().ok()
                == version.parse::<pep508_rs::pep440_rs::Version>().ok()
    });
    if !ours {
        return Err(format!(
            "its metadata folder `{}` is not {name} {version}'s",
            info.escape_debug()
        ));
    }
    let record_name = format!("{info}/RECORD");
    if names.contains(&record_name) {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|err| format!("it is not a zip archive ({err})"))?;
        let mut record = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                archive
                    .by_name(&record_name)
                    .map_err(|e| format!("its RECORD cannot be read ({e})"))?,
                64 << 20,
            ),
            &mut record,
        )
        .map_err(|e| format!("its RECORD cannot be read ({e})"))?;
        let entries: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        for line in record.lines().filter(|l| !l.trim().is_empty()) {
            let path = record_path(line);
            if !entries.contains(path.as_str()) {
                return Err(format!(
                    "its RECORD lists `{}`, which is not in the archive",
                    path.escape_debug()
                ));
            }
        }
    }
    Ok(())
}

/// The path of one RECORD row (CSV: the first field, maybe quoted).
fn record_path(line: &str) -> String {
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().unwrap_or_default().to_string();
    };
    let mut path = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                path.push('"');
                chars.next();
            }
            '"' => break,
            c => path.push(c),
        }
    }
    path
}

/// A wheel's entries as an installer would write them: each a relative path that stays
/// inside the folder it is unpacked into, and no name twice (which entry "wins" would depend
/// on the reader: what is compared would not be what is installed).
pub fn check_entries(bytes: &[u8]) -> Result<(), String> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|err| format!("it is not a zip archive ({err})"))?;
    let declared = crate::zipdir::central_names(bytes)
        .map_err(|err| format!("its archive is ambiguous ({err})"))?;
    let mut seen = std::collections::HashSet::new();
    for name in &declared {
        if !seen.insert(name.as_slice()) {
            return Err(format!(
                "the entry `{}` appears more than once",
                String::from_utf8_lossy(name).escape_debug()
            ));
        }
    }
    for name in &declared {
        let raw = String::from_utf8_lossy(name);
        let plain = !raw.is_empty()
            && !raw.starts_with('/')
            && !raw.chars().any(|c| c.is_control())
            && !raw.contains('\\')
            && raw.split('/').all(|part| part != ".." && part != ".");
        if !plain {
            return Err(format!(
                "the entry `{}` would land outside the folder it is installed into",
                raw.escape_debug()
            ));
        }
    }
    Ok(())
}

/// A log arriving in pieces (from the Engine API), kept as `read_log` keeps a file: the head
/// and the tail, never more than `MAX_LOG` in memory.
#[derive(Default)]
pub struct CappedLog {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    cut: u64,
}

impl CappedLog {
    pub fn push(&mut self, mut bytes: &[u8]) {
        let half = (MAX_LOG / 2) as usize;
        let room = half.saturating_sub(self.head.len());
        let (now, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(now);
        bytes = rest;
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(half);
        self.tail.drain(..over);
        self.cut += over as u64;
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = self.head;
        if self.cut > 0 {
            out.extend_from_slice(cut_notice(self.cut).as_bytes());
        }
        out.extend(self.tail);
        out
    }
}

/// The line that stands where a log was cut, the same for files and for streams.
fn cut_notice(cut: u64) -> String {
    format!(
        "\n[rewheel: {cut} bytes of this log were cut; the first and last {} are kept]\n",
        MAX_LOG / 2
    )
}

/// Read a job's log from the handle rewheel created it with (never by its path, which the job
/// could have replaced): at most `MAX_LOG` bytes kept, the head and the tail, with the cut said
/// in between. Positioned reads leave the file offset, shared with the job's stdout, alone.
pub fn read_log(file: &std::fs::File) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let Ok(meta) = file.metadata() else {
        return Vec::new();
    };
    let read = |from: u64, len: u64, into: &mut Vec<u8>| {
        let start = into.len();
        into.resize(start + len as usize, 0);
        let mut got = 0;
        while got < len as usize {
            match file.read_at(&mut into[start + got..], from + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        into.truncate(start + got);
    };
    let len = meta.len();
    let mut bytes = Vec::new();
    if len <= MAX_LOG {
        read(0, len, &mut bytes);
        return bytes;
    }
    let half = MAX_LOG / 2;
    bytes.reserve(MAX_LOG as usize + 128);
    read(0, half, &mut bytes);
    bytes.extend_from_slice(cut_notice(len - 2 * half).as_bytes());
    read(len - half, half, &mut bytes);
    bytes
}
