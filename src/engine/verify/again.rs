//! Storing one part object again on one destination where it was found
//! missing or damaged: sealed afresh from the local file (which must still
//! match its hash), or the sealed bytes of another destination's copy,
//! authenticated first. Used by verification and by a fetch-back that had
//! to read a part from another copy.
//!
//! Rules: under the same object claim uploads, syncers and deletes take
//! (`"{object}"` on the main destination, `"{dest}/{object}"` on a copy),
//! and only while that destination's books still count the object, so a
//! delete of its last user never races with it. No transaction is held
//! across the put.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::super::destinations::MAIN;
use super::super::{Failure, Inner, ObjectClaim};
use crate::remote::Remote;
use crate::repo::{self, ObjectId, RepoKeys};
use crate::store::copies::copy_object_key;
use crate::store::records::PartRecord;

/// How long storing a part again waits for an upload or delete of the same
/// object that another thread is doing right now.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// One part object to store again on one destination.
pub(in crate::engine) struct PartAgain<'a> {
    /// The destination's id ([`MAIN`] or a copy's).
    pub destination: &'a str,
    pub object_id: &'a ObjectId,
    /// The part it holds (the file offset, length and hash to read).
    pub part: &'a PartRecord,
}

impl PartAgain<'_> {
    /// The claim and book key of the object on its destination.
    fn claim_key(&self) -> String {
        if self.destination == MAIN {
            self.object_id.as_str().to_string()
        } else {
            copy_object_key(self.destination, self.object_id.as_str())
        }
    }
}

impl Inner {
    /// Whether `remote` holds this appliance's repository (its `config`,
    /// the same bytes as ours): a folder whose disk is not mounted, or a
    /// bucket emptied, does not, and nothing is repaired into it.
    pub(in crate::engine) fn holds_repository(&self, remote: &dyn Remote) -> Result<bool, Failure> {
        let (_, config) = self.keys()?;
        match remote.get_at_most(repo::CONFIG_KEY, repo::MAX_CONFIG_BYTES) {
            Ok(found) => Ok(&found == config),
            Err(err) if err.kind == crate::remote::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Seals the part afresh from the local `file` and stores it again
    /// (see the module comment). A local part that no longer matches its
    /// hash is refused.
    pub(in crate::engine) fn store_part_again(
        &self,
        remote: &dyn Remote,
        keys: &RepoKeys,
        file: &File,
        again: &PartAgain<'_>,
    ) -> Result<(), Failure> {
        let part = again.part;
        let mut buffer = vec![0u8; part.length as usize];
        file.read_exact_at(&mut buffer, part.offset)?;
        if hex::encode(Sha256::digest(&buffer)) != part.sha256 {
            return Err(Failure::Damaged(
                "The local part does not match its hash.".into(),
            ));
        }
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        let sealed = keys
            .seal_part(again.object_id, nonce, buffer)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        self.put_sealed_again(remote, again, sealed)
    }

    /// Stores `sealed` (checked by the caller: sealed here, or another
    /// destination's copy that opened and hashed right) as the part object
    /// on `remote`, and notes its new length and hash in the books.
    pub(in crate::engine) fn put_sealed_again(
        &self,
        remote: &dyn Remote,
        again: &PartAgain<'_>,
        sealed: Vec<u8>,
    ) -> Result<(), Failure> {
        let book_key = again.claim_key();
        let started = std::time::Instant::now();
        let _claim = loop {
            match ObjectClaim::take(self, &book_key) {
                Ok(claim) => break claim,
                Err(Failure::Busy) if started.elapsed() < CLAIM_WAIT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(failure) => return Err(failure),
            }
        };
        let in_use = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            if again.destination == MAIN {
                tables
                    .objects
                    .get(&txn, book_key.as_bytes())?
                    .is_some_and(|object| object.refcount > 0)
            } else {
                tables
                    .copy_objects
                    .get(&txn, book_key.as_bytes())?
                    .is_some_and(|object| object.refcount > 0)
            }
        };
        if !in_use {
            return Err(Failure::Busy);
        }
        let cipher_sha = hex::encode(Sha256::digest(&sealed));
        self.throttle(sealed.len());
        remote.put_hashed(&repo::part_key(again.object_id), &sealed, &cipher_sha)?;
        crate::metrics::global().add_uploaded(sealed.len() as u64);
        let length = sealed.len() as u64;
        self.store.write(|txn, tables| -> Result<(), Failure> {
            if again.destination == MAIN {
                if let Some(mut object) = tables.objects.get(txn, book_key.as_bytes())? {
                    object.stored = true;
                    object.stored_length = length;
                    object.ciphertext_sha256 = cipher_sha.clone();
                    tables.objects.put(txn, book_key.as_bytes(), &object)?;
                }
            } else if let Some(mut object) = tables.copy_objects.get(txn, book_key.as_bytes())? {
                object.stored_length = length;
                tables.copy_objects.put(txn, book_key.as_bytes(), &object)?;
            }
            Ok(())
        })
    }
}
