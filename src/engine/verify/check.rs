//! Reading one destination's objects back for verification: a part
//! object downloaded and checked (its tags and SHA-256), the manifest
//! opened and compared with the catalog. No repairs, no books.

use sha2::{Digest, Sha256};

use super::{PartProblem, VerifyError};
use crate::engine::Failure;
use crate::remote::{ErrorKind, Remote};
use crate::repo::{self, Manifest, ObjectId, RepoKeys};
use crate::store::records::PartRecord;

/// A part object downloaded and checked.
pub(super) enum Fetched {
    /// Its sealed bytes, which open and hash right.
    Good(Vec<u8>),
    Missing,
    /// What is wrong, and the bytes downloaded.
    Bad(PartProblem, u64),
}

/// Downloads one part object and checks that it opens (its tags) and
/// hashes to the recorded SHA-256; a remote that fails is an error.
pub(super) fn fetch_checked(
    remote: &dyn Remote,
    keys: &RepoKeys,
    object_id: &ObjectId,
    part: &PartRecord,
) -> Result<Fetched, VerifyError> {
    let key = repo::part_key(object_id);
    let sealed = match remote.get_at_most(&key, repo::max_sealed_len(part.length as usize) as u64) {
        Ok(bytes) => bytes,
        Err(err) if err.kind == ErrorKind::NotFound => return Ok(Fetched::Missing),
        Err(err) => return Err(Failure::from(err).into()),
    };
    let length = sealed.len() as u64;
    let bytes = match keys.open_part(object_id, sealed.clone(), part.length) {
        Ok(bytes) => bytes,
        Err(err) => {
            let problem = PartProblem::Corrupt(format!("it does not decrypt: {err}"));
            return Ok(Fetched::Bad(problem, length));
        }
    };
    if bytes.len() as u64 != part.length || hex::encode(Sha256::digest(&bytes)) != part.sha256 {
        let problem = PartProblem::Corrupt("it does not match its recorded SHA-256".into());
        return Ok(Fetched::Bad(problem, length));
    }
    Ok(Fetched::Good(sealed))
}

pub(super) fn object_id_of(part: &PartRecord) -> Result<ObjectId, VerifyError> {
    let id = part.object_id.as_deref().unwrap_or_default();
    ObjectId::parse(id)
        .map_err(|err| VerifyError::Unavailable(format!("A stored object id is malformed: {err}")))
}

/// The manifest fetched, opened and compared with the catalog's parts.
/// `Ok(Some(reason))` when it is missing or does not match.
pub(super) fn check_manifest(
    remote: &dyn Remote,
    remote_is_main: bool,
    keys: &RepoKeys,
    archive_id: &str,
    parts: &[PartRecord],
) -> Result<Option<String>, VerifyError> {
    let bytes = match remote.get_at_most(&repo::manifest_key(archive_id), repo::MAX_MANIFEST_BYTES)
    {
        Ok(bytes) => bytes,
        Err(err) if err.kind == ErrorKind::NotFound => {
            let missing = if remote_is_main {
                "the manifest is missing from the remote"
            } else {
                "the manifest is missing"
            };
            return Ok(Some(missing.to_string()));
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
