//! From what the appliance sees to notices: the problems an observation
//! shows ([`problems`]) and the tracker that turns their start and end into
//! notices ([`Tracker::step`]), one when a problem starts and one when it
//! ends, with flapping held back.
//!
//! Pure: time is handed in, nothing here reads the clock, the store or the
//! network. The tracker's state is a plain value the notifier keeps in LMDB,
//! so a restart neither repeats nor forgets a notice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A problem that came back within this long of its resolution notice is
/// notified again only once it has lasted this long (no storm of notices).
pub const FLAP_QUIET_SECONDS: i64 = 3600;
/// A backup that has not moved for this long is `backup_stalled`.
pub const STALLED_AFTER_SECONDS: i64 = 86_400;
/// The recovery passphrase reminder comes this long after setup.
pub const PASSPHRASE_REMINDER_AFTER_SECONDS: i64 = 7 * 86_400;

/// A notice to send: what started or ended, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub event: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub title: String,
    pub message: String,
    pub detail: String,
    /// Unix seconds.
    pub at: i64,
    pub resolved: bool,
    /// The user whose archive it is about, for a problem with one archive
    /// (its owner's own channels get it too); never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One problem the appliance has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which problem: the event, and the archive for one about an archive.
    pub key: String,
    pub event: &'static str,
    pub severity: &'static str,
    pub title: String,
    pub message: String,
    pub detail: String,
    /// Seconds the problem must last before it is notified.
    pub notify_after: i64,
    /// The user whose archive it is about, if it is about one archive.
    pub owner: Option<String>,
}

/// An archive whose remote copy is known to be bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRef {
    pub id: String,
    pub name: String,
    pub owner: String,
}

/// An archive whose last verification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedArchive {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// Why it failed, as a sentence.
    pub reason: String,
}

/// A copy destination that cannot be reached (or refuses what is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutage {
    /// The destination's id (`d_…`): the problem's key.
    pub id: String,
    /// Its name, as the admin gave it.
    pub name: String,
    /// The error, as a sentence (the engine's).
    pub error: String,
}

/// The start of a copy destination's `remote_unreachable` title; the name
/// follows (the resolution takes the name back from it).
const COPY_UNREACHABLE_TITLE: &str = "Backups cannot reach ";

/// The problem key of copy destination `id`'s outage.
fn copy_key(id: &str) -> String {
    format!("remote_unreachable/{id}")
}

/// What the appliance sees now; the notifier's caller fills it in from the
/// engine, the catalog, the disk and the settings (the same sources as the
/// LEDs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The remote's current problem as a sentence (the engine's).
    pub remote_error: Option<String>,
    /// No remote request finished since start: whether the remote works is
    /// not known, so a known outage is neither resolved nor started.
    pub remote_unknown: bool,
    /// Each copy destination (issue 24) with a lasting problem now: its
    /// own `remote_unreachable` problem, named.
    pub copy_outages: Vec<CopyOutage>,
    /// Copy destinations not heard from since start (ids): a known outage
    /// of one is neither resolved nor started.
    pub copies_unknown: Vec<String>,
    pub damaged: Vec<ArchiveRef>,
    /// Archives with an off-site copy (backed up, uncached or being
    /// fetched back), for "backed up" notices to their owners.
    pub backed_up: Vec<ArchiveRef>,
    /// Archives whose last verification failed (found damage, or could not
    /// check the remote) and has not passed since.
    pub verification_failed: Vec<FailedArchive>,
    /// `(free, needed)` bytes when the disk is below its reserve.
    pub disk_low: Option<(u64, u64)>,
    /// Archives wait to be uploaded (or a move runs) and nothing moved since.
    pub waiting_since: Option<i64>,
    /// Backups wait and the upload window has not opened since this time.
    pub window_closed_since: Option<i64>,
    /// The last firmware update failed: `(version, message)`.
    pub update_failed: Option<(String, String)>,
    /// The recovery passphrase was shown at setup (this time) and never
    /// typed back.
    pub passphrase_unconfirmed_since: Option<i64>,
}

fn hours(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} seconds"),
        s if s < 7200 => format!("{} minutes", s / 60),
        s => format!("{} hours", s / 3600),
    }
}

/// The problems whose presence `seen` cannot tell (left as they are).
pub fn unknown(seen: &Observation) -> Vec<String> {
    let main = seen
        .remote_unknown
        .then(|| "remote_unreachable".to_string());
    main.into_iter()
        .chain(seen.copies_unknown.iter().map(|id| copy_key(id)))
        .collect()
}

/// The problems `seen` shows, `now` and the remote threshold given.
pub fn problems(seen: &Observation, now: i64, remote_after: i64) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |key: String, event, severity, title: &str, message: String, detail: String| {
        out.push(Problem {
            key,
            event,
            severity,
            title: title.to_string(),
            message,
            detail,
            notify_after: 0,
            owner: None,
        })
    };
    if let Some(error) = &seen.remote_error {
        add(
            "remote_unreachable".into(),
            "remote_unreachable",
            "critical",
            "Backups cannot reach the storage",
            format!("For more than {} the appliance could not reach the storage where the backups go. New files are kept on the box and sent once it is back; check the internet connection and the storage account.", hours(remote_after)),
            error.clone(),
        );
    }
    for outage in &seen.copy_outages {
        add(
            copy_key(&outage.id),
            "remote_unreachable",
            "critical",
            &format!("{COPY_UNREACHABLE_TITLE}{}", outage.name),
            format!("For more than {} the appliance could not reach \u{201c}{}\u{201d}, one of the places the backups are copied to. The other places are not held up; the copies there are made once it is back. Check that it is switched on, online and has room.", hours(remote_after), outage.name),
            outage.error.clone(),
        );
    }
    for archive in &seen.damaged {
        add(
            format!("archive_damaged/{}", archive.id),
            "archive_damaged",
            "critical",
            "A backup copy is damaged",
            format!("The off-site copy of \u{201c}{}\u{201d} is damaged. Keep the files on the box and open the appliance's page to repair it.", archive.name),
            format!("archive {} (owner {})", archive.id, archive.owner),
        );
    }
    for archive in &seen.verification_failed {
        add(
            format!("verification_failed/{}", archive.id),
            "verification_failed",
            "warning",
            "A verification failed",
            format!("Checking the off-site copy of \u{201c}{}\u{201d} did not succeed. The files on the box are not affected; open the appliance's page to see what was found, and verify again once it is fixed.", archive.name),
            format!("archive {} (owner {}): {}", archive.id, archive.owner, archive.reason),
        );
    }
    if let Some((free, needed)) = seen.disk_low {
        add("disk_low".into(), "disk_low", "warning", "The appliance's disk is nearly full",
            "The appliance's disk is nearly full, so new uploads may be refused. Free some space (uncache or delete archives) or use a bigger disk.".into(),
            format!("{} free, {} kept in reserve", crate::units::human_size(free), crate::units::human_size(needed)));
    }
    if let Some(since) = seen
        .waiting_since
        .filter(|s| now - s >= STALLED_AFTER_SECONDS)
    {
        add(
            "backup_stalled".into(),
            "backup_stalled",
            "warning",
            "Backups have not moved for a day",
            format!(
                "Files are waiting to be backed up but nothing was uploaded for {}.",
                hours(now - since)
            ),
            "no part uploaded while archives wait".into(),
        );
    }
    if let Some(since) = seen
        .window_closed_since
        .filter(|s| now - s >= STALLED_AFTER_SECONDS)
    {
        add("upload_window".into(), "upload_window_closed", "warning", "The upload window never opened",
            format!("Files are waiting to be backed up, but the upload window set in the settings has not opened for {}. Check the window and the appliance's clock.", hours(now - since)),
            "upload window closed while archives wait".into());
    }
    if let Some((version, message)) = &seen.update_failed {
        add(format!("update_failed/{version}"), "update_failed", "warning", "A firmware update failed",
            format!("The update to version {version} did not work; the appliance went back to the version it ran before and keeps working."),
            message.clone());
    }
    if let Some(since) = seen
        .passphrase_unconfirmed_since
        .filter(|s| now - s >= PASSPHRASE_REMINDER_AFTER_SECONDS)
    {
        add("passphrase_unconfirmed".into(), "passphrase_unconfirmed", "warning", "The recovery passphrase was never confirmed",
            "The recovery passphrase shown at setup was never typed back. Without it the backups cannot be restored if the box is lost: find it and confirm it on the Account page.".into(),
            format!("shown at setup (Unix time {since})"));
    }
    let owners = seen
        .damaged
        .iter()
        .map(|a| (&a.id, &a.owner))
        .chain(seen.verification_failed.iter().map(|a| (&a.id, &a.owner)));
    for (id, owner) in owners {
        for problem in out
            .iter_mut()
            .filter(|p| p.key.ends_with(&format!("/{id}")))
        {
            problem.owner = Some(owner.clone());
        }
    }
    for remote in out.iter_mut().filter(|p| p.event == "remote_unreachable") {
        remote.notify_after = remote_after;
    }
    out
}

/// What the tracker remembers of one problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub event: String,
    pub severity: String,
    pub title: String,
    pub message: String,
    pub detail: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// Since when the problem is present (or was, while inactive).
    pub since: i64,
    pub active: bool,
    /// A start notice went out and no resolution yet.
    pub notified: bool,
    /// When the last resolution notice went out.
    pub resolved_at: Option<i64>,
}

/// The problems known, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    pub problems: BTreeMap<String, Tracked>,
}

impl Tracker {
    /// Takes the problems present at `now`; returns the notices due, in
    /// the order they happened.
    /// Problems keyed in `unknown` are left as they are.
    pub fn step(&mut self, now: i64, present: Vec<Problem>, unknown: &[String]) -> Vec<Notice> {
        let mut notices = Vec::new();
        let keys: Vec<String> = present.iter().map(|p| p.key.clone()).collect();
        for problem in present {
            let entry = self
                .problems
                .entry(problem.key.clone())
                .or_insert_with(|| Tracked {
                    event: String::new(),
                    severity: String::new(),
                    title: String::new(),
                    message: String::new(),
                    detail: String::new(),
                    owner: None,
                    since: now,
                    active: true,
                    notified: false,
                    resolved_at: None,
                });
            if !entry.active {
                entry.active = true;
                entry.since = now;
            }
            entry.event = problem.event.to_string();
            entry.severity = problem.severity.to_string();
            entry.title = problem.title;
            entry.message = problem.message;
            entry.detail = problem.detail;
            entry.owner = problem.owner;
            let flapping = entry
                .resolved_at
                .is_some_and(|at| entry.since - at < FLAP_QUIET_SECONDS);
            let wait = if flapping {
                problem.notify_after.max(FLAP_QUIET_SECONDS)
            } else {
                problem.notify_after
            };
            if !entry.notified && now - entry.since >= wait {
                entry.notified = true;
                notices.push(Notice {
                    event: entry.event.clone(),
                    severity: entry.severity.clone(),
                    title: entry.title.clone(),
                    message: entry.message.clone(),
                    detail: entry.detail.clone(),
                    at: now,
                    resolved: false,
                    owner: entry.owner.clone(),
                });
            }
        }
        for (key, entry) in self.problems.iter_mut() {
            if !entry.active || keys.contains(key) || unknown.contains(key) {
                continue;
            }
            entry.active = false;
            if entry.notified {
                entry.notified = false;
                entry.resolved_at = Some(now);
                notices.push(resolution(entry, now));
            }
        }
        // Forget what ended long enough ago to no longer count as flapping.
        self.problems.retain(|_, entry| {
            entry.active
                || entry
                    .resolved_at
                    .is_some_and(|at| now - at < FLAP_QUIET_SECONDS)
        });
        notices
    }

    /// Whether a notified problem is present (the heartbeat then stays
    /// silent).
    pub fn anything_wrong(&self) -> bool {
        self.problems.values().any(|entry| entry.notified)
    }
}

fn resolution(entry: &Tracked, now: i64) -> Notice {
    let copy_name = entry.title.strip_prefix(COPY_UNREACHABLE_TITLE);
    let (title, message) = match entry.event.as_str() {
        "remote_unreachable" if copy_name.is_some() => {
            let name = copy_name.unwrap_or_default();
            (
                format!("Backups reach {name} again"),
                format!("\u{201c}{name}\u{201d} is reachable again; the copies there are being brought up to date."),
            )
        }
        "remote_unreachable" => (
            "Backups reach the storage again".to_string(),
            "The storage is reachable again; waiting files are being backed up.".to_string(),
        ),
        "disk_low" => (
            "The disk has room again".to_string(),
            "The appliance's disk has enough free space again.".to_string(),
        ),
        "verification_failed" => (
            "A verification passed again".to_string(),
            "The archive was verified again and its off-site copy is good.".to_string(),
        ),
        "backup_stalled" | "upload_window_closed" => (
            "Backups are moving again".to_string(),
            "Files are being backed up again.".to_string(),
        ),
        _ => (
            format!("Resolved: {}", entry.title),
            format!("This is no longer a problem: {}", entry.message),
        ),
    };
    Notice {
        event: entry.event.clone(),
        severity: "info".into(),
        title,
        message,
        detail: entry.detail.clone(),
        at: now,
        resolved: true,
        owner: entry.owner.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> Observation {
        Observation {
            remote_error: Some("Remote unreachable: connection refused.".into()),
            ..Observation::default()
        }
    }

    /// Runs the tracker over `(time, observation)` and lists the notices as
    /// `time event start|resolved`.
    fn run(steps: &[(i64, Observation)], remote_after: i64) -> Vec<String> {
        let mut tracker = Tracker::default();
        let mut out = Vec::new();
        for (now, seen) in steps {
            let unknown = unknown(seen);
            for notice in tracker.step(*now, problems(seen, *now, remote_after), &unknown) {
                let what = if notice.resolved { "resolved" } else { "start" };
                out.push(format!("{now} {} {what}", notice.event));
            }
        }
        out
    }

    #[test]
    fn the_remote_is_notified_after_the_threshold_once_and_resolved_once() {
        let ok = Observation::default();
        let steps = [
            (0, outage()),
            (59, outage()),
            (60, outage()),
            (61, outage()),
            (500, outage()),
            (501, ok.clone()),
            (502, ok),
        ];
        assert_eq!(
            run(&steps, 60),
            [
                "60 remote_unreachable start",
                "501 remote_unreachable resolved"
            ]
        );
    }

    #[test]
    fn a_restart_neither_repeats_nor_resolves_an_outage() {
        let unknown = Observation {
            remote_unknown: true,
            ..Observation::default()
        };
        let steps = [
            (0, outage()),
            (60, outage()),
            (70, unknown.clone()),
            (80, unknown),
            (90, outage()),
        ];
        assert_eq!(run(&steps, 60), ["60 remote_unreachable start"]);
    }

    #[test]
    fn each_copy_destination_is_its_own_outage_named_and_resolved() {
        let nas = |error: &str| Observation {
            copy_outages: vec![CopyOutage {
                id: "d_nas".into(),
                name: "Grandpa's NAS".into(),
                error: error.into(),
            }],
            ..Observation::default()
        };
        let both = Observation {
            remote_error: Some("Remote unreachable.".into()),
            ..nas("connection refused")
        };
        let mut tracker = Tracker::default();
        let mut notices = Vec::new();
        let restarted = Observation {
            remote_unknown: true,
            copies_unknown: vec!["d_nas".into()],
            ..Observation::default()
        };
        for (now, seen) in [
            (0, nas("connection refused")),
            (60, both.clone()),
            (120, both),
            (130, restarted),
            (200, Observation::default()),
        ] {
            notices.extend(tracker.step(now, problems(&seen, now, 60), &unknown(&seen)));
        }
        let lines: Vec<String> = notices
            .iter()
            .map(|n| format!("{} {} {} {}", n.at, n.event, n.resolved, n.title))
            .collect();
        assert_eq!(
            lines,
            [
                "60 remote_unreachable false Backups cannot reach Grandpa's NAS",
                "120 remote_unreachable false Backups cannot reach the storage",
                "200 remote_unreachable true Backups reach the storage again",
                "200 remote_unreachable true Backups reach Grandpa's NAS again",
            ]
        );
        assert!(notices[0].message.contains("\u{201c}Grandpa's NAS\u{201d}"));
        assert_eq!(notices[0].detail, "connection refused");
        assert!(notices[0]
            .message
            .contains("The other places are not held up"));
    }

    #[test]
    fn a_short_outage_says_nothing() {
        let steps = [
            (0, outage()),
            (30, Observation::default()),
            (31, outage()),
            (80, outage()),
        ];
        assert_eq!(run(&steps, 60), Vec::<String>::new());
    }

    #[test]
    fn flapping_is_held_back_for_an_hour() {
        let ok = Observation::default;
        let steps = [
            (0, outage()),
            (10, outage()),
            (20, ok()),
            // Back within the hour: silent while it flaps...
            (100, outage()),
            (200, ok()),
            (300, outage()),
            (400, ok()),
            // ...notified again once it stays for an hour.
            (1000, outage()),
            (1000 + 3599, outage()),
            (1000 + 3600, outage()),
            (1000 + 3700, ok()),
            // After an hour of quiet it is a new problem.
            (1000 + 3700 + 3600, outage()),
            (1000 + 3700 + 3610, outage()),
        ];
        assert_eq!(
            run(&steps, 10),
            [
                "10 remote_unreachable start",
                "20 remote_unreachable resolved",
                "4600 remote_unreachable start",
                "4700 remote_unreachable resolved",
                "8310 remote_unreachable start",
            ]
        );
    }

    #[test]
    fn each_damaged_archive_is_its_own_problem() {
        let damaged = |ids: &[&str]| Observation {
            damaged: ids
                .iter()
                .map(|id| ArchiveRef {
                    id: id.to_string(),
                    name: format!("Photos <{id}>\r\nX-Evil: 1"),
                    owner: "u1".into(),
                })
                .collect(),
            ..Observation::default()
        };
        let steps = [
            (0, damaged(&["a"])),
            (5, damaged(&["a", "b"])),
            (9, damaged(&["b"])),
        ];
        assert_eq!(
            run(&steps, 60),
            [
                "0 archive_damaged start",
                "5 archive_damaged start",
                "9 archive_damaged resolved"
            ]
        );
    }

    #[test]
    fn a_failed_verification_is_one_problem_per_archive_with_its_owner() {
        let failed = |ids: &[&str]| Observation {
            verification_failed: ids
                .iter()
                .map(|id| FailedArchive {
                    id: id.to_string(),
                    name: format!("Trip {id}"),
                    owner: format!("owner-{id}"),
                    reason: "1 of 3 parts failed verification".into(),
                })
                .collect(),
            ..Observation::default()
        };
        let steps = [
            (0, failed(&["a", "b"])),
            (5, failed(&["a", "b"])),
            (9, failed(&["b"])),
        ];
        assert_eq!(
            run(&steps, 60),
            [
                "0 verification_failed start",
                "0 verification_failed start",
                "9 verification_failed resolved"
            ]
        );
        let found = problems(&failed(&["a"]), 0, 60);
        assert_eq!(found[0].owner.as_deref(), Some("owner-a"));
        assert!(found[0].message.contains("Trip a"), "{found:?}");
        assert!(found[0].detail.contains("parts failed"), "{found:?}");
    }

    #[test]
    fn stalls_windows_and_the_passphrase_wait_their_time() {
        let seen = Observation {
            waiting_since: Some(0),
            window_closed_since: Some(0),
            passphrase_unconfirmed_since: Some(0),
            ..Observation::default()
        };
        let events = |now| -> Vec<&'static str> {
            problems(&seen, now, 60).iter().map(|p| p.event).collect()
        };
        assert!(events(86_399).is_empty());
        assert_eq!(events(86_400), ["backup_stalled", "upload_window_closed"]);
        assert_eq!(
            events(7 * 86_400),
            [
                "backup_stalled",
                "upload_window_closed",
                "passphrase_unconfirmed"
            ]
        );
    }
}
