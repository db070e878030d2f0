//! The web server: tiny_http on a fixed pool of handler threads, the router,
//! authentication (sessions, CSRF, API tokens), the JSON API and the maud
//! pages.
//!
//! Uploads and downloads run on threads of their own (`transfers`), so slow
//! clients never take the handler threads that page loads and `/healthz`
//! need. If tiny_http's listener dies, the process exits with status 1 so
//! its supervisor starts it again: never a live process with a dead port.
//!
//! Owns: HTTP. Handlers translate requests into calls on `accounts`,
//! `archive` and `settings` and never open LMDB transactions themselves;
//! pages (`pages/`) only render data handed to them. What runs behind the
//! handlers is started and stopped by `crate::app`, which hands over [`App`].

pub mod actions;
pub mod admin_api;
pub mod api;
pub mod auth;
pub mod device;
pub mod firmware;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod pages;
pub mod paging;
pub mod restore;
pub mod router;
pub mod sse;
pub mod tls;
pub mod transfers;
pub mod tus;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::accounts::Accounts;
use crate::archive::Archives;
use crate::config::Config;
use crate::engine::Engine;
use crate::store::Store;

/// Everything a handler may use. Shared by all handler threads; made by
/// `crate::app`.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub accounts: Accounts,
    pub archives: Arc<Archives>,
    /// The LEDs and display, once the server knows its address.
    pub device: std::sync::OnceLock<device::DeviceLink>,
    /// Saved scripts, deployments, the system log.
    pub admin: Arc<crate::admin::Admin>,
    pub engine: Arc<Engine>,
    /// A restore from a backup started on the setup page.
    pub restore: crate::recovery::RecoveryTask,
    /// The HTTPS certificate (served, installed, renewed).
    pub tls: Arc<crate::tls::Tls>,
    /// The HTTPS listener's address, once it listens.
    pub https_addr: std::sync::OnceLock<SocketAddr>,
    /// Whether the backups go to a folder on the appliance's own disk.
    pub on_box_only: Arc<OnBoxOnly>,
    /// mDNS (`piarchive.local`), when a listener is on the LAN.
    pub mdns: std::sync::OnceLock<crate::mdns::Mdns>,
    /// The notifier thread (`crate::notify`), once started.
    pub notifier: std::sync::OnceLock<crate::notify::Notifier>,
}

/// Whether the backups go to a folder on the appliance's own disk (the
/// default remote): no page or display may then call an archive "backed
/// up" or "safe", and every signed-in page shows a warning banner. Set at
/// start and whenever the remote settings are saved or restored.
#[derive(Debug, Default)]
pub struct OnBoxOnly(AtomicBool);

impl OnBoxOnly {
    pub fn new(on_box_only: bool) -> OnBoxOnly {
        OnBoxOnly(AtomicBool::new(on_box_only))
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Follows `remote`: on the box while it is a folder under `data_dir`.
    pub fn follow(&self, remote: &crate::remote::RemoteSettings, data_dir: &std::path::Path) {
        self.0
            .store(remote.is_on_disk_under(data_dir), Ordering::Relaxed);
    }
}

impl App {
    /// See [`OnBoxOnly`].
    pub fn on_box_only(&self) -> bool {
        self.on_box_only.get()
    }
}

/// The web server could not listen.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The HTTP listener and, when there is one, the HTTPS listener with its
/// TLS configuration, accepting connections (not yet answered).
pub struct Listeners {
    http: Arc<tiny_http::Server>,
    https: Option<Arc<tiny_http::Server>>,
    pub addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
}

impl Listeners {
    pub fn open(
        listener: TcpListener,
        https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    ) -> Result<Listeners, HttpError> {
        let local = |l: &TcpListener| l.local_addr().map_err(|e| HttpError(e.to_string()));
        let addr = local(&listener)?;
        let https_addr = https.as_ref().map(|(l, _)| local(l)).transpose()?;
        let http = Arc::new(
            tiny_http::Server::from_listener_with_limits(listener, None, crate::limits::http())
                .map_err(|e| HttpError(e.to_string()))?,
        );
        let https = match https {
            Some((listener, tls)) => Some(Arc::new(
                tiny_http::Server::from_listener_with_tls(listener, tls, crate::limits::http())
                    .map_err(|e| HttpError(e.to_string()))?,
            )),
            None => None,
        };
        Ok(Listeners {
            http,
            https,
            addr,
            https_addr,
        })
    }
}

/// A running web server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    http: Arc<tiny_http::Server>,
    https: Option<Arc<tiny_http::Server>>,
    workers: Vec<JoinHandle<()>>,
    /// Set by `shutdown`: a worker's failed `recv` is then expected.
    stopping: Arc<AtomicBool>,
}

/// Answers the requests of both listeners with `app`, each with
/// `config.http_threads` handler threads.
pub fn serve(app: Arc<App>, listeners: Listeners) -> Server {
    let stopping = Arc::new(AtomicBool::new(false));
    let transfers = transfers::Transfers::new();
    let mut workers = handlers(&app, &listeners.http, &stopping, &transfers);
    if let Some(https) = &listeners.https {
        workers.extend(handlers(&app, https, &stopping, &transfers));
    }
    Server {
        http: listeners.http,
        https: listeners.https,
        workers,
        stopping,
    }
}

/// The handler threads answering the requests of one listener.
fn handlers(
    app: &Arc<App>,
    http: &Arc<tiny_http::Server>,
    stopping: &Arc<AtomicBool>,
    transfers: &Arc<transfers::Transfers>,
) -> Vec<JoinHandle<()>> {
    (0..app.config.http_threads)
        .map(|_| {
            let (http, app) = (http.clone(), app.clone());
            let (stopping, transfers) = (stopping.clone(), transfers.clone());
            std::thread::spawn(move || loop {
                match http.recv() {
                    Ok(request) => transfers::dispatch(&app, &transfers, request),
                    Err(_) if stopping.load(Ordering::SeqCst) => return,
                    Err(err) => {
                        eprintln!("piarchive: {err}; exiting so that piarchive is started again");
                        std::process::exit(1);
                    }
                }
            })
        })
        .collect()
}

impl Server {
    /// Stops accepting requests and waits for running handlers to finish.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.http.unblock();
            if let Some(https) = &self.https {
                https.unblock();
            }
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}
