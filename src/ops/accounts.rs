//! Accounts as people and admins change them: the first setup with the
//! recovery keys, logging in, users created, changed or given a new
//! password by an admin, and registration opened or closed. Each writes
//! its one system-log sentence (source `login` or `users`).

use crate::accounts::{AccountError, Caller, NewSession};
use crate::admin::log::Subject;
use crate::app::state::App;
use crate::engine::keys;
use crate::settings::Settings;
use crate::store::records::{Role, UserRecord};

/// Logs in and writes the outcome to the system log.
pub fn login(
    app: &App,
    username: &str,
    password: &str,
    remote_addr: &str,
) -> Result<NewSession, AccountError> {
    let outcome = app.accounts.login(username, password, remote_addr);
    match &outcome {
        Ok(_) => app.admin.log.info(
            "login",
            &format!("{username} logged in from {remote_addr}."),
            Subject::default(),
        ),
        Err(err) => app.admin.log.warn(
            "login",
            &format!("Login as {username:?} from {remote_addr} failed: {err}"),
            Subject::default(),
        ),
    }
    outcome
}

/// Creates the first admin and the repository keys under `given` or a
/// generated passphrase; returns the passphrase used (`None` when the keys
/// existed already). `check` says how the passphrase was confirmed.
pub fn setup(
    app: &App,
    username: &str,
    password: &str,
    given: Option<&str>,
    check: keys::PassphraseCheck,
) -> super::Result<Option<String>> {
    app.accounts.setup(username, password)?;
    if keys::exist(&app.store)? {
        return Ok(None);
    }
    let passphrase = match given {
        Some(passphrase) => passphrase.to_string(),
        None => {
            keys::generate_passphrase().map_err(|err| super::Error::Internal(err.to_string()))?
        }
    };
    keys::create(&app.store, &passphrase).map_err(|err| super::Error::Internal(err.to_string()))?;
    let check = match given {
        Some(_) => check,
        None => keys::PassphraseCheck::NotTypedBack,
    };
    keys::set_passphrase_check(&app.store, check)?;
    app.engine.wake();
    Ok(Some(passphrase))
}

/// An admin creates a user.
pub fn create_user(
    app: &App,
    admin: &Caller,
    username: &str,
    password: &str,
    role: Role,
) -> Result<UserRecord, AccountError> {
    let created = app.accounts.create_user(username, password, role);
    log_user_change(app, admin, &created, |user| {
        format!(
            "{} created the {} {}.",
            admin.user.username,
            user.role.as_str(),
            user.username
        )
    });
    created
}

/// An admin sets a new password for a user who forgot theirs; the user's
/// sessions end.
pub fn reset_password(
    app: &App,
    admin: &Caller,
    user_id: &str,
    password: &str,
) -> Result<UserRecord, AccountError> {
    let reset = app.accounts.reset_password(user_id, password);
    log_user_change(app, admin, &reset, |user| {
        format!(
            "{} set a new password for {}; their sessions ended.",
            admin.user.username, user.username
        )
    });
    reset
}

/// An admin changes a user's role or disabled flag (`None`: unchanged).
pub fn update_user(
    app: &App,
    admin: &Caller,
    user_id: &str,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<UserRecord, AccountError> {
    let updated = app.accounts.update_user(user_id, role, disabled);
    log_user_change(app, admin, &updated, |user| {
        format!(
            "{} made {} {}.",
            admin.user.username,
            user.username,
            standing(user)
        )
    });
    updated
}

/// An admin sets (or, with `None`, clears) a user's storage quota.
pub fn set_quota(
    app: &App,
    admin: &Caller,
    user_id: &str,
    quota_bytes: Option<u64>,
) -> Result<UserRecord, AccountError> {
    let set = app.accounts.set_quota(user_id, quota_bytes);
    log_user_change(app, admin, &set, |user| match user.quota_bytes {
        Some(quota) => format!(
            "{} set the storage quota of {} to {}.",
            admin.user.username,
            user.username,
            crate::units::human_size(quota)
        ),
        None => format!(
            "{} removed the storage quota of {}.",
            admin.user.username, user.username
        ),
    });
    set
}

/// "an active admin", "a disabled member": a user's role and state in words.
pub fn standing(user: &UserRecord) -> String {
    let state = if user.disabled {
        "a disabled"
    } else {
        "an active"
    };
    format!("{state} {}", user.role.as_str())
}

/// An admin opens or closes self-registration.
pub fn set_registration(app: &App, admin: &Caller, open: bool) -> super::Result<()> {
    let mut settings = Settings::load(&app.store)?;
    settings.registration_open = open;
    let saved = settings.save(&app.store);
    let subject = Subject::user(&admin.user.id);
    match &saved {
        Ok(()) => app.admin.log.info(
            "users",
            &format!(
                "{} {} registration.",
                admin.user.username,
                if open { "opened" } else { "closed" }
            ),
            subject,
        ),
        Err(err) => app.admin.log.warn(
            "users",
            &format!("{} was refused a user change: {err}", admin.user.username),
            subject,
        ),
    }
    Ok(saved?)
}

/// The `users` log line of an admin's change: `sentence` when it was made,
/// the refusal otherwise.
fn log_user_change(
    app: &App,
    admin: &Caller,
    outcome: &Result<UserRecord, AccountError>,
    sentence: impl FnOnce(&UserRecord) -> String,
) {
    let subject = Subject::user(&admin.user.id);
    match outcome {
        Ok(user) => app.admin.log.info("users", &sentence(user), subject),
        Err(err) => app.admin.log.warn(
            "users",
            &format!("{} was refused a user change: {err}", admin.user.username),
            subject,
        ),
    }
}
