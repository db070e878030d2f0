//! Recovery against a real folder remote holding a backup fabricated with
//! the real repo format (config, sealed parts, manifests, catalog).

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::*;
use crate::remote::dir::DirRemote;
use crate::repo::{KdfParams, ManifestPart, NONCE_LEN};
use crate::settings::Settings;
use crate::store::records::UserRecord;

const PASSPHRASE: &str = "correct horse battery staple";

struct Bucket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    remote: DirRemote,
    keys: RepoKeys,
    nonce: u8,
}

fn user(id: &str, name: &str, role: Role) -> UserRecord {
    UserRecord {
        id: id.to_string(),
        username: name.to_string(),
        password_hash: crate::accounts::hash_password(&format!("password of {name}")),
        role,
        created_at: 1_700_000_000,
        disabled: false,
        quota_bytes: None,
    }
}

impl Bucket {
    /// A bucket with a config under [`PASSPHRASE`] and a catalog of alice
    /// (admin) and bob (member).
    fn new() -> Bucket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bucket");
        let remote = DirRemote::new(&path).unwrap();
        let master_key = [42u8; 32];
        let config = RepoConfig::create(
            PASSPHRASE,
            master_key,
            [1; 16],
            [2; NONCE_LEN],
            KdfParams::new(64, 1, 1).unwrap(),
        )
        .unwrap();
        remote.put(repo::CONFIG_KEY, &config.encode()).unwrap();
        let keys = RepoKeys::from_master_key(&master_key);
        let catalog = Catalog {
            users: vec![
                user("u-alice", "Alice", Role::Admin),
                user("u-bob", "bob", Role::Member),
            ],
            settings: Settings {
                registration_open: false,
                ..Settings::default()
            },
        };
        remote
            .put(
                &repo::catalog_key(CATALOG_LABEL),
                &catalog.seal(&keys, [3; NONCE_LEN]).unwrap(),
            )
            .unwrap();
        Bucket {
            _dir: dir,
            path,
            remote,
            keys,
            nonce: 10,
        }
    }

    fn settings(&self) -> RemoteSettings {
        RemoteSettings::Dir {
            path: self.path.clone(),
        }
    }

    fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        self.nonce += 1;
        [self.nonce; NONCE_LEN]
    }

    /// Stores the parts and the manifest of an archive made of `parts`.
    fn archive(&mut self, archive_id: &str, owner: &str, parts: &[&[u8]]) -> Manifest {
        let mut manifest_parts = Vec::new();
        for part in parts {
            let sha: [u8; 32] = Sha256::digest(part).into();
            let object_id = self.keys.object_id(&sha);
            let nonce = self.next_nonce();
            let sealed = self.keys.encrypt_part(&object_id, nonce, part).unwrap();
            self.remote
                .put(&repo::part_key(&object_id), &sealed)
                .unwrap();
            manifest_parts.push(ManifestPart {
                object_id,
                length: part.len() as u64,
                sha256: hex::encode(sha),
            });
        }
        let whole: Vec<u8> = parts.concat();
        let manifest = Manifest {
            archive_id: archive_id.to_string(),
            owner: owner.to_string(),
            name: format!("{archive_id} <name> \"quoted\" 🙂"),
            original_filename: format!("{archive_id}.bin"),
            size: whole.len() as u64,
            sha256: hex::encode(Sha256::digest(&whole)),
            created: 1_700_000_100,
            path: match archive_id {
                "a1" => Some("Photos <2024>/Été".to_string()),
                // A hostile bucket: climbs out, hides a reversal and a line break.
                "a2" => Some("../../etc/\u{202E}x\n/y".to_string()),
                _ => None,
            },
            parts: manifest_parts,
        };
        let nonce = self.next_nonce();
        self.remote
            .put(
                &repo::manifest_key(archive_id),
                &manifest.seal(&self.keys, nonce).unwrap(),
            )
            .unwrap();
        manifest
    }
}

struct Appliance {
    _dir: tempfile::TempDir,
    store: Store,
}

fn appliance() -> Appliance {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 64 << 20).unwrap();
    Appliance { _dir: dir, store }
}

fn prepare(store: &Store, bucket: &Bucket, passphrase: &str) -> Result<Recovery, RecoveryError> {
    Recovery::prepare(
        store,
        bucket.settings(),
        passphrase,
        &TransferOptions::default(),
    )
}

fn recover(store: &Store, bucket: &Bucket) -> (Report, Vec<Progress>) {
    let mut seen = Vec::new();
    let report = prepare(store, bucket, PASSPHRASE)
        .unwrap()
        .run(&mut |progress| seen.push(progress))
        .unwrap();
    (report, seen)
}

/// Every table that recovery writes, as comparable text.
fn dump(store: &Store) -> Vec<String> {
    let txn = store.read().unwrap();
    let tables = &store.tables;
    let mut out = Vec::new();
    for (key, archive) in tables.archives.all(&txn).unwrap() {
        out.push(format!(
            "archive {} {:?}",
            String::from_utf8_lossy(&key),
            serde_json::to_string(&archive).unwrap()
        ));
    }
    for (key, part) in tables.parts.all(&txn).unwrap() {
        out.push(format!("part {key:?} {part:?}"));
    }
    for (key, object) in tables.objects.all(&txn).unwrap() {
        out.push(format!(
            "object {} {}",
            String::from_utf8_lossy(&key),
            object.refcount
        ));
    }
    for (key, user) in tables.users.all(&txn).unwrap() {
        out.push(format!(
            "user {} {}",
            String::from_utf8_lossy(&key),
            user.username
        ));
    }
    for (key, id) in tables.usernames.all(&txn).unwrap() {
        out.push(format!("username {} {id}", String::from_utf8_lossy(&key)));
    }
    out
}

fn is_untouched(store: &Store) -> bool {
    let txn = store.read().unwrap();
    let tables = &store.tables;
    tables.users.is_empty(&txn).unwrap()
        && tables.archives.is_empty(&txn).unwrap()
        && tables.settings.is_empty(&txn).unwrap()
        && tables.objects.is_empty(&txn).unwrap()
}

#[test]
fn rebuilds_users_settings_keys_archives_parts_and_refcounts() {
    let mut bucket = Bucket::new();
    let shared = vec![7u8; 300];
    let a = bucket.archive("a1", "alice", &[&shared, &[1u8; 100]]);
    bucket.archive("a2", "bob", &[&shared, &shared]);
    bucket.archive("a3", "bob", &[]);
    let appliance = appliance();
    let store = &appliance.store;

    let (report, seen) = recover(store, &bucket);
    assert_eq!(
        report,
        Report {
            users: 2,
            archives_total: 3,
            recovered: 3,
            already_present: 0,
            damaged: vec![],
            restored_objects: 0,
        }
    );
    let done: Vec<usize> = seen.iter().map(|p| p.done).collect();
    assert_eq!(done, vec![0, 1, 2, 3]);
    assert!(seen.iter().all(|p| p.total == 3));

    let txn = store.read().unwrap();
    let tables = &store.tables;
    let archive = tables.archives.get(&txn, b"a1").unwrap().unwrap();
    assert_eq!(
        archive.owner_id, "u-alice",
        "owner matched case-insensitively"
    );
    assert_eq!(archive.state, ArchiveState::Uncached);
    assert_eq!(archive.name, a.name);
    assert_eq!(archive.size, 400);
    assert_eq!(archive.sha256, a.sha256);
    assert_eq!((archive.parts_total, archive.parts_remote), (2, 2));
    assert!(!archive.local_copy);
    let parts = tables.parts_of(&txn, "a1").unwrap();
    let offsets: Vec<(u64, u64, bool)> = parts
        .iter()
        .map(|p| (p.offset, p.length, p.remote))
        .collect();
    assert_eq!(offsets, vec![(0, 300, true), (300, 100, true)]);
    let bob_archive = tables.archives.get(&txn, b"a2").unwrap().unwrap();
    assert_eq!(bob_archive.owner_id, "u-bob");
    // Folder paths come back, cleaned as an upload's are.
    assert_eq!(archive.path.as_deref(), Some("Photos <2024>/Été"));
    assert_eq!(bob_archive.path.as_deref(), Some("etc/x_/y"));
    let empty = tables.archives.get(&txn, b"a3").unwrap().unwrap();
    assert_eq!(empty.path, None);
    // The shared part is used three times, the other once.
    let shared_id = a.parts[0].object_id.as_str();
    let shared_object = tables.objects.get(&txn, shared_id.as_bytes()).unwrap();
    assert_eq!(shared_object.unwrap().refcount, 3);
    let other = tables
        .objects
        .get(&txn, a.parts[1].object_id.as_str().as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        (other.refcount, other.stored_length),
        (1, 100 + PART_OVERHEAD as u64)
    );
    assert_eq!(tables.objects.len(&txn).unwrap(), 2);
    drop(txn);

    // Users, settings, keys and remote settings are as the bucket says.
    let alice = crate::accounts::Accounts::new(store.clone(), std::time::Duration::from_secs(60));
    assert!(alice.login("alice", "password of Alice", "test").is_ok());
    assert!(!Settings::load(store).unwrap().registration_open);
    let (keys, config) = keys::load(store).unwrap().unwrap();
    assert_eq!(config, bucket.remote.get(repo::CONFIG_KEY).unwrap());
    assert_eq!(
        keys.object_id(&[0; 32]),
        bucket.keys.object_id(&[0; 32]),
        "the stored master key is the bucket's"
    );
    assert_eq!(
        crate::settings::remote::remote_settings(store, std::path::Path::new("/nowhere")).unwrap(),
        bucket.settings()
    );
    assert!(!interrupted(store).unwrap());
    // Nothing for the engine to do: the archives wait to be cached.
    let txn = store.read().unwrap();
    assert!(store.tables.jobs.is_empty(&txn).unwrap());
}

#[test]
fn a_wrong_passphrase_is_a_sentence_and_writes_nothing() {
    let mut bucket = Bucket::new();
    bucket.archive("a1", "alice", &[&[1u8; 10]]);
    let appliance = appliance();
    let err = prepare(&appliance.store, &bucket, "not the passphrase")
        .err()
        .expect("refused");
    assert!(matches!(
        err,
        RecoveryError::Repo(RepoError::WrongPassphrase)
    ));
    assert!(
        err.to_string().contains("passphrase does not unlock"),
        "{err}"
    );
    assert!(is_untouched(&appliance.store));
}

#[test]
fn a_data_folder_with_a_user_or_archive_is_refused() {
    let mut bucket = Bucket::new();
    bucket.archive("a1", "alice", &[&[1u8; 10]]);
    let appliance = appliance();
    let accounts =
        crate::accounts::Accounts::new(appliance.store.clone(), std::time::Duration::from_secs(60));
    accounts.setup("someone", "a long password").unwrap();
    let before = dump(&appliance.store);
    let err = prepare(&appliance.store, &bucket, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(matches!(err, RecoveryError::NotEmpty), "{err}");
    assert!(err.to_string().ends_with("empty data folder."), "{err}");
    assert_eq!(dump(&appliance.store), before);
}

#[test]
fn a_newer_format_or_a_missing_backup_is_refused_with_a_sentence() {
    let bucket = Bucket::new();
    let appliance = appliance();
    let mut config: serde_json::Value =
        serde_json::from_slice(&bucket.remote.get(repo::CONFIG_KEY).unwrap()).unwrap();
    config["format_version"] = serde_json::json!(repo::FORMAT_VERSION + 1);
    bucket
        .remote
        .put(repo::CONFIG_KEY, config.to_string().as_bytes())
        .unwrap();
    let err = prepare(&appliance.store, &bucket, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(
        matches!(err, RecoveryError::Repo(RepoError::NewerFormat { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("newer piarchive"), "{err}");

    bucket.remote.delete(repo::CONFIG_KEY).unwrap();
    let err = prepare(&appliance.store, &bucket, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(matches!(err, RecoveryError::NoBackup { .. }), "{err}");
    assert!(is_untouched(&appliance.store));
}

#[test]
fn a_bucket_without_a_catalog_is_refused() {
    let bucket = Bucket::new();
    bucket
        .remote
        .delete(&repo::catalog_key(CATALOG_LABEL))
        .unwrap();
    let appliance = appliance();
    let err = prepare(&appliance.store, &bucket, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(matches!(err, RecoveryError::NoCatalog { .. }), "{err}");
    assert!(is_untouched(&appliance.store));
}

#[test]
fn a_missing_part_makes_only_its_archive_damaged() {
    let mut bucket = Bucket::new();
    bucket.archive("a1", "alice", &[&[1u8; 10]]);
    let broken = bucket.archive("a2", "alice", &[&[2u8; 10], &[3u8; 10]]);
    bucket.archive("a3", "bob", &[&[4u8; 10]]);
    // An unreadable manifest is reported and skipped.
    bucket.remote.put("manifests/a4", b"garbage").unwrap();
    bucket
        .remote
        .delete(&repo::part_key(&broken.parts[1].object_id))
        .unwrap();
    let appliance = appliance();
    let (report, _) = recover(&appliance.store, &bucket);
    assert_eq!(report.recovered, 2);
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    let damaged = &report.damaged[0];
    assert_eq!((damaged.archive_id.as_str(), damaged.created), ("a2", true));
    assert!(
        damaged.reason.contains("part(s) 1 of 2 are missing"),
        "{damaged:?}"
    );
    assert_eq!(
        (
            report.damaged[1].archive_id.as_str(),
            report.damaged[1].created
        ),
        ("a4", false)
    );
    let txn = appliance.store.read().unwrap();
    let tables = &appliance.store.tables;
    let a2 = tables.archives.get(&txn, b"a2").unwrap().unwrap();
    assert_eq!(a2.state, ArchiveState::Damaged);
    assert_eq!(a2.last_error.as_deref(), Some(damaged.reason.as_str()));
    assert_eq!((a2.parts_total, a2.parts_remote), (2, 1));
    // The missing object is not counted; the present one is.
    assert!(tables
        .objects
        .get(&txn, broken.parts[1].object_id.as_str().as_bytes())
        .unwrap()
        .is_none());
    assert_eq!(
        tables.archives.get(&txn, b"a3").unwrap().map(|a| a.state),
        Some(ArchiveState::Uncached)
    );
    assert!(tables.archives.get(&txn, b"a4").unwrap().is_none());
}

#[test]
fn an_interrupted_recovery_resumes_without_duplicates() {
    let mut bucket = Bucket::new();
    let shared = vec![9u8; 50];
    for index in 0..5 {
        bucket.archive(&format!("a{index}"), "bob", &[&shared]);
    }
    // The reference: one uninterrupted run.
    let whole = appliance();
    recover(&whole.store, &bucket);

    // Interrupted after the users and two archives, as a kill would leave it.
    let appliance = appliance();
    let recovery = prepare(&appliance.store, &bucket, PASSPHRASE).unwrap();
    recovery.write_appliance().unwrap();
    for archive_id in &recovery.manifest_ids[..2] {
        recovery.recover_archive(archive_id).unwrap();
    }
    drop(recovery);
    assert!(interrupted(&appliance.store).unwrap());
    // Users exist now, yet the marker lets the same recovery in again ...
    let (report, _) = recover(&appliance.store, &bucket);
    assert_eq!((report.recovered, report.already_present), (3, 2));
    assert_eq!(dump(&appliance.store), dump(&whole.store));
    // ... and, once finished, the data folder counts as not empty.
    let err = prepare(&appliance.store, &bucket, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(matches!(err, RecoveryError::NotEmpty), "{err}");
}

#[test]
fn a_resumed_recovery_from_another_backup_is_refused() {
    let bucket = Bucket::new();
    let appliance = appliance();
    let recovery = prepare(&appliance.store, &bucket, PASSPHRASE).unwrap();
    recovery.write_appliance().unwrap();
    drop(recovery);
    let other = Bucket::new();
    // Same passphrase, other salt: another backup.
    let config = RepoConfig::create(
        PASSPHRASE,
        [43u8; 32],
        [5; 16],
        [6; NONCE_LEN],
        KdfParams::new(64, 1, 1).unwrap(),
    )
    .unwrap();
    other
        .remote
        .put(repo::CONFIG_KEY, &config.encode())
        .unwrap();
    let err = prepare(&appliance.store, &other, PASSPHRASE)
        .err()
        .expect("refused");
    assert!(matches!(err, RecoveryError::OtherBackup), "{err}");
}
