//! piarchive patch: the accept thread's survival. Upstream tiny_http ended
//! the accept thread on the first failed `accept` (EMFILE under load), and
//! the process lived on with its port closed for good.

use std::io::{Error, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::util::MessagesQueue;
use crate::{Limits, Message};

/// The answer to a connection over the caps, with the application's
/// headers: sent without blocking, then the connection is closed.
pub(crate) fn refusal(limits: &Limits) -> Vec<u8> {
    let body = "Too many connections are open; try again in a few seconds.";
    let mut head = String::from(
        "HTTP/1.1 503 Service Unavailable\r\n\
         Retry-After: 5\r\n\
         Connection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\n",
    );
    for (name, value) in &limits.own_answer_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    head.into_bytes()
}

/// Answers `refusal` to a connection over the caps; it is closed when the
/// last reference is dropped.
pub(crate) fn refuse(connection: &Connection, refusal: &[u8]) {
    if let Connection::Tcp(tcp) = connection {
        if tcp.set_nonblocking(true).is_ok() {
            let _ = (&*tcp).write(refusal);
        }
    }
}

/// True when `accept` failed because the listening socket itself is broken
/// (it will never accept again); anything else may pass.
pub(crate) fn is_fatal(err: &Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

/// Waits after failed accepts: `min` doubling to `max`, reset by a success.
/// The first failure of a run and the recovery are logged, nothing between.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    failures: u64,
}

impl Backoff {
    pub(crate) fn new(limits: &Limits) -> Backoff {
        Backoff {
            min: limits.accept_backoff_min,
            max: limits.accept_backoff_max,
            next: limits.accept_backoff_min,
            failures: 0,
        }
    }

    pub(crate) fn failed(&mut self, err: &Error) {
        // A client that gave up while waiting: nothing to wait for.
        if matches!(
            err.kind(),
            ErrorKind::Interrupted | ErrorKind::ConnectionAborted
        ) {
            return;
        }
        if self.failures == 0 {
            eprintln!(
                "piarchive: cannot accept a connection ({err}); retrying every {}-{} ms",
                self.min.as_millis(),
                self.max.as_millis()
            );
        }
        self.failures += 1;
        std::thread::sleep(self.next);
        self.next = (self.next * 2).min(self.max);
    }

    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            eprintln!(
                "piarchive: accepting connections again after {} failed attempts",
                self.failures
            );
        }
        self.failures = 0;
        self.next = self.min;
    }
}

/// Lives as long as the accept thread. When the thread ends while the
/// server was not being dropped (a fatal error, a panic), every `recv`
/// waiting gets an error saying the listener stopped.
pub(crate) struct ListenerWatch {
    closing: Arc<AtomicBool>,
    messages: Arc<MessagesQueue<Message>>,
}

impl ListenerWatch {
    pub(crate) fn new(closing: Arc<AtomicBool>, messages: Arc<MessagesQueue<Message>>) -> Self {
        ListenerWatch { closing, messages }
    }
}

impl Drop for ListenerWatch {
    fn drop(&mut self) {
        if !self.closing.load(Relaxed) {
            self.messages.push(Message::Error(Error::new(
                ErrorKind::Other,
                "the server stopped accepting connections",
            )));
        }
    }
}
