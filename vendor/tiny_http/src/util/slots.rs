//! piarchive patch: connections counted in total and per remote address, so
//! one device (or a script) cannot take every connection the server can hold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<Option<IpAddr>, usize>,
}

/// The open connections. `try_take` hands out a slot while both caps allow;
/// past the total cap, an address holding fewer than `spare_per_address`
/// connections may still take one of `spare` more, so devices with many
/// addresses filling the cap do not lock out a newcomer.
pub(crate) struct ConnectionSlots {
    max_total: usize,
    max_per_address: usize,
    spare: usize,
    spare_per_address: usize,
    counts: Mutex<Counts>,
}

/// One open connection's place; dropping it frees the place.
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    address: Option<IpAddr>,
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

    pub(crate) fn try_take(self: &Arc<Self>, address: Option<IpAddr>) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let from_address = counts.per_address.get(&address).copied().unwrap_or(0);
        let newcomer = from_address < self.spare_per_address;
        let cap = if newcomer {
            self.max_total + self.spare
        } else {
            self.max_total
        };
        if counts.total >= cap || from_address >= self.max_per_address {
            return None;
        }
        counts.total += 1;
        counts.per_address.insert(address, from_address + 1);
        Some(Slot {
            slots: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(count) = counts.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.address);
            }
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

    #[test]
    fn a_newcomer_gets_a_spare_slot_when_the_total_is_reached() {
        let slots = slots(2, 2, 1);
        let a: Option<IpAddr> = Some("127.0.0.2".parse().unwrap());
        let _held = [slots.try_take(a).unwrap(), slots.try_take(a).unwrap()];
        let b: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let c: Option<IpAddr> = Some("127.0.0.3".parse().unwrap());
        let spare = slots.try_take(b).expect("a newcomer");
        assert!(slots.try_take(b).is_none(), "one spare per address");
        assert!(slots.try_take(c).is_none(), "spares run out");
        drop(spare);
        assert!(slots.try_take(c).is_some());
    }

    #[test]
    fn caps_hold_in_total_and_per_address_and_free_on_drop() {
        let slots = slots(3, 2, 0);
        let a: Option<IpAddr> = Some("127.0.0.2".parse().unwrap());
        let b: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let first = slots.try_take(a).unwrap();
        let _second = slots.try_take(a).unwrap();
        assert!(slots.try_take(a).is_none(), "per address");
        let _third = slots.try_take(b).unwrap();
        assert!(slots.try_take(b).is_none(), "in total");
        drop(first);
        assert!(slots.try_take(a).is_some());
    }
}
