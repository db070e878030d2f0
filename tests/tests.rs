//! The integration tests: one binary, modules by area. Every test starts
//! the real `piarchive` binary on port 0 in its own temp dir.

mod support;

mod accounts;
mod admin;
mod archive_list;
mod archives;
mod browser;
mod browser_list;
mod browser_safety;
mod compression;
mod crash;
mod destinations;
mod destinations_crash;
mod destinations_fetch;
mod device;
mod disk_faults;
mod firmware;
#[cfg(feature = "garage-tests")]
mod garage;
mod hostile;
mod hostile_bucket;
mod hostile_members;
mod hostile_net;
mod invitations;
mod limits;
mod mdns;
mod notify;
mod notify_digest;
mod notify_members;
mod object_lock;
mod quotas;
mod recovery;
mod remote;
mod remote_engine;
mod remote_move;
mod tls;
mod trash;
mod trash_browser;
mod uploads;
mod verify;
