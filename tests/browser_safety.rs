//! Issue 28 items 1-5 in a real browser (headless Chromium, as
//! `browser.rs`): setup cannot be left before the recovery passphrase is
//! confirmed, and admin pages remind until it is; an invitation made on
//! the users page makes an account; the dashboard answers "are we safe?"
//! first (amber while the storage is on this box, red with a link and
//! what to do for a damaged archive); bars are green only off-site; "Free
//! local space" asks first. Every page at 390 and 1280 px, axe-clean, no
//! sideways scroll, screenshots `safety-*.png` in `tests/output/browser/`.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::remote_engine::wait_state;
use crate::support::{files_under, wait_until, TestServer};

const LIMIT: Duration = Duration::from_secs(120);

fn log_in(browser: &Browser, site: &str, username: &str, password: &str) {
    browser.goto(&format!("{site}/login"));
    browser.type_into("input[name=username]", username);
    browser.type_into("input[name=password]", password);
    browser.click("button[type=submit]");
    browser.wait_for("signed in", |b| b.path() != "/login");
}

#[test]
fn setup_waits_for_the_passphrase_and_an_invitation_makes_an_account() {
    let server = TestServer::start();
    let browser = Browser::start();
    let site = &server.base;
    browser.goto(&format!("{site}/setup"));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("form button[type=submit]");
    browser.wait_for("the passphrase", |b| {
        b.text().contains("Your recovery passphrase")
    });
    let passphrase = browser
        .script("return document.getElementById('recovery-passphrase').textContent.trim();")
        .as_str()
        .unwrap()
        .to_string();

    // Leaving by the logo does not leave setup: the confirmation waits.
    browser.click("a.brand");
    browser.wait_for("the confirmation page", |b| b.path() == "/setup/passphrase");
    browser.check_page("safety-01-confirm-passphrase");
    // Every admin page reminds, with a link to confirm.
    browser.goto(&format!("{site}/admin/users"));
    browser.find("#passphrase-reminder a[href='/setup/passphrase']");
    browser.check_page("safety-02-reminder");
    browser.click("#passphrase-reminder a");
    browser.wait_for("the confirmation page", |b| b.path() == "/setup/passphrase");
    browser.type_into("input[name=passphrase]", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX");
    browser.click("form[action='/setup/passphrase'] button[type=submit]");
    browser.wait_for("the refusal", |b| {
        b.text().contains("That is not the recovery passphrase")
    });
    browser.check_page("safety-03-wrong-passphrase");
    browser.type_into("input[name=passphrase]", &passphrase);
    browser.click("form[action='/setup/passphrase'] button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");
    assert!(browser
        .text()
        .contains("the recovery passphrase is confirmed"));
    assert_eq!(browser.find_all("#passphrase-reminder"), 0);

    // An invitation from the users page, copied and opened by the invitee.
    browser.goto(&format!("{site}/admin/users"));
    assert!(browser.text().contains("Registration is closed"));
    browser.check_page("safety-04-users-invitations");
    browser.click("form[action='/admin/invitations'] button[type=submit]");
    browser.wait_for("the link", |b| b.text().contains("Invitation made"));
    browser.check_page("safety-05-invitation-made");
    let link = browser
        .script("return document.getElementById('invitation-link').value;")
        .as_str()
        .unwrap()
        .to_string();
    browser.click("button.link");
    browser.wait_for("logged out", |b| b.path() == "/login");
    browser.goto(&link);
    browser.check_page("safety-06-invite-signup");
    browser.type_into("input[name=username]", "grandma");
    browser.type_into("input[name=password]", "grandma password");
    browser.click("form button[type=submit]");
    browser.wait_for("grandma's home page", |b| {
        b.path() == "/" && b.text().contains("grandma")
    });
    // The link worked once.
    browser.goto(&link);
    assert!(browser.text().contains("cannot be used"));
}

#[test]
fn the_dashboard_answers_are_we_safe_first() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let kept = bob.upload_ok("Holiday photos", &[7u8; 300_000])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let broken = bob.upload_ok("Old letters", &[3u8; 200_000])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&bob, &kept, "backed_up");
    wait_state(&bob, &broken, "backed_up");
    let browser = Browser::start();
    let site = &server.base;

    // On the default folder remote: amber, "only on this box", bars amber.
    log_in(&browser, site, "admin", "admin password");
    browser.goto(&format!("{site}/admin"));
    assert!(browser
        .text()
        .contains("Not safe yet: 2 archives are only on this box."));
    assert_eq!(browser.find_all("#verdict.verdict-warning"), 1);
    assert!(browser.text().contains("New accounts"));
    browser.check_page("safety-07-dashboard-on-box");

    // Damage: the local copy freed, the stored copy spoiled, a verification.
    let resp = bob.post_json(&format!("/api/v1/archives/{broken}/uncache"), &json!({}));
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&bob, &broken, "uncached");
    for part in files_under(&server.data_dir().join("remote/parts")) {
        let mut bytes = std::fs::read(&part).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&part, bytes).unwrap();
    }
    let verified = admin.post_json(
        &format!("/api/v1/admin/archives/{broken}/verify"),
        &json!({}),
    );
    assert_eq!(verified.status, 200, "{}", verified.text());
    wait_state(&bob, &broken, "damaged");

    // Red, with the problem as a link naming the archive and its owner.
    browser.goto(&format!("{site}/admin"));
    assert!(browser.text().contains("Needs you"));
    assert_eq!(browser.find_all("#verdict.verdict-failed"), 1);
    let problems = browser.script("return document.getElementById('problems').textContent;");
    let problems = problems.as_str().unwrap();
    assert!(
        problems.contains("Old letters") && problems.contains("bob"),
        "{problems}"
    );
    assert!(problems.contains("Upload the file again"), "{problems}");
    browser.check_page("safety-08-dashboard-problem");
    browser.click(&format!("#problems a[href='/admin/archives/{broken}']"));
    browser.wait_for("the admin's archive page", |b| {
        b.path() == format!("/admin/archives/{broken}")
    });
    assert!(browser.text().contains("Owner: bob"));
    assert_eq!(
        browser.find_all("a[href$='/content']"),
        0,
        "no download for the admin"
    );
    browser.check_page("safety-09-admin-archive");
    browser.goto(&format!("{site}/admin/archives?state=problem"));
    assert!(browser.text().contains("Old letters"));
    assert!(!browser.text().contains("Holiday photos"));
    browser.check_page("safety-10-admin-archives-problems");

    // The owner sees red with what to do; a stored copy on this box is amber, never green.
    log_in(&browser, site, "bob", "member password");
    browser.goto(&format!("{site}/archives/{broken}"));
    assert_eq!(browser.find_all(".summary .progress.bar-damaged"), 1);
    assert!(browser
        .text()
        .contains("Damaged. The copy in storage is damaged"));
    browser.check_page("safety-11-detail-damaged");
    browser.goto(&format!("{site}/archives/{kept}"));
    assert_eq!(browser.find_all(".summary .progress.bar-on-box"), 1);
    assert_eq!(browser.find_all(".bar-off-site"), 0);
    // "Free local space" asks first, saying it is the only copy here.
    let question = browser.attribute("form[data-action=uncache]", "data-confirm");
    assert!(question.contains("the only one here"), "{question}");
    browser.click("form[data-action=uncache] button");
    assert!(browser.accept_dialog(), "a question was asked");
    wait_until(LIMIT, || {
        bob.get(&format!("/api/v1/archives/{kept}")).json()["state"] == "uncached"
    });
    browser.goto(&format!("{site}/"));
    assert_eq!(
        browser.find_all(".bar-off-site"),
        0,
        "nothing green on this box"
    );
    browser.check_page("safety-12-home-on-box");
}
