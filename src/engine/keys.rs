//! The appliance's repository keys and the remote generation, kept in the
//! `settings` table (the remote settings are in `settings::remote`).
//!
//! The master key is drawn once, at setup, and stored only here (hex, key
//! `repo_master_key`); it leaves the appliance only wrapped, inside the
//! `RepoConfig` (key `repo_config`) that is written to `<prefix>/config`.

use heed::{RoTxn, RwTxn};

use crate::remote::RemoteSettings;
use crate::repo::{self, KdfParams, RepoConfig, RepoError, RepoKeys};
use crate::store::{Store, StoreError, Tables};

const MASTER_KEY: &[u8] = b"repo_master_key";
const CONFIG_KEY: &[u8] = b"repo_config";
/// Bumped whenever the place the parts are on changes (a remote move starts
/// or ends), in the same transaction. A job that wrote to or read from a
/// remote checks it before committing what it did there.
const GENERATION_KEY: &[u8] = b"remote_generation";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "The stored encryption key is damaged; restore the appliance from its recovery passphrase."
    )]
    Damaged,
}

/// A recovery passphrase of 24 base32 characters in groups of four
/// (120 random bits), e.g. `K7QD-M2XA-...`.
pub fn generate_passphrase() -> Result<String, RepoError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: [u8; 15] = repo::random_bytes()?;
    let mut bits: u128 = 0;
    for byte in bytes {
        bits = (bits << 8) | u128::from(byte);
    }
    let chars: Vec<char> = (0..24)
        .map(|i| ALPHABET[((bits >> (115 - 5 * i)) & 31) as usize] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

const PASSPHRASE_CHECK_KEY: &[u8] = b"recovery_passphrase_check";

/// How the recovery passphrase was checked when the keys were made, for the
/// account and dashboard pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseCheck {
    /// Chosen on the setup page and entered twice.
    EnteredTwice,
    /// Generated, and its end typed back on the setup page.
    TypedBack,
    /// Generated and shown once, not typed back (yet).
    NotTypedBack,
    /// Given once through the API.
    GivenOnce,
    /// Generated and shown once; the admin said they stored it elsewhere
    /// (a password manager, paper) instead of typing it back.
    StoredElsewhere,
}

impl PassphraseCheck {
    fn as_str(self) -> &'static str {
        match self {
            PassphraseCheck::EnteredTwice => "entered_twice",
            PassphraseCheck::TypedBack => "typed_back",
            PassphraseCheck::NotTypedBack => "not_typed_back",
            PassphraseCheck::GivenOnce => "given_once",
            PassphraseCheck::StoredElsewhere => "stored_elsewhere",
        }
    }

    fn parse(text: &str) -> Option<PassphraseCheck> {
        [
            PassphraseCheck::EnteredTwice,
            PassphraseCheck::TypedBack,
            PassphraseCheck::NotTypedBack,
            PassphraseCheck::GivenOnce,
            PassphraseCheck::StoredElsewhere,
        ]
        .into_iter()
        .find(|check| check.as_str() == text)
    }
}

/// Records how the recovery passphrase was checked.
pub fn set_passphrase_check(store: &Store, check: PassphraseCheck) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        tables.settings.put(
            txn,
            PASSPHRASE_CHECK_KEY,
            &serde_json::json!(check.as_str()),
        )
    })
}

/// How the recovery passphrase was checked; `None` when not recorded
/// (keys made before this was kept, or restored from a bucket).
pub fn passphrase_check(store: &Store) -> Result<Option<PassphraseCheck>, StoreError> {
    let txn = store.read()?;
    Ok(store
        .tables
        .settings
        .get(&txn, PASSPHRASE_CHECK_KEY)?
        .and_then(|value| value.as_str().and_then(PassphraseCheck::parse)))
}

/// Whether the admin still has to confirm the passphrase (generated,
/// shown once, neither typed back nor said to be stored elsewhere).
pub fn passphrase_unconfirmed(store: &Store) -> Result<bool, StoreError> {
    Ok(passphrase_check(store)? == Some(PassphraseCheck::NotTypedBack))
}

/// Whether `passphrase` unwraps the master key (Argon2id: about a second
/// on a Pi). `Ok(false)` when it does not, or when there are no keys.
pub fn passphrase_opens(store: &Store, passphrase: &str) -> Result<bool, KeyError> {
    let Some((_, config)) = load(store)? else {
        return Ok(false);
    };
    let config = RepoConfig::decode(&config).map_err(|_| KeyError::Damaged)?;
    Ok(config.master_key(passphrase.trim()).is_ok())
}

/// Whether the keys exist already.
pub fn exist(store: &Store) -> Result<bool, StoreError> {
    let txn = store.read()?;
    Ok(store.tables.settings.get(&txn, MASTER_KEY)?.is_some())
}

/// Creates the master key and the config wrapping it under `passphrase`.
/// Does nothing if they exist. Runs Argon2id once (about a second on a Pi).
pub fn create(store: &Store, passphrase: &str) -> Result<(), KeyError> {
    if exist(store)? {
        return Ok(());
    }
    let master_key: [u8; 32] = repo::random_bytes()?;
    let config = RepoConfig::create(
        passphrase,
        master_key,
        repo::random_bytes()?,
        repo::random_bytes()?,
        KdfParams::DEFAULT,
    )?;
    let encoded = String::from_utf8(config.encode()).map_err(|_| KeyError::Damaged)?;
    store.write(|txn, tables| -> Result<(), KeyError> {
        if tables.settings.get(txn, MASTER_KEY)?.is_none() {
            tables
                .settings
                .put(txn, MASTER_KEY, &serde_json::json!(hex::encode(master_key)))?;
            tables
                .settings
                .put(txn, CONFIG_KEY, &serde_json::json!(encoded))?;
            // The bucket gets the users and settings as soon as it can be written.
            super::jobs::enqueue_catalog_upload(txn, tables)?;
        }
        Ok(())
    })
}

/// Stores what a recovery read from the bucket, in the caller's write
/// transaction: the unwrapped master key, the bucket's config as it is
/// there (so it is never rewritten) and the remote settings that reach it.
pub fn put_recovered(
    txn: &mut RwTxn,
    tables: &Tables,
    master_key: &[u8; 32],
    encoded_config: &str,
    remote: &RemoteSettings,
) -> Result<(), StoreError> {
    tables
        .settings
        .put(txn, MASTER_KEY, &serde_json::json!(hex::encode(master_key)))?;
    tables
        .settings
        .put(txn, CONFIG_KEY, &serde_json::json!(encoded_config))?;
    crate::settings::remote::put_remote_settings(txn, tables, remote)
}

/// The repository keys and the encoded config, once setup created them.
pub fn load(store: &Store) -> Result<Option<(RepoKeys, Vec<u8>)>, KeyError> {
    let txn = store.read()?;
    let Some(master) = store.tables.settings.get(&txn, MASTER_KEY)? else {
        return Ok(None);
    };
    let config = store
        .tables
        .settings
        .get(&txn, CONFIG_KEY)?
        .ok_or(KeyError::Damaged)?;
    let master: [u8; 32] = master
        .as_str()
        .and_then(|text| hex::decode(text).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(KeyError::Damaged)?;
    let config = config
        .as_str()
        .ok_or(KeyError::Damaged)?
        .as_bytes()
        .to_vec();
    Ok(Some((RepoKeys::from_master_key(&master), config)))
}

/// The remote generation (see `GENERATION_KEY`); 0 until the first move.
pub fn generation(txn: &RoTxn, tables: &Tables) -> Result<u64, StoreError> {
    Ok(tables
        .settings
        .get(txn, GENERATION_KEY)?
        .and_then(|value| value.as_u64())
        .unwrap_or(0))
}

/// Moves the remote generation on by one; returns the new one.
pub fn bump_generation(txn: &mut RwTxn, tables: &Tables) -> Result<u64, StoreError> {
    let next = generation(txn, tables)? + 1;
    tables
        .settings
        .put(txn, GENERATION_KEY, &serde_json::json!(next))?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrases_are_grouped_base32() {
        let a = generate_passphrase().unwrap();
        let b = generate_passphrase().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 29);
        assert!(a.split('-').all(|g| g.len() == 4
            && g.chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))));
    }
}
