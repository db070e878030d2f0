//! What S3 Object Lock costs, and how long `recover --as-of` takes, against
//! moto's S3 server (started from `tests/moto/serve.py`; `pip install
//! "moto[server]"`).
//!
//! 1. Backup: an in-process appliance backs up one file of SIZE MiB to the
//!    bucket `plain` without Object Lock, then a second appliance the same
//!    file to `locked` with GOVERNANCE retention; the time from the end of
//!    the upload to `backed_up` and the objects written are printed for
//!    both, and the lock chore is run once with a clock `days` ahead (every
//!    object extended: one PutObjectRetention each) and timed.
//! 2. Recovery: an appliance backs up COUNT tiny archives to `locked`, the
//!    box's keys delete every object and overwrite `config`, and a new data
//!    folder is recovered `--as-of` a time before that
//!    (`Recovery::prepare_as_of` + `run`, as `piarchive recover` does).
//!
//! `cargo run --release --example bench_object_lock [SIZE_MIB [COUNT]]`
//! (defaults 256 and 1000).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use piarchive::config::{Config, Overrides};
use piarchive::recovery::Recovery;
use piarchive::remote::s3::S3Client;
use piarchive::remote::{Remote, RemoteSettings};
use serde_json::{json, Value};

const PASSPHRASE: &str = "benchmark object lock passphrase";

struct Appliance {
    running: piarchive::app::Running,
    base: String,
    token: String,
    agent: ureq::Agent,
    data_dir: std::path::PathBuf,
    map_size: usize,
}

fn call(appliance: &Appliance, method: &str, path: &str, body: &[u8]) -> anyhow::Result<Value> {
    let request = appliance
        .agent
        .request(method, &format!("{}{path}", appliance.base))
        .set("Authorization", &format!("Bearer {}", appliance.token));
    let response = match request.send_bytes(body) {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            anyhow::bail!("{method} {path}: {status} {}", response.into_string()?)
        }
        Err(err) => return Err(err.into()),
    };
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fresh appliance with an admin, a token and `remote` set.
fn appliance(dir: &std::path::Path, remote: &Value) -> anyhow::Result<Appliance> {
    let config = Config::resolve(
        &Overrides {
            data_dir: Some(dir.to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            listen_https: Some(String::new()),
            ..Overrides::default()
        },
        |_| None,
    )?;
    let running = piarchive::app::start(config.clone())?;
    let base = format!("http://{}", running.addr);
    let agent = ureq::AgentBuilder::new().build();
    let setup = json!({"username": "bench", "password": "bench password",
                       "recovery_passphrase": PASSPHRASE});
    let response = agent
        .post(&format!("{base}/api/v1/setup"))
        .send_string(&setup.to_string())?;
    let cookie = response
        .header("Set-Cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    let csrf = serde_json::from_str::<Value>(&response.into_string()?)?["csrf_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let response = agent
        .post(&format!("{base}/api/v1/tokens"))
        .set("Cookie", &cookie)
        .set("X-CSRF-Token", &csrf)
        .send_string(&json!({"name": "bench"}).to_string())?;
    let token = serde_json::from_str::<Value>(&response.into_string()?)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let appliance = Appliance {
        running,
        base,
        token,
        agent,
        data_dir: dir.to_path_buf(),
        map_size: config.map_size,
    };
    call(
        &appliance,
        "PUT",
        "/api/v1/admin/remote",
        remote.to_string().as_bytes(),
    )?;
    Ok(appliance)
}

/// Waits until `count` (at most 1000: one page of the list) archives are
/// backed up.
fn wait_backed_up(appliance: &Appliance, count: usize) -> anyhow::Result<()> {
    loop {
        let page = call(appliance, "GET", "/api/v1/archives?limit=1000", b"")?;
        let backed_up = page.as_array().map_or(0, |all| {
            all.iter().filter(|a| a["state"] == "backed_up").count()
        });
        if backed_up >= count {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_secs() -> i64 {
    piarchive::ids::now_secs()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let size_mib: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let count: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    anyhow::ensure!(count <= 1000, "COUNT is at most 1000");
    let mut moto = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/serve.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(moto.stdout.take().unwrap()).read_line(&mut line)?;
    let ready: Value = serde_json::from_str(&line)?;
    let settings = |bucket: &str, prefix: &str, lock: Value| {
        json!({"kind": "s3", "endpoint": format!("http://127.0.0.1:{}", ready["port"]),
               "region": "us-east-1", "bucket": bucket, "prefix": prefix, "path_style": true,
               "access_key_id": ready["full"][0], "secret_access_key": ready["full"][1],
               "object_lock": lock})
    };
    let temp = tempfile::tempdir()?;
    let data: Vec<u8> = {
        use rand::RngCore;
        let mut bytes = vec![0u8; size_mib << 20];
        rand::thread_rng().fill_bytes(&mut bytes);
        bytes
    };
    let lock = json!({"mode": "GOVERNANCE", "days": 30});
    for (name, remote) in [
        ("without lock", settings("plain", "bench", Value::Null)),
        ("with lock", settings("locked", "bench", lock.clone())),
    ] {
        let dir = temp.path().join(name.replace(' ', "-"));
        let appliance = appliance(&dir, &remote)?;
        call(
            &appliance,
            "PUT",
            "/api/v1/archives?name=big&filename=big.bin",
            &data,
        )?;
        let started = Instant::now();
        wait_backed_up(&appliance, 1)?;
        let backup = started.elapsed();
        let client = S3Client::new(
            &serde_json::from_value(remote.clone())?,
            &Default::default(),
        )?;
        let objects = client.list("")?.len();
        println!(
            "{name}: {size_mib} MiB backed up in {:.2} s ({:.1} s per GiB); {objects} objects written, one PUT each",
            backup.as_secs_f64(),
            backup.as_secs_f64() * 1024.0 / size_mib as f64
        );
        let Appliance {
            running,
            data_dir,
            map_size,
            ..
        } = appliance;
        running.shutdown();
        if remote["object_lock"].is_null() {
            continue;
        }
        let store = piarchive::store::Store::open(&data_dir.join("db"), map_size)?;
        let engine = piarchive::engine::Engine::start(store, &data_dir);
        let started = Instant::now();
        let report = engine
            .extend_locks(now_secs() + 30 * 86_400)
            .map_err(anyhow::Error::msg)?;
        let chore = started.elapsed();
        engine.shutdown();
        println!(
            "lock chore: extended {} objects in {:.2} s ({:.1} ms each; {:.0} requests per GiB \
             per extension, about once a day to keep days - 1 of protection)",
            report.extended,
            chore.as_secs_f64(),
            chore.as_secs_f64() * 1000.0 / report.extended.max(1) as f64,
            report.extended as f64 * 1024.0 / size_mib as f64,
        );
    }

    // Recovery as of a time before the attack.
    let remote = settings("locked", "recovery", lock);
    let appliance = appliance(&temp.path().join("a"), &remote)?;
    for index in 0..count {
        call(
            &appliance,
            "PUT",
            &format!("/api/v1/archives?name=archive-{index}&filename=f{index}.txt"),
            format!("tiny file number {index}\n").as_bytes(),
        )?;
    }
    wait_backed_up(&appliance, count)?;
    let client = S3Client::new(
        &serde_json::from_value(remote.clone())?,
        &Default::default(),
    )?;
    while client.head("catalog/appliance")?.is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    appliance.running.shutdown();
    let as_of = now_secs();
    while now_secs() <= as_of {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut plain = remote.clone();
    plain["object_lock"] = Value::Null;
    let attacker = S3Client::new(&serde_json::from_value(plain)?, &Default::default())?;
    for key in attacker.list("")? {
        attacker.delete(&key)?;
    }
    attacker.put("config", b"ransom note")?;
    let settings: RemoteSettings = serde_json::from_value(remote)?;
    let store_b = piarchive::store::Store::open(&temp.path().join("b/db"), 1 << 30)?;
    let started = Instant::now();
    let recovery = Recovery::prepare_as_of(
        &store_b,
        settings,
        PASSPHRASE,
        &Default::default(),
        Some(as_of),
    )?;
    let prepared = started.elapsed();
    let report = recovery.run(&mut |_| {})?;
    let total = started.elapsed();
    println!(
        "recovery as of {} of {} archives: prepare (version listing, config, unlock, catalog) {:.2} s, \
         copying back {} objects and the archives {:.2} s, total {:.2} s",
        piarchive::date::rfc3339(as_of),
        report.archives_total,
        prepared.as_secs_f64(),
        report.restored_objects,
        (total - prepared).as_secs_f64(),
        total.as_secs_f64()
    );
    anyhow::ensure!(
        report.recovered == count && report.damaged.is_empty(),
        "unexpected report: {report:?}"
    );
    drop(moto.stdin.take());
    let _ = moto.kill();
    let _ = moto.wait();
    Ok(())
}
