//! LMDB's lock file kept in RAM. `lock.mdb` holds the reader table, which
//! every read transaction writes to; on the data disk the kernel writes that
//! page back about every 30 s, idle or not, with a journal commit for the
//! file's times: 1 to 3.5 MiB an hour on an SD card that serves nobody. Its
//! contents only matter while a process has the database open (LMDB starts
//! it afresh when the first one opens), so it may live in RAM: `lock.mdb`
//! becomes a symlink to a file in a tmpfs (`/run` on the appliance, else
//! `/dev/shm`) that every later open follows; after a reboot LMDB creates
//! the file again through the symlink.
//!
//! Owns: that symlink. Best effort: without a tmpfs, or while another
//! process holds the lock file, it stays where LMDB puts it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `f_type` of a tmpfs (and of devtmpfs) in `statfs`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Where a store's lock file goes: a tmpfs, first of these that exists.
const RAM_DIRS: &[&str] = &["/run", "/dev/shm"];

/// Makes `<dir>/lock.mdb` a symlink into a private folder in a tmpfs, when
/// no process has the database open. After a reboot the tmpfs is empty: the
/// folder is made again here, before LMDB follows the link. A link that
/// points anywhere else (an older place, or RAM that is not there any more)
/// is replaced, or removed so that LMDB makes a plain file: a dangling link
/// would keep the database from opening at all. Says why not on stderr.
pub fn keep_in_ram(dir: &Path) {
    let lock = dir.join("lock.mdb");
    let target = ram_path(dir);
    if lock.is_symlink() {
        if target.is_some() && std::fs::read_link(&lock).ok() == target {
            return;
        }
        // `exists` follows the link: a live file elsewhere may be in use.
        if lock.exists() && in_use(&lock) {
            return;
        }
        if let Err(err) = std::fs::remove_file(&lock) {
            eprintln!("piarchive: the database's lock file link could not be replaced: {err}");
            return;
        }
    } else if lock.exists() {
        if target.is_none() || in_use(&lock) {
            return;
        }
        if let Err(err) = std::fs::remove_file(&lock) {
            eprintln!("piarchive: the database's lock file stays on disk: {err}");
            return;
        }
    }
    let Some(target) = target else { return };
    if let Err(err) = std::os::unix::fs::symlink(&target, &lock) {
        eprintln!("piarchive: the database's lock file stays on disk: {err}");
    }
}

/// The lock file's place in RAM for the database in `dir`, named by a hash
/// of its path so two data folders never share one.
// `f_type` is an i32 on 32-bit targets: the cast is needed there.
#[allow(clippy::unnecessary_cast)]
fn ram_path(dir: &Path) -> Option<PathBuf> {
    let ram = RAM_DIRS.iter().map(Path::new).find(|candidate| {
        rustix::fs::statfs(*candidate).is_ok_and(|stat| stat.f_type as i64 == TMPFS_MAGIC)
            && rustix::fs::access(*candidate, rustix::fs::Access::WRITE_OK).is_ok()
    })?;
    let own = private_folder(ram)?;
    let canonical = std::fs::canonicalize(dir).ok()?;
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    Some(own.join(format!(
        "piarchive-lmdb-{}.lock",
        hex::encode(&digest[..12])
    )))
}

/// `<ram>/piarchive-<uid>`, a folder only this user may enter, made when
/// missing. `/dev/shm` is writable by every user of the machine: a lock file
/// there under a name others can work out could be made (or replaced) by
/// them first, so it goes into a folder that is ours, and nowhere else.
fn private_folder(ram: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::geteuid().as_raw();
    let own = ram.join(format!("piarchive-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&own) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            eprintln!("piarchive: the database's lock file stays on disk: {err}");
            return None;
        }
    }
    let meta = std::fs::symlink_metadata(&own).ok()?;
    let ours = meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0;
    if !ours {
        eprintln!(
            "piarchive: the database's lock file stays on disk: {} is not a private folder of this user",
            own.display()
        );
        return None;
    }
    Some(own)
}

/// Whether a process holds LMDB's lock on the file (it holds a shared lock
/// on its first byte while it has the database open).
fn in_use(lock: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(lock) else {
        return true;
    };
    // SAFETY: a zeroed flock is a valid value; fcntl(F_GETLK) only reads
    // the descriptor and writes the struct it is handed.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as _;
    probe.l_whence = libc::SEEK_SET as _;
    probe.l_start = 0;
    probe.l_len = 1;
    let result = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    result != 0 || i32::from(probe.l_type) != libc::F_UNLCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_moves_to_ram_and_the_store_still_works() {
        if ram_path(Path::new("/")).is_none() {
            eprintln!("skipped: no writable tmpfs at /run or /dev/shm");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path(), 16 << 20).unwrap();
        drop(store);
        keep_in_ram(dir.path());
        let lock = dir.path().join("lock.mdb");
        assert!(lock.is_symlink(), "not moved");
        let target = std::fs::read_link(&lock).unwrap();
        let store = crate::store::Store::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            crate::store::SCHEMA_VERSION
        );
        // Open: moving it again is a no-op.
        keep_in_ram(dir.path());
        assert_eq!(std::fs::read_link(&lock).unwrap(), target);
        drop(store);
        let _ = std::fs::remove_file(target);
    }

    #[test]
    fn the_lock_goes_only_into_a_folder_no_other_user_may_enter() {
        use std::os::unix::fs::PermissionsExt;
        let ram = tempfile::tempdir().unwrap();
        let own = private_folder(ram.path()).expect("made");
        let mode = std::fs::metadata(&own).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Someone opened it up (or made it so): not used.
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(private_folder(ram.path()), None);
        std::fs::remove_dir(&own).unwrap();
        // A symlink in its place is not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), &own).unwrap();
        assert_eq!(private_folder(ram.path()), None);
    }

    #[test]
    fn a_link_into_ram_that_is_gone_is_made_good_before_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock.mdb");
        // As after a reboot, or a disk moved to another machine: the link
        // points into a folder that is not there.
        std::os::unix::fs::symlink("/nonexistent-piarchive-ram/x.lock", &lock).unwrap();
        assert!(!lock.exists(), "dangling");
        // `Store::open` makes it good itself (commands other than `serve`).
        let store = crate::store::Store::open(dir.path(), 16 << 20).expect("opens again");
        assert_eq!(
            store.schema_version().unwrap(),
            crate::store::SCHEMA_VERSION
        );
        match ram_path(dir.path()) {
            Some(target) => {
                assert_eq!(std::fs::read_link(&lock).unwrap(), target);
                drop(store);
                let _ = std::fs::remove_file(target);
            }
            None => assert!(!lock.is_symlink(), "a plain file where there is no RAM"),
        }
    }
}
