//! AWS Signature Version 4 for header authentication: pure functions only.
//!
//! Owns the canonical request, the string to sign, the signing key and the
//! `Authorization` header. It never reads the clock, draws randomness or does
//! I/O: the time (`unix_secs`) and the payload's SHA-256 are handed in, so the
//! hash the caller already computed is the one the server checks.
//!
//! Encoding follows the AWS rules for S3: the path is percent-encoded once
//! (S3 does not double-encode), '/' is kept in the path and encoded in the
//! query, and only `A-Z a-z 0-9 - _ . ~` stay unencoded.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The key pair that signs requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The parts of an HTTP request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// Decoded path, starting with '/'; it is percent-encoded here exactly once.
    pub path: &'a str,
    /// Decoded query parameters in any order; an empty value is allowed.
    pub query: &'a [(String, String)],
    /// Headers to sign besides the ones `sign_with_time` adds (e.g. `range`).
    /// For `authorization_header` these are all the signed headers.
    pub headers: &'a [(String, String)],
}

/// Region and service of the credential scope.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Signs a request at `unix_secs` and returns the headers to send with it:
/// `host`, `x-amz-date`, `x-amz-content-sha256` and `authorization`.
///
/// `host` is the Host header exactly as sent (with `:port` when not the
/// scheme's default). `payload_sha256_hex` is the lowercase hex SHA-256 of the
/// body ([`EMPTY_PAYLOAD_SHA256`] for none); the server verifies it.
pub fn sign_with_time(
    request: &Request<'_>,
    host: &str,
    credentials: &Credentials,
    scope: &Scope<'_>,
    unix_secs: i64,
    payload_sha256_hex: &str,
) -> Vec<(String, String)> {
    let amz_date = amz_date(unix_secs);
    let mut headers: Vec<(String, String)> = request.headers.to_vec();
    headers.push(("host".to_owned(), host.to_owned()));
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    headers.push((
        "x-amz-content-sha256".to_owned(),
        payload_sha256_hex.to_owned(),
    ));
    let full = Request {
        headers: &headers,
        ..*request
    };
    let authorization =
        authorization_header(&full, credentials, scope, &amz_date, payload_sha256_hex);
    vec![
        ("host".to_owned(), host.to_owned()),
        ("x-amz-date".to_owned(), amz_date),
        (
            "x-amz-content-sha256".to_owned(),
            payload_sha256_hex.to_owned(),
        ),
        ("authorization".to_owned(), authorization),
    ]
}

/// The `Authorization` header value for a request whose signed headers are
/// exactly `request.headers` (which must include `host` and `x-amz-date`).
pub fn authorization_header(
    request: &Request<'_>,
    credentials: &Credentials,
    scope: &Scope<'_>,
    amz_date: &str,
    payload_sha256_hex: &str,
) -> String {
    let (canonical, signed_headers) = canonical_request(request, payload_sha256_hex);
    let date = &amz_date[..amz_date.len().min(8)];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = string_to_sign(amz_date, &credential_scope, &canonical);
    let key = signing_key(
        &credentials.secret_access_key,
        date,
        scope.region,
        scope.service,
    );
    let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The canonical request and the `;`-joined list of signed header names.
pub fn canonical_request(request: &Request<'_>, payload_sha256_hex: &str) -> (String, String) {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let name = name.trim().to_ascii_lowercase();
        let value = collapse_spaces(value);
        match headers.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, existing_value)) => {
                existing_value.push(',');
                existing_value.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        encode_path(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        payload_sha256_hex
    );
    (canonical, signed_headers)
}

/// `AWS4-HMAC-SHA256 \n date \n scope \n hex(sha256(canonical request))`.
pub fn string_to_sign(amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The derived key: HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Percent-encodes a decoded path once, keeping '/'. Use the result both on
/// the wire and in the canonical request so the two can never disagree.
pub fn encode_path(path: &str) -> String {
    uri_encode(path, false)
}

/// Query parameters encoded and sorted by name, then value; also the form to
/// send on the wire.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (uri_encode(name, true), uri_encode(value, true)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
pub fn amz_date(unix_secs: i64) -> String {
    let (year, month, day, hour, minute, second) = crate::date::parts(unix_secs);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

/// SigV4's unreserved characters (RFC 3986's): `A-Z a-z 0-9 - _ . ~`.
/// Every other byte is escaped as `%XX` with upper-case hex.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`UNRESERVED`], but `/` stays: the path's separators are not escaped.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

fn uri_encode(input: &str, encode_slash: bool) -> String {
    let set = if encode_slash {
        UNRESERVED
    } else {
        UNRESERVED_AND_SLASH
    };
    utf8_percent_encode(input, set).to_string()
}

/// Trims a header value and collapses runs of spaces into one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// The credentials and scope shared by the AWS SigV4 test suite.
    fn suite_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        }
    }

    const SUITE_SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        service: "service",
    };

    struct SuiteCase {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: &'static [(&'static str, &'static str)],
        extra_headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        signed_headers: &'static str,
        signature: &'static str,
    }

    /// Vectors from the AWS SigV4 test suite (aws-sig-v4-test-suite as kept in
    /// aws-c-auth): header-signed-request.txt of each case.
    const SUITE: &[SuiteCase] = &[
        SuiteCase {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: &[],
            extra_headers: &[],
            body: b"",
            signed_headers: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        SuiteCase {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: &[("Param2", "value2"), ("Param1", "value1")],
            extra_headers: &[],
            body: b"",
            signed_headers: "host;x-amz-date",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        SuiteCase {
            name: "get-utf8",
            method: "GET",
            path: "/\u{1234}",
            query: &[],
            extra_headers: &[],
            body: b"",
            signed_headers: "host;x-amz-date",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        SuiteCase {
            name: "get-space-unnormalized",
            method: "GET",
            path: "/example space/",
            query: &[],
            extra_headers: &[],
            body: b"",
            signed_headers: "host;x-amz-date",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        SuiteCase {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: &[],
            extra_headers: &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Length", "13"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            body: b"Param1=value1",
            signed_headers: "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        },
    ];

    #[test]
    fn aws_test_suite_vectors() {
        for case in SUITE {
            let mut headers = pairs(&[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ]);
            headers.extend(pairs(case.extra_headers));
            let query = pairs(case.query);
            let request = Request {
                method: case.method,
                path: case.path,
                query: &query,
                headers: &headers,
            };
            let authorization = authorization_header(
                &request,
                &suite_credentials(),
                &SUITE_SCOPE,
                "20150830T123600Z",
                &sha256_hex(case.body),
            );
            let expected = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={}, Signature={}",
                case.signed_headers, case.signature
            );
            assert_eq!(authorization, expected, "case {}", case.name);
        }
    }

    #[test]
    fn suite_signing_key_matches_the_published_value() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert_eq!(
            hex::encode(key),
            "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"
        );
    }

    fn s3_docs_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
        }
    }

    const S3_DOCS_SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        service: "s3",
    };

    /// 2013-05-24T00:00:00Z, the time of the S3 documentation examples.
    const S3_DOCS_TIME: i64 = 1_369_353_600;

    fn authorization_of(headers: &[(String, String)]) -> &str {
        headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    }

    /// "Example: GET Object" from the S3 SigV4 header-auth documentation.
    #[test]
    fn s3_docs_get_object_with_range() {
        let extra = pairs(&[("Range", "bytes=0-9")]);
        let request = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &extra,
        };
        let headers = sign_with_time(
            &request,
            "examplebucket.s3.amazonaws.com",
            &s3_docs_credentials(),
            &S3_DOCS_SCOPE,
            S3_DOCS_TIME,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            authorization_of(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(headers.contains(&("x-amz-date".to_owned(), "20130524T000000Z".to_owned())));
        assert!(headers.contains(&(
            "x-amz-content-sha256".to_owned(),
            EMPTY_PAYLOAD_SHA256.to_owned()
        )));
    }

    /// "Example: PUT Object": a signed payload hash and a key with '$'.
    #[test]
    fn s3_docs_put_object() {
        let body = b"Welcome to Amazon S3.";
        let payload_hash = sha256_hex(body);
        assert_eq!(
            payload_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let extra = pairs(&[
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let request = Request {
            method: "PUT",
            path: "/test$file.text",
            query: &[],
            headers: &extra,
        };
        let headers = sign_with_time(
            &request,
            "examplebucket.s3.amazonaws.com",
            &s3_docs_credentials(),
            &S3_DOCS_SCOPE,
            S3_DOCS_TIME,
            &payload_hash,
        );
        assert_eq!(
            authorization_of(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    /// "Example: GET Bucket (List Objects)": a sorted, encoded query.
    #[test]
    fn s3_docs_list_objects() {
        let query = pairs(&[("prefix", "J"), ("max-keys", "2")]);
        let request = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &[],
        };
        let headers = sign_with_time(
            &request,
            "examplebucket.s3.amazonaws.com",
            &s3_docs_credentials(),
            &S3_DOCS_SCOPE,
            S3_DOCS_TIME,
            EMPTY_PAYLOAD_SHA256,
        );
        assert_eq!(
            authorization_of(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn encodes_paths_once_and_queries_with_slashes() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a b/c+d", "/a%20b/c%2Bd"),
            ("/parts/ab/0123", "/parts/ab/0123"),
            ("/already%20encoded", "/already%2520encoded"),
            ("/k~e_y.-", "/k~e_y.-"),
            ("/é", "/%C3%A9"),
        ];
        for (path, expected) in cases {
            assert_eq!(encode_path(path), *expected, "path {path:?}");
        }
        let query = pairs(&[
            ("prefix", "piarchive/parts/"),
            ("list-type", "2"),
            ("continuation-token", "a+b="),
        ]);
        assert_eq!(
            canonical_query(&query),
            "continuation-token=a%2Bb%3D&list-type=2&prefix=piarchive%2Fparts%2F"
        );
    }

    #[test]
    fn formats_amz_dates() {
        let cases: &[(i64, &str)] = &[
            (0, "19700101T000000Z"),
            (1_440_938_160, "20150830T123600Z"),
            (S3_DOCS_TIME, "20130524T000000Z"),
            (951_825_599, "20000229T115959Z"),
            (4_102_444_799, "20991231T235959Z"),
            // 2100 is not a leap year.
            (4_107_542_399, "21000228T235959Z"),
            (4_107_542_400, "21000301T000000Z"),
            (-1, "19691231T235959Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(amz_date(*secs), *expected, "secs {secs}");
        }
    }

    #[test]
    fn canonical_headers_are_trimmed_lowercased_and_merged() {
        let headers = pairs(&[
            ("My-Header1", "  value1  a   b "),
            ("host", "example.amazonaws.com"),
            ("my-header1", "value2"),
        ]);
        let request = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
        };
        let (canonical, signed) = canonical_request(&request, EMPTY_PAYLOAD_SHA256);
        assert_eq!(signed, "host;my-header1");
        assert!(canonical.contains("my-header1:value1 a b,value2\n"));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let shown = format!("{:?}", s3_docs_credentials());
        assert!(shown.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(!shown.contains("wJalr"));
    }

    #[test]
    fn uri_encoding_keeps_exactly_the_unreserved_set() {
        for byte in 0u8..128 {
            let text = (byte as char).to_string();
            let unreserved = byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte);
            let escaped = format!("%{byte:02X}");
            let expected = if unreserved { &text } else { &escaped };
            assert_eq!(&uri_encode(&text, true), expected, "{byte}");
            let path_expected = if byte == b'/' { &text } else { expected };
            assert_eq!(&uri_encode(&text, false), path_expected, "{byte}");
        }
        assert_eq!(uri_encode("ü 📷", true), "%C3%BC%20%F0%9F%93%B7");
    }
}
