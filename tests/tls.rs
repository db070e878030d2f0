//! HTTPS: a real TLS client (ureq over rustls, trusting only the
//! appliance's own certificate, and curl with it as its CA) sets up the
//! admin, logs in, uploads (tus and `curl -T`), downloads a range and
//! follows the event stream; the certificate served is the one the API
//! describes; bad certificates are refused; `require_https` redirects; a
//! stalled handshake does not hold up others.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

use crate::support::{random_bytes, sha256_hex, wait_until, Client, TestServer};

/// The client's rustls configuration: trusts `cert_pem` only.
fn pinned(cert_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn self_signed_pem(server: &TestServer) -> Vec<u8> {
    std::fs::read(server.data_dir().join("tls/self-signed.crt")).unwrap()
}

/// A client of the HTTPS address that trusts `cert_pem` only.
fn https_client(server: &TestServer, cert_pem: &[u8]) -> Client {
    let agent = ureq::AgentBuilder::new()
        .tls_config(pinned(cert_pem))
        .redirects(0)
        .timeout(Duration::from_secs(120))
        .build();
    let mut client = server.client();
    client.base = server.https_base.replace("127.0.0.1", "localhost");
    client.via = Some(agent);
    client
}

/// The certificate the HTTPS listener serves, read in a handshake that
/// trusts `cert_pem` only (fails if it serves another).
fn served_certificate(server: &TestServer, cert_pem: &[u8]) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(pinned(cert_pem), name).unwrap();
    let sock = TcpStream::connect(&server.https_addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs curl, failing the test when it fails; returns its stdout.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "120"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn everything_works_over_https_with_the_certificate_pinned() {
    let server = TestServer::start();
    let pem = self_signed_pem(&server);
    let mut admin = https_client(&server, &pem);
    let resp = admin.post_json(
        "/api/v1/setup",
        &json!({"username": "admin", "password": "admin password"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let cookie = resp.header("Set-Cookie").unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    admin.adopt_session(&resp);
    assert_eq!(admin.login("admin", "admin password").status, 200);

    // The served certificate is the one the API describes.
    let info = admin.get("/api/v1/admin/tls").json();
    let der = served_certificate(&server, &pem);
    assert_eq!(info["source"], "self-signed");
    assert_eq!(info["fingerprint_sha256"], fingerprint(&der));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let mut sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns.to_string(),
            x509_parser::extensions::GeneralName::IPAddress(ip) if ip.len() == 4 => {
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string()
            }
            other => format!("{other:?}"),
        })
        .collect();
    let mut names: Vec<String> = serde_json::from_value(info["names"].clone()).unwrap();
    sans.sort();
    names.sort();
    assert_eq!(sans, names);
    assert!(names.iter().any(|n| n == "piarchive.local"), "{names:?}");
    assert!(names.iter().any(|n| n == "127.0.0.1"), "{names:?}");
    wait_until(Duration::from_secs(30), || {
        admin.get("/api/v1/admin/device").status == 200
    });
    let device = admin.get("/api/v1/admin/device").json();
    assert_eq!(device["tls_fingerprint_sha256"], info["fingerprint_sha256"]);

    // The event stream, followed while the uploads below happen (from the
    // moment the server says it is connected, so no event can come before).
    let (connected, events) = follow_events(&server, &pem, admin.cookie.clone().unwrap());
    connected
        .recv_timeout(Duration::from_secs(60))
        .expect("the event stream connects");

    // tus, in two pieces.
    let data = random_bytes(3 * 1024 * 1024 + 17, 5);
    let metadata = format!(
        "name {},filename {}",
        base64::engine::general_purpose::STANDARD.encode("tus"),
        base64::engine::general_purpose::STANDARD.encode("tus.bin")
    );
    let created = admin.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &data.len().to_string()),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.header("Location").unwrap().to_string();
    let half = data.len() / 2;
    for (at, piece) in [(0, &data[..half]), (half, &data[half..])] {
        let resp = admin.request(
            "PATCH",
            &location,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Upload-Offset", &at.to_string()),
            ],
            Some(piece),
        );
        assert_eq!(resp.status, 204, "{}", resp.text());
    }
    let head = admin.request("HEAD", &location, &[("Tus-Resumable", "1.0.0")], None);
    let tus_id = head.header("Archive-Id").expect("archive id").to_string();

    // curl -T with the certificate as its only CA, and a Range download.
    let dir = tempfile::tempdir().unwrap();
    let ca = write_file(dir.path(), "ca.pem", &pem);
    let big = random_bytes(5 * 1024 * 1024 + 3, 6);
    let file = write_file(dir.path(), "big.bin", &big);
    let base = &admin.base;
    let csrf = admin.csrf.clone().unwrap();
    let cookie = admin.cookie.clone().unwrap();
    let created = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-T",
        file.to_str().unwrap(),
        "-H",
        &format!("Cookie: {cookie}"),
        "-H",
        &format!("X-CSRF-Token: {csrf}"),
        "--fail",
        &format!("{base}/api/v1/archives?name=curl&filename=big.bin"),
    ]);
    let created: Value = serde_json::from_slice(&created).unwrap();
    let curl_id = created["id"].as_str().unwrap().to_string();
    let part = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-H",
        &format!("Cookie: {cookie}"),
        "-r",
        "1000-1999999",
        "--fail",
        &format!("{base}/api/v1/archives/{curl_id}/content"),
    ]);
    assert_eq!(sha256_hex(&part), sha256_hex(&big[1000..2_000_000]));
    let whole = admin.get(&format!("/api/v1/archives/{tus_id}/content"));
    assert_eq!(sha256_hex(&whole.body), sha256_hex(&data));

    // Both arrive on the event stream.
    let seen = events.join().unwrap();
    for id in [&tus_id, &curl_id] {
        assert!(seen.contains(id.as_str()), "{id} in {seen}");
    }
}

/// Follows `/api/v1/events` over HTTPS until two archives were seen.
fn follow_events(
    server: &TestServer,
    pem: &[u8],
    cookie: String,
) -> (
    std::sync::mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
) {
    let client = https_client(server, pem);
    let (tell, connected) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let agent = client.via.clone().unwrap();
        let response = agent
            .get(&format!("{}/api/v1/events", client.base))
            .set("Cookie", &cookie)
            .set("Accept", "text/event-stream")
            .call()
            .expect("the event stream");
        let mut seen = String::new();
        let mut ids = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        for line in BufReader::new(response.into_reader()).lines() {
            let line = line.expect("an event line");
            if line == ": connected" {
                let _ = tell.send(());
            }
            if let Some(data) = line.strip_prefix("data: ") {
                if let Ok(event) = serde_json::from_str::<Value>(data) {
                    if let Some(id) = event["id"].as_str() {
                        ids.insert(id.to_string());
                    }
                }
            }
            seen.push_str(&line);
            seen.push('\n');
            if ids.len() >= 2 || Instant::now() > deadline {
                break;
            }
        }
        seen
    });
    (connected, handle)
}

#[test]
fn bad_certificates_are_refused_and_the_old_one_still_serves() {
    let server = TestServer::start();
    let pem = self_signed_pem(&server);
    let admin = {
        let mut client = https_client(&server, &pem);
        let resp = client.post_json(
            "/api/v1/setup",
            &json!({"username": "admin", "password": "admin password"}),
        );
        client.adopt_session(&resp);
        client
    };
    let before = admin.get("/api/v1/admin/tls").json();
    let mine = rcgen::generate_simple_self_signed(vec![
        "backup.example".to_string(),
        "localhost".to_string(),
    ])
    .unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other.example".to_string()]).unwrap();
    let expired = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["old.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    };
    let cases = [
        (
            mine.cert.pem(),
            other.key_pair.serialize_pem(),
            "does not belong",
        ),
        ("hello".to_string(), mine.key_pair.serialize_pem(), "PEM"),
        (mine.cert.pem(), "not a key".to_string(), "key"),
        (expired.0, expired.1, "expired on 2021-01-01"),
    ];
    for (cert_pem, key_pem, sentence) in cases {
        let resp = admin.send_json(
            "PUT",
            "/api/v1/admin/tls",
            &json!({"cert_pem": cert_pem, "key_pem": key_pem}),
        );
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert!(resp.message().contains(sentence), "{}", resp.text());
        assert_eq!(admin.get("/api/v1/admin/tls").json(), before);
        served_certificate(&server, &pem);
    }

    // A good one takes effect at the next handshake, without a restart.
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/tls",
        &json!({"cert_pem": mine.cert.pem(), "key_pem": mine.key_pair.serialize_pem()}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["source"], "installed");
    assert_eq!(resp.json()["names"], json!(["backup.example", "localhost"]));
    let der = served_certificate(&server, mine.cert.pem().as_bytes());
    assert_eq!(der, mine.cert.der().to_vec());

    // DELETE goes back to the self-signed one.
    let admin = https_client(&server, mine.cert.pem().as_bytes()).with_session_of(&admin);
    let resp = admin.delete("/api/v1/admin/tls");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), before);
    served_certificate(&server, &pem);
}

trait WithSession {
    fn with_session_of(self, other: &Client) -> Client;
}

impl WithSession for Client {
    fn with_session_of(mut self, other: &Client) -> Client {
        self.cookie = other.cookie.clone();
        self.csrf = other.csrf.clone();
        self
    }
}

#[test]
fn require_https_redirects_plain_http_but_not_healthz() {
    let server = TestServer::start();
    let admin = server.admin();
    let plain_cookie = admin.cookie.clone();
    admin.put_settings(|s| s["require_https"] = json!(true));
    let resp = admin.get("/api/v1/me");
    assert_eq!(resp.status, 308);
    let https_port = server.https_addr.rsplit(':').next().unwrap();
    assert_eq!(
        resp.header("Location"),
        Some(format!("https://127.0.0.1:{https_port}/api/v1/me").as_str())
    );
    assert_eq!(admin.get("/healthz").status, 200);
    // Over HTTPS the same session works, and new cookies are Secure.
    let pem = self_signed_pem(&server);
    let mut secure = https_client(&server, &pem);
    secure.cookie = plain_cookie;
    assert_eq!(secure.get("/api/v1/me").status, 200);
    let resp = secure.login("admin", "admin password");
    assert!(resp.header("Set-Cookie").unwrap().contains("; Secure"));
    secure.put_settings(|s| s["require_https"] = json!(false));
    assert_eq!(admin.get("/api/v1/me").status, 200);
}

#[test]
fn a_stalled_handshake_is_dropped_without_holding_up_others() {
    let server = TestServer::start();
    let pem = self_signed_pem(&server);
    // Clients that connect and never finish (or never start) a handshake.
    let mut stalled: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut sock = TcpStream::connect(&server.https_addr).unwrap();
            if i % 2 == 0 {
                // The first bytes of a ClientHello record, then nothing.
                sock.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                    .unwrap();
            }
            sock
        })
        .collect();
    // Others are served meanwhile.
    let started = Instant::now();
    for _ in 0..5 {
        served_certificate(&server, &pem);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The stalled ones are closed by the header deadline (10 s).
    for sock in &mut stalled {
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
        assert!(started.elapsed() < Duration::from_secs(25));
    }
}

/// `--ignore-certificate-errors-spki-list`'s value for a certificate: the
/// base64 SHA-256 of its SubjectPublicKeyInfo.
fn spki_sha256_base64(cert_pem: &[u8]) -> String {
    use sha2::Digest;
    let der = CertificateDer::from_pem_slice(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let spki = cert.tbs_certificate.subject_pki.raw;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}

#[test]
fn login_and_upload_over_https_in_a_real_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let spki = spki_sha256_base64(&self_signed_pem(&server));
    // Chromium accepts the self-signed certificate by its key's fingerprint
    // only: any other certificate would still be refused.
    let browser = crate::browser::Browser::start_with(&[format!(
        "--ignore-certificate-errors-spki-list={spki}"
    )]);
    let site = &server.https_base;
    browser.goto(&format!("{site}/login"));
    browser.wait_for("the login page over HTTPS", |b| b.path() == "/login");
    assert_eq!(browser.script("return location.protocol;"), json!("https:"));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("form[action='/login'] button[type=submit]");
    browser.wait_for("the home page", |b| {
        b.path() == "/" && b.text().contains("Your archives")
    });
    // The session cookie came over HTTPS: Secure, so script cannot read
    // it and plain HTTP never carries it.
    assert_eq!(browser.script("return document.cookie;"), json!(""));

    let data = random_bytes(3 * 1024 * 1024 + 5, 17);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "over https.bin", &data);
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", file.to_str().unwrap());
    browser.wait_for("the file in the queue", |b| {
        b.find_all("li.upload-item") == 1
    });
    browser.wait_for("the upload done", |b| {
        b.script("return !document.getElementById('upload-done').hidden;") == json!(true)
    });
    let archives = admin.get("/api/v1/archives").json();
    let archive = archives
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["size"] == data.len() as u64)
        .unwrap_or_else(|| panic!("{archives}"));
    assert!(
        archive["name"].as_str().unwrap().contains("over https"),
        "{archive}"
    );
    let id = archive["id"].as_str().unwrap();
    let body = admin.get(&format!("/api/v1/archives/{id}/content")).body;
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
}

#[test]
fn the_https_page_shows_the_certificate_and_asks_before_https_only() {
    let server = TestServer::start();
    let admin = server.admin();
    let info = admin.get("/api/v1/admin/tls").json();
    let page = admin.get("/admin/tls").text();
    for shown in [
        info["fingerprint_sha256"].as_str().unwrap(),
        info["not_after"].as_str().unwrap(),
        "piarchive.local",
        "Self-signed",
        "/static/tls.js",
    ] {
        assert!(page.contains(shown), "{shown} missing from the page");
    }
    assert_eq!(admin.get("/static/tls.js").status, 200);

    // From an HTTP page, HTTPS-only first asks; nothing changes yet.
    let resp = admin.post_form("/admin/tls/require-https", &[("require_https", "1")]);
    assert_eq!(resp.status, 303);
    let ask = resp.header("Location").unwrap().to_string();
    assert!(ask.starts_with("/admin/tls?confirm=https"), "{ask}");
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["require_https"], false);
    let warning = admin.get(&ask).text();
    assert!(warning.contains("your browser will warn"), "{warning}");
    let resp = admin.post_form(
        "/admin/tls/require-https",
        &[("require_https", "1"), ("confirmed", "1")],
    );
    assert_eq!(resp.header("Location"), Some("/admin/tls?done=https-on"));
    assert_eq!(admin.get("/api/v1/me").status, 308, "HTTP now redirects");
    // Over HTTPS it turns off again without a question.
    let pem = self_signed_pem(&server);
    let secure = https_client(&server, &pem).with_session_of(&admin);
    let resp = secure.post_form("/admin/tls/require-https", &[("require_https", "0")]);
    assert_eq!(resp.header("Location"), Some("/admin/tls?done=https-off"));
    assert_eq!(admin.get("/api/v1/me").status, 200);

    // The name on the network: checked, then saved.
    let resp = admin.post_form("/admin/tls/name", &[("mdns_hostname", "pi.archive")]);
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("letters, digits or hyphens"));
    let resp = admin.post_form("/admin/tls/name", &[("mdns_hostname", "piarchive-cellar")]);
    assert_eq!(resp.header("Location"), Some("/admin/tls?done=name"));
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["mdns_hostname"], "piarchive-cellar");

    // A certificate that does not parse is refused with a sentence on the
    // page; the old one stays.
    let resp = admin.post_form(
        "/admin/tls/install",
        &[("cert_pem", "not a certificate"), ("key_pem", "nor a key")],
    );
    assert_eq!(resp.status, 200);
    assert!(resp.text().contains("role=\"alert\""));
    assert_eq!(admin.get("/api/v1/admin/tls").json(), info);
    // Without the CSRF token: refused.
    let mut forged = server.client();
    forged.cookie = admin.cookie.clone();
    let resp = forged.post_form("/admin/tls/self-signed", &[]);
    assert_eq!(resp.status, 403);
}
