//! Setup, login, registration and the account page (password, API tokens,
//! the caller's own notification channels).

use std::collections::HashMap;

use maud::{html, Markup};

use crate::accounts::Caller;
use crate::app::state::App;
use crate::engine::keys;
use crate::ops;
use crate::settings::Settings;
use crate::web::auth;
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{csrf_field, field, full_time, Page};

fn credentials_form(
    action: &str,
    button: &str,
    username: &str,
    new_password: bool,
    next: Option<&str>,
) -> Markup {
    html! {
        form.card method="post" action=(action) {
            @if let Some(next) = next { input type="hidden" name="next" value=(next); }
            label { "Username" input name="username" value=(username) required autocomplete="username" autofocus; }
            label {
                "Password"
                input type="password" name="password" required minlength="8"
                    autocomplete=(if new_password { "new-password" } else { "current-password" });
            }
            button type="submit" { (button) }
        }
    }
}

fn with_error(page: Markup, status: u16) -> Resp {
    let mut resp = Resp::html(page);
    resp.status = status;
    resp
}

fn setup_form(error: Option<&str>, username: &str, (fingerprint, by_name): &Facts) -> Markup {
    Page::new("Set up", None, false).render(html! {
        h1 { "Welcome to piarchive" }
        p { "Create the administrator account. There is no default password: this account is the only way in." }
        @if let Some(url) = by_name { p { "On your network this appliance is at " a href=(url) { (url) } "." } }
        @if let Some(fingerprint) = fingerprint {
            p.muted { "Over HTTPS, your browser should show this certificate fingerprint (SHA-256): " code.fingerprint { (fingerprint) } }
        }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.card method="post" action="/setup" {
            label { "Username" input name="username" value=(username) required autocomplete="username" autofocus; }
            label { "Password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
            fieldset.passphrase {
                legend { "Recovery passphrase" }
                p.muted { "It unlocks your backups if this box is ever lost. Leave both fields empty and a strong one is made for you (recommended)." }
                label {
                    "Your own passphrase " span.muted { "(optional, at least 12 characters)" }
                    input type="password" name="recovery_passphrase" minlength="12" autocomplete="off";
                }
                label {
                    "The same passphrase again"
                    input type="password" name="recovery_passphrase_again" minlength="12" autocomplete="off";
                }
            }
            button type="submit" { "Create admin account" }
        }
        div.card {
            h2 { "Restore from an existing backup" }
            p { "Replacing a lost or broken appliance? Bring back every user, setting and archive from its bucket with the recovery passphrase." }
            p { a.button href="/setup/restore" { "Restore from an existing backup" } }
        }
    })
}

/// The certificate fingerprint and, while mDNS announces it, the address
/// by name (`https://piarchive.local`).
/// The certificate's fingerprint (none without an HTTPS listener: no
/// certificate is served) and the address on the network.
type Facts = (Option<String>, Option<String>);

fn fingerprint(app: &App) -> Facts {
    (
        app.https_addr
            .get()
            .map(|_| app.tls.info().fingerprint_sha256),
        app.mdns.get().and_then(|mdns| mdns.url()),
    )
}

/// The generated passphrase, shown once: copy, download and print it, then
/// type its last two groups back before continuing (`setup.js`).
fn passphrase_page(passphrase: &str, csrf: &str) -> Markup {
    let tail: Vec<&str> = passphrase.rsplit('-').take(2).collect();
    let tail = format!("{}-{}", tail[1], tail[0]);
    Page::new("Your recovery passphrase", None, false)
        .script("/static/setup.js")
        .render(html! {
            h1 { "Your recovery passphrase" }
            div.card.keep {
                p { strong { "Keep a copy now, away from this box: on paper, or in a password manager." } }
                p { "It is shown only this once. Without it, your backups cannot be read if this box is lost or broken." }
                pre.secret id="recovery-passphrase" { (passphrase) }
                div.actions {
                    button type="button" id="copy-passphrase" { "Copy" }
                    button type="button" id="download-passphrase" { "Download (.txt)" }
                    button type="button" id="print-passphrase" { "Print" }
                }
                p.notice id="copy-status" role="status" hidden {}
            }
            form.card id="confirm-passphrase" action="/account/passphrase-typed-back" method="post" data-expected=(tail) {
                input type="hidden" name="csrf_token" value=(csrf);
                label {
                    "To check you have it, type its last two groups (" span.muted { "like ABCD-EFGH" } ")"
                    input id="passphrase-check" autocomplete="off" autocapitalize="characters" spellcheck="false" required;
                }
                p.error id="passphrase-mismatch" role="alert" hidden { "That does not match the end of the passphrase above. Look again: every character counts." }
                button type="submit" id="passphrase-continue" { "I have kept it — continue" }
            }
        })
}

pub fn setup_page(app: &App, _req: &mut Req) -> Result<Resp, ApiError> {
    if !app.accounts.setup_needed()? {
        return Ok(Resp::redirect("/login"));
    }
    Ok(Resp::html(setup_form(None, "", &fingerprint(app))))
}

pub fn setup_post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    auth::refuse_cross_site(req)?;
    let form = req.form()?;
    let (username, password) = (field(&form, "username"), field(&form, "password"));
    let given = Some(field(&form, "recovery_passphrase").trim()).filter(|p| !p.is_empty());
    let again = field(&form, "recovery_passphrase_again").trim();
    if given.is_some_and(|p| p != again) {
        return Ok(with_error(
            setup_form(
                Some("The two recovery passphrases differ. Type the same one twice, or leave both empty to get a generated one."),
                username,
                &fingerprint(app),
            ),
            400,
        ));
    }
    if given.is_some_and(|p| p.chars().count() < 12) {
        return Ok(with_error(
            setup_form(
                Some("The recovery passphrase must have at least 12 characters; leave it empty to get a generated one."),
                username,
                &fingerprint(app),
            ),
            400,
        ));
    }
    let check = keys::PassphraseCheck::EnteredTwice;
    match ops::accounts::setup(app, username, password, given, check) {
        Ok(passphrase) => {
            let (signed_in, csrf) = sign_in_with_csrf(app, req, username, password, "/")?;
            match passphrase.filter(|_| given.is_none()) {
                Some(passphrase) => {
                    let mut resp = Resp::html(passphrase_page(&passphrase, &csrf));
                    resp.headers.extend(
                        signed_in
                            .headers
                            .into_iter()
                            .filter(|(name, _)| name == "Set-Cookie"),
                    );
                    Ok(resp)
                }
                None => Ok(signed_in),
            }
        }
        Err(ops::Error::Account(err)) => {
            let err = ApiError::from(err);
            Ok(with_error(
                setup_form(Some(&err.message), username, &fingerprint(app)),
                err.status,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// Where the login goes back to (`next`, a path on this site only) and
/// whether it came from a session that ended.
struct Return<'a> {
    next: Option<&'a str>,
    ended: bool,
}

fn login_form(
    error: Option<&str>,
    username: &str,
    registration_open: bool,
    back: &Return,
) -> Markup {
    Page::new("Log in", None, false).render(html! {
        h1 { "Log in" }
        @if back.ended && error.is_none() {
            p.notice role="status" id="session-ended" { "Your session ended; sign in again." @if back.next.is_some() { " You will be taken back to the page you were on." } }
        }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        (credentials_form("/login", "Log in", username, false, back.next))
        p { "Forgot your password? Ask your admin: they can set a new one for you." }
        @if registration_open {
            p { "No account yet? " a href="/register" { "Register" } }
        }
    })
}

pub fn login_page(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    let open = Settings::load(&app.store)?.registration_open;
    let back = Return {
        next: req.query.get("next").and_then(|next| auth::safe_next(next)),
        ended: req.query.get("ended").is_some_and(|v| v == "1"),
    };
    Ok(Resp::html(login_form(None, "", open, &back)))
}

fn sign_in(app: &App, req: &Req, username: &str, password: &str) -> Result<Resp, ApiError> {
    sign_in_with_csrf(app, req, username, password, "/").map(|(resp, _)| resp)
}

/// Signs in; the redirect with the session cookie, and the session's CSRF
/// token for a page shown instead of the redirect.
fn sign_in_with_csrf(
    app: &App,
    req: &Req,
    username: &str,
    password: &str,
    to: &str,
) -> Result<(Resp, String), ApiError> {
    let session = ops::accounts::login(app, username, password, &req.remote_addr)?;
    let max_age = app.config.session_ttl.as_secs() as i64;
    let resp = Resp::redirect(to).header(
        "Set-Cookie",
        auth::session_cookie(&session.token, max_age, auth::cookie_secure(app, req)),
    );
    Ok((resp, session.csrf_token))
}

/// The passphrase page's form, sent once its end was typed back
/// (`setup.js` compares; the appliance keeps no copy to compare with).
pub fn passphrase_typed_back_post(app: &App, caller: &Caller) -> Result<Resp, ApiError> {
    auth::require_admin(caller)?;
    if keys::passphrase_check(&app.store)? == Some(keys::PassphraseCheck::NotTypedBack) {
        keys::set_passphrase_check(&app.store, keys::PassphraseCheck::TypedBack)?;
    }
    Ok(Resp::redirect("/?done=passphrase-kept"))
}

/// Whether the recovery passphrase was confirmed when it was made, as a
/// line for the account page and the dashboard.
pub fn passphrase_status(app: &App) -> Result<Markup, ApiError> {
    use keys::PassphraseCheck::*;
    let (text, warn) = match keys::passphrase_check(&app.store)? {
        Some(EnteredTwice) => ("Recovery passphrase: chosen at setup and entered twice.", false),
        Some(TypedBack) => ("Recovery passphrase: confirmed, its end was typed back at setup.", false),
        Some(NotTypedBack) => ("Recovery passphrase: shown once at setup and never typed back. Make sure you still have it.", true),
        Some(GivenOnce) => ("Recovery passphrase: given once through the API, never confirmed.", true),
        None => ("Recovery passphrase: how it was checked is not recorded (set up before piarchive kept this, or restored).", false),
    };
    Ok(html! { p.passphrase-status.warning-text[warn] id="passphrase-status" { (text) } })
}

pub fn login_post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    auth::refuse_cross_site(req)?;
    let form = req.form()?;
    let username = field(&form, "username");
    // Back to the page that needed the session: a path on this site only.
    let next = auth::safe_next(field(&form, "next"));
    let password = field(&form, "password");
    match sign_in_with_csrf(app, req, username, password, next.unwrap_or("/")) {
        Ok((resp, _)) => Ok(resp),
        Err(err) => {
            let open = Settings::load(&app.store)?.registration_open;
            let back = Return { next, ended: false };
            let page = login_form(Some(&err.message), username, open, &back);
            let mut resp = with_error(page, err.status);
            resp.headers.extend(err.headers);
            Ok(resp)
        }
    }
}

fn register_form(error: Option<&str>, username: &str) -> Markup {
    Page::new("Register", None, false).render(html! {
        h1 { "Create an account" }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        (credentials_form("/register", "Register", username, true, None))
        p { "Already have an account? " a href="/login" { "Log in" } }
    })
}

pub fn register_page(app: &App, _req: &mut Req) -> Result<Resp, ApiError> {
    if !Settings::load(&app.store)?.registration_open {
        return Ok(with_error(
            Page::new("Register", None, false).render(html! {
                h1 { "Registration is closed" }
                p { "Ask an admin of this appliance for an account." }
                p { a href="/login" { "Log in" } }
            }),
            403,
        ));
    }
    Ok(Resp::html(register_form(None, "")))
}

pub fn register_post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    auth::refuse_cross_site(req)?;
    let form = req.form()?;
    let (username, password) = (field(&form, "username"), field(&form, "password"));
    match app.accounts.register(username, password, &req.remote_addr) {
        Ok(_) => sign_in(app, req, username, password),
        Err(err) => {
            let err = ApiError::from(err);
            let mut resp = with_error(register_form(Some(&err.message), username), err.status);
            resp.headers.extend(err.headers);
            Ok(resp)
        }
    }
}

pub fn logout_post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    if let Some(token) = req.cookie(auth::SESSION_COOKIE) {
        app.accounts.logout(&token)?;
    }
    Ok(Resp::redirect("/login").header("Set-Cookie", auth::clear_session_cookie()))
}

/// What the account page shows above its forms after a post.
pub enum Notice {
    Info(String),
    Error(String),
    NewToken { name: String, secret: String },
}

pub fn account_page(
    app: &App,
    _req: &mut Req,
    caller: &Caller,
    notice: Option<Notice>,
) -> Result<Resp, ApiError> {
    let tokens = app.accounts.tokens(&caller.user.id)?;
    let passphrase = match caller.is_admin() {
        true => Some(passphrase_status(app)?),
        false => None,
    };
    let own_notifications = crate::web::notifications::member_section(app, caller)?;
    let usage = app.archives.usage(&caller.user.id)?;
    let page = Page::new("Account", Some(caller), app.on_box_only()).render(html! {
        h1 { "Account" }
        p { "Signed in as " strong { (caller.user.username) } " (" (caller.user.role.as_str()) ")." }
        (crate::web::layout::storage_line(&usage))
        @if let Some(passphrase) = passphrase { (passphrase) }
        @match &notice {
            Some(Notice::Info(text)) => p.notice role="status" { (text) },
            Some(Notice::Error(text)) => p.error role="alert" { (text) },
            Some(Notice::NewToken { name, secret }) => div.notice role="status" {
                p { "New API token " strong { (name) } ". Copy it now: it is shown only once." }
                pre.secret { (secret) }
            },
            None => {},
        }
        section.card {
            h2 { "Change password" }
            form method="post" action="/account/password" {
                (csrf_field(caller))
                label { "Current password" input type="password" name="current_password" required autocomplete="current-password"; }
                label { "New password" input type="password" name="new_password" required minlength="8" autocomplete="new-password"; }
                button type="submit" { "Change password" }
            }
        }
        (own_notifications)
        section.card {
            h2 { "API tokens" }
            p { "For scripts: " code { "curl -H 'Authorization: Bearer TOKEN' …" } " At most " (crate::accounts::MAX_TOKENS_PER_USER) " per account." }
            @if tokens.is_empty() {
                p.muted { "No tokens yet." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Created" } th {} } }
                    tbody {
                        @for token in &tokens {
                            tr {
                                td { (token.name) }
                                td { (full_time(token.created_at)) }
                                td {
                                    form.inline method="post" action={ "/account/tokens/" (token.id) "/delete" } {
                                        (csrf_field(caller))
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/account/tokens" {
                (csrf_field(caller))
                label { "Token name" input name="name" required maxlength="100"; }
                button type="submit" { "Create token" }
            }
        }
    });
    let status = match notice {
        Some(Notice::Error(_)) => 400,
        _ => 200,
    };
    let mut resp = Resp::html(page);
    resp.status = status;
    Ok(resp)
}

pub fn password_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let keep = req.cookie(auth::SESSION_COOKIE);
    let result = app.accounts.change_password(
        &caller.user.id,
        field(form, "current_password"),
        field(form, "new_password"),
        keep.as_deref(),
        &req.remote_addr,
    );
    let notice = match result {
        Ok(()) => Notice::Info("Your password was changed; other sessions were logged out.".into()),
        Err(err) => Notice::Error(err.to_string()),
    };
    account_page(app, req, caller, Some(notice))
}

/// The "Your notifications" form.
pub fn notifications_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let notice = match crate::web::notifications::member_post(app, caller, form) {
        Ok(()) => Notice::Info("Your notifications were saved.".into()),
        Err(sentence) => Notice::Error(sentence),
    };
    account_page(app, req, caller, Some(notice))
}

pub fn token_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    form: &HashMap<String, String>,
) -> Result<Resp, ApiError> {
    let notice = match ops::tokens::create(app, caller, field(form, "name")) {
        Ok((record, secret)) => Notice::NewToken {
            name: record.name,
            secret,
        },
        Err(err) => Notice::Error(err.to_string()),
    };
    account_page(app, req, caller, Some(notice))
}

pub fn token_delete_post(app: &App, caller: &Caller, token_id: &str) -> Result<Resp, ApiError> {
    ops::tokens::delete(app, caller, token_id)?;
    Ok(Resp::redirect("/account?done=token-deleted"))
}
