//! Idempotency keys for "buy now": per buyer, remembered for a while, and
//! decided in memory so a keyed tap costs no database round trip.
//!
//! Only accepted reservations bind a key (the key is stored on the
//! reservation row, in the same transaction, so it survives a restart).
//! Refusals are not remembered: a refusal changed nothing, and a repeat is
//! decided afresh (units may have come back meanwhile).

use crate::{OrdersError, ReservationView};
use domain::Subject;
use domain::{OfferId, UnixMillis};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

type Outcome = Option<Result<ReservationView, OrdersError>>;

enum Entry {
    /// The first request with this key is being decided; repeats wait.
    Pending {
        offer: OfferId,
        quantity: u32,
        done: watch::Sender<Outcome>,
    },
    Done {
        offer: OfferId,
        quantity: u32,
        view: ReservationView,
        at: UnixMillis,
    },
}

impl Entry {
    fn same_request(&self, offer: &OfferId, quantity: u32) -> bool {
        match self {
            Entry::Pending {
                offer: o,
                quantity: q,
                ..
            }
            | Entry::Done {
                offer: o,
                quantity: q,
                ..
            } => o == offer && *q == quantity,
        }
    }
}

pub(crate) enum Begin {
    /// Seen and accepted before: answer this again.
    Replay(ReservationView),
    Mismatch,
    /// The same request is being decided right now: wait for its outcome.
    Wait(watch::Receiver<Outcome>),
    /// First time: go ahead, and settle the ticket with the outcome.
    Fresh(Ticket),
}

#[derive(Default)]
struct Index {
    map: HashMap<String, Entry>,
    /// Done keys in the order they were settled, for forgetting old ones.
    order: VecDeque<(UnixMillis, String)>,
}

/// The service-wide key index. Keys are scoped per buyer but not per offer,
/// so one index serves all offers (a key reused on another offer is a
/// mismatch).
#[derive(Clone)]
pub(crate) struct IdempotencyIndex {
    inner: Arc<Mutex<Index>>,
    ttl: Duration,
}

/// The right and duty to settle one pending key. Dropped unsettled (the
/// request never reached a writer), the key is forgotten and anyone waiting
/// is told to try again.
pub(crate) struct Ticket {
    index: IdempotencyIndex,
    slot: Option<String>,
}

fn slot(buyer: &Subject, key: &str) -> String {
    let buyer = buyer.as_str();
    // Subjects never contain '\n' and keys are printable ASCII.
    let mut s = String::with_capacity(buyer.len() + key.len() + 1);
    s.push_str(buyer);
    s.push('\n');
    s.push_str(key);
    s
}

impl IdempotencyIndex {
    pub(crate) fn new(ttl: Duration) -> Self {
        IdempotencyIndex {
            inner: Arc::new(Mutex::new(Index::default())),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding this lock cannot leave a half-written entry
        // (each mutation is one map operation), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn begin(
        &self,
        buyer: &Subject,
        key: &str,
        offer: &OfferId,
        quantity: u32,
        now: UnixMillis,
    ) -> Begin {
        let slot = slot(buyer, key);
        let mut index = self.lock();
        Self::forget_old(&mut index, now.saturating_sub(self.ttl));
        match index.map.get(&slot) {
            Some(entry) if !entry.same_request(offer, quantity) => Begin::Mismatch,
            Some(Entry::Done { view, .. }) => Begin::Replay(view.clone()),
            Some(Entry::Pending { done, .. }) => Begin::Wait(done.subscribe()),
            None => {
                let (done, _) = watch::channel(None);
                index.map.insert(
                    slot.clone(),
                    Entry::Pending {
                        offer: offer.clone(),
                        quantity,
                        done,
                    },
                );
                Begin::Fresh(Ticket {
                    index: self.clone(),
                    slot: Some(slot),
                })
            }
        }
    }

    /// Remembers a keyed reservation read back from the database on start.
    pub(crate) fn restore(&self, buyer: &Subject, key: &str, view: ReservationView) {
        let slot = slot(buyer, key);
        let mut index = self.lock();
        let at = view.created_at;
        if !index.map.contains_key(&slot) {
            index.order.push_back((at, slot.clone()));
            index.map.insert(
                slot,
                Entry::Done {
                    offer: view.offer_id.clone(),
                    quantity: view.quantity,
                    view,
                    at,
                },
            );
        }
    }

    fn forget_old(index: &mut Index, cutoff: UnixMillis) {
        while let Some((at, _)) = index.order.front() {
            if *at >= cutoff {
                break;
            }
            let Some((at, slot)) = index.order.pop_front() else {
                break;
            };
            if matches!(index.map.get(&slot), Some(Entry::Done { at: done_at, .. }) if *done_at == at)
            {
                index.map.remove(&slot);
            }
        }
    }
}

impl Ticket {
    /// Records the outcome: an accepted reservation binds the key; anything
    /// else frees it. Waiters get the same outcome either way.
    pub(crate) fn settle(mut self, outcome: &Result<ReservationView, OrdersError>) {
        let Some(slot) = self.slot.take() else { return };
        let mut index = self.index.lock();
        let Some(Entry::Pending {
            offer,
            quantity,
            done,
        }) = index.map.remove(&slot)
        else {
            return;
        };
        done.send_replace(Some(outcome.clone()));
        if let Ok(view) = outcome {
            let at = view.created_at;
            index.order.push_back((at, slot.clone()));
            index.map.insert(
                slot,
                Entry::Done {
                    offer,
                    quantity,
                    view: view.clone(),
                    at,
                },
            );
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut index = self.index.lock();
            if let Some(Entry::Pending { done, .. }) = index.map.remove(&slot) {
                done.send_replace(Some(Err(OrdersError::Unavailable)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Fen, ReservationId};

    fn sub(raw: &str) -> Subject {
        Subject::from_trusted(raw)
    }

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    fn view(offer: &OfferId, quantity: u32, at: UnixMillis) -> ReservationView {
        ReservationView {
            id: ReservationId::generate(),
            offer_id: offer.clone(),
            quantity,
            unit_price: Fen::from_trusted(100),
            total: Fen::from_trusted(100 * i64::from(quantity)),
            created_at: at,
            expires_at: at.saturating_add(Duration::from_secs(600)),
        }
    }

    #[test]
    fn same_key_same_request_replays_and_different_request_mismatches() {
        let index = IdempotencyIndex::new(Duration::from_millis(1_000));
        let offer = OfferId::generate();
        let Begin::Fresh(ticket) = index.begin(&sub("usr_a"), "k1", &offer, 1, ms(0)) else {
            panic!("fresh")
        };
        assert!(matches!(
            index.begin(&sub("usr_a"), "k1", &offer, 1, ms(0)),
            Begin::Wait(_)
        ));
        assert!(matches!(
            index.begin(&sub("usr_a"), "k1", &offer, 2, ms(0)),
            Begin::Mismatch
        ));
        let v = view(&offer, 1, ms(0));
        ticket.settle(&Ok(v.clone()));
        assert!(
            matches!(index.begin(&sub("usr_a"), "k1", &offer, 1, ms(10)), Begin::Replay(r) if r == v)
        );
        assert!(matches!(
            index.begin(&sub("usr_a"), "k1", &OfferId::generate(), 1, ms(10)),
            Begin::Mismatch
        ));
        assert!(
            matches!(
                index.begin(&sub("usr_b"), "k1", &offer, 1, ms(10)),
                Begin::Fresh(_)
            ),
            "keys are per buyer"
        );
    }

    #[test]
    fn refusals_and_abandoned_requests_free_the_key() {
        let index = IdempotencyIndex::new(Duration::from_millis(1_000));
        let offer = OfferId::generate();
        let Begin::Fresh(ticket) = index.begin(&sub("usr_a"), "k", &offer, 1, ms(0)) else {
            panic!()
        };
        let Begin::Wait(mut waiter) = index.begin(&sub("usr_a"), "k", &offer, 1, ms(0)) else {
            panic!()
        };
        ticket.settle(&Err(OrdersError::SoldOut { available: 0 }));
        assert!(matches!(
            &*waiter.borrow_and_update(),
            Some(Err(OrdersError::SoldOut { .. }))
        ));
        let Begin::Fresh(ticket) = index.begin(&sub("usr_a"), "k", &offer, 2, ms(0)) else {
            panic!("freed")
        };
        drop(ticket);
        assert!(matches!(
            index.begin(&sub("usr_a"), "k", &offer, 3, ms(0)),
            Begin::Fresh(_)
        ));
    }

    #[test]
    fn keys_are_forgotten_after_their_time() {
        let index = IdempotencyIndex::new(Duration::from_millis(1_000));
        let offer = OfferId::generate();
        index.restore(&sub("usr_a"), "old", view(&offer, 1, ms(0)));
        assert!(matches!(
            index.begin(&sub("usr_a"), "old", &offer, 1, ms(999)),
            Begin::Replay(_)
        ));
        assert!(matches!(
            index.begin(&sub("usr_a"), "old", &offer, 5, ms(1_001)),
            Begin::Fresh(_)
        ));
    }
}
