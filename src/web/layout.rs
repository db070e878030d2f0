//! The frame around every page: head, navigation, banners; the error page;
//! what many pages' forms share (the CSRF field, reading a form field, times).

use std::collections::HashMap;

use maud::{html, Markup, DOCTYPE};

use super::auth;
use super::http::{ApiError, Req, Resp};
use crate::accounts::Caller;
use crate::app::state::App;

pub struct Page<'a> {
    title: String,
    caller: Option<&'a Caller>,
    /// The backups go to a folder on this box (`app::state::OnBoxOnly`): signed-in
    /// pages show a warning banner.
    on_box_only: bool,
    scripts: Vec<&'static str>,
}

impl<'a> Page<'a> {
    /// A page; `on_box_only` is `App::on_box_only()`.
    pub fn new(
        title: impl Into<String>,
        caller: Option<&'a Caller>,
        on_box_only: bool,
    ) -> Page<'a> {
        Page {
            title: title.into(),
            caller,
            on_box_only,
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
                body data-on-box-only=[self.on_box_only.then_some("1")] {
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
                        @if self.on_box_only {
                            div.banner.warning role="alert" id="remote-banner" { div.banner-inner {
                                p {
                                    strong { "Your files are on this box only. " }
                                    "The backups go to a folder on the same disk as the originals: if this box is lost or broken, so are they."
                                }
                                @if caller.is_admin() {
                                    a.button href="/admin/remote" { "Set up off-site storage" }
                                } @else {
                                    p { "Ask your admin to set up off-site storage." }
                                }
                            } }
                        }
                    }
                    main { (content) }
                    // Progress bars get their width here: no inline styles.
                    script src="/static/bars.js" {}
                    script src="/static/times.js" {}
                    @for script in &self.scripts {
                        script src=(script) {}
                    }
                }
            }
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
    let page = Page::new("Something went wrong", caller.as_ref(), app.on_box_only());
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
