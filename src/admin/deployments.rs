//! Deployments (table `deployments`): a saved script run every
//! `interval_seconds`, and the scheduler thread that runs them.
//!
//! Owns: the `deployments` table and the scheduler. Must not touch: HTTP.
//!
//! Rules: `next_run_at` is stored when a run starts (start + interval), so a
//! restart resumes the schedule and runs overdue deployments at once. A
//! deployment never runs twice at the same time: while a run is going, the
//! deployment is skipped even when due. Each run has its own thread and
//! [`CancelToken`]; terminating a deployment cancels its run. Every run's
//! result is written to the system log; a failing run leaves the deployment
//! scheduled.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::log::Subject;
#[cfg(test)]
use super::saved_scripts::saved_run_limits;
use super::saved_scripts::{self, summary_of, ScriptsError, SAVED_RUN_TIMEOUT};
use super::script::{self, CancelToken, Limits};
use super::Admin;
use crate::ids;
use crate::store::records::DeploymentRecord;
use crate::store::Store;

/// The longest the scheduler sleeps before looking again.
const MAX_NAP: Duration = Duration::from_secs(1);

/// Set once the weekly verification was deployed, so an admin who
/// terminates it does not get it back.
const WEEKLY_VERIFICATION_SEEDED_KEY: &[u8] = b"builtin_verify_deployment_seeded";

/// How often the built-in verification runs: weekly.
pub const WEEKLY_VERIFICATION_INTERVAL_SECONDS: u64 = 7 * 86_400;

/// The limits of a deployment's run: it may last until the next run is due
/// (its interval), at least the default 5 s and at most
/// [`SAVED_RUN_TIMEOUT`].
pub fn deployment_limits(interval_seconds: u64) -> Limits {
    let default = Limits::default();
    Limits {
        timeout: Duration::from_secs(interval_seconds).clamp(default.timeout, SAVED_RUN_TIMEOUT),
        ..default
    }
}

/// Deploys the built-in "verify remote copies" script every week, once per
/// appliance: on its first start (or the first start of a version that has
/// this), never again after an admin terminated it. The first run is one
/// interval later; a new appliance has nothing to verify yet. Returns the
/// new deployment and the script's name, or `None` when it was done before
/// (or the script was deleted).
pub fn seed_weekly_verification(store: &Store) -> Result<Option<DeploymentRecord>, ScriptsError> {
    store.write(
        |txn, tables| -> Result<Option<DeploymentRecord>, ScriptsError> {
            if tables
                .meta
                .get(txn, WEEKLY_VERIFICATION_SEEDED_KEY)?
                .is_some()
            {
                return Ok(None);
            }
            tables.meta.put(
                txn,
                WEEKLY_VERIFICATION_SEEDED_KEY,
                &serde_json::json!(true),
            )?;
            let script = tables
                .scripts
                .all(txn)?
                .into_iter()
                .map(|(_, script)| script)
                .filter(|script| script.name == super::builtin::VERIFY_SCRIPT_NAME)
                .min_by_key(|script| script.created_at);
            let Some(script) = script else {
                return Ok(None);
            };
            let now = ids::now_secs();
            let record = DeploymentRecord {
                id: ids::random_id(),
                script_id: script.id,
                interval_seconds: WEEKLY_VERIFICATION_INTERVAL_SECONDS,
                next_run_at: now + WEEKLY_VERIFICATION_INTERVAL_SECONDS as i64,
                created_at: now,
                last_run: None,
            };
            tables.deployments.put(txn, record.id.as_bytes(), &record)?;
            Ok(Some(record))
        },
    )
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub script_id: String,
    pub interval_seconds: u64,
}

/// The scheduler's shared state.
#[derive(Default)]
pub struct Scheduler {
    state: Mutex<SchedulerState>,
    wake: Condvar,
}

#[derive(Default)]
struct SchedulerState {
    /// Runs in progress by deployment id.
    running: HashMap<String, CancelToken>,
    stopping: bool,
    started: bool,
    chores: Vec<Chore>,
}

/// Housekeeping the scheduler thread runs every `interval` besides the
/// deployments (e.g. expiring unfinished uploads); see [`Admin::add_chore`].
struct Chore {
    interval: Duration,
    due: std::time::Instant,
    work: Arc<dyn Fn() + Send + Sync>,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, SchedulerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_running(&self, deployment_id: &str) -> bool {
        self.lock().running.contains_key(deployment_id)
    }
}

pub fn list(store: &Store) -> Result<Vec<DeploymentRecord>, ScriptsError> {
    let txn = store.read()?;
    let mut list: Vec<DeploymentRecord> = store
        .tables
        .deployments
        .all(&txn)?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    list.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(list)
}

impl Admin {
    pub fn create_deployment(
        &self,
        new: &NewDeployment,
        user_id: &str,
    ) -> Result<DeploymentRecord, ScriptsError> {
        if new.interval_seconds == 0 {
            return Err(ScriptsError::Invalid(
                "The interval must be at least 1 second.".into(),
            ));
        }
        if new.interval_seconds > 366 * 86_400 {
            return Err(ScriptsError::Invalid(
                "The interval must be at most a year.".into(),
            ));
        }
        let script = saved_scripts::get(&self.store, &new.script_id).map_err(|err| match err {
            ScriptsError::NotFound => {
                ScriptsError::Invalid("There is no saved script with this id.".into())
            }
            other => other,
        })?;
        let now = ids::now_secs();
        let record = DeploymentRecord {
            id: ids::random_id(),
            script_id: script.id.clone(),
            interval_seconds: new.interval_seconds,
            // The first run happens right away.
            next_run_at: now,
            created_at: now,
            last_run: None,
        };
        self.store
            .write(|txn, tables| -> Result<(), ScriptsError> {
                tables.deployments.put(txn, record.id.as_bytes(), &record)?;
                Ok(())
            })?;
        self.log.info(
            "deployment",
            &format!(
                "Deployed {:?} every {} s (deployment {}).",
                script.name, record.interval_seconds, record.id
            ),
            Subject::user(user_id),
        );
        self.scheduler.wake.notify_all();
        Ok(record)
    }

    /// Removes the deployment and cancels its run, if one is going.
    pub fn terminate_deployment(
        &self,
        deployment_id: &str,
        user_id: &str,
    ) -> Result<(), ScriptsError> {
        if !ids::is_valid_id(deployment_id) {
            return Err(ScriptsError::NotFound);
        }
        let removed = self
            .store
            .write(|txn, tables| -> Result<bool, ScriptsError> {
                Ok(tables.deployments.delete(txn, deployment_id.as_bytes())?)
            })?;
        if !removed {
            return Err(ScriptsError::NotFound);
        }
        if let Some(cancel) = self.scheduler.lock().running.get(deployment_id) {
            cancel.cancel();
        }
        self.log.info(
            "deployment",
            &format!("Terminated deployment {deployment_id}."),
            Subject::user(user_id),
        );
        Ok(())
    }

    /// Runs `work` on the scheduler thread every `interval`, the first time
    /// one interval from now. `work` must be short: deployments wait.
    pub fn add_chore(&self, interval: Duration, work: impl Fn() + Send + Sync + 'static) {
        self.scheduler.lock().chores.push(Chore {
            interval,
            due: std::time::Instant::now() + interval,
            work: Arc::new(work),
        });
    }

    /// Runs the chores that are due, outside the scheduler's lock.
    fn run_due_chores(&self) {
        let now = std::time::Instant::now();
        let due: Vec<Arc<dyn Fn() + Send + Sync>> = {
            let mut state = self.scheduler.lock();
            state
                .chores
                .iter_mut()
                .filter(|chore| chore.due <= now)
                .map(|chore| {
                    chore.due = now + chore.interval;
                    chore.work.clone()
                })
                .collect()
        };
        for work in due {
            work();
        }
    }

    /// Starts the scheduler thread (once).
    pub fn start_scheduler(self: &Arc<Self>) {
        {
            let mut state = self.scheduler.lock();
            if state.started {
                return;
            }
            state.started = true;
        }
        let admin = self.clone();
        std::thread::Builder::new()
            .name("deployments".into())
            .spawn(move || admin.schedule_loop())
            .expect("start the deployment scheduler");
    }

    /// Stops the scheduler and cancels running deployments.
    pub fn stop_scheduler(&self) {
        let mut state = self.scheduler.lock();
        state.stopping = true;
        for cancel in state.running.values() {
            cancel.cancel();
        }
        self.scheduler.wake.notify_all();
    }

    fn schedule_loop(self: Arc<Self>) {
        loop {
            if self.scheduler.lock().stopping {
                return;
            }
            let nap = match self.start_due_runs() {
                Ok(nap) => nap,
                Err(err) => {
                    eprintln!("piarchive: deployment scheduler: {err}");
                    MAX_NAP
                }
            };
            self.run_due_chores();
            let state = self.scheduler.lock();
            if state.stopping {
                return;
            }
            let _ = self.scheduler.wake.wait_timeout(state, nap);
        }
    }

    /// Starts every due deployment that is not running; returns how long to
    /// wait before the next one is due (at most [`MAX_NAP`]).
    fn start_due_runs(self: &Arc<Self>) -> Result<Duration, ScriptsError> {
        let now_ms = ids::now_millis();
        let mut nap = MAX_NAP;
        for deployment in list(&self.store)? {
            let due_ms = deployment.next_run_at.saturating_mul(1000);
            if due_ms > now_ms {
                nap = nap.min(Duration::from_millis((due_ms - now_ms) as u64));
                continue;
            }
            let cancel = CancelToken::new();
            {
                let mut state = self.scheduler.lock();
                if state.stopping || state.running.contains_key(&deployment.id) {
                    continue;
                }
                state.running.insert(deployment.id.clone(), cancel.clone());
            }
            let started_at = ids::now_secs();
            let next_run_at = started_at + deployment.interval_seconds as i64;
            let still_there = self
                .store
                .write(|txn, tables| -> Result<bool, ScriptsError> {
                    match tables.deployments.get(txn, deployment.id.as_bytes())? {
                        Some(mut record) => {
                            record.next_run_at = next_run_at;
                            tables
                                .deployments
                                .put(txn, deployment.id.as_bytes(), &record)?;
                            Ok(true)
                        }
                        None => Ok(false),
                    }
                });
            if !matches!(still_there, Ok(true)) {
                self.scheduler.lock().running.remove(&deployment.id);
                still_there?;
                continue;
            }
            let admin = self.clone();
            let spawned = std::thread::Builder::new()
                .name("deployment-run".into())
                .spawn(move || admin.run_deployment(deployment, started_at, cancel));
            if let Err(err) = spawned {
                eprintln!("piarchive: cannot start a deployment run: {err}");
            }
        }
        Ok(nap)
    }

    fn run_deployment(
        self: Arc<Self>,
        deployment: DeploymentRecord,
        started_at: i64,
        cancel: CancelToken,
    ) {
        let subject = Subject::default();
        let result = match saved_scripts::get(&self.store, &deployment.script_id) {
            Ok(script) => {
                let result = script::run(
                    &script.source,
                    self.host(&script.name, None),
                    &deployment_limits(deployment.interval_seconds),
                    &cancel,
                );
                self.log_run(
                    &script.name,
                    &format!("Deployment {}", deployment.id),
                    &result,
                    subject,
                );
                let _ = saved_scripts::record_run(
                    &self.store,
                    &script.id,
                    &summary_of(started_at, &result),
                );
                Some(result)
            }
            Err(err) => {
                self.log.error(
                    "deployment",
                    &format!("Deployment {} cannot load its script: {err}", deployment.id),
                    subject,
                );
                None
            }
        };
        if let Some(result) = result {
            let summary = summary_of(started_at, &result);
            let stored = self.store.write(|txn, tables| -> Result<(), ScriptsError> {
                if let Some(mut record) = tables.deployments.get(txn, deployment.id.as_bytes())? {
                    record.last_run = Some(summary);
                    tables
                        .deployments
                        .put(txn, deployment.id.as_bytes(), &record)?;
                }
                Ok(())
            });
            if let Err(err) = stored {
                eprintln!("piarchive: cannot store a deployment result: {err}");
            }
        }
        self.scheduler.lock().running.remove(&deployment.id);
        self.scheduler.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_run_may_last_its_interval_within_bounds() {
        for (interval, expected) in [
            (1, Duration::from_secs(5)),
            (5, Duration::from_secs(5)),
            (3600, Duration::from_secs(3600)),
            (WEEKLY_VERIFICATION_INTERVAL_SECONDS, SAVED_RUN_TIMEOUT),
        ] {
            let limits = deployment_limits(interval);
            assert_eq!(limits.timeout, expected, "every {interval} s");
            assert_eq!(limits.max_operations, Limits::default().max_operations);
        }
        assert_eq!(saved_run_limits().timeout, SAVED_RUN_TIMEOUT);
    }

    #[test]
    fn the_weekly_verification_is_deployed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        saved_scripts::seed_builtins(&store).unwrap();
        let before = ids::now_secs();
        let weekly = seed_weekly_verification(&store)
            .unwrap()
            .expect("deployed on the first start");
        let script = saved_scripts::get(&store, &weekly.script_id).unwrap();
        assert_eq!(script.name, super::super::builtin::VERIFY_SCRIPT_NAME);
        assert_eq!(weekly.interval_seconds, 604_800);
        assert!(weekly.next_run_at >= before + 604_800);
        assert_eq!(list(&store).unwrap().len(), 1);
        // Not again, and not after it was terminated.
        assert!(seed_weekly_verification(&store).unwrap().is_none());
        store
            .write(|txn, tables| -> Result<bool, ScriptsError> {
                Ok(tables.deployments.delete(txn, weekly.id.as_bytes())?)
            })
            .unwrap();
        assert!(seed_weekly_verification(&store).unwrap().is_none());
        assert!(list(&store).unwrap().is_empty());
    }

    #[test]
    fn without_the_builtin_script_nothing_is_deployed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        assert!(seed_weekly_verification(&store).unwrap().is_none());
        assert!(list(&store).unwrap().is_empty());
    }
}
