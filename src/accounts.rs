//! Users, passwords, sessions and API tokens.
//!
//! Passwords are Argon2id PHC strings; session and API tokens are random
//! 256-bit secrets stored only as their SHA-256, so the database alone never
//! lets anyone in. Owns the `users`, `usernames`, `sessions` and
//! `api_tokens` tables. Must not touch: HTTP (cookies and headers are the
//! web layer's), archives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::ids;
use crate::settings::Settings;
use crate::store::records::{ApiTokenRecord, Role, SessionRecord, UserRecord};
use crate::store::{Store, StoreError};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_USERNAME_CHARS: usize = 64;
/// Failed logins for one username or address within [`FAILURE_WINDOW`]
/// before further attempts are refused for a while.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Wrong username or password.")]
    BadCredentials,
    #[error("Too many failed logins; try again in {retry_after_secs} seconds.")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("This account is disabled; ask an admin.")]
    Disabled,
    #[error("The username {0:?} is taken.")]
    UsernameTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error("The appliance is already set up.")]
    AlreadySetUp,
    #[error("Registration is closed; ask an admin for an account.")]
    RegistrationClosed,
    #[error("The current password is wrong.")]
    WrongCurrentPassword,
    #[error("No such user.")]
    UserNotFound,
    #[error("No such token.")]
    TokenNotFound,
    #[error("This is the last admin; make another user admin first.")]
    LastAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signed-in user and how they signed in.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    /// `Some(csrf token)` for a browser session; `None` for an API token,
    /// which needs no CSRF token.
    pub csrf_token: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub user: UserRecord,
    pub expires_at: i64,
}

pub struct Accounts {
    store: Store,
    session_ttl_secs: i64,
    throttle: Mutex<HashMap<String, Vec<Instant>>>,
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id with default parameters accepts any password up to 4 GiB")
        .to_string()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The key of the `usernames` table: trimmed and case-folded.
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

pub fn validate_username(username: &str) -> Result<String, AccountError> {
    let username = username.trim();
    if username.is_empty() {
        return Err(AccountError::Invalid("Choose a username.".into()));
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(AccountError::Invalid(format!(
            "A username has at most {MAX_USERNAME_CHARS} characters."
        )));
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == '\\')
    {
        return Err(AccountError::Invalid(
            "A username may not contain spaces, slashes or control characters.".into(),
        ));
    }
    Ok(username.to_string())
}

pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "A password needs at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::Invalid(format!(
            "A password has at most {MAX_PASSWORD_BYTES} bytes."
        )));
    }
    Ok(())
}

fn hash_token(token: &str) -> Vec<u8> {
    ids::sha256_hex(token.as_bytes()).into_bytes()
}

impl Accounts {
    pub fn new(store: Store, session_ttl: Duration) -> Accounts {
        Accounts {
            store,
            session_ttl_secs: session_ttl.as_secs() as i64,
            throttle: Mutex::new(HashMap::new()),
        }
    }

    pub fn setup_needed(&self) -> Result<bool, AccountError> {
        let txn = self.store.read()?;
        Ok(self.store.tables.users.is_empty(&txn)?)
    }

    /// Creates the first admin; refused once any user exists.
    pub fn setup(&self, username: &str, password: &str) -> Result<UserRecord, AccountError> {
        self.insert_user(username, password, Role::Admin, true)
    }

    /// Self-registration, allowed while the admin keeps it open.
    pub fn register(&self, username: &str, password: &str) -> Result<UserRecord, AccountError> {
        if !Settings::load(&self.store)?.registration_open {
            return Err(AccountError::RegistrationClosed);
        }
        self.insert_user(username, password, Role::Member, false)
    }

    /// An admin creating a user (always allowed).
    pub fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<UserRecord, AccountError> {
        self.insert_user(username, password, role, false)
    }

    fn insert_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        only_if_first: bool,
    ) -> Result<UserRecord, AccountError> {
        let username = validate_username(username)?;
        validate_password(password)?;
        // Hash outside the write transaction: it takes tens of milliseconds.
        let password_hash = hash_password(password);
        let key = username_key(&username);
        self.store.write(|txn, tables| {
            if only_if_first && !tables.users.is_empty(txn)? {
                return Err(AccountError::AlreadySetUp);
            }
            if tables.usernames.get(txn, key.as_bytes())?.is_some() {
                return Err(AccountError::UsernameTaken(username.clone()));
            }
            let user = UserRecord {
                id: ids::random_id(),
                username: username.clone(),
                password_hash,
                role,
                created_at: ids::now_secs(),
                disabled: false,
            };
            tables.users.put(txn, user.id.as_bytes(), &user)?;
            tables.usernames.put(txn, key.as_bytes(), &user.id)?;
            crate::engine::jobs::enqueue_catalog_upload(txn, tables)?;
            Ok(user)
        })
    }

    fn throttle_check(&self, keys: &[String]) -> Result<(), AccountError> {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for key in keys {
            let failures = throttle.entry(key.clone()).or_default();
            failures.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
            if failures.len() >= MAX_FAILURES {
                let oldest = failures[0];
                let retry = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(AccountError::TooManyAttempts {
                    retry_after_secs: retry.as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    fn throttle_record_failure(&self, keys: &[String]) {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            throttle
                .entry(key.clone())
                .or_default()
                .push(Instant::now());
        }
    }

    /// Checks a password and opens a session. `address` is the client's IP,
    /// throttled like the username.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<NewSession, AccountError> {
        let keys = [
            format!("user:{}", username_key(username)),
            format!("addr:{address}"),
        ];
        self.throttle_check(&keys)?;
        let user = {
            let txn = self.store.read()?;
            let id = self
                .store
                .tables
                .usernames
                .get(&txn, username_key(username).as_bytes())?;
            match id {
                Some(id) => self.store.tables.users.get(&txn, id.as_bytes())?,
                None => None,
            }
        };
        let user = match user {
            Some(user) if verify_password(&user.password_hash, password) => user,
            other => {
                if other.is_none() {
                    // Spend the same time as a real check, so timing does not
                    // reveal which usernames exist.
                    let _ = verify_password(DUMMY_HASH.as_str(), password);
                }
                self.throttle_record_failure(&keys);
                return Err(AccountError::BadCredentials);
            }
        };
        if user.disabled {
            return Err(AccountError::Disabled);
        }
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&keys[0]);
        let token = ids::random_token();
        let session = SessionRecord {
            user_id: user.id.clone(),
            expires_at: ids::now_secs() + self.session_ttl_secs,
            csrf_token: ids::random_token(),
        };
        self.store
            .write(|txn, tables| -> Result<(), AccountError> {
                tables.sessions.put(txn, &hash_token(&token), &session)?;
                Ok(())
            })?;
        Ok(NewSession {
            token,
            csrf_token: session.csrf_token,
            user,
            expires_at: session.expires_at,
        })
    }

    /// The user behind a session cookie, if the session is live.
    pub fn session(&self, token: &str) -> Result<Option<Caller>, AccountError> {
        let txn = self.store.read()?;
        let Some(session) = self.store.tables.sessions.get(&txn, &hash_token(token))? else {
            return Ok(None);
        };
        if session.expires_at < ids::now_secs() {
            return Ok(None);
        }
        Ok(self.live_user(&txn, &session.user_id)?.map(|user| Caller {
            user,
            csrf_token: Some(session.csrf_token),
        }))
    }

    fn live_user(
        &self,
        txn: &heed::RoTxn,
        user_id: &str,
    ) -> Result<Option<UserRecord>, AccountError> {
        Ok(self
            .store
            .tables
            .users
            .get(txn, user_id.as_bytes())?
            .filter(|user| !user.disabled))
    }

    pub fn logout(&self, token: &str) -> Result<(), AccountError> {
        self.store.write(|txn, tables| -> Result<(), AccountError> {
            tables.sessions.delete(txn, &hash_token(token))?;
            Ok(())
        })
    }

    /// The user behind an API token.
    pub fn bearer(&self, token: &str) -> Result<Option<Caller>, AccountError> {
        let txn = self.store.read()?;
        let Some(record) = self.store.tables.api_tokens.get(&txn, &hash_token(token))? else {
            return Ok(None);
        };
        Ok(self.live_user(&txn, &record.user_id)?.map(|user| Caller {
            user,
            csrf_token: None,
        }))
    }

    /// Creates an API token; the secret is returned once and never stored.
    pub fn create_token(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<(ApiTokenRecord, String), AccountError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccountError::Invalid(
                "Give the token a name of 1 to 100 characters, on one line.".into(),
            ));
        }
        let secret = format!("pia_{}", ids::random_token());
        let record = ApiTokenRecord {
            id: ids::random_id(),
            user_id: user_id.to_string(),
            name: name.to_string(),
            created_at: ids::now_secs(),
        };
        self.store
            .write(|txn, tables| -> Result<(), AccountError> {
                tables.api_tokens.put(txn, &hash_token(&secret), &record)?;
                Ok(())
            })?;
        Ok((record, secret))
    }

    pub fn tokens(&self, user_id: &str) -> Result<Vec<ApiTokenRecord>, AccountError> {
        let txn = self.store.read()?;
        let mut tokens: Vec<ApiTokenRecord> = self
            .store
            .tables
            .api_tokens
            .all(&txn)?
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| t.user_id == user_id)
            .collect();
        tokens.sort_by_key(|t| t.created_at);
        Ok(tokens)
    }

    pub fn delete_token(&self, user_id: &str, token_id: &str) -> Result<(), AccountError> {
        self.store.write(|txn, tables| {
            let found = tables
                .api_tokens
                .all(txn)?
                .into_iter()
                .find(|(_, t)| t.id == token_id && t.user_id == user_id);
            match found {
                Some((key, _)) => {
                    tables.api_tokens.delete(txn, &key)?;
                    Ok(())
                }
                None => Err(AccountError::TokenNotFound),
            }
        })
    }

    /// Changes a password after checking the current one; ends every other
    /// session of the user.
    pub fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
    ) -> Result<(), AccountError> {
        validate_password(new)?;
        let user = self.user(user_id)?;
        if !verify_password(&user.password_hash, current) {
            return Err(AccountError::WrongCurrentPassword);
        }
        let password_hash = hash_password(new);
        let keep = keep_session.map(hash_token);
        self.store.write(|txn, tables| {
            let mut user = tables
                .users
                .get(txn, user_id.as_bytes())?
                .ok_or(AccountError::UserNotFound)?;
            user.password_hash = password_hash;
            tables.users.put(txn, user_id.as_bytes(), &user)?;
            crate::engine::jobs::enqueue_catalog_upload(txn, tables)?;
            for (key, session) in tables.sessions.all(txn)? {
                if session.user_id == user_id && Some(&key) != keep.as_ref() {
                    tables.sessions.delete(txn, &key)?;
                }
            }
            Ok(())
        })
    }

    pub fn user(&self, user_id: &str) -> Result<UserRecord, AccountError> {
        let txn = self.store.read()?;
        self.store
            .tables
            .users
            .get(&txn, user_id.as_bytes())?
            .ok_or(AccountError::UserNotFound)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, AccountError> {
        let txn = self.store.read()?;
        let mut users: Vec<UserRecord> = self
            .store
            .tables
            .users
            .all(&txn)?
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        users.sort_by_key(|u| u.created_at);
        Ok(users)
    }

    /// Changes a user's role or disabled flag (admin). Refuses to leave the
    /// appliance without an enabled admin.
    pub fn update_user(
        &self,
        user_id: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<UserRecord, AccountError> {
        self.store.write(|txn, tables| {
            let mut user = tables
                .users
                .get(txn, user_id.as_bytes())?
                .ok_or(AccountError::UserNotFound)?;
            if let Some(role) = role {
                user.role = role;
            }
            if let Some(disabled) = disabled {
                user.disabled = disabled;
            }
            let admins_left = tables
                .users
                .all(txn)?
                .into_iter()
                .map(|(_, u)| if u.id == user.id { user.clone() } else { u })
                .filter(|u| u.role == Role::Admin && !u.disabled)
                .count();
            if admins_left == 0 {
                return Err(AccountError::LastAdmin);
            }
            tables.users.put(txn, user_id.as_bytes(), &user)?;
            crate::engine::jobs::enqueue_catalog_upload(txn, tables)?;
            if user.disabled {
                for (key, session) in tables.sessions.all(txn)? {
                    if session.user_id == user.id {
                        tables.sessions.delete(txn, &key)?;
                    }
                }
            }
            Ok(user)
        })
    }

    /// Removes expired sessions; returns how many.
    pub fn sweep_sessions(&self) -> Result<usize, AccountError> {
        let now = ids::now_secs();
        self.store.write(|txn, tables| {
            let mut removed = 0;
            for (key, session) in tables.sessions.all(txn)? {
                if session.expires_at < now {
                    tables.sessions.delete(txn, &key)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("not a real password"));

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        (dir, Accounts::new(store, Duration::from_secs(3600)))
    }

    #[test]
    fn setup_only_once_and_login() {
        let (_dir, accounts) = accounts();
        assert!(accounts.setup_needed().unwrap());
        let admin = accounts.setup("Alice", "correct horse").unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(admin.password_hash.starts_with("$argon2id$"));
        assert!(matches!(
            accounts.setup("bob", "correct horse"),
            Err(AccountError::AlreadySetUp)
        ));
        let session = accounts
            .login("alice", "correct horse", "127.0.0.1")
            .unwrap();
        let caller = accounts.session(&session.token).unwrap().unwrap();
        assert_eq!(caller.user.id, admin.id);
        assert_eq!(
            caller.csrf_token.as_deref(),
            Some(session.csrf_token.as_str())
        );
        accounts.logout(&session.token).unwrap();
        assert!(accounts.session(&session.token).unwrap().is_none());
    }

    #[test]
    fn usernames_are_unique_case_folded() {
        let (_dir, accounts) = accounts();
        accounts.setup("Alice", "correct horse").unwrap();
        assert!(matches!(
            accounts.register("ALICE", "another pass"),
            Err(AccountError::UsernameTaken(_))
        ));
    }

    #[test]
    fn throttles_repeated_failures() {
        let (_dir, accounts) = accounts();
        accounts.setup("alice", "correct horse").unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                accounts.login("alice", "wrong", "10.0.0.1"),
                Err(AccountError::BadCredentials)
            ));
        }
        assert!(matches!(
            accounts.login("alice", "correct horse", "10.0.0.2"),
            Err(AccountError::TooManyAttempts { .. })
        ));
    }

    #[test]
    fn last_admin_cannot_be_demoted_or_disabled() {
        let (_dir, accounts) = accounts();
        let admin = accounts.setup("alice", "correct horse").unwrap();
        assert!(matches!(
            accounts.update_user(&admin.id, Some(Role::Member), None),
            Err(AccountError::LastAdmin)
        ));
        assert!(matches!(
            accounts.update_user(&admin.id, None, Some(true)),
            Err(AccountError::LastAdmin)
        ));
        let bob = accounts
            .create_user("bob", "correct horse", Role::Admin)
            .unwrap();
        accounts
            .update_user(&admin.id, Some(Role::Member), None)
            .unwrap();
        assert!(matches!(
            accounts.update_user(&bob.id, Some(Role::Member), None),
            Err(AccountError::LastAdmin)
        ));
    }

    #[test]
    fn tokens_authenticate_until_deleted() {
        let (_dir, accounts) = accounts();
        let admin = accounts.setup("alice", "correct horse").unwrap();
        let (record, secret) = accounts.create_token(&admin.id, "backup script").unwrap();
        assert_eq!(accounts.bearer(&secret).unwrap().unwrap().user.id, admin.id);
        assert!(accounts.bearer("pia_forged").unwrap().is_none());
        accounts.delete_token(&admin.id, &record.id).unwrap();
        assert!(accounts.bearer(&secret).unwrap().is_none());
    }
}
