//! Verification of one archive's copy on every destination that holds it
//! whole: on each, every part object (and the manifest) is looked at with
//! HEAD, a random share of the parts is downloaded, decrypted and hashed
//! against the catalog.
//!
//! Owns: [`Engine::verify`] and what it changes: a missing or corrupt part
//! is stored again from the local file when that file is there and still
//! matches its hash, else from another destination whose copy of it checks
//! out (`again`); a copy destination's missing or unreadable manifest is
//! copied from the main destination's; only a part left bad makes the
//! archive `damaged`, with a sentence naming the parts and where they are
//! bad. The main destination's missing or unreadable manifest is re-queued
//! (it is rebuilt from the catalog, so it needs no local file). Must not
//! touch: the system log and HTTP (the caller reports what
//! [`Verification`] says), the recovery and catalog code.
//!
//! Rules: nothing is ever deleted, locally or remotely. No transaction and
//! no mutex is held across remote I/O: the catalog is read first, the
//! destinations checked with nothing held, and the outcome committed in one
//! write transaction that looks at the archive again (an archive deleted or
//! changed meanwhile is left alone). A destination that cannot be reached
//! is reported as such, never as damage; when none can be, it is an error.
//! Verification runs on the caller's thread, not on an engine worker, so
//! the queue keeps moving while a big archive is checked.

mod again;
mod check;

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use rand::Rng;

use super::destinations::{self, MAIN};
use super::jobs::{self, JobKind};
use super::{Engine, Failure, Inner};
use crate::remote::Remote;
use crate::repo::{self, ObjectId, RepoKeys};
use crate::store::copies::copy_key;
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord};

pub(super) use again::PartAgain;
use check::{check_manifest, fetch_checked, object_id_of, Fetched};

/// Why an archive could not be verified. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("There is no archive {0}.")]
    NotFound(String),
    #[error(
        "Archive {archive_id} has no complete remote copy to check yet (it is {state}); nothing was checked."
    )]
    NoRemoteCopy {
        archive_id: String,
        state: &'static str,
    },
    #[error("The remote could not be checked, so nothing was marked damaged: {0}")]
    Unavailable(String),
    #[error("The catalog could not be read or written: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl From<Failure> for VerifyError {
    fn from(failure: Failure) -> Self {
        VerifyError::Unavailable(match failure {
            Failure::Transient(message)
            | Failure::Permanent(message)
            | Failure::Damaged(message) => message,
            Failure::Busy => "the remote is busy; try again in a moment.".to_string(),
        })
    }
}

/// What is wrong with one part's remote object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartProblem {
    Missing,
    /// `found` bytes, which no part of `part_length` bytes is sealed as.
    WrongLength {
        found: u64,
        part_length: u64,
    },
    /// Downloaded, but it does not decrypt or hash to the recorded SHA-256.
    Corrupt(String),
}

impl PartProblem {
    /// What is wrong on the main destination, as the end of a sentence
    /// starting "part N".
    pub fn describe(&self) -> String {
        self.describe_on("the remote")
    }

    /// What is wrong on `place` ("the remote", or a copy destination's
    /// name), as the end of a sentence starting "part N".
    pub fn describe_on(&self, place: &str) -> String {
        match self {
            PartProblem::Missing => format!("is missing from {place}"),
            PartProblem::WrongLength { found, part_length } => {
                format!("is {found} bytes on {place}, which a part of {part_length} bytes cannot be sealed as")
            }
            PartProblem::Corrupt(reason) => format!("is corrupt on {place} ({reason})"),
        }
    }
}

/// One damaged part on one destination and whether it was stored again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedPart {
    pub index: u32,
    pub object_id: String,
    pub problem: PartProblem,
    /// Stored again: from the local file (which still matched its hash),
    /// or from `repaired_from`.
    pub repaired: bool,
    /// The destination (id) it is damaged on.
    pub remote: String,
    /// That destination's name.
    pub remote_name: String,
    /// The name of the destination whose intact copy was stored again in
    /// its place; `None` when repaired from the local file (or not at all).
    pub repaired_from: Option<String>,
}

impl DamagedPart {
    /// "part 3 is missing from the remote", "part 3 is corrupt on
    /// grandpa's NAS (…)": the main destination is "the remote".
    pub fn describe(&self) -> String {
        let place = if self.remote == MAIN {
            "the remote"
        } else {
            self.remote_name.as_str()
        };
        format!("part {} {}", self.index, self.problem.describe_on(place))
    }
}

/// What was checked on one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationCheck {
    /// The destination's id ([`MAIN`] or a copy's).
    pub remote: String,
    pub name: String,
    /// Parts whose object was looked at (all of them), downloaded and
    /// hashed (the sample), and the ciphertext bytes downloaded.
    pub parts_checked: u64,
    pub parts_downloaded: u64,
    pub bytes_downloaded: u64,
    /// Parts found damaged there (in [`Verification::damaged`] too).
    pub parts_damaged: u64,
    /// `Some(reason)` when its manifest was missing or unreadable.
    pub manifest_problem: Option<String>,
    /// Whether that manifest was stored again (a copy's, from the main
    /// destination's; the main one's upload is queued instead).
    pub manifest_repaired: bool,
    /// Why it could not be checked (nothing was marked damaged for it).
    pub unavailable: Option<String>,
}

/// What one verification found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub archive_id: String,
    pub owner_id: String,
    pub name: String,
    /// Part objects looked at, on every destination checked.
    pub parts_checked: u64,
    /// Parts downloaded, decrypted and hashed (the sample), everywhere.
    pub parts_downloaded: u64,
    /// Ciphertext bytes downloaded for the sample.
    pub bytes_downloaded: u64,
    /// Every damaged part, on whichever destination.
    pub damaged: Vec<DamagedPart>,
    /// `Some(reason)` when the main destination's manifest was missing or
    /// unreadable; its upload was queued again.
    pub manifest_problem: Option<String>,
    /// The archive's state once the outcome was committed.
    pub state_after: ArchiveState,
    /// The sentence stored as the archive's `last_error` when it became
    /// `damaged`.
    pub damage_reason: Option<String>,
    /// Each destination holding a complete copy, main first.
    pub destinations: Vec<DestinationCheck>,
}

impl Verification {
    pub fn parts_damaged(&self) -> u64 {
        self.damaged.len() as u64
    }

    pub fn parts_repaired(&self) -> u64 {
        self.damaged.iter().filter(|part| part.repaired).count() as u64
    }
}

/// How many of `total` parts a `percent` sample downloads: rounded up, and
/// at least one whenever `percent` is above zero.
pub fn sample_size(total: usize, percent: u8) -> usize {
    if percent == 0 || total == 0 {
        return 0;
    }
    (total * usize::from(percent.min(100)))
        .div_ceil(100)
        .clamp(1, total)
}

/// Which of `total` parts to download: [`sample_size`] distinct ones drawn
/// with `rng` (handed in so tests can fix it).
pub fn choose_sample(total: usize, percent: u8, rng: &mut impl Rng) -> Vec<bool> {
    let mut chosen = vec![false; total];
    for index in rand::seq::index::sample(rng, total, sample_size(total, percent)) {
        chosen[index] = true;
    }
    chosen
}

/// The sentence stored on an archive whose damage could not be repaired;
/// `copies`: other destinations were checked too.
fn damage_reason(unrepaired: &[&DamagedPart], local_copy: bool, copies: bool) -> String {
    let list = unrepaired
        .iter()
        .map(|part| part.describe())
        .collect::<Vec<_>>()
        .join("; ");
    let why = match (local_copy, copies) {
        (true, false) => {
            "the local copy of it no longer matches its hash either, so it was not uploaded again"
        }
        (false, false) => "there is no local copy to upload it again from",
        (true, true) => {
            "neither the local copy nor another destination's copy of it checks out, so it was not stored again"
        }
        (false, true) => {
            "there is no local copy and no intact copy on another destination to store it again from"
        }
    };
    format!("Verification found that {list}; {why}. Nothing was deleted.")
}

impl Engine {
    /// Verifies the copy of one archive on every destination holding it
    /// whole (see the module comment): HEAD of every part and the
    /// manifest, download and hash of `percent` (0 to 100) of the parts,
    /// repair from the local file or another destination where possible,
    /// `damaged` otherwise. Blocks for as long as the downloads take.
    pub fn verify(&self, archive_id: &str, percent: u8) -> Result<Verification, VerifyError> {
        self.inner
            .verify(archive_id, percent, &mut rand::thread_rng())
    }
}

/// One destination to check: its id, name and remote (or why it could
/// not be opened).
struct Target {
    id: String,
    name: String,
    remote: Result<Arc<dyn Remote>, Failure>,
}

impl Inner {
    fn verify(
        &self,
        archive_id: &str,
        percent: u8,
        rng: &mut impl Rng,
    ) -> Result<Verification, VerifyError> {
        let (archive, parts, generation) = self.verifiable(archive_id)?;
        let (keys, _) = self.keys()?;
        let targets = self.targets(&archive, generation)?;
        let sample = choose_sample(parts.len(), percent, rng);

        let mut verification = Verification {
            archive_id: archive.id.clone(),
            owner_id: archive.owner_id.clone(),
            name: archive.name.clone(),
            parts_checked: 0,
            parts_downloaded: 0,
            bytes_downloaded: 0,
            damaged: Vec::new(),
            manifest_problem: None,
            state_after: archive.state,
            damage_reason: None,
            destinations: Vec::new(),
        };
        for target in &targets {
            let checked = match &target.remote {
                Ok(remote) => {
                    let check = Check {
                        keys,
                        archive_id,
                        parts: &parts,
                        sample: &sample,
                    };
                    self.check_destination(target, remote.as_ref(), &check)
                }
                Err(failure) => Err(VerifyError::from(failure.clone())),
            };
            let (check, damaged) = match checked {
                Ok(checked) => checked,
                Err(VerifyError::Unavailable(reason)) => (unavailable(target, reason), Vec::new()),
                Err(other) => return Err(other),
            };
            verification.parts_checked += check.parts_checked;
            verification.parts_downloaded += check.parts_downloaded;
            verification.bytes_downloaded += check.bytes_downloaded;
            if target.id == MAIN {
                verification.manifest_problem = check.manifest_problem.clone();
            }
            verification.damaged.extend(damaged);
            verification.destinations.push(check);
        }
        if let Some(reason) = nothing_checked(&verification.destinations) {
            return Err(VerifyError::Unavailable(reason));
        }

        // The local file is there unless the archive was uncached (or a
        // fetch back failed, which leaves only a `.partial` file).
        let local_copy =
            archive.state != ArchiveState::Uncached && self.archive_path(archive_id).is_file();
        if !verification.damaged.is_empty() {
            self.repair(
                &targets,
                keys,
                archive_id,
                &parts,
                local_copy,
                &mut verification,
            );
        }
        self.repair_copy_manifests(&targets, archive_id, &mut verification);
        let copies = targets.len() > 1;
        self.commit_verification(
            archive_id,
            local_copy,
            copies,
            generation,
            &mut verification,
        )?;
        Ok(verification)
    }

    /// The archive and its parts, if it has a complete remote copy, and the
    /// remote generation they were read at.
    fn verifiable(
        &self,
        archive_id: &str,
    ) -> Result<(ArchiveRecord, Vec<PartRecord>, u64), VerifyError> {
        let txn = self.store.read()?;
        let archive = self
            .store
            .tables
            .archives
            .get(&txn, archive_id.as_bytes())?
            .ok_or_else(|| VerifyError::NotFound(archive_id.to_string()))?;
        let parts = self.store.tables.parts_of(&txn, archive_id)?;
        let generation = super::keys::generation(&txn, &self.store.tables)?;
        drop(txn);
        let complete = parts.len() == archive.parts_total as usize
            && parts
                .iter()
                .all(|part| part.remote && part.object_id.is_some());
        // Complete on the main destination while a copy catches up counts.
        let state_allows = matches!(
            archive.state,
            ArchiveState::BackedUp | ArchiveState::Uncached | ArchiveState::Damaged
        ) || (archive.state == ArchiveState::Uploading
            && archive.awaiting_copies);
        if !(complete && state_allows) {
            return Err(VerifyError::NoRemoteCopy {
                archive_id: archive_id.to_string(),
                state: archive.state.as_str(),
            });
        }
        Ok((archive, parts, generation))
    }

    /// The destinations to check, main first: the main one, and every copy
    /// destination holding the archive whole. The main one at another
    /// remote generation than the parts were read at (a move started) is
    /// an error: what would be checked is no longer where the parts are.
    fn targets(
        &self,
        archive: &ArchiveRecord,
        generation: u64,
    ) -> Result<Vec<Target>, VerifyError> {
        let destinations = {
            let txn = self.store.read()?;
            let tables = &self.store.tables;
            let mut complete = Vec::new();
            for destination in destinations::list(&txn, tables, &self.data_dir)? {
                let whole = destination.id == MAIN
                    || tables
                        .copies
                        .get(&txn, copy_key(&destination.id, &archive.id).as_bytes())?
                        .is_some_and(|copy| copy.complete);
                if whole {
                    complete.push(destination);
                }
            }
            complete
        };
        let main = match self.remote_at() {
            Ok((_, current)) if current != generation => {
                return Err(VerifyError::Unavailable(
                    "the backups are moving to new storage right now; try again when the move has finished.".into(),
                ))
            }
            Ok((remote, _)) => Ok(remote),
            Err(failure) => Err(failure),
        };
        let mut main = Some(main);
        Ok(destinations
            .into_iter()
            .map(|destination| Target {
                remote: match main.take().filter(|_| destination.id == MAIN) {
                    Some(main) => main,
                    None => self.destination_remote(&destination.id),
                },
                id: destination.id,
                name: destination.name,
            })
            .collect())
    }

    /// Checks every part and the manifest on one destination; answers what
    /// it found there. A remote that fails is an error, not damage.
    fn check_destination(
        &self,
        target: &Target,
        remote: &dyn Remote,
        check: &Check<'_>,
    ) -> Result<(DestinationCheck, Vec<DamagedPart>), VerifyError> {
        // An empty place (an unmounted disk, a bucket emptied) is not this
        // repository: nothing there is marked damaged or written.
        if !self.holds_repository(remote)? {
            return Err(VerifyError::Unavailable(format!(
                "{} holds no backups of this appliance (no repository config there): is the disk mounted?",
                remote.describe()
            )));
        }
        let main = target.id == MAIN;
        let manifest_problem =
            check_manifest(remote, main, check.keys, check.archive_id, check.parts)?;
        let mut found = unavailable(target, String::new());
        found.unavailable = None;
        found.manifest_problem = manifest_problem;
        let mut damaged = Vec::new();
        // Parts sharing one object (the same bytes twice) share its verdict;
        // the downloaded verdict wins over a HEAD-only one.
        let mut verdicts: HashMap<String, (bool, Option<PartProblem>)> = HashMap::new();
        for (index, part) in check.parts.iter().enumerate() {
            let object_id = object_id_of(part)?;
            let download = check.sample[index];
            let known = verdicts
                .get(object_id.as_str())
                .filter(|(downloaded, _)| *downloaded || !download)
                .map(|(_, problem)| problem.clone());
            let problem = match known {
                Some(problem) => problem,
                None => {
                    let started = std::time::Instant::now();
                    let (problem, downloaded) =
                        self.check_part(remote, check.keys, &object_id, part, download)?;
                    if let Some(bytes) = downloaded {
                        found.parts_downloaded += 1;
                        found.bytes_downloaded += bytes;
                        self.throughput.record(&target.id, bytes, started.elapsed());
                    }
                    verdicts.insert(object_id.as_str().to_string(), (download, problem.clone()));
                    problem
                }
            };
            found.parts_checked += 1;
            if let Some(problem) = problem {
                damaged.push(DamagedPart {
                    index: index as u32,
                    object_id: object_id.as_str().to_string(),
                    problem,
                    repaired: false,
                    remote: target.id.clone(),
                    remote_name: target.name.clone(),
                    repaired_from: None,
                });
            }
        }
        found.parts_damaged = damaged.len() as u64;
        Ok((found, damaged))
    }

    /// HEAD of one part object, and when `download`, its bytes decrypted and
    /// hashed. Answers the problem (`None` for a good part) and the bytes
    /// downloaded, if any; a remote that fails is an error, not a problem.
    fn check_part(
        &self,
        remote: &dyn Remote,
        keys: &RepoKeys,
        object_id: &ObjectId,
        part: &PartRecord,
        download: bool,
    ) -> Result<(Option<PartProblem>, Option<u64>), VerifyError> {
        let key = repo::part_key(object_id);
        match remote.head(&key).map_err(Failure::from)? {
            None => return Ok((Some(PartProblem::Missing), None)),
            Some(found) if !repo::sealed_len_fits(part.length, found) => {
                let part_length = part.length;
                return Ok((Some(PartProblem::WrongLength { found, part_length }), None));
            }
            Some(_) => {}
        }
        if !download {
            return Ok((None, None));
        }
        match fetch_checked(remote, keys, object_id, part)? {
            Fetched::Good(bytes) => Ok((None, Some(bytes.len() as u64))),
            Fetched::Missing => Ok((Some(PartProblem::Missing), None)),
            Fetched::Bad(problem, length) => Ok((Some(problem), Some(length))),
        }
    }

    /// Stores every damaged object again: from the local file, where the
    /// file's bytes still match the recorded hash, else from another
    /// destination whose copy opens and hashes right. Failures leave the
    /// part unrepaired (and the archive damaged); they are not errors.
    fn repair(
        &self,
        targets: &[Target],
        keys: &RepoKeys,
        archive_id: &str,
        parts: &[PartRecord],
        local_copy: bool,
        verification: &mut Verification,
    ) {
        let file = local_copy
            .then(|| File::open(self.archive_path(archive_id)).ok())
            .flatten();
        // Per (destination, object): the outcome, so the same bytes twice
        // are stored once.
        let mut done: HashMap<(String, String), (bool, Option<String>)> = HashMap::new();
        let bad: Vec<(String, String)> = verification
            .damaged
            .iter()
            .map(|part| (part.remote.clone(), part.object_id.clone()))
            .collect();
        let checked: Vec<&str> = verification
            .destinations
            .iter()
            .filter(|check| check.unavailable.is_none())
            .map(|check| check.remote.as_str())
            .collect();
        for damaged in &mut verification.damaged {
            let key = (damaged.remote.clone(), damaged.object_id.clone());
            if let Some((repaired, from)) = done.get(&key) {
                damaged.repaired = *repaired;
                damaged.repaired_from = from.clone();
                continue;
            }
            let Some(Ok(remote)) = targets
                .iter()
                .find(|target| target.id == damaged.remote)
                .map(|target| &target.remote)
            else {
                continue;
            };
            let Ok(object_id) = ObjectId::parse(&damaged.object_id) else {
                continue;
            };
            let part = &parts[damaged.index as usize];
            let again = PartAgain {
                destination: &damaged.remote,
                object_id: &object_id,
                part,
            };
            let from_local = file.as_ref().is_some_and(|file| {
                self.store_part_again(remote.as_ref(), keys, file, &again)
                    .is_ok()
            });
            let outcome = if from_local {
                (true, None)
            } else {
                // Another destination checked now, where this object is not
                // bad, whose copy opens right.
                let donors = targets.iter().filter(|target| {
                    target.id != damaged.remote
                        && checked.contains(&target.id.as_str())
                        && !bad.contains(&(target.id.clone(), damaged.object_id.clone()))
                });
                let mut from = None;
                for donor in donors {
                    let Ok(donor_remote) = &donor.remote else {
                        continue;
                    };
                    let copied = match fetch_checked(donor_remote.as_ref(), keys, &object_id, part)
                    {
                        Ok(Fetched::Good(sealed)) => self
                            .put_sealed_again(remote.as_ref(), &again, sealed)
                            .is_ok(),
                        _ => false,
                    };
                    if copied {
                        from = Some(donor.name.clone());
                        break;
                    }
                }
                (from.is_some(), from)
            };
            damaged.repaired = outcome.0;
            damaged.repaired_from = outcome.1.clone();
            done.insert(key, outcome);
        }
    }

    /// A copy destination's missing or unreadable manifest is replaced by
    /// the main destination's, when that one checked out (the same sealed
    /// bytes serve every destination: the same master key).
    fn repair_copy_manifests(
        &self,
        targets: &[Target],
        archive_id: &str,
        verification: &mut Verification,
    ) {
        let main_good = verification.destinations.iter().any(|check| {
            check.remote == MAIN && check.unavailable.is_none() && check.manifest_problem.is_none()
        });
        let Some(Ok(main)) = targets.first().map(|target| &target.remote) else {
            return;
        };
        if !main_good {
            return;
        }
        let key = repo::manifest_key(archive_id);
        for check in &mut verification.destinations {
            if check.remote == MAIN || check.manifest_problem.is_none() {
                continue;
            }
            let Some(Ok(remote)) = targets
                .iter()
                .find(|target| target.id == check.remote)
                .map(|target| &target.remote)
            else {
                continue;
            };
            check.manifest_repaired = main
                .get_at_most(&key, repo::MAX_MANIFEST_BYTES)
                .and_then(|sealed| {
                    self.throttle(sealed.len());
                    remote.put(&key, &sealed)
                })
                .is_ok();
        }
    }

    /// Writes the outcome: `damaged` with a reason when a part is still bad
    /// somewhere, `backed_up` again when every bad part was repaired from
    /// the local file (`uncached` again when repaired from other
    /// destinations without one), the main manifest's upload re-queued when
    /// it was missing. An archive deleted or moved to another state
    /// meanwhile is left as it is.
    fn commit_verification(
        &self,
        archive_id: &str,
        local_copy: bool,
        copies: bool,
        generation: u64,
        verification: &mut Verification,
    ) -> Result<(), VerifyError> {
        let unrepaired: Vec<&DamagedPart> = verification
            .damaged
            .iter()
            .filter(|part| !part.repaired)
            .collect();
        let reason =
            (!unrepaired.is_empty()).then(|| damage_reason(&unrepaired, local_copy, copies));
        let repaired_all = !verification.damaged.is_empty() && unrepaired.is_empty();
        let requeue_manifest = verification.manifest_problem.is_some();
        let before = verification.state_after;
        let changed = self.store.write(
            |txn, tables| -> Result<Option<ArchiveRecord>, VerifyError> {
                // What was checked is no longer where the parts are.
                if super::keys::generation(txn, tables)? != generation {
                    return Err(VerifyError::Unavailable(
                        "the backups moved to new storage while they were checked; nothing was marked damaged.".into(),
                    ));
                }
                let Some(mut archive) = tables.archives.get(txn, archive_id.as_bytes())? else {
                    return Ok(None);
                };
                if archive.state != before {
                    return Ok(None);
                }
                if requeue_manifest {
                    let manifest = JobKind::UploadManifest {
                        archive_id: archive_id.to_string(),
                    };
                    if !tables.jobs.queued(txn, &manifest)? {
                        jobs::enqueue(txn, tables, manifest)?;
                    }
                }
                if let Some(reason) = &reason {
                    archive.state = ArchiveState::Damaged;
                    archive.last_error = Some(reason.clone());
                } else if repaired_all && local_copy {
                    // Backed up again, once every copy destination is
                    // complete too (`store::copies::settle`).
                    archive.state = ArchiveState::Uploading;
                    archive.local_copy = true;
                    archive.last_error = None;
                    crate::store::copies::settle(txn, tables, &mut archive, true)?;
                } else if repaired_all && archive.state == ArchiveState::Damaged {
                    archive.state = ArchiveState::Uncached;
                    archive.last_error = None;
                } else {
                    return Ok(None);
                }
                tables.archives.put(txn, archive_id.as_bytes(), &archive)?;
                Ok(Some(archive))
            },
        )?;
        if let Some(archive) = changed {
            verification.state_after = archive.state;
            verification.damage_reason = reason;
            self.events.archive(&archive);
        }
        if requeue_manifest {
            self.wake();
        }
        Ok(())
    }
}

/// What [`Inner::check_destination`] checks against.
struct Check<'a> {
    keys: &'a RepoKeys,
    archive_id: &'a str,
    parts: &'a [PartRecord],
    /// Which parts to download.
    sample: &'a [bool],
}

/// A destination's check with nothing counted, `reason` why it could not
/// be checked.
fn unavailable(target: &Target, reason: String) -> DestinationCheck {
    DestinationCheck {
        remote: target.id.clone(),
        name: target.name.clone(),
        parts_checked: 0,
        parts_downloaded: 0,
        bytes_downloaded: 0,
        parts_damaged: 0,
        manifest_problem: None,
        manifest_repaired: false,
        unavailable: Some(reason),
    }
}

/// When no destination could be checked: why the first one could not
/// (with several, each named).
fn nothing_checked(checks: &[DestinationCheck]) -> Option<String> {
    if checks.iter().any(|check| check.unavailable.is_none()) {
        return None;
    }
    match checks {
        [only] => only.unavailable.clone(),
        _ => Some(
            checks
                .iter()
                .map(|check| {
                    format!(
                        "{}: {}",
                        check.name,
                        check.unavailable.as_deref().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

#[cfg(test)]
mod tests;
