//! The steps of a syncer pass after the parts (`sync`): the manifests of
//! copies whose parts are all there, the deletions queued for the
//! destination, and the catalog when it is behind. Each writes to the
//! destination first and commits after, holding no transaction across I/O.

use super::super::{Failure, Inner, ObjectClaim};
use crate::metrics;
use crate::remote::{ErrorKind, Remote};
use crate::repo::{self, ObjectId};
use crate::store::copies::{
    catalog_version, copy_key, copy_object_key, destination_prefix, main_complete, settle,
};
use crate::store::indexed_prefix;
use crate::store::records::{ArchiveRecord, ArchiveState, CopyDeleteRecord, PartRecord};

/// A refused delete (Object Lock, a key without delete rights) waits this
/// long before it is tried again; it never blocks anything.
const REFUSED_DELETE_WAIT: i64 = 6 * 3600;

impl Inner {
    /// Writes the manifest of every archive whose parts are all on `dest`
    /// and marks its copy complete (the archive `backed_up` when that was
    /// the last one). Returns whether any was written.
    pub(super) fn write_manifests(&self, dest: &str, remote: &dyn Remote) -> Result<bool, Failure> {
        let ready: Vec<(ArchiveRecord, Vec<PartRecord>, Vec<ObjectId>)> = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            let prefix = destination_prefix(dest);
            let mut ready = Vec::new();
            for (key, copy) in tables.copies.prefix(&txn, &prefix)? {
                if copy.complete {
                    continue;
                }
                let archive_id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let Some(archive) = tables.archives.get(&txn, archive_id.as_bytes())? else {
                    continue;
                };
                if copy.parts_stored < archive.parts_total
                    || matches!(
                        archive.state,
                        ArchiveState::Receiving | ArchiveState::Deleting
                    )
                {
                    continue;
                }
                let parts = tables.parts_of(&txn, &archive_id)?;
                let stored = tables
                    .copy_parts
                    .prefix(&txn, &indexed_prefix(&copy_key(dest, &archive_id)))?;
                let object_ids = stored
                    .into_iter()
                    .map(|(_, part)| ObjectId::parse(&part.object_id))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Failure::Damaged(e.to_string()))?;
                if object_ids.len() == parts.len() {
                    ready.push((archive, parts, object_ids));
                }
            }
            ready
        };
        for (archive, parts, object_ids) in &ready {
            let sealed = self.sealed_manifest(archive, parts, object_ids.clone())?;
            self.throttle(sealed.len());
            remote.put(&repo::manifest_key(&archive.id), &sealed)?;
            self.health.moved(dest);
            metrics::global().add_uploaded(sealed.len() as u64);
            let changed =
                self.store
                    .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                        let key = copy_key(dest, &archive.id);
                        let Some(mut copy) = tables.copies.get(txn, key.as_bytes())? else {
                            return Ok(None);
                        };
                        copy.complete = true;
                        copy.last_error = None;
                        tables.copies.put(txn, key.as_bytes(), &copy)?;
                        let Some(mut now) = tables.archives.get(txn, archive.id.as_bytes())? else {
                            return Ok(None);
                        };
                        let main_done = main_complete(&now);
                        if settle(txn, tables, &mut now, main_done)? {
                            tables.archives.put(txn, archive.id.as_bytes(), &now)?;
                        }
                        Ok(Some(now))
                    })?;
            self.health.succeeded(dest);
            if let Some(archive) = changed {
                self.events.archive(&archive);
            }
        }
        Ok(!ready.is_empty())
    }

    /// Carries out the deletions due on `dest`: an object nobody uses there
    /// any more, a deleted archive's manifest. A refused one (Object Lock,
    /// no delete rights) waits [`REFUSED_DELETE_WAIT`]. Returns whether any
    /// was tried.
    pub(super) fn carry_out_deletes(
        &self,
        dest: &str,
        remote: &dyn Remote,
    ) -> Result<bool, Failure> {
        let now = crate::ids::now_secs();
        let due: Vec<(Vec<u8>, CopyDeleteRecord)> = {
            let txn = self.store.read()?;
            self.store
                .tables
                .copy_deletes
                .prefix(&txn, &destination_prefix(dest))?
                .into_iter()
                .filter(|(_, record)| record.not_before <= now)
                .collect()
        };
        for (key, record) in &due {
            let text = String::from_utf8_lossy(&key[dest.len() + 1..]).into_owned();
            let (object, remote_key) = match text.split_once('/') {
                Some(("o", object)) => match ObjectId::parse(object) {
                    Ok(id) => (Some(object.to_string()), repo::part_key(&id)),
                    Err(_) => (None, String::new()),
                },
                Some(("m", archive_id)) => (None, repo::manifest_key(archive_id)),
                _ => (None, String::new()),
            };
            if remote_key.is_empty() {
                self.store.write(|txn, tables| -> Result<bool, Failure> {
                    Ok(tables.copy_deletes.delete(txn, key)?)
                })?;
                continue;
            }
            let claim = match &object {
                Some(object) => Some(ObjectClaim::take(self, &copy_object_key(dest, object))?),
                None => None,
            };
            let used_again = match &object {
                Some(object) => {
                    let txn = self.store.read()?;
                    let key = copy_object_key(dest, object);
                    self.store
                        .tables
                        .copy_objects
                        .get(&txn, key.as_bytes())?
                        .is_some()
                }
                None => false,
            };
            let result = if used_again {
                Ok(())
            } else {
                remote.delete(&remote_key)
            };
            match result {
                Err(err) if err.kind == ErrorKind::Refused => {
                    let retry = CopyDeleteRecord {
                        not_before: now + REFUSED_DELETE_WAIT,
                        attempts: record.attempts + 1,
                        last_error: Some(err.message),
                    };
                    self.store.write(|txn, tables| -> Result<(), Failure> {
                        Ok(tables.copy_deletes.put(txn, key, &retry)?)
                    })?;
                }
                Err(err) if err.kind != ErrorKind::NotFound => return Err(err.into()),
                _ => {
                    self.store.write(|txn, tables| -> Result<bool, Failure> {
                        Ok(tables.copy_deletes.delete(txn, key)?)
                    })?;
                }
            }
            drop(claim);
        }
        Ok(!due.is_empty())
    }

    /// Writes the catalog (users and settings) to `dest` when its copy is
    /// behind the catalog version. Returns whether it was written.
    pub(super) fn write_catalog(&self, dest: &str, remote: &dyn Remote) -> Result<bool, Failure> {
        let (version, written) = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            let written = tables
                .destinations
                .get(&txn, dest.as_bytes())?
                .map(|record| record.catalog_version);
            (catalog_version(&txn, tables)?, written)
        };
        // Removed meanwhile, or up to date (a new destination starts at 0,
        // below any version, so it always gets one).
        let Some(written) = written else {
            return Ok(false);
        };
        if written >= version.max(1) {
            return Ok(false);
        }
        let sealed = self.sealed_catalog()?;
        remote.put(
            &repo::catalog_key(crate::repo::catalog::CATALOG_LABEL),
            &sealed,
        )?;
        self.store.write(|txn, tables| -> Result<(), Failure> {
            if let Some(mut record) = tables.destinations.get(txn, dest.as_bytes())? {
                record.catalog_version = record.catalog_version.max(version.max(1));
                tables.destinations.put(txn, dest.as_bytes(), &record)?;
            }
            Ok(())
        })?;
        self.health.succeeded(dest);
        Ok(true)
    }
}
