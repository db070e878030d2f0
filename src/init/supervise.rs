//! Supervision of `piarchive serve` by init, and the signals PID 1 handles.
//!
//! Owns: the restart schedule (pure: how many quick failures in a row -> how long to
//! wait), starting the child, reaping every exited process (PID 1 inherits orphans),
//! stopping the child at shutdown, and waiting for signals with sigtimedwait (init
//! blocks its signals, so none interrupts a step half-way).
//! Must not touch: what the child does; it only sees the child's pid and exit status.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};

/// A child that ran at least this long before exiting is considered to have been
/// healthy, and the restart schedule starts over.
pub const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How long to wait before restarting after `failures` quick exits in a row (>= 1):
/// 1, 2, 4, 8, 16, 32, then 60 s.
pub fn restart_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs((1u64 << exponent).min(60))
}

/// How a process ended, from waitpid's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Exited(code) => write!(f, "exited with status {code}"),
            ExitKind::Signaled(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

fn exit_kind(status: WaitStatus) -> ExitKind {
    match status.terminating_signal() {
        Some(signal) => ExitKind::Signaled(signal),
        None => ExitKind::Exited(status.exit_status().unwrap_or(0)),
    }
}

/// Reaps every exited child without blocking; returns their pids and how they ended.
pub fn reap_all() -> Vec<(i32, ExitKind)> {
    let mut reaped = Vec::new();
    while let Ok(Some((pid, status))) = waitpid(None, WaitOptions::NOHANG) {
        reaped.push((pid.as_raw_nonzero().get(), exit_kind(status)));
    }
    reaped
}

/// Sends `signal` to the child `pid`; a child already gone is no error here.
fn signal_child(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, signal);
    }
}

/// The signals init handles. They are blocked in every thread of init (the mask is set
/// before any thread starts) and taken with [`wait_for_signal`].
pub fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGHUP,
        ] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Blocks the handled signals in the calling thread (and threads it starts later).
pub fn block_signals() -> std::io::Result<()> {
    let set = handled_signals();
    // SAFETY: valid set pointer; old mask not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits up to `timeout` for one of the handled signals; `None` on timeout.
pub fn wait_for_signal(timeout: Duration) -> Option<libc::c_int> {
    let set = handled_signals();
    let spec = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid set and timespec; siginfo is not needed.
    let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &spec) };
    (signal > 0).then_some(signal)
}

/// The supervised server process.
pub struct Supervisor {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Pid and start time of the running child.
    running: Option<(i32, Instant)>,
    /// Quick exits in a row.
    failures: u32,
    /// When to start the child again, if it is not running.
    restart_at: Option<Instant>,
}

impl Supervisor {
    pub fn new(program: PathBuf, args: Vec<String>, env: Vec<(String, String)>) -> Self {
        Supervisor {
            program,
            args,
            env,
            running: None,
            failures: 0,
            restart_at: Some(Instant::now()),
        }
    }

    /// The running child's pid.
    pub fn pid(&self) -> Option<i32> {
        self.running.map(|(pid, _)| pid)
    }

    /// When the next start is due, if the child is down.
    pub fn restart_at(&self) -> Option<Instant> {
        self.restart_at
    }

    /// Starts the child if it is down and its restart is due.
    pub fn start_if_due(&mut self, now: Instant) {
        if self.running.is_some() || self.restart_at.is_none_or(|at| at > now) {
            return;
        }
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        // Init blocks the signals it waits for; the child starts with none
        // blocked (std's `Command` empties the signal mask in the child), so
        // it can be stopped with SIGTERM.
        match command.spawn() {
            Ok(child) => {
                let pid = child.id() as i32;
                // The child is reaped by reap_all (waitpid(-1)), never by Child::wait.
                drop(child);
                self.running = Some((pid, now));
                self.restart_at = None;
                super::console::log(
                    "supervise",
                    &format!("started {} (pid {pid})", self.describe()),
                );
            }
            Err(err) => {
                let delay = self.schedule_restart(now);
                super::console::log(
                    "supervise",
                    &format!(
                        "cannot start {}: {err}; retrying in {} s",
                        self.describe(),
                        delay.as_secs()
                    ),
                );
            }
        }
    }

    /// Counts one more quick failure and sets the restart time; returns the wait.
    fn schedule_restart(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = restart_delay(self.failures);
        self.restart_at = Some(now + delay);
        delay
    }

    fn describe(&self) -> String {
        format!("{} {}", self.program.display(), self.args.join(" "))
    }

    /// Handles the exit of `pid`; returns true when it was the supervised child.
    /// Schedules the restart with backoff.
    pub fn on_exit(&mut self, pid: i32, how: ExitKind, now: Instant) -> bool {
        let Some((child, started)) = self.running else {
            return false;
        };
        if child != pid {
            return false;
        }
        self.running = None;
        let ran_for = now.saturating_duration_since(started);
        if ran_for >= HEALTHY_RUN {
            self.failures = 0;
        }
        let delay = self.schedule_restart(now);
        super::console::log(
            "supervise",
            &format!(
                "server (pid {pid}) {how} after {} s; restarting in {} s",
                ran_for.as_secs(),
                delay.as_secs()
            ),
        );
        true
    }

    /// Stops the child: SIGTERM, then SIGKILL after `grace`. Reaps it (and any other
    /// exited process) meanwhile. No restart is scheduled afterwards.
    pub fn stop(&mut self, grace: Duration) {
        self.restart_at = None;
        let Some((pid, _)) = self.running.take() else {
            return;
        };
        signal_child(pid, Signal::TERM);
        let deadline = Instant::now() + grace;
        loop {
            super::watchdog::pet();
            if reap_all().iter().any(|(reaped, how)| {
                if *reaped == pid {
                    super::console::log("shutdown", &format!("server (pid {pid}) {how}"));
                }
                *reaped == pid
            }) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            wait_for_signal((deadline - now).min(Duration::from_millis(200)));
        }
        super::console::log(
            "shutdown",
            &format!(
                "server (pid {pid}) did not stop in {} s; killing it",
                grace.as_secs()
            ),
        );
        signal_child(pid, Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !reap_all().iter().any(|(reaped, _)| *reaped == pid) {
            wait_for_signal(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_grow_then_cap() {
        let delays: Vec<u64> = (1..=9).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_delay(0).as_secs(), 1);
        assert_eq!(restart_delay(u32::MAX).as_secs(), 60);
    }

    #[test]
    fn quick_crashes_back_off_and_a_healthy_run_resets() {
        let start = Instant::now();
        let mut supervisor = Supervisor::new(PathBuf::from("/bin/true"), vec![], vec![]);
        // Pretend a child is running, without spawning one.
        supervisor.running = Some((4242, start));
        assert!(!supervisor.on_exit(1, ExitKind::Exited(1), start));
        assert!(supervisor.on_exit(4242, ExitKind::Exited(1), start + Duration::from_secs(1)));
        assert_eq!(
            supervisor.restart_at(),
            Some(start + Duration::from_secs(2))
        );
        supervisor.running = Some((4243, start + Duration::from_secs(2)));
        supervisor.on_exit(4243, ExitKind::Signaled(11), start + Duration::from_secs(3));
        assert_eq!(
            supervisor.restart_at(),
            Some(start + Duration::from_secs(5))
        );
        // A long healthy run: the next crash waits 1 s again.
        supervisor.running = Some((4244, start));
        supervisor.on_exit(4244, ExitKind::Exited(1), start + HEALTHY_RUN * 2);
        assert_eq!(
            supervisor.restart_at(),
            Some(start + HEALTHY_RUN * 2 + Duration::from_secs(1))
        );
    }

    /// The child must start with no signal blocked although init blocks the
    /// ones it waits for: std's `Command` empties the mask in the child.
    #[test]
    fn the_child_starts_with_no_signal_blocked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("status");
        let script = format!("grep SigBlk /proc/self/status > {}", out.display());
        // Block the handled signals in a thread of its own, as init does.
        std::thread::spawn(move || {
            block_signals().expect("block");
            let mut supervisor =
                Supervisor::new(PathBuf::from("/bin/sh"), vec!["-c".into(), script], vec![]);
            supervisor.start_if_due(Instant::now());
            let (pid, _) = supervisor.running.expect("started");
            let pid = Pid::from_raw(pid).expect("a pid");
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .expect("wait");
        })
        .join()
        .expect("thread");
        let status = std::fs::read_to_string(&out).expect("the child wrote its mask");
        assert_eq!(status.trim(), "SigBlk:\t0000000000000000");
    }

    #[test]
    fn exit_kinds_are_described() {
        assert_eq!(ExitKind::Exited(3).to_string(), "exited with status 3");
        assert_eq!(ExitKind::Signaled(9).to_string(), "killed by signal 9");
    }
}
