//! Tests across the device modules: display snapshots (ASCII art committed in
//! `src/device/snapshots/`, with a PNG of each for people) and the driver
//! thread with test hardware (recording LEDs, a panel that fails on demand).
//!
//! Snapshots: `UPDATE_SNAPSHOTS=1 cargo test --lib device::` rewrites them;
//! otherwise a frame that differs from its file fails the test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backend::{DeviceError, Display, Hardware, Leds};
use super::board::BoardProfile;
use super::display::{render, Framebuffer, HEIGHT, WIDTH};
use super::driver::{DeviceDriver, DeviceMirror, DriverOptions, MirrorHandle, Output};
use super::leds::{LedLevels, LedStates, Pattern};
use super::status::{
    compute_status, ActiveTransfer, Activity, ArchiveCounts, Attention, CurrentTransfer,
    DeviceStatus, DiskSpace, StatusInputs, TransferDirection,
};

const URL: &str = "http://192.168.1.23:8080";

fn status(activity: Activity, queue_length: u64) -> DeviceStatus {
    DeviceStatus {
        activity,
        attention: None,
        queue_length,
        current: None,
        web_url: URL.to_string(),
        on_box_only: false,
        usb_disk: None,
        fingerprint_page: None,
    }
}

fn transfer(name: &str, percent: u8, bytes_per_sec: u64) -> Option<CurrentTransfer> {
    Some(CurrentTransfer {
        archive_name: name.to_string(),
        percent,
        bytes_per_sec,
    })
}

/// 200 characters (code points) of emoji, including a ZWJ family, skin tones
/// and flags, with a little text between.
fn emoji_name() -> String {
    let pieces = ["👨‍👩‍👧", " Ferien ", "🇩🇪", "🌊", "👵🏼", "🎉"];
    let mut name = String::new();
    let mut index = 0;
    while name.chars().count() < 200 {
        let piece = pieces[index % pieces.len()];
        index += 1;
        if name.chars().count() + piece.chars().count() > 200 {
            name.push('😀');
        } else {
            name.push_str(piece);
        }
    }
    assert_eq!(name.chars().count(), 200);
    name
}

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/device/snapshots")
}

/// Compares the frame for `status` with `snapshots/<name>.txt`, or rewrites
/// it (and `<name>.png`) when `UPDATE_SNAPSHOTS=1`.
fn check_snapshot(name: &str, status: &DeviceStatus) {
    let frame = render(status);
    let ascii = frame.to_ascii();
    let txt = snapshot_dir().join(format!("{name}.txt"));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|value| value == "1") {
        std::fs::create_dir_all(snapshot_dir()).expect("create snapshot dir");
        std::fs::write(&txt, &ascii).expect("write snapshot");
        let png = frame.to_png().expect("frame encodes");
        std::fs::write(snapshot_dir().join(format!("{name}.png")), png).expect("write png");
        return;
    }
    let expected = std::fs::read_to_string(&txt).unwrap_or_else(|error| {
        panic!(
            "{}: {error}; run with UPDATE_SNAPSHOTS=1 to create it",
            txt.display()
        )
    });
    if expected != ascii {
        let rows: Vec<usize> = expected
            .lines()
            .zip(ascii.lines())
            .enumerate()
            .filter(|(_, (old, new))| old != new)
            .map(|(row, _)| row)
            .collect();
        panic!(
            "frame {name} differs from {} in rows {rows:?}; new frame:\n{ascii}\nrun with UPDATE_SNAPSHOTS=1 if the change is intended",
            txt.display()
        );
    }
}

#[test]
fn snapshot_idle() {
    check_snapshot("idle", &status(Activity::Idle, 0));
}

#[test]
fn snapshot_idle_on_box_only() {
    let status = DeviceStatus {
        on_box_only: true,
        ..status(Activity::Idle, 0)
    };
    check_snapshot("idle_on_box_only", &status);
    let shown = render(&status).to_ascii();
    assert_ne!(shown, render(&status_idle()).to_ascii());
}

#[test]
fn snapshot_idle_on_a_usb_disk() {
    let status = DeviceStatus {
        on_box_only: true,
        usb_disk: Some("Photos-Backup-2TB-WD-Elements".to_string()),
        ..status(Activity::Idle, 0)
    };
    check_snapshot("idle_on_usb_disk", &status);
    let same_disk = DeviceStatus {
        usb_disk: None,
        ..status.clone()
    };
    assert_ne!(render(&status).to_ascii(), render(&same_disk).to_ascii());
}

#[test]
fn snapshot_fingerprint_page() {
    let fingerprint = (0u8..32)
        .map(|i| format!("{:02X}", i.wrapping_mul(37)))
        .collect::<Vec<_>>()
        .join(":");
    let status = DeviceStatus {
        fingerprint_page: Some(fingerprint),
        ..status(Activity::Uploading, 3)
    };
    check_snapshot("fingerprint", &status);
    assert_ne!(
        render(&status).to_ascii(),
        render(&status_idle()).to_ascii()
    );
}

fn status_idle() -> DeviceStatus {
    status(Activity::Idle, 0)
}

#[test]
fn snapshot_pending() {
    check_snapshot("pending", &status(Activity::Pending, 2));
}

#[test]
fn snapshot_uploading_42() {
    let mut uploading = status(Activity::Uploading, 3);
    uploading.current = transfer("holiday-2024.mp4", 42, 1_250_000);
    check_snapshot("uploading_42", &uploading);
}

#[test]
fn snapshot_caching() {
    let mut caching = status(Activity::Caching, 1);
    caching.current = transfer("Familie Müller – 1998.zip", 77, 350_000);
    check_snapshot("caching", &caching);
}

#[test]
fn snapshot_needs_attention() {
    let mut attention = status(Activity::Pending, 5);
    attention.attention = Some(Attention {
        reason: "Remote unreachable: connection refused.".to_string(),
        data_at_risk: false,
    });
    check_snapshot("needs_attention", &attention);
}

#[test]
fn snapshot_needs_attention_all_reasons_while_uploading() {
    let inputs = StatusInputs {
        remote_move: None,
        on_box_only: false,
        usb_disk: None,
        archives: ArchiveCounts {
            damaged: 2,
            local: 1,
            ..ArchiveCounts::default()
        },
        jobs_queued: 12,
        active_transfer: Some(ActiveTransfer {
            direction: TransferDirection::Upload,
            archive_name: "x.bin".to_string(),
            bytes_done: 5,
            bytes_total: 10,
            bytes_per_sec: 80_000,
        }),
        remote_error: Some("Remote rejects the access key.".to_string()),
        copy_errors: Vec::new(),
        disk: Some(DiskSpace {
            free_bytes: 1_500_000_000,
            total_bytes: 64_000_000_000,
        }),
        free_space_reserve_bytes: 2_000_000_000,
        web_url: URL.to_string(),
        disk_problem: None,
    };
    check_snapshot("needs_attention_all_reasons", &compute_status(&inputs));
}

#[test]
fn snapshot_emoji_name_200() {
    let mut uploading = status(Activity::Uploading, 0);
    uploading.current = transfer(&emoji_name(), 7, 999);
    check_snapshot("emoji_name_200", &uploading);
}

#[test]
fn snapshot_zero_byte_archive() {
    let inputs = StatusInputs {
        remote_move: None,
        on_box_only: false,
        usb_disk: None,
        archives: ArchiveCounts {
            uploading: 1,
            ..ArchiveCounts::default()
        },
        jobs_queued: 0,
        active_transfer: Some(ActiveTransfer {
            direction: TransferDirection::Upload,
            archive_name: "empty.txt".to_string(),
            bytes_done: 0,
            bytes_total: 0,
            bytes_per_sec: 0,
        }),
        remote_error: None,
        copy_errors: Vec::new(),
        disk: None,
        free_space_reserve_bytes: 0,
        web_url: URL.to_string(),
        disk_problem: None,
    };
    let zero = compute_status(&inputs);
    assert_eq!(zero.current.as_ref().map(|c| c.percent), Some(100));
    check_snapshot("zero_byte", &zero);
}

#[test]
fn snapshot_long_url_and_no_address() {
    let mut long = status(Activity::Idle, 0);
    long.web_url = "https://piarchive-wohnzimmer.fritz.box:8443".to_string();
    check_snapshot("long_url", &long);
    let mut none = status(Activity::Idle, 0);
    none.web_url = String::new();
    check_snapshot("no_address", &none);
}

#[test]
fn every_frame_fits_the_panel_and_differs_by_state() {
    let frames = [
        render(&status(Activity::Idle, 0)),
        render(&status(Activity::Pending, 1)),
        render(&status(Activity::Uploading, 1)),
        render(&status(Activity::Caching, 1)),
    ];
    for (i, a) in frames.iter().enumerate() {
        assert_eq!(a.to_ascii().lines().count(), HEIGHT);
        assert!(a.to_ascii().lines().all(|line| line.len() == WIDTH));
        for b in &frames[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

// ---- driver ----------------------------------------------------------------

/// Generous bound for "the driver thread got to it" on a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(10);

fn fast_options() -> DriverOptions {
    DriverOptions {
        tick: Duration::from_millis(5),
        min_frame_interval: Duration::from_millis(5),
        retry_every: Duration::from_millis(30),
    }
}

#[derive(Clone, Default)]
struct Probe {
    /// open_display succeeds only while this is true.
    display_present: Arc<AtomicBool>,
    /// flush fails while this is true (the panel was unplugged mid-run).
    flush_fails: Arc<AtomicBool>,
    display_opens: Arc<AtomicUsize>,
    led_opens: Arc<AtomicUsize>,
    /// Frames the "panel" accepted, in order.
    flushed: Arc<Mutex<Vec<Framebuffer>>>,
    /// Levels the "pins" got, in order.
    levels: Arc<Mutex<Vec<LedLevels>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Probe {
    fn logger(&self) -> Box<dyn Fn(&str) + Send> {
        let log = self.log.clone();
        Box::new(move |line: &str| log.lock().expect("log lock").push(line.to_string()))
    }
    fn log_lines(&self, containing: &str) -> usize {
        let log = self.log.lock().expect("log lock");
        log.iter().filter(|line| line.contains(containing)).count()
    }
    fn last_flushed(&self) -> Option<Framebuffer> {
        self.flushed.lock().expect("flushed lock").last().cloned()
    }
}

struct ProbeHardware(Probe);
struct ProbeDisplay(Probe);
struct ProbeLeds(Probe);

impl Hardware for ProbeHardware {
    fn open_leds(&mut self) -> Result<Box<dyn Leds>, DeviceError> {
        self.0.led_opens.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ProbeLeds(self.0.clone())))
    }
    fn open_display(&mut self) -> Result<Box<dyn Display>, DeviceError> {
        self.0.display_opens.fetch_add(1, Ordering::SeqCst);
        if self.0.display_present.load(Ordering::SeqCst) {
            Ok(Box::new(ProbeDisplay(self.0.clone())))
        } else {
            Err(DeviceError::I2c {
                bus: 1,
                address: 0x3C,
                detail: "Remote I/O error (os error 121)".to_string(),
            })
        }
    }
}

impl Display for ProbeDisplay {
    fn flush(&mut self, frame: &Framebuffer) -> Result<(), DeviceError> {
        if self.0.flush_fails.load(Ordering::SeqCst) {
            return Err(DeviceError::I2c {
                bus: 1,
                address: 0x3C,
                detail: "Remote I/O error (os error 121)".to_string(),
            });
        }
        self.0
            .flushed
            .lock()
            .expect("flushed lock")
            .push(frame.clone());
        Ok(())
    }
}

impl Leds for ProbeLeds {
    fn set(&mut self, levels: LedLevels) -> Result<(), DeviceError> {
        self.0.levels.lock().expect("levels lock").push(levels);
        Ok(())
    }
}

fn pi4() -> BoardProfile {
    BoardProfile::by_name("pi4").expect("pi4 profile")
}

fn start(profile: &BoardProfile, probe: &Probe, initial: DeviceStatus) -> DeviceDriver {
    DeviceDriver::start(
        profile,
        Box::new(ProbeHardware(probe.clone())),
        initial,
        fast_options(),
        probe.logger(),
    )
    .expect("driver thread starts")
}

fn wait(
    mirror: &MirrorHandle,
    what: &str,
    condition: impl FnMut(&DeviceMirror) -> bool,
) -> DeviceMirror {
    mirror.wait_until(PATIENCE, condition).unwrap_or_else(|| {
        panic!(
            "timed out waiting for: {what}; mirror: {:?}",
            mirror.snapshot()
        )
    })
}

fn shows(status: &DeviceStatus) -> impl FnMut(&DeviceMirror) -> bool + '_ {
    move |mirror| mirror.status == *status && mirror.frame == render(status)
}

#[test]
fn failing_i2c_degrades_to_simulated_and_recovers() {
    let probe = Probe::default();
    probe.display_present.store(true, Ordering::SeqCst);
    let idle = status(Activity::Idle, 0);
    let driver = start(&pi4(), &probe, idle.clone());
    let mirror = driver.mirror();

    let first = wait(&mirror, "panel shows the idle frame", |m| {
        m.display_output == Output::Hardware && m.generation > 1
    });
    assert_eq!(probe.last_flushed(), Some(render(&idle)));
    assert_eq!(first.frame, render(&idle));

    // The panel goes away mid-run.
    probe.flush_fails.store(true, Ordering::SeqCst);
    probe.display_present.store(false, Ordering::SeqCst);
    let mut uploading = status(Activity::Uploading, 3);
    uploading.current = transfer("holiday-2024.mp4", 42, 1_250_000);
    driver.update(uploading.clone());
    wait(&mirror, "simulated and showing the upload", |m| {
        m.display_output == Output::Simulated && shows(&uploading)(m)
    });

    // The mirror keeps following the status while the panel is gone.
    let mut later = uploading.clone();
    later.current = transfer("holiday-2024.mp4", 43, 1_100_000);
    driver.update(later.clone());
    wait(&mirror, "mirror shows 43 %", shows(&later));

    // Retries happen, quietly.
    let opens_at_failure = probe.display_opens.load(Ordering::SeqCst);
    wait(&mirror, "three more open attempts", |_| {
        probe.display_opens.load(Ordering::SeqCst) >= opens_at_failure + 3
    });
    assert_eq!(
        probe.log_lines("Display stopped working"),
        1,
        "{:?}",
        probe.log
    );
    assert_eq!(probe.log_lines("Display unavailable"), 0, "{:?}", probe.log);

    // The panel comes back and gets the current frame.
    probe.flush_fails.store(false, Ordering::SeqCst);
    probe.display_present.store(true, Ordering::SeqCst);
    wait(&mirror, "panel back", |m| {
        m.display_output == Output::Hardware
    });
    wait(&mirror, "panel shows the current frame", |_| {
        probe.last_flushed() == Some(render(&later))
    });
    assert_eq!(
        probe.log_lines("Display is working again"),
        1,
        "{:?}",
        probe.log
    );

    driver.shutdown();
    assert_eq!(
        probe.last_flushed(),
        Some(Framebuffer::new()),
        "panel blanked on shutdown"
    );
}

#[test]
fn missing_display_at_start_is_logged_once_and_simulated() {
    let probe = Probe::default();
    let attention = DeviceStatus {
        attention: Some(Attention {
            reason: "Disk nearly full: 900 MB free.".to_string(),
            data_at_risk: false,
        }),
        ..status(Activity::Pending, 1)
    };
    let driver = start(&pi4(), &probe, attention.clone());
    let mirror = driver.mirror();
    wait(&mirror, "frame rendered", shows(&attention));
    wait(&mirror, "several open attempts", |_| {
        probe.display_opens.load(Ordering::SeqCst) >= 4
    });
    let snapshot = mirror.snapshot();
    assert_eq!(snapshot.display_output, Output::Simulated);
    assert_eq!(snapshot.leds_output, Output::Hardware);
    assert_eq!(probe.log_lines("Display unavailable"), 1, "{:?}", probe.log);
    assert_eq!(probe.log.lock().expect("log").len(), 1, "{:?}", probe.log);
    assert!(probe.flushed.lock().expect("flushed").is_empty());
    driver.shutdown();
}

#[test]
fn hardware_the_board_does_not_expect_is_never_opened() {
    let probe = Probe::default();
    let qemu = BoardProfile::by_name("qemu-virt").expect("qemu profile");
    let idle = status(Activity::Idle, 0);
    let driver = start(&qemu, &probe, idle.clone());
    let mirror = driver.mirror();
    let shown = wait(&mirror, "frame rendered", shows(&idle));
    assert_eq!(shown.board, "qemu-virt");
    assert_eq!(
        (shown.leds_output, shown.display_output),
        (Output::Simulated, Output::Simulated)
    );
    assert_eq!(probe.display_opens.load(Ordering::SeqCst), 0);
    assert_eq!(probe.led_opens.load(Ordering::SeqCst), 0);
    assert!(probe.log.lock().expect("log").is_empty());
    driver.shutdown();
}

#[test]
fn leds_follow_the_status() {
    let probe = Probe::default();
    let mut uploading = status(Activity::Uploading, 1);
    uploading.current = transfer("a.bin", 10, 500_000);
    let driver = start(&pi4(), &probe, uploading);
    let mirror = driver.mirror();
    wait(&mirror, "upload patterns", |m| {
        m.leds
            == LedStates {
                green: Pattern::SlowBlink,
                blue: Pattern::Activity,
                red: Pattern::Off,
            }
    });
    // Blue flickers while data moves: several on/off changes reach the pins.
    wait(&mirror, "blue flicker", |_| {
        let levels = probe.levels.lock().expect("levels");
        levels
            .windows(2)
            .filter(|pair| pair[0].blue != pair[1].blue)
            .count()
            >= 4
    });

    driver.update(status(Activity::Idle, 0));
    let steady_green = LedLevels {
        green: true,
        blue: false,
        red: false,
    };
    wait(&mirror, "idle: green steady only", |m| {
        m.lit == steady_green && probe.levels.lock().expect("levels").last() == Some(&steady_green)
    });
    driver.shutdown();
    assert_eq!(
        probe.levels.lock().expect("levels").last(),
        Some(&LedLevels::default()),
        "LEDs dark after shutdown"
    );
}

/// Idle means no blinking, no pending frame, no retry: the thread must block
/// instead of ticking. With a 5 ms tick, a busy loop would wake ~60 times in
/// the 300 ms window; the driver must not wake at all.
#[test]
fn idle_driver_does_not_wake_up() {
    let probe = Probe::default();
    let qemu = BoardProfile::by_name("qemu-virt").expect("qemu profile");
    let idle = status(Activity::Idle, 0);
    let driver = start(&qemu, &probe, idle.clone());
    let mirror = driver.mirror();
    let settled = wait(&mirror, "frame rendered", shows(&idle));
    let woke = mirror.wait_until(Duration::from_millis(300), |m| m.wakeups > settled.wakeups);
    assert!(woke.is_none(), "driver woke while idle: {woke:?}");
    // It still reacts at once to a new status.
    let pending = status(Activity::Pending, 1);
    driver.update(pending.clone());
    wait(&mirror, "pending shown", shows(&pending));
    driver.shutdown();
}

#[test]
fn report_json_has_led_states_at_top_level() {
    let probe = Probe::default();
    let qemu = BoardProfile::by_name("qemu-virt").expect("qemu profile");
    let idle = status(Activity::Idle, 0);
    let driver = start(&qemu, &probe, idle.clone());
    let mirror = driver.mirror();
    let shown = wait(&mirror, "frame rendered", |m| {
        shows(&idle)(m) && m.lit.green
    });
    let json = serde_json::to_value(shown.report()).expect("report serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "green": "steady", "blue": "off", "red": "off",
            "lit": {"green": true, "blue": false, "red": false},
            "board": "qemu-virt",
            "leds_output": "simulated",
            "display_output": "simulated",
            "generation": shown.generation,
        })
    );
    driver.shutdown();
}

// ---- firmware update ---------------------------------------------------------

/// An update overrides whatever the box was doing, a problem included.
fn updating_from_attention(percent: u8) -> DeviceStatus {
    let mut busy = status(Activity::Uploading, 4);
    busy.current = transfer("holiday-2024.mp4", 42, 1_250_000);
    busy.attention = Some(Attention {
        reason: "Remote unreachable: connection refused.".into(),
        data_at_risk: true,
    });
    super::status::updating(busy, "1.4.0", percent)
}

#[test]
fn snapshot_updating() {
    let writing = updating_from_attention(37);
    assert_eq!(writing.activity, Activity::Updating);
    assert_eq!(writing.attention, None);
    assert_eq!(writing.web_url, URL, "the address stays");
    check_snapshot("updating_37", &writing);
    check_snapshot("updating_done", &updating_from_attention(100));
    let ascii = render(&writing).to_ascii();
    assert_ne!(ascii, render(&updating_from_attention(100)).to_ascii());
    assert_ne!(ascii, render(&status(Activity::Uploading, 4)).to_ascii());
}

#[test]
fn an_update_blinks_green_and_blue_fast_together_and_nothing_else_does() {
    let updating = super::leds::led_patterns(&updating_from_attention(5));
    assert_eq!(
        updating,
        LedStates {
            green: Pattern::FastBlink,
            blue: Pattern::FastBlink,
            red: Pattern::Off,
        }
    );
    // Distinct: no other status blinks green fast.
    for activity in [
        Activity::Idle,
        Activity::Pending,
        Activity::Uploading,
        Activity::Caching,
    ] {
        for attention in [None, Some(false), Some(true)] {
            let mut other = status(activity, 1);
            other.attention = attention.map(|data_at_risk| Attention {
                reason: "Something.".into(),
                data_at_risk,
            });
            assert_ne!(super::leds::led_patterns(&other), updating, "{activity:?}");
        }
    }
    // Both lit together, both dark together, 250 ms each.
    let levels: Vec<LedLevels> = [0, 249, 250, 499, 500]
        .iter()
        .map(|ms| updating.levels_at(*ms, 0))
        .collect();
    let on = LedLevels {
        green: true,
        blue: true,
        red: false,
    };
    assert_eq!(
        levels,
        vec![on, on, LedLevels::default(), LedLevels::default(), on]
    );
}

#[test]
fn the_driver_shows_an_update() {
    let probe = Probe::default();
    let driver = start(&pi4(), &probe, status(Activity::Idle, 0));
    let mirror = driver.mirror();
    let writing = updating_from_attention(60);
    driver.update(writing.clone());
    wait(&mirror, "update patterns and frame", |m| {
        m.leds.green == Pattern::FastBlink && m.frame == render(&writing)
    });
    // The fast blink reaches the pins: green and blue change together.
    wait(&mirror, "green and blue blink together", |_| {
        let levels = probe.levels.lock().expect("levels");
        // Everything after the last idle level (green without blue).
        let since = levels
            .iter()
            .rposition(|l| l.green != l.blue)
            .map_or(0, |i| i + 1);
        let updating = &levels[since..];
        let changes = updating
            .windows(2)
            .filter(|pair| pair[0].green != pair[1].green)
            .count();
        changes >= 2 && updating.iter().all(|l| !l.red)
    });
    driver.shutdown();
}
