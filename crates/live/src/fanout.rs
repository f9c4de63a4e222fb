//! Fan-out: one serialized frame, many bounded per-connection queues.
//!
//! The room task owns a [`Fanout`] outright, so delivering an event takes no
//! lock: the frame is serialized once into shared bytes, and each connection
//! gets a reference-counted clone pushed into its own bounded queue with a
//! non-blocking `try_send`. A queue that is full marks its connection as
//! lagging: from then on chat is skipped for it (and counted), nothing else
//! is queued, and once its writer has drained the queue the room sends it a
//! fresh snapshot. A connection that stays full past the stall timeout is
//! closed with 4002 `too_slow`. No connection can slow the loop down: the
//! worst it costs is one failed `try_send`.

use crate::Participant;
use axum::extract::ws::Utf8Bytes;
use domain::{Role, UnixMillis};
use protocol::{CloseReason, ServerEvent, ServerFrame};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A connection's id within this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A chat message: may be skipped for a lagging connection (counted).
    Chat,
    /// Another replayable room message (deletion, clear, hidden author, sale).
    Log,
    /// Latest-state room message: superseded by the next snapshot.
    State,
    /// Addressed to one connection (hello, snapshot): never replayed.
    Private,
}

/// A serialized server frame, cheap to clone (shared bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    pub kind: FrameKind,
    pub text: Utf8Bytes,
}

#[derive(Serialize)]
struct FrameRef<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a ServerEvent,
}

impl Frame {
    /// Serializes once; every clone shares the bytes.
    pub fn encode(seq: u64, kind: FrameKind, event: &ServerEvent) -> Frame {
        Frame {
            seq,
            kind,
            text: Utf8Bytes::from(encode_json(seq, event)),
        }
    }

    #[cfg(test)]
    pub(crate) fn raw(seq: u64, kind: FrameKind, text: String) -> Frame {
        Frame {
            seq,
            kind,
            text: Utf8Bytes::from(text),
        }
    }
}

pub(crate) fn encode_json(seq: u64, event: &ServerEvent) -> String {
    // Our own types only hold strings, numbers and enums: serialization
    // cannot fail, so a failure is a bug worth a loud log, not a panic.
    serde_json::to_string(&FrameRef { seq, event }).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialize a server frame");
        serde_json::to_string(&ServerFrame {
            seq,
            event: ServerEvent::Error {
                code: protocol::ErrorCode::InvalidMessage,
                message: "internal error".into(),
            },
        })
        .unwrap_or_default()
    })
}

/// What a connection's writer sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// Pre-serialized; carries its own seq.
    Frame(Frame),
    /// Private to this connection; serialized by the writer with the seq of
    /// the last room frame it wrote.
    Event(Box<ServerEvent>),
}

/// How a connection should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseSignal {
    Open,
    /// The server closes with this code and reason.
    Close(CloseReason),
    /// The peer went away; nothing more to send.
    PeerGone,
}

/// Creates a connection's bounded queue and close signal.
pub fn outbox(capacity: usize) -> (OutboxSender, OutboxReceiver) {
    let (queue_tx, queue_rx) = mpsc::channel(capacity.max(1));
    let (close_tx, close_rx) = watch::channel(CloseSignal::Open);
    (
        OutboxSender {
            queue: queue_tx,
            close: Arc::new(close_tx),
        },
        OutboxReceiver {
            queue: queue_rx,
            close: close_rx,
        },
    )
}

#[derive(Clone, Debug)]
pub struct OutboxSender {
    queue: mpsc::Sender<Outgoing>,
    close: Arc<watch::Sender<CloseSignal>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    Full,
    Closed,
}

impl OutboxSender {
    /// Never waits.
    pub fn push(&self, item: Outgoing) -> Result<(), PushError> {
        self.queue.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Closed,
        })
    }

    /// Asks the writer to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.signal(CloseSignal::Close(reason));
    }

    pub fn peer_gone(&self) {
        self.signal(CloseSignal::PeerGone);
    }

    fn signal(&self, signal: CloseSignal) {
        self.close.send_if_modified(|s| {
            if *s == CloseSignal::Open {
                *s = signal;
                true
            } else {
                false
            }
        });
    }

    /// Follows the close signal (for the connection's reader).
    pub fn subscribe_close(&self) -> watch::Receiver<CloseSignal> {
        self.close.subscribe()
    }

    pub fn close_signal(&self) -> CloseSignal {
        *self.close.borrow()
    }

    /// The writer has taken everything queued.
    pub fn is_drained(&self) -> bool {
        self.queue.capacity() == self.queue.max_capacity()
    }
}

#[derive(Debug)]
pub struct OutboxReceiver {
    pub queue: mpsc::Receiver<Outgoing>,
    pub close: watch::Receiver<CloseSignal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lag {
    pub since: UnixMillis,
    /// Chat messages skipped since the queue filled.
    pub missed: u64,
}

#[derive(Debug)]
struct Slot {
    id: ConnId,
    who: Arc<Participant>,
    tx: OutboxSender,
    lag: Option<Lag>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: usize,
    /// Connections whose queue filled with this frame.
    pub newly_lagging: usize,
    /// Connections already lagging, skipped.
    pub skipped: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagOutcome {
    /// Drained: send it a snapshot (it missed `missed` chat messages).
    Resync { id: ConnId, missed: u64 },
    /// Stuck past the stall timeout: closed with 4002 and detached.
    Stalled { id: ConnId },
}

/// The connections of one room. Owned by one task; no locks.
#[derive(Debug, Default)]
pub struct Fanout {
    slots: Vec<Slot>,
    index: HashMap<ConnId, usize>,
    by_subject: HashMap<String, Vec<ConnId>>,
    /// Connections of the shop's owner (the studio, or the owner's own
    /// look at the room): not part of the audience.
    owners: usize,
}

impl Fanout {
    pub fn new() -> Fanout {
        Fanout::default()
    }

    pub fn attach(&mut self, id: ConnId, who: Arc<Participant>, tx: OutboxSender) {
        self.owners += usize::from(who.role == Role::Owner);
        self.by_subject
            .entry(who.subject.clone())
            .or_default()
            .push(id);
        self.index.insert(id, self.slots.len());
        self.slots.push(Slot {
            id,
            who,
            tx,
            lag: None,
        });
    }

    pub fn detach(&mut self, id: ConnId) -> Option<Arc<Participant>> {
        let i = self.index.remove(&id)?;
        let slot = self.slots.swap_remove(i);
        self.owners -= usize::from(slot.who.role == Role::Owner);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.id, i);
        }
        if let Some(ids) = self.by_subject.get_mut(&slot.who.subject) {
            ids.retain(|c| *c != id);
            if ids.is_empty() {
                self.by_subject.remove(&slot.who.subject);
            }
        }
        Some(slot.who)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Connections of people watching: all but the owner's.
    pub fn audience(&self) -> usize {
        self.slots.len() - self.owners
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn lagging(&self) -> usize {
        self.slots.iter().filter(|s| s.lag.is_some()).count()
    }

    pub fn contains(&self, id: ConnId) -> bool {
        self.index.contains_key(&id)
    }

    pub fn participant(&self, id: ConnId) -> Option<&Arc<Participant>> {
        self.index.get(&id).map(|i| &self.slots[*i].who)
    }

    /// Someone with this subject is connected; their role as connected.
    pub fn role_of(&self, subject: &str) -> Option<domain::Role> {
        let id = self.by_subject.get(subject)?.first()?;
        self.participant(*id).map(|p| p.role)
    }

    /// The hot path: one room frame to every connection.
    pub fn deliver(&mut self, frame: &Frame, now: UnixMillis) -> Delivery {
        let mut report = Delivery::default();
        let is_chat = frame.kind == FrameKind::Chat;
        for slot in &mut self.slots {
            if let Some(lag) = &mut slot.lag {
                lag.missed += u64::from(is_chat);
                report.skipped += 1;
                continue;
            }
            match slot.tx.push(Outgoing::Frame(frame.clone())) {
                Ok(()) => report.delivered += 1,
                Err(PushError::Full) => {
                    slot.lag = Some(Lag {
                        since: now,
                        missed: u64::from(is_chat),
                    });
                    report.newly_lagging += 1;
                }
                // The connection is ending; its task detaches it.
                Err(PushError::Closed) => {}
            }
        }
        report
    }

    /// Queues `item` for one connection unless it is lagging.
    pub fn send_to(&mut self, id: ConnId, item: Outgoing, now: UnixMillis) -> bool {
        let Some(i) = self.index.get(&id) else {
            return false;
        };
        push_one(&mut self.slots[*i], item, now)
    }

    /// A private event to every connection of one person.
    pub fn send_to_subject(
        &mut self,
        subject: &str,
        event: &ServerEvent,
        now: UnixMillis,
    ) -> usize {
        let Some(ids) = self.by_subject.get(subject) else {
            return 0;
        };
        let mut sent = 0;
        for id in ids.clone() {
            if let Some(i) = self.index.get(&id)
                && push_one(
                    &mut self.slots[*i],
                    Outgoing::Event(Box::new(event.clone())),
                    now,
                )
            {
                sent += 1;
            }
        }
        sent
    }

    /// A private event to the owner's and moderators' connections.
    pub fn send_to_moderators(&mut self, event: &ServerEvent, now: UnixMillis) -> usize {
        let mut sent = 0;
        for slot in &mut self.slots {
            if slot.who.role.can_moderate()
                && push_one(slot, Outgoing::Event(Box::new(event.clone())), now)
            {
                sent += 1;
            }
        }
        sent
    }

    /// Closes and detaches every connection of one person.
    pub fn close_subject(&mut self, subject: &str, reason: CloseReason) -> usize {
        let ids = self.by_subject.get(subject).cloned().unwrap_or_default();
        for id in &ids {
            if let Some(i) = self.index.get(id) {
                self.slots[*i].tx.close(reason);
            }
            self.detach(*id);
        }
        ids.len()
    }

    pub fn close_all(&mut self, reason: CloseReason) {
        for slot in self.slots.drain(..) {
            slot.tx.close(reason);
        }
        self.index.clear();
        self.by_subject.clear();
        self.owners = 0;
    }

    /// Housekeeping for lagging connections: resync the drained ones, close
    /// the ones stuck for longer than `stall`.
    pub fn poll_lagging(&mut self, now: UnixMillis, stall: Duration) -> Vec<LagOutcome> {
        let mut out = Vec::new();
        for slot in &mut self.slots {
            let Some(lag) = slot.lag else { continue };
            if slot.tx.is_drained() {
                slot.lag = None;
                out.push(LagOutcome::Resync {
                    id: slot.id,
                    missed: lag.missed,
                });
            } else if now.since(lag.since) >= stall {
                slot.tx.close(CloseReason::TOO_SLOW);
                out.push(LagOutcome::Stalled { id: slot.id });
            }
        }
        for o in &out {
            if let LagOutcome::Stalled { id } = o {
                self.detach(*id);
            }
        }
        out
    }
}

fn push_one(slot: &mut Slot, item: Outgoing, now: UnixMillis) -> bool {
    if slot.lag.is_some() {
        return false;
    }
    match slot.tx.push(item) {
        Ok(()) => true,
        Err(PushError::Full) => {
            slot.lag = Some(Lag {
                since: now,
                missed: 0,
            });
            false
        }
        Err(PushError::Closed) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{DisplayName, Role};

    fn ms(millis: i64) -> UnixMillis {
        UnixMillis::from_millis(millis)
    }

    const STALL: Duration = Duration::from_secs(10);

    fn who(subject: &str, role: Role) -> Arc<Participant> {
        Arc::new(Participant {
            subject: subject.into(),
            name: DisplayName::parse("x").unwrap(),
            role,
            signed_in: false,
            anonymous: false,
        })
    }

    fn chat(seq: u64) -> Frame {
        Frame::raw(seq, FrameKind::Chat, format!("{{\"seq\":{seq}}}"))
    }

    #[test]
    fn a_full_queue_lags_skips_chat_and_resyncs_once_drained() {
        let mut f = Fanout::new();
        let (fast_tx, mut fast_rx) = outbox(8);
        let (slow_tx, mut slow_rx) = outbox(2);
        f.attach(ConnId(1), who("gst_fast", Role::Viewer), fast_tx);
        f.attach(ConnId(2), who("gst_slow", Role::Viewer), slow_tx);

        for seq in 1..=5 {
            f.deliver(&chat(seq), ms(1_000));
        }
        assert_eq!(f.lagging(), 1);
        let mut got = Vec::new();
        while let Ok(Outgoing::Frame(fr)) = fast_rx.queue.try_recv() {
            got.push(fr.seq);
        }
        assert_eq!(got, vec![1, 2, 3, 4, 5], "the fast one got everything");

        // Still full: nothing to do until the stall timeout.
        assert_eq!(f.poll_lagging(ms(2_000), STALL), vec![]);
        while slow_rx.queue.try_recv().is_ok() {}
        assert_eq!(
            f.poll_lagging(ms(2_100), STALL),
            vec![LagOutcome::Resync {
                id: ConnId(2),
                missed: 3
            }]
        );
        assert_eq!(f.lagging(), 0);
        assert_eq!(
            f.deliver(&chat(6), ms(2_200)).delivered,
            2,
            "back in the flow"
        );
    }

    #[test]
    fn a_stuck_connection_is_closed_too_slow_and_detached() {
        let mut f = Fanout::new();
        let (tx, rx) = outbox(1);
        f.attach(ConnId(1), who("gst_stuck", Role::Viewer), tx);
        f.deliver(&chat(1), ms(0));
        f.deliver(&chat(2), ms(0));
        assert_eq!(f.poll_lagging(ms(9_999), STALL), vec![]);
        assert_eq!(
            f.poll_lagging(ms(10_000), STALL),
            vec![LagOutcome::Stalled { id: ConnId(1) }]
        );
        assert!(f.is_empty());
        assert_eq!(
            *rx.close.borrow(),
            CloseSignal::Close(CloseReason::TOO_SLOW)
        );
    }

    #[test]
    fn the_owners_pages_are_not_audience() {
        let mut f = Fanout::new();
        f.attach(ConnId(1), who("usr_owner", Role::Owner), outbox(4).0);
        assert_eq!((f.len(), f.audience()), (1, 0), "the studio alone");
        f.attach(ConnId(2), who("usr_owner", Role::Owner), outbox(4).0);
        f.attach(ConnId(3), who("usr_m", Role::Moderator), outbox(4).0);
        f.attach(ConnId(4), who("gst_a", Role::Viewer), outbox(4).0);
        assert_eq!((f.len(), f.audience()), (4, 2));
        f.close_subject("usr_owner", CloseReason::TOO_SLOW);
        assert_eq!((f.len(), f.audience()), (2, 2));
        f.detach(ConnId(4));
        assert_eq!((f.len(), f.audience()), (1, 1));
        f.close_all(CloseReason::TOO_SLOW);
        f.attach(ConnId(5), who("gst_b", Role::Viewer), outbox(4).0);
        assert_eq!((f.len(), f.audience()), (1, 1));
    }

    #[test]
    fn private_sends_reach_one_person_or_the_moderators() {
        let mut f = Fanout::new();
        let (a1, mut a1_rx) = outbox(4);
        let (a2, mut a2_rx) = outbox(4);
        let (m, mut m_rx) = outbox(4);
        f.attach(ConnId(1), who("gst_a", Role::Viewer), a1);
        f.attach(ConnId(2), who("gst_a", Role::Viewer), a2);
        f.attach(ConnId(3), who("usr_m", Role::Moderator), m);
        let ev = ServerEvent::Pong { id: Some(1) };
        assert_eq!(f.send_to_subject("gst_a", &ev, ms(0)), 2);
        assert_eq!(f.send_to_moderators(&ev, ms(0)), 1);
        assert!(
            a1_rx.queue.try_recv().is_ok()
                && a2_rx.queue.try_recv().is_ok()
                && m_rx.queue.try_recv().is_ok()
        );
        assert!(m_rx.queue.try_recv().is_err(), "one each");

        assert_eq!(f.close_subject("gst_a", CloseReason::BANNED), 2);
        assert_eq!(f.len(), 1);
        assert_eq!(f.role_of("gst_a"), None);
        assert_eq!(f.role_of("usr_m"), Some(Role::Moderator));
        assert_eq!(
            f.participant(ConnId(3)).unwrap().subject,
            "usr_m",
            "index fixed after swap_remove"
        );
    }
}
