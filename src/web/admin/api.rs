//! The admin JSON API of API.md: saved scripts, test runs, deployments, the
//! system log and its live tail (Server-Sent Events), the settings and the
//! users. Every route answers
//! 403 to members; state changes made with the cookie need the CSRF token.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::Caller;
use crate::admin::deployments::NewDeployment;
use crate::admin::log::{LogError, LogLevel, LogQuery, LogSettings, MAX_QUERY_LIMIT};
use crate::admin::saved_scripts::{self, ScriptDraft, ScriptsError};
use crate::app::state::App;
use crate::ops;
use crate::settings::Settings;
use crate::store::records::{DeploymentRecord, Role, RunSummary, ScriptRecord};
use crate::web::account::api::{storage_json, user_json};
use crate::web::auth::{api_caller, require_admin};
use crate::web::http::{ApiError, Req, Resp};

type Answer = Result<Resp, ApiError>;

/// Live log streams open at once; each holds one thread.
pub const MAX_LOG_STREAMS: usize = 8;
static LOG_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// A comment line sent when nothing happened for this long, so a client
/// that went away is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

impl From<ScriptsError> for ApiError {
    fn from(err: ScriptsError) -> ApiError {
        let message = err.to_string();
        match err {
            ScriptsError::NotFound => ApiError::new(404, "not_found", message),
            ScriptsError::Invalid(_) => ApiError::new(400, "invalid", message),
            ScriptsError::InUse(_) => ApiError::new(409, "in_use", message),
            ScriptsError::Store(store) => store.into(),
        }
    }
}

impl From<LogError> for ApiError {
    fn from(err: LogError) -> ApiError {
        match err {
            LogError::Invalid(message) => ApiError::new(400, "invalid", message),
            LogError::Store(store) => store.into(),
        }
    }
}

pub fn run_summary_json(summary: &Option<RunSummary>) -> Value {
    match summary {
        Some(run) => json!({
            "at": run.at, "ok": run.ok, "duration_ms": run.duration_ms, "message": run.message,
        }),
        None => Value::Null,
    }
}

pub fn script_json(script: &ScriptRecord) -> Value {
    json!({
        "id": script.id,
        "name": script.name,
        "description": script.description,
        "source": script.source,
        "created_at": script.created_at,
        "updated_at": script.updated_at,
        "last_run": run_summary_json(&script.last_run),
    })
}

pub fn deployment_json(
    app: &App,
    deployment: &DeploymentRecord,
    script_name: Option<&str>,
) -> Value {
    json!({
        "id": deployment.id,
        "script_id": deployment.script_id,
        "script_name": script_name,
        "interval_seconds": deployment.interval_seconds,
        "next_run_at": deployment.next_run_at,
        "created_at": deployment.created_at,
        "running": app.admin.deployment_running(&deployment.id),
        "last_run": run_summary_json(&deployment.last_run),
    })
}

/// The admin caller, or 401/403.
pub fn admin_caller(app: &App, req: &Req) -> Result<Caller, ApiError> {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    Ok(caller)
}

pub fn list_scripts(app: &App, req: &mut Req) -> Answer {
    admin_caller(app, req)?;
    let scripts: Vec<Value> = saved_scripts::list(app.admin.store())?
        .iter()
        .map(script_json)
        .collect();
    Ok(Resp::json(200, &scripts))
}

pub fn get_script(app: &App, req: &mut Req, script_id: &str) -> Answer {
    admin_caller(app, req)?;
    let script = saved_scripts::get(app.admin.store(), script_id)?;
    Ok(Resp::json(200, &script_json(&script)))
}

pub fn create_script(app: &App, req: &mut Req) -> Answer {
    let caller = admin_caller(app, req)?;
    let draft: ScriptDraft = req.json()?;
    let script = ops::scripts::create(app, &caller, &draft)?;
    Ok(Resp::json(201, &script_json(&script))
        .header("Location", format!("/api/v1/admin/scripts/{}", script.id)))
}

pub fn update_script(app: &App, req: &mut Req, script_id: &str) -> Answer {
    let caller = admin_caller(app, req)?;
    let draft: ScriptDraft = req.json()?;
    let script = ops::scripts::update(app, &caller, script_id, &draft)?;
    Ok(Resp::json(200, &script_json(&script)))
}

pub fn delete_script(app: &App, req: &mut Req, script_id: &str) -> Answer {
    let caller = admin_caller(app, req)?;
    ops::scripts::delete(app, &caller, script_id)?;
    Ok(Resp::new(204))
}

pub fn run_script(app: &App, req: &mut Req, script_id: &str) -> Answer {
    let caller = admin_caller(app, req)?;
    let result = app.admin.run_saved(script_id, &caller.user.id)?;
    Ok(Resp::json(200, &result))
}

pub fn create_deployment(app: &App, req: &mut Req) -> Answer {
    let caller = admin_caller(app, req)?;
    let new: NewDeployment = req.json()?;
    let named = ops::deployments::create(app, &caller, &new)?;
    Ok(Resp::json(
        201,
        &deployment_json(app, &named.deployment, named.script_name.as_deref()),
    ))
}

pub fn delete_deployment(app: &App, req: &mut Req, deployment_id: &str) -> Answer {
    let caller = admin_caller(app, req)?;
    ops::deployments::terminate(app, &caller, deployment_id)?;
    Ok(Resp::new(204))
}

pub fn get_log_settings(app: &App, req: &mut Req) -> Answer {
    admin_caller(app, req)?;
    Ok(Resp::json(200, &app.admin.log.settings()?))
}

pub fn put_log_settings(app: &App, req: &mut Req) -> Answer {
    let caller = admin_caller(app, req)?;
    let settings: LogSettings = req.json()?;
    ops::settings::save_log_settings(app, &caller, &settings)?;
    Ok(Resp::json(200, &settings))
}

/// Any other path under scripts, deployments or the log: 404 for an admin.
pub fn not_found(app: &App, req: &mut Req) -> Answer {
    admin_caller(app, req)?;
    Err(ApiError::not_found())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceOnly {
    source: String,
}

pub fn run_source(app: &App, req: &mut Req) -> Answer {
    let caller = admin_caller(app, req)?;
    let body: SourceOnly = req.json()?;
    let result = app.admin.run_source(&body.source, &caller.user.id);
    Ok(Resp::json(200, &result))
}

pub fn list_deployments(app: &App, req: &mut Req) -> Answer {
    admin_caller(app, req)?;
    let list: Vec<Value> = ops::deployments::list(app)?
        .iter()
        .map(|named| deployment_json(app, &named.deployment, named.script_name.as_deref()))
        .collect();
    Ok(Resp::json(200, &list))
}

/// `level`, `source`, `q`, `limit`, `before` (an entry id), `since` and
/// `until` (Unix seconds, or `YYYY-MM-DDTHH:MM` in UTC).
pub fn log_query_from(
    query: &std::collections::HashMap<String, String>,
) -> Result<LogQuery, ApiError> {
    let text = |name: &str| {
        query
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let level = match text("level") {
        Some(level) => Some(LogLevel::parse(&level).ok_or_else(|| {
            ApiError::bad_request(format!(
                "The level {level:?} is not one of debug, info, warn, error."
            ))
        })?),
        None => None,
    };
    let limit = match text("limit") {
        Some(limit) => limit.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "The limit must be a number from 1 to {MAX_QUERY_LIMIT}."
            ))
        })?,
        None => 100,
    };
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        match text(name) {
            Some(value) => parse_time_ms(&value).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The time {value:?} ({name}) is neither Unix seconds nor YYYY-MM-DDTHH:MM."
                ))
            }),
            None => Ok(None),
        }
    };
    Ok(LogQuery {
        level,
        source: text("source"),
        text: text("q"),
        before: text("before"),
        // The whole second (or minute, for `YYYY-MM-DDTHH:MM`) named is
        // included.
        until_ms: time("until")?.map(|ms| {
            let minute_only = text("until").is_some_and(|v| v.matches(':').count() == 1);
            ms + if minute_only { 59_999 } else { 999 }
        }),
        since_ms: time("since")?,
        limit,
    })
}

/// Unix seconds, or `YYYY-MM-DDTHH:MM[:SS]` read as UTC; in milliseconds.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs.saturating_mul(1000));
    }
    let (date, time) = text.split_once('T').or_else(|| text.split_once(' '))?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let mut time_parts = time.split(':').map(|p| p.parse::<i64>().ok());
    let hour = time_parts.next()??;
    let minute = time_parts.next()??;
    let second = time_parts.next().flatten().unwrap_or(0);
    crate::date::unix_secs(year, month, day, hour, minute, second).map(|secs| secs * 1000)
}

pub fn query_log(app: &App, req: &mut Req) -> Answer {
    admin_caller(app, req)?;
    let query = log_query_from(&req.query)?;
    let (entries, more) = app.admin.log.query(&query)?;
    let next_before = if more {
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Resp::json(
        200,
        &json!({"entries": entries, "next_before": next_before}),
    ))
}

/// `GET /api/v1/admin/log/events`: new log entries as Server-Sent Events
/// (`event: log`, JSON data), answered from a thread of its own so the
/// handler thread is free at once. At most [`MAX_LOG_STREAMS`] at a time.
pub fn log_events(app: &App, mut request: tiny_http::Request) {
    let caller = {
        let req = Req::new(&mut request);
        admin_caller(app, &req)
    };
    if let Err(err) = caller {
        let _ = request.respond(err.into_resp().into_tiny());
        return;
    }
    if LOG_STREAMS.fetch_add(1, Ordering::SeqCst) >= MAX_LOG_STREAMS {
        LOG_STREAMS.fetch_sub(1, Ordering::SeqCst);
        let err = ApiError::new(
            503,
            "busy",
            format!("At most {MAX_LOG_STREAMS} live log views may be open; close one."),
        );
        let _ = request.respond(err.into_resp().into_tiny());
        return;
    }
    let feed = app.admin.log.subscribe();
    let spawned = std::thread::Builder::new()
        .name("log-stream".into())
        .spawn(move || {
            if let Some(mut stream) = crate::web::sse::start(request, ": live log\n\n") {
                loop {
                    let chunk = match feed.recv_timeout(KEEPALIVE) {
                        Ok(entry) => format!(
                            "event: log\nid: {}\ndata: {}\n\n",
                            entry.id,
                            serde_json::to_string(&entry).unwrap_or_default()
                        ),
                        // A comment for proxies, an event for the page's
                        // watchdog (pages cannot see comments).
                        Err(RecvTimeoutError::Timeout) => {
                            ": keep-alive\n\nevent: heartbeat\ndata: {}\n\n".to_string()
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    if !crate::web::sse::send(&mut stream, &chunk) {
                        break;
                    }
                }
            }
            LOG_STREAMS.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        LOG_STREAMS.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        for (text, expected) in [
            ("0", Some(0)),
            ("1709210096", Some(1_709_210_096_000)),
            ("2024-02-29T12:34", Some(1_709_210_040_000)),
            ("2024-02-29T12:34:56", Some(1_709_210_096_000)),
            ("1970-01-01 00:00", Some(0)),
            ("2024-13-01T00:00", None),
            ("yesterday", None),
        ] {
            assert_eq!(parse_time_ms(text), expected, "{text}");
        }
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
    let usage = app.archives.usage_by_owner()?;
    let users: Vec<Value> = app
        .accounts
        .users()?
        .iter()
        .map(|user| {
            let mut value = user_json(user);
            let used = usage.get(&user.id).copied().unwrap_or_default();
            value["storage"] = storage_json(&used);
            value
        })
        .collect();
    Ok(Resp::json(200, &users))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<Role>,
    disabled: Option<bool>,
    /// An admin's reset of a forgotten password; the user's sessions end.
    password: Option<String>,
    /// The storage quota in bytes; `null` removes it, absent leaves it.
    #[serde(default, deserialize_with = "present")]
    quota_bytes: Option<Option<u64>>,
}

/// A field that is present, `null` included (`Some(None)`), apart from
/// one that is absent (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(field).map(Some)
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
    let mut user = None;
    if let Some(password) = &change.password {
        user = Some(ops::accounts::reset_password(
            app, &caller, user_id, password,
        )?);
    }
    if let Some(quota_bytes) = change.quota_bytes {
        user = Some(ops::accounts::set_quota(
            app,
            &caller,
            user_id,
            quota_bytes,
        )?);
    }
    let user = match (user, change.role.is_some() || change.disabled.is_some()) {
        (Some(user), false) => user,
        _ => ops::accounts::update_user(app, &caller, user_id, change.role, change.disabled)?,
    };
    Ok(Resp::json(200, &user_json(&user)))
}
