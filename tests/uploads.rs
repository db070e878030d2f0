//! Resumable (tus 1.0.0) and one-shot uploads under faults: wrong offsets,
//! over-long bodies, cut connections, kill -9 of the server.

use base64::Engine as _;
use serde_json::json;

use crate::support::{random_bytes, raw_http, sha256_hex, Client, TestServer};

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn create(client: &Client, length: usize, name: &str) -> String {
    let metadata = format!(
        "name {},filename {}",
        b64(name),
        b64(&format!("{name}.bin"))
    );
    let resp = client.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &length.to_string()),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("Tus-Resumable"), Some("1.0.0"));
    resp.header("Location").unwrap().to_string()
}

fn offset(client: &Client, location: &str) -> (u64, Option<String>) {
    let resp = client.request("HEAD", location, &[("Tus-Resumable", "1.0.0")], None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Cache-Control"), Some("no-store"));
    (
        resp.header("Upload-Offset").unwrap().parse().unwrap(),
        resp.header("Archive-Id").map(str::to_string),
    )
}

fn patch(client: &Client, location: &str, at: u64, body: &[u8]) -> crate::support::Resp {
    client.request(
        "PATCH",
        location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", &at.to_string()),
        ],
        Some(body),
    )
}

#[test]
fn tus_upload_in_pieces_becomes_an_archive() {
    let server = TestServer::start();
    let admin = server.admin();
    let options = admin.request("OPTIONS", "/api/v1/uploads", &[], None);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("Tus-Version"), Some("1.0.0"));
    assert!(options
        .header("Tus-Extension")
        .unwrap()
        .contains("creation"));
    assert!(options
        .header("Tus-Extension")
        .unwrap()
        .contains("termination"));

    let data = random_bytes(7 * 1024 * 1024 + 5, 4);
    let location = create(&admin, data.len(), "piecewise ✓");
    assert_eq!(offset(&admin, &location), (0, None));
    let mut at = 0;
    for piece in data.chunks(3 * 1024 * 1024) {
        let resp = patch(&admin, &location, at, piece);
        assert_eq!(resp.status, 204, "{}", resp.text());
        at += piece.len() as u64;
        assert_eq!(resp.header("Upload-Offset").unwrap(), at.to_string());
    }
    let (end, archive_id) = offset(&admin, &location);
    assert_eq!(end, data.len() as u64);
    let archive_id = archive_id.expect("HEAD names the archive once complete");
    let archive = admin.get(&format!("/api/v1/archives/{archive_id}")).json();
    assert_eq!(archive["name"], "piecewise ✓");
    assert_eq!(archive["filename"], "piecewise ✓.bin");
    assert_eq!(archive["sha256"], sha256_hex(&data));
    let content = admin.get(&format!("/api/v1/archives/{archive_id}/content"));
    assert_eq!(sha256_hex(&content.body), sha256_hex(&data));
}

#[test]
fn tus_protocol_errors_are_refused_with_sentences() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let location = create(&admin, 100, "strict");

    let no_version = admin.request("POST", "/api/v1/uploads", &[("Upload-Length", "5")], None);
    assert_eq!(no_version.status, 412);
    assert_eq!(no_version.header("Tus-Version"), Some("1.0.0"));
    let no_length = admin.request(
        "POST",
        "/api/v1/uploads",
        &[("Tus-Resumable", "1.0.0")],
        None,
    );
    assert_eq!(no_length.status, 400);
    assert!(no_length.message().contains("Upload-Length"));

    assert_eq!(patch(&admin, &location, 0, b"0123456789").status, 204);
    let wrong_offset = patch(&admin, &location, 5, b"abc");
    assert_eq!(wrong_offset.status, 409);
    assert!(wrong_offset.message().contains("offset 10, not 5"));
    let wrong_type = admin.request(
        "PATCH",
        &location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "text/plain"),
            ("Upload-Offset", "10"),
        ],
        Some(b"abc"),
    );
    assert_eq!(wrong_type.status, 415);
    let too_long = patch(&admin, &location, 10, &[7u8; 91]);
    assert_eq!(too_long.status, 413);
    assert!(too_long
        .message()
        .contains("longer than the declared upload length of 100 bytes"));
    assert_eq!(
        offset(&admin, &location).0,
        10,
        "the refused bodies changed nothing"
    );

    // Another user's upload does not exist for them.
    let stolen = patch(&bob, &location, 10, b"x");
    assert_eq!(stolen.status, 404);
    assert_eq!(
        bob.request("HEAD", &location, &[("Tus-Resumable", "1.0.0")], None)
            .status,
        404
    );

    // Termination removes the bytes.
    assert_eq!(
        admin
            .request("DELETE", &location, &[("Tus-Resumable", "1.0.0")], None)
            .status,
        204
    );
    assert_eq!(
        admin
            .request("HEAD", &location, &[("Tus-Resumable", "1.0.0")], None)
            .status,
        404
    );
    assert_eq!(
        std::fs::read_dir(server.data_dir().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(admin.get("/api/v1/archives").json(), json!([]));
}

/// A PATCH whose chunked body runs past the declared length is undone.
#[test]
fn chunked_body_longer_than_the_upload_is_undone() {
    let server = TestServer::start();
    let admin = server.admin();
    let location = create(&admin, 10, "chunked");
    let body = b"0123456789ABCDEF";
    let request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        admin.cookie.as_deref().unwrap(),
        admin.csrf.as_deref().unwrap(),
        body.len(),
        std::str::from_utf8(body).unwrap()
    );
    let answer = raw_http(&server.addr, request.as_bytes(), false);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(offset(&admin, &location), (0, None));
    assert_eq!(
        admin.get("/api/v1/archives").json(),
        json!([]),
        "no archive from a bad body"
    );
    // The upload still completes with a correct body.
    assert_eq!(patch(&admin, &location, 0, b"0123456789").status, 204);
    assert!(offset(&admin, &location).1.is_some());
}

#[test]
fn a_cut_connection_keeps_what_arrived_and_resumes() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(3 * 1024 * 1024, 5);
    let location = create(&admin, data.len(), "cut");
    let sent = 2 * 1024 * 1024 + 17;
    let mut request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        admin.cookie.as_deref().unwrap(),
        admin.csrf.as_deref().unwrap(),
        data.len()
    )
    .into_bytes();
    request.extend_from_slice(&data[..sent]);
    // Send part of the body, then close the connection.
    raw_http(&server.addr, &request, true);
    crate::support::wait_until(std::time::Duration::from_secs(30), || {
        offset(&admin, &location).0 == sent as u64
    });
    assert_eq!(
        admin.get("/api/v1/archives").json(),
        json!([]),
        "a cut upload is not an archive"
    );
    let resp = patch(&admin, &location, sent as u64, &data[sent..]);
    assert_eq!(resp.status, 204);
    let archive_id = resp.header("Archive-Id").unwrap().to_string();
    assert_eq!(
        admin.get(&format!("/api/v1/archives/{archive_id}")).json()["sha256"],
        sha256_hex(&data)
    );
}

#[test]
fn a_cut_one_shot_upload_stores_nothing() {
    let server = TestServer::start();
    let admin = server.admin();
    let request = format!(
        "PUT /api/v1/archives?name=cut HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nContent-Length: 1000000\r\n\r\npartial body",
        admin.cookie.as_deref().unwrap(),
        admin.csrf.as_deref().unwrap()
    );
    raw_http(&server.addr, request.as_bytes(), true);
    crate::support::wait_until(std::time::Duration::from_secs(30), || {
        std::fs::read_dir(server.data_dir().join("uploads"))
            .unwrap()
            .count()
            == 0
    });
    assert_eq!(admin.get("/api/v1/archives").json(), json!([]));
    // The one-shot route needs a length.
    let chunked = format!(
        "PUT /api/v1/archives?name=x HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        admin.cookie.as_deref().unwrap(),
        admin.csrf.as_deref().unwrap()
    );
    let answer = raw_http(&server.addr, chunked.as_bytes(), false);
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
}

#[test]
fn kill_9_during_an_upload_leaves_it_resumable_and_no_half_archive() {
    let mut server = TestServer::start();
    let mut admin = server.admin();
    let data = random_bytes(12 * 1024 * 1024 + 3, 6);
    let location = create(&admin, data.len(), "survivor");
    let first = 5 * 1024 * 1024 + 1;
    assert_eq!(patch(&admin, &location, 0, &data[..first]).status, 204);

    // Start another PATCH and kill the server while its body streams in.
    let mut request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {first}\r\nContent-Length: {}\r\n\r\n",
        admin.cookie.as_deref().unwrap(),
        admin.csrf.as_deref().unwrap(),
        data.len() - first
    )
    .into_bytes();
    request.extend_from_slice(&data[first..first + 3 * 1024 * 1024]);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    std::io::Write::write_all(&mut stream, &request).unwrap();
    let upload_file = server
        .data_dir()
        .join("uploads")
        .join(location.rsplit('/').next().unwrap());
    crate::support::wait_until(std::time::Duration::from_secs(30), || {
        std::fs::metadata(&upload_file)
            .map(|m| m.len() > first as u64)
            .unwrap_or(false)
    });
    server.restart();
    drop(stream);

    // Sessions live in LMDB: the same cookie still works.
    assert_eq!(admin.get("/api/v1/me").status, 200);
    assert_eq!(
        admin.get("/api/v1/archives").json(),
        json!([]),
        "no half archive"
    );
    let (resume_at, done) = offset(&admin, &location);
    assert!(done.is_none());
    assert!(
        resume_at >= first as u64,
        "what reached the disk is kept ({resume_at})"
    );
    let resp = patch(&admin, &location, resume_at, &data[resume_at as usize..]);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let archive_id = resp.header("Archive-Id").unwrap().to_string();
    let archive = admin.get(&format!("/api/v1/archives/{archive_id}")).json();
    assert_eq!(archive["sha256"], sha256_hex(&data));
    let content = admin.get(&format!("/api/v1/archives/{archive_id}/content"));
    assert_eq!(sha256_hex(&content.body), sha256_hex(&data));
    let _ = admin.login("admin", "admin password");
}

/// A standard tus client (tuspy, installed by `.ci/run`) uploads in chunks
/// with an API token, and the result is bit-exact.
#[test]
fn a_standard_tus_client_uploads() {
    let server = TestServer::start();
    let admin = server.admin();
    let created = admin.post_json("/api/v1/tokens", &json!({"name": "tuspy"}));
    let token = created.json()["token"].as_str().unwrap().to_string();
    let data = random_bytes(5 * 1024 * 1024 + 11, 8);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("from tuspy.bin");
    std::fs::write(&file, &data).unwrap();
    let script = r#"
import sys
from tusclient import client
base, token, path = sys.argv[1:4]
tus = client.TusClient(base + "/api/v1/uploads", headers={"Authorization": "Bearer " + token})
uploader = tus.uploader(path, chunk_size=2 * 1024 * 1024, metadata={"name": "via tuspy", "filename": "from tuspy.bin"})
uploader.upload()
print(uploader.url)
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, &server.base, &token])
        .arg(&file)
        .output()
        .expect("python3 runs (tuspy: `pip install tuspy`, see README)");
    assert!(
        output.status.success(),
        "tuspy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list = admin.get("/api/v1/archives").json();
    assert_eq!(list[0]["name"], "via tuspy");
    assert_eq!(list[0]["filename"], "from tuspy.bin");
    assert_eq!(list[0]["sha256"], sha256_hex(&data));
}

/// The upload page's scripts (tus.min.js is 87 KB) carry an ETag: a browser
/// that has them asks again with `If-None-Match` and gets a 304 without a
/// body; a changed or unknown tag gets the file.
#[test]
fn static_files_are_revalidated_with_an_etag_instead_of_sent_again() {
    let server = TestServer::start();
    let client = server.client();
    let first = client.get("/static/tus.min.js");
    assert_eq!(first.status, 200);
    assert!(first.body.len() > 50_000, "{}", first.body.len());
    let etag = first.header("ETag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(first.header("Cache-Control"), Some("no-cache"));

    let again = client.request(
        "GET",
        "/static/tus.min.js",
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty(), "{} bytes", again.body.len());
    assert_eq!(again.header("ETag"), Some(etag.as_str()));

    let other = client.request(
        "GET",
        "/static/tus.min.js",
        &[("If-None-Match", "\"old\"")],
        None,
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.body, first.body);
    let css = client.get("/static/app.css");
    assert_ne!(
        css.header("ETag"),
        Some(etag.as_str()),
        "each file its own tag"
    );
    assert_eq!(client.get("/static/no-such.js").status, 404);
}
