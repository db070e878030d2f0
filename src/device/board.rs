//! Board profiles: which GPIO pins drive the LEDs, which I2C bus and address
//! the display sits on, and whether they are expected at all.
//!
//! Owns: parsing the profiles in `board/*.toml` (embedded at build time with
//! `include_str!`, so the binary needs no files), lookup by name, detection
//! from the device-tree model string ([`detect`], pure) and the one edge
//! function that reads `/proc/device-tree` ([`detect_from_device_tree`]).
//! Must not touch: GPIO, I2C (that is `backend.rs`).

use serde::Deserialize;

/// One board's wiring. Pins are BCM GPIO numbers (what `rppal` takes).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// Short name used in the config (`board = "pi4"`): pi3, pi4, pi5, zero2w, qemu-virt.
    pub name: String,
    /// Human name for the admin device page and the log.
    pub description: String,
    /// False on boards without a GPIO header: the LEDs are simulated without
    /// trying GPIO (and without logging a failure).
    pub leds_expected: bool,
    pub green_pin: u8,
    pub blue_pin: u8,
    pub red_pin: u8,
    /// True when a lit LED is a high pin (LED from pin to ground); false when
    /// it is a low pin (LED from 3.3 V to the pin).
    pub active_high: bool,
    /// `/dev/i2c-<bus>`.
    pub i2c_bus: u8,
    /// 7-bit I2C address of the SSD1306 (0x3C on most modules, 0x3D on some).
    pub display_addr: u16,
    /// False when no panel is fitted: the display is simulated without
    /// probing I2C. When true, a missing panel is logged once and retried.
    pub display_expected: bool,
}

/// The profile files, embedded. Adding a board = adding a file here.
const PROFILE_SOURCES: [(&str, &str); 5] = [
    ("board/pi3.toml", include_str!("../../board/pi3.toml")),
    ("board/pi4.toml", include_str!("../../board/pi4.toml")),
    ("board/pi5.toml", include_str!("../../board/pi5.toml")),
    ("board/zero2w.toml", include_str!("../../board/zero2w.toml")),
    (
        "board/qemu-virt.toml",
        include_str!("../../board/qemu-virt.toml"),
    ),
];

/// Errors finding a board profile.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The config names a board no profile exists for.
    #[error("unknown board {name:?}; known boards: {known}")]
    Unknown { name: String, known: String },
    /// An embedded profile does not parse; a build mistake, caught by the tests.
    #[error("board profile {file} is invalid: {source}")]
    Invalid {
        file: &'static str,
        source: toml::de::Error,
    },
}

impl BoardProfile {
    /// All embedded profiles, in file order.
    pub fn all() -> Result<Vec<BoardProfile>, BoardError> {
        PROFILE_SOURCES
            .iter()
            .map(|(file, source)| {
                toml::from_str(source).map_err(|source| BoardError::Invalid { file, source })
            })
            .collect()
    }

    /// The profile called `name` (case-insensitive).
    pub fn by_name(name: &str) -> Result<BoardProfile, BoardError> {
        let all = BoardProfile::all()?;
        let known = all
            .iter()
            .map(|profile| profile.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        all.iter()
            .find(|profile| profile.name.eq_ignore_ascii_case(name.trim()))
            .cloned()
            .ok_or_else(|| BoardError::Unknown {
                name: name.to_string(),
                known,
            })
    }

    /// The board used off a Pi (a laptop, CI): nothing expected, everything
    /// simulated. Not a file, since it wires nothing.
    pub fn simulated() -> BoardProfile {
        BoardProfile {
            name: "simulated".to_string(),
            description: "Simulated board (no GPIO, no display)".to_string(),
            leds_expected: false,
            green_pin: 17,
            blue_pin: 27,
            red_pin: 22,
            active_high: true,
            i2c_bus: 1,
            display_addr: 0x3C,
            display_expected: false,
        }
    }

    /// Chooses the profile in this order: the configured name if given (an
    /// unknown name is an error, not a silent fallback); else the board the
    /// device tree describes (`device_tree_model`, e.g. from
    /// [`read_device_tree_model`]); else [`BoardProfile::simulated`].
    pub fn resolve(
        configured: Option<&str>,
        device_tree_model: Option<&str>,
    ) -> Result<BoardProfile, BoardError> {
        if let Some(name) = configured {
            return BoardProfile::by_name(name);
        }
        match device_tree_model.and_then(detect) {
            Some(name) => BoardProfile::by_name(name),
            None => Ok(BoardProfile::simulated()),
        }
    }
}

/// The profile name for a device-tree model string (or root `compatible`
/// list), or `None` when it is not a board we know. Pure.
///
/// "Raspberry Pi 4 Model B Rev 1.4" -> pi4, "Raspberry Pi 400" -> pi4,
/// "Raspberry Pi Compute Module 5" -> pi5, "Raspberry Pi Zero 2 W Rev 1.0" ->
/// zero2w, "linux,dummy-virt" (QEMU virt) -> qemu-virt.
pub fn detect(model: &str) -> Option<&'static str> {
    let model = model.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let lower = model.to_ascii_lowercase();
    if lower.contains("dummy-virt") || lower.contains("qemu") {
        return Some("qemu-virt");
    }
    let rest = lower.strip_prefix("raspberry pi ")?;
    if rest.starts_with("zero 2") {
        return Some("zero2w");
    }
    // "3 Model B", "4 Model B", "400", "5 Model B", "500", "Compute Module 4S".
    let rest = rest.strip_prefix("compute module ").unwrap_or(rest);
    match rest.chars().next()? {
        '3' => Some("pi3"),
        '4' => Some("pi4"),
        '5' => Some("pi5"),
        _ => None,
    }
}

/// Reads the device-tree model (`/proc/device-tree/model`, falling back to
/// the root `compatible` list, which is all QEMU's virt machine sets). `None`
/// off a device-tree system (an x86 laptop). Edge: the only file access here.
pub fn read_device_tree_model() -> Option<String> {
    for path in ["/proc/device-tree/model", "/proc/device-tree/compatible"] {
        if let Ok(bytes) = std::fs::read(path) {
            // Properties are NUL-terminated, lists NUL-separated.
            let text: String = String::from_utf8_lossy(&bytes)
                .split('\0')
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if !text.is_empty() {
                return Some(text);
            }
        }
    }
    None
}

/// [`detect`] on this machine's device tree.
pub fn detect_from_device_tree() -> Option<&'static str> {
    read_device_tree_model().as_deref().and_then(detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_profile_parses_with_a_unique_name() {
        let all = BoardProfile::all().expect("profiles parse");
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["pi3", "pi4", "pi5", "zero2w", "qemu-virt"]);
        for profile in &all {
            let pins = [profile.green_pin, profile.blue_pin, profile.red_pin];
            assert!(
                pins[0] != pins[1] && pins[1] != pins[2] && pins[0] != pins[2],
                "{}",
                profile.name
            );
            // GPIO 2 and 3 are the I2C pins of bus 1.
            assert!(
                pins.iter().all(|pin| *pin > 3 && *pin <= 27),
                "{}",
                profile.name
            );
            assert!(
                (0x08..=0x77).contains(&profile.display_addr),
                "{}",
                profile.name
            );
        }
        let qemu = BoardProfile::by_name("qemu-virt").expect("qemu profile");
        assert!(!qemu.leds_expected && !qemu.display_expected);
        let pi4 = BoardProfile::by_name("PI4").expect("case-insensitive");
        assert!(pi4.leds_expected && pi4.display_expected);
        assert_eq!((pi4.i2c_bus, pi4.display_addr), (1, 0x3C));
    }

    #[test]
    fn detect_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Raspberry Pi 3 Model B Rev 1.2", Some("pi3")),
            ("Raspberry Pi 3 Model B Plus Rev 1.3\0", Some("pi3")),
            ("Raspberry Pi 3 Model A Plus Rev 1.0", Some("pi3")),
            ("Raspberry Pi 4 Model B Rev 1.5", Some("pi4")),
            ("Raspberry Pi 400 Rev 1.0", Some("pi4")),
            ("Raspberry Pi Compute Module 4 Rev 1.1", Some("pi4")),
            ("Raspberry Pi 5 Model B Rev 1.0", Some("pi5")),
            ("Raspberry Pi 500 Rev 1.0", Some("pi5")),
            ("Raspberry Pi Compute Module 5 Rev 1.0", Some("pi5")),
            ("Raspberry Pi Zero 2 W Rev 1.0", Some("zero2w")),
            ("Raspberry Pi Zero W Rev 1.1", None),
            ("Raspberry Pi Model B Rev 2", None),
            ("linux,dummy-virt", Some("qemu-virt")),
            ("QEMU virt machine", Some("qemu-virt")),
            ("Pine64 RockPro64 v2.1", None),
            ("", None),
        ];
        for (model, expected) in cases {
            assert_eq!(detect(model), *expected, "{model:?}");
        }
    }

    #[test]
    fn resolve_order() {
        let by_config = BoardProfile::resolve(Some("pi5"), Some("Raspberry Pi 4 Model B"));
        assert_eq!(by_config.expect("pi5 exists").name, "pi5");
        let by_tree = BoardProfile::resolve(None, Some("Raspberry Pi Zero 2 W Rev 1.0"));
        assert_eq!(by_tree.expect("zero2w exists").name, "zero2w");
        let fallback = BoardProfile::resolve(None, Some("Some x86 laptop")).expect("fallback");
        assert_eq!(fallback, BoardProfile::simulated());
        assert_eq!(
            BoardProfile::resolve(None, None).expect("fallback").name,
            "simulated"
        );
        let unknown = BoardProfile::resolve(Some("pi9"), None).expect_err("unknown board");
        assert!(
            unknown
                .to_string()
                .contains("pi3, pi4, pi5, zero2w, qemu-virt"),
            "{unknown}"
        );
    }
}
