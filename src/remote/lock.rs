//! S3 Object Lock settings: the retention every object is written with.
//!
//! The settings keep what the admin typed (`mode` as text, `days` as a
//! number) so that a wrong value reaches [`ObjectLock::check`] and gets a
//! sentence instead of a JSON parser's complaint; everything that uses the
//! lock works from the checked [`Retention`]. Pure: no clock, no I/O.

use serde::{Deserialize, Serialize};

/// Longest retention accepted: a hundred years.
pub const MAX_DAYS: i64 = 36_500;

/// `object_lock` in the remote settings, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// How long each object stays locked after it is written or extended.
    pub days: i64,
}

/// The two S3 Object Lock modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// The bucket owner's account (with a special permission) can lift it.
    Governance,
    /// Nobody can lift it, not even the account owner, until it runs out.
    Compliance,
}

impl LockMode {
    /// The value of `x-amz-object-lock-mode` and of the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// A checked Object Lock setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    /// 1 to [`MAX_DAYS`].
    pub days: u32,
}

impl Retention {
    /// The retain-until date (Unix seconds) of an object locked at `now`.
    pub fn until(&self, now: i64) -> i64 {
        now + i64::from(self.days) * 86_400
    }
}

impl ObjectLock {
    /// The checked setting, or a sentence saying what to fix.
    pub fn check(&self) -> Result<Retention, String> {
        let mode = match self.mode.trim().to_ascii_uppercase().as_str() {
            "GOVERNANCE" => LockMode::Governance,
            "COMPLIANCE" => LockMode::Compliance,
            _ => {
                return Err(format!(
                "The Object Lock mode {:?} is not one S3 knows: choose GOVERNANCE or COMPLIANCE.",
                self.mode
            ))
            }
        };
        if self.days < 1 || self.days > MAX_DAYS {
            return Err(format!(
                "Object Lock needs between 1 and {MAX_DAYS} days of retention, not {}.",
                self.days
            ));
        }
        Ok(Retention {
            mode,
            days: self.days as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mode: &str, days: i64) -> ObjectLock {
        ObjectLock {
            mode: mode.to_owned(),
            days,
        }
    }

    #[test]
    fn checks_mode_and_days_with_sentences() {
        assert_eq!(
            lock("GOVERNANCE", 30).check(),
            Ok(Retention {
                mode: LockMode::Governance,
                days: 30
            })
        );
        assert_eq!(
            lock("compliance", 36_500).check().map(|r| r.mode),
            Ok(LockMode::Compliance)
        );
        for (mode, days, needle) in [
            ("GOVERNANCE", 0, "between 1 and 36500 days"),
            ("GOVERNANCE", 36_501, "not 36501"),
            ("GOVERNANCE", -3, "not -3"),
            ("LEGAL_HOLD", 30, "GOVERNANCE or COMPLIANCE"),
            ("", 30, "GOVERNANCE or COMPLIANCE"),
        ] {
            let message = lock(mode, days).check().unwrap_err();
            assert!(message.contains(needle), "{message}");
            assert!(message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn until_adds_whole_days() {
        let retention = lock("COMPLIANCE", 2).check().unwrap();
        assert_eq!(retention.until(1_000), 1_000 + 2 * 86_400);
    }
}
