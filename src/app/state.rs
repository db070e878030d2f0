//! [`App`]: the shared state every handler thread, operation and script
//! host is handed — the open store, accounts, archives, admin tools,
//! engine and certificate, and what is learned after start (listener
//! addresses, the device link, mDNS).
//!
//! Made by `app::open`; owns no thread. Must not touch: HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::accounts::Accounts;
use crate::archive::Archives;
use crate::config::Config;
use crate::device::DeviceDriver;
use crate::engine::Engine;
use crate::store::Store;

/// Everything an operation may use. Shared by all handler threads.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub accounts: Accounts,
    pub archives: Arc<Archives>,
    /// The LEDs and display, once the server knows its address.
    pub device: OnceLock<DeviceLink>,
    /// Saved scripts, deployments, the system log.
    pub admin: Arc<crate::admin::Admin>,
    pub engine: Arc<Engine>,
    /// A restore from a backup started on the setup page.
    pub restore: crate::recovery::RecoveryTask,
    /// The HTTPS certificate (served, installed, renewed).
    pub tls: Arc<crate::tls::Tls>,
    /// The HTTPS listener's address, once it listens.
    pub https_addr: OnceLock<SocketAddr>,
    /// Whether the backups go to a folder on the appliance's own disk.
    pub on_box_only: Arc<OnBoxOnly>,
    /// mDNS (`piarchive.local`), when a listener is on the LAN.
    pub mdns: OnceLock<crate::mdns::Mdns>,
    /// The notifier thread (`crate::notify`), once started.
    pub notifier: OnceLock<crate::notify::Notifier>,
    /// A remote secret typed on the remote page whose save failed
    /// (`ops::remote::TypedSecrets`), in memory only.
    pub typed_secrets: crate::ops::remote::TypedSecrets,
}

impl App {
    /// See [`OnBoxOnly`].
    pub fn on_box_only(&self) -> bool {
        self.on_box_only.get()
    }
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

/// The device driver and the feed thread's stop flag (`app::device_feed`).
pub struct DeviceLink {
    pub driver: DeviceDriver,
    stop: Arc<AtomicBool>,
}

impl DeviceLink {
    pub fn new(driver: DeviceDriver, stop: Arc<AtomicBool>) -> DeviceLink {
        DeviceLink { driver, stop }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
