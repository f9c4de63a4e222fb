//! The one place the subsystems meet. The SFU, the order service, the shop
//! service and the live rooms do not know each other: what one of them does
//! that another must react to arrives here as a [`Happening`], and
//! [`Bridge::react`] is the whole list of reactions, in one match.
//!
//! Each source is read by its own loop (so a slow database write after a
//! publisher leaves never delays live stock), and every loop hands what it
//! reads to the same `react`. The shop service's happenings are awaited by
//! the caller, so when the owner's "end broadcast" answers, its reactions
//! have happened.
//!
//! The live channel's "buy" is the other direction (a viewer asks, the order
//! service answers): see `commerce.rs`.

use async_trait::async_trait;
use domain::{BroadcastId, BroadcastState, OfferId, ProductTitle, Unit};
use live::{LiveEvent, LiveHub};
use orders::{OfferEvent, OrderService};
use protocol::{PrivateMessage, SaleTicker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio::task::JoinHandle;

/// Something one subsystem did that another reacts to.
#[derive(Clone, Debug)]
pub enum Happening {
    /// From the SFU: a publisher's media arrived, came back or is gone;
    /// viewer counts.
    Media(sfu::SfuEvent),
    /// From the order service: stock and state of an offer (a sold-out offer
    /// is a snapshot in state `sold_out`), a sale, an order placed, a hold
    /// that expired.
    Orders(OfferEvent),
    /// From the shop service: the owner ended a broadcast.
    Shop(shops::ShopEvent),
    /// From the live rooms: a moderator banned someone from a shop.
    Live(LiveEvent),
}

/// The server's reactions. Cheap to clone.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    sfu: sfu::Sfu,
    orders: OrderService,
    live: LiveHub,
    /// Title and unit of offers seen, for the sale ticker; and the offers to
    /// refresh if the order events ever outrun the bridge.
    offers: Mutex<HashMap<OfferId, (BroadcastId, ProductTitle, Unit)>>,
}

impl Bridge {
    pub fn new(store: store::Store, sfu: sfu::Sfu, orders: OrderService, live: LiveHub) -> Bridge {
        Bridge {
            inner: Arc::new(Inner {
                store,
                sfu,
                orders,
                live,
                offers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts reading the SFU's, the order service's and the rooms' events.
    /// Abort the handles to stop.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let s = &self.inner;
        vec![
            tokio::spawn(
                self.clone()
                    .follow(s.sfu.events(), Happening::Media, "media"),
            ),
            tokio::spawn(
                self.clone()
                    .follow(s.orders.events(), Happening::Orders, "order"),
            ),
            tokio::spawn(
                self.clone()
                    .follow(s.live.events(), Happening::Live, "live"),
            ),
        ]
    }

    /// Reacts to every event of one source, in order.
    async fn follow<E: Clone>(
        self,
        mut events: Receiver<E>,
        happening: fn(E) -> Happening,
        source: &'static str,
    ) {
        loop {
            match events.recv().await {
                Ok(event) => self.react(happening(event)).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, source, "the bridge fell behind a source's events");
                    // Stock is the one thing shown from state, not from
                    // history: show every known offer afresh.
                    if source == "order" {
                        self.resync_offers().await;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Every cross-subsystem reaction of the server.
    pub async fn react(&self, happening: Happening) {
        let s = &self.inner;
        match happening {
            Happening::Media(sfu::SfuEvent::ViewerCount { room, count }) => {
                if let Ok(id) = BroadcastId::parse(&room) {
                    s.live.set_media_viewers(&id, count as u64);
                }
            }
            Happening::Media(
                sfu::SfuEvent::RoomLive { room } | sfu::SfuEvent::PublisherReconnected { room },
            ) => self.media_state(&room, BroadcastState::Live).await,
            // A room that never carried media (the publisher never connected,
            // or connected and sent nothing, then left) ends without ending
            // the broadcast: the farmer can still go live. A server shutting
            // down ends nothing either.
            Happening::Media(sfu::SfuEvent::RoomEnded {
                room,
                reason,
                was_live: true,
            }) if reason != sfu::EndReason::Shutdown => {
                self.media_state(&room, BroadcastState::Ended).await
            }
            Happening::Media(_) => {}
            Happening::Shop(shops::ShopEvent::BroadcastEnded { broadcast }) => {
                self.broadcast_ended(&broadcast).await
            }
            Happening::Orders(OfferEvent::Snapshot { snapshot }) => {
                lock(&s.offers).insert(
                    snapshot.offer_id.clone(),
                    (
                        snapshot.broadcast_id.clone(),
                        snapshot.title.clone(),
                        snapshot.unit.clone(),
                    ),
                );
                s.live.update_offer(
                    &snapshot.broadcast_id,
                    crate::commerce::offer_card(&snapshot),
                );
            }
            Happening::Orders(OfferEvent::Sale {
                offer_id,
                broadcast_id,
                quantity,
                place,
            }) => {
                let known = lock(&s.offers)
                    .get(&offer_id)
                    .map(|(_, title, unit)| (title.clone(), unit.clone()));
                let described = match known {
                    Some(described) => Some(described),
                    None => s
                        .orders
                        .offer_snapshot(&offer_id)
                        .await
                        .ok()
                        .map(|s| (s.title.clone(), s.unit.clone())),
                };
                if let Some((title, unit)) = described {
                    s.live.sale(
                        &broadcast_id,
                        SaleTicker {
                            offer: offer_id,
                            title,
                            quantity,
                            unit,
                            buyer_region: place,
                        },
                    );
                }
            }
            Happening::Orders(OfferEvent::OrderPlaced {
                buyer,
                broadcast_id,
                reservation_id,
                order_id,
            }) => s.live.private(
                &broadcast_id,
                buyer.as_str(),
                PrivateMessage::OrderPlaced {
                    reservation: reservation_id,
                    order: order_id,
                },
            ),
            Happening::Orders(OfferEvent::ReservationExpired {
                buyer,
                broadcast_id,
                offer_id,
                reservation_id,
            }) => s.live.private(
                &broadcast_id,
                buyer.as_str(),
                PrivateMessage::ReservationExpired {
                    reservation: reservation_id,
                    offer: offer_id,
                },
            ),
            // Other nodes' rooms hear of it from `cluster_sync`.
            Happening::Live(LiveEvent::ShopWide { .. }) => {}
            Happening::Live(LiveEvent::Banned { shop, subject }) => {
                // Only buyers (accounts, guests) hold units.
                let Ok(buyer) = domain::Subject::parse(&subject) else {
                    return;
                };
                if let Err(e) = s.orders.release_holds_of_banned(&shop, &buyer).await {
                    tracing::error!(shop = %shop, error = %e, "could not release a banned buyer's holds");
                }
            }
        }
    }

    /// The broadcast's state as its media says, written once; an end is
    /// then reacted to like the owner's.
    async fn media_state(&self, room: &str, to: BroadcastState) {
        let Ok(id) = BroadcastId::parse(room) else {
            return;
        };
        let s = &self.inner;
        match s
            .store
            .set_broadcast_state(&id, to, domain::UnixMillis::wall_now())
            .await
        {
            Ok(Some(b)) => {
                tracing::info!(broadcast = %id, state = b.state.as_str(), "broadcast state changed");
                match b.state {
                    BroadcastState::Ended => self.broadcast_ended(&id).await,
                    state => s.live.set_broadcast_state(&id, state),
                }
            }
            Ok(None) => {
                tracing::debug!(broadcast = %id, to = to.as_str(), "broadcast state unchanged")
            }
            Err(e) => {
                tracing::error!(broadcast = %id, error = %e, "could not record broadcast state")
            }
        }
    }

    /// A broadcast that ended (already written as ended): its media stops
    /// (if the owner ended it while live), the room says so and its offers
    /// end, releasing their holds. Repeating it changes nothing.
    async fn broadcast_ended(&self, id: &BroadcastId) {
        let s = &self.inner;
        s.sfu.close_room(id.as_str()).await;
        s.live.set_broadcast_state(id, BroadcastState::Ended);
        if let Err(e) = s.orders.end_offers_of_broadcast(id).await {
            tracing::error!(broadcast = %id, error = %e, "could not end the broadcast's offers");
        }
    }

    /// Every offer seen, shown afresh.
    async fn resync_offers(&self) {
        let offers: Vec<OfferId> = lock(&self.inner.offers).keys().cloned().collect();
        for offer in offers {
            if let Ok(snapshot) = self.inner.orders.offer_snapshot(&offer).await {
                self.inner.live.update_offer(
                    &snapshot.broadcast_id,
                    crate::commerce::offer_card(&snapshot),
                );
            }
        }
    }
}

#[async_trait]
impl shops::ShopEvents for Bridge {
    async fn happened(&self, event: shops::ShopEvent) {
        self.react(Happening::Shop(event)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
