//! The uncache and delete jobs: remove an archive's local file once every
//! part is checked remote, remove an archive, remove an unused object.

use super::jobs::{self, JobKind};
use super::{Failure, Inner, ObjectClaim};
use crate::repo::{self, ObjectId, PART_OVERHEAD};
use crate::store::indexed_prefix;
use crate::store::records::ArchiveState;

use super::work::object_id_of;

impl Inner {
    pub(super) fn uncache(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, parts)) = self.archive_and_parts(archive_id)? else {
            return self.drop_job(job_id);
        };
        if archive.state != ArchiveState::BackedUp || parts.iter().any(|p| !p.remote) {
            return self.drop_job(job_id);
        }
        let remote = self.remote()?;
        for (index, part) in parts.iter().enumerate() {
            let object_id = object_id_of(part, index)?;
            match remote.head(&repo::part_key(&object_id))? {
                Some(length) if repo::sealed_len_fits(part.length, length) => {}
                found => {
                    return Err(Failure::Permanent(format!(
                    "Part {index} is not on the remote as expected ({}); the local copy was kept.",
                    match found {
                        Some(length) => format!(
                            "{length} bytes, which a part of {} bytes cannot be sealed as",
                            part.length
                        ),
                        None => "it is missing".to_string(),
                    }
                )))
                }
            }
        }
        let changed = self.finish_job(job_id, archive_id, ArchiveState::BackedUp, |archive| {
            archive.state = ArchiveState::Uncached;
            archive.local_copy = false;
            archive.last_error = None;
        })?;
        if let Some(archive) = changed {
            match std::fs::remove_file(self.archive_path(archive_id)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
            self.events.archive(&archive);
        }
        Ok(())
    }

    pub(super) fn delete(&self, job_id: &str, archive_id: &str) -> Result<(), Failure> {
        let Some((archive, _)) = self.archive_and_parts(archive_id)? else {
            // Released already; only its manifest was refused (locked).
            return match self.remote()?.delete(&repo::manifest_key(archive_id)) {
                Err(err) if err.kind == crate::remote::ErrorKind::Refused => {
                    self.delete_refused(job_id, "", err.message)
                }
                Err(err) => Err(err.into()),
                Ok(()) => self.drop_job(job_id),
            };
        };
        // A refused manifest delete (Object Lock, a key without delete
        // rights) does not hold the rest back: the archive and its parts are
        // released now, and the job stays to retry the manifest later.
        let mut refused = None;
        if archive.parts_remote > 0 || archive.parts_total == 0 {
            let remote = self.remote()?;
            match remote.delete(&repo::manifest_key(archive_id)) {
                Err(err) if err.kind == crate::remote::ErrorKind::Refused => refused = Some(err),
                other => other?,
            }
        }
        self.store.write(|txn, tables| -> Result<(), Failure> {
            if refused.is_none() {
                tables.jobs.delete(txn, job_id.as_bytes())?;
            }
            let (mut moving, mut moving_bytes) = (0, 0);
            for part in tables.parts_of(txn, archive_id)? {
                if part.to_move {
                    moving += 1;
                    moving_bytes += part.length + PART_OVERHEAD as u64;
                }
                let (true, Some(object_id)) = (part.remote || part.to_move, part.object_id) else {
                    continue;
                };
                if let Some(mut object) = tables.objects.get(txn, object_id.as_bytes())? {
                    object.refcount = object.refcount.saturating_sub(1);
                    tables.objects.put(txn, object_id.as_bytes(), &object)?;
                    if object.refcount == 0 {
                        jobs::enqueue(txn, tables, JobKind::DeleteObject { object_id })?;
                    }
                }
            }
            super::remote_move::forget_parts(txn, tables, moving, moving_bytes)?;
            // And on every copy destination (objects no copy uses any more,
            // and the manifest, are deleted there by its syncer).
            crate::store::copies::forget_archive(txn, tables, archive_id)?;
            tables
                .parts
                .delete_prefix(txn, &indexed_prefix(archive_id))?;
            tables.archives.delete(txn, archive_id.as_bytes())?;
            Ok(())
        })?;
        let _ = std::fs::remove_file(self.archive_path(archive_id).with_extension("partial"));
        if let Some(err) = refused {
            self.delete_refused(job_id, "", err.message)?;
        }
        self.wake();
        Ok(())
    }

    pub(super) fn delete_object(&self, job_id: &str, object_id: &str) -> Result<(), Failure> {
        let _claim = ObjectClaim::take(self, object_id)?;
        let object = {
            let txn = self.store.read()?;
            self.store.tables.objects.get(&txn, object_id.as_bytes())?
        };
        if object.is_none_or(|o| o.refcount != 0) {
            return self.drop_job(job_id);
        }
        let id = ObjectId::parse(object_id).map_err(|e| Failure::Permanent(e.to_string()))?;
        match self.remote()?.delete(&repo::part_key(&id)) {
            Ok(()) => {}
            Err(err) if err.kind == crate::remote::ErrorKind::Refused => {
                return self.delete_refused(job_id, object_id, err.message);
            }
            Err(err) => return Err(err.into()),
        }
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.jobs.delete(txn, job_id.as_bytes())?;
            self.delete_allowed(txn, tables);
            if let Some(object) = tables.objects.get(txn, object_id.as_bytes())? {
                if object.refcount == 0 {
                    tables.objects.delete(txn, object_id.as_bytes())?;
                }
            }
            Ok(())
        })
    }
}
