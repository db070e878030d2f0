//! Appliance settings an admin changes at run time (stored in LMDB, table
//! `settings`), as opposed to the start-up configuration in `config`.

pub mod remote;

use serde::{Deserialize, Serialize};

use heed::{RoTxn, RwTxn};

use crate::store::{Store, StoreError, Tables};

const KEY: &[u8] = b"appliance";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadWindow {
    /// "HH:MM", local time of the appliance.
    pub start: String,
    pub end: String,
}

/// The JSON shape of `GET/PUT /api/v1/admin/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub registration_open: bool,
    /// 0 = unlimited.
    pub upload_bandwidth_bytes_per_sec: u64,
    pub upload_window: Option<UploadWindow>,
    pub transfer_concurrency: u32,
    /// An upload that would leave less free space than this is refused.
    pub free_space_reserve_bytes: u64,
    /// Share of the parts (0 to 100) the scheduled verification and
    /// `verify(id)` download and hash; every part is looked at either way.
    #[serde(default = "default_verify_sample_percent")]
    pub verify_sample_percent: u8,
    /// An unfinished upload no byte was written to for this long is
    /// removed with its bytes.
    #[serde(default = "default_pending_upload_expiry_seconds")]
    pub pending_upload_expiry_seconds: u64,
    /// Plain HTTP answers with a redirect to HTTPS (`/healthz` excepted)
    /// and session cookies are `Secure`.
    #[serde(default)]
    pub require_https: bool,
    /// The name the appliance answers to on the LAN, before `.local`
    /// (mDNS; `-2`, `-3` appended when another device has it).
    #[serde(default = "default_mdns_hostname")]
    pub mdns_hostname: String,
    /// Days a deleted archive stays in the trash before it is deleted for
    /// good; 0 = no trash (a deletion is for good at once).
    #[serde(
        default = "default_trash_days",
        deserialize_with = "trash_days_from_json"
    )]
    pub trash_days: u32,
}

/// The `trash_days` of a new appliance.
pub const DEFAULT_TRASH_DAYS: u32 = 30;
/// The longest an admin may keep deleted archives: ten years.
pub const MAX_TRASH_DAYS: u32 = 3_650;

fn default_trash_days() -> u32 {
    DEFAULT_TRASH_DAYS
}

/// What `trash_days` may be, as the sentence a bad value gets.
const TRASH_DAYS_RULE: &str =
    "trash_days must be between 0 (no trash: deleting is for good at once) and 3650 (ten years)";

/// `trash_days` from JSON: a negative number, a fraction or a string is
/// refused with [`TRASH_DAYS_RULE`] rather than serde's type name.
fn trash_days_from_json<'de, D: serde::Deserializer<'de>>(json: D) -> Result<u32, D::Error> {
    let value = serde_json::Value::deserialize(json)?;
    value
        .as_u64()
        .and_then(|days| u32::try_from(days).ok())
        .ok_or_else(|| serde::de::Error::custom(TRASH_DAYS_RULE))
}

fn default_mdns_hostname() -> String {
    DEFAULT_MDNS_NAME.to_string()
}

/// The `pending_upload_expiry_seconds` of a new appliance: a week.
pub const DEFAULT_PENDING_UPLOAD_EXPIRY_SECONDS: u64 = 7 * 86_400;
/// The shortest expiry an admin may set: an hour, so a phone that lost
/// its connection for a while can still resume.
pub const MIN_PENDING_UPLOAD_EXPIRY_SECONDS: u64 = 3_600;
/// The longest: ten years.
pub const MAX_PENDING_UPLOAD_EXPIRY_SECONDS: u64 = 3_650 * 86_400;

fn default_pending_upload_expiry_seconds() -> u64 {
    DEFAULT_PENDING_UPLOAD_EXPIRY_SECONDS
}

/// The `verify_sample_percent` of a new appliance.
pub const DEFAULT_VERIFY_SAMPLE_PERCENT: u8 = 5;

fn default_verify_sample_percent() -> u8 {
    DEFAULT_VERIFY_SAMPLE_PERCENT
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Closed: only an admin (or an invitation) makes accounts.
            registration_open: false,
            upload_bandwidth_bytes_per_sec: 0,
            upload_window: None,
            transfer_concurrency: 2,
            free_space_reserve_bytes: 512 * 1024 * 1024,
            verify_sample_percent: DEFAULT_VERIFY_SAMPLE_PERCENT,
            pending_upload_expiry_seconds: DEFAULT_PENDING_UPLOAD_EXPIRY_SECONDS,
            require_https: false,
            mdns_hostname: default_mdns_hostname(),
            trash_days: DEFAULT_TRASH_DAYS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Settings {
    pub fn pending_upload_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.pending_upload_expiry_seconds)
    }

    pub fn load(store: &Store) -> Result<Settings, StoreError> {
        let txn = store.read()?;
        Settings::load_in(&txn, &store.tables)
    }

    /// Like [`Settings::load`], in the caller's transaction.
    pub fn load_in(txn: &RoTxn, tables: &Tables) -> Result<Settings, StoreError> {
        Ok(match tables.settings.get(txn, KEY)? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Settings::default(),
        })
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=16).contains(&self.transfer_concurrency) {
            return Err(SettingsError::Invalid(
                "transfer_concurrency must be between 1 and 16.".into(),
            ));
        }
        if self.verify_sample_percent > 100 {
            return Err(SettingsError::Invalid(
                "verify_sample_percent must be between 0 and 100.".into(),
            ));
        }
        let expiry = MIN_PENDING_UPLOAD_EXPIRY_SECONDS..=MAX_PENDING_UPLOAD_EXPIRY_SECONDS;
        if !expiry.contains(&self.pending_upload_expiry_seconds) {
            return Err(SettingsError::Invalid(format!(
                "pending_upload_expiry_seconds must be between {} (an hour) and {} (ten years).",
                expiry.start(),
                expiry.end()
            )));
        }
        if self.trash_days > MAX_TRASH_DAYS {
            return Err(SettingsError::Invalid(format!("{TRASH_DAYS_RULE}.")));
        }
        if !valid_mdns_name(&self.mdns_hostname) {
            return Err(SettingsError::Invalid(
                "mdns_hostname must be 1 to 63 letters, digits or hyphens (not first or last), like piarchive-cellar.".into(),
            ));
        }
        if let Some(window) = &self.upload_window {
            for time in [&window.start, &window.end] {
                if parse_hh_mm(time).is_none() {
                    return Err(SettingsError::Invalid(format!(
                        "The upload window time {time:?} is not of the form HH:MM (00:00 to 23:59)."
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn save(&self, store: &Store) -> Result<(), SettingsError> {
        self.validate()?;
        let value =
            serde_json::to_value(self).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        store.write(|txn, tables| -> Result<(), SettingsError> {
            tables.settings.put(txn, KEY, &value)?;
            crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
            Ok(())
        })
    }

    /// Registration used to be open by default: an appliance set up before
    /// it closed by default, whose admin never saved the settings, keeps it
    /// open (its settings are written once, as they were). A new appliance
    /// writes its settings at setup ([`Settings::save_at_setup`]), so this
    /// never opens registration on one.
    pub fn keep_older_registration_default(store: &Store) -> Result<(), StoreError> {
        store.write(|txn, tables| {
            if tables.settings.get(txn, KEY)?.is_none() && !tables.users.is_empty(txn)? {
                let older = Settings {
                    registration_open: true,
                    ..Settings::default()
                };
                older.put_in(txn, tables)?;
            }
            Ok(())
        })
    }

    /// At setup: writes the settings as they are now (the defaults, with
    /// registration closed) unless some are stored.
    pub fn save_at_setup(store: &Store) -> Result<(), StoreError> {
        store.write(|txn, tables| {
            if tables.settings.get(txn, KEY)?.is_none() {
                Settings::default().put_in(txn, tables)?;
            }
            Ok(())
        })
    }

    /// Writes the settings in the caller's transaction, unchecked and
    /// without a catalog upload (recovery restores what the bucket holds).
    pub fn put_in(&self, txn: &mut RwTxn, tables: &Tables) -> Result<(), StoreError> {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        tables.settings.put(txn, KEY, &value)
    }
}

/// Minutes after midnight of "HH:MM".
pub fn parse_hh_mm(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// The host name (before `.local`) of a new appliance.
pub const DEFAULT_MDNS_NAME: &str = "piarchive";

/// Whether `name` may be a host name label: 1 to 63 letters, digits and
/// inner hyphens (RFC 1123), as `piarchive` or `piarchive-keller`.
pub fn valid_mdns_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_closed_on_new_appliances_and_kept_on_older_ones() {
        let session = std::time::Duration::from_secs(60);
        // New: set up after the change, settings written at setup.
        let new_dir = tempfile::tempdir().unwrap();
        let new = Store::open(new_dir.path(), 16 << 20).unwrap();
        crate::accounts::Accounts::new(new.clone(), session)
            .setup("admin", "long enough")
            .unwrap();
        Settings::save_at_setup(&new).unwrap();
        Settings::keep_older_registration_default(&new).unwrap();
        assert!(!Settings::load(&new).unwrap().registration_open);
        // Older: set up before, settings never saved: stays open.
        let old_dir = tempfile::tempdir().unwrap();
        let old = Store::open(old_dir.path(), 16 << 20).unwrap();
        crate::accounts::Accounts::new(old.clone(), session)
            .setup("admin", "long enough")
            .unwrap();
        Settings::keep_older_registration_default(&old).unwrap();
        assert!(Settings::load(&old).unwrap().registration_open);
        // Not set up yet: nothing written, closed by default.
        let empty_dir = tempfile::tempdir().unwrap();
        let empty = Store::open(empty_dir.path(), 16 << 20).unwrap();
        Settings::keep_older_registration_default(&empty).unwrap();
        assert!(!Settings::load(&empty).unwrap().registration_open);
    }

    #[test]
    fn hh_mm() {
        for (text, expected) in [
            ("00:00", Some(0)),
            ("23:59", Some(1439)),
            ("24:00", None),
            ("7:00", None),
            ("ab:cd", None),
            ("", None),
        ] {
            assert_eq!(parse_hh_mm(text), expected, "{text}");
        }
    }

    #[test]
    fn saves_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        assert_eq!(Settings::load(&store).unwrap(), Settings::default());
        let mut settings = Settings {
            registration_open: false,
            ..Settings::default()
        };
        settings.save(&store).unwrap();
        assert!(!Settings::load(&store).unwrap().registration_open);
        settings.transfer_concurrency = 0;
        assert!(settings.save(&store).is_err());
    }

    #[test]
    fn the_verify_percentage_defaults_and_is_checked() {
        // Settings stored before the field existed keep their values.
        let old: Settings = serde_json::from_value(serde_json::json!({
            "registration_open": false, "upload_bandwidth_bytes_per_sec": 7,
            "upload_window": null, "transfer_concurrency": 3,
            "free_space_reserve_bytes": 0,
        }))
        .unwrap();
        assert_eq!(old.verify_sample_percent, DEFAULT_VERIFY_SAMPLE_PERCENT);
        assert_eq!(
            old.pending_upload_expiry_seconds,
            DEFAULT_PENDING_UPLOAD_EXPIRY_SECONDS
        );
        assert_eq!(old.transfer_concurrency, 3);
        for (percent, valid) in [(0, true), (100, true), (101, false)] {
            let settings = Settings {
                verify_sample_percent: percent,
                ..Settings::default()
            };
            assert_eq!(settings.validate().is_ok(), valid, "{percent}");
        }
    }

    #[test]
    fn trash_days_default_to_thirty_and_are_checked() {
        let old: Settings = serde_json::from_value(serde_json::json!({
            "registration_open": false, "upload_bandwidth_bytes_per_sec": 7,
            "upload_window": null, "transfer_concurrency": 3,
            "free_space_reserve_bytes": 0,
        }))
        .unwrap();
        assert_eq!(old.trash_days, 30);
        for (days, valid) in [(0, true), (1, true), (3_650, true), (3_651, false)] {
            let settings = Settings {
                trash_days: days,
                ..Settings::default()
            };
            let checked = settings.validate();
            assert_eq!(checked.is_ok(), valid, "{days}");
            if let Err(err) = checked {
                assert!(
                    err.to_string().contains("trash_days must be between 0"),
                    "{err}"
                );
            }
        }
    }
}
