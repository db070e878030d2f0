//! The account: first setup, sign-in and sign-out, registration, the
//! caller's own account and API tokens — the JSON API (`api`) and the
//! pages and form posts (`page`); invitations (`invitations`: the admin's
//! API and section, the invitee's sign-up page) and the confirmation of
//! the recovery passphrase after setup (`passphrase`).

pub mod api;
pub mod invitations;
pub mod page;
pub mod passphrase;
