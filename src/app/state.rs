//! [`App`]: the shared state every handler thread, operation and script
//! host is handed — the open store, accounts, archives, admin tools,
//! engine and certificate, and what is learned after start (listener
//! addresses, the device link, mDNS).
//!
//! Made by `app::open`; owns no thread. Must not touch: HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::accounts::Accounts;
use crate::archive::Archives;
use crate::config::Config;
use crate::device::DeviceDriver;
use crate::engine::destinations::Destination;
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
    /// Whether nothing may be called "off-site" now: no destination is off
    /// this box ([`RemotePlacement`]).
    pub fn on_box_only(&self) -> bool {
        self.off_site_rule().on_box_only()
    }

    /// Where the main destination keeps the backups now (see
    /// [`RemotePlacement`]).
    pub fn placement(&self) -> Placement {
        self.placement.get()
    }

    /// Every destination, main first, with where it keeps the backups
    /// (judged at most every [`PLACEMENT_MAX_AGE`]). Only the main one when
    /// the store cannot be read.
    pub fn destinations(&self) -> Vec<(Destination, Placement)> {
        let listed = self.store.read().and_then(|txn| {
            crate::engine::destinations::list(&txn, &self.store.tables, &self.config.data_dir)
        });
        let listed = match listed {
            Ok(listed) => {
                let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
                self.placement.keep_only(&ids);
                listed
            }
            Err(_) => Vec::new(),
        };
        listed
            .into_iter()
            .map(|destination| {
                let placement = self
                    .placement
                    .of_destination(&destination.id, &destination.settings);
                (destination, placement)
            })
            .collect()
    }

    /// The archive's copy on every destination, main first
    /// (`engine::destinations::copies_of`); none when the store cannot be
    /// read.
    pub fn copies(&self, archive: &ArchiveRecord) -> Vec<crate::engine::destinations::Copy> {
        self.store
            .read()
            .and_then(|txn| {
                crate::engine::destinations::copies_of(
                    &txn,
                    &self.store.tables,
                    &self.config.data_dir,
                    archive,
                    self.engine.destination_health(),
                )
            })
            .unwrap_or_default()
    }

    /// How far copy destination `id` has come: `(complete, archives)`,
    /// the archives complete there and those that must be there.
    pub fn copy_progress(&self, id: &str) -> Result<(usize, usize), crate::store::StoreError> {
        let txn = self.store.read()?;
        let prefix = crate::store::copies::destination_prefix(id);
        let copies = self.store.tables.copies.prefix(&txn, &prefix)?;
        let complete = copies.iter().filter(|(_, copy)| copy.complete).count();
        Ok((complete, copies.len()))
    }

    /// The one rule for `off_site` and "off-site in N places", judged once
    /// for a page or a list ([`OffSiteRule`]).
    pub fn off_site_rule(&self) -> OffSiteRule<'_> {
        let copies_off_site = self
            .destinations()
            .into_iter()
            .filter(|(destination, placement)| {
                destination.id != crate::engine::destinations::MAIN && placement.is_off_site()
            })
            .map(|(destination, _)| destination.id)
            .collect();
        OffSiteRule {
            store: &self.store,
            main: self.placement(),
            copies_off_site,
        }
    }

    /// The one rule for `off_site` (API, pages, dashboard, scripts'
    /// `stats()`): a complete copy of the archive is on a destination not
    /// attached to this box.
    pub fn off_site(&self, archive: &ArchiveRecord) -> bool {
        self.off_site_rule().is_off_site(archive)
    }
}

/// Which destinations are off this box, judged once: counts an archive's
/// complete off-site copies ("off-site in 2 places").
pub struct OffSiteRule<'a> {
    store: &'a Store,
    /// Where the main destination keeps the backups.
    pub main: Placement,
    /// The copy destinations (issue 24) that are off-site, by id.
    copies_off_site: Vec<String>,
}

impl OffSiteRule<'_> {
    /// No destination is off-site: nothing may be called "off-site".
    pub fn on_box_only(&self) -> bool {
        !self.main.is_off_site() && self.copies_off_site.is_empty()
    }

    /// How many destinations are off-site: what a backed-up archive (every
    /// destination complete) counts as its places.
    pub fn destinations_off_site(&self) -> usize {
        usize::from(self.main.is_off_site()) + self.copies_off_site.len()
    }

    /// How many off-site destinations hold all of a stored archive
    /// (backed up, uncached, or uploading only because copies catch up):
    /// the main one when every part is there, and each copy destination
    /// whose copy is complete.
    pub fn places(&self, archive: &ArchiveRecord) -> usize {
        let stored = matches!(
            archive.state,
            ArchiveState::BackedUp | ArchiveState::Uncached
        ) || (archive.state == ArchiveState::Uploading && archive.awaiting_copies);
        if !stored {
            return 0;
        }
        let main =
            usize::from(self.main.is_off_site() && archive.parts_remote >= archive.parts_total);
        if self.copies_off_site.is_empty() {
            return main;
        }
        let Ok(txn) = self.store.read() else {
            return main;
        };
        let complete = |id: &&String| {
            let key = crate::store::copies::copy_key(id, &archive.id);
            self.store
                .tables
                .copies
                .get(&txn, key.as_bytes())
                .ok()
                .flatten()
                .is_some_and(|copy| copy.complete)
        };
        main + self.copies_off_site.iter().filter(complete).count()
    }

    /// At least one complete copy of the archive is off-site.
    pub fn is_off_site(&self, archive: &ArchiveRecord) -> bool {
        self.places(archive) > 0
    }
}

/// Where the backups go, judged by `remote::placement` (off-site, this
/// box's disk, a USB disk, unreachable): no page, display line or LED may
/// call an archive "off-site" or "safe" unless it is
/// [`Placement::OffSite`]. Set at start and whenever the remote settings
/// are saved or restored; judged again at most every
/// [`PLACEMENT_MAX_AGE`] (a USB disk unplugged, a folder gone).
///
/// Copy destinations (issue 24) are judged the same way, each by its id
/// ([`RemotePlacement::of_destination`]), kept as long as its settings
/// stay the same and judged again at most every [`PLACEMENT_MAX_AGE`].
#[derive(Debug)]
pub struct RemotePlacement {
    main: Mutex<Judged>,
    copies: Mutex<HashMap<String, Judged>>,
}

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
        RemotePlacement {
            main: Mutex::new(Judged::now(remote, data_dir)),
            copies: Mutex::new(HashMap::new()),
        }
    }

    /// The main destination's placement, judged again when older than
    /// [`PLACEMENT_MAX_AGE`].
    pub fn get(&self) -> Placement {
        let mut judged = self.main.lock().unwrap_or_else(|e| e.into_inner());
        judged.fresh().placement.clone()
    }

    /// The placement of destination `id` whose settings are `remote`
    /// (`"main"`: [`RemotePlacement::get`]), judged again when its settings
    /// changed or the last judgement is older than [`PLACEMENT_MAX_AGE`].
    pub fn of_destination(&self, id: &str, remote: &RemoteSettings) -> Placement {
        if id == crate::engine::destinations::MAIN {
            return self.get();
        }
        let data_dir = self
            .main
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .data_dir
            .clone();
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        match copies.get_mut(id) {
            Some(judged) if judged.remote == *remote => judged.fresh().placement.clone(),
            _ => {
                let judged = Judged::now(remote, &data_dir);
                let placement = judged.placement.clone();
                copies.insert(id.to_string(), judged);
                placement
            }
        }
    }

    /// Forgets copy destinations no longer in `ids` (one was removed).
    pub fn keep_only(&self, ids: &[&str]) {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.retain(|id, _| ids.contains(&id.as_str()));
    }

    /// Follows new remote settings.
    pub fn follow(&self, remote: &RemoteSettings, data_dir: &Path) {
        let judged = Judged::now(remote, data_dir);
        *self.main.lock().unwrap_or_else(|e| e.into_inner()) = judged;
    }
}

impl Judged {
    fn now(remote: &RemoteSettings, data_dir: &Path) -> Judged {
        Judged {
            remote: remote.clone(),
            data_dir: data_dir.to_path_buf(),
            at: Instant::now(),
            placement: crate::remote::placement::placement(remote, data_dir),
        }
    }

    /// Itself, judged again first when older than [`PLACEMENT_MAX_AGE`].
    fn fresh(&mut self) -> &Judged {
        if self.at.elapsed() >= PLACEMENT_MAX_AGE {
            self.placement = crate::remote::placement::placement(&self.remote, &self.data_dir);
            self.at = Instant::now();
        }
        self
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
