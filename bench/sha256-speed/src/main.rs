//! Times the SHA-256 code piarchive can hash with, on one thread, in MB per
//! CPU second of that thread (load on the machine taken out): ring's
//! SHA-256 as its own dispatch picks it on this CPU, ring's scalar block
//! function called directly (what its dispatch picks on a CPU without SHA
//! instructions, such as a Pi 4's Cortex-A72), ring's SSSE3 one on x86, and
//! the sha2 crate (its software code when built with `--features soft`).
//! Every provider's digest of the same data is checked against the others.
//!
//! Usage: sha256-speed [MIB]   (default 256)

use std::num::Wrapping;
use std::time::Duration;

use sha2::Digest;

type State = [Wrapping<u32>; 8];

extern "C" {
    // ring 0.17.14's CRYPTOGAMS block functions (crypto/fipsmodule/sha/asm):
    // `state`, `num` whole 64-byte blocks.
    fn ring_core_0_17_14__sha256_block_data_order_nohw(
        state: *mut State,
        data: *const [u8; 64],
        num: usize,
    );
    #[cfg(target_arch = "x86_64")]
    fn ring_core_0_17_14__sha256_block_data_order_ssse3(
        state: *mut State,
        data: *const [u8; 64],
        num: usize,
    );
}

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// SHA-256 of `data` (a whole number of blocks, then padded) with a raw
/// block function, fed 1 MiB at a time as ingest feeds its hashers.
fn with_blocks(
    data: &[u8],
    block_fn: unsafe extern "C" fn(*mut State, *const [u8; 64], usize),
) -> [u8; 32] {
    let mut state: State = INITIAL.map(Wrapping);
    let tail = data.len() % 64;
    for piece in data[..data.len() - tail].chunks(1 << 20) {
        // SAFETY: `piece` holds `piece.len() / 64` whole blocks; the
        // functions take unaligned input.
        unsafe { block_fn(&mut state, piece.as_ptr().cast(), piece.len() / 64) };
    }
    let mut last = data[data.len() - tail..].to_vec();
    last.push(0x80);
    while last.len() % 64 != 56 {
        last.push(0);
    }
    last.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    // SAFETY: as above.
    unsafe { block_fn(&mut state, last.as_ptr().cast(), last.len() / 64) };
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.0.to_be_bytes());
    }
    out
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let mut data = vec![0u8; mib << 20];
    let mut x = 0x9e3779b97f4a7c15u64;
    for word in data.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
    let mut providers: Vec<(&str, Box<dyn Fn(&[u8]) -> [u8; 32]>)> = vec![
        (
            "ring (its own dispatch)",
            Box::new(|d: &[u8]| {
                let mut context = ring::digest::Context::new(&ring::digest::SHA256);
                for piece in d.chunks(1 << 20) {
                    context.update(piece);
                }
                context.finish().as_ref().try_into().unwrap()
            }),
        ),
        (
            "ring nohw (scalar, as without SHA instructions)",
            Box::new(|d: &[u8]| with_blocks(d, ring_core_0_17_14__sha256_block_data_order_nohw)),
        ),
    ];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") {
        providers.push((
            "ring ssse3 (x86 only)",
            Box::new(|d: &[u8]| with_blocks(d, ring_core_0_17_14__sha256_block_data_order_ssse3)),
        ));
    }
    let sha2_name = if cfg!(feature = "soft") {
        "sha2 force-soft"
    } else {
        "sha2 (its own dispatch)"
    };
    providers.push((
        sha2_name,
        Box::new(|d: &[u8]| {
            let mut hasher = sha2::Sha256::new();
            for piece in d.chunks(1 << 20) {
                hasher.update(piece);
            }
            hasher.finalize().into()
        }),
    ));
    let mut digests = Vec::new();
    for (name, hash) in &providers {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = thread_cpu();
            digests.push(hash(&data));
            best = best.min((thread_cpu() - start).as_secs_f64());
        }
        println!("{:8.0} MB/s  {name}", data.len() as f64 / best / 1e6);
    }
    assert!(
        digests.windows(2).all(|pair| pair[0] == pair[1]),
        "providers disagree"
    );
}
