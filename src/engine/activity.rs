//! What the workers are moving right now, for the device's LEDs and display:
//! the archives with a running transfer (and which way, and how far a cache
//! got), and the remote's current problem. Byte counters are in `metrics`.
//!
//! Owns only in-memory state; it is rebuilt from nothing after a restart
//! (the persistent truth is the job queue and the archive records).

use super::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Which way a running transfer moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// One archive with a transfer running now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub archive_id: String,
    pub direction: Direction,
    /// Bytes fetched so far by a running cache (uploads count their
    /// progress from the parts already stored: 0 here).
    pub bytes_done: u64,
}

struct Running {
    direction: Direction,
    jobs: u32,
    bytes_done: u64,
    /// Start order, so the oldest transfer is the one shown.
    order: u64,
}

#[derive(Default)]
pub struct Activity {
    running: Mutex<HashMap<String, Running>>,
    started: AtomicU64,
}

impl Activity {
    /// Marks a transfer of `archive_id` as running until the guard drops.
    pub(super) fn start(&self, archive_id: &str, direction: Direction) -> RunningGuard<'_> {
        let order = self.started.fetch_add(1, Ordering::Relaxed);
        lock(&self.running)
            .entry(archive_id.to_string())
            .and_modify(|running| running.jobs += 1)
            .or_insert(Running {
                direction,
                jobs: 1,
                bytes_done: 0,
                order,
            });
        RunningGuard {
            activity: self,
            archive_id: archive_id.to_string(),
        }
    }

    /// The running transfers, oldest first.
    pub fn transfers(&self) -> Vec<Transfer> {
        let running = lock(&self.running);
        let mut by_age: Vec<(&String, &Running)> = running.iter().collect();
        by_age.sort_by_key(|(_, running)| running.order);
        by_age
            .into_iter()
            .map(|(archive_id, running)| Transfer {
                archive_id: archive_id.clone(),
                direction: running.direction,
                bytes_done: running.bytes_done,
            })
            .collect()
    }
}

/// Ends a running transfer on drop.
pub(super) struct RunningGuard<'a> {
    activity: &'a Activity,
    archive_id: String,
}

impl RunningGuard<'_> {
    /// Adds `bytes` to a running cache's progress; returns the bytes done.
    pub(super) fn progress(&self, bytes: u64) -> u64 {
        match lock(&self.activity.running).get_mut(&self.archive_id) {
            Some(running) => {
                running.bytes_done += bytes;
                running.bytes_done
            }
            None => 0,
        }
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.activity.running);
        if let Some(entry) = running.get_mut(&self.archive_id) {
            entry.jobs -= 1;
            if entry.jobs == 0 {
                running.remove(&self.archive_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_runs_while_any_of_its_jobs_runs() {
        let activity = Activity::default();
        let first = activity.start("a", Direction::Upload);
        let second = activity.start("a", Direction::Upload);
        assert_eq!(activity.transfers().len(), 1);
        drop(first);
        assert_eq!(activity.transfers()[0].archive_id, "a");
        drop(second);
        assert!(activity.transfers().is_empty());
    }

    #[test]
    fn cache_progress_adds_up() {
        let activity = Activity::default();
        let guard = activity.start("b", Direction::Download);
        guard.progress(10);
        guard.progress(5);
        assert_eq!(activity.transfers()[0].bytes_done, 15);
        assert_eq!(activity.transfers()[0].direction, Direction::Download);
    }

    #[test]
    fn transfers_are_listed_oldest_first() {
        let activity = Activity::default();
        let _older = activity.start("z", Direction::Upload);
        let _newer = activity.start("a", Direction::Download);
        let ids: Vec<String> = activity
            .transfers()
            .into_iter()
            .map(|t| t.archive_id)
            .collect();
        assert_eq!(ids, ["z", "a"]);
    }
}
