//! The hub: finds or opens a room task per broadcast, and is the door the
//! rest of the server uses (websocket connections, order and media events,
//! the moderation log).

use crate::config::LiveConfig;
use crate::fanout::{ConnId, Fanout, LagOutcome, OutboxSender, Outgoing};
use crate::persist::Persister;
use crate::room::{Command, Effect, Loaded, RoomCore, ShopEvent};
use crate::{Commerce, LiveError, Participant, RoomInfo};
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::WebSocket;
use domain::Clock;
use domain::{BroadcastId, BroadcastState, ShopId, UnixMillis};
use protocol::{
    Author, CloseReason, ModerationAction, ModerationEntry, OfferCard, PrivateMessage, SaleTicker,
    ServerEvent, SnapshotReason, Timestamp,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// The live channel of every broadcast on this server. Cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) commerce: Arc<dyn Commerce>,
    pub(crate) config: Arc<LiveConfig>,
    pub(crate) clock: Clock,
    rooms: Mutex<HashMap<BroadcastId, RoomHandle>>,
    persist: Persister,
    next_conn: AtomicU64,
    next_room: AtomicU64,
    ordinal: Arc<AtomicI64>,
    shutting_down: AtomicBool,
    events: tokio::sync::broadcast::Sender<LiveEvent>,
    /// Websockets being served now (the node's load, for the cluster).
    open_sockets: AtomicU64,
}

/// What happened in a room that the rest of the server reacts to (the
/// server's bridge listens; see [`LiveHub::events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveEvent {
    /// A moderator banned `subject` from every broadcast of `shop`.
    Banned { shop: ShopId, subject: String },
    /// A ban, unban, timeout or blocked-word change made here, for every
    /// broadcast of `shop`: this node's rooms have it; other nodes' rooms
    /// get it through [`LiveHub::apply_shop_event`].
    ShopWide { shop: ShopId, event: ShopEvent },
}

#[derive(Clone)]
pub(crate) struct RoomHandle {
    id: u64,
    shop: ShopId,
    pub(crate) cmds: mpsc::Sender<RoomCmd>,
    events: mpsc::UnboundedSender<RoomEvent>,
}

/// From a connection to its room (bounded: a busy room slows its senders).
pub(crate) enum RoomCmd {
    Join {
        conn: ConnId,
        who: Arc<Participant>,
        tx: OutboxSender,
        resume_from: Option<u64>,
        reply: oneshot::Sender<Result<(), CloseReason>>,
    },
    Leave {
        conn: ConnId,
    },
    Command {
        conn: ConnId,
        who: Arc<Participant>,
        command: Command,
    },
}

/// From the rest of the server (unbounded: these calls never wait, and each
/// costs the room O(1) because state is coalesced).
enum RoomEvent {
    Offer(OfferCard),
    Sale(SaleTicker),
    Private(String, ServerEvent),
    MediaViewers(u64),
    State(BroadcastState),
    Shop(ShopEvent),
    Stats(oneshot::Sender<RoomStats>),
    Shutdown(oneshot::Sender<()>),
}

/// A room at a glance, for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomStats {
    pub connections: usize,
    pub lagging: usize,
    pub seq: u64,
    pub viewers: u64,
}

impl LiveHub {
    /// Starts the hub's database writer; call inside a tokio runtime.
    pub fn new(store: Store, commerce: Arc<dyn Commerce>, config: LiveConfig) -> LiveHub {
        LiveHub::with_clock(store, commerce, config, Clock::system())
    }

    pub fn with_clock(
        store: Store,
        commerce: Arc<dyn Commerce>,
        config: LiveConfig,
        clock: Clock,
    ) -> LiveHub {
        let config = Arc::new(config.normalized());
        let persist = Persister::spawn(store.clone(), config.persist_batch, config.persist_queue);
        LiveHub {
            inner: Arc::new(Inner {
                store,
                commerce,
                config,
                // Moderation-log order across restarts: starts from the clock.
                ordinal: Arc::new(AtomicI64::new(clock.now().millis().saturating_mul(1000))),
                clock,
                rooms: Mutex::new(HashMap::new()),
                persist,
                next_conn: AtomicU64::new(1),
                next_room: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
                events: tokio::sync::broadcast::channel(256).0,
                open_sockets: AtomicU64::new(0),
            }),
        }
    }

    /// Bans and other room happenings other subsystems react to. A
    /// receiver that falls more than 256 behind misses the oldest.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.inner.events.subscribe()
    }

    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// Applies the live channel's frame and buffer limits to an upgrade.
    /// The HTTP route should call this before `on_upgrade`.
    pub fn configure_upgrade(&self, ws: WebSocketUpgrade) -> WebSocketUpgrade {
        let max = self.inner.config.max_ws_message_bytes();
        // A viewer sends a few short frames a minute: tungstenite's default
        // 128 KiB read buffer per connection was most of a connection's
        // memory. A larger frame still arrives whole (the buffer grows to it).
        ws.max_message_size(max)
            .max_frame_size(max)
            .read_buffer_size(4 * 1024)
            .write_buffer_size(16 * 1024)
    }

    /// Runs one viewer's connection until it ends. `resume_from` is the
    /// highest `seq` the client saw before reconnecting (query parameter
    /// `resume_from`).
    pub async fn serve(
        &self,
        room: RoomInfo,
        who: Participant,
        socket: WebSocket,
        resume_from: Option<u64>,
    ) {
        /// Counts the socket while it is served, however the serving ends.
        struct Open<'a>(&'a AtomicU64);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.inner.open_sockets.fetch_add(1, Ordering::Relaxed);
        let _open = Open(&self.inner.open_sockets);
        crate::conn::serve(self.clone(), room, who, socket, resume_from).await
    }

    /// Websockets this hub serves right now.
    pub fn open_sockets(&self) -> u64 {
        self.inner.open_sockets.load(Ordering::Relaxed)
    }

    /// Stock, price, state or countdown of an offer changed (order service).
    pub fn update_offer(&self, room: &BroadcastId, card: OfferCard) {
        self.send_event(room, RoomEvent::Offer(card));
    }

    /// Someone bought (order service). No personal data in the ticker.
    pub fn sale(&self, room: &BroadcastId, ticker: SaleTicker) {
        self.send_event(room, RoomEvent::Sale(ticker));
    }

    /// A message for one person's connections in one room.
    pub fn private(&self, room: &BroadcastId, subject: &str, message: PrivateMessage) {
        self.send_event(room, RoomEvent::Private(subject.to_owned(), message.into()));
    }

    /// The SFU's viewer count for the broadcast.
    pub fn set_media_viewers(&self, room: &BroadcastId, viewers: u64) {
        self.send_event(room, RoomEvent::MediaViewers(viewers));
    }

    pub fn set_broadcast_state(&self, room: &BroadcastId, state: BroadcastState) {
        self.send_event(room, RoomEvent::State(state));
    }

    /// Lifts a shop ban from outside any room (the studio's moderators page).
    /// The HTTP layer checks that `actor` may moderate the shop. Returns
    /// `false` when the person was not banned. Open rooms of the shop learn
    /// it at once; the log records who lifted it.
    pub async fn unban(
        &self,
        shop: &ShopId,
        subject: &str,
        actor: &Participant,
    ) -> Result<bool, LiveError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(LiveError::ShuttingDown);
        }
        // Bans reach the database in batches: make any pending one visible.
        self.inner.persist.flush().await;
        if !self
            .inner
            .store
            .is_chat_banned(shop, &domain::Subject::from_trusted(subject))
            .await?
        {
            return Ok(false);
        }
        let now = self.inner.clock.now();
        self.inner.persist.push(store::ChatWrite::Unban {
            shop: shop.clone(),
            subject: subject.to_owned(),
        });
        self.inner
            .persist
            .push(store::ChatWrite::Log(store::ModerationRecord {
                shop_id: shop.clone(),
                broadcast_id: None,
                ordinal: self.inner.ordinal.fetch_add(1, Ordering::Relaxed),
                actor: Some(store::ModerationActor {
                    subject: actor.subject.clone(),
                    name: actor.name.clone(),
                    role: actor.role,
                }),
                action: protocol::ModerationAction::Unban.as_str().to_owned(),
                target_subject: Some(subject.to_owned()),
                message_id: None,
                detail: None,
                created_at: now,
            }));
        self.inner.persist.flush().await;
        let rooms: Vec<RoomHandle> = self
            .inner
            .rooms()
            .values()
            .filter(|h| h.shop == *shop)
            .cloned()
            .collect();
        let event = ShopEvent::Unbanned {
            subject: subject.to_owned(),
        };
        for room in rooms {
            let _ = room.events.send(RoomEvent::Shop(event.clone()));
        }
        let _ = self.inner.events.send(LiveEvent::ShopWide {
            shop: shop.clone(),
            event,
        });
        Ok(true)
    }

    /// A shop-wide change another node made: to this node's open rooms of
    /// the shop (rooms opened later read it from the database).
    pub fn apply_shop_event(&self, shop: &ShopId, event: ShopEvent) {
        for h in self.inner.rooms().values() {
            if h.shop == *shop {
                let _ = h.events.send(RoomEvent::Shop(event.clone()));
            }
        }
    }

    /// The shop's moderation log, newest first, for the owner and moderators
    /// (the HTTP layer checks the role). Includes everything done so far.
    pub async fn moderation_log(
        &self,
        shop: &ShopId,
        limit: u32,
    ) -> Result<Vec<ModerationEntry>, LiveError> {
        self.inner.persist.flush().await;
        let records = self.inner.store.moderation_log(shop, limit).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let Some(action) = ModerationAction::from_db(&r.action) else {
                    tracing::warn!(action = %r.action, "unknown moderation action in the log");
                    return None;
                };
                Some(ModerationEntry {
                    action,
                    actor: r.actor.map(|a| Author {
                        subject: a.subject,
                        name: a.name,
                        role: a.role,
                    }),
                    target: r.target_subject,
                    broadcast: r.broadcast_id,
                    message: r.message_id,
                    facts: crate::moderation::log_facts(action, r.detail.as_deref()),
                    detail: r.detail,
                    at: Timestamp(r.created_at),
                })
            })
            .collect())
    }

    /// `None` when the room is not open.
    pub async fn room_stats(&self, room: &BroadcastId) -> Option<RoomStats> {
        let (tx, rx) = oneshot::channel();
        if !self.send_event(room, RoomEvent::Stats(tx)) {
            return None;
        }
        rx.await.ok()
    }

    /// Waits until every chat and moderation write queued so far is stored.
    pub async fn flush(&self) {
        self.inner.persist.flush().await;
    }

    /// Closes every connection with 1001 (clients reconnect and resume) and
    /// writes everything pending. New connections are refused from now on.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let handles: Vec<RoomHandle> = self.inner.rooms().drain().map(|(_, h)| h).collect();
        for h in handles {
            let (tx, rx) = oneshot::channel();
            if h.events.send(RoomEvent::Shutdown(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        self.inner.persist.flush().await;
    }

    fn send_event(&self, room: &BroadcastId, event: RoomEvent) -> bool {
        let handle = self.inner.rooms().get(room).cloned();
        handle.is_some_and(|h| h.events.send(event).is_ok())
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// The open room for `info`, opening it if needed.
    pub(crate) fn room(&self, info: &RoomInfo) -> Result<RoomHandle, LiveError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(LiveError::ShuttingDown);
        }
        let mut rooms = self.inner.rooms();
        if let Some(h) = rooms.get(&info.broadcast)
            && !h.cmds.is_closed()
        {
            return Ok(h.clone());
        }
        // Enough for a crowd arriving at once; senders wait beyond it.
        let (cmds_tx, cmds_rx) = mpsc::channel(4096);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let handle = RoomHandle {
            id: self.inner.next_room.fetch_add(1, Ordering::Relaxed),
            shop: info.shop.clone(),
            cmds: cmds_tx,
            events: events_tx,
        };
        rooms.insert(info.broadcast.clone(), handle.clone());
        let span = tracing::info_span!("room", broadcast = %info.broadcast, shop = %info.shop);
        tokio::spawn(
            run_room(
                self.inner.clone(),
                handle.id,
                info.clone(),
                cmds_rx,
                events_rx,
            )
            .instrument(span),
        );
        Ok(handle)
    }
}

impl Inner {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<BroadcastId, RoomHandle>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every change is a single insert or remove), so poison is ignored.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shop_wide(&self, shop: &ShopId, except: &BroadcastId, event: &ShopEvent) {
        for (broadcast, h) in self.rooms().iter() {
            if h.shop == *shop && broadcast != except {
                let _ = h.events.send(RoomEvent::Shop(event.clone()));
            }
        }
    }
}

/// How often a room tries to read its starting state before giving up.
const LOAD_ATTEMPTS: u32 = 3;

/// Reads what the room starts from. A room whose bans, timeouts or blocked
/// words cannot be read does not open: opening with empty rules would let a
/// banned person chat and buy. Its joiners are told to try again later.
/// Pinned offers are different: without the order service a card is left
/// out, which hides a product but lets nobody past a rule.
async fn load(inner: &Inner, info: &RoomInfo) -> Result<Loaded, store::StoreError> {
    // Writes a previous run of this room queued must land before we read.
    inner.persist.flush().await;
    let store = &inner.store;
    let mut attempt = 0;
    let (mut loaded, pinned_offers) = loop {
        let now = inner.clock.now();
        let result: Result<(Loaded, Vec<domain::OfferId>), store::StoreError> = async {
            let room = store.live_room(&info.broadcast).await?;
            let pinned_message = match &room.pinned_message_id {
                Some(id) => store.chat_message(id).await?,
                None => None,
            };
            let loaded = Loaded {
                history: store
                    .chat_history(&info.broadcast, inner.config.recent_capacity as u32)
                    .await?,
                slow_mode_seconds: room.slow_mode_seconds,
                pinned_message,
                offers: Vec::new(),
                blocked_words: store.blocked_words(&info.shop).await?,
                bans: store.chat_bans(&info.shop).await?,
                timeouts: store.active_timeouts(&info.shop, now).await?,
            };
            Ok((loaded, room.pinned_offers))
        }
        .await;
        match result {
            Ok(ok) => break ok,
            Err(e) if attempt + 1 < LOAD_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "could not load the room's state; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    };
    for offer in pinned_offers {
        let card = tokio::time::timeout(
            Duration::from_secs(5),
            inner.commerce.offer_card(&info.broadcast, &offer),
        )
        .await;
        match card {
            Ok(Some(card)) => loaded.offers.push(card),
            Ok(None) => tracing::info!(%offer, "pinned offer no longer sold here; dropped"),
            Err(_) => tracing::warn!(%offer, "order service did not answer for a pinned offer"),
        }
    }
    Ok(loaded)
}

struct RoomTask {
    inner: Arc<Inner>,
    core: RoomCore,
    fanout: Fanout,
    /// All connections and the audience's, as last told to the core.
    connected: (usize, usize),
}

async fn run_room(
    inner: Arc<Inner>,
    room_id: u64,
    info: RoomInfo,
    mut cmds: mpsc::Receiver<RoomCmd>,
    mut events: mpsc::UnboundedReceiver<RoomEvent>,
) {
    let loaded = match load(&inner, &info).await {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(error = %e, "room not opened: its moderation rules could not be read");
            refuse_and_leave(&inner, room_id, &info.broadcast, cmds);
            return;
        }
    };
    let now = inner.clock.now();
    let start_seq = u64::try_from(now.millis())
        .unwrap_or(0)
        .saturating_mul(1000);
    let core = RoomCore::new(
        info.clone(),
        inner.config.clone(),
        loaded,
        start_seq,
        inner.ordinal.clone(),
        now,
    );
    let mut task = RoomTask {
        inner: inner.clone(),
        core,
        fanout: Fanout::new(),
        connected: (0, 0),
    };
    tracing::debug!(start_seq, "room open");

    let mut tick = tokio::time::interval(inner.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stall = inner.config.stall_timeout;
    let idle = inner.config.room_idle_close;
    let mut empty_since: Option<UnixMillis> = Some(now);

    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(RoomEvent::Shutdown(done)) => {
                    task.fanout.close_all(CloseReason::GOING_AWAY);
                    let _ = done.send(());
                    break;
                }
                Some(event) => task.handle_event(event),
                None => break,
            },
            cmd = cmds.recv() => match cmd {
                Some(cmd) => task.handle_cmd(cmd),
                None => break,
            },
            _ = tick.tick() => {
                let now = inner.clock.now();
                task.core.poll(now);
                for outcome in task.fanout.poll_lagging(now, stall) {
                    match outcome {
                        LagOutcome::Resync { id, missed } => {
                            let frame = task.core.snapshot_frame(SnapshotReason::Lagged, missed);
                            task.fanout.send_to(id, Outgoing::Frame(frame), now);
                        }
                        LagOutcome::Stalled { id } => tracing::info!(conn = %id, "closing a stalled connection"),
                    }
                }
                task.apply_effects();
                if task.fanout.is_empty() {
                    let since = *empty_since.get_or_insert(now);
                    if now.since(since) >= idle && task.try_close(&info.broadcast, room_id, &mut cmds) {
                        break;
                    }
                } else {
                    empty_since = None;
                }
            }
        }
        task.apply_effects();
    }
    // Anything still queued: joins are answered by dropping their reply, so
    // those connections open a fresh room.
    cmds.close();
    while cmds.try_recv().is_ok() {}
    let mut rooms = inner.rooms();
    if rooms.get(&info.broadcast).is_some_and(|h| h.id == room_id) {
        rooms.remove(&info.broadcast);
    }
    tracing::debug!("room closed");
}

/// Takes a room that could not open out of the hub's map, then tells every
/// connection that was waiting to join to come back later. Removal comes
/// first so that a retry opens a fresh room (and reads the database again)
/// instead of queueing behind this one.
fn refuse_and_leave(
    inner: &Inner,
    room_id: u64,
    broadcast: &BroadcastId,
    mut cmds: mpsc::Receiver<RoomCmd>,
) {
    {
        let mut rooms = inner.rooms();
        if rooms.get(broadcast).is_some_and(|h| h.id == room_id) {
            rooms.remove(broadcast);
        }
    }
    cmds.close();
    while let Ok(cmd) = cmds.try_recv() {
        if let RoomCmd::Join { reply, .. } = cmd {
            let _ = reply.send(Err(CloseReason::ROOM_UNAVAILABLE));
        }
    }
}

impl RoomTask {
    fn handle_cmd(&mut self, cmd: RoomCmd) {
        let now = self.inner.clock.now();
        match cmd {
            RoomCmd::Join {
                conn,
                who,
                tx,
                resume_from,
                reply,
            } => match self.core.handle_join(conn, &who, resume_from, now) {
                Ok(frames) => {
                    for f in frames {
                        // Fits: the queue is new and larger than any join.
                        let _ = tx.push(Outgoing::Frame(f));
                    }
                    self.fanout.attach(conn, who, tx);
                    if reply.send(Ok(())).is_err() {
                        self.fanout.detach(conn);
                    }
                }
                Err(reason) => {
                    let _ = reply.send(Err(reason));
                }
            },
            RoomCmd::Leave { conn } => {
                self.fanout.detach(conn);
            }
            RoomCmd::Command { conn, who, command } => {
                // A connection closed by the room (ban, stall) may still have
                // commands in flight; they no longer count.
                if self.fanout.contains(conn) {
                    self.core.handle_command(conn, &who, command, now);
                }
            }
        }
    }

    fn handle_event(&mut self, event: RoomEvent) {
        let now = self.inner.clock.now();
        match event {
            RoomEvent::Offer(card) => self.core.handle_offer_update(card, now),
            RoomEvent::Sale(t) => self.core.handle_sale(t, now),
            RoomEvent::Private(subject, ev) => self.core.handle_private(&subject, ev),
            RoomEvent::MediaViewers(n) => self.core.set_media_viewers(n, now),
            RoomEvent::State(s) => self.core.handle_broadcast_state(s),
            RoomEvent::Shop(ev) => self.core.apply_shop_event(ev, now),
            RoomEvent::Stats(reply) => {
                let _ = reply.send(RoomStats {
                    connections: self.fanout.len(),
                    lagging: self.fanout.lagging(),
                    seq: self.core.seq(),
                    viewers: self.core.room_state().viewers.count,
                });
            }
            RoomEvent::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    /// Carries out what the core decided, until nothing is left (a change in
    /// the number of connections is itself an input to the core).
    fn apply_effects(&mut self) {
        loop {
            let connected = (self.fanout.len(), self.fanout.audience());
            if connected != self.connected {
                self.connected = connected;
                self.core
                    .set_connected(connected.0, connected.1, self.inner.clock.now());
            }
            let effects = self.core.take_effects();
            if effects.is_empty() {
                return;
            }
            let now = self.inner.clock.now();
            for effect in effects {
                match effect {
                    Effect::Broadcast(frame) => {
                        let d = self.fanout.deliver(&frame, now);
                        if d.newly_lagging > 0 {
                            tracing::debug!(
                                seq = frame.seq,
                                lagging = d.newly_lagging,
                                "connections fell behind"
                            );
                        }
                    }
                    Effect::ToConn(id, ev) => {
                        self.fanout.send_to(id, Outgoing::Event(Box::new(ev)), now);
                    }
                    Effect::ToSubject(subject, ev) => {
                        self.fanout.send_to_subject(&subject, &ev, now);
                    }
                    Effect::ToModerators(ev) => {
                        self.fanout.send_to_moderators(&ev, now);
                    }
                    Effect::CloseSubject(subject, reason) => {
                        self.fanout.close_subject(&subject, reason);
                    }
                    Effect::Persist(w) => self.inner.persist.push(w),
                    Effect::ShopWide(ev) => {
                        let info = self.core.info();
                        if let ShopEvent::Banned { subject } = &ev {
                            let _ = self.inner.events.send(LiveEvent::Banned {
                                shop: info.shop.clone(),
                                subject: subject.clone(),
                            });
                        }
                        self.inner.shop_wide(&info.shop, &info.broadcast, &ev);
                        let _ = self.inner.events.send(LiveEvent::ShopWide {
                            shop: info.shop.clone(),
                            event: ev,
                        });
                    }
                }
            }
        }
    }

    /// Leaves the hub's map if nobody is about to join. Holding the map's
    /// lock, no new handle can be handed out; a join already sent is seen
    /// here as a non-empty queue.
    fn try_close(
        &mut self,
        broadcast: &BroadcastId,
        room_id: u64,
        cmds: &mut mpsc::Receiver<RoomCmd>,
    ) -> bool {
        let mut rooms = self.inner.rooms();
        if !cmds.is_empty() {
            return false;
        }
        if rooms.get(broadcast).is_some_and(|h| h.id == room_id) {
            rooms.remove(broadcast);
        }
        true
    }
}
