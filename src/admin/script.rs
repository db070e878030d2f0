//! The sandboxed admin script engine (Rhai).
//!
//! Owns: the Rust side of the "Script API" in docs/API.md ([`ScriptHost`] and the
//! plain data it returns), the sandbox ([`Limits`], the engine set-up in
//! [`run`]), and the translation of every way a run can end into the JSON
//! shape of `POST /api/v1/admin/scripts/run` ([`RunResult`]).
//!
//! Must not touch: the store, the remote, the file system, the network, the
//! process environment. A script reaches data only through [`ScriptHost`],
//! whose methods take and return plain data, so no secret (remote keys,
//! password hashes, tokens) can ever be handed to a script. There is no module
//! loading (`import` is refused and the resolver is a dummy), no `eval`, and
//! `print`/`debug` go to the run's capped output buffer, never to stdout.
//!
//! The one clock read here is the wall-clock timeout: a run past
//! [`Limits::timeout`] (or whose [`CancelToken`] is cancelled) is stopped at
//! its next checkpoint. A host call in progress (say, `verify` downloading
//! parts) is not interrupted; the run stops right after it returns.
//!
//! Rhai's own size limits check a value when it is built or returned, but not
//! a map or array that grows through `m[key] = value` or `a[i].push(x)`. The
//! memory limit closes that gap: each script runs on its own thread, and
//! [`ScriptMemoryCounter`] (installed as the global allocator) counts the
//! bytes that thread holds; the run stops once they pass
//! [`Limits::max_memory_bytes`].

mod errors;
mod memory;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map};
use serde::{Deserialize, Serialize};

pub use errors::ScriptFailure;
use errors::{describe_eval_error, describe_parse_error};
pub use memory::{memory_limit_enforced, ScriptMemoryCounter};
use memory::{signed, thread_held_bytes};

/// One archive as a script sees it. Plain data only: no keys, no paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveView {
    /// The archive id as shown in the API (hex of the random 128-bit id).
    pub id: String,
    /// The owner's username.
    pub owner: String,
    pub name: String,
    /// The original file name of the upload.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// One of the archive states of docs/DESIGN.md: `receiving`, `local`,
    /// `uploading`, `backed_up`, `uncached`, `caching`, `deleting`, `damaged`.
    pub state: String,
    pub parts_total: u64,
    /// Parts whose remote copy is complete.
    pub parts_remote: u64,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch of the last download; `created_at` if the
    /// archive was never downloaded.
    pub last_accessed_at: i64,
}

/// An archive in the trash as `trash()` shows it (state `trashed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashedView {
    pub archive: ArchiveView,
    /// Seconds since the Unix epoch.
    pub trashed_at: i64,
    /// When it is deleted for good unless restored.
    pub purge_at: i64,
}

/// Appliance-wide figures for `stats()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of the data disk.
    pub disk_total: u64,
    /// Bytes free on the data disk.
    pub disk_free: u64,
    /// Transfer jobs waiting or running.
    pub queue_length: u64,
    pub bytes_uploaded: u64,
    pub bytes_downloaded: u64,
    /// Bytes the archives take on the remote, where known.
    pub stored_bytes: u64,
    /// Bytes compression saved on the remote (size minus size there).
    pub bytes_saved: u64,
    /// Number of archives, all users.
    pub archives: u64,
    /// Archives whose every part is off-site (`off_site` in the API).
    pub archives_off_site: u64,
    /// Where the remote keeps the backups: `off_site`, `same_disk`,
    /// `usb_disk` or `unreachable` (`remote::placement`).
    pub placement: String,
}

/// What `verify(id, percent)` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Parts whose remote copy was checked (HEAD, and a download for the sample).
    pub checked: u64,
    pub ok: u64,
    /// Parts missing or failing their hash; the host marks the archive `damaged`.
    pub damaged: u64,
}

/// Level of a `log(level, message)` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Parses the level names a script may use.
    pub fn parse(level: &str) -> Option<LogLevel> {
        match level {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// The appliance as a script sees it: exactly the functions of docs/API.md
/// ("Script API"). Implemented by the lead on top of the store and job queue.
///
/// Errors are sentences for the admin (e.g. "archive 1f2e is not backed up
/// (it is local)"); a script sees them as a thrown error it may catch.
pub trait ScriptHost: Send + Sync {
    /// All archives of all users.
    fn archives(&self) -> Vec<ArchiveView>;
    /// One archive, or `None` if there is no archive with this id.
    fn archive(&self, id: &str) -> Option<ArchiveView>;
    fn stats(&self) -> Stats;
    /// Starts evicting the local copy of a backed-up archive.
    fn uncache(&self, id: &str) -> Result<(), String>;
    /// Starts downloading an uncached archive back to the disk.
    fn cache(&self, id: &str) -> Result<(), String>;
    /// HEADs every remote part of the archive and downloads and hashes
    /// `percent` (0..=100) of them; marks the archive `damaged` on a failure,
    /// never deletes anything.
    fn verify(&self, id: &str, percent: u8) -> Result<VerifyReport, String>;
    /// The share of parts `verify(id)` downloads when the script names none
    /// (the appliance's `verify_sample_percent` setting).
    fn verify_sample_percent(&self) -> u8 {
        crate::settings::DEFAULT_VERIFY_SAMPLE_PERCENT
    }
    /// Re-queues failed transfers; returns how many.
    fn retry_failed(&self) -> Result<u64, String>;
    /// Every user's archives in the trash.
    fn trash(&self) -> Vec<TrashedView> {
        Vec::new()
    }
    /// Takes an archive out of the trash, back as it was.
    fn restore(&self, id: &str) -> Result<(), String> {
        Err(format!("archive {id} cannot be restored here"))
    }
    /// Writes the system log with the script as source.
    fn log(&self, level: LogLevel, message: &str);
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The Script API as the develop page's help shows it (`/admin/scripts/help`):
/// each function as it is called and what it returns or does, in the words
/// of docs/API.md's "Script API", beside the code that binds them
/// ([`register_api`]).
pub const HELP: &[(&str, &str)] = &[
    ("archives()", "An array of maps {id, owner, name, filename, size, state, parts_total, parts_remote, created_at, last_accessed_at}, for all users."),
    ("archive(id)", "One such map, or () when there is no archive with this id."),
    ("stats()", "{disk_total, disk_free, queue_length, bytes_uploaded, bytes_downloaded, stored_bytes, bytes_saved, archives, archives_off_site, placement}: placement is where the backups go (off_site, same_disk, usb_disk or unreachable); only off_site archives are safe from losing this box."),
    ("uncache(id)", "Starts removing the local copy of a backed-up archive (the stored copy stays); returns true, or throws with the reason, e.g. not backed up."),
    ("cache(id)", "Starts fetching an archive back onto this box; returns true, or throws with the reason."),
    ("verify(id, percent)", "Checks the remote copies of the archive's parts (asks for every one, downloads and hashes percent of them); returns {checked, ok, damaged}. verify(id) uses the verification sample of the settings."),
    ("retry_failed()", "Puts failed transfers back in the queue; returns how many."),
    ("trash()", "The archives in the trash, for all users: maps like archives() gives (state \"trashed\") with trashed_at and purge_at (when it is deleted for good). archives() leaves them out."),
    ("restore(id)", "Takes an archive out of the trash, back as it was; returns true, or throws with the reason (e.g. not in the trash)."),
    ("log(level, message)", "Writes the system log (level \"info\", \"warn\" or \"error\") with the script as source."),
    ("print(value)", "Appends to the run's output."),
    ("now()", "Seconds since the Unix epoch (1970-01-01 UTC)."),
];

/// Sandbox limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations (roughly: expressions evaluated, loop iterations).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Nesting of expressions, checked when the script is compiled.
    pub max_expr_depth: usize,
    /// Bytes of one string; strings inside one array or map count together.
    pub max_string_size: usize,
    /// Items of one array, nested arrays included.
    pub max_array_size: usize,
    /// Entries of one map, nested maps included.
    pub max_map_size: usize,
    /// Wall-clock time of the run.
    pub timeout: Duration,
    /// Bytes of `print`/`debug` output kept; the rest is dropped and marked.
    pub max_output_bytes: usize,
    /// Bytes the script's thread may hold on top of what it held when the
    /// script started. Enforced only when [`ScriptMemoryCounter`] is the
    /// global allocator (see [`memory_limit_enforced`]).
    pub max_memory_bytes: usize,
}

impl Default for Limits {
    /// Generous for an admin script over a few thousand archives, small enough
    /// that a runaway script cannot hurt a Raspberry Pi.
    fn default() -> Self {
        Limits {
            max_operations: 20_000_000,
            max_call_depth: 32,
            max_expr_depth: 64,
            // `archives()` holds all names in one array: ~150 bytes an
            // archive, so 4 MiB leaves room for ~25 000 archives.
            max_string_size: 4 * MIB,
            max_array_size: 100_000,
            // `archives()` has 10 entries per archive.
            max_map_size: 250_000,
            timeout: Duration::from_secs(5),
            max_output_bytes: 64 * 1024,
            max_memory_bytes: 64 * MIB,
        }
    }
}

pub(super) const MIB: usize = 1024 * 1024;

/// Stack of the thread a script runs on: deep enough that the call and
/// expression depth limits, not the stack, stop a script.
const SCRIPT_THREAD_STACK_BYTES: usize = 16 * MIB;

/// Stops a running script from another thread (e.g. a deployment being
/// deleted, or the appliance shutting down). Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a run ended, in the shape of `POST /api/v1/admin/scripts/run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub ok: bool,
    /// Everything the script printed, capped at [`Limits::max_output_bytes`].
    pub output: String,
    /// The script's value (its last expression) as JSON; `()` is `null`.
    /// `null` when the run failed.
    pub value: serde_json::Value,
    pub error: Option<ScriptError>,
    pub duration_ms: u64,
}

/// Why a run failed, with where in the source (1-based), when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptError {
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Tokens `on_progress` stops a run with.
const STOP_TIMEOUT: &str = "piarchive:timeout";
pub(super) const STOP_CANCELLED: &str = "piarchive:cancelled";
pub(super) const STOP_MEMORY: &str = "piarchive:memory";

/// The clock is read every this many operations (and before the first).
const CLOCK_CHECK_INTERVAL: u64 = 64;

/// Runs `source` in the sandbox against `host`. Never panics and never
/// returns early: every failure, including a panic in a host method, becomes
/// a [`RunResult`] with `ok: false`.
///
/// Runs on a fresh thread with a known stack size and blocks until the script
/// ends; the caller's thread waits for it.
pub fn run(
    source: &str,
    host: Arc<dyn ScriptHost>,
    limits: &Limits,
    cancel: &CancelToken,
) -> RunResult {
    let started = Instant::now();
    let source_owned = source.to_owned();
    let limits_owned = limits.clone();
    let cancel_owned = cancel.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("admin-script".into())
        .stack_size(SCRIPT_THREAD_STACK_BYTES)
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_here(&source_owned, host, &limits_owned, &cancel_owned, started)
            }));
            let _ = done_tx.send(result.map_err(|panic| panic_reason(panic.as_ref())));
        });
    let outcome = match spawned {
        // A host call that never returns (it should not) leaves its thread
        // behind; the run itself still ends, shortly after its limit.
        Ok(_detached) => match done_rx.recv_timeout(limits.timeout.saturating_add(OVERRUN_GRACE)) {
            Ok(result) => result.map_err(ScriptFailure::EngineFailed),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                cancel.cancel();
                Err(ScriptFailure::Timeout(limits.timeout))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(
                ScriptFailure::EngineFailed("the script thread ended without an answer".into()),
            ),
        },
        Err(spawn_error) => Err(ScriptFailure::EngineFailed(format!(
            "could not start the script thread: {spawn_error}"
        ))),
    };
    match outcome {
        Ok(result) => result,
        Err(failure) => RunResult {
            ok: false,
            output: String::new(),
            value: serde_json::Value::Null,
            error: Some(ScriptError {
                message: failure.to_string(),
                line: None,
                column: None,
            }),
            duration_ms: elapsed_ms(started),
        },
    }
}

/// How long past its limit a run is waited for before it is given up.
const OVERRUN_GRACE: Duration = Duration::from_secs(2);

fn panic_reason(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a host function panicked".to_string())
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn run_here(
    source: &str,
    host: Arc<dyn ScriptHost>,
    limits: &Limits,
    cancel: &CancelToken,
    started: Instant,
) -> RunResult {
    let output = Arc::new(Mutex::new(OutputBuffer::new(limits.max_output_bytes)));
    // What this thread holds before the script builds anything; the engine
    // and the compiled script count against the limit too.
    let memory_baseline = thread_held_bytes();
    let engine = build_engine(host, limits, cancel, started, memory_baseline, &output);

    let outcome = match engine.compile(source) {
        Err(parse_error) => Err(describe_parse_error(&parse_error.0, parse_error.1, limits)),
        Ok(ast) => engine
            .eval_ast::<Dynamic>(&ast)
            .map_err(|error| describe_eval_error(*error, limits)),
    };
    // Let the engine (and the closures holding the buffer) go first.
    drop(engine);
    let output = match output.lock() {
        Ok(buffer) => buffer.text.clone(),
        Err(poisoned) => poisoned.into_inner().text.clone(),
    };

    let duration_ms = elapsed_ms(started);
    match outcome {
        Ok(value) => RunResult {
            ok: true,
            output,
            value: to_json(value),
            error: None,
            duration_ms,
        },
        Err((failure, position)) => RunResult {
            ok: false,
            output,
            value: serde_json::Value::Null,
            error: Some(ScriptError {
                message: failure.to_string(),
                line: position.line(),
                column: position.position(),
            }),
            duration_ms,
        },
    }
}

/// Collected `print`/`debug` output, capped.
struct OutputBuffer {
    text: String,
    max_bytes: usize,
    truncated: bool,
}

const TRUNCATED_MARK: &str = "[output truncated]\n";

impl OutputBuffer {
    fn new(max_bytes: usize) -> Self {
        OutputBuffer {
            text: String::new(),
            max_bytes,
            truncated: false,
        }
    }

    /// Appends `line` and a newline; past the cap, keeps what fits (at
    /// most `max_bytes` in all), then the truncation mark, then nothing.
    fn push_line(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        let room = self.max_bytes.saturating_sub(self.text.len());
        if line.len() < room {
            self.text.push_str(line);
            self.text.push('\n');
            return;
        }
        // Leave a byte for the newline that ends the kept part.
        let mut cut = room.saturating_sub(1);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut > 0 {
            self.text.push_str(&line[..cut]);
            self.text.push('\n');
        }
        self.text.push_str(TRUNCATED_MARK);
        self.truncated = true;
    }
}

fn build_engine(
    host: Arc<dyn ScriptHost>,
    limits: &Limits,
    cancel: &CancelToken,
    started: Instant,
    memory_baseline: isize,
    output: &Arc<Mutex<OutputBuffer>>,
) -> Engine {
    let mut engine = Engine::new();

    // No way out: no modules, no eval, output captured.
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.set_max_modules(0);
    engine.disable_symbol("import");
    engine.disable_symbol("export");
    engine.disable_symbol("eval");
    engine.set_strict_variables(true);

    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);

    let deadline = started.checked_add(limits.timeout);
    let cancel = cancel.clone();
    let max_memory_bytes = signed(limits.max_memory_bytes);
    // Runs on the script's thread, so `thread_held_bytes` is the script's.
    engine.on_progress(move |operations| {
        if cancel.is_cancelled() {
            return Some(Dynamic::from(STOP_CANCELLED));
        }
        if thread_held_bytes().saturating_sub(memory_baseline) > max_memory_bytes {
            return Some(Dynamic::from(STOP_MEMORY));
        }
        if operations % CLOCK_CHECK_INTERVAL == 1 {
            if let Some(deadline) = deadline {
                if Instant::now() >= deadline {
                    return Some(Dynamic::from(STOP_TIMEOUT));
                }
            }
        }
        None
    });

    let print_output = Arc::clone(output);
    engine.on_print(move |text| {
        if let Ok(mut buffer) = print_output.lock() {
            buffer.push_line(text);
        }
    });
    let debug_output = Arc::clone(output);
    engine.on_debug(move |text, _source, position| {
        if let Ok(mut buffer) = debug_output.lock() {
            match position.line() {
                Some(line) => buffer.push_line(&format!("[debug line {line}] {text}")),
                None => buffer.push_line(&format!("[debug] {text}")),
            }
        }
    });

    register_api(&mut engine, host);
    refuse_sleep(&mut engine);
    engine
}

/// Rhai's `sleep` blocks the thread outside the operation count, so neither
/// the time limit nor a cancel could stop it (and `sleep(1e30)` panics).
/// These shadow it: functions registered on the engine are found before the
/// standard library's.
fn refuse_sleep(engine: &mut Engine) {
    const REFUSED: &str =
        "Scripts cannot sleep; a deployment's interval decides when it runs again.";
    engine.register_fn("sleep", |_seconds: rhai::INT| -> ApiResult<()> {
        Err(REFUSED.into())
    });
    engine.register_fn("sleep", |_seconds: rhai::FLOAT| -> ApiResult<()> {
        Err(REFUSED.into())
    });
}

type ApiResult<T> = Result<T, Box<EvalAltResult>>;

/// Binds the docs/API.md "Script API" functions to `host`.
fn register_api(engine: &mut Engine, host: Arc<dyn ScriptHost>) {
    let h = Arc::clone(&host);
    engine.register_fn("archives", move || -> Array {
        h.archives().into_iter().map(archive_to_dynamic).collect()
    });

    let h = Arc::clone(&host);
    engine.register_fn("archive", move |id: ImmutableString| -> Dynamic {
        h.archive(&id).map_or(Dynamic::UNIT, archive_to_dynamic)
    });

    let h = Arc::clone(&host);
    engine.register_fn("trash", move || -> Array {
        h.trash().into_iter().map(trashed_to_dynamic).collect()
    });

    let h = Arc::clone(&host);
    engine.register_fn("restore", move |id: ImmutableString| -> ApiResult<bool> {
        h.restore(&id)
            .map(|()| true)
            .map_err(|reason| format!("restore(\"{id}\") refused: {reason}").into())
    });

    let h = Arc::clone(&host);
    engine.register_fn("stats", move || -> Map {
        let stats = h.stats();
        let mut map = Map::new();
        map.insert("disk_total".into(), int(stats.disk_total));
        map.insert("disk_free".into(), int(stats.disk_free));
        map.insert("queue_length".into(), int(stats.queue_length));
        map.insert("bytes_uploaded".into(), int(stats.bytes_uploaded));
        map.insert("bytes_downloaded".into(), int(stats.bytes_downloaded));
        map.insert("stored_bytes".into(), int(stats.stored_bytes));
        map.insert("bytes_saved".into(), int(stats.bytes_saved));
        map.insert("archives".into(), int(stats.archives));
        map.insert("archives_off_site".into(), int(stats.archives_off_site));
        map.insert("placement".into(), stats.placement.into());
        map
    });

    let h = Arc::clone(&host);
    engine.register_fn("uncache", move |id: ImmutableString| -> ApiResult<bool> {
        h.uncache(&id)
            .map(|()| true)
            .map_err(|reason| format!("uncache(\"{id}\") refused: {reason}").into())
    });

    let h = Arc::clone(&host);
    engine.register_fn("cache", move |id: ImmutableString| -> ApiResult<bool> {
        h.cache(&id)
            .map(|()| true)
            .map_err(|reason| format!("cache(\"{id}\") refused: {reason}").into())
    });

    let h = Arc::clone(&host);
    engine.register_fn(
        "verify",
        move |id: ImmutableString, percent: rhai::INT| -> ApiResult<Map> {
            let percent = u8::try_from(percent)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    format!("verify(\"{id}\", {percent}): the percentage must be 0 to 100")
                })?;
            verify_map(h.as_ref(), &id, percent)
        },
    );
    // `verify(id)`: the share of parts the appliance's setting says.
    let h = Arc::clone(&host);
    engine.register_fn("verify", move |id: ImmutableString| -> ApiResult<Map> {
        verify_map(h.as_ref(), &id, h.verify_sample_percent())
    });

    let h = Arc::clone(&host);
    engine.register_fn("retry_failed", move || -> ApiResult<rhai::INT> {
        h.retry_failed()
            .map(|count| rhai::INT::try_from(count).unwrap_or(rhai::INT::MAX))
            .map_err(|reason| format!("retry_failed() failed: {reason}").into())
    });

    let h = Arc::clone(&host);
    engine.register_fn(
        "log",
        move |level: ImmutableString, message: Dynamic| -> ApiResult<()> {
            let level = LogLevel::parse(&level).ok_or_else(|| {
                format!("log: unknown level \"{level}\"; use debug, info, warn or error")
            })?;
            h.log(level, &message.to_string());
            Ok(())
        },
    );

    let h = host;
    engine.register_fn("now", move || -> rhai::INT { h.now() });
    // The byte formatter of the pages and the display, so reports use the same units.
    engine.register_fn("human_size", |bytes: rhai::INT| -> String {
        crate::units::human_size(u64::try_from(bytes).unwrap_or(0))
    });
}

/// Rhai integers are `i64`; sizes and counts never come near its limit.
fn verify_map(host: &dyn ScriptHost, id: &str, percent: u8) -> ApiResult<Map> {
    let report = host
        .verify(id, percent)
        .map_err(|reason| format!("verify(\"{id}\") failed: {reason}"))?;
    let mut map = Map::new();
    map.insert("checked".into(), int(report.checked));
    map.insert("ok".into(), int(report.ok));
    map.insert("damaged".into(), int(report.damaged));
    Ok(map)
}

fn int(value: u64) -> Dynamic {
    Dynamic::from_int(rhai::INT::try_from(value).unwrap_or(rhai::INT::MAX))
}

fn archive_to_dynamic(archive: ArchiveView) -> Dynamic {
    let mut map = Map::new();
    map.insert("id".into(), archive.id.into());
    map.insert("owner".into(), archive.owner.into());
    map.insert("name".into(), archive.name.into());
    map.insert("filename".into(), archive.filename.into());
    map.insert("size".into(), int(archive.size));
    map.insert("state".into(), archive.state.into());
    map.insert("parts_total".into(), int(archive.parts_total));
    map.insert("parts_remote".into(), int(archive.parts_remote));
    map.insert("created_at".into(), Dynamic::from_int(archive.created_at));
    map.insert(
        "last_accessed_at".into(),
        Dynamic::from_int(archive.last_accessed_at),
    );
    map.into()
}

fn trashed_to_dynamic(trashed: TrashedView) -> Dynamic {
    let mut map: Map = archive_to_dynamic(trashed.archive).cast();
    map.insert("state".into(), "trashed".into());
    map.insert("trashed_at".into(), Dynamic::from_int(trashed.trashed_at));
    map.insert("purge_at".into(), Dynamic::from_int(trashed.purge_at));
    map.into()
}

fn to_json(value: Dynamic) -> serde_json::Value {
    let value = value.flatten();
    serde_json::to_value(&value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

#[cfg(test)]
pub(crate) mod test_host;

#[cfg(test)]
mod tests;
