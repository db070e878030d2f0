//! The web server: tiny_http on a fixed pool of handler threads, the router,
//! authentication (sessions, CSRF, API tokens), the JSON API and the maud
//! pages.
//!
//! Owns: HTTP. Handlers translate requests into calls on `accounts`,
//! `archive` and `settings` and never open LMDB transactions themselves;
//! pages (`pages/`) only render data handed to them.

pub mod api;
pub mod auth;
pub mod http;
pub mod pages;
pub mod router;
pub mod sse;
pub mod tus;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::accounts::Accounts;
use crate::archive::Archives;
use crate::config::Config;
use crate::engine::Engine;
use crate::store::Store;

/// Everything a handler may use. Shared by all handler threads.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub accounts: Accounts,
    pub archives: Archives,
    pub engine: Engine,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("Cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Cannot open the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("Cannot prepare the archive folders: {0}")]
    Archives(#[from] crate::archive::ArchiveError),
    #[error("Cannot serve HTTP: {0}")]
    Http(String),
}

impl App {
    pub fn open(config: Config) -> Result<App, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.data_dir.join("db"), config.map_size)?;
        let accounts = Accounts::new(store.clone(), config.session_ttl);
        let archives = Archives::open(store.clone(), &config.data_dir)?;
        let engine = Engine::start(store.clone(), &config.data_dir);
        let remote = crate::engine::keys::remote_settings(&store, &config.data_dir)?;
        pages::layout::set_same_disk_remote(remote.is_on_disk_under(&config.data_dir));
        Ok(App {
            config,
            store,
            accounts,
            archives,
            engine,
        })
    }
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    http: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    pub addr: SocketAddr,
    pub app: Arc<App>,
}

/// Serves `app` on `listener` with `config.http_threads` handler threads.
pub fn start(app: App, listener: TcpListener) -> Result<Server, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let http = Arc::new(
        tiny_http::Server::from_listener(listener, None)
            .map_err(|e| StartError::Http(e.to_string()))?,
    );
    let app = Arc::new(app);
    let workers = (0..app.config.http_threads)
        .map(|_| {
            let http = http.clone();
            let app = app.clone();
            std::thread::spawn(move || {
                while let Ok(request) = http.recv() {
                    router::handle(&app, request);
                }
            })
        })
        .collect();
    Ok(Server {
        http,
        workers,
        addr,
        app,
    })
}

impl Server {
    /// Stops accepting requests and waits for running handlers to finish.
    pub fn shutdown(self) {
        for _ in &self.workers {
            self.http.unblock();
        }
        for worker in self.workers {
            let _ = worker.join();
        }
        self.app.engine.shutdown();
    }
}
