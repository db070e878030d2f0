//! The notification settings: the channels, the remote threshold and the
//! digest (JSON in the `settings` table, key `notifications`), their checks
//! and their public shape (secrets never leave through it).
//!
//! Owns: [`NotifySettings`], [`Channel`], validation with a sentence per
//! mistake, and the rule that a secret left empty keeps the stored one.
//! Must not touch: the network.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

const KEY: &[u8] = b"notifications";

/// `remote_unreachable_after_seconds` of a new appliance: six hours.
pub const DEFAULT_REMOTE_UNREACHABLE_AFTER_SECONDS: u64 = 6 * 3600;
/// At most this many channels (each is tried on every notice).
pub const MAX_CHANNELS: usize = 16;
/// At most this many addresses per e-mail channel.
pub const MAX_RECIPIENTS: usize = 16;

/// How an e-mail channel talks to its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain SMTP (a server on the LAN).
    None,
    /// Plain, then upgraded with STARTTLS (port 587); refused without it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// One way of telling someone (API.md, "Additions (third round)").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Channel {
    /// JSON POSTed to `url`, signed with `secret` when there is one.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// ntfy's publish protocol: the text POSTed to the topic URL.
    Ntfy {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// A text mail over SMTP.
    Email {
        host: String,
        port: u16,
        security: Security,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// A GET while nothing is wrong (healthchecks.io and the like).
    Heartbeat { url: String },
}

/// Whether a weekly summary is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestSetting {
    #[default]
    Off,
    Weekly,
}

/// The JSON shape of `PUT /api/v1/admin/notifications` (and of the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default = "default_threshold")]
    pub remote_unreachable_after_seconds: u64,
    #[serde(default)]
    pub digest: DigestSetting,
}

fn default_threshold() -> u64 {
    DEFAULT_REMOTE_UNREACHABLE_AFTER_SECONDS
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            channels: Vec::new(),
            remote_unreachable_after_seconds: DEFAULT_REMOTE_UNREACHABLE_AFTER_SECONDS,
            digest: DigestSetting::Off,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifySettingsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Ntfy { .. } => "ntfy",
            Channel::Email { .. } => "email",
            Channel::Heartbeat { .. } => "heartbeat",
        }
    }

    /// Where notices go, for pages and the log (no secret in it).
    pub fn target(&self) -> String {
        match self {
            Channel::Webhook { url, .. }
            | Channel::Ntfy { url, .. }
            | Channel::Heartbeat { url } => url.clone(),
            Channel::Email { to, host, .. } => format!("{} via {host}", to.join(", ")),
        }
    }

    /// The key its queued notices are filed under: the kind and where it
    /// sends, not its secret (a new token keeps the queue).
    pub fn key(&self) -> String {
        let what = match self {
            Channel::Email {
                host,
                port,
                from,
                to,
                ..
            } => format!("email\n{host}\n{port}\n{from}\n{}", to.join(",")),
            other => format!("{}\n{}", other.kind(), other.target()),
        };
        hex::encode(&Sha256::digest(what.as_bytes())[..8])
    }

    /// The channel without its secret and with `*_set` flags instead, for
    /// answers and pages.
    pub fn public(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for secret in ["secret", "token", "password"] {
                let set = map.remove(secret).is_some();
                if matches!(
                    (self, secret),
                    (Channel::Webhook { .. }, "secret")
                        | (Channel::Ntfy { .. }, "token")
                        | (Channel::Email { .. }, "password")
                ) {
                    map.insert(format!("{secret}_set"), set.into());
                }
            }
        }
        value
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Channel::Webhook { url, secret } => {
                check_url(url, "webhook")?;
                check_secret(secret.as_deref(), "webhook secret")
            }
            Channel::Ntfy { url, token } => {
                check_url(url, "ntfy topic")?;
                check_secret(token.as_deref(), "ntfy token")
            }
            Channel::Heartbeat { url } => check_url(url, "heartbeat"),
            Channel::Email {
                host,
                port,
                username,
                password,
                from,
                to,
                ..
            } => {
                if host.trim().is_empty() || !host.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(format!(
                        "The mail server {host:?} is not a host name (like smtp.example.com)."
                    ));
                }
                if *port == 0 {
                    return Err("The mail server port must be between 1 and 65535.".into());
                }
                check_secret(username.as_deref(), "mail user name")?;
                check_secret(password.as_deref(), "mail password")?;
                check_address(from, "sender")?;
                if to.is_empty() || to.len() > MAX_RECIPIENTS {
                    return Err(format!(
                        "An e-mail channel needs 1 to {MAX_RECIPIENTS} recipients."
                    ));
                }
                to.iter().try_for_each(|to| check_address(to, "recipient"))
            }
        }
    }
}

/// `url` must be an http(s) URL with a host and no line breaks.
pub fn check_url(url: &str, what: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && url.len() <= 2048
                && url.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "The {what} address must start with http:// or https:// and have no spaces or line breaks."
        )),
    }
}

pub fn check_secret(secret: Option<&str>, what: &str) -> Result<(), String> {
    match secret {
        Some(secret) if secret.len() > 1024 || secret.chars().any(char::is_control) => Err(
            format!("The {what} must be at most 1024 characters with no line breaks."),
        ),
        _ => Ok(()),
    }
}

pub fn check_address(address: &str, what: &str) -> Result<(), String> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|_| format!("The {what} {address:?} is not an e-mail address."))
}

impl NotifySettings {
    pub fn load(store: &Store) -> Result<NotifySettings, StoreError> {
        let txn = store.read()?;
        Ok(match store.tables.settings.get(&txn, KEY)? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => NotifySettings::default(),
        })
    }

    pub fn validate(&self) -> Result<(), NotifySettingsError> {
        let invalid = NotifySettingsError::Invalid;
        if self.channels.len() > MAX_CHANNELS {
            return Err(invalid(format!("At most {MAX_CHANNELS} channels.")));
        }
        if !(1..=30 * 86_400).contains(&self.remote_unreachable_after_seconds) {
            return Err(invalid(
                "remote_unreachable_after_seconds must be between 1 and 2592000 (30 days).".into(),
            ));
        }
        for channel in &self.channels {
            channel.validate().map_err(invalid)?;
        }
        Ok(())
    }

    /// `self` with each secret that was left out or empty taken from the
    /// channel of the same kind and key in `stored` (the page and the API
    /// never show secrets, so saving again must not lose them).
    pub fn keeping_secrets(mut self, stored: &NotifySettings) -> NotifySettings {
        for channel in &mut self.channels {
            let key = channel.key();
            let old = stored.channels.iter().find(|old| old.key() == key);
            let (new, old) = match (channel, old) {
                (Channel::Webhook { secret: new, .. }, Some(Channel::Webhook { secret, .. }))
                | (Channel::Ntfy { token: new, .. }, Some(Channel::Ntfy { token: secret, .. }))
                | (
                    Channel::Email { password: new, .. },
                    Some(Channel::Email {
                        password: secret, ..
                    }),
                ) => (new, secret),
                _ => continue,
            };
            if new.as_deref().unwrap_or("").is_empty() {
                new.clone_from(old);
            }
        }
        for channel in &mut self.channels {
            if let Channel::Webhook { secret: s, .. }
            | Channel::Ntfy { token: s, .. }
            | Channel::Email { password: s, .. } = channel
            {
                if s.as_deref() == Some("") {
                    *s = None;
                }
            }
        }
        self
    }

    /// Checks and stores the settings.
    pub fn save(&self, store: &Store) -> Result<(), NotifySettingsError> {
        self.validate()?;
        let value = serde_json::to_value(self)
            .map_err(|err| NotifySettingsError::Invalid(err.to_string()))?;
        store.write(|txn, tables| -> Result<(), NotifySettingsError> {
            tables.settings.put(txn, KEY, &value)?;
            Ok(())
        })
    }

    /// The answer of `GET /api/v1/admin/notifications`: no secrets.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "channels": self.channels.iter().map(Channel::public).collect::<Vec<_>>(),
            "remote_unreachable_after_seconds": self.remote_unreachable_after_seconds,
            "digest": self.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(channels: serde_json::Value) -> Result<NotifySettings, String> {
        let settings: NotifySettings =
            serde_json::from_value(serde_json::json!({ "channels": channels }))
                .map_err(|err| err.to_string())?;
        settings.validate().map_err(|err| err.to_string())?;
        Ok(settings)
    }

    #[test]
    fn urls_must_be_http() {
        for (url, ok) in [
            ("https://ntfy.sh/family", true),
            ("http://192.168.1.2:8080/hook", true),
            ("ftp://example.com/", false),
            ("file:///etc/passwd", false),
            ("https://", false),
            ("https://a b", false),
            ("https://host/\r\nX-Evil: 1", false),
            ("javascript:alert(1)", false),
        ] {
            let result = settings(serde_json::json!([{"kind": "webhook", "url": url}]));
            assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
        }
    }

    #[test]
    fn email_addresses_and_hosts_are_checked() {
        let mail = |from: &str, host: &str| {
            settings(
                serde_json::json!([{"kind": "email", "host": host, "port": 25,
                "security": "none", "from": from, "to": ["a@example.com"]}]),
            )
        };
        assert!(mail("box@example.com", "smtp.example.com").is_ok());
        assert!(mail("Piarchive <box@example.com>", "smtp.example.com").is_ok());
        let err = mail("box@example.com\r\nBcc: x@evil", "smtp.example.com").unwrap_err();
        assert!(err.contains("not an e-mail address"), "{err}");
        assert!(mail("box@example.com", "smtp example").is_err());
        assert!(settings(serde_json::json!([{"kind": "pager", "url": "x"}])).is_err());
    }

    #[test]
    fn secrets_are_never_public_and_survive_an_empty_field() {
        let stored = settings(serde_json::json!([
            {"kind": "webhook", "url": "https://h/x", "secret": "s3cret-hook"},
            {"kind": "ntfy", "url": "https://ntfy.sh/t", "token": "tk_secret"},
            {"kind": "email", "host": "m", "port": 25, "security": "none",
             "username": "u", "password": "pw-secret", "from": "a@b.c", "to": ["d@e.f"]},
        ]))
        .unwrap();
        let public = stored.public().to_string();
        for secret in ["s3cret-hook", "tk_secret", "pw-secret"] {
            assert!(!public.contains(secret), "{public}");
        }
        assert!(public.contains("\"secret_set\":true"), "{public}");
        let again = settings(serde_json::json!([
            {"kind": "webhook", "url": "https://h/x", "secret": ""},
            {"kind": "ntfy", "url": "https://ntfy.sh/t"},
            {"kind": "email", "host": "m", "port": 25, "security": "none",
             "username": "u", "from": "a@b.c", "to": ["d@e.f"]},
        ]))
        .unwrap()
        .keeping_secrets(&stored);
        assert_eq!(again, stored);
        let changed = settings(serde_json::json!([
            {"kind": "webhook", "url": "https://h/x", "secret": "new"}
        ]))
        .unwrap()
        .keeping_secrets(&stored);
        assert!(
            matches!(&changed.channels[0], Channel::Webhook { secret: Some(s), .. } if s == "new")
        );
    }
}
