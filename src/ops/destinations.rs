//! The destinations (issue 24, 3-2-1 backups): list them, see what adding
//! one would copy, add one, remove one. The engine does the work
//! (`engine::destinations`); each operation here writes its system-log
//! sentence and wakes the engine.

use crate::accounts::Caller;
use crate::admin::log::Subject;
use crate::app::state::App;
use crate::engine::destinations::{self, AddPlan, Destination};
use crate::remote::RemoteSettings;

/// Every destination, main first.
pub fn destinations(app: &App) -> super::Result<Vec<Destination>> {
    let txn = app.store.read()?;
    Ok(destinations::list(
        &txn,
        &app.store.tables,
        &app.config.data_dir,
    )?)
}

/// What adding a destination at `settings` would copy, without adding it.
pub fn plan_destination(app: &App, settings: &RemoteSettings) -> super::Result<AddPlan> {
    Ok(app.engine.plan_destination(settings)?)
}

/// Adds a copy destination: every archive is copied there from now on,
/// the ones backed up already first.
pub fn add_destination(
    app: &App,
    admin: &Caller,
    name: &str,
    settings: RemoteSettings,
) -> super::Result<(Destination, AddPlan)> {
    let (added, plan) = app.engine.add_destination(name, settings)?;
    app.admin.log.info(
        "remote",
        &format!(
            "{} added the destination {}. {}",
            admin.user.username,
            added.name,
            plan.message(&added.name)
        ),
        Subject::user(&admin.user.id),
    );
    app.engine.wake();
    Ok((added, plan))
}

/// Removes a copy destination; its bucket or folder is left as it is.
pub fn remove_destination(app: &App, admin: &Caller, id: &str) -> super::Result<Destination> {
    let removed = app.engine.remove_destination(id)?;
    app.admin.log.info(
        "remote",
        &format!(
            "{} removed the destination {} ({}): nothing more is copied there, and its bucket was left as it is.",
            admin.user.username,
            removed.name,
            destinations::describe(&removed.settings)
        ),
        Subject::user(&admin.user.id),
    );
    app.engine.wake();
    Ok(removed)
}
