//! The paired compression with the x86 SHA extensions (see the parent
//! module).

use std::arch::x86_64::*;

/// The SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// One hash's state in the instructions' layout: (A, B, E, F) and
/// (C, D, G, H), high lane first.
#[derive(Clone, Copy)]
struct Lanes {
    abef: __m128i,
    cdgh: __m128i,
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load(state: &[u32; 8]) -> Lanes {
    // SAFETY: `state` is 32 readable bytes; unaligned loads.
    let (dcba, hgfe) = unsafe {
        let words = state.as_ptr().cast::<__m128i>();
        (_mm_loadu_si128(words), _mm_loadu_si128(words.add(1)))
    };
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    Lanes {
        abef: _mm_alignr_epi8(cdab, efgh, 8),
        cdgh: _mm_blend_epi16(efgh, cdab, 0xF0),
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store(lanes: Lanes, state: &mut [u32; 8]) {
    let feba = _mm_shuffle_epi32(lanes.abef, 0x1B);
    let dchg = _mm_shuffle_epi32(lanes.cdgh, 0xB1);
    let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    let hgef = _mm_alignr_epi8(dchg, feba, 8);
    // SAFETY: `state` is 32 writable bytes; unaligned stores.
    unsafe {
        let words = state.as_mut_ptr().cast::<__m128i>();
        _mm_storeu_si128(words, dcba);
        _mm_storeu_si128(words.add(1), hgef);
    }
}

/// Loads message words 4i..4i+4 of a block, as big-endian numbers.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn message(block: &[u8; 64], i: usize) -> __m128i {
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let words: &[u8; 16] = block[16 * i..][..16].try_into().expect("16 bytes");
    // SAFETY: `words` is 16 readable bytes; an unaligned load.
    let words = unsafe { _mm_loadu_si128(words.as_ptr().cast::<__m128i>()) };
    _mm_shuffle_epi8(words, swap)
}

/// The next four message words from the sixteen before them.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let sums = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
    _mm_sha256msg2_epu32(sums, w3)
}

/// Four rounds with message words 4i..4i+4.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds(lanes: &mut Lanes, words: __m128i, i: usize) {
    let k: &[u32; 4] = K[4 * i..][..4].try_into().expect("4 constants");
    // SAFETY: `k` is 16 readable bytes; an unaligned load.
    let k = unsafe { _mm_loadu_si128(k.as_ptr().cast::<__m128i>()) };
    let sum = _mm_add_epi32(words, k);
    lanes.cdgh = _mm_sha256rnds2_epu32(lanes.cdgh, lanes.abef, sum);
    lanes.abef = _mm_sha256rnds2_epu32(lanes.abef, lanes.cdgh, _mm_shuffle_epi32(sum, 0x0E));
}

/// Compresses each pair of blocks (one from each run) into the two
/// states in turn, the two hashes' rounds interleaved so that each
/// fills the other's waits.
///
/// # Safety
/// The CPU must have the SHA, SSSE3 and SSE4.1 extensions.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn compress_pair(a: &mut [u32; 8], blocks_a: &[u8], b: &mut [u32; 8], blocks_b: &[u8]) {
    let mut x = load(a);
    let mut y = load(b);
    let (blocks_a, _) = blocks_a.as_chunks::<64>();
    let (blocks_b, _) = blocks_b.as_chunks::<64>();
    for (block_a, block_b) in blocks_a.iter().zip(blocks_b) {
        let (x_saved, y_saved) = (x, y);
        let (mut x0, mut x1, mut x2, mut x3) = (
            message(block_a, 0),
            message(block_a, 1),
            message(block_a, 2),
            message(block_a, 3),
        );
        let (mut y0, mut y1, mut y2, mut y3) = (
            message(block_b, 0),
            message(block_b, 1),
            message(block_b, 2),
            message(block_b, 3),
        );
        // Rounds 4i..4i+4 of both hashes; from the fifth group on, the
        // group's words replace the oldest four.
        macro_rules! group {
            ($i:expr, $x:ident, $y:ident) => {
                rounds(&mut x, $x, $i);
                rounds(&mut y, $y, $i);
            };
            ($i:expr, $x0:ident, $x1:ident, $x2:ident, $x3:ident, $y0:ident, $y1:ident, $y2:ident, $y3:ident) => {
                $x0 = schedule($x0, $x1, $x2, $x3);
                $y0 = schedule($y0, $y1, $y2, $y3);
                group!($i, $x0, $y0);
            };
        }
        group!(0, x0, y0);
        group!(1, x1, y1);
        group!(2, x2, y2);
        group!(3, x3, y3);
        for base in [4, 8, 12] {
            group!(base, x0, x1, x2, x3, y0, y1, y2, y3);
            group!(base + 1, x1, x2, x3, x0, y1, y2, y3, y0);
            group!(base + 2, x2, x3, x0, x1, y2, y3, y0, y1);
            group!(base + 3, x3, x0, x1, x2, y3, y0, y1, y2);
        }
        x = Lanes {
            abef: _mm_add_epi32(x.abef, x_saved.abef),
            cdgh: _mm_add_epi32(x.cdgh, x_saved.cdgh),
        };
        y = Lanes {
            abef: _mm_add_epi32(y.abef, y_saved.abef),
            cdgh: _mm_add_epi32(y.cdgh, y_saved.cdgh),
        };
    }
    store(x, a);
    store(y, b);
}
