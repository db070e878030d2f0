//! Where backups go: the remote settings with a live test, and moving to a
//! new remote — the JSON API (`api`) and the admin page (`page`).

pub mod api;
pub mod page;
