//! The upload jobs: a part (`upload_part`, sealing it from the local file)
//! and the manifest that lists an archive's parts.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use heed::RwTxn;
use sha2::{Digest, Sha256};

use super::activity::Direction;
use super::jobs::{self, JobKind};
use super::{keys, Failure, Inner, ObjectClaim};
use crate::metrics;
use crate::repo::{self, Manifest, ManifestPart, ObjectId};
use crate::store::records::{ArchiveRecord, ArchiveState, ObjectRecord, PartRecord};
use crate::store::{indexed_key, Tables};

use super::work::{object_id_of, sha_bytes};

impl Inner {
    pub(super) fn upload_part(
        &self,
        job_id: &str,
        archive_id: &str,
        index: u32,
    ) -> Result<(), Failure> {
        let Some(part) = self.part_to_upload(archive_id, index)? else {
            return self.drop_job(job_id);
        };
        let (keys, _) = self.keys()?;
        let object_id = keys.object_id(&sha_bytes(&part.sha256)?);
        let _claim = ObjectClaim::take(self, object_id.as_str())?;
        let sent = self.send_part_unless_stored(keys, archive_id, index, &part, &object_id)?;
        let changed = self.store.write(|txn, tables| {
            commit_part(txn, tables, job_id, archive_id, index, &object_id, &sent)
        })?;
        if let Some(archive) = changed {
            self.events.part_stored(&archive, index, part.length);
            self.events.archive(&archive);
            self.wake();
        }
        Ok(())
    }

    /// The part, when it still needs uploading: not remote, not being
    /// moved, and its archive still local.
    fn part_to_upload(&self, archive_id: &str, index: u32) -> Result<Option<PartRecord>, Failure> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let archive = tables.archives.get(&txn, archive_id.as_bytes())?;
        let part = tables.parts.get(&txn, &indexed_key(archive_id, index))?;
        let (Some(archive), Some(part)) = (archive, part) else {
            return Ok(None);
        };
        let wanted = !part.remote && !part.to_move && archive.state.is_local();
        Ok(wanted.then_some(part))
    }

    /// Seals and sends the part unless its object is stored (and used)
    /// already.
    fn send_part_unless_stored(
        &self,
        keys: &repo::RepoKeys,
        archive_id: &str,
        index: u32,
        part: &PartRecord,
        object_id: &ObjectId,
    ) -> Result<Option<SentObject>, Failure> {
        let existing = {
            let txn = self.store.read()?;
            let key = object_id.as_str().as_bytes();
            self.store.tables.objects.get(&txn, key)?
        };
        if existing.is_some_and(|o| o.stored && o.refcount > 0) {
            return Ok(None);
        }
        let _running = self.activity.start(archive_id, Direction::Upload);
        let (remote, generation) = self.remote_at()?;
        let (buffer, cipher_sha) =
            self.seal_local_part(keys, archive_id, index, part, object_id)?;
        self.throttle(buffer.len());
        let started = Instant::now();
        let retain_until = remote.lock_until();
        remote.put_hashed(&repo::part_key(object_id), &buffer, &cipher_sha)?;
        self.health.moved(super::destinations::MAIN);
        metrics::global().observe_part_upload(started.elapsed());
        metrics::global().add_uploaded(buffer.len() as u64);
        Ok(Some(SentObject {
            length: buffer.len() as u64,
            sha256: cipher_sha,
            generation,
            retain_until,
        }))
    }

    /// Reads part `index` of the archive's local file, checks it against its
    /// recorded SHA-256 and seals it for `object_id`: the bytes to send and
    /// their SHA-256 (hex).
    pub(super) fn seal_local_part(
        &self,
        keys: &repo::RepoKeys,
        archive_id: &str,
        index: u32,
        part: &PartRecord,
        object_id: &ObjectId,
    ) -> Result<(Vec<u8>, String), Failure> {
        let length = part.length as usize;
        // Room for the header, flag and tags: a part stored as it is is
        // sealed in this buffer.
        let mut buffer = Vec::with_capacity(repo::max_sealed_len(length));
        buffer.resize(length, 0);
        FileExt::read_exact_at(
            &File::open(self.archive_path(archive_id))?,
            &mut buffer,
            part.offset,
        )
        .inspect_err(|err| crate::disk::report(err, "reading an archive to back it up"))?;
        if hex::encode(Sha256::digest(&buffer)) != part.sha256 {
            return Err(Failure::Damaged(format!(
                "Part {index} of the local file no longer matches the hash taken at upload: the disk may be failing. Nothing was uploaded for it."
            )));
        }
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        let buffer = keys
            .seal_part(object_id, nonce, buffer)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        metrics::global().add_packed(length as u64, buffer.len() as u64);
        let cipher_sha = hex::encode(Sha256::digest(&buffer));
        Ok((buffer, cipher_sha))
    }

    pub(super) fn upload_manifest(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, parts)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state == ArchiveState::Deleting || parts.iter().any(|p| !p.remote) {
            return self.drop_job(job_id);
        }
        let object_ids = parts
            .iter()
            .enumerate()
            .map(|(index, part)| object_id_of(part, index))
            .collect::<Result<Vec<_>, Failure>>()?;
        let sealed = self.sealed_manifest(&archive, &parts, object_ids)?;
        let (remote, generation) = self.remote_at()?;
        self.throttle(sealed.len());
        let retain_until = remote.lock_until();
        remote.put(&repo::manifest_key(archive_id), &sealed)?;
        metrics::global().add_uploaded(sealed.len() as u64);
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    if keys::generation(txn, tables)? != generation {
                        return Err(Failure::Busy);
                    }
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                        return Ok(None);
                    };
                    // Complete on main: `backed_up` once every copy is too.
                    crate::store::copies::settle(txn, tables, &mut archive, true)?;
                    archive.last_error = None;
                    archive.protected_until =
                        super::lock::earliest(archive.protected_until, retain_until);
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    tables.settings.put(
                        txn,
                        LAST_BACKUP_KEY,
                        &serde_json::json!(crate::ids::now_secs()),
                    )?;
                    Ok(Some(archive))
                })?;
        if let Some(archive) = changed {
            self.events.archive(&archive);
        }
        Ok(())
    }
}

impl Inner {
    /// The sealed manifest of an archive whose parts are stored as
    /// `object_ids` (in part order) on the destination it is written to.
    pub(super) fn sealed_manifest(
        &self,
        archive: &ArchiveRecord,
        parts: &[PartRecord],
        object_ids: Vec<ObjectId>,
    ) -> Result<Vec<u8>, Failure> {
        let owner = {
            let txn = self.store.read()?;
            self.store
                .tables
                .users
                .get(&txn, archive.owner_id.as_bytes())?
                .map(|user| user.username)
                .unwrap_or_default()
        };
        let manifest = Manifest {
            archive_id: archive.id.clone(),
            owner,
            name: archive.name.clone(),
            original_filename: archive.filename.clone(),
            size: archive.size,
            sha256: archive.sha256.clone(),
            created: archive.created_at.max(0) as u64,
            path: archive.path.clone(),
            parts: parts
                .iter()
                .zip(object_ids)
                .map(|(part, object_id)| ManifestPart {
                    object_id,
                    length: part.length,
                    sha256: part.sha256.clone(),
                })
                .collect(),
        };
        let (keys, _) = self.keys()?;
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        manifest
            .seal(keys, nonce)
            .map_err(|e| Failure::Permanent(e.to_string()))
    }
}

/// An object this job sent: its stored length and SHA-256, and the remote
/// generation it went to.
struct SentObject {
    length: u64,
    sha256: String,
    generation: u64,
    /// With Object Lock: the retain-until date it was written with, at least.
    retain_until: Option<i64>,
}

/// Records an uploaded part in one transaction with the removal of its job:
/// the object (stored, one more user), the part (remote), the archive's
/// counters and, once every part is remote, the manifest job. Returns the
/// archive as changed, or `None` when it went away or moved on meanwhile.
fn commit_part(
    txn: &mut RwTxn,
    tables: &Tables,
    job_id: &str,
    archive_id: &str,
    index: u32,
    object_id: &ObjectId,
    sent: &Option<SentObject>,
) -> Result<Option<ArchiveRecord>, Failure> {
    // Uploaded to a remote that is no longer the one in use (a move started
    // meanwhile): upload it again.
    if let Some(sent) = sent {
        if keys::generation(txn, tables)? != sent.generation {
            return Err(Failure::Busy);
        }
    }
    let object_key = object_id.as_str().as_bytes();
    // Removed between our look and now: upload it next time.
    let mut object =
        stored_object(tables.objects.get(txn, object_key)?, sent).ok_or(Failure::Busy)?;
    tables.jobs.delete(txn, job_id.as_bytes())?;
    let archive = tables.archives.get(txn, archive_id.as_bytes())?;
    let part_key = indexed_key(archive_id, index);
    let part = tables.parts.get(txn, &part_key)?;
    let (Some(mut archive), Some(mut part)) = (archive, part) else {
        return put_object_unused(txn, tables, object_id, &object);
    };
    if part.remote || part.to_move || archive.state == ArchiveState::Deleting {
        return put_object_unused(txn, tables, object_id, &object);
    }
    object.refcount += 1;
    tables.objects.put(txn, object_key, &object)?;
    part.object_id = Some(object_id.as_str().to_string());
    part.remote = true;
    tables.parts.put(txn, &part_key, &part)?;
    archive.parts_remote += 1;
    archive.bytes_remote += part.length;
    archive.stored_size = archive.stored_size.map(|size| size + object.stored_length);
    archive.protected_until = if archive.parts_remote == 1 {
        object.retain_until
    } else {
        super::lock::earliest(archive.protected_until, object.retain_until)
    };
    archive.last_error = None;
    if archive.state == ArchiveState::Local {
        archive.state = ArchiveState::Uploading;
    }
    if archive.parts_remote >= archive.parts_total {
        let archive_id = archive_id.to_string();
        jobs::enqueue(txn, tables, JobKind::UploadManifest { archive_id })?;
    }
    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
    Ok(Some(archive))
}

/// The object record after this job: `existing` updated with what was
/// sent, or new; `None` when nothing was sent and the object is no longer
/// stored and used.
fn stored_object(
    existing: Option<ObjectRecord>,
    sent: &Option<SentObject>,
) -> Option<ObjectRecord> {
    match (existing, sent) {
        (Some(mut object), Some(sent)) => {
            object.stored = true;
            object.stored_length = sent.length;
            object.ciphertext_sha256.clone_from(&sent.sha256);
            object.retain_until = sent.retain_until;
            Some(object)
        }
        (Some(object), None) if object.stored && object.refcount > 0 => Some(object),
        (None, Some(sent)) => Some(ObjectRecord {
            refcount: 0,
            stored_length: sent.length,
            ciphertext_sha256: sent.sha256.clone(),
            stored: true,
            retain_until: sent.retain_until,
        }),
        _ => None,
    }
}

/// Keeps the object record of a part nobody wants any more, and queues the
/// deletion of the object when no other part uses it.
fn put_object_unused(
    txn: &mut RwTxn,
    tables: &Tables,
    object_id: &ObjectId,
    object: &ObjectRecord,
) -> Result<Option<ArchiveRecord>, Failure> {
    if object.refcount == 0 {
        let object_id = object_id.as_str().to_string();
        jobs::enqueue(txn, tables, JobKind::DeleteObject { object_id })?;
    }
    tables
        .objects
        .put(txn, object_id.as_str().as_bytes(), object)?;
    Ok(None)
}

/// Where the time of the last completed backup (an archive's manifest
/// stored, so every part of it is on the remote) is kept, in `settings`.
const LAST_BACKUP_KEY: &[u8] = b"last_backup_at";

/// When the last backup completed (Unix seconds); `None` when none did
/// since piarchive began keeping this.
pub fn last_backup_at(
    store: &crate::store::Store,
) -> Result<Option<i64>, crate::store::StoreError> {
    let txn = store.read()?;
    Ok(store
        .tables
        .settings
        .get(&txn, LAST_BACKUP_KEY)?
        .and_then(|value| value.as_i64()))
}
