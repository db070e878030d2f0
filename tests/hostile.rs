//! Hostile and careless clients against the real binary over real sockets
//! (docs/DESIGN.md, "The network face"). Attackers bind to 127.0.0.2 and other
//! loopback addresses before connecting; the legitimate user stays on
//! 127.0.0.1. The server runs under `ulimit -n 1024` (soft and hard), the
//! kernel's default and what PID 1 starts with. Every loop is bounded in
//! count and time; nothing sleeps to wait for readiness.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestServer;

/// The attacks here run one at a time: each floods sockets, descriptors or
/// threads on purpose, and one flood running beside another test's makes
/// that test's timing meaningless.
static ONE_ATTACK_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn one_attack_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_ATTACK_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub(crate) const USER: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The longest a page or `/healthz` may take for the legitimate user while
/// the server is under attack.
pub(crate) const PROMPT: Duration = Duration::from_secs(2);

pub(crate) fn address(server: &TestServer) -> SocketAddrV4 {
    server.addr.parse().expect("server address")
}

/// A connection from `source`, bound before connecting. Close-on-exec, like
/// std's sockets: servers started by other tests must not inherit it.
pub(crate) fn connect_from(source: Ipv4Addr, to: SocketAddrV4) -> std::io::Result<TcpStream> {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let socket = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    bind(&socket, &SocketAddrV4::new(source, 0))?;
    connect(&socket, &to)?;
    Ok(TcpStream::from(socket))
}

/// An answer read off a raw connection: its status and head.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) took: Duration,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

pub(crate) fn parse_answer(raw: &[u8], took: Duration) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_string(),
        took,
    }
}

/// Sends `request` from `source` and reads the answer until the server
/// closes the connection (or `limit` passes).
pub(crate) fn exchange(
    source: Ipv4Addr,
    to: SocketAddrV4,
    request: &[u8],
    limit: Duration,
) -> Answer {
    let started = Instant::now();
    let mut stream = connect_from(source, to).expect("connect");
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw, started.elapsed())
}

/// A GET from the legitimate user on 127.0.0.1.
pub(crate) fn user_get(server: &TestServer, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: piarchive\r\nConnection: close\r\n\r\n");
    exchange(
        USER,
        address(server),
        request.as_bytes(),
        Duration::from_secs(30),
    )
}

/// `/healthz` and a page load answer 200 within [`PROMPT`].
pub(crate) fn assert_user_is_served(server: &TestServer, when: &str) {
    for path in ["/healthz", "/login"] {
        let answer = user_get(server, path);
        assert_eq!(answer.status, 200, "{path} {when}: {}", answer.head);
        assert!(answer.took < PROMPT, "{path} {when} took {:?}", answer.took);
    }
}

/// The admin's API token, for raw authenticated requests.
pub(crate) fn api_token(server: &TestServer) -> String {
    let admin = server.admin();
    let created = admin.post_json("/api/v1/tokens", &json!({"name": "hostile"}));
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["token"].as_str().expect("token").to_string()
}

/// Whether the server has answered or closed `stream` by now: reads what
/// has arrived without waiting. Returns the bytes read, `None` while
/// nothing has come and the connection is open.
pub(crate) fn poll_answer(stream: &mut TcpStream) -> Option<Vec<u8>> {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let result = match stream.read(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(_) => Some(Vec::new()),
    };
    stream.set_nonblocking(false).unwrap();
    result
}

/// Raises this test process's own open-files limit: it holds more than a
/// thousand client sockets.
pub(crate) fn raise_own_open_files() {
    piarchive::limits::raise_open_files_limit();
}

#[test]
fn slow_bodies_do_not_stop_health_checks_or_page_loads() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    // Two users: one user holds at most half the upload slots.
    let tokens = [api_token(&server), {
        let member = server.member("slow");
        let created = member.post_json("/api/v1/tokens", &json!({"name": "slow"}));
        assert_eq!(created.status, 201, "{}", created.text());
        created.json()["token"].as_str().expect("token").to_string()
    }];
    let to = address(&server);
    // 20 authenticated uploads (10 of each user) and 20 login form posts,
    // each sending one byte of its body and then nothing.
    let mut uploads = Vec::new();
    for i in 0..20 {
        let token = &tokens[i % 2];
        let mut stream = connect_from(ATTACKER, to).unwrap();
        write!(
            stream,
            "PUT /api/v1/archives?name=slow{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\nx"
        )
        .unwrap();
        uploads.push(stream);
    }
    let mut forms = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from(ATTACKER, to).unwrap();
        stream
            .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nu")
            .unwrap();
        forms.push(stream);
    }
    // Uploads beyond the upload slots are refused at once with 503.
    let slots = piarchive::limits::UPLOAD_SLOTS;
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused.len() < uploads.len() - slots && Instant::now() < deadline {
        for (i, stream) in uploads.iter_mut().enumerate() {
            if refused.iter().any(|(j, _)| *j == i) {
                continue;
            }
            if let Some(raw) = poll_answer(stream) {
                refused.push((i, parse_answer(&raw, Duration::ZERO)));
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(refused.len(), uploads.len() - slots, "uploads refused");
    for (_, answer) in &refused {
        assert_eq!(answer.status, 503, "{}", answer.head);
        assert_eq!(answer.header("Retry-After"), Some("5"));
    }
    // 8 uploads hold their slots and 20 form posts their connections: pages
    // and /healthz still answer at once, again and again.
    for round in 0..5 {
        assert_user_is_served(&server, &format!("under 28 slow bodies, round {round}"));
    }
    // None of the slow ones got anywhere meanwhile.
    for stream in forms.iter_mut() {
        assert_eq!(poll_answer(stream), None, "a form post is still waiting");
    }
}

/// Sends 1 byte every 2 s of an upload; returns how long until the server
/// cut the connection (an answer, a close or a reset).
fn trickle(to: SocketAddrV4, token: &str) -> Duration {
    let started = Instant::now();
    let mut stream = connect_from(ATTACKER, to).unwrap();
    write!(
        stream,
        "PUT /api/v1/archives?name=trickle HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 1024];
    for _ in 0..60 {
        if stream.write_all(b"x").is_err() {
            return started.elapsed();
        }
        match stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => return started.elapsed(),
        }
    }
    panic!("the trickle was never cut");
}

/// Uploads `length` bytes at `rate` bytes a second from the user's address;
/// returns the status and how long it took.
fn steady_upload(to: SocketAddrV4, token: &str, length: usize, rate: usize) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = connect_from(USER, to).unwrap();
    write!(
        stream,
        "PUT /api/v1/archives?name=phone HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let piece = rate / 10;
    let data = vec![7u8; piece];
    let mut sent = 0;
    while sent < length {
        let n = piece.min(length - sent);
        stream
            .write_all(&data[..n])
            .expect("the server keeps reading");
        sent += n;
        // Pace to `rate`: the next piece is due at sent / rate seconds.
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    (parse_answer(&raw, Duration::ZERO).status, started.elapsed())
}

#[test]
fn a_one_byte_trickle_is_cut_while_a_phone_speed_upload_goes_on() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let token = api_token(&server);
    let to = address(&server);
    let trickler = {
        let token = token.clone();
        thread::spawn(move || trickle(to, &token))
    };
    // 50 KB/s for 32 s: far longer than any deadline of a single read.
    let (status, took) = steady_upload(to, &token, 1_600_000, 50_000);
    let cut_after = trickler.join().unwrap();
    assert_eq!(status, 201, "the phone-speed upload completes");
    assert!(took >= Duration::from_secs(30), "{took:?}");
    assert!(
        cut_after >= Duration::from_secs(15) && cut_after <= Duration::from_secs(35),
        "the trickle was cut after {cut_after:?}"
    );
    assert_user_is_served(&server, "after the trickle");
}

/// Opens `count` connections from `source` that send nothing.
pub(crate) fn idle_connections(source: Ipv4Addr, to: SocketAddrV4, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|_| connect_from(source, to).ok())
        .collect()
}

/// Waits (bounded) until at least `expected` of `streams` were answered or
/// closed by the server; returns those answers.
pub(crate) fn refusals(streams: &mut [TcpStream], expected: usize) -> Vec<Vec<u8>> {
    let mut answered: Vec<Option<Vec<u8>>> = vec![None; streams.len()];
    let deadline = Instant::now() + Duration::from_secs(8);
    while answered.iter().flatten().count() < expected && Instant::now() < deadline {
        for (stream, answer) in streams.iter_mut().zip(answered.iter_mut()) {
            if answer.is_none() {
                *answer = poll_answer(stream);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    answered.into_iter().flatten().collect()
}

#[test]
fn idle_connections_beyond_the_caps_leave_the_listener_serving() {
    let _alone = one_attack_at_a_time();
    raise_own_open_files();
    let mut server = TestServer::start_with_open_files(1024);
    server.admin();
    let to = address(&server);
    let per_address = piarchive::limits::MAX_CONNECTIONS_PER_ADDRESS;

    // One address opens 1,100: it keeps its 64, the rest get 503 at once.
    let mut one_address = idle_connections(ATTACKER, to, 1100);
    assert_eq!(one_address.len(), 1100);
    let refused = refusals(&mut one_address, 1100 - per_address);
    assert!(refused.len() >= 1100 - per_address, "{}", refused.len());
    assert!(
        refused
            .iter()
            .all(|raw| raw.is_empty() || raw.starts_with(b"HTTP/1.1 503")),
        "refused with 503 or closed"
    );
    assert_user_is_served(&server, "beside 1,100 idle connections from one address");
    drop(one_address);

    // Twenty addresses open 1,100 (more than the server's 1,024 files): the
    // total cap holds, and a device with no connection still gets one.
    let mut many: Vec<TcpStream> = (3..23)
        .flat_map(|last| idle_connections(Ipv4Addr::new(127, 0, 0, last), to, 55))
        .collect();
    assert_eq!(many.len(), 1100);
    let most = piarchive::limits::MAX_CONNECTIONS + piarchive::limits::SPARE_CONNECTIONS;
    let refused = refusals(&mut many, 1100 - most);
    assert!(refused.len() >= 1100 - most, "{}", refused.len());
    assert_user_is_served(&server, "beside 1,100 idle connections from 20 addresses");
    drop(many);
    assert!(server.is_running());
    assert_user_is_served(&server, "after the idle connections are gone");
}

/// How many files the process `pid` has open.
pub(crate) fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let _alone = one_attack_at_a_time();
    raise_own_open_files();
    // The server starts with 1,024 files (its connection budget is sized
    // below that), then its limit is lowered to 128 while it runs, as an
    // admin's `prlimit` may: idle connections now run it out of files
    // before any cap is reached.
    let limit: u32 = 128;
    let mut server = TestServer::start_with_open_files(1024);
    server.admin();
    let lowered = rustix::process::Rlimit {
        current: Some(limit.into()),
        maximum: Some(limit.into()),
    };
    let pid = rustix::process::Pid::from_raw(server.pid() as i32).expect("a pid");
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, lowered)
        .expect("lower the server's open-files limit");
    let to = address(&server);
    let held: Vec<TcpStream> = (2..8)
        .flat_map(|last| idle_connections(Ipv4Addr::new(127, 0, 0, last), to, 25))
        .collect();
    assert_eq!(held.len(), 150);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_files(server.pid()) < limit as usize - 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        open_files(server.pid()) >= limit as usize - 2,
        "the server ran out of files ({} open)",
        open_files(server.pid())
    );
    // It cannot accept while they hold its files; the header deadline frees
    // them, and the user's request is answered then.
    let answer = user_get(&server, "/healthz");
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert!(answer.took < Duration::from_secs(25), "{:?}", answer.took);
    drop(held);
    assert!(
        server.is_running(),
        "the listener did not take the process down"
    );
    assert_user_is_served(&server, "after running out of files");
}

#[test]
fn oversized_heads_and_conflicting_lengths_are_refused() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let to = address(&server);
    let limit = Duration::from_secs(10);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    assert_eq!(exchange(ATTACKER, to, big.as_bytes(), limit).status, 431);
    // Many small headers count together.
    let many: String = (0..2000).map(|i| format!("X-H{i}: 12345\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(exchange(ATTACKER, to, many.as_bytes(), limit).status, 431);
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let request = format!("POST /login HTTP/1.1\r\nHost: x\r\n{lengths}\r\nhello");
        let answer = exchange(ATTACKER, to, request.as_bytes(), limit);
        assert_eq!(answer.status, 400, "{lengths:?}: {}", answer.head);
    }
    // A head just under the limit is fine.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    assert_eq!(exchange(USER, to, fits.as_bytes(), limit).status, 200);
}

/// Sends `start`, then `drip` one byte a second, and returns how long until
/// the server closed the connection, with what it answered.
fn slow_head(to: SocketAddrV4, start: &'static [u8], drip: bool) -> (Duration, Answer) {
    let started = Instant::now();
    let mut stream = connect_from(ATTACKER, to).unwrap();
    stream.write_all(start).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut raw = Vec::new();
    for _ in 0..30 {
        if drip && stream.write_all(b"a").is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let took = started.elapsed();
    (took, parse_answer(&raw, took))
}

#[test]
fn a_head_not_complete_within_ten_seconds_ends_the_connection() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let to = address(&server);
    let cases = [
        // Silent: closed without an answer.
        (&b""[..], false, 0),
        // Half a head: 408.
        (&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], false, 408),
        // A header value growing one byte a second: the deadline is for the
        // whole head, not for each read.
        (&b"GET / HTTP/1.1\r\nX-Slow: "[..], true, 408),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(start, drip, status)| (thread::spawn(move || slow_head(to, start, drip)), status))
        .collect();
    for (run, status) in runs {
        let (took, answer) = run.join().unwrap();
        assert_eq!(answer.status, status, "{}", answer.head);
        assert!(
            took >= Duration::from_secs(9) && took <= Duration::from_secs(13),
            "closed after {took:?}"
        );
    }
}

#[test]
fn every_answer_carries_the_security_headers_and_pages_no_inline_code() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let admin = server.admin();
    for (path, status) in [
        ("/healthz", 200),
        ("/login", 200),
        ("/static/app.css", 200),
        ("/api/v1/me", 401),
        ("/api/v1/no-such-thing", 404),
    ] {
        let answer = user_get(&server, path);
        assert_eq!(answer.status, status, "{path}");
        let csp = answer.header("Content-Security-Policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp:?}"
        );
        assert_eq!(answer.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(answer.header("Referrer-Policy"), Some("same-origin"));
    }
    // The pages a signed-in user sees: no inline style or script, which the
    // policy would block.
    admin.upload_ok("bar", b"some bytes");
    for path in [
        "/",
        "/archives/new",
        "/account",
        "/admin",
        "/admin/settings",
    ] {
        let page = admin.get(path);
        assert_eq!(page.status, 200, "{path}");
        let html = page.text();
        assert!(!html.contains("style="), "{path} has an inline style");
        assert!(!html.contains("<style"), "{path} has a style element");
        let inline_scripts = html.matches("<script>").count() + html.matches("<script ").count()
            - html.matches("<script src=").count();
        assert_eq!(inline_scripts, 0, "{path} has an inline script");
        assert!(!html.contains(" onclick="), "{path} has an inline handler");
    }
}
