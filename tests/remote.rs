//! Integration tests of the `remote` module: the S3 client against a real,
//! signature-checking S3 server (s3s-fs, in-process; the cases in [`cases`]
//! also run against Garage in `tests/garage.rs`), through a proxy that
//! injects failures, and the folder remote.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::support::fault_proxy::{Fault, FaultPlan, FaultProxy};
use crate::support::s3_server::{self, S3TestServer};
use crate::support::s3_target::S3Target;
use piarchive::remote::s3::S3Client;
use piarchive::remote::{self, ErrorKind, Remote, RemoteSettings, TransferOptions};

/// Short timeout and backoff so failure tests stay fast.
fn fast_options() -> TransferOptions {
    TransferOptions {
        timeout: Duration::from_secs(2),
        max_attempts: 8,
        base_backoff: Duration::from_millis(5),
    }
}

/// Deterministic, non-repeating bytes so a misplaced or torn range shows.
fn sample_bytes(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 32) as u8
        })
        .collect()
}

fn client(settings: &RemoteSettings, options: &TransferOptions) -> S3Client {
    S3Client::new(settings, options).expect("valid S3 settings")
}

/// Keys with quotes, markup characters, spaces, plus signs, percent signs and
/// emoji: they must survive the URL encoding, the signature and the XML.
const HOSTILE_KEYS: &[&str] = &[
    "manifests/quote\"and'apostrophe",
    "manifests/<tag>&amp;",
    "manifests/space and+plus=equals",
    "manifests/percent%20literal",
    "manifests/emoji 😀 ünïcödé",
    "manifests/semi;colon,comma:colon@at!bang(paren)*star$dollar",
];

/// The S3 client tests that need nothing but a real S3 server, run against
/// each server: `s3_client_tests!(ServerType)` in a test module expands to
/// one `#[test]` per case in [`cases`], each starting its own server.
macro_rules! s3_client_tests {
    ($server:ty) => {
        #[test]
        fn put_get_head_delete_round_trip() {
            $crate::remote::cases::put_get_head_delete_round_trip::<$server>()
        }
        #[test]
        fn the_server_checks_the_signed_payload_hash() {
            $crate::remote::cases::the_server_checks_the_signed_payload_hash::<$server>()
        }
        #[test]
        fn hostile_key_names_round_trip_and_list() {
            $crate::remote::cases::hostile_key_names_round_trip_and_list::<$server>()
        }
        #[test]
        fn list_follows_continuation_tokens_and_stays_in_the_prefix() {
            $crate::remote::cases::list_follows_continuation_tokens_and_stays_in_the_prefix::<$server>()
        }
        #[test]
        fn lists_more_than_a_thousand_keys_in_server_sized_pages() {
            $crate::remote::cases::lists_more_than_a_thousand_keys_in_server_sized_pages::<$server>()
        }
        #[test]
        fn virtual_hosted_addressing() {
            $crate::remote::cases::virtual_hosted_addressing::<$server>()
        }
        #[test]
        fn wrong_secret_is_permanent_with_a_sentence_and_not_retried() {
            $crate::remote::cases::wrong_secret_is_permanent_with_a_sentence_and_not_retried::<$server>()
        }
        #[test]
        fn unknown_access_key_is_permanent() {
            $crate::remote::cases::unknown_access_key_is_permanent::<$server>()
        }
        #[test]
        fn missing_bucket_is_permanent() {
            $crate::remote::cases::missing_bucket_is_permanent::<$server>()
        }
        #[test]
        fn survives_injected_failures() {
            $crate::remote::cases::survives_injected_failures::<$server>()
        }
        #[test]
        fn live_check_passes() {
            $crate::remote::cases::live_check_passes::<$server>()
        }
    };
}
#[cfg(feature = "garage-tests")]
pub(crate) use s3_client_tests;

/// The bodies of [`s3_client_tests!`], generic over the server.
pub(crate) mod cases {
    use super::*;

    pub fn put_get_head_delete_round_trip<T: S3Target>() {
        let server = T::start();
        let settings = server.settings("piarchive");
        let remote = remote::open(&settings, &fast_options()).unwrap();
        let body = sample_bytes(3 * 1024 * 1024 + 17, 1);

        remote.put("parts/ab/object-1", &body).unwrap();
        assert_eq!(remote.get("parts/ab/object-1").unwrap(), body);
        assert_eq!(
            remote.head("parts/ab/object-1").unwrap(),
            Some(body.len() as u64)
        );
        // Stored under the configured prefix, byte for byte.
        assert_eq!(
            server.stored_object("piarchive/parts/ab/object-1"),
            Some(body.clone())
        );

        // Overwrite, then an empty object.
        remote.put("parts/ab/object-1", b"short").unwrap();
        assert_eq!(remote.get("parts/ab/object-1").unwrap(), b"short");
        remote.put("empty", b"").unwrap();
        assert_eq!(remote.get("empty").unwrap(), b"");
        assert_eq!(remote.head("empty").unwrap(), Some(0));

        remote.delete("parts/ab/object-1").unwrap();
        assert_eq!(remote.head("parts/ab/object-1").unwrap(), None);
        let missing = remote.get("parts/ab/object-1").unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
        remote.delete("parts/ab/object-1").unwrap(); // missing is fine
        assert_eq!(
            remote.describe(),
            format!(
                "s3://{}/piarchive at {}",
                s3_server::BUCKET,
                server.endpoint()
            )
        );
    }

    pub fn the_server_checks_the_signed_payload_hash<T: S3Target>() {
        let server = T::start();
        let options = TransferOptions {
            max_attempts: 2,
            ..fast_options()
        };
        let remote = client(&server.settings("hash"), &options);
        let body = b"ciphertext of a part";
        let wrong_hash = "8c1e2a4a3c6d6e5ee4bdd7b1e2a4bd4a0f8fcfc6b3dfb6b88b1cfb4ec1f6ac1a";
        let error = remote.put_hashed("part", body, wrong_hash).unwrap_err();
        // Bytes that do not match the signed hash were corrupted on the way:
        // worth another try, never stored.
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert_eq!(remote.head("part").unwrap(), None, "nothing stored");

        let real = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(body))
        };
        remote.put_hashed("part", body, &real).unwrap();
        assert_eq!(remote.get("part").unwrap(), body);
    }

    pub fn hostile_key_names_round_trip_and_list<T: S3Target>() {
        let server = T::start();
        let remote = client(&server.settings("pre fix"), &fast_options());
        for (index, key) in HOSTILE_KEYS.iter().enumerate() {
            let body = format!("body of {key} #{index}");
            remote
                .put(key, body.as_bytes())
                .unwrap_or_else(|e| panic!("put {key:?}: {e}"));
            assert_eq!(remote.get(key).unwrap(), body.as_bytes(), "{key:?}");
        }
        let mut expected: Vec<String> = HOSTILE_KEYS.iter().map(|k| k.to_string()).collect();
        expected.sort();
        assert_eq!(remote.list("manifests/").unwrap(), expected);
    }

    pub fn list_follows_continuation_tokens_and_stays_in_the_prefix<T: S3Target>() {
        let server = T::start();
        let remote = client(&server.settings("mine"), &fast_options()).with_list_page_size(7);
        let other = client(&server.settings("theirs"), &fast_options());
        let mut expected = Vec::new();
        for index in 0..25 {
            let key = format!("parts/{:02x}/object-{index:03}", index % 4);
            remote.put(&key, index.to_string().as_bytes()).unwrap();
            expected.push(key);
        }
        remote.put("manifests/archive-1", b"m").unwrap();
        other.put("parts/00/not-mine", b"x").unwrap();
        expected.sort();

        assert_eq!(remote.list("parts/").unwrap(), expected);
        let all = remote.list("").unwrap();
        assert_eq!(all.len(), 26);
        assert!(all.contains(&"manifests/archive-1".to_owned()));
        assert_eq!(
            remote.list("parts/01/").unwrap(),
            expected
                .iter()
                .filter(|k| k.starts_with("parts/01/"))
                .cloned()
                .collect::<Vec<_>>()
        );
        assert_eq!(remote.list("nothing/").unwrap(), Vec::<String>::new());
        assert_eq!(
            other.list("").unwrap(),
            vec!["parts/00/not-mine".to_owned()]
        );
    }

    pub fn lists_more_than_a_thousand_keys_in_server_sized_pages<T: S3Target>() {
        let server = T::start();
        // Objects written straight into the server's store (s3s-fs: its
        // folder, to keep the test fast); the listing itself goes through S3
        // and a counting proxy.
        let mut expected = Vec::new();
        for index in 0..1105 {
            let key = format!("parts/{:02x}/{index:05}", index % 256);
            server.store_object(&format!("big/{key}"), b"x");
            expected.push(key);
        }
        expected.sort();
        let proxy = FaultProxy::start(server.address(), FaultPlan::Always(Fault::Pass));
        let remote = client(
            &server.settings_via(&proxy.endpoint, "big"),
            &fast_options(),
        );
        assert_eq!(remote.list("").unwrap(), expected);
        assert_eq!(proxy.requests(), 2, "1105 keys take two pages of 1000");
    }

    pub fn virtual_hosted_addressing<T: S3Target>() {
        let server = T::start_virtual_hosted("s3.piarchive.test");
        let settings = RemoteSettings::S3 {
            endpoint: server.endpoint(),
            region: s3_server::REGION.to_owned(),
            bucket: s3_server::BUCKET.to_owned(),
            prefix: "vh".to_owned(),
            path_style: false,
            access_key_id: s3_server::ACCESS_KEY.to_owned(),
            secret_access_key: s3_server::SECRET_KEY.to_owned(),
            object_lock: None,
        };
        let remote = client(&settings, &fast_options()).with_connect_to(server.address());
        remote.put("config", b"virtual").unwrap();
        assert_eq!(remote.get("config").unwrap(), b"virtual");
        assert_eq!(remote.list("").unwrap(), vec!["config".to_owned()]);
        assert_eq!(server.stored_object("vh/config"), Some(b"virtual".to_vec()));
    }

    pub fn wrong_secret_is_permanent_with_a_sentence_and_not_retried<T: S3Target>() {
        let server = T::start();
        let proxy = FaultProxy::start(server.address(), FaultPlan::Always(Fault::Pass));
        let mut settings = server.settings_via(&proxy.endpoint, "p");
        if let RemoteSettings::S3 {
            secret_access_key, ..
        } = &mut settings
        {
            *secret_access_key = "not-the-secret".to_owned();
        }
        let remote = client(&settings, &fast_options());
        let error = remote.put("k", b"v").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
        assert!(error.message.contains("secret"), "{}", error.message);
        assert_eq!(proxy.requests(), 1, "a permanent error must not be retried");
        // HEAD has no error body: still permanent, still a sentence.
        let error = remote.head("k").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
        assert!(error.message.ends_with('.'), "{}", error.message);
    }

    pub fn unknown_access_key_is_permanent<T: S3Target>() {
        let server = T::start();
        let mut settings = server.settings("p");
        if let RemoteSettings::S3 { access_key_id, .. } = &mut settings {
            *access_key_id = "NOBODYKNOWSME".to_owned();
        }
        let error = client(&settings, &fast_options())
            .put("k", b"v")
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
        assert!(error.message.contains("access key"), "{}", error.message);
    }

    pub fn missing_bucket_is_permanent<T: S3Target>() {
        let server = T::start();
        let mut settings = server.settings("p");
        if let RemoteSettings::S3 { bucket, .. } = &mut settings {
            *bucket = "no-such-bucket".to_owned();
        }
        let remote = client(&settings, &fast_options());
        // s3s-fs answers NoSuchBucket only on bucket operations (its PUT
        // creates the folder, its GET says NoSuchKey), so listing shows it
        // here; the classification of NoSuchBucket on any request is unit-tested.
        let error = remote.list("").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
        assert!(
            error.message.contains("\"no-such-bucket\" does not exist"),
            "{}",
            error.message
        );
    }

    pub fn a_clock_an_hour_off_is_corrected_from_the_date_header<T: S3Target>() {
        for skew_secs in [3600i64, -3600] {
            let server = T::start();
            let proxy = FaultProxy::start(server.address(), FaultPlan::Always(Fault::Pass));
            let skew = Duration::from_secs(skew_secs.unsigned_abs());
            let clock: remote::s3::Clock = if skew_secs > 0 {
                Arc::new(move || SystemTime::now() + skew)
            } else {
                Arc::new(move || SystemTime::now() - skew)
            };
            let options = TransferOptions {
                max_attempts: 1, // the clock retry must not need the backoff budget
                ..fast_options()
            };
            let remote =
                client(&server.settings_via(&proxy.endpoint, "clock"), &options).with_clock(clock);

            remote.put("k", b"signed with a corrected clock").unwrap();
            assert_eq!(
                proxy.requests(),
                2,
                "skew {skew_secs}: rejected once, then accepted"
            );
            let offset = remote.clock_offset_secs();
            assert!(
                (offset + skew_secs).abs() <= 2,
                "skew {skew_secs}: learnt offset {offset}"
            );
            assert_eq!(remote.get("k").unwrap(), b"signed with a corrected clock");
            assert_eq!(proxy.requests(), 3, "later requests are right first time");

            // HEAD answers carry no error code: the Date header alone must
            // reveal the clock problem.
            let clock: remote::s3::Clock = if skew_secs > 0 {
                Arc::new(move || SystemTime::now() + skew)
            } else {
                Arc::new(move || SystemTime::now() - skew)
            };
            let fresh =
                client(&server.settings_via(&proxy.endpoint, "clock"), &options).with_clock(clock);
            assert_eq!(fresh.head("k").unwrap(), Some(29));
            assert_eq!(proxy.requests(), 5, "HEAD rejected once, then accepted");
        }
    }

    pub fn survives_injected_failures<T: S3Target>() {
        let server = T::start();
        let proxy = FaultProxy::start(
            server.address(),
            FaultPlan::Random {
                fraction: 0.4,
                faults: vec![
                    Fault::ServerError,
                    Fault::SlowDown,
                    Fault::Reset,
                    Fault::Truncate,
                    Fault::DropResponse,
                ],
                max_consecutive: 3,
                seed: 20_240_601,
            },
        );
        let remote = client(
            &server.settings_via(&proxy.endpoint, "flaky"),
            &fast_options(),
        )
        .with_list_page_size(4);
        let started = Instant::now();
        let keys: Vec<String> = (0..12).map(|i| format!("parts/{i:02}")).collect();
        for (index, key) in keys.iter().enumerate() {
            remote
                .put(key, &sample_bytes(64 * 1024 + index, index as u8))
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
        }
        for (index, key) in keys.iter().enumerate() {
            let body = remote.get(key).unwrap_or_else(|e| panic!("get {key}: {e}"));
            assert_eq!(body, sample_bytes(64 * 1024 + index, index as u8), "{key}");
            assert_eq!(
                remote.head(key).unwrap(),
                Some(64 * 1024 + index as u64),
                "{key}"
            );
        }
        assert_eq!(remote.list("parts/").unwrap(), keys);
        for key in keys.iter().step_by(2) {
            remote.delete(key).unwrap();
        }
        let remaining: Vec<String> = keys.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(remote.list("parts/").unwrap(), remaining);

        let counts = proxy.counts();
        eprintln!(
            "fault proxy: {} requests, {} faults injected {counts:?}, {:?}",
            proxy.requests(),
            proxy.faults_injected(),
            started.elapsed()
        );
        for fault in [
            Fault::ServerError,
            Fault::SlowDown,
            Fault::Reset,
            Fault::Truncate,
            Fault::DropResponse,
        ] {
            assert!(
                counts.get(&fault).copied().unwrap_or(0) > 0,
                "{fault:?} was never injected: {counts:?}"
            );
        }
    }

    pub fn live_check_passes<T: S3Target>() {
        let server = T::start();
        let remote = remote::open(&server.settings("checked"), &fast_options()).unwrap();
        remote::check(remote.as_ref()).unwrap();
        assert_eq!(remote.list("").unwrap(), Vec::<String>::new());
    }
}

mod s3 {
    use super::*;

    s3_client_tests!(S3TestServer);

    /// Not in [`s3_client_tests!`]: Garage accepts any request date less
    /// than 24 hours old, so it never asks for the correction.
    #[test]
    fn a_clock_an_hour_off_is_corrected_from_the_date_header() {
        cases::a_clock_an_hour_off_is_corrected_from_the_date_header::<S3TestServer>()
    }

    #[test]
    fn a_stalled_request_times_out_and_is_retried() {
        let server = S3TestServer::start();
        let proxy = FaultProxy::start(server.address, FaultPlan::Sequence(vec![Fault::Stall]));
        let options = TransferOptions {
            timeout: Duration::from_secs(1),
            ..fast_options()
        };
        let remote = client(&server.settings_via(&proxy.endpoint, "stall"), &options);
        let started = Instant::now();
        remote.put("k", b"after a stall").unwrap();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(1),
            "finished in {elapsed:?}: the stall was not waited out"
        );
        assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
        assert_eq!(proxy.requests(), 2);
        assert_eq!(
            client(&server.settings("stall"), &options)
                .get("k")
                .unwrap(),
            b"after a stall"
        );
    }

    #[test]
    fn a_truncated_download_is_detected_and_fetched_again() {
        let server = S3TestServer::start();
        let body = sample_bytes(512 * 1024, 7);
        client(&server.settings("cut"), &fast_options())
            .put("part", &body)
            .unwrap();
        let proxy = FaultProxy::start(
            server.address,
            FaultPlan::Sequence(vec![Fault::Truncate, Fault::Truncate]),
        );
        let remote = client(
            &server.settings_via(&proxy.endpoint, "cut"),
            &fast_options(),
        );
        assert_eq!(remote.get("part").unwrap(), body);
        assert_eq!(proxy.requests(), 3);
    }

    #[test]
    fn gives_up_after_max_attempts_with_a_transient_error() {
        let server = S3TestServer::start();
        let proxy = FaultProxy::start(server.address, FaultPlan::Always(Fault::SlowDown));
        let options = TransferOptions {
            max_attempts: 3,
            ..fast_options()
        };
        let remote = client(&server.settings_via(&proxy.endpoint, "busy"), &options);
        let error = remote.put("k", b"v").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.message.contains("SlowDown"), "{}", error.message);
        assert_eq!(proxy.requests(), 3);
    }

    #[test]
    fn an_unreachable_endpoint_is_transient() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = S3TestServer::start();
        let options = TransferOptions {
            max_attempts: 2,
            ..fast_options()
        };
        let remote = client(
            &server.settings_via(&format!("http://127.0.0.1:{port}"), ""),
            &options,
        );
        let error = remote.get("k").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.message.contains("connect"), "{}", error.message);
    }
}

mod dir {
    use super::*;
    use piarchive::remote::dir::DirRemote;

    #[test]
    fn round_trip_overwrite_and_delete() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("nas").join("piarchive");
        let settings = RemoteSettings::Dir { path: root.clone() };
        let remote = remote::open(&settings, &TransferOptions::default()).unwrap();
        assert!(root.is_dir(), "open creates the folder");
        assert_eq!(remote.describe(), format!("folder {}", root.display()));

        let body = sample_bytes(1024 * 1024 + 3, 2);
        remote.put("parts/ab/object", &body).unwrap();
        assert_eq!(std::fs::read(root.join("parts/ab/object")).unwrap(), body);
        assert_eq!(remote.get("parts/ab/object").unwrap(), body);
        assert_eq!(
            remote.head("parts/ab/object").unwrap(),
            Some(body.len() as u64)
        );
        remote.put("parts/ab/object", b"new").unwrap();
        assert_eq!(remote.get("parts/ab/object").unwrap(), b"new");

        remote.delete("parts/ab/object").unwrap();
        assert_eq!(remote.head("parts/ab/object").unwrap(), None);
        assert_eq!(
            remote.get("parts/ab/object").unwrap_err().kind,
            ErrorKind::NotFound
        );
        remote.delete("parts/ab/object").unwrap();
        assert_eq!(
            remote.head("parts").unwrap(),
            None,
            "a folder is not an object"
        );
        remote::check(remote.as_ref()).unwrap();
    }

    #[test]
    fn lists_by_prefix_and_skips_temporary_files() {
        let temp = tempfile::tempdir().unwrap();
        let remote = DirRemote::new(temp.path()).unwrap();
        for key in HOSTILE_KEYS {
            remote.put(key, key.as_bytes()).unwrap();
            assert_eq!(remote.get(key).unwrap(), key.as_bytes());
        }
        remote.put("parts/00/a", b"1").unwrap();
        remote.put("parts/01/b", b"2").unwrap();
        remote.put("config", b"3").unwrap();
        // A temp file left by a crash mid-put is not an object.
        std::fs::write(temp.path().join("parts/00/.piarchive-tmp-1-0-c"), b"torn").unwrap();

        let mut manifests: Vec<String> = HOSTILE_KEYS.iter().map(|k| k.to_string()).collect();
        manifests.sort();
        assert_eq!(remote.list("manifests/").unwrap(), manifests);
        assert_eq!(
            remote.list("parts/").unwrap(),
            vec!["parts/00/a", "parts/01/b"]
        );
        assert_eq!(
            remote.list("parts/0").unwrap(),
            vec!["parts/00/a", "parts/01/b"]
        );
        assert_eq!(remote.list("parts/01").unwrap(), vec!["parts/01/b"]);
        assert_eq!(remote.list("con").unwrap(), vec!["config"]);
        assert_eq!(remote.list("").unwrap().len(), HOSTILE_KEYS.len() + 3);
        assert_eq!(remote.list("missing/").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn puts_leave_no_temporary_files() {
        let temp = tempfile::tempdir().unwrap();
        let remote = DirRemote::new(temp.path()).unwrap();
        for index in 0..20 {
            remote
                .put(&format!("parts/{:02}/x", index % 3), &[index as u8; 100])
                .unwrap();
        }
        let mut leftovers = Vec::new();
        let mut folders = vec![temp.path().to_owned()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    folders.push(entry.path());
                } else if entry.file_name().to_string_lossy().contains("tmp") {
                    leftovers.push(entry.path());
                }
            }
        }
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn refuses_keys_that_leave_the_folder() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("remote");
        let remote = DirRemote::new(&root).unwrap();
        for key in [
            "../escape",
            "parts/../../escape",
            "/etc/passwd",
            "",
            "a//b",
            "./a",
            "a/.",
            "a\\..\\b",
            "parts/.piarchive-tmp-x",
        ] {
            let error = remote.put(key, b"x").unwrap_err();
            assert_eq!(error.kind, ErrorKind::Permanent, "{key:?}");
            assert!(error.message.contains("not allowed"), "{}", error.message);
            assert_eq!(remote.get(key).unwrap_err().kind, ErrorKind::Permanent);
            assert!(remote.delete(key).is_err(), "{key:?}");
        }
        assert!(!temp.path().join("escape").exists());
        assert_eq!(remote.list("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn an_unwritable_folder_is_a_permanent_error() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("a-file");
        std::fs::write(&file, b"not a folder").unwrap();
        let error = DirRemote::new(&file.join("remote")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Permanent);
        assert!(
            error.message.contains("cannot be created"),
            "{}",
            error.message
        );
    }
}
