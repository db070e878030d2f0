//! The trash: deleting an archive to the trash or for good, restoring it,
//! the list — the JSON API (`api`) and the pages and form posts (`page`).

pub mod api;
pub mod page;
