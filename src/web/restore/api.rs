//! Restoring a new appliance from an existing backup over HTTP (the setup
//! page's "Restore from an existing backup" and its API):
//!
//! - `POST /api/v1/setup/restore` with the remote settings (API.md "Remote
//!   settings") plus `"recovery_passphrase"`: checks and unlocks the backup
//!   at once (a wrong passphrase, a newer format or a data folder that is not
//!   empty answer 4xx and write nothing), then rebuilds the catalog in the
//!   background and answers 202 with the progress.
//! - `GET /api/v1/setup/restore`: the progress, `{state, done, total, report,
//!   error, interrupted}`.
//!
//! No login: it is only allowed while the appliance has no users (or a
//! recovery was interrupted). Owns only this translation; the work is
//! `crate::recovery`. Must not open LMDB transactions.

use serde_json::{json, Value};

use crate::app::state::App;
use crate::recovery::{Recovery, RecoveryError};
use crate::remote::{ErrorKind, RemoteSettings};
use crate::repo::RepoError;
use crate::web::http::{ApiError, Req, Resp};

/// The HTTP answer for a refused recovery: a status, a code and the sentence.
pub fn recovery_error(err: RecoveryError) -> ApiError {
    let message = err.to_string();
    let (status, code) = match &err {
        RecoveryError::NotEmpty => (409, "not_empty"),
        RecoveryError::NoBackup { .. } => (400, "no_backup"),
        RecoveryError::NoCatalog { .. } => (400, "no_catalog"),
        RecoveryError::OtherBackup => (409, "other_backup"),
        RecoveryError::AlreadyRunning => (409, "restore_running"),
        RecoveryError::Repo(RepoError::WrongPassphrase) => (400, "wrong_passphrase"),
        RecoveryError::Repo(RepoError::NewerFormat { .. }) => (409, "newer_format"),
        RecoveryError::Repo(_) => (400, "bad_backup"),
        RecoveryError::Remote(remote) if remote.kind == ErrorKind::Transient => {
            (502, "remote_unavailable")
        }
        RecoveryError::Remote(_) => (400, "remote_error"),
        RecoveryError::Store(_) => (500, "internal"),
    };
    ApiError::new(status, code, message)
}

/// The throttle's name for the recovery passphrase: guessed like a password.
const PASSPHRASE_ACCOUNT: &str = "recovery passphrase";

/// What a restore attempt refused because another is under way tells the
/// client to wait (an unlock takes about a second on a Pi 4).
const ATTEMPT_RETRY_SECS: u64 = 5;

/// Checks and unlocks the backup, then starts the recovery in the
/// background. Shared by the API and the setup page. Wrong passphrases
/// count against `address` like wrong passwords (`accounts::throttle`).
pub fn start(
    app: &App,
    settings: RemoteSettings,
    passphrase: &str,
    as_of: &str,
    address: &str,
) -> Result<(), ApiError> {
    // A point in time (versioned buckets): checked before anything else.
    let as_of = match as_of.trim() {
        "" => None,
        text => Some(
            crate::remote::as_of::parse_time(text, crate::ids::now_secs())
                .map_err(|err| ApiError::new(400, "invalid", err.message))?,
        ),
    };
    if app.restore.is_running() {
        return Err(recovery_error(RecoveryError::AlreadyRunning));
    }
    let passphrase = passphrase.trim();
    if passphrase.is_empty() {
        return Err(ApiError::new(
            400,
            "invalid",
            "Type the recovery passphrase you wrote down at setup.",
        ));
    }
    // One attempt at a time: the check of the guess limit, the count and
    // the work (Argon2 with the bucket's costs, capped in `repo::config`)
    // happen for one attempt before the next may start.
    let Some(_attempt) = app.restore.try_attempt() else {
        return Err(ApiError::new(
            503,
            "restore_busy",
            format!(
                "Another restore attempt is checking a backup right now; try again in {ATTEMPT_RETRY_SECS} seconds."
            ),
        )
        .with_header("Retry-After", ATTEMPT_RETRY_SECS.to_string()));
    };
    app.accounts.before_attempt(address, PASSPHRASE_ACCOUNT)?;
    // Counted before the work: an attempt that fails for any reason stays
    // counted; only the right passphrase forgets this address's attempts.
    app.accounts.attempt_failed(address, PASSPHRASE_ACCOUNT);
    let prepared =
        Recovery::prepare_as_of(&app.store, settings, passphrase, &Default::default(), as_of);
    let recovery = prepared.map_err(recovery_error)?;
    app.accounts.attempt_succeeded(address, PASSPHRASE_ACCOUNT);
    let data_dir = app.config.data_dir.clone();
    let store = app.store.clone();
    let on_box_only = app.on_box_only.clone();
    app.restore
        .start(recovery, move || {
            if let Ok(remote) = crate::settings::remote::remote_settings(&store, &data_dir) {
                on_box_only.follow(&remote, &data_dir);
            }
        })
        .map_err(recovery_error)?;
    Ok(())
}

/// The progress as JSON.
pub fn status_json(app: &App) -> Result<Value, ApiError> {
    let state = app.restore.snapshot();
    let interrupted = state.state != "running" && crate::recovery::interrupted(&app.store)?;
    Ok(json!({
        "state": state.state,
        "done": state.done,
        "total": state.total,
        "report": state.report,
        "error": state.error,
        "interrupted": interrupted,
    }))
}

/// `POST /api/v1/setup/restore`.
pub fn post(app: &App, req: &mut Req) -> Result<Resp, ApiError> {
    crate::web::auth::refuse_cross_site(req)?;
    let mut body: Value = req.json()?;
    let passphrase = body
        .as_object_mut()
        .and_then(|object| object.remove("recovery_passphrase"))
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let as_of = body
        .as_object_mut()
        .and_then(|object| object.remove("as_of"))
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let settings: RemoteSettings = serde_json::from_value(body).map_err(|err| {
        ApiError::new(
            400,
            "invalid",
            format!("The remote settings are not valid ({err}); see \"Remote settings\" in the API description."),
        )
    })?;
    start(app, settings, &passphrase, &as_of, &req.remote_addr)?;
    Ok(Resp::json(202, &status_json(app)?))
}

/// `GET /api/v1/setup/restore`.
pub fn get(app: &App) -> Result<Resp, ApiError> {
    Ok(Resp::json(200, &status_json(app)?))
}
