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
    /// A new subscriber for `user_id`. A user holding
    /// [`MAX_SUBSCRIBERS_PER_USER`] already loses their oldest stream (the
    /// newest page gets one; the old one is told it was replaced). When
    /// all slots are taken (members leave [`ADMIN_RESERVED`] to admins),
    /// the oldest stream of the user holding the most goes, if that user
    /// holds at least two more than this one: seven accounts filling every
    /// member slot cannot keep an eighth out. Refused only when every
    /// other user holds about as many as this one.
    pub fn subscribe(&self, user_id: &str, admin: bool) -> Result<Subscription, Refused> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|s| s.alive.strong_count() > 0);
        let held = |subscribers: &[Subscriber], user: &str| {
            subscribers.iter().filter(|s| s.user_id == user).count()
        };
        let of_user = held(&subscribers, user_id);
        let slots = if admin {
            MAX_SUBSCRIBERS
        } else {
            MAX_SUBSCRIBERS - ADMIN_RESERVED
        };
        if of_user >= MAX_SUBSCRIBERS_PER_USER {
            Self::end_oldest_of(&mut subscribers, user_id);
        } else if subscribers.len() >= slots {
            let busiest = subscribers
                .iter()
                .map(|s| (held(&subscribers, &s.user_id), s.user_id.clone()))
                .max_by_key(|(count, _)| *count)
                .filter(|(count, _)| *count >= of_user + 2);
            match busiest {
                Some((_, busiest)) => Self::end_oldest_of(&mut subscribers, &busiest),
                None => return Err(Refused::Full),
            }
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

    /// Ends `user_id`'s oldest stream: its receiver sees the channel
    /// disconnected (the stream is told it was replaced and closed).
    fn end_oldest_of(subscribers: &mut Vec<Subscriber>, user_id: &str) {
        if let Some(oldest) = subscribers.iter().position(|s| s.user_id == user_id) {
            subscribers.remove(oldest);
        }
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
    fn a_users_oldest_stream_makes_way_for_their_newest() {
        let events = Events::default();
        let mine: Vec<Subscription> = (0..MAX_SUBSCRIBERS_PER_USER)
            .map(|_| events.subscribe("mallory", false).expect("a free slot"))
            .collect();
        let newest = events.subscribe("mallory", false).expect("the newest page");
        let gone = |s: &Subscription| {
            matches!(
                s.recv_timeout(Duration::ZERO),
                Err(RecvTimeoutError::Disconnected)
            )
        };
        assert!(gone(&mine[0]), "the oldest stream was ended");
        assert!(!mine[1..].iter().any(gone) && !gone(&newest));
    }

    #[test]
    fn seven_accounts_cannot_fill_every_member_slot_and_admins_keep_theirs() {
        let events = Events::default();
        let member_slots = MAX_SUBSCRIBERS - ADMIN_RESERVED;
        let accounts = member_slots / MAX_SUBSCRIBERS_PER_USER;
        let held: Vec<Subscription> = (0..accounts)
            .flat_map(|n| (0..MAX_SUBSCRIBERS_PER_USER).map(move |_| n))
            .map(|n| events.subscribe(&format!("member {n}"), false).unwrap())
            .collect();
        assert_eq!(held.len(), member_slots);
        let newcomer = events.subscribe("newcomer", false).expect("an eighth user");
        let ended = held
            .iter()
            .filter(|s| {
                matches!(
                    s.recv_timeout(Duration::ZERO),
                    Err(RecvTimeoutError::Disconnected)
                )
            })
            .count();
        assert_eq!(ended, 1, "one stream of a busiest user made way");
        // An account at its cap: its own oldest makes way.
        assert_eq!(
            events.subscribe("member 0", false).err(),
            None,
            "its own oldest makes way at its cap"
        );
        let admin = events.subscribe("admin", true);
        assert!(admin.is_ok(), "admins keep their slots");
        drop((newcomer, admin));
        // When every user holds one, a newcomer is refused.
        let events = Events::default();
        let ones: Vec<Subscription> = (0..member_slots)
            .map(|n| events.subscribe(&format!("user {n}"), false).unwrap())
            .collect();
        assert_eq!(events.subscribe("late", false).err(), Some(Refused::Full));
        drop(ones);
    }
}
