//! Fetch-back and verification with two destinations (issue 24): the real
//! binary backs up to two signature-checking s3s-fs servers (the main
//! destination and a copy added with `POST /api/v1/admin/remotes`); parts
//! are corrupted or deleted on one behind its back. A fetch-back reads a
//! damaged part from the other copy, bit-exact, and says which copy was
//! damaged; verification checks both destinations, names where each
//! damaged part was, and stores it again from the local file or from the
//! other destination.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::remote_engine::{archive, download, s3_json, set_remote, wait_state};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, sha256_hex, Client, TestServer};

const PREFIX: &str = "family";
const COPY_NAME: &str = "grandpa's NAS";

/// Adds a copy destination on `s3` named [`COPY_NAME`]; its id.
pub(crate) fn add_copy(admin: &Client, s3: &S3TestServer, endpoint: &str) -> String {
    let mut settings = s3_json(endpoint, PREFIX, SECRET_KEY);
    settings["name"] = json!(COPY_NAME);
    let resp = admin.post_json("/api/v1/admin/remotes", &settings);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let _ = s3;
    let body = resp.json();
    body["id"]
        .as_str()
        .or_else(|| body["destination"]["id"].as_str())
        .unwrap_or_else(|| panic!("an id in {body}"))
        .to_string()
}

/// An appliance backing up to `main` with a copy on `copy`, and one
/// archive of several parts complete on both.
fn two_destinations(
    main: &S3TestServer,
    copy: &S3TestServer,
) -> (TestServer, Client, String, Vec<u8>) {
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&main.endpoint, PREFIX, SECRET_KEY));
    add_copy(&admin, copy, &copy.endpoint);
    let data = random_bytes(20 * 1024 * 1024 + 5, 24);
    let id = admin.upload_ok("photos \"2024\" <&> 📷", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_state(&admin, &id, "backed_up");
    assert!(done["parts_total"].as_u64().unwrap() >= 3, "{done}");
    let copies = done["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 2, "{done}");
    assert!(
        copies.iter().all(|copy| copy["state"] == "complete"),
        "{done}"
    );
    (server, admin, id, data)
}

fn parts_of(s3: &S3TestServer) -> Vec<PathBuf> {
    files_under(&s3.object_path(&format!("{PREFIX}/parts")))
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
}

fn uncache(admin: &Client, id: &str) {
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(admin, id, "uncached");
}

fn log_messages(admin: &Client, query: &str) -> Vec<String> {
    let resp = admin.get(&format!("/api/v1/admin/log?{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn verify(admin: &Client, id: &str) -> Value {
    let resp = admin.request(
        "POST",
        &format!("/api/v1/admin/archives/{id}/verify"),
        &[],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// The destination entries of a verification, by id: (checked, damaged).
fn per_destination(verification: &Value) -> Vec<(String, u64, u64)> {
    verification["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|check| {
            (
                check["name"].as_str().unwrap().to_string(),
                check["checked"].as_u64().unwrap(),
                check["damaged"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_fetch_back_reads_a_part_damaged_on_the_main_destination_from_the_copy() {
    let main = S3TestServer::start();
    let copy = S3TestServer::start();
    let (_server, admin, id, data) = two_destinations(&main, &copy);
    uncache(&admin, &id);

    // One part corrupted on the main destination, another deleted there.
    let objects = parts_of(&main);
    assert_eq!(objects.len(), parts_of(&copy).len());
    let corrupted = objects[1].clone();
    flip_a_byte(&corrupted);
    std::fs::remove_file(&objects[2]).unwrap();

    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let back = wait_state(&admin, &id, "backed_up");
    assert_eq!(sha256_hex(&download(&admin, &id)), sha256_hex(&data));
    // The archive and the system log say which copy was damaged and where
    // the parts came from instead.
    let note = back["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        note.contains(&format!("was damaged; it was read from {COPY_NAME}."))
            && note.contains("was missing on")
            && note.contains(&format!("it was read from {COPY_NAME}.")),
        "{back}"
    );
    let warnings = log_messages(&admin, "source=storage&level=warn");
    assert!(
        warnings.iter().any(|message| message.contains(&note)),
        "{note:?} not in {warnings:?}"
    );
    // Both parts were stored on the main destination again from the copy
    // fetched back: a full verification finds both destinations whole.
    let infos = log_messages(&admin, "source=storage&level=info");
    assert!(
        infos
            .iter()
            .filter(|message| message.contains("again from the copy fetched back"))
            .count()
            >= 2,
        "{infos:?}"
    );
    assert!(objects[2].is_file(), "the missing part is back");
    let verification = verify(&admin, &id);
    assert_eq!(verification["damaged"], 0, "{verification}");
    let checked = per_destination(&verification);
    assert_eq!(checked.len(), 2, "{verification}");
    assert!(checked
        .iter()
        .all(|(_, parts, damaged)| *parts == objects.len() as u64 && *damaged == 0));
    assert_eq!(archive(&admin, &id)["state"], "backed_up");
}

#[test]
fn verification_checks_both_destinations_and_repairs_each_from_the_other() {
    let main = S3TestServer::start();
    let copy = S3TestServer::start();
    let (_server, admin, id, data) = two_destinations(&main, &copy);
    let parts = parts_of(&main).len() as u64;
    let verification = verify(&admin, &id);
    assert_eq!(verification["checked"], 2 * parts, "{verification}");
    assert_eq!(verification["damaged"], 0, "{verification}");
    assert_eq!(
        per_destination(&verification)
            .into_iter()
            .map(|(name, _, _)| name)
            .nth(1),
        Some(COPY_NAME.to_string())
    );

    // Local copy present: a part corrupted on the copy is uploaded again
    // from it, and the answer names the copy.
    let on_copy = parts_of(&copy);
    flip_a_byte(&on_copy[0]);
    let verification = verify(&admin, &id);
    assert_eq!(verification["damaged"], 1, "{verification}");
    let copy_check = &verification["destinations"][1];
    assert_eq!(copy_check["damaged"], 1, "{verification}");
    let damaged = &copy_check["damaged_parts"][0];
    assert!(
        damaged["problem"]
            .as_str()
            .unwrap()
            .contains(&format!("is corrupt on {COPY_NAME}")),
        "{verification}"
    );
    assert_eq!(damaged["repaired"], true, "{verification}");
    assert_eq!(verification["destinations"][0]["damaged"], 0);
    assert_eq!(verification["state"], "backed_up");

    // No local copy: a part deleted on the main destination and another
    // corrupted on the copy are each stored again from the other one.
    uncache(&admin, &id);
    let on_main = parts_of(&main);
    std::fs::remove_file(&on_main[0]).unwrap();
    flip_a_byte(&parts_of(&copy)[1]);
    let verification = verify(&admin, &id);
    assert_eq!(verification["damaged"], 2, "{verification}");
    let main_part = &verification["destinations"][0]["damaged_parts"][0];
    assert!(
        main_part["problem"]
            .as_str()
            .unwrap()
            .contains("is missing from the remote"),
        "{verification}"
    );
    assert_eq!(main_part["repaired_from"], COPY_NAME, "{verification}");
    let copy_part = &verification["destinations"][1]["damaged_parts"][0];
    assert_eq!(copy_part["repaired"], true, "{verification}");
    assert!(copy_part["repaired_from"].is_string(), "{verification}");
    assert_eq!(verification["state"], "uncached", "{verification}");
    let warnings = log_messages(&admin, "source=verify&level=warn");
    assert!(
        warnings
            .iter()
            .any(|message| message
                .contains(&format!("stored there again from the copy on {COPY_NAME}"))),
        "{warnings:?}"
    );
    assert!(
        on_main[0].is_file(),
        "the missing part is back on the main destination"
    );
    let verification = verify(&admin, &id);
    assert_eq!(verification["damaged"], 0, "{verification}");

    // And it comes back bit-exact.
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "backed_up");
    assert_eq!(sha256_hex(&download(&admin, &id)), sha256_hex(&data));
}
