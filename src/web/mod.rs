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
//! pages (`pages/`) only render data handed to them.

pub mod actions;
pub mod admin_api;
pub mod api;
pub mod auth;
pub mod device;
pub mod firmware;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod restore;
pub mod router;
pub mod sse;
pub mod tls;
pub mod transfers;
pub mod tus;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The LEDs and display, once the server knows its address.
    pub device: std::sync::OnceLock<device::DeviceLink>,
    /// Saved scripts, deployments, the system log.
    pub admin: Arc<crate::admin::Admin>,
    pub engine: Engine,
    /// A restore from a backup started on the setup page.
    pub restore: crate::recovery::RecoveryTask,
    /// The HTTPS certificate (served, installed, renewed).
    pub tls: Arc<crate::tls::Tls>,
    /// The HTTPS listener's address, once it listens.
    pub https_addr: std::sync::OnceLock<SocketAddr>,
    /// mDNS (`piarchive.local`), when a listener is on the LAN.
    pub mdns: std::sync::OnceLock<crate::mdns::Mdns>,
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
    #[error("Cannot prepare the admin scripts: {0}")]
    Admin(#[from] crate::admin::saved_scripts::ScriptsError),
    #[error("Cannot serve HTTP: {0}")]
    Http(String),
    #[error("Cannot prepare the HTTPS certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
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
        let admin = Arc::new(crate::admin::Admin::open(store.clone(), &config.data_dir)?);
        let engine = Engine::start(store.clone(), &config.data_dir);
        // What the engine has to tell people (a finished move, an old
        // folder deleted) goes to the system log.
        let log = admin.log.clone();
        engine.set_reporter(Box::new(move |level, message| {
            let subject = crate::admin::log::Subject::default();
            match level {
                crate::engine::ReportLevel::Info => log.info("storage", message, subject),
                crate::engine::ReportLevel::Warn => log.warn("storage", message, subject),
            }
        }));
        let remote = crate::engine::keys::remote_settings(&store, &config.data_dir)?;
        pages::layout::set_same_disk_remote(remote.is_on_disk_under(&config.data_dir));
        let tls = crate::tls::Tls::open(&config.data_dir, certificate_names(&config))?;
        Ok(App {
            tls,
            https_addr: std::sync::OnceLock::new(),
            mdns: std::sync::OnceLock::new(),
            config,
            store,
            accounts,
            archives,
            device: std::sync::OnceLock::new(),
            admin,
            engine,
            restore: Default::default(),
        })
    }
}

/// The names a new self-signed certificate is made for: the host name,
/// `piarchive.local`, the LAN address, and the HTTPS address when it is a
/// particular one.
fn certificate_names(config: &Config) -> Vec<String> {
    let mut addresses: Vec<std::net::IpAddr> = device::lan_address().into_iter().collect();
    if let Ok(listen) = config.listen_https.parse::<SocketAddr>() {
        if !listen.ip().is_unspecified() {
            addresses.push(listen.ip());
        }
    }
    crate::tls::default_names(&crate::tls::hostname(), &addresses)
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    http: Arc<tiny_http::Server>,
    https: Option<Arc<tiny_http::Server>>,
    /// The HTTPS listener's address, when there is one.
    pub https_addr: Option<SocketAddr>,
    workers: Vec<JoinHandle<()>>,
    /// Set by `shutdown`: a worker's failed `recv` is then expected.
    stopping: Arc<AtomicBool>,
    pub addr: SocketAddr,
    pub app: Arc<App>,
}

/// Serves `app` on `listener` (HTTP) and `https` (HTTPS, when given), each
/// with `config.http_threads` handler threads.
pub fn start(
    app: App,
    listener: TcpListener,
    https: Option<TcpListener>,
) -> Result<Server, StartError> {
    let local = |l: &TcpListener| l.local_addr().map_err(|e| StartError::Http(e.to_string()));
    let addr = local(&listener)?;
    let https_addr = https.as_ref().map(local).transpose()?;
    let http = Arc::new(
        tiny_http::Server::from_listener_with_limits(listener, None, crate::limits::http())
            .map_err(|e| StartError::Http(e.to_string()))?,
    );
    let https = match https {
        Some(listener) => Some(Arc::new(
            tiny_http::Server::from_listener_with_tls(
                listener,
                app.tls.server_config()?,
                crate::limits::http(),
            )
            .map_err(|e| StartError::Http(e.to_string()))?,
        )),
        None => None,
    };
    if let Some(https_addr) = https_addr {
        let _ = app.https_addr.set(https_addr);
    }
    let app = Arc::new(app);
    start_mdns(&app, addr, https_addr);
    start_device(&app, addr);
    // Scripts reach the engine (uncache, cache, verify, retry) from now on.
    app.admin
        .set_archive_actions(Arc::new(actions::EngineActions::new(&app)));
    app.admin
        .add_chore(tus::SWEEP_INTERVAL, tus::sweep_chore(&app));
    app.admin
        .add_chore(crate::tls::RENEWAL_CHECK, renewal_chore(&app));
    app.admin.start_scheduler();
    let stopping = Arc::new(AtomicBool::new(false));
    let transfers = transfers::Transfers::new();
    let mut workers = handlers(&app, &http, &stopping, &transfers);
    if let Some(https) = &https {
        workers.extend(handlers(&app, https, &stopping, &transfers));
    }
    Ok(Server {
        http,
        https,
        https_addr,
        workers,
        stopping,
        addr,
        app,
    })
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

/// Makes a new self-signed certificate before the old one expires.
fn renewal_chore(app: &Arc<App>) -> impl Fn() + Send + Sync + 'static {
    let app = Arc::downgrade(app);
    move || {
        let Some(app) = app.upgrade() else { return };
        match app.tls.renew_if_due() {
            Ok(Some(info)) => app.admin.log.info(
                "tls",
                &format!(
                    "Made a new self-signed certificate (SHA-256 {}), valid until {}.",
                    info.fingerprint_sha256, info.not_after
                ),
                Default::default(),
            ),
            Ok(None) => {}
            Err(err) => app
                .admin
                .log
                .warn("tls", &err.to_string(), Default::default()),
        }
    }
}

/// Announces the appliance on the LAN (see [`crate::mdns`]); what it has to
/// say (a rename) goes to the system log.
fn start_mdns(app: &Arc<App>, http: SocketAddr, https: Option<SocketAddr>) {
    let log = app.admin.log.clone();
    let report = Box::new(move |sentence: &str| {
        eprintln!("piarchive mdns: {sentence}");
        log.info("network", sentence, Default::default());
    });
    crate::mdns::start_for(&app.mdns, &app.store, http, https, report);
}

/// Starts the LED/display driver for the configured or detected board. Best
/// effort: without GPIO or a display the simulated board mirrors the state.
fn start_device(app: &Arc<App>, addr: SocketAddr) {
    use crate::device::{
        board, hardware_for, BoardProfile, DeviceDriver, DeviceStatus, DriverOptions,
    };
    let profile = BoardProfile::resolve(
        app.config.board.as_deref(),
        board::read_device_tree_model().as_deref(),
    )
    .unwrap_or_else(|err| {
        eprintln!("piarchive: {err}; using the simulated board");
        BoardProfile::simulated()
    });
    let driver = DeviceDriver::start(
        &profile,
        hardware_for(&profile),
        DeviceStatus::starting(device::web_url(addr)),
        DriverOptions::default(),
        Box::new(|line| eprintln!("piarchive device: {line}")),
    );
    match driver {
        Ok(driver) => {
            let stop = device::start_feed(app.clone(), driver.sender(), addr);
            let _ = app.device.set(device::DeviceLink::new(driver, stop));
        }
        Err(err) => eprintln!("piarchive device: {err}; running without LEDs and display"),
    }
}

impl Server {
    /// Stops accepting requests and waits for running handlers to finish.
    pub fn shutdown(self) {
        if let Some(device) = self.app.device.get() {
            device.stop();
        }
        self.app.admin.stop_scheduler();
        if let Some(mdns) = self.app.mdns.get() {
            mdns.stop();
        }
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
        self.app.engine.shutdown();
    }
}
