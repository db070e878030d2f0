//! The device feed: a thread that recomputes the device status from the
//! catalog, the engine and the disk once a second and sends it to the
//! LED/display driver; and the web address the display shows.
//!
//! Owns: gathering `StatusInputs`. The status itself is
//! `crate::device::status`'s; the pages that mirror it are `web::device`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::state::App;
use crate::device::status::{
    compute_status, ActiveTransfer, ArchiveCounts, DiskSpace, StatusInputs, TransferDirection,
};
use crate::device::StatusSender;
use crate::disk::available_bytes;
use crate::engine::activity::Direction;
use crate::remote::placement::Placement;
use crate::settings::Settings;
use crate::store::records::ArchiveState;

/// How often the feed recomputes the status (the driver skips unchanged ones).
const FEED_PERIOD: Duration = Duration::from_secs(1);
/// The display cycles: the status for this long, then the certificate
/// fingerprint for [`FINGERPRINT_SHOWN`].
const STATUS_SHOWN: Duration = Duration::from_secs(20);
const FINGERPRINT_SHOWN: Duration = Duration::from_secs(5);

/// Whether the display shows the fingerprint page `elapsed` after start.
pub fn fingerprint_turn(elapsed: Duration) -> bool {
    let cycle = (STATUS_SHOWN + FINGERPRINT_SHOWN).as_millis();
    elapsed.as_millis() % cycle >= STATUS_SHOWN.as_millis()
}

/// The status inputs as the catalog, the engine and the disk say now;
/// `bytes_per_sec` is the engine's current throughput (see [`Rate`]).
pub fn current_inputs(app: &App, web_url: &str, bytes_per_sec: u64) -> StatusInputs {
    let archives = app.archives.list_all().unwrap_or_default();
    let mut counts = ArchiveCounts::default();
    for archive in &archives {
        let slot = match archive.state {
            ArchiveState::Receiving => &mut counts.receiving,
            ArchiveState::Local => &mut counts.local,
            ArchiveState::Uploading => &mut counts.uploading,
            ArchiveState::BackedUp => &mut counts.backed_up,
            ArchiveState::Uncached => &mut counts.uncached,
            ArchiveState::Caching => &mut counts.caching,
            ArchiveState::Deleting => &mut counts.deleting,
            ArchiveState::Damaged => &mut counts.damaged,
        };
        *slot += 1;
    }
    let activity = app.engine.activity();
    let active_transfer = activity.transfers().into_iter().find_map(|transfer| {
        let archive = archives.iter().find(|a| a.id == transfer.archive_id)?;
        let (direction, bytes_done) = match transfer.direction {
            // An upload's progress is the bytes of the parts already stored
            // remotely, counted on the archive record (no part is read).
            Direction::Upload => (TransferDirection::Upload, archive.bytes_remote),
            Direction::Download => (TransferDirection::Download, transfer.bytes_done),
        };
        Some(ActiveTransfer {
            direction,
            archive_name: archive.name.clone(),
            bytes_done,
            bytes_total: archive.size,
            bytes_per_sec,
        })
    });
    // Judged once, so the two fields agree.
    let placement = app.placement();
    let disk = rustix::fs::statvfs(&app.config.data_dir)
        .ok()
        .map(|stat| DiskSpace {
            free_bytes: available_bytes(&app.config.data_dir).unwrap_or(0),
            total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        });
    StatusInputs {
        archives: counts,
        jobs_queued: app.engine.jobs_waiting(),
        active_transfer,
        remote_error: app
            .engine
            .destination_health()
            .error(crate::engine::destinations::MAIN),
        copy_errors: crate::ops::safety::destinations(app)
            .iter()
            .skip(1)
            .filter_map(crate::ops::safety::copy_problem)
            .collect(),
        disk,
        free_space_reserve_bytes: Settings::load(&app.store)
            .map(|s| s.free_space_reserve_bytes)
            .unwrap_or(0),
        web_url: web_url.to_string(),
        on_box_only: !placement.is_off_site(),
        usb_disk: match placement {
            Placement::UsbDisk(label) => Some(label),
            _ => None,
        },
        disk_problem: crate::disk::problem(),
        remote_move: app.engine.remote_move().ok().flatten().map(|record| {
            crate::device::status::MoveProgress {
                parts_done: record.parts_total.saturating_sub(record.parts_left),
                parts_total: record.parts_total,
                archives_waiting_for_old_storage: record.stuck_archives.len() as u64,
            }
        }),
    }
}

/// Throughput from successive readings of a byte counter, smoothed so one
/// 16 MiB part landing does not make the display jump.
#[derive(Debug, Default)]
pub struct Rate {
    last: Option<(std::time::Instant, u64)>,
    bytes_per_sec: f64,
}

impl Rate {
    /// Feeds a reading of the counter taken at `now`; returns the rate.
    pub fn update(&mut self, now: std::time::Instant, counter: u64) -> u64 {
        if let Some((then, before)) = self.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                let sample = counter.saturating_sub(before) as f64 / secs;
                self.bytes_per_sec = 0.7 * self.bytes_per_sec + 0.3 * sample;
            }
        }
        self.last = Some((now, counter));
        if self.bytes_per_sec < 1.0 {
            self.bytes_per_sec = 0.0;
        }
        self.bytes_per_sec as u64
    }
}

/// The address a person types into a browser to reach `listen`: when the
/// server listens on every interface, the address of the interface the
/// default route leaves by (no packet is sent); empty while there is none.
pub fn web_url(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return format!("http://{listen}");
    }
    match lan_address() {
        Some(ip) => format!("http://{}", SocketAddr::new(ip, listen.port())),
        None => String::new(),
    }
}

/// The web UI's address as the display and pages show it: by name
/// (`https://piarchive.local`) while mDNS announces it, else by number.
pub fn address(app: &App, listen: SocketAddr) -> String {
    app.mdns
        .get()
        .and_then(|mdns| mdns.url())
        .unwrap_or_else(|| web_url(listen))
}

/// The address this machine uses on the LAN (the source address of a route
/// out; nothing is sent), when it has one.
pub fn lan_address() -> Option<std::net::IpAddr> {
    let ip = std::net::UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|socket| {
            socket.connect(("192.0.2.1", 9))?;
            socket.local_addr()
        })
        .ok()?
        .ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Starts the feed thread: recomputes the status every [`FEED_PERIOD`]
/// (the address too: DHCP may hand one out after start).
pub fn start_feed(app: Arc<App>, sender: StatusSender, listen: SocketAddr) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut rate = Rate::default();
        let started = std::time::Instant::now();
        while !flag.load(Ordering::Relaxed) {
            let web_url = address(&app, listen);
            let metrics = crate::metrics::global();
            let moved = metrics.bytes_uploaded() + metrics.bytes_downloaded();
            let bytes_per_sec = rate.update(std::time::Instant::now(), moved);
            let mut status = compute_status(&current_inputs(&app, &web_url, bytes_per_sec));
            // No HTTPS listener: no certificate is served, so none is shown.
            if app.https_addr.get().is_some() && fingerprint_turn(started.elapsed()) {
                status.fingerprint_page = Some(app.tls.info().fingerprint_sha256);
            }
            // An update in progress overrides the status (display text, LED pattern).
            sender.send(crate::update::on_display(status));
            std::thread::sleep(FEED_PERIOD);
        }
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_rate_follows_the_counter_smoothed_and_falls_to_zero_when_idle() {
        let mut rate = Rate::default();
        let start = Instant::now();
        assert_eq!(rate.update(start, 0), 0, "one reading gives no rate");
        let mut now = start;
        let mut counter = 0;
        let mut last = 0;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            counter += 1_000_000;
            last = rate.update(now, counter);
        }
        assert!((990_000..=1_000_000).contains(&last), "{last}");
        for _ in 0..60 {
            now += Duration::from_secs(1);
            last = rate.update(now, counter);
        }
        assert_eq!(last, 0, "nothing moving reads as 0 B/s");
    }

    #[test]
    fn the_display_shows_the_fingerprint_five_seconds_in_every_twenty_five() {
        let shown: Vec<u64> = (0..50)
            .filter(|&s| fingerprint_turn(Duration::from_secs(s)))
            .collect();
        let expected: Vec<u64> = (20..25).chain(45..50).collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn the_web_url_is_the_listen_address_or_a_real_interface() {
        let fixed: SocketAddr = "192.168.1.23:8080".parse().unwrap();
        assert_eq!(web_url(fixed), "http://192.168.1.23:8080");
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let url = web_url(any);
        assert!(!url.contains("0.0.0.0"), "{url}");
        assert!(url.is_empty() || url.ends_with(":8080"), "{url}");
    }
}
