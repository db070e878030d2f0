//! Where the backups go: the plan of a change, saving it (the engine moves
//! the backups when it must, see `engine::remote_move`) and a live check.

use crate::app::state::App;
use crate::engine::remote_move::MovePlan;
use crate::remote::RemoteSettings;

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
        .map_err(|err| err.message)
}
