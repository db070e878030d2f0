//! Disaster recovery end to end: appliance A backs up archives of alice and
//! bob to a real S3 server (s3s-fs, SigV4-checked) or a folder; a new,
//! empty appliance is rebuilt from the bucket with the recovery passphrase,
//! through `piarchive recover` and through the setup page's API; alice and
//! bob log in with their old passwords and get their files back bit-exact.
//! Plus the faults: a wrong passphrase, a data folder that is not empty, a
//! newer format, a missing part, and `kill -9` half-way.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use piarchive::remote::{self, Remote, RemoteSettings};
use piarchive::repo::{self, Manifest, RepoConfig, RepoKeys};
use serde_json::{json, Value};

use crate::remote_engine::{archive, wait_state, LIMIT};
use crate::support::s3_server::S3TestServer;
use crate::support::{files_under, random_bytes, sha256_hex, wait_until, Client, TestServer};

pub(crate) const PASSPHRASE: &str = "our family passphrase 2026";

/// An archive as uploaded on appliance A.
pub(crate) struct Original {
    pub(crate) owner: &'static str,
    pub(crate) id: String,
    pub(crate) data: Vec<u8>,
    /// The folder a folder upload gave it (`path` in the archive's JSON).
    pub(crate) path: Option<&'static str>,
}

/// The folder alice's tax ledger is uploaded in, as a file of an uploaded
/// folder (tus `relative_path`), and the `path` it gets.
const TAXES_RELATIVE_PATH: &str = "Documents/Taxes <2025> & \"Q1\" 🙂/taxes.csv";
const TAXES_PATH: &str = "Documents/Taxes <2025> & \"Q1\" 🙂";

/// Uploads `data` as a file of an uploaded folder, at `relative_path`, by
/// tus in one `PATCH`, as the upload page does; the new archive's id.
fn tus_upload_in_folder(client: &Client, name: &str, relative_path: &str, data: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let metadata = format!(
        "name {},filename {},relative_path {}",
        b64(name),
        b64(&format!("{name}.csv")),
        b64(relative_path)
    );
    let resp = client.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &data.len().to_string()),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let location = resp.header("Location").unwrap().to_string();
    let resp = client.request(
        "PATCH",
        &location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        Some(data),
    );
    assert_eq!(resp.status, 204, "{}", resp.text());
    resp.header("Archive-Id")
        .expect("the last PATCH names the archive")
        .to_string()
}

fn password_of(user: &str) -> String {
    format!("{user}'s old password")
}

pub(crate) fn login(server: &TestServer, user: &str) -> Client {
    let mut client = server.client();
    let resp = client.login(user, &password_of(user));
    assert_eq!(resp.status, 200, "{user}: {}", resp.text());
    client
}

pub(crate) fn open_remote(settings: &Value) -> Box<dyn Remote> {
    let settings: RemoteSettings = serde_json::from_value(settings.clone()).unwrap();
    remote::open(&settings, &Default::default()).unwrap()
}

fn unlock(remote: &dyn Remote) -> RepoKeys {
    let config = RepoConfig::decode(&remote.get(repo::CONFIG_KEY).unwrap()).unwrap();
    config.unlock(PASSPHRASE).unwrap()
}

/// The usernames in the bucket's catalog, or none while it is not there.
pub(crate) fn catalog_users(remote: &dyn Remote) -> Vec<String> {
    let Ok(bytes) = remote.get("catalog/appliance") else {
        return Vec::new();
    };
    let catalog = piarchive::repo::catalog::Catalog::open(&unlock(remote), &bytes).unwrap();
    catalog.users.into_iter().map(|u| u.username).collect()
}

/// Appliance A: alice (admin, set up with [`PASSPHRASE`]) and bob (member)
/// each back up two archives to `remote_json` (alice's ledger as a file of
/// an uploaded folder, at [`TAXES_RELATIVE_PATH`]); registration is then
/// closed.
/// Returns once every archive is `backed_up` and the catalog in the bucket
/// lists both users.
pub(crate) fn appliance_a(remote_json: &Value) -> (TestServer, Vec<Original>) {
    let server = TestServer::start();
    let mut alice = server.client();
    let resp = alice.post_json(
        "/api/v1/setup",
        &json!({"username": "alice", "password": password_of("alice"),
                "recovery_passphrase": PASSPHRASE}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    alice.adopt_session(&resp);
    let resp = alice.send_json("PUT", "/api/v1/admin/remote", remote_json);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut settings = alice.get("/api/v1/admin/settings").json();
    settings["registration_open"] = json!(true);
    let resp = alice.send_json("PUT", "/api/v1/admin/settings", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "bob", "password": password_of("bob")}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let mut settings = alice.get("/api/v1/admin/settings").json();
    settings["registration_open"] = json!(false);
    let resp = alice.send_json("PUT", "/api/v1/admin/settings", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let bob = login(&server, "bob");

    let mut originals = Vec::new();
    for (owner, client, name, size, seed) in [
        ("alice", &alice, "Photos <2025> \"summer\" 🙂", 2_600_000, 1),
        ("alice", &alice, "taxes", 70_000, 2),
        ("bob", &bob, "bob's music & more", 1_900_000, 3),
        ("bob", &bob, "empty", 0, 4),
    ] {
        // The tax ledger compresses, so recovery reads a compressed part
        // too; the others are random, stored as they are.
        let data = if name == "taxes" {
            ledger(size)
        } else {
            random_bytes(size, seed)
        };
        let (id, path) = if name == "taxes" {
            let id = tus_upload_in_folder(client, name, TAXES_RELATIVE_PATH, &data);
            (id, Some(TAXES_PATH))
        } else {
            let archive = client.upload_ok(name, &data);
            (archive["id"].as_str().unwrap().to_string(), None)
        };
        assert_eq!(archive(client, &id)["path"], json!(path), "{name}");
        originals.push(Original {
            owner,
            id,
            data,
            path,
        });
    }
    for original in &originals {
        let client = if original.owner == "alice" {
            &alice
        } else {
            &bob
        };
        wait_state(client, &original.id, "backed_up");
    }
    let remote = open_remote(remote_json);
    wait_until(LIMIT, || {
        let users = catalog_users(remote.as_ref());
        users.contains(&"alice".to_string()) && users.contains(&"bob".to_string())
    });
    (server, originals)
}

/// `size` bytes of a plain-text ledger: compressible, as documents are.
fn ledger(size: usize) -> Vec<u8> {
    let mut text = String::with_capacity(size + 64);
    for line in 0.. {
        if text.len() >= size {
            break;
        }
        text.push_str(&format!(
            "2025-{:02}-{:02};receipt {line};{}.{:02} EUR\n",
            line % 12 + 1,
            line % 28 + 1,
            line * 7 % 300,
            line % 100
        ));
    }
    text.truncate(size);
    text.into_bytes()
}

pub(crate) fn write_remote_file(dir: &Path, remote_json: &Value) -> PathBuf {
    let path = dir.join("remote.json");
    std::fs::write(&path, remote_json.to_string()).unwrap();
    path
}

/// Runs `piarchive recover` with `passphrase` on stdin; returns (success,
/// stdout, stderr).
fn recover_cli(data_dir: &Path, remote_file: &Path, passphrase: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .arg("recover")
        .arg("--data")
        .arg(data_dir)
        .arg("--remote")
        .arg(remote_file)
        .env_remove("PIARCHIVE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start piarchive recover");
    // A refused folder ends the command before it reads the passphrase.
    let _ = writeln!(child.stdin.take().unwrap(), "{passphrase}");
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An empty appliance rebuilt from the bucket by the CLI, then served.
pub(crate) fn recovered_by_cli(remote_json: &Value, archives: usize) -> TestServer {
    let mut server = TestServer::start();
    server.kill9();
    let remote_file = write_remote_file(server.dir.path(), remote_json);
    let (ok, stdout, stderr) = recover_cli(&server.data_dir(), &remote_file, PASSPHRASE);
    assert!(ok, "recover failed: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{archives}/{archives} archives")),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSPHRASE) && !stderr.contains(PASSPHRASE));
    server.restart();
    server
}

/// Polls the restore progress until it is no longer running.
fn wait_restore(client: &Client) -> Value {
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        let resp = client.get("/api/v1/setup/restore");
        assert_eq!(resp.status, 200, "{}", resp.text());
        last = resp.json();
        last["state"] != "running"
    });
    last
}

/// An empty appliance rebuilt from the bucket through the setup page's API.
fn recovered_by_api(remote_json: &Value, archives: usize) -> TestServer {
    let server = TestServer::start();
    let client = server.client();
    assert_eq!(client.get("/api/v1/setup").json()["needed"], true);
    let setup_page = client.get("/setup").text();
    assert!(setup_page.contains("Restore from an existing backup"));
    let mut body = remote_json.clone();
    body["recovery_passphrase"] = json!(PASSPHRASE);
    let resp = client.post_json("/api/v1/setup/restore", &body);
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert!(!resp.text().contains(PASSPHRASE));
    let status = wait_restore(&client);
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(status["done"], archives);
    assert_eq!(status["total"], archives);
    assert_eq!(status["report"]["users"], 2, "{status}");
    let page = client.get("/setup/restore").text();
    assert!(
        page.contains(&format!("{archives}/{archives} archives")) && page.contains("progressbar"),
        "{page}"
    );
    assert_eq!(client.get("/api/v1/setup").json()["needed"], false);
    server
}

/// alice and bob log in with their old passwords, see their own archives
/// `uncached` in their folders, and cache one each back bit-exact;
/// settings came back.
pub(crate) fn check_recovered(server: &TestServer, originals: &[Original]) {
    let alice = login(server, "alice");
    let bob = login(server, "bob");
    assert_eq!(
        alice.get("/api/v1/admin/settings").json()["registration_open"],
        false
    );
    let resp = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "mallory", "password": "mallory password"}),
    );
    assert_eq!(resp.status, 403, "registration stays closed");
    for (user, client) in [("alice", &alice), ("bob", &bob)] {
        let list = client.get("/api/v1/archives").json();
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        let mut expected: Vec<String> = originals
            .iter()
            .filter(|o| o.owner == user)
            .map(|o| o.id.clone())
            .collect();
        ids.sort();
        expected.sort();
        assert_eq!(ids, expected, "{user}'s archives");
        for archive in list.as_array().unwrap() {
            assert_eq!(archive["state"], "uncached", "{archive}");
            let original = originals.iter().find(|o| o.id == archive["id"]).unwrap();
            assert_eq!(archive["path"], json!(original.path), "{archive}");
        }
    }
    for original in originals.iter().filter(|o| o.data.len() > 100_000) {
        let client = if original.owner == "alice" {
            &alice
        } else {
            &bob
        };
        let before = archive(client, &original.id);
        assert_eq!(before["sha256"], sha256_hex(&original.data));
        let resp = client.request(
            "POST",
            &format!("/api/v1/archives/{}/cache", original.id),
            &[],
            None,
        );
        assert_eq!(resp.status, 202, "{}", resp.text());
        wait_state(client, &original.id, "backed_up");
        let resp = client.get(&format!("/api/v1/archives/{}/content", original.id));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(sha256_hex(&resp.body), sha256_hex(&original.data));
        assert!(resp.body == original.data, "the cached file differs");
    }
}

#[test]
fn recovers_from_s3_by_cli_and_by_the_setup_page() {
    let s3 = S3TestServer::start();
    let remote_json = serde_json::to_value(s3.settings("family")).unwrap();
    let (_a, originals) = appliance_a(&remote_json);
    let by_cli = recovered_by_cli(&remote_json, originals.len());
    check_recovered(&by_cli, &originals);
    let by_api = recovered_by_api(&remote_json, originals.len());
    check_recovered(&by_api, &originals);
}

#[test]
fn recovers_from_a_folder_and_reports_faults() {
    let bucket = tempfile::tempdir().unwrap();
    let remote_json = json!({"kind": "dir", "path": bucket.path().join("backup")});
    let (mut a, originals) = appliance_a(&remote_json);
    let by_api = recovered_by_api(&remote_json, originals.len());
    check_recovered(&by_api, &originals);
    let by_cli = recovered_by_cli(&remote_json, originals.len());
    check_recovered(&by_cli, &originals);

    // A data folder with users is refused with a sentence, by both.
    let client = a.client();
    let mut body = remote_json.clone();
    body["recovery_passphrase"] = json!(PASSPHRASE);
    let resp = client.post_json("/api/v1/setup/restore", &body);
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.message().contains("empty data folder"));
    let remote_file = write_remote_file(a.dir.path(), &remote_json);
    // While A serves, its folder is in use; once stopped, it has users.
    let (ok, _, stderr) = recover_cli(&a.data_dir(), &remote_file, PASSPHRASE);
    assert!(!ok);
    assert!(
        stderr.contains("in use by another piarchive server"),
        "{stderr}"
    );
    a.kill9();
    let (ok, _, stderr) = recover_cli(&a.data_dir(), &remote_file, PASSPHRASE);
    assert!(!ok);
    assert!(stderr.contains("empty data folder"), "{stderr}");

    // A wrong passphrase is a sentence and writes nothing: the same server
    // then recovers with the right one.
    let fresh = TestServer::start();
    let client = fresh.client();
    let mut wrong = remote_json.clone();
    wrong["recovery_passphrase"] = json!("not our passphrase");
    let resp = client.post_json("/api/v1/setup/restore", &wrong);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "wrong_passphrase");
    assert!(resp.message().contains("passphrase does not unlock"));
    assert_eq!(client.get("/api/v1/setup").json()["needed"], true);
    assert_eq!(client.get("/api/v1/setup/restore").json()["state"], "idle");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = recover_cli(&empty.path().join("data"), &remote_file, "wrong");
    assert!(!ok);
    assert!(stderr.contains("passphrase does not unlock"), "{stderr}");
    let resp = client.post_json("/api/v1/setup/restore", &body);
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(wait_restore(&client)["state"], "finished");

    // A part missing from the bucket: that archive is damaged, with the
    // reason; the others recover.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&bucket.path().join("backup"), copy.path());
    let copy_json = json!({"kind": "dir", "path": copy.path()});
    let copy_remote = open_remote(&copy_json);
    let victim = &originals[0];
    let manifest = Manifest::open(
        &unlock(copy_remote.as_ref()),
        &victim.id,
        &copy_remote.get(&repo::manifest_key(&victim.id)).unwrap(),
    )
    .unwrap();
    copy_remote
        .delete(&repo::part_key(&manifest.parts[0].object_id))
        .unwrap();
    let mut damaged_server = TestServer::start();
    damaged_server.kill9();
    let copy_file = write_remote_file(damaged_server.dir.path(), &copy_json);
    let (ok, stdout, stderr) = recover_cli(&damaged_server.data_dir(), &copy_file, PASSPHRASE);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("damaged {}: ", victim.id)) && stdout.contains("missing"),
        "{stdout}"
    );
    damaged_server.restart();
    let alice = login(&damaged_server, "alice");
    let damaged = archive(&alice, &victim.id);
    assert_eq!(damaged["state"], "damaged", "{damaged}");
    assert!(
        damaged["last_error"].as_str().unwrap().contains("missing"),
        "{damaged}"
    );
    assert_eq!(archive(&alice, &originals[1].id)["state"], "uncached");

    // A bucket written by a newer piarchive is refused with a sentence.
    let mut config: Value =
        serde_json::from_slice(&copy_remote.get(repo::CONFIG_KEY).unwrap()).unwrap();
    config["format_version"] = json!(repo::FORMAT_VERSION + 1);
    copy_remote
        .put(repo::CONFIG_KEY, config.to_string().as_bytes())
        .unwrap();
    let newer = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = recover_cli(&newer.path().join("data"), &copy_file, PASSPHRASE);
    assert!(!ok);
    assert!(stderr.contains("written by a newer piarchive"), "{stderr}");
    let fresh = TestServer::start();
    let mut body = copy_json.clone();
    body["recovery_passphrase"] = json!(PASSPHRASE);
    let resp = fresh.client().post_json("/api/v1/setup/restore", &body);
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert_eq!(resp.json()["error"], "newer_format");
    assert!(resp.message().contains("newer piarchive"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A folder bucket with `count` one-part archives of bob, written with the
/// real repo format (the library's own sealing), every fifth part shared.
fn fabricated_bucket(path: &Path, count: usize) {
    use piarchive::repo::catalog::Catalog;
    use piarchive::store::records::{Role, UserRecord};
    let remote = remote::dir::DirRemote::new(path).unwrap();
    let master_key: [u8; 32] = repo::random_bytes().unwrap();
    let config = RepoConfig::create(
        PASSPHRASE,
        master_key,
        repo::random_bytes().unwrap(),
        repo::random_bytes().unwrap(),
        repo::KdfParams::new(64, 1, 1).unwrap(),
    )
    .unwrap();
    remote.put(repo::CONFIG_KEY, &config.encode()).unwrap();
    let keys = RepoKeys::from_master_key(&master_key);
    let catalog = Catalog {
        users: vec![UserRecord {
            id: "bob-id".into(),
            username: "bob".into(),
            password_hash: piarchive::accounts::hash_password(&password_of("bob")),
            role: Role::Admin,
            created_at: 1,
            disabled: false,
            quota_bytes: None,
        }],
        settings: Default::default(),
    };
    let sealed = catalog.seal(&keys, repo::random_bytes().unwrap()).unwrap();
    remote.put("catalog/appliance", &sealed).unwrap();
    for index in 0..count {
        let data = format!("part {}", if index % 5 == 0 { 0 } else { index });
        let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(data.as_bytes()).into();
        let object_id = keys.object_id(&sha);
        let sealed = keys
            .encrypt_part(&object_id, repo::random_bytes().unwrap(), data.as_bytes())
            .unwrap();
        remote.put(&repo::part_key(&object_id), &sealed).unwrap();
        let archive_id = format!("{index:08}");
        let manifest = Manifest {
            archive_id: archive_id.clone(),
            owner: "bob".into(),
            name: format!("archive {index}"),
            original_filename: "file.txt".into(),
            size: data.len() as u64,
            sha256: hex::encode(sha),
            created: 1_700_000_000,
            path: None,
            parts: vec![repo::ManifestPart {
                object_id,
                length: data.len() as u64,
                sha256: hex::encode(sha),
            }],
        };
        let sealed = manifest.seal(&keys, repo::random_bytes().unwrap()).unwrap();
        remote
            .put(&repo::manifest_key(&archive_id), &sealed)
            .unwrap();
    }
}

#[test]
fn a_recovery_killed_half_way_finishes_when_run_again_without_duplicates() {
    const COUNT: usize = 600;
    let bucket = tempfile::tempdir().unwrap();
    fabricated_bucket(bucket.path(), COUNT);
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let remote_file =
        write_remote_file(work.path(), &json!({"kind": "dir", "path": bucket.path()}));

    let mut child = Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .arg("recover")
        .arg("--data")
        .arg(&data_dir)
        .arg("--remote")
        .arg(&remote_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut killed_at = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Some((done, _)) = line
            .strip_suffix(" archives")
            .and_then(|progress| progress.split_once('/'))
        else {
            continue;
        };
        let done: usize = done.parse().unwrap();
        if done > 0 {
            child.kill().unwrap(); // SIGKILL
            killed_at = Some(done);
            break;
        }
    }
    child.wait().unwrap();
    let killed_at = killed_at.expect("recover printed progress");
    assert!(killed_at < COUNT, "killed only after the end");
    {
        let store = piarchive::store::Store::open(&data_dir.join("db"), 64 << 20).unwrap();
        assert!(
            piarchive::recovery::interrupted(&store).unwrap(),
            "the kill left the recovery unfinished"
        );
    }

    let (ok, stdout, stderr) = recover_cli(&data_dir, &remote_file, PASSPHRASE);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{COUNT}/{COUNT} archives")),
        "{stdout}"
    );
    let store = piarchive::store::Store::open(&data_dir.join("db"), 64 << 20).unwrap();
    assert!(!piarchive::recovery::interrupted(&store).unwrap());
    let txn = store.read().unwrap();
    let tables = &store.tables;
    assert_eq!(tables.archives.len(&txn).unwrap(), COUNT as u64);
    assert_eq!(tables.parts.len(&txn).unwrap(), COUNT as u64);
    assert_eq!(tables.users.len(&txn).unwrap(), 1);
    // Every fifth archive shares one object: refcounts count each part once.
    let objects = tables.objects.all(&txn).unwrap();
    assert_eq!(objects.len(), COUNT - COUNT / 5 + 1);
    let total: u64 = objects.iter().map(|(_, o)| o.refcount).sum();
    assert_eq!(total, COUNT as u64);
    let shared = objects.iter().map(|(_, o)| o.refcount).max().unwrap();
    assert_eq!(shared, (COUNT / 5) as u64);
}

#[test]
fn a_recovered_appliance_moves_its_backups_to_new_storage_and_they_come_back() {
    let s3 = S3TestServer::start();
    let remote_json = serde_json::to_value(s3.settings("family")).unwrap();
    let (a, originals) = appliance_a(&remote_json);
    drop(a);
    let recovered = recovered_by_cli(&remote_json, originals.len());
    let alice = login(&recovered, "alice");
    // A recovered appliance knows each part's plaintext SHA-256 but not the
    // ciphertext's: the move checks each part by decrypting it.
    let resp = alice.send_json(
        "PUT",
        "/api/v1/admin/remote",
        &serde_json::to_value(s3.settings("moved-after-recovery")).unwrap(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["change"]["destination"],
        "empty",
        "{}",
        resp.text()
    );
    crate::remote_move::wait_moved(&alice);
    let moved = s3.object_path("moved-after-recovery");
    assert_eq!(
        files_under(&moved.join("parts")).len(),
        files_under(&s3.object_path("family").join("parts")).len()
    );
    check_recovered(&recovered, &originals);

    // The move wrote every manifest anew, folder paths kept: a box
    // recovered from the new storage has its archives in their folders.
    let moved_json = serde_json::to_value(s3.settings("moved-after-recovery")).unwrap();
    let moved_remote = open_remote(&moved_json);
    wait_until(LIMIT, || {
        files_under(&moved.join("manifests")).len() == originals.len()
            && catalog_users(moved_remote.as_ref()).len() == 2
    });
    drop(recovered);
    let again = recovered_by_cli(&moved_json, originals.len());
    check_recovered(&again, &originals);
}
