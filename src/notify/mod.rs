//! Notifications: telling someone, in words, when something is wrong and
//! again when it is fixed (DESIGN.md "Notifications", API.md "Additions
//! (third round)").
//!
//! The notifier thread ([`Notifier`]) looks at the appliance every
//! [`TICK`] through an observer the composition root hands in (the same
//! sources as the LEDs: the engine's remote error, the catalog, the disk),
//! turns problem start and end into notices ([`problems::Tracker`], pure),
//! queues them in LMDB per channel ([`queue`]) and sends each channel's
//! oldest due notice ([`channels`]), retrying with backoff and giving up
//! after a day with a system-log line. It runs on its own thread and
//! holds no lock or transaction while it sends, so a channel that hangs
//! delays only its own notices, never a backup.
//!
//! Must not touch: HTTP handlers and pages (`web::notifications` is the
//! glue), the engine's queue.

pub mod channels;
pub mod digest;
pub mod members;
pub mod problems;
pub mod queue;
pub mod settings;
pub mod verifications;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admin::log::SystemLog;
use crate::store::records::NoticeRecord;
use crate::store::Store;
pub use channels::Sender;
use problems::{Notice, Observation};
use settings::{Channel, NotifySettings};

/// How often the notifier looks at the appliance.
pub const TICK: Duration = Duration::from_secs(1);
/// While nothing is wrong, each heartbeat URL gets a GET this often.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(3600);

/// What the observer is: called once per tick with the time, it says what
/// the appliance sees now.
pub type Observer = Box<dyn FnMut(i64) -> Observation + Send>;

/// What the digest reads: called with the start of the period when a
/// digest is due, it gives the numbers of [`digest::compose`].
pub type DigestSource = Box<dyn FnMut(i64) -> digest::DigestInput + Send>;

/// The weekly digest's period and where its numbers come from.
pub struct DigestConfig {
    pub period: Duration,
    pub source: DigestSource,
}

/// One channel's answer to "Send a test".
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub kind: &'static str,
    /// Where it went (no secret).
    pub target: String,
    pub ok: bool,
    pub message: String,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sends a test notice through every channel, now, and says how each went.
pub fn send_test(sender: &Sender, settings: &NotifySettings) -> Vec<TestResult> {
    let notice = Notice {
        event: "test".into(),
        severity: "info".into(),
        title: "Test from piarchive".into(),
        message: "This is a test: notifications from your backup appliance reach you here.".into(),
        detail: "sent from the Notifications page".into(),
        at: now(),
        resolved: false,
        owner: None,
    };
    let sends: Vec<_> = settings
        .channels
        .iter()
        .map(|channel| {
            let (sender, channel, notice) = (sender.clone(), channel.clone(), notice.clone());
            std::thread::spawn(move || {
                let result = sender.send(&channel, &notice);
                TestResult {
                    kind: channel.kind(),
                    target: channels::shown_url(&channel.target()),
                    ok: result.is_ok(),
                    message: result.unwrap_or_else(|err| err),
                }
            })
        })
        .collect();
    sends
        .into_iter()
        .map(|send| {
            send.join().unwrap_or_else(|_| TestResult {
                kind: "unknown",
                target: String::new(),
                ok: false,
                message: "The test stopped unexpectedly.".into(),
            })
        })
        .collect()
}

/// The running notifier thread.
pub struct Notifier {
    stop: Arc<AtomicBool>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Notifier {
    /// Starts the thread. Best effort: a store error is logged and the next
    /// tick tries again.
    pub fn start(
        store: Store,
        log: Arc<SystemLog>,
        sender: Sender,
        observer: Observer,
        digest: DigestConfig,
    ) -> Notifier {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let mut worker = Worker {
            store,
            log,
            sender,
            observer,
            digest,
            last_heartbeat: None,
            heartbeat_failing: false,
            failing: HashMap::new(),
        };
        let (thread_stop, thread_wake) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    worker.tick();
                    let (lock, signal) = &*thread_wake;
                    let woken = lock.lock().unwrap_or_else(|e| e.into_inner());
                    let (mut woken, _) = signal
                        .wait_timeout_while(woken, TICK, |woken| !*woken)
                        .unwrap_or_else(|e| e.into_inner());
                    *woken = false;
                }
            })
            .ok();
        Notifier {
            stop,
            wake,
            thread: Mutex::new(thread),
        }
    }

    /// Looks again now (settings changed).
    pub fn wake(&self) {
        let (lock, signal) = &*self.wake;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        signal.notify_one();
    }

    /// Stops the thread after the send under way (at most [`channels::DEADLINE`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Every channel a notice can be queued for, by queue key: the admin's
/// (heartbeats apart) and each member's own.
struct Targets {
    admin: Vec<(String, Channel)>,
    /// `(user id, queue key, channel)`.
    members: Vec<(String, String, Channel)>,
}

impl Targets {
    fn load(store: &Store, settings: &NotifySettings) -> Result<Targets, crate::store::StoreError> {
        let admin = settings
            .channels
            .iter()
            .filter(|channel| !matches!(channel, Channel::Heartbeat { .. }))
            .map(|channel| (channel.key(), channel.clone()))
            .collect();
        let mut members = Vec::new();
        for (user_id, own) in members::MemberChannels::all(store)? {
            for (key, channel) in own.channels(&user_id, settings) {
                members.push((user_id.clone(), key, channel));
            }
        }
        Ok(Targets { admin, members })
    }

    fn admin_keys(&self) -> Vec<String> {
        self.admin.iter().map(|(key, _)| key.clone()).collect()
    }

    /// The queue keys of `owner`'s own channels (none without an owner).
    fn member_keys(&self, owner: Option<&str>) -> Vec<String> {
        self.members
            .iter()
            .filter(|(user_id, _, _)| Some(user_id.as_str()) == owner)
            .map(|(_, key, _)| key.clone())
            .collect()
    }

    fn find(&self, key: &str) -> Option<&Channel> {
        let admin = self.admin.iter().map(|(k, channel)| (k, channel));
        let members = self.members.iter().map(|(_, k, channel)| (k, channel));
        admin
            .chain(members)
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, channel)| channel)
    }
}

struct Worker {
    store: Store,
    log: Arc<SystemLog>,
    sender: Sender,
    observer: Observer,
    digest: DigestConfig,
    last_heartbeat: Option<Instant>,
    heartbeat_failing: bool,
    /// Channels whose last attempt failed (logged once per failure streak).
    failing: HashMap<String, String>,
}

impl Worker {
    fn tick(&mut self) {
        let settings = match NotifySettings::load(&self.store) {
            Ok(settings) => settings,
            Err(err) => {
                return self.warn(&format!("Notifications cannot read their settings: {err}"))
            }
        };
        let targets = match Targets::load(&self.store, &settings) {
            Ok(targets) => targets,
            Err(err) => {
                return self.warn(&format!(
                    "Notifications cannot read members' channels: {err}"
                ))
            }
        };
        let now = now();
        let seen = (self.observer)(now);
        let anything_wrong = match self.track(&settings, &targets, &seen, now) {
            Ok(wrong) => wrong,
            Err(err) => return self.warn(&format!("Notifications cannot be queued: {err}")),
        };
        if let Err(err) = self.digest(&settings, &targets, now) {
            self.warn(&format!("The notification digest cannot be queued: {err}"));
        }
        self.deliver(&targets, now);
        self.heartbeat(&settings, anything_wrong);
    }

    /// Queues the digest for the admin channels when it is on and due.
    fn digest(
        &mut self,
        settings: &NotifySettings,
        targets: &Targets,
        now: i64,
    ) -> Result<(), crate::store::StoreError> {
        let (last, problems) = queue::digest_state(&self.store)?;
        match (settings.digest, last) {
            (settings::DigestSetting::Off, None) => Ok(()),
            (settings::DigestSetting::Off, Some(_)) => {
                queue::digest_period_starts(&self.store, None, None, &[])
            }
            (settings::DigestSetting::Weekly, None) => {
                queue::digest_period_starts(&self.store, Some(now), None, &[])
            }
            (settings::DigestSetting::Weekly, Some(since)) => {
                let period = self.digest.period.as_secs() as i64;
                if !digest::due(Some(since), now, period) {
                    return Ok(());
                }
                let input = (self.digest.source)(since);
                let notice = digest::compose(&input, &problems, since, now);
                let keys = targets.admin_keys();
                self.log.info(
                    "notify",
                    &format!("The weekly summary goes to {} channel(s).", keys.len()),
                    Default::default(),
                );
                queue::digest_period_starts(&self.store, Some(now), Some(&notice), &keys)
            }
        }
    }

    /// Runs the tracker, finds archives newly backed up and queues the
    /// notices (problems to the admin channels and to the owner's own,
    /// "backed up" to the owner's own only); returns whether a notified
    /// problem is present.
    fn track(
        &mut self,
        settings: &NotifySettings,
        targets: &Targets,
        seen: &Observation,
        now: i64,
    ) -> Result<bool, crate::store::StoreError> {
        let mut tracker = queue::load_tracker(&self.store)?;
        let present =
            problems::problems(seen, now, settings.remote_unreachable_after_seconds as i64);
        let before = tracker.clone();
        let notices = tracker.step(now, present, &problems::unknown(seen));
        let known = queue::load_backed_up(&self.store)?;
        let (backed_up, done) = members::newly_backed_up(known.as_ref(), &seen.backed_up, now);
        let backed_up = (known.as_ref() != Some(&backed_up)).then_some(backed_up);
        if tracker == before && backed_up.is_none() {
            return Ok(tracker.anything_wrong());
        }
        let mut queued = Vec::new();
        for notice in notices {
            let mut keys = targets.admin_keys();
            keys.extend(targets.member_keys(notice.owner.as_deref()));
            let what = if notice.resolved {
                "Resolved"
            } else {
                "Problem"
            };
            self.log.info(
                "notify",
                &format!(
                    "{what}: {} ({}); notifying {} channel(s).",
                    notice.title,
                    notice.event,
                    keys.len()
                ),
                Default::default(),
            );
            queued.push((notice, keys));
        }
        for notice in done {
            let keys = targets.member_keys(notice.owner.as_deref());
            if !keys.is_empty() {
                queued.push((notice, keys));
            }
        }
        queue::commit(&self.store, &tracker, backed_up.as_ref(), &queued)?;
        Ok(tracker.anything_wrong())
    }

    /// Sends each channel's oldest due notice.
    fn deliver(&mut self, targets: &Targets, now: i64) {
        let heads = match queue::heads(&self.store) {
            Ok(heads) => heads,
            Err(err) => return self.warn(&format!("Notifications cannot read their queue: {err}")),
        };
        for (key, record) in heads {
            let channel = targets.find(&key);
            let outcome = match channel {
                None => queue::remove(&self.store, &key, record.seq),
                Some(_) if now - record.at > queue::GIVE_UP_AFTER_SECONDS => {
                    self.log.error(
                        "notify",
                        &format!(
                            "Gave up sending the notice {:?} ({}) after a day and {} attempts; the last error: {}",
                            record.title,
                            record.event,
                            record.attempts,
                            record.last_error.as_deref().unwrap_or("none")
                        ),
                        Default::default(),
                    );
                    queue::remove(&self.store, &key, record.seq)
                }
                Some(_) if record.next_attempt_at > now => Ok(()),
                Some(channel) => self.send(channel, &key, &record, now),
            };
            if let Err(err) = outcome {
                self.warn(&format!("Notifications cannot update their queue: {err}"));
            }
        }
    }

    fn send(
        &mut self,
        channel: &Channel,
        key: &str,
        record: &NoticeRecord,
        now: i64,
    ) -> Result<(), crate::store::StoreError> {
        let notice = Notice {
            event: record.event.clone(),
            severity: record.severity.clone(),
            title: record.title.clone(),
            message: record.message.clone(),
            detail: record.detail.clone(),
            at: record.at,
            resolved: record.resolved,
            owner: None,
        };
        match self.sender.send(channel, &notice) {
            Ok(_) => {
                if self.failing.remove(key).is_some() {
                    self.log.info(
                        "notify",
                        &format!(
                            "The {} channel {} works again.",
                            channel.kind(),
                            channels::shown_url(&channel.target())
                        ),
                        Default::default(),
                    );
                }
                queue::remove(&self.store, key, record.seq)
            }
            Err(sentence) => {
                if self.failing.get(key) != Some(&sentence) {
                    self.log.warn(
                        "notify",
                        &format!(
                            "The {} channel could not send {:?}; trying again later. {sentence}",
                            channel.kind(),
                            record.title
                        ),
                        Default::default(),
                    );
                    self.failing.insert(key.to_string(), sentence.clone());
                }
                queue::failed(&self.store, key, record.seq, now, &sentence)
            }
        }
    }

    /// Pings every heartbeat URL when due and nothing is wrong.
    fn heartbeat(&mut self, settings: &NotifySettings, anything_wrong: bool) {
        let due = self
            .last_heartbeat
            .is_none_or(|at| at.elapsed() >= HEARTBEAT_PERIOD);
        if anything_wrong || !due {
            return;
        }
        let urls: Vec<&Channel> = settings
            .channels
            .iter()
            .filter(|channel| matches!(channel, Channel::Heartbeat { .. }))
            .collect();
        if urls.is_empty() {
            return;
        }
        let ping = Notice {
            event: "heartbeat".into(),
            severity: "info".into(),
            title: String::new(),
            message: String::new(),
            detail: String::new(),
            at: now(),
            resolved: false,
            owner: None,
        };
        let mut all_ok = true;
        for channel in urls {
            if let Err(sentence) = self.sender.send(channel, &ping) {
                all_ok = false;
                if !self.heartbeat_failing {
                    self.log.warn(
                        "notify",
                        &format!("The heartbeat failed: {sentence}"),
                        Default::default(),
                    );
                }
            }
        }
        self.heartbeat_failing = !all_ok;
        // A failed ping is tried again in a minute, not an hour.
        self.last_heartbeat = Some(if all_ok {
            Instant::now()
        } else {
            Instant::now()
                .checked_sub(HEARTBEAT_PERIOD - Duration::from_secs(60))
                .unwrap_or_else(Instant::now)
        });
    }

    fn warn(&self, sentence: &str) {
        self.log.warn("notify", sentence, Default::default());
    }
}
