//! Maps method and path to a handler, and turns every outcome into an HTTP
//! answer: JSON errors under `/api/`, an HTML page elsewhere.

use tiny_http::Method;

use super::http::{ApiError, Body, Req, Resp};
use super::{admin_api, api, pages, tus, App};

/// Answers `request`. With `transfers`, a streamed answer (a download) is
/// sent from a download thread; without, it is sent from this thread.
pub fn handle(
    app: &App,
    mut request: tiny_http::Request,
    transfers: Option<&super::transfers::Transfers>,
) {
    if let Some(redirect) = super::tls::https_redirect(app, &request) {
        let _ = request.respond(redirect.into_tiny());
        return;
    }
    // The live log answers from a thread of its own.
    if request.method() == &Method::Get
        && request.url().split('?').next() == Some("/api/v1/admin/log/events")
    {
        return admin_api::log_events(app, request);
    }
    if request.method() == &Method::Get && request.url().split('?').next() == Some("/api/v1/events")
    {
        // Takes the connection over on a thread of its own.
        return super::sse::serve(app, request);
    }
    let resp = {
        let mut req = Req::new(&mut request);
        let is_api = req.path.starts_with("/api/");
        match route(app, &mut req) {
            Ok(resp) => resp,
            Err(err) if is_api || req.path == "/healthz" || req.path == "/metrics" => {
                err.into_resp()
            }
            Err(err) => pages::error_page(app, &req, err),
        }
    };
    let mut resp = resp;
    let after = resp.after.take();
    let changed_state = super::auth::changes_state(request.method());
    let streamed = matches!(resp.body, Body::Stream { .. }) && request.method() != &Method::Head;
    if let (true, Some(transfers)) = (streamed, transfers) {
        if changed_state {
            app.engine.wake();
        }
        return transfers.send_download(request, resp.into_tiny(), after);
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

fn route(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    req.check_query()?;
    let path = req.path.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method.clone();
    use Method::*;
    match (&method, segments.as_slice()) {
        (Get, ["healthz"]) => Ok(Resp::text(200, "ok\n")),
        (Get, ["metrics"]) => super::metrics::serve(app, req),

        (Get, ["api", "v1", "setup"]) => api::setup_status(app),
        (Post, ["api", "v1", "setup"]) => api::setup(app, req),
        (Get, ["api", "v1", "setup", "restore"]) => super::restore::get(app),
        (Post, ["api", "v1", "setup", "restore"]) => super::restore::post(app, req),
        (Post, ["api", "v1", "session"]) => api::login(app, req),
        (Delete, ["api", "v1", "session"]) => api::logout(app, req),
        (Post, ["api", "v1", "users"]) => api::create_user(app, req),
        (Get, ["api", "v1", "me"]) => api::me(app, req),
        (Patch, ["api", "v1", "me"]) => api::update_me(app, req),
        (Get, ["api", "v1", "tokens"]) => api::list_tokens(app, req),
        (Post, ["api", "v1", "tokens"]) => api::create_token(app, req),
        (Delete, ["api", "v1", "tokens", id]) => api::delete_token(app, req, id),

        (Get, ["api", "v1", "archives"]) => api::list_archives(app, req),
        (Put, ["api", "v1", "archives"]) => api::put_archive(app, req),
        (Get, ["api", "v1", "archives", id]) => api::get_archive(app, req, id),
        (Patch, ["api", "v1", "archives", id]) => api::rename_archive(app, req, id),
        (Delete, ["api", "v1", "archives", id]) => api::delete_archive(app, req, id),
        (Get, ["api", "v1", "archives", id, "parts"]) => api::list_parts(app, req, id),
        (Get | Head, ["api", "v1", "archives", id, "content"]) => api::content(app, req, id),
        (Post, ["api", "v1", "archives", id, "uncache"]) => api::uncache_archive(app, req, id),
        (Post, ["api", "v1", "archives", id, "cache"]) => api::cache_archive(app, req, id),
        (Get, ["api", "v1", "admin", "remote"]) => api::get_remote(app, req),
        (Put, ["api", "v1", "admin", "remote"]) => api::put_remote(app, req),
        (Post, ["api", "v1", "admin", "remote", "test"]) => api::test_remote(app, req),
        (Post, ["api", "v1", "admin", "remote", "plan"]) => api::plan_remote(app, req),

        (Options, ["api", "v1", "uploads", ..]) => tus::options(),
        (Post, ["api", "v1", "uploads"]) => tus::create(app, req),
        (Head, ["api", "v1", "uploads", id]) => tus::head(app, req, id),
        (Patch, ["api", "v1", "uploads", id]) => tus::patch(app, req, id),
        (Delete, ["api", "v1", "uploads", id]) => tus::delete(app, req, id),

        (Get, ["api", "v1", "admin", "settings"]) => api::get_settings(app, req),
        (Put, ["api", "v1", "admin", "settings"]) => api::put_settings(app, req),
        (Get, ["api", "v1", "admin", "users"]) => api::list_users(app, req),
        (Get, ["api", "v1", "admin", "users", id]) => api::get_user(app, req, id),
        (Patch, ["api", "v1", "admin", "users", id]) => api::update_user(app, req, id),

        (Get, ["api", "v1", "admin", "device"]) => super::device::state(app, req),
        (Get, ["api", "v1", "admin", "device", "display.png"]) => {
            super::device::display_png(app, req)
        }
        (Post, ["api", "v1", "admin", "system", action]) => api::power(app, req, action),
        (_, ["api", "v1", "admin", "firmware"]) => super::firmware::api(app, req, &method),
        (Get, ["api", "v1", "admin", "notifications"]) => super::notifications::get(app, req),
        (Put, ["api", "v1", "admin", "notifications"]) => super::notifications::put(app, req),
        (Post, ["api", "v1", "admin", "notifications", "test"]) => {
            super::notifications::test(app, req)
        }
        (Get, ["api", "v1", "admin", "tls"]) => super::tls::get(app, req),
        (Put, ["api", "v1", "admin", "tls"]) => super::tls::put(app, req),
        (Delete, ["api", "v1", "admin", "tls"]) => super::tls::delete(app, req),
        (_, ["api", "v1", "admin", "scripts" | "deployments" | "log", ..]) => {
            admin_api::route(app, req, &method, &segments[3..])
        }

        (_, ["api", ..]) => Err(ApiError::not_found()),
        _ => pages::route(app, req, &method, &segments),
    }
}
