//! One task per live offer: it owns the offer's [`StockLedger`], decides
//! every command in arrival order, and writes what it decided in groups.
//!
//! The pipeline: decisions go into the *pending* batch at once (so the next
//! tap already sees them); when no commit is in flight, the pending batch is
//! sealed and committed in one transaction by a spawned task, and the writer
//! keeps deciding into a fresh batch meanwhile. Only when a batch's commit
//! returns are its callers answered and its events sent: nothing is
//! acknowledged before it is durable. Refusals (sold out, over the limit,
//! not started, ended) touch no state and are answered at once.
//!
//! If a commit fails, its callers and those of the batch after it get an
//! error (none of them was acknowledged), and the ledger is rebuilt from the
//! database, which is the truth.

use crate::idempotency::Ticket;
use crate::ledger::{Decision, HoldError, OfferTerms, Refusal, Released, StockLedger, Tap};
use crate::placement::OfferClaim;
use crate::{Checkout, Clock, OfferEvent, OfferSnapshot, OrdersError, ReservationView};
use domain::{
    OrderId, OrderState, Reason, ReservationId, ReservationState, Subject, UnitsReturn, UnixMillis,
    coarse_place, secret_token,
};
use std::sync::Arc;
use std::time::Duration;
use store::{
    GroupOutcome, NewOrderRecord, NewReservationRow, OfferGroup, OfferRecord, OrderCancelRow,
    OrderRecord, ReleaseRow, Store, StoreError,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Commands taken off the queue per wake-up.
const RECV_BATCH: usize = 1024;
/// A group commit slower than this is logged.
const SLOW_COMMIT: Duration = Duration::from_millis(250);
/// Pause between attempts to rebuild after a failed commit.
const RELOAD_RETRY: Duration = Duration::from_secs(1);

/// Why a confirm or cancel of a reservation did not go through here; the
/// service turns `NotHeld` into a precise answer from the database.
#[derive(Debug)]
pub(crate) enum HoldOutcome {
    NotHeld,
    NotYours,
    Failed(OrdersError),
}

pub(crate) enum Command {
    Reserve {
        buyer: Subject,
        /// The person the buyer stands for (the key of the limit).
        person: Subject,
        account: bool,
        quantity: u32,
        key: Option<String>,
        ticket: Option<Ticket>,
        reply: oneshot::Sender<Result<ReservationView, OrdersError>>,
    },
    Confirm {
        buyer: Subject,
        reservation: ReservationId,
        checkout: Checkout,
        reply: oneshot::Sender<Result<OrderRecord, HoldOutcome>>,
    },
    CancelReservation {
        buyer: Subject,
        reservation: ReservationId,
        reply: oneshot::Sender<Result<(), HoldOutcome>>,
    },
    /// An unshipped order is cancelled and its units return.
    CancelOrder {
        order: OrderId,
        /// The person the order's buyer stands for.
        person: Subject,
        quantity: u32,
        from: OrderState,
        reason: Reason,
        reply: oneshot::Sender<Result<bool, OrdersError>>,
    },
    End {
        reply: oneshot::Sender<Result<OfferSnapshot, OrdersError>>,
    },
    /// Finish what was asked so far, then stop.
    Stop,
}

/// What a room or a route needs to reach an offer's writer.
#[derive(Clone)]
pub(crate) struct OfferHandle {
    /// Closed once the writer stops (shutdown, or its claim was lost).
    pub tx: mpsc::Sender<Command>,
    pub snapshot: watch::Receiver<Arc<OfferSnapshot>>,
    pub info: Arc<OfferRecord>,
}

/// A caller waiting for its batch to commit.
enum Ack {
    Reserved {
        reply: oneshot::Sender<Result<ReservationView, OrdersError>>,
        ticket: Option<Ticket>,
        view: ReservationView,
    },
    Confirmed {
        reply: oneshot::Sender<Result<OrderRecord, HoldOutcome>>,
        order: Box<OrderRecord>,
    },
    ConfirmNotHeld {
        reply: oneshot::Sender<Result<OrderRecord, HoldOutcome>>,
    },
    Cancelled {
        reply: oneshot::Sender<Result<(), HoldOutcome>>,
    },
    CancelNotHeld {
        reply: oneshot::Sender<Result<(), HoldOutcome>>,
    },
    Expired {
        buyer: Subject,
        reservation: ReservationId,
    },
    OrderCancel {
        reply: oneshot::Sender<Result<bool, OrdersError>>,
        person: Subject,
        quantity: u32,
        index: usize,
    },
    Ended {
        reply: oneshot::Sender<Result<OfferSnapshot, OrdersError>>,
    },
}

struct Batch {
    group: OfferGroup,
    acks: Vec<Ack>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.group.is_empty() && self.acks.is_empty()
    }
}

struct InFlight {
    task: JoinHandle<Result<GroupOutcome, StoreError>>,
    acks: Vec<Ack>,
    ends: bool,
}

pub(crate) struct WriterSetup {
    pub store: Store,
    pub clock: Clock,
    pub events: EventSink,
    pub max_group: usize,
    pub command_capacity: usize,
    /// Cluster mode: this node's claim on the offer. Its token fences every
    /// commit; when it is lost the writer stops.
    pub claim: Option<Arc<dyn OfferClaim>>,
}

/// Where a writer's events go: this node's subscribers, and (cluster mode)
/// the other nodes, through whoever publishes `outward`.
#[derive(Clone)]
pub(crate) struct EventSink {
    pub local: broadcast::Sender<OfferEvent>,
    pub outward: Option<broadcast::Sender<OfferEvent>>,
}

impl EventSink {
    pub fn send(&self, event: OfferEvent) {
        if let Some(outward) = &self.outward {
            let _ = outward.send(event.clone());
        }
        let _ = self.local.send(event);
    }
}

pub(crate) fn terms_of(record: &OfferRecord) -> OfferTerms {
    OfferTerms {
        starts_at: record.starts_at,
        ends_at: record.ends_at,
        per_buyer_limit: record.per_buyer_limit,
        buyers: record.buyers,
        hold: Duration::from_millis(u64::try_from(record.hold_ms).unwrap_or(0)),
    }
}

/// Rebuilds an offer's ledger from the database: counts, held reservations
/// with their expiries, and what each person (a buyer, or the guests one
/// browser started) already holds and bought.
pub(crate) async fn load_ledger(
    store: &Store,
    record: &OfferRecord,
) -> Result<StockLedger, StoreError> {
    let mut ledger = StockLedger::new(terms_of(record), record.counts, record.ended_at);
    let overflow = |_| StoreError::Corrupt(format!("offer {}: a tally overflows", record.id));
    for (r, person) in store.held_reservations_by_person(&record.id).await? {
        ledger
            .restore_hold(r.id, &r.buyer, &person, r.quantity, r.expires_at)
            .map_err(overflow)?;
    }
    for (person, quantity) in store.bought_per_person(&record.id).await? {
        ledger.restore_bought(&person, quantity).map_err(overflow)?;
    }
    if let Err(problem) = ledger.check() {
        // The database enforces balanced counts; this would mean rows and
        // counts disagree. Keep serving (the counts are what stops
        // overselling) but make it loud.
        tracing::error!(offer = %record.id, %problem, "offer rebuilt inconsistent");
    }
    Ok(ledger)
}

pub(crate) fn snapshot_of(
    info: &OfferRecord,
    ledger: &StockLedger,
    now: UnixMillis,
) -> OfferSnapshot {
    OfferSnapshot {
        offer_id: info.id.clone(),
        broadcast_id: info.broadcast_id.clone(),
        shop_id: info.shop_id.clone(),
        product_id: info.product_id.clone(),
        title: info.title.clone(),
        unit: info.unit.clone(),
        price: info.price,
        per_buyer_limit: info.per_buyer_limit,
        buyers: info.buyers,
        hold_secs: u32::try_from(info.hold_ms / 1000).unwrap_or(u32::MAX),
        starts_at: info.starts_at,
        ends_at: info.ends_at,
        ended_at: ledger.ended_at(),
        ships_on: info.ships_on,
        state: ledger.state(now),
        counts: ledger.counts(),
        as_of: now,
    }
}

/// Starts the writer of one offer.
pub(crate) fn spawn(
    setup: WriterSetup,
    info: OfferRecord,
    ledger: StockLedger,
) -> (OfferHandle, JoinHandle<()>) {
    let info = Arc::new(info);
    let (tx, rx) = mpsc::channel(setup.command_capacity);
    let first = Arc::new(snapshot_of(&info, &ledger, setup.clock.now()));
    let (snapshot_tx, snapshot) = watch::channel(first.clone());
    let ended_durable = ledger.ended_at().is_some();
    let writer = Writer {
        pending: Batch {
            group: OfferGroup::new(info.id.clone(), info.product_id.clone(), ended_durable),
            acks: Vec::new(),
        },
        info: info.clone(),
        ledger,
        store: setup.store,
        clock: setup.clock,
        events: setup.events,
        snapshot_tx,
        published: first,
        rx,
        in_flight: None,
        ended_durable,
        max_group: setup.max_group.max(1),
        claim: setup.claim,
        degraded: false,
        rx_done: false,
        stopping: false,
    };
    let span =
        tracing::info_span!("offer_writer", offer = %info.id, broadcast = %info.broadcast_id);
    let task = tokio::spawn(tracing::Instrument::instrument(writer.run(), span));
    (OfferHandle { tx, snapshot, info }, task)
}

struct Writer {
    info: Arc<OfferRecord>,
    ledger: StockLedger,
    store: Store,
    clock: Clock,
    events: EventSink,
    claim: Option<Arc<dyn OfferClaim>>,
    snapshot_tx: watch::Sender<Arc<OfferSnapshot>>,
    published: Arc<OfferSnapshot>,
    rx: mpsc::Receiver<Command>,
    pending: Batch,
    in_flight: Option<InFlight>,
    /// Whether the offer has ended in the database (not just in memory).
    ended_durable: bool,
    max_group: usize,
    /// A commit failed and the ledger could not be rebuilt yet: answer
    /// "unavailable" until it is.
    degraded: bool,
    rx_done: bool,
    stopping: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut commands = Vec::with_capacity(RECV_BATCH);
        let claim = self.claim.clone();
        let lost = async move {
            match claim {
                Some(claim) => claim.lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(lost);
        loop {
            if self.in_flight.is_none() && !self.pending.is_empty() {
                self.start_commit();
                continue;
            }
            if self.rx_done && self.in_flight.is_none() && self.pending.is_empty() {
                break;
            }
            let deadline = if self.stopping || self.degraded {
                None
            } else {
                self.ledger
                    .next_deadline()
                    .map(|at| self.clock.instant_at(at))
            };
            // Backpressure: a full batch waits for the commit before more.
            let accepting = !self.rx_done && self.pending.group.holds.len() < self.max_group;
            tokio::select! {
                biased;
                done = async {
                    match self.in_flight.as_mut() {
                        Some(f) => (&mut f.task).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let flight = self.in_flight.take().expect("a commit was in flight");
                    let result = done.unwrap_or_else(|e| Err(StoreError::Corrupt(format!("commit task failed: {e}"))));
                    self.on_committed(flight, result).await;
                }
                n = self.rx.recv_many(&mut commands, RECV_BATCH), if accepting => {
                    if n == 0 {
                        self.rx_done = true;
                        self.stopping = true;
                        continue;
                    }
                    let now = self.clock.now();
                    if !self.degraded && !self.stopping {
                        self.tick(now);
                    }
                    for command in commands.drain(..) {
                        self.handle(command, now);
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    let now = self.clock.now();
                    self.tick(now);
                }
                _ = tokio::time::sleep(RELOAD_RETRY), if self.degraded => {
                    self.reload().await;
                }
                () = &mut lost, if !self.rx_done => {
                    tracing::warn!("lost the claim on this offer; another node writes it now");
                    self.give_up();
                }
            }
        }
        if let Some(claim) = &self.claim {
            claim.release().await;
        }
        tracing::debug!("offer writer stopped");
    }

    /// Another node writes the offer now: nothing more is decided or
    /// committed here. What was decided but not committed is refused
    /// ("unavailable": callers ask again and reach the new writer); a
    /// commit in flight finishes, or is refused by the fence.
    fn give_up(&mut self) {
        self.rx.close();
        while let Ok(command) = self.rx.try_recv() {
            refuse_unavailable(command);
        }
        self.rx_done = true;
        self.stopping = true;
        self.degraded = false;
        let pending = self.take_pending();
        fail(pending.acks, &OrdersError::Unavailable);
    }

    /// What was decided but not yet committed, leaving an empty batch.
    fn take_pending(&mut self) -> Batch {
        let empty = Batch {
            group: OfferGroup::new(
                self.info.id.clone(),
                self.info.product_id.clone(),
                self.ended_durable,
            ),
            acks: Vec::new(),
        };
        std::mem::replace(&mut self.pending, empty)
    }

    fn handle(&mut self, command: Command, now: UnixMillis) {
        if self.degraded {
            return refuse_unavailable(command);
        }
        match command {
            Command::Reserve {
                buyer,
                person,
                account,
                quantity,
                key,
                ticket,
                reply,
            } => match self.ledger.decide(
                Tap {
                    buyer: buyer.clone(),
                    person,
                    account,
                    quantity,
                },
                now,
            ) {
                Decision::Held(hold) => {
                    let view = ReservationView {
                        id: hold.reservation.clone(),
                        offer_id: self.info.id.clone(),
                        quantity,
                        unit_price: self.info.price,
                        total: self.info.price.times(quantity),
                        created_at: now,
                        expires_at: hold.expires_at,
                    };
                    let group = &mut self.pending.group;
                    group.holds.push(NewReservationRow {
                        id: hold.reservation,
                        buyer: hold.buyer.clone(),
                        quantity,
                        created_at: now,
                        expires_at: hold.expires_at,
                        idempotency_key: key,
                    });
                    group.delta.available -= i64::from(quantity);
                    group.delta.held += i64::from(quantity);
                    self.pending.acks.push(Ack::Reserved {
                        reply,
                        ticket,
                        view,
                    });
                }
                Decision::Refused(refusal) => {
                    let error = refusal_error(refusal);
                    if let Some(ticket) = ticket {
                        ticket.settle(&Err(error.clone()));
                    }
                    let _ = reply.send(Err(error));
                }
            },
            Command::Confirm {
                buyer,
                reservation,
                checkout,
                reply,
            } => match self.ledger.confirm(&reservation, &buyer, now) {
                Ok(quantity) => {
                    let order = NewOrderRecord {
                        id: OrderId::generate(),
                        token: secret_token(),
                        reservation_id: reservation,
                        offer_id: self.info.id.clone(),
                        broadcast_id: self.info.broadcast_id.clone(),
                        shop_id: self.info.shop_id.clone(),
                        product_id: self.info.product_id.clone(),
                        buyer,
                        title: self.info.title.clone(),
                        unit: self.info.unit.clone(),
                        ships_on: self.info.ships_on,
                        quantity,
                        unit_price: self.info.price,
                        coarse_place: coarse_place(&checkout.address),
                        recipient_name: checkout.name,
                        mobile: checkout.mobile,
                        address: checkout.address,
                        payment_method: checkout.payment,
                        created_at: now,
                    };
                    let group = &mut self.pending.group;
                    group.delta.held -= i64::from(quantity);
                    group.delta.sold += i64::from(quantity);
                    group.confirms.push(order.clone());
                    self.pending.acks.push(Ack::Confirmed {
                        reply,
                        order: Box::new(order.into_record()),
                    });
                }
                Err(HoldError::NotYours) => {
                    let _ = reply.send(Err(HoldOutcome::NotYours));
                }
                // Answer once what is pending is committed, so the service
                // reads the settled truth (e.g. a double-submitted confirm).
                Err(HoldError::NotHeld) => self.pending.acks.push(Ack::ConfirmNotHeld { reply }),
            },
            Command::CancelReservation {
                buyer,
                reservation,
                reply,
            } => match self.ledger.cancel(&reservation, &buyer, now) {
                Ok(released) => {
                    self.record_release(released, ReservationState::Cancelled, now);
                    self.pending.acks.push(Ack::Cancelled { reply });
                }
                Err(HoldError::NotYours) => {
                    let _ = reply.send(Err(HoldOutcome::NotYours));
                }
                Err(HoldError::NotHeld) => self.pending.acks.push(Ack::CancelNotHeld { reply }),
            },
            Command::CancelOrder {
                order,
                person,
                quantity,
                from,
                reason,
                reply,
            } => {
                let index = self.pending.group.order_cancels.len();
                self.pending.group.order_cancels.push(OrderCancelRow {
                    order_id: order,
                    from,
                    reason,
                    at: now,
                });
                self.pending.acks.push(Ack::OrderCancel {
                    reply,
                    person,
                    quantity,
                    index,
                });
            }
            Command::End { reply } => {
                if self.ledger.end(now).is_some() {
                    self.pending.group.end_at = Some(now);
                }
                self.pending.acks.push(Ack::Ended { reply });
            }
            Command::Stop => {
                self.stopping = true;
                // Commands already queued are still taken; new ones fail.
                self.rx.close();
            }
        }
    }

    /// Expiries, the end time and the start time.
    fn tick(&mut self, now: UnixMillis) {
        let effects = self.ledger.handle_timeout(now);
        if let Some(ended_at) = self.ledger.ended_at().filter(|_| effects.ended.is_some()) {
            self.pending.group.end_at = Some(ended_at);
        }
        for released in effects.expired {
            self.record_release(released, ReservationState::Expired, now);
        }
        if effects.opened {
            // Nothing to write: the start time is already stored.
            self.publish(now);
        }
    }

    fn record_release(&mut self, released: Released, state: ReservationState, now: UnixMillis) {
        let q = i64::from(released.quantity);
        let group = &mut self.pending.group;
        group.delta.held -= q;
        match released.to {
            UnitsReturn::ToOffer => group.delta.available += q,
            UnitsReturn::ToProduct => {
                group.delta.allotted -= q;
                group.delta.product_stock += q;
            }
        }
        group.releases.push(ReleaseRow {
            id: released.reservation.clone(),
            state,
            at: now,
        });
        if state == ReservationState::Expired {
            self.pending.acks.push(Ack::Expired {
                buyer: released.buyer,
                reservation: released.reservation,
            });
        }
    }

    fn start_commit(&mut self) {
        let mut batch = self.take_pending();
        let now = self.clock.now();
        if batch.group.is_empty() {
            // Only answers that had to wait for earlier commits: nothing to write.
            self.complete(batch.acks, GroupOutcome::default(), now);
            return;
        }
        // Decided now, after the previous group committed.
        batch.group.ended_before = self.ended_durable;
        batch.group.now = now;
        batch.group.fence = self.claim.as_ref().map(|claim| claim.token());
        let ends = batch.group.end_at.is_some();
        let store = self.store.clone();
        let group = batch.group;
        tracing::trace!(
            holds = group.holds.len(),
            releases = group.releases.len(),
            confirms = group.confirms.len(),
            "committing group"
        );
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = store.commit_offer_group(&group).await;
            let elapsed = started.elapsed();
            // A slow commit makes the next group big; worth seeing in logs.
            if elapsed > SLOW_COMMIT {
                tracing::warn!(holds = group.holds.len(), ?elapsed, "slow group commit");
            }
            result
        });
        self.in_flight = Some(InFlight {
            task,
            acks: batch.acks,
            ends,
        });
    }

    async fn on_committed(&mut self, flight: InFlight, result: Result<GroupOutcome, StoreError>) {
        match result {
            Ok(outcome) => {
                if flight.ends {
                    self.ended_durable = true;
                }
                let now = self.clock.now();
                self.complete(flight.acks, outcome, now);
                self.publish(now);
            }
            Err(StoreError::Fenced) => {
                tracing::warn!("a newer writer on another node fenced this one off");
                // Closed first: a caller told "unavailable" sees a stopped
                // writer, and knows nothing was done.
                self.give_up();
                fail(flight.acks, &OrdersError::Unavailable);
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed; rebuilding the offer from the database");
                let error = OrdersError::Store(Arc::new(error));
                let pending = self.take_pending();
                fail(flight.acks, &error);
                fail(pending.acks, &error);
                self.degraded = true;
                self.reload().await;
            }
        }
    }

    async fn reload(&mut self) {
        let loaded = async {
            let record = self.store.offer(&self.info.id).await?;
            let ledger = load_ledger(&self.store, &record).await?;
            Ok::<_, StoreError>((record, ledger))
        }
        .await;
        match loaded {
            Ok((record, ledger)) => {
                self.ended_durable = record.ended_at.is_some();
                self.ledger = ledger;
                self.degraded = false;
                tracing::info!("offer rebuilt from the database");
                self.publish(self.clock.now());
            }
            Err(error) => tracing::warn!(%error, "offer rebuild failed; retrying"),
        }
    }

    /// Answers the callers of a committed batch and sends its events.
    fn complete(&mut self, acks: Vec<Ack>, outcome: GroupOutcome, now: UnixMillis) {
        for ack in acks {
            match ack {
                Ack::Reserved {
                    reply,
                    ticket,
                    view,
                } => {
                    // The buyer hears of the hold in the answer: no event per
                    // tap on the hot path.
                    let result = Ok(view);
                    if let Some(ticket) = ticket {
                        ticket.settle(&result);
                    }
                    let _ = reply.send(result);
                }
                Ack::Confirmed { reply, order } => {
                    self.events.send(OfferEvent::Sale {
                        offer_id: self.info.id.clone(),
                        broadcast_id: self.info.broadcast_id.clone(),
                        quantity: order.quantity,
                        place: order.coarse_place.clone(),
                    });
                    self.events.send(OfferEvent::OrderPlaced {
                        buyer: order.buyer.clone(),
                        broadcast_id: self.info.broadcast_id.clone(),
                        reservation_id: order.reservation_id.clone(),
                        order_id: order.id.clone(),
                    });
                    let _ = reply.send(Ok(*order));
                }
                Ack::ConfirmNotHeld { reply } => {
                    let _ = reply.send(Err(HoldOutcome::NotHeld));
                }
                Ack::Cancelled { reply } => {
                    let _ = reply.send(Ok(()));
                }
                Ack::CancelNotHeld { reply } => {
                    let _ = reply.send(Err(HoldOutcome::NotHeld));
                }
                Ack::Expired { buyer, reservation } => {
                    self.events.send(OfferEvent::ReservationExpired {
                        buyer,
                        broadcast_id: self.info.broadcast_id.clone(),
                        offer_id: self.info.id.clone(),
                        reservation_id: reservation,
                    });
                }
                Ack::OrderCancel {
                    reply,
                    person,
                    quantity,
                    index,
                } => {
                    let applied = outcome.cancels_applied.get(index).copied().unwrap_or(false);
                    if applied && let Err(error) = self.ledger.order_cancelled(&person, quantity) {
                        tracing::error!(%error, "cancelled order's units do not fit the ledger");
                    }
                    let _ = reply.send(Ok(applied));
                }
                Ack::Ended { reply } => {
                    let _ = reply.send(Ok(snapshot_of(&self.info, &self.ledger, now)));
                }
            }
        }
    }

    /// Publishes the offer's snapshot if anything viewers see has changed.
    fn publish(&mut self, now: UnixMillis) {
        let mut snapshot = snapshot_of(&self.info, &self.ledger, now);
        snapshot.as_of = self.published.as_of;
        if snapshot == *self.published {
            return;
        }
        snapshot.as_of = now;
        let snapshot = Arc::new(snapshot);
        self.published = snapshot.clone();
        self.snapshot_tx.send_replace(snapshot.clone());
        self.events.send(OfferEvent::Snapshot { snapshot });
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

pub(crate) fn refusal_error(refusal: Refusal) -> OrdersError {
    match refusal {
        Refusal::SoldOut { available } => OrdersError::SoldOut { available },
        Refusal::OverLimit(o) => OrdersError::OverLimit {
            limit: o.limit,
            already: o.already,
        },
        Refusal::NotStarted { starts_at } => OrdersError::NotStarted { starts_at },
        Refusal::Ended => OrdersError::Ended,
        Refusal::AccountRequired => OrdersError::AccountRequired,
        Refusal::ZeroQuantity => OrdersError::field(
            "quantity",
            domain::FieldCode::TooSmall,
            "must be at least 1",
        ),
        Refusal::Full(full) => {
            tracing::warn!(
                ?full,
                "offer's ledger is full; tap refused until holds free up"
            );
            OrdersError::Unavailable
        }
    }
}

fn refuse_unavailable(command: Command) {
    let error = OrdersError::Unavailable;
    match command {
        Command::Reserve { ticket, reply, .. } => {
            if let Some(ticket) = ticket {
                ticket.settle(&Err(error.clone()));
            }
            let _ = reply.send(Err(error));
        }
        Command::Confirm { reply, .. } => {
            let _ = reply.send(Err(HoldOutcome::Failed(error)));
        }
        Command::CancelReservation { reply, .. } => {
            let _ = reply.send(Err(HoldOutcome::Failed(error)));
        }
        Command::CancelOrder { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::End { reply } => {
            let _ = reply.send(Err(error));
        }
        Command::Stop => {}
    }
}

/// Answers every caller of a batch that will not be written.
fn fail(acks: Vec<Ack>, error: &OrdersError) {
    for ack in acks {
        match ack {
            Ack::Reserved { reply, ticket, .. } => {
                if let Some(ticket) = ticket {
                    ticket.settle(&Err(error.clone()));
                }
                let _ = reply.send(Err(error.clone()));
            }
            Ack::Confirmed { reply, .. } | Ack::ConfirmNotHeld { reply } => {
                let _ = reply.send(Err(HoldOutcome::Failed(error.clone())));
            }
            Ack::Cancelled { reply } | Ack::CancelNotHeld { reply } => {
                let _ = reply.send(Err(HoldOutcome::Failed(error.clone())));
            }
            Ack::OrderCancel { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Ack::Ended { reply } => {
                let _ = reply.send(Err(error.clone()));
            }
            Ack::Expired { .. } => {}
        }
    }
}
