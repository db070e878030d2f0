//! Small file systems for the disk-fault tests: a tmpfs of a given size
//! that a test fills, frees and remounts read-only under a running server.
//! Mounting needs root (CI runs as root); elsewhere the tests that need it
//! are skipped with a printed reason.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`. `None` (the reason printed) when this
    /// process may not mount; as root a failure fails the test.
    pub fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&path)
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs { _dir: dir, path }),
            other if !is_root() => {
                eprintln!("skipped: mounting a tmpfs needs root ({other:?})");
                None
            }
            other => panic!("mount -t tmpfs failed as root: {other:?}"),
        }
    }

    /// Remounts read-only (`true`) or read-write again.
    pub fn remount(&self, read_only: bool) {
        let option = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let status = Command::new("mount")
            .args(["-o", option])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -o {option} failed");
    }

    /// Fills what is left with a file `filler` (until ENOSPC); returns it.
    pub fn fill(&self) -> PathBuf {
        fill(&self.path.join("filler"))
    }
}

/// Writes `path` until the disk is full.
pub fn fill(path: &Path) -> PathBuf {
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        if let Err(err) = file.write_all(&chunk) {
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
            break;
        }
    }
    // The last pages: byte by byte is too slow, a small chunk is enough.
    let _ = file.write_all(&chunk[..512]);
    path.to_path_buf()
}

/// An ext4 file system in an image file, loop-mounted with
/// `errors=remount-ro` as a data disk is, unmounted on drop.
pub struct Ext4 {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Ext4 {
    /// Makes and mounts an ext4 of `bytes`; `None` (said) when this
    /// process may not; as root a failure fails the test.
    pub fn mount(bytes: u64) -> Option<Ext4> {
        let dir = tempfile::tempdir().expect("temp dir");
        let image = dir.path().join("disk.img");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(bytes))
            .expect("image file");
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status();
        let mounted = made.and_then(|made| {
            assert!(made.success(), "mkfs.ext4 failed");
            Command::new("mount")
                .args(["-o", "loop,errors=remount-ro"])
                .arg(&image)
                .arg(&path)
                .status()
        });
        match mounted {
            Ok(status) if status.success() => Some(Ext4 { _dir: dir, path }),
            other if !is_root() => {
                eprintln!("skipped: mkfs.ext4 and a loop mount need root ({other:?})");
                None
            }
            other => panic!("mkfs.ext4 or mount -o loop failed as root: {other:?}"),
        }
    }

    /// Makes the kernel find an error in the file system, as a failing
    /// disk would: with `errors=remount-ro` it stops writing to it.
    pub fn fail(&self) {
        let output = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.path)
            .output()
            .expect("findmnt");
        let source = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let device = source.rsplit('/').next().unwrap().to_string();
        std::fs::write(
            format!("/sys/fs/ext4/{device}/trigger_fs_error"),
            "piarchive test: a failing disk",
        )
        .expect("trigger an ext4 error");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
