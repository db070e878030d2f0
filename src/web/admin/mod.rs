//! Administration: saved scripts, deployments, the system log, users and
//! settings — the JSON API (`api`) and the pages and form posts (`page`);
//! the dashboard's answer to "are we safe?" (`dashboard`) and every
//! user's archive records (`archives`).
//! Admin only; the role is checked in every handler.

pub mod api;
pub mod archives;
pub mod dashboard;
pub mod page;
