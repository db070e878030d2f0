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
