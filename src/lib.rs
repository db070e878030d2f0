//! piarchive: a home backup appliance for the Raspberry Pi.
//!
//! Crate map (ARCHITECTURE.md has the longer version):
//! - [`config`]: start-up configuration, resolved once.
//! - [`data_dir`]: the data folder's lock (one server per folder) and permissions.
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
//! - [`web`]: HTTP server, JSON API and pages.
//! - [`ids`]: random ids and tokens, the wall clock.
//! - [`mdns`]: `piarchive.local` and the web UI announced on the LAN (mDNS).
//! - [`limits`]: every limit on what a network client can make the server hold.
//! - [`firmware`]: init mode (PID 1 in the SD-card image): mounts, network, clock, supervision.
//! - [`update`]: firmware updates in place: signed bundles, A/B slots, trial and commit.

pub mod accounts;
pub mod admin;
pub mod archive;
pub mod config;
pub mod data_dir;
pub mod device;
pub mod engine;
pub mod firmware;
pub mod ids;
pub mod limits;
pub mod mdns;
pub mod recovery;
pub mod remote;
pub mod repo;
pub mod settings;
pub mod store;
pub mod tls;
pub mod update;
pub mod web;

use std::net::TcpListener;

/// Opens the data directory and serves the web UI on `listener`. The same
/// entry is used by `main` and by the tests (on port 0).
pub fn serve(
    config: config::Config,
    listener: TcpListener,
    https: Option<TcpListener>,
) -> anyhow::Result<web::Server> {
    // More connections and files than the default 1024 when the system allows.
    limits::raise_open_files_limit();
    let app = web::App::open(config)?;
    Ok(web::start(app, listener, https)?)
}
