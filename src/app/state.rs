//! [`App`]: the shared state every handler thread, operation and script
//! host is handed — the open store, accounts, archives, admin tools,
//! engine and certificate, and what is learned after start (listener
//! addresses, the device link, mDNS).
//!
//! Made by `app::open`; owns no thread. Must not touch: HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::accounts::Accounts;
use crate::archive::Archives;
use crate::config::Config;
use crate::device::DeviceDriver;
use crate::engine::Engine;
use crate::remote::placement::Placement;
use crate::remote::RemoteSettings;
use crate::store::records::{ArchiveRecord, ArchiveState};
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
    /// Where the backups go: off-site, on this box, unreachable.
    pub placement: Arc<RemotePlacement>,
    /// mDNS (`piarchive.local`), when a listener is on the LAN.
    pub mdns: OnceLock<crate::mdns::Mdns>,
    /// The notifier thread (`crate::notify`), once started.
    pub notifier: OnceLock<crate::notify::Notifier>,
    /// A remote secret typed on the remote page whose save failed
    /// (`ops::remote::TypedSecrets`), in memory only.
    pub typed_secrets: crate::ops::remote::TypedSecrets,
}

impl App {
    /// Whether nothing may be called "off-site" now: the remote is not off
    /// this box ([`RemotePlacement`]).
    pub fn on_box_only(&self) -> bool {
        !self.placement().is_off_site()
    }

    /// Where the remote keeps the backups now (see [`RemotePlacement`]).
    pub fn placement(&self) -> Placement {
        self.placement.get()
    }

    /// The one rule for `off_site` (API, pages, dashboard, scripts'
    /// `stats()`): every part of the archive is stored, at a destination
    /// not attached to this box.
    pub fn off_site(&self, archive: &ArchiveRecord) -> bool {
        is_off_site(archive, &self.placement())
    }
}

/// [`App::off_site`] with the placement handed in (judged once for a list).
pub fn is_off_site(archive: &ArchiveRecord, placement: &Placement) -> bool {
    placement.is_off_site()
        && matches!(
            archive.state,
            ArchiveState::BackedUp | ArchiveState::Uncached
        )
        && archive.parts_remote >= archive.parts_total
}

/// Where the backups go, judged by `remote::placement` (off-site, this
/// box's disk, a USB disk, unreachable): no page, display line or LED may
/// call an archive "off-site" or "safe" unless it is
/// [`Placement::OffSite`]. Set at start and whenever the remote settings
/// are saved or restored; judged again at most every
/// [`PLACEMENT_MAX_AGE`] (a USB disk unplugged, a folder gone).
#[derive(Debug)]
pub struct RemotePlacement(Mutex<Judged>);

#[derive(Debug)]
struct Judged {
    remote: RemoteSettings,
    data_dir: PathBuf,
    at: Instant,
    placement: Placement,
}

/// How long a judged placement is trusted before the mounts are read again.
pub const PLACEMENT_MAX_AGE: Duration = Duration::from_secs(5);

impl RemotePlacement {
    pub fn new(remote: &RemoteSettings, data_dir: &Path) -> RemotePlacement {
        RemotePlacement(Mutex::new(Judged {
            remote: remote.clone(),
            data_dir: data_dir.to_path_buf(),
            at: Instant::now(),
            placement: crate::remote::placement::placement(remote, data_dir),
        }))
    }

    /// The placement, judged again when older than [`PLACEMENT_MAX_AGE`].
    pub fn get(&self) -> Placement {
        let mut judged = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if judged.at.elapsed() >= PLACEMENT_MAX_AGE {
            judged.placement =
                crate::remote::placement::placement(&judged.remote, &judged.data_dir);
            judged.at = Instant::now();
        }
        judged.placement.clone()
    }

    /// Follows new remote settings.
    pub fn follow(&self, remote: &RemoteSettings, data_dir: &Path) {
        let placement = crate::remote::placement::placement(remote, data_dir);
        let mut judged = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *judged = Judged {
            remote: remote.clone(),
            data_dir: data_dir.to_path_buf(),
            at: Instant::now(),
            placement,
        };
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
