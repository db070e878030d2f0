//! Adding and removing a copy destination, each in one transaction, and
//! opening a destination's remote (its `config` written or checked, like
//! the main remote's).

use std::sync::Arc;

use super::{list, Destination, MAIN};
use crate::engine::remote_move::{same_storage, ChangeError, Destination as Place};
use crate::engine::{keys, lock, Engine, Failure, Inner};
use crate::remote::{Remote, RemoteSettings};
use crate::store::copies::{copy_key, forget_destination, main_complete, settle};
use crate::store::records::{ArchiveRecord, ArchiveState, CopyRecord, DestinationRecord};
use crate::store::Tables;
use crate::units::human_size;

/// The longest name a destination may have.
const MAX_NAME_CHARS: usize = 64;

/// What adding a destination will copy there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddPlan {
    /// The place described (`s3://bucket/prefix`, `folder /media/usb`).
    pub to: String,
    /// An empty place, or one that holds this appliance's repository
    /// already (only what is missing is sent).
    pub place: Place,
    /// Archives that will be copied there, and their bytes (as stored on
    /// the main destination where known, else their size).
    pub archives: u64,
    pub bytes: u64,
}

impl AddPlan {
    /// The confirmation sentence: "This copies 3 archives (1.2 GiB) to
    /// grandpa's NAS."
    pub fn message(&self, name: &str) -> String {
        let what = format!(
            "{} {} ({})",
            self.archives,
            if self.archives == 1 {
                "archive"
            } else {
                "archives"
            },
            human_size(self.bytes)
        );
        match self.place {
            Place::SameRepository => format!(
                "{name} ({}) already holds this appliance's backups: the {what} are checked there and only what is missing is copied.",
                self.to
            ),
            _ => format!("This copies {what} to {name} ({}).", self.to),
        }
    }
}

/// Whether the archive is copied to a destination added now: everything
/// but an upload still arriving and an archive being deleted.
fn copied_when_added(archive: &ArchiveRecord) -> bool {
    !matches!(
        archive.state,
        ArchiveState::Receiving | ArchiveState::Deleting
    )
}

/// Checks a destination's name: a sentence when it cannot be used.
fn check_name(txn: &heed::RoTxn, inner: &Inner, name: &str) -> Result<String, ChangeError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ChangeError::Invalid(
            "Give the destination a name, such as \"USB disk\" or \"Grandpa's NAS\".".into(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ChangeError::Invalid(format!(
            "A destination's name is at most {MAX_NAME_CHARS} characters, on one line."
        )));
    }
    for existing in list(txn, &inner.store.tables, &inner.data_dir)? {
        if existing.name.eq_ignore_ascii_case(name) {
            return Err(ChangeError::Invalid(format!(
                "A destination is already called {name}; choose another name."
            )));
        }
    }
    Ok(name.to_string())
}

impl Engine {
    /// What adding a destination at `settings` would copy, without writing
    /// anything. Opens and looks at the place: refuses another appliance's
    /// repository, the storage of an existing destination and a place that
    /// cannot be reached.
    pub fn plan_destination(&self, settings: &RemoteSettings) -> Result<AddPlan, ChangeError> {
        self.inner.plan_destination(settings)
    }

    /// Adds a copy destination (see `Inner::add_destination`) and starts
    /// its syncer.
    pub fn add_destination(
        &self,
        name: &str,
        settings: RemoteSettings,
    ) -> Result<(Destination, AddPlan), ChangeError> {
        let (added, plan) = self.inner.add_destination(name, settings)?;
        self.syncers.start(&self.inner, &added.id, &added.name);
        Ok((added, plan))
    }

    /// Removes a copy destination (see `Inner::remove_destination`) and
    /// stops its syncer. Its bucket or folder is left as it is.
    pub fn remove_destination(&self, id: &str) -> Result<Destination, ChangeError> {
        let removed = self.inner.remove_destination(id)?;
        self.syncers.stop(&self.inner, &removed.id);
        Ok(removed)
    }

    /// How every destination is doing now.
    pub fn destination_health(&self) -> &super::Health {
        &self.inner.health
    }
}

impl Inner {
    /// What adding a destination at `settings` would copy (see
    /// [`Engine::plan_destination`]).
    pub(crate) fn plan_destination(
        &self,
        settings: &RemoteSettings,
    ) -> Result<AddPlan, ChangeError> {
        let inner = self;
        let check = crate::remote::TransferOptions {
            timeout: std::time::Duration::from_secs(15),
            max_attempts: 5,
            base_backoff: std::time::Duration::from_millis(200),
        };
        let remote = crate::remote::open(settings, &check)
            .map_err(|err| ChangeError::Invalid(err.message))?;
        let (existing, archives, bytes) = {
            let txn = inner.store.read()?;
            let tables = &inner.store.tables;
            let existing = list(&txn, tables, &inner.data_dir)?;
            let (mut archives, mut bytes) = (0u64, 0u64);
            for (_, archive) in tables.archives.all(&txn)? {
                if copied_when_added(&archive) {
                    archives += 1;
                    bytes += archive.stored_size.unwrap_or(archive.size);
                }
            }
            (existing, archives, bytes)
        };
        // The storage a running move copies from is released (a folder on
        // this disk deleted) once the move ends: never a destination.
        if let Ok(Some(from)) = inner.previous_settings() {
            if same_storage(&from, settings) {
                return Err(ChangeError::Invalid(format!(
                    "{} is the storage the backups are moving away from; it is released when the move ends, so it cannot be a destination.",
                    remote.describe()
                )));
            }
        }
        if let Some(same) = existing
            .iter()
            .find(|d| same_storage(&d.settings, settings))
        {
            return Err(ChangeError::AlreadyADestination {
                to: remote.describe(),
                name: same.name.clone(),
            });
        }
        let place = match keys::load(&inner.store) {
            Ok(Some((_, config))) => crate::engine::remote_move::look_at(settings, &config)?,
            Ok(None) => Place::Empty,
            Err(err) => return Err(ChangeError::Keys(err.to_string())),
        };
        Ok(AddPlan {
            to: remote.describe(),
            place,
            archives,
            bytes,
        })
    }

    /// Adds a copy destination, in one transaction: its record, a copy
    /// record for every archive there is (the trashed ones too), and every
    /// `backed_up` archive `uploading` again until it is there too.
    pub(crate) fn add_destination(
        &self,
        name: &str,
        settings: RemoteSettings,
    ) -> Result<(Destination, AddPlan), ChangeError> {
        let inner = self;
        let plan = self.plan_destination(&settings)?;
        crate::remote::check_lock_support(&settings, &crate::remote::TransferOptions::default())
            .map_err(|err| match err.kind {
                crate::remote::ErrorKind::Transient => ChangeError::Unreachable {
                    to: plan.to.clone(),
                    reason: err.message,
                },
                _ => ChangeError::ObjectLockUnsupported(err.message),
            })?;
        let record = DestinationRecord {
            id: format!("d_{}", crate::ids::random_id()),
            name: String::new(),
            settings,
            added_at: crate::ids::now_secs(),
            catalog_version: 0,
            lock_repo_until: None,
        };
        let (record, changed) = inner.store.write(
            |txn, tables| -> Result<(DestinationRecord, Vec<ArchiveRecord>), ChangeError> {
                let name = check_name(txn, inner, name)?;
                let record = DestinationRecord { name, ..record };
                tables
                    .destinations
                    .put(txn, record.id.as_bytes(), &record)?;
                let changed = add_copies(txn, tables, &record.id)?;
                Ok((record, changed))
            },
        )?;
        for archive in &changed {
            inner.events.archive(archive);
        }
        Ok((
            Destination {
                id: record.id,
                name: record.name,
                settings: record.settings,
            },
            plan,
        ))
    }

    /// Removes a copy destination, in one transaction: its record and every
    /// copy, part, object and deletion record of it; archives that waited
    /// only for it are `backed_up`. Its bucket or folder is left as it is.
    /// The main destination cannot be removed.
    pub(crate) fn remove_destination(&self, id: &str) -> Result<Destination, ChangeError> {
        let inner = self;
        if id == MAIN {
            return Err(ChangeError::Invalid(
                "The main destination cannot be removed; change its settings instead, or make another destination hold the backups by moving them there.".into(),
            ));
        }
        let (record, changed) = inner.store.write(
            |txn, tables| -> Result<(DestinationRecord, Vec<ArchiveRecord>), ChangeError> {
                let record = tables
                    .destinations
                    .get(txn, id.as_bytes())?
                    .ok_or_else(|| ChangeError::NoSuchDestination { id: id.to_string() })?;
                forget_destination(txn, tables, id)?;
                let mut changed = Vec::new();
                for (key, mut archive) in tables.archives.all(txn)? {
                    if archive.awaiting_copies && settle(txn, tables, &mut archive, true)? {
                        tables.archives.put(txn, &key, &archive)?;
                        changed.push(archive);
                    }
                }
                Ok((record, changed))
            },
        )?;
        lock(&inner.dest_remotes).remove(&record.id);
        inner.health.forget(&record.id);
        for archive in &changed {
            inner.events.archive(archive);
        }
        Ok(Destination {
            id: record.id,
            name: record.name,
            settings: record.settings,
        })
    }
}

/// A copy record for every archive there is (but those arriving or being
/// deleted) on the new destination; `backed_up` archives wait for it.
fn add_copies(
    txn: &mut heed::RwTxn,
    tables: &Tables,
    dest_id: &str,
) -> Result<Vec<ArchiveRecord>, ChangeError> {
    let mut changed = Vec::new();
    for (key, mut archive) in tables.archives.all(txn)? {
        if !copied_when_added(&archive) {
            continue;
        }
        let copy = copy_key(dest_id, &archive.id);
        tables
            .copies
            .put(txn, copy.as_bytes(), &CopyRecord::default())?;
        let main_done = main_complete(&archive);
        if main_done && settle(txn, tables, &mut archive, true)? {
            tables.archives.put(txn, &key, &archive)?;
            changed.push(archive);
        }
    }
    Ok(changed)
}

impl Inner {
    /// The remote of destination `id` ([`MAIN`]: the current remote),
    /// opened once per settings; its repository `config` is written on
    /// first use, and a place holding another repository's is refused.
    pub(crate) fn destination_remote(&self, id: &str) -> Result<Arc<dyn Remote>, Failure> {
        if id == MAIN {
            return self.remote();
        }
        let settings = {
            let txn = self.store.read()?;
            self.store
                .tables
                .destinations
                .get(&txn, id.as_bytes())?
                .map(|record| record.settings)
        };
        let Some(settings) = settings else {
            return Err(Failure::Permanent(
                "This destination was removed; nothing more is written there.".into(),
            ));
        };
        let cached = || {
            lock(&self.dest_remotes)
                .get(id)
                .filter(|(open, _)| open == &settings)
                .map(|(_, remote)| remote.clone())
        };
        if let Some(remote) = cached() {
            return Ok(remote);
        }
        // Not under `remote_opening`: a copy that is slow to answer must not
        // hold up the main remote's opening. Two first uses at once both
        // write the same `config` bytes.
        let remote: Arc<dyn Remote> = Arc::from(crate::remote::open(&settings, &self.options)?);
        self.claim_repository(remote.as_ref())?;
        lock(&self.dest_remotes).insert(id.to_string(), (settings, remote.clone()));
        Ok(remote)
    }
}
