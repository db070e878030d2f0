//! The data folder as a whole: its lock (one server per folder) and its
//! permissions (the folder and every folder in it 0700, every file 0600:
//! the family's files are nobody else's on the box).
//!
//! `serve` holds [`DataDirLock`] (an exclusive `flock` on `<data>/lock`)
//! for its whole life; `recover` holds it while it writes. `user add` takes
//! no lock: it only writes one user through LMDB, which is safe beside a
//! running server. Must not touch: what is inside the files.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation, Mode};

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("The data folder {} is in use by another piarchive server; stop that one first (only one may use a folder at a time).", .0.display())]
    InUse(PathBuf),
    #[error("Cannot prepare the data folder {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Held while alive: no other process can take the data folder's lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// From now on, every file and folder this process creates is its user's
/// alone (umask 077), whatever creates it (LMDB, the remote folder, logs).
pub fn restrict_new_files() {
    rustix::process::umask(Mode::from_raw_mode(0o077));
}

/// Creates the data folder (0700) if missing, else takes group and other
/// permissions away from the folder itself (nobody else can reach anything
/// in it from then on; [`make_private`] fixes the rest), and takes its
/// lock, or says which folder is in use.
pub fn lock(data_dir: &Path) -> Result<DataDirLock, DataDirError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io_error(data_dir))?;
    let mode = std::fs::metadata(data_dir)
        .map_err(io_error(data_dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode & 0o7700))
            .map_err(io_error(data_dir))?;
    }
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DataDirError::InUse(data_dir.to_path_buf())),
        Err(err) => Err(io_error(&path)(err.into())),
    }
}

/// Takes group and other permissions away from the data folder and
/// everything in it (a folder made by an older version was 0755 and its
/// files 0644). Symbolic links are not followed. Returns how many changed.
/// One `stat` per file: `serve` runs it on a thread of its own, as a big
/// folder remote can hold hundreds of thousands of files.
pub fn make_private(data_dir: &Path) -> Result<usize, DataDirError> {
    let mut changed = 0;
    let mut pending = vec![data_dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).map_err(io_error(&path))?;
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7700))
                .map_err(io_error(&path))?;
            changed += 1;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_error(&path))? {
                pending.push(entry.map_err(io_error(&path))?.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_is_refused_with_its_name_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let first = lock(&data).unwrap();
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let refused = lock(&data).unwrap_err();
        assert!(matches!(refused, DataDirError::InUse(_)));
        assert!(refused.to_string().contains(&data.display().to_string()));
        drop(first);
        lock(&data).unwrap();
    }

    #[test]
    fn make_private_takes_group_and_other_bits_away_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("archives")).unwrap();
        std::fs::write(data.join("archives/a"), b"x").unwrap();
        std::fs::write(dir.path().join("outside"), b"y").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), data.join("link")).unwrap();
        for (path, mode) in [
            (data.clone(), 0o755),
            (data.join("archives"), 0o755),
            (data.join("archives/a"), 0o644),
            (dir.path().join("outside"), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert_eq!(make_private(&data).unwrap(), 3);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("archives")), 0o700);
        assert_eq!(mode(&data.join("archives/a")), 0o600);
        assert_eq!(mode(&dir.path().join("outside")), 0o644);
        assert_eq!(make_private(&data).unwrap(), 0);
    }
}
