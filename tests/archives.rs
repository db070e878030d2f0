//! Archives over real HTTP: one-shot upload, parts, list, detail, rename,
//! download with Range, delete, per-user isolation and hostile names.

use serde_json::{json, Value};

use crate::support::{closed_upload_window, random_bytes, sha256_hex, TestServer};

fn parts_of(detail: &Value) -> Vec<Value> {
    detail["parts"].as_array().unwrap().clone()
}

#[test]
fn upload_cuts_content_defined_parts_and_downloads_bit_exact() {
    let server = TestServer::start();
    let admin = server.admin();
    // The engine would back the parts up at once (to <data>/remote); a
    // closed upload window keeps them local while they are looked at.
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let data = random_bytes(21 * 1024 * 1024 + 123, 1);
    let archive = admin.upload_ok("holiday", &data);
    assert_eq!(archive["size"], data.len());
    assert_eq!(archive["sha256"], sha256_hex(&data));
    assert_eq!(archive["state"], "local");

    let detail = admin
        .get(&format!(
            "/api/v1/archives/{}",
            archive["id"].as_str().unwrap()
        ))
        .json();
    let parts = parts_of(&detail);
    assert_eq!(parts.len() as u64, detail["parts_total"].as_u64().unwrap());
    assert!(
        parts.len() >= 2,
        "21 MiB of random data makes several parts"
    );
    let mut offset = 0usize;
    for (index, part) in parts.iter().enumerate() {
        assert_eq!(part["index"], index);
        assert_eq!(part["offset"], offset);
        let size = part["size"].as_u64().unwrap() as usize;
        assert!(size <= 16 * 1024 * 1024);
        if index + 1 < parts.len() {
            assert!(
                size >= 1024 * 1024,
                "only the last part may be under the minimum"
            );
        }
        assert_eq!(part["sha256"], sha256_hex(&data[offset..offset + size]));
        assert_eq!(part["remote"], false);
        offset += size;
    }
    assert_eq!(offset, data.len());
    // No second copy: the archive is one file of exactly the upload's size.
    let file = server
        .data_dir()
        .join("archives")
        .join(archive["id"].as_str().unwrap());
    assert_eq!(std::fs::metadata(file).unwrap().len(), data.len() as u64);

    let content = admin.get(&format!(
        "/api/v1/archives/{}/content",
        archive["id"].as_str().unwrap()
    ));
    assert_eq!(content.status, 200);
    assert_eq!(sha256_hex(&content.body), sha256_hex(&data));
}

#[test]
fn identical_uploads_get_identical_parts() {
    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(9 * 1024 * 1024, 2);
    let mut edited = data.clone();
    edited.splice(100..100, b"a few inserted bytes".iter().copied());
    let first = admin.upload_ok("v1", &data);
    let second = admin.upload_ok("v2", &edited);
    let parts = |a: &Value| -> Vec<String> {
        parts_of(
            &admin
                .get(&format!("/api/v1/archives/{}", a["id"].as_str().unwrap()))
                .json(),
        )
        .iter()
        .map(|p| p["sha256"].as_str().unwrap().to_string())
        .collect()
    };
    let (first, second) = (parts(&first), parts(&second));
    assert_ne!(first[0], second[0], "the edited first part differs");
    assert_eq!(
        first[1..],
        second[1..],
        "content-defined cuts re-synchronise after an insertion"
    );
}

#[test]
fn list_is_newest_first_and_rename_works() {
    let server = TestServer::start();
    let admin = server.admin();
    let a = admin.upload_ok("first", b"one");
    let b = admin.upload_ok("second", b"two");
    let list = admin.get("/api/v1/archives").json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(list[0]["created_at"].as_i64() >= list[1]["created_at"].as_i64());
    assert!(ids.contains(&a["id"].as_str().unwrap()) && ids.contains(&b["id"].as_str().unwrap()));
    for key in [
        "id",
        "name",
        "filename",
        "size",
        "sha256",
        "state",
        "parts_total",
        "parts_remote",
        "created_at",
    ] {
        assert!(list[0].get(key).is_some(), "{key} missing");
    }

    let path = format!("/api/v1/archives/{}", a["id"].as_str().unwrap());
    let renamed = admin.send_json("PATCH", &path, &json!({"name": "renamed 📷"}));
    assert_eq!(renamed.json()["name"], "renamed 📷");
    let bad = admin.send_json("PATCH", &path, &json!({"name": "two\nlines"}));
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("line breaks"));
    assert_eq!(admin.get(&path).json()["name"], "renamed 📷");
}

#[test]
fn hostile_names_are_kept_safely_or_refused_with_a_sentence() {
    let server = TestServer::start();
    let admin = server.admin();
    let hostile = "\"quotes\" <b>&amp;</b> ../../etc/passwd 📷🎉";
    let archive = admin.upload("\"<script>alert(1)</script>&", hostile, b"x");
    assert_eq!(archive.status, 201, "{}", archive.text());
    let archive = archive.json();
    assert_eq!(archive["name"], "\"<script>alert(1)</script>&");
    assert_eq!(
        archive["filename"], "passwd 📷🎉",
        "path components are dropped"
    );
    let id = archive["id"].as_str().unwrap();

    // The pages escape everything.
    for page in ["/".to_string(), format!("/archives/{id}")] {
        let html = admin.get(&page).text();
        assert!(
            !html.contains("<script>alert(1)</script>"),
            "{page} must escape the name"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;"),
            "{page}"
        );
    }

    // The download carries a safe Content-Disposition.
    let newline = admin.upload("n", "line\r\nbreak\".txt", b"y").json();
    let resp = admin.get(&format!(
        "/api/v1/archives/{}/content",
        newline["id"].as_str().unwrap()
    ));
    let disposition = resp.header("Content-Disposition").unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"line__break_.txt\"; filename*=UTF-8''line__break%22.txt"
    );

    // Refused: a name with a newline, a 10 KB name.
    let newline_name = admin.upload("two\nlines", "a.txt", b"z");
    assert_eq!(newline_name.status, 400);
    assert!(newline_name.message().contains("line breaks"));
    let long = admin.upload(&"n".repeat(10_000), "a.txt", b"z");
    assert_eq!(long.status, 400);
    assert!(long.message().contains("at most 200"));
    // A 10 KB filename is shortened, not refused.
    let long_file = admin.upload("long filename", &"f".repeat(10_000), b"z");
    assert_eq!(long_file.json()["filename"].as_str().unwrap().len(), 255);
    assert_eq!(
        admin
            .get("/api/v1/archives")
            .json()
            .as_array()
            .unwrap()
            .len(),
        3,
        "refused uploads left nothing"
    );
}

#[test]
fn another_users_archive_is_exactly_like_a_missing_one() {
    let server = TestServer::start();
    let admin = server.admin();
    let bob = server.member("bob");
    let archive = admin.upload_ok("private", b"admin's secret bytes");
    let id = archive["id"].as_str().unwrap();
    let missing = "0123456789abcdef0123456789abcdef";
    assert_eq!(bob.get("/api/v1/archives").json(), json!([]));
    for target in [id, missing] {
        let base = format!("/api/v1/archives/{target}");
        let answers = [
            bob.get(&base),
            bob.send_json("PATCH", &base, &json!({"name": "mine now"})),
            bob.get(&format!("{base}/content")),
            bob.delete(&base),
            bob.get(&format!("/archives/{target}")),
            bob.post_form(
                &format!("/archives/{target}/delete"),
                &[("csrf_token", bob.csrf.as_deref().unwrap())],
            ),
        ];
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![404; 6], "{target}");
        assert_eq!(
            answers[0].json(),
            json!({"error": "not_found", "message": "No such archive."})
        );
    }
    let still = admin.get(&format!("/api/v1/archives/{id}"));
    assert_eq!(
        (still.status, still.json()["name"].as_str()),
        (200, Some("private"))
    );
}

#[test]
fn ranges_are_served_and_malformed_ones_handled() {
    let server = TestServer::start();
    let admin = server.admin();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let archive = admin.upload_ok("ranged", &data);
    let path = format!(
        "/api/v1/archives/{}/content",
        archive["id"].as_str().unwrap()
    );
    let get = |range: &str| admin.request("GET", &path, &[("Range", range)], None);

    let part = get("bytes=10-19");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[10..20]);
    assert_eq!(part.header("Content-Range"), Some("bytes 10-19/1000"));
    let tail = get("bytes=-5");
    assert_eq!((tail.status, &tail.body[..]), (206, &data[995..]));
    let open = get("bytes=990-");
    assert_eq!((open.status, &open.body[..]), (206, &data[990..]));

    let outside = get("bytes=5000-");
    assert_eq!(outside.status, 416);
    assert_eq!(outside.header("Content-Range"), Some("bytes */1000"));
    assert!(outside.message().contains("1000 bytes"));
    for malformed in [
        "bytes=abc",
        "bytes=9-3",
        "pages=1-2",
        "bytes=1-2,4-5",
        "bytes=--1",
    ] {
        let whole = get(malformed);
        assert_eq!(
            (whole.status, whole.body.len()),
            (200, 1000),
            "{malformed} is ignored, as RFC 9110 says"
        );
    }
}

#[test]
fn delete_removes_record_and_file() {
    let server = TestServer::start();
    let admin = server.admin();
    let archive = admin.upload_ok("doomed", b"bye");
    let id = archive["id"].as_str().unwrap();
    let file = server.data_dir().join("archives").join(id);
    assert!(file.exists());
    // The page asks first, for the trash and then for good.
    let confirm = admin.get(&format!("/archives/{id}/delete"));
    assert!(confirm.text().contains("Move to trash"));
    assert!(file.exists(), "showing the confirmation deletes nothing");
    assert_eq!(admin.delete(&format!("/api/v1/archives/{id}")).status, 202);
    assert!(file.exists(), "the trash keeps the local file");
    let confirm = admin.get(&format!("/archives/{id}/delete"));
    assert!(confirm.text().contains("Delete for good"));
    assert_eq!(
        admin
            .delete(&format!("/api/v1/archives/{id}?purge=true"))
            .status,
        202
    );
    // The local file goes at once; the record once the remote copies are gone.
    assert!(!file.exists());
    crate::support::wait_until(std::time::Duration::from_secs(60), || {
        admin.get(&format!("/api/v1/archives/{id}")).status == 404
    });
}

#[test]
fn uploads_beyond_free_space_get_507_before_writing() {
    let server = TestServer::start();
    let admin = server.admin();
    // Keep a reserve larger than the disk: nothing fits.
    let mut settings = admin.get("/api/v1/admin/settings").json();
    settings["free_space_reserve_bytes"] = json!(u64::MAX / 2);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );
    let refused = admin.upload("too big", "big.bin", &random_bytes(2 * 1024 * 1024, 3));
    assert_eq!(refused.status, 507);
    assert!(
        refused.message().contains("can be used"),
        "{}",
        refused.message()
    );
    let tus = admin.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", "1000000000000"),
        ],
        None,
    );
    assert_eq!(tus.status, 507);
    assert_eq!(
        std::fs::read_dir(server.data_dir().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(admin.get("/api/v1/archives").json(), json!([]));
    // The server is still fine afterwards.
    settings["free_space_reserve_bytes"] = json!(0);
    assert_eq!(
        admin
            .send_json("PUT", "/api/v1/admin/settings", &settings)
            .status,
        200
    );
    assert_eq!(admin.upload("small", "s.bin", b"fits").status, 201);
}

#[test]
fn pages_render_for_a_signed_in_user() {
    let server = TestServer::start();
    let admin = server.admin();
    let archive = admin.upload_ok("shown", b"page bytes");
    let id = archive["id"].as_str().unwrap();
    for (path, expected) in [
        ("/".to_string(), "Your archives"),
        ("/archives/new".to_string(), "Choose files"),
        (format!("/archives/{id}"), "SHA-256"),
        ("/account".to_string(), "Change password"),
        ("/admin/settings".to_string(), "Appliance settings"),
    ] {
        let page = admin.get(&path);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.text().contains(expected), "{path}");
    }
    let detail = admin.get(&format!("/archives/{id}")).text();
    assert!(
        detail.contains("Technical details") && detail.contains("Parts stored"),
        "the parts behind the technical details"
    );
    let missing = admin.get("/archives/0123456789abcdef0123456789abcdef");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("No such archive."));
}

/// The path of a `Link: <path>; rel="next"` header, if any.
fn next_page(resp: &crate::support::Resp) -> Option<String> {
    let link = resp.header("Link")?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link.split_once('<')?.1.split_once('>')?.0.to_string())
}

#[test]
fn archive_pages_never_skip_or_repeat_while_archives_are_added() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let mut before: Vec<String> = (0..7)
        .map(|n| {
            admin.upload_ok(&format!("a{n}"), &[n as u8; 10])["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut seen = Vec::new();
    let mut path = Some("/api/v1/archives?limit=2".to_string());
    let mut pages = 0;
    while let Some(page) = path.take() {
        pages += 1;
        assert!(pages <= 20, "paging does not end");
        let resp = admin.get(&page);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let list = resp.json();
        let list = list.as_array().unwrap();
        assert!(list.len() <= 2, "a page holds at most `limit` archives");
        seen.extend(list.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        // Another archive arrives between two pages.
        admin.upload_ok(&format!("new{pages}"), b"later");
        path = next_page(&resp);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "an archive was repeated: {seen:?}"
    );
    before.retain(|id| !seen.contains(id));
    assert!(before.is_empty(), "archives were skipped: {before:?}");
    // Newest first, as the whole list says.
    let whole = admin.get("/api/v1/archives").json();
    let whole: Vec<&str> = whole
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let order: Vec<&str> = whole
        .iter()
        .copied()
        .filter(|id| seen.iter().any(|s| s == id))
        .collect();
    assert_eq!(order, seen);

    assert_eq!(admin.get("/api/v1/archives?limit=0").status, 400);
    assert_eq!(admin.get("/api/v1/archives?after=nonsense").status, 400);
    let huge = admin.get("/api/v1/archives?limit=1000000");
    assert_eq!(huge.status, 200);
    assert!(next_page(&huge).is_none());
}

#[test]
fn parts_are_paged_in_order_on_the_api_and_the_detail_page() {
    let server = TestServer::start();
    let admin = server.admin();
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let archive = admin.upload_ok("parts", &random_bytes(12 * 1024 * 1024, 5));
    let id = archive["id"].as_str().unwrap();
    let detail = admin.get(&format!("/api/v1/archives/{id}")).json();
    let all = parts_of(&detail);
    assert!(all.len() >= 2, "12 MiB of random data makes several parts");
    let mut paged = Vec::new();
    let mut path = Some(format!("/api/v1/archives/{id}/parts?limit=1"));
    while let Some(page) = path.take() {
        assert!(paged.len() <= all.len(), "paging does not end");
        let resp = admin.get(&page);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let list = resp.json().as_array().unwrap().clone();
        assert_eq!(list.len(), 1);
        paged.extend(list);
        path = next_page(&resp);
    }
    assert_eq!(paged, all);
    let rest = admin
        .get(&format!("/api/v1/archives/{id}/parts?after=0"))
        .json();
    assert_eq!(rest.as_array().unwrap()[..], all[1..]);
    // Another user's archive answers like a missing one.
    let member = server.member("pat");
    assert_eq!(
        member.get(&format!("/api/v1/archives/{id}/parts")).status,
        404
    );
    // The detail page pages its part rows too.
    let page = admin.get(&format!("/archives/{id}?after=0")).text();
    assert!(!page.contains("data-part-index=\"0\""), "{page}");
    assert!(page.contains("data-part-index=\"1\""));
}
