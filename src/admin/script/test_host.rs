//! `TestHost`: an in-memory stand-in for the appliance behind the script
//! API, for tests of the engine and the built-in scripts only. The real
//! host (store, job queue, remote) is written by the lead.

use super::*;
use std::collections::BTreeMap;
use std::sync::mpsc;

pub const DAY: i64 = 24 * 60 * 60;
/// The fixed "now" of the test host.
pub const NOW: i64 = 1_750_000_000;

#[derive(Default)]
pub struct TestHostState {
    pub archives: Vec<ArchiveView>,
    pub disk_total: u64,
    pub disk_free: u64,
    pub queue_length: u64,
    /// Parts reported damaged by `verify`, by archive id.
    pub damaged_parts: BTreeMap<String, u64>,
    /// Failed transfers `retry_failed` re-queues.
    pub failed_transfers: u64,
    /// Calls recorded, in order.
    pub uncached: Vec<String>,
    pub cached: Vec<String>,
    pub verified: Vec<(String, u8)>,
    pub logs: Vec<(LogLevel, String)>,
}

pub struct TestHost {
    pub state: Mutex<TestHostState>,
    /// Each `log` message is also sent here, so a test can wait for a
    /// script to reach a point without sleeping.
    log_events: Mutex<Option<mpsc::Sender<String>>>,
}

impl TestHost {
    pub fn new(state: TestHostState) -> Arc<TestHost> {
        Arc::new(TestHost {
            state: Mutex::new(state),
            log_events: Mutex::new(None),
        })
    }

    pub fn log_events(&self) -> mpsc::Receiver<String> {
        let (sender, receiver) = mpsc::channel();
        *self.log_events.lock().unwrap() = Some(sender);
        receiver
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, TestHostState> {
        self.state.lock().unwrap()
    }
}

pub fn archive(id: &str, owner: &str, state: &str, size: u64, idle_days: i64) -> ArchiveView {
    ArchiveView {
        id: id.to_string(),
        owner: owner.to_string(),
        name: format!("{id} photos"),
        filename: format!("{id}.tar"),
        size,
        state: state.to_string(),
        parts_total: 4,
        parts_remote: if matches!(state, "backed_up" | "uncached" | "damaged") {
            4
        } else {
            0
        },
        created_at: NOW - 400 * DAY,
        last_accessed_at: NOW - idle_days * DAY,
    }
}

impl ScriptHost for TestHost {
    fn archives(&self) -> Vec<ArchiveView> {
        self.state().archives.clone()
    }

    fn archive(&self, id: &str) -> Option<ArchiveView> {
        self.state().archives.iter().find(|a| a.id == id).cloned()
    }

    fn stats(&self) -> Stats {
        let state = self.state();
        Stats {
            disk_total: state.disk_total,
            disk_free: state.disk_free,
            queue_length: state.queue_length,
            bytes_uploaded: 1000,
            bytes_downloaded: 2000,
            stored_bytes: 400,
            bytes_saved: 75,
            archives: state.archives.len() as u64,
            archives_off_site: 0,
            placement: "same_disk".into(),
        }
    }

    fn uncache(&self, id: &str) -> Result<(), String> {
        let mut state = self.state();
        let archive = state
            .archives
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| format!("there is no archive {id}"))?;
        if archive.state != "backed_up" {
            return Err(format!(
                "archive {id} is not backed up (it is {})",
                archive.state
            ));
        }
        archive.state = "uncached".to_string();
        state.uncached.push(id.to_string());
        Ok(())
    }

    fn cache(&self, id: &str) -> Result<(), String> {
        let mut state = self.state();
        let archive = state
            .archives
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| format!("there is no archive {id}"))?;
        if archive.state != "uncached" {
            return Err(format!(
                "archive {id} is not uncached (it is {})",
                archive.state
            ));
        }
        archive.state = "caching".to_string();
        state.cached.push(id.to_string());
        Ok(())
    }

    fn verify(&self, id: &str, percent: u8) -> Result<VerifyReport, String> {
        let mut state = self.state();
        let damaged = state.damaged_parts.get(id).copied().unwrap_or(0);
        let archive = state
            .archives
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| format!("there is no archive {id}"))?;
        if archive.parts_remote == 0 {
            return Err(format!("archive {id} has no remote copy"));
        }
        let checked = archive.parts_total;
        if damaged > 0 {
            archive.state = "damaged".to_string();
        }
        state.verified.push((id.to_string(), percent));
        Ok(VerifyReport {
            checked,
            ok: checked - damaged,
            damaged,
        })
    }

    fn retry_failed(&self) -> Result<u64, String> {
        let mut state = self.state();
        let count = state.failed_transfers;
        state.failed_transfers = 0;
        Ok(count)
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.state().logs.push((level, message.to_string()));
        if let Some(sender) = self.log_events.lock().unwrap().as_ref() {
            let _ = sender.send(message.to_string());
        }
    }

    fn now(&self) -> i64 {
        NOW
    }
}

/// A small appliance: two users, archives in several states.
pub fn sample_state() -> TestHostState {
    TestHostState {
        archives: vec![
            archive("a1", "alice", "backed_up", 100, 90),
            archive("a2", "alice", "local", 50, 1),
            archive("b1", "bob", "uncached", 300, 200),
            archive("b2", "bob", "backed_up", 25, 2),
        ],
        disk_total: 1000,
        disk_free: 500,
        queue_length: 3,
        ..TestHostState::default()
    }
}
