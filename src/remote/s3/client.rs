//! The S3 client: the HTTP edge (ureq with rustls) of the S3 remote.
//!
//! Owns sending signed requests, retrying with backoff and jitter, correcting
//! for a wrong device clock from the servers' `Date` headers, checking that
//! downloads arrive whole, and following ListObjectsV2 pages. It reads the
//! clock (through an injectable [`Clock`]) and draws jitter from `rand`;
//! everything it decides is computed by the pure functions in `super` and
//! `sigv4`. It holds no lock across a request.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sha2::{Digest, Sha256};

use super::sigv4::{self, EMPTY_PAYLOAD_SHA256};
use super::{backoff_delay, classify_status, parse_error_body, parse_list_page, S3Config};
use crate::remote::caps::{self, MAX_ERROR_BODY_BYTES, MAX_LIST_PAGE_BYTES, MAX_OBJECT_BYTES};
use crate::remote::{BodyReader, ErrorKind, Remote, RemoteError, RemoteSettings, TransferOptions};

/// Where the client reads the time from; the device clock unless a test
/// hands in another.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Offsets below this many seconds are rounding in the `Date` header
/// (whole seconds), not a wrong clock.
const NEGLIGIBLE_OFFSET_SECS: i64 = 2;

/// A 403 after which the server's clock turns out this far from the one the
/// request was signed with is treated as a clock problem and retried at once.
const SKEW_RETRY_THRESHOLD_SECS: i64 = 5 * 60;

/// An S3 (or S3-compatible) bucket, addressed path-style or virtual-hosted.
pub struct S3Client {
    config: S3Config,
    options: TransferOptions,
    agent: ureq::Agent,
    clock: Clock,
    /// Seconds to add to `clock` to get the server's time, learnt from the
    /// `Date` header of every response. Atomic so concurrent transfers
    /// share what any one of them learnt, without a lock.
    clock_offset_secs: AtomicI64,
    /// `max-keys` for listings; `None` lets the server choose (1000 on AWS).
    list_page_size: Option<u32>,
}

/// One logical request, possibly sent several times.
pub(super) struct Call<'a> {
    pub(super) method: &'static str,
    /// Full key in the bucket, or `None` for the bucket itself (listing).
    pub(super) full_key: Option<&'a str>,
    /// The key as the caller named it, for messages.
    pub(super) key: Option<&'a str>,
    pub(super) query: Vec<(String, String)>,
    /// Headers sent and signed besides the ones SigV4 adds (Object Lock,
    /// checksums, copy source); lowercase names.
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: &'a [u8],
    pub(super) payload_sha256: String,
    /// The most of a 2xx answer's body read whole (see `remote::caps`).
    pub(super) max_body: u64,
}

/// Where a 2xx answer's body goes.
enum Body<'a> {
    /// Read whole into this buffer.
    Buffer(&'a mut Vec<u8>),
    /// Handed to this function as it arrives.
    Reader(BodyReader<'a>),
}

/// A successful (2xx) answer.
pub(super) struct Answer {
    pub(super) body: Vec<u8>,
    pub(super) content_length: Option<u64>,
    /// `x-amz-object-lock-mode` and `-retain-until-date`, when sent.
    pub(super) lock: Option<(String, String)>,
}

/// What a 2xx answer's headers said.
pub(super) struct Meta {
    content_length: Option<u64>,
    lock: Option<(String, String)>,
}

/// A failed attempt, and whether it looked like a clock problem that a
/// corrected signature would fix.
struct AttemptError {
    error: RemoteError,
    clock_skew: bool,
}

impl From<RemoteError> for AttemptError {
    fn from(error: RemoteError) -> Self {
        Self {
            error,
            clock_skew: false,
        }
    }
}

impl S3Client {
    /// A client for `settings` (which must be `RemoteSettings::S3`). Does not
    /// contact the server.
    pub fn new(settings: &RemoteSettings, options: &TransferOptions) -> Result<Self, RemoteError> {
        let config = S3Config::from_settings(settings)?;
        Ok(Self {
            agent: build_agent(options, None),
            config,
            options: options.clone(),
            clock: Arc::new(SystemTime::now),
            clock_offset_secs: AtomicI64::new(0),
            list_page_size: None,
        })
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Asks for at most `max_keys` keys per listing page.
    pub fn with_list_page_size(mut self, max_keys: u32) -> Self {
        self.list_page_size = Some(max_keys.max(1));
        self
    }

    /// Connects to `address` whatever host name the request is for (the Host
    /// header is unchanged). For virtual-hosted addressing against a server
    /// without DNS, e.g. in tests.
    pub fn with_connect_to(mut self, address: SocketAddr) -> Self {
        self.agent = build_agent(&self.options, Some(address));
        self
    }

    /// What the client currently adds to its clock to match the server's.
    pub fn clock_offset_secs(&self) -> i64 {
        self.clock_offset_secs.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Sends `call` until it succeeds, fails permanently or runs out of
    /// attempts, sleeping with backoff and jitter between transient failures.
    pub(super) fn execute(&self, call: &Call<'_>) -> Result<Answer, RemoteError> {
        let mut body = Vec::new();
        let meta = self.execute_into(call, &mut Body::Buffer(&mut body))?;
        Ok(Answer {
            body,
            content_length: meta.content_length,
            lock: meta.lock,
        })
    }

    /// [`Self::execute`] with the answer's body going to `body`; returns
    /// what its headers said.
    fn execute_into(&self, call: &Call<'_>, body: &mut Body<'_>) -> Result<Meta, RemoteError> {
        let max_attempts = self.options.max_attempts.max(1);
        let mut attempt = 0;
        let mut skew_retried = false;
        loop {
            attempt += 1;
            let failure = match self.attempt(call, body) {
                Ok(meta) => return Ok(meta),
                Err(failure) => failure,
            };
            if failure.clock_skew && !skew_retried {
                // Re-signed with the corrected time: retry at once, and do not
                // count it against the attempts.
                skew_retried = true;
                attempt -= 1;
                continue;
            }
            if failure.error.kind != ErrorKind::Transient || attempt >= max_attempts {
                return Err(failure.error);
            }
            let jitter = rand::thread_rng().gen_range(0.5..=1.0);
            std::thread::sleep(backoff_delay(attempt, self.options.base_backoff, jitter));
        }
    }

    /// One request and its answer.
    fn attempt(&self, call: &Call<'_>, body: &mut Body<'_>) -> Result<Meta, AttemptError> {
        let offset_used = self.clock_offset_secs();
        let deadline = Deadline::from_now(caps::request_deadline(self.options.timeout));
        let signing_time = unix_secs(&(self.clock)()) + offset_used;
        let (host_header, path) = self.config.location(call.full_key);
        let request_parts = sigv4::Request {
            method: call.method,
            path: &path,
            query: &call.query,
            headers: &call.headers,
        };
        let signed = sigv4::sign_with_time(
            &request_parts,
            &host_header,
            &self.config.credentials,
            &sigv4::Scope {
                region: &self.config.region,
                service: "s3",
            },
            signing_time,
            &call.payload_sha256,
        );
        let url = self.url(&path, &call.query);
        let mut request = self.agent.request(call.method, &url);
        for (name, value) in signed.iter().chain(&call.headers) {
            request = request.set(name, value);
        }
        let result = if call.method == "PUT" {
            request.send_bytes(call.body)
        } else {
            request.call()
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(transport)) => {
                return Err(self.transport_error(&transport).into())
            }
        };
        self.observe_date(&response);
        let status = response.status();
        if (200..300).contains(&status) {
            let content_length = response
                .header("Content-Length")
                .and_then(|value| value.trim().parse::<u64>().ok());
            let lock = response.header("x-amz-object-lock-mode").map(|mode| {
                let until = response.header("x-amz-object-lock-retain-until-date");
                (mode.to_owned(), until.unwrap_or_default().to_owned())
            });
            match body {
                _ if call.method == "HEAD" => {}
                Body::Buffer(buffer) => {
                    buffer.clear();
                    self.read_body(response, content_length, call, deadline, buffer)?;
                }
                Body::Reader(read_body) => {
                    self.stream_body(response, content_length, call, deadline, &mut **read_body)?;
                }
            }
            return Ok(Meta {
                content_length,
                lock,
            });
        }
        let mut error_body = Vec::new();
        // The body only explains the error; failing to read it changes nothing.
        let _ = deadline
            .wrap(response.into_reader())
            .take(MAX_ERROR_BODY_BYTES)
            .read_to_end(&mut error_body);
        let parsed = parse_error_body(&String::from_utf8_lossy(&error_body));
        let skew_code = parsed
            .as_ref()
            .is_some_and(|e| e.code == "RequestTimeTooSkewed");
        let offset_jump = (self.clock_offset_secs() - offset_used).abs();
        let clock_skew = skew_code || (status == 403 && offset_jump >= SKEW_RETRY_THRESHOLD_SECS);
        let error = if call.method == "DELETE" && super::delete_refused(status, parsed.as_ref()) {
            super::refused_error(&self.config, call.key.unwrap_or_default())
        } else {
            classify_status(status, parsed.as_ref(), &self.config, call.key)
        };
        Err(AttemptError { error, clock_skew })
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> String {
        let host = if self.config.path_style {
            self.config.host.clone()
        } else {
            format!("{}.{}", self.config.bucket, self.config.host)
        };
        let mut url = format!(
            "{}://{host}:{}{}",
            self.config.scheme,
            self.config.port,
            sigv4::encode_path(path)
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(&sigv4::canonical_query(query));
        }
        url
    }

    /// Reads a whole 2xx body and checks it against Content-Length; more
    /// than `call.max_body` is refused (announced or not) and not read.
    fn read_body(
        &self,
        response: ureq::Response,
        content_length: Option<u64>,
        call: &Call<'_>,
        deadline: Deadline,
        body: &mut Vec<u8>,
    ) -> Result<(), RemoteError> {
        if content_length.is_some_and(|length| length > call.max_body) {
            return Err(self.too_large(call, content_length));
        }
        let capacity = content_length.unwrap_or(0).min(call.max_body) as usize;
        body.reserve(capacity);
        let read = deadline
            .wrap(response.into_reader())
            .take(call.max_body + 1)
            .read_to_end(body);
        if let Err(error) = read {
            return Err(RemoteError::transient(format!(
                "The download from {} broke off after {} bytes ({error}): piarchive will try again.",
                self.config.endpoint,
                body.len()
            )));
        }
        if body.len() as u64 > call.max_body {
            body.clear();
            body.shrink_to_fit();
            return Err(self.too_large(call, None));
        }
        if let Some(expected) = content_length {
            if body.len() as u64 != expected {
                return Err(RemoteError::transient(format!(
                    "The storage server at {} sent {} bytes of the {expected} it announced: \
                     piarchive will try again.",
                    self.config.endpoint,
                    body.len()
                )));
            }
        }
        Ok(())
    }

    /// The refusal of an answer longer than `call.max_body`.
    fn too_large(&self, call: &Call<'_>, announced: Option<u64>) -> RemoteError {
        match call.key {
            Some(key) => caps::too_large(&self.config.endpoint, key, announced, call.max_body),
            None => {
                let prefix = call.query.iter().find(|(name, _)| name == "prefix");
                let prefix = prefix.map_or("", |(_, value)| value.as_str());
                caps::page_too_large(&self.config.endpoint, prefix)
            }
        }
    }

    /// Hands a 2xx body to `read_body` as it arrives.
    fn stream_body(
        &self,
        response: ureq::Response,
        content_length: Option<u64>,
        call: &Call<'_>,
        deadline: Deadline,
        read_body: BodyReader<'_>,
    ) -> Result<(), RemoteError> {
        let Some(length) = content_length else {
            // A chunked answer (some proxies): read it whole first.
            let mut whole = Vec::new();
            self.read_body(response, None, call, deadline, &mut whole)?;
            return self.hand_over(&mut &whole[..], whole.len() as u64, call.key, read_body);
        };
        self.hand_over(
            &mut deadline.wrap(response.into_reader()).take(length),
            length,
            call.key,
            read_body,
        )
    }

    /// Calls `read_body` and says what its failure means.
    fn hand_over(
        &self,
        body: &mut dyn Read,
        length: u64,
        key: Option<&str>,
        read_body: BodyReader<'_>,
    ) -> Result<(), RemoteError> {
        crate::remote::body_read(read_body(body, length), |error| {
            RemoteError::transient(format!(
                "The download of {:?} from {} broke off ({error}): piarchive will try again.",
                key.unwrap_or_default(),
                self.config.endpoint
            ))
        })
    }

    /// Learns the clock offset from a response's `Date` header.
    fn observe_date(&self, response: &ureq::Response) {
        let Some(server_time) = response
            .header("Date")
            .and_then(|value| httpdate::parse_http_date(value.trim()).ok())
        else {
            return;
        };
        let offset = unix_secs(&server_time) - unix_secs(&(self.clock)());
        let offset = if offset.abs() < NEGLIGIBLE_OFFSET_SECS {
            0
        } else {
            offset
        };
        self.clock_offset_secs.store(offset, Ordering::Relaxed);
    }

    fn transport_error(&self, transport: &ureq::Transport) -> RemoteError {
        let endpoint = &self.config.endpoint;
        let detail = transport
            .message()
            .map(str::to_owned)
            .or_else(|| std::error::Error::source(transport).map(|source| source.to_string()))
            .unwrap_or_else(|| transport.kind().to_string());
        match transport.kind() {
            ureq::ErrorKind::InvalidUrl
            | ureq::ErrorKind::UnknownScheme
            | ureq::ErrorKind::InvalidProxyUrl
            | ureq::ErrorKind::ProxyUnauthorized
            | ureq::ErrorKind::InsecureRequestHttpsOnly => RemoteError::permanent(format!(
                "The endpoint {endpoint:?} cannot be used ({detail}): correct it in the remote \
                 settings."
            )),
            ureq::ErrorKind::Dns => RemoteError::transient(format!(
                "The storage server's name in {endpoint} could not be looked up ({detail}): \
                 check the endpoint and the network; piarchive will try again."
            )),
            ureq::ErrorKind::ConnectionFailed => RemoteError::transient(format!(
                "Could not connect to the storage server at {endpoint} ({detail}): piarchive \
                 will try again."
            )),
            _ => RemoteError::transient(format!(
                "The connection to the storage server at {endpoint} failed ({detail}): \
                 piarchive will try again."
            )),
        }
    }

    pub(super) fn object_call<'a>(
        &self,
        method: &'static str,
        key: &'a str,
        full_key: &'a str,
    ) -> Call<'a> {
        Call {
            method,
            full_key: Some(full_key),
            key: Some(key),
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
            payload_sha256: EMPTY_PAYLOAD_SHA256.to_owned(),
            max_body: MAX_OBJECT_BYTES,
        }
    }

    /// The time as the server sees it (the clock corrected by the offset
    /// learnt from its `Date` headers), in Unix seconds.
    pub fn server_now(&self) -> i64 {
        unix_secs(&(self.clock)()) + self.clock_offset_secs()
    }
}

impl Remote for S3Client {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), RemoteError> {
        self.put_hashed(key, body, &hex::encode(Sha256::digest(body)))
    }

    fn put_hashed(&self, key: &str, body: &[u8], sha256_hex: &str) -> Result<(), RemoteError> {
        check_key(key)?;
        let full_key = self.config.full_key(key);
        let headers = match self.config.retention {
            Some(retention) => {
                super::versions::lock_headers(retention, self.server_now(), sha256_hex)?
            }
            None => Vec::new(),
        };
        let call = Call {
            body,
            headers,
            payload_sha256: sha256_hex.to_ascii_lowercase(),
            ..self.object_call("PUT", key, &full_key)
        };
        self.execute(&call).map(|_| ())
    }

    fn get_at_most(&self, key: &str, max_len: u64) -> Result<Vec<u8>, RemoteError> {
        check_key(key)?;
        let full_key = self.config.full_key(key);
        let call = Call {
            max_body: max_len.min(MAX_OBJECT_BYTES),
            ..self.object_call("GET", key, &full_key)
        };
        Ok(self.execute(&call)?.body)
    }

    fn get_with(&self, key: &str, read_body: BodyReader<'_>) -> Result<(), RemoteError> {
        check_key(key)?;
        let full_key = self.config.full_key(key);
        self.execute_into(
            &self.object_call("GET", key, &full_key),
            &mut Body::Reader(read_body),
        )?;
        Ok(())
    }

    fn head(&self, key: &str) -> Result<Option<u64>, RemoteError> {
        check_key(key)?;
        let full_key = self.config.full_key(key);
        match self.execute(&self.object_call("HEAD", key, &full_key)) {
            Ok(answer) => answer.content_length.map(Some).ok_or_else(|| {
                RemoteError::permanent(format!(
                    "The storage server at {} did not say how long {key:?} is: it does not \
                     behave like S3.",
                    self.config.endpoint
                ))
            }),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        check_key(key)?;
        if self.config.retention.is_some() {
            // A versioned bucket: a plain DELETE only hides the object
            // behind a delete marker; freeing it means deleting each version.
            return self.delete_versions(key);
        }
        let full_key = self.config.full_key(key);
        match self.execute(&self.object_call("DELETE", key, &full_key)) {
            Ok(_) => Ok(()),
            Err(error) if error.kind == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let full_prefix = if self.config.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.config.prefix)
        };
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = vec![
                ("list-type".to_owned(), "2".to_owned()),
                ("prefix".to_owned(), full_prefix.clone()),
            ];
            if let Some(token) = &continuation {
                query.push(("continuation-token".to_owned(), token.clone()));
            }
            if let Some(page_size) = self.list_page_size {
                query.push(("max-keys".to_owned(), page_size.to_string()));
            }
            let call = Call {
                method: "GET",
                full_key: None,
                key: None,
                query,
                headers: Vec::new(),
                body: &[],
                payload_sha256: EMPTY_PAYLOAD_SHA256.to_owned(),
                max_body: MAX_LIST_PAGE_BYTES,
            };
            let answer = self.execute(&call)?;
            let page = parse_list_page(&String::from_utf8_lossy(&answer.body))?;
            drop(answer);
            pages += 1;
            keys.extend(
                page.keys
                    .iter()
                    .filter_map(|full_key| self.config.relative_key(full_key))
                    .map(str::to_owned),
            );
            let next = page.next_continuation_token;
            if next.is_some() && caps::listing_over(pages, keys.len())
                || keys.len() > caps::MAX_LISTED_KEYS
            {
                return Err(caps::listing_too_long(
                    &self.config.describe(),
                    prefix,
                    pages,
                    keys.len(),
                ));
            }
            match next {
                Some(token) if continuation.as_ref() == Some(&token) => {
                    return Err(RemoteError::permanent(format!(
                        "The storage server at {} repeated the same listing page: it does not \
                         behave like S3.",
                        self.config.endpoint
                    )))
                }
                Some(token) => continuation = Some(token),
                None => break,
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    /// The payload hash is signed, so the server refuses a body that does
    /// not match it.
    fn checks_payload(&self) -> bool {
        true
    }

    fn lock_until(&self) -> Option<i64> {
        self.config
            .retention
            .map(|retention| retention.until(self.server_now()))
    }

    fn extend_lock(&self, key: &str, until: i64) -> Result<(), RemoteError> {
        match self.config.retention {
            Some(retention) => self.put_retention(key, retention, until),
            None => Ok(()),
        }
    }
}

pub(super) fn check_key(key: &str) -> Result<(), RemoteError> {
    if key.is_empty() || key.starts_with('/') {
        return Err(RemoteError::permanent(format!(
            "The object name {key:?} is not valid: it must be non-empty and relative."
        )));
    }
    Ok(())
}

fn build_agent(options: &TransferOptions, connect_to: Option<SocketAddr>) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(options.timeout)
        .timeout_read(options.timeout)
        .timeout_write(options.timeout)
        .redirects(0)
        .user_agent(concat!("piarchive/", env!("CARGO_PKG_VERSION")));
    if let Some(address) = connect_to {
        builder = builder.resolver(move |_: &str| Ok(vec![address]));
    }
    builder.build()
}

/// When a request's answer must have been read by (`caps::request_deadline`
/// after it was sent). ureq's own overall timeout would replace the wait for
/// progress of every read (a stall would then be noticed only at the
/// deadline), so the body is read through [`DeadlineReader`] instead, and
/// each read still ends after `TransferOptions::timeout` without progress.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    after: Duration,
}

impl Deadline {
    fn from_now(after: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + after,
            after,
        }
    }

    fn wrap<R: Read>(self, inner: R) -> DeadlineReader<R> {
        DeadlineReader {
            inner,
            deadline: self,
        }
    }
}

/// A body that fails once its request's [`Deadline`] has passed, however
/// steadily its bytes trickle in.
struct DeadlineReader<R> {
    inner: R,
    deadline: Deadline,
}

impl<R: Read> Read for DeadlineReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.deadline.at {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the answer took longer than the {} s one request may take",
                    self.deadline.after.as_secs()
                ),
            ));
        }
        self.inner.read(buf)
    }
}

/// Whole seconds since the Unix epoch, negative before it.
fn unix_secs(time: &SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_secs_counts_both_ways() {
        assert_eq!(unix_secs(&(UNIX_EPOCH + Duration::from_secs(90))), 90);
        assert_eq!(unix_secs(&(UNIX_EPOCH - Duration::from_secs(90))), -90);
    }

    #[test]
    fn urls_encode_keys_once() {
        let settings = RemoteSettings::S3 {
            endpoint: "http://127.0.0.1:9000".to_owned(),
            region: "r".to_owned(),
            bucket: "b".to_owned(),
            prefix: "p".to_owned(),
            path_style: true,
            access_key_id: "a".to_owned(),
            secret_access_key: "s".to_owned(),
            object_lock: None,
        };
        let client = S3Client::new(&settings, &TransferOptions::default()).unwrap();
        let (_, path) = client.config().location(Some("p/a b+c%"));
        assert_eq!(
            client.url(&path, &[("prefix".to_owned(), "x/y".to_owned())]),
            "http://127.0.0.1:9000/b/p/a%20b%2Bc%25?prefix=x%2Fy"
        );
    }
}
