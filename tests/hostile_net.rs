//! Hostile clients of issue 26 against the real binary over real sockets:
//! floods of correct logins, parallel guesses, TLS dribbling, 24 addresses
//! holding every connection, one member hogging the transfer slots or the
//! event streams, request smuggling, and tiny_http's own answers. Attackers
//! bind to 127.0.0.2 and up; the legitimate user stays on 127.0.0.1. Every
//! loop is bounded in count and time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::hostile::{
    address, assert_user_is_served, connect_from, exchange, idle_connections, one_attack_at_a_time,
    open_files, parse_answer, poll_answer, raise_own_open_files, refusals, Answer, ATTACKER,
    PROMPT, USER,
};
use crate::support::{Client, TestServer};

/// An attacker address other than [`ATTACKER`]: 127.0.0.`last`.
fn attacker(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sends `request` and returns the answer's head and body.
fn exchange_body(source: Ipv4Addr, to: SocketAddrV4, request: &[u8]) -> (Answer, String) {
    let started = Instant::now();
    let mut stream = connect_from(source, to).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (
        parse_answer(&raw, started.elapsed()),
        body.unwrap_or_default(),
    )
}

/// A JSON login request (`POST /api/v1/session`).
fn login_request(username: &str, password: &str) -> Vec<u8> {
    let body = json!({"username": username, "password": password}).to_string();
    format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The security headers every answer carries (the set
/// `every_answer_carries_the_security_headers…` checks).
fn assert_security_headers(answer: &Answer, what: &str) {
    let csp = answer.header("Content-Security-Policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {}",
        answer.head
    );
    assert_eq!(
        answer.header("X-Content-Type-Options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("Referrer-Policy"),
        Some("same-origin"),
        "{what}"
    );
}

/// An API token of `client`'s user.
fn token_of(client: &Client) -> String {
    let created = client.post_json("/api/v1/tokens", &json!({"name": "hostile"}));
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["token"].as_str().expect("token").to_string()
}

#[test]
fn a_flood_of_correct_logins_leaves_pages_and_the_admin_served() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    server.admin();
    server.member("flood");
    let to = address(&server);
    // 2 addresses x 40 connections log in with the member's own password
    // for 8 s, one login after the other on each.
    let flood_until = Instant::now() + Duration::from_secs(8);
    let floods: Vec<_> = (0..80)
        .map(|n| {
            let source = attacker(2 + (n % 2) as u8);
            thread::spawn(move || {
                let mut answers = Vec::new();
                while Instant::now() < flood_until && answers.len() < 200 {
                    let request = login_request("flood", "member password");
                    answers.push(exchange_body(source, to, &request));
                }
                answers
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let mut pages = Vec::new();
    for _ in 0..10 {
        for path in ["/healthz", "/login"] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            pages.push((path, exchange(USER, to, request.as_bytes(), PROMPT * 5)));
        }
        thread::sleep(Duration::from_millis(200));
    }
    let (admin, _) = exchange_body(USER, to, &login_request("admin", "admin password"));
    let answers: Vec<(Answer, String)> = floods
        .into_iter()
        .flat_map(|flood| flood.join().unwrap())
        .collect();
    for (path, page) in &pages {
        assert_eq!(page.status, 200, "{path} during the flood: {}", page.head);
        assert!(page.took < PROMPT, "{path} took {:?}", page.took);
    }
    assert_eq!(admin.status, 200, "the admin logs in: {}", admin.head);
    assert!(
        admin.took < PROMPT,
        "the admin's login took {:?}",
        admin.took
    );
    let served = answers.iter().filter(|(a, _)| a.status == 200).count();
    assert!(
        served <= piarchive::accounts::throttle::MAX_SUCCESSES_PER_ACCOUNT,
        "{served} correct logins of one account served within a minute"
    );
    for (answer, body) in &answers {
        match answer.status {
            200 => {}
            429 | 503 => {
                assert!(answer.header("Retry-After").is_some(), "{}", answer.head);
                assert!(
                    body.contains("try again"),
                    "{} with a sentence: {body}",
                    answer.status
                );
            }
            other => panic!("a flooding login got {other}: {}", answer.head),
        }
    }
}

#[test]
fn parallel_wrong_passwords_get_no_more_checks_than_the_limit() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    server.admin();
    server.member("guessed");
    let to = address(&server);
    let start = Arc::new(Barrier::new(40));
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let start = start.clone();
            thread::spawn(move || {
                let request = login_request("guessed", &format!("wrong guess {n}"));
                start.wait();
                exchange_body(ATTACKER, to, &request).0.status
            })
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    assert!(
        (1..=piarchive::accounts::MAX_FAILURES).contains(&checked),
        "{checked} of 40 parallel guesses were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    // Another address's guesses on the same account now wait the delay.
    let (answer, _) = exchange_body(attacker(3), to, &login_request("guessed", "one more"));
    assert_eq!(answer.status, 401);
    assert!(
        answer.took >= piarchive::accounts::throttle::ACCOUNT_DELAY_STEP,
        "the account's delay was skipped: {:?}",
        answer.took
    );
}

/// Bytes sent one a second on `stream` until the server closes it (or 30
/// have gone); how long that took from `started`.
fn dribble(stream: &mut TcpStream, bytes: &[u8], started: Instant) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    for byte in bytes.iter().cycle().take(30) {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // An encrypted 408 or alert may come first: read on.
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    started.elapsed()
}

/// A TLS client that trusts anything: the test only needs the handshake.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// After a real handshake, the TLS record of a half request head: the
/// bytes to dribble.
fn handshake_then_record(stream: &mut TcpStream) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(stream).expect("handshake");
    }
    conn.writer()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let mut record = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut record).unwrap();
    }
    record
}

#[test]
fn tls_dribbling_is_cut_at_the_head_deadline_and_the_budget_is_shared() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    server.admin();
    let https: SocketAddrV4 = server.https_addr.parse().unwrap();
    let to = address(&server);
    // A ClientHello record header announcing 512 bytes, then a byte a
    // second; and a request record after a real handshake, a byte a second.
    let hello = thread::spawn(move || {
        let started = Instant::now();
        let mut stream = connect_from(ATTACKER, https).unwrap();
        stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
        dribble(&mut stream, &[0x01], started)
    });
    let request = thread::spawn(move || {
        let started = Instant::now();
        let mut stream = connect_from(attacker(3), https).unwrap();
        let record = handshake_then_record(&mut stream);
        dribble(&mut stream, &record, started)
    });
    for (what, run) in [
        ("a dribbled ClientHello", hello),
        ("a dribbled request", request),
    ] {
        let took = run.join().unwrap();
        assert!(
            took >= Duration::from_secs(8) && took <= Duration::from_secs(14),
            "{what} was closed after {took:?}"
        );
    }

    // One budget for both listeners: 40 idle connections on HTTP and 40 on
    // HTTPS from one address hold its 64; the 16 over are closed at once
    // on the TLS port, without a plaintext answer.
    let source = attacker(4);
    let before = open_files(server.pid());
    let _plain = idle_connections(source, to, 40);
    // connect() returns once the kernel has the connection: wait (bounded)
    // until the server has taken all 40, so the 16 over the address's share
    // are the TLS ones, not a race between the two accept threads.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_files(server.pid()) < before + 40 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let mut tls = idle_connections(source, https, 40);
    let per_address = piarchive::limits::MAX_CONNECTIONS_PER_ADDRESS;
    let refused = refusals(&mut tls, 80 - per_address);
    assert_eq!(refused.len(), 80 - per_address, "refused on the TLS port");
    assert!(
        refused.iter().all(|raw| raw.is_empty()),
        "a refusal on the TLS port is a close, never plaintext"
    );
    assert_user_is_served(&server, "beside the dribblers");
}

#[test]
fn twenty_four_addresses_holding_every_connection_leave_a_phone_a_way_in() {
    let _alone = one_attack_at_a_time();
    raise_own_open_files();
    let server = TestServer::start_with_open_files(1024);
    server.admin();
    let to = address(&server);
    let https: SocketAddrV4 = server.https_addr.parse().unwrap();
    // The fill that beat the spare places: 127.0.0.2-9 take 64 each (the
    // 512), then 127.0.0.10-25 take 4 spare places each (the 64 spares),
    // and try a few more: every place is held, by 24 addresses.
    let per_address = piarchive::limits::MAX_CONNECTIONS_PER_ADDRESS;
    let spare_each = piarchive::limits::SPARE_CONNECTIONS_PER_ADDRESS;
    let mut held: Vec<TcpStream> = (2..=9)
        .flat_map(|last| idle_connections(attacker(last), to, per_address))
        .collect();
    held.extend((10..=25).flat_map(|last| idle_connections(attacker(last), to, spare_each + 2)));
    let budget = piarchive::limits::MAX_CONNECTIONS + piarchive::limits::SPARE_CONNECTIONS;
    let over = held.len() - budget;
    let closed = refusals(&mut held, over);
    assert!(
        closed.len() >= over,
        "the pool holds at most {budget}: {} of {} closed",
        closed.len(),
        held.len()
    );
    // The phone on 127.0.0.1 gets its pages, once and again.
    assert_user_is_served(&server, "while 24 addresses hold every connection");
    assert_user_is_served(&server, "again");
    // The TLS port answers an attacker over the cap by closing, never in
    // plaintext.
    let mut extra = connect_from(attacker(2), https).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = extra.read_to_end(&mut raw);
    assert!(!raw.starts_with(b"HTTP/"), "plaintext on the TLS port");
    drop(held);
}

/// Starts an upload of 1 MB from `source` with `token` and sends 1 KB;
/// returns the connection (held open) and what the server answered at
/// once, if anything.
fn start_slow_upload(source: Ipv4Addr, to: SocketAddrV4, token: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = connect_from(source, to).unwrap();
    write!(
        stream,
        "PUT /api/v1/archives?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&[7u8; 1024]).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let answered = match stream.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    };
    (stream, answered)
}

#[test]
fn one_member_cannot_take_every_upload_slot() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let admin = server.admin();
    let member = server.member("hog");
    let token = token_of(&member);
    let to = address(&server);
    let share = piarchive::limits::TRANSFER_SHARE;
    // The member trickles 8 uploads: its share holds, the rest get 503.
    let mut holding = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..piarchive::limits::UPLOAD_SLOTS {
        let (stream, answer) = start_slow_upload(ATTACKER, to, &token);
        if answer.is_empty() {
            holding.push(stream);
        } else {
            refused.push(answer);
        }
    }
    assert_eq!(holding.len(), share, "the member holds its share");
    for raw in &refused {
        let text = String::from_utf8_lossy(raw);
        let answer = parse_answer(raw, Duration::ZERO);
        assert_eq!(answer.status, 503, "{text}");
        assert!(answer.header("Retry-After").is_some(), "{text}");
        assert!(text.contains("your share"), "{text}");
    }
    // Everyone else still uploads.
    let started = Instant::now();
    admin.upload_ok("beside the hog", b"the admin's own bytes");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The member's uploads within its share go on.
    let mut polled = 0;
    for stream in holding.iter_mut() {
        if poll_answer(stream).is_none() {
            polled += 1;
        }
    }
    assert_eq!(polled, share, "the member's uploads in its share go on");
}

/// Opens an event stream with `token` on `path` and reads its head (and
/// what came with it).
fn open_stream(to: SocketAddrV4, path: &str, token: &str) -> (TcpStream, Answer) {
    let mut stream = connect_from(USER, to).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let answer = parse_answer(&raw, Duration::ZERO);
    (stream, answer)
}

/// Reads `stream` until `needle` arrives or it closes (within 5 s).
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains(needle) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    text
}

#[test]
fn seven_accounts_cannot_fill_the_event_streams_and_a_users_newest_page_gets_one() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let admin = server.admin();
    let to = address(&server);
    let per_user = piarchive::engine::events::MAX_SUBSCRIBERS_PER_USER;
    let member_slots =
        piarchive::engine::events::MAX_SUBSCRIBERS - piarchive::engine::events::ADMIN_RESERVED;
    let accounts = member_slots / per_user;
    let tokens: Vec<String> = (0..=accounts)
        .map(|n| token_of(&server.member(&format!("streamer{n}"))))
        .collect();
    // Seven accounts x 4 streams: every member slot.
    let mut held = Vec::new();
    for token in &tokens[..accounts] {
        for _ in 0..per_user {
            let (stream, answer) = open_stream(to, "/api/v1/events", token);
            assert_eq!(answer.status, 200, "{}", answer.head);
            assert_security_headers(&answer, "an event stream's head");
            held.push(stream);
        }
    }
    // An eighth account still gets its stream.
    let (_eighth, answer) = open_stream(to, "/api/v1/events", &tokens[accounts]);
    assert_eq!(answer.status, 200, "the eighth account: {}", answer.head);
    // A fifth page of the first account: its oldest stream makes way.
    let (_newest, answer) = open_stream(to, "/api/v1/events", &tokens[0]);
    assert_eq!(answer.status, 200, "{}", answer.head);
    let oldest = read_until(&mut held[0], "event: replaced");
    assert!(oldest.contains("event: replaced"), "{oldest:?}");
    // The admin's live log stream carries the headers too.
    let (_log, answer) = open_stream(to, "/api/v1/admin/log/events", &token_of(&admin));
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_security_headers(&answer, "the live log's head");
}

#[test]
fn smuggled_framing_is_refused_and_tiny_https_own_answers_carry_the_security_headers() {
    let _alone = one_attack_at_a_time();
    let server = TestServer::start_with_open_files(1024);
    let to = address(&server);
    // 408 takes the head deadline: started first, checked last.
    let slow = thread::spawn(move || {
        exchange(
            attacker(5),
            to,
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            Duration::from_secs(20),
        )
    });
    // Content-Length with Transfer-Encoding: 400, and the connection
    // closed (what follows is never read as a request).
    let smuggled = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let started = Instant::now();
    let (answer, body) = exchange_body(ATTACKER, to, smuggled);
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        !body.contains("HTTP/1.1 200"),
        "the smuggled request was answered"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "closed at once");
    assert_security_headers(&answer, "400");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let answer = exchange(ATTACKER, to, big.as_bytes(), Duration::from_secs(10));
    assert_eq!(answer.status, 431);
    assert_security_headers(&answer, "431");
    // One address over its cap: 503 with the headers.
    let per_address = piarchive::limits::MAX_CONNECTIONS_PER_ADDRESS;
    let mut over = idle_connections(attacker(6), to, per_address + 1);
    let refused = refusals(&mut over, 1);
    assert_eq!(refused.len(), 1);
    let answer = parse_answer(&refused[0], Duration::ZERO);
    assert_eq!(answer.status, 503, "{}", answer.head);
    assert_security_headers(&answer, "503");
    drop(over);
    let answer = slow.join().unwrap();
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_security_headers(&answer, "408");
}
