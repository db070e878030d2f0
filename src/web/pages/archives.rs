//! The archive list (home), the new-archive (upload) page, the detail page
//! and the delete confirmation.

use std::collections::HashMap;

use maud::{html, Markup};

use super::layout::{csrf_field, human_time, Page};
use super::{field, Resp};
use crate::accounts::Caller;
use crate::archive::human_size;
use crate::store::records::{ArchiveRecord, ArchiveState};
use crate::web::http::{ApiError, Req};
use crate::web::App;

fn state_label(state: ArchiveState) -> &'static str {
    match state {
        ArchiveState::Receiving => "receiving",
        ArchiveState::Local => "local only",
        ArchiveState::Uploading => "backing up",
        ArchiveState::BackedUp => "backed up",
        ArchiveState::Uncached => "in the cloud only",
        ArchiveState::Caching => "fetching back",
        ArchiveState::Deleting => "deleting",
        ArchiveState::Damaged => "damaged",
    }
}

fn progress(archive: &ArchiveRecord) -> Markup {
    let total = archive.parts_total.max(1);
    let percent = (u64::from(archive.parts_remote) * 100 / u64::from(total)).min(100);
    html! {
        div.progress title={ (archive.parts_remote) " of " (archive.parts_total) " parts stored remotely" } {
            div.bar data-percent=(percent) {}
        }
    }
}

/// While the backups move to new storage: how far, for every user (the
/// archive names waiting for the old storage are on each archive and, for
/// admins, on the remote page).
fn move_banner(app: &App) -> Result<Markup, ApiError> {
    let record = app.engine.remote_move()?;
    Ok(html! {
        @if let Some(record) = record {
            div.card.notice id="move-banner" role="status" {
                p {
                    "Moving the backups to the new storage: "
                    (record.parts_total.saturating_sub(record.parts_left)) " of " (record.parts_total) " parts. "
                    "Until an archive has arrived there, it is kept where it was."
                }
                progress max=(record.parts_total.max(1)) value=(record.parts_total.saturating_sub(record.parts_left)) {}
                @if !record.stuck_archives.is_empty() {
                    p.error { "Some archives cannot be copied yet: the old storage is unreachable." }
                }
            }
        }
    })
}

pub fn home(app: &App, _req: &mut Req, caller: &Caller) -> Result<Resp, ApiError> {
    let archives = app.archives.list(&caller.user.id)?;
    let banner = move_banner(app)?;
    let page = Page::new("Your archives", Some(caller)).script("/static/live.js").render(html! {
        div.heading {
            h1 { "Your archives" }
            a.button href="/archives/new" { "New archive" }
        }
        (banner)
        @if archives.is_empty() {
            p.empty { "No archives yet. " a href="/archives/new" { "Upload your first file." } }
        } @else {
            table.archives {
                thead { tr { th { "Name" } th { "State" } th.num { "Size" } th.num { "Parts" } th { "Backup" } th { "Created" } } }
                tbody {
                    @for archive in &archives {
                        tr data-archive-id=(archive.id) {
                            td { a href={ "/archives/" (archive.id) } { (archive.name) } }
                            td { span class={ "state state-" (archive.state.as_str()) } { (state_label(archive.state)) } }
                            td.num { (human_size(archive.size)) }
                            td.num.parts-count { (archive.parts_remote) " / " (archive.parts_total) }
                            td { (progress(archive)) }
                            td { (human_time(archive.created_at)) }
                        }
                    }
                }
            }
        }
    });
    Ok(Resp::html(page))
}

pub fn new_page(_app: &App, _req: &mut Req, caller: &Caller) -> Result<Resp, ApiError> {
    let page = Page::new("New archive", Some(caller)).script("/static/upload.js").render(html! {
        h1 { "New archive" }
        form.card id="upload-form" {
            label { "File" input id="file" type="file" name="file" required; }
            label { "Name " span.muted { "(optional; the file's name otherwise)" } input id="name" name="name" maxlength="200"; }
            button id="start" type="submit" { "Upload" }
        }
        section.card id="upload-status" hidden {
            div.progress.large { div.bar id="upload-bar" data-percent="0" {} }
            p id="upload-text" role="status" aria-live="polite" {}
            p.error id="upload-error" role="alert" hidden {}
            p id="upload-done" hidden { a id="upload-link" href="/" { "Open the archive" } }
        }
        p.muted {
            "Uploads resume where they stopped: if the network drops or you reload this page, choose the same file again."
        }
    });
    Ok(Resp::html(page))
}

pub fn detail(
    app: &App,
    _req: &mut Req,
    caller: &Caller,
    archive_id: &str,
) -> Result<Resp, ApiError> {
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let parts = app.archives.parts(archive_id)?;
    let allowed = actions_allowed(&archive);
    let banner = move_banner(app)?;
    let page = Page::new(archive.name.clone(), Some(caller)).script("/static/live.js").render(html! {
        h1 data-archive-detail=(archive.id) data-state=(archive.state.as_str()) { (archive.name) }
        (banner)
        dl.facts {
            dt { "Original filename" } dd { (archive.filename) }
            dt { "Size" } dd { (human_size(archive.size)) " (" (archive.size) " bytes)" }
            dt { "Size on the remote" } dd id="stored-size" { (stored_size_text(&archive)) }
            dt { "SHA-256" } dd { code { (archive.sha256) } }
            dt { "State" } dd { span id="state" class={ "state state-" (archive.state.as_str()) } { (state_label(archive.state)) } }
            dt { "Created" } dd { (human_time(archive.created_at)) }
            // Always present (hidden when there is none) so live updates can show one.
            dt.last-error hidden[archive.last_error.is_none()] { "Last error" }
            dd.error.last-error id="last-error" hidden[archive.last_error.is_none()] {
                (archive.last_error.as_deref().unwrap_or_default())
            }
        }
        // Every action is rendered, hidden unless the state allows it, so
        // `live.js` can show and hide them as the state changes (the same
        // rules as `actions_allowed`).
        div.actions id="actions" {
            a.button data-action="download" hidden[!allowed.download] href={ "/api/v1/archives/" (archive.id) "/content" } download { "Download" }
            form.inline data-action="uncache" hidden[!allowed.uncache] method="post" action={ "/archives/" (archive.id) "/uncache" } {
                (csrf_field(caller))
                button type="submit" title="Remove the local copy; the backup stays in remote storage" { "Free local space" }
            }
            form.inline data-action="cache" hidden[!allowed.cache] method="post" action={ "/archives/" (archive.id) "/cache" } {
                (csrf_field(caller))
                button type="submit" title="Download the parts, verify them and put the file back on this appliance" { "Fetch back" }
            }
            a.button.danger data-action="delete" hidden[!allowed.delete] href={ "/archives/" (archive.id) "/delete" } { "Delete…" }
        }
        section.card {
            h2 { "Rename" }
            form method="post" action={ "/archives/" (archive.id) "/rename" } {
                (csrf_field(caller))
                label { "Name" input name="name" value=(archive.name) required maxlength="200"; }
                button type="submit" { "Rename" }
            }
        }
        section {
            h2 { "Parts" }
            @if parts.is_empty() {
                p.muted { "This archive is empty (0 bytes): it has no parts." }
            } @else {
                table.parts {
                    thead { tr { th.num { "#" } th.num { "Offset" } th.num { "Size" } th { "SHA-256" } th { "Remote" } } }
                    tbody {
                        @for (index, part) in parts.iter().enumerate() {
                            tr class=(if part.remote { "part remote" } else { "part" }) data-part-index=(index) {
                                td.num { (index) }
                                td.num { (part.offset) }
                                td.num { (human_size(part.length)) }
                                td { code { (part.sha256) } }
                                td.part-remote { @if part.remote { "stored" } @else { "local only" } }
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(Resp::html(page))
}

/// Which actions the detail page offers in the archive's state. `live.js`
/// applies the same rules when an event changes the state.
struct Allowed {
    download: bool,
    uncache: bool,
    cache: bool,
    delete: bool,
}

fn actions_allowed(archive: &ArchiveRecord) -> Allowed {
    Allowed {
        download: archive.state.is_local(),
        uncache: archive.state == ArchiveState::BackedUp
            && archive.parts_remote >= archive.parts_total,
        cache: archive.state == ArchiveState::Uncached,
        delete: archive.state != ArchiveState::Deleting,
    }
}

pub fn delete_page(
    app: &App,
    _req: &mut Req,
    caller: &Caller,
    archive_id: &str,
) -> Result<Resp, ApiError> {
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let page = Page::new("Delete archive", Some(caller)).render(html! {
        h1 { "Delete “" (archive.name) "”?" }
        p { "This removes the file (" (human_size(archive.size)) ") from this appliance and its backup copies. It cannot be undone." }
        form method="post" action={ "/archives/" (archive.id) "/delete" } {
            (csrf_field(caller))
            button.danger type="submit" { "Delete for good" }
            " "
            a href={ "/archives/" (archive.id) } { "Cancel" }
        }
    });
    Ok(Resp::html(page))
}

pub fn delete_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    app.archives.delete(&caller.user.id, archive_id)?;
    Ok(Resp::redirect("/"))
}

pub fn uncache_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    app.archives.request_uncache(&caller.user.id, archive_id)?;
    app.engine.wake();
    Ok(Resp::redirect(&format!("/archives/{archive_id}")))
}

pub fn cache_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    app.archives.request_cache(&caller.user.id, archive_id)?;
    app.engine.wake();
    Ok(Resp::redirect(&format!("/archives/{archive_id}")))
}

pub fn rename_post(
    app: &App,
    _req: &mut Req,
    caller: &Caller,
    archive_id: &str,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    app.archives
        .rename(&caller.user.id, archive_id, field(form, "name"))?;
    Ok(Resp::redirect(&format!("/archives/{archive_id}")))
}

/// The archive's size on the remote, for people: compressed where that
/// paid, so often smaller than its size.
fn stored_size_text(archive: &ArchiveRecord) -> String {
    match archive.stored_size {
        _ if archive.parts_remote == 0 => "nothing uploaded yet".to_string(),
        None => "not known (uploaded before piarchive kept it, or recovered from the bucket)"
            .to_string(),
        Some(stored) => {
            let so_far = if archive.parts_remote < archive.parts_total {
                " so far"
            } else {
                ""
            };
            let smaller =
                match (archive.size.saturating_sub(stored) * 100).checked_div(archive.size) {
                    Some(percent) if percent > 0 && so_far.is_empty() => {
                        format!(", {percent}% smaller")
                    }
                    _ => String::new(),
                };
            format!("{} ({stored} bytes){so_far}{smaller}", human_size(stored))
        }
    }
}
