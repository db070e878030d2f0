//! The job handlers. Each reads what it needs in a read transaction, does
//! its remote and file I/O with no transaction open, then commits the
//! result and removes its job in one write transaction.

use super::{keys, Failure, Inner};
use crate::repo::ObjectId;
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord};

pub(super) fn sha_bytes(hex_text: &str) -> Result<[u8; 32], Failure> {
    hex::decode(hex_text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| Failure::Damaged(format!("A stored hash ({hex_text}) is malformed.")))
}

pub(super) fn object_id_of(part: &PartRecord, index: usize) -> Result<ObjectId, Failure> {
    let id = part
        .object_id
        .as_deref()
        .ok_or_else(|| Failure::Damaged(format!("Part {index} has no remote object.")))?;
    ObjectId::parse(id).map_err(|err| Failure::Damaged(err.to_string()))
}

impl Inner {
    pub(super) fn archive_and_parts(
        &self,
        archive_id: &str,
    ) -> Result<Option<(ArchiveRecord, Vec<PartRecord>)>, Failure> {
        let txn = self.store.read()?;
        let Some(archive) = self
            .store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())?
        else {
            return Ok(None);
        };
        let parts = self.store.tables.parts_of(&txn, archive_id)?;
        Ok(Some((archive, parts)))
    }

    /// Like `archive_and_parts`, with the remote generation they belong to,
    /// read in the same transaction.
    pub(super) fn archive_parts_at(
        &self,
        archive_id: &str,
    ) -> Result<Option<(ArchiveRecord, Vec<PartRecord>, u64)>, Failure> {
        let txn = self.store.read()?;
        let tables = &self.store.tables;
        let Some(archive) = tables.archives.get(&txn, archive_id.as_bytes())? else {
            return Ok(None);
        };
        let parts = tables.parts_of(&txn, archive_id)?;
        Ok(Some((archive, parts, keys::generation(&txn, tables)?)))
    }

    /// Removes the job and, when the archive is still in state `from`,
    /// applies `change` to it, in one transaction; returns the archive as
    /// changed, or `None` when it was deleted or moved on meanwhile.
    pub(super) fn finish_job(
        &self,
        job_id: &str,
        archive_id: &str,
        from: ArchiveState,
        change: impl FnOnce(&mut ArchiveRecord),
    ) -> Result<Option<ArchiveRecord>, Failure> {
        self.store
            .write(|txn, tables| -> Result<Option<ArchiveRecord>, Failure> {
                tables.jobs.delete(txn, job_id.as_bytes())?;
                let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                    return Ok(None);
                };
                if archive.state != from {
                    return Ok(None);
                }
                change(&mut archive);
                tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                Ok(Some(archive))
            })
    }

    /// Removes a job that has nothing (left) to do.
    pub(super) fn drop_job(&self, job_id: &str) -> Result<(), Failure> {
        self.store.write(|txn, tables| -> Result<(), Failure> {
            tables.jobs.delete(txn, job_id.as_bytes())?;
            Ok(())
        })
    }
}
