//! The job handlers. Each reads what it needs in a read transaction, does
//! its remote and file I/O with no transaction open, then commits the
//! result and removes its job in one write transaction.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use super::activity::Direction;
use super::jobs::{self, JobKind};
use super::{Failure, Inner, ObjectClaim};
use crate::ids;
use crate::repo::{self, Manifest, ManifestPart, ObjectId, PART_OVERHEAD};
use crate::store::records::{ArchiveRecord, ArchiveState, ObjectRecord, PartRecord};
use crate::store::{indexed_key, indexed_prefix};

fn sha_bytes(hex_text: &str) -> Result<[u8; 32], Failure> {
    hex::decode(hex_text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| Failure::Damaged(format!("A stored hash ({hex_text}) is malformed.")))
}

fn object_id_of(part: &PartRecord, index: usize) -> Result<ObjectId, Failure> {
    let id = part
        .object_id
        .as_deref()
        .ok_or_else(|| Failure::Damaged(format!("Part {index} has no remote object.")))?;
    ObjectId::parse(id).map_err(|err| Failure::Damaged(err.to_string()))
}

impl Inner {
    fn archive_and_parts(
        &self,
        archive_id: &str,
    ) -> Result<Option<(ArchiveRecord, Vec<PartRecord>)>, Failure> {
        let txn = self.store.read()?;
        let Some(archive) = self
            .store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())?
        else {
            return Ok(None);
        };
        let parts = self
            .store
            .tables
            .parts
            .prefix(&txn, &indexed_prefix(archive_id))?
            .into_iter()
            .map(|(_, part)| part)
            .collect();
        Ok(Some((archive, parts)))
    }

    /// Removes a job that has nothing (left) to do.
    fn drop_job(&self, job_id: &str) -> Result<(), Failure> {
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.jobs.delete(txn, job_id.as_bytes())?;
            Ok(())
        })
    }

    pub(super) fn upload_part(
        &self,
        job_id: &str,
        archive_id: &str,
        index: u32,
    ) -> Result<(), Failure> {
        let (archive, part) = {
            let txn = self.store.read()?;
            let archive = self
                .store
                .tables
                .archives
                .get(&txn, archive_id.as_bytes())?;
            let part = self
                .store
                .tables
                .parts
                .get(&txn, &indexed_key(archive_id, index))?;
            (archive, part)
        };
        let (Some(archive), Some(part)) = (archive, part) else {
            return self.drop_job(job_id);
        };
        if part.remote || !archive.state.is_local() {
            return self.drop_job(job_id);
        }
        let (keys, _) = self.keys()?;
        let plaintext_sha = sha_bytes(&part.sha256)?;
        let object_id = keys.object_id(&plaintext_sha);
        let _claim = ObjectClaim::take(self, object_id.as_str())?;
        let existing = {
            let txn = self.store.read()?;
            self.store
                .tables
                .objects
                .get(&txn, object_id.as_str().as_bytes())?
        };
        let mut uploaded: Option<(u64, String)> = None;
        if !existing.is_some_and(|o| o.stored && o.refcount > 0) {
            let _running = self.activity.start(archive_id, Direction::Upload);
            let remote = self.remote()?;
            let length = part.length as usize;
            let mut buffer = Vec::with_capacity(length + PART_OVERHEAD);
            buffer.resize(length, 0);
            File::open(self.archive_path(archive_id))?.read_exact_at(&mut buffer, part.offset)?;
            if hex::encode(Sha256::digest(&buffer)) != part.sha256 {
                return Err(Failure::Damaged(format!(
                    "Part {index} of the local file no longer matches the hash taken at upload: the disk may be failing. Nothing was uploaded for it."
                )));
            }
            let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
            keys.encrypt_part_in_place(&object_id, nonce, &mut buffer)
                .map_err(|e| Failure::Permanent(e.to_string()))?;
            let cipher_sha = hex::encode(Sha256::digest(&buffer));
            self.throttle(buffer.len());
            remote.put_hashed(&repo::part_key(&object_id), &buffer, &cipher_sha)?;
            self.activity.moved(part.length);
            uploaded = Some((buffer.len() as u64, cipher_sha));
        }
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    let object_key = object_id.as_str().as_bytes();
                    let mut object = match (tables.objects.get(txn, object_key)?, &uploaded) {
                        (Some(mut object), Some((length, sha))) => {
                            object.stored = true;
                            object.stored_length = *length;
                            object.ciphertext_sha256.clone_from(sha);
                            object
                        }
                        (Some(object), None) if object.stored && object.refcount > 0 => object,
                        (None, Some((length, sha))) => ObjectRecord {
                            refcount: 0,
                            stored_length: *length,
                            ciphertext_sha256: sha.clone(),
                            stored: true,
                        },
                        // Removed between our look and now: upload it next time.
                        _ => return Err(Failure::Busy),
                    };
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let archive = tables.archives.get(txn, archive_id.as_bytes())?;
                    let part_key = indexed_key(archive_id, index);
                    let part = tables.parts.get(txn, &part_key)?;
                    let (Some(mut archive), Some(mut part)) = (archive, part) else {
                        if object.refcount == 0 {
                            jobs::enqueue(
                                txn,
                                tables,
                                JobKind::DeleteObject {
                                    object_id: object_id.as_str().to_string(),
                                },
                            )?;
                        }
                        tables.objects.put(txn, object_key, &object)?;
                        return Ok(None);
                    };
                    if part.remote || archive.state == ArchiveState::Deleting {
                        if object.refcount == 0 {
                            jobs::enqueue(
                                txn,
                                tables,
                                JobKind::DeleteObject {
                                    object_id: object_id.as_str().to_string(),
                                },
                            )?;
                        }
                        tables.objects.put(txn, object_key, &object)?;
                        return Ok(None);
                    }
                    object.refcount += 1;
                    tables.objects.put(txn, object_key, &object)?;
                    part.object_id = Some(object_id.as_str().to_string());
                    part.remote = true;
                    tables.parts.put(txn, &part_key, &part)?;
                    archive.parts_remote += 1;
                    archive.last_error = None;
                    if archive.state == ArchiveState::Local {
                        archive.state = ArchiveState::Uploading;
                    }
                    if archive.parts_remote >= archive.parts_total {
                        jobs::enqueue(
                            txn,
                            tables,
                            JobKind::UploadManifest {
                                archive_id: archive_id.to_string(),
                            },
                        )?;
                    }
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                })?;
        if let Some(archive) = changed {
            self.events.part(&archive, index, true);
            self.events.archive(&archive);
            self.wake();
        }
        Ok(())
    }

    pub(super) fn upload_manifest(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, parts)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state == ArchiveState::Deleting || parts.iter().any(|p| !p.remote) {
            return self.drop_job(job_id);
        }
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
            parts: parts
                .iter()
                .enumerate()
                .map(|(index, part)| {
                    Ok(ManifestPart {
                        object_id: object_id_of(part, index)?,
                        length: part.length,
                        sha256: part.sha256.clone(),
                    })
                })
                .collect::<Result<_, Failure>>()?,
        };
        let (keys, _) = self.keys()?;
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        let sealed = manifest
            .seal(keys, nonce)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        let remote = self.remote()?;
        self.throttle(sealed.len());
        remote.put(&repo::manifest_key(archive_id), &sealed)?;
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                        return Ok(None);
                    };
                    if matches!(archive.state, ArchiveState::Local | ArchiveState::Uploading) {
                        archive.state = ArchiveState::BackedUp;
                    }
                    archive.last_error = None;
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                })?;
        if let Some(archive) = changed {
            self.events.archive(&archive);
        }
        Ok(())
    }

    pub(super) fn uncache(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, parts)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state != ArchiveState::BackedUp || parts.iter().any(|p| !p.remote) {
            return self.drop_job(job_id);
        }
        let remote = self.remote()?;
        for (index, part) in parts.iter().enumerate() {
            let object_id = object_id_of(part, index)?;
            let expected = part.length + PART_OVERHEAD as u64;
            match remote.head(&repo::part_key(&object_id))? {
                Some(length) if length == expected => {}
                found => {
                    return Err(Failure::Permanent(format!(
                    "Part {index} is not on the remote as expected ({}); the local copy was kept.",
                    match found {
                        Some(length) => format!("{length} bytes instead of {expected}"),
                        None => "it is missing".to_string(),
                    }
                )))
                }
            }
        }
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                        return Ok(None);
                    };
                    if archive.state != ArchiveState::BackedUp {
                        return Ok(None);
                    }
                    archive.state = ArchiveState::Uncached;
                    archive.local_copy = false;
                    archive.last_error = None;
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                })?;
        if let Some(archive) = changed {
            match std::fs::remove_file(self.archive_path(archive_id)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
            self.events.archive(&archive);
        }
        Ok(())
    }

    pub(super) fn cache(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, parts)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state != ArchiveState::Caching {
            return self.drop_job(job_id);
        }
        let (keys, _) = self.keys()?;
        let remote = self.remote()?;
        let running = self.activity.start(archive_id, Direction::Download);
        let final_path = self.archive_path(archive_id);
        let partial = final_path.with_extension("partial");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)?;
        file.set_len(archive.size)?;
        for (index, part) in parts.iter().enumerate() {
            let object_id = object_id_of(part, index)?;
            let mut buffer = match remote.get(&repo::part_key(&object_id)) {
                Ok(bytes) => bytes,
                Err(err) if err.kind == crate::remote::ErrorKind::NotFound => {
                    return Err(Failure::Damaged(format!(
                        "Part {index} is missing from the remote, so the archive cannot be fetched back. Nothing was deleted."
                    )))
                }
                Err(err) => return Err(err.into()),
            };
            keys.decrypt_part_in_place(&object_id, &mut buffer)
                .map_err(|err| {
                    Failure::Damaged(format!(
                        "Part {index} could not be decrypted: {err} Nothing was deleted."
                    ))
                })?;
            if buffer.len() as u64 != part.length
                || hex::encode(Sha256::digest(&buffer)) != part.sha256
            {
                return Err(Failure::Damaged(format!(
                    "Part {index} fetched from the remote does not match its recorded SHA-256. Nothing was deleted."
                )));
            }
            file.write_all_at(&buffer, part.offset)?;
            running.progress(part.length);
        }
        file.sync_all()?;
        let mut whole = Sha256::new();
        let mut reader = File::open(&partial)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            whole.update(&buffer[..read]);
        }
        if hex::encode(whole.finalize()) != archive.sha256 {
            return Err(Failure::Damaged(
                "The reassembled file does not match the archive's SHA-256. Nothing was deleted."
                    .into(),
            ));
        }
        std::fs::rename(&partial, &final_path)?;
        if let Some(dir) = final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                        return Ok(None);
                    };
                    if archive.state != ArchiveState::Caching {
                        return Ok(None);
                    }
                    archive.state = ArchiveState::BackedUp;
                    archive.local_copy = true;
                    archive.last_error = None;
                    archive.last_accessed_at = ids::now_secs();
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                })?;
        match changed {
            Some(archive) => self.events.archive(&archive),
            // Deleted while we fetched it.
            None => {
                let _ = std::fs::remove_file(&final_path);
            }
        }
        Ok(())
    }

    pub(super) fn delete(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, _)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.parts_remote > 0 || archive.parts_total == 0 {
            let remote = self.remote()?;
            remote.delete(&repo::manifest_key(archive_id))?;
        }
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.jobs.delete(txn, job_id.as_bytes())?;
            for (_, part) in tables.parts.prefix(txn, &indexed_prefix(archive_id))? {
                let (true, Some(object_id)) = (part.remote, part.object_id) else {
                    continue;
                };
                if let Some(mut object) = tables.objects.get(txn, object_id.as_bytes())? {
                    object.refcount = object.refcount.saturating_sub(1);
                    tables.objects.put(txn, object_id.as_bytes(), &object)?;
                    if object.refcount == 0 {
                        jobs::enqueue(txn, tables, JobKind::DeleteObject { object_id })?;
                    }
                }
            }
            tables
                .parts
                .delete_prefix(txn, &indexed_prefix(archive_id))?;
            tables.archives.delete(txn, archive_id.as_bytes())?;
            Ok(())
        })?;
        let _ = std::fs::remove_file(self.archive_path(archive_id).with_extension("partial"));
        self.wake();
        Ok(())
    }

    pub(super) fn delete_object(&self, job_id: &str, object_id: &str) -> Result<(), Failure> {
        let _claim = ObjectClaim::take(self, object_id)?;
        let object = {
            let txn = self.store.read()?;
            self.store.tables.objects.get(&txn, object_id.as_bytes())?
        };
        if object.is_none_or(|o| o.refcount != 0) {
            return self.drop_job(job_id);
        }
        let id = ObjectId::parse(object_id).map_err(|e| Failure::Permanent(e.to_string()))?;
        self.remote()?.delete(&repo::part_key(&id))?;
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.jobs.delete(txn, job_id.as_bytes())?;
            if let Some(object) = tables.objects.get(txn, object_id.as_bytes())? {
                if object.refcount == 0 {
                    tables.objects.delete(txn, object_id.as_bytes())?;
                }
            }
            Ok(())
        })
    }
}
