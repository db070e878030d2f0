use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::{jobs, keys, lock, Inner};
use super::*;
use crate::archive::{Archives, NewUpload};
use crate::engine::destinations::MAIN;
use crate::engine::tests::noise;
use crate::remote::Remote;
use crate::store::Store;
use std::sync::Arc;

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
                relative_path: None,
            },
            &mut &data[..],
        )
        .unwrap();
    let archive_id = record.id.clone();
    assert!(record.parts_total >= 2, "{} parts", record.parts_total);
    inner.run_due();
    assert_eq!(archive(&inner, &archive_id).state, ArchiveState::BackedUp);
    archives.request_uncache(OWNER, &archive_id).unwrap();
    inner.run_due();
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
        let on_main = vec![true; parts.len()];
        let sources = Sources {
            sources: vec![Source::opened(
                MAIN,
                "the remote",
                true,
                on_main,
                remote.clone(),
            )],
        };
        let throughput = Throughput::default();
        let fetched = fetch_parts(
            &sources,
            &throughput,
            keys,
            &file,
            parts,
            4,
            in_order,
            |_| {},
        )
        .map(|(sha256, fallbacks)| {
            assert!(fallbacks.is_empty(), "{fallbacks:?}");
            sha256
        });
        (fetched, file)
    };
    for in_order in [false, true] {
        let (fetched, file) = fetch(&parts, in_order);
        let sha256 = match fetched {
            Ok(sha256) => sha256,
            Err(CacheStop::Fetch(failure)) => panic!("{failure:?} (in order: {in_order})"),
            Err(CacheStop::Missing(message)) => panic!("{message} (in order: {in_order})"),
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
            && error.contains("needs 20 MiB"),
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
    inner.run_due();
    let done = archive(&inner, &archive_id);
    assert_eq!(done.state, ArchiveState::BackedUp);
    assert!(done.last_error.is_none());
    assert_eq!(std::fs::read(&final_path).unwrap(), data);
    assert_eq!(remote_files(&data_dir.join("remote")), remote_before);
}

/// Copies every file under `from` to the same place under `to`.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The file of part `index` on a folder destination.
fn part_file(root: &Path, part: &PartRecord) -> std::path::PathBuf {
    let object_id = crate::repo::ObjectId::parse(part.object_id.as_deref().unwrap()).unwrap();
    root.join(crate::repo::part_key(&object_id))
}

/// Two folder destinations holding the same repository: a part damaged on
/// the main one and one missing there are read from the copy (and said
/// so), a part missing only on the copy comes from the main one without a
/// word; once the copy is measured faster it is read first, and a part it
/// lacks comes from the main one, said so; a part bad on both stops the
/// fetch as damaged, naming both copies.
#[test]
fn a_part_missing_or_damaged_on_one_destination_is_read_from_the_other() {
    let Uncached {
        dir,
        inner,
        archive_id,
        data,
        ..
    } = uncached_archive();
    let (keys, _) = inner.keys().unwrap();
    let (archive, parts) = inner.archive_and_parts(&archive_id).unwrap().unwrap();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    let main_root = dir.path().join("remote");
    let copy_root = dir.path().join("copy");
    std::fs::create_dir_all(&copy_root).unwrap();
    copy_tree(&main_root, &copy_root);
    let open = |path: &Path| -> Arc<dyn Remote> {
        let settings = crate::remote::RemoteSettings::Dir {
            path: path.to_path_buf(),
        };
        Arc::from(crate::remote::open(&settings, &Default::default()).unwrap())
    };
    let fetch = |throughput: &Throughput| {
        let sources = Sources {
            sources: vec![
                Source::opened(
                    MAIN,
                    "Backblaze",
                    true,
                    vec![true; parts.len()],
                    open(&main_root),
                ),
                Source::opened(
                    "d_nas",
                    "grandpa's NAS",
                    true,
                    vec![true; parts.len()],
                    open(&copy_root),
                ),
            ],
        };
        let file = tempfile::tempfile().unwrap();
        file.set_len(archive.size).unwrap();
        let fetched = fetch_parts(&sources, throughput, keys, &file, &parts, 4, false, |_| {});
        (fetched, file)
    };
    let check = |fetched: Result<([u8; 32], Vec<Fallback>), CacheStop>, file: File| {
        let (sha256, fallbacks) = match fetched {
            Ok(fetched) => fetched,
            Err(CacheStop::Fetch(failure)) => panic!("{failure:?}"),
            Err(CacheStop::Missing(message)) => panic!("{message}"),
            Err(CacheStop::Write(err)) => panic!("{err}"),
        };
        assert_eq!(hex::encode(sha256), archive.sha256);
        let mut read = vec![0u8; data.len()];
        FileExt::read_exact_at(&file, &mut read, 0).unwrap();
        assert!(read == data, "the file is not bit-exact");
        fallbacks.iter().map(Fallback::sentence).collect::<Vec<_>>()
    };

    // Part 0 corrupted and part 1 deleted on the main destination; part 2
    // deleted on the copy.
    let corrupted = part_file(&main_root, &parts[0]);
    let mut bytes = std::fs::read(&corrupted).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&corrupted, &bytes).unwrap();
    std::fs::remove_file(part_file(&main_root, &parts[1])).unwrap();
    std::fs::remove_file(part_file(&copy_root, &parts[2])).unwrap();
    let throughput = Throughput::default();
    let (fetched, file) = fetch(&throughput);
    assert_eq!(
        check(fetched, file),
        [
            "Part 0 on Backblaze was damaged; it was read from grandpa's NAS.",
            "Part 1 was missing on Backblaze; it was read from grandpa's NAS.",
        ]
    );
    // Both were measured now; the copy far faster than the main one.
    throughput.record("d_nas", 1 << 40, std::time::Duration::from_secs(1));
    let (fetched, file) = fetch(&throughput);
    assert_eq!(
        check(fetched, file),
        ["Part 2 was missing on grandpa's NAS; it was read from Backblaze."]
    );

    // Part 3 bad on both: damaged, naming both copies; nothing was
    // written past what checked out.
    let mut bytes = std::fs::read(part_file(&copy_root, &parts[3])).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(part_file(&copy_root, &parts[3]), &bytes).unwrap();
    std::fs::remove_file(part_file(&main_root, &parts[3])).unwrap();
    match fetch(&throughput).0 {
        Err(CacheStop::Fetch(Failure::Damaged(reason))) => assert_eq!(
            reason,
            "Part 3 is damaged on grandpa's NAS and missing on Backblaze, so the archive cannot be fetched back. Nothing was deleted."
        ),
        Err(_) => panic!("another failure than part 3 damaged everywhere"),
        Ok(_) => panic!("a part bad on both destinations passed"),
    }
}
