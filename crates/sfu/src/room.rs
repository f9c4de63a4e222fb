//! One task per room: it owns the publisher's and every viewer's sans-I/O
//! `RTCPeerConnection`, so fan-out is a plain loop — no channel hop, no lock, no
//! task per viewer on the media path.

use crate::config::SfuConfig;
use crate::dtls_order::DtlsOrder;
use crate::egress::{Leg, Outgoing, ViewerLegs, drain, send_batch};
use crate::error::SfuError;
use crate::forward::{
    BandwidthEstimator, KeyframeDetector, KeyframeRequestLimiter, NackCache, RateMeter,
    RepairWatch, RetransmitBudget, Selection, SimulcastSelector, SourceId, VideoCodec,
};
use crate::net::{CountGuard, Net, SessionSockets};
use crate::pending::PendingSlot;
use crate::sdp::{OfferSummary, PublisherChoice};
use crate::tap::{TapCodec, TapSender, TappedPacket};
use crate::{EndReason, LayerStats, PublisherStats, RoomStats, SessionId, SfuEvent, ViewerStats};
use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot};

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
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Peer {
    key: u64,
    id: SessionId,
    ufrag: String,
    pc: RTCPeerConnection,
    sockets: SessionSockets,
    _guard: CountGuard,
    pending: PendingSlot,
    deadline: Option<Instant>,
    state: RTCPeerConnectionState,
    connected_once: bool,
    created: Instant,
    /// Until the handshake is done: the peer's DTLS records in the order it sent
    /// them (see [`DtlsOrder`]).
    dtls_order: Option<DtlsOrder>,
}

impl Peer {
    fn new(p: NewPeer, now: Instant) -> Self {
        Self {
            key: p.key,
            id: p.id,
            ufrag: p.ufrag,
            pc: p.pc,
            sockets: p.sockets,
            _guard: p.guard,
            pending: p.pending,
            deadline: Some(now),
            state: RTCPeerConnectionState::New,
            connected_once: false,
            created: now,
            dtls_order: Some(DtlsOrder::default()),
        }
    }

    /// A datagram from the peer's address into its peer connection.
    fn read(&mut self, transport: TransportContext, data: BytesMut, at: Instant) {
        let pc = &mut self.pc;
        let mut deliver = |message: BytesMut| {
            if let Err(e) = pc.handle_read(TaggedBytesMut {
                now: at,
                transport,
                message,
            }) {
                tracing::trace!("handle_read: {e}");
            }
        };
        match self.dtls_order.as_mut() {
            Some(order) => order.push(data, deliver),
            None => deliver(data),
        }
    }

    fn flush(&mut self, net: &Net) {
        let sockets = &self.sockets;
        drain(&mut self.pc, |out| {
            net.send(sockets, &out.transport, out.message)
        });
    }

    fn refresh_deadline(&mut self) {
        self.deadline = self.pc.poll_timeout();
    }

    fn connected(&self) -> bool {
        self.state == RTCPeerConnectionState::Connected
    }

    /// ICE and DTLS completed: from now on the session is a real viewer (or
    /// publisher), no longer one of its address's or room's pending ones.
    fn on_connected(&mut self) {
        self.connected_once = true;
        self.dtls_order = None;
        self.pending.release();
    }
}

struct Source {
    ssrc: SourceId,
    generation: u64,
    video: Option<VideoCodec>,
    keyframe_start: Option<KeyframeDetector>,
    rid: Option<String>,
    receiver: RTCRtpReceiverId,
    clock_rate: u32,
    rate: RateMeter,
    cache: NackCache<rtp::Packet>,
    limiter: KeyframeRequestLimiter,
    /// Uplink holes of a video stream, and when to stop waiting for their repair.
    repair: RepairWatch,
    last_sr: Option<(u64, u32, Instant)>,
    keyframes: u64,
    /// Padding-only packets received (not forwarded as media).
    padding: u64,
}

struct Viewer {
    peer: Peer,
    audio: Option<Leg>,
    video: Option<Leg>,
    est: BandwidthEstimator,
    selector: SimulcastSelector,
    sent: RateMeter,
    loss: f64,
    rtt: Option<Duration>,
    nacks: u64,
    retransmits: u64,
    rtx_budget: RetransmitBudget,
    rtx_withheld: u64,
    plis: u64,
}

struct Publisher {
    peer: Peer,
    choice: PublisherChoice,
    generation: u64,
}

pub(crate) struct Room {
    cfg: Arc<SfuConfig>,
    net: Arc<Net>,
    shared: Arc<RoomShared>,
    events: broadcast::Sender<SfuEvent>,
    rx: mpsc::Receiver<RoomMsg>,
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
}

const TICK: Duration = Duration::from_millis(250);

/// Retransmissions to a viewer may use up to half its estimate, in bursts of up to
/// a second's worth (see [`RetransmitBudget`]).
const RTX_SHARE: f64 = 0.5;
const RTX_BURST: Duration = Duration::from_secs(1);

/// Most publisher packets held back for one fan-out: bounds the delay the first
/// packet of a burst waits while the rest of the burst is decrypted.
const MAX_BATCH: usize = 32;

impl Room {
    pub fn new(
        cfg: Arc<SfuConfig>,
        net: Arc<Net>,
        shared: Arc<RoomShared>,
        events: broadcast::Sender<SfuEvent>,
        rx: mpsc::Receiver<RoomMsg>,
    ) -> Self {
        let now = Instant::now();
        Self {
            cfg,
            net,
            shared,
            events,
            rx,
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
        }
    }

    fn emit(&self, e: SfuEvent) {
        let _ = self.events.send(e);
    }

    fn room(&self) -> String {
        self.shared.name.clone()
    }

    /// The room's event loop. Returns why the room ended.
    pub async fn run(mut self) -> EndReason {
        let reason = loop {
            let deadline = self.next_deadline();
            let msg = tokio::select! {
                m = self.rx.recv() => m,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if let Some(r) = self.on_timeout(Instant::now()) { break r; }
                    continue;
                }
            };
            let Some(msg) = msg else {
                break EndReason::Shutdown;
            };
            if let Some(r) = self.on_msg(msg) {
                break r;
            }
            // Drain what is queued before looking at timers again (batching).
            let mut ended = None;
            for _ in 0..256 {
                match self.rx.try_recv() {
                    Ok(m) => {
                        if let Some(r) = self.on_msg(m) {
                            ended = Some(r);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if let Some(r) = ended {
                break r;
            }
            // Everything queued is decrypted: send it on before waiting again.
            self.fan_out();
            let now = Instant::now();
            if now >= self.next_tick
                && let Some(r) = self.on_timeout(now)
            {
                break r;
            }
        };
        self.teardown(reason);
        reason
    }

    fn next_deadline(&self) -> Instant {
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

    fn on_msg(&mut self, msg: RoomMsg) -> Option<EndReason> {
        if !matches!(msg, RoomMsg::Net { .. }) {
            // Control operations see the media that arrived before them as sent.
            self.fan_out();
        }
        match msg {
            RoomMsg::Net {
                session,
                transport,
                data,
                at,
            } => {
                if self
                    .publisher
                    .as_ref()
                    .is_some_and(|p| p.peer.key == session)
                {
                    let p = self.publisher.as_mut()?;
                    p.peer.read(transport, data, at);
                    self.drive_publisher(at);
                } else if let Some(i) = self.viewers.iter().position(|v| v.peer.key == session) {
                    self.viewers[i].peer.read(transport, data, at);
                    self.drive_viewer(i, at);
                }
            }
            RoomMsg::AddPublisher(p) => {
                let now = Instant::now();
                let choice = p.choice.clone().unwrap_or_default();
                if let Some(mut old) = self.publisher.take() {
                    tracing::info!(room = %self.shared.name, "publisher replaced");
                    self.close_peer(&mut old.peer);
                    self.emit(SfuEvent::PublisherReplaced { room: self.room() });
                }
                self.generation += 1;
                *lock(&self.shared.publisher_choice) = Some(choice.clone());
                let mut peer = Peer::new(*p, now);
                peer.flush(&self.net);
                self.publisher = Some(Publisher {
                    peer,
                    choice,
                    generation: self.generation,
                });
                self.drive_publisher(now);
            }
            RoomMsg::AddViewer(p, legs, reply) => {
                let now = Instant::now();
                if self.connected_viewers() >= self.cfg.max_viewers_per_room {
                    let _ = reply.send(Err(SfuError::RoomFull(self.cfg.max_viewers_per_room)));
                    let mut peer = Peer::new(*p, now);
                    self.close_peer(&mut peer);
                    return None;
                }
                let mut v = Viewer {
                    peer: Peer::new(*p, now),
                    audio: legs.audio.map(|l| Leg::new(l, false)),
                    video: legs.video.map(|l| Leg::new(l, true)),
                    est: BandwidthEstimator::new(
                        self.cfg.initial_viewer_bitrate,
                        50_000,
                        50_000_000,
                    ),
                    selector: SimulcastSelector::new(self.cfg.layer_upgrade_hold),
                    sent: RateMeter::new(Duration::from_secs(1)),
                    loss: 0.0,
                    rtt: None,
                    nacks: 0,
                    retransmits: 0,
                    rtx_budget: RetransmitBudget::new(RTX_SHARE, RTX_BURST),
                    rtx_withheld: 0,
                    plis: 0,
                };
                // Follow the current audio source right away.
                if let (Some(a), Some(src)) = (
                    v.audio.as_mut(),
                    self.sources
                        .iter()
                        .rev()
                        .find(|s| s.video.is_none() && s.generation == self.generation),
                ) {
                    a.fwd.set_target(Some(src.ssrc));
                }
                v.peer.flush(&self.net);
                self.viewers.push(v);
                let i = self.viewers.len() - 1;
                self.select_for(i, now);
                self.publish_viewer_count();
                let _ = reply.send(Ok(()));
            }
            RoomMsg::Candidates {
                session,
                candidates,
                reply,
            } => {
                let res = match self.peer_mut(session) {
                    Some(peer) => {
                        let mut res = Ok(());
                        for c in candidates {
                            if let Err(e) = peer.pc.add_remote_candidate(c) {
                                res = Err(SfuError::BadTrickle(e.to_string()));
                            }
                        }
                        peer.refresh_deadline();
                        res
                    }
                    None => Err(SfuError::UnknownSession),
                };
                let _ = reply.send(res);
            }
            RoomMsg::End { session, reply } => {
                let found = self.remove_session(session, Instant::now());
                let _ = reply.send(if found {
                    Ok(())
                } else {
                    Err(SfuError::UnknownSession)
                });
            }
            RoomMsg::Close(reason) => return Some(reason),
            RoomMsg::AddTap(tap) => self.taps.push(tap),
            RoomMsg::RequestKeyframe => self.request_video_keyframes(Instant::now()),
        }
        None
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

    fn close_peer(&self, peer: &mut Peer) {
        let _ = peer.pc.close();
        peer.flush(&self.net);
        self.net.forget(&peer.ufrag, peer.key);
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

    /// Drain the publisher after it was touched: writes, events, media.
    fn drive_publisher(&mut self, now: Instant) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        p.peer.flush(&self.net);
        let mut became = None;
        let mut opened = Vec::new();
        while let Some(ev) = p.peer.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    p.peer.state = s;
                    became = Some(s);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    opened.push(init);
                }
                _ => {}
            }
        }
        let mut msgs = std::mem::take(&mut self.scratch);
        while let Some(m) = p.peer.pc.poll_read() {
            msgs.push(m.message);
        }
        p.peer.flush(&self.net);
        p.peer.refresh_deadline();
        drop(opened);
        if let Some(s) = became {
            self.on_publisher_state(s, now);
        }
        for m in msgs.drain(..) {
            match m {
                RTCMessage::RtpPacket(track_id, pkt) => self.on_publisher_rtp(&track_id, pkt, now),
                RTCMessage::RtcpPacket(_, pkts) => {
                    for pkt in pkts {
                        if let Some(sr) = pkt
                            .as_any()
                            .downcast_ref::<rtcp::sender_report::SenderReport>()
                            && let Some(s) = self.sources.iter_mut().find(|s| s.ssrc == sr.ssrc)
                        {
                            s.last_sr = Some((sr.ntp_time, sr.rtp_time, now));
                        }
                    }
                }
                _ => {}
            }
        }
        self.scratch = msgs;
    }

    fn on_publisher_state(&mut self, s: RTCPeerConnectionState, now: Instant) {
        match s {
            RTCPeerConnectionState::Connected => {
                if let Some(p) = self.publisher.as_mut() {
                    p.peer.on_connected();
                }
                self.publisher_gone_since = None;
                // The room goes live with its first media packet (see
                // `on_publisher_rtp`); a publisher that connects and sends nothing
                // has shown nobody anything.
                if self.live {
                    self.emit(SfuEvent::PublisherReconnected { room: self.room() });
                }
            }
            RTCPeerConnectionState::Disconnected
            | RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Closed => {
                if matches!(
                    s,
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                ) && let Some(mut p) = self.publisher.take()
                {
                    self.close_peer(&mut p.peer);
                }
                self.publisher_lost(now);
            }
            _ => {}
        }
    }

    fn source_index(&mut self, ssrc: u32, track_id: &str, now: Instant) -> Option<usize> {
        if let Some(i) = self.sources.iter().position(|s| s.ssrc == ssrc) {
            return Some(i);
        }
        let p = self.publisher.as_mut()?;
        // Find the receiver that owns this track to learn kind and rid.
        let receivers: Vec<RTCRtpReceiverId> = p.peer.pc.get_receivers().collect();
        let mut found = None;
        for id in receivers {
            if let Some(r) = p.peer.pc.rtp_receiver(id) {
                let t = r.track();
                if t.track_id() == track_id || t.ssrcs().any(|s| s == ssrc) {
                    let video = t.kind() == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video;
                    found = Some((id, video, t.rid(ssrc).map(|r| r.to_string())));
                    break;
                }
            }
        }
        let (receiver, is_video, rid) = found?;
        let (video, clock_rate) = if is_video {
            let c = p.choice.video.as_ref()?;
            (c.video_codec(), c.clock_rate)
        } else {
            let c = p.choice.audio.as_ref()?;
            (None, c.clock_rate)
        };
        if is_video && video.is_none() {
            return None;
        }
        let generation = p.generation;
        tracing::debug!(room = %self.shared.name, ssrc, ?rid, is_video, "new publisher stream");
        self.sources.push(Source {
            ssrc,
            generation,
            video,
            keyframe_start: video.map(KeyframeDetector::new),
            rid,
            receiver,
            clock_rate,
            rate: RateMeter::new(Duration::from_millis(500)),
            cache: NackCache::new(
                if is_video { 2048 } else { 256 },
                self.cfg.nack_cache_duration,
            ),
            limiter: KeyframeRequestLimiter::new(self.cfg.keyframe_request_min_interval),
            repair: RepairWatch::new(),
            last_sr: None,
            keyframes: 0,
            padding: 0,
        });
        // Older generations' streams of this kind are finished.
        self.sources
            .retain(|s| s.generation == generation || (s.video.is_some()) != is_video);
        let idx = self.sources.iter().position(|s| s.ssrc == ssrc)?;
        if is_video {
            self.rebuild_layers(now);
            for i in 0..self.viewers.len() {
                self.select_for(i, now);
            }
        } else {
            for v in &mut self.viewers {
                if let Some(a) = v.audio.as_mut() {
                    a.fwd.set_target(Some(ssrc));
                }
            }
        }
        Some(idx)
    }

    fn rebuild_layers(&mut self, now: Instant) {
        let mut layers: Vec<(SourceId, u64, usize)> = self
            .sources
            .iter()
            .filter(|s| s.video.is_some() && s.generation == self.generation)
            .map(|s| {
                let order = self
                    .publisher
                    .as_ref()
                    .and_then(|p| {
                        s.rid
                            .as_ref()
                            .and_then(|r| p.choice.rids.iter().position(|x| x == r))
                    })
                    .unwrap_or(0);
                (s.ssrc, s.rate.bps(now), order)
            })
            .collect();
        // Lowest bitrate first; unmeasured layers keep the offer's rid order.
        let all_measured = layers.iter().all(|l| l.1 > 0);
        if all_measured {
            layers.sort_by_key(|l| l.1);
        } else {
            layers.sort_by_key(|l| l.2);
        }
        self.layers = layers.into_iter().map(|(s, b, _)| (s, b)).collect();
    }

    fn on_publisher_rtp(&mut self, track_id: &str, mut pkt: rtp::Packet, now: Instant) {
        let Some(si) = self.source_index(pkt.header.ssrc, track_id, now) else {
            return;
        };
        if !self.live && !pkt.payload.is_empty() {
            self.live = true;
            tracing::info!(room = %self.shared.name, "room live");
            self.emit(SfuEvent::RoomLive { room: self.room() });
        }
        // Strip header extensions once: viewer legs negotiate none, and a stripped
        // header clones without allocating.
        pkt.header.extension = false;
        pkt.header.extension_profile = 0;
        pkt.header.extensions.clear();
        pkt.header.extensions_padding = 0;
        pkt.header.padding = false;

        let src = &mut self.sources[si];
        let ssrc = src.ssrc;
        let video = src.video.is_some();
        // Padding-only packets (the publisher probing its uplink; Chromium pads a
        // simulcast top layer on its media SSRC when RTX is not negotiated) are
        // not media: they neither count towards the layer's bitrate nor get cached.
        // They still go to the fan-out, where each viewer's forwarder closes its
        // sequence over them (see `TrackForwarder::forward_padding`).
        let mut keyframe = false;
        if video {
            src.repair.on_packet(pkt.header.sequence_number, now);
        }
        if pkt.payload.is_empty() {
            src.padding += 1;
        } else {
            keyframe = src
                .keyframe_start
                .as_mut()
                .is_some_and(|d| d.on_packet(&pkt.payload, pkt.header.timestamp));
            src.rate.add(pkt.payload.len() + 12, now);
            if keyframe {
                src.keyframes += 1;
                src.limiter.on_keyframe(now);
                src.repair.on_keyframe(pkt.header.sequence_number);
            }
            src.cache
                .insert(pkt.header.sequence_number, now, pkt.clone());
            if !self.taps.is_empty() {
                let tapped = TappedPacket {
                    generation: src.generation,
                    codec: TapCodec::of(src.video),
                    clock_rate: src.clock_rate,
                    rid: src.rid.clone(),
                    keyframe,
                    at: now,
                    packet: pkt.clone(),
                };
                self.taps.retain(|t| t.offer(&tapped));
            }
        }
        self.outgoing.push(Outgoing {
            pkt,
            source: ssrc,
            keyframe,
            video,
            at: now,
        });
        if self.outgoing.len() >= MAX_BATCH {
            self.fan_out();
        }
    }

    /// Send the queued publisher packets to every connected viewer: per viewer, the
    /// whole batch and then one drain (see [`send_batch`]).
    fn fan_out(&mut self) {
        let Some(now) = self.outgoing.last().map(|o| o.at) else {
            return;
        };
        let net = &self.net;
        let mut wants_keyframe: Vec<SourceId> = Vec::new();
        for v in &mut self.viewers {
            if !v.peer.connected() {
                continue;
            }
            let sockets = &v.peer.sockets;
            let taken = send_batch(
                &mut v.peer.pc,
                v.audio.as_mut(),
                v.video.as_mut(),
                &self.outgoing,
                |out| net.send(sockets, &out.transport, out.message),
            );
            if taken.bytes > 0 {
                v.est.on_sent(taken.bytes, now);
                v.sent.add(taken.bytes, now);
            }
            if let Some(s) = taken.wants_keyframe_of
                && !wants_keyframe.contains(&s)
            {
                wants_keyframe.push(s);
            }
        }
        self.outgoing.clear();
        for s in wants_keyframe {
            if let Some(si) = self.sources.iter().position(|x| x.ssrc == s) {
                self.request_keyframe(si, now);
            }
        }
    }

    fn request_video_keyframes(&mut self, now: Instant) {
        for si in 0..self.sources.len() {
            if self.sources[si].generation == self.generation {
                self.request_keyframe(si, now);
            }
        }
    }

    fn request_keyframe(&mut self, si: usize, now: Instant) {
        let src = &mut self.sources[si];
        if src.video.is_none() {
            return;
        }
        if src.limiter.request(now) {
            let (receiver, ssrc) = (src.receiver, src.ssrc);
            self.send_pli(receiver, ssrc, now);
        }
    }

    fn send_pli(&mut self, receiver: RTCRtpReceiverId, ssrc: u32, now: Instant) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        if let Some(mut r) = p.peer.pc.rtp_receiver(receiver) {
            let pli = rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            if r.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                self.keyframe_requests += 1;
                tracing::debug!(room = %self.shared.name, ssrc, "PLI sent upstream");
            }
        }
        p.peer.flush(&self.net);
    }

    fn drive_viewer(&mut self, i: usize, now: Instant) {
        let net = self.net.clone();
        let v = &mut self.viewers[i];
        v.peer.flush(&net);
        let mut state = None;
        while let Some(ev) = v.peer.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                v.peer.state = s;
                state = Some(s);
            }
        }
        let mut msgs = std::mem::take(&mut self.scratch);
        while let Some(m) = v.peer.pc.poll_read() {
            msgs.push(m.message);
        }
        v.peer.flush(&net);
        v.peer.refresh_deadline();
        for m in msgs.drain(..) {
            if let RTCMessage::RtcpPacket(_, pkts) = m {
                self.on_viewer_rtcp(i, pkts, now);
            }
        }
        self.scratch = msgs;
        match state {
            Some(RTCPeerConnectionState::Connected) => {
                if !self.viewers[i].peer.connected_once {
                    // Slots go to viewers as they connect: one that finishes its
                    // handshake when every slot is taken is turned away now.
                    if self.connected_viewers() >= self.cfg.max_viewers_per_room {
                        tracing::info!(room = %self.shared.name, viewer = %self.viewers[i].peer.id, "room full on connect; viewer dropped");
                        let key = self.viewers[i].peer.key;
                        self.remove_session(key, now);
                        return;
                    }
                    self.viewers[i].peer.on_connected();
                    self.publish_viewer_count();
                }
                // A fresh viewer needs a keyframe: ask (rate-limited).
                self.want_keyframe_for(i, now);
            }
            Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                let key = self.viewers[i].peer.key;
                self.remove_session(key, now);
            }
            _ => {}
        }
    }

    /// Whether a connected viewer's video follows (or is switching to) `source`.
    fn followed(&self, source: SourceId) -> bool {
        self.viewers.iter().any(|v| {
            v.peer.connected()
                && v.video.as_ref().is_some_and(|l| {
                    l.fwd.current() == Some(source) || l.fwd.target() == Some(source)
                })
        })
    }

    fn want_keyframe_for(&mut self, i: usize, now: Instant) {
        let target = self.viewers[i].video.as_ref().and_then(|l| l.fwd.target());
        if let Some(t) = target
            && let Some(si) = self.sources.iter().position(|s| s.ssrc == t)
        {
            self.request_keyframe(si, now);
        }
    }

    fn on_viewer_rtcp(&mut self, i: usize, pkts: Vec<Box<dyn rtcp::Packet>>, now: Instant) {
        use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
        use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
        use rtcp::receiver_report::ReceiverReport;
        use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        let mut keyframe = false;
        for pkt in pkts {
            let any = pkt.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                keyframe = true;
                self.viewers[i].plis += 1;
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.on_nack(i, nack, now);
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                tracing::trace!(viewer = %self.viewers[i].peer.id, bps = remb.bitrate, "REMB");
                self.viewers[i]
                    .est
                    .on_remb(remb.bitrate.max(0.0) as u64, now);
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                let v = &mut self.viewers[i];
                let video_ssrc = v.video.as_ref().map(|l| l.ssrc);
                let video_flows = v.video.as_ref().is_some_and(|l| l.fwd.target().is_some());
                for rep in &rr.reports {
                    let leg = [v.video.as_mut(), v.audio.as_mut()]
                        .into_iter()
                        .flatten()
                        .find(|l| l.ssrc == rep.ssrc);
                    let Some(leg) = leg else { continue };
                    // Only what the viewer's own link lost (see `DownlinkLoss`).
                    let fwd = &leg.fwd;
                    let own = leg.downlink.on_report(
                        rep.last_sequence_number,
                        rep.total_lost,
                        |after, upto| fwd.sent_between(after, upto),
                    );
                    // The estimate learns from the stream that carries the bulk:
                    // video while it flows, audio while the viewer is on audio only
                    // (else it would never see the link recover).
                    let is_video = Some(leg.ssrc) == video_ssrc;
                    if let Some(own) = own {
                        if is_video == video_flows {
                            v.est.on_fraction_lost(own, now);
                        }
                        v.loss = own as f64 / 256.0;
                    }
                    if rep.last_sender_report != 0
                        && let Some((_, Some(at))) = leg
                            .srs
                            .iter()
                            .find(|(mid, _)| *mid == rep.last_sender_report)
                    {
                        let dlsr = Duration::from_secs_f64(rep.delay as f64 / 65536.0);
                        v.rtt = Some(now.saturating_duration_since(*at).saturating_sub(dlsr));
                    }
                }
            }
        }
        if keyframe {
            self.want_keyframe_for(i, now);
        }
    }

    fn on_nack(
        &mut self,
        i: usize,
        nack: &rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack,
        now: Instant,
    ) {
        let net = self.net.clone();
        let sources = &self.sources;
        let v = &mut self.viewers[i];
        v.nacks += 1;
        let legs = [v.video.as_mut(), v.audio.as_mut()];
        let Some(leg) = legs
            .into_iter()
            .flatten()
            .find(|l| l.ssrc == nack.media_ssrc)
        else {
            return;
        };
        let seqs = nack.nacks.iter().flat_map(|p| p.packet_list());
        let cached = |src: SourceId, seq: u16| {
            sources
                .iter()
                .find(|s| s.ssrc == src)
                .and_then(|s| s.cache.get(seq, now))
        };
        let estimate = v.est.estimate(now);
        let budget = &mut v.rtx_budget;
        let allow = |bytes: usize| budget.take(bytes, estimate, now);
        let (packets, bytes, refused) = leg.answer_nack(&mut v.peer.pc, seqs, cached, allow, now);
        v.rtx_withheld += refused as u64;
        if packets > 0 {
            v.retransmits += packets as u64;
            v.est.on_sent(bytes, now);
            v.sent.add(bytes, now);
        }
        v.peer.flush(&net);
    }

    /// Pick (or re-pick) the video layer for viewer `i`.
    fn select_for(&mut self, i: usize, now: Instant) {
        let layer_bps: Vec<u64> = self.layers.iter().map(|l| l.1).collect();
        let audio_bps = self
            .sources
            .iter()
            .filter(|s| s.video.is_none() && s.generation == self.generation)
            .map(|s| s.rate.bps(now))
            .max()
            .unwrap_or(40_000);
        let v = &mut self.viewers[i];
        let Some(leg) = v.video.as_mut() else { return };
        if self.layers.is_empty() {
            return;
        }
        let sel = if self.layers.len() == 1 && v.est.estimate(now) == 0 {
            Selection::Layer(0)
        } else {
            let estimate = v.est.for_selection(layer_bps[0], audio_bps, now);
            v.selector.select(estimate, &layer_bps, audio_bps, now)
        };
        if let Some(need) = v.selector.take_restore() {
            // A failed up-switch: back to the layer the link carried before.
            v.est.restore(need);
        }
        let target = match sel {
            Selection::Layer(l) => self.layers.get(l).map(|x| x.0),
            Selection::AudioOnly => None,
        };
        if leg.fwd.target() != target {
            // Back from audio only (not the first selection).
            if leg.fwd.target().is_none() && target.is_some() && leg.fwd.last_out().is_some() {
                v.est.on_video_resumed(now);
            }
            tracing::debug!(
                room = %self.shared.name,
                viewer = %v.peer.id,
                ?sel,
                estimate_bps = v.est.estimate(now),
                sent_bps = v.est.sent_rate(),
                ?layer_bps,
                "layer selection"
            );
            leg.fwd.set_target(target);
            if target.is_some() && v.peer.connected() {
                self.want_keyframe_for(i, now);
            }
        }
    }

    fn on_timeout(&mut self, now: Instant) -> Option<EndReason> {
        self.fan_out();
        let net = self.net.clone();
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
        let _ = net;
        None
    }

    fn send_sender_reports(&mut self, now: Instant) {
        let net = self.net.clone();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let wall_ntp = to_ntp(wall + Duration::from_secs(2_208_988_800));
        for v in &mut self.viewers {
            if !v.peer.connected() {
                continue;
            }
            for leg in [v.video.as_mut(), v.audio.as_mut()].into_iter().flatten() {
                let Some(cur) = leg.fwd.current() else {
                    continue;
                };
                let Some((last_seq, last_ts)) = leg.fwd.last_out() else {
                    continue;
                };
                let _ = last_seq;
                let src = self.sources.iter().find(|s| s.ssrc == cur);
                let (ntp, rtp_time) = match src.and_then(|s| s.last_sr.map(|sr| (s, sr))) {
                    Some((s, (ntp, rtp_t, at))) => {
                        // Extrapolate the publisher's NTP<->RTP pair to now.
                        let el = now.saturating_duration_since(at);
                        let ticks =
                            (el.as_micros() as u64 * s.clock_rate as u64 / 1_000_000) as u32;
                        match leg.fwd.translate_rtp_time(cur, rtp_t.wrapping_add(ticks)) {
                            Some(t) => (ntp_add(ntp, el), t),
                            None => continue,
                        }
                    }
                    None => (wall_ntp, last_ts),
                };
                let sr = rtcp::sender_report::SenderReport {
                    ssrc: leg.ssrc,
                    ntp_time: ntp,
                    rtp_time,
                    packet_count: leg.packets as u32,
                    octet_count: leg.octets as u32,
                    ..Default::default()
                };
                leg.srs[leg.sr_idx % 4] = (((ntp >> 16) & 0xffff_ffff) as u32, Some(now));
                leg.sr_idx += 1;
                if let Some(mut sender) = v.peer.pc.rtp_sender(leg.sender) {
                    let _ = sender.write_rtcp(now, vec![Box::new(sr)]);
                }
                let _ = leg.clock_rate;
            }
            v.peer.flush(&net);
        }
    }

    fn update_stats(&self, now: Instant) {
        let publisher = self.publisher.as_ref().map(|p| PublisherStats {
            session: p.peer.id.clone(),
            connected: p.peer.connected(),
            video_codec: p.choice.video.as_ref().map(|c| c.describe()),
            audio_codec: p.choice.audio.as_ref().map(|c| c.describe()),
            layers: self
                .layers
                .iter()
                .filter_map(|(ssrc, _)| self.sources.iter().find(|s| s.ssrc == *ssrc))
                .map(|s| LayerStats {
                    rid: s.rid.clone(),
                    ssrc: s.ssrc,
                    bitrate_bps: s.rate.bps(now),
                    packets: s.rate.packets(),
                    keyframes: s.keyframes,
                    padding_packets: s.padding,
                })
                .collect(),
            audio_bitrate_bps: self
                .sources
                .iter()
                .filter(|s| s.video.is_none() && s.generation == self.generation)
                .map(|s| s.rate.bps(now))
                .sum(),
        });
        let viewers = self
            .viewers
            .iter()
            .map(|v| {
                let layer = v
                    .video
                    .as_ref()
                    .and_then(|l| l.fwd.current())
                    .and_then(|cur| self.layers.iter().position(|(s, _)| *s == cur));
                ViewerStats {
                    session: v.peer.id.clone(),
                    connected: v.peer.connected(),
                    bitrate_bps: v.sent.bps(now),
                    estimate_bps: v.est.estimate(now),
                    loss: v.loss,
                    rtt_ms: v.rtt.map(|r| r.as_millis() as u32),
                    layer,
                    audio_only: v.video.is_none()
                        || v.video.as_ref().is_some_and(|l| l.fwd.target().is_none()),
                    packets_sent: [v.video.as_ref(), v.audio.as_ref()]
                        .into_iter()
                        .flatten()
                        .map(|l| l.packets)
                        .sum(),
                    retransmitted: v.retransmits,
                    retransmissions_withheld: v.rtx_withheld,
                    nacks_received: v.nacks,
                    keyframe_requests_received: v.plis,
                }
            })
            .collect::<Vec<_>>();
        let mut st = lock(&self.shared.stats);
        *st = RoomStats {
            room: self.shared.name.clone(),
            live: self.live && self.publisher.as_ref().is_some_and(|p| p.peer.connected()),
            viewer_count: self.connected_viewers(),
            pending_viewers: self.viewers.len() - self.connected_viewers(),
            viewers,
            publisher,
            keyframe_requests_sent: self.keyframe_requests,
        };
    }

    fn teardown(&mut self, reason: EndReason) {
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

fn to_ntp(d: Duration) -> u64 {
    let secs = d.as_secs();
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn ntp_add(ntp: u64, d: Duration) -> u64 {
    ntp.wrapping_add(to_ntp(d))
}
