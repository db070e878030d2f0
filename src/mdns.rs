//! mDNS (RFC 6762/6763): the appliance answers for `<name>.local` (the
//! `mdns_hostname` setting, `piarchive` unless an admin changed it) and
//! announces its web UI as `_http._tcp` and `_https._tcp` (TXT `path=/`).
//!
//! The `mdns-sd` crate does the protocol, including the probing of RFC 6762
//! section 8: before a name is used it is asked for on the network, and when
//! another device answers for it the crate takes `<name>-2`, `-3`, ... for
//! the host (section 9) and tells us, so the display and the pages show the
//! name the appliance really answers to.
//!
//! Owns: the mDNS daemon of `serve` and the name answered to now. Runs in
//! `serve` (in the image too: init starts `serve`, which runs this). The
//! daemon looks at the interfaces' addresses every few seconds, so the
//! address a DHCP lease brings after start is announced when it appears and
//! a changed one on renewal replaces the old. Started only when a listener
//! is on a non-loopback address (a desktop's `127.0.0.1` is not announced).
//! Must not touch: the web server or the store beyond reading the setting.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mdns_sd::{DaemonEvent, RecvTimeoutError, ServiceDaemon, ServiceInfo};

use crate::settings::Settings;
use crate::store::Store;

/// How often the watcher looks whether an admin changed the name.
const SETTING_CHECK: Duration = Duration::from_secs(2);

/// What is announced: the listeners, each only when not on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

impl Listeners {
    /// The listeners worth announcing: those not on a loopback address.
    /// `None` when there is none (then mDNS stays off).
    pub fn announced(http: SocketAddr, https: Option<SocketAddr>) -> Option<Listeners> {
        let open = |addr: SocketAddr| (!addr.ip().is_loopback()).then_some(addr);
        let listeners = Listeners {
            http: open(http),
            https: https.and_then(open),
        };
        (listeners.http.is_some() || listeners.https.is_some()).then_some(listeners)
    }

    /// The web UI's address under `host` (e.g. `piarchive.local`): HTTPS
    /// when it is announced, the port left out when it is the default one.
    pub fn url(&self, host: &str) -> String {
        match (self.https, self.http) {
            (Some(https), _) if https.port() == 443 => format!("https://{host}"),
            (Some(https), _) => format!("https://{host}:{}", https.port()),
            (None, Some(http)) if http.port() == 80 => format!("http://{host}"),
            (None, Some(http)) => format!("http://{host}:{}", http.port()),
            (None, None) => String::new(),
        }
    }
}

/// The running mDNS responder.
pub struct Mdns {
    daemon: ServiceDaemon,
    listeners: Listeners,
    shared: Arc<Shared>,
}

struct Shared {
    /// `<name>.local` as announced (after a rename), once announced.
    answering_as: RwLock<Option<String>>,
    /// The name registered (before any rename) and its services' full names.
    registered: Mutex<(String, Vec<String>)>,
    stop: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    #[error("Cannot answer for .local names: {0}")]
    Daemon(#[from] mdns_sd::Error),
}

/// Called with a sentence for the system log (a rename, an error).
pub type Reporter = Box<dyn Fn(&str) + Send + Sync>;

impl Mdns {
    /// Starts answering for the `mdns_hostname` setting and announcing
    /// `listeners`; a thread follows renames and changes of the setting.
    pub fn start(store: Store, listeners: Listeners, report: Reporter) -> Result<Mdns, MdnsError> {
        let daemon = ServiceDaemon::new()?;
        let events = daemon.monitor()?;
        let shared = Arc::new(Shared {
            answering_as: RwLock::new(None),
            registered: Mutex::new((String::new(), Vec::new())),
            stop: AtomicBool::new(false),
        });
        let mdns = Mdns {
            daemon,
            listeners,
            shared,
        };
        mdns.register(&configured_name(&store))?;
        let (daemon, shared) = (mdns.daemon.clone(), mdns.shared.clone());
        std::thread::Builder::new()
            .name("mdns".into())
            .spawn(move || watch(&daemon, listeners, &shared, &events, &store, &report))
            .map_err(|e| mdns_sd::Error::Msg(e.to_string()))?;
        Ok(mdns)
    }

    /// `piarchive.local` (or the name taken after a conflict), once the
    /// name is announced on the network.
    pub fn answering_as(&self) -> Option<String> {
        self.shared
            .answering_as
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The web UI's address by name, e.g. `https://piarchive.local`, once
    /// announced.
    pub fn url(&self) -> Option<String> {
        self.answering_as().map(|host| self.listeners.url(&host))
    }

    /// Says goodbye on the network (the records' TTL 0) and stops.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        unregister(&self.daemon, &self.shared);
        let _ = self.daemon.shutdown();
    }

    fn register(&self, name: &str) -> Result<(), MdnsError> {
        register(&self.daemon, self.listeners, &self.shared, name)
    }
}

/// The host name an admin set, or the default.
fn configured_name(store: &Store) -> String {
    Settings::load(store)
        .map(|settings| settings.mdns_hostname)
        .unwrap_or_else(|_| crate::settings::DEFAULT_MDNS_NAME.to_string())
}

fn register(
    daemon: &ServiceDaemon,
    listeners: Listeners,
    shared: &Shared,
    name: &str,
) -> Result<(), MdnsError> {
    let host = format!("{name}.local.");
    let mut fullnames = Vec::new();
    for (kind, addr) in [
        ("_http._tcp.local.", listeners.http),
        ("_https._tcp.local.", listeners.https),
    ] {
        let Some(addr) = addr else { continue };
        let properties = [("path", "/")];
        let info = match addr.ip() {
            ip if ip.is_unspecified() => {
                ServiceInfo::new(kind, name, &host, (), addr.port(), &properties[..])?
                    .enable_addr_auto()
            }
            ip => ServiceInfo::new(kind, name, &host, ip, addr.port(), &properties[..])?,
        };
        fullnames.push(info.get_fullname().to_string());
        daemon.register(info)?;
    }
    *shared.registered.lock().unwrap_or_else(|e| e.into_inner()) = (name.to_string(), fullnames);
    Ok(())
}

fn unregister(daemon: &ServiceDaemon, shared: &Shared) {
    let (_, fullnames) =
        std::mem::take(&mut *shared.registered.lock().unwrap_or_else(|e| e.into_inner()));
    for fullname in fullnames {
        if let Ok(done) = daemon.unregister(&fullname) {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
    }
    *shared
        .answering_as
        .write()
        .unwrap_or_else(|e| e.into_inner()) = None;
}

/// Follows the daemon's events (announced, renamed) and the setting.
fn watch(
    daemon: &ServiceDaemon,
    listeners: Listeners,
    shared: &Shared,
    events: &mdns_sd::Receiver<DaemonEvent>,
    store: &Store,
    report: &Reporter,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        match events.recv_timeout(SETTING_CHECK) {
            Ok(event) => on_event(shared, event, report),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let wanted = configured_name(store);
        let current = shared
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        if wanted != current && !shared.stop.load(Ordering::SeqCst) {
            unregister(daemon, shared);
            match register(daemon, listeners, shared, &wanted) {
                Ok(()) => report(&format!("Now answering as {wanted}.local on the network.")),
                Err(err) => report(&err.to_string()),
            }
        }
    }
}

fn on_event(shared: &Shared, event: DaemonEvent, report: &Reporter) {
    let host = format!(
        "{}.local.",
        shared
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
    );
    let announced = match event {
        // "<host>:<interface>" once probing is done (the host as renamed).
        DaemonEvent::Announce(_, where_) => match where_.split_once(':') {
            Some((name, _)) if name.ends_with(".local.") => name.to_string(),
            _ => host.clone(),
        },
        DaemonEvent::NameChange(change) if change.original.eq_ignore_ascii_case(&host) => {
            // Said once, though each interface reports it.
            let known = shared
                .answering_as
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if known.as_deref() != Some(change.new_name.trim_end_matches('.')) {
                report(&format!(
                    "Another device on the network is called {}; this appliance answers as {} instead.",
                    change.original.trim_end_matches('.'),
                    change.new_name.trim_end_matches('.')
                ));
            }
            change.new_name
        }
        DaemonEvent::Error(err) => {
            report(&format!("mDNS: {err}"));
            return;
        }
        _ => return,
    };
    let name = announced.trim_end_matches('.').to_string();
    let original = host.trim_end_matches('.');
    let mut answering_as = shared
        .answering_as
        .write()
        .unwrap_or_else(|e| e.into_inner());
    // An announcement of the original name on one interface does not undo
    // a rename: once renamed, the new name holds.
    if answering_as.is_none() || !name.eq_ignore_ascii_case(original) {
        *answering_as = Some(name);
    }
}

/// Starts mDNS for the server at `http`/`https` when one of them is on a
/// non-loopback address; the handle goes into `slot`. Errors go to
/// `report` (the appliance works without mDNS, by its address).
pub fn start_for(
    slot: &std::sync::OnceLock<Mdns>,
    store: &Store,
    http: SocketAddr,
    https: Option<SocketAddr>,
    report: Reporter,
) {
    let Some(listeners) = Listeners::announced(http, https) else {
        return;
    };
    match Mdns::start(store.clone(), listeners, report) {
        Ok(mdns) => {
            let _ = slot.set(mdns);
        }
        Err(err) => eprintln!("piarchive: {err}; reachable by address only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listeners_off_loopback_are_announced() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            Listeners::announced(addr("127.0.0.1:8080"), Some(addr("127.0.0.1:8443"))),
            None
        );
        let image = Listeners::announced(addr("0.0.0.0:80"), Some(addr("0.0.0.0:443"))).unwrap();
        assert_eq!(image.url("piarchive.local"), "https://piarchive.local");
        let http_only = Listeners::announced(addr("192.168.1.5:8080"), None).unwrap();
        assert_eq!(
            http_only.url("piarchive-2.local"),
            "http://piarchive-2.local:8080"
        );
        let mixed = Listeners::announced(addr("127.0.0.1:8080"), Some(addr("[::]:8443"))).unwrap();
        assert_eq!(mixed.http, None);
        assert_eq!(mixed.url("a.local"), "https://a.local:8443");
    }

    #[test]
    fn host_names_are_single_labels() {
        for (name, valid) in [
            ("piarchive", true),
            ("piarchive-keller", true),
            ("Pi4", true),
            ("", false),
            ("-pi", false),
            ("pi-", false),
            ("pi.archive", false),
            ("pi archive", false),
            (&"a".repeat(64), false),
        ] {
            assert_eq!(crate::settings::valid_mdns_name(name), valid, "{name:?}");
        }
    }
}
