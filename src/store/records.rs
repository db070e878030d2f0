//! Boundary types: the exact shape of every value stored in LMDB.
//!
//! These are a stable on-disk format governed by [`super::SCHEMA_VERSION`]:
//! renaming or removing a field needs a migration. Enums are stored by their
//! snake_case names. Times are Unix seconds (log entries: milliseconds).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    /// As typed at registration; uniqueness is on the case-folded form
    /// (the `usernames` table).
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
    pub disabled: bool,
    /// The most bytes the user may hold (local files, pending uploads and
    /// what only the remote holds; `crate::archive::usage`), set by an
    /// admin; `None`: no quota.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
}

/// Keyed by the SHA-256 of the session token: a stolen database does not
/// yield usable cookies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: String,
    pub expires_at: i64,
    pub csrf_token: String,
    /// When it was opened, Unix milliseconds (0 for sessions from before
    /// this was kept): the oldest ends first past the per-user cap.
    #[serde(default)]
    pub opened_at_ms: i64,
}

/// Keyed by the SHA-256 of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveState {
    Receiving,
    Local,
    Uploading,
    BackedUp,
    Uncached,
    Caching,
    Deleting,
    Damaged,
}

impl ArchiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Receiving => "receiving",
            ArchiveState::Local => "local",
            ArchiveState::Uploading => "uploading",
            ArchiveState::BackedUp => "backed_up",
            ArchiveState::Uncached => "uncached",
            ArchiveState::Caching => "caching",
            ArchiveState::Deleting => "deleting",
            ArchiveState::Damaged => "damaged",
        }
    }

    /// Whether the whole file is on the local disk in this state.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            ArchiveState::Local | ArchiveState::Uploading | ArchiveState::BackedUp
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRecord {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub filename: String,
    pub size: u64,
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    pub created_at: i64,
    pub state: ArchiveState,
    pub last_error: Option<String>,
    pub parts_total: u32,
    pub parts_remote: u32,
    /// Plaintext bytes of the parts counted in `parts_remote`, changed in
    /// the same transactions, so progress never needs the part records.
    #[serde(default)]
    pub bytes_remote: u64,
    /// Last download of the content (or creation), for eviction scripts.
    pub last_accessed_at: i64,
    /// The state a damaged archive was in when verification failed, and
    /// whether the local file is still present.
    #[serde(default)]
    pub local_copy: bool,
    /// Bytes the archive's parts take on the remote (sealed, compressed
    /// where that paid), summed over its parts as they are uploaded. `None`
    /// when not known: archives uploaded before this was kept, or recovered
    /// from a bucket (whose listing gives no sizes).
    #[serde(default)]
    pub stored_size: Option<u64>,
    /// With Object Lock: the earliest retain-until date (Unix seconds) of
    /// the archive's objects (parts and manifest); `None` when not locked
    /// or not known yet (the lock chore fills it in).
    #[serde(default)]
    pub protected_until: Option<i64>,
    /// The folder a folder upload gave the file (`Photos/2024`, cleaned by
    /// `archive::clean_folder_path`), or `None`. Added without a schema bump:
    /// older versions ignore the field, and its absence reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The main destination holds the whole archive (every part and the
    /// manifest) but a copy destination does not yet, so the state stays
    /// `uploading` (`engine::destinations::settle`). Added without a schema
    /// bump: its absence reads as `false`.
    #[serde(default)]
    pub awaiting_copies: bool,
}

/// Keyed by `indexed_key(archive_id, index)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartRecord {
    pub offset: u64,
    pub length: u64,
    /// Hex SHA-256 of the plaintext bytes.
    pub sha256: String,
    /// The remote object holding this part once the engine has named it.
    pub object_id: Option<String>,
    /// Confirmed stored on the current remote.
    pub remote: bool,
    /// Stored on the previous remote and counted in its object's refcount,
    /// but not yet copied to the current one: a remote move is under way
    /// (`engine::remote_move`). Never true together with `remote`.
    #[serde(default)]
    pub to_move: bool,
}

/// A change of remote that copies the repository from the old place to
/// the new one (settings key `remote_move`; see `engine::remote_move`). The
/// current remote is already the new one; `from` stays readable as the
/// source until every part marked `to_move` is on the new remote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteMoveRecord {
    /// The remote settings the parts are copied from.
    pub from: crate::remote::RemoteSettings,
    /// `from` described for people (`folder /data/remote`, `s3://...`).
    pub from_description: String,
    pub started_at: i64,
    /// Parts (and their stored bytes) marked `to_move` when the move began.
    pub parts_total: u64,
    pub bytes_total: u64,
    /// Parts still marked `to_move`; decremented in the transaction that
    /// clears each mark.
    pub parts_left: u64,
    pub bytes_left: u64,
    /// Archives (ids) with a part that could not be read from the old remote
    /// on the last pass and that have no local copy to upload instead.
    #[serde(default)]
    pub stuck_archives: Vec<String>,
    /// Why the last pass could not copy them, as a sentence.
    #[serde(default)]
    pub stuck_reason: Option<String>,
    /// Every part arrived; only releasing the old remote is left.
    #[serde(default)]
    pub finished: bool,
}

/// Keyed by remote object id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// How many parts (across all archives) use this object.
    pub refcount: u64,
    pub stored_length: u64,
    pub ciphertext_sha256: String,
    /// The upload finished and was confirmed.
    pub stored: bool,
    /// With Object Lock: until when (Unix seconds) the object is locked, at
    /// least; `None` when it is not locked or not known.
    #[serde(default)]
    pub retain_until: Option<i64>,
}

/// A resumable (tus) upload in progress. Keyed by upload id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub owner_id: String,
    /// The id the archive will get, fixed at creation so that a crash after
    /// the file is moved into place can still finish the archive.
    pub archive_id: String,
    pub name: String,
    pub filename: String,
    pub length: u64,
    pub created_at: i64,
    /// The last byte landed and the archive exists; the record stays so a
    /// client that missed the final answer still learns the archive id.
    #[serde(default)]
    pub completed: bool,
    /// The folder the archive will carry (`ArchiveRecord::path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub attempts: u32,
    pub not_before: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    /// The job's age in the queue: a number from one counter, given when it
    /// is enqueued (0 until then), so jobs due at the same second run in
    /// the order they were asked for.
    #[serde(default)]
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub at: i64,
    pub ok: bool,
    pub duration_ms: u64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_run: Option<RunSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub script_id: String,
    pub interval_seconds: u64,
    pub next_run_at: i64,
    pub created_at: i64,
    pub last_run: Option<RunSummary>,
}

/// Keyed by big-endian milliseconds + a sequence number, so the table is in
/// time order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    pub time_ms: i64,
    pub level: String,
    pub source: String,
    pub message: String,
    pub user_id: Option<String>,
    pub archive_id: Option<String>,
}

/// An archive in the trash (schema 3; table `archive_trash`, keyed by
/// archive id). The archive record itself is unchanged and keeps the state
/// it had, so a restore only removes this record; the engine's jobs go on
/// as before (uploads may finish, a backed-up archive may be uncached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashRecord {
    pub trashed_at: i64,
    /// The trash chore deletes the archive for good at or after this time.
    pub purge_at: i64,
}

/// One notice waiting to be delivered through one channel (table
/// `notices`, keyed by the channel's key, `/`, and the notice's sequence
/// number big-endian, so each channel's notices sort in the order they
/// happened). Removed once delivered or given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    /// Increases with every notice made (`meta` key `notify_seq`).
    pub seq: u64,
    /// `remote_unreachable`, `archive_damaged`, ... (API.md).
    pub event: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub title: String,
    /// A sentence a family understands.
    pub message: String,
    /// The technical detail (an error sentence, an archive id).
    pub detail: String,
    /// When the problem started or ended (Unix seconds).
    pub at: i64,
    pub resolved: bool,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not tried again before this (Unix seconds).
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A copy destination: a further, whole repository kept in step with the
/// main remote (table `destinations`, keyed by its id, `d_` + random). The
/// main destination is the remote settings and has no record here.
///
/// The destination tables (`destinations`, `copies`, `copy_parts`,
/// `copy_objects`, `copy_deletes`) were added without a schema bump: they
/// are created empty on open, an older build never opens them (and so
/// ignores the copies, which it never knew), and every record's absence
/// means "no copy destination".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DestinationRecord {
    pub id: String,
    /// What people call it ("grandpa's NAS").
    pub name: String,
    pub settings: crate::remote::RemoteSettings,
    pub added_at: i64,
    /// The catalog version (`meta` key `catalog_version`) last written
    /// there; behind the counter: the catalog is written again.
    #[serde(default)]
    pub catalog_version: u64,
    /// With Object Lock there: until when its `config` and catalog are
    /// locked (the lock chore extends them).
    #[serde(default)]
    pub lock_repo_until: Option<i64>,
}

/// One archive that must be on one copy destination (table `copies`,
/// keyed `"{dest_id}/{archive_id}"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CopyRecord {
    /// Parts stored there (a `copy_parts` record each).
    pub parts_stored: u32,
    /// Plaintext bytes of those parts.
    pub bytes_stored: u64,
    /// Bytes those parts take there (sealed).
    pub stored_size: u64,
    /// Every part and the manifest are stored there.
    pub complete: bool,
    /// Why the last attempt for this archive there failed, as a sentence.
    pub last_error: Option<String>,
    /// With Object Lock there: the earliest retain-until of its objects.
    pub protected_until: Option<i64>,
}

/// Part `index` of an archive is stored on a copy destination and counted
/// in that destination's refcount of `object_id` (table `copy_parts`,
/// keyed `indexed_key("{dest_id}/{archive_id}", index)`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CopyPartRecord {
    pub object_id: String,
}

/// An object stored on a copy destination (table `copy_objects`, keyed
/// `"{dest_id}/{object_id}"`): present = stored there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CopyObjectRecord {
    /// `copy_parts` records pointing at it.
    pub refcount: u64,
    pub stored_length: u64,
    /// With Object Lock there: until when it is locked, at least.
    pub retain_until: Option<i64>,
}

/// Something to delete on a copy destination (table `copy_deletes`, keyed
/// `"{dest_id}/o/{object_id}"` for a part object or `"{dest_id}/m/{archive_id}"`
/// for a manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CopyDeleteRecord {
    /// Not tried again before this (Unix seconds).
    pub not_before: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
}
