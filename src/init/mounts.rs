//! Mounts of init mode: the kernel's pseudo filesystems, and the data partition found
//! by its ext4 label.
//!
//! Owns: the table of early mounts, the ext4 superblock reader (pure: bytes in, label
//! and times out), the scan of `/sys/class/block` for the data filesystem, and the
//! clean unmount at shutdown.
//! Must not touch: what lives on the data partition (that is `piarchive serve`'s), and
//! never formats or writes to a disk it did not find by label.

use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

/// The ext4 label the image gives its data partition, and that a USB disk gets from
/// `mkfs.ext4 -L piarchive-data`.
pub const DATA_LABEL: &str = "piarchive-data";

/// Where the data filesystem is mounted.
pub const DATA_MOUNT: &str = "/data";

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {fstype} on {target}: {source}")]
    Mount {
        fstype: String,
        target: String,
        source: std::io::Error,
    },
    #[error("cannot create the mount point {target}: {source}")]
    MountPoint {
        target: String,
        source: std::io::Error,
    },
    #[error("cannot unmount {target}, and cannot remount it read-only either: {source}")]
    Unmount {
        target: String,
        source: std::io::Error,
    },
    #[error("the path {0} contains a NUL byte")]
    BadPath(String),
}

/// One early mount.
struct PseudoMount {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MountFlags,
    data: &'static str,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// The pseudo filesystems, in mount order (devpts needs /dev first).
const PSEUDO_MOUNTS: &[PseudoMount] = &[
    PseudoMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    PseudoMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    PseudoMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MountFlags::NOSUID,
        data: "mode=0755",
    },
    PseudoMount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
        data: "gid=5,mode=620,ptmxmode=000",
    },
    PseudoMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: "mode=0755",
    },
    PseudoMount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MountFlags::NOSUID.union(MountFlags::NODEV),
        data: "mode=1777",
    },
];

/// Calls mount(2). An already mounted target (EBUSY) counts as success, so a kernel
/// that mounted devtmpfs itself does not stop the boot.
fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> Result<(), MountError> {
    std::fs::create_dir_all(target).map_err(|source| MountError::MountPoint {
        target: target.to_string(),
        source,
    })?;
    if let Some(bad) = [source, target, fstype, data]
        .iter()
        .find(|s| s.contains('\0'))
    {
        return Err(MountError::BadPath(bad.to_string()));
    }
    let data = std::ffi::CString::new(data).map_err(|_| MountError::BadPath(data.to_string()))?;
    match rustix::mount::mount(source, target, fstype, flags, data.as_c_str()) {
        Ok(()) | Err(Errno::BUSY) => Ok(()),
        Err(errno) => Err(MountError::Mount {
            fstype: fstype.to_string(),
            target: target.to_string(),
            source: errno.into(),
        }),
    }
}

/// Mounts proc, sys, devtmpfs, devpts, run and tmp. Fatal for the boot on error.
pub fn mount_pseudo_filesystems() -> Result<(), MountError> {
    for entry in PSEUDO_MOUNTS {
        mount(
            entry.source,
            entry.target,
            entry.fstype,
            entry.flags,
            entry.data,
        )?;
        super::console::log("mounts", &format!("{} on {}", entry.fstype, entry.target));
    }
    Ok(())
}

/// What the ext4 superblock says about a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4Superblock {
    pub label: String,
    /// Last mount time, seconds since the epoch (0 if never).
    pub mount_time: u32,
    /// Last write time, seconds since the epoch.
    pub write_time: u32,
    /// True when the filesystem was cleanly unmounted: s_state bit 0 set and no
    /// journal recovery pending.
    pub clean: bool,
}

/// Byte offset of the primary ext2/3/4 superblock on the device.
pub const SUPERBLOCK_OFFSET: usize = 1024;

/// The needs_recovery bit of s_feature_incompat.
const INCOMPAT_RECOVER: u32 = 0x4;

/// Reads an ext2/3/4 superblock from the first 2048 bytes of a device; `None` when
/// the bytes hold no ext filesystem (an unformatted disk, FAT, a partition table).
pub fn parse_ext4_superblock(device_start: &[u8]) -> Option<Ext4Superblock> {
    let sb = device_start.get(SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + 1024)?;
    let u16_at = |offset: usize| u16::from_le_bytes([sb[offset], sb[offset + 1]]);
    let u32_at = |offset: usize| {
        u32::from_le_bytes([sb[offset], sb[offset + 1], sb[offset + 2], sb[offset + 3]])
    };
    if u16_at(0x38) != 0xEF53 {
        return None;
    }
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(Ext4Superblock {
        label: String::from_utf8_lossy(&name[..end]).into_owned(),
        mount_time: u32_at(0x2C),
        write_time: u32_at(0x30),
        // Clean: "valid" state and no journal awaiting recovery (the needs_recovery
        // incompat feature stays set while a journalled filesystem is mounted).
        clean: u16_at(0x3A) & 1 == 1 && u32_at(0x60) & INCOMPAT_RECOVER == 0,
    })
}

/// A block device seen during the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sda1`, `mmcblk0p2`, `vda2`.
    pub name: String,
    pub superblock: Option<Ext4Superblock>,
    /// True for a whole disk (not a partition).
    pub whole_disk: bool,
}

/// The order in which candidate devices are preferred: a USB disk (sd*) before the
/// SD card or a virtual disk, so plugging in a labelled USB disk moves data there.
fn preference(name: &str) -> u8 {
    if name.starts_with("sd") {
        0
    } else {
        1
    }
}

/// Picks the data device among the scanned ones: ext4 labelled [`DATA_LABEL`],
/// USB disks first, then by name.
pub fn choose_data_device(devices: &[BlockDevice]) -> Option<&BlockDevice> {
    devices
        .iter()
        .filter(|d| {
            d.superblock
                .as_ref()
                .is_some_and(|sb| sb.label == DATA_LABEL)
        })
        .min_by(|a, b| (preference(&a.name), &a.name).cmp(&(preference(&b.name), &b.name)))
}

/// Whole disks that are plugged in but hold no labelled data filesystem on any of
/// their partitions: what the user is told about ("found sda, not formatted for piarchive").
pub fn unusable_disks(devices: &[BlockDevice]) -> Vec<String> {
    devices
        .iter()
        .filter(|d| d.whole_disk && d.name.starts_with("sd"))
        .filter(|disk| {
            !devices.iter().any(|d| {
                d.name.starts_with(&disk.name)
                    && d.superblock
                        .as_ref()
                        .is_some_and(|sb| sb.label == DATA_LABEL)
            })
        })
        .map(|d| d.name.clone())
        .collect()
}

/// Reads the first 2048 bytes of /dev/NAME; `None` if it cannot be read (empty card reader).
fn read_device_start(name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(Path::new("/dev").join(name)).ok()?;
    let mut buf = vec![0u8; 2048];
    file.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Lists the block devices in /sys/class/block with their ext superblocks, skipping
/// RAM, loop and eMMC boot areas.
pub fn scan_block_devices() -> Vec<BlockDevice> {
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return Vec::new();
    };
    let mut devices: Vec<BlockDevice> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            !(name.starts_with("ram")
                || name.starts_with("loop")
                || name.starts_with("zram")
                || name.contains("boot")
                || name.contains("rpmb"))
        })
        .map(|name| {
            let whole_disk = !Path::new("/sys/class/block")
                .join(&name)
                .join("partition")
                .exists();
            let superblock = read_device_start(&name).and_then(|b| parse_ext4_superblock(&b));
            BlockDevice {
                name,
                superblock,
                whole_disk,
            }
        })
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    devices
}

/// Mounts /dev/NAME (ext4) on [`DATA_MOUNT`]. The kernel replays the journal after a
/// power cut.
pub fn mount_data(name: &str) -> Result<PathBuf, MountError> {
    let device = format!("/dev/{name}");
    mount(
        &device,
        DATA_MOUNT,
        "ext4",
        MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID,
        // A disk the kernel finds errors on stops taking writes (the pages
        // and the display say so) instead of being written on regardless.
        "errors=remount-ro",
    )?;
    Ok(PathBuf::from(DATA_MOUNT))
}

/// The FAT label `image/build` gives the boot partition.
pub const BOOT_LABEL: &str = "PIBOOT";

/// True when `sector` is a FAT32 boot sector labelled [`BOOT_LABEL`]. Pure.
pub fn is_boot_sector(sector: &[u8]) -> bool {
    sector.len() >= 0x5A
        && &sector[0x52..0x5A] == b"FAT32   "
        && sector[0x47..0x52].trim_ascii_end() == BOOT_LABEL.as_bytes()
}

/// The partition holding the FAT filesystem labelled `PIBOOT`, if any.
pub fn find_boot_partition() -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            Path::new("/sys/class/block")
                .join(name)
                .join("partition")
                .exists()
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .find(|name| read_device_start(name).is_some_and(|b| is_boot_sector(&b)))
}

/// Mounts the boot partition (FAT) on `target`: the slots an update writes.
pub fn mount_boot(name: &str, target: &str) -> Result<(), MountError> {
    mount(
        &format!("/dev/{name}"),
        target,
        "vfat",
        MountFlags::NOATIME
            | MountFlags::NODEV
            | MountFlags::NOSUID
            | MountFlags::NOEXEC
            | MountFlags::DIRSYNC,
        "umask=0077,flush",
    )
}

/// Unmounts `target`; if it is still busy, remounts it read-only so the journal is
/// clean before power goes away.
pub fn unmount(target: &str) -> Result<(), MountError> {
    let first = match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(errno) => std::io::Error::from(errno),
    };
    super::console::log(
        "shutdown",
        &format!("unmount {target}: {first}; remounting read-only"),
    );
    rustix::mount::mount_remount(target, MountFlags::RDONLY, "").map_err(|errno| {
        MountError::Unmount {
            target: target.to_string(),
            source: errno.into(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(label: &str, wtime: u32, state: u16) -> Vec<u8> {
        let mut dev = vec![0u8; 2048];
        let sb = &mut dev[1024..];
        sb[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
        sb[0x2C..0x30].copy_from_slice(&(wtime - 5).to_le_bytes());
        sb[0x30..0x34].copy_from_slice(&wtime.to_le_bytes());
        sb[0x78..0x78 + label.len()].copy_from_slice(label.as_bytes());
        dev
    }

    #[test]
    fn reads_label_times_and_state() {
        let sb = parse_ext4_superblock(&superblock("piarchive-data", 1_700_000_000, 1));
        assert_eq!(
            sb,
            Some(Ext4Superblock {
                label: "piarchive-data".into(),
                mount_time: 1_699_999_995,
                write_time: 1_700_000_000,
                clean: true,
            })
        );
    }

    #[test]
    fn sixteen_byte_label_without_nul() {
        let sb = parse_ext4_superblock(&superblock("abcdefghijklmnop", 10, 0));
        assert_eq!(
            sb.map(|s| (s.label, s.clean)),
            Some(("abcdefghijklmnop".into(), false))
        );
    }

    #[test]
    fn pending_journal_recovery_is_not_clean() {
        let mut dev = superblock("piarchive-data", 10, 1);
        dev[1024 + 0x60] = 0x4 | 0x40; // needs_recovery | extents
        assert_eq!(parse_ext4_superblock(&dev).map(|s| s.clean), Some(false));
    }

    #[test]
    fn no_magic_or_short_input_is_none() {
        assert_eq!(parse_ext4_superblock(&vec![0u8; 2048]), None);
        assert_eq!(parse_ext4_superblock(&[0u8; 100]), None);
    }

    fn device(name: &str, label: Option<&str>, whole_disk: bool) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            superblock: label.map(|l| Ext4Superblock {
                label: l.into(),
                mount_time: 0,
                write_time: 0,
                clean: true,
            }),
            whole_disk,
        }
    }

    #[test]
    fn usb_disk_is_preferred_over_sd_card() {
        let devices = [
            device("mmcblk0", None, true),
            device("mmcblk0p2", Some(DATA_LABEL), false),
            device("sda", None, true),
            device("sda1", Some(DATA_LABEL), false),
        ];
        assert_eq!(
            choose_data_device(&devices).map(|d| d.name.as_str()),
            Some("sda1")
        );
    }

    #[test]
    fn other_labels_are_ignored() {
        let devices = [
            device("vda2", Some("rootfs"), false),
            device("sdb", Some("backup"), true),
        ];
        assert_eq!(choose_data_device(&devices), None);
        assert_eq!(unusable_disks(&devices), vec!["sdb".to_string()]);
    }

    #[test]
    fn labelled_usb_disk_is_not_reported_unusable() {
        let devices = [
            device("sda", None, true),
            device("sda1", Some(DATA_LABEL), false),
            device("sdb", None, true),
        ];
        assert_eq!(unusable_disks(&devices), vec!["sdb".to_string()]);
    }
}
