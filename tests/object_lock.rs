//! S3 Object Lock and point-in-time recovery against moto's S3 server
//! (tests/support/moto.rs), which checks SigV4 and IAM policies, enforces
//! Object Lock (a locked version cannot be deleted) and keeps versions.
//!
//! Covered: a bucket without Object Lock and bad lock settings refused with
//! sentences, nothing saved; every object written (parts, manifest, config,
//! catalog) locked with the right mode and date; the lock chore extending
//! retention with a moved clock; deletes of locked objects and deletes by a
//! key without delete rights waiting without failing anything, with the
//! dashboard's sentence; the attack (the box's own keys delete every
//! object and overwrite `config`) and `recover --as-of` on a fresh
//! appliance with every archive and user back bit-exact; bad `--as-of`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use piarchive::remote::s3::S3Client;
use piarchive::remote::{ErrorKind, Remote, RemoteSettings};
use serde_json::{json, Value};

use crate::recovery::{appliance_a, check_recovered, write_remote_file, PASSPHRASE};
use crate::remote_engine::{wait_state, LIMIT};
use crate::support::moto::{Keys, MotoServer, LOCKED_BUCKET, PLAIN_BUCKET};
use crate::support::{random_bytes, wait_until, TestServer};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn client(settings: &Value) -> S3Client {
    let settings: RemoteSettings = serde_json::from_value(settings.clone()).unwrap();
    S3Client::new(&settings, &Default::default()).unwrap()
}

fn governance(days: i64) -> Value {
    json!({"mode": "GOVERNANCE", "days": days})
}

/// Every object under the prefix is locked in `mode` until a date within
/// `[from, to]` (Unix seconds). Returns how many objects there are.
fn assert_all_locked(remote: &S3Client, mode: &str, from: i64, to: i64) -> usize {
    let keys = remote.list("").unwrap();
    for key in &keys {
        let (got_mode, until) = remote
            .lock_of(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} is not locked"));
        assert_eq!(got_mode, mode, "{key}");
        let until = piarchive::date::parse_rfc3339_millis(&until).unwrap() / 1000;
        assert!(
            (from..=to).contains(&until),
            "{key} locked until {until}, expected {from}..={to}"
        );
    }
    keys.len()
}

#[test]
fn refuses_a_bucket_without_lock_and_bad_settings_then_locks_every_object() {
    let moto = MotoServer::start();
    // moto checks SigV4: a wrong secret is refused.
    let mut wrong = moto.settings(LOCKED_BUCKET, "p", Keys::Full, Value::Null);
    wrong["secret_access_key"] = json!("not the secret");
    let error = client(&wrong).get("config").unwrap_err();
    assert!(error.message.contains("key id and secret"), "{error}");
    let server = TestServer::start();
    let admin = server.admin();
    let before = admin.get("/api/v1/admin/remote").json();
    for (settings, code, needle) in [
        (
            moto.settings(PLAIN_BUCKET, "p", Keys::Full, governance(7)),
            "object_lock_unsupported",
            "does not have Object Lock turned on",
        ),
        (
            moto.settings(LOCKED_BUCKET, "p", Keys::Full, governance(0)),
            "invalid",
            "between 1 and 36500 days",
        ),
        (
            moto.settings(LOCKED_BUCKET, "p", Keys::Full, governance(36_501)),
            "invalid",
            "not 36501",
        ),
        (
            moto.settings(
                LOCKED_BUCKET,
                "p",
                Keys::Full,
                json!({"mode": "FOREVER", "days": 7}),
            ),
            "invalid",
            "choose GOVERNANCE or COMPLIANCE",
        ),
    ] {
        let resp = admin.send_json("PUT", "/api/v1/admin/remote", &settings);
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json()["error"], code, "{}", resp.text());
        assert!(resp.message().contains(needle), "{}", resp.message());
        assert_eq!(admin.get("/api/v1/admin/remote").json(), before);
    }
    assert!(
        client(&moto.settings(PLAIN_BUCKET, "p", Keys::Full, Value::Null))
            .list("")
            .unwrap()
            .is_empty(),
        "nothing was written"
    );

    let settings = moto.settings(LOCKED_BUCKET, "p", Keys::Full, governance(2));
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["object_lock"], governance(2));
    let start = now_secs();
    let id = admin.upload_ok("wedding video", &random_bytes(3_000_000, 7))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_state(&admin, &id, "backed_up");
    let remote = client(&settings);
    wait_until(LIMIT, || {
        remote.head("catalog/appliance").unwrap().is_some()
    });
    let end = now_secs();
    let two_days = 2 * 86_400;
    let objects = assert_all_locked(
        &remote,
        "GOVERNANCE",
        start + two_days - 5,
        end + two_days + 5,
    );
    assert!(
        objects >= 4,
        "config, catalog, manifest and parts: {objects}"
    );
    let protected = done["protected_until"].as_str().unwrap();
    let protected = piarchive::date::parse_rfc3339_millis(protected).unwrap() / 1000;
    assert!((start + two_days - 5..=end + two_days + 5).contains(&protected));
    let page = admin.get(&format!("/archives/{id}")).text();
    assert!(page.contains("Protected until"), "{page}");
    // The plain client (no lock setting) deletes a key: only a delete
    // marker; the locked version itself cannot be deleted.
    let locked = client(&settings);
    let part = remote.list("parts/").unwrap().remove(0);
    let error = locked.delete(&part).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Refused, "{error}");
    assert!(error.message.contains("Object Lock"), "{error}");
}

#[test]
fn the_lock_chore_extends_objects_in_use_with_a_moved_clock() {
    let moto = MotoServer::start();
    let mut server = TestServer::start();
    let admin = server.admin();
    let settings = moto.settings(LOCKED_BUCKET, "chore", Keys::Full, governance(2));
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = admin.upload_ok("photos", &random_bytes(2_500_000, 9))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &id, "backed_up");
    let remote = client(&settings);
    wait_until(LIMIT, || {
        remote.head("catalog/appliance").unwrap().is_some()
    });
    server.kill9();

    // The chore, run by this test on the appliance's data with a clock
    // three days ahead: every object is then short of `days - 1` and is
    // extended to that time + 2 days.
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30).unwrap();
    let engine = piarchive::engine::Engine::start(store.clone(), &server.data_dir());
    let later = now_secs() + 3 * 86_400;
    let report = engine.extend_locks(later).unwrap();
    let objects = remote.list("").unwrap().len();
    assert_eq!(report.extended, objects, "every object extended once");
    let new_until = later + 2 * 86_400;
    assert_all_locked(&remote, "GOVERNANCE", new_until, new_until);
    let txn = store.read().unwrap();
    let record = store
        .tables
        .archives
        .get(&txn, id.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(record.protected_until, Some(new_until));
    drop(txn);
    // Nothing is due an hour later.
    assert_eq!(engine.extend_locks(later + 3600).unwrap().extended, 0);
    engine.shutdown();
}

/// Uploads two archives, deletes one: the action succeeds at once, its
/// remote objects are refused, the dashboard says why in words, and a new
/// upload is backed up meanwhile.
fn deletes_wait(settings: &Value, needle: &str) {
    let server = TestServer::start();
    let admin = server.admin();
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let doomed = admin.upload_ok("doomed", &random_bytes(1_500_000, 1))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &doomed, "backed_up");
    let resp = admin.delete(&format!("/api/v1/archives/{doomed}?purge=true"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    let mut page = String::new();
    wait_until(LIMIT, || {
        page = admin.get("/admin").text();
        page.contains("Storage is not freed yet")
    });
    assert!(page.contains(needle), "{page}");
    let kept = admin.upload_ok("kept", &random_bytes(1_200_000, 2))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = wait_state(&admin, &kept, "backed_up");
    assert_eq!(kept["last_error"], Value::Null);
    let list = admin.get("/api/v1/archives").json();
    assert!(list.as_array().unwrap().iter().all(|a| a["id"] != doomed));
    // The refusal is not shown as a broken remote.
    assert!(page.contains("Reachable."), "{page}");
}

#[test]
fn deletes_of_locked_objects_wait_and_the_dashboard_says_why() {
    let moto = MotoServer::start();
    deletes_wait(
        &moto.settings(LOCKED_BUCKET, "wait", Keys::Full, governance(1)),
        "still under Object Lock",
    );
}

#[test]
fn a_key_without_delete_rights_never_fails_a_delete() {
    let moto = MotoServer::start();
    deletes_wait(
        &moto.settings(PLAIN_BUCKET, "nodelete", Keys::NoDelete, Value::Null),
        "the access key may not delete",
    );
}

/// Runs `piarchive recover` (with `--as-of` when given); (success, stdout, stderr).
fn recover_as_of(data_dir: &Path, remote_file: &Path, as_of: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .args(["recover", "--data"])
        .arg(data_dir)
        .arg("--remote")
        .arg(remote_file)
        .args(["--as-of", as_of])
        .env_remove("PIARCHIVE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start piarchive recover");
    // A refused time ends the command before it reads the passphrase.
    let _ = writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}");
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn after_the_attack_recovery_as_of_brings_everything_back() {
    let moto = MotoServer::start();
    let remote_json = moto.settings(LOCKED_BUCKET, "family", Keys::Full, governance(1));
    let (mut a, originals) = appliance_a(&remote_json);
    let as_of = now_secs();
    a.kill9();
    // Every write of the attack lands in a later second than `as_of`.
    wait_until(LIMIT, || now_secs() > as_of);

    // The attack, with the box's own keys: a client that deletes versions
    // is refused (locked); plain deletes leave delete markers; `config` is
    // overwritten.
    let attacker_settings = {
        let mut settings = remote_json.clone();
        settings["object_lock"] = Value::Null;
        settings
    };
    let attacker = client(&attacker_settings);
    let keys = attacker.list("").unwrap();
    assert!(keys.len() > 6, "{keys:?}");
    let error = client(&remote_json).delete(&keys[0]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Refused, "{error}");
    for key in &keys {
        attacker.delete(key).unwrap();
    }
    attacker.put("config", b"ransom note").unwrap();
    assert_eq!(attacker.list("").unwrap(), vec!["config".to_owned()]);

    // A plain recovery finds no backup any more.
    let fresh = TestServer::start();
    let mut fresh = fresh;
    fresh.kill9();
    let remote_file = write_remote_file(fresh.dir.path(), &remote_json);
    let time = piarchive::date::rfc3339(as_of);

    // Bad times: sentences, nothing written.
    for (bad, needle) in [
        ("yesterday".to_owned(), "RFC 3339"),
        (piarchive::date::rfc3339(now_secs() + 3600), "in the future"),
        ("2020-01-01T00:00:00Z".to_owned(), "did not exist yet"),
    ] {
        let (ok, stdout, stderr) = recover_as_of(&fresh.data_dir(), &remote_file, &bad);
        assert!(!ok, "{bad}: {stdout}");
        assert!(stderr.contains(needle), "{bad}: {stderr}");
    }
    let (ok, stdout, stderr) = recover_as_of(&fresh.data_dir(), &remote_file, &time);
    assert!(ok, "recover failed: {stdout}\n{stderr}");
    let total = originals.len();
    assert!(
        stdout.contains(&format!("{total}/{total} archives")),
        "{stdout}"
    );
    assert!(stdout.contains("made"), "{stdout}");
    fresh.restart();
    check_recovered(&fresh, &originals);
}

#[test]
fn as_of_before_anything_was_written_leaves_the_folder_empty() {
    let moto = MotoServer::start();
    let remote_json = moto.settings(LOCKED_BUCKET, "early", Keys::Full, governance(1));
    let mut server = TestServer::start();
    let admin = server.admin();
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", &remote_json);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = admin.upload_ok("x", &random_bytes(10_000, 3))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &id, "backed_up");
    server.kill9();
    let mut fresh = TestServer::start();
    fresh.kill9();
    let remote_file = write_remote_file(fresh.dir.path(), &remote_json);
    let (ok, _, stderr) = recover_as_of(&fresh.data_dir(), &remote_file, "2020-01-01T00:00:00Z");
    assert!(!ok);
    assert!(stderr.contains("did not exist yet"), "{stderr}");
    fresh.restart();
    assert_eq!(fresh.client().get("/api/v1/setup").json()["needed"], true);
}
