//! The notice queue in LMDB (table `notices`): one record per notice and
//! channel, keyed `channel key / sequence`, so each channel sends its
//! notices in the order they happened and a channel that fails holds back
//! only itself. The tracker's state is written in the same transaction as
//! the notices it made (`meta` key `notify_tracker`): a kill -9 leaves
//! both or neither.
//!
//! Owns: the keys, the sequence, backoff and giving up. Must not touch: the
//! network (the notifier sends, with nothing held).

use std::collections::BTreeSet;

use heed::RwTxn;

use super::digest::{WeekProblem, MAX_PROBLEMS};
use super::problems::{Notice, Tracker};
use crate::store::records::NoticeRecord;
use crate::store::{Store, StoreError, Tables};

const SEQ_KEY: &[u8] = b"notify_seq";
const TRACKER_KEY: &[u8] = b"notify_tracker";
const BACKED_UP_KEY: &[u8] = b"notify_backed_up";
const DIGEST_AT_KEY: &[u8] = b"notify_digest_at";
const DIGEST_PROBLEMS_KEY: &[u8] = b"notify_digest_problems";
/// A notice not delivered after this long is given up (with a log line).
pub const GIVE_UP_AFTER_SECONDS: i64 = 86_400;
/// At most this many notices wait per channel; the oldest go first.
pub const MAX_WAITING_PER_CHANNEL: usize = 500;

fn key(channel: &str, seq: u64) -> Vec<u8> {
    let mut key = channel.as_bytes().to_vec();
    key.push(b'/');
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Seconds to wait after `attempts` failed attempts: 5 s, 15 s, 45 s, ...
/// up to 15 minutes (the home router may be down for a while).
pub fn backoff(attempts: u32) -> i64 {
    (5i64 * 3i64.saturating_pow(attempts.saturating_sub(1))).min(900)
}

/// The tracker as last stored.
pub fn load_tracker(store: &Store) -> Result<Tracker, StoreError> {
    let txn = store.read()?;
    Ok(store
        .tables
        .meta
        .get(&txn, TRACKER_KEY)?
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default())
}

/// The archives known to have an off-site copy when the notifier last
/// looked (`None` before its first look).
pub fn load_backed_up(store: &Store) -> Result<Option<BTreeSet<String>>, StoreError> {
    let txn = store.read()?;
    Ok(store
        .tables
        .meta
        .get(&txn, BACKED_UP_KEY)?
        .and_then(|value| serde_json::from_value(value).ok()))
}

/// Stores `tracker` (and `backed_up`, when given) and queues each notice
/// for its channel keys, in one transaction.
pub fn commit(
    store: &Store,
    tracker: &Tracker,
    backed_up: Option<&BTreeSet<String>>,
    notices: &[(Notice, Vec<String>)],
) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        let value = serde_json::to_value(tracker).unwrap_or_default();
        tables.meta.put(txn, TRACKER_KEY, &value)?;
        if let Some(backed_up) = backed_up {
            let value = serde_json::to_value(backed_up).unwrap_or_default();
            tables.meta.put(txn, BACKED_UP_KEY, &value)?;
        }
        let mut week: Vec<WeekProblem> =
            read(txn, tables, DIGEST_PROBLEMS_KEY)?.unwrap_or_default();
        for (notice, channels) in notices {
            enqueue(txn, tables, notice, channels)?;
            if notice.event != "backed_up" && week.len() < MAX_PROBLEMS {
                week.push(WeekProblem {
                    title: notice.title.clone(),
                    at: notice.at,
                    resolved: notice.resolved,
                });
            }
        }
        let value = serde_json::to_value(&week).unwrap_or_default();
        tables.meta.put(txn, DIGEST_PROBLEMS_KEY, &value)?;
        Ok(())
    })
}

fn read<T: serde::de::DeserializeOwned>(
    txn: &heed::RoTxn,
    tables: &Tables,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    Ok(tables
        .meta
        .get(txn, key)?
        .and_then(|value| serde_json::from_value(value).ok()))
}

/// When the last digest went out (or the digest was turned on), and the
/// problems notified since.
pub fn digest_state(store: &Store) -> Result<(Option<i64>, Vec<WeekProblem>), StoreError> {
    let txn = store.read()?;
    let at = read(&txn, &store.tables, DIGEST_AT_KEY)?;
    let problems = read(&txn, &store.tables, DIGEST_PROBLEMS_KEY)?.unwrap_or_default();
    Ok((at, problems))
}

/// Starts a new digest period at `at`: queues `digest` (if any) for
/// `channels` and forgets the period's problems, in one transaction.
/// `at: None` (the digest is off) forgets when the last one went out.
pub fn digest_period_starts(
    store: &Store,
    at: Option<i64>,
    digest: Option<&Notice>,
    channels: &[String],
) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        match at {
            Some(at) => tables
                .meta
                .put(txn, DIGEST_AT_KEY, &serde_json::json!(at))?,
            None => {
                tables.meta.delete(txn, DIGEST_AT_KEY)?;
            }
        }
        if let Some(digest) = digest {
            enqueue(txn, tables, digest, channels)?;
        }
        tables
            .meta
            .put(txn, DIGEST_PROBLEMS_KEY, &serde_json::json!([]))?;
        Ok(())
    })
}

/// Queues `notice` for each channel key in `channels`.
pub fn enqueue(
    txn: &mut RwTxn,
    tables: &Tables,
    notice: &Notice,
    channels: &[String],
) -> Result<(), StoreError> {
    let seq = tables
        .meta
        .get(txn, SEQ_KEY)?
        .and_then(|value| value.as_u64())
        .unwrap_or(0)
        + 1;
    tables.meta.put(txn, SEQ_KEY, &serde_json::json!(seq))?;
    for channel in channels {
        let prefix = key(channel, 0)[..channel.len() + 1].to_vec();
        let waiting = tables.notices.prefix(txn, &prefix)?;
        if waiting.len() >= MAX_WAITING_PER_CHANNEL {
            tables.notices.delete(txn, &waiting[0].0)?;
        }
        let record = NoticeRecord {
            seq,
            event: notice.event.clone(),
            severity: notice.severity.clone(),
            title: notice.title.clone(),
            message: notice.message.clone(),
            detail: notice.detail.clone(),
            at: notice.at,
            resolved: notice.resolved,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
        };
        tables.notices.put(txn, &key(channel, seq), &record)?;
    }
    Ok(())
}

/// The oldest waiting notice of each channel: `(channel key, record)`.
pub fn heads(store: &Store) -> Result<Vec<(String, NoticeRecord)>, StoreError> {
    let txn = store.read()?;
    let mut out: Vec<(String, NoticeRecord)> = Vec::new();
    for (key, record) in store.tables.notices.all(&txn)? {
        let channel = String::from_utf8_lossy(&key[..key.len().saturating_sub(9)]).into_owned();
        if out.last().map(|(last, _)| last) != Some(&channel) {
            out.push((channel, record));
        }
    }
    Ok(out)
}

/// How many notices wait, over all channels.
pub fn waiting(store: &Store) -> Result<u64, StoreError> {
    let txn = store.read()?;
    store.tables.notices.len(&txn)
}

/// The notice was delivered (or given up, or its channel is gone).
pub fn remove(store: &Store, channel: &str, seq: u64) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        tables.notices.delete(txn, &key(channel, seq))?;
        Ok(())
    })
}

/// The attempt at `now` failed with `error`: try again after the backoff.
pub fn failed(
    store: &Store,
    channel: &str,
    seq: u64,
    now: i64,
    error: &str,
) -> Result<(), StoreError> {
    store.write(|txn, tables| {
        let key = key(channel, seq);
        if let Some(mut record) = tables.notices.get(txn, &key)? {
            record.attempts += 1;
            record.next_attempt_at = now + backoff(record.attempts);
            record.last_error = Some(error.to_string());
            tables.notices.put(txn, &key, &record)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: &str) -> Notice {
        Notice {
            event: event.into(),
            severity: "warning".into(),
            title: "t".into(),
            message: "m".into(),
            detail: "d".into(),
            at: 1,
            resolved: false,
            owner: None,
        }
    }

    #[test]
    fn each_channel_keeps_its_order_and_its_own_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        let channels = ["aaaa".to_string(), "bbbb".to_string()];
        let tracker = Tracker::default();
        let both = channels.to_vec();
        let queued = [(notice("one"), both.clone()), (notice("two"), both)];
        commit(&store, &tracker, None, &queued).unwrap();
        let first_only = [(notice("three"), channels[..1].to_vec())];
        commit(&store, &tracker, None, &first_only).unwrap();
        let heads_now = heads(&store).unwrap();
        assert_eq!(heads_now.len(), 2);
        assert!(heads_now.iter().all(|(_, r)| r.event == "one"));
        failed(&store, "aaaa", heads_now[0].1.seq, 100, "refused").unwrap();
        remove(&store, "bbbb", heads_now[1].1.seq).unwrap();
        let next = heads(&store).unwrap();
        assert_eq!(next[0].1.event, "one");
        assert_eq!(next[0].1.next_attempt_at, 105);
        assert_eq!(next[0].1.last_error.as_deref(), Some("refused"));
        assert_eq!(next[1].1.event, "two");
        assert_eq!(waiting(&store).unwrap(), 4);
        assert_eq!(
            (1..=6).map(backoff).collect::<Vec<_>>(),
            [5, 15, 45, 135, 405, 900]
        );
    }
}
