//! Where the backups go: the plan of a change, saving it (the engine moves
//! the backups when it must, see `engine::remote_move`) and a live check.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::app::state::App;
use crate::engine::remote_move::MovePlan;
use crate::remote::RemoteSettings;

/// How long a typed secret whose save failed is kept for the next try.
const TYPED_SECRET_KEPT: Duration = Duration::from_secs(15 * 60);

/// The secret access key an admin typed into the remote page when the save
/// (or the test) did not go through: kept in memory only, for that admin
/// and that access key id, for 15 minutes, so the next try need not retype
/// it and the page never sends it back. A successful save forgets it.
#[derive(Default)]
pub struct TypedSecrets(Mutex<Option<TypedSecret>>);

struct TypedSecret {
    user_id: String,
    access_key_id: String,
    secret: zeroize::Zeroizing<String>,
    until: Instant,
}

impl TypedSecrets {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TypedSecret>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the secret of `settings` (S3 with a secret typed) for `user_id`.
    pub fn keep(&self, user_id: &str, settings: &RemoteSettings) {
        if let RemoteSettings::S3 {
            access_key_id,
            secret_access_key,
            ..
        } = settings
        {
            if !secret_access_key.is_empty() {
                *self.slot() = Some(TypedSecret {
                    user_id: user_id.to_string(),
                    access_key_id: access_key_id.clone(),
                    secret: zeroize::Zeroizing::new(secret_access_key.clone()),
                    until: Instant::now() + TYPED_SECRET_KEPT,
                });
            }
        }
    }

    /// `settings` with the kept secret filled in where the field was left
    /// empty, when `user_id` typed it for the same access key id.
    pub fn fill(&self, user_id: &str, mut settings: RemoteSettings) -> RemoteSettings {
        let slot = self.slot();
        if let (
            RemoteSettings::S3 {
                access_key_id,
                secret_access_key,
                ..
            },
            Some(kept),
        ) = (&mut settings, slot.as_ref())
        {
            if secret_access_key.is_empty()
                && kept.user_id == user_id
                && kept.access_key_id == *access_key_id
                && kept.until > Instant::now()
            {
                *secret_access_key = kept.secret.to_string();
            }
        }
        settings
    }

    /// Whether `user_id` has a typed secret kept for `access_key_id`.
    pub fn is_kept(&self, user_id: &str, access_key_id: &str) -> bool {
        self.slot().as_ref().is_some_and(|kept| {
            kept.user_id == user_id
                && kept.access_key_id == access_key_id
                && kept.until > Instant::now()
        })
    }

    pub fn forget(&self) {
        *self.slot() = None;
    }
}

/// The saved remote settings.
pub fn saved(app: &App) -> super::Result<RemoteSettings> {
    Ok(crate::settings::remote::remote_settings(
        &app.store,
        &app.config.data_dir,
    )?)
}

/// What saving `settings` would do, without saving them.
pub fn plan(app: &App, settings: &RemoteSettings) -> super::Result<MovePlan> {
    Ok(app.engine.plan_remote_change(settings)?)
}

/// Saves remote settings through the engine (a move if needed) and
/// updates the same-disk banner.
pub fn save(app: &App, settings: RemoteSettings) -> super::Result<(RemoteSettings, MovePlan)> {
    let (saved, plan) = app.engine.change_remote(settings)?;
    app.typed_secrets.forget();
    app.placement.follow(&saved, &app.config.data_dir);
    app.engine.wake();
    Ok((saved, plan))
}

/// A live check: an object written, read back, listed and removed.
/// `Ok(sentence)` when it worked, `Err(sentence)` saying why not.
pub fn check(settings: &RemoteSettings) -> Result<String, String> {
    let options = crate::remote::TransferOptions {
        timeout: std::time::Duration::from_secs(10),
        max_attempts: 2,
        base_backoff: std::time::Duration::from_millis(200),
    };
    crate::remote::open(settings, &options)
        .and_then(|remote| crate::remote::check(remote.as_ref()).map(|()| remote.describe()))
        .map(|place| {
            format!("{place} works: an object was written, read back, listed and removed.")
        })
        // A check is not retried: the engine's "will try again" is not true here.
        .map_err(|err| {
            err.message
                .replace("; piarchive will try again.", ".")
                .replace(": piarchive will try again.", ".")
        })
}
