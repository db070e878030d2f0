//! The notifier's place in the running appliance: [`start`] starts the
//! thread with an observer that reads what the appliance sees each tick
//! from the same sources as the LEDs (the engine's remote error, the
//! catalog, the disk against its reserve, the upload window, the last
//! firmware update, the recovery passphrase).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::state::App;
use crate::notify::digest::{DigestInput, MemberWeek};
use crate::notify::problems::{ArchiveRef, FailedArchive, Observation};
use crate::notify::{self, Observer};
use crate::settings::{parse_hh_mm, Settings};
use crate::store::records::{ArchiveRecord, ArchiveState};

/// Starts the notifier with an observer over `app` and keeps it in `app`.
pub fn start(app: &Arc<App>) {
    let notifier = notify::Notifier::start(
        app.store.clone(),
        app.admin.log.clone(),
        crate::ops::notifications::sender(app),
        observer(app.clone()),
        notify::DigestConfig {
            period: app.config.digest_period,
            source: digest_source(app.clone()),
        },
    );
    let _ = app.notifier.set(notifier);
}

/// What the notifier sees each tick: the engine's remote error, damaged
/// archives, the disk against its reserve, uploads waiting without
/// progress or outside the upload window, the last firmware update and
/// the recovery passphrase.
fn observer(app: Arc<App>) -> Observer {
    // (bytes uploaded so far, since when nothing moved) while work waits.
    let mut progress: Option<(u64, i64)> = None;
    let mut window_closed_since: Option<i64> = None;
    Box::new(move |now| {
        let archives = app.archives.list_all().unwrap_or_default();
        // A damaged archive moved to the trash is no longer a problem.
        let trashed: HashSet<String> = app
            .archives
            .all_trashed()
            .unwrap_or_default()
            .into_iter()
            .map(|(archive, _)| archive.id)
            .collect();
        let kept: Vec<ArchiveRecord> = archives
            .iter()
            .filter(|a| !trashed.contains(&a.id))
            .cloned()
            .collect();
        let settings = Settings::load(&app.store).unwrap_or_default();
        let waiting = archives
            .iter()
            .any(|a| matches!(a.state, ArchiveState::Local | ArchiveState::Uploading));
        let uploaded: u64 = archives.iter().map(|a| a.bytes_remote).sum();
        progress = match progress {
            Some((bytes, since)) if waiting && bytes == uploaded => Some((bytes, since)),
            _ if waiting => Some((uploaded, now)),
            _ => None,
        };
        let window_open = settings.upload_window.as_ref().is_none_or(|window| {
            match (parse_hh_mm(&window.start), parse_hh_mm(&window.end)) {
                (Some(start), Some(end)) => {
                    crate::engine::in_window(start, end, app.config.zone.minute_of_day(now))
                }
                _ => true,
            }
        });
        window_closed_since = match window_closed_since {
            _ if window_open || !waiting => None,
            Some(since) => Some(since),
            None => Some(now),
        };
        let main = app.engine.destination_health();
        Observation {
            remote_error: main.error(crate::engine::destinations::MAIN),
            remote_unknown: !main.heard_from(crate::engine::destinations::MAIN),
            copy_outages: copy_outages(&app),
            copies_unknown: copies_unknown(&app),
            damaged: kept
                .iter()
                .filter(|a| a.state == ArchiveState::Damaged)
                .map(|a| ArchiveRef {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    owner: a.owner_id.clone(),
                })
                .collect(),
            verification_failed: failed_verifications(&app, &kept),
            backed_up: archives
                .iter()
                .filter(|a| {
                    matches!(
                        a.state,
                        ArchiveState::BackedUp | ArchiveState::Uncached | ArchiveState::Caching
                    )
                })
                .map(|a| ArchiveRef {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    owner: a.owner_id.clone(),
                })
                .collect(),
            disk_low: disk_low(&app.config.data_dir, settings.free_space_reserve_bytes),
            waiting_since: progress.map(|(_, since)| since),
            window_closed_since,
            update_failed: crate::update::read_record(Path::new(crate::update::RECORD))
                .filter(|record| record.result == "failed")
                .map(|record| (record.version, record.message)),
            passphrase_unconfirmed_since: passphrase_unconfirmed_since(&app),
        }
    })
}

/// Each copy destination with a lasting problem (its error, or its
/// folder gone), named.
fn copy_outages(app: &App) -> Vec<crate::notify::problems::CopyOutage> {
    crate::ops::safety::destinations(app)
        .into_iter()
        .skip(1)
        .filter_map(|copy| {
            let error = match (&copy.error, &copy.placement) {
                (Some(error), _) => error.clone(),
                (None, crate::remote::placement::Placement::Unreachable) => {
                    "Its folder is missing or its disk is not mounted.".to_string()
                }
                (None, _) => return None,
            };
            Some(crate::notify::problems::CopyOutage {
                id: copy.id,
                name: copy.name,
                error,
            })
        })
        .collect()
}

/// Copy destinations not heard from since start: whether they work is not
/// known yet.
fn copies_unknown(app: &App) -> Vec<String> {
    let health = app.engine.destination_health();
    app.destinations()
        .into_iter()
        .skip(1)
        .filter(|(destination, placement)| {
            *placement != crate::remote::placement::Placement::Unreachable
                && !health.heard_from(&destination.id)
        })
        .map(|(destination, _)| destination.id)
        .collect()
}

/// The archives whose last verification failed; a failure of an archive
/// that is gone is forgotten.
fn failed_verifications(app: &App, archives: &[ArchiveRecord]) -> Vec<FailedArchive> {
    let failures = crate::notify::verifications::load(&app.store).unwrap_or_default();
    failures
        .into_iter()
        .filter_map(|failure| {
            let archive = archives.iter().find(|a| a.id == failure.archive_id)?;
            Some(FailedArchive {
                id: archive.id.clone(),
                name: archive.name.clone(),
                owner: archive.owner_id.clone(),
                reason: failure.reason,
            })
        })
        .collect()
}

/// What the weekly digest reads: each user's archives created since the
/// period began, what is backed up and what is only on the box, the disk.
fn digest_source(app: Arc<App>) -> notify::DigestSource {
    Box::new(move |since| {
        let archives = app.archives.list_all().unwrap_or_default();
        let users = app
            .store
            .read()
            .and_then(|txn| app.store.tables.users.all(&txn))
            .unwrap_or_default();
        let members = users
            .iter()
            .map(|(_, user)| {
                let new: Vec<&ArchiveRecord> = archives
                    .iter()
                    .filter(|a| a.owner_id == user.id && a.created_at >= since)
                    .collect();
                MemberWeek {
                    username: user.username.clone(),
                    archives: new.len() as u64,
                    bytes: new.iter().map(|a| a.size).sum(),
                }
            })
            .collect();
        let count = |keep: &dyn Fn(ArchiveState) -> bool| {
            let chosen = archives.iter().filter(|a| keep(a.state));
            chosen.fold((0, 0), |(n, bytes), a| (n + 1, bytes + a.size))
        };
        let disk = rustix::fs::statvfs(&app.config.data_dir).ok().map(|stat| {
            let free = crate::disk::available_bytes(&app.config.data_dir).unwrap_or(0);
            (free, stat.f_blocks.saturating_mul(stat.f_frsize))
        });
        DigestInput {
            members,
            backed_up: count(&|state| {
                matches!(
                    state,
                    ArchiveState::BackedUp | ArchiveState::Uncached | ArchiveState::Caching
                )
            }),
            only_on_box: count(&|state| {
                matches!(state, ArchiveState::Local | ArchiveState::Uploading)
            }),
            disk,
        }
    })
}

/// `(free, needed)` when free space is below the reserve or 5 % of the disk.
fn disk_low(data_dir: &Path, reserve: u64) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(data_dir).ok()?;
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    let free = crate::disk::available_bytes(data_dir).ok()?;
    let needed = reserve.max(total / 100 * crate::device::status::NEARLY_FULL_PERCENT);
    (free < needed).then_some((free, needed))
}

/// When the first account was made, if the passphrase shown then was
/// never typed back.
fn passphrase_unconfirmed_since(app: &App) -> Option<i64> {
    use crate::engine::keys::PassphraseCheck;
    let check = crate::engine::keys::passphrase_check(&app.store).ok()??;
    if check != PassphraseCheck::NotTypedBack {
        return None;
    }
    let txn = app.store.read().ok()?;
    let users = app.store.tables.users.all(&txn).ok()?;
    users.iter().map(|(_, user)| user.created_at).min()
}
