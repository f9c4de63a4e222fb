//! Event bridges between the subsystems, which do not know each other:
//! the SFU's room events become broadcast state (database, offers, live
//! rooms), and the order service's events reach the live rooms.

use domain::{BroadcastId, BroadcastState, OfferId};
use live::LiveHub;
use orders::{OfferEvent, OrderService};
use protocol::{PrivateMessage, SaleTicker};
use std::collections::HashMap;
use tokio::sync::broadcast::error::RecvError;

/// A publisher whose media arrives makes its broadcast live; one gone past the
/// grace period ends it (and its offers), unless no media ever came. Viewer
/// counts (connected viewers) go to the room.
pub async fn media_lifecycle(
    sfu: sfu::Sfu,
    store: store::Store,
    orders: OrderService,
    live: LiveHub,
) {
    let mut events = sfu.events();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "broadcast lifecycle fell behind the SFU's events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let (room, to) = match &event {
            sfu::SfuEvent::ViewerCount { room, count } => {
                if let Ok(id) = BroadcastId::parse(room) {
                    live.set_media_viewers(&id, *count as u64);
                }
                continue;
            }
            sfu::SfuEvent::RoomLive { room } | sfu::SfuEvent::PublisherReconnected { room } => {
                (room, BroadcastState::Live)
            }
            // A room that never carried media (the publisher never connected, or
            // connected and sent nothing, then left) ends without ending the
            // broadcast: the farmer can still go live.
            sfu::SfuEvent::RoomEnded {
                room,
                reason,
                was_live: true,
            } if *reason != sfu::EndReason::Shutdown => (room, BroadcastState::Ended),
            _ => continue,
        };
        let Ok(id) = BroadcastId::parse(room) else {
            continue;
        };
        match store
            .set_broadcast_state(&id, to, domain::UnixMillis::wall_now())
            .await
        {
            Ok(Some(b)) => {
                tracing::info!(broadcast = %id, state = b.state.as_str(), "broadcast state changed");
                live.set_broadcast_state(&id, b.state);
                if b.state == BroadcastState::Ended
                    && let Err(e) = orders.end_offers_of_broadcast(&id).await
                {
                    tracing::error!(broadcast = %id, error = %e, "could not end the broadcast's offers");
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
}

/// Stock, sales and reservation expiries, into the rooms that show them.
/// (Reservations themselves reach the buyer in the answer to their buy.)
pub async fn orders_to_live(orders: OrderService, live: LiveHub) {
    let mut events = orders.events();
    // Title and unit of offers seen, for the sale ticker; and the offers to
    // refresh if this bridge ever falls behind.
    let mut known: HashMap<OfferId, (BroadcastId, domain::ProductTitle, domain::Unit)> =
        HashMap::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "live bridge fell behind the order events; resynchronizing"
                );
                for offer in known.keys() {
                    if let Ok(snapshot) = orders.offer_snapshot(offer).await {
                        live.update_offer(
                            &snapshot.broadcast_id,
                            api::commerce::offer_card(&snapshot),
                        );
                    }
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        match event {
            OfferEvent::Snapshot { snapshot } => {
                known.insert(
                    snapshot.offer_id.clone(),
                    (
                        snapshot.broadcast_id.clone(),
                        snapshot.title.clone(),
                        snapshot.unit.clone(),
                    ),
                );
                live.update_offer(&snapshot.broadcast_id, api::commerce::offer_card(&snapshot));
            }
            OfferEvent::Sale {
                offer_id,
                broadcast_id,
                quantity,
                place,
            } => {
                let described = match known.get(&offer_id) {
                    Some((_, title, unit)) => Some((title.clone(), unit.clone())),
                    None => orders
                        .offer_snapshot(&offer_id)
                        .await
                        .ok()
                        .map(|s| (s.title.clone(), s.unit.clone())),
                };
                if let Some((title, unit)) = described {
                    live.sale(
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
            OfferEvent::ReservationExpired {
                buyer,
                broadcast_id,
                offer_id,
                reservation_id,
            } => live.private(
                &broadcast_id,
                buyer.as_str(),
                PrivateMessage::ReservationExpired {
                    reservation: reservation_id,
                    offer: offer_id,
                },
            ),
            OfferEvent::ReservationHeld { .. } => {}
        }
    }
}
