//! Planning a change of storage: where the new place stands (nothing to
//! move, the same storage, this repository already, or empty), what a
//! change would copy, said in a sentence, and the quick checks of the new
//! place before anything is saved. The move itself is the parent's.

use super::*;

/// What the new place is, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Nothing is stored remotely yet: there is nothing to copy.
    NothingToMove,
    /// The same bucket and prefix, or the same folder (new keys, say).
    SameStorage,
    /// Another place that already holds this appliance's repository.
    SameRepository,
    /// A place without a repository: everything is copied there.
    Empty,
}

impl Destination {
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::NothingToMove => "nothing_to_move",
            Destination::SameStorage => "same_storage",
            Destination::SameRepository => "same_repository",
            Destination::Empty => "empty",
        }
    }

    /// Whether saving the settings starts a move.
    pub fn moves(self) -> bool {
        matches!(self, Destination::SameRepository | Destination::Empty)
    }
}

/// What a change of remote would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovePlan {
    pub destination: Destination,
    /// The current and the new place, for people.
    pub from: String,
    pub to: String,
    /// Archives with parts on the current remote, those parts, their bytes.
    pub archives: u64,
    pub parts: u64,
    pub bytes: u64,
}

impl MovePlan {
    /// One sentence for the remote page and the API.
    pub fn message(&self) -> String {
        let what = format!(
            "{} {} ({}, {} parts)",
            self.archives,
            if self.archives == 1 {
                "archive"
            } else {
                "archives"
            },
            human_size(self.bytes),
            self.parts
        );
        match self.destination {
            Destination::NothingToMove => {
                format!("Nothing is backed up yet, so nothing needs copying to {}.", self.to)
            }
            Destination::SameStorage => format!(
                "{} is the storage in use now: the new settings are saved and nothing is copied.",
                self.to
            ),
            Destination::SameRepository => format!(
                "{} already holds this appliance's backups: the {what} are checked there and only what is missing is copied from {}.",
                self.to, self.from
            ),
            Destination::Empty => format!(
                "The {what} now in {} will be copied to {} and checked; {} stays in use for them until every part has arrived.",
                self.from, self.to, self.from
            ),
        }
    }
}

/// Why the remote was not changed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{to} holds the backups of another appliance; nothing was written there and the storage was not changed. Choose an empty bucket or prefix (or restore that appliance from its own bucket).")]
    OtherRepository { to: String },
    #[error("{to} could not be checked before the backups are copied there ({reason}); the storage was not changed. Check the settings with Test and try again.")]
    Unreachable { to: String, reason: String },
    #[error("The backups are still moving to {to} ({done} of {total} parts copied); the storage can be changed again once that has finished.")]
    MoveRunning { to: String, done: u64, total: u64 },
    #[error("{0}")]
    ObjectLockUnsupported(String),
    #[error("{to} is already the destination {name}; each destination must be another place.")]
    AlreadyADestination { to: String, name: String },
    #[error("There is no destination {id}; it may have been removed already.")]
    NoSuchDestination { id: String },
    #[error("The encryption keys cannot be read: {0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `a` and `b` name the same storage: the same endpoint, bucket and
/// prefix, or the same folder. Keys, region and addressing style may differ.
pub fn same_storage(a: &RemoteSettings, b: &RemoteSettings) -> bool {
    match (a, b) {
        (
            RemoteSettings::S3 {
                endpoint: endpoint_a,
                bucket: bucket_a,
                prefix: prefix_a,
                ..
            },
            RemoteSettings::S3 {
                endpoint: endpoint_b,
                bucket: bucket_b,
                prefix: prefix_b,
                ..
            },
        ) => {
            let endpoint = |e: &str| e.trim().trim_end_matches('/').to_ascii_lowercase();
            endpoint(endpoint_a) == endpoint(endpoint_b)
                && bucket_a == bucket_b
                && prefix_a.trim_matches('/') == prefix_b.trim_matches('/')
        }
        (RemoteSettings::Dir { path: a }, RemoteSettings::Dir { path: b }) => {
            let canonical =
                |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            canonical(a) == canonical(b)
        }
        _ => false,
    }
}

/// Quick checks of the new place before anything is saved (enough tries
/// to get past a flaky link's hiccups).
pub(super) fn check_options() -> TransferOptions {
    TransferOptions {
        timeout: Duration::from_secs(15),
        max_attempts: 5,
        base_backoff: Duration::from_millis(200),
    }
}

/// What is on the current remote now.
pub(super) struct StoredCounts {
    pub(super) archives: u64,
    pub(super) parts: u64,
    pub(super) bytes: u64,
    pub(super) objects: u64,
}

pub(super) fn stored_counts(
    txn: &heed::RoTxn,
    tables: &Tables,
) -> Result<StoredCounts, StoreError> {
    let mut counts = StoredCounts {
        archives: 0,
        parts: 0,
        bytes: 0,
        objects: 0,
    };
    for (_, archive) in tables.archives.all(txn)? {
        if archive.parts_remote > 0 {
            counts.archives += 1;
            counts.parts += u64::from(archive.parts_remote);
        }
    }
    for (_, object) in tables.objects.all(txn)? {
        if object.stored {
            counts.objects += 1;
            counts.bytes += object.stored_length;
        }
    }
    Ok(counts)
}

/// Reads the new place's `config`: ours, none, or another repository's.
pub(crate) fn look_at(new: &RemoteSettings, config: &[u8]) -> Result<Destination, ChangeError> {
    let unreachable = |to: String, reason: String| ChangeError::Unreachable { to, reason };
    let remote = crate::remote::open(new, &check_options())
        .map_err(|err| ChangeError::Invalid(err.message))?;
    match remote.get_at_most(repo::CONFIG_KEY, repo::MAX_CONFIG_BYTES) {
        Ok(found) if found == config => Ok(Destination::SameRepository),
        Ok(_) => Err(ChangeError::OtherRepository {
            to: remote.describe(),
        }),
        Err(err) if err.kind == ErrorKind::NotFound => Ok(Destination::Empty),
        Err(err) => Err(unreachable(remote.describe(), err.message)),
    }
}
