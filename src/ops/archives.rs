//! What people do with archives: a finished upload, rename, discard
//! an unfinished upload, uncache, cache; and what admin scripts add: verify
//! the remote copies, retry failed transfers. Deleting is in
//! [`super::trash`].
//!
//! Every function takes the owner the archive must belong to
//! (`Archives::owned` keeps users apart), announces the change to the
//! owner's open pages and wakes the engine when there is new work.

use crate::accounts::Caller;
use crate::admin::log::{Subject, SystemLog};
use crate::app::state::App;
use crate::engine::destinations::MAIN;
use crate::engine::{Verification, VerifyError};
use crate::notify::verifications;
use crate::store::records::{ArchiveRecord, ArchiveState};

/// Tells the owner's open pages (Server-Sent Events) about an archive that
/// appeared, was renamed or is being deleted; the engine tells them about
/// its own changes.
pub fn announce(app: &App, archive: &ArchiveRecord) {
    app.engine.events().archive(archive);
}

/// A completed upload (one-shot or tus): shown on the owner's open pages,
/// written to the system log, and the engine woken to back it up.
pub fn uploaded(app: &App, username: &str, archive: &ArchiveRecord) {
    announce(app, archive);
    app.admin.log.info(
        "upload",
        &format!(
            "{username} uploaded {:?} ({}).",
            archive.name,
            crate::units::human_size(archive.size)
        ),
        Subject::archive(&archive.owner_id, &archive.id),
    );
    app.engine.wake();
}

pub fn rename(
    app: &App,
    owner_id: &str,
    archive_id: &str,
    name: &str,
) -> super::Result<ArchiveRecord> {
    let archive = app.archives.rename(owner_id, archive_id, name)?;
    announce(app, &archive);
    Ok(archive)
}

/// Abandons an unfinished upload.
pub fn discard_upload(app: &App, owner_id: &str, upload_id: &str) -> super::Result<()> {
    app.archives.terminate_upload(owner_id, upload_id)?;
    Ok(())
}

/// Starts evicting the local copy of a backed-up archive.
pub fn uncache(app: &App, owner_id: &str, archive_id: &str) -> super::Result<ArchiveRecord> {
    let archive = app.archives.request_uncache(owner_id, archive_id)?;
    app.engine.wake();
    Ok(archive)
}

/// Starts fetching an uncached archive back to the disk.
pub fn cache(app: &App, owner_id: &str, archive_id: &str) -> super::Result<ArchiveRecord> {
    let archive = app.archives.request_cache(owner_id, archive_id)?;
    app.engine.wake();
    Ok(archive)
}

/// The most archives one bulk request may name (a page of the list).
pub const MAX_BULK_IDS: usize = crate::archive::PAGE_LIMIT;

/// What a bulk request does to each archive it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Uncache,
    Cache,
    Delete,
}

impl BulkAction {
    /// `uncache`, `cache` or `delete`, as the API and the list's form name them.
    pub fn parse(text: &str) -> Option<BulkAction> {
        match text {
            "uncache" => Some(BulkAction::Uncache),
            "cache" => Some(BulkAction::Cache),
            "delete" => Some(BulkAction::Delete),
            _ => None,
        }
    }
}

/// One archive's outcome in a bulk request: a sentence of what happened,
/// or the error the single action would have given.
pub struct BulkOutcome {
    pub id: String,
    pub result: super::Result<String>,
}

/// Does `action` to each of `ids` in turn, exactly as the single action
/// would (the same checks, log lines, announcements; another user's
/// archive is "No such archive."), and answers each. One failing never
/// stops the others.
pub fn bulk(app: &App, owner_id: &str, action: BulkAction, ids: &[String]) -> Vec<BulkOutcome> {
    ids.iter()
        .map(|id| BulkOutcome {
            id: id.clone(),
            result: match action {
                BulkAction::Uncache => uncache(app, owner_id, id)
                    .map(|_| "The copy on this box is being freed; the backup stays.".into()),
                BulkAction::Cache => {
                    cache(app, owner_id, id).map(|_| "Being fetched back to this box.".into())
                }
                BulkAction::Delete => {
                    super::trash::trash(app, owner_id, id).map(|deleted| match deleted {
                        crate::archive::Deleted::Trashed(..) => {
                            "Moved to the trash; it can be restored from there.".into()
                        }
                        crate::archive::Deleted::Deleting => "Deleted for good.".into(),
                    })
                }
            },
        })
        .collect()
}

/// Checks the remote copies of an archive's parts (downloading `percent`
/// of them) on this thread and writes what it found and did to the
/// system log. Errors are sentences.
pub fn verify(app: &App, archive_id: &str, percent: u8) -> Result<Verification, String> {
    let result = app.engine.verify(archive_id, percent);
    if let Err(err) = record_for_notices(app, archive_id, &result) {
        app.admin.log.warn(
            "notify",
            &format!("The outcome of a verification could not be kept for notifications: {err}"),
            Default::default(),
        );
    }
    let verification = result.map_err(|err| err.to_string())?;
    log_verification(&app.admin.log, &verification);
    Ok(verification)
}

/// Keeps the outcome for `verification_failed` notices: damage found or a
/// remote that could not be checked is a failure; a clean pass ends it.
/// An archive with no remote copy yet or not found is neither.
fn record_for_notices(
    app: &App,
    archive_id: &str,
    result: &Result<Verification, VerifyError>,
) -> Result<(), crate::store::StoreError> {
    let unchecked = |v: &Verification| {
        v.destinations
            .iter()
            .filter_map(|check| {
                let reason = check.unavailable.as_ref()?;
                Some(format!("{} could not be checked: {reason}", check.name))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let reason = match result {
        Ok(v) if v.damaged.is_empty() && v.manifest_problem.is_none() && !unchecked(v).is_empty() => {
            unchecked(v)
        }
        Ok(v) if v.damaged.is_empty() && v.manifest_problem.is_none() => {
            return verifications::passed(&app.store, archive_id)
        }
        Ok(v) => match &v.manifest_problem {
            Some(problem) if v.damaged.is_empty() => {
                format!("{problem}; its upload was queued again.")
            }
            _ => format!(
                "{} of {} parts failed verification ({} stored again from the local copy or another destination).",
                v.parts_damaged(),
                v.parts_checked,
                v.damaged.iter().filter(|part| part.repaired).count()
            ),
        },
        Err(err @ VerifyError::Unavailable(_)) => err.to_string(),
        Err(_) => return Ok(()),
    };
    let at = crate::notify::now();
    let failure = verifications::FailedVerification {
        archive_id: archive_id.to_string(),
        reason,
        at,
    };
    verifications::failed(&app.store, failure)
}

/// An admin fetches back any user's uncached archive (the admin path,
/// `Archives::administered`); logged with both names.
pub fn cache_as_admin(app: &App, admin: &Caller, archive_id: &str) -> super::Result<ArchiveRecord> {
    let archive = app.archives.administered(admin.user.role, archive_id)?;
    let archive = cache(app, &archive.owner_id, archive_id)?;
    log_admin_act(app, admin, &archive, "asked to fetch back");
    Ok(archive)
}

/// An admin puts the waiting or failed transfers of any user's archive
/// back in the queue; how many.
pub fn retry_as_admin(app: &App, admin: &Caller, archive_id: &str) -> super::Result<usize> {
    let archive = app.archives.administered(admin.user.role, archive_id)?;
    let count = app
        .store
        .write(|txn, tables| crate::store::jobs::unpark_archive(txn, tables, archive_id))?;
    log_admin_act(
        app,
        admin,
        &archive,
        &format!("retried {count} transfers of"),
    );
    app.engine.wake();
    Ok(count)
}

/// An admin verifies the remote copy of any user's archive (all parts
/// downloaded when `percent` is 100), as a script's `verify(id)` does.
pub fn verify_as_admin(
    app: &App,
    admin: &Caller,
    archive_id: &str,
    percent: u8,
) -> super::Result<Result<Verification, String>> {
    let archive = app.archives.administered(admin.user.role, archive_id)?;
    log_admin_act(app, admin, &archive, "verified");
    Ok(verify(app, archive_id, percent))
}

fn log_admin_act(app: &App, admin: &Caller, archive: &ArchiveRecord, act: &str) {
    let owner = app
        .accounts
        .user(&archive.owner_id)
        .map(|user| user.username)
        .unwrap_or_else(|_| archive.owner_id.clone());
    app.admin.log.info(
        "archives",
        &format!(
            "{} {act} {owner}'s archive {:?}.",
            admin.user.username, archive.name
        ),
        Subject::archive(&archive.owner_id, &archive.id),
    );
}

/// Puts failed transfers back in the queue; how many.
pub fn retry_failed(app: &App) -> super::Result<usize> {
    let count = app.store.write(crate::store::jobs::unpark_all)?;
    app.engine.wake();
    Ok(count)
}

/// " on Backblaze and grandpa's NAS" when copy destinations were checked
/// too; nothing with the main destination alone.
fn checked_where(verification: &Verification) -> String {
    let names: Vec<&str> = verification
        .destinations
        .iter()
        .filter(|check| check.unavailable.is_none())
        .map(|check| check.name.as_str())
        .collect();
    match names.as_slice() {
        [] | [_] => String::new(),
        [first @ .., last] => format!(" on {} and {last}", first.join(", ")),
    }
}

/// System-log entries (source `verify`) for one verification: an error for
/// damage left, a warning per part uploaded again and for a re-queued
/// manifest, a debug line when all was well.
fn log_verification(log: &SystemLog, verification: &Verification) {
    let subject = Subject::archive(&verification.owner_id, &verification.archive_id);
    let archive = format!(
        "Archive {:?} ({})",
        verification.name, verification.archive_id
    );
    for part in verification.damaged.iter().filter(|part| part.repaired) {
        let from = match &part.repaired_from {
            None => "it was uploaded again from the local copy".to_string(),
            Some(from) => format!("it was stored there again from the copy on {from}"),
        };
        log.warn(
            "verify",
            &format!("{archive}: {}; {from}.", part.describe()),
            subject,
        );
    }
    if let Some(problem) = &verification.manifest_problem {
        log.warn(
            "verify",
            &format!("{archive}: {problem}; its upload was queued again."),
            subject,
        );
    }
    for check in verification
        .destinations
        .iter()
        .filter(|check| check.remote != MAIN)
    {
        if let Some(problem) = &check.manifest_problem {
            let done = if check.manifest_repaired {
                "it was copied there again from the main destination"
            } else {
                "it could not be copied there again; the next verification tries again"
            };
            log.warn(
                "verify",
                &format!("{archive}: on {}, {problem}; {done}.", check.name),
                subject,
            );
        }
    }
    for check in &verification.destinations {
        if let Some(reason) = &check.unavailable {
            log.warn(
                "verify",
                &format!("{archive}: {} could not be checked, so nothing there was marked damaged: {reason}", check.name),
                subject,
            );
        }
    }
    match (&verification.damage_reason, verification.state_after) {
        (Some(reason), ArchiveState::Damaged) => log.error(
            "verify",
            &format!("{archive} is damaged. {reason}"),
            subject,
        ),
        _ if verification.damaged.iter().any(|part| !part.repaired) => log.error(
            "verify",
            &format!(
                "{archive}: {} of {} parts failed verification; the archive changed state \
                 meanwhile, so it was not marked damaged.",
                verification.parts_damaged(),
                verification.parts_checked
            ),
            subject,
        ),
        _ if verification.damaged.is_empty() && verification.manifest_problem.is_none() => log
            .write(
                crate::admin::script::LogLevel::Debug,
                "verify",
                &format!(
                    "{archive}: {} parts looked at, {} downloaded and hashed ({}){}, all good.",
                    verification.parts_checked,
                    verification.parts_downloaded,
                    crate::units::human_size(verification.bytes_downloaded),
                    checked_where(verification)
                ),
                subject,
            ),
        _ => {}
    }
}
