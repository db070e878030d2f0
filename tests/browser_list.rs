//! Issue 28, items 6 to 8, in a real browser (headless Chromium, as
//! `browser.rs`): the archive list's search, sort links, ticks and bulk
//! actions (asked first, then what happened to each); the upload page that
//! starts at once, keeps a folder's paths and warns before leaving; the
//! small frictions: an empty rename said on its form, an ended session sent
//! to `/login?next=` and back (never to another site), the remote page that
//! keeps a typed secret after a failed save, the HTTPS page without an
//! HTTPS listener, the phone menu with Log out on the screen, and times
//! named by zone. Every page at 390 and 1280 px, axe-clean, no sideways
//! scroll, screenshots `list-*.png` in `tests/output/browser/`.

use serde_json::{json, Value};

use crate::browser::{log_in, throttle_uploads, Browser};
use crate::remote_engine::{s3_json, wait_state};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{encode, output_dir, random_bytes, Client, TestServer};

fn upload_at(client: &Client, name: &str, relative_path: Option<&str>, size: usize) -> String {
    let mut path = format!(
        "/api/v1/archives?name={}&filename={}.jpg",
        encode(name),
        encode(name)
    );
    if let Some(relative) = relative_path {
        path.push_str(&format!("&relative_path={}", encode(relative)));
    }
    let resp = client.request("PUT", &path, &[], Some(&vec![3u8; size]));
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["id"].as_str().unwrap().to_string()
}

/// The names in the list, top to bottom.
fn listed(browser: &Browser) -> Value {
    browser.script(
        "return Array.from(document.querySelectorAll('#archive-list td.name a')).map(a => a.textContent);",
    )
}

/// Log out stays on the screen at a phone's width: the menu wraps.
fn log_out_on_the_phone_screen(browser: &Browser) {
    browser.set_size(390, 844);
    let fits = browser.script(
        "const r = document.querySelector('header.top button.link').getBoundingClientRect();\
         const nav = document.querySelector('header.top nav');\
         return [r.left >= 0, r.right <= window.innerWidth, nav.scrollWidth <= nav.clientWidth, r.width > 0];",
    );
    assert_eq!(fits, json!([true, true, true, true]), "Log out off screen");
    browser.set_size(1280, 900);
}

#[test]
fn the_list_searches_sorts_and_acts_on_ticked_archives_in_a_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let beach = upload_at(&admin, "beach", Some("Holiday 2024/day 1/beach.jpg"), 3000);
    let zebra = upload_at(&admin, "zebra", Some("zoo/zebra.jpg"), 1000);
    let alpaca = upload_at(&admin, "alpaca", Some("zoo/alpaca.jpg"), 2000);
    let receipt = upload_at(&admin, "receipt", None, 500);
    for id in [&beach, &zebra, &alpaca, &receipt] {
        wait_state(&admin, id, "backed_up");
    }
    let browser = Browser::start();
    let site = &server.base;
    log_in(&browser, site, "admin", "admin password");
    assert!(
        browser.text().contains("Holiday 2024/day 1/"),
        "the folder path shows"
    );
    browser.check_page("list-01-home");
    log_out_on_the_phone_screen(&browser);

    // Search: the folder path counts; the sort links keep the search.
    browser.type_into("#q", "zoo");
    browser.click("form.search button[type=submit]");
    browser.wait_for("two archives from the zoo folder", |b| {
        listed(b) == json!(["alpaca", "zebra"]) || listed(b) == json!(["zebra", "alpaca"])
    });
    browser.click("a.sort[data-sort=name]");
    browser.wait_for("A to Z", |b| listed(b) == json!(["alpaca", "zebra"]));
    assert!(browser
        .script("return location.search;")
        .as_str()
        .unwrap()
        .contains("q=zoo"));
    browser.click("a.sort[data-sort=name]");
    browser.wait_for("Z to A", |b| listed(b) == json!(["zebra", "alpaca"]));
    browser.check_page("list-02-search-sorted");
    browser.goto(&format!("{site}/?sort=size"));
    assert_eq!(
        listed(&browser),
        json!(["beach", "alpaca", "zebra", "receipt"])
    );

    // Nothing ticked: a sentence, nothing done.
    browser.click("#bulk button[value=uncache]");
    browser.wait_for("the hint", |b| b.text().contains("Tick the archives first"));

    // Two ticked, free space: asked first, saying this box holds the only
    // other copy (the remote is a folder on the same disk).
    for id in [&zebra, &alpaca] {
        browser.click(&format!("input.select[name='id.{id}']"));
    }
    browser.click("#bulk button[value=uncache]");
    browser.wait_for("the question", |b| {
        b.text().contains("Free space on this box for 2 archives?")
    });
    assert!(browser
        .text()
        .contains("only other copy is in the storage folder on this same box"));
    browser.check_page("list-03-confirm-free-space");
    browser.click("#bulk-confirm");
    browser.wait_for("what happened", |b| b.find_all("#bulk-results li.ok") == 2);
    browser.check_page("list-04-results");
    for id in [&zebra, &alpaca] {
        wait_state(&admin, id, "uncached");
    }

    // A mixed request: one fetched back, one refused with its reason.
    browser.goto(&format!("{site}/"));
    for id in [&zebra, &receipt] {
        browser.click(&format!("input.select[name='id.{id}']"));
    }
    browser.click("#bulk button[value=cache]");
    browser.wait_for("what happened", |b| b.find_all("#bulk-results li") == 2);
    assert_eq!(browser.find_all("#bulk-results li.ok"), 1);
    assert_eq!(browser.find_all("#bulk-results li.error"), 1);
    assert!(browser
        .text()
        .contains("only an archive that is in the cloud only"));
    wait_state(&admin, &zebra, "backed_up");

    // Delete: asked first, to the trash.
    browser.goto(&format!("{site}/"));
    browser.click(&format!("input.select[name='id.{beach}']"));
    browser.click("#bulk button[value=delete]");
    browser.wait_for("the question", |b| {
        b.text().contains("Move 1 archive to the trash?")
    });
    browser.check_page("list-05-confirm-delete");
    browser.click("#bulk-confirm");
    browser.wait_for("what happened", |b| b.find_all("#bulk-results li.ok") == 1);
    let trash = admin.get("/api/v1/archives?trash=true").json();
    assert_eq!(trash[0]["id"], json!(beach));
}

#[test]
fn uploads_start_when_chosen_keep_folder_paths_and_warn_before_leaving() {
    let server = TestServer::start();
    let admin = server.admin();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("Holiday 2024");
    std::fs::create_dir_all(folder.join("day 1")).unwrap();
    std::fs::write(
        folder.join("day 1").join("beach.jpg"),
        random_bytes(70_000, 1),
    )
    .unwrap();
    std::fs::write(folder.join("notes.txt"), b"sunny").unwrap();
    let browser = Browser::start();
    let site = &server.base;
    log_in(&browser, site, "admin", "admin password");
    browser.goto(&format!("{site}/archives/new"));
    assert!(browser
        .text()
        .contains("Uploads start as soon as you choose"));
    browser.check_page("list-06-upload-page");
    // A folder: no Upload button to press.
    browser.type_into("#folder", folder.to_str().unwrap());
    browser.wait_for("both files done", |b| {
        b.script("return !document.getElementById('upload-done').hidden;") == json!(true)
    });
    assert!(browser.text().contains("Holiday 2024/day 1/beach.jpg"));
    assert!(
        browser.text().contains("68 KiB"),
        "binary units: {}",
        browser.text()
    );
    browser.check_page("list-07-folder-uploaded");
    let list = admin.get("/api/v1/archives").json();
    let mut paths: Vec<(String, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap().to_string(), a["path"].clone()))
        .collect();
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        paths,
        [
            ("beach.jpg".to_string(), json!("Holiday 2024/day 1")),
            ("notes.txt".to_string(), json!("Holiday 2024"))
        ]
    );

    // A big file, slowed down: under way at once, and leaving asks first.
    let big = output_dir("browser").join("list big upload.bin");
    std::fs::write(&big, random_bytes(8 * 1024 * 1024, 2)).unwrap();
    throttle_uploads(&browser, Some(512 * 1024));
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", big.to_str().unwrap());
    browser.wait_for("the upload under way", |b| {
        b.find_all("li.upload-item[data-percent]") == 1
    });
    let warned = browser.script(
        "const e = new Event('beforeunload', {cancelable: true});\
         window.dispatchEvent(e); return e.defaultPrevented;",
    );
    assert_eq!(warned, json!(true), "no warning before leaving mid-upload");
    throttle_uploads(&browser, None);
    std::fs::remove_file(&big).unwrap();
}

#[test]
fn the_small_frictions_are_gone_in_a_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let resp = admin.post_json(
        "/api/v1/users",
        &json!({"username": "kim", "password": "member password", "role": "member"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let kim_id = resp.json()["id"].as_str().unwrap().to_string();
    let mut kim = server.client();
    assert_eq!(kim.login("kim", "member password").status, 200);
    let id = upload_at(&kim, "garden", None, 100);
    let browser = Browser::start();
    let site = &server.base;
    log_in(&browser, site, "kim", "member password");

    // An empty rename: said on the rename form, the typed text kept.
    browser.goto(&format!("{site}/archives/{id}"));
    browser.script("document.querySelector('#rename input[name=name]').value = '   ';");
    browser.click("#rename button[type=submit]");
    browser.wait_for("the sentence on the form", |b| {
        b.find_all("#rename-error") == 1
    });
    let text = browser.text();
    assert!(text.contains("The name may not be empty."), "{text}");
    assert!(!text.contains("Something went wrong"), "{text}");
    browser.check_page("list-08-empty-rename");

    // The session ends (an admin sets a new password): the next page goes
    // to the login with a word, and back after it.
    let resp = admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{kim_id}"),
        &json!({"password": "a new member password"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    browser.goto(&format!("{site}/archives/{id}?after=0"));
    browser.wait_for("the login page", |b| b.path() == "/login");
    let search = browser.script("return location.search;");
    assert_eq!(
        search,
        json!(format!("?next=%2Farchives%2F{id}%3Fafter%3D0&ended=1"))
    );
    assert!(browser
        .text()
        .contains("Your session ended; sign in again."));
    browser.check_page("list-09-session-ended");
    browser.type_into("input[name=username]", "kim");
    browser.type_into("input[name=password]", "a new member password");
    browser.click("button[type=submit]");
    browser.wait_for("back on the archive", |b| {
        b.path() == format!("/archives/{id}")
    });
    assert_eq!(browser.script("return location.search;"), json!("?after=0"));

    // Never to another site.
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
    ] {
        browser.call("DELETE", "/cookie", None);
        browser.goto(&format!("{site}/login?next={}", encode(next)));
        browser.type_into("input[name=username]", "kim");
        browser.type_into("input[name=password]", "a new member password");
        browser.click("button[type=submit]");
        browser.wait_for("the home page", |b| b.path() == "/");
        let origin = browser.script("return location.origin;");
        assert_eq!(origin, json!(site), "next={next}");
    }

    // Times are local and say so: the upload window is typed in the box's
    // zone, named, and a browser in another zone is told its own time.
    admin.put_settings(|settings| {
        settings["upload_window"] = json!({"start": "01:00", "end": "06:00"});
    });
    browser.call(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Emulation.setTimezoneOverride",
                    "params": {"timezoneId": "Pacific/Honolulu"}})),
    );
    log_in(&browser, site, "admin", "admin password");
    browser.goto(&format!("{site}/admin/settings"));
    let text = browser.text();
    assert!(text.contains("in this box's time zone ("), "{text}");
    assert_eq!(browser.find_all("#box-clock"), 1);
    // The box runs on UTC here (no TZ); Honolulu is UTC-10 all year.
    if text.contains("time zone (UTC)") {
        browser.wait_for("the window in the browser's time", |b| {
            let own = b.script("return document.getElementById('window-your-time').textContent;");
            let own = own.as_str().unwrap_or_default().to_string();
            own.contains("your time") && (own.contains("15:00") || own.contains("3:00"))
        });
    }
    browser.check_page("list-10-settings-zone");
    browser.goto(&format!("{site}/admin"));
    assert!(browser.text().contains("Every (at least 5 minutes)"));
    assert_eq!(
        browser.find_all("#new-deployment select[name=interval_unit]"),
        1
    );
}

#[test]
fn remote_and_https_pages_say_what_is_true_in_a_browser() {
    let s3 = S3TestServer::start();
    let server = TestServer::start_without_https();
    drop(server.admin());
    let browser = Browser::start();
    let site = &server.base;
    log_in(&browser, site, "admin", "admin password");

    // No HTTPS listener: no fingerprint, and HTTPS only cannot be turned on.
    browser.goto(&format!("{site}/admin/tls"));
    assert_eq!(browser.find_all("#fingerprint"), 0);
    assert!(browser.text().contains("HTTPS is off"));
    assert_eq!(browser.find_all("#https-toggle"), 0);
    browser.check_page("list-11-https-off");
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["require_https"] = json!(true);
    let resp = admin.send_json("PUT", "/api/v1/admin/settings", &settings);
    assert_eq!(resp.status, 400);
    assert!(
        resp.message().contains("no HTTPS listener"),
        "{}",
        resp.message()
    );

    // A save that fails keeps the typed secret (in memory, never shown).
    let good = s3_json(&s3.endpoint, "kept", SECRET_KEY);
    browser.goto(&format!("{site}/admin/remote"));
    browser.click("input[name=kind][value=s3]");
    for (field, value) in [
        ("endpoint", "http://127.0.0.1:9"),
        ("region", good["region"].as_str().unwrap()),
        ("bucket", good["bucket"].as_str().unwrap()),
        ("prefix", "kept"),
        ("access_key_id", good["access_key_id"].as_str().unwrap()),
        ("secret_access_key", SECRET_KEY),
    ] {
        browser.script(&format!(
            "document.querySelector('input[name={field}]').value = {};",
            json!(value)
        ));
    }
    browser.click("input[name=path_style]");
    browser.click("button[value=test]");
    browser.wait_for("the test's answer", |b| {
        b.text().contains("The test failed")
    });
    let text = browser.text();
    assert!(text.contains("Nothing was saved."), "{text}");
    assert!(!text.contains("will try again"), "{text}");
    assert!(!browser
        .script("return document.documentElement.outerHTML;")
        .as_str()
        .unwrap()
        .contains(SECRET_KEY));
    assert!(browser
        .text()
        .contains("the one you typed is kept for 15 minutes"));
    // A save refused (no region): the typed secret is still kept.
    browser.script("document.querySelector('input[name=region]').value = '';");
    browser.click("button[value=save]");
    browser.wait_for("the save refused", |b| b.text().contains("no region"));
    assert!(browser.text().contains("Nothing was saved."));
    assert!(browser
        .text()
        .contains("the one you typed is kept for 15 minutes"));
    browser.check_page("list-12-secret-kept");
    // Fixed, the secret left empty: the kept one is used (the S3 server
    // checks every signature, so a backup proves it).
    browser.script(&format!(
        "document.querySelector('input[name=endpoint]').value = {};\
         document.querySelector('input[name=region]').value = {};",
        json!(s3.endpoint),
        good["region"]
    ));
    if browser.find_all("input[name=confirm_move]") == 1 {
        browser.click("input[name=confirm_move]");
    }
    browser.click("button[value=save]");
    browser.wait_for("saved", |b| b.text().contains("Saved."));
    let remote = admin.get("/api/v1/admin/remote").json();
    assert_eq!(remote["kind"], json!("s3"));
    assert_eq!(remote["endpoint"], json!(s3.endpoint));
    let id = upload_at(&admin, "signed with the kept secret", None, 2000);
    wait_state(&admin, &id, "backed_up");
}
