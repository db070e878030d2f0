//! The weekly digest (`"digest": "weekly"`): once a period (a week, or
//! `digest_period_seconds` in the config file) one notice to the admin
//! channels saying what each member backed up, how much has a copy off
//! the box, what is only on the box, the disk space and the problems of
//! the period.
//!
//! Pure: [`compose`] turns numbers handed in into the notice; [`due`] says
//! when. The notifier keeps the last send time and the period's problems
//! in LMDB (`meta` keys `notify_digest_at`, `notify_digest_problems`).

use serde::{Deserialize, Serialize};

use super::problems::Notice;
use crate::units::human_size;

/// At most this many problems are kept for one digest.
pub const MAX_PROBLEMS: usize = 50;

/// What one member added in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberWeek {
    pub username: String,
    pub archives: u64,
    pub bytes: u64,
}

/// The numbers a digest is made of; the caller reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestInput {
    /// Every member, with what they added in the period (zero included).
    pub members: Vec<MemberWeek>,
    /// Archives (and their bytes) with a complete copy in the storage.
    pub backed_up: (u64, u64),
    /// Archives (and bytes) only on the box: not backed up yet.
    pub only_on_box: (u64, u64),
    /// `(free, total)` bytes of the data disk, when known.
    pub disk: Option<(u64, u64)>,
}

/// A problem notified during the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekProblem {
    pub title: String,
    pub at: i64,
    pub resolved: bool,
}

/// Whether a digest is due at `now`: a period after the last one. With
/// none sent yet it is not due (the first comes a period after it was
/// turned on); the caller then records `now` as the start.
pub fn due(last: Option<i64>, now: i64, period: i64) -> bool {
    last.is_some_and(|last| now - last >= period)
}

/// The digest notice for the period `since..now`.
pub fn compose(input: &DigestInput, problems: &[WeekProblem], since: i64, now: i64) -> Notice {
    let mut text = String::new();
    let days = ((now - since).max(0) + 43_199) / 86_400;
    let period = match days {
        0 => "since the last summary".to_string(),
        1 => "in the last day".to_string(),
        n => format!("in the last {n} days"),
    };
    text.push_str(&format!("What was backed up {period}:\n"));
    for member in &input.members {
        text.push_str(&format!(
            "- {}: {} new archive(s), {}\n",
            member.username,
            member.archives,
            human_size(member.bytes)
        ));
    }
    let (safe, safe_bytes) = input.backed_up;
    let (waiting, waiting_bytes) = input.only_on_box;
    text.push_str(&format!(
        "\nBacked up to the storage: {safe} archive(s), {}.\nOnly on the box (not backed up yet): {waiting} archive(s), {}.\n",
        human_size(safe_bytes),
        human_size(waiting_bytes)
    ));
    if let Some((free, total)) = input.disk {
        text.push_str(&format!(
            "Disk: {} free of {}.\n",
            human_size(free),
            human_size(total)
        ));
    }
    match problems.is_empty() {
        true => text.push_str("\nNo problems.\n"),
        false => {
            text.push_str("\nProblems:\n");
            for problem in problems {
                let what = if problem.resolved { "fixed" } else { "started" };
                text.push_str(&format!(
                    "- {} ({what} {})\n",
                    problem.title,
                    super::channels::rfc3339(problem.at)
                ));
            }
        }
    }
    let severity = if waiting > 0 || !problems.is_empty() {
        "warning"
    } else {
        "info"
    };
    Notice {
        event: "digest".into(),
        severity: severity.into(),
        title: "Weekly summary".into(),
        message: text,
        detail: format!(
            "from {} to {}",
            super::channels::rfc3339(since),
            super::channels::rfc3339(now)
        ),
        at: now,
        resolved: false,
        owner: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_names_each_member_the_copies_the_disk_and_the_problems() {
        assert!(!due(None, 1000, 10));
        assert!(!due(Some(995), 1000, 10));
        assert!(due(Some(990), 1000, 10));
        let input = DigestInput {
            members: vec![
                MemberWeek {
                    username: "kim".into(),
                    archives: 2,
                    bytes: 3 << 20,
                },
                MemberWeek {
                    username: "lee".into(),
                    archives: 0,
                    bytes: 0,
                },
            ],
            backed_up: (5, 10 << 30),
            only_on_box: (1, 2048),
            disk: Some((100 << 30, 500 << 30)),
        };
        let problems = [WeekProblem {
            title: "Backups cannot reach the storage".into(),
            at: 0,
            resolved: true,
        }];
        let notice = compose(&input, &problems, 0, 7 * 86_400);
        let text = &notice.message;
        for words in [
            "in the last 7 days",
            "- kim: 2 new archive(s), 3.0 MiB",
            "- lee: 0 new archive(s), 0 B",
            "Backed up to the storage: 5 archive(s), 10 GiB",
            "Only on the box (not backed up yet): 1 archive(s), 2.0 KiB",
            "Disk: 100 GiB free of 500 GiB",
            "- Backups cannot reach the storage (fixed 1970-01-01T00:00:00Z)",
        ] {
            assert!(text.contains(words), "{words:?} not in {text}");
        }
        assert_eq!(notice.severity, "warning");
        let quiet = compose(&DigestInput::default(), &[], 0, 100);
        assert!(quiet.message.contains("No problems."));
        assert_eq!(quiet.severity, "info");
    }
}
