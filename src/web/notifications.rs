//! Notifications on the web side: `GET/PUT /api/v1/admin/notifications`,
//! `POST /api/v1/admin/notifications/test` and the admin page
//! `/admin/notifications` with its forms; adapters over
//! `crate::ops::notifications`.
//!
//! Owns: those handlers and the page. The settings, the tracker, the queue
//! and the channels are `crate::notify`'s; the observer is `app::notifier`.

use std::collections::HashMap;

use maud::html;

use super::auth::{api_caller, require_admin};
use super::http::{ApiError, Req, Resp};
use super::layout::{csrf_field, Page};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::notify::members::{self, MemberChannels};
use crate::notify::settings::{
    Channel, DigestSetting, NotifySettings, NotifySettingsError, Security,
};
use crate::notify::{self, TestResult};

type Answer = Result<Resp, ApiError>;

impl From<NotifySettingsError> for ApiError {
    fn from(err: NotifySettingsError) -> ApiError {
        match err {
            NotifySettingsError::Invalid(sentence) => {
                ApiError::new(400, "invalid_notifications", sentence)
            }
            other => ApiError::internal(other),
        }
    }
}

pub fn get(app: &App, req: &mut Req) -> Answer {
    require_admin(&api_caller(app, req)?)?;
    Ok(Resp::json(200, &NotifySettings::load(&app.store)?.public()))
}

pub fn put(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let body: NotifySettings = req.json()?;
    crate::ops::notifications::save(app, &caller, body)?;
    Ok(Resp::json(200, &NotifySettings::load(&app.store)?.public()))
}

pub fn test(app: &App, req: &mut Req) -> Answer {
    require_admin(&api_caller(app, req)?)?;
    let results = crate::ops::notifications::send_test(app)?;
    Ok(Resp::json(200, &serde_json::json!({ "results": results })))
}

/// The admin page: the channels (each editable, secrets write-only), a
/// form per kind to add one, the threshold, and "Send a test".
pub fn page(
    app: &App,
    caller: &Caller,
    error: Option<String>,
    results: Option<Vec<TestResult>>,
) -> Answer {
    require_admin(caller)?;
    let settings = NotifySettings::load(&app.store)?;
    let waiting = notify::queue::waiting(&app.store).unwrap_or(0);
    let body = html! {
        h1 { "Notifications" }
        p { "When something is wrong (the storage unreachable for a while, a damaged backup, a full disk, backups that stopped moving, a failed update) the appliance tells you here, once when it starts and once when it is fixed." }
        @if let Some(error) = &error { p.error role="alert" id="notify-error" { (error) } }
        @if let Some(results) = &results {
            section.card id="test-results" role="status" {
                h2 { "Test results" }
                @if results.is_empty() { p { "There is no channel to test yet: add one below." } }
                ul {
                    @for result in results {
                        li class=(if result.ok { "ok" } else { "failed" }) {
                            strong { (result.kind) " " (result.target) ": " }
                            @if result.ok { "sent. " } @else { "failed. " }
                            (result.message)
                        }
                    }
                }
            }
        }
        @if waiting > 0 { p.muted id="notify-waiting" { (waiting) " notice(s) wait to be delivered; they are retried until they go through, for up to a day." } }
        h2 { "Channels" }
        @if settings.channels.is_empty() { p id="no-channels" { "No channel yet." } }
        @for (index, channel) in settings.channels.iter().enumerate() {
            (channel_form(caller, Some(index), channel))
        }
        form.card method="post" action="/admin/notifications/test" {
            (csrf_field(caller))
            button type="submit" id="send-test" { "Send a test" }
        }
        h2 { "Add a channel" }
        @for blank in blank_channels() {
            details.card { summary { "Add " (kind_name(&blank)) }
                (channel_form(caller, None, &blank))
            }
        }
        h2 { "When to tell" }
        form.card method="post" action="/admin/notifications/threshold" {
            (csrf_field(caller))
            label { "Tell when the storage has been unreachable for (minutes)"
                input type="number" name="remote_unreachable_after_minutes" min="1" max="43200"
                    value=(settings.remote_unreachable_after_seconds.div_ceil(60)); }
            label { "Weekly summary (what each member backed up, what is only on the box, disk space, the week's problems)"
                select name="digest" {
                    option value="off" selected[settings.digest == DigestSetting::Off] { "Off" }
                    option value="weekly" selected[settings.digest == DigestSetting::Weekly] { "Weekly, to the channels above" }
                }
            }
            button type="submit" { "Save" }
        }
    };
    let page = Page::new("Notifications", Some(caller), app.on_box_only()).render(body);
    Ok(Resp::html(page))
}

fn kind_name(channel: &Channel) -> &'static str {
    match channel {
        Channel::Ntfy { .. } => "an ntfy topic (phone notifications)",
        Channel::Webhook { .. } => "a webhook (JSON)",
        Channel::Email { .. } => "e-mail",
        Channel::Heartbeat { .. } => "a heartbeat URL (healthchecks.io and the like)",
    }
}

fn blank_channels() -> [Channel; 4] {
    [
        Channel::Ntfy {
            url: String::new(),
            token: None,
        },
        Channel::Email {
            host: String::new(),
            port: 587,
            security: Security::Starttls,
            username: None,
            password: None,
            from: String::new(),
            to: Vec::new(),
        },
        Channel::Webhook {
            url: String::new(),
            secret: None,
        },
        Channel::Heartbeat { url: String::new() },
    ]
}

/// The form of one channel: `index` is `None` for a new one. Secrets are
/// never put in the page: their fields are empty and keep the stored
/// value when left so.
fn channel_form(caller: &Caller, index: Option<usize>, channel: &Channel) -> maud::Markup {
    let action = match index {
        Some(index) => format!("/admin/notifications/channel/{index}"),
        None => "/admin/notifications/channel/new".to_string(),
    };
    let keep = |set: bool| {
        if set {
            "(saved; leave empty to keep it)"
        } else {
            ""
        }
    };
    html! {
        form.card.channel method="post" action=(action) data-kind=(channel.kind()) {
            (csrf_field(caller))
            input type="hidden" name="kind" value=(channel.kind());
            @match channel {
                Channel::Ntfy { url, token } => {
                    label { "Topic URL (like https://ntfy.sh/your-family-topic)" input type="url" name="url" value=(url) required; }
                    label { "Access token (optional)" input type="password" name="token" autocomplete="off" placeholder=(keep(token.is_some())); }
                }
                Channel::Webhook { url, secret } => {
                    label { "URL" input type="url" name="url" value=(url) required; }
                    label { "Shared secret for the signature (optional)" input type="password" name="secret" autocomplete="off" placeholder=(keep(secret.is_some())); }
                }
                Channel::Heartbeat { url } => {
                    label { "URL pinged while all is well" input type="url" name="url" value=(url) required; }
                }
                Channel::Email { host, port, security, username, password, from, to } => {
                    label { "Mail server" input type="text" name="host" value=(host) required; }
                    label { "Port" input type="number" name="port" min="1" max="65535" value=(port) required; }
                    label { "Security"
                        select name="security" {
                            option value="starttls" selected[*security == Security::Starttls] { "STARTTLS (port 587)" }
                            option value="tls" selected[*security == Security::Tls] { "TLS (port 465)" }
                            option value="none" selected[*security == Security::None] { "None (a server on your network)" }
                        }
                    }
                    label { "User name (optional)" input type="text" name="username" autocomplete="off" value=(username.as_deref().unwrap_or("")); }
                    label { "Password (optional)" input type="password" name="password" autocomplete="off" placeholder=(keep(password.is_some())); }
                    label { "From" input type="text" name="from" value=(from) required; }
                    label { "To (addresses separated by commas)" input type="text" name="to" value=(to.join(", ")) required; }
                }
            }
            button type="submit" name="action" value="save" { @if index.is_some() { "Save" } @else { "Add" } }
            @if index.is_some() { " " button type="submit" name="action" value="remove" { "Remove" } }
        }
    }
}

/// A channel from the page's form fields.
fn channel_from_form(form: &HashMap<String, String>) -> Result<Channel, String> {
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let optional = |name: &str| Some(field(name)).filter(|v| !v.is_empty());
    Ok(match field("kind").as_str() {
        "ntfy" => Channel::Ntfy {
            url: field("url"),
            token: optional("token"),
        },
        "webhook" => Channel::Webhook {
            url: field("url"),
            secret: optional("secret"),
        },
        "heartbeat" => Channel::Heartbeat { url: field("url") },
        "email" => Channel::Email {
            host: field("host"),
            port: field("port")
                .parse()
                .map_err(|_| "The port must be a number between 1 and 65535.".to_string())?,
            security: match field("security").as_str() {
                "none" => Security::None,
                "tls" => Security::Tls,
                _ => Security::Starttls,
            },
            username: optional("username"),
            password: optional("password"),
            from: field("from"),
            to: field("to")
                .split(',')
                .map(str::trim)
                .filter(|to| !to.is_empty())
                .map(String::from)
                .collect(),
        },
        _ => return Err("Choose a kind of channel.".into()),
    })
}

/// The page's form posts (CSRF already checked by the caller).
pub fn form_post(
    app: &App,
    caller: &Caller,
    segments: &[&str],
    form: &HashMap<String, String>,
) -> Answer {
    require_admin(caller)?;
    let mut settings = NotifySettings::load(&app.store)?;
    match segments {
        ["test"] => {
            let results = crate::ops::notifications::send_test(app)?;
            return page(app, caller, None, Some(results));
        }
        ["threshold"] => {
            let minutes: u64 = form
                .get("remote_unreachable_after_minutes")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            settings.remote_unreachable_after_seconds = minutes.saturating_mul(60);
            settings.digest = match form.get("digest").map(String::as_str) {
                Some("weekly") => DigestSetting::Weekly,
                _ => DigestSetting::Off,
            };
        }
        ["channel", which] => {
            let index = match *which {
                "new" => None,
                number => Some(
                    number
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < settings.channels.len())
                        .ok_or_else(ApiError::not_found)?,
                ),
            };
            let remove = form.get("action").is_some_and(|a| a == "remove");
            match (index, remove) {
                (Some(index), true) => {
                    settings.channels.remove(index);
                }
                _ => {
                    let channel = match channel_from_form(form) {
                        Ok(channel) => channel,
                        Err(sentence) => return page(app, caller, Some(sentence), None),
                    };
                    match index {
                        Some(index) => settings.channels[index] = channel,
                        None => settings.channels.push(channel),
                    }
                }
            }
        }
        _ => return Err(ApiError::not_found()),
    }
    match crate::ops::notifications::save(app, caller, settings).map_err(ApiError::from) {
        Ok(_) => Ok(Resp::redirect("/admin/notifications")),
        Err(err) if err.status == 400 => page(app, caller, Some(err.message), None),
        Err(err) => Err(err),
    }
}

/// The Account page's section where a user sets their own channels for
/// their own archives. The token is never put in the page.
pub fn member_section(app: &App, caller: &Caller) -> Result<maud::Markup, ApiError> {
    let own = MemberChannels::load(&app.store, &caller.user.id)?;
    let admin = NotifySettings::load(&app.store)?;
    let no_mail_server = members::smtp_server(&admin).is_none();
    let token_hint = match own.ntfy_token.is_some() {
        true => "(saved; leave empty to keep it)",
        false => "",
    };
    Ok(html! {
        section.card id="own-notifications" {
            h2 { "Your notifications" }
            p { "Be told on your phone or by e-mail when one of your archives is backed up, or when its off-site copy is found damaged. Only about your own archives." }
            form method="post" action="/account/notifications" {
                (csrf_field(caller))
                label { "ntfy topic URL (optional, like https://ntfy.sh/your-own-topic)"
                    input type="url" name="ntfy_url" value=(own.ntfy_url.as_deref().unwrap_or(""));
                }
                label { "ntfy access token (optional)"
                    input type="password" name="ntfy_token" autocomplete="off" placeholder=(token_hint);
                }
                label { "E-mail address (optional)"
                    input type="email" name="email" value=(own.email.as_deref().unwrap_or(""));
                }
                @if no_mail_server {
                    p.warning-text id="no-mail-server" { "E-mail cannot be sent yet: the admin has not set up a mail server on the Notifications page. Your address is kept and used once they do." }
                }
                button type="submit" { "Save" }
            }
        }
    })
}

/// The Account page's form; the sentence to show when it was refused.
pub fn member_post(
    app: &App,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<(), String> {
    let field = |name: &str| form.get(name).cloned();
    let channels = MemberChannels {
        ntfy_url: field("ntfy_url"),
        ntfy_token: field("ntfy_token"),
        email: field("email"),
    };
    match crate::ops::notifications::save_member(app, caller, channels) {
        Ok(_) => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}
