//! Progress events for Server-Sent Events: `archive` (state and progress)
//! and `part` (one part stored). A slow subscriber loses events rather than
//! holding up the engine; each event carries the whole current state, so
//! the next one corrects it.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::json;

use crate::store::records::ArchiveRecord;

/// At most this many subscribers at once (SSE clients).
pub const MAX_SUBSCRIBERS: usize = 32;

/// One event: its owner (only they see it), SSE name and JSON data.
#[derive(Debug, Clone)]
pub struct Event {
    pub owner_id: String,
    pub name: &'static str,
    pub data: serde_json::Value,
}

impl Event {
    /// The SSE wire form: `event: <name>\ndata: <json>\n\n`.
    pub fn to_sse(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.name, self.data)
    }
}

/// One listener's end. Dropping it frees its slot at once, even if no
/// event is published in between.
pub struct Subscription {
    receiver: Receiver<Event>,
    /// Its slot counts as taken while this lives.
    _alive: Arc<()>,
}

impl Subscription {
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.receiver.recv_timeout(timeout)
    }
}

#[derive(Default)]
pub struct Events {
    subscribers: Mutex<Vec<(SyncSender<Event>, Weak<()>)>>,
}

impl Events {
    /// A new subscriber, or `None` when [`MAX_SUBSCRIBERS`] are listening.
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|(_, alive)| alive.strong_count() > 0);
        if subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (sender, receiver) = sync_channel(256);
        let alive = Arc::new(());
        subscribers.push((sender, Arc::downgrade(&alive)));
        Some(Subscription {
            receiver,
            _alive: alive,
        })
    }

    fn publish(&self, event: Event) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|(sender, _)| match sender.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    pub fn archive(&self, archive: &ArchiveRecord) {
        self.publish(Event {
            owner_id: archive.owner_id.clone(),
            name: "archive",
            data: json!({
                "id": archive.id,
                "state": archive.state.as_str(),
                "parts_total": archive.parts_total,
                "parts_remote": archive.parts_remote,
                "last_error": archive.last_error,
            }),
        });
    }

    pub fn part(&self, archive: &ArchiveRecord, index: u32, remote: bool) {
        self.publish(Event {
            owner_id: archive.owner_id.clone(),
            name: "part",
            data: json!({"archive_id": archive.id, "index": index, "remote": remote}),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_subscription_frees_its_slot_without_any_event() {
        let events = Events::default();
        let held: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|_| events.subscribe().expect("a free slot"))
            .collect();
        assert!(events.subscribe().is_none());
        drop(held);
        for _ in 0..3 * MAX_SUBSCRIBERS {
            assert!(events.subscribe().is_some());
        }
    }
}
