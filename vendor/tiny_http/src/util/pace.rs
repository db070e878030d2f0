//! piarchive patch: deadlines per request, not per read.
//!
//! One `Pace` per connection, shared by the connection's thread (which reads
//! request heads and small bodies) and the handler reading a large body.
//! Every socket read asks it how long it may block; it answers from the phase
//! the connection is in, so a client cannot stretch a request by sending one
//! byte just before each read would time out.

use std::io::{Error, ErrorKind, Result as IoResult};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Limits;

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request line and headers, idle wait included.
    /// `saw_bytes` tells a silent kept-alive connection from a slow client.
    Headers { deadline: Instant, saw_bytes: bool },
    /// A body nobody has read yet: its clock starts at the first read (the
    /// request may wait in the queue for a free handler meanwhile).
    BodyWaiting,
    /// A body being read: `deadline` moves forward with every byte.
    Body { deadline: Instant },
    /// The unread rest of a body being thrown away.
    Drain { deadline: Instant },
    /// The connection is given up: every read fails.
    Closed,
}

pub(crate) struct Pace {
    header_timeout: Duration,
    body_grace: Duration,
    secs_per_byte: f64,
    body_max_credit: Duration,
    drain_timeout: Duration,
    phase: Mutex<Phase>,
    /// Requests of this connection handed out and not yet answered (an
    /// event stream's connection taken over counts for ever).
    in_flight: AtomicUsize,
}

impl Pace {
    pub(crate) fn new(limits: &Limits) -> Pace {
        Pace {
            header_timeout: limits.header_timeout,
            body_grace: limits.body_grace,
            secs_per_byte: 1.0 / limits.body_min_rate.max(1) as f64,
            body_max_credit: limits.body_max_credit,
            drain_timeout: limits.drain_timeout,
            phase: Mutex::new(Phase::Headers {
                deadline: Instant::now() + limits.header_timeout,
                saw_bytes: false,
            }),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A request of this connection was handed out.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// A request of this connection was answered (or dropped).
    pub(crate) fn request_done(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// True when the connection only waits for (or reads) a request head
    /// and no request of it is being answered: ending it loses nothing
    /// but a kept-alive connection or a head still being sent.
    pub(crate) fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && matches!(
                *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
                Phase::Headers { .. }
            )
    }

    fn set(&self, phase: Phase) {
        let mut current = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*current, Phase::Closed) {
            *current = phase;
        }
    }

    /// The server starts waiting for the next request's head.
    pub(crate) fn await_headers(&self) {
        self.set(Phase::Headers {
            deadline: Instant::now() + self.header_timeout,
            saw_bytes: false,
        });
    }

    /// The head is read; a body follows, read later.
    pub(crate) fn body_pending(&self) {
        self.set(Phase::BodyWaiting);
    }

    /// The rest of the body is thrown away from now on.
    pub(crate) fn begin_drain(&self) {
        self.set(Phase::Drain {
            deadline: Instant::now() + self.drain_timeout,
        });
    }

    /// Gives the connection up: every later read fails at once.
    pub(crate) fn close(&self) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Phase::Closed;
    }

    /// True when part of a request head arrived since the server started
    /// waiting for it.
    pub(crate) fn saw_header_bytes(&self) -> bool {
        matches!(
            *self.phase.lock().unwrap_or_else(|e| e.into_inner()),
            Phase::Headers {
                saw_bytes: true,
                ..
            }
        )
    }

    /// How long the next read may block. Zero when the deadline has passed:
    /// the caller then only takes what has already arrived.
    pub(crate) fn time_left(&self, now: Instant) -> IoResult<Duration> {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = match *phase {
            Phase::Headers { deadline, .. }
            | Phase::Body { deadline }
            | Phase::Drain { deadline } => deadline,
            Phase::BodyWaiting => {
                let deadline = now + self.body_grace;
                *phase = Phase::Body { deadline };
                deadline
            }
            Phase::Closed => {
                return Err(Error::new(
                    ErrorKind::ConnectionAborted,
                    "connection given up",
                ))
            }
        };
        Ok(deadline.saturating_duration_since(now))
    }

    /// `bytes` arrived at `now`.
    pub(crate) fn received(&self, bytes: usize, now: Instant) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *phase {
            Phase::Headers { saw_bytes, .. } => *saw_bytes = true,
            Phase::Body { deadline } => {
                let credit = Duration::from_secs_f64(bytes as f64 * self.secs_per_byte);
                *deadline = (*deadline + credit).min(now + self.body_max_credit);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn headers_have_one_deadline_for_all_reads() {
        let pace = Pace::new(&limits());
        let start = Instant::now();
        pace.received(1, start + Duration::from_secs(9));
        let left = pace.time_left(start + Duration::from_secs(9)).unwrap();
        assert!(left <= Duration::from_secs(1), "{:?}", left);
        assert!(pace.saw_header_bytes());
        assert_eq!(
            pace.time_left(start + Duration::from_secs(11)).unwrap(),
            Duration::ZERO
        );
    }

    #[test]
    fn a_trickle_runs_out_and_a_steady_body_does_not() {
        let pace = Pace::new(&limits());
        pace.body_pending();
        let start = Instant::now();
        // One byte every 10 s: the 20 s grace is all it gets.
        pace.time_left(start).unwrap();
        for second in (10..=20).step_by(10) {
            pace.received(1, start + Duration::from_secs(second));
        }
        assert_eq!(
            pace.time_left(start + Duration::from_secs(21)).unwrap(),
            Duration::ZERO
        );

        // 50 KB/s for ten minutes: always the full credit ahead.
        let pace = Pace::new(&limits());
        pace.body_pending();
        pace.time_left(start).unwrap();
        for second in 1..=600 {
            pace.received(50_000, start + Duration::from_secs(second));
        }
        let left = pace.time_left(start + Duration::from_secs(600)).unwrap();
        assert_eq!(left, Duration::from_secs(60));
    }

    #[test]
    fn a_closed_connection_refuses_reads_whatever_comes_next() {
        let pace = Pace::new(&limits());
        pace.close();
        pace.await_headers();
        assert!(pace.time_left(Instant::now()).is_err());
    }
}
