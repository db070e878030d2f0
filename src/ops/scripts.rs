//! Saved scripts as an admin writes them: create, save, delete, each with
//! its `scripts` log line. Runs and deployments log themselves
//! (`admin::Admin`); what a running script sees is [`super::script_host`].

use crate::accounts::Caller;
use crate::admin::log::Subject;
use crate::admin::saved_scripts::{self, ScriptDraft};
use crate::app::state::App;
use crate::store::records::ScriptRecord;

pub fn create(app: &App, admin: &Caller, draft: &ScriptDraft) -> super::Result<ScriptRecord> {
    let script = saved_scripts::create(app.admin.store(), draft)?;
    log(app, admin, &format!("saved a new script {:?}", script.name));
    Ok(script)
}

pub fn update(
    app: &App,
    admin: &Caller,
    script_id: &str,
    draft: &ScriptDraft,
) -> super::Result<ScriptRecord> {
    let script = saved_scripts::update(app.admin.store(), script_id, draft)?;
    log(app, admin, &format!("saved the script {:?}", script.name));
    Ok(script)
}

pub fn delete(app: &App, admin: &Caller, script_id: &str) -> super::Result<ScriptRecord> {
    let script = saved_scripts::delete(app.admin.store(), script_id)?;
    log(app, admin, &format!("deleted the script {:?}", script.name));
    Ok(script)
}

fn log(app: &App, admin: &Caller, what: &str) {
    app.admin.log.info(
        "scripts",
        &format!("{} {what}.", admin.user.username),
        Subject::user(&admin.user.id),
    );
}
