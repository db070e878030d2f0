//! `bench/scale`'s in-process half: fills a real store with many jobs,
//! archives or part records through the library (no upload), and times the
//! real engine leasing and finishing jobs. `bench/scale` drives it and the
//! server binary; see the README's benchmark section.
//!
//! Usage:
//!   bench_scale fill-jobs DIR N          N waiting jobs in a fresh store
//!   bench_scale run-jobs DIR             time lease + finish with the engine
//!   bench_scale fill-archives DATA OWNER N   N archive records for OWNER
//!   bench_scale fill-parts DATA OWNER N      one archive with N part records
//!
//! Records are written as JSON values, so the same source builds against
//! older versions of the library (bench/scale runs it on the old code too).

use std::path::Path;
use std::time::{Duration, Instant};

use piarchive::store::Store;
use serde_json::json;

// The server's default map size on 64-bit, so it opens what this wrote.
const MAP_SIZE: usize = 1 << 30;
const BATCH: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    match arg(1).as_str() {
        "fill-jobs" => fill_jobs(Path::new(&arg(2)), arg(3).parse().unwrap()),
        "run-jobs" => run_jobs(Path::new(&arg(2))),
        "fill-archives" => fill_archives(Path::new(&arg(2)), &arg(3), arg(4).parse().unwrap()),
        "fill-parts" => fill_parts(Path::new(&arg(2)), &arg(3), arg(4).parse().unwrap()),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: bench_scale fill-jobs DIR N | run-jobs DIR | fill-archives DATA OWNER N | fill-parts DATA OWNER N");
    std::process::exit(2)
}

fn open(data: &Path) -> Store {
    Store::open(&data.join("db"), MAP_SIZE).expect("store")
}

fn hex_id(n: u64) -> String {
    format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15 + 1)
}

/// N delete-object jobs for objects that do not exist: each one is leased,
/// finds nothing to delete and is finished (removed) by the real engine,
/// with no remote involved.
fn fill_jobs(data: &Path, count: usize) {
    let store = open(data);
    let mut done = 0;
    while done < count {
        let batch = BATCH.min(count - done);
        store
            .write(|txn, tables| -> Result<(), piarchive::store::StoreError> {
                for n in done..done + batch {
                    piarchive::store::jobs::enqueue(
                        txn,
                        tables,
                        piarchive::store::jobs::JobKind::DeleteObject {
                            object_id: format!("{}{}", hex_id(n as u64), hex_id(7)),
                        },
                    )?;
                }
                Ok(())
            })
            .expect("enqueue");
        done += batch;
    }
}

/// Starts the engine on the filled store and times how long it takes to
/// lease and finish jobs while the rest wait: at least 5 jobs and at most
/// 2,000, for about 3 s. Prints `microseconds_per_job jobs_timed`.
fn run_jobs(data: &Path) {
    let store = open(data);
    let before = queue_length(&store);
    let engine = piarchive::engine::Engine::start(store.clone(), data);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut done;
    loop {
        done = before - queue_length(&store);
        let elapsed = started.elapsed();
        if done >= 2000 || (done >= 5 && elapsed >= Duration::from_secs(3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engine finished only {done} jobs"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    engine.shutdown();
    println!(
        "{:.1} {done} {}",
        elapsed.as_secs_f64() * 1e6 / done as f64,
        vm_hwm_kib()
    );
}

fn queue_length(store: &Store) -> u64 {
    let txn = store.read().expect("read");
    store.tables.jobs.len(&txn).expect("len")
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn archive_record(
    id: &str,
    owner: &str,
    created_at: i64,
    parts: u32,
    size: u64,
) -> serde_json::Value {
    json!({
        "id": id, "owner_id": owner, "name": format!("archive {id}"),
        "filename": "file.bin", "size": size, "sha256": "00".repeat(32),
        "created_at": created_at, "state": "backed_up", "last_error": null,
        "parts_total": parts, "parts_remote": parts, "bytes_remote": size,
        "last_accessed_at": created_at, "local_copy": true, "stored_size": size,
    })
}

/// N backed-up archive records of OWNER, one a second apart, each with its
/// (empty) file so the server finds nothing to repair.
fn fill_archives(data: &Path, owner: &str, count: usize) {
    let store = open(data);
    std::fs::create_dir_all(data.join("archives")).unwrap();
    let now = 1_750_000_000i64;
    let mut done = 0;
    while done < count {
        let batch = BATCH.min(count - done);
        store
            .write(|txn, tables| -> Result<(), piarchive::store::StoreError> {
                for n in done..done + batch {
                    let id = hex_id(n as u64 + 1_000_000);
                    let value = archive_record(&id, owner, now + n as i64, 0, 0);
                    let record = serde_json::from_value(value).expect("record");
                    tables.archives.put(txn, id.as_bytes(), &record)?;
                }
                Ok(())
            })
            .expect("archives");
        for n in done..done + batch {
            std::fs::File::create(data.join("archives").join(hex_id(n as u64 + 1_000_000)))
                .unwrap();
        }
        done += batch;
    }
}

/// One archive of OWNER with N part records of 4 MiB (records only: its
/// file is sparse, so every part reads as zeros), every part but the first
/// stored remotely, and the job that uploads the first one: with a tiny
/// bandwidth limit that upload stays running, so the device feed shows
/// its progress every second. Prints the archive id.
fn fill_parts(data: &Path, owner: &str, count: u32) {
    const PART: u64 = 4 << 20;
    let store = open(data);
    let id = hex_id(42);
    let size = u64::from(count) * PART;
    std::fs::create_dir_all(data.join("archives")).unwrap();
    std::fs::File::create(data.join("archives").join(&id))
        .and_then(|file| file.set_len(size))
        .unwrap();
    let zeros_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(vec![
        0u8;
        PART as usize
    ]));
    let mut done = 0u32;
    while done < count {
        let batch = (BATCH as u32).min(count - done);
        store
            .write(|txn, tables| -> Result<(), piarchive::store::StoreError> {
                if done == 0 {
                    let mut value = archive_record(&id, owner, 1_750_000_000, count, size);
                    value["state"] = json!("uploading");
                    value["parts_remote"] = json!(count - 1);
                    value["bytes_remote"] = json!(size - PART);
                    let record = serde_json::from_value(value).expect("record");
                    tables.archives.put(txn, id.as_bytes(), &record)?;
                    piarchive::store::jobs::enqueue(
                        txn,
                        tables,
                        piarchive::store::jobs::JobKind::UploadPart {
                            archive_id: id.clone(),
                            index: 0,
                        },
                    )?;
                }
                for index in done..done + batch {
                    let first = index == 0;
                    let part = serde_json::from_value(json!({
                        "offset": u64::from(index) * PART, "length": PART,
                        "sha256": if first { zeros_sha.clone() } else { format!("{index:064x}") },
                        "object_id": if first { None } else { Some(format!("{}{}", hex_id(u64::from(index)), hex_id(9))) },
                        "remote": !first, "to_move": false,
                    }))
                    .expect("part");
                    tables
                        .parts
                        .put(txn, &piarchive::store::indexed_key(&id, index), &part)?;
                }
                Ok(())
            })
            .expect("parts");
        done += batch;
    }
    println!("{id}");
}
