//! Sending one notice through one channel: ntfy's publish protocol, a
//! signed JSON webhook, a text mail over SMTP (lettre's blocking transport
//! over rustls) and the heartbeat GET. Every request has a deadline
//! ([`DEADLINE`]); every failure comes back as a sentence that says what
//! went wrong and never holds a secret.
//!
//! Owns: the wire shapes and the error sentences. Must not touch: the
//! store (the notifier queues and retries), the clock (`at` is handed in).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use sha2::Sha256;

use super::problems::Notice;
use super::settings::{Channel, Security};

/// The longest one request to a channel may take, connection included.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// What the channels need besides the notice: the appliance's name and
/// the extra certificate authority an admin may trust for a self-hosted
/// ntfy or mail server (`<data>/tls/notify-ca.pem`, PEM, optional).
#[derive(Debug, Clone)]
pub struct Sender {
    pub appliance: String,
    pub extra_ca: PathBuf,
}

/// Where the extra certificate authority is read from.
pub fn extra_ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("notify-ca.pem")
}

/// `text` made safe for one header line: control characters (line breaks
/// above all) become spaces, anything outside ASCII a `?` (ntfy titles), at
/// most 200 characters.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .take(200)
        .collect()
}

/// The body text of ntfy and mail: the sentence, the detail, where from.
fn text(notice: &Notice, appliance: &str) -> String {
    format!(
        "{}\n\nDetail: {}\nAppliance: {appliance}\nAt: {}\n",
        notice.message,
        notice.detail,
        rfc3339(notice.at)
    )
}

pub fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// The JSON a webhook receives (API.md).
pub fn webhook_body(notice: &Notice, appliance: &str) -> String {
    serde_json::json!({
        "event": notice.event,
        "severity": notice.severity,
        "title": notice.title,
        "message": notice.message,
        "detail": notice.detail,
        "at": rfc3339(notice.at),
        "appliance": appliance,
        "resolved": notice.resolved,
    })
    .to_string()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Sender {
    /// Sends `notice` through `channel`; `Ok` with what happened, or the
    /// sentence saying why not. A heartbeat channel only pings.
    pub fn send(&self, channel: &Channel, notice: &Notice) -> Result<String, String> {
        match channel {
            Channel::Webhook { url, secret } => {
                let body = webhook_body(notice, &self.appliance);
                let mut request = self
                    .agent()?
                    .post(url)
                    .set("Content-Type", "application/json");
                if let Some(secret) = secret {
                    request =
                        request.set("X-Piarchive-Signature", &signature(secret, body.as_bytes()));
                }
                answer(request.send_string(&body), url)
            }
            Channel::Ntfy { url, token } => {
                let priority = match (notice.resolved, notice.severity.as_str()) {
                    (true, _) | (_, "info") => "3",
                    (_, "warning") => "4",
                    _ => "5",
                };
                let tags = if notice.resolved {
                    "white_check_mark"
                } else if notice.severity == "critical" {
                    "rotating_light"
                } else {
                    "warning"
                };
                let mut request = self
                    .agent()?
                    .post(url)
                    .set("Title", &header_safe(&notice.title))
                    .set("Priority", priority)
                    .set("Tags", tags);
                if let Some(token) = token {
                    request = request.set("Authorization", &format!("Bearer {token}"));
                }
                answer(request.send_string(&text(notice, &self.appliance)), url)
            }
            Channel::Heartbeat { url } => answer(self.agent()?.get(url).call(), url),
            Channel::Email { .. } => self.mail(channel, notice),
        }
    }

    fn agent(&self) -> Result<ureq::Agent, String> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout(DEADLINE)
            .timeout_connect(DEADLINE / 2)
            .redirects(3)
            .user_agent(concat!("piarchive/", env!("CARGO_PKG_VERSION")));
        if let Some(extra) = self.extra_ca()? {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&extra).flatten() {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|err| err.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_config(Arc::new(config));
        }
        Ok(builder.build())
    }

    fn extra_ca(&self) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(&self.extra_ca) {
            Ok(pem) => Ok(Some(pem)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!(
                "The extra certificate authority {} cannot be read: {err}.",
                self.extra_ca.display()
            )),
        }
    }

    fn mail(&self, channel: &Channel, notice: &Notice) -> Result<String, String> {
        let Channel::Email {
            host,
            port,
            security,
            username,
            password,
            from,
            to,
        } = channel
        else {
            return Err("not an e-mail channel".into());
        };
        let mut message = Message::builder()
            .from(
                from.parse()
                    .map_err(|_| format!("The sender {from:?} is not an e-mail address."))?,
            )
            .subject(format!("[piarchive] {}", header_safe(&notice.title)));
        for to in to {
            message = message.to(to
                .parse()
                .map_err(|_| format!("The recipient {to:?} is not an e-mail address."))?);
        }
        let message = message
            .body(text(notice, &self.appliance))
            .map_err(|err| format!("The mail could not be written: {err}."))?;
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(extra) = self.extra_ca()? {
            let cert = Certificate::from_pem(&extra)
                .map_err(|err| format!("The extra certificate authority is not PEM: {err}."))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|err| format!("TLS could not be set up: {err}."))?;
        let mut transport = SmtpTransport::builder_dangerous(host.as_str())
            .port(*port)
            .timeout(Some(DEADLINE))
            .tls(match security {
                Security::None => Tls::None,
                Security::Starttls => Tls::Required(tls),
                Security::Tls => Tls::Wrapper(tls),
            });
        if let (Some(user), Some(password)) = (username, password) {
            transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
        }
        match transport.build().send(&message) {
            Ok(_) => Ok(format!(
                "Mail accepted by {host}:{port} for {}.",
                to.join(", ")
            )),
            Err(err) => Err(smtp_sentence(&err, host, *port)),
        }
    }
}

/// A sentence for an SMTP failure; never the password.
fn smtp_sentence(err: &lettre::transport::smtp::Error, host: &str, port: u16) -> String {
    let at = format!("{host}:{port}");
    let text = err.to_string().to_lowercase();
    if err.is_tls() || text.contains("certificate") || text.contains("handshake") {
        return format!("The TLS connection to the mail server {at} failed (is its certificate valid for {host}, and is the security setting right?): {err}.");
    }
    if err.is_timeout() {
        return format!(
            "The mail server {at} did not answer within {} seconds.",
            DEADLINE.as_secs()
        );
    }
    if let Some(code) = err.status() {
        let code = code.to_string();
        if code.starts_with("535") || code.starts_with("534") || code.starts_with("530") {
            return format!("The mail server {at} refused the user name or password ({code}).");
        }
        return format!("The mail server {at} refused the mail ({code}): {err}.");
    }
    if err.is_client() {
        return format!("The mail server {at} does not offer what this channel needs (STARTTLS or login?): {err}.");
    }
    format!("The mail server {at} could not be reached: {err}.")
}

/// `Ok` for a 2xx answer, else the sentence for what went wrong.
fn answer(result: Result<ureq::Response, ureq::Error>, url: &str) -> Result<String, String> {
    let shown = shown_url(url);
    match result {
        Ok(response) => Ok(format!("{shown} answered {}.", response.status())),
        Err(ureq::Error::Status(code, _)) => Err(format!(
            "{shown} answered HTTP {code} instead of accepting the notice."
        )),
        Err(ureq::Error::Transport(transport)) if looks_like_tls(&transport) => Err(format!(
            "The TLS connection to {shown} failed (certificate or protocol): {}.",
            sanitize_error(&transport.to_string(), url)
        )),
        Err(ureq::Error::Transport(transport)) => Err(match transport.kind() {
            ureq::ErrorKind::Dns => format!("The host of {shown} was not found (DNS)."),
            ureq::ErrorKind::ConnectionFailed => {
                format!("{shown} could not be reached: the connection was refused or failed.")
            }
            ureq::ErrorKind::Io if is_timeout(&transport) => format!(
                "{shown} did not answer within {} seconds.",
                DEADLINE.as_secs()
            ),
            _ => format!(
                "{shown} could not be reached: {}.",
                sanitize_error(&transport.to_string(), url)
            ),
        }),
    }
}

/// A TLS failure (an untrusted certificate, a server that speaks no TLS),
/// whatever kind ureq files it under.
fn looks_like_tls(transport: &ureq::Transport) -> bool {
    let mut text = transport.to_string();
    let mut source = std::error::Error::source(transport);
    while let Some(err) = source {
        text.push_str(&err.to_string());
        source = err.source();
    }
    let text = text.to_lowercase();
    ["certificate", "handshake", "tls", "corrupt message"]
        .iter()
        .any(|word| text.contains(word))
}

fn is_timeout(transport: &ureq::Transport) -> bool {
    let text = transport.to_string().to_lowercase();
    text.contains("timed out") || text.contains("timeout") || text.contains("would block")
}

/// The URL as shown in sentences: scheme, host and path, never a query
/// (tokens hide there) nor user and password.
pub fn shown_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => without_query.to_string(),
    }
}

fn sanitize_error(text: &str, url: &str) -> String {
    text.replace(url, &shown_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_cannot_carry_headers() {
        assert_eq!(
            header_safe("Photos\r\nX-Evil: 1 \u{1F600} caf\u{e9}"),
            "Photos  X-Evil: 1 ? caf?"
        );
        assert_eq!(header_safe(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn shown_urls_hide_credentials_and_queries() {
        assert_eq!(
            shown_url("https://user:pw@hc-ping.com/uuid?token=x"),
            "https://hc-ping.com/uuid"
        );
    }
}
