//! A room (one broadcast): a sans-I/O core, [`Room`], and the task that drives it
//! ([`shell::run`]).
//!
//! The core owns the publisher's and every viewer's sans-I/O `RTCPeerConnection`
//! and all forwarding state. It is driven with an explicit `now`: datagrams and
//! control calls in, [`Output`]s (datagrams to send, sessions closed) out through
//! the [`Outbox`] its driver gave it, and
//! [`Room::poll_timeout`] says when to call [`Room::handle_timeout`]. It touches no
//! socket, channel receiver or clock, so its behaviour is testable on a simulated
//! clock (see `tests.rs`). The shell owns the sockets, the mailbox and the time.
//!
//! Split along its seams: `peer` (one peer connection), `publisher` (ingest,
//! streams, keyframe requests upstream), `viewer` (joining, fan-out, layer choice),
//! `rtcp` (viewer feedback, NACK answers, sender reports), `stats` (the room's
//! stats and media counters).

mod peer;
mod publisher;
mod rtcp;
pub(crate) mod shell;
mod stats;
#[cfg(test)]
mod tests;
mod viewer;

use crate::config::SfuConfig;
use crate::egress::{Outgoing, ViewerLegs};
use crate::error::SfuError;
use crate::forward::SourceId;
use crate::net::{CountGuard, SessionSockets};
use crate::pending::PendingSlot;
use crate::sdp::{OfferSummary, PublisherChoice};
use crate::tap::TapSender;
use crate::{EndReason, RoomStats, SessionId, SfuEvent};
use bytes::BytesMut;
use peer::Peer;
use publisher::{Publisher, Source};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use rtc::shared::TransportContext;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};
use viewer::Viewer;

pub(crate) use stats::MediaCounters;

pub(crate) enum RoomMsg {
    Net {
        session: u64,
        transport: TransportContext,
        data: BytesMut,
        at: Instant,
    },
    AddPublisher(Box<NewPeer>),
    AddViewer(
        Box<NewPeer>,
        Box<ViewerLegs>,
        oneshot::Sender<Result<(), SfuError>>,
    ),
    Candidates {
        session: u64,
        candidates: Vec<RTCIceCandidateInit>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    End {
        session: u64,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Close(EndReason),
    /// Copy the publisher's packets to a recorder from now on.
    AddTap(TapSender),
    /// Ask the publisher for a keyframe on every video stream (rate-limited).
    RequestKeyframe,
}

pub(crate) struct NewPeer {
    pub key: u64,
    pub id: SessionId,
    pub ufrag: String,
    pub pc: RTCPeerConnection,
    pub sockets: SessionSockets,
    pub guard: CountGuard,
    /// The session's place among the unconnected ones, given back on connect.
    pub pending: PendingSlot,
    pub choice: Option<PublisherChoice>,
}

/// What the control plane knows of a session (by its public id).
#[derive(Debug, Clone)]
pub(crate) struct SessionEntry {
    pub key: u64,
    /// The server's ICE ufrag (the session's entity tag).
    pub ufrag: String,
    /// The client's ICE credentials from its offer: a trickle fragment with others
    /// is an ICE restart.
    pub remote_ufrag: Option<String>,
    pub remote_pwd: Option<String>,
}

impl SessionEntry {
    pub fn new(key: u64, ufrag: &str, offer: &OfferSummary) -> Self {
        Self {
            key,
            ufrag: ufrag.to_owned(),
            remote_ufrag: offer.ice_ufrag.clone(),
            remote_pwd: offer.ice_pwd.clone(),
        }
    }
}

/// State shared between the room task and the `Sfu` handle (control plane only).
pub(crate) struct RoomShared {
    pub name: String,
    pub stats: Mutex<RoomStats>,
    pub publisher_choice: Mutex<Option<PublisherChoice>>,
    /// Connected viewers.
    pub viewer_count: AtomicUsize,
    /// Viewers not connected yet (held by their [`PendingSlot`]s).
    pub pending_viewers: Arc<AtomicUsize>,
    pub sessions: Mutex<HashMap<String, SessionEntry>>,
    /// Media counters for `/metrics` (see [`MediaCounters`]).
    pub media: MediaCounters,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the core asks its driver to do.
pub(crate) enum Output<'a> {
    /// Send a datagram produced by a session's peer connection, through the
    /// session's own sockets (port-range mode) or the shared ones.
    Transmit {
        sockets: &'a SessionSockets,
        transport: TransportContext,
        data: BytesMut,
    },
    /// A session ended: forget its routes.
    Closed { session: u64, ufrag: &'a str },
}

/// Where the core puts its [`Output`]s, as it makes them. A sink rather than a
/// queue: a fan-out to 1,000 viewers makes 1,000 encrypted copies of every packet,
/// and handing each to the kernel while it is hot in cache (and freeing it) beats
/// holding tens of megabytes until the call returns.
pub(crate) struct Outbox(Box<dyn for<'a> FnMut(Output<'a>) + Send>);

impl Outbox {
    pub fn new(sink: impl for<'a> FnMut(Output<'a>) + Send + 'static) -> Self {
        Self(Box::new(sink))
    }

    #[inline]
    pub(super) fn push(&mut self, o: Output<'_>) {
        (self.0)(o)
    }
}

pub(crate) struct Room {
    cfg: Arc<SfuConfig>,
    shared: Arc<RoomShared>,
    events: broadcast::Sender<SfuEvent>,
    publisher: Option<Publisher>,
    generation: u64,
    sources: Vec<Source>,
    /// Video sources of the current generation, lowest bitrate first.
    layers: Vec<(SourceId, u64)>,
    viewers: Vec<Viewer>,
    publisher_gone_since: Option<Instant>,
    /// Media has flowed from a publisher (RoomLive was sent).
    live: bool,
    /// The connected-viewer count last published (ViewerCount is sent on change).
    published_viewers: usize,
    next_tick: Instant,
    next_sr: Instant,
    keyframe_requests: u64,
    scratch: Vec<RTCMessage>,
    /// Publisher packets received but not yet fanned out (see [`Room::fan_out`]).
    outgoing: Vec<Outgoing>,
    /// Recorders copying the publisher's packets.
    taps: Vec<TapSender>,
    /// What the driver has to do.
    out: Outbox,
}

const TICK: Duration = Duration::from_millis(250);

/// Most publisher packets held back for one fan-out: bounds the delay the first
/// packet of a burst waits while the rest of the burst is decrypted.
const MAX_BATCH: usize = 32;

impl Room {
    pub fn new(
        cfg: Arc<SfuConfig>,
        shared: Arc<RoomShared>,
        events: broadcast::Sender<SfuEvent>,
        out: Outbox,
        now: Instant,
    ) -> Self {
        Self {
            cfg,
            shared,
            events,
            publisher: None,
            generation: 0,
            sources: Vec::new(),
            layers: Vec::new(),
            viewers: Vec::new(),
            publisher_gone_since: Some(now),
            live: false,
            published_viewers: 0,
            next_tick: now + TICK,
            next_sr: now + Duration::from_millis(500),
            keyframe_requests: 0,
            scratch: Vec::new(),
            outgoing: Vec::with_capacity(MAX_BATCH),
            taps: Vec::new(),
            out,
        }
    }

    fn emit(&self, e: SfuEvent) {
        let _ = self.events.send(e);
    }

    fn room(&self) -> String {
        self.shared.name.clone()
    }

    /// When [`Room::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Instant {
        let mut d = self.next_tick.min(self.next_sr);
        if let Some(p) = &self.publisher
            && let Some(t) = p.peer.deadline
        {
            d = d.min(t);
        }
        for v in &self.viewers {
            if let Some(t) = v.peer.deadline {
                d = d.min(t);
            }
        }
        for s in &self.sources {
            for t in [s.limiter.poll_timeout(), s.repair.poll_timeout()]
                .into_iter()
                .flatten()
            {
                d = d.min(t);
            }
        }
        d
    }

    /// A datagram from a session's peer, received at `at`. Decrypted publisher media
    /// is queued for the next fan-out ([`Room::flush_media`]), which happens by itself
    /// once [`MAX_BATCH`] packets are waiting.
    pub fn handle_datagram(
        &mut self,
        session: u64,
        transport: TransportContext,
        data: BytesMut,
        at: Instant,
    ) {
        if let Some(p) = self.publisher.as_mut()
            && p.peer.key == session
        {
            p.peer.read(transport, data, at);
            self.drive_publisher(at);
        } else if let Some(i) = self.viewers.iter().position(|v| v.peer.key == session) {
            self.viewers[i].peer.read(transport, data, at);
            self.drive_viewer(i, at);
        }
    }

    /// Send the publisher packets received so far on to the viewers.
    pub fn flush_media(&mut self) {
        self.fan_out();
    }

    /// A new publisher; one already there is replaced (viewers keep their tracks).
    pub fn add_publisher(&mut self, p: NewPeer, now: Instant) {
        self.fan_out();
        let choice = p.choice.clone().unwrap_or_default();
        if let Some(mut old) = self.publisher.take() {
            tracing::info!(room = %self.shared.name, "publisher replaced");
            self.close_peer(&mut old.peer);
            self.emit(SfuEvent::PublisherReplaced { room: self.room() });
        }
        self.generation += 1;
        *lock(&self.shared.publisher_choice) = Some(choice.clone());
        let mut peer = Peer::new(p, now);
        peer.flush(&mut self.out);
        self.publisher = Some(Publisher {
            peer,
            choice,
            generation: self.generation,
        });
        self.drive_publisher(now);
    }

    /// Trickled ICE candidates for a session.
    pub fn add_candidates(
        &mut self,
        session: u64,
        candidates: Vec<RTCIceCandidateInit>,
    ) -> Result<(), SfuError> {
        self.fan_out();
        let peer = self.peer_mut(session).ok_or(SfuError::UnknownSession)?;
        let mut res = Ok(());
        for c in candidates {
            if let Err(e) = peer.pc.add_remote_candidate(c) {
                res = Err(SfuError::BadTrickle(e.to_string()));
            }
        }
        peer.refresh_deadline();
        res
    }

    /// The client ended its session (WHIP/WHEP DELETE).
    pub fn end_session(&mut self, session: u64, now: Instant) -> Result<(), SfuError> {
        self.fan_out();
        if self.remove_session(session, now) {
            Ok(())
        } else {
            Err(SfuError::UnknownSession)
        }
    }

    /// Copy the publisher's packets to a recorder from now on.
    pub fn add_tap(&mut self, tap: TapSender) {
        self.fan_out();
        self.taps.push(tap);
    }

    fn peer_mut(&mut self, key: u64) -> Option<&mut Peer> {
        if let Some(p) = self.publisher.as_mut()
            && p.peer.key == key
        {
            return Some(&mut p.peer);
        }
        self.viewers
            .iter_mut()
            .find(|v| v.peer.key == key)
            .map(|v| &mut v.peer)
    }

    fn close_peer(&mut self, peer: &mut Peer) {
        let _ = peer.pc.close();
        peer.flush(&mut self.out);
        self.out.push(Output::Closed {
            session: peer.key,
            ufrag: &peer.ufrag,
        });
        lock(&self.shared.sessions).remove(peer.id.as_str());
    }

    /// Remove a session; returns whether it existed.
    fn remove_session(&mut self, key: u64, now: Instant) -> bool {
        if self.publisher.as_ref().is_some_and(|p| p.peer.key == key) {
            if let Some(mut p) = self.publisher.take() {
                self.close_peer(&mut p.peer);
            }
            self.publisher_lost(now);
            return true;
        }
        if let Some(i) = self.viewers.iter().position(|v| v.peer.key == key) {
            let mut v = self.viewers.swap_remove(i);
            self.close_peer(&mut v.peer);
            self.publish_viewer_count();
            return true;
        }
        false
    }

    fn publisher_lost(&mut self, now: Instant) {
        if self.publisher_gone_since.is_none() {
            self.publisher_gone_since = Some(now);
            tracing::info!(room = %self.shared.name, "publisher lost; grace period starts");
            self.emit(SfuEvent::PublisherLost { room: self.room() });
        }
    }

    /// Viewers holding a slot: those whose ICE and DTLS completed. One that is
    /// briefly disconnected keeps its slot (it is likely to come back).
    fn connected_viewers(&self) -> usize {
        self.viewers
            .iter()
            .filter(|v| v.peer.connected_once)
            .count()
    }

    fn publish_viewer_count(&mut self) {
        let count = self.connected_viewers();
        self.shared.viewer_count.store(count, Ordering::Relaxed);
        if count != self.published_viewers {
            self.published_viewers = count;
            self.emit(SfuEvent::ViewerCount {
                room: self.room(),
                count,
            });
        }
    }

    /// Timers: peer connections, repair and keyframe-request deadlines, sender
    /// reports, the periodic tick (layer choice, connect timeouts, the publisher's
    /// grace period, stats). `Some` when the room has ended.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<EndReason> {
        self.fan_out();
        // Peer connection timers.
        if let Some(p) = self.publisher.as_mut()
            && p.peer.deadline.is_some_and(|d| d <= now)
        {
            let _ = p.peer.pc.handle_timeout(now);
            self.drive_publisher(now);
        }
        for i in 0..self.viewers.len() {
            if i < self.viewers.len() && self.viewers[i].peer.deadline.is_some_and(|d| d <= now) {
                let _ = self.viewers[i].peer.pc.handle_timeout(now);
                self.drive_viewer(i, now);
            }
        }
        // Uplink holes past repair: the stream is broken for everyone following it
        // until a keyframe.
        for si in 0..self.sources.len() {
            if self.sources[si].repair.poll(now) && self.followed(self.sources[si].ssrc) {
                tracing::debug!(room = %self.shared.name, ssrc = self.sources[si].ssrc, "uplink loss not repaired; keyframe wanted");
                self.request_keyframe(si, now);
            }
        }
        // Deferred keyframe requests.
        for si in 0..self.sources.len() {
            if self.sources[si].limiter.poll(now) {
                let (r, s) = (self.sources[si].receiver, self.sources[si].ssrc);
                self.send_pli(r, s, now);
            }
        }
        if now >= self.next_sr {
            self.next_sr = now + Duration::from_secs(1);
            self.send_sender_reports(now);
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.rebuild_layers(now);
            for i in 0..self.viewers.len() {
                self.select_for(i, now);
            }
            // Connect timeouts.
            let stale: Vec<u64> = self
                .viewers
                .iter()
                .filter(|v| {
                    !v.peer.connected_once
                        && now.saturating_duration_since(v.peer.created) > self.cfg.connect_timeout
                })
                .map(|v| v.peer.key)
                .collect();
            for key in stale {
                self.remove_session(key, now);
            }
            if let Some(p) = &self.publisher
                && !p.peer.connected_once
                && now.saturating_duration_since(p.peer.created) > self.cfg.connect_timeout
            {
                let key = p.peer.key;
                self.remove_session(key, now);
            }
            if let Some(since) = self.publisher_gone_since
                && self.publisher.as_ref().is_none_or(|p| !p.peer.connected())
                && now.saturating_duration_since(since) > self.cfg.publisher_grace
            {
                return Some(EndReason::PublisherGone);
            }
            self.update_stats(now);
        }
        None
    }

    /// Close every session and say why the room ended.
    pub fn teardown(&mut self, reason: EndReason) {
        if let Some(mut p) = self.publisher.take() {
            self.close_peer(&mut p.peer);
        }
        for mut v in std::mem::take(&mut self.viewers) {
            self.close_peer(&mut v.peer);
        }
        self.shared.viewer_count.store(0, Ordering::Relaxed);
        *lock(&self.shared.publisher_choice) = None;
        tracing::info!(room = %self.shared.name, ?reason, "room ended");
        self.emit(SfuEvent::RoomEnded {
            room: self.room(),
            reason,
            was_live: self.live,
        });
    }
}
