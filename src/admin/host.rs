//! The appliance as admin scripts see it: [`ScriptHost`] over the store, the
//! data disk and the system log, with the remote actions (`uncache`, `cache`,
//! `verify`, `retry_failed`) handed to the transfer engine through
//! [`ArchiveActions`].
//!
//! Owns: turning records into the plain [`ArchiveView`]s of the script API
//! (owner ids become usernames; nothing secret is handed over). Must not
//! touch: HTTP, the remote (only through [`ArchiveActions`]). Reads only;
//! every change goes through the engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::log::{Subject, SystemLog};
use super::script::{ArchiveView, LogLevel, ScriptHost, Stats, TrashedView, VerifyReport};
use crate::ids;
use crate::store::records::{ArchiveRecord, ArchiveState};
use crate::store::Store;

/// Transfer figures for `stats()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferCounters {
    pub queue_length: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
}

/// What scripts may ask of the transfer engine. Errors are sentences for the
/// admin; a script sees them as a thrown error.
pub trait ArchiveActions: Send + Sync {
    /// Starts evicting the local copy of a backed-up archive.
    fn uncache(&self, archive_id: &str) -> Result<(), String>;
    /// Starts fetching an uncached archive back to the disk.
    fn cache(&self, archive_id: &str) -> Result<(), String>;
    /// Checks the remote copies of the archive's parts.
    fn verify(&self, archive_id: &str, percent: u8) -> Result<VerifyReport, String>;
    /// Re-queues failed transfers; returns how many.
    fn retry_failed(&self) -> Result<u64, String>;
    /// Takes an archive out of the trash.
    fn restore(&self, archive_id: &str) -> Result<(), String>;
    fn counters(&self) -> TransferCounters;
}

/// The engine slot: empty until the transfer engine is plugged in.
pub type ActionsSlot = Arc<RwLock<Option<Arc<dyn ArchiveActions>>>>;

const NO_ENGINE: &str =
    "the remote transfer engine is not available on this appliance yet, so nothing was changed";

/// One script run's view of the appliance. `source` is the log source of
/// its `log()` calls (`script:<name>`).
pub struct AppHost {
    store: Store,
    data_dir: PathBuf,
    log: Arc<SystemLog>,
    actions: ActionsSlot,
    source: String,
    /// The admin who started the run, for the log.
    user_id: Option<String>,
}

impl AppHost {
    pub fn new(
        store: Store,
        data_dir: PathBuf,
        log: Arc<SystemLog>,
        actions: ActionsSlot,
        source: String,
        user_id: Option<String>,
    ) -> AppHost {
        AppHost {
            store,
            data_dir,
            log,
            actions,
            source,
            user_id,
        }
    }

    fn actions(&self) -> Option<Arc<dyn ArchiveActions>> {
        self.actions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn usernames(&self) -> HashMap<String, String> {
        let Ok(txn) = self.store.read() else {
            return HashMap::new();
        };
        self.store
            .tables
            .users
            .all(&txn)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, user)| (user.id, user.username))
            .collect()
    }

    fn record(&self, archive_id: &str) -> Option<ArchiveRecord> {
        if !ids::is_valid_id(archive_id) {
            return None;
        }
        let txn = self.store.read().ok()?;
        self.store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())
            .ok()
            .flatten()
    }

    /// The archive, or a sentence saying there is none.
    fn existing(&self, archive_id: &str) -> Result<ArchiveRecord, String> {
        self.record(archive_id)
            .ok_or_else(|| format!("there is no archive {archive_id}"))
    }
}

fn view(record: ArchiveRecord, usernames: &HashMap<String, String>) -> ArchiveView {
    ArchiveView {
        owner: usernames
            .get(&record.owner_id)
            .cloned()
            .unwrap_or_else(|| record.owner_id.clone()),
        id: record.id,
        name: record.name,
        filename: record.filename,
        size: record.size,
        state: record.state.as_str().to_string(),
        parts_total: u64::from(record.parts_total),
        parts_remote: u64::from(record.parts_remote),
        created_at: record.created_at,
        last_accessed_at: record.last_accessed_at,
    }
}

impl ScriptHost for AppHost {
    fn archives(&self) -> Vec<ArchiveView> {
        let usernames = self.usernames();
        let Ok(txn) = self.store.read() else {
            return Vec::new();
        };
        let archives = &self.store.tables.archives;
        let mut list: Vec<ArchiveView> = archives
            .all(&txn)
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| matches!(archives.trash_of(&txn, key), Ok(None)))
            .map(|(_, record)| view(record, &usernames))
            .collect();
        list.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        list
    }

    fn archive(&self, archive_id: &str) -> Option<ArchiveView> {
        let record = self.record(archive_id)?;
        let mut view = view(record, &self.usernames());
        let txn = self.store.read().ok()?;
        let trash = self
            .store
            .tables
            .archives
            .trash_of(&txn, archive_id.as_bytes());
        if matches!(trash, Ok(Some(_))) {
            view.state = "trashed".to_string();
        }
        Some(view)
    }

    fn trash(&self) -> Vec<TrashedView> {
        let usernames = self.usernames();
        let Ok(txn) = self.store.read() else {
            return Vec::new();
        };
        let mut list: Vec<TrashedView> = (self.store.tables.archives)
            .all_trashed(&txn)
            .unwrap_or_default()
            .into_iter()
            .map(|(record, trash)| TrashedView {
                archive: view(record, &usernames),
                trashed_at: trash.trashed_at,
                purge_at: trash.purge_at,
            })
            .collect();
        list.sort_by(|a, b| (b.trashed_at, &a.archive.id).cmp(&(a.trashed_at, &b.archive.id)));
        list
    }

    fn restore(&self, archive_id: &str) -> Result<(), String> {
        self.existing(archive_id)?;
        match self.actions() {
            Some(actions) => actions.restore(archive_id),
            None => Err(NO_ENGINE.to_string()),
        }
    }

    fn stats(&self) -> Stats {
        let (disk_total, disk_free) = match rustix::fs::statvfs(&self.data_dir) {
            Ok(stat) => (
                stat.f_blocks.saturating_mul(stat.f_frsize),
                stat.f_bavail.saturating_mul(stat.f_frsize),
            ),
            Err(_) => (0, 0),
        };
        let records = self
            .store
            .read()
            .and_then(|txn| self.store.tables.archives.all(&txn))
            .unwrap_or_default();
        let archives = records.len() as u64;
        let remote = crate::archive::remote_totals(records.iter().map(|(_, record)| record));
        let counters = self
            .actions()
            .map(|actions| actions.counters())
            .unwrap_or_default();
        Stats {
            disk_total,
            disk_free,
            queue_length: counters.queue_length,
            bytes_uploaded: counters.bytes_uploaded,
            bytes_downloaded: counters.bytes_downloaded,
            stored_bytes: remote.stored_bytes,
            bytes_saved: remote.saved_bytes,
            archives,
        }
    }

    fn uncache(&self, archive_id: &str) -> Result<(), String> {
        let archive = self.existing(archive_id)?;
        if archive.state != ArchiveState::BackedUp {
            return Err(format!(
                "archive {archive_id} is not backed up (state: {}); nothing was evicted",
                archive.state.as_str()
            ));
        }
        match self.actions() {
            Some(actions) => actions.uncache(archive_id),
            None => Err(NO_ENGINE.to_string()),
        }
    }

    fn cache(&self, archive_id: &str) -> Result<(), String> {
        self.existing(archive_id)?;
        match self.actions() {
            Some(actions) => actions.cache(archive_id),
            None => Err(NO_ENGINE.to_string()),
        }
    }

    fn verify(&self, archive_id: &str, percent: u8) -> Result<VerifyReport, String> {
        self.existing(archive_id)?;
        match self.actions() {
            Some(actions) => actions.verify(archive_id, percent),
            None => Err(NO_ENGINE.to_string()),
        }
    }

    fn verify_sample_percent(&self) -> u8 {
        crate::settings::Settings::load(&self.store)
            .map(|settings| settings.verify_sample_percent.min(100))
            .unwrap_or(crate::settings::DEFAULT_VERIFY_SAMPLE_PERCENT)
    }

    fn retry_failed(&self) -> Result<u64, String> {
        match self.actions() {
            Some(actions) => actions.retry_failed(),
            None => Err(NO_ENGINE.to_string()),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        let subject = Subject {
            user_id: self.user_id.as_deref(),
            archive_id: None,
        };
        self.log.write(level, &self.source, message, subject);
    }

    fn now(&self) -> i64 {
        ids::now_secs()
    }
}
