//! The job handlers. Each reads what it needs in a read transaction, does
//! its remote and file I/O with no transaction open, then commits the
//! result and removes its job in one write transaction.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::activity::Direction;
use super::jobs::{self, JobKind};
use super::{keys, metrics, Failure, Inner, ObjectClaim};
use crate::archive::sha256_pair::{self, Sha256Stream};
use crate::archive::{available_bytes, human_size, is_disk_full};
use crate::ids;
use crate::remote::{stop_reading, Remote};
use crate::repo::{self, Manifest, ManifestPart, ObjectId, PART_OVERHEAD};
use crate::settings::Settings;
use crate::store::records::{ArchiveRecord, ArchiveState, ObjectRecord, PartRecord};
use crate::store::{indexed_key, indexed_prefix};

/// Where the cache job writes the reassembled archive: the `.partial`
/// file, or in tests a stand-in whose writes fail.
pub(super) trait CacheFile: Sync {
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()>;
    /// Starts writing what was written at `offset` to disk, without
    /// waiting, so the closing fsync does not wait for the whole file.
    fn start_write_back(&self, _offset: u64, _len: u64) {}
    /// Flushes the file's data to disk (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
}

impl CacheFile for File {
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }

    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buffer, offset)
    }

    fn start_write_back(&self, offset: u64, len: u64) {
        // Not waiting is only a hint and uses up no write error: the
        // flushes while hashing and the fsync at the end report those.
        let _ = crate::archive::ingest::write_back(self, offset, len, false);
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}

/// Opens the file a cache job assembles into, given its path and size.
pub(super) type OpenCacheFile = dyn Fn(&Path, u64) -> io::Result<Box<dyn CacheFile>>;

/// Opens (or reopens after a crash) the `.partial` file at its full size.
/// It is sparse: blocks are used as parts are written.
fn open_partial(path: &Path, size: u64) -> io::Result<Box<dyn CacheFile>> {
    Ok(Box::new(open_sized(path, size)?))
}

/// Opens `path` for reading and writing, created if missing, at `size`.
fn open_sized(path: &Path, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.set_len(size)?;
    Ok(file)
}

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

/// Why fetching an archive's parts stopped.
enum CacheStop {
    /// The remote failed or a part did not check out.
    Fetch(Failure),
    /// The local file refused a write or a read.
    Write(io::Error),
}

/// Checks that the parts cover the archive exactly, one after the other,
/// so that hashing them in order hashes the whole file.
fn check_tiling(archive: &ArchiveRecord, parts: &[PartRecord]) -> Result<(), Failure> {
    let mut end = 0;
    for (index, part) in parts.iter().enumerate() {
        if part.offset != end {
            return Err(Failure::Damaged(format!(
                "Part {index} does not start where the part before it ends: the archive's records are inconsistent. Nothing was deleted."
            )));
        }
        end += part.length;
    }
    if end != archive.size {
        return Err(Failure::Damaged(
            "The archive's parts do not add up to its size. Nothing was deleted.".into(),
        ));
    }
    Ok(())
}

/// Bytes of a part read, decrypted, hashed and written at a time: what each
/// fetching thread holds, whatever the part's size.
const PIECE_LEN: usize = 1 << 20;

/// Bytes hashed between two flushes (fdatasync) of the file being cached:
/// the disk, and a VM host's write cache, are emptied as the parts come,
/// so the closing fsync has little left (1 GiB here: 0.4-0.6 s before,
/// 5-11 ms with).
const CACHE_SYNC_EVERY: u64 = 64 << 20;

/// Parts fetched at once when caching, at least: `transfer_concurrency`
/// paces the slow uplink, but a download link is faster, a server answers
/// several requests better than one, and each fetch holds only
/// [`PIECE_LEN`]. (bench/remote, 1 GiB from s3s-fs on 2 cores: 13.5 s
/// with 2, 7.6–8.6 s with 4, 6.0–8.9 s with 8.)
const MIN_FETCHERS: usize = 8;

/// Fetches every part into `file` with `threads` threads and returns the
/// whole file's SHA-256.
///
/// Each part streams in [`PIECE_LEN`] pieces: decrypted and written at its
/// offset as it arrives, then its tag and length are checked. Meanwhile one
/// more thread hashes the file in part order as the parts land, reading
/// each back from the (page-cached) file, so the whole-file check needs no
/// second pass at the end and checks what was actually written. Each
/// part's SHA-256 is checked by that thread too, in the same pass, with
/// `parts_hashed_in_order` (where two SHA-256 cost about one, see
/// `sha256_pair`); without, by the fetching threads as the pieces arrive,
/// so that the two hashes run on different cores. On a failure no new part
/// is started; the failure of the lowest failing part is returned, as a
/// one-by-one fetch would have reported it.
fn fetch_parts(
    sources: &Sources<'_>,
    keys: &repo::RepoKeys,
    file: &dyn CacheFile,
    parts: &[PartRecord],
    threads: usize,
    parts_hashed_in_order: bool,
    on_part: impl Fn(&PartRecord) + Sync,
) -> Result<[u8; 32], CacheStop> {
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let failures: Mutex<Vec<(usize, CacheStop)>> = Mutex::new(Vec::new());
    let (landed_tx, landed) = channel::<usize>();
    let whole = std::thread::scope(|scope| {
        let stopped = &stopped;
        let hasher = scope.spawn(move || {
            let hashed =
                hash_in_part_order(file, parts, parts_hashed_in_order, CACHE_SYNC_EVERY, landed);
            if hashed.is_err() {
                stopped.store(true, Ordering::Relaxed);
            }
            hashed
        });
        for _ in 0..threads.min(parts.len()) {
            let landed_tx = landed_tx.clone();
            scope.spawn(|| {
                let landed_tx = landed_tx;
                let mut buffer = vec![0u8; PIECE_LEN];
                while !stopped.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(part) = parts.get(index) else {
                        break;
                    };
                    let check_sha256 = !parts_hashed_in_order;
                    let remote = sources.for_part(part);
                    match fetch_part(remote, keys, file, index, part, check_sha256, &mut buffer) {
                        Ok(()) => {
                            on_part(part);
                            // The hasher only stops early on a failed read or
                            // flush or a part that does not match, which it
                            // reports.
                            let _ = landed_tx.send(index);
                        }
                        Err(stop) => {
                            stopped.store(true, Ordering::Relaxed);
                            super::lock(&failures).push((index, stop));
                        }
                    }
                }
            });
        }
        drop(landed_tx);
        hasher.join()
    });
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let hashed = match whole {
        Ok(Ok(hashed)) => hashed,
        Ok(Err(failure)) => {
            failures.push(failure);
            None
        }
        Err(_) => {
            let stopped = Failure::Transient(
                "The thread hashing the fetched file stopped unexpectedly; fetching back will try again."
                    .into(),
            );
            failures.push((parts.len(), CacheStop::Fetch(stopped)));
            None
        }
    };
    if let Some((_, stop)) = failures.into_iter().min_by_key(|(index, _)| *index) {
        return Err(stop);
    }
    hashed.ok_or_else(|| {
        CacheStop::Fetch(Failure::Transient(
            "Not every part of the archive was fetched; fetching back will try again.".into(),
        ))
    })
}

/// Where a cache reads each part from: the current remote, or while a
/// remote move runs, the previous one for parts not copied yet.
pub(super) struct Sources<'a> {
    pub current: &'a dyn Remote,
    pub previous: Option<&'a dyn Remote>,
}

impl Sources<'_> {
    fn for_part(&self, part: &PartRecord) -> &dyn Remote {
        match self.previous {
            Some(previous) if part.to_move => previous,
            _ => self.current,
        }
    }
}

/// Streams part `index` from the remote into `file` at its offset through
/// `buffer`, decrypting it on the way, and checks its tag and length, and
/// with `check_sha256` its SHA-256. A download that breaks off is retried
/// from the part's first byte by the remote.
fn fetch_part(
    remote: &dyn crate::remote::Remote,
    keys: &repo::RepoKeys,
    file: &dyn CacheFile,
    index: usize,
    part: &PartRecord,
    check_sha256: bool,
    buffer: &mut [u8],
) -> Result<(), CacheStop> {
    let object_id = object_id_of(part, index).map_err(CacheStop::Fetch)?;
    let damaged = |reason: String| CacheStop::Fetch(Failure::Damaged(reason));
    let mut stop: Option<CacheStop> = None;
    let fetched = {
        let mut read_body = |body: &mut dyn Read, length: u64| -> io::Result<()> {
            let mut give_up = |reason: CacheStop| {
                stop = Some(reason);
                stop_reading()
            };
            if !repo::sealed_len_fits(part.length, length) {
                return Err(give_up(damaged(format!(
                    "Part {index} on the remote is {length} bytes, which its record of {} bytes cannot be sealed as. Nothing was deleted.",
                    part.length
                ))));
            }
            let mut nonce = [0u8; repo::NONCE_LEN];
            body.read_exact(&mut nonce)?;
            let not_decrypted = |err: repo::RepoError| {
                damaged(format!(
                    "Part {index} could not be decrypted: {err} Nothing was deleted."
                ))
            };
            let mut reader = keys
                .part_reader(&object_id, &nonce, length as usize, part.length)
                .map_err(|err| give_up(not_decrypted(err)))?;
            let mut sha = check_sha256.then(Sha256::new);
            let mut done = 0u64;
            // Unpacked bytes go to the file at the part's offset as they
            // come: a compressed part streams like a stored one.
            let mut write = |bytes: &[u8]| -> io::Result<()> {
                if let Some(sha) = &mut sha {
                    sha.update(bytes);
                }
                file.write_all_at(bytes, part.offset + done)?;
                done += bytes.len() as u64;
                Ok(())
            };
            let body_len = length - (repo::NONCE_LEN + repo::TAG_LEN) as u64;
            let mut read = 0u64;
            while read < body_len {
                let take = (body_len - read).min(buffer.len() as u64) as usize;
                let piece = &mut buffer[..take];
                body.read_exact(piece)?;
                reader.feed(piece, &mut write).map_err(|err| match err {
                    Ok(err) => give_up(not_decrypted(err)),
                    Err(err) => give_up(CacheStop::Write(err)),
                })?;
                read += take as u64;
            }
            let mut tag = [0u8; repo::TAG_LEN];
            body.read_exact(&mut tag)?;
            reader
                .finish(&tag)
                .map_err(|err| give_up(not_decrypted(err)))?;
            file.start_write_back(part.offset, part.length);
            if sha.is_some_and(|sha| hex::encode(sha.finalize()) != part.sha256) {
                return Err(give_up(part_mismatch(index)));
            }
            metrics::global().add_downloaded(length);
            Ok(())
        };
        remote.get_with(&repo::part_key(&object_id), &mut read_body)
    };
    if let Some(stop) = stop {
        return Err(stop);
    }
    match fetched {
        Ok(()) => Ok(()),
        Err(err) if err.kind == crate::remote::ErrorKind::NotFound => Err(damaged(format!(
            "Part {index} is missing from the remote, so the archive cannot be fetched back. Nothing was deleted."
        ))),
        Err(err) => Err(CacheStop::Fetch(err.into())),
    }
}

fn part_mismatch(index: usize) -> CacheStop {
    CacheStop::Fetch(Failure::Damaged(format!(
        "Part {index} fetched from the remote does not match its recorded SHA-256. Nothing was deleted."
    )))
}

/// Hashes `file` part by part in order, as the indexes of parts written
/// arrive (in any order), and with `check_parts` checks each part's SHA-256
/// in the same pass; flushes the file to disk every `sync_every` bytes
/// hashed. Returns `None` when the channel closed before every part
/// landed; a failure comes with the index of its part.
fn hash_in_part_order(
    file: &dyn CacheFile,
    parts: &[PartRecord],
    check_parts: bool,
    sync_every: u64,
    landed: Receiver<usize>,
) -> Result<Option<[u8; 32]>, (usize, CacheStop)> {
    let mut whole = Sha256Stream::new();
    let mut done = vec![false; parts.len()];
    let mut next = 0;
    let mut scratch = vec![0u8; PIECE_LEN];
    let mut unsynced = 0u64;
    for index in landed {
        done[index] = true;
        while let Some(part) = parts.get(next).filter(|_| done[next]) {
            let mut part_hash = Sha256Stream::new();
            let mut offset = 0;
            while offset < part.length {
                let take = (part.length - offset).min(scratch.len() as u64) as usize;
                let piece = &mut scratch[..take];
                file.read_exact_at(piece, part.offset + offset)
                    .map_err(|err| (next, CacheStop::Write(err)))?;
                if check_parts {
                    sha256_pair::update_both(&mut whole, &mut part_hash, piece);
                } else {
                    whole.update(piece);
                }
                offset += take as u64;
            }
            if check_parts && hex::encode(part_hash.finalize()) != part.sha256 {
                return Err((next, part_mismatch(next)));
            }
            unsynced += part.length;
            if unsynced >= sync_every {
                // A write the disk failed shows here (and only here: the
                // closing fsync would not see it again).
                file.sync_data()
                    .map_err(|err| (next, CacheStop::Write(err)))?;
                unsynced = 0;
            }
            next += 1;
        }
    }
    Ok((next == parts.len()).then(|| whole.finalize()))
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
        let parts = self.store.tables.parts_of(&txn, archive_id)?;
        Ok(Some((archive, parts)))
    }

    /// Like `archive_and_parts`, with the remote generation they belong to,
    /// read in the same transaction.
    fn archive_parts_at(
        &self,
        archive_id: &str,
    ) -> Result<Option<(ArchiveRecord, Vec<PartRecord>, u64)>, Failure> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let Some(archive) = tables.archives.get(&txn, archive_id.as_bytes())? else {
            return Ok(None);
        };
        let parts = tables.parts_of(&txn, archive_id)?;
        Ok(Some((archive, parts, keys::generation(&txn, tables)?)))
    }

    /// Removes the job and, when the archive is still in state `from`,
    /// applies `change` to it, in one transaction; returns the archive as
    /// changed, or `None` when it was deleted or moved on meanwhile.
    fn finish_job(
        &self,
        job_id: &str,
        archive_id: &str,
        from: ArchiveState,
        change: impl FnOnce(&mut ArchiveRecord),
    ) -> Result<Option<ArchiveRecord>, Failure> {
        self.store
            .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                tables.jobs.delete(txn, job_id.as_bytes())?;
                let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                    return Ok(None);
                };
                if archive.state != from {
                    return Ok(None);
                }
                change(&mut archive);
                tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                Ok(Some(archive))
            })
    }

    /// Removes a job that has nothing (left) to do.
    pub(super) fn drop_job(&self, job_id: &str) -> Result<(), Failure> {
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
        if part.remote || part.to_move || !archive.state.is_local() {
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
        let mut generation = 0;
        if !existing.is_some_and(|o| o.stored && o.refcount > 0) {
            let _running = self.activity.start(archive_id, Direction::Upload);
            let (remote, at) = self.remote_at()?;
            generation = at;
            let (buffer, cipher_sha) =
                self.seal_local_part(keys, archive_id, index, &part, &object_id)?;
            self.throttle(buffer.len());
            let started = Instant::now();
            remote.put_hashed(&repo::part_key(&object_id), &buffer, &cipher_sha)?;
            metrics::global().observe_part_upload(started.elapsed());
            metrics::global().add_uploaded(buffer.len() as u64);
            uploaded = Some((buffer.len() as u64, cipher_sha));
        }
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    // Uploaded to a remote that is no longer the one in use
                    // (a move started meanwhile): upload it again.
                    if uploaded.is_some() && keys::generation(txn, tables)? != generation {
                        return Err(Failure::Busy);
                    }
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
                    if part.remote || part.to_move || archive.state == ArchiveState::Deleting {
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
                    archive.bytes_remote += part.length;
                    archive.stored_size =
                        archive.stored_size.map(|size| size + object.stored_length);
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
        // Room for the nonce, flag and tag: a part stored as it is is
        // sealed in this buffer.
        let mut buffer = Vec::with_capacity(length + PART_OVERHEAD + 1);
        buffer.resize(length, 0);
        FileExt::read_exact_at(
            &File::open(self.archive_path(archive_id))?,
            &mut buffer,
            part.offset,
        )?;
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
        let (remote, generation) = self.remote_at()?;
        self.throttle(sealed.len());
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
            match remote.head(&repo::part_key(&object_id))? {
                Some(length) if repo::sealed_len_fits(part.length, length) => {}
                found => {
                    return Err(Failure::Permanent(format!(
                    "Part {index} is not on the remote as expected ({}); the local copy was kept.",
                    match found {
                        Some(length) => format!(
                            "{length} bytes, which a part of {} bytes cannot be sealed as",
                            part.length
                        ),
                        None => "it is missing".to_string(),
                    }
                )))
                }
            }
        }
        let changed = self.finish_job(job_id, archive_id, ArchiveState::BackedUp, |archive| {
            archive.state = ArchiveState::Uncached;
            archive.local_copy = false;
            archive.last_error = None;
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
        self.cache_into(job_id, archive_id, &open_partial)
    }

    /// The cache job with the file it assembles into opened by `open`
    /// (given the `.partial` path and the archive size): the real file, or
    /// in tests one whose writes fail.
    ///
    /// Before writing it checks that the archive fits in the free space
    /// minus the reserve; if not, the job waits and retries (transient) with
    /// the reason on the archive. A local write, sync or rename that fails
    /// anyway (disk full, I/O error) ends the attempt: the `.partial` is
    /// removed, the archive goes back to `uncached` with the error shown,
    /// and nothing remote is touched.
    pub(super) fn cache_into(
        &self,
        job_id: &str,
        archive_id: &str,
        open: &OpenCacheFile,
    ) -> Result<(), Failure> {
        let Some((archive, parts, generation)) = self.archive_parts_at(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state != ArchiveState::Caching {
            return self.drop_job(job_id);
        }
        let (keys, _) = self.keys()?;
        let final_path = self.archive_path(archive_id);
        let partial = final_path.with_extension("partial");
        self.check_cache_space(&archive, &partial)?;
        let (remote, current_generation) = self.remote_at()?;
        if current_generation != generation {
            return Err(Failure::Busy);
        }
        // Parts not yet moved to the current remote come from the old one.
        let previous = match self.previous_settings()? {
            Some(settings) if parts.iter().any(|part| part.to_move) => {
                Some(self.previous_remote(&settings)?)
            }
            _ => None,
        };
        let sources = Sources {
            current: remote.as_ref(),
            previous: previous.as_deref(),
        };
        let running = self.activity.start(archive_id, Direction::Download);
        let file = match open(&partial, archive.size) {
            Ok(file) => file,
            Err(err) => return self.cache_write_failed(job_id, &archive, &partial, &err),
        };
        check_tiling(&archive, &parts)?;
        let threads =
            (Settings::load(&self.store)?.transfer_concurrency as usize).clamp(MIN_FETCHERS, 16);
        let fetched = fetch_parts(
            &sources,
            keys,
            file.as_ref(),
            &parts,
            threads,
            sha256_pair::is_fast(),
            |part| running.progress(part.length),
        );
        let whole_sha256 = match fetched {
            Ok(sha256) => sha256,
            // A part missing because the parts moved meanwhile is no damage.
            Err(CacheStop::Fetch(_)) if self.generation()? != generation => {
                return Err(Failure::Transient(
                    "The backups moved to the new storage while this archive was fetched back; fetching starts again.".into(),
                ))
            }
            Err(CacheStop::Fetch(failure)) => return Err(failure),
            Err(CacheStop::Write(err)) => {
                return self.cache_write_failed(job_id, &archive, &partial, &err)
            }
        };
        if hex::encode(whole_sha256) != archive.sha256 {
            return Err(Failure::Damaged(
                "The reassembled file does not match the archive's SHA-256. Nothing was deleted."
                    .into(),
            ));
        }
        if let Err(err) = file.sync_all() {
            return self.cache_write_failed(job_id, &archive, &partial, &err);
        }
        drop(file);
        let renamed =
            std::fs::rename(&partial, &final_path).and_then(|()| match final_path.parent() {
                Some(dir) => File::open(dir)?.sync_all(),
                None => Ok(()),
            });
        if let Err(err) = renamed {
            return self.cache_write_failed(job_id, &archive, &partial, &err);
        }
        let changed = self.finish_job(job_id, archive_id, ArchiveState::Caching, |archive| {
            // While a move runs, the archive is backed up only once every
            // part is on the new remote.
            archive.state = if archive.parts_remote >= archive.parts_total {
                ArchiveState::BackedUp
            } else {
                ArchiveState::Uploading
            };
            archive.local_copy = true;
            archive.last_error = None;
            archive.last_accessed_at = ids::now_secs();
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

    /// Refuses (transiently) to start writing an archive that would leave
    /// less free space than the reserve, and says so on the archive.
    fn check_cache_space(&self, archive: &ArchiveRecord, partial: &Path) -> Result<(), Failure> {
        // A `.partial` left by an earlier attempt already holds some blocks.
        let allocated = std::fs::metadata(partial)
            .map(|meta| meta.blocks().saturating_mul(512))
            .unwrap_or(0);
        let needed = archive.size.saturating_sub(allocated);
        let reserve = Settings::load(&self.store)?.free_space_reserve_bytes;
        let free = available_bytes(&self.data_dir)?;
        let usable = free.saturating_sub(reserve);
        if needed <= usable {
            return Ok(());
        }
        let message = format!(
            "There is not enough free space to cache “{}”: it needs {}, and {} is free of which {} is kept in reserve. Fetching back resumes by itself once space is freed or the reserve is lowered.",
            archive.name,
            human_size(needed),
            human_size(free),
            human_size(reserve),
        );
        let changed =
            self.store
                .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                    let Some(mut record) = tables.archives.get(txn, archive.id.as_bytes())? else {
                        return Ok(None);
                    };
                    if record.last_error.as_deref() == Some(message.as_str()) {
                        return Ok(None);
                    }
                    record.last_error = Some(message.clone());
                    tables.archives.put(txn, archive.id.as_bytes(), &record)?;
                    Ok(Some(record))
                })?;
        if let Some(record) = changed {
            self.events.archive(&record);
        }
        Err(Failure::Transient(message))
    }

    /// A local write failed while caching: removes the `.partial`, puts the
    /// archive back to `uncached` with the reason, ends the job. Nothing
    /// remote is touched.
    fn cache_write_failed(
        &self,
        job_id: &str,
        archive: &ArchiveRecord,
        partial: &Path,
        err: &io::Error,
    ) -> Result<(), Failure> {
        metrics::global().add_failure(metrics::FailureKind::Permanent);
        let removed = match std::fs::remove_file(partial) {
            Ok(()) => true,
            Err(remove_err) => remove_err.kind() == io::ErrorKind::NotFound,
        };
        let full = is_disk_full(err);
        let message = format!(
            "Fetching back stopped because the local disk refused a write ({}: {err}). The copy in remote storage is untouched{}; free some space or check the disk, then fetch it back again.",
            if full { "the disk is full" } else { "write error" },
            if removed { " and the unfinished file was removed" } else { "" },
        );
        let changed = self.finish_job(job_id, &archive.id, ArchiveState::Caching, |record| {
            record.state = ArchiveState::Uncached;
            record.last_error = Some(message);
        })?;
        if let Some(record) = changed {
            self.events.archive(&record);
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
            let (mut moving, mut moving_bytes) = (0, 0);
            for part in tables.parts_of(txn, archive_id)? {
                if part.to_move {
                    moving += 1;
                    moving_bytes += part.length + PART_OVERHEAD as u64;
                }
                let (true, Some(object_id)) = (part.remote || part.to_move, part.object_id) else {
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
            super::remote_move::forget_parts(txn, tables, moving, moving_bytes)?;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::{keys, lock, Inner};
    use super::*;
    use crate::archive::{Archives, NewUpload};
    use crate::store::Store;

    const OWNER: &str = "owner-1";

    /// The real `.partial` file, except that every write after the first
    /// `good` ones fails the way a full disk does (ENOSPC).
    struct FullDisk {
        file: File,
        good: usize,
        writes: AtomicUsize,
    }

    /// The SHA-256 (hex) of a whole file, read 1 MiB at a time.
    fn hash_file(path: &Path) -> io::Result<String> {
        use std::io::Read;
        let mut whole = Sha256::new();
        let mut reader = File::open(path)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            whole.update(&buffer[..read]);
        }
        Ok(hex::encode(whole.finalize()))
    }

    impl CacheFile for FullDisk {
        fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
            if self.writes.fetch_add(1, Ordering::SeqCst) >= self.good {
                return Err(io::Error::from_raw_os_error(28));
            }
            FileExt::write_all_at(&self.file, bytes, offset)
        }

        fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
            FileExt::read_exact_at(&self.file, buffer, offset)
        }

        fn sync_data(&self) -> io::Result<()> {
            File::sync_data(&self.file)
        }

        fn sync_all(&self) -> io::Result<()> {
            File::sync_all(&self.file)
        }
    }

    /// Records of the parts of `data` at these (offset, length) ranges,
    /// each with the SHA-256 of its bytes.
    fn part_records(data: &[u8], ranges: &[(u64, u64)]) -> Vec<PartRecord> {
        ranges
            .iter()
            .map(|&(offset, length)| PartRecord {
                offset,
                length,
                sha256: hex::encode(Sha256::digest(&data[offset as usize..][..length as usize])),
                object_id: None,
                remote: false,
                to_move: false,
            })
            .collect()
    }

    /// A landed channel that delivers these part indexes, then closes.
    fn landed_in(order: &[usize]) -> Receiver<usize> {
        let (landed_tx, landed) = channel();
        for index in order {
            landed_tx.send(*index).unwrap();
        }
        landed
    }

    /// Three parts of a file written in the order 2, 0, 1 (the landed
    /// channel's order) hash like the file read front to back, whether the
    /// hasher checks each part or not; a channel closed before part 1
    /// landed gives no hash; a part that does not match its record is
    /// reported with its index, when the hasher checks parts.
    #[test]
    fn the_whole_hash_follows_part_order_whatever_order_parts_land_in() {
        let data = noise(3 * 1000 + 17, 7);
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, &data).unwrap();
        let mut parts = part_records(&data, &[(0, 1000), (1000, 2000), (3000, 17)]);
        let hash_landing = |parts: &[PartRecord], check_parts: bool, order: &[usize]| {
            // A flush after every part.
            hash_in_part_order(&file, parts, check_parts, 1, landed_in(order))
        };
        let expected: [u8; 32] = Sha256::digest(&data).into();
        for check_parts in [false, true] {
            for order in [&[2, 0, 1][..], &[0, 1, 2]] {
                match hash_landing(&parts, check_parts, order) {
                    Ok(hash) => assert_eq!(hash, Some(expected)),
                    Err((index, _)) => panic!("part {index} failed"),
                }
            }
            assert!(matches!(
                hash_landing(&parts, check_parts, &[2, 0]),
                Ok(None)
            ));
        }
        parts[1].sha256 = hex::encode(Sha256::digest(b"something else"));
        match hash_landing(&parts, true, &[2, 1, 0]) {
            Err((1, CacheStop::Fetch(Failure::Damaged(reason)))) => assert_eq!(
                reason,
                "Part 1 fetched from the remote does not match its recorded SHA-256. Nothing was deleted."
            ),
            Err((index, _)) => panic!("part {index} reported instead of the damaged part 1"),
            Ok(hash) => panic!("a damaged part passed: {hash:?}"),
        }
        // Without checking parts (the fetchers do) the file still hashes.
        assert!(matches!(
            hash_landing(&parts, false, &[2, 1, 0]),
            Ok(Some(_))
        ));
    }

    /// A flush the disk fails stops the hashing at the part after which it
    /// came, as a failed write: a flush reports a failed write only once,
    /// so the closing fsync would not see it again.
    #[test]
    fn a_failed_flush_while_hashing_stops_the_cache_as_a_failed_write() {
        struct FlushFails(File);
        impl CacheFile for FlushFails {
            fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
                FileExt::write_all_at(&self.0, bytes, offset)
            }
            fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
                FileExt::read_exact_at(&self.0, buffer, offset)
            }
            fn sync_data(&self) -> io::Result<()> {
                Err(io::Error::from_raw_os_error(5))
            }
            fn sync_all(&self) -> io::Result<()> {
                Err(io::Error::from_raw_os_error(5))
            }
        }
        let data = noise(3000, 9);
        let file = tempfile::tempfile().unwrap();
        FileExt::write_all_at(&file, &data, 0).unwrap();
        let parts = part_records(&data, &[(0, 1000), (1000, 2000)]);
        // The first flush is due after part 1 (1000 + 2000 >= 2500 bytes).
        match hash_in_part_order(&FlushFails(file), &parts, true, 2500, landed_in(&[1, 0])) {
            Err((1, CacheStop::Write(err))) => assert_eq!(err.raw_os_error(), Some(5)),
            Err((index, _)) => {
                panic!("part {index} reported instead of a failed flush after part 1")
            }
            Ok(hash) => panic!("a failed flush passed: {hash:?}"),
        }
    }

    /// Runs every due job, one at a time, until none is left.
    fn run_due(inner: &Inner) {
        while let Some(job) = inner.lease() {
            let id = job.id.clone();
            inner.run(job);
            lock(&inner.leased).remove(&id);
        }
    }

    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Every file of the folder remote with its SHA-256, but the catalog
    /// of users and settings (re-sent whenever a setting is saved).
    fn remote_files(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.ends_with("catalog") {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), hash_file(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn archive(inner: &Inner, archive_id: &str) -> ArchiveRecord {
        inner.archive_and_parts(archive_id).unwrap().unwrap().0
    }

    /// Leases the cache job, passing over older ones (saving the settings
    /// queued a catalog upload first: jobs run by due time, then age).
    fn cache_job(inner: &Inner) -> crate::store::records::JobRecord {
        let mut passed = Vec::new();
        let job = loop {
            let job = inner.lease().expect("a cache job");
            if job.kind == jobs::KIND_CACHE {
                break job;
            }
            passed.push(job.id);
        };
        let mut leased = lock(&inner.leased);
        leased.remove(&job.id);
        for id in passed {
            leased.remove(&id);
        }
        job
    }

    /// An appliance in a temporary folder with one 20 MiB archive backed
    /// up to the folder remote and uncached.
    struct Uncached {
        dir: tempfile::TempDir,
        store: Store,
        archives: Archives,
        inner: Inner,
        archive_id: String,
        data: Vec<u8>,
    }

    fn uncached_archive() -> Uncached {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path();
        let store = Store::open(&data_dir.join("db"), 64 << 20).unwrap();
        let archives = Archives::open(store.clone(), data_dir).unwrap();
        keys::create(&store, "correct horse battery staple").unwrap();
        let inner = Inner::new(store.clone(), data_dir);

        let data = noise(20 * 1024 * 1024 + 11, 42);
        let record = archives
            .ingest_whole(
                NewUpload {
                    owner_id: OWNER.into(),
                    name: "holiday".into(),
                    filename: "holiday.bin".into(),
                    length: data.len() as u64,
                },
                &mut &data[..],
            )
            .unwrap();
        let archive_id = record.id.clone();
        assert!(record.parts_total >= 2, "{} parts", record.parts_total);
        run_due(&inner);
        assert_eq!(archive(&inner, &archive_id).state, ArchiveState::BackedUp);
        archives.request_uncache(OWNER, &archive_id).unwrap();
        run_due(&inner);
        assert_eq!(archive(&inner, &archive_id).state, ArchiveState::Uncached);
        Uncached {
            dir,
            store,
            archives,
            inner,
            archive_id,
            data,
        }
    }

    /// Both ways of checking each part's SHA-256 (by the fetching threads,
    /// or in order with the whole file's), against the real folder remote:
    /// intact records give the file and its hash; a record that does not
    /// match stops the fetch as damaged, naming the part.
    #[test]
    fn fetching_checks_each_part_in_the_fetchers_or_in_order() {
        let Uncached {
            dir: _dir,
            inner,
            archive_id,
            data,
            ..
        } = uncached_archive();
        let (keys, _) = inner.keys().unwrap();
        let remote = inner.remote().unwrap();
        let (archive, mut parts) = inner.archive_and_parts(&archive_id).unwrap().unwrap();
        let fetch = |parts: &[PartRecord], in_order: bool| {
            let file = tempfile::tempfile().unwrap();
            file.set_len(archive.size).unwrap();
            let sources = Sources {
                current: remote.as_ref(),
                previous: None,
            };
            let fetched = fetch_parts(&sources, keys, &file, parts, 4, in_order, |_| {});
            (fetched, file)
        };
        for in_order in [false, true] {
            let (fetched, file) = fetch(&parts, in_order);
            let sha256 = match fetched {
                Ok(sha256) => sha256,
                Err(CacheStop::Fetch(failure)) => panic!("{failure:?} (in order: {in_order})"),
                Err(CacheStop::Write(err)) => panic!("{err} (in order: {in_order})"),
            };
            assert_eq!(hex::encode(sha256), archive.sha256);
            let mut read = vec![0u8; data.len()];
            FileExt::read_exact_at(&file, &mut read, 0).unwrap();
            assert!(read == data);
        }
        parts[1].sha256 = hex::encode(Sha256::digest(b"something else"));
        for in_order in [false, true] {
            match fetch(&parts, in_order).0 {
                Err(CacheStop::Fetch(Failure::Damaged(reason))) => assert_eq!(
                    reason,
                    "Part 1 fetched from the remote does not match its recorded SHA-256. Nothing was deleted."
                ),
                Err(_) => panic!("another failure than the damaged part 1 (in order: {in_order})"),
                Ok(_) => panic!("a part that does not match passed (in order: {in_order})"),
            }
        }
    }

    #[test]
    fn caching_waits_for_space_and_a_failed_write_leaves_it_uncached_and_the_remote_untouched() {
        let Uncached {
            dir,
            store,
            archives,
            inner,
            archive_id,
            data,
        } = uncached_archive();
        let data_dir = dir.path();
        let remote_before = remote_files(&data_dir.join("remote"));
        assert!(!remote_before.is_empty());
        let final_path = inner.archive_path(&archive_id);
        let partial = final_path.with_extension("partial");

        // Not enough room once the reserve is kept: nothing is written, the
        // job waits, the archive says why.
        let mut settings = Settings::load(&store).unwrap();
        settings.free_space_reserve_bytes = u64::MAX / 2;
        settings.save(&store).unwrap();
        archives.request_cache(OWNER, &archive_id).unwrap();
        let job = cache_job(&inner);
        match inner.cache(&job.id, &archive_id) {
            Err(Failure::Transient(message)) => {
                assert!(message.contains("not enough free space"), "{message}")
            }
            other => panic!("expected a transient failure, got {other:?}"),
        }
        let waiting = archive(&inner, &archive_id);
        assert_eq!(waiting.state, ArchiveState::Caching);
        let error = waiting.last_error.expect("the reason is shown");
        assert!(
            error.contains("not enough free space to cache “holiday”")
                && error.contains("needs 20.0 MiB"),
            "{error}"
        );
        assert!(!partial.exists());

        // Room again, but the disk fills up after the first part: the
        // archive is back to uncached with the reason, the partial file is
        // gone, the job is done, the remote is exactly as it was.
        settings.free_space_reserve_bytes = 0;
        settings.save(&store).unwrap();
        let full_disk = |path: &Path, size: u64| -> io::Result<Box<dyn CacheFile>> {
            Ok(Box::new(FullDisk {
                file: open_sized(path, size)?,
                good: 1,
                writes: AtomicUsize::new(0),
            }))
        };
        inner.cache_into(&job.id, &archive_id, &full_disk).unwrap();
        let failed = archive(&inner, &archive_id);
        assert_eq!(failed.state, ArchiveState::Uncached);
        assert!(!failed.local_copy);
        let error = failed.last_error.expect("the reason is shown");
        assert!(
            error.contains("the disk is full")
                && error.contains("remote storage is untouched")
                && error.contains("unfinished file was removed"),
            "{error}"
        );
        assert!(!partial.exists() && !final_path.exists());
        // The cache job is done (saving the settings queued a catalog upload,
        // which is not this test's business).
        let left: Vec<String> = inner
            .store
            .tables
            .jobs
            .all(&inner.store.read().unwrap())
            .unwrap()
            .into_iter()
            .map(|(_, job)| job.kind)
            .filter(|kind| kind != jobs::KIND_UPLOAD_CATALOG)
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(remote_files(&data_dir.join("remote")), remote_before);

        // Asked again with a healthy disk, it comes back bit-exact.
        archives.request_cache(OWNER, &archive_id).unwrap();
        run_due(&inner);
        let done = archive(&inner, &archive_id);
        assert_eq!(done.state, ArchiveState::BackedUp);
        assert!(done.last_error.is_none());
        assert_eq!(std::fs::read(&final_path).unwrap(), data);
        assert_eq!(remote_files(&data_dir.join("remote")), remote_before);
    }
}
