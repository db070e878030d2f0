//! Administration: the sandboxed script engine, the built-in scripts, saved
//! scripts, deployments (scripts on a schedule), the system log, and the
//! script host over the appliance's data.
//!
//! [`Admin`] holds them together; the web layer reaches it as `App::admin`.
//! Must not touch: HTTP. The remote actions of scripts reach the transfer
//! engine only through [`host::ArchiveActions`], plugged in with
//! [`Admin::set_archive_actions`].

pub mod builtin;
pub mod deployments;
pub mod host;
pub mod log;
pub mod saved_scripts;
pub mod script;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::store::Store;

pub struct Admin {
    store: Store,
    data_dir: PathBuf,
    pub log: Arc<log::SystemLog>,
    actions: host::ActionsSlot,
    scheduler: deployments::Scheduler,
}

impl Admin {
    /// Opens the admin state, seeds the built-in scripts and the weekly
    /// verification deployment on first start.
    pub fn open(store: Store, data_dir: &Path) -> Result<Admin, saved_scripts::ScriptsError> {
        saved_scripts::seed_builtins(&store)?;
        let weekly = deployments::seed_weekly_verification(&store)?;
        let admin = Admin {
            log: Arc::new(log::SystemLog::new(store.clone())),
            store,
            data_dir: data_dir.to_path_buf(),
            actions: Arc::new(RwLock::new(None)),
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

    /// Plugs in the transfer engine for `uncache`, `cache`, `verify` and
    /// `retry_failed` (until then they throw a sentence saying so).
    pub fn set_archive_actions(&self, actions: Arc<dyn host::ArchiveActions>) {
        *self.actions.write().unwrap_or_else(|e| e.into_inner()) = Some(actions);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn deployment_running(&self, deployment_id: &str) -> bool {
        self.scheduler.is_running(deployment_id)
    }
}
