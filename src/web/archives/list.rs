//! The archive list's power tools: the search box and sort links (the
//! list itself asks `Archives::search`, see `archive::listing`), and
//! several archives at once: a checkbox per row and an action bar in one
//! plain form (`POST /archives/bulk`, no JavaScript needed), a page that
//! asks first before anything that removes a copy, and a page of what
//! happened to each archive (`ops::archives::bulk`, as the API does it).
//! `list.js` only adds "select all" and keeps ticks across live refreshes.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::accounts::Caller;
use crate::app::state::App;
use crate::archive::listing::{ListQuery, Order, SortKey};
use crate::ops::archives::{BulkAction, MAX_BULK_IDS};
use crate::web::http::ApiError;
use crate::web::http::Resp;
use crate::web::layout::{csrf_field, Page};

/// The form field of a row's checkbox: `id.<archive id>` = `1` (one field
/// per archive, as the form parser keeps one value per name).
const ID_FIELD: &str = "id.";

/// The checkbox of one row of the list.
pub fn row_checkbox(archive_id: &str, name: &str) -> Markup {
    html! {
        input.select type="checkbox" form="bulk" name={ (ID_FIELD) (archive_id) } value="1"
            aria-label={ "Select “" (name) "”" };
    }
}

/// The search box (a plain GET form keeping the sort).
pub fn search_bar(query: &ListQuery) -> Markup {
    html! {
        form.search role="search" method="get" action="/" {
            label for="q" { "Search names and folders" }
            div.search-row {
                input type="search" id="q" name="q" value=[query.q.as_deref()] maxlength="200";
                @if query.sort != SortKey::Created { input type="hidden" name="sort" value=(query.sort.as_str()); }
                @if query.order != query.sort.default_order() { input type="hidden" name="order" value=(query.order.as_str()); }
                button type="submit" { "Search" }
                @if query.q.is_some() { a href=(list_url(&ListQuery { q: None, ..query.clone() })) { "Show all" } }
            }
        }
    }
}

/// The list's address for `query` (first page).
pub fn list_url(query: &ListQuery) -> String {
    let rest = query.to_query_string();
    match rest.strip_prefix('&') {
        Some(rest) => format!("/?{rest}"),
        None => "/".to_string(),
    }
}

/// A column heading that sorts by `key` (the other way round when the list
/// is sorted by it already), saying how the list is sorted now.
pub fn sort_heading(query: &ListQuery, key: SortKey, label: &str, class: &str) -> Markup {
    let current = query.sort == key;
    let order = match (current, query.order) {
        (true, Order::Asc) => Order::Desc,
        (true, Order::Desc) => Order::Asc,
        (false, _) => key.default_order(),
    };
    let target = ListQuery {
        q: query.q.clone(),
        sort: key,
        order,
    };
    let aria = match (current, query.order) {
        (false, _) => None,
        (true, Order::Asc) => Some("ascending"),
        (true, Order::Desc) => Some("descending"),
    };
    let arrow = match (current, query.order) {
        (false, _) => "",
        (true, Order::Asc) => " ↑",
        (true, Order::Desc) => " ↓",
    };
    html! {
        th class=(class) aria-sort=[aria] {
            a.sort href=(list_url(&target)) data-sort=(key.as_str()) { (label) (arrow) }
        }
    }
}

/// The action bar above the list: what to do with the ticked archives.
pub fn bulk_bar(caller: &Caller) -> Markup {
    html! {
        form.bulk-bar id="bulk" method="post" action="/archives/bulk" {
            (csrf_field(caller))
            label.check.select-all hidden { input type="checkbox" id="select-all"; " All on this page" }
            span.muted { "With the ticked archives:" }
            button type="submit" name="action" value="cache" { "Fetch back" }
            button type="submit" name="action" value="uncache" { "Free space on this box" }
            button.danger type="submit" name="action" value="delete" { "Delete" }
        }
    }
}

/// `POST /archives/bulk`: asks first for what removes a copy, then does
/// the action to each ticked archive and says what happened to each.
pub fn bulk_post(
    app: &App,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let action = form
        .get("action")
        .and_then(|action| BulkAction::parse(action))
        .ok_or_else(|| ApiError::new(400, "invalid", "Choose Fetch back, Free space or Delete."))?;
    let mut ids: Vec<String> = form
        .keys()
        .filter_map(|key| key.strip_prefix(ID_FIELD))
        .filter(|id| crate::ids::is_valid_id(id))
        .map(str::to_string)
        .collect();
    ids.sort();
    if ids.is_empty() {
        return Ok(Resp::redirect("/?done=bulk-none"));
    }
    ids.truncate(MAX_BULK_IDS);
    let needs_asking = matches!(action, BulkAction::Uncache | BulkAction::Delete);
    if needs_asking && form.get("confirmed").map(String::as_str) != Some("1") {
        return confirm_page(app, caller, action, &ids);
    }
    let names = names_of(app, caller, &ids);
    let outcomes: Vec<(String, bool, String)> =
        crate::ops::archives::bulk(app, &caller.user.id, action, &ids)
            .into_iter()
            .map(|outcome| match outcome.result {
                Ok(message) => (outcome.id, true, message),
                Err(err) => (outcome.id, false, ApiError::from(err).message),
            })
            .collect();
    let done = outcomes.iter().filter(|(_, ok, _)| *ok).count();
    let page = Page::new("What happened", Some(caller), app.on_box_only()).render(html! {
        h1 { (verb(action)) ": " (done) " of " (outcomes.len()) }
        ul.bulk-results id="bulk-results" {
            @for (id, ok, message) in &outcomes {
                li class=(if *ok { "ok" } else { "error" }) data-archive-id=(id) {
                    strong { (names.get(id).map(String::as_str).unwrap_or("(not found)")) } ": " (message)
                }
            }
        }
        p { a href="/" { "Back to your archives" } }
    });
    Ok(Resp::html(page))
}

fn verb(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Cache => "Fetch back",
        BulkAction::Uncache => "Free space on this box",
        BulkAction::Delete => "Delete",
    }
}

/// The names of the caller's archives among `ids` (others are left out).
fn names_of(app: &App, caller: &Caller, ids: &[String]) -> HashMap<String, String> {
    ids.iter()
        .filter_map(|id| {
            let archive = app.archives.owned(&caller.user.id, id).ok()?;
            Some((archive.id, archive.name))
        })
        .collect()
}

/// "Are you sure?" before freeing space or deleting several archives,
/// saying what goes and what stays.
fn confirm_page(
    app: &App,
    caller: &Caller,
    action: BulkAction,
    ids: &[String],
) -> Result<Resp, ApiError> {
    let names = names_of(app, caller, ids);
    let trash_days = crate::settings::Settings::load(&app.store)?.trash_days;
    let count = names.len();
    let what = if count == 1 {
        "1 archive".to_string()
    } else {
        format!("{count} archives")
    };
    let (question, consequence) = match action {
        BulkAction::Uncache if app.on_box_only() => (
            format!("Free space on this box for {what}?"),
            "Their file on this box is removed. The only other copy is in the storage folder on this same box: if the box is lost, so are they.".to_string(),
        ),
        BulkAction::Uncache => (
            format!("Free space on this box for {what}?"),
            "Their file on this box is removed; the off-site copy stays, and you can fetch each back later. Archives not fully backed up are left as they are.".to_string(),
        ),
        _ if trash_days == 0 => (
            format!("Delete {what} for good?"),
            "The trash is off: they are deleted at once, here and in the backup, and cannot be restored.".to_string(),
        ),
        _ => (
            format!("Move {what} to the trash?"),
            format!("They can be restored from the Trash page for {trash_days} days; after that they are deleted for good, here and in the backup."),
        ),
    };
    let page = Page::new(question.clone(), Some(caller), app.on_box_only()).render(html! {
        h1 { (question) }
        p.warning-text id="bulk-consequence" { (consequence) }
        ul.bulk-names { @for id in ids { @if let Some(name) = names.get(id) { li { (name) } } } }
        form method="post" action="/archives/bulk" {
            (csrf_field(caller))
            input type="hidden" name="action" value=(match action { BulkAction::Uncache => "uncache", BulkAction::Cache => "cache", BulkAction::Delete => "delete" });
            input type="hidden" name="confirmed" value="1";
            @for id in ids { input type="hidden" name={ (ID_FIELD) (id) } value="1"; }
            button.danger type="submit" id="bulk-confirm" { "Yes, " (verb(action).to_lowercase()) }
            " "
            a href="/" { "No, back to the list" }
        }
    });
    Ok(Resp::html(page))
}
