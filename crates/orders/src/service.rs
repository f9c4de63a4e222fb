//! The order service: the async shell around the per-offer writers, with
//! every permission check, so the HTTP routes and the live channel stay thin.

use crate::idempotency::{Begin, IdempotencyIndex};
use crate::placement::{
    Answer, Call, ForwardedCalls, OfferClaim, Placement, Unreachable, WireAnswer,
};
use crate::writer::{self, Command, EventSink, HoldOutcome, OfferHandle, WriterSetup};
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

pub(crate) struct Inner {
    store: Store,
    config: OrdersConfig,
    writers: RwLock<HashMap<OfferId, OfferHandle>>,
    /// Cluster mode: which node writes which offer.
    placement: Option<Arc<dyn Placement>>,
    /// Offers another node writes, as learnt lately (see [`ELSEWHERE_FOR`]).
    elsewhere: Mutex<HashMap<OfferId, (Arc<OfferRecord>, std::time::Instant)>>,
    /// Serializes starting writers, so an offer never gets two.
    spawning: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    keys: IdempotencyIndex,
    persons: Persons,
    events: EventSink,
    stopping: AtomicBool,
}

/// How long "another node writes this offer" is believed without asking
/// the cluster again; a call it cannot deliver forgets it at once.
const ELSEWHERE_FOR: std::time::Duration = std::time::Duration::from_secs(2);
/// Most offers remembered as written elsewhere; past it the memory starts over.
const ELSEWHERE_REMEMBERED: usize = 10_000;
/// How long a call waits for an offer's writer to be reachable again (its
/// node died: the lease runs out, another node takes over and rebuilds).
const FAILOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(12);
/// Pause between attempts to reach a writer that is moving.
const FAILOVER_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// How often a cluster node looks for live offers nobody writes (their
/// node died) and takes them over, so holds still expire.
const ADOPT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where an offer's writer is.
enum Route {
    Here(OfferHandle),
    Elsewhere(Arc<dyn Placement>),
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
        Self::start_placed(store, config, None).await
    }

    /// [`OrderService::start`] on one node of a cluster: an offer is written
    /// by the node holding its claim; calls for offers written elsewhere are
    /// forwarded there, and live offers nobody writes are taken over.
    /// [`OrderService::outward_events`] are this node's writers' events, for
    /// the other nodes.
    pub async fn start_in_cluster(
        store: Store,
        config: OrdersConfig,
        placement: Arc<dyn Placement>,
    ) -> Result<OrderService, OrdersError> {
        Self::start_placed(store, config, Some(placement)).await
    }

    async fn start_placed(
        store: Store,
        config: OrdersConfig,
        placement: Option<Arc<dyn Placement>>,
    ) -> Result<OrderService, OrdersError> {
        let capacity = config.event_capacity.max(16);
        let (local, _) = broadcast::channel(capacity);
        let outward = placement.is_some().then(|| broadcast::channel(capacity).0);
        let ttl = config.idempotency_ttl;
        let service = OrderService {
            inner: Arc::new(Inner {
                keys: IdempotencyIndex::new(ttl),
                persons: Persons::default(),
                store,
                config,
                writers: RwLock::new(HashMap::new()),
                placement,
                elsewhere: Mutex::new(HashMap::new()),
                spawning: tokio::sync::Mutex::new(()),
                tasks: Mutex::new(Vec::new()),
                events: EventSink { local, outward },
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
            service.restore_key(keyed);
        }
        let offers = inner.store.offers_to_load().await?;
        let count = offers.len();
        let mut here = 0;
        for record in offers {
            if service.spawn_writer(record).await?.is_some() {
                here += 1;
            }
        }
        if inner.placement.is_some() {
            let task = tokio::spawn(adopt_orphans(Arc::downgrade(inner)));
            lock(&inner.tasks).push(task);
        }
        tracing::info!(offers = count, written_here = here, "order service started");
        Ok(service)
    }

    /// Remembers a committed keyed tap, so its repeat gets the same answer.
    fn restore_key(&self, keyed: store::KeyedReservationRecord) {
        let r = keyed.reservation;
        let Some(key) = r.idempotency_key.clone() else {
            return;
        };
        self.inner.keys.restore(
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

    pub(crate) fn from_inner(inner: Arc<Inner>) -> OrderService {
        OrderService { inner }
    }

    fn now(&self) -> UnixMillis {
        self.inner.config.clock.now()
    }

    /// Every event of every offer; filter by [`OfferEvent::broadcast_id`]
    /// and deliver [`OfferEvent::private_to`] events to that buyer only.
    pub fn events(&self) -> broadcast::Receiver<OfferEvent> {
        self.inner.events.local.subscribe()
    }

    /// Cluster mode: the events of the offers this node writes, for the
    /// other nodes' rooms (each node hands them to
    /// [`OrderService::apply_remote_event`]). `None` on a single server.
    pub fn outward_events(&self) -> Option<broadcast::Receiver<OfferEvent>> {
        self.inner.events.outward.as_ref().map(|o| o.subscribe())
    }

    /// An event of an offer another node writes: this node's rooms hear it
    /// as if it were written here.
    pub fn apply_remote_event(&self, event: OfferEvent) {
        if let OfferEvent::Snapshot { snapshot } = &event
            && self.loaded(&snapshot.offer_id).is_some()
        {
            // Written here now (it moved): this node's own snapshots rule.
            return;
        }
        let _ = self.inner.events.local.send(event);
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
        let snapshot = match self.spawn_writer(record.clone()).await? {
            Some(handle) => handle.snapshot.borrow().clone(),
            // Cluster mode: another node took it over at once (it looks for
            // offers nobody writes); it is on sale all the same.
            None => Arc::new(snapshot_from_record(&record, self.now())),
        };
        self.inner.events.send(OfferEvent::Snapshot {
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
        let info = self.offer_info(offer).await?;
        self.require_owner(owner, &info.shop_id).await?;
        self.end_with(offer).await
    }

    /// Ends every offer of a broadcast (for the server when the broadcast
    /// ends). No permission check: only the system calls this.
    pub async fn end_offers_of_broadcast(
        &self,
        broadcast: &BroadcastId,
    ) -> Result<(), OrdersError> {
        for record in self.inner.store.offers_of_broadcast(broadcast).await? {
            if record.ended_at.is_none() {
                self.end_with(&record.id).await?;
            }
        }
        Ok(())
    }

    async fn end_with(&self, offer: &OfferId) -> Result<OfferSnapshot, OrdersError> {
        match self.on_writer(offer, Call::End).await? {
            Answer::Ended(result) => result,
            _ => Err(mismatched()),
        }
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
        if let Some(key) = &req.idempotency_key {
            check_key(key)?;
        }
        let call = Call::Reserve {
            buyer: req.buyer,
            quantity: req.quantity,
            key: req.idempotency_key,
            room: room.cloned(),
        };
        match self.on_writer(&req.offer, call).await? {
            Answer::Reserved(result) => result,
            _ => Err(mismatched()),
        }
    }

    /// A tap, on the node that writes the offer.
    async fn reserve_here(
        &self,
        handle: &OfferHandle,
        req: ReserveRequest,
        room: Option<&BroadcastId>,
    ) -> Result<ReservationView, OrdersError> {
        // Before the key is looked at: a banned buyer gets no reservation,
        // not even one held before the ban.
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
            handle,
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
        let call = Call::CancelReservation {
            buyer: buyer.clone(),
            reservation: reservation.clone(),
        };
        let Answer::Cancelled(result) = self.on_writer(&record.offer_id, call).await? else {
            return Err(mismatched());
        };
        match result {
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
            let Ok(info) = self.offer_info(&record.offer_id).await else {
                continue;
            };
            if info.shop_id != *shop {
                continue;
            }
            let call = Call::CancelReservation {
                buyer: buyer.clone(),
                reservation: record.id.clone(),
            };
            // A writer that cannot be reached keeps the hold until it
            // expires; the ban already refuses its confirmation.
            if let Ok(Answer::Cancelled(Ok(()))) = self.on_writer(&record.offer_id, call).await {
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
        let info = self.offer_info(&record.offer_id).await?;
        // Banned while the hold was open: the hold is not theirs to keep.
        if self
            .inner
            .store
            .is_chat_banned(&info.shop_id, buyer)
            .await?
        {
            return Err(OrdersError::Banned);
        }
        let call = Call::Confirm {
            buyer: buyer.clone(),
            reservation: reservation.clone(),
            checkout,
        };
        let Answer::Confirmed(result) = self.on_writer(&record.offer_id, call).await? else {
            return Err(mismatched());
        };
        match result {
            Ok(order) => {
                tracing::info!(order = %order.id, offer = %order.offer_id, quantity = order.quantity, "order placed");
                Ok(*order)
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
                let person = self
                    .inner
                    .persons
                    .of(&self.inner.store, &record.buyer)
                    .await?;
                let call = Call::CancelOrder {
                    order: record.id.clone(),
                    person,
                    quantity: record.quantity,
                    from,
                    reason: reason
                        .clone()
                        .unwrap_or_else(|| domain::Reason::from_trusted(String::new())),
                };
                match self.on_writer(&record.offer_id, call).await? {
                    Answer::OrderCancelled(result) => result?,
                    _ => return Err(mismatched()),
                }
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

    /// The offer's writer on this node, if it runs here (a writer that
    /// stopped, e.g. because it lost its claim, does not count).
    fn loaded(&self, offer: &OfferId) -> Option<OfferHandle> {
        self.read_writers()
            .get(offer)
            .filter(|handle| !handle.tx.is_closed())
            .cloned()
    }

    /// What does not change about an offer (its shop, broadcast, product),
    /// from memory when this node writes it or knows who does.
    async fn offer_info(&self, offer: &OfferId) -> Result<Arc<OfferRecord>, OrdersError> {
        if let Some(handle) = self.loaded(offer) {
            return Ok(handle.info);
        }
        if let Some((info, _)) = lock(&self.inner.elsewhere).get(offer) {
            return Ok(info.clone());
        }
        Ok(Arc::new(self.inner.store.offer(offer).await?))
    }

    /// Where the offer's writer is: here (started from the database on
    /// first use; offers that had ended before the last start are loaded
    /// lazily), or, in cluster mode, on the node holding its claim.
    async fn route(&self, offer: &OfferId) -> Result<Route, OrdersError> {
        if let Some(handle) = self.loaded(offer) {
            return Ok(Route::Here(handle));
        }
        let placement = self.inner.placement.clone();
        if let Some(placement) = &placement {
            let known = lock(&self.inner.elsewhere)
                .get(offer)
                .is_some_and(|(_, until)| *until > std::time::Instant::now());
            if known {
                return Ok(Route::Elsewhere(placement.clone()));
            }
        }
        let record = self.inner.store.offer(offer).await?;
        match (self.spawn_writer(record.clone()).await?, placement) {
            (Some(handle), _) => Ok(Route::Here(handle)),
            (None, Some(placement)) => {
                let mut elsewhere = lock(&self.inner.elsewhere);
                if elsewhere.len() >= ELSEWHERE_REMEMBERED {
                    elsewhere.clear();
                }
                elsewhere.insert(
                    offer.clone(),
                    (Arc::new(record), std::time::Instant::now() + ELSEWHERE_FOR),
                );
                Ok(Route::Elsewhere(placement))
            }
            (None, None) => Err(OrdersError::Unavailable),
        }
    }

    /// Asks the offer's writer, wherever it runs. A writer that is moving
    /// (its node died or handed it over) is waited for up to
    /// [`FAILOVER_WAIT`]; a call that may have been done but got no answer
    /// is repeated only if that is harmless (a tap with an idempotency key,
    /// an end), else the caller hears "unavailable".
    async fn on_writer(&self, offer: &OfferId, call: Call) -> Result<Answer, OrdersError> {
        let give_up = std::time::Instant::now() + FAILOVER_WAIT;
        loop {
            let placement = match self.route(offer).await? {
                Route::Here(handle) => match self.answer_here(&handle, call.clone()).await {
                    // It stopped between the lookup and the call (its claim
                    // was lost): nothing was done, look again.
                    Answer::NotHere => None,
                    answer => return Ok(answer),
                },
                Route::Elsewhere(placement) => Some(placement),
            };
            if let Some(placement) = placement {
                let encoded = serde_json::to_vec(&call).expect("a call serializes");
                match placement.forward(offer, encoded).await {
                    Ok(bytes) => match serde_json::from_slice::<WireAnswer>(&bytes) {
                        Ok(WireAnswer::NotHere) => {}
                        Ok(answer) => return self.answer_from_wire(answer).await,
                        Err(e) => {
                            tracing::error!(%offer, error = %e, "unreadable answer from the offer's node");
                            return Err(OrdersError::Unavailable);
                        }
                    },
                    Err(Unreachable::NoWriter) => {}
                    // Asking again cannot do it twice: the writer, old or
                    // new, answers a known key with what it answered.
                    Err(Unreachable::Unknown) if call.is_repeatable() => {}
                    Err(Unreachable::Unknown) => return Err(OrdersError::Unavailable),
                }
            }
            lock(&self.inner.elsewhere).remove(offer);
            self.check_running()?;
            if std::time::Instant::now() >= give_up {
                tracing::warn!(%offer, "no node writes this offer; the call is refused");
                return Err(OrdersError::Unavailable);
            }
            tokio::time::sleep(FAILOVER_RETRY).await;
        }
    }

    /// A forwarded answer as a local one.
    async fn answer_from_wire(&self, answer: WireAnswer) -> Result<Answer, OrdersError> {
        Ok(match answer {
            WireAnswer::Reserved { result } => {
                Answer::Reserved(result.map(ReservationView::from).map_err(Into::into))
            }
            WireAnswer::Confirmed { result } => Answer::Confirmed(match result {
                // Committed on the writer's node, so it is in the database.
                Ok(order) => Ok(Box::new(self.inner.store.order(&order).await?)),
                Err(hold) => Err(hold.into()),
            }),
            WireAnswer::Cancelled { result } => Answer::Cancelled(result.map_err(Into::into)),
            WireAnswer::OrderCancelled { result } => {
                Answer::OrderCancelled(result.map_err(Into::into))
            }
            WireAnswer::Ended { result } => Answer::Ended(result.map_err(Into::into)),
            WireAnswer::NotHere => Answer::NotHere,
            WireAnswer::Unreadable => return Err(OrdersError::Unavailable),
        })
    }

    /// A call another node forwarded for an offer this node claimed.
    pub(crate) async fn answer_forwarded(&self, offer: &OfferId, call: Call) -> Answer {
        if self.check_running().is_err() {
            return Answer::NotHere;
        }
        let handle = match self.loaded(offer) {
            Some(handle) => Some(handle),
            None => {
                // Claimed, and still being started: that holds this lock
                // until the writer is in the map.
                let _starting = self.inner.spawning.lock().await;
                self.loaded(offer)
            }
        };
        match handle {
            Some(handle) => self.answer_here(&handle, call).await,
            None => Answer::NotHere,
        }
    }

    /// Runs a call on this node's writer of the offer.
    async fn answer_here(&self, handle: &OfferHandle, call: Call) -> Answer {
        // A writer that stopped has not done the call: the caller looks again.
        fn gone<T, E>(e: E) -> Result<T, E> {
            Err(e)
        }
        match call {
            Call::Reserve {
                buyer,
                quantity,
                key,
                room,
            } => {
                let req = ReserveRequest {
                    offer: handle.info.id.clone(),
                    buyer,
                    quantity,
                    idempotency_key: key,
                };
                match self.reserve_here(handle, req, room.as_ref()).await {
                    Err(OrdersError::Unavailable) if handle.tx.is_closed() => Answer::NotHere,
                    result => Answer::Reserved(result),
                }
            }
            Call::Confirm {
                buyer,
                reservation,
                checkout,
            } => {
                let (reply, answer) = oneshot::channel();
                let command = Command::Confirm {
                    buyer,
                    reservation,
                    checkout,
                    reply,
                };
                if send(handle, command).await.is_err() {
                    return Answer::NotHere;
                }
                Answer::Confirmed(
                    answer
                        .await
                        .unwrap_or_else(|_| gone(HoldOutcome::Failed(OrdersError::Unavailable)))
                        .map(Box::new),
                )
            }
            Call::CancelReservation { buyer, reservation } => {
                let (reply, answer) = oneshot::channel();
                let command = Command::CancelReservation {
                    buyer,
                    reservation,
                    reply,
                };
                if send(handle, command).await.is_err() {
                    return Answer::NotHere;
                }
                Answer::Cancelled(
                    answer
                        .await
                        .unwrap_or_else(|_| gone(HoldOutcome::Failed(OrdersError::Unavailable))),
                )
            }
            Call::CancelOrder {
                order,
                person,
                quantity,
                from,
                reason,
            } => {
                let (reply, answer) = oneshot::channel();
                let command = Command::CancelOrder {
                    order,
                    person,
                    quantity,
                    from,
                    reason,
                    reply,
                };
                if send(handle, command).await.is_err() {
                    return Answer::NotHere;
                }
                Answer::OrderCancelled(
                    answer
                        .await
                        .unwrap_or_else(|_| gone(OrdersError::Unavailable)),
                )
            }
            Call::End => {
                let (reply, answer) = oneshot::channel();
                if send(handle, Command::End { reply }).await.is_err() {
                    return Answer::NotHere;
                }
                Answer::Ended(
                    answer
                        .await
                        .unwrap_or_else(|_| gone(OrdersError::Unavailable)),
                )
            }
        }
    }

    /// Starts the offer's writer here. `Ok(None)` in cluster mode when
    /// another node holds the offer's claim.
    async fn spawn_writer(&self, record: OfferRecord) -> Result<Option<OfferHandle>, OrdersError> {
        let _guard = self.inner.spawning.lock().await;
        if let Some(handle) = self.loaded(&record.id) {
            return Ok(Some(handle));
        }
        self.check_running()?;
        let claim = match &self.inner.placement {
            None => None,
            Some(placement) => {
                let calls = ForwardedCalls {
                    service: Arc::downgrade(&self.inner),
                    offer: record.id.clone(),
                };
                match placement.claim(&record.id, calls).await? {
                    Some(claim) => Some(claim),
                    None => return Ok(None),
                }
            }
        };
        match self.start_writer(&record.id, claim.clone()).await {
            Ok(handle) => Ok(handle),
            Err(e) => {
                if let Some(claim) = claim {
                    claim.release().await;
                }
                Err(e)
            }
        }
    }

    async fn start_writer(
        &self,
        offer: &OfferId,
        claim: Option<Arc<dyn OfferClaim>>,
    ) -> Result<Option<OfferHandle>, OrdersError> {
        let store = &self.inner.store;
        if let Some(claim) = &claim {
            // Fenced before it is read: everything an older writer
            // committed is in what is read next, nothing it tries later is.
            if !store.raise_offer_fence(offer, claim.token()).await? {
                tracing::warn!(%offer, "a newer writer of this offer exists; not taking it");
                claim.release().await;
                return Ok(None);
            }
            let since = self.now().saturating_sub(self.inner.config.idempotency_ttl);
            for keyed in store
                .keyed_reservations_of_offer_since(offer, since)
                .await?
            {
                self.restore_key(keyed);
            }
            lock(&self.inner.elsewhere).remove(offer);
        }
        // Read under the lock: an earlier record may predate a writer that
        // ran and stopped meanwhile.
        let record = store.offer(offer).await?;
        let ledger = writer::load_ledger(store, &record).await?;
        let config = &self.inner.config;
        let id = record.id.clone();
        if claim.is_some() {
            tracing::info!(offer = %id, "this node writes the offer now");
        }
        let (handle, task) = writer::spawn(
            WriterSetup {
                store: store.clone(),
                clock: config.clock,
                events: self.inner.events.clone(),
                max_group: config.max_group,
                command_capacity: config.command_capacity,
                claim,
            },
            record,
            ledger,
        );
        lock(&self.inner.tasks).push(task);
        self.inner
            .writers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle.clone());
        Ok(Some(handle))
    }
}

/// Cluster mode: takes over the live offers nobody writes (their node died,
/// or shut down), so taps find a writer and holds still expire.
async fn adopt_orphans(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(ADOPT_EVERY).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let service = OrderService { inner };
        if service.check_running().is_err() {
            return;
        }
        let offers = match service.inner.store.offers_to_load().await {
            Ok(offers) => offers,
            Err(error) => {
                tracing::warn!(%error, "looking for offers nobody writes failed");
                continue;
            }
        };
        for record in offers {
            if service.loaded(&record.id).is_some() {
                continue;
            }
            if let Err(error) = service.spawn_writer(record).await {
                tracing::debug!(%error, "taking an offer over failed; trying again soon");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A writer answered a call with the answer to another: a bug.
fn mismatched() -> OrdersError {
    tracing::error!("an offer's writer answered a different call");
    OrdersError::Unavailable
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
