//! The remote format: what piarchive writes under `<prefix>/` in a bucket, how it
//! is named and how it is encrypted (docs/DESIGN.md "Remote format").
//!
//! Layout under the prefix, every name built here and nowhere else:
//!
//! - `config` ([`CONFIG_KEY`], [`RepoConfig`]): format version, chunker
//!   parameters, Argon2id parameters and salt, and the master key wrapped with
//!   XChaCha20-Poly1305 under the key derived from the recovery passphrase.
//!   Plain JSON, so a new appliance can read it before it has any key.
//! - `parts/<2 hex>/<object id>` ([`part_key`]): one encrypted part, the
//!   object id bound as associated data. Format 3 (`part.rs`): a magic, a
//!   24-byte nonce, then 64 KiB segments each with its own 16-byte tag;
//!   formats 1 and 2 (still read): `24-byte nonce || ciphertext || 16-byte
//!   tag`. The object id is `hex(HMAC-SHA256(id key, plaintext sha256))`
//!   ([`RepoKeys::object_id`]), so names leak no content hash.
//! - `manifests/<archive id>` ([`manifest_key`], [`Manifest`]): the archive record,
//!   JSON encrypted with the manifest key, the archive id bound as associated data.
//! - `catalog/<name>` ([`catalog_key`]): reserved for encrypted catalog objects
//!   (users, settings) sealed with [`RepoKeys::seal_blob`].
//!
//! This module is pure: it performs no I/O, never reads the clock, and never draws
//! randomness. Keys, salts and nonces are handed in as byte arrays by the caller;
//! [`random_bytes`] is the one edge function that draws them from the operating
//! system, and nothing inside this module calls it. It must not touch the store,
//! the remote client or the engine: they call it, never the other way round.
//!
//! Every byte layout and label here is part of a stored format: changing any of
//! them means a new `format_version` and a reader for the old one.

pub mod catalog;
pub mod compress;
mod config;
mod crypto;
mod manifest;
mod part;

pub use config::{
    ChunkerParams, KdfParams, RepoConfig, FORMAT_VERSION, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST,
};
pub use crypto::{ObjectId, RepoKeys, MAX_PART_LEN, NONCE_LEN, PART_OVERHEAD, SALT_LEN, TAG_LEN};
pub use manifest::{Manifest, ManifestPart, MAX_MANIFEST_BYTES, MAX_MANIFEST_PARTS};
pub use part::{max_sealed_len, sealed_len_fits, PartReader};

/// The name of the config object under the prefix.
pub const CONFIG_KEY: &str = "config";
/// The most a `config` object may hold (it is a few hundred bytes of JSON);
/// a larger one is refused before it is read whole.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// The most a catalog object may hold (users and settings, about 1 KB a
/// user); a larger one is refused before it is read whole.
pub const MAX_CATALOG_BYTES: u64 = 16 << 20;
/// The folder holding encrypted parts.
pub const PARTS_PREFIX: &str = "parts/";
/// The folder holding encrypted manifests, one per archive.
pub const MANIFESTS_PREFIX: &str = "manifests/";
/// The folder reserved for encrypted catalog objects (users, settings).
pub const CATALOG_PREFIX: &str = "catalog/";

/// `parts/<first 2 hex of the id>/<object id>`: the fan-out keeps any one
/// listing short on remotes that are directories.
pub fn part_key(object_id: &ObjectId) -> String {
    let id = object_id.as_str();
    format!("{PARTS_PREFIX}{}/{id}", &id[..2])
}

/// `manifests/<archive id>`. The archive id is the store's id, used verbatim.
pub fn manifest_key(archive_id: &str) -> String {
    format!("{MANIFESTS_PREFIX}{archive_id}")
}

/// `catalog/<name>`, for objects sealed with [`RepoKeys::seal_blob`].
pub fn catalog_key(name: &str) -> String {
    format!("{CATALOG_PREFIX}{name}")
}

/// Errors of the remote format. Each message is a sentence a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    #[error("This backup was written by a newer piarchive (format {found}); update this appliance to read it.")]
    NewerFormat { found: u32 },

    #[error("The recovery passphrase does not unlock this backup (or its config object was altered); check the passphrase, which is case-sensitive, and try again.")]
    WrongPassphrase,

    #[error("The backup's config object cannot be used ({reason}); the bucket or prefix may be wrong, or the object is damaged.")]
    BadConfig { reason: String },

    #[error("The remote object {name} is damaged or was not written with this backup's key ({reason}); it cannot be read.")]
    Corrupt { name: String, reason: String },

    #[error("The backup's key-derivation settings are not usable ({reason}); piarchive accepts 1 to 16 lanes, 1 to 12 passes and memory between 8 KiB per lane and 256 MiB, so it did not try to unlock it.")]
    BadKdfParams { reason: String },

    #[error(
        "The manifest of archive {archive_id} is inconsistent ({reason}); it was not written."
    )]
    InvalidManifest { archive_id: String, reason: String },

    #[error("A part of {len} bytes is larger than the {max} bytes a part may hold; the chunker must cut smaller parts.")]
    PartTooLarge { len: usize, max: usize },

    #[error("An object of {len} bytes is too large to encrypt; split it into smaller objects.")]
    TooLarge { len: usize },

    #[error("The object id {value:?} is not 64 lowercase hex digits; the record that holds it is damaged.")]
    BadObjectId { value: String },

    #[error("The system's random number generator failed ({reason}); keys and nonces cannot be made safely, so nothing was written.")]
    Randomness { reason: String },
}

/// Draws `N` bytes from the operating system's random number generator, for
/// keys, salts and nonces. The only impure function of this module: callers
/// (setup, the engine) use it and hand the bytes in.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RepoError> {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| RepoError::Randomness {
            reason: error.to_string(),
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_layout() {
        let id = ObjectId::parse(&"ab".repeat(32)).expect("valid id");
        assert_eq!(part_key(&id), format!("parts/ab/{}", "ab".repeat(32)));
        assert_eq!(manifest_key("0123abcd"), "manifests/0123abcd");
        assert_eq!(catalog_key("users"), "catalog/users");
        assert_eq!(CONFIG_KEY, "config");
    }

    #[test]
    fn random_bytes_differ_between_draws() {
        let a: [u8; 32] = random_bytes().expect("os rng");
        let b: [u8; 32] = random_bytes().expect("os rng");
        assert_ne!(a, b);
    }
}
