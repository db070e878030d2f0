//! The device mirror over HTTP: LED states as JSON and the live display PNG.

use std::time::Duration;

use crate::support::{random_bytes, wait_until, Client, TestServer};

/// Uploads an archive whose backup a 1000 B/s bandwidth limit keeps going
/// for the length of a test, so the appliance has pending work.
fn upload_held_in_backup(admin: &Client, name: &str, seed: u64) {
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["upload_bandwidth_bytes_per_sec"] = serde_json::json!(1000);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );
    admin.upload_ok(name, &random_bytes(300_000, seed));
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (width, height)
}

#[test]
fn leds_and_display_follow_the_appliance() {
    let server = TestServer::start();
    let admin = server.admin();
    let member = server.member("bob");
    assert_eq!(member.get("/api/v1/admin/device").status, 403);
    assert_eq!(member.get("/api/v1/admin/device/display.png").status, 403);

    // Nothing stored yet and healthy, but the default remote is a folder on
    // the same disk: not "all backed up" (steady green) but on this box
    // only, green blinking slowly.
    wait_until(Duration::from_secs(30), || {
        let state = admin.get("/api/v1/admin/device").json();
        state["green"] == "slow_blink"
            && state["status"]["on_box_only"] == true
            && state["status"]["activity"] == "idle"
    });
    let state = admin.get("/api/v1/admin/device").json();
    assert_eq!(
        (state["blue"].as_str(), state["red"].as_str()),
        (Some("off"), Some("off"))
    );
    assert_eq!(state["display_png"], "/api/v1/admin/device/display.png");
    let before = admin.get("/api/v1/admin/device/display.png");
    assert_eq!(png_size(&before.body), (128, 64));

    // An archive that is not backed up yet is pending work: green still
    // blinks slowly and the display changes. A tight bandwidth limit keeps the
    // backup going for the length of the test.
    upload_held_in_backup(&admin, "waiting for the cloud", 3);
    wait_until(Duration::from_secs(30), || {
        admin.get("/api/v1/admin/device").json()["green"] == "slow_blink"
    });
    wait_until(Duration::from_secs(30), || {
        admin.get("/api/v1/admin/device/display.png").body != before.body
    });
    // The engine is sending it (held back by the limit): the blue LED
    // flickers and the status names the archive being uploaded.
    let mut state = serde_json::Value::Null;
    wait_until(Duration::from_secs(30), || {
        state = admin.get("/api/v1/admin/device").json();
        state["blue"] == "activity"
    });
    assert_eq!(state["status"]["activity"], "uploading", "{state}");
    assert_eq!(
        state["status"]["current"]["archive_name"], "waiting for the cloud",
        "{state}"
    );
    assert_eq!(state["status"]["current"]["percent"], 0, "{state}");
    assert!(
        state["status"]["web_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://")),
        "{state}"
    );

    let page = admin.get("/admin/device");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("display.png"));
    let script = admin.get("/static/device.js");
    assert_eq!(
        script.status, 200,
        "the page's live-update script is served"
    );
    assert!(script.text().contains("/api/v1/admin/device"));
}

#[test]
fn the_device_page_mirrors_leds_and_display_in_a_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    upload_held_in_backup(&admin, "shown on the display", 4);
    let browser = crate::browser::Browser::start();
    browser.goto(&format!("{}/login", server.base));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");
    browser.goto(&format!("{}/admin/device", server.base));
    browser.wait_for("the display image", |b| {
        b.script(
            "const i = document.getElementById('display'); return i.complete && i.naturalWidth;",
        ) == serde_json::json!(128)
    });
    browser.wait_for("the green LED to blink for pending work", |b| {
        b.script("return document.getElementById('led-green').className;")
            .as_str()
            .unwrap_or("")
            .contains("pattern-slow_blink")
    });
    browser.screenshot("07-device");
}
