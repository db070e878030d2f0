//! Init's side of firmware updates: mounting the boot partition, the trial check and
//! commit after an update, and the one-shot tryboot reboot.
//!
//! Owns: when the checks run and what happens after them (commit, or record the
//! failure and reboot to the old slot). Must not touch: the bundle format or the
//! slot files (that is [`crate::update`]).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::console::{log, set_status};
use super::{mounts, power, watchdog};
use crate::update::{self, boot};

/// How long a new version gets to answer its health check before it counts as failed.
const TRIAL_DEADLINE: Duration = Duration::from_secs(120);

static BOOT_MOUNTED: AtomicBool = AtomicBool::new(false);

/// How long a trial boot may wait for its data partition before it goes back.
pub const TRIAL_DATA_WAIT: Duration = Duration::from_secs(120);

/// Whether a boot still waiting for its data partition after `waited` should go
/// back to the committed slot: only on trial (a new kernel that cannot mount the
/// data must not hold the box; the old slot then waits for the disk as before).
/// `on_trial` is asked only once the wait is over.
pub fn trial_gives_up_without_data(waited: Duration, on_trial: impl FnOnce() -> bool) -> bool {
    waited >= TRIAL_DATA_WAIT && on_trial()
}

/// After the data partition is mounted: mounts the boot partition, settles the record
/// of the last update (and logs a failed one), and starts the trial check when this
/// boot is a trial. Best-effort: without a boot partition updates are just off.
pub fn after_data_mounted(listen: SocketAddr) {
    match mounts::find_boot_partition() {
        Some(name) => match mounts::mount_boot(&name, boot::BOOT_MOUNT) {
            Ok(()) => {
                BOOT_MOUNTED.store(true, Ordering::SeqCst);
                let slot = boot::committed_slot(Path::new(boot::BOOT_MOUNT));
                log(
                    "boot",
                    &format!(
                        "/dev/{name} mounted on {}; committed slot {}",
                        boot::BOOT_MOUNT,
                        slot.map_or("none", boot::Slot::dir_name)
                    ),
                );
            }
            Err(err) => log("boot", &format!("{err}; updates are off")),
        },
        None => log(
            "boot",
            &format!(
                "no partition labelled {}; updates are off",
                mounts::BOOT_LABEL
            ),
        ),
    }
    let trial = boot::booted_on_trial();
    if let Some(sentence) = update::settle_record(Path::new(update::RECORD), trial) {
        log("update", &sentence);
        set_status("update", &sentence);
    }
    if trial && BOOT_MOUNTED.load(Ordering::SeqCst) {
        log(
            "update",
            &format!(
                "version {} is on trial; checking it",
                update::running_version()
            ),
        );
        // The watchdog stops being petted if the check stops reporting (a hang).
        watchdog::trial_started();
        let spawned = std::thread::Builder::new()
            .name("trial".into())
            .spawn(move || trial_thread(listen));
        if let Err(err) = spawned {
            fail_trial(&format!("the check could not start ({err})"));
        }
    }
}

fn trial_thread(listen: SocketAddr) {
    match trial_health(listen) {
        Ok(slot) => match boot::commit(Path::new(boot::BOOT_MOUNT), slot) {
            Ok(()) => {
                watchdog::trial_over();
                record("committed", "");
                log(
                    "update",
                    &format!(
                        "version {} passed its checks and is committed in {}",
                        update::running_version(),
                        slot.dir_name()
                    ),
                );
            }
            Err(err) => fail_trial(&format!("config.txt could not be rewritten ({err})")),
        },
        Err(reason) => fail_trial(&reason),
    }
}

/// The checks: the slot is known, no test switch says fail, the data partition is
/// mounted, and the web server answers `/healthz` (store opened, engine started).
fn trial_health(listen: SocketAddr) -> Result<boot::Slot, String> {
    let boot_dir = Path::new(boot::BOOT_MOUNT);
    let slot = boot::running_slot(boot_dir, true).ok_or("tryboot.txt names no slot")?;
    let switches = update::test_switches(&boot_dir.join(slot.dir_name()));
    if switches.hang {
        log(
            "update",
            "test switch: this trial hangs; the hardware watchdog resets the board (or the launcher's timeout, without one)",
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Some(reason) = switches.health_failure {
        return Err(reason);
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(mounts::DATA_MOUNT))
    {
        return Err("the data partition is not mounted".into());
    }
    let port = SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()));
    let deadline = Instant::now() + TRIAL_DEADLINE;
    while Instant::now() < deadline {
        watchdog::trial_alive();
        if healthz_ok(port) {
            return Ok(slot);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!(
        "the web server did not answer within {} s",
        TRIAL_DEADLINE.as_secs()
    ))
}

fn healthz_ok(address: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Records how the trial went (keeping the installed version and who installed it).
fn record(result: &str, message: &str) {
    let path = Path::new(update::RECORD);
    let (version, from) = update::read_record(path).map_or_else(
        || (update::running_version().to_string(), "unknown".to_string()),
        |r| (r.version, r.from),
    );
    let entry = update::LastUpdate {
        version,
        from,
        result: result.into(),
        message: message.into(),
        at: crate::ids::now_secs(),
    };
    if let Err(err) = update::write_record(path, &entry) {
        log("update", &format!("cannot write {}: {err}", path.display()));
    }
}

/// Records the failure and reboots without the tryboot flag: the old slot boots.
fn fail_trial(reason: &str) {
    log(
        "update",
        &format!(
            "version {} failed its check: {reason}; going back",
            update::running_version()
        ),
    );
    record("failed", reason);
    // Going back is a clean reboot; the watchdog is petted through it.
    watchdog::trial_over();
    // To ourselves (init), with the signal init waits for to reboot.
    let _ = rustix::process::kill_process(
        rustix::process::getpid(),
        power::PowerAction::Reboot.signal(),
    );
}

/// At shutdown, before the data partition is unmounted (a failure is recorded
/// there): leaves the tryboot marker on the qemu-virt
/// board when an update asked for a trial, and unmounts the boot partition. Returns
/// true when the reboot must carry the one-shot tryboot flag (a real Pi).
pub fn before_power_off(rebooting: bool) -> bool {
    let mounted = BOOT_MOUNTED.load(Ordering::SeqCst);
    let wanted = rebooting && mounted && Path::new(update::TRYBOOT_REQUEST).exists();
    let qemu = is_qemu();
    if wanted && qemu {
        let marker = Path::new(boot::BOOT_MOUNT).join(boot::QEMU_TRYBOOT_MARKER);
        match std::fs::write(&marker, b"1\n")
            .and_then(|()| crate::update::bundle::sync_dir(Path::new(boot::BOOT_MOUNT)))
        {
            Ok(()) => log("shutdown", "tryboot marker left for the launcher"),
            Err(err) => {
                log(
                    "shutdown",
                    &format!("cannot write the tryboot marker: {err}"),
                );
                record(
                    "failed",
                    &format!("the boot partition could not be written ({err})"),
                );
            }
        }
    }
    if mounted {
        match mounts::unmount(boot::BOOT_MOUNT) {
            Ok(()) => log("shutdown", &format!("{} unmounted", boot::BOOT_MOUNT)),
            Err(err) => log("shutdown", &err.to_string()),
        }
    }
    wanted && !qemu
}

fn is_qemu() -> bool {
    let model = std::fs::read_to_string("/proc/device-tree/compatible").unwrap_or_default();
    crate::device::board::detect(&model) == Some("qemu-virt")
}

/// Reboots with the Pi firmware's one-shot tryboot flag (`reboot "0 tryboot"`).
pub fn reboot_tryboot() {
    let arg = c"0 tryboot";
    // SAFETY: reboot(2) RESTART2 with a NUL-terminated argument, as PID 1.
    unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1,
            libc::LINUX_REBOOT_MAGIC2,
            libc::LINUX_REBOOT_CMD_RESTART2,
            arg.as_ptr(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_sector_is_told_by_its_label() {
        let mut sector = vec![0u8; 512];
        sector[0x47..0x52].copy_from_slice(b"PIBOOT     ");
        sector[0x52..0x5A].copy_from_slice(b"FAT32   ");
        assert!(mounts::is_boot_sector(&sector));
        sector[0x47..0x52].copy_from_slice(b"OTHER      ");
        assert!(!mounts::is_boot_sector(&sector));
        assert!(!mounts::is_boot_sector(&sector[..64]));
    }

    #[test]
    fn healthz_is_checked_over_a_real_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                .expect("write");
        });
        assert!(healthz_ok(address));
        server.join().expect("server");
        assert!(!healthz_ok(address), "nobody listens any more");
    }

    #[test]
    fn only_a_trial_gives_up_waiting_for_its_data_and_only_after_the_wait() {
        let early = TRIAL_DATA_WAIT - Duration::from_secs(1);
        assert!(!trial_gives_up_without_data(early, || panic!(
            "asked too early"
        )));
        assert!(trial_gives_up_without_data(TRIAL_DATA_WAIT, || true));
        assert!(!trial_gives_up_without_data(TRIAL_DATA_WAIT * 10, || false));
    }
}
