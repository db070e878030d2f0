//! The route table: every method and path the server answers, in one
//! listing ([`route`]), and what is checked before a handler runs (see
//! [`Route`]). Every outcome becomes an HTTP answer: JSON errors under
//! `/api/` (and for `/healthz`, `/metrics`), an HTML page elsewhere.

use std::collections::HashMap;

use tiny_http::Method;

use super::http::{ApiError, Body, Req, Resp};
use super::{
    account, admin, archives, auth, device, layout, metrics, notifications, remote, restore, sse,
    static_files, tls, trash, updates,
};
use crate::accounts::Caller;
use crate::app::state::App;

type Answer = Result<Resp, ApiError>;
type Form = HashMap<String, String>;
/// A handler that checks its caller itself, or needs none.
type Handler<'p> = Box<dyn FnOnce(&App, &mut Req<'_>) -> Answer + 'p>;
/// A handler of a signed-in caller's page.
type PageHandler<'p> = Box<dyn FnOnce(&App, &mut Req<'_>, &Caller) -> Answer + 'p>;
/// A handler of a signed-in caller's form post.
type FormHandler<'p> = Box<dyn FnOnce(&App, &mut Req<'_>, &Caller, &Form) -> Answer + 'p>;

/// A handler and who may reach it.
pub enum Route<'p> {
    /// Takes the connection over and streams from a thread of its own
    /// (Server-Sent Events); checks its caller itself.
    Stream(fn(&App, tiny_http::Request)),
    /// Checks its caller itself (the API: a session cookie or a token).
    Open(Handler<'p>),
    /// A page anyone may see once the appliance is set up (else `/setup`).
    Page(Handler<'p>),
    /// A page of a signed-in caller (else `/login`).
    SignedIn(PageHandler<'p>),
    /// A form post of a signed-in caller, with the session's CSRF token.
    Form(FormHandler<'p>),
}

fn open<'p>(handler: impl FnOnce(&App, &mut Req<'_>) -> Answer + 'p) -> Route<'p> {
    Route::Open(Box::new(handler))
}

fn page<'p>(handler: impl FnOnce(&App, &mut Req<'_>) -> Answer + 'p) -> Route<'p> {
    Route::Page(Box::new(handler))
}

fn signed_in<'p>(handler: impl FnOnce(&App, &mut Req<'_>, &Caller) -> Answer + 'p) -> Route<'p> {
    Route::SignedIn(Box::new(handler))
}

fn form<'p>(handler: impl FnOnce(&App, &mut Req<'_>, &Caller, &Form) -> Answer + 'p) -> Route<'p> {
    Route::Form(Box::new(handler))
}

/// Every (method, path) served, top to bottom; `path` is the URL path
/// split at `/` without the leading one. One line per route, unformatted.
#[rustfmt::skip]
pub fn route<'p>(method: &Method, path: &'p [&'p str]) -> Route<'p> {
    use Method::*;
    match (method, path) {
        (Get, ["healthz"]) => open(|_, _| Ok(Resp::text(200, "ok\n"))),
        (Get, ["metrics"]) => open(metrics::serve),
        (Get, ["static", name]) => open(move |_, req| static_files::static_file(req, name)),

        // Event streams.
        (Get, ["api", "v1", "events"]) => Route::Stream(sse::archive_events),
        (Get, ["api", "v1", "admin", "log", "events"]) => Route::Stream(admin::api::log_events),

        // Setup, sessions, the caller's account.
        (Get, ["api", "v1", "setup"]) => open(|app, _| account::api::setup_status(app)),
        (Post, ["api", "v1", "setup"]) => open(account::api::setup),
        (Get, ["api", "v1", "setup", "restore"]) => open(|app, _| restore::api::get(app)),
        (Post, ["api", "v1", "setup", "restore"]) => open(restore::api::post),
        (Post, ["api", "v1", "session"]) => open(account::api::login),
        (Delete, ["api", "v1", "session"]) => open(account::api::logout),
        (Post, ["api", "v1", "users"]) => open(account::api::create_user),
        (Get, ["api", "v1", "me"]) => open(account::api::me),
        (Patch, ["api", "v1", "me"]) => open(account::api::update_me),
        (Get, ["api", "v1", "tokens"]) => open(account::api::list_tokens),
        (Post, ["api", "v1", "tokens"]) => open(account::api::create_token),
        (Delete, ["api", "v1", "tokens", id]) => open(move |app, req| account::api::delete_token(app, req, id)),

        // Archives and uploads (tus).
        (Get, ["api", "v1", "archives"]) => open(archives::api::list_archives),
        (Put, ["api", "v1", "archives"]) => open(archives::api::put_archive),
        (Post, ["api", "v1", "archives", "bulk"]) => open(archives::api::bulk_archives),
        (Get, ["api", "v1", "archives", id]) => open(move |app, req| archives::api::get_archive(app, req, id)),
        (Patch, ["api", "v1", "archives", id]) => open(move |app, req| archives::api::rename_archive(app, req, id)),
        (Delete, ["api", "v1", "archives", id]) => open(move |app, req| trash::api::delete_archive(app, req, id)),
        (Post, ["api", "v1", "archives", id, "restore"]) => open(move |app, req| trash::api::restore_archive(app, req, id)),
        (Get, ["api", "v1", "archives", id, "parts"]) => open(move |app, req| archives::api::list_parts(app, req, id)),
        (Get | Head, ["api", "v1", "archives", id, "content"]) => open(move |app, req| archives::api::content(app, req, id)),
        (Post, ["api", "v1", "archives", id, "uncache"]) => open(move |app, req| archives::api::uncache_archive(app, req, id)),
        (Post, ["api", "v1", "archives", id, "cache"]) => open(move |app, req| archives::api::cache_archive(app, req, id)),
        (Options, ["api", "v1", "uploads", ..]) => open(|_, _| archives::tus::options()),
        (Post, ["api", "v1", "uploads"]) => open(archives::tus::create),
        (Head, ["api", "v1", "uploads", id]) => open(move |app, req| archives::tus::head(app, req, id)),
        (Patch, ["api", "v1", "uploads", id]) => open(move |app, req| archives::tus::patch(app, req, id)),
        (Delete, ["api", "v1", "uploads", id]) => open(move |app, req| archives::tus::delete(app, req, id)),

        // Admin: remote, settings, users, device, power, firmware, HTTPS.
        (Get, ["api", "v1", "admin", "remote"]) => open(remote::api::get_remote),
        (Put, ["api", "v1", "admin", "remote"]) => open(remote::api::put_remote),
        (Post, ["api", "v1", "admin", "remote", "test"]) => open(remote::api::test_remote),
        (Post, ["api", "v1", "admin", "remote", "plan"]) => open(remote::api::plan_remote),
        (Get, ["api", "v1", "admin", "remotes"]) => open(remote::api::list_remotes),
        (Post, ["api", "v1", "admin", "remotes"]) => open(remote::api::add_remote),
        (Delete, ["api", "v1", "admin", "remotes", id]) => open(move |app, req| remote::api::remove_remote(app, req, id)),
        (Get, ["api", "v1", "admin", "settings"]) => open(admin::api::get_settings),
        (Put, ["api", "v1", "admin", "settings"]) => open(admin::api::put_settings),
        (Get, ["api", "v1", "admin", "users"]) => open(admin::api::list_users),
        (Get, ["api", "v1", "admin", "users", id]) => open(move |app, req| admin::api::get_user(app, req, id)),
        (Patch, ["api", "v1", "admin", "users", id]) => open(move |app, req| admin::api::update_user(app, req, id)),
        (Get, ["api", "v1", "admin", "invitations"]) => open(account::invitations::list),
        (Post, ["api", "v1", "admin", "invitations"]) => open(account::invitations::create),
        (Delete, ["api", "v1", "admin", "invitations", id]) => open(move |app, req| account::invitations::delete(app, req, id)),
        (Get, ["api", "v1", "admin", "archives"]) => open(admin::archives::list),
        (Post, ["api", "v1", "admin", "archives", id, action]) => open(move |app, req| admin::archives::act(app, req, id, action)),
        (Get, ["api", "v1", "admin", "device"]) => open(device::state),
        (Get, ["api", "v1", "admin", "device", "display.png"]) => open(device::display_png),
        (Post, ["api", "v1", "admin", "system", action]) => open(move |app, req| device::power(app, req, action)),
        (Get, ["api", "v1", "admin", "firmware"]) => open(updates::get),
        (Post, ["api", "v1", "admin", "firmware"]) => open(updates::post),
        (_, ["api", "v1", "admin", "firmware"]) => open(updates::other_method),
        (Get, ["api", "v1", "admin", "notifications"]) => open(notifications::get),
        (Put, ["api", "v1", "admin", "notifications"]) => open(notifications::put),
        (Post, ["api", "v1", "admin", "notifications", "test"]) => open(notifications::test),
        (Get, ["api", "v1", "admin", "tls"]) => open(tls::get),
        (Put, ["api", "v1", "admin", "tls"]) => open(tls::put),
        (Delete, ["api", "v1", "admin", "tls"]) => open(tls::delete),

        // Admin: scripts, deployments, the system log.
        (Get, ["api", "v1", "admin", "scripts"]) => open(admin::api::list_scripts),
        (Post, ["api", "v1", "admin", "scripts"]) => open(admin::api::create_script),
        (Post, ["api", "v1", "admin", "scripts", "run"]) => open(admin::api::run_source),
        (Get, ["api", "v1", "admin", "scripts", id]) => open(move |app, req| admin::api::get_script(app, req, id)),
        (Put, ["api", "v1", "admin", "scripts", id]) => open(move |app, req| admin::api::update_script(app, req, id)),
        (Delete, ["api", "v1", "admin", "scripts", id]) => open(move |app, req| admin::api::delete_script(app, req, id)),
        (Post, ["api", "v1", "admin", "scripts", id, "run"]) => open(move |app, req| admin::api::run_script(app, req, id)),
        (Get, ["api", "v1", "admin", "deployments"]) => open(admin::api::list_deployments),
        (Post, ["api", "v1", "admin", "deployments"]) => open(admin::api::create_deployment),
        (Delete, ["api", "v1", "admin", "deployments", id]) => open(move |app, req| admin::api::delete_deployment(app, req, id)),
        (Get, ["api", "v1", "admin", "log"]) => open(admin::api::query_log),
        (Get, ["api", "v1", "admin", "log", "settings"]) => open(admin::api::get_log_settings),
        (Put, ["api", "v1", "admin", "log", "settings"]) => open(admin::api::put_log_settings),
        (_, ["api", "v1", "admin", "scripts" | "deployments" | "log", ..]) => open(admin::api::not_found),
        (_, ["api", ..]) => open(|_, _| Err(ApiError::not_found())),
        _ => page_route(method, path),
    }
}

/// The pages and their form posts, top to bottom (the rest of [`route`]).
#[rustfmt::skip]
fn page_route<'p>(method: &Method, path: &'p [&'p str]) -> Route<'p> {
    use Method::*;
    match (method, path) {
        // Pages before any account exists.
        (Get, ["setup", "restore"]) => open(restore::page::page),
        (Post, ["setup", "restore"]) => open(restore::page::post),
        (Get, ["setup"]) => open(account::page::setup_page),
        (Post, ["setup"]) => open(account::page::setup_post),
        (Get, ["login"]) => page(account::page::login_page),
        (Post, ["login"]) => page(account::page::login_post),
        (Get, ["register"]) => page(account::page::register_page),
        (Post, ["register"]) => page(account::page::register_post),
        (Get, ["invite", token]) => page(move |app, req| account::invitations::signup_page(app, req, token)),
        (Post, ["invite", token]) => page(move |app, req| account::invitations::signup_post(app, req, token)),

        // Pages of a signed-in user.
        (Get, [""]) => signed_in(account::passphrase::home_unless_unconfirmed),
        (Get, ["archives", "new"]) => signed_in(archives::page::new_page),
        (Get, ["archives", id]) => signed_in(move |app, req, caller| archives::page::detail(app, req, caller, id)),
        (Get, ["archives", id, "delete"]) => signed_in(move |app, _, caller| trash::page::delete_page(app, caller, id)),
        (Get, ["trash"]) => signed_in(trash::page::trash_page),
        (Get, ["account"]) => signed_in(|app, req, caller| account::page::account_page(app, req, caller, None)),
        (Post, ["logout"]) => form(|app, req, _, _| account::page::logout_post(app, req)),
        (Post, ["account", "password"]) => form(account::page::password_post),
        (Post, ["account", "passphrase-typed-back"]) => form(|app, _, caller, _| account::page::passphrase_typed_back_post(app, caller)),
        (Get, ["setup", "passphrase"]) => signed_in(|app, _, caller| account::passphrase::page(app, caller, None)),
        (Post, ["setup", "passphrase"]) => form(account::passphrase::confirm_post),
        (Post, ["setup", "passphrase", "elsewhere"]) => form(|app, _, caller, _| account::passphrase::elsewhere_post(app, caller)),
        (Post, ["account", "notifications"]) => form(account::page::notifications_post),
        (Post, ["account", "tokens"]) => form(account::page::token_post),
        (Post, ["account", "tokens", id, "delete"]) => form(move |app, _, caller, _| account::page::token_delete_post(app, caller, id)),
        (Post, ["archives", "bulk"]) => form(|app, _, caller, form| archives::list::bulk_post(app, caller, form)),
        (Post, ["archives", id, "rename"]) => form(move |app, req, caller, form| archives::page::rename_post(app, req, caller, id, form)),
        (Post, ["archives", id, "delete"]) => form(move |app, _, caller, _| trash::page::delete_post(app, caller, id)),
        (Post, ["archives", id, "restore"]) => form(move |app, _, caller, _| trash::page::restore_post(app, caller, id)),
        (Post, ["archives", id, "uncache"]) => form(move |app, _, caller, _| archives::page::uncache_post(app, caller, id)),
        (Post, ["archives", id, "cache"]) => form(move |app, _, caller, _| archives::page::cache_post(app, caller, id)),
        (Post, ["uploads", id, "discard"]) => form(move |app, _, caller, _| archives::page::discard_upload_post(app, caller, id)),

        // Admin pages.
        (Get, ["admin"]) => signed_in(|app, _, caller| admin::page::home(app, caller)),
        (Get, ["admin", "settings"]) => signed_in(|app, req, caller| admin::page::admin_settings_page(app, req, caller, None)),
        (Post, ["admin", "settings"]) => form(admin::page::admin_settings_post),
        (Get, ["admin", "users"]) => signed_in(|app, _, caller| admin::page::users_page(app, caller, None)),
        (Post, ["admin", "users", target]) => form(move |app, _, caller, form| admin::page::users_post(app, caller, target, form)),
        (Post, ["admin", "invitations"]) => form(account::invitations::admin_create_post),
        (Post, ["admin", "invitations", id, "withdraw"]) => form(move |app, _, caller, _| account::invitations::admin_withdraw_post(app, caller, id)),
        (Get, ["admin", "archives"]) => signed_in(admin::archives::page),
        (Get, ["admin", "archives", id]) => signed_in(move |app, req, caller| admin::archives::detail(app, req, caller, id)),
        (Post, ["admin", "archives", id, action]) => form(move |app, _, caller, _| admin::archives::act_post(app, caller, id, action)),
        (Get, ["admin", "remote"]) => signed_in(|app, _, caller| remote::page::remote_page(app, caller, None, None)),
        (Post, ["admin", "remote"]) => form(|app, _, caller, form| remote::page::remote_post(app, caller, form)),
        (Post, ["admin", "remotes"]) => form(|app, _, caller, form| remote::destinations::add_post(app, caller, form)),
        (Get, ["admin", "remotes", id, "remove"]) => signed_in(move |app, _, caller| remote::destinations::remove_page(app, caller, id)),
        (Post, ["admin", "remotes", id, "remove"]) => form(move |app, _, caller, _| remote::destinations::remove_post(app, caller, id)),
        (Get, ["admin", "tls"]) => signed_in(|app, req, caller| tls::page(app, req, caller, None)),
        (Post, ["admin", "tls", action]) => form(move |app, req, caller, form| tls::form_post(app, req, caller, action, form)),
        (Get, ["admin", "notifications"]) => signed_in(|app, _, caller| notifications::page(app, caller, None, None)),
        (Post, ["admin", "notifications", rest @ ..]) => form(move |app, _, caller, form| notifications::form_post(app, caller, rest, form)),
        (Get, ["admin", "device"]) => signed_in(|app, _, caller| device::page(app, caller)),
        (Get, ["admin", "firmware"]) => signed_in(|app, _, caller| updates::page(app, caller)),
        (Get, ["admin", "scripts", "new"]) => signed_in(|app, _, caller| admin::page::develop(app, caller, None)),
        (Get, ["admin", "scripts", "help"]) => signed_in(|app, _, caller| admin::page::script_help(app, caller)),
        (Get, ["admin", "scripts", id]) => signed_in(move |app, _, caller| admin::page::develop(app, caller, Some(id))),
        (Get, ["admin", "log"]) => signed_in(|app, req, caller| admin::page::log_page(app, req, caller)),

        // Anything else: a signed-in user's 404 (a stranger logs in first).
        (method, _) if auth::changes_state(method) => form(|_, _, _, _| Err(ApiError::not_found())),
        _ => signed_in(|_, _, _| Err(ApiError::not_found())),
    }
}

/// Answers `request`. With `transfers`, a streamed answer (a download) is
/// sent from a download thread; without, it is sent from this thread.
pub fn handle(
    app: &App,
    mut request: tiny_http::Request,
    transfers: Option<&super::transfers::Transfers>,
) {
    if let Some(redirect) = tls::https_redirect(app, &request) {
        let _ = request.respond(redirect.into_tiny());
        return;
    }
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let handler = match route(&method, &segments) {
        Route::Stream(stream) => return stream(app, request),
        handler => handler,
    };
    let mut resp = {
        let mut req = Req::new(&mut request);
        let is_api = req.path.starts_with("/api/");
        match run(app, &mut req, handler) {
            Ok(resp) => resp,
            Err(err) if is_api || req.path == "/healthz" || req.path == "/metrics" => {
                err.into_resp()
            }
            Err(err) => layout::error_page(app, &req, err),
        }
    };
    let after = resp.after.take();
    let changed_state = auth::changes_state(&method);
    let streamed = matches!(resp.body, Body::Stream { .. }) && method != Method::Head;
    if let (true, Some(transfers)) = (streamed, transfers) {
        if changed_state {
            app.engine.wake();
        }
        return transfers.send_download(app, request, resp.into_tiny(), after);
    }
    let _ = request.respond(resp.into_tiny());
    if changed_state {
        // New jobs may be waiting (an upload finished, a cache was asked for).
        app.engine.wake();
    }
    if let Some(after) = after {
        after();
    }
}

/// Runs `handler` after what its kind of route requires: until the
/// appliance is set up every page leads to `/setup`; a signed-in page
/// without a session to `/login`; a form post checks its CSRF token.
fn run(app: &App, req: &mut Req, handler: Route) -> Answer {
    req.check_query()?;
    let signed_in = |app: &App, req: &Req| -> Result<Result<Caller, Resp>, ApiError> {
        if app.accounts.setup_needed()? {
            return Ok(Err(Resp::redirect("/setup")));
        }
        Ok(auth::caller(app, req)
            .ok()
            .flatten()
            .ok_or_else(|| auth::login_redirect(req)))
    };
    match handler {
        Route::Stream(_) => Err(ApiError::not_found()),
        Route::Open(handler) => handler(app, req),
        Route::Page(handler) => match app.accounts.setup_needed()? {
            true => Ok(Resp::redirect("/setup")),
            false => handler(app, req),
        },
        Route::SignedIn(handler) => match signed_in(app, req)? {
            Ok(caller) => handler(app, req, &caller),
            Err(redirect) => Ok(redirect),
        },
        Route::Form(handler) => match signed_in(app, req)? {
            Ok(caller) => {
                let form = req.form()?;
                auth::check_form_csrf(&caller, req, &form)?;
                handler(app, req, &caller, &form)
            }
            Err(redirect) => Ok(redirect),
        },
    }
}
