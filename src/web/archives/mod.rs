//! Archives: the list, one archive, uploads (one-shot `PUT` and tus),
//! downloads, renaming, caching — the JSON API (`api`, `tus`) and the
//! pages and form posts (`page`, with `progress`: the work under way, and
//! `list`: the list's search, sort links and bulk actions).

pub mod api;
pub mod list;
pub mod page;
mod progress;
pub mod tus;
