//! Firmware updates in place: A/B slots on the boot partition, signed bundles, trial
//! boots and rollback (docs/DESIGN.md, "Firmware updates").
//!
//! Owns: applying a bundle to the inactive slot ([`apply`]), the record of the last
//! update on the data partition, the status the web page and API show, and the trial
//! switches of a trial ([`test_switches`]), and when a trial boot migrates the store
//! ([`migration`]). Must not touch: the archive store's contents or the web server's
//! internals; the reboot itself is init's ([`crate::init`]).

pub mod boot;
pub mod bundle;
pub mod migration;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use boot::Slot;
use bundle::{BundleError, KeyKind};

/// The record of the last update, on the data partition (kept across slots).
pub const RECORD: &str = "/data/firmware/update.json";
/// Left by [`apply`] for init: the next reboot sets the one-shot tryboot flag.
pub const TRYBOOT_REQUEST: &str = "/run/piarchive/tryboot";
/// While an update is written and until the reboot: `<version> <percent>`, for the
/// display and LEDs ([`on_display`]); /run is a tmpfs, so a boot starts without it.
pub const PROGRESS: &str = "/run/piarchive/update-progress";
/// The signed head of the bundle a slot came from, kept in the slot so the new
/// version can check its own manifest (and the test-only switches) again.
pub const SLOT_HEAD: &str = "bundle-head.bin";

/// The last update and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUpdate {
    /// The version that was installed.
    pub version: String,
    /// The version that installed it.
    pub from: String,
    /// `trying`, `committed` or `failed`.
    pub result: String,
    pub message: String,
    /// Unix seconds.
    pub at: i64,
}

impl LastUpdate {
    /// The sentence the firmware page and the console show for a failed update.
    pub fn failure_sentence(&self, running: &str) -> String {
        format!(
            "Update to {} failed: {}; still running {running}.",
            self.version, self.message
        )
    }
}

/// What `GET /api/v1/admin/firmware` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: String,
    pub slot: Option<&'static str>,
    pub trial: bool,
    pub can_update: bool,
    /// Why not, when `can_update` is false.
    pub not_updatable: Option<String>,
    pub test_key: bool,
    pub last_update: Option<LastUpdate>,
}

/// The running version.
pub fn running_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The current status.
pub fn status() -> Status {
    let boot = Path::new(boot::BOOT_MOUNT);
    let booted_on_trial = boot::booted_on_trial();
    let trial = on_trial(boot, booted_on_trial);
    let updatable = inactive_slot();
    Status {
        version: running_version().to_string(),
        slot: boot::running_slot(boot, booted_on_trial).map(Slot::dir_name),
        trial,
        can_update: updatable.is_ok(),
        not_updatable: updatable.err(),
        test_key: bundle::trusted_keys()
            .iter()
            .any(|k| k.kind == KeyKind::Test),
        last_update: read_record(Path::new(RECORD)),
    }
}

/// The slot an update goes to, or why this piarchive cannot be updated in place.
pub fn inactive_slot() -> Result<Slot, String> {
    if !runs_from_the_image() {
        return Err("This piarchive does not run from the SD-card image, so it cannot update itself; update it the way it was installed.".into());
    }
    let boot = Path::new(boot::BOOT_MOUNT);
    if on_trial(boot, boot::booted_on_trial()) {
        return Err("This version is still on trial after an update; try again in a minute, once it has committed.".into());
    }
    let committed = boot::committed_slot(boot).ok_or_else(|| {
        "The boot partition is not mounted or its config.txt names no slot, so an update has nowhere to go.".to_string()
    })?;
    Ok(committed.other())
}

/// True while this boot is a trial that has not committed yet.
pub fn on_trial(boot: &Path, booted_on_trial: bool) -> bool {
    booted_on_trial && boot::running_slot(boot, true) != boot::committed_slot(boot)
}

/// True under piarchive init: as its child (the server), as PID 1 itself, or from a
/// console where PID 1 is the image's `/init`.
fn runs_from_the_image() -> bool {
    crate::power::running_under_init()
        || std::process::id() == 1
        || std::fs::read_link("/proc/1/exe").is_ok_and(|exe| exe == Path::new("/init"))
}

/// Where [`apply_to`] writes.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The boot partition (its `config.txt` names the committed slot).
    pub boot: PathBuf,
    /// The record of the last update, on the data partition.
    pub record: Option<PathBuf>,
    /// The request init reads at shutdown to reboot with the tryboot flag.
    pub tryboot_request: Option<PathBuf>,
    /// What the display shows while the update is written ([`PROGRESS`]).
    pub progress: Option<PathBuf>,
    /// The appliance itself: the image's checks apply (runs from the image, not on
    /// trial).
    appliance: bool,
}

impl Paths {
    /// The running appliance: /boot, the record on /data, the request and progress
    /// in /run/piarchive.
    pub fn appliance() -> Paths {
        Paths {
            boot: PathBuf::from(boot::BOOT_MOUNT),
            record: Some(PathBuf::from(RECORD)),
            tryboot_request: Some(PathBuf::from(TRYBOOT_REQUEST)),
            progress: Some(PathBuf::from(PROGRESS)),
            appliance: true,
        }
    }

    /// A boot partition (or a copy of one) in `dir`: the slot and `tryboot.txt` are
    /// written there and nothing else (no record, no reboot request). For
    /// `piarchive update --boot DIR` and its tests.
    pub fn boot_dir(dir: &Path) -> Paths {
        Paths {
            boot: dir.to_path_buf(),
            record: None,
            tryboot_request: None,
            progress: None,
            appliance: false,
        }
    }

    fn inactive_slot(&self) -> Result<Slot, String> {
        if self.appliance {
            return inactive_slot();
        }
        boot::committed_slot(&self.boot)
            .map(Slot::other)
            .ok_or_else(|| {
                format!(
                    "{} has no config.txt naming a slot, so it is not a piarchive boot partition.",
                    self.boot.display()
                )
            })
    }
}

/// What the display shows of an update in progress, from [`PROGRESS`]: the version
/// and the share written.
pub fn shown_update() -> Option<(String, u8)> {
    parse_progress(&std::fs::read_to_string(PROGRESS).ok()?)
}

/// `<version> <percent>` back into its parts. Pure.
fn parse_progress(text: &str) -> Option<(String, u8)> {
    let (version, percent) = text.trim().rsplit_once(' ')?;
    Some((version.to_string(), percent.parse::<u8>().ok()?.min(100)))
}

/// `status` as the device shows it: an update in progress overrides it.
pub fn on_display(status: crate::device::DeviceStatus) -> crate::device::DeviceStatus {
    match shown_update() {
        Some((version, percent)) => crate::device::status::updating(status, &version, percent),
        None => status,
    }
}

/// Writes `<version> <percent>` for the display, best-effort.
fn show_progress(path: Option<&Path>, version: &str, percent: u8) {
    if let Some(path) = path {
        let _ = std::fs::write(path, format!("{version} {percent}\n"));
    }
}

/// Why [`apply`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    NotUpdatable(String),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl From<std::io::Error> for ApplyError {
    fn from(err: std::io::Error) -> Self {
        ApplyError::Bundle(BundleError::Io(err))
    }
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Applied {
    pub version: String,
    pub slot: Slot,
    /// The bundle's test switch: do not reboot (test key only).
    pub hold_reboot: bool,
}

/// Streams a bundle from `reader` into the appliance's inactive slot, then writes
/// `tryboot.txt`, records the attempt and leaves the tryboot request for init. The
/// caller reboots.
pub fn apply<R: Read + ?Sized>(
    reader: &mut R,
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Applied, ApplyError> {
    apply_to(&Paths::appliance(), reader, force, progress)
}

/// [`apply`] with the places it writes to given. The display shows the update from
/// the moment the bundle's signature checks out; a refusal takes it off again, a
/// success leaves it up through the reboot.
pub fn apply_to<R: Read + ?Sized>(
    paths: &Paths,
    reader: &mut R,
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Applied, ApplyError> {
    let result = write_update(paths, reader, force, progress);
    if let (Some(path), Err(_)) = (&paths.progress, &result) {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn write_update<R: Read + ?Sized>(
    paths: &Paths,
    reader: &mut R,
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Applied, ApplyError> {
    let slot = paths.inactive_slot().map_err(ApplyError::NotUpdatable)?;
    let boot = paths.boot.as_path();
    let mut head = HeadRecorder {
        inner: reader,
        bytes: Vec::new(),
    };
    let verified = bundle::read_header(&mut head, &bundle::trusted_keys())?;
    let hold_reboot = verified.key == KeyKind::Test && verified.manifest.test_hold_reboot;
    let manifest = verified.manifest;
    bundle::check_target(&manifest, running_version(), force)?;
    let slot_dir = boot.join(slot.dir_name());
    bundle::check_space(&manifest, free_bytes(boot)? + dir_size(&slot_dir))?;
    let head_bytes = std::mem::take(&mut head.bytes);
    let shown = paths.progress.as_deref();
    show_progress(shown, &manifest.version, 0);
    let mut percent_shown = 0;
    let mut progress = |written: u64, total: u64| {
        let percent = crate::device::status::percent_of(written, total);
        if percent != percent_shown {
            percent_shown = percent;
            show_progress(shown, &manifest.version, percent);
        }
        progress(written, total);
    };
    bundle::install_files(head.inner, &manifest, &slot_dir, &mut progress)?;
    write_synced(&slot_dir.join(SLOT_HEAD), &head_bytes)?;
    bundle::sync_dir(&slot_dir)?;
    if let Some(record) = &paths.record {
        write_record(
            record,
            &LastUpdate {
                version: manifest.version.clone(),
                from: running_version().to_string(),
                result: "trying".into(),
                message: String::new(),
                at: crate::ids::now_secs(),
            },
        )?;
    }
    boot::write_tryboot(boot, slot).map_err(BundleError::Io)?;
    if let Some(request) = &paths.tryboot_request {
        std::fs::write(request, slot.dir_name()).map_err(BundleError::Io)?;
    }
    if hold_reboot {
        // No reboot follows (the test switch): the display goes back to normal.
        if let Some(path) = shown {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(Applied {
        version: manifest.version,
        slot,
        hold_reboot,
    })
}

/// Keeps the bytes read through it (the bundle's head, until taken).
struct HeadRecorder<'a, R: Read + ?Sized> {
    inner: &'a mut R,
    bytes: Vec<u8>,
}

impl<R: Read + ?Sized> Read for HeadRecorder<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn free_bytes(path: &Path) -> Result<u64, BundleError> {
    let stat = rustix::fs::statvfs(path).map_err(|e| BundleError::Io(e.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The last update's record, if any.
pub fn read_record(path: &Path) -> Option<LastUpdate> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes the record durably (temp file, fsync, rename, fsync of the folder).
pub fn write_record(path: &Path, record: &LastUpdate) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = path.with_extension("json.new");
    write_synced(
        &temp,
        &serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&temp, path)?;
    bundle::sync_dir(dir)
}

/// The test-only switches of a trial, from the slot's own signed head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TestSwitches {
    /// Fail the health check with this reason.
    pub health_failure: Option<String>,
    /// Never finish the trial.
    pub hang: bool,
}

/// The slot's test switches: honoured only when the test key signed its bundle (test
/// images; a release build trusts no test key, so they are always off there).
pub fn test_switches(slot_dir: &Path) -> TestSwitches {
    let Ok(head) = std::fs::read(slot_dir.join(SLOT_HEAD)) else {
        return TestSwitches::default();
    };
    match bundle::read_header(&mut head.as_slice(), &bundle::trusted_keys()) {
        Ok(verified) if verified.key == KeyKind::Test => TestSwitches {
            health_failure: verified.manifest.test_health_failure,
            hang: verified.manifest.test_hang,
        },
        _ => TestSwitches::default(),
    }
}

/// Runs on every boot, before the trial check: a record still `trying` for another
/// version means that version's trial never committed (crash, hang, power cut): the
/// record says so. Returns the sentence to log when the last update failed.
pub fn settle_record(record_path: &Path, trial: bool) -> Option<String> {
    let mut record = read_record(record_path)?;
    let running = running_version();
    if record.result == "trying" && !trial && record.version != running {
        record.result = "failed".into();
        record.message = "the new version did not finish starting, so the appliance went back to the previous one".into();
        let _ = write_record(record_path, &record);
    }
    (record.result == "failed" && !trial).then(|| record.failure_sentence(running))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str, result: &str) -> LastUpdate {
        LastUpdate {
            version: version.into(),
            from: "0.0.1".into(),
            result: result.into(),
            message: String::new(),
            at: 1,
        }
    }

    #[test]
    fn a_trial_that_never_committed_is_recorded_as_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("firmware/update.json");
        write_record(&path, &record("9.0.0", "trying")).expect("write");
        assert_eq!(
            settle_record(&path, true),
            None,
            "the trial itself says nothing"
        );
        let sentence = settle_record(&path, false).expect("failed");
        assert!(
            sentence.starts_with("Update to 9.0.0 failed: the new version did not finish starting"),
            "{sentence}"
        );
        assert!(sentence.ends_with(&format!("still running {}.", running_version())));
        assert_eq!(read_record(&path).expect("record").result, "failed");
    }

    #[test]
    fn a_committed_update_is_not_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("update.json");
        write_record(&path, &record(running_version(), "committed")).expect("write");
        assert_eq!(settle_record(&path, false), None);
        assert_eq!(settle_record(&dir.path().join("none.json"), false), None);
    }

    #[test]
    fn the_progress_line_for_the_display_parses_back() {
        assert_eq!(
            parse_progress("1.4.0-rc.1 42\n"),
            Some(("1.4.0-rc.1".into(), 42))
        );
        assert_eq!(parse_progress("1.4.0 300"), None);
        assert_eq!(parse_progress("1.4.0"), None);
        assert_eq!(parse_progress(""), None);
    }

    #[test]
    fn a_boot_folder_without_slots_is_refused_with_a_sentence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bundle: &[u8] = b"PIUP";
        let err = apply_to(
            &Paths::boot_dir(dir.path()),
            &mut bundle,
            false,
            &mut |_, _| {},
        )
        .expect_err("no config.txt");
        assert!(
            err.to_string()
                .contains("is not a piarchive boot partition"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0);
    }

    #[test]
    fn outside_the_image_nothing_can_be_updated() {
        let err = inactive_slot().expect_err("not the image");
        assert!(err.contains("does not run from the SD-card image"), "{err}");
    }
}
