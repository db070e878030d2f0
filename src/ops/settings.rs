//! The appliance settings and the system log's own settings, as an admin
//! saves them.

use crate::accounts::Caller;
use crate::admin::log::{LogSettings, Subject};
use crate::app::state::App;
use crate::settings::Settings;

/// Saves the appliance settings: a shorter expiry of unfinished uploads
/// applies at once, the engine picks up the rest when woken.
pub fn save(app: &App, admin: &Caller, settings: &Settings) -> super::Result<()> {
    settings.save(&app.store)?;
    app.archives
        .expire_pending_uploads(settings.pending_upload_expiry())?;
    app.engine.wake();
    app.admin.log.info(
        "settings",
        &format!("{} changed the appliance settings.", admin.user.username),
        Subject::user(&admin.user.id),
    );
    Ok(())
}

/// Changes one or more settings on top of the saved ones (the HTTPS and
/// network-name forms).
pub fn change(
    app: &App,
    admin: &Caller,
    what: &str,
    change: impl FnOnce(&mut Settings),
) -> super::Result<()> {
    let mut settings = Settings::load(&app.store)?;
    change(&mut settings);
    settings.save(&app.store)?;
    app.admin.log.info(
        "settings",
        &format!("{} changed the {what} settings.", admin.user.username),
        Subject::user(&admin.user.id),
    );
    Ok(())
}

/// How many log entries are kept, and for how long.
pub fn save_log_settings(app: &App, admin: &Caller, settings: &LogSettings) -> super::Result<()> {
    app.admin.log.save_settings(settings)?;
    app.admin.log.info(
        "settings",
        &format!(
            "{} set the log to keep {} entries for {} days.",
            admin.user.username, settings.max_entries, settings.max_age_days
        ),
        Subject::user(&admin.user.id),
    );
    Ok(())
}
