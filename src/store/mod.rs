//! The LMDB store: one environment in `<data>/db`, typed tables, a schema
//! version and forward-only migrations.
//!
//! Owns: opening the environment, the table handles and the boundary record
//! types in [`records`]. Values are JSON-encoded versioned records, never the
//! in-memory structs of other modules. Must not touch: the file system outside
//! `<data>/db`, the network, HTTP. Callers group every state change into one
//! write transaction (`Store::write`), so a crash leaves either all of a
//! change or none of it.
//!
//! Migrations and firmware updates (docs/DESIGN.md, "Firmware updates"): a new
//! version on trial opens the store with [`Migrate::AfterCommit`] and runs on
//! it unconverted; it converts it ([`Store::migrate`]) only once it has
//! committed. So a trial that fails leaves the data in the shape the previous
//! version knows, and the rollback finds it as it was. The price is the trial
//! contract: code at schema N must run correctly on an unmigrated store of
//! schema N-1 (serde defaults for new fields; no records of the new shape
//! while [`Store::pending_migration`] says one is pending). A store *newer*
//! than this build (a newer version committed and converted it, then an older
//! one was started: a forced reinstall of an old bundle, an old SD card) is
//! refused with [`StoreError::NewerSchema`] before anything is written, in
//! either mode: the old version stops rather than misread or damage it, and
//! an old version on trial therefore fails its check and goes back.

pub mod archives;
pub mod copies;
pub mod jobs;
pub mod lock_file;
pub mod records;

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The schema version this build writes. Older stores are migrated forward on
/// open; a newer one is refused.
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("The database could not be used: {0}")]
    Lmdb(heed::Error),
    #[error("The database holds a record that cannot be read ({table}): {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("The database was written by a newer piarchive (schema {found}, this build knows {known}), so this version leaves it untouched; install the newer piarchive again.")]
    NewerSchema { found: u32, known: u32 },
    #[error("The database is full: raise `map_size_mib` in the configuration.")]
    MapFull,
    #[error("The database is nearly full (more than {percent}% of its map is used), so new uploads, accounts and tokens are refused to keep room for an admin's changes; an admin can delete archives or users, or raise `map_size_mib` in the configuration.", percent = GROWTH_LIMIT_PERCENT)]
    NearlyFull,
    /// The disk under the database refused a write: full (ENOSPC),
    /// read-only (EROFS) or failing (EIO). Nothing of the change was kept.
    #[error("Nothing was saved because {}; free some space (or check the disk) and try again.", crate::disk::describe(.0))]
    Disk(std::io::Error),
}

/// The share of the LMDB map (in percent) past which growth that members
/// cause (uploads, registrations, tokens) is refused
/// ([`Store::room_for_growth`]): the rest stays for what an admin must
/// always be able to do, such as disabling a member or deleting archives.
pub const GROWTH_LIMIT_PERCENT: u64 = 85;

impl StoreError {
    fn from_heed(err: heed::Error) -> Self {
        let code = match &err {
            heed::Error::Mdb(heed::MdbError::MapFull) => return StoreError::MapFull,
            heed::Error::Mdb(heed::MdbError::Other(code)) => Some(*code),
            heed::Error::Io(io) => io.raw_os_error(),
            _ => None,
        };
        match code {
            Some(code @ (libc::ENOSPC | libc::EROFS | libc::EIO)) => {
                let io = std::io::Error::from_raw_os_error(code);
                crate::disk::report(&io, "saving to the database");
                StoreError::Disk(io)
            }
            _ => StoreError::Lmdb(err),
        }
    }

    /// Whether the disk under the database is full (not the map).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Disk(io) if crate::disk::is_disk_full(io))
    }
}

impl From<heed::Error> for StoreError {
    fn from(err: heed::Error) -> Self {
        StoreError::from_heed(err)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One table of JSON-encoded records `V` under raw byte keys.
pub struct Table<V> {
    name: &'static str,
    db: Database<Bytes, Bytes>,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Table<V> {}

impl<V: Serialize + DeserializeOwned> Table<V> {
    fn decode(&self, bytes: &[u8]) -> Result<V> {
        serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
            table: self.name,
            reason: err.to_string(),
        })
    }

    pub fn get(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<V>> {
        match self.db.get(txn, key).map_err(StoreError::from_heed)? {
            Some(bytes) => Ok(Some(self.decode(bytes)?)),
            None => Ok(None),
        }
    }

    pub fn put(&self, txn: &mut RwTxn, key: &[u8], value: &V) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|err| StoreError::Corrupt {
            table: self.name,
            reason: err.to_string(),
        })?;
        self.db.put(txn, key, &bytes).map_err(StoreError::from_heed)
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        self.db.delete(txn, key).map_err(StoreError::from_heed)
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn prefix(&self, txn: &RoTxn, prefix: &[u8]) -> Result<Vec<(Vec<u8>, V)>> {
        if prefix.is_empty() {
            // LMDB refuses an empty lookup key.
            return self.all(txn);
        }
        let mut out = Vec::new();
        for entry in self
            .db
            .prefix_iter(txn, prefix)
            .map_err(StoreError::from_heed)?
        {
            let (key, bytes) = entry.map_err(StoreError::from_heed)?;
            out.push((key.to_vec(), self.decode(bytes)?));
        }
        Ok(out)
    }

    /// Up to `limit` records whose key starts with `prefix`, after `after`
    /// (or from the first), in key order.
    pub fn prefix_after(
        &self,
        txn: &RoTxn,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>> {
        let lower = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Included(prefix),
        };
        let iter = self
            .db
            .range(txn, &(lower, std::ops::Bound::<&[u8]>::Unbounded))
            .map_err(StoreError::from_heed)?;
        let mut out = Vec::new();
        for entry in iter {
            let (key, bytes) = entry.map_err(StoreError::from_heed)?;
            if out.len() >= limit || !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), self.decode(bytes)?));
        }
        Ok(out)
    }

    /// Every record, in key order.
    pub fn all(&self, txn: &RoTxn) -> Result<Vec<(Vec<u8>, V)>> {
        let mut out = Vec::new();
        for entry in self.db.iter(txn).map_err(StoreError::from_heed)? {
            let (key, bytes) = entry.map_err(StoreError::from_heed)?;
            out.push((key.to_vec(), self.decode(bytes)?));
        }
        Ok(out)
    }

    /// Up to `limit` records with keys strictly below `before` (or from the
    /// end), newest key first.
    pub fn rev_before(
        &self,
        txn: &RoTxn,
        before: Option<&[u8]>,
        mut keep: impl FnMut(&V) -> bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>> {
        let mut out = Vec::new();
        let iter = match before {
            Some(before) => self
                .db
                .rev_range(
                    txn,
                    &(
                        std::ops::Bound::Unbounded,
                        std::ops::Bound::Excluded(before),
                    ),
                )
                .map_err(StoreError::from_heed)?,
            None => self
                .db
                .rev_range(
                    txn,
                    &(
                        std::ops::Bound::<&[u8]>::Unbounded,
                        std::ops::Bound::Unbounded,
                    ),
                )
                .map_err(StoreError::from_heed)?,
        };
        for entry in iter {
            if out.len() >= limit {
                break;
            }
            let (key, bytes) = entry.map_err(StoreError::from_heed)?;
            let value = self.decode(bytes)?;
            if keep(&value) {
                out.push((key.to_vec(), value));
            }
        }
        Ok(out)
    }

    /// Up to `limit` records with keys strictly above `after` (or from the
    /// start) that `keep` accepts, in key order, and the last key looked
    /// at (to continue from). Reads at most `scan_limit` records.
    #[allow(clippy::type_complexity)]
    pub fn after(
        &self,
        txn: &RoTxn,
        after: Option<&[u8]>,
        mut keep: impl FnMut(&V) -> bool,
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<(Vec<u8>, V)>, Option<Vec<u8>>)> {
        let lower = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        let iter = self
            .db
            .range(txn, &(lower, std::ops::Bound::<&[u8]>::Unbounded))
            .map_err(StoreError::from_heed)?;
        let mut out = Vec::new();
        let mut last = None;
        for (scanned, entry) in iter.enumerate() {
            if out.len() >= limit || scanned >= scan_limit {
                break;
            }
            let (key, bytes) = entry.map_err(StoreError::from_heed)?;
            let value = self.decode(bytes)?;
            last = Some(key.to_vec());
            if keep(&value) {
                out.push((key.to_vec(), value));
            }
        }
        Ok((out, last))
    }

    /// The record with the smallest key, if any.
    pub fn first(&self, txn: &RoTxn) -> Result<Option<(Vec<u8>, V)>> {
        match self.db.first(txn).map_err(StoreError::from_heed)? {
            Some((key, bytes)) => Ok(Some((key.to_vec(), self.decode(bytes)?))),
            None => Ok(None),
        }
    }

    pub fn len(&self, txn: &RoTxn) -> Result<u64> {
        self.db.len(txn).map_err(StoreError::from_heed)
    }

    pub fn is_empty(&self, txn: &RoTxn) -> Result<bool> {
        self.db.is_empty(txn).map_err(StoreError::from_heed)
    }

    /// Removes every record whose key starts with `prefix`; returns how many.
    pub fn delete_prefix(&self, txn: &mut RwTxn, prefix: &[u8]) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self
            .prefix(txn, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for key in &keys {
            self.delete(txn, key)?;
        }
        Ok(keys.len())
    }
}

/// The handles of every table. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Tables {
    pub meta: Table<serde_json::Value>,
    pub users: Table<records::UserRecord>,
    pub usernames: Table<String>,
    pub sessions: Table<records::SessionRecord>,
    pub api_tokens: Table<records::ApiTokenRecord>,
    pub archives: archives::ArchiveTable,
    pub parts: Table<records::PartRecord>,
    pub objects: Table<records::ObjectRecord>,
    pub uploads: Table<records::UploadRecord>,
    pub jobs: jobs::JobTable,
    pub scripts: Table<records::ScriptRecord>,
    pub deployments: Table<records::DeploymentRecord>,
    pub log: Table<records::LogRecord>,
    pub settings: Table<serde_json::Value>,
    /// Notices waiting for delivery, per channel (`crate::notify::queue`).
    pub notices: Table<records::NoticeRecord>,
    /// The copy destinations (`engine::destinations`; no schema bump: see
    /// [`records::DestinationRecord`]).
    pub destinations: Table<records::DestinationRecord>,
    /// Per copy destination, the archives that must be there.
    pub copies: Table<records::CopyRecord>,
    /// Per copy destination and archive, the parts stored there.
    pub copy_parts: Table<records::CopyPartRecord>,
    /// Per copy destination, the objects stored there and their refcounts.
    pub copy_objects: Table<records::CopyObjectRecord>,
    /// Per copy destination, objects and manifests to delete there.
    pub copy_deletes: Table<records::CopyDeleteRecord>,
}

impl Tables {
    /// An archive's parts, in order (keyed by [`indexed_key`]).
    pub fn parts_of(&self, txn: &RoTxn, archive_id: &str) -> Result<Vec<records::PartRecord>> {
        Ok(self
            .parts
            .prefix(txn, &indexed_prefix(archive_id))?
            .into_iter()
            .map(|(_, part)| part)
            .collect())
    }
}

/// The open LMDB environment and its tables.
#[derive(Clone)]
pub struct Store {
    env: Env,
    pub tables: Tables,
    /// The schema version of the data on disk (below [`SCHEMA_VERSION`] while a
    /// migration waits for the commit of a trial).
    on_disk: Arc<AtomicU32>,
}

/// When [`Store::open_with`] migrates a store written by an older piarchive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// On open: every normal start.
    Now,
    /// Not on open: a trial boot after a firmware update runs on the store as it
    /// is and calls [`Store::migrate`] once it has committed (module docs).
    AfterCommit,
}

fn create<V>(env: &Env, txn: &mut RwTxn, name: &'static str) -> Result<Table<V>> {
    let db = env
        .create_database::<Bytes, Bytes>(txn, Some(name))
        .map_err(StoreError::from_heed)?;
    Ok(Table {
        name,
        db,
        _value: PhantomData,
    })
}

impl Store {
    /// Opens (creating if needed) the environment in `dir` and migrates it to
    /// [`SCHEMA_VERSION`].
    pub fn open(dir: &Path, map_size: usize) -> Result<Store> {
        Store::open_with(dir, map_size, Migrate::Now)
    }

    /// Opens the environment in `dir`; migrates it now or leaves that to
    /// [`Store::migrate`]. A newer store is refused in both cases.
    pub fn open_with(dir: &Path, map_size: usize, when: Migrate) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|err| StoreError::Lmdb(heed::Error::Io(err)))?;
        // A lock file link into RAM that a reboot emptied: made good first
        // (by any command, not only `serve`), or LMDB could not open.
        let lock = dir.join("lock.mdb");
        if lock.is_symlink() && !lock.exists() {
            lock_file::keep_in_ram(dir);
        }
        // SAFETY: the environment is opened once per process (the appliance
        // holds one `Store` and clones it), and the files are never modified
        // by anything but LMDB.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(map_size)
                .max_dbs(32)
                .max_readers(256)
                .open(dir)
                .map_err(StoreError::from_heed)?
        };
        let mut txn = env.write_txn().map_err(StoreError::from_heed)?;
        let meta = create(&env, &mut txn, "meta")?;
        let archives = create(&env, &mut txn, "archives")?;
        let jobs = create(&env, &mut txn, "jobs")?;
        let trash = create(&env, &mut txn, "archive_trash")?;
        let tables = Tables {
            meta,
            users: create(&env, &mut txn, "users")?,
            usernames: create(&env, &mut txn, "usernames")?,
            sessions: create(&env, &mut txn, "sessions")?,
            api_tokens: create(&env, &mut txn, "api_tokens")?,
            archives: archives::ArchiveTable::open(&env, &mut txn, archives, trash)?,
            parts: create(&env, &mut txn, "parts")?,
            objects: create(&env, &mut txn, "objects")?,
            uploads: create(&env, &mut txn, "uploads")?,
            jobs: jobs::JobTable::open(&env, &mut txn, jobs, meta)?,
            scripts: create(&env, &mut txn, "scripts")?,
            deployments: create(&env, &mut txn, "deployments")?,
            log: create(&env, &mut txn, "log")?,
            settings: create(&env, &mut txn, "settings")?,
            notices: create(&env, &mut txn, "notices")?,
            destinations: create(&env, &mut txn, "destinations")?,
            copies: create(&env, &mut txn, "copies")?,
            copy_parts: create(&env, &mut txn, "copy_parts")?,
            copy_objects: create(&env, &mut txn, "copy_objects")?,
            copy_deletes: create(&env, &mut txn, "copy_deletes")?,
        };
        let on_disk = match when {
            Migrate::Now => migrate(&tables, &mut txn)?,
            Migrate::AfterCommit => refuse_newer(&tables, &txn)?,
        };
        txn.commit().map_err(StoreError::from_heed)?;
        Ok(Store {
            env,
            tables,
            on_disk: Arc::new(AtomicU32::new(on_disk)),
        })
    }

    /// The schema version on disk when it is older than this build's, i.e. a
    /// migration waits (opened with [`Migrate::AfterCommit`]).
    pub fn pending_migration(&self) -> Option<u32> {
        let on_disk = self.on_disk.load(Ordering::SeqCst);
        (on_disk < SCHEMA_VERSION).then_some(on_disk)
    }

    /// Runs the pending migrations (none: nothing happens) in one write
    /// transaction; returns the version the store was at.
    pub fn migrate(&self) -> Result<u32> {
        let from = self.on_disk.load(Ordering::SeqCst);
        let mut txn = self.env.write_txn().map_err(StoreError::from_heed)?;
        let now = migrate(&self.tables, &mut txn)?;
        txn.commit().map_err(StoreError::from_heed)?;
        self.on_disk.store(now, Ordering::SeqCst);
        Ok(from)
    }

    pub fn read(&self) -> Result<RoTxn<'_>> {
        self.env.read_txn().map_err(StoreError::from_heed)
    }

    /// Runs `change` in one write transaction and commits it only if it
    /// returns `Ok`.
    pub fn write<T, E: From<StoreError>>(
        &self,
        change: impl FnOnce(&mut RwTxn, &Tables) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut txn = self.env.write_txn().map_err(StoreError::from_heed)?;
        let value = change(&mut txn, &self.tables)?;
        txn.commit().map_err(StoreError::from_heed)?;
        Ok(value)
    }

    pub fn schema_version(&self) -> Result<u32> {
        let txn = self.read()?;
        stored_version(&self.tables, &txn)
    }

    /// Bytes of the map in use (pages of every table; free pages not
    /// counted) and the map's size.
    pub fn map_use(&self) -> Result<(u64, u64)> {
        let used = self
            .env
            .non_free_pages_size()
            .map_err(StoreError::from_heed)?;
        Ok((used, self.env.info().map_size as u64))
    }

    /// Refuses ([`StoreError::NearlyFull`]) growth a member causes once
    /// more than [`GROWTH_LIMIT_PERCENT`] of the map is in use. Called
    /// before the write; concurrent writers may pass it together, which the
    /// rest of the map absorbs.
    pub fn room_for_growth(&self) -> Result<()> {
        let (used, size) = self.map_use()?;
        if used.saturating_mul(100) > size.saturating_mul(GROWTH_LIMIT_PERCENT) {
            return Err(StoreError::NearlyFull);
        }
        Ok(())
    }
}

const VERSION_KEY: &[u8] = b"schema_version";

fn stored_version(tables: &Tables, txn: &RoTxn) -> Result<u32> {
    Ok(tables
        .meta
        .get(txn, VERSION_KEY)?
        .and_then(|value| value.as_u64())
        .unwrap_or(0) as u32)
}

/// Forward-only migrations: `MIGRATIONS[n]` takes a store at version `n` to
/// `n + 1`. Version 0 is an empty store.
type Migration = fn(&Tables, &mut RwTxn) -> Result<()>;
const MIGRATIONS: &[Migration] = &[
    // 0 -> 1: the tables exist (created above); nothing to convert.
    |_tables, _txn| Ok(()),
    // 1 -> 2: the job queue's due and target indexes, the archives' owner
    // index and their `bytes_remote` counters, computed once from the
    // tables (in this one transaction, so a kill leaves version 1 intact).
    |tables, txn| {
        tables.jobs.rebuild_indexes(txn)?;
        tables.archives.rebuild(txn, &tables.parts)
    },
    // 2 -> 3: the trash (`archive_trash` and its two indexes, created
    // above). Nothing to convert: no archive was in a trash before. The
    // version says that the owner index may now leave archives out (those
    // in the trash), so an older build, which would list them as live,
    // re-index them and never purge them, refuses the store.
    |_tables, _txn| Ok(()),
];

/// The stored version, or the refusal of a store newer than this build.
fn refuse_newer(tables: &Tables, txn: &RoTxn) -> Result<u32> {
    let version = stored_version(tables, txn)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Migrates to [`SCHEMA_VERSION`]; returns it.
fn migrate(tables: &Tables, txn: &mut RwTxn) -> Result<u32> {
    let mut version = refuse_newer(tables, txn)?;
    while version < SCHEMA_VERSION {
        MIGRATIONS[version as usize](tables, txn)?;
        version += 1;
        tables
            .meta
            .put(txn, VERSION_KEY, &serde_json::json!(version))?;
    }
    Ok(version)
}

/// A key made of an id and a big-endian index, so parts sort in order.
pub fn indexed_key(id: &str, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 5);
    key.extend_from_slice(id.as_bytes());
    key.push(b'/');
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The id and index an [`indexed_key`] was made of.
pub fn split_indexed_key(key: &[u8]) -> Option<(&str, u32)> {
    let split = key.len().checked_sub(5)?;
    let (id, rest) = key.split_at(split);
    let index = u32::from_be_bytes(rest.get(1..)?.try_into().ok()?);
    (rest[0] == b'/').then_some(())?;
    Some((std::str::from_utf8(id).ok()?, index))
}

/// The prefix of every [`indexed_key`] of `id`.
pub fn indexed_prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(b'/');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        store
            .write(|txn, t| -> Result<()> { t.usernames.put(txn, b"alice", &"u1".to_string()) })
            .unwrap();
        drop(store);
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let txn = store.read().unwrap();
        assert_eq!(
            store.tables.usernames.get(&txn, b"alice").unwrap(),
            Some("u1".to_string())
        );
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        store
            .write(|txn, t| -> Result<()> { t.meta.put(txn, VERSION_KEY, &serde_json::json!(99)) })
            .unwrap();
        drop(store);
        let err = Store::open(dir.path(), 16 << 20)
            .err()
            .expect("newer schema must be refused");
        assert!(err.to_string().contains("newer piarchive"), "{err}");
    }

    /// A store at schema 0 (what an older build would have left; version 0
    /// also stands for "one below" once there are more migrations).
    fn older_store(dir: &Path) {
        let store = Store::open(dir, 16 << 20).unwrap();
        store
            .write(|txn, t| -> Result<()> {
                t.meta.put(txn, VERSION_KEY, &serde_json::json!(0))?;
                t.usernames.put(txn, b"alice", &"u1".to_string())
            })
            .unwrap();
    }

    #[test]
    fn a_trial_opens_an_older_store_without_migrating_it() {
        let dir = tempfile::tempdir().unwrap();
        older_store(dir.path());
        let store = Store::open_with(dir.path(), 16 << 20, Migrate::AfterCommit).unwrap();
        assert_eq!(store.pending_migration(), Some(0));
        assert_eq!(store.schema_version().unwrap(), 0, "nothing converted");
        let txn = store.read().unwrap();
        assert_eq!(
            store.tables.usernames.get(&txn, b"alice").unwrap(),
            Some("u1".to_string()),
            "the data is served as it is"
        );
        drop(txn);
        drop(store);
        // The trial failed: the previous version opens the store as it left it.
        let again = Store::open_with(dir.path(), 16 << 20, Migrate::AfterCommit).unwrap();
        assert_eq!(again.schema_version().unwrap(), 0);
        // The trial committed: now it migrates, once.
        assert_eq!(again.migrate().unwrap(), 0);
        assert_eq!(again.pending_migration(), None);
        assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            again.migrate().unwrap(),
            SCHEMA_VERSION,
            "nothing left to do"
        );
    }

    #[test]
    fn a_current_store_has_nothing_pending_in_either_mode() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), 16 << 20).unwrap());
        let store = Store::open_with(dir.path(), 16 << 20, Migrate::AfterCommit).unwrap();
        assert_eq!(store.pending_migration(), None);
        let fresh = tempfile::tempdir().unwrap();
        let empty = Store::open_with(fresh.path(), 16 << 20, Migrate::AfterCommit).unwrap();
        assert_eq!(empty.pending_migration(), Some(0), "a new store waits too");
    }

    #[test]
    fn a_newer_store_is_refused_untouched_in_both_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        store
            .write(|txn, t| -> Result<()> {
                t.meta
                    .put(txn, VERSION_KEY, &serde_json::json!(SCHEMA_VERSION + 1))
            })
            .unwrap();
        drop(store);
        for when in [Migrate::AfterCommit, Migrate::Now] {
            let err = Store::open_with(dir.path(), 16 << 20, when)
                .err()
                .expect("a newer store is refused");
            assert!(
                matches!(err, StoreError::NewerSchema { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
                "{err}"
            );
            assert!(err.to_string().contains("leaves it untouched"), "{err}");
        }
        // Still the newer version's store: read it without the version check.
        // SAFETY: the only environment open on this folder in this test.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(16 << 20)
                .max_dbs(32)
                .max_readers(256)
                .open(dir.path())
                .unwrap()
        };
        let txn = env.read_txn().unwrap();
        let meta: Database<Bytes, Bytes> = env.open_database(&txn, Some("meta")).unwrap().unwrap();
        let raw = meta.get(&txn, VERSION_KEY).unwrap().unwrap();
        assert_eq!(
            raw,
            serde_json::to_vec(&(SCHEMA_VERSION + 1))
                .unwrap()
                .as_slice()
        );
    }

    /// A schema 2 store (before the trash) migrates to 3: its archives are
    /// listed as before, the trash starts empty and the indexes agree.
    #[test]
    fn a_store_from_before_the_trash_migrates_forward() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let record = crate::archive::new_archive_record("a1", "u1", "n", "f", 3, &[0; 32], 1);
        store
            .write(|txn, t| -> Result<()> {
                t.archives.put(txn, b"a1", &record)?;
                t.meta.put(txn, VERSION_KEY, &serde_json::json!(2))
            })
            .unwrap();
        drop(store);
        let trial = Store::open_with(dir.path(), 16 << 20, Migrate::AfterCommit).unwrap();
        assert_eq!(trial.pending_migration(), Some(2));
        assert_eq!(trial.migrate().unwrap(), 2);
        assert_eq!(trial.schema_version().unwrap(), 3);
        let txn = trial.read().unwrap();
        let archives = &trial.tables.archives;
        let (page, more) = archives.page_of_owner(&txn, "u1", None, 10).unwrap();
        assert_eq!((page.len(), more), (1, false));
        assert!(archives
            .page_of_trash(&txn, "u1", None, 10)
            .unwrap()
            .0
            .is_empty());
        archives.check(&txn).unwrap();
    }

    #[test]
    fn failed_change_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let result: Result<(), StoreError> = store.write(|txn, t| {
            t.usernames.put(txn, b"bob", &"u2".to_string())?;
            Err(StoreError::MapFull)
        });
        assert!(result.is_err());
        let txn = store.read().unwrap();
        assert_eq!(store.tables.usernames.get(&txn, b"bob").unwrap(), None);
    }

    /// Past the growth limit, member growth is refused with a sentence while
    /// an admin's change (a user disabled, sessions dropped) still fits.
    #[test]
    fn growth_stops_short_of_the_map_so_admin_changes_fit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let user = records::UserRecord {
            id: "u1".into(),
            username: "member".into(),
            password_hash: String::new(),
            role: records::Role::Member,
            created_at: 0,
            disabled: false,
            quota_bytes: None,
        };
        store
            .write(|txn, t| -> Result<()> { t.users.put(txn, b"u1", &user) })
            .unwrap();
        let mut refused = false;
        for n in 0..10_000u32 {
            if let Err(err) = store.room_for_growth() {
                assert!(matches!(err, StoreError::NearlyFull));
                assert!(err.to_string().contains("nearly full"), "{err}");
                refused = true;
                break;
            }
            let session = records::SessionRecord {
                user_id: "u1".into(),
                expires_at: 0,
                csrf_token: "x".repeat(200),
                opened_at_ms: 0,
            };
            store
                .write(|txn, t| -> Result<()> {
                    t.sessions.put(txn, format!("s{n:08}").as_bytes(), &session)
                })
                .unwrap();
        }
        assert!(refused, "the growth limit was never reached");
        let (used, size) = store.map_use().unwrap();
        assert!(used * 100 < size * 95, "{used} of {size}");
        // The admin disables the member and ends their sessions: it fits.
        store
            .write(|txn, t| -> Result<()> {
                let mut user = t.users.get(txn, b"u1")?.unwrap();
                user.disabled = true;
                t.users.put(txn, b"u1", &user)?;
                t.sessions.delete_prefix(txn, b"s")?;
                Ok(())
            })
            .unwrap();
        store.room_for_growth().unwrap();
    }

    #[test]
    fn indexed_keys_split_back() {
        let key = indexed_key("abc", 258);
        assert_eq!(split_indexed_key(&key), Some(("abc", 258)));
        assert_eq!(split_indexed_key(b"ab"), None);
    }

    #[test]
    fn indexed_keys_sort_by_index() {
        let mut keys = vec![
            indexed_key("a", 256),
            indexed_key("a", 2),
            indexed_key("a", 10),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                indexed_key("a", 2),
                indexed_key("a", 10),
                indexed_key("a", 256)
            ]
        );
        assert!(indexed_key("a", 1).starts_with(&indexed_prefix("a")));
    }
}
