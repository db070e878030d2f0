//! Remote object storage: the `Remote` trait, its settings and its errors.
//!
//! Owns the boundary between piarchive and the place backups go: an
//! S3-compatible bucket (`s3`) or a local folder such as a NAS mount (`dir`).
//! A remote stores opaque bytes under keys relative to its configured prefix;
//! it knows nothing of archives, parts, encryption or the job queue (that is
//! `repo` and `engine`), and it never touches LMDB.
//!
//! Errors carry a kind the engine acts on (retry later, give up, or "not
//! there") and a sentence a user can act on.

pub mod as_of;
pub mod caps;
pub mod dir;
pub mod lock;
pub mod s3;

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lock::{LockMode, ObjectLock};

/// Object storage that backups are written to and read back from.
///
/// Keys are `/`-separated and relative to the configured prefix, e.g.
/// `parts/ab/ab12...` or `manifests/<archive id>`.
pub trait Remote: Send + Sync {
    /// Stores `body` under `key` (relative to the configured prefix). One request; overwrites.
    fn put(&self, key: &str, body: &[u8]) -> Result<(), RemoteError>;
    /// Like `put`, with the body's SHA-256 (lowercase hex) that the caller
    /// already computed. S3 signs it as `x-amz-content-sha256`, so the server
    /// checks the body end to end without hashing it twice here.
    fn put_hashed(&self, key: &str, body: &[u8], sha256_hex: &str) -> Result<(), RemoteError> {
        let _ = sha256_hex;
        self.put(key, body)
    }
    /// Reads the whole object; `NotFound` if it is missing. At most
    /// [`caps::MAX_OBJECT_BYTES`]: more is refused (`Permanent`), not read.
    fn get(&self, key: &str) -> Result<Vec<u8>, RemoteError> {
        self.get_at_most(key, caps::MAX_OBJECT_BYTES)
    }
    /// [`Remote::get`] of an object that may hold at most `max_len` bytes
    /// (a config, a catalog, a manifest: each has its own limit): a longer
    /// one is refused with a sentence before it is read whole.
    fn get_at_most(&self, key: &str, max_len: u64) -> Result<Vec<u8>, RemoteError>;
    /// Reads the object as it arrives: `read_body` gets the body and its
    /// length and must read exactly that many bytes. A body that breaks off
    /// is retried like a failed request, calling `read_body` again from the
    /// first byte. To give up instead (the bytes are wrong, a local write
    /// failed), `read_body` returns [`stop_reading`]'s error; the call then
    /// fails permanently and the caller knows why.
    fn get_with(&self, key: &str, read_body: BodyReader<'_>) -> Result<(), RemoteError> {
        let bytes = self.get(key)?;
        body_read(read_body(&mut &bytes[..], bytes.len() as u64), |error| {
            RemoteError::transient(format!(
                "Reading {key:?} failed ({error}): piarchive will try again."
            ))
        })
    }
    /// The object's length, or `None` if it is missing.
    fn head(&self, key: &str) -> Result<Option<u64>, RemoteError>;
    /// Removes the object; a missing object is not an error.
    fn delete(&self, key: &str) -> Result<(), RemoteError>;
    /// Every key starting with `prefix`, relative to the configured prefix,
    /// sorted, across all pages.
    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError>;
    /// Where the data goes, for people: `s3://bucket/prefix at endpoint` or `folder /path`.
    fn describe(&self) -> String;
    /// Whether `put_hashed` has the server check the body against the
    /// hash (S3 does); otherwise a caller that must know reads it back.
    fn checks_payload(&self) -> bool {
        false
    }
    /// With Object Lock on: the earliest retain-until date (Unix seconds)
    /// an object written from now on gets. `None` when nothing is locked.
    fn lock_until(&self) -> Option<i64> {
        None
    }
    /// With Object Lock on: moves the retention of `key` (every version
    /// still locked is not needed: the current one) to `until`. Does
    /// nothing on a remote without Object Lock.
    fn extend_lock(&self, key: &str, until: i64) -> Result<(), RemoteError> {
        let _ = (key, until);
        Ok(())
    }
}

/// The function [`Remote::get_with`] hands a body to, with its length.
pub type BodyReader<'a> = &'a mut dyn FnMut(&mut dyn Read, u64) -> io::Result<()>;

/// Why a [`BodyReader`] gave up on purpose.
#[derive(Debug)]
struct StopReading;

impl std::fmt::Display for StopReading {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("reading was stopped by the caller")
    }
}

impl std::error::Error for StopReading {}

/// The error a [`BodyReader`] returns to stop without a retry.
pub fn stop_reading() -> io::Error {
    io::Error::other(StopReading)
}

/// What a [`BodyReader`]'s result means for [`Remote::get_with`]: a stop
/// (see [`stop_reading`]) fails permanently, any other error as `other`
/// says (a broken-off body is transient).
pub(crate) fn body_read(
    read: io::Result<()>,
    other: impl FnOnce(io::Error) -> RemoteError,
) -> Result<(), RemoteError> {
    match read {
        Ok(()) => Ok(()),
        Err(error)
            if error
                .get_ref()
                .is_some_and(|inner| inner.is::<StopReading>()) =>
        {
            Err(RemoteError::permanent(
                "Reading the object was stopped by piarchive.",
            ))
        }
        Err(error) => Err(other(error)),
    }
}

/// What the caller should do about a failed remote operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying later: network trouble, server busy or failing.
    Transient,
    /// Retrying will not help until someone changes the settings or the bucket.
    Permanent,
    /// The object does not exist.
    NotFound,
    /// The storage refused to delete: the object is still under Object
    /// Lock, or the key may not delete. Try again much later; nothing else
    /// needs to wait for it.
    Refused,
}

/// A failed remote operation: its kind and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub kind: ErrorKind,
    /// A whole sentence saying what went wrong and, where possible, what to do.
    pub message: String,
}

impl RemoteError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Refused,
            message: message.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

/// Where backups go, as stored in the settings table and shown in the API
/// (`docs/API.md`, "Remote settings").
///
/// `Debug` hides the secret; use [`RemoteSettings::redacted`] for anything
/// sent back to a browser.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RemoteSettings {
    S3 {
        /// `https://s3.eu-west-1.amazonaws.com`, `http://nas.local:9000`, ...
        endpoint: String,
        region: String,
        bucket: String,
        /// Folder inside the bucket; may be empty. Slashes at either end are ignored.
        #[serde(default)]
        prefix: String,
        /// `true`: `endpoint/bucket/key` (MinIO, Garage); `false`: `bucket.endpoint/key`.
        #[serde(default)]
        path_style: bool,
        access_key_id: String,
        /// Empty when the settings came from a form that left the secret out;
        /// see [`RemoteSettings::keep_secret_from`].
        #[serde(default)]
        secret_access_key: String,
        /// S3 Object Lock: every object is written with this retention and
        /// kept locked while in use. `None`: no lock.
        #[serde(default)]
        object_lock: Option<ObjectLock>,
    },
    Dir {
        path: PathBuf,
    },
}

impl RemoteSettings {
    /// The JSON shape of the settings without `secret_access_key`, for `GET`
    /// responses and logs.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(object) = value.as_object_mut() {
            object.remove("secret_access_key");
        }
        value
    }

    /// When an admin saves S3 settings without re-typing the secret (it is
    /// never echoed back), keeps the secret of `previous` for the same key id.
    pub fn keep_secret_from(mut self, previous: &RemoteSettings) -> RemoteSettings {
        if let (
            RemoteSettings::S3 {
                access_key_id,
                secret_access_key,
                ..
            },
            RemoteSettings::S3 {
                access_key_id: previous_key_id,
                secret_access_key: previous_secret,
                ..
            },
        ) = (&mut self, previous)
        {
            if secret_access_key.is_empty() && access_key_id == previous_key_id {
                secret_access_key.clone_from(previous_secret);
            }
        }
        self
    }
}

impl RemoteSettings {
    /// Whether this is a folder remote inside `dir` (e.g. the default
    /// `<data>/remote`): the backups then share a disk with the originals.
    pub fn is_on_disk_under(&self, dir: &std::path::Path) -> bool {
        matches!(self, RemoteSettings::Dir { path } if path.starts_with(dir))
    }
}

impl std::fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteSettings({})", self.redacted())
    }
}

/// How hard a remote tries before it reports a transient error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOptions {
    /// Longest wait for a connection or for any progress reading or writing.
    pub timeout: Duration,
    /// Requests per operation, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles with each further attempt (capped at 30 s), with jitter.
    pub base_backoff: Duration,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_attempts: 8,
            base_backoff: Duration::from_millis(500),
        }
    }
}

/// Opens the remote the settings describe. Does not contact it: settings
/// that cannot work (empty bucket, malformed endpoint) fail here as
/// `Permanent`; everything else shows on the first request.
pub fn open(
    settings: &RemoteSettings,
    options: &TransferOptions,
) -> Result<Box<dyn Remote>, RemoteError> {
    match settings {
        RemoteSettings::S3 { .. } => Ok(Box::new(s3::S3Client::new(settings, options)?)),
        RemoteSettings::Dir { path } => Ok(Box::new(dir::DirRemote::new(path)?)),
    }
}

/// When the settings ask for Object Lock, checks that the bucket has it
/// on (GetObjectLockConfiguration): a bucket without it would take the
/// lock headers of every upload and refuse them. A `Permanent` error with
/// a sentence when it does not; `Transient` when it could not be asked.
pub fn check_lock_support(
    settings: &RemoteSettings,
    options: &TransferOptions,
) -> Result<(), RemoteError> {
    if !matches!(
        settings,
        RemoteSettings::S3 {
            object_lock: Some(_),
            ..
        }
    ) {
        return Ok(());
    }
    let client = s3::S3Client::new(settings, options)?;
    if client.object_lock_enabled()? {
        return Ok(());
    }
    Err(RemoteError::permanent(format!(
        "The bucket {} does not have Object Lock turned on, so its objects could not be \
         locked. Object Lock can only be chosen when a bucket is created: create a new bucket \
         with Object Lock, or save these settings without it.",
        client.describe()
    )))
}

/// Name of the object [`check`] writes and removes.
pub const CHECK_KEY: &str = "piarchive-check";

/// A live check of a remote for the settings page: writes a small object,
/// reads it back, compares, lists it and deletes it.
pub fn check(remote: &dyn Remote) -> Result<(), RemoteError> {
    let body = b"piarchive remote check\n";
    remote.put(CHECK_KEY, body)?;
    let read_back = remote.get(CHECK_KEY)?;
    if read_back != body {
        return Err(RemoteError::permanent(format!(
            "{} returned different bytes than were written: the storage is not reliable.",
            remote.describe()
        )));
    }
    if !remote.list(CHECK_KEY)?.iter().any(|key| key == CHECK_KEY) {
        return Err(RemoteError::permanent(format!(
            "{} stored an object but does not list it: the storage does not behave like S3.",
            remote.describe()
        )));
    }
    match remote.delete(CHECK_KEY) {
        // Locked (Object Lock) or a key without delete rights: both are
        // fine for backups; the small object stays until its lock ends.
        Err(error) if error.kind == ErrorKind::Refused => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_settings() -> RemoteSettings {
        RemoteSettings::S3 {
            endpoint: "https://s3.eu-west-1.amazonaws.com".to_owned(),
            region: "eu-west-1".to_owned(),
            bucket: "family-backup".to_owned(),
            prefix: "piarchive".to_owned(),
            path_style: false,
            access_key_id: "AKIA1234".to_owned(),
            secret_access_key: "very-secret".to_owned(),
            object_lock: None,
        }
    }

    #[test]
    fn settings_json_matches_the_api_shape() {
        let s3_json = serde_json::json!({
            "kind": "s3", "endpoint": "https://s3.eu-west-1.amazonaws.com", "region": "eu-west-1",
            "bucket": "family-backup", "prefix": "piarchive", "path_style": false,
            "access_key_id": "AKIA1234", "secret_access_key": "very-secret",
            "object_lock": null
        });
        let parsed: RemoteSettings = serde_json::from_value(s3_json.clone()).unwrap();
        assert_eq!(parsed, s3_settings());
        assert_eq!(serde_json::to_value(&parsed).unwrap(), s3_json);

        let dir_json = serde_json::json!({"kind": "dir", "path": "/mnt/nas/piarchive"});
        let parsed: RemoteSettings = serde_json::from_value(dir_json.clone()).unwrap();
        assert_eq!(
            parsed,
            RemoteSettings::Dir {
                path: PathBuf::from("/mnt/nas/piarchive")
            }
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), dir_json);
    }

    #[test]
    fn redacted_and_debug_leave_the_secret_out() {
        let settings = s3_settings();
        let redacted = settings.redacted();
        assert!(redacted.get("secret_access_key").is_none());
        assert_eq!(redacted["access_key_id"], "AKIA1234");
        assert_eq!(redacted["kind"], "s3");
        assert!(!format!("{settings:?}").contains("very-secret"));
    }

    #[test]
    fn a_form_without_the_secret_keeps_the_stored_one() {
        let form: RemoteSettings = serde_json::from_value(serde_json::json!({
            "kind": "s3", "endpoint": "https://s3.eu-west-1.amazonaws.com", "region": "eu-west-1",
            "bucket": "family-backup", "prefix": "piarchive", "path_style": false,
            "access_key_id": "AKIA1234"
        }))
        .unwrap();
        assert_eq!(form.clone().keep_secret_from(&s3_settings()), s3_settings());

        let mut other_key = form.clone();
        if let RemoteSettings::S3 { access_key_id, .. } = &mut other_key {
            *access_key_id = "AKIA9999".to_owned();
        }
        let kept = other_key.clone().keep_secret_from(&s3_settings());
        assert_eq!(
            kept, other_key,
            "a new key id must not inherit the old secret"
        );
    }
}
