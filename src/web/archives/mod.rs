//! Archives: the list, one archive, uploads (one-shot `PUT` and tus),
//! downloads, renaming, caching — the JSON API (`api`, `tus`) and the
//! pages and form posts (`page`, with `progress`: the work under way).

pub mod api;
pub mod page;
mod progress;
pub mod tus;
