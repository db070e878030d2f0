//! Invitations: one-time links an admin hands a family member so they can
//! make an account while registration is closed. Each is a random token
//! kept only as its SHA-256 (like sessions), with an expiry and the role
//! the new account gets; creating the account removes the invitation in
//! the same transaction, so a token works once.
//!
//! Stored in the `settings` table under `invitation/<id>`, where the id is
//! the first half of the token's hash: a token finds its invitation in one
//! read, and the id alone lets no one in. Must not touch: HTTP.

use heed::RwTxn;
use serde::{Deserialize, Serialize};

use super::AccountError;
use crate::ids;
use crate::store::records::Role;
use crate::store::{Store, StoreError, Tables};

const PREFIX: &str = "invitation/";

/// How long an invitation lasts unless the admin says otherwise: a week.
pub const DEFAULT_EXPIRY_SECS: u64 = 7 * 86_400;
/// The shortest an invitation may last: ten minutes.
pub const MIN_EXPIRY_SECS: u64 = 600;
/// The longest: thirty days.
pub const MAX_EXPIRY_SECS: u64 = 30 * 86_400;
/// Open invitations at most; past that an admin withdraws some first.
pub const MAX_OPEN: usize = 100;

/// An open invitation, as stored and listed (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    pub role: Role,
    /// The admin who made it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A new invitation and its token, shown once.
pub struct NewInvitation {
    pub invitation: Invitation,
    pub token: String,
}

fn key(id: &str) -> Vec<u8> {
    format!("{PREFIX}{id}").into_bytes()
}

fn id_of(token_hash: &str) -> &str {
    &token_hash[..32]
}

/// Makes an invitation for `role` lasting `expires_in_secs` (checked
/// against [`MIN_EXPIRY_SECS`]..=[`MAX_EXPIRY_SECS`]).
pub fn create(
    store: &Store,
    role: Role,
    expires_in_secs: u64,
    created_by: &str,
    now: i64,
) -> Result<NewInvitation, AccountError> {
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&expires_in_secs) {
        return Err(AccountError::Invalid(format!(
            "An invitation lasts between {} minutes and {} days; expires_in_seconds must be between {MIN_EXPIRY_SECS} and {MAX_EXPIRY_SECS}.",
            MIN_EXPIRY_SECS / 60,
            MAX_EXPIRY_SECS / 86_400
        )));
    }
    let token = ids::random_token();
    let token_hash = ids::sha256_hex(token.as_bytes());
    let invitation = Invitation {
        id: id_of(&token_hash).to_string(),
        token_hash,
        role,
        created_by: created_by.to_string(),
        created_at: now,
        expires_at: now + expires_in_secs as i64,
    };
    store.write(|txn, tables| -> Result<(), AccountError> {
        if open_in(txn, tables, now)?.len() >= MAX_OPEN {
            return Err(AccountError::Invalid(format!(
                "There are {MAX_OPEN} open invitations already; withdraw some first."
            )));
        }
        let value = serde_json::to_value(&invitation).unwrap_or(serde_json::Value::Null);
        tables.settings.put(txn, &key(&invitation.id), &value)?;
        Ok(())
    })?;
    Ok(NewInvitation { invitation, token })
}

/// The open invitations, the newest first; expired ones are dropped.
pub fn list(store: &Store, now: i64) -> Result<Vec<Invitation>, StoreError> {
    store.write(|txn, tables| open_in(txn, tables, now))
}

/// Reads every invitation, deletes the expired ones, returns the rest.
fn open_in(txn: &mut RwTxn, tables: &Tables, now: i64) -> Result<Vec<Invitation>, StoreError> {
    let mut open = Vec::new();
    for (key, value) in tables.settings.prefix(txn, PREFIX.as_bytes())? {
        match serde_json::from_value::<Invitation>(value) {
            Ok(invitation) if invitation.expires_at > now => open.push(invitation),
            _ => {
                tables.settings.delete(txn, &key)?;
            }
        }
    }
    open.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    Ok(open)
}

/// Withdraws an invitation; its link stops working at once.
pub fn withdraw(store: &Store, id: &str) -> Result<Invitation, AccountError> {
    if !ids::is_valid_id(id) {
        return Err(AccountError::InvitationNotFound);
    }
    store.write(|txn, tables| {
        let invitation = tables
            .settings
            .get(txn, &key(id))?
            .and_then(|value| serde_json::from_value::<Invitation>(value).ok())
            .ok_or(AccountError::InvitationNotFound)?;
        tables.settings.delete(txn, &key(id))?;
        Ok(invitation)
    })
}

/// The open invitation `token` opens, if any (for the sign-up page).
pub fn find(store: &Store, token: &str, now: i64) -> Result<Option<Invitation>, StoreError> {
    let token_hash = ids::sha256_hex(token.as_bytes());
    let txn = store.read()?;
    Ok(store
        .tables
        .settings
        .get(&txn, &key(id_of(&token_hash)))?
        .and_then(|value| serde_json::from_value::<Invitation>(value).ok())
        .filter(|invitation| invitation.token_hash == token_hash && invitation.expires_at > now))
}

/// In the transaction that creates the account: removes the invitation
/// `token` opens and returns it; an unknown, used or expired token is
/// refused with [`AccountError::InvitationInvalid`].
pub fn take(
    txn: &mut RwTxn,
    tables: &Tables,
    token: &str,
    now: i64,
) -> Result<Invitation, AccountError> {
    let token_hash = ids::sha256_hex(token.as_bytes());
    let key = key(id_of(&token_hash));
    let invitation = tables
        .settings
        .get(txn, &key)?
        .and_then(|value| serde_json::from_value::<Invitation>(value).ok())
        .filter(|invitation| invitation.token_hash == token_hash)
        .ok_or(AccountError::InvitationInvalid)?;
    tables.settings.delete(txn, &key)?;
    if invitation.expires_at <= now {
        return Err(AccountError::InvitationInvalid);
    }
    Ok(invitation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invitation_works_once_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let made = create(&store, Role::Admin, 3600, "u1", 1000).unwrap();
        assert_eq!(list(&store, 1000).unwrap(), vec![made.invitation.clone()]);
        assert!(find(&store, &made.token, 1000).unwrap().is_some());
        assert!(find(&store, "wrong", 1000).unwrap().is_none());
        let taken = store
            .write(|txn, tables| take(txn, tables, &made.token, 1001))
            .unwrap();
        assert_eq!(taken.role, Role::Admin);
        let again = store.write(|txn, tables| take(txn, tables, &made.token, 1002));
        assert!(matches!(again, Err(AccountError::InvitationInvalid)));

        let short = create(&store, Role::Member, 600, "u1", 1000).unwrap();
        assert!(find(&store, &short.token, 1600).unwrap().is_none());
        assert!(list(&store, 1600).unwrap().is_empty(), "expired ones leave");
        let late = store.write(|txn, tables| take(txn, tables, &short.token, 1600));
        assert!(matches!(late, Err(AccountError::InvitationInvalid)));
    }

    #[test]
    fn withdrawn_invitations_stop_working_and_bad_expiry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let made = create(&store, Role::Member, 3600, "u1", 0).unwrap();
        withdraw(&store, &made.invitation.id).unwrap();
        assert!(find(&store, &made.token, 1).unwrap().is_none());
        assert!(matches!(
            withdraw(&store, &made.invitation.id),
            Err(AccountError::InvitationNotFound)
        ));
        assert!(matches!(
            create(&store, Role::Member, 5, "u1", 0),
            Err(AccountError::Invalid(_))
        ));
    }
}
