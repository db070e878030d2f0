//! The device mirror on the web: `GET /api/v1/admin/device` (LED states as
//! JSON), `GET /api/v1/admin/device/display.png` (the exact framebuffer) and
//! the admin page that draws both, live. Also the feed that keeps the
//! device status in step with the catalog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maud::html;
use serde_json::json;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::pages::Page;
use super::App;
use crate::accounts::Caller;
use crate::archive::available_bytes;
use crate::device::status::{compute_status, ArchiveCounts, DiskSpace, StatusInputs};
use crate::device::{DeviceDriver, StatusSender};
use crate::settings::Settings;
use crate::store::records::ArchiveState;

/// How often the feed recomputes the status (the driver skips unchanged ones).
const FEED_PERIOD: Duration = Duration::from_secs(1);

/// The device driver and the thread feeding it.
pub struct DeviceLink {
    pub driver: DeviceDriver,
    stop: Arc<AtomicBool>,
}

impl DeviceLink {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The status inputs as the catalog and the disk say now.
pub fn current_inputs(app: &App, web_url: &str) -> StatusInputs {
    let mut counts = ArchiveCounts::default();
    for archive in app.archives.list_all().unwrap_or_default() {
        let slot = match archive.state {
            ArchiveState::Receiving => &mut counts.receiving,
            ArchiveState::Local => &mut counts.local,
            ArchiveState::Uploading => &mut counts.uploading,
            ArchiveState::BackedUp => &mut counts.backed_up,
            ArchiveState::Uncached => &mut counts.uncached,
            ArchiveState::Caching => &mut counts.caching,
            ArchiveState::Deleting => &mut counts.deleting,
            ArchiveState::Damaged => &mut counts.damaged,
        };
        *slot += 1;
    }
    let disk = rustix::fs::statvfs(&app.config.data_dir)
        .ok()
        .map(|stat| DiskSpace {
            free_bytes: available_bytes(&app.config.data_dir).unwrap_or(0),
            total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        });
    StatusInputs {
        archives: counts,
        jobs_queued: 0,
        active_transfer: None,
        remote_error: None,
        disk,
        free_space_reserve_bytes: Settings::load(&app.store)
            .map(|s| s.free_space_reserve_bytes)
            .unwrap_or(0),
        web_url: web_url.to_string(),
    }
}

/// Starts the feed thread: recomputes the status every [`FEED_PERIOD`].
pub fn start_feed(app: Arc<App>, sender: StatusSender, web_url: String) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            sender.send(compute_status(&current_inputs(&app, &web_url)));
            std::thread::sleep(FEED_PERIOD);
        }
    });
    stop
}

impl DeviceLink {
    pub fn new(driver: DeviceDriver, stop: Arc<AtomicBool>) -> DeviceLink {
        DeviceLink { driver, stop }
    }
}

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
    value["display_png"] = json!("/api/v1/admin/device/display.png");
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
    let page = Page::new("Device", Some(caller)).script("/static/device.js").render(html! {
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
    });
    Ok(Resp::html(page))
}
