//! The firmware update API on a piarchive that does not run from the SD-card image:
//! admin only, the status says it cannot update, and an upload is refused unwritten.
//! (Updates themselves are proven in QEMU by image/qemu-test; the bundle format by
//! the unit tests in src/update/bundle/tests.rs.)

use crate::support::TestServer;

#[test]
fn firmware_status_and_upload_outside_the_image() {
    let server = TestServer::start();
    let admin = server.admin();
    let member = server.member("bob");
    assert_eq!(member.get("/api/v1/admin/firmware").status, 403);
    let upload = member.request("POST", "/api/v1/admin/firmware", &[], Some(b"PIUP"));
    assert_eq!(upload.status, 403);

    let state = admin.get("/api/v1/admin/firmware").json();
    assert_eq!(state["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(state["can_update"], false);
    assert_eq!(state["trial"], false);
    assert!(state["slot"].is_null());
    assert!(state["last_update"].is_null());

    let refused = admin.request(
        "POST",
        "/api/v1/admin/firmware",
        &[],
        Some(b"PIUP\0\x01\r\nnot really"),
    );
    assert_eq!(refused.status, 409);
    let body = refused.json();
    assert_eq!(body["error"], "not_updatable");
    assert!(body["message"]
        .as_str()
        .unwrap_or("")
        .contains("does not run from the SD-card image"));

    let page = admin.get("/admin/firmware");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("does not run from the SD-card image"));
    assert!(admin.get("/").text().contains("href=\"/admin/firmware\""));
}

// ---- piarchive update FILE (the console) -------------------------------------

use std::path::Path;
use std::process::{Command, Output};

use piarchive::update::bundle::{self, Manifest};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// A key made for this test; a debug build of piarchive trusts it when it is named
/// in `PIARCHIVE_UPDATE_TEST_PUBKEY` (a release build never reads that at run time).
struct Signer(Ed25519KeyPair);

impl Signer {
    fn new() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        Signer(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"))
    }

    fn public_hex(&self) -> String {
        hex::encode(self.0.public_key().as_ref())
    }

    /// A bundle of `files` at `version`.
    fn bundle(&self, version: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        let manifest = Manifest {
            format: bundle::FORMAT,
            version: version.into(),
            board: bundle::BOARD_FAMILY.into(),
            files: files
                .iter()
                .map(|(path, bytes)| bundle::entry(path, bytes))
                .collect(),
            test_health_failure: None,
            test_hang: false,
            test_hold_reboot: false,
        };
        let contents: Vec<&[u8]> = files.iter().map(|(_, bytes)| *bytes).collect();
        let mut out = Vec::new();
        bundle::write_bundle(&mut out, &manifest, &contents, &|b| {
            self.0.sign(b).as_ref().to_vec()
        })
        .expect("bundle");
        out
    }
}

/// A boot partition with slot-a committed and an empty slot-b.
fn boot_folder(root: &Path) -> std::path::PathBuf {
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("slot-a")).expect("slot-a");
    std::fs::create_dir_all(boot.join("slot-b")).expect("slot-b");
    std::fs::write(boot.join("slot-a/vmlinuz"), b"the running kernel").expect("kernel");
    std::fs::write(boot.join("config.txt"), "arm_64bit=1\nos_prefix=slot-a/\n").expect("config");
    boot
}

fn run_update(signer: &Signer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_piarchive"))
        .arg("update")
        .args(args)
        .env("PIARCHIVE_UPDATE_TEST_PUBKEY", signer.public_hex())
        .env_remove("PIARCHIVE_INIT")
        .output()
        .expect("run piarchive update")
}

fn newer_version() -> String {
    let running = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("version");
    format!("{}.{}.{}", running.major, running.minor, running.patch + 1)
}

#[test]
fn console_update_writes_the_slot_with_a_progress_line_and_names_it_in_tryboot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let boot = boot_folder(dir.path());
    let signer = Signer::new();
    let kernel = vec![7u8; 3 << 20];
    let initrd = b"an initramfs with piarchive as /init".to_vec();
    let version = newer_version();
    let file = dir.path().join("good.piup");
    std::fs::write(
        &file,
        signer.bundle(&version, &[("vmlinuz", &kernel), ("initrd.img", &initrd)]),
    )
    .expect("write bundle");
    let boot_arg = boot.to_str().expect("utf-8");
    let out = run_update(
        &signer,
        &[file.to_str().expect("utf-8"), "--boot", boot_arg],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("\rwriting the update: 100% (3 of 3 MiB)"),
        "{stderr:?}"
    );
    assert!(
        stdout.contains(&format!("version {version} is in slot-b")),
        "{stdout}"
    );
    assert!(stdout.contains("not rebooting"), "{stdout}");
    assert_eq!(
        std::fs::read(boot.join("slot-b/vmlinuz")).expect("kernel"),
        kernel
    );
    assert_eq!(
        std::fs::read(boot.join("slot-b/initrd.img")).expect("initrd"),
        initrd
    );
    let tryboot = std::fs::read_to_string(boot.join("tryboot.txt")).expect("tryboot.txt");
    assert_eq!(tryboot, "arm_64bit=1\nos_prefix=slot-b/\n");
    assert_eq!(
        std::fs::read_to_string(boot.join("config.txt")).expect("config"),
        "arm_64bit=1\nos_prefix=slot-a/\n",
        "the committed slot is unchanged until the trial commits"
    );
    assert_eq!(
        std::fs::read(boot.join("slot-a/vmlinuz")).expect("old kernel"),
        b"the running kernel"
    );
}

#[test]
fn console_update_refuses_a_bad_signature_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let boot = boot_folder(dir.path());
    let trusted = Signer::new();
    let stranger = Signer::new();
    let file = dir.path().join("stranger.piup");
    std::fs::write(
        &file,
        stranger.bundle(&newer_version(), &[("vmlinuz", b"someone else's kernel")]),
    )
    .expect("write bundle");
    let out = run_update(
        &trusted,
        &[
            file.to_str().expect("utf-8"),
            "--boot",
            boot.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "This file is not signed by the piarchive release key, so it was not installed."
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("writing the update"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(boot.join("slot-b"))
            .expect("slot-b")
            .count(),
        0
    );
    assert!(!boot.join("tryboot.txt").exists());
}

#[test]
fn console_update_on_a_desktop_refuses_with_a_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::new();
    let file = dir.path().join("good.piup");
    std::fs::write(
        &file,
        signer.bundle(&newer_version(), &[("vmlinuz", b"kernel")]),
    )
    .expect("write bundle");
    let out = run_update(&signer, &[file.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "This piarchive does not run from the SD-card image, so it cannot update itself"
        ),
        "{stderr}"
    );
    let missing = run_update(&signer, &[]);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("update needs exactly one bundle file")
    );
}
