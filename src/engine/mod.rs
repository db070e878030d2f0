//! The background engine: a fixed pool of worker threads that lease jobs
//! from the persistent queue (`store::jobs`) and upload parts and
//! manifests, uncache, cache and delete archives, retries with backoff, the
//! bandwidth limit and upload window, and progress events.
//!
//! Owns: the leases (in memory), the `objects` table, the `archives/<id>.partial` files,
//! and every archive state change after `local`. Must not touch: HTTP.
//! Invariants: no LMDB transaction and no mutex is held across remote I/O;
//! a job is removed in the same transaction as the state change it made; an
//! object is removed remotely only when its refcount is zero; a failed
//! verification marks the archive `damaged` and deletes nothing.

pub mod activity;
mod cache;
mod catalog;
pub mod destinations;
pub mod events;
pub mod keys;
pub mod lock;
mod pipeline;
pub mod remote_move;
mod uncache;
pub mod upload;
pub mod verify;
mod work;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ids;
use crate::metrics;
use crate::remote::{Remote, RemoteSettings, TransferOptions};
use crate::repo::RepoKeys;
use crate::settings::{parse_hh_mm, Settings};
use crate::store::jobs;
use crate::store::records::JobRecord;
use crate::store::Store;

pub use events::Events;
pub use jobs::JobKind;
pub use verify::{Verification, VerifyError};

/// Why a job did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying later (network, server busy): backoff, attempts + 1.
    Transient(String),
    /// Retrying will not help until the settings change: the job is parked.
    Permanent(String),
    /// Another job holds what this one needs; try again in a moment.
    Busy,
    /// A verification failed: the archive becomes `damaged`.
    Damaged(String),
}

impl Failure {
    /// The failure counter this counts against (`Busy` is not a failure).
    fn metrics_kind(&self) -> Option<metrics::FailureKind> {
        match self {
            Failure::Transient(_) => Some(metrics::FailureKind::Transient),
            Failure::Permanent(_) => Some(metrics::FailureKind::Permanent),
            Failure::Damaged(_) => Some(metrics::FailureKind::Damaged),
            Failure::Busy => None,
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(err: crate::store::StoreError) -> Self {
        Failure::Transient(err.to_string())
    }
}

impl From<crate::remote::RemoteError> for Failure {
    fn from(err: crate::remote::RemoteError) -> Self {
        if err.is_transient() {
            Failure::Transient(err.message)
        } else {
            Failure::Permanent(err.message)
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::Transient(format!("A local file could not be read or written: {err}"))
    }
}

struct CachedRemote {
    settings: RemoteSettings,
    generation: u64,
    remote: Arc<dyn Remote>,
}

/// Remotes opened once per settings, by destination id.
type OpenRemotes = HashMap<String, (RemoteSettings, Arc<dyn Remote>)>;

/// Where the engine reports what a person should know (a finished remote
/// move, an old folder deleted): the system log, plugged in at start.
pub type Reporter = Box<dyn Fn(ReportLevel, &str) + Send + Sync>;

/// How much a report matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportLevel {
    Info,
    Warn,
}

pub(crate) struct Inner {
    store: Store,
    data_dir: PathBuf,
    shutdown: AtomicBool,
    /// Worker threads running; above `transfer_concurrency` one retires.
    workers_alive: AtomicUsize,
    /// Bumped by `wake`; idle workers wait on it.
    wake: (Mutex<u64>, Condvar),
    /// Job ids a worker is running now (leases are per process: after a
    /// restart every job is free again).
    leased: Mutex<HashSet<String>>,
    /// Object ids being uploaded or deleted now, so an upload and a delete
    /// of one object never overlap.
    objects_busy: Mutex<HashSet<String>>,
    remote: Mutex<Option<CachedRemote>>,
    /// The remote a move copies from, opened once per move.
    previous_remote: Mutex<Option<(RemoteSettings, Arc<dyn Remote>)>>,
    /// The copy destinations' remotes, by id, opened once per settings.
    dest_remotes: Mutex<OpenRemotes>,
    /// How every destination is doing (main's problem is also `activity`'s).
    health: destinations::Health,
    reporter: OnceLock<Reporter>,
    /// The box's zone, the upload window's clock (UTC until set).
    zone: OnceLock<crate::zone::BoxZone>,
    /// Serializes opening a remote and writing its config, so two workers
    /// starting at once do not race on the same first `config` write. Held
    /// across that one-time I/O only; every transfer uses the cached remote.
    remote_opening: Mutex<()>,
    keys: OnceLock<(RepoKeys, Vec<u8>)>,
    /// Token bucket: (tokens in bytes, last refill).
    bucket: Mutex<(f64, Instant)>,
    pub(crate) events: Events,
    activity: activity::Activity,
    /// How fast each destination answered part downloads lately: a
    /// fetch-back reads from the fastest.
    throughput: cache::Throughput,
    options: TransferOptions,
}

/// The running engine. Cheap to share through `Arc`.
pub struct Engine {
    inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// One syncer per copy destination (`destinations`).
    syncers: destinations::Syncers,
}

impl Engine {
    /// Starts `transfer_concurrency` workers; [`Engine::wake`] adds or
    /// retires workers when the setting changes.
    pub fn start(store: Store, data_dir: &Path) -> Engine {
        let inner = Arc::new(Inner::new(store, data_dir));
        let engine = Engine {
            inner,
            workers: Mutex::new(Vec::new()),
            syncers: destinations::Syncers::default(),
        };
        engine.ensure_workers();
        engine.start_syncers();
        engine
    }

    /// The zone the upload window is in (the box's, `config.zone`); set
    /// once at start, UTC until then.
    pub fn set_zone(&self, zone: crate::zone::BoxZone) {
        let _ = self.inner.zone.set(zone);
    }

    /// Tells idle workers to look at the queue now, and starts more of them
    /// if `transfer_concurrency` was raised (a lowered one retires the extra
    /// workers after their current job).
    pub fn wake(&self) {
        self.ensure_workers();
        self.inner.wake();
    }

    fn ensure_workers(&self) {
        if self.inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let wanted = self.inner.concurrency();
        let mut workers = self.inner_workers();
        workers.retain(|worker| !worker.is_finished());
        while self.inner.workers_alive.load(Ordering::SeqCst) < wanted {
            self.inner.workers_alive.fetch_add(1, Ordering::SeqCst);
            let inner = self.inner.clone();
            workers.push(std::thread::spawn(move || inner.run_worker()));
        }
    }

    /// Workers running now (for tests and the status page).
    pub fn workers(&self) -> usize {
        self.inner.workers_alive.load(Ordering::SeqCst)
    }

    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// What is moving now (each destination's lasting problem is in
    /// [`Engine::destination_health`]).
    pub fn activity(&self) -> &activity::Activity {
        &self.inner.activity
    }

    /// Jobs in the queue (running, waiting or parked).
    pub fn queue_length(&self) -> u64 {
        self.inner
            .store
            .read()
            .and_then(|txn| self.inner.store.tables.jobs.len(&txn))
            .unwrap_or(0)
    }

    /// Jobs in the queue that no worker is running now.
    pub fn jobs_waiting(&self) -> u64 {
        let running = lock(&self.inner.leased).len() as u64;
        self.queue_length().saturating_sub(running)
    }

    /// Plugs in where reports go (the system log); the first one stays.
    pub fn set_reporter(&self, reporter: Reporter) {
        let _ = self.inner.reporter.set(reporter);
    }

    /// Stops the workers after their current job, and the syncers.
    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.wake();
        let workers = std::mem::take(&mut *self.inner_workers());
        for worker in workers {
            let _ = worker.join();
        }
        self.syncers.stop_all(&self.inner);
    }

    /// Starts the syncer of every copy destination (at start).
    fn start_syncers(&self) {
        let destinations = self.inner.store.read().and_then(|txn| {
            destinations::list(&txn, &self.inner.store.tables, &self.inner.data_dir)
        });
        match destinations {
            Ok(destinations) => {
                for destination in destinations.iter().filter(|d| d.id != destinations::MAIN) {
                    self.syncers
                        .start(&self.inner, &destination.id, &destination.name);
                }
            }
            Err(err) => self.inner.report(
                ReportLevel::Warn,
                &format!("The copy destinations could not be read, so nothing is copied to them until a restart: {err}"),
            ),
        }
    }

    /// The copy destinations whose syncer runs now (ids, sorted).
    pub fn syncing(&self) -> Vec<String> {
        self.syncers.ids()
    }

    fn inner_workers(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seconds to wait before attempt `attempts + 1`: 1, 2, 4, ... up to 5
/// minutes, with ±25 % jitter.
pub fn backoff_secs(attempts: u32, jitter: f64) -> i64 {
    let base = 2f64
        .powi(attempts.saturating_sub(1).min(9) as i32)
        .min(300.0);
    (base * (0.75 + 0.5 * jitter.clamp(0.0, 1.0)))
        .round()
        .max(1.0) as i64
}

/// Whether `minute` (of the day) is inside the window `start..end`
/// (crossing midnight when `end <= start`).
pub fn in_window(start: u32, end: u32, minute: u32) -> bool {
    if start == end {
        true
    } else if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    }
}

impl Inner {
    /// The engine's state with no worker running (`Engine::start` adds them;
    /// unit tests drive jobs one at a time).
    fn new(store: Store, data_dir: &Path) -> Inner {
        Inner {
            store,
            data_dir: data_dir.to_path_buf(),
            shutdown: AtomicBool::new(false),
            wake: (Mutex::new(0), Condvar::new()),
            workers_alive: AtomicUsize::new(0),
            leased: Mutex::new(HashSet::new()),
            objects_busy: Mutex::new(HashSet::new()),
            remote: Mutex::new(None),
            previous_remote: Mutex::new(None),
            dest_remotes: Mutex::new(HashMap::new()),
            health: destinations::Health::default(),
            throughput: cache::Throughput::default(),
            reporter: OnceLock::new(),
            zone: OnceLock::new(),
            remote_opening: Mutex::new(()),
            keys: OnceLock::new(),
            bucket: Mutex::new((0.0, Instant::now())),
            events: Events::default(),
            activity: activity::Activity::default(),
            options: TransferOptions::default(),
        }
    }

    fn wake(&self) {
        let (counter, condvar) = &self.wake;
        *lock(counter) += 1;
        condvar.notify_all();
    }

    fn concurrency(&self) -> usize {
        Settings::load(&self.store)
            .map(|s| s.transfer_concurrency)
            .unwrap_or(2)
            .clamp(1, 16) as usize
    }

    /// True (and counted out) when more workers run than the setting allows.
    fn retire_if_surplus(&self) -> bool {
        let wanted = self.concurrency();
        let mut alive = self.workers_alive.load(Ordering::SeqCst);
        while alive > wanted {
            match self.workers_alive.compare_exchange(
                alive,
                alive - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => alive = now,
            }
        }
        false
    }

    fn run_worker(self: Arc<Self>) {
        while !self.shutdown.load(Ordering::SeqCst) {
            if self.retire_if_surplus() {
                return;
            }
            let seen = *lock(&self.wake.0);
            match self.lease() {
                Some(job) => {
                    let id = job.id.clone();
                    self.run(job);
                    lock(&self.leased).remove(&id);
                }
                None => {
                    let (counter, condvar) = &self.wake;
                    let guard = lock(counter);
                    if *guard == seen {
                        let _ = condvar.wait_timeout(guard, Duration::from_millis(500));
                    }
                }
            }
        }
    }

    fn uploads_allowed(&self) -> bool {
        let Ok(settings) = Settings::load(&self.store) else {
            return true;
        };
        match &settings.upload_window {
            None => true,
            Some(window) => match (parse_hh_mm(&window.start), parse_hh_mm(&window.end)) {
                (Some(start), Some(end)) => {
                    let minute = match self.zone.get() {
                        Some(zone) => zone.minute_of_day(ids::now_secs()),
                        None => (ids::now_secs().rem_euclid(86_400) / 60) as u32,
                    };
                    in_window(start, end, minute)
                }
                _ => true,
            },
        }
    }

    /// Leases the next due job nobody runs (due time, then age) through the
    /// queue's due index: O(log n), whatever the length of the queue. The
    /// lease set is locked before the snapshot is taken, so a job another
    /// worker just finished (and released) is never seen again.
    fn lease(&self) -> Option<JobRecord> {
        let now = ids::now_secs();
        let uploads_allowed = self.uploads_allowed();
        let mut leased = lock(&self.leased);
        let txn = self.store.read().ok()?;
        let job = self
            .store
            .tables
            .jobs
            .next_due(&txn, now, uploads_allowed, |id| leased.contains(id))
            .ok()??;
        leased.insert(job.id.clone());
        Some(job)
    }

    fn run(&self, job: JobRecord) {
        let Some(kind) = JobKind::from_record(&job) else {
            // A kind this build does not know: leave it for a newer one, parked.
            let _ = self.reschedule(&job, None, jobs::PARKED, None);
            return;
        };
        let result = match &kind {
            JobKind::UploadPart { archive_id, index } => {
                self.upload_part(&job.id, archive_id, *index)
            }
            JobKind::UploadManifest { archive_id } => self.upload_manifest(&job.id, archive_id),
            JobKind::Uncache { archive_id } => self.uncache(&job.id, archive_id),
            JobKind::Cache { archive_id } => self.cache(&job.id, archive_id),
            JobKind::Delete { archive_id } => self.delete(&job.id, archive_id),
            JobKind::DeleteObject { object_id } => self.delete_object(&job.id, object_id),
            JobKind::UploadCatalog { generation } => self.upload_catalog(&job.id, generation),
            JobKind::MoveRemote => self.move_remote(&job.id),
        };
        let archive_id = match &kind {
            JobKind::DeleteObject { .. } | JobKind::UploadCatalog { .. } | JobKind::MoveRemote => {
                None
            }
            JobKind::UploadPart { archive_id, .. }
            | JobKind::UploadManifest { archive_id }
            | JobKind::Uncache { archive_id }
            | JobKind::Cache { archive_id }
            | JobKind::Delete { archive_id } => Some(archive_id.as_str()),
        };
        let now = ids::now_secs();
        if let Some(kind) = result.as_ref().err().and_then(Failure::metrics_kind) {
            metrics::global().add_failure(kind);
        }
        match result {
            Ok(()) => {
                self.health.succeeded(destinations::MAIN);
            }
            Err(Failure::Busy) => {
                let _ = self.reschedule(&job, None, now + 1, None);
            }
            Err(Failure::Transient(message)) => {
                let attempts = job.attempts + 1;
                let delay = backoff_secs(attempts, rand::random::<f64>());
                // A short hiccup is not worth showing; a lasting one is.
                let shown = (attempts >= 3)
                    .then(|| format!("{message} (attempt {attempts}; trying again in {delay} s)"));
                if shown.is_some() {
                    self.health.failed(destinations::MAIN, &message, true);
                }
                let _ = self.reschedule(&job, Some(message), now + delay, archive_id.zip(shown));
            }
            Err(Failure::Permanent(message)) => {
                self.health.failed(destinations::MAIN, &message, true);
                let shown = format!(
                    "{message} Backups of this archive wait until the remote settings are changed."
                );
                let _ = self.reschedule(
                    &job,
                    Some(message),
                    jobs::PARKED,
                    archive_id.zip(Some(shown)),
                );
            }
            Err(Failure::Damaged(reason)) => {
                if let Some(archive_id) = archive_id {
                    let _ = self.mark_damaged(&job.id, archive_id, &reason);
                }
            }
        }
    }

    /// Writes the job's next attempt time (and counts the attempt when
    /// `error` is given), and the archive's error sentence if any.
    fn reschedule(
        &self,
        job: &JobRecord,
        error: Option<String>,
        not_before: i64,
        archive_error: Option<(&str, String)>,
    ) -> Result<(), crate::store::StoreError> {
        let changed =
            self.store.write(
                |txn,
                 tables|
                 -> Result<
                    Option<crate::store::records::ArchiveRecord>,
                    crate::store::StoreError,
                > {
                    if let Some(mut record) = tables.jobs.get(txn, job.id.as_bytes())? {
                        if error.is_some() {
                            record.attempts += 1;
                            record.last_error = error.clone();
                        }
                        record.not_before = not_before;
                        tables.jobs.put(txn, job.id.as_bytes(), &record)?;
                    }
                    if let Some((archive_id, message)) = &archive_error {
                        if let Some(mut archive) =
                            tables.archives.get(txn, archive_id.as_bytes())?
                        {
                            archive.last_error = Some(message.clone());
                            tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                            return Ok(Some(archive));
                        }
                    }
                    Ok(None)
                },
            )?;
        if let Some(archive) = changed {
            self.events.archive(&archive);
        }
        Ok(())
    }

    fn mark_damaged(
        &self,
        job_id: &str,
        archive_id: &str,
        reason: &str,
    ) -> Result<(), crate::store::StoreError> {
        let changed =
            self.store.write(
                |txn,
                 tables|
                 -> Result<
                    Option<crate::store::records::ArchiveRecord>,
                    crate::store::StoreError,
                > {
                    tables.jobs.delete(txn, job_id.as_bytes())?;
                    let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                        return Ok(None);
                    };
                    archive.state = crate::store::records::ArchiveState::Damaged;
                    archive.last_error = Some(reason.to_string());
                    tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                    Ok(Some(archive))
                },
            )?;
        if let Some(archive) = changed {
            self.events.archive(&archive);
        }
        Ok(())
    }

    fn keys(&self) -> Result<&(RepoKeys, Vec<u8>), Failure> {
        if let Some(keys) = self.keys.get() {
            return Ok(keys);
        }
        match keys::load(&self.store) {
            Ok(Some(keys)) => Ok(self.keys.get_or_init(|| keys)),
            Ok(None) => Err(Failure::Permanent(
                "The encryption keys do not exist yet: finish the setup first.".into(),
            )),
            Err(err) => Err(Failure::Permanent(err.to_string())),
        }
    }

    /// The remote of the current settings, opened once per settings change;
    /// the repository config is written to it on first use.
    fn remote(&self) -> Result<Arc<dyn Remote>, Failure> {
        Ok(self.remote_at()?.0)
    }

    /// The current remote and the remote generation it belongs to (read
    /// together), opened once per change. The repository config is
    /// written to it on first use; a place holding another repository's
    /// config is refused, so one appliance never writes into another's.
    fn remote_at(&self) -> Result<(Arc<dyn Remote>, u64), Failure> {
        let (settings, generation) = {
            let txn = self.store.read()?;
            (
                crate::settings::remote::remote_settings_in(
                    &txn,
                    &self.store.tables,
                    &self.data_dir,
                )?,
                keys::generation(&txn, &self.store.tables)?,
            )
        };
        let cached = |settings: &RemoteSettings| {
            lock(&self.remote)
                .as_ref()
                .filter(|cached| &cached.settings == settings && cached.generation == generation)
                .map(|cached| cached.remote.clone())
        };
        if let Some(remote) = cached(&settings) {
            return Ok((remote, generation));
        }
        let _opening = lock(&self.remote_opening);
        if let Some(remote) = cached(&settings) {
            return Ok((remote, generation));
        }
        let remote: Arc<dyn Remote> = Arc::from(crate::remote::open(&settings, &self.options)?);
        self.claim_repository(remote.as_ref())?;
        *lock(&self.remote) = Some(CachedRemote {
            settings,
            generation,
            remote: remote.clone(),
        });
        Ok((remote, generation))
    }

    /// Writes this repository's `config` to a place that has none, and
    /// refuses a place holding another repository's, so one appliance never
    /// writes into another's.
    fn claim_repository(&self, remote: &dyn Remote) -> Result<(), Failure> {
        let (_, config) = self.keys()?;
        match remote.get_at_most(crate::repo::CONFIG_KEY, crate::repo::MAX_CONFIG_BYTES) {
            Ok(found) if &found == config => Ok(()),
            Ok(_) => Err(Failure::Permanent(format!(
                "{} holds the backups of another appliance; nothing is written there. Choose an empty bucket or prefix.",
                remote.describe()
            ))),
            Err(err) if err.kind == crate::remote::ErrorKind::NotFound => {
                Ok(remote.put(crate::repo::CONFIG_KEY, config)?)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The remote generation now.
    fn generation(&self) -> Result<u64, Failure> {
        let txn = self.store.read()?;
        Ok(keys::generation(&txn, &self.store.tables)?)
    }

    /// The remote a move copies from (`settings`), opened once per move.
    fn previous_remote(&self, settings: &RemoteSettings) -> Result<Arc<dyn Remote>, Failure> {
        let mut previous = lock(&self.previous_remote);
        if let Some((open, remote)) = previous.as_ref() {
            if open == settings {
                return Ok(remote.clone());
            }
        }
        let remote: Arc<dyn Remote> = Arc::from(crate::remote::open(settings, &self.options)?);
        *previous = Some((settings.clone(), remote.clone()));
        Ok(remote)
    }

    fn report(&self, level: ReportLevel, message: &str) {
        match self.reporter.get() {
            Some(reporter) => reporter(level, message),
            None => eprintln!("piarchive: {message}"),
        }
    }

    /// Holds `bytes` of upload back to the configured bandwidth limit.
    fn throttle(&self, bytes: usize) {
        let rate = Settings::load(&self.store)
            .map(|s| s.upload_bandwidth_bytes_per_sec)
            .unwrap_or(0);
        if rate == 0 {
            return;
        }
        let rate = rate as f64;
        let wait = {
            let mut bucket = lock(&self.bucket);
            let now = Instant::now();
            let refill = now.duration_since(bucket.1).as_secs_f64() * rate;
            bucket.0 = (bucket.0 + refill).min(rate);
            bucket.1 = now;
            bucket.0 -= bytes as f64;
            if bucket.0 < 0.0 {
                Duration::from_secs_f64(-bucket.0 / rate)
            } else {
                Duration::ZERO
            }
        };
        std::thread::sleep(wait);
    }

    fn archive_path(&self, archive_id: &str) -> PathBuf {
        self.data_dir.join("archives").join(archive_id)
    }
}

/// Claims an object id for one upload or delete; released on drop.
struct ObjectClaim<'a> {
    inner: &'a Inner,
    object_id: String,
}

impl<'a> ObjectClaim<'a> {
    fn take(inner: &'a Inner, object_id: &str) -> Result<ObjectClaim<'a>, Failure> {
        if !lock(&inner.objects_busy).insert(object_id.to_string()) {
            return Err(Failure::Busy);
        }
        Ok(ObjectClaim {
            inner,
            object_id: object_id.to_string(),
        })
    }
}

impl Drop for ObjectClaim<'_> {
    fn drop(&mut self) {
        lock(&self.inner.objects_busy).remove(&self.object_id);
    }
}

#[cfg(test)]
mod tests;
