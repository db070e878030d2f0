//! The cache job: fetches every part of an archive from the remote into
//! its `.partial` file, hashing the whole file in part order as parts land.

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
use super::{Failure, Inner};
use crate::disk::{available_bytes, is_disk_full};
use crate::ids;
use crate::metrics;
use crate::remote::stop_reading;
use crate::repo::{self};
use crate::settings::Settings;
use crate::sha256_pair::{self, Sha256Stream};
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord};
use crate::units::human_size;

use super::work::object_id_of;

mod fallback;
mod sources;
use fallback::fallback_note;
pub use sources::Throughput;
use sources::{Fallback, Source, Sources};

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
        let _ = crate::disk::write_back(self, offset, len, false);
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

/// Why fetching an archive's parts stopped.
enum CacheStop {
    /// The remote failed or a part did not check out.
    Fetch(Failure),
    /// The part is not on that destination (the sentence says so).
    Missing(String),
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

/// Fetches every part into `file` with `threads` threads, each from the
/// best destination that holds it ([`Sources::for_part`]), and returns the
/// whole file's SHA-256 and the parts that had to be read from another
/// destination than the first one tried, because they were missing or
/// damaged there.
///
/// Each part streams in [`PIECE_LEN`] pieces: each 64 KiB segment of a
/// format-3 part is authenticated, then written at its offset; an older
/// part is held whole (at most 16 MiB) until its tag checks out. Then its
/// length is checked. Meanwhile one
/// more thread hashes the file in part order as the parts land, reading
/// each back from the (page-cached) file, so the whole-file check needs no
/// second pass at the end and checks what was actually written. Each
/// part's SHA-256 is checked by that thread too, in the same pass, with
/// `parts_hashed_in_order` (where two SHA-256 cost about one, see
/// `sha256_pair`); without, by the fetching threads as the pieces arrive,
/// so that the two hashes run on different cores. On a failure no new part
/// is started; the failure of the lowest failing part is returned, as a
/// one-by-one fetch would have reported it.
#[allow(clippy::too_many_arguments)]
fn fetch_parts(
    sources: &Sources<'_>,
    throughput: &Throughput,
    keys: &repo::RepoKeys,
    file: &dyn CacheFile,
    parts: &[PartRecord],
    threads: usize,
    parts_hashed_in_order: bool,
    on_part: impl Fn(&PartRecord) + Sync,
) -> Result<([u8; 32], Vec<Fallback>), CacheStop> {
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let failures: Mutex<Vec<(usize, CacheStop)>> = Mutex::new(Vec::new());
    let fallbacks: Mutex<Vec<Fallback>> = Mutex::new(Vec::new());
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
                    let fetch = PartFetch {
                        keys,
                        file,
                        index,
                        part,
                        check_sha256: !parts_hashed_in_order,
                    };
                    match fetch_from_any(sources, throughput, &fetch, &mut buffer) {
                        Ok(fell_back) => {
                            super::lock(&fallbacks).extend(fell_back);
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
    let whole = hashed.ok_or_else(|| {
        CacheStop::Fetch(Failure::Transient(
            "Not every part of the archive was fetched; fetching back will try again.".into(),
        ))
    })?;
    let mut fallbacks = fallbacks
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fallbacks.sort_by_key(|fallback| fallback.index);
    Ok((whole, fallbacks))
}

/// One part to fetch and where it goes.
struct PartFetch<'a> {
    keys: &'a repo::RepoKeys,
    file: &'a dyn CacheFile,
    index: usize,
    part: &'a PartRecord,
    check_sha256: bool,
}

/// Whether a fetch that stopped found the part missing or damaged on that
/// destination (rather than not reaching it): `Some(missing)`.
fn damage_of(stop: &CacheStop) -> Option<bool> {
    match stop {
        CacheStop::Missing(_) => Some(true),
        CacheStop::Fetch(Failure::Damaged(_)) => Some(false),
        _ => None,
    }
}

/// Fetches one part from the first destination holding it that gives it
/// whole and intact, best first; answers the destinations it was missing
/// or damaged on before. A destination that fails otherwise (unreachable,
/// busy) is passed over too, but is no damage. When none gives it: the
/// failure of the only destination as it was, or with several, a failure
/// that is no damage if any was one (trying again may help), else a
/// sentence naming each copy that was missing or damaged. A local write
/// that fails stops at once.
fn fetch_from_any(
    sources: &Sources<'_>,
    throughput: &Throughput,
    fetch: &PartFetch<'_>,
    buffer: &mut [u8],
) -> Result<Vec<Fallback>, CacheStop> {
    let index = fetch.index;
    let mut failed: Vec<(&Source<'_>, CacheStop)> = Vec::new();
    for source in sources.for_part(index, throughput) {
        let started = Instant::now();
        let fetched = source
            .remote()
            .map_err(CacheStop::Fetch)
            .and_then(|remote| fetch_part(remote.as_ref(), fetch, buffer));
        match fetched {
            Ok(length) => {
                throughput.record(&source.id, length, started.elapsed());
                let fallbacks = failed.iter().filter_map(|(failed, stop)| {
                    Some(Fallback {
                        index,
                        failed_id: failed.id.clone(),
                        failed_name: failed.name.clone(),
                        missing: damage_of(stop)?,
                        read_from: source.name.clone(),
                    })
                });
                return Ok(fallbacks.collect());
            }
            Err(stop @ CacheStop::Write(_)) => return Err(stop),
            Err(stop) => failed.push((source, stop)),
        }
    }
    if failed.len() <= 1 {
        return Err(match failed.pop() {
            Some((_, CacheStop::Missing(message))) => CacheStop::Fetch(Failure::Damaged(message)),
            Some((_, stop)) => stop,
            None => CacheStop::Fetch(Failure::Damaged(format!(
                "Part {index} is stored on no destination, so the archive cannot be fetched back. Nothing was deleted."
            ))),
        });
    }
    if let Some(at) = failed
        .iter()
        .position(|(_, stop)| damage_of(stop).is_none())
    {
        return Err(failed.swap_remove(at).1);
    }
    let copies = failed
        .iter()
        .map(|(source, stop)| match damage_of(stop) {
            Some(true) => format!("missing on {}", source.name),
            _ => format!("damaged on {}", source.name),
        })
        .collect::<Vec<_>>()
        .join(" and ");
    Err(CacheStop::Fetch(Failure::Damaged(format!(
        "Part {index} is {copies}, so the archive cannot be fetched back. Nothing was deleted."
    ))))
}

/// Streams part `index` from `remote` into `file` at its offset through
/// `buffer`, writing only what [`repo::PartReader`] authenticated (a
/// segment, or an older part whole), and checks its length, and with
/// `check_sha256` its SHA-256; answers the bytes downloaded. A download
/// that breaks off is retried from the part's first byte by the remote.
fn fetch_part(
    remote: &dyn crate::remote::Remote,
    fetch: &PartFetch<'_>,
    buffer: &mut [u8],
) -> Result<u64, CacheStop> {
    let PartFetch {
        keys,
        file,
        index,
        part,
        check_sha256,
    } = *fetch;
    let object_id = object_id_of(part, index).map_err(CacheStop::Fetch)?;
    let damaged = |reason: String| CacheStop::Fetch(Failure::Damaged(reason));
    let mut stop: Option<CacheStop> = None;
    let mut downloaded = 0;
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
            let not_decrypted = |err: repo::RepoError| {
                damaged(format!(
                    "Part {index} could not be decrypted: {err} Nothing was deleted."
                ))
            };
            let mut reader = keys
                .part_reader(&object_id, length, part.length)
                .map_err(|err| give_up(not_decrypted(err)))?;
            let mut sha = check_sha256.then(Sha256::new);
            let mut done = 0u64;
            // The reader hands out only bytes it authenticated: a format-3
            // segment once its tag checked out, an older part once whole.
            // They go to the file at the part's offset as they come.
            let mut write = |bytes: &[u8]| -> io::Result<()> {
                if let Some(sha) = &mut sha {
                    sha.update(bytes);
                }
                file.write_all_at(bytes, part.offset + done)?;
                done += bytes.len() as u64;
                Ok(())
            };
            let mut stopped = |err: Result<repo::RepoError, io::Error>| match err {
                Ok(err) => give_up(not_decrypted(err)),
                Err(err) => give_up(CacheStop::Write(err)),
            };
            let mut read = 0u64;
            while read < length {
                let take = (length - read).min(buffer.len() as u64) as usize;
                let piece = &mut buffer[..take];
                body.read_exact(piece)?;
                reader.feed(piece, &mut write).map_err(&mut stopped)?;
                read += take as u64;
            }
            reader.finish(&mut write).map_err(&mut stopped)?;
            file.start_write_back(part.offset, part.length);
            if sha.is_some_and(|sha| hex::encode(sha.finalize()) != part.sha256) {
                return Err(give_up(part_mismatch(index)));
            }
            metrics::global().add_downloaded(length);
            downloaded = length;
            Ok(())
        };
        remote.get_with(&repo::part_key(&object_id), &mut read_body)
    };
    if let Some(stop) = stop {
        return Err(stop);
    }
    match fetched {
        Ok(()) => Ok(downloaded),
        Err(err) if err.kind == crate::remote::ErrorKind::NotFound => Err(CacheStop::Missing(format!(
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
        // The main storage failing to open is no reason to stop: a copy
        // may have every part.
        let main = match self.remote_at() {
            Ok((_, current)) if current != generation => return Err(Failure::Busy),
            Ok((remote, _)) => Ok(remote),
            Err(_) if self.generation()? != generation => return Err(Failure::Busy),
            Err(failure) => Err(failure),
        };
        let sources = self.sources(&archive, &parts, main)?;
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
            &self.throughput,
            keys,
            file.as_ref(),
            &parts,
            threads,
            sha256_pair::is_fast(),
            |part| {
                let done = running.progress(part.length);
                self.events.fetched(&archive, done);
            },
        );
        let (whole_sha256, fallbacks) = match fetched {
            Ok(fetched) => fetched,
            // A part missing because the parts moved meanwhile is no damage.
            Err(CacheStop::Fetch(_) | CacheStop::Missing(_))
                if self.generation()? != generation =>
            {
                return Err(Failure::Transient(
                    "The backups moved to the new storage while this archive was fetched back; fetching starts again.".into(),
                ))
            }
            Err(CacheStop::Fetch(failure)) => return Err(failure),
            Err(CacheStop::Missing(message)) => return Err(Failure::Damaged(message)),
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
        let fell_back = fallback_note(&archive, &fallbacks);
        if let Some(note) = &fell_back {
            self.report(super::ReportLevel::Warn, note);
        }
        // Before the archive is shown fetched back, so it is whole
        // everywhere again by then.
        self.store_again(&archive, &parts, &sources, &fallbacks, &partial);
        self.install_cached(job_id, &archive, file, &partial, &final_path, fell_back)
    }

    /// The last steps of a cache whose file checked out: fsync, rename into
    /// place (and fsync the folder), then the archive is `backed_up` again
    /// (or `uploading` while a move runs) with its local copy. A failed
    /// sync or rename is a failed write ([`Inner::cache_write_failed`]).
    fn install_cached(
        &self,
        job_id: &str,
        archive: &ArchiveRecord,
        file: Box<dyn CacheFile>,
        partial: &Path,
        final_path: &Path,
        fell_back: Option<String>,
    ) -> Result<(), Failure> {
        let archive_id = archive.id.as_str();
        if let Err(err) = file.sync_all() {
            return self.cache_write_failed(job_id, archive, partial, &err);
        }
        drop(file);
        let renamed =
            std::fs::rename(partial, final_path).and_then(|()| match final_path.parent() {
                Some(dir) => File::open(dir)?.sync_all(),
                None => Ok(()),
            });
        if let Err(err) = renamed {
            return self.cache_write_failed(job_id, archive, partial, &err);
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
                    // While a move runs, the archive is backed up only once every
                    // part is on the new remote; and only once every copy
                    // destination holds it too (`store::copies::settle`).
                    let main_done = archive.parts_remote >= archive.parts_total;
                    archive.state = ArchiveState::Uploading;
                    archive.local_copy = true;
                    // Which copy was damaged stays on the archive until its
                    // next error or transfer.
                    archive.last_error = fell_back;
                    archive.last_accessed_at = ids::now_secs();
                    crate::store::copies::settle(txn, tables, &mut archive, main_done)?;
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                })?;
        match changed {
            Some(archive) => self.events.archive(&archive),
            // Deleted while we fetched it.
            None => {
                let _ = std::fs::remove_file(final_path);
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
        crate::disk::report(err, "fetching an archive back");
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
}

#[cfg(test)]
mod tests;
