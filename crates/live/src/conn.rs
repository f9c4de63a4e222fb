//! The per-connection pump: a reader (this task) that validates frames and
//! hands commands to the room, and a writer task that drains the
//! connection's bounded queue into the socket and keeps it alive with pings.

use crate::fanout::{
    CloseSignal, ConnId, OutboxReceiver, OutboxSender, Outgoing, encode_json, outbox,
};
use crate::hub::{LiveHub, RoomCmd, RoomHandle};
use crate::limits::StrikeCounter;
use crate::room::Command;
use crate::{Participant, RoomInfo};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use domain::{ChatMessageId, ChatText, GuestId, OfferId, Reason, Role, UserId};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use protocol::{
    BuyRefusal, BuyRefusalCode, ClientMessage, CloseReason, CommandName, ErrorCode, Refusal,
    RefusalCode, ServerEvent,
};
use std::sync::Arc;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::Instrument;

pub(crate) async fn serve(
    hub: LiveHub,
    info: RoomInfo,
    who: Participant,
    socket: WebSocket,
    resume_from: Option<u64>,
) {
    let conn = hub.next_conn_id();
    let span = tracing::info_span!("live_conn", broadcast = %info.broadcast, %conn, subject = %who.subject);
    run(hub, conn, info, Arc::new(who), socket, resume_from)
        .instrument(span)
        .await
}

async fn run(
    hub: LiveHub,
    conn: ConnId,
    info: RoomInfo,
    who: Arc<Participant>,
    mut socket: WebSocket,
    resume_from: Option<u64>,
) {
    let config = hub.inner.config.clone();
    let (tx, rx) = outbox(config.outbox_capacity);

    // Join; a room that was closing as we arrived answers by dropping the
    // reply, and the next attempt opens it afresh.
    let mut joined: Option<RoomHandle> = None;
    for _ in 0..3 {
        let room = match hub.room(&info) {
            Ok(room) => room,
            Err(_) => break,
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let join = RoomCmd::Join {
            conn,
            who: who.clone(),
            tx: tx.clone(),
            resume_from,
            reply: reply_tx,
        };
        if room.cmds.send(join).await.is_err() {
            continue;
        }
        match reply_rx.await {
            Ok(Ok(())) => {
                joined = Some(room);
                break;
            }
            Ok(Err(reason)) => {
                tracing::info!(reason = reason.reason, "connection refused");
                close_now(&mut socket, reason, &config).await;
                return;
            }
            Err(_) => continue,
        }
    }
    let Some(room) = joined else {
        close_now(&mut socket, CloseReason::GOING_AWAY, &config).await;
        return;
    };
    tracing::debug!(?resume_from, "joined");

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, rx, config.clone()).in_current_span());
    let mut reader = Reader {
        hub: hub.clone(),
        conn,
        info,
        who,
        room: room.clone(),
        tx: tx.clone(),
        strikes: StrikeCounter::new(config.max_bad_frames, config.bad_frame_window),
        buys: Arc::new(Semaphore::new(config.buys_in_flight)),
    };
    reader.read_loop(stream).await;

    tx.peer_gone();
    let _ = room.cmds.send(RoomCmd::Leave { conn }).await;
    drop(reader);
    let _ = tokio::time::timeout(config.close_grace + config.close_grace, writer).await;
    tracing::debug!("connection closed");
}

/// The close frame owed to a client whose frame the websocket layer could
/// not read (RFC 6455 §7.4.1): a text frame that is not UTF-8 (1007), one
/// over the size limit (1009), a protocol violation (1002). A connection
/// that just vanished is owed nothing.
fn close_for(error: axum::Error) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match *error.into_inner().downcast::<Error>().ok()? {
        Error::Utf8(_) => Some(CloseReason::INVALID_UTF8),
        Error::Capacity(_) => Some(CloseReason::MESSAGE_TOO_BIG),
        Error::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::ReceivedAfterClosing,
        ) => None,
        Error::Protocol(_) => Some(CloseReason::PROTOCOL_ERROR),
        _ => None,
    }
}

async fn close_now(socket: &mut WebSocket, reason: CloseReason, config: &crate::LiveConfig) {
    let frame = Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: Utf8Bytes::from_static(reason.reason),
    }));
    let _ = tokio::time::timeout(config.close_grace, socket.send(frame)).await;
}

struct Reader {
    hub: LiveHub,
    conn: ConnId,
    info: RoomInfo,
    who: Arc<Participant>,
    room: RoomHandle,
    tx: OutboxSender,
    strikes: StrikeCounter,
    buys: Arc<Semaphore>,
}

/// The reader's verdict on one frame.
enum Flow {
    Continue,
    /// Stop reading commands; the connection is closing.
    Closing,
}

impl Reader {
    async fn read_loop(&mut self, mut stream: SplitStream<WebSocket>) {
        let config = self.hub.inner.config.clone();
        let mut close_rx = self.tx.subscribe_close();
        let mut last_heard = Instant::now();
        // Once set, we only wait (until then) for the peer's close reply.
        let mut closing_until: Option<Instant> = None;
        loop {
            let deadline = closing_until.unwrap_or(last_heard + config.idle_timeout);
            tokio::select! {
                msg = stream.next() => {
                    let msg = match msg {
                        Some(Ok(msg)) => msg,
                        Some(Err(error)) if closing_until.is_none() => {
                            if let Some(reason) = close_for(error) {
                                tracing::info!(code = reason.code, reason = reason.reason, "unreadable frame, closing");
                                self.tx.close(reason);
                                // The socket cannot be read any more. Keep it
                                // open a moment so the close frame arrives
                                // instead of a reset for unread bytes.
                                sleep(config.close_grace).await;
                            }
                            return;
                        }
                        _ => return,
                    };
                    last_heard = Instant::now();
                    if closing_until.is_some() {
                        // The peer's answer to our close: nothing more to read.
                        if let Message::Close(_) = msg {
                            return;
                        }
                        continue;
                    }
                    if let Flow::Closing = self.handle(msg).await {
                        closing_until = Some(Instant::now() + config.close_grace);
                    }
                }
                _ = sleep_until(deadline) => {
                    if closing_until.is_some() {
                        return;
                    }
                    tracing::info!("idle: nothing heard, closing");
                    self.tx.close(CloseReason::IDLE_TIMEOUT);
                    closing_until = Some(Instant::now() + config.close_grace);
                }
                changed = close_rx.changed(), if closing_until.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                    match *close_rx.borrow_and_update() {
                        CloseSignal::Close(_) => closing_until = Some(Instant::now() + config.close_grace),
                        CloseSignal::PeerGone => return,
                        CloseSignal::Open => {}
                    }
                }
            }
        }
    }

    fn now(&self) -> domain::UnixMillis {
        self.hub.inner.clock.now()
    }

    fn private(&self, event: ServerEvent) {
        // A full queue means the room is already resyncing this connection.
        let _ = self.tx.push(Outgoing::Event(Box::new(event)));
    }

    fn refuse(
        &self,
        command: CommandName,
        nonce: Option<String>,
        code: RefusalCode,
        message: impl Into<String>,
    ) {
        self.private(ServerEvent::Refused(Refusal {
            command,
            nonce,
            code,
            message: message.into(),
            retry_after_ms: None,
        }));
    }

    /// A malformed frame: tell the sender, and close on repeated garbage.
    fn bad_frame(&mut self, code: ErrorCode, message: impl Into<String>) -> Flow {
        self.private(ServerEvent::Error {
            code,
            message: message.into(),
        });
        if self.strikes.hit(self.now()) {
            tracing::info!("too many malformed frames, closing");
            self.tx.close(CloseReason::TOO_MANY_BAD_FRAMES);
            return Flow::Closing;
        }
        Flow::Continue
    }

    async fn handle(&mut self, msg: Message) -> Flow {
        let max = self.hub.inner.config.max_frame_bytes;
        match msg {
            Message::Text(text) if text.len() > max => self.bad_frame(
                ErrorCode::TooLarge,
                format!("Frames are at most {max} bytes."),
            ),
            Message::Text(text) => match serde_json::from_str::<ClientMessage>(text.as_str()) {
                Ok(m) => self.dispatch(m).await,
                Err(e) => {
                    let (code, message) = classify(text.as_str(), &e);
                    self.bad_frame(code, message)
                }
            },
            Message::Binary(_) => {
                self.bad_frame(ErrorCode::BinaryNotSupported, "Send JSON text frames.")
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Flow::Continue,
        }
    }

    async fn forward(&self, command: Command) -> Flow {
        let cmd = RoomCmd::Command {
            conn: self.conn,
            who: self.who.clone(),
            command,
        };
        match self.room.cmds.send(cmd).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Closing,
        }
    }

    async fn dispatch(&mut self, msg: ClientMessage) -> Flow {
        let name = msg.name();
        match msg {
            ClientMessage::Ping { id } => {
                self.private(ServerEvent::Pong { id });
                Flow::Continue
            }
            ClientMessage::Chat { text, nonce } => {
                if self.who.anonymous {
                    self.refuse(
                        name,
                        Some(nonce),
                        RefusalCode::NicknameRequired,
                        "Pick a nickname to chat.",
                    );
                    return Flow::Continue;
                }
                if !valid_nonce(&nonce) {
                    self.refuse(
                        name,
                        None,
                        RefusalCode::InvalidRequest,
                        "A nonce is 1 to 64 visible characters.",
                    );
                    return Flow::Continue;
                }
                match ChatText::parse(&text) {
                    Ok(text) => self.forward(Command::Chat { text, nonce }).await,
                    Err(invalid) => {
                        let message = format!("Your message {}.", invalid.message);
                        self.refuse(name, Some(nonce), RefusalCode::InvalidText, message);
                        Flow::Continue
                    }
                }
            }
            ClientMessage::Buy {
                offer,
                quantity,
                nonce,
            } => {
                self.buy(offer, quantity, nonce);
                Flow::Continue
            }
            ClientMessage::DeleteMessage { message } => match ChatMessageId::parse(&message) {
                Ok(message) => self.forward(Command::DeleteMessage { message }).await,
                Err(_) => self.invalid(name, "Not a message id."),
            },
            ClientMessage::PinMessage { message } => match ChatMessageId::parse(&message) {
                Ok(message) => self.forward(Command::PinMessage { message }).await,
                Err(_) => self.invalid(name, "Not a message id."),
            },
            ClientMessage::Timeout {
                subject,
                seconds,
                reason,
            } => {
                let Some((subject, reason)) = self.person_and_reason(name, subject, reason) else {
                    return Flow::Continue;
                };
                let Some(target_role) = self.target_role(name, &subject).await else {
                    return Flow::Continue;
                };
                self.forward(Command::Timeout {
                    subject,
                    target_role,
                    seconds,
                    reason,
                })
                .await
            }
            ClientMessage::Ban { subject, reason } => {
                let Some((subject, reason)) = self.person_and_reason(name, subject, reason) else {
                    return Flow::Continue;
                };
                let Some(target_role) = self.target_role(name, &subject).await else {
                    return Flow::Continue;
                };
                self.forward(Command::Ban {
                    subject,
                    target_role,
                    reason,
                })
                .await
            }
            ClientMessage::Unban { subject } => {
                let Some((subject, _)) = self.person_and_reason(name, subject, None) else {
                    return Flow::Continue;
                };
                let Some(target_role) = self.target_role(name, &subject).await else {
                    return Flow::Continue;
                };
                self.forward(Command::Unban {
                    subject,
                    target_role,
                })
                .await
            }
            ClientMessage::SetSlowMode { seconds } => {
                self.forward(Command::SetSlowMode { seconds }).await
            }
            ClientMessage::SetBlockedWords { words } => {
                self.forward(Command::SetBlockedWords { words }).await
            }
            ClientMessage::UnpinMessage => self.forward(Command::UnpinMessage).await,
            ClientMessage::ClearChat => self.forward(Command::ClearChat).await,
            ClientMessage::PinOffer { offer } => {
                let Ok(offer) = OfferId::parse(&offer) else {
                    return self.invalid(name, "Not an offer id.");
                };
                // Only ask the order service on behalf of someone who may pin.
                let card = if self.who.role.can_moderate() && !self.who.anonymous {
                    let ask = self
                        .hub
                        .inner
                        .commerce
                        .offer_card(&self.info.broadcast, &offer);
                    match tokio::time::timeout(self.hub.inner.config.buy_timeout, ask).await {
                        Ok(card) => card,
                        Err(_) => {
                            self.refuse(
                                name,
                                None,
                                RefusalCode::Unavailable,
                                "The shop's stock could not be reached.",
                            );
                            return Flow::Continue;
                        }
                    }
                } else {
                    None
                };
                self.forward(Command::PinOffer { offer, card }).await
            }
            ClientMessage::UnpinOffer { offer } => match OfferId::parse(&offer) {
                Ok(offer) => self.forward(Command::UnpinOffer { offer }).await,
                Err(_) => self.invalid(name, "Not an offer id."),
            },
        }
    }

    fn invalid(&self, name: CommandName, message: &str) -> Flow {
        self.refuse(name, None, RefusalCode::InvalidRequest, message);
        Flow::Continue
    }

    fn person_and_reason(
        &self,
        name: CommandName,
        subject: String,
        reason: Option<String>,
    ) -> Option<(String, Reason)> {
        if UserId::parse(&subject).is_err() && GuestId::parse(&subject).is_err() {
            self.invalid(name, "Not a person's id.");
            return None;
        }
        match Reason::parse(reason.as_deref().unwrap_or("")) {
            Ok(reason) => Some((subject, reason)),
            Err(invalid) => {
                self.invalid(name, &format!("The reason {}.", invalid.message));
                None
            }
        }
    }

    /// The target's role in the shop, from the database (the source of
    /// truth for who is a moderator). Only looked up for actors who may
    /// moderate at all; for others the room refuses before it matters.
    async fn target_role(&self, name: CommandName, subject: &str) -> Option<Role> {
        if !self.who.role.can_moderate() || self.who.anonymous {
            return Some(Role::Viewer);
        }
        match self
            .hub
            .inner
            .store
            .role_in_shop(&self.info.shop, subject)
            .await
        {
            Ok(role) => Some(role),
            Err(e) => {
                tracing::error!(error = %e, "role lookup failed");
                self.refuse(name, None, RefusalCode::Unavailable, "Please try again.");
                None
            }
        }
    }

    /// Hands a "buy now" to the order service without holding up this
    /// connection's reading; the answer comes back privately.
    fn buy(&self, offer: String, quantity: u32, nonce: String) {
        let name = CommandName::Buy;
        if self.who.anonymous {
            self.refuse(
                name,
                Some(nonce),
                RefusalCode::NicknameRequired,
                "Pick a nickname to buy.",
            );
            return;
        }
        if !valid_nonce(&nonce) {
            self.refuse(
                name,
                None,
                RefusalCode::InvalidRequest,
                "A nonce is 1 to 64 visible characters.",
            );
            return;
        }
        let Ok(offer) = OfferId::parse(&offer) else {
            self.refuse(
                name,
                Some(nonce),
                RefusalCode::InvalidRequest,
                "Not an offer id.",
            );
            return;
        };
        if quantity == 0 {
            self.private(ServerEvent::BuyRefused {
                nonce,
                offer,
                refusal: BuyRefusal::new(BuyRefusalCode::InvalidQuantity, "Choose at least one."),
            });
            return;
        }
        let Ok(permit) = self.buys.clone().try_acquire_owned() else {
            self.refuse(
                name,
                Some(nonce),
                RefusalCode::Busy,
                "Your previous order is still being placed.",
            );
            return;
        };
        let commerce = self.hub.inner.commerce.clone();
        let timeout = self.hub.inner.config.buy_timeout;
        let broadcast = self.info.broadcast.clone();
        let who = self.who.clone();
        let tx = self.tx.clone();
        let span = tracing::info_span!("buy", %offer, quantity);
        tokio::spawn(
            async move {
                let answer = tokio::time::timeout(
                    timeout,
                    commerce.buy(&broadcast, &who, &offer, quantity, &nonce),
                )
                .await;
                let event = match answer {
                    Ok(Ok(mut info)) => {
                        info.nonce.get_or_insert(nonce);
                        tracing::info!(reservation = %info.reservation, "reserved");
                        ServerEvent::Reservation(info)
                    }
                    Ok(Err(refusal)) => ServerEvent::BuyRefused {
                        nonce,
                        offer,
                        refusal,
                    },
                    Err(_) => {
                        tracing::warn!("order service timed out");
                        ServerEvent::BuyRefused {
                            nonce,
                            offer,
                            refusal: BuyRefusal::new(
                                BuyRefusalCode::Unavailable,
                                "The shop is busy; please try again.",
                            ),
                        }
                    }
                };
                let _ = tx.push(Outgoing::Event(Box::new(event)));
                drop(permit);
            }
            .instrument(span),
        );
    }
}

fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= protocol::MAX_NONCE_LEN
        && nonce.chars().all(|c| !c.is_control())
}

/// Tells apart "not JSON", "unknown type" and "known type, wrong fields".
pub(crate) fn classify(text: &str, error: &serde_json::Error) -> (ErrorCode, String) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return (ErrorCode::NotJson, "Frames must be JSON objects.".into());
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => (
            ErrorCode::InvalidMessage,
            "Every message needs a \"type\".".into(),
        ),
        Some(t) => {
            let known = serde_json::from_value::<protocol::CommandName>(serde_json::Value::String(
                t.to_owned(),
            ));
            if known.is_err() {
                (
                    ErrorCode::UnknownType,
                    format!("Unknown message type {t:?}."),
                )
            } else {
                (
                    ErrorCode::InvalidMessage,
                    format!("Invalid {t:?} message: {error}."),
                )
            }
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    rx: OutboxReceiver,
    config: Arc<crate::LiveConfig>,
) {
    let OutboxReceiver {
        mut queue,
        mut close,
    } = rx;
    let mut last_seq = 0u64;
    let mut batch: Vec<Outgoing> = Vec::with_capacity(64);
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    let reason = loop {
        match *close.borrow_and_update() {
            CloseSignal::Close(reason) => break Some(reason),
            CloseSignal::PeerGone => break None,
            CloseSignal::Open => {}
        }
        tokio::select! {
            biased;
            changed = close.changed() => if changed.is_err() { break None },
            n = queue.recv_many(&mut batch, 64) => {
                if n == 0 {
                    break None;
                }
                // A close (say, a stalled client) must not wait for a
                // write that may never finish.
                tokio::select! {
                    written = write_batch(&mut sink, &mut batch, &mut last_seq) => if written.is_err() { break None },
                    changed = close.changed() => if changed.is_err() { break None },
                }
            }
            _ = ping.tick() => {
                tokio::select! {
                    sent = sink.send(Message::Ping(Default::default())) => if sent.is_err() { break None },
                    changed = close.changed() => if changed.is_err() { break None },
                }
            }
        }
    };
    if let Some(reason) = reason {
        let frame = Message::Close(Some(CloseFrame {
            code: reason.code,
            reason: Utf8Bytes::from_static(reason.reason),
        }));
        // Queued behind whatever is still buffered: a client that reads
        // again gets its frames, then the reason.
        let _ = tokio::time::timeout(config.close_grace, sink.send(frame)).await;
    }
}

async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &mut Vec<Outgoing>,
    last_seq: &mut u64,
) -> Result<(), axum::Error> {
    for item in batch.drain(..) {
        let text = match item {
            Outgoing::Frame(frame) => {
                *last_seq = frame.seq;
                frame.text
            }
            Outgoing::Event(event) => Utf8Bytes::from(encode_json(*last_seq, &event)),
        };
        sink.feed(Message::Text(text)).await?;
    }
    sink.flush().await
}
