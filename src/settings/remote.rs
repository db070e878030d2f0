//! The remote settings (settings key `remote`): where the backups go, as an
//! admin saved them, or the folder `<data>/remote` until then.

use std::path::Path;

use heed::{RoTxn, RwTxn};

use crate::remote::RemoteSettings;
use crate::store::{Store, StoreError, Tables};

const REMOTE_KEY: &[u8] = b"remote";

/// The remote settings: what an admin saved, or the folder `<data>/remote`.
pub fn remote_settings(store: &Store, data_dir: &Path) -> Result<RemoteSettings, StoreError> {
    let txn = store.read()?;
    remote_settings_in(&txn, &store.tables, data_dir)
}

/// The remote settings inside a transaction (see [`remote_settings`]).
pub fn remote_settings_in(
    txn: &RoTxn,
    tables: &Tables,
    data_dir: &Path,
) -> Result<RemoteSettings, StoreError> {
    Ok(tables
        .settings
        .get(txn, REMOTE_KEY)?
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_else(|| default_remote(data_dir)))
}

/// Writes the remote settings in the caller's transaction.
pub fn put_remote_settings(
    txn: &mut RwTxn,
    tables: &Tables,
    settings: &RemoteSettings,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(settings).unwrap_or(serde_json::Value::Null);
    tables.settings.put(txn, REMOTE_KEY, &value)
}

/// `RemoteSettings::Dir { path: <data>/remote }`.
pub fn default_remote(data_dir: &Path) -> RemoteSettings {
    RemoteSettings::Dir {
        path: data_dir.join("remote"),
    }
}

/// Saves new remote settings for the same storage (keeping the stored
/// secret when the form left it out) and makes every waiting job due now,
/// in one transaction. A change of storage goes through
/// `engine::remote_move::change` instead, which calls this only when
/// nothing has to be copied.
pub fn save_remote_settings(
    store: &Store,
    data_dir: &Path,
    settings: RemoteSettings,
) -> Result<RemoteSettings, StoreError> {
    let previous = remote_settings(store, data_dir)?;
    let settings = settings.keep_secret_from(&previous);
    store.write(|txn, tables| -> Result<(), StoreError> {
        put_remote_settings(txn, tables, &settings)?;
        crate::store::jobs::unpark_all(txn, tables)?;
        // A new bucket needs the users and settings too.
        crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
        Ok(())
    })?;
    Ok(settings)
}
