//! Uploads into `<data>/uploads/`: resumable tus uploads (one record per
//! upload, any number of PATCH requests, surviving restarts) and one-shot
//! uploads (one request, nothing kept if it is cut).
//!
//! An upload becomes an archive in two steps: its file is renamed into
//! `<data>/archives/`, then one write transaction creates the archive and
//! its parts and marks the upload complete. [`Archives::recover_uploads`]
//! repairs a crash between the two, so no half archive ever appears.
//!
//! Limits: a user has at most [`MAX_PENDING_UPLOADS_PER_USER`] unfinished
//! tus uploads; one untouched (no byte written) for the
//! `pending_upload_expiry_seconds` setting is removed with its bytes
//! ([`Archives::expire_pending_uploads`]); a new upload must fit in the free
//! space left after what the uploader's own pending ones still declare
//! (another user's reservation never refuses it), and within the
//! uploader's quota (`super::usage`); and no pending upload keeps a file
//! open between its requests.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, SystemTime};

use super::ingest::{self, IngestError, IngestState, PumpEnd};
use super::{new_archive_record, ArchiveError, Archives};
use crate::disk::available_bytes;
use crate::ids;
use crate::settings::Settings;
use crate::store::indexed_key;
use crate::store::records::{ArchiveRecord, PartRecord, UploadRecord};

/// What a new upload declares.
pub struct NewUpload {
    pub owner_id: String,
    /// The archive's name; the filename when empty.
    pub name: String,
    /// The original filename, as sent (it is cleaned here).
    pub filename: String,
    pub length: u64,
    /// Where the file was in the folder that was uploaded (tus metadata
    /// `relative_path`, e.g. `Photos/2024/a.jpg`), as sent: the folder part
    /// is kept, cleaned, as the archive's `path`.
    pub relative_path: Option<String>,
}

pub struct UploadStatus {
    pub upload_id: String,
    pub offset: u64,
    pub length: u64,
    /// Set once the last byte has landed.
    pub archive_id: Option<String>,
}

pub enum PatchOutcome {
    /// The request body ended (or was cut); `offset` bytes are stored.
    Stored { offset: u64 },
    /// The last byte landed: the archive exists.
    Complete { archive: Box<ArchiveRecord> },
}

/// Unfinished tus uploads one user may have at once.
pub const MAX_PENDING_UPLOADS_PER_USER: usize = 20;

/// The hashing state of uploads that had a PATCH since the process started
/// (the file itself is opened per request). Each upload has its own lock,
/// so one upload's PATCH never waits for another's.
#[derive(Default)]
pub(super) struct ActiveUploads {
    slots: Mutex<HashMap<String, Arc<Mutex<Option<Active>>>>>,
}

struct Active {
    state: IngestState,
}

/// Creates an upload's file: new, empty, readable by this user only.
pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

impl ActiveUploads {
    fn slot(&self, upload_id: &str) -> Arc<Mutex<Option<Active>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(upload_id.to_string()).or_default().clone()
    }

    fn forget(&self, upload_id: &str) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(upload_id);
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Archives {
    /// Refuses `needed` more bytes when they do not fit in the free space
    /// minus the reserve, minus what `owner_id`'s own pending uploads
    /// (except `except`) still declare they will write. Reservations count
    /// against their uploader only: one user's declared upload never makes
    /// another's refused (a reservation that outgrows the disk meets a full
    /// disk when its bytes come, and keeps what it wrote).
    fn check_space(
        &self,
        needed: u64,
        owner_id: &str,
        except: Option<&str>,
    ) -> Result<(), ArchiveError> {
        let reserve = Settings::load(&self.store)?.free_space_reserve_bytes;
        let promised = self.pending_bytes_to_come(owner_id, except)?;
        let available = available_bytes(&self.data_dir)?
            .saturating_sub(reserve)
            .saturating_sub(promised);
        if needed > available {
            return Err(ArchiveError::InsufficientSpace {
                needed,
                available,
                reserve,
            });
        }
        Ok(())
    }

    fn upload_record(&self, owner_id: &str, upload_id: &str) -> Result<UploadRecord, ArchiveError> {
        if !ids::is_valid_id(upload_id) {
            return Err(ArchiveError::UploadNotFound);
        }
        let txn = self.store.read()?;
        match self.store.tables.uploads.get(&txn, upload_id.as_bytes())? {
            Some(upload) if upload.owner_id == owner_id => Ok(upload),
            _ => Err(ArchiveError::UploadNotFound),
        }
    }

    fn pending_uploads(&self) -> Result<Vec<UploadRecord>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self
            .store
            .tables
            .uploads
            .all(&txn)?
            .into_iter()
            .map(|(_, upload)| upload)
            .filter(|upload| !upload.completed)
            .collect())
    }

    /// The owner's unfinished tus uploads with the bytes received so far,
    /// oldest first (for the home page's "unfinished uploads").
    pub fn pending_uploads_of(
        &self,
        owner_id: &str,
    ) -> Result<Vec<(UploadRecord, u64)>, ArchiveError> {
        let mut mine: Vec<(UploadRecord, u64)> = self
            .pending_uploads()?
            .into_iter()
            .filter(|upload| upload.owner_id == owner_id)
            .map(|upload| {
                let received =
                    std::fs::metadata(self.upload_path(&upload.id)).map_or(0, |m| m.len());
                (upload, received)
            })
            .collect();
        mine.sort_by_key(|(upload, _)| upload.created_at);
        Ok(mine)
    }

    /// Bytes `owner_id`'s pending uploads (except `except`) declared and
    /// have not written yet.
    fn pending_bytes_to_come(
        &self,
        owner_id: &str,
        except: Option<&str>,
    ) -> Result<u64, ArchiveError> {
        let mut total = 0u64;
        for upload in self.pending_uploads()? {
            if Some(upload.id.as_str()) == except || upload.owner_id != owner_id {
                continue;
            }
            let written = std::fs::metadata(self.upload_path(&upload.id)).map_or(0, |m| m.len());
            total = total.saturating_add(upload.length.saturating_sub(written));
        }
        Ok(total)
    }

    /// Starts a resumable upload, refusing it at once when the disk cannot
    /// hold it, it would take the owner past their quota, or the owner has
    /// [`MAX_PENDING_UPLOADS_PER_USER`] already. The count, the quota and
    /// the insert are one write transaction, so parallel creations cannot
    /// pass the checks together.
    pub fn create_upload(&self, new: NewUpload) -> Result<UploadRecord, ArchiveError> {
        let filename = super::clean_filename(&new.filename);
        let name = super::validate_name(&new.name)?.unwrap_or_else(|| filename.clone());
        self.store.room_for_growth()?;
        self.check_space(new.length, &new.owner_id, None)?;
        let record = UploadRecord {
            id: ids::random_id(),
            owner_id: new.owner_id,
            archive_id: ids::random_id(),
            name,
            filename,
            length: new.length,
            created_at: ids::now_secs(),
            completed: false,
            path: new
                .relative_path
                .as_deref()
                .and_then(super::clean_folder_path),
        };
        let path = self.upload_path(&record.id);
        create_private(&path)?.sync_all()?;
        fsync_dir(&self.data_dir.join("uploads"))?;
        let inserted = self.store.write(|txn, tables| -> Result<(), ArchiveError> {
            let pending = tables
                .uploads
                .all(txn)?
                .iter()
                .filter(|(_, u)| u.owner_id == record.owner_id && !u.completed)
                .count();
            if pending >= MAX_PENDING_UPLOADS_PER_USER {
                return Err(ArchiveError::TooManyPendingUploads {
                    max: MAX_PENDING_UPLOADS_PER_USER,
                });
            }
            super::usage::usage_in(txn, tables, &record.owner_id)?.check(record.length)?;
            tables.uploads.put(txn, record.id.as_bytes(), &record)?;
            Ok(())
        });
        if let Err(err) = inserted {
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        Ok(record)
    }

    /// The upload's offset (tus HEAD). A complete upload whose final answer
    /// was lost is finished here.
    pub fn upload_status(
        &self,
        owner_id: &str,
        upload_id: &str,
    ) -> Result<UploadStatus, ArchiveError> {
        let record = self.upload_record(owner_id, upload_id)?;
        if record.completed {
            return Ok(UploadStatus {
                upload_id: record.id,
                offset: record.length,
                length: record.length,
                archive_id: Some(record.archive_id),
            });
        }
        let slot = self.uploads.slot(upload_id);
        let mut guard = match slot.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(ArchiveError::UploadBusy),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let offset = match guard.as_ref() {
            Some(active) => active.state.received(),
            None => std::fs::metadata(self.upload_path(upload_id))?.len(),
        };
        if offset == record.length {
            let archive = self.finish_upload(&record, &mut guard)?;
            return Ok(UploadStatus {
                upload_id: record.id,
                offset,
                length: record.length,
                archive_id: Some(archive.id),
            });
        }
        Ok(UploadStatus {
            upload_id: record.id,
            offset,
            length: record.length,
            archive_id: None,
        })
    }

    /// A PATCH to an upload whose last byte already landed: a repeat of
    /// the last, empty request answers the archive; anything else is an
    /// offset mismatch.
    fn patch_completed(
        &self,
        record: &UploadRecord,
        claimed_offset: u64,
        content_length: Option<u64>,
    ) -> Result<PatchOutcome, ArchiveError> {
        if claimed_offset == record.length && content_length.unwrap_or(0) == 0 {
            let txn = self.store.read()?;
            let archive = self
                .store
                .tables
                .archives
                .get(&txn, record.archive_id.as_bytes())?
                .ok_or(ArchiveError::UploadNotFound)?;
            return Ok(PatchOutcome::Complete {
                archive: Box::new(archive),
            });
        }
        Err(ArchiveError::OffsetMismatch {
            claimed: claimed_offset,
            actual: record.length,
        })
    }

    /// Appends a request body at `claimed_offset` (tus PATCH).
    pub fn patch_upload(
        &self,
        owner_id: &str,
        upload_id: &str,
        claimed_offset: u64,
        content_length: Option<u64>,
        body: &mut dyn Read,
    ) -> Result<PatchOutcome, ArchiveError> {
        let record = self.upload_record(owner_id, upload_id)?;
        if record.completed {
            return self.patch_completed(&record, claimed_offset, content_length);
        }
        let slot = self.uploads.slot(upload_id);
        let mut guard = match slot.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(ArchiveError::UploadBusy),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        // Opened for this request only: a pending upload holds no file
        // descriptor between requests.
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.upload_path(upload_id))?;
        if guard.is_none() {
            let state = IngestState::from_file(&mut file)?;
            *guard = Some(Active { state });
        }
        let active = guard.as_mut().expect("filled above");
        let actual = active.state.received();
        if claimed_offset != actual {
            return Err(ArchiveError::OffsetMismatch {
                claimed: claimed_offset,
                actual,
            });
        }
        let remaining = record.length - actual;
        if let Some(length) = content_length {
            if length > remaining {
                return Err(ArchiveError::TooLong {
                    length: record.length,
                });
            }
        }
        self.check_space(
            content_length.unwrap_or(remaining).min(remaining),
            owner_id,
            Some(upload_id),
        )?;
        let pumped = ingest::pump(body, &mut file, &mut active.state, remaining);
        let end = match pumped {
            Ok((_, end)) => end,
            Err(IngestError::Write(err)) => {
                // The disk failed a write: nothing this request sent is
                // trusted. The next request rebuilds the state from the file.
                return Err(drop_request(&mut file, actual, &mut guard, err));
            }
            Err(err) => {
                // Full: drop the bytes of the failed buffer so file and
                // state agree; what was written before is kept.
                let kept = active.state.received();
                file.set_len(kept)?;
                file.sync_data()?;
                return Err(pump_error(err, record.length));
            }
        };
        if let PumpEnd::TooLong = end {
            // Undo the whole request: the file goes back to where it
            // started and the hashing state is rebuilt on the next request.
            file.set_len(actual)?;
            file.sync_data()?;
            *guard = None;
            return Err(ArchiveError::TooLong {
                length: record.length,
            });
        }
        if let Err(err) = file.sync_data() {
            // Linux may already have dropped the pages it failed to write.
            return Err(drop_request(&mut file, actual, &mut guard, err));
        }
        let offset = active.state.received();
        if offset == record.length {
            if let Err(err) = file.sync_all() {
                return Err(drop_request(&mut file, actual, &mut guard, err));
            }
            drop(file);
            let archive = self.finish_upload(&record, &mut guard)?;
            return Ok(PatchOutcome::Complete {
                archive: Box::new(archive),
            });
        }
        Ok(PatchOutcome::Stored { offset })
    }

    /// Removes the pending uploads no byte was written to for `max_age`
    /// (judged by their file's modification time), with their bytes, and
    /// the records of completed uploads as old. An upload a request is
    /// writing to now is left alone. Returns how many went.
    pub fn expire_pending_uploads(&self, max_age: Duration) -> Result<usize, ArchiveError> {
        let Some(cutoff) = SystemTime::now().checked_sub(max_age) else {
            return Ok(0);
        };
        let records: Vec<UploadRecord> = {
            let txn = self.store.read()?;
            let all = self.store.tables.uploads.all(&txn)?;
            all.into_iter().map(|(_, upload)| upload).collect()
        };
        let mut expired = 0;
        for record in records {
            let touched = if record.completed {
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(record.created_at.max(0) as u64))
            } else {
                std::fs::metadata(self.upload_path(&record.id))
                    .and_then(|m| m.modified())
                    .ok()
            };
            if touched.is_some_and(|touched| touched > cutoff) {
                continue;
            }
            if self.remove_upload(&record).is_ok() {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Drops an upload's record and, unless it completed, its bytes; refused
    /// (`UploadBusy`) while a request writes to it.
    fn remove_upload(&self, record: &UploadRecord) -> Result<(), ArchiveError> {
        let slot = self.uploads.slot(&record.id);
        let guard = match slot.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(ArchiveError::UploadBusy),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        self.store
            .write(|txn, tables| -> Result<(), ArchiveError> {
                tables.uploads.delete(txn, record.id.as_bytes())?;
                Ok(())
            })?;
        drop(guard);
        self.uploads.forget(&record.id);
        if !record.completed {
            remove_if_present(&self.upload_path(&record.id))?;
        }
        Ok(())
    }

    /// Abandons an upload (tus DELETE) and removes its bytes. For a completed
    /// upload only the record goes; the archive stays.
    pub fn terminate_upload(&self, owner_id: &str, upload_id: &str) -> Result<(), ArchiveError> {
        let record = self.upload_record(owner_id, upload_id)?;
        self.remove_upload(&record)
    }

    /// A one-shot upload: the whole file in one request body of
    /// `length` bytes. A cut or over-long body stores nothing.
    pub fn ingest_whole(
        &self,
        new: NewUpload,
        body: &mut dyn Read,
    ) -> Result<ArchiveRecord, ArchiveError> {
        let filename = super::clean_filename(&new.filename);
        let name = super::validate_name(&new.name)?.unwrap_or_else(|| filename.clone());
        self.store.room_for_growth()?;
        self.usage(&new.owner_id)?.check(new.length)?;
        self.check_space(new.length, &new.owner_id, None)?;
        let archive_id = ids::random_id();
        let temp = self
            .data_dir
            .join("uploads")
            .join(format!("{archive_id}.oneshot"));
        let mut file = create_private(&temp)?;
        let mut state = IngestState::new();
        let result = ingest::pump(body, &mut file, &mut state, new.length);
        let cleanup = |err: ArchiveError| {
            let _ = std::fs::remove_file(&temp);
            err
        };
        match result {
            Ok((_, PumpEnd::TooLong)) => {
                return Err(cleanup(ArchiveError::TooLong { length: new.length }))
            }
            Ok((written, PumpEnd::Eof | PumpEnd::ReadFailed(_))) if written < new.length => {
                return Err(cleanup(ArchiveError::Truncated {
                    received: written,
                    expected: new.length,
                }))
            }
            Ok(_) => {}
            Err(IngestError::DiskFull { .. }) => {
                return Err(cleanup(ArchiveError::DiskFull(
                    "the upload was stopped and nothing was kept.".into(),
                )))
            }
            Err(IngestError::Write(err)) => {
                crate::disk::report(&err, "receiving an upload");
                return Err(cleanup(ArchiveError::Io(err)));
            }
        }
        if let Err(err) = file.sync_all() {
            crate::disk::report(&err, "receiving an upload");
            return Err(cleanup(err.into()));
        }
        drop(file);
        let done = state.finish();
        let archive = ArchiveRecord {
            path: new
                .relative_path
                .as_deref()
                .and_then(super::clean_folder_path),
            ..new_archive_record(
                &archive_id,
                &new.owner_id,
                &name,
                &filename,
                done.size,
                &done.sha256,
                done.parts.len() as u32,
            )
        };
        let path = self.archive_path(&archive_id);
        std::fs::rename(&temp, &path).map_err(|e| cleanup(e.into()))?;
        if let Err(err) = fsync_dir(&self.data_dir.join("archives")) {
            let _ = std::fs::remove_file(&path);
            return Err(err.into());
        }
        let committed = self.store.write(|txn, tables| -> Result<(), ArchiveError> {
            // Again where it counts: parallel uploads of one user may all
            // have passed the check at their start.
            super::usage::usage_in(txn, tables, &new.owner_id)?.check(archive.size)?;
            tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
            for (index, part) in done.parts.iter().enumerate() {
                tables.parts.put(
                    txn,
                    &indexed_key(&archive_id, index as u32),
                    &part_record(part),
                )?;
            }
            crate::store::jobs::enqueue_backup(txn, tables, &archive_id, archive.parts_total)?;
            Ok(())
        });
        if let Err(err) = committed {
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        Ok(archive)
    }

    /// Turns a fully received upload into an archive. The caller holds the
    /// upload's lock.
    fn finish_upload(
        &self,
        record: &UploadRecord,
        slot: &mut Option<Active>,
    ) -> Result<ArchiveRecord, ArchiveError> {
        let state = match slot.take() {
            Some(active) => active.state,
            None => IngestState::from_file(&mut File::open(self.upload_path(&record.id))?)?,
        };
        let done = state.finish();
        let archive = ArchiveRecord {
            path: record.path.clone(),
            ..new_archive_record(
                &record.archive_id,
                &record.owner_id,
                &record.name,
                &record.filename,
                done.size,
                &done.sha256,
                done.parts.len() as u32,
            )
        };
        let from = self.upload_path(&record.id);
        let to = self.archive_path(&record.archive_id);
        std::fs::rename(&from, &to)?;
        if let Err(err) = fsync_dir(&self.data_dir.join("archives")) {
            // Back where it was: the next HEAD or PATCH finishes it.
            std::fs::rename(&to, &from)?;
            return Err(err.into());
        }
        let committed = self.store.write(|txn, tables| -> Result<(), ArchiveError> {
            tables.archives.put(txn, archive.id.as_bytes(), &archive)?;
            for (index, part) in done.parts.iter().enumerate() {
                tables.parts.put(
                    txn,
                    &indexed_key(&archive.id, index as u32),
                    &part_record(part),
                )?;
            }
            crate::store::jobs::enqueue_backup(txn, tables, &archive.id, archive.parts_total)?;
            let mut completed = record.clone();
            completed.completed = true;
            tables.uploads.put(txn, record.id.as_bytes(), &completed)?;
            Ok(())
        });
        if let Err(err) = committed {
            std::fs::rename(&to, &from)?;
            return Err(err);
        }
        self.uploads.forget(&record.id);
        Ok(archive)
    }

    /// Repairs what a crash left behind: an upload whose file was already
    /// moved into `archives/` but whose archive was never committed gets its
    /// file back (the next HEAD or PATCH finishes it); bytes in `uploads/`
    /// that no upload record claims (cut one-shot uploads) are removed.
    pub(super) fn recover_uploads(&self) -> Result<(), ArchiveError> {
        let records: Vec<UploadRecord> = {
            let txn = self.store.read()?;
            self.store
                .tables
                .uploads
                .all(&txn)?
                .into_iter()
                .map(|(_, r)| r)
                .collect()
        };
        let mut claimed = std::collections::HashSet::new();
        for record in &records {
            if record.completed {
                continue;
            }
            claimed.insert(record.id.clone());
            let upload_path = self.upload_path(&record.id);
            if !upload_path.exists() {
                let moved = self.archive_path(&record.archive_id);
                if moved.exists() {
                    std::fs::rename(&moved, &upload_path)?;
                } else {
                    create_private(&upload_path)?;
                }
            }
        }
        for entry in std::fs::read_dir(self.data_dir.join("uploads"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !claimed.contains(&name) {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> Result<(), ArchiveError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn part_record(part: &super::chunker::PartSummary) -> PartRecord {
    PartRecord {
        offset: part.offset,
        length: part.length,
        sha256: hex::encode(part.sha256),
        object_id: None,
        remote: false,
        to_move: false,
    }
}

/// A write or flush of a tus PATCH failed: the request's bytes are cut
/// off again (the file back to `start`), the hashing state is dropped (the
/// next request rebuilds it from the file) and the failure is reported.
fn drop_request(
    file: &mut File,
    start: u64,
    slot: &mut Option<Active>,
    err: std::io::Error,
) -> ArchiveError {
    *slot = None;
    crate::disk::report(&err, "receiving an upload");
    // Best effort: on a read-only disk even this fails, and the next
    // request's rebuild reads what the file holds.
    let _ = file.set_len(start).and_then(|()| file.sync_data());
    ArchiveError::WriteFailed {
        offset: start,
        source: err,
    }
}

/// The error a failed upload body becomes, for an upload of `length` bytes.
fn pump_error(err: IngestError, length: u64) -> ArchiveError {
    match err {
        IngestError::DiskFull { kept } => ArchiveError::DiskFull(format!(
            "the upload was stopped after {kept} of {length} bytes, which are kept; free some space and resume."
        )),
        IngestError::Write(err) => {
            crate::disk::report(&err, "receiving an upload");
            ArchiveError::Io(err)
        }
    }
}
