//! The remote suites against Garage, a second real S3 server (the `garage`
//! binary, version 2, installed by `tests/garage/install`), and the path
//! for a family that outgrows one box: a three-node Garage cluster
//! (replication factor 3) that loses a node in the middle of a backup.
//!
//! Owns only the Garage-specific tests; the shared cases live in
//! `remote.rs` and `remote_engine.rs` and the cluster harness in
//! `support/garage.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::remote_engine::{
    archive, download, s3_json, set_remote, uncache_and_cache_back, wait_state, LIMIT,
};
use crate::support::garage::{garage_binary_among, GarageCluster, GarageError};
use crate::support::s3_server::SECRET_KEY;
use crate::support::{random_bytes, sha256_hex, wait_until};
use piarchive::remote::s3::S3Client;
use piarchive::remote::{ErrorKind, Remote, RemoteSettings, TransferOptions};

/// The S3 client cases of `remote.rs` against a one-node Garage.
mod client {
    use crate::support::garage::GarageCluster;

    crate::remote::s3_client_tests!(GarageCluster);
}

/// The engine cases of `remote_engine.rs` against a one-node Garage.
mod engine {
    use crate::support::garage::GarageCluster;

    crate::remote_engine::s3_engine_tests!(GarageCluster);
}

#[test]
fn a_missing_garage_binary_names_the_install_step() {
    let temp = tempfile::tempdir().unwrap();
    let error = garage_binary_among(vec![temp.path().join("garage")]).unwrap_err();
    assert!(matches!(error, GarageError::NotInstalled), "{error}");
    let message = error.to_string();
    assert!(message.contains("tests/garage/install"), "{message}");
    assert!(message.contains("garage --version 2.5.0"), "{message}");
}

#[test]
fn the_region_is_what_s3_region_says() {
    let cluster = GarageCluster::start(1);
    let options = TransferOptions {
        timeout: Duration::from_secs(5),
        max_attempts: 2,
        base_backoff: Duration::from_millis(5),
    };
    let mut settings = cluster.settings("region");
    S3Client::new(&settings, &options)
        .unwrap()
        .put("k", b"signed for eu-test-1")
        .unwrap();
    if let RemoteSettings::S3 { region, .. } = &mut settings {
        *region = "us-east-1".to_owned();
    }
    let error = S3Client::new(&settings, &options)
        .unwrap()
        .put("k", b"signed for us-east-1")
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
    assert!(error.message.contains("region"), "{}", error.message);
}

/// The README's "several appliances, one Garage cluster" layout: each
/// appliance has its own key allowed on its own bucket and cannot read the
/// other's.
#[test]
fn two_appliances_with_their_own_bucket_and_key_are_kept_apart() {
    let cluster = GarageCluster::start(1);
    let second = cluster.add_bucket_and_key("piarchive-grandma", "grandma");
    let options = TransferOptions {
        timeout: Duration::from_secs(5),
        max_attempts: 2,
        base_backoff: Duration::from_millis(5),
    };
    let first_remote = S3Client::new(&cluster.settings("piarchive"), &options).unwrap();
    let second_remote = S3Client::new(&second, &options).unwrap();
    first_remote.put("config", b"first appliance").unwrap();
    second_remote.put("config", b"second appliance").unwrap();
    assert_eq!(first_remote.get("config").unwrap(), b"first appliance");
    assert_eq!(second_remote.get("config").unwrap(), b"second appliance");

    // The second key on the first bucket is refused.
    let RemoteSettings::S3 {
        access_key_id: second_key,
        secret_access_key: second_secret,
        ..
    } = &second
    else {
        panic!("Garage settings are S3 settings");
    };
    let mut trespass = cluster.settings("piarchive");
    if let RemoteSettings::S3 {
        access_key_id,
        secret_access_key,
        ..
    } = &mut trespass
    {
        *access_key_id = second_key.clone();
        *secret_access_key = second_secret.clone();
    }
    let error = S3Client::new(&trespass, &options)
        .unwrap()
        .get("config")
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
    assert!(error.message.contains("permission"), "{}", error.message);
}

/// Replication factor 3, write quorum 2: one of three nodes is killed while
/// the parts are uploading, the backup still finishes, and the archive
/// caches back bit-exact from the two that are left; then that node comes
/// back, another goes, and it caches back again.
#[test]
fn a_three_node_cluster_loses_a_node_mid_backup_and_still_caches_back_bit_exact() {
    let started = Instant::now();
    let mut cluster = GarageCluster::start(3);
    let cluster_up = started.elapsed();
    let server = crate::support::TestServer::start();
    let admin = server.admin();
    // Throttled so the upload is still going when the node is stopped.
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["upload_bandwidth_bytes_per_sec"] = json!(4 * 1024 * 1024);
    let resp = admin.send_json("PUT", "/api/v1/admin/settings", &settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // piarchive talks to node 0; node 2 is the one that dies.
    set_remote(&admin, &s3_json(&cluster.endpoint, "family", SECRET_KEY));

    let data = random_bytes(40 * 1024 * 1024 + 321, 40);
    let id = admin.upload_ok("forty", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut before = Value::Null;
    wait_until(LIMIT, || {
        before = archive(&admin, &id);
        let parts = before["parts"].as_array().cloned().unwrap_or_default();
        let remote = parts.iter().filter(|part| part["remote"] == true).count();
        assert!(
            parts.is_empty() || remote < parts.len(),
            "every part was uploaded before a node could be stopped: {before}"
        );
        remote >= 1
    });
    cluster.stop_node(2);
    let stopped = Instant::now();
    let parts = before["parts"].as_array().unwrap();
    let remote_before = parts.iter().filter(|part| part["remote"] == true).count();

    let done = wait_state(&admin, &id, "backed_up");
    assert_eq!(done["parts_remote"], done["parts_total"]);
    assert!(done["last_error"].is_null(), "{done}");
    eprintln!(
        "garage cluster of 3 up in {cluster_up:?}; node 2 killed with {remote_before} of {} \
         parts uploaded; backed up {:?} later; health with node 2 down: {}",
        parts.len(),
        stopped.elapsed(),
        cluster.health().trim()
    );
    assert!(!cluster.node_running(2), "node 2 stayed down");
    uncache_and_cache_back(&admin, &id, &data);
    assert_eq!(
        sha256_hex(&download(&admin, &id)),
        done["sha256"].as_str().unwrap()
    );

    // Any two of the three nodes hold every part.
    cluster.restart_node(2);
    cluster.stop_node(1);
    uncache_and_cache_back(&admin, &id, &data);
    eprintln!("whole test took {:?}", started.elapsed());
}
