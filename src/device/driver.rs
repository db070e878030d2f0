//! The device driver thread: keeps the LEDs and the display in step with the
//! latest [`DeviceStatus`], and keeps an in-memory mirror of both for the
//! admin device page.
//!
//! Owns: the thread, its timing (tick while something blinks, block while
//! nothing does, at most one frame per `min_frame_interval`), falling back
//! to the simulated board when hardware is missing or fails, retrying the
//! hardware, and the [`DeviceMirror`] (which *is* the simulated board: LED
//! patterns, lit levels and the exact framebuffer, always kept, with or
//! without hardware). Must not touch: the status rules, LED timing and the
//! layout (pure modules), the engine and the web server (the lead wires them:
//! events in through [`StatusSender`], the page out through [`MirrorHandle`]).
//!
//! Best effort throughout: no hardware failure stops the appliance. Each
//! failure is logged once; the output then runs simulated and is retried
//! every `retry_every`; a recovery is logged too.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backend::{DeviceError, Display, Hardware, Leds};
use super::board::BoardProfile;
use super::display::{render, Framebuffer};
use super::leds::{led_patterns, ActivityCounter, LedLevels, LedStates};
use super::status::DeviceStatus;

/// Receives one log line (a full sentence). The lead hooks the system log.
pub type Logger = Box<dyn Fn(&str) + Send>;

/// Driver timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverOptions {
    /// LED update period while a pattern blinks or flickers.
    pub tick: Duration,
    /// Shortest time between two display frames (250 ms = at most 4 Hz).
    pub min_frame_interval: Duration,
    /// How often missing or failed hardware is tried again.
    pub retry_every: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            tick: Duration::from_millis(100),
            min_frame_interval: Duration::from_millis(250),
            retry_every: Duration::from_secs(30),
        }
    }
}

/// Where an output currently goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Real GPIO pins or a real panel (and the mirror).
    Hardware,
    /// Only the mirror: no hardware expected, or it is missing or failed.
    Simulated,
}

/// Everything the device shows, as last driven. Cloned out for the web page.
#[derive(Clone, Debug)]
pub struct DeviceMirror {
    /// Board profile name ("pi4", "simulated", ...).
    pub board: String,
    pub status: DeviceStatus,
    pub leds: LedStates,
    /// Whether each LED is lit at this moment (changes with every blink).
    pub lit: LedLevels,
    /// The exact frame on (or meant for) the panel; serve it as `display.png`.
    pub frame: Framebuffer,
    /// Increases whenever `leds` or `frame` changes (not on blink toggles):
    /// a cheap ETag for `display.png` and a trigger for live page updates.
    pub generation: u64,
    pub leds_output: Output,
    pub display_output: Output,
    /// How many times the driver thread has woken up; stays put while idle.
    pub wakeups: u64,
}

/// The JSON body for `GET /api/v1/admin/device`:
/// `{"green":"steady","blue":"off","red":"off","lit":{"green":true,...},
/// "board":"pi4","leds_output":"hardware","display_output":"simulated","generation":7}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    #[serde(flatten)]
    pub leds: LedStates,
    pub lit: LedLevels,
    pub board: String,
    pub leds_output: Output,
    pub display_output: Output,
    pub generation: u64,
}

impl DeviceMirror {
    pub fn report(&self) -> DeviceReport {
        DeviceReport {
            leds: self.leds,
            lit: self.lit,
            board: self.board.clone(),
            leds_output: self.leds_output,
            display_output: self.display_output,
            generation: self.generation,
        }
    }
}

struct Shared {
    mirror: Mutex<DeviceMirror>,
    changed: Condvar,
}

/// Read access to the mirror, cheap to clone, for the web handlers.
#[derive(Clone)]
pub struct MirrorHandle {
    shared: Arc<Shared>,
}

impl MirrorHandle {
    fn lock(&self) -> MutexGuard<'_, DeviceMirror> {
        // A panic elsewhere while holding the lock leaves a consistent value
        // (every update is a plain field assignment), so keep using it.
        self.shared
            .mirror
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the mirror as it is now.
    pub fn snapshot(&self) -> DeviceMirror {
        self.lock().clone()
    }

    /// Waits until `condition` holds for the mirror or `timeout` passes;
    /// returns the mirror that satisfied it. For live updates (wait for a
    /// `generation` newer than the one the page has) and for tests.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&DeviceMirror) -> bool,
    ) -> Option<DeviceMirror> {
        let guard = self.lock();
        let (guard, result) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |mirror| !condition(mirror))
            .unwrap_or_else(PoisonError::into_inner);
        if result.timed_out() {
            None
        } else {
            Some(guard.clone())
        }
    }

    fn update(&self, change: impl FnOnce(&mut DeviceMirror)) {
        change(&mut self.lock());
        self.shared.changed.notify_all();
    }
}

enum Command {
    Status(Box<DeviceStatus>),
    Shutdown,
}

/// Sends status updates to the driver; cheap to clone, for the engine's
/// event task. Sending after the driver stopped is silently ignored.
#[derive(Clone)]
pub struct StatusSender {
    sender: Sender<Command>,
}

impl StatusSender {
    pub fn send(&self, status: DeviceStatus) {
        // The driver only goes away at shutdown; a late update does not matter.
        let _ = self.sender.send(Command::Status(Box::new(status)));
    }
}

/// The running driver. Dropping it shuts the thread down too.
pub struct DeviceDriver {
    sender: Sender<Command>,
    mirror: MirrorHandle,
    thread: Option<JoinHandle<()>>,
}

impl DeviceDriver {
    /// Starts the driver thread for `profile`. Hardware is opened inside the
    /// thread (an absent I2C panel can take a moment to time out), only for
    /// the outputs the profile expects; the others are simulated from the
    /// start without a log line. Fails only if the thread cannot be spawned.
    pub fn start(
        profile: &BoardProfile,
        hardware: Box<dyn Hardware>,
        initial: DeviceStatus,
        options: DriverOptions,
        log: Logger,
    ) -> Result<DeviceDriver, DeviceError> {
        let mirror = MirrorHandle {
            shared: Arc::new(Shared {
                mirror: Mutex::new(DeviceMirror {
                    board: profile.name.clone(),
                    status: initial.clone(),
                    leds: LedStates::ALL_OFF,
                    lit: LedLevels::default(),
                    frame: Framebuffer::new(),
                    generation: 0,
                    leds_output: Output::Simulated,
                    display_output: Output::Simulated,
                    wakeups: 0,
                }),
                changed: Condvar::new(),
            }),
        };
        let (sender, receiver) = mpsc::channel();
        let worker = Worker {
            hardware,
            leds: Slot::new(profile.leds_expected),
            display: Slot::new(profile.display_expected),
            options,
            log,
            mirror: mirror.clone(),
            status: initial,
        };
        let thread = std::thread::Builder::new()
            .name("device".to_string())
            .spawn(move || worker.run(receiver))?;
        Ok(DeviceDriver {
            sender,
            mirror,
            thread: Some(thread),
        })
    }

    /// Shows a new status (rendered within `min_frame_interval`).
    pub fn update(&self, status: DeviceStatus) {
        self.sender().send(status);
    }

    /// A sender for other threads and tasks.
    pub fn sender(&self) -> StatusSender {
        StatusSender {
            sender: self.sender.clone(),
        }
    }

    pub fn mirror(&self) -> MirrorHandle {
        self.mirror.clone()
    }

    /// Turns the LEDs off, blanks the panel and stops the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.sender.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            // A panicked driver thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for DeviceDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One output: real hardware, or simulated with maybe a retry planned.
enum Slot<T: ?Sized> {
    Hardware(Box<T>),
    Simulated {
        /// `None`: not expected on this board, never tried.
        retry_at: Option<Instant>,
        /// A failure was logged and no recovery since: stay quiet.
        failure_logged: bool,
    },
}

impl<T: ?Sized> Slot<T> {
    fn new(expected: bool) -> Slot<T> {
        Slot::Simulated {
            // Expected hardware is tried on the first loop pass.
            retry_at: expected.then(Instant::now),
            failure_logged: false,
        }
    }

    fn output(&self) -> Output {
        match self {
            Slot::Hardware(_) => Output::Hardware,
            Slot::Simulated { .. } => Output::Simulated,
        }
    }

    fn retry_at(&self) -> Option<Instant> {
        match self {
            Slot::Hardware(_) => None,
            Slot::Simulated { retry_at, .. } => *retry_at,
        }
    }

    /// Tries to open the hardware if a retry is due. Returns true when it
    /// just came (back).
    fn retry(
        &mut self,
        now: Instant,
        retry_every: Duration,
        open: impl FnOnce() -> Result<Box<T>, DeviceError>,
        name: &str,
        log: &Logger,
    ) -> bool {
        let Slot::Simulated {
            retry_at: Some(due),
            failure_logged,
        } = self
        else {
            return false;
        };
        if now < *due {
            return false;
        }
        match open() {
            Ok(device) => {
                if *failure_logged {
                    log(&format!("{name} is working again."));
                }
                *self = Slot::Hardware(device);
                true
            }
            Err(error) => {
                if !*failure_logged {
                    log(&format!(
                        "{name} unavailable: {error}. Showing it on the admin device page only; retrying every {}.",
                        describe(retry_every)
                    ));
                    *failure_logged = true;
                }
                *due = now + retry_every;
                false
            }
        }
    }

    /// Falls back to simulated after a write failure and logs it; the
    /// retries that follow stay quiet until the hardware works again.
    fn fail(
        &mut self,
        now: Instant,
        retry_every: Duration,
        error: DeviceError,
        name: &str,
        log: &Logger,
    ) {
        log(&format!(
            "{name} stopped working: {error}. Showing it on the admin device page only; retrying every {}.",
            describe(retry_every)
        ));
        *self = Slot::Simulated {
            retry_at: Some(now + retry_every),
            failure_logged: true,
        };
    }
}

struct Worker {
    hardware: Box<dyn Hardware>,
    leds: Slot<dyn Leds>,
    display: Slot<dyn Display>,
    options: DriverOptions,
    log: Logger,
    mirror: MirrorHandle,
    status: DeviceStatus,
}

impl Worker {
    fn run(self, commands: Receiver<Command>) {
        let mut driving = Driving::new(self);
        while let Some(latest) = driving.next_command(&commands) {
            let now = Instant::now();
            if let Some(status) = latest {
                driving.apply(*status, now);
            }
            driving.retry_hardware(now);
            let levels = driving.drive_leds(now);
            let rendered = driving.drive_display(now);
            driving.publish(levels, rendered);
        }
        driving.go_dark();
    }
}

/// The driver thread's loop and what it keeps between two wake-ups.
struct Driving {
    worker: Worker,
    started: Instant,
    patterns: LedStates,
    activity: ActivityCounter,
    next_tick: Instant,
    frame_due: bool,
    last_frame_at: Option<Instant>,
    /// The last rendered frame, and whether the panel still lacks it.
    frame: Framebuffer,
    panel_stale: bool,
    /// The levels the pins last got; None = send again.
    pin_levels: Option<LedLevels>,
}

impl Driving {
    fn new(worker: Worker) -> Driving {
        let started = Instant::now();
        let patterns = led_patterns(&worker.status);
        worker.mirror.update(|mirror| {
            mirror.leds = patterns;
            mirror.generation += 1;
        });
        Driving {
            worker,
            started,
            patterns,
            activity: ActivityCounter::new(),
            next_tick: started,
            frame_due: true,
            last_frame_at: None,
            frame: Framebuffer::new(),
            panel_stale: false,
            pin_levels: None,
        }
    }

    /// Waits until the earliest thing that needs doing, or a command.
    /// Blocks indefinitely when nothing blinks, no frame waits and no
    /// hardware retry is planned (idle: zero wakeups). Returns the newest
    /// status of a burst of updates (`Some(None)`: none came), or `None`
    /// to stop.
    fn next_command(&self, commands: &Receiver<Command>) -> Option<Option<Box<DeviceStatus>>> {
        let now = Instant::now();
        let worker = &self.worker;
        let deadlines = [
            self.patterns.is_animated().then_some(self.next_tick),
            self.frame_due.then(|| {
                self.last_frame_at
                    .map_or(now, |at| at + worker.options.min_frame_interval)
            }),
            worker.leds.retry_at(),
            worker.display.retry_at(),
        ];
        let received = match deadlines.into_iter().flatten().min() {
            Some(at) => commands.recv_timeout(at.saturating_duration_since(now)),
            None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut latest = match received {
            Ok(Command::Status(status)) => Some(status),
            Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => None,
        };
        // Only the newest of a burst of updates matters.
        let mut shutdown = false;
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Status(status) => latest = Some(status),
                Command::Shutdown => shutdown = true,
            }
        }
        (!shutdown).then_some(latest)
    }

    /// A new status: a new frame is due, and new LED patterns start now.
    fn apply(&mut self, status: DeviceStatus, now: Instant) {
        if status == self.worker.status {
            return;
        }
        self.worker.status = status;
        self.frame_due = true;
        let new_patterns = led_patterns(&self.worker.status);
        if new_patterns != self.patterns {
            self.patterns = new_patterns;
            self.next_tick = now;
            let patterns = self.patterns;
            self.worker.mirror.update(|mirror| {
                mirror.leds = patterns;
                mirror.generation += 1;
            });
        }
    }

    /// Hardware that (re)appears gets the current levels and frame.
    fn retry_hardware(&mut self, now: Instant) {
        let worker = &mut self.worker;
        let retry_every = worker.options.retry_every;
        let hardware = &mut worker.hardware;
        if worker.leds.retry(
            now,
            retry_every,
            || hardware.open_leds(),
            "Status LEDs",
            &worker.log,
        ) {
            self.pin_levels = None;
        }
        if worker.display.retry(
            now,
            retry_every,
            || hardware.open_display(),
            "Display",
            &worker.log,
        ) {
            self.panel_stale = true;
        }
    }

    /// Moves the activity counter on when a tick is due and sets the pins
    /// when their levels changed; returns the levels.
    fn drive_leds(&mut self, now: Instant) -> LedLevels {
        let worker = &mut self.worker;
        if self.patterns.is_animated() && now >= self.next_tick {
            let data_moved = worker
                .status
                .current
                .as_ref()
                .is_some_and(|current| current.bytes_per_sec > 0);
            self.activity.tick(data_moved);
            self.next_tick = now + worker.options.tick;
        }
        let elapsed_ms =
            u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        let levels = self.patterns.levels_at(elapsed_ms, self.activity.value());
        if self.pin_levels != Some(levels) {
            if let Slot::Hardware(leds) = &mut worker.leds {
                if let Err(error) = leds.set(levels) {
                    let retry_every = worker.options.retry_every;
                    worker
                        .leds
                        .fail(now, retry_every, error, "Status LEDs", &worker.log);
                }
            }
            self.pin_levels = Some(levels);
        }
        levels
    }

    /// Renders a due frame when the frame interval allows and sends it to
    /// the panel when the panel lacks it; returns whether it rendered.
    fn drive_display(&mut self, now: Instant) -> bool {
        let worker = &mut self.worker;
        let mut rendered = false;
        let frame_allowed = self
            .last_frame_at
            .is_none_or(|at| now >= at + worker.options.min_frame_interval);
        if self.frame_due && frame_allowed {
            self.frame = render(&worker.status);
            self.frame_due = false;
            self.last_frame_at = Some(now);
            rendered = true;
            self.panel_stale = true;
        }
        if self.panel_stale && self.last_frame_at.is_some() {
            if let Slot::Hardware(display) = &mut worker.display {
                match display.flush(&self.frame) {
                    Ok(()) => self.panel_stale = false,
                    Err(error) => {
                        let retry_every = worker.options.retry_every;
                        worker
                            .display
                            .fail(now, retry_every, error, "Display", &worker.log)
                    }
                }
            }
        }
        rendered
    }

    /// Shows this wake-up in the mirror (render outside its lock).
    fn publish(&self, levels: LedLevels, rendered: bool) {
        let worker = &self.worker;
        let leds_output = worker.leds.output();
        let display_output = worker.display.output();
        let status = &worker.status;
        let frame = &self.frame;
        worker.mirror.update(|mirror| {
            mirror.wakeups += 1;
            mirror.lit = levels;
            mirror.leds_output = leds_output;
            mirror.display_output = display_output;
            if rendered {
                mirror.status = status.clone();
                mirror.frame = frame.clone();
                mirror.generation += 1;
            }
        });
    }

    /// Leaves the hardware dark: a stopped appliance must not look healthy.
    fn go_dark(&mut self) {
        let worker = &mut self.worker;
        if let Slot::Hardware(leds) = &mut worker.leds {
            let _ = leds.set(LedLevels::default());
        }
        if let Slot::Hardware(display) = &mut worker.display {
            let _ = display.blank();
        }
        worker.mirror.update(|mirror| {
            mirror.leds = LedStates::ALL_OFF;
            mirror.lit = LedLevels::default();
            mirror.generation += 1;
        });
    }
}

/// "30 s", or "200 ms" below a second (tests use short intervals).
fn describe(interval: Duration) -> String {
    if interval >= Duration::from_secs(1) {
        format!("{} s", interval.as_secs())
    } else {
        format!("{} ms", interval.as_millis())
    }
}
