//! The frame around every page: head, navigation, banners.

use std::sync::atomic::{AtomicBool, Ordering};

use maud::{html, Markup, DOCTYPE};

use crate::accounts::Caller;

/// Whether the backups go to a folder on the appliance's own disk (the
/// default remote): every signed-in page then shows a warning banner. Set by
/// the web layer at start and whenever the remote settings are saved.
pub static SAME_DISK_REMOTE: AtomicBool = AtomicBool::new(false);

pub fn set_same_disk_remote(same_disk: bool) {
    SAME_DISK_REMOTE.store(same_disk, Ordering::Relaxed);
}

/// True while the backups go to a folder on the appliance's own disk: no
/// page or display may then call an archive "backed up" or "safe".
pub fn same_disk_remote() -> bool {
    SAME_DISK_REMOTE.load(Ordering::Relaxed)
}

pub struct Page<'a> {
    title: String,
    caller: Option<&'a Caller>,
    scripts: Vec<&'static str>,
}

impl<'a> Page<'a> {
    pub fn new(title: impl Into<String>, caller: Option<&'a Caller>) -> Page<'a> {
        Page {
            title: title.into(),
            caller,
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
                body data-on-box-only=[same_disk_remote().then_some("1")] {
                    header.top {
                        a.brand href="/" { "piarchive" }
                        @if let Some(caller) = self.caller {
                            nav {
                                a href="/" { "Archives" }
                                a href="/archives/new" { "Upload" }
                                a href="/account" { "Account" }
                                @if caller.is_admin() {
                                    a href="/admin" { "Dashboard" }
                                    a href="/admin/settings" { "Settings" }
                                    a href="/admin/device" { "Device" }
                                    a href="/admin/firmware" { "Firmware" }
                                    a href="/admin/tls" { "HTTPS" }
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
                    @if let Some(caller) = self.caller {
                        @if same_disk_remote() {
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
        Some("uncache") => "The local copy will be removed; the stored copy stays.",
        Some("cache") => "Fetching the file back onto this box.",
        Some("saved") => "Settings saved.",
        Some("token-deleted") => "The token was deleted.",
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
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// A time the browser shows in its own zone ("2 hours ago", the full date on
/// hover, by `times.js`); the UTC text stays for pages without JavaScript.
pub fn local_time(secs: i64) -> Markup {
    html! { time datetime=(iso_time(secs)) data-relative { (human_time(secs)) } }
}

/// A Unix time as ISO 8601 UTC (`2024-02-29T12:34:56Z`) for `<time datetime>`.
pub fn iso_time(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rest = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
