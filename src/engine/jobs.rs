//! The persistent job queue: `jobs` table records, created in the same write
//! transaction as the state change that needs them.
//!
//! A job's key is its id; its `kind` is one of the `KIND_*` names and its
//! `target` the archive id (`<archive id>/<index>` for a part, the object id
//! for `delete_object`). `not_before` is when it may run next;
//! [`PARKED`] means "waiting for the settings to change".

use heed::RwTxn;

use crate::ids;
use crate::store::records::JobRecord;
use crate::store::{Result, Tables};

pub const KIND_UPLOAD_PART: &str = "upload_part";
pub const KIND_UPLOAD_MANIFEST: &str = "upload_manifest";
pub const KIND_UNCACHE: &str = "uncache";
pub const KIND_CACHE: &str = "cache";
pub const KIND_DELETE: &str = "delete";
pub const KIND_DELETE_OBJECT: &str = "delete_object";
pub const KIND_UPLOAD_CATALOG: &str = "upload_catalog";
pub const KIND_MOVE_REMOTE: &str = "move_remote";

/// The one id of the remote move job (`engine::remote_move`).
pub const MOVE_JOB_ID: &str = "move_remote";

/// The one id of the catalog upload job: every change of users or settings
/// rewrites this record, so many changes make one upload.
pub const CATALOG_JOB_ID: &str = "upload_catalog";

/// `not_before` of a job that failed permanently: it waits until an admin
/// changes the remote settings ([`unpark_all`]).
pub const PARKED: i64 = i64::MAX;

/// What a job works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    UploadPart {
        archive_id: String,
        index: u32,
    },
    UploadManifest {
        archive_id: String,
    },
    Uncache {
        archive_id: String,
    },
    Cache {
        archive_id: String,
    },
    Delete {
        archive_id: String,
    },
    DeleteObject {
        object_id: String,
    },
    /// Upload the encrypted catalog (users, settings). `generation` changes
    /// with every enqueue, so a change made while an upload runs is not lost.
    UploadCatalog {
        generation: String,
    },
    /// Copy every part marked `to_move` from the previous remote to the
    /// current one, then release the previous one.
    MoveRemote,
}

impl JobKind {
    pub fn to_parts(&self) -> (&'static str, String) {
        match self {
            JobKind::UploadPart { archive_id, index } => {
                (KIND_UPLOAD_PART, format!("{archive_id}/{index}"))
            }
            JobKind::UploadManifest { archive_id } => (KIND_UPLOAD_MANIFEST, archive_id.clone()),
            JobKind::Uncache { archive_id } => (KIND_UNCACHE, archive_id.clone()),
            JobKind::Cache { archive_id } => (KIND_CACHE, archive_id.clone()),
            JobKind::Delete { archive_id } => (KIND_DELETE, archive_id.clone()),
            JobKind::DeleteObject { object_id } => (KIND_DELETE_OBJECT, object_id.clone()),
            JobKind::UploadCatalog { generation } => (KIND_UPLOAD_CATALOG, generation.clone()),
            JobKind::MoveRemote => (KIND_MOVE_REMOTE, String::new()),
        }
    }

    pub fn from_record(record: &JobRecord) -> Option<JobKind> {
        let target = record.target.clone();
        Some(match record.kind.as_str() {
            KIND_UPLOAD_PART => {
                let (archive_id, index) = target.split_once('/')?;
                JobKind::UploadPart {
                    archive_id: archive_id.to_string(),
                    index: index.parse().ok()?,
                }
            }
            KIND_UPLOAD_MANIFEST => JobKind::UploadManifest { archive_id: target },
            KIND_UNCACHE => JobKind::Uncache { archive_id: target },
            KIND_CACHE => JobKind::Cache { archive_id: target },
            KIND_DELETE => JobKind::Delete { archive_id: target },
            KIND_DELETE_OBJECT => JobKind::DeleteObject { object_id: target },
            KIND_UPLOAD_CATALOG => JobKind::UploadCatalog { generation: target },
            KIND_MOVE_REMOTE => JobKind::MoveRemote,
            _ => return None,
        })
    }

    /// Uploads wait for the upload window and count against the bandwidth limit.
    pub fn is_upload(&self) -> bool {
        matches!(
            self,
            JobKind::UploadPart { .. } | JobKind::UploadManifest { .. } | JobKind::MoveRemote
        )
    }
}

/// Adds one job, due now. Call it inside the write transaction that makes
/// the job necessary.
pub fn enqueue(txn: &mut RwTxn, tables: &Tables, kind: JobKind) -> Result<String> {
    let (kind, target) = kind.to_parts();
    let now = ids::now_secs();
    let record = JobRecord {
        id: ids::random_id(),
        kind: kind.to_string(),
        target,
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
    };
    tables.jobs.put(txn, record.id.as_bytes(), &record)?;
    Ok(record.id)
}

/// The jobs that back up a newly created archive: one per part, or the
/// manifest right away for an empty archive.
pub fn enqueue_backup(
    txn: &mut RwTxn,
    tables: &Tables,
    archive_id: &str,
    parts_total: u32,
) -> Result<()> {
    if parts_total == 0 {
        enqueue(
            txn,
            tables,
            JobKind::UploadManifest {
                archive_id: archive_id.to_string(),
            },
        )?;
    }
    for index in 0..parts_total {
        enqueue(
            txn,
            tables,
            JobKind::UploadPart {
                archive_id: archive_id.to_string(),
                index,
            },
        )?;
    }
    Ok(())
}

/// Asks for the catalog (users, settings) to be uploaded again. Call it in
/// the write transaction that changes a user or the settings. Deduplicated:
/// the one job [`CATALOG_JOB_ID`] is rewritten, due now, with a new
/// generation.
pub fn enqueue_catalog_upload(txn: &mut RwTxn, tables: &Tables) -> Result<()> {
    let now = ids::now_secs();
    let record = JobRecord {
        id: CATALOG_JOB_ID.to_string(),
        kind: KIND_UPLOAD_CATALOG.to_string(),
        target: ids::random_id(),
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
    };
    tables.jobs.put(txn, CATALOG_JOB_ID.as_bytes(), &record)
}

/// Asks for the remote move job ([`MOVE_JOB_ID`]) to run now.
pub fn enqueue_move(txn: &mut RwTxn, tables: &Tables) -> Result<()> {
    let now = ids::now_secs();
    let record = JobRecord {
        id: MOVE_JOB_ID.to_string(),
        kind: KIND_MOVE_REMOTE.to_string(),
        target: String::new(),
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
    };
    tables.jobs.put(txn, MOVE_JOB_ID.as_bytes(), &record)
}

/// Makes every parked or waiting job due now with fresh attempts (the remote
/// settings changed). Returns how many were woken.
pub fn unpark_all(txn: &mut RwTxn, tables: &Tables) -> Result<usize> {
    let now = ids::now_secs();
    let mut count = 0;
    for (key, mut job) in tables.jobs.all(txn)? {
        if job.not_before > now {
            job.not_before = now;
            job.attempts = 0;
            tables.jobs.put(txn, &key, &job)?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_records() {
        for kind in [
            JobKind::UploadPart {
                archive_id: "a1".into(),
                index: 7,
            },
            JobKind::UploadManifest {
                archive_id: "a1".into(),
            },
            JobKind::Uncache {
                archive_id: "a1".into(),
            },
            JobKind::Cache {
                archive_id: "a1".into(),
            },
            JobKind::Delete {
                archive_id: "a1".into(),
            },
            JobKind::DeleteObject {
                object_id: "ff".into(),
            },
            JobKind::UploadCatalog {
                generation: "g1".into(),
            },
            JobKind::MoveRemote,
        ] {
            let (name, target) = kind.to_parts();
            let record = JobRecord {
                id: "j".into(),
                kind: name.into(),
                target,
                attempts: 0,
                not_before: 0,
                last_error: None,
                created_at: 0,
            };
            assert_eq!(JobKind::from_record(&record), Some(kind));
        }
    }
}
