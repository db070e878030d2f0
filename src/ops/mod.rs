//! The operations: each thing a user or admin can do, written once. An
//! operation does the domain call, writes the system-log line, announces
//! the change on the event feed and wakes the engine; the JSON API, the
//! form posts and the admin scripts are thin adapters over it, so the same
//! act writes the same sentence whichever way it came.
//!
//! - [`archives`]: upload finished, rename, discard an upload,
//!   uncache, cache, verify, retry failed transfers.
//! - [`trash`]: delete to the trash, restore, delete for good, the purge
//!   of what is due.
//! - [`accounts`]: setup, login, users (create, change, new password),
//!   registration open or closed.
//! - [`settings`]: the appliance settings, the log settings.
//! - [`remote`]: where the backups go (save, plan, live check).
//! - [`destinations`]: further destinations (list, plan, add, remove).
//! - [`tls`]: the HTTPS certificate and the HTTPS/name settings.
//! - [`notifications`]: the notification channels (save, send a test).
//! - [`scripts`]: saved scripts; [`deployments`]: scripts run on a
//!   schedule; [`script_host`]: what a running script sees of the
//!   appliance (the one `ScriptHost`).
//! - [`tokens`]: a user's API tokens.
//! - [`updates`]: installing a firmware update.
//!
//! Must not touch: HTTP (no status codes, no pages). Errors are the domain
//! layers' own, gathered in [`Error`]; `web` turns them into answers.

pub mod accounts;
pub mod archives;
pub mod deployments;
pub mod destinations;
pub mod notifications;
pub mod remote;
pub mod safety;
pub mod script_host;
pub mod scripts;
pub mod settings;
pub mod tls;
pub mod tokens;
pub mod trash;
pub mod updates;

/// What an operation can fail with: the error of the layer that refused,
/// its sentence unchanged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Scripts(#[from] crate::admin::saved_scripts::ScriptsError),
    #[error(transparent)]
    Log(#[from] crate::admin::log::LogError),
    #[error(transparent)]
    RemoteChange(#[from] crate::engine::remote_move::ChangeError),
    #[error(transparent)]
    Notify(#[from] crate::notify::settings::NotifySettingsError),
    /// Something that is no fault of the request (a key could not be made).
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;
