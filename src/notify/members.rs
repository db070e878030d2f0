//! Members' own channels: an ntfy topic (optional token) and an e-mail
//! address a user sets on their Account page for notices about their own
//! archives (backed up, damaged, a failed verification). Stored per user
//! in the `settings` table under `notify_member/<user id>`; the token is
//! never shown again. Mail goes through the first e-mail channel the admin
//! set up (its server, login and sender), addressed to the member only.
//!
//! Also the pure part of "backed up" notices ([`newly_backed_up`]): which
//! archives reached an off-site copy since the notifier last looked.
//!
//! Owns: the record, its checks, the channels it makes and their queue
//! keys. Must not touch: the network.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::problems::{ArchiveRef, Notice};
use super::settings::{check_address, check_secret, check_url, Channel, NotifySettings};
use super::settings::{NotifySettingsError, MAX_CHANNELS};
use crate::store::{Store, StoreError};

const PREFIX: &str = "notify_member/";

/// One user's own channels (both optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChannels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntfy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntfy_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

fn key(user_id: &str) -> Vec<u8> {
    format!("{PREFIX}{user_id}").into_bytes()
}

/// The queue key of a member's channel: distinct from an admin channel
/// sending to the same place, so each keeps its own queue.
pub fn member_key(user_id: &str, channel: &Channel) -> String {
    let what = format!("member\n{user_id}\n{}", channel.key());
    hex::encode(&Sha256::digest(what.as_bytes())[..8])
}

impl MemberChannels {
    /// `user_id`'s channels (none set: the default).
    pub fn load(store: &Store, user_id: &str) -> Result<MemberChannels, StoreError> {
        let txn = store.read()?;
        Ok(store
            .tables
            .settings
            .get(&txn, &key(user_id))?
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default())
    }

    /// Every user's channels: `(user id, channels)`.
    pub fn all(store: &Store) -> Result<Vec<(String, MemberChannels)>, StoreError> {
        let txn = store.read()?;
        let rows = store.tables.settings.prefix(&txn, PREFIX.as_bytes())?;
        Ok(rows
            .into_iter()
            .take(MAX_CHANNELS * 64)
            .filter_map(|(key, value)| {
                let user_id = String::from_utf8_lossy(&key[PREFIX.len()..]).into_owned();
                Some((user_id, serde_json::from_value(value).ok()?))
            })
            .collect())
    }

    /// Empty fields become `None`; a token left empty keeps the stored one
    /// while the topic stays the same (the page never shows it).
    pub fn normalized(self, stored: &MemberChannels) -> MemberChannels {
        let some = |value: Option<String>| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let ntfy_url = some(self.ntfy_url);
        let mut ntfy_token = some(self.ntfy_token);
        if ntfy_token.is_none() && ntfy_url.is_some() && ntfy_url == stored.ntfy_url {
            ntfy_token.clone_from(&stored.ntfy_token);
        }
        MemberChannels {
            ntfy_token: ntfy_token.filter(|_| ntfy_url.is_some()),
            ntfy_url,
            email: some(self.email),
        }
    }

    /// A sentence for the first mistake.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.ntfy_url {
            check_url(url, "ntfy topic")?;
        }
        check_secret(self.ntfy_token.as_deref(), "ntfy token")?;
        match &self.email {
            Some(email) => check_address(email, "address"),
            None => Ok(()),
        }
    }

    /// Checks and stores `user_id`'s channels.
    pub fn save(&self, store: &Store, user_id: &str) -> Result<(), NotifySettingsError> {
        self.validate().map_err(NotifySettingsError::Invalid)?;
        let value = serde_json::to_value(self)
            .map_err(|err| NotifySettingsError::Invalid(err.to_string()))?;
        store.write(|txn, tables| -> Result<(), NotifySettingsError> {
            tables.settings.put(txn, &key(user_id), &value)?;
            Ok(())
        })
    }

    /// The channels to send `user_id`'s notices through: `(queue key,
    /// channel)`. The e-mail one exists only while the admin has an e-mail
    /// channel whose server it can use.
    pub fn channels(&self, user_id: &str, admin: &NotifySettings) -> Vec<(String, Channel)> {
        let mut out = Vec::new();
        if let Some(url) = &self.ntfy_url {
            out.push(Channel::Ntfy {
                url: url.clone(),
                token: self.ntfy_token.clone(),
            });
        }
        if let (Some(address), Some(server)) = (&self.email, smtp_server(admin)) {
            let mut mail = server.clone();
            if let Channel::Email { to, .. } = &mut mail {
                *to = vec![address.clone()];
            }
            out.push(mail);
        }
        out.into_iter()
            .map(|channel| (member_key(user_id, &channel), channel))
            .collect()
    }

    /// The public shape: no token, `ntfy_token_set` instead.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "ntfy_url": self.ntfy_url,
            "ntfy_token_set": self.ntfy_token.is_some(),
            "email": self.email,
        })
    }
}

/// The admin's first e-mail channel, whose server members' mail goes
/// through; `None` when the admin set none.
pub fn smtp_server(admin: &NotifySettings) -> Option<&Channel> {
    admin
        .channels
        .iter()
        .find(|channel| matches!(channel, Channel::Email { .. }))
}

/// The archives in `now` with an off-site copy that `known` did not have,
/// as "backed up" notices for their owners, and the set to keep. With no
/// `known` (the first look) nothing is notified.
pub fn newly_backed_up(
    known: Option<&BTreeSet<String>>,
    now: &[ArchiveRef],
    at: i64,
) -> (BTreeSet<String>, Vec<Notice>) {
    let ids: BTreeSet<String> = now.iter().map(|archive| archive.id.clone()).collect();
    let Some(known) = known else {
        return (ids, Vec::new());
    };
    let notices = now
        .iter()
        .filter(|archive| !known.contains(&archive.id))
        .map(|archive| Notice {
            event: "backed_up".into(),
            severity: "info".into(),
            title: "Backed up".into(),
            message: format!(
                "\u{201c}{}\u{201d} is backed up: it has a copy off the box now.",
                archive.name
            ),
            detail: format!("archive {}", archive.id),
            at,
            resolved: false,
            owner: Some(archive.owner.clone()),
        })
        .collect();
    (ids, notices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(id: &str, owner: &str) -> ArchiveRef {
        ArchiveRef {
            id: id.into(),
            name: format!("Album {id}"),
            owner: owner.into(),
        }
    }

    #[test]
    fn backed_up_is_said_once_per_archive_to_its_owner_and_not_at_first_look() {
        let (known, first) = newly_backed_up(None, &[archive("a", "u1")], 1);
        assert!(first.is_empty());
        let (known, notices) =
            newly_backed_up(Some(&known), &[archive("a", "u1"), archive("b", "u2")], 2);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].owner.as_deref(), Some("u2"));
        assert!(notices[0].message.contains("Album b"));
        let (_, again) = newly_backed_up(Some(&known), &[archive("b", "u2")], 3);
        assert!(again.is_empty());
    }

    #[test]
    fn a_member_token_is_kept_only_for_the_same_topic_and_mail_needs_the_admin_server() {
        let stored = MemberChannels {
            ntfy_url: Some("https://ntfy.sh/kim".into()),
            ntfy_token: Some("tk_kim".into()),
            email: None,
        };
        let form = |url: &str, email: &str| MemberChannels {
            ntfy_url: Some(url.into()),
            ntfy_token: Some(String::new()),
            email: Some(email.into()),
        };
        let same = form("https://ntfy.sh/kim", "").normalized(&stored);
        assert_eq!(same, stored);
        let moved = form("https://ntfy.sh/other", "kim@example.com").normalized(&stored);
        assert_eq!(moved.ntfy_token, None);
        assert!(form("ftp://x", "").normalized(&stored).validate().is_err());
        let bad_mail = form("", "kim@example.com\r\nBcc: x@y.z").normalized(&stored);
        assert!(bad_mail
            .validate()
            .unwrap_err()
            .contains("not an e-mail address"));
        let no_server = NotifySettings::default();
        assert_eq!(moved.channels("u1", &no_server).len(), 1);
        let admin: NotifySettings = serde_json::from_value(serde_json::json!({"channels": [
            {"kind": "email", "host": "mail", "port": 25, "security": "none",
             "from": "box@example.com", "to": ["admin@example.com"]}]}))
        .unwrap();
        let channels = moved.channels("u1", &admin);
        assert_eq!(channels.len(), 2);
        assert!(
            matches!(&channels[1].1, Channel::Email { to, .. } if to == &["kim@example.com".to_string()])
        );
        assert_ne!(channels[1].0, admin.channels[0].key());
    }
}
