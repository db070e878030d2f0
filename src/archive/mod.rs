//! Archives: the catalog of a user's files, their parts, the state machine,
//! and the files under `<data>/archives/`.
//!
//! Owns: `<data>/archives/` and `<data>/uploads/`, the `archives`, `parts`
//! and `uploads` tables. Per-user isolation lives here, in one place:
//! [`Archives::owned`] is the only way the web layer reaches an archive, and
//! another user's archive is reported exactly like a missing one. Must not
//! touch: HTTP, the remote.

pub mod chunker;
pub mod ingest;
pub mod listing;
pub mod trash;
pub mod uploads;
pub mod usage;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::ids;
use crate::store::jobs::{self, JobKind};
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord, Role};
use crate::store::{indexed_key, Store, StoreError};

pub use crate::store::archives::ArchiveCursor;

pub use trash::Deleted;
pub use uploads::{NewUpload, PatchOutcome, UploadStatus};
pub use usage::Usage;

/// Longest archive name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most archives or parts one page lists (docs/API.md: `limit` default and
/// maximum).
pub const PAGE_LIMIT: usize = 1000;
/// Records one page of the admin's archive list reads at most: a filter
/// that matches few archives pages on rather than scanning everything.
pub const ADMIN_SCAN_LIMIT: usize = 5000;
/// Longest original filename kept, in bytes (longer ones are shortened).
pub const MAX_FILENAME_BYTES: usize = 255;
/// Longest folder path kept (`ArchiveRecord::path`), in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("No such archive.")]
    NotFound,
    #[error("No such upload.")]
    UploadNotFound,
    #[error("{0}")]
    InvalidName(String),
    #[error("This upload needs {} but only {} can be used (free space minus the {} reserve and what your unfinished uploads still need). Free some space, finish or cancel other uploads, or ask an admin to lower the reserve.", crate::units::human_size(*.needed), crate::units::human_size(*.available), crate::units::human_size(*.reserve))]
    InsufficientSpace {
        needed: u64,
        available: u64,
        reserve: u64,
    },
    #[error("The upload is at offset {actual}, not {claimed}: ask the server for the offset (HEAD) and continue from there.")]
    OffsetMismatch { claimed: u64, actual: u64 },
    #[error("The body is longer than the declared upload length of {length} bytes; the extra bytes were refused.")]
    TooLong { length: u64 },
    #[error("Another request is writing to this upload right now; try again when it ends.")]
    UploadBusy,
    #[error("You have {max} unfinished uploads already; finish or cancel one, then try again.")]
    TooManyPendingUploads { max: usize },
    #[error("The connection ended after {received} of {expected} bytes; nothing was stored. Upload the file again.")]
    Truncated { received: u64, expected: u64 },
    #[error(
        "The archive is not on this appliance's disk right now (state: {state}); cache it first."
    )]
    NotCached { state: &'static str },
    #[error("Only an archive whose every part is confirmed stored remotely can be removed from this appliance's disk (state: {state}, {parts_remote} of {parts_total} parts stored); wait until it is backed up.")]
    NotBackedUp {
        state: &'static str,
        parts_remote: u32,
        parts_total: u32,
    },
    #[error("This archive is not yet on every destination (still being copied to {names}), so its local copy is kept; it can be removed from this appliance's disk once every destination holds it.")]
    AwaitingCopies { names: String },
    #[error("The archive cannot be fetched back in its state ({state}); only an archive that is in the cloud only can be.")]
    NotUncached { state: &'static str },
    #[error("This archive is in the trash; restore it first.")]
    InTrash,
    #[error("This archive is not in the trash.")]
    NotInTrash,
    #[error("This archive is being deleted for good already; it cannot be restored.")]
    BeingDeleted,
    #[error("The appliance is trying a new version right now, so the trash cannot take anything yet; nothing was deleted. Try again in a few minutes.")]
    TrashNotReady,
    #[error("This upload would take you past your {quota} quota; you use {used}. Delete archives you no longer need (and empty them from the trash), or ask an admin for a larger quota.")]
    OverQuota { quota: String, used: String },
    #[error("The disk is full: {0}")]
    DiskFull(String),
    #[error("This part of the upload could not be written ({}), so its bytes were dropped: resume from byte {offset} once the disk is checked.", crate::disk::describe(.source))]
    WriteFailed { offset: u64, source: std::io::Error },
    #[error("A file could not be read or written: {}.", crate::disk::describe(.0))]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The archives of all users on this appliance.
pub struct Archives {
    store: Store,
    data_dir: PathBuf,
    uploads: uploads::ActiveUploads,
}

impl Archives {
    /// Opens the catalog and finishes or cleans up what a crash left in
    /// `<data>/uploads/`.
    pub fn open(store: Store, data_dir: &Path) -> Result<Archives, ArchiveError> {
        std::fs::create_dir_all(data_dir.join("archives"))?;
        std::fs::create_dir_all(data_dir.join("uploads"))?;
        let archives = Archives {
            store,
            data_dir: data_dir.to_path_buf(),
            uploads: uploads::ActiveUploads::default(),
        };
        archives.recover_uploads()?;
        let expiry = crate::settings::Settings::load(&archives.store)?.pending_upload_expiry();
        archives.expire_pending_uploads(expiry)?;
        Ok(archives)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn archive_path(&self, archive_id: &str) -> PathBuf {
        self.data_dir.join("archives").join(archive_id)
    }

    fn upload_path(&self, upload_id: &str) -> PathBuf {
        self.data_dir.join("uploads").join(upload_id)
    }

    /// A page of the caller's archives, newest first: at most `limit`
    /// (clamped to 1..=[`PAGE_LIMIT`]) after `after`, and the cursor of the
    /// next page when more follow. Reads only this page's records.
    pub fn page(
        &self,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, Option<ArchiveCursor>), ArchiveError> {
        let txn = self.store.read()?;
        let archives = &self.store.tables.archives;
        let limit = limit.clamp(1, PAGE_LIMIT);
        // Schema 2 built the owner index: a version on trial over an older,
        // unmigrated store reads the table instead.
        let (page, more) = match self.store.pending_migration() {
            Some(version) if version < 2 => {
                archives.page_of_owner_unindexed(&txn, owner_id, after, limit)?
            }
            _ => archives.page_of_owner(&txn, owner_id, after, limit)?,
        };
        let next = page.last().filter(|_| more).map(ArchiveCursor::of);
        Ok((page, next))
    }

    /// A page of an archive's parts in order: at most `limit` (clamped to
    /// 1..=[`PAGE_LIMIT`]) with an index above `after`, each with its
    /// index, and whether more follow. Reads only this page's records.
    pub fn parts_page(
        &self,
        archive_id: &str,
        after: Option<u32>,
        limit: usize,
    ) -> Result<(Vec<(u32, PartRecord)>, bool), ArchiveError> {
        let limit = limit.clamp(1, PAGE_LIMIT);
        let txn = self.store.read()?;
        let start = match after {
            Some(index) if index == u32::MAX => return Ok((Vec::new(), false)),
            Some(index) => index + 1,
            None => 0,
        };
        let parts = &self.store.tables.parts;
        let mut page = Vec::with_capacity(limit);
        let mut index = start;
        // Parts are keyed by (archive, index) with no gaps: read the keys in turn.
        while let Some(part) = parts.get(&txn, &indexed_key(archive_id, index))? {
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push((index, part));
            let Some(next) = index.checked_add(1) else {
                break;
            };
            index = next;
        }
        Ok((page, false))
    }

    /// Every archive of every user (admin scripts, the engine).
    pub fn list_all(&self) -> Result<Vec<ArchiveRecord>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self
            .store
            .tables
            .archives
            .all(&txn)?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// Any user's archive, for admins and the engine's reports.
    pub fn get_any(&self, archive_id: &str) -> Result<Option<ArchiveRecord>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self
            .store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())?)
    }

    /// The archive `archive_id` if `owner_id` owns it. Another user's archive
    /// is `NotFound`, exactly like a missing one: this is the one place that
    /// enforces per-user isolation.
    pub fn owned(&self, owner_id: &str, archive_id: &str) -> Result<ArchiveRecord, ArchiveError> {
        if !ids::is_valid_id(archive_id) {
            return Err(ArchiveError::NotFound);
        }
        let txn = self.store.read()?;
        match self
            .store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())?
        {
            Some(archive) if archive.owner_id == owner_id => Ok(archive),
            _ => Err(ArchiveError::NotFound),
        }
    }

    /// The admin path beside [`Archives::owned`]: any user's archive, for
    /// a caller whose role is `acting_role`, which must be admin (anyone
    /// else gets `NotFound`, as for a missing archive). Admins see and act
    /// on records (retry, verify, fetch back); contents stay the owner's.
    pub fn administered(
        &self,
        acting_role: Role,
        archive_id: &str,
    ) -> Result<ArchiveRecord, ArchiveError> {
        if acting_role != Role::Admin || !ids::is_valid_id(archive_id) {
            return Err(ArchiveError::NotFound);
        }
        self.get_any(archive_id)?.ok_or(ArchiveError::NotFound)
    }

    /// For an admin (`acting_role`): up to `limit` (clamped to
    /// 1..=[`PAGE_LIMIT`]) archive records of every user, or of `owner`,
    /// in id order after `after`, that `keep` accepts; and where the next
    /// page starts when more may follow. Reads at most
    /// [`ADMIN_SCAN_LIMIT`] records per page.
    pub fn administered_page(
        &self,
        acting_role: Role,
        owner: Option<&str>,
        keep: impl Fn(&ArchiveRecord) -> bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, Option<String>), ArchiveError> {
        if acting_role != Role::Admin {
            return Ok((Vec::new(), None));
        }
        let limit = limit.clamp(1, PAGE_LIMIT);
        let txn = self.store.read()?;
        let (page, last) = self.store.tables.archives.after(
            &txn,
            after.map(str::as_bytes),
            |archive| owner.is_none_or(|owner| archive.owner_id == owner) && keep(archive),
            limit,
            ADMIN_SCAN_LIMIT,
        )?;
        let records: Vec<ArchiveRecord> = page.into_iter().map(|(_, archive)| archive).collect();
        // More may follow when any record lies past the last one looked at.
        let next = match last {
            Some(key) => {
                let (beyond, _) =
                    self.store
                        .tables
                        .archives
                        .after(&txn, Some(&key), |_| true, 1, 1)?;
                (!beyond.is_empty()).then(|| String::from_utf8_lossy(&key).into_owned())
            }
            None => None,
        };
        Ok((records, next))
    }

    /// Every part of an archive (the engine and scripts; pages read
    /// [`Archives::parts_page`]).
    pub fn parts(&self, archive_id: &str) -> Result<Vec<PartRecord>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self.store.tables.parts_of(&txn, archive_id)?)
    }

    pub fn rename(
        &self,
        owner_id: &str,
        archive_id: &str,
        name: &str,
    ) -> Result<ArchiveRecord, ArchiveError> {
        let name = validate_name(name)?
            .ok_or_else(|| ArchiveError::InvalidName("The name may not be empty.".into()))?;
        self.owned_live(owner_id, archive_id)?;
        self.store.write(|txn, tables| {
            let mut archive = tables
                .archives
                .get(txn, archive_id.as_bytes())?
                .ok_or(ArchiveError::NotFound)?;
            archive.name = name;
            tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
            Ok(archive)
        })
    }

    /// Deletes the archive for good, from the trash or not: in one
    /// transaction it turns `deleting` with its delete job (which removes
    /// the remote copies whose refcount drops to zero, then the records);
    /// the local file goes at once.
    pub fn delete(&self, owner_id: &str, archive_id: &str) -> Result<(), ArchiveError> {
        self.owned(owner_id, archive_id)?;
        self.store
            .write(|txn, tables| -> Result<bool, ArchiveError> {
                begin_delete(txn, tables, archive_id)
            })?;
        self.remove_local_file(archive_id)
    }

    fn remove_local_file(&self, archive_id: &str) -> Result<(), ArchiveError> {
        match std::fs::remove_file(self.archive_path(archive_id)) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Queues the removal of the local file of a backed-up archive. Refused
    /// unless every part is confirmed remote.
    pub fn request_uncache(
        &self,
        owner_id: &str,
        archive_id: &str,
    ) -> Result<ArchiveRecord, ArchiveError> {
        self.owned_live(owner_id, archive_id)?;
        self.store.write(|txn, tables| {
            let archive = tables
                .archives
                .get(txn, archive_id.as_bytes())?
                .ok_or(ArchiveError::NotFound)?;
            let all_remote = tables
                .parts_of(txn, archive_id)?
                .iter()
                .all(|part| part.remote);
            if archive.awaiting_copies {
                let mut names = Vec::new();
                for dest_id in crate::store::copies::incomplete_copies(txn, tables, archive_id)? {
                    if let Some(dest) = tables.destinations.get(txn, dest_id.as_bytes())? {
                        names.push(dest.name);
                    }
                }
                return Err(ArchiveError::AwaitingCopies {
                    names: names.join(" and "),
                });
            }
            if archive.state != ArchiveState::BackedUp
                || !all_remote
                || archive.parts_remote < archive.parts_total
            {
                return Err(ArchiveError::NotBackedUp {
                    state: archive.state.as_str(),
                    parts_remote: archive.parts_remote,
                    parts_total: archive.parts_total,
                });
            }
            jobs::enqueue(
                txn,
                tables,
                JobKind::Uncache {
                    archive_id: archive_id.to_string(),
                },
            )?;
            Ok(archive)
        })
    }

    /// Queues fetching an uncached archive back: it turns `caching`.
    pub fn request_cache(
        &self,
        owner_id: &str,
        archive_id: &str,
    ) -> Result<ArchiveRecord, ArchiveError> {
        self.owned_live(owner_id, archive_id)?;
        self.store.write(|txn, tables| {
            let mut archive = tables
                .archives
                .get(txn, archive_id.as_bytes())?
                .ok_or(ArchiveError::NotFound)?;
            match archive.state {
                ArchiveState::Caching => return Ok(archive),
                ArchiveState::Uncached => {}
                other => {
                    return Err(ArchiveError::NotUncached {
                        state: other.as_str(),
                    })
                }
            }
            archive.state = ArchiveState::Caching;
            archive.last_error = None;
            tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
            jobs::enqueue(
                txn,
                tables,
                JobKind::Cache {
                    archive_id: archive_id.to_string(),
                },
            )?;
            Ok(archive)
        })
    }

    /// Opens the archive's file for download and notes the access.
    pub fn open_content(
        &self,
        owner_id: &str,
        archive_id: &str,
    ) -> Result<(ArchiveRecord, File), ArchiveError> {
        let archive = self.owned_live(owner_id, archive_id)?;
        if !archive.state.is_local() {
            return Err(ArchiveError::NotCached {
                state: archive.state.as_str(),
            });
        }
        let file = File::open(self.archive_path(archive_id))?;
        // Best effort: a full or read-only disk still serves what it holds.
        let noted = self.store.write(|txn, tables| -> Result<(), ArchiveError> {
            if let Some(mut record) = tables.archives.get(txn, archive_id.as_bytes())? {
                record.last_accessed_at = ids::now_secs();
                tables.archives.put(txn, archive_id.as_bytes(), &record)?;
            }
            Ok(())
        });
        if let Err(err) = noted {
            eprintln!("piarchive: a download's time of access was not saved: {err}");
        }
        Ok((archive, file))
    }
}

/// Turns the archive `deleting` and queues its delete job, in the caller's
/// transaction; `false` when it is gone or was `deleting` already. An
/// archive in the trash stays listed there until the job removes it.
fn begin_delete(
    txn: &mut heed::RwTxn,
    tables: &crate::store::Tables,
    archive_id: &str,
) -> Result<bool, ArchiveError> {
    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
        return Ok(false);
    };
    if archive.state == ArchiveState::Deleting {
        return Ok(false);
    }
    archive.state = ArchiveState::Deleting;
    archive.local_copy = false;
    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
    tables.archives.purging(txn, archive_id.as_bytes())?;
    // The tus upload that made it is kept a while after its last byte, so a
    // client that lost the last answer still learns the archive id; once
    // the archive is deleted for good it has nothing left to tell.
    for (key, upload) in tables.uploads.all(txn)? {
        if upload.completed && upload.archive_id == archive_id {
            tables.uploads.delete(txn, &key)?;
        }
    }
    jobs::enqueue(
        txn,
        tables,
        JobKind::Delete {
            archive_id: archive_id.to_string(),
        },
    )?;
    Ok(true)
}

/// Checks a user-chosen archive name. `Ok(None)` for an empty name (the
/// caller uses the filename instead).
pub fn validate_name(name: &str) -> Result<Option<String>, ArchiveError> {
    let name = strip_bidi_controls(name);
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().any(char::is_control) {
        return Err(ArchiveError::InvalidName(
            "The name may not contain line breaks or other control characters.".into(),
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(ArchiveError::InvalidName(format!(
            "The name is {chars} characters long; at most {MAX_NAME_CHARS} are allowed."
        )));
    }
    Ok(Some(name.to_string()))
}

/// Keeps the last path component of an uploaded file's name, replaces
/// control characters and shortens it to [`MAX_FILENAME_BYTES`]. Never fails:
/// the name is only shown and offered back on download.
pub fn clean_filename(filename: &str) -> String {
    let filename = strip_bidi_controls(filename);
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let mut cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        cleaned = "file".to_string();
    }
    if cleaned.len() > MAX_FILENAME_BYTES {
        let mut cut = MAX_FILENAME_BYTES;
        while !cleaned.is_char_boundary(cut) {
            cut -= 1;
        }
        cleaned.truncate(cut);
    }
    cleaned
}

/// The folder part of a file's path in an uploaded folder
/// (`Photos/2024/a.jpg` gives `Photos/2024`), `/`-separated: backslashes
/// count as separators, empty and `.` components are dropped, control
/// characters replaced (`..` goes up one), and it is shortened to [`MAX_PATH_BYTES`] at a
/// component's end. `None` when no folder is left. Never fails: the path
/// is only shown and searched.
pub fn clean_folder_path(relative_path: &str) -> Option<String> {
    let mut components = folder_components(relative_path);
    components.pop();
    join_folder(components)
}

/// A folder path cleaned by the rules of [`clean_folder_path`], all of it a
/// folder (no file name last): for a path from elsewhere, such as a
/// manifest in the bucket. A path [`clean_folder_path`] gave comes back
/// unchanged.
pub fn clean_folder(folder: &str) -> Option<String> {
    join_folder(folder_components(folder))
}

/// The components of `path` after `.`, `..` and empty ones are applied,
/// control characters replaced.
fn folder_components(path: &str) -> Vec<String> {
    let text = strip_bidi_controls(path);
    let mut components: Vec<String> = Vec::new();
    for part in text.split(['/', '\\']) {
        let part: String = part
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        match part.trim() {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            part => components.push(part.to_string()),
        }
    }
    components
}

/// `components` joined by `/`, up to [`MAX_PATH_BYTES`]; `None` if empty.
fn join_folder(components: Vec<String>) -> Option<String> {
    let mut path = String::new();
    for component in components {
        if path.len() + 1 + component.len() > MAX_PATH_BYTES {
            break;
        }
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&component);
    }
    (!path.is_empty()).then_some(path)
}

/// `text` without bidirectional control characters.
pub fn strip_bidi_controls(text: &str) -> String {
    text.chars().filter(|c| !ids::is_bidi_control(*c)).collect()
}

/// What the archives take on the remote, for `stats()` and the admin page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteTotals {
    /// Bytes the archives' parts take on the remote, summed over the
    /// archives whose size there is known (a part two archives share counts
    /// for both).
    pub stored_bytes: u64,
    /// Bytes compression saved: size minus size on the remote, over the
    /// archives wholly uploaded whose size there is known.
    pub saved_bytes: u64,
}

/// Sums [`RemoteTotals`] over `archives`.
pub fn remote_totals<'a>(archives: impl IntoIterator<Item = &'a ArchiveRecord>) -> RemoteTotals {
    let mut totals = RemoteTotals::default();
    for archive in archives {
        let Some(stored) = archive.stored_size else {
            continue;
        };
        totals.stored_bytes += stored;
        if archive.parts_remote >= archive.parts_total {
            totals.saved_bytes += archive.size.saturating_sub(stored);
        }
    }
    totals
}

pub(crate) fn new_archive_record(
    archive_id: &str,
    owner_id: &str,
    name: &str,
    filename: &str,
    size: u64,
    sha256: &[u8; 32],
    parts_total: u32,
) -> ArchiveRecord {
    let now = ids::now_secs();
    ArchiveRecord {
        id: archive_id.to_string(),
        owner_id: owner_id.to_string(),
        name: name.to_string(),
        filename: filename.to_string(),
        size,
        sha256: hex::encode(sha256),
        created_at: now,
        state: ArchiveState::Local,
        last_error: None,
        parts_total,
        parts_remote: 0,
        bytes_remote: 0,
        last_accessed_at: now,
        local_copy: true,
        stored_size: Some(0),
        protected_until: None,
        path: None,
        awaiting_copies: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `bench/soak`: each tus upload left its completed record
    /// behind until the pending-upload expiry, after its archive was
    /// deleted for good. Deleting the archive for good removes it.
    #[test]
    fn deleting_for_good_forgets_the_completed_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 64 << 20).unwrap();
        let archives = Archives::open(store, dir.path()).unwrap();
        let new = |name: &str| uploads::NewUpload {
            owner_id: "u1".to_owned(),
            name: name.to_owned(),
            filename: format!("{name}.bin"),
            length: 3,
            relative_path: None,
        };
        let (done, pending) = (
            archives.create_upload(new("done")).unwrap(),
            archives.create_upload(new("pending")).unwrap(),
        );
        let outcome = archives
            .patch_upload("u1", &done.id, 0, Some(3), &mut &b"abc"[..])
            .unwrap();
        let uploads::PatchOutcome::Complete { archive } = outcome else {
            panic!("the last byte landed");
        };
        let uploads = |archives: &Archives| {
            let txn = archives.store.read().unwrap();
            let all = archives.store.tables.uploads.all(&txn).unwrap();
            all.into_iter().map(|(_, u)| u.id).collect::<Vec<_>>()
        };
        assert_eq!(uploads(&archives).len(), 2);
        archives.delete("u1", &archive.id).unwrap();
        assert_eq!(uploads(&archives), vec![pending.id]);
    }

    #[test]
    fn folder_paths_keep_the_folders_only() {
        for (relative, expected) in [
            ("Photos/2024/a.jpg", Some("Photos/2024")),
            ("a.jpg", None),
            ("", None),
            ("C:\\Users\\kim\\b.jpg", Some("C:/Users/kim")),
            ("/x//./y/../z/c.jpg", Some("x/z")),
            ("../../etc/passwd", Some("etc")),
            ("line\nbreak/\u{202E}gpj.exe", Some("line_break")),
        ] {
            assert_eq!(
                clean_folder_path(relative).as_deref(),
                expected,
                "{relative:?}"
            );
        }
        let long = format!("{}/{}/f", "a".repeat(1000), "b".repeat(100));
        assert_eq!(clean_folder_path(&long), Some("a".repeat(1000)));
    }

    /// A folder from the bucket (a manifest's `path`) is cleaned by the same
    /// rules, with no file name to drop; a path the cleaning gave comes
    /// back unchanged.
    #[test]
    fn stored_folders_are_cleaned_again_and_clean_ones_kept() {
        for (folder, expected) in [
            ("Photos <2024>/Été", Some("Photos <2024>/Été")),
            ("a", Some("a")),
            ("", None),
            ("../..", None),
            ("/x//./y/../z/", Some("x/z")),
            ("..\\..\\etc\\cron.d", Some("etc/cron.d")),
            ("line\nbreak/\u{202E}gpj.exe", Some("line_break/gpj.exe")),
        ] {
            assert_eq!(clean_folder(folder).as_deref(), expected, "{folder:?}");
        }
        let long = format!("{}/{}", "a".repeat(1000), "b".repeat(100));
        assert_eq!(clean_folder(&long), Some("a".repeat(1000)));
        for relative in ["Photos/2024/a.jpg", "/x//./y/../z/c.jpg", "a\tb/ c /d.jpg"] {
            let once = clean_folder_path(relative);
            assert_eq!(once.as_deref().and_then(clean_folder), once, "{relative:?}");
        }
    }

    #[test]
    fn remote_totals_count_known_sizes_and_savings_of_whole_uploads() {
        let record = |size, stored_size, parts_remote| ArchiveRecord {
            parts_remote,
            stored_size,
            ..new_archive_record("a", "o", "n", "f", size, &[0; 32], 2)
        };
        let archives = [
            record(1000, Some(400), 2),
            record(1000, Some(100), 1),
            record(500, None, 2),
            record(10, Some(91), 2),
        ];
        assert_eq!(
            remote_totals(&archives),
            RemoteTotals {
                stored_bytes: 591,
                saved_bytes: 600,
            }
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            validate_name("  holiday 2024  ").unwrap(),
            Some("holiday 2024".into())
        );
        assert_eq!(validate_name("").unwrap(), None);
        assert_eq!(validate_name("\u{202E}\u{2067}").unwrap(), None);
        assert_eq!(
            validate_name("report\u{202E}fdp.exe").unwrap(),
            Some("reportfdp.exe".into())
        );
        assert_eq!(
            validate_name("\"<b>&</b>\" 📷 ../x").unwrap(),
            Some("\"<b>&</b>\" 📷 ../x".into())
        );
        assert!(validate_name("two\nlines")
            .unwrap_err()
            .to_string()
            .contains("line breaks"));
        assert!(validate_name(&"x".repeat(10_000))
            .unwrap_err()
            .to_string()
            .contains("10000 characters"));
    }

    #[test]
    fn filenames() {
        for (input, expected) in [
            ("photo.jpg", "photo.jpg"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\me\\a.txt", "a.txt"),
            ("a\nb\"c<d>&.txt", "a_b\"c<d>&.txt"),
            ("..", "file"),
            ("", "file"),
            ("dir/", "file"),
            ("📷 ok.png", "📷 ok.png"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            (
                "\u{2066}a\u{2069}\u{200E}\u{200F}\u{061C}b\u{202A}.txt",
                "ab.txt",
            ),
        ] {
            assert_eq!(clean_filename(input), expected, "{input:?}");
        }
        let long = "é".repeat(5000);
        let cleaned = clean_filename(&long);
        assert!(cleaned.len() <= MAX_FILENAME_BYTES && cleaned.chars().all(|c| c == 'é'));
    }
}
