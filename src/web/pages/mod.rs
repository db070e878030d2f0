//! The browser UI: maud pages and the form posts behind them (routed in
//! `web::router`, which checks every form post's CSRF token). Pages render
//! what they are handed and never open a transaction; what a post changes
//! is done by `crate::ops`.

pub mod account;
pub mod admin;
pub mod archives;
pub mod layout;
mod progress;
pub mod remote;
pub mod restore;

use std::collections::HashMap;

use super::auth;
use super::http::{ApiError, Req, Resp};
use crate::app::App;

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

/// `GET /static/{name}`: a file embedded at build time.
pub fn static_file(name: &str) -> Result<Resp, ApiError> {
    match STATIC_FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => Ok(Resp::new(200)
            .header("Content-Type", *content_type)
            .header("Cache-Control", "no-cache")
            .bytes(body.as_bytes().to_vec())),
        None => Err(ApiError::not_found()),
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
