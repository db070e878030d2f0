//! Invitations over HTTP: the admin API (`/api/v1/admin/invitations`),
//! the sign-up page an invited person opens (`/invite/{token}`) and the
//! admin users page's section that makes, lists and withdraws them. Thin
//! adapters over `ops::accounts` (`invite`, `withdraw_invitation`,
//! `register_invited`).

use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::invitations::{self, Invitation, DEFAULT_EXPIRY_SECS};
use crate::accounts::Caller;
use crate::app::state::App;
use crate::ops;
use crate::store::records::Role;
use crate::web::auth::{self, api_caller, require_admin};
use crate::web::http::{ApiError, Req, Resp};
use crate::web::layout::{csrf_field, local_time, Page};

type Answer = Result<Resp, ApiError>;

/// The address of an invitation's sign-up page, as the admin's browser
/// reached this appliance (its `Host`), so the link works from the
/// same network.
pub fn invitation_url(req: &Req, token: &str) -> String {
    let scheme = if req.secure { "https" } else { "http" };
    match req.header("Host").filter(|host| valid_host(host)) {
        Some(host) => format!("{scheme}://{host}/invite/{token}"),
        None => format!("/invite/{token}"),
    }
}

/// A `Host` header fit to be put in a link: a name or address and port.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn invitation_json(invitation: &Invitation) -> Value {
    json!({
        "id": invitation.id,
        "role": invitation.role.as_str(),
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitationBody {
    role: Option<Role>,
    expires_in_seconds: Option<u64>,
}

/// `POST /api/v1/admin/invitations` -> 201 `{id, url, token, expires_at}`.
pub fn create(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let body: NewInvitationBody = req.json()?;
    let made = ops::accounts::invite(
        app,
        &caller,
        body.role.unwrap_or(Role::Member),
        body.expires_in_seconds.unwrap_or(DEFAULT_EXPIRY_SECS),
    )?;
    let mut value = invitation_json(&made.invitation);
    value["token"] = json!(made.token);
    value["url"] = json!(invitation_url(req, &made.token));
    Ok(Resp::json(201, &value))
}

/// `GET /api/v1/admin/invitations`: the open ones (never their tokens).
pub fn list(app: &App, req: &mut Req) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    let open = invitations::list(&app.store, crate::ids::now_secs())?;
    let open: Vec<Value> = open.iter().map(invitation_json).collect();
    Ok(Resp::json(200, &json!({ "invitations": open })))
}

/// `DELETE /api/v1/admin/invitations/{id}` -> 204.
pub fn delete(app: &App, req: &mut Req, id: &str) -> Answer {
    let caller = api_caller(app, req)?;
    require_admin(&caller)?;
    ops::accounts::withdraw_invitation(app, &caller, id)?;
    Ok(Resp::new(204))
}

fn signup_form(
    token: &str,
    invitation: &Invitation,
    error: Option<&str>,
    username: &str,
) -> Markup {
    Page::new("Create your account", None, false).render(html! {
        h1 { "Create your account" }
        p {
            "You were invited to keep your files on this piarchive"
            @if invitation.role == Role::Admin { " as an admin" }
            ". The invitation works once, until " (local_time(invitation.expires_at)) "."
        }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.card method="post" action={ "/invite/" (token) } {
            label { "Username" input name="username" value=(username) autocomplete="username" required maxlength="64"; }
            label { "Password (at least 8 characters)" input type="password" name="password" autocomplete="new-password" required minlength="8"; }
            button type="submit" { "Create account" }
        }
        p { "Already have an account? " a href="/login" { "Log in" } }
    })
}

fn invitation_gone() -> Resp {
    let page = Page::new("Invitation not valid", None, false).render(html! {
        h1 { "This invitation cannot be used" }
        p { "It was used already, withdrawn, or it has expired. Ask your admin for a new link." }
        p { a href="/login" { "Log in" } }
    });
    let mut resp = Resp::html(page);
    resp.status = 404;
    resp
}

/// `GET /invite/{token}`: the sign-up form, or why the link does not work.
pub fn signup_page(app: &App, _req: &mut Req, token: &str) -> Answer {
    match invitations::find(&app.store, token, crate::ids::now_secs())? {
        Some(invitation) => Ok(Resp::html(signup_form(token, &invitation, None, ""))),
        None => Ok(invitation_gone()),
    }
}

/// `POST /invite/{token}`: makes the account and signs it in.
pub fn signup_post(app: &App, req: &mut Req, token: &str) -> Answer {
    auth::refuse_cross_site(req)?;
    let form = req.form()?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let (username, password) = (field("username"), field("password"));
    let Some(invitation) = invitations::find(&app.store, token, crate::ids::now_secs())? else {
        return Ok(invitation_gone());
    };
    match ops::accounts::register_invited(app, username, password, token, &req.remote_addr) {
        Ok(_) => super::page::sign_in(app, req, username, password),
        Err(err) => {
            let err = ApiError::from(err);
            let mut resp = Resp::html(signup_form(
                token,
                &invitation,
                Some(&err.message),
                username,
            ));
            resp.status = err.status;
            resp.headers.extend(err.headers);
            Ok(resp)
        }
    }
}

/// The users page's section: make an invitation, and the open ones with
/// a "Withdraw" each.
pub fn admin_section(app: &App, caller: &Caller) -> Result<Markup, ApiError> {
    let open = invitations::list(&app.store, crate::ids::now_secs())?;
    Ok(html! {
        section.card id="invitations" {
            h2 { "Invitations" }
            p { "An invitation is a link that makes one account, even while registration is closed. Send it to the person you invite." }
            form method="post" action="/admin/invitations" {
                (csrf_field(caller))
                label { "Role"
                    select name="role" {
                        option value="member" selected { "member" }
                        option value="admin" { "admin" }
                    }
                }
                label { "Valid for"
                    select name="days" {
                        option value="1" { "1 day" }
                        option value="7" selected { "7 days" }
                        option value="30" { "30 days" }
                    }
                }
                button type="submit" { "Make an invitation link" }
            }
            @if open.is_empty() {
                p.muted { "No open invitations." }
            } @else {
                ul.invitations {
                    @for invitation in &open {
                        li data-invitation-id=(invitation.id) {
                            "For a new " (invitation.role.as_str()) ", until " (local_time(invitation.expires_at)) " "
                            form.inline method="post" action={ "/admin/invitations/" (invitation.id) "/withdraw" } data-confirm="Withdraw this invitation? Its link stops working." {
                                (csrf_field(caller))
                                button.danger type="submit" { "Withdraw" }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// `POST /admin/invitations` (form): makes one; the users page shows its link.
pub fn admin_create_post(
    app: &App,
    req: &mut Req,
    caller: &Caller,
    form: &std::collections::HashMap<String, String>,
) -> Answer {
    require_admin(caller)?;
    let role = match form.get("role").map(String::as_str) {
        Some("admin") => Role::Admin,
        _ => Role::Member,
    };
    let days: u64 = match form.get("days").and_then(|days| days.parse().ok()) {
        Some(days @ 1..=30) => days,
        _ => {
            return Err(ApiError::bad_request(
                "Choose how many days the invitation is valid: 1 to 30.",
            ))
        }
    };
    let made = ops::accounts::invite(app, caller, role, days * 86_400)?;
    let link = invitation_url(req, &made.token);
    let page = Page::new("Invitation made", Some(caller), crate::web::layout::Safety::of(app))
        .script("/static/copy.js")
        .render(html! {
            h1 { "Invitation made" }
            div.card {
                p {
                    "Send this link to the person you invite. It makes one " (made.invitation.role.as_str())
                    " account and works until " (local_time(made.invitation.expires_at)) ". "
                    strong { "It is shown only now." }
                }
                label { "Invitation link"
                    input id="invitation-link" type="text" readonly value=(link);
                }
                button.copy type="button" data-copy="invitation-link" { "Copy link" }
                span.copied role="status" {}
            }
            p { a href="/admin/users#invitations" { "Back to users" } }
        });
    let mut resp = Resp::html(page);
    resp.status = 201;
    Ok(resp)
}

/// `POST /admin/invitations/{id}/withdraw` (form).
pub fn admin_withdraw_post(app: &App, caller: &Caller, id: &str) -> Answer {
    require_admin(caller)?;
    ops::accounts::withdraw_invitation(app, caller, id)?;
    Ok(Resp::redirect(
        "/admin/users?done=invitation-withdrawn#invitations",
    ))
}
