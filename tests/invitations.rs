//! Issue 28 over real HTTP: registration closed by default, invitations
//! (one-time, expiring, with a role, withdrawn), failed logins kept for
//! the dashboard, the admin's list of every user's archive records (paged,
//! filtered, no content) with retry/verify/fetch back, and `off_site`
//! only for storage that is not attached to this box.

use serde_json::{json, Value};

use crate::remote_engine::{s3_json, set_remote, wait_state};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{Client, TestServer};

fn invite(admin: &Client, body: &Value) -> Value {
    let resp = admin.post_json("/api/v1/admin/invitations", body);
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()
}

fn sign_up(server: &TestServer, username: &str, token: &str) -> crate::support::Resp {
    server.client().post_json(
        "/api/v1/users",
        &json!({"username": username, "password": "long enough", "invitation": token}),
    )
}

#[test]
fn registration_is_closed_and_an_invitation_works_once() {
    let server = TestServer::start();
    let admin = server.admin();
    assert_eq!(
        admin.get("/api/v1/admin/settings").json()["registration_open"],
        false
    );
    let stranger = server.client().post_json(
        "/api/v1/users",
        &json!({"username": "tv", "password": "long enough"}),
    );
    assert_eq!(stranger.status, 403, "{}", stranger.text());
    assert_eq!(server.client().get("/register").status, 403);

    let made = invite(&admin, &json!({}));
    let token = made["token"].as_str().unwrap();
    assert!(made["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/invite/{token}")));
    assert_eq!(made["role"], "member");
    let listed = admin.get("/api/v1/admin/invitations").json();
    assert_eq!(listed["invitations"].as_array().unwrap().len(), 1);
    assert!(
        listed.to_string().find(token).is_none(),
        "tokens are never listed"
    );

    // The sign-up page, then the account; the token works once.
    let page = server.client().get(&format!("/invite/{token}"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Create your account"));
    let created = sign_up(&server, "grandma", token);
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["role"], "member");
    let again = sign_up(&server, "grandpa", token);
    assert_eq!(again.status, 403, "{}", again.text());
    assert!(again.message().contains("used already"));
    assert_eq!(server.client().get(&format!("/invite/{token}")).status, 404);
    assert!(admin.get("/api/v1/admin/invitations").json()["invitations"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(server.client().login("grandma", "long enough").status, 200);

    // An admin invitation gives the admin role; a withdrawn one stops working.
    let for_admin = invite(
        &admin,
        &json!({"role": "admin", "expires_in_seconds": 3600}),
    );
    let resp = sign_up(
        &server,
        "second_admin",
        for_admin["token"].as_str().unwrap(),
    );
    assert_eq!(resp.json()["role"], "admin", "{}", resp.text());
    let withdrawn = invite(&admin, &json!({}));
    let id = withdrawn["id"].as_str().unwrap();
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/invitations/{id}"))
            .status,
        204
    );
    let late = sign_up(&server, "late", withdrawn["token"].as_str().unwrap());
    assert_eq!(late.status, 403);
    assert_eq!(
        admin
            .delete(&format!("/api/v1/admin/invitations/{id}"))
            .status,
        404
    );

    // Bad input gets a sentence; members may not invite.
    let short = admin.post_json(
        "/api/v1/admin/invitations",
        &json!({"expires_in_seconds": 5}),
    );
    assert_eq!(short.status, 400);
    assert!(short.message().contains("between"));
    let member = server.member("bob");
    assert_eq!(
        member
            .post_json("/api/v1/admin/invitations", &json!({}))
            .status,
        403
    );
    assert_eq!(member.get("/api/v1/admin/invitations").status, 403);
}

#[test]
fn failed_logins_and_new_accounts_reach_the_dashboard() {
    let server = TestServer::start();
    let admin = server.admin();
    let _bob = server.member("bob");
    assert_eq!(server.client().login("bob", "not the password").status, 401);
    assert_eq!(server.client().login("nobody <x>", "guess").status, 401);
    let page = admin.get("/admin");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("Failed logins"), "{text}");
    assert!(
        text.contains("nobody &lt;x&gt;"),
        "usernames tried are escaped"
    );
    assert!(text.contains("New accounts"));
    assert!(text.contains("bob"));
}

#[test]
fn admins_list_every_archive_record_and_act_on_it() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let carol = server.member("carol");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            bob.upload_ok(&format!("bob {n}"), b"bob's bytes")["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let carol_id = carol.upload_ok("carol's", b"carol's bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Members are refused; admins page through everyone's records.
    assert_eq!(bob.get("/api/v1/admin/archives").status, 403);
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/archives?limit=2".to_string();
    for _ in 0..10 {
        let resp = admin.get(&path);
        assert_eq!(resp.status, 200, "{}", resp.text());
        for archive in resp.json().as_array().unwrap() {
            assert!(archive.get("off_site").is_some());
            assert!(archive["owner"]["username"].is_string());
            seen.push(archive["id"].as_str().unwrap().to_string());
        }
        match resp.header("Link") {
            Some(link) => {
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string()
            }
            None => break,
        }
    }
    seen.sort();
    let mut all = ids.clone();
    all.push(carol_id.clone());
    all.sort();
    assert_eq!(seen, all, "every record once");

    let carols = admin.get("/api/v1/admin/archives?owner=carol").json();
    assert_eq!(carols.as_array().unwrap().len(), 1);
    assert_eq!(carols[0]["id"], carol_id.as_str());
    assert_eq!(carols[0]["owner"]["username"], "carol");
    let unknown = admin.get("/api/v1/admin/archives?owner=nobody");
    assert_eq!(unknown.status, 400);
    assert!(unknown.message().contains("no user"));
    let bad_state = admin.get("/api/v1/admin/archives?state=sideways");
    assert_eq!(bad_state.status, 400);
    // On the default folder remote (this box's disk) nothing is off-site.
    let only_here = admin.get("/api/v1/admin/archives?state=only_here").json();
    assert_eq!(only_here.as_array().unwrap().len(), 4);

    // Admins act on records, never on contents; members not on others'.
    let retried = admin.post_json(
        &format!("/api/v1/admin/archives/{carol_id}/retry"),
        &json!({}),
    );
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(
        admin
            .get(&format!("/api/v1/archives/{carol_id}/content"))
            .status,
        404,
        "contents stay private to the owner"
    );
    assert_eq!(
        bob.post_json(
            &format!("/api/v1/admin/archives/{carol_id}/retry"),
            &json!({})
        )
        .status,
        403
    );
    let not_uncached = admin.post_json(
        &format!("/api/v1/admin/archives/{carol_id}/cache"),
        &json!({}),
    );
    assert_eq!(not_uncached.status, 409, "{}", not_uncached.text());
    let page = admin.get(&format!("/admin/archives/{carol_id}"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("carol"));
    assert!(
        !page.text().contains("/content"),
        "no download for the admin"
    );
}

#[test]
fn only_storage_off_this_box_is_off_site() {
    let server = TestServer::start();
    let admin = server.admin();
    // A folder outside the data folder on the same disk: not off-site.
    let folder = server
        .data_dir()
        .parent()
        .unwrap()
        .join("elsewhere-on-this-disk");
    std::fs::create_dir_all(&folder).unwrap();
    set_remote(&admin, &json!({"kind": "dir", "path": folder}));
    let id = admin.upload_ok("holiday", b"holiday bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let archive = wait_state(&admin, &id, "backed_up");
    assert_eq!(archive["off_site"], false, "{archive}");
    let home = admin.get("/").text();
    assert!(!home.contains(">off-site<"), "{home}");
    assert!(home.contains("Your files are on this box only") || home.contains("this box's disk"));
    let dashboard = admin.get("/admin").text();
    assert!(dashboard.contains("only on this box"), "{dashboard}");

    // The folder gone (a USB disk unplugged): unreachable, never complete.
    let unplugged = folder.with_file_name("unplugged");
    std::fs::rename(&folder, &unplugged).unwrap();
    crate::support::wait_until(crate::remote_engine::LIMIT, || {
        admin.get("/admin").text().contains("cannot be reached")
    });
    assert_eq!(
        crate::remote_engine::archive(&admin, &id)["off_site"],
        false
    );
    std::fs::rename(&unplugged, &folder).unwrap();

    // S3 is off-site.
    let s3 = S3TestServer::start();
    set_remote(&admin, &s3_json(&s3.endpoint, "safe", SECRET_KEY));
    let id = admin.upload_ok("to s3", b"s3 bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let archive = wait_state(&admin, &id, "backed_up");
    assert_eq!(archive["off_site"], true, "{archive}");
}
