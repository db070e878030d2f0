//! The folder remote: objects as files under a local directory (a NAS mount,
//! a USB disk, or `<data>/remote` by default).
//!
//! Owns mapping keys to paths and crash-safe writes: a put writes a temporary
//! file in the target's own directory, fsyncs it, renames it into place and
//! fsyncs the directory, so a key holds either the old or the new bytes,
//! never a torn mix. Keys with `..`, `.`, empty or absolute parts are refused,
//! so nothing outside the folder can be touched.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BodyReader, Remote, RemoteError};

/// Temporary files start with this; listings skip them.
const TEMP_PREFIX: &str = ".piarchive-tmp-";

/// Objects stored as files under a directory.
#[derive(Debug)]
pub struct DirRemote {
    root: PathBuf,
    /// Makes temporary names unique among concurrent puts of this process.
    temp_counter: AtomicU64,
}

impl DirRemote {
    /// Uses `root`, creating it if it does not exist.
    pub fn new(root: &Path) -> Result<Self, RemoteError> {
        if root.as_os_str().is_empty() {
            return Err(RemoteError::permanent(
                "The folder remote has no path: fill it in.",
            ));
        }
        fs::create_dir_all(root).map_err(|error| {
            RemoteError::permanent(format!(
                "The folder {} cannot be created ({error}): check the path and that the disk \
                 is mounted and writable.",
                root.display()
            ))
        })?;
        Ok(Self {
            root: root.to_owned(),
            temp_counter: AtomicU64::new(0),
        })
    }

    /// The file for `key`, after checking every part of the key.
    fn path_of(&self, key: &str) -> Result<PathBuf, RemoteError> {
        let valid = !key.is_empty()
            && !key.contains('\\')
            && !key.contains('\0')
            && key.split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.starts_with(TEMP_PREFIX)
            });
        if !valid {
            return Err(RemoteError::permanent(format!(
                "The object name {key:?} is not allowed in a folder remote: it must be a \
                 relative path without empty, '.' or '..' parts."
            )));
        }
        Ok(self.root.join(key))
    }

    fn io_error(&self, action: &str, key: &str, error: &io::Error) -> RemoteError {
        let sentence = format!(
            "Could not {action} {key:?} in the folder {} ({error})",
            self.root.display()
        );
        match error.kind() {
            io::ErrorKind::NotFound => RemoteError::not_found(format!("{sentence}.")),
            io::ErrorKind::PermissionDenied => RemoteError::permanent(format!(
                "{sentence}: give piarchive permission to write there."
            )),
            _ => RemoteError::transient(format!(
                "{sentence}: check that the disk is mounted and has space; piarchive will try again."
            )),
        }
    }

    fn write_atomically(&self, path: &Path, body: &[u8]) -> io::Result<()> {
        let directory = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(directory)?;
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp_path = directory.join(format!(
            "{TEMP_PREFIX}{}-{}-{file_name}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp_path)?;
            file.write_all(body)?;
            file.sync_all()?;
            fs::rename(&temp_path, path)
        })();
        if written.is_err() {
            // Best effort: a leftover temp file is skipped by listings anyway.
            let _ = fs::remove_file(&temp_path);
        }
        written?;
        sync_dir(directory)
    }

    fn collect(&self, directory: &Path, relative: &str, keys: &mut Vec<String>) -> io::Result<()> {
        let entries = match fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not a key this remote could have written
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let key = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                self.collect(&entry.path(), &key, keys)?;
            } else if file_type.is_file() {
                keys.push(key);
            }
        }
        Ok(())
    }
}

fn sync_dir(directory: &Path) -> io::Result<()> {
    fs::File::open(directory)?.sync_all()
}

impl Remote for DirRemote {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), RemoteError> {
        let path = self.path_of(key)?;
        self.write_atomically(&path, body)
            .map_err(|error| self.io_error("write", key, &error))
    }

    fn get_at_most(&self, key: &str, max_len: u64) -> Result<Vec<u8>, RemoteError> {
        let path = self.path_of(key)?;
        let max_len = max_len.min(super::caps::MAX_OBJECT_BYTES);
        let file = fs::File::open(&path).map_err(|error| self.io_error("read", key, &error))?;
        let length = file
            .metadata()
            .map_err(|error| self.io_error("read", key, &error))?
            .len();
        if length > max_len {
            return Err(super::caps::too_large(
                &self.describe(),
                key,
                Some(length),
                max_len,
            ));
        }
        let mut bytes = Vec::with_capacity(length as usize);
        file.take(max_len + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| self.io_error("read", key, &error))?;
        if bytes.len() as u64 > max_len {
            return Err(super::caps::too_large(&self.describe(), key, None, max_len));
        }
        Ok(bytes)
    }

    fn get_with(&self, key: &str, read_body: BodyReader<'_>) -> Result<(), RemoteError> {
        let path = self.path_of(key)?;
        let mut file = fs::File::open(&path).map_err(|error| self.io_error("read", key, &error))?;
        let length = file
            .metadata()
            .map_err(|error| self.io_error("read", key, &error))?
            .len();
        super::body_read(read_body(&mut (&mut file).take(length), length), |error| {
            self.io_error("read", key, &error)
        })
    }

    fn head(&self, key: &str) -> Result<Option<u64>, RemoteError> {
        let path = self.path_of(key)?;
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io_error("look up", key, &error)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                let directory = path.parent().unwrap_or(&self.root);
                sync_dir(directory).map_err(|error| self.io_error("delete", key, &error))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.io_error("delete", key, &error)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        // Walk only the deepest folder the prefix names whole.
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        if !folder.is_empty() && self.path_of(folder).is_err() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::new();
        self.collect(&self.root.join(folder), folder, &mut keys)
            .map_err(|error| self.io_error("list", prefix, &error))?;
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}
