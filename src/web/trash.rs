//! The trash over HTTP (API.md "Additions (third round)"): the operations
//! the JSON API, the pages and the scripts share (each does the domain
//! call in `archive::trash`, the log line, the announcement and the engine
//! wake), their JSON handlers, and the trash chore.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use super::api::{announce, archive_json, Answer};
use super::auth::api_caller;
use super::http::{ApiError, Req, Resp};
use super::paging;
use super::App;
use crate::admin::log::Subject;
use crate::archive::Deleted;
use crate::settings::Settings;
use crate::store::records::{ArchiveRecord, ArchiveState, TrashRecord};

/// How often the trash chore looks for archives due to be purged.
pub const PURGE_CHECK: Duration = Duration::from_secs(60);

/// An archive in the trash as the API shows it: `state: "trashed"` (or
/// `deleting` once its purge began), `trashed_at` and `purge_at` (Unix
/// seconds, like `created_at`).
pub fn trashed_json(archive: &ArchiveRecord, trash: &TrashRecord) -> Value {
    let mut value = archive_json(archive);
    if archive.state != ArchiveState::Deleting {
        value["state"] = json!("trashed");
    }
    value["trashed_at"] = json!(trash.trashed_at);
    value["purge_at"] = json!(trash.purge_at);
    value
}

/// The archive as the API shows it, in the trash or not.
pub fn any_archive_json(app: &App, archive: &ArchiveRecord) -> Result<Value, ApiError> {
    Ok(match app.archives.trash_of(&archive.id)? {
        Some(trash) => trashed_json(archive, &trash),
        None => archive_json(archive),
    })
}

/// Deleting an archive: to the trash for `trash_days`, or for good at once
/// when the trash is off.
pub fn trash_op(app: &App, user_id: &str, archive_id: &str) -> Result<Deleted, ApiError> {
    let days = Settings::load(&app.store)?.trash_days;
    let deleted = app.archives.trash(user_id, archive_id, days)?;
    match &deleted {
        Deleted::Trashed(archive, trash) => {
            app.engine.events().trashed(archive);
            app.admin.log.info(
                "trash",
                &format!(
                    "{:?} went to the trash; it is deleted for good at {} unless restored.",
                    archive.name,
                    super::pages::layout::human_time(trash.purge_at)
                ),
                Subject::archive(&archive.owner_id, &archive.id),
            );
        }
        Deleted::Deleting => purged(app, user_id, archive_id),
    }
    Ok(deleted)
}

/// Takes an archive out of the trash.
pub fn restore_op(app: &App, user_id: &str, archive_id: &str) -> Result<ArchiveRecord, ApiError> {
    let archive = app.archives.restore(user_id, archive_id)?;
    announce(app, &archive);
    app.admin.log.info(
        "trash",
        &format!("{:?} was restored from the trash.", archive.name),
        Subject::archive(&archive.owner_id, &archive.id),
    );
    app.engine.wake();
    Ok(archive)
}

/// Deletes an archive for good now, from the trash or not.
pub fn purge_op(app: &App, user_id: &str, archive_id: &str) -> Result<(), ApiError> {
    app.archives.delete(user_id, archive_id)?;
    purged(app, user_id, archive_id);
    Ok(())
}

fn purged(app: &App, user_id: &str, archive_id: &str) {
    if let Ok(archive) = app.archives.owned(user_id, archive_id) {
        announce(app, &archive);
        app.admin.log.info(
            "trash",
            &format!("{:?} is being deleted for good.", archive.name),
            Subject::archive(&archive.owner_id, &archive.id),
        );
    }
    app.engine.wake();
}

/// `DELETE /api/v1/archives/{id}[?purge=true]`.
pub fn delete_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let purge = match req.query.get("purge").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "purge must be true (delete for good now) or false (to the trash).",
            ))
        }
    };
    let deleted = match purge {
        true => {
            purge_op(app, &caller.user.id, archive_id)?;
            Deleted::Deleting
        }
        false => trash_op(app, &caller.user.id, archive_id)?,
    };
    Ok(match deleted {
        Deleted::Trashed(archive, trash) => Resp::json(202, &trashed_json(&archive, &trash)),
        Deleted::Deleting => Resp::json(202, &json!({"id": archive_id, "state": "deleting"})),
    })
}

/// `POST /api/v1/archives/{id}/restore`.
pub fn restore_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = restore_op(app, &caller.user.id, archive_id)?;
    Ok(Resp::json(200, &archive_json(&archive)))
}

/// `GET /api/v1/archives?trash=true`: a page of the caller's trash, the
/// last trashed first, paged like the list.
pub fn list_trash(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let limit = paging::limit(&req.query)?;
    let after = paging::archive_cursor(&req.query)?;
    let (page, next) = app
        .archives
        .trash_page(&caller.user.id, after.as_ref(), limit)?;
    let list: Vec<Value> = page.iter().map(|(a, t)| trashed_json(a, t)).collect();
    let resp = Resp::json(200, &list);
    Ok(match next {
        Some(next) => resp.header(
            "Link",
            paging::next_link("/api/v1/archives", limit, &next.encode()).replacen(
                '?',
                "?trash=true&",
                1,
            ),
        ),
        None => resp,
    })
}

/// Whether `?trash=` asks for the trash list (refused with a sentence
/// unless `true` or `false`).
pub fn wants_trash(req: &Req) -> Result<bool, ApiError> {
    match req.query.get("trash").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "trash must be true (the trash) or false (the archives).",
        )),
    }
}

/// The chore that deletes for good what stayed in the trash until its
/// purge time. The trash lives in LMDB, so a restart loses nothing: the
/// next round finds what is due.
pub fn purge_chore(app: &Arc<App>) -> impl Fn() + Send + Sync + 'static {
    let app: Weak<App> = Arc::downgrade(app);
    move || {
        let Some(app) = app.upgrade() else { return };
        match app.archives.purge_due(crate::ids::now_secs()) {
            Ok(0) => {}
            Ok(count) => {
                app.admin.log.info(
                    "trash",
                    &format!("{count} archives stayed in the trash for their time and are being deleted for good."),
                    Subject::default(),
                );
                app.engine.wake();
            }
            Err(err) => app.admin.log.warn(
                "trash",
                &format!("The trash could not be emptied: {err}"),
                Subject::default(),
            ),
        }
    }
}
