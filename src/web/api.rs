//! The JSON API of API.md: accounts, archives, admin settings and users.

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, api_caller, require_admin};
use super::http::{content_disposition, parse_range, ApiError, RangeRequest, Req, Resp};
use super::paging;
use crate::accounts::Caller;
use crate::app::state::App;
use crate::archive::NewUpload;
use crate::ops;
use crate::settings::Settings;
use crate::store::records::{ApiTokenRecord, ArchiveRecord, PartRecord, Role, UserRecord};

pub type Answer = Result<Resp, ApiError>;

pub fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "role": user.role.as_str(),
        "created_at": user.created_at,
        "disabled": user.disabled,
    })
}

/// An archive as the API shows it; `off_site` by [`App::off_site`].
pub fn archive_json(app: &App, archive: &ArchiveRecord) -> Value {
    archive_json_placed(archive, &app.placement())
}

/// [`archive_json`] with the placement judged once for a whole list.
pub fn archive_json_placed(
    archive: &ArchiveRecord,
    placement: &crate::remote::placement::Placement,
) -> Value {
    json!({
        "off_site": crate::app::state::is_off_site(archive, placement),
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
    })
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

fn token_json(token: &ApiTokenRecord) -> Value {
    json!({"id": token.id, "name": token.name, "created_at": token.created_at})
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct SetupBody {
    username: String,
    password: String,
    recovery_passphrase: Option<String>,
}

pub fn setup_status(app: &App) -> Answer {
    Ok(Resp::json(
        200,
        &json!({"needed": app.accounts.setup_needed()?}),
    ))
}

/// Creates the first admin and the encryption keys, and logs the admin in.
/// A recovery passphrase that was not given is generated and returned once.
pub fn setup(app: &App, req: &mut Req) -> Answer {
    auth::refuse_cross_site(req)?;
    let body: SetupBody = req.json()?;
    let given = body
        .recovery_passphrase
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if given.is_some_and(|p| p.chars().count() < 12) {
        return Err(ApiError::new(
            400,
            "invalid",
            "The recovery passphrase must have at least 12 characters; leave it out to get a generated one.",
        ));
    }
    let passphrase = ops::accounts::setup(
        app,
        &body.username,
        &body.password,
        given,
        crate::engine::keys::PassphraseCheck::GivenOnce,
    )?;
    let mut resp = login_answer(app, req, &body.username, &body.password, 201)?;
    if given.is_none() {
        if let Some(passphrase) = passphrase {
            resp = resp.with_json_field("recovery_passphrase", json!(passphrase));
        }
    }
    Ok(resp)
}

pub fn login(app: &App, req: &mut Req) -> Answer {
    auth::refuse_cross_site(req)?;
    let body: Credentials = req.json()?;
    login_answer(app, req, &body.username, &body.password, 200)
}

fn login_answer(app: &App, req: &Req, username: &str, password: &str, status: u16) -> Answer {
    let session = ops::accounts::login(app, username, password, &req.remote_addr)?;
    let max_age = app.config.session_ttl.as_secs() as i64;
    Ok(Resp::json(
        status,
        &json!({"csrf_token": session.csrf_token, "user": user_json(&session.user)}),
    )
    .header(
        "Set-Cookie",
        auth::session_cookie(&session.token, max_age, auth::cookie_secure(app, req)),
    ))
}

pub fn logout(app: &App, req: &mut Req) -> Answer {
    api_caller(app, req)?;
    if let Some(token) = req.cookie(auth::SESSION_COOKIE) {
        app.accounts.logout(&token)?;
    }
    Ok(Resp::new(204).header("Set-Cookie", auth::clear_session_cookie()))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    role: Option<Role>,
    /// A token from an admin's invitation: works while registration is
    /// closed; the invitation gives the role.
    invitation: Option<String>,
}

/// Self-registration, with an invitation, or an admin creating a user
/// (with `role`).
pub fn create_user(app: &App, req: &mut Req) -> Answer {
    auth::refuse_cross_site(req)?;
    let caller = match auth::caller(app, req)? {
        Some(caller) => {
            auth::check_csrf(&caller, req.header("X-CSRF-Token"))?;
            Some(caller)
        }
        None => None,
    };
    let body: NewUser = req.json()?;
    if let Some(token) = &body.invitation {
        if body.role.is_some() {
            return Err(ApiError::bad_request(
                "An invitation gives the role; leave role out.",
            ));
        }
        let user = ops::accounts::register_invited(
            app,
            &body.username,
            &body.password,
            token,
            &req.remote_addr,
        )?;
        return Ok(Resp::json(201, &user_json(&user)));
    }
    let user = match caller {
        Some(caller) if caller.is_admin() => ops::accounts::create_user(
            app,
            &caller,
            &body.username,
            &body.password,
            body.role.unwrap_or(Role::Member),
        )?,
        _ => {
            if body.role == Some(Role::Admin) {
                return Err(ApiError::forbidden("Only an admin may create admins."));
            }
            app.accounts
                .register(&body.username, &body.password, &req.remote_addr)?
        }
    };
    Ok(Resp::json(201, &user_json(&user)))
}

pub fn me(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let mut value = user_json(&caller.user);
    if let Some(csrf) = &caller.csrf_token {
        value["csrf_token"] = json!(csrf);
    }
    Ok(Resp::json(200, &value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub fn update_me(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let body: PasswordChange = req.json()?;
    let keep = req.cookie(auth::SESSION_COOKIE);
    app.accounts.change_password(
        &caller.user.id,
        &body.current_password,
        &body.new_password,
        keep.as_deref(),
        &req.remote_addr,
    )?;
    Ok(Resp::json(200, &user_json(&caller.user)))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

pub fn create_token(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let body: NewToken = req.json()?;
    let (record, secret) = ops::tokens::create(app, &caller, &body.name)?;
    let mut value = token_json(&record);
    value["token"] = json!(secret);
    Ok(Resp::json(201, &value))
}

pub fn list_tokens(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let tokens: Vec<Value> = ops::tokens::list(app, &caller)?
        .iter()
        .map(token_json)
        .collect();
    Ok(Resp::json(200, &tokens))
}

pub fn delete_token(app: &App, req: &mut Req, token_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    ops::tokens::delete(app, &caller, token_id)?;
    Ok(Resp::new(204))
}

/// A page of the caller's archives, newest first (`limit`, `after`), with
/// a `Link` header to the next page while more remain.
pub fn list_archives(app: &App, req: &mut Req) -> Answer {
    if super::trash::wants_trash(req)? {
        return super::trash::list_trash(app, req);
    }
    let caller = api_caller(app, req)?;
    let limit = paging::limit(&req.query)?;
    let after = paging::archive_cursor(&req.query)?;
    let (page, next) = app.archives.page(&caller.user.id, after.as_ref(), limit)?;
    let placement = app.placement();
    let list: Vec<Value> = page
        .iter()
        .map(|archive| archive_json_placed(archive, &placement))
        .collect();
    let resp = Resp::json(200, &list);
    Ok(match next {
        Some(next) => resp.header(
            "Link",
            paging::next_link("/api/v1/archives", limit, &next.encode()),
        ),
        None => resp,
    })
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
    };
    let archive = app.archives.ingest_whole(new, req.body())?;
    ops::archives::uploaded(app, &caller.user.username, &archive);
    Ok(Resp::json(201, &archive_json(app, &archive))
        .header("Location", format!("/api/v1/archives/{}", archive.id)))
}

pub fn get_archive(app: &App, req: &mut Req, archive_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let mut value = super::trash::any_archive_json(app, &archive)?;
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
        RangeRequest::Whole => Ok(base.stream(Box::new(file), Some(size))),
        RangeRequest::Part { start, end } => {
            file.seek(SeekFrom::Start(start))
                .map_err(ApiError::internal)?;
            let length = end - start + 1;
            let mut resp = base.stream(Box::new(file.take(length)), Some(length));
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

pub fn get_settings(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    Ok(Resp::json(200, &Settings::load(&app.store)?))
}

pub fn put_settings(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let settings: Settings = req.json()?;
    ops::settings::save(app, &caller, &settings)?;
    Ok(Resp::json(200, &settings))
}

pub fn list_users(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let users: Vec<Value> = app.accounts.users()?.iter().map(user_json).collect();
    Ok(Resp::json(200, &users))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<Role>,
    disabled: Option<bool>,
    /// An admin's reset of a forgotten password; the user's sessions end.
    password: Option<String>,
}

pub fn get_user(app: &App, req: &mut Req, user_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    Ok(Resp::json(200, &user_json(&app.accounts.user(user_id)?)))
}

pub fn update_user(app: &App, req: &mut Req, user_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let change: UserChange = req.json()?;
    if let Some(password) = &change.password {
        let user = ops::accounts::reset_password(app, &caller, user_id, password)?;
        if change.role.is_none() && change.disabled.is_none() {
            return Ok(Resp::json(200, &user_json(&user)));
        }
    }
    let user = ops::accounts::update_user(app, &caller, user_id, change.role, change.disabled)?;
    Ok(Resp::json(200, &user_json(&user)))
}

/// `POST /api/v1/admin/system/{poweroff,reboot}`: answers first, then asks
/// the firmware's init (PID 1) to stop the appliance cleanly.
pub fn power(app: &App, req: &mut Req, action: &str) -> Answer {
    use crate::power::{self, PowerAction};
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let action = match action {
        "poweroff" => PowerAction::Poweroff,
        "reboot" => PowerAction::Reboot,
        _ => return Err(ApiError::not_found()),
    };
    if !power::running_under_init() {
        return Err(ApiError::new(
            409,
            "not_an_appliance",
            "This piarchive was not started by the appliance firmware, so it cannot power off or reboot the machine.",
        ));
    }
    let word = if matches!(action, PowerAction::Poweroff) {
        "powering off"
    } else {
        "rebooting"
    };
    Ok(Resp::json(
        202,
        &json!({"message": format!("The appliance is {word}.")}),
    )
    .then(move || {
        let _ = power::request(action);
    }))
}
