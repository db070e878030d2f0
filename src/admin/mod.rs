//! Administration: the sandboxed script engine and the scripts shipped with
//! the appliance. Deployments and the system log are wired in by the lead.

pub mod builtin;
pub mod script;
