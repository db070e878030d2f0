//! The `piarchive` command: parses arguments, calls into the library, maps
//! errors to exit codes. See `piarchive help`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use piarchive::config::{Config, Overrides};
use piarchive::store::records::Role;
use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};

/// Counts memory per thread so admin scripts can be held to their limit.
#[global_allocator]
static ALLOCATOR: piarchive::admin::script::ScriptMemoryCounter =
    piarchive::admin::script::ScriptMemoryCounter;

const USAGE: &str = "\
usage:
  piarchive [serve] [--config FILE] [--data DIR] [--listen ADDR] [--listen-https ADDR]
  piarchive user add NAME [--admin] [--config FILE] [--data DIR]   (password on stdin)
  piarchive recover --data DIR --remote FILE [--as-of TIME]
                                                 rebuild from a backup (passphrase on stdin); with
                                                 --as-of (RFC 3339) from a versioned bucket as it
                                                 stood then
  piarchive init                                 PID 1 mode inside the SD-card image
  piarchive update FILE [--force]                install a signed .piup bundle and reboot into it
  piarchive update FILE --boot DIR [--force]     install it into a boot partition at DIR, no reboot
  piarchive selftest                             known-answer tests; the crypto paths this CPU takes

defaults: --data ./piarchive-data, --listen 127.0.0.1:8080, --listen-https 127.0.0.1:8443
  (an empty address turns a listener off)
environment: PIARCHIVE_DATA, PIARCHIVE_LISTEN, PIARCHIVE_LISTEN_HTTPS, PIARCHIVE_CONFIG";

fn main() -> ExitCode {
    return_big_buffers_to_the_system();
    let all_args: Vec<String> = std::env::args().collect();
    // The kernel starts the image's /init as PID 1 without arguments.
    if piarchive::init::is_init_invocation(&all_args) {
        return match piarchive::init::run_init() {
            Ok(never) => match never {},
            Err(err) => {
                eprintln!("piarchive init: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = all_args.into_iter().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("piarchive: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold each time a large block is freed, after
/// which part-sized buffers (1 to 16 MiB, allocated by whichever thread
/// handles a request or runs a job) come from per-thread heaps that keep
/// them after free: the resident size grew by ~20 MiB with every upload
/// and never came back. A fixed threshold keeps every block of 256 KiB or
/// more in its own mapping, returned to the system on free. (musl, the
/// firmware's libc, always does this.)
fn return_big_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Splits `--flag value` options from positional words.
fn parse_options(args: Vec<String>) -> anyhow::Result<(Vec<String>, Overrides, bool)> {
    let mut words = Vec::new();
    let mut overrides = Overrides::default();
    let mut admin = false;
    let mut remote_file = None;
    let mut boot_dir = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--config" => overrides.config_file = Some(PathBuf::from(value("--config")?)),
            "--data" => overrides.data_dir = Some(PathBuf::from(value("--data")?)),
            "--listen" => overrides.listen = Some(value("--listen")?),
            "--listen-https" => overrides.listen_https = Some(value("--listen-https")?),
            "--admin" => admin = true,
            // `update`: passed on as words.
            "--force" => words.push(arg),
            "--boot" => boot_dir = Some(value("--boot")?),
            // `recover`: the remote settings JSON, passed on as a word.
            "--remote" => remote_file = Some(value("--remote")?),
            "--as-of" => words.push(format!("--as-of={}", value("--as-of")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => bail!("unknown option {flag}\n{USAGE}"),
            _ => words.push(arg),
        }
    }
    if let Some(file) = remote_file {
        words.push(format!("--remote={file}"));
    }
    if let Some(dir) = boot_dir {
        words.push(format!("--boot={dir}"));
    }
    Ok((words, overrides, admin))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    // Whatever this process creates is its user's alone.
    piarchive::data_dir::restrict_new_files();
    let (words, overrides, admin) = parse_options(args)?;
    let config = Config::resolve(&overrides, |key| std::env::var(key).ok())?;
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(config),
        ["user", "add", name] => add_user(config, name, admin),
        ["recover", remote_file] if remote_file.starts_with("--remote=") => {
            recover(config, &remote_file["--remote=".len()..], None)
        }
        ["recover", as_of, remote_file]
            if remote_file.starts_with("--remote=") && as_of.starts_with("--as-of=") =>
        {
            recover(
                config,
                &remote_file["--remote=".len()..],
                Some(&as_of["--as-of=".len()..]),
            )
        }
        ["update", rest @ ..] => update_command(rest),
        ["selftest"] => {
            if piarchive::selftest::print(&piarchive::selftest::run()) {
                Ok(())
            } else {
                bail!("selftest failed: a known answer came out wrong on this CPU")
            }
        }
        ["recover"] => bail!("recover needs --remote FILE (the remote settings JSON)\n{USAGE}"),
        ["help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown command {:?}\n{USAGE}", words.join(" ")),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    // Runs until the process ends (it holds the data folder's lock).
    let server = piarchive::app::start(config)?;
    let https = match server.https_addr {
        Some(addr) => format!(" and https://{addr}"),
        None => String::new(),
    };
    println!(
        "piarchive listening on http://{}{https} (data in {})",
        server.addr,
        data_dir.display()
    );
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

/// `piarchive update FILE [--force] [--boot DIR]`.
fn update_command(words: &[&str]) -> anyhow::Result<()> {
    let force = words.contains(&"--force");
    let boot = words.iter().find_map(|w| w.strip_prefix("--boot="));
    match words
        .iter()
        .filter(|w| **w != "--force" && !w.starts_with("--boot="))
        .collect::<Vec<_>>()
        .as_slice()
    {
        [file] => update(file, force, boot.map(std::path::Path::new)),
        _ => bail!("update needs exactly one bundle file\n{USAGE}"),
    }
}

/// `piarchive update FILE`: the console's way to apply a bundle, with a progress line.
/// With `--boot DIR` it writes into the boot partition at DIR and does not reboot.
fn update(file: &str, force: bool, boot: Option<&std::path::Path>) -> anyhow::Result<()> {
    use piarchive::power;
    let mut reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?,
    );
    let paths = boot.map_or_else(
        piarchive::update::Paths::appliance,
        piarchive::update::Paths::boot_dir,
    );
    let mut shown = u64::MAX;
    let applied = piarchive::update::apply_to(&paths, &mut reader, force, &mut |written, total| {
        let percent = written * 100 / total.max(1);
        if percent != shown {
            shown = percent;
            eprint!(
                "\rwriting the update: {percent:3}% ({} of {} MiB)",
                written >> 20,
                total >> 20
            );
        }
    });
    if shown != u64::MAX {
        eprintln!();
    }
    let applied = applied?;
    if let Some(dir) = boot {
        println!(
            "version {} is in {} of {}, named by tryboot.txt; not rebooting (--boot)",
            applied.version,
            applied.slot.dir_name(),
            dir.display()
        );
        return Ok(());
    }
    if applied.hold_reboot {
        println!(
            "version {} is in {}; the test switch holds the reboot",
            applied.version,
            applied.slot.dir_name()
        );
        return Ok(());
    }
    println!(
        "version {} is in {}; rebooting to try it (the previous version comes back if it fails)",
        applied.version,
        applied.slot.dir_name()
    );
    // From a console shell init's environment marker is missing; init is still PID 1.
    if let Err(err) = power::signal_init(power::PowerAction::Reboot) {
        bail!("the update is installed but the reboot could not be requested: {err}");
    }
    Ok(())
}

fn add_user(config: Config, name: &str, admin: bool) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    // Only the store: beside a running server this must touch no upload and
    // start no engine (the server's engine uploads the catalog change).
    let db = config.data_dir.join("db");
    if !db.is_dir() {
        bail!(
            "there is no appliance in {}: start piarchive serve there and set it up first",
            config.data_dir.display()
        );
    }
    let store = piarchive::store::Store::open(&db, config.map_size)?;
    let accounts = piarchive::accounts::Accounts::new(store, config.session_ttl);
    if accounts.setup_needed()? {
        bail!(
            "this appliance is not set up yet: open the web UI (or POST /api/v1/setup) to create \
             the first admin and the encryption keys, then add more users"
        );
    }
    let role = if admin { Role::Admin } else { Role::Member };
    let user = accounts.create_user(name, password, role)?;
    println!("created {} user {}", role.as_str(), user.username);
    Ok(())
}

/// `piarchive recover`: rebuilds the data folder from the bucket the
/// settings in `remote_file` point at, with the passphrase read from stdin.
fn recover(config: Config, remote_file: &str, as_of: Option<&str>) -> anyhow::Result<()> {
    use piarchive::recovery::Recovery;
    // A time that cannot be used is refused before anything is opened.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let as_of = as_of
        .map(|text| piarchive::remote::as_of::parse_time(text, now))
        .transpose()?;
    let text = std::fs::read_to_string(remote_file)
        .with_context(|| format!("cannot read the remote settings file {remote_file}"))?;
    let settings: piarchive::remote::RemoteSettings =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{remote_file} is not remote settings JSON (see docs/API.md, \"Remote settings\")"
            )
        })?;
    // Refuses a folder a server is using, and keeps one from starting.
    let _lock = piarchive::data_dir::lock(&config.data_dir)?;
    let passphrase = read_secret("Recovery passphrase: ")?;
    let store = piarchive::store::Store::open(&config.data_dir.join("db"), config.map_size)?;
    let recovery =
        Recovery::prepare_as_of(&store, settings, &passphrase, &Default::default(), as_of)?;
    println!(
        "unlocked the backup: {} users, {} archives",
        recovery.users(),
        recovery.total()
    );
    let report = recovery.run(&mut |progress| {
        let step = (progress.total / 100).max(1);
        if progress.done % step == 0 || progress.done == progress.total {
            println!("{}/{} archives", progress.done, progress.total);
            let _ = std::io::stdout().flush();
        }
    })?;
    for damaged in &report.damaged {
        println!("damaged {}: {}", damaged.archive_id, damaged.reason);
    }
    if report.restored_objects > 0 {
        println!(
            "made {} objects current again that were deleted or overwritten after that time",
            report.restored_objects
        );
    }
    println!(
        "recovered {} users and {} of {} archives ({} damaged); start piarchive serve and cache archives back as needed",
        report.users,
        report.recovered + report.already_present,
        report.archives_total,
        report.damaged.len()
    );
    Ok(())
}

/// One line from stdin without its line break. On a terminal the typing is
/// not echoed.
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut saved = None;
    if stdin.is_terminal() {
        eprint!("{prompt}");
        if let Ok(settings) = tcgetattr(&stdin) {
            let mut quiet = settings.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
            saved = Some(settings);
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(settings) = saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, &settings);
        eprintln!();
    }
    read.context("cannot read the recovery passphrase from stdin")?;
    // Setup trims the passphrase it is given; so does recovery.
    Ok(line.trim().to_string())
}
