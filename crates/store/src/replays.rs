//! What a replay's chapters are made of, read from what was stored live:
//! each offer's opening and first sell-out (the `offers` table) and each pin
//! and unpin of an offer (the moderation log, where the room writes them).
//! The chat comes from [`Store::chat_for_replay`].

use crate::millis;
use crate::{Store, StoreError};
use domain::{BroadcastId, Fen, OfferId, ProductId, ProductTitle, Unit, UnixMillis};

/// One offer of a broadcast, with the moments a replay marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferMoments {
    pub offer_id: OfferId,
    pub product_id: ProductId,
    pub title: ProductTitle,
    pub unit: Unit,
    pub price: Fen,
    /// When it went on sale: its start time if it was given one, else when it was made.
    pub opened_at: UnixMillis,
    /// When its available count first reached zero.
    pub sold_out_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
}

/// A pin or unpin of an offer on the live screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinMoment {
    pub offer_id: OfferId,
    /// `true` pinned, `false` unpinned.
    pub pinned: bool,
    pub at: UnixMillis,
}

/// The offer a moderation-log `detail` names: the room writes
/// `"<offer id>: <title>"` for a pin and `"<offer id>"` for an unpin.
fn logged_offer(detail: &str) -> Option<OfferId> {
    let id = detail.split(':').next()?.trim();
    OfferId::parse(id).ok()
}

impl Store {
    /// The broadcast's offers, in the order they were made.
    pub async fn offer_moments(
        &self,
        broadcast: &BroadcastId,
    ) -> Result<Vec<OfferMoments>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, product_id, title, unit, price_fen, created_at, starts_at, sold_out_at, ended_at \
             FROM offers WHERE broadcast_id = $1 ORDER BY created_at, id",
        )
        .bind(broadcast.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, product, title, unit, price, created, starts, sold_out, ended)| {
                    OfferMoments {
                        offer_id: OfferId::from_trusted(id),
                        product_id: ProductId::from_trusted(product),
                        title: ProductTitle::from_trusted(title),
                        unit: Unit::from_trusted(unit),
                        price: Fen::from_trusted(price),
                        opened_at: millis(starts.map_or(created, |s| s.max(created))),
                        sold_out_at: millis(sold_out),
                        ended_at: millis(ended),
                    }
                },
            )
            .collect())
    }

    /// Every pin and unpin of an offer in the broadcast, in order.
    pub async fn pin_moments(&self, broadcast: &BroadcastId) -> Result<Vec<PinMoment>, StoreError> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT action, detail, created_at FROM moderation_log \
             WHERE broadcast_id = $1 AND action IN ('pin_offer', 'unpin_offer') ORDER BY ordinal",
        )
        .bind(broadcast.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(action, detail, at)| {
                Some(PinMoment {
                    offer_id: logged_offer(detail.as_deref()?)?,
                    pinned: action == "pin_offer",
                    at: millis(at),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_offer_is_read_from_pins_and_unpins() {
        let id = OfferId::generate();
        assert_eq!(logged_offer(&format!("{id}: 小米: 新米")), Some(id.clone()));
        assert_eq!(logged_offer(id.as_str()), Some(id));
        assert_eq!(logged_offer("not an offer"), None);
    }
}
