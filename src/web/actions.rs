//! What admin scripts may ask of the transfer engine (`admin::host::ArchiveActions`),
//! answered with the same calls the archive routes use. Holds plain handles on
//! the archives, the engine, the store and the system log (not the app,
//! which owns the admin tool, which owns this).

use std::sync::Arc;

use crate::admin::host::{ArchiveActions, TransferCounters};
use crate::admin::log::{Subject, SystemLog};
use crate::admin::script::VerifyReport;
use crate::archive::Archives;
use crate::engine::{Engine, Verification};
use crate::store::records::ArchiveState;
use crate::store::Store;

pub struct EngineActions {
    archives: Arc<Archives>,
    engine: Arc<Engine>,
    store: Store,
    log: Arc<SystemLog>,
}

impl EngineActions {
    pub fn new(
        archives: Arc<Archives>,
        engine: Arc<Engine>,
        store: Store,
        log: Arc<SystemLog>,
    ) -> EngineActions {
        EngineActions {
            archives,
            engine,
            store,
            log,
        }
    }

    fn owner_of(&self, archive_id: &str) -> Result<String, String> {
        self.archives
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
        let owner = self.owner_of(archive_id)?;
        self.archives
            .request_uncache(&owner, archive_id)
            .map_err(|err| err.to_string())?;
        self.engine.wake();
        Ok(())
    }

    fn cache(&self, archive_id: &str) -> Result<(), String> {
        let owner = self.owner_of(archive_id)?;
        self.archives
            .request_cache(&owner, archive_id)
            .map_err(|err| err.to_string())?;
        self.engine.wake();
        Ok(())
    }

    /// Runs the engine's verification on this (the script's) thread and
    /// writes what it found and did to the system log.
    fn verify(&self, archive_id: &str, percent: u8) -> Result<VerifyReport, String> {
        let verification = self
            .engine
            .verify(archive_id, percent)
            .map_err(|err| err.to_string())?;
        log_verification(&self.log, &verification);
        let checked = verification.parts_checked;
        let damaged = verification.parts_damaged();
        Ok(VerifyReport {
            checked,
            ok: checked - damaged,
            damaged,
        })
    }

    fn retry_failed(&self) -> Result<u64, String> {
        let count = self
            .store
            .write(crate::store::jobs::unpark_all)
            .map_err(|err| err.to_string())?;
        self.engine.wake();
        Ok(count as u64)
    }

    fn restore(&self, archive_id: &str) -> Result<(), String> {
        let owner = self.owner_of(archive_id)?;
        let archive = self
            .archives
            .restore(&owner, archive_id)
            .map_err(|err| err.to_string())?;
        self.engine.events().archive(&archive);
        self.log.info(
            "trash",
            &format!("{:?} was restored from the trash.", archive.name),
            Subject::archive(&archive.owner_id, &archive.id),
        );
        self.engine.wake();
        Ok(())
    }

    fn counters(&self) -> TransferCounters {
        let queue_length = self.engine.queue_length();
        let metrics = crate::metrics::global();
        TransferCounters {
            queue_length,
            bytes_uploaded: metrics.bytes_uploaded(),
            bytes_downloaded: metrics.bytes_downloaded(),
        }
    }
}

/// System-log entries (source `verify`) for one verification: an error for
/// damage left, a warning per part uploaded again and for a re-queued
/// manifest, a debug line when all was well.
fn log_verification(log: &SystemLog, verification: &Verification) {
    let subject = Subject::archive(&verification.owner_id, &verification.archive_id);
    let archive = format!(
        "Archive {:?} ({})",
        verification.name, verification.archive_id
    );
    for part in verification.damaged.iter().filter(|part| part.repaired) {
        log.warn(
            "verify",
            &format!(
                "{archive}: part {} {}; it was uploaded again from the local copy.",
                part.index,
                part.problem.describe()
            ),
            subject,
        );
    }
    if let Some(problem) = &verification.manifest_problem {
        log.warn(
            "verify",
            &format!("{archive}: {problem}; its upload was queued again."),
            subject,
        );
    }
    match (&verification.damage_reason, verification.state_after) {
        (Some(reason), ArchiveState::Damaged) => log.error(
            "verify",
            &format!("{archive} is damaged. {reason}"),
            subject,
        ),
        _ if verification.damaged.iter().any(|part| !part.repaired) => log.error(
            "verify",
            &format!(
                "{archive}: {} of {} parts failed verification; the archive changed state \
                 meanwhile, so it was not marked damaged.",
                verification.parts_damaged(),
                verification.parts_checked
            ),
            subject,
        ),
        _ if verification.damaged.is_empty() && verification.manifest_problem.is_none() => log
            .write(
                crate::admin::script::LogLevel::Debug,
                "verify",
                &format!(
                    "{archive}: {} parts looked at, {} downloaded and hashed ({} bytes), all good.",
                    verification.parts_checked,
                    verification.parts_downloaded,
                    verification.bytes_downloaded
                ),
                subject,
            ),
        _ => {}
    }
}
