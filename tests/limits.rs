//! The application's limits against a hostile family member, played from
//! other loopback addresses (127.0.0.2 and up) while the legitimate user
//! stays on 127.0.0.1: login, password and passphrase guessing, cross-site
//! posts, registration floods, pending uploads, event streams, scripts, one
//! server per data folder, file permissions and bidi names.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::other_address::{connect_from, json_from, request_from};
use crate::support::{files_under, wait_until, Client, Resp, TestServer};

/// A member's API token (bearer), for requests from another address.
fn token(client: &Client) -> String {
    let resp = client.post_json("/api/v1/tokens", &json!({"name": "test"}));
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["token"].as_str().unwrap().to_string()
}

fn login_from(server: &TestServer, local: &str, username: &str, password: &str) -> Resp {
    json_from(
        local,
        &server.addr,
        "POST",
        "/api/v1/session",
        &[],
        &json!({"username": username, "password": password}),
    )
}

fn assert_throttled(resp: &Resp) {
    assert_eq!(resp.status, 429, "{}", resp.text());
    let retry: u64 = resp.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(
        resp.message()
            .starts_with("Too many failed attempts from this device; try again in "),
        "{}",
        resp.text()
    );
}

#[test]
fn guessing_refuses_the_address_and_never_locks_the_owner_out_elsewhere() {
    let server = TestServer::start();
    let _admin = server.admin();
    for _ in 0..5 {
        let resp = login_from(&server, "127.0.0.2", "admin", "guess");
        assert_eq!(resp.status, 401, "{}", resp.text());
    }
    assert_throttled(&login_from(&server, "127.0.0.2", "admin", "guess"));
    // The guesser's address is refused even with the right password ...
    assert_throttled(&login_from(&server, "127.0.0.2", "admin", "admin password"));
    // ... more guesses from more addresses only slow the account down ...
    for local in ["127.0.0.3", "127.0.0.4"] {
        for _ in 0..5 {
            assert_eq!(login_from(&server, local, "admin", "guess").status, 401);
        }
    }
    let started = Instant::now();
    assert_eq!(
        login_from(&server, "127.0.0.5", "admin", "guess").status,
        401
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "slowed down"
    );
    // ... and the owner gets in from their own device, within a bounded delay.
    let started = Instant::now();
    let owner = server.client().login("admin", "admin password");
    assert_eq!(owner.status, 200, "{}", owner.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_current_password_of_a_password_change_is_throttled_like_a_login() {
    let server = TestServer::start();
    let admin = server.admin();
    let bearer = format!("Bearer {}", token(&admin));
    let change = |current: &str| {
        json_from(
            "127.0.0.2",
            &server.addr,
            "PATCH",
            "/api/v1/me",
            &[("Authorization", &bearer)],
            &json!({"current_password": current, "new_password": "a new password"}),
        )
    };
    for _ in 0..5 {
        assert_eq!(change("guess").status, 403);
    }
    assert_throttled(&change("guess"));
    assert_throttled(&change("admin password"));
    // The owner's own device is not refused.
    assert_eq!(server.client().login("admin", "admin password").status, 200);
}

#[test]
fn wrong_recovery_passphrases_are_throttled() {
    use piarchive::remote::{dir::DirRemote, Remote};
    use piarchive::repo::{self, RepoConfig};
    let bucket = tempfile::tempdir().unwrap();
    let remote = DirRemote::new(bucket.path()).unwrap();
    let config = RepoConfig::create(
        "the real passphrase 2026",
        repo::random_bytes().unwrap(),
        repo::random_bytes().unwrap(),
        repo::random_bytes().unwrap(),
        repo::KdfParams::new(64, 1, 1).unwrap(),
    )
    .unwrap();
    remote.put(repo::CONFIG_KEY, &config.encode()).unwrap();
    let server = TestServer::start();
    let body =
        json!({"kind": "dir", "path": bucket.path(), "recovery_passphrase": "a guess at it"});
    for _ in 0..5 {
        let resp = json_from(
            "127.0.0.2",
            &server.addr,
            "POST",
            "/api/v1/setup/restore",
            &[],
            &body,
        );
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json()["error"], "wrong_passphrase");
    }
    let resp = json_from(
        "127.0.0.2",
        &server.addr,
        "POST",
        "/api/v1/setup/restore",
        &[],
        &body,
    );
    assert_throttled(&resp);
}

#[test]
fn cross_site_posts_to_login_and_register_are_refused() {
    let server = TestServer::start();
    let _admin = server.admin();
    server.open_registration();
    let own_origin = format!("http://{}", server.addr);
    let credentials = json!({"username": "admin", "password": "admin password"});
    let login = |headers: &[(&str, &str)]| {
        json_from(
            "127.0.0.1",
            &server.addr,
            "POST",
            "/api/v1/session",
            headers,
            &credentials,
        )
    };
    for headers in [
        &[("Origin", "http://evil.example")][..],
        &[("Sec-Fetch-Site", "cross-site")],
        &[("Origin", "null")],
        &[
            ("Origin", own_origin.as_str()),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ] {
        let resp = login(headers);
        assert_eq!(resp.status, 403, "{headers:?}");
        assert_eq!(resp.json()["error"], "cross_site");
        assert!(resp.message().contains("another website"));
    }
    for headers in [
        &[][..],
        &[
            ("Origin", own_origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &[("Sec-Fetch-Site", "none")],
    ] {
        assert_eq!(login(headers).status, 200, "{headers:?}");
    }
    let form = |path: &str, origin: &str| {
        request_from(
            "127.0.0.1",
            &server.addr,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", origin),
            ],
            b"username=mallory&password=mallory+password",
        )
    };
    for path in ["/login", "/register"] {
        let refused = form(path, "http://evil.example");
        assert_eq!(refused.status, 403, "{path}");
        assert!(refused.text().contains("another website"), "{path}");
    }
    assert_eq!(
        server.client().login("mallory", "mallory password").status,
        401,
        "the cross-site registration created nobody"
    );
    // The same forms from the appliance's own pages work.
    let registered = form("/register", &own_origin);
    assert_eq!(registered.status, 303, "{}", registered.text());
    let logged_in = form("/login", &own_origin);
    assert_eq!(logged_in.status, 303, "{}", logged_in.text());
    assert!(logged_in.header("Set-Cookie").is_some());
}

fn register_from(server: &TestServer, local: &str, username: &str) -> Resp {
    json_from(
        local,
        &server.addr,
        "POST",
        "/api/v1/users",
        &[],
        &json!({"username": username, "password": "member password"}),
    )
}

#[test]
fn anonymous_registrations_are_rate_limited_per_address() {
    let server = TestServer::start();
    let _admin = server.admin();
    server.open_registration();
    for n in 0..10 {
        let resp = register_from(&server, "127.0.0.2", &format!("flood{n}"));
        assert_eq!(resp.status, 201, "{}", resp.text());
    }
    let refused = register_from(&server, "127.0.0.2", "flood10");
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.header("Retry-After").is_some());
    assert!(refused
        .message()
        .starts_with("Too many accounts were created from this device"));
    let form = request_from(
        "127.0.0.2",
        &server.addr,
        "POST",
        "/register",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=flood11&password=member+password",
    );
    assert_eq!(form.status, 429);
    assert!(form.header("Retry-After").is_some());
    assert!(form
        .text()
        .contains("Too many accounts were created from this device"));
    assert_eq!(register_from(&server, "127.0.0.1", "family").status, 201);
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Forgets a process's peak resident memory so far (Linux `clear_refs`).
fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// 1,000 registrations from 100 addresses (so every one is hashed), 16 at
/// a time, while the legitimate user loads `/healthz`: memory stays under
/// 64 MiB because Argon2 runs at most two at a time.
#[test]
fn a_registration_flood_stays_under_64_mib() {
    let server = TestServer::start();
    let _admin = server.admin();
    server.open_registration();
    // Setup derived the recovery key once (Argon2id, 64 MiB): not the flood.
    reset_peak_rss(server.pid());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let statuses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= 1000 {
                    return;
                }
                let local = format!("127.0.{}.{}", 1 + n / 10 / 250, 2 + (n / 10) % 250);
                let resp = register_from(&server, &local, &format!("flood{n}"));
                statuses.lock().unwrap().push(resp.status);
            });
        }
        let healthz = server.client();
        while next.load(std::sync::atomic::Ordering::SeqCst) < 1000 {
            let asked = Instant::now();
            assert_eq!(healthz.get("/healthz").status, 200);
            assert!(asked.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let statuses = statuses.into_inner().unwrap();
    assert_eq!(statuses.len(), 1000);
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every one was hashed and stored"
    );
    let peak = peak_rss(server.pid());
    eprintln!(
        "registration flood: 1000 in {:?}, peak RSS {:.1} MiB",
        started.elapsed(),
        peak as f64 / 1048576.0
    );
    assert!(peak <= 64 << 20, "peak RSS {peak} bytes");
}

fn tus_create(client: &Client, length: &str) -> Resp {
    client.request(
        "POST",
        "/api/v1/uploads",
        &[("Tus-Resumable", "1.0.0"), ("Upload-Length", length)],
        None,
    )
}

fn tus_patch(client: &Client, location: &str, at: u64, body: &[u8]) -> Resp {
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
fn pending_uploads_are_capped_per_user_and_hold_no_open_file() {
    let server = TestServer::start();
    let _admin = server.admin();
    let mallory = server.member("mallory");
    for n in 0..20 {
        let created = tus_create(&mallory, "1000000");
        assert_eq!(created.status, 201, "{}", created.text());
        let location = created.header("Location").unwrap();
        assert_eq!(
            tus_patch(&mallory, location, 0, &[n as u8; 1000]).status,
            204
        );
    }
    let refused = tus_create(&mallory, "1000000");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("Retry-After").is_some());
    assert_eq!(
        refused.message(),
        "You have 20 unfinished uploads already; finish or cancel one, then try again."
    );
    // Others are not affected.
    let family = server.member("family");
    assert_eq!(tus_create(&family, "10").status, 201);
    // Twenty uploads with a PATCH each keep no file open in between.
    let uploads = server.data_dir().join("uploads");
    let open: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&uploads))
        .collect();
    assert!(open.is_empty(), "{open:?}");
}

#[test]
fn upload_lengths_and_offsets_are_plain_digits() {
    let server = TestServer::start();
    let admin = server.admin();
    for length in ["+5", "-5", "5 5", "0x5", "5.0"] {
        let resp = tus_create(&admin, length);
        assert_eq!(resp.status, 400, "{length:?}: {}", resp.text());
        assert!(resp.message().contains("digits only"), "{length:?}");
    }
    let created = tus_create(&admin, "5");
    assert_eq!(created.status, 201);
    let location = created.header("Location").unwrap();
    let resp = admin.request(
        "PATCH",
        location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "+0"),
        ],
        Some(b"12345"),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(tus_patch(&admin, location, 0, b"12345").status, 204);
}

fn available_bytes(path: &Path) -> u64 {
    let stat = rustix::fs::statvfs(path).unwrap();
    stat.f_bavail * stat.f_frsize
}

#[test]
fn the_free_space_check_counts_what_pending_uploads_declared() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.put_settings(|settings| settings["free_space_reserve_bytes"] = json!(0));
    let declared = (available_bytes(&server.data_dir()) / 10 * 6).to_string();
    let first = tus_create(&admin, &declared);
    assert_eq!(first.status, 201, "{}", first.text());
    let second = tus_create(&admin, &declared);
    assert_eq!(second.status, 507, "{}", second.text());
    assert!(second.message().contains("unfinished uploads"));
    let one_shot = admin.upload("big", "big.bin", b"small bodies still fit");
    assert_eq!(one_shot.status, 201, "{}", one_shot.text());
    let cancelled = admin.request(
        "DELETE",
        first.header("Location").unwrap(),
        &[("Tus-Resumable", "1.0.0")],
        None,
    );
    assert_eq!(cancelled.status, 204);
    assert_eq!(tus_create(&admin, &declared).status, 201);
}

#[test]
fn untouched_pending_uploads_expire_and_free_their_bytes() {
    let server = TestServer::start();
    let admin = server.admin();
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["pending_upload_expiry_seconds"], json!(7 * 86_400));
    let mut too_short = settings.clone();
    too_short["pending_upload_expiry_seconds"] = json!(10);
    let refused = admin.send_json("PUT", "/api/v1/admin/settings", &too_short);
    assert_eq!(refused.status, 400);
    assert!(refused.message().contains("pending_upload_expiry_seconds"));

    let mut locations = Vec::new();
    for _ in 0..2 {
        let created = tus_create(&admin, "100000");
        assert_eq!(created.status, 201);
        let location = created.header("Location").unwrap().to_string();
        assert_eq!(tus_patch(&admin, &location, 0, &[7; 5000]).status, 204);
        locations.push(location);
    }
    let [old, fresh] = [&locations[0], &locations[1]];
    let old_file = server
        .data_dir()
        .join("uploads")
        .join(old.rsplit('/').next().unwrap());
    // Nobody touched it for eight days.
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old_file)
        .unwrap()
        .set_modified(eight_days_ago)
        .unwrap();
    let head = |location: &str| {
        admin
            .request("HEAD", location, &[("Tus-Resumable", "1.0.0")], None)
            .status
    };
    // The periodic sweep (every minute) removes it and its bytes.
    wait_until(Duration::from_secs(120), || head(old) == 404);
    assert!(!old_file.exists());
    assert_eq!(head(fresh), 200);
    assert_eq!(tus_patch(&admin, fresh, 5000, &[7; 95_000]).status, 204);
}

/// Opens an event stream from `local` with `bearer`; the status line's code.
fn open_stream(server: &TestServer, local: &str, bearer: &str) -> (u16, std::net::TcpStream) {
    let mut stream = connect_from(local, &server.addr);
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the server answered");
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, stream)
}

#[test]
fn event_streams_are_capped_per_user_and_an_admin_can_always_open_one() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut held = Vec::new();
    let mut members = Vec::new();
    for n in 0..8 {
        members.push(token(&server.member(&format!("viewer{n}"))));
    }
    for _ in 0..4 {
        let (status, stream) = open_stream(&server, "127.0.0.2", &members[0]);
        assert_eq!(status, 200);
        held.push(stream);
    }
    // A fifth page of the same user (issue 26): its newest stream is
    // opened and its oldest ends, told it was replaced.
    let (status, newest) = open_stream(&server, "127.0.0.2", &members[0]);
    assert_eq!(status, 200);
    let mut rest = String::new();
    let mut oldest = held.remove(0);
    oldest
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    oldest.read_to_string(&mut rest).ok();
    assert!(rest.contains("event: replaced"), "{rest}");
    held.push(newest);
    // Seven members fill every slot they may take ...
    for member in &members[1..7] {
        for _ in 0..4 {
            let (status, stream) = open_stream(&server, "127.0.0.2", member);
            assert_eq!(status, 200);
            held.push(stream);
        }
    }
    // ... an eighth still gets a stream (a busiest user's oldest makes
    // way: seven accounts cannot lock the others out) ...
    let (status, _eighth) = open_stream(&server, "127.0.0.2", &members[7]);
    assert_eq!(status, 200, "an eighth member");
    // ... and the admin still gets one.
    let (status, _admin_stream) = open_stream(&server, "127.0.0.1", &token(&admin));
    assert_eq!(status, 200);
}

#[test]
fn scripts_cannot_sleep_and_no_script_takes_the_server_down() {
    let server = TestServer::start();
    let admin = server.admin();
    let refused = "Scripts cannot sleep; a deployment's interval decides when it runs again.";
    for (source, message) in [
        ("sleep(9223372036)", refused),
        ("sleep(1e30)", refused),
        ("let f = Fn(\"sleep\"); f.call(86400)", refused),
        ("let i = 0; loop { i += 1; }", "The script "),
        ("let s = \"x\"; loop { s += s; }", "The script "),
        (
            "fn down(n) { down(n + 1) } down(0)",
            "The script nested calls deeper",
        ),
    ] {
        let started = Instant::now();
        let resp = admin.post_json("/api/v1/admin/scripts/run", &json!({"source": source}));
        assert_eq!(resp.status, 200, "{source}: {}", resp.text());
        let result = resp.json();
        assert_eq!(result["ok"], json!(false), "{source}");
        let error = result["error"]["message"].as_str().unwrap();
        assert!(error.starts_with(message), "{source}: {error}");
        assert!(error.ends_with('.'), "{source}: {error}");
        // Within the 5 s limit of a test run, and a little more.
        assert!(started.elapsed() < Duration::from_secs(10), "{source}");
    }
    assert_eq!(admin.get("/healthz").status, 200);
}

fn piarchive(args: &[&str], data_dir: &Path, stdin: &str) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .args(args)
        .arg("--data")
        .arg(data_dir)
        .env_remove("PIARCHIVE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start piarchive");
    // A command refused at once (a folder in use) may exit before it reads
    // its input: the pipe breaking then is part of what is tested.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "piarchive {args:?} did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn one_server_per_data_folder_and_user_add_works_beside_it() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = server.data_dir();
    let second = piarchive(&["serve", "--listen", "127.0.0.1:0"], &data, "");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&data.display().to_string()) && stderr.contains("in use"),
        "{stderr}"
    );
    let remote_file = server.dir.path().join("remote.json");
    std::fs::write(
        &remote_file,
        json!({"kind": "dir", "path": "/nonexistent"}).to_string(),
    )
    .unwrap();
    let recover = piarchive(
        &["recover", "--remote", remote_file.to_str().unwrap()],
        &data,
        "passphrase\n",
    );
    assert_eq!(recover.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&recover.stderr).contains("in use"));

    // A one-shot upload is half-way when `user add` runs beside the server.
    let body = crate::support::random_bytes(2 << 20, 9);
    let cookie = admin.cookie.clone().unwrap();
    let mut upload = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        upload,
        "PUT /api/v1/archives?name=live&filename=live.bin HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nX-CSRF-Token: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        admin.csrf.clone().unwrap(),
        body.len()
    )
    .unwrap();
    upload.write_all(&body[..1 << 20]).unwrap();
    upload.flush().unwrap();
    wait_until(Duration::from_secs(30), || {
        files_under(&data.join("uploads"))
            .iter()
            .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    });
    let added = piarchive(&["user", "add", "carol"], &data, "carol's password\n");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    upload.write_all(&body[1 << 20..]).unwrap();
    let mut answer = Vec::new();
    upload
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    upload.read_to_end(&mut answer).unwrap();
    let answer = crate::support::other_address::parse_response(&answer);
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(
        answer.json()["sha256"],
        json!(crate::support::sha256_hex(&body))
    );
    assert_eq!(
        server.client().login("carol", "carol's password").status,
        200
    );
}

/// The permissions of `path`, or of what it points to: LMDB's lock file is
/// a symlink into a private folder in RAM, and a symlink's own bits mean
/// nothing to Linux.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every folder under `dir` (itself included).
fn folders_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(folders_under(&entry.path()));
        }
    }
    out
}

fn assert_private(data: &Path) {
    for folder in folders_under(data) {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    for file in files_under(data) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn the_data_folder_is_private_and_an_old_one_is_made_private_at_start() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let archive = admin.upload_ok("photos", b"family photos");
    let id = archive["id"].as_str().unwrap();
    assert_eq!(tus_create(&admin, "100").status, 201);
    // Backed up into the default folder remote, <data>/remote.
    wait_until(Duration::from_secs(60), || {
        admin.get(&format!("/api/v1/archives/{id}")).json()["state"] == "backed_up"
    });
    let data = server.data_dir();
    assert!(files_under(&data.join("remote")).len() >= 2);
    assert!(files_under(&data.join("db")).len() >= 2);
    assert_private(&data);

    // A folder from before: readable by everyone on the box.
    for folder in folders_under(&data) {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // (Its files; the lock file in RAM is not in the data folder.)
    for file in files_under(&data) {
        if !file.is_symlink() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    server.restart();
    // The folder itself at once, the rest on a thread of its own.
    assert_eq!(mode(&data), 0o700);
    wait_until(Duration::from_secs(30), || {
        files_under(&data).iter().all(|file| mode(file) == 0o600)
    });
    assert_private(&data);
}

#[test]
fn bidi_controls_are_stripped_from_names_and_filenames() {
    let server = TestServer::start();
    let admin = server.admin();
    let resp = admin.upload(
        "invoice\u{202E}fdp.exe",
        "\u{2066}report\u{202E}gpj.exe\u{2069}",
        b"not a picture",
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let archive: Value = resp.json();
    assert_eq!(archive["name"], "invoicefdp.exe");
    assert_eq!(archive["filename"], "reportgpj.exe");
    let id = archive["id"].as_str().unwrap();
    let renamed = admin.send_json(
        "PATCH",
        &format!("/api/v1/archives/{id}"),
        &json!({"name": "\u{200F}a\u{061C}b\u{202B}"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["name"], "ab");
    let metadata = format!(
        "name {}",
        base64::engine::general_purpose::STANDARD.encode("tus\u{202D}name")
    );
    let created = admin.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "3"),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    let location = created.header("Location").unwrap();
    let done = tus_patch(&admin, location, 0, b"abc");
    let archive_id = done.header("Archive-Id").unwrap();
    assert_eq!(
        admin.get(&format!("/api/v1/archives/{archive_id}")).json()["name"],
        "tusname"
    );
}
