//! What a running admin script sees of the appliance: the one
//! [`ScriptHost`] over the store, the data disk, the system log and the
//! operations (`uncache`, `cache`, `verify` and `retry_failed` are the
//! same [`super::archives`] functions the web uses).
//!
//! Owns: turning records into the plain [`ArchiveView`]s of the script API
//! (owner ids become usernames; nothing secret is handed over). Holds the
//! app weakly (the app owns the admin tools, which make these hosts).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use crate::admin::log::Subject;
use crate::admin::script::{ArchiveView, LogLevel, ScriptHost, Stats, TrashedView, VerifyReport};
use crate::admin::HostMaker;
use crate::app::state::App;
use crate::ids;
use crate::store::records::{ArchiveRecord, ArchiveState};

/// Where the hosts find the app: filled once it is made (`app::start`).
pub type AppCell = Arc<OnceLock<Weak<App>>>;

/// Makes the host of each script run, for `Admin::open`.
pub fn maker(app: AppCell) -> HostMaker {
    Box::new(move |source: &str, user_id: Option<&str>| {
        Arc::new(AppHost {
            app: app.get().cloned().unwrap_or_default(),
            source: source.to_string(),
            user_id: user_id.map(str::to_string),
        }) as Arc<dyn ScriptHost>
    })
}

const NOT_RUNNING: &str = "the appliance is starting or stopping, so nothing was changed";

/// One script run's view of the appliance. `source` is the log source of
/// its `log()` calls (`script:<name>`).
struct AppHost {
    app: Weak<App>,
    source: String,
    /// The admin who started the run, for the log.
    user_id: Option<String>,
}

impl AppHost {
    fn app(&self) -> Result<Arc<App>, String> {
        self.app.upgrade().ok_or_else(|| NOT_RUNNING.to_string())
    }

    fn usernames(app: &App) -> HashMap<String, String> {
        let Ok(txn) = app.store.read() else {
            return HashMap::new();
        };
        app.store
            .tables
            .users
            .all(&txn)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, user)| (user.id, user.username))
            .collect()
    }

    fn record(app: &App, archive_id: &str) -> Option<ArchiveRecord> {
        if !ids::is_valid_id(archive_id) {
            return None;
        }
        let txn = app.store.read().ok()?;
        app.store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())
            .ok()
            .flatten()
    }

    /// The app and the archive, or a sentence saying there is none.
    fn existing(&self, archive_id: &str) -> Result<(Arc<App>, ArchiveRecord), String> {
        let app = self.app()?;
        let record = Self::record(&app, archive_id)
            .ok_or_else(|| format!("there is no archive {archive_id}"))?;
        Ok((app, record))
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
        let Ok(app) = self.app() else {
            return Vec::new();
        };
        let usernames = Self::usernames(&app);
        let Ok(txn) = app.store.read() else {
            return Vec::new();
        };
        let archives = &app.store.tables.archives;
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
        let app = self.app().ok()?;
        let record = Self::record(&app, archive_id)?;
        let mut view = view(record, &Self::usernames(&app));
        if matches!(app.archives.trash_of(archive_id), Ok(Some(_))) {
            view.state = "trashed".to_string();
        }
        Some(view)
    }

    fn trash(&self) -> Vec<TrashedView> {
        let Ok(app) = self.app() else {
            return Vec::new();
        };
        let usernames = Self::usernames(&app);
        let mut list: Vec<TrashedView> = app
            .archives
            .all_trashed()
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
        let (app, archive) = self.existing(archive_id)?;
        super::trash::restore(&app, &archive.owner_id, archive_id)
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    fn stats(&self) -> Stats {
        let Ok(app) = self.app() else {
            return Stats::default();
        };
        let (disk_total, disk_free) = match rustix::fs::statvfs(&app.config.data_dir) {
            Ok(stat) => (
                stat.f_blocks.saturating_mul(stat.f_frsize),
                stat.f_bavail.saturating_mul(stat.f_frsize),
            ),
            Err(_) => (0, 0),
        };
        let records = app
            .store
            .read()
            .and_then(|txn| app.store.tables.archives.all(&txn))
            .unwrap_or_default();
        let remote = crate::archive::remote_totals(records.iter().map(|(_, record)| record));
        let metrics = crate::metrics::global();
        let rule = app.off_site_rule();
        let placement = rule.main.clone();
        let archives_off_site = records
            .iter()
            .filter(|(_, record)| rule.is_off_site(record))
            .count() as u64;
        Stats {
            disk_total,
            disk_free,
            queue_length: app.engine.queue_length(),
            bytes_uploaded: metrics.bytes_uploaded(),
            bytes_downloaded: metrics.bytes_downloaded(),
            stored_bytes: remote.stored_bytes,
            bytes_saved: remote.saved_bytes,
            archives: records.len() as u64,
            archives_off_site,
            placement: placement.as_str().to_string(),
        }
    }

    fn uncache(&self, archive_id: &str) -> Result<(), String> {
        let (app, archive) = self.existing(archive_id)?;
        if archive.state != ArchiveState::BackedUp {
            return Err(format!(
                "archive {archive_id} is not backed up (state: {}); nothing was evicted",
                archive.state.as_str()
            ));
        }
        super::archives::uncache(&app, &archive.owner_id, archive_id)
            .map(drop)
            .map_err(|err| err.to_string())
    }

    fn cache(&self, archive_id: &str) -> Result<(), String> {
        let (app, archive) = self.existing(archive_id)?;
        super::archives::cache(&app, &archive.owner_id, archive_id)
            .map(drop)
            .map_err(|err| err.to_string())
    }

    /// Runs the engine's verification on this (the script's) thread.
    fn verify(&self, archive_id: &str, percent: u8) -> Result<VerifyReport, String> {
        let (app, _) = self.existing(archive_id)?;
        let verification = super::archives::verify(&app, archive_id, percent)?;
        let checked = verification.parts_checked;
        let damaged = verification.parts_damaged();
        Ok(VerifyReport {
            checked,
            ok: checked - damaged,
            damaged,
        })
    }

    fn verify_sample_percent(&self) -> u8 {
        self.app()
            .ok()
            .and_then(|app| crate::settings::Settings::load(&app.store).ok())
            .map(|settings| settings.verify_sample_percent.min(100))
            .unwrap_or(crate::settings::DEFAULT_VERIFY_SAMPLE_PERCENT)
    }

    fn retry_failed(&self) -> Result<u64, String> {
        let app = self.app()?;
        super::archives::retry_failed(&app)
            .map(|count| count as u64)
            .map_err(|err| err.to_string())
    }

    fn log(&self, level: LogLevel, message: &str) {
        let Ok(app) = self.app() else { return };
        let subject = Subject {
            user_id: self.user_id.as_deref(),
            archive_id: None,
        };
        app.admin.log.write(level, &self.source, message, subject);
    }

    fn now(&self) -> i64 {
        ids::now_secs()
    }
}
