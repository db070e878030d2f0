//! The real-browser test: Debian's headless Chromium driven over WebDriver
//! (chromedriver) through the family and admin journeys. Every page is
//! checked at 390x844 (a phone) and 1280x900 (a desk): a screenshot of each
//! under `tests/output/browser/`, no horizontal page scroll, and axe-core
//! (vendored as a test fixture, injected here, never served by the app)
//! finding no serious or critical accessibility violations.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::s3_server::S3TestServer;
use crate::support::{
    closed_upload_window, output_dir, random_bytes, sha256_hex, wait_until, Client, TestServer,
};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The two screen sizes every page is checked at: a phone and a desk.
const SIZES: [(u32, u32); 2] = [(390, 844), (1280, 900)];

/// axe-core from npm (MPL-2.0, see tests/fixtures/axe-core/).
const AXE: &str = include_str!("fixtures/axe-core/axe.min.js");

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        Browser::start_with(&[])
    }

    /// Like [`Browser::start`], with more Chromium arguments.
    pub fn start_with(extra_args: &[String]) -> Browser {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("chromedriver is missing: install Debian's chromium and chromium-driver (README, `.ci/run`)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        wait_until(Duration::from_secs(30), || {
            ureq::get(&format!("{base}/status"))
                .call()
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        });
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra_args.iter().cloned());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        browser
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|err| panic!("WebDriver {method} {path}: {err}"))
    }

    /// A WebDriver command whose refusal (say, no alert to accept) is an
    /// answer, not a failure.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(err) => return Err(err.to_string()),
        };
        let value: Value = serde_json::from_str(&response.into_string().expect("WebDriver answer"))
            .expect("WebDriver JSON");
        if let Some(error) = value["value"]["error"].as_str() {
            return Err(format!("{error}: {}", value["value"]["message"]));
        }
        Ok(value["value"].clone())
    }

    /// Accepts the open `confirm`/`beforeunload` dialog, if there is one.
    pub fn accept_dialog(&self) -> bool {
        self.try_call("POST", "/alert/accept", Some(json!({})))
            .is_ok()
    }

    /// The value of `document.querySelector(css).getAttribute(name)`, or
    /// `""`.
    pub fn attribute(&self, css: &str, name: &str) -> String {
        self.script(&format!(
            "const e = document.querySelector({}); return e ? (e.getAttribute({}) || '') : '';",
            serde_json::to_string(css).unwrap(),
            serde_json::to_string(name).unwrap()
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    pub fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    /// How many elements match `css`.
    pub fn find_all(&self, css: &str) -> usize {
        self.script(&format!(
            "return document.querySelectorAll({}).length;",
            serde_json::to_string(css).unwrap()
        ))
        .as_u64()
        .unwrap_or(0) as usize
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn script(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": source, "args": []})),
        )
    }

    pub fn script_async(&self, source: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": source, "args": []})),
        )
    }

    pub fn text(&self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn path(&self) -> String {
        self.script("return location.pathname;")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn wait_for(&self, what: &str, mut check: impl FnMut(&Browser) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !check(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "browser: {what} did not happen; page says: {}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Emulates a screen `width` x `height` CSS pixels (Chrome DevTools
    /// protocol through chromedriver), so the phone size is exact.
    pub fn set_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}}),
            ),
        );
        self.wait_for("the new screen size", |b| {
            b.script("return window.innerWidth;") == json!(width)
        });
    }

    /// Checks the page at both sizes and saves `{name}-390.png` and
    /// `{name}-1280.png`: no horizontal scroll of the page, and no serious
    /// or critical axe-core violation. Ends at the phone size.
    pub fn check_page(&self, name: &str) {
        for (width, height) in SIZES.iter().rev() {
            self.set_size(*width, *height);
            let widths =
                self.script("return [document.documentElement.scrollWidth, window.innerWidth];");
            assert!(
                widths[0].as_u64() <= widths[1].as_u64(),
                "{name} at {width} px scrolls sideways: [scrollWidth, innerWidth] = {widths}"
            );
            let violations = self.axe_violations();
            assert!(
                violations.is_empty(),
                "{name} at {width} px: axe-core finds {violations:#?}"
            );
            self.screenshot(&format!("{name}-{width}"));
        }
    }

    /// Serious and critical axe-core violations on the current page, as
    /// "rule: impact: first elements" lines.
    pub fn axe_violations(&self) -> Vec<String> {
        if self.script("return typeof window.axe;") != json!("object") {
            self.script(&format!("{AXE}\nreturn 1;"));
        }
        let found = self.script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => v.id + ': ' + v.impact + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))\
             .catch(e => done(['axe failed: ' + e]));",
        );
        found
            .as_array()
            .expect("axe answer")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(output_dir("browser").join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn first_use_upload_and_download_in_a_real_browser() {
    let server = TestServer::start();
    let browser = Browser::start();
    let site = &server.base;

    first_use_setup_and_recovery_passphrase(&browser, site);
    first_use_register_a_member(&browser, site);
    let (archives, data, file) = first_use_upload_three_files(&server, &browser, site);
    first_use_home_says_on_this_box_only(&browser, site);
    first_use_detail_download_and_rename(&browser, site, &archives, &data, &file);
    first_use_s3_remote_makes_it_off_site(&server, &browser, site);
}

/// First run: setup, the recovery passphrase shown and typed back.
fn first_use_setup_and_recovery_passphrase(browser: &Browser, site: &str) {
    // First run: every page leads to setup.
    browser.goto(&format!("{site}/"));
    browser.wait_for("the setup page", |b| b.path() == "/setup");
    assert!(browser.text().contains("There is no default password"));
    browser.check_page("01-setup");
    // A chosen passphrase is typed twice; two different ones are refused.
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.type_into("input[name=recovery_passphrase]", "correct horse battery");
    browser.type_into(
        "input[name=recovery_passphrase_again]",
        "correct horse batery",
    );
    browser.click("button[type=submit]");
    browser.wait_for("the refusal", |b| {
        b.text().contains("The two recovery passphrases differ")
    });
    browser.check_page("01-setup-passphrases-differ");
    // Left empty, one is generated.
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    browser.wait_for("the recovery passphrase", |b| {
        b.text().contains("Your recovery passphrase")
    });
    for action in [
        "#copy-passphrase",
        "#download-passphrase",
        "#print-passphrase",
    ] {
        browser.find(action);
    }
    browser.check_page("02-recovery-passphrase");
    let passphrase = browser
        .script("return document.getElementById('recovery-passphrase').textContent.trim();")
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(passphrase.len(), 29, "{passphrase}");
    browser.click("#copy-passphrase");
    browser.wait_for("the copy message", |b| b.text().contains("Cop"));
    // It must be typed back: a wrong ending keeps the page.
    browser.type_into("#passphrase-check", "AAAA-AAAA");
    browser.click("#passphrase-continue");
    browser.wait_for("the mismatch", |b| {
        b.script("return !document.getElementById('passphrase-mismatch').hidden;") == json!(true)
    });
    assert!(browser.text().contains("Your recovery passphrase"));
    browser.check_page("02-recovery-passphrase-mismatch");
    browser.script("document.getElementById('passphrase-check').value = '';");
    browser.type_into("#passphrase-check", &passphrase[20..].to_lowercase());
    browser.click("#passphrase-continue");
    browser.wait_for("the home page", |b| {
        b.path() == "/" && b.text().contains("Your archives")
    });
    assert!(browser
        .text()
        .contains("Thank you: the recovery passphrase is confirmed."));
    // The default remote is a folder on the same disk: said plainly.
    assert!(browser.text().contains("Your files are on this box only"));
    browser.find("#remote-banner a[href='/admin/remote']");
    browser.check_page("02-admin-home");
    // The account page and the dashboard say the passphrase was typed back.
    for path in ["/account", "/admin"] {
        browser.goto(&format!("{site}{path}"));
        let status =
            browser.script("return document.getElementById('passphrase-status').textContent;");
        assert_eq!(
            status,
            json!("Recovery passphrase: confirmed, its end was typed back at setup."),
            "{path}"
        );
    }
    browser.goto(&format!("{site}/"));
}

/// Log out, register a second user (bob).
fn first_use_register_a_member(browser: &Browser, site: &str) {
    // Log out, register a second user.
    browser.click("button.link");
    browser.wait_for("the login page", |b| b.path() == "/login");
    assert!(browser
        .text()
        .contains("Forgot your password? Ask your admin"));
    browser.check_page("03-login");
    browser.goto(&format!("{site}/register"));
    browser.type_into("input[name=username]", "bob");
    browser.type_into("input[name=password]", "member password");
    browser.check_page("03-register");
    browser.click("button[type=submit]");
    browser.wait_for("bob's home page", |b| {
        b.path() == "/" && b.text().contains("bob")
    });
    browser.check_page("03-member-home-empty");
}

/// Uploads through the page; returns bob's archives, the kept file's bytes and its path.
fn first_use_upload_three_files(
    server: &TestServer,
    browser: &Browser,
    site: &str,
) -> (Value, Vec<u8>, std::path::PathBuf) {
    // Upload through the page (tus-js-client): three files picked at once,
    // the big one cancelled midway; an empty one refused with a sentence.
    let data = random_bytes(40 * 1024 * 1024 + 7, 9);
    let second = random_bytes(3 * 1024 * 1024 + 1, 10);
    let big = random_bytes(100 * 1024 * 1024, 11);
    let dir = output_dir("browser");
    let file = dir.join("family \"photos\" <2024>.bin");
    let second_file = dir.join("letters.bin");
    let big_file = dir.join("too big to wait for.bin");
    let empty_file = dir.join("empty.txt");
    std::fs::write(&file, &data).unwrap();
    std::fs::write(&second_file, &second).unwrap();
    std::fs::write(&big_file, &big).unwrap();
    std::fs::write(&empty_file, b"").unwrap();
    browser.goto(&format!("{site}/archives/new"));
    browser.check_page("04-new-archive");
    browser.type_into("#file", empty_file.to_str().unwrap());
    browser.wait_for("the empty file refused", |b| {
        b.text().contains("“empty.txt” is empty (0 bytes)")
    });
    let picked = [&file, &second_file, &big_file].map(|p| p.to_str().unwrap().to_string());
    browser.type_into("#file", &picked.join("\n"));
    browser.wait_for("three files in the queue", |b| {
        b.find_all("li.upload-item") == 3
    });
    // Uploads start when chosen; a name typed in the queue is given to the
    // archive when it has arrived (or at once, if it already has).
    browser.script(
        "const input = document.querySelector('li.upload-item input');\
         input.value = 'Photos <2024> & more 📷';\
         input.dispatchEvent(new Event('change'));",
    );
    browser.check_page("04-upload-queue");
    let big_row = "li.upload-item[data-file='too big to wait for.bin']";
    browser.wait_for("the big file under way", |b| {
        b.script(&format!(
            "return Number(document.querySelector(\"{big_row}\").dataset.percent || 0);"
        ))
        .as_u64()
        .is_some_and(|p| p > 0)
    });
    let at_cancel = browser.script(&format!(
        "return Number(document.querySelector(\"{big_row}\").dataset.percent);"
    ));
    assert!(
        at_cancel.as_u64() < Some(100),
        "cancelled midway: {at_cancel}"
    );
    browser.click(&format!("{big_row} button.cancel"));
    browser.wait_for("the other two done", |b| {
        b.script("return !document.getElementById('upload-done').hidden;") == json!(true)
    });
    let text = browser.text();
    assert!(text.contains("Cancelled: nothing was kept."), "{text}");
    assert!(text.contains("2 of 2 files done · 100%"), "{text}");
    browser.check_page("04-upload-done");
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "member password").status, 200);
    let sorted_names = |archives: &Value| {
        let mut names: Vec<String> = archives
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    // The rename goes out as soon as the file has arrived.
    wait_until(Duration::from_secs(30), || {
        sorted_names(&bob.get("/api/v1/archives").json())
            == ["Photos <2024> & more 📷", "letters.bin"]
    });
    let archives = bob.get("/api/v1/archives").json();
    for path in [&second_file, &big_file, &empty_file] {
        std::fs::remove_file(path).unwrap();
    }
    (archives, data, file)
}

/// The home page: stored on this box only, never "backed up".
fn first_use_home_says_on_this_box_only(browser: &Browser, site: &str) {
    // The archive is on the home page: stored, but on this box only (amber),
    // never "backed up" while the remote is the appliance's own disk.
    browser.goto(&format!("{site}/"));
    browser.wait_for("the archive stored on this box", |b| {
        b.goto(&format!("{site}/"));
        b.script(
            "return Array.from(document.querySelectorAll('table.archives .state')).map(e => e.textContent);",
        ) == json!(["on this box only", "on this box only"])
    });
    assert!(browser.text().contains("Photos <2024> & more 📷"));
    let body = browser.text().to_lowercase();
    for word in ["backed up", "safe", "in the cloud", "off-site only"] {
        assert!(!body.contains(word), "the home page says {word:?}: {body}");
    }
    browser.check_page("05-home-with-archive");
}

/// The detail page, a bit-exact download, a rename.
fn first_use_detail_download_and_rename(
    browser: &Browser,
    site: &str,
    archives: &Value,
    data: &[u8],
    file: &std::path::Path,
) {
    // The detail page: family words first, hashes behind "Technical details".
    let photos = archives
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Photos <2024> & more 📷")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.goto(&format!("{site}/archives/{photos}"));
    browser.wait_for("the detail page", |b| {
        b.path().starts_with("/archives/") && b.text().contains("Technical details")
    });
    assert!(!browser.text().contains(&sha256_hex(data)));
    assert!(browser.text().contains("Not off-site"));
    browser.check_page("06-detail");
    browser.script("document.getElementById('technical').open = true;");
    assert!(browser.text().contains(&sha256_hex(data)));
    assert!(browser.text().contains("family \"photos\" <2024>.bin"));
    browser.check_page("06-detail-technical");
    let digest = browser.script_async(
        "const done = arguments[arguments.length - 1];\
         const link = document.querySelector('a[download]');\
         fetch(link.href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))\
           .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))\
           .catch(e => done('error: ' + e));",
    );
    assert_eq!(
        digest.as_str(),
        Some(sha256_hex(data).as_str()),
        "the download is bit-exact"
    );
    std::fs::remove_file(file).unwrap();

    // Rename answers with a message.
    browser.script("document.querySelector('input[name=name]').value = '';");
    browser.type_into("input[name=name]", "Holiday photos");
    browser.click("form[action$='/rename'] button");
    browser.wait_for("the rename message", |b| b.text().contains("Renamed."));
}

/// With an S3 remote set, the archive is off-site and the warning gone.
fn first_use_s3_remote_makes_it_off_site(server: &TestServer, browser: &Browser, site: &str) {
    // Once an S3 remote is set (and the backups have moved there), the
    // archive is off-site, and the same-disk warning is gone.
    let s3 = S3TestServer::start();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/remote",
        &crate::remote_engine::s3_json(
            &s3.endpoint,
            "browser",
            crate::support::s3_server::SECRET_KEY,
        ),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let detail = browser.path();
    browser.wait_for("the archive off-site", |b| {
        b.goto(&format!("{site}{detail}"));
        b.find_all("#move-banner") == 0
            && b.script("return document.getElementById('state').textContent;") == json!("off-site")
    });
    assert!(browser.text().contains("100% off-site."));
    assert!(!browser.text().contains("on this box only"));
    browser.check_page("07-detail-off-site");
    browser.goto(&format!("{site}/"));
    assert_eq!(browser.find_all("#remote-banner"), 0);
    browser.check_page("07-home-off-site");
}

/// Signs `username` in through the login page.
pub(crate) fn log_in(browser: &Browser, site: &str, username: &str, password: &str) {
    browser.goto(&format!("{site}/login"));
    browser.type_into("input[name=username]", username);
    browser.type_into("input[name=password]", password);
    browser.click("button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");
}

/// Limits the page's uploads to `bytes_per_sec` (Chrome's network
/// emulation); `None` lifts the limit.
pub(crate) fn throttle_uploads(browser: &Browser, bytes_per_sec: Option<u64>) {
    browser.call(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Network.enable", "params": {}})),
    );
    let upload = bytes_per_sec.map_or(-1.0, |b| b as f64);
    browser.call(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Network.emulateNetworkConditions", "params": {
            "offline": false, "latency": 0, "downloadThroughput": -1.0, "uploadThroughput": upload}})),
    );
}

/// A number attribute of the first element matching `css`, or 0.
fn number_attribute(browser: &Browser, css: &str, name: &str) -> u64 {
    browser.attribute(css, name).parse().unwrap_or(0)
}

/// The queue row of the file the resume test uploads.
const GARDEN_ROW: &str = "li.upload-item[data-file='garden video.bin']";

/// An unfinished upload listed on the home page.
const UNFINISHED: &str = "#uploads-in-progress li[data-upload-id]";

/// An upload cut by leaving the page is listed on the home page (name,
/// percent, how to continue) and continues from where it stopped when the
/// same file is chosen again; the archive is byte-exact. The same file
/// uploaded once more is flagged as the same content, in the queue and on
/// the home page. An unfinished upload can be discarded (asked first).
#[test]
fn a_reload_mid_upload_resumes_and_a_duplicate_is_flagged_in_a_real_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let site = &server.base;
    let browser = Browser::start();
    log_in(&browser, site, "admin", "admin password");
    let data = random_bytes(24 * 1024 * 1024 + 3, 31);
    let file = output_dir("browser").join("garden video.bin");
    std::fs::write(&file, &data).unwrap();

    resume_leave_mid_upload(&browser, site, &file);
    let home_percent = resume_home_lists_unfinished(&browser, site);
    let first_id = resume_continues_from_offset(&browser, &admin, site, &file, &data, home_percent);
    resume_duplicate_flagged(&browser, site, &file, &first_id);
    resume_discard_unfinished_from_home(&browser, &admin, site);
}

/// Starts the upload, throttled, and leaves the page once a fifth is sent.
fn resume_leave_mid_upload(browser: &Browser, site: &str, file: &std::path::Path) {
    // About 6 s at 4 MiB/s: leave the page once a fifth is sent.
    throttle_uploads(browser, Some(4 * 1024 * 1024));
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", file.to_str().unwrap());
    browser.wait_for("a fifth sent", |b| {
        number_attribute(b, GARDEN_ROW, "data-percent") >= 20
    });
    let _ = browser.try_call(
        "POST",
        "/execute/sync",
        Some(json!({"script": "location.href = '/'; return 1;", "args": []})),
    );
    let on_home = |b: &Browser| {
        b.accept_dialog();
        b.try_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return location.pathname;", "args": []})),
        )
        .is_ok_and(|path| path == json!("/"))
    };
    browser.wait_for("the home page after leaving mid-upload", on_home);
    throttle_uploads(browser, None);
}

/// The home page lists the unfinished upload; returns its percent.
fn resume_home_lists_unfinished(browser: &Browser, site: &str) -> u64 {
    // The home page lists it: name, percent, how to continue.
    browser.wait_for("the unfinished upload on the home page", |b| {
        b.goto(&format!("{site}/"));
        number_attribute(b, UNFINISHED, "data-percent") > 0
    });
    let home_percent = number_attribute(browser, UNFINISHED, "data-percent");
    assert!(home_percent < 100, "{home_percent}%");
    let text = browser.text();
    assert!(text.contains("Unfinished uploads"), "{text}");
    assert!(text.contains("garden video.bin"), "{text}");
    assert!(text.contains("choose the same file again"), "{text}");
    browser.check_page("resume-01-home-unfinished");
    home_percent
}

/// Chosen again, the upload continues from its offset; returns the archive id.
fn resume_continues_from_offset(
    browser: &Browser,
    admin: &Client,
    site: &str,
    file: &std::path::Path,
    data: &[u8],
    home_percent: u64,
) -> String {
    // Chosen again: it continues from its offset, not from the start.
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", file.to_str().unwrap());
    browser.wait_for("the upload resumed", |b| {
        !b.attribute(GARDEN_ROW, "data-resumed-from").is_empty()
    });
    let resumed_from = number_attribute(browser, GARDEN_ROW, "data-resumed-from");
    eprintln!(
        "left at {home_percent}% on the home page; resumed from byte {resumed_from} of {}",
        data.len()
    );
    assert!(
        resumed_from >= data.len() as u64 * home_percent / 100
            && resumed_from > 0
            && resumed_from < data.len() as u64,
        "resumed from {resumed_from}, the home page said {home_percent}%"
    );
    browser.wait_for("the upload done", |b| {
        b.script("return !document.getElementById('upload-done').hidden;") == json!(true)
    });
    assert!(browser.text().contains("Continuing from") || browser.text().contains("Done."));
    let archives = admin.get("/api/v1/archives").json();
    let list = archives.as_array().unwrap();
    assert_eq!(list.len(), 1, "{archives}");
    assert_eq!(list[0]["sha256"], json!(sha256_hex(data)));
    let first_id = list[0]["id"].as_str().unwrap().to_string();
    let content = admin.get(&format!("/api/v1/archives/{first_id}/content"));
    assert_eq!(content.status, 200);
    assert_eq!(sha256_hex(&content.body), sha256_hex(data), "byte-exact");
    browser.goto(&format!("{site}/"));
    assert_eq!(browser.find_all(UNFINISHED), 0, "no unfinished upload left");
    first_id
}

/// The same file again is flagged as a duplicate, in the queue and on the home page.
fn resume_duplicate_flagged(browser: &Browser, site: &str, file: &std::path::Path, first_id: &str) {
    // The same file again: flagged in the queue, then on the home page.
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", file.to_str().unwrap());
    browser.wait_for("the duplicate flagged", |b| {
        b.attribute(GARDEN_ROW, "data-duplicate-of") == first_id
    });
    assert!(browser
        .text()
        .contains("Same content as “garden video.bin”: you may not need both."));
    browser.check_page("resume-02-duplicate-flagged");
    browser.goto(&format!("{site}/"));
    assert_eq!(browser.find_all("table.archives .duplicate"), 2);
    assert!(browser
        .text()
        .contains("Same content as “garden video.bin”."));
    browser.check_page("resume-03-home-duplicates");
    std::fs::remove_file(file).unwrap();
}

/// An unfinished upload started elsewhere is discarded from the home page.
fn resume_discard_unfinished_from_home(browser: &Browser, admin: &Client, site: &str) {
    // An unfinished upload started elsewhere is discarded from the home page.
    let created = admin.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "1000"),
            ("Upload-Metadata", "name bm90IGZpbmlzaGVk"),
        ],
        Some(b""),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    browser.goto(&format!("{site}/"));
    assert!(browser.text().contains("not finished"));
    browser.click("#uploads-in-progress button[type=submit]");
    assert!(browser.accept_dialog(), "it asks first");
    browser.wait_for("the discard message", |b| {
        b.text().contains("The unfinished upload was discarded.")
    });
    assert_eq!(browser.find_all(UNFINISHED), 0);
}

/// The admin pages in a real browser: develop -> test run -> save -> card
/// -> run; create and terminate a deployment; the log page with its live
/// tail; the users page.
#[test]
fn admin_pages_in_a_real_browser() {
    let server = TestServer::start();
    let admin = server.admin();
    let browser = Browser::start();
    let site = &server.base;
    browser.goto(&format!("{site}/login"));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");

    admin_home_asks_before_freeing_space(&browser, &admin, site);
    admin_develop_test_and_save(&browser, &admin, site);
    let script_id = admin_card_runs_the_script(&browser, &admin, site);
    admin_deploy_and_terminate(&browser, &admin, site, &script_id);
    admin_log_page_tails_live(&browser, &admin, site);
    admin_users_and_password_reset(&server, &browser, site);
    admin_settings_save(&browser, &admin, site);
    admin_remote_test_keeps_what_was_typed(&browser, site);
    admin_script_help(&browser, site);
    admin_other_pages(&browser, site);
}

/// The script cards; a script that frees space asks first.
fn admin_home_asks_before_freeing_space(browser: &Browser, admin: &Client, site: &str) {
    // The admin home lists the built-in scripts.
    browser.goto(&format!("{site}/admin"));
    browser.wait_for("the script cards", |b| b.text().contains("storage report"));
    browser.check_page("admin-01-home");
    // A script that frees local space asks before it runs; "Cancel" runs nothing.
    let evict = admin
        .get("/api/v1/admin/scripts")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "evict idle archives")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.click(&format!("button.run-script[data-script-id='{evict}']"));
    let question = browser.call("GET", "/alert/text", None);
    assert!(
        question
            .as_str()
            .unwrap_or_default()
            .contains("free local space"),
        "{question}"
    );
    browser.call("POST", "/alert/dismiss", Some(json!({})));
    assert_eq!(
        browser.script(&format!(
            "return document.querySelector(\".script-card[data-script-id='{evict}'] .run-result\").hidden;"
        )),
        json!(true),
        "nothing ran"
    );
}

/// The develop page: a syntax error, a test run (nothing saved), a save.
fn admin_develop_test_and_save(browser: &Browser, admin: &Client, site: &str) {
    // Develop: a syntax error first, with its line and column.
    browser.goto(&format!("{site}/admin/scripts/new"));
    browser.script("document.getElementById('source').value = 'let x = 1;\\nlet y = ;';");
    browser.click("#test-run");
    browser.wait_for("the syntax error", |b| {
        b.text().contains("line 2, column 9")
    });
    browser.check_page("admin-02-syntax-error");
    browser.script(
        "document.getElementById('source').value = 'print(\"hello <world>\");\\nlog(\"warn\", \"from the browser\");\\n6 * 7';",
    );
    browser.click("#test-run");
    browser.wait_for("the test run", |b| {
        b.text().contains("hello <world>") && b.text().contains("Finished in")
    });
    assert!(browser.text().contains("42"));
    browser.check_page("admin-03-test-run");
    // Nothing is saved by a test run.
    assert_eq!(
        admin
            .get("/api/v1/admin/scripts")
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    browser.type_into("input[name=name]", "answer & <more>");
    browser.type_into("textarea[name=description]", "Says hello and answers.");
    browser.click("#save");
    browser.wait_for("the save", |b| b.text().contains("Saved."));
    browser.wait_for("the new address", |b| {
        b.path().starts_with("/admin/scripts/") && b.path() != "/admin/scripts/new"
    });
    browser.check_page("admin-04-saved");
}

/// The saved script's card runs it; returns its id.
fn admin_card_runs_the_script(browser: &Browser, admin: &Client, site: &str) -> String {
    // The card runs it; the output appears in the card.
    browser.goto(&format!("{site}/admin"));
    browser.wait_for("the new card", |b| b.text().contains("answer & <more>"));
    let scripts = admin.get("/api/v1/admin/scripts").json();
    let script_id = scripts
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "answer & <more>")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.click(&format!("button.run-script[data-script-id='{script_id}']"));
    browser.wait_for("the run output in the card", |b| {
        b.script(&format!(
            "return document.querySelector(\".script-card[data-script-id='{script_id}'] .run-result\").innerText;"
        ))
        .as_str()
        .unwrap_or("")
        .contains("=> 42")
    });
    browser.check_page("admin-05-card-run");
    script_id
}

/// A deployment of the script: listed, runs, terminated.
fn admin_deploy_and_terminate(browser: &Browser, admin: &Client, site: &str, script_id: &str) {
    // Deploy it every 5 minutes (it runs once at once), see the run, terminate it.
    browser.goto(&format!("{site}/admin"));
    browser.script(&format!(
        "document.querySelector('#new-deployment select').value = '{script_id}';\
         document.querySelector('#new-deployment input[name=interval_count]').value = '5';\
         document.querySelector('#new-deployment select[name=interval_unit]').value = '60';"
    ));
    browser.click("#new-deployment button[type=submit]");
    // Listed after the built-in weekly verification, deployed at first start.
    browser.wait_for("the deployment in the list", |b| {
        b.script("return document.querySelectorAll('table.deployments tbody tr').length;")
            == json!(2)
    });
    let ours = |admin: &Client| {
        admin
            .get("/api/v1/admin/deployments")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["script_id"] == json!(script_id))
            .cloned()
    };
    wait_until(Duration::from_secs(30), || {
        ours(admin).is_some_and(|d| d["last_run"]["ok"] == json!(true))
    });
    browser.goto(&format!("{site}/admin"));
    browser.wait_for("the deployment's last run", |b| b.text().contains(" ms"));
    browser.check_page("admin-06-deployment");
    let ours_id = ours(admin).unwrap()["id"].as_str().unwrap().to_string();
    browser.click(&format!("button.terminate[data-deployment-id='{ours_id}']"));
    // It asks first.
    browser.call("POST", "/alert/accept", Some(json!({})));
    browser.wait_for("the deployment gone", |b| {
        b.script("return document.querySelectorAll('table.deployments tbody tr').length;")
            == json!(1)
    });
    assert!(ours(admin).is_none());
    assert_eq!(
        admin
            .get("/api/v1/admin/deployments")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The log page filters and tails new entries live.
fn admin_log_page_tails_live(browser: &Browser, admin: &Client, site: &str) {
    // The log page: filters, and the live tail.
    browser.goto(&format!("{site}/admin/log?level=warn"));
    browser.wait_for("the log page", |b| b.text().contains("from the browser"));
    browser.wait_for("the live stream", |b| {
        b.script("return document.getElementById('live-status').dataset.connected || '';")
            == json!("1")
    });
    let result = admin.post_json(
        "/api/v1/admin/scripts/run",
        &json!({"source": "log(\"error\", \"live & <tailed>\")"}),
    );
    assert_eq!(result.status, 200);
    browser.wait_for("the live entry", |b| b.text().contains("live & <tailed>"));
    let first_row =
        browser.script("return document.querySelector('#log-table tbody tr').innerText;");
    assert!(
        first_row.as_str().unwrap_or("").contains("admin"),
        "the live row names the user: {first_row}"
    );
    browser.check_page("admin-07-log");
}

/// Users: create one, the last admin kept, a password reset ends sessions.
fn admin_users_and_password_reset(server: &TestServer, browser: &Browser, site: &str) {
    // Users.
    browser.goto(&format!("{site}/admin/users"));
    browser.type_into("form.card input[name=username]", "grandma");
    browser.type_into("form.card input[name=password]", "long enough");
    browser.click("form.card button[type=submit]");
    browser.wait_for("the new user", |b| {
        b.text().contains("Created the member grandma.")
    });
    browser.click("tr[data-user=admin] button[name=role]");
    browser.wait_for("the refusal", |b| {
        b.text().contains("This is the last admin")
    });
    browser.check_page("admin-08-users");

    // grandma forgot her password: the admin sets a new one, her sessions end.
    let mut grandma = server.client();
    assert_eq!(grandma.login("grandma", "long enough").status, 200);
    assert_eq!(grandma.get("/api/v1/archives").status, 200);
    browser.click("tr[data-user=grandma] details.reset summary");
    browser.type_into(
        "tr[data-user=grandma] input[name=new_password]",
        "a brand new one",
    );
    browser.click("tr[data-user=grandma] details.reset button[type=submit]");
    browser.wait_for("the reset message", |b| {
        b.text().contains("New password set for grandma")
    });
    browser.check_page("admin-09-password-reset");
    assert_eq!(
        grandma.get("/api/v1/archives").status,
        401,
        "her session ended"
    );
    let mut again = server.client();
    assert_eq!(again.login("grandma", "long enough").status, 401);
    assert_eq!(again.login("grandma", "a brand new one").status, 200);
}

/// The settings form saves every setting the API has.
fn admin_settings_save(browser: &Browser, admin: &Client, site: &str) {
    // Settings: every setting of the API is on the page; a save says so.
    browser.goto(&format!("{site}/admin/settings"));
    browser.script(
        "document.querySelector('input[name=upload_bandwidth_kib]').value = '2048';\
         document.querySelector('input[name=transfer_concurrency]').value = '3';\
         document.querySelector('input[name=verify_sample_percent]').value = '10';\
         document.querySelector('input[name=upload_window_start]').value = '01:00';\
         document.querySelector('input[name=upload_window_end]').value = '05:30';",
    );
    browser.click("input[name=upload_window_on]");
    browser.click("form[action='/admin/settings'] button[type=submit]");
    browser.wait_for("the saved message", |b| {
        b.text().contains("Settings saved.")
    });
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["upload_bandwidth_bytes_per_sec"], 2048 * 1024);
    assert_eq!(settings["transfer_concurrency"], 3);
    assert_eq!(settings["verify_sample_percent"], 10);
    assert_eq!(
        settings["upload_window"],
        json!({"start": "01:00", "end": "05:30"})
    );
}

/// A failed remote test keeps what was typed, never the secret.
fn admin_remote_test_keeps_what_was_typed(browser: &Browser, site: &str) {
    // A failed remote test keeps what was typed, never the secret.
    browser.goto(&format!("{site}/admin/remote"));
    browser.click("input[name=kind][value=s3]");
    for (field, value) in [
        ("endpoint", "http://127.0.0.1:9"),
        ("region", "home-1"),
        ("bucket", "family-typed"),
        ("access_key_id", "TYPEDKEY"),
        ("secret_access_key", "typed secret value"),
    ] {
        browser.script(&format!(
            "document.querySelector('input[name={field}]').value = '';"
        ));
        browser.type_into(&format!("input[name={field}]"), value);
    }
    browser.click("button[name=action][value=test]");
    browser.wait_for("the failed test", |b| {
        b.find_all("p.error[role=alert]") == 1
    });
    for (field, value) in [
        ("endpoint", "http://127.0.0.1:9"),
        ("bucket", "family-typed"),
        ("access_key_id", "TYPEDKEY"),
        ("secret_access_key", ""),
    ] {
        assert_eq!(
            browser.script(&format!(
                "return document.querySelector('input[name={field}]').value;"
            )),
            json!(value),
            "{field} after a failed test"
        );
    }
    assert!(!browser
        .script("return document.documentElement.outerHTML;")
        .as_str()
        .unwrap()
        .contains("typed secret value"));
    browser.check_page("admin-11b-remote-test-failed");
}

/// The Script API help, linked from the develop page.
fn admin_script_help(browser: &Browser, site: &str) {
    // The develop page links its help: the Script API.
    browser.goto(&format!("{site}/admin/scripts/new"));
    let help = browser.attribute("a[href='/admin/scripts/help']", "href");
    assert_eq!(help, "/admin/scripts/help");
    browser.goto(&format!("{site}/admin/scripts/help"));
    for call in [
        "archives()",
        "uncache(id)",
        "verify(id, percent)",
        "retry_failed()",
    ] {
        assert!(browser.text().contains(call), "the help lists {call}");
    }
}

/// The other admin pages, checked at both sizes.
fn admin_other_pages(browser: &Browser, site: &str) {
    // The other admin pages, at both sizes.
    for (path, name) in [
        ("/admin/settings", "admin-10-settings"),
        ("/admin/remote", "admin-11-remote"),
        ("/admin/device", "admin-12-device"),
        ("/account", "admin-13-account"),
        ("/admin/scripts/help", "admin-14-script-help"),
    ] {
        browser.goto(&format!("{site}{path}"));
        browser.wait_for(path, |b| b.path() == path);
        browser.check_page(name);
    }
}

/// Which of the detail page's actions are shown, e.g. `"download,delete"`.
fn visible_actions(browser: &Browser) -> String {
    browser
        .script(
            "return Array.from(document.querySelectorAll('#actions [data-action]'))\
               .filter(e => !e.hidden && e.offsetParent !== null)\
               .map(e => e.dataset.action).join(',');",
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// True while the page loaded before `mark_page` is still the one shown.
fn still_same_page(browser: &Browser) -> bool {
    browser.script("return window.__notReloaded === true;") == json!(true)
}

fn mark_page(browser: &Browser) {
    browser.script("window.__notReloaded = true;");
}

fn wait_live(browser: &Browser) {
    browser.wait_for("the live event stream", |b| {
        b.script("return document.documentElement.dataset.live || '';") == json!("connected")
    });
}

/// Live progress without reloading: the home page's bar fills as parts
/// reach the remote, the detail page's parts turn green one by one, and
/// the buttons follow the state (uncache once backed up; fetch back, not
/// download, once uncached).
#[test]
fn live_progress_and_buttons_follow_the_engine_without_a_reload() {
    let server = TestServer::start();
    let admin = server.admin();
    let site = &server.base;
    // About 7 s per archive, held back until the window opens; one part at
    // a time, so the parts land spaced out (rate and time left need two
    // landings a second apart).
    admin.put_settings(|s| {
        s["upload_bandwidth_bytes_per_sec"] = json!(3 * 1024 * 1024);
        s["transfer_concurrency"] = json!(1);
        s["upload_window"] = closed_upload_window();
    });
    let first_data = random_bytes(20 * 1024 * 1024 + 1, 21);
    let first = admin.upload_ok("first live", &first_data)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let browser = Browser::start();
    browser.goto(&format!("{site}/login"));
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    browser.wait_for("the home page", |b| b.path() == "/");
    wait_live(&browser);
    mark_page(&browser);
    live_home_bar_fills(&browser, &admin, &first);
    live_home_follows_other_clients(&browser, &admin);
    let (second, second_data) = live_detail_parts_turn_green(&browser, &admin, site);
    live_detail_follows_uncache_and_cache(&browser, &admin, &second, &second_data);
}

/// The home page says why nothing moves, then its bar fills live.
fn live_home_bar_fills(browser: &Browser, admin: &Client, first: &str) {
    // Why nothing moves, in words: the upload window and the limit.
    let text = browser.text();
    assert!(text.contains("Waiting for the upload window at "), "{text}");
    assert!(
        text.contains("Limited to 3") && text.contains("/s."),
        "{text}"
    );
    browser.check_page("live-00-home-waiting");
    let row = format!("tr[data-archive-id='{first}']");
    let bar_width = |b: &Browser| {
        b.script(&format!(
            "return document.querySelector(\"{row} .bar\").style.width;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    assert_eq!(bar_width(browser), "0%");
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let mut widths = vec![bar_width(browser)];
    let mut rates = Vec::new();
    browser.wait_for("the home page's bar to fill", |b| {
        let width = bar_width(b);
        if widths.last() != Some(&width) {
            widths.push(width.clone());
        }
        let rate = b
            .script(&format!(
                "const e = document.querySelector(\"{row} .eta\"); return e ? e.textContent : '';"
            ))
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !rate.is_empty() && rates.last() != Some(&rate) {
            rates.push(rate);
        }
        width == "100%"
    });
    eprintln!("home page rates seen: {rates:?}");
    assert!(
        rates
            .iter()
            .any(|r| r.contains("/s · ") && r.contains(" left")),
        "rate and time left shown while it moved: {rates:?}"
    );
    browser.wait_for("the backed-up label on the home page", |b| {
        b.script(&format!(
            "return document.querySelector(\"{row} .state\").textContent;"
        )) == json!("on this box only")
    });
    assert!(still_same_page(browser), "the home page was reloaded");
    eprintln!("home page bar widths seen: {widths:?}");
    assert!(widths.len() >= 2, "the bar moved live: {widths:?}");
    browser.screenshot("live-01-home-backed-up");
}

/// Uploads, renames and deletes through the API show on the open home page.
fn live_home_follows_other_clients(browser: &Browser, admin: &Client) {
    // Another client (the API) uploads, renames and deletes: the open home
    // page follows without a reload.
    let third = admin.upload_ok("arrived live", &random_bytes(1024 * 1024, 23))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let third_row = format!("tr[data-archive-id='{third}']");
    browser.wait_for("the new archive on the open home page", |b| {
        b.find_all(&third_row) == 1
    });
    assert!(browser.text().contains("arrived live"));
    let resp = admin.send_json(
        "PATCH",
        &format!("/api/v1/archives/{third}"),
        &json!({"name": "renamed live"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    browser.wait_for("the new name", |b| b.text().contains("renamed live"));
    browser.screenshot("live-01b-home-new-archive");
    assert_eq!(
        admin.delete(&format!("/api/v1/archives/{third}")).status,
        202
    );
    browser.wait_for("the deleted archive gone", |b| b.find_all(&third_row) == 0);
    assert!(!browser.text().contains("renamed live"));
    assert!(still_same_page(browser), "the home page was reloaded");
}

/// A detail page opened before the upload: parts turn green live; returns the archive's id and bytes.
fn live_detail_parts_turn_green(
    browser: &Browser,
    admin: &Client,
    site: &str,
) -> (String, Vec<u8>) {
    // The detail page of a second archive, opened before its upload.
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let second_data = random_bytes(20 * 1024 * 1024 + 2, 22);
    let second = admin.upload_ok("second live", &second_data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.goto(&format!("{site}/archives/{second}"));
    browser.wait_for("the detail page", |b| {
        b.text().contains("Technical details")
    });
    wait_live(browser);
    mark_page(browser);
    let parts_total = browser
        .script("return document.querySelectorAll('tr.part').length;")
        .as_u64()
        .unwrap();
    assert!(parts_total >= 2, "{parts_total} parts");
    let remote_parts = |b: &Browser| {
        b.script("return document.querySelectorAll('tr.part.remote').length;")
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(remote_parts(browser), 0);
    assert_eq!(visible_actions(browser), "download,delete");
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let mut counts = vec![0];
    let mut detail_rates = Vec::new();
    browser.wait_for("every part to turn green", |b| {
        let count = remote_parts(b);
        if counts.last() != Some(&count) {
            counts.push(count);
        }
        let rate = b
            .script("return document.getElementById('transfer-rate').textContent;")
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !rate.is_empty() && detail_rates.last() != Some(&rate) {
            detail_rates.push(rate);
        }
        count == parts_total
    });
    eprintln!("detail page rates seen: {detail_rates:?}");
    assert!(
        detail_rates.iter().any(|r| r.contains("/s · ")),
        "the detail page showed the rate: {detail_rates:?}"
    );
    eprintln!("detail page: remote parts seen {counts:?} of {parts_total}");
    assert!(still_same_page(browser), "the detail page was reloaded");
    let green = browser.script(
        "return getComputedStyle(document.querySelector('tr.part.remote td:last-child')).color;",
    );
    assert_eq!(green, json!("rgb(26, 127, 55)"), "a stored part is green");
    browser.wait_for("the uncache button once backed up", |b| {
        visible_actions(b) == "download,uncache,delete"
    });
    assert_eq!(
        browser.script("return document.getElementById('state').textContent;"),
        json!("on this box only")
    );
    browser.screenshot("live-02-detail-backed-up");
    (second, second_data)
}

/// Uncache and cache through the API: the buttons follow, the download is bit-exact.
fn live_detail_follows_uncache_and_cache(
    browser: &Browser,
    admin: &Client,
    second: &str,
    second_data: &[u8],
) {
    // Uncached elsewhere (the API): fetch back appears, download goes.
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{second}/uncache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    browser.wait_for("the fetch-back button once uncached", |b| {
        visible_actions(b) == "cache,delete"
    });
    assert_eq!(
        browser.script("return document.getElementById('state').textContent;"),
        json!("on this box only")
    );
    browser.screenshot("live-03-detail-uncached");

    // Fetched back: download and uncache again, no fetch back.
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{second}/cache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    browser.wait_for("the download button once cached", |b| {
        visible_actions(b) == "download,uncache,delete"
    });
    assert!(still_same_page(browser), "the detail page was reloaded");
    let digest = browser.script_async(
        "const done = arguments[arguments.length - 1];\
         fetch(document.querySelector('a[download]').href).then(r => r.arrayBuffer())\
           .then(b => crypto.subtle.digest('SHA-256', b))\
           .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))\
           .catch(e => done('error: ' + e));",
    );
    assert_eq!(digest.as_str(), Some(sha256_hex(second_data).as_str()));
    browser.screenshot("live-04-detail-cached");
}
