//! Per-user storage quotas (issue 26, item 2): set and cleared by an admin
//! through the API and the users page, shown to the member, enforced on
//! one-shot and resumable uploads with a 507 and a sentence naming the
//! quota; another user is never affected.

use serde_json::json;

use crate::support::{random_bytes, Client, Resp, TestServer};

const KIB: u64 = 1024;

fn user_id(client: &Client) -> String {
    client.get("/api/v1/me").json()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn set_quota(admin: &Client, user_id: &str, quota: serde_json::Value) -> Resp {
    admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{user_id}"),
        &json!({ "quota_bytes": quota }),
    )
}

#[test]
fn an_upload_past_the_quota_is_refused_and_others_are_not() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let carol = server.member("carol");
    let bob_id = user_id(&bob);
    let resp = set_quota(&admin, &bob_id, json!(1024 * KIB));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["quota_bytes"], 1024 * KIB);

    bob.upload_ok("first", &random_bytes(700 * 1024, 1));
    let me = bob.get("/api/v1/me").json();
    assert_eq!(me["storage"]["quota_bytes"], 1024 * KIB);
    assert_eq!(me["storage"]["used_bytes"], 700 * KIB);
    assert_eq!(me["storage"]["local_bytes"], 700 * KIB);

    // One-shot and resumable: 507 with the sentence, nothing kept.
    let resp = bob.upload("second", "second.bin", &random_bytes(400 * 1024, 2));
    assert_eq!(resp.status, 507, "{}", resp.text());
    assert_eq!(resp.json()["error"], "over_quota");
    assert!(
        resp.message()
            .starts_with("This upload would take you past your 1.0 MiB quota; you use 700 KiB."),
        "{}",
        resp.text()
    );
    let resp = bob.tus_create(400 * KIB);
    assert_eq!(resp.status, 507, "{}", resp.text());
    assert!(resp.message().contains("1.0 MiB quota"), "{}", resp.text());
    assert_eq!(
        bob.get("/api/v1/archives").json().as_array().unwrap().len(),
        1
    );

    // A reservation counts at once: 300 KiB declared, then 100 KiB more
    // would pass the quota.
    let resp = bob.tus_create(300 * KIB);
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(
        bob.get("/api/v1/me").json()["storage"]["pending_bytes"],
        300 * KIB
    );
    assert_eq!(
        bob.upload("third", "third.bin", &random_bytes(100 * 1024, 3))
            .status,
        507
    );

    // Carol, without a quota, is not affected.
    carol.upload_ok("big", &random_bytes(2048 * 1024, 4));
    assert_eq!(
        carol.get("/api/v1/me").json()["storage"]["quota_bytes"],
        serde_json::Value::Null
    );

    // Shown to the member on the home and account pages.
    let home = bob.get("/").text();
    assert!(home.contains("of your"), "{home}");
    assert!(home.contains("1.0 MiB"), "{home}");
    assert!(bob.get("/account").text().contains("1.0 MiB"));

    // Cleared: the upload goes through.
    let resp = set_quota(&admin, &bob_id, serde_json::Value::Null);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["quota_bytes"], serde_json::Value::Null);
    bob.upload_ok("second", &random_bytes(400 * 1024, 2));
    // A quota of 0 is refused with a sentence; a PATCH without the field
    // leaves the quota as it is.
    let resp = set_quota(&admin, &bob_id, json!(0));
    assert_eq!(resp.status, 400, "{}", resp.text());
    let resp = admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{bob_id}"),
        &json!({"role": "member"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["quota_bytes"], serde_json::Value::Null);
}

#[test]
fn the_admin_sets_quotas_on_the_users_page_and_sees_each_members_use() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let bob_id = user_id(&bob);
    bob.upload_ok("photo", &random_bytes(300 * 1024, 5));

    let resp = admin.post_form(
        &format!("/admin/users/{bob_id}"),
        &[
            ("csrf_token", admin.csrf.as_deref().unwrap()),
            ("quota_gib", "0.5"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("bob may now keep 512 MiB"),
        "{}",
        resp.text()
    );
    let users = admin.get("/api/v1/admin/users").json();
    let bob_json = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap()
        .clone();
    assert_eq!(bob_json["quota_bytes"], 512 * 1024 * KIB);
    assert_eq!(bob_json["storage"]["used_bytes"], 300 * KIB);
    let page = admin.get("/admin/users").text();
    assert!(page.contains("300 KiB of 512 MiB"), "{page}");

    let resp = admin.post_form(
        &format!("/admin/users/{bob_id}"),
        &[
            ("csrf_token", admin.csrf.as_deref().unwrap()),
            ("quota_gib", "lots"),
        ],
    );
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.text().contains("is not a quota"), "{}", resp.text());

    let resp = admin.post_form(
        &format!("/admin/users/{bob_id}"),
        &[
            ("csrf_token", admin.csrf.as_deref().unwrap()),
            ("quota_gib", ""),
        ],
    );
    assert!(
        resp.text().contains("bob has no storage quota now"),
        "{}",
        resp.text()
    );
    let page = admin.get("/admin/users").text();
    assert!(page.contains(">300 KiB<"), "{page}");
    assert!(!page.contains("300 KiB of"), "{page}");
    let log = admin.get("/api/v1/admin/log?source=users").text();
    assert!(
        log.contains("set the storage quota of bob to 512 MiB"),
        "{log}"
    );
}

#[test]
fn the_dashboard_shows_each_members_use_against_their_quota() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let carol = server.member("carol");
    bob.upload_ok("photos", &random_bytes(300 * KIB as usize, 7));
    let resp = admin.send_json(
        "PATCH",
        &format!("/api/v1/admin/users/{}", user_id(&bob)),
        &json!({"quota_bytes": 1024 * KIB}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let page = admin.get("/admin");
    assert_eq!(page.status, 200);
    let text = page.text();
    let card = text
        .split("id=\"members-use\"")
        .nth(1)
        .expect("a card of each member's use")
        .split("</section>")
        .next()
        .unwrap();
    // Bob first (he stores the most), against his quota: 300 of 1024 KiB.
    let (bob_at, carol_at) = (card.find("bob").unwrap(), card.find("carol").unwrap());
    assert!(bob_at < carol_at, "{card}");
    assert!(card.contains("300 KiB of 1.0 MiB quota"), "{card}");
    assert!(card.contains("aria-label=\"bob: 300 KiB\""), "{card}");
    assert!(card.contains("data-percent=\"29\""), "{card}");
    drop(carol);
}
