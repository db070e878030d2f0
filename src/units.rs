//! Byte counts (and durations, [`human_duration`]) as text for people: the one formatter the device display, the
//! pages, the API's messages and the admin scripts share.
//!
//! Binary units with their IEC names (KiB, MiB, GiB: powers of 1024), because
//! every size the appliance itself names is a power of two (part sizes,
//! upload limits, script memory limits), the pages always said KiB, and the
//! IEC names say which base is meant. At most three significant digits,
//! rounded down, so a count never claims more than there is.
//! Pure: no I/O.

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// "0 B", "1023 B", "1.5 KiB", "15 KiB", "150 KiB", "1.1 GiB".
pub fn human_size(bytes: u64) -> String {
    let mut unit = 0;
    let mut divisor: u64 = 1;
    while bytes / divisor >= 1024 && unit + 1 < UNITS.len() {
        divisor *= 1024;
        unit += 1;
    }
    let whole = bytes / divisor;
    if unit == 0 || whole >= 10 {
        return format!("{whole} {}", UNITS[unit]);
    }
    let tenths = u128::from(bytes) * 10 / u128::from(divisor);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// A rate as [`human_size`] per second: "1.1 MiB/s".
pub fn human_rate(bytes_per_sec: u64) -> String {
    format!("{}/s", human_size(bytes_per_sec))
}

/// A duration in the largest whole unit that fits it exactly: "5 minutes",
/// "1 hour", "2 days", "90 seconds" (the deployments' intervals).
pub fn human_duration(seconds: u64) -> String {
    let (count, unit) = match seconds {
        0 => (0, "second"),
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    match count {
        1 => format!("1 {unit}"),
        n => format!("{n} {unit}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024 - 1, "9.9 KiB"),
            (10 * 1024, "10 KiB"),
            (150 * 1024, "150 KiB"),
            (1024 * 1024 - 1, "1023 KiB"),
            (1_250_000, "1.1 MiB"),
            (6 << 20, "6.0 MiB"),
            (64 << 30, "64 GiB"),
            (u64::MAX, "15 EiB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
        assert_eq!(human_rate(1_250_000), "1.1 MiB/s");
    }

    #[test]
    fn durations() {
        for (seconds, text) in [
            (0, "0 seconds"),
            (1, "1 second"),
            (90, "90 seconds"),
            (300, "5 minutes"),
            (3600, "1 hour"),
            (5400, "90 minutes"),
            (172_800, "2 days"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }
}
