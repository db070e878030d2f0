//! Object Lock on the copy destinations: the hourly chore (`engine::lock`)
//! extends, on every copy destination with a lock in its own settings, the
//! retention of its `config` and catalog, of every object in use there
//! (refcount above zero) and of the manifest of every complete copy, the
//! same way it does on the main destination; the dates are kept on
//! `copy_objects`, on each copy (`protected_until`) and on the destination
//! (`lock_repo_until`). Objects no archive uses any more are left to run
//! out; their deletes wait (`sync`). No transaction is held across a call.

use super::super::lock::{earliest, extend_repository, extension_window, retention_of};
use super::super::{Failure, Inner};
use crate::remote::Remote;
use crate::repo::{self, ObjectId};
use crate::store::copies::{copy_key, copy_object_key, destination_prefix};
use crate::store::records::DestinationRecord;
use crate::store::{indexed_prefix, StoreError, Table};

impl Inner {
    /// The chore on every copy destination with Object Lock; returns the
    /// objects extended. A destination that fails counts as a failure
    /// there (its `Health`) and is tried again at the next run.
    pub(in crate::engine) fn extend_copy_locks(&self, now: i64) -> Result<usize, Failure> {
        let destinations: Vec<DestinationRecord> = {
            let txn = self.store.read()?;
            self.store
                .tables
                .destinations
                .all(&txn)?
                .into_iter()
                .map(|(_, record)| record)
                .collect()
        };
        let mut extended = 0;
        for destination in &destinations {
            if retention_of(&destination.settings).is_none() {
                continue;
            }
            match self.extend_locks_on(destination, now) {
                Ok(count) => extended += count,
                Err(Failure::Transient(m) | Failure::Permanent(m) | Failure::Damaged(m)) => {
                    self.health.failed(
                        &destination.id,
                        &format!("The Object Lock of its backups could not be extended ({m}); it is tried again within the hour."),
                        false,
                    );
                }
                Err(Failure::Busy) => {}
            }
        }
        Ok(extended)
    }

    fn extend_locks_on(&self, destination: &DestinationRecord, now: i64) -> Result<usize, Failure> {
        let Some(retention) = retention_of(&destination.settings) else {
            return Ok(0);
        };
        let dest = destination.id.as_str();
        let remote = self.destination_remote(dest)?;
        let (threshold, until) = extension_window(retention, now);
        let mut extended = 0;
        if destination
            .lock_repo_until
            .is_none_or(|date| date < threshold)
        {
            extend_repository(remote.as_ref(), until)?;
            self.store.write(|txn, tables| -> Result<(), StoreError> {
                if let Some(mut record) = tables.destinations.get(txn, dest.as_bytes())? {
                    record.lock_repo_until = Some(until);
                    tables.destinations.put(txn, dest.as_bytes(), &record)?;
                }
                Ok(())
            })?;
            extended += 2;
        }
        extended += self.extend_copy_objects(dest, remote.as_ref(), threshold, until)?;
        extended += self.extend_copy_manifests(dest, remote.as_ref(), threshold, until)?;
        Ok(extended)
    }

    /// Extends every object in use on `dest` whose lock ends before
    /// `threshold`.
    fn extend_copy_objects(
        &self,
        dest: &str,
        remote: &dyn Remote,
        threshold: i64,
        until: i64,
    ) -> Result<usize, Failure> {
        let due = {
            let txn = self.store.read()?;
            ids_under(&self.store.tables.copy_objects, &txn, dest, |object| {
                object.refcount > 0 && object.retain_until.is_none_or(|date| date < threshold)
            })?
        };
        let remote_key = |object_id: &str| {
            let id = ObjectId::parse(object_id).map_err(|e| Failure::Permanent(e.to_string()))?;
            Ok(repo::part_key(&id))
        };
        self.extend_due(
            remote,
            &due,
            until,
            remote_key,
            |txn, tables, object_id, until| {
                let key = copy_object_key(dest, object_id);
                if let Some(mut object) = tables.copy_objects.get(txn, key.as_bytes())? {
                    object.retain_until = Some(object.retain_until.unwrap_or(0).max(until));
                    tables.copy_objects.put(txn, key.as_bytes(), &object)?;
                }
                Ok(())
            },
        )
    }

    /// Extends the manifest of every complete copy on `dest` whose
    /// protection ends before `threshold`, and sets the copy's
    /// `protected_until` from its objects.
    fn extend_copy_manifests(
        &self,
        dest: &str,
        remote: &dyn Remote,
        threshold: i64,
        until: i64,
    ) -> Result<usize, Failure> {
        let due = {
            let txn = self.store.read()?;
            ids_under(&self.store.tables.copies, &txn, dest, |copy| {
                copy.complete && copy.protected_until.is_none_or(|date| date < threshold)
            })?
        };
        let remote_key = |archive_id: &str| Ok(repo::manifest_key(archive_id));
        self.extend_due(
            remote,
            &due,
            until,
            remote_key,
            |txn, tables, archive_id, until| {
                let key = copy_key(dest, archive_id);
                let Some(mut copy) = tables.copies.get(txn, key.as_bytes())? else {
                    return Ok(());
                };
                let mut earliest_date = Some(until);
                for (_, part) in tables.copy_parts.prefix(txn, &indexed_prefix(&key))? {
                    let object_key = copy_object_key(dest, &part.object_id);
                    let object = tables.copy_objects.get(txn, object_key.as_bytes())?;
                    earliest_date = earliest(earliest_date, object.and_then(|o| o.retain_until));
                }
                copy.protected_until = earliest_date;
                tables.copies.put(txn, key.as_bytes(), &copy)
            },
        )
    }
}

/// The ids (object or archive) of `dest`'s records in `table` that
/// `is_due` picks: the key without the destination's prefix.
fn ids_under<V: serde::Serialize + serde::de::DeserializeOwned>(
    table: &Table<V>,
    txn: &heed::RoTxn,
    dest: &str,
    is_due: impl Fn(&V) -> bool,
) -> Result<Vec<String>, StoreError> {
    let prefix = destination_prefix(dest);
    Ok(table
        .prefix(txn, &prefix)?
        .into_iter()
        .filter(|(_, record)| is_due(record))
        .map(|(key, _)| String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
        .collect())
}
