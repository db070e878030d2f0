//! Deployments as an admin makes them: a saved script run on a schedule,
//! and its end. `admin::Admin` writes the `deployment` log line and wakes
//! the scheduler; this is the one place the API (and any page) calls.

use crate::accounts::Caller;
use crate::admin::deployments::{self, NewDeployment};
use crate::admin::saved_scripts::{self, ScriptsError};
use crate::app::state::App;
use crate::store::records::DeploymentRecord;

/// A deployment with the name of its script (`None` once the script is
/// deleted).
pub struct Named {
    pub deployment: DeploymentRecord,
    pub script_name: Option<String>,
}

/// Deploys a script; an interval under the configured minimum (5 minutes
/// unless the config file says otherwise) is refused with a sentence.
pub fn create(app: &App, admin: &Caller, new: &NewDeployment) -> super::Result<Named> {
    let minimum = app.config.min_deployment_interval_seconds;
    if new.interval_seconds < minimum {
        return Err(ScriptsError::Invalid(format!(
            "The interval must be at least {}: a script run more often than that fills the system log and keeps the disk busy.",
            crate::units::human_duration(minimum)
        ))
        .into());
    }
    let deployment = app.admin.create_deployment(new, &admin.user.id)?;
    let script_name = saved_scripts::get(app.admin.store(), &deployment.script_id)
        .ok()
        .map(|script| script.name);
    Ok(Named {
        deployment,
        script_name,
    })
}

/// Every deployment, each with its script's name.
pub fn list(app: &App) -> super::Result<Vec<Named>> {
    let scripts = saved_scripts::list(app.admin.store())?;
    Ok(deployments::list(app.admin.store())?
        .into_iter()
        .map(|deployment| {
            let script_name = scripts
                .iter()
                .find(|script| script.id == deployment.script_id)
                .map(|script| script.name.clone());
            Named {
                deployment,
                script_name,
            }
        })
        .collect())
}

/// Removes the deployment and cancels its run, if one is going.
pub fn terminate(app: &App, admin: &Caller, deployment_id: &str) -> super::Result<()> {
    app.admin
        .terminate_deployment(deployment_id, &admin.user.id)?;
    Ok(())
}
