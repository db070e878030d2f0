//! The S3 remote: settings, addressing and the pure parts of the protocol.
//!
//! Owns endpoint parsing and path-style / virtual-hosted addressing, the
//! minimal XML reading S3 needs (ListObjectsV2 pages, `<Error>` bodies), the
//! user-facing sentence for each S3 error, and the backoff schedule. The
//! signer lives in `sigv4` (pure) and the HTTP edge in `client` (ureq). This
//! module does no I/O and never reads the clock.

pub mod client;
pub mod sigv4;
pub mod versions;

use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::Reader;

pub use client::{Clock, S3Client};

use super::{RemoteError, RemoteSettings};

/// Longest wait between two attempts, whatever the attempt number.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Resolved S3 settings: validated, with the endpoint split into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host, without the port.
    pub host: String,
    /// The port to connect to (explicit or the scheme's default).
    pub port: u16,
    /// True when the endpoint named the scheme's default port or none; then
    /// the Host header carries no port.
    pub default_port: bool,
    pub region: String,
    pub bucket: String,
    /// Configured prefix without slashes at either end; may be empty.
    pub prefix: String,
    pub path_style: bool,
    pub credentials: sigv4::Credentials,
    /// For messages: the endpoint as the user typed it.
    pub endpoint: String,
    /// Object Lock: the retention every object is written with.
    pub retention: Option<super::lock::Retention>,
}

impl S3Config {
    /// Checks S3 settings and splits the endpoint. Every failure is a
    /// `Permanent` error naming the field to fix.
    pub fn from_settings(settings: &RemoteSettings) -> Result<Self, RemoteError> {
        let RemoteSettings::S3 {
            endpoint,
            region,
            bucket,
            prefix,
            path_style,
            access_key_id,
            secret_access_key,
            object_lock,
        } = settings
        else {
            return Err(RemoteError::permanent(
                "These remote settings are not for S3 storage.",
            ));
        };
        for (value, what) in [
            (endpoint, "endpoint"),
            (region, "region"),
            (bucket, "bucket"),
            (access_key_id, "access key id"),
            (secret_access_key, "secret access key"),
        ] {
            if value.trim().is_empty() {
                return Err(RemoteError::permanent(format!(
                    "The remote settings have no {what}: fill it in."
                )));
            }
        }
        let retention = match object_lock {
            None => None,
            Some(lock) => Some(lock.check().map_err(RemoteError::permanent)?),
        };
        let trimmed = endpoint.trim().trim_end_matches('/');
        let (scheme, authority) = match trimmed.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("https".to_owned(), trimmed),
        };
        let scheme_default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => {
                return Err(RemoteError::permanent(format!(
                    "The endpoint {endpoint:?} must start with https:// or http://."
                )))
            }
        };
        if authority.contains('/') || authority.contains('?') || authority.contains('@') {
            return Err(RemoteError::permanent(format!(
                "The endpoint {endpoint:?} must be only a scheme, a host and an optional port, \
                 like https://s3.eu-west-1.amazonaws.com."
            )));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            RemoteError::permanent(format!(
                "The endpoint {endpoint:?} has no valid host and port."
            ))
        })?;
        let port = port.unwrap_or(scheme_default_port);
        let bucket = bucket.trim().to_owned();
        if bucket.contains('/') {
            return Err(RemoteError::permanent(format!(
                "The bucket name {bucket:?} may not contain '/': put folders in the prefix."
            )));
        }
        if !path_style && (host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[')) {
            return Err(RemoteError::permanent(format!(
                "The endpoint {endpoint:?} is an IP address, which cannot hold the bucket name: \
                 turn on path-style addressing."
            )));
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            default_port: port == scheme_default_port,
            region: region.trim().to_owned(),
            bucket,
            prefix: prefix.trim_matches('/').to_owned(),
            path_style: *path_style,
            credentials: sigv4::Credentials {
                access_key_id: access_key_id.trim().to_owned(),
                secret_access_key: secret_access_key.trim().to_owned(),
            },
            endpoint: endpoint.clone(),
            retention,
        })
    }

    /// The key in the bucket for a key relative to the prefix.
    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// The key relative to the prefix for a key in the bucket, if it is under it.
    pub fn relative_key<'k>(&self, full_key: &'k str) -> Option<&'k str> {
        if self.prefix.is_empty() {
            Some(full_key)
        } else {
            full_key
                .strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
        }
    }

    /// Host header (with the port unless it is the default) and decoded path
    /// for an object key in the bucket; `None` addresses the bucket itself.
    pub fn location(&self, full_key: Option<&str>) -> (String, String) {
        let authority = if self.default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        match (self.path_style, full_key) {
            (true, Some(key)) => (authority, format!("/{}/{key}", self.bucket)),
            (true, None) => (authority, format!("/{}", self.bucket)),
            (false, Some(key)) => (format!("{}.{authority}", self.bucket), format!("/{key}")),
            (false, None) => (format!("{}.{authority}", self.bucket), "/".to_owned()),
        }
    }

    /// `s3://bucket/prefix at endpoint`.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{} at {}", self.bucket, self.endpoint)
        } else {
            format!("s3://{}/{} at {}", self.bucket, self.prefix, self.endpoint)
        }
    }
}

/// Splits `host[:port]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        return match &authority[end + 1..] {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// The fields of an S3 `<Error>` body that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3ErrorBody {
    pub code: String,
    pub message: String,
    /// Some servers name the bucket's real region on a region mismatch.
    pub region: String,
}

/// Reads `<Error><Code>..</Code><Message>..</Message></Error>`; `None` when
/// the body is not such a document (e.g. a proxy's HTML page or no body).
pub fn parse_error_body(body: &str) -> Option<S3ErrorBody> {
    let leaves = xml_leaves(body).ok()?;
    let mut error = S3ErrorBody::default();
    for (path, text) in leaves {
        match path.as_str() {
            "Error/Code" => error.code = text,
            "Error/Message" => error.message = text,
            "Error/Region" => error.region = text,
            _ => {}
        }
    }
    (!error.code.is_empty()).then_some(error)
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Full keys in the bucket.
    pub keys: Vec<String>,
    /// Present when the listing continues on another page.
    pub next_continuation_token: Option<String>,
}

/// Reads a `<ListBucketResult>` page.
pub fn parse_list_page(body: &str) -> Result<ListPage, RemoteError> {
    let leaves = xml_leaves(body).map_err(|problem| {
        RemoteError::transient(format!(
            "The storage server sent a listing that is not valid XML ({problem})."
        ))
    })?;
    let mut page = ListPage::default();
    let mut truncated = false;
    let mut saw_root = false;
    for (path, text) in leaves {
        saw_root |= path.starts_with("ListBucketResult/");
        match path.as_str() {
            "ListBucketResult/Contents/Key" => page.keys.push(text),
            "ListBucketResult/IsTruncated" => truncated = text.trim() == "true",
            "ListBucketResult/NextContinuationToken" => {
                page.next_continuation_token = Some(text);
            }
            _ => {}
        }
    }
    if !saw_root {
        return Err(RemoteError::transient(
            "The storage server answered a listing with something that is not a bucket listing.",
        ));
    }
    if !truncated {
        page.next_continuation_token = None;
    } else if page
        .next_continuation_token
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        return Err(RemoteError::permanent(
            "The storage server said the listing continues but gave no continuation token.",
        ));
    }
    Ok(page)
}

/// Every text-bearing element as (`Parent/Child` path, unescaped text), in
/// document order. Enough XML for S3's flat documents.
fn xml_leaves(xml: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut leaves = Vec::new();
    loop {
        match reader.read_event().map_err(|error| error.to_string())? {
            Event::Start(start) => {
                stack.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::End(_) if !stack.is_empty() => {
                leaves.push((stack.join("/"), std::mem::take(&mut text)));
                stack.pop();
            }
            Event::Empty(empty) => {
                let mut path = stack.join("/");
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(&String::from_utf8_lossy(empty.local_name().as_ref()));
                leaves.push((path, String::new()));
            }
            Event::Text(chunk) => text.push_str(&chunk.decode().map_err(|e| e.to_string())?),
            Event::CData(chunk) => text.push_str(&chunk.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(reference) => {
                if let Some(ch) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    text.push(ch);
                } else {
                    let name = reference.decode().map_err(|e| e.to_string())?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| format!("unknown entity &{name};"))?;
                    text.push_str(resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(leaves)
}

/// What an S3 error answer means for the caller.
pub fn classify_status(
    status: u16,
    error: Option<&S3ErrorBody>,
    config: &S3Config,
    key: Option<&str>,
) -> RemoteError {
    let sent_code = error.map(|e| e.code.as_str()).unwrap_or("");
    let message = error.map(|e| e.message.as_str()).unwrap_or("");
    // Garage (2.x) answers three of the cases below with codes of its own;
    // its message tells which: an unknown key and a wrong secret are both
    // `AccessDenied`, a body that does not match its signed hash is
    // `InvalidDigest`.
    let code = match sent_code {
        "AccessDenied" if message.contains("No such key") => "InvalidAccessKeyId",
        "AccessDenied" if message.contains("Invalid signature") => "SignatureDoesNotMatch",
        "InvalidDigest" if message.contains("x-amz-content-sha256") => "XAmzContentSHA256Mismatch",
        code => code,
    };
    let bucket = &config.bucket;
    let endpoint = &config.endpoint;
    match (status, code) {
        (500..=599, _) | (429, _) | (_, "SlowDown") | (_, "RequestTimeout") => {
            RemoteError::transient(format!(
                "The storage server at {endpoint} is busy or failing (HTTP {status}{}): \
                 piarchive will try again.",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}")
                }
            ))
        }
        (_, "XAmzContentSHA256Mismatch") | (_, "BadDigest") => RemoteError::transient(format!(
            "The storage server at {endpoint} received other bytes than were sent (code {sent_code}): \
             piarchive will try again."
        )),
        (_, "InvalidAccessKeyId") => RemoteError::permanent(
            "The storage server does not know the access key: check the access key id in the \
             remote settings.",
        ),
        (_, "SignatureDoesNotMatch") => RemoteError::permanent(
            "The storage server rejected the access key: check the key id and secret in the \
             remote settings.",
        ),
        (_, "NoSuchBucket") => RemoteError::permanent(format!(
            "The bucket {bucket:?} does not exist at {endpoint}: create it or correct the bucket \
             name in the remote settings."
        )),
        (_, "AccessDenied") => RemoteError::permanent(format!(
            "The storage server denied access to bucket {bucket:?}: give the access key \
             permission to read, write, list and delete there."
        )),
        (_, "RequestTimeTooSkewed") => RemoteError::permanent(
            "The storage server says this device's clock is wrong and the correction did not \
             help: check the date and time on the device.",
        ),
        (_, "AuthorizationHeaderMalformed") | (_, "PermanentRedirect") | (301, _) => {
            let hint = match error.map(|e| e.region.as_str()) {
                Some(region) if !region.is_empty() => format!("set the region to {region:?}"),
                _ => "check the region and endpoint".to_owned(),
            };
            RemoteError::permanent(format!(
                "The bucket {bucket:?} is not in region {:?} at {endpoint}: {hint} in the remote \
                 settings.",
                config.region
            ))
        }
        (404, _) => RemoteError::not_found(format!(
            "The object {:?} is not in {}.",
            key.unwrap_or(""),
            config.describe()
        )),
        (403, _) => RemoteError::permanent(format!(
            "The storage server refused the request (HTTP 403): check the access key, secret and \
             the key's permissions on bucket {bucket:?}."
        )),
        _ => {
            let detail = match error {
                Some(e) if !e.message.is_empty() => format!("{}: {}", e.code, e.message),
                Some(e) => e.code.clone(),
                None => "no details".to_owned(),
            };
            RemoteError::permanent(format!(
                "The storage server at {endpoint} refused the request (HTTP {status}, {detail})."
            ))
        }
    }
}

/// Whether an error answer to a DELETE means the storage refuses to delete
/// (a locked object, or a key without delete rights) rather than a wrong
/// key or signature.
pub fn delete_refused(status: u16, error: Option<&S3ErrorBody>) -> bool {
    let Some(error) = error else {
        return false;
    };
    status == 403
        && error.code == "AccessDenied"
        && !error.message.contains("No such key")
        && !error.message.contains("Invalid signature")
}

/// The sentence for a refused delete.
pub fn refused_error(config: &S3Config, key: &str) -> RemoteError {
    let reason = if config.retention.is_some() {
        "it is still under Object Lock, or the access key may not delete"
    } else {
        "the access key may not delete there"
    };
    RemoteError::refused(format!(
        "{} refused to delete {key:?}: {reason}. The storage is not freed yet; piarchive \
         will try again later, and nothing else waits for it.",
        config.describe()
    ))
}

/// Wait before attempt `attempt + 1` after `attempt` failures (1-based):
/// `base * 2^(attempt-1)`, capped at [`MAX_BACKOFF`], scaled by `jitter` in
/// [0.5, 1.0] ("equal jitter"), so concurrent clients spread out.
pub fn backoff_delay(attempt: u32, base: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let uncapped = base.saturating_mul(1u32 << exponent);
    let capped = uncapped.min(MAX_BACKOFF);
    capped.mul_f64(jitter.clamp(0.5, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str, prefix: &str, path_style: bool) -> RemoteSettings {
        RemoteSettings::S3 {
            endpoint: endpoint.to_owned(),
            region: "eu-west-1".to_owned(),
            bucket: "family-backup".to_owned(),
            prefix: prefix.to_owned(),
            path_style,
            access_key_id: "AKID".to_owned(),
            secret_access_key: "secret".to_owned(),
            object_lock: None,
        }
    }

    #[test]
    fn addresses_objects_path_style_and_virtual_hosted() {
        // (endpoint, path_style, prefix, key) -> (host header, path, connect port)
        type Case<'a> = (
            &'a str,
            bool,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a str,
            u16,
        );
        let cases: &[Case<'_>] = &[
            (
                "https://s3.eu-west-1.amazonaws.com",
                false,
                "piarchive",
                Some("parts/ab/x"),
                "family-backup.s3.eu-west-1.amazonaws.com",
                "/piarchive/parts/ab/x",
                443,
            ),
            (
                "http://127.0.0.1:9000/",
                true,
                "/piarchive/",
                Some("config"),
                "127.0.0.1:9000",
                "/family-backup/piarchive/config",
                9000,
            ),
            (
                "http://nas.local:80",
                true,
                "",
                None,
                "nas.local",
                "/family-backup",
                80,
            ),
            (
                "s3.example.com:8443",
                false,
                "",
                None,
                "family-backup.s3.example.com:8443",
                "/",
                8443,
            ),
            (
                "http://[::1]:9000",
                true,
                "p",
                Some("k"),
                "[::1]:9000",
                "/family-backup/p/k",
                9000,
            ),
        ];
        for (endpoint, path_style, prefix, key, host, path, port) in cases {
            let config = S3Config::from_settings(&settings(endpoint, prefix, *path_style))
                .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
            let full_key = key.map(|k| config.full_key(k));
            assert_eq!(
                config.location(full_key.as_deref()),
                (host.to_string(), path.to_string()),
                "{endpoint}"
            );
            assert_eq!(config.port, *port, "{endpoint}");
        }
    }

    #[test]
    fn rejects_settings_that_cannot_work_with_a_sentence() {
        let cases: &[(RemoteSettings, &str)] = &[
            (settings("ftp://host", "", true), "https://"),
            (settings("https://host/path", "", true), "only a scheme"),
            (settings("https://host:notaport", "", true), "valid host"),
            (settings("http://10.0.0.2:9000", "", false), "path-style"),
            (settings("", "", true), "no endpoint"),
            (RemoteSettings::Dir { path: "/x".into() }, "not for S3"),
        ];
        for (settings, needle) in cases {
            let error = S3Config::from_settings(settings).unwrap_err();
            assert_eq!(error.kind, crate::remote::ErrorKind::Permanent);
            assert!(
                error.message.contains(needle),
                "{needle:?} not in {:?}",
                error.message
            );
        }
    }

    #[test]
    fn prefix_maps_keys_both_ways() {
        let config = S3Config::from_settings(&settings("https://h", "/a/b/", true)).unwrap();
        assert_eq!(config.full_key("parts/x"), "a/b/parts/x");
        assert_eq!(config.relative_key("a/b/parts/x"), Some("parts/x"));
        assert_eq!(config.relative_key("a/bc/parts/x"), None);
        assert_eq!(config.describe(), "s3://family-backup/a/b at https://h");
        let bare = S3Config::from_settings(&settings("https://h", "", true)).unwrap();
        assert_eq!(bare.relative_key("x/y"), Some("x/y"));
        assert_eq!(bare.describe(), "s3://family-backup at https://h");
    }

    #[test]
    fn parses_list_pages_with_escapes() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>family-backup</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a&amp;b &lt;c&gt;</Key><Size>3</Size></Contents>
  <Contents><Key>p/caf&#233;</Key><Size>4</Size></Contents>
  <NextContinuationToken>tok+/=</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list_page(body).unwrap();
        assert_eq!(page.keys, vec!["p/a&b <c>", "p/café"]);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok+/="));

        let last = "<ListBucketResult><IsTruncated>false</IsTruncated>\
                    <NextContinuationToken>ignored</NextContinuationToken></ListBucketResult>";
        assert_eq!(parse_list_page(last).unwrap(), ListPage::default());

        let broken = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(parse_list_page(broken).is_err());
        assert!(parse_list_page("<html>proxy error</html>").is_err());
    }

    #[test]
    fn parses_error_bodies() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message>\
                    <BucketName>x</BucketName></Error>";
        assert_eq!(
            parse_error_body(body),
            Some(S3ErrorBody {
                code: "NoSuchBucket".to_owned(),
                message: "The specified bucket does not exist".to_owned(),
                region: String::new(),
            })
        );
        assert_eq!(parse_error_body(""), None);
        assert_eq!(parse_error_body("<html><body>502</body></html>"), None);
    }

    #[test]
    fn classifies_statuses_and_codes() {
        use crate::remote::ErrorKind::*;
        let config = S3Config::from_settings(&settings("https://h", "", true)).unwrap();
        let body = |code: &str| S3ErrorBody {
            code: code.to_owned(),
            message: String::new(),
            region: "us-west-2".to_owned(),
        };
        let cases: &[(u16, Option<&str>, crate::remote::ErrorKind, &str)] = &[
            (500, Some("InternalError"), Transient, "try again"),
            (503, Some("SlowDown"), Transient, "busy"),
            (502, None, Transient, "HTTP 502"),
            (429, None, Transient, "busy"),
            (400, Some("RequestTimeout"), Transient, "try again"),
            (
                400,
                Some("XAmzContentSHA256Mismatch"),
                Transient,
                "other bytes",
            ),
            (400, Some("BadDigest"), Transient, "try again"),
            (403, Some("InvalidAccessKeyId"), Permanent, "access key id"),
            (
                403,
                Some("SignatureDoesNotMatch"),
                Permanent,
                "key id and secret",
            ),
            (404, Some("NoSuchBucket"), Permanent, "create it"),
            (403, Some("AccessDenied"), Permanent, "permission"),
            (
                400,
                Some("AuthorizationHeaderMalformed"),
                Permanent,
                "\"us-west-2\"",
            ),
            (404, Some("NoSuchKey"), NotFound, "not in"),
            (404, None, NotFound, "not in"),
            (403, None, Permanent, "HTTP 403"),
            (400, Some("InvalidArgument"), Permanent, "InvalidArgument"),
        ];
        for (status, code, kind, needle) in cases {
            let error = code.map(body);
            let classified = classify_status(*status, error.as_ref(), &config, Some("k"));
            assert_eq!(classified.kind, *kind, "{status} {code:?}");
            assert!(
                classified.message.contains(needle),
                "{needle:?} not in {:?}",
                classified.message
            );
            assert!(
                classified.message.ends_with('.'),
                "{:?}",
                classified.message
            );
        }
    }

    #[test]
    fn classifies_garage_codes_by_their_message() {
        use crate::remote::ErrorKind::*;
        let config = S3Config::from_settings(&settings("https://h", "", true)).unwrap();
        // Code and message as Garage 2.5 sends them.
        let cases: &[(u16, &str, &str, crate::remote::ErrorKind, &str)] = &[
            (
                403,
                "AccessDenied",
                "Forbidden: Invalid signature",
                Permanent,
                "key id and secret",
            ),
            (
                403,
                "AccessDenied",
                "Forbidden: No such key: NOBODYKNOWSME",
                Permanent,
                "access key id",
            ),
            (
                403,
                "AccessDenied",
                "Forbidden: Operation is not allowed for this key.",
                Permanent,
                "permission",
            ),
            (
                400,
                "InvalidDigest",
                "Invalid digest: SHA256 checksum verification failed (from x-amz-content-sha256)",
                Transient,
                "other bytes",
            ),
            (
                400,
                "InvalidDigest",
                "Invalid digest: The Content-MD5 or checksum value that you specified is not valid.",
                Permanent,
                "InvalidDigest",
            ),
        ];
        for (status, code, message, kind, needle) in cases {
            let error = S3ErrorBody {
                code: (*code).to_owned(),
                message: (*message).to_owned(),
                region: String::new(),
            };
            let classified = classify_status(*status, Some(&error), &config, Some("k"));
            assert_eq!(classified.kind, *kind, "{code} {message}");
            assert!(
                classified.message.contains(needle),
                "{needle:?} not in {:?}",
                classified.message
            );
        }
    }

    #[test]
    fn a_refused_delete_is_told_from_a_wrong_key() {
        let body = |code: &str, message: &str| S3ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
            region: String::new(),
        };
        assert!(delete_refused(
            403,
            Some(&body("AccessDenied", "Access Denied"))
        ));
        assert!(!delete_refused(
            403,
            Some(&body("AccessDenied", "Forbidden: No such key: X"))
        ));
        assert!(!delete_refused(
            403,
            Some(&body("SignatureDoesNotMatch", ""))
        ));
        assert!(!delete_refused(403, None));
        assert!(!delete_refused(500, Some(&body("AccessDenied", ""))));
        let mut config = S3Config::from_settings(&settings("https://h", "p", true)).unwrap();
        let plain = refused_error(&config, "parts/ab/x");
        assert_eq!(plain.kind, crate::remote::ErrorKind::Refused);
        assert!(plain.message.contains("may not delete there"), "{plain}");
        config.retention = Some(super::super::lock::Retention {
            mode: super::super::lock::LockMode::Governance,
            days: 3,
        });
        let locked = refused_error(&config, "parts/ab/x");
        assert!(
            locked.message.contains("still under Object Lock"),
            "{locked}"
        );
        assert!(locked.message.contains("nothing else waits"), "{locked}");
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff_delay(1, base, 1.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(2, base, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff_delay(4, base, 1.0), Duration::from_millis(4000));
        assert_eq!(backoff_delay(4, base, 0.5), Duration::from_millis(2000));
        assert_eq!(backoff_delay(40, base, 1.0), MAX_BACKOFF);
        assert_eq!(backoff_delay(3, base, 7.0), Duration::from_millis(2000));
    }
}
