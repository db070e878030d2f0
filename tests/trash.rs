//! The trash (issue 22): deleting moves an archive to the trash; it leaves
//! the list, keeps its remote copy, comes back with restore in the state it
//! had (a freed one `uncached`), and goes for good with `?purge=true` or at
//! its purge time, even across `kill -9`, without touching the parts a live
//! archive shares. Each user sees only their own trash.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::remote_engine::{archive, download, s3_json, set_remote, wait_state, LIMIT};
use crate::support::fault_proxy::{FaultPlan, FaultProxy};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, wait_until, Client, TestServer};

const DAY: i64 = 86_400;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| a["id"].as_str().expect("an id").to_string())
        .collect()
}

fn trash_list(client: &Client) -> Value {
    let resp = client.get("/api/v1/archives?trash=true");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn names(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .collect()
}

/// Jobs in the engine's queue, from `/metrics`.
fn queue_length(admin: &Client) -> u64 {
    admin
        .get("/metrics")
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("piarchive_queue_length "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a queue length in /metrics")
}

fn upload_backed_up(admin: &Client, name: &str, data: &[u8]) -> String {
    let id = admin.upload_ok(name, data)["id"]
        .as_str()
        .expect("an id")
        .to_string();
    wait_state(admin, &id, "backed_up");
    id
}

#[test]
fn trash_restore_and_purge_through_the_api_keep_the_remote_until_the_purge() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "trash", SECRET_KEY));
    let data = random_bytes(3 * 1024 * 1024 + 17, 41);
    let id = upload_backed_up(&admin, "wedding video", &data);
    let bucket = s3.object_path("trash");
    wait_until(LIMIT, || queue_length(&admin) == 0);
    let parts = names(&bucket.join("parts"));
    assert!(!parts.is_empty());

    let resp = admin.delete(&format!("/api/v1/archives/{id}"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    let trashed = resp.json();
    assert_eq!(trashed["state"], "trashed");
    let (at, purge) = (
        trashed["trashed_at"].as_i64().unwrap(),
        trashed["purge_at"].as_i64().unwrap(),
    );
    assert_eq!(purge - at, 30 * DAY, "the default: 30 days");
    assert!(ids(&admin.get("/api/v1/archives").json()).is_empty());
    let listed = trash_list(&admin);
    assert_eq!(ids(&listed), vec![id.clone()]);
    assert_eq!(listed[0]["purge_at"], purge);
    assert_eq!(archive(&admin, &id)["state"], "trashed");
    // A trashed archive is not used until it is restored.
    let base = format!("/api/v1/archives/{id}");
    for resp in [
        admin.get(&format!("{base}/content")),
        admin.send_json("PATCH", &base, &json!({"name": "x"})),
        admin.request("POST", &format!("{base}/uncache"), &[], None),
    ] {
        assert_eq!(
            (resp.status, resp.json()["error"].clone()),
            (409, json!("trashed"))
        );
        assert!(
            resp.message().contains("restore it first"),
            "{}",
            resp.text()
        );
    }
    // Deleting again changes nothing; bad flags are refused with a sentence.
    assert_eq!(admin.delete(&base).json()["purge_at"], purge);
    let bad = admin.delete(&format!("{base}?purge=yes"));
    assert_eq!(bad.status, 400);
    assert!(
        bad.message().contains("purge must be true"),
        "{}",
        bad.text()
    );
    assert_eq!(admin.get("/api/v1/archives?trash=maybe").status, 400);
    // Nothing left the remote.
    assert_eq!(queue_length(&admin), 0);
    assert_eq!(names(&bucket.join("parts")), parts);
    assert!(bucket.join("manifests").join(&id).is_file());

    let resp = admin.request("POST", &format!("{base}/restore"), &[], None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["state"], "backed_up");
    assert!(ids(&trash_list(&admin)).is_empty());
    assert_eq!(ids(&admin.get("/api/v1/archives").json()), vec![id.clone()]);
    assert!(download(&admin, &id) == data, "restored bit-exact");
    let again = admin.request("POST", &format!("{base}/restore"), &[], None);
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (409, json!("not_trashed"))
    );

    // To the trash, then for good.
    assert_eq!(admin.delete(&base).status, 202);
    let resp = admin.delete(&format!("{base}?purge=true"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert!(!server.data_dir().join("archives").join(&id).exists());
    wait_until(LIMIT, || admin.get(&base).status == 404);
    wait_until(LIMIT, || names(&bucket.join("parts")).is_empty());
    assert!(!bucket.join("manifests").join(&id).exists());
    assert!(ids(&trash_list(&admin)).is_empty());
}

#[test]
fn a_freed_archive_comes_back_uncached_and_caches_normally() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(2 * 1024 * 1024 + 5, 42);
    let id = upload_backed_up(&admin, "freed", &data);
    let base = format!("/api/v1/archives/{id}");
    let resp = admin.request("POST", &format!("{base}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");
    assert_eq!(admin.delete(&base).status, 202);
    let resp = admin.request("POST", &format!("{base}/restore"), &[], None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["state"], "uncached");
    let resp = admin.request("POST", &format!("{base}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "backed_up");
    assert!(download(&admin, &id) == data, "cached back bit-exact");
}

#[test]
fn each_user_sees_only_their_own_trash() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let mine = admin.upload_ok("admin's holiday", b"admin bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let his = bob.upload_ok("bob's homework", b"bob bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        admin.delete(&format!("/api/v1/archives/{mine}")).status,
        202
    );
    assert_eq!(bob.delete(&format!("/api/v1/archives/{his}")).status, 202);
    assert_eq!(ids(&trash_list(&admin)), vec![mine.clone()]);
    assert_eq!(ids(&trash_list(&bob)), vec![his.clone()]);
    let page = bob.get("/trash").text();
    assert!(page.contains("bob&#39;s homework") || page.contains("bob's homework"));
    assert!(!page.contains("admin's holiday") && !page.contains("admin&#39;s holiday"));
    // Another user's trashed archive answers like a missing one.
    let base = format!("/api/v1/archives/{mine}");
    let answers = [
        bob.get(&base),
        bob.request("POST", &format!("{base}/restore"), &[], None),
        bob.delete(&format!("{base}?purge=true")),
        bob.get(&format!("/archives/{mine}/delete")),
        bob.post_form(
            &format!("/archives/{mine}/restore"),
            &[("csrf_token", bob.csrf.as_deref().unwrap())],
        ),
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![404; 5]);
    assert_eq!(archive(&admin, &mine)["state"], "trashed");
}

#[test]
fn trash_days_is_a_setting_with_zero_for_no_trash_and_bad_values_refused() {
    let server = TestServer::start();
    let admin = server.admin();
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["trash_days"], 30);
    for bad in [json!(3651), json!(-1), json!("ten")] {
        let mut changed = settings.clone();
        changed["trash_days"] = bad.clone();
        let resp = admin.send_json("PUT", "/api/v1/admin/settings", &changed);
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
        assert!(resp.message().contains("trash_days"), "{}", resp.text());
    }
    let form = admin.post_form(
        "/admin/settings",
        &[
            ("csrf_token", admin.csrf.as_deref().unwrap()),
            ("upload_bandwidth_kib", "0"),
            ("transfer_concurrency", "2"),
            ("verify_sample_percent", "5"),
            ("free_space_reserve_mib", "0"),
            ("pending_upload_expiry_days", "7"),
            ("trash_days", "99999"),
        ],
    );
    assert_eq!(form.status, 400);
    assert!(form.text().contains("trash_days must be between 0"));
    assert_eq!(admin.get("/api/v1/admin/settings").json()["trash_days"], 30);

    admin.put_settings(|s| s["trash_days"] = json!(7));
    let id = admin.upload_ok("a week", b"kept a week")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let trashed = admin.delete(&format!("/api/v1/archives/{id}")).json();
    assert_eq!(
        trashed["purge_at"].as_i64().unwrap() - trashed["trashed_at"].as_i64().unwrap(),
        7 * DAY
    );
    admin.put_settings(|s| s["trash_days"] = json!(0));
    let id = admin.upload_ok("no trash", b"gone at once")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = admin.delete(&format!("/api/v1/archives/{id}"));
    assert_eq!(resp.status, 202);
    assert_eq!(resp.json()["state"], "deleting");
    assert!(!server.data_dir().join("archives").join(&id).exists());
    wait_until(LIMIT, || {
        admin.get(&format!("/api/v1/archives/{id}")).status == 404
    });
}

#[test]
fn scripts_list_and_restore_the_trash_and_the_dashboard_shows_its_size() {
    let server = TestServer::start();
    let admin = server.admin();
    let id = admin.upload_ok("scripted", &[7u8; 3000])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = |source: &str| {
        let resp = admin.post_json("/api/v1/admin/scripts/run", &json!({ "source": source }));
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    };
    assert_eq!(admin.delete(&format!("/api/v1/archives/{id}")).status, 202);
    let listed = run("let t = trash(); [t.len(), t[0].id, t[0].state, t[0].purge_at > t[0].trashed_at, archives().len()]");
    assert_eq!(
        listed["value"],
        json!([1, id, "trashed", true, 0]),
        "{listed}"
    );
    let page = admin.get("/admin").text();
    assert!(
        page.contains("In the trash (all users): 1 archives, 2.9 KiB"),
        "{page}"
    );
    let restored = run(&format!("restore(\"{id}\")"));
    assert_eq!(restored["value"], json!(true), "{restored}");
    let refused = run(&format!("restore(\"{id}\")"));
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not in the trash")),
        "{refused}"
    );
    assert_ne!(archive(&admin, &id)["state"], "trashed");
    assert_eq!(ids(&admin.get("/api/v1/archives").json()), vec![id.clone()]);
    let help = admin.get("/admin/scripts/help").text();
    assert!(help.contains("trash()") && help.contains("restore(id)"));
}

/// Sets every trashed archive's purge time to the past, in the stopped
/// appliance's store (the clock cannot be moved 30 days on).
fn make_trash_due(data_dir: &Path) {
    let store = piarchive::store::Store::open(&data_dir.join("db"), 1 << 30).expect("the store");
    store
        .write(|txn, tables| -> Result<(), piarchive::store::StoreError> {
            for (archive, mut trash) in tables.archives.all_trashed(txn)? {
                tables
                    .archives
                    .take_from_trash(txn, archive.id.as_bytes())?;
                trash.purge_at = trash.trashed_at - 1;
                tables
                    .archives
                    .move_to_trash(txn, archive.id.as_bytes(), &trash)?;
            }
            Ok(())
        })
        .expect("purge times moved");
}

#[test]
fn a_purge_at_its_time_survives_kill_9_and_keeps_parts_a_live_archive_shares() {
    let s3 = S3TestServer::start();
    let proxy = FaultProxy::start(s3.address, FaultPlan::Sequence(Vec::new()));
    let mut server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&proxy.endpoint, "purge", SECRET_KEY));
    let shared = random_bytes(3 * 1024 * 1024 + 3, 43);
    let own = random_bytes(2 * 1024 * 1024 + 9, 44);
    let first = upload_backed_up(&admin, "first copy", &shared);
    let second = upload_backed_up(&admin, "second copy", &shared);
    let other = upload_backed_up(&admin, "other", &own);
    wait_until(LIMIT, || queue_length(&admin) == 0);
    let bucket = s3.object_path("purge");
    let all_parts = names(&bucket.join("parts"));
    for id in [&first, &other] {
        assert_eq!(admin.delete(&format!("/api/v1/archives/{id}")).status, 202);
    }
    server.kill9();
    make_trash_due(&server.data_dir());
    // Slow answers, so the purge is still under way when the plug is pulled.
    proxy.set_response_delay(Duration::from_millis(300));
    server.restart();
    // The purge began at start: both are `deleting` with their jobs.
    let trash = trash_list(&admin);
    assert!(
        trash
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "deleting"),
        "{trash}"
    );
    let mut mid_purge = 0;
    for _ in 0..3 {
        mid_purge += usize::from(queue_length(&admin) > 0);
        server.restart();
    }
    assert!(mid_purge >= 1, "at least the first kill landed mid-purge");
    proxy.set_response_delay(Duration::ZERO);
    for id in [&first, &other] {
        wait_until(LIMIT, || {
            admin.get(&format!("/api/v1/archives/{id}")).status == 404
        });
    }
    wait_until(LIMIT, || queue_length(&admin) == 0);
    assert!(ids(&trash_list(&admin)).is_empty());
    // The live copy still has every part it shares with the purged one.
    assert_eq!(archive(&admin, &second)["state"], "backed_up");
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{second}/uncache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &second, "uncached");
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{second}/cache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &second, "backed_up");
    assert!(download(&admin, &second) == shared);

    server.kill9();
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30)
        .expect("open the appliance's store");
    let txn = store.read().expect("read transaction");
    store.tables.archives.check(&txn).expect("archive indexes");
    store.tables.jobs.check(&txn).expect("job indexes");
    drop(txn);
    let uses = crate::support::checked_object_uses(&store);
    assert!(uses.values().all(|refcount| *refcount == 1), "{uses:?}");
    let stored = names(&bucket.join("parts"));
    assert_eq!(stored, uses.keys().cloned().collect::<BTreeSet<_>>());
    assert!(stored.len() < all_parts.len() && stored.is_subset(&all_parts));
    assert_eq!(
        names(&bucket.join("manifests")),
        BTreeSet::from([second.clone()])
    );
}
