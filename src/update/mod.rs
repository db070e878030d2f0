//! Firmware updates in place: A/B slots on the boot partition, signed bundles, trial
//! boots and rollback (DESIGN.md, "Firmware updates").
//!
//! Owns: applying a bundle to the inactive slot ([`apply`]), the record of the last
//! update on the data partition, the status the web page and API show, and the trial
//! check init runs ([`trial_check`]). Must not touch: the archive store or the web
//! server's internals; the reboot itself is init's ([`crate::firmware`]).

pub mod boot;
pub mod bundle;

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use boot::Slot;
use bundle::{BundleError, KeyKind};

/// The record of the last update, on the data partition (kept across slots).
pub const RECORD: &str = "/data/firmware/update.json";
/// Left by [`apply`] for init: the next reboot sets the one-shot tryboot flag.
pub const TRYBOOT_REQUEST: &str = "/run/piarchive/tryboot";
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
fn on_trial(boot: &Path, booted_on_trial: bool) -> bool {
    booted_on_trial && boot::running_slot(boot, true) != boot::committed_slot(boot)
}

/// True under piarchive init: as its child (the server), as PID 1 itself, or from a
/// console where PID 1 is the image's `/init`.
fn runs_from_the_image() -> bool {
    crate::firmware::power::running_under_init()
        || std::process::id() == 1
        || std::fs::read_link("/proc/1/exe").is_ok_and(|exe| exe == Path::new("/init"))
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

/// Streams a bundle from `reader` into the inactive slot, then writes `tryboot.txt`,
/// records the attempt and leaves the tryboot request for init. The caller reboots.
pub fn apply<R: Read + ?Sized>(
    reader: &mut R,
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Applied, ApplyError> {
    let slot = inactive_slot().map_err(ApplyError::NotUpdatable)?;
    let boot = Path::new(boot::BOOT_MOUNT);
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
    bundle::install_files(head.inner, &manifest, &slot_dir, progress)?;
    write_synced(&slot_dir.join(SLOT_HEAD), &head_bytes)?;
    bundle::sync_dir(&slot_dir)?;
    write_record(
        Path::new(RECORD),
        &LastUpdate {
            version: manifest.version.clone(),
            from: running_version().to_string(),
            result: "trying".into(),
            message: String::new(),
            at: crate::ids::now_secs(),
        },
    )?;
    boot::write_tryboot(boot, slot).map_err(BundleError::Io)?;
    std::fs::write(TRYBOOT_REQUEST, slot.dir_name()).map_err(BundleError::Io)?;
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
    fn outside_the_image_nothing_can_be_updated() {
        let err = inactive_slot().expect_err("not the image");
        assert!(err.contains("does not run from the SD-card image"), "{err}");
    }
}
