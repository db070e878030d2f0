//! Who is asking: the session cookie or an API token, and the CSRF check
//! every state-changing request made with the cookie must pass.

use std::collections::HashMap;

use tiny_http::Method;

use super::http::{ApiError, Req};
use super::App;
use crate::accounts::Caller;

pub const SESSION_COOKIE: &str = "piarchive_session";

/// Methods that change state and so need the CSRF token with a cookie.
pub fn changes_state(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// The caller, if any. A request with an `Authorization` header is judged
/// by it alone: a bad token is 401 even with a valid cookie.
pub fn caller(app: &App, req: &Req) -> Result<Option<Caller>, ApiError> {
    if let Some(authorization) = req.header("Authorization") {
        let token = authorization.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::new(
                401,
                "unauthorized",
                "Use `Authorization: Bearer <api token>`.",
            )
        })?;
        return match app.accounts.bearer(token.trim())? {
            Some(caller) => Ok(Some(caller)),
            None => Err(ApiError::new(
                401,
                "unauthorized",
                "The API token is not valid (deleted, or its user disabled).",
            )),
        };
    }
    match req.cookie(SESSION_COOKIE) {
        Some(token) => Ok(app.accounts.session(&token)?),
        None => Ok(None),
    }
}

/// The caller of an API request, or 401. For a state-changing request made
/// with the session cookie, the `X-CSRF-Token` header must match.
pub fn api_caller(app: &App, req: &Req) -> Result<Caller, ApiError> {
    let caller = caller(app, req)?.ok_or_else(ApiError::unauthorized)?;
    if changes_state(&req.method) {
        check_csrf(&caller, req.header("X-CSRF-Token"))?;
    }
    Ok(caller)
}

/// The CSRF check for a form post (`csrf_token` field) or header.
pub fn check_form_csrf(
    caller: &Caller,
    req: &Req,
    form: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let token = req
        .header("X-CSRF-Token")
        .or(form.get("csrf_token").map(String::as_str));
    check_csrf(caller, token)
}

pub fn check_csrf(caller: &Caller, presented: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = &caller.csrf_token else {
        return Ok(()); // API tokens are not sent by browsers on their own.
    };
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::forbidden("The CSRF token does not match this session; reload the page and try again.")),
        None => Err(ApiError::forbidden(
            "This request needs the session's CSRF token (X-CSRF-Token header or csrf_token field).",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("Only an admin may do this."))
    }
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}
