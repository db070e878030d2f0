//! The trash in a real browser (headless Chromium, as `browser.rs`): delete
//! from the detail page (asked first), the Trash page from the navigation,
//! restore, then delete for good (asked first). Every page at 390 and 1280
//! px, axe-clean, no sideways scroll, screenshots `trash-*.png` in
//! `tests/output/browser/`.

use std::time::Duration;

use crate::browser::Browser;
use crate::support::{wait_until, TestServer};

#[test]
fn delete_to_the_trash_restore_and_delete_for_good_in_a_real_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let id = admin.upload_ok("Wedding video", &[9u8; 5000])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = Browser::start();
    let site = &server.base;
    browser.goto(&format!("{site}/login"));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");

    // Delete asks first, and says the trash keeps it.
    browser.goto(&format!("{site}/archives/{id}"));
    browser.click("a[data-action=delete]");
    browser.wait_for("the question", |b| b.text().contains("to the trash?"));
    assert!(browser.text().contains("30 days"));
    browser.check_page("trash-01-confirm-move");
    browser.click("form[action$='/delete'] button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");
    assert!(browser.text().contains("Moved to the trash"));
    assert!(!browser.text().contains("Wedding video"));
    browser.check_page("trash-02-home-after-delete");

    // The Trash page, from the navigation.
    browser.click("nav a[href='/trash']");
    browser.wait_for("the trash", |b| b.path() == "/trash");
    assert!(browser.text().contains("Wedding video"));
    browser.check_page("trash-03-trash");
    browser.click(&format!(
        "tr[data-archive-id='{id}'] form button[type=submit]"
    ));
    browser.wait_for("the restored archive", |b| {
        b.path() == format!("/archives/{id}")
    });
    assert!(browser.text().contains("Restored from the trash"));
    browser.check_page("trash-04-restored");
    let state = admin.get(&format!("/api/v1/archives/{id}")).json()["state"].clone();
    assert!(
        state == "local" || state == "uploading" || state == "backed_up",
        "{state}"
    );

    // Back to the trash, then for good: asked first.
    let resp = admin.delete(&format!("/api/v1/archives/{id}"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    browser.goto(&format!("{site}/archives/{id}"));
    assert!(browser.text().contains("This archive is in the trash"));
    browser.check_page("trash-05-detail-in-trash");
    browser.goto(&format!("{site}/trash"));
    browser.click(&format!("tr[data-archive-id='{id}'] a.danger"));
    browser.wait_for("the last question", |b| b.text().contains("for good?"));
    assert!(browser.text().contains("cannot be undone"));
    browser.check_page("trash-06-confirm-for-good");
    browser.click("form[action$='/delete'] button[type=submit]");
    browser.wait_for("the trash again", |b| b.path() == "/trash");
    wait_until(Duration::from_secs(60), || {
        admin.get(&format!("/api/v1/archives/{id}")).status == 404
    });
    browser.goto(&format!("{site}/trash"));
    assert!(browser.text().contains("The trash is empty."));
    browser.check_page("trash-07-empty");
}
