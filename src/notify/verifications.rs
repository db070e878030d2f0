//! Verifications that failed and have not passed since (`meta` key
//! `notify_verification_failures`): written by the verify operation, read
//! by the notifier's observer, so `verification_failed` is one problem per
//! archive until a later verification of it passes.
//!
//! Owns: that record. Must not touch: the network, the engine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

const KEY: &[u8] = b"notify_verification_failures";

/// One archive whose last verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedVerification {
    pub archive_id: String,
    /// What went wrong, as a sentence (damage found, or why the remote
    /// could not be checked).
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
}

/// Every archive whose last verification failed, by archive id.
pub fn load(store: &Store) -> Result<Vec<FailedVerification>, StoreError> {
    let txn = store.read()?;
    let map: BTreeMap<String, FailedVerification> = store
        .tables
        .meta
        .get(&txn, KEY)?
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    Ok(map.into_values().collect())
}

/// Records that verifying `archive_id` failed (replacing an older failure).
pub fn failed(store: &Store, failure: FailedVerification) -> Result<(), StoreError> {
    change(store, |map| {
        map.insert(failure.archive_id.clone(), failure);
    })
}

/// Records that verifying `archive_id` passed: its failure, if any, is over.
pub fn passed(store: &Store, archive_id: &str) -> Result<(), StoreError> {
    change(store, |map| {
        map.remove(archive_id);
    })
}

fn change(
    store: &Store,
    edit: impl FnOnce(&mut BTreeMap<String, FailedVerification>),
) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        let mut map: BTreeMap<String, FailedVerification> = tables
            .meta
            .get(txn, KEY)?
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        let before = map.clone();
        edit(&mut map);
        if map != before {
            let value = serde_json::to_value(&map).unwrap_or_default();
            tables.meta.put(txn, KEY, &value)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_ends_only_its_own_archive_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        for (id, at) in [("a", 1), ("b", 2), ("a", 3)] {
            let reason = format!("damaged at {at}");
            let failure = FailedVerification {
                archive_id: id.into(),
                reason,
                at,
            };
            failed(&store, failure).unwrap();
        }
        let ats: Vec<i64> = load(&store).unwrap().iter().map(|f| f.at).collect();
        assert_eq!(ats, [3, 2]);
        passed(&store, "a").unwrap();
        passed(&store, "zzz").unwrap();
        let left: Vec<String> = load(&store)
            .unwrap()
            .into_iter()
            .map(|f| f.archive_id)
            .collect();
        assert_eq!(left, ["b"]);
    }
}
