//! Changing the remote moves the backups: from the default folder to S3,
//! from one bucket to another, through a flaky link, with kill -9 in the
//! middle, from an old folder that has become unreadable; the same bucket
//! with new keys copies nothing, and another appliance's bucket is refused.
//! Everything runs the real binary against the signature-checking S3 server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::remote_engine::{archive, download, s3_json, wait_state, LIMIT};
use crate::support::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::support::s3_server::{
    S3TestServer, ACCESS_KEY, BUCKET, REGION, ROTATED_ACCESS_KEY, ROTATED_SECRET_KEY, SECRET_KEY,
};
use crate::support::{files_under, random_bytes, wait_until, Client, TestServer};

const SIZE: usize = 6 * 1024 * 1024 + 333;

/// Saves remote settings and returns the answer (settings + `change`).
fn put_remote(admin: &Client, settings: &Value) -> Value {
    let resp = admin.send_json("PUT", "/api/v1/admin/remote", settings);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert!(body.get("secret_access_key").is_none());
    body
}

/// Waits until no move runs any more.
pub(crate) fn wait_moved(admin: &Client) {
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = admin.get("/api/v1/admin/remote").json();
        last["move"].is_null()
    });
}

/// Uploads `data` as `name` and waits until it is backed up.
fn backed_up(admin: &Client, name: &str, data: &[u8]) -> String {
    let id = admin.upload_ok(name, data)["id"]
        .as_str()
        .expect("an id")
        .to_string();
    wait_state(admin, &id, "backed_up");
    id
}

fn post(admin: &Client, path: &str) {
    let resp = admin.request("POST", path, &[], None);
    assert_eq!(resp.status, 202, "{}", resp.text());
}

fn uncache(admin: &Client, id: &str) {
    post(admin, &format!("/api/v1/archives/{id}/uncache"));
    wait_state(admin, id, "uncached");
}

/// Fetches an uncached archive back and compares it with `data`.
fn cache_back(admin: &Client, id: &str, data: &[u8]) {
    post(admin, &format!("/api/v1/archives/{id}/cache"));
    wait_state(admin, id, "backed_up");
    assert!(download(admin, id) == data, "{id} came back different");
}

fn all_remote(admin: &Client, id: &str) -> Value {
    let record = archive(admin, id);
    assert_eq!(record["parts_remote"], record["parts_total"], "{record}");
    record
}

fn s3_bucket_json(s3: &S3TestServer, bucket: &str, prefix: &str) -> Value {
    json!({"kind": "s3", "endpoint": s3.endpoint, "region": REGION, "bucket": bucket,
           "prefix": prefix, "path_style": true, "access_key_id": ACCESS_KEY,
           "secret_access_key": SECRET_KEY})
}

fn names_under(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .collect()
}

fn log_messages(admin: &Client) -> String {
    let resp = admin.get("/api/v1/admin/log?limit=200");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
}

#[test]
fn the_default_folder_moves_to_s3_and_is_deleted_and_everything_caches_back_from_s3() {
    let server = TestServer::start();
    let admin = server.admin();
    let early = random_bytes(SIZE, 31);
    let kept = random_bytes(SIZE + 77, 32);
    let early_id = backed_up(&admin, "early", &early);
    uncache(&admin, &early_id);
    let kept_id = backed_up(&admin, "kept", &kept);
    let folder = server.data_dir().join("remote");
    let parts_in_folder = names_under(&folder.join("parts"));
    assert!(!parts_in_folder.is_empty());

    let s3 = S3TestServer::start();
    let settings = s3_json(&s3.endpoint, "moved", SECRET_KEY);
    let plan = admin.post_json("/api/v1/admin/remote/plan", &settings);
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan = plan.json();
    assert_eq!(plan["destination"], "empty", "{plan}");
    assert_eq!(plan["archives"], 2, "{plan}");
    assert!(
        plan["message"].as_str().unwrap().contains("2 archives"),
        "{plan}"
    );
    // The plan wrote nothing.
    assert!(files_under(&s3.object_path("moved")).is_empty());

    let body = put_remote(&admin, &settings);
    assert_eq!(body["change"]["destination"], "empty", "{body}");
    // Right after the switch nothing claims to be on the new storage.
    let just_switched = archive(&admin, &kept_id);
    assert_ne!(just_switched["state"], "backed_up", "{just_switched}");
    wait_moved(&admin);

    let early_now = all_remote(&admin, &early_id);
    assert_eq!(early_now["state"], "uncached", "{early_now}");
    let kept_now = wait_state(&admin, &kept_id, "backed_up");
    assert_eq!(kept_now["parts_remote"], kept_now["parts_total"]);
    let bucket = s3.object_path("moved");
    assert_eq!(names_under(&bucket.join("parts")), parts_in_folder);
    wait_until(LIMIT, || {
        names_under(&bucket.join("manifests"))
            == BTreeSet::from([early_id.clone(), kept_id.clone()])
            && bucket.join("catalog").join("appliance").is_file()
    });
    assert!(bucket.join("config").is_file());
    // The same-disk folder is released, and the log says so.
    assert!(!folder.exists(), "the old folder is still there");
    let log = log_messages(&admin);
    assert!(log.contains("is deleted now to free its space"), "{log}");

    // Both come back from S3 alone.
    cache_back(&admin, &early_id, &early);
    uncache(&admin, &kept_id);
    cache_back(&admin, &kept_id, &kept);
    let home = admin.get("/").text();
    assert!(!home.contains("same disk as the originals"), "{home}");
}

#[test]
fn one_bucket_moves_to_another_and_the_old_one_is_left_untouched() {
    let s3 = S3TestServer::start();
    s3.create_bucket("second");
    let server = TestServer::start();
    let admin = server.admin();
    put_remote(&admin, &s3_bucket_json(&s3, BUCKET, "a"));
    let one = random_bytes(SIZE, 41);
    let two = random_bytes(SIZE / 2, 42);
    let one_id = backed_up(&admin, "one", &one);
    let two_id = backed_up(&admin, "two", &two);
    uncache(&admin, &one_id);
    let old_objects = names_under(&s3.root().join(BUCKET).join("a"));

    // A slow uplink keeps the move going while "one" is fetched back: its
    // parts come from wherever each one is at that moment.
    admin.put_settings(|settings| settings["upload_bandwidth_bytes_per_sec"] = json!(2_000_000));
    let body = put_remote(&admin, &s3_bucket_json(&s3, "second", "b"));
    assert_eq!(body["change"]["destination"], "empty", "{body}");
    post(&admin, &format!("/api/v1/archives/{one_id}/cache"));
    let moving = admin.get("/api/v1/admin/remote").json();
    assert!(
        !moving["move"].is_null(),
        "the move ended too soon to test: {moving}"
    );
    wait_until(LIMIT, || archive(&admin, &one_id)["state"] != "caching");
    assert!(
        download(&admin, &one_id) == one,
        "fetched back during the move, it differs"
    );
    admin.put_settings(|settings| settings["upload_bandwidth_bytes_per_sec"] = json!(0));
    wait_moved(&admin);
    wait_state(&admin, &one_id, "backed_up");
    all_remote(&admin, &one_id);
    wait_state(&admin, &two_id, "backed_up");
    let new_parts = names_under(&s3.root().join("second").join("b").join("parts"));
    let old_parts = names_under(&s3.root().join(BUCKET).join("a").join("parts"));
    assert_eq!(new_parts, old_parts);
    // Not ours to delete: the old bucket keeps what it had.
    assert!(old_objects.is_subset(&names_under(&s3.root().join(BUCKET).join("a"))));
    assert!(log_messages(&admin).contains("was left untouched"));
    uncache(&admin, &one_id);
    cache_back(&admin, &one_id, &one);
}

#[test]
fn the_same_bucket_with_new_keys_or_another_endpoint_name_copies_nothing() {
    let s3 = S3TestServer::start();
    let server = TestServer::start();
    let admin = server.admin();
    put_remote(&admin, &s3_json(&s3.endpoint, "same", SECRET_KEY));
    let data = random_bytes(SIZE, 51);
    let id = backed_up(&admin, "same", &data);
    let before = files_under(&s3.object_path("same"));
    let mtimes = |files: &[std::path::PathBuf]| -> Vec<_> {
        files
            .iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    };
    let before_times = mtimes(&before);

    // Rotated keys for the same bucket and prefix: a relabel.
    let mut rotated = s3_json(&s3.endpoint, "same", ROTATED_SECRET_KEY);
    rotated["access_key_id"] = json!(ROTATED_ACCESS_KEY);
    let body = put_remote(&admin, &rotated);
    assert_eq!(body["change"]["destination"], "same_storage", "{body}");
    assert!(body["move"].is_null(), "{body}");
    assert_eq!(archive(&admin, &id)["state"], "backed_up");

    // Another name for the same server (through a proxy): the repository
    // is recognised, every part is found there, nothing is sent again.
    let proxy = FaultProxy::start(s3.address, FaultPlan::Sequence(Vec::new()));
    let mut via_proxy = rotated.clone();
    via_proxy["endpoint"] = json!(proxy.endpoint);
    let body = put_remote(&admin, &via_proxy);
    assert_eq!(body["change"]["destination"], "same_repository", "{body}");
    wait_moved(&admin);
    wait_state(&admin, &id, "backed_up");
    let part_puts: Vec<_> = proxy
        .request_log()
        .into_iter()
        .filter(|(method, path)| method == "PUT" && path.contains("/parts/"))
        .collect();
    assert!(part_puts.is_empty(), "parts were sent again: {part_puts:?}");
    let after = files_under(&s3.object_path("same"));
    let unchanged: Vec<_> = before
        .iter()
        .filter(|f| f.to_string_lossy().contains("/parts/"))
        .collect();
    for file in unchanged {
        let index = before.iter().position(|f| f == file).unwrap();
        assert!(after.contains(file));
        assert_eq!(
            std::fs::metadata(file).and_then(|m| m.modified()).ok(),
            before_times[index],
            "{} was rewritten",
            file.display()
        );
    }
    uncache(&admin, &id);
    cache_back(&admin, &id, &data);
}

#[test]
fn a_bucket_holding_another_appliances_backups_is_refused_and_nothing_is_written() {
    let s3 = S3TestServer::start();
    let other = TestServer::start();
    let other_admin = other.admin();
    put_remote(&other_admin, &s3_json(&s3.endpoint, "theirs", SECRET_KEY));
    backed_up(&other_admin, "theirs", &random_bytes(SIZE, 61));
    let theirs = files_under(&s3.object_path("theirs"));

    let server = TestServer::start();
    let admin = server.admin();
    let data = random_bytes(SIZE, 62);
    let id = backed_up(&admin, "mine", &data);
    let resp = admin.send_json(
        "PUT",
        "/api/v1/admin/remote",
        &s3_json(&s3.endpoint, "theirs", SECRET_KEY),
    );
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert_eq!(resp.json()["error"], "other_repository");
    assert!(
        resp.message().contains("another appliance"),
        "{}",
        resp.message()
    );
    assert_eq!(files_under(&s3.object_path("theirs")), theirs);
    assert_eq!(admin.get("/api/v1/admin/remote").json()["kind"], "dir");
    assert_eq!(archive(&admin, &id)["state"], "backed_up");
    // The remote page says the same in words and keeps what was typed.
    let page = admin.post_form(
        "/admin/remote",
        &[
            ("action", "save"),
            ("kind", "s3"),
            ("endpoint", &s3.endpoint),
            ("region", REGION),
            ("bucket", BUCKET),
            ("prefix", "theirs"),
            ("path_style", "1"),
            ("access_key_id", ACCESS_KEY),
            ("secret_access_key", SECRET_KEY),
            ("confirm_move", "1"),
        ],
    );
    let text = page.text();
    assert!(text.contains("another appliance"), "{text}");
    assert!(text.contains(&s3.endpoint), "{text}");
    assert!(!text.contains(SECRET_KEY));
}

#[test]
fn the_remote_page_says_what_a_move_copies_and_asks_before_it_starts() {
    let server = TestServer::start();
    let admin = server.admin();
    backed_up(&admin, "photos", &random_bytes(SIZE, 71));
    let page = admin.get("/admin/remote").text();
    assert!(page.contains("copies the 1 archive"), "{page}");
    let s3 = S3TestServer::start();
    let form = |confirm: bool| {
        let mut fields = vec![
            ("action", "save"),
            ("kind", "s3"),
            ("endpoint", s3.endpoint.as_str()),
            ("region", REGION),
            ("bucket", BUCKET),
            ("prefix", "page"),
            ("path_style", "1"),
            ("access_key_id", ACCESS_KEY),
            ("secret_access_key", SECRET_KEY),
        ];
        if confirm {
            fields.push(("confirm_move", "1"));
        }
        admin.post_form("/admin/remote", &fields)
    };
    let unconfirmed = form(false).text();
    assert!(unconfirmed.contains("Tick"), "{unconfirmed}");
    assert_eq!(admin.get("/api/v1/admin/remote").json()["kind"], "dir");
    let confirmed = form(true).text();
    assert!(confirmed.contains("Saved."), "{confirmed}");
    assert_eq!(admin.get("/api/v1/admin/remote").json()["kind"], "s3");
    wait_moved(&admin);
}

#[test]
fn a_flaky_new_remote_still_ends_with_everything_moved() {
    let s3 = S3TestServer::start();
    let proxy = FaultProxy::start(
        s3.address,
        FaultPlan::Random {
            fraction: 0.2,
            faults: vec![
                Fault::ServerError,
                Fault::SlowDown,
                Fault::Reset,
                Fault::Truncate,
                Fault::DropResponse,
            ],
            max_consecutive: 3,
            seed: 11,
        },
    );
    let server = TestServer::start();
    let admin = server.admin();
    let one = random_bytes(SIZE * 2, 81);
    let two = random_bytes(SIZE, 82);
    let one_id = backed_up(&admin, "one", &one);
    let two_id = backed_up(&admin, "two", &two);
    uncache(&admin, &one_id);
    put_remote(&admin, &s3_json(&proxy.endpoint, "flaky-move", SECRET_KEY));
    wait_moved(&admin);
    all_remote(&admin, &one_id);
    wait_state(&admin, &two_id, "backed_up");
    assert!(proxy.faults_injected() > 0, "no fault was injected");
    cache_back(&admin, &one_id, &one);
}

#[test]
fn an_unreadable_old_folder_keeps_evicted_archives_waiting_by_name_until_it_is_back() {
    let server = TestServer::start();
    let admin = server.admin();
    let usb = server.dir.path().join("usb");
    put_remote(&admin, &json!({"kind": "dir", "path": usb}));
    let local = random_bytes(SIZE, 91);
    let evicted = random_bytes(SIZE, 92);
    let local_id = backed_up(&admin, "on the box", &local);
    let evicted_id = backed_up(&admin, "only on the USB disk", &evicted);
    uncache(&admin, &evicted_id);

    // The disk is unplugged: its folder is gone.
    let unplugged = server.dir.path().join("usb-unplugged");
    std::fs::rename(&usb, &unplugged).expect("unplug");
    let s3 = S3TestServer::start();
    put_remote(&admin, &s3_json(&s3.endpoint, "from-usb", SECRET_KEY));

    // The local archive is uploaded from its own file.
    wait_state(&admin, &local_id, "backed_up");
    // The evicted one waits, named, with the red LED; never backed up.
    let mut remote = Value::Null;
    wait_until(LIMIT, || {
        remote = admin.get("/api/v1/admin/remote").json();
        remote["move"]["not_yet_moved"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "only on the USB disk"))
    });
    assert!(
        remote["move"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{remote}"
    );
    let waiting = archive(&admin, &evicted_id);
    assert_eq!(waiting["state"], "uncached", "{waiting}");
    assert_ne!(waiting["parts_remote"], waiting["parts_total"], "{waiting}");
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("Not yet on the new storage"),
        "{waiting}"
    );
    wait_until(LIMIT, || {
        admin.get("/api/v1/admin/device").json()["red"] != "off"
    });
    let home = admin.get("/").text();
    assert!(
        home.contains("Moving the backups to the new storage"),
        "{home}"
    );
    let page = admin.get("/admin/remote").text();
    assert!(page.contains("only on the USB disk"), "{page}");
    let resp = admin.request(
        "POST",
        &format!("/api/v1/archives/{evicted_id}/uncache"),
        &[],
        None,
    );
    assert_eq!(resp.status, 409, "{}", resp.text());

    // Plugged in again: the move finishes, the old disk is left as it is.
    std::fs::rename(&unplugged, &usb).expect("plug in");
    wait_moved(&admin);
    all_remote(&admin, &evicted_id);
    assert!(usb.join("config").is_file(), "the USB folder was touched");
    cache_back(&admin, &evicted_id, &evicted);
}

/// Jobs in the queue, from `/metrics`.
fn queue_length(admin: &Client) -> u64 {
    admin
        .get("/metrics")
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("piarchive_queue_length "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a queue length in /metrics")
}

#[test]
fn kill_9_at_random_moments_of_a_move_resumes_and_ends_with_exact_books() {
    const KILLS: usize = 10;
    let seed: u64 = std::env::var("PIARCHIVE_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (set PIARCHIVE_CRASH_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let s3 = S3TestServer::start();
    // Slow answers make the move outlast the random moments.
    let proxy = FaultProxy::start(s3.address, FaultPlan::Sequence(Vec::new()));
    let mut server = TestServer::start();
    let admin = server.admin();
    let mut data = BTreeMap::new();
    for index in 0..5u64 {
        let bytes = random_bytes(3 * 1024 * 1024 + 1000 * index as usize, 100 + index);
        let id = backed_up(&admin, &format!("archive {index}"), &bytes);
        data.insert(id, bytes);
    }
    // The same bytes twice: one object, two parts using it.
    let first = data.values().next().unwrap().clone();
    let twin = backed_up(&admin, "twin", &first);
    data.insert(twin.clone(), first);
    let ids: Vec<String> = data.keys().cloned().collect();
    for id in &ids[..3] {
        uncache(&admin, id);
    }
    proxy.set_response_delay(Duration::from_millis(150));
    put_remote(&admin, &s3_json(&proxy.endpoint, "killed", SECRET_KEY));
    let mut mid_move = 0;
    for kill in 0..KILLS {
        let moment = Duration::from_millis(rng.gen_range(50..600));
        // Not a readiness wait: the engine runs for a random while first.
        std::thread::sleep(moment);
        let busy = queue_length(&admin) > 0;
        mid_move += usize::from(busy);
        eprintln!("kill {} after {moment:?} (busy: {busy})", kill + 1);
        server.restart();
    }
    assert!(mid_move >= KILLS / 2, "only {mid_move} kills hit the move");
    wait_moved(&admin);
    for id in &ids {
        all_remote(&admin, id);
    }
    wait_until(LIMIT, || queue_length(&admin) == 0);

    // Each kill re-sent at most the parts in flight (4 copiers).
    let mut puts: BTreeMap<String, usize> = BTreeMap::new();
    for (method, path) in proxy.request_log() {
        if method == "PUT" && path.contains("/parts/") {
            *puts.entry(path).or_default() += 1;
        }
    }
    let resent: usize = puts.values().map(|count| count - 1).sum();
    assert!(resent <= KILLS * 4, "{resent} parts re-sent: {puts:?}");

    // The books, from the appliance's own database.
    server.kill9();
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30)
        .expect("open the store");
    let uses = crate::support::checked_object_uses(&store);
    assert!(
        uses.values().any(|&count| count == 2),
        "the twin shares its objects"
    );
    let bucket = s3.object_path("killed");
    assert_eq!(
        names_under(&bucket.join("parts")),
        uses.keys().cloned().collect::<BTreeSet<_>>(),
        "the new remote holds exactly the objects in use"
    );
    drop(store);
    server.restart();
    let admin = {
        let mut client = server.client();
        client.login("admin", "admin password");
        client
    };
    for id in &ids[..3] {
        cache_back(&admin, id, &data[id]);
    }
}
