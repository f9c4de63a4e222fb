//! The live channel's "buy" and offer cards, answered by the order service.
//! The live hub holds no stock: it asks here, and the order service's
//! events come back to it through the server's event bridge.

use async_trait::async_trait;
use domain::{BroadcastId, OfferId};
use live::{Commerce, Participant};
use orders::{OfferSnapshot, OrderService, OrdersError, ReserveRequest};
use protocol::{BuyRefusal, BuyRefusalCode, OfferCard, ReservationInfo, Timestamp};

/// [`Commerce`] over the [`OrderService`].
pub struct OrderCommerce {
    orders: OrderService,
}

impl OrderCommerce {
    pub fn new(orders: OrderService) -> Self {
        Self { orders }
    }
}

/// The wire card for an offer snapshot.
pub fn offer_card(s: &OfferSnapshot) -> OfferCard {
    OfferCard {
        offer: s.offer_id.clone(),
        title: s.title.clone(),
        unit: s.unit.clone(),
        price_fen: s.price,
        available: s.counts.available,
        sold: s.counts.sold,
        state: s.state,
        starts_at: s.starts_at.map(Timestamp),
        ends_at: s.ends_at.map(Timestamp),
        ships_on: s.ships_on,
        max_per_buyer: Some(s.per_buyer_limit),
        buyers: s.buyers,
    }
}

fn buy_refusal(e: OrdersError) -> BuyRefusal {
    match e {
        OrdersError::SoldOut { available: 0 } => {
            BuyRefusal::new(BuyRefusalCode::SoldOut, "sold out")
        }
        OrdersError::SoldOut { available } => BuyRefusal {
            available: Some(available),
            ..BuyRefusal::new(
                BuyRefusalCode::InsufficientStock,
                format!("only {available} left"),
            )
        },
        OrdersError::OverLimit { limit, already } => BuyRefusal {
            limit: Some(limit),
            already: Some(already),
            ..BuyRefusal::new(
                BuyRefusalCode::LimitReached,
                format!("at most {limit} per buyer; you already have {already}"),
            )
        },
        OrdersError::AccountRequired => BuyRefusal::new(
            BuyRefusalCode::AccountRequired,
            "this offer is for buyers signed in with a mobile account",
        ),
        OrdersError::NotStarted { .. } => {
            BuyRefusal::new(BuyRefusalCode::NotOnSale, "not on sale yet")
        }
        OrdersError::Ended
        | OrdersError::NotFound
        | OrdersError::Forbidden
        | OrdersError::Banned => BuyRefusal::new(BuyRefusalCode::NotOnSale, "not on sale"),
        OrdersError::Validation(errors) => BuyRefusal::new(
            BuyRefusalCode::InvalidQuantity,
            errors
                .first()
                .map_or_else(|| "invalid quantity".to_owned(), |e| e.message.clone()),
        ),
        OrdersError::IdempotencyMismatch => BuyRefusal::new(
            BuyRefusalCode::InvalidQuantity,
            "this nonce was already used for a different buy",
        ),
        OrdersError::InvalidState(c) => BuyRefusal::new(BuyRefusalCode::NotOnSale, c.to_string()),
        OrdersError::Unavailable => {
            BuyRefusal::new(BuyRefusalCode::Unavailable, "busy; please try again")
        }
        OrdersError::Store(e) => {
            tracing::error!(error = %e, "buy from the live channel failed in storage");
            BuyRefusal::new(BuyRefusalCode::Unavailable, "please try again")
        }
    }
}

#[async_trait]
impl Commerce for OrderCommerce {
    async fn buy(
        &self,
        room: &BroadcastId,
        buyer: &Participant,
        offer: &OfferId,
        quantity: u32,
        nonce: &str,
    ) -> Result<ReservationInfo, BuyRefusal> {
        let reservation = self
            .orders
            .reserve_in(
                room,
                ReserveRequest {
                    offer: offer.clone(),
                    // The room's participant came from a parsed identity.
                    buyer: domain::Subject::from_trusted(buyer.subject.as_str()),
                    quantity,
                    // Namespaced so a nonce can never collide with an HTTP
                    // Idempotency-Key of the same buyer.
                    idempotency_key: Some(format!("live:{nonce}")),
                },
            )
            .await
            .map_err(buy_refusal)?;
        Ok(ReservationInfo {
            reservation: reservation.id,
            offer: reservation.offer_id,
            quantity: reservation.quantity,
            unit_price_fen: reservation.unit_price,
            total_fen: reservation.total,
            expires_at: Timestamp(reservation.expires_at),
            nonce: Some(nonce.to_owned()),
        })
    }

    async fn offer_card(&self, room: &BroadcastId, offer: &OfferId) -> Option<OfferCard> {
        match self.orders.offer_snapshot(offer).await {
            Ok(s) if &s.broadcast_id == room => Some(offer_card(&s)),
            _ => None,
        }
    }
}
