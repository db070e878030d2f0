//! The data disk as the file code sees it: free space, a full disk, and
//! asking Linux to write a file's range to disk now. Used by uploads
//! (`archive`) and by the cache job (`engine`) alike.

use std::fs::File;
use std::io;
use std::path::Path;

/// Whether a failed write failed because the disk is full (ENOSPC).
pub fn is_disk_full(err: &std::io::Error) -> bool {
    err.raw_os_error() == Some(28) || err.kind() == std::io::ErrorKind::StorageFull
}

/// Bytes an unprivileged writer can still use on the file system holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Asks Linux to write `len` bytes of `file` at `offset` to disk now rather
/// than when memory runs short, and with `wait` waits until they are
/// written. Waiting reports (and so uses up, for this open file) a failed
/// write; not waiting is only a hint.
pub fn write_back(file: &File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = if wait {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        } else {
            libc::SYNC_FILE_RANGE_WRITE
        };
        // SAFETY: sync_file_range only reads its integer arguments.
        let result = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                flags,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len, wait);
    Ok(())
}

/// What a failed disk operation means for a person, as one sentence
/// (without a full stop): full, read-only, failing, or the error itself.
pub fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ENOSPC) => "the data disk is full".to_string(),
        Some(libc::EROFS) => {
            "the data disk is read-only (Linux stops writing to a disk it found errors on)"
                .to_string()
        }
        Some(libc::EIO) => "the data disk failed to read or write (input/output error)".to_string(),
        _ if is_disk_full(err) => "the data disk is full".to_string(),
        _ => err.to_string(),
    }
}

/// Whether `err` says the disk itself failed (EIO) or went read-only
/// (EROFS), as opposed to a full disk or a wrong path.
pub fn is_disk_failure(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::EROFS))
}

/// How long a reported disk failure stays on the display and the pages
/// after the last one.
pub const FAILURE_SHOWN: std::time::Duration = std::time::Duration::from_secs(3600);

/// The data disk's health as this process saw it: the folder it watches
/// (for the read-only check) and the last failure reported. Process-wide,
/// like the metrics counters: every writer and reader of the disk reports
/// here without being handed a handle.
struct Health {
    data_dir: std::sync::OnceLock<std::path::PathBuf>,
    last_failure: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

static HEALTH: Health = Health {
    data_dir: std::sync::OnceLock::new(),
    last_failure: std::sync::Mutex::new(None),
};

/// Names the data folder whose file system [`problem`] checks (once, at start).
pub fn watch(data_dir: &Path) {
    let _ = HEALTH.data_dir.set(data_dir.to_path_buf());
}

/// Records a failure of the disk while `doing` (e.g. "reading part 3 of
/// an archive"), when `err` is an input/output error; other errors are not
/// the disk's fault, and a read-only disk is seen live by [`problem`]
/// (so it stops being said once the disk is writable again).
pub fn report(err: &io::Error, doing: &str) {
    if err.raw_os_error() != Some(libc::EIO) {
        return;
    }
    let sentence = format!("The data disk failed while {doing}: {}.", describe(err));
    eprintln!("piarchive: {sentence}");
    let mut last = HEALTH
        .last_failure
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *last = Some((std::time::Instant::now(), sentence));
}

/// A reader of a file on the data disk that [`report`]s the disk's
/// failures (a download's file, say) and passes every error on.
pub struct Reported<R> {
    inner: R,
    doing: &'static str,
}

impl<R> Reported<R> {
    pub fn new(inner: R, doing: &'static str) -> Reported<R> {
        Reported { inner, doing }
    }
}

impl<R: io::Read> io::Read for Reported<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .inspect_err(|err| report(err, self.doing))
    }
}

/// Whether the file system holding `path` is read-only: mounted so, or
/// made so by the kernel after errors (ext4's `errors=remount-ro` marks it
/// `emergency_ro` in `/proc/self/mountinfo` without the read-only flag).
pub fn is_read_only(path: &Path) -> bool {
    let flagged = rustix::fs::statvfs(path)
        .map(|stat| stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
        .unwrap_or(false);
    flagged
        || std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|table| {
                let path = std::fs::canonicalize(path).ok()?;
                mount_is_read_only(&table, &path)
            })
            .unwrap_or(false)
}

/// From `/proc/self/mountinfo` text: whether the mount holding `path` (the
/// longest mount point it is under) is read-only or in emergency read-only.
fn mount_is_read_only(mountinfo: &str, path: &Path) -> Option<bool> {
    let mut best: Option<(usize, bool)> = None;
    for line in mountinfo.lines() {
        let Some((mount, super_part)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = mount.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let point = point.replace("\\040", " ");
        if !path.starts_with(&point) {
            continue;
        }
        let super_options = super_part.split(' ').nth(2).unwrap_or("");
        let read_only = options.split(',').any(|o| o == "ro")
            || super_options
                .split(',')
                .any(|o| o == "ro" || o == "emergency_ro" || o == "shutdown");
        if best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), read_only));
        }
    }
    best.map(|(_, read_only)| read_only)
}

/// The data disk's problem as one sentence, for the display and every
/// page: read-only now, or a failure reported within [`FAILURE_SHOWN`].
pub fn problem() -> Option<String> {
    if let Some(dir) = HEALTH.data_dir.get() {
        if is_read_only(dir) {
            return Some(
                "The data disk is read-only: Linux stopped writing to it, usually after disk errors. Files already stored can still be downloaded; nothing new can be stored until the disk is checked or replaced and the appliance restarted."
                    .to_string(),
            );
        }
    }
    let last = HEALTH
        .last_failure
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match &*last {
        Some((when, sentence)) if when.elapsed() < FAILURE_SHOWN => Some(format!(
            "{sentence} Check or replace the disk; what was stored before is checked against its hashes before any upload."
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_made_read_only_after_errors_is_read_only() {
        let table = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n\
                     40 22 7:0 / /srv/data rw,relatime shared:2 - ext4 /dev/loop0 rw,errors=remount-ro,emergency_ro\n\
                     41 22 7:1 / /srv/other rw,relatime shared:3 - ext4 /dev/loop1 rw\n\
                     42 22 0:5 / /mnt/ro ro,relatime shared:4 - tmpfs tmpfs rw\n";
        let cases = [
            ("/srv/data/db", Some(true)),
            ("/srv/other/db", Some(false)),
            ("/home", Some(false)),
            ("/mnt/ro/x", Some(true)),
        ];
        for (path, expected) in cases {
            assert_eq!(
                mount_is_read_only(table, Path::new(path)),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn failures_are_told_apart_from_other_errors() {
        let eio = io::Error::from_raw_os_error(libc::EIO);
        let erofs = io::Error::from_raw_os_error(libc::EROFS);
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert!(is_disk_failure(&eio) && is_disk_failure(&erofs));
        assert!(!is_disk_failure(&enospc) && !is_disk_failure(&missing));
        assert!(is_disk_full(&enospc));
        assert_eq!(describe(&enospc), "the data disk is full");
        assert!(describe(&erofs).starts_with("the data disk is read-only"));
        assert!(describe(&eio).contains("input/output error"));
    }
}
