//! The archive list's search, sort and paging (`q`, `sort`, `order`,
//! `limit`, `after`), the folder path a folder upload gives an archive
//! (`relative_path` -> `path`), and bulk actions
//! (`POST /api/v1/archives/bulk`), each id answered as the single action
//! would, another user's archive included (issue 28, item 7).

use base64::Engine as _;
use serde_json::{json, Value};

use crate::remote_engine::wait_state;
use crate::support::{encode, Client, TestServer};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| a["name"].as_str().expect("a name").to_string())
        .collect()
}

/// Every page of `path`, following the `Link` headers; the names in order.
fn walk(client: &Client, path: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut next = Some(path.to_string());
    for _ in 0..50 {
        let Some(path) = next.take() else {
            return all;
        };
        let resp = client.get(&path);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        all.extend(names(&resp.json()));
        next = resp.header("Link").map(|link| {
            let start = link.find('<').expect("<") + 1;
            let end = link.find('>').expect(">");
            assert!(link.ends_with("rel=\"next\""), "{link}");
            link[start..end].to_string()
        });
    }
    panic!("more than 50 pages");
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn upload_at(client: &Client, name: &str, relative_path: Option<&str>, size: usize) -> Value {
    let mut path = format!(
        "/api/v1/archives?name={}&filename={}.jpg",
        encode(name),
        encode(name)
    );
    if let Some(relative) = relative_path {
        path.push_str(&format!("&relative_path={}", encode(relative)));
    }
    let resp = client.request("PUT", &path, &[], Some(&vec![7u8; size]));
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()
}

#[test]
fn search_sort_and_order_page_through_the_callers_archives() {
    let server = TestServer::start();
    let admin = server.admin();
    let kim = server.member("kim");
    // Created one after another: the creation order is the upload order.
    let uploads = [
        ("beach", Some("Holiday 2024/day 1/beach.jpg"), 300),
        ("Alps", Some("Holiday 2024\\day 2\\alps.jpg"), 100),
        ("receipt", None, 500),
        ("alpaca", Some("zoo/alpaca.jpg"), 200),
        ("Zebra", Some("zoo/../zoo/./zebra.jpg"), 400),
    ];
    for (name, relative, size) in uploads {
        upload_at(&kim, name, relative, size);
    }
    // Someone else's archive never shows in kim's lists, searched or not.
    upload_at(&admin, "alpine", Some("Holiday 2024/x.jpg"), 50);

    // Newest first: uploads in the same second are ordered by id, so the
    // order is read back and checked against the creation times.
    let list = kim.get("/api/v1/archives").json();
    let newest = names(&list);
    let mut sorted = newest.clone();
    sorted.sort();
    assert_eq!(sorted, ["Alps", "Zebra", "alpaca", "beach", "receipt"]);
    let times: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["created_at"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let path_of = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == json!(name))
            .unwrap()["path"]
            .clone()
    };
    assert_eq!(path_of("beach"), json!("Holiday 2024/day 1"));
    assert_eq!(path_of("Alps"), json!("Holiday 2024/day 2"));
    assert_eq!(path_of("Zebra"), json!("zoo"));
    assert_eq!(path_of("receipt"), Value::Null);
    let newest_of = |wanted: &[&str]| -> Vec<String> {
        newest
            .iter()
            .filter(|name| wanted.contains(&name.as_str()))
            .cloned()
            .collect()
    };
    let mut oldest = newest.clone();
    oldest.reverse();

    for (query, expected) in [
        (
            "sort=name",
            strings(&["alpaca", "Alps", "beach", "receipt", "Zebra"]),
        ),
        (
            "sort=name&order=desc",
            strings(&["Zebra", "receipt", "beach", "Alps", "alpaca"]),
        ),
        (
            "sort=size",
            strings(&["receipt", "Zebra", "beach", "alpaca", "Alps"]),
        ),
        (
            "sort=size&order=asc",
            strings(&["Alps", "alpaca", "beach", "Zebra", "receipt"]),
        ),
        ("sort=created&order=asc", oldest.clone()),
        ("sort=created", newest.clone()),
        // The name, the filename and the folder path, ignoring case.
        ("q=ALP", newest_of(&["alpaca", "Alps"])),
        ("q=holiday%202024&sort=name", strings(&["Alps", "beach"])),
        ("q=receipt.jpg", strings(&["receipt"])),
        ("q=ZOO&sort=size&order=asc", strings(&["alpaca", "Zebra"])),
        ("q=nothing-like-this", vec![]),
    ] {
        for limit in [1, 2, 1000] {
            let path = format!("/api/v1/archives?{query}&limit={limit}");
            assert_eq!(walk(&kim, &path), expected, "{path}");
        }
    }
    // The next-page link keeps the search and the order.
    let resp = kim.get("/api/v1/archives?q=a&sort=name&limit=2");
    let link = resp.header("Link").expect("a next page").to_string();
    assert!(link.contains("q=a") && link.contains("sort=name"), "{link}");

    for (query, words) in [
        ("sort=age", "sort must be created, name or size."),
        ("order=up", "order must be asc or desc."),
        (
            "sort=name&after=zz-0123456789abcdef0123456789abcdef",
            "after is not a cursor",
        ),
    ] {
        let resp = kim.get(&format!("/api/v1/archives?{query}"));
        assert_eq!(resp.status, 400, "{query}");
        assert!(
            resp.message().contains(words),
            "{query}: {}",
            resp.message()
        );
    }
}

#[test]
fn a_tus_upload_keeps_its_folder_path() {
    let server = TestServer::start();
    let admin = server.admin();
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let metadata = format!(
        "name {},filename {},relative_path {}",
        b64("beach.jpg"),
        b64("beach.jpg"),
        b64("Photos <2024>/Été/beach.jpg")
    );
    let resp = admin.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "3"),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let location = resp.header("Location").unwrap().to_string();
    let resp = admin.request(
        "PATCH",
        &location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        Some(b"abc"),
    );
    assert_eq!(resp.status, 204, "{}", resp.text());
    let list = admin.get("/api/v1/archives?q=%C3%A9t%C3%A9").json();
    assert_eq!(names(&list), ["beach.jpg"]);
    assert_eq!(list[0]["path"], json!("Photos <2024>/Été"));
}

fn bulk(client: &Client, action: &str, ids: &[&str]) -> Vec<Value> {
    let resp = client.post_json(
        "/api/v1/archives/bulk",
        &json!({"action": action, "ids": ids}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let results = resp.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), ids.len());
    for (result, id) in results.iter().zip(ids) {
        assert_eq!(result["id"], json!(id));
        let message = result["message"].as_str().unwrap();
        assert!(message.ends_with('.'), "a sentence: {message}");
    }
    results
}

#[test]
fn bulk_actions_answer_each_archive_as_the_single_action_would() {
    let server = TestServer::start();
    let admin = server.admin();
    let kim = server.member("kim");
    let id = |archive: Value| archive["id"].as_str().unwrap().to_string();
    let first = id(upload_at(&kim, "first", None, 1000));
    let second = id(upload_at(&kim, "second", None, 2000));
    let admins = id(upload_at(&admin, "not kim's", None, 10));
    for archive in [&first, &second] {
        wait_state(&kim, archive, "backed_up");
    }
    wait_state(&admin, &admins, "backed_up");

    // Mixed: one freed, one refused as the single action refuses it, and
    // another user's archive exactly like a missing one.
    let results = bulk(&kim, "uncache", &[&first, &admins, "nonsense"]);
    assert_eq!(results[0]["ok"], json!(true), "{}", results[0]);
    let single = kim.post_json(&format!("/api/v1/archives/{admins}/uncache"), &json!({}));
    assert_eq!(single.status, 404);
    for failed in &results[1..] {
        assert_eq!(failed["ok"], json!(false));
        assert_eq!(failed["message"], json!(single.message()));
    }
    wait_state(&kim, &first, "uncached");
    // Uncached already: refused with the single action's sentence.
    let results = bulk(&kim, "uncache", &[&first, &second]);
    let single = kim.post_json(&format!("/api/v1/archives/{first}/uncache"), &json!({}));
    assert_eq!(single.status, 409);
    assert_eq!(results[0]["ok"], json!(false));
    assert_eq!(results[0]["message"], json!(single.message()));
    assert_eq!(results[1]["ok"], json!(true));
    wait_state(&kim, &second, "uncached");

    let results = bulk(&kim, "cache", &[&first, &second]);
    assert!(
        results.iter().all(|r| r["ok"] == json!(true)),
        "{results:?}"
    );
    wait_state(&kim, &first, "backed_up");
    wait_state(&kim, &second, "backed_up");

    // Delete: to the trash, as DELETE does; the admin's archive is untouched.
    let results = bulk(&kim, "delete", &[&first, &admins]);
    assert_eq!(results[0]["ok"], json!(true));
    assert_eq!(results[1]["ok"], json!(false));
    let trash = kim.get("/api/v1/archives?trash=true").json();
    assert_eq!(names(&trash), ["first"]);
    assert_eq!(names(&kim.get("/api/v1/archives").json()), ["second"]);
    assert_eq!(
        admin.get(&format!("/api/v1/archives/{admins}")).json()["state"],
        json!("backed_up")
    );

    for body in [
        json!({"action": "shred", "ids": [&second]}),
        json!({"action": "delete"}),
        json!({"action": "delete", "ids": vec![second.clone(); 1001]}),
    ] {
        let resp = kim.post_json("/api/v1/archives/bulk", &body);
        assert_eq!(resp.status, 400, "{body}");
        assert!(resp.message().ends_with('.'), "{}", resp.message());
    }
    assert_eq!(names(&kim.get("/api/v1/archives").json()), ["second"]);
}
