//! The syncer of one copy destination: a thread (`sync-<name>`) that keeps
//! it in step, pass after pass. A pass copies every part a copy lacks
//! through the shared copy pass (`engine::pipeline`: a feeder, a few
//! copiers, one committer), writes the manifest of each archive whose parts
//! are all there (the archive is then complete there, and `backed_up` once
//! complete everywhere), carries out the deletions queued for it, and
//! writes the catalog when it is behind. Every step is committed before the
//! next, so a kill -9 loses nothing; a part put but not committed is found
//! there (HEAD, a length its part can be sealed as) and only counted.
//!
//! Failures back off on their own (1 s … 5 min) and show as the
//! destination's problem ([`super::Health`]) from the third in a row; the
//! main destination and the other copies never wait for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::super::pipeline::{Batch, CopyWork, Stop, BATCH};
use super::super::remote_move::check_sealed;
use super::super::work::sha_bytes;
use super::super::{backoff_secs, lock, Failure, Inner, ObjectClaim};
use super::MAIN;
use crate::metrics;
use crate::remote::Remote;
use crate::repo::{self, ObjectId};
use crate::store::copies::{self, copy_key, copy_object_key, destination_prefix};
use crate::store::records::{
    ArchiveRecord, ArchiveState, CopyObjectRecord, CopyPartRecord, PartRecord,
};
use crate::store::{indexed_key, indexed_prefix, split_indexed_key, StoreError};

/// Copiers per destination: each holds one sealed part at most.
const COPIERS: usize = 2;
/// An idle syncer looks again this often even without a wake.
const IDLE_LOOK: Duration = Duration::from_secs(30);
/// An idle destination is asked whether it is still there this often.
const PROBE_EVERY: Duration = Duration::from_secs(60);

/// The running syncers, by destination id.
#[derive(Default)]
pub(crate) struct Syncers {
    running: Mutex<HashMap<String, Running>>,
    /// Syncers told to stop (their destination was removed), joined at
    /// shutdown.
    stopping: Mutex<Vec<JoinHandle<()>>>,
}

struct Running {
    halt: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Syncers {
    /// Starts the syncer of destination `id` unless it runs already.
    pub(crate) fn start(&self, inner: &Arc<Inner>, id: &str, name: &str) {
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut running = lock(&self.running);
        if running.contains_key(id) {
            return;
        }
        let halt = Arc::new(AtomicBool::new(false));
        let (thread_inner, thread_id, thread_halt) = (inner.clone(), id.to_string(), halt.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("sync-{name}").replace('\0', ""))
            .spawn(move || thread_inner.run_syncer(&thread_id, &thread_halt));
        match spawned {
            Ok(handle) => {
                running.insert(id.to_string(), Running { halt, handle });
            }
            Err(err) => {
                inner.health.failed(
                    id,
                    &format!("The copy to this destination could not start ({err}); restart the appliance."),
                    true,
                );
            }
        }
    }

    /// Tells the syncer of `id` to stop after what it is doing (it is
    /// joined at shutdown).
    pub(crate) fn stop(&self, inner: &Inner, id: &str) {
        if let Some(running) = lock(&self.running).remove(id) {
            running.halt.store(true, Ordering::SeqCst);
            lock(&self.stopping).push(running.handle);
            inner.wake();
        }
    }

    /// Stops every syncer and waits for each.
    pub(crate) fn stop_all(&self, inner: &Inner) {
        let running: Vec<Running> = lock(&self.running).drain().map(|(_, r)| r).collect();
        for syncer in &running {
            syncer.halt.store(true, Ordering::SeqCst);
        }
        inner.wake();
        let stopping = std::mem::take(&mut *lock(&self.stopping));
        for handle in running.into_iter().map(|r| r.handle).chain(stopping) {
            let _ = handle.join();
        }
    }

    /// The destinations with a syncer running (for tests and status).
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.running).keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// What a pass came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Synced {
    /// Nothing more to do now.
    Idle,
    /// Something was held by another job, or the pass was cut short (the
    /// upload window, a stop): look again soon.
    Busy,
}

/// One part a copy lacks.
pub(super) struct CopyItem {
    archive_id: String,
    index: u32,
    part: PartRecord,
    /// The archive's whole file is on the local disk.
    local: bool,
    object_id: ObjectId,
}

/// A part copied to (or found on) the destination, waiting to be committed.
pub(super) struct CopyLanded<'a> {
    item: CopyItem,
    /// What is there now when this copier put or found it (length, and the
    /// retain-until it was written with); `None`: already counted there.
    stored: Option<(u64, Option<i64>)>,
    _claim: ObjectClaim<'a>,
}

/// The parts pass of one destination.
struct SyncWork<'a> {
    inner: &'a Inner,
    dest: &'a str,
    remote: &'a dyn Remote,
}

impl<'a> CopyWork for SyncWork<'a> {
    type Item = CopyItem;
    type Landed = CopyLanded<'a>;

    fn next_batch(&self, cursor: Option<&[u8]>) -> Result<Batch<CopyItem>, StoreError> {
        self.inner.parts_to_copy(self.dest, cursor)
    }

    fn copy(&self, item: CopyItem) -> Result<CopyLanded<'a>, (String, Stop)> {
        match self.inner.copy_to(self.dest, self.remote, &item) {
            Ok((stored, claim)) => Ok(CopyLanded {
                item,
                stored,
                _claim: claim,
            }),
            Err(stop) => Err((item.archive_id, stop)),
        }
    }

    fn commit(&self, group: &[CopyLanded<'a>]) -> Result<(), Failure> {
        self.inner.commit_copied(self.dest, group)
    }
}

impl Inner {
    /// The syncer thread of destination `id`: passes until told to stop,
    /// idle between them until woken, backing off after failures.
    fn run_syncer(&self, id: &str, halt: &AtomicBool) {
        let mut failures = 0u32;
        let stopped = || halt.load(Ordering::SeqCst) || self.shutdown.load(Ordering::SeqCst);
        while !stopped() {
            let seen = *lock(&self.wake.0);
            match self.sync_once(id, halt, &mut failures) {
                None => {
                    let (counter, condvar) = &self.wake;
                    let guard = lock(counter);
                    if *guard == seen && !stopped() {
                        let _ = condvar.wait_timeout(guard, IDLE_LOOK);
                    }
                }
                Some(wait) => {
                    let until = Instant::now() + wait;
                    while Instant::now() < until && !stopped() {
                        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
                    }
                }
            }
        }
    }

    /// One pass and its accounting: `None` when there is nothing more to
    /// do now, else how long to wait before the next (a second when busy,
    /// the backoff after a failure, which counts in `failures` and shows as
    /// the destination's problem from the third in a row).
    pub(crate) fn sync_once(
        &self,
        id: &str,
        halt: &AtomicBool,
        failures: &mut u32,
    ) -> Option<Duration> {
        let failure = match self.sync_pass(id, halt) {
            Ok(Synced::Idle) => {
                *failures = 0;
                return None;
            }
            Ok(Synced::Busy) | Err(Failure::Busy) => return Some(Duration::from_secs(1)),
            Err(failure) => failure,
        };
        let (Failure::Transient(message) | Failure::Permanent(message) | Failure::Damaged(message)) =
            failure
        else {
            return Some(Duration::from_secs(1));
        };
        *failures += 1;
        let delay = backoff_secs(*failures, rand::random::<f64>());
        self.health.failed(
            id,
            &format!("{message} (attempt {failures}; trying again in {delay} s)"),
            false,
        );
        Some(Duration::from_secs(delay as u64))
    }

    /// One pass for destination `id` (see the module comment). The tests
    /// drive it directly.
    pub(crate) fn sync_pass(&self, id: &str, halt: &AtomicBool) -> Result<Synced, Failure> {
        let remote = self.destination_remote(id)?;
        if !self.uploads_allowed() {
            // Outside the upload window only deletions go on; a wake or
            // the idle look tries again.
            self.carry_out_deletes(id, remote.as_ref())?;
            return Ok(Synced::Idle);
        }
        let work = SyncWork {
            inner: self,
            dest: id,
            remote: remote.as_ref(),
        };
        let outcome = self.copy_pass(&work, COPIERS, halt);
        self.note_copy_errors(id, &outcome.stuck)?;
        if let Some(failure) = outcome.failure {
            return Err(failure);
        }
        let mut did = self.write_manifests(id, remote.as_ref())?;
        did |= self.carry_out_deletes(id, remote.as_ref())?;
        did |= self.write_catalog(id, remote.as_ref())?;
        if !did && (self.health.error(id).is_some() || self.health.probe_due(id, PROBE_EVERY)) {
            // Nothing to do: is a problem shown over, is the place still
            // there? (A destination with no work is still watched.)
            remote.head(repo::CONFIG_KEY)?;
            self.health.succeeded(id);
        }
        if outcome.busy {
            return Ok(Synced::Busy);
        }
        Ok(Synced::Idle)
    }

    /// The next parts destination `dest` lacks, archive by archive after
    /// the copy record `cursor`, about [`BATCH`] at a time.
    fn parts_to_copy(
        &self,
        dest: &str,
        cursor: Option<&[u8]>,
    ) -> Result<Batch<CopyItem>, StoreError> {
        // Before the transaction: loading the keys the first time reads
        // the store, and a thread holds one read transaction at a time.
        let keys = self.keys().ok().map(|(keys, _)| keys);
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let prefix = destination_prefix(dest);
        let mut items = Vec::new();
        let mut last = None;
        for (key, copy) in tables.copies.prefix_after(&txn, &prefix, cursor, BATCH)? {
            last = Some(key.clone());
            if copy.complete {
                continue;
            }
            let archive_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some(archive) = tables.archives.get(&txn, archive_id.as_bytes())? else {
                continue;
            };
            if matches!(
                archive.state,
                ArchiveState::Receiving | ArchiveState::Deleting
            ) {
                continue;
            }
            let stored = tables
                .copy_parts
                .prefix(&txn, &indexed_prefix(&copy_key(dest, &archive_id)))?;
            let stored: std::collections::HashSet<u32> = stored
                .iter()
                .filter_map(|(key, _)| split_indexed_key(key).map(|(_, index)| index))
                .collect();
            for (index, part) in tables.parts_of(&txn, &archive_id)?.into_iter().enumerate() {
                let index = index as u32;
                if stored.contains(&index) {
                    continue;
                }
                let object_id = match (&part.object_id, keys) {
                    (Some(id), _) => ObjectId::parse(id).ok(),
                    (None, Some(keys)) => {
                        sha_bytes(&part.sha256).ok().map(|sha| keys.object_id(&sha))
                    }
                    (None, None) => None,
                };
                let Some(object_id) = object_id else {
                    continue;
                };
                items.push(CopyItem {
                    archive_id: archive_id.clone(),
                    index,
                    part,
                    local: archive.state.is_local(),
                    object_id,
                });
            }
            if items.len() >= BATCH {
                break;
            }
        }
        Ok((items, last))
    }

    /// Copies one part to `dest` unless it is counted or found there.
    #[allow(clippy::type_complexity)]
    fn copy_to<'a>(
        &'a self,
        dest: &str,
        remote: &dyn Remote,
        item: &CopyItem,
    ) -> Result<(Option<(u64, Option<i64>)>, ObjectClaim<'a>), Stop> {
        let object_text = item.object_id.as_str();
        let object_key = copy_object_key(dest, object_text);
        let claim = ObjectClaim::take(self, &object_key)?;
        let (counted, recorded) = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            (
                tables
                    .copy_objects
                    .get(&txn, object_key.as_bytes())?
                    .is_some(),
                tables.objects.get(&txn, object_text.as_bytes())?,
            )
        };
        if counted {
            return Ok((None, claim));
        }
        let key = repo::part_key(&item.object_id);
        // Put before a kill, or there already (the same repository).
        if let Some(length) = remote.head(&key).map_err(Failure::from)? {
            if repo::sealed_len_fits(item.part.length, length) {
                return Ok((Some((length, None)), claim));
            }
        }
        let recorded_sha = recorded.map(|o| o.ciphertext_sha256).unwrap_or_default();
        let _running = self
            .activity
            .start(&item.archive_id, super::super::activity::Direction::Upload);
        let (body, sha) = self.copy_source(dest, item, &recorded_sha)?;
        self.throttle(body.len());
        let retain_until = remote.lock_until();
        remote
            .put_hashed(&key, &body, &sha)
            .map_err(Failure::from)?;
        if !remote.checks_payload() {
            let back = remote.get(&key).map_err(Failure::from)?;
            if hex::encode(Sha256::digest(&back)) != sha {
                return Err(Stop::Failed(Failure::Transient(format!(
                    "Part {} read back from {} differs from what was written; it is copied again.",
                    item.index,
                    remote.describe()
                ))));
            }
        }
        self.health.moved(dest);
        metrics::global().add_uploaded(body.len() as u64);
        Ok((Some((body.len() as u64, retain_until)), claim))
    }

    /// The sealed bytes of a part for a copy and their SHA-256: sealed from
    /// the local file when the archive has one, else read from a
    /// destination that holds it (main first) and checked.
    fn copy_source(
        &self,
        dest: &str,
        item: &CopyItem,
        recorded_sha: &str,
    ) -> Result<(Vec<u8>, String), Stop> {
        let (keys, _) = self.keys()?;
        if item.local {
            if let Ok(sealed) = self.seal_local_part(
                keys,
                &item.archive_id,
                item.index,
                &item.part,
                &item.object_id,
            ) {
                return Ok(sealed);
            }
        }
        let holders = self.holders(dest, item)?;
        let mut why = format!("no destination holds part {} yet", item.index);
        for holder in holders {
            let source = match self.destination_remote(&holder) {
                Ok(source) => source,
                Err(Failure::Transient(m) | Failure::Permanent(m) | Failure::Damaged(m)) => {
                    why = m;
                    continue;
                }
                Err(Failure::Busy) => continue,
            };
            let body = match source.get(&repo::part_key(&item.object_id)) {
                Ok(body) => body,
                Err(err) => {
                    why = err.message;
                    continue;
                }
            };
            let place = source.describe();
            // The recorded SHA-256 is of main's sealing; a copy's may differ.
            let expected = if holder == MAIN { recorded_sha } else { "" };
            match check_sealed(
                keys,
                &body,
                expected,
                &item.part,
                item.index,
                &item.object_id,
                &place,
            ) {
                Ok(sha) => return Ok((body, sha)),
                Err(reason) => why = reason,
            }
        }
        Err(Stop::Source(why))
    }

    /// The other destinations holding the part's object, main first.
    fn holders(&self, dest: &str, item: &CopyItem) -> Result<Vec<String>, StoreError> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let mut out = Vec::new();
        if item.part.remote && item.part.object_id.as_deref() == Some(item.object_id.as_str()) {
            out.push(MAIN.to_string());
        }
        for other in copies::destination_ids(&txn, tables)? {
            let key = copy_object_key(&other, item.object_id.as_str());
            if other != dest && tables.copy_objects.get(&txn, key.as_bytes())?.is_some() {
                out.push(other);
            }
        }
        Ok(out)
    }

    /// Counts what landed on `dest`, in one transaction: each object stored
    /// there (one more user), each part recorded, each copy's counters.
    fn commit_copied(&self, dest: &str, group: &[CopyLanded<'_>]) -> Result<(), Failure> {
        let changed = self
            .store
            .write(|txn, tables| -> Result<Vec<ArchiveRecord>, Failure> {
                if tables.destinations.get(txn, dest.as_bytes())?.is_none() {
                    return Ok(Vec::new());
                }
                let mut changed = Vec::new();
                for landed in group {
                    if let Some(archive) = commit_one(txn, tables, dest, landed)? {
                        changed.push(archive);
                    }
                }
                Ok(changed)
            })?;
        self.health.succeeded(dest);
        for archive in &changed {
            self.events.archive(archive);
        }
        Ok(())
    }

    /// Writes on each copy record of `dest` why its archive is not there
    /// yet (and clears nothing else).
    fn note_copy_errors(
        &self,
        dest: &str,
        stuck: &BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        if stuck.is_empty() {
            return Ok(());
        }
        self.store.write(|txn, tables| -> Result<(), Failure> {
            for (archive_id, reason) in stuck {
                let key = copy_key(dest, archive_id);
                if let Some(mut copy) = tables.copies.get(txn, key.as_bytes())? {
                    copy.last_error = Some(format!(
                        "Not yet copied here: {reason}. It is copied as soon as it can be read."
                    ));
                    tables.copies.put(txn, key.as_bytes(), &copy)?;
                }
            }
            Ok(())
        })
    }
}

/// One landed part, in the committer's transaction. Returns the archive
/// when its copy there moved on.
fn commit_one(
    txn: &mut heed::RwTxn,
    tables: &crate::store::Tables,
    dest: &str,
    landed: &CopyLanded<'_>,
) -> Result<Option<ArchiveRecord>, Failure> {
    let item = &landed.item;
    let object_text = item.object_id.as_str();
    let object_key = copy_object_key(dest, object_text);
    let copy_id = copy_key(dest, &item.archive_id);
    let part_key = indexed_key(&copy_id, item.index);
    let mut object = match (
        tables.copy_objects.get(txn, object_key.as_bytes())?,
        landed.stored,
    ) {
        (Some(object), _) => object,
        (None, Some((length, retain_until))) => CopyObjectRecord {
            refcount: 0,
            stored_length: length,
            retain_until,
        },
        // Counted when looked at, released since: copied again next pass.
        (None, None) => return Ok(None),
    };
    // Needed there again: not deleted after all.
    tables
        .copy_deletes
        .delete(txn, copies::object_delete_key(dest, object_text).as_bytes())?;
    let copy = tables.copies.get(txn, copy_id.as_bytes())?;
    let wanted = copy.as_ref().is_some_and(|copy| !copy.complete)
        && tables.copy_parts.get(txn, &part_key)?.is_none();
    let (true, Some(mut copy)) = (wanted, copy) else {
        // The archive went (or is there already): keep the object only if
        // something uses it.
        if object.refcount == 0 {
            tables
                .copy_objects
                .put(txn, object_key.as_bytes(), &object)?;
            copies::release_object(txn, tables, dest, object_text)?;
        }
        return Ok(None);
    };
    object.refcount += 1;
    tables
        .copy_objects
        .put(txn, object_key.as_bytes(), &object)?;
    tables.copy_parts.put(
        txn,
        &part_key,
        &CopyPartRecord {
            object_id: object_text.to_string(),
        },
    )?;
    copy.parts_stored += 1;
    copy.bytes_stored += item.part.length;
    copy.stored_size += object.stored_length;
    copy.protected_until = if copy.parts_stored == 1 {
        object.retain_until
    } else {
        super::super::lock::earliest(copy.protected_until, object.retain_until)
    };
    copy.last_error = None;
    tables.copies.put(txn, copy_id.as_bytes(), &copy)?;
    Ok(tables.archives.get(txn, item.archive_id.as_bytes())?)
}
