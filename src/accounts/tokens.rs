//! API tokens: made (the secret shown once, at most
//! [`MAX_TOKENS_PER_USER`] per user, counted and inserted in one write
//! transaction), listed a page at a time, deleted. The `api_tokens` table
//! is keyed by the SHA-256 of the secret.

use super::{hash_token, AccountError, Accounts};
use crate::ids;
use crate::store::records::ApiTokenRecord;

/// API tokens one user may have: a script per machine or service is a
/// handful; fifty is plenty and keeps a member from filling the database.
pub const MAX_TOKENS_PER_USER: usize = 50;

/// Where a page of tokens continues: after the token with this id.
pub type TokenCursor = String;

impl Accounts {
    /// Creates an API token; the secret is returned once and never stored.
    /// Refused past [`MAX_TOKENS_PER_USER`] and while the database is
    /// nearly full.
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
        self.store.room_for_growth()?;
        let secret = format!("pia_{}", ids::random_token());
        let record = ApiTokenRecord {
            id: ids::random_id(),
            user_id: user_id.to_string(),
            name: name.to_string(),
            created_at: ids::now_secs(),
        };
        self.store
            .write(|txn, tables| -> Result<(), AccountError> {
                let mine = tables
                    .api_tokens
                    .all(txn)?
                    .iter()
                    .filter(|(_, t)| t.user_id == user_id)
                    .count();
                if mine >= MAX_TOKENS_PER_USER {
                    return Err(AccountError::TooManyTokens {
                        max: MAX_TOKENS_PER_USER,
                    });
                }
                tables.api_tokens.put(txn, &hash_token(&secret), &record)?;
                Ok(())
            })?;
        Ok((record, secret))
    }

    /// Every token of `user_id`, oldest first.
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
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    /// Up to `limit` tokens of `user_id`, oldest first, after the token
    /// `after` when given; and the cursor of the next page when more
    /// follow. A cursor that names no token of the user is refused.
    pub fn tokens_page(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ApiTokenRecord>, Option<TokenCursor>), AccountError> {
        let all = self.tokens(user_id)?;
        let start = match after {
            None => 0,
            Some(after) => {
                1 + all.iter().position(|t| t.id == after).ok_or_else(|| {
                    AccountError::Invalid(
                        "after is not a token of yours: start again from the first page.".into(),
                    )
                })?
            }
        };
        let page: Vec<ApiTokenRecord> = all.iter().skip(start).take(limit).cloned().collect();
        let more = start + page.len() < all.len();
        let next = page.last().filter(|_| more).map(|t| t.id.clone());
        Ok((page, next))
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Store;

    #[test]
    fn tokens_stop_at_the_cap_and_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let accounts = Accounts::new(store, Duration::from_secs(3600));
        let user = accounts.setup("alice", "correct horse").unwrap();
        for n in 0..MAX_TOKENS_PER_USER {
            accounts.create_token(&user.id, &format!("t{n}")).unwrap();
        }
        let err = accounts.create_token(&user.id, "one more").unwrap_err();
        assert!(matches!(err, AccountError::TooManyTokens { max: 50 }));
        assert!(err.to_string().contains("50 API tokens"), "{err}");
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..MAX_TOKENS_PER_USER {
            let (page, next) = accounts.tokens_page(&user.id, after.as_deref(), 7).unwrap();
            seen.extend(page.into_iter().map(|t| t.id));
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let all: Vec<String> = accounts
            .tokens(&user.id)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(seen, all);
        assert!(accounts.tokens_page(&user.id, Some("nope"), 7).is_err());
    }
}
