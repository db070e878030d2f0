//! What the home and detail pages say about work under way, as parts they
//! compose: the caller's unfinished uploads, why backups wait or go slowly
//! (the upload window, the bandwidth limit, unreachable storage) and
//! archives with the same content as another of the same user.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::accounts::Caller;
use crate::app::state::App;
use crate::settings::{parse_hh_mm, Settings};
use crate::store::records::{ArchiveRecord, ArchiveState};
use crate::units::human_size;
use crate::web::http::ApiError;
use crate::web::layout::{csrf_field, human_time, iso_time};
use crate::zone::BoxZone;

/// The caller's unfinished uploads: name, how much arrived, and that they
/// continue where they stopped. Always rendered (empty when there are
/// none) so `live.js` can replace it when an upload finishes.
pub fn unfinished_uploads(app: &App, caller: &Caller) -> Result<Markup, ApiError> {
    let uploads = app.archives.pending_uploads_of(&caller.user.id)?;
    Ok(html! {
        div id="uploads-in-progress" {
            @if !uploads.is_empty() {
                section.card.unfinished {
                    h2 { "Unfinished uploads" }
                    p.muted { "They continue where they stopped: on the " a href="/archives/new" { "Upload page" } ", choose the same file again." }
                    ul.unfinished-list {
                        @for (upload, received) in &uploads {
                            @let percent = (received * 100).checked_div(upload.length).unwrap_or(0).min(100);
                            li data-upload-id=(upload.id) data-percent=(percent) {
                                strong { (upload.name) }
                                span.muted { " · " (percent) "% received (" (human_size(*received)) " of " (human_size(upload.length)) ")" }
                                div.progress role="img" aria-label={ (percent) "% received" } { div.bar data-percent=(percent) {} }
                                form.inline method="post" action={ "/uploads/" (upload.id) "/discard" }
                                    data-confirm={ "Discard the unfinished upload of “" (upload.name) "”? What arrived so far is removed." } {
                                    (csrf_field(caller))
                                    button.secondary type="submit" { "Discard" }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Whether the archive still has parts to store on the remote.
fn has_parts_to_store(archive: &ArchiveRecord) -> bool {
    matches!(archive.state, ArchiveState::Local | ArchiveState::Uploading)
        || (archive.state == ArchiveState::BackedUp && archive.parts_remote < archive.parts_total)
}

/// Whether backups of `archives` wait or go slowly now, and why, in words:
/// "Waiting for the upload window at 01:00", "Limited to 2.0 MiB/s",
/// "Storage unreachable since 10:42" (times in the browser's zone by
/// `times.js`). Empty when none of them has anything to move or nothing
/// holds them back.
pub fn transfer_notes(app: &App, archives: &[ArchiveRecord]) -> Result<Markup, ApiError> {
    let settings = Settings::load(&app.store)?;
    let moving_up = archives.iter().any(has_parts_to_store);
    let moving_down = archives.iter().any(|a| a.state == ArchiveState::Caching);
    let now = crate::ids::now_secs();
    let window_opens = moving_up
        .then(|| next_window_opening(&settings, &app.config.zone, now))
        .flatten();
    let limit = (moving_up && settings.upload_bandwidth_bytes_per_sec > 0)
        .then_some(settings.upload_bandwidth_bytes_per_sec);
    let unreachable = (moving_up || moving_down)
        .then(|| {
            app.engine
                .destination_health()
                .error_since(crate::engine::destinations::MAIN)
        })
        .flatten();
    Ok(html! {
        ul.transfer-notes id="transfer-notes" {
            @if let Some(opens) = window_opens {
                li.note-window { "Waiting for the upload window at " (clock(opens)) "." }
            }
            @if let Some(limit) = limit {
                li.note-limit { "Limited to " (human_size(limit)) "/s." }
            }
            @if let Some(since) = unreachable {
                li.note-unreachable.error { "Storage unreachable since " (clock(since)) "." }
            }
        }
    })
}

/// A time of day the browser shows in its own zone (`times.js`), with the
/// full date on hover.
fn clock(secs: i64) -> Markup {
    let text = human_time(secs);
    html! { time datetime=(iso_time(secs)) data-clock { (text.get(11..).unwrap_or(&text)) } }
}

/// When the upload window opens next, if it is closed at `now` (the
/// window is in the box's zone, like the engine's check).
fn next_window_opening(settings: &Settings, zone: &BoxZone, now: i64) -> Option<i64> {
    let window = settings.upload_window.as_ref()?;
    let start = parse_hh_mm(&window.start)?;
    let end = parse_hh_mm(&window.end)?;
    if crate::engine::in_window(start, end, zone.minute_of_day(now)) {
        return None;
    }
    Some(zone.next_minute_of_day(now, start))
}

/// For each archive of `archives` whose content another one of them has
/// too (same SHA-256, not empty, not being deleted): the other's id and
/// name, the oldest such other first.
pub fn duplicates(archives: &[ArchiveRecord]) -> HashMap<String, (String, String)> {
    let mut by_content: HashMap<&str, Vec<&ArchiveRecord>> = HashMap::new();
    for archive in archives {
        if archive.size > 0 && !archive.sha256.is_empty() && archive.state != ArchiveState::Deleting
        {
            by_content.entry(&archive.sha256).or_default().push(archive);
        }
    }
    let mut found = HashMap::new();
    for mut same in by_content.into_values().filter(|same| same.len() > 1) {
        same.sort_by_key(|archive| (archive.created_at, archive.id.clone()));
        for archive in &same {
            if let Some(other) = same.iter().find(|other| other.id != archive.id) {
                found.insert(archive.id.clone(), (other.id.clone(), other.name.clone()));
            }
        }
    }
    found
}

/// "Same content as “Holiday”", linking to the other archive.
pub fn duplicate_note(other: Option<&(String, String)>) -> Markup {
    html! {
        @if let Some((id, name)) = other {
            p.duplicate { "Same content as " a href={ "/archives/" (id) } { "“" (name) "”" } "." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_with_window(start: &str, end: &str) -> Settings {
        serde_json::from_value(serde_json::json!({
            "registration_open": true, "upload_bandwidth_bytes_per_sec": 0,
            "upload_window": {"start": start, "end": end}, "transfer_concurrency": 2,
            "free_space_reserve_bytes": 0
        }))
        .unwrap()
    }

    #[test]
    fn the_window_opens_next_today_or_tomorrow() {
        let day = 20_000 * 86_400;
        let settings = settings_with_window("01:00", "05:00");
        let utc = BoxZone::utc();
        // 00:30: opens today at 01:00.
        assert_eq!(
            next_window_opening(&settings, &utc, day + 1800),
            Some(day + 3600)
        );
        // 02:00: open now.
        assert_eq!(next_window_opening(&settings, &utc, day + 7200), None);
        // 06:00: opens tomorrow at 01:00.
        assert_eq!(
            next_window_opening(&settings, &utc, day + 6 * 3600),
            Some(day + 86_400 + 3600)
        );
        // In Berlin (winter, UTC+1) 01:00 is 00:00 UTC: at 00:30 UTC it is
        // 01:30 there, open; at 05:00 UTC (06:00 there) it opens tomorrow
        // at 00:00 UTC.
        let berlin = BoxZone::from_sources(Some("CET-1CEST,M3.5.0,M10.5.0/3"), None);
        let winter_day = 19_750 * 86_400;
        assert_eq!(
            next_window_opening(&settings, &berlin, winter_day + 1800),
            None
        );
        assert_eq!(
            next_window_opening(&settings, &berlin, winter_day + 5 * 3600),
            Some(winter_day + 86_400)
        );
    }
}
