//! The remote's JSON API of API.md: the remote settings, a live test, the
//! plan of a move to a new remote and the move under way.

use serde_json::{json, Value};

use crate::app::state::App;
use crate::ops;
use crate::web::auth::{api_caller, require_admin};
use crate::web::http::{ApiError, Req, Resp};

type Answer = Result<Resp, ApiError>;

/// The remote settings, without the secret, and the move under way if any.
pub fn get_remote(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let mut body = ops::remote::saved(app)?.redacted();
    body["move"] = move_json(app)?;
    Ok(Resp::json(200, &body))
}

/// The running remote move as JSON (`null` when none runs).
pub fn move_json(app: &App) -> Result<Value, ApiError> {
    Ok(match app.engine.remote_move()? {
        None => Value::Null,
        Some(record) => {
            let names: Vec<String> = record
                .stuck_archives
                .iter()
                .filter_map(|id| app.archives.get_any(id).ok().flatten())
                .map(|archive| archive.name)
                .collect();
            json!({
                "from": record.from_description,
                "started_at": record.started_at,
                "parts_total": record.parts_total,
                "parts_done": record.parts_total.saturating_sub(record.parts_left),
                "bytes_total": record.bytes_total,
                "bytes_done": record.bytes_total.saturating_sub(record.bytes_left),
                "not_yet_moved": names,
                "message": move_message(&record, &names),
            })
        }
    })
}

/// "Moving to the new storage: 37 of 912 parts", and what is stuck.
pub fn move_message(record: &crate::store::records::RemoteMoveRecord, stuck: &[String]) -> String {
    let done = record.parts_total.saturating_sub(record.parts_left);
    let mut message = format!(
        "Moving to the new storage: {done} of {} parts.",
        record.parts_total
    );
    if !stuck.is_empty() {
        message.push_str(&format!(
            " Not yet on the new storage, because the old storage is unreachable ({}): {}.",
            record.stuck_reason.as_deref().unwrap_or("no answer"),
            stuck.join(", ")
        ));
    }
    message
}

fn remote_body(req: &mut Req) -> Result<crate::remote::RemoteSettings, ApiError> {
    req.json().map_err(|err| {
        ApiError::bad_request(format!(
            "{} Send {{\"kind\": \"s3\", \"endpoint\", \"region\", \"bucket\", \"prefix\", \"path_style\", \"access_key_id\", \"secret_access_key\"}} or {{\"kind\": \"dir\", \"path\"}}.",
            err.message
        ))
    })
}

impl From<crate::engine::remote_move::ChangeError> for ApiError {
    fn from(err: crate::engine::remote_move::ChangeError) -> Self {
        use crate::engine::remote_move::ChangeError;
        let message = err.to_string();
        match err {
            ChangeError::Invalid(_) => ApiError::new(400, "invalid", message),
            ChangeError::ObjectLockUnsupported(_) => {
                ApiError::new(400, "object_lock_unsupported", message)
            }
            ChangeError::OtherRepository { .. } => ApiError::new(409, "other_repository", message),
            ChangeError::MoveRunning { .. } => ApiError::new(409, "move_in_progress", message),
            ChangeError::AlreadyADestination { .. } => ApiError::new(409, "same_storage", message),
            ChangeError::NoSuchDestination { .. } => ApiError::new(404, "not_found", message),
            ChangeError::Unreachable { .. } => ApiError::new(502, "remote_unreachable", message),
            ChangeError::Keys(_) | ChangeError::Store(_) => ApiError::internal(message),
        }
    }
}

/// Saves the remote settings (an omitted secret keeps the stored one):
/// a move when backups must be copied to the new place (see
/// `engine::remote_move`). Answers the saved settings with `change`: what
/// was done, in words and numbers.
pub fn put_remote(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let settings = remote_body(req)?;
    let (saved, plan) = ops::remote::save(app, settings)?;
    let mut body = saved.redacted();
    body["change"] = plan_json(&plan);
    body["move"] = move_json(app)?;
    Ok(Resp::json(200, &body))
}

/// What saving the given settings would do, without saving them:
/// `{destination, archives, parts, bytes, message}`.
pub fn plan_remote(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let settings = remote_body(req)?.keep_secret_from(&ops::remote::saved(app)?);
    let plan = ops::remote::plan(app, &settings)?;
    Ok(Resp::json(200, &plan_json(&plan)))
}

pub fn plan_json(plan: &crate::engine::remote_move::MovePlan) -> Value {
    json!({
        "destination": plan.destination.as_str(),
        "moves": plan.destination.moves(),
        "archives": plan.archives,
        "parts": plan.parts,
        "bytes": plan.bytes,
        "message": plan.message(),
    })
}

/// A live check of the given settings (or the saved ones, without a body).
pub fn test_remote(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let saved = ops::remote::saved(app)?;
    let settings = if req.body_length().unwrap_or(0) > 0 {
        remote_body(req)?.keep_secret_from(&saved)
    } else {
        saved
    };
    Ok(Resp::json(200, &check_remote(&settings)))
}

/// `{ok, message}` of a live check.
fn check_remote(settings: &crate::remote::RemoteSettings) -> Value {
    match ops::remote::check(settings) {
        Ok(message) => json!({"ok": true, "message": message}),
        Err(message) => json!({"ok": false, "message": message}),
    }
}

/// One destination as `GET /api/v1/admin/remotes` shows it: its id, name
/// and settings without the secret, where it keeps the backups and its
/// lasting problem (`null` while it works).
pub fn destination_json(
    app: &App,
    destination: &crate::engine::destinations::Destination,
) -> Value {
    let mut body = destination.settings.redacted();
    let placement = app
        .placement
        .of_destination(&destination.id, &destination.settings);
    body["id"] = json!(destination.id);
    body["name"] = json!(destination.name);
    body["placement"] = json!(placement.as_str());
    body["placement_words"] = json!(placement.describe());
    body["error"] = json!(app.engine.destination_health().error(&destination.id));
    body
}

/// Every destination, the main one first.
pub fn list_remotes(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let list: Vec<Value> = ops::destinations::destinations(app)?
        .iter()
        .map(|destination| destination_json(app, destination))
        .collect();
    Ok(Resp::json(200, &list))
}

/// Adds a destination: remote settings plus `"name"`. 201 with the
/// destination and `plan`: what it now receives, `{archives, bytes}`.
pub fn add_remote(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let mut body: Value = req.json()?;
    let name = match body.as_object_mut().map(|object| object.remove("name")) {
        Some(Some(Value::String(name))) => name,
        _ => {
            return Err(ApiError::bad_request(
                "Send the destination's \"name\" (what you call it, e.g. \"Grandpa's NAS\") with its settings.",
            ))
        }
    };
    let settings: crate::remote::RemoteSettings = serde_json::from_value(body).map_err(|err| {
        ApiError::bad_request(format!(
            "The settings are not valid: {err}. Send {{\"name\", \"kind\": \"s3\", \"endpoint\", \"region\", \"bucket\", \"prefix\", \"path_style\", \"access_key_id\", \"secret_access_key\"}} or {{\"name\", \"kind\": \"dir\", \"path\"}}."
        ))
    })?;
    let (destination, plan) = ops::destinations::add_destination(app, &caller, &name, settings)?;
    let mut body = destination_json(app, &destination);
    body["plan"] = json!({
        "archives": plan.archives,
        "bytes": plan.bytes,
        "message": plan.message(&destination.name),
    });
    Ok(Resp::json(201, &body).header(
        "Location",
        format!("/api/v1/admin/remotes/{}", destination.id),
    ))
}

/// Removes an added destination; its bucket or folder is left as it is.
pub fn remove_remote(app: &App, req: &mut Req, id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let removed = ops::destinations::remove_destination(app, &caller, id)?;
    Ok(Resp::json(
        200,
        &json!({
            "removed": removed.id,
            "name": removed.name,
            "message": super::destinations::removed_message(&removed),
        }),
    ))
}
