//! The boot partition's slots: which one is committed (`config.txt`), which one is on
//! trial (`tryboot.txt`), and the durable rewrite of either file.
//!
//! Owns: the `os_prefix=slot-a/` line, the atomic file replacement (temp file, fsync,
//! rename, fsync of the folder), and telling whether this boot is a trial.
//! Must not touch: the files inside a slot (that is [`super::bundle`]) or the Pi
//! firmware files at the top of the partition.

use std::io::Write;
use std::path::Path;

/// Where init mounts the boot partition (FAT, label `PIBOOT`).
pub const BOOT_MOUNT: &str = "/boot";
/// The committed slot's configuration, read by the Pi firmware on every boot.
pub const CONFIG: &str = "config.txt";
/// The trial slot's configuration, read once after `reboot "0 tryboot"`.
pub const TRYBOOT: &str = "tryboot.txt";
/// On the qemu-virt board: the marker that plays the Pi's one-shot tryboot flag. The
/// launcher in image/qemu-test reads it, deletes it, and boots `tryboot.txt`.
pub const QEMU_TRYBOOT_MARKER: &str = "tryboot.flag";

/// One of the two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn dir_name(self) -> &'static str {
        match self {
            Slot::A => "slot-a",
            Slot::B => "slot-b",
        }
    }
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// The slot a config file boots (`os_prefix=slot-b/`), if it names one. Pure.
pub fn slot_of(config: &str) -> Option<Slot> {
    config.lines().rev().find_map(|line| {
        match line
            .trim()
            .strip_prefix("os_prefix=")?
            .trim_end_matches('/')
        {
            "slot-a" => Some(Slot::A),
            "slot-b" => Some(Slot::B),
            _ => None,
        }
    })
}

/// `config` with its `os_prefix=` line naming `slot`. Pure.
pub fn with_slot(config: &str, slot: Slot) -> String {
    let line = format!("os_prefix={}/", slot.dir_name());
    let mut out: Vec<String> = Vec::new();
    let mut replaced = false;
    for existing in config.lines() {
        if existing.trim().starts_with("os_prefix=") {
            if !replaced {
                out.push(line.clone());
                replaced = true;
            }
        } else {
            out.push(existing.to_string());
        }
    }
    if !replaced {
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// The committed slot, from `config.txt` in `boot`.
pub fn committed_slot(boot: &Path) -> Option<Slot> {
    slot_of(&std::fs::read_to_string(boot.join(CONFIG)).ok()?)
}

/// Replaces `boot/name` durably: temp file, fsync, rename, fsync of the folder.
pub fn replace_file(boot: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    let temp = boot.join(format!("{name}.new"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, boot.join(name))?;
    super::bundle::sync_dir(boot)
}

/// Writes `tryboot.txt`: the committed configuration with `slot` as its prefix.
pub fn write_tryboot(boot: &Path, slot: Slot) -> std::io::Result<()> {
    let config = std::fs::read_to_string(boot.join(CONFIG))?;
    replace_file(boot, TRYBOOT, &with_slot(&config, slot))
}

/// Commits `slot`: `config.txt` names it from now on.
pub fn commit(boot: &Path, slot: Slot) -> std::io::Result<()> {
    let config = std::fs::read_to_string(boot.join(CONFIG))?;
    if slot_of(&config) == Some(slot) {
        return Ok(());
    }
    replace_file(boot, CONFIG, &with_slot(&config, slot))
}

/// True when this boot is a trial: the Pi firmware's device-tree flag, or on QEMU the
/// launcher's `piarchive.tryboot=1` on the kernel command line (the device tree of
/// `-M virt` has no bootloader node).
pub fn booted_on_trial() -> bool {
    let flag = std::fs::read("/proc/device-tree/chosen/bootloader/tryboot").unwrap_or_default();
    if flag.iter().any(|&b| b != 0) {
        return true;
    }
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .any(|w| w == "piarchive.tryboot=1")
}

/// The slot this boot runs from: the trial slot on trial, else the committed one.
pub fn running_slot(boot: &Path, trial: bool) -> Option<Slot> {
    if trial {
        slot_of(&std::fs::read_to_string(boot.join(TRYBOOT)).ok()?)
    } else {
        committed_slot(boot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_line_is_read_and_rewritten() {
        let config = "arm_64bit=1\nos_prefix=slot-a/\nkernel=vmlinuz\n";
        assert_eq!(slot_of(config), Some(Slot::A));
        let b = with_slot(config, Slot::B);
        assert_eq!(b, "arm_64bit=1\nos_prefix=slot-b/\nkernel=vmlinuz\n");
        assert_eq!(slot_of(&b), Some(Slot::B));
        assert_eq!(slot_of("kernel=vmlinuz\n"), None);
        assert_eq!(
            slot_of(&with_slot("kernel=vmlinuz", Slot::A)),
            Some(Slot::A)
        );
    }

    #[test]
    fn commit_and_tryboot_rewrite_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(CONFIG), "os_prefix=slot-a/\ngpu_mem=16\n").expect("write");
        write_tryboot(dir.path(), Slot::B).expect("tryboot");
        assert_eq!(committed_slot(dir.path()), Some(Slot::A));
        assert_eq!(running_slot(dir.path(), true), Some(Slot::B));
        commit(dir.path(), Slot::B).expect("commit");
        assert_eq!(committed_slot(dir.path()), Some(Slot::B));
        let config = std::fs::read_to_string(dir.path().join(CONFIG)).expect("read");
        assert!(config.contains("gpu_mem=16"));
        assert!(!dir.path().join("config.txt.new").exists());
    }
}
