//! piarchive patch: the limits a server puts on what one client can make it
//! hold. Upstream tiny_http has none of these (reads wait for ever, headers
//! grow without bound, connections are unlimited).

use std::time::Duration;

/// What a client may make the server hold, and for how long. The embedding
/// application chooses the numbers; [`Limits::default`] is a generous set.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The request line and headers must arrive within this time, counted
    /// from when the server starts waiting for them (a new connection, or the
    /// end of the previous request on a kept-alive one). A connection that
    /// sent nothing in that time is closed silently; one that sent part of a
    /// request gets 408.
    pub header_timeout: Duration,
    /// The request line and headers together may be at most this many bytes
    /// (431 beyond).
    pub max_header_bytes: usize,
    /// A body must start arriving within this time of the first read.
    pub body_grace: Duration,
    /// Each byte of body received moves the body's deadline forward by
    /// `1 / body_min_rate` seconds: a client averaging less is cut off.
    pub body_min_rate: u64,
    /// The deadline never lies further ahead than this: the longest pause a
    /// fast client can make.
    pub body_max_credit: Duration,
    /// The rest of a body the handler did not read is drained within this
    /// time and up to `drain_max_bytes`, or the connection is closed.
    pub drain_timeout: Duration,
    pub drain_max_bytes: usize,
    /// Bodies with a `Content-Length` up to this size (and no
    /// `Expect: 100-continue`) are read in full before the request is handed
    /// to a handler, so a slow client only holds its own connection.
    pub preread_max_bytes: usize,
    /// A single write to a client that does not read may block this long.
    pub write_timeout: Duration,
    /// Open connections in total and from one address; more are answered
    /// with 503 and closed at once.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Past `max_connections`, an address holding fewer than
    /// `spare_connections_per_address` connections may still open one of
    /// `spare_connections` more: many busy addresses do not lock out a
    /// device that has (almost) none.
    pub spare_connections: usize,
    pub spare_connections_per_address: usize,
    /// After a failed `accept` that may pass (too many open files, no
    /// memory), the accept thread waits this long, doubling up to the max.
    pub accept_backoff_min: Duration,
    pub accept_backoff_max: Duration,
    /// The connection places to share with other servers (an HTTP and an
    /// HTTPS listener holding one budget); `None`: a pool of its own, made
    /// from the numbers above.
    pub pool: Option<ConnectionPool>,
    /// Headers added to the answers tiny_http writes itself (400, 408,
    /// 417, 431, 503, 505), e.g. the application's security headers.
    pub own_answer_headers: Vec<(String, String)>,
}

/// piarchive patch: one budget of connection places (the caps of a
/// [`Limits`]), shared by every server given it in [`Limits::pool`].
#[derive(Clone)]
pub struct ConnectionPool(pub(crate) std::sync::Arc<crate::util::slots::ConnectionSlots>);

impl ConnectionPool {
    /// A pool with the caps of `limits`.
    pub fn new(limits: &Limits) -> ConnectionPool {
        ConnectionPool(crate::util::slots::ConnectionSlots::new(limits))
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionPool")
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            body_grace: Duration::from_secs(20),
            body_min_rate: 500,
            body_max_credit: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(3),
            drain_max_bytes: 16 << 20,
            preread_max_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_address: 64,
            spare_connections: 64,
            spare_connections_per_address: 4,
            accept_backoff_min: Duration::from_millis(10),
            accept_backoff_max: Duration::from_millis(100),
            pool: None,
            own_answer_headers: Vec::new(),
        }
    }
}
