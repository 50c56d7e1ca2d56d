//! Small filesystem helpers shared by the caches.

use crate::digest::Sha256;
use std::io::Write;
use std::path::Path;

/// Write a file so that readers see either the old content or the new, never a torn file:
/// a crash mid-write leaves only a temporary file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Temporary files are private (0600); what we publish is readable like any other file.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> Sha256 {
    Sha256::of(bytes)
}

/// The sha256 of what a reader yields, read in chunks: memory bounded by the buffer.
pub fn sha256_reader(mut reader: impl std::io::Read) -> std::io::Result<Sha256> {
    let mut hasher = Sha256::hasher();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
    }
    Ok(Sha256::finish(hasher))
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<Sha256> {
    sha256_reader(std::fs::File::open(path)?)
}

/// A zip entry's time as seconds since the epoch, read as UTC (what `wheel` and
/// `SOURCE_DATE_EPOCH` mean by it).
pub fn zip_epoch(t: zip::DateTime) -> Option<u64> {
    let civil = jiff::civil::DateTime::new(
        t.year() as i16,
        t.month() as i8,
        t.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        0,
    )
    .ok()?;
    let ts = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    u64::try_from(ts.as_second()).ok()
}

/// Remove what processes that no longer run left in `dir`: each entry whose name `owner` maps to
/// a process id without a `/proc` entry (a job folder or a half-made tree of a process killed
/// with SIGKILL). A live owner's entries are kept: it is still using them.
pub fn sweep_orphans(dir: &Path, owner: impl Fn(&str) -> Option<&str>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = owner(&name).filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = crate::beneath::remove_tree(&entry.path());
        }
    }
}

/// Read a text file a user named (requirements, matrix, settings, a patch) with a cap: a pipe
/// (`-r <(uv export)`) is fine, `/dev/zero` or a runaway generator is an error, not an
/// out-of-memory kill. `what` names the kind of file in the message.
pub fn read_text_capped(path: &Path, max: u64, what: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {} MiB; not a {what}", max >> 20),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Free space below which a file system counts as full: a failed job there failed for want of
/// room (ENOSPC), whatever it managed to report.
const FULL_BELOW: u64 = 1 << 20;

/// When the file system that holds `path` is full (under a mebibyte free, or no free inode),
/// which one it is: the mount point, its device, and what is left.
pub fn out_of_space(path: &Path) -> Option<String> {
    let existing = path
        .ancestors()
        .find(|p| std::fs::symlink_metadata(p).is_ok())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let no_inodes = stat.f_files > 0 && stat.f_favail == 0;
    if free >= FULL_BELOW && !no_inodes {
        return None;
    }
    let mount = mount_point(existing);
    let device = device_of(&mount)
        .map(|d| format!(", device {d}"))
        .unwrap_or_default();
    let left = if no_inodes {
        "no free inode".to_string()
    } else {
        format!("{free} bytes free")
    };
    Some(format!(
        "no space left on device (ENOSPC): the file system mounted at {}{device}, which holds {}, is full ({left})",
        mount.display(),
        path.display()
    ))
}

/// The mount point above `path`: the highest ancestor still on the same device.
fn mount_point(path: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dev = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.dev()).ok();
    let mine = dev(&path);
    let mut top = path.as_path();
    while let Some(parent) = top.parent()
        && dev(parent) == mine
    {
        top = parent;
    }
    top.to_path_buf()
}

/// The device `/proc/self/mounts` names for a mount point (the last mount there wins).
fn device_of(mount: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mount.to_str()?;
    mounts.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let device = fields.next()?;
        (fields.next()? == mount).then(|| device.to_string())
    })
}
