//! The update bundle (`.piup`): format, signature check and streaming install.
//!
//! Owns: the byte layout, the manifest, the Ed25519 check against trusted keys, the
//! version/board/space checks, and writing the files into a slot folder while they
//! stream (hashing as they go). Must not touch: which slot is active or how the box
//! reboots (that is [`super::boot`]).
//!
//! Layout:
//!
//! | bytes | what |
//! |-------|------|
//! | 8 | magic `PIUP\0\x01\r\n` |
//! | 4 | manifest length, big-endian (at most 64 KiB) |
//! | n | manifest, JSON ([`Manifest`]) |
//! | 64 | Ed25519 signature of magic + length + manifest |
//! | ... | each file's bytes, in manifest order, nothing after |
//!
//! Everything before the files is checked before a byte is written. A file whose
//! hash does not match, or a bundle that ends early, is found while streaming: the
//! slot folder is then removed, which leaves the committed slot untouched.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"PIUP\0\x01\r\n";
/// The manifest format this build reads.
pub const FORMAT: u32 = 1;
/// The board family of the SD-card image (every 64-bit Pi, and QEMU virt).
pub const BOARD_FAMILY: &str = "rpi-arm64";
const MAX_MANIFEST: u32 = 64 * 1024;
const MAX_FILES: usize = 256;
const SIGNATURE_LEN: usize = 64;

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path inside the slot (`vmlinuz`, `broadcom/bcm2711-rpi-4-b.dtb`).
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// What the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The piarchive version inside the bundle.
    pub version: String,
    pub board: String,
    pub files: Vec<FileEntry>,
    /// Test builds only: the new version fails its health check with this reason.
    /// Honoured only when the bundle is signed with the test key (see [`KeyKind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_health_failure: Option<String>,
    /// Test builds only: the new version never finishes its trial (a hang).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_hang: bool,
    /// Test builds only: the old version, once the slot and `tryboot.txt` are written,
    /// holds its reboot (the window a power cut can fall into, made wide for a test).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_hold_reboot: bool,
}

impl Manifest {
    /// The bytes the files take.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Which trusted key signed a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Release,
    /// The throwaway key of a test image (`image/build` without a release key).
    Test,
}

/// A public key the verifier accepts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub kind: KeyKind,
    pub public: [u8; 32],
}

/// The release key, and in test images the test key given to `cross/build`. Debug
/// builds (never shipped: the image is a release build) also read
/// `PIARCHIVE_UPDATE_TEST_PUBKEY` when they run, so that tests can sign bundles with
/// a key made on the fly.
pub fn trusted_keys() -> Vec<TrustedKey> {
    let mut keys = Vec::new();
    if let Some(public) = parse_key_hex(include_str!("../../keys/release-ed25519.pub")) {
        keys.push(TrustedKey {
            kind: KeyKind::Release,
            public,
        });
    }
    if let Some(public) = option_env!("PIARCHIVE_UPDATE_TEST_PUBKEY").and_then(parse_key_hex) {
        keys.push(TrustedKey {
            kind: KeyKind::Test,
            public,
        });
    }
    #[cfg(debug_assertions)]
    if let Some(public) = std::env::var("PIARCHIVE_UPDATE_TEST_PUBKEY")
        .ok()
        .and_then(|hex| parse_key_hex(&hex))
    {
        keys.push(TrustedKey {
            kind: KeyKind::Test,
            public,
        });
    }
    keys
}

fn parse_key_hex(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.trim()).ok()?.try_into().ok()
}

/// Why a bundle was refused; each message is a sentence for the person updating.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("This file is not signed by the piarchive release key, so it was not installed. Download the update again from the official release page.")]
    BadSignature,
    #[error("This file is not a usable piarchive update: {0}")]
    Bad(String),
    #[error("This update is version {bundle}, which is not newer than the running version {running}. An admin can force a reinstall.")]
    NotNewer { bundle: String, running: String },
    #[error(
        "The update needs {need_mib} MiB on the boot partition but only {free_mib} MiB are free."
    )]
    NoSpace { need_mib: u64, free_mib: u64 },
    #[error("The update could not be written to the SD card: {0}")]
    Io(#[from] std::io::Error),
}

impl BundleError {
    /// The HTTP status and API code for this refusal.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            BundleError::BadSignature => (400, "bad_signature"),
            BundleError::Bad(_) => (400, "bad_bundle"),
            BundleError::NotNewer { .. } => (409, "not_newer"),
            BundleError::NoSpace { .. } => (507, "no_space"),
            BundleError::Io(_) => (500, "write_failed"),
        }
    }
}

fn bad(message: impl Into<String>) -> BundleError {
    BundleError::Bad(message.into())
}

/// A manifest whose signature checked out, and the key that signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub key: KeyKind,
}

/// Reads the bundle up to the first file and checks its signature and manifest.
pub fn read_header<R: Read + ?Sized>(
    reader: &mut R,
    keys: &[TrustedKey],
) -> Result<Verified, BundleError> {
    let mut head = [0u8; 12];
    read_exact_or(reader, &mut head, "it is empty or too short")?;
    if &head[..8] != MAGIC {
        return Err(bad("it does not start like a piarchive update (.piup)."));
    }
    let len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if len == 0 || len > MAX_MANIFEST {
        return Err(bad(format!(
            "its manifest length ({len} bytes) is not plausible."
        )));
    }
    let mut signed = head.to_vec();
    signed.resize(12 + len as usize, 0);
    read_exact_or(reader, &mut signed[12..], "it ends inside the manifest")?;
    let mut signature = [0u8; SIGNATURE_LEN];
    read_exact_or(reader, &mut signature, "it ends inside the signature")?;
    let key = keys
        .iter()
        .find(|k| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &k.public)
                .verify(&signed, &signature)
                .is_ok()
        })
        .ok_or(BundleError::BadSignature)?
        .kind;
    let manifest: Manifest = serde_json::from_slice(&signed[12..])
        .map_err(|e| bad(format!("its manifest does not parse ({e}).")))?;
    check_manifest(&manifest)?;
    Ok(Verified { manifest, key })
}

fn read_exact_or<R: Read + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    why: &str,
) -> Result<(), BundleError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(format!("{why} (the file is cut short).")),
        _ => BundleError::Io(e),
    })
}

fn check_manifest(manifest: &Manifest) -> Result<(), BundleError> {
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "it uses bundle format {}, and this piarchive reads format {FORMAT}.",
            manifest.format
        )));
    }
    semver::Version::parse(&manifest.version).map_err(|_| {
        bad(format!(
            "its version {:?} is not a version number.",
            manifest.version
        ))
    })?;
    if manifest.files.is_empty() || manifest.files.len() > MAX_FILES {
        return Err(bad(format!("it lists {} files.", manifest.files.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for file in &manifest.files {
        safe_relative_path(&file.path)?;
        if !seen.insert(file.path.as_str()) {
            return Err(bad(format!("it lists {} twice.", file.path)));
        }
        if file.sha256.len() != 64 || hex::decode(&file.sha256).is_err() {
            return Err(bad(format!("the checksum of {} is malformed.", file.path)));
        }
    }
    if !manifest.files.iter().any(|f| f.path == "vmlinuz") {
        return Err(bad("it has no kernel (vmlinuz)."));
    }
    Ok(())
}

/// A relative path of plain names (letters, digits, `._+-`, not starting with a dot),
/// at most 4 deep.
fn safe_relative_path(path: &str) -> Result<PathBuf, BundleError> {
    let names: Vec<&str> = path.split('/').collect();
    let plain = names.len() <= 4
        && names.iter().all(|name| {
            !name.is_empty()
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        });
    if !plain {
        return Err(bad(format!("it names a file outside its slot ({path:?}).")));
    }
    Ok(PathBuf::from(path))
}

/// Refuses a bundle for another board, or one not newer than `running` unless `force`.
pub fn check_target(manifest: &Manifest, running: &str, force: bool) -> Result<(), BundleError> {
    if manifest.board != BOARD_FAMILY {
        return Err(bad(format!(
            "it is made for {:?}, and this appliance is {BOARD_FAMILY}.",
            manifest.board
        )));
    }
    let new = semver::Version::parse(&manifest.version)
        .map_err(|_| bad("its version does not parse."))?;
    let newer = semver::Version::parse(running).map_or(true, |current| new > current);
    if !newer && !force {
        return Err(BundleError::NotNewer {
            bundle: manifest.version.clone(),
            running: running.to_string(),
        });
    }
    Ok(())
}

/// Refuses a bundle that does not fit in `free` bytes (with 1 MiB to spare).
pub fn check_space(manifest: &Manifest, free: u64) -> Result<(), BundleError> {
    let need = manifest.total_size() + (1 << 20);
    if need > free {
        return Err(BundleError::NoSpace {
            need_mib: need.div_ceil(1 << 20),
            free_mib: free >> 20,
        });
    }
    Ok(())
}

/// Streams the files into `slot` (emptied first), then checks there is nothing after
/// them, syncs every file and reads it back to check its hash again. On any error the
/// slot folder is removed. `progress(written, total)` is called as bytes land.
pub fn install_files<R: Read + ?Sized>(
    reader: &mut R,
    manifest: &Manifest,
    slot: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), BundleError> {
    let result =
        write_all_files(reader, manifest, slot, progress).and_then(|()| reverify(manifest, slot));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(slot);
        if let Some(parent) = slot.parent() {
            let _ = sync_dir(parent);
        }
    }
    result
}

fn write_all_files<R: Read + ?Sized>(
    reader: &mut R,
    manifest: &Manifest,
    slot: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), BundleError> {
    if slot.exists() {
        std::fs::remove_dir_all(slot)?;
    }
    std::fs::create_dir_all(slot)?;
    let total = manifest.total_size();
    let mut written = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for entry in &manifest.files {
        let target = slot.join(safe_relative_path(&entry.path)?);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = File::create(&target)?;
        let mut hasher = Sha256::new();
        let mut left = entry.size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(bad(format!(
                    "it ends inside {} (the file is cut short).",
                    entry.path
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
            written += n as u64;
            progress(written, total);
        }
        if hex::encode(hasher.finalize()) != entry.sha256 {
            return Err(bad(format!(
                "{} does not match its checksum (the file is damaged).",
                entry.path
            )));
        }
        out.sync_all()?;
    }
    if reader.read(&mut buf[..1])? != 0 {
        return Err(bad("it has bytes after its last file."));
    }
    Ok(())
}

/// Reads every written file back and checks its hash; syncs the folders.
fn reverify(manifest: &Manifest, slot: &Path) -> Result<(), BundleError> {
    for entry in &manifest.files {
        let path = slot.join(&entry.path);
        let mut hasher = Sha256::new();
        std::io::copy(&mut File::open(&path)?, &mut hasher)?;
        if hex::encode(hasher.finalize()) != entry.sha256 {
            return Err(bad(format!(
                "{} reads back differently from what was written.",
                entry.path
            )));
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
    }
    sync_dir(slot)?;
    if let Some(parent) = slot.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsync of a folder, so that the names in it are on disk; then syncfs, because FAT
/// keeps directory entries in the device's buffers, which fsync of a folder does not
/// write.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let folder = File::open(dir)?;
    folder.sync_all()?;
    rustix::fs::syncfs(&folder).map_err(std::io::Error::from)
}

/// Writes a bundle: the inverse of [`read_header`] + [`install_files`], for tests and
/// tools. `sign` gets the bytes to sign and returns the 64-byte signature.
pub fn write_bundle<W: Write>(
    out: &mut W,
    manifest: &Manifest,
    files: &[&[u8]],
    sign: &dyn Fn(&[u8]) -> Vec<u8>,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(manifest).map_err(std::io::Error::other)?;
    let mut signed = MAGIC.to_vec();
    signed.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_be_bytes());
    signed.extend_from_slice(&json);
    out.write_all(&signed)?;
    out.write_all(&sign(&signed))?;
    for file in files {
        out.write_all(file)?;
    }
    Ok(())
}

/// The manifest entry for `bytes` at `path`.
pub fn entry(path: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

#[cfg(test)]
mod tests;
