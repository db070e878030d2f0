//! The admin pages: script cards and deployments (`/admin`), the develop
//! page (`/admin/scripts/new`, `/admin/scripts/{id}`), the system log
//! (`/admin/log`), users (`/admin/users`) and the settings form
//! (`/admin/settings`). Runs, saves and the live log go through the JSON API
//! from `admin.js`; the users and settings pages post forms.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::accounts::Caller;
use crate::admin::saved_scripts;
use crate::app::state::App;
use crate::ops;
use crate::settings::Settings;
use crate::store::records::{ArchiveRecord, Role, RunSummary, TrashRecord};
use crate::units::human_size;
use crate::web::auth;
use crate::web::http::{percent_encode, ApiError, Req, Resp};
use crate::web::layout::{csrf_field, field, full_time, local_time, Page};

use super::api::log_query_from;

fn last_run(run: &Option<RunSummary>) -> Markup {
    html! {
        @match run {
            Some(run) => span.last-run {
                (full_time(run.at)) " · "
                @if run.ok { span.ok { "ok" } } @else { span.failed { "failed" } }
                " · " (run.duration_ms) " ms"
                @if !run.ok { br; span.muted { (run.message) } }
            },
            None => span.muted { "never run" },
        }
    }
}

/// A bar with its number: `done` of `total`.
fn meter(label: &str, done: u64, total: u64) -> Markup {
    let percent = (done.saturating_mul(100) / total.max(1)).min(100);
    html! {
        div.progress role="img" aria-label={ (label) ": " (percent) "%" } {
            div.bar data-percent=(percent) {}
        }
    }
}

/// The admin's first look: disk, archives by state, storage, queue, damage.
fn dashboard(app: &App) -> Result<Markup, ApiError> {
    let inputs = crate::app::device_feed::current_inputs(app, "", 0);
    let counts = &inputs.archives;
    let remote = crate::settings::remote::remote_settings(&app.store, &app.config.data_dir)?;
    let not_freed = crate::engine::lock::storage_not_freed(&app.store)?;
    let on_box = app.on_box_only();
    let stored = counts.backed_up + counts.uncached;
    let total = stored
        + counts.receiving
        + counts.local
        + counts.uploading
        + counts.caching
        + counts.damaged;
    let where_to = match &remote {
        crate::remote::RemoteSettings::S3 {
            endpoint, bucket, ..
        } => format!("S3 bucket {bucket} at {endpoint}"),
        crate::remote::RemoteSettings::Dir { path } => format!("the folder {}", path.display()),
    };
    Ok(html! {
        div.cards.dashboard {
            section.card {
                h2 { "Disk" }
                @match inputs.disk {
                    Some(disk) => {
                        @let used = disk.total_bytes.saturating_sub(disk.free_bytes);
                        (meter("Disk used", used, disk.total_bytes))
                        p { (human_size(used)) " used, " (human_size(disk.free_bytes)) " free of " (human_size(disk.total_bytes)) "." }
                    }
                    None => p.muted { "The disk size cannot be read." },
                }
            }
            section.card {
                h2 { "Archives" }
                (meter("Archives stored", stored, total))
                dl.facts {
                    dt { @if on_box { "On this box only" } @else { "Off-site" } } dd { (stored) }
                    dt { "Waiting or copying" } dd { (counts.receiving + counts.local + counts.uploading) }
                    dt { "Fetching back" } dd { (counts.caching) }
                    dt { "Damaged" } dd class=(if counts.damaged > 0 { "failed" } else { "" }) { (counts.damaged) }
                }
            }
            section.card {
                h2 { "Storage" }
                p { "Backups go to " (where_to) "." }
                @if on_box {
                    p.error { "Not off-site: the same disk as the originals." }
                    p { a.button href="/admin/remote" { "Set up off-site storage" } }
                } @else if let Some(error) = &inputs.remote_error {
                    p.error { (error) }
                } @else {
                    p.ok { "Reachable." }
                }
                p { "Queue: " (inputs.jobs_queued) " waiting." }
                @if let Some(not_freed) = &not_freed {
                    p.warning.not-freed {
                        "Storage is not freed yet: " (not_freed.message)
                        " Next try: " (full_time(not_freed.next_try)) "."
                    }
                }
            }
        }
    })
}

/// Archives in the trash: how many, their size, and the bytes of those
/// whose file is still on this box's disk.
fn trash_totals(trashed: &[(ArchiveRecord, TrashRecord)]) -> (usize, u64, u64) {
    let size = trashed.iter().map(|(archive, _)| archive.size).sum();
    let local = trashed
        .iter()
        .filter(|(archive, _)| archive.state.is_local())
        .map(|(archive, _)| archive.size)
        .sum();
    (trashed.len(), size, local)
}

pub fn home(app: &App, caller: &Caller) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let scripts = saved_scripts::list(app.admin.store())?;
    let deployments = crate::ops::deployments::list(app)?;
    let dashboard = dashboard(app)?;
    let remote = crate::archive::remote_totals(&app.archives.list_all()?);
    let trash = trash_totals(&app.archives.all_trashed()?);
    let page = Page::new("Admin", Some(caller), app.on_box_only()).script("/static/admin.js");
    Ok(Resp::html(page.render(html! {
        h1 { "Dashboard" }
        (dashboard)
        (crate::web::account::page::passphrase_status(app)?)
        p.remote-totals {
            "On the remote: " (human_size(remote.stored_bytes)) " of archives; compression saved "
            span id="bytes-saved" { (human_size(remote.saved_bytes)) } "."
        }
        p.trash-totals id="trash-totals" {
            "In the trash (all users): " (trash.0) " archives, " (human_size(trash.1))
            "; " (human_size(trash.2)) " of it on this box's disk. "
            "Their backup copies are kept until they are deleted for good."
        }
        h2 { "Admin scripts" }
        p { a.button href="/admin/scripts/new" { "New script" } }
        div.cards {
            @for script in &scripts {
                section.card.script-card data-script-id=(script.id) {
                    h2 { (script.name) }
                    p.description { (script.description) }
                    p.last-run-line { "Last run: " (last_run(&script.last_run)) }
                    p {
                        button.run-script type="button" data-script-id=(script.id) data-confirm=[run_question(&script.name, &script.source)] { "Run" }
                        " "
                        a href={ "/admin/scripts/" (script.id) } { "Inspect / Edit" }
                    }
                    div.run-result hidden {}
                }
            }
        }
        h2 id="deployments" { "Deployments" }
        @if deployments.is_empty() {
            p.muted { "No deployments: nothing runs on a schedule." }
        } @else {
            table.deployments.cards {
                thead { tr { th { "Script" } th { "Every" } th { "Next run" } th { "Last run" } th {} } }
                tbody {
                    @for crate::ops::deployments::Named { deployment, script_name } in &deployments {
                        tr data-deployment-id=(deployment.id) {
                            td.name { (script_name.as_deref().unwrap_or("(deleted script)")) }
                            td data-label="Every" { (every(deployment.interval_seconds)) }
                            td data-label="Next run" {
                                @if app.admin.deployment_running(&deployment.id) { "running now" }
                                @else { (full_time(deployment.next_run_at)) }
                            }
                            td data-label="Last run" { (last_run(&deployment.last_run)) }
                            td { button.danger.terminate type="button" data-deployment-id=(deployment.id) { "Terminate" } }
                        }
                    }
                }
            }
        }
        form.card id="new-deployment" {
            h3 { "Deploy a script" }
            label { "Script"
                select name="script_id" required {
                    @for script in &scripts { option value=(script.id) { (script.name) } }
                }
            }
            fieldset.interval {
                legend { "Every (at least " (crate::units::human_duration(app.config.min_deployment_interval_seconds)) ")" }
                label { "How many" input type="number" name="interval_count" min="1" value="1" required; }
                label { "Unit"
                    select name="interval_unit" {
                        option value="60" { "minutes" }
                        option value="3600" selected { "hours" }
                        option value="86400" { "days" }
                    }
                }
            }
            button type="submit" { "Deploy" }
            p.error.form-error role="alert" hidden {}
        }
    })))
}

/// An interval in words: "every hour", "every 2 days", "every 30 seconds".
fn every(seconds: u64) -> String {
    let (count, unit) = match seconds {
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    match count {
        1 => format!("every {unit}"),
        n => format!("every {n} {unit}s"),
    }
}

/// The develop page's help: the functions a script can call.
pub fn script_help(app: &App, caller: &Caller) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let page = Page::new("Script API", Some(caller), app.on_box_only());
    Ok(Resp::html(page.render(html! {
        h1 { "Script API" }
        p { "Admin scripts are written in Rhai (its book is at rhai.rs). A script's result is the value of its last expression. They run with limits on time, memory and steps, and cannot read files or the network." }
        dl.script-api {
            @for (call, what) in crate::admin::script::HELP {
                dt { code { (call) } }
                dd { (what) }
            }
        }
        p { "Example: free local space of archives nobody opened for a year." }
        pre.example { (HELP_EXAMPLE) }
        p { a href="/admin/scripts/new" { "Write a new script" } }
    })))
}

const HELP_EXAMPLE: &str = "let year = 365 * 86400;\nfor a in archives() {\n    if a.state == \"backed_up\" && now() - a.last_accessed_at > year {\n        uncache(a.id);\n        print(`freed ${a.name}`);\n    }\n}";

/// A question for a script that changes archives (frees local space,
/// fetches back, verifies, retries), asked before it runs.
fn run_question(name: &str, source: &str) -> Option<String> {
    ["uncache(", "cache(", "verify(", "retry_failed("]
        .iter()
        .any(|call| source.contains(call))
        .then(|| {
            format!(
                "Run “{name}” now? It can free local space, fetch files back or check the backups."
            )
        })
}

pub fn develop(app: &App, caller: &Caller, script_id: Option<&str>) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let script = match script_id {
        Some(id) => Some(saved_scripts::get(app.admin.store(), id)?),
        None => None,
    };
    let title = script
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "New script".into());
    let page = Page::new(title.clone(), Some(caller), app.on_box_only()).script("/static/admin.js");
    Ok(Resp::html(page.render(html! {
        h1 { "Develop: " (title) }
        p.muted { "A test run runs the script for real (it asks first when the script can change archives); the script is saved only when you press Save. Scripts are Rhai; " a href="/admin/scripts/help" target="_blank" { "the Script API (opens in a new tab)" } " lists what they can call." }
        form.develop id="develop" data-script-id=(script.as_ref().map(|s| s.id.as_str()).unwrap_or("")) {
            label { "Title" input name="name" required maxlength="100" value=(script.as_ref().map(|s| s.name.as_str()).unwrap_or("")); }
            label { "Description" textarea name="description" rows="2" { (script.as_ref().map(|s| s.description.as_str()).unwrap_or("")) } }
            label { "Script"
                textarea.editor name="source" id="source" rows="20" spellcheck="false" {
                    (script.as_ref().map(|s| s.source.as_str()).unwrap_or("// The value of the last expression is the result.\nlet archives = archives();\nprint(`${archives.len()} archives`);\nstats()\n"))
                }
            }
            p {
                button type="button" id="test-run" { "Test run" }
                " "
                button type="submit" id="save" { "Save" }
                " "
                span.save-status role="status" {}
            }
        }
        section.card id="test-result" hidden {
            h2 { "Test run" }
            p.summary {}
            p.error.script-error role="alert" hidden {}
            h3 { "Output" }
            pre.output {}
            h3 { "Value" }
            pre.value {}
        }
    })))
}

pub fn log_page(app: &App, req: &Req, caller: &Caller) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let mut query = log_query_from(&req.query)?;
    // The page's times are typed in the box's zone (the API's are UTC).
    let zone = &app.config.zone;
    let in_box_zone = |ms: Option<i64>, name: &str| match ms {
        Some(ms) if req.query.get(name).is_some_and(|v| v.contains('T')) => {
            let secs = ms.div_euclid(1000);
            Some(ms - zone.offset_secs(secs - zone.offset_secs(secs)) * 1000)
        }
        other => other,
    };
    query.since_ms = in_box_zone(query.since_ms, "since");
    query.until_ms = in_box_zone(query.until_ms, "until");
    let (entries, more) = app.admin.log.query(&query)?;
    let usernames: HashMap<String, String> = app
        .accounts
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let get = |name: &str| req.query.get(name).cloned().unwrap_or_default();
    let older = if more {
        entries.last().map(|last| {
            let mut params: Vec<String> = ["level", "source", "q", "until", "since", "limit"]
                .iter()
                .filter_map(|name| {
                    req.query
                        .get(*name)
                        .filter(|v| !v.is_empty())
                        .map(|v| format!("{name}={}", percent_encode(v)))
                })
                .collect();
            params.push(format!("before={}", last.id));
            format!("/admin/log?{}", params.join("&"))
        })
    } else {
        None
    };
    let live = query.before.is_none() && query.until_ms.is_none();
    let page = Page::new("System log", Some(caller), app.on_box_only()).script("/static/admin.js");
    Ok(Resp::html(page.render(html! {
        h1 { "System log" }
        form.filters method="get" action="/admin/log" {
            label { "Level at least"
                select name="level" {
                    @for level in ["", "debug", "info", "warn", "error"] {
                        option value=(level) selected[get("level") == level] { @if level.is_empty() { "any" } @else { (level) } }
                    }
                }
            }
            label { "Source starts with" input name="source" value=(get("source")) placeholder="script:"; }
            label { "Text" input name="q" value=(get("q")); }
            label { "Since (" (zone.name()) ")" input type="datetime-local" name="since" value=(get("since")); }
            label { "Until (" (zone.name()) ")" input type="datetime-local" name="until" value=(get("until")); }
            button type="submit" { "Filter" }
            " " a href="/admin/log" { "Clear" }
        }
        @if live {
            p.muted id="live-status" data-live="1" { "Live: new entries appear at the top." }
        }
        div.scroll tabindex="0" role="region" aria-label="Log entries" {
        table.log id="log-table" data-level=(get("level")) data-source=(get("source")) data-q=(get("q"))
            data-users=(serde_json::to_string(&usernames).unwrap_or_default()) {
            thead { tr { th { "Time" } th { "Level" } th { "Source" } th { "Message" } th { "User" } th { "Archive" } } }
            tbody {
                @for entry in &entries {
                    tr class={ "level-" (entry.level) } {
                        td { (full_time(entry.time_ms / 1000)) }
                        td { (entry.level) }
                        td { (entry.source) }
                        td.message { (entry.message) }
                        td { (entry.user_id.as_ref().map(|id| usernames.get(id).cloned().unwrap_or_else(|| id.clone())).unwrap_or_default()) }
                        td { (entry.archive_id.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        }
        @if entries.is_empty() { p.muted { "No entries match." } }
        @if let Some(older) = older { p { a id="older" href=(older) { "Older entries" } } }
    })))
}

pub fn users_page(
    app: &App,
    caller: &Caller,
    notice: Option<Result<String, String>>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let users = app.accounts.users()?;
    let usage = app.archives.usage_by_owner()?;
    let settings = Settings::load(&app.store)?;
    let status = match &notice {
        Some(Err(_)) => 409,
        _ => 200,
    };
    let page = Page::new("Users", Some(caller), app.on_box_only()).render(html! {
        h1 { "Users" }
        @match &notice {
            Some(Ok(text)) => p.notice role="status" { (text) },
            Some(Err(text)) => p.error role="alert" { (text) },
            None => {},
        }
        section.card {
            h2 { "Registration" }
            p { @if settings.registration_open { "Anyone on the network may register." } @else { "Registration is closed: only admins create accounts." } }
            form method="post" action="/admin/users/registration" {
                (csrf_field(caller))
                input type="hidden" name="open" value=(if settings.registration_open { "0" } else { "1" });
                button type="submit" { @if settings.registration_open { "Close registration" } @else { "Open registration" } }
            }
        }
        table.users.cards {
            thead { tr { th { "User" } th { "Role" } th { "Status" } th { "Storage" } th { "Created" } th {} } }
            tbody {
                @for user in &users {
                    @let used = usage.get(&user.id).copied().unwrap_or_default();
                    tr data-user=(user.username) {
                        td.name { (user.username) }
                        td data-label="Role" { (user.role.as_str()) }
                        td data-label="Status" { @if user.disabled { "disabled" } @else { "active" } }
                        td.storage data-label="Storage" { (crate::web::layout::storage_words(&used)) }
                        td data-label="Created" { (local_time(user.created_at)) }
                        td.row-actions {
                            form.inline method="post" action={ "/admin/users/" (user.id) } {
                                (csrf_field(caller))
                                @if user.role == Role::Admin {
                                    button type="submit" name="role" value="member" { "Demote" }
                                } @else {
                                    button type="submit" name="role" value="admin" { "Promote" }
                                }
                            }
                            " "
                            form.inline method="post" action={ "/admin/users/" (user.id) } {
                                (csrf_field(caller))
                                @if user.disabled {
                                    button type="submit" name="disabled" value="0" { "Enable" }
                                } @else {
                                    button.danger type="submit" name="disabled" value="1" { "Disable" }
                                }
                            }
                            details.quota {
                                summary { "Quota" }
                                form method="post" action={ "/admin/users/" (user.id) } {
                                    (csrf_field(caller))
                                    label {
                                        "Quota for " (user.username) " in GiB (empty: no quota)"
                                        input name="quota_gib" inputmode="decimal" value=(user.quota_bytes.map(quota_gib_text).unwrap_or_default());
                                    }
                                    button type="submit" { "Set quota" }
                                    p.muted { "Counts their files on this box, what only the backup holds and unfinished uploads; an upload past it is refused." }
                                }
                            }
                            details.reset {
                                summary { "Set a new password" }
                                form method="post" action={ "/admin/users/" (user.id) } {
                                    (csrf_field(caller))
                                    label {
                                        "New password for " (user.username)
                                        input type="password" name="new_password" required minlength="8" autocomplete="new-password";
                                    }
                                    button type="submit" { "Set password" }
                                    p.muted { "They are logged out everywhere and log in with this one. Tell them in person." }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card method="post" action="/admin/users/new" {
            h2 { "Create a user" }
            (csrf_field(caller))
            label { "Username" input name="username" required maxlength="64"; }
            label { "Password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
            label { "Role"
                select name="role" { option value="member" { "member" } option value="admin" { "admin" } }
            }
            button type="submit" { "Create user" }
        }
    });
    let mut resp = Resp::html(page);
    resp.status = status;
    Ok(resp)
}

/// The user forms: create, change role or disabled flag, a new password,
/// registration. The notice is the page's; the log line the operation's.
pub fn users_post(
    app: &App,
    caller: &Caller,
    target: &str,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let outcome: Result<String, String> = match target {
        "new" => {
            let role = if field(form, "role") == "admin" {
                Role::Admin
            } else {
                Role::Member
            };
            let (username, password) = (field(form, "username"), field(form, "password"));
            ops::accounts::create_user(app, caller, username, password, role)
                .map(|user| format!("Created the {} {}.", role.as_str(), user.username))
                .map_err(|err| err.to_string())
        }
        "registration" => {
            let open = field(form, "open") == "1";
            ops::accounts::set_registration(app, caller, open)
                .map(|()| match open {
                    true => "Registration is open.".to_string(),
                    false => "Registration is closed.".to_string(),
                })
                .map_err(|err| err.to_string())
        }
        user_id if form.contains_key("quota_gib") => {
            match parse_quota_gib(field(form, "quota_gib")) {
                Ok(quota_bytes) => ops::accounts::set_quota(app, caller, user_id, quota_bytes)
                    .map(|user| match user.quota_bytes {
                        Some(quota) => format!(
                            "{} may now keep {}.",
                            user.username,
                            crate::units::human_size(quota)
                        ),
                        None => format!("{} has no storage quota now.", user.username),
                    })
                    .map_err(|err| err.to_string()),
                Err(sentence) => Err(sentence),
            }
        }
        user_id if form.contains_key("new_password") => {
            ops::accounts::reset_password(app, caller, user_id, field(form, "new_password"))
                .map(|user| {
                    format!(
                        "New password set for {}; they were logged out everywhere.",
                        user.username
                    )
                })
                .map_err(|err| err.to_string())
        }
        user_id => {
            let role = match field(form, "role") {
                "admin" => Some(Role::Admin),
                "member" => Some(Role::Member),
                _ => None,
            };
            let disabled = match field(form, "disabled") {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
            ops::accounts::update_user(app, caller, user_id, role, disabled)
                .map(|user| {
                    format!(
                        "{} is now {}.",
                        user.username,
                        ops::accounts::standing(&user)
                    )
                })
                .map_err(|err| err.to_string())
        }
    };
    users_page(app, caller, Some(outcome))
}

pub fn admin_settings_page(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    error: Option<String>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let settings = Settings::load(&app.store)?;
    let window = settings.upload_window.clone();
    let zone = &app.config.zone;
    let now = crate::ids::now_secs();
    let start = window.as_ref().map_or("01:00", |w| w.start.as_str());
    let end = window.as_ref().map_or("06:00", |w| w.end.as_str());
    let page = Page::new("Settings", Some(caller), app.on_box_only()).render(html! {
        h1 { "Appliance settings" }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        (crate::web::layout::done_notice(&req.query))
        form.card method="post" action="/admin/settings" {
            (csrf_field(caller))
            fieldset {
                legend { "Accounts" }
                label.check {
                    input type="checkbox" name="registration_open" value="1" checked[settings.registration_open];
                    " Anyone on the network may register an account"
                }
            }
            fieldset {
                legend { "Backing up" }
                label {
                    "Upload speed limit (KiB/s, 0 for no limit)"
                    input type="number" name="upload_bandwidth_kib" min="0" value=(settings.upload_bandwidth_bytes_per_sec / 1024);
                }
                label.check {
                    input type="checkbox" name="upload_window_on" value="1" checked[window.is_some()];
                    " Back up only during these hours, in this box's time zone (" (zone.name()) ")"
                }
                p.muted id="box-clock" {
                    "It is " (zone.local_text(now).get(11..).unwrap_or_default()) " (" (zone.name()) ") on the box now."
                    span data-your-time=(zone.local_text(now).get(11..).unwrap_or_default()) data-box-offset=(zone.offset_secs(now)) {}
                }
                div.times {
                    label { "From (" (zone.name()) ")" input type="time" name="upload_window_start" value=(start); }
                    label { "Until (" (zone.name()) ")" input type="time" name="upload_window_end" value=(end); }
                }
                p.muted id="window-your-time" {
                    @if window.is_some() {
                        "From " (start) span data-your-time=(start) data-box-offset=(zone.offset_secs(now)) {}
                        " until " (end) span data-your-time=(end) data-box-offset=(zone.offset_secs(now)) {} "."
                    }
                }
                label {
                    "Transfers at once (1 to 16)"
                    input type="number" name="transfer_concurrency" min="1" max="16" value=(settings.transfer_concurrency);
                }
                label {
                    "Backups checked each week (percent of the archives)"
                    input type="number" name="verify_sample_percent" min="0" max="100" value=(settings.verify_sample_percent);
                }
            }
            fieldset {
                legend { "Space" }
                label {
                    "Free space to keep in reserve (MiB)"
                    input type="number" name="free_space_reserve_mib" min="0" value=(settings.free_space_reserve_bytes >> 20);
                }
                label {
                    "Remove unfinished uploads nobody touched for (days)"
                    input type="number" name="pending_upload_expiry_days" min="1" max="3650" value=(settings.pending_upload_expiry_seconds / 86_400);
                }
                label {
                    "Keep deleted archives in the trash for (days; 0 = no trash, deleting is for good at once)"
                    input type="number" name="trash_days" min="0" max=(crate::settings::MAX_TRASH_DAYS) value=(settings.trash_days);
                }
            }
            button type="submit" { "Save" }
        }
    });
    let mut resp = Resp::html(page);
    if error.is_some() {
        resp.status = 400;
    }
    Ok(resp)
}

/// A whole number from the form, or the sentence saying what it must be.
fn number(form: &HashMap<String, String>, name: &str, what: &str) -> Result<u64, String> {
    field(form, name)
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{what} must be a whole number."))
}

/// The settings as the form sets them, on top of the saved ones.
fn settings_from_form(
    mut settings: Settings,
    form: &HashMap<String, String>,
) -> Result<Settings, String> {
    settings.registration_open = form.contains_key("registration_open");
    settings.upload_bandwidth_bytes_per_sec =
        number(form, "upload_bandwidth_kib", "The upload speed limit")?.saturating_mul(1024);
    settings.upload_window =
        form.contains_key("upload_window_on")
            .then(|| crate::settings::UploadWindow {
                start: field(form, "upload_window_start").trim().to_string(),
                end: field(form, "upload_window_end").trim().to_string(),
            });
    settings.transfer_concurrency = number(form, "transfer_concurrency", "Transfers at once")?
        .try_into()
        .map_err(|_| "Transfers at once must be between 1 and 16.".to_string())?;
    settings.verify_sample_percent = number(form, "verify_sample_percent", "The weekly check")?
        .try_into()
        .map_err(|_| "The weekly check must be between 0 and 100 percent.".to_string())?;
    settings.free_space_reserve_bytes =
        number(form, "free_space_reserve_mib", "The reserve")? << 20;
    settings.pending_upload_expiry_seconds = number(
        form,
        "pending_upload_expiry_days",
        "The expiry of unfinished uploads",
    )?
    .saturating_mul(86_400);
    if form.contains_key("trash_days") {
        settings.trash_days = number(form, "trash_days", "The days in the trash")?
            .try_into()
            .unwrap_or(u32::MAX);
    }
    Ok(settings)
}

pub fn admin_settings_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let settings = match settings_from_form(Settings::load(&app.store)?, form) {
        Ok(settings) => settings,
        Err(sentence) => return admin_settings_page(app, req, caller, Some(sentence)),
    };
    match ops::settings::save(app, caller, &settings) {
        Ok(()) => {}
        Err(err @ ops::Error::Settings(_)) => {
            return admin_settings_page(app, req, caller, Some(err.to_string()))
        }
        Err(err) => return Err(err.into()),
    }
    Ok(Resp::redirect("/admin/settings?done=saved"))
}

/// A quota in GiB as the form shows it: "50", "0.5".
fn quota_gib_text(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let text = format!("{gib:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The quota form's field: empty is no quota, else a positive number of
/// GiB (decimals allowed), at most 1 EiB.
fn parse_quota_gib(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.replace(',', ".").parse::<f64>() {
        Ok(gib) if gib > 0.0 && gib <= (1u64 << 30) as f64 => {
            Ok(Some((gib * (1u64 << 30) as f64).round() as u64))
        }
        _ => Err(format!(
            "{text:?} is not a quota: type a number of GiB such as 50 or 0.5, or leave it empty for no quota."
        )),
    }
}
