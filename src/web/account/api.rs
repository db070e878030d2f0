//! The account's JSON API of API.md: setup, sessions (login, logout),
//! registration, the caller's own account and API tokens.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::state::App;
use crate::ops;
use crate::store::records::{ApiTokenRecord, Role, UserRecord};
use crate::web::auth::{self, api_caller};
use crate::web::http::{ApiError, Req, Resp};
use crate::web::paging;

type Answer = Result<Resp, ApiError>;

pub fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "role": user.role.as_str(),
        "created_at": user.created_at,
        "disabled": user.disabled,
        "quota_bytes": user.quota_bytes,
    })
}

/// A user's storage use and quota (`crate::archive::usage`).
pub fn storage_json(usage: &crate::archive::Usage) -> Value {
    json!({
        "used_bytes": usage.used_bytes(),
        "quota_bytes": usage.quota_bytes,
        "local_bytes": usage.local_bytes,
        "remote_bytes": usage.remote_bytes,
        "pending_bytes": usage.pending_bytes,
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
}

/// Self-registration, or an admin creating a user (with `role`).
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
    value["storage"] = storage_json(&app.archives.usage(&caller.user.id)?);
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

/// A page of the caller's tokens, oldest first (`limit`, `after` = the
/// last token id seen), with a `Link` header while more remain.
pub fn list_tokens(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let limit = paging::limit(&req.query)?;
    let after = req.query.get("after").cloned();
    let (page, next) = ops::tokens::page(app, &caller, after.as_deref(), limit)?;
    let tokens: Vec<Value> = page.iter().map(token_json).collect();
    let resp = Resp::json(200, &tokens);
    Ok(match next {
        Some(next) => resp.header("Link", paging::next_link("/api/v1/tokens", limit, &next)),
        None => resp,
    })
}

pub fn delete_token(app: &App, req: &mut Req, token_id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    ops::tokens::delete(app, &caller, token_id)?;
    Ok(Resp::new(204))
}
