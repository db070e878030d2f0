//! The admin page for the remote: where backups go, with a live test.

use std::collections::HashMap;
use std::path::PathBuf;

use maud::html;

use super::layout::{csrf_field, Page};
use super::{field, Resp};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::remote::RemoteSettings;
use crate::web::auth;
use crate::web::http::ApiError;

pub fn remote_page(
    app: &App,
    caller: &Caller,
    notice: Option<(bool, String)>,
    typed: Option<&RemoteSettings>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let saved = crate::ops::remote::saved(app)?;
    // What is stored now and would be copied by a change of place.
    let stored = app.engine.plan_remote_change(&saved).ok();
    let moving = crate::web::api::move_json(app)?;
    // Fields show what the admin typed when a save or test failed (never
    // the secret), else what is saved.
    let settings = typed.unwrap_or(&saved);
    let (kind, endpoint, region, bucket, prefix, path_style, key_id, dir) = match &settings {
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
    let page = Page::new("Remote storage", Some(caller), app.on_box_only()).render(html! {
        h1 { "Remote storage" }
        p { "Backups are encrypted on this appliance before they leave it. Each part goes to the storage below." }
        @if let Some((ok, message)) = &notice {
            @if *ok { p.notice role="status" { (message) } } @else { p.error role="alert" { (message) } }
        }
        @if !moving.is_null() {
            section.card id="remote-move" {
                h2 { "Moving to the new storage" }
                p role="status" { (moving["message"].as_str().unwrap_or_default()) }
                progress max=(moving["parts_total"].as_u64().unwrap_or(0).max(1)) value=(moving["parts_done"].as_u64().unwrap_or(0)) {}
                p.muted { "Copying from " (moving["from"].as_str().unwrap_or_default()) ". It stays in use for what has not arrived yet, and is released only when every part is on the new storage and checked." }
            }
        }
        form.card method="post" action="/admin/remote" {
            (csrf_field(caller))
            fieldset {
                legend { "Kind" }
                label.check { input type="radio" name="kind" value="s3" checked[kind == "s3"]; " S3-compatible bucket (AWS, Backblaze B2, Wasabi, MinIO, Garage…)" }
                label.check { input type="radio" name="kind" value="dir" checked[kind == "dir"]; " A folder (a NAS mount or USB disk)" }
            }
            label { "Endpoint" input name="endpoint" value=(endpoint) placeholder="https://s3.eu-west-1.amazonaws.com"; }
            label { "Region" input name="region" value=(region) placeholder="eu-west-1"; }
            label { "Bucket" input name="bucket" value=(bucket); }
            label { "Prefix (folder in the bucket)" input name="prefix" value=(prefix); }
            label.check { input type="checkbox" name="path_style" value="1" checked[path_style]; " Path-style addresses (MinIO, Garage)" }
            label { "Access key id" input name="access_key_id" value=(key_id) autocomplete="off"; }
            label { "Secret access key " span.muted { "(leave empty to keep the saved one)" } input type="password" name="secret_access_key" autocomplete="off"; }
            label { "Folder (for the folder kind)" input name="path" value=(dir); }
            @if let Some(stored) = stored.as_ref().filter(|plan| plan.parts > 0) {
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
    });
    let mut resp = Resp::html(page);
    if matches!(notice, Some((false, _))) {
        resp.status = 400;
    }
    Ok(resp)
}

pub(super) fn settings_from_form(form: &HashMap<String, String>) -> RemoteSettings {
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
    let settings = settings_from_form(form).keep_secret_from(&saved);
    let failed =
        |message: String| remote_page(app, caller, Some((false, message)), Some(&settings));
    if field(form, "action") == "test" {
        let (ok, message) = match crate::ops::remote::check(&settings) {
            Ok(message) => (true, message),
            Err(message) => (false, message),
        };
        return remote_page(app, caller, Some((ok, message)), Some(&settings));
    }
    let plan = match crate::ops::remote::plan(app, &settings) {
        Ok(plan) => plan,
        Err(err) => return failed(err.to_string()),
    };
    if plan.destination.moves() && !form.contains_key("confirm_move") {
        return failed(format!(
            "{} Tick “Copy my backups to the new storage” and save again to go ahead; nothing was changed yet.",
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
