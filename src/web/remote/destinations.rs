//! The Remote page's Destinations section (issue 24): every destination
//! with where it keeps the backups and how it is doing, the "Add a
//! destination" form (test, then a confirmation of what will be copied,
//! then the add) and the removal with its confirmation page. Each act goes
//! through `ops::destinations`, as the JSON API's do.

use std::collections::HashMap;

use maud::{html, Markup};

use super::page::{remote_page_with, settings_fields, settings_from_form, FormFields, SecretLabel};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::engine::destinations::{AddPlan, Destination, MAIN};
use crate::ops;
use crate::remote::RemoteSettings;
use crate::web::auth;
use crate::web::http::{ApiError, Resp};
use crate::web::layout::{csrf_field, field, Page};

/// What the add form shows after a post: what was typed (never the
/// secret), and either a sentence (a test, a refusal) or the confirmation.
pub struct AddForm {
    pub name: String,
    pub settings: RemoteSettings,
    /// `(ok, sentence)` of a test or a refusal.
    pub notice: Option<(bool, String)>,
    /// The plan to confirm before the destination is added.
    pub plan: Option<AddPlan>,
}

/// Where a destination is, for people: "s3://bucket/prefix at ENDPOINT",
/// "folder /mnt/usb/piarchive" (`engine::destinations::describe`).
pub fn place_words(settings: &RemoteSettings) -> String {
    crate::engine::destinations::describe(settings)
}

/// The Destinations section: each destination, then the add form.
pub fn section(app: &App, caller: &Caller, add: Option<&AddForm>) -> Result<Markup, ApiError> {
    let destinations = ops::destinations::destinations(app)?;
    Ok(html! {
        section.card id="destinations" {
            h2 { "Destinations" }
            p.muted {
                "Every destination keeps a whole copy of every archive, so the backups can be "
                "restored from any one of them alone. An archive counts as backed up only once "
                "every destination has all of it. Three copies, on two kinds of storage, one of "
                "them off-site, is the usual advice."
            }
            ul.destinations {
                @for destination in &destinations {
                    (destination_item(app, destination))
                }
            }
        }
        (add_section(caller, add))
    })
}

/// One destination: its name, kind and place, placement and state.
fn destination_item(app: &App, destination: &Destination) -> Markup {
    let placement = app
        .placement
        .of_destination(&destination.id, &destination.settings);
    let place = place_words(&destination.settings);
    let problem = app.engine.destination_health().error(&destination.id);
    let progress = match destination.id == MAIN {
        true => None,
        false => app.copy_progress(&destination.id).ok(),
    };
    html! {
        li.destination data-destination-id=(destination.id) {
            strong.name { (destination.name) }
            @if destination.id == MAIN { " " span.muted { "(main)" } }
            // The place, unless the name says it already (main's default).
            @if destination.name != place {
                br;
                span.muted { (place) }
            }
            br;
            span.placement data-placement=(placement.as_str()) { "Where: " (placement.describe()) "." }
            " "
            @match &problem {
                Some(error) => span.error.health role="status" { "Cannot be reached: " (error) },
                None => span.health { "Working." },
            }
            @if let Some((complete, archives)) = progress {
                br;
                span.progress-words { (copied_words(complete, archives)) }
            }
            @if destination.id != MAIN {
                " "
                a.button.secondary href={ "/admin/remotes/" (destination.id) "/remove" } {
                    "Remove…"
                }
            }
        }
    }
}

/// How far a copy destination has come: "12 of 40 archives copied
/// there.", "Every archive is there." when complete.
pub fn copied_words(complete: usize, archives: usize) -> String {
    match (complete, archives) {
        (_, 0) => "Nothing to copy there yet.".to_string(),
        (complete, archives) if complete >= archives => match archives {
            1 => "The archive is there.".to_string(),
            _ => format!("All {archives} archives are there."),
        },
        (complete, 1) => format!("{complete} of 1 archive copied there."),
        (complete, archives) => format!("{complete} of {archives} archives copied there."),
    }
}

/// The add form, or its confirmation step.
fn add_section(caller: &Caller, add: Option<&AddForm>) -> Markup {
    let empty = RemoteSettings::S3 {
        endpoint: String::new(),
        region: String::new(),
        bucket: String::new(),
        prefix: "piarchive".to_string(),
        path_style: false,
        access_key_id: String::new(),
        secret_access_key: String::new(),
        object_lock: None,
    };
    let settings = add.map_or(&empty, |add| &add.settings);
    let fields = FormFields::of(settings);
    let name = add.map_or("", |add| add.name.as_str());
    html! {
        section.card id="add-destination" {
            h2 { "Add a destination" }
            @if let Some((ok, message)) = add.and_then(|add| add.notice.as_ref()) {
                @if *ok { p.notice role="status" { (message) } } @else { p.error role="alert" { (message) } }
            }
            @if let Some(plan) = add.and_then(|add| add.plan.as_ref()) {
                form id="confirm-destination" method="post" action="/admin/remotes" {
                    (csrf_field(caller))
                    (hidden_fields(name, &fields))
                    p role="status" id="destination-plan" { (plan.message(name)) }
                    p.muted {
                        "Every part is sealed on this box and sent as it is: the destination sees only "
                        "encrypted data. Other destinations are not held up meanwhile."
                    }
                    // Focused, so the page opens at the question.
                    button type="submit" name="action" value="add" autofocus { "Add " (name) }
                    " "
                    a.button.secondary href="/admin/remote" { "Cancel" }
                }
            } @else {
                form method="post" action="/admin/remotes" {
                    (csrf_field(caller))
                    label { "Name (what you call it, e.g. “Grandpa's NAS”)" input name="name" value=(name) maxlength="100"; }
                    (settings_fields(&fields, SecretLabel::Needed, "add-"))
                    button type="submit" name="action" value="plan" { "Continue" }
                    " "
                    button type="submit" name="action" value="test" { "Test" }
                }
            }
        }
    }
}

/// The typed settings as hidden fields for the confirmation step; the
/// secret stays on the server (`ops::remote::TypedSecrets`).
fn hidden_fields(name: &str, fields: &FormFields) -> Markup {
    html! {
        input type="hidden" name="name" value=(name);
        input type="hidden" name="kind" value=(fields.kind);
        input type="hidden" name="endpoint" value=(fields.endpoint);
        input type="hidden" name="region" value=(fields.region);
        input type="hidden" name="bucket" value=(fields.bucket);
        input type="hidden" name="prefix" value=(fields.prefix);
        @if fields.path_style { input type="hidden" name="path_style" value="1"; }
        input type="hidden" name="access_key_id" value=(fields.key_id);
        input type="hidden" name="path" value=(fields.dir);
        input type="hidden" name="object_lock_mode" value=(fields.lock_mode);
        input type="hidden" name="object_lock_days" value=(fields.lock_days);
    }
}

/// The add form's post: `test` (a live check), `plan` (the confirmation
/// of what will be copied) or `add` (after the confirmation).
pub fn add_post(
    app: &App,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let name = field(form, "name").trim().to_string();
    let settings = app
        .typed_secrets
        .fill(&caller.user.id, settings_from_form(form));
    // Kept in memory for the next step, never sent back.
    app.typed_secrets.keep(&caller.user.id, &settings);
    let again = |notice: Option<(bool, String)>, plan: Option<AddPlan>| {
        let add = AddForm {
            name: name.clone(),
            settings: settings.clone(),
            notice,
            plan,
        };
        remote_page_with(app, caller, None, None, Some(&add))
    };
    match field(form, "action") {
        "test" => {
            let notice = match ops::remote::check(&settings) {
                Ok(message) => (true, format!("{message} Nothing is added until you continue.")),
                Err(message) => (false, format!("The test failed: {message} Nothing was added.")),
            };
            again(Some(notice), None)
        }
        "add" => match ops::destinations::add_destination(app, caller, &name, settings.clone()) {
            Ok((destination, plan)) => {
                app.typed_secrets.forget();
                let message = format!(
                    "Added {}. {} copied there now; the other destinations are not held up.",
                    destination.name,
                    match plan.archives {
                        0 => "Nothing is stored yet, so nothing is".to_string(),
                        1 => "The 1 archive already backed up is being".to_string(),
                        count => format!("The {count} archives already backed up are being"),
                    }
                );
                remote_page_with(app, caller, Some((true, message)), None, None)
            }
            Err(err) => {
                let message = format!("{} Nothing was added.", ApiError::from(err).message);
                refused(again(Some((false, message)), None))
            }
        },
        _ if name.is_empty() => refused(again(
            Some((false, "Give the destination a name first (what you call it, e.g. “Grandpa's NAS”). Nothing was added.".to_string())),
            None,
        )),
        _ => match ops::destinations::plan_destination(app, &settings) {
            Ok(plan) => again(None, Some(plan)),
            Err(err) => {
                let message = format!("{} Nothing was added.", ApiError::from(err).message);
                refused(again(Some((false, message)), None))
            }
        },
    }
}

/// A page that says why something was refused answers 400.
fn refused(page: Result<Resp, ApiError>) -> Result<Resp, ApiError> {
    page.map(|mut resp| {
        resp.status = 400;
        resp
    })
}

/// What removing a destination did, for people.
pub fn removed_message(removed: &Destination) -> String {
    format!(
        "Removed {} ({}): nothing more is copied there, and what is stored there was left as it is.",
        removed.name,
        place_words(&removed.settings)
    )
}

/// The confirmation before a destination is removed.
pub fn remove_page(app: &App, caller: &Caller, id: &str) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let destination = ops::destinations::destinations(app)?
        .into_iter()
        .find(|destination| destination.id == id && destination.id != MAIN)
        .ok_or_else(ApiError::not_found)?;
    let page = Page::new(
        format!("Remove {}", destination.name),
        Some(caller),
        crate::web::layout::Safety::of(app),
    )
    .render(html! {
        h1 { "Remove " (destination.name) "?" }
        section.card {
            p {
                "Archives will no longer be copied to " (destination.name) " ("
                (place_words(&destination.settings)) "). What is stored there is left as it is: "
                "nothing there is deleted, and it can still be recovered from. "
                "The other destinations keep their copies."
            }
            form method="post" action={ "/admin/remotes/" (destination.id) "/remove" } {
                (csrf_field(caller))
                button.danger type="submit" { "Remove " (destination.name) }
                " "
                a.button.secondary href="/admin/remote" { "Cancel" }
            }
        }
    });
    Ok(Resp::html(page))
}

pub fn remove_post(app: &App, caller: &Caller, id: &str) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let removed = ops::destinations::remove_destination(app, caller, id)?;
    remote_page_with(
        app,
        caller,
        Some((true, removed_message(&removed))),
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_far_a_copy_has_come_in_words() {
        let cases = [
            (0, 0, "Nothing to copy there yet."),
            (0, 1, "0 of 1 archive copied there."),
            (1, 1, "The archive is there."),
            (12, 40, "12 of 40 archives copied there."),
            (40, 40, "All 40 archives are there."),
        ];
        for (complete, archives, expected) in cases {
            assert_eq!(copied_words(complete, archives), expected);
        }
    }

    #[test]
    fn places_and_removal_in_words() {
        let s3 = RemoteSettings::S3 {
            endpoint: "https://s3.example".into(),
            region: "eu".into(),
            bucket: "family".into(),
            prefix: String::new(),
            path_style: false,
            access_key_id: "AKIA".into(),
            secret_access_key: "secret".into(),
            object_lock: None,
        };
        assert_eq!(place_words(&s3), "s3://family at https://s3.example");
        let usb = RemoteSettings::Dir {
            path: "/media/usb/piarchive".into(),
        };
        assert_eq!(place_words(&usb), "folder /media/usb/piarchive");
        let removed = Destination {
            id: "d_1".into(),
            name: "USB".into(),
            settings: usb,
        };
        assert_eq!(
            removed_message(&removed),
            "Removed USB (folder /media/usb/piarchive): nothing more is copied there, and what is stored there was left as it is."
        );
    }
}
