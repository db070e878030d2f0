//! A streaming form of the `fastcdc` crate's 2020 chunker.
//!
//! Uploads arrive as a stream of buffers of any size, and across several
//! requests (tus PATCHes); the crate's own `StreamCDC` wants a `Read` it can
//! pull 16 MiB windows from and copies every chunk. [`Chunker`] keeps only a
//! few words of state (and at most one byte), takes bytes as they come,
//! hashes each part as it goes and reports the same cut points as
//! `fastcdc::v2020::FastCDC` over the whole input (a test checks this against
//! the crate on random data). It uses the crate's gear tables and masks.
//! Pure: no I/O.

use crate::sha256_pair::{update_both, Sha256Stream};
use fastcdc::v2020::{get_gear_with_seed, logarithm2, Normalization, MASKS};

/// The chunk sizes fixed by the remote format (docs/DESIGN.md).
pub const MIN_SIZE: u32 = 1024 * 1024;
pub const AVG_SIZE: u32 = 4 * 1024 * 1024;
pub const MAX_SIZE: u32 = 16 * 1024 * 1024;

/// One part found by the [`Chunker`]: a byte range of the stream and the
/// SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    pub offset: u64,
    pub length: u64,
    pub sha256: [u8; 32],
}

/// Finds where a stream's parts end, without hashing them: the cut points
/// of `fastcdc::v2020::FastCDC` over the whole input, as bytes come.
pub struct Cutter {
    min_size: u64,
    avg_size: u64,
    max_size: u64,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    /// Bytes of the current part scanned so far.
    position: u64,
    hash: u64,
    /// Where the current part starts in the stream.
    part_offset: u64,
    /// A cut was found at the last byte seen, at an even position. The crate
    /// examines such a byte only when another byte follows it, so the cut
    /// (before that byte) stands only if more input comes.
    held: bool,
}

/// Hashes the parts of a stream, given the bytes and where parts end (from
/// a [`Cutter`], possibly on another thread); made with
/// [`PartHasher::with_whole`], the whole stream's hash too, in the same pass.
pub struct PartHasher {
    hasher: Sha256Stream,
    whole: Option<Sha256Stream>,
    /// Where the current part starts in the stream.
    part_offset: u64,
    /// Bytes hashed so far.
    hashed: u64,
    /// The last byte given, not yet known to be before or after a cut.
    pending: Option<u8>,
    finished: Vec<PartSummary>,
}

/// Cuts a stream into parts and hashes each part and the whole, in one pass:
/// a [`Cutter`] and a [`PartHasher`] on one thread, as the tests check them
/// against the `fastcdc` crate (ingest runs the two on threads of their own).
#[cfg(test)]
pub struct Chunker {
    cutter: Cutter,
    hasher: PartHasher,
    cuts: Vec<u64>,
}

enum Scan {
    /// The whole buffer belongs to the current part.
    Continue,
    /// The current part ends after this many bytes of the buffer.
    CutAfter(usize),
    /// All but the last byte belong to the current part; the last byte is
    /// a tentative cut.
    HoldLast,
}

impl Cutter {
    pub fn new(min_size: u32, avg_size: u32, max_size: u32) -> Cutter {
        // The crate's constructor checks the sizes (and panics on values
        // outside its limits, a programming error here).
        let _ = fastcdc::v2020::FastCDC::new(&[], min_size, avg_size, max_size);
        let bits = logarithm2(avg_size);
        let normalization = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(0);
        Cutter {
            min_size: u64::from(min_size),
            avg_size: u64::from(avg_size),
            max_size: u64::from(max_size),
            mask_s: MASKS[(bits + normalization) as usize],
            mask_l: MASKS[(bits - normalization) as usize],
            gear,
            gear_ls,
            position: 0,
            hash: 0,
            part_offset: 0,
            held: false,
        }
    }

    /// The cutter of the remote format.
    pub fn standard() -> Cutter {
        Cutter::new(MIN_SIZE, AVG_SIZE, MAX_SIZE)
    }

    /// Takes the next bytes of the stream; adds to `cuts` the stream
    /// offsets where parts now certainly end, and returns how far the
    /// stream is settled: every cut before that offset is known (all bytes
    /// but, at times, the last one).
    pub fn feed(&mut self, mut data: &[u8], cuts: &mut Vec<u64>) -> u64 {
        if !data.is_empty() {
            if self.held {
                // More input exists, so the held cut stands: the held byte
                // starts the next part.
                self.held = false;
                self.cut(cuts);
                self.position = 1;
            }
            loop {
                match self.scan(data) {
                    Scan::Continue => break,
                    Scan::CutAfter(n) => {
                        self.cut(cuts);
                        data = &data[n..];
                    }
                    Scan::HoldLast => {
                        self.held = true;
                        break;
                    }
                }
            }
        }
        self.part_offset + self.position
    }

    /// Ends the stream; returns its length (where the last part ends).
    pub fn finish(self) -> u64 {
        self.part_offset + self.position + u64::from(self.held)
    }

    fn cut(&mut self, cuts: &mut Vec<u64>) {
        self.part_offset += self.position;
        cuts.push(self.part_offset);
        self.position = 0;
        self.hash = 0;
    }

    /// Finds where the current part ends within `data`, advancing
    /// `position` over the bytes that stay in it.
    fn scan(&mut self, data: &[u8]) -> Scan {
        let mut index = 0usize;
        // Below the minimum size nothing is examined.
        if self.position < self.min_size {
            let skip = (self.min_size - self.position).min(data.len() as u64) as usize;
            self.position += skip as u64;
            index = skip;
        }
        while index < data.len() {
            if self.position >= self.max_size {
                return Scan::CutAfter(index);
            }
            if self.position.is_multiple_of(2) && index + 1 < data.len() {
                match self.scan_pairs(data, &mut index) {
                    Pairs::Cut(scan) => return scan,
                    Pairs::Scanned => continue,
                    Pairs::NoneLeft => {}
                }
            }
            if self.step(data[index]) {
                if self.position.is_multiple_of(2) && index + 1 == data.len() {
                    return Scan::HoldLast;
                }
                return Scan::CutAfter(index);
            }
            self.position += 1;
            index += 1;
        }
        Scan::Continue
    }

    /// The fast path from an even position: whole byte pairs from `index`
    /// up to the next mask change (average size) or the maximum size, no
    /// per-byte branches but the two mask tests.
    fn scan_pairs(&mut self, data: &[u8], index: &mut usize) -> Pairs {
        let small = self.position < self.avg_size;
        let (mask, boundary) = if small {
            (self.mask_s, self.avg_size)
        } else {
            (self.mask_l, self.max_size)
        };
        let mask_ls = mask << 1;
        let pairs =
            ((boundary - self.position) / 2).min(((data.len() - *index) / 2) as u64) as usize;
        let run = &data[*index..*index + 2 * pairs];
        let (mut hash, skipped) = skip_quads(&self.gear, &self.gear_ls, mask, self.hash, run);
        self.position += skipped as u64;
        *index += skipped;
        for pair in run[skipped..].chunks_exact(2) {
            hash = (hash << 2).wrapping_add(self.gear_ls[pair[0] as usize]);
            if hash & mask_ls == 0 {
                // The next byte exists, so this cut is final.
                return Pairs::Cut(Scan::CutAfter(*index));
            }
            hash = hash.wrapping_add(self.gear[pair[1] as usize]);
            if hash & mask == 0 {
                self.position += 1;
                return Pairs::Cut(Scan::CutAfter(*index + 1));
            }
            self.position += 2;
            *index += 2;
        }
        self.hash = hash;
        if pairs > 0 {
            Pairs::Scanned
        } else {
            Pairs::NoneLeft
        }
    }

    /// Rolls the byte at `position` into the hash; true when the mask of
    /// its position says the part ends there.
    fn step(&mut self, byte: u8) -> bool {
        let small = self.position < self.avg_size;
        let mask = if small { self.mask_s } else { self.mask_l };
        if self.position.is_multiple_of(2) {
            self.hash = (self.hash << 2).wrapping_add(self.gear_ls[byte as usize]);
            self.hash & (mask << 1) == 0
        } else {
            self.hash = self.hash.wrapping_add(self.gear[byte as usize]);
            self.hash & mask == 0
        }
    }
}

/// What [`Cutter::scan_pairs`] found.
enum Pairs {
    /// The part ends in the pairs scanned.
    Cut(Scan),
    /// Some pairs were scanned, none ended the part.
    Scanned,
    /// No whole pair was left to scan before the boundary or the end.
    NoneLeft,
}

/// Rolls `hash` over the pairs of `run` (which starts at an even position)
/// four pairs at a time while none of them can end the part; returns the
/// hash and the bytes passed. Their eight hashes follow from `hash` by terms
/// that do not depend on it (wrapping arithmetic distributes over the
/// shifts), so the loop carries two shifts and an add per eight bytes and
/// one branch tests all eight. On a hit the caller's pair loop finds which.
fn skip_quads(
    gear: &[u64; 256],
    gear_ls: &[u64; 256],
    mask: u64,
    mut hash: u64,
    run: &[u8],
) -> (u64, usize) {
    let mask_ls = mask << 1;
    let odd = |byte: u8| gear[byte as usize];
    let even = |byte: u8| gear_ls[byte as usize];
    let mut skipped = 0;
    while let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = run[skipped..] {
        // p1..p4: what the pairs add up to, ahead of `hash`.
        let p1 = even(b0).wrapping_add(odd(b1));
        let p2 = (p1 << 2).wrapping_add(even(b2)).wrapping_add(odd(b3));
        let p3 = (p2 << 2).wrapping_add(even(b4)).wrapping_add(odd(b5));
        let p4 = (p3 << 2).wrapping_add(even(b6)).wrapping_add(odd(b7));
        let h1 = hash << 2;
        let (h2, h3, h4) = (h1 << 2, h1 << 4, h1 << 6);
        let hit = (h1.wrapping_add(even(b0)) & mask_ls == 0)
            | (h1.wrapping_add(p1) & mask == 0)
            | (h2.wrapping_add(p2).wrapping_sub(odd(b3)) & mask_ls == 0)
            | (h2.wrapping_add(p2) & mask == 0)
            | (h3.wrapping_add(p3).wrapping_sub(odd(b5)) & mask_ls == 0)
            | (h3.wrapping_add(p3) & mask == 0)
            | (h4.wrapping_add(p4).wrapping_sub(odd(b7)) & mask_ls == 0)
            | (h4.wrapping_add(p4) & mask == 0);
        if hit {
            break;
        }
        hash = h4.wrapping_add(p4);
        skipped += 8;
    }
    (hash, skipped)
}

impl Default for PartHasher {
    fn default() -> Self {
        PartHasher::new()
    }
}

impl PartHasher {
    pub fn new() -> PartHasher {
        PartHasher {
            hasher: Sha256Stream::new(),
            whole: None,
            part_offset: 0,
            hashed: 0,
            pending: None,
            finished: Vec::new(),
        }
    }

    /// A part hasher that hashes the whole stream too: both hashes in one
    /// pass (see [`super::sha256_pair`]).
    pub fn with_whole() -> PartHasher {
        PartHasher {
            whole: Some(Sha256Stream::new()),
            ..PartHasher::new()
        }
    }

    fn hash(&mut self, bytes: &[u8]) {
        match &mut self.whole {
            Some(whole) => update_both(&mut self.hasher, whole, bytes),
            None => self.hasher.update(bytes),
        }
    }

    /// Takes the next bytes of the stream with what a [`Cutter`] said of
    /// them: the cuts it found and how far the stream is settled.
    pub fn feed(&mut self, data: &[u8], cuts: &[u64], settled: u64) {
        if let Some(byte) = self.pending.take() {
            if self.hash_up_to(&[byte], cuts, settled) == 0 {
                // Not settled yet: only more bytes settle it, and none came.
                assert!(
                    data.is_empty(),
                    "the cutter settles a byte once the next comes"
                );
                self.pending = Some(byte);
                return;
            }
        }
        let taken = self.hash_up_to(data, cuts, settled);
        // Only the last byte can be unsettled.
        if let Some(&byte) = data.get(taken) {
            debug_assert_eq!(taken + 1, data.len());
            self.pending = Some(byte);
        }
    }

    /// Hashes the start of `bytes` (which begin at `self.hashed`) up to
    /// `settled`, ending parts at `cuts`; returns the bytes taken.
    fn hash_up_to(&mut self, mut bytes: &[u8], cuts: &[u64], settled: u64) -> usize {
        let available = settled.saturating_sub(self.hashed).min(bytes.len() as u64) as usize;
        bytes = &bytes[..available];
        for &cut in cuts {
            // A cut can fall exactly where hashing stands (before a byte
            // held back, or at the start of these bytes); one at or before
            // the current part's start is done already.
            if cut <= self.part_offset {
                continue;
            }
            let before = cut - self.hashed;
            if before > bytes.len() as u64 {
                break;
            }
            let (head, tail) = bytes.split_at(before as usize);
            self.hash(head);
            self.hashed = cut;
            self.end_part();
            bytes = tail;
        }
        self.hash(bytes);
        self.hashed += bytes.len() as u64;
        available
    }

    fn end_part(&mut self) {
        let hasher = std::mem::take(&mut self.hasher);
        self.finished.push(PartSummary {
            offset: self.part_offset,
            length: self.hashed - self.part_offset,
            sha256: hasher.finalize(),
        });
        self.part_offset = self.hashed;
    }

    /// Parts completed so far, in order, handed over once.
    pub fn take_parts(&mut self) -> Vec<PartSummary> {
        std::mem::take(&mut self.finished)
    }

    /// Ends the stream at `end` (from [`Cutter::finish`]): the remaining
    /// bytes form the last part. Returns all parts not yet taken (an empty
    /// stream has no parts) and, made [`PartHasher::with_whole`], the whole
    /// stream's SHA-256.
    pub fn finish(mut self, end: u64) -> (Vec<PartSummary>, Option<[u8; 32]>) {
        if let Some(byte) = self.pending.take() {
            self.hash(&[byte]);
            self.hashed += 1;
        }
        // Every byte is hashed, or the hashes would be of other bytes.
        assert_eq!(self.hashed, end, "the part hasher lost bytes");
        if self.hashed > self.part_offset {
            self.end_part();
        }
        (self.finished, self.whole.map(Sha256Stream::finalize))
    }
}

#[cfg(test)]
impl Chunker {
    pub fn new(min_size: u32, avg_size: u32, max_size: u32, hasher: PartHasher) -> Chunker {
        Chunker {
            cutter: Cutter::new(min_size, avg_size, max_size),
            hasher,
            cuts: Vec::new(),
        }
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        let settled = self.cutter.feed(data, &mut self.cuts);
        self.hasher.feed(data, &self.cuts, settled);
        self.cuts.clear();
    }

    /// Parts completed so far, in order, handed over once.
    pub fn take_parts(&mut self) -> Vec<PartSummary> {
        self.hasher.take_parts()
    }

    /// Ends the stream: the remaining bytes form the last part. Returns all
    /// parts not yet taken (an empty stream has no parts) and, if the part
    /// hasher takes it, the whole stream's SHA-256.
    pub fn finish(self) -> (Vec<PartSummary>, Option<[u8; 32]>) {
        let end = self.cutter.finish();
        self.hasher.finish(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};

    /// Cuts `data` fed in pieces of the given size, with a part hasher that
    /// takes the whole stream's hash too (x86 with SHA extensions) and with
    /// one that does not (a Pi 4); returns part lengths after checking that
    /// both agree and each part's offset and hash.
    fn streaming_cuts(data: &[u8], min: u32, avg: u32, max: u32, piece: usize) -> Vec<u64> {
        let chunk_with = |hasher: PartHasher| {
            let mut chunker = Chunker::new(min, avg, max, hasher);
            let mut parts = Vec::new();
            for chunk in data.chunks(piece) {
                chunker.feed(chunk);
                // As ingest's threads may: a buffer with nothing new.
                chunker.feed(&[]);
                parts.extend(chunker.take_parts());
            }
            let (last, whole) = chunker.finish();
            parts.extend(last);
            (parts, whole)
        };
        let (parts, whole) = chunk_with(PartHasher::with_whole());
        assert_eq!(whole, Some(<[u8; 32]>::from(Sha256::digest(data))));
        assert_eq!(chunk_with(PartHasher::new()), (parts.clone(), None));
        let mut offset = 0;
        for part in &parts {
            assert_eq!(part.offset, offset);
            let bytes = &data[offset as usize..(offset + part.length) as usize];
            assert_eq!(part.sha256, <[u8; 32]>::from(Sha256::digest(bytes)));
            offset += part.length;
        }
        assert_eq!(offset, data.len() as u64);
        parts.iter().map(|part| part.length).collect()
    }

    fn crate_cuts(data: &[u8], min: u32, avg: u32, max: u32) -> Vec<u64> {
        fastcdc::v2020::FastCDC::new(data, min, avg, max)
            .map(|chunk| chunk.length as u64)
            .collect()
    }

    #[test]
    fn matches_the_crate_for_every_piece_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (len, min, avg, max) in [
            (200_000usize, 64u32, 256u32, 1024u32),
            (333_333, 256, 1024, 4096),
            (1_000_001, 1024, 4096, 16384),
            (4097, 64, 256, 1024),
            (65, 64, 256, 1024),
            (64, 64, 256, 1024),
            (0, 64, 256, 1024),
        ] {
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            let expected = crate_cuts(&data, min, avg, max);
            for piece in [1usize, 2, 3, 7, 64, 1000, 4096, 1 << 20] {
                assert_eq!(
                    streaming_cuts(&data, min, avg, max, piece),
                    expected,
                    "len {len}, sizes {min}/{avg}/{max}, piece {piece}"
                );
            }
        }
    }

    #[test]
    fn matches_the_crate_on_zeroes_and_at_standard_sizes() {
        // All-zero data never matches a mask: every chunk is max size.
        let zeroes = vec![0u8; 40 * 1024 * 1024 + 3];
        let expected = crate_cuts(&zeroes, MIN_SIZE, AVG_SIZE, MAX_SIZE);
        assert_eq!(expected[0], u64::from(MAX_SIZE));
        assert_eq!(
            streaming_cuts(&zeroes, MIN_SIZE, AVG_SIZE, MAX_SIZE, 1 << 20),
            expected
        );

        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut data = vec![0u8; 48 * 1024 * 1024];
        rng.fill_bytes(&mut data);
        let expected = crate_cuts(&data, MIN_SIZE, AVG_SIZE, MAX_SIZE);
        assert!(expected.len() > 3, "random data gives several parts");
        assert_eq!(
            streaming_cuts(&data, MIN_SIZE, AVG_SIZE, MAX_SIZE, 65_537),
            expected
        );
    }
}
