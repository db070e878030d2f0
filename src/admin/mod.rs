//! Administration: the sandboxed script engine, the built-in scripts, saved
//! scripts, deployments (scripts on a schedule) and the system log.
//!
//! [`Admin`] holds them together; operations reach it as `App::admin`.
//! Must not touch: HTTP, the engine. What a script sees of the appliance
//! is the [`script::ScriptHost`] that the [`HostMaker`] handed to
//! [`Admin::open`] makes for each run (`ops::script_host`).

pub mod builtin;
pub mod deployments;
pub mod log;
pub mod saved_scripts;
pub mod script;

use std::sync::Arc;

use crate::store::Store;

/// Makes the host of one script run from its log source
/// (`script:<name>`) and the admin who started it.
pub type HostMaker = Box<dyn Fn(&str, Option<&str>) -> Arc<dyn script::ScriptHost> + Send + Sync>;

pub struct Admin {
    store: Store,
    pub log: Arc<log::SystemLog>,
    hosts: HostMaker,
    scheduler: deployments::Scheduler,
}

impl Admin {
    /// Opens the admin state, seeds the built-in scripts and the weekly
    /// verification deployment on first start.
    pub fn open(store: Store, hosts: HostMaker) -> Result<Admin, saved_scripts::ScriptsError> {
        saved_scripts::seed_builtins(&store)?;
        let weekly = deployments::seed_weekly_verification(&store)?;
        let admin = Admin {
            log: Arc::new(log::SystemLog::new(store.clone())),
            store,
            hosts,
            scheduler: deployments::Scheduler::default(),
        };
        if let Some(deployment) = weekly {
            admin.log.info(
                "deployment",
                &format!(
                    "Deployed the built-in {:?} every {} s (deployment {}); terminate it to stop \
                     the weekly check.",
                    builtin::VERIFY_SCRIPT_NAME,
                    deployment.interval_seconds,
                    deployment.id
                ),
                log::Subject::default(),
            );
        }
        Ok(admin)
    }

    /// A host for one run, logging as `script:<name>`.
    pub fn host(&self, script_name: &str, user_id: Option<&str>) -> Arc<dyn script::ScriptHost> {
        (self.hosts)(&format!("script:{script_name}"), user_id)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn deployment_running(&self, deployment_id: &str) -> bool {
        self.scheduler.is_running(deployment_id)
    }
}
