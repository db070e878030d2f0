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
/// At most this many subscribers of one user at once.
pub const MAX_SUBSCRIBERS_PER_USER: usize = 4;
/// Slots only admins may take, so an admin can always open a stream however
/// many members hold.
pub const ADMIN_RESERVED: usize = 4;

/// Why a subscriber was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("You have {MAX_SUBSCRIBERS_PER_USER} live views open already; close a browser tab and try again.")]
    UserFull,
    #[error("Too many live views are open on this appliance; close a browser tab and try again.")]
    Full,
}

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

struct Subscriber {
    sender: SyncSender<Event>,
    alive: Weak<()>,
    user_id: String,
}

#[derive(Default)]
pub struct Events {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl Events {
    /// A new subscriber for `user_id`, unless that user holds
    /// [`MAX_SUBSCRIBERS_PER_USER`] already or the slots are taken (members
    /// leave [`ADMIN_RESERVED`] of them to admins).
    pub fn subscribe(&self, user_id: &str, admin: bool) -> Result<Subscription, Refused> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| s.alive.strong_count() > 0);
        let of_user = subscribers.iter().filter(|s| s.user_id == user_id).count();
        if of_user >= MAX_SUBSCRIBERS_PER_USER {
            return Err(Refused::UserFull);
        }
        let slots = if admin {
            MAX_SUBSCRIBERS
        } else {
            MAX_SUBSCRIBERS - ADMIN_RESERVED
        };
        if subscribers.len() >= slots {
            return Err(Refused::Full);
        }
        let (sender, receiver) = sync_channel(256);
        let alive = Arc::new(());
        subscribers.push(Subscriber {
            sender,
            alive: Arc::downgrade(&alive),
            user_id: user_id.to_string(),
        });
        Ok(Subscription {
            receiver,
            _alive: alive,
        })
    }

    fn publish(&self, event: Event) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| match s.sender.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    pub fn archive(&self, archive: &ArchiveRecord) {
        self.publish(archive_event(archive));
    }

    /// An archive that went to the trash: its owner's pages drop it from
    /// the list (state `trashed`, as the API shows it).
    pub fn trashed(&self, archive: &ArchiveRecord) {
        let mut event = archive_event(archive);
        event.data["state"] = json!("trashed");
        self.publish(event);
    }

    /// A running fetch-back's progress: the archive event with
    /// `bytes_fetched`, the bytes fetched and checked so far.
    pub fn fetched(&self, archive: &ArchiveRecord, bytes_fetched: u64) {
        let mut event = archive_event(archive);
        event.data["bytes_fetched"] = json!(bytes_fetched);
        self.publish(event);
    }

    /// A part the engine just stored on the remote, with its length, so
    /// pages can tell the rate from the bytes that landed.
    pub fn part_stored(&self, archive: &ArchiveRecord, index: u32, length: u64) {
        self.publish(Event {
            owner_id: archive.owner_id.clone(),
            name: "part",
            data: json!({"archive_id": archive.id, "index": index, "remote": true, "length": length}),
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

fn archive_event(archive: &ArchiveRecord) -> Event {
    Event {
        owner_id: archive.owner_id.clone(),
        name: "archive",
        data: json!({
            "id": archive.id,
            "name": archive.name,
            "state": archive.state.as_str(),
            "parts_total": archive.parts_total,
            "parts_remote": archive.parts_remote,
            "last_error": archive.last_error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_subscription_frees_its_slot_without_any_event() {
        let events = Events::default();
        let held: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|n| {
                events
                    .subscribe(&format!("admin {n}"), true)
                    .expect("a free slot")
            })
            .collect();
        assert_eq!(events.subscribe("another", true).err(), Some(Refused::Full));
        drop(held);
        for _ in 0..3 * MAX_SUBSCRIBERS {
            assert!(events.subscribe("another", true).is_ok());
        }
    }

    #[test]
    fn members_are_capped_per_user_and_leave_slots_to_admins() {
        let events = Events::default();
        let mine: Vec<Subscription> = (0..MAX_SUBSCRIBERS_PER_USER)
            .map(|_| events.subscribe("mallory", false).expect("a free slot"))
            .collect();
        assert_eq!(
            events.subscribe("mallory", false).err(),
            Some(Refused::UserFull)
        );
        let members: Vec<Subscription> = (0..)
            .map_while(|n| events.subscribe(&format!("member {n}"), false).ok())
            .take(MAX_SUBSCRIBERS)
            .collect();
        assert_eq!(mine.len() + members.len(), MAX_SUBSCRIBERS - ADMIN_RESERVED);
        assert!(events.subscribe("admin", true).is_ok());
    }
}
