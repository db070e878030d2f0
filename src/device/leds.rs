//! LED patterns: which pattern each of the three LEDs shows for a status, and
//! whether a pattern is lit at a given moment.
//!
//! Owns: the mapping [`led_patterns`], the timing of each [`Pattern`]
//! ([`Pattern::level_at`]) and the activity counter that makes the blue LED
//! flicker while data moves. Must not touch: the clock, GPIO or any other I/O;
//! time and activity are handed in by the driver (`backend.rs`).

use serde::Serialize;

use super::status::{Activity, DeviceStatus};

/// How one LED behaves over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    Off,
    Steady,
    /// On 1 s, off 1 s.
    SlowBlink,
    /// On 250 ms, off 250 ms.
    FastBlink,
    /// Flickers while data moves, steady on while the transfer stalls; the
    /// flicker follows the activity counter, not the clock.
    Activity,
}

/// Half period of [`Pattern::SlowBlink`] in milliseconds.
pub const SLOW_BLINK_HALF_MS: u64 = 1000;
/// Half period of [`Pattern::FastBlink`] in milliseconds.
pub const FAST_BLINK_HALF_MS: u64 = 250;

impl Pattern {
    /// Whether the LED is lit `elapsed_ms` after the driver started, given the
    /// driver's [`ActivityCounter`] value. Blinks start lit at 0 ms.
    /// `Activity` is lit when the counter is even: each step of the counter
    /// toggles it, and the counter settles on an even value when data stops.
    pub fn level_at(self, elapsed_ms: u64, activity_counter: u64) -> bool {
        match self {
            Pattern::Off => false,
            Pattern::Steady => true,
            Pattern::SlowBlink => (elapsed_ms / SLOW_BLINK_HALF_MS).is_multiple_of(2),
            Pattern::FastBlink => (elapsed_ms / FAST_BLINK_HALF_MS).is_multiple_of(2),
            Pattern::Activity => activity_counter.is_multiple_of(2),
        }
    }

    /// True when the level changes over time or with activity, so the driver
    /// must keep ticking; false for `Off` and `Steady`, which let it sleep.
    pub fn is_animated(self) -> bool {
        !matches!(self, Pattern::Off | Pattern::Steady)
    }
}

/// The pattern of each LED. Serializes as
/// `{"green":"steady","blue":"off","red":"off"}` for `GET /api/v1/admin/device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct LedStates {
    pub green: Pattern,
    pub blue: Pattern,
    pub red: Pattern,
}

impl LedStates {
    /// All three off (before the first status, and on shutdown).
    pub const ALL_OFF: LedStates = LedStates {
        green: Pattern::Off,
        blue: Pattern::Off,
        red: Pattern::Off,
    };

    pub fn is_animated(&self) -> bool {
        self.green.is_animated() || self.blue.is_animated() || self.red.is_animated()
    }

    /// The lit/unlit level of each LED at one moment.
    pub fn levels_at(&self, elapsed_ms: u64, activity_counter: u64) -> LedLevels {
        LedLevels {
            green: self.green.level_at(elapsed_ms, activity_counter),
            blue: self.blue.level_at(elapsed_ms, activity_counter),
            red: self.red.level_at(elapsed_ms, activity_counter),
        }
    }
}

/// Whether each LED is lit right now (logical level; the board profile says
/// whether lit means a high or a low pin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LedLevels {
    pub green: bool,
    pub blue: bool,
    pub red: bool,
}

/// The three LEDs for a status:
///
/// | LED | pattern |
/// | --- | --- |
/// | green | steady when idle (everything backed up off-site), slow blink when idle but the backups are on this box only (a folder on its own disk or on a USB disk plugged into it), slow blink while work is pending or moving, off when attention is needed (not "all good") |
/// | blue | activity while uploading or caching, off otherwise |
/// | red | fast blink when data is at risk (a damaged archive), steady for other problems, off when healthy |
///
/// A firmware update overrides all three: green and blue blink fast together, red
/// off (green never blinks fast otherwise, so the pattern is its own).
pub fn led_patterns(status: &DeviceStatus) -> LedStates {
    if status.activity == Activity::Updating {
        return LedStates {
            green: Pattern::FastBlink,
            blue: Pattern::FastBlink,
            red: Pattern::Off,
        };
    }
    let green = match (&status.attention, status.activity) {
        (Some(_), _) => Pattern::Off,
        (None, Activity::Idle) if status.on_box_only => Pattern::SlowBlink,
        (None, Activity::Idle) => Pattern::Steady,
        (None, Activity::Pending | Activity::Uploading | Activity::Caching) => Pattern::SlowBlink,
        (None, Activity::Updating) => Pattern::FastBlink,
    };
    let blue = match status.activity {
        Activity::Uploading | Activity::Caching => Pattern::Activity,
        Activity::Updating => Pattern::FastBlink,
        Activity::Idle | Activity::Pending => Pattern::Off,
    };
    let red = match &status.attention {
        None => Pattern::Off,
        Some(attention) if attention.data_at_risk => Pattern::FastBlink,
        Some(_) => Pattern::Steady,
    };
    LedStates { green, blue, red }
}

/// Turns "did data move since the last tick" samples into the counter that
/// [`Pattern::Activity`] follows: each tick with movement steps the counter
/// (toggling the LED); a tick without movement steps it only if that brings
/// the LED back on. So the LED flickers at the tick rate while data moves and
/// rests lit while a transfer stalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActivityCounter {
    count: u64,
}

impl ActivityCounter {
    pub fn new() -> ActivityCounter {
        ActivityCounter { count: 0 }
    }

    /// Records one tick and returns the new counter value.
    pub fn tick(&mut self, data_moved: bool) -> u64 {
        if data_moved || self.count % 2 == 1 {
            self.count = self.count.wrapping_add(1);
        }
        self.count
    }

    pub fn value(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::status::{Attention, CurrentTransfer};

    fn status(activity: Activity, attention: Option<bool>) -> DeviceStatus {
        DeviceStatus {
            activity,
            attention: attention.map(|data_at_risk| Attention {
                reason: "Something.".into(),
                data_at_risk,
            }),
            queue_length: 0,
            current: matches!(activity, Activity::Uploading | Activity::Caching).then(|| {
                CurrentTransfer {
                    archive_name: "a".into(),
                    percent: 1,
                    bytes_per_sec: 1,
                }
            }),
            web_url: String::new(),
            on_box_only: false,
            usb_disk: None,
            fingerprint_page: None,
        }
    }

    #[test]
    fn status_to_patterns_table() {
        use Activity::{Caching, Idle, Pending, Uploading};
        use Pattern::{FastBlink, Off, SlowBlink, Steady};
        const FLICKER: Pattern = Pattern::Activity;
        // (activity, attention: None / Some(data_at_risk), green, blue, red)
        let cases: &[(Activity, Option<bool>, Pattern, Pattern, Pattern)] = &[
            (Idle, None, Steady, Off, Off),
            (Pending, None, SlowBlink, Off, Off),
            (Uploading, None, SlowBlink, FLICKER, Off),
            (Caching, None, SlowBlink, FLICKER, Off),
            (Idle, Some(false), Off, Off, Steady),
            (Pending, Some(false), Off, Off, Steady),
            (Uploading, Some(false), Off, FLICKER, Steady),
            (Caching, Some(true), Off, FLICKER, FastBlink),
            (Idle, Some(true), Off, Off, FastBlink),
        ];
        for (activity, attention, green, blue, red) in cases {
            let got = led_patterns(&status(*activity, *attention));
            assert_eq!(
                got,
                LedStates {
                    green: *green,
                    blue: *blue,
                    red: *red
                },
                "case: {activity:?} attention={attention:?}"
            );
        }
    }

    #[test]
    fn idle_on_this_box_only_is_not_steady_green() {
        let on_box = DeviceStatus {
            on_box_only: true,
            ..status(Activity::Idle, None)
        };
        assert_eq!(led_patterns(&on_box).green, Pattern::SlowBlink);
        assert_eq!(led_patterns(&on_box).red, Pattern::Off);
    }

    #[test]
    fn level_table() {
        use Pattern::*;
        // (pattern, elapsed_ms, activity counter, lit)
        let cases: &[(Pattern, u64, u64, bool)] = &[
            (Off, 0, 0, false),
            (Off, 1500, 1, false),
            (Steady, 0, 1, true),
            (Steady, 123_456, 0, true),
            (SlowBlink, 0, 0, true),
            (SlowBlink, 999, 0, true),
            (SlowBlink, 1000, 0, false),
            (SlowBlink, 1999, 0, false),
            (SlowBlink, 2000, 0, true),
            (FastBlink, 0, 0, true),
            (FastBlink, 249, 0, true),
            (FastBlink, 250, 0, false),
            (FastBlink, 500, 0, true),
            (Activity, 0, 0, true),
            (Activity, 0, 1, false),
            (Activity, 5000, 2, true),
            (Activity, u64::MAX, u64::MAX, false),
        ];
        for (pattern, elapsed, counter, lit) in cases {
            assert_eq!(
                pattern.level_at(*elapsed, *counter),
                *lit,
                "{pattern:?} at {elapsed} ms, counter {counter}"
            );
        }
    }

    #[test]
    fn activity_counter_flickers_while_moving_and_rests_lit() {
        let mut counter = ActivityCounter::new();
        let lit = |c: u64| Pattern::Activity.level_at(0, c);
        let moving: Vec<bool> = (0..4).map(|_| lit(counter.tick(true))).collect();
        assert_eq!(moving, [false, true, false, true]);
        // Stalled on a lit value: stays lit, counter unchanged.
        assert!(lit(counter.tick(false)));
        assert_eq!(counter.value(), 4);
        // Stalled right after an unlit step: comes back on and stays on.
        assert!(!lit(counter.tick(true)));
        assert!(lit(counter.tick(false)));
        assert!(lit(counter.tick(false)));
    }

    #[test]
    fn json_shape() {
        let states = LedStates {
            green: Pattern::SlowBlink,
            blue: Pattern::Activity,
            red: Pattern::FastBlink,
        };
        let json = serde_json::to_string(&states).expect("LedStates serializes");
        assert_eq!(
            json,
            r#"{"green":"slow_blink","blue":"activity","red":"fast_blink"}"#
        );
        assert!(states.is_animated());
        assert!(!LedStates {
            green: Pattern::Steady,
            blue: Pattern::Off,
            red: Pattern::Steady
        }
        .is_animated());
    }
}
