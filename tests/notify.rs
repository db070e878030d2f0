//! Notifications end to end, with real servers started by the tests: a
//! loopback HTTP receiver for webhooks, ntfy and the heartbeat, aiosmtpd
//! (plain, STARTTLS with login, implicit TLS) for mail, the signature-
//! checking S3 server behind a switch that cuts it off for the outage, and
//! a corrupted part for damage. The real binary, killed with -9 where asked.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::remote_engine::{s3_json, set_remote, wait_state};
use crate::support::receiver::{Answer, Received, Receiver};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, wait_until, Client, TestServer};

const LIMIT: Duration = Duration::from_secs(180);

/// A real SMTP server (aiosmtpd) writing each accepted mail to a folder.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    /// `security`: none, starttls or tls; `tls`: (cert, key) files;
    /// `login`: the only user and password it accepts.
    fn start(security: &str, tls: Option<&Tls>, login: Option<(&str, &str)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(security);
        if let Some(tls) = tls {
            command.arg(&tls.cert).arg(&tls.key);
        }
        if let Some((user, password)) = login {
            command.arg(user).arg(password);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd; .ci/run does)");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        SmtpSink { child, dir, port }
    }

    /// Every mail accepted so far, oldest first.
    fn mails(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = files_under(self.dir.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A certificate authority and a server certificate for 127.0.0.1 it
/// signed, as PEM files.
struct Tls {
    _dir: tempfile::TempDir,
    ca: String,
    cert: PathBuf,
    key: PathBuf,
}

fn make_tls() -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Tls {
        _dir: dir,
        ca: ca.pem(),
        cert: cert_path,
        key: key_path,
    }
}

/// Lets the appliance trust `tls`'s authority for its channels.
fn trust(server: &TestServer, tls: &Tls) {
    let dir = server.data_dir().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notify-ca.pem"), &tls.ca).unwrap();
}

/// A TCP forwarder to the S3 server that can be cut off (every open
/// connection reset, new ones refused) and restored.
struct Switch {
    endpoint: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Switch {
    fn start(upstream: SocketAddr) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (is_up, streams) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !is_up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut list = streams.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Switch { endpoint, up, open }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn put_notifications(admin: &Client, settings: &Value) -> Value {
    let resp = admin.send_json("PUT", "/api/v1/admin/notifications", settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn log_text(admin: &Client) -> String {
    let resp = admin.get("/api/v1/admin/log?limit=1000");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
}

/// The notices with `event` a receiver got, as JSON (webhook bodies).
fn webhook_events(receiver: &Receiver, event: &str) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(Received::json)
        .filter(|body| body["event"] == event)
        .collect()
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn settings_are_checked_and_secrets_are_never_shown() {
    let server = TestServer::start();
    let admin = server.admin();
    let empty = admin.get("/api/v1/admin/notifications").json();
    assert_eq!(
        empty,
        json!({"channels": [], "remote_unreachable_after_seconds": 21600, "digest": "off"})
    );
    let secrets = ["hook-secret-0451", "tk_ntfy_secret_0451", "smtp-pw-0451"];
    let saved = put_notifications(
        &admin,
        &json!({"channels": [
            {"kind": "webhook", "url": "https://hooks.example.com/x", "secret": secrets[0]},
            {"kind": "ntfy", "url": "https://ntfy.sh/family", "token": secrets[1]},
            {"kind": "email", "host": "smtp.example.com", "port": 587, "security": "starttls",
             "username": "box", "password": secrets[2], "from": "box@example.com",
             "to": ["mum@example.com"]},
            {"kind": "heartbeat", "url": "https://hc-ping.com/abc"}],
         "remote_unreachable_after_seconds": 600, "digest": "off"}),
    );
    assert_eq!(saved["channels"][0]["secret_set"], true, "{saved}");
    assert_eq!(saved["channels"][1]["token_set"], true, "{saved}");
    assert_eq!(saved["channels"][2]["password_set"], true, "{saved}");
    // Saved again without the secrets (as the page and a GET give them back):
    // they are kept.
    let mut again = saved.clone();
    for channel in again["channels"].as_array_mut().unwrap() {
        let map = channel.as_object_mut().unwrap();
        map.retain(|key, _| !key.ends_with("_set"));
    }
    let kept = put_notifications(&admin, &again);
    assert_eq!(kept, saved);
    let page = admin.get("/admin/notifications");
    assert_eq!(page.status, 200);
    for text in [
        admin.get("/api/v1/admin/notifications").text(),
        page.text(),
        log_text(&admin),
    ] {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret was shown: {text}");
        }
    }
    assert!(page.text().contains("leave empty to keep it"));

    // Bad input: a sentence, nothing stored.
    for (channel, words) in [
        (
            json!({"kind": "webhook", "url": "ftp://example.com/x"}),
            "http:// or https://",
        ),
        (
            json!({"kind": "ntfy", "url": "https://ntfy.sh/a\r\nX-Evil: 1"}),
            "no spaces or line breaks",
        ),
        (
            json!({"kind": "heartbeat", "url": "file:///etc/passwd"}),
            "http:// or https://",
        ),
        (
            json!({"kind": "email", "host": "smtp.example.com", "port": 25, "security": "none",
                   "from": "box@example.com\r\nBcc: all@example.com", "to": ["a@example.com"]}),
            "not an e-mail address",
        ),
        (
            json!({"kind": "pager", "url": "https://x"}),
            "expected one of",
        ),
    ] {
        let resp = admin.send_json(
            "PUT",
            "/api/v1/admin/notifications",
            &json!({"channels": [channel]}),
        );
        assert_eq!(resp.status, 400, "{channel}: {}", resp.text());
        assert!(resp.message().contains(words), "{}", resp.text());
    }
    assert_eq!(admin.get("/api/v1/admin/notifications").json(), saved);
    // Members may not see or change them.
    let member = server.member("kim");
    assert_eq!(member.get("/api/v1/admin/notifications").status, 403);
}

#[test]
fn a_test_says_in_words_how_each_channel_went() {
    let server = TestServer::start();
    let admin = server.admin();
    let tls = make_tls();
    trust(&server, &tls);
    let hook = Receiver::start();
    let ntfy = Receiver::start();
    let failing = Receiver::start();
    failing.set_answer(Answer::Status(500));
    let hanging = Receiver::start();
    hanging.set_answer(Answer::Hang);
    let plain_mail = SmtpSink::start("none", None, None);
    let secure_mail = SmtpSink::start("starttls", Some(&tls), Some(("box", "right password")));
    let wrong_login = SmtpSink::start("starttls", Some(&tls), Some(("box", "right password")));
    let closed = free_port();
    // A TLS server whose certificate nobody trusts.
    let untrusted = make_tls();
    let tls_sink = SmtpSink::start("tls", Some(&untrusted), None);
    let mail = |port: u16, security: &str, password: Option<&str>| {
        let mut channel = json!({"kind": "email", "host": "127.0.0.1", "port": port,
            "security": security, "from": "Piarchive <box@example.com>",
            "to": ["mum@example.com", "dad@example.com"]});
        if let Some(password) = password {
            channel["username"] = json!("box");
            channel["password"] = json!(password);
        }
        channel
    };
    put_notifications(
        &admin,
        &json!({"channels": [
            {"kind": "webhook", "url": format!("{}/hook", hook.base), "secret": "sh4red-s3cret"},
            {"kind": "ntfy", "url": format!("{}/family", ntfy.base), "token": "tk_abc"},
            {"kind": "heartbeat", "url": format!("{}/ping?key=hidden", hook.base)},
            mail(plain_mail.port, "none", None),
            mail(secure_mail.port, "starttls", Some("right password")),
            // Wrong ones: each must say why, in words.
            mail(wrong_login.port, "starttls", Some("wrong password")),
            {"kind": "webhook", "url": format!("{}/broken", failing.base)},
            {"kind": "webhook", "url": format!("{}/slow", hanging.base)},
            {"kind": "webhook", "url": format!("http://127.0.0.1:{closed}/nobody")},
            {"kind": "ntfy", "url": format!("https://127.0.0.1:{}/tls", tls_sink.port)},
            mail(tls_sink.port, "tls", None)],
         "remote_unreachable_after_seconds": 21600, "digest": "off"}),
    );
    let started = Instant::now();
    let resp = admin.post_json("/api/v1/admin/notifications/test", &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Channels are tried side by side: the hanging one costs one deadline.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let results = resp.json()["results"].as_array().unwrap().clone();
    let outcome: Vec<(bool, String)> = results
        .iter()
        .map(|r| {
            (
                r["ok"].as_bool().unwrap(),
                r["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (index, ok) in [(0, true), (1, true), (2, true), (3, true), (4, true)] {
        assert_eq!(outcome[index].0, ok, "{index}: {outcome:?}");
    }
    let expect_failure = [
        (5, "refused the user name or password"),
        (6, "answered HTTP 500"),
        (7, "did not answer within 10 seconds"),
        (8, "could not be reached"),
        (9, "TLS"),
        (10, "TLS connection to the mail server"),
    ];
    for (index, words) in expect_failure {
        assert!(!outcome[index].0, "{index}: {outcome:?}");
        assert!(outcome[index].1.contains(words), "{index}: {outcome:?}");
    }
    // What the receivers got.
    let webhook = &hook.requests()[..];
    let body = webhook.iter().find(|r| r.path == "/hook").expect("webhook");
    assert_eq!(body.json()["event"], "test");
    assert_eq!(body.json()["resolved"], false);
    assert_eq!(
        body.header("x-piarchive-signature").unwrap(),
        hmac_hex("sh4red-s3cret", &body.body)
    );
    assert!(webhook
        .iter()
        .any(|r| r.method == "GET" && r.path.starts_with("/ping")));
    let published = &ntfy.requests()[0];
    assert_eq!(published.method, "POST");
    assert_eq!(published.header("title"), Some("Test from piarchive"));
    assert_eq!(published.header("authorization"), Some("Bearer tk_abc"));
    assert!(published.header("priority").is_some() && published.header("tags").is_some());
    assert!(published.text().contains("This is a test"));
    for sink in [&plain_mail, &secure_mail] {
        let mails = sink.mails();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert!(mails[0].contains("X-Envelope-To: mum@example.com,dad@example.com"));
        assert!(
            mails[0].contains("Subject: [piarchive] Test from piarchive"),
            "{}",
            mails[0]
        );
    }
    assert!(wrong_login.mails().is_empty());

    // The page's button shows the same in words; no secret, no token query.
    let page = admin.post_form("/admin/notifications/test", &[]);
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("answered HTTP 500"), "{text}");
    assert!(text.contains("refused the user name or password"), "{text}");
    let log = log_text(&admin);
    for secret in [
        "right password",
        "wrong password",
        "tk_abc",
        "sh4red-s3cret",
    ] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(!log.contains("key=hidden"), "a URL's query in the log");
}

/// The threshold for the outage test, in seconds (the note's figure is
/// measured with `NOTIFY_OUTAGE_THRESHOLD=60`).
fn outage_threshold() -> u64 {
    std::env::var("NOTIFY_OUTAGE_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[test]
fn an_outage_is_notified_once_on_every_channel_and_its_end_once() {
    let s3 = S3TestServer::start();
    let upstream: SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let switch = Switch::start(upstream);
    let server = TestServer::start();
    let admin = server.admin();
    let tls = make_tls();
    trust(&server, &tls);
    set_remote(&admin, &s3_json(&switch.endpoint, "outage", SECRET_KEY));
    let hook = Receiver::start();
    let ntfy = Receiver::start();
    let mail = SmtpSink::start("starttls", Some(&tls), Some(("box", "pw")));
    let threshold = outage_threshold();
    put_notifications(
        &admin,
        &json!({"channels": [
            {"kind": "webhook", "url": format!("{}/hook", hook.base), "secret": "signing key"},
            {"kind": "ntfy", "url": format!("{}/family", ntfy.base)},
            {"kind": "email", "host": "127.0.0.1", "port": mail.port, "security": "starttls",
             "username": "box", "password": "pw", "from": "box@example.com", "to": ["mum@example.com"]}],
         "remote_unreachable_after_seconds": threshold}),
    );
    let first = admin.upload_ok("before", &random_bytes(300_000, 1));
    wait_state(&admin, first["id"].as_str().unwrap(), "backed_up");

    switch.set(false);
    let down_at = Instant::now();
    let waiting = admin.upload_ok("during", &random_bytes(300_000, 2));
    let waiting_id = waiting["id"].as_str().unwrap().to_string();
    let limit = LIMIT + Duration::from_secs(3 * threshold);
    wait_until(limit, || {
        !webhook_events(&hook, "remote_unreachable").is_empty()
    });
    let webhook_delay = down_at.elapsed();
    wait_until(limit, || !ntfy.requests().is_empty());
    let ntfy_delay = ntfy.requests()[0].at.duration_since(down_at);
    wait_until(limit, || !mail.mails().is_empty());
    let mail_delay = down_at.elapsed();
    eprintln!(
        "notify: threshold {threshold} s; S3 down -> webhook {:.1} s, ntfy {:.1} s, e-mail (seen) {:.1} s",
        webhook_delay.as_secs_f64(),
        ntfy_delay.as_secs_f64(),
        mail_delay.as_secs_f64()
    );
    assert!(
        webhook_delay >= Duration::from_secs(threshold),
        "{webhook_delay:?}"
    );
    let notice = webhook_events(&hook, "remote_unreachable")[0].clone();
    assert_eq!(notice["resolved"], false);
    assert_eq!(notice["severity"], "critical");
    assert_eq!(notice["title"], "Backups cannot reach the storage");
    assert!(notice["message"]
        .as_str()
        .unwrap()
        .contains("could not reach the storage"));
    assert!(!notice["detail"].as_str().unwrap().is_empty());
    let signed = hook
        .requests()
        .into_iter()
        .find(|r| r.json()["event"] == "remote_unreachable")
        .unwrap();
    assert_eq!(
        signed.header("x-piarchive-signature").unwrap(),
        hmac_hex("signing key", &signed.body)
    );
    let published = &ntfy.requests()[0];
    assert_eq!(
        published.header("title"),
        Some("Backups cannot reach the storage")
    );
    assert_eq!(published.header("priority"), Some("5"));
    assert!(mail.mails()[0].contains("Subject: [piarchive] Backups cannot reach the storage"));

    // Still down a while longer: no second notice.
    let still = Instant::now();
    wait_until(LIMIT, || {
        still.elapsed() >= Duration::from_secs(threshold + 4)
    });
    assert_eq!(webhook_events(&hook, "remote_unreachable").len(), 1);
    assert_eq!(ntfy.requests().len(), 1);
    assert_eq!(mail.mails().len(), 1);

    // Back: the waiting archive goes up, one resolution per channel.
    switch.set(true);
    wait_state(&admin, &waiting_id, "backed_up");
    wait_until(LIMIT, || {
        webhook_events(&hook, "remote_unreachable").len() == 2
    });
    wait_until(LIMIT, || {
        ntfy.requests().len() == 2 && mail.mails().len() == 2
    });
    let resolved = &webhook_events(&hook, "remote_unreachable")[1];
    assert_eq!(resolved["resolved"], true, "{resolved}");
    assert_eq!(resolved["title"], "Backups reach the storage again");
    assert!(mail.mails()[1].contains("Backups reach the storage again"));
    let settle = Instant::now();
    wait_until(LIMIT, || settle.elapsed() >= Duration::from_secs(4));
    assert_eq!(webhook_events(&hook, "remote_unreachable").len(), 2);
    assert_eq!(ntfy.requests().len(), 2);
    assert!(!log_text(&admin).contains("signing key"));
}

#[test]
fn a_notice_waits_through_kill_9_and_arrives_once() {
    let s3 = S3TestServer::start();
    let upstream: SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let switch = Switch::start(upstream);
    let mut server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&switch.endpoint, "gone", SECRET_KEY));
    let first = admin.upload_ok("before", &random_bytes(100_000, 4));
    wait_state(&admin, first["id"].as_str().unwrap(), "backed_up");
    switch.set(false);
    let hook = Receiver::start();
    hook.set_answer(Answer::Status(503));
    put_notifications(
        &admin,
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)}],
                "remote_unreachable_after_seconds": 1}),
    );
    admin.upload_ok("stuck", &random_bytes(100_000, 3));
    // The receiver refuses it: tried, kept, tried again.
    wait_until(LIMIT, || !hook.requests().is_empty());
    wait_until(LIMIT, || log_text(&admin).contains("answered HTTP 503"));
    server.kill9();
    let tried = hook.requests().len();
    hook.set_answer(Answer::Status(200));
    server.restart();
    let admin = {
        let mut client = server.client();
        assert_eq!(client.login("admin", "admin password").status, 200);
        client
    };
    wait_until(LIMIT, || hook.requests().len() > tried);
    let settle = Instant::now();
    wait_until(LIMIT, || settle.elapsed() >= Duration::from_secs(5));
    // Every attempt was the same notice; after the one that was accepted,
    // nothing more (the restart did not make the problem new).
    let requests = hook.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.json()["event"] == "remote_unreachable" && r.json()["resolved"] == false),
        "{requests:?}"
    );
    assert_eq!(requests.len(), tried + 1, "{requests:?}");
    let at: Vec<Value> = requests.iter().map(|r| r.json()["at"].clone()).collect();
    assert!(at.windows(2).all(|w| w[0] == w[1]), "{at:?}");
    assert!(admin
        .get("/admin/notifications")
        .text()
        .contains("Notifications"));
}

#[test]
fn a_damaged_archive_is_notified_with_its_name_kept_out_of_headers() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "bits", SECRET_KEY));
    let hook = Receiver::start();
    let ntfy = Receiver::start();
    put_notifications(
        &admin,
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)},
                             {"kind": "ntfy", "url": format!("{}/t", ntfy.base)}]}),
    );
    let name = "Photos \"2024\" <b>& X-Injected: yes \u{1F600}";
    let parts_dir = s3.object_path("bits").join("parts");
    let id = admin.upload_ok(name, &random_bytes(12 * 1024 * 1024 + 3, 24))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &id, "backed_up");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");
    let victim = files_under(&parts_dir).pop().unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    crate::verify::verify(&admin, &id, 100);
    wait_state(&admin, &id, "damaged");
    wait_until(LIMIT, || {
        !webhook_events(&hook, "archive_damaged").is_empty()
    });
    let notice = &webhook_events(&hook, "archive_damaged")[0];
    assert!(
        notice["message"].as_str().unwrap().contains(name),
        "{notice}"
    );
    assert!(notice["detail"].as_str().unwrap().contains(&id));
    wait_until(LIMIT, || !ntfy.requests().is_empty());
    let published = &ntfy.requests()[0];
    assert!(
        published.headers.keys().all(|h| h != "x-injected"),
        "{published:?}"
    );
    assert!(published.text().contains(name));
    // Deleted for good: the problem is over, said once.
    assert_eq!(
        admin
            .delete(&format!("/api/v1/archives/{id}?purge=true"))
            .status,
        202
    );
    wait_until(LIMIT, || {
        webhook_events(&hook, "archive_damaged").len() == 2
    });
    assert_eq!(
        webhook_events(&hook, "archive_damaged")[1]["resolved"],
        true
    );
}

#[test]
fn a_failed_verification_is_notified_once_and_its_pass_resolves_it() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "checked", SECRET_KEY));
    let hook = Receiver::start();
    put_notifications(
        &admin,
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)}]}),
    );
    let id = admin.upload_ok("Holiday \"2025\"", &random_bytes(12 * 1024 * 1024 + 5, 31))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &id, "backed_up");
    // A part corrupted on the remote while the file is still on the box:
    // the verification finds it (and uploads it again from the local copy).
    let victim = files_under(&s3.object_path("checked").join("parts"))
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let found = crate::verify::verify(&admin, &id, 100);
    assert_eq!(found["damaged"], json!(1), "{found}");
    wait_until(LIMIT, || {
        !webhook_events(&hook, "verification_failed").is_empty()
    });
    let notice = &webhook_events(&hook, "verification_failed")[0];
    assert_eq!(notice["resolved"], false, "{notice}");
    assert_eq!(notice["title"], "A verification failed");
    assert!(
        notice["message"]
            .as_str()
            .unwrap()
            .contains("Holiday \"2025\""),
        "{notice}"
    );
    assert!(notice["detail"].as_str().unwrap().contains(&id), "{notice}");
    assert!(
        notice["detail"].as_str().unwrap().contains("parts failed"),
        "{notice}"
    );
    // Verified again: the copy is good now, the problem is over, said once.
    let clean = crate::verify::verify(&admin, &id, 100);
    assert_eq!(clean["damaged"], json!(0), "{clean}");
    wait_until(LIMIT, || {
        webhook_events(&hook, "verification_failed").len() == 2
    });
    let settle = Instant::now();
    wait_until(LIMIT, || settle.elapsed() >= Duration::from_secs(3));
    let events = webhook_events(&hook, "verification_failed");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["resolved"], true, "{}", events[1]);
    assert_eq!(events[1]["title"], "A verification passed again");
}
