//! Calendar dates in UTC: the one place that turns Unix seconds into a
//! year, month, day and time of day, and back (the pages' dates, the admin
//! API's `since`/`until` filters, SigV4's `x-amz-date`).
//!
//! Pure: the time is always handed in; nothing here reads the clock. The
//! calendar arithmetic is the `time` crate's.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The UTC date and time of `unix_secs`. Times outside the years -9999 to
/// 9999 (which no record holds) are clamped to them.
pub fn utc(unix_secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or_else(|_| {
        let edge = if unix_secs < 0 {
            PrimitiveDateTime::MIN
        } else {
            PrimitiveDateTime::MAX
        };
        edge.assume_utc()
    })
}

/// Unix seconds of a UTC calendar date and time; `None` when the date does
/// not exist (month 13, 30 February, hour 24...).
pub fn unix_secs(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    let small = |value: i64| u8::try_from(value).ok();
    let month = Month::try_from(small(month)?).ok()?;
    let date = Date::from_calendar_date(i32::try_from(year).ok()?, month, small(day)?).ok()?;
    let time = Time::from_hms(small(hour)?, small(minute)?, small(second)?).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// `(year, month, day, hour, minute, second)` of `unix_secs` in UTC, for
/// callers that format their own text.
pub fn parts(unix_secs: i64) -> (i32, u8, u8, u8, u8, u8) {
    let t = utc(unix_secs);
    (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

/// `2026-12-07T18:10:19Z`: RFC 3339 in UTC to the second, as S3 wants
/// retain-until dates and the API shows times.
pub fn rfc3339(unix_secs: i64) -> String {
    let (year, month, day, hour, minute, second) = parts(unix_secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// A time in RFC 3339 (`2026-12-07T18:10:19Z`, `...19.123+01:00`) as Unix
/// milliseconds; `None` when it is not one.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let time =
        OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:34:56Z"),
            Some(1_709_210_096_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T13:34:56.250+01:00"),
            Some(1_709_210_096_250)
        );
        for bad in ["", "yesterday", "2024-02-30T00:00:00Z", "2024-02-29 12:34"] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn seconds_to_dates_and_back() {
        for (secs, expected) in [
            (0, (1970, 1, 1, 0, 0, 0)),
            (-1, (1969, 12, 31, 23, 59, 59)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (1_709_210_096, (2024, 2, 29, 12, 34, 56)),
            (4_102_444_800, (2100, 1, 1, 0, 0, 0)),
        ] {
            assert_eq!(parts(secs), expected, "{secs}");
            let (y, mo, d, h, mi, s) = expected;
            let back = unix_secs(y.into(), mo.into(), d.into(), h.into(), mi.into(), s.into());
            assert_eq!(back, Some(secs), "{expected:?}");
        }
    }

    #[test]
    fn impossible_dates_are_refused_and_far_times_clamped() {
        assert_eq!(unix_secs(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(unix_secs(2024, 13, 1, 0, 0, 0), None);
        assert_eq!(unix_secs(2024, 1, 1, 24, 0, 0), None);
        assert_eq!(unix_secs(2024, -1, 1, 0, 0, 0), None);
        assert_eq!(parts(i64::MAX).0, 9999);
        assert_eq!(parts(i64::MIN).0, -9999);
    }
}
