//! The admin scheduler's chores: the expiry of unfinished uploads nobody
//! touched and the renewal of the self-signed certificate. Each holds what
//! it needs weakly or by handle, never the scheduler's owner strongly.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::state::App;
use crate::admin::log::SystemLog;
use crate::tls::Tls;

/// How often unfinished uploads are checked for expiry (besides at start
/// and when the setting is saved).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The periodic expiry of unfinished uploads, for the admin scheduler.
/// Holds the app weakly: the app owns the scheduler.
pub fn upload_expiry(app: &Arc<App>) -> impl Fn() + Send + Sync + 'static {
    let app: Weak<App> = Arc::downgrade(app);
    move || {
        let Some(app) = app.upgrade() else { return };
        let expired = crate::settings::Settings::load(&app.store)
            .map_err(crate::archive::ArchiveError::from)
            .and_then(|settings| {
                app.archives
                    .expire_pending_uploads(settings.pending_upload_expiry())
            });
        match expired {
            Ok(0) => {}
            Ok(count) => app.admin.log.info(
                "uploads",
                &format!("Removed {count} unfinished uploads nobody touched for too long."),
                crate::admin::log::Subject::default(),
            ),
            Err(err) => eprintln!("piarchive: expiring unfinished uploads: {err}"),
        }
    }
}

/// Makes a new self-signed certificate before the old one expires.
pub fn certificate_renewal(
    tls: Arc<Tls>,
    log: Arc<SystemLog>,
) -> impl Fn() + Send + Sync + 'static {
    move || match tls.renew_if_due() {
        Ok(Some(info)) => log.info(
            "tls",
            &format!(
                "Made a new self-signed certificate (SHA-256 {}), valid until {}.",
                info.fingerprint_sha256, info.not_after
            ),
            Default::default(),
        ),
        Ok(None) => {}
        Err(err) => log.warn("tls", &err.to_string(), Default::default()),
    }
}
