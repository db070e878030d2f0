//! The trash (issue 22): deleting an archive moves it here for
//! `trash_days`; it comes back with [`Archives::restore`] exactly as it
//! was, or goes for good with [`Archives::delete`] (now) or the trash chore
//! ([`Archives::purge_due`], at its purge time).
//!
//! While an archive is in the trash nothing leaves the remote: only the
//! delete job removes remote objects, and it is queued only by a purge. The
//! record keeps the state the archive had and the engine's jobs go on (an
//! upload may finish, an uncache asked for before may free the local file),
//! so a restore brings back whatever state it is in then. What "freed"
//! means here: the trash itself never removes a local file; the user's own
//! actions on a trashed archive (rename, download, uncache, cache) are
//! refused until it is restored. Must not touch: HTTP, the remote.

use super::{ArchiveCursor, ArchiveError, Archives, PAGE_LIMIT};
use crate::ids;
use crate::store::records::{ArchiveRecord, ArchiveState, TrashRecord};

/// Seconds in a `trash_days` day.
pub const DAY_SECS: i64 = 86_400;

/// How many trashed archives one round of the trash chore turns `deleting`
/// in one transaction (the chore repeats until none is due).
const PURGE_BATCH: usize = 100;

/// What a deletion did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Moved to the trash (or it was there already).
    Trashed(Box<ArchiveRecord>, TrashRecord),
    /// Being deleted for good (the trash is off, or it was under way).
    Deleting,
}

impl Archives {
    /// Moves the caller's archive to the trash until `days` days from now;
    /// with `days` 0 (the trash is off) deletes it for good now instead.
    pub fn trash(
        &self,
        owner_id: &str,
        archive_id: &str,
        days: u32,
    ) -> Result<Deleted, ArchiveError> {
        self.owned(owner_id, archive_id)?;
        if days == 0 {
            self.delete(owner_id, archive_id)?;
            return Ok(Deleted::Deleting);
        }
        // The trial contract (store module docs): no trash records while the
        // store is still at a schema without the trash.
        if self.store.pending_migration().is_some() {
            return Err(ArchiveError::TrashNotReady);
        }
        let now = ids::now_secs();
        let new = TrashRecord {
            trashed_at: now,
            purge_at: now.saturating_add(i64::from(days) * DAY_SECS),
        };
        self.store.write(|txn, tables| {
            let key = archive_id.as_bytes();
            let archive = tables
                .archives
                .get(txn, key)?
                .ok_or(ArchiveError::NotFound)?;
            if archive.state == ArchiveState::Deleting {
                return Ok(Deleted::Deleting);
            }
            if let Some(trash) = tables.archives.trash_of(txn, key)? {
                return Ok(Deleted::Trashed(Box::new(archive), trash));
            }
            tables.archives.move_to_trash(txn, key, &new)?;
            Ok(Deleted::Trashed(Box::new(archive), new))
        })
    }

    /// Takes the caller's archive out of the trash, back in its list in the
    /// state it is in (a local file freed meanwhile: `uncached`).
    pub fn restore(&self, owner_id: &str, archive_id: &str) -> Result<ArchiveRecord, ArchiveError> {
        self.owned(owner_id, archive_id)?;
        self.store.write(|txn, tables| {
            let key = archive_id.as_bytes();
            let archive = tables
                .archives
                .get(txn, key)?
                .ok_or(ArchiveError::NotFound)?;
            if archive.state == ArchiveState::Deleting {
                return Err(ArchiveError::BeingDeleted);
            }
            tables
                .archives
                .take_from_trash(txn, key)?
                .ok_or(ArchiveError::NotInTrash)?;
            Ok(archive)
        })
    }

    /// The trash record of an archive (any owner's: call after `owned`).
    pub fn trash_of(&self, archive_id: &str) -> Result<Option<TrashRecord>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self
            .store
            .tables
            .archives
            .trash_of(&txn, archive_id.as_bytes())?)
    }

    /// The caller's archive, refused with a sentence while it is in the
    /// trash: what the user's own actions on an archive go through.
    pub(super) fn owned_live(
        &self,
        owner_id: &str,
        archive_id: &str,
    ) -> Result<ArchiveRecord, ArchiveError> {
        let archive = self.owned(owner_id, archive_id)?;
        match self.trash_of(archive_id)? {
            Some(_) => Err(ArchiveError::InTrash),
            None => Ok(archive),
        }
    }

    /// A page of the caller's trash, the last trashed first, as
    /// [`Archives::page`] pages the list.
    #[allow(clippy::type_complexity)]
    pub fn trash_page(
        &self,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<(ArchiveRecord, TrashRecord)>, Option<ArchiveCursor>), ArchiveError> {
        let txn = self.store.read()?;
        let limit = limit.clamp(1, PAGE_LIMIT);
        let (page, more) = self
            .store
            .tables
            .archives
            .page_of_trash(&txn, owner_id, after, limit)?;
        let next = page
            .last()
            .filter(|_| more)
            .map(|(archive, trash)| ArchiveCursor::of_trashed(archive, trash));
        Ok((page, next))
    }

    /// Every user's archives in the trash (the admin dashboard, scripts).
    pub fn all_trashed(&self) -> Result<Vec<(ArchiveRecord, TrashRecord)>, ArchiveError> {
        let txn = self.store.read()?;
        Ok(self.store.tables.archives.all_trashed(&txn)?)
    }

    /// The trash chore: deletes for good every archive whose purge time is
    /// at or before `now` (turns it `deleting` with its delete job, in one
    /// transaction, and removes its local file). Returns how many. A kill
    /// at any moment leaves each archive either still due or `deleting`
    /// with its persistent job.
    pub fn purge_due(&self, now: i64) -> Result<usize, ArchiveError> {
        let mut purged = 0;
        loop {
            let due = {
                let txn = self.store.read()?;
                (self.store.tables.archives).due_for_purge(&txn, now, PURGE_BATCH)?
            };
            if due.is_empty() {
                return Ok(purged);
            }
            let started = self.store.write(|txn, tables| -> Result<_, ArchiveError> {
                let mut started = Vec::new();
                for id in &due {
                    // Restored or purged since it was read: leave it.
                    let trash = tables.archives.trash_of(txn, id.as_bytes())?;
                    if trash.is_some_and(|t| t.purge_at <= now)
                        && super::begin_delete(txn, tables, id)?
                    {
                        started.push(id.clone());
                    }
                }
                Ok(started)
            })?;
            for id in &started {
                self.remove_local_file(id)?;
            }
            purged += started.len();
            if due.len() < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::jobs::{JobKind, KIND_DELETE};
    use crate::store::{Store, StoreError};

    fn archives_with(ids: &[&str]) -> (tempfile::TempDir, Archives) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 64 << 20).unwrap();
        let archives = Archives::open(store, dir.path()).unwrap();
        for id in ids {
            let record = super::super::new_archive_record(id, "u1", id, "f", 3, &[0; 32], 1);
            (archives.store)
                .write(|txn, tables| -> Result<(), StoreError> {
                    tables.archives.put(txn, id.as_bytes(), &record)
                })
                .unwrap();
            std::fs::write(archives.archive_path(id), b"abc").unwrap();
        }
        (dir, archives)
    }

    fn id(n: u8) -> String {
        format!("{n:032x}")
    }

    /// The trash chore purges exactly what is due, in one transaction each
    /// round: `deleting` with its delete job, the local file gone, still in
    /// the trash list until the job removes it; a restored archive is left.
    #[test]
    fn the_chore_purges_what_is_due_and_nothing_else() {
        let (a, b, c) = (id(1), id(2), id(3));
        let (_dir, archives) = archives_with(&[&a, &b, &c]);
        for (archive, days) in [(&a, 1), (&b, 2), (&c, 1)] {
            let deleted = archives.trash("u1", archive, days).unwrap();
            assert!(matches!(deleted, Deleted::Trashed(..)));
        }
        archives.restore("u1", &c).unwrap();
        let now = ids::now_secs();
        assert_eq!(archives.purge_due(now + DAY_SECS - 5).unwrap(), 0);
        assert_eq!(archives.purge_due(now + DAY_SECS + 5).unwrap(), 1);
        assert_eq!(archives.purge_due(now + DAY_SECS + 5).unwrap(), 0, "once");
        let state = |archive: &str| archives.get_any(archive).unwrap().unwrap().state;
        assert_eq!(state(&a), ArchiveState::Deleting);
        assert_eq!(state(&b), ArchiveState::Local);
        assert_eq!(state(&c), ArchiveState::Local);
        assert!(!archives.archive_path(&a).exists());
        assert!(archives.archive_path(&b).exists() && archives.archive_path(&c).exists());
        let txn = archives.store.read().unwrap();
        let delete = |id: &str| JobKind::Delete {
            archive_id: id.to_string(),
        };
        assert!(archives
            .store
            .tables
            .jobs
            .queued(&txn, &delete(&a))
            .unwrap());
        assert!(!archives
            .store
            .tables
            .jobs
            .queued(&txn, &delete(&b))
            .unwrap());
        let jobs = archives.store.tables.jobs.all(&txn).unwrap();
        assert_eq!(
            jobs.iter().filter(|(_, j)| j.kind == KIND_DELETE).count(),
            1
        );
        archives.store.tables.archives.check(&txn).unwrap();
        drop(txn);
        let (trash, _) = archives.trash_page("u1", None, 10).unwrap();
        let listed: Vec<&str> = trash.iter().map(|(r, _)| r.id.as_str()).collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&a.as_str()) && listed.contains(&b.as_str()));
        assert!(matches!(
            archives.restore("u1", &a),
            Err(ArchiveError::BeingDeleted)
        ));
    }

    /// The trash list pages like the archive list, the last trashed first.
    #[test]
    fn the_trash_pages_newest_first_and_the_list_leaves_trashed_out() {
        let all: Vec<String> = (1..=7).map(id).collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (_dir, archives) = archives_with(&refs);
        for archive in &all[..5] {
            archives.trash("u1", archive, 30).unwrap();
        }
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let (page, next) = archives.trash_page("u1", after.as_ref(), 2).unwrap();
            seen.extend(page.into_iter().map(|(r, _)| r.id));
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, all[..5].to_vec());
        let (live, _) = archives.page("u1", None, 100).unwrap();
        let mut live: Vec<String> = live.into_iter().map(|r| r.id).collect();
        live.sort();
        assert_eq!(live, all[5..].to_vec());
        assert!(archives.trash_page("u2", None, 10).unwrap().0.is_empty());
        assert!(matches!(
            archives.trash("u2", &all[5], 30),
            Err(ArchiveError::NotFound)
        ));
    }
}
