//! The appliance settings and the system log's own settings, as an admin
//! saves them.

use crate::accounts::Caller;
use crate::admin::log::{LogSettings, Subject};
use crate::app::state::App;
use crate::settings::{Settings, SettingsError};

/// Saves the appliance settings: a shorter expiry of unfinished uploads
/// applies at once, the engine picks up the rest when woken.
pub fn save(app: &App, admin: &Caller, settings: &Settings) -> super::Result<()> {
    refuse_https_only_without_listener(app, settings)?;
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
    refuse_https_only_without_listener(app, &settings)?;
    settings.save(&app.store)?;
    app.admin.log.info(
        "settings",
        &format!("{} changed the {what} settings.", admin.user.username),
        Subject::user(&admin.user.id),
    );
    Ok(())
}

/// Turning "HTTPS only" on while this appliance has no HTTPS listener would
/// send every visit to an address nobody answers: refused with a sentence
/// (a setting already on is left as it is).
fn refuse_https_only_without_listener(app: &App, new: &Settings) -> super::Result<()> {
    let was_on = Settings::load(&app.store)?.require_https;
    if new.require_https && !was_on && app.https_addr.get().is_none() {
        return Err(SettingsError::Invalid(
            "HTTPS only cannot be turned on: this appliance has no HTTPS listener, so every visit would be sent to an address that does not answer. Start it with an HTTPS address (--listen-https, or listen_https in its config file) first.".into(),
        )
        .into());
    }
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
