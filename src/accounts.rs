//! Users, passwords, sessions and API tokens.
//!
//! Passwords are Argon2id PHC strings; session and API tokens are random
//! 256-bit secrets stored only as their SHA-256, so the database alone never
//! lets anyone in. Owns the `users`, `usernames`, `sessions` and
//! `api_tokens` tables. Must not touch: HTTP (cookies and headers are the
//! web layer's), archives.
//!
//! Argon2 runs at most [`MAX_HASHES_AT_ONCE`] at a time, process-wide,
//! each in its permit's own 19 MiB buffer, allocated once ([`hashing`]);
//! other callers wait their turn. Logins, password
//! changes and registrations wait in a bounded queue ([`MAX_HASH_QUEUE`]):
//! past it they are answered "busy" (503) at once, so they never hold every
//! handler thread. Guessing, and correct logins, are limited by
//! [`throttle`].

pub mod failed_logins;
pub mod hashing;
pub mod invitations;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids;
use crate::settings::Settings;
use crate::store::records::{Role, UserRecord};
use crate::store::{Store, StoreError};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_USERNAME_CHARS: usize = 64;
pub use hashing::{hash_password, verify_password, MAX_HASHES_AT_ONCE};
pub use sessions::MAX_SESSIONS_PER_USER;
pub use throttle::{FAILURE_WINDOW, MAX_FAILURES, MAX_REGISTRATIONS};
pub use tokens::MAX_TOKENS_PER_USER;

/// Attempts sleeping out an account's delay at once, at most; past that an
/// attempt is answered "busy" (503) rather than checked without its delay,
/// so sleeping attempts never hold many handler threads.
const MAX_DELAYED_AT_ONCE: usize = 4;
/// Password checks waiting for an Argon2 permit or running, at most; one
/// more is answered "busy" (503 with `Retry-After`), so a flood of logins
/// never holds every handler thread and pages keep being served.
pub const MAX_HASH_QUEUE: usize = MAX_HASHES_AT_ONCE + 4;
/// The `Retry-After` of a busy answer.
pub const BUSY_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Wrong username or password.")]
    BadCredentials,
    #[error("Too many failed attempts from this device; try again in {}.", throttle::wait_for_people(*.retry_after_secs))]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("Too many logins in a short time; try again in {}.", throttle::wait_for_people(*.retry_after_secs))]
    TooManyLogins { retry_after_secs: u64 },
    #[error("The appliance is busy checking other passwords; try again in a few seconds.")]
    Busy { retry_after_secs: u64 },
    #[error("Too many accounts were created from this device; try again in {}, or ask an admin.", throttle::wait_for_people(*.retry_after_secs))]
    TooManyRegistrations { retry_after_secs: u64 },
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
    #[error("No such invitation; it may have been used, withdrawn or expired.")]
    InvitationNotFound,
    #[error(
        "This invitation was used already, withdrawn or has expired; ask an admin for a new link."
    )]
    InvitationInvalid,
    #[error("You have {max} API tokens already, the most one account may have; delete one you no longer use, then make a new one.")]
    TooManyTokens { max: usize },
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
    throttle: Mutex<throttle::Throttle>,
    /// Attempts sleeping out an account delay now.
    delayed: AtomicUsize,
}

/// Password checks admitted to wait for (or use) a permit.
static HASH_QUEUE: AtomicUsize = AtomicUsize::new(0);

/// A place in the bounded queue in front of the Argon2 permits; dropping it
/// frees the place.
struct HashQueueTicket;

impl HashQueueTicket {
    /// A place, or `Busy` when [`MAX_HASH_QUEUE`] checks are queued.
    fn enter() -> Result<HashQueueTicket, AccountError> {
        HASH_QUEUE
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                (queued < MAX_HASH_QUEUE).then_some(queued + 1)
            })
            .map(|_| HashQueueTicket)
            .map_err(|_| AccountError::Busy {
                retry_after_secs: BUSY_RETRY_SECS,
            })
    }
}

impl Drop for HashQueueTicket {
    fn drop(&mut self) {
        HASH_QUEUE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The throttle's name for a user's account.
fn account_key(username: &str) -> String {
    format!("user:{}", username_key(username))
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
    if username.chars().any(ids::is_bidi_control) {
        return Err(AccountError::Invalid(
            "A username may not contain characters that reverse or reorder text (Unicode direction controls such as U+202E).".into(),
        ));
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
            throttle: Mutex::new(throttle::Throttle::default()),
            delayed: AtomicUsize::new(0),
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

    /// Self-registration, allowed while the admin keeps it open, at most
    /// [`MAX_REGISTRATIONS`] an hour from one `address`.
    pub fn register(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<UserRecord, AccountError> {
        if !Settings::load(&self.store)?.registration_open {
            return Err(AccountError::RegistrationClosed);
        }
        validate_username(username)?;
        validate_password(password)?;
        self.store.room_for_growth()?;
        self.throttle()
            .registration(address, Instant::now())
            .map_err(|retry_after_secs| AccountError::TooManyRegistrations { retry_after_secs })?;
        self.insert_user(username, password, Role::Member, false)
    }

    /// An account made with an invitation (open or closed registration):
    /// the invitation is used up in the same transaction and gives the
    /// role. Counts against the address like a registration.
    pub fn register_invited(
        &self,
        username: &str,
        password: &str,
        token: &str,
        address: &str,
    ) -> Result<UserRecord, AccountError> {
        validate_username(username)?;
        validate_password(password)?;
        invitations::find(&self.store, token, ids::now_secs())?
            .ok_or(AccountError::InvitationInvalid)?;
        self.throttle()
            .registration(address, Instant::now())
            .map_err(|retry_after_secs| AccountError::TooManyRegistrations { retry_after_secs })?;
        self.insert_user_with(username, password, |txn, tables| {
            Ok(invitations::take(txn, tables, token, ids::now_secs())?.role)
        })
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, throttle::Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a secret guarded by the throttle is checked: refuses an
    /// address that used up its failures (or its correct logins), counts
    /// the attempt at once (as a failure until its outcome is told), and
    /// waits out the account's delay (bounded; see [`throttle`]).
    pub fn before_attempt(&self, address: &str, account: &str) -> Result<(), AccountError> {
        use throttle::Refused;
        let delay = self
            .throttle()
            .admit(address, account, Instant::now())
            .map_err(|refused| match refused {
                Refused::TooManyFailures(retry_after_secs) => {
                    AccountError::TooManyAttempts { retry_after_secs }
                }
                Refused::TooManySuccesses(retry_after_secs) => {
                    AccountError::TooManyLogins { retry_after_secs }
                }
            })?;
        if !delay.is_zero() {
            let sleeping = self.delayed.fetch_add(1, Ordering::SeqCst) < MAX_DELAYED_AT_ONCE;
            if sleeping {
                std::thread::sleep(delay);
            }
            self.delayed.fetch_sub(1, Ordering::SeqCst);
            if !sleeping {
                // Never checked without its delay: busy instead.
                self.attempt_abandoned(address, account);
                return Err(AccountError::Busy {
                    retry_after_secs: BUSY_RETRY_SECS,
                });
            }
        }
        Ok(())
    }

    /// A guarded secret was wrong.
    pub fn attempt_failed(&self, address: &str, account: &str) {
        self.throttle().failed(address, account, Instant::now());
    }

    /// A guarded secret was right.
    pub fn attempt_succeeded(&self, address: &str, account: &str) {
        self.throttle().succeeded(address, account, Instant::now());
    }

    /// An attempt admitted by [`Accounts::before_attempt`] was never checked.
    pub fn attempt_abandoned(&self, address: &str, account: &str) {
        self.throttle().abandoned(address, account);
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
        self.insert_user_with(username, password, |txn, tables| {
            if only_if_first && !tables.users.is_empty(txn)? {
                return Err(AccountError::AlreadySetUp);
            }
            Ok(role)
        })
    }

    /// Creates a user with the role `admit` gives, in the same write
    /// transaction (`admit` may refuse, and nothing is written).
    fn insert_user_with(
        &self,
        username: &str,
        password: &str,
        admit: impl FnOnce(&mut heed::RwTxn, &crate::store::Tables) -> Result<Role, AccountError>,
    ) -> Result<UserRecord, AccountError> {
        let username = validate_username(username)?;
        validate_password(password)?;
        // Hash outside the write transaction: it takes tens of milliseconds.
        let password_hash = hash_password(password);
        let key = username_key(&username);
        self.store.write(|txn, tables| {
            let role = admit(txn, tables)?;
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
                quota_bytes: None,
            };
            tables.users.put(txn, user.id.as_bytes(), &user)?;
            tables.usernames.put(txn, key.as_bytes(), &user.id)?;
            crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
            Ok(user)
        })
    }

    /// Checks a password and opens a session. `address` is the client's
    /// IP: see [`throttle`] for what is refused and what only slowed.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<NewSession, AccountError> {
        let account = account_key(username);
        // A bounded queue before the Argon2 permits: refused at once when
        // full, so logins never hold every handler thread.
        let _queued = HashQueueTicket::enter()?;
        self.before_attempt(address, &account)?;
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
                self.attempt_failed(address, &account);
                return Err(AccountError::BadCredentials);
            }
        };
        self.throttle()
            .login_succeeded(address, &account, Instant::now())
            .map_err(|refused| match refused {
                throttle::Refused::TooManyFailures(retry_after_secs)
                | throttle::Refused::TooManySuccesses(retry_after_secs) => {
                    AccountError::TooManyLogins { retry_after_secs }
                }
            })?;
        if user.disabled {
            return Err(AccountError::Disabled);
        }
        self.open_session(user)
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

    /// Changes a password after checking the current one (throttled like a
    /// login from `address`); ends every other session of the user.
    pub fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
        address: &str,
    ) -> Result<(), AccountError> {
        validate_password(new)?;
        let user = self.user(user_id)?;
        let account = account_key(&user.username);
        let _queued = HashQueueTicket::enter()?;
        self.before_attempt(address, &account)?;
        if !verify_password(&user.password_hash, current) {
            self.attempt_failed(address, &account);
            return Err(AccountError::WrongCurrentPassword);
        }
        self.attempt_succeeded(address, &account);
        let keep = keep_session.map(hash_token);
        self.set_password_hash(user_id, hash_password(new), keep.as_ref())
            .map(|_| ())
    }

    /// An admin sets a new password for a user who forgot theirs; every
    /// session of that user ends (their API tokens stay).
    pub fn reset_password(&self, user_id: &str, new: &str) -> Result<UserRecord, AccountError> {
        validate_password(new)?;
        self.set_password_hash(user_id, hash_password(new), None)
    }

    /// Stores a new password hash, queues the catalog (it carries the
    /// accounts) and ends every session of the user but `keep`.
    fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: String,
        keep: Option<&Vec<u8>>,
    ) -> Result<UserRecord, AccountError> {
        self.store.write(|txn, tables| {
            let mut user = tables
                .users
                .get(txn, user_id.as_bytes())?
                .ok_or(AccountError::UserNotFound)?;
            user.password_hash = password_hash;
            tables.users.put(txn, user_id.as_bytes(), &user)?;
            crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
            for (key, session) in tables.sessions.all(txn)? {
                if session.user_id == user_id && Some(&key) != keep {
                    tables.sessions.delete(txn, &key)?;
                }
            }
            Ok(user)
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

    /// Sets (or, with `None`, clears) a user's storage quota in bytes
    /// (admin). Queues the catalog, which carries it.
    pub fn set_quota(
        &self,
        user_id: &str,
        quota_bytes: Option<u64>,
    ) -> Result<UserRecord, AccountError> {
        if quota_bytes == Some(0) {
            return Err(AccountError::Invalid(
                "A quota must be more than 0 bytes; clear it (null) for no quota.".into(),
            ));
        }
        self.store.write(|txn, tables| {
            let mut user = tables
                .users
                .get(txn, user_id.as_bytes())?
                .ok_or(AccountError::UserNotFound)?;
            user.quota_bytes = quota_bytes;
            tables.users.put(txn, user_id.as_bytes(), &user)?;
            crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
            Ok(user)
        })
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
            crate::store::jobs::enqueue_catalog_upload(txn, tables)?;
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
        let open = Settings {
            registration_open: true,
            ..Settings::default()
        };
        open.save(&accounts.store).unwrap();
        assert!(matches!(
            accounts.register("ALICE", "another pass", "10.0.0.1"),
            Err(AccountError::UsernameTaken(_))
        ));
    }

    #[test]
    fn failures_refuse_the_address_but_never_the_owner_elsewhere() {
        let (_dir, accounts) = accounts();
        accounts.setup("alice", "correct horse").unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                accounts.login("alice", "wrong", "10.0.0.1"),
                Err(AccountError::BadCredentials)
            ));
        }
        assert!(matches!(
            accounts.login("alice", "correct horse", "10.0.0.1"),
            Err(AccountError::TooManyAttempts { .. })
        ));
        let started = Instant::now();
        accounts
            .login("alice", "correct horse", "10.0.0.2")
            .unwrap();
        assert!(started.elapsed() >= throttle::ACCOUNT_DELAY_STEP);
        assert!(started.elapsed() < throttle::MAX_ACCOUNT_DELAY * 2);
    }

    #[test]
    fn argon2_runs_at_most_two_at_a_time() {
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _permit = hashing::HashPermit::take();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Other tests hash at the same time, so the peak seen here may be
        // lower, never higher.
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=MAX_HASHES_AT_ONCE).contains(&peak), "{peak}");
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
    fn usernames_with_direction_controls_are_refused() {
        let (_dir, accounts) = accounts();
        accounts.setup("alice", "correct horse").unwrap();
        let open = Settings {
            registration_open: true,
            ..Settings::default()
        };
        open.save(&accounts.store).unwrap();
        for name in ["eve\u{202E}nimda", "\u{2066}bob", "carol\u{200F}"] {
            let err = accounts
                .register(name, "another pass", "10.0.0.1")
                .unwrap_err();
            assert!(err.to_string().contains("U+202E"), "{err}");
        }
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
