//! HTTPS on the web side: `GET/PUT/DELETE /api/v1/admin/tls` (the
//! certificate served, installing one's own, going back to the self-signed
//! one), the admin page `/admin/tls` with its forms (the same actions,
//! `require_https` and the name on the network), and the redirect of plain
//! HTTP to HTTPS when `require_https` is set.
//!
//! Owns: those routes, the page and the redirect. The certificates
//! themselves are `crate::tls`'s, the `.local` name `crate::mdns`'s.

use std::collections::HashMap;

use maud::html;
use serde::Deserialize;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::layout::{csrf_field, full_time, Page};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::ops;
use crate::settings::Settings;
use crate::tls::TlsError;

type Answer = Result<Resp, ApiError>;

/// What the settings this page changes are called in the log.
const NETWORK: &str = "HTTPS or network-name";

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
    ops::tls::install(app, &caller, &body.cert_pem, &body.key_pem)?;
    Ok(Resp::json(200, &app.tls.info()))
}

pub fn delete(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    ops::tls::back_to_self_signed(app, &caller)?;
    Ok(Resp::json(200, &app.tls.info()))
}

/// The admin page: the certificate served, installing one's own, going
/// back to the self-signed one, HTTPS only, and the name on the network.
/// `warning`: the page asks to confirm turning HTTPS only on (from HTTP).
pub fn page(app: &App, req: &Req, caller: &Caller, error: Option<String>) -> Answer {
    require_admin(caller)?;
    let info = app.tls.info();
    let settings = Settings::load(&app.store)?;
    let confirm_https = req.query.get("confirm").is_some_and(|v| v == "https");
    let https_port = app.https_addr.get().map(|addr| addr.port());
    let by_name = app.mdns.get().and_then(|mdns| mdns.url());
    let page = Page::new("HTTPS", Some(caller), app.on_box_only()).script("/static/tls.js").render(html! {
        h1 { "HTTPS and the network name" }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        (done_notice(req))
        @if let Some(url) = &by_name {
            p { "On your network this appliance is at " a id="local-url" href=(url) { (url) } "." }
        }
        h2 { "Certificate" }
        @if https_port.is_none() {
            p.notice id="https-off" { "HTTPS is off: this appliance has no HTTPS address (it was started without --listen-https), so it serves no certificate and there is no fingerprint to compare. You can still install a certificate for when HTTPS is on." }
        } @else {
            dl id="certificate" {
                dt { "Fingerprint (SHA-256)" } dd { code.fingerprint id="fingerprint" { (info.fingerprint_sha256) } }
                dt { "Valid until" } dd id="not-after" { (full_time(info.not_after_unix())) }
                dt { "Valid for" } dd id="names" { (info.names.join(", ")) }
                dt { "Source" } dd id="source" { @if info.source == "installed" { "Your own certificate" } @else { "Self-signed (made by this appliance)" } }
            }
            p.muted { "Your browser shows the fingerprint of the certificate it was given when you click the padlock (or the warning) next to the address. If it is the same as the one above, you are talking to this appliance." }
        }
        form.card method="post" action="/admin/tls/install" {
            (csrf_field(caller))
            fieldset {
                legend { "Install your own certificate" }
                p.muted { "A certificate chain and its private key, both PEM (the text starting with -----BEGIN). It takes effect for the next connection." }
                label { "Certificate chain (PEM)" input type="file" accept=".pem,.crt,.cer,.txt" data-fills="cert_pem"; }
                label { "or paste it" textarea name="cert_pem" id="cert_pem" rows="6" required {} }
                label { "Private key (PEM)" input type="file" accept=".pem,.key,.txt" data-fills="key_pem"; }
                label { "or paste it" textarea name="key_pem" id="key_pem" rows="6" required {} }
            }
            button type="submit" { "Install certificate" }
        }
        @if info.source == "installed" {
            form.card method="post" action="/admin/tls/self-signed" {
                (csrf_field(caller))
                p { "Go back to the appliance's own self-signed certificate." }
                button type="submit" { "Use the self-signed certificate" }
            }
        }
        h2 { "HTTPS only" }
        @if confirm_https && !settings.require_https {
            div.banner.warning role="alert" id="https-warning" {
                p { "After this, plain HTTP addresses are sent on to HTTPS" @if let Some(port) = https_port { " (port " (port) ")" } ". With the self-signed certificate your browser will warn that the connection is not private: compare the fingerprint above with the one it shows and, when they match, accept the certificate. Check first that the HTTPS address opens." }
                form method="post" action="/admin/tls/require-https" {
                    (csrf_field(caller))
                    input type="hidden" name="require_https" value="1";
                    input type="hidden" name="confirmed" value="1";
                    button type="submit" { "Yes, use HTTPS only" }
                }
            }
        }
        @if https_port.is_none() && !settings.require_https {
            p.card id="https-state" { "HTTPS only cannot be turned on while the appliance has no HTTPS address: every visit would be sent to an address that does not answer." }
        } @else {
        form.card method="post" action="/admin/tls/require-https" {
            (csrf_field(caller))
            p id="https-state" { @if settings.require_https { "HTTPS only is on: plain HTTP is sent on to HTTPS." } @else { "HTTPS only is off: the appliance answers over HTTP and HTTPS." } }
            input type="hidden" name="require_https" value=(if settings.require_https { "0" } else { "1" });
            button type="submit" id="https-toggle" { @if settings.require_https { "Allow plain HTTP again" } @else { "Use HTTPS only" } }
        }
        }
        h2 { "Name on the network" }
        form.card method="post" action="/admin/tls/name" {
            (csrf_field(caller))
            label {
                "Name (devices on your network reach the appliance as name.local; if another device has it, -2 is added)"
                input type="text" name="mdns_hostname" value=(settings.mdns_hostname) required pattern="[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
            }
            button type="submit" { "Save name" }
        }
    });
    Ok(Resp::html(page))
}

fn done_notice(req: &Req) -> maud::Markup {
    let text = match req.query.get("done").map(String::as_str) {
        Some("installed") => "Your certificate is installed.",
        Some("self-signed") => "The self-signed certificate is back.",
        Some("https-on") => "HTTPS only is on.",
        Some("https-off") => "Plain HTTP is allowed again.",
        Some("name") => "Name saved; it is announced on the network in a few seconds.",
        _ => return html! {},
    };
    html! { p.notice.flash role="status" { (text) } }
}

/// The page's form posts (CSRF already checked by the caller).
pub fn form_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    action: &str,
    form: &HashMap<String, String>,
) -> Answer {
    require_admin(caller)?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let outcome = match action {
        "install" => {
            ops::tls::install(app, caller, field("cert_pem"), field("key_pem")).map(|_| "installed")
        }
        "self-signed" => ops::tls::back_to_self_signed(app, caller).map(|_| "self-signed"),
        "require-https" => {
            let on = field("require_https") == "1";
            if on && !req.secure && field("confirmed") != "1" {
                return Ok(Resp::redirect("/admin/tls?confirm=https#https-warning"));
            }
            ops::settings::change(app, caller, NETWORK, |s| s.require_https = on).map(|()| {
                if on {
                    "https-on"
                } else {
                    "https-off"
                }
            })
        }
        "name" => {
            let name = field("mdns_hostname").trim().to_string();
            ops::settings::change(app, caller, NETWORK, |s| s.mdns_hostname = name).map(|()| "name")
        }
        _ => return Err(ApiError::not_found()),
    };
    match outcome.map_err(ApiError::from) {
        Ok(done) => Ok(Resp::redirect(&format!("/admin/tls?done={done}"))),
        Err(err) if err.status == 400 => page(app, req, caller, Some(err.message)),
        Err(err) => Err(err),
    }
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
