//! Where one destination keeps the backups, as far as safety goes: off
//! this box (S3, a folder on another network host), on this box's own
//! disk, on a USB disk plugged into it, or not reachable at all. Only
//! [`Placement::OffSite`] may ever be called "off-site" or "safe".
//!
//! The rule is a function of one destination ([`placement`]), so a list
//! of destinations is judged by judging each. Reading the mounts is
//! split from the rule: [`Mounts`] is what Linux said
//! (`/proc/self/mountinfo`, `/dev/disk/by-label`, `/sys/dev/block`),
//! [`placement_of_folder`] is pure. Must not touch: the store, HTTP.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::RemoteSettings;

/// Where a destination keeps the backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Not attached to this box: S3, or a folder on a network file system.
    OffSite,
    /// A folder on a disk of this box that is not a USB disk: a second
    /// copy, lost with the box.
    SameDisk,
    /// A folder on a USB disk plugged into this box, by its label (or its
    /// device name when it has none).
    UsbDisk(String),
    /// A folder that is missing or whose disk is not mounted: nothing can
    /// be copied there, and nothing there counts as a copy.
    Unreachable,
}

impl Placement {
    pub fn is_off_site(&self) -> bool {
        *self == Placement::OffSite
    }

    /// The stable name in JSON (`placement` on the dashboard's API).
    pub fn as_str(&self) -> &'static str {
        match self {
            Placement::OffSite => "off_site",
            Placement::SameDisk => "same_disk",
            Placement::UsbDisk(_) => "usb_disk",
            Placement::Unreachable => "unreachable",
        }
    }

    /// Where the copies are, for people: "off-site", "a second copy on this
    /// box's disk", "on the USB disk BACKUP", "unreachable".
    pub fn describe(&self) -> String {
        match self {
            Placement::OffSite => "off-site".to_string(),
            Placement::SameDisk => "a second copy on this box's disk".to_string(),
            Placement::UsbDisk(label) => format!("on the USB disk {label}"),
            Placement::Unreachable => "unreachable".to_string(),
        }
    }
}

/// One mounted file system, as `/proc/self/mountinfo` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the file system's device (`st_dev`).
    pub device: (u32, u32),
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// `/dev/sda1`, `server:/export`, `tmpfs`…
    pub source: String,
}

/// What the placement of a folder depends on, read from Linux.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    pub mounts: Vec<Mount>,
    /// Disk labels and the device node each names (`/dev/disk/by-label`).
    pub labels: Vec<(String, PathBuf)>,
    /// Devices (`major:minor`) that sit on a USB bus (`/sys/dev/block`).
    pub usb_devices: Vec<(u32, u32)>,
}

/// File systems that live on another host.
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "ceph",
    "glusterfs",
    "davfs",
    "fuse.rclone",
    "fuse.s3fs",
];

/// The placement of the destination `remote` for an appliance whose data
/// folder is `data_dir`. Reads the folder's metadata and the mounts.
pub fn placement(remote: &RemoteSettings, data_dir: &Path) -> Placement {
    match remote {
        RemoteSettings::S3 { .. } => Placement::OffSite,
        RemoteSettings::Dir { path } => {
            let folder = std::fs::metadata(path).ok().filter(|meta| meta.is_dir());
            let data = std::fs::metadata(data_dir).ok();
            match (folder, data) {
                (Some(folder), Some(data)) => placement_of_folder(
                    device_numbers(folder.dev()),
                    device_numbers(data.dev()),
                    &Mounts::read(),
                ),
                (Some(folder), None) => {
                    placement_of_folder(device_numbers(folder.dev()), (0, 0), &Mounts::read())
                }
                // The default folder under the data folder is made on
                // first use: missing there, it is still this box's disk.
                (None, _) if path.starts_with(data_dir) => Placement::SameDisk,
                (None, _) => Placement::Unreachable,
            }
        }
    }
}

/// The rule for a folder that exists, on the device `folder` (of
/// `st_dev`), for a data folder on `data`.
pub fn placement_of_folder(folder: (u32, u32), data: (u32, u32), mounts: &Mounts) -> Placement {
    let mount = mounts.mounts.iter().find(|mount| mount.device == folder);
    if let Some(mount) = mount {
        if NETWORK_FS.contains(&mount.fs_type.as_str()) {
            return Placement::OffSite;
        }
    }
    if folder == data {
        return Placement::SameDisk;
    }
    if !mounts.usb_devices.contains(&folder) {
        return Placement::SameDisk;
    }
    let source = mount.map(|mount| mount.source.as_str()).unwrap_or("");
    let label = mounts
        .labels
        .iter()
        .find(|(_, node)| node.as_os_str() == source)
        .map(|(label, _)| label.clone());
    Placement::UsbDisk(label.unwrap_or_else(|| {
        source
            .rsplit('/')
            .next()
            .filter(|name| !name.is_empty())
            .unwrap_or("without a label")
            .to_string()
    }))
}

/// `st_dev` as (major, minor), the way glibc splits it.
fn device_numbers(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

impl Mounts {
    /// Reads the mounts, labels and USB devices; what cannot be read is
    /// left out (a folder then counts as on this box's disk, never off-site).
    pub fn read() -> Mounts {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| parse_mountinfo(&text))
            .unwrap_or_default();
        let labels = std::fs::read_dir("/dev/disk/by-label")
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| {
                        let node = std::fs::canonicalize(entry.path()).ok()?;
                        Some((unescape_label(&entry.file_name().to_string_lossy()), node))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let usb_devices = mounts
            .iter()
            .map(|mount| mount.device)
            .filter(|&(major, minor)| on_usb(major, minor))
            .collect();
        Mounts {
            mounts,
            labels,
            usb_devices,
        }
    }
}

/// Whether the block device `major:minor` hangs off a USB bus: its
/// `/sys/dev/block` link runs through a `usb` node.
fn on_usb(major: u32, minor: u32) -> bool {
    std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
        .map(|path| {
            path.components()
                .any(|part| part.as_os_str().to_string_lossy().starts_with("usb"))
        })
        .unwrap_or(false)
}

/// `/dev/disk/by-label` escapes spaces and slashes as `\x20`, `\x2f`.
fn unescape_label(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(at) = rest.find("\\x") {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 2..at + 4);
        match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The lines of `/proc/self/mountinfo`: `36 35 98:0 /mnt1 /mnt2 rw,noatime
/// master:1 - ext3 /dev/root rw,errors=continue` (fields before `-` vary).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let dash = fields.iter().position(|field| *field == "-")?;
            Some(Mount {
                device: (major.parse().ok()?, minor.parse().ok()?),
                mount_point: PathBuf::from(unescape_octal(fields.get(4)?)),
                fs_type: fields.get(dash + 1)?.to_string(),
                source: unescape_octal(fields.get(dash + 2)?),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\040` and so on.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 179:2 / / rw,noatime - ext4 /dev/mmcblk0p2 rw
23 22 179:3 / /data rw,noatime - ext4 /dev/mmcblk0p3 rw
30 22 8:1 / /media/My\\040Backup rw - exfat /dev/sda1 rw
31 22 0:50 / /mnt/nas rw - nfs4 nas.local:/export rw,vers=4.2
32 22 8:17 / /mnt/stick rw - vfat /dev/sdb1 rw
";

    fn mounts() -> Mounts {
        Mounts {
            mounts: parse_mountinfo(MOUNTINFO),
            labels: vec![("My Backup".into(), PathBuf::from("/dev/sda1"))],
            usb_devices: vec![(8, 1), (8, 17)],
        }
    }

    #[test]
    fn mountinfo_lines_are_read_with_escapes() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[2].mount_point, PathBuf::from("/media/My Backup"));
        assert_eq!(mounts[2].device, (8, 1));
        assert_eq!(mounts[3].fs_type, "nfs4");
        assert_eq!(mounts[3].source, "nas.local:/export");
    }

    #[test]
    fn each_folder_gets_its_placement() {
        let data = (179, 3);
        let cases = [
            ((179, 3), Placement::SameDisk),
            // The SD card's root partition: another partition, same box.
            ((179, 2), Placement::SameDisk),
            ((8, 1), Placement::UsbDisk("My Backup".into())),
            ((8, 17), Placement::UsbDisk("sdb1".into())),
            ((0, 50), Placement::OffSite),
        ];
        for (folder, expected) in cases {
            assert_eq!(
                placement_of_folder(folder, data, &mounts()),
                expected,
                "{folder:?}"
            );
        }
    }

    #[test]
    fn s3_is_off_site_and_a_missing_folder_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let s3: RemoteSettings = serde_json::from_value(serde_json::json!({
            "kind": "s3", "endpoint": "https://s3.example", "region": "x", "bucket": "b",
            "access_key_id": "k", "secret_access_key": "s"
        }))
        .unwrap();
        assert_eq!(placement(&s3, dir.path()), Placement::OffSite);
        let missing = RemoteSettings::Dir {
            path: dir.path().join("not-mounted/backups"),
        };
        assert_eq!(
            placement(&missing, &dir.path().join("data")),
            Placement::Unreachable
        );
        let not_made_yet = RemoteSettings::Dir {
            path: dir.path().join("remote"),
        };
        assert_eq!(placement(&not_made_yet, dir.path()), Placement::SameDisk);
        let beside = RemoteSettings::Dir {
            path: dir.path().to_path_buf(),
        };
        assert_eq!(placement(&beside, dir.path()), Placement::SameDisk);
    }

    #[test]
    fn labels_are_unescaped() {
        assert_eq!(unescape_label("My\\x20Backup"), "My Backup");
        assert_eq!(unescape_label("a\\x2fb"), "a/b");
        assert_eq!(unescape_label("odd\\xZZ"), "odd\\xZZ");
    }

    #[test]
    fn words_never_call_a_local_copy_off_site() {
        for placement in [
            Placement::SameDisk,
            Placement::UsbDisk("B".into()),
            Placement::Unreachable,
        ] {
            assert!(!placement.is_off_site());
            assert!(!placement.describe().contains("off-site"));
        }
        assert_eq!(
            Placement::UsbDisk("B".into()).describe(),
            "on the USB disk B"
        );
    }
}
