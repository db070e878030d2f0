//! The appliance catalog stored at `catalog/appliance`: the users (with their
//! Argon2id password hashes, so everyone logs in as before) and the
//! run-time settings, sealed with the repository's catalog key.
//!
//! Owns the catalog's wire format (`CatalogV1`, versioned like the other
//! remote objects). Sealing and opening are pure (the nonce is handed in);
//! the upload job builds it from the store. Not in the catalog: sessions, API tokens,
//! the remote settings (whoever reads the catalog already has them) and the
//! keys (the bucket's `config` holds the wrapped master key).

use serde::{Deserialize, Serialize};

use crate::repo::{RepoError, RepoKeys, NONCE_LEN};
use crate::settings::Settings;
use crate::store::records::{Role, UserRecord};

/// The catalog object's label: its key is `catalog/appliance`.
pub const CATALOG_LABEL: &str = "appliance";
/// The catalog format this build writes and reads.
pub const CATALOG_FORMAT_VERSION: u32 = 1;

/// What a new appliance needs, besides the archives, to work as before.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Every user, ordered by creation.
    pub users: Vec<UserRecord>,
    pub settings: Settings,
}

impl Catalog {
    /// JSON sealed with the catalog key under [`CATALOG_LABEL`].
    pub fn seal(&self, keys: &RepoKeys, nonce: [u8; NONCE_LEN]) -> Result<Vec<u8>, RepoError> {
        let wire = CatalogV1 {
            format_version: CATALOG_FORMAT_VERSION,
            users: self
                .users
                .iter()
                .map(|user| UserV1 {
                    id: user.id.clone(),
                    username: user.username.clone(),
                    password_hash: user.password_hash.clone(),
                    role: user.role.as_str().to_string(),
                    created_at: user.created_at,
                    disabled: user.disabled,
                    quota_bytes: user.quota_bytes,
                })
                .collect(),
            settings: serde_json::to_value(&self.settings).unwrap_or(serde_json::Value::Null),
        };
        // Strings, integers and booleans only: serializing cannot fail.
        let json = serde_json::to_vec(&wire).expect("catalog serializes");
        keys.seal_blob(CATALOG_LABEL, nonce, &json)
    }

    /// Opens and checks the catalog fetched from `catalog/appliance`.
    /// Settings this build cannot read fall back to the defaults.
    pub fn open(keys: &RepoKeys, bytes: &[u8]) -> Result<Catalog, RepoError> {
        let json = keys.open_blob(CATALOG_LABEL, bytes)?;
        let damaged = |reason: String| RepoError::Corrupt {
            name: crate::repo::catalog_key(CATALOG_LABEL),
            reason,
        };
        let probe: VersionProbe = serde_json::from_slice(&json)
            .map_err(|error| damaged(format!("its content is not a catalog: {error}")))?;
        if probe.format_version > CATALOG_FORMAT_VERSION {
            return Err(RepoError::NewerFormat {
                found: probe.format_version,
            });
        }
        if probe.format_version != CATALOG_FORMAT_VERSION {
            return Err(damaged(format!(
                "catalog format version {} does not exist",
                probe.format_version
            )));
        }
        let wire: CatalogV1 = serde_json::from_slice(&json)
            .map_err(|error| damaged(format!("its content is not a catalog: {error}")))?;
        let users = wire
            .users
            .into_iter()
            .map(|user| {
                let role = match user.role.as_str() {
                    "admin" => Role::Admin,
                    "member" => Role::Member,
                    other => return Err(damaged(format!("unknown role {other:?}"))),
                };
                if user.id.is_empty() || user.username.trim().is_empty() {
                    return Err(damaged("a user has no id or name".to_string()));
                }
                Ok(UserRecord {
                    id: user.id,
                    username: user.username,
                    password_hash: user.password_hash,
                    role,
                    created_at: user.created_at,
                    disabled: user.disabled,
                    quota_bytes: user.quota_bytes,
                })
            })
            .collect::<Result<Vec<_>, RepoError>>()?;
        let settings = serde_json::from_value(wire.settings).unwrap_or_default();
        Ok(Catalog { users, settings })
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

/// Format version 1 of the catalog. Any change a reader must understand
/// needs a new version.
#[derive(Serialize, Deserialize)]
struct CatalogV1 {
    format_version: u32,
    users: Vec<UserV1>,
    /// The JSON of `GET /api/v1/admin/settings`.
    settings: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct UserV1 {
    id: String,
    username: String,
    /// Argon2id PHC string.
    password_hash: String,
    /// `admin` or `member`.
    role: String,
    created_at: i64,
    disabled: bool,
    /// The admin's storage quota in bytes; absent in catalogs from before
    /// quotas (and when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role, disabled: bool) -> UserRecord {
        UserRecord {
            id: format!("id-{name}"),
            username: name.to_string(),
            password_hash: crate::accounts::hash_password("a password of alice"),
            role,
            created_at: 1_700_000_000,
            disabled,
            quota_bytes: None,
        }
    }

    fn keys(byte: u8) -> RepoKeys {
        RepoKeys::from_master_key(&[byte; 32])
    }

    #[test]
    fn seals_and_opens_users_and_settings() {
        let catalog = Catalog {
            users: vec![
                user("alice", Role::Admin, false),
                user("bob <&> \"quoted\" 🙂", Role::Member, true),
            ],
            settings: Settings {
                registration_open: false,
                transfer_concurrency: 3,
                ..Settings::default()
            },
        };
        let sealed = catalog.seal(&keys(1), [7; NONCE_LEN]).unwrap();
        let opened = Catalog::open(&keys(1), &sealed).unwrap();
        assert_eq!(opened.settings, catalog.settings);
        assert_eq!(opened.users.len(), 2);
        for (a, b) in opened.users.iter().zip(&catalog.users) {
            assert_eq!(
                (&a.id, &a.username, &a.password_hash, a.role, a.disabled),
                (&b.id, &b.username, &b.password_hash, b.role, b.disabled)
            );
        }
        assert!(crate::accounts::verify_password(
            &opened.users[0].password_hash,
            "a password of alice"
        ));
        // No session or token material is in the plaintext.
        let text = String::from_utf8(keys(1).open_blob(CATALOG_LABEL, &sealed).unwrap()).unwrap();
        assert!(
            !text.contains("session") && !text.contains("token"),
            "{text}"
        );
    }

    #[test]
    fn another_key_or_an_altered_byte_is_refused() {
        let catalog = Catalog {
            users: vec![user("alice", Role::Admin, false)],
            settings: Settings::default(),
        };
        let mut sealed = catalog.seal(&keys(1), [7; NONCE_LEN]).unwrap();
        assert!(matches!(
            Catalog::open(&keys(2), &sealed),
            Err(RepoError::Corrupt { .. })
        ));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            Catalog::open(&keys(1), &sealed),
            Err(RepoError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_newer_catalog_format_is_refused_with_a_sentence() {
        let json = br#"{"format_version": 2, "users": [], "settings": {}}"#;
        let sealed = keys(1)
            .seal_blob(CATALOG_LABEL, [1; NONCE_LEN], json)
            .unwrap();
        let err = Catalog::open(&keys(1), &sealed).unwrap_err();
        assert_eq!(err, RepoError::NewerFormat { found: 2 });
        assert!(err.to_string().contains("newer piarchive"), "{err}");
    }
}
