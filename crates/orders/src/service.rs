//! The order service: the async shell around the per-offer writers, with
//! every permission check, so the HTTP routes and the live channel stay thin.

use crate::idempotency::{Begin, IdempotencyIndex};
use crate::writer::{self, Command, HoldOutcome, OfferHandle, WriterSetup};
use crate::{
    BuyerReservation, Checkout, OfferEvent, OfferSnapshot, OrdersConfig, OrdersError,
    ReservationView, ReserveRequest, StateConflict, csv,
};
use domain::{
    BroadcastId, BroadcastState, Carrier, Fen, FieldCode, Invalid, OfferId, OrderAction, OrderId,
    ReservationId, ReservationState, ShopId, Subject, TrackingNumber, UnixMillis, UserId,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use store::{
    NewOfferRecord, OfferRecord, OrderFilter, OrderProgress, OrderRecord, Store, StoreError,
};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use crate::model::NewOffer;

/// The order service. Cheap to clone; all clones share the same writers.
#[derive(Clone)]
pub struct OrderService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: OrdersConfig,
    writers: RwLock<HashMap<OfferId, OfferHandle>>,
    /// Serializes starting writers, so an offer never gets two.
    spawning: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    keys: IdempotencyIndex,
    persons: Persons,
    events: broadcast::Sender<OfferEvent>,
    stopping: AtomicBool,
}

/// Most guests whose person is remembered; past that the memory starts
/// over (a guest's person never changes, so forgetting costs only a query).
const PERSONS_REMEMBERED: usize = 100_000;

/// Which person each guest stands for (see [`Store::person_of`]), so a tap
/// asks the database once per guest, not once per tap.
#[derive(Default)]
struct Persons {
    known: RwLock<HashMap<Subject, Subject>>,
}

impl Persons {
    async fn of(&self, store: &Store, buyer: &Subject) -> Result<Subject, OrdersError> {
        if buyer.is_account() {
            return Ok(buyer.clone());
        }
        if let Some(person) = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(buyer)
        {
            return Ok(person.clone());
        }
        let person = store.person_of(buyer).await?;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= PERSONS_REMEMBERED {
            known.clear();
        }
        known.insert(buyer.clone(), person.clone());
        Ok(person)
    }
}

/// The most reservations `reservations_of_buyer` lists.
pub const MAX_LISTED_RESERVATIONS: u32 = 100;

/// A held reservation whose time has come is expired, whether or not its
/// expiry has been written yet.
fn state_now(record: &store::ReservationRecord, now: UnixMillis) -> ReservationState {
    match record.state {
        ReservationState::Held if now >= record.expires_at => ReservationState::Expired,
        state => state,
    }
}

fn buyer_reservation(
    record: store::ReservationRecord,
    unit_price: Fen,
    now: UnixMillis,
) -> BuyerReservation {
    BuyerReservation {
        state: state_now(&record, now),
        view: ReservationView {
            total: unit_price.times(record.quantity),
            id: record.id,
            offer_id: record.offer_id,
            quantity: record.quantity,
            unit_price,
            created_at: record.created_at,
            expires_at: record.expires_at,
        },
    }
}

/// Longest idempotency key (HTTP `Idempotency-Key`, or `live:` and a live
/// channel nonce), in characters; the API documents this same number.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 100;

fn check_key(key: &str) -> Result<(), OrdersError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(OrdersError::Validation(vec![
            Invalid::new(
                FieldCode::InvalidIdempotencyKey,
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
            )
            .with("max", MAX_IDEMPOTENCY_KEY_LEN as i64)
            .at("idempotency_key"),
        ]));
    }
    Ok(())
}

impl OrderService {
    /// Starts the service on a migrated store: loads every offer that is
    /// not ended or still holds reservations, rebuilds its counts, held
    /// reservations (re-arming their expiries, firing at once those that
    /// passed while the server was down) and per-buyer tallies, and the
    /// idempotency keys of the last `idempotency_ttl`.
    pub async fn start(store: Store, config: OrdersConfig) -> Result<OrderService, OrdersError> {
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let ttl = config.idempotency_ttl;
        let service = OrderService {
            inner: Arc::new(Inner {
                keys: IdempotencyIndex::new(ttl),
                persons: Persons::default(),
                store,
                config,
                writers: RwLock::new(HashMap::new()),
                spawning: tokio::sync::Mutex::new(()),
                tasks: Mutex::new(Vec::new()),
                events,
                stopping: AtomicBool::new(false),
            }),
        };
        let inner = &service.inner;
        let now = service.now();
        for keyed in inner
            .store
            .keyed_reservations_since(now.saturating_sub(ttl))
            .await?
        {
            let r = keyed.reservation;
            let Some(key) = r.idempotency_key.clone() else {
                continue;
            };
            inner.keys.restore(
                &r.buyer,
                &key,
                ReservationView {
                    total: keyed.unit_price.times(r.quantity),
                    id: r.id,
                    offer_id: r.offer_id,
                    quantity: r.quantity,
                    unit_price: keyed.unit_price,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                },
            );
        }
        let offers = inner.store.offers_to_load().await?;
        let count = offers.len();
        for record in offers {
            service.spawn_writer(record).await?;
        }
        tracing::info!(offers = count, "order service started");
        Ok(service)
    }

    fn now(&self) -> UnixMillis {
        self.inner.config.clock.now()
    }

    /// Every event of every offer; filter by [`OfferEvent::broadcast_id`]
    /// and deliver [`OfferEvent::private_to`] events to that buyer only.
    pub fn events(&self) -> broadcast::Receiver<OfferEvent> {
        self.inner.events.subscribe()
    }

    // ------------------------------------------------------------ offers --

    /// Puts a product on sale in a broadcast. The owner must own the
    /// broadcast's shop, the product must be in that shop, and the broadcast
    /// must not have ended. The offer's units are taken from the product's
    /// stock now and the unsold ones return when the offer ends.
    pub async fn create_offer(
        &self,
        owner: &UserId,
        new: NewOffer,
    ) -> Result<OfferSnapshot, OrdersError> {
        self.check_running()?;
        let store = &self.inner.store;
        let broadcast = store.broadcast(&new.broadcast).await?;
        self.require_owner(owner, &broadcast.shop_id).await?;
        if broadcast.state == BroadcastState::Ended {
            return Err(OrdersError::InvalidState(StateConflict::BroadcastEnded));
        }
        let now = self.now();
        let config = &self.inner.config;
        let hold = new.hold.unwrap_or(config.default_hold);
        let mut errors = Vec::new();
        let mut push = |field: &str, refusal: Invalid| errors.push(refusal.at(field));
        let product = match store.product(&new.product).await {
            Ok(p) if p.shop_id == broadcast.shop_id => Some(p),
            Ok(_) | Err(StoreError::NotFound) => {
                push(
                    "product_id",
                    Invalid::new(FieldCode::NotInShop, "no such product in this shop"),
                );
                None
            }
            Err(e) => return Err(e.into()),
        };
        if new.price.get() <= 0 || new.price.get() > domain::Fen::MAX_PRICE {
            push(
                "price",
                Invalid::new(
                    FieldCode::OutOfRange,
                    "must be more than 0 and at most ¥1,000,000",
                ),
            );
        }
        if new.quantity == 0 || new.quantity > domain::MAX_STOCK {
            push(
                "quantity",
                Invalid::new(
                    FieldCode::OutOfRange,
                    format!("must be 1 to {}", domain::MAX_STOCK),
                )
                .with("min", 1)
                .with("max", domain::MAX_STOCK.into()),
            );
        }
        if new.per_buyer_limit == 0 {
            push(
                "per_buyer_limit",
                Invalid::new(FieldCode::TooSmall, "must be at least 1").with("min", 1),
            );
        }
        if hold < config.min_hold || hold > config.max_hold {
            let (min, max) = (config.min_hold.as_secs(), config.max_hold.as_secs());
            push(
                "hold_secs",
                Invalid::new(
                    FieldCode::OutOfRange,
                    format!("must be {min} to {max} seconds"),
                )
                .with("min", min as i64)
                .with("max", max as i64),
            );
        }
        if let Some(ends_at) = new.ends_at {
            if ends_at <= now {
                push(
                    "ends_at",
                    Invalid::new(FieldCode::InThePast, "must be in the future"),
                );
            } else if new.starts_at.is_some_and(|s| ends_at <= s) {
                push(
                    "ends_at",
                    Invalid::new(FieldCode::BeforeStart, "must be after starts_at"),
                );
            }
        }
        if let Some(p) = &product
            && p.stock < i64::from(new.quantity)
        {
            push(
                "quantity",
                Invalid::new(
                    FieldCode::ExceedsStock,
                    format!("only {} in stock", p.stock),
                )
                .with("max", p.stock),
            );
        }
        let Some(product) = product.filter(|_| errors.is_empty()) else {
            return Err(OrdersError::Validation(errors));
        };
        let record = store
            .create_offer(
                NewOfferRecord {
                    broadcast_id: broadcast.id.clone(),
                    shop_id: broadcast.shop_id.clone(),
                    product_id: product.id.clone(),
                    title: product.title.clone(),
                    unit: product.unit.clone(),
                    ships_on: product.ships_on,
                    price: new.price,
                    quantity: new.quantity,
                    per_buyer_limit: new.per_buyer_limit,
                    buyers: new.buyers,
                    hold_ms: hold.as_millis() as i64,
                    starts_at: new.starts_at,
                    ends_at: new.ends_at,
                },
                now,
            )
            .await
            .map_err(|e| match e {
                // Stock changed between the check and the transaction.
                StoreError::Conflict("stock") => OrdersError::field(
                    "quantity",
                    FieldCode::ExceedsStock,
                    "not that many in stock any more",
                ),
                other => other.into(),
            })?;
        tracing::info!(offer = %record.id, broadcast = %record.broadcast_id, units = new.quantity, "offer created");
        let handle = self.spawn_writer(record).await?;
        let snapshot = handle.snapshot.borrow().clone();
        let _ = self.inner.events.send(OfferEvent::Snapshot {
            snapshot: snapshot.clone(),
        });
        Ok((*snapshot).clone())
    }

    /// Ends an offer now (owner only): its available units go back to the
    /// product. Reservations already held may still be confirmed until they
    /// expire; their units, and those of later cancelled unshipped orders,
    /// go back to the product too. Ending an ended offer is a no-op.
    pub async fn end_offer(
        &self,
        owner: &UserId,
        offer: &OfferId,
    ) -> Result<OfferSnapshot, OrdersError> {
        self.check_running()?;
        let handle = self.writer_for(offer).await?;
        self.require_owner(owner, &handle.info.shop_id).await?;
        self.end_with(&handle).await
    }

    /// Ends every offer of a broadcast (for the server when the broadcast
    /// ends). No permission check: only the system calls this.
    pub async fn end_offers_of_broadcast(
        &self,
        broadcast: &BroadcastId,
    ) -> Result<(), OrdersError> {
        for record in self.inner.store.offers_of_broadcast(broadcast).await? {
            if record.ended_at.is_none() {
                let handle = self.writer_for(&record.id).await?;
                self.end_with(&handle).await?;
            }
        }
        Ok(())
    }

    async fn end_with(&self, handle: &OfferHandle) -> Result<OfferSnapshot, OrdersError> {
        let (reply, answer) = oneshot::channel();
        send(handle, Command::End { reply }).await?;
        answer.await.map_err(|_| OrdersError::Unavailable)?
    }

    /// The offer as a room shows it, from memory when its writer runs.
    pub async fn offer_snapshot(&self, offer: &OfferId) -> Result<OfferSnapshot, OrdersError> {
        let now = self.now();
        if let Some(handle) = self.loaded(offer) {
            return Ok(refreshed(&handle.snapshot.borrow(), now));
        }
        let record = self.inner.store.offer(offer).await?;
        Ok(snapshot_from_record(&record, now))
    }

    /// All offers of a broadcast, oldest first (for a viewer joining the room).
    pub async fn offers_of_broadcast(
        &self,
        broadcast: &BroadcastId,
    ) -> Result<Vec<OfferSnapshot>, OrdersError> {
        let now = self.now();
        let records = self.inner.store.offers_of_broadcast(broadcast).await?;
        Ok(records
            .iter()
            .map(|record| match self.loaded(&record.id) {
                Some(handle) => refreshed(&handle.snapshot.borrow(), now),
                None => snapshot_from_record(record, now),
            })
            .collect())
    }

    // ------------------------------------------------------ reservations --

    /// "Buy now": holds the units at once, or says why not. Answered only
    /// once the reservation is committed. With an idempotency key, a repeat
    /// of the same request (same offer and quantity) gets the same
    /// reservation, also after a restart; the same key with a different
    /// request is [`OrdersError::IdempotencyMismatch`].
    pub async fn reserve(&self, req: ReserveRequest) -> Result<ReservationView, OrdersError> {
        self.reserve_where(req, None).await
    }

    /// [`OrderService::reserve`] from a broadcast's live room: only offers
    /// of that broadcast are sold there (any other is
    /// [`OrdersError::NotFound`], as if it did not exist).
    pub async fn reserve_in(
        &self,
        room: &BroadcastId,
        req: ReserveRequest,
    ) -> Result<ReservationView, OrdersError> {
        self.reserve_where(req, Some(room)).await
    }

    async fn reserve_where(
        &self,
        req: ReserveRequest,
        room: Option<&BroadcastId>,
    ) -> Result<ReservationView, OrdersError> {
        self.check_running()?;
        if req.quantity == 0 {
            return Err(OrdersError::field(
                "quantity",
                FieldCode::TooSmall,
                "must be at least 1",
            ));
        }
        // Before the key is looked at: a banned buyer gets no reservation,
        // not even one held before the ban.
        let handle = self.writer_for(&req.offer).await?;
        if room.is_some_and(|room| *room != handle.info.broadcast_id) {
            return Err(OrdersError::NotFound);
        }
        if self
            .inner
            .store
            .is_chat_banned(&handle.info.shop_id, &req.buyer)
            .await?
        {
            return Err(OrdersError::Banned);
        }
        let ticket = match &req.idempotency_key {
            None => None,
            Some(key) => {
                check_key(key)?;
                match self
                    .inner
                    .keys
                    .begin(&req.buyer, key, &req.offer, req.quantity, self.now())
                {
                    Begin::Replay(view) => return self.replayed(view).await,
                    Begin::Mismatch => return Err(OrdersError::IdempotencyMismatch),
                    Begin::Wait(mut outcome) => {
                        let settled = outcome
                            .wait_for(Option::is_some)
                            .await
                            .map_err(|_| OrdersError::Unavailable)?;
                        return settled.clone().unwrap_or(Err(OrdersError::Unavailable));
                    }
                    Begin::Fresh(ticket) => Some(ticket),
                }
            }
        };
        let person = self.inner.persons.of(&self.inner.store, &req.buyer).await?;
        let account = req.buyer.is_account();
        let (reply, answer) = oneshot::channel();
        send(
            &handle,
            Command::Reserve {
                buyer: req.buyer,
                person,
                account,
                quantity: req.quantity,
                key: req.idempotency_key,
                ticket,
                reply,
            },
        )
        .await?;
        answer.await.map_err(|_| OrdersError::Unavailable)?
    }

    /// The buyer gives a held reservation back; its units are on sale again
    /// at once. Cancelling one that already expired or was cancelled is
    /// fine; one that became an order is not (cancel the order instead).
    pub async fn cancel_reservation(
        &self,
        buyer: &Subject,
        reservation: &ReservationId,
    ) -> Result<(), OrdersError> {
        self.check_running()?;
        let record = self.own_reservation(buyer, reservation).await?;
        if record.state != ReservationState::Held {
            return settled_cancel(record.state);
        }
        let handle = self.writer_for(&record.offer_id).await?;
        let (reply, answer) = oneshot::channel();
        send(
            &handle,
            Command::CancelReservation {
                buyer: buyer.clone(),
                reservation: reservation.clone(),
                reply,
            },
        )
        .await?;
        match answer.await.map_err(|_| OrdersError::Unavailable)? {
            Ok(()) => Ok(()),
            Err(HoldOutcome::NotYours) => Err(OrdersError::Forbidden),
            Err(HoldOutcome::Failed(e)) => Err(e),
            Err(HoldOutcome::NotHeld) => {
                let record = self.inner.store.reservation(reservation).await?;
                settled_cancel(record.state)
            }
        }
    }

    /// Someone banned from a shop loses the units they hold in its offers
    /// at once, so stock a moderator shut them out of goes back on sale
    /// instead of waiting out the hold. Returns how many holds were given
    /// back; holds in other shops are untouched.
    pub async fn release_holds_of_banned(
        &self,
        shop: &ShopId,
        buyer: &Subject,
    ) -> Result<usize, OrdersError> {
        self.check_running()?;
        let mut released = 0;
        let records = self
            .inner
            .store
            .reservations_of_buyer(buyer, MAX_LISTED_RESERVATIONS)
            .await?;
        for record in records {
            if record.state != ReservationState::Held {
                continue;
            }
            // An offer that ended has released its holds already.
            let Ok(handle) = self.writer_for(&record.offer_id).await else {
                continue;
            };
            if handle.info.shop_id != *shop {
                continue;
            }
            let (reply, answer) = oneshot::channel();
            send(
                &handle,
                Command::CancelReservation {
                    buyer: buyer.clone(),
                    reservation: record.id.clone(),
                    reply,
                },
            )
            .await?;
            if answer.await.map_err(|_| OrdersError::Unavailable)?.is_ok() {
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(shop = %shop, released, "holds of a banned buyer released");
        }
        Ok(released)
    }

    /// The buyer confirms a held reservation with where to ship and how to
    /// pay: the order is placed (answered once committed), including its
    /// private token. Confirming the same reservation again returns the same
    /// order, so a double-tapped "submit" is harmless.
    pub async fn confirm(
        &self,
        buyer: &Subject,
        reservation: &ReservationId,
        checkout: Checkout,
    ) -> Result<OrderRecord, OrdersError> {
        self.check_running()?;
        let record = self.own_reservation(buyer, reservation).await?;
        if record.state != ReservationState::Held {
            return self.settled_confirm(&record).await;
        }
        let handle = self.writer_for(&record.offer_id).await?;
        // Banned while the hold was open: the hold is not theirs to keep.
        if self
            .inner
            .store
            .is_chat_banned(&handle.info.shop_id, buyer)
            .await?
        {
            return Err(OrdersError::Banned);
        }
        let (reply, answer) = oneshot::channel();
        send(
            &handle,
            Command::Confirm {
                buyer: buyer.clone(),
                reservation: reservation.clone(),
                checkout,
                reply,
            },
        )
        .await?;
        match answer.await.map_err(|_| OrdersError::Unavailable)? {
            Ok(order) => {
                tracing::info!(order = %order.id, offer = %order.offer_id, quantity = order.quantity, "order placed");
                Ok(order)
            }
            Err(HoldOutcome::NotYours) => Err(OrdersError::Forbidden),
            Err(HoldOutcome::Failed(e)) => Err(e),
            Err(HoldOutcome::NotHeld) => {
                let record = self.inner.store.reservation(reservation).await?;
                self.settled_confirm(&record).await
            }
        }
    }

    async fn own_reservation(
        &self,
        buyer: &Subject,
        reservation: &ReservationId,
    ) -> Result<store::ReservationRecord, OrdersError> {
        let record = self.inner.store.reservation(reservation).await?;
        if record.buyer != *buyer {
            return Err(OrdersError::Forbidden);
        }
        Ok(record)
    }

    /// A repeated keyed tap answers with its reservation only while that
    /// is still held: a hold that expired, was cancelled or became an order
    /// is not held again by asking twice.
    async fn replayed(&self, view: ReservationView) -> Result<ReservationView, OrdersError> {
        let record = self.inner.store.reservation(&view.id).await?;
        match state_now(&record, self.now()) {
            ReservationState::Held => Ok(view),
            ReservationState::Expired => {
                Err(OrdersError::InvalidState(StateConflict::ReservationExpired))
            }
            ReservationState::Cancelled => Err(OrdersError::InvalidState(
                StateConflict::ReservationCancelled,
            )),
            ReservationState::Confirmed => Err(OrdersError::InvalidState(
                StateConflict::ReservationConfirmed,
            )),
        }
    }

    /// One of the buyer's own reservations, in the state it is in now.
    /// Someone else's reads as not found: its existence is not theirs to
    /// learn.
    pub async fn reservation_of_buyer(
        &self,
        buyer: &Subject,
        reservation: &ReservationId,
    ) -> Result<BuyerReservation, OrdersError> {
        let record = match self.own_reservation(buyer, reservation).await {
            Err(OrdersError::Forbidden) => return Err(OrdersError::NotFound),
            other => other?,
        };
        let offer = self.inner.store.offer(&record.offer_id).await?;
        Ok(buyer_reservation(record, offer.price, self.now()))
    }

    /// The buyer's reservations in any state, newest first (at most
    /// [`MAX_LISTED_RESERVATIONS`]).
    pub async fn reservations_of_buyer(
        &self,
        buyer: &Subject,
    ) -> Result<Vec<BuyerReservation>, OrdersError> {
        let records = self
            .inner
            .store
            .reservations_of_buyer(buyer, MAX_LISTED_RESERVATIONS)
            .await?;
        let now = self.now();
        let mut prices: HashMap<OfferId, Fen> = HashMap::new();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let price = match prices.get(&record.offer_id) {
                Some(price) => *price,
                None => {
                    let price = self.inner.store.offer(&record.offer_id).await?.price;
                    prices.insert(record.offer_id.clone(), price);
                    price
                }
            };
            out.push(buyer_reservation(record, price, now));
        }
        Ok(out)
    }

    /// Confirming a reservation that is no longer held.
    async fn settled_confirm(
        &self,
        record: &store::ReservationRecord,
    ) -> Result<OrderRecord, OrdersError> {
        match record.state {
            ReservationState::Confirmed => {
                Ok(self.inner.store.order_of_reservation(&record.id).await?)
            }
            ReservationState::Expired => {
                Err(OrdersError::InvalidState(StateConflict::ReservationExpired))
            }
            ReservationState::Cancelled => Err(OrdersError::InvalidState(
                StateConflict::ReservationCancelled,
            )),
            // Memory no longer holds it yet the database does: its expiry is
            // being written right now.
            ReservationState::Held => {
                Err(OrdersError::InvalidState(StateConflict::ReservationExpired))
            }
        }
    }

    // ----------------------------------------------------------- orders --

    /// The buyer's order page, by the private token from the link.
    pub async fn order_by_token(&self, token: &str) -> Result<OrderRecord, OrdersError> {
        // Tokens are 32 characters of our alphabet; anything else cannot
        // match and costs no query.
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(OrdersError::NotFound);
        }
        Ok(self.inner.store.order_by_token(token).await?)
    }

    /// A signed-in buyer's own orders, newest first.
    pub async fn orders_of_buyer(&self, buyer: &Subject) -> Result<Vec<OrderRecord>, OrdersError> {
        let records = self.inner.store.orders_of_buyer(buyer).await?;
        Ok(records)
    }

    /// A shop's orders for its owner, newest first, filtered.
    pub async fn orders_of_shop(
        &self,
        owner: &UserId,
        shop: &ShopId,
        filter: OrderFilter,
    ) -> Result<Vec<OrderRecord>, OrdersError> {
        self.require_owner(owner, shop).await?;
        let records = self.inner.store.orders_of_shop(shop, &filter).await?;
        Ok(records)
    }

    /// One order, for the shop's owner.
    pub async fn order_for_owner(
        &self,
        owner: &UserId,
        order: &OrderId,
    ) -> Result<OrderRecord, OrdersError> {
        self.owned_order(owner, order).await
    }

    /// The farmer saw the transfer (or took the cash ahead).
    pub async fn mark_paid(
        &self,
        owner: &UserId,
        order: &OrderId,
    ) -> Result<OrderRecord, OrdersError> {
        self.progress(owner, order, OrderAction::MarkPaid, None, None)
            .await
    }

    /// Handed to the courier. Transfer orders must be paid first; cash on
    /// delivery orders ship unpaid.
    pub async fn mark_shipped(
        &self,
        owner: &UserId,
        order: &OrderId,
        carrier: Carrier,
        tracking_number: TrackingNumber,
    ) -> Result<OrderRecord, OrdersError> {
        self.progress(
            owner,
            order,
            OrderAction::Ship,
            Some((&carrier, &tracking_number)),
            None,
        )
        .await
    }

    pub async fn mark_delivered(
        &self,
        owner: &UserId,
        order: &OrderId,
    ) -> Result<OrderRecord, OrdersError> {
        self.progress(owner, order, OrderAction::Deliver, None, None)
            .await
    }

    /// Cancels an order with a reason. An unshipped (placed or paid) order's
    /// units return: to the offer while it is still on sale, so another
    /// viewer can buy them, otherwise to the product's stock. A shipped
    /// order's units are not returned automatically (the parcel is on the
    /// road; the farmer counts it back in when it is home).
    pub async fn cancel_order(
        &self,
        owner: &UserId,
        order: &OrderId,
        reason: domain::Reason,
    ) -> Result<OrderRecord, OrdersError> {
        self.progress(owner, order, OrderAction::Cancel, None, Some(reason))
            .await
    }

    async fn owned_order(
        &self,
        owner: &UserId,
        order: &OrderId,
    ) -> Result<OrderRecord, OrdersError> {
        let record = self.inner.store.order(order).await?;
        self.require_owner(owner, &record.shop_id).await?;
        Ok(record)
    }

    async fn progress(
        &self,
        owner: &UserId,
        order: &OrderId,
        action: OrderAction,
        shipping: Option<(&Carrier, &TrackingNumber)>,
        reason: Option<domain::Reason>,
    ) -> Result<OrderRecord, OrdersError> {
        self.check_running()?;
        let record = self.owned_order(owner, order).await?;
        let span = tracing::info_span!("order_progress", order = %order, action = action.as_str());
        async move {
            let from = record.state;
            let to = from
                .apply(action, record.payment_method)
                .map_err(|e| OrdersError::InvalidState(e.into()))?;
            let applied = if action == OrderAction::Cancel && from.cancel_returns_units() {
                // Units change hands: the offer's writer does it, in order
                // with everything else that moves its counts.
                let handle = self.writer_for(&record.offer_id).await?;
                let person = self
                    .inner
                    .persons
                    .of(&self.inner.store, &record.buyer)
                    .await?;
                let (reply, answer) = oneshot::channel();
                send(
                    &handle,
                    Command::CancelOrder {
                        order: record.id.clone(),
                        person,
                        quantity: record.quantity,
                        from,
                        reason: reason
                            .clone()
                            .unwrap_or_else(|| domain::Reason::from_trusted(String::new())),
                        reply,
                    },
                )
                .await?;
                answer.await.map_err(|_| OrdersError::Unavailable)??
            } else {
                self.inner
                    .store
                    .update_order_state(
                        order,
                        OrderProgress {
                            from,
                            to,
                            at: self.now(),
                            shipping,
                            cancel_reason: reason.as_ref(),
                        },
                    )
                    .await?
            };
            let now = self.inner.store.order(order).await?;
            if !applied {
                // Someone else moved it first; explain from where it is now.
                let e = now.state.apply(action, now.payment_method).err().unwrap_or(
                    domain::OrderTransitionError {
                        from: now.state,
                        action,
                    },
                );
                return Err(OrdersError::InvalidState(e.into()));
            }
            tracing::info!(from = from.as_str(), to = to.as_str(), "order moved");
            Ok(now)
        }
        .instrument(span)
        .await
    }

    /// The shop's orders as CSV for shipping: UTF-8 with a byte-order mark
    /// (so Excel shows Chinese correctly), CRLF line ends, RFC 4180 quoting,
    /// in the farmer's language and time zone.
    pub async fn export_csv(
        &self,
        owner: &UserId,
        shop: &ShopId,
        filter: OrderFilter,
        sheet: csv::SheetOptions,
    ) -> Result<String, OrdersError> {
        let orders = self.orders_of_shop(owner, shop, filter).await?;
        Ok(csv::shipping_sheet(
            &orders,
            sheet
                .utc_offset_minutes
                .unwrap_or(self.inner.config.export_utc_offset_minutes),
            sheet.language,
        ))
    }

    // -------------------------------------------------------- lifecycle --

    /// Stops taking new work, lets every writer finish and commit what it
    /// was asked before, and stops their timers. Held reservations stay in
    /// the database and are re-armed by the next `start`.
    pub async fn shutdown(&self) {
        {
            // No writer is being started while the flag flips, so every
            // writer is either in the map below or never starts.
            let _guard = self.inner.spawning.lock().await;
            self.inner.stopping.store(true, Ordering::SeqCst);
        }
        let handles: Vec<OfferHandle> = self.read_writers().values().cloned().collect();
        for handle in handles {
            let _ = handle.tx.send(Command::Stop).await;
        }
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        tracing::info!("order service stopped");
    }

    fn check_running(&self) -> Result<(), OrdersError> {
        if self.inner.stopping.load(Ordering::Relaxed) {
            Err(OrdersError::Unavailable)
        } else {
            Ok(())
        }
    }

    async fn require_owner(&self, owner: &UserId, shop: &ShopId) -> Result<(), OrdersError> {
        let shop = self.inner.store.shop(shop).await?;
        if &shop.owner_id == owner {
            Ok(())
        } else {
            Err(OrdersError::Forbidden)
        }
    }

    fn read_writers(&self) -> std::sync::RwLockReadGuard<'_, HashMap<OfferId, OfferHandle>> {
        self.inner.writers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn loaded(&self, offer: &OfferId) -> Option<OfferHandle> {
        self.read_writers().get(offer).cloned()
    }

    /// The writer of an offer, started from the database on first use
    /// (offers that had ended before the last start are loaded lazily).
    async fn writer_for(&self, offer: &OfferId) -> Result<OfferHandle, OrdersError> {
        if let Some(handle) = self.loaded(offer) {
            return Ok(handle);
        }
        let record = self.inner.store.offer(offer).await?;
        self.spawn_writer(record).await
    }

    async fn spawn_writer(&self, record: OfferRecord) -> Result<OfferHandle, OrdersError> {
        let _guard = self.inner.spawning.lock().await;
        if let Some(handle) = self.loaded(&record.id) {
            return Ok(handle);
        }
        self.check_running()?;
        // Re-read under the lock: the record may predate a writer that ran
        // and stopped meanwhile.
        let record = self.inner.store.offer(&record.id).await?;
        let ledger = writer::load_ledger(&self.inner.store, &record).await?;
        let config = &self.inner.config;
        let id = record.id.clone();
        let (handle, task) = writer::spawn(
            WriterSetup {
                store: self.inner.store.clone(),
                clock: config.clock,
                events: self.inner.events.clone(),
                max_group: config.max_group,
                command_capacity: config.command_capacity,
            },
            record,
            ledger,
        );
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        self.inner
            .writers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle.clone());
        Ok(handle)
    }
}

async fn send(handle: &OfferHandle, command: Command) -> Result<(), OrdersError> {
    handle
        .tx
        .send(command)
        .await
        .map_err(|_| OrdersError::Unavailable)
}

fn settled_cancel(state: ReservationState) -> Result<(), OrdersError> {
    match state {
        ReservationState::Cancelled | ReservationState::Expired | ReservationState::Held => Ok(()),
        ReservationState::Confirmed => Err(OrdersError::InvalidState(
            StateConflict::ReservationConfirmed,
        )),
    }
}

fn refreshed(snapshot: &OfferSnapshot, now: UnixMillis) -> OfferSnapshot {
    let mut s = snapshot.clone();
    s.state = domain::OfferState::at(now, s.starts_at, s.ends_at, s.ended_at, &s.counts);
    s.as_of = now;
    s
}

fn snapshot_from_record(r: &OfferRecord, now: UnixMillis) -> OfferSnapshot {
    OfferSnapshot {
        offer_id: r.id.clone(),
        broadcast_id: r.broadcast_id.clone(),
        shop_id: r.shop_id.clone(),
        product_id: r.product_id.clone(),
        title: r.title.clone(),
        unit: r.unit.clone(),
        price: r.price,
        per_buyer_limit: r.per_buyer_limit,
        buyers: r.buyers,
        hold_secs: u32::try_from(r.hold_ms / 1000).unwrap_or(u32::MAX),
        starts_at: r.starts_at,
        ends_at: r.ends_at,
        ended_at: r.ended_at,
        ships_on: r.ships_on,
        state: domain::OfferState::at(now, r.starts_at, r.ends_at, r.ended_at, &r.counts),
        counts: r.counts,
        as_of: now,
    }
}
