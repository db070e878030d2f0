//! How `piarchive serve` asks init to power off or reboot the box.
//!
//! Owns: the mechanism, in one place for both sides. Init (PID 1) powers off on
//! SIGTERM and reboots on SIGUSR1 or SIGINT (SIGINT is what the kernel sends for
//! Ctrl-Alt-Del). The supervised server also may exit with status 10 (power off) or
//! 11 (reboot). Init sets `PIARCHIVE_INIT=1` in the server's environment, so the
//! server knows a request can be honoured.
//! Must not touch: the shutdown itself (init does it: stop the server, save the
//! clock, sync, unmount, then power off or reboot).

use rustix::process::{kill_process, Pid, Signal};

/// Exit status of `piarchive serve` that asks init to power off.
pub const EXIT_POWEROFF: i32 = 10;
/// Exit status of `piarchive serve` that asks init to reboot.
pub const EXIT_REBOOT: i32 = 11;
/// Environment variable init sets for its supervised child.
pub const INIT_ENV: &str = "PIARCHIVE_INIT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Poweroff,
    Reboot,
}

#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("power off and reboot are only available on the appliance (piarchive is not running under piarchive init)")]
    NotUnderInit,
    #[error("cannot signal init: {0}")]
    Signal(std::io::Error),
}

impl PowerAction {
    /// The signal init takes for this action.
    pub fn signal(self) -> Signal {
        match self {
            PowerAction::Poweroff => Signal::TERM,
            PowerAction::Reboot => Signal::USR1,
        }
    }

    /// The action a signal to init asks for, if any.
    pub fn from_signal(signal: libc::c_int) -> Option<Self> {
        match signal {
            libc::SIGTERM => Some(PowerAction::Poweroff),
            libc::SIGUSR1 | libc::SIGINT => Some(PowerAction::Reboot),
            _ => None,
        }
    }

    /// The action an exit status of the server asks for, if any.
    pub fn from_exit_status(status: i32) -> Option<Self> {
        match status {
            EXIT_POWEROFF => Some(PowerAction::Poweroff),
            EXIT_REBOOT => Some(PowerAction::Reboot),
            _ => None,
        }
    }
}

/// True when this process was started by piarchive init (the appliance).
pub fn running_under_init() -> bool {
    std::env::var_os(INIT_ENV).is_some_and(|v| v == "1")
}

/// Asks init to power off or reboot. For the admin endpoints of `piarchive serve`:
/// answer the HTTP request first, then call this. Init stops the server with SIGTERM
/// (then SIGKILL after 10 s) before it unmounts the data partition.
pub fn request(action: PowerAction) -> Result<(), PowerError> {
    if !running_under_init() {
        return Err(PowerError::NotUnderInit);
    }
    signal_init(action).map_err(PowerError::Signal)
}

/// Sends init (PID 1) the signal that asks for `action`.
pub fn signal_init(action: PowerAction) -> std::io::Result<()> {
    kill_process(Pid::INIT, action.signal())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_exit_codes_map_both_ways() {
        for action in [PowerAction::Poweroff, PowerAction::Reboot] {
            assert_eq!(
                PowerAction::from_signal(action.signal().as_raw()),
                Some(action)
            );
        }
        assert_eq!(
            PowerAction::from_signal(libc::SIGINT),
            Some(PowerAction::Reboot)
        );
        assert_eq!(PowerAction::from_signal(libc::SIGCHLD), None);
        assert_eq!(
            PowerAction::from_exit_status(10),
            Some(PowerAction::Poweroff)
        );
        assert_eq!(PowerAction::from_exit_status(11), Some(PowerAction::Reboot));
        assert_eq!(PowerAction::from_exit_status(0), None);
        assert_eq!(PowerAction::from_exit_status(1), None);
    }

    #[test]
    fn request_outside_init_is_refused() {
        // The test runner is not started by piarchive init.
        if !running_under_init() {
            assert!(matches!(
                request(PowerAction::Reboot),
                Err(PowerError::NotUnderInit)
            ));
        }
    }
}
