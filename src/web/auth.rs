//! Who is asking: the session cookie or an API token, the CSRF check
//! every state-changing request made with the cookie must pass, and the
//! same-origin check of the posts made before there is a session (setup,
//! login, register, restore), which have no CSRF token to check.

use std::collections::HashMap;

use tiny_http::Method;

use super::http::{ApiError, Req};
use crate::accounts::Caller;
use crate::app::state::App;

pub const SESSION_COOKIE: &str = "piarchive_session";

/// Methods that change state and so need the CSRF token with a cookie.
pub fn changes_state(method: &Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options)
}

/// Where a page that needs a session sends a caller without one:
/// `/login?next=<this page>`, with `ended=1` when the request carried a
/// session cookie that is no longer valid (the login page then says the
/// session ended). A form post goes to `/login` without `next`: its page
/// is shown again from there.
pub fn login_redirect(req: &Req) -> super::http::Resp {
    let mut location = "/login".to_string();
    let mut separator = '?';
    if req.method == Method::Get && req.path != "/" {
        if let Some(next) = safe_next(&req.url()) {
            location.push_str("?next=");
            location.push_str(&super::http::percent_encode(next));
            separator = '&';
        }
    }
    if req.cookie(SESSION_COOKIE).is_some() {
        location.push(separator);
        location.push_str("ended=1");
    }
    super::http::Resp::redirect(&location)
}

/// `next` when it is a path on this site to return to after login
/// (`/archives/x?after=y`), else `None`: only a single leading `/`, no
/// backslash, no control character, at most 2 KiB, so `//evil`,
/// `/\evil` and `https://evil` never leave the site.
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    let refused = rest.starts_with('/')
        || next.contains('\\')
        || next.chars().any(char::is_control)
        || next.len() > 2048
        || next == "/login"
        || next.starts_with("/login?");
    (!refused).then_some(next)
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

/// Refuses a post another website made the browser send (login CSRF: it
/// would sign the victim into the attacker's account). Browsers say where a
/// post comes from with `Sec-Fetch-Site` and `Origin`; a request with
/// neither (curl, scripts, old browsers) is let through.
pub fn refuse_cross_site(req: &Req) -> Result<(), ApiError> {
    let refused = || {
        ApiError::new(
            403,
            "cross_site",
            "This form was sent from another website, so it was refused; open the appliance's own page and try there.",
        )
    };
    if let Some(site) = req.header("Sec-Fetch-Site") {
        if !matches!(site.trim(), "same-origin" | "none") {
            return Err(refused());
        }
    }
    if let Some(origin) = req.header("Origin") {
        let host = req.header("Host").unwrap_or("");
        if !same_authority(origin, host) {
            return Err(refused());
        }
    }
    Ok(())
}

/// Whether `origin` (`scheme://host[:port]`, or `null`) names `host` (the
/// Host header); default ports are the same as none.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let normal = |authority: &str| {
        let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
        match authority.strip_suffix(default_port) {
            Some(bare) => bare.to_string(),
            None => authority,
        }
    };
    !host.trim().is_empty() && normal(authority) == normal(host)
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

/// A session cookie is `Secure` when issued over HTTPS, or over HTTP when
/// `require_https` is set (the browser then sends it over HTTPS only).
pub fn cookie_secure(app: &App, req: &Req) -> bool {
    req.secure
        || crate::settings::Settings::load(&app.store)
            .map(|s| s.require_https)
            .unwrap_or(false)
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

#[cfg(test)]
mod tests {
    use super::{safe_next, same_authority};

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        for good in [
            "/",
            "/archives/ab?after=1-x",
            "/admin/log?level=error",
            "/a%2F%2Fb",
        ] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "//evil",
            "///evil",
            "/\\evil",
            "https://evil",
            "http:/evil",
            "evil",
            "",
            "/\nx",
            "/login",
            "/login?next=/",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), None);
    }

    #[test]
    fn origins() {
        for (origin, host, same) in [
            ("http://192.168.1.20:8080", "192.168.1.20:8080", true),
            ("http://piarchive.local", "piarchive.local", true),
            ("http://PiArchive.local:80", "piarchive.local", true),
            ("https://piarchive.local", "piarchive.local:443", true),
            ("http://evil.example", "piarchive.local", false),
            ("http://192.168.1.20:8081", "192.168.1.20:8080", false),
            ("null", "piarchive.local", false),
            ("http://piarchive.local", "", false),
            ("ftp://piarchive.local", "piarchive.local", false),
        ] {
            assert_eq!(same_authority(origin, host), same, "{origin} {host}");
        }
    }
}
