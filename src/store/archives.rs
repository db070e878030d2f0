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

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::records::{ArchiveRecord, PartRecord};
use super::{indexed_prefix, Result, StoreError, Table};

fn lmdb(err: heed::Error) -> StoreError {
    StoreError::from_heed(err)
}

/// Where a page of a user's archives continues: after the archive created
/// at `created_at` with id `id` (newest first).
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

/// The archive records and the owner index.
#[derive(Clone, Copy)]
pub struct ArchiveTable {
    table: Table<ArchiveRecord>,
    by_owner: Database<Bytes, Bytes>,
}

impl ArchiveTable {
    pub(super) fn open(
        env: &heed::Env,
        txn: &mut RwTxn,
        table: Table<ArchiveRecord>,
    ) -> Result<ArchiveTable> {
        let by_owner = env
            .create_database::<Bytes, Bytes>(txn, Some("archives_by_owner"))
            .map_err(lmdb)?;
        Ok(ArchiveTable { table, by_owner })
    }

    pub fn get(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<ArchiveRecord>> {
        self.table.get(txn, key)
    }

    /// Writes the record and its index entry (moved if the owner or the
    /// creation time differ from the stored record's).
    pub fn put(&self, txn: &mut RwTxn, key: &[u8], record: &ArchiveRecord) -> Result<()> {
        if let Some(old) = self.table.get(txn, key)? {
            if (&old.owner_id, old.created_at) != (&record.owner_id, record.created_at) {
                self.by_owner.delete(txn, &index_key(&old)).map_err(lmdb)?;
            }
        }
        self.table.put(txn, key, record)?;
        self.by_owner
            .put(txn, &index_key(record), &[])
            .map_err(lmdb)
    }

    /// Removes the record and its index entry; returns whether it existed.
    pub fn delete(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        let Some(old) = self.table.get(txn, key)? else {
            return Ok(false);
        };
        self.by_owner.delete(txn, &index_key(&old)).map_err(lmdb)?;
        self.table.delete(txn, key)
    }

    /// Every archive of every user (admin scripts, the device counts).
    pub fn all(&self, txn: &RoTxn) -> Result<Vec<(Vec<u8>, ArchiveRecord)>> {
        self.table.all(txn)
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
        for entry in self.by_owner.rev_range(txn, &range).map_err(lmdb)? {
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
        for (_, archive) in &archives {
            let entry = self
                .by_owner
                .get(txn, &index_key(archive))
                .map_err(lmdb)
                .map_err(fail)?;
            if entry.is_none() {
                return Err(format!("archive {} is not in its owner's list", archive.id));
            }
        }
        let entries = self.by_owner.len(txn).map_err(lmdb).map_err(fail)?;
        if entries != archives.len() as u64 {
            return Err(format!(
                "{} archives but {entries} list entries",
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
            self.by_owner
                .put(txn, &index_key(&record), &[])
                .map_err(lmdb)?;
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
        use super::super::records::ArchiveState;
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
