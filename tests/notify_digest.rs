//! The weekly digest end to end, with its period shortened through the
//! config file (`digest_period_seconds`): a webhook receiver gets one
//! summary a period naming what each member backed up.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::remote_engine::{s3_json, set_remote, wait_state};
use crate::support::receiver::{Received, Receiver};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{random_bytes, wait_until, TestServer};

const LIMIT: Duration = Duration::from_secs(180);
const PERIOD: u64 = 12;

fn digests(receiver: &Receiver) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(Received::json)
        .filter(|body| body["event"] == "digest")
        .collect()
}

#[test]
fn the_digest_says_what_each_member_backed_up_once_a_period() {
    let s3 = S3TestServer::start();
    let mut server = TestServer::start();
    drop(server.admin());
    std::fs::write(
        server.data_dir().join("piarchive.toml"),
        format!("digest_period_seconds = {PERIOD}\n"),
    )
    .unwrap();
    server.restart();
    let admin = {
        let mut client = server.client();
        assert_eq!(client.login("admin", "admin password").status, 200);
        client
    };
    set_remote(&admin, &s3_json(&s3.endpoint, "weekly", SECRET_KEY));
    let kim = server.member("kim");
    let hook = Receiver::start();
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/notifications",
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)}],
                "digest": "weekly"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["digest"], "weekly");
    let turned_on = Instant::now();
    let id = kim.upload_ok("Kim's garden", &random_bytes(200_000, 51))["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&kim, &id, "backed_up");
    wait_until(LIMIT, || !digests(&hook).is_empty());
    assert!(turned_on.elapsed() >= Duration::from_secs(PERIOD - 1));
    let first = &digests(&hook)[0];
    assert_eq!(first["title"], "Weekly summary", "{first}");
    let text = first["message"].as_str().unwrap();
    for words in [
        "- kim: 1 new archive(s), 195 KiB",
        "- admin: 0 new archive(s), 0 B",
        "Backed up to the storage: 1 archive(s), 195 KiB",
        "Only on the box (not backed up yet): 0 archive(s)",
        "free of",
    ] {
        assert!(text.contains(words), "{words:?} not in {text}");
    }
    // The next period starts afresh, and a period brings one digest.
    wait_until(LIMIT, || digests(&hook).len() >= 2);
    let second = digests(&hook)[1]["message"].as_str().unwrap().to_string();
    assert!(second.contains("- kim: 0 new archive(s)"), "{second}");
    let elapsed = turned_on.elapsed().as_secs();
    assert!(
        (digests(&hook).len() as u64) <= elapsed / PERIOD + 1,
        "{elapsed} s"
    );
    // Turned off: no more.
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/notifications",
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)}],
                "digest": "off"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let count = digests(&hook).len();
    let settle = Instant::now();
    wait_until(LIMIT, || {
        settle.elapsed() >= Duration::from_secs(PERIOD + 3)
    });
    assert_eq!(digests(&hook).len(), count);
}
