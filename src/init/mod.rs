//! Init mode: `piarchive init` runs as PID 1 inside the SD-card image.
//!
//! Owns: the boot sequence, the supervision of `piarchive serve`, and the shutdown.
//! Must not touch: the web server, the store or the archives: the server is a child
//! process started with `serve --data /data/piarchive --listen 0.0.0.0:80`, seen only
//! through its pid and exit status. Host tooling (cross/, image/) lives outside src/.
//!
//! Every step logs one line on the serial console (`piarchive-init [uptime] step: ...`).
//! Fatal steps make [`run_init`] return an error (the kernel then panics with the
//! message on the console and reboots after `panic=10`); best-effort steps log and go on.
//!
//! | # | step | fatal? |
//! |---|------|--------|
//! | 1 | refuse to run unless PID 1; block the signals init handles; raise the open-files soft limit to the hard limit (`serve` inherits it) | fatal (the limit: best-effort) |
//! | 2 | mount proc, sys, devtmpfs (/dev), devpts, tmpfs /run and /tmp | fatal |
//! | 3 | load the kernel modules in the order image/build computed (finit_module) | best-effort, per module |
//! | 4 | read `piarchive.*` options from /proc/cmdline; set the hostname | best-effort |
//! | 5 | loopback up with 127.0.0.1/8 | best-effort |
//! | 6 | clock: at least the build time of this binary | best-effort |
//! | 7 | wired network in the background: DHCP with retries forever; a link-local address while no server answers; resolv.conf from the lease; then SNTP once | best-effort |
//! | 8 | find the ext4 filesystem labelled `piarchive-data` (USB disk first, then the card's data partition); restore the clock from its last write time and the clock saved at shutdown; grow the card's data partition and its filesystem to fill the card (best-effort); mount it on /data | waits: until found, a notice page on port 80 says what to do, and nothing is written anywhere |
//! | 8b | mount the boot partition (FAT `PIBOOT`) on /boot; log a failed last update; on a trial boot, check the new version and commit it or go back ([`slots`]) | best-effort |
//! | 8c | open the hardware watchdog (`/dev/watchdog`, 15 s) and pet it from the loop below; during a trial only while the trial check answers ([`watchdog`]) | best-effort |
//! | 9 | start `piarchive serve`, supervised: restarted with backoff (1 s doubling to 60 s), every orphan reaped; `serve` answers mDNS for `piarchive.local` on each address the lease of step 7 brings, when it brings it ([`crate::mdns`]) | best-effort, retried forever |
//! | 10 | every 15 minutes: save the clock to /data/firmware/clock | best-effort |
//! | 11 | on SIGTERM or serve's exit status 10: power off; on SIGUSR1, SIGINT (Ctrl-Alt-Del) or exit status 11: reboot (see [`crate::power`]) | - |
//! | 12 | shutdown: stop the server (SIGTERM, SIGKILL after 10 s), save the clock, sync, unmount /data (or remount it read-only), sync, power off or reboot | each part best-effort, the power-off always happens |

pub mod clock;
pub mod console;
pub mod dhcp;
pub mod grow;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod notice;
pub mod slots;
pub mod sntp;
pub mod supervise;
pub mod watchdog;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::power::{self, PowerAction};
use console::{log, set_status};
use supervise::Supervisor;

/// Where the server keeps its data, on the data filesystem.
pub const SERVE_DATA_DIR: &str = "/data/piarchive";
/// Where init saves the clock, on the data filesystem.
pub const CLOCK_FILE: &str = "/data/firmware/clock";
/// How often the clock is saved while running.
const CLOCK_SAVE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How long the server gets to stop at shutdown before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Options read from the kernel command line (`piarchive.listen=0.0.0.0:8080`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    pub hostname: String,
    pub listen: SocketAddr,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            hostname: "piarchive".into(),
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)),
        }
    }
}

/// Parses `piarchive.hostname=` and `piarchive.listen=` from the kernel command line;
/// anything else, and malformed values, are ignored (logged by the caller).
pub fn parse_cmdline(cmdline: &str) -> (BootOptions, Vec<String>) {
    let mut options = BootOptions::default();
    let mut ignored = Vec::new();
    for word in cmdline.split_whitespace() {
        let Some(setting) = word.strip_prefix("piarchive.") else {
            continue;
        };
        match setting.split_once('=') {
            Some(("hostname", name))
                if !name.is_empty()
                    && name.len() <= 63
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                options.hostname = name.to_string();
            }
            Some(("listen", address)) if address.parse::<SocketAddr>().is_ok() => {
                if let Ok(parsed) = address.parse() {
                    options.listen = parsed;
                }
            }
            _ => ignored.push(word.to_string()),
        }
    }
    (options, ignored)
}

fn set_hostname(name: &str) -> std::io::Result<()> {
    rustix::system::sethostname(name.as_bytes())?;
    Ok(())
}

/// Where init is in its life.
enum Phase {
    /// No data filesystem yet; the notice page may be up.
    WaitingForData {
        notice: Option<notice::NoticeServer>,
        last_message: String,
    },
    /// Data mounted; the server is supervised.
    Running {
        supervisor: Supervisor,
        next_clock_save: Instant,
    },
}

/// True when `main` should call [`run_init`]: `piarchive init`, or the kernel starting
/// the binary as `/init` (PID 1, no arguments).
pub fn is_init_invocation(args: &[String]) -> bool {
    let pid_1 = std::process::id() == 1;
    args.get(1).is_some_and(|a| a == "init") || (pid_1 && args.len() <= 1)
}

/// Runs init. Returns only on a fatal error; otherwise the box powers off or reboots.
pub fn run_init() -> anyhow::Result<Infallible> {
    let options = start()?;
    // Steps 8 to 12.
    let mut phase = Phase::WaitingForData {
        notice: None,
        last_message: String::new(),
    };
    let boot = Instant::now();
    let mut next_scan = Instant::now();
    loop {
        watchdog::pet();
        let now = Instant::now();
        let wake = match &phase {
            Phase::WaitingForData { .. } => next_scan,
            Phase::Running {
                supervisor,
                next_clock_save,
            } => supervisor
                .restart_at()
                .map_or(*next_clock_save, |at| at.min(*next_clock_save)),
        };
        let timeout = wake
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(10), Duration::from_secs(5));
        let mut requested = wait_for_request(&mut phase, timeout);
        if requested.is_none() && trial_has_no_data(&phase, boot) {
            requested = Some(PowerAction::Reboot);
        }
        if let Some(action) = requested {
            shutdown(phase, action);
        }
        phase = next_phase(phase, &mut next_scan, &options, boot);
    }
}

/// Steps 1 to 7: everything before the data disk. Fails only on a fatal step.
fn start() -> anyhow::Result<BootOptions> {
    // Step 1.
    if std::process::id() != 1 {
        anyhow::bail!("piarchive init must run as PID 1, inside the piarchive image; use `piarchive serve` elsewhere");
    }
    supervise::block_signals().context("cannot block signals in init")?;
    crate::limits::raise_open_files_limit();
    // Step 2.
    mounts::mount_pseudo_filesystems().context("cannot mount the kernel filesystems")?;
    std::fs::create_dir_all("/run/piarchive").context("cannot create /run/piarchive")?;
    log(
        "init",
        &format!("piarchive {} starting", env!("CARGO_PKG_VERSION")),
    );
    // Ctrl-Alt-Del sends SIGINT to init instead of an immediate reboot.
    let _ = rustix::system::reboot(rustix::system::RebootCommand::CadOff);
    // Step 3.
    modules::load_all();
    // Step 4.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (options, ignored) = parse_cmdline(&cmdline);
    for word in ignored {
        log("cmdline", &format!("ignoring {word}"));
    }
    match set_hostname(&options.hostname) {
        Ok(()) => log("hostname", &options.hostname),
        Err(err) => log(
            "hostname",
            &format!("cannot set {}: {err}", options.hostname),
        ),
    }
    // Step 5.
    match net::set_up("lo")
        .and_then(|()| net::set_address("lo", Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0)))
    {
        Ok(()) => log("network", "lo up, 127.0.0.1/8"),
        Err(err) => log("network", &format!("loopback: {err}")),
    }
    // Step 6.
    restore_clock("build time", &[clock::build_time()]);
    // Step 7.
    let hostname = options.hostname.clone();
    let network = std::thread::Builder::new()
        .name("network".into())
        .spawn(move || network_thread(&hostname));
    if let Err(err) = network {
        log(
            "network",
            &format!("cannot start the network thread: {err}"),
        );
    }
    Ok(options)
}

/// Waits up to `timeout` for a signal: reaps exited children (the server's
/// exit status may ask for a power-off or reboot) and answers the power
/// action asked for, if any.
fn wait_for_request(phase: &mut Phase, timeout: Duration) -> Option<PowerAction> {
    let mut requested: Option<PowerAction> = None;
    if let Some(signal) = supervise::wait_for_signal(timeout) {
        if signal == libc::SIGCHLD {
            for (pid, how) in supervise::reap_all() {
                if let Phase::Running { supervisor, .. } = phase {
                    let code = match how {
                        supervise::ExitKind::Exited(code) => Some(code),
                        supervise::ExitKind::Signaled(_) => None,
                    };
                    if supervisor.on_exit(pid, how, Instant::now()) {
                        requested = requested.or(code.and_then(PowerAction::from_exit_status));
                    }
                }
            }
        } else if let Some(action) = PowerAction::from_signal(signal) {
            log("init", &format!("signal {signal}: {action:?} requested"));
            requested = Some(action);
        }
    }
    requested
}

/// True when a trial boot has waited too long for its data partition: it
/// goes back to the committed slot (a new kernel that cannot mount the data
/// must not hold the box).
fn trial_has_no_data(phase: &Phase, boot: Instant) -> bool {
    let gives_up = matches!(phase, Phase::WaitingForData { .. })
        && slots::trial_gives_up_without_data(boot.elapsed(), crate::update::boot::booted_on_trial);
    if gives_up {
        log(
            "update",
            &format!(
                "version {} is on trial but its data partition was not mounted within {} s; going back",
                crate::update::running_version(),
                slots::TRIAL_DATA_WAIT.as_secs()
            ),
        );
    }
    gives_up
}

/// One turn of the loop: looks for the data disk again when due, or
/// (re)starts the server when due and saves the clock every 15 minutes.
fn next_phase(
    phase: Phase,
    next_scan: &mut Instant,
    options: &BootOptions,
    boot: Instant,
) -> Phase {
    match phase {
        Phase::WaitingForData {
            notice,
            last_message,
        } => {
            if Instant::now() < *next_scan {
                Phase::WaitingForData {
                    notice,
                    last_message,
                }
            } else {
                *next_scan = Instant::now() + Duration::from_secs(1);
                wait_for_data(notice, last_message, options, boot)
            }
        }
        Phase::Running {
            mut supervisor,
            mut next_clock_save,
        } => {
            let now = Instant::now();
            supervisor.start_if_due(now);
            if now >= next_clock_save {
                if let Err(err) = clock::save(Path::new(CLOCK_FILE)) {
                    log("clock", &err.to_string());
                }
                next_clock_save = now + CLOCK_SAVE_INTERVAL;
            }
            Phase::Running {
                supervisor,
                next_clock_save,
            }
        }
    }
}

/// Sets the clock to the latest of `candidates` if that is later than now.
fn restore_clock(source: &str, candidates: &[u64]) {
    let current = clock::now();
    let target = clock::restore_point(current, candidates);
    if target <= current {
        return;
    }
    match clock::set_clock_nanos(i128::from(target) * 1_000_000_000) {
        Ok(()) => log(
            "clock",
            &format!("set to {target} (unix seconds) from the {source}"),
        ),
        Err(err) => log("clock", &err.to_string()),
    }
}

/// Step 8: looks for the data filesystem once; mounts it and starts the server, or
/// keeps (and updates) the notice page.
fn wait_for_data(
    notice: Option<notice::NoticeServer>,
    last_message: String,
    options: &BootOptions,
    boot: Instant,
) -> Phase {
    let devices = mounts::scan_block_devices();
    if let Some(device) = mounts::choose_data_device(&devices) {
        if let Some(sb) = &device.superblock {
            let clean = if sb.clean {
                "clean"
            } else {
                "not cleanly unmounted; the journal will be replayed"
            };
            log(
                "data",
                &format!("found {} labelled {} ({clean})", device.name, sb.label),
            );
            restore_clock(
                "data filesystem's last write",
                &[u64::from(sb.write_time), u64::from(sb.mount_time)],
            );
        }
        // The card's (or QEMU's) data partition fills the card; USB disks are left as they are.
        let growable = !device.whole_disk && !device.name.starts_with("sd");
        if growable {
            match grow::grow_partition(&device.name) {
                Ok(Some((old, new))) => log(
                    "data",
                    &format!(
                        "grew partition {} from {} MiB to {} MiB",
                        device.name,
                        old >> 20,
                        new >> 20
                    ),
                ),
                Ok(None) => {}
                Err(err) => log("data", &format!("not growing {}: {err}", device.name)),
            }
        }
        match mounts::mount_data(&device.name) {
            Ok(mount_point) => {
                if growable {
                    grow_filesystem(&device.name);
                }
                if let Some(server) = notice {
                    server.stop();
                }
                if let Some(saved) = clock::read_saved(Path::new(CLOCK_FILE)) {
                    restore_clock("clock saved at shutdown", &[saved]);
                }
                log(
                    "data",
                    &format!("/dev/{} mounted on {}", device.name, mount_point.display()),
                );
                set_status(
                    "data",
                    &format!("/dev/{} mounted on {}", device.name, mount_point.display()),
                );
                if let Err(err) = std::fs::create_dir_all(SERVE_DATA_DIR) {
                    log("data", &format!("cannot create {SERVE_DATA_DIR}: {err}"));
                }
                slots::after_data_mounted(options.listen);
                watchdog::arm();
                return Phase::Running {
                    supervisor: server_supervisor(options),
                    next_clock_save: Instant::now(),
                };
            }
            Err(err) => {
                let message = format!("The data disk /dev/{} could not be mounted ({err}). Check it on a computer with e2fsck.", device.name);
                return notice_phase(notice, last_message, message, options);
            }
        }
    }
    // Give slow USB disks a few seconds before telling anyone.
    if boot.elapsed() < Duration::from_secs(8) {
        return Phase::WaitingForData {
            notice,
            last_message,
        };
    }
    let unusable = mounts::unusable_disks(&devices);
    let message = if unusable.is_empty() {
        format!(
            "No data disk found. Plug in a USB disk with an ext4 filesystem labelled {0} \
             (on a computer: mkfs.ext4 -L {0} /dev/sdX, which erases it), or reflash the SD card image, \
             which has a data partition.",
            mounts::DATA_LABEL
        )
    } else {
        format!(
            "Found disk {} but no ext4 filesystem labelled {1} on it. Nothing was written to it. \
             To use it, format it on a computer with: mkfs.ext4 -L {1} /dev/sdX (this erases the disk), then plug it in again.",
            unusable.join(", "),
            mounts::DATA_LABEL
        )
    };
    notice_phase(notice, last_message, message, options)
}

/// Grows the mounted data filesystem to its partition's size (a no-op when it already
/// fills it; finishes a growth that a power cut interrupted). Best-effort.
fn grow_filesystem(name: &str) {
    let size_file = format!("/sys/class/block/{name}/size");
    let Some(sectors) = std::fs::read_to_string(&size_file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    else {
        log("data", &format!("cannot read {size_file}"));
        return;
    };
    match grow::grow_filesystem(mounts::DATA_MOUNT, sectors * 512) {
        Ok(()) => {}
        Err(err) => log("data", &format!("not growing the filesystem: {err}")),
    }
}

/// Shows `message` on the console, the status file and the notice page.
fn notice_phase(
    notice: Option<notice::NoticeServer>,
    last_message: String,
    message: String,
    options: &BootOptions,
) -> Phase {
    if message == last_message {
        return Phase::WaitingForData {
            notice,
            last_message,
        };
    }
    log("data", &message);
    set_status("data", &message);
    if let Some(server) = notice {
        server.stop();
    }
    let notice = match notice::NoticeServer::start(options.listen, message.clone()) {
        Ok(server) => Some(server),
        Err(err) => {
            log(
                "data",
                &format!("cannot serve the notice page on {}: {err}", options.listen),
            );
            None
        }
    };
    Phase::WaitingForData {
        notice,
        last_message: message,
    }
}

fn server_supervisor(options: &BootOptions) -> Supervisor {
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/init"));
    Supervisor::new(
        program,
        vec![
            "serve".into(),
            "--data".into(),
            SERVE_DATA_DIR.into(),
            "--listen".into(),
            options.listen.to_string(),
            "--listen-https".into(),
            SocketAddr::new(options.listen.ip(), 443).to_string(),
        ],
        vec![
            (power::INIT_ENV.into(), "1".into()),
            ("PATH".into(), "/bin".into()),
            ("HOME".into(), "/data".into()),
        ],
    )
}

/// Step 7: the wired network, forever.
fn network_thread(hostname: &str) {
    // Network drivers probe asynchronously after their module loads.
    let mut waited = 0u32;
    let interface = loop {
        if let Some(name) = net::find_ethernet_interface() {
            break name;
        }
        if waited == 10 {
            log("network", "no wired network interface yet; still looking");
            set_status("network", "no wired network interface found");
        }
        waited = waited.saturating_add(1);
        std::thread::sleep(Duration::from_millis(500));
    };
    if let Err(err) = net::set_up(&interface) {
        log("network", &format!("cannot bring {interface} up: {err}"));
    }
    // A plugged cable takes a few seconds to negotiate its link after the interface
    // comes up; give it that long before saying there is none.
    let link_deadline = Instant::now() + Duration::from_secs(4);
    while !net::has_carrier(&interface) && Instant::now() < link_deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mac = net::hardware_address(&interface).unwrap_or([2, 0, 0, 0, 0, 1]);
    log(
        "network",
        &format!("{interface} up; asking for a DHCP lease"),
    );
    set_status("network", &format!("{interface}: waiting for a DHCP lease"));
    let mut have_address = false;
    let mut time_synced = false;
    dhcp::run_client(&interface, mac, hostname, |event| {
        on_dhcp_event(&interface, mac, event, &mut have_address, &mut time_synced)
    })
}

/// What init does on each event of the DHCP client: applies a lease (and
/// syncs the clock once), falls back to a link-local address while no
/// server answers, and says so on the console and the notice page.
fn on_dhcp_event(
    interface: &str,
    mac: [u8; 6],
    event: dhcp::Event<'_>,
    have_address: &mut bool,
    time_synced: &mut bool,
) {
    match event {
        dhcp::Event::Bound(lease) | dhcp::Event::Renewed(lease) => {
            let renewed = matches!(event, dhcp::Event::Renewed(_));
            if let Err(err) = apply_lease(interface, lease) {
                log("dhcp", &format!("cannot apply the lease: {err}"));
                return;
            }
            *have_address = true;
            let verb = if renewed { "renewed" } else { "lease" };
            log(
                "dhcp",
                &format!(
                    "{verb} {}/{} on {interface}, router {}, dns {:?}, for {} s",
                    lease.address,
                    dhcp::prefix_len(lease.netmask),
                    lease.router.map_or("none".to_string(), |r| r.to_string()),
                    lease.dns,
                    lease.lease_time.as_secs()
                ),
            );
            set_status("network", &format!("{interface}: {} (DHCP)", lease.address));
            if !*time_synced {
                *time_synced = sync_time(&lease.ntp);
            }
        }
        dhcp::Event::NoAnswer { attempt, carrier } => {
            let cause = if carrier {
                "no DHCP server answered"
            } else {
                "no network cable"
            };
            if !*have_address {
                let fallback = net::link_local_address(mac);
                if attempt == 1 {
                    match net::set_address(interface, fallback, Ipv4Addr::new(255, 255, 0, 0)) {
                        Ok(()) => log(
                            "network",
                            &format!(
                                "{interface}: using link-local {fallback} until a lease arrives"
                            ),
                        ),
                        Err(err) => log(
                            "network",
                            &format!("cannot set link-local {fallback}: {err}"),
                        ),
                    }
                }
                set_status(
                    "network",
                    &format!("{interface}: {cause}; retrying DHCP; reachable at {fallback}"),
                );
            }
            log(
                "dhcp",
                &format!("{cause} (attempt {attempt}); retrying in the background"),
            );
        }
        dhcp::Event::Expired => {
            log(
                "dhcp",
                "lease expired without renewal; keeping the last address while retrying",
            );
            set_status(
                "network",
                &format!("{interface}: lease expired; retrying DHCP"),
            );
        }
        dhcp::Event::SocketError(err) => log("dhcp", &format!("socket error: {err}")),
    }
}

fn apply_lease(interface: &str, lease: &dhcp::Lease) -> Result<(), net::NetError> {
    net::set_address(interface, lease.address, lease.netmask)?;
    if let Some(router) = lease.router {
        net::set_default_route(router)?;
    }
    if !lease.dns.is_empty() {
        net::write_resolv_conf(&lease.dns)?;
    }
    Ok(())
}

/// SNTP once, best-effort: the lease's servers, then the public pool. True on success.
fn sync_time(lease_servers: &[Ipv4Addr]) -> bool {
    let mut servers: Vec<String> = lease_servers.iter().map(|s| format!("{s}:123")).collect();
    servers.push("pool.ntp.org:123".into());
    for server in &servers {
        match sntp::query(server, Duration::from_secs(2)) {
            Ok(offset) => {
                let now = i128::from(clock::now()) * 1_000_000_000;
                match clock::set_clock_nanos(now + offset) {
                    Ok(()) => log(
                        "sntp",
                        &format!("clock set from {server} (offset {} ms)", offset / 1_000_000),
                    ),
                    Err(err) => log("sntp", &err.to_string()),
                }
                return true;
            }
            Err(err) => log(
                "sntp",
                &format!("{err} (best-effort; S3 requests correct their own skew)"),
            ),
        }
    }
    false
}

/// Steps 11-12: stops everything and powers off or reboots. Never returns.
fn shutdown(phase: Phase, action: PowerAction) -> ! {
    log("shutdown", &format!("{action:?}: stopping"));
    match action {
        PowerAction::Poweroff => watchdog::disarm(),
        PowerAction::Reboot => watchdog::pet(),
    }
    set_status("power", &format!("{action:?} in progress"));
    let data_mounted = match phase {
        Phase::WaitingForData { notice, .. } => {
            if let Some(server) = notice {
                server.stop();
            }
            false
        }
        Phase::Running { mut supervisor, .. } => {
            supervisor.stop(STOP_GRACE);
            watchdog::pet();
            true
        }
    };
    // Any other process (none is expected) gets the same treatment.
    // kill(-1): every process but init itself (rustix sends kill(-pid) for a group).
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::INIT,
        rustix::process::Signal::KILL,
    );
    supervise::reap_all();
    if data_mounted {
        if let Err(err) = clock::save(Path::new(CLOCK_FILE)) {
            log("shutdown", &err.to_string());
        }
    }
    watchdog::pet();
    let tryboot = slots::before_power_off(matches!(action, PowerAction::Reboot));
    rustix::fs::sync();
    if data_mounted {
        match mounts::unmount(mounts::DATA_MOUNT) {
            Ok(()) => log("shutdown", &format!("{} unmounted", mounts::DATA_MOUNT)),
            Err(err) => log("shutdown", &err.to_string()),
        }
    }
    watchdog::pet();
    rustix::fs::sync();
    if tryboot {
        log("shutdown", "Reboot now, into the trial slot (tryboot)");
        slots::reboot_tryboot();
    }
    let command = match action {
        PowerAction::Poweroff => rustix::system::RebootCommand::PowerOff,
        PowerAction::Reboot => rustix::system::RebootCommand::Restart,
    };
    log("shutdown", &format!("{action:?} now"));
    // Does not return on success.
    if let Err(errno) = rustix::system::reboot(command) {
        log("shutdown", &format!("reboot(2) failed: {errno}"));
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_options_and_defaults() {
        let (options, ignored) = parse_cmdline("console=ttyAMA0 panic=10 quiet");
        assert_eq!(options, BootOptions::default());
        assert!(ignored.is_empty());
        let (options, ignored) = parse_cmdline(
            "console=ttyS1 piarchive.listen=0.0.0.0:8080 piarchive.hostname=attic-box piarchive.color=red",
        );
        assert_eq!(options.listen, "0.0.0.0:8080".parse().expect("address"));
        assert_eq!(options.hostname, "attic-box");
        assert_eq!(ignored, vec!["piarchive.color=red".to_string()]);
    }

    #[test]
    fn bad_cmdline_values_keep_the_defaults() {
        let (options, ignored) =
            parse_cmdline("piarchive.listen=nowhere piarchive.hostname=a/b piarchive.hostname=");
        assert_eq!(options, BootOptions::default());
        assert_eq!(ignored.len(), 3);
    }

    #[test]
    fn run_init_refuses_outside_pid_1() {
        let err = run_init().expect_err("the test runner is not PID 1");
        assert!(err.to_string().contains("PID 1"));
    }
}
