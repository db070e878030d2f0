//! The box's time zone: the one place that knows which zone "local time"
//! on this appliance is. Read once at start ([`BoxZone::from_environment`],
//! in `config`): `TZ` when set (a zone name such as `Europe/Berlin`, read
//! from the system's zone files, or a POSIX rule such as
//! `CET-1CEST,M3.5.0,M10.5.0/3`, which needs no file), else
//! `/etc/localtime` (its link target names the zone); UTC when neither
//! says or what they say cannot be read. The upload window is in this zone;
//! pages name it wherever a time is typed ("01:00 (Europe/Berlin)").
//!
//! Daylight-saving rules are `tz-rs`'s. Must not touch: anything but the
//! environment and the zone files, and those only in `from_environment`.

use std::path::Path;

/// A time zone with the name people know it by.
#[derive(Debug, Clone)]
pub struct BoxZone {
    /// `Europe/Berlin`, a POSIX rule as given, or `UTC`.
    name: String,
    zone: tz::TimeZone,
}

impl BoxZone {
    pub fn utc() -> BoxZone {
        BoxZone {
            name: "UTC".into(),
            zone: tz::TimeZone::utc(),
        }
    }

    /// The zone `TZ` names, else the one `/etc/localtime` is (by its link
    /// target, else by its content), else UTC.
    pub fn from_environment() -> BoxZone {
        let tz = std::env::var("TZ").ok();
        let link = std::fs::read_link("/etc/localtime").ok();
        let named = tz.as_deref().is_some_and(|tz| !tz.trim().is_empty()) || link.is_some();
        if !named {
            if let Ok(bytes) = std::fs::read("/etc/localtime") {
                if let Ok(zone) = tz::TimeZone::from_tz_data(&bytes) {
                    let name = zone
                        .find_local_time_type(
                            crate::date::unix_secs(2000, 1, 1, 0, 0, 0).unwrap_or(0),
                        )
                        .map(|kind| kind.time_zone_designation().to_string())
                        .unwrap_or_else(|_| "UTC".into());
                    return BoxZone { name, zone };
                }
            }
        }
        BoxZone::from_sources(tz.as_deref(), link.as_deref())
    }

    /// As [`BoxZone::from_environment`], with the value of `TZ` and the
    /// target of the `/etc/localtime` link handed in (no file read but
    /// the named zone's).
    pub fn from_sources(tz: Option<&str>, localtime_link: Option<&Path>) -> BoxZone {
        let tz = tz
            .map(|tz| tz.trim().trim_start_matches(':'))
            .filter(|tz| !tz.is_empty());
        if let Some(tz) = tz {
            return BoxZone::named(tz).unwrap_or_else(BoxZone::utc);
        }
        localtime_link
            .and_then(|link| {
                link.to_str()?
                    .split_once("zoneinfo/")
                    .map(|(_, name)| name.to_string())
            })
            .and_then(|name| BoxZone::named(&name))
            .unwrap_or_else(BoxZone::utc)
    }

    /// The zone a name or POSIX rule gives; `None` when it cannot be read.
    pub fn named(name: &str) -> Option<BoxZone> {
        let name = match name {
            "Etc/UTC" | "Etc/UCT" | "Etc/Universal" | "Etc/Zulu" | "UCT" | "Universal" | "Zulu" => {
                "UTC"
            }
            other => other,
        };
        if name == "UTC" {
            return Some(BoxZone::utc());
        }
        let zone = tz::TimeZone::from_posix_tz(name).ok()?;
        Some(BoxZone {
            name: name.to_string(),
            zone,
        })
    }

    /// `Europe/Berlin`, `UTC`, or the rule `TZ` gave.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds to add to UTC for local time at `unix_secs`.
    pub fn offset_secs(&self, unix_secs: i64) -> i64 {
        self.zone
            .find_local_time_type(unix_secs)
            .map(|kind| i64::from(kind.ut_offset()))
            .unwrap_or(0)
    }

    /// The minute of the local day at `unix_secs` (0 to 1439).
    pub fn minute_of_day(&self, unix_secs: i64) -> u32 {
        ((unix_secs + self.offset_secs(unix_secs)).rem_euclid(86_400) / 60) as u32
    }

    /// The next time at or after `now` whose local time of day is `minute`
    /// (minutes after midnight): where the upload window opens next. On a
    /// day that skips that minute (the spring change) it is the first
    /// minute after it.
    pub fn next_minute_of_day(&self, now: i64, minute: u32) -> i64 {
        let local_now = now + self.offset_secs(now);
        let midnight = local_now - local_now.rem_euclid(86_400);
        for day in 0..3 {
            let local = midnight + day * 86_400 + i64::from(minute) * 60;
            // The UTC time with this local time, by the offset around it.
            let guess = local - self.offset_secs(local - self.offset_secs(local));
            if guess >= now {
                return guess;
            }
        }
        now
    }

    /// `2024-02-29 13:34`, local.
    pub fn local_text(&self, unix_secs: i64) -> String {
        let (year, month, day, hour, minute, _) =
            crate::date::parts(unix_secs + self.offset_secs(unix_secs));
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule, so the test needs no zone files: Central European Time.
    const BERLIN_RULE: &str = "CET-1CEST,M3.5.0,M10.5.0/3";
    /// 2024-02-29 12:34:56 UTC (winter) and 2024-07-01 00:30:00 UTC (summer).
    const WINTER: i64 = 1_709_210_096;
    const SUMMER: i64 = 1_719_793_800;

    #[test]
    fn offsets_follow_daylight_saving() {
        let zone = BoxZone::from_sources(Some(BERLIN_RULE), None);
        assert_eq!(zone.name(), BERLIN_RULE);
        assert_eq!(zone.offset_secs(WINTER), 3600);
        assert_eq!(zone.offset_secs(SUMMER), 7200);
        assert_eq!(zone.local_text(WINTER), "2024-02-29 13:34");
        assert_eq!(zone.local_text(SUMMER), "2024-07-01 02:30");
        assert_eq!(zone.minute_of_day(SUMMER), 150);
        // 01:00 local next: 23:00 UTC that day in summer.
        assert_eq!(
            zone.next_minute_of_day(SUMMER, 60),
            SUMMER + 22 * 3600 + 30 * 60
        );
    }

    #[test]
    fn utc_when_nothing_says_otherwise() {
        for (tz, link) in [
            (None, None),
            (Some(""), None),
            (Some("Etc/UTC"), None),
            (None, Some("/usr/share/zoneinfo/Etc/UTC")),
            (Some("No/Such_Zone"), None),
        ] {
            let zone = BoxZone::from_sources(tz, link.map(Path::new));
            assert_eq!(zone.name(), "UTC", "{tz:?} {link:?}");
            assert_eq!(zone.offset_secs(SUMMER), 0);
        }
        let utc = BoxZone::utc();
        assert_eq!(utc.minute_of_day(WINTER), 12 * 60 + 34);
        assert_eq!(
            utc.next_minute_of_day(WINTER, 12 * 60 + 34),
            WINTER + 86_400 - 56
        );
    }

    /// With the system's zone files (Debian's tzdata), names work too.
    #[test]
    fn zone_names_read_the_zone_files_when_there() {
        if !Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            return;
        }
        let zone =
            BoxZone::from_sources(None, Some(Path::new("/usr/share/zoneinfo/Europe/Berlin")));
        assert_eq!(zone.name(), "Europe/Berlin");
        assert_eq!(zone.offset_secs(SUMMER), 7200);
    }
}
