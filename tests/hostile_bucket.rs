//! A hostile bucket during a recovery (issue 26, item 7): the bucket a
//! restore is pointed at answers absurdly — a manifest the size of 2^40
//! parts, one that never ends, listings that never end, listing pages of
//! gigabytes, bodies that stall, an error answer that never ends. Each is
//! refused with a sentence, in seconds, and `piarchive recover` holds at
//! most a bounded amount of memory (its peak RSS, read from /proc while it
//! runs). The bucket is `support::hostile_s3`, a server that verifies
//! nothing and answers what each test wants.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use piarchive::recovery::Recovery;
use piarchive::remote::{RemoteSettings, TransferOptions};
use piarchive::repo::catalog::Catalog;
use piarchive::repo::{KdfParams, Manifest, ManifestPart, ObjectId, RepoConfig, RepoKeys};
use piarchive::store::records::{Role, UserRecord};
use piarchive::store::Store;

use crate::support::hostile_s3::{Answer, HostileBucket, Request};

const PASSPHRASE: &str = "the hostile bucket's own passphrase";
const MASTER_KEY: [u8; 32] = [7; 32];
const BUCKET: &str = "hostile";
const PREFIX: &str = "pi";
/// `piarchive recover` may grow to this peak RSS, whatever the bucket says.
const PEAK_RSS_LIMIT_KIB: u64 = 200 * 1024;

/// One part's entry as an appliance writes it, for manifests of any size.
const PART_ENTRY: &str = "{\"object_id\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"length\":4194304,\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"},";

/// The objects a genuine backup starts with: a config unlocking with
/// [`PASSPHRASE`] (cheap Argon2 parameters) and a catalog with one admin.
struct Backup {
    config: Vec<u8>,
    catalog: Vec<u8>,
    keys: RepoKeys,
}

fn backup() -> Backup {
    let kdf = KdfParams::new(1024, 1, 1).unwrap();
    let config = RepoConfig::create(PASSPHRASE, MASTER_KEY, [1; 16], [2; 24], kdf).unwrap();
    let keys = RepoKeys::from_master_key(&MASTER_KEY);
    let catalog = Catalog {
        users: vec![UserRecord {
            id: "u1".to_owned(),
            username: "anna".to_owned(),
            password_hash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
            role: Role::Admin,
            created_at: 1_700_000_000,
            disabled: false,
            quota_bytes: None,
        }],
        settings: Default::default(),
    };
    let catalog = catalog.seal(&keys, [3; 24]).unwrap();
    Backup {
        config: config.encode(),
        catalog,
        keys,
    }
}

/// The key a request is for, relative to the prefix (`None` for the bucket).
fn key_of(request: &Request) -> Option<String> {
    let rest = request.path.strip_prefix(&format!("/{BUCKET}/{PREFIX}/"))?;
    Some(rest.to_owned())
}

/// A one-page listing of `keys` (relative), as S3 writes it.
fn listing(keys: &[String], next: Option<&str>) -> Vec<u8> {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>hostile</Name>",
    );
    for key in keys {
        xml.push_str(&format!(
            "<Contents><Key>{PREFIX}/{key}</Key><Size>1</Size></Contents>"
        ));
    }
    match next {
        Some(token) => xml.push_str(&format!(
            "<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        )),
        None => xml.push_str("<IsTruncated>false</IsTruncated>"),
    }
    xml.push_str("</ListBucketResult>");
    xml.into_bytes()
}

/// Serves `backup`'s config and catalog; everything else goes to `rest`.
fn bucket(
    rest: impl Fn(&Request, Option<&str>) -> Answer + Send + Sync + 'static,
) -> HostileBucket {
    let backup = Arc::new(backup());
    HostileBucket::start(move |request| match key_of(request).as_deref() {
        Some("config") => Answer::ok(backup.config.clone()),
        Some("catalog/appliance") => Answer::ok(backup.catalog.clone()),
        key => rest(request, key),
    })
}

/// Peak RSS and outcome of `piarchive recover` against `hostile`.
struct Run {
    ok: bool,
    output: String,
    peak_rss_kib: u64,
    took: Duration,
}

fn recover_cli(hostile: &HostileBucket) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let remote_file = dir.path().join("remote.json");
    std::fs::write(&remote_file, hostile.settings(BUCKET, PREFIX).to_string()).unwrap();
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .arg("recover")
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--remote")
        .arg(&remote_file)
        .env_remove("PIARCHIVE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start piarchive recover");
    writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut peak_rss_kib = 0;
    let status = loop {
        peak_rss_kib = peak_rss_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if began.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "piarchive recover still ran after 120 s against the hostile bucket ({} requests)",
                hostile.requests()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    Run {
        ok: status.success(),
        output,
        peak_rss_kib,
        took: began.elapsed(),
    }
}

/// The highest resident memory of process `pid` so far.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn assert_bounded(run: &Run, seconds: u64) {
    eprintln!(
        "piarchive recover: peak RSS {} MiB, {:.1} s",
        run.peak_rss_kib / 1024,
        run.took.as_secs_f64()
    );
    assert!(
        run.peak_rss_kib < PEAK_RSS_LIMIT_KIB,
        "piarchive recover peaked at {} MiB: {}",
        run.peak_rss_kib / 1024,
        run.output
    );
    assert!(
        run.took < Duration::from_secs(seconds),
        "piarchive recover took {:?}: {}",
        run.took,
        run.output
    );
}

fn manifest_id(letter: char) -> String {
    letter.to_string().repeat(32)
}

/// A manifest as big as 2^40 parts would make it, announced up front; one
/// streamed for ever without a length; and a genuine one beside them. The
/// two are reported damaged with the sentence, unread (or read no further
/// than a manifest can be), and the genuine archive is still recovered.
#[test]
fn manifests_the_size_of_2_to_the_40_parts_are_refused_and_the_rest_recovered() {
    let (announced, endless, genuine) = (manifest_id('a'), manifest_id('b'), manifest_id('c'));
    let backup = backup();
    let part = ObjectId::parse(&"ab".repeat(32)).unwrap();
    let manifest = Manifest {
        archive_id: genuine.clone(),
        owner: "anna".to_owned(),
        name: "genuine".to_owned(),
        original_filename: "genuine.bin".to_owned(),
        size: 5,
        sha256: "cd".repeat(32),
        created: 1_700_000_000,
        path: None,
        parts: vec![ManifestPart {
            object_id: part.clone(),
            length: 5,
            sha256: "ef".repeat(32),
        }],
    };
    let sealed = manifest.seal(&backup.keys, [4; 24]).unwrap();
    let ids = [announced.clone(), endless.clone(), genuine.clone()];
    let head = b"{\"format_version\":1,\"parts\":[".to_vec();
    let hostile = bucket(move |request, key| {
        let manifest_keys: Vec<String> = ids.iter().map(|id| format!("manifests/{id}")).collect();
        match (request.param("prefix"), key) {
            (Some(prefix), None) if prefix.ends_with("manifests/") => {
                Answer::ok(listing(&manifest_keys, None))
            }
            (Some(_), None) => Answer::ok(listing(&[piarchive::repo::part_key(&part)], None)),
            (_, Some(key)) if key == manifest_keys[0] => Answer::Lazy {
                status: 200,
                length: Some((1u64 << 40) * PART_ENTRY.len() as u64),
                head: head.clone(),
                repeat: PART_ENTRY.as_bytes().to_vec(),
                pause: Duration::ZERO,
            },
            (_, Some(key)) if key == manifest_keys[1] => Answer::Lazy {
                status: 200,
                length: None,
                head: head.clone(),
                repeat: PART_ENTRY.as_bytes().to_vec(),
                pause: Duration::ZERO,
            },
            (_, Some(key)) if key == manifest_keys[2] => Answer::ok(sealed.clone()),
            _ => Answer::not_found(),
        }
    });
    let run = recover_cli(&hostile);
    assert!(run.ok, "{}", run.output);
    assert!(
        run.output.contains(&format!(
            "damaged {announced}: The object \"manifests/{announced}\""
        )) && run.output.contains(&format!(
            "is {} bytes, more than the",
            (1u64 << 40) * PART_ENTRY.len() as u64
        )),
        "{}",
        run.output
    );
    assert!(
        run.output.contains(&format!(
            "damaged {endless}: The object \"manifests/{endless}\""
        )) && run.output.contains("sent more, more than the"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("recovered 1 users and 1 of 3 archives (2 damaged)"),
        "{}",
        run.output
    );
    // The endless one was read no further than a manifest can be (plus
    // what was in flight), the announced one not at all.
    let limit = piarchive::repo::MAX_MANIFEST_BYTES + (8 << 20);
    assert!(
        hostile.bytes_sent() < limit,
        "{} bytes sent",
        hostile.bytes_sent()
    );
    assert_bounded(&run, 60);
}

/// A listing that never ends: a new page of 1,000 new keys and a new
/// continuation token for ever. Cut at a million keys, with a sentence
/// saying how many pages and keys were seen.
#[test]
fn a_listing_of_millions_of_keys_is_cut_with_the_count() {
    let hostile = bucket(|request, key| {
        if key.is_some() {
            return Answer::not_found();
        }
        let page: u64 = request
            .param("continuation-token")
            .and_then(|token| token.strip_prefix("t"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("manifests/{:032x}", page * 1000 + i))
            .collect();
        Answer::ok(listing(&keys, Some(&format!("t{}", page + 1))))
    });
    let run = recover_cli(&hostile);
    assert!(!run.ok, "{}", run.output);
    assert!(
        run.output
            .contains("went on past 1001 pages and 1001000 keys")
            && run.output.contains("at most 5000 pages and 1000000 keys"),
        "{}",
        run.output
    );
    assert_bounded(&run, 90);
}

/// A listing of empty pages, each with a new continuation token, for ever:
/// cut at 5,000 pages.
#[test]
fn a_listing_of_empty_pages_without_end_is_cut_at_the_page_limit() {
    let hostile = bucket(|request, key| {
        if key.is_some() {
            return Answer::not_found();
        }
        let token = request.param("continuation-token").unwrap_or("t");
        Answer::ok(listing(&[], Some(&format!("{token}x"))))
    });
    let run = recover_cli(&hostile);
    assert!(!run.ok, "{}", run.output);
    assert!(
        run.output.contains("went on past 5000 pages and 0 keys"),
        "{}",
        run.output
    );
    // Config, catalog and the pages, nothing more.
    assert!(
        (5002..5010).contains(&hostile.requests()),
        "{} requests",
        hostile.requests()
    );
    assert_bounded(&run, 90);
}

/// A listing page of gigabytes, streamed lazily: announced (refused unread)
/// and chunked without end (refused after 16 MiB).
#[test]
fn listing_pages_of_gigabytes_are_refused_after_16_mib() {
    for announced in [Some(4u64 << 30), None] {
        let hostile = bucket(move |_, key| {
            if key.is_some() {
                return Answer::not_found();
            }
            Answer::Lazy {
                status: 200,
                length: announced,
                head: b"<?xml version=\"1.0\"?><ListBucketResult><Name>hostile</Name>".to_vec(),
                repeat: format!(
                    "<Contents><Key>{PREFIX}/manifests/{}</Key></Contents>",
                    "f".repeat(32)
                )
                .into_bytes(),
                pause: Duration::ZERO,
            }
        });
        let run = recover_cli(&hostile);
        assert!(!run.ok, "{}", run.output);
        assert!(
            run.output
                .contains("sent a listing page of \"pi/manifests/\" larger than 16 MiB"),
            "{announced:?}: {}",
            run.output
        );
        assert!(
            hostile.bytes_sent() < 32 << 20,
            "{} bytes sent",
            hostile.bytes_sent()
        );
        assert_bounded(&run, 60);
    }
}

fn options() -> TransferOptions {
    TransferOptions {
        timeout: Duration::from_millis(300),
        max_attempts: 1,
        base_backoff: Duration::from_millis(10),
    }
}

fn prepare(hostile: &HostileBucket) -> Result<Recovery, String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), 64 << 20).unwrap();
    let settings: RemoteSettings =
        serde_json::from_value(hostile.settings(BUCKET, PREFIX)).unwrap();
    Recovery::prepare(&store, settings, PASSPHRASE, &options()).map_err(|e| e.to_string())
}

/// A config that stalls after its first bytes, and one dribbled a byte
/// every 100 ms (which no read timeout catches): both end by the request's
/// deadline (thirty of the 300 ms progress waits), with a sentence.
#[test]
fn bodies_that_stall_or_dribble_end_by_the_deadline() {
    for pause in [Duration::from_secs(30), Duration::from_millis(100)] {
        let hostile = HostileBucket::start(move |_| Answer::Lazy {
            status: 200,
            length: Some(1000),
            head: b"{".to_vec(),
            repeat: b" ".to_vec(),
            pause,
        });
        let began = Instant::now();
        let error = prepare(&hostile)
            .err()
            .expect("a stalled config is refused");
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "{pause:?}: took {:?}",
            began.elapsed()
        );
        assert!(
            error.contains("broke off") && error.contains("piarchive will try again"),
            "{pause:?}: {error}"
        );
    }
}

/// An error answer whose body never ends: 64 KiB of it is read, and the
/// status still says what went wrong.
#[test]
fn an_error_answer_without_end_is_read_no_further_than_64_kib() {
    let hostile = HostileBucket::start(|_| Answer::Lazy {
        status: 403,
        length: None,
        head: b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>".to_vec(),
        repeat: b"no ".to_vec(),
        pause: Duration::ZERO,
    });
    let began = Instant::now();
    let error = prepare(&hostile).err().expect("a 403 is refused");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
    assert!(error.contains("denied") || error.contains("403"), "{error}");
    assert!(
        hostile.bytes_sent() < 16 << 20,
        "{} bytes sent",
        hostile.bytes_sent()
    );
}
