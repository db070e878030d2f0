//! The persistent job queue, a store-level module that `archive`,
//! `accounts`, `settings` and `engine` use: the `jobs` table and its two
//! indexes, and the functions that add jobs in the same write transaction as
//! the state change that needs them.
//!
//! A job's key is its id; its `kind` is one of the `KIND_*` names and its
//! `target` the archive id (`<archive id>/<index>` for a part, the object id
//! for `delete_object`). `not_before` is when it may run next;
//! [`PARKED`] means "waiting for the settings to change".
//!
//! [`JobTable`] keeps, in the same transaction as every change of a job
//! record, a `jobs_due` index (key: class, due time, age) so the next job is
//! found in O(log n), and a `jobs_targets` index (key: kind, target, id) so
//! "is such a job queued?" never scans the table. The order jobs are leased
//! in is due time, then age (a sequence number given at enqueue). Must not
//! touch: anything outside LMDB; which job runs where (the engine's leases).

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::records::JobRecord;
use super::{Result, StoreError, Table, Tables};
use crate::ids;

pub const KIND_UPLOAD_PART: &str = "upload_part";
pub const KIND_UPLOAD_MANIFEST: &str = "upload_manifest";
pub const KIND_UNCACHE: &str = "uncache";
pub const KIND_CACHE: &str = "cache";
pub const KIND_DELETE: &str = "delete";
pub const KIND_DELETE_OBJECT: &str = "delete_object";
pub const KIND_UPLOAD_CATALOG: &str = "upload_catalog";
pub const KIND_MOVE_REMOTE: &str = "move_remote";

/// The one id of the remote move job (`engine::remote_move`).
pub const MOVE_JOB_ID: &str = "move_remote";

/// The one id of the catalog upload job: every change of users or settings
/// rewrites this record, so many changes make one upload.
pub const CATALOG_JOB_ID: &str = "upload_catalog";

/// `not_before` of a job that failed permanently: it waits until an admin
/// changes the remote settings ([`unpark_all`]).
pub const PARKED: i64 = i64::MAX;

/// What a job works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    UploadPart {
        archive_id: String,
        index: u32,
    },
    UploadManifest {
        archive_id: String,
    },
    Uncache {
        archive_id: String,
    },
    Cache {
        archive_id: String,
    },
    Delete {
        archive_id: String,
    },
    DeleteObject {
        object_id: String,
    },
    /// Upload the encrypted catalog (users, settings). `generation` changes
    /// with every enqueue, so a change made while an upload runs is not lost.
    UploadCatalog {
        generation: String,
    },
    /// Copy every part marked `to_move` from the previous remote to the
    /// current one, then release the previous one.
    MoveRemote,
}

impl JobKind {
    pub fn to_parts(&self) -> (&'static str, String) {
        match self {
            JobKind::UploadPart { archive_id, index } => {
                (KIND_UPLOAD_PART, format!("{archive_id}/{index}"))
            }
            JobKind::UploadManifest { archive_id } => (KIND_UPLOAD_MANIFEST, archive_id.clone()),
            JobKind::Uncache { archive_id } => (KIND_UNCACHE, archive_id.clone()),
            JobKind::Cache { archive_id } => (KIND_CACHE, archive_id.clone()),
            JobKind::Delete { archive_id } => (KIND_DELETE, archive_id.clone()),
            JobKind::DeleteObject { object_id } => (KIND_DELETE_OBJECT, object_id.clone()),
            JobKind::UploadCatalog { generation } => (KIND_UPLOAD_CATALOG, generation.clone()),
            JobKind::MoveRemote => (KIND_MOVE_REMOTE, String::new()),
        }
    }

    pub fn from_record(record: &JobRecord) -> Option<JobKind> {
        let target = record.target.clone();
        Some(match record.kind.as_str() {
            KIND_UPLOAD_PART => {
                let (archive_id, index) = target.split_once('/')?;
                JobKind::UploadPart {
                    archive_id: archive_id.to_string(),
                    index: index.parse().ok()?,
                }
            }
            KIND_UPLOAD_MANIFEST => JobKind::UploadManifest { archive_id: target },
            KIND_UNCACHE => JobKind::Uncache { archive_id: target },
            KIND_CACHE => JobKind::Cache { archive_id: target },
            KIND_DELETE => JobKind::Delete { archive_id: target },
            KIND_DELETE_OBJECT => JobKind::DeleteObject { object_id: target },
            KIND_UPLOAD_CATALOG => JobKind::UploadCatalog { generation: target },
            KIND_MOVE_REMOTE => JobKind::MoveRemote,
            _ => return None,
        })
    }

    /// Uploads wait for the upload window and count against the bandwidth limit.
    pub fn is_upload(&self) -> bool {
        matches!(
            self,
            JobKind::UploadPart { .. } | JobKind::UploadManifest { .. } | JobKind::MoveRemote
        )
    }
}

/// Adds one job, due now. Call it inside the write transaction that makes
/// the job necessary.
pub fn enqueue(txn: &mut RwTxn, tables: &Tables, kind: JobKind) -> Result<String> {
    let (kind, target) = kind.to_parts();
    let now = ids::now_secs();
    let record = JobRecord {
        id: ids::random_id(),
        kind: kind.to_string(),
        target,
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
        seq: 0,
    };
    tables.jobs.put(txn, record.id.as_bytes(), &record)?;
    Ok(record.id)
}

/// The jobs that back up a newly created archive: one per part, or the
/// manifest right away for an empty archive.
pub fn enqueue_backup(
    txn: &mut RwTxn,
    tables: &Tables,
    archive_id: &str,
    parts_total: u32,
) -> Result<()> {
    // Every copy destination must get it too (`engine::destinations`).
    super::copies::add_copies_for(txn, tables, archive_id)?;
    if parts_total == 0 {
        enqueue(
            txn,
            tables,
            JobKind::UploadManifest {
                archive_id: archive_id.to_string(),
            },
        )?;
    }
    for index in 0..parts_total {
        enqueue(
            txn,
            tables,
            JobKind::UploadPart {
                archive_id: archive_id.to_string(),
                index,
            },
        )?;
    }
    Ok(())
}

/// Asks for the catalog (users, settings) to be uploaded again. Call it in
/// the write transaction that changes a user or the settings. Deduplicated:
/// the one job [`CATALOG_JOB_ID`] is rewritten, due now, with a new
/// generation.
pub fn enqueue_catalog_upload(txn: &mut RwTxn, tables: &Tables) -> Result<()> {
    // The copy destinations' syncers write it where they are behind.
    super::copies::bump_catalog_version(txn, tables)?;
    let now = ids::now_secs();
    let record = JobRecord {
        id: CATALOG_JOB_ID.to_string(),
        kind: KIND_UPLOAD_CATALOG.to_string(),
        target: ids::random_id(),
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
        seq: 0,
    };
    tables.jobs.put(txn, CATALOG_JOB_ID.as_bytes(), &record)
}

/// Asks for the remote move job ([`MOVE_JOB_ID`]) to run now.
pub fn enqueue_move(txn: &mut RwTxn, tables: &Tables) -> Result<()> {
    let now = ids::now_secs();
    let record = JobRecord {
        id: MOVE_JOB_ID.to_string(),
        kind: KIND_MOVE_REMOTE.to_string(),
        target: String::new(),
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
        seq: 0,
    };
    tables.jobs.put(txn, MOVE_JOB_ID.as_bytes(), &record)
}

/// Makes every parked or waiting job due now with fresh attempts (the remote
/// settings changed). Returns how many were woken. Reads only the jobs that
/// wait (through the due index), never the whole table.
pub fn unpark_all(txn: &mut RwTxn, tables: &Tables) -> Result<usize> {
    let now = ids::now_secs();
    let waiting = tables.jobs.ids_due_after(txn, now)?;
    for id in &waiting {
        if let Some(mut job) = tables.jobs.get(txn, id.as_bytes())? {
            job.not_before = now;
            job.attempts = 0;
            tables.jobs.put(txn, id.as_bytes(), &job)?;
        }
    }
    Ok(waiting.len())
}

/// Makes the waiting or parked jobs of one archive due now with fresh
/// attempts (an admin's "Retry"); how many. Reads only the jobs that wait.
pub fn unpark_archive(txn: &mut RwTxn, tables: &Tables, archive_id: &str) -> Result<usize> {
    let now = ids::now_secs();
    let mut woken = 0;
    for id in tables.jobs.ids_due_after(txn, now)? {
        let Some(mut job) = tables.jobs.get(txn, id.as_bytes())? else {
            continue;
        };
        let of_archive = match JobKind::from_record(&job) {
            Some(
                JobKind::UploadPart { archive_id: id, .. }
                | JobKind::UploadManifest { archive_id: id }
                | JobKind::Uncache { archive_id: id }
                | JobKind::Cache { archive_id: id }
                | JobKind::Delete { archive_id: id },
            ) => id == archive_id,
            _ => false,
        };
        if of_archive {
            job.not_before = now;
            job.attempts = 0;
            tables.jobs.put(txn, id.as_bytes(), &job)?;
            woken += 1;
        }
    }
    Ok(woken)
}

/// The two lease classes: uploads wait for the upload window, the rest not.
const CLASS_UPLOAD: u8 = 0;
const CLASS_OTHER: u8 = 1;
const CLASSES: [u8; 2] = [CLASS_UPLOAD, CLASS_OTHER];

/// Where the next sequence number (a job's age) is kept in `meta`.
const SEQ_KEY: &[u8] = b"job_seq";

fn class_of(record: &JobRecord) -> u8 {
    match JobKind::from_record(record) {
        Some(kind) if kind.is_upload() => CLASS_UPLOAD,
        _ => CLASS_OTHER,
    }
}

/// A due time as bytes that sort like the signed number.
fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(bytes: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(raw) ^ (1 << 63)) as i64
}

/// `jobs_due` key: class, due time, sequence (17 bytes; value: the job id).
fn due_key(record: &JobRecord) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = class_of(record);
    key[1..9].copy_from_slice(&time_bytes(record.not_before));
    key[9..].copy_from_slice(&record.seq.to_be_bytes());
    key
}

/// `jobs_targets` key: kind, NUL, target, NUL, id (value empty).
fn target_prefix(kind: &str, target: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + target.len() + 2);
    key.extend_from_slice(kind.as_bytes());
    key.push(0);
    key.extend_from_slice(target.as_bytes());
    key.push(0);
    key
}

fn target_key(record: &JobRecord) -> Vec<u8> {
    let mut key = target_prefix(&record.kind, &record.target);
    key.extend_from_slice(record.id.as_bytes());
    key
}

fn lmdb(err: heed::Error) -> StoreError {
    StoreError::from_heed(err)
}

/// The `jobs` table with its due and target indexes, kept in step in every
/// write transaction that changes a job (so they agree after any crash).
#[derive(Clone, Copy)]
pub struct JobTable {
    table: Table<JobRecord>,
    due: Database<Bytes, Bytes>,
    targets: Database<Bytes, Bytes>,
    meta: Table<serde_json::Value>,
}

impl JobTable {
    pub(super) fn open(
        env: &heed::Env,
        txn: &mut RwTxn,
        table: Table<JobRecord>,
        meta: Table<serde_json::Value>,
    ) -> Result<JobTable> {
        let due = env
            .create_database::<Bytes, Bytes>(txn, Some("jobs_due"))
            .map_err(lmdb)?;
        let targets = env
            .create_database::<Bytes, Bytes>(txn, Some("jobs_targets"))
            .map_err(lmdb)?;
        Ok(JobTable {
            table,
            due,
            targets,
            meta,
        })
    }

    pub fn get(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<JobRecord>> {
        self.table.get(txn, key)
    }

    /// Writes `record` under `key` and moves its index entries. A record
    /// with `seq` 0 is new: it gets the next sequence number (its age).
    pub fn put(&self, txn: &mut RwTxn, key: &[u8], record: &JobRecord) -> Result<()> {
        self.unindex(txn, key)?;
        let mut record = record.clone();
        if record.seq == 0 {
            record.seq = self.next_seq(txn)?;
        }
        self.table.put(txn, key, &record)?;
        self.due.put(txn, &due_key(&record), key).map_err(lmdb)?;
        self.targets
            .put(txn, &target_key(&record), &[])
            .map_err(lmdb)
    }

    /// Removes `key` and its index entries; returns whether it existed.
    pub fn delete(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        if !self.unindex(txn, key)? {
            return Ok(false);
        }
        self.table.delete(txn, key)
    }

    fn unindex(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        let Some(old) = self.table.get(txn, key)? else {
            return Ok(false);
        };
        self.due.delete(txn, &due_key(&old)).map_err(lmdb)?;
        self.targets.delete(txn, &target_key(&old)).map_err(lmdb)?;
        Ok(true)
    }

    fn next_seq(&self, txn: &mut RwTxn) -> Result<u64> {
        let seq = self
            .meta
            .get(txn, SEQ_KEY)?
            .and_then(|value| value.as_u64())
            .unwrap_or(0)
            + 1;
        self.meta.put(txn, SEQ_KEY, &serde_json::json!(seq))?;
        Ok(seq)
    }

    /// Every job, in id order (tests and tools; the engine never scans).
    pub fn all(&self, txn: &RoTxn) -> Result<Vec<(Vec<u8>, JobRecord)>> {
        self.table.all(txn)
    }

    pub fn len(&self, txn: &RoTxn) -> Result<u64> {
        self.table.len(txn)
    }

    pub fn is_empty(&self, txn: &RoTxn) -> Result<bool> {
        self.table.is_empty(txn)
    }

    /// Whether a job of this kind and target is queued (running or not).
    pub fn queued(&self, txn: &RoTxn, kind: &JobKind) -> Result<bool> {
        let (kind, target) = kind.to_parts();
        let prefix = target_prefix(kind, &target);
        let mut iter = self.targets.prefix_iter(txn, &prefix).map_err(lmdb)?;
        Ok(iter.next().transpose().map_err(lmdb)?.is_some())
    }

    /// The next job to run at `now`: the earliest due, then the oldest, of
    /// the jobs `busy` does not name; upload jobs only when
    /// `uploads_allowed`. Reads one index entry per class plus one per busy
    /// job passed over: O(log n) whatever the queue's length.
    pub fn next_due(
        &self,
        txn: &RoTxn,
        now: i64,
        uploads_allowed: bool,
        busy: impl Fn(&str) -> bool,
    ) -> Result<Option<JobRecord>> {
        let mut best: Option<([u8; 17], Vec<u8>)> = None;
        for class in CLASSES {
            if class == CLASS_UPLOAD && !uploads_allowed {
                continue;
            }
            let Some((key, id)) = self.first_free(txn, class, now, &busy)? else {
                continue;
            };
            // Across classes: due time, then age (the key without the class).
            if best.as_ref().is_none_or(|(other, _)| key[1..] < other[1..]) {
                best = Some((key, id));
            }
        }
        match best {
            Some((_, id)) => self.table.get(txn, &id),
            None => Ok(None),
        }
    }

    /// The first entry of `class` due by `now` that `busy` does not name.
    fn first_free(
        &self,
        txn: &RoTxn,
        class: u8,
        now: i64,
        busy: &impl Fn(&str) -> bool,
    ) -> Result<Option<([u8; 17], Vec<u8>)>> {
        for entry in self.due.prefix_iter(txn, &[class]).map_err(lmdb)? {
            let (key, id) = entry.map_err(lmdb)?;
            if key.len() != 17 || time_from(&key[1..9]) > now {
                return Ok(None);
            }
            if busy(std::str::from_utf8(id).unwrap_or_default()) {
                continue;
            }
            let mut fixed = [0u8; 17];
            fixed.copy_from_slice(key);
            return Ok(Some((fixed, id.to_vec())));
        }
        Ok(None)
    }

    /// The ids of the jobs due after `now` (waiting for a retry or parked).
    fn ids_due_after(&self, txn: &RoTxn, now: i64) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for class in CLASSES {
            let mut start = vec![class];
            start.extend_from_slice(&time_bytes(now.saturating_add(1)));
            let end = [class + 1];
            let range = (
                std::ops::Bound::Included(start.as_slice()),
                std::ops::Bound::Excluded(end.as_slice()),
            );
            for entry in self.due.range(txn, &range).map_err(lmdb)? {
                let (_, id) = entry.map_err(lmdb)?;
                ids.push(String::from_utf8_lossy(id).into_owned());
            }
        }
        Ok(ids)
    }

    /// Whether the indexes and the table agree (every job has its two
    /// entries and no entry is left over), as a sentence when not. Reads
    /// everything: for tests and tools, never the engine.
    pub fn check(&self, txn: &RoTxn) -> Result<(), String> {
        let fail = |err: StoreError| err.to_string();
        let jobs = self.table.all(txn).map_err(fail)?;
        for (key, job) in &jobs {
            let due = self
                .due
                .get(txn, &due_key(job))
                .map_err(lmdb)
                .map_err(fail)?;
            if due != Some(key.as_slice()) {
                return Err(format!("job {} has no due entry", job.id));
            }
            let target = self
                .targets
                .get(txn, &target_key(job))
                .map_err(lmdb)
                .map_err(fail)?;
            if target.is_none() {
                return Err(format!("job {} has no target entry", job.id));
            }
        }
        let due = self.due.len(txn).map_err(lmdb).map_err(fail)?;
        let targets = self.targets.len(txn).map_err(lmdb).map_err(fail)?;
        if (due, targets) != (jobs.len() as u64, jobs.len() as u64) {
            return Err(format!(
                "{} jobs but {due} due and {targets} target entries",
                jobs.len()
            ));
        }
        Ok(())
    }

    /// Rebuilds both indexes from the table (the migration of stores made
    /// before they existed). Jobs without a sequence number get one in the
    /// order the engine used to lease them: created, then kind and target.
    pub(super) fn rebuild_indexes(&self, txn: &mut RwTxn) -> Result<()> {
        self.due.clear(txn).map_err(lmdb)?;
        self.targets.clear(txn).map_err(lmdb)?;
        let mut jobs = self.table.all(txn)?;
        jobs.sort_by(|(_, a), (_, b)| {
            (a.created_at, &a.kind, &a.target).cmp(&(b.created_at, &b.kind, &b.target))
        });
        for (key, mut record) in jobs {
            if record.seq == 0 {
                record.seq = self.next_seq(txn)?;
                self.table.put(txn, &key, &record)?;
            }
            self.due.put(txn, &due_key(&record), &key).map_err(lmdb)?;
            self.targets
                .put(txn, &target_key(&record), &[])
                .map_err(lmdb)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, super::super::Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(dir.path(), 64 << 20).unwrap();
        (dir, store)
    }

    fn delete_object(name: &str) -> JobKind {
        JobKind::DeleteObject {
            object_id: name.into(),
        }
    }

    fn part(index: u32) -> JobKind {
        JobKind::UploadPart {
            archive_id: "a1".into(),
            index,
        }
    }

    /// Enqueues `kind` and sets its due time; returns the id.
    fn add(store: &super::super::Store, kind: JobKind, due: i64) -> String {
        store
            .write(|txn, tables| -> Result<String> {
                let id = enqueue(txn, tables, kind)?;
                let mut job = tables.jobs.get(txn, id.as_bytes())?.unwrap();
                job.not_before = due;
                tables.jobs.put(txn, id.as_bytes(), &job)?;
                Ok(id)
            })
            .unwrap()
    }

    fn next(store: &super::super::Store, now: i64, uploads: bool, busy: &[&str]) -> Option<String> {
        let txn = store.read().unwrap();
        store
            .tables
            .jobs
            .next_due(&txn, now, uploads, |id| busy.contains(&id))
            .unwrap()
            .map(|job| job.id)
    }

    /// Drains the queue at `now` the way the engine does (lease, finish).
    fn drain(store: &super::super::Store, now: i64, uploads: bool) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(id) = next(store, now, uploads, &[]) {
            store
                .write(|txn, tables| tables.jobs.delete(txn, id.as_bytes()))
                .unwrap();
            order.push(id);
        }
        order
    }

    #[test]
    fn jobs_run_by_due_time_then_age() {
        let (_dir, store) = store();
        let late = add(&store, delete_object("late"), 50);
        let old = add(&store, delete_object("old"), 10);
        let upload = add(&store, part(0), 10);
        let young = add(&store, delete_object("young"), 10);
        let early = add(&store, part(1), 5);
        let parked = add(&store, delete_object("parked"), PARKED);
        let future = add(&store, delete_object("future"), 1_000);
        // Nothing is due before its time; parked never.
        assert_eq!(next(&store, 4, true, &[]), None);
        assert_eq!(
            drain(&store, 100, true),
            vec![early, old, upload, young, late]
        );
        assert_eq!(drain(&store, 2_000, true), vec![future]);
        let txn = store.read().unwrap();
        assert_eq!(store.tables.jobs.len(&txn).unwrap(), 1);
        assert!(store
            .tables
            .jobs
            .get(&txn, parked.as_bytes())
            .unwrap()
            .is_some());
    }

    #[test]
    fn busy_jobs_and_closed_upload_windows_are_passed_over() {
        let (_dir, store) = store();
        let first = add(&store, part(0), 1);
        let second = add(&store, part(1), 1);
        let other = add(&store, delete_object("x"), 2);
        assert_eq!(next(&store, 5, true, &[]), Some(first.clone()));
        assert_eq!(next(&store, 5, true, &[&first]), Some(second.clone()));
        assert_eq!(
            next(&store, 5, true, &[&first, &second]),
            Some(other.clone())
        );
        assert_eq!(next(&store, 5, false, &[]), Some(other.clone()));
        assert_eq!(next(&store, 5, false, &[&other]), None);
    }

    #[test]
    fn a_retried_job_keeps_its_age_and_moves_in_the_index() {
        let (_dir, store) = store();
        let a = add(&store, delete_object("a"), 1);
        let b = add(&store, delete_object("b"), 1);
        // `a` failed: due later, as the engine's backoff does.
        store
            .write(|txn, tables| -> Result<()> {
                let mut job = tables.jobs.get(txn, a.as_bytes())?.unwrap();
                job.attempts += 1;
                job.not_before = 30;
                tables.jobs.put(txn, a.as_bytes(), &job)
            })
            .unwrap();
        assert_eq!(next(&store, 29, true, &[]), Some(b.clone()));
        // Once both are due again at the same time, the older runs first.
        store
            .write(|txn, tables| -> Result<()> {
                let mut job = tables.jobs.get(txn, b.as_bytes())?.unwrap();
                job.not_before = 30;
                tables.jobs.put(txn, b.as_bytes(), &job)
            })
            .unwrap();
        assert_eq!(drain(&store, 30, true), vec![a, b]);
        let txn = store.read().unwrap();
        assert!(store.tables.jobs.due.is_empty(&txn).unwrap());
        assert!(store.tables.jobs.targets.is_empty(&txn).unwrap());
    }

    #[test]
    fn queued_looks_up_kind_and_target_and_unpark_wakes_only_waiting_jobs() {
        let (_dir, store) = store();
        let manifest = JobKind::UploadManifest {
            archive_id: "a1".into(),
        };
        let now = ids::now_secs();
        add(&store, manifest.clone(), PARKED);
        add(&store, delete_object("soon"), now + 100);
        add(&store, delete_object("due"), now - 5);
        let txn = store.read().unwrap();
        assert!(store.tables.jobs.queued(&txn, &manifest).unwrap());
        let other = JobKind::UploadManifest {
            archive_id: "a".into(),
        };
        assert!(!store.tables.jobs.queued(&txn, &other).unwrap());
        drop(txn);
        assert_eq!(store.write(unpark_all).unwrap(), 2);
        assert_eq!(drain(&store, now, true).len(), 3);
    }

    #[test]
    fn the_catalog_job_is_rewritten_not_duplicated() {
        let (_dir, store) = store();
        for _ in 0..3 {
            store.write(enqueue_catalog_upload).unwrap();
        }
        let txn = store.read().unwrap();
        assert_eq!(store.tables.jobs.len(&txn).unwrap(), 1);
        assert_eq!(store.tables.jobs.due.len(&txn).unwrap(), 1);
        assert_eq!(store.tables.jobs.targets.len(&txn).unwrap(), 1);
    }

    #[test]
    fn a_store_from_before_the_index_gets_it_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(dir.path(), 64 << 20).unwrap();
        // Version 1: jobs in the table only, no sequence numbers.
        store
            .write(|txn, tables| -> Result<()> {
                for (id, created, target) in [("j1", 7, "b"), ("j2", 5, "z"), ("j3", 7, "a")] {
                    let record = JobRecord {
                        id: id.into(),
                        kind: KIND_DELETE_OBJECT.into(),
                        target: target.into(),
                        attempts: 0,
                        not_before: created,
                        last_error: None,
                        created_at: created,
                        seq: 0,
                    };
                    tables.jobs.table.put(txn, id.as_bytes(), &record)?;
                }
                tables
                    .meta
                    .put(txn, b"schema_version", &serde_json::json!(1))
            })
            .unwrap();
        drop(store);
        let store = super::super::Store::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            super::super::SCHEMA_VERSION
        );
        // The order the engine used before: created, then kind and target.
        assert_eq!(drain(&store, 10, true), vec!["j2", "j3", "j1"]);
    }

    #[test]
    fn kinds_round_trip_through_records() {
        for kind in [
            JobKind::UploadPart {
                archive_id: "a1".into(),
                index: 7,
            },
            JobKind::UploadManifest {
                archive_id: "a1".into(),
            },
            JobKind::Uncache {
                archive_id: "a1".into(),
            },
            JobKind::Cache {
                archive_id: "a1".into(),
            },
            JobKind::Delete {
                archive_id: "a1".into(),
            },
            JobKind::DeleteObject {
                object_id: "ff".into(),
            },
            JobKind::UploadCatalog {
                generation: "g1".into(),
            },
            JobKind::MoveRemote,
        ] {
            let (name, target) = kind.to_parts();
            let record = JobRecord {
                id: "j".into(),
                kind: name.into(),
                target,
                attempts: 0,
                not_before: 0,
                last_error: None,
                created_at: 0,
                seq: 0,
            };
            assert_eq!(JobKind::from_record(&record), Some(kind));
        }
    }
}
