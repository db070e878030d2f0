//! piarchive patch: connections counted in total and per remote address, so
//! one device (or a script) cannot take every connection the server can hold,
//! and one budget shared by every listener of the application
//! ([`crate::ConnectionPool`]).
//!
//! When the pool is full, a newcomer takes the place of an idle connection
//! (waiting for a request head: between requests, or still sending one) of
//! the address holding the most connections, as long as that address holds
//! at least two more than the newcomer's. Many hostile addresses holding
//! every place therefore cannot lock a phone out; they only push each other
//! out.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex, Weak};

use crate::connection::Connection;
use crate::util::pace::Pace;

/// What the pool knows of one open connection: enough to end it.
struct Entry {
    address: Option<IpAddr>,
    pace: Weak<Pace>,
    socket: Weak<Connection>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<Option<IpAddr>, usize>,
    open: HashMap<u64, Entry>,
    next_id: u64,
}

impl Counts {
    fn release(&mut self, address: &Option<IpAddr>) {
        self.total -= 1;
        if let Some(count) = self.per_address.get_mut(address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(address);
            }
        }
    }

    /// The idle connection to end for a newcomer from an address holding
    /// `newcomer` connections: one of the busiest address holding at least
    /// two more.
    fn victim(&self, newcomer: usize) -> Option<u64> {
        self.open
            .iter()
            .filter_map(|(id, entry)| {
                let held = self.per_address.get(&entry.address).copied().unwrap_or(0);
                (held >= newcomer + 2).then_some((held, *id, entry))
            })
            .filter(|(_, _, entry)| entry.pace.upgrade().is_some_and(|pace| pace.idle()))
            .max_by_key(|(held, id, _)| (*held, *id))
            .map(|(_, id, _)| id)
    }
}

/// The open connections. `try_take` hands out a slot while both caps allow;
/// past the total cap, an address holding fewer than `spare_per_address`
/// connections may still take one of `spare` more, and past that a
/// newcomer ends an idle connection of a busier address.
pub(crate) struct ConnectionSlots {
    max_total: usize,
    max_per_address: usize,
    spare: usize,
    spare_per_address: usize,
    counts: Mutex<Counts>,
}

/// One open connection's place; dropping it frees the place (unless it was
/// taken over by a newcomer already).
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    address: Option<IpAddr>,
    id: u64,
}

impl ConnectionSlots {
    pub(crate) fn new(limits: &crate::Limits) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots {
            max_total: limits.max_connections,
            max_per_address: limits.max_connections_per_address,
            spare: limits.spare_connections,
            spare_per_address: limits.spare_connections_per_address,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a connection from `address`, whose deadlines are `pace`
    /// and whose socket is `socket` (so it can be ended for a newcomer).
    pub(crate) fn try_take(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        pace: &Arc<Pace>,
        socket: Option<&Arc<Connection>>,
    ) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.max_per_address {
            return None;
        }
        let newcomer = from_address < self.spare_per_address;
        let cap = if newcomer {
            self.max_total + self.spare
        } else {
            self.max_total
        };
        if counts.total >= cap {
            let victim = counts.victim(from_address)?;
            let entry = counts.open.remove(&victim)?;
            counts.release(&entry.address);
            if let Some(pace) = entry.pace.upgrade() {
                pace.close();
            }
            if let Some(socket) = entry.socket.upgrade() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        counts.total += 1;
        *counts.per_address.entry(address).or_insert(0) += 1;
        let id = counts.next_id;
        counts.next_id += 1;
        counts.open.insert(
            id,
            Entry {
                address,
                pace: Arc::downgrade(pace),
                socket: socket.map_or_else(Weak::new, Arc::downgrade),
            },
        );
        Some(Slot {
            slots: self.clone(),
            address,
            id,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        // Gone already when a newcomer took the place over.
        if counts.open.remove(&self.id).is_some() {
            counts.release(&self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max_total: usize, max_per_address: usize, spare: usize) -> Arc<ConnectionSlots> {
        ConnectionSlots::new(&crate::Limits {
            max_connections: max_total,
            max_connections_per_address: max_per_address,
            spare_connections: spare,
            spare_connections_per_address: 1,
            ..Default::default()
        })
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// A pace of a connection that is handling a request (not idle).
    fn busy() -> Arc<Pace> {
        let pace = Arc::new(Pace::new(&crate::Limits::default()));
        pace.request_started();
        pace
    }

    #[test]
    fn a_newcomer_gets_a_spare_slot_when_the_total_is_reached() {
        let slots = slots(2, 2, 1);
        let pace = busy();
        let a = ip("127.0.0.2");
        let _held = [
            slots.try_take(a, &pace, None).unwrap(),
            slots.try_take(a, &pace, None).unwrap(),
        ];
        let (b, c) = (ip("127.0.0.1"), ip("127.0.0.3"));
        let spare = slots.try_take(b, &pace, None).expect("a newcomer");
        assert!(slots.try_take(b, &pace, None).is_none(), "one spare per address");
        assert!(slots.try_take(c, &pace, None).is_none(), "spares run out");
        drop(spare);
        assert!(slots.try_take(c, &pace, None).is_some());
    }

    #[test]
    fn caps_hold_in_total_and_per_address_and_free_on_drop() {
        let slots = slots(3, 2, 0);
        let pace = busy();
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.1"));
        let first = slots.try_take(a, &pace, None).unwrap();
        let _second = slots.try_take(a, &pace, None).unwrap();
        assert!(slots.try_take(a, &pace, None).is_none(), "per address");
        let _third = slots.try_take(b, &pace, None).unwrap();
        assert!(slots.try_take(b, &pace, None).is_none(), "in total");
        drop(first);
        assert!(slots.try_take(a, &pace, None).is_some());
    }

    #[test]
    fn a_newcomer_ends_an_idle_connection_of_the_busiest_address() {
        let slots = slots(4, 4, 0);
        let idle: Vec<Arc<Pace>> = (0..3)
            .map(|_| Arc::new(Pace::new(&crate::Limits::default())))
            .collect();
        let (a, b, phone) = (ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.1"));
        let _a: Vec<Slot> = idle
            .iter()
            .map(|pace| slots.try_take(a, pace, None).unwrap())
            .collect();
        let _b = slots.try_take(b, &busy(), None).unwrap();
        // The phone (0) pushes out an idle connection of a (3 >= 0 + 2).
        let phone_slot = slots.try_take(phone, &busy(), None).expect("the phone");
        let closed = idle.iter().filter(|p| p.time_left(std::time::Instant::now()).is_err());
        assert_eq!(closed.count(), 1, "one idle connection of a was ended");
        // Now a holds 2, b 1, the phone 1: nobody holds two more than a
        // newcomer from b, so b is refused.
        assert!(slots.try_take(b, &busy(), None).is_none());
        drop(phone_slot);
        assert!(slots.try_take(b, &busy(), None).is_some());
    }

    #[test]
    fn busy_connections_are_never_ended() {
        let slots = slots(2, 2, 0);
        let a = ip("127.0.0.2");
        let _held = [
            slots.try_take(a, &busy(), None).unwrap(),
            slots.try_take(a, &busy(), None).unwrap(),
        ];
        assert!(slots.try_take(ip("127.0.0.1"), &busy(), None).is_none());
    }
}
