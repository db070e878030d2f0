//! A full disk at every write site and a failing disk (issue 26, items 4
//! and 5): the real server on a small tmpfs that the test fills, frees and
//! remounts read-only, a small LMDB map, and I/O errors injected with
//! libfiu's `fiu-run`/`fiu-ctrl` (installed by `.ci/run`). Each test checks
//! the answer's status and sentence, that what was stored before still
//! downloads bit-exact, that another user goes on, and that the box recovers
//! once space is freed or the fault lifted. Mounting needs root: without it
//! the tests say so and stop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::mount::{Ext4, Tmpfs};
use crate::support::{random_bytes, wait_until, Client, TestServer};

const MIB: usize = 1 << 20;

/// A server on a tmpfs of `mib` MiB with the admin (reserve 0, backups
/// waiting) and the member `bob`, who stored one archive; `None` when the
/// tmpfs cannot be mounted here (said on stderr).
struct Appliance {
    server: TestServer,
    mount: Tmpfs,
    admin: Client,
    bob: Client,
    bob_data: Vec<u8>,
    bob_archive: String,
}

fn start(mib: u64, wrapper: &[&str]) -> Option<Appliance> {
    let mount = Tmpfs::mount(mib << 20)?;
    let server = TestServer::start_at(mount.path.join("data"), wrapper);
    let admin = server.admin();
    admin.put_settings(|settings| {
        settings["free_space_reserve_bytes"] = json!(0);
        settings["registration_open"] = json!(true);
        settings["upload_window"] = crate::support::closed_upload_window();
    });
    let bob = server.member("bob");
    let bob_data = random_bytes(300 * 1024, 7);
    let bob_archive = bob.upload_ok("bob's photos", &bob_data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    Some(Appliance {
        server,
        mount,
        admin,
        bob,
        bob_data,
        bob_archive,
    })
}

impl Appliance {
    /// Bob still lists and downloads his archive, bit-exact.
    fn bob_goes_on(&self) {
        assert_eq!(self.bob.get("/api/v1/archives").status, 200);
        let content = self
            .bob
            .get(&format!("/api/v1/archives/{}/content", self.bob_archive));
        assert_eq!(content.status, 200, "{}", content.text());
        assert!(content.body == self.bob_data, "bob's archive changed");
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn create_upload(client: &Client, length: usize) -> String {
    let metadata = format!("name {},filename {}", b64("big"), b64("big.bin"));
    let resp = client.request(
        "POST",
        "/api/v1/uploads",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &length.to_string()),
            ("Upload-Metadata", &metadata),
        ],
        None,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.header("Location").unwrap().to_string()
}

fn patch(client: &Client, location: &str, at: usize, body: &[u8]) -> crate::support::Resp {
    client.request(
        "PATCH",
        location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", &at.to_string()),
        ],
        Some(body),
    )
}

fn upload_offset(client: &Client, location: &str) -> u64 {
    let resp = client.request("HEAD", location, &[("Tus-Resumable", "1.0.0")], None);
    assert_eq!(resp.status, 200);
    resp.header("Upload-Offset").unwrap().parse().unwrap()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Sends `method path` with `body` over a raw socket: the first `split`
/// bytes, then `between()` (which fills the disk, say), then the rest.
/// Returns the status and the JSON answer.
fn send_in_two(
    client: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    split: usize,
    between: impl FnOnce(),
) -> (u16, Value) {
    let addr = client.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\n",
        body.len(),
        client.cookie.as_deref().unwrap_or(""),
        client.csrf.as_deref().unwrap_or(""),
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..split]).unwrap();
    between();
    let _ = stream.write_all(&body[split..]);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// The answer's `message`, which must be a sentence.
fn sentence(answer: &Value) -> String {
    let message = answer["message"].as_str().unwrap_or_default().to_string();
    assert!(message.ends_with('.'), "not a sentence: {answer}");
    message
}

#[test]
fn a_full_disk_during_a_tus_patch_keeps_what_was_written_and_resumes() {
    let Some(setup) = start(24, &[]) else { return };
    let data = random_bytes(3 * MIB, 1);
    let location = create_upload(&setup.admin, data.len());
    assert_eq!(patch(&setup.admin, &location, 0, &data[..MIB]).status, 204);
    let upload_id = location.rsplit('/').next().unwrap();
    let upload_file = setup.server.data_dir().join("uploads").join(upload_id);
    let mut filler = PathBuf::new();
    let (status, answer) = send_in_two(
        &setup.admin,
        "PATCH",
        &location,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", &MIB.to_string()),
        ],
        &data[MIB..],
        MIB + MIB / 2,
        || {
            // The server wrote its first 1 MiB buffer of this request.
            wait_until(Duration::from_secs(30), || {
                file_size(&upload_file) >= 2 * MIB as u64
            });
            filler = setup.mount.fill();
        },
    );
    assert_eq!((status, answer["error"].as_str()), (507, Some("disk_full")));
    let message = sentence(&answer);
    assert!(message.contains("which are kept"), "{message}");
    assert_eq!(upload_offset(&setup.admin, &location), 2 * MIB as u64);
    setup.bob_goes_on();
    // Nothing fits while full: a new upload is refused before any byte.
    let refused = setup.bob.upload("more", "more.bin", &random_bytes(MIB, 3));
    assert_eq!(refused.status, 507, "{}", refused.text());
    refused.message();

    std::fs::remove_file(&filler).unwrap();
    let done = patch(&setup.admin, &location, 2 * MIB, &data[2 * MIB..]);
    assert_eq!(done.status, 204, "{}", done.text());
    let archive_id = done.header("Archive-Id").unwrap().to_string();
    let content = setup
        .admin
        .get(&format!("/api/v1/archives/{archive_id}/content"));
    assert!(content.body == data, "the resumed upload differs");
    setup.bob_goes_on();
}

#[test]
fn a_full_disk_during_a_one_shot_upload_keeps_nothing_and_recovers() {
    let Some(setup) = start(24, &[]) else { return };
    let data = random_bytes(2 * MIB, 2);
    let uploads = setup.server.data_dir().join("uploads");
    let mut filler = PathBuf::new();
    let (status, answer) = send_in_two(
        &setup.admin,
        "PUT",
        "/api/v1/archives?name=big&filename=big.bin",
        &[],
        &data,
        MIB + MIB / 2,
        || {
            wait_until(Duration::from_secs(30), || {
                crate::support::files_under(&uploads)
                    .iter()
                    .any(|file| file_size(file) >= MIB as u64)
            });
            filler = setup.mount.fill();
        },
    );
    assert_eq!((status, answer["error"].as_str()), (507, Some("disk_full")));
    assert!(sentence(&answer).contains("nothing was kept"), "{answer}");
    assert!(
        crate::support::files_under(&uploads).is_empty(),
        "a cut one-shot upload left bytes behind"
    );
    setup.bob_goes_on();

    std::fs::remove_file(&filler).unwrap();
    let archive = setup.admin.upload_ok("big", &data);
    let content = setup.admin.get(&format!(
        "/api/v1/archives/{}/content",
        archive["id"].as_str().unwrap()
    ));
    assert!(content.body == data);
    setup.bob_goes_on();
}

/// A script of about 48 KiB (the most a saved script may hold): saving it
/// needs a run of new database pages.
fn big_script(name: &str) -> Value {
    let source = "// filler line of a big saved script.\n".repeat(1200);
    json!({"name": name, "description": "fills the database", "source": source})
}

/// Saves big scripts until one is refused (at most `most`); returns the
/// refusal and the ids of those saved.
fn save_until_refused(admin: &Client, most: usize) -> (u16, Value, Vec<String>) {
    let mut saved = Vec::new();
    for n in 0..most {
        let resp = admin.post_json("/api/v1/admin/scripts", &big_script(&format!("big {n}")));
        if resp.status != 201 {
            return (resp.status, resp.json(), saved);
        }
        saved.push(resp.json()["id"].as_str().unwrap().to_string());
    }
    panic!("{most} big scripts were all saved");
}

#[test]
fn a_full_disk_under_the_database_answers_507_and_recovers() {
    let Some(setup) = start(16, &[]) else { return };
    let filler = setup.mount.fill();
    let (status, answer, _) = save_until_refused(&setup.admin, 40);
    assert_eq!(
        (status, answer["error"].as_str()),
        (507, Some("disk_full")),
        "{answer}"
    );
    let message = sentence(&answer);
    assert!(
        message.contains("Nothing was saved because the data disk is full"),
        "{message}"
    );
    setup.bob_goes_on();

    std::fs::remove_file(&filler).unwrap();
    let (status, _, saved) = save_until_refused_or(&setup.admin, 2);
    assert_eq!((status, saved.len()), (201, 2), "saving works again");
    setup.bob_goes_on();
    // The database opens again after a restart with everything in it.
    let mut server = setup.server;
    server.restart();
    let mut bob = server.client();
    assert_eq!(bob.login("bob", "member password").status, 200);
    let content = bob.get(&format!("/api/v1/archives/{}/content", setup.bob_archive));
    assert!(content.body == setup.bob_data);
}

/// Saves `count` big scripts; returns the last status and the ids saved.
fn save_until_refused_or(admin: &Client, count: usize) -> (u16, Value, Vec<String>) {
    let mut saved = Vec::new();
    let mut last = (0, Value::Null);
    for n in 0..count {
        let resp = admin.post_json("/api/v1/admin/scripts", &big_script(&format!("again {n}")));
        last = (resp.status, resp.json());
        if resp.status != 201 {
            break;
        }
        saved.push(resp.json()["id"].as_str().unwrap().to_string());
    }
    (last.0, last.1, saved)
}

#[test]
fn a_full_database_map_answers_507_and_room_made_is_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("piarchive.toml"), "map_size_mib = 2\n").unwrap();
    let server = TestServer::start_at(data_dir, &[]);
    let admin = server.admin();
    admin.put_settings(|settings| {
        settings["registration_open"] = json!(true);
        settings["upload_window"] = crate::support::closed_upload_window();
    });
    let bob = server.member("bob");
    let bob_data = random_bytes(100 * 1024, 9);
    let bob_archive = bob.upload_ok("bob's", &bob_data)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, answer, saved) = save_until_refused(&admin, 60);
    assert_eq!(
        (status, answer["error"].as_str()),
        (507, Some("database_full")),
        "{answer}"
    );
    sentence(&answer);
    let content = bob.get(&format!("/api/v1/archives/{bob_archive}/content"));
    assert!(content.status == 200 && content.body == bob_data);

    // Deleting what filled it makes room that the next change uses.
    for id in &saved {
        let resp = admin.delete(&format!("/api/v1/admin/scripts/{id}"));
        assert!(resp.status < 300, "{}", resp.text());
    }
    let (status, _, _) = save_until_refused_or(&admin, 1);
    assert_eq!(status, 201);
    assert_eq!(bob.upload("more", "more.bin", b"more").status, 201);
}

/// An ext4 data disk the kernel stops writing to after an error (its
/// `errors=remount-ro`): said on the pages and the display, downloads go on.
#[test]
fn a_data_disk_gone_read_only_is_said_everywhere_and_downloads_go_on() {
    let Some(disk) = Ext4::mount(64 << 20) else {
        return;
    };
    let server = TestServer::start_at(disk.path.join("data"), &[]);
    let admin = server.admin();
    admin.put_settings(|settings| {
        settings["registration_open"] = json!(true);
        settings["free_space_reserve_bytes"] = json!(0);
        settings["upload_window"] = crate::support::closed_upload_window();
    });
    let bob = server.member("bob");
    let bob_data = random_bytes(300 * 1024, 5);
    let archive = bob.upload_ok("bob's", &bob_data)["id"]
        .as_str()
        .unwrap()
        .to_string();

    disk.fail();
    let page = bob.get("/");
    assert!(
        page.text().contains("id=\"disk-banner\"") && page.text().contains("read-only"),
        "{}",
        page.text()
    );
    let content = bob.get(&format!("/api/v1/archives/{archive}/content"));
    assert!(
        content.status == 200 && content.body == bob_data,
        "{}",
        content.status
    );
    let refused = bob.upload("new", "new.bin", b"new bytes");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"], "disk_read_only");
    assert!(refused.message().contains("read-only"));
    wait_until(Duration::from_secs(10), || {
        let device = admin.get("/api/v1/admin/device").json();
        device["status"]["attention"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("read-only"))
            && device["red"] != "off"
    });
    drop(server);
}

/// Enables (or with `None` disables) a libfiu failure point in the server.
fn fiu(server: &TestServer, point: &str, errno: Option<i32>) {
    let command = match errno {
        Some(errno) => format!("enable name={point},failinfo={errno}"),
        None => format!("disable name={point}"),
    };
    let status = Command::new("fiu-ctrl")
        .args(["-c", &command, &server.pid().to_string()])
        .status()
        .expect("fiu-ctrl");
    assert!(status.success(), "fiu-ctrl -c {command}");
}

/// fiu-run, or `None` (said) when it is not installed and this is not CI.
fn fiu_run() -> Option<&'static [&'static str]> {
    let installed = Command::new("fiu-run").arg("-h").output().is_ok();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "fiu-run is missing: .ci/run installs fiu-utils"
        );
        eprintln!("skipped: fiu-run (Debian's fiu-utils) is not installed");
        return None;
    }
    Some(&["fiu-run", "-x"])
}

const EIO: i32 = 5;

#[test]
fn an_input_output_error_while_serving_a_download_cuts_it_and_is_reported() {
    let Some(wrapper) = fiu_run() else { return };
    let Some(setup) = start(16, wrapper) else {
        return;
    };
    fiu(&setup.server, "posix/io/rw/read", Some(EIO));
    let path = format!("/api/v1/archives/{}/content", setup.bob_archive);
    let url = format!("{}{path}", setup.server.base);
    let response = ureq::get(&url)
        .set("Cookie", setup.bob.cookie.as_deref().unwrap())
        .call();
    let mut body = Vec::new();
    if let Ok(response) = response {
        // Cut short: the body ends (with an error) before its length.
        let _ = response.into_reader().read_to_end(&mut body);
    }
    assert!(
        body.len() < setup.bob_data.len(),
        "a download the disk failed was served whole ({} bytes)",
        body.len()
    );
    assert!(
        body[..] == setup.bob_data[..body.len()],
        "wrong bytes were served"
    );
    fiu(&setup.server, "posix/io/rw/read", None);
    let device = setup.admin.get("/api/v1/admin/device").json();
    wait_until(Duration::from_secs(10), || {
        let device = setup.admin.get("/api/v1/admin/device").json();
        device["status"]["attention"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("input/output error"))
    });
    assert!(
        setup.admin.get("/").text().contains("disk-banner"),
        "{device}"
    );
    setup.bob_goes_on();
}

#[test]
fn a_failed_flush_during_a_tus_patch_drops_the_request_and_resumes() {
    let Some(wrapper) = fiu_run() else { return };
    let Some(setup) = start(24, wrapper) else {
        return;
    };
    let data = random_bytes(2 * MIB, 4);
    let location = create_upload(&setup.admin, data.len());
    assert_eq!(patch(&setup.admin, &location, 0, &data[..MIB]).status, 204);
    fiu(&setup.server, "posix/io/sync/fdatasync", Some(EIO));
    let failed = patch(&setup.admin, &location, MIB, &data[MIB..]);
    fiu(&setup.server, "posix/io/sync/fdatasync", None);
    assert_eq!(failed.status, 500, "{}", failed.text());
    assert_eq!(failed.json()["error"], "disk_failed");
    assert!(failed.message().contains("resume from byte 1048576"));
    assert_eq!(upload_offset(&setup.admin, &location), MIB as u64);
    setup.bob_goes_on();
    let done = patch(&setup.admin, &location, MIB, &data[MIB..]);
    assert_eq!(done.status, 204, "{}", done.text());
    let archive_id = done.header("Archive-Id").unwrap().to_string();
    let content = setup
        .admin
        .get(&format!("/api/v1/archives/{archive_id}/content"));
    assert!(content.body == data);
}

/// Sets a `dir` remote outside the small disk and opens the upload window.
fn back_up_elsewhere(setup: &Appliance, remote: &Path) {
    crate::remote_engine::set_remote(&setup.admin, &json!({"kind": "dir", "path": remote}));
    setup
        .admin
        .put_settings(|settings| settings["upload_window"] = Value::Null);
}

#[test]
fn a_full_disk_while_fetching_back_waits_and_resumes_by_itself() {
    use crate::remote_engine::wait_state;
    let Some(setup) = start(24, &[]) else { return };
    let remote = tempfile::tempdir().unwrap();
    back_up_elsewhere(&setup, remote.path());
    let data = random_bytes(4 * MIB, 6);
    let id = setup.admin.upload_ok("big", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&setup.admin, &id, "backed_up");
    let uncache = setup
        .admin
        .request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
    assert_eq!(uncache.status, 202, "{}", uncache.text());
    wait_state(&setup.admin, &id, "uncached");

    // Full but for 1 MiB: the database still takes the request, the
    // fetched file does not fit.
    let filler = setup.mount.fill();
    let filled = std::fs::metadata(&filler).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .and_then(|file| file.set_len(filled - MIB as u64))
        .unwrap();
    let resp = setup
        .admin
        .request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let mut archive = Value::Null;
    wait_until(Duration::from_secs(60), || {
        archive = setup.admin.get(&format!("/api/v1/archives/{id}")).json();
        archive["last_error"].is_string()
    });
    let reason = archive["last_error"].as_str().unwrap();
    assert!(
        reason.contains("not enough free space") && reason.ends_with('.'),
        "{reason}"
    );
    assert_eq!(archive["state"], "caching", "it waits for space: {archive}");
    setup.bob_goes_on();

    // Freed: the fetch-back resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    wait_state(&setup.admin, &id, "backed_up");
    let content = setup.admin.get(&format!("/api/v1/archives/{id}/content"));
    assert!(content.body == data, "the fetched-back file differs");
    let partials: Vec<PathBuf> = crate::support::files_under(&setup.server.data_dir())
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(partials.is_empty(), "left behind: {partials:?}");
}

#[test]
fn an_input_output_error_reading_a_part_uploads_nothing_wrong() {
    use crate::remote_engine::{uncache_and_cache_back, wait_state};
    let Some(wrapper) = fiu_run() else { return };
    let Some(setup) = start(24, wrapper) else {
        return;
    };
    let data = random_bytes(2 * MIB, 8);
    let id = setup.admin.upload_ok("big", &data)["id"]
        .as_str()
        .unwrap()
        .to_string();
    fiu(&setup.server, "posix/io/rw/pread", Some(EIO));
    let remote = tempfile::tempdir().unwrap();
    back_up_elsewhere(&setup, remote.path());
    wait_until(Duration::from_secs(30), || {
        let device = setup.admin.get("/api/v1/admin/device").json();
        device["status"]["attention"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("input/output error"))
            && device["red"] != "off"
    });
    let archive = setup.admin.get(&format!("/api/v1/archives/{id}")).json();
    assert_eq!(archive["parts_remote"], 0, "{archive}");
    fiu(&setup.server, "posix/io/rw/pread", None);

    // Once the disk reads again the retries back it up, and what was
    // stored comes back bit-exact.
    wait_state(&setup.admin, &id, "backed_up");
    uncache_and_cache_back(&setup.admin, &id, &data);
    setup.bob_goes_on();
}
