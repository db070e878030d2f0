//! Administration: saved scripts, deployments, the system log, users and
//! settings — the JSON API (`api`) and the pages and form posts (`page`).
//! Admin only; the role is checked in every handler.

pub mod api;
pub mod page;
