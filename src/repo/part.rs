//! Sealed parts: the format-3 layout, authenticated segment by segment, and
//! the one reader of parts of every format, which never hands out a byte
//! it has not authenticated.
//!
//! Format 3 (written since the third round):
//!
//! ```text
//! MAGIC (8) || nonce (24) || segment 0 || tag 0 || segment 1 || tag 1 || ...
//! ```
//!
//! The segments are the packed part (a flag byte and the body, stored or
//! zstd, see [`super::compress`]) cut in [`SEGMENT_LEN`] bytes, the last one
//! shorter (1 to `SEGMENT_LEN` bytes). Each is sealed on its own with
//! XChaCha20-Poly1305 under the part key, the object id as associated data,
//! and a nonce of its own: the part's nonce with its last five bytes XORed
//! with the segment's index (4 bytes, big-endian) and a last-segment flag
//! (1 for the last segment, else 0). This is the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015; as in age and Tink): a
//! segment altered, moved to another place, taken from another part or
//! another repository, or a part cut short or made longer, fails the tag
//! of the segment where it happens, before that segment's bytes are used.
//!
//! Formats 1 and 2 (one tag at the end of the whole part) start with the
//! random nonce, never with [`MAGIC`] but by a chance of 2^-64. The reader
//! keeps such a part whole (at most [`MAX_PART_LEN`] + 41 bytes) and checks
//! its tag before it unpacks or hands out anything.
//!
//! Pure: no I/O, no clock, no randomness; nonces come from the caller.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::XNonce;

use super::crypto::{corrupt, old_sealed_len_fits, MAX_PART_LEN, NONCE_LEN, TAG_LEN};
use super::{compress, part_key, ObjectId, RepoError, RepoKeys};

/// The first bytes of a format-3 part.
pub const MAGIC: [u8; 8] = *b"piarch3\n";
/// Bytes before the first segment: the magic and the nonce.
pub const HEADER_LEN: usize = MAGIC.len() + NONCE_LEN;
/// Bytes of packed part in each segment but the last. 64 KiB, as age: the
/// tags cost 0.02 %, and a reader holds one segment besides its input.
pub const SEGMENT_LEN: usize = 64 * 1024;

/// Segments that `packed_len` bytes of packed part (at least 1) take.
fn segments_for(packed_len: usize) -> usize {
    packed_len.div_ceil(SEGMENT_LEN).max(1)
}

/// The sealed length of `packed_len` bytes of packed part in format 3.
fn sealed_len_of(packed_len: usize) -> usize {
    HEADER_LEN + packed_len + TAG_LEN * segments_for(packed_len)
}

/// The packed length that a format-3 part of `sealed_len` bytes holds, if
/// some packed length is sealed as exactly that many bytes.
fn packed_len_of(sealed_len: u64) -> Option<usize> {
    let body = usize::try_from(sealed_len).ok()?.checked_sub(HEADER_LEN)?;
    let segments = body.div_ceil(SEGMENT_LEN + TAG_LEN);
    let packed = body.checked_sub(TAG_LEN * segments)?;
    (packed >= 1 && segments_for(packed) == segments).then_some(packed)
}

/// The largest sealed object a part of `plain_len` bytes becomes (stored,
/// in format 3): the capacity to give the part's buffer so that
/// [`RepoKeys::seal_part`] seals it without a second allocation.
pub fn max_sealed_len(plain_len: usize) -> usize {
    sealed_len_of(plain_len + 1)
}

/// Whether an object of `sealed_len` bytes can hold a part of `plain_len`
/// bytes in any format: format 1 (`plain_len + 40`), format 2 (stored,
/// `plain_len + 41`, or compressed, shorter than `plain_len + 40`), or
/// format 3 (a packed part of 1 to `plain_len + 1` bytes in segments).
/// For a HEAD, which sees only the size.
pub fn sealed_len_fits(plain_len: u64, sealed_len: u64) -> bool {
    old_sealed_len_fits(plain_len, sealed_len) || segmented_len_fits(plain_len, sealed_len)
}

/// Whether `sealed_len` bytes in format 3 can hold a part of `plain_len`
/// bytes: a flag and the part as it is, or a flag and a shorter body.
fn segmented_len_fits(plain_len: u64, sealed_len: u64) -> bool {
    plain_len <= MAX_PART_LEN as u64
        && packed_len_of(sealed_len).is_some_and(|packed| {
            let packed = packed as u64;
            packed <= plain_len + 1 && (packed >= 2 || plain_len == 0)
        })
}

/// The nonce of segment `index`: the part's nonce with its last five bytes
/// XORed with the index (big-endian) and the last-segment flag.
fn segment_nonce(nonce: &[u8; NONCE_LEN], index: u32, last: bool) -> XNonce {
    let mut derived = *nonce;
    for (byte, counter) in derived[NONCE_LEN - 5..NONCE_LEN - 1]
        .iter_mut()
        .zip(index.to_be_bytes())
    {
        *byte ^= counter;
    }
    derived[NONCE_LEN - 1] ^= u8::from(last);
    XNonce::from(derived)
}

impl RepoKeys {
    /// Seals one part in format 3 (see the module's docs): the flag and
    /// body of [`super::compress::pack`], cut in segments, each sealed with
    /// its own tag, the object id as associated data.
    ///
    /// Takes the part's buffer: a stored part is sealed in it (no copy when
    /// its capacity is [`max_sealed_len`]), a compressed one next to it,
    /// holding only the compressed bytes more.
    pub fn seal_part(
        &self,
        object_id: &ObjectId,
        nonce: [u8; NONCE_LEN],
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, RepoError> {
        let len = plaintext.len();
        if len > MAX_PART_LEN {
            return Err(RepoError::PartTooLarge {
                len,
                max: MAX_PART_LEN,
            });
        }
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(&MAGIC);
        header[MAGIC.len()..].copy_from_slice(&nonce);
        let reserve = TAG_LEN * segments_for(len + 1);
        let mut sealed = compress::pack(plaintext, &header, reserve);
        let packed = sealed.len() - HEADER_LEN;
        let segments = segments_for(packed);
        sealed.resize(sealed_len_of(packed), 0);
        // Spread the segments out, the last first, to make room for the
        // tags: one pass of memmove, far cheaper than the cipher.
        for index in (1..segments).rev() {
            let from = HEADER_LEN + index * SEGMENT_LEN;
            let to = HEADER_LEN + index * (SEGMENT_LEN + TAG_LEN);
            let end = (from + SEGMENT_LEN).min(HEADER_LEN + packed);
            sealed.copy_within(from..end, to);
        }
        for index in 0..segments {
            let start = HEADER_LEN + index * (SEGMENT_LEN + TAG_LEN);
            let text_len = SEGMENT_LEN.min(packed - index * SEGMENT_LEN);
            let last = index + 1 == segments;
            let tag = self
                .part_cipher
                .encrypt_in_place_detached(
                    &segment_nonce(&nonce, index as u32, last),
                    object_id.as_str().as_bytes(),
                    &mut sealed[start..start + text_len],
                )
                .map_err(|_| RepoError::TooLarge { len })?;
            sealed[start + text_len..start + text_len + TAG_LEN].copy_from_slice(&tag);
        }
        Ok(sealed)
    }

    /// Opens a part of `plain_len` bytes sealed in any format, held whole
    /// in `sealed`. Never unpacks past `plain_len`, nor before the tag
    /// checked out: a damaged or hostile object is [`RepoError::Corrupt`].
    pub fn open_part(
        &self,
        object_id: &ObjectId,
        sealed: Vec<u8>,
        plain_len: u64,
    ) -> Result<Vec<u8>, RepoError> {
        let mut reader = self.part_reader(object_id, sealed.len() as u64, plain_len)?;
        let mut plaintext = Vec::with_capacity(plain_len as usize);
        let mut collect = |bytes: &[u8]| -> Result<(), ()> {
            plaintext.extend_from_slice(bytes);
            Ok(())
        };
        let never = |err: Result<RepoError, ()>| err.unwrap_or_else(|()| unreachable!());
        if sealed.starts_with(&MAGIC) {
            reader.feed(&sealed, &mut collect).map_err(never)?;
            reader.finish(&mut collect).map_err(never)?;
        } else {
            // Opened in its own buffer: no copy of an old part.
            open_whole(self, object_id, plain_len, sealed, &mut collect).map_err(never)?;
        }
        Ok(plaintext)
    }

    /// Starts reading a part of `plain_len` bytes fetched as `object_id`,
    /// `sealed_len` bytes in any format (see [`PartReader`]).
    pub fn part_reader(
        &self,
        object_id: &ObjectId,
        sealed_len: u64,
        plain_len: u64,
    ) -> Result<PartReader, RepoError> {
        if !sealed_len_fits(plain_len, sealed_len) {
            return Err(corrupt(
                part_key(object_id),
                format!(
                    "it is {sealed_len} bytes, which no part of {plain_len} bytes is sealed as"
                ),
            ));
        }
        Ok(PartReader {
            keys: self.clone(),
            object_id: object_id.clone(),
            sealed_len: sealed_len as usize,
            plain_len,
            received: 0,
            state: State::Head(Vec::with_capacity(HEADER_LEN)),
        })
    }
}

/// Opens a format-1 or -2 part held whole in `sealed`: its tag first, then
/// it is unpacked (never past `plain_len`) into `sink`.
fn open_whole<E>(
    keys: &RepoKeys,
    object_id: &ObjectId,
    plain_len: u64,
    mut sealed: Vec<u8>,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<RepoError, E>> {
    if !old_sealed_len_fits(plain_len, sealed.len() as u64) {
        return Err(Ok(corrupt(
            part_key(object_id),
            format!(
                "it is {} bytes, which no part of {plain_len} bytes is sealed as",
                sealed.len()
            ),
        )));
    }
    // Format 1 is exactly the part and 40 bytes, a size format 2 never writes.
    let flagged = sealed.len() as u64 != plain_len + (NONCE_LEN + TAG_LEN) as u64;
    keys.decrypt_part_in_place(object_id, &mut sealed)
        .map_err(Ok)?;
    let mut unpacker = compress::Unpacker::new(plain_len, flagged);
    let name = || part_key(object_id);
    unpacker
        .feed(&sealed, sink)
        .map_err(|err| err.map(|reason| corrupt(name(), reason)))?;
    unpacker
        .finish()
        .map_err(|reason| Ok(corrupt(name(), reason)))
}

/// Reads one sealed part of any format as its bytes arrive, in pieces of
/// any size, and hands the part's bytes to a sink only once they are
/// authenticated: a format-3 segment as soon as its tag checks out, a
/// format-1 or -2 part once all of it arrived and its tag checked out.
/// Holds one segment (64 KiB) and, for a compressed part, the unpacker's
/// window (1 MiB) and buffer (256 KiB); an old part it holds whole (at
/// most 16 MiB + 41 bytes).
pub struct PartReader {
    keys: RepoKeys,
    object_id: ObjectId,
    sealed_len: usize,
    plain_len: u64,
    /// Bytes of the object fed so far.
    received: usize,
    state: State,
}

enum State {
    /// The magic and nonce (or an old part's first bytes), until it is
    /// known which format the part is in.
    Head(Vec<u8>),
    /// Format 3: the segment being received, and its index.
    Segments(Box<Segments>),
    /// Formats 1 and 2: the whole object, opened once complete.
    Whole(Vec<u8>),
    /// Every segment was authenticated and handed out.
    Done(compress::Unpacker),
}

struct Segments {
    nonce: [u8; NONCE_LEN],
    /// The packed part's length: where the last segment ends.
    packed_len: usize,
    index: usize,
    segment: Vec<u8>,
    unpacker: compress::Unpacker,
}

impl PartReader {
    /// Takes the next bytes of the object and hands what they complete,
    /// authenticated and unpacked, to `sink`. `Err(Ok(_))`: the part is
    /// damaged (nothing unauthenticated was handed out); `Err(Err(e))`:
    /// the sink failed.
    pub fn feed<E>(
        &mut self,
        mut bytes: &[u8],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Result<RepoError, E>> {
        if self.received + bytes.len() > self.sealed_len {
            return Err(Ok(self.corrupt("it is longer than announced")));
        }
        self.received += bytes.len();
        while !bytes.is_empty() {
            let taken = match &mut self.state {
                State::Head(head) => {
                    let take = (HEADER_LEN - head.len()).min(bytes.len());
                    head.extend_from_slice(&bytes[..take]);
                    if head.len() == HEADER_LEN {
                        self.choose_format();
                    }
                    take
                }
                State::Whole(whole) => {
                    whole.extend_from_slice(bytes);
                    bytes.len()
                }
                State::Segments(segments) => segments
                    .take(&self.keys, &self.object_id, bytes, sink)
                    .map_err(|err| err.map(|reason| corrupt(part_key(&self.object_id), reason)))?,
                State::Done(_) => unreachable!("no byte past the announced length"),
            };
            bytes = &bytes[taken..];
        }
        if let State::Segments(segments) = &mut self.state {
            if segments.index == segments_for(segments.packed_len) {
                let State::Segments(segments) =
                    std::mem::replace(&mut self.state, State::Head(Vec::new()))
                else {
                    unreachable!()
                };
                self.state = State::Done(segments.unpacker);
            }
        }
        Ok(())
    }

    /// The magic decides: segments, or the whole part kept. An old part
    /// starting with the magic by chance (2^-64) is read as format 3 and
    /// refused by its tag.
    fn choose_format(&mut self) {
        let State::Head(head) = std::mem::replace(&mut self.state, State::Whole(Vec::new())) else {
            return;
        };
        let packed_len = packed_len_of(self.sealed_len as u64)
            .filter(|_| segmented_len_fits(self.plain_len, self.sealed_len as u64));
        match packed_len {
            Some(packed_len) if head.starts_with(&MAGIC) => {
                self.state = State::Segments(Box::new(Segments {
                    nonce: head[MAGIC.len()..].try_into().expect("a whole nonce"),
                    packed_len,
                    index: 0,
                    segment: Vec::with_capacity(SEGMENT_LEN + TAG_LEN),
                    unpacker: compress::Unpacker::new(self.plain_len, true),
                }));
            }
            _ => {
                let mut whole = Vec::with_capacity(self.sealed_len);
                whole.extend_from_slice(&head);
                self.state = State::Whole(whole);
            }
        }
    }

    /// Checks that the whole object arrived and was authenticated, opens
    /// and hands out a format-1 or -2 part, and checks that the part
    /// unpacked to its recorded length.
    pub fn finish<E>(
        self,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Result<RepoError, E>> {
        if self.received != self.sealed_len {
            return Err(Ok(self.corrupt("it ended early")));
        }
        match self.state {
            State::Whole(whole) => {
                open_whole(&self.keys, &self.object_id, self.plain_len, whole, sink)
            }
            State::Done(unpacker) => unpacker
                .finish()
                .map_err(|reason| Ok(corrupt(part_key(&self.object_id), reason))),
            State::Head(_) | State::Segments(_) => Err(Ok(self.corrupt("it ended early"))),
        }
    }

    fn corrupt(&self, reason: &str) -> RepoError {
        corrupt(part_key(&self.object_id), reason.to_owned())
    }
}

impl Segments {
    /// Takes bytes of the current segment, and once it is complete opens
    /// it and hands it to the unpacker. Answers how many bytes it took.
    fn take<E>(
        &mut self,
        keys: &RepoKeys,
        object_id: &ObjectId,
        bytes: &[u8],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<usize, Result<String, E>> {
        let count = segments_for(self.packed_len);
        let text_len = SEGMENT_LEN.min(self.packed_len - self.index * SEGMENT_LEN);
        let wanted = text_len + TAG_LEN;
        let take = (wanted - self.segment.len()).min(bytes.len());
        self.segment.extend_from_slice(&bytes[..take]);
        if self.segment.len() < wanted {
            return Ok(take);
        }
        let last = self.index + 1 == count;
        let (text, tag) = self.segment.split_at_mut(text_len);
        keys.part_cipher
            .decrypt_in_place_detached(
                &segment_nonce(&self.nonce, self.index as u32, last),
                object_id.as_str().as_bytes(),
                text,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| {
                Ok(format!(
                    "the authentication tag of its segment {} does not match",
                    self.index
                ))
            })?;
        self.unpacker.feed(text, sink)?;
        self.segment.clear();
        self.index += 1;
        Ok(take)
    }
}

#[cfg(test)]
mod tests;
