//! The SHA-256 of ingest and cache: [`Sha256Stream`], and two of them over
//! the same bytes at once (the whole file's and the current part's).
//!
//! Which code hashes ([`provider`]) is chosen once per CPU:
//! - x86 with the SHA extensions: the sha2 crate's block function, and
//!   [`update_both`] interleaves two hashes. One SHA-256 is bound by the
//!   latency of its round instruction (each pair of rounds waits for the one
//!   before); two independent hashes fill those waits, so both together cost
//!   little more than one (`examples/ingest_pipeline`: 0.86 s for both over
//!   1 GiB, 0.73 s for one alone).
//! - everywhere else, ring's SHA-256 (the CRYPTOGAMS assembly OpenSSL also
//!   ships): the ARMv8 SHA-2 instructions on a Pi 5, its scalar code on a
//!   Pi 3 or 4, SSSE3/AVX on an x86 without the SHA extensions. There it is
//!   faster than sha2's software code (`bench/sha256-providers`: 40 % on x86
//!   without SHA-NI; on aarch64 its scalar code takes 3.5 % fewer
//!   instructions a block). [`is_fast`] is false and callers keep the two
//!   hashes on threads of their own; [`update_both`] still gives the right
//!   answer, one hash after the other.
//! - the Pi model build (`bench/pi-model`): ring's scalar block function,
//!   called directly, as ring's own dispatch calls it on a Pi 4 (on this PC
//!   it would pick SHA-NI). See `ring_scalar`.

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

/// The SHA-256 initial hash value.
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The code a [`Sha256Stream`] hashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The sha2 crate's block function under our own buffering (what
    /// [`update_both`] pairs with the SHA extensions).
    Sha2,
    /// ring's `digest::SHA256`, with ring's run-time choice of code.
    Ring,
    /// ring's scalar block function, whatever the CPU (the Pi model).
    #[cfg(all(
        any(test, feature = "pi-model"),
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    RingScalar,
}

impl Provider {
    /// The name `selftest` prints (`sha256-provider: ...`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Sha2 => "sha2",
            Provider::Ring => "ring",
            #[cfg(all(
                any(test, feature = "pi-model"),
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Provider::RingScalar => "ring-scalar",
        }
    }
}

/// The provider of this build on this CPU.
#[cfg_attr(feature = "pi-model", allow(unreachable_code))]
pub fn provider() -> Provider {
    #[cfg(all(
        feature = "pi-model",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    return Provider::RingScalar;
    if is_fast() {
        Provider::Sha2
    } else {
        Provider::Ring
    }
}

/// A SHA-256 in progress.
#[derive(Clone)]
pub struct Sha256Stream {
    /// Bytes taken so far.
    length: u64,
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Blocks(Blocks),
    Ring(ring::digest::Context),
}

/// Our own buffering over a block function.
#[derive(Clone)]
struct Blocks {
    state: [u32; 8],
    /// Bytes of an unfinished block.
    block: [u8; 64],
    buffered: usize,
    code: BlockCode,
}

/// The block function under [`Blocks`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockCode {
    Sha2,
    #[cfg(all(
        any(test, feature = "pi-model"),
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    RingScalar,
}

impl BlockCode {
    fn compress(self, state: &mut [u32; 8], blocks: &[u8]) {
        match self {
            BlockCode::Sha2 => compress(state, blocks),
            #[cfg(all(
                any(test, feature = "pi-model"),
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            BlockCode::RingScalar => ring_scalar::compress(state, blocks),
        }
    }
}

/// Whether [`update_both`] computes the two hashes in one pass on this CPU
/// (never in the Pi model build, `bench/pi-model`, which stands for a CPU
/// without SHA instructions).
pub fn is_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !cfg!(feature = "pi-model")
            && std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream::new()
    }
}

impl Sha256Stream {
    /// A stream with this CPU's [`provider`].
    pub fn new() -> Sha256Stream {
        Sha256Stream::with(provider())
    }

    /// A stream with the given provider (tests and `selftest` compare them).
    pub fn with(provider: Provider) -> Sha256Stream {
        let blocks = |code| {
            Inner::Blocks(Blocks {
                state: INITIAL,
                block: [0; 64],
                buffered: 0,
                code,
            })
        };
        let inner = match provider {
            Provider::Sha2 => blocks(BlockCode::Sha2),
            Provider::Ring => Inner::Ring(ring::digest::Context::new(&ring::digest::SHA256)),
            #[cfg(all(
                any(test, feature = "pi-model"),
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Provider::RingScalar => blocks(BlockCode::RingScalar),
        };
        Sha256Stream { length: 0, inner }
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn update(&mut self, data: &[u8]) {
        self.length += data.len() as u64;
        match &mut self.inner {
            Inner::Blocks(blocks) => blocks.update(data),
            Inner::Ring(context) => context.update(data),
        }
    }

    pub fn finalize(self) -> [u8; 32] {
        match self.inner {
            Inner::Blocks(blocks) => blocks.finalize(self.length),
            Inner::Ring(context) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(context.finish().as_ref());
                out
            }
        }
    }
}

impl Blocks {
    /// Takes `data`: completes the unfinished block from its start and
    /// returns how many bytes that used; the rest is for the caller to
    /// compress (whole blocks) and [`Self::keep`] (the tail).
    fn fill(&mut self, data: &[u8]) -> usize {
        if self.buffered == 0 {
            return 0;
        }
        let take = (64 - self.buffered).min(data.len());
        self.block[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
        self.buffered += take;
        if self.buffered == 64 {
            self.code.compress(&mut self.state, &self.block);
            self.buffered = 0;
        }
        take
    }

    /// Keeps the tail of the data (less than a block) for later.
    fn keep(&mut self, tail: &[u8]) {
        debug_assert!(self.buffered == 0 && tail.len() < 64);
        self.block[..tail.len()].copy_from_slice(tail);
        self.buffered = tail.len();
    }

    fn update(&mut self, data: &[u8]) {
        let used = self.fill(data);
        let rest = &data[used..];
        if self.buffered > 0 {
            return;
        }
        let whole = rest.len() / 64 * 64;
        self.code.compress(&mut self.state, &rest[..whole]);
        self.keep(&rest[whole..]);
    }

    /// The digest, `length` bytes having been taken.
    fn finalize(mut self, length: u64) -> [u8; 32] {
        let bits = length.wrapping_mul(8);
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        let zeros = (55usize.wrapping_sub(self.buffered)) % 64;
        pad[1 + zeros..9 + zeros].copy_from_slice(&bits.to_be_bytes());
        self.update(&pad[..9 + zeros]);
        debug_assert_eq!(self.buffered, 0);
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Feeds the same `data` to both hashes, in one pass where the CPU allows
/// (two [`Provider::Sha2`] streams with the x86 SHA extensions), else one
/// after the other.
pub fn update_both(a: &mut Sha256Stream, b: &mut Sha256Stream, data: &[u8]) {
    let (Inner::Blocks(blocks_a), Inner::Blocks(blocks_b)) = (&mut a.inner, &mut b.inner) else {
        a.update(data);
        b.update(data);
        return;
    };
    if PairPath::detect() != PairPath::ShaNi
        || blocks_a.code != BlockCode::Sha2
        || blocks_b.code != BlockCode::Sha2
    {
        a.update(data);
        b.update(data);
        return;
    }
    a.length += data.len() as u64;
    b.length += data.len() as u64;
    let (a, b) = (blocks_a, blocks_b);
    let used_a = a.fill(data);
    let used_b = b.fill(data);
    // A hash whose block is still unfinished has taken all of `data`.
    let rest_a = if a.buffered > 0 {
        &[][..]
    } else {
        &data[used_a..]
    };
    let rest_b = if b.buffered > 0 {
        &[][..]
    } else {
        &data[used_b..]
    };
    let blocks = (rest_a.len() / 64).min(rest_b.len() / 64) * 64;
    compress_pair(
        &mut a.state,
        &rest_a[..blocks],
        &mut b.state,
        &rest_b[..blocks],
    );
    for (hash, rest) in [(a, &rest_a[blocks..]), (b, &rest_b[blocks..])] {
        if hash.buffered == 0 {
            let whole = rest.len() / 64 * 64;
            compress(&mut hash.state, &rest[..whole]);
            hash.keep(&rest[whole..]);
        }
    }
}

/// ring's scalar SHA-256 block function (the CRYPTOGAMS `nohw` code ring's
/// dispatch runs where the CPU has no SHA instructions, a Pi 4's
/// Cortex-A72 among them), called directly so that the Pi model hashes with
/// the code a Pi 4 runs, which ring would never pick on this PC. The name
/// carries ring's version (Cargo.lock): a ring upgrade fails the link of the
/// Pi model and of the unit tests, loudly, until it is renamed here. Not in
/// the device binary.
#[cfg(all(
    any(test, feature = "pi-model"),
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod ring_scalar {
    use std::num::{NonZeroUsize, Wrapping};

    extern "C" {
        fn ring_core_0_17_14__sha256_block_data_order_nohw(
            state: *mut [Wrapping<u32>; 8],
            data: *const [u8; 64],
            num: NonZeroUsize,
        );
    }

    /// Compresses whole 64-byte blocks into one state.
    pub fn compress(state: &mut [u32; 8], blocks: &[u8]) {
        debug_assert!(blocks.len().is_multiple_of(64));
        let Some(count) = NonZeroUsize::new(blocks.len() / 64) else {
            return;
        };
        let mut words = state.map(Wrapping);
        // SAFETY: `words` is the eight-word state the function updates;
        // `blocks` holds `count` whole blocks, which the function reads
        // (unaligned reads are fine), and nothing else. It needs no CPU
        // feature: it is the code ring runs when none is present.
        unsafe {
            ring_core_0_17_14__sha256_block_data_order_nohw(
                &mut words,
                blocks.as_ptr().cast(),
                count,
            )
        };
        *state = words.map(|word| word.0);
    }
}

/// Compresses whole 64-byte blocks into one state with the sha2 crate.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    let (blocks, rest) = blocks.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    // SAFETY: `GenericArray<u8, U64>` is `repr(transparent)` over an array
    // type laid out as `[u8; 64]` (size 64, alignment 1); sha2 casts the
    // other way round in `compress256`.
    let blocks = unsafe {
        std::slice::from_raw_parts(
            blocks.as_ptr().cast::<GenericArray<u8, U64>>(),
            blocks.len(),
        )
    };
    sha2::compress256(state, blocks);
}

/// How two runs of blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairPath {
    /// Interleaved, with the x86 SHA extensions.
    ShaNi,
    /// One after the other, with the sha2 crate (any CPU).
    OneAfterOther,
}

impl PairPath {
    /// The path [`update_both`] takes on this CPU.
    fn detect() -> PairPath {
        if is_fast() {
            PairPath::ShaNi
        } else {
            PairPath::OneAfterOther
        }
    }
}

/// Compresses two equally long runs of whole blocks into two states.
fn compress_pair(a: &mut [u32; 8], blocks_a: &[u8], b: &mut [u32; 8], blocks_b: &[u8]) {
    compress_pair_on(PairPath::detect(), a, blocks_a, b, blocks_b);
}

/// As [`compress_pair`], on the given path; [`PairPath::ShaNi`] falls back to
/// the other where the CPU lacks the extensions.
fn compress_pair_on(
    path: PairPath,
    a: &mut [u32; 8],
    blocks_a: &[u8],
    b: &mut [u32; 8],
    blocks_b: &[u8],
) {
    debug_assert_eq!(blocks_a.len(), blocks_b.len());
    #[cfg(target_arch = "x86_64")]
    if path == PairPath::ShaNi && is_fast() {
        // SAFETY: `is_fast` checked that the CPU has the features
        // `shani::compress_pair` enables.
        unsafe { shani::compress_pair(a, blocks_a, b, blocks_b) };
        return;
    }
    let _ = path;
    compress(a, blocks_a);
    compress(b, blocks_b);
}

/// The paired compression with the x86 SHA extensions.
#[cfg(target_arch = "x86_64")]
mod shani;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use sha2::{Digest, Sha256};

    fn expected(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn one_stream_matches_the_sha2_crate_at_every_length_and_split() {
        let mut data = vec![0u8; 300];
        rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
        for length in 0..data.len() {
            let mut whole = Sha256Stream::new();
            whole.update(&data[..length]);
            assert_eq!(
                whole.finalize(),
                expected(&data[..length]),
                "length {length}"
            );
            for split in [1, 55, 56, 63, 64, 65, 129] {
                let split = split.min(length);
                let mut parts = Sha256Stream::new();
                parts.update(&data[..split]);
                parts.update(&data[split..length]);
                assert_eq!(parts.len(), length as u64);
                assert_eq!(
                    parts.finalize(),
                    expected(&data[..length]),
                    "length {length}, split {split}"
                );
            }
        }
    }

    /// Two hashes over the same stream, one restarted at random places (as
    /// a part hash is at each cut), fed in random slices.
    #[test]
    fn two_streams_match_the_sha2_crate_whatever_their_offsets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut data = vec![0u8; 256 * 1024];
        rng.fill_bytes(&mut data);
        for round in 0..40 {
            let mut whole = Sha256Stream::new();
            let mut part = Sha256Stream::new();
            let mut part_start = 0;
            let mut at = 0;
            while at < data.len() {
                let take = match round % 3 {
                    0 => rng.gen_range(1..200),
                    1 => rng.gen_range(1..5000),
                    _ => rng.gen_range(1..70_000),
                }
                .min(data.len() - at);
                update_both(&mut whole, &mut part, &data[at..at + take]);
                at += take;
                if rng.gen_ratio(1, 4) {
                    let done = std::mem::take(&mut part);
                    assert_eq!(done.finalize(), expected(&data[part_start..at]));
                    part_start = at;
                }
            }
            assert_eq!(part.finalize(), expected(&data[part_start..]));
            assert_eq!(whole.finalize(), expected(&data), "round {round}");
        }
    }

    /// `message` with SHA-256's padding: compressing it from [`INITIAL`]
    /// leaves the digest in the state.
    fn padded(message: &[u8]) -> Vec<u8> {
        let mut out = message.to_vec();
        out.push(0x80);
        while out.len() % 64 != 56 {
            out.push(0);
        }
        out.extend_from_slice(&(message.len() as u64 * 8).to_be_bytes());
        out
    }

    fn digest_of(state: [u32; 8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The paths this CPU can run, as the CPU itself lists its features
    /// (/proc/cpuinfo), independently of `is_x86_feature_detected!`.
    fn paths_the_cpu_offers() -> Vec<PairPath> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|line| line.starts_with("flags"))
            .map(|line| line.split_whitespace().collect())
            .unwrap_or_default();
        let has = |flag: &str| flags.contains(&flag);
        let mut paths = vec![PairPath::OneAfterOther];
        if cfg!(target_arch = "x86_64")
            && !cfg!(feature = "pi-model")
            && has("sha_ni")
            && has("sse4_1")
            && has("ssse3")
        {
            paths.push(PairPath::ShaNi);
        }
        paths
    }

    /// Both paths where the CPU has them (the one-after-other path always):
    /// each gives sha2's digests, and `update_both` takes the SHA-NI path
    /// exactly when the CPU lists the extensions.
    #[test]
    fn every_pair_path_this_cpu_offers_gives_sha2_digests() {
        let paths = paths_the_cpu_offers();
        eprintln!("pair paths tested on this CPU: {paths:?}");
        let expected_path = if paths.contains(&PairPath::ShaNi) {
            PairPath::ShaNi
        } else {
            PairPath::OneAfterOther
        };
        assert_eq!(PairPath::detect(), expected_path);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut data = vec![0u8; 64 * 40];
        rng.fill_bytes(&mut data);
        for length in [0, 1, 55, 56, 64, 1000, 64 * 32 - 9] {
            let message_a = &data[..length];
            let message_b = &data[data.len() - length..];
            let (blocks_a, blocks_b) = (padded(message_a), padded(message_b));
            for &path in &paths {
                let (mut a, mut b) = (INITIAL, INITIAL);
                compress_pair_on(path, &mut a, &blocks_a, &mut b, &blocks_b);
                assert_eq!(digest_of(a), expected(message_a), "{path:?}, {length}");
                assert_eq!(digest_of(b), expected(message_b), "{path:?}, {length}");
            }
        }
        // From a state other than the initial one, all paths agree.
        let states: Vec<_> = paths
            .iter()
            .map(|&path| {
                let (mut a, mut b) = ([7u32; 8], INITIAL);
                compress_pair_on(path, &mut a, &data[64..], &mut b, &data[..64 * 39]);
                (a, b)
            })
            .collect();
        assert!(states.windows(2).all(|pair| pair[0] == pair[1]));
    }

    /// Every provider this build has, the CPU's own first.
    fn providers() -> Vec<Provider> {
        let mut all = vec![provider()];
        for other in [Provider::Sha2, Provider::Ring, Provider::RingScalar] {
            if !all.contains(&other) {
                all.push(other);
            }
        }
        all
    }

    /// `selftest`'s known answers (FIPS 180-2's examples and a million
    /// `a`s), fed in uneven pieces, through every provider.
    #[test]
    fn every_provider_gives_the_known_answers() {
        let answers = crate::selftest::SHA256_ANSWERS;
        for provider in providers() {
            for (unit, repeat, want) in answers {
                let message = unit.repeat(repeat);
                for piece in [1, 63, 64, 997, 1 << 20] {
                    let mut stream = Sha256Stream::with(provider);
                    for chunk in message.chunks(piece) {
                        stream.update(chunk);
                    }
                    assert_eq!(stream.len(), message.len() as u64);
                    assert_eq!(
                        hex::encode(stream.finalize()),
                        want,
                        "{provider:?}, pieces of {piece}"
                    );
                }
            }
            for length in [55, 56, 63, 64, 65, 119, 120, 128] {
                let message = vec![0x5a; length];
                let mut stream = Sha256Stream::with(provider);
                stream.update(&message);
                assert_eq!(
                    stream.finalize(),
                    expected(&message),
                    "{provider:?}, {length}"
                );
            }
        }
    }

    /// Ingest's shape: a whole-file hash and part hashes restarted at random
    /// cuts, fed random slices that straddle the cuts. Every provider, and
    /// every mix of two in `update_both`, gives the same digests as the
    /// sha2 crate over the same ranges.
    #[test]
    fn the_providers_agree_on_random_data_across_part_boundaries() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut data = vec![0u8; 3 * 1024 * 1024 + 17];
        rng.fill_bytes(&mut data);
        let mut cuts: Vec<usize> = (0..12).map(|_| rng.gen_range(1..data.len())).collect();
        cuts.sort_unstable();
        cuts.push(data.len());
        let all = providers();
        for &whole_provider in &all {
            for &part_provider in &all {
                let mut whole = Sha256Stream::with(whole_provider);
                let mut part = Sha256Stream::with(part_provider);
                let (mut at, mut part_start, mut next_cut) = (0, 0, 0);
                while at < data.len() {
                    let take = rng.gen_range(1..300_000).min(cuts[next_cut] - at);
                    update_both(&mut whole, &mut part, &data[at..at + take]);
                    at += take;
                    if at == cuts[next_cut] {
                        let done = std::mem::replace(&mut part, Sha256Stream::with(part_provider));
                        assert_eq!(
                            done.finalize(),
                            expected(&data[part_start..at]),
                            "{whole_provider:?}/{part_provider:?}, part at {part_start}"
                        );
                        part_start = at;
                        next_cut += 1;
                    }
                }
                assert_eq!(whole.len(), data.len() as u64);
                assert_eq!(
                    whole.finalize(),
                    expected(&data),
                    "{whole_provider:?}/{part_provider:?}"
                );
            }
        }
    }

    /// ingest and cache use the CPU's provider: ring everywhere but on x86
    /// with the SHA extensions (the paired path), and never sha2's software
    /// code.
    #[test]
    fn the_provider_follows_the_pairing() {
        let expected = if is_fast() {
            Provider::Sha2
        } else if cfg!(feature = "pi-model") {
            Provider::RingScalar
        } else {
            Provider::Ring
        };
        assert_eq!(provider(), expected);
    }
}
