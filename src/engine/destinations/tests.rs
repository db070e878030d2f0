//! Destinations against real folder remotes and a real LMDB store: the
//! main remote (`<data>/remote`) and copy destinations in other folders,
//! driven one step at a time (the job queue by `run_due`, each copy by
//! `Inner::sync_once`), so every assertion sees a settled state.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::*;
use crate::archive::{Archives, NewUpload};
use crate::engine::remote_move::{ChangeError, Destination as Place};
use crate::engine::tests::noise;
use crate::engine::{keys, Inner};
use crate::recovery::Recovery;
use crate::remote::{Remote, TransferOptions};
use crate::store::copies::{copy_key, copy_object_key};
use crate::store::records::{Role, UserRecord};
use crate::store::Store;

#[path = "../../../tests/support/s3_server.rs"]
mod s3_server;

#[path = "../../../tests/support/moto.rs"]
mod moto;

const OWNER: &str = "u-owner";
const PASSPHRASE: &str = "correct horse battery staple";

#[test]
fn copy_states_read_as_the_api_words() {
    let words: Vec<&str> = [
        CopyState::Complete,
        CopyState::Uploading,
        CopyState::Waiting,
        CopyState::Unreachable,
    ]
    .iter()
    .map(|state| state.as_str())
    .collect();
    assert_eq!(words, ["complete", "uploading", "waiting", "unreachable"]);
}

/// An appliance in a temporary folder: keys, one user, the main remote in
/// `<data>/remote`, no worker threads.
struct Appliance {
    dir: tempfile::TempDir,
    store: Store,
    archives: Archives,
    inner: Inner,
}

fn appliance() -> Appliance {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let store = Store::open(&data_dir.join("db"), 64 << 20).unwrap();
    let archives = Archives::open(store.clone(), &data_dir).unwrap();
    keys::create(&store, PASSPHRASE).unwrap();
    let user = UserRecord {
        id: OWNER.into(),
        username: "owner".into(),
        password_hash: crate::accounts::hash_password("password of owner"),
        role: Role::Admin,
        created_at: 1,
        disabled: false,
        quota_bytes: None,
    };
    store
        .write(|txn, t| -> Result<(), StoreError> {
            t.users.put(txn, OWNER.as_bytes(), &user)?;
            t.usernames.put(txn, b"owner", &OWNER.to_string())?;
            crate::store::jobs::enqueue_catalog_upload(txn, t)
        })
        .unwrap();
    let inner = Inner::new(store.clone(), &data_dir);
    Appliance {
        dir,
        store,
        archives,
        inner,
    }
}

impl Appliance {
    fn main_folder(&self) -> PathBuf {
        self.dir.path().join("data/remote")
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ingest(&self, name: &str, data: &[u8]) -> ArchiveRecord {
        self.archives
            .ingest_whole(
                NewUpload {
                    owner_id: OWNER.into(),
                    name: name.into(),
                    filename: format!("{name}.bin"),
                    length: data.len() as u64,
                    relative_path: None,
                },
                &mut &data[..],
            )
            .unwrap()
    }

    fn archive(&self, archive_id: &str) -> ArchiveRecord {
        self.inner.archive_and_parts(archive_id).unwrap().unwrap().0
    }

    /// One pass of the destination's syncer; `None`: nothing left to do.
    fn sync(&self, id: &str, failures: &mut u32) -> Option<std::time::Duration> {
        self.inner.sync_once(id, &AtomicBool::new(false), failures)
    }

    fn add(&self, name: &str, path: &Path) -> Destination {
        let settings = RemoteSettings::Dir {
            path: path.to_path_buf(),
        };
        self.inner.add_destination(name, settings).unwrap().0
    }

    fn copies(&self, archive_id: &str) -> Vec<Copy> {
        let archive = self.archive(archive_id);
        let txn = self.store.read().unwrap();
        copies_of(
            &txn,
            &self.store.tables,
            &self.inner.data_dir,
            &archive,
            &self.inner.health,
        )
        .unwrap()
    }
}

/// Every file under `dir` (relative path -> inode), temporary files left out.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !relative.rsplit('/').next().unwrap().starts_with('.') {
                    out.insert(relative, entry.metadata().unwrap().ino());
                }
            }
        }
    }
    out
}

fn keys_under(dir: &Path, prefix: &str) -> BTreeSet<String> {
    files(dir)
        .into_keys()
        .filter(|key| key.starts_with(prefix))
        .collect()
}

/// A destination added after two archives were backed up: the plan counts
/// them, both wait for it (uncache refused, naming it), one pass copies
/// every part, manifest, the catalog and the config there, both are
/// `backed_up`, and a new appliance recovers from that folder alone and
/// fetches an archive back from it bit for bit.
#[test]
fn a_destination_added_later_catches_up_and_recovers_alone() {
    let app = appliance();
    let big = noise(9 * 1024 * 1024 + 5, 7);
    let small = noise(3000, 9);
    let a = app.ingest("big", &big);
    let b = app.ingest("small", &small);
    assert!(a.parts_total >= 2, "{} parts", a.parts_total);
    app.inner.run_due();
    assert_eq!(app.archive(&a.id).state, ArchiveState::BackedUp);

    let usb = app.folder("usb");
    let plan = app
        .inner
        .plan_destination(&RemoteSettings::Dir { path: usb.clone() })
        .unwrap();
    assert_eq!((plan.archives, plan.place), (2, Place::Empty));
    assert!(plan
        .message("USB disk")
        .starts_with("This copies 2 archives"));
    let dest = app.add("USB disk", &usb);
    assert_ne!(dest.id, MAIN);
    for id in [&a.id, &b.id] {
        let archive = app.archive(id);
        assert_eq!(
            (archive.state, archive.awaiting_copies),
            (ArchiveState::Uploading, true)
        );
    }
    let refused = app.archives.request_uncache(OWNER, &a.id).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("still being copied to USB disk"),
        "{refused}"
    );
    let before = app.copies(&a.id);
    assert_eq!(
        before.iter().map(|c| c.state).collect::<Vec<_>>(),
        [CopyState::Complete, CopyState::Waiting]
    );
    assert_eq!(before[1].name, "USB disk");

    assert_eq!(app.sync(&dest.id, &mut 0), None);
    for id in [&a.id, &b.id] {
        let archive = app.archive(id);
        assert_eq!(
            (archive.state, archive.awaiting_copies),
            (ArchiveState::BackedUp, false)
        );
        let copies = app.copies(id);
        assert!(copies.iter().all(|c| c.state == CopyState::Complete));
        assert_eq!(copies[1].parts_remote, archive.parts_total);
    }
    // The same repository: the same config bytes, every part and manifest,
    // and a catalog.
    let main = app.main_folder();
    assert_eq!(
        std::fs::read(usb.join("config")).unwrap(),
        std::fs::read(main.join("config")).unwrap()
    );
    for prefix in ["parts/", "manifests/"] {
        assert_eq!(keys_under(&usb, prefix), keys_under(&main, prefix));
        assert!(!keys_under(&usb, prefix).is_empty());
    }
    assert!(usb.join("catalog/appliance").is_file());

    // Recovery from the USB disk alone (the main folder is gone).
    std::fs::rename(&main, app.folder("main-away")).unwrap();
    let second = tempfile::tempdir().unwrap();
    let store = Store::open(&second.path().join("db"), 64 << 20).unwrap();
    let report = Recovery::prepare(
        &store,
        RemoteSettings::Dir { path: usb.clone() },
        PASSPHRASE,
        &TransferOptions::default(),
    )
    .unwrap()
    .run(&mut |_| {})
    .unwrap();
    assert_eq!(report.archives_total, 2);
    let archives = Archives::open(store.clone(), second.path()).unwrap();
    let inner = Inner::new(store.clone(), second.path());
    archives.request_cache(OWNER, &a.id).unwrap();
    inner.run_due();
    let fetched = std::fs::read(second.path().join("archives").join(&a.id)).unwrap();
    assert!(fetched == big, "the fetched file differs from the original");
}

/// A folder destination that is down while main completes: the archive
/// stays `uploading` (awaiting copies), uncache is refused, the problem
/// shows from the third failure as `unreachable`; once the folder is back
/// the archive is `backed_up` and can be uncached.
#[test]
fn a_destination_that_is_down_holds_backed_up_until_it_comes_back() {
    let app = appliance();
    let nas = app.folder("nas");
    let dest = app.add("Grandpa's NAS", &nas);
    assert_eq!(app.sync(&dest.id, &mut 0), None, "config and catalog");
    assert!(nas.join("config").is_file());

    // Down: the folder is away and a file stands in its place.
    let away = app.folder("nas-away");
    std::fs::rename(&nas, &away).unwrap();
    std::fs::write(&nas, b"not a folder").unwrap();
    let data = noise(5 * 1024 * 1024 + 1, 3);
    let archive = app.ingest("photos", &data);
    app.inner.run_due();
    let record = app.archive(&archive.id);
    assert_eq!(
        (record.state, record.awaiting_copies),
        (ArchiveState::Uploading, true),
        "main is complete, the NAS is not"
    );
    assert!(app.archives.request_uncache(OWNER, &archive.id).is_err());
    let mut failures = 0;
    for attempt in 1..=3 {
        assert!(
            app.sync(&dest.id, &mut failures).is_some(),
            "pass {attempt}"
        );
    }
    assert_eq!(failures, 3);
    let copies = app.copies(&archive.id);
    assert_eq!(copies[0].state, CopyState::Complete);
    assert_eq!(copies[1].state, CopyState::Unreachable);
    assert!(app.inner.health.error(&dest.id).is_some());
    assert_eq!(app.inner.health.error(MAIN), None, "main is fine");

    // Back.
    std::fs::remove_file(&nas).unwrap();
    std::fs::rename(&away, &nas).unwrap();
    assert_eq!(app.sync(&dest.id, &mut failures), None);
    assert_eq!(failures, 0);
    assert_eq!(app.inner.health.error(&dest.id), None);
    let record = app.archive(&archive.id);
    assert_eq!(
        (record.state, record.awaiting_copies),
        (ArchiveState::BackedUp, false)
    );
    app.archives.request_uncache(OWNER, &archive.id).unwrap();
    app.inner.run_due();
    assert_eq!(app.archive(&archive.id).state, ArchiveState::Uncached);
}

/// Two archives with the same content share every object: on each
/// destination the object is written once (its file is never replaced)
/// and counted twice; deleting one archive keeps every shared object on
/// both destinations and deletes only its manifest; deleting the other
/// deletes everything everywhere.
fn dedup_and_refcounts_hold_on(app: &Appliance, settings: RemoteSettings, usb: &Path) {
    let dest = app.inner.add_destination("Copy", settings).unwrap().0;
    let data = noise(6 * 1024 * 1024 + 77, 11);
    let first = app.ingest("first", &data);
    app.inner.run_due();
    assert_eq!(app.sync(&dest.id, &mut 0), None);
    assert_eq!(app.archive(&first.id).state, ArchiveState::BackedUp);
    let main = app.main_folder();
    let parts_main = files(&main);
    let parts_usb = files(usb);
    let objects = keys_under(usb, "parts/");
    assert_eq!(objects.len() as u32, first.parts_total);

    let second = app.ingest("second", &data);
    app.inner.run_due();
    assert_eq!(app.sync(&dest.id, &mut 0), None);
    assert_eq!(app.archive(&second.id).state, ArchiveState::BackedUp);
    // Sent once to each: the part files are the very same files.
    for (folder, before) in [(main.as_path(), &parts_main), (usb, &parts_usb)] {
        let now = files(folder);
        for key in before.keys().filter(|key| key.starts_with("parts/")) {
            assert_eq!(now.get(key), before.get(key), "{key} was written again");
        }
        assert_eq!(keys_under(folder, "parts/"), objects);
    }
    {
        let txn = app.store.read().unwrap();
        for key in &objects {
            let object = key.strip_prefix("parts/").unwrap();
            let object = object.rsplit('/').next().unwrap();
            let record = app
                .store
                .tables
                .copy_objects
                .get(&txn, copy_object_key(&dest.id, object).as_bytes())
                .unwrap()
                .unwrap_or_else(|| panic!("{object} not counted on the USB disk"));
            assert_eq!(record.refcount, 2);
        }
    }

    app.archives.delete(OWNER, &first.id).unwrap();
    app.inner.run_due();
    assert_eq!(app.sync(&dest.id, &mut 0), None);
    for folder in [main.as_path(), usb] {
        assert_eq!(keys_under(folder, "parts/"), objects, "shared parts stay");
        assert_eq!(
            keys_under(folder, "manifests/"),
            BTreeSet::from([format!("manifests/{}", second.id)])
        );
    }
    app.archives.delete(OWNER, &second.id).unwrap();
    app.inner.run_due();
    assert_eq!(app.sync(&dest.id, &mut 0), None);
    for folder in [main.as_path(), usb] {
        assert!(keys_under(folder, "parts/").is_empty(), "{folder:?}");
        assert!(keys_under(folder, "manifests/").is_empty(), "{folder:?}");
    }
    let txn = app.store.read().unwrap();
    let tables = &app.store.tables;
    assert!(tables.copy_objects.is_empty(&txn).unwrap());
    assert!(tables.copy_parts.is_empty(&txn).unwrap());
    assert!(tables.copies.is_empty(&txn).unwrap());
    assert!(tables.copy_deletes.is_empty(&txn).unwrap());
}

#[test]
fn dedup_and_refcounts_hold_per_destination_on_a_folder() {
    let app = appliance();
    let usb = app.folder("usb");
    dedup_and_refcounts_hold_on(&app, RemoteSettings::Dir { path: usb.clone() }, &usb);
}

/// The same on a real S3 server (s3s-fs, checking SigV4 and payload hashes).
#[test]
fn dedup_and_refcounts_hold_per_destination_on_s3() {
    let app = appliance();
    let server = s3_server::S3TestServer::start();
    let folder = server.root().join(s3_server::BUCKET).join("copy");
    dedup_and_refcounts_hold_on(&app, server.settings("copy"), &folder);
}

/// Removing a destination: the main one is refused; a copy's records go
/// in one transaction, archives that waited only for it are `backed_up`,
/// and its folder is left exactly as it was.
#[test]
fn removing_a_destination_leaves_its_folder_and_settles_archives() {
    let app = appliance();
    let usb = app.folder("usb");
    let nas = app.folder("nas");
    let usb_dest = app.add("USB disk", &usb);
    let archive = app.ingest("photos", &noise(4 * 1024 * 1024, 5));
    app.inner.run_due();
    assert_eq!(app.sync(&usb_dest.id, &mut 0), None);
    assert_eq!(app.archive(&archive.id).state, ArchiveState::BackedUp);
    let usb_files = files(&usb);

    // A second one never synced: the archive waits for it.
    let nas_dest = app.add("NAS", &nas);
    assert!(app.archive(&archive.id).awaiting_copies);
    let same = app
        .inner
        .add_destination("Again", RemoteSettings::Dir { path: usb.clone() })
        .unwrap_err();
    assert!(
        matches!(same, ChangeError::AlreadyADestination { ref name, .. } if name == "USB disk"),
        "{same}"
    );
    assert!(matches!(
        app.inner.remove_destination(MAIN),
        Err(ChangeError::Invalid(_))
    ));

    app.inner.remove_destination(&nas_dest.id).unwrap();
    let record = app.archive(&archive.id);
    assert_eq!(
        (record.state, record.awaiting_copies),
        (ArchiveState::BackedUp, false)
    );
    app.inner.remove_destination(&usb_dest.id).unwrap();
    assert_eq!(files(&usb), usb_files, "the folder is untouched");
    let txn = app.store.read().unwrap();
    let tables = &app.store.tables;
    assert!(tables.destinations.is_empty(&txn).unwrap());
    assert!(tables.copies.is_empty(&txn).unwrap());
    assert!(tables.copy_parts.is_empty(&txn).unwrap());
    assert!(tables.copy_objects.is_empty(&txn).unwrap());
    let key = copy_key(&usb_dest.id, &archive.id);
    assert!(tables.copies.get(&txn, key.as_bytes()).unwrap().is_none());
    assert_eq!(
        list(&txn, tables, &app.inner.data_dir)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        [MAIN]
    );
}

/// The running engine: a destination added through `Engine` gets its
/// syncer thread at once, which copies a new archive there by itself (the
/// archive ends `backed_up`) and writes the catalog again when the users
/// change; removing it stops the thread; a restarted engine starts one per
/// copy destination; shutdown joins them.
#[test]
fn the_syncer_threads_follow_the_destinations() {
    let app = appliance();
    let data_dir = app.inner.data_dir.clone();
    let engine = crate::engine::Engine::start(app.store.clone(), &data_dir);
    let usb = app.folder("usb");
    let (dest, _) = engine
        .add_destination("USB disk", RemoteSettings::Dir { path: usb.clone() })
        .unwrap();
    assert_eq!(engine.syncing(), std::slice::from_ref(&dest.id));
    let archive = app.ingest("photos", &noise(3 * 1024 * 1024 + 3, 21));
    engine.wake();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let settled = |wanted: &dyn Fn() -> bool| {
        while !wanted() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    settled(&|| app.archive(&archive.id).state == ArchiveState::BackedUp);
    assert_eq!(
        keys_under(&usb, "parts/"),
        keys_under(&app.main_folder(), "parts/")
    );
    let catalog_version = || {
        let txn = app.store.read().unwrap();
        let record = app
            .store
            .tables
            .destinations
            .get(&txn, dest.id.as_bytes())
            .unwrap()
            .unwrap();
        (
            record.catalog_version,
            crate::store::copies::catalog_version(&txn, &app.store.tables).unwrap(),
        )
    };
    settled(&|| {
        let (written, now) = catalog_version();
        written == now
    });
    let before = std::fs::read(usb.join("catalog/appliance")).unwrap();
    app.store
        .write(|txn, t| -> Result<(), StoreError> {
            crate::store::jobs::enqueue_catalog_upload(txn, t)
        })
        .unwrap();
    engine.wake();
    settled(&|| {
        let (written, now) = catalog_version();
        written == now
    });
    assert_ne!(
        std::fs::read(usb.join("catalog/appliance")).unwrap(),
        before,
        "sealed again"
    );
    engine.shutdown();
    assert!(engine.syncing().is_empty());

    let again = crate::engine::Engine::start(app.store.clone(), &data_dir);
    assert_eq!(again.syncing(), std::slice::from_ref(&dest.id));
    again.remove_destination(&dest.id).unwrap();
    assert!(again.syncing().is_empty());
    again.shutdown();
}

/// Object Lock on a copy destination (moto's locked bucket; the main
/// destination is a folder): every object written there is locked with the
/// copy's own retention, and the hourly chore, run with a clock three days
/// ahead, extends each one (config, catalog, manifest, parts) and the
/// copy's `protected_until`; nothing is due an hour later.
#[test]
fn object_lock_is_kept_up_on_a_copy_destination() {
    let moto = moto::MotoServer::start();
    let app = appliance();
    let lock = serde_json::json!({"mode": "GOVERNANCE", "days": 2});
    let settings: RemoteSettings =
        serde_json::from_value(moto.settings(moto::LOCKED_BUCKET, "copy", moto::Keys::Full, lock))
            .unwrap();
    let dest = app
        .inner
        .add_destination("Locked bucket", settings.clone())
        .unwrap()
        .0;
    let archive = app.ingest("photos", &noise(2 * 1024 * 1024 + 9, 4));
    app.inner.run_due();
    assert_eq!(app.sync(&dest.id, &mut 0), None);
    assert_eq!(app.archive(&archive.id).state, ArchiveState::BackedUp);

    let client = crate::remote::s3::S3Client::new(&settings, &TransferOptions::default()).unwrap();
    let keys = client.list("").unwrap();
    assert!(keys.len() >= 4, "{keys:?}");
    let locked_until = |key: &str| {
        let (mode, until) = client
            .lock_of(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} is not locked"));
        assert_eq!(mode, "GOVERNANCE", "{key}");
        crate::date::parse_rfc3339_millis(&until).unwrap() / 1000
    };
    let now = crate::ids::now_secs();
    for key in &keys {
        assert!(locked_until(key) > now + 86_400, "{key}");
    }
    let protected = |app: &Appliance| {
        let txn = app.store.read().unwrap();
        let key = copy_key(&dest.id, &archive.id);
        app.store
            .tables
            .copies
            .get(&txn, key.as_bytes())
            .unwrap()
            .unwrap()
            .protected_until
    };
    assert!(protected(&app).is_some_and(|until| until > now + 86_400));

    let engine = crate::engine::Engine::start(app.store.clone(), &app.inner.data_dir);
    let later = now + 3 * 86_400;
    let report = engine.extend_locks(later).unwrap();
    assert_eq!(report.extended, keys.len(), "every object there, once");
    let new_until = later + 2 * 86_400;
    for key in &keys {
        let until = locked_until(key);
        assert!(
            (new_until - 5..=new_until + 5).contains(&until),
            "{key}: {until}"
        );
    }
    assert_eq!(protected(&app), Some(new_until));
    assert_eq!(engine.extend_locks(later + 3600).unwrap().extended, 0);
    engine.shutdown();
}

/// The main remote cannot be moved onto a copy destination's storage.
#[test]
fn the_main_remote_cannot_move_onto_a_copy_destination() {
    let app = appliance();
    let usb = app.folder("usb");
    app.add("USB disk", &usb);
    let engine = crate::engine::Engine::start(app.store.clone(), &app.inner.data_dir);
    let refused = engine
        .plan_remote_change(&RemoteSettings::Dir { path: usb.clone() })
        .unwrap_err();
    assert!(
        matches!(refused, ChangeError::AlreadyADestination { ref name, .. } if name == "USB disk"),
        "{refused}"
    );
    assert!(refused
        .to_string()
        .contains("already the destination USB disk"));
    engine.shutdown();
}

/// An archive only in the cloud (uncached) is copied from the main
/// destination's sealed bytes, as they are; a part that was put on the
/// copy before a kill -9 (put, not committed) is found there by HEAD and
/// only counted, never sent again.
#[test]
fn an_uncached_archive_is_copied_from_main_and_a_part_put_before_a_kill_is_not_sent_again() {
    let app = appliance();
    let data = noise(7 * 1024 * 1024 + 13, 17);
    let archive = app.ingest("old photos", &data);
    app.inner.run_due();
    app.archives.request_uncache(OWNER, &archive.id).unwrap();
    app.inner.run_due();
    assert_eq!(app.archive(&archive.id).state, ArchiveState::Uncached);

    let usb = app.folder("usb");
    let dest = app.add("USB disk", &usb);
    // As if a pass had put the first part and was killed before its commit.
    let main = app.main_folder();
    let first = keys_under(&main, "parts/").into_iter().next().unwrap();
    std::fs::create_dir_all(usb.join(&first).parent().unwrap()).unwrap();
    std::fs::copy(main.join(&first), usb.join(&first)).unwrap();
    let before = files(&usb)[&first];

    assert_eq!(app.sync(&dest.id, &mut 0), None);
    assert_eq!(
        files(&usb)[&first],
        before,
        "the part put before the kill was not sent again"
    );
    let copies = app.copies(&archive.id);
    assert_eq!(copies[1].state, CopyState::Complete);
    assert_eq!(copies[1].parts_remote, archive.parts_total);
    assert_eq!(app.archive(&archive.id).state, ArchiveState::Uncached);
    for key in keys_under(&main, "parts/") {
        assert_eq!(
            std::fs::read(usb.join(&key)).unwrap(),
            std::fs::read(main.join(&key)).unwrap(),
            "{key}: copied as main sealed it"
        );
    }
    assert_eq!(
        keys_under(&usb, "manifests/"),
        keys_under(&main, "manifests/")
    );
}

/// Describing a destination opens nothing: a folder that is not there is
/// not created (a USB disk that is not plugged in stays absent).
#[test]
fn describing_a_destination_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usb/backups");
    assert_eq!(
        describe(&RemoteSettings::Dir { path: path.clone() }),
        format!("folder {}", path.display())
    );
    assert!(!dir.path().join("usb").exists());
}
