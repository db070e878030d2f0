//! "Are we safe?": the admin dashboard's answer, worked out once from
//! every archive record, the placement of the storage (`remote::placement`)
//! and the accounts. One sentence and a colour ([`Verdict`]), then the
//! problems, each naming the archive, its owner and what to do next.
//! Reads only: no log line, no event. Must not touch: HTTP.

use std::collections::HashMap;

use crate::accounts::failed_logins::{self, FailedLogin};
use crate::app::state::App;
use crate::remote::placement::Placement;
use crate::store::records::{ArchiveRecord, ArchiveState, UserRecord};

/// The dashboard's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing stored yet.
    Empty,
    /// Every archive is off-site (green).
    AllOffSite { archives: usize },
    /// No problem, but this many archives are only on this box (amber):
    /// not copied yet, or the storage is attached to this box.
    OnlyHere { archives: usize },
    /// Something needs an admin (red).
    Problems { count: usize },
}

impl Verdict {
    /// The sentence.
    pub fn sentence(&self) -> String {
        match self {
            Verdict::Empty => "No archives yet: nothing to keep safe.".into(),
            Verdict::AllOffSite { archives: 1 } => "Safe: the one archive is off-site.".into(),
            Verdict::AllOffSite { archives } => {
                format!("Safe: all {archives} archives are off-site.")
            }
            Verdict::OnlyHere { archives: 1 } => {
                "Not safe yet: 1 archive is only on this box.".into()
            }
            Verdict::OnlyHere { archives } => {
                format!("Not safe yet: {archives} archives are only on this box.")
            }
            Verdict::Problems { count: 1 } => "Needs you: 1 problem.".into(),
            Verdict::Problems { count } => format!("Needs you: {count} problems."),
        }
    }

    /// `ok` (green), `warning` (amber) or `failed` (red), the CSS words.
    pub fn colour(&self) -> &'static str {
        match self {
            Verdict::Empty | Verdict::AllOffSite { .. } => "ok",
            Verdict::OnlyHere { .. } => "warning",
            Verdict::Problems { .. } => "failed",
        }
    }
}

/// One thing an admin should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The archive it is about, if any (`None`: the storage, the passphrase).
    pub archive_id: Option<String>,
    pub archive_name: Option<String>,
    pub owner: Option<String>,
    /// What is wrong.
    pub what: String,
    /// What to do next.
    pub next_step: String,
    /// Where to do it.
    pub link: String,
}

/// Everything the dashboard's safety part shows.
#[derive(Debug, Clone)]
pub struct Safety {
    pub verdict: Verdict,
    /// Where the main destination keeps the backups.
    pub placement: Placement,
    /// No destination is off this box.
    pub on_box_only: bool,
    /// Every destination, main first: where it keeps the backups and its
    /// lasting problem.
    pub destinations: Vec<DestinationSafety>,
    pub problems: Vec<Problem>,
    pub archives: usize,
    pub off_site: usize,
    pub last_backup_at: Option<i64>,
    /// Accounts made in the last week, the newest first.
    pub new_accounts: Vec<UserRecord>,
    /// Failed logins of the last week, the newest first.
    pub failed_logins: Vec<FailedLogin>,
}

/// One destination on the dashboard.
#[derive(Debug, Clone)]
pub struct DestinationSafety {
    pub id: String,
    pub name: String,
    pub placement: Placement,
    /// Its lasting problem, as a sentence (`None` while it works).
    pub error: Option<String>,
}

/// A week, the span of "new accounts" and "failed logins".
pub const RECENT_SECS: i64 = 7 * 86_400;

/// What to do about a damaged archive, for people.
pub fn damaged_next_step(archive: &ArchiveRecord) -> &'static str {
    if archive.local_copy {
        "Verify it again: the damaged parts are uploaded again from the copy on this box."
    } else {
        "The copy in storage is damaged and this box has no copy. Upload the file again if you have it elsewhere, then delete this archive."
    }
}

/// Works the answer out now.
pub fn overview(app: &App) -> super::Result<Safety> {
    let rule = app.off_site_rule();
    let placement = rule.main.clone();
    let destinations = destinations(app);
    let archives = app.archives.list_all()?;
    let users = app.accounts.users()?;
    let names: HashMap<&str, &str> = users
        .iter()
        .map(|user| (user.id.as_str(), user.username.as_str()))
        .collect();
    let now = crate::ids::now_secs();
    let mut problems = storage_problems(app, &placement, &destinations)?;
    let (mut counted, mut off_site) = (0, 0);
    for archive in &archives {
        if archive.state == ArchiveState::Deleting || app.archives.trash_of(&archive.id)?.is_some()
        {
            continue;
        }
        counted += 1;
        if rule.is_off_site(archive) {
            off_site += 1;
        }
        if let Some(problem) = archive_problem(archive, &names) {
            problems.push(problem);
        }
    }
    let verdict = match (problems.len(), counted - off_site) {
        (0, _) if counted == 0 => Verdict::Empty,
        (0, 0) => Verdict::AllOffSite { archives: counted },
        (0, only_here) => Verdict::OnlyHere {
            archives: only_here,
        },
        (count, _) => Verdict::Problems { count },
    };
    let mut new_accounts: Vec<UserRecord> = users
        .into_iter()
        .filter(|user| user.created_at >= now - RECENT_SECS)
        .collect();
    new_accounts.sort_by_key(|user| std::cmp::Reverse(user.created_at));
    Ok(Safety {
        verdict,
        on_box_only: rule.on_box_only(),
        placement,
        destinations,
        problems,
        archives: counted,
        off_site,
        last_backup_at: crate::engine::upload::last_backup_at(&app.store)?,
        new_accounts,
        failed_logins: failed_logins::since(&app.store, now - RECENT_SECS)?,
    })
}

/// Every destination with its placement and lasting problem, main first.
pub fn destinations(app: &App) -> Vec<DestinationSafety> {
    let health = app.engine.destination_health();
    app.destinations()
        .into_iter()
        .map(|(destination, placement)| DestinationSafety {
            error: health.error(&destination.id),
            id: destination.id,
            name: destination.name,
            placement,
        })
        .collect()
}

/// Problems not of one archive: storage that is unreachable (the main
/// destination, or each copy destination by name), a passphrase never
/// confirmed.
fn storage_problems(
    app: &App,
    placement: &Placement,
    destinations: &[DestinationSafety],
) -> super::Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let unreachable_since = app
        .engine
        .destination_health()
        .error_since(crate::engine::destinations::MAIN);
    if *placement == Placement::Unreachable || unreachable_since.is_some() {
        problems.push(Problem {
            archive_id: None,
            archive_name: None,
            owner: None,
            what: "The backup storage cannot be reached: nothing is being copied.".into(),
            next_step: "Check that the disk is plugged in and mounted, or that the storage is online; or choose other storage.".into(),
            link: "/admin/remote".into(),
        });
    }
    for copy in destinations.iter().skip(1) {
        if let Some(what) = copy_problem(copy) {
            problems.push(Problem {
                archive_id: None,
                archive_name: None,
                owner: None,
                what,
                next_step: format!("Check that {} is switched on, reachable and has room, or remove it on the Remote page. The other destinations go on without it.", copy.name),
                link: "/admin/remote#destinations".into(),
            });
        }
    }
    if crate::engine::keys::passphrase_unconfirmed(&app.store)? {
        problems.push(Problem {
            archive_id: None,
            archive_name: None,
            owner: None,
            what: "The recovery passphrase was never confirmed.".into(),
            next_step: "Type it in once, or say you stored it elsewhere: without it, nothing can be restored if this box is lost.".into(),
            link: "/setup/passphrase".into(),
        });
    }
    Ok(problems)
}

/// A copy destination's problem in words: it cannot be reached (its
/// lasting error, or its folder is gone), so nothing is copied there.
pub fn copy_problem(copy: &DestinationSafety) -> Option<String> {
    match (&copy.error, &copy.placement) {
        (Some(error), _) => Some(format!(
            "{} cannot be reached: nothing is being copied there. {}",
            copy.name,
            error.trim()
        )),
        (None, Placement::Unreachable) => Some(format!(
            "{} cannot be reached: its folder is missing or its disk is not mounted. Nothing is being copied there.",
            copy.name
        )),
        (None, _) => None,
    }
}

fn archive_problem(archive: &ArchiveRecord, names: &HashMap<&str, &str>) -> Option<Problem> {
    let (what, next_step) = match archive.state {
        ArchiveState::Damaged => (
            archive
                .last_error
                .clone()
                .unwrap_or_else(|| "Damaged: a check of its stored copy failed.".into()),
            damaged_next_step(archive).to_string(),
        ),
        ArchiveState::Local | ArchiveState::Uploading | ArchiveState::Caching
            if archive.last_error.is_some() =>
        {
            (
                archive.last_error.clone().unwrap_or_default(),
                "Retry its transfers; if it fails again, check the storage.".to_string(),
            )
        }
        _ => return None,
    };
    Some(Problem {
        archive_id: Some(archive.id.clone()),
        archive_name: Some(archive.name.clone()),
        owner: Some(
            names
                .get(archive.owner_id.as_str())
                .map(|name| name.to_string())
                .unwrap_or_else(|| archive.owner_id.clone()),
        ),
        what,
        next_step,
        link: format!("/admin/archives/{}", archive.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_destination_problem_names_it() {
        let copy = |error: Option<&str>, placement| DestinationSafety {
            id: "d_1".into(),
            name: "Grandpa's NAS".into(),
            placement,
            error: error.map(str::to_string),
        };
        assert_eq!(copy(None, Placement::OffSite).error, None);
        assert_eq!(copy_problem(&copy(None, Placement::OffSite)), None);
        assert_eq!(
            copy_problem(&copy(Some("Connection refused. "), Placement::OffSite)).as_deref(),
            Some("Grandpa's NAS cannot be reached: nothing is being copied there. Connection refused.")
        );
        assert!(
            copy_problem(&copy(None, Placement::Unreachable))
                .is_some_and(|what| what
                    .starts_with("Grandpa's NAS cannot be reached: its folder is missing"))
        );
    }

    #[test]
    fn sentences_and_colours() {
        let cases = [
            (Verdict::Empty, "ok", "No archives yet"),
            (
                Verdict::AllOffSite { archives: 3 },
                "ok",
                "all 3 archives are off-site",
            ),
            (
                Verdict::OnlyHere { archives: 2 },
                "warning",
                "2 archives are only on this box",
            ),
            (
                Verdict::OnlyHere { archives: 1 },
                "warning",
                "1 archive is only",
            ),
            (Verdict::Problems { count: 4 }, "failed", "4 problems"),
        ];
        for (verdict, colour, words) in cases {
            assert_eq!(verdict.colour(), colour);
            assert!(verdict.sentence().contains(words), "{}", verdict.sentence());
        }
    }
}
