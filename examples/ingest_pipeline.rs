//! Times the ingest pipeline alone (no HTTP, no disk): 1 GiB of random bytes
//! from memory through `archive::ingest::pump` into a sink, against plain
//! SHA-256, two SHA-256 at once and the cutter (cut points only) alone. `cargo run --profile bench --example ingest_pipeline`.

use std::time::Instant;

use piarchive::archive::chunker::Cutter;
use piarchive::archive::ingest::{pump, IngestState};
use piarchive::sha256_pair::{is_fast, update_both, Sha256Stream};
use sha2::{Digest, Sha256};

fn main() {
    let mut data = vec![0u8; 1 << 30];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let mib = data.len() as f64 / (1 << 20) as f64;

    let start = Instant::now();
    let digest = Sha256::digest(&data);
    let sha = start.elapsed().as_secs_f64();

    // The whole file's and the parts' SHA-256 in one pass, parts of 4 MiB
    // and 17 bytes (so that their blocks do not line up with the file's).
    let start = Instant::now();
    let mut whole = Sha256Stream::new();
    for part in data.chunks((4 << 20) + 17) {
        let mut part_hash = Sha256Stream::new();
        for piece in part.chunks(64 * 1024) {
            update_both(&mut whole, &mut part_hash, piece);
        }
        std::hint::black_box(part_hash.finalize());
    }
    assert_eq!(whole.finalize(), <[u8; 32]>::from(digest));
    let pair = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut cutter = Cutter::standard();
    let mut cuts = Vec::new();
    cutter.feed(&data, &mut cuts);
    // The last part ends at the end of the stream, not at a cut.
    let parts = cuts.len() + usize::from(cutter.finish() > cuts.last().copied().unwrap_or(0));
    let chunk = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut ingest = IngestState::new();
    pump(&mut &data[..], &mut std::io::sink(), &mut ingest, u64::MAX).expect("pump");
    let done = ingest.finish();
    let pipeline = start.elapsed().as_secs_f64();
    assert_eq!(done.sha256, <[u8; 32]>::from(digest));
    assert_eq!(done.parts.len(), parts);

    println!(
        "sha-256 alone:            {sha:6.2} s ({:6.0} MiB/s)",
        mib / sha
    );
    println!(
        "two sha-256 at once:      {pair:6.2} s ({:6.0} MiB/s){}",
        mib / pair,
        if is_fast() {
            ""
        } else {
            " (one after the other on this CPU)"
        }
    );
    println!(
        "cut points alone:         {chunk:6.2} s ({:6.0} MiB/s), {parts} parts",
        mib / chunk
    );
    println!(
        "whole pipeline:           {pipeline:6.2} s ({:6.0} MiB/s)",
        mib / pipeline
    );
}
