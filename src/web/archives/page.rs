//! The archive list (home), the new-archive (upload) page and the detail
//! page (the delete confirmation and the trash are in `web::trash::page`).

use std::collections::HashMap;

use maud::{html, Markup};

use super::copies;
use super::list;
use super::progress;
use crate::accounts::Caller;
use crate::app::state::{App, OffSiteRule};
use crate::archive::listing::{ListQuery, SortKey};
use crate::ops;
use crate::remote::placement::Placement;
use crate::store::records::{ArchiveRecord, ArchiveState, PartRecord};
use crate::units::human_size;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{csrf_field, done_notice, field, local_time, Page};

/// The words for a state. Honest about safety: unless a destination
/// off this box holds all of it (`App::off_site_rule`), nothing is
/// "off-site"; a stored archive is "on this box only", "on the USB disk
/// only" or, while the storage cannot be reached, "storage unreachable"
/// (the same rules as `live.js`, which reads the words from the page).
/// With copies in more than one place off-site: "off-site in 2 places".
fn state_label(archive: &ArchiveRecord, rule: &OffSiteRule) -> String {
    let places = rule.places(archive);
    match archive.state {
        ArchiveState::Receiving => "receiving".into(),
        ArchiveState::Local => "not backed up yet".into(),
        ArchiveState::Uploading if rule.on_box_only() => "copying on this box".into(),
        ArchiveState::Uploading => "backing up".into(),
        ArchiveState::BackedUp if places > 0 => copies::off_site_words(places),
        ArchiveState::Uncached if places > 1 => format!("off-site only, in {places} places"),
        ArchiveState::Uncached if places == 1 => "off-site only".into(),
        ArchiveState::BackedUp | ArchiveState::Uncached => stored_words(&rule.main).into(),
        ArchiveState::Caching => "fetching back".into(),
        ArchiveState::Deleting => "deleting".into(),
        ArchiveState::Damaged => "damaged".into(),
    }
}

/// A stored archive's words while no off-site destination holds it.
fn stored_words(placement: &Placement) -> &'static str {
    match placement {
        Placement::OffSite => "off-site",
        Placement::SameDisk => "on this box only",
        Placement::UsbDisk(_) => "on the USB disk only",
        Placement::Unreachable => "storage unreachable",
    }
}

/// The CSS class of a state's badge: amber `state-on_box` for a stored
/// archive no off-site destination holds.
fn state_class(archive: &ArchiveRecord, rule: &OffSiteRule) -> String {
    let stored = matches!(
        archive.state,
        ArchiveState::BackedUp | ArchiveState::Uncached
    );
    if stored && !rule.is_off_site(archive) {
        "state state-on_box".to_string()
    } else {
        format!("state state-{}", archive.state.as_str())
    }
}

fn state_badge(archive: &ArchiveRecord, id: Option<&str>, rule: &OffSiteRule) -> Markup {
    html! { span id=[id] class=(state_class(archive, rule)) data-state=(archive.state.as_str()) { (state_label(archive, rule)) } }
}

/// One visual language for bars: green only for what goes off-site, amber
/// for copies on this box, red for damage, blue for a fetch-back (whose
/// width is the share fetched, moved on by `live.js`).
fn bar_class(archive: &ArchiveRecord, rule: &OffSiteRule, large: bool) -> String {
    let kind = match archive.state {
        ArchiveState::Damaged => "bar-damaged",
        ArchiveState::Caching => "bar-fetching",
        _ if !rule.on_box_only() => "bar-off-site",
        _ => "bar-on-box",
    };
    format!("progress {kind}{}", if large { " large" } else { "" })
}

/// What the bar shows: the share fetched while fetching back (not known
/// until `live.js` hears of it: 0), else the share of parts stored.
fn bar_percent(archive: &ArchiveRecord) -> u64 {
    match archive.state {
        ArchiveState::Caching => 0,
        _ => percent_stored(archive),
    }
}

fn progress(archive: &ArchiveRecord, rule: &OffSiteRule) -> Markup {
    let percent = bar_percent(archive);
    html! {
        div class=(bar_class(archive, rule, false)) role="img" aria-label={ (percent) "% " (bar_words(archive)) } {
            div.bar data-percent=(percent) {}
        }
    }
}

/// What a bar's number counts.
fn bar_words(archive: &ArchiveRecord) -> &'static str {
    match archive.state {
        ArchiveState::Caching => "fetched",
        _ => "stored",
    }
}

fn percent_stored(archive: &ArchiveRecord) -> u64 {
    let total = archive.parts_total.max(1);
    (u64::from(archive.parts_remote) * 100 / u64::from(total)).min(100)
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

/// Archives on one home page, and part rows on one detail page.
const HOME_PAGE_SIZE: usize = 100;
const PARTS_PAGE_SIZE: usize = 100;

pub fn home(app: &App, req: &mut Req, caller: &Caller) -> Result<Resp, ApiError> {
    let query = crate::web::paging::list_query(&req.query)?;
    let after = crate::web::paging::list_cursor(&req.query, &query)?;
    let (mut archives, next) =
        app.archives
            .search(&caller.user.id, &query, after.as_ref(), HOME_PAGE_SIZE)?;
    // A deleted archive leaves the list at once (its copies go in the background).
    archives.retain(|archive| archive.state != ArchiveState::Deleting);
    let banner = move_banner(app)?;
    let unfinished = progress::unfinished_uploads(app, caller)?;
    let notes = progress::transfer_notes(app, &archives)?;
    let duplicates = progress::duplicates(&archives);
    let usage = app.archives.usage(&caller.user.id)?;
    let page = Page::new("Your archives", Some(caller), crate::web::layout::Safety::of(app))
        .script("/static/live.js")
        .script("/static/list.js")
        .render(html! {
            div.heading {
                h1 { "Your archives" }
                a.button href="/archives/new" { "Upload files" }
            }
            (crate::web::layout::storage_line(&usage))
            (done_notice(&req.query))
            (banner)
            (unfinished)
            (notes)
            (list::search_bar(&query))
            @if !archives.is_empty() { (list::bulk_bar(caller)) }
            (archive_list(&archives, &duplicates, &app.off_site_rule(), &query))
            nav.pager {
                @if after.is_some() { a href=(list::list_url(&query)) { "First page" } " " }
                @if let Some(next) = &next { a rel="next" href={ "/?after=" (next.encode()) (query.to_query_string()) } { "Next page" } }
            }
        });
    Ok(Resp::html(page))
}

/// The home page's list of archives (`#archive-list`, which `live.js`
/// re-renders from the server when an archive appears or changes state).
fn archive_list(
    archives: &[ArchiveRecord],
    duplicates: &HashMap<String, (String, String)>,
    rule: &OffSiteRule,
    query: &ListQuery,
) -> Markup {
    html! {
        div id="archive-list" {
        @if archives.is_empty() && query.q.is_some() {
            p.empty { "No archive matches “" (query.q.as_deref().unwrap_or_default()) "”. " a href="/" { "Show all archives." } }
        } @else if archives.is_empty() {
            p.empty { "No archives yet. " a href="/archives/new" { "Upload your first file." } }
        } @else {
            table.archives.cards {
                thead { tr {
                    th.select { span.visually-hidden { "Select" } }
                    (list::sort_heading(query, SortKey::Name, "Name", "name-heading"))
                    th { "State" }
                    (list::sort_heading(query, SortKey::Size, "Size", "num"))
                    th { "Stored" }
                    (list::sort_heading(query, SortKey::Created, "Added", "added"))
                } }
                tbody {
                    @for archive in archives {
                        tr data-archive-id=(archive.id) data-size=(archive.size) {
                            td.select { (list::row_checkbox(&archive.id, &archive.name)) }
                            td.name {
                                @if let Some(path) = &archive.path { span.path.muted { (path) "/" } }
                                a href={ "/archives/" (archive.id) } { (archive.name) }
                                (progress::duplicate_note(duplicates.get(&archive.id)))
                            }
                            td data-label="State" { (state_badge(archive, None, rule)) }
                            td.num data-label="Size" { (human_size(archive.size)) }
                            td data-label="Stored" {
                                (progress(archive, rule))
                                span.percent.muted { (bar_percent(archive)) "%" }
                                span.eta.muted {}
                            }
                            td data-label="Added" { (local_time(archive.created_at)) }
                        }
                    }
                }
            }
        }
        }
    }
}

pub fn new_page(app: &App, _req: &mut Req, caller: &Caller) -> Result<Resp, ApiError> {
    let page = Page::new("Upload", Some(caller), crate::web::layout::Safety::of(app))
        .script("/static/tus.min.js")
        .script("/static/upload.js")
        .render(html! {
            h1 { "Upload" }
            section.card.dropzone {
                p { "Each file becomes its own archive. Choose files, or drop them anywhere on this page." }
                p { "Uploads start as soon as you choose. A folder keeps its structure: each file shows its folder path." }
                div.pickers {
                    label.button.pick for="file" { "Choose files" }
                    label.button.pick.secondary for="folder" { "Choose a folder" }
                }
                input.visually-hidden id="file" type="file" name="file" multiple;
                input.visually-hidden id="folder" type="file" name="folder" multiple webkitdirectory;
                div.refused.error id="refused" role="alert" hidden {}
            }
            ul.queue id="queue" aria-label="Files to upload" {}
            section.card id="upload-status" hidden {
                h2 { "All files" }
                div.progress.large role="img" aria-label="Total progress" { div.bar id="upload-bar" data-percent="0" {} }
                p id="upload-text" role="status" aria-live="polite" {}
                p id="upload-done" hidden { "Done. " a href="/" { "See your archives" } }
            }
            p.muted {
                "Uploads continue where they stopped: if the network drops or you reload this page, choose the same files again."
            }
        });
    Ok(Resp::html(page))
}

pub fn detail(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    archive_id: &str,
) -> Result<Resp, ApiError> {
    detail_with(app, req, caller, archive_id, None)
}

/// A rename the server refused: what was typed and why, shown on the
/// rename form itself.
struct RenameRefused {
    typed: String,
    message: String,
}

fn detail_with(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    archive_id: &str,
    refused: Option<RenameRefused>,
) -> Result<Resp, ApiError> {
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let parts_after = crate::web::paging::part_index(&req.query)?;
    let (parts, more_parts) = app
        .archives
        .parts_page(archive_id, parts_after, PARTS_PAGE_SIZE)?;
    let trash = app.archives.trash_of(&archive.id)?;
    let allowed = match trash {
        Some(_) => Allowed::NONE,
        None => actions_allowed(&archive),
    };
    let banner = move_banner(app)?;
    let notes = progress::transfer_notes(app, std::slice::from_ref(&archive))?;
    // Compared with the newest archives (one bounded page), and this one.
    let (mut recent, _) = app.archives.page(&caller.user.id, None, usize::MAX)?;
    if !recent.iter().any(|other| other.id == archive.id) {
        recent.push(archive.clone());
    }
    let duplicates = progress::duplicates(&recent);
    let rule = app.off_site_rule();
    let copies = app.copies(&archive);
    let page = Page::new(archive.name.clone(), Some(caller), crate::web::layout::Safety::of(app)).script("/static/live.js").render(html! {
        h1 data-archive-detail=(archive.id) data-state=(archive.state.as_str()) data-size=(archive.size) { (archive.name) }
        (progress::duplicate_note(duplicates.get(&archive.id)))
        (done_notice(&req.query))
        @if let Some(trash) = &trash { (crate::web::trash::page::trash_notice(caller, &archive, trash)) }
        (banner)
        (summary_card(&archive, &notes, &rule, &copies))
        (action_buttons(&archive, allowed, caller, &rule.main))
        (rename_card(&archive, trash.is_some(), caller, refused.as_ref()))
        (technical_details(&archive, &parts, parts_after, more_parts))
    });
    let mut resp = Resp::html(page);
    if refused.is_some() {
        resp.status = 400;
    }
    Ok(resp)
}

/// The state, progress bar and facts at the top of the detail page.
fn summary_card(
    archive: &ArchiveRecord,
    notes: &Markup,
    rule: &OffSiteRule,
    copies: &[crate::engine::destinations::Copy],
) -> Markup {
    // Off-site words once any off-site destination holds all of it.
    let shown = match rule.is_off_site(archive) {
        true => Placement::OffSite,
        false => rule.main.clone(),
    };
    html! {
        section.card.summary {
            p { "State: " (state_badge(archive, Some("state"), rule)) }
            div class=(bar_class(archive, rule, true)) role="img" aria-label={ (bar_percent(archive)) "% " (bar_words(archive)) } {
                div.bar data-percent=(bar_percent(archive)) {}
            }
            p id="stored-text" class=[(archive.state == ArchiveState::Damaged).then_some("error")] { (stored_sentence(archive, &shown)) }
            // With more than one destination: each one's copy in words.
            @if copies.len() > 1 {
                p id="copies-text" { (copies::copies_sentence(copies)) }
            }
            p.eta.muted id="transfer-rate" {}
            (notes)
            dl.facts {
                @if let Some(path) = &archive.path { dt { "Folder" } dd id="folder-path" { (path) } }
                dt { "Size" } dd { (human_size(archive.size)) }
                dt { "Size on the remote" } dd id="stored-size" { (stored_size_text(archive)) }
                @if let Some(until) = archive.protected_until {
                    dt { "Protected until" }
                    dd id="protected-until" title="Object Lock: nobody can delete or change the copy in the bucket before then, not even with this box's keys." {
                        (local_time(until))
                    }
                }
                dt { "Added" } dd { (local_time(archive.created_at)) }
                // Always present (hidden when there is none) so live updates can show one.
                dt.last-error hidden[archive.last_error.is_none()] { "Last error" }
                dd.error.last-error id="last-error" hidden[archive.last_error.is_none()] {
                    (archive.last_error.as_deref().unwrap_or_default())
                }
            }
        }
    }
}

/// The archive's action buttons.
fn action_buttons(
    archive: &ArchiveRecord,
    allowed: Allowed,
    caller: &Caller,
    placement: &Placement,
) -> Markup {
    html! {
        // Every action is rendered, hidden unless the state allows it, so
        // `live.js` can show and hide them as the state changes (the same
        // rules as `actions_allowed`).
        div.actions id="actions" {
            a.button data-action="download" hidden[!allowed.download] href={ "/api/v1/archives/" (archive.id) "/content" } download { "Download" }
            form.inline data-action="uncache" hidden[!allowed.uncache] method="post" action={ "/archives/" (archive.id) "/uncache" } data-confirm=(uncache_question(placement)) {
                (csrf_field(caller))
                button type="submit" title="Remove the local copy; the backup stays in remote storage" { "Free local space" }
            }
            form.inline data-action="cache" hidden[!allowed.cache] method="post" action={ "/archives/" (archive.id) "/cache" } {
                (csrf_field(caller))
                button type="submit" title="Download the parts, verify them and put the file back on this appliance" { "Fetch back" }
            }
            a.button.danger data-action="delete" hidden[!allowed.delete] href={ "/archives/" (archive.id) "/delete" } { "Delete…" }
        }
    }
}

/// The rename form (hidden while the archive is in the trash).
fn rename_card(
    archive: &ArchiveRecord,
    in_trash: bool,
    caller: &Caller,
    refused: Option<&RenameRefused>,
) -> Markup {
    let value = refused.map_or(archive.name.as_str(), |r| r.typed.as_str());
    html! {
        section.card hidden[in_trash] id="rename" {
            h2 { "Rename" }
            form method="post" action={ "/archives/" (archive.id) "/rename" } {
                (csrf_field(caller))
                @if let Some(refused) = refused {
                    p.error role="alert" id="rename-error" { (refused.message) }
                }
                label { "Name" input name="name" value=(value) required maxlength="200" aria-invalid=[refused.map(|_| "true")] aria-describedby=[refused.map(|_| "rename-error")]; }
                button type="submit" { "Rename" }
            }
        }
    }
}

/// The technical details: checksum and one page of the parts table.
fn technical_details(
    archive: &ArchiveRecord,
    parts: &[(u32, PartRecord)],
    parts_after: Option<u32>,
    more_parts: bool,
) -> Markup {
    html! {
        details.card.technical id="technical" open[parts_after.is_some()] {
            summary { "Technical details" }
            dl.facts {
                dt { "Original filename" } dd { (archive.filename) }
                dt { "Exact size" } dd { (archive.size) " bytes" }
                dt { "SHA-256" } dd { code { (archive.sha256) } }
                dt { "Parts stored" } dd.parts-count { (archive.parts_remote) " of " (archive.parts_total) }
            }
            @if archive.parts_total == 0 {
                p.muted { "This archive is empty (0 bytes): it has no parts." }
            } @else {
                div.scroll tabindex="0" role="region" aria-label="Parts" {
                    table.parts {
                        thead { tr { th.num { "#" } th.num { "Offset" } th.num { "Size" } th { "SHA-256" } th { "Stored" } } }
                        tbody {
                            @for (index, part) in parts {
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
                nav.pager {
                    @if parts_after.is_some() { a href={ "/archives/" (archive.id) "#technical" } { "First parts" } " " }
                    @if let Some((last, _)) = parts.last().filter(|_| more_parts) {
                        a rel="next" href={ "/archives/" (archive.id) "?after=" (last) "#technical" } { "Next " (PARTS_PAGE_SIZE) " parts" }
                    }
                }
            }
        }
    }
}

/// How much of the archive is stored, in words that do not overstate it;
/// for a damaged one, what to do next.
fn stored_sentence(archive: &ArchiveRecord, placement: &Placement) -> String {
    let percent = percent_stored(archive);
    match placement {
        _ if archive.state == ArchiveState::Damaged => format!(
            "Damaged. {}",
            crate::ops::safety::damaged_next_step(archive)
        ),
        _ if archive.state == ArchiveState::Caching => {
            "Fetching it back onto this box.".to_string()
        }
        Placement::OffSite => format!("{percent}% off-site."),
        Placement::UsbDisk(label) => format!("{percent}% copied to the USB disk {label}. Not off-site: a fire or a theft takes both."),
        Placement::Unreachable => format!("{percent}% copied, but the storage cannot be reached now: not a safe copy until it is back."),
        Placement::SameDisk => format!("{percent}% copied to the storage folder on this box. Not off-site: if this box is lost, so is this file."),
    }
}

/// The question before "Free local space": the file on this box is its
/// only copy here.
fn uncache_question(placement: &Placement) -> String {
    let where_then = match placement {
        Placement::OffSite => "only in the off-site storage".to_string(),
        other => format!("only in the backup storage ({})", other.describe()),
    };
    format!("Remove the copy on this box? It is the only one here: the file will then be {where_then}, and must be fetched back before you can download it.")
}

/// Which actions the detail page offers in the archive's state. `live.js`
/// applies the same rules when an event changes the state.
#[derive(Clone, Copy)]
struct Allowed {
    download: bool,
    uncache: bool,
    cache: bool,
    delete: bool,
}

impl Allowed {
    /// An archive in the trash: only restore or delete for good, offered
    /// by the trash notice.
    const NONE: Allowed = Allowed {
        download: false,
        uncache: false,
        cache: false,
        delete: false,
    };
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

/// Abandons one of the caller's unfinished uploads (the home page's
/// "Discard", asked first by `confirm.js`).
pub fn discard_upload_post(app: &App, caller: &Caller, upload_id: &str) -> Result<Resp, ApiError> {
    ops::archives::discard_upload(app, &caller.user.id, upload_id)?;
    Ok(Resp::redirect("/?done=upload-discarded"))
}

pub fn uncache_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    ops::archives::uncache(app, &caller.user.id, archive_id)?;
    Ok(Resp::redirect(&format!(
        "/archives/{archive_id}?done=uncache"
    )))
}

pub fn cache_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    ops::archives::cache(app, &caller.user.id, archive_id)?;
    Ok(Resp::redirect(&format!(
        "/archives/{archive_id}?done=cache"
    )))
}

/// Renames; a name refused (empty, too long, control characters) is said
/// on the rename form itself, with what was typed kept.
pub fn rename_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    archive_id: &str,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let typed = field(form, "name");
    match ops::archives::rename(app, &caller.user.id, archive_id, typed).map_err(ApiError::from) {
        Ok(_) => Ok(Resp::redirect(&format!(
            "/archives/{archive_id}?done=renamed"
        ))),
        Err(err) if err.status == 400 => {
            let refused = RenameRefused {
                typed: typed.to_string(),
                message: err.message,
            };
            detail_with(app, req, caller, archive_id, Some(refused))
        }
        Err(err) => Err(err),
    }
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
