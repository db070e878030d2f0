//! The Trash page, the notice on a trashed archive's detail page, and the
//! delete confirmation (to the trash, or for good from the trash). The form
//! posts call the operations in `ops::trash`.

use maud::{html, Markup};

use crate::accounts::Caller;
use crate::app::state::App;
use crate::ops;
use crate::settings::Settings;
use crate::store::records::{ArchiveRecord, ArchiveState, TrashRecord};
use crate::units::human_size;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{csrf_field, done_notice, local_time, Page};

/// Archives on one trash page.
const TRASH_PAGE_SIZE: usize = 100;

pub fn trash_page(app: &App, req: &mut Req, caller: &Caller) -> Result<Resp, ApiError> {
    let after = crate::web::paging::archive_cursor(&req.query)?;
    let (archives, next) =
        app.archives
            .trash_page(&caller.user.id, after.as_ref(), TRASH_PAGE_SIZE)?;
    let days = Settings::load(&app.store)?.trash_days;
    let page = Page::new("Trash", Some(caller), app.on_box_only()).render(html! {
        h1 { "Trash" }
        (done_notice(&req.query))
        p {
            @if days == 0 {
                "The trash is turned off: deleting an archive deletes it for good at once. "
            } @else {
                "Deleted archives stay here for " (days) " days; then they are deleted for good. "
            }
            "While an archive is in the trash its off-site copy is kept, and you can restore it as it was."
        }
        @if archives.is_empty() {
            p.empty { "The trash is empty." }
        } @else {
            table.archives.cards {
                thead { tr { th { "Name" } th.num { "Size" } th { "Deleted" } th { "Deleted for good" } th { "Actions" } } }
                tbody {
                    @for (archive, trash) in &archives {
                        (trash_row(caller, archive, trash))
                    }
                }
            }
        }
        nav.pager {
            @if after.is_some() { a href="/trash" { "Last deleted" } " " }
            @if let Some(next) = &next { a rel="next" href={ "/trash?after=" (next.encode()) } { "Deleted earlier" } }
        }
    });
    Ok(Resp::html(page))
}

fn trash_row(caller: &Caller, archive: &ArchiveRecord, trash: &TrashRecord) -> Markup {
    let purging = archive.state == ArchiveState::Deleting;
    html! {
        tr data-archive-id=(archive.id) {
            td.name { a href={ "/archives/" (archive.id) } { (archive.name) } }
            td.num data-label="Size" { (human_size(archive.size)) }
            td data-label="Deleted" { (local_time(trash.trashed_at)) }
            td data-label="Deleted for good" {
                @if purging { "now" } @else { (local_time(trash.purge_at)) }
            }
            td data-label="Actions" {
                @if purging {
                    span.muted { "being deleted" }
                } @else {
                    (restore_form(caller, archive))
                    " "
                    a.button.danger href={ "/archives/" (archive.id) "/delete" } { "Delete for good…" }
                }
            }
        }
    }
}

fn restore_form(caller: &Caller, archive: &ArchiveRecord) -> Markup {
    html! {
        form.inline method="post" action={ "/archives/" (archive.id) "/restore" } {
            (csrf_field(caller))
            button type="submit" aria-label={ "Restore " (archive.name) } { "Restore" }
        }
    }
}

/// The top of a trashed archive's detail page: when it goes, and the two
/// ways out.
pub fn trash_notice(caller: &Caller, archive: &ArchiveRecord, trash: &TrashRecord) -> Markup {
    html! {
        div.card.notice id="trash-notice" role="status" {
            @if archive.state == ArchiveState::Deleting {
                p { "This archive is being deleted for good." }
            } @else {
                p { "This archive is in the trash. It is deleted for good " (local_time(trash.purge_at)) " unless you restore it." }
                div.actions {
                    (restore_form(caller, archive))
                    " "
                    a.button.danger href={ "/archives/" (archive.id) "/delete" } { "Delete for good…" }
                }
            }
        }
    }
}

/// Asks first: "move to the trash" for an archive in the list (or "delete
/// for good" when the trash is off), "delete for good" for one in the trash.
pub fn delete_page(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    let archive = app.archives.owned(&caller.user.id, archive_id)?;
    let in_trash = app.archives.trash_of(archive_id)?.is_some();
    let days = Settings::load(&app.store)?.trash_days;
    let for_good = in_trash || days == 0;
    let title = if for_good {
        "Delete for good"
    } else {
        "Move to the trash"
    };
    let page = Page::new(title, Some(caller), app.on_box_only()).render(html! {
        @if for_good {
            h1 { "Delete “" (archive.name) "” for good?" }
            p { "This removes the file (" (human_size(archive.size)) ") from this appliance and its backup copies. It cannot be undone." }
        } @else {
            h1 { "Move “" (archive.name) "” to the trash?" }
            p { "It stays in the trash for " (days) " days, with its off-site copy; until then you can restore it from the Trash page." }
        }
        form method="post" action={ "/archives/" (archive.id) "/delete" } {
            (csrf_field(caller))
            button.danger type="submit" { (if for_good { "Delete for good" } else { "Move to trash" }) }
            " "
            a href={ "/archives/" (archive.id) } { "Cancel" }
        }
    });
    Ok(Resp::html(page))
}

pub fn delete_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    app.archives.owned(&caller.user.id, archive_id)?;
    if app.archives.trash_of(archive_id)?.is_some() {
        ops::trash::purge(app, &caller.user.id, archive_id)?;
        return Ok(Resp::redirect("/trash?done=deleted"));
    }
    Ok(match ops::trash::trash(app, &caller.user.id, archive_id)? {
        crate::archive::Deleted::Trashed(..) => Resp::redirect("/?done=trashed"),
        crate::archive::Deleted::Deleting => Resp::redirect("/?done=deleted"),
    })
}

pub fn restore_post(app: &App, caller: &Caller, archive_id: &str) -> Result<Resp, ApiError> {
    ops::trash::restore(app, &caller.user.id, archive_id)?;
    Ok(Resp::redirect(&format!(
        "/archives/{archive_id}?done=restored"
    )))
}
