//! The admin page for the remote: where backups go, with a live test.

use std::collections::HashMap;
use std::path::PathBuf;

use maud::html;

use crate::accounts::Caller;
use crate::app::state::App;
use crate::remote::RemoteSettings;
use crate::web::auth;
use crate::web::http::{ApiError, Resp};
use crate::web::layout::{csrf_field, field, Page};

pub fn remote_page(
    app: &App,
    caller: &Caller,
    notice: Option<(bool, String)>,
    typed: Option<&RemoteSettings>,
) -> Result<Resp, ApiError> {
    remote_page_with(app, caller, notice, typed, None)
}

/// The page, with the Destinations section's add form as `add` says
/// (`super::destinations`).
pub fn remote_page_with(
    app: &App,
    caller: &Caller,
    notice: Option<(bool, String)>,
    typed: Option<&RemoteSettings>,
    add: Option<&super::destinations::AddForm>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let saved = crate::ops::remote::saved(app)?;
    // What is stored now and would be copied by a change of place.
    let stored = app.engine.plan_remote_change(&saved).ok();
    let moving = super::api::move_json(app)?;
    // Fields show what the admin typed when a save or test failed (never
    // the secret), else what is saved.
    let settings = typed.unwrap_or(&saved);
    let fields = FormFields::of(settings);
    let secret = match (settings, &saved) {
        _ if app.typed_secrets.is_kept(&caller.user.id, &fields.key_id) => SecretLabel::Typed,
        (
            RemoteSettings::S3 { access_key_id, .. },
            RemoteSettings::S3 {
                access_key_id: saved_id,
                secret_access_key: saved_secret,
                ..
            },
        ) if access_key_id == saved_id && !saved_secret.is_empty() => SecretLabel::Saved,
        _ => SecretLabel::Needed,
    };
    let destinations = super::destinations::section(app, caller, add)?;
    let page = Page::new("Remote storage", Some(caller), crate::web::layout::Safety::of(app)).render(html! {
        h1 { "Remote storage" }
        p { "Backups are encrypted on this appliance before they leave it. Each part goes to the storage below." }
        @if let Some((ok, message)) = &notice {
            @if *ok { p.notice role="status" { (message) } } @else { p.error role="alert" { (message) } }
        }
        (move_card(&moving))
        h2 { "Main destination" }
        (remote_form(caller, &fields, secret, stored.as_ref()))
        (destinations)
    });
    let mut resp = Resp::html(page);
    if matches!(notice, Some((false, _))) {
        resp.status = 400;
    }
    Ok(resp)
}

/// What the form's fields show, taken from one settings value.
pub(super) struct FormFields {
    pub(super) kind: &'static str,
    pub(super) endpoint: String,
    pub(super) region: String,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) path_style: bool,
    pub(super) key_id: String,
    pub(super) dir: String,
    pub(super) lock_mode: String,
    pub(super) lock_days: String,
}

impl FormFields {
    pub(super) fn of(settings: &RemoteSettings) -> FormFields {
        let (lock_mode, lock_days) = match settings {
            RemoteSettings::S3 {
                object_lock: Some(lock),
                ..
            } => (lock.mode.clone(), lock.days.to_string()),
            _ => (String::new(), "30".to_string()),
        };
        let (kind, endpoint, region, bucket, prefix, path_style, key_id, dir) = match settings {
            RemoteSettings::S3 {
                endpoint,
                region,
                bucket,
                prefix,
                path_style,
                access_key_id,
                ..
            } => (
                "s3",
                endpoint.clone(),
                region.clone(),
                bucket.clone(),
                prefix.clone(),
                *path_style,
                access_key_id.clone(),
                String::new(),
            ),
            RemoteSettings::Dir { path } => (
                "dir",
                String::new(),
                String::new(),
                String::new(),
                "piarchive".to_string(),
                false,
                String::new(),
                path.display().to_string(),
            ),
        };
        FormFields {
            kind,
            endpoint,
            region,
            bucket,
            prefix,
            path_style,
            key_id,
            dir,
            lock_mode,
            lock_days,
        }
    }
}

/// The progress of a move to new storage, when one is under way.
fn move_card(moving: &serde_json::Value) -> maud::Markup {
    html! {
        @if !moving.is_null() {
            section.card id="remote-move" {
                h2 { "Moving to the new storage" }
                p role="status" { (moving["message"].as_str().unwrap_or_default()) }
                progress max=(moving["parts_total"].as_u64().unwrap_or(0).max(1)) value=(moving["parts_done"].as_u64().unwrap_or(0)) {}
                p.muted { "Copying from " (moving["from"].as_str().unwrap_or_default()) ". It stays in use for what has not arrived yet, and is released only when every part is on the new storage and checked." }
            }
        }
    }
}

/// What the secret field's label can truthfully say.
#[derive(Clone, Copy)]
pub(super) enum SecretLabel {
    /// The admin typed one whose save or test did not go through: kept.
    Typed,
    /// One is saved for this access key id.
    Saved,
    /// None is known: it must be typed.
    Needed,
}

/// The settings form: kind, S3 fields, folder, Object Lock, save and test.
fn remote_form(
    caller: &Caller,
    fields: &FormFields,
    secret: SecretLabel,
    stored: Option<&crate::engine::remote_move::MovePlan>,
) -> maud::Markup {
    html! {
        form.card method="post" action="/admin/remote" {
            (csrf_field(caller))
            (settings_fields(fields, secret, ""))
            @if let Some(stored) = stored.filter(|plan| plan.parts > 0) {
                p {
                    "Saving a new place copies the " (stored.archives) " "
                    (if stored.archives == 1 { "archive" } else { "archives" })
                    " (" (crate::units::human_size(stored.bytes)) ") stored in " (stored.from)
                    " there and checks every part; until then they stay where they are."
                }
                label.check { input type="checkbox" name="confirm_move" value="1"; " Copy my backups to the new storage" }
            }
            button type="submit" name="action" value="save" { "Save" }
            " "
            button type="submit" name="action" value="test" { "Test" }
        }
    }
}

/// The fields of remote settings: kind, S3 fields, folder, Object Lock
/// (the main remote's form and the add-a-destination form).
///
/// `id_prefix` keeps the ids of two such forms on one page apart (`""` for
/// the main remote's, `"add-"` for the add form's).
pub(super) fn settings_fields(
    fields: &FormFields,
    secret: SecretLabel,
    id_prefix: &str,
) -> maud::Markup {
    html! {
        fieldset {
            legend { "Kind" }
            label.check { input type="radio" name="kind" value="s3" checked[fields.kind == "s3"]; " S3-compatible bucket (AWS, Backblaze B2, Wasabi, MinIO, Garage…)" }
            label.check { input type="radio" name="kind" value="dir" checked[fields.kind == "dir"]; " A folder (a NAS mount or USB disk)" }
        }
        label { "Endpoint" input name="endpoint" value=(fields.endpoint) placeholder="https://s3.eu-west-1.amazonaws.com"; }
        label { "Region" input name="region" value=(fields.region) placeholder="eu-west-1"; }
        label { "Bucket" input name="bucket" value=(fields.bucket); }
        label { "Prefix (folder in the bucket)" input name="prefix" value=(fields.prefix); }
        label.check { input type="checkbox" name="path_style" value="1" checked[fields.path_style]; " Path-style addresses (MinIO, Garage)" }
        label { "Access key id" input name="access_key_id" value=(fields.key_id) autocomplete="off"; }
        label {
            "Secret access key "
            span.muted id={ (id_prefix) "secret-kept" } {
                @match secret {
                    SecretLabel::Typed => "(the one you typed is kept for 15 minutes, not saved: leave this empty to use it)",
                    SecretLabel::Saved => "(leave empty to keep the saved one)",
                    SecretLabel::Needed => "(needed for an S3 bucket)",
                }
            }
            input type="password" name="secret_access_key" autocomplete="off";
        }
        label { "Folder (for the folder kind)" input name="path" value=(fields.dir); }
        (object_lock_fields(&fields.lock_mode, &fields.lock_days, id_prefix))
    }
}

/// Object Lock in plain words: what each mode means, which to choose.
fn object_lock_fields(mode: &str, days: &str, id_prefix: &str) -> maud::Markup {
    html! {
        fieldset id={ (id_prefix) "object-lock" } {
            legend { "Object Lock (protection from deletion)" }
            p.muted {
                "With Object Lock the bucket itself refuses to delete or change a backup for the "
                "number of days below, even when asked with this box's own keys. If the box is "
                "stolen or taken over, the copy in the bucket survives. piarchive keeps extending "
                "the lock of everything still in use; what you delete is removed once its lock ends. "
                "The bucket must have been created with Object Lock turned on."
            }
            label.check { input type="radio" name="object_lock_mode" value="" checked[mode.is_empty()]; " Off" }
            label.check {
                input type="radio" name="object_lock_mode" value="GOVERNANCE" checked[mode == "GOVERNANCE"];
                " Governance (recommended): the owner of the storage account can still lift the lock "
                "in an emergency, with a special permission that this box's keys should not have."
            }
            label.check {
                input type="radio" name="object_lock_mode" value="COMPLIANCE" checked[mode == "COMPLIANCE"];
                " Compliance: nobody can lift the lock, not even the account owner or the storage "
                "company, until the days have passed. You pay for the storage until then."
            }
            label { "Days locked (1 to 36500)" input name="object_lock_days" inputmode="numeric" value=(days); }
        }
    }
}

pub fn settings_from_form(form: &HashMap<String, String>) -> RemoteSettings {
    if field(form, "kind") == "dir" {
        RemoteSettings::Dir {
            path: PathBuf::from(field(form, "path").trim()),
        }
    } else {
        RemoteSettings::S3 {
            endpoint: field(form, "endpoint").trim().to_string(),
            region: field(form, "region").trim().to_string(),
            bucket: field(form, "bucket").trim().to_string(),
            prefix: field(form, "prefix").trim().to_string(),
            path_style: form.contains_key("path_style"),
            access_key_id: field(form, "access_key_id").trim().to_string(),
            secret_access_key: field(form, "secret_access_key").to_string(),
            object_lock: match field(form, "object_lock_mode").trim() {
                "" => None,
                mode => Some(crate::remote::ObjectLock {
                    mode: mode.to_string(),
                    // Not a number: -1, which the check refuses with a sentence.
                    days: field(form, "object_lock_days").trim().parse().unwrap_or(-1),
                }),
            },
        }
    }
}

pub fn remote_post(
    app: &App,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let saved = crate::ops::remote::saved(app)?;
    let settings = app
        .typed_secrets
        .fill(&caller.user.id, settings_from_form(form))
        .keep_secret_from(&saved);
    // Whatever happens next short of a save, the typed secret is kept for
    // the next try (in memory, never sent back).
    app.typed_secrets.keep(&caller.user.id, &settings);
    let failed = |message: String| {
        remote_page(
            app,
            caller,
            Some((false, format!("{message} Nothing was saved."))),
            Some(&settings),
        )
    };
    if field(form, "action") == "test" {
        let (ok, message) = match crate::ops::remote::check(&settings) {
            Ok(message) => (
                true,
                format!("{message} Nothing is saved until you press Save."),
            ),
            Err(message) => (
                false,
                format!("The test failed: {message} Nothing was saved."),
            ),
        };
        return remote_page(app, caller, Some((ok, message)), Some(&settings));
    }
    let plan = match crate::ops::remote::plan(app, &settings) {
        Ok(plan) => plan,
        Err(err) => return failed(err.to_string()),
    };
    if plan.destination.moves() && !form.contains_key("confirm_move") {
        return failed(format!(
            "{} Tick “Copy my backups to the new storage” and save again to go ahead.",
            plan.message()
        ));
    }
    match crate::ops::remote::save(app, settings.clone()) {
        Ok((_, plan)) => remote_page(
            app,
            caller,
            Some((true, format!("Saved. {}", plan.message()))),
            None,
        ),
        Err(err) => failed(ApiError::from(err).message),
    }
}
