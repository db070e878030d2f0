//! The admin tool over real HTTP: saved scripts, test runs and their errors,
//! the sandbox, deployments (polled, never slept on), restarts, the system
//! log, and members refused everywhere.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{wait_until, Client, TestServer, FAST_DEPLOYMENTS};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn run(admin: &Client, source: &str) -> Value {
    let resp = admin.post_json("/api/v1/admin/scripts/run", &json!({ "source": source }));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn save(admin: &Client, name: &str, source: &str) -> String {
    let resp = admin.post_json(
        "/api/v1/admin/scripts",
        &json!({"name": name, "description": "test", "source": source}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["id"].as_str().unwrap().to_string()
}

fn log_entries(admin: &Client, query: &str) -> Vec<Value> {
    let resp = admin.get(&format!("/api/v1/admin/log?{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["entries"].as_array().unwrap().clone()
}

/// What a run must show: the value, or an error with its position.
enum Expect {
    Gives(Value, &'static str),
    Fails(&'static str, Option<(u64, u64)>),
}

#[test]
fn test_runs_report_values_output_and_errors_with_positions() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.upload_ok("Photos <2024> & \"more\" 📷", b"hello");
    use Expect::{Fails, Gives};
    let cases: &[(&str, Expect)] = &[
        ("40 + 2", Gives(json!(42), "")),
        (
            "print(\"hi\"); [1, \"two\"]",
            Gives(json!([1, "two"]), "hi\n"),
        ),
        ("archives().len()", Gives(json!(1), "")),
        (
            "archives()[0].name",
            Gives(json!("Photos <2024> & \"more\" 📷"), ""),
        ),
        ("archives()[0].owner", Gives(json!("admin"), "")),
        ("stats().archives", Gives(json!(1), "")),
        ("stats().disk_total > 0", Gives(json!(true), "")),
        (
            "archive(\"00000000000000000000000000000000\")",
            Gives(json!(null), ""),
        ),
        ("let x = 1;\nlet y = ;", Fails("Syntax error", Some((2, 9)))),
        ("let x = 1;\n  x.nope()", Fails("nope", Some((2, 5)))),
        (
            "throw \"custom failure\"",
            Fails("custom failure", Some((1, 1))),
        ),
        // The engine answers: nothing was waiting for new settings.
        ("retry_failed()", Gives(json!(0), "")),
    ];
    for (source, expect) in cases {
        let result = run(&admin, source);
        match expect {
            Gives(value, output) => {
                assert_eq!(result["ok"], json!(true), "{source}: {result}");
                assert_eq!(&result["value"], value, "{source}");
                assert_eq!(result["output"], json!(output), "{source}");
            }
            Fails(message, position) => {
                assert_eq!(result["ok"], json!(false), "{source}: {result}");
                let error = &result["error"];
                assert!(
                    error["message"].as_str().unwrap().contains(message),
                    "{source}: {error}"
                );
                if let Some((line, column)) = position {
                    assert_eq!(
                        (error["line"].as_u64(), error["column"].as_u64()),
                        (Some(*line), Some(*column)),
                        "{source}: {error}"
                    );
                }
            }
        }
        assert!(result["duration_ms"].is_u64());
    }
}

#[test]
fn the_sandbox_stops_hostile_scripts_fast() {
    let server = TestServer::start();
    let admin = server.admin();
    for (source, message) in [
        ("loop {}", "stopped"),
        ("fn f(n) { f(n + 1) } f(0)", "deeper than"),
        ("let s = \"x\"; loop { s += s; }", "string longer than"),
        ("import \"x\" as y;", "import"),
    ] {
        let started = Instant::now();
        let result = run(&admin, source);
        assert_eq!(result["ok"], json!(false), "{source}: {result}");
        assert!(
            result["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{source}: {result}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{source} took {:?}",
            started.elapsed()
        );
    }
    // The server is still fine.
    assert_eq!(run(&admin, "1")["value"], json!(1));
}

#[test]
fn uncache_of_an_archive_not_backed_up_throws_and_evicts_nothing() {
    let server = TestServer::start();
    let admin = server.admin();
    // An upload window twelve hours away keeps the archive local.
    admin.put_settings(|s| s["upload_window"] = crate::support::closed_upload_window());
    let archive = admin.upload_ok("local only", b"some bytes");
    let id = archive["id"].as_str().unwrap();
    let result = run(&admin, &format!("uncache(\"{id}\")"));
    assert_eq!(result["ok"], json!(false));
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is not backed up (state: local)"),
        "{message}"
    );
    let after = admin.get(&format!("/api/v1/archives/{id}")).json();
    assert_eq!(after["state"], "local");
    assert_eq!(
        admin.get(&format!("/api/v1/archives/{id}/content")).body,
        b"some bytes"
    );
}

#[test]
fn saved_scripts_crud_builtins_and_runs() {
    let server = TestServer::start();
    let admin = server.admin();
    let builtins = admin.get("/api/v1/admin/scripts").json();
    let names: Vec<&str> = builtins
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "verify remote copies",
            "evict idle archives",
            "storage report",
            "retry failed transfers"
        ]
    );

    let id = save(
        &admin,
        "hello <b>",
        "print(\"hi\"); log(\"warn\", \"from the script\"); 7",
    );
    let got = admin.get(&format!("/api/v1/admin/scripts/{id}")).json();
    assert_eq!(
        (got["name"].as_str(), got["last_run"].clone()),
        (Some("hello <b>"), Value::Null)
    );
    let result = admin
        .post_json(&format!("/api/v1/admin/scripts/{id}/run"), &json!({}))
        .json();
    assert_eq!(
        (
            result["ok"].clone(),
            result["value"].clone(),
            result["output"].clone()
        ),
        (json!(true), json!(7), json!("hi\n"))
    );
    let last = admin.get(&format!("/api/v1/admin/scripts/{id}")).json()["last_run"].clone();
    assert_eq!(last["ok"], json!(true));
    let logged = log_entries(&admin, "source=script:hello");
    assert!(
        logged
            .iter()
            .any(|e| e["message"] == "from the script" && e["level"] == "warn"),
        "{logged:?}"
    );

    let changed = admin.send_json(
        "PUT",
        &format!("/api/v1/admin/scripts/{id}"),
        &json!({"name": "renamed", "description": "d", "source": "1"}),
    );
    assert_eq!(changed.json()["name"], "renamed");
    let bad = admin.post_json(
        "/api/v1/admin/scripts",
        &json!({"name": "  ", "source": "1"}),
    );
    assert_eq!(bad.status, 400);
    bad.message();
    // The storage report runs on real data.
    let report = builtins[2]["id"].as_str().unwrap();
    let result = admin
        .post_json(&format!("/api/v1/admin/scripts/{report}/run"), &json!({}))
        .json();
    assert_eq!(result["ok"], json!(true), "{result}");
    assert_eq!(
        admin.delete(&format!("/api/v1/admin/scripts/{id}")).status,
        204
    );
    assert_eq!(
        admin.get(&format!("/api/v1/admin/scripts/{id}")).status,
        404
    );
}

fn deployment(admin: &Client, id: &str) -> Option<Value> {
    admin
        .get("/api/v1/admin/deployments")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
}

fn deploy(admin: &Client, script_id: &str, interval: u64) -> String {
    let resp = admin.post_json(
        "/api/v1/admin/deployments",
        &json!({"script_id": script_id, "interval_seconds": interval}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["id"].as_str().unwrap().to_string()
}

#[test]
fn a_failing_deployment_is_logged_each_time_and_keeps_running() {
    let server = TestServer::start_with_config(FAST_DEPLOYMENTS);
    let admin = server.admin();
    let script = save(&admin, "always fails", "throw \"broken on purpose\"");
    let bad = admin.post_json(
        "/api/v1/admin/deployments",
        &json!({"script_id": script, "interval_seconds": 0}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("at least 1"));
    let id = deploy(&admin, &script, 1);
    wait_until(Duration::from_secs(30), || {
        log_entries(&admin, "source=script:always%20fails&level=error").len() >= 3
    });
    let errors = log_entries(&admin, "source=script:always%20fails&level=error");
    assert!(errors
        .iter()
        .all(|e| e["message"].as_str().unwrap().contains("broken on purpose")));
    let listed = deployment(&admin, &id).expect("still deployed");
    assert_eq!(listed["last_run"]["ok"], json!(false));
    assert!(listed["next_run_at"].as_i64().unwrap() > 0);
    // Deleting the script is refused while it is deployed.
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/scripts/{script}"))
            .status,
        409
    );
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/deployments/{id}"))
            .status,
        204
    );
    assert!(deployment(&admin, &id).is_none());
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/deployments/{id}"))
            .status,
        404
    );
}

/// Deployments run at most every 5 minutes unless the config file says
/// otherwise: a shorter interval is refused with a sentence, nothing saved.
#[test]
fn a_deployment_more_often_than_every_five_minutes_is_refused() {
    let server = TestServer::start();
    let admin = server.admin();
    let script = save(&admin, "quick", "1");
    for interval in [1, 60, 299] {
        let resp = admin.post_json(
            "/api/v1/admin/deployments",
            &json!({"script_id": script, "interval_seconds": interval}),
        );
        assert_eq!(resp.status, 400, "{interval}");
        assert!(
            resp.message().contains("at least 5 minutes"),
            "{}",
            resp.message()
        );
    }
    let before = admin.get("/api/v1/admin/deployments").json();
    assert!(before
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["script_id"] != json!(script)));
    let id = deploy(&admin, &script, 300);
    assert_eq!(
        deployment(&admin, &id).unwrap()["interval_seconds"],
        json!(300)
    );
}

#[test]
fn terminating_cancels_a_running_deployment_and_runs_never_overlap() {
    let server = TestServer::start_with_config(FAST_DEPLOYMENTS);
    let admin = server.admin();
    // A host call per iteration: the run lasts until the 5 s timeout or
    // until cancelled; with an interval of 1 s, runs would overlap.
    let script = save(
        &admin,
        "slow",
        "log(\"info\", \"slow started\"); loop { archives(); }",
    );
    let id = deploy(&admin, &script, 1);
    wait_until(Duration::from_secs(20), || {
        !log_entries(&admin, "q=slow%20started").is_empty()
    });
    // Well past the 1 s interval, the first run is still the only one.
    wait_until(Duration::from_secs(20), || {
        deployment(&admin, &id).is_some_and(|d| {
            d["running"] == json!(true) && d["next_run_at"].as_i64() < Some(now_secs())
        })
    });
    let started = log_entries(&admin, "q=slow%20started").len();
    assert_eq!(started, 1, "one run at a time");
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/deployments/{id}"))
            .status,
        204
    );
    wait_until(Duration::from_secs(20), || {
        log_entries(&admin, "source=script:slow&level=error")
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("cancelled"))
    });
}

#[test]
fn three_deployments_resume_after_a_restart() {
    let mut server = TestServer::start_with_config(FAST_DEPLOYMENTS);
    let admin = server.admin();
    let mut ids = Vec::new();
    for n in 0..3 {
        let script = save(
            &admin,
            &format!("tick {n}"),
            &format!("log(\"info\", \"tick {n}\"); {n}"),
        );
        ids.push(deploy(&admin, &script, 1));
    }
    let ticks = |admin: &Client, n: usize| {
        log_entries(admin, &format!("q=tick%20{n}&source=script:&limit=1000"))
            .iter()
            .filter(|e| e["message"] == format!("tick {n}"))
            .count()
    };
    wait_until(Duration::from_secs(30), || {
        (0..3).all(|n| ticks(&admin, n) >= 1)
    });
    server.restart();
    let mut admin = server.client();
    assert_eq!(admin.login("admin", "admin password").status, 200);
    let before: Vec<usize> = (0..3).map(|n| ticks(&admin, n)).collect();
    let listed = admin.get("/api/v1/admin/deployments").json();
    let listed_ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    // Ours and the built-in weekly verification.
    assert_eq!(listed_ids.len(), 4, "{listed}");
    assert!(ids.iter().all(|id| listed_ids.contains(&id.as_str())));
    wait_until(Duration::from_secs(30), || {
        (0..3).all(|n| ticks(&admin, n) >= before[n] + 2)
    });
}

#[test]
fn log_records_logins_uploads_settings_and_pages_back() {
    let server = TestServer::start();
    let admin = server.admin();
    let _bob = server.member("bob");
    assert_eq!(server.client().login("bob", "wrong password").status, 401);
    admin.upload_ok("holiday", b"pictures");
    let settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );

    let all = log_entries(&admin, "limit=1000");
    let has = |source: &str, text: &str| {
        all.iter()
            .any(|e| e["source"] == source && e["message"].as_str().unwrap().contains(text))
    };
    assert!(has("login", "bob logged in"), "{all:?}");
    assert!(has("login", "Login as \"bob\""), "{all:?}");
    assert!(has("upload", "holiday"), "{all:?}");
    assert!(has("settings", "changed the appliance settings"), "{all:?}");
    let upload = all.iter().find(|e| e["source"] == "upload").unwrap();
    assert!(upload["archive_id"].is_string() && upload["user_id"].is_string());

    // Filters.
    let warnings = log_entries(&admin, "level=warn");
    assert!(
        !warnings.is_empty()
            && warnings
                .iter()
                .all(|e| e["level"] == "warn" || e["level"] == "error")
    );
    assert!(log_entries(&admin, "source=login")
        .iter()
        .all(|e| e["source"] == "login"));
    assert!(log_entries(&admin, "q=HOLIDAY")
        .iter()
        .all(|e| e["message"].as_str().unwrap().contains("holiday")));
    assert!(log_entries(&admin, "until=0").is_empty());
    assert!(log_entries(&admin, "until=1970-01-01T00:00").is_empty());
    assert_eq!(
        log_entries(&admin, "until=2999-01-01T00:00").len(),
        all.len().min(100)
    );
    assert_eq!(
        log_entries(&admin, "since=1970-01-01T00:00").len(),
        all.len().min(100)
    );
    assert_eq!(admin.get("/api/v1/admin/log?level=loud").status, 400);

    // Paging back one entry at a time sees everything once, newest first.
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/api/v1/admin/log?limit=2&before={id}"),
            None => "/api/v1/admin/log?limit=2".to_string(),
        };
        let page = admin.get(&path).json();
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    let expected: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    // Entries written while paging (none here) would only add at the top.
    assert_eq!(seen, expected);

    // The cap.
    let capped = admin.send_json(
        "PUT",
        "/api/v1/admin/log/settings",
        &json!({"max_entries": 3, "max_age_days": 90}),
    );
    assert_eq!(capped.status, 200, "{}", capped.text());
    assert!(log_entries(&admin, "limit=1000").len() <= 3);
}

#[test]
fn live_log_streams_new_entries() {
    use std::io::{BufRead, BufReader, Write};
    let server = TestServer::start();
    let admin = server.admin();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/admin/log/events HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        admin.cookie.as_ref().unwrap()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // Wait for the stream to be subscribed, then log something.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with(": live log") {
            break;
        }
    }
    run(&admin, "log(\"error\", \"live <entry>\")");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline);
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("data: ") && line.contains("live <entry>") {
            let entry: Value =
                serde_json::from_str(line.trim_start_matches("data: ").trim()).unwrap();
            assert_eq!(entry["level"], "error");
            break;
        }
    }
    // Other requests are served meanwhile.
    assert_eq!(admin.get("/api/v1/admin/scripts").status, 200);
}

#[test]
fn members_get_403_on_every_admin_route_and_page_and_csrf_is_needed() {
    let server = TestServer::start();
    let admin = server.admin();
    let member = server.member("mallory");
    let script = save(&admin, "s", "1");
    let deployment = deploy(&admin, &script, 3600);
    let api_routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/admin/scripts".into(), None),
        (
            "POST",
            "/api/v1/admin/scripts".into(),
            Some(json!({"name": "x", "source": "1"})),
        ),
        (
            "POST",
            "/api/v1/admin/scripts/run".into(),
            Some(json!({"source": "1"})),
        ),
        ("GET", format!("/api/v1/admin/scripts/{script}"), None),
        (
            "PUT",
            format!("/api/v1/admin/scripts/{script}"),
            Some(json!({"name": "x", "source": "1"})),
        ),
        ("DELETE", format!("/api/v1/admin/scripts/{script}"), None),
        (
            "POST",
            format!("/api/v1/admin/scripts/{script}/run"),
            Some(json!({})),
        ),
        ("GET", "/api/v1/admin/deployments".into(), None),
        (
            "POST",
            "/api/v1/admin/deployments".into(),
            Some(json!({"script_id": script, "interval_seconds": 1})),
        ),
        (
            "DELETE",
            format!("/api/v1/admin/deployments/{deployment}"),
            None,
        ),
        ("GET", "/api/v1/admin/log".into(), None),
        ("GET", "/api/v1/admin/log/settings".into(), None),
        (
            "PUT",
            "/api/v1/admin/log/settings".into(),
            Some(json!({"max_entries": 1, "max_age_days": 1})),
        ),
        ("GET", "/api/v1/admin/log/events".into(), None),
        ("GET", "/api/v1/admin/users".into(), None),
        ("GET", "/api/v1/admin/settings".into(), None),
    ];
    for (method, path, body) in &api_routes {
        let resp = match body {
            Some(body) => member.send_json(method, path, body),
            None => member.request(method, path, &[], None),
        };
        assert_eq!(resp.status, 403, "member {method} {path}: {}", resp.text());
        resp.message();
    }
    for page in [
        "/admin",
        "/admin/scripts/new",
        &format!("/admin/scripts/{script}"),
        "/admin/log",
        "/admin/users",
    ] {
        assert_eq!(member.get(page).status, 403, "member GET {page}");
        assert_eq!(admin.get(page).status, 200, "admin GET {page}");
    }
    for (target, fields) in [
        (
            "new",
            vec![("username", "eve"), ("password", "long enough")],
        ),
        ("registration", vec![("open", "0")]),
    ] {
        let csrf = member.csrf.clone().unwrap();
        let mut fields: Vec<(&str, &str)> = fields.clone();
        fields.push(("csrf_token", &csrf));
        assert_eq!(
            member
                .post_form(&format!("/admin/users/{target}"), &fields)
                .status,
            403
        );
    }
    // Nothing changed: ours and the built-in weekly verification.
    assert_eq!(
        admin
            .get("/api/v1/admin/deployments")
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        admin.get(&format!("/api/v1/admin/scripts/{script}")).json()["name"],
        "s"
    );

    // An admin with the cookie but without the CSRF token is refused too.
    let mut no_csrf = admin.clone();
    no_csrf.csrf = None;
    let resp = no_csrf.post_json("/api/v1/admin/scripts/run", &json!({"source": "1"}));
    assert_eq!(resp.status, 403);
    assert!(resp.message().contains("CSRF"));
    assert_eq!(
        no_csrf
            .delete(&format!("/api/v1/admin/deployments/{deployment}"))
            .status,
        403
    );
    // Logged out: 401.
    assert_eq!(server.client().get("/api/v1/admin/scripts").status, 401);
}

#[test]
fn users_page_creates_promotes_and_refuses_to_demote_the_last_admin() {
    let server = TestServer::start();
    let admin = server.admin();
    let csrf = admin.csrf.clone().unwrap();
    let created = admin.post_form(
        "/admin/users/new",
        &[
            ("csrf_token", &csrf),
            ("username", "carol<&>"),
            ("password", "long enough"),
            ("role", "member"),
        ],
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert!(created
        .text()
        .contains("Created the member carol&lt;&amp;&gt;."));
    let users = admin.get("/api/v1/admin/users").json();
    let admin_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let carol_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol<&>")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = admin.post_form(
        &format!("/admin/users/{admin_id}"),
        &[("csrf_token", &csrf), ("role", "member")],
    );
    assert_eq!(refused.status, 409);
    assert!(refused
        .text()
        .contains("This is the last admin; make another user admin first."));
    let promoted = admin.post_form(
        &format!("/admin/users/{carol_id}"),
        &[("csrf_token", &csrf), ("role", "admin")],
    );
    assert!(promoted
        .text()
        .contains("carol&lt;&amp;&gt; is now an active admin."));
    let disabled = admin.post_form(
        &format!("/admin/users/{carol_id}"),
        &[("csrf_token", &csrf), ("disabled", "1")],
    );
    assert!(disabled.text().contains("is now a disabled admin"));
    let closed = admin.post_form(
        "/admin/users/registration",
        &[("csrf_token", &csrf), ("open", "0")],
    );
    assert!(closed.text().contains("Registration is closed."));
    assert_eq!(
        admin.get("/api/v1/admin/settings").json()["registration_open"],
        json!(false)
    );
    assert!(log_entries(&admin, "source=users").len() >= 4);
}

/// `PATCH /api/v1/admin/users/{id}` with `{"password"}`: the admin sets a new
/// password for a member who forgot theirs; the member's sessions end, the
/// new password works, the old one no longer does, and a member cannot do it.
#[test]
fn admin_resets_a_forgotten_password_and_the_sessions_end() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let bob_id = bob.get("/api/v1/me").json()["id"]
        .as_str()
        .expect("bob's id")
        .to_string();
    let path = format!("/api/v1/admin/users/{bob_id}");
    let refused = bob.send_json("PATCH", &path, &json!({"password": "taken over!"}));
    assert_eq!(refused.status, 403, "{}", refused.text());
    let short = admin.send_json("PATCH", &path, &json!({"password": "short"}));
    assert_eq!(short.status, 400, "{}", short.text());
    assert_eq!(
        bob.get("/api/v1/archives").status,
        200,
        "a refused reset changes nothing"
    );

    let reset = admin.send_json("PATCH", &path, &json!({"password": "a new password"}));
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(reset.json()["username"], "bob");
    assert_eq!(
        bob.get("/api/v1/archives").status,
        401,
        "bob's session ended"
    );
    let mut fresh = server.client();
    assert_eq!(fresh.login("bob", "member password").status, 401);
    assert_eq!(fresh.login("bob", "a new password").status, 200);
    let log = admin.get("/api/v1/admin/log?source=users").text();
    assert!(log.contains("set a new password for bob"), "{log}");
}
