//! Byte counts as text for people: the one formatter the device display, the
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
}
