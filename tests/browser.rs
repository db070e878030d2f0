//! The real-browser test: Debian's headless Chromium driven over WebDriver
//! (chromedriver) through the whole first-use path, saving a screenshot of
//! each page under `tests/output/browser/`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{
    closed_upload_window, output_dir, random_bytes, sha256_hex, wait_until, Client, TestServer,
};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start() -> Browser {
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
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
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

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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
            Err(err) => panic!("WebDriver {method} {path}: {err}"),
        };
        let value: Value = serde_json::from_str(&response.into_string().expect("WebDriver answer"))
            .expect("WebDriver JSON");
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value["value"].clone()
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

    // First run: every page leads to setup.
    browser.goto(&format!("{site}/"));
    browser.wait_for("the setup page", |b| b.path() == "/setup");
    assert!(browser.text().contains("There is no default password"));
    browser.screenshot("01-setup");
    browser.type_into("input[name=username]", "admin");
    browser.type_into("input[name=password]", "admin password");
    browser.click("button[type=submit]");
    // The generated recovery passphrase is shown once.
    browser.wait_for("the recovery passphrase", |b| {
        b.text().contains("Your recovery passphrase")
    });
    browser.screenshot("02-recovery-passphrase");
    browser.click("a.button");
    browser.wait_for("the home page", |b| {
        b.path() == "/" && b.text().contains("Your archives")
    });
    browser.screenshot("02-admin-home");

    // Log out, register a second user.
    browser.click("button.link");
    browser.wait_for("the login page", |b| b.path() == "/login");
    browser.goto(&format!("{site}/register"));
    browser.type_into("input[name=username]", "bob");
    browser.type_into("input[name=password]", "member password");
    browser.screenshot("03-register");
    browser.click("button[type=submit]");
    browser.wait_for("bob's home page", |b| {
        b.path() == "/" && b.text().contains("bob")
    });

    // Upload through the page: tus, progress bar, done link.
    let data = random_bytes(40 * 1024 * 1024 + 7, 9);
    let file = output_dir("browser").join("family \"photos\" <2024>.bin");
    std::fs::write(&file, &data).unwrap();
    browser.goto(&format!("{site}/archives/new"));
    browser.type_into("#file", file.to_str().unwrap());
    browser.type_into("#name", "Photos <2024> & more 📷");
    browser.click("#start");
    browser.wait_for("the progress bar to move", |b| {
        b.script("return document.getElementById('upload-bar').style.width;")
            .as_str()
            .unwrap_or("0%")
            != "0%"
    });
    browser.wait_for("the upload to finish", |b| {
        b.script("return !document.getElementById('upload-done').hidden;") == json!(true)
    });
    assert_eq!(
        browser.script("return document.getElementById('upload-bar').style.width;"),
        json!("100%")
    );
    assert!(browser.text().contains("Done"));
    browser.screenshot("04-upload-done");

    // The archive is on the home page.
    browser.goto(&format!("{site}/"));
    browser.wait_for("the archive in the list", |b| {
        b.text().contains("Photos <2024> & more 📷")
    });
    browser.screenshot("05-home-with-archive");

    // The detail page, then the download, hashed inside the browser.
    browser.click("table.archives a");
    browser.wait_for("the detail page", |b| {
        b.path().starts_with("/archives/") && b.text().contains("SHA-256")
    });
    assert!(browser.text().contains(&sha256_hex(&data)));
    assert!(browser.text().contains("family \"photos\" <2024>.bin"));
    browser.screenshot("06-detail");
    let digest = browser.script_async(
        "const done = arguments[arguments.length - 1];\
         const link = document.querySelector('a[download]');\
         fetch(link.href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))\
           .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))\
           .catch(e => done('error: ' + e));",
    );
    assert_eq!(
        digest.as_str(),
        Some(sha256_hex(&data).as_str()),
        "the download is bit-exact"
    );
    std::fs::remove_file(&file).unwrap();
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

    // The admin home lists the built-in scripts.
    browser.goto(&format!("{site}/admin"));
    browser.wait_for("the script cards", |b| b.text().contains("storage report"));
    browser.screenshot("admin-01-home");

    // Develop: a syntax error first, with its line and column.
    browser.goto(&format!("{site}/admin/scripts/new"));
    browser.script("document.getElementById('source').value = 'let x = 1;\\nlet y = ;';");
    browser.click("#test-run");
    browser.wait_for("the syntax error", |b| {
        b.text().contains("line 2, column 9")
    });
    browser.screenshot("admin-02-syntax-error");
    browser.script(
        "document.getElementById('source').value = 'print(\"hello <world>\");\\nlog(\"warn\", \"from the browser\");\\n6 * 7';",
    );
    browser.click("#test-run");
    browser.wait_for("the test run", |b| {
        b.text().contains("hello <world>") && b.text().contains("Finished in")
    });
    assert!(browser.text().contains("42"));
    browser.screenshot("admin-03-test-run");
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
    browser.screenshot("admin-04-saved");

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
    browser.screenshot("admin-05-card-run");

    // Deploy it every 2 seconds, see a run, terminate it.
    browser.goto(&format!("{site}/admin"));
    browser.script(&format!(
        "document.querySelector('#new-deployment select').value = '{script_id}';\
         document.querySelector('#new-deployment input[name=interval_seconds]').value = '2';"
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
        ours(&admin).is_some_and(|d| d["last_run"]["ok"] == json!(true))
    });
    browser.goto(&format!("{site}/admin"));
    browser.wait_for("the deployment's last run", |b| b.text().contains(" ms"));
    browser.screenshot("admin-06-deployment");
    let ours_id = ours(&admin).unwrap()["id"].as_str().unwrap().to_string();
    browser.click(&format!("button.terminate[data-deployment-id='{ours_id}']"));
    browser.wait_for("the deployment gone", |b| {
        b.script("return document.querySelectorAll('table.deployments tbody tr').length;")
            == json!(1)
    });
    assert!(ours(&admin).is_none());
    assert_eq!(
        admin
            .get("/api/v1/admin/deployments")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

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
    browser.screenshot("admin-07-log");

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
    browser.screenshot("admin-08-users");
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
    // About 4 s per archive, held back until the window opens.
    admin.put_settings(|s| {
        s["upload_bandwidth_bytes_per_sec"] = json!(3 * 1024 * 1024);
        s["upload_window"] = closed_upload_window();
    });
    let first_data = random_bytes(12 * 1024 * 1024 + 1, 21);
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
    let row = format!("tr[data-archive-id='{first}']");
    let bar_width = |b: &Browser| {
        b.script(&format!(
            "return document.querySelector(\"{row} .bar\").style.width;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    };
    assert_eq!(bar_width(&browser), "0%");
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let mut widths = vec![bar_width(&browser)];
    browser.wait_for("the home page's bar to fill", |b| {
        let width = bar_width(b);
        if widths.last() != Some(&width) {
            widths.push(width.clone());
        }
        width == "100%"
    });
    browser.wait_for("the backed-up label on the home page", |b| {
        b.script(&format!(
            "return document.querySelector(\"{row} .state\").textContent;"
        )) == json!("backed up")
    });
    assert!(still_same_page(&browser), "the home page was reloaded");
    eprintln!("home page bar widths seen: {widths:?}");
    assert!(widths.len() >= 2, "the bar moved live: {widths:?}");
    browser.screenshot("live-01-home-backed-up");

    // The detail page of a second archive, opened before its upload.
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let second_data = random_bytes(12 * 1024 * 1024 + 2, 22);
    let second = admin.upload_ok("second live", &second_data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.goto(&format!("{site}/archives/{second}"));
    browser.wait_for("the detail page", |b| b.text().contains("SHA-256"));
    wait_live(&browser);
    mark_page(&browser);
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
    assert_eq!(remote_parts(&browser), 0);
    assert_eq!(visible_actions(&browser), "download,delete");
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let mut counts = vec![0];
    browser.wait_for("every part to turn green", |b| {
        let count = remote_parts(b);
        if counts.last() != Some(&count) {
            counts.push(count);
        }
        count == parts_total
    });
    eprintln!("detail page: remote parts seen {counts:?} of {parts_total}");
    assert!(still_same_page(&browser), "the detail page was reloaded");
    let green = browser.script(
        "return getComputedStyle(document.querySelector('tr.part.remote td:last-child')).color;",
    );
    assert_eq!(green, json!("rgb(26, 127, 55)"), "a stored part is green");
    browser.wait_for("the uncache button once backed up", |b| {
        visible_actions(b) == "download,uncache,delete"
    });
    assert_eq!(
        browser.script("return document.getElementById('state').textContent;"),
        json!("backed up")
    );
    browser.screenshot("live-02-detail-backed-up");

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
        json!("in the cloud only")
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
    assert!(still_same_page(&browser), "the detail page was reloaded");
    let digest = browser.script_async(
        "const done = arguments[arguments.length - 1];\
         fetch(document.querySelector('a[download]').href).then(r => r.arrayBuffer())\
           .then(b => crypto.subtle.digest('SHA-256', b))\
           .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16).padStart(2, '0')).join('')))\
           .catch(e => done('error: ' + e));",
    );
    assert_eq!(digest.as_str(), Some(sha256_hex(&second_data).as_str()));
    browser.screenshot("live-04-detail-cached");
}
