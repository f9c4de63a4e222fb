//! Places for sessions that have not connected yet.
//!
//! A WHEP offer costs one HTTP request; the session it creates costs the server
//! a peer connection (~100 KiB) until ICE and DTLS complete or the connect
//! timeout drops it. So unconnected sessions are bounded per client address and
//! per room, and do not take viewer slots: slots go to connected viewers only.

use crate::error::SfuError;
use crate::room::lock;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Unconnected sessions per client, over every room.
pub(crate) struct PendingBook {
    per_client: Mutex<HashMap<IpAddr, usize>>,
    max_per_client: usize,
    max_per_room: usize,
}

/// One unconnected session's place. Freed when the session connects
/// ([`PendingSlot::release`]) or is dropped, whichever comes first.
pub(crate) struct PendingSlot {
    book: Arc<PendingBook>,
    client: IpAddr,
    /// The room's count of unconnected viewers (publishers have none: a room has
    /// at most one, and it holds the stream key).
    room: Option<Arc<AtomicUsize>>,
    held: bool,
}

/// The address a limit is kept for: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by
/// its /64, since one subscriber usually holds a whole /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl PendingBook {
    pub fn new(max_per_client: usize, max_per_room: usize) -> Arc<Self> {
        Arc::new(Self {
            per_client: Mutex::new(HashMap::new()),
            max_per_client,
            max_per_room,
        })
    }

    /// Take a place for a new session from `client`, in `room` for a viewer.
    pub fn reserve(
        self: &Arc<Self>,
        client: IpAddr,
        room: Option<&Arc<AtomicUsize>>,
    ) -> Result<PendingSlot, SfuError> {
        let client = client_key(client);
        let mut per_client = lock(&self.per_client);
        let count = per_client.get(&client).copied().unwrap_or(0);
        if count >= self.max_per_client {
            return Err(SfuError::TooManyPending(self.max_per_client));
        }
        if let Some(room) = room {
            let max = self.max_per_room;
            room.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| SfuError::RoomBusy(max))?;
        }
        per_client.insert(client, count + 1);
        Ok(PendingSlot {
            book: self.clone(),
            client,
            room: room.cloned(),
            held: true,
        })
    }

    /// Unconnected sessions of `client` (for tests and metrics).
    pub fn of_client(&self, client: IpAddr) -> usize {
        lock(&self.per_client)
            .get(&client_key(client))
            .copied()
            .unwrap_or(0)
    }

    /// Unconnected sessions in all.
    pub fn total(&self) -> usize {
        lock(&self.per_client).values().sum()
    }

    /// Clients with unconnected sessions (the map holds no others).
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        lock(&self.per_client).len()
    }
}

impl PendingSlot {
    /// The session connected (or ended): give the place back. Idempotent.
    pub fn release(&mut self) {
        if !std::mem::take(&mut self.held) {
            return;
        }
        if let Some(room) = &self.room {
            room.fetch_sub(1, Ordering::AcqRel);
        }
        let mut per_client = lock(&self.book.per_client);
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                // Addresses with nothing pending are forgotten: the map cannot grow
                // with the number of addresses ever seen.
                per_client.remove(&self.client);
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_limit_and_no_more_until_one_connects() {
        let book = PendingBook::new(3, 100);
        let room = Arc::new(AtomicUsize::new(0));
        let mut held: Vec<_> = (0..3)
            .map(|_| book.reserve(ip("10.0.0.1"), Some(&room)).unwrap())
            .collect();
        assert_eq!(
            book.reserve(ip("10.0.0.1"), Some(&room)).err(),
            Some(SfuError::TooManyPending(3))
        );
        // Another address is not affected.
        let other = book.reserve(ip("10.0.0.2"), Some(&room)).unwrap();
        assert_eq!(room.load(Ordering::Relaxed), 4);
        // One connects: its place is free, once, even if released again or dropped.
        held[0].release();
        held[0].release();
        assert_eq!(book.of_client(ip("10.0.0.1")), 2);
        held.push(book.reserve(ip("10.0.0.1"), Some(&room)).unwrap());
        drop(held);
        drop(other);
        assert_eq!(room.load(Ordering::Relaxed), 0);
        assert_eq!(book.clients(), 0, "nothing is kept for idle addresses");
    }

    #[test]
    fn the_room_limit_holds_across_addresses_and_spares_publishers() {
        let book = PendingBook::new(10, 2);
        let room = Arc::new(AtomicUsize::new(0));
        let _a = book.reserve(ip("10.0.0.1"), Some(&room)).unwrap();
        let _b = book.reserve(ip("10.0.0.2"), Some(&room)).unwrap();
        assert_eq!(
            book.reserve(ip("10.0.0.3"), Some(&room)).err(),
            Some(SfuError::RoomBusy(2))
        );
        // A refused reservation leaves nothing behind.
        assert_eq!(book.of_client(ip("10.0.0.3")), 0);
        assert!(book.reserve(ip("10.0.0.3"), None).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let book = PendingBook::new(2, 100);
        let _a = book.reserve(ip("2001:db8:1:2::1"), None).unwrap();
        let _b = book.reserve(ip("2001:db8:1:2:ffff::9"), None).unwrap();
        assert!(matches!(
            book.reserve(ip("2001:db8:1:2:abcd::1"), None),
            Err(SfuError::TooManyPending(2))
        ));
        assert!(book.reserve(ip("2001:db8:1:3::1"), None).is_ok());
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }
}
