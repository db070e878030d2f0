//! The archives' JSON API of API.md: the list, one archive, its parts and
//! content, renaming, a one-shot `PUT` upload, caching and uncaching.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::Caller;
use crate::app::state::{App, OffSiteRule};
use crate::archive::NewUpload;
use crate::ops;
use crate::store::records::{ArchiveRecord, PartRecord};
use crate::web::auth::api_caller;
use crate::web::http::{content_disposition, parse_range, ApiError, RangeRequest, Req, Resp};
use crate::web::paging;

pub type Answer = Result<Resp, ApiError>;

/// An archive as the API shows it; `off_site` by [`App::off_site`].
pub fn archive_json(app: &App, archive: &ArchiveRecord) -> Value {
    archive_json_placed(app, archive, &app.off_site_rule())
}

/// [`archive_json`] with where the destinations are judged once for a
/// whole list.
pub fn archive_json_placed(app: &App, archive: &ArchiveRecord, rule: &OffSiteRule) -> Value {
    json!({
        "off_site": rule.is_off_site(archive),
        "id": archive.id,
        "name": archive.name,
        "filename": archive.filename,
        "size": archive.size,
        "sha256": archive.sha256,
        "state": archive.state.as_str(),
        "parts_total": archive.parts_total,
        "parts_remote": archive.parts_remote,
        "stored_size": archive.stored_size,
        "protected_until": archive.protected_until.map(crate::date::rfc3339),
        "created_at": archive.created_at,
        "last_error": archive.last_error,
        "path": archive.path,
        "copies": copies_json(app, archive),
    })
}

/// The archive's copy on every destination, main first:
/// `[{remote, name, parts_total, parts_remote, state, last_error}]`.
fn copies_json(app: &App, archive: &ArchiveRecord) -> Value {
    let copies = app.copies(archive);
    Value::Array(
        copies
            .iter()
            .map(|copy| {
                json!({
                    "remote": copy.remote,
                    "name": copy.name,
                    "parts_total": copy.parts_total,
                    "parts_remote": copy.parts_remote,
                    "state": copy.state.as_str(),
                    "last_error": copy.last_error,
                })
            })
            .collect(),
    )
}

pub fn part_json(index: usize, part: &PartRecord) -> Value {
    json!({
        "index": index,
        "offset": part.offset,
        "size": part.length,
        "sha256": part.sha256,
        "remote": part.remote,
    })
}

/// A page of the caller's archives (`limit`, `after`), newest first or as
/// `q`, `sort` and `order` ask, with a `Link` header to the next page
/// while more remain.
pub fn list_archives(app: &App, req: &mut Req) -> Answer {
    if crate::web::trash::api::wants_trash(req)? {
        return crate::web::trash::api::list_trash(app, req);
    }
    let caller = api_caller(app, req)?;
    let limit = paging::limit(&req.query)?;
    let query = paging::list_query(&req.query)?;
    let after = paging::list_cursor(&req.query, &query)?;
    let (page, next) = app
        .archives
        .search(&caller.user.id, &query, after.as_ref(), limit)?;
    let rule = app.off_site_rule();
    let list: Vec<Value> = page
        .iter()
        .map(|archive| archive_json_placed(app, archive, &rule))
        .collect();
    let resp = Resp::json(200, &list);
    Ok(match next {
        Some(next) => resp.header(
            "Link",
            paging::next_link_with(
                "/api/v1/archives",
                limit,
                &next.encode(),
                &query.to_query_string(),
            ),
        ),
        None => resp,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    action: String,
    ids: Vec<String>,
}

/// `POST /api/v1/archives/bulk`: one action on many of the caller's
/// archives, each answered as the single action would.
pub fn bulk_archives(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let body: Bulk = req.json()?;
    let action = ops::archives::BulkAction::parse(&body.action)
        .ok_or_else(|| ApiError::new(400, "invalid", "action must be uncache, cache or delete."))?;
    if body.ids.len() > ops::archives::MAX_BULK_IDS {
        return Err(ApiError::new(
            400,
            "invalid",
            format!(
                "At most {} archives at once; send the rest in another request.",
                ops::archives::MAX_BULK_IDS
            ),
        ));
    }
    let results: Vec<Value> = ops::archives::bulk(app, &caller.user.id, action, &body.ids)
        .into_iter()
        .map(|outcome| match outcome.result {
            Ok(message) => json!({"id": outcome.id, "ok": true, "message": message}),
            Err(err) => {
                let err = ApiError::from(err);
                json!({"id": outcome.id, "ok": false, "error": err.code, "message": err.message})
            }
        })
        .collect();
    Ok(Resp::json(200, &json!({ "results": results })))
}

/// A page of an archive's parts in order (`limit`, `after` = the last
/// index seen), with a `Link` header to the next page while more remain.
pub fn list_parts(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let limit = paging::limit(&req.query)?;
    let after = paging::part_index(&req.query)?;
    let (page, more) = app.archives.parts_page(&archive.id, after, limit)?;
    let list: Vec<Value> = page
        .iter()
        .map(|(index, part)| part_json(*index as usize, part))
        .collect();
    let resp = Resp::json(200, &list);
    Ok(match page.last().filter(|_| more) {
        Some((last, _)) => resp.header(
            "Link",
            paging::next_link(
                &format!("/api/v1/archives/{}/parts", archive.id),
                limit,
                &last.to_string(),
            ),
        ),
        None => resp,
    })
}

/// The one-shot upload: the raw body is the file.
pub fn put_archive(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let length = req.body_length().ok_or_else(|| {
        ApiError::new(411, "length_required", "Send the file with a Content-Length header (curl -T does), or use the resumable upload.")
    })?;
    let new = NewUpload {
        owner_id: caller.user.id.clone(),
        name: req.query.get("name").cloned().unwrap_or_default(),
        filename: req.query.get("filename").cloned().unwrap_or_default(),
        length,
        relative_path: req.query.get("relative_path").cloned(),
    };
    let archive = app.archives.ingest_whole(new, req.body())?;
    ops::archives::uploaded(app, &caller.user.username, &archive);
    Ok(Resp::json(201, &archive_json(app, &archive))
        .header("Location", format!("/api/v1/archives/{}", archive.id)))
}

pub fn get_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let mut value = crate::web::trash::api::any_archive_json(app, &archive)?;
    // Up to a page of parts inline; beyond that clients page `/parts`.
    if archive.parts_total as usize <= crate::archive::PAGE_LIMIT {
        let (parts, _) = app
            .archives
            .parts_page(archive_id, None, crate::archive::PAGE_LIMIT)?;
        let parts: Vec<Value> = parts
            .iter()
            .map(|(index, part)| part_json(*index as usize, part))
            .collect();
        value["parts"] = json!(parts);
    }
    Ok(Resp::json(200, &value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

pub fn rename_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let body: Rename = req.json()?;
    let archive = ops::archives::rename(app, &caller.user.id, archive_id, &body.name)?;
    Ok(Resp::json(200, &archive_json(app, &archive)))
}

pub fn uncache_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = ops::archives::uncache(app, &caller.user.id, archive_id)?;
    Ok(Resp::json(202, &archive_json(app, &archive)))
}

pub fn cache_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = ops::archives::cache(app, &caller.user.id, archive_id)?;
    Ok(Resp::json(202, &archive_json(app, &archive)))
}

/// The file, whole or one byte range.
pub fn content(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    content_for(app, req, &caller, archive_id)
}

pub fn content_for(app: &App, req: &Req, caller: &Caller, archive_id: &str) -> Answer {
    use std::io::{Read, Seek, SeekFrom};
    let (archive, mut file) = app.archives.open_content(&caller.user.id, archive_id)?;
    let size = archive.size;
    let base = Resp::new(200)
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Disposition",
            content_disposition(&archive.filename),
        )
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{}\"", archive.sha256));
    match parse_range(req.header("Range"), size) {
        RangeRequest::Whole => Ok(base.stream(
            Box::new(crate::disk::Reported::new(file, "serving a download")),
            Some(size),
        )),
        RangeRequest::Part { start, end } => {
            file.seek(SeekFrom::Start(start))
                .map_err(ApiError::internal)?;
            let length = end - start + 1;
            let file = crate::disk::Reported::new(file.take(length), "serving a download");
            let mut resp = base.stream(Box::new(file), Some(length));
            resp.status = 206;
            Ok(resp.header("Content-Range", format!("bytes {start}-{end}/{size}")))
        }
        RangeRequest::Unsatisfiable => Err(ApiError::new(
            416,
            "range_not_satisfiable",
            format!("The requested range is outside the file, which has {size} bytes."),
        )
        .with_header("Content-Range", format!("bytes */{size}"))),
    }
}
