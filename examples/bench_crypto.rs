//! Micro-benchmark of the remote format's part encryption: MB/s to seal and
//! open one 16 MiB part (the largest the chunker cuts), plus object-id and
//! Argon2id unlock timings.
//!
//! `cargo run --release --example bench_crypto [rounds]`

use std::time::{Duration, Instant};

use piarchive::repo::{KdfParams, RepoConfig, RepoKeys, MAX_PART_LEN, PART_OVERHEAD};
use sha2::{Digest, Sha256};

fn main() -> anyhow::Result<()> {
    let rounds: u32 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 8,
    };
    let keys = RepoKeys::from_master_key(&[7; 32]);
    let plaintext: Vec<u8> = (0..MAX_PART_LEN).map(|index| index as u8).collect();
    let digest: [u8; 32] = Sha256::digest(&plaintext).into();
    let object_id = keys.object_id(&digest);
    let megabytes = MAX_PART_LEN as f64 / 1_000_000.0;

    let report = |what: &str, elapsed: Duration| {
        let seconds = elapsed.as_secs_f64() / f64::from(rounds);
        println!(
            "{what:<28} {:>8.1} MB/s  ({:.1} ms per 16 MiB part)",
            megabytes / seconds,
            seconds * 1000.0
        );
    };

    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(Sha256::digest(&plaintext));
    }
    report("sha256 (for comparison)", start.elapsed());

    let mut sealed = Vec::new();
    let start = Instant::now();
    for round in 0..rounds {
        sealed = keys.encrypt_part(&object_id, [round as u8; 24], &plaintext)?;
    }
    report("encrypt_part", start.elapsed());

    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(keys.decrypt_part(&object_id, &sealed)?);
    }
    report("decrypt_part", start.elapsed());

    let mut buffer = Vec::with_capacity(MAX_PART_LEN + PART_OVERHEAD);
    let mut encrypt_in_place = Duration::ZERO;
    let mut decrypt_in_place = Duration::ZERO;
    for round in 0..rounds {
        buffer.clear();
        buffer.extend_from_slice(&plaintext);
        let start = Instant::now();
        keys.encrypt_part_in_place(&object_id, [round as u8; 24], &mut buffer)?;
        encrypt_in_place += start.elapsed();
        let start = Instant::now();
        keys.decrypt_part_in_place(&object_id, &mut buffer)?;
        decrypt_in_place += start.elapsed();
    }
    anyhow::ensure!(buffer == plaintext, "in-place round trip changed the part");
    report("encrypt_part_in_place", encrypt_in_place);
    report("decrypt_part_in_place", decrypt_in_place);

    let ids = 100_000u32;
    let start = Instant::now();
    for index in 0..ids {
        let mut input = [0u8; 32];
        input[..4].copy_from_slice(&index.to_le_bytes());
        std::hint::black_box(keys.object_id(&input));
    }
    println!(
        "{:<28} {:>8.2} µs each",
        "object_id",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(ids)
    );

    let config = RepoConfig::create("passphrase", [1; 32], [2; 16], [3; 24], KdfParams::DEFAULT)?;
    let start = Instant::now();
    config.unlock("passphrase")?;
    println!(
        "{:<28} {:>8.0} ms (Argon2id 64 MiB, 3 passes, 1 lane)",
        "unlock (default costs)",
        start.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
