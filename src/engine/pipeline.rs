//! One copy pass, written once for the remote move (`remote_move`) and the
//! copy destinations' syncers (`destinations`): this thread reads the work
//! a batch at a time and hands it to a few copier threads, which hand what
//! landed to one committer (a few items per transaction, each waiting at
//! most [`COMMIT_WAIT`] for company). No transaction is held across I/O;
//! memory is bounded by the copiers (each holds one sealed part) and the
//! small queue between the feeder and them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{lock, Failure, Inner};
use crate::store::StoreError;

/// Items committed per transaction at most.
pub(super) const BATCH: usize = 64;
/// How long a landed item waits for others to share its transaction.
const COMMIT_WAIT: Duration = Duration::from_millis(50);

/// Why one item was not copied on this pass.
pub(super) enum Stop {
    /// Its source could not give it (and no other could): the archive
    /// waits, named, for the source to come back.
    Source(String),
    /// Another job holds the object right now.
    Busy,
    /// The destination (or the store) failed: the pass ends, retried later.
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Busy => Stop::Busy,
            other => Stop::Failed(other),
        }
    }
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        Stop::Failed(err.into())
    }
}

/// A batch of work and the last key read (`None` once all was read).
pub(super) type Batch<I> = (Vec<I>, Option<Vec<u8>>);

/// What one pass left behind.
#[derive(Default)]
pub(super) struct PassOutcome {
    /// Archive id -> why an item of it could not be read from its source.
    pub(super) stuck: BTreeMap<String, String>,
    pub(super) busy: bool,
    pub(super) failure: Option<Failure>,
}

/// The three steps of a pass: where the work comes from, how one item is
/// copied, how a group of landed items is committed.
pub(super) trait CopyWork: Sync {
    type Item: Send;
    type Landed: Send;

    /// The next batch after `cursor` and the last key read (`None` once
    /// everything has been read).
    fn next_batch(&self, cursor: Option<&[u8]>) -> Result<Batch<Self::Item>, StoreError>;

    /// Copies one item; on failure, the archive it belongs to and why.
    fn copy(&self, item: Self::Item) -> Result<Self::Landed, (String, Stop)>;

    /// Commits landed items in one transaction.
    fn commit(&self, group: &[Self::Landed]) -> Result<(), Failure>;
}

impl Inner {
    /// Runs one pass of `work` on `copiers` threads (see the module
    /// comment). `halt`: set from outside to end the pass early (counted
    /// as busy, like a shutdown or the upload window closing).
    pub(super) fn copy_pass<W: CopyWork>(
        &self,
        work: &W,
        copiers: usize,
        halt: &AtomicBool,
    ) -> PassOutcome {
        let outcome = Mutex::new(PassOutcome::default());
        let stop = AtomicBool::new(false);
        let (feed, queue) = sync_channel::<W::Item>(copiers * 2);
        let queue = Mutex::new(queue);
        let (landed_tx, landed_rx) = channel::<W::Landed>();
        std::thread::scope(|scope| {
            for _ in 0..copiers {
                let landed_tx = landed_tx.clone();
                let (queue, outcome, stop) = (&queue, &outcome, &stop);
                scope.spawn(move || loop {
                    let Ok(item) = lock(queue).recv() else {
                        break;
                    };
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    match work.copy(item) {
                        Ok(landed) => {
                            let _ = landed_tx.send(landed);
                        }
                        Err((archive_id, reason)) => {
                            let mut outcome = lock(outcome);
                            match reason {
                                Stop::Source(reason) => {
                                    outcome.stuck.entry(archive_id).or_insert(reason);
                                }
                                Stop::Busy => outcome.busy = true,
                                Stop::Failed(failure) => {
                                    stop.store(true, Ordering::Relaxed);
                                    outcome.failure.get_or_insert(failure);
                                }
                            }
                        }
                    }
                });
            }
            drop(landed_tx);
            let committer = scope.spawn(|| commit_landed(work, landed_rx, &stop));
            self.feed_copiers(work, &feed, &stop, halt, &outcome);
            drop(feed);
            if let Ok(Err(failure)) | Err(failure) = committer.join().map_err(|_| {
                Failure::Transient(
                    "The copy's committer stopped unexpectedly; it goes on later.".into(),
                )
            }) {
                let mut outcome = lock(&outcome);
                match failure {
                    Failure::Busy => outcome.busy = true,
                    other => {
                        outcome.failure.get_or_insert(other);
                    }
                }
            }
        });
        outcome.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the work batch by batch and queues it for the copiers, until
    /// none is left or the pass must stop.
    fn feed_copiers<W: CopyWork>(
        &self,
        work: &W,
        feed: &std::sync::mpsc::SyncSender<W::Item>,
        stop: &AtomicBool,
        halt: &AtomicBool,
        outcome: &Mutex<PassOutcome>,
    ) {
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if self.shutdown.load(Ordering::SeqCst)
                || halt.load(Ordering::SeqCst)
                || !self.uploads_allowed()
            {
                lock(outcome).busy = true;
                return;
            }
            let (batch, last) = match work.next_batch(cursor.as_deref()) {
                Ok(found) => found,
                Err(err) => {
                    lock(outcome).failure.get_or_insert(err.into());
                    return;
                }
            };
            let Some(last) = last else {
                return;
            };
            cursor = Some(last);
            for item in batch {
                if feed.send(item).is_err() {
                    return;
                }
            }
        }
    }
}

/// Commits what the copiers landed, a few items per transaction.
fn commit_landed<W: CopyWork>(
    work: &W,
    landed: Receiver<W::Landed>,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    while let Ok(first) = landed.recv() {
        let mut group = vec![first];
        let until = Instant::now() + COMMIT_WAIT;
        while group.len() < BATCH {
            let wait = until.saturating_duration_since(Instant::now());
            match landed.recv_timeout(wait) {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        if let Err(failure) = work.commit(&group) {
            stop.store(true, Ordering::Relaxed);
            return Err(failure);
        }
    }
    Ok(())
}
