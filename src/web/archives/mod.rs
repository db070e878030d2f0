//! Archives: the list, one archive, uploads (one-shot `PUT` and tus),
//! downloads, renaming, caching — the JSON API (`api`, `tus`) and the
//! pages and form posts (`page`, with `progress`: the work under way, and
//! `list`: the list's search, sort links and bulk actions; `copies`: each
//! destination's copy in words).

pub mod api;
pub mod copies;
pub mod list;
pub mod page;
pub(crate) mod progress;
pub mod tus;
