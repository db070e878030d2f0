//! What each user's archives take, and the per-user storage quota an admin
//! sets (`UserRecord::quota_bytes`; none by default).
//!
//! A user's use is counted once per archive and upload, on what holds it:
//!
//! - local bytes: the size of every archive whose file is on this box
//!   (local, uploading, backed up, being fetched back, damaged with its
//!   file kept), the trash included until it is purged;
//! - remote bytes: what the parts of an archive that is only in the bucket
//!   take there (its stored size; its size when that is not known);
//! - pending bytes: the declared length of each unfinished tus upload (a
//!   reservation counts against its uploader only).
//!
//! An archive being deleted for good counts nothing. The quota is checked
//! in the write transaction that records a new upload or archive, so
//! parallel requests cannot pass it together. Must not touch: HTTP.

use std::collections::HashMap;

use heed::RoTxn;

use super::{ArchiveError, Archives};
use crate::store::records::{ArchiveRecord, ArchiveState, UploadRecord};
use crate::store::Tables;
use crate::units::human_size;

/// One user's storage use and quota, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub local_bytes: u64,
    pub remote_bytes: u64,
    pub pending_bytes: u64,
    /// `None`: no quota.
    pub quota_bytes: Option<u64>,
}

impl Usage {
    /// What counts against the quota: local, remote-only and pending.
    pub fn used_bytes(&self) -> u64 {
        self.local_bytes
            .saturating_add(self.remote_bytes)
            .saturating_add(self.pending_bytes)
    }

    fn add_archive(&mut self, archive: &ArchiveRecord) {
        match archive.state {
            ArchiveState::Deleting => {}
            ArchiveState::Uncached => self.remote_bytes += stored_bytes(archive),
            ArchiveState::Damaged if !archive.local_copy => {
                self.remote_bytes += stored_bytes(archive)
            }
            _ => self.local_bytes += archive.size,
        }
    }

    fn add_upload(&mut self, upload: &UploadRecord) {
        if !upload.completed {
            self.pending_bytes += upload.length;
        }
    }

    /// Refuses `needed` more bytes when they would take the user past the
    /// quota.
    pub fn check(&self, needed: u64) -> Result<(), ArchiveError> {
        match self.quota_bytes {
            Some(quota) if self.used_bytes().saturating_add(needed) > quota => {
                Err(ArchiveError::OverQuota {
                    quota: human_size(quota),
                    used: human_size(self.used_bytes()),
                })
            }
            _ => Ok(()),
        }
    }
}

/// What an archive only in the bucket takes there.
fn stored_bytes(archive: &ArchiveRecord) -> u64 {
    archive
        .stored_size
        .filter(|stored| *stored > 0)
        .unwrap_or(archive.size)
}

/// `owner_id`'s use and quota as `txn` sees them (in a write transaction:
/// what the change about to be made is checked against).
pub(super) fn usage_in(
    txn: &RoTxn,
    tables: &Tables,
    owner_id: &str,
) -> Result<Usage, ArchiveError> {
    let mut usage = Usage {
        quota_bytes: tables
            .users
            .get(txn, owner_id.as_bytes())?
            .and_then(|user| user.quota_bytes),
        ..Usage::default()
    };
    let (listed, _) = tables
        .archives
        .page_of_owner(txn, owner_id, None, usize::MAX)?;
    listed.iter().for_each(|archive| usage.add_archive(archive));
    let (trashed, _) = tables
        .archives
        .page_of_trash(txn, owner_id, None, usize::MAX)?;
    trashed
        .iter()
        .for_each(|(archive, _)| usage.add_archive(archive));
    for (_, upload) in tables.uploads.all(txn)? {
        if upload.owner_id == owner_id {
            usage.add_upload(&upload);
        }
    }
    Ok(usage)
}

impl Archives {
    /// One user's storage use and quota (the account page, the archive
    /// list, `GET /api/v1/me`).
    pub fn usage(&self, owner_id: &str) -> Result<Usage, ArchiveError> {
        let txn = self.store.read()?;
        usage_in(&txn, &self.store.tables, owner_id)
    }

    /// Every user's use and quota, by user id, in one pass over the
    /// archives (the admin's users page). Users without archives or
    /// uploads are listed too.
    pub fn usage_by_owner(&self) -> Result<HashMap<String, Usage>, ArchiveError> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let mut by_owner: HashMap<String, Usage> = HashMap::new();
        for (_, user) in tables.users.all(&txn)? {
            by_owner.entry(user.id).or_default().quota_bytes = user.quota_bytes;
        }
        for (_, archive) in tables.archives.all(&txn)? {
            by_owner
                .entry(archive.owner_id.clone())
                .or_default()
                .add_archive(&archive);
        }
        for (_, upload) in tables.uploads.all(&txn)? {
            by_owner
                .entry(upload.owner_id.clone())
                .or_default()
                .add_upload(&upload);
        }
        Ok(by_owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(state: ArchiveState, size: u64, stored: Option<u64>) -> ArchiveRecord {
        let mut record = super::super::new_archive_record("a", "u", "n", "f", size, &[0; 32], 1);
        record.state = state;
        record.stored_size = stored;
        record.local_copy = state.is_local();
        record
    }

    #[test]
    fn each_archive_counts_once_on_what_holds_it() {
        let mut usage = Usage::default();
        for record in [
            archive(ArchiveState::Local, 100, Some(0)),
            archive(ArchiveState::BackedUp, 200, Some(150)),
            archive(ArchiveState::Uncached, 400, Some(300)),
            archive(ArchiveState::Uncached, 1000, None),
            archive(ArchiveState::Caching, 50, Some(40)),
            archive(ArchiveState::Deleting, 7000, Some(7000)),
        ] {
            usage.add_archive(&record);
        }
        assert_eq!(usage.local_bytes, 350);
        assert_eq!(usage.remote_bytes, 1300);
        assert_eq!(usage.used_bytes(), 1650);
        usage.check(u64::MAX).unwrap();
        usage.quota_bytes = Some(50 << 30);
        usage.local_bytes = (49 << 30) + (1 << 29);
        let err = usage.check(1 << 30).unwrap_err().to_string();
        assert!(
            err.starts_with("This upload would take you past your 50 GiB quota; you use 49 GiB."),
            "{err}"
        );
        usage.check(1 << 28).unwrap();
    }
}
