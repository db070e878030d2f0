//! Where backups go: the remote settings with a live test, moving to a
//! new remote, and the further destinations that each keep a whole copy
//! (issue 24) — the JSON API (`api`), the admin page (`page`) and its
//! Destinations section with the add and remove flows (`destinations`).

pub mod api;
pub mod destinations;
pub mod page;
