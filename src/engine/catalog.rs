//! The `upload_catalog` job: seals the users and settings (the catalog of
//! [`crate::repo::catalog`]) with the repository keys and writes it to
//! `catalog/appliance`, so a new appliance can rebuild itself from the
//! bucket with the recovery passphrase alone.
//!
//! Owns only this job. The job is enqueued by
//! [`super::jobs::enqueue_catalog_upload`] in the transaction of every change
//! to users or settings; it is removed only if no newer change re-enqueued it
//! while the upload ran. Must not touch: archives, parts, objects.

use super::jobs::CATALOG_JOB_ID;
use super::{keys, Failure, Inner};
use crate::repo;
use crate::repo::catalog::{Catalog, CATALOG_LABEL};
use crate::settings::Settings;
use crate::store::records::UserRecord;
use crate::store::{StoreError, Tables};

use heed::RoTxn;

impl Inner {
    pub(super) fn upload_catalog(&self, job_id: &str, generation: &str) -> Result<(), Failure> {
        if !keys::exist(&self.store)? {
            // Nothing can be sealed yet; creating the keys enqueues it again.
            return self.drop_catalog_job(job_id, generation);
        }
        let (_, config) = self.keys()?;
        let sealed = self.sealed_catalog()?;
        let remote = self.remote()?;
        // Never overwrite the catalog of another appliance's backup.
        let remote_config = remote.get_at_most(repo::CONFIG_KEY, repo::MAX_CONFIG_BYTES)?;
        if &remote_config != config {
            return Err(Failure::Permanent(format!(
                "{} holds the backup of another appliance (its config differs from this one's), so the user list was not written there; choose another bucket or prefix.",
                remote.describe()
            )));
        }
        remote.put(&repo::catalog_key(CATALOG_LABEL), &sealed)?;
        self.drop_catalog_job(job_id, generation)
    }

    /// The users and settings as they are now, sealed with the repository
    /// keys: what `catalog/appliance` holds on every destination.
    pub(super) fn sealed_catalog(&self) -> Result<Vec<u8>, Failure> {
        let (keys, _) = self.keys()?;
        let catalog = {
            let txn = self.store.read()?;
            catalog_from_store(&txn, &self.store.tables)?
        };
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        catalog
            .seal(keys, nonce)
            .map_err(|e| Failure::Permanent(e.to_string()))
    }

    /// Removes the catalog job unless a change since `generation` asked for
    /// another upload.
    fn drop_catalog_job(&self, job_id: &str, generation: &str) -> Result<(), Failure> {
        debug_assert_eq!(job_id, CATALOG_JOB_ID);
        self.store.write(|txn, tables| -> Result<(), Failure> {
            if let Some(job) = tables.jobs.get(txn, job_id.as_bytes())? {
                if job.target == generation {
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                }
            }
            Ok(())
        })
    }
}

/// The users and settings as they are in the store now.
fn catalog_from_store(txn: &RoTxn, tables: &Tables) -> Result<Catalog, StoreError> {
    let mut users: Vec<UserRecord> = tables
        .users
        .all(txn)?
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let settings = Settings::load_in(txn, tables)?;
    Ok(Catalog { users, settings })
}
