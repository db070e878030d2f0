//! The setup page's "Restore from an existing backup": a form for the
//! remote settings and the recovery passphrase, then a progress bar that
//! refreshes itself until every archive is back in the catalog.
//!
//! Reachable without login only while the appliance has no users, while a
//! restore runs or has just finished, or after an interrupted one. Renders
//! what `web::restore::api` hands it; never touches the store itself.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::app::state::App;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{field, Page};
use crate::web::remote::page::settings_from_form;

fn form(error: Option<&str>, form: &HashMap<String, String>) -> Markup {
    let value = |name: &str| field(form, name).to_string();
    let kind = if field(form, "kind") == "dir" {
        "dir"
    } else {
        "s3"
    };
    Page::new("Restore from a backup", None, false).render(html! {
        h1 { "Restore from an existing backup" }
        p { "Your old appliance is lost or broken? Point this one at the bucket (or folder) it backed up to and type the recovery passphrase you wrote down at setup. Users, their passwords, settings and every archive come back; archives are fetched back from the bucket when you open them." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.card method="post" action="/setup/restore" {
            fieldset {
                legend { "Where the backup is" }
                label.check { input type="radio" name="kind" value="s3" checked[kind == "s3"]; " S3-compatible bucket" }
                label.check { input type="radio" name="kind" value="dir" checked[kind == "dir"]; " A folder (a NAS mount or USB disk)" }
            }
            label { "Endpoint" input name="endpoint" value=(value("endpoint")) placeholder="https://s3.eu-west-1.amazonaws.com"; }
            label { "Region" input name="region" value=(value("region")) placeholder="eu-west-1"; }
            label { "Bucket" input name="bucket" value=(value("bucket")); }
            label { "Prefix (folder in the bucket)" input name="prefix" value=(value("prefix")); }
            label.check { input type="checkbox" name="path_style" value="1" checked[form.contains_key("path_style")]; " Path-style addresses (MinIO, Garage)" }
            label { "Access key id" input name="access_key_id" value=(value("access_key_id")) autocomplete="off"; }
            label { "Secret access key" input type="password" name="secret_access_key" autocomplete="off"; }
            label { "Folder (for the folder kind)" input name="path" value=(value("path")); }
            label { "Recovery passphrase" input type="password" name="recovery_passphrase" required autocomplete="off"; }
            label {
                "As it was at (optional) "
                span.muted { "— for a bucket with versioning or Object Lock: a time before the damage, like 2026-12-06T18:30:00Z. Empty: as it is now." }
                input name="as_of" value=(value("as_of")) placeholder="2026-12-06T18:30:00Z" autocomplete="off";
            }
            button type="submit" { "Restore" }
        }
        p { a href="/setup" { "Back: set up a new appliance instead" } }
    })
}

fn progress_page(status: &serde_json::Value) -> Markup {
    let state = status["state"].as_str().unwrap_or("idle");
    let done = status["done"].as_u64().unwrap_or(0);
    let total = status["total"].as_u64().unwrap_or(0);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let running = state == "running";
    let report = &status["report"];
    let damaged = report["damaged"].as_array().cloned().unwrap_or_default();
    Page::new("Restoring", None, false).render(html! {
        @if running { meta http-equiv="refresh" content="1"; }
        h1 { "Restoring from the backup" }
        div.progress.large role="progressbar" aria-valuemin="0" aria-valuemax=(total) aria-valuenow=(done) {
            div.bar data-percent=(percent) {}
        }
        p id="restore-progress" { (done) "/" (total) " archives" }
        @match state {
            "running" => { p { "This page refreshes itself until the restore is finished." } },
            "finished" => {
                p.notice role="status" {
                    "Restored " (report["users"]) " users and " (done) " archives. Log in as before; archives are fetched back from the bucket when you cache them."
                }
                @if !damaged.is_empty() {
                    h2 { "Damaged archives" }
                    ul {
                        @for item in &damaged {
                            li {
                                strong { (item["name"].as_str().filter(|n| !n.is_empty()).unwrap_or(item["archive_id"].as_str().unwrap_or(""))) }
                                ": " (item["reason"].as_str().unwrap_or(""))
                            }
                        }
                    }
                }
                p { a.button href="/login" { "Log in" } }
            },
            _ => {
                p.error role="alert" { (status["error"].as_str().unwrap_or("The restore stopped.")) }
                p { "Run it again with the same settings and passphrase: it continues where it stopped." }
                p { a.button href="/setup/restore?again=1" { "Try again" } }
            },
        }
    })
}

pub fn page(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    let status = super::api::status_json(app)?;
    let state = status["state"].as_str().unwrap_or("idle");
    let again = req.query.contains_key("again");
    if state == "running" || (state != "idle" && !again) {
        return Ok(Resp::html(progress_page(&status)));
    }
    let interrupted = status["interrupted"].as_bool().unwrap_or(false);
    if !app.accounts.setup_needed()? && !interrupted {
        return Ok(Resp::redirect("/login"));
    }
    let error = interrupted.then_some(
        "A restore was interrupted here; start it again with the same settings and passphrase to finish it.",
    );
    Ok(Resp::html(form(error, &HashMap::new())))
}

pub fn post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    crate::web::auth::refuse_cross_site(req)?;
    let fields = req.form()?;
    let settings = settings_from_form(&fields);
    let passphrase = field(&fields, "recovery_passphrase");
    let as_of = field(&fields, "as_of");
    match super::api::start(app, settings, passphrase, as_of, &req.remote_addr) {
        Ok(()) => Ok(Resp::redirect("/setup/restore")),
        Err(err) => {
            let mut resp = Resp::html(form(Some(&err.message), &fields));
            resp.status = err.status;
            resp.headers.extend(err.headers);
            Ok(resp)
        }
    }
}
