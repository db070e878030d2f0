//! Remote verification end to end: the real binary verifies archives on the
//! folder remote and on a signature-checking S3 server while objects are
//! deleted or corrupted behind its back; the built-in script runs on real
//! data; the weekly verification deployment exists from the first start.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use crate::remote_engine::{archive, s3_json, set_remote, uncache_and_cache_back, wait_state};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, wait_until, Client, TestServer};

/// Saves `source` as a script and runs it ("Run now": the long limit of
/// saved scripts, not the 5 s of a test run). Returns the run's result.
fn run_saved(admin: &Client, source: &str) -> Value {
    let resp = admin.post_json(
        "/api/v1/admin/scripts",
        &json!({"name": format!("verify {}", random_name()), "description": "", "source": source}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let id = resp.json()["id"].as_str().unwrap().to_string();
    let resp = admin.post_json(&format!("/api/v1/admin/scripts/{id}/run"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// A script name not used before in this process.
fn random_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string()
}

/// `verify(id, percent)` run as a saved script; its `{checked, ok, damaged}`.
pub(crate) fn verify(admin: &Client, id: &str, percent: u8) -> Value {
    let result = run_saved(admin, &format!("verify(\"{id}\", {percent})"));
    assert_eq!(result["ok"], json!(true), "{result}");
    result["value"].clone()
}

fn log_entries(admin: &Client, query: &str) -> Vec<Value> {
    let resp = admin.get(&format!("/api/v1/admin/log?{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["entries"].as_array().unwrap().clone()
}

fn upload_backed_up(admin: &Client, name: &str, data: &[u8]) -> (String, u64) {
    let id = admin.upload_ok(name, data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_state(admin, &id, "backed_up");
    let parts = done["parts_total"].as_u64().unwrap();
    assert!(parts >= 2, "the test needs several parts: {done}");
    (id, parts)
}

fn uncache(admin: &Client, id: &str) {
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(admin, id, "uncached");
}

/// The part objects that appeared in `parts_dir` since `before`.
fn new_objects(parts_dir: &Path, before: &[PathBuf]) -> Vec<PathBuf> {
    files_under(parts_dir)
        .into_iter()
        .filter(|path| !before.contains(path))
        .collect()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn a_deleted_part_on_the_folder_remote_is_uploaded_again_from_the_local_copy() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(14 * 1024 * 1024 + 11, 21);
    let (id, parts) = upload_backed_up(&admin, "photos \"2024\" <&> 📷", &data);
    assert_eq!(
        verify(&admin, &id, 100),
        json!({"checked": parts, "ok": parts, "damaged": 0})
    );

    let parts_dir = server.data_dir().join("remote").join("parts");
    let objects = files_under(&parts_dir);
    assert_eq!(objects.len() as u64, parts);
    let victim = objects[1].clone();
    std::fs::remove_file(&victim).unwrap();
    // HEAD alone finds a missing part.
    assert_eq!(
        verify(&admin, &id, 0),
        json!({"checked": parts, "ok": parts - 1, "damaged": 1})
    );
    let after = archive(&admin, &id);
    assert_eq!(after["state"], "backed_up", "{after}");
    assert!(after["last_error"].is_null(), "{after}");
    assert!(victim.is_file(), "the part was uploaded again");
    assert_eq!(files_under(&parts_dir), objects);
    let repaired = log_entries(&admin, "source=verify&level=warn");
    assert!(
        repaired.iter().any(|e| {
            let message = e["message"].as_str().unwrap();
            message.contains("is missing from the remote")
                && message.contains("uploaded again from the local copy")
                && e["archive_id"] == json!(id)
        }),
        "{repaired:?}"
    );
    assert_eq!(
        verify(&admin, &id, 100),
        json!({"checked": parts, "ok": parts, "damaged": 0})
    );
    uncache_and_cache_back(&admin, &id, &data);
}

#[test]
fn an_uncached_archive_missing_a_part_on_s3_is_damaged_and_nothing_is_deleted() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "family", SECRET_KEY));
    let bucket = s3.object_path("family");
    let parts_dir = bucket.join("parts");

    let lost_data = random_bytes(10 * 1024 * 1024, 22);
    let (lost, lost_parts) = upload_backed_up(&admin, "lost", &lost_data);
    let lost_objects = files_under(&parts_dir);
    let kept_data = random_bytes(9 * 1024 * 1024, 23);
    let (kept, kept_parts) = upload_backed_up(&admin, "kept", &kept_data);
    assert_eq!(
        new_objects(&parts_dir, &lost_objects).len() as u64,
        kept_parts
    );
    for (id, parts) in [(&lost, lost_parts), (&kept, kept_parts)] {
        assert_eq!(
            verify(&admin, id, 100),
            json!({"checked": parts, "ok": parts, "damaged": 0})
        );
    }
    uncache(&admin, &lost);

    std::fs::remove_file(&lost_objects[0]).unwrap();
    let remaining = files_under(&bucket);
    assert_eq!(
        verify(&admin, &lost, 5),
        json!({"checked": lost_parts, "ok": lost_parts - 1, "damaged": 1})
    );
    let damaged = wait_state(&admin, &lost, "damaged");
    let reason = damaged["last_error"].as_str().expect("a reason");
    assert!(
        reason.contains("part ")
            && reason.contains("missing from the remote")
            && reason.contains("no local copy")
            && reason.contains("Nothing was deleted"),
        "{reason}"
    );
    let errors = log_entries(&admin, "source=verify&level=error");
    assert!(
        errors.iter().any(|e| e["archive_id"] == json!(lost)
            && e["message"].as_str().unwrap().contains("is damaged")),
        "{errors:?}"
    );
    // Nothing deleted, the other archive untouched.
    assert_eq!(files_under(&bucket), remaining);
    assert!(bucket.join("manifests").join(&lost).is_file());
    let other = archive(&admin, &kept);
    assert_eq!(
        (other["state"].as_str(), other["last_error"].clone()),
        (Some("backed_up"), Value::Null)
    );
    // A damaged archive turns the red LED on.
    wait_until(crate::remote_engine::LIMIT, || {
        admin.get("/api/v1/admin/device").json()["red"] != "off"
    });

    // The built-in script, run by an admin on this real data.
    let builtin = admin
        .get("/api/v1/admin/scripts")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "verify remote copies")
        .expect("the built-in script")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // It checks backed-up and uncached archives: the damaged one is skipped.
    let resp = admin.post_json(&format!("/api/v1/admin/scripts/{builtin}/run"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let result = resp.json();
    assert_eq!(result["ok"], json!(true), "{result}");
    assert_eq!(
        result["value"],
        json!({"archives_checked": 1, "parts_checked": kept_parts, "parts_ok": kept_parts,
               "parts_damaged": 0, "damaged": [], "failed": []})
    );
    let summary = log_entries(&admin, "source=script:verify%20remote%20copies&level=info");
    assert!(
        summary.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("1 archives checked, 0 damaged")),
        "{summary:?}"
    );
    assert_eq!(files_under(&bucket), remaining);
}

#[test]
fn a_flipped_byte_on_s3_is_found_by_a_full_check_and_repaired_while_cached() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "bits", SECRET_KEY));
    let parts_dir = s3.object_path("bits").join("parts");
    let data = random_bytes(12 * 1024 * 1024 + 3, 24);
    let (id, parts) = upload_backed_up(&admin, "bits", &data);
    let objects = files_under(&parts_dir);
    let victim = objects[objects.len() - 1].clone();
    let good = std::fs::read(&victim).unwrap();
    flip_a_byte(&victim);
    let corrupt = std::fs::read(&victim).unwrap();

    // The length is right, so a HEAD-only check cannot see it.
    assert_eq!(
        verify(&admin, &id, 0),
        json!({"checked": parts, "ok": parts, "damaged": 0})
    );
    // A full check downloads it; the local copy puts a good one back.
    assert_eq!(
        verify(&admin, &id, 100),
        json!({"checked": parts, "ok": parts - 1, "damaged": 1})
    );
    assert_eq!(archive(&admin, &id)["state"], "backed_up");
    let stored = std::fs::read(&victim).unwrap();
    assert_ne!(stored, corrupt);
    assert_eq!(stored.len(), good.len());
    assert_eq!(
        verify(&admin, &id, 100),
        json!({"checked": parts, "ok": parts, "damaged": 0})
    );

    // Uncached, the same corruption leaves it damaged.
    uncache(&admin, &id);
    flip_a_byte(&victim);
    assert_eq!(
        verify(&admin, &id, 100),
        json!({"checked": parts, "ok": parts - 1, "damaged": 1})
    );
    let damaged = wait_state(&admin, &id, "damaged");
    assert!(
        damaged["last_error"]
            .as_str()
            .unwrap()
            .contains("is corrupt on the remote (it does not decrypt"),
        "{damaged}"
    );
    assert_eq!(files_under(&parts_dir), objects);
    // Verification refuses what has no complete remote copy.
    let result = run_saved(&admin, "verify(\"nosucharchive\", 5)");
    assert_eq!(result["ok"], json!(false), "{result}");
}

#[test]
fn the_weekly_verification_is_deployed_once_and_terminating_it_is_remembered() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let verify_script = admin
        .get("/api/v1/admin/scripts")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "verify remote copies")
        .unwrap()["id"]
        .clone();
    let listed = admin.get("/api/v1/admin/deployments").json();
    let deployments = listed.as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{listed}");
    let weekly = &deployments[0];
    assert_eq!(weekly["script_id"], verify_script);
    assert_eq!(weekly["interval_seconds"], json!(604_800));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let next = weekly["next_run_at"].as_i64().unwrap();
    assert!(
        (now + 604_800 - 120..=now + 604_800).contains(&next),
        "first run a week after the first start: {next} vs {now}"
    );
    let weekly_id = weekly["id"].as_str().unwrap().to_string();
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["verify_sample_percent"], json!(5));
    let mut changed = settings.clone();
    changed["verify_sample_percent"] = json!(101);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &changed)
            .status,
        400
    );
    changed["verify_sample_percent"] = json!(100);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &changed)
            .status,
        200
    );

    server.restart();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let listed = admin.get("/api/v1/admin/deployments").json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], json!(weekly_id));
    assert_eq!(
        admin.get("/api/v1/admin/settings").json()["verify_sample_percent"],
        json!(100)
    );
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/deployments/{weekly_id}"))
            .status,
        204
    );
    server.restart();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    assert_eq!(admin.get("/api/v1/admin/deployments").json(), json!([]));
}

/// Throughput of a full check (every part downloaded, decrypted, hashed)
/// against the local s3s-fs server. 16 MiB by default so the suite stays
/// quick; `PIARCHIVE_VERIFY_BENCH_MIB=256` measures the figure reported.
#[test]
fn verification_throughput_at_100_percent() {
    let mib: usize = std::env::var("PIARCHIVE_VERIFY_BENCH_MIB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(16);
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "bench", SECRET_KEY));
    let data = random_bytes(mib * 1024 * 1024, 25);
    let (id, parts) = upload_backed_up(&admin, "bench", &data);
    drop(data);
    let started = Instant::now();
    let result = run_saved(&admin, &format!("verify(\"{id}\", 100)"));
    let wall = started.elapsed();
    assert_eq!(result["ok"], json!(true), "{result}");
    assert_eq!(
        result["value"],
        json!({"checked": parts, "ok": parts, "damaged": 0})
    );
    let run_ms = result["duration_ms"].as_u64().unwrap().max(1);
    eprintln!(
        "verification of {mib} MiB in {parts} parts at 100 %: {run_ms} ms in the run \
         ({:.1} MiB/s), {} ms over HTTP",
        mib as f64 / (run_ms as f64 / 1000.0),
        wall.as_millis()
    );
}
