//! Members' own notification channels end to end: a member sets an ntfy
//! topic (a loopback receiver) on their Account page and hears about their
//! own archive backed up and damaged (a corrupted part on the signature-
//! checking S3 server), never about another member's archive.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::remote_engine::{s3_json, set_remote, wait_state};
use crate::support::receiver::{Received, Receiver};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, wait_until};

const LIMIT: Duration = Duration::from_secs(180);

fn titled(receiver: &Receiver, title: &str) -> Vec<Received> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| r.header("title") == Some(title))
        .collect()
}

#[test]
fn a_member_hears_about_their_own_archives_only() {
    let s3 = S3TestServer::start();
    let server = crate::support::TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&s3.endpoint, "family", SECRET_KEY));
    let kim = server.member("kim");
    let lee = server.member("lee");
    let phone = Receiver::start();

    // The page: no mail server yet, said so; bad input, a sentence.
    let page = kim.get("/account").text();
    assert!(page.contains("Your notifications"), "{page}");
    assert!(page.contains("has not set up a mail server"), "{page}");
    let bad = kim.post_form(
        "/account/notifications",
        &[
            ("ntfy_url", "ftp://example.com/kim"),
            ("ntfy_token", ""),
            ("email", ""),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("must start with http:// or https://"));
    let topic = format!("{}/kim-topic", phone.base);
    let saved = kim.post_form(
        "/account/notifications",
        &[
            ("ntfy_url", &topic),
            ("ntfy_token", "tk_kim_0451"),
            ("email", ""),
        ],
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert!(saved.text().contains("Your notifications were saved."));
    let page = kim.get("/account").text();
    assert!(page.contains(&topic), "{page}");
    assert!(page.contains("leave empty to keep it"), "{page}");
    assert!(!page.contains("tk_kim_0451"), "the token was shown");
    // Lee's page does not show Kim's topic.
    assert!(!lee.get("/account").text().contains("kim-topic"));

    let lee_name = "Lee's secret diary <2025>";
    let lee_id = lee.upload_ok(lee_name, &random_bytes(300_000, 41))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&lee, &lee_id, "backed_up");
    let parts_dir = s3.object_path("family").join("parts");
    let before: BTreeSet<_> = files_under(&parts_dir).into_iter().collect();

    let kim_name = "Kim \"holiday\" \u{1F600}";
    let kim_id = kim.upload_ok(kim_name, &random_bytes(12 * 1024 * 1024 + 9, 42))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&kim, &kim_id, "backed_up");
    wait_until(LIMIT, || !titled(&phone, "Backed up").is_empty());
    let backed_up = &titled(&phone, "Backed up")[0];
    assert!(backed_up.text().contains(kim_name), "{}", backed_up.text());
    assert_eq!(
        backed_up.header("authorization"),
        Some("Bearer tk_kim_0451")
    );

    // Kim's archive damaged on the remote.
    let uncache = kim.request(
        "POST",
        &format!("/api/v1/archives/{kim_id}/uncache"),
        &[],
        None,
    );
    assert_eq!(uncache.status, 202, "{}", uncache.text());
    wait_state(&kim, &kim_id, "uncached");
    let victim = files_under(&parts_dir)
        .into_iter()
        .find(|file| !before.contains(file))
        .expect("a part of Kim's archive");
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    crate::verify::verify(&admin, &kim_id, 100);
    wait_state(&kim, &kim_id, "damaged");
    wait_until(LIMIT, || {
        !titled(&phone, "A backup copy is damaged").is_empty()
    });
    let damaged = &titled(&phone, "A backup copy is damaged")[0];
    assert!(damaged.text().contains(kim_name), "{}", damaged.text());

    // Lee's archive damaged too: Kim hears nothing of it.
    let lee_uncache = lee.request(
        "POST",
        &format!("/api/v1/archives/{lee_id}/uncache"),
        &[],
        None,
    );
    assert_eq!(lee_uncache.status, 202, "{}", lee_uncache.text());
    wait_state(&lee, &lee_id, "uncached");
    for file in before.iter().filter(|file| file.exists()) {
        let mut bytes = std::fs::read(file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(file, &bytes).unwrap();
    }
    crate::verify::verify(&admin, &lee_id, 100);
    wait_state(&lee, &lee_id, "damaged");
    let settle = Instant::now();
    wait_until(LIMIT, || settle.elapsed() >= Duration::from_secs(4));
    let heard = phone.requests();
    for request in &heard {
        assert_eq!(request.path, "/kim-topic");
        assert!(!request.text().contains("diary"), "{}", request.text());
        assert!(!request.text().contains(&lee_id), "{}", request.text());
    }
    assert_eq!(titled(&phone, "Backed up").len(), 1, "{heard:?}");
    assert_eq!(
        titled(&phone, "A backup copy is damaged").len(),
        1,
        "{heard:?}"
    );
}
