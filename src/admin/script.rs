//! The sandboxed admin script engine (Rhai).
//!
//! Owns: the Rust side of the "Script API" in API.md ([`ScriptHost`] and the
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

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, ParseErrorType, Position};
use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    /// One of the archive states of DESIGN.md: `receiving`, `local`,
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

/// Appliance-wide figures for `stats()`.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The appliance as a script sees it: exactly the functions of API.md
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
    /// Writes the system log with the script as source.
    fn log(&self, level: LogLevel, message: &str);
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

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

const MIB: usize = 1024 * 1024;

/// Stack of the thread a script runs on: deep enough that the call and
/// expression depth limits, not the stack, stop a script.
const SCRIPT_THREAD_STACK_BYTES: usize = 16 * MIB;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. `const` and without
    /// a destructor, so the allocator may touch it.
    static THREAD_HELD_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting per thread the bytes each thread holds, so
/// that a script's memory can be limited. Install it in the binary:
///
/// ```text
/// #[global_allocator]
/// static ALLOCATOR: piarchive::admin::script::ScriptMemoryCounter =
///     piarchive::admin::script::ScriptMemoryCounter;
/// ```
///
/// The cost is one thread-local add per allocation.
pub struct ScriptMemoryCounter;

fn count_held_bytes(delta: isize) {
    // `try_with` fails only while the thread is being torn down.
    let _ = THREAD_HELD_BYTES.try_with(|held| held.set(held.get().wrapping_add(delta)));
}

fn thread_held_bytes() -> isize {
    THREAD_HELD_BYTES.try_with(Cell::get).unwrap_or(0)
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches
// only a `const` thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for ScriptMemoryCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            count_held_bytes(signed(layout.size()));
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            count_held_bytes(signed(layout.size()));
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        count_held_bytes(-signed(layout.size()));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_pointer = System.realloc(pointer, layout, new_size);
        if !new_pointer.is_null() {
            count_held_bytes(signed(new_size).wrapping_sub(signed(layout.size())));
        }
        new_pointer
    }
}

/// Whether [`ScriptMemoryCounter`] is the global allocator, i.e. whether
/// [`Limits::max_memory_bytes`] is enforced. The appliance checks this once
/// at start-up.
pub fn memory_limit_enforced() -> bool {
    let before = thread_held_bytes();
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(4096));
    let after = thread_held_bytes();
    drop(probe);
    after - before >= 4096
}

#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: ScriptMemoryCounter = ScriptMemoryCounter;

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

/// Every way a run can fail, one sentence each; becomes
/// [`ScriptError::message`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScriptFailure {
    #[error("Syntax error: {0}.")]
    Syntax(String),
    #[error("The script nests expressions deeper than {0} levels; split it into functions or variables.")]
    ExpressionTooDeep(usize),
    #[error("The script ran longer than the {} limit and was stopped.", format_duration(*.0))]
    Timeout(Duration),
    #[error("The script was cancelled.")]
    Cancelled,
    #[error("The script used more than {0} operations and was stopped.")]
    TooManyOperations(u64),
    #[error("The script nested calls deeper than {0} levels.")]
    CallsTooDeep(usize),
    #[error("The script built a string longer than {} (strings inside one array or map count together).", format_bytes(*.0))]
    StringTooLong(usize),
    #[error("The script built an array with more than {0} items (nested arrays count together).")]
    ArrayTooLarge(usize),
    #[error("The script built a map with more than {0} entries (nested maps count together).")]
    MapTooLarge(usize),
    #[error("The script used more than {} of memory and was stopped.", format_bytes(*.0))]
    TooMuchMemory(usize),
    #[error("The script defined too many variables.")]
    TooManyVariables,
    #[error("Scripts cannot import modules.")]
    ImportRefused,
    /// A `throw` in the script, or a host function refusing (e.g. `uncache`
    /// of an archive that is not backed up).
    #[error("{0}")]
    Thrown(String),
    /// Any other run-time error reported by Rhai (type mismatch, unknown
    /// function, index out of bounds, ...).
    #[error("{0}")]
    Runtime(String),
    #[error("The script engine failed: {0}. This is a bug in piarchive.")]
    EngineFailed(String),
}

fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

fn format_bytes(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Tokens `on_progress` stops a run with.
const STOP_TIMEOUT: &str = "piarchive:timeout";
const STOP_CANCELLED: &str = "piarchive:cancelled";
const STOP_MEMORY: &str = "piarchive:memory";

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

/// Binds the API.md "Script API" functions to `host`.
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

fn to_json(value: Dynamic) -> serde_json::Value {
    let value = value.flatten();
    serde_json::to_value(&value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

fn describe_parse_error(
    error: &ParseErrorType,
    position: Position,
    limits: &Limits,
) -> (ScriptFailure, Position) {
    let failure = match error {
        ParseErrorType::ExprTooDeep => ScriptFailure::ExpressionTooDeep(limits.max_expr_depth),
        ParseErrorType::Reserved(word) if word == "import" || word == "export" => {
            ScriptFailure::ImportRefused
        }
        other => ScriptFailure::Syntax(other.to_string()),
    };
    (failure, position)
}

fn describe_eval_error(error: EvalAltResult, limits: &Limits) -> (ScriptFailure, Position) {
    use EvalAltResult as E;
    let position = error.position();
    let failure = match error {
        // An error inside a script function: report the innermost cause and
        // where it happened, falling back to the call site.
        E::ErrorInFunctionCall(_, _, inner, call_site) => {
            let (failure, inner_position) = describe_eval_error(*inner, limits);
            let position = if inner_position.is_none() {
                call_site
            } else {
                inner_position
            };
            return (failure, position);
        }
        E::ErrorParsing(parse_error, position) => {
            return describe_parse_error(&parse_error, position, limits)
        }
        E::ErrorTerminated(token, _) => match token.into_immutable_string().ok().as_deref() {
            Some(STOP_CANCELLED) => ScriptFailure::Cancelled,
            Some(STOP_MEMORY) => ScriptFailure::TooMuchMemory(limits.max_memory_bytes),
            _ => ScriptFailure::Timeout(limits.timeout),
        },
        E::ErrorTooManyOperations(_) => ScriptFailure::TooManyOperations(limits.max_operations),
        E::ErrorStackOverflow(_) => ScriptFailure::CallsTooDeep(limits.max_call_depth),
        E::ErrorDataTooLarge(kind, _) => {
            if kind.contains("string") {
                ScriptFailure::StringTooLong(limits.max_string_size)
            } else if kind.contains("array") {
                ScriptFailure::ArrayTooLarge(limits.max_array_size)
            } else {
                ScriptFailure::MapTooLarge(limits.max_map_size)
            }
        }
        E::ErrorTooManyVariables(_) => ScriptFailure::TooManyVariables,
        E::ErrorTooManyModules(_) | E::ErrorModuleNotFound(..) => ScriptFailure::ImportRefused,
        E::ErrorRuntime(value, _) => ScriptFailure::Thrown(value.to_string()),
        mut other => {
            // Rhai's own sentence, without the " (line 1, position 2)" suffix:
            // the position is reported separately.
            other.set_position(Position::NONE);
            ScriptFailure::Runtime(other.to_string())
        }
    };
    (failure, position)
}

#[cfg(test)]
pub(crate) mod test_host {
    //! `TestHost`: an in-memory stand-in for the appliance behind the script
    //! API, for tests of the engine and the built-in scripts only. The real
    //! host (store, job queue, remote) is written by the lead.

    use super::*;
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    pub const DAY: i64 = 24 * 60 * 60;
    /// The fixed "now" of the test host.
    pub const NOW: i64 = 1_750_000_000;

    #[derive(Default)]
    pub struct TestHostState {
        pub archives: Vec<ArchiveView>,
        pub disk_total: u64,
        pub disk_free: u64,
        pub queue_length: u64,
        /// Parts reported damaged by `verify`, by archive id.
        pub damaged_parts: BTreeMap<String, u64>,
        /// Failed transfers `retry_failed` re-queues.
        pub failed_transfers: u64,
        /// Calls recorded, in order.
        pub uncached: Vec<String>,
        pub cached: Vec<String>,
        pub verified: Vec<(String, u8)>,
        pub logs: Vec<(LogLevel, String)>,
    }

    pub struct TestHost {
        pub state: Mutex<TestHostState>,
        /// Each `log` message is also sent here, so a test can wait for a
        /// script to reach a point without sleeping.
        log_events: Mutex<Option<mpsc::Sender<String>>>,
    }

    impl TestHost {
        pub fn new(state: TestHostState) -> Arc<TestHost> {
            Arc::new(TestHost {
                state: Mutex::new(state),
                log_events: Mutex::new(None),
            })
        }

        pub fn log_events(&self) -> mpsc::Receiver<String> {
            let (sender, receiver) = mpsc::channel();
            *self.log_events.lock().unwrap() = Some(sender);
            receiver
        }

        pub fn state(&self) -> std::sync::MutexGuard<'_, TestHostState> {
            self.state.lock().unwrap()
        }
    }

    pub fn archive(id: &str, owner: &str, state: &str, size: u64, idle_days: i64) -> ArchiveView {
        ArchiveView {
            id: id.to_string(),
            owner: owner.to_string(),
            name: format!("{id} photos"),
            filename: format!("{id}.tar"),
            size,
            state: state.to_string(),
            parts_total: 4,
            parts_remote: if matches!(state, "backed_up" | "uncached" | "damaged") {
                4
            } else {
                0
            },
            created_at: NOW - 400 * DAY,
            last_accessed_at: NOW - idle_days * DAY,
        }
    }

    impl ScriptHost for TestHost {
        fn archives(&self) -> Vec<ArchiveView> {
            self.state().archives.clone()
        }

        fn archive(&self, id: &str) -> Option<ArchiveView> {
            self.state().archives.iter().find(|a| a.id == id).cloned()
        }

        fn stats(&self) -> Stats {
            let state = self.state();
            Stats {
                disk_total: state.disk_total,
                disk_free: state.disk_free,
                queue_length: state.queue_length,
                bytes_uploaded: 1000,
                bytes_downloaded: 2000,
                stored_bytes: 400,
                bytes_saved: 75,
                archives: state.archives.len() as u64,
            }
        }

        fn uncache(&self, id: &str) -> Result<(), String> {
            let mut state = self.state();
            let archive = state
                .archives
                .iter_mut()
                .find(|a| a.id == id)
                .ok_or_else(|| format!("there is no archive {id}"))?;
            if archive.state != "backed_up" {
                return Err(format!(
                    "archive {id} is not backed up (it is {})",
                    archive.state
                ));
            }
            archive.state = "uncached".to_string();
            state.uncached.push(id.to_string());
            Ok(())
        }

        fn cache(&self, id: &str) -> Result<(), String> {
            let mut state = self.state();
            let archive = state
                .archives
                .iter_mut()
                .find(|a| a.id == id)
                .ok_or_else(|| format!("there is no archive {id}"))?;
            if archive.state != "uncached" {
                return Err(format!(
                    "archive {id} is not uncached (it is {})",
                    archive.state
                ));
            }
            archive.state = "caching".to_string();
            state.cached.push(id.to_string());
            Ok(())
        }

        fn verify(&self, id: &str, percent: u8) -> Result<VerifyReport, String> {
            let mut state = self.state();
            let damaged = state.damaged_parts.get(id).copied().unwrap_or(0);
            let archive = state
                .archives
                .iter_mut()
                .find(|a| a.id == id)
                .ok_or_else(|| format!("there is no archive {id}"))?;
            if archive.parts_remote == 0 {
                return Err(format!("archive {id} has no remote copy"));
            }
            let checked = archive.parts_total;
            if damaged > 0 {
                archive.state = "damaged".to_string();
            }
            state.verified.push((id.to_string(), percent));
            Ok(VerifyReport {
                checked,
                ok: checked - damaged,
                damaged,
            })
        }

        fn retry_failed(&self) -> Result<u64, String> {
            let mut state = self.state();
            let count = state.failed_transfers;
            state.failed_transfers = 0;
            Ok(count)
        }

        fn log(&self, level: LogLevel, message: &str) {
            self.state().logs.push((level, message.to_string()));
            if let Some(sender) = self.log_events.lock().unwrap().as_ref() {
                let _ = sender.send(message.to_string());
            }
        }

        fn now(&self) -> i64 {
            NOW
        }
    }

    /// A small appliance: two users, archives in several states.
    pub fn sample_state() -> TestHostState {
        TestHostState {
            archives: vec![
                archive("a1", "alice", "backed_up", 100, 90),
                archive("a2", "alice", "local", 50, 1),
                archive("b1", "bob", "uncached", 300, 200),
                archive("b2", "bob", "backed_up", 25, 2),
            ],
            disk_total: 1000,
            disk_free: 500,
            queue_length: 3,
            ..TestHostState::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_host::*;
    use super::*;
    use serde_json::json;

    fn run_with(source: &str, host: Arc<TestHost>, limits: &Limits) -> RunResult {
        run(source, host, limits, &CancelToken::new())
    }

    fn run_sample(source: &str) -> (RunResult, Arc<TestHost>) {
        let host = TestHost::new(sample_state());
        let result = run_with(source, host.clone(), &Limits::default());
        (result, host)
    }

    /// Small limits so that every sandbox test ends in well under a second.
    fn tight_limits() -> Limits {
        Limits {
            max_operations: 200_000,
            max_call_depth: 16,
            max_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 1_000,
            max_map_size: 1_000,
            timeout: Duration::from_secs(2),
            max_output_bytes: 1024,
            max_memory_bytes: 8 * MIB,
        }
    }

    enum Expect {
        Value(serde_json::Value),
        /// Value and output.
        Printed(serde_json::Value, &'static str),
        /// Message (exact), line, column.
        Error(&'static str, usize, usize),
        /// Message starts with, line, column.
        ErrorStarting(&'static str, usize, usize),
    }

    fn check(cases: &[(&str, Expect)]) {
        for (source, expect) in cases {
            let (result, _host) = run_sample(source);
            let context = format!("source: {source}\nresult: {result:#?}");
            match expect {
                Expect::Value(value) => {
                    assert!(result.ok, "{context}");
                    assert_eq!(&result.value, value, "{context}");
                    assert_eq!(result.error, None, "{context}");
                }
                Expect::Printed(value, output) => {
                    assert!(result.ok, "{context}");
                    assert_eq!(&result.value, value, "{context}");
                    assert_eq!(result.output, *output, "{context}");
                }
                Expect::Error(message, line, column) => {
                    assert!(!result.ok, "{context}");
                    assert_eq!(result.value, serde_json::Value::Null, "{context}");
                    let error = result.error.as_ref().expect(&context);
                    assert_eq!(error.message, *message, "{context}");
                    assert_eq!(
                        (error.line, error.column),
                        (Some(*line), Some(*column)),
                        "{context}"
                    );
                }
                Expect::ErrorStarting(prefix, line, column) => {
                    assert!(!result.ok, "{context}");
                    let error = result.error.as_ref().expect(&context);
                    assert!(error.message.starts_with(prefix), "{context}");
                    assert_eq!(
                        (error.line, error.column),
                        (Some(*line), Some(*column)),
                        "{context}"
                    );
                }
            }
        }
    }

    #[test]
    fn values_and_output() {
        use Expect::*;
        check(&[
            ("1 + 2", Value(json!(3))),
            ("", Value(json!(null))),
            ("let x = 1;", Value(json!(null))),
            ("\"héllo <&> 🎉\"", Value(json!("héllo <&> 🎉"))),
            (
                "[1, \"two\", 3.5, true, ()]",
                Value(json!([1, "two", 3.5, true, null])),
            ),
            (
                "#{a: 1, b: #{c: [2]}}",
                Value(json!({"a": 1, "b": {"c": [2]}})),
            ),
            ("print(\"hi\"); print(42); 7", Printed(json!(7), "hi\n42\n")),
            (
                "debug(\"x\"); ()",
                Printed(json!(null), "[debug line 1] \"x\"\n"),
            ),
            ("fn double(x) { x * 2 } double(21)", Value(json!(42))),
            ("exit(5); 6", Value(json!(5))),
            (
                "let r = (); try { throw \"no\" } catch (e) { r = `caught ${e}` } r",
                Value(json!("caught no")),
            ),
        ]);
    }

    #[test]
    fn script_api() {
        use Expect::*;
        check(&[
            ("archives().len()", Value(json!(4))),
            (
                "archives().map(|a| a.id)",
                Value(json!(["a1", "a2", "b1", "b2"])),
            ),
            (
                "archive(\"b1\")",
                Value(json!({
                    "id": "b1", "owner": "bob", "name": "b1 photos", "filename": "b1.tar",
                    "size": 300, "state": "uncached", "parts_total": 4, "parts_remote": 4,
                    "created_at": NOW - 400 * DAY, "last_accessed_at": NOW - 200 * DAY,
                })),
            ),
            ("archive(\"nope\")", Value(json!(null))),
            (
                "stats()",
                Value(json!({
                    "disk_total": 1000, "disk_free": 500, "queue_length": 3,
                    "bytes_uploaded": 1000, "bytes_downloaded": 2000, "archives": 4,
                    "stored_bytes": 400, "bytes_saved": 75,
                })),
            ),
            ("now()", Value(json!(NOW))),
            ("uncache(\"a1\")", Value(json!(true))),
            ("cache(\"b1\")", Value(json!(true))),
            (
                "verify(\"a1\", 10)",
                Value(json!({"checked": 4, "ok": 4, "damaged": 0})),
            ),
            (
                "verify(\"a1\")",
                Value(json!({"checked": 4, "ok": 4, "damaged": 0})),
            ),
            ("retry_failed()", Value(json!(0))),
            ("log(\"info\", \"hello\")", Value(json!(null))),
            (
                "let r = \"\"; try { uncache(\"a2\") } catch (e) { r = e } r",
                Value(json!(
                    "uncache(\"a2\") refused: archive a2 is not backed up (it is local)"
                )),
            ),
            (
                "\n  cache(\"a1\")",
                Error(
                    "cache(\"a1\") refused: archive a1 is not uncached (it is backed_up)",
                    2,
                    3,
                ),
            ),
            (
                "verify(\"a1\", 101)",
                Error("verify(\"a1\", 101): the percentage must be 0 to 100", 1, 1),
            ),
            (
                "verify(\"a2\", 5)",
                Error("verify(\"a2\") failed: archive a2 has no remote copy", 1, 1),
            ),
            (
                "log(\"loud\", \"x\")",
                Error(
                    "log: unknown level \"loud\"; use debug, info, warn or error",
                    1,
                    1,
                ),
            ),
        ]);
    }

    #[test]
    fn syntax_and_runtime_errors_have_positions() {
        use Expect::*;
        check(&[
            ("let x = ;", ErrorStarting("Syntax error: ", 1, 9)),
            (
                "let a = 1;\nlet b = (a + ;\n",
                ErrorStarting("Syntax error: ", 2, 14),
            ),
            (
                "print(\"unterminated)",
                ErrorStarting("Syntax error: ", 1, 7),
            ),
            (
                "undefined_variable + 1",
                ErrorStarting("Syntax error: ", 1, 1),
            ),
            ("let x = 1;\n\n    throw \"boom\";", Error("boom", 3, 5)),
            (
                "let a = [1, 2];\na[5]",
                ErrorStarting("Array index 5 out of bounds", 2, 3),
            ),
            (
                "1 + \"x\" * 2",
                ErrorStarting("Function not found: *", 1, 9),
            ),
            (
                "no_such_fn(1)",
                ErrorStarting("Function not found: no_such_fn", 1, 1),
            ),
            (
                "fn inner() { throw \"deep\" }\nfn outer() { inner() }\nouter()",
                Error("deep", 1, 14),
            ),
            (
                "archive(42)",
                ErrorStarting("Function not found: archive (i64)", 1, 1),
            ),
        ]);
    }

    #[test]
    fn import_and_eval_are_refused() {
        use Expect::*;
        check(&[
            (
                "import \"x\" as x; 1",
                Error("Scripts cannot import modules.", 1, 1),
            ),
            ("eval(\"1\")", ErrorStarting("Syntax error: ", 1, 1)),
            (
                "let f = Fn(\"eval\"); f.call(\"1\")",
                Error("Syntax error: 'eval' is a reserved keyword.", 1, 12),
            ),
            (
                "call(Fn(\"eval\"), \"1\")",
                Error("Syntax error: 'eval' is a reserved keyword.", 1, 9),
            ),
            (
                "let name = \"ev\" + \"al\";\nlet f = Fn(name); f.call(\"1\")",
                Error("Syntax error: 'eval' is a reserved keyword.", 2, 12),
            ),
            // No clock but the host's `now()`.
            (
                "timestamp()",
                Error("Function not found: timestamp ()", 1, 1),
            ),
        ]);
    }

    #[test]
    fn uncache_of_an_archive_not_backed_up_throws_and_evicts_nothing() {
        let host = TestHost::new(sample_state());
        let result = run_with(
            "uncache(\"a2\");\nprint(\"after\");",
            host.clone(),
            &tight_limits(),
        );
        assert!(!result.ok);
        let error = result.error.unwrap();
        assert_eq!(
            error.message,
            "uncache(\"a2\") refused: archive a2 is not backed up (it is local)"
        );
        assert_eq!((error.line, error.column), (Some(1), Some(1)));
        assert_eq!(result.output, "");
        let state = host.state();
        assert!(state.uncached.is_empty());
        assert_eq!(state.archives[1].state, "local");
    }

    fn assert_stopped(source: &str, limits: &Limits, message: &str) -> RunResult {
        let host = TestHost::new(sample_state());
        let started = Instant::now();
        let result = run_with(source, host, limits);
        let elapsed = started.elapsed();
        assert!(!result.ok, "{source}: {result:#?}");
        assert_eq!(result.error.as_ref().unwrap().message, message, "{source}");
        assert!(
            elapsed < limits.timeout + Duration::from_secs(1),
            "{source} took {elapsed:?}"
        );
        result
    }

    #[test]
    fn endless_loop_is_stopped_by_the_operation_limit() {
        assert_stopped(
            "loop {}",
            &tight_limits(),
            "The script used more than 200000 operations and was stopped.",
        );
    }

    #[test]
    fn endless_loop_is_stopped_by_the_timeout() {
        let limits = Limits {
            max_operations: 0, // unlimited: only the clock stops it
            timeout: Duration::from_millis(300),
            ..tight_limits()
        };
        let started = Instant::now();
        let result = assert_stopped(
            "let i = 0;\nloop { i += 1; }",
            &limits,
            "The script ran longer than the 300 ms limit and was stopped.",
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(result.duration_ms >= 300, "{}", result.duration_ms);
        assert_eq!(result.error.unwrap().line, Some(2));
    }

    #[test]
    fn timeout_message_in_seconds() {
        assert_eq!(
            ScriptFailure::Timeout(Duration::from_secs(5)).to_string(),
            "The script ran longer than the 5 s limit and was stopped."
        );
        assert_eq!(
            ScriptFailure::StringTooLong(MIB).to_string(),
            "The script built a string longer than 1 MiB (strings inside one array or map count together)."
        );
    }

    #[test]
    fn deep_recursion_is_stopped() {
        let result = assert_stopped(
            "fn down(n) { down(n + 1) }\ndown(0)",
            &tight_limits(),
            "The script nested calls deeper than 16 levels.",
        );
        // Reported at the outermost call.
        assert_eq!(result.error.unwrap().line, Some(2));
    }

    #[test]
    fn recursion_at_the_default_depth_limit_with_deep_expressions_does_not_crash() {
        // 32 levels, each holding a 25-deep expression: the limits stop it,
        // not the thread's stack.
        let mut expression = String::from("down(n + 1)");
        for _ in 0..25 {
            expression = format!("(1 + {expression})");
        }
        let source = format!("fn down(n) {{ {expression} }}\ndown(0)");
        let limits = Limits::default();
        assert_stopped(
            &source,
            &limits,
            "The script nested calls deeper than 32 levels.",
        );
    }

    #[test]
    fn exploding_string_is_stopped() {
        assert_stopped(
            "let s = \"x\"; loop { s += s; }",
            &tight_limits(),
            "The script built a string longer than 64 KiB (strings inside one array or map count together).",
        );
    }

    #[test]
    fn exploding_string_is_stopped_at_the_default_limit() {
        let limits = Limits {
            max_string_size: MIB,
            ..Limits::default()
        };
        assert_stopped(
            "let s = \"x\"; loop { s += s; }",
            &limits,
            "The script built a string longer than 1 MiB (strings inside one array or map count together).",
        );
    }

    #[test]
    fn big_arrays_and_maps_are_stopped() {
        let limits = tight_limits();
        assert_stopped(
            "let a = []; loop { a.push(1); }",
            &limits,
            "The script built an array with more than 1000 items (nested arrays count together).",
        );
        assert_stopped(
            "let a = [1]; loop { a += a; }",
            &limits,
            "The script built an array with more than 1000 items (nested arrays count together).",
        );
        assert_stopped(
            "let m = #{}; loop { m += #{}; m[`k${m.len()}`] = 1; }",
            &limits,
            "The script built a map with more than 1000 entries (nested maps count together).",
        );
        assert_stopped(
            "let a = []; let s = \"x\"; s.pad(1024, \"y\"); loop { a.push(s); }",
            &limits,
            "The script built a string longer than 64 KiB (strings inside one array or map count together).",
        );
    }

    #[test]
    fn deeply_nested_expression_is_refused_when_compiled() {
        let source = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        let result = assert_stopped(
            &source,
            &tight_limits(),
            "The script nests expressions deeper than 32 levels; split it into functions or variables.",
        );
        assert!(result.error.unwrap().line.is_some());
    }

    #[test]
    fn output_is_capped() {
        let host = TestHost::new(sample_state());
        let result = run_with(
            "for i in 0..1000 { print(\"line of output\"); } 1",
            host,
            &tight_limits(),
        );
        assert!(result.ok, "{result:#?}");
        let kept = result
            .output
            .strip_suffix(TRUNCATED_MARK)
            .expect("the output ends with the truncation mark");
        assert!(kept.len() <= 1024 && kept.len() > 1000, "{}", kept.len());
        assert!(kept.starts_with("line of output\n"));
        assert!(kept.ends_with('\n'));
    }

    #[test]
    fn output_truncation_keeps_whole_characters() {
        for max_bytes in 0..12 {
            let mut buffer = OutputBuffer::new(max_bytes);
            buffer.push_line("ab");
            buffer.push_line("🎉🎉🎉");
            buffer.push_line("never");
            let kept = buffer.text.strip_suffix(TRUNCATED_MARK).unwrap();
            assert!(kept.len() <= max_bytes, "{max_bytes}: {kept:?}");
            assert!(!kept.contains("never"));
        }
    }

    #[test]
    fn memory_is_limited_where_rhai_does_not_check_sizes() {
        assert!(memory_limit_enforced());
        let limits = tight_limits();
        // A map grown by index assignment is not size-checked by Rhai.
        assert_stopped(
            "let s = \"x\"; s.pad(1024, \"y\");\n\
             let m = #{}; let i = 0; loop { m[`k${i}`] = s + i; i += 1; }",
            &limits,
            "The script used more than 8 MiB of memory and was stopped.",
        );
        // Nor an array whose items are replaced by big strings.
        assert_stopped(
            "let s = \"0123456789abcdef\"; while s.len() < 30000 { s += s; }\n\
             let a = []; a.pad(900, ());\n\
             let i = 0; loop { a[i % 900] = s + i; i += 1; }",
            &limits,
            "The script used more than 8 MiB of memory and was stopped.",
        );
    }

    #[test]
    fn memory_freed_by_the_script_is_not_held_against_it() {
        let host = TestHost::new(sample_state());
        // 40 rounds of a 1 MiB map that is dropped each time: 40 MiB in all.
        let result = run_with(
            "let s = \"x\"; s.pad(102400, \"y\");\n\
             for round in 0..40 { let m = #{}; for i in 0..10 { m[`k${i}`] = s + i; } }\n\
             \"done\"",
            host,
            &Limits {
                max_string_size: MIB,
                ..tight_limits()
            },
        );
        assert!(result.ok, "{result:#?}");
    }

    #[test]
    fn output_before_an_error_is_kept() {
        let (result, _host) = run_sample("print(\"first\");\nthrow \"second\";");
        assert!(!result.ok);
        assert_eq!(result.output, "first\n");
    }

    #[test]
    fn external_cancel_stops_a_running_script_quickly() {
        let host = TestHost::new(sample_state());
        let started_events = host.log_events();
        let limits = Limits {
            max_operations: 0,
            timeout: Duration::from_secs(60),
            ..tight_limits()
        };
        let cancel = CancelToken::new();
        let runner = {
            let cancel = cancel.clone();
            let host = host.clone();
            std::thread::spawn(move || {
                run(
                    "log(\"info\", \"started\");\nloop {}",
                    host,
                    &limits,
                    &cancel,
                )
            })
        };
        let event = started_events
            .recv_timeout(Duration::from_secs(10))
            .expect("the script never started");
        assert_eq!(event, "started");
        let cancelled_at = Instant::now();
        cancel.cancel();
        let result = runner.join().unwrap();
        let stop_latency = cancelled_at.elapsed();
        assert!(!result.ok);
        let error = result.error.unwrap();
        assert_eq!(error.message, "The script was cancelled.");
        assert_eq!(error.line, Some(2));
        assert!(stop_latency < Duration::from_secs(1), "{stop_latency:?}");
    }

    #[test]
    fn a_panicking_host_does_not_take_the_caller_down() {
        struct PanickingHost;
        impl ScriptHost for PanickingHost {
            fn archives(&self) -> Vec<ArchiveView> {
                panic!("store unavailable")
            }
            fn archive(&self, _: &str) -> Option<ArchiveView> {
                None
            }
            fn stats(&self) -> Stats {
                Stats {
                    disk_total: 0,
                    disk_free: 0,
                    queue_length: 0,
                    bytes_uploaded: 0,
                    bytes_downloaded: 0,
                    stored_bytes: 0,
                    bytes_saved: 0,
                    archives: 0,
                }
            }
            fn uncache(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
            fn cache(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
            fn verify(&self, _: &str, _: u8) -> Result<VerifyReport, String> {
                Ok(VerifyReport::default())
            }
            fn retry_failed(&self) -> Result<u64, String> {
                Ok(0)
            }
            fn log(&self, _: LogLevel, _: &str) {}
            fn now(&self) -> i64 {
                0
            }
        }
        let result = run(
            "archives()",
            Arc::new(PanickingHost),
            &tight_limits(),
            &CancelToken::new(),
        );
        assert!(!result.ok);
        assert_eq!(
            result.error.unwrap().message,
            "The script engine failed: store unavailable. This is a bug in piarchive."
        );
    }

    #[test]
    fn sleep_is_refused_with_a_sentence_and_never_panics() {
        let refused = "Scripts cannot sleep; a deployment's interval decides when it runs again.";
        for source in [
            "sleep(9223372036)",
            "sleep(1e30)",
            "sleep(-1)",
            "sleep(0.5)",
            "let f = Fn(\"sleep\"); f.call(9223372036)",
            "call(Fn(\"sleep\"), 1e300)",
        ] {
            let started = Instant::now();
            let result = run_with(source, TestHost::new(sample_state()), &tight_limits());
            assert!(!result.ok, "{source}: {result:#?}");
            assert_eq!(result.error.unwrap().message, refused, "{source}");
            assert!(started.elapsed() < Duration::from_secs(1), "{source}");
        }
    }

    #[test]
    fn a_host_call_that_never_returns_still_ends_the_run_after_its_limit() {
        struct StuckHost(Mutex<std::sync::mpsc::Receiver<()>>);
        impl ScriptHost for StuckHost {
            fn archives(&self) -> Vec<ArchiveView> {
                let _ = self.0.lock().unwrap().recv();
                Vec::new()
            }
            fn archive(&self, _: &str) -> Option<ArchiveView> {
                None
            }
            fn stats(&self) -> Stats {
                Stats {
                    disk_total: 0,
                    disk_free: 0,
                    queue_length: 0,
                    bytes_uploaded: 0,
                    bytes_downloaded: 0,
                    archives: 0,
                    stored_bytes: 0,
                    bytes_saved: 0,
                }
            }
            fn uncache(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
            fn cache(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
            fn verify(&self, _: &str, _: u8) -> Result<VerifyReport, String> {
                Ok(VerifyReport::default())
            }
            fn retry_failed(&self) -> Result<u64, String> {
                Ok(0)
            }
            fn log(&self, _: LogLevel, _: &str) {}
            fn now(&self) -> i64 {
                0
            }
        }
        let (release, stuck) = std::sync::mpsc::channel();
        let limits = Limits {
            timeout: Duration::from_millis(100),
            ..tight_limits()
        };
        let started = Instant::now();
        let result = run(
            "archives()",
            Arc::new(StuckHost(Mutex::new(stuck))),
            &limits,
            &CancelToken::new(),
        );
        let elapsed = started.elapsed();
        let _ = release.send(());
        assert!(!result.ok);
        assert_eq!(
            result.error.unwrap().message,
            "The script ran longer than the 100 ms limit and was stopped."
        );
        assert!(elapsed < limits.timeout + OVERRUN_GRACE + Duration::from_secs(1));
    }

    #[test]
    fn run_result_has_the_api_json_shape() {
        let (ok, _) = run_sample("print(\"a\"); [1]");
        let json = serde_json::to_value(&ok).unwrap();
        assert_eq!(json["ok"], json!(true));
        assert_eq!(json["output"], json!("a\n"));
        assert_eq!(json["value"], json!([1]));
        assert_eq!(json["error"], json!(null));
        assert!(json["duration_ms"].is_u64());
        assert_eq!(json.as_object().unwrap().len(), 5);

        let (failed, _) = run_sample("\n  throw \"x\"");
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["ok"], json!(false));
        assert_eq!(json["value"], json!(null));
        assert_eq!(
            json["error"],
            json!({"message": "x", "line": 2, "column": 3})
        );
    }

    #[test]
    fn host_log_receives_level_and_message() {
        let (result, host) = run_sample("log(\"warn\", \"disk <&> 🎉\"); log(\"error\", 42);");
        assert!(result.ok, "{result:#?}");
        assert_eq!(
            host.state().logs,
            vec![
                (LogLevel::Warn, "disk <&> 🎉".to_string()),
                (LogLevel::Error, "42".to_string())
            ]
        );
    }
}
