//! Disaster recovery: rebuilds an appliance's LMDB catalog from its bucket
//! with the recovery passphrase alone (`piarchive recover` and the setup
//! page's "Restore from an existing backup").
//!
//! Two steps. [`Recovery::prepare`] only reads: it refuses a data folder
//! that already has users, archives or keys, fetches `config`, unlocks the
//! master key with the passphrase, opens `catalog/appliance` (users and
//! settings, see [`crate::repo::catalog`]), lists `manifests/` and `parts/`. Any error
//! there (wrong passphrase, newer format, no backup) writes nothing.
//! [`Recovery::run`] then writes: one transaction with a "recovering"
//! marker, the keys, the remote settings, the settings and the users; then
//! one transaction per archive, keyed by its archive id, creating it
//! `uncached` (or `damaged` with the reason when a part is missing from the
//! bucket) with its parts and their objects' refcounts; then removes the
//! marker. A run killed half-way is resumed by running it again: the marker
//! lets it past the "not empty" refusal and archives already there are
//! skipped, so nothing is duplicated.
//!
//! Owns: the marker setting and [`RecoveryTask`], the state of a recovery
//! started from the web. Must not touch: HTTP, the archive files (archives
//! come back through the engine's normal cache job), the job queue.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::accounts::username_key;
use crate::engine::keys;
use crate::remote::as_of::AsOfRemote;
use crate::remote::{self, ErrorKind, Remote, RemoteError, RemoteSettings, TransferOptions};
use crate::repo::catalog::{Catalog, CATALOG_LABEL};
use crate::repo::{self, Manifest, RepoConfig, RepoError, RepoKeys, PART_OVERHEAD};
use crate::store::records::{ArchiveRecord, ArchiveState, ObjectRecord, PartRecord, Role};
use crate::store::{indexed_key, Store, StoreError};

/// Set (in the settings table) from the first write of a recovery until its
/// last: a data folder holding it may be recovered into again.
const MARKER_KEY: &[u8] = b"recovery_in_progress";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("This data folder already has users, archives or encryption keys, and recovery only fills an empty one; recover into a new, empty data folder.")]
    NotEmpty,
    #[error("{remote} holds no piarchive backup (it has no config object); check the bucket, the prefix or the folder.")]
    NoBackup { remote: String },
    #[error("{remote} holds no list of users (catalog/appliance): the backup was written before piarchive kept its users in the bucket, so nobody could log in after a recovery.")]
    NoCatalog { remote: String },
    #[error("A recovery from another backup was started in this data folder; finish it with the same remote and passphrase, or recover into a new, empty data folder.")]
    OtherBackup,
    #[error("A recovery is already running here; wait for it to finish.")]
    AlreadyRunning,
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{0}")]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How far [`Recovery::run`] is: `done` of `total` archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// An archive that could not be recovered whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedArchive {
    pub archive_id: String,
    /// Empty when the manifest itself could not be read.
    pub name: String,
    /// A sentence saying what is wrong.
    pub reason: String,
    /// Whether the archive exists now, in state `damaged`; `false` when its
    /// manifest could not be read (nothing was created for it).
    pub created: bool,
}

/// What a finished recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub users: usize,
    /// Manifests in the bucket.
    pub archives_total: usize,
    /// Created `uncached`, ready to be cached back.
    pub recovered: usize,
    /// Already there from an earlier, interrupted run.
    pub already_present: usize,
    pub damaged: Vec<DamagedArchive>,
    /// With `--as-of`: objects whose old version was made current again
    /// (they had been deleted or overwritten since).
    pub restored_objects: usize,
}

/// A recovery that has read and unlocked the bucket and may now write.
pub struct Recovery {
    store: Store,
    remote_settings: RemoteSettings,
    remote: Arc<dyn Remote>,
    /// With `--as-of`: the same bucket as it stood then, whose old
    /// versions [`Recovery::run`] makes current again first.
    as_of: Option<Arc<AsOfRemote>>,
    master_key: [u8; 32],
    keys: RepoKeys,
    /// The bucket's `config`, byte for byte.
    config_text: String,
    catalog: Catalog,
    /// Archive ids, sorted.
    manifest_ids: Vec<String>,
    /// Every key under `parts/`.
    part_keys: HashSet<String>,
}

enum Outcome {
    Recovered,
    AlreadyPresent,
    Damaged(DamagedArchive),
}

/// Whether the store may be recovered into: `Ok(true)` when an earlier
/// recovery left its marker (a resumed run), `Ok(false)` when it is empty.
fn check_empty(store: &Store) -> Result<bool, RecoveryError> {
    if interrupted(store)? {
        return Ok(true);
    }
    let txn = store.read()?;
    let tables = &store.tables;
    if !tables.users.is_empty(&txn)? || !tables.archives.is_empty(&txn)? {
        return Err(RecoveryError::NotEmpty);
    }
    drop(txn);
    if keys::exist(store)? {
        return Err(RecoveryError::NotEmpty);
    }
    Ok(false)
}

impl Recovery {
    /// Reads and unlocks the backup the settings point at; writes nothing.
    /// Runs Argon2id once (about a second on a Pi).
    pub fn prepare(
        store: &Store,
        remote_settings: RemoteSettings,
        passphrase: &str,
        options: &TransferOptions,
    ) -> Result<Recovery, RecoveryError> {
        Self::prepare_as_of(store, remote_settings, passphrase, options, None)
    }

    /// [`Recovery::prepare`] from a versioned bucket as it stood at
    /// `as_of` (Unix seconds, see `remote::as_of::parse_time`) when given:
    /// for each object the newest version written by then.
    pub fn prepare_as_of(
        store: &Store,
        remote_settings: RemoteSettings,
        passphrase: &str,
        options: &TransferOptions,
        as_of: Option<i64>,
    ) -> Result<Recovery, RecoveryError> {
        let resuming = check_empty(store)?;
        let (remote, as_of): (Arc<dyn Remote>, _) = match as_of {
            None => (Arc::from(remote::open(&remote_settings, options)?), None),
            Some(time) => {
                let as_of = Arc::new(AsOfRemote::open(&remote_settings, options, time)?);
                (as_of.clone(), Some(as_of))
            }
        };
        let config_bytes = match remote.get_at_most(repo::CONFIG_KEY, repo::MAX_CONFIG_BYTES) {
            Ok(bytes) => bytes,
            Err(err) if err.kind == ErrorKind::NotFound => {
                return Err(RecoveryError::NoBackup {
                    remote: remote.describe(),
                })
            }
            Err(err) => return Err(err.into()),
        };
        let config = RepoConfig::decode(&config_bytes)?;
        let master_key = config.master_key(passphrase)?;
        let keys = RepoKeys::from_master_key(&master_key);
        let config_text =
            String::from_utf8(config_bytes.clone()).map_err(|_| RepoError::BadConfig {
                reason: "it is not UTF-8 text".to_string(),
            })?;
        if resuming {
            match keys::load(store) {
                Ok(Some((_, stored))) if stored == config_bytes => {}
                Ok(None) => {}
                _ => return Err(RecoveryError::OtherBackup),
            }
        }
        let catalog_bytes =
            match remote.get_at_most(&repo::catalog_key(CATALOG_LABEL), repo::MAX_CATALOG_BYTES) {
                Ok(bytes) => bytes,
                Err(err) if err.kind == ErrorKind::NotFound => {
                    return Err(RecoveryError::NoCatalog {
                        remote: remote.describe(),
                    })
                }
                Err(err) => return Err(err.into()),
            };
        let catalog = Catalog::open(&keys, &catalog_bytes)?;
        if catalog.users.is_empty() {
            return Err(RecoveryError::NoCatalog {
                remote: remote.describe(),
            });
        }
        let mut manifest_ids: Vec<String> = remote
            .list(repo::MANIFESTS_PREFIX)?
            .into_iter()
            .filter_map(|key| {
                key.strip_prefix(repo::MANIFESTS_PREFIX)
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                    .map(str::to_string)
            })
            .collect();
        manifest_ids.sort();
        manifest_ids.dedup();
        let part_keys = remote.list(repo::PARTS_PREFIX)?.into_iter().collect();
        Ok(Recovery {
            store: store.clone(),
            remote_settings,
            remote,
            as_of,
            master_key,
            keys,
            config_text,
            catalog,
            manifest_ids,
            part_keys,
        })
    }

    /// Archives in the bucket.
    pub fn total(&self) -> usize {
        self.manifest_ids.len()
    }

    /// Users in the bucket's catalog.
    pub fn users(&self) -> usize {
        self.catalog.users.len()
    }

    /// Writes the keys, settings and users, then every archive, calling
    /// `progress` after each archive (and once before the first).
    pub fn run(self, progress: &mut dyn FnMut(Progress)) -> Result<Report, RecoveryError> {
        let restored_objects = match &self.as_of {
            Some(as_of) => as_of.restore()?,
            None => 0,
        };
        self.write_appliance()?;
        let total = self.manifest_ids.len();
        let mut report = Report {
            users: self.catalog.users.len(),
            archives_total: total,
            restored_objects,
            ..Report::default()
        };
        progress(Progress { done: 0, total });
        for (index, archive_id) in self.manifest_ids.iter().enumerate() {
            match self.recover_archive(archive_id)? {
                Outcome::Recovered => report.recovered += 1,
                Outcome::AlreadyPresent => report.already_present += 1,
                Outcome::Damaged(damaged) => report.damaged.push(damaged),
            }
            progress(Progress {
                done: index + 1,
                total,
            });
        }
        self.store.write(|txn, tables| -> Result<(), StoreError> {
            tables.settings.delete(txn, MARKER_KEY)?;
            Ok(())
        })?;
        Ok(report)
    }

    /// The first write: marker, keys, remote settings, settings and users.
    fn write_appliance(&self) -> Result<(), RecoveryError> {
        self.store
            .write(|txn, tables| -> Result<(), RecoveryError> {
                let resuming = tables.settings.get(txn, MARKER_KEY)?.is_some();
                if !resuming && (!tables.users.is_empty(txn)? || !tables.archives.is_empty(txn)?) {
                    return Err(RecoveryError::NotEmpty);
                }
                tables.settings.put(
                    txn,
                    MARKER_KEY,
                    &serde_json::json!({"started_at": crate::ids::now_secs()}),
                )?;
                keys::put_recovered(
                    txn,
                    tables,
                    &self.master_key,
                    &self.config_text,
                    &self.remote_settings,
                )?;
                self.catalog.settings.put_in(txn, tables)?;
                for user in &self.catalog.users {
                    tables.users.put(txn, user.id.as_bytes(), user)?;
                    tables
                        .usernames
                        .put(txn, username_key(&user.username).as_bytes(), &user.id)?;
                }
                Ok(())
            })
    }

    /// The user id owning `owner` (a username), or the first admin with a
    /// note when the bucket's catalog no longer has that user.
    fn owner_of(
        &self,
        txn: &heed::RoTxn,
        owner: &str,
    ) -> Result<(String, Option<String>), StoreError> {
        if let Some(id) = self
            .store
            .tables
            .usernames
            .get(txn, username_key(owner).as_bytes())?
        {
            return Ok((id, None));
        }
        let admin = self
            .catalog
            .users
            .iter()
            .find(|user| user.role == Role::Admin && !user.disabled)
            .or_else(|| self.catalog.users.first());
        // `prepare` refuses a catalog without users.
        let admin = admin.map(|user| (user.id.clone(), user.username.clone()));
        let (id, name) = admin.unwrap_or_default();
        Ok((
            id,
            Some(format!(
                "Its owner {owner:?} is not among this backup's users, so it was given to {name}."
            )),
        ))
    }

    fn recover_archive(&self, archive_id: &str) -> Result<Outcome, RecoveryError> {
        {
            let txn = self.store.read()?;
            if self
                .store
                .tables
                .archives
                .get(&txn, archive_id.as_bytes())?
                .is_some()
            {
                return Ok(Outcome::AlreadyPresent);
            }
        }
        let unreadable = |reason: String| {
            Outcome::Damaged(DamagedArchive {
                archive_id: archive_id.to_string(),
                name: String::new(),
                reason,
                created: false,
            })
        };
        let bytes = match self
            .remote
            .get_at_most(&repo::manifest_key(archive_id), repo::MAX_MANIFEST_BYTES)
        {
            Ok(bytes) => bytes,
            Err(err) if err.kind == ErrorKind::NotFound => {
                return Ok(unreadable(
                    "Its manifest disappeared from the bucket during the recovery.".to_string(),
                ))
            }
            // One manifest the bucket will not give as piarchive wrote it
            // (larger than any manifest can be): that archive is reported,
            // the others are still recovered.
            Err(err) if err.kind == ErrorKind::Permanent => return Ok(unreadable(err.message)),
            Err(err) => return Err(err.into()),
        };
        let manifest = match Manifest::open(&self.keys, archive_id, &bytes) {
            Ok(manifest) => manifest,
            Err(err) => return Ok(unreadable(err.to_string())),
        };
        let (parts, damage) = self.part_records(&manifest);
        self.store
            .write(|txn, tables| -> Result<Outcome, RecoveryError> {
                if tables.archives.get(txn, archive_id.as_bytes())?.is_some() {
                    return Ok(Outcome::AlreadyPresent);
                }
                let (owner_id, owner_note) = self.owner_of(txn, &manifest.owner)?;
                let last_error = match (&damage, &owner_note) {
                    (Some(damage), Some(note)) => Some(format!("{damage} {note}")),
                    (Some(text), None) | (None, Some(text)) => Some(text.clone()),
                    (None, None) => None,
                };
                let archive = archive_record(
                    archive_id,
                    &manifest,
                    owner_id,
                    &parts,
                    damage.is_some(),
                    last_error,
                );
                put_parts(txn, tables, archive_id, &parts)?;
                tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                Ok(match damage {
                    Some(reason) => Outcome::Damaged(DamagedArchive {
                        archive_id: archive_id.to_string(),
                        name: manifest.name.clone(),
                        reason,
                        created: true,
                    }),
                    None => Outcome::Recovered,
                })
            })
    }

    /// The part records of a manifest, each `remote` when its object is in
    /// the bucket's listing, and the archive's damage when some are not.
    fn part_records(&self, manifest: &Manifest) -> (Vec<PartRecord>, Option<String>) {
        let mut parts = Vec::with_capacity(manifest.parts.len());
        let mut missing = Vec::new();
        let mut offset = 0;
        for (index, part) in manifest.parts.iter().enumerate() {
            let present = self.part_keys.contains(&repo::part_key(&part.object_id));
            if !present {
                missing.push(index);
            }
            parts.push(PartRecord {
                offset,
                length: part.length,
                sha256: part.sha256.clone(),
                object_id: Some(part.object_id.as_str().to_string()),
                remote: present,
                to_move: false,
            });
            offset += part.length;
        }
        let damage = (!missing.is_empty()).then(|| {
            let list = missing
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "Recovered from the bucket, but part(s) {list} of {} are missing there, so this archive cannot be fetched back.",
                parts.len()
            )
        });
        (parts, damage)
    }
}

/// Whether a recovery started here earlier was interrupted.
pub fn interrupted(store: &Store) -> Result<bool, StoreError> {
    let txn = store.read()?;
    Ok(store.tables.settings.get(&txn, MARKER_KEY)?.is_some())
}

/// The state of a recovery run in the background (the setup page), as
/// `GET /api/v1/setup/restore` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskState {
    /// `idle`, `running`, `finished` or `failed`.
    pub state: &'static str,
    pub done: usize,
    pub total: usize,
    pub report: Option<Report>,
    /// The sentence of a failed run.
    pub error: Option<String>,
}

/// A recovery running on a thread of its own; one at a time.
#[derive(Clone, Default)]
pub struct RecoveryTask {
    state: Arc<Mutex<TaskState>>,
    /// Set while an attempt checks a bucket and its passphrase (fetching
    /// the config, Argon2, the catalog): one at a time, so strangers
    /// pointing the setup page at their own buckets cannot add up memory.
    attempting: Arc<AtomicBool>,
}

/// An attempt to unlock a bucket under way; the next may start once it
/// is dropped.
pub struct Attempt {
    attempting: Arc<AtomicBool>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.attempting.store(false, Ordering::SeqCst);
    }
}

/// The archive record of a recovered manifest: `uncached`, or `damaged`
/// when parts are missing.
fn archive_record(
    archive_id: &str,
    manifest: &Manifest,
    owner_id: String,
    parts: &[PartRecord],
    damaged: bool,
    last_error: Option<String>,
) -> ArchiveRecord {
    let created_at = i64::try_from(manifest.created).unwrap_or(i64::MAX);
    ArchiveRecord {
        id: archive_id.to_string(),
        owner_id,
        name: manifest.name.clone(),
        filename: manifest.original_filename.clone(),
        size: manifest.size,
        sha256: manifest.sha256.clone(),
        created_at,
        state: if damaged {
            ArchiveState::Damaged
        } else {
            ArchiveState::Uncached
        },
        last_error,
        parts_total: parts.len() as u32,
        parts_remote: parts.iter().filter(|part| part.remote).count() as u32,
        bytes_remote: parts
            .iter()
            .filter(|part| part.remote)
            .map(|part| part.length)
            .sum(),
        last_accessed_at: created_at,
        local_copy: false,
        stored_size: None,
        protected_until: None,
        // The bucket is not trusted: cleaned as an upload's folder is.
        path: manifest
            .path
            .as_deref()
            .and_then(crate::archive::clean_folder),
        awaiting_copies: false,
    }
}

/// Writes the archive's part records and counts each part found in the
/// bucket as one more user of its object.
fn put_parts(
    txn: &mut heed::RwTxn,
    tables: &crate::store::Tables,
    archive_id: &str,
    parts: &[PartRecord],
) -> Result<(), StoreError> {
    for (index, part) in parts.iter().enumerate() {
        tables
            .parts
            .put(txn, &indexed_key(archive_id, index as u32), part)?;
        let (true, Some(object_id)) = (part.remote, &part.object_id) else {
            continue;
        };
        let object = match tables.objects.get(txn, object_id.as_bytes())? {
            Some(mut object) => {
                object.refcount += 1;
                object
            }
            None => ObjectRecord {
                refcount: 1,
                // Format 1's size, a guess: the listing does not tell the
                // real one (a compressed part is smaller, a format-3 one
                // a little larger).
                stored_length: part.length + PART_OVERHEAD as u64,
                // Not known without downloading the object; the
                // cache job checks every part's plaintext hash.
                ciphertext_sha256: String::new(),
                stored: true,
                retain_until: None,
            },
        };
        tables.objects.put(txn, object_id.as_bytes(), &object)?;
    }
    Ok(())
}

impl RecoveryTask {
    fn lock(&self) -> std::sync::MutexGuard<'_, TaskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> TaskState {
        let mut state = self.lock().clone();
        if state.state.is_empty() {
            state.state = "idle";
        }
        state
    }

    pub fn is_running(&self) -> bool {
        self.lock().state == "running"
    }

    /// Starts an attempt to check and unlock a bucket, or `None` while
    /// another one is under way.
    pub fn try_attempt(&self) -> Option<Attempt> {
        self.attempting
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(Attempt {
            attempting: self.attempting.clone(),
        })
    }

    /// Runs `recovery` on a new thread; `finished` is called after it ends,
    /// whatever the outcome.
    pub fn start(
        &self,
        recovery: Recovery,
        finished: impl FnOnce() + Send + 'static,
    ) -> Result<(), RecoveryError> {
        {
            let mut state = self.lock();
            if state.state == "running" {
                return Err(RecoveryError::AlreadyRunning);
            }
            *state = TaskState {
                state: "running",
                done: 0,
                total: recovery.total(),
                report: None,
                error: None,
            };
        }
        let task = self.clone();
        std::thread::spawn(move || {
            let result = recovery.run(&mut |progress| {
                let mut state = task.lock();
                state.done = progress.done;
                state.total = progress.total;
            });
            {
                let mut state = task.lock();
                match result {
                    Ok(report) => {
                        state.state = "finished";
                        state.report = Some(report);
                    }
                    Err(err) => {
                        state.state = "failed";
                        state.error = Some(err.to_string());
                    }
                }
            }
            finished();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
