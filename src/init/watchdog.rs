//! The hardware watchdog of init mode: `bcm2835-wdt` on a Pi, the `i6300esb` PCI
//! watchdog in QEMU, both as `/dev/watchdog`.
//!
//! Owns: opening the device with its timeout (one `WDIOC_SETTIMEOUT` ioctl), petting it
//! (any write but `V` is a keepalive), the magic close before a power-off, and the rule
//! that decides whether init may pet it ([`may_pet`], pure). Must not touch: what a
//! trial checks or when it commits (that is [`super::slots`]); the trial only reports
//! that it is alive ([`trial_alive`]) and that it is over ([`trial_over`]).
//!
//! Init pets the watchdog from its supervision loop, which wakes at least every 5 s.
//! A kernel or init that stops running stops the petting, and the board resets. During
//! a trial boot init also stops petting when the trial check stops reporting (a hang:
//! [`TRIAL_STALL`]) or has not concluded long after its own deadline ([`TRIAL_LIMIT`]):
//! the board then resets, the Pi's one-shot tryboot flag is gone, and the committed
//! (old) slot boots. The watchdog is opened only once the data partition is mounted:
//! the steps before it (a journal replay, growing the partition) may block for longer
//! than any hardware timeout. A poweroff disarms it first (magic close), so the board
//! stays off; a reboot keeps it armed, so a shutdown that hangs still ends in a reset.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The device both drivers register.
pub const DEVICE: &str = "/dev/watchdog";
/// The reset timeout asked for: the most `bcm2835-wdt` can count (about 15.9 s).
pub const TIMEOUT_SECS: u32 = 15;
/// A trial that has not reported for this long is hung.
pub const TRIAL_STALL: Duration = Duration::from_secs(20);
/// A trial still running this long after it started is hung, whatever it reports
/// (its own deadline for the web check is 120 s).
pub const TRIAL_LIMIT: Duration = Duration::from_secs(180);

/// The open watchdog.
pub struct Watchdog {
    file: File,
    /// The timeout in force (the driver's own when the ioctl was refused).
    pub timeout_secs: Option<u32>,
}

impl Watchdog {
    /// Opens the watchdog (which starts it) and asks for `timeout_secs`.
    pub fn open(path: &str, timeout_secs: u32) -> std::io::Result<Watchdog> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let timeout_secs = set_timeout(&file, timeout_secs).ok();
        Ok(Watchdog { file, timeout_secs })
    }

    /// A keepalive: any byte but `V`.
    pub fn pet(&mut self) -> std::io::Result<()> {
        self.file.write_all(b"\0")
    }

    /// The magic close: `V` then close, which stops the timer (drivers built without
    /// `nowayout`, as Debian's are).
    pub fn disarm(mut self) -> std::io::Result<()> {
        self.file.write_all(b"V")
    }
}

/// `WDIOC_SETTIMEOUT` (`_IOWR('W', 6, int)`): the kernel answers with the timeout it
/// set.
fn set_timeout(file: &File, seconds: u32) -> std::io::Result<u32> {
    use rustix::ioctl::{ioctl, opcode, Updater};
    const WDIOC_SETTIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<libc::c_int>(b'W', 6);
    let mut value = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one int, which `value` is.
    unsafe {
        ioctl(
            file,
            Updater::<WDIOC_SETTIMEOUT, libc::c_int>::new(&mut value),
        )?;
    }
    Ok(u32::try_from(value).unwrap_or(0))
}

/// How a trial looks to the watchdog, in milliseconds since [`clock_ms`]'s start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trial {
    /// No trial on this boot, or it is over (committed or failed).
    None,
    /// Running: when it started and when it last reported.
    Running { started_ms: u64, last_ms: u64 },
}

/// Whether init may pet the watchdog at `now_ms`. Pure.
pub fn may_pet(trial: Trial, now_ms: u64) -> bool {
    match trial {
        Trial::None => true,
        Trial::Running {
            started_ms,
            last_ms,
        } => {
            now_ms.saturating_sub(last_ms) < TRIAL_STALL.as_millis() as u64
                && now_ms.saturating_sub(started_ms) < TRIAL_LIMIT.as_millis() as u64
        }
    }
}

/// Sentinel of [`TRIAL_STARTED`] when no trial runs.
const NO_TRIAL: u64 = u64::MAX;
static TRIAL_STARTED: AtomicU64 = AtomicU64::new(NO_TRIAL);
static TRIAL_LAST: AtomicU64 = AtomicU64::new(0);
static OPEN: Mutex<Option<Watchdog>> = Mutex::new(None);
/// Set once, when init starts: the origin of [`clock_ms`].
static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Milliseconds on a monotonic clock.
fn clock_ms() -> u64 {
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The trial check has started (called before the watchdog opens, too).
pub fn trial_started() {
    let now = clock_ms();
    TRIAL_LAST.store(now, Ordering::SeqCst);
    TRIAL_STARTED.store(now, Ordering::SeqCst);
}

/// The trial check is alive (it calls this between its steps).
pub fn trial_alive() {
    TRIAL_LAST.store(clock_ms(), Ordering::SeqCst);
}

/// The trial is over: committed, or failed (init then reboots on its own).
pub fn trial_over() {
    TRIAL_STARTED.store(NO_TRIAL, Ordering::SeqCst);
}

fn trial_state() -> Trial {
    match TRIAL_STARTED.load(Ordering::SeqCst) {
        NO_TRIAL => Trial::None,
        started_ms => Trial::Running {
            started_ms,
            last_ms: TRIAL_LAST.load(Ordering::SeqCst),
        },
    }
}

/// Opens the watchdog, best-effort (a board without one just runs without it).
pub fn arm() {
    match Watchdog::open(DEVICE, TIMEOUT_SECS) {
        Ok(dog) => {
            let timeout = dog
                .timeout_secs
                .map_or("the driver's default timeout".to_string(), |s| {
                    format!("a {s} s timeout")
                });
            super::console::log("watchdog", &format!("{DEVICE} armed with {timeout}"));
            *OPEN.lock().unwrap_or_else(PoisonError::into_inner) = Some(dog);
        }
        Err(err) => super::console::log(
            "watchdog",
            &format!("no hardware watchdog ({DEVICE}: {err}); running without one"),
        ),
    }
}

/// Pets the watchdog when [`may_pet`] allows; says once when it stops.
pub fn pet() {
    static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(dog) = open.as_mut() else {
        return;
    };
    if may_pet(trial_state(), clock_ms()) {
        if let Err(err) = dog.pet() {
            super::console::log("watchdog", &format!("cannot pet {DEVICE}: {err}"));
        }
    } else if !STOPPED.swap(true, Ordering::SeqCst) {
        super::console::log(
            "watchdog",
            "the trial stopped answering; no longer petting the watchdog, so the board resets into the previous version",
        );
    }
}

/// Before a power-off: the magic close, so the watchdog does not wake the board.
pub fn disarm() {
    let Some(dog) = OPEN.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return;
    };
    match dog.disarm() {
        Ok(()) => super::console::log("watchdog", "disarmed for the power-off"),
        Err(err) => super::console::log("watchdog", &format!("cannot disarm: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn petting_stops_when_a_trial_stalls_or_runs_too_long() {
        assert!(may_pet(Trial::None, 0));
        assert!(may_pet(Trial::None, u64::MAX));
        let stall = TRIAL_STALL.as_millis() as u64;
        let limit = TRIAL_LIMIT.as_millis() as u64;
        let running = |started_ms, last_ms| Trial::Running {
            started_ms,
            last_ms,
        };
        assert!(may_pet(running(1000, 1000), 1000));
        assert!(may_pet(running(1000, 5000), 5000 + stall - 1));
        assert!(!may_pet(running(1000, 5000), 5000 + stall), "stalled");
        assert!(
            !may_pet(running(1000, 1000 + limit), 1000 + limit),
            "alive but over the limit"
        );
        assert!(may_pet(running(1000, 1000 + limit - 2), 1000 + limit - 1));
    }

    #[test]
    fn the_trial_reports_drive_the_state() {
        trial_started();
        assert!(matches!(trial_state(), Trial::Running { .. }));
        assert!(may_pet(trial_state(), clock_ms()));
        trial_alive();
        trial_over();
        assert_eq!(trial_state(), Trial::None);
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        assert!(Watchdog::open("/nonexistent/watchdog", TIMEOUT_SECS).is_err());
    }

    #[test]
    fn the_timeout_ioctl_is_refused_by_a_file_that_is_no_watchdog() {
        let file = tempfile::tempfile().expect("tempfile");
        assert!(set_timeout(&file, TIMEOUT_SECS).is_err());
    }
}
