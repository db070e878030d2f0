//! The system log: structured entries (time, level, source, message, user and
//! archive ids) in the LMDB table `log`, capped by count and age, queried
//! newest first, and fanned out to live subscribers (the log page's tail).
//!
//! Owns: the `log` table and the `log` key of the `settings` table
//! ([`LogSettings`]). Must not touch: HTTP. [`SystemLog::write`] opens its
//! own write transaction, so it must never be called from inside
//! `Store::write` (LMDB allows one writer at a time: it would wait on
//! itself).
//!
//! Keys are the big-endian time in milliseconds followed by a big-endian
//! sequence number, so the table is in time order and two entries of the
//! same millisecond keep the order they were written in. An entry's id (the
//! paging cursor of the API) is the hex of its key.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use super::script::LogLevel;
use crate::ids;
use crate::store::records::LogRecord;
use crate::store::{Store, StoreError};

const SETTINGS_KEY: &[u8] = b"log";

/// Entries a live subscriber may fall behind by before it misses some.
const SUBSCRIBER_BACKLOG: usize = 256;

/// Most entries one query returns.
pub const MAX_QUERY_LIMIT: usize = 1000;

/// How much log is kept. Stored under the key `log` of the `settings` table;
/// `GET/PUT /api/v1/admin/log/settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// The oldest entries beyond this count are removed.
    pub max_entries: u64,
    /// Entries older than this many days are removed.
    pub max_age_days: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            max_entries: 100_000,
            max_age_days: 90,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One entry as the API and the page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Hex of the key; pass as `before` to page back.
    pub id: String,
    pub time_ms: i64,
    pub level: String,
    pub source: String,
    pub message: String,
    pub user_id: Option<String>,
    pub archive_id: Option<String>,
}

/// What to look for; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The lowest level shown (`warn` shows warnings and errors).
    pub level: Option<LogLevel>,
    /// Sources starting with this (`script:` matches every script).
    pub source: Option<String>,
    /// Text in the message or source, case-insensitive.
    pub text: Option<String>,
    /// Entries older than this entry id (paging back).
    pub before: Option<String>,
    /// Entries at or before this time (milliseconds since the epoch).
    pub until_ms: Option<i64>,
    /// Entries at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    pub limit: usize,
}

/// Who and what an entry is about, besides its message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub user_id: Option<&'a str>,
    pub archive_id: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub fn user(user_id: &'a str) -> Subject<'a> {
        Subject {
            user_id: Some(user_id),
            archive_id: None,
        }
    }
    pub fn archive(user_id: &'a str, archive_id: &'a str) -> Subject<'a> {
        Subject {
            user_id: Some(user_id),
            archive_id: Some(archive_id),
        }
    }
}

pub struct SystemLog {
    store: Store,
    /// Distinguishes entries written in the same millisecond.
    sequence: AtomicU32,
    subscribers: Mutex<Vec<SyncSender<LogEntry>>>,
}

fn level_rank(level: &str) -> u8 {
    match LogLevel::parse(level) {
        Some(LogLevel::Debug) => 0,
        Some(LogLevel::Info) | None => 1,
        Some(LogLevel::Warn) => 2,
        Some(LogLevel::Error) => 3,
    }
}

fn entry_key(time_ms: i64, sequence: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&(time_ms.max(0) as u64).to_be_bytes());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn to_entry(key: &[u8], record: LogRecord) -> LogEntry {
    LogEntry {
        id: hex::encode(key),
        time_ms: record.time_ms,
        level: record.level,
        source: record.source,
        message: record.message,
        user_id: record.user_id,
        archive_id: record.archive_id,
    }
}

impl LogQuery {
    fn keeps(&self, record: &LogRecord) -> bool {
        if let Some(level) = self.level {
            if level_rank(&record.level) < level_rank(level.as_str()) {
                return false;
            }
        }
        if let Some(source) = &self.source {
            if !record.source.starts_with(source.as_str()) {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let text = text.to_lowercase();
            if !record.message.to_lowercase().contains(&text)
                && !record.source.to_lowercase().contains(&text)
            {
                return false;
            }
        }
        if let Some(since) = self.since_ms {
            if record.time_ms < since {
                return false;
            }
        }
        true
    }
}

impl SystemLog {
    pub fn new(store: Store) -> SystemLog {
        SystemLog {
            store,
            sequence: AtomicU32::new(0),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn settings(&self) -> Result<LogSettings, StoreError> {
        let txn = self.store.read()?;
        Ok(match self.store.tables.settings.get(&txn, SETTINGS_KEY)? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => LogSettings::default(),
        })
    }

    pub fn save_settings(&self, settings: &LogSettings) -> Result<(), LogError> {
        if settings.max_entries == 0 || settings.max_age_days == 0 {
            return Err(LogError::Invalid(
                "Keep at least one log entry for at least one day.".into(),
            ));
        }
        let value = serde_json::to_value(settings).map_err(|e| LogError::Invalid(e.to_string()))?;
        self.store.write(|txn, tables| -> Result<(), LogError> {
            tables.settings.put(txn, SETTINGS_KEY, &value)?;
            Ok(())
        })?;
        self.prune(ids::now_millis())?;
        Ok(())
    }

    /// Writes one entry now. Best effort: a failure to store it is reported
    /// on stderr, never to the caller, whose own work matters more.
    pub fn write(&self, level: LogLevel, source: &str, message: &str, subject: Subject) {
        if let Err(err) = self.write_at(ids::now_millis(), level, source, message, subject) {
            eprintln!("piarchive: cannot write the system log: {err}");
        }
    }

    pub fn info(&self, source: &str, message: &str, subject: Subject) {
        self.write(LogLevel::Info, source, message, subject);
    }

    pub fn warn(&self, source: &str, message: &str, subject: Subject) {
        self.write(LogLevel::Warn, source, message, subject);
    }

    pub fn error(&self, source: &str, message: &str, subject: Subject) {
        self.write(LogLevel::Error, source, message, subject);
    }

    /// Writes one entry with the given time (tests use old times to check
    /// the age cap) and applies the caps.
    pub fn write_at(
        &self,
        time_ms: i64,
        level: LogLevel,
        source: &str,
        message: &str,
        subject: Subject,
    ) -> Result<LogEntry, StoreError> {
        let settings = self.settings()?;
        let record = LogRecord {
            time_ms,
            level: level.as_str().to_string(),
            source: source.to_string(),
            message: message.to_string(),
            user_id: subject.user_id.map(str::to_string),
            archive_id: subject.archive_id.map(str::to_string),
        };
        let key = entry_key(time_ms, self.sequence.fetch_add(1, Ordering::Relaxed));
        self.store.write(|txn, tables| -> Result<(), StoreError> {
            tables.log.put(txn, &key, &record)?;
            prune_in(txn, tables, &settings, ids::now_millis())
        })?;
        let entry = to_entry(&key, record);
        self.publish(&entry);
        Ok(entry)
    }

    /// Removes what the caps no longer allow.
    pub fn prune(&self, now_ms: i64) -> Result<(), StoreError> {
        let settings = self.settings()?;
        self.store
            .write(|txn, tables| prune_in(txn, tables, &settings, now_ms))
    }

    /// Entries matching `query`, newest first, and whether older ones exist
    /// beyond the page (the last entry's id is then the next `before`).
    pub fn query(&self, query: &LogQuery) -> Result<(Vec<LogEntry>, bool), LogError> {
        let limit = query.limit.clamp(1, MAX_QUERY_LIMIT);
        let mut before = match &query.before {
            Some(id) => Some(hex::decode(id).map_err(|_| {
                LogError::Invalid(format!("{id:?} is not a log entry id (`before`)."))
            })?),
            None => None,
        };
        if let Some(until) = query.until_ms {
            // Strictly below the first key of the next millisecond.
            let bound = entry_key(until.saturating_add(1), 0);
            before = Some(match before {
                Some(cursor) if cursor < bound => cursor,
                _ => bound,
            });
        }
        let txn = self.store.read()?;
        let mut found = self.store.tables.log.rev_before(
            &txn,
            before.as_deref(),
            |record| query.keeps(record),
            limit + 1,
        )?;
        // Entries are in time order: once one is older than `since`, all
        // further ones are; `rev_before` still walks them, which the caps
        // keep bounded.
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((
            found
                .into_iter()
                .map(|(key, record)| to_entry(&key, record))
                .collect(),
            more,
        ))
    }

    /// A live feed of new entries. Dropping the receiver unsubscribes; a
    /// subscriber that falls [`SUBSCRIBER_BACKLOG`] entries behind misses
    /// the newest ones rather than slowing down writers.
    pub fn subscribe(&self) -> Receiver<LogEntry> {
        let (sender, receiver) = mpsc::sync_channel(SUBSCRIBER_BACKLOG);
        self.lock_subscribers().push(sender);
        receiver
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, Vec<SyncSender<LogEntry>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, entry: &LogEntry) {
        self.lock_subscribers()
            .retain(|sender| match sender.try_send(entry.clone()) {
                Ok(()) | Err(TrySendError::Full(_)) => true,
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
}

fn prune_in(
    txn: &mut heed::RwTxn,
    tables: &crate::store::Tables,
    settings: &LogSettings,
    now_ms: i64,
) -> Result<(), StoreError> {
    let cutoff_ms =
        now_ms.saturating_sub((settings.max_age_days as i64).saturating_mul(86_400_000));
    let mut excess = tables.log.len(txn)?.saturating_sub(settings.max_entries);
    // Oldest first: remove while over the count or older than the cutoff.
    loop {
        let oldest = tables.log.first(txn)?;
        let Some((key, record)) = oldest else {
            break;
        };
        if excess == 0 && record.time_ms >= cutoff_ms {
            break;
        }
        tables.log.delete(txn, &key)?;
        excess = excess.saturating_sub(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SystemLog) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        (dir, SystemLog::new(store))
    }

    fn messages(entries: &[LogEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn query_filters_newest_first() {
        let (_dir, log) = open();
        let now = ids::now_millis();
        for (offset, level, source, message) in [
            (0, LogLevel::Info, "login", "alice logged in"),
            (1, LogLevel::Warn, "login", "failed login for bob"),
            (2, LogLevel::Error, "script:report", "Disk <full> & \"sad\""),
            (3, LogLevel::Debug, "script:report", "details"),
            (4, LogLevel::Info, "upload", "alice uploaded Photos"),
        ] {
            log.write_at(now + offset, level, source, message, Subject::default())
                .unwrap();
        }
        let all = |query: LogQuery| {
            let (entries, _) = log
                .query(&LogQuery {
                    limit: 100,
                    ..query
                })
                .unwrap();
            messages(&entries)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        for (query, expected) in [
            (
                LogQuery::default(),
                vec![
                    "alice uploaded Photos",
                    "details",
                    "Disk <full> & \"sad\"",
                    "failed login for bob",
                    "alice logged in",
                ],
            ),
            (
                LogQuery {
                    level: Some(LogLevel::Warn),
                    ..Default::default()
                },
                vec!["Disk <full> & \"sad\"", "failed login for bob"],
            ),
            (
                LogQuery {
                    source: Some("script:".into()),
                    ..Default::default()
                },
                vec!["details", "Disk <full> & \"sad\""],
            ),
            (
                LogQuery {
                    text: Some("ALICE".into()),
                    ..Default::default()
                },
                vec!["alice uploaded Photos", "alice logged in"],
            ),
            (
                LogQuery {
                    until_ms: Some(now + 1),
                    ..Default::default()
                },
                vec!["failed login for bob", "alice logged in"],
            ),
            (
                LogQuery {
                    since_ms: Some(now + 3),
                    ..Default::default()
                },
                vec!["alice uploaded Photos", "details"],
            ),
        ] {
            assert_eq!(all(query.clone()), expected, "{query:?}");
        }
    }

    #[test]
    fn pages_back_with_before() {
        let (_dir, log) = open();
        let now = ids::now_millis();
        for n in 0..25 {
            // Several entries share a millisecond.
            log.write_at(
                now + n / 3,
                LogLevel::Info,
                "test",
                &format!("entry {n}"),
                Subject::default(),
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let (page, more) = log
                .query(&LogQuery {
                    before: before.clone(),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            seen.extend(page.iter().map(|e| e.message.clone()));
            if !more {
                break;
            }
            before = Some(page.last().unwrap().id.clone());
        }
        let expected: Vec<String> = (0..25).rev().map(|n| format!("entry {n}")).collect();
        assert_eq!(seen, expected);
        assert!(log
            .query(&LogQuery {
                before: Some("zz".into()),
                limit: 1,
                ..Default::default()
            })
            .is_err());
    }

    #[test]
    fn caps_by_count_and_age() {
        let (_dir, log) = open();
        log.save_settings(&LogSettings {
            max_entries: 5,
            max_age_days: 2,
        })
        .unwrap();
        let now = ids::now_millis();
        let day = 86_400_000;
        log.write_at(
            now - 3 * day,
            LogLevel::Info,
            "test",
            "too old",
            Subject::default(),
        )
        .unwrap();
        for n in 0..7 {
            log.write_at(
                now - day + n,
                LogLevel::Info,
                "test",
                &format!("entry {n}"),
                Subject::default(),
            )
            .unwrap();
        }
        let (entries, more) = log
            .query(&LogQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert!(!more);
        assert_eq!(
            messages(&entries),
            ["entry 6", "entry 5", "entry 4", "entry 3", "entry 2"]
        );
        assert!(log
            .save_settings(&LogSettings {
                max_entries: 0,
                max_age_days: 1
            })
            .is_err());
    }

    #[test]
    fn subscribers_see_new_entries() {
        let (_dir, log) = open();
        let feed = log.subscribe();
        log.warn("upload", "something", Subject::archive("u1", "a1"));
        let entry = feed.recv().unwrap();
        assert_eq!(
            (
                entry.level.as_str(),
                entry.source.as_str(),
                entry.user_id.as_deref(),
                entry.archive_id.as_deref()
            ),
            ("warn", "upload", Some("u1"), Some("a1"))
        );
        drop(feed);
        log.info("upload", "nobody listens", Subject::default());
        assert!(log.lock_subscribers().is_empty());
    }
}
