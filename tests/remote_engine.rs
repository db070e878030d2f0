//! The remote backup engine end to end: the real binary uploads archives to
//! the folder remote and to a signature-checking S3 server (through a
//! fault-injecting proxy where asked), uncaches and caches them back, and
//! survives a wrong secret, a corrupted object and `kill -9`. The generic
//! S3 cases also run against Garage (`tests/garage.rs`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::support::s3_server::S3TestServer;
use crate::support::s3_target::{FolderObjects, S3Target, StoredObjects};
use crate::support::{files_under, random_bytes, sha256_hex, wait_until, Client, TestServer};

pub(crate) const LIMIT: Duration = Duration::from_secs(180);

pub(crate) fn archive(client: &Client, id: &str) -> Value {
    let resp = client.get(&format!("/api/v1/archives/{id}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// Polls until the archive is in `state`; fails early on `damaged`.
pub(crate) fn wait_state(client: &Client, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = archive(client, id);
        assert!(
            state == "damaged" || last["state"] != "damaged",
            "archive became damaged: {last}"
        );
        last["state"] == state
    });
    last
}

pub(crate) fn set_remote(admin: &Client, settings: &Value) {
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.json().get("secret_access_key").is_none());
}

pub(crate) fn s3_json(endpoint: &str, prefix: &str, secret: &str) -> Value {
    use crate::support::s3_server::{ACCESS_KEY, BUCKET, REGION};
    json!({"kind": "s3", "endpoint": endpoint, "region": REGION, "bucket": BUCKET,
           "prefix": prefix, "path_style": true, "access_key_id": ACCESS_KEY,
           "secret_access_key": secret})
}

pub(crate) fn download(client: &Client, id: &str) -> Vec<u8> {
    let resp = client.get(&format!("/api/v1/archives/{id}/content"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.body
}

pub(crate) fn uncache_and_cache_back(client: &Client, id: &str, data: &[u8]) {
    let resp = client.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(client, id, "uncached");
    let resp = client.get(&format!("/api/v1/archives/{id}/content"));
    assert_eq!(resp.status, 409, "{}", resp.text());
    let resp = client.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(client, id, "backed_up");
    let back = download(client, id);
    assert!(back == data, "the cached file differs from the upload");
}

#[test]
fn setup_returns_a_generated_passphrase_once_and_the_banner_shows() {
    let server = TestServer::start();
    let mut client = server.client();
    let resp = client.post_json(
        "/api/v1/setup",
        &json!({"username": "admin", "password": "admin password"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let passphrase = resp.json()["recovery_passphrase"]
        .as_str()
        .expect("a generated passphrase")
        .to_string();
    assert_eq!(passphrase.len(), 29, "{passphrase}");
    client.adopt_session(&resp);
    let home = client.get("/").text();
    assert!(home.contains("same disk as the originals"), "{home}");
    assert!(home.contains("/admin/remote"));
    assert!(!home.contains(&passphrase));
    let remote = client.get("/api/v1/admin/remote").json();
    assert_eq!(remote["kind"], "dir");
    let check = client
        .request("POST", "/api/v1/admin/remote/test", &[], None)
        .json();
    assert_eq!(check["ok"], true, "{check}");

    let s3 = S3TestServer::start();
    set_remote(
        &client,
        &s3_json(
            &s3.endpoint,
            "banner",
            crate::support::s3_server::SECRET_KEY,
        ),
    );
    assert!(!client
        .get("/")
        .text()
        .contains("same disk as the originals"));
    // The secret is kept when a form leaves it out, and never echoed.
    let mut without_secret = s3_json(&s3.endpoint, "banner", "");
    without_secret
        .as_object_mut()
        .unwrap()
        .remove("secret_access_key");
    set_remote(&client, &without_secret);
    let check = client
        .request("POST", "/api/v1/admin/remote/test", &[], None)
        .json();
    assert_eq!(check["ok"], true, "{check}");
    let page = client.get("/admin/remote").text();
    assert!(!page.contains(crate::support::s3_server::SECRET_KEY));

    // A given passphrase is not echoed back.
    let other = TestServer::start();
    let resp = other.client().post_json(
        "/api/v1/setup",
        &json!({"username": "admin", "password": "admin password",
                "recovery_passphrase": "correct horse battery staple"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert!(resp.json().get("recovery_passphrase").is_none());
}

/// The engine tests against an S3 server, run against each server:
/// `s3_engine_tests!(ServerType)` in a test module expands to one `#[test]`
/// per case in [`cases`], each starting its own server and piarchive.
macro_rules! s3_engine_tests {
    ($server:ty) => {
        #[test]
        fn s3_objects_are_encrypted_and_deduplicated() {
            $crate::remote_engine::cases::s3_objects_are_encrypted_and_deduplicated::<$server>()
        }
        #[test]
        fn a_wrong_secret_is_shown_and_the_backup_resumes_after_fixing_it() {
            $crate::remote_engine::cases::a_wrong_secret_is_shown_and_the_backup_resumes_after_fixing_it::<$server>()
        }
        #[test]
        fn a_flaky_remote_still_ends_backed_up_and_caches_back_bit_exact() {
            $crate::remote_engine::cases::a_flaky_remote_still_ends_backed_up_and_caches_back_bit_exact::<$server>()
        }
        #[test]
        fn a_corrupted_s3_object_makes_the_cache_damaged_and_deletes_nothing() {
            $crate::remote_engine::cases::a_corrupted_s3_object_makes_the_cache_damaged_and_deletes_nothing::<$server>()
        }
    };
}
#[cfg(feature = "garage-tests")]
pub(crate) use s3_engine_tests;

s3_engine_tests!(S3TestServer);

#[test]
fn backs_up_to_the_folder_remote_and_caches_back() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(9 * 1024 * 1024 + 123, 1);
    let id = admin.upload_ok("folder", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_state(&admin, &id, "backed_up");
    assert_eq!(done["parts_remote"], done["parts_total"]);
    assert!(done["parts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["remote"] == true));
    let remote = server.data_dir().join("remote");
    assert!(remote.join("config").is_file());
    assert!(remote.join("manifests").join(&id).is_file());
    uncache_and_cache_back(&admin, &id, &data);

    // Deleting removes the local file at once and the remote objects soon.
    let resp = admin.delete(&format!("/api/v1/archives/{id}?purge=true"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert!(!server.data_dir().join("archives").join(&id).exists());
    wait_until(LIMIT, || {
        files_under(&remote.join("parts")).is_empty()
            && !remote.join("manifests").join(&id).exists()
    });
    assert_eq!(admin.get(&format!("/api/v1/archives/{id}")).status, 404);
}

#[test]
fn a_corrupted_remote_object_makes_the_cache_damaged_and_deletes_nothing() {
    let server = TestServer::start();
    let admin = server.admin();
    let folder = FolderObjects(server.data_dir().join("remote"));
    corrupted_object_case(&admin, &folder, "");
}

/// Backs up, uncaches, flips one bit of one stored part (`prefix` is the
/// remote's prefix with its slash, empty for the folder remote), caches:
/// the archive must end `damaged` with a sentence, and nothing remote may
/// be deleted.
fn corrupted_object_case(admin: &Client, stored: &dyn StoredObjects, prefix: &str) {
    let data = random_bytes(5 * 1024 * 1024, 5);
    let id = admin.upload_ok("fragile", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(admin, &id, "uncached");

    let parts_prefix = format!("{prefix}parts/");
    let objects = stored.stored_keys(&parts_prefix);
    let victim = &objects[0];
    let mut bytes = stored.stored_object(victim).expect("the listed part");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    stored.store_object(victim, &bytes);

    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let damaged = wait_state(admin, &id, "damaged");
    let reason = damaged["last_error"].as_str().expect("a reason");
    assert!(
        reason.contains("Part") && reason.contains("Nothing was deleted"),
        "{reason}"
    );
    assert_eq!(stored.stored_keys(&parts_prefix), objects);
    assert!(stored
        .stored_object(&format!("{prefix}manifests/{id}"))
        .is_some());
}

/// The bodies of [`s3_engine_tests!`], generic over the server.
pub(crate) mod cases {
    use super::*;

    pub fn s3_objects_are_encrypted_and_deduplicated<T: S3Target>() {
        let s3 = T::start();
        let server = TestServer::start();
        let admin = server.admin();
        set_remote(
            &admin,
            &s3_json(
                &s3.endpoint(),
                "family",
                crate::support::s3_server::SECRET_KEY,
            ),
        );
        let data = random_bytes(10 * 1024 * 1024, 2);
        let first = admin.upload_ok("first", &data)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let second = admin.upload_ok("second", &data)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let first_done = wait_state(&admin, &first, "backed_up");
        wait_state(&admin, &second, "backed_up");

        let parts = first_done["parts"].as_array().unwrap().clone();
        let objects = s3.stored_keys("family/parts/");
        assert_eq!(
            objects.len(),
            parts.len(),
            "each distinct part is stored once: {objects:?}"
        );
        assert!(s3.stored_object("family/config").is_some());
        assert!(s3
            .stored_object(&format!("family/manifests/{first}"))
            .is_some());
        assert!(s3
            .stored_object(&format!("family/manifests/{second}"))
            .is_some());
        for object in &objects {
            let name = object.rsplit('/').next().unwrap_or(object).to_string();
            let stored = s3.stored_object(object).expect("a listed object");
            for part in &parts {
                assert_ne!(
                    part["sha256"].as_str().unwrap(),
                    name,
                    "object names are not content hashes"
                );
            }
            // No 64-byte window of the plaintext appears in any object.
            for part in &parts {
                let offset = part["offset"].as_u64().unwrap() as usize;
                let probe = &data[offset..offset + 64];
                assert!(
                    !stored.windows(64).any(|window| window == probe),
                    "plaintext found in {object:?}"
                );
            }
        }

        // Deleting one copy keeps the shared objects; the other still caches back.
        assert_eq!(
            admin
                .delete(&format!("/api/v1/archives/{second}?purge=true"))
                .status,
            202
        );
        wait_until(LIMIT, || {
            admin.get(&format!("/api/v1/archives/{second}")).status == 404
        });
        assert_eq!(s3.stored_keys("family/parts/").len(), parts.len());
        uncache_and_cache_back(&admin, &first, &data);
    }

    pub fn a_wrong_secret_is_shown_and_the_backup_resumes_after_fixing_it<T: S3Target>() {
        let s3 = T::start();
        let server = TestServer::start();
        let admin = server.admin();
        set_remote(&admin, &s3_json(&s3.endpoint(), "fixme", "not-the-secret"));
        let data = random_bytes(3 * 1024 * 1024, 3);
        let id = admin.upload_ok("waiting", &data)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut last = Value::Null;
        wait_until(LIMIT, || {
            last = archive(&admin, &id);
            last["last_error"].is_string()
        });
        let error = last["last_error"].as_str().unwrap().to_string();
        assert!(error.contains("remote settings"), "{error}");
        assert_ne!(last["state"], "backed_up");
        // The box says so too: the red LED is on with the remote's sentence.
        let mut device = Value::Null;
        wait_until(LIMIT, || {
            device = admin.get("/api/v1/admin/device").json();
            device["red"] != "off"
        });
        let reason = device["status"]["attention"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains("access key"), "{device}");

        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
        assert_eq!(resp.status, 409, "{}", resp.text());
        assert_eq!(resp.json()["error"], "not_backed_up");
        assert!(resp.message().contains("backed up"));

        set_remote(
            &admin,
            &s3_json(
                &s3.endpoint(),
                "fixme",
                crate::support::s3_server::SECRET_KEY,
            ),
        );
        let done = wait_state(&admin, &id, "backed_up");
        assert!(done["last_error"].is_null(), "{done}");
        wait_until(LIMIT, || {
            admin.get("/api/v1/admin/device").json()["red"] == "off"
        });
    }

    pub fn a_flaky_remote_still_ends_backed_up_and_caches_back_bit_exact<T: S3Target>() {
        let s3 = T::start();
        let proxy = FaultProxy::start(
            s3.address(),
            FaultPlan::Random {
                fraction: 0.2,
                faults: vec![
                    Fault::ServerError,
                    Fault::SlowDown,
                    Fault::Reset,
                    Fault::Truncate,
                    Fault::DropResponse,
                ],
                max_consecutive: 3,
                seed: 7,
            },
        );
        let server = TestServer::start();
        let admin = server.admin();
        set_remote(
            &admin,
            &s3_json(
                &proxy.endpoint,
                "flaky",
                crate::support::s3_server::SECRET_KEY,
            ),
        );
        let data = random_bytes(12 * 1024 * 1024 + 5, 4);
        let id = admin.upload_ok("flaky", &data)["id"]
            .as_str()
            .unwrap()
            .to_string();
        wait_state(&admin, &id, "backed_up");
        uncache_and_cache_back(&admin, &id, &data);
        eprintln!(
            "fault proxy: {} requests, {} faults injected",
            proxy.requests(),
            proxy.faults_injected()
        );
        assert!(proxy.faults_injected() > 0);
    }

    pub fn a_corrupted_s3_object_makes_the_cache_damaged_and_deletes_nothing<T: S3Target>() {
        let s3 = T::start();
        let server = TestServer::start();
        let admin = server.admin();
        set_remote(
            &admin,
            &s3_json(
                &s3.endpoint(),
                "fragile",
                crate::support::s3_server::SECRET_KEY,
            ),
        );
        corrupted_object_case(&admin, &s3, "fragile/");
    }
}

#[test]
fn kill_9_during_the_upload_then_restart_finishes_bit_exact() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["upload_bandwidth_bytes_per_sec"] = json!(3 * 1024 * 1024);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );
    let data = random_bytes(16 * 1024 * 1024 + 77, 6);
    let id = admin.upload_ok("interrupted", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(LIMIT, || {
        archive(&admin, &id)["parts_remote"].as_u64().unwrap() >= 1
    });
    let before = archive(&admin, &id);
    server.restart();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let done = wait_state(&admin, &id, "backed_up");
    eprintln!(
        "parts before the kill: {} of {}",
        before["parts_remote"], done["parts_total"]
    );
    assert_eq!(done["parts_remote"], done["parts_total"]);
    uncache_and_cache_back(&admin, &id, &data);
    assert_eq!(
        sha256_hex(&download(&admin, &id)),
        done["sha256"].as_str().unwrap()
    );
}

/// Every file under the folder remote with its size: what "untouched" means.
/// The folder remote's objects and sizes, but the catalog of users and
/// settings (re-sent whenever a setting is saved).
fn remote_listing(server: &TestServer) -> Vec<(PathBuf, u64)> {
    files_under(&server.data_dir().join("remote"))
        .into_iter()
        .filter(|path| !path.starts_with(server.data_dir().join("remote").join("catalog")))
        .map(|path| {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            (path, size)
        })
        .collect()
}

fn set_reserve(admin: &Client, bytes: u64) {
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["free_space_reserve_bytes"] = json!(bytes);
    let resp = admin.send_json("PUT", "/api/v1/admin/settings", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn caching_without_room_waits_with_a_clear_error_and_resumes_once_the_reserve_is_lowered() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(6 * 1024 * 1024 + 9, 11);
    let id = admin.upload_ok("roomy", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");
    let remote_before = remote_listing(&server);
    assert!(!remote_before.is_empty());

    // A reserve larger than any disk: the fetch cannot start.
    set_reserve(&admin, 1 << 62);
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = archive(&admin, &id);
        last["last_error"].is_string()
    });
    let error = last["last_error"].as_str().unwrap().to_string();
    assert!(
        error.contains("not enough free space to cache “roomy”")
            && error.contains("needs 6.0 MiB")
            && error.contains("in reserve"),
        "{error}"
    );
    assert_eq!(last["state"], "caching");
    let partial = server
        .data_dir()
        .join("archives")
        .join(format!("{id}.partial"));
    assert!(!partial.exists(), "nothing was written");
    assert!(!server.data_dir().join("archives").join(&id).exists());
    assert_eq!(remote_listing(&server), remote_before);

    // Lower the reserve, restart: the waiting job resumes by itself.
    set_reserve(&admin, 0);
    server.restart();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let done = wait_state(&admin, &id, "backed_up");
    assert!(done["last_error"].is_null(), "{done}");
    assert!(download(&admin, &id) == data, "the cached file differs");
    assert_eq!(
        remote_listing(&server),
        remote_before,
        "the remote is untouched"
    );
}

/// `name{labels} value` lines of a Prometheus text answer, checking the
/// format of every line on the way.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            assert!(line.split_whitespace().count() >= 3, "{line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}') && labels.contains("=\""),
                    "bad labels: {line:?}"
                );
            }
        }
        samples.push((series.to_string(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(name, _)| name == series)
        .map(|(_, value)| *value)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
}

#[test]
fn metrics_count_a_backup_in_prometheus_format_for_admins_only() {
    let server = TestServer::start();
    let admin = server.admin();
    assert_eq!(server.client().get("/metrics").status, 401);
    let member = server.member("bob");
    assert_eq!(member.get("/metrics").status, 403);

    let data = random_bytes(7 * 1024 * 1024 + 3, 12);
    let id = admin.upload_ok("measured", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_state(&admin, &id, "backed_up");
    let parts_total = done["parts_total"].as_u64().unwrap() as f64;
    uncache_and_cache_back(&admin, &id, &data);

    // A script-style client: the admin's API token as a bearer token.
    let token = admin.post_json("/api/v1/tokens", &json!({"name": "prometheus"}));
    assert_eq!(token.status, 201, "{}", token.text());
    let mut scraper = server.client();
    scraper.bearer = Some(token.json()["token"].as_str().unwrap().to_string());
    let resp = scraper.get("/metrics");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp
        .header("Content-Type")
        .unwrap_or_default()
        .starts_with("text/plain; version=0.0.4"));
    let text = resp.text();
    let samples = parse_metrics(&text);
    let size = data.len() as f64;
    assert!(
        sample(&samples, "piarchive_bytes_ingested_total") >= size,
        "{text}"
    );
    assert!(
        sample(&samples, "piarchive_bytes_uploaded_total") >= size,
        "{text}"
    );
    assert!(
        sample(&samples, "piarchive_bytes_downloaded_total") >= size,
        "{text}"
    );
    assert_eq!(sample(&samples, "piarchive_queue_length"), 0.0);
    for kind in ["transient", "permanent", "damaged"] {
        sample(
            &samples,
            &format!("piarchive_job_failures_total{{kind=\"{kind}\"}}"),
        );
    }
    let count = sample(&samples, "piarchive_part_upload_seconds_count");
    assert!(
        count >= parts_total,
        "{count} uploads for {parts_total} parts"
    );
    assert_eq!(
        sample(
            &samples,
            "piarchive_part_upload_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    assert!(sample(&samples, "piarchive_part_upload_seconds_sum") > 0.0);
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(name, _)| name.starts_with("piarchive_part_upload_seconds_bucket"))
        .map(|(_, value)| *value)
        .collect();
    assert!(buckets.len() >= 2 && buckets.windows(2).all(|w| w[0] <= w[1]));
    for name in [
        "piarchive_bytes_uploaded_total",
        "piarchive_part_upload_seconds",
        "piarchive_queue_length",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
}

/// Reads the raw SSE stream until `done` says so, with a time limit.
fn read_stream_until(
    stream: &mut std::net::TcpStream,
    seen: &mut String,
    limit: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    while !done(seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no {what} within {limit:?}; got:\n{seen}");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the stream closed before {what}; got:\n{seen}"),
            Ok(read) => seen.push_str(&String::from_utf8_lossy(&buffer[..read])),
            Err(err) => panic!("no {what}: {err}; got:\n{seen}"),
        }
    }
}

#[test]
fn the_event_stream_over_a_raw_socket_sends_state_changes_and_keepalives() {
    use std::io::Write;
    let server = TestServer::start();
    let admin = server.admin();
    let unauthenticated = crate::support::raw_http(
        &server.addr,
        b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    assert!(
        unauthenticated.starts_with("HTTP/1.1 401"),
        "{unauthenticated}"
    );

    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCookie: {}\r\n\r\n",
        server.addr,
        admin.cookie.as_deref().unwrap()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut seen = String::new();
    read_stream_until(&mut stream, &mut seen, LIMIT, "the greeting", |s| {
        s.contains(": connected\n\n")
    });
    let (head, _) = seen.split_once("\r\n\r\n").expect("a response head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(
        !head.contains("upgrade") && !head.contains("content-length"),
        "an event stream is neither an upgrade nor of known length: {head}"
    );

    // A state change arrives as it happens.
    let data = random_bytes(3 * 1024 * 1024, 13);
    let id = admin.upload_ok("streamed", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let backed_up = format!("\"id\":\"{id}\"");
    read_stream_until(&mut stream, &mut seen, LIMIT, "the backed_up event", |s| {
        s.split("\n\n").any(|event| {
            event.starts_with("event: archive\ndata: ")
                && event.contains(&backed_up)
                && event.contains("\"state\":\"backed_up\"")
        })
    });
    assert!(
        seen.contains(&format!("event: part\ndata: {{\"archive_id\":\"{id}\"")),
        "{seen}"
    );
    // Every event is `event:` + one `data:` line of JSON.
    for event in seen.split("\n\n").filter(|e| e.starts_with("event: ")) {
        let mut lines = event.lines();
        lines.next();
        let data = lines.next().and_then(|l| l.strip_prefix("data: "));
        let parsed: Result<Value, _> = serde_json::from_str(data.unwrap_or_default());
        assert!(parsed.is_ok(), "{event:?}");
    }

    // Quiet for a while: a keep-alive comment, so proxies hold on.
    let before = seen.len();
    read_stream_until(
        &mut stream,
        &mut seen,
        Duration::from_secs(40),
        "a keep-alive",
        |s| s[before..].contains(": keepalive\n\n"),
    );
}
