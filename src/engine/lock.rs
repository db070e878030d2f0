//! Object Lock upkeep: the chore that extends the retention of objects
//! still in use before it runs out, and deletes the storage refuses.
//!
//! The chore ([`Engine::extend_locks`], run by the admin scheduler every
//! [`EXTEND_INTERVAL`]) extends every object in use (refcount above zero),
//! every manifest of a live archive and the repository's `config` and
//! catalog whose retention ends within `days - 1` days (plus a margin of two
//! runs) to `now + days`, records the new date on each object and each
//! archive's earliest one as `protected_until`. Objects of purged archives
//! (refcount zero) are left to run out; their delete jobs wait.
//!
//! A refused delete ([`crate::remote::ErrorKind::Refused`]: still locked,
//! or a key without delete rights) never fails anything: the job waits
//! [`REFUSED_RETRY_SECS`] (or until the object's lock ends, if later) and
//! the dashboard shows [`storage_not_freed`].
//!
//! No transaction is held across a remote call: each object is extended,
//! then its date written.

use std::time::Duration;

use heed::{RoTxn, RwTxn};
use serde::{Deserialize, Serialize};

use super::{Engine, Failure, Inner};
use crate::remote::lock::Retention;
use crate::remote::RemoteSettings;
use crate::repo::{self, ObjectId};
use crate::store::records::ArchiveState;
use crate::store::{Store, StoreError, Tables};

/// How often the chore runs.
pub const EXTEND_INTERVAL: Duration = Duration::from_secs(3600);

/// How long a refused delete waits before it is tried again.
pub const REFUSED_RETRY_SECS: i64 = 6 * 3600;

/// Settings key of the last refused delete (see [`storage_not_freed`]).
const NOT_FREED_KEY: &[u8] = b"storage_not_freed";

/// Settings key of the retain-until date of `config` and the catalog.
const REPO_LOCK_KEY: &[u8] = b"lock_repo_until";

/// When the chore runs at `now`: what retention ends before the first
/// date (it would fall below `days - 1` before the run after next) is
/// extended to the second.
pub(super) fn extension_window(retention: Retention, now: i64) -> (i64, i64) {
    let threshold =
        now + (i64::from(retention.days) - 1) * 86_400 + 2 * EXTEND_INTERVAL.as_secs() as i64;
    (threshold, retention.until(now))
}

/// The earlier of two retain-until dates; `None` (not locked) wins.
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    Some(a?.min(b?))
}

/// Why storage is not freed yet, for the admin dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotFreed {
    /// The storage's refusal, as a sentence.
    pub message: String,
    /// Unix seconds of the refusal.
    pub at: i64,
    /// When the delete is tried again.
    pub next_try: i64,
}

/// The last refused delete, while deletes are being refused.
pub fn storage_not_freed(store: &Store) -> Result<Option<NotFreed>, StoreError> {
    let txn = store.read()?;
    Ok(store
        .tables
        .settings
        .get(&txn, NOT_FREED_KEY)?
        .and_then(|value| serde_json::from_value(value).ok()))
}

/// What one run of the chore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockReport {
    /// Objects (parts, manifests, config, catalog) whose retention was extended.
    pub extended: usize,
}

/// The checked lock setting of `settings`, if any.
pub(super) fn retention_of(settings: &RemoteSettings) -> Option<Retention> {
    match settings {
        RemoteSettings::S3 {
            object_lock: Some(lock),
            ..
        } => lock.check().ok(),
        _ => None,
    }
}

impl Engine {
    /// The lock chore at time `now` (Unix seconds; the tests move it).
    /// Fails with a sentence; what was extended before stays recorded.
    pub fn extend_locks(&self, now: i64) -> Result<LockReport, String> {
        self.inner
            .extend_locks(now)
            .map_err(|failure| match failure {
                Failure::Transient(message)
                | Failure::Permanent(message)
                | Failure::Damaged(message) => message,
                Failure::Busy => "The storage is busy.".to_owned(),
            })
    }
}

impl Inner {
    /// The chore on the main destination, then on every copy destination
    /// with Object Lock (a copy that fails is retried at the next run and
    /// shows as its problem; it never fails the main destination's chore).
    fn extend_locks(&self, now: i64) -> Result<LockReport, Failure> {
        let mut report = self.extend_main_locks(now)?;
        report.extended += self.extend_copy_locks(now)?;
        Ok(report)
    }

    fn extend_main_locks(&self, now: i64) -> Result<LockReport, Failure> {
        let settings = crate::settings::remote::remote_settings(&self.store, &self.data_dir)?;
        let Some(retention) = retention_of(&settings) else {
            return Ok(LockReport::default());
        };
        if self.keys().is_err() {
            return Ok(LockReport::default()); // nothing written yet
        }
        let remote = self.remote()?;
        let (threshold, until) = extension_window(retention, now);
        let mut report = LockReport::default();
        let repo_until = {
            let txn = self.store.read()?;
            self.store
                .tables
                .settings
                .get(&txn, REPO_LOCK_KEY)?
                .and_then(|value| value.as_i64())
        };
        if repo_until.is_none_or(|date| date < threshold) {
            extend_repository(remote.as_ref(), until)?;
            self.store.write(|txn, tables| -> Result<(), StoreError> {
                tables
                    .settings
                    .put(txn, REPO_LOCK_KEY, &serde_json::json!(until))
            })?;
            report.extended += 2;
        }
        for kind in [&PARTS, &MANIFESTS] {
            let due = {
                let txn = self.store.read()?;
                (kind.due)(&self.store.tables, &txn, threshold)?
            };
            report.extended += self.extend_due(
                remote.as_ref(),
                &due,
                until,
                kind.remote_key,
                |txn, tables, id, until| (kind.record)(txn, tables, id, until),
            )?;
        }
        Ok(report)
    }

    /// Extends each of `due` (object or archive ids) to `until`, then
    /// records the new date: one remote call, then one short write, per
    /// object. Main's parts and manifests and every copy destination's use it.
    pub(super) fn extend_due(
        &self,
        remote: &dyn crate::remote::Remote,
        due: &[String],
        until: i64,
        remote_key: impl Fn(&str) -> Result<String, Failure>,
        record: impl Fn(&mut RwTxn, &Tables, &str, i64) -> Result<(), StoreError>,
    ) -> Result<usize, Failure> {
        for id in due {
            remote.extend_lock(&remote_key(id)?, until)?;
            self.store
                .write(|txn, tables| record(txn, tables, id, until))?;
        }
        Ok(due.len())
    }

    /// A delete the storage refused: the job waits (until the object's
    /// lock ends, or [`REFUSED_RETRY_SECS`], whichever is later) and the
    /// dashboard learns why. Nothing fails.
    pub(super) fn delete_refused(
        &self,
        job_id: &str,
        object_id: &str,
        message: String,
    ) -> Result<(), Failure> {
        let now = crate::ids::now_secs();
        self.store.write(|txn, tables| -> Result<(), StoreError> {
            let lock_ends = tables
                .objects
                .get(txn, object_id.as_bytes())?
                .and_then(|object| object.retain_until)
                .map_or(0, |date| date + 60);
            let next_try = (now + REFUSED_RETRY_SECS).max(lock_ends);
            if let Some(mut job) = tables.jobs.get(txn, job_id.as_bytes())? {
                job.attempts += 1;
                job.last_error = Some(message.clone());
                job.not_before = next_try;
                tables.jobs.put(txn, job_id.as_bytes(), &job)?;
            }
            let record = NotFreed {
                message: message.clone(),
                at: now,
                next_try,
            };
            let value = serde_json::to_value(&record).unwrap_or_default();
            tables.settings.put(txn, NOT_FREED_KEY, &value)
        })?;
        Ok(())
    }

    /// A delete went through: the storage frees space again.
    pub(super) fn delete_allowed(&self, txn: &mut heed::RwTxn, tables: &crate::store::Tables) {
        let _ = tables.settings.delete(txn, NOT_FREED_KEY);
    }
}

/// Extends the lock of the repository's `config` and catalog (a catalog
/// not written yet is skipped) on one destination.
pub(super) fn extend_repository(
    remote: &dyn crate::remote::Remote,
    until: i64,
) -> Result<(), Failure> {
    remote.extend_lock(repo::CONFIG_KEY, until)?;
    let catalog = repo::catalog_key(repo::catalog::CATALOG_LABEL);
    match remote.extend_lock(&catalog, until) {
        Err(err) if err.kind != crate::remote::ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}

/// A kind of object the chore extends, besides `config` and the catalog.
struct Lockable {
    /// The store ids (object or archive ids) whose lock ends before the
    /// threshold.
    due: fn(&Tables, &RoTxn, i64) -> Result<Vec<String>, StoreError>,
    /// The remote key of one of them.
    remote_key: fn(&str) -> Result<String, Failure>,
    /// Records the new retain-until date of one of them.
    record: fn(&mut RwTxn, &Tables, &str, i64) -> Result<(), StoreError>,
}

/// Every object in use (stored, refcount above zero); its own date.
const PARTS: Lockable = Lockable {
    due: |tables, txn, threshold| {
        Ok(tables
            .objects
            .all(txn)?
            .into_iter()
            .filter(|(_, object)| {
                object.stored
                    && object.refcount > 0
                    && object.retain_until.is_none_or(|date| date < threshold)
            })
            .map(|(key, _)| String::from_utf8_lossy(&key).into_owned())
            .collect())
    },
    remote_key: |object_id| {
        let id = ObjectId::parse(object_id).map_err(|e| Failure::Permanent(e.to_string()))?;
        Ok(repo::part_key(&id))
    },
    record: |txn, tables, object_id, until| {
        if let Some(mut object) = tables.objects.get(txn, object_id.as_bytes())? {
            object.retain_until = Some(object.retain_until.unwrap_or(0).max(until));
            tables.objects.put(txn, object_id.as_bytes(), &object)?;
        }
        Ok(())
    },
};

/// The manifest of every stored archive; the archive's `protected_until`
/// becomes the earliest date of its manifest and its objects.
const MANIFESTS: Lockable = Lockable {
    due: |tables, txn, threshold| {
        Ok(tables
            .archives
            .all(txn)?
            .into_iter()
            .filter(|(_, archive)| {
                (archive.awaiting_copies
                    || matches!(
                        archive.state,
                        ArchiveState::BackedUp | ArchiveState::Uncached | ArchiveState::Caching
                    ))
                    && archive.protected_until.is_none_or(|date| date < threshold)
            })
            .map(|(_, archive)| archive.id)
            .collect())
    },
    remote_key: |archive_id| Ok(repo::manifest_key(archive_id)),
    record: |txn, tables, archive_id, until| {
        let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
            return Ok(());
        };
        let mut earliest_date = Some(until);
        for part in tables.parts_of(txn, archive_id)? {
            let object = match &part.object_id {
                Some(id) => tables.objects.get(txn, id.as_bytes())?,
                None => None,
            };
            earliest_date = earliest(earliest_date, object.and_then(|o| o.retain_until));
        }
        archive.protected_until = earliest_date;
        tables.archives.put(txn, archive_id.as_bytes(), &archive)
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_date_and_unlocked_wins() {
        assert_eq!(earliest(Some(5), Some(3)), Some(3));
        assert_eq!(earliest(None, Some(3)), None);
        assert_eq!(earliest(Some(5), None), None);
    }
}
