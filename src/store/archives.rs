//! The `archives` table with its owner index (`archives_by_owner`), kept in
//! step in the same write transaction as every change of an archive record,
//! so a user's archives are listed a page at a time, newest first, without
//! reading anyone else's.
//!
//! Index key: owner id, `/`, the creation time (big-endian, sign-flipped so
//! it sorts like the number), the archive id; the value is empty. Neither
//! the owner nor the creation time of an archive ever changes, so a page
//! cursor (the last archive's time and id) stays valid while archives are
//! added or removed: paging never skips or repeats one. Must not touch:
//! anything outside LMDB.
//!
//! The trash (schema 3): an archive in the trash has a [`TrashRecord`] in
//! `archive_trash` and leaves the owner index for `archives_trash_by_owner`
//! (owner, `/`, the time it was trashed, the id: the trash list, newest
//! first, paged with the same cursor whose time is then the trash time) and
//! `archives_purge_due` (purge time, id: what the trash chore purges next,
//! found without a scan).

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::records::{ArchiveRecord, ArchiveState, PartRecord, TrashRecord};
use super::{indexed_prefix, Result, StoreError, Table};

fn lmdb(err: heed::Error) -> StoreError {
    StoreError::from_heed(err)
}

/// Where a page of a user's archives continues: after the archive created
/// at `created_at` with id `id` (newest first). In the trash list the time
/// is when the archive was trashed ([`ArchiveCursor::of_trashed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCursor {
    pub created_at: i64,
    pub id: String,
}

impl ArchiveCursor {
    pub fn of(archive: &ArchiveRecord) -> ArchiveCursor {
        ArchiveCursor {
            created_at: archive.created_at,
            id: archive.id.clone(),
        }
    }

    /// The cursor after `archive` in its owner's trash list.
    pub fn of_trashed(archive: &ArchiveRecord, trash: &TrashRecord) -> ArchiveCursor {
        ArchiveCursor {
            created_at: trash.trashed_at,
            id: archive.id.clone(),
        }
    }

    /// The cursor as it travels in a URL: `<created_at>-<id>`.
    pub fn encode(&self) -> String {
        format!("{}-{}", self.created_at, self.id)
    }

    /// Reads [`ArchiveCursor::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<ArchiveCursor> {
        let (time, id) = text.rsplit_once('-')?;
        crate::ids::is_valid_id(id).then_some(())?;
        Some(ArchiveCursor {
            created_at: time.parse().ok()?,
            id: id.to_string(),
        })
    }
}

fn owner_prefix(owner_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(owner_id.len() + 1 + 8 + 32);
    key.extend_from_slice(owner_id.as_bytes());
    key.push(b'/');
    key
}

fn owner_key(owner_id: &str, created_at: i64, id: &str) -> Vec<u8> {
    let mut key = owner_prefix(owner_id);
    key.extend_from_slice(&((created_at as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn index_key(record: &ArchiveRecord) -> Vec<u8> {
    owner_key(&record.owner_id, record.created_at, &record.id)
}

fn trash_key(record: &ArchiveRecord, trash: &TrashRecord) -> Vec<u8> {
    owner_key(&record.owner_id, trash.trashed_at, &record.id)
}

fn purge_key(id: &[u8], trash: &TrashRecord) -> Vec<u8> {
    let mut key = ((trash.purge_at as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(id);
    key
}

/// The archive records, the owner index and the trash with its indexes.
#[derive(Clone, Copy)]
pub struct ArchiveTable {
    table: Table<ArchiveRecord>,
    by_owner: Database<Bytes, Bytes>,
    trash: Table<TrashRecord>,
    trash_by_owner: Database<Bytes, Bytes>,
    purge_due: Database<Bytes, Bytes>,
}

impl ArchiveTable {
    pub(super) fn open(
        env: &heed::Env,
        txn: &mut RwTxn,
        table: Table<ArchiveRecord>,
        trash: Table<TrashRecord>,
    ) -> Result<ArchiveTable> {
        let mut index = |name| env.create_database::<Bytes, Bytes>(txn, Some(name));
        Ok(ArchiveTable {
            table,
            by_owner: index("archives_by_owner").map_err(lmdb)?,
            trash,
            trash_by_owner: index("archives_trash_by_owner").map_err(lmdb)?,
            purge_due: index("archives_purge_due").map_err(lmdb)?,
        })
    }

    pub fn get(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<ArchiveRecord>> {
        self.table.get(txn, key)
    }

    /// Writes the record and its index entry (moved if the owner or the
    /// creation time differ from the stored record's). An archive in the
    /// trash stays out of the owner index (its owner and trash time do not
    /// change).
    pub fn put(&self, txn: &mut RwTxn, key: &[u8], record: &ArchiveRecord) -> Result<()> {
        if let Some(old) = self.table.get(txn, key)? {
            if (&old.owner_id, old.created_at) != (&record.owner_id, record.created_at) {
                self.by_owner.delete(txn, &index_key(&old)).map_err(lmdb)?;
            }
        }
        self.table.put(txn, key, record)?;
        if self.trash.get(txn, key)?.is_some() {
            return Ok(());
        }
        self.by_owner
            .put(txn, &index_key(record), &[])
            .map_err(lmdb)
    }

    /// Removes the record and its index entries (and its trash record);
    /// returns whether it existed.
    pub fn delete(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        let Some(old) = self.table.get(txn, key)? else {
            return Ok(false);
        };
        self.take_from_trash(txn, key)?;
        self.by_owner.delete(txn, &index_key(&old)).map_err(lmdb)?;
        self.table.delete(txn, key)
    }

    /// The archive's trash record, when it is in the trash.
    pub fn trash_of(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<TrashRecord>> {
        self.trash.get(txn, key)
    }

    /// Moves an archive from its owner's list to the trash; `false` when
    /// there is no such archive or it is in the trash already.
    pub fn move_to_trash(&self, txn: &mut RwTxn, key: &[u8], trash: &TrashRecord) -> Result<bool> {
        let Some(record) = self.table.get(txn, key)? else {
            return Ok(false);
        };
        if self.trash.get(txn, key)?.is_some() {
            return Ok(false);
        }
        self.by_owner
            .delete(txn, &index_key(&record))
            .map_err(lmdb)?;
        self.trash.put(txn, key, trash)?;
        self.trash_by_owner
            .put(txn, &trash_key(&record, trash), &[])
            .map_err(lmdb)?;
        self.purge_due
            .put(txn, &purge_key(key, trash), &[])
            .map_err(lmdb)?;
        Ok(true)
    }

    /// Takes an archive out of the trash, back into its owner's list (when
    /// the record still exists); returns the trash record it had.
    pub fn take_from_trash(&self, txn: &mut RwTxn, key: &[u8]) -> Result<Option<TrashRecord>> {
        let Some(trash) = self.trash.get(txn, key)? else {
            return Ok(None);
        };
        self.trash.delete(txn, key)?;
        self.purge_due
            .delete(txn, &purge_key(key, &trash))
            .map_err(lmdb)?;
        if let Some(record) = self.table.get(txn, key)? {
            self.trash_by_owner
                .delete(txn, &trash_key(&record, &trash))
                .map_err(lmdb)?;
            self.by_owner
                .put(txn, &index_key(&record), &[])
                .map_err(lmdb)?;
        }
        Ok(Some(trash))
    }

    /// An archive in the trash is being deleted for good now (it turned
    /// `deleting`): it stays in the trash list until its record goes, but
    /// leaves the purge index, so the trash chore never picks it again.
    pub fn purging(&self, txn: &mut RwTxn, key: &[u8]) -> Result<()> {
        if let Some(trash) = self.trash.get(txn, key)? {
            self.purge_due
                .delete(txn, &purge_key(key, &trash))
                .map_err(lmdb)?;
        }
        Ok(())
    }

    /// The ids of up to `limit` archives in the trash whose purge time is
    /// at or before `now`, the earliest first. Reads only those entries.
    pub fn due_for_purge(&self, txn: &RoTxn, now: i64, limit: usize) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in self.purge_due.iter(txn).map_err(lmdb)? {
            let (key, _) = entry.map_err(lmdb)?;
            let mut time = [0u8; 8];
            time.copy_from_slice(&key[..8]);
            if (u64::from_be_bytes(time) ^ (1 << 63)) as i64 > now || ids.len() >= limit {
                break;
            }
            ids.push(String::from_utf8_lossy(&key[8..]).into_owned());
        }
        Ok(ids)
    }

    /// Every archive in the trash with its trash record (the admin
    /// dashboard's trash size, the scripts' `trash()`).
    pub fn all_trashed(&self, txn: &RoTxn) -> Result<Vec<(ArchiveRecord, TrashRecord)>> {
        let mut out = Vec::new();
        for (key, trash) in self.trash.all(txn)? {
            if let Some(record) = self.table.get(txn, &key)? {
                out.push((record, trash));
            }
        }
        Ok(out)
    }

    /// Every archive of every user (admin scripts, the device counts).
    pub fn all(&self, txn: &RoTxn) -> Result<Vec<(Vec<u8>, ArchiveRecord)>> {
        self.table.all(txn)
    }

    /// Records in id order after `after` (see [`Table::after`]).
    #[allow(clippy::type_complexity)]
    pub fn after(
        &self,
        txn: &RoTxn,
        after: Option<&[u8]>,
        keep: impl FnMut(&ArchiveRecord) -> bool,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<(Vec<u8>, ArchiveRecord)>, Option<Vec<u8>>)> {
        self.table.after(txn, after, keep, limit, scan_limit)
    }

    pub fn len(&self, txn: &RoTxn) -> Result<u64> {
        self.table.len(txn)
    }

    pub fn is_empty(&self, txn: &RoTxn) -> Result<bool> {
        self.table.is_empty(txn)
    }

    /// Up to `limit` archives of `owner_id`, newest first (creation time,
    /// then id, both descending), after `after` when given; and whether
    /// more follow. Reads `limit + 1` index entries and `limit` records.
    pub fn page_of_owner(
        &self,
        txn: &RoTxn,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, bool)> {
        self.page_of(self.by_owner, txn, owner_id, after, limit)
    }

    /// Every archive of `owner_id` not in the trash, newest first: the
    /// archive list's search and other orders. Reads that owner's index
    /// entries and records only.
    pub fn all_of_owner(&self, txn: &RoTxn, owner_id: &str) -> Result<Vec<ArchiveRecord>> {
        Ok(self
            .page_of(self.by_owner, txn, owner_id, None, usize::MAX)?
            .0)
    }

    /// Up to `limit` archives in `owner_id`'s trash, the last trashed first,
    /// after `after` (a cursor from [`ArchiveCursor::of_trashed`]) when
    /// given, each with its trash record; and whether more follow.
    #[allow(clippy::type_complexity)]
    pub fn page_of_trash(
        &self,
        txn: &RoTxn,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<(ArchiveRecord, TrashRecord)>, bool)> {
        let (page, more) = self.page_of(self.trash_by_owner, txn, owner_id, after, limit)?;
        let mut out = Vec::with_capacity(page.len());
        for record in page {
            if let Some(trash) = self.trash.get(txn, record.id.as_bytes())? {
                out.push((record, trash));
            }
        }
        Ok((out, more))
    }

    fn page_of(
        &self,
        index: Database<Bytes, Bytes>,
        txn: &RoTxn,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, bool)> {
        let lower = owner_prefix(owner_id);
        let upper = match after {
            Some(cursor) => owner_key(owner_id, cursor.created_at, &cursor.id),
            // Just past every key of this owner ('/' + 1 is '0').
            None => {
                let mut end = owner_id.as_bytes().to_vec();
                end.push(b'/' + 1);
                end
            }
        };
        let range = (
            std::ops::Bound::Included(lower.as_slice()),
            std::ops::Bound::Excluded(upper.as_slice()),
        );
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for entry in index.rev_range(txn, &range).map_err(lmdb)? {
            let (key, _) = entry.map_err(lmdb)?;
            if page.len() >= limit {
                more = true;
                break;
            }
            let id = &key[lower.len() + 8..];
            if let Some(record) = self.table.get(txn, id)? {
                page.push(record);
            }
        }
        Ok((page, more))
    }

    /// As [`ArchiveTable::page_of_owner`], from the table alone: for a store
    /// whose owner index is not built yet (a version on trial runs on the store
    /// unmigrated until it commits, see the store's module doc). Reads every
    /// archive record.
    pub fn page_of_owner_unindexed(
        &self,
        txn: &RoTxn,
        owner_id: &str,
        after: Option<&ArchiveCursor>,
        limit: usize,
    ) -> Result<(Vec<ArchiveRecord>, bool)> {
        let mut mine: Vec<ArchiveRecord> = self
            .table
            .all(txn)?
            .into_iter()
            .map(|(_, record)| record)
            .filter(|record| record.owner_id == owner_id)
            .filter(|record| matches!(self.trash.get(txn, record.id.as_bytes()), Ok(None)))
            .filter(|record| match after {
                Some(cursor) => {
                    (record.created_at, record.id.as_str())
                        < (cursor.created_at, cursor.id.as_str())
                }
                None => true,
            })
            .collect();
        mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let more = mine.len() > limit;
        mine.truncate(limit);
        Ok((mine, more))
    }

    /// Whether the owner index and the table agree, as a sentence when not.
    /// Reads everything: for tests and tools.
    pub fn check(&self, txn: &RoTxn) -> Result<(), String> {
        let fail = |err: StoreError| err.to_string();
        let archives = self.table.all(txn).map_err(fail)?;
        let (mut trashed, mut purging) = (0, 0);
        for (key, archive) in &archives {
            let (index, entry, list) = match self.trash.get(txn, key).map_err(fail)? {
                Some(trash) => {
                    trashed += 1;
                    let due = self.purge_due.get(txn, &purge_key(key, &trash));
                    let due = due.map_err(lmdb).map_err(fail)?.is_some();
                    if due != (archive.state != ArchiveState::Deleting) {
                        return Err(format!("archive {}: purge entry {due}", archive.id));
                    }
                    purging += u64::from(!due);
                    (self.trash_by_owner, trash_key(archive, &trash), "trash")
                }
                None => (self.by_owner, index_key(archive), "list"),
            };
            if index
                .get(txn, &entry)
                .map_err(lmdb)
                .map_err(fail)?
                .is_none()
            {
                return Err(format!(
                    "archive {} is not in its owner's {list}",
                    archive.id
                ));
            }
        }
        let count = |db: Database<Bytes, Bytes>| db.len(txn).map_err(lmdb).map_err(fail);
        let entries = (
            count(self.by_owner)?,
            count(self.trash_by_owner)?,
            count(self.purge_due)?,
            self.trash.len(txn).map_err(fail)?,
        );
        let expected = (
            archives.len() as u64 - trashed,
            trashed,
            trashed - purging,
            trashed,
        );
        if entries != expected {
            return Err(format!(
                "{} archives, {trashed} in the trash, but (list, trash list, purge, trash) entries {entries:?}",
                archives.len()
            ));
        }
        Ok(())
    }

    /// Builds the owner index and every archive's `bytes_remote` from the
    /// tables (the migration of stores made before they existed).
    pub(super) fn rebuild(&self, txn: &mut RwTxn, parts: &Table<PartRecord>) -> Result<()> {
        self.by_owner.clear(txn).map_err(lmdb)?;
        for (key, mut record) in self.table.all(txn)? {
            record.bytes_remote = parts
                .prefix(txn, &indexed_prefix(&record.id))?
                .iter()
                .filter(|(_, part)| part.remote)
                .map(|(_, part)| part.length)
                .sum();
            self.table.put(txn, &key, &record)?;
            if self.trash.get(txn, &key)?.is_none() {
                self.by_owner
                    .put(txn, &index_key(&record), &[])
                    .map_err(lmdb)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = ArchiveCursor {
            created_at: -5,
            id: "0123456789abcdef0123456789abcdef".into(),
        };
        assert_eq!(ArchiveCursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "12", "x-0123456789abcdef0123456789abcdef", "12-../etc"] {
            assert_eq!(ArchiveCursor::decode(bad), None, "{bad}");
        }
    }

    /// Without the owner index (a trial over an unmigrated store), pages
    /// read from the table come out the same as through the index.
    #[test]
    fn pages_without_the_owner_index_match_pages_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(dir.path(), 64 << 20).unwrap();
        store
            .write(|txn, tables| -> Result<()> {
                for n in 0..25i64 {
                    let record = ArchiveRecord {
                        id: format!("{:032x}", n * 7919 % 101),
                        owner_id: if n % 5 == 0 {
                            "other".into()
                        } else {
                            "me".into()
                        },
                        name: format!("a{n}"),
                        filename: String::new(),
                        size: 1,
                        sha256: String::new(),
                        // Some archives share a creation second: the id breaks the tie.
                        created_at: n / 3,
                        state: ArchiveState::Local,
                        last_error: None,
                        parts_total: 1,
                        parts_remote: 0,
                        bytes_remote: 0,
                        last_accessed_at: 0,
                        local_copy: true,
                        stored_size: None,
                        protected_until: None,
                        path: None,
                        awaiting_copies: false,
                    };
                    tables.archives.put(txn, record.id.as_bytes(), &record)?;
                }
                Ok(())
            })
            .unwrap();
        let txn = store.read().unwrap();
        let archives = &store.tables.archives;
        let walk = |unindexed: bool| {
            let (mut ids, mut after) = (Vec::new(), None::<ArchiveCursor>);
            for _ in 0..30 {
                let (page, more) = match unindexed {
                    true => archives.page_of_owner_unindexed(&txn, "me", after.as_ref(), 4),
                    false => archives.page_of_owner(&txn, "me", after.as_ref(), 4),
                }
                .unwrap();
                ids.extend(page.iter().map(|a| a.id.clone()));
                after = page.last().map(ArchiveCursor::of);
                if !more {
                    return ids;
                }
            }
            panic!("more than 30 pages of 4 for 20 archives");
        };
        let indexed = walk(false);
        assert_eq!(indexed.len(), 20);
        assert_eq!(walk(true), indexed);
    }
}
