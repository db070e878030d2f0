//! The trash over HTTP (API.md "Additions (third round)"): how a trashed
//! archive looks in JSON, and the JSON handlers over `ops::trash`.

use serde_json::{json, Value};

use crate::app::state::App;
use crate::archive::Deleted;
use crate::ops;
use crate::store::records::{ArchiveRecord, ArchiveState, TrashRecord};
use crate::web::archives::api::{archive_json, Answer};
use crate::web::auth::api_caller;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::paging;

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
            ops::trash::purge(app, &caller.user.id, archive_id)?;
            Deleted::Deleting
        }
        false => ops::trash::trash(app, &caller.user.id, archive_id)?,
    };
    Ok(match deleted {
        Deleted::Trashed(archive, trash) => Resp::json(202, &trashed_json(&archive, &trash)),
        Deleted::Deleting => Resp::json(202, &json!({"id": archive_id, "state": "deleting"})),
    })
}

/// `POST /api/v1/archives/{id}/restore`.
pub fn restore_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = ops::trash::restore(app, &caller.user.id, archive_id)?;
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
