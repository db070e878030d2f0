//! The store on a trial boot: opened without migrating, migrated after the commit
//! (docs/DESIGN.md, "Firmware updates", step 3; the rules are in [`crate::store`]'s docs).
//!
//! Owns: telling `piarchive serve` whether this boot is an uncommitted trial, and the
//! thread that waits for the commit (init rewrites `config.txt`) and then migrates.
//! Must not touch: what a migration does (that is [`crate::store`]) or the commit
//! itself (that is init's, [`crate::init::slots`]).

use std::path::Path;
use std::time::{Duration, Instant};

use super::boot;
use crate::store::{Migrate, Store, StoreError};

/// How often the waiting thread looks at `config.txt`.
const POLL: Duration = Duration::from_secs(2);
/// How long it waits. A trial commits or goes back within a few minutes (init's check
/// gives the web server 120 s); if it has not by then, the next ordinary boot migrates.
const WAIT_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Opens the store for `piarchive serve`: on an uncommitted trial boot without
/// migrating it, with a thread that migrates once the trial has committed; otherwise
/// as always (migrated on open).
pub fn open_store(dir: &Path, map_size: usize) -> Result<Store, StoreError> {
    let boot_dir = Path::new(boot::BOOT_MOUNT);
    if !(crate::power::running_under_init() && super::on_trial(boot_dir, boot::booted_on_trial())) {
        return Store::open(dir, map_size);
    }
    let store = Store::open_with(dir, map_size, Migrate::AfterCommit)?;
    if let Some(found) = store.pending_migration() {
        eprintln!(
            "piarchive: on trial after an update: the database stays at schema {found} until this version is committed"
        );
        let waiting = store.clone();
        std::thread::Builder::new()
            .name("migrate-after-commit".into())
            .spawn(move || {
                let committed = || !super::on_trial(boot_dir, true);
                let outcome = migrate_after_commit(&waiting, committed, POLL, WAIT_LIMIT);
                eprintln!("piarchive: {}", outcome.sentence());
            })
            .map_err(|err| StoreError::Lmdb(heed::Error::Io(err)))?;
    }
    Ok(store)
}

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, then migrated from this schema version.
    Migrated(u32),
    /// Committed, but the migration failed (the next start tries again).
    Failed(String),
    /// Not committed within the limit (the next ordinary start migrates).
    NotCommitted,
}

impl Outcome {
    pub fn sentence(&self) -> String {
        match self {
            Outcome::Migrated(from) => format!(
                "this version is committed; the database was converted from schema {from} to {}",
                crate::store::SCHEMA_VERSION
            ),
            Outcome::Failed(err) => format!(
                "this version is committed but the database could not be converted ({err}); the next start tries again"
            ),
            Outcome::NotCommitted => {
                "this version was not committed in time; the database stays as it is until the next start".into()
            }
        }
    }
}

/// Polls `committed` every `poll` for at most `limit`; once it says yes, migrates.
pub fn migrate_after_commit(
    store: &Store,
    committed: impl Fn() -> bool,
    poll: Duration,
    limit: Duration,
) -> Outcome {
    let deadline = Instant::now() + limit;
    loop {
        if committed() {
            return match store.migrate() {
                Ok(from) => Outcome::Migrated(from),
                Err(err) => Outcome::Failed(err.to_string()),
            };
        }
        if Instant::now() >= deadline {
            return Outcome::NotCommitted;
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn older_store(dir: &Path) -> Store {
        let store = Store::open(dir, 16 << 20).expect("open");
        store
            .write(|txn, t| t.meta.put(txn, b"schema_version", &serde_json::json!(0)))
            .expect("write");
        drop(store);
        Store::open_with(dir, 16 << 20, Migrate::AfterCommit).expect("reopen")
    }

    #[test]
    fn the_store_is_migrated_only_after_the_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = older_store(dir.path());
        assert_eq!(store.pending_migration(), Some(0));
        let polls = AtomicU32::new(0);
        let committed = || {
            // Not yet converted while the trial runs.
            assert_eq!(store.schema_version().expect("version"), 0);
            polls.fetch_add(1, Ordering::SeqCst) >= 2
        };
        let outcome = migrate_after_commit(
            &store,
            committed,
            Duration::from_millis(1),
            Duration::from_secs(5),
        );
        assert_eq!(outcome, Outcome::Migrated(0));
        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert_eq!(store.pending_migration(), None);
        assert_eq!(
            store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
        assert!(outcome.sentence().contains("converted from schema 0"));
    }

    #[test]
    fn a_trial_that_never_commits_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = older_store(dir.path());
        let outcome = migrate_after_commit(
            &store,
            || false,
            Duration::from_millis(1),
            Duration::from_millis(20),
        );
        assert_eq!(outcome, Outcome::NotCommitted);
        assert_eq!(store.pending_migration(), Some(0));
        assert_eq!(store.schema_version().expect("version"), 0);
    }

    #[test]
    fn outside_the_image_the_store_is_migrated_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        older_store(dir.path());
        let store = open_store(dir.path(), 16 << 20).expect("open");
        assert_eq!(store.pending_migration(), None);
        assert_eq!(
            store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
    }
}
