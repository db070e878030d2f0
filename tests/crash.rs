//! `kill -9` of the real appliance at random moments while it uploads to,
//! caches back from and deletes from a signature-checking S3 server (behind
//! a proxy that counts every request and answers slowly, like a slow link),
//! restarting it each time. At the end every archive is in its expected
//! state, cached ones are bit-exact, deleted ones left no objects behind,
//! the refcounts match the parts, and each kill re-sent at most the parts
//! that were in flight.
//!
//! The moments are drawn from a seed printed at the start; set
//! `PIARCHIVE_CRASH_SEED` to replay one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::fault_proxy::{FaultPlan, FaultProxy};
use crate::support::s3_server::{S3TestServer, ACCESS_KEY, BUCKET, REGION, SECRET_KEY};
use crate::support::{
    closed_upload_window, files_under, random_bytes, sha256_hex, wait_until, Client, TestServer,
};

const ARCHIVES: usize = 12;
const ARCHIVE_SIZE: usize = 2 * 1024 * 1024 + 512 * 1024;
/// Archives uncached then cached back (the others stay local throughout).
const CACHED: std::ops::Range<usize> = 2..10;
/// Archives deleted at the end (some of them were cached back before).
const DELETED: std::ops::Range<usize> = 7..12;
const KILLS_UPLOAD: usize = 7;
const KILLS_CACHE: usize = 7;
const KILLS_DELETE: usize = 6;
/// How long the proxy holds each answer: slow enough that the phases
/// outlast the random moments.
const SLOW_ANSWER: Duration = Duration::from_millis(250);
const PREFIX: &str = "crash";
const LIMIT: Duration = Duration::from_secs(120);

/// The random seed of a crash test: `PIARCHIVE_CRASH_SEED`, else the clock.
pub(crate) fn seed() -> u64 {
    std::env::var("PIARCHIVE_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Jobs in the engine's queue, from `/metrics`.
fn queue_length(admin: &Client) -> u64 {
    let resp = admin.get("/metrics");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
        .lines()
        .find_map(|line| line.strip_prefix("piarchive_queue_length "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a queue length in /metrics")
}

fn states(admin: &Client) -> BTreeMap<String, String> {
    admin
        .get("/api/v1/archives")
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_string(),
                a["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Waits until the queue is empty and every listed archive is in `expected`
/// (and no other archive exists).
fn settle(admin: &Client, expected: &BTreeMap<String, &str>) {
    let mut last = BTreeMap::new();
    wait_until(LIMIT, || {
        last = states(admin);
        assert!(
            !last.values().any(|state| state == "damaged"),
            "an archive became damaged: {last:?}"
        );
        queue_length(admin) == 0
            && last.len() == expected.len()
            && expected
                .iter()
                .all(|(id, state)| last.get(id).map(String::as_str) == Some(*state))
    });
}

/// Kills the appliance `kills` times, each at a random moment 100–700 ms
/// after it became ready, and restarts it on the same address (`admin`'s
/// session lives in the appliance's database, so it stays valid). Returns how many kills found
/// the phase still busy (jobs queued).
fn kill_at_random_moments(
    server: &mut TestServer,
    admin: &Client,
    rng: &mut StdRng,
    kills: usize,
    phase: &str,
) -> usize {
    let mut mid_phase = 0;
    for kill in 0..kills {
        let moment = Duration::from_millis(rng.gen_range(100..700));
        // Not a readiness wait: the point is to let the engine run for a
        // random while before pulling the plug.
        std::thread::sleep(moment);
        let busy = queue_length(admin) > 0;
        mid_phase += usize::from(busy);
        eprintln!("{phase}: kill {} after {moment:?} (busy: {busy})", kill + 1);
        server.restart();
    }
    mid_phase
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .collect()
}

#[test]
fn kill_9_at_random_moments_during_upload_cache_and_delete_loses_nothing() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (PIARCHIVE_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let s3 = S3TestServer::start();
    let proxy = FaultProxy::start(s3.address, FaultPlan::Sequence(Vec::new()));
    let mut server = TestServer::start();
    let admin = server.admin();
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/remote",
        &json!({"kind": "s3", "endpoint": proxy.endpoint, "region": REGION, "bucket": BUCKET,
                "prefix": PREFIX, "path_style": true, "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let concurrency = admin.get("/api/v1/admin/settings").json()["transfer_concurrency"]
        .as_u64()
        .expect("transfer_concurrency") as usize;

    // Receive every archive first with the upload window closed, so no
    // kill lands on an HTTP upload.
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let data: Vec<Vec<u8>> = (0..ARCHIVES)
        .map(|i| random_bytes(ARCHIVE_SIZE + i * 4099, seed ^ (i as u64 + 1)))
        .collect();
    let ids: Vec<String> = data
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            admin.upload_ok(&format!("crash-{i}"), bytes)["id"]
                .as_str()
                .expect("an id")
                .to_string()
        })
        .collect();
    let mut expected: BTreeMap<String, &str> =
        ids.iter().map(|id| (id.clone(), "backed_up")).collect();

    // Upload.
    proxy.set_response_delay(SLOW_ANSWER);
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let busy_upload = kill_at_random_moments(&mut server, &admin, &mut rng, KILLS_UPLOAD, "upload");
    settle(&admin, &expected);

    // Cache: uncache quickly, then fetch back slowly while being killed.
    proxy.set_response_delay(Duration::ZERO);
    for id in &ids[CACHED] {
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
        expected.insert(id.clone(), "uncached");
    }
    settle(&admin, &expected);
    proxy.set_response_delay(SLOW_ANSWER);
    for id in &ids[CACHED] {
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
        expected.insert(id.clone(), "backed_up");
    }
    let busy_cache = kill_at_random_moments(&mut server, &admin, &mut rng, KILLS_CACHE, "cache");
    settle(&admin, &expected);

    // Delete.
    for id in &ids[DELETED] {
        assert_eq!(
            admin
                .delete(&format!("/api/v1/archives/{id}?purge=true"))
                .status,
            202
        );
        expected.remove(id);
    }
    let busy_delete = kill_at_random_moments(&mut server, &admin, &mut rng, KILLS_DELETE, "delete");
    settle(&admin, &expected);
    let kills = KILLS_UPLOAD + KILLS_CACHE + KILLS_DELETE;
    eprintln!(
        "kills that found work in progress: upload {busy_upload}/{KILLS_UPLOAD}, cache {busy_cache}/{KILLS_CACHE}, delete {busy_delete}/{KILLS_DELETE}"
    );
    assert!(
        busy_upload > 0 && busy_cache > 0 && busy_delete > 0,
        "every phase must be interrupted at least once"
    );

    // Every survivor downloads bit-exact; every deleted one is gone.
    for (i, id) in ids.iter().enumerate() {
        if DELETED.contains(&i) {
            assert_eq!(admin.get(&format!("/api/v1/archives/{id}")).status, 404);
            continue;
        }
        let resp = admin.get(&format!("/api/v1/archives/{id}/content"));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(sha256_hex(&resp.body), sha256_hex(&data[i]), "archive {i}");
    }

    // Each kill re-sent at most the parts in flight: only the upload phase
    // PUTs parts, and each worker has at most one PUT in flight.
    let mut puts: BTreeMap<String, usize> = BTreeMap::new();
    for (method, path) in proxy.request_log() {
        if method == "PUT" && path.contains(&format!("/{PREFIX}/parts/")) {
            *puts.entry(path).or_default() += 1;
        }
    }
    let resent: usize = puts.values().map(|count| count - 1).sum();
    eprintln!(
        "{} part objects PUT, {resent} re-sent after {kills} kills (concurrency {concurrency})",
        puts.len()
    );
    assert!(
        resent <= KILLS_UPLOAD * concurrency,
        "{resent} parts re-sent after {KILLS_UPLOAD} kills during the upload: {puts:?}"
    );

    // The books, read from the appliance's own database after a last kill:
    // no job left, refcounts equal the parts using each object, every
    // object stored remotely and nothing else stored.
    server.kill9();
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30)
        .expect("open the appliance's store");
    let txn = store.read().expect("read transaction");
    assert_eq!(store.tables.jobs.len(&txn).expect("jobs"), 0);
    // The queue's and the archive list's indexes agree with their tables.
    store.tables.jobs.check(&txn).expect("job indexes");
    store.tables.archives.check(&txn).expect("archive index");
    let archives: BTreeSet<String> = store
        .tables
        .archives
        .all(&txn)
        .expect("archives")
        .into_iter()
        .map(|(_, archive)| archive.id)
        .collect();
    let survivors: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(archives, survivors);
    drop(txn);
    let uses = crate::support::checked_object_uses(&store);
    let bucket = s3.object_path(PREFIX);
    let stored: BTreeSet<String> = file_names(&bucket.join("parts"));
    assert_eq!(
        stored,
        uses.keys().cloned().collect::<BTreeSet<_>>(),
        "the remote holds exactly the objects of the surviving archives"
    );
    assert_eq!(file_names(&bucket.join("manifests")), survivors);
    // Locally: exactly the survivors' files, no `.partial` left over.
    assert_eq!(file_names(&server.data_dir().join("archives")), survivors);
}
