//! An archive's copies in words (issue 24): the detail page's sentence
//! "On Backblaze: complete. On grandpa's NAS: 40 %, waiting for it to come
//! back." and the home page's "off-site in 2 places". Pure: the copies
//! (`engine::destinations::copies_of`) and each destination's placement
//! are handed in (`App::copies` reads them).

use crate::engine::destinations::{Copy, CopyState};
use crate::remote::placement::Placement;

/// The share of parts on one destination, in whole percent, rounded down;
/// never 100 before the copy is complete (the last part may be missing).
pub fn copy_percent(copy: &Copy) -> u64 {
    if copy.state == CopyState::Complete {
        return 100;
    }
    match u64::from(copy.parts_total) {
        0 => 0,
        total => (u64::from(copy.parts_remote) * 100 / total).min(99),
    }
}

/// What one copy is doing, after its percentage.
fn doing(state: &CopyState) -> &'static str {
    match state {
        CopyState::Complete => "complete",
        CopyState::Uploading => "uploading",
        CopyState::Waiting => "queued",
        CopyState::Unreachable => "waiting for it to come back",
    }
}

/// "On NAME: complete." for each copy, main first, in one line.
pub fn copies_sentence(copies: &[Copy]) -> String {
    copies
        .iter()
        .map(|copy| match copy.state {
            CopyState::Complete => format!("On {}: complete.", copy.name),
            ref state => format!(
                "On {}: {} %, {}.",
                copy.name,
                copy_percent(copy),
                doing(state)
            ),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many complete copies are off-site: `placement_of(copy)` says where
/// each destination keeps the backups.
pub fn off_site_places(copies: &[Copy], placement_of: impl Fn(&Copy) -> Placement) -> usize {
    copies
        .iter()
        .filter(|copy| copy.state == CopyState::Complete && placement_of(copy).is_off_site())
        .count()
}

/// "off-site" for one place, "off-site in N places" for more.
pub fn off_site_words(places: usize) -> String {
    match places {
        0 | 1 => "off-site".to_string(),
        places => format!("off-site in {places} places"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(name: &str, parts_remote: u32, parts_total: u32, state: CopyState) -> Copy {
        Copy {
            remote: format!("d_{name}"),
            name: name.to_string(),
            parts_total,
            parts_remote,
            bytes_remote: 0,
            state,
            last_error: None,
        }
    }

    #[test]
    fn each_copy_in_words_main_first() {
        let cases: Vec<(Vec<Copy>, &str)> = vec![
            (
                vec![
                    copy("Backblaze", 10, 10, CopyState::Complete),
                    copy("grandpa's NAS", 4, 10, CopyState::Unreachable),
                ],
                "On Backblaze: complete. On grandpa's NAS: 40 %, waiting for it to come back.",
            ),
            (
                vec![
                    copy("B2", 3, 7, CopyState::Uploading),
                    copy("USB <disk> & \"co\"", 0, 7, CopyState::Waiting),
                ],
                "On B2: 42 %, uploading. On USB <disk> & \"co\": 0 %, queued.",
            ),
            (
                // 999 of 1000 parts is not "100 %".
                vec![copy("NAS", 999, 1000, CopyState::Uploading)],
                "On NAS: 99 %, uploading.",
            ),
            (
                // An empty archive has no parts: complete at once.
                vec![copy("NAS", 0, 0, CopyState::Complete)],
                "On NAS: complete.",
            ),
            (vec![], ""),
        ];
        for (copies, expected) in cases {
            assert_eq!(copies_sentence(&copies), expected);
        }
    }

    #[test]
    fn only_complete_off_site_copies_count_as_places() {
        let copies = vec![
            copy("main", 5, 5, CopyState::Complete),
            copy("usb", 5, 5, CopyState::Complete),
            copy("b2", 5, 5, CopyState::Complete),
            copy("nas", 2, 5, CopyState::Uploading),
        ];
        let placement = |copy: &Copy| match copy.name.as_str() {
            "usb" => Placement::UsbDisk("BACKUP".into()),
            _ => Placement::OffSite,
        };
        assert_eq!(off_site_places(&copies, placement), 2);
        assert_eq!(off_site_places(&copies, |_| Placement::SameDisk), 0);
        assert_eq!(off_site_words(2), "off-site in 2 places");
        assert_eq!(off_site_words(1), "off-site");
    }
}
