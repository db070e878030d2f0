//! Server-Sent Events: the one writer of an event stream's head
//! ([`start`], [`send`]) and `GET /api/v1/events`, the caller's archives.
//!
//! tiny_http buffers response bodies, so an event stream takes the
//! connection's writer over (`Request::into_writer`), writes the head
//! itself and streams from a thread of its own; handler threads are never
//! held. The live system log (`admin::api::log_events`) streams the same way. Each event and keep-alive comment is flushed at once. At most
//! `engine::events::MAX_SUBSCRIBERS` streams run at once, at most
//! `MAX_SUBSCRIBERS_PER_USER` of one user (a user's newest page takes the
//! place of their oldest, which is sent `replaced`), and a few are kept
//! for admins.

use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::auth::api_caller;
use super::http::{ApiError, Req};
use crate::app::state::App;

/// A comment line sent when nothing happened for this long, so proxies and
/// browsers keep the connection and a closed one is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Sent when nothing happened for [`KEEPALIVE`]: a comment, which keeps
/// proxies from closing the connection, and a `heartbeat` event, by which
/// a page's script notices a dead stream within one heartbeat.
const HEARTBEAT: &str = ": keepalive\n\nevent: heartbeat\ndata: {}\n\n";

/// The last event of a stream whose place a newer page of the same user
/// took (at most `MAX_SUBSCRIBERS_PER_USER` each): the page does not
/// reconnect.
const REPLACED: &str = "event: replaced\ndata: {}\n\n";

/// The response head: no length (the stream ends when either side closes),
/// no caching or proxy buffering, and `Connection: close` so the client
/// never waits for this connection to carry another request.
/// The security headers (`http::SECURITY_HEADERS`) are added by [`head`].
const HEAD: &str = "HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream; charset=utf-8\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n";

/// The whole head: [`HEAD`] and the headers every answer carries.
fn head() -> String {
    let mut head = HEAD.to_string();
    for (name, value) in super::http::SECURITY_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// An event stream's connection, once its head is written.
pub type Stream = Box<dyn Write + Send + 'static>;

/// Takes the connection over and writes the event-stream head and
/// `first` (comment lines): the writer, or `None` when the client is gone.
///
/// The head is written by hand: tiny_http's `upgrade` would add
/// `Connection: upgrade` and `Upgrade:` to this 200, which is not an
/// upgrade at all and which proxies may refuse or buffer. The body has no
/// length and ends when the connection closes.
pub fn start(request: tiny_http::Request, first: &str) -> Option<Stream> {
    let mut stream = request.into_writer();
    send(&mut stream, &format!("{}{first}", head())).then_some(stream)
}

/// Writes one event or comment and flushes it; false when the client is gone.
pub fn send(stream: &mut Stream, chunk: &str) -> bool {
    stream
        .write_all(chunk.as_bytes())
        .and_then(|()| stream.flush())
        .is_ok()
}

pub fn archive_events(app: &App, mut request: tiny_http::Request) {
    let caller = {
        let req = Req::new(&mut request);
        api_caller(app, &req)
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(err) => {
            let _ = request.respond(err.into_resp().into_tiny());
            return;
        }
    };
    let events = match app
        .engine
        .events()
        .subscribe(&caller.user.id, caller.is_admin())
    {
        Ok(events) => events,
        Err(refused) => {
            let err = ApiError::new(503, "too_many_streams", refused.to_string())
                .with_header("Retry-After", "10");
            let _ = request.respond(err.into_resp().into_tiny());
            return;
        }
    };
    let owner_id = caller.user.id.clone();
    std::thread::spawn(move || {
        let Some(mut stream) = start(request, "retry: 3000\n: connected\n\n") else {
            return;
        };
        loop {
            // Other users' events do not count as traffic for this client.
            let keepalive_at = Instant::now() + KEEPALIVE;
            let chunk = loop {
                let wait = keepalive_at.saturating_duration_since(Instant::now());
                match events.recv_timeout(wait) {
                    Ok(event) if event.owner_id == owner_id => break event.to_sse(),
                    Ok(_) => {}
                    // A comment for proxies, an event for the page's
                    // watchdog (pages cannot see comments).
                    Err(RecvTimeoutError::Timeout) => break HEARTBEAT.to_string(),
                    // The user's newer page took this stream's place.
                    Err(RecvTimeoutError::Disconnected) => {
                        send(&mut stream, REPLACED);
                        return;
                    }
                }
            };
            if !send(&mut stream, &chunk) {
                return;
            }
        }
    });
}
