//! Destinations (3-2-1 backups): the main remote (`settings::remote`, the
//! job queue's uploads, id [`MAIN`]) and any number of copy destinations,
//! each a whole, self-describing repository (the same `config`, so the same
//! master key; `catalog/appliance`, `manifests/<id>`, `parts/<object>`) kept
//! in step by its own syncer threads (`sync`), never by the shared job
//! workers, so a dead or slow destination holds up nothing else.
//!
//! Owns: the copy tables' meaning (records in `store::copies`), the
//! in-memory [`Health`] of every destination, adding and removing copy
//! destinations (`change`) and the syncers. An archive is `backed_up` only
//! when it is complete on every destination (`store::copies::settle`).
//! Must not touch: HTTP. No transaction or mutex is held across remote I/O.

mod change;
mod retention;
mod steps;
mod sync;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use heed::RoTxn;

use super::lock;
use crate::remote::RemoteSettings;
use crate::store::copies::{copy_key, main_complete};
use crate::store::records::{ArchiveRecord, ArchiveState};
use crate::store::{indexed_key, StoreError, Tables};

pub use crate::store::copies::settle;
pub use change::AddPlan;
pub(super) use sync::Syncers;

/// The id of the main destination (the remote settings).
pub const MAIN: &str = "main";

/// Settings key of the main destination's name (default: its description).
const MAIN_NAME_KEY: &[u8] = b"remote_name";

/// One destination: the main remote or a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// [`MAIN`] or the copy's id (`d_…`).
    pub id: String,
    /// What people call it.
    pub name: String,
    pub settings: RemoteSettings,
}

/// Every destination, main first, then the copies in the order added.
pub fn list(txn: &RoTxn, tables: &Tables, data_dir: &Path) -> Result<Vec<Destination>, StoreError> {
    let main = crate::settings::remote::remote_settings_in(txn, tables, data_dir)?;
    let mut out = vec![Destination {
        id: MAIN.to_string(),
        name: main_name(txn, tables, &main)?,
        settings: main,
    }];
    let mut copies: Vec<_> = tables
        .destinations
        .all(txn)?
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    copies.sort_by(|a, b| (a.added_at, &a.id).cmp(&(b.added_at, &b.id)));
    out.extend(copies.into_iter().map(|record| Destination {
        id: record.id,
        name: record.name,
        settings: record.settings,
    }));
    Ok(out)
}

/// The main destination's name: the one an admin gave it (settings key
/// `remote_name`), else its description (`folder /data/remote`, `s3://b/p`).
pub fn main_name(
    txn: &RoTxn,
    tables: &Tables,
    settings: &RemoteSettings,
) -> Result<String, StoreError> {
    let named = tables
        .settings
        .get(txn, MAIN_NAME_KEY)?
        .and_then(|value| value.as_str().map(str::to_string))
        .filter(|name| !name.trim().is_empty());
    Ok(named.unwrap_or_else(|| describe(settings)))
}

/// Names the main destination (an empty name: its description again).
pub fn set_main_name(txn: &mut heed::RwTxn, tables: &Tables, name: &str) -> Result<(), StoreError> {
    let name = name.trim();
    if name.is_empty() {
        tables.settings.delete(txn, MAIN_NAME_KEY)?;
        return Ok(());
    }
    tables
        .settings
        .put(txn, MAIN_NAME_KEY, &serde_json::json!(name))
}

/// The settings described for people (as the remote describes itself),
/// without opening it: no client is built, no folder created, nothing
/// contacted, so lists of archives can call it freely.
pub fn describe(settings: &RemoteSettings) -> String {
    match settings {
        RemoteSettings::Dir { path } => format!("folder {}", path.display()),
        RemoteSettings::S3 { bucket, .. } => crate::remote::s3::S3Config::from_settings(settings)
            .map(|config| config.describe())
            .unwrap_or_else(|_| format!("s3://{bucket}")),
    }
}

/// Where an archive's copy on one destination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// Every part and the manifest are there.
    Complete,
    /// Bytes are moving there now.
    Uploading,
    /// Queued: the destination works, it has not come to this archive yet.
    Waiting,
    /// The destination has a lasting problem ([`Health::error`]).
    Unreachable,
}

impl CopyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Complete => "complete",
            CopyState::Uploading => "uploading",
            CopyState::Waiting => "waiting",
            CopyState::Unreachable => "unreachable",
        }
    }
}

/// An archive's copy on one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The destination's id ([`MAIN`] or `d_…`).
    pub remote: String,
    /// The destination's name.
    pub name: String,
    pub parts_total: u32,
    /// Parts stored there.
    pub parts_remote: u32,
    /// Plaintext bytes of those parts.
    pub bytes_remote: u64,
    pub state: CopyState,
    /// The archive's last error there, or the destination's lasting one.
    pub last_error: Option<String>,
}

/// The archive's copy on every destination, main first (main from the
/// archive record itself).
pub fn copies_of(
    txn: &RoTxn,
    tables: &Tables,
    data_dir: &Path,
    archive: &ArchiveRecord,
    health: &Health,
) -> Result<Vec<Copy>, StoreError> {
    let destinations = list(txn, tables, data_dir)?;
    let mut out = Vec::with_capacity(destinations.len());
    for destination in destinations {
        let (parts_remote, bytes_remote, complete, last_error) = if destination.id == MAIN {
            let complete = archive.parts_remote >= archive.parts_total
                && (main_complete(archive)
                    || matches!(
                        archive.state,
                        ArchiveState::Uncached | ArchiveState::Caching
                    ));
            (
                archive.parts_remote,
                archive.bytes_remote,
                complete,
                archive.last_error.clone(),
            )
        } else {
            let key = copy_key(&destination.id, &archive.id);
            let copy = tables.copies.get(txn, key.as_bytes())?.unwrap_or_default();
            (
                copy.parts_stored,
                copy.bytes_stored,
                copy.complete,
                copy.last_error,
            )
        };
        let error = health.error(&destination.id);
        let state = if complete {
            CopyState::Complete
        } else if error.is_some() {
            CopyState::Unreachable
        } else if health.is_moving(&destination.id) {
            CopyState::Uploading
        } else {
            CopyState::Waiting
        };
        out.push(Copy {
            remote: destination.id,
            name: destination.name,
            parts_total: archive.parts_total,
            parts_remote: parts_remote.min(archive.parts_total),
            bytes_remote,
            state,
            last_error: if complete { None } else { error.or(last_error) },
        });
    }
    Ok(out)
}

/// Whether part `index` of the archive is stored on destination `dest_id`
/// (main: the part's `remote` flag; a copy: its `copy_parts` record).
pub fn part_on(
    txn: &RoTxn,
    tables: &Tables,
    dest_id: &str,
    archive_id: &str,
    index: u32,
) -> Result<bool, StoreError> {
    if dest_id == MAIN {
        return Ok(tables
            .parts
            .get(txn, &indexed_key(archive_id, index))?
            .is_some_and(|part| part.remote));
    }
    let key = indexed_key(&copy_key(dest_id, archive_id), index);
    Ok(tables.copy_parts.get(txn, &key)?.is_some())
}

/// A destination counts as moving bytes this long after its last one.
const MOVING_FOR: Duration = Duration::from_secs(10);

/// How each destination is doing, in memory (rebuilt from nothing after a
/// restart): its lasting problem and whether bytes are moving there now.
#[derive(Default)]
pub struct Health {
    by_id: Mutex<HashMap<String, DestinationHealth>>,
}

#[derive(Debug, Clone, Default)]
struct DestinationHealth {
    /// The lasting problem and since when (Unix seconds).
    error: Option<(String, i64)>,
    /// Failures in a row.
    failures: u32,
    last_moved: Option<Instant>,
    /// When an idle destination was last asked whether it is there.
    probed: Option<Instant>,
    /// A transfer, a success or a failure was seen since start.
    heard: bool,
}

/// Failures in a row before a destination's problem is shown.
pub(super) const SHOWN_AFTER: u32 = 3;

impl Health {
    /// The destination's lasting problem as a sentence, if any.
    pub fn error(&self, id: &str) -> Option<String> {
        lock(&self.by_id)
            .get(id)
            .and_then(|health| health.error.as_ref().map(|(message, _)| message.clone()))
    }

    /// Since when (Unix seconds) the destination's problem lasts.
    pub fn error_since(&self, id: &str) -> Option<i64> {
        lock(&self.by_id)
            .get(id)
            .and_then(|health| health.error.as_ref().map(|(_, since)| *since))
    }

    /// Whether bytes moved to (or from) the destination in the last seconds.
    pub fn is_moving(&self, id: &str) -> bool {
        lock(&self.by_id)
            .get(id)
            .and_then(|health| health.last_moved)
            .is_some_and(|at| at.elapsed() < MOVING_FOR)
    }

    /// Whether anything was heard from the destination since start (a
    /// transfer, a success or a failure): until then whether it works is
    /// not known, and the notifier neither starts nor resolves its outage.
    pub fn heard_from(&self, id: &str) -> bool {
        lock(&self.by_id).get(id).is_some_and(|health| health.heard)
    }

    /// Bytes just moved to the destination.
    pub(super) fn moved(&self, id: &str) {
        let mut by_id = lock(&self.by_id);
        let health = by_id.entry(id.to_string()).or_default();
        health.last_moved = Some(Instant::now());
        health.heard = true;
    }

    /// A failure there; shown as its problem from the [`SHOWN_AFTER`]th in
    /// a row (`lasting`: shown at once). Returns the failures in a row.
    pub(super) fn failed(&self, id: &str, message: &str, lasting: bool) -> u32 {
        let mut by_id = lock(&self.by_id);
        let health = by_id.entry(id.to_string()).or_default();
        health.heard = true;
        health.failures += 1;
        if lasting || health.failures >= SHOWN_AFTER {
            let since = health
                .error
                .as_ref()
                .map_or_else(crate::ids::now_secs, |(_, since)| *since);
            health.error = Some((message.to_string(), since));
        }
        health.failures
    }

    /// A success there: its problem (if any) is over.
    pub(super) fn succeeded(&self, id: &str) {
        let mut by_id = lock(&self.by_id);
        let health = by_id.entry(id.to_string()).or_default();
        health.heard = true;
        health.failures = 0;
        health.error = None;
    }

    /// Whether an idle destination is due to be asked whether it is still
    /// there (every `every`); counts the ask as made.
    pub(super) fn probe_due(&self, id: &str, every: Duration) -> bool {
        let mut by_id = lock(&self.by_id);
        let health = by_id.entry(id.to_string()).or_default();
        let due = health.probed.is_none_or(|at| at.elapsed() >= every);
        if due {
            health.probed = Some(Instant::now());
        }
        due
    }

    /// A removed destination.
    pub(super) fn forget(&self, id: &str) {
        lock(&self.by_id).remove(id);
    }
}

#[cfg(test)]
mod tests;
