//! The web server: tiny_http on a fixed pool of handler threads, the router,
//! authentication (sessions, CSRF, API tokens), the JSON API and the maud
//! pages.
//!
//! Laid out by feature: each feature's JSON handlers and its pages sit
//! together, in a folder with `api.rs` and `page.rs` (`account`, `admin`,
//! `archives`, `remote`, `restore`, `trash`) or in one file when small
//! (`device`, `notifications`, `tls`, `updates`). The shared plumbing is at
//! this level: `router` (the one route table), `http`, `auth`, `sse`,
//! `paging`, `layout` (the page frame), `static_files`, `transfers`,
//! `metrics`.
//!
//! Uploads and downloads run on threads of their own (`transfers`), so slow
//! clients never take the handler threads that page loads and `/healthz`
//! need. If tiny_http's listener dies, the process exits with status 1 so
//! its supervisor starts it again: never a live process with a dead port.
//!
//! Owns: HTTP. Handlers translate requests into calls on `accounts`,
//! `archive` and `settings` and never open LMDB transactions themselves;
//! pages only render data handed to them. What runs behind the
//! handlers is started and stopped by `crate::app`, which hands over [`App`].

pub mod account;
pub mod admin;
pub mod archives;
pub mod auth;
pub mod device;
pub mod http;
pub mod layout;
pub mod metrics;
pub mod notifications;
pub mod paging;
pub mod remote;
pub mod restore;
pub mod router;
pub mod sse;
pub mod static_files;
pub mod tls;
pub mod transfers;
pub mod trash;
pub mod updates;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::app::state::App;

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
        // One budget of connections for both listeners.
        let limits = crate::limits::http();
        let http = Arc::new(
            tiny_http::Server::from_listener_with_limits(listener, None, limits.clone())
                .map_err(|e| HttpError(e.to_string()))?,
        );
        let https = match https {
            Some((listener, tls)) => Some(Arc::new(
                tiny_http::Server::from_listener_with_tls(listener, tls, limits)
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
                    Ok(request) => transfers::dispatch(&app, &transfers, request, router::handle),
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
