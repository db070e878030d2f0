//! Guessing limits for every secret a stranger can try: passwords (login,
//! `current_password` on `PATCH /me`), and the recovery passphrase of the
//! setup page's restore; and the rate of anonymous registrations.
//!
//! - Per address: [`MAX_FAILURES`] failures within [`FAILURE_WINDOW`] and
//!   that address is refused (429) until the oldest failure ages out.
//! - Per account: past [`MAX_FAILURES`] failures from any address, each
//!   attempt on the account waits a little before it is checked
//!   ([`account_delay`], at most [`MAX_ACCOUNT_DELAY`]). It is never refused:
//!   the owner typing the right password from another device gets in.
//! - A success forgets the failures of that address on that account only,
//!   so logging in to one's own account does not wash away guesses at
//!   another's.
//!
//! Pure bookkeeping: the clock is handed in; the caller sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Failures from one address (or on one account) within [`FAILURE_WINDOW`]
/// before the address is refused and the account slowed down.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest an attempt on a much-guessed account waits.
pub const MAX_ACCOUNT_DELAY: Duration = Duration::from_secs(2);
/// Each failure past [`MAX_FAILURES`] adds this much to the wait.
pub const ACCOUNT_DELAY_STEP: Duration = Duration::from_millis(250);
/// Failures remembered at most; the oldest are forgotten first.
const MAX_REMEMBERED: usize = 10_000;

/// Anonymous registrations accepted from one address within
/// [`REGISTRATION_WINDOW`].
pub const MAX_REGISTRATIONS: usize = 10;
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(60 * 60);

struct Failure {
    at: Instant,
    address: String,
    account: String,
}

#[derive(Default)]
pub struct Throttle {
    failures: VecDeque<Failure>,
    registrations: VecDeque<(Instant, String)>,
}

/// Seconds until `oldest` leaves a window of `window` (at least 1).
fn seconds_left(oldest: Instant, window: Duration, now: Instant) -> u64 {
    let left = window.saturating_sub(now.saturating_duration_since(oldest));
    left.as_secs_f64().ceil().max(1.0) as u64
}

impl Throttle {
    fn forget_old(&mut self, now: Instant) {
        while let Some(first) = self.failures.front() {
            if now.saturating_duration_since(first.at) < FAILURE_WINDOW {
                break;
            }
            self.failures.pop_front();
        }
        while let Some((at, _)) = self.registrations.front() {
            if now.saturating_duration_since(*at) < REGISTRATION_WINDOW {
                break;
            }
            self.registrations.pop_front();
        }
    }

    /// `Err(seconds)` when `address` has used up its failures.
    pub fn address_check(&mut self, address: &str, now: Instant) -> Result<(), u64> {
        self.forget_old(now);
        let mut from_address = self.failures.iter().filter(|f| f.address == address);
        let oldest = from_address.next().map(|f| f.at);
        if let Some(oldest) = oldest {
            if 1 + from_address.count() >= MAX_FAILURES {
                return Err(seconds_left(oldest, FAILURE_WINDOW, now));
            }
        }
        Ok(())
    }

    /// How long an attempt on `account` waits before it is checked.
    pub fn account_delay(&mut self, account: &str, now: Instant) -> Duration {
        self.forget_old(now);
        let failures = self
            .failures
            .iter()
            .filter(|f| f.account == account)
            .count();
        match failures.checked_sub(MAX_FAILURES) {
            None => Duration::ZERO,
            Some(over) => ACCOUNT_DELAY_STEP
                .saturating_mul(over as u32 + 1)
                .min(MAX_ACCOUNT_DELAY),
        }
    }

    pub fn record_failure(&mut self, address: &str, account: &str, now: Instant) {
        self.forget_old(now);
        if self.failures.len() >= MAX_REMEMBERED {
            self.failures.pop_front();
        }
        self.failures.push_back(Failure {
            at: now,
            address: address.to_string(),
            account: account.to_string(),
        });
    }

    /// The right secret from `address`: its earlier failures on `account`
    /// were typos of its owner.
    pub fn record_success(&mut self, address: &str, account: &str) {
        self.failures
            .retain(|f| !(f.address == address && f.account == account));
    }

    /// Counts an anonymous registration from `address`, or `Err(seconds)`
    /// when it made [`MAX_REGISTRATIONS`] within the window.
    pub fn registration(&mut self, address: &str, now: Instant) -> Result<(), u64> {
        self.forget_old(now);
        let mut from_address = self.registrations.iter().filter(|(_, a)| a == address);
        if let Some((oldest, _)) = from_address.next() {
            if 1 + from_address.count() >= MAX_REGISTRATIONS {
                return Err(seconds_left(*oldest, REGISTRATION_WINDOW, now));
            }
        }
        if self.registrations.len() >= MAX_REMEMBERED {
            self.registrations.pop_front();
        }
        self.registrations.push_back((now, address.to_string()));
        Ok(())
    }
}

/// "2 minutes", "1 minute", "40 seconds": how long to wait, for people.
pub fn wait_for_people(seconds: u64) -> String {
    match seconds {
        0..=1 => "1 second".to_string(),
        2..=59 => format!("{seconds} seconds"),
        _ => match seconds.div_ceil(60) {
            1 => "1 minute".to_string(),
            minutes => format!("{minutes} minutes"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_they_age_out() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(throttle.address_check("10.0.0.9", start), Ok(()));
            throttle.record_failure("10.0.0.9", "user:admin", start);
        }
        assert_eq!(throttle.address_check("10.0.0.9", start), Err(900));
        assert_eq!(throttle.address_check("10.0.0.1", start), Ok(()));
        let later = start + FAILURE_WINDOW;
        assert_eq!(throttle.address_check("10.0.0.9", later), Ok(()));
    }

    #[test]
    fn a_guessed_account_slows_down_boundedly_and_a_success_forgets_only_its_own() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        for attacker in 0..MAX_FAILURES + 20 {
            throttle.record_failure(&format!("10.0.1.{attacker}"), "user:admin", now);
        }
        assert_eq!(throttle.account_delay("user:admin", now), MAX_ACCOUNT_DELAY);
        assert_eq!(throttle.account_delay("user:bob", now), Duration::ZERO);
        throttle.record_failure("10.0.0.1", "user:admin", now);
        throttle.record_success("10.0.0.1", "user:bob");
        assert_eq!(throttle.failures.len(), MAX_FAILURES + 21);
        throttle.record_success("10.0.0.1", "user:admin");
        assert_eq!(throttle.failures.len(), MAX_FAILURES + 20);
        let mut few = Throttle::default();
        for attacker in 0..=MAX_FAILURES {
            few.record_failure(&format!("10.0.1.{attacker}"), "user:admin", now);
        }
        assert_eq!(few.account_delay("user:admin", now), ACCOUNT_DELAY_STEP * 2);
    }

    #[test]
    fn registrations_are_counted_per_address() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..MAX_REGISTRATIONS {
            assert_eq!(throttle.registration("10.0.0.9", now), Ok(()));
        }
        assert_eq!(throttle.registration("10.0.0.9", now), Err(3600));
        assert_eq!(throttle.registration("10.0.0.1", now), Ok(()));
    }

    #[test]
    fn waits_for_people() {
        for (seconds, text) in [
            (0, "1 second"),
            (40, "40 seconds"),
            (60, "1 minute"),
            (61, "2 minutes"),
            (900, "15 minutes"),
        ] {
            assert_eq!(wait_for_people(seconds), text);
        }
    }
}
