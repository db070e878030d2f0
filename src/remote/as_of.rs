//! A versioned S3 bucket as it stood at a past time, for `recover --as-of`.
//!
//! [`AsOfRemote::open`] lists every object version under the prefix once
//! (ListObjectVersions) and keeps, for each key, the newest version written
//! at or before the time; later versions and delete markers are ignored, and
//! a key whose newest such entry is a delete marker does not exist. Reads
//! (`get`, `head`, `list`) answer from those versions; writes are refused.
//! [`AsOfRemote::restore`] then makes each chosen version the current one
//! again where an attacker deleted or overwrote it (a server-side copy), so
//! the appliance works on the bucket as usual afterwards.
//!
//! Owns the choice of versions and the sentences for a time that cannot be
//! used. Must not touch: LMDB, the repository format (it only knows that
//! `config` exists in every repository).

use std::collections::BTreeMap;

use super::s3::versions::ObjectVersion;
use super::s3::S3Client;
use super::{Remote, RemoteError, RemoteSettings, TransferOptions};

/// The version of one key chosen for the time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chosen {
    version_id: String,
    size: u64,
    /// It is the current version: nothing later overwrote or deleted it.
    current: bool,
}

/// A bucket read as it stood at `as_of`.
pub struct AsOfRemote {
    client: S3Client,
    /// Unix seconds.
    as_of: i64,
    chosen: BTreeMap<String, Chosen>,
}

/// For each key, the newest version written at or before `as_of_ms`
/// (delete markers hide the key). Pure.
fn choose(versions: &[ObjectVersion], as_of_ms: i64) -> BTreeMap<String, Chosen> {
    let mut newest: BTreeMap<&str, &ObjectVersion> = BTreeMap::new();
    for version in versions.iter().filter(|v| v.last_modified_ms <= as_of_ms) {
        let slot = newest.entry(version.key.as_str()).or_insert(version);
        if version.last_modified_ms > slot.last_modified_ms {
            *slot = version;
        }
    }
    newest
        .into_iter()
        .filter(|(_, version)| !version.delete_marker)
        .map(|(key, version)| {
            (
                key.to_owned(),
                Chosen {
                    version_id: version.version_id.clone(),
                    size: version.size,
                    current: version.is_latest,
                },
            )
        })
        .collect()
}

/// Reads an `--as-of` time: RFC 3339, not in the future. Unix seconds.
pub fn parse_time(text: &str, now: i64) -> Result<i64, RemoteError> {
    let millis = crate::date::parse_rfc3339_millis(text).ok_or_else(|| {
        RemoteError::permanent(format!(
            "{text:?} is not a date and time piarchive can read: write it like \
             2026-12-06T18:30:00Z (RFC 3339, with Z or an offset such as +01:00)."
        ))
    })?;
    let secs = millis.div_euclid(1000);
    if secs > now {
        return Err(RemoteError::permanent(format!(
            "{} is in the future (it is now {}): choose a time before the damage was done.",
            crate::date::rfc3339(secs),
            crate::date::rfc3339(now)
        )));
    }
    Ok(secs)
}

impl AsOfRemote {
    /// Lists the versions of `settings`' bucket and chooses those of
    /// `as_of` (Unix seconds, already checked by [`parse_time`]). Fails
    /// with a sentence when the storage is not S3, or when the backup did
    /// not exist yet at that time.
    pub fn open(
        settings: &RemoteSettings,
        options: &TransferOptions,
        as_of: i64,
    ) -> Result<AsOfRemote, RemoteError> {
        if !matches!(settings, RemoteSettings::S3 { .. }) {
            return Err(RemoteError::permanent(
                "Recovery as of a time needs S3 storage with versioning (or Object Lock): a \
                 folder keeps no older versions.",
            ));
        }
        let client = S3Client::new(settings, options)?;
        let versions = client.list_versions("")?;
        let chosen = choose(&versions, as_of * 1000 + 999);
        let remote = AsOfRemote {
            client,
            as_of,
            chosen,
        };
        if !remote.chosen.contains_key(crate::repo::CONFIG_KEY) {
            let first = versions
                .iter()
                .filter(|v| v.key == crate::repo::CONFIG_KEY && !v.delete_marker)
                .map(|v| v.last_modified_ms.div_euclid(1000))
                .min();
            if let Some(first) = first {
                return Err(RemoteError::permanent(format!(
                    "The backup in {} did not exist yet at {}: it was first written at {}. \
                     Choose a later time.",
                    remote.client.describe(),
                    crate::date::rfc3339(as_of),
                    crate::date::rfc3339(first)
                )));
            }
        }
        Ok(remote)
    }

    /// Makes every chosen version that is no longer the current one
    /// current again (server-side copies). Returns how many were copied.
    /// Run it again after an interruption: it copies what is still missing.
    pub fn restore(&self) -> Result<usize, RemoteError> {
        let mut copied = 0;
        for (key, chosen) in &self.chosen {
            if !chosen.current {
                self.client.copy_version_back(key, &chosen.version_id)?;
                copied += 1;
            }
        }
        Ok(copied)
    }

    fn chosen(&self, key: &str) -> Result<&Chosen, RemoteError> {
        self.chosen.get(key).ok_or_else(|| {
            RemoteError::not_found(format!(
                "The object {key:?} did not exist in {} at {}.",
                self.client.describe(),
                crate::date::rfc3339(self.as_of)
            ))
        })
    }

    fn read_only(&self) -> RemoteError {
        RemoteError::permanent(format!(
            "{} is being read as it stood at a past time and cannot be written to.",
            self.client.describe()
        ))
    }
}

impl Remote for AsOfRemote {
    fn put(&self, _key: &str, _body: &[u8]) -> Result<(), RemoteError> {
        Err(self.read_only())
    }

    fn get_at_most(&self, key: &str, max_len: u64) -> Result<Vec<u8>, RemoteError> {
        let chosen = self.chosen(key)?;
        self.client.get_version(key, &chosen.version_id, max_len)
    }

    fn head(&self, key: &str) -> Result<Option<u64>, RemoteError> {
        Ok(self.chosen.get(key).map(|chosen| chosen.size))
    }

    fn delete(&self, _key: &str) -> Result<(), RemoteError> {
        Err(self.read_only())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        Ok(self
            .chosen
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    fn describe(&self) -> String {
        format!(
            "{} as it stood at {}",
            self.client.describe(),
            crate::date::rfc3339(self.as_of)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(key: &str, id: &str, at: i64, latest: bool, marker: bool) -> ObjectVersion {
        ObjectVersion {
            key: key.to_owned(),
            version_id: id.to_owned(),
            last_modified_ms: at,
            is_latest: latest,
            delete_marker: marker,
            size: 7,
        }
    }

    #[test]
    fn chooses_the_newest_version_at_or_before_the_time() {
        let versions = [
            version("config", "c1", 1_000, false, false),
            version("config", "c2", 5_000, true, false), // the attacker's overwrite
            version("parts/a", "a1", 2_000, false, false),
            version("parts/a", "m", 6_000, true, true), // the attacker's delete
            version("parts/b", "b1", 1_500, false, false),
            version("parts/b", "m0", 2_500, false, true), // deleted before the time
            version("parts/b", "b2", 7_000, true, false), // written after it
            version("parts/c", "c9", 3_000, true, false),
        ];
        let chosen = choose(&versions, 3_000);
        let summary: Vec<_> = chosen
            .iter()
            .map(|(k, c)| (k.as_str(), c.version_id.as_str(), c.current))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("config", "c1", false),
                ("parts/a", "a1", false),
                ("parts/c", "c9", true)
            ]
        );
        assert!(choose(&versions, 999).is_empty());
    }

    #[test]
    fn times_in_the_future_or_unreadable_are_refused_with_sentences() {
        let now = 1_796_580_619;
        assert_eq!(parse_time("2026-12-06T18:10:19Z", now), Ok(now));
        assert_eq!(parse_time("2026-12-06T19:10:18+01:00", now), Ok(now - 1));
        let future = parse_time("2026-12-06T18:10:20Z", now).unwrap_err();
        assert!(future.message.contains("in the future"), "{future}");
        for bad in ["yesterday", "", "2026-13-01T00:00:00Z", "1796494219"] {
            let error = parse_time(bad, now).unwrap_err();
            assert!(error.message.contains("RFC 3339"), "{error}");
        }
    }
}
