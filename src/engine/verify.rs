//! Verification of one archive's remote copy: every part object (and the
//! manifest) is looked at with HEAD, a random share of the parts is
//! downloaded, decrypted and hashed against the catalog.
//!
//! Owns: [`Engine::verify`] and what it changes: a missing or corrupt part
//! is uploaded again from the local file when that file is there and still
//! matches its hash (the archive stays or goes back to `backed_up`);
//! otherwise the archive becomes `damaged` with a sentence naming the parts.
//! A missing or unreadable manifest is re-queued (it is rebuilt from the
//! catalog, so it needs no local file). Must not touch: the system log and
//! HTTP (the caller reports what [`Verification`] says), the recovery and
//! catalog code.
//!
//! Rules: nothing is ever deleted, locally or remotely. No transaction and
//! no mutex is held across remote I/O: the catalog is read first, the remote
//! checked with nothing held, and the outcome committed in one write
//! transaction that looks at the archive again (an archive deleted or
//! changed meanwhile is left alone). A remote that cannot be reached is an
//! error, never damage. Verification runs on the caller's thread, not on an
//! engine worker, so the queue keeps moving while a big archive is checked.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::jobs::{self, JobKind};
use super::{Engine, Failure, Inner, ObjectClaim};
use crate::remote::{ErrorKind, Remote};
use crate::repo::{self, Manifest, ObjectId, RepoKeys};
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord};

/// How long a repair waits for an upload or delete of the same object that
/// another worker is doing right now.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

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
    /// What is wrong, as the end of a sentence starting "part N".
    pub fn describe(&self) -> String {
        match self {
            PartProblem::Missing => "is missing from the remote".to_string(),
            PartProblem::WrongLength { found, part_length } => {
                format!("is {found} bytes on the remote, which a part of {part_length} bytes cannot be sealed as")
            }
            PartProblem::Corrupt(reason) => format!("is corrupt on the remote ({reason})"),
        }
    }
}

/// One damaged part and whether it was uploaded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedPart {
    pub index: u32,
    pub object_id: String,
    pub problem: PartProblem,
    /// Uploaded again from the local file, which still matched its hash.
    pub repaired: bool,
}

/// What one verification found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub archive_id: String,
    pub owner_id: String,
    pub name: String,
    /// Parts whose object was looked at (all of them).
    pub parts_checked: u64,
    /// Parts downloaded, decrypted and hashed (the sample).
    pub parts_downloaded: u64,
    /// Ciphertext bytes downloaded for the sample.
    pub bytes_downloaded: u64,
    pub damaged: Vec<DamagedPart>,
    /// `Some(reason)` when the manifest was missing or unreadable; its
    /// upload was queued again.
    pub manifest_problem: Option<String>,
    /// The archive's state once the outcome was committed.
    pub state_after: ArchiveState,
    /// The sentence stored as the archive's `last_error` when it became
    /// `damaged`.
    pub damage_reason: Option<String>,
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

/// The sentence stored on an archive whose damage could not be repaired.
fn damage_reason(unrepaired: &[&DamagedPart], local_copy: bool) -> String {
    let list = unrepaired
        .iter()
        .map(|part| format!("part {} {}", part.index, part.problem.describe()))
        .collect::<Vec<_>>()
        .join("; ");
    let why = if local_copy {
        "the local copy of it no longer matches its hash either, so it was not uploaded again"
    } else {
        "there is no local copy to upload it again from"
    };
    format!("Verification found that {list}; {why}. Nothing was deleted.")
}

impl Engine {
    /// Verifies the remote copy of one archive (see the module comment):
    /// HEAD of every part and the manifest, download and hash of `percent`
    /// (0 to 100) of the parts, repair from the local file where possible,
    /// `damaged` otherwise. Blocks for as long as the downloads take.
    pub fn verify(&self, archive_id: &str, percent: u8) -> Result<Verification, VerifyError> {
        self.inner
            .verify(archive_id, percent, &mut rand::thread_rng())
    }
}

/// The part (and the file offset to read it from) that an object holds.
struct Repair {
    object_id: ObjectId,
    part: PartRecord,
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
        let (remote, remote_generation) = self.remote_at()?;
        if remote_generation != generation {
            return Err(VerifyError::Unavailable(
                "the backups are moving to new storage right now; try again when the move has finished.".into(),
            ));
        }
        let sample = choose_sample(parts.len(), percent, rng);

        let mut verification = Verification {
            archive_id: archive.id.clone(),
            owner_id: archive.owner_id.clone(),
            name: archive.name.clone(),
            parts_checked: 0,
            parts_downloaded: 0,
            bytes_downloaded: 0,
            damaged: Vec::new(),
            manifest_problem: check_manifest(remote.as_ref(), keys, archive_id, &parts)?,
            state_after: archive.state,
            damage_reason: None,
        };
        // Parts sharing one object (the same bytes twice) share its verdict;
        // the downloaded verdict wins over a HEAD-only one.
        let mut verdicts: HashMap<String, (bool, Option<PartProblem>)> = HashMap::new();
        for (index, part) in parts.iter().enumerate() {
            let object_id = object_id_of(part)?;
            let download = sample[index];
            let known = verdicts
                .get(object_id.as_str())
                .filter(|(downloaded, _)| *downloaded || !download)
                .map(|(_, problem)| problem.clone());
            let problem = match known {
                Some(problem) => problem,
                None => {
                    let (problem, downloaded) =
                        self.check_part(remote.as_ref(), keys, &object_id, part, download)?;
                    if let Some(bytes) = downloaded {
                        verification.parts_downloaded += 1;
                        verification.bytes_downloaded += bytes;
                    }
                    verdicts.insert(object_id.as_str().to_string(), (download, problem.clone()));
                    problem
                }
            };
            verification.parts_checked += 1;
            if let Some(problem) = problem {
                verification.damaged.push(DamagedPart {
                    index: index as u32,
                    object_id: object_id.as_str().to_string(),
                    problem,
                    repaired: false,
                });
            }
        }

        // The local file is there unless the archive was uncached (or a
        // fetch back failed, which leaves only a `.partial` file).
        let local_copy =
            archive.state != ArchiveState::Uncached && self.archive_path(archive_id).is_file();
        if !verification.damaged.is_empty() && local_copy {
            self.repair(remote.as_ref(), keys, archive_id, &parts, &mut verification);
        }
        self.commit_verification(archive_id, local_copy, generation, &mut verification)?;
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
        let state_allows = matches!(
            archive.state,
            ArchiveState::BackedUp | ArchiveState::Uncached | ArchiveState::Damaged
        );
        if !(complete && state_allows) {
            return Err(VerifyError::NoRemoteCopy {
                archive_id: archive_id.to_string(),
                state: archive.state.as_str(),
            });
        }
        Ok((archive, parts, generation))
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
        let bytes =
            match remote.get_at_most(&key, repo::max_sealed_len(part.length as usize) as u64) {
                Ok(bytes) => bytes,
                Err(err) if err.kind == ErrorKind::NotFound => {
                    return Ok((Some(PartProblem::Missing), None))
                }
                Err(err) => return Err(Failure::from(err).into()),
            };
        let downloaded = Some(bytes.len() as u64);
        let bytes = match keys.open_part(object_id, bytes, part.length) {
            Ok(bytes) => bytes,
            Err(err) => {
                let problem = PartProblem::Corrupt(format!("it does not decrypt: {err}"));
                return Ok((Some(problem), downloaded));
            }
        };
        if bytes.len() as u64 != part.length || hex::encode(Sha256::digest(&bytes)) != part.sha256 {
            let problem = PartProblem::Corrupt("it does not match its recorded SHA-256".into());
            return Ok((Some(problem), downloaded));
        }
        Ok((None, downloaded))
    }

    /// Uploads every damaged object again from the local file, where the
    /// file's bytes still match the recorded hash. Failures leave the part
    /// unrepaired (and the archive damaged); they are not errors.
    fn repair(
        &self,
        remote: &dyn Remote,
        keys: &RepoKeys,
        archive_id: &str,
        parts: &[PartRecord],
        verification: &mut Verification,
    ) {
        let Ok(file) = File::open(self.archive_path(archive_id)) else {
            return;
        };
        let mut done: HashMap<String, bool> = HashMap::new();
        for damaged in &mut verification.damaged {
            if let Some(repaired) = done.get(&damaged.object_id) {
                damaged.repaired = *repaired;
                continue;
            }
            let repaired = ObjectId::parse(&damaged.object_id).is_ok_and(|object_id| {
                let repair = Repair {
                    object_id,
                    part: parts[damaged.index as usize].clone(),
                };
                self.upload_again(remote, keys, &file, &repair).is_ok()
            });
            done.insert(damaged.object_id.clone(), repaired);
            damaged.repaired = repaired;
        }
    }

    /// One object uploaded again from the local file, under the same claim
    /// uploads and deletes take, and only while the catalog still uses it
    /// (so a delete of the last user never races with it).
    fn upload_again(
        &self,
        remote: &dyn Remote,
        keys: &RepoKeys,
        file: &File,
        repair: &Repair,
    ) -> Result<(), Failure> {
        let part = &repair.part;
        let mut buffer = vec![0u8; part.length as usize];
        file.read_exact_at(&mut buffer, part.offset)?;
        if hex::encode(Sha256::digest(&buffer)) != part.sha256 {
            return Err(Failure::Damaged(
                "The local part does not match its hash.".into(),
            ));
        }
        let object_key = repair.object_id.as_str();
        let started = std::time::Instant::now();
        let _claim = loop {
            match ObjectClaim::take(self, object_key) {
                Ok(claim) => break claim,
                Err(Failure::Busy) if started.elapsed() < CLAIM_WAIT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(failure) => return Err(failure),
            }
        };
        let in_use = {
            let txn = self.store.read()?;
            self.store
                .tables
                .objects
                .get(&txn, object_key.as_bytes())?
                .is_some_and(|object| object.refcount > 0)
        };
        if !in_use {
            return Err(Failure::Busy);
        }
        let nonce = repo::random_bytes().map_err(|e| Failure::Permanent(e.to_string()))?;
        let buffer = keys
            .seal_part(&repair.object_id, nonce, buffer)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        let cipher_sha = hex::encode(Sha256::digest(&buffer));
        self.throttle(buffer.len());
        remote.put_hashed(&repo::part_key(&repair.object_id), &buffer, &cipher_sha)?;
        self.store.write(|txn, tables| -> Result<(), Failure> {
            if let Some(mut object) = tables.objects.get(txn, object_key.as_bytes())? {
                object.stored = true;
                object.stored_length = buffer.len() as u64;
                object.ciphertext_sha256 = cipher_sha.clone();
                tables.objects.put(txn, object_key.as_bytes(), &object)?;
            }
            Ok(())
        })
    }

    /// Writes the outcome: `damaged` with a reason when a part is still bad,
    /// `backed_up` again when every bad part was repaired, the manifest
    /// upload re-queued when it was missing. An archive deleted or moved to
    /// another state meanwhile is left as it is.
    fn commit_verification(
        &self,
        archive_id: &str,
        local_copy: bool,
        generation: u64,
        verification: &mut Verification,
    ) -> Result<(), VerifyError> {
        let unrepaired: Vec<&DamagedPart> = verification
            .damaged
            .iter()
            .filter(|part| !part.repaired)
            .collect();
        let reason = (!unrepaired.is_empty()).then(|| damage_reason(&unrepaired, local_copy));
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
                } else if repaired_all {
                    archive.state = ArchiveState::BackedUp;
                    archive.local_copy = true;
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

fn object_id_of(part: &PartRecord) -> Result<ObjectId, VerifyError> {
    let id = part.object_id.as_deref().unwrap_or_default();
    ObjectId::parse(id)
        .map_err(|err| VerifyError::Unavailable(format!("A stored object id is malformed: {err}")))
}

/// The manifest fetched, opened and compared with the catalog's parts.
/// `Ok(Some(reason))` when it is missing or does not match.
fn check_manifest(
    remote: &dyn Remote,
    keys: &RepoKeys,
    archive_id: &str,
    parts: &[PartRecord],
) -> Result<Option<String>, VerifyError> {
    let bytes = match remote.get_at_most(&repo::manifest_key(archive_id), repo::MAX_MANIFEST_BYTES)
    {
        Ok(bytes) => bytes,
        Err(err) if err.kind == ErrorKind::NotFound => {
            return Ok(Some("the manifest is missing from the remote".to_string()))
        }
        Err(err) => return Err(Failure::from(err).into()),
    };
    let manifest = match Manifest::open(keys, archive_id, &bytes) {
        Ok(manifest) => manifest,
        Err(err) => return Ok(Some(format!("the manifest cannot be read: {err}"))),
    };
    let matches = manifest.parts.len() == parts.len()
        && manifest.parts.iter().zip(parts).all(|(listed, part)| {
            Some(listed.object_id.as_str()) == part.object_id.as_deref()
                && listed.length == part.length
                && listed.sha256 == part.sha256
        });
    Ok((!matches).then(|| "the manifest lists other parts than the catalog".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sample_sizes_round_up_and_take_at_least_one() {
        for (total, percent, expected) in [
            (0, 50, 0),
            (10, 0, 0),
            (10, 1, 1),
            (10, 5, 1),
            (10, 10, 1),
            (10, 11, 2),
            (10, 100, 10),
            (10, 250, 10),
            (256, 5, 13),
            (1, 1, 1),
        ] {
            assert_eq!(
                sample_size(total, percent),
                expected,
                "{total} parts at {percent} %"
            );
        }
    }

    #[test]
    fn the_sample_is_random_and_of_the_right_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = choose_sample(100, 10, &mut rng);
        let second = choose_sample(100, 10, &mut rng);
        assert_eq!(first.iter().filter(|chosen| **chosen).count(), 10);
        assert_eq!(second.iter().filter(|chosen| **chosen).count(), 10);
        assert_ne!(first, second, "two draws picked the same parts");
        assert!(choose_sample(5, 100, &mut rng).iter().all(|chosen| *chosen));
        assert!(choose_sample(5, 0, &mut rng).iter().all(|chosen| !*chosen));
    }

    #[test]
    fn the_damage_reason_names_every_part() {
        let parts = [
            DamagedPart {
                index: 3,
                object_id: "a".into(),
                problem: PartProblem::Missing,
                repaired: false,
            },
            DamagedPart {
                index: 7,
                object_id: "b".into(),
                problem: PartProblem::WrongLength {
                    found: 10,
                    part_length: 50,
                },
                repaired: false,
            },
        ];
        let refs: Vec<&DamagedPart> = parts.iter().collect();
        assert_eq!(
            damage_reason(&refs, false),
            "Verification found that part 3 is missing from the remote; part 7 is 10 bytes \
             on the remote, which a part of 50 bytes cannot be sealed as; there is no local copy to upload it again from. \
             Nothing was deleted."
        );
        assert!(damage_reason(&refs[..1], true).contains("no longer matches its hash"));
    }
}
