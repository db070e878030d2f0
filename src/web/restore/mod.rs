//! Setting a new appliance up from an existing backup — the JSON API
//! (`api`) and the setup page's restore form and progress (`page`).

pub mod api;
pub mod page;
