//! Times a disaster recovery of many small archives: an in-process
//! appliance (the real server, engine and folder remote) backs up `count`
//! tiny uploads, then a new, empty data folder is rebuilt from the folder
//! remote with `Recovery::prepare` + `run`, as `piarchive recover` does.
//!
//! `cargo run --release --example bench_recovery [count]` (default 1000)

use std::io::Read;
use std::time::{Duration, Instant};

use piarchive::config::{Config, Overrides};
use piarchive::recovery::Recovery;
use piarchive::remote::RemoteSettings;
use serde_json::{json, Value};

const PASSPHRASE: &str = "benchmark recovery passphrase";

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<Value> {
    let mut request = agent.request(method, url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match request.send_bytes(body) {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            anyhow::bail!("{method} {url}: {status} {}", response.into_string()?)
        }
        Err(err) => return Err(err.into()),
    };
    let mut text = String::new();
    response.into_reader().read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 1000,
    };
    let temp = tempfile::tempdir()?;
    let work = temp.path().to_path_buf();
    let bucket = work.join("bucket");
    let config = Config::resolve(
        &Overrides {
            data_dir: Some(work.join("a")),
            listen: Some("127.0.0.1:0".into()),
            listen_https: Some(String::new()),
            ..Overrides::default()
        },
        |_| None,
    )?;
    let server = piarchive::app::start(config.clone())?;
    let base = format!("http://{}", server.addr);
    let agent = ureq::AgentBuilder::new().build();

    // Appliance A: an admin, a token, the folder remote, `count` uploads.
    let setup =
        json!({"username": "bob", "password": "bob's password", "recovery_passphrase": PASSPHRASE});
    let mut response = agent
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
    response = agent
        .post(&format!("{base}/api/v1/tokens"))
        .set("Cookie", &cookie)
        .set("X-CSRF-Token", &csrf)
        .send_string(&json!({"name": "bench"}).to_string())?;
    let token = serde_json::from_str::<Value>(&response.into_string()?)?["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let remote = RemoteSettings::Dir {
        path: bucket.clone(),
    };
    call(
        &agent,
        "PUT",
        &format!("{base}/api/v1/admin/remote"),
        Some(&token),
        serde_json::to_string(&remote)?.as_bytes(),
    )?;
    let started = Instant::now();
    for index in 0..count {
        call(
            &agent,
            "PUT",
            &format!("{base}/api/v1/archives?name=archive-{index}&filename=f{index}.txt"),
            Some(&token),
            format!("tiny file number {index}\n").as_bytes(),
        )?;
    }
    let uploaded = started.elapsed();
    loop {
        let list = call(
            &agent,
            "GET",
            &format!("{base}/api/v1/archives"),
            Some(&token),
            b"",
        )?;
        let backed_up = list
            .as_array()
            .map(|all| all.iter().filter(|a| a["state"] == "backed_up").count())
            .unwrap_or(0);
        if backed_up == count {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let backed_up = started.elapsed();
    // The catalog upload queued when the remote was set; wait for it too.
    while !bucket.join("catalog/appliance").exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "appliance A: {count} uploads in {:.1} s, all backed up after {:.1} s",
        uploaded.as_secs_f64(),
        backed_up.as_secs_f64()
    );

    // Appliance B: recover into an empty data folder.
    let store_b = piarchive::store::Store::open(&work.join("b/db"), config.map_size)?;
    let started = Instant::now();
    let recovery = Recovery::prepare(&store_b, remote, PASSPHRASE, &Default::default())?;
    let prepared = started.elapsed();
    let report = recovery.run(&mut |_| {})?;
    let total = started.elapsed();
    println!(
        "recovery of {} archives ({} users): prepare (config, Argon2id unlock, catalog, listings) {:.2} s, archives {:.2} s, total {:.2} s ({:.2} ms per archive)",
        report.archives_total,
        report.users,
        prepared.as_secs_f64(),
        (total - prepared).as_secs_f64(),
        total.as_secs_f64(),
        (total - prepared).as_secs_f64() * 1000.0 / report.archives_total.max(1) as f64
    );
    anyhow::ensure!(
        report.recovered == count && report.damaged.is_empty(),
        "unexpected report: {report:?}"
    );
    server.shutdown();
    Ok(())
}
