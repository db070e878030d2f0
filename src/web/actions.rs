//! What admin scripts may ask of the transfer engine (`admin::host::ArchiveActions`),
//! answered with the same calls the archive routes use. Holds the app weakly:
//! the app owns the admin tool, which owns this.

use std::sync::{Arc, Weak};

use super::App;
use crate::admin::host::{ArchiveActions, TransferCounters};
use crate::admin::script::VerifyReport;

pub struct EngineActions {
    app: Weak<App>,
}

impl EngineActions {
    pub fn new(app: &Arc<App>) -> EngineActions {
        EngineActions { app: Arc::downgrade(app) }
    }

    fn app(&self) -> Result<Arc<App>, String> {
        self.app.upgrade().ok_or_else(|| "the appliance is shutting down".to_string())
    }

    fn owner_of(app: &App, archive_id: &str) -> Result<String, String> {
        app.archives
            .list_all()
            .map_err(|err| err.to_string())?
            .into_iter()
            .find(|archive| archive.id == archive_id)
            .map(|archive| archive.owner_id)
            .ok_or_else(|| format!("no archive {archive_id}"))
    }
}

impl ArchiveActions for EngineActions {
    fn uncache(&self, archive_id: &str) -> Result<(), String> {
        let app = self.app()?;
        let owner = Self::owner_of(&app, archive_id)?;
        app.archives.request_uncache(&owner, archive_id).map_err(|err| err.to_string())?;
        app.engine.wake();
        Ok(())
    }

    fn cache(&self, archive_id: &str) -> Result<(), String> {
        let app = self.app()?;
        let owner = Self::owner_of(&app, archive_id)?;
        app.archives.request_cache(&owner, archive_id).map_err(|err| err.to_string())?;
        app.engine.wake();
        Ok(())
    }

    fn verify(&self, _archive_id: &str, _percent: u8) -> Result<VerifyReport, String> {
        Err("remote verification is not built yet: nothing was checked".to_string())
    }

    fn retry_failed(&self) -> Result<u64, String> {
        let app = self.app()?;
        let count = app
            .store
            .write(|txn, tables| crate::engine::jobs::unpark_all(txn, tables))
            .map_err(|err| err.to_string())?;
        app.engine.wake();
        Ok(count as u64)
    }

    fn counters(&self) -> TransferCounters {
        let queue_length = self.app().map(|app| app.engine.queue_length()).unwrap_or(0);
        let metrics = crate::engine::metrics::global();
        TransferCounters {
            queue_length,
            bytes_uploaded: metrics.bytes_uploaded(),
            bytes_downloaded: metrics.bytes_downloaded(),
        }
    }
}
