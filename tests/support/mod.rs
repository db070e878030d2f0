//! Test support: the real `piarchive` binary started on port 0 in its own
//! temp dir, readiness polled (never a fixed sleep), and a small HTTP client
//! over real sockets (ureq) that keeps a session cookie and CSRF token.

#![allow(dead_code)]

pub mod fault_proxy;
#[cfg(feature = "garage-tests")]
pub mod garage;
pub mod hostile_s3;
pub mod moto;
pub mod mount;
pub mod other_address;
pub mod receiver;
pub mod s3_server;
pub mod s3_target;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub addr: String,
    /// `https://127.0.0.1:PORT` and its address.
    pub https_base: String,
    pub https_addr: String,
    child: Option<Child>,
    /// `ulimit -n` for the server (soft and hard), when set.
    open_files: Option<u32>,
    /// The data folder when not `<dir>/data` (one on a small mount).
    data: Option<PathBuf>,
    /// A command the server runs under (`fiu-run -x ...`), when set.
    wrapper: Vec<String>,
}

/// A config file that lets deployments run every second (the default
/// minimum is 5 minutes).
pub const FAST_DEPLOYMENTS: &str = "min_deployment_interval_seconds = 1\n";

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(None)
    }

    /// Starts the server under `ulimit -n open_files` (soft and hard, as a
    /// default system or PID 1 would), so it cannot raise it.
    pub fn start_with_open_files(open_files: u32) -> TestServer {
        TestServer::start_with(Some(open_files))
    }

    /// Starts the server with no HTTPS listener (`--listen-https ""`).
    pub fn start_without_https() -> TestServer {
        let mut server = TestServer::start_configured(None, None, None, Vec::new());
        server.spawn("127.0.0.1:0", "");
        server
    }

    /// Starts the server with `toml` as its config file
    /// (`<data>/piarchive.toml`), e.g. a shorter minimum deployment interval.
    pub fn start_with_config(toml: &str) -> TestServer {
        let mut server = TestServer::start_configured(None, Some(toml), None, Vec::new());
        server.spawn("127.0.0.1:0", "127.0.0.1:0");
        server
    }

    fn start_with(open_files: Option<u32>) -> TestServer {
        let mut server = TestServer::start_configured(open_files, None, None, Vec::new());
        server.spawn("127.0.0.1:0", "127.0.0.1:0");
        server
    }

    /// Starts the server on the data folder `data` (on a small mount, say),
    /// run under `wrapper` (e.g. `["fiu-run", "-x"]`) when it is not empty.
    pub fn start_at(data: PathBuf, wrapper: &[&str]) -> TestServer {
        let wrapper = wrapper.iter().map(|part| part.to_string()).collect();
        let mut server = TestServer::start_configured(None, None, Some(data), wrapper);
        server.spawn("127.0.0.1:0", "127.0.0.1:0");
        server
    }

    /// The server, not started yet (`spawn` starts it).
    fn start_configured(
        open_files: Option<u32>,
        toml: Option<&str>,
        data: Option<PathBuf>,
        wrapper: Vec<String>,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestServer {
            dir,
            base: String::new(),
            addr: String::new(),
            https_base: String::new(),
            https_addr: String::new(),
            child: None,
            open_files,
            data,
            wrapper,
        };
        if let Some(toml) = toml {
            std::fs::create_dir_all(server.data_dir()).expect("data dir");
            std::fs::write(server.data_dir().join("piarchive.toml"), toml).expect("config file");
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    fn spawn(&mut self, listen: &str, listen_https: &str) {
        let mut command = match self.open_files {
            None if !self.wrapper.is_empty() => {
                let mut command = Command::new(&self.wrapper[0]);
                command
                    .args(&self.wrapper[1..])
                    .arg(env!("CARGO_BIN_EXE_piarchive"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_piarchive")),
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$@\""))
                    .arg("sh")
                    .arg(env!("CARGO_BIN_EXE_piarchive"));
                command
            }
        };
        let mut child = command
            .args(["serve", "--listen", listen, "--listen-https", listen_https])
            .arg("--data")
            .arg(self.data_dir())
            .env_remove("PIARCHIVE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start piarchive");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("piarchive printed its address");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        self.addr = url.trim_start_matches("http://").to_string();
        self.base = url;
        let https = line
            .split_whitespace()
            .find(|word| word.starts_with("https://"));
        match https {
            Some(https) => {
                self.https_addr = https.trim_start_matches("https://").to_string();
                self.https_base = https.to_string();
            }
            None if listen_https.is_empty() => {}
            None => panic!("no HTTPS address in {line:?}"),
        }
        self.child = Some(child);
        wait_until(Duration::from_secs(30), || {
            ureq::get(&format!("{}/healthz", self.base)).call().is_ok()
        });
    }

    /// Stops the process with SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts it again on the same address and data.
    pub fn restart(&mut self) {
        self.kill9();
        let addr = self.addr.clone();
        let https_addr = self.https_addr.clone();
        // The port was ours a moment ago; retry briefly while the kernel frees it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpListener::bind(&addr).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::yield_now();
        }
        self.spawn(&addr, &https_addr);
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            cookie: None,
            csrf: None,
            bearer: None,
            via: None,
        }
    }

    /// Sets up the admin `admin` / `admin password` and returns its client.
    pub fn admin(&self) -> Client {
        let mut client = self.client();
        let resp = client.post_json(
            "/api/v1/setup",
            &json!({"username": "admin", "password": "admin password"}),
        );
        assert_eq!(resp.status, 201, "{}", resp.text());
        client.adopt_session(&resp);
        client
    }

    /// Makes a member with an invitation from the admin `admin` (set up
    /// by [`TestServer::admin`]; registration is closed by default) and
    /// logs them in.
    pub fn member(&self, username: &str) -> Client {
        let mut admin = self.client();
        assert_eq!(admin.login("admin", "admin password").status, 200);
        let invitation = admin.post_json("/api/v1/admin/invitations", &json!({}));
        assert_eq!(invitation.status, 201, "{}", invitation.text());
        let token = invitation.json()["token"].as_str().unwrap().to_string();
        let mut client = self.client();
        let resp = client.post_json(
            "/api/v1/users",
            &json!({"username": username, "password": "member password", "invitation": token}),
        );
        assert_eq!(resp.status, 201, "{}", resp.text());
        client.login(username, "member password");
        client
    }

    /// Opens self-registration (closed by default), as the admin `admin`.
    pub fn open_registration(&self) {
        let mut admin = self.client();
        assert_eq!(admin.login("admin", "admin password").status, 200);
        admin.put_settings(|settings| settings["registration_open"] = json!(true));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        // LMDB's lock file lives in a tmpfs (`store::lock_file`): removed
        // with the test's data folder.
        if let Ok(target) = std::fs::read_link(self.data_dir().join("db").join("lock.mdb")) {
            let _ = std::fs::remove_file(target);
        }
    }
}

/// Polls `check` until it holds, failing the test after `limit`.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `message` of a JSON error, which must be a sentence.
    pub fn message(&self) -> String {
        let message = self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.ends_with('.') || message.ends_with(')'),
            "not a sentence: {message:?}"
        );
        message
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// The agent to send with (an HTTPS one trusting the test's
    /// certificate); `None` = a plain one.
    pub via: Option<ureq::Agent>,
}

impl Client {
    pub fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(Duration::from_secs(120))
            .build()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let agent = self.via.clone().unwrap_or_else(Self::agent);
        let mut request = agent.request(method, &format!("{}{}", self.base, path));
        if let Some(cookie) = &self.cookie {
            request = request.set("Cookie", cookie);
        }
        if let Some(csrf) = &self.csrf {
            request = request.set("X-CSRF-Token", csrf);
        }
        if let Some(bearer) = &self.bearer {
            request = request.set("Authorization", &format!("Bearer {bearer}"));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request.send_bytes(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(err) => panic!("{method} {path}: {err}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .flat_map(|name| {
                response
                    .all(&name)
                    .into_iter()
                    .map(|v| (name.clone(), v.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut body = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut body)
            .expect("read body");
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, &[], None)
    }
    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send_json("POST", path, body)
    }
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.join("&").as_bytes()),
        )
    }

    pub fn login(&mut self, username: &str, password: &str) -> Resp {
        let resp = self.post_json(
            "/api/v1/session",
            &json!({"username": username, "password": password}),
        );
        if resp.status == 200 {
            self.adopt_session(&resp);
        }
        resp
    }

    pub fn adopt_session(&mut self, resp: &Resp) {
        let set_cookie = resp.header("Set-Cookie").expect("session cookie");
        self.cookie = Some(set_cookie.split(';').next().unwrap().to_string());
        self.csrf = resp.json()["csrf_token"].as_str().map(str::to_string);
    }

    /// One-shot upload of `data`; returns the response.
    pub fn upload(&self, name: &str, filename: &str, data: &[u8]) -> Resp {
        let path = format!(
            "/api/v1/archives?name={}&filename={}",
            encode(name),
            encode(filename)
        );
        self.request("PUT", &path, &[], Some(data))
    }

    /// Uploads and returns the new archive's JSON, asserting success.
    /// Changes the admin settings through the API (as an admin).
    pub fn put_settings(&self, change: impl FnOnce(&mut Value)) {
        let mut settings = self.get("/api/v1/admin/settings").json();
        change(&mut settings);
        let resp = self.send_json("PUT", "/api/v1/admin/settings", &settings);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }

    /// Creates a tus upload of `length` bytes (filename `f.bin`); its answer.
    pub fn tus_create(&self, length: u64) -> Resp {
        use base64::Engine as _;
        let metadata = format!(
            "filename {}",
            base64::engine::general_purpose::STANDARD.encode("f.bin")
        );
        self.request(
            "POST",
            "/api/v1/uploads",
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Upload-Length", &length.to_string()),
                ("Upload-Metadata", &metadata),
            ],
            None,
        )
    }

    pub fn upload_ok(&self, name: &str, data: &[u8]) -> Value {
        let resp = self.upload(name, &format!("{name}.bin"), data);
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()
    }
}

/// An upload window that is closed now (one minute, twelve hours away), so
/// archives stay on the appliance until a test opens it again.
pub fn closed_upload_window() -> Value {
    let minute = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400)
        / 60;
    let start = (minute + 720) % 1440;
    let end = (start + 1) % 1440;
    let hh_mm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    json!({"start": hh_mm(start), "end": hh_mm(end)})
}

pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough for
/// the chunker to find content-defined cut points.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every file under `dir`, recursively, sorted; empty when `dir` is missing.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Sends raw bytes over a TCP connection and returns what came back (the
/// connection is closed by `shutdown_write` or left open when false).
pub fn raw_http(addr: &str, request: &[u8], shutdown_write: bool) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).expect("write");
    if shutdown_write {
        stream.shutdown(std::net::Shutdown::Write).ok();
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/output")
        .join(test);
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// The appliance's books, read from its store (the server stopped): every
/// part is on the current remote, every object is stored, and each
/// object's refcount equals the parts using it. Returns those uses.
pub fn checked_object_uses(
    store: &piarchive::store::Store,
) -> std::collections::BTreeMap<String, u64> {
    let txn = store.read().expect("read transaction");
    let mut uses = std::collections::BTreeMap::new();
    for (_, part) in store.tables.parts.all(&txn).expect("parts") {
        assert!(
            part.remote && !part.to_move,
            "a part is not on the remote: {part:?}"
        );
        *uses
            .entry(part.object_id.expect("an object id"))
            .or_default() += 1;
    }
    let objects: std::collections::BTreeMap<String, u64> = store
        .tables
        .objects
        .all(&txn)
        .expect("objects")
        .into_iter()
        .map(|(key, object)| {
            assert!(object.stored, "an object not stored: {object:?}");
            (String::from_utf8(key).expect("utf-8 key"), object.refcount)
        })
        .collect();
    assert_eq!(objects, uses, "refcounts equal the parts using each object");
    // Every archive's counters equal its parts (all of them remote here).
    for (_, archive) in store.tables.archives.all(&txn).expect("archives") {
        let parts = store.tables.parts_of(&txn, &archive.id).expect("parts");
        let bytes: u64 = parts.iter().map(|part| part.length).sum();
        assert_eq!(
            (archive.parts_remote as usize, archive.bytes_remote),
            (parts.len(), bytes),
            "the counters of archive {} equal its parts",
            archive.id
        );
    }
    uses
}
