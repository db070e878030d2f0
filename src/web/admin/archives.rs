//! Every user's archive records for admins: `GET /api/v1/admin/archives`
//! (paged, by owner and state), the actions an admin may take on any
//! archive (retry, verify, fetch back: `ops::archives::*_as_admin`, the
//! admin path beside `Archives::owned`), and their pages
//! (`/admin/archives`, `/admin/archives/{id}`). Records only: an
//! archive's content stays its owner's (no download here).

use std::collections::HashMap;

use maud::{html, Markup};
use serde_json::{json, Value};

use crate::accounts::Caller;
use crate::app::state::{App, OffSiteRule};
use crate::engine::Verification;
use crate::ops;
use crate::store::records::{ArchiveRecord, ArchiveState};
use crate::units::human_size;
use crate::web::archives::api::archive_json_placed;
use crate::web::auth::{api_caller, require_admin};
use crate::web::http::{percent_encode, ApiError, Req, Resp};
use crate::web::layout::{csrf_field, done_notice, local_time, Page};

type Answer = Result<Resp, ApiError>;

/// Archives on one page of `/admin/archives`.
const PAGE_SIZE: usize = 100;

/// The `state` filter: an archive state, `problem` (damaged, or a
/// transfer that failed) or `only_here` (not off-site).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    Any,
    State(ArchiveState),
    Problem,
    OnlyHere,
}

const STATES: [ArchiveState; 8] = [
    ArchiveState::Receiving,
    ArchiveState::Local,
    ArchiveState::Uploading,
    ArchiveState::BackedUp,
    ArchiveState::Uncached,
    ArchiveState::Caching,
    ArchiveState::Deleting,
    ArchiveState::Damaged,
];

impl StateFilter {
    fn parse(text: Option<&str>) -> Result<StateFilter, ApiError> {
        Ok(match text {
            None | Some("") => StateFilter::Any,
            Some("problem") => StateFilter::Problem,
            Some("only_here") => StateFilter::OnlyHere,
            Some(text) => match STATES.iter().find(|state| state.as_str() == text) {
                Some(state) => StateFilter::State(*state),
                None => {
                    return Err(ApiError::bad_request(
                        "state must be an archive state (receiving, local, uploading, backed_up, uncached, caching, deleting, damaged), problem or only_here.",
                    ))
                }
            },
        })
    }

    fn keeps(self, archive: &ArchiveRecord, rule: &OffSiteRule) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::State(state) => archive.state == state,
            StateFilter::Problem => is_problem(archive),
            StateFilter::OnlyHere => {
                archive.state != ArchiveState::Deleting && !rule.is_off_site(archive)
            }
        }
    }
}

/// Damaged, or a transfer that failed and waits.
fn is_problem(archive: &ArchiveRecord) -> bool {
    archive.state == ArchiveState::Damaged
        || (archive.last_error.is_some()
            && matches!(
                archive.state,
                ArchiveState::Local | ArchiveState::Uploading | ArchiveState::Caching
            ))
}

/// The owner filter: a user id or a username; `None` for everyone. An
/// unknown user is refused with a sentence.
fn owner_filter(app: &App, query: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    let Some(owner) = query.get("owner").filter(|owner| !owner.is_empty()) else {
        return Ok(None);
    };
    let users = app.accounts.users()?;
    users
        .iter()
        .find(|user| &user.id == owner || user.username.eq_ignore_ascii_case(owner))
        .map(|user| Some(user.id.clone()))
        .ok_or_else(|| ApiError::bad_request(format!("There is no user {owner:?}.")))
}

/// One page: the records, their owners' names, and where the next starts.
struct Listing<'a> {
    archives: Vec<ArchiveRecord>,
    names: HashMap<String, String>,
    next: Option<String>,
    rule: OffSiteRule<'a>,
}

fn listing<'a>(
    app: &'a App,
    caller: &Caller,
    query: &HashMap<String, String>,
    limit: usize,
) -> Result<Listing<'a>, ApiError> {
    require_admin(caller)?;
    let filter = StateFilter::parse(query.get("state").map(String::as_str))?;
    let owner = owner_filter(app, query)?;
    let after = query.get("after").map(String::as_str);
    if after.is_some_and(|after| !crate::ids::is_valid_id(after)) {
        return Err(ApiError::bad_request(
            "after must be the id of the last archive of the previous page.",
        ));
    }
    let rule = app.off_site_rule();
    let (archives, next) = app.archives.administered_page(
        caller.user.role,
        owner.as_deref(),
        |archive| filter.keeps(archive, &rule),
        after,
        limit,
    )?;
    let names = app
        .accounts
        .users()?
        .into_iter()
        .map(|user| (user.id, user.username))
        .collect();
    Ok(Listing {
        archives,
        names,
        next,
        rule,
    })
}

/// The query string of the next page, keeping the filters.
fn next_query(query: &HashMap<String, String>, limit: usize, next: &str) -> String {
    let mut parts = Vec::new();
    for name in ["owner", "state"] {
        if let Some(value) = query.get(name).filter(|value| !value.is_empty()) {
            parts.push(format!("{name}={}", percent_encode(value)));
        }
    }
    parts.push(format!("limit={limit}"));
    parts.push(format!("after={next}"));
    parts.join("&")
}

/// `GET /api/v1/admin/archives?owner=&state=&limit=&after=`: records, no
/// content, each with `owner` and `trashed`; `Link: rel="next"` while
/// more may follow (a page may come back short when few match).
pub fn list(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    let limit = crate::web::paging::limit(&req.query)?;
    let page = listing(app, &caller, &req.query, limit)?;
    let mut list = Vec::with_capacity(page.archives.len());
    for archive in &page.archives {
        let mut value = archive_json_placed(app, archive, &page.rule);
        value["owner"] = json!({
            "id": archive.owner_id,
            "username": page.names.get(&archive.owner_id),
        });
        value["trashed"] = json!(app.archives.trash_of(&archive.id)?.is_some());
        list.push(value);
    }
    let resp = Resp::json(200, &Value::Array(list));
    Ok(match &page.next {
        Some(next) => resp.header(
            "Link",
            format!(
                "</api/v1/admin/archives?{}>; rel=\"next\"",
                next_query(&req.query, limit, next)
            ),
        ),
        None => resp,
    })
}

/// `POST /api/v1/admin/archives/{id}/{retry|verify|cache}`.
pub fn act(app: &App, req: &mut Req, archive_id: &str, action: &str) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let rule = app.off_site_rule();
    match action {
        "retry" => {
            let count = ops::archives::retry_as_admin(app, &caller, archive_id)?;
            Ok(Resp::json(200, &json!({ "retried": count })))
        }
        "cache" => {
            let archive = ops::archives::cache_as_admin(app, &caller, archive_id)?;
            Ok(Resp::json(202, &archive_json_placed(app, &archive, &rule)))
        }
        "verify" => match ops::archives::verify_as_admin(app, &caller, archive_id, 100)? {
            Ok(verification) => Ok(Resp::json(200, &verification_json(&verification))),
            Err(message) => Err(ApiError::new(409, "not_verified", message)),
        },
        _ => Err(ApiError::not_found()),
    }
}

/// A verification's answer: `checked` and `damaged` count part objects on
/// every destination checked; `destinations` says what each one held.
fn verification_json(verification: &Verification) -> Value {
    let destinations: Vec<Value> = verification
        .destinations
        .iter()
        .map(|check| {
            let parts: Vec<Value> = verification
                .damaged
                .iter()
                .filter(|part| part.remote == check.remote)
                .map(|part| {
                    json!({
                        "index": part.index,
                        "problem": part.describe(),
                        "repaired": part.repaired,
                        "repaired_from": part.repaired_from,
                    })
                })
                .collect();
            json!({
                "remote": check.remote,
                "name": check.name,
                "checked": check.parts_checked,
                "downloaded": check.parts_downloaded,
                "damaged": check.parts_damaged,
                "damaged_parts": parts,
                "manifest_problem": check.manifest_problem,
                "manifest_repaired": check.manifest_repaired,
                "unavailable": check.unavailable,
            })
        })
        .collect();
    json!({
        "checked": verification.parts_checked,
        "damaged": verification.parts_damaged(),
        "state": verification.state_after.as_str(),
        "destinations": destinations,
    })
}

/// Words for a state on the admin's list, honest like the owner's pages.
fn state_words(archive: &ArchiveRecord, rule: &OffSiteRule) -> (String, &'static str) {
    match archive.state {
        ArchiveState::Damaged => ("damaged".into(), "state state-damaged"),
        ArchiveState::BackedUp | ArchiveState::Uncached if rule.is_off_site(archive) => (
            crate::web::archives::copies::off_site_words(rule.places(archive)),
            "state state-backed_up",
        ),
        ArchiveState::BackedUp | ArchiveState::Uncached => {
            (rule.main.describe(), "state state-on_box")
        }
        other => (other.as_str().replace('_', " "), "state state-local"),
    }
}

/// `/admin/archives`: every user's archives, filtered.
pub fn page(app: &App, req: &mut Req, caller: &Caller) -> Answer {
    let page = listing(app, caller, &req.query, PAGE_SIZE)?;
    let current = req.query.get("state").cloned().unwrap_or_default();
    let body = html! {
        h1 { "All archives" }
        p { "Every member's archive records. Their contents stay private to each owner." }
        nav.filters aria-label="Filter" {
            @for (value, label) in [("", "All"), ("problem", "Problems"), ("only_here", "Only on this box"), ("damaged", "Damaged")] {
                @if current == value { strong { (label) } } @else { a href={ "/admin/archives?state=" (value) } { (label) } }
                " "
            }
        }
        @if page.archives.is_empty() {
            p.muted { "No archives match." }
        } @else {
            table.cards.admin-archives {
                thead { tr { th { "Name" } th { "Owner" } th { "Size" } th { "State" } th { "Error" } } }
                tbody {
                    @for archive in &page.archives {
                        @let (words, class) = state_words(archive, &page.rule);
                        tr data-archive-id=(archive.id) {
                            td.name { a href={ "/admin/archives/" (archive.id) } { (archive.name) } }
                            td data-label="Owner" { (page.names.get(&archive.owner_id).map(String::as_str).unwrap_or("?")) }
                            td data-label="Size" { (human_size(archive.size)) }
                            td data-label="State" { span class=(class) { (words) } }
                            td data-label="Error" { (archive.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &page.next {
            nav.pager { a rel="next" href={ "/admin/archives?" (next_query(&req.query, PAGE_SIZE, next)) } { "Next page" } }
        }
    };
    let page = Page::new(
        "All archives",
        Some(caller),
        crate::web::layout::Safety::of(app),
    )
    .render(body);
    Ok(Resp::html(page))
}

/// `/admin/archives/{id}`: one record, what to do, and the admin's buttons.
pub fn detail(app: &App, req: &mut Req, caller: &Caller, archive_id: &str) -> Answer {
    require_admin(caller)?;
    let archive = app.archives.administered(caller.user.role, archive_id)?;
    let owner = app
        .accounts
        .user(&archive.owner_id)
        .map(|user| user.username)
        .unwrap_or_default();
    let rule = app.off_site_rule();
    let (words, class) = state_words(&archive, &rule);
    let body = html! {
        h1 { (archive.name) }
        (done_notice(&req.query))
        section.card.summary {
            p { "Owner: " strong { (owner) } }
            p { "State: " span id="state" class=(class) { (words) } }
            @if archive.state == ArchiveState::Damaged {
                p.error id="next-step" { (ops::safety::damaged_next_step(&archive)) }
            }
            dl.facts {
                dt { "Size" } dd { (human_size(archive.size)) }
                dt { "Parts stored" } dd { (archive.parts_remote) " of " (archive.parts_total) }
                dt { "Added" } dd { (local_time(archive.created_at)) }
                @if let Some(error) = &archive.last_error { dt { "Last error" } dd.error { (error) } }
            }
        }
        div.actions {
            (action_form(caller, &archive.id, "retry", "Retry transfers"))
            (action_form(caller, &archive.id, "verify", "Verify the stored copy"))
            @if archive.state == ArchiveState::Uncached {
                (action_form(caller, &archive.id, "cache", "Fetch back"))
            }
        }
        p { a href="/admin/archives?state=problem" { "All problems" } }
    };
    let page = Page::new(
        archive.name.clone(),
        Some(caller),
        crate::web::layout::Safety::of(app),
    )
    .render(body);
    Ok(Resp::html(page))
}

fn action_form(caller: &Caller, archive_id: &str, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/admin/archives/" (archive_id) "/" (action) } {
            (csrf_field(caller))
            button type="submit" { (label) }
        }
    }
}

/// `POST /admin/archives/{id}/{action}` (form): the same acts as [`act`].
pub fn act_post(app: &App, caller: &Caller, archive_id: &str, action: &str) -> Answer {
    require_admin(caller)?;
    let done = match action {
        "retry" => {
            ops::archives::retry_as_admin(app, caller, archive_id)?;
            "admin-retried"
        }
        "cache" => {
            ops::archives::cache_as_admin(app, caller, archive_id)?;
            "cache"
        }
        "verify" => match ops::archives::verify_as_admin(app, caller, archive_id, 100)? {
            Ok(verification) if verification.parts_damaged() == 0 => "admin-verified",
            Ok(_) => "admin-verify-damaged",
            Err(message) => return Err(ApiError::new(409, "not_verified", message)),
        },
        _ => return Err(ApiError::not_found()),
    };
    Ok(Resp::redirect(&format!(
        "/admin/archives/{archive_id}?done={done}"
    )))
}
