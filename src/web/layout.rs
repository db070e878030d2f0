//! The frame around every page: head, navigation, banners; the error page;
//! what many pages' forms share (the CSRF field, reading a form field, times).

use std::collections::HashMap;

use maud::{html, Markup, DOCTYPE};

use super::auth;
use super::http::{ApiError, Req, Resp};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::remote::placement::Placement;

pub struct Page<'a> {
    title: String,
    caller: Option<&'a Caller>,
    /// What the banners say about safety (see [`Safety`]).
    safety: Safety,
    scripts: Vec<&'static str>,
}

/// What every signed-in page says about safety: a warning banner while
/// the backups are not off-site (worded by where they go), and for admins
/// a reminder while the recovery passphrase is unconfirmed.
#[derive(Debug, Clone, Default)]
pub struct Safety {
    /// The backups are not off-site (`App::on_box_only`).
    pub on_box_only: bool,
    /// Where they go, when known (`App::placement`).
    pub placement: Option<Placement>,
    /// How many destinations are off-site (issue 24): a backed-up archive
    /// is "off-site in N places" (`live.js` reads it from the page).
    pub off_site_places: usize,
    /// The passphrase shown at setup was never confirmed.
    pub passphrase_unconfirmed: bool,
}

impl Safety {
    /// As the app stands now.
    pub fn of(app: &App) -> Safety {
        let rule = app.off_site_rule();
        Safety {
            on_box_only: rule.on_box_only(),
            off_site_places: rule.destinations_off_site(),
            placement: Some(rule.main),
            passphrase_unconfirmed: crate::engine::keys::passphrase_unconfirmed(&app.store)
                .unwrap_or(false),
        }
    }
}

/// A bare "on this box only" flag (pages that know no more).
impl From<bool> for Safety {
    fn from(on_box_only: bool) -> Safety {
        Safety {
            on_box_only,
            ..Safety::default()
        }
    }
}

impl<'a> Page<'a> {
    /// A page; `safety` is [`Safety::of`] the app (or a bare
    /// `App::on_box_only()`).
    pub fn new(
        title: impl Into<String>,
        caller: Option<&'a Caller>,
        safety: impl Into<Safety>,
    ) -> Page<'a> {
        Page {
            title: title.into(),
            caller,
            safety: safety.into(),
            scripts: Vec::new(),
        }
    }

    pub fn script(mut self, path: &'static str) -> Page<'a> {
        self.scripts.push(path);
        self
    }

    pub fn render(&self, content: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(caller) = self.caller {
                        @if let Some(csrf) = &caller.csrf_token {
                            meta name="csrf-token" content=(csrf);
                        }
                    }
                    title { (self.title) " · piarchive" }
                    link rel="icon" type="image/svg+xml" href="/static/favicon.svg";
                    link rel="stylesheet" href="/static/app.css";
                }
                body data-on-box-only=[self.safety.on_box_only.then_some("1")] data-stored-label=[self.stored_label()] data-off-site-label=[(self.safety.off_site_places > 1).then(|| crate::web::archives::copies::off_site_words(self.safety.off_site_places))] {
                    header.top {
                        a.brand href="/" { "piarchive" }
                        @if let Some(caller) = self.caller {
                            nav {
                                a href="/" { "Archives" }
                                a href="/archives/new" { "Upload" }
                                a href="/trash" { "Trash" }
                                a href="/account" { "Account" }
                                @if caller.is_admin() {
                                    a href="/admin" { "Dashboard" }
                                    a href="/admin/settings" { "Settings" }
                                    a href="/admin/device" { "Device" }
                                    a href="/admin/firmware" { "Firmware" }
                                    a href="/admin/tls" { "HTTPS" }
                                    a href="/admin/notifications" { "Notifications" }
                                    a href="/admin/log" { "Log" }
                                    a href="/admin/users" { "Users" }
                                    a href="/admin/remote" { "Remote" }
                                }
                                form.inline method="post" action="/logout" {
                                    @if let Some(csrf) = &caller.csrf_token {
                                        input type="hidden" name="csrf_token" value=(csrf);
                                    }
                                    span.user { (caller.user.username) }
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                    @if let Some(problem) = crate::disk::problem() {
                        div.banner.warning role="alert" id="disk-banner" { div.banner-inner {
                            p { strong { "Disk problem. " } (problem) }
                        } }
                    }
                    @if let Some(caller) = self.caller {
                        @if self.safety.on_box_only {
                            div.banner.warning role="alert" id="remote-banner" { div.banner-inner {
                                p {
                                    strong { "Your files are on this box only. " }
                                    (self.where_backups_go())
                                }
                                @if caller.is_admin() {
                                    a.button href="/admin/remote" { "Set up off-site storage" }
                                } @else {
                                    p { "Ask your admin to set up off-site storage." }
                                }
                            } }
                        }
                        @if caller.is_admin() && self.safety.passphrase_unconfirmed {
                            div.banner.warning role="alert" id="passphrase-reminder" { div.banner-inner {
                                p {
                                    strong { "The recovery passphrase is not confirmed. " }
                                    "Without it nothing can be restored if this box is lost."
                                }
                                a.button href="/setup/passphrase" { "Confirm it now" }
                            } }
                        }
                    }
                    main { (content) }
                    // Progress bars get their width here: no inline styles.
                    script src="/static/bars.js" {}
                    script src="/static/times.js" {}
                    // Asks before forms marked data-confirm are sent.
                    script src="/static/confirm.js" {}
                    @for script in &self.scripts {
                        script src=(script) {}
                    }
                }
            }
        }
    }
}

impl Page<'_> {
    /// The words for a stored archive on this page's `live.js` while the
    /// backups are not off-site.
    fn stored_label(&self) -> Option<&'static str> {
        match self.safety.placement.as_ref()? {
            Placement::OffSite => None,
            Placement::UsbDisk(_) => Some("on the USB disk only"),
            Placement::SameDisk => Some("on this box only"),
            Placement::Unreachable => Some("storage unreachable"),
        }
    }

    /// Where the backups go, when they are not off-site.
    fn where_backups_go(&self) -> String {
        match &self.safety.placement {
            Some(Placement::UsbDisk(label)) => format!("The backups go to the USB disk {label}, plugged into this box: a fire, a theft or a power surge takes both."),
            Some(Placement::Unreachable) => "The backup storage cannot be reached (a disk unplugged or not mounted?): nothing is being copied.".to_string(),
            _ => "The backups go to a folder on the same disk as the originals: if this box is lost or broken, so are they.".to_string(),
        }
    }
}

/// The short message after an action that redirected here with `?done=KEY`
/// (fixed sentences only: nothing from the address is echoed).
pub fn done_notice(query: &std::collections::HashMap<String, String>) -> Markup {
    let text = match query.get("done").map(String::as_str) {
        Some("renamed") => "Renamed.",
        Some("deleted") => "Deleted: the file and its backup copies are being removed.",
        Some("trashed") => "Moved to the trash. You can restore it from the Trash page until it is deleted for good.",
        Some("restored") => "Restored from the trash.",
        Some("uncache") => "The local copy will be removed; the stored copy stays.",
        Some("cache") => "Fetching the file back onto this box.",
        Some("saved") => "Settings saved.",
        Some("token-deleted") => "The token was deleted.",
        Some("upload-discarded") => "The unfinished upload was discarded.",
        Some("passphrase-kept") => "Thank you: the recovery passphrase is confirmed.",
        Some("bulk-none") => "Tick the archives first, then choose what to do with them.",
        Some("passphrase-elsewhere") => "Noted: the recovery passphrase is stored elsewhere. Keep it safe.",
        Some("invitation-withdrawn") => "The invitation was withdrawn: its link no longer works.",
        Some("admin-retried") => "Its transfers were put back in the queue.",
        Some("admin-verified") => "Verified: the stored copy is whole.",
        Some("admin-verify-damaged") => "Verified: parts of the stored copy are damaged; see below.",
        _ => return html! {},
    };
    html! { p.notice.flash role="status" { (text) } }
}

/// The hidden CSRF field for a form.
pub fn csrf_field(caller: &Caller) -> Markup {
    html! {
        @if let Some(csrf) = &caller.csrf_token {
            input type="hidden" name="csrf_token" value=(csrf);
        }
    }
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`.
pub fn human_time(secs: i64) -> String {
    let (year, month, day, hour, minute, _) = crate::date::parts(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// A time the browser shows in its own zone ("2 hours ago", the full date on
/// hover, by `times.js`); the UTC text stays for pages without JavaScript.
pub fn local_time(secs: i64) -> Markup {
    html! { time datetime=(iso_time(secs)) data-relative { (human_time(secs)) } }
}

/// A date and time the browser shows in full in its own zone
/// (`times.js`, naming the zone on hover); UTC text without JavaScript.
pub fn full_time(secs: i64) -> Markup {
    html! { time datetime=(iso_time(secs)) data-full { (human_time(secs)) } }
}

/// A Unix time as ISO 8601 UTC (`2024-02-29T12:34:56Z`) for `<time datetime>`.
pub fn iso_time(secs: i64) -> String {
    let (year, month, day, hour, minute, second) = crate::date::parts(secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// An error in a page request, shown as a page with the sentence.
pub fn error_page(app: &App, req: &Req, err: ApiError) -> Resp {
    let caller = auth::caller(app, req).ok().flatten();
    let page = Page::new("Something went wrong", caller.as_ref(), Safety::of(app));
    let body = maud::html! {
        h1 { "Something went wrong" }
        p.error role="alert" { (err.message) }
        p { a href="/" { "Back to your archives" } }
    };
    let mut resp = Resp::html(page.render(body));
    resp.status = err.status;
    resp.headers.extend(err.headers);
    resp
}

/// A form field's value, empty when absent.
pub fn field<'f>(form: &'f HashMap<String, String>, name: &str) -> &'f str {
    form.get(name).map(String::as_str).unwrap_or("")
}

/// A user's storage in words: "1.2 GiB of 50 GiB", or "1.2 GiB" without
/// a quota.
pub fn storage_words(usage: &crate::archive::Usage) -> String {
    let used = crate::units::human_size(usage.used_bytes());
    match usage.quota_bytes {
        Some(quota) => format!("{used} of {}", crate::units::human_size(quota)),
        None => used,
    }
}

/// The member's own storage line (home page and account page).
pub fn storage_line(usage: &crate::archive::Usage) -> maud::Markup {
    let used = crate::units::human_size(usage.used_bytes());
    maud::html! {
        p.storage data-used=(usage.used_bytes()) data-quota=[usage.quota_bytes] {
            @match usage.quota_bytes {
                Some(quota) => { "You use " strong { (used) } " of your " strong { (crate::units::human_size(quota)) } " quota." }
                None => { "You use " strong { (used) } "; there is no quota on your account." }
            }
            @if usage.pending_bytes > 0 {
                " Unfinished uploads hold " (crate::units::human_size(usage.pending_bytes)) " of it."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(human_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(human_time(1_709_210_096), "2024-02-29 12:34 UTC");
        assert_eq!(iso_time(1_709_210_096), "2024-02-29T12:34:56Z");
    }
}
