//! A user's API tokens: make one (its secret shown once), list them,
//! delete one. Each acts on the caller's own tokens only.

use crate::accounts::Caller;
use crate::app::state::App;
use crate::store::records::ApiTokenRecord;

/// The new token and its secret, which is never stored or shown again.
pub fn create(app: &App, caller: &Caller, name: &str) -> super::Result<(ApiTokenRecord, String)> {
    Ok(app.accounts.create_token(&caller.user.id, name)?)
}

pub fn list(app: &App, caller: &Caller) -> super::Result<Vec<ApiTokenRecord>> {
    Ok(app.accounts.tokens(&caller.user.id)?)
}

/// A page of the caller's tokens, oldest first, after the token `after`,
/// and the id to continue after when more follow.
pub fn page(
    app: &App,
    caller: &Caller,
    after: Option<&str>,
    limit: usize,
) -> super::Result<(Vec<ApiTokenRecord>, Option<String>)> {
    Ok(app.accounts.tokens_page(&caller.user.id, after, limit)?)
}

pub fn delete(app: &App, caller: &Caller, token_id: &str) -> super::Result<()> {
    Ok(app.accounts.delete_token(&caller.user.id, token_id)?)
}
