//! Object Lock and object versions on S3: the lock headers of a PUT,
//! GetObjectLockConfiguration, PutObjectRetention, deleting every version
//! of a key, ListObjectVersions, and reading or copying back one version
//! (for `recover --as-of`).
//!
//! The XML reading and header building are pure; the requests go through
//! the client's `execute` (signed, retried, clock-corrected).

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::client::{check_key, Call, S3Client};
use super::sigv4::EMPTY_PAYLOAD_SHA256;
use super::xml_leaves;
use crate::remote::lock::Retention;
use crate::remote::{caps, ErrorKind, Remote as _, RemoteError};

/// One version of an object, or a delete marker, from ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The key relative to the configured prefix.
    pub key: String,
    pub version_id: String,
    /// When it was written, Unix milliseconds.
    pub last_modified_ms: i64,
    pub is_latest: bool,
    pub delete_marker: bool,
    /// Bytes (0 for a delete marker).
    pub size: u64,
}

/// One page of a ListObjectVersions answer (full keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    pub versions: Vec<ObjectVersion>,
    /// `(key-marker, version-id-marker)` of the next page, if any.
    pub next: Option<(String, String)>,
}

/// The headers that lock an object written at `now` (server time), with
/// the body's SHA-256 as the checksum S3 requires beside them.
pub fn lock_headers(
    retention: Retention,
    now: i64,
    sha256_hex: &str,
) -> Result<Vec<(String, String)>, RemoteError> {
    let mut headers = checksum_headers(sha256_hex)?;
    headers.extend(retention_headers(retention, now));
    Ok(headers)
}

/// `x-amz-checksum-sha256` (and the algorithm's name) for a body whose
/// SHA-256 is already known: S3 wants one with any lock setting.
pub fn checksum_headers(sha256_hex: &str) -> Result<Vec<(String, String)>, RemoteError> {
    let digest = hex::decode(sha256_hex).map_err(|_| {
        RemoteError::permanent("piarchive computed a malformed SHA-256 for an object.")
    })?;
    Ok(vec![
        (
            "x-amz-checksum-sha256".to_owned(),
            base64::engine::general_purpose::STANDARD.encode(digest),
        ),
        (
            "x-amz-sdk-checksum-algorithm".to_owned(),
            "SHA256".to_owned(),
        ),
    ])
}

/// The mode and retain-until date of an object locked at `now`.
pub fn retention_headers(retention: Retention, now: i64) -> Vec<(String, String)> {
    vec![
        (
            "x-amz-object-lock-mode".to_owned(),
            retention.mode.as_str().to_owned(),
        ),
        (
            "x-amz-object-lock-retain-until-date".to_owned(),
            crate::date::rfc3339(retention.until(now)),
        ),
    ]
}

/// The body of PutObjectRetention.
pub fn retention_xml(retention: Retention, until: i64) -> String {
    format!(
        "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
         <RetainUntilDate>{}</RetainUntilDate></Retention>",
        retention.mode.as_str(),
        crate::date::rfc3339(until)
    )
}

/// Whether a GetObjectLockConfiguration answer says Object Lock is on.
pub fn lock_enabled_in(body: &str) -> bool {
    xml_leaves(body).is_ok_and(|leaves| {
        leaves.iter().any(|(path, text)| {
            path == "ObjectLockConfiguration/ObjectLockEnabled" && text.trim() == "Enabled"
        })
    })
}

/// Reads a `<ListVersionsResult>` page.
pub fn parse_versions_page(body: &str) -> Result<VersionsPage, RemoteError> {
    let leaves = xml_leaves(body).map_err(|problem| {
        RemoteError::transient(format!(
            "The storage server sent a version listing that is not valid XML ({problem})."
        ))
    })?;
    let mut page = VersionsPage::default();
    let mut current = ObjectVersion {
        key: String::new(),
        version_id: String::new(),
        last_modified_ms: 0,
        is_latest: false,
        delete_marker: false,
        size: 0,
    };
    let (mut truncated, mut key_marker, mut version_marker) = (false, String::new(), String::new());
    for (path, text) in leaves {
        let Some(rest) = path.strip_prefix("ListVersionsResult/") else {
            continue;
        };
        match rest {
            "Version" | "DeleteMarker" => {
                current.delete_marker = rest == "DeleteMarker";
                page.versions.push(current.clone());
                current.size = 0;
            }
            "Version/Key" | "DeleteMarker/Key" => current.key = text,
            "Version/VersionId" | "DeleteMarker/VersionId" => current.version_id = text,
            "Version/IsLatest" | "DeleteMarker/IsLatest" => current.is_latest = text == "true",
            "Version/Size" => current.size = text.trim().parse().unwrap_or(0),
            "Version/LastModified" | "DeleteMarker/LastModified" => {
                current.last_modified_ms =
                    crate::date::parse_rfc3339_millis(&text).ok_or_else(|| {
                        RemoteError::permanent(format!(
                            "The storage server gave a version the date {text:?}, which is not \
                             a date: it does not behave like S3."
                        ))
                    })?;
            }
            "IsTruncated" => truncated = text.trim() == "true",
            "NextKeyMarker" => key_marker = text,
            "NextVersionIdMarker" => version_marker = text,
            _ => {}
        }
    }
    if truncated {
        if key_marker.is_empty() {
            return Err(RemoteError::permanent(
                "The storage server said the version listing continues but gave no marker.",
            ));
        }
        page.next = Some((key_marker, version_marker));
    }
    Ok(page)
}

impl S3Client {
    /// GetObjectLockConfiguration: whether the bucket has Object Lock on.
    pub fn object_lock_enabled(&self) -> Result<bool, RemoteError> {
        let call = self.bucket_call("GET", vec![("object-lock".to_owned(), String::new())]);
        match self.execute(&call) {
            Ok(answer) => Ok(lock_enabled_in(&String::from_utf8_lossy(&answer.body))),
            // `ObjectLockConfigurationNotFoundError` (404), or a server
            // that does not know the request at all.
            Err(error) if error.kind == ErrorKind::NotFound => Ok(false),
            Err(error)
                if error.kind == ErrorKind::Permanent
                    && (error.message.contains("ObjectLockConfigurationNotFound")
                        || error.message.contains("NotImplemented")) =>
            {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// PutObjectRetention: `key` (its current version) locked until `until`.
    pub(super) fn put_retention(
        &self,
        key: &str,
        retention: Retention,
        until: i64,
    ) -> Result<(), RemoteError> {
        check_key(key)?;
        let full_key = self.config().full_key(key);
        let body = retention_xml(retention, until);
        let sha256_hex = hex::encode(Sha256::digest(body.as_bytes()));
        let call = Call {
            query: vec![("retention".to_owned(), String::new())],
            headers: checksum_headers(&sha256_hex)?,
            body: body.as_bytes(),
            payload_sha256: sha256_hex,
            ..self.object_call("PUT", key, &full_key)
        };
        self.execute(&call).map(|_| ())
    }

    /// Deletes every version (and delete marker) of `key`; a locked one
    /// fails with `ErrorKind::Refused`, after the others are gone.
    pub(super) fn delete_versions(&self, key: &str) -> Result<(), RemoteError> {
        let versions = self.list_versions(key)?;
        let full_key = self.config().full_key(key);
        let mut refused = None;
        for version in versions.iter().filter(|version| version.key == key) {
            let call = Call {
                query: vec![("versionId".to_owned(), version.version_id.clone())],
                ..self.object_call("DELETE", key, &full_key)
            };
            match self.execute(&call) {
                Ok(_) => {}
                Err(error) if error.kind == ErrorKind::NotFound => {}
                Err(error) if error.kind == ErrorKind::Refused => refused = Some(error),
                Err(error) => return Err(error),
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// Every version and delete marker of every key starting with
    /// `prefix` (relative to the configured prefix), across all pages.
    pub fn list_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, RemoteError> {
        let full_prefix = self.config().full_key(prefix);
        let mut versions = Vec::new();
        let mut next: Option<(String, String)> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![
                ("versions".to_owned(), String::new()),
                ("prefix".to_owned(), full_prefix.clone()),
            ];
            if let Some((key_marker, version_marker)) = &next {
                query.push(("key-marker".to_owned(), key_marker.clone()));
                if !version_marker.is_empty() {
                    query.push(("version-id-marker".to_owned(), version_marker.clone()));
                }
            }
            let answer = self.execute(&self.bucket_call("GET", query))?;
            let page = parse_versions_page(&String::from_utf8_lossy(&answer.body))?;
            drop(answer);
            pages += 1;
            for mut version in page.versions {
                if let Some(relative) = self.config().relative_key(&version.key) {
                    version.key = relative.to_owned();
                    versions.push(version);
                }
            }
            if page.next.is_some() && caps::listing_over(pages, versions.len())
                || versions.len() > caps::MAX_LISTED_KEYS
            {
                return Err(caps::listing_too_long(
                    &self.describe(),
                    prefix,
                    pages,
                    versions.len(),
                ));
            }
            match page.next {
                Some(marker) if next.as_ref() == Some(&marker) => {
                    return Err(RemoteError::permanent(
                        "The storage server repeated the same version listing page: it does \
                         not behave like S3.",
                    ))
                }
                Some(marker) => next = Some(marker),
                None => break,
            }
        }
        Ok(versions)
    }

    /// HeadObject's Object Lock headers: `(mode, retain-until date as
    /// sent)`, or `None` for an object without a lock. For checks and tests.
    pub fn lock_of(&self, key: &str) -> Result<Option<(String, String)>, RemoteError> {
        check_key(key)?;
        let full_key = self.config().full_key(key);
        Ok(self
            .execute(&self.object_call("HEAD", key, &full_key))?
            .lock)
    }

    /// GetObject of one version, of at most `max_len` bytes (see
    /// `Remote::get_at_most`).
    pub fn get_version(
        &self,
        key: &str,
        version_id: &str,
        max_len: u64,
    ) -> Result<Vec<u8>, RemoteError> {
        check_key(key)?;
        let full_key = self.config().full_key(key);
        let call = Call {
            query: vec![("versionId".to_owned(), version_id.to_owned())],
            max_body: max_len.min(caps::MAX_OBJECT_BYTES),
            ..self.object_call("GET", key, &full_key)
        };
        Ok(self.execute(&call)?.body)
    }

    /// CopyObject of one version onto its own key, so it is the current
    /// version again (the server copies; no bytes pass through here). The
    /// copy gets the lock of the settings, if any.
    pub fn copy_version_back(&self, key: &str, version_id: &str) -> Result<(), RemoteError> {
        check_key(key)?;
        let full_key = self.config().full_key(key);
        let source = format!(
            "/{}/{}?versionId={}",
            self.config().bucket,
            super::sigv4::encode_path(&full_key),
            super::sigv4::encode_path(version_id)
        );
        let mut headers = vec![("x-amz-copy-source".to_owned(), source)];
        if let Some(retention) = self.config().retention {
            headers.extend(retention_headers(retention, self.server_now()));
            // S3 wants a checksum beside lock headers; the request body is
            // empty, and this is its MD5.
            headers.push((
                "content-md5".to_owned(),
                "1B2M2Y8AsgTpgAhIF+K+dA==".to_owned(),
            ));
        }
        let call = Call {
            headers,
            ..self.object_call("PUT", key, &full_key)
        };
        self.execute(&call).map(|_| ())
    }

    fn bucket_call(&self, method: &'static str, query: Vec<(String, String)>) -> Call<'static> {
        Call {
            method,
            full_key: None,
            key: None,
            query,
            headers: Vec::new(),
            body: &[],
            payload_sha256: EMPTY_PAYLOAD_SHA256.to_owned(),
            max_body: caps::MAX_LIST_PAGE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::lock::LockMode;

    #[test]
    fn lock_headers_carry_mode_date_and_checksum() {
        let retention = Retention {
            mode: LockMode::Compliance,
            days: 2,
        };
        let headers = lock_headers(retention, 1_709_210_096, EMPTY_PAYLOAD_SHA256).unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-object-lock-mode"), Some("COMPLIANCE"));
        assert_eq!(
            get("x-amz-object-lock-retain-until-date"),
            Some("2024-03-02T12:34:56Z")
        );
        assert_eq!(
            get("x-amz-checksum-sha256"),
            Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
        assert!(lock_headers(retention, 0, "not hex").is_err());
    }

    #[test]
    fn parses_version_listings_with_delete_markers() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p/</Prefix><IsTruncated>true</IsTruncated>
  <NextKeyMarker>p/config</NextKeyMarker><NextVersionIdMarker>v2</NextVersionIdMarker>
  <Version><Key>p/config</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-12-06T18:10:19.500Z</LastModified><Size>5</Size></Version>
  <DeleteMarker><Key>p/a&amp;b</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-12-06T18:10:20Z</LastModified></DeleteMarker>
  <Version><Key>p/a&amp;b</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>
    <LastModified>2026-12-06T18:10:18Z</LastModified></Version>
</ListVersionsResult>"#;
        let page = parse_versions_page(body).unwrap();
        assert_eq!(page.next, Some(("p/config".to_owned(), "v2".to_owned())));
        let summary: Vec<_> = page
            .versions
            .iter()
            .map(|v| {
                (
                    v.key.as_str(),
                    v.version_id.as_str(),
                    v.last_modified_ms,
                    v.is_latest,
                    v.delete_marker,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("p/config", "v3", 1_796_580_619_500, true, false),
                ("p/a&b", "m1", 1_796_580_620_000, true, true),
                ("p/a&b", "v1", 1_796_580_618_000, false, false),
            ]
        );
        let bad = "<ListVersionsResult><Version><Key>k</Key><LastModified>soon</LastModified>\
                   </Version></ListVersionsResult>";
        assert!(parse_versions_page(bad).is_err());
    }

    #[test]
    fn reads_the_lock_configuration() {
        assert!(lock_enabled_in(
            "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
             </ObjectLockConfiguration>"
        ));
        assert!(!lock_enabled_in("<ObjectLockConfiguration/>"));
        assert!(!lock_enabled_in("<html>"));
    }
}
