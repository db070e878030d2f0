//! Confirming the recovery passphrase after setup (`/setup/passphrase`):
//! while a generated passphrase was neither typed back nor said to be
//! stored elsewhere, the admin's home page leads here and every admin
//! page carries a reminder. Typing it in full is checked against the
//! keys (`engine::keys::passphrase_opens`); "I stored it elsewhere" is
//! recorded as such. Thin adapters over `ops::accounts`.

use std::collections::HashMap;

use maud::html;

use crate::accounts::Caller;
use crate::app::state::App;
use crate::engine::keys;
use crate::ops;
use crate::web::auth::require_admin;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{csrf_field, Page};

type Answer = Result<Resp, ApiError>;

/// The home page, except for an admin whose passphrase is still
/// unconfirmed: they are led to confirm it first (setup cannot be left
/// before, whichever link they follow home).
pub fn home_unless_unconfirmed(app: &App, req: &mut Req, caller: &Caller) -> Answer {
    if caller.is_admin() && keys::passphrase_unconfirmed(&app.store)? {
        return Ok(Resp::redirect("/setup/passphrase"));
    }
    crate::web::archives::page::home(app, req, caller)
}

/// The page: type the passphrase, or say it is stored elsewhere.
pub fn page(app: &App, caller: &Caller, error: Option<&str>) -> Answer {
    require_admin(caller)?;
    if !keys::passphrase_unconfirmed(&app.store)? {
        return Ok(Resp::redirect("/admin"));
    }
    // No navigation: setup is not finished until this is answered.
    let page = Page::new("Confirm the recovery passphrase", None, false).render(html! {
        h1 { "Confirm the recovery passphrase" }
        p {
            "At setup this box showed a recovery passphrase once. Without it, nothing can be restored if this box is lost or broken: "
            "the backups are encrypted with it, and the box keeps no copy it could show again."
        }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.card method="post" action="/setup/passphrase" {
            (csrf_field(caller))
            label { "Type the whole passphrase (like ABCD-EFGH-…)"
                input name="passphrase" autocomplete="off" autocapitalize="characters" spellcheck="false" required;
            }
            button type="submit" { "Check and confirm" }
        }
        form.card method="post" action="/setup/passphrase/elsewhere" data-confirm="Are you sure the passphrase is stored somewhere safe (a password manager, on paper)? Without it the backups cannot be restored." {
            (csrf_field(caller))
            p { "Stored it in a password manager or on paper and do not want to type it now?" }
            button type="submit" { "I stored it elsewhere" }
        }
    });
    Ok(Resp::html(page))
}

/// `POST /setup/passphrase`: checks the typed passphrase.
pub fn confirm_post(
    app: &App,
    _req: &mut Req,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Answer {
    require_admin(caller)?;
    let typed = form.get("passphrase").map(String::as_str).unwrap_or("");
    if ops::accounts::confirm_passphrase(app, caller, typed)? {
        return Ok(Resp::redirect("/?done=passphrase-kept"));
    }
    let mut resp = page(
        app,
        caller,
        Some("That is not the recovery passphrase. Look again: every character counts, the dashes too."),
    )?;
    resp.status = 400;
    Ok(resp)
}

/// `POST /setup/passphrase/elsewhere`: recorded, the reminder ends.
pub fn elsewhere_post(app: &App, caller: &Caller) -> Answer {
    require_admin(caller)?;
    ops::accounts::passphrase_stored_elsewhere(app, caller)?;
    Ok(Resp::redirect("/?done=passphrase-elsewhere"))
}
