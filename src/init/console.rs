//! Serial console log and the status file of init mode.
//!
//! Owns: the one line format every boot step logs in (`piarchive-init [  1.234] step: message`),
//! written to init's stderr, which the kernel connected to `/dev/console` (the serial
//! console on the Pi and in QEMU); and `/run/piarchive/status`, a small `key: value`
//! text file saying what the box is waiting for (no network cable, no data disk), for
//! the display and the web page to show.
//! Must not touch: anything but the console and that one file.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

/// Where init publishes its status lines for the display and the web UI.
pub const STATUS_FILE: &str = "/run/piarchive/status";

/// The status lines, by key, so each step can replace its own line.
static STATUS: Mutex<BTreeMap<&'static str, String>> = Mutex::new(BTreeMap::new());

/// Seconds since boot, read from the monotonic clock (never jumps when the wall clock is set).
fn uptime_seconds() -> f64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Formats one console line; pure so the format is tested.
pub fn format_line(uptime: f64, step: &str, message: &str) -> String {
    format!("piarchive-init [{uptime:8.3}] {step}: {message}\n")
}

/// Logs one line for `step` on the serial console.
pub fn log(step: &str, message: &str) {
    let line = format_line(uptime_seconds(), step, message);
    // A console that cannot be written to must not stop the boot.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Sets the status line for `key` (e.g. "network", "data") and rewrites the status file.
/// Best-effort: a failure to write the file is logged once per call and ignored.
pub fn set_status(key: &'static str, value: &str) {
    let text = {
        let mut status = match STATUS.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.insert(key, value.to_string());
        render_status(&status)
    };
    let tmp = format!("{STATUS_FILE}.tmp");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, STATUS_FILE));
    if let Err(err) = written {
        log("status", &format!("cannot write {STATUS_FILE}: {err}"));
    }
}

/// Renders the status map as `key: value` lines, sorted by key.
pub fn render_status(status: &BTreeMap<&'static str, String>) -> String {
    status
        .iter()
        .map(|(key, value)| format!("{key}: {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_has_uptime_step_and_message() {
        assert_eq!(
            format_line(1.5, "mounts", "mounted /proc"),
            "piarchive-init [   1.500] mounts: mounted /proc\n"
        );
    }

    #[test]
    fn status_renders_sorted_lines() {
        let mut status = BTreeMap::new();
        status.insert("network", "no cable, retrying DHCP".to_string());
        status.insert("data", "mounted /dev/vda2".to_string());
        assert_eq!(
            render_status(&status),
            "data: mounted /dev/vda2\nnetwork: no cable, retrying DHCP\n"
        );
    }
}
