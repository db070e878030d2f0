//! More than one destination (issue 24), the real binary over real HTTP
//! against two signature-checking S3 servers (s3s-fs) and a folder: a
//! destination added through `POST /api/v1/admin/remotes` catches up with
//! what is backed up already and holds the same objects; one destination
//! down while the other completes keeps the archive `uploading` and its
//! uncache refused, naming the destination, until it is back; removing a
//! destination leaves its bucket as it is; `piarchive recover` from the
//! second destination alone gives every archive back bit-exact; the Remote
//! page adds a folder destination after its confirmation, in Chromium.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::browser::{log_in, Browser};
use crate::recovery::{
    appliance_a, catalog_users, check_recovered, login, open_remote, recovered_by_cli,
};
use crate::remote_engine::{archive, download, s3_json, set_remote, wait_state, LIMIT};
use crate::support::receiver::{Received, Receiver};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{files_under, random_bytes, wait_until, Client, TestServer};

const SIZE: usize = 5 * 1024 * 1024 + 321;
const NAME: &str = "Grandpa's NAS <2> & \"co\"";

/// `text` as a page shows it (maud's escaping).
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `settings` with a `name`: the body of `POST /api/v1/admin/remotes`.
fn named(settings: &Value, name: &str) -> Value {
    let mut body = settings.clone();
    body["name"] = json!(name);
    body
}

/// Adds a destination; returns the answer (the destination and `plan`).
fn add_destination(admin: &Client, settings: &Value, name: &str) -> Value {
    let resp = admin.post_json("/api/v1/admin/remotes", &named(settings, name));
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert!(!resp.text().contains(SECRET_KEY), "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["name"], name, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("d_"), "{body}");
    body
}

fn destinations(admin: &Client) -> Vec<Value> {
    let resp = admin.get("/api/v1/admin/remotes");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!resp.text().contains(SECRET_KEY), "{}", resp.text());
    resp.json().as_array().unwrap().clone()
}

/// Uploads `data` and waits until it is backed up.
fn backed_up(client: &Client, name: &str, data: &[u8]) -> String {
    let id = client.upload_ok(name, data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(client, &id, "backed_up");
    id
}

/// Whether every copy of the archive is complete, with every part.
fn all_copies_complete(record: &Value, count: usize) -> bool {
    let copies = record["copies"].as_array().unwrap();
    copies.len() == count
        && copies.iter().all(|copy| {
            copy["state"] == "complete" && copy["parts_remote"] == record["parts_total"]
        })
}

/// Waits until the archive is backed up on all `count` destinations.
fn wait_complete_everywhere(client: &Client, id: &str, count: usize) -> Value {
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = archive(client, id);
        last["state"] == "backed_up" && all_copies_complete(&last, count)
    });
    last
}

/// The `remote_unreachable` notices a webhook got, in order.
fn outages(hook: &Receiver) -> Vec<Value> {
    hook.requests()
        .iter()
        .map(Received::json)
        .filter(|body| body["event"] == "remote_unreachable")
        .collect()
}

/// Every file under `dir` with its bytes: a bucket's objects as s3s-fs
/// keeps them.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path.strip_prefix(dir).unwrap().display().to_string(), bytes)
        })
        .collect()
}

/// The object names under `prefix/parts` of a bucket folder.
fn part_names(bucket_prefix: &Path) -> Vec<String> {
    let mut names: Vec<String> = files_under(&bucket_prefix.join("parts"))
        .iter()
        .filter(|path| !path.to_string_lossy().contains(".s3s"))
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_added_destination_catches_up_and_removing_it_leaves_its_bucket() {
    let first = S3TestServer::start();
    let second = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    let main = s3_json(&first.endpoint, "main", SECRET_KEY);
    set_remote(&admin, &main);
    let one = random_bytes(SIZE, 71);
    let two = random_bytes(SIZE / 3, 72);
    let one_id = backed_up(&admin, "one", &one);
    let two_id = backed_up(&admin, "two", &two);
    assert_eq!(
        archive(&admin, &one_id)["copies"].as_array().unwrap().len(),
        1
    );

    // Refusals first: no name, the main storage again, the main one removed.
    let copy = s3_json(&second.endpoint, "copy", SECRET_KEY);
    let resp = admin.post_json("/api/v1/admin/remotes", &copy);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.message().contains("name"), "{}", resp.text());
    let resp = admin.post_json("/api/v1/admin/remotes", &named(&main, "again"));
    assert_eq!(resp.status, 409, "{}", resp.text());
    let resp = admin.delete("/api/v1/admin/remotes/main");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(destinations(&admin).len(), 1);

    // The confirmation counts what is already backed up.
    let added = add_destination(&admin, &copy, NAME);
    let plan = &added["plan"];
    assert_eq!(plan["archives"], 2, "{added}");
    let plaintext = (one.len() + two.len()) as u64;
    let bytes = plan["bytes"].as_u64().unwrap();
    assert!(
        bytes >= plaintext && bytes <= plaintext + plaintext / 50 + 65_536,
        "{added}"
    );
    let message = plan["message"].as_str().unwrap();
    assert!(
        message.contains("2 archives") && message.contains(NAME),
        "{message}"
    );
    let listed = destinations(&admin);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["id"], "main");
    assert_eq!(listed[1]["id"], added["id"]);
    assert_eq!(listed[1]["name"], NAME);
    assert_eq!(listed[1]["kind"], "s3");
    assert_eq!(listed[1]["placement"], "off_site");

    // Both archives catch up: the copy holds the same objects under the
    // same keys, and a manifest of each.
    for id in [&one_id, &two_id] {
        let record = wait_complete_everywhere(&admin, id, 2);
        assert_eq!(record["copies"][0]["remote"], "main", "{record}");
        assert_eq!(record["copies"][1]["remote"], added["id"], "{record}");
        assert_eq!(record["copies"][1]["name"], NAME, "{record}");
        assert_eq!(record["off_site"], true, "{record}");
    }
    let first_prefix = first.object_path("main");
    let second_prefix = second.object_path("copy");
    assert_eq!(part_names(&first_prefix), part_names(&second_prefix));
    assert!(!part_names(&second_prefix).is_empty());
    for id in [&one_id, &two_id] {
        assert!(second_prefix.join("manifests").join(id).is_file(), "{id}");
    }
    assert!(second_prefix.join("config").is_file());
    let home = admin.get("/").text();
    assert!(home.contains("off-site in 2 places"), "{home}");
    let page = admin.get("/admin/remote").text();
    assert!(page.contains("All 2 archives are there."), "{page}");

    // A new archive is backed up only once both have it.
    let three = random_bytes(SIZE / 5, 73);
    let three_id = admin.upload_ok("three", &three)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_complete_everywhere(&admin, &three_id, 2);
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{one_id}/uncache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &one_id, "uncached");

    // Removed: the bucket keeps every object, even as archives are purged
    // and added afterwards.
    let resp = admin.delete(&format!(
        "/api/v1/admin/remotes/{}",
        added["id"].as_str().unwrap()
    ));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let removed = resp.json();
    assert_eq!(removed["removed"], added["id"]);
    assert!(
        removed["message"]
            .as_str()
            .unwrap()
            .contains("left as it is"),
        "{removed}"
    );
    let kept = snapshot(second.root());
    assert!(kept.len() >= 5, "{:?}", kept.keys());
    assert_eq!(destinations(&admin).len(), 1);
    let resp = admin.delete(&format!("/api/v1/archives/{two_id}?purge=true"));
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_until(LIMIT, || {
        admin.get(&format!("/api/v1/archives/{two_id}")).status == 404
    });
    backed_up(&admin, "four", &random_bytes(SIZE / 7, 74));
    let record = archive(&admin, &three_id);
    assert_eq!(record["copies"].as_array().unwrap().len(), 1, "{record}");
    assert!(
        snapshot(second.root()) == kept,
        "the removed destination's bucket changed"
    );
    let resp = admin.delete(&format!(
        "/api/v1/admin/remotes/{}",
        added["id"].as_str().unwrap()
    ));
    assert_eq!(resp.status, 404, "{}", resp.text());
}

#[test]
fn one_destination_down_keeps_the_archive_uploading_until_it_is_back() {
    let first = S3TestServer::start();
    let mut second = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&first.endpoint, "main", SECRET_KEY));
    let added = add_destination(&admin, &s3_json(&second.endpoint, "copy", SECRET_KEY), NAME);
    assert_eq!(added["plan"]["archives"], 0, "{added}");
    let hook = Receiver::start();
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/notifications",
        &json!({"channels": [{"kind": "webhook", "url": format!("{}/hook", hook.base)}],
                "remote_unreachable_after_seconds": 1}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());

    second.stop();
    let data = random_bytes(SIZE, 81);
    let id = admin.upload_ok("photos", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The main destination completes; the copy waits for its server, and
    // the archive stays `uploading`, its uncache refused by name.
    let mut record = Value::Null;
    wait_until(LIMIT, || {
        record = archive(&admin, &id);
        record["copies"][0]["state"] == "complete"
    });
    assert_eq!(record["state"], "uploading", "{record}");
    assert_eq!(record["parts_remote"], record["parts_total"], "{record}");
    assert_ne!(record["copies"][1]["state"], "complete", "{record}");
    assert_eq!(record["copies"][1]["parts_remote"], 0, "{record}");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert_eq!(resp.json()["error"], "not_backed_up", "{}", resp.text());
    assert!(
        resp.message().contains(&format!(
            "not yet on every destination (still being copied to {NAME})"
        )),
        "{}",
        resp.text()
    );
    // Its lasting problem is shown once the retries have failed a few times.
    wait_until(LIMIT * 2, || {
        record = archive(&admin, &id);
        record["copies"][1]["state"] == "unreachable"
    });
    assert_eq!(record["state"], "uploading", "{record}");
    let listed = destinations(&admin);
    assert!(listed[1]["error"].is_string(), "{listed:?}");
    assert!(listed[0]["error"].is_null(), "{listed:?}");
    let page = admin.get(&format!("/archives/{id}")).text();
    let words = format!(
        ": complete. On {}: 0 %, waiting for it to come back.",
        html(NAME)
    );
    assert!(page.contains(&words), "{words} not in {page}");
    let dashboard = admin.get("/admin").text();
    let problem = format!(
        "{} cannot be reached: nothing is being copied there.",
        html(NAME)
    );
    assert!(dashboard.contains(&problem), "{problem} not in {dashboard}");
    // The box says so too: the red LED is on, the reason names it.
    let mut device = Value::Null;
    wait_until(LIMIT, || {
        device = admin.get("/api/v1/admin/device").json();
        device["red"] != "off"
    });
    let reason = device["status"]["attention"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains(&format!("{NAME} cannot be reached")),
        "{device}"
    );
    // And its own notice, named; the main destination has none.
    wait_until(LIMIT, || !outages(&hook).is_empty());
    let notice = outages(&hook)[0].clone();
    assert_eq!(
        notice["title"],
        format!("Backups cannot reach {NAME}"),
        "{notice}"
    );
    assert_eq!(notice["resolved"], false, "{notice}");
    assert_eq!(notice["severity"], "critical", "{notice}");

    second.resume();
    wait_complete_everywhere(&admin, &id, 2);
    assert!(destinations(&admin)[1]["error"].is_null());
    wait_until(LIMIT, || {
        admin.get("/api/v1/admin/device").json()["red"] == "off"
    });
    wait_until(LIMIT, || outages(&hook).len() == 2);
    let notices = outages(&hook);
    assert_eq!(
        notices[1]["title"],
        format!("Backups reach {NAME} again"),
        "{notices:?}"
    );
    assert_eq!(notices[1]["resolved"], true, "{notices:?}");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "uncached");
    let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    wait_state(&admin, &id, "backed_up");
    assert!(
        download(&admin, &id) == data,
        "the file came back different"
    );
}

#[test]
fn recovery_from_the_second_destination_alone_is_bit_exact() {
    let first = S3TestServer::start();
    let second = S3TestServer::start();
    let main = serde_json::to_value(first.settings("family")).unwrap();
    let copy = serde_json::to_value(second.settings("second")).unwrap();
    let (appliance, originals) = appliance_a(&main);
    let alice = login(&appliance, "alice");
    let added = add_destination(&alice, &copy, "second bucket");
    assert_eq!(added["plan"]["archives"], originals.len(), "{added}");
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = alice.get("/api/v1/admin/archives?limit=100").json();
        let list = last.as_array().unwrap();
        list.len() == originals.len()
            && list
                .iter()
                .all(|record| record["state"] == "backed_up" && all_copies_complete(record, 2))
    });
    let remote = open_remote(&copy);
    wait_until(LIMIT, || {
        let users = catalog_users(remote.as_ref());
        users.contains(&"alice".to_string()) && users.contains(&"bob".to_string())
    });
    // The first bucket and the appliance are gone: only the second remains.
    drop(appliance);
    drop(first);
    let recovered = recovered_by_cli(&copy, originals.len());
    check_recovered(&recovered, &originals);
}

#[test]
fn the_remote_page_adds_a_folder_destination_after_its_confirmation() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(SIZE / 2, 91);
    let id = backed_up(&admin, "holiday", &data);
    let usb = tempfile::tempdir().unwrap();
    let folder = usb.path().join("piarchive copy");

    let browser = Browser::start();
    let site = &server.base;
    log_in(&browser, site, "admin", "admin password");
    browser.goto(&format!("{site}/admin/remote"));
    browser.find("#destinations li.destination[data-destination-id='main']");
    browser.type_into("#add-destination input[name=name]", NAME);
    browser.click("#add-destination input[name=kind][value=dir]");
    browser.type_into(
        "#add-destination input[name=path]",
        &folder.display().to_string(),
    );
    browser.click("#add-destination button[value=plan]");
    browser.wait_for("the confirmation", |b| b.find_all("#destination-plan") == 1);
    let plan = browser
        .script("return document.getElementById('destination-plan').textContent;")
        .as_str()
        .unwrap()
        .to_string();
    assert!(plan.contains("This copies 1 archive ("), "{plan}");
    assert!(plan.contains(NAME), "{plan}");
    // Nothing is added before the confirmation.
    assert_eq!(destinations(&admin).len(), 1);
    browser.check_page("destinations-1-confirm");
    browser.click("#confirm-destination button[value=add]");
    browser.wait_for("the destination added", |b| {
        b.find_all("#destinations li.destination") == 2
    });
    assert!(browser.text().contains(&format!("Added {NAME}.")));
    browser.script("document.getElementById('destinations').scrollIntoView(); return 1;");
    browser.check_page("destinations-2-added");
    let listed = destinations(&admin);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["kind"], "dir");
    assert_eq!(listed[1]["path"], folder.display().to_string());
    wait_complete_everywhere(&admin, &id, 2);
    assert!(folder.join("manifests").join(&id).is_file());

    // Removing asks first, then leaves the folder as it is.
    let before = snapshot(&folder);
    let dest_id = listed[1]["id"].as_str().unwrap().to_string();
    browser.goto(&format!("{site}/admin/remote"));
    browser.click(&format!("a[href='/admin/remotes/{dest_id}/remove']"));
    browser.wait_for("the question", |b| b.path().ends_with("/remove"));
    assert!(browser.text().contains("nothing there is deleted"));
    browser.check_page("destinations-3-remove");
    assert_eq!(destinations(&admin).len(), 2);
    browser.click(&format!(
        "form[action='/admin/remotes/{dest_id}/remove'] button[type=submit]"
    ));
    // (The question says "left as it is" too: wait for the answer's words.)
    browser.wait_for("removed", |b| {
        b.text().contains(&format!("Removed {NAME} (folder "))
    });
    assert!(browser
        .text()
        .contains("what is stored there was left as it is"));
    assert_eq!(destinations(&admin).len(), 1);
    assert!(snapshot(&folder) == before, "the folder changed");
}
