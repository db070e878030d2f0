//! The failed logins of the last week, for the admin dashboard: when,
//! the username tried and from which address. The throttle
//! (`accounts::throttle`) forgets after a quarter of an hour and keeps
//! no names; this keeps a bounded list on disk (the `settings` table, key
//! `failed_logins`): at most [`MAX_KEPT`], none older than [`KEPT_FOR_SECS`].
//! Must not touch: HTTP.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

const KEY: &[u8] = b"failed_logins";
/// Failed logins kept at most (the newest).
pub const MAX_KEPT: usize = 200;
/// How long one is kept: a week.
pub const KEPT_FOR_SECS: i64 = 7 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedLogin {
    pub at: i64,
    /// As typed (at most 64 characters kept).
    pub username: String,
    pub address: String,
}

/// Notes a failed login at `at`.
pub fn record(store: &Store, username: &str, address: &str, at: i64) -> Result<(), StoreError> {
    let username: String = username.chars().take(64).collect();
    store.write(|txn, tables| {
        let mut kept = decode(tables.settings.get(txn, KEY)?);
        kept.retain(|failed| failed.at > at - KEPT_FOR_SECS);
        kept.push(FailedLogin {
            at,
            username,
            address: address.to_string(),
        });
        let excess = kept.len().saturating_sub(MAX_KEPT);
        kept.drain(..excess);
        let value = serde_json::to_value(&kept).unwrap_or(serde_json::Value::Null);
        tables.settings.put(txn, KEY, &value)
    })
}

/// The failed logins since `since`, the newest first.
pub fn since(store: &Store, since: i64) -> Result<Vec<FailedLogin>, StoreError> {
    let txn = store.read()?;
    let mut kept = decode(store.tables.settings.get(&txn, KEY)?);
    kept.retain(|failed| failed.at >= since);
    kept.reverse();
    Ok(kept)
}

fn decode(value: Option<serde_json::Value>) -> Vec<FailedLogin> {
    value
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_week() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        record(&store, "old", "10.0.0.1", 0).unwrap();
        for i in 0..(MAX_KEPT as i64 + 5) {
            record(&store, &format!("guess{i}"), "10.0.0.2", KEPT_FOR_SECS + i).unwrap();
        }
        let all = since(&store, 0).unwrap();
        assert_eq!(all.len(), MAX_KEPT);
        assert!(all.iter().all(|failed| failed.username != "old"));
        assert_eq!(all[0].username, format!("guess{}", MAX_KEPT + 4));
        assert_eq!(
            since(&store, KEPT_FOR_SECS + MAX_KEPT as i64 + 4)
                .unwrap()
                .len(),
            1
        );
    }
}
