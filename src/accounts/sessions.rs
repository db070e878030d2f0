//! Browser sessions: opening one at login (at most
//! [`MAX_SESSIONS_PER_USER`] per user; a new login ends the oldest, so
//! logging in over and over cannot fill the database) and sweeping the
//! expired ones. The `sessions` table is keyed by the SHA-256 of the
//! session token.

use super::{hash_token, AccountError, Accounts, NewSession};
use crate::ids;
use crate::store::records::{SessionRecord, UserRecord};

/// Live sessions one user may have; the oldest ends when a login would
/// pass it (a family member has a few phones and browsers, not twenty).
pub const MAX_SESSIONS_PER_USER: usize = 20;

impl Accounts {
    /// Stores a new session for `user` (checked already), ending the user's
    /// expired sessions and, past [`MAX_SESSIONS_PER_USER`], their oldest,
    /// in the same transaction: the count and the insert are one step.
    pub(super) fn open_session(&self, user: UserRecord) -> Result<NewSession, AccountError> {
        let token = ids::random_token();
        let now = ids::now_secs();
        let session = SessionRecord {
            user_id: user.id.clone(),
            expires_at: now + self.session_ttl_secs,
            csrf_token: ids::random_token(),
            opened_at_ms: ids::now_millis(),
        };
        self.store
            .write(|txn, tables| -> Result<(), AccountError> {
                let mut mine: Vec<(Vec<u8>, SessionRecord)> = tables
                    .sessions
                    .all(txn)?
                    .into_iter()
                    .filter(|(_, s)| s.user_id == user.id)
                    .collect();
                // Oldest first.
                mine.sort_by_key(|(_, s)| (s.opened_at_ms, s.expires_at));
                let over = (mine.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
                for (index, (key, s)) in mine.iter().enumerate() {
                    if index < over || s.expires_at < now {
                        tables.sessions.delete(txn, key)?;
                    }
                }
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

    /// How many live sessions `user_id` has.
    pub fn session_count(&self, user_id: &str) -> Result<usize, AccountError> {
        let now = ids::now_secs();
        let txn = self.store.read()?;
        Ok(self
            .store
            .tables
            .sessions
            .all(&txn)?
            .into_iter()
            .filter(|(_, s)| s.user_id == user_id && s.expires_at >= now)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Store;

    #[test]
    fn a_login_past_the_cap_ends_the_oldest_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let accounts = Accounts::new(store, Duration::from_secs(3600));
        let user = accounts.setup("alice", "correct horse").unwrap();
        let mut tokens = Vec::new();
        for _ in 0..MAX_SESSIONS_PER_USER + 3 {
            tokens.push(accounts.open_session(user.clone()).unwrap().token);
        }
        assert_eq!(
            accounts.session_count(&user.id).unwrap(),
            MAX_SESSIONS_PER_USER
        );
        // The newest is always kept (sessions opened in the same
        // millisecond are as old as each other).
        assert!(accounts.session(tokens.last().unwrap()).unwrap().is_some());
    }
}
