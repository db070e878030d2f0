//! HTTPS on the web side: `GET/PUT/DELETE /api/v1/admin/tls` (the
//! certificate served, installing one's own, going back to the self-signed
//! one) and the redirect of plain HTTP to HTTPS when `require_https` is set.
//!
//! Owns: those routes and the redirect. The certificates themselves are
//! `crate::tls`'s.

use serde::Deserialize;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::App;
use crate::admin::log::Subject;
use crate::settings::Settings;
use crate::tls::TlsError;

type Answer = Result<Resp, ApiError>;

impl From<TlsError> for ApiError {
    fn from(err: TlsError) -> ApiError {
        match err {
            TlsError::Invalid(sentence) => ApiError::new(400, "invalid_certificate", sentence),
            other => ApiError::internal(other),
        }
    }
}

pub fn get(app: &App, req: &mut Req) -> Answer {
    require_admin(&api_caller(app, req)?)?;
    Ok(Resp::json(200, &app.tls.info()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Install {
    cert_pem: String,
    key_pem: String,
}

pub fn put(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let body: Install = req.json()?;
    let info = app.tls.install(&body.cert_pem, &body.key_pem)?;
    app.admin.log.info(
        "tls",
        &format!(
            "{} installed a certificate for {} (SHA-256 {}).",
            caller.user.username,
            info.names.join(", "),
            info.fingerprint_sha256
        ),
        Subject::user(&caller.user.id),
    );
    Ok(Resp::json(200, &info))
}

pub fn delete(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let info = app.tls.remove_installed()?;
    app.admin.log.info(
        "tls",
        &format!(
            "{} went back to the self-signed certificate (SHA-256 {}).",
            caller.user.username, info.fingerprint_sha256
        ),
        Subject::user(&caller.user.id),
    );
    Ok(Resp::json(200, &info))
}

/// With `require_https` set and HTTPS listening, a plain-HTTP request other
/// than `/healthz` is answered with a redirect to the same URL over HTTPS
/// (308, so a form post or upload is repeated as it was).
pub fn https_redirect(app: &App, request: &tiny_http::Request) -> Option<Resp> {
    if request.secure() || request.url() == "/healthz" {
        return None;
    }
    let port = app.https_addr.get()?.port();
    if !Settings::load(&app.store).ok()?.require_https {
        return None;
    }
    let host = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_else(|| "piarchive.local".into());
    let location = format!("https://{}{}", with_port(&host, port), request.url());
    Some(
        Resp::new(308)
            .header("Location", location)
            .header("Content-Type", "text/plain; charset=utf-8")
            .bytes(b"This appliance is reached over HTTPS.\n".to_vec()),
    )
}

/// `host` (a Host header: name, IPv4 or `[IPv6]`, maybe with a port) with
/// its port replaced by `port` (left out for 443).
fn with_port(host: &str, port: u16) -> String {
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    if port == 443 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::with_port;

    #[test]
    fn the_redirect_keeps_the_host_and_takes_the_https_port() {
        assert_eq!(with_port("piarchive.local", 443), "piarchive.local");
        assert_eq!(with_port("192.168.1.5:8080", 8443), "192.168.1.5:8443");
        assert_eq!(with_port("[fe80::1]:80", 443), "[fe80::1]");
        assert_eq!(with_port("[fe80::1]", 8443), "[fe80::1]:8443");
    }
}
