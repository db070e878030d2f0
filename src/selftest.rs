//! `piarchive selftest`: known-answer tests of the code on the hot paths
//! (SHA-256, XChaCha20-Poly1305, zstd) as this CPU runs them, and the code
//! path each takes here: the ARMv8 SHA-2 instructions on a Pi 5, software
//! on a Pi 3 or 4, NEON ChaCha20 on every Pi, and the HTTPS suite order;
//! and whose SHA-256 ingest uses (ring's, or sha2's where x86's SHA
//! extensions pair two hashes).
//!
//! The paths are chosen by the crates at run time (ring, sha2, chacha20's
//! x86 backends) or at build time (chacha20's NEON, the Pi model build); the
//! names here follow the same tests, so what is printed is what runs.
//! Owns nothing; touches no disk, network or clock.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use sha2::{Digest, Sha256};

use crate::sha256_pair::{self, Sha256Stream};
use crate::tls::SuiteOrder;

/// One line of the report: a component, the path it takes on this CPU and
/// whether its known answers came out right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub path: &'static str,
    /// `Err` says what came out wrong.
    pub outcome: Result<(), String>,
}

/// Runs every check, in the order `selftest` prints them.
pub fn run() -> Vec<Check> {
    let mut checks = vec![
        Check {
            name: "sha256",
            path: sha256_path(),
            outcome: sha256_known_answers(),
        },
        Check {
            name: "sha256-provider",
            path: sha256_pair::provider().name(),
            outcome: sha256_providers_agree(),
        },
    ];
    if sha256_pair::is_fast() {
        checks.push(Check {
            name: "sha256-pair",
            path: "x86-sha-ni",
            outcome: sha256_pair_known_answers(),
        });
    }
    checks.push(Check {
        name: "chacha20",
        path: chacha20_path(),
        outcome: xchacha20_poly1305_known_answers(),
    });
    checks.push(Check {
        name: "zstd",
        path: "libzstd",
        outcome: zstd_known_answers(),
    });
    checks.push(Check {
        name: "tls",
        path: SuiteOrder::for_this_cpu().name(),
        outcome: Ok(()),
    });
    checks
}

/// The SHA-256 code ingest and cache run on this CPU (`Sha256Stream`; its
/// provider is the `sha256-provider` line): the crates' own tests, repeated
/// (ring and std read the same CPU feature bits on aarch64).
pub fn sha256_path() -> &'static str {
    if cfg!(feature = "pi-model") {
        return "soft";
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("sha") && has!("sse2") && has!("ssse3") && has!("sse4.1") {
            return "x86-sha-ni";
        }
        // ring's SSSE3 or (on Intel) AVX code: message schedule in SIMD.
        if has!("ssse3") {
            return "x86-simd";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("sha2") {
            return "armv8-sha2";
        }
    }
    "soft"
}

/// The ChaCha20 backend of the chacha20 crate: chosen at build time on ARM
/// (`--cfg chacha20_force_neon`, .cargo/config.toml), at run time on x86.
pub fn chacha20_path() -> &'static str {
    if cfg!(chacha20_force_soft) {
        return "soft";
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
        if std::arch::is_x86_feature_detected!("sse2") {
            return "sse2";
        }
    }
    if cfg!(all(
        chacha20_force_neon,
        target_arch = "aarch64",
        target_feature = "neon"
    )) {
        return "neon";
    }
    "soft"
}

/// FIPS 180-2's examples and a long run, each message fed whole and in
/// uneven pieces.
pub(crate) const SHA256_ANSWERS: [(&[u8], usize, &str); 4] = [
    (
        b"",
        1,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        b"abc",
        1,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        1,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (
        b"a",
        1_000_000,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    ),
];

fn expect(what: &str, got: &[u8], want_hex: &str) -> Result<(), String> {
    if hex::encode(got) == want_hex {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, expected {want_hex}",
            hex::encode(got)
        ))
    }
}

fn sha256_known_answers() -> Result<(), String> {
    for (unit, repeat, want) in SHA256_ANSWERS {
        let message = unit.repeat(repeat);
        expect("sha2", &Sha256::digest(&message), want)?;
        let mut stream = Sha256Stream::new();
        for piece in message.chunks(997) {
            stream.update(piece);
        }
        expect("sha256 stream", &stream.finalize(), want)?;
    }
    Ok(())
}

/// The stream's provider gives the digests of both crates (ring's one-shot
/// digest, which picks its code itself, and sha2's) over 3 MiB fed in
/// uneven pieces, and a part restarted partway gives its range's digest.
fn sha256_providers_agree() -> Result<(), String> {
    let message: Vec<u8> = (0..3 * 1024 * 1024 + 5)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut stream = Sha256Stream::new();
    let mut part = Sha256Stream::new();
    let cut = 1_234_567;
    for (at, piece) in (0..).step_by(99_991).zip(message.chunks(99_991)) {
        if at <= cut && cut < at + piece.len() {
            sha256_pair::update_both(&mut stream, &mut part, &piece[..cut - at]);
            part = Sha256Stream::new();
            sha256_pair::update_both(&mut stream, &mut part, &piece[cut - at..]);
        } else {
            sha256_pair::update_both(&mut stream, &mut part, piece);
        }
    }
    let (whole, tail) = (stream.finalize(), part.finalize());
    let ring_whole = ring::digest::digest(&ring::digest::SHA256, &message);
    expect(
        "sha256 stream against ring",
        &whole,
        &hex::encode(ring_whole),
    )?;
    expect(
        "sha256 stream against sha2",
        &whole,
        &hex::encode(Sha256::digest(&message)),
    )?;
    expect(
        "sha256 part against sha2",
        &tail,
        &hex::encode(Sha256::digest(&message[cut..])),
    )
}

/// The paired SHA-NI path: two fresh hashes of one message both give its
/// known answer; then a million `a`s in one hash while the other restarts
/// partway (as a part hash does at a cut) and takes the tail, whose answer
/// the sha2 crate gives.
fn sha256_pair_known_answers() -> Result<(), String> {
    for (unit, repeat, want) in SHA256_ANSWERS {
        let message = unit.repeat(repeat);
        let (mut a, mut b) = (Sha256Stream::new(), Sha256Stream::new());
        for piece in message.chunks(4093) {
            sha256_pair::update_both(&mut a, &mut b, piece);
        }
        expect("sha256 pair, first", &a.finalize(), want)?;
        expect("sha256 pair, second", &b.finalize(), want)?;
    }
    let message = b"a".repeat(1_000_000);
    let (head, tail) = message.split_at(600_001);
    let (mut whole, mut part) = (Sha256Stream::new(), Sha256Stream::new());
    sha256_pair::update_both(&mut whole, &mut part, head);
    let mut part = Sha256Stream::new();
    for piece in tail.chunks(65_537) {
        sha256_pair::update_both(&mut whole, &mut part, piece);
    }
    expect("sha256 pair, whole", &whole.finalize(), SHA256_ANSWERS[3].2)?;
    expect(
        "sha256 pair, part",
        &part.finalize(),
        &hex::encode(Sha256::digest(tail)),
    )
}

/// draft-irtf-cfrg-xchacha-03, appendix A.3.1.
const XCHACHA_KEY: [u8; 32] = {
    let mut key = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        key[i] = 0x80 + i as u8;
        i += 1;
    }
    key
};
const XCHACHA_NONCE: [u8; 24] = {
    let mut nonce = [0u8; 24];
    let mut i = 0;
    while i < 24 {
        nonce[i] = 0x40 + i as u8;
        i += 1;
    }
    nonce
};
const XCHACHA_AAD: [u8; 12] = [
    0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
];
const XCHACHA_PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: \
If I could offer you only one tip for the future, sunscreen would be it.";
const XCHACHA_SEALED: &str = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb\
9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e\
c0875924c1c7987947deafd8780acf49";

fn xchacha20_poly1305_known_answers() -> Result<(), String> {
    let cipher = XChaCha20Poly1305::new(&XCHACHA_KEY.into());
    let payload = Payload {
        msg: XCHACHA_PLAINTEXT,
        aad: &XCHACHA_AAD,
    };
    let sealed = cipher
        .encrypt(&XCHACHA_NONCE.into(), payload)
        .map_err(|_| "xchacha20-poly1305: encryption failed".to_string())?;
    expect("xchacha20-poly1305", &sealed, XCHACHA_SEALED)?;
    let opened = cipher
        .decrypt(
            &XCHACHA_NONCE.into(),
            Payload {
                msg: &sealed,
                aad: &XCHACHA_AAD,
            },
        )
        .map_err(|_| "xchacha20-poly1305: the known answer did not open".to_string())?;
    if opened != XCHACHA_PLAINTEXT {
        return Err("xchacha20-poly1305: opened to other bytes".into());
    }
    let mut tampered = sealed;
    tampered[7] ^= 1;
    let refused = cipher.decrypt(
        &XCHACHA_NONCE.into(),
        Payload {
            msg: &tampered,
            aad: &XCHACHA_AAD,
        },
    );
    if refused.is_ok() {
        return Err("xchacha20-poly1305: a changed byte was not noticed".into());
    }
    long_message_matches_ring()
}

/// The vector above is two blocks, shorter than the SIMD backends' batch:
/// a 64 KiB message (plus a ragged end) sealed here must equal ring's
/// ChaCha20-Poly1305 (its own assembly) under the HChaCha20 subkey.
fn long_message_matches_ring() -> Result<(), String> {
    use chacha20::cipher::consts::U10;
    let message: Vec<u8> = (0..65_536 + 37).map(|i| (i * 7 % 251) as u8).collect();
    let ours = XChaCha20Poly1305::new(&XCHACHA_KEY.into())
        .encrypt(
            &XCHACHA_NONCE.into(),
            Payload {
                msg: &message,
                aad: &XCHACHA_AAD,
            },
        )
        .map_err(|_| "xchacha20-poly1305: encryption failed".to_string())?;
    let subkey = chacha20::hchacha::<U10>(&XCHACHA_KEY.into(), XCHACHA_NONCE[..16].into());
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&XCHACHA_NONCE[16..]);
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &subkey)
        .map_err(|_| "ring: key refused".to_string())?;
    let mut theirs = message;
    ring::aead::LessSafeKey::new(key)
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(XCHACHA_AAD),
            &mut theirs,
        )
        .map_err(|_| "ring: sealing failed".to_string())?;
    if ours == theirs {
        Ok(())
    } else {
        Err("xchacha20-poly1305: a 64 KiB message differs from ring's".into())
    }
}

/// A frame made by the `zstd` command (level 3) and what it holds.
const ZSTD_FRAME: [u8; 45] = [
    0x28, 0xb5, 0x2f, 0xfd, 0x20, 0xe8, 0x25, 0x01, 0x00, 0xe8, 0x70, 0x69, 0x61, 0x72, 0x63, 0x68,
    0x69, 0x76, 0x65, 0x20, 0x6b, 0x65, 0x65, 0x70, 0x73, 0x20, 0x65, 0x76, 0x65, 0x72, 0x79, 0x20,
    0x70, 0x68, 0x6f, 0x74, 0x6f, 0x2e, 0x20, 0x01, 0x00, 0x21, 0x01, 0xa5, 0x9c,
];
const ZSTD_CONTENT_UNIT: &[u8] = b"piarchive keeps every photo. ";

fn zstd_known_answers() -> Result<(), String> {
    let content = ZSTD_CONTENT_UNIT.repeat(8);
    let unpacked = zstd::bulk::decompress(&ZSTD_FRAME, content.len())
        .map_err(|err| format!("zstd: the known frame did not unpack: {err}"))?;
    if unpacked != content {
        return Err("zstd: the known frame unpacked to other bytes".into());
    }
    // A round trip of a megabyte that compresses (text with a counter).
    let text: Vec<u8> = (0..40_000)
        .flat_map(|i: u32| format!("line {i} of the selftest\n").into_bytes())
        .collect();
    let packed = zstd::bulk::compress(&text, crate::repo::compress::LEVEL)
        .map_err(|err| format!("zstd: compression failed: {err}"))?;
    let back = zstd::bulk::decompress(&packed, text.len())
        .map_err(|err| format!("zstd: a packed frame did not unpack: {err}"))?;
    if back != text || packed.len() * 4 > text.len() {
        return Err("zstd: the round trip did not give the text back, shrunk".into());
    }
    Ok(())
}

/// Prints one line per check (`name: path`) and says on stderr what went
/// wrong; true when every check passed.
pub fn print(checks: &[Check]) -> bool {
    let mut passed = true;
    for check in checks {
        println!("{}: {}", check.name, check.path);
        if let Err(why) = &check.outcome {
            eprintln!("selftest: {} ({}) FAILED: {why}", check.name, check.path);
            passed = false;
        }
    }
    passed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_answer_comes_out_right_on_this_cpu() {
        let checks = run();
        for check in &checks {
            assert_eq!(check.outcome, Ok(()), "{}: {}", check.name, check.path);
        }
        let names: Vec<_> = checks.iter().map(|check| check.name).collect();
        for name in ["sha256", "sha256-provider", "chacha20", "zstd", "tls"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }

    /// The paths named are the ones the CPU offers, as it lists them itself.
    #[test]
    fn the_paths_named_follow_the_cpu_flags() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo.lines().find(|line| line.starts_with("flags"));
        let has = |flag: &str| flags.is_some_and(|line| line.split_whitespace().any(|f| f == flag));
        if cfg!(target_arch = "x86_64") && !cfg!(feature = "pi-model") {
            let sha = has("sha_ni") && has("ssse3") && has("sse4_1");
            let simd = if has("ssse3") { "x86-simd" } else { "soft" };
            assert_eq!(sha256_path(), if sha { "x86-sha-ni" } else { simd });
            assert_eq!(chacha20_path(), if has("avx2") { "avx2" } else { "sse2" });
        }
    }

    #[test]
    fn a_wrong_answer_is_named_and_fails_the_run() {
        let err = expect("sha2", b"\x01", "00").unwrap_err();
        assert!(err.contains("got 01, expected 00"), "{err}");
        let failing = [Check {
            name: "sha256",
            path: "soft",
            outcome: Err(err),
        }];
        assert!(!print(&failing));
    }
}
