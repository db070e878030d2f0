//! Growing the card's data partition to fill the card, on the first boot after flashing.
//!
//! The image's data partition is small so the image stays small; a card is larger.
//! Owns: the plan (pure: the MBR bytes and the partition's place in, the new size
//! out), rewriting that one MBR entry, telling the kernel (BLKPG), and growing the
//! mounted ext4 filesystem online (EXT4_IOC_RESIZE_FS).
//! Must not touch: USB disks (their owner partitioned them), GPT disks, any partition
//! that is not the last one, or anything but the one partition entry.

use rustix::ioctl::{ioctl, opcode, Opcode, Setter, Updater};
use std::io::{Read, Seek, SeekFrom, Write};

/// Grow only when at least this much (in 512-byte sectors: 64 MiB) would be gained.
pub const MIN_GAIN_SECTORS: u64 = 64 * 2048;
/// Partitions end on a 1 MiB boundary.
const ALIGN_SECTORS: u64 = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrowError {
    #[error("the disk has no MBR partition table (no 0x55AA signature)")]
    NoMbr,
    #[error("the disk uses GPT; only MBR images are grown")]
    Gpt,
    #[error("partition {0} is not a primary MBR partition (1 to 4)")]
    NotPrimary(u32),
    #[error("the partition table does not match what the kernel reports for partition {0}")]
    Mismatch(u32),
    #[error("partition {0} is not the last partition on the disk")]
    NotLast(u32),
}

fn entry_offset(number: u32) -> usize {
    446 + 16 * (number as usize - 1)
}

fn u32_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([
        bytes[at],
        bytes[at + 1],
        bytes[at + 2],
        bytes[at + 3],
    ]))
}

/// Decides the new size (in sectors) of MBR partition `number`, which the kernel
/// reports at `start` with `size` sectors on a disk of `disk_sectors`. `Ok(None)`
/// when growing would gain less than [`MIN_GAIN_SECTORS`].
pub fn plan(
    mbr: &[u8],
    number: u32,
    start: u64,
    size: u64,
    disk_sectors: u64,
) -> Result<Option<u64>, GrowError> {
    if mbr.len() < 512 || mbr[510..512] != [0x55, 0xAA] {
        return Err(GrowError::NoMbr);
    }
    if (1..=4).any(|n| mbr[entry_offset(n) + 4] == 0xEE) {
        return Err(GrowError::Gpt);
    }
    if !(1..=4).contains(&number) {
        return Err(GrowError::NotPrimary(number));
    }
    let entry = entry_offset(number);
    if u32_at(mbr, entry + 8) != start || u32_at(mbr, entry + 12) != size {
        return Err(GrowError::Mismatch(number));
    }
    let after_ours = (1..=4)
        .filter(|&n| n != number && mbr[entry_offset(n) + 4] != 0)
        .any(|n| u32_at(mbr, entry_offset(n) + 8) > start);
    if after_ours {
        return Err(GrowError::NotLast(number));
    }
    let end_limit = disk_sectors.min(start + u64::from(u32::MAX));
    let new_end = end_limit / ALIGN_SECTORS * ALIGN_SECTORS;
    let new_size = new_end.saturating_sub(start);
    if new_size < size + MIN_GAIN_SECTORS {
        return Ok(None);
    }
    Ok(Some(new_size))
}

/// Writes the new size into partition `number`'s entry (CHS fields are left as they
/// are: LBA-addressed since decades).
pub fn set_size(mbr: &mut [u8], number: u32, new_size: u64) {
    let at = entry_offset(number) + 12;
    let size = u32::try_from(new_size).unwrap_or(u32::MAX);
    mbr[at..at + 4].copy_from_slice(&size.to_le_bytes());
}

#[derive(Debug, thiserror::Error)]
pub enum GrowIoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plan(#[from] GrowError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GrowIoError {
    let what = what.into();
    move |source| GrowIoError::Io { what, source }
}

fn sysfs_number(path: &str) -> Result<u64, GrowIoError> {
    let text = std::fs::read_to_string(path).map_err(io(format!("cannot read {path}")))?;
    text.trim().parse().map_err(|_| {
        io(format!("{path} is not a number"))(std::io::Error::other(text.trim().to_string()))
    })
}

/// `struct blkpg_partition` of <linux/blkpg.h>.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// `BLKPG` of <linux/fs.h> (`_IO(0x12, 105)`).
const BLKPG: Opcode = opcode::none(0x12, 105);
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;
/// `EXT4_IOC_RESIZE_FS`: `_IOW('f', 16, __u64)`.
const EXT4_IOC_RESIZE_FS: Opcode = opcode::write::<u64>(b'f', 16);

/// Grows partition `name` (e.g. `mmcblk0p2`) to the end of its disk if it is the last
/// MBR partition and the disk has room. Returns the old and new size in bytes, or
/// `None` when there was nothing to do. Must run before the partition is mounted.
pub fn grow_partition(name: &str) -> Result<Option<(u64, u64)>, GrowIoError> {
    let part_dir = format!("/sys/class/block/{name}");
    let disk_dir = std::fs::canonicalize(format!("{part_dir}/.."))
        .map_err(io(format!("cannot find the disk of {name}")))?;
    let disk = disk_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = sysfs_number(&format!("{part_dir}/partition"))? as u32;
    let start = sysfs_number(&format!("{part_dir}/start"))?;
    let size = sysfs_number(&format!("{part_dir}/size"))?;
    let disk_sectors = sysfs_number(&format!("{}/size", disk_dir.display()))?;
    let device = format!("/dev/{disk}");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device)
        .map_err(io(format!("cannot open {device}")))?;
    let mut mbr = [0u8; 512];
    file.read_exact(&mut mbr)
        .map_err(io(format!("cannot read the MBR of {device}")))?;
    let Some(new_size) = plan(&mbr, number, start, size, disk_sectors)? else {
        return Ok(None);
    };
    set_size(&mut mbr, number, new_size);
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    file.write_all(&mbr)
        .map_err(io(format!("cannot write the MBR of {device}")))?;
    file.sync_all()
        .map_err(io(format!("cannot sync {device}")))?;
    let mut partition = BlkpgPartition {
        start: (start * 512) as libc::c_longlong,
        length: (new_size * 512) as libc::c_longlong,
        pno: number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut partition as *mut BlkpgPartition).cast(),
    };
    // SAFETY: BLKPG takes a blkpg_ioctl_arg, which `arg` is, pointing at a
    // blkpg_partition that lives until the call returns.
    unsafe { ioctl(&file, Updater::<BLKPG, BlkpgIoctlArg>::new(&mut arg)) }
        .map_err(|errno| io(format!("BLKPG resize of {name}"))(errno.into()))?;
    Ok(Some((size * 512, new_size * 512)))
}

/// Grows the ext4 filesystem mounted at `mount_point` to fill its (grown) partition.
pub fn grow_filesystem(mount_point: &str, partition_bytes: u64) -> Result<(), GrowIoError> {
    let dir = std::fs::File::open(mount_point).map_err(io(format!("cannot open {mount_point}")))?;
    let stat = rustix::fs::fstatvfs(&dir).map_err(|errno| io("statvfs")(errno.into()))?;
    let block_size = stat.f_frsize.max(1);
    let blocks: u64 = partition_bytes / block_size;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 block count, which `blocks` is.
    unsafe { ioctl(&dir, Setter::<EXT4_IOC_RESIZE_FS, u64>::new(blocks)) }
        .map_err(|errno| io(format!("online resize of {mount_point}"))(errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MBR like image/build's: p1 at 1 MiB (128 MiB, FAT32), p2 after it (256 MiB).
    fn image_mbr() -> Vec<u8> {
        let mut mbr = vec![0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        for (n, kind, start, size) in [
            (1u32, 0x0C, 2048u32, 262_144u32),
            (2, 0x83, 264_192, 524_288),
        ] {
            let at = entry_offset(n);
            mbr[at + 4] = kind;
            mbr[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
            mbr[at + 12..at + 16].copy_from_slice(&size.to_le_bytes());
        }
        mbr
    }

    const GIB: u64 = 2 * 1024 * 1024; // sectors

    #[test]
    fn grows_the_last_partition_to_the_aligned_end() {
        let mbr = image_mbr();
        let disk = 32 * GIB + 1000; // a card whose size is not a MiB multiple
        let new_size = plan(&mbr, 2, 264_192, 524_288, disk)
            .expect("plan")
            .expect("grows");
        assert_eq!((264_192 + new_size) % ALIGN_SECTORS, 0);
        assert!(264_192 + new_size <= disk);
        assert!(disk - (264_192 + new_size) < ALIGN_SECTORS);
        let mut grown = mbr.clone();
        set_size(&mut grown, 2, new_size);
        assert_eq!(u32_at(&grown, entry_offset(2) + 12), new_size);
        assert_eq!(&grown[..entry_offset(2) + 12], &mbr[..entry_offset(2) + 12]);
        assert_eq!(&grown[entry_offset(2) + 16..], &mbr[entry_offset(2) + 16..]);
        // Once grown, there is nothing more to do.
        assert_eq!(plan(&grown, 2, 264_192, new_size, disk), Ok(None));
    }

    #[test]
    fn the_ioctl_numbers_are_the_kernels() {
        assert_eq!(u64::from(BLKPG), 0x1269);
        assert_eq!(u64::from(EXT4_IOC_RESIZE_FS), 0x4008_6610);
    }

    #[test]
    fn small_gains_are_skipped() {
        let disk = 264_192 + 524_288 + 1000;
        assert_eq!(plan(&image_mbr(), 2, 264_192, 524_288, disk), Ok(None));
    }

    #[test]
    fn refuses_what_it_must_not_touch() {
        let mbr = image_mbr();
        assert_eq!(
            plan(&mbr, 1, 2048, 262_144, 32 * GIB),
            Err(GrowError::NotLast(1))
        );
        assert_eq!(
            plan(&mbr, 2, 264_192, 1, 32 * GIB),
            Err(GrowError::Mismatch(2))
        );
        assert_eq!(plan(&mbr, 5, 0, 0, 32 * GIB), Err(GrowError::NotPrimary(5)));
        let mut no_signature = mbr.clone();
        no_signature[510] = 0;
        assert_eq!(
            plan(&no_signature, 2, 264_192, 524_288, 32 * GIB),
            Err(GrowError::NoMbr)
        );
        let mut gpt = mbr.clone();
        gpt[entry_offset(1) + 4] = 0xEE;
        assert_eq!(
            plan(&gpt, 2, 264_192, 524_288, 32 * GIB),
            Err(GrowError::Gpt)
        );
    }

    #[test]
    fn huge_disks_stop_at_the_mbr_limit() {
        let disk = 8 * 1024 * GIB; // 8 TiB
        let new_size = plan(&image_mbr(), 2, 264_192, 524_288, disk)
            .expect("plan")
            .expect("grows");
        assert!(new_size <= u64::from(u32::MAX));
    }
}
