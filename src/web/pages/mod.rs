//! The browser UI: maud pages and the form posts behind them. Pages render
//! what handlers hand them and never touch the store; every form post
//! checks the session's CSRF token.

mod account;
mod admin;
mod archives;
pub mod layout;
mod progress;
mod remote;
mod restore;

use std::collections::HashMap;

use tiny_http::Method;

use super::auth;
use super::http::{ApiError, Req, Resp};
use super::App;
use crate::accounts::Caller;

pub use layout::Page;

/// Static files embedded at build time.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../templates/static/app.css"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/upload.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/admin.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/live.js"),
    ),
    (
        "bars.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/bars.js"),
    ),
    (
        "tus.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/tus.min.js"),
    ),
    (
        "tus-js-client.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("../../../templates/static/tus-js-client.LICENSE.txt"),
    ),
    (
        "times.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/times.js"),
    ),
    (
        "confirm.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/confirm.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../../templates/static/favicon.svg"),
    ),
    (
        "setup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/setup.js"),
    ),
    (
        "device.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/device.js"),
    ),
    (
        "firmware.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/firmware.js"),
    ),
    (
        "tls.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../templates/static/tls.js"),
    ),
];

pub fn route(
    app: &App,
    req: &mut Req,
    method: &Method,
    segments: &[&str],
) -> Result<Resp, ApiError> {
    use Method::*;
    if let (Get, ["static", name]) = (method, segments) {
        return match STATIC_FILES.iter().find(|(file, _, _)| file == name) {
            Some((_, content_type, body)) => Ok(Resp::new(200)
                .header("Content-Type", *content_type)
                .header("Cache-Control", "no-cache")
                .bytes(body.as_bytes().to_vec())),
            None => Err(ApiError::not_found()),
        };
    }
    // Restoring from a backup creates the users while it runs.
    match (method, segments) {
        (Get, ["setup", "restore"]) => return restore::page(app, req),
        (Post, ["setup", "restore"]) => return restore::post(app, req),
        _ => {}
    }
    if app.accounts.setup_needed()? && !matches!(segments, ["setup"]) {
        return Ok(Resp::redirect("/setup"));
    }
    match (method, segments) {
        (Get, ["setup"]) => account::setup_page(app, req),
        (Post, ["setup"]) => account::setup_post(app, req),
        (Get, ["login"]) => account::login_page(app, req),
        (Post, ["login"]) => account::login_post(app, req),
        (Get, ["register"]) => account::register_page(app, req),
        (Post, ["register"]) => account::register_post(app, req),
        _ => {
            let Some(caller) = auth::caller(app, req).ok().flatten() else {
                return Ok(Resp::redirect("/login"));
            };
            signed_in_route(app, req, &caller, method, segments)
        }
    }
}

fn signed_in_route(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    method: &Method,
    segments: &[&str],
) -> Result<Resp, ApiError> {
    use Method::*;
    if auth::changes_state(method) {
        let form = req.form()?;
        auth::check_form_csrf(caller, req, &form)?;
        return match segments {
            ["logout"] => account::logout_post(app, req),
            ["account", "password"] => account::password_post(app, req, caller, &form),
            ["account", "passphrase-typed-back"] => {
                account::passphrase_typed_back_post(app, caller)
            }
            ["account", "tokens"] => account::token_post(app, req, caller, &form),
            ["account", "tokens", id, "delete"] => account::token_delete_post(app, caller, id),
            ["archives", id, "rename"] => archives::rename_post(app, req, caller, id, &form),
            ["archives", id, "delete"] => archives::delete_post(app, caller, id),
            ["admin", "settings"] => account::admin_settings_post(app, req, caller, &form),
            ["admin", "users", target] => admin::users_post(app, caller, target, &form),
            ["admin", "remote"] => remote::remote_post(app, caller, &form),
            ["admin", "notifications", rest @ ..] => {
                super::notifications::form_post(app, caller, rest, &form)
            }
            ["admin", "tls", action] => super::tls::form_post(app, req, caller, action, &form),
            ["archives", id, "uncache"] => archives::uncache_post(app, caller, id),
            ["archives", id, "cache"] => archives::cache_post(app, caller, id),
            ["uploads", id, "discard"] => archives::discard_upload_post(app, caller, id),
            _ => Err(ApiError::not_found()),
        };
    }
    match (method, segments) {
        (Get, [""]) => archives::home(app, req, caller),
        (Get, ["archives", "new"]) => archives::new_page(app, req, caller),
        (Get, ["archives", id]) => archives::detail(app, req, caller, id),
        (Get, ["archives", id, "delete"]) => archives::delete_page(app, req, caller, id),
        (Get, ["account"]) => account::account_page(app, req, caller, None),
        (Get, ["admin", "device"]) => super::device::page(app, caller),
        (Get, ["admin", "firmware"]) => super::firmware::page(app, caller),
        (Get, ["admin", "notifications"]) => super::notifications::page(app, caller, None, None),
        (Get, ["admin", "tls"]) => super::tls::page(app, req, caller, None),
        (Get, ["admin", "settings"]) => account::admin_settings_page(app, req, caller, None),
        (Get, ["admin"]) => admin::home(app, caller),
        (Get, ["admin", "scripts", "new"]) => admin::develop(app, caller, None),
        (Get, ["admin", "scripts", "help"]) => admin::script_help(app, caller),
        (Get, ["admin", "scripts", id]) => admin::develop(app, caller, Some(id)),
        (Get, ["admin", "log"]) => admin::log_page(app, req, caller),
        (Get, ["admin", "users"]) => admin::users_page(app, caller, None),
        (Get, ["admin", "remote"]) => remote::remote_page(app, caller, None, None),
        _ => Err(ApiError::not_found()),
    }
}

/// An error in a page request, shown as a page with the sentence.
pub fn error_page(app: &App, req: &Req, err: ApiError) -> Resp {
    let caller = auth::caller(app, req).ok().flatten();
    let page = Page::new("Something went wrong", caller.as_ref(), app.on_box_only());
    let body = maud::html! {
        h1 { "Something went wrong" }
        p.error role="alert" { (err.message) }
        p { a href="/" { "Back to your archives" } }
    };
    let mut resp = Resp::html(page.render(body));
    resp.status = err.status;
    resp.headers.extend(err.headers);
    resp
}

fn field<'f>(form: &'f HashMap<String, String>, name: &str) -> &'f str {
    form.get(name).map(String::as_str).unwrap_or("")
}
