//! The composition root: what `piarchive serve` starts, in which order, and
//! how it stops.
//!
//! [`start`] takes the data folder's lock, opens the store, the accounts,
//! the archives, the admin tools and the HTTPS certificate, starts the
//! transfer engine, binds the listeners, starts the LED/display driver and
//! its status feed (`device_feed`), starts the admin scheduler with its
//! chores (`chores`) and finally the web handler threads.
//! [`Running::shutdown`] stops them in the reverse order. [`App`]
//! (`state`) is the shared state handed to `web`, `ops` and script hosts.
//!
//! The other commands (`user add`, `recover`, `update`, `init`) never come
//! here: they open what they need themselves and start no engine.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use crate::accounts::Accounts;
use crate::admin::log::Subject;
use crate::admin::Admin;
use crate::archive::Archives;
use crate::config::Config;
use crate::data_dir::{self, DataDirLock};
use crate::engine::{Engine, ReportLevel};
use crate::tls::Tls;
use crate::web;

mod chores;
pub mod device_feed;
mod notifier;
pub mod state;

use state::{App, DeviceLink, OnBoxOnly};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DataDir(#[from] data_dir::DataDirError),
    #[error("Cannot create the data directory {path}: {source}")]
    CreateDataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address} (is another piarchive running?): {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot listen for HTTPS on {address} (is another piarchive running?): {source}")]
    ListenHttps {
        address: String,
        source: std::io::Error,
    },
    #[error("Cannot open the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("Cannot prepare the archive folders: {0}")]
    Archives(#[from] crate::archive::ArchiveError),
    #[error("Cannot prepare the admin scripts: {0}")]
    Admin(#[from] crate::admin::saved_scripts::ScriptsError),
    #[error("Cannot serve HTTP: {0}")]
    Http(#[from] web::HttpError),
    #[error("Cannot prepare the HTTPS certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// The running appliance. Dropping it does not stop it; call
/// [`Running::shutdown`].
pub struct Running {
    /// The HTTP address served.
    pub addr: SocketAddr,
    /// The HTTPS address served, when there is one.
    pub https_addr: Option<SocketAddr>,
    server: web::Server,
    app: Arc<App>,
    /// Held while the process serves: one server per data folder.
    _lock: DataDirLock,
}

/// Starts the appliance on the data folder and addresses of `config` (an
/// empty `listen_https` serves no HTTPS).
pub fn start(config: Config) -> Result<Running, StartError> {
    // More connections and files than the default 1024 when the system allows.
    crate::limits::raise_open_files_limit();
    let lock = data_dir::lock(&config.data_dir)?;
    let data = config.data_dir.clone();
    std::thread::spawn(move || {
        if let Err(err) = data_dir::make_private(&data) {
            eprintln!("piarchive: {err}");
        }
    });
    let (listener, https) = bind(&config)?;
    let app_cell = crate::ops::script_host::AppCell::default();
    let app = open(config, crate::ops::script_host::maker(app_cell.clone()))?;
    let https = match https {
        Some(listener) => Some((listener, app.tls.server_config()?)),
        None => None,
    };
    let listeners = web::Listeners::open(listener, https)?;
    if let Some(https_addr) = listeners.https_addr {
        let _ = app.https_addr.set(https_addr);
    }
    let app = Arc::new(app);
    // Script runs see the app from now on (none can start before).
    let _ = app_cell.set(Arc::downgrade(&app));
    let addr = listeners.addr;
    start_mdns(&app, addr, listeners.https_addr);
    start_device(&app, addr);
    start_admin(&app);
    notifier::start(&app);
    let https_addr = listeners.https_addr;
    let server = web::serve(app.clone(), listeners);
    Ok(Running {
        addr,
        https_addr,
        server,
        app,
        _lock: lock,
    })
}

impl Running {
    /// Stops the device feed, the scheduler, the web handlers (waiting for
    /// running requests) and the engine, in that order.
    pub fn shutdown(self) {
        if let Some(device) = self.app.device.get() {
            device.stop();
        }
        self.app.admin.stop_scheduler();
        if let Some(notifier) = self.app.notifier.get() {
            notifier.stop();
        }
        if let Some(mdns) = self.app.mdns.get() {
            mdns.stop();
        }
        self.server.shutdown();
        self.app.engine.shutdown();
    }
}

/// The HTTP and (unless `listen_https` is empty) HTTPS listeners.
fn bind(config: &Config) -> Result<(TcpListener, Option<TcpListener>), StartError> {
    let listener = TcpListener::bind(&config.listen).map_err(|source| StartError::Listen {
        address: config.listen.clone(),
        source,
    })?;
    let https = match config.listen_https.as_str() {
        "" => None,
        address => Some(
            TcpListener::bind(address).map_err(|source| StartError::ListenHttps {
                address: address.to_string(),
                source,
            })?,
        ),
    };
    Ok((listener, https))
}

/// Opens the store and everything kept in it, and starts the engine.
fn open(config: Config, script_hosts: crate::admin::HostMaker) -> Result<App, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::CreateDataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    crate::disk::watch(&config.data_dir);
    // Read transactions write LMDB's lock file: in RAM, not on the SD card.
    std::fs::create_dir_all(config.data_dir.join("db")).map_err(|source| {
        StartError::CreateDataDir {
            path: config.data_dir.join("db"),
            source,
        }
    })?;
    crate::store::lock_file::keep_in_ram(&config.data_dir.join("db"));
    // On a trial boot after an update: not migrated until committed.
    let store = crate::update::migration::open_store(&config.data_dir.join("db"), config.map_size)?;
    let accounts = Accounts::new(store.clone(), config.session_ttl);
    let archives = Arc::new(Archives::open(store.clone(), &config.data_dir)?);
    let admin = Arc::new(Admin::open(store.clone(), script_hosts)?);
    let engine = Arc::new(Engine::start(store.clone(), &config.data_dir));
    engine.set_zone(config.zone.clone());
    // What the engine has to tell people (a finished move, an old folder
    // deleted) goes to the system log.
    let log = admin.log.clone();
    engine.set_reporter(Box::new(move |level, message| {
        let subject = Subject::default();
        match level {
            ReportLevel::Info => log.info("storage", message, subject),
            ReportLevel::Warn => log.warn("storage", message, subject),
        }
    }));
    let remote = crate::settings::remote::remote_settings(&store, &config.data_dir)?;
    let on_box_only = Arc::new(OnBoxOnly::new(remote.is_on_disk_under(&config.data_dir)));
    let tls = Tls::open(&config.data_dir, certificate_names(&config))?;
    Ok(App {
        tls,
        https_addr: std::sync::OnceLock::new(),
        mdns: std::sync::OnceLock::new(),
        notifier: std::sync::OnceLock::new(),
        config,
        store,
        accounts,
        archives,
        device: std::sync::OnceLock::new(),
        admin,
        engine,
        restore: Default::default(),
        on_box_only,
        typed_secrets: Default::default(),
    })
}

/// The names a new self-signed certificate is made for: the host name,
/// `piarchive.local`, the LAN address, and the HTTPS address when it is a
/// particular one.
fn certificate_names(config: &Config) -> Vec<String> {
    let mut addresses: Vec<std::net::IpAddr> = device_feed::lan_address().into_iter().collect();
    if let Ok(listen) = config.listen_https.parse::<SocketAddr>() {
        if !listen.ip().is_unspecified() {
            addresses.push(listen.ip());
        }
    }
    crate::tls::default_names(&crate::tls::hostname(), &addresses)
}

/// Adds the chores and starts the admin scheduler.
fn start_admin(app: &Arc<App>) {
    app.admin
        .add_chore(chores::SWEEP_INTERVAL, chores::upload_expiry(app));
    // What became due while the appliance was off goes now, then every minute.
    let purge = chores::trash_purge(app);
    purge();
    app.admin.add_chore(chores::PURGE_CHECK, purge);
    app.admin.add_chore(
        crate::tls::RENEWAL_CHECK,
        chores::certificate_renewal(app.tls.clone(), app.admin.log.clone()),
    );
    app.admin.add_chore(
        crate::engine::lock::EXTEND_INTERVAL,
        chores::lock_extension(app.engine.clone(), app.admin.log.clone()),
    );
    app.admin.start_scheduler();
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

/// Starts the LED/display driver for the configured or detected board and
/// the thread that feeds it the status. Best effort: without GPIO or a
/// display the simulated board mirrors the state.
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
        DeviceStatus::starting(device_feed::web_url(addr)),
        DriverOptions::default(),
        Box::new(|line| eprintln!("piarchive device: {line}")),
    );
    match driver {
        Ok(driver) => {
            let stop = device_feed::start_feed(app.clone(), driver.sender(), addr);
            let _ = app.device.set(DeviceLink::new(driver, stop));
        }
        Err(err) => eprintln!("piarchive device: {err}; running without LEDs and display"),
    }
}
