//! Changing the remote without stranding a backup: a change of storage is a
//! move, not a relabel.
//!
//! [`Engine::change_remote`] looks at the new place first:
//! - nothing stored remotely yet, or the same storage (same endpoint, bucket
//!   and prefix, or the same folder; new keys, say): the settings are saved
//!   and nothing is copied;
//! - a place holding another appliance's repository (another `config`):
//!   refused with a sentence, nothing written;
//! - an empty place, or another place holding this repository (the same
//!   `config`): the settings switch now and, in the same transaction, every
//!   part on the old remote is marked `to_move` (still counted in its
//!   object's refcount, not on the new remote yet), every object
//!   `stored: false`, every archive's `parts_remote` 0 (a local `backed_up`
//!   archive is `uploading` again), the remote generation moves on and the
//!   `move_remote` job is queued. New uploads go to the new remote at once.
//!
//! The job (`Inner::move_remote`) copies each marked part, a batch at a
//! time on a few threads, and commits each one in its own transaction, so a
//! kill -9 resumes where it was: a part already on the new remote (HEAD,
//! right length) is only marked; otherwise it is sealed anew from the
//! archive's local file when there is one, else read from the old remote,
//! decrypted and checked against its recorded SHA-256, and sent with the
//! ciphertext's SHA-256 so the S3 server checks it again (a folder is read
//! back). A part the old remote cannot give and no local file can replace
//! leaves its archive "not yet on the new storage" (named, red LED); the
//! pass goes on and the job tries again later. When no part is marked any
//! more the move is finished (the generation moves on, so a cache that was
//! reading from the old remote starts again), and only then is the old
//! remote released: a folder on the appliance's own disk is deleted after
//! saying so in the system log; any other place is left untouched.
//!
//! Must not touch: HTTP. No transaction is held across remote I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::jobs::{self, JobKind};
use super::pipeline::{Batch, CopyWork, Stop as MoveStop, BATCH};
use super::{keys, lock, Engine, Failure, Inner, ObjectClaim, ReportLevel};
use crate::metrics;
use crate::remote::{ErrorKind, Remote, RemoteSettings, TransferOptions};
use crate::repo::{self, ObjectId, PART_OVERHEAD};
use crate::settings::Settings;
use crate::store::records::{
    ArchiveRecord, ArchiveState, ObjectRecord, PartRecord, RemoteMoveRecord,
};
use crate::store::{split_indexed_key, StoreError, Tables};
use crate::units::human_size;

mod plan;

pub(crate) use plan::look_at;
use plan::{check_options, stored_counts};
pub use plan::{same_storage, ChangeError, Destination, MovePlan};

/// Settings key of the [`RemoteMoveRecord`] while a move runs.
const MOVE_KEY: &[u8] = b"remote_move";
/// Records read per batch at most (parts per batch: `pipeline::BATCH`).
const SCAN_LIMIT: usize = 4096;
/// Parts copied at once: each holds one sealed part (at most 16 MiB).
const MIN_COPIERS: usize = 2;
const MAX_COPIERS: usize = 4;

/// The running move, if any.
fn move_record(txn: &heed::RoTxn, tables: &Tables) -> Result<Option<RemoteMoveRecord>, StoreError> {
    Ok(tables
        .settings
        .get(txn, MOVE_KEY)?
        .and_then(|value| serde_json::from_value(value).ok()))
}

fn put_move_record(
    txn: &mut heed::RwTxn,
    tables: &Tables,
    record: &RemoteMoveRecord,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    tables.settings.put(txn, MOVE_KEY, &value)
}

/// Counts `parts` to-move parts of `bytes` (sealed) as gone from a running
/// move: an archive holding them was deleted. Call it in the deleting
/// transaction.
pub(super) fn forget_parts(
    txn: &mut heed::RwTxn,
    tables: &Tables,
    parts: u64,
    bytes: u64,
) -> Result<(), StoreError> {
    if parts == 0 {
        return Ok(());
    }
    if let Some(mut record) = move_record(txn, tables)? {
        record.parts_left = record.parts_left.saturating_sub(parts);
        record.bytes_left = record.bytes_left.saturating_sub(bytes);
        put_move_record(txn, tables, &record)?;
    }
    Ok(())
}

/// The bytes a part takes on the remote sealed as it is (compression makes
/// many smaller): the unit of the move's progress in bytes.
fn sealed_len(part: &PartRecord) -> u64 {
    part.length + PART_OVERHEAD as u64
}

impl Engine {
    /// The move running now, if any.
    pub fn remote_move(&self) -> Result<Option<RemoteMoveRecord>, StoreError> {
        let store = &self.inner.store;
        let txn = store.read()?;
        move_record(&txn, &store.tables)
    }

    /// What saving `new` would do, without writing anything. `new` must
    /// already carry the secret (see `RemoteSettings::keep_secret_from`).
    pub fn plan_remote_change(&self, new: &RemoteSettings) -> Result<MovePlan, ChangeError> {
        let inner = &self.inner;
        crate::remote::open(new, &check_options())
            .map_err(|err| ChangeError::Invalid(err.message))?;
        let (current, running, counts, copy) = {
            let txn = inner.store.read()?;
            let tables = &inner.store.tables;
            let copy = tables
                .destinations
                .all(&txn)?
                .into_iter()
                .map(|(_, record)| record)
                .find(|record| same_storage(&record.settings, new));
            (
                crate::settings::remote::remote_settings_in(&txn, tables, &inner.data_dir)?,
                move_record(&txn, tables)?,
                stored_counts(&txn, tables)?,
                copy,
            )
        };
        // A copy destination's storage is never also the main one: two
        // sets of books would count the same objects.
        if let Some(copy) = copy {
            return Err(ChangeError::AlreadyADestination {
                to: crate::engine::destinations::describe(new),
                name: copy.name,
            });
        }
        let describe = |settings: &RemoteSettings| {
            crate::remote::open(settings, &check_options())
                .map(|remote| remote.describe())
                .unwrap_or_else(|_| format!("{settings:?}"))
        };
        let mut plan = MovePlan {
            destination: Destination::SameStorage,
            from: describe(&current),
            to: describe(new),
            archives: counts.archives,
            parts: counts.parts,
            bytes: counts.bytes,
        };
        if let Some(running) = running {
            if same_storage(&current, new) {
                return Ok(plan);
            }
            return Err(ChangeError::MoveRunning {
                to: plan.from,
                done: running.parts_total.saturating_sub(running.parts_left),
                total: running.parts_total,
            });
        }
        if same_storage(&current, new) {
            return Ok(plan);
        }
        let config = match keys::load(&inner.store) {
            Ok(Some((_, config))) => Some(config),
            Ok(None) => None,
            Err(err) => return Err(ChangeError::Keys(err.to_string())),
        };
        let nothing_stored = counts.parts == 0 && counts.objects == 0;
        plan.destination = match (config, nothing_stored) {
            (None, _) => Destination::NothingToMove,
            (Some(config), true) => match look_at(new, &config) {
                // Another appliance's repository is refused even with
                // nothing to copy; an unreachable place is checked again on
                // first use (the engine refuses a foreign config there too).
                Err(err @ ChangeError::OtherRepository { .. }) => return Err(err),
                _ => Destination::NothingToMove,
            },
            (Some(config), false) => look_at(new, &config)?,
        };
        Ok(plan)
    }

    /// Saves `new` as the remote: a move when backups must be copied (see
    /// the module comment), otherwise just the settings. Returns the saved
    /// settings and what was done.
    pub fn change_remote(
        &self,
        new: RemoteSettings,
    ) -> Result<(RemoteSettings, MovePlan), ChangeError> {
        let inner = &self.inner;
        let current = crate::settings::remote::remote_settings(&inner.store, &inner.data_dir)?;
        let new = new.keep_secret_from(&current);
        let plan = self.plan_remote_change(&new)?;
        crate::remote::check_lock_support(&new, &check_options()).map_err(|err| {
            match err.kind {
                crate::remote::ErrorKind::Transient => ChangeError::Unreachable {
                    to: plan.to.clone(),
                    reason: err.message,
                },
                _ => ChangeError::ObjectLockUnsupported(err.message),
            }
        })?;
        if !plan.destination.moves() {
            let saved =
                crate::settings::remote::save_remote_settings(&inner.store, &inner.data_dir, new)?;
            self.wake();
            return Ok((saved, plan));
        }
        let changed =
            inner
                .store
                .write(|txn, tables| -> Result<Vec<ArchiveRecord>, ChangeError> {
                    if let Some(running) = move_record(txn, tables)? {
                        return Err(ChangeError::MoveRunning {
                            to: plan.from.clone(),
                            done: running.parts_total.saturating_sub(running.parts_left),
                            total: running.parts_total,
                        });
                    }
                    let from =
                        crate::settings::remote::remote_settings_in(txn, tables, &inner.data_dir)?;
                    start_move(txn, tables, from, &plan.from, &new)
                })?;
        for archive in &changed {
            inner.events.archive(archive);
        }
        inner.report(
            ReportLevel::Info,
            &format!("The backups are moving to new storage. {}", plan.message()),
        );
        self.wake();
        Ok((new, plan))
    }
}

/// The switch, in the caller's transaction: new settings, every stored
/// part marked `to_move`, every object unstored, archives counted anew,
/// the generation moved on, the move record written and the job queued.
/// Returns the archives whose state changed.
fn start_move(
    txn: &mut heed::RwTxn,
    tables: &Tables,
    from: RemoteSettings,
    from_description: &str,
    new: &RemoteSettings,
) -> Result<Vec<ArchiveRecord>, ChangeError> {
    for (key, mut object) in tables.objects.all(txn)? {
        if object.stored {
            object.stored = false;
            tables.objects.put(txn, &key, &object)?;
        }
    }
    let (mut parts_total, mut bytes_total) = (0u64, 0u64);
    for (key, mut part) in tables.parts.all(txn)? {
        if part.remote {
            part.remote = false;
            part.to_move = true;
            parts_total += 1;
            bytes_total += sealed_len(&part);
            tables.parts.put(txn, &key, &part)?;
        }
    }
    let mut changed = Vec::new();
    for (key, mut archive) in tables.archives.all(txn)? {
        if matches!(
            archive.state,
            ArchiveState::Receiving | ArchiveState::Deleting
        ) {
            continue;
        }
        if archive.parts_total == 0 {
            // An empty archive is only its manifest.
            let archive_id = archive.id.clone();
            jobs::enqueue(txn, tables, JobKind::UploadManifest { archive_id })?;
        }
        if archive.parts_remote == 0 && archive.state != ArchiveState::BackedUp {
            continue;
        }
        archive.parts_remote = 0;
        archive.bytes_remote = 0;
        // Main is incomplete again: backed up once it has every part.
        archive.awaiting_copies = false;
        // Counted again, part by part, as they arrive on the new remote.
        archive.stored_size = Some(0);
        if archive.state == ArchiveState::BackedUp {
            archive.state = ArchiveState::Uploading;
        }
        tables.archives.put(txn, &key, &archive)?;
        changed.push(archive);
    }
    crate::settings::remote::put_remote_settings(txn, tables, new)?;
    keys::bump_generation(txn, tables)?;
    let record = RemoteMoveRecord {
        from,
        from_description: from_description.to_string(),
        started_at: crate::ids::now_secs(),
        parts_total,
        bytes_total,
        parts_left: parts_total,
        bytes_left: bytes_total,
        stuck_archives: Vec::new(),
        stuck_reason: None,
        finished: false,
    };
    put_move_record(txn, tables, &record)?;
    jobs::enqueue_move(txn, tables)?;
    jobs::unpark_all(txn, tables)?;
    jobs::enqueue_catalog_upload(txn, tables)?;
    Ok(changed)
}

/// One part to copy, as read at the start of a batch.
struct PartToMove {
    key: Vec<u8>,
    archive_id: String,
    index: u32,
    part: PartRecord,
    /// The archive's whole file is on the local disk.
    local: bool,
}

/// A part copied (or found) on the new remote, waiting to be committed.
struct Landed<'a> {
    item: PartToMove,
    object_text: String,
    /// What is on the new remote now, when this copier put or found it
    /// there (`None`: the object was already marked stored).
    stored: Option<(u64, String)>,
    /// Held until the commit, so no upload or delete of the same object
    /// overlaps.
    _claim: ObjectClaim<'a>,
}

/// One landed part, in the committer's transaction: the object stored, the
/// part `remote` instead of `to_move`, the archive counted (and its
/// manifest queued once every part is there). Returns the archive when it
/// changed; a part or archive deleted meanwhile leaves only the object
/// (removed again if nothing uses it).
fn commit_one(
    txn: &mut heed::RwTxn,
    tables: &Tables,
    landed: &Landed<'_>,
) -> Result<Option<ArchiveRecord>, Failure> {
    let item = &landed.item;
    let object_key = landed.object_text.as_bytes();
    let mut object = match (tables.objects.get(txn, object_key)?, &landed.stored) {
        (Some(mut object), Some((length, sha))) => {
            object.stored = true;
            object.stored_length = *length;
            if !sha.is_empty() {
                object.ciphertext_sha256.clone_from(sha);
            }
            object
        }
        (Some(object), None) if object.stored => object,
        (None, Some((length, sha))) => ObjectRecord {
            refcount: 0,
            stored_length: *length,
            ciphertext_sha256: sha.clone(),
            stored: true,
            // Copied to the new remote: its lock (if any) is set from now.
            retain_until: None,
        },
        _ => return Err(Failure::Busy),
    };
    let part = tables
        .parts
        .get(txn, &item.key)?
        .filter(|part| part.to_move);
    let archive = tables.archives.get(txn, item.archive_id.as_bytes())?;
    let (Some(mut part), Some(mut archive)) = (part, archive) else {
        if object.refcount == 0 {
            let object_id = landed.object_text.clone();
            jobs::enqueue(txn, tables, JobKind::DeleteObject { object_id })?;
        }
        tables.objects.put(txn, object_key, &object)?;
        return Ok(None);
    };
    object.stored = true;
    tables.objects.put(txn, object_key, &object)?;
    part.to_move = false;
    part.remote = true;
    tables.parts.put(txn, &item.key, &part)?;
    forget_parts(txn, tables, 1, sealed_len(&part))?;
    archive.parts_remote += 1;
    archive.bytes_remote += part.length;
    archive.stored_size = archive.stored_size.map(|size| size + object.stored_length);
    if archive.state != ArchiveState::Damaged {
        archive.last_error = None;
    }
    if archive.parts_remote >= archive.parts_total && archive.state != ArchiveState::Deleting {
        let archive_id = archive.id.clone();
        jobs::enqueue(txn, tables, JobKind::UploadManifest { archive_id })?;
    }
    tables
        .archives
        .put(txn, item.archive_id.as_bytes(), &archive)?;
    Ok(Some(archive))
}

/// Checks the sealed bytes of part `index` read from `place` (another
/// destination): against the SHA-256 recorded when they were sealed, or
/// where none is recorded (a recovered appliance) decrypted (never past the
/// part's size) and the plaintext checked against the part's SHA-256.
/// Answers their SHA-256, or why they cannot be used, as a sentence.
pub(super) fn check_sealed(
    keys: &repo::RepoKeys,
    body: &[u8],
    recorded_sha: &str,
    part: &PartRecord,
    index: u32,
    object_id: &ObjectId,
    place: &str,
) -> Result<String, String> {
    let sha = hex::encode(Sha256::digest(body));
    if sha == recorded_sha {
        return Ok(sha);
    }
    let plaintext = keys
        .open_part(object_id, body.to_vec(), part.length)
        .map_err(|err| format!("{place}'s copy of part {index} does not decrypt ({err})"))?;
    if hex::encode(Sha256::digest(&plaintext)) != part.sha256 {
        return Err(format!(
            "{place}'s copy of part {index} does not match its recorded SHA-256"
        ));
    }
    Ok(sha)
}

/// The move's copy pass (`pipeline`): the marked parts, copied from the
/// old remote (or sealed from the local file) to the current one.
struct MoveWork<'a> {
    inner: &'a Inner,
    current: &'a dyn Remote,
    previous: &'a Result<Arc<dyn Remote>, Failure>,
    generation: u64,
}

impl<'a> CopyWork for MoveWork<'a> {
    type Item = PartToMove;
    type Landed = Landed<'a>;

    fn next_batch(&self, cursor: Option<&[u8]>) -> Result<Batch<PartToMove>, StoreError> {
        self.inner.parts_to_move(cursor)
    }

    fn copy(&self, item: PartToMove) -> Result<Landed<'a>, (String, MoveStop)> {
        self.inner.copy_part(self.current, self.previous, item)
    }

    fn commit(&self, group: &[Landed<'a>]) -> Result<(), Failure> {
        self.inner.commit_moved(group, self.generation)
    }
}

impl Inner {
    /// The remote a running move copies from.
    pub(in crate::engine) fn previous_settings(&self) -> Result<Option<RemoteSettings>, Failure> {
        let txn = self.store.read()?;
        Ok(move_record(&txn, &self.store.tables)?.map(|record| record.from))
    }

    /// The `move_remote` job: one pass over every part marked `to_move`,
    /// then the end of the move, or a retry later for what was left.
    pub(super) fn move_remote(&self, job_id: &str) -> Result<(), Failure> {
        let record = {
            let txn = self.store.read()?;
            move_record(&txn, &self.store.tables)?
        };
        let Some(record) = record else {
            return self.drop_job(job_id);
        };
        if record.finished {
            return self.release(job_id, &record);
        }
        let (current, generation) = self.remote_at()?;
        let previous = self.previous_remote(&record.from);
        let copiers = Settings::load(&self.store)
            .map(|s| s.transfer_concurrency as usize)
            .unwrap_or(MIN_COPIERS)
            .clamp(MIN_COPIERS, MAX_COPIERS);
        let work = MoveWork {
            inner: self,
            current: current.as_ref(),
            previous: &previous,
            generation,
        };
        let outcome = self.copy_pass(&work, copiers, &AtomicBool::new(false));
        if let Some(failure) = outcome.failure {
            self.note_stuck(&outcome.stuck)?;
            return Err(failure);
        }
        if !outcome.stuck.is_empty() {
            let reason = self.note_stuck(&outcome.stuck)?;
            return Err(Failure::Transient(reason));
        }
        if outcome.busy {
            return Err(Failure::Busy);
        }
        self.finish_move(job_id, generation)
    }

    /// The next batch of marked parts after `cursor`, and the last key read
    /// (`None` once the table has been read to its end).
    fn parts_to_move(
        &self,
        cursor: Option<&[u8]>,
    ) -> Result<(Vec<PartToMove>, Option<Vec<u8>>), StoreError> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let (found, last) =
            tables
                .parts
                .after(&txn, cursor, |part| part.to_move, BATCH, SCAN_LIMIT)?;
        let mut local: HashMap<String, bool> = HashMap::new();
        let mut batch = Vec::with_capacity(found.len());
        for (key, part) in found {
            let Some((archive_id, index)) = split_indexed_key(&key) else {
                continue;
            };
            let archive_id = archive_id.to_string();
            let is_local = match local.get(&archive_id) {
                Some(is_local) => *is_local,
                None => {
                    let is_local = tables
                        .archives
                        .get(&txn, archive_id.as_bytes())?
                        .is_some_and(|archive| archive.state.is_local());
                    local.insert(archive_id.clone(), is_local);
                    is_local
                }
            };
            batch.push(PartToMove {
                key,
                archive_id,
                index,
                part,
                local: is_local,
            });
        }
        Ok((batch, last))
    }

    /// Copies one part to `current` unless it is there already. Answers
    /// what landed (the object's claim held until it is committed), or the
    /// archive and why not.
    fn copy_part(
        &self,
        current: &dyn Remote,
        previous: &Result<Arc<dyn Remote>, Failure>,
        item: PartToMove,
    ) -> Result<Landed<'_>, (String, MoveStop)> {
        match self.copy_part_inner(current, previous, &item) {
            Ok((object_text, stored, claim)) => Ok(Landed {
                item,
                object_text,
                stored,
                _claim: claim,
            }),
            Err(stop) => Err((item.archive_id, stop)),
        }
    }

    #[allow(clippy::type_complexity)]
    fn copy_part_inner(
        &self,
        current: &dyn Remote,
        previous: &Result<Arc<dyn Remote>, Failure>,
        item: &PartToMove,
    ) -> Result<(String, Option<(u64, String)>, ObjectClaim<'_>), MoveStop> {
        let Some(object_text) = item.part.object_id.clone() else {
            return Err(MoveStop::Source(format!(
                "part {} has no remote object on record",
                item.index
            )));
        };
        let object_id = ObjectId::parse(&object_text)
            .map_err(|e| MoveStop::Failed(Failure::Permanent(e.to_string())))?;
        let claim = ObjectClaim::take(self, &object_text)?;
        let object = {
            let txn = self.store.read()?;
            self.store
                .tables
                .objects
                .get(&txn, object_text.as_bytes())?
        };
        if object.as_ref().is_some_and(|o| o.stored) {
            return Ok((object_text, None, claim));
        }
        // The length it was stored with, where recorded (a recovered
        // appliance knows only that it fits the part).
        let recorded_len = object.as_ref().map_or(0, |o| o.stored_length);
        let recorded_sha = object.map(|o| o.ciphertext_sha256).unwrap_or_default();
        let key = repo::part_key(&object_id);
        // Already there (sent before a kill, or the same repository).
        match current.head(&key).map_err(Failure::from)? {
            Some(length)
                if length == recorded_len
                    || (recorded_len == 0 && repo::sealed_len_fits(item.part.length, length)) =>
            {
                return Ok((object_text, Some((length, recorded_sha)), claim));
            }
            _ => {}
        }
        let _running = self
            .activity
            .start(&item.archive_id, super::activity::Direction::Upload);
        let (body, sha) = self.move_source(previous, item, &object_id, &recorded_sha)?;
        self.throttle(body.len());
        current
            .put_hashed(&key, &body, &sha)
            .map_err(Failure::from)?;
        if !current.checks_payload() {
            let back = current.get(&key).map_err(Failure::from)?;
            if hex::encode(Sha256::digest(&back)) != sha {
                return Err(MoveStop::Failed(Failure::Transient(format!(
                    "Part {} read back from {} differs from what was written; it is copied again.",
                    item.index,
                    current.describe()
                ))));
            }
        }
        metrics::global().add_uploaded(body.len() as u64);
        Ok((object_text, Some((body.len() as u64, sha)), claim))
    }

    /// The sealed bytes of a part and their SHA-256: sealed anew from the
    /// local file when the archive has one, else read from the old remote
    /// and checked: against the SHA-256 recorded when it was sealed, or
    /// where none is recorded (a recovered appliance) decrypted and its
    /// plaintext checked against the part's SHA-256.
    fn move_source(
        &self,
        previous: &Result<Arc<dyn Remote>, Failure>,
        item: &PartToMove,
        object_id: &ObjectId,
        recorded_sha: &str,
    ) -> Result<(Vec<u8>, String), MoveStop> {
        let (keys, _) = self.keys()?;
        if item.local {
            if let Ok(sealed) =
                self.seal_local_part(keys, &item.archive_id, item.index, &item.part, object_id)
            {
                return Ok(sealed);
            }
        }
        let previous = previous.as_ref().map_err(|failure| {
            MoveStop::Source(match failure {
                Failure::Transient(m) | Failure::Permanent(m) | Failure::Damaged(m) => m.clone(),
                Failure::Busy => "the old storage is busy".to_string(),
            })
        })?;
        let body = previous
            .get(&repo::part_key(object_id))
            .map_err(|err| MoveStop::Source(err.message))?;
        let sha = check_sealed(
            keys,
            &body,
            recorded_sha,
            &item.part,
            item.index,
            object_id,
            "the old storage",
        )
        .map_err(MoveStop::Source)?;
        Ok((body, sha))
    }

    /// Marks the landed parts as on the current remote (and their objects
    /// stored, as `stored` says), in one transaction.
    fn commit_moved(&self, group: &[Landed<'_>], generation: u64) -> Result<(), Failure> {
        let changed = self.store.write(
            |txn, tables| -> Result<Vec<(u32, ArchiveRecord)>, Failure> {
                if keys::generation(txn, tables)? != generation {
                    return Err(Failure::Busy);
                }
                let mut changed = Vec::new();
                for landed in group {
                    if let Some(archive) = commit_one(txn, tables, landed)? {
                        changed.push((landed.item.index, archive));
                    }
                }
                Ok(changed)
            },
        )?;
        for (index, archive) in &changed {
            self.events.part(archive, *index, true);
            self.events.archive(archive);
        }
        Ok(())
    }

    /// Writes which archives wait for the old storage (the move record and
    /// each archive's error); returns the sentence.
    fn note_stuck(&self, stuck: &BTreeMap<String, String>) -> Result<String, Failure> {
        let first = stuck.values().next().cloned().unwrap_or_default();
        let reason = format!(
            "Not yet on the new storage: the old storage is unreachable ({first}). It is copied as soon as the old storage can be read again; nothing was deleted."
        );
        let changed = self
            .store
            .write(|txn, tables| -> Result<Vec<ArchiveRecord>, Failure> {
                let Some(mut record) = move_record(txn, tables)? else {
                    return Ok(Vec::new());
                };
                record.stuck_archives = stuck.keys().cloned().collect();
                record.stuck_reason = (!stuck.is_empty()).then(|| first.clone());
                put_move_record(txn, tables, &record)?;
                let mut changed = Vec::new();
                for archive_id in stuck.keys() {
                    if let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? {
                        if archive.state != ArchiveState::Damaged {
                            archive.last_error = Some(reason.clone());
                            tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                            changed.push(archive);
                        }
                    }
                }
                Ok(changed)
            })?;
        for archive in &changed {
            self.events.archive(archive);
        }
        Ok(reason)
    }

    /// Ends the move once no part is marked: the generation moves on (so a
    /// cache still reading from the old remote starts again) and the record
    /// says finished; then the old remote is released.
    fn finish_move(&self, job_id: &str, generation: u64) -> Result<(), Failure> {
        let (left, _) = self.parts_to_move(None)?;
        if !left.is_empty() {
            return Err(Failure::Busy);
        }
        let record =
            self.store
                .write(|txn, tables| -> Result<Option<RemoteMoveRecord>, Failure> {
                    if keys::generation(txn, tables)? != generation {
                        return Err(Failure::Busy);
                    }
                    let Some(mut record) = move_record(txn, tables)? else {
                        return Ok(None);
                    };
                    record.finished = true;
                    record.parts_left = 0;
                    record.bytes_left = 0;
                    record.stuck_archives.clear();
                    record.stuck_reason = None;
                    put_move_record(txn, tables, &record)?;
                    keys::bump_generation(txn, tables)?;
                    Ok(Some(record))
                })?;
        match record {
            Some(record) => self.release(job_id, &record),
            None => self.drop_job(job_id),
        }
    }

    /// Lets go of the old remote of a finished move: a folder on this
    /// appliance's disk is deleted (said in the system log first), any
    /// other place is left as it is; then the record and the job go.
    fn release(&self, job_id: &str, record: &RemoteMoveRecord) -> Result<(), Failure> {
        *lock(&self.previous_remote) = None;
        let current = crate::settings::remote::remote_settings(&self.store, &self.data_dir)?;
        let to = crate::remote::open(&current, &self.options)
            .map(|remote| remote.describe())
            .unwrap_or_default();
        let done = format!(
            "The move to {to} is complete: {} parts ({}) were copied and checked.",
            record.parts_total,
            human_size(record.bytes_total)
        );
        match &record.from {
            RemoteSettings::Dir { path }
                if record.from.is_on_disk_under(&self.data_dir)
                    && !current.is_on_disk_under(path) =>
            {
                self.report(
                    ReportLevel::Info,
                    &format!(
                        "{done} The old backup folder {} is on this appliance's own disk and is deleted now to free its space.",
                        path.display()
                    ),
                );
                match std::fs::remove_dir_all(path) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => self.report(
                        ReportLevel::Warn,
                        &format!(
                            "The old backup folder {} could not be deleted ({err}); it is no longer used and may be deleted by hand.",
                            path.display()
                        ),
                    ),
                    _ => {}
                }
            }
            _ => self.report(
                ReportLevel::Info,
                &format!(
                    "{done} The old storage ({}) was left untouched; its copy is no longer used and may be deleted by hand.",
                    record.from_description
                ),
            ),
        }
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.settings.delete(txn, MOVE_KEY)?;
            tables.jobs.delete(txn, job_id.as_bytes())?;
            Ok(())
        })?;
        self.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn s3(endpoint: &str, bucket: &str, prefix: &str, key: &str) -> RemoteSettings {
        RemoteSettings::S3 {
            endpoint: endpoint.into(),
            region: "r".into(),
            bucket: bucket.into(),
            prefix: prefix.into(),
            path_style: true,
            access_key_id: key.into(),
            secret_access_key: "s".into(),
            object_lock: None,
        }
    }

    #[test]
    fn same_storage_ignores_keys_and_slashes_but_not_places() {
        let base = s3("http://a:9000", "b", "p", "k1");
        for (other, same) in [
            (s3("http://a:9000/", "b", "/p/", "k2"), true),
            (s3("HTTP://A:9000", "b", "p", "k1"), true),
            (s3("http://a:9001", "b", "p", "k1"), false),
            (s3("http://a:9000", "c", "p", "k1"), false),
            (s3("http://a:9000", "b", "q", "k1"), false),
            (
                RemoteSettings::Dir {
                    path: PathBuf::from("/x"),
                },
                false,
            ),
        ] {
            assert_eq!(same_storage(&base, &other), same, "{other:?}");
        }
        let dir = |p: &str| RemoteSettings::Dir {
            path: PathBuf::from(p),
        };
        assert!(same_storage(&dir("/nonexistent/x"), &dir("/nonexistent/x")));
        assert!(!same_storage(
            &dir("/nonexistent/x"),
            &dir("/nonexistent/y")
        ));
    }

    #[test]
    fn plans_say_what_will_happen_in_a_sentence() {
        let plan = MovePlan {
            destination: Destination::Empty,
            from: "folder /d/remote".into(),
            to: "s3://b/p".into(),
            archives: 2,
            parts: 8,
            bytes: 3 << 20,
        };
        let message = plan.message();
        assert!(message.contains("2 archives"), "{message}");
        assert!(message.contains("8 parts"), "{message}");
        assert!(message.contains("s3://b/p"), "{message}");
        assert!(Destination::Empty.moves() && Destination::SameRepository.moves());
        assert!(!Destination::SameStorage.moves() && !Destination::NothingToMove.moves());
    }
}
