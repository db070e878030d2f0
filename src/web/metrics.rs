//! `GET /metrics`: the engine's counters in the Prometheus text format.
//!
//! Admins only (session cookie or an admin's API token as
//! `Authorization: Bearer`, which Prometheus sends with its `authorization`
//! scrape setting). The numbers are harmless on their own, but they tell
//! anyone on the network when the family uploads and how much: like every
//! other page but `/healthz`, they need a login. Owns no state: the
//! counters live in `crate::metrics`.

use super::admin::api::admin_caller;
use super::http::{ApiError, Req, Resp};
use crate::app::state::App;

/// The content type Prometheus expects for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn serve(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    admin_caller(app, req)?;
    let text = crate::metrics::global().render(app.engine.queue_length());
    Ok(Resp::new(200)
        .header("Content-Type", CONTENT_TYPE)
        .header("Cache-Control", "no-store")
        .bytes(text.into_bytes()))
}
