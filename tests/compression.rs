//! Compression before encryption, end to end through the real binary and
//! the signature-checking S3 server: compressible, incompressible and mixed
//! archives back up smaller where they can and cache back bit-exact; the
//! API shows their size on the remote and `/metrics` the bytes before and
//! after; a compressed part holding a decompression bomb (sealed with the
//! real key by this test) ends `damaged` with the part named and memory
//! bounded; parts sealed in the previous format (1) still cache back.

use serde_json::{json, Value};

use piarchive::repo::{self, ObjectId, RepoConfig, RepoKeys};

use crate::remote_engine::{s3_json, uncache_and_cache_back, wait_state};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::s3_target::{S3Target, StoredObjects};
use crate::support::{random_bytes, Client, TestServer};

const PASSPHRASE: &str = "compress before you seal";

/// Deterministic prose-like text: words drawn from a small vocabulary, so
/// it compresses about as well as documents do (3-4x), not like a repeat.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "family",
        "photos",
        "from",
        "summer",
        "holiday",
        "letters",
        "and",
        "tax",
        "returns",
        "grandmother",
        "recipe",
        "garden",
        "kept",
        "on",
        "disk",
        "backup",
        "of",
        "every",
        "year",
        "school",
        "reports",
        "music",
        "video",
        "house",
        "insurance",
    ];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize].as_bytes());
        out.push(if state.is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(len);
    out
}

/// An appliance set up with [`PASSPHRASE`], backing up to `prefix` on `s3`.
fn appliance(s3: &S3TestServer, prefix: &str) -> (TestServer, Client) {
    let server = TestServer::start();
    let mut admin = server.client();
    let resp = admin.post_json(
        "/api/v1/setup",
        &json!({"username": "admin", "password": "admin password",
                "recovery_passphrase": PASSPHRASE}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    admin.adopt_session(&resp);
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/remote",
        &s3_json(&s3.endpoint(), prefix, SECRET_KEY),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    (server, admin)
}

/// The bucket's keys, unlocked from its config with the passphrase.
fn keys(s3: &S3TestServer, prefix: &str) -> RepoKeys {
    let config = s3
        .stored_object(&format!("{prefix}/{}", repo::CONFIG_KEY))
        .expect("the config object");
    RepoConfig::decode(&config)
        .unwrap()
        .unlock(PASSPHRASE)
        .unwrap()
}

/// `(full key, offset, length)` of each part of an archive as the API lists it.
fn part_objects(keys: &RepoKeys, prefix: &str, archive: &Value) -> Vec<(String, usize, usize)> {
    archive["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|part| {
            let sha: [u8; 32] = hex::decode(part["sha256"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let key = format!("{prefix}/{}", repo::part_key(&keys.object_id(&sha)));
            let offset = part["offset"].as_u64().unwrap() as usize;
            (key, offset, part["size"].as_u64().unwrap() as usize)
        })
        .collect()
}

fn upload(admin: &Client, name: &str, data: &[u8]) -> String {
    let id = admin.upload_ok(name, data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    id
}

fn metric(admin: &Client, name: &str) -> f64 {
    let text = admin.get("/metrics").text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn compressible_incompressible_and_mixed_archives_round_trip_bit_exact() {
    let s3 = S3TestServer::start();
    let (_server, admin) = appliance(&s3, "family");
    let compressible = text(6 * 1024 * 1024 + 77, 1);
    let incompressible = random_bytes(5 * 1024 * 1024 + 5, 2);
    let mut mixed = random_bytes(3 * 1024 * 1024, 3);
    mixed.extend_from_slice(&text(4 * 1024 * 1024, 4));
    mixed.extend_from_slice(&random_bytes(2 * 1024 * 1024 + 9, 5));
    let cases = [
        ("letters", &compressible),
        ("photos", &incompressible),
        ("mixed", &mixed),
    ];
    let ids: Vec<String> = cases
        .iter()
        .map(|(name, data)| upload(&admin, name, data))
        .collect();
    let keys = keys(&s3, "family");
    let mut stored_of = Vec::new();
    for ((name, data), id) in cases.iter().zip(&ids) {
        let done = wait_state(&admin, id, "backed_up");
        let parts = part_objects(&keys, "family", &done);
        let stored: usize = parts
            .iter()
            .map(|(key, _, _)| s3.stored_object(key).expect("each part is stored").len())
            .sum();
        assert_eq!(done["size"], data.len() as u64);
        assert_eq!(done["stored_size"], stored as u64, "{name}: {done}");
        // What the parts take sealed as they are (format 3: a header, a
        // flag byte, a tag per 64 KiB segment).
        let as_is: usize = parts
            .iter()
            .map(|(_, _, length)| repo::max_sealed_len(*length))
            .sum();
        stored_of.push((stored, as_is));
    }
    let (letters, _) = stored_of[0];
    assert!(
        letters * 2 < compressible.len(),
        "text is stored compressed: {letters} of {} bytes",
        compressible.len()
    );
    let (photos, photos_as_is) = stored_of[1];
    assert_eq!(
        photos, photos_as_is,
        "random data is stored as it is, with a flag byte per part"
    );
    assert!(photos < incompressible.len() + incompressible.len() / 2000 + 1024);
    let (mixed_stored, _) = stored_of[2];
    assert!(
        mixed_stored < mixed.len() * 9 / 10,
        "the text in the middle is compressed: {mixed_stored} of {}",
        mixed.len()
    );
    assert!(mixed_stored > 5 * 1024 * 1024, "the random data is not");

    let before = metric(&admin, "piarchive_part_bytes_before_compression_total");
    let after = metric(&admin, "piarchive_part_bytes_after_compression_total");
    let total: usize = cases.iter().map(|(_, data)| data.len()).sum();
    assert_eq!(before as usize, total);
    assert_eq!(
        after as usize,
        stored_of.iter().map(|(s, _)| s).sum::<usize>()
    );
    let resp = admin.get("/admin");
    assert!(resp.text().contains("compression saved"), "{}", resp.text());

    for ((_, data), id) in cases.iter().zip(&ids) {
        uncache_and_cache_back(&admin, id, data);
    }
}

/// One zstd frame of `len` zeros: a few KiB that unpack to `len` bytes.
fn zero_bomb(len: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    for _ in 0..len / zeros.len() {
        std::io::Write::write_all(&mut encoder, &zeros).unwrap();
    }
    encoder.finish().unwrap()
}

/// Peak resident memory of a process, from /proc, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_compressed_part_holding_a_decompression_bomb_ends_damaged_with_the_part_named() {
    let s3 = S3TestServer::start();
    let (server, admin) = appliance(&s3, "bomb");
    let data = text(3 * 1024 * 1024, 7);
    let id = upload(&admin, "letters", &data);
    let done = wait_state(&admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");

    // 4 GiB of zeros in one frame, sealed as a valid format-2 compressed
    // part (flag 1) under the part's own name and key.
    let keys = keys(&s3, "bomb");
    let parts = part_objects(&keys, "bomb", &done);
    let (key, _, length) = &parts[0];
    let mut body = vec![repo::compress::FLAG_ZSTD];
    body.extend_from_slice(&zero_bomb(4 << 30));
    assert!(body.len() < *length, "the bomb is smaller than the part");
    let object_id = ObjectId::parse(key.rsplit('/').next().unwrap()).unwrap();
    let sealed = keys
        .encrypt_part(&object_id, [9; repo::NONCE_LEN], &body)
        .unwrap();
    assert!(repo::sealed_len_fits(*length as u64, sealed.len() as u64));
    s3.store_object(key, &sealed);
    let before = s3.stored_keys("bomb/parts/");

    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let damaged = wait_state(&admin, &id, "damaged");
    let reason = damaged["last_error"].as_str().expect("a reason");
    assert!(
        reason.contains("Part 0") && reason.contains("unpacks to more than"),
        "{reason}"
    );
    assert!(reason.contains("Nothing was deleted"), "{reason}");
    assert_eq!(s3.stored_keys("bomb/parts/"), before);
    let peak = peak_rss(server.pid());
    assert!(
        peak < 256 << 20,
        "peak RSS {} MiB while refusing the bomb",
        peak >> 20
    );
}

#[test]
fn parts_sealed_in_the_previous_format_still_cache_back_and_verify() {
    let s3 = S3TestServer::start();
    let (_server, admin) = appliance(&s3, "old");
    let mut data = text(4 * 1024 * 1024, 8);
    data.extend_from_slice(&random_bytes(3 * 1024 * 1024, 9));
    let id = upload(&admin, "old parts", &data);
    let done = wait_state(&admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");

    // Every part as format 1 wrote it: the part alone, `length + 40` bytes.
    let keys = keys(&s3, "old");
    for (key, offset, length) in part_objects(&keys, "old", &done) {
        let object_id = ObjectId::parse(key.rsplit('/').next().unwrap()).unwrap();
        let plaintext = &data[offset..offset + length];
        let sealed = keys
            .encrypt_part(&object_id, [3; repo::NONCE_LEN], plaintext)
            .unwrap();
        assert_eq!(sealed.len(), length + repo::PART_OVERHEAD);
        s3.store_object(&key, &sealed);
    }
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "backed_up");
    let back = admin.get(&format!("/api/v1/archives/{id}/content")).body;
    assert!(back == data, "the cached file differs from the upload");

    // A verification downloading every part reads them too.
    let report = crate::verify::verify(&admin, &id, 100);
    assert_eq!(report["damaged"], 0, "{report}");
    assert_eq!(report["checked"], report["ok"], "{report}");
    assert_eq!(
        crate::remote_engine::archive(&admin, &id)["state"],
        "backed_up"
    );
}

#[test]
fn parts_sealed_in_format_2_still_cache_back() {
    let s3 = S3TestServer::start();
    let (_server, admin) = appliance(&s3, "two");
    let mut data = text(4 * 1024 * 1024, 10);
    data.extend_from_slice(&random_bytes(3 * 1024 * 1024, 11));
    let id = upload(&admin, "format 2 parts", &data);
    let done = wait_state(&admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");
    // Every part as format 2 wrote it: one tag for the whole part.
    let keys = keys(&s3, "two");
    for (key, offset, length) in part_objects(&keys, "two", &done) {
        let object_id = ObjectId::parse(key.rsplit('/').next().unwrap()).unwrap();
        let plaintext = data[offset..offset + length].to_vec();
        let sealed = keys
            .seal_part_format2(&object_id, [4; repo::NONCE_LEN], plaintext)
            .unwrap();
        assert!(!sealed.starts_with(b"piarch3"));
        s3.store_object(&key, &sealed);
    }
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "backed_up");
    let back = admin.get(&format!("/api/v1/archives/{id}/content")).body;
    assert!(back == data, "the cached file differs from the upload");
}

/// A part whose last byte was changed in the bucket, in format 3 (as
/// uploaded) and in format 2: the archive ends damaged with the tag named,
/// and no byte the tag did not vouch for reached the file being assembled:
/// the format-3 part stops before its last segment, the format-2 part at
/// its start.
#[test]
fn a_tampered_part_is_refused_before_its_bytes_reach_the_disk() {
    let s3 = S3TestServer::start();
    let (server, admin) = appliance(&s3, "tamper");
    for (format, seed) in [(3, 12), (2, 13)] {
        let data = random_bytes(1024 * 1024 + 300 * 1024, seed);
        let id = upload(&admin, &format!("format {format}"), &data);
        let done = wait_state(&admin, &id, "backed_up");
        let keys = keys(&s3, "tamper");
        let parts = part_objects(&keys, "tamper", &done);
        assert_eq!(parts.len(), 1, "one part");
        let (key, _, length) = parts[0].clone();
        let object_id = ObjectId::parse(key.rsplit('/').next().unwrap()).unwrap();
        let uploaded = s3.stored_object(&key).expect("stored");
        assert!(
            uploaded.starts_with(b"piarch3\n"),
            "new uploads are format 3"
        );
        let (mut sealed, reason, trusted) = if format == 3 {
            // 21 segments: the first 20 (the first holding the flag byte)
            // are sound and may be written.
            (
                uploaded,
                "authentication tag of its segment 20",
                20 * 64 * 1024 - 1,
            )
        } else {
            let sealed = keys
                .seal_part_format2(&object_id, [5; repo::NONCE_LEN], data.clone())
                .unwrap();
            (sealed, "authentication tag does not match", 0)
        };
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
        wait_state(&admin, &id, "uncached");
        *sealed.last_mut().unwrap() ^= 1;
        s3.store_object(&key, &sealed);
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
        let damaged = wait_state(&admin, &id, "damaged");
        let error = damaged["last_error"].as_str().expect("a reason");
        assert!(
            error.contains("Part 0") && error.contains(reason),
            "format {format}: {error}"
        );
        let partial = server
            .data_dir()
            .join("archives")
            .join(format!("{id}.partial"));
        let written = std::fs::read(&partial).unwrap_or_default();
        let end = written.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
        assert!(end <= trusted, "format {format}: {end} bytes written");
        // The sound segments did land (so the check above saw the file).
        assert!(format == 2 || end + 64 > trusted, "format 3: {end} bytes");
        assert_eq!(&written[..end], &data[..end], "format {format}");
        assert!(length > trusted);
    }
}
