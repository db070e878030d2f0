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
//! - Correct secrets too: at most [`MAX_SUCCESSES_PER_ADDRESS`] from one
//!   address and [`MAX_SUCCESSES_PER_ACCOUNT`] on one account within
//!   [`SUCCESS_WINDOW`], so a flood of correct logins (each an Argon2 check
//!   and a new session) is refused (429) rather than served.
//! - Checked and counted at once ([`Throttle::admit`]): an attempt counts as
//!   a failure from the moment it is admitted until its outcome is known,
//!   so 40 attempts sent in parallel get no more checks than 5 sent one
//!   after the other, and meet the same account delay.
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

/// Correct secrets from one address, and on one account, within
/// [`SUCCESS_WINDOW`].
pub const MAX_SUCCESSES_PER_ADDRESS: usize = 30;
pub const MAX_SUCCESSES_PER_ACCOUNT: usize = 30;
pub const SUCCESS_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Admitted, being checked: counts as a failure meanwhile.
    Pending,
    Failed,
    Succeeded,
}

struct Attempt {
    at: Instant,
    address: String,
    account: String,
    outcome: Outcome,
}

impl Attempt {
    fn counts_as_failure(&self) -> bool {
        self.outcome != Outcome::Succeeded
    }
}

/// Why an attempt was not admitted; the seconds until one would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooManyFailures(u64),
    TooManySuccesses(u64),
}

#[derive(Default)]
pub struct Throttle {
    attempts: VecDeque<Attempt>,
    registrations: VecDeque<(Instant, String)>,
}

/// Seconds until `oldest` leaves a window of `window` (at least 1).
fn seconds_left(oldest: Instant, window: Duration, now: Instant) -> u64 {
    let left = window.saturating_sub(now.saturating_duration_since(oldest));
    left.as_secs_f64().ceil().max(1.0) as u64
}

impl Throttle {
    fn forget_old(&mut self, now: Instant) {
        while let Some(first) = self.attempts.front() {
            if now.saturating_duration_since(first.at) < FAILURE_WINDOW {
                break;
            }
            self.attempts.pop_front();
        }
        while let Some((at, _)) = self.registrations.front() {
            if now.saturating_duration_since(*at) < REGISTRATION_WINDOW {
                break;
            }
            self.registrations.pop_front();
        }
    }

    /// Checks an attempt on `account` from `address` and, when it may go
    /// ahead, counts it (as a failure until [`Throttle::failed`] or
    /// [`Throttle::succeeded`] says otherwise). Returns how long it waits
    /// before it is checked: the account's delay for the failures counted
    /// before it.
    pub fn admit(
        &mut self,
        address: &str,
        account: &str,
        now: Instant,
    ) -> Result<Duration, Refused> {
        self.forget_old(now);
        let mut failures = self
            .attempts
            .iter()
            .filter(|a| a.address == address && a.counts_as_failure());
        if let Some(oldest) = failures.next().map(|a| a.at) {
            if 1 + failures.count() >= MAX_FAILURES {
                return Err(Refused::TooManyFailures(seconds_left(
                    oldest,
                    FAILURE_WINDOW,
                    now,
                )));
            }
        }
        self.successes_check(address, account, now)?;
        let delay = self.account_delay(account, now);
        if self.attempts.len() >= MAX_REMEMBERED {
            self.attempts.pop_front();
        }
        self.attempts.push_back(Attempt {
            at: now,
            address: address.to_string(),
            account: account.to_string(),
            outcome: Outcome::Pending,
        });
        Ok(delay)
    }

    /// `Err` when `address`, or `account`, had its correct secrets within
    /// [`SUCCESS_WINDOW`] already.
    fn successes_check(&self, address: &str, account: &str, now: Instant) -> Result<(), Refused> {
        let recent = |a: &&Attempt| {
            a.outcome == Outcome::Succeeded && now.saturating_duration_since(a.at) < SUCCESS_WINDOW
        };
        for (max, mine) in [
            (
                MAX_SUCCESSES_PER_ADDRESS,
                &(|a: &&Attempt| a.address == address) as &dyn Fn(&&Attempt) -> bool,
            ),
            (MAX_SUCCESSES_PER_ACCOUNT, &|a: &&Attempt| {
                a.account == account
            }),
        ] {
            let mut successes = self.attempts.iter().filter(recent).filter(mine);
            if let Some(oldest) = successes.next().map(|a| a.at) {
                if 1 + successes.count() >= max {
                    return Err(Refused::TooManySuccesses(seconds_left(
                        oldest,
                        SUCCESS_WINDOW,
                        now,
                    )));
                }
            }
        }
        Ok(())
    }

    /// A login's right password: checked against the limits on correct
    /// secrets and counted in one step (admission checked them too, but
    /// parallel logins were all admitted before any succeeded). Past a
    /// limit the attempt does not count and the login is refused.
    pub fn login_succeeded(
        &mut self,
        address: &str,
        account: &str,
        now: Instant,
    ) -> Result<(), Refused> {
        if let Err(refused) = self.successes_check(address, account, now) {
            self.abandoned(address, account);
            return Err(refused);
        }
        self.succeeded(address, account, now);
        Ok(())
    }

    /// How long an attempt on `account` waits before it is checked.
    pub fn account_delay(&mut self, account: &str, now: Instant) -> Duration {
        self.forget_old(now);
        let failures = self
            .attempts
            .iter()
            .filter(|a| a.account == account && a.counts_as_failure())
            .count();
        match failures.checked_sub(MAX_FAILURES) {
            None => Duration::ZERO,
            Some(over) => ACCOUNT_DELAY_STEP
                .saturating_mul(over as u32 + 1)
                .min(MAX_ACCOUNT_DELAY),
        }
    }

    /// The oldest admitted attempt of `address` on `account` whose outcome
    /// is not known yet.
    fn pending(&mut self, address: &str, account: &str) -> Option<&mut Attempt> {
        self.attempts
            .iter_mut()
            .find(|a| a.outcome == Outcome::Pending && a.address == address && a.account == account)
    }

    /// An admitted attempt was wrong (counted already; kept as a failure).
    pub fn failed(&mut self, address: &str, account: &str, now: Instant) {
        match self.pending(address, account) {
            Some(attempt) => attempt.outcome = Outcome::Failed,
            None => self.record_failure(address, account, now),
        }
    }

    /// An admitted attempt was never checked (the server was busy): it
    /// does not count.
    pub fn abandoned(&mut self, address: &str, account: &str) {
        let position = self.attempts.iter().position(|a| {
            a.outcome == Outcome::Pending && a.address == address && a.account == account
        });
        if let Some(position) = position {
            self.attempts.remove(position);
        }
    }

    /// A failure not admitted through [`Throttle::admit`].
    pub fn record_failure(&mut self, address: &str, account: &str, now: Instant) {
        self.forget_old(now);
        if self.attempts.len() >= MAX_REMEMBERED {
            self.attempts.pop_front();
        }
        self.attempts.push_back(Attempt {
            at: now,
            address: address.to_string(),
            account: account.to_string(),
            outcome: Outcome::Failed,
        });
    }

    /// The right secret from `address`: its earlier failures on `account`
    /// were typos of its owner; the success is counted.
    pub fn succeeded(&mut self, address: &str, account: &str, now: Instant) {
        self.attempts.retain(|a| {
            !(a.outcome == Outcome::Failed && a.address == address && a.account == account)
        });
        match self.pending(address, account) {
            Some(attempt) => attempt.outcome = Outcome::Succeeded,
            None => self.attempts.push_back(Attempt {
                at: now,
                address: address.to_string(),
                account: account.to_string(),
                outcome: Outcome::Succeeded,
            }),
        }
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
            assert_eq!(
                throttle.admit("10.0.0.9", "user:admin", start),
                Ok(Duration::ZERO)
            );
            throttle.failed("10.0.0.9", "user:admin", start);
        }
        let refused = Err(Refused::TooManyFailures(900));
        assert_eq!(throttle.admit("10.0.0.9", "user:bob", start), refused);
        assert!(throttle.admit("10.0.0.1", "user:bob", start).is_ok());
        let later = start + FAILURE_WINDOW;
        assert!(throttle.admit("10.0.0.9", "user:bob", later).is_ok());
    }

    #[test]
    fn parallel_correct_secrets_are_limited_when_they_succeed() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        let addresses: Vec<String> = (0..40).map(|i| format!("10.0.5.{i}")).collect();
        for address in &addresses {
            throttle.admit(address, "user:bob", now).unwrap();
        }
        let served = addresses
            .iter()
            .filter(|a| throttle.login_succeeded(a, "user:bob", now).is_ok())
            .count();
        assert_eq!(served, MAX_SUCCESSES_PER_ACCOUNT);
        let pending = throttle
            .attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Pending);
        assert_eq!(pending.count(), 0, "refused ones do not count as failures");
    }

    #[test]
    fn parallel_attempts_are_counted_when_admitted() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        // 40 at once, none finished: 5 admitted, like 5 one after another.
        let admitted = (0..40)
            .filter(|_| throttle.admit("10.0.0.9", "user:admin", now).is_ok())
            .count();
        assert_eq!(admitted, MAX_FAILURES);
        // From many addresses at once, the later ones wait the account delay.
        let delays: Vec<Duration> = (0..8)
            .map(|i| {
                throttle
                    .admit(&format!("10.0.2.{i}"), "user:admin", now)
                    .unwrap()
            })
            .collect();
        assert_eq!(delays[0], ACCOUNT_DELAY_STEP);
        assert_eq!(delays[7], MAX_ACCOUNT_DELAY);
        // An attempt never checked does not count.
        throttle.abandoned("10.0.0.9", "user:admin");
        assert!(throttle.admit("10.0.0.9", "user:admin", now).is_ok());
    }

    #[test]
    fn correct_secrets_are_limited_per_address_and_per_account() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        for i in 0..MAX_SUCCESSES_PER_ACCOUNT {
            let address = format!("10.0.3.{i}");
            throttle.admit(&address, "user:bob", now).unwrap();
            throttle.succeeded(&address, "user:bob", now);
        }
        assert_eq!(
            throttle.admit("10.0.3.99", "user:bob", now),
            Err(Refused::TooManySuccesses(60))
        );
        assert!(throttle
            .admit("10.0.3.99", "user:bob", now + SUCCESS_WINDOW)
            .is_ok());
        let mut throttle = Throttle::default();
        for i in 0..MAX_SUCCESSES_PER_ADDRESS {
            let account = format!("user:u{i}");
            throttle.admit("10.0.4.1", &account, now).unwrap();
            throttle.succeeded("10.0.4.1", &account, now);
        }
        assert!(throttle.admit("10.0.4.1", "user:other", now).is_err());
        assert!(throttle.admit("10.0.4.2", "user:other", now).is_ok());
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
        throttle.succeeded("10.0.0.1", "user:bob", now);
        let failures = |t: &Throttle| t.attempts.iter().filter(|a| a.counts_as_failure()).count();
        assert_eq!(failures(&throttle), MAX_FAILURES + 21);
        throttle.succeeded("10.0.0.1", "user:admin", now);
        assert_eq!(failures(&throttle), MAX_FAILURES + 20);
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
