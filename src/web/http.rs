//! Thin HTTP plumbing over tiny_http: the request view handlers see, the
//! response they return, errors as JSON, and small pure parsers (query,
//! cookies, forms, Range, Content-Disposition) that are tested here.

use std::collections::HashMap;
use std::io::Read;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use tiny_http::{Header, Method};

use crate::accounts::AccountError;
use crate::archive::ArchiveError;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// The request as handlers see it: parsed path, query and headers, and the
/// body reader (taken at most once).
pub struct Req<'r> {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    /// Why the query string could not be read (a broken `%` escape); the
    /// router answers 400 with it before any handler runs.
    query_error: Option<String>,
    pub remote_addr: String,
    /// Arrived over HTTPS.
    pub secure: bool,
    inner: &'r mut tiny_http::Request,
}

impl<'r> Req<'r> {
    pub fn new(inner: &'r mut tiny_http::Request) -> Req<'r> {
        let url = inner.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((path, query)) => (path.to_string(), parse_urlencoded(query)),
            None => (url, Ok(HashMap::new())),
        };
        let (query, query_error) = match query {
            Ok(query) => (query, None),
            Err(err) => (HashMap::new(), Some(err.message)),
        };
        Req {
            method: inner.method().clone(),
            path,
            query,
            query_error,
            remote_addr: inner
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            secure: inner.secure(),
            inner,
        }
    }

    /// A 400 when the query string had a broken `%` escape.
    pub fn check_query(&self) -> Result<(), ApiError> {
        match &self.query_error {
            Some(message) => Err(ApiError::bad_request(message.clone())),
            None => Ok(()),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn body_length(&self) -> Option<u64> {
        self.inner.body_length().map(|n| n as u64)
    }

    pub fn body(&mut self) -> &mut dyn Read {
        self.inner.as_reader()
    }

    /// The path and query string as sent (`/archives/x?after=...`).
    pub fn url(&self) -> String {
        self.inner.url().to_string()
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header("Cookie")
            .and_then(|value| parse_cookie(value, name))
    }

    /// Reads a small body (JSON, form) of at most `limit` bytes.
    pub fn read_small_body(&mut self, limit: usize) -> Result<Vec<u8>, ApiError> {
        if self.body_length().unwrap_or(0) > limit as u64 {
            return Err(ApiError::new(
                413,
                "body_too_large",
                format!("The request body is larger than {limit} bytes."),
            ));
        }
        let mut body = Vec::new();
        self.body()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|_| ApiError::bad_request("The request body could not be read."))?;
        if body.len() > limit {
            return Err(ApiError::new(
                413,
                "body_too_large",
                format!("The request body is larger than {limit} bytes."),
            ));
        }
        Ok(body)
    }

    pub fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let body = self.read_small_body(crate::limits::SMALL_BODY_BYTES)?;
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::bad_request(format!("The request body is not the expected JSON: {err}."))
        })
    }

    pub fn form(&mut self) -> Result<HashMap<String, String>, ApiError> {
        let body = self.read_small_body(crate::limits::SMALL_BODY_BYTES)?;
        parse_urlencoded(&String::from_utf8_lossy(&body))
    }
}

pub enum Body {
    Bytes(Vec<u8>),
    Stream {
        reader: Box<dyn Read + Send>,
        length: Option<u64>,
    },
}

/// Sent with every answer. The policy allows scripts, styles and images
/// from the appliance only and no inline script or style (pages carry
/// data attributes and `/static/` scripts act on them), and no framing.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
];

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Runs once the answer has been sent (power off after saying so).
    pub after: Option<Box<dyn FnOnce() + Send>>,
}

impl Resp {
    pub fn new(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            after: None,
        }
    }

    pub fn json<T: Serialize>(status: u16, value: &T) -> Resp {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Resp::new(status)
            .header("Content-Type", "application/json")
            .bytes(body)
    }

    pub fn html(markup: maud::Markup) -> Resp {
        Resp::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .bytes(markup.into_string().into_bytes())
    }

    pub fn text(status: u16, text: &str) -> Resp {
        Resp::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .bytes(text.as_bytes().to_vec())
    }

    /// 303 See Other: after a form post, the browser GETs `location`.
    pub fn redirect(location: &str) -> Resp {
        Resp::new(303).header("Location", location)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn bytes(mut self, body: Vec<u8>) -> Resp {
        self.body = Body::Bytes(body);
        self
    }

    /// Adds `name` to a JSON body built with [`Resp::json`].
    pub fn with_json_field(mut self, name: &str, value: serde_json::Value) -> Resp {
        if let Body::Bytes(bytes) = &self.body {
            if let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(bytes) {
                object.insert(name.to_string(), value);
                self.body = Body::Bytes(serde_json::to_vec(&object).unwrap_or_default());
            }
        }
        self
    }

    pub fn stream(mut self, reader: Box<dyn Read + Send>, length: Option<u64>) -> Resp {
        self.body = Body::Stream { reader, length };
        self
    }

    pub fn then(mut self, after: impl FnOnce() + Send + 'static) -> Resp {
        self.after = Some(Box::new(after));
        self
    }

    pub fn into_tiny(self) -> tiny_http::Response<Box<dyn Read + Send>> {
        let mut headers: Vec<Header> = self
            .headers
            .iter()
            .filter_map(|(name, value)| Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
            .collect();
        for (name, value) in SECURITY_HEADERS {
            headers.push(Header::from_bytes(name, value).expect("static header"));
        }
        let (reader, length): (Box<dyn Read + Send>, Option<usize>) = match self.body {
            Body::Bytes(bytes) => {
                let length = bytes.len();
                (Box::new(std::io::Cursor::new(bytes)), Some(length))
            }
            Body::Stream { reader, length } => (reader, length.map(|n| n as usize)),
        };
        tiny_http::Response::new(
            tiny_http::StatusCode(self.status),
            headers,
            reader,
            length,
            None,
        )
    }
}

/// An error answer: `{"error": code, "message": sentence}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }
    pub fn not_found() -> ApiError {
        ApiError::new(
            404,
            "not_found",
            "Nothing here: the address is wrong or the item was removed.",
        )
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            "unauthorized",
            "Log in first (session cookie or API token).",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            500,
            "internal",
            format!("Something went wrong on the appliance: {err}"),
        )
    }
    /// A disk that refused: full (507 `disk_full`), read-only (503
    /// `disk_read_only`), failing (500 `disk_failed`), else [`Self::internal`].
    pub fn disk(err: &std::io::Error, message: String) -> ApiError {
        match err.raw_os_error() {
            Some(libc::EROFS) => ApiError::new(503, "disk_read_only", message),
            Some(libc::EIO) => ApiError::new(500, "disk_failed", message),
            _ if crate::disk::is_disk_full(err) => ApiError::new(507, "disk_full", message),
            _ => ApiError::internal(message),
        }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ApiError {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn into_resp(self) -> Resp {
        let mut resp = Resp::json(
            self.status,
            &serde_json::json!({"error": self.code, "message": self.message}),
        );
        resp.headers.extend(self.headers);
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::MapFull | StoreError::NearlyFull => {
                ApiError::new(507, "database_full", err.to_string())
            }
            StoreError::Disk(ref io) => ApiError::disk(io, err.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<ArchiveError> for ApiError {
    fn from(err: ArchiveError) -> ApiError {
        let message = err.to_string();
        match err {
            ArchiveError::NotFound | ArchiveError::UploadNotFound => {
                ApiError::new(404, "not_found", message)
            }
            ArchiveError::InvalidName(_) => ApiError::new(400, "invalid_name", message),
            ArchiveError::InsufficientSpace { .. } => {
                ApiError::new(507, "insufficient_storage", message)
            }
            ArchiveError::DiskFull(_) => ApiError::new(507, "disk_full", message),
            ArchiveError::OverQuota { .. } => ApiError::new(507, "over_quota", message),
            ArchiveError::OffsetMismatch { .. } => ApiError::new(409, "offset_mismatch", message),
            ArchiveError::TooLong { .. } => ApiError::new(413, "too_long", message),
            ArchiveError::UploadBusy => ApiError::new(409, "upload_busy", message),
            ArchiveError::TooManyPendingUploads { .. } => {
                ApiError::new(503, "too_many_uploads", message).with_header("Retry-After", "60")
            }
            ArchiveError::Truncated { .. } => ApiError::new(400, "truncated", message),
            ArchiveError::NotCached { .. } => ApiError::new(409, "not_cached", message),
            ArchiveError::NotBackedUp { .. } | ArchiveError::AwaitingCopies { .. } => {
                ApiError::new(409, "not_backed_up", message)
            }
            ArchiveError::NotUncached { .. } => ApiError::new(409, "not_uncached", message),
            ArchiveError::InTrash => ApiError::new(409, "trashed", message),
            ArchiveError::NotInTrash => ApiError::new(409, "not_trashed", message),
            ArchiveError::BeingDeleted => ApiError::new(409, "deleting", message),
            ArchiveError::TrashNotReady => ApiError::new(503, "trash_not_ready", message),
            ArchiveError::Io(ref io) | ArchiveError::WriteFailed { source: ref io, .. } => {
                ApiError::disk(io, message)
            }
            ArchiveError::Store(store) => store.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> ApiError {
        let message = err.to_string();
        match err {
            AccountError::BadCredentials => ApiError::new(401, "bad_credentials", message),
            AccountError::TooManyAttempts { retry_after_secs } => {
                ApiError::new(429, "too_many_attempts", message)
                    .with_header("Retry-After", retry_after_secs.to_string())
            }
            AccountError::TooManyLogins { retry_after_secs } => {
                ApiError::new(429, "too_many_logins", message)
                    .with_header("Retry-After", retry_after_secs.to_string())
            }
            AccountError::Busy { retry_after_secs } => ApiError::new(503, "busy", message)
                .with_header("Retry-After", retry_after_secs.to_string()),
            AccountError::TooManyRegistrations { retry_after_secs } => {
                ApiError::new(429, "too_many_registrations", message)
                    .with_header("Retry-After", retry_after_secs.to_string())
            }
            AccountError::Disabled => ApiError::new(403, "disabled", message),
            AccountError::UsernameTaken(_) => ApiError::new(409, "username_taken", message),
            AccountError::Invalid(_) => ApiError::new(400, "invalid", message),
            AccountError::AlreadySetUp => ApiError::new(409, "already_set_up", message),
            AccountError::RegistrationClosed => ApiError::new(403, "registration_closed", message),
            AccountError::WrongCurrentPassword => ApiError::new(403, "wrong_password", message),
            AccountError::InvitationInvalid => ApiError::new(403, "invitation_invalid", message),
            AccountError::UserNotFound
            | AccountError::TokenNotFound
            | AccountError::InvitationNotFound => ApiError::new(404, "not_found", message),
            AccountError::LastAdmin => ApiError::new(409, "last_admin", message),
            AccountError::TooManyTokens { .. } => ApiError::new(409, "too_many_tokens", message),
            AccountError::Store(store) => store.into(),
        }
    }
}

impl From<crate::ops::Error> for ApiError {
    fn from(err: crate::ops::Error) -> ApiError {
        use crate::ops::Error;
        match err {
            Error::Store(err) => err.into(),
            Error::Archive(err) => err.into(),
            Error::Account(err) => err.into(),
            Error::Settings(err) => err.into(),
            Error::Tls(err) => err.into(),
            Error::Scripts(err) => err.into(),
            Error::Log(err) => err.into(),
            Error::RemoteChange(err) => err.into(),
            Error::Notify(err) => err.into(),
            Error::Internal(message) => ApiError::internal(message),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(err: SettingsError) -> ApiError {
        match err {
            SettingsError::Invalid(message) => ApiError::new(400, "invalid", message),
            SettingsError::Store(store) => store.into(),
        }
    }
}

/// The unreserved characters of RFC 3986; every other byte is escaped.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Decodes a query string or form body (`application/x-www-form-urlencoded`:
/// `+` is a space). A `%` that is not followed by two hex digits makes the
/// whole text refused: it is a damaged link or form, not data to guess at.
pub fn parse_urlencoded(text: &str) -> Result<HashMap<String, String>, ApiError> {
    if let Some(bad) = broken_escape(text) {
        return Err(ApiError::bad_request(format!(
            "The link or form is damaged: \"{bad}\" is not a valid escape (a % must be followed by two hexadecimal digits)."
        )));
    }
    Ok(form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect())
}

/// The first `%` escape in `text` that is not `%` and two hex digits, as written.
fn broken_escape(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let at = (0..bytes.len()).find(|&i| {
        bytes[i] == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })?;
    let end = (at + 3).min(text.len());
    Some(text.get(at..end).unwrap_or("%"))
}

pub fn parse_cookie(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header: send the whole file (RFC 9110 says to ignore
    /// a Range header that cannot be parsed, and several ranges are served
    /// whole too).
    Whole,
    /// `start..=end`, inclusive.
    Part { start: u64, end: u64 },
    /// A well-formed range that lies outside the file: 416.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Whole;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if start.is_empty() {
        // Suffix: the last N bytes.
        if !digits(end) {
            return RangeRequest::Whole;
        }
        let Ok(suffix) = end.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        if suffix == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Part {
            start: size.saturating_sub(suffix),
            end: size - 1,
        };
    }
    if !digits(start) || !(end.is_empty() || digits(end)) {
        return RangeRequest::Whole;
    }
    let Ok(start) = start.parse::<u64>() else {
        return RangeRequest::Whole;
    };
    let end = if end.is_empty() {
        size.saturating_sub(1)
    } else {
        match end.parse::<u64>() {
            Ok(end) if end >= start => end.min(size.saturating_sub(1)),
            Ok(_) => return RangeRequest::Whole,
            Err(_) => return RangeRequest::Whole,
        }
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part { start, end }
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name
/// (RFC 6266 / RFC 8187), safe against quotes, CR/LF and path tricks.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '/' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    )
}

/// The HTTP method as an upper-case string.
pub fn method_name(method: &Method) -> &str {
    method.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        for (header, size, expected) in [
            (None, 100, Whole),
            (Some("bytes=0-9"), 100, Part { start: 0, end: 9 }),
            (Some("bytes=90-"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=-10"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=-1000"), 100, Part { start: 0, end: 99 }),
            (Some("bytes=50-1000"), 100, Part { start: 50, end: 99 }),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=9-3"), 100, Whole),
            (Some("bytes=abc"), 100, Whole),
            (Some("bytes=1-2,5-6"), 100, Whole),
            (Some("items=0-9"), 100, Whole),
            (Some("bytes=-"), 100, Whole),
            (Some("bytes=99999999999999999999999-"), 100, Whole),
            (Some("bytes=+1-2"), 100, Whole),
        ] {
            assert_eq!(parse_range(header, size), expected, "{header:?}");
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        let hostile = content_disposition("x\"; filename=evil.exe\r\n📷.jpg");
        assert!(!hostile.contains('\r') && !hostile.contains('\n'));
        assert!(
            hostile.starts_with("attachment; filename=\"x_; filename=evil.exe___.jpg\""),
            "{hostile}"
        );
        assert!(hostile.ends_with("%F0%9F%93%B7.jpg"));
    }

    #[test]
    fn forms_and_cookies() {
        let form = parse_urlencoded("a=1&b=x+y%21&c=%E2%9C%93&d&&e=%2b%2F").unwrap();
        assert_eq!(form["a"], "1");
        assert_eq!(form["b"], "x y!");
        assert_eq!(form["c"], "✓");
        assert_eq!(form["d"], "");
        assert_eq!(form["e"], "+/");
        assert_eq!(form.len(), 5);
        for (text, bad) in [
            ("a=100%", "%"),
            ("a=%zz", "%zz"),
            ("a=%+1", "%+1"),
            ("a=%-1", "%-1"),
            ("a=%4", "%4"),
            ("a=1&b=%4g", "%4g"),
            ("%", "%"),
            ("a=%é", "%é"),
        ] {
            let err = parse_urlencoded(text).unwrap_err();
            assert_eq!(err.status, 400, "{text}");
            assert!(
                err.message.contains(&format!("\"{bad}\"")),
                "{text}: {}",
                err.message
            );
        }
        assert_eq!(percent_encode("a b/ü~-._"), "a%20b%2F%C3%BC~-._");
        assert_eq!(
            parse_cookie("a=1; piarchive_session=tok; b=2", "piarchive_session").as_deref(),
            Some("tok")
        );
        assert_eq!(parse_cookie("a=1", "piarchive_session"), None);
    }
}
