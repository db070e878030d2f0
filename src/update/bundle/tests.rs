//! Refusals of the bundle format, each with its sentence; and the good path.

use super::*;
use ring::signature::{Ed25519KeyPair, KeyPair};

struct Signer(Ed25519KeyPair);

impl Signer {
    fn new() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        Signer(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"))
    }
    fn trusted(&self, kind: KeyKind) -> TrustedKey {
        TrustedKey {
            kind,
            public: self.0.public_key().as_ref().try_into().expect("32 bytes"),
        }
    }
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.0.sign(bytes).as_ref().to_vec()
    }
}

const KERNEL: &[u8] = b"a kernel, pretend";
const INITRD: &[u8] = b"an initramfs with piarchive as /init";

fn manifest(version: &str) -> Manifest {
    Manifest {
        format: FORMAT,
        version: version.into(),
        board: BOARD_FAMILY.into(),
        files: vec![entry("vmlinuz", KERNEL), entry("initrd.img", INITRD)],
        test_health_failure: None,
        test_hang: false,
        test_hold_reboot: false,
    }
}

fn bundle(signer: &Signer, manifest: &Manifest, files: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    write_bundle(&mut out, manifest, files, &|b| signer.sign(b)).expect("write");
    out
}

fn good(signer: &Signer) -> Vec<u8> {
    bundle(signer, &manifest("0.2.0"), &[KERNEL, INITRD])
}

/// Header, target and install in one go, as the apply path does.
fn apply(bytes: &[u8], keys: &[TrustedKey], slot: &Path) -> Result<Verified, BundleError> {
    let mut reader = bytes;
    let verified = read_header(&mut reader, keys)?;
    check_target(&verified.manifest, "0.1.0", false)?;
    install_files(&mut reader, &verified.manifest, slot, &mut |_, _| {})?;
    Ok(verified)
}

fn slot() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let slot = dir.path().join("slot-b");
    (dir, slot)
}

#[test]
fn a_good_bundle_installs_every_file() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    let mut calls = Vec::new();
    let bytes = good(&signer);
    let mut reader = bytes.as_slice();
    let verified = read_header(&mut reader, &[signer.trusted(KeyKind::Release)]).expect("header");
    assert_eq!(verified.key, KeyKind::Release);
    install_files(&mut reader, &verified.manifest, &slot, &mut |w, t| {
        calls.push((w, t))
    })
    .expect("install");
    assert_eq!(std::fs::read(slot.join("vmlinuz")).expect("kernel"), KERNEL);
    assert_eq!(
        std::fs::read(slot.join("initrd.img")).expect("initrd"),
        INITRD
    );
    let total = (KERNEL.len() + INITRD.len()) as u64;
    assert_eq!(calls.last(), Some(&(total, total)));
}

#[test]
fn the_test_key_is_told_apart_from_the_release_key() {
    let release = Signer::new();
    let test = Signer::new();
    let keys = [
        release.trusted(KeyKind::Release),
        test.trusted(KeyKind::Test),
    ];
    let bytes = good(&test);
    let verified = read_header(&mut bytes.as_slice(), &keys).expect("header");
    assert_eq!(verified.key, KeyKind::Test);
}

#[test]
fn an_unknown_key_is_refused_before_anything_is_written() {
    let signer = Signer::new();
    let other = Signer::new();
    let (_dir, slot) = slot();
    let err =
        apply(&good(&other), &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
    assert!(matches!(err, BundleError::BadSignature), "{err}");
    assert!(err
        .to_string()
        .contains("not signed by the piarchive release key"));
    assert!(!slot.exists());
}

#[test]
fn a_tampered_manifest_is_refused() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    let mut bytes = good(&signer);
    // The version digit "2" in "0.2.0" becomes "9": the JSON still parses.
    let at = bytes
        .windows(5)
        .position(|w| w == b"0.2.0")
        .expect("version")
        + 2;
    bytes[at] = b'9';
    let err = apply(&bytes, &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
    assert!(matches!(err, BundleError::BadSignature), "{err}");
    assert!(!slot.exists());
}

#[test]
fn a_tampered_file_is_refused_and_what_was_written_is_removed() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    let mut bytes = good(&signer);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let err = apply(&bytes, &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
    assert!(matches!(err, BundleError::Bad(_)), "{err}");
    assert!(
        err.to_string()
            .contains("initrd.img does not match its checksum"),
        "{err}"
    );
    assert!(!slot.exists(), "the damaged slot is removed");
}

#[test]
fn a_wrong_board_is_refused() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    let mut other = manifest("0.2.0");
    other.board = "rpi-armhf".into();
    let bytes = bundle(&signer, &other, &[KERNEL, INITRD]);
    let err = apply(&bytes, &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
    assert!(err.to_string().contains("made for \"rpi-armhf\""), "{err}");
    assert!(!slot.exists());
}

#[test]
fn an_older_or_equal_version_is_refused_unless_forced() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    for version in ["0.1.0", "0.0.9"] {
        let bytes = bundle(&signer, &manifest(version), &[KERNEL, INITRD]);
        let err = apply(&bytes, &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
        assert!(matches!(err, BundleError::NotNewer { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("not newer than the running version 0.1.0"));
        assert_eq!(err.status_and_code(), (409, "not_newer"));
        assert!(!slot.exists());
    }
    check_target(&manifest("0.1.0"), "0.1.0", true).expect("forced reinstall");
}

#[test]
fn a_truncated_bundle_is_refused_wherever_it_ends() {
    let signer = Signer::new();
    let bytes = good(&signer);
    let keys = [signer.trusted(KeyKind::Release)];
    for cut in [
        0,
        5,
        11,
        40,
        bytes.len() - INITRD.len() - KERNEL.len() - 1,
        bytes.len() - 1,
    ] {
        let (_dir, slot) = slot();
        let err = apply(&bytes[..cut], &keys, &slot).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("cut short") || matches!(err, BundleError::BadSignature),
            "cut at {cut}: {text}"
        );
        assert!(!slot.exists(), "cut at {cut}: nothing left behind");
    }
}

#[test]
fn bytes_after_the_last_file_are_refused() {
    let signer = Signer::new();
    let (_dir, slot) = slot();
    let mut bytes = good(&signer);
    bytes.extend_from_slice(b"extra");
    let err = apply(&bytes, &[signer.trusted(KeyKind::Release)], &slot).expect_err("refused");
    assert!(
        err.to_string().contains("bytes after its last file"),
        "{err}"
    );
    assert!(!slot.exists());
}

#[test]
fn paths_outside_the_slot_and_bad_manifests_are_refused() {
    let signer = Signer::new();
    let keys = [signer.trusted(KeyKind::Release)];
    for path in [
        "../config.txt",
        "/etc/passwd",
        "a/./b",
        ".hidden",
        "",
        "a b",
    ] {
        let mut m = manifest("0.2.0");
        m.files.push(entry(path, b"x"));
        let bytes = bundle(&signer, &m, &[KERNEL, INITRD, b"x"]);
        let err = read_header(&mut bytes.as_slice(), &keys).expect_err("refused");
        assert!(
            err.to_string().contains("outside its slot"),
            "{path}: {err}"
        );
    }
    let mut m = manifest("0.2.0");
    m.format = 2;
    let err = read_header(&mut bundle(&signer, &m, &[]).as_slice(), &keys).expect_err("format");
    assert!(err.to_string().contains("bundle format 2"), "{err}");
    let err = read_header(&mut &b"GIF89a not a bundle"[..], &keys).expect_err("magic");
    assert!(err.to_string().contains("does not start like"), "{err}");
}

#[test]
fn a_bundle_that_does_not_fit_is_refused() {
    let m = manifest("0.2.0");
    let err = check_space(&m, 1000).expect_err("no space");
    assert_eq!(err.status_and_code(), (507, "no_space"));
    assert!(err.to_string().contains("MiB are free"), "{err}");
    check_space(&m, 2 << 20).expect("fits");
}
