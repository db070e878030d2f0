//! The device status model: one small value that says what the appliance is
//! doing, computed by a pure function from counts the engine and store supply.
//!
//! Owns: [`DeviceStatus`], its inputs ([`StatusInputs`]) and the rules that
//! turn one into the other (what counts as "pending", "nearly full", which
//! problem is reported first). Must not touch: the clock, the store, the
//! engine or any hardware; the caller gathers the inputs and hands them in.
//! Both renderers (`leds`, `display`) read only [`DeviceStatus`].

use serde::Serialize;

/// What the appliance is doing, most visible first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Nothing queued, nothing moving, no archive waiting: everything is backed up.
    Idle,
    /// Work is waiting (an upload being received, archives not yet uploaded,
    /// queued jobs) but no transfer is moving right now.
    Pending,
    /// An archive is being uploaded to the remote.
    Uploading,
    /// An archive is being fetched back from the remote ("caching").
    Caching,
    /// A firmware update is being written, or the appliance is restarting into
    /// it: `current` names the version and the share written ([`updating`]).
    Updating,
}

/// Something a person should look at, with the sentence that says what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// One or more short sentences, most urgent first, e.g.
    /// "1 archive failed verification. Remote unreachable: connection refused."
    pub reason: String,
    /// True when a copy of someone's data is known to be bad (a damaged
    /// archive); the red LED blinks fast instead of staying on.
    pub data_at_risk: bool,
}

/// The transfer shown on the display and driving the blue LED.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrentTransfer {
    /// The archive's name as its owner gave it (any Unicode; the display
    /// shortens and maps it, this keeps it whole).
    pub archive_name: String,
    /// 0..=100, rounded down, so 100 only when the transfer is complete.
    /// A zero-byte archive counts as complete (100).
    pub percent: u8,
    /// Current throughput; 0 when stalled (waiting for a retry, say).
    pub bytes_per_sec: u64,
}

/// Everything the LEDs and the display show, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    pub activity: Activity,
    /// `Some` turns the red LED on and puts the reason on the display.
    pub attention: Option<Attention>,
    /// Jobs waiting in the engine's queue (not counting the running ones).
    pub queue_length: u64,
    pub current: Option<CurrentTransfer>,
    /// Address of the web UI, e.g. "http://192.168.1.23:8080"; empty when
    /// the box has no network address yet.
    pub web_url: String,
    /// True when the backups go to a folder on the appliance's own disk or
    /// a USB disk plugged into it: the box then never says "backed up" or
    /// "safe", only "on this box only" or "on the USB disk only".
    pub on_box_only: bool,
    /// The label of the USB disk the backups go to (its device name when it
    /// has none), so the display can name it; `None` for any other place.
    pub usb_disk: Option<String>,
    /// `Some`: the display shows this HTTPS certificate fingerprint (the
    /// SHA-256 as the API gives it) instead of the status; the feed turns
    /// it on for a few seconds of every cycle.
    pub fingerprint_page: Option<String>,
}

impl DeviceStatus {
    /// The status shown before the engine has reported anything: idle, no
    /// queue, no problem known yet.
    pub fn starting(web_url: impl Into<String>) -> DeviceStatus {
        DeviceStatus {
            activity: Activity::Idle,
            attention: None,
            queue_length: 0,
            current: None,
            web_url: web_url.into(),
            on_box_only: false,
            usb_disk: None,
            fingerprint_page: None,
        }
    }
}

/// `status` while a firmware update to `version` is written (`percent`) and
/// through the restart: the update is all the LEDs and display show, the
/// address stays. Pure.
pub fn updating(status: DeviceStatus, version: &str, percent: u8) -> DeviceStatus {
    DeviceStatus {
        activity: Activity::Updating,
        attention: None,
        current: Some(CurrentTransfer {
            archive_name: version.to_string(),
            percent: percent.min(100),
            bytes_per_sec: 0,
        }),
        ..status
    }
}

/// Number of archives in each state of the archive state machine
/// (`receiving -> local -> uploading -> backed_up -> uncached -> caching`,
/// plus `deleting` and `damaged`), as counted in the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveCounts {
    pub receiving: u64,
    pub local: u64,
    pub uploading: u64,
    pub backed_up: u64,
    pub uncached: u64,
    pub caching: u64,
    pub deleting: u64,
    pub damaged: u64,
}

/// Which way a transfer moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferDirection {
    /// Local archive to the remote.
    Upload,
    /// Remote back to the box (caching an uncached archive).
    Download,
}

/// The transfer the engine is working on right now (the one to show when
/// several run at once: the lead picks, e.g. the oldest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveTransfer {
    pub direction: TransferDirection,
    pub archive_name: String,
    /// Bytes of this archive already transferred (acknowledged parts plus the
    /// running part's progress, whatever the engine tracks).
    pub bytes_done: u64,
    /// The archive's size in bytes; 0 for an empty archive.
    pub bytes_total: u64,
    pub bytes_per_sec: u64,
}

/// Free space on the data partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// Everything [`compute_status`] needs; the lead fills it from the store
/// (archive counts), the engine (queue, active transfer, last remote error),
/// `statvfs` on the data directory and the settings (reserve).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInputs {
    pub archives: ArchiveCounts,
    /// Jobs in the persistent queue that are not running.
    pub jobs_queued: u64,
    pub active_transfer: Option<ActiveTransfer>,
    /// The remote's current problem as one sentence, e.g. "Remote unreachable:
    /// connection refused." or "Remote rejects the access key.". `None` when
    /// the last request succeeded (or none was made yet).
    pub remote_error: Option<String>,
    /// Each copy destination's lasting problem (issue 24), one sentence
    /// each, naming it: "Grandpa's NAS cannot be reached: connection
    /// refused.". Empty while every copy destination works.
    pub copy_errors: Vec<String>,
    /// `None` when free space could not be read.
    pub disk: Option<DiskSpace>,
    /// The configured `free_space_reserve_bytes` (ingest refuses uploads that
    /// would go below it).
    pub free_space_reserve_bytes: u64,
    pub web_url: String,
    /// A move of the backups to new storage, while one runs.
    pub remote_move: Option<MoveProgress>,
    /// The remote is a folder on the appliance's own disk or on a USB disk
    /// plugged into it (not off-site).
    pub on_box_only: bool,
    /// The USB disk's label when the remote is a folder on one.
    pub usb_disk: Option<String>,
    /// The data disk went read-only or failed a read or write
    /// (`crate::disk::problem`), as one sentence.
    pub disk_problem: Option<String>,
}

/// How far a move of the backups to new storage has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveProgress {
    pub parts_done: u64,
    pub parts_total: u64,
    /// Archives that cannot be copied because the old storage is
    /// unreachable and no local copy exists.
    pub archives_waiting_for_old_storage: u64,
}

/// The disk counts as nearly full below this share of its size (5 %), or
/// below the configured reserve, whichever is larger.
pub const NEARLY_FULL_PERCENT: u64 = 5;

/// Computes the device status. Rules, in order:
///
/// - activity: an active upload gives `Uploading`, an active download
///   `Caching`; otherwise any queued job or any archive in `receiving`,
///   `local`, `uploading`, `caching` or `deleting` gives `Pending`;
///   otherwise `Idle` (everything is backed up or deliberately uncached).
/// - attention, reasons joined most urgent first: a failing or read-only
///   data disk and damaged archives (data at risk), then a nearly full disk (free below the reserve or below
///   [`NEARLY_FULL_PERCENT`] of the disk), then the remote's error.
/// - percent: `bytes_done * 100 / bytes_total` rounded down and capped at
///   100; a zero-byte archive is 100.
pub fn compute_status(inputs: &StatusInputs) -> DeviceStatus {
    let counts = &inputs.archives;
    let work_waiting = inputs.jobs_queued > 0
        || inputs.remote_move.is_some()
        || counts.receiving > 0
        || counts.local > 0
        || counts.uploading > 0
        || counts.caching > 0
        || counts.deleting > 0;
    let activity = match &inputs.active_transfer {
        Some(transfer) if transfer.direction == TransferDirection::Upload => Activity::Uploading,
        Some(_) => Activity::Caching,
        None if work_waiting => Activity::Pending,
        None => Activity::Idle,
    };

    let current = inputs
        .active_transfer
        .as_ref()
        .map(|transfer| CurrentTransfer {
            archive_name: transfer.archive_name.clone(),
            percent: percent_of(transfer.bytes_done, transfer.bytes_total),
            bytes_per_sec: transfer.bytes_per_sec,
        })
        .or_else(|| {
            inputs.remote_move.as_ref().map(|moving| CurrentTransfer {
                archive_name: "Moving to new storage".to_string(),
                percent: percent_of(moving.parts_done, moving.parts_total),
                bytes_per_sec: 0,
            })
        });

    DeviceStatus {
        activity,
        attention: attention(inputs),
        queue_length: inputs.jobs_queued,
        current,
        web_url: inputs.web_url.clone(),
        on_box_only: inputs.on_box_only,
        usb_disk: inputs.usb_disk.clone(),
        fingerprint_page: None,
    }
}

fn attention(inputs: &StatusInputs) -> Option<Attention> {
    let mut reasons: Vec<String> = Vec::new();
    if let Some(problem) = &inputs.disk_problem {
        reasons.push(problem.trim().to_string());
    }
    let damaged = inputs.archives.damaged;
    if damaged == 1 {
        reasons.push("1 archive failed verification.".to_string());
    } else if damaged > 1 {
        reasons.push(format!("{damaged} archives failed verification."));
    }
    if let Some(disk) = inputs.disk {
        if disk_nearly_full(disk, inputs.free_space_reserve_bytes) {
            reasons.push(format!(
                "Disk nearly full: {} free.",
                crate::units::human_size(disk.free_bytes)
            ));
        }
    }
    let waiting = inputs
        .remote_move
        .as_ref()
        .map_or(0, |moving| moving.archives_waiting_for_old_storage);
    if waiting > 0 {
        reasons.push(format!(
            "{waiting} {} not yet on the new storage: the old storage is unreachable.",
            if waiting == 1 {
                "archive is"
            } else {
                "archives are"
            }
        ));
    }
    if let Some(remote_error) = &inputs.remote_error {
        let trimmed = remote_error.trim();
        if !trimmed.is_empty() {
            reasons.push(trimmed.to_string());
        }
    }
    for copy_error in &inputs.copy_errors {
        let trimmed = copy_error.trim();
        if !trimmed.is_empty() {
            reasons.push(trimmed.to_string());
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Attention {
        reason: reasons.join(" "),
        data_at_risk: damaged > 0 || inputs.disk_problem.is_some(),
    })
}

/// True when free space is below the reserve or below
/// [`NEARLY_FULL_PERCENT`] of the disk.
pub fn disk_nearly_full(disk: DiskSpace, reserve_bytes: u64) -> bool {
    let below_share = u128::from(disk.free_bytes) * 100
        < u128::from(disk.total_bytes) * u128::from(NEARLY_FULL_PERCENT);
    disk.free_bytes < reserve_bytes || below_share
}

/// `done * 100 / total`, rounded down, capped at 100; 100 when `total` is 0.
pub fn percent_of(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    let percent = (u128::from(done) * 100 / u128::from(total)).min(100);
    // At most 100, so it fits.
    percent as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> StatusInputs {
        StatusInputs {
            remote_move: None,
            on_box_only: false,
            usb_disk: None,
            archives: ArchiveCounts {
                backed_up: 12,
                uncached: 3,
                ..ArchiveCounts::default()
            },
            jobs_queued: 0,
            active_transfer: None,
            remote_error: None,
            copy_errors: Vec::new(),
            disk: Some(DiskSpace {
                free_bytes: 500_000_000_000,
                total_bytes: 1_000_000_000_000,
            }),
            free_space_reserve_bytes: 1_000_000_000,
            web_url: "http://192.168.1.23:8080".to_string(),
            disk_problem: None,
        }
    }

    #[test]
    fn a_move_is_work_pending_with_its_progress_and_a_stuck_one_needs_attention() {
        let mut inputs = quiet();
        inputs.remote_move = Some(MoveProgress {
            parts_done: 37,
            parts_total: 912,
            archives_waiting_for_old_storage: 0,
        });
        let status = compute_status(&inputs);
        assert_eq!(status.activity, Activity::Pending);
        assert_eq!(status.attention, None);
        let current = status.current.expect("the move is shown");
        assert_eq!(current.archive_name, "Moving to new storage");
        assert_eq!(current.percent, 4);

        inputs.remote_move = Some(MoveProgress {
            parts_done: 37,
            parts_total: 912,
            archives_waiting_for_old_storage: 2,
        });
        let attention = compute_status(&inputs).attention.expect("red");
        assert!(
            attention
                .reason
                .contains("2 archives are not yet on the new storage"),
            "{}",
            attention.reason
        );
        assert!(!attention.data_at_risk);
    }

    fn upload(done: u64, total: u64) -> ActiveTransfer {
        ActiveTransfer {
            direction: TransferDirection::Upload,
            archive_name: "holiday.mp4".to_string(),
            bytes_done: done,
            bytes_total: total,
            bytes_per_sec: 1_250_000,
        }
    }

    #[test]
    fn activity_table() {
        type Case = (&'static str, fn(&mut StatusInputs), Activity);
        let cases: &[Case] = &[
            ("all backed up", |_| {}, Activity::Idle),
            ("queued job", |i| i.jobs_queued = 2, Activity::Pending),
            ("receiving", |i| i.archives.receiving = 1, Activity::Pending),
            ("local", |i| i.archives.local = 1, Activity::Pending),
            (
                "uploading, between parts",
                |i| i.archives.uploading = 1,
                Activity::Pending,
            ),
            (
                "caching, between parts",
                |i| i.archives.caching = 1,
                Activity::Pending,
            ),
            ("deleting", |i| i.archives.deleting = 1, Activity::Pending),
            (
                "damaged only is not work",
                |i| i.archives.damaged = 1,
                Activity::Idle,
            ),
            (
                "upload moving",
                |i| i.active_transfer = Some(upload(1, 2)),
                Activity::Uploading,
            ),
            (
                "download moving",
                |i| {
                    let mut transfer = upload(1, 2);
                    transfer.direction = TransferDirection::Download;
                    i.active_transfer = Some(transfer);
                },
                Activity::Caching,
            ),
        ];
        for (name, change, expected) in cases {
            let mut inputs = quiet();
            change(&mut inputs);
            assert_eq!(compute_status(&inputs).activity, *expected, "case: {name}");
        }
    }

    #[test]
    fn attention_table() {
        type Case = (
            &'static str,
            fn(&mut StatusInputs),
            Option<(&'static str, bool)>,
        );
        let cases: &[Case] = &[
            ("healthy", |_| {}, None),
            (
                "one damaged",
                |i| i.archives.damaged = 1,
                Some(("1 archive failed verification.", true)),
            ),
            (
                "three damaged",
                |i| i.archives.damaged = 3,
                Some(("3 archives failed verification.", true)),
            ),
            (
                "below reserve",
                |i| {
                    i.disk = Some(DiskSpace {
                        free_bytes: 900_000_000,
                        total_bytes: 2_000_000_000,
                    })
                },
                Some(("Disk nearly full: 858 MiB free.", false)),
            ),
            (
                "below five percent",
                |i| {
                    i.free_space_reserve_bytes = 0;
                    i.disk = Some(DiskSpace {
                        free_bytes: 49,
                        total_bytes: 1000,
                    })
                },
                Some(("Disk nearly full: 49 B free.", false)),
            ),
            (
                "exactly five percent is fine",
                |i| {
                    i.free_space_reserve_bytes = 0;
                    i.disk = Some(DiskSpace {
                        free_bytes: 50,
                        total_bytes: 1000,
                    })
                },
                None,
            ),
            ("disk unknown", |i| i.disk = None, None),
            (
                "failing disk first, data at risk",
                |i| {
                    i.disk_problem = Some("The data disk is read-only.".into());
                    i.remote_error = Some("Remote unreachable.".into());
                },
                Some(("The data disk is read-only. Remote unreachable.", true)),
            ),
            (
                "remote",
                |i| i.remote_error = Some("Remote unreachable: connection refused.".into()),
                Some(("Remote unreachable: connection refused.", false)),
            ),
            ("blank remote error", |i| i.remote_error = Some("  ".into()), None),
            (
                "a copy destination, after the main one",
                |i| {
                    i.remote_error = Some("Remote unreachable.".into());
                    i.copy_errors = vec![
                        "Grandpa's NAS cannot be reached: connection refused.".into(),
                        " ".into(),
                    ];
                },
                Some((
                    "Remote unreachable. Grandpa's NAS cannot be reached: connection refused.",
                    false,
                )),
            ),
            (
                "all three, most urgent first",
                |i| {
                    i.archives.damaged = 2;
                    i.free_space_reserve_bytes = 10_000_000_000;
                    i.disk = Some(DiskSpace {
                        free_bytes: 1_500_000_000,
                        total_bytes: 64_000_000_000,
                    });
                    i.remote_error = Some("Remote rejects the access key.".into());
                },
                Some((
                    "2 archives failed verification. Disk nearly full: 1.3 GiB free. Remote rejects the access key.",
                    true,
                )),
            ),
        ];
        for (name, change, expected) in cases {
            let mut inputs = quiet();
            change(&mut inputs);
            let got = compute_status(&inputs).attention;
            let got = got.as_ref().map(|a| (a.reason.as_str(), a.data_at_risk));
            assert_eq!(got, *expected, "case: {name}");
        }
    }

    #[test]
    fn percent_table() {
        let cases: &[(u64, u64, u8)] = &[
            (0, 100, 0),
            (42, 100, 42),
            (999, 1000, 99),
            (1000, 1000, 100),
            (2000, 1000, 100),
            (0, 0, 100),
            (u64::MAX - 1, u64::MAX, 99),
            (u64::MAX, u64::MAX, 100),
        ];
        for (done, total, expected) in cases {
            assert_eq!(percent_of(*done, *total), *expected, "{done}/{total}");
        }
    }

    #[test]
    fn current_transfer_carries_name_percent_rate() {
        let mut inputs = quiet();
        inputs.jobs_queued = 4;
        inputs.active_transfer = Some(upload(420, 1000));
        let status = compute_status(&inputs);
        assert_eq!(status.queue_length, 4);
        assert_eq!(
            status.current,
            Some(CurrentTransfer {
                archive_name: "holiday.mp4".into(),
                percent: 42,
                bytes_per_sec: 1_250_000
            })
        );
        assert_eq!(status.web_url, "http://192.168.1.23:8080");
    }
}
