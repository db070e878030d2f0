//! The admin page for the remote: where backups go, with a live test.

use std::collections::HashMap;
use std::path::PathBuf;

use maud::html;

use super::layout::{csrf_field, Page};
use super::{field, Resp};
use crate::accounts::Caller;
use crate::remote::RemoteSettings;
use crate::web::auth;
use crate::web::http::ApiError;
use crate::web::App;

pub fn remote_page(
    app: &App,
    caller: &Caller,
    notice: Option<(bool, String)>,
) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    let settings = crate::engine::keys::remote_settings(&app.store, &app.config.data_dir)?;
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
    let page = Page::new("Remote storage", Some(caller)).render(html! {
        h1 { "Remote storage" }
        p { "Backups are encrypted on this appliance before they leave it. Each part goes to the storage below." }
        @if let Some((ok, message)) = &notice {
            @if *ok { p.notice role="status" { (message) } } @else { p.error role="alert" { (message) } }
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
    let saved = crate::engine::keys::remote_settings(&app.store, &app.config.data_dir)?;
    let settings = settings_from_form(form).keep_secret_from(&saved);
    if field(form, "action") == "test" {
        let result = crate::web::api::check_remote(&settings);
        let ok = result["ok"].as_bool().unwrap_or(false);
        let message = result["message"].as_str().unwrap_or_default().to_string();
        return remote_page(app, caller, Some((ok, message)));
    }
    if let Err(err) = crate::remote::open(&settings, &Default::default()) {
        return remote_page(app, caller, Some((false, err.message)));
    }
    crate::web::api::save_remote(app, settings)?;
    remote_page(
        app,
        caller,
        Some((true, "Saved. Waiting backups resume now.".to_string())),
    )
}
