//! The firmware-update page and `GET/POST /api/v1/admin/firmware`: the running version and
//! slot, the last update's result, and uploading a signed bundle (streamed to the
//! inactive slot by [`crate::update::apply`], never held in memory).
//!
//! Owns: the HTTP side of updates (admin check, status codes, the page). Must not
//! touch: the bundle format or the slots (that is [`crate::update`]).

use std::io::Read;

use maud::html;
use serde_json::json;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::layout::Page;
use crate::accounts::Caller;
use crate::app::state::App;
use crate::ops;
use crate::update::{self, ApplyError};

/// How much of a refused upload is read and dropped so that the refusal reaches the
/// client (a bundle is about 40 MiB).
const DRAIN_LIMIT: u64 = 512 << 20;

/// `GET /api/v1/admin/firmware`: the running version and slot, the last update.
pub fn get(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    require_admin(&api_caller(app, req)?)?;
    Ok(Resp::json(200, &update::status()))
}

/// Any other method on `/api/v1/admin/firmware`.
pub fn other_method(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    require_admin(&api_caller(app, req)?)?;
    Err(ApiError::new(
        405,
        "method_not_allowed",
        "Use GET or POST here.",
    ))
}

/// `POST /api/v1/admin/firmware`: a signed bundle, streamed to the inactive slot.
pub fn post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    require_admin(&api_caller(app, req)?)?;
    let force = req
        .query
        .get("force")
        .is_some_and(|v| v == "1" || v == "true");
    let applied = ops::updates::install(req.body(), force).map_err(|err| {
        // Read what is left of the upload (bounded, into nothing) so the client gets
        // the refusal instead of a broken connection.
        let _ = std::io::copy(&mut req.body().take(DRAIN_LIMIT), &mut std::io::sink());
        match err {
            ApplyError::NotUpdatable(message) => ApiError::new(409, "not_updatable", message),
            ApplyError::Bundle(err) => {
                let (status, code) = err.status_and_code();
                ApiError::new(status, code, err.to_string())
            }
        }
    })?;
    let slot = applied.slot.dir_name();
    if applied.hold_reboot {
        return Ok(Resp::json(
            202,
            &json!({ "message": "held by the test switch", "version": applied.version, "slot": slot }),
        ));
    }
    let message = ops::updates::installed_sentence(&applied);
    Ok(Resp::json(
        202,
        &json!({ "message": message, "version": applied.version, "slot": slot }),
    )
    .then(ops::updates::reboot_into_trial))
}

/// The admin firmware page.
pub fn page(app: &App, caller: &Caller) -> Result<Resp, ApiError> {
    require_admin(caller)?;
    let status = update::status();
    let failed = status
        .last_update
        .as_ref()
        .filter(|last| last.result == "failed")
        .map(|last| last.failure_sentence(&status.version));
    let page = Page::new("Firmware", Some(caller), app.on_box_only()).script("/static/firmware.js").render(html! {
        h1 { "Firmware" }
        @if let Some(sentence) = &failed {
            div.banner.warning role="alert" id="update-failed" { (sentence) }
        }
        dl {
            dt { "Version" } dd id="fw-version" { (status.version) }
            dt { "Slot" } dd id="fw-slot" { (status.slot.unwrap_or("none (not running from the SD-card image)")) }
            @if status.trial { dt { "Trial" } dd { "This version is on trial after an update." } }
            @if status.test_key { dt { "Build" } dd { "Test image: it also trusts a throwaway test key." } }
            dt { "Last update" }
            dd id="fw-last" {
                @match &status.last_update {
                    None => { "None yet." }
                    Some(last) => { (last.version) " from " (last.from) ": " (last.result) @if !last.message.is_empty() { " (" (last.message) ")" } }
                }
            }
        }
        @if status.can_update {
            h2 { "Install an update" }
            p.muted { "Choose a piarchive-<version>-rpi-arm64.piup file. The appliance checks its signature, installs it next to the running version and restarts into it; archives stay where they are." }
            form id="firmware-form" {
                input type="file" id="firmware-file" accept=".piup" required;
                label { input type="checkbox" id="firmware-force"; " Reinstall even if it is not newer" }
                button type="submit" { "Install" }
            }
            progress id="firmware-progress" max="100" value="0" hidden {}
            p id="firmware-result" role="status" {}
        } @else if let Some(reason) = &status.not_updatable {
            p.muted id="fw-not-updatable" { (reason) }
        }
    });
    Ok(Resp::html(page))
}
