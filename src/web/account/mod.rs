//! The account: first setup, sign-in and sign-out, registration, the
//! caller's own account and API tokens — the JSON API (`api`) and the
//! pages and form posts (`page`).

pub mod api;
pub mod page;
