//! The limits on what a device on the network can make the server hold — a
//! size, a count or a time for every resource — named in one place
//! (docs/DESIGN.md, "The network face"), and the process's open-files limit.
//!
//! Owns: the numbers, and raising `RLIMIT_NOFILE` at start.
//! Must not touch: how they are enforced: the connection-level limits are
//! enforced by the patched tiny_http (`vendor/tiny_http/PIARCHIVE-PATCHES.md`),
//! the others where they are used (`web`).
//!
//! Limits kept next to the code they bound: live event streams
//! (`engine::events::MAX_SUBSCRIBERS`), login throttling (`accounts`),
//! script run time and operations (`admin`); what a bucket's answers may
//! make the appliance hold (`remote::caps`).

use std::time::Duration;

/// Request line and headers, idle wait on a kept-alive connection included,
/// must arrive within this time (nginx `client_header_timeout`, Go
/// `ReadHeaderTimeout`). A silent connection is then closed; a partial head
/// gets 408.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Request line and headers together: at most this many bytes (431).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A request body must start arriving within this time of the first read,
/// then keep an average of [`BODY_MIN_RATE`] bytes a second; its deadline
/// never lies more than [`BODY_MAX_CREDIT`] ahead, so a fast client may
/// pause that long. Apache `mod_reqtimeout` `body=20,MinRate=500`: a phone at
/// 50 KB/s uploads for ever, a 1-byte-every-10-s trickle is cut after ~20 s.
pub const BODY_GRACE: Duration = Duration::from_secs(20);
pub const BODY_MIN_RATE: u64 = 500;
pub const BODY_MAX_CREDIT: Duration = Duration::from_secs(60);

/// The unread rest of a body (a refused upload) is drained within this time
/// and this many bytes, else the connection is closed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
pub const DRAIN_MAX_BYTES: usize = 16 << 20;

/// JSON and form bodies: at most this many bytes (413). Bodies up to this
/// size are read by the connection's own thread before a handler sees the
/// request, so a slow form post never holds a handler.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// One write of an answer to a client that stopped reading may block this
/// long before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Open connections in total and from one address, both listeners (HTTP
/// and HTTPS) together: one budget. More get 503 with `Retry-After` (HTTP)
/// or are closed (HTTPS: a plaintext answer there is garbage to the client)
/// at once. Past the total, an address holding fewer than
/// [`SPARE_CONNECTIONS_PER_ADDRESS`] may still open one of
/// [`SPARE_CONNECTIONS`] more; past that, a newcomer takes the place of an
/// idle connection (between requests, or still sending its head) of the
/// address holding the most, if that holds at least two more than the
/// newcomer's: 24 hostile addresses cannot lock a phone out. One connection
/// is one file descriptor and one thread; 512 + 64 stays well inside
/// `ulimit -n 1024` with [`RESERVED_FILES`] left, and a lower limit shrinks
/// the budget ([`connection_budget`]).
pub const MAX_CONNECTIONS: usize = 512;
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
pub const SPARE_CONNECTIONS: usize = 64;
pub const SPARE_CONNECTIONS_PER_ADDRESS: usize = 4;

/// Open files kept out of the connection budget: the store, the log,
/// uploads and downloads being written and read, event streams, S3
/// connections, the listeners.
pub const RESERVED_FILES: u64 = 192;
/// The smallest connection budget, however low the open-files limit.
pub const MIN_CONNECTIONS: usize = 32;

/// The total and spare connections that fit under `open_files` (the
/// process's limit) with [`RESERVED_FILES`] left over.
pub fn connection_budget(open_files: u64) -> (usize, usize) {
    let room = usize::try_from(open_files.saturating_sub(RESERVED_FILES))
        .unwrap_or(usize::MAX)
        .max(MIN_CONNECTIONS);
    if room >= MAX_CONNECTIONS + SPARE_CONNECTIONS {
        return (MAX_CONNECTIONS, SPARE_CONNECTIONS);
    }
    let spare = room / 9;
    (room - spare, spare)
}

/// After a failed `accept` (too many open files, no memory) the server
/// waits this long, doubling to the max, and tries again.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Requests whose body is read from the socket while they are handled
/// (uploads: `PUT /api/v1/archives`, tus `PATCH`, anything over
/// [`SMALL_BODY_BYTES`] or chunked) run on their own threads, at most this
/// many at once, so they never take the handler threads page loads and
/// `/healthz` need. One more gets 503 with `Retry-After`.
pub const UPLOAD_SLOTS: usize = 8;

/// Answers streamed from a file (archive downloads) are sent from threads
/// of their own, at most this many at once, for the same reason: a client
/// reading slowly holds only its download thread. One more gets 503.
pub const DOWNLOAD_SLOTS: usize = 8;

/// Uploads and downloads of one user (or one anonymous address) running at
/// once, at most: half the slots of a kind, so one member trickling uploads
/// or reading downloads slowly leaves the other half to everyone else.
pub const TRANSFER_SHARE: usize = UPLOAD_SLOTS / 2;

/// The `Retry-After` seconds of a 503 for a full capacity limit.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The connection-level limits, for tiny_http: give the same value to
/// both listeners, so they share one connection budget (`pool`), sized by
/// the open-files limit in force now (raise it first).
pub fn http() -> tiny_http::Limits {
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let (max_connections, spare_connections) = connection_budget(open_files);
    let mut limits = tiny_http::Limits {
        header_timeout: HEADER_TIMEOUT,
        max_header_bytes: MAX_HEADER_BYTES,
        body_grace: BODY_GRACE,
        body_min_rate: BODY_MIN_RATE,
        body_max_credit: BODY_MAX_CREDIT,
        drain_timeout: DRAIN_TIMEOUT,
        drain_max_bytes: DRAIN_MAX_BYTES,
        preread_max_bytes: SMALL_BODY_BYTES,
        write_timeout: WRITE_TIMEOUT,
        max_connections,
        max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
        spare_connections,
        spare_connections_per_address: SPARE_CONNECTIONS_PER_ADDRESS,
        accept_backoff_min: ACCEPT_BACKOFF_MIN,
        accept_backoff_max: ACCEPT_BACKOFF_MAX,
        pool: None,
        own_answer_headers: crate::web::http::SECURITY_HEADERS
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    };
    limits.pool = Some(tiny_http::ConnectionPool::new(&limits));
    limits
}

/// Raises the soft limit on open files to the hard limit (the kernel's
/// default soft limit, 1024, is also what PID 1 starts with). Best effort:
/// the old limit still works, with fewer connections at once.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            ..limit
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_stays_below_the_open_files_limit() {
        assert_eq!(
            connection_budget(1024),
            (MAX_CONNECTIONS, SPARE_CONNECTIONS)
        );
        for open_files in [128, 256, 512, 700] {
            let (total, spare) = connection_budget(open_files);
            let room = (open_files.saturating_sub(RESERVED_FILES) as usize).max(MIN_CONNECTIONS);
            assert!(total + spare <= room);
            assert!(total > 0 && total + spare >= MIN_CONNECTIONS);
        }
    }

    #[test]
    fn the_open_files_limit_ends_at_the_hard_limit() {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        // Lowered first (not so far that other tests in this process mind),
        // so raising it is seen.
        let limit = getrlimit(Resource::Nofile);
        let lowered = Rlimit {
            current: limit.maximum.map(|max| max.min(4096) - 1),
            ..limit
        };
        setrlimit(Resource::Nofile, lowered).unwrap();
        raise_open_files_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum);
    }
}
