//! What a part's plaintext becomes before it is sealed (format 2): one flag
//! byte, stored ([`FLAG_STORED`]: the part as it is) or zstd
//! ([`FLAG_ZSTD`]: one zstd frame), then the body. The flag is inside the
//! authenticated ciphertext.
//!
//! Owns the choice (compress or keep as is), the zstd settings and the
//! bounded unpacking: a body never unpacks past the part's recorded length
//! and a frame asking for a window larger than [`WINDOW_LOG`] is refused, so
//! a damaged or hostile object costs at most a fixed amount of memory.
//! Pure: no I/O, clock or randomness.

use zstd::zstd_safe::{self, CParameter, DParameter, InBuffer, OutBuffer};

/// The part as it is follows.
pub const FLAG_STORED: u8 = 0;
/// One zstd frame follows.
pub const FLAG_ZSTD: u8 = 1;

/// zstd level for parts. On bench/compress's corpus (docs, binaries, a
/// database) cut in 4 MiB parts, on one x86 core: level 3 kept 251 of 700
/// MiB in 3.8 s, 6 kept 241 in 9.6 s, 9 kept 237 in 14 s. At a 10 MB/s
/// uplink level 6 already made the backup CPU-bound on 2 cores (a part that
/// shrinks 4x must be compressed at 40 MB/s to keep the link busy), and a
/// Pi's core is several times slower: level 3 (restic's default too) keeps
/// the link busy for 4 % more bytes.
pub const LEVEL: i32 = 3;

/// log2 of the zstd window a part is written with and the largest a reader
/// accepts (1 MiB): what unpacking a part streamed from the remote holds,
/// whatever the part's size. A 4 MiB window saved only 1.5 % more.
pub const WINDOW_LOG: u32 = 20;

/// A part is kept compressed only when that saves at least 1/`MIN_SAVING`
/// of it (3 %); otherwise it is stored as it is.
const MIN_SAVING: usize = 32;

/// Bytes of the sample compressed first: three spread over the part, at
/// the fastest level. A part whose samples do not shrink is stored without
/// compressing the rest (photos, videos, archives cost almost no CPU).
const SAMPLE_LEN: usize = 64 * 1024;

/// Parts shorter than this are stored: too little to gain.
const MIN_COMPRESS_LEN: usize = 4096;

/// `prefix` (the nonce), a flag and the body `plaintext` is sealed as, with
/// `reserve` spare capacity for the tag. Compressed only when that saves at
/// least 1/32 of the part, so a compressed body is always shorter than the
/// part (format readers rely on it); then only the compressed bytes are
/// held besides the part. Stored, the part's own buffer becomes the result
/// (give it a capacity of `len + prefix + 1 + reserve` to spare a copy).
pub fn pack(mut plaintext: Vec<u8>, prefix: &[u8], reserve: usize) -> Vec<u8> {
    if let Some(packed) = try_compress(&plaintext, prefix, reserve) {
        return packed;
    }
    let len = plaintext.len();
    let head = prefix.len() + 1;
    plaintext.reserve_exact(head + reserve);
    plaintext.resize(head + len, 0);
    // One memmove; far cheaper than the cipher that follows.
    plaintext.copy_within(0..len, head);
    plaintext[..prefix.len()].copy_from_slice(prefix);
    plaintext[prefix.len()] = FLAG_STORED;
    plaintext
}

fn try_compress(plaintext: &[u8], prefix: &[u8], reserve: usize) -> Option<Vec<u8>> {
    let len = plaintext.len();
    if len < MIN_COMPRESS_LEN || !samples_shrink(plaintext) {
        return None;
    }
    let limit = len - len / MIN_SAVING - 1;
    let start = prefix.len() + 1;
    let mut out = vec![0u8; start + limit + reserve];
    out[..prefix.len()].copy_from_slice(prefix);
    out[prefix.len()] = FLAG_ZSTD;
    let mut cctx = zstd_safe::CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(LEVEL))
        .ok()?;
    cctx.set_parameter(CParameter::WindowLog(WINDOW_LOG)).ok()?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
    // A body that does not fit in `limit` bytes is an error here: stored.
    let written = cctx
        .compress2(&mut out[start..start + limit], plaintext)
        .ok()?;
    out.truncate(start + written);
    Some(out)
}

/// Whether three samples of the part (start, middle, end) shrink by at
/// least 1/32 at zstd's fastest level. Cheap next to compressing the part.
fn samples_shrink(plaintext: &[u8]) -> bool {
    let len = plaintext.len();
    if len <= 3 * SAMPLE_LEN {
        return shrinks(plaintext);
    }
    let middle = len / 2 - SAMPLE_LEN / 2;
    let mut sample = Vec::with_capacity(3 * SAMPLE_LEN);
    for start in [0, middle, len - SAMPLE_LEN] {
        sample.extend_from_slice(&plaintext[start..start + SAMPLE_LEN]);
    }
    shrinks(&sample)
}

fn shrinks(sample: &[u8]) -> bool {
    let limit = sample.len() - sample.len() / MIN_SAVING;
    let mut out = vec![0u8; limit];
    zstd_safe::compress(&mut out[..], sample, 1).is_ok()
}

/// Why a part's body cannot be unpacked: a sentence fragment for
/// [`super::RepoError::Corrupt`].
pub type UnpackError = String;

/// Unpacks a part's body as it is decrypted, piece by piece, into a sink,
/// never past `expected` bytes in all. Holds a zstd window of at most
/// 2^[`WINDOW_LOG`] bytes and a 256 KiB output buffer, only for a zstd body.
pub struct Unpacker {
    expected: u64,
    produced: u64,
    state: State,
}

enum State {
    /// Format 1: no flag, the body is the part.
    Plain,
    /// Format 2, before the flag byte.
    Flag,
    Stored,
    Zstd {
        dctx: Box<zstd_safe::DCtx<'static>>,
        out: Vec<u8>,
        /// The frame's last block was decoded.
        done: bool,
    },
}

/// Bytes of unpacked output handed to the sink at a time.
const OUT_LEN: usize = 256 * 1024;

impl Unpacker {
    /// For a part of `expected` bytes whose body has a flag byte (format 2)
    /// or not (format 1, `flagged` false).
    pub fn new(expected: u64, flagged: bool) -> Unpacker {
        Unpacker {
            expected,
            produced: 0,
            state: if flagged { State::Flag } else { State::Plain },
        }
    }

    /// Unpacks the next piece of body into `sink`. `Err(Ok(reason))`: the
    /// body is damaged; `Err(Err(e))`: the sink failed.
    pub fn feed<E>(
        &mut self,
        mut piece: &[u8],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Result<UnpackError, E>> {
        if matches!(self.state, State::Flag) {
            let Some((&flag, rest)) = piece.split_first() else {
                return Ok(());
            };
            self.state = match flag {
                FLAG_STORED => State::Stored,
                FLAG_ZSTD => zstd_state().map_err(Ok)?,
                other => return Err(Ok(format!("it holds an unknown kind of part ({other})"))),
            };
            piece = rest;
        }
        match &mut self.state {
            State::Flag => unreachable!("the flag was read above"),
            State::Plain | State::Stored => {
                count(&mut self.produced, self.expected, piece.len()).map_err(Ok)?;
                sink(piece).map_err(Err)
            }
            State::Zstd { dctx, out, done } => {
                let (expected, produced) = (self.expected, &mut self.produced);
                inflate(dctx, out, done, piece, expected, produced, sink)
            }
        }
    }

    /// Checks, once the whole body went through [`Unpacker::feed`], that it
    /// unpacked to exactly the expected length.
    pub fn finish(self) -> Result<(), UnpackError> {
        match self.state {
            State::Flag => return Err("it holds no part".into()),
            State::Zstd { done: false, .. } => return Err("its compressed data ends early".into()),
            _ => {}
        }
        if self.produced != self.expected {
            return Err(format!(
                "it unpacks to {} bytes, not the {} recorded",
                self.produced, self.expected
            ));
        }
        Ok(())
    }
}

fn zstd_state() -> Result<State, UnpackError> {
    let mut dctx = zstd_safe::DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(WINDOW_LOG))
        .map_err(|code| zstd_error("cannot start unpacking", code))?;
    Ok(State::Zstd {
        dctx: Box::new(dctx),
        out: vec![0u8; OUT_LEN],
        done: false,
    })
}

fn count(produced: &mut u64, expected: u64, more: usize) -> Result<(), UnpackError> {
    *produced += more as u64;
    if *produced > expected {
        return Err(format!(
            "it unpacks to more than the {expected} bytes recorded"
        ));
    }
    Ok(())
}

fn zstd_error(what: &str, code: usize) -> UnpackError {
    format!(
        "its compressed data {what} ({})",
        zstd_safe::get_error_name(code)
    )
}

fn inflate<E>(
    dctx: &mut zstd_safe::DCtx<'static>,
    out: &mut [u8],
    done: &mut bool,
    piece: &[u8],
    expected: u64,
    produced: &mut u64,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<UnpackError, E>> {
    let mut input = InBuffer::around(piece);
    // Each round consumes input or fills output; the output is bounded by
    // `expected`, the input by the piece: at most this many rounds.
    let max_rounds = 2 + piece.len() + (expected as usize / OUT_LEN) * 2;
    for _ in 0..max_rounds {
        if input.pos() == piece.len() && *done {
            return Ok(());
        }
        if *done {
            return Err(Ok("it holds bytes after its compressed data".into()));
        }
        let mut output = OutBuffer::around(&mut out[..]);
        let hint = dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(|code| Ok(zstd_error("is damaged", code)))?;
        let written = output.pos();
        *done = hint == 0;
        count(produced, expected, written).map_err(Ok)?;
        if written > 0 {
            sink(&out[..written]).map_err(Err)?;
        }
        if input.pos() == piece.len() && written < out.len() && !*done {
            return Ok(());
        }
    }
    Err(Ok("its compressed data does not progress".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        b"The family's letters, kept for the grandchildren. "
            .iter()
            .cycle()
            .take(len)
            .copied()
            .collect()
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn unpack(body: &[u8], expected: u64, piece: usize) -> Result<Vec<u8>, UnpackError> {
        let mut unpacker = Unpacker::new(expected, true);
        let mut out = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            unpacker
                .feed(chunk, &mut |bytes: &[u8]| -> Result<(), ()> {
                    out.extend_from_slice(bytes);
                    Ok(())
                })
                .map_err(|err| err.expect("the sink does not fail"))?;
        }
        unpacker.finish()?;
        Ok(out)
    }

    #[test]
    fn compressible_parts_shrink_and_unpack_in_any_pieces() {
        let part = text(3 << 20);
        let body = pack(part.clone(), b"", 0);
        assert_eq!(body[0], FLAG_ZSTD);
        assert!(body.len() < part.len() / 20, "{} bytes", body.len());
        for piece in [1, 16, 4096, 1 << 20, body.len()] {
            assert_eq!(unpack(&body, part.len() as u64, piece).unwrap(), part);
        }
    }

    #[test]
    fn incompressible_and_tiny_parts_are_stored_as_they_are() {
        for part in [noise(5 << 20), noise(100_000), text(100), Vec::new()] {
            let body = pack(part.clone(), b"nonce", 16);
            assert_eq!(&body[..5], b"nonce");
            assert_eq!(body[5], FLAG_STORED);
            assert_eq!(&body[6..], &part[..]);
            assert_eq!(unpack(&body[5..], part.len() as u64, 4096).unwrap(), part);
        }
    }

    #[test]
    fn a_mixed_part_is_compressed_when_it_saves_enough() {
        let mut part = noise(2 << 20);
        part.extend_from_slice(&text(2 << 20));
        let body = pack(part.clone(), b"", 0);
        assert_eq!(body[0], FLAG_ZSTD);
        assert!(body.len() < part.len() * 3 / 5, "{} bytes", body.len());
        assert_eq!(unpack(&body, part.len() as u64, 1 << 20).unwrap(), part);
    }

    #[test]
    fn a_body_unpacking_past_its_length_is_refused_early() {
        // 1 GiB of zeros in a few KiB: the bomb stops at the recorded length.
        let bomb = zstd_safe_compress_zeros(1 << 30);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let mut body = vec![FLAG_ZSTD];
        body.extend_from_slice(&bomb);
        let mut unpacker = Unpacker::new(1 << 20, true);
        let mut seen = 0usize;
        let err = unpacker
            .feed(&body, &mut |bytes: &[u8]| -> Result<(), ()> {
                seen += bytes.len();
                Ok(())
            })
            .unwrap_err()
            .unwrap();
        assert!(err.contains("more than the 1048576 bytes"), "{err}");
        assert!(seen <= 1 << 20);
    }

    fn zstd_safe_compress_zeros(len: usize) -> Vec<u8> {
        let mut cctx = zstd_safe::CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(WINDOW_LOG))
            .unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut out = vec![0u8; 1 << 20];
        let mut output = OutBuffer::around(&mut out[..]);
        for _ in 0..len / zeros.len() {
            let mut input = InBuffer::around(&zeros[..]);
            while input.pos() < zeros.len() {
                cctx.compress_stream(&mut output, &mut input).unwrap();
            }
        }
        while cctx.end_stream(&mut output).unwrap() > 0 {}
        let written = output.pos();
        out.truncate(written);
        out
    }

    #[test]
    fn a_frame_asking_for_a_large_window_is_refused() {
        let part = text(4 << 20);
        let mut cctx = zstd_safe::CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(WINDOW_LOG + 4))
            .unwrap();
        cctx.set_parameter(CParameter::ContentSizeFlag(false))
            .unwrap();
        let mut frame = vec![0u8; 1 << 20];
        let written = cctx.compress2(&mut frame[..], &part).unwrap();
        let mut body = vec![FLAG_ZSTD];
        body.extend_from_slice(&frame[..written]);
        let err = unpack(&body, part.len() as u64, 4096).unwrap_err();
        assert!(err.contains("compressed data is damaged"), "{err}");
    }

    #[test]
    fn short_trailing_unknown_and_empty_bodies_are_refused() {
        let part = text(100_000);
        let body = pack(part.clone(), b"", 0);
        let len = part.len() as u64;
        assert!(unpack(&body[..body.len() - 3], len, 4096)
            .unwrap_err()
            .contains("ends early"));
        let mut trailing = body.clone();
        trailing.extend_from_slice(b"more");
        assert!(unpack(&trailing, len, 4096)
            .unwrap_err()
            .contains("after its compressed data"));
        assert!(unpack(&body, len + 1, 4096)
            .unwrap_err()
            .contains("not the 100001 recorded"));
        assert!(unpack(&[7, 1, 2], 2, 1)
            .unwrap_err()
            .contains("unknown kind"));
        assert!(unpack(&[], 0, 1).unwrap_err().contains("holds no part"));
    }
}
