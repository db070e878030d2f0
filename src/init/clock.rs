//! The wall clock of init mode. A Pi has no real-time clock, so at boot the clock
//! starts near 1970 unless something sets it.
//!
//! Owns: choosing the time to restore (pure: the latest of the build time, the data
//! filesystem's last write and the clock saved at shutdown), setting the clock, and
//! saving it to the data partition at shutdown and periodically (so a power cut
//! loses little).
//! Must not touch: time synchronisation over the network (sntp.rs) and anything else
//! on the data partition.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("cannot set the system clock: {0}")]
    Set(std::io::Error),
    #[error("cannot save the clock to {path}: {source}")]
    Save {
        path: String,
        source: std::io::Error,
    },
}

/// The time this binary was built (from SOURCE_DATE_EPOCH at build time), a floor for
/// the clock: the box cannot be running before it was built.
pub fn build_time() -> u64 {
    option_env!("SOURCE_DATE_EPOCH")
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_735_689_600) // 2025-01-01, when built without SOURCE_DATE_EPOCH
}

/// The time to restore at boot, in seconds since the epoch: the latest known point,
/// and never earlier than the current clock.
pub fn restore_point(current: u64, candidates: &[u64]) -> u64 {
    candidates.iter().copied().fold(current, u64::max)
}

/// Parses the saved clock file: decimal seconds since the epoch.
pub fn parse_saved(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Now, in seconds since the epoch (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sets the system clock to `unix_nanos`.
pub fn set_clock_nanos(unix_nanos: i128) -> Result<(), ClockError> {
    let spec = rustix::time::Timespec {
        tv_sec: unix_nanos.div_euclid(1_000_000_000) as _,
        tv_nsec: unix_nanos.rem_euclid(1_000_000_000) as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, spec)
        .map_err(|errno| ClockError::Set(errno.into()))
}

/// Reads the clock saved in `path`, if any.
pub fn read_saved(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| parse_saved(&t))
}

/// Writes the current time to `path` (write to a temporary file, fsync, rename).
pub fn save(path: &Path) -> Result<(), ClockError> {
    let err = |source| ClockError::Save {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    writeln!(file, "{}", now()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_point_is_the_latest_and_never_goes_back() {
        assert_eq!(
            restore_point(5, &[1_700_000_000, 1_600_000_000]),
            1_700_000_000
        );
        assert_eq!(
            restore_point(1_800_000_000, &[1_700_000_000]),
            1_800_000_000
        );
        assert_eq!(restore_point(5, &[]), 5);
    }

    #[test]
    fn saved_clock_parsing() {
        assert_eq!(parse_saved("1700000000\n"), Some(1_700_000_000));
        assert_eq!(parse_saved("yesterday"), None);
        assert_eq!(parse_saved(""), None);
    }

    #[test]
    fn save_then_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("firmware").join("clock");
        save(&path).expect("saved");
        let saved = read_saved(&path).expect("readable");
        assert!(saved.abs_diff(now()) <= 2);
    }

    #[test]
    fn build_time_is_after_2024() {
        assert!(build_time() > 1_700_000_000);
    }
}
