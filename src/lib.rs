//! piarchive: a home backup appliance for the Raspberry Pi.
//!
//! Crate map (ARCHITECTURE.md has the longer version):
//! - [`app`]: the composition root: starts and stops everything `serve` runs.
//! - [`config`]: start-up configuration, resolved once.
//! - [`data_dir`]: the data folder's lock (one server per folder) and permissions.
//! - [`disk`]: free space, a full disk, writing a file range back now.
//! - [`store`]: the LMDB environment, typed tables, migrations.
//! - [`accounts`]: users, passwords, sessions, API tokens.
//! - [`archive`]: the archive catalog, streaming ingest, chunking, uploads.
//! - [`settings`]: run-time settings an admin changes.
//! - [`repo`]: the remote format: keys, encryption, object naming, manifests (pure).
//! - [`remote`]: trait `Remote`: S3 (own SigV4 signer over ureq) and a local folder.
//! - [`engine`]: the job queue and workers: upload, uncache, cache, delete.
//! - [`recovery`]: rebuilds the appliance from its bucket and the recovery passphrase.
//! - [`admin`]: sandboxed Rhai admin scripts and the built-in examples.
//! - [`device`]: status model, LED patterns, display frames, board profiles, GPIO/I2C.
//! - [`ops`]: each thing a user or admin can do, once (log line, events, engine wake-up).
//! - [`web`]: HTTP server, JSON API and pages: thin adapters over `ops`.
//! - [`ids`]: random ids and tokens, the wall clock.
//! - [`date`]: Unix seconds to UTC calendar dates and back (pure).
//! - [`units`]: byte counts as text for people (binary units).
//! - [`mdns`]: `piarchive.local` and the web UI announced on the LAN (mDNS).
//! - [`limits`]: every limit on what a network client can make the server hold.
//! - [`metrics`]: process-lifetime counters for `/metrics` and script `stats()`.
//! - [`sha256_pair`]: two SHA-256 at once with the x86 SHA instructions.
//! - [`selftest`]: known-answer tests of SHA-256, XChaCha20-Poly1305 and zstd; the code path each takes.
//! - [`init`]: `piarchive init`, PID 1 in the SD-card image: mounts, network, clock, supervision.
//! - [`power`]: how the server asks init to power off or reboot (both sides use it).
//! - [`update`]: firmware updates in place: signed bundles, A/B slots, trial and commit.

/// The unit tests share the integration tests' in-process S3 server
/// (`tests/support/s3_server.rs`), which names the crate `piarchive`.
#[cfg(test)]
extern crate self as piarchive;

pub mod accounts;
pub mod admin;
pub mod app;
pub mod archive;
pub mod config;
pub mod data_dir;
pub mod date;
pub mod device;
pub mod disk;
pub mod engine;
pub mod ids;
pub mod init;
pub mod limits;
pub mod mdns;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod power;
pub mod recovery;
pub mod remote;
pub mod repo;
pub mod selftest;
pub mod settings;
pub mod sha256_pair;
pub mod store;
pub mod tls;
pub mod units;
pub mod update;
pub mod web;
pub mod zone;
