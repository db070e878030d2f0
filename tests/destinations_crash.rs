//! `kill -9` of the real appliance with two destinations (issue 24, item
//! 4): during the initial copy of every archive to an added destination,
//! and during a normal backup to both. Each destination is a
//! signature-checking s3s-fs server behind a proxy that logs every request
//! and answers slowly, like a slow link. Before each restart the
//! appliance's own books are read: which part objects it had committed on
//! each destination. At the end every archive is backed up (complete on
//! both), a full verification finds both destinations whole, each archive
//! comes back bit-exact after uncache and cache, no part object
//! committed before a kill was PUT again after it, and the books agree
//! with the buckets: each destination's refcounts equal the parts using
//! each object, and each bucket holds exactly those objects.
//!
//! The moments are drawn from a seed printed at the start; set
//! `PIARCHIVE_CRASH_SEED` to replay one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::crash::seed;
use crate::destinations_fetch::add_copy;
use crate::remote_engine::{s3_json, set_remote};
use crate::support::fault_proxy::{FaultPlan, FaultProxy};
use crate::support::s3_server::{S3TestServer, SECRET_KEY};
use crate::support::{
    closed_upload_window, random_bytes, sha256_hex, wait_until, Client, TestServer,
};

const ARCHIVES: usize = 10;
const ARCHIVE_SIZE: usize = 2 * 1024 * 1024 + 300 * 1024;
const KILLS: usize = 5;
/// How long each proxy holds each answer: slow enough that the phases
/// outlast the random moments.
const SLOW_ANSWER: Duration = Duration::from_millis(300);
const PREFIX: &str = "family";
const LIMIT: Duration = Duration::from_secs(180);

/// One destination: its S3 server and the logging proxy in front of it.
struct Place {
    s3: S3TestServer,
    proxy: FaultProxy,
}

impl Place {
    fn start() -> Place {
        let s3 = S3TestServer::start();
        let proxy = FaultProxy::start(s3.address, FaultPlan::Sequence(Vec::new()));
        Place { s3, proxy }
    }

    /// The object id of every part PUT through the proxy from `from` on,
    /// in order.
    fn part_puts_since(&self, from: usize) -> Vec<String> {
        self.proxy
            .request_log()
            .into_iter()
            .skip(from)
            .filter(|(method, path)| method == "PUT" && path.contains(&format!("/{PREFIX}/parts/")))
            .filter_map(|(_, path)| path.rsplit('/').next().map(str::to_string))
            .collect()
    }
}

/// What the appliance had committed when it was killed, and how far each
/// proxy's log was then.
struct Kill {
    main_committed: BTreeSet<String>,
    copy_committed: BTreeSet<String>,
    main_log: usize,
    copy_log: usize,
}

/// The objects the appliance's books count as stored: on the main
/// destination (`objects` stored) and on copy `copy_id` (`copy_objects`).
fn committed(server: &TestServer, copy_id: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30)
        .expect("open the appliance's store");
    let txn = store.read().expect("read transaction");
    let main = store
        .tables
        .objects
        .all(&txn)
        .expect("objects")
        .into_iter()
        .filter(|(_, object)| object.stored)
        .map(|(key, _)| String::from_utf8(key).expect("utf-8 key"))
        .collect();
    let prefix = format!("{copy_id}/");
    let copy = store
        .tables
        .copy_objects
        .all(&txn)
        .expect("copy objects")
        .into_iter()
        .filter_map(|(key, _)| {
            let key = String::from_utf8(key).expect("utf-8 key");
            key.strip_prefix(&prefix).map(str::to_string)
        })
        .collect();
    (main, copy)
}

/// Parts stored on each destination, summed over the archives, from the
/// archives' `copies`: (main, copy).
/// Parts stored on both destinations together, and how many there are to
/// store on both (0, 0 while the appliance does not answer).
fn parts_stored(admin: &Client) -> (u64, u64) {
    let resp = admin.get("/api/v1/archives");
    if resp.status != 200 {
        return (0, 0);
    }
    let (mut stored, mut total) = (0, 0);
    for archive in resp.json().as_array().into_iter().flatten() {
        for copy in archive["copies"].as_array().into_iter().flatten().take(2) {
            stored += copy["parts_remote"].as_u64().unwrap_or(0);
            total += copy["parts_total"].as_u64().unwrap_or(0);
        }
    }
    (stored, total)
}

/// Kills the appliance up to [`KILLS`] times (fewer when everything is
/// stored before), each at a random moment 0–300 ms
/// after it stored one more part somewhere since it was last started (so
/// each kill finds something committed it must not send again), reads its
/// books while it is down, and starts it again on the same address and
/// data.
fn kill_at_random_moments(
    server: &mut TestServer,
    admin: &Client,
    places: (&Place, &Place),
    copy_id: &str,
    rng: &mut StdRng,
    phase: &str,
) -> Vec<Kill> {
    let mut kills = Vec::new();
    for kill in 0..KILLS {
        let (before, total) = parts_stored(admin);
        if total > 0 && before >= total {
            // Everything is stored already (a fast machine): no later
            // kill could land mid-copy; the callers check that one did.
            break;
        }
        wait_until(LIMIT, || {
            let (now, total) = parts_stored(admin);
            now > before || (total > 0 && now >= total)
        });
        let moment = Duration::from_millis(rng.gen_range(0..300));
        // Not a readiness wait: the point is to let the appliance run for
        // a random while before pulling the plug.
        std::thread::sleep(moment);
        server.kill9();
        let (main_committed, copy_committed) = committed(server, copy_id);
        let record = Kill {
            main_committed,
            copy_committed,
            main_log: places.0.proxy.request_log().len(),
            copy_log: places.1.proxy.request_log().len(),
        };
        eprintln!(
            "{phase}: kill {} {moment:?} after a part was stored: {} objects committed on the main destination, {} on the copy",
            kill + 1,
            record.main_committed.len(),
            record.copy_committed.len()
        );
        kills.push(record);
        server.restart();
    }
    kills
}

/// No object committed before a kill was PUT again after it, on either
/// destination; answers how many part PUTs came after the kills.
fn assert_nothing_committed_was_sent_again(kills: &[Kill], main: &Place, copy: &Place) -> usize {
    let mut after = 0;
    for (at, kill) in kills.iter().enumerate() {
        for (place, committed, from, name) in [
            (
                main,
                &kill.main_committed,
                kill.main_log,
                "the main destination",
            ),
            (copy, &kill.copy_committed, kill.copy_log, "the copy"),
        ] {
            let puts = place.part_puts_since(from);
            after += puts.len();
            let again: Vec<&String> = puts.iter().filter(|id| committed.contains(*id)).collect();
            assert!(
                again.is_empty(),
                "after kill {}, objects committed on {name} before it were PUT again: {again:?}",
                at + 1
            );
        }
    }
    after
}

fn all_states(admin: &Client) -> BTreeMap<String, (String, Vec<String>)> {
    admin
        .get("/api/v1/archives")
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|archive| {
            let copies = archive["copies"]
                .as_array()
                .map(|copies| {
                    copies
                        .iter()
                        .map(|copy| copy["state"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (
                archive["id"].as_str().unwrap_or_default().to_string(),
                (
                    archive["state"].as_str().unwrap_or_default().to_string(),
                    copies,
                ),
            )
        })
        .collect()
}

/// Waits until every archive is backed up, complete on both destinations.
fn settle_backed_up(admin: &Client, ids: &[String]) {
    let mut last = BTreeMap::new();
    wait_until(LIMIT, || {
        last = all_states(admin);
        assert!(
            !last.values().any(|(state, _)| state == "damaged"),
            "an archive became damaged: {last:?}"
        );
        last.len() == ids.len()
            && last.values().all(|(state, copies)| {
                state == "backed_up"
                    && copies.len() == 2
                    && copies.iter().all(|copy| copy == "complete")
            })
    });
}

/// Full verification of both destinations, then uncache and cache back:
/// bit-exact.
fn check_everything(admin: &Client, ids: &[String], data: &[Vec<u8>]) {
    for id in ids {
        let resp = admin.request(
            "POST",
            &format!("/api/v1/admin/archives/{id}/verify"),
            &[],
            None,
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        let verification = resp.json();
        assert_eq!(verification["damaged"], 0, "{verification}");
        assert_eq!(
            verification["destinations"].as_array().map(Vec::len),
            Some(2),
            "{verification}"
        );
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/uncache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    wait_until(LIMIT, || {
        all_states(admin)
            .values()
            .all(|(state, _)| state == "uncached")
    });
    for id in ids {
        let resp = admin.request("POST", &format!("/api/v1/archives/{id}/cache"), &[], None);
        assert_eq!(resp.status, 202, "{}", resp.text());
    }
    settle_backed_up(admin, ids);
    for (id, bytes) in ids.iter().zip(data) {
        let resp = admin.get(&format!("/api/v1/archives/{id}/content"));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(sha256_hex(&resp.body), sha256_hex(bytes), "archive {id}");
    }
}

/// The appliance's books after a last kill, against both buckets: on the
/// main destination every object's refcount equals the parts using it
/// (`checked_object_uses`); on the copy every object's refcount equals the
/// archives' copy parts using it; and each bucket holds exactly those
/// objects.
fn check_books(server: &mut TestServer, copy_id: &str, main: &Place, copy: &Place) {
    server.kill9();
    let store = piarchive::store::Store::open(&server.data_dir().join("db"), 1 << 30)
        .expect("open the appliance's store");
    let main_uses = crate::support::checked_object_uses(&store);
    let txn = store.read().expect("read transaction");
    let prefix = format!("{copy_id}/");
    let mut copy_uses: BTreeMap<String, u64> = BTreeMap::new();
    for (key, part) in store.tables.copy_parts.all(&txn).expect("copy parts") {
        if key.starts_with(prefix.as_bytes()) {
            *copy_uses.entry(part.object_id).or_default() += 1;
        }
    }
    let copy_objects: BTreeMap<String, u64> = store
        .tables
        .copy_objects
        .all(&txn)
        .expect("copy objects")
        .into_iter()
        .filter_map(|(key, object)| {
            let key = String::from_utf8(key).expect("utf-8 key");
            Some((key.strip_prefix(&prefix)?.to_string(), object.refcount))
        })
        .collect();
    assert_eq!(
        copy_objects, copy_uses,
        "the copy's refcounts equal its parts using each object"
    );
    let stored = |place: &Place| -> BTreeSet<String> {
        crate::support::files_under(&place.s3.object_path(&format!("{PREFIX}/parts")))
            .iter()
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        stored(main),
        main_uses.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        stored(copy),
        copy_uses.keys().cloned().collect::<BTreeSet<_>>()
    );
}

fn upload_all(admin: &Client, seed: u64) -> (Vec<String>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = (0..ARCHIVES)
        .map(|i| random_bytes(ARCHIVE_SIZE + i * 4099, seed ^ (i as u64 + 1)))
        .collect();
    let ids = data
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            admin.upload_ok(&format!("crash-{i}"), bytes)["id"]
                .as_str()
                .expect("an id")
                .to_string()
        })
        .collect();
    (ids, data)
}

#[test]
fn kill_9_during_the_initial_copy_to_an_added_destination_sends_nothing_twice() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (PIARCHIVE_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let (main, copy) = (Place::start(), Place::start());
    let mut server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&main.proxy.endpoint, PREFIX, SECRET_KEY));
    let (ids, data) = upload_all(&admin, seed);
    wait_until(LIMIT, || {
        let states = all_states(&admin);
        states.len() == ids.len() && states.values().all(|(state, _)| state == "backed_up")
    });

    // The copy destination catches up slowly while being killed.
    copy.proxy.set_response_delay(SLOW_ANSWER);
    let copy_id = add_copy(&admin, &copy.s3, &copy.proxy.endpoint);
    let kills = kill_at_random_moments(
        &mut server,
        &admin,
        (&main, &copy),
        &copy_id,
        &mut rng,
        "initial copy",
    );
    copy.proxy.set_response_delay(Duration::ZERO);
    settle_backed_up(&admin, &ids);
    let (_, copy_total) = committed_totals(&admin, &ids);
    assert!(
        kills
            .iter()
            .any(|kill| !kill.copy_committed.is_empty() && kill.copy_committed.len() < copy_total),
        "the kills must land while the copy is under way, after parts were committed there"
    );
    let after = assert_nothing_committed_was_sent_again(&kills, &main, &copy);
    eprintln!("{after} part PUTs after the kills, none of a committed object");
    check_everything(&admin, &ids, &data);
    check_books(&mut server, &copy_id, &main, &copy);
}

#[test]
fn kill_9_during_a_backup_to_two_destinations_sends_nothing_twice() {
    let seed = seed();
    eprintln!("crash test seed: {seed} (PIARCHIVE_CRASH_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let (main, copy) = (Place::start(), Place::start());
    let mut server = TestServer::start();
    let admin = server.admin();
    set_remote(&admin, &s3_json(&main.proxy.endpoint, PREFIX, SECRET_KEY));
    let copy_id = add_copy(&admin, &copy.s3, &copy.proxy.endpoint);

    // Receive every archive first with the upload window closed, so no
    // kill lands on an HTTP upload.
    admin.put_settings(|s| s["upload_window"] = closed_upload_window());
    let (ids, data) = upload_all(&admin, seed);
    main.proxy.set_response_delay(SLOW_ANSWER);
    copy.proxy.set_response_delay(SLOW_ANSWER);
    admin.put_settings(|s| s["upload_window"] = Value::Null);
    let kills = kill_at_random_moments(
        &mut server,
        &admin,
        (&main, &copy),
        &copy_id,
        &mut rng,
        "backup",
    );
    main.proxy.set_response_delay(Duration::ZERO);
    copy.proxy.set_response_delay(Duration::ZERO);
    settle_backed_up(&admin, &ids);
    let last = kills.last().expect("kills");
    let (main_total, copy_total) = committed_totals(&admin, &ids);
    assert!(
        last.main_committed.len() < main_total || last.copy_committed.len() < copy_total,
        "the kills must land while the backup is under way"
    );
    assert!(
        kills.iter().any(|kill| !kill.copy_committed.is_empty()),
        "some kill must come after parts were committed on the copy"
    );
    let after = assert_nothing_committed_was_sent_again(&kills, &main, &copy);
    eprintln!("{after} part PUTs after the kills, none of a committed object");
    check_everything(&admin, &ids, &data);
    check_books(&mut server, &copy_id, &main, &copy);
}

/// The part objects the archives need on each destination at the end
/// (every part, each on both): (main, copy).
fn committed_totals(admin: &Client, ids: &[String]) -> (usize, usize) {
    let parts: usize = ids
        .iter()
        .map(|id| {
            admin.get(&format!("/api/v1/archives/{id}")).json()["parts_total"]
                .as_u64()
                .unwrap_or(0) as usize
        })
        .sum();
    (parts, parts)
}
