use super::*;
use crate::repo::crypto::PART_OVERHEAD;

fn keys(seed: u8) -> RepoKeys {
    RepoKeys::from_master_key(&[seed; 32])
}

/// Deterministic noise (xorshift64*): it does not compress.
fn content(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Text that compresses well.
fn text(len: usize) -> Vec<u8> {
    b"minutes of the garden club, 2025. "
        .iter()
        .cycle()
        .take(len)
        .copied()
        .collect()
}

fn object_id(keys: &RepoKeys, data: &[u8]) -> ObjectId {
    use sha2::{Digest, Sha256};
    keys.object_id(&Sha256::digest(data).into())
}

/// Reads `sealed` (announced as `sealed_len` bytes) with a [`PartReader`],
/// `piece` bytes at a time: what the sink got, and the error if any.
fn read_announced(
    keys: &RepoKeys,
    id: &ObjectId,
    sealed: &[u8],
    sealed_len: u64,
    plain_len: u64,
    piece: usize,
) -> (Vec<u8>, Result<(), RepoError>) {
    let mut out = Vec::new();
    let mut sink = |bytes: &[u8]| -> Result<(), ()> {
        out.extend_from_slice(bytes);
        Ok(())
    };
    let result = (|| {
        let mut reader = keys.part_reader(id, sealed_len, plain_len)?;
        for chunk in sealed.chunks(piece) {
            reader.feed(chunk, &mut sink).map_err(|err| err.unwrap())?;
        }
        reader.finish(&mut sink).map_err(|err| err.unwrap())
    })();
    (out, result)
}

fn read_in_pieces(
    keys: &RepoKeys,
    id: &ObjectId,
    sealed: &[u8],
    plain_len: u64,
    piece: usize,
) -> (Vec<u8>, Result<(), RepoError>) {
    read_announced(keys, id, sealed, sealed.len() as u64, plain_len, piece)
}

/// The part sealed in format 3, 2 and 1.
fn sealed_in_every_format(keys: &RepoKeys, id: &ObjectId, data: &[u8]) -> [Vec<u8>; 3] {
    [
        keys.seal_part(id, [1; NONCE_LEN], data.to_vec()).unwrap(),
        keys.seal_part_format2(id, [2; NONCE_LEN], data.to_vec())
            .unwrap(),
        keys.encrypt_part(id, [3; NONCE_LEN], data).unwrap(),
    ]
}

#[test]
fn parts_of_every_format_open_whole_and_in_pieces() {
    let keys = keys(14);
    for data in [
        text(300_000),
        content(300_000),
        content(SEGMENT_LEN - 1), // exactly one full segment with the flag
        content(3 * SEGMENT_LEN + 5),
        content(10),
        Vec::new(),
    ] {
        let len = data.len() as u64;
        let id = object_id(&keys, &data);
        let formats = sealed_in_every_format(&keys, &id, &data);
        assert!(formats[0].starts_with(&MAGIC));
        assert!(formats[0].len() <= max_sealed_len(data.len()));
        assert_ne!(
            formats[1].len(),
            data.len() + PART_OVERHEAD,
            "never format 1's size"
        );
        for sealed in &formats {
            assert!(sealed_len_fits(len, sealed.len() as u64));
            assert_eq!(keys.open_part(&id, sealed.clone(), len).unwrap(), data);
            for piece in [1000, 4096, SEGMENT_LEN + TAG_LEN, 1 << 20] {
                let (out, result) = read_in_pieces(&keys, &id, sealed, len, piece);
                result.unwrap();
                assert_eq!(out, data, "{len} bytes in pieces of {piece}");
            }
        }
    }
}

#[test]
fn a_stored_part_in_format_3_has_one_tag_per_segment() {
    let keys = keys(16);
    for (len, segments) in [
        (0, 1),
        (SEGMENT_LEN - 1, 1),
        (SEGMENT_LEN, 2),
        (MAX_PART_LEN, 257),
    ] {
        let data = content(len);
        let id = object_id(&keys, &data);
        let sealed = keys.seal_part(&id, [5; NONCE_LEN], data).unwrap();
        assert_eq!(
            sealed.len(),
            HEADER_LEN + len + 1 + segments * TAG_LEN,
            "{len}"
        );
        assert_eq!(sealed.len(), max_sealed_len(len));
        assert_eq!(&sealed[MAGIC.len()..HEADER_LEN], &[5; NONCE_LEN]);
    }
}

#[test]
fn a_sealed_part_of_the_wrong_size_or_length_is_corrupt() {
    let keys = keys(15);
    let data = content(5000);
    let id = object_id(&keys, &data);
    for (sealed, overhead) in [
        (
            keys.seal_part(&id, [1; NONCE_LEN], data.clone()).unwrap(),
            HEADER_LEN + TAG_LEN,
        ),
        (
            keys.seal_part_format2(&id, [1; NONCE_LEN], data.clone())
                .unwrap(),
            PART_OVERHEAD,
        ),
    ] {
        // Recorded much shorter: no part of that length is sealed this long.
        let short = (sealed.len() - overhead - 2) as u64;
        let err = keys.open_part(&id, sealed.clone(), short).unwrap_err();
        let expected = format!("which no part of {short} bytes");
        assert!(err.to_string().contains(&expected), "{err}");
        // Recorded two bytes longer: the size fits a compressed part, but
        // the part, stored, unpacks to less.
        let err = keys.open_part(&id, sealed.clone(), 5002).unwrap_err();
        assert!(err.to_string().contains("not the 5002 recorded"), "{err}");
    }
    // Formats 1 and 2.
    assert!(!old_sealed_len_fits(100, 41));
    assert!(
        old_sealed_len_fits(0, 40) && old_sealed_len_fits(0, 41) && !old_sealed_len_fits(0, 42)
    );
    assert!(
        old_sealed_len_fits(100, 140)
            && old_sealed_len_fits(100, 141)
            && old_sealed_len_fits(100, 42)
    );
    assert!(!old_sealed_len_fits(100, 142));
    assert!(!old_sealed_len_fits(MAX_PART_LEN as u64 + 1, 100));
    // Any format.
    assert!(!sealed_len_fits(100, 41));
    assert!(sealed_len_fits(0, 40) && sealed_len_fits(0, 41) && !sealed_len_fits(0, 42));
    assert!(sealed_len_fits(0, HEADER_LEN as u64 + 1 + 16));
    assert!(!sealed_len_fits(0, HEADER_LEN as u64 + 2 + 16));
    let stored = max_sealed_len(100) as u64;
    assert!(sealed_len_fits(100, stored) && !sealed_len_fits(100, stored + 1));
    assert!(!sealed_len_fits(MAX_PART_LEN as u64 + 1, 100));
    assert!(sealed_len_fits(
        MAX_PART_LEN as u64,
        max_sealed_len(MAX_PART_LEN) as u64
    ));
    // Between two segments' worth: no packed length is sealed as this.
    assert!(!sealed_len_fits(
        SEGMENT_LEN as u64,
        (HEADER_LEN + SEGMENT_LEN + TAG_LEN + 10) as u64
    ));
}

/// The tamper tests: where the byte at `position` is flipped, what the sink
/// got before the part was refused.
fn flipped(
    keys: &RepoKeys,
    id: &ObjectId,
    sealed: &[u8],
    len: u64,
    position: usize,
) -> (Vec<u8>, RepoError) {
    let mut bad = sealed.to_vec();
    bad[position] ^= 0x10;
    let (out, result) = read_in_pieces(keys, id, &bad, len, 4096);
    (out, result.expect_err("a flipped byte is refused"))
}

#[test]
fn a_tampered_byte_in_any_segment_stops_the_part_before_that_segment() {
    let keys = keys(17);
    let data = content(3 * SEGMENT_LEN + 100);
    let len = data.len() as u64;
    let id = object_id(&keys, &data);
    let sealed = keys.seal_part(&id, [6; NONCE_LEN], data.clone()).unwrap();
    let stride = SEGMENT_LEN + TAG_LEN;
    // The nonce: the first segment already fails.
    let (out, err) = flipped(&keys, &id, &sealed, len, MAGIC.len() + 3);
    assert!(
        out.is_empty() && err.to_string().contains("segment 0"),
        "{err}"
    );
    for segment in 0..4 {
        let start = HEADER_LEN + segment * stride;
        let end = (start + stride).min(sealed.len());
        for position in [
            start,
            start + 1000.min(end - start - 1),
            end - TAG_LEN - 1,
            end - 1,
        ] {
            let (out, err) = flipped(&keys, &id, &sealed, len, position);
            assert!(matches!(err, RepoError::Corrupt { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .contains(&format!("segment {segment} does not match")),
                "byte {position}: {err}"
            );
            // Exactly the segments before it were handed out (the first
            // holds the flag byte besides the part's first bytes).
            let handed = (segment * SEGMENT_LEN).saturating_sub(1);
            assert_eq!(out, data[..handed], "byte {position}");
        }
    }
    // A compressed part: the tag, not zstd, refuses it.
    let letters = text(400_000);
    let letters_id = object_id(&keys, &letters);
    let sealed = keys
        .seal_part(&letters_id, [7; NONCE_LEN], letters.clone())
        .unwrap();
    assert!(sealed.len() < letters.len() / 4);
    let (out, err) = flipped(
        &keys,
        &letters_id,
        &sealed,
        letters.len() as u64,
        HEADER_LEN + 30,
    );
    assert!(out.is_empty());
    assert!(
        err.to_string()
            .contains("authentication tag of its segment 0"),
        "{err}"
    );
}

#[test]
fn a_part_cut_short_reordered_extended_or_from_elsewhere_is_refused() {
    let keys = keys(18);
    let data = content(3 * SEGMENT_LEN + 100);
    let len = data.len() as u64;
    let id = object_id(&keys, &data);
    let sealed = keys.seal_part(&id, [8; NONCE_LEN], data.clone()).unwrap();
    let stride = SEGMENT_LEN + TAG_LEN;
    // Cut after two whole segments, announced at that size: the second is
    // not sealed as the last one.
    let cut = &sealed[..HEADER_LEN + 2 * stride];
    let (out, result) = read_in_pieces(&keys, &id, cut, len, 4096);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("segment 1 does not match"), "{err}");
    assert_eq!(out, data[..SEGMENT_LEN - 1]);
    // Announced whole, fed short.
    let (_, result) = read_announced(
        &keys,
        &id,
        &sealed[..sealed.len() - 5],
        sealed.len() as u64,
        len,
        4096,
    );
    assert!(result.unwrap_err().to_string().contains("ended early"));
    // The last segment dropped: the one before it is not the last.
    let mut dropped = sealed[..HEADER_LEN + 3 * stride].to_vec();
    let (_, result) = read_in_pieces(&keys, &id, &dropped, len, 4096);
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("segment 2 does not match"));
    // Two segments swapped.
    dropped = sealed.clone();
    dropped[HEADER_LEN + stride..HEADER_LEN + 3 * stride].copy_from_slice(
        &[
            &sealed[HEADER_LEN + 2 * stride..HEADER_LEN + 3 * stride],
            &sealed[HEADER_LEN + stride..HEADER_LEN + 2 * stride],
        ]
        .concat(),
    );
    let (out, result) = read_in_pieces(&keys, &id, &dropped, len, 4096);
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("segment 1 does not match"));
    assert_eq!(out, data[..SEGMENT_LEN - 1]);
    // Fed more than announced.
    let mut reader = keys.part_reader(&id, sealed.len() as u64, len).unwrap();
    let mut sink = |_: &[u8]| -> Result<(), ()> { Ok(()) };
    let mut longer = sealed.clone();
    longer.push(0);
    let err = reader.feed(&longer, &mut sink).unwrap_err().unwrap();
    assert!(err.to_string().contains("longer than announced"), "{err}");
    // Under another name, or from another repository.
    let other = object_id(&keys, b"another part");
    assert!(read_in_pieces(&keys, &other, &sealed, len, 4096).1.is_err());
    let (out, result) = read_in_pieces(&self::keys(19), &id, &sealed, len, 4096);
    assert!(result.is_err() && out.is_empty());
    assert!(keys.part_reader(&id, PART_OVERHEAD as u64 - 1, 0).is_err());
}

#[test]
fn an_old_format_part_reaches_no_sink_before_its_tag_checks_out() {
    let keys = keys(12);
    for data in [content(5000), text(300_000), Vec::new()] {
        let len = data.len() as u64;
        let id = object_id(&keys, &data);
        let [_, format2, format1] = sealed_in_every_format(&keys, &id, &data);
        for sealed in [format2, format1] {
            // Whole and sound: nothing before `finish`, all of it then.
            let mut out = Vec::new();
            let mut sink = |bytes: &[u8]| -> Result<(), ()> {
                out.extend_from_slice(bytes);
                Ok(())
            };
            let mut reader = keys.part_reader(&id, sealed.len() as u64, len).unwrap();
            for chunk in sealed.chunks(64) {
                reader.feed(chunk, &mut sink).unwrap();
            }
            reader.finish(&mut sink).unwrap();
            assert_eq!(out, data);
            // Any flipped byte: refused by the tag, and nothing was handed
            // out, so neither zstd nor the disk saw a byte of it.
            for position in [
                0,
                NONCE_LEN - 1,
                NONCE_LEN,
                sealed.len() / 2,
                sealed.len() - TAG_LEN,
                sealed.len() - 1,
            ] {
                let (out, err) = flipped(&keys, &id, &sealed, len, position);
                assert!(out.is_empty(), "byte {position}");
                assert!(
                    err.to_string()
                        .contains("authentication tag does not match"),
                    "byte {position}: {err}"
                );
            }
            // Under another name or key; short.
            let other = object_id(&keys, b"another part");
            assert!(read_in_pieces(&keys, &other, &sealed, len, 64).0.is_empty());
            assert!(read_in_pieces(&self::keys(13), &id, &sealed, len, 64)
                .1
                .is_err());
            let (out, result) = read_announced(
                &keys,
                &id,
                &sealed[..sealed.len() - 8],
                sealed.len() as u64,
                len,
                64,
            );
            assert!(out.is_empty() && result.unwrap_err().to_string().contains("ended early"));
        }
    }
}

#[test]
fn segment_nonces_take_the_index_and_the_last_flag() {
    let nonce = [0xAA; NONCE_LEN];
    let derived = segment_nonce(&nonce, 0x0102_0304, true);
    let mut expected = [0xAA; NONCE_LEN];
    expected[19..].copy_from_slice(&[0xAB, 0xA8, 0xA9, 0xAE, 0xAB]);
    assert_eq!(derived.as_slice(), &expected);
    assert_eq!(segment_nonce(&nonce, 0, false).as_slice(), &nonce);
}
