//! A hostile bucket (issue 26): an HTTP server on loopback that speaks just
//! enough of S3's wire format to be pointed at, verifies nothing (no
//! signature, no bucket) and answers whatever the test wants: absurd
//! objects, listings that never end, XML answers of gigabytes streamed
//! lazily, bodies that stall. It is the hostile party itself, not a stand-in
//! for S3: the well-behaved S3 of the other tests is `s3_server` (s3s-fs).
//!
//! The test hands in a function from the request (method, path, query) to
//! an [`Answer`]; lazy answers are generated as the client reads, so a
//! "gigabyte" costs the test nothing until someone reads it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A request as the hostile bucket saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Decoded path, e.g. `/bucket/prefix/config`.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What the hostile bucket answers.
pub enum Answer {
    /// A whole body with its length.
    Bytes { status: u16, body: Vec<u8> },
    /// `head`, then `repeat` again and again, with `pause` before each
    /// repeat: `length` announced (and the body cut there) or, with `None`,
    /// sent chunked for ever, until the client stops reading.
    Lazy {
        status: u16,
        length: Option<u64>,
        head: Vec<u8>,
        repeat: Vec<u8>,
        pause: Duration,
    },
}

impl Answer {
    pub fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer::Bytes {
            status: 200,
            body: body.into(),
        }
    }

    pub fn not_found() -> Answer {
        Answer::Bytes {
            status: 404,
            body:
                b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
                    .to_vec(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

pub struct HostileBucket {
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

impl HostileBucket {
    /// Starts serving on a free loopback port; runs until the test process
    /// ends (each connection on a thread of its own).
    pub fn start(handler: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> HostileBucket {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (counted, bytes) = (requests.clone(), sent.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, counted, bytes) = (handler.clone(), counted.clone(), bytes.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &*handler, &counted, &bytes);
                });
            }
        });
        HostileBucket {
            endpoint,
            requests,
            sent,
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Body bytes written so far (what the client took in).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The remote settings JSON pointing at it (path-style, any keys).
    pub fn settings(&self, bucket: &str, prefix: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "s3", "endpoint": self.endpoint, "region": "us-east-1",
            "bucket": bucket, "prefix": prefix, "path_style": true,
            "access_key_id": "HOSTILE", "secret_access_key": "hostile-secret",
        })
    }
}

/// Answers requests on one connection until it closes or a lazy answer
/// ends it.
fn serve(
    stream: TcpStream,
    handler: &Handler,
    counted: &AtomicUsize,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
    // Heads and bodies go out at once: no 40 ms Nagle/delayed-ACK stall on
    // each of thousands of pages.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let target = words.next().unwrap_or_default().to_owned();
        let mut body_length = 0u64;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    body_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        std::io::copy(&mut (&mut reader).take(body_length), &mut std::io::sink())?;
        let request = parse_target(&method, &target);
        counted.fetch_add(1, Ordering::Relaxed);
        let keep_going = write_answer(&mut writer, &request, handler(&request), bytes)?;
        if !keep_going {
            return Ok(());
        }
    }
}

fn parse_target(method: &str, target: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    Request {
        method: method.to_owned(),
        path: decode(path),
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect(),
    }
}

/// Writes one answer; whether the connection may serve another request.
fn write_answer(
    out: &mut TcpStream,
    request: &Request,
    answer: Answer,
    bytes: &AtomicU64,
) -> std::io::Result<bool> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    match answer {
        Answer::Bytes { status, body } => {
            let mut whole = format!(
                "HTTP/1.1 {status} Hostile\r\nDate: {date}\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            if request.method != "HEAD" {
                whole.extend_from_slice(&body);
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            out.write_all(&whole)?;
            Ok(true)
        }
        Answer::Lazy {
            status,
            length,
            head,
            repeat,
            pause,
        } => {
            let framing = match length {
                Some(length) => format!("Content-Length: {length}"),
                None => "Transfer-Encoding: chunked".to_owned(),
            };
            write!(
                out,
                "HTTP/1.1 {status} Hostile\r\nDate: {date}\r\nContent-Type: application/xml\r\n\
                 {framing}\r\n\r\n"
            )?;
            let mut left = length.unwrap_or(u64::MAX);
            let chunked = length.is_none();
            let piece = |out: &mut TcpStream, data: &[u8], left: &mut u64| -> std::io::Result<()> {
                let data = &data[..data.len().min(*left as usize)];
                if chunked {
                    write!(out, "{:x}\r\n", data.len())?;
                    out.write_all(data)?;
                    out.write_all(b"\r\n")?;
                } else {
                    out.write_all(data)?;
                }
                *left -= data.len() as u64;
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(())
            };
            piece(out, &head, &mut left)?;
            // Bigger writes for a fast flood; one repeat at a time when paced.
            let batch = if pause.is_zero() {
                repeat.repeat((256 * 1024 / repeat.len().max(1)).max(1))
            } else {
                repeat
            };
            while left > 0 {
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
                piece(out, &batch, &mut left)?;
            }
            out.flush()?;
            Ok(false)
        }
    }
}
