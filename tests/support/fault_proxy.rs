//! Test support: an HTTP proxy on 127.0.0.1:0 that breaks some requests on
//! purpose, the way a flaky uplink or an overloaded S3 server would.
//!
//! Owns the fault plan (which request gets which fault, seeded so a failure
//! reproduces), forwarding the other requests to an upstream server, and
//! counting what it did: per fault, and the method and path of every
//! request it read whole (so a test can tell how often each object was
//! PUT). It can also hold every forwarded answer back for a while, like a
//! slow link, to give a test time to act mid-transfer. Each client connection carries one request (the
//! proxy answers with `Connection: close`), so faults are per request. It
//! only ever connects to the upstream address it was given.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Longest the proxy keeps a stalled or idle connection before giving up.
const MAX_HOLD: Duration = Duration::from_secs(30);

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward it and return the real answer.
    Pass,
    /// Answer 500 InternalError without forwarding.
    ServerError,
    /// Answer 503 SlowDown without forwarding.
    SlowDown,
    /// Reset the connection (RST) without forwarding.
    Reset,
    /// Never answer; hold the connection until the client gives up.
    Stall,
    /// Forward it, then send only the first half of the answer and close.
    Truncate,
    /// Forward it (the server acts on it), then reset instead of answering.
    DropResponse,
}

/// Which requests get which fault.
#[derive(Debug, Clone)]
pub enum FaultPlan {
    /// The first requests get these faults in order; the rest pass.
    Sequence(Vec<Fault>),
    /// Every request gets this fault.
    Always(Fault),
    /// Each request is faulted with probability `fraction`, the fault drawn
    /// evenly from `faults`, but never more than `max_consecutive` in a row.
    Random {
        fraction: f64,
        faults: Vec<Fault>,
        max_consecutive: u32,
        seed: u64,
    },
}

struct Decider {
    plan: FaultPlan,
    rng: StdRng,
    requests: usize,
    consecutive_faults: u32,
    counts: HashMap<Fault, usize>,
}

impl Decider {
    fn next(&mut self) -> Fault {
        let index = self.requests;
        self.requests += 1;
        let fault = match &self.plan {
            FaultPlan::Sequence(faults) => faults.get(index).copied().unwrap_or(Fault::Pass),
            FaultPlan::Always(fault) => *fault,
            FaultPlan::Random {
                fraction,
                faults,
                max_consecutive,
                ..
            } => {
                let roll: f64 = self.rng.gen();
                if roll < *fraction
                    && self.consecutive_faults < *max_consecutive
                    && !faults.is_empty()
                {
                    faults[self.rng.gen_range(0..faults.len())]
                } else {
                    Fault::Pass
                }
            }
        };
        if fault == Fault::Pass {
            self.consecutive_faults = 0;
        } else {
            self.consecutive_faults += 1;
        }
        *self.counts.entry(fault).or_default() += 1;
        fault
    }
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub address: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    decider: Arc<Mutex<Decider>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What every connection thread records and reads.
#[derive(Default)]
struct Shared {
    /// `(method, path)` of each request read whole, in arrival order.
    log: Mutex<Vec<(String, String)>>,
    /// How long a passed request's answer is held back, in milliseconds.
    delay_ms: AtomicU64,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, plan: FaultPlan) -> Self {
        let seed = match &plan {
            FaultPlan::Random { seed, .. } => *seed,
            _ => 0,
        };
        let decider = Arc::new(Mutex::new(Decider {
            plan,
            rng: StdRng::seed_from_u64(seed),
            requests: 0,
            consecutive_faults: 0,
            counts: HashMap::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let thread = {
            let decider = Arc::clone(&decider);
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let decider = Arc::clone(&decider);
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        let _ = handle(client, upstream, &decider, &shared);
                    });
                }
            })
        };
        Self {
            address,
            endpoint: format!("http://{address}"),
            decider,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Holds back the answer of every passed request by `delay` (after the
    /// upstream server has acted on it), from now on.
    pub fn set_response_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(millis, Ordering::SeqCst);
    }

    /// `(method, path)` of every request read whole so far, in order.
    pub fn request_log(&self) -> Vec<(String, String)> {
        self.shared
            .log
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.decider.lock().map(|d| d.requests).unwrap_or(0)
    }

    /// How many requests got each fault (including `Pass`).
    pub fn counts(&self) -> HashMap<Fault, usize> {
        self.decider
            .lock()
            .map(|d| d.counts.clone())
            .unwrap_or_default()
    }

    /// Requests that got any fault other than `Pass`.
    pub fn faults_injected(&self) -> usize {
        self.counts()
            .iter()
            .filter(|(fault, _)| **fault != Fault::Pass)
            .map(|(_, count)| count)
            .sum()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    decider: &Mutex<Decider>,
    shared: &Shared,
) -> io::Result<()> {
    client.set_read_timeout(Some(MAX_HOLD))?;
    let Some(request) = read_request(&mut client)? else {
        return Ok(()); // closed without a request (e.g. the wake-up connect)
    };
    if let Ok(mut log) = shared.log.lock() {
        let head = String::from_utf8_lossy(&request[..request.len().min(2048)]).into_owned();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        log.push((method, path));
    }
    let fault = decider
        .lock()
        .map_err(|_| io::Error::other("fault decider poisoned"))?
        .next();
    match fault {
        Fault::Pass => {
            let response = forward(&request, upstream)?;
            let delay = shared.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                // A slow link: the server has acted, the answer is late.
                std::thread::sleep(Duration::from_millis(delay));
            }
            client.write_all(&response)?;
        }
        Fault::ServerError => {
            write_error(&mut client, "500 Internal Server Error", "InternalError")?
        }
        Fault::SlowDown => write_error(&mut client, "503 Slow Down", "SlowDown")?,
        Fault::Reset => reset(client)?,
        Fault::Stall => {
            // Read until the client hangs up (its timeout) or MAX_HOLD passes.
            let mut sink = [0u8; 1024];
            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
        }
        Fault::Truncate => {
            let response = forward(&request, upstream)?;
            let head_end = find(&response, b"\r\n\r\n").map(|i| i + 4).unwrap_or(0);
            let cut = if response.len() > head_end {
                head_end + (response.len() - head_end) / 2
            } else {
                head_end / 2
            };
            client.write_all(&response[..cut])?;
            client.flush()?;
            client.shutdown(Shutdown::Both)?;
        }
        Fault::DropResponse => {
            forward(&request, upstream)?;
            reset(client)?;
        }
    }
    Ok(())
}

/// Reads one request (head and Content-Length body); `None` if the client
/// closed first.
fn read_request(client: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(index) = find(&buffer, b"\r\n\r\n") {
            break index + 4;
        }
        let read = client.read(&mut chunk)?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let body_length = header_value(&head, "content-length")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + body_length {
        let read = client.read(&mut chunk)?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    buffer.truncate(head_end + body_length);
    Ok(Some(buffer))
}

/// Sends the request upstream on a fresh connection and returns the whole
/// answer, rewritten to close the client connection after it.
fn forward(request: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(MAX_HOLD))?;
    server.write_all(&with_connection_close(request))?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    Ok(with_connection_close(&response))
}

/// Replaces any `Connection` header of an HTTP message head with `close`.
fn with_connection_close(message: &[u8]) -> Vec<u8> {
    let Some(head_end) = find(message, b"\r\n\r\n") else {
        return message.to_vec();
    };
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut out = Vec::with_capacity(message.len() + 32);
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&message[head_end + 4..]);
    out
}

fn write_error(client: &mut TcpStream, status: &str, code: &str) -> io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes())?;
    client.flush()
}

/// Closes with RST instead of FIN.
fn reset(client: TcpStream) -> io::Result<()> {
    rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO))?;
    drop(client);
    Ok(())
}

fn header_value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (header, value) = line.split_once(':')?;
        header
            .trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
