//! Accounts over real HTTP: setup, registration, login, logout, password
//! change, API tokens, CSRF, throttling, admin settings and users.

use serde_json::json;

use crate::support::TestServer;

#[test]
fn setup_happens_once_and_needs_no_default_credentials() {
    let server = TestServer::start();
    let client = server.client();
    assert_eq!(client.get("/api/v1/setup").json(), json!({"needed": true}));
    // Before setup every page leads to the setup page.
    let resp = client.get("/");
    assert_eq!(
        (resp.status, resp.header("Location")),
        (303, Some("/setup"))
    );
    // No account exists to log in with.
    assert_eq!(server.client().login("admin", "admin").status, 401);

    let admin = server.admin();
    assert_eq!(admin.get("/api/v1/me").json()["role"], "admin");
    assert_eq!(client.get("/api/v1/setup").json(), json!({"needed": false}));
    let again = client.post_json(
        "/api/v1/setup",
        &json!({"username": "eve", "password": "long enough"}),
    );
    assert_eq!(again.status, 409);
    assert!(again.message().contains("already set up"));
}

#[test]
fn register_login_logout_and_change_password() {
    let server = TestServer::start();
    let _admin = server.admin();
    let mut bob = server.member("bob");
    let me = bob.get("/api/v1/me").json();
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("bob"), Some("member"))
    );
    assert!(bob
        .cookie
        .as_ref()
        .unwrap()
        .starts_with("piarchive_session="));

    // Weak password, taken name (case-folded).
    let short = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "carol", "password": "short"}),
    );
    assert_eq!(short.status, 400);
    assert!(short.message().contains("at least 8"));
    let taken = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "BOB", "password": "long enough"}),
    );
    assert_eq!(taken.status, 409);

    // Wrong current password, then a real change.
    let wrong = bob.send_json(
        "PATCH",
        "/api/v1/me",
        &json!({"current_password": "nope", "new_password": "new password"}),
    );
    assert_eq!(wrong.status, 403);
    let ok = bob.send_json(
        "PATCH",
        "/api/v1/me",
        &json!({"current_password": "member password", "new_password": "new password"}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(server.client().login("bob", "member password").status, 401);
    assert_eq!(server.client().login("bob", "new password").status, 200);

    // Logout ends the session.
    assert_eq!(bob.delete("/api/v1/session").status, 204);
    assert_eq!(bob.get("/api/v1/me").status, 401);
    let relogin = bob.login("bob", "new password");
    assert_eq!(relogin.status, 200);
    let cookie = relogin.header("Set-Cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
}

#[test]
fn wrong_passwords_are_refused_then_throttled() {
    let server = TestServer::start();
    let _admin = server.admin();
    let mut client = server.client();
    let wrong = client.login("admin", "wrong password");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.message(), "Wrong username or password.");
    let unknown = client.login("nobody", "wrong password");
    assert_eq!(
        unknown.message(),
        "Wrong username or password.",
        "unknown users look the same"
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(client.login("admin", "wrong password").status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let throttled = client.login("admin", "admin password");
    assert_eq!(throttled.status, 429, "even the right password waits");
    assert!(throttled.header("Retry-After").is_some());
    assert_eq!(
        throttled.message(),
        "Too many failed attempts from this device; try again in 15 minutes."
    );
}

#[test]
fn unauthenticated_requests_get_401_and_pages_redirect_to_login() {
    let server = TestServer::start();
    let _admin = server.admin();
    let anonymous = server.client();
    for (method, path) in [
        ("GET", "/api/v1/archives"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/tokens"),
        ("PUT", "/api/v1/archives?name=x"),
        ("GET", "/api/v1/archives/0123456789abcdef0123456789abcdef"),
        ("GET", "/api/v1/admin/settings"),
    ] {
        let resp = anonymous.request(
            method,
            path,
            &[],
            if method == "PUT" { Some(b"data") } else { None },
        );
        assert_eq!(resp.status, 401, "{method} {path}");
        assert_eq!(resp.json()["error"], "unauthorized");
    }
    // A page goes to the login, which comes back to it afterwards
    // (issue 28); with a session cookie that is no longer valid, the login
    // says the session ended.
    let page = anonymous.get("/archives/new");
    assert_eq!(
        (page.status, page.header("Location")),
        (303, Some("/login?next=%2Farchives%2Fnew"))
    );
    let ended = anonymous.request(
        "GET",
        "/archives/new",
        &[("Cookie", "piarchive_session=ended")],
        None,
    );
    assert_eq!(
        (ended.status, ended.header("Location")),
        (303, Some("/login?next=%2Farchives%2Fnew&ended=1"))
    );
    let forged = anonymous.request(
        "GET",
        "/api/v1/me",
        &[("Cookie", "piarchive_session=forged")],
        None,
    );
    assert_eq!(forged.status, 401);
}

#[test]
fn state_changes_with_the_cookie_need_the_csrf_token() {
    let server = TestServer::start();
    let admin = server.admin();
    let mut no_csrf = admin.clone();
    no_csrf.csrf = None;
    let missing = no_csrf.upload("x", "x.bin", b"hello");
    assert_eq!(missing.status, 403);
    assert!(missing.message().contains("CSRF"));
    let mut wrong = admin.clone();
    wrong.csrf = Some("not-the-token".into());
    assert_eq!(
        wrong
            .post_json("/api/v1/tokens", &json!({"name": "t"}))
            .status,
        403
    );
    // A form post without the field is refused too.
    let form = no_csrf.post_form("/account/tokens", &[("name", "t")]);
    assert_eq!(form.status, 403);
    assert_eq!(
        admin.get("/api/v1/tokens").json(),
        json!([]),
        "nothing was created"
    );
    // Reads need no token, and with it everything works.
    assert_eq!(no_csrf.get("/api/v1/archives").status, 200);
    assert_eq!(admin.upload("x", "x.bin", b"hello").status, 201);
    let with_field = no_csrf.post_form(
        "/account/tokens",
        &[
            ("name", "form token"),
            ("csrf_token", admin.csrf.as_deref().unwrap()),
        ],
    );
    assert_eq!(with_field.status, 200, "{}", with_field.text());
    assert!(with_field.text().contains("shown only once"));
}

#[test]
fn api_tokens_work_without_csrf_until_deleted() {
    let server = TestServer::start();
    let admin = server.admin();
    let created = admin.post_json("/api/v1/tokens", &json!({"name": "nightly <script>"}));
    assert_eq!(created.status, 201);
    let secret = created.json()["token"].as_str().unwrap().to_string();
    let token_id = created.json()["id"].as_str().unwrap().to_string();
    let listed = admin.get("/api/v1/tokens").json();
    assert_eq!(listed[0]["name"], "nightly <script>");
    assert!(
        listed[0].get("token").is_none(),
        "the secret is shown once only"
    );

    let mut script = server.client();
    script.bearer = Some(secret.clone());
    let archive = script.upload_ok("from a script", b"scripted bytes");
    assert_eq!(
        script.get("/api/v1/archives").json()[0]["id"],
        archive["id"]
    );
    assert_eq!(
        admin.delete(&format!("/api/v1/tokens/{token_id}")).status,
        204
    );
    let revoked = script.get("/api/v1/archives");
    assert_eq!(revoked.status, 401);
    assert!(revoked.message().contains("not valid"));
}

#[test]
fn admin_closes_registration_and_manages_users() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let bob_id = bob.get("/api/v1/me").json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Members are refused every admin route.
    for (method, path) in [
        ("GET", "/api/v1/admin/settings"),
        ("GET", "/api/v1/admin/users"),
    ] {
        assert_eq!(bob.request(method, path, &[], None).status, 403, "{path}");
    }
    assert_eq!(
        bob.send_json(
            "PATCH",
            &format!("/api/v1/admin/users/{bob_id}"),
            &json!({"role": "admin"})
        )
        .status,
        403
    );

    let mut settings = admin.get("/api/v1/admin/settings").json();
    assert_eq!(settings["registration_open"], true);
    settings["registration_open"] = json!(false);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );
    let closed = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "carol", "password": "long enough"}),
    );
    assert_eq!(closed.status, 403);
    assert!(closed.message().contains("Registration is closed"));
    // An admin may still create users, with a role.
    let made = admin.post_json(
        "/api/v1/users",
        &json!({"username": "carol", "password": "long enough", "role": "admin"}),
    );
    assert_eq!(
        (made.status, made.json()["role"].as_str()),
        (201, Some("admin"))
    );

    let bad = admin.send_json(
        "PUT",
        "/api/v1/admin/settings",
        &json!({"registration_open": true}),
    );
    assert_eq!(bad.status, 400, "a partial settings object is refused");

    // Disable bob: his session ends and he cannot log in.
    let disabled = admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{bob_id}"),
        &json!({"disabled": true}),
    );
    assert_eq!(disabled.status, 200);
    assert_eq!(bob.get("/api/v1/me").status, 401);
    assert_eq!(server.client().login("bob", "member password").status, 403);

    // The last admin cannot be demoted.
    let admin_id = admin.get("/api/v1/me").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let carol_id = made.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin
            .send_json(
                "PATCH",
                &format!("/api/v1/admin/users/{carol_id}"),
                &json!({"role": "member"})
            )
            .status,
        200
    );
    let last = admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{admin_id}"),
        &json!({"role": "member"}),
    );
    assert_eq!(last.status, 409);
    assert!(last.message().contains("last admin"));
}

#[test]
fn malformed_json_gets_a_sentence() {
    let server = TestServer::start();
    let client = server.client();
    let resp = client.request(
        "POST",
        "/api/v1/setup",
        &[("Content-Type", "application/json")],
        Some(b"{not json"),
    );
    assert_eq!(resp.status, 400);
    assert!(resp
        .message()
        .starts_with("The request body is not the expected JSON"));
    assert_eq!(
        client.get("/api/v1/setup").json()["needed"],
        true,
        "nothing was created"
    );
}

/// `piarchive user add` with the password on stdin, against `data_dir`.
fn cli_user_add(data_dir: &std::path::Path, name: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .args(["user", "add", name, "--data"])
        .arg(data_dir)
        .env_remove("PIARCHIVE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start piarchive user add");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{password}").expect("password written");
    drop(stdin);
    child.wait_with_output().expect("piarchive user add ends")
}

#[test]
fn the_cli_adds_users_only_after_setup() {
    let server = TestServer::start();
    let before = cli_user_add(&server.data_dir(), "carol", "carol's password");
    assert!(!before.status.success());
    let stderr = String::from_utf8_lossy(&before.stderr);
    assert!(stderr.contains("not set up yet"), "{stderr}");
    // Setup still works: the refused command created nothing.
    let _admin = server.admin();

    let after = cli_user_add(&server.data_dir(), "carol", "carol's password");
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(String::from_utf8_lossy(&after.stdout).contains("created member user carol"));
    assert_eq!(
        server.client().login("carol", "carol's password").status,
        200
    );
}

/// A `%` not followed by two hex digits, in a query string or a form body,
/// is a damaged request: a 400 that says so, on the API and on the pages.
#[test]
fn malformed_percent_escapes_are_a_clear_400() {
    let server = TestServer::start();
    let admin = server.admin();
    for path in [
        "/api/v1/archives?name=%+1",
        "/api/v1/admin/log?until=%zz",
        "/?done=%4",
    ] {
        let resp = admin.get(path);
        assert_eq!(resp.status, 400, "{path}");
        assert!(
            resp.text().contains("is not a valid escape"),
            "{path}: {}",
            resp.text()
        );
    }
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let resp = admin.request("POST", "/logout", &form, Some(b"csrf_token=%-1".as_slice()));
    assert_eq!(resp.status, 400, "{}", resp.text());
    // The page escapes the quotes around the bad escape.
    assert!(
        resp.text()
            .contains("&quot;%-1&quot; is not a valid escape"),
        "{}",
        resp.text()
    );
    // Well-formed escapes, `+` and UTF-8 still work.
    assert_eq!(admin.get("/api/v1/archives?name=%41+%E2%9C%93").status, 200);
}
