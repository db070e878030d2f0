//! The device mirror on the web: `GET /api/v1/admin/device` (LED states as
//! JSON), `GET /api/v1/admin/device/display.png` (the exact framebuffer) and
//! the admin page that draws both, live; `POST /api/v1/admin/system/{action}`
//! powers the appliance off or reboots it. The feed that keeps the device
//! status in step with the catalog is `app::device_feed`.

use maud::html;
use serde_json::json;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::layout::Page;
use crate::accounts::Caller;
use crate::app::state::App;
use crate::app::state::DeviceLink;

type Answer = Result<Resp, ApiError>;

fn link(app: &App) -> Result<&DeviceLink, ApiError> {
    app.device.get().ok_or_else(|| {
        ApiError::new(
            503,
            "starting",
            "The device display is still starting; try again in a moment.",
        )
    })
}

pub fn state(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let mirror = link(app)?.driver.mirror().snapshot();
    let mut value = serde_json::to_value(mirror.report()).map_err(ApiError::internal)?;
    value["status"] = serde_json::to_value(&mirror.status).map_err(ApiError::internal)?;
    value["display_png"] = json!("/api/v1/admin/device/display.png");
    value["tls_fingerprint_sha256"] = json!(app.tls.info().fingerprint_sha256);
    // The `.local` name answered to (after a rename), null without mDNS.
    value["mdns_name"] = json!(app.mdns.get().and_then(|mdns| mdns.answering_as()));
    Ok(Resp::json(200, &value))
}

pub fn display_png(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let mirror = link(app)?.driver.mirror().snapshot();
    let png = mirror.frame.to_png().map_err(ApiError::internal)?;
    Ok(Resp::new(200)
        .header("Content-Type", "image/png")
        .header("Cache-Control", "no-store")
        .header("ETag", format!("\"{}\"", mirror.generation))
        .bytes(png))
}

pub fn page(app: &App, caller: &Caller) -> Result<Resp, ApiError> {
    require_admin(caller)?;
    let report = link(app)?.driver.mirror().snapshot().report();
    let leds = [
        ("green", report.leds.green),
        ("blue", report.leds.blue),
        ("red", report.leds.red),
    ];
    let page = Page::new("Device", Some(caller), app.on_box_only()).script("/static/device.js").render(html! {
        h1 { "Device" }
        p.muted { "What the appliance's LEDs and display show right now (board: " (report.board) ")." }
        div.leds {
            @for (color, pattern) in leds {
                @let name = serde_json::to_value(pattern).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                div.led-box {
                    span class={ "led led-" (color) " pattern-" (name) } id={ "led-" (color) } {}
                    span id={ "led-" (color) "-text" } { (color) ": " (name.replace('_', " ")) }
                }
            }
        }
        img.display id="display" src="/api/v1/admin/device/display.png" width="512" height="256" alt="The appliance's display";
        p { "HTTPS certificate fingerprint (SHA-256): " code.fingerprint { (app.tls.info().fingerprint_sha256) } " (" a href="/admin/tls" { "HTTPS settings" } ")" }
        @if let Some(url) = app.mdns.get().and_then(|mdns| mdns.url()) { p { "On your network: " a id="local-url" href=(url) { (url) } } }
    });
    Ok(Resp::html(page))
}

/// `POST /api/v1/admin/system/{poweroff,reboot}`: answers first, then asks
/// the firmware's init (PID 1) to stop the appliance cleanly.
pub fn power(app: &App, req: &mut Req, action: &str) -> Answer {
    use crate::power::{self, PowerAction};
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let action = match action {
        "poweroff" => PowerAction::Poweroff,
        "reboot" => PowerAction::Reboot,
        _ => return Err(ApiError::not_found()),
    };
    if !power::running_under_init() {
        return Err(ApiError::new(
            409,
            "not_an_appliance",
            "This piarchive was not started by the appliance firmware, so it cannot power off or reboot the machine.",
        ));
    }
    let word = if matches!(action, PowerAction::Poweroff) {
        "powering off"
    } else {
        "rebooting"
    };
    Ok(Resp::json(
        202,
        &json!({"message": format!("The appliance is {word}.")}),
    )
    .then(move || {
        let _ = power::request(action);
    }))
}
