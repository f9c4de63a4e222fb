//! # fieldcast SFU
//!
//! Selective forwarding unit for live commerce: one publisher per room (WHIP,
//! RFC 9725), many viewers (WHEP), sub-second latency on weak networks. The crate
//! knows nothing about HTTP, orders or chat: rooms are opaque strings.
//!
//! ## Shape
//!
//! ```text
//!  UDP :8189 (muxed) ─┐                       ┌─ room task "b1" ─ publisher pc ─┐
//!  TCP :8189 (ICE) ───┼─ demux by ICE ufrag ──┤   (owns all pcs   viewer pcs ◄──┘ fan-out loop
//!  UDP range (opt.) ──┘  then by 5-tuple      └─ room task "b2"   of the room)
//! ```
//!
//! * **`rtc` (sans-I/O), not the async `webrtc` layer.** The async layer binds
//!   sockets per peer connection and runs one driver task per connection, so a
//!   forwarded packet would cost a channel hop and a task wake per viewer, and a
//!   single muxed UDP port is impossible (its UDP mux is a `todo`). With `rtc` we
//!   own the sockets (the `net` module demuxes one UDP port and the ICE-TCP
//!   listener), and one task per room owns every `RTCPeerConnection` of the room:
//!   a publisher packet is decrypted once and written to N viewers in a plain loop.
//! * **The room is sans-I/O too** (`room::Room`): driven with an explicit `now`,
//!   it puts datagrams into an `Outbox` its task (`room::shell`) hands it and says
//!   when to wake; unit tests drive it on a simulated clock.
//! * **Sans-I/O forwarding core** ([`forward`]): header rewriting, NACK cache,
//!   keyframe-request limiter, bandwidth estimator, simulcast selector — explicit
//!   `now`, no sockets, benchmarkable.
//! * **Own RTCP policy.** Viewer legs run with no NACK responder and no SR
//!   generator from `rtc`: NACKs are answered from the room's shared
//!   [`NackCache`] (within each viewer's [`RetransmitBudget`]), and sender
//!   reports carry the *publisher's*
//!   NTP↔RTP mapping translated into each viewer's timestamp space (so lip sync
//!   survives forwarding). Publisher legs use `rtc`'s NACK generator, receiver
//!   reports and transport-wide-cc feedback (so the phone's own congestion control
//!   works).
//!
//! ## Cost per forwarded packet
//!
//! Budget: ≤ 2.5 µs of server CPU per packet per viewer (≈ 2,000 viewers of a
//! 1.5 Mbit/s stream per core). Measured with `benches/forwarding.rs` (criterion;
//! 1,100-byte VP8 payloads, SRTP AES-128-GCM as negotiated with webrtc-rs and
//! browsers) on the 2-core development VM, and with callgrind for repeatable
//! instruction counts (`Ir` per packet per viewer):
//!
//! | step | time | Ir |
//! |---|---|---|
//! | `TrackForwarder::forward` (decision) | 8.5 ns | |
//! | decision + header rewrite (`forward/decision_and_rewrite`) | 35 ns | |
//! | `Leg::send`: decision, rewrite, hand-off to rtc | | 400 |
//! | rtc write path: interceptors, SRTP, 8-handler pipeline | ≈ 0.85 µs | 11,700 |
//! | — of which SRTP (marshal, AES-GCM seal, output buffer) | | 5,460 (seal alone 3,360) |
//! | — interceptor handler (chain allocates a queue per packet, stats lookups) | | 2,400 |
//! | — moving the message through 8 handler queues (25 memmoves), ICE, idle handlers | | 3,800 |
//! | whole send path, 1 viewer (`send_path/1_viewer`) | 0.88–0.94 µs | 12,500 |
//! | same, fanned out to 100 viewers (`send_path/fanout_100`) | 1.08 µs | |
//! | plus the kernel's `send_to` on loopback (`send_path/1_viewer_udp`) | +0.85 µs | |
//!
//! So a forwarded packet costs ≈ 1.8–1.95 µs of CPU here, about 45 % in rtc's
//! write path, 45 % in the kernel's UDP send, and < 5 % in our own code.
//!
//! What was done: the room hands rtc a prepared packet through
//! `RTCPeerConnection::handle_write` instead of `RTCRtpSender::write_rtp`, which
//! per packet re-derived the sender's parameters, re-checked SSRC / payload type /
//! extensions (they hold by construction on a viewer leg) and allocated the track
//! id as a `String` (−380 Ir); and packets the room finds queued together are fanned
//! out viewer-major, all of a viewer's packets and then one drain, which saves one
//! pipeline sweep per extra packet (−760 Ir per packet in a 6-packet burst) and
//! touches each viewer's state once per burst (`fanout_100_burst6`: 1.05 µs per
//! packet per viewer against 1.09 µs packet-by-packet). Before, the path measured
//! 951 ns and 12,860 Ir for one viewer.
//!
//! What is left is in rtc, which this crate cannot reach into: every packet walks
//! the full handler pipeline (data channel, SCTP, DTLS and ICE included) as a
//! ~200-byte message moved between queues, the interceptor chain allocates per
//! packet, and SRTP marshals and encrypts into fresh buffers. A prepared-packet fast
//! path in rtc (encrypt with the leg's SRTP context into a caller buffer and return
//! the selected transport) would remove roughly half of rtc's share. Batching the
//! kernel sends with `sendmmsg` was measured at 0.66 vs 0.71 µs per datagram on
//! loopback (−8 %): not worth unsafe code yet; the kernel's per-datagram work, not
//! the syscall, dominates.
//!
//! ## Network
//!
//! Candidates are host candidates on `bind_ips` (default: every non-loopback IPv4
//! interface), UDP (muxed port or per-session range port) and passive TCP,
//! advertised with `nat_1to1_ips` when set. Tests use
//! [`SfuConfig::loopback_for_tests`] (127.0.0.1, ephemeral ports).

pub mod config;
pub(crate) mod dtls_order;
pub(crate) mod egress;
pub mod error;
pub mod forward;
pub mod fuzzing;
#[cfg(any(test, feature = "testkit"))]
pub(crate) mod memory_peer;
pub mod metrics;
pub(crate) mod net;
pub(crate) mod pending;
pub(crate) mod room;
pub mod sdp;
pub mod tap;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::{IceServer, SfuConfig, UdpPorts};
pub use error::SfuError;
pub use forward::{
    KeyframeRequestLimiter, NackCache, RetransmitBudget, SimulcastSelector, TrackForwarder,
};
pub use metrics::BroadcastMetrics;
pub use tap::{MediaTap, TapCodec, TappedPacket};

use crate::error::internal;
use crate::net::{CountGuard, Counters, Net, Route, spawn_counted};
use crate::pending::PendingBook;
use crate::room::{NewPeer, RoomMsg, RoomShared, SessionEntry, lock};
use crate::sdp::{OfferedCodec, PublisherChoice};
use rtc::interceptor::{
    Attribute, Interceptor, NackGeneratorBuilder, Packet, ReceiverReportBuilder, Registry, Slot,
    StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_twcc_receiver_only;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Opaque session id (the `{session}` of the WHIP/WHEP resource URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SessionId(String);

impl SessionId {
    fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
    /// The id as a URL-safe string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of a publish or play.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// Session id for the resource URL.
    pub session: SessionId,
    /// SDP answer (`application/sdp`), with the server's candidates in it.
    pub answer_sdp: String,
    /// Entity tag for the ICE session (RFC 9725 §4.3.1): the server's ICE ufrag.
    pub etag: String,
}

/// Why a room ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher was gone longer than `publisher_grace`.
    PublisherGone,
    /// `close_room` was called.
    Closed,
    /// The SFU shut down.
    Shutdown,
}

/// Room lifecycle events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuEvent {
    /// The room's publisher sent its first media packet.
    RoomLive {
        /// Room
        room: String,
    },
    /// The publisher dropped; the grace period runs.
    PublisherLost {
        /// Room
        room: String,
    },
    /// A publisher connected again within the grace period.
    PublisherReconnected {
        /// Room
        room: String,
    },
    /// A new publish replaced the previous publisher.
    PublisherReplaced {
        /// Room
        room: String,
    },
    /// The room ended; all sessions were dropped.
    RoomEnded {
        /// Room
        room: String,
        /// Why
        reason: EndReason,
        /// Whether media ever flowed ([`SfuEvent::RoomLive`] was sent). A room whose
        /// publisher never connected, or connected and sent nothing, ends without
        /// ever having been live: nobody saw a broadcast end.
        was_live: bool,
    },
    /// Viewer count changed.
    ViewerCount {
        /// Room
        room: String,
        /// Connected viewers (those still connecting are not counted).
        count: usize,
    },
}

/// One simulcast layer (or the single video stream) of the publisher.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerStats {
    /// Simulcast rid, if any.
    pub rid: Option<String>,
    /// Publisher SSRC.
    pub ssrc: u32,
    /// Measured bitrate.
    pub bitrate_bps: u64,
    /// Packets received.
    pub packets: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Padding-only packets received (bandwidth probing; not forwarded).
    pub padding_packets: u64,
}

/// Publisher info.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublisherStats {
    /// Session
    pub session: SessionId,
    /// ICE+DTLS up
    pub connected: bool,
    /// e.g. `VP8` or `H264 42e01f`
    pub video_codec: Option<String>,
    /// e.g. `opus`
    pub audio_codec: Option<String>,
    /// Video layers, lowest bitrate first.
    pub layers: Vec<LayerStats>,
    /// Audio bitrate.
    pub audio_bitrate_bps: u64,
}

/// Per-viewer stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerStats {
    /// Session
    pub session: SessionId,
    /// ICE+DTLS up
    pub connected: bool,
    /// Bitrate sent to the viewer.
    pub bitrate_bps: u64,
    /// Bandwidth estimate.
    pub estimate_bps: u64,
    /// Loss fraction from the last receiver report (0..1).
    pub loss: f64,
    /// Round-trip time from receiver reports.
    pub rtt_ms: Option<u32>,
    /// Current video layer index (0 = lowest), if video flows.
    pub layer: Option<usize>,
    /// Receiving audio only (weak link, or the viewer asked for no video).
    pub audio_only: bool,
    /// RTP packets forwarded.
    pub packets_sent: u64,
    /// Retransmissions sent in answer to NACKs.
    pub retransmitted: u64,
    /// NACKed packets not resent: over the viewer's retransmission budget.
    pub retransmissions_withheld: u64,
    /// NACK packets received.
    pub nacks_received: u64,
    /// PLI/FIR received.
    pub keyframe_requests_received: u64,
}

/// Room snapshot (refreshed four times a second by the room task).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomStats {
    /// Room
    pub room: String,
    /// Publisher connected.
    pub live: bool,
    /// Connected viewers (what `max_viewers_per_room` counts).
    pub viewer_count: usize,
    /// Viewers whose ICE/DTLS has not completed yet.
    pub pending_viewers: usize,
    /// Per viewer, connected or not.
    pub viewers: Vec<ViewerStats>,
    /// Publisher.
    pub publisher: Option<PublisherStats>,
    /// Keyframe requests sent upstream so far.
    pub keyframe_requests_sent: u64,
}

/// Resources held, for leak tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuCounts {
    /// Publisher + viewer sessions.
    pub sessions: usize,
    /// Sessions whose ICE/DTLS has not completed yet.
    pub pending: usize,
    /// Sessions the socket demultiplexer still routes to (by ICE ufrag).
    pub routed: usize,
    /// Rooms (room tasks).
    pub rooms: usize,
    /// Tasks spawned by the SFU that are still running (socket readers, room tasks,
    /// TCP connections).
    pub tasks: usize,
    /// UDP sockets bound.
    pub udp_sockets: usize,
    /// ICE-TCP connections open.
    pub tcp_connections: usize,
}

struct RoomHandle {
    tx: mpsc::Sender<RoomMsg>,
    shared: Arc<RoomShared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

struct Inner {
    cfg: Arc<SfuConfig>,
    net: Arc<Net>,
    counters: Arc<Counters>,
    pending: Arc<PendingBook>,
    rooms: Arc<Mutex<HashMap<String, RoomHandle>>>,
    events: broadcast::Sender<SfuEvent>,
    next_key: AtomicU64,
    shutting_down: AtomicBool,
}

/// The SFU. Cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

impl Sfu {
    /// Bind sockets and start.
    pub async fn start(config: SfuConfig) -> Result<Sfu, SfuError> {
        let cfg = Arc::new(config);
        let counters = Arc::new(Counters::default());
        let net = Net::start(cfg.clone(), counters.clone()).await?;
        let (events, _) = broadcast::channel(1024);
        let pending = PendingBook::new(cfg.max_pending_per_client, cfg.max_pending_per_room);
        Ok(Sfu {
            inner: Arc::new(Inner {
                cfg,
                net,
                counters,
                pending,
                rooms: Arc::new(Mutex::new(HashMap::new())),
                events,
                next_key: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SfuConfig {
        &self.inner.cfg
    }

    /// STUN/TURN servers to hand to clients.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.inner.cfg.ice_servers
    }

    /// Subscribe to room events.
    pub fn events(&self) -> broadcast::Receiver<SfuEvent> {
        self.inner.events.subscribe()
    }

    /// Resources currently held.
    pub fn counts(&self) -> SfuCounts {
        let c = &self.inner.counters;
        SfuCounts {
            sessions: c.sessions.load(Ordering::Relaxed),
            pending: self.inner.pending.total(),
            routed: self.inner.net.routed_sessions(),
            rooms: c.rooms.load(Ordering::Relaxed),
            tasks: c.tasks.load(Ordering::Relaxed),
            udp_sockets: c.udp_sockets.load(Ordering::Relaxed),
            tcp_connections: c.tcp_connections.load(Ordering::Relaxed),
        }
    }

    /// The muxed UDP sockets (none in port-range mode): `(bound, advertised)` address
    /// of each. They differ behind 1:1 NAT (`nat_1to1_ips`).
    pub fn udp_addresses(&self) -> Vec<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.inner.net.udp_addresses()
    }

    /// Sessions from `client` (IPv6: its /64) that have not connected yet.
    pub fn pending_of(&self, client: IpAddr) -> usize {
        self.inner.pending.of_client(client)
    }

    /// Latest stats snapshot of a room.
    pub fn room_stats(&self, room: &str) -> Option<RoomStats> {
        let rooms = lock(&self.inner.rooms);
        rooms.get(room).map(|h| lock(&h.shared.stats).clone())
    }

    /// Media counters of every running broadcast, for `/metrics` (see
    /// [`metrics::render_prometheus`]).
    pub fn media_metrics(&self) -> Vec<BroadcastMetrics> {
        let rooms = lock(&self.inner.rooms);
        let mut all: Vec<BroadcastMetrics> = rooms
            .values()
            .map(|h| {
                let s = &h.shared;
                let m = &s.media;
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                BroadcastMetrics {
                    room: s.name.clone(),
                    viewers: s.viewer_count.load(Ordering::Relaxed),
                    packets_in: get(&m.packets_in),
                    packets_out: get(&m.packets_out),
                    bytes_out: get(&m.bytes_out),
                    send_drops: get(&m.send_drops),
                    fan_outs: get(&m.fan_outs),
                    fanned_packets: get(&m.fanned_packets),
                    queue_depth: get(&m.queue_depth),
                    queue_depth_max: get(&m.queue_depth_max),
                    busy_seconds: get(&m.busy_ns) as f64 / 1e9,
                }
            })
            .collect();
        all.sort_by(|a, b| a.room.cmp(&b.room));
        all
    }

    fn check_capacity(&self) -> Result<(), SfuError> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(SfuError::ShuttingDown);
        }
        let n = self.inner.counters.sessions.load(Ordering::Relaxed);
        if n >= self.inner.cfg.max_sessions {
            return Err(SfuError::TooManySessions(self.inner.cfg.max_sessions));
        }
        Ok(())
    }

    fn room_or_create(&self, room: &str) -> (mpsc::Sender<RoomMsg>, Arc<RoomShared>) {
        let mut rooms = lock(&self.inner.rooms);
        if let Some(h) = rooms.get(room)
            && !h.tx.is_closed()
        {
            return (h.tx.clone(), h.shared.clone());
        }
        let (tx, rx) = mpsc::channel(4096);
        let shared = Arc::new(RoomShared {
            name: room.to_owned(),
            stats: Mutex::new(RoomStats {
                room: room.to_owned(),
                ..Default::default()
            }),
            publisher_choice: Mutex::new(None),
            viewer_count: AtomicUsize::new(0),
            pending_viewers: Arc::new(AtomicUsize::new(0)),
            sessions: Mutex::new(HashMap::new()),
            media: Default::default(),
        });
        let task_slot = Arc::new(Mutex::new(None));
        let r = room::shell::new_room(
            self.inner.cfg.clone(),
            self.inner.net.clone(),
            shared.clone(),
            self.inner.events.clone(),
        );
        let rooms_map = self.inner.rooms.clone();
        let me = shared.clone();
        let guard = CountGuard::new(&self.inner.counters, |c| &c.rooms);
        let handle = spawn_counted(&self.inner.counters, async move {
            let _guard = guard;
            room::shell::run(r, rx).await;
            let mut rooms = lock(&rooms_map);
            if rooms
                .get(&me.name)
                .is_some_and(|h| Arc::ptr_eq(&h.shared, &me))
            {
                rooms.remove(&me.name);
            }
        });
        *lock(&task_slot) = Some(handle);
        rooms.insert(
            room.to_owned(),
            RoomHandle {
                tx: tx.clone(),
                shared: shared.clone(),
                task: task_slot,
            },
        );
        (tx, shared)
    }

    fn existing_room(&self, room: &str) -> Option<(mpsc::Sender<RoomMsg>, Arc<RoomShared>)> {
        let rooms = lock(&self.inner.rooms);
        rooms
            .get(room)
            .filter(|h| !h.tx.is_closed())
            .map(|h| (h.tx.clone(), h.shared.clone()))
    }

    /// WHIP: publisher offer in, answer out. A second publish to the same room
    /// replaces the first publisher; viewers keep their tracks (no renegotiation).
    ///
    /// `client` is the address the offer came from: until it connects, the session
    /// counts against that address's `max_pending_per_client`.
    pub async fn publish(
        &self,
        room: &str,
        offer_sdp: &str,
        client: IpAddr,
    ) -> Result<SessionAnswer, SfuError> {
        self.check_capacity()?;
        let pending = self.inner.pending.reserve(client, None)?;
        let summary = sdp::inspect_offer(offer_sdp)?;
        let choice = sdp::choose_publisher(&summary)?;
        let sockets = self.inner.net.session_sockets().await?;
        let ufrag = random_token(16);
        let mut pc = build_publisher_pc(&choice, &ufrag)?;
        let answer = negotiate(
            &mut pc,
            offer_sdp,
            &self.inner.net.candidates(&sockets),
            |_| Ok(()),
        )?;
        let (tx, shared) = self.room_or_create(room);
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let id = SessionId::random();
        self.inner.net.register(
            &ufrag,
            Route {
                session: key,
                tx: tx.clone(),
            },
        );
        lock(&shared.sessions).insert(id.0.clone(), SessionEntry::new(key, &ufrag, &summary));
        let peer = NewPeer {
            key,
            id: id.clone(),
            ufrag: ufrag.clone(),
            pc,
            sockets,
            guard: CountGuard::new(&self.inner.counters, |c| &c.sessions),
            pending,
            choice: Some(choice),
        };
        if tx
            .send(RoomMsg::AddPublisher(Box::new(peer)))
            .await
            .is_err()
        {
            self.inner.net.forget(&ufrag, key);
            return Err(SfuError::Internal("room closed while publishing".into()));
        }
        tracing::info!(room, session = %id, "publisher session created");
        Ok(SessionAnswer {
            session: id,
            answer_sdp: answer,
            etag: ufrag,
        })
    }

    /// WHEP: viewer offer (recvonly) in, answer out.
    ///
    /// Refused with [`SfuError::NoPublisher`] when the room has no publisher (no
    /// waiting room: a player should retry or show "not live yet"). During the
    /// publisher grace period the room still accepts viewers with the last
    /// publisher's codecs; media starts when the publisher is back.
    ///
    /// Only connected viewers take one of the room's `max_viewers_per_room` slots.
    /// Until it connects, the session counts against `client`'s
    /// `max_pending_per_client` and the room's `max_pending_per_room`, and it is
    /// dropped if it has not connected within `connect_timeout`.
    pub async fn play(
        &self,
        room: &str,
        offer_sdp: &str,
        client: IpAddr,
    ) -> Result<SessionAnswer, SfuError> {
        self.check_capacity()?;
        let (tx, shared) = self.existing_room(room).ok_or(SfuError::NoPublisher)?;
        let choice = lock(&shared.publisher_choice)
            .clone()
            .ok_or(SfuError::NoPublisher)?;
        if shared.viewer_count.load(Ordering::Relaxed) >= self.inner.cfg.max_viewers_per_room {
            return Err(SfuError::RoomFull(self.inner.cfg.max_viewers_per_room));
        }
        let pending = self
            .inner
            .pending
            .reserve(client, Some(&shared.pending_viewers))?;
        let summary = sdp::inspect_offer(offer_sdp)?;
        let vchoice = sdp::choose_viewer(&summary, &choice)?;
        let sockets = self.inner.net.session_sockets().await?;
        let ufrag = random_token(16);
        let mut pc = build_viewer_pc(&vchoice, &ufrag)?;
        let mut legs = None;
        let answer = negotiate(
            &mut pc,
            offer_sdp,
            &self.inner.net.candidates(&sockets),
            |pc| {
                legs = Some(egress::add_viewer_tracks(pc, &vchoice, to_rtc_codec)?);
                Ok(())
            },
        )?;
        let legs = legs.ok_or_else(|| SfuError::Internal("viewer tracks not added".into()))?;
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let id = SessionId::random();
        self.inner.net.register(
            &ufrag,
            Route {
                session: key,
                tx: tx.clone(),
            },
        );
        lock(&shared.sessions).insert(id.0.clone(), SessionEntry::new(key, &ufrag, &summary));
        let peer = NewPeer {
            key,
            id: id.clone(),
            ufrag: ufrag.clone(),
            pc,
            sockets,
            guard: CountGuard::new(&self.inner.counters, |c| &c.sessions),
            pending,
            choice: None,
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let sent = tx
            .send(RoomMsg::AddViewer(Box::new(peer), Box::new(legs), reply_tx))
            .await;
        let res = match sent {
            Ok(()) => reply_rx.await.unwrap_or(Err(SfuError::NoPublisher)),
            Err(_) => Err(SfuError::NoPublisher),
        };
        if let Err(e) = res {
            self.inner.net.forget(&ufrag, key);
            lock(&shared.sessions).remove(&id.0);
            return Err(e);
        }
        tracing::info!(room, session = %id, "viewer session created");
        Ok(SessionAnswer {
            session: id,
            answer_sdp: answer,
            etag: ufrag,
        })
    }

    fn session(
        &self,
        room: &str,
        session: &SessionId,
    ) -> Result<(mpsc::Sender<RoomMsg>, SessionEntry), SfuError> {
        let (tx, shared) = self.existing_room(room).ok_or(SfuError::UnknownSession)?;
        let entry = lock(&shared.sessions)
            .get(&session.0)
            .cloned()
            .ok_or(SfuError::UnknownSession)?;
        Ok((tx, entry))
    }

    fn session_key(
        &self,
        room: &str,
        session: &SessionId,
    ) -> Result<(mpsc::Sender<RoomMsg>, u64), SfuError> {
        self.session(room, session).map(|(tx, e)| (tx, e.key))
    }

    /// The entity tag of a session's ICE session (what [`SessionAnswer::etag`] was),
    /// for `If-Match` checks.
    pub fn session_etag(&self, room: &str, session: &SessionId) -> Result<String, SfuError> {
        self.session(room, session).map(|(_, e)| e.ufrag)
    }

    /// Trickle ICE (`application/trickle-ice-sdpfrag`, RFC 8840). A fragment that
    /// is not one is [`SfuError::BadTrickle`]; one with ICE credentials other than
    /// the offer's asks for an ICE restart, which is not supported
    /// ([`SfuError::IceRestartUnsupported`]: end the session and POST a new offer).
    pub async fn trickle(
        &self,
        room: &str,
        session: &SessionId,
        sdpfrag: &str,
    ) -> Result<(), SfuError> {
        let (tx, entry) = self.session(room, session)?;
        let key = entry.key;
        let frag = sdp::parse_sdpfrag(sdpfrag)?;
        let changed = |sent: &Option<String>, known: &Option<String>| {
            sent.as_ref().is_some_and(|s| known.as_ref() != Some(s))
        };
        if changed(&frag.ufrag, &entry.remote_ufrag) || changed(&frag.pwd, &entry.remote_pwd) {
            return Err(SfuError::IceRestartUnsupported);
        }
        let candidates = frag
            .candidates
            .into_iter()
            .map(|(mid, c)| RTCIceCandidateInit {
                candidate: c,
                sdp_mid: mid,
                sdp_mline_index: Some(0),
                username_fragment: None,
                url: None,
            })
            .collect();
        let (reply, rx) = oneshot::channel();
        tx.send(RoomMsg::Candidates {
            session: key,
            candidates,
            reply,
        })
        .await
        .map_err(|_| SfuError::UnknownSession)?;
        rx.await.unwrap_or(Err(SfuError::UnknownSession))
    }

    /// End one session (WHIP/WHEP `DELETE`). Ending the publisher starts the grace
    /// period; the room ends if nobody publishes again within it.
    pub async fn end_session(&self, room: &str, session: &SessionId) -> Result<(), SfuError> {
        let (tx, key) = self.session_key(room, session)?;
        let (reply, rx) = oneshot::channel();
        tx.send(RoomMsg::End {
            session: key,
            reply,
        })
        .await
        .map_err(|_| SfuError::UnknownSession)?;
        rx.await.unwrap_or(Err(SfuError::UnknownSession))
    }

    /// The owner ended the broadcast: drop everyone now. Waits until the room is gone.
    pub async fn close_room(&self, room: &str) {
        let handle = {
            let rooms = lock(&self.inner.rooms);
            rooms.get(room).map(|h| (h.tx.clone(), h.task.clone()))
        };
        if let Some((tx, task)) = handle {
            let _ = tx.send(RoomMsg::Close(EndReason::Closed)).await;
            let t = lock(&task).take();
            if let Some(t) = t {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        }
    }

    /// Copy this room's publisher packets from now on (for a recorder). `None` if
    /// the room does not exist. The tap ends when the room does.
    pub async fn tap(&self, room: &str) -> Option<MediaTap> {
        let (tx, _) = self.existing_room(room)?;
        let (sender, tap) = tap::tap();
        tx.send(RoomMsg::AddTap(sender)).await.ok()?;
        Some(tap)
    }

    /// Ask the room's publisher for a keyframe (rate-limited like viewers' requests),
    /// e.g. so a recording starts with a picture. `false` if the room does not exist.
    pub async fn request_keyframe(&self, room: &str) -> bool {
        match self.existing_room(room) {
            Some((tx, _)) => tx.send(RoomMsg::RequestKeyframe).await.is_ok(),
            None => false,
        }
    }

    /// Stop: end every room, close sockets, wait for tasks.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let handles: Vec<_> = {
            let rooms = lock(&self.inner.rooms);
            rooms
                .values()
                .map(|h| (h.tx.clone(), h.task.clone()))
                .collect()
        };
        for (tx, _) in &handles {
            let _ = tx.send(RoomMsg::Close(EndReason::Shutdown)).await;
        }
        for (_, task) in handles {
            let t = lock(&task).take();
            if let Some(t) = t {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        }
        self.inner.net.shutdown().await;
    }
}

/// Letters and digits, each equally likely (no modulo bias).
fn random_token(n: usize) -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    }
}

fn to_rtc_codec(c: &OfferedCodec) -> RTCRtpCodec {
    let video = c.mime.to_ascii_lowercase().starts_with("video/");
    RTCRtpCodec {
        mime_type: c.mime.clone(),
        clock_rate: c.clock_rate,
        channels: c.channels,
        sdp_fmtp_line: c.fmtp.clone(),
        rtcp_feedback: if video {
            vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
                feedback("goog-remb", ""),
            ]
        } else {
            vec![]
        },
    }
}

fn register(me: &mut MediaEngine, c: &OfferedCodec, kind: RtpCodecKind) -> Result<(), SfuError> {
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: to_rtc_codec(c),
            payload_type: c.pt,
        },
        kind,
    )
    .map_err(internal)
}

/// Marks all inbound RTCP for delivery to the room task (rtc drops it otherwise).
#[derive(Default)]
struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

fn settings(ufrag: &str) -> rtc::peer_connection::configuration::setting_engine::SettingEngine {
    SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.to_owned(), random_token(24))
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build()
}

fn build_publisher_pc(
    choice: &PublisherChoice,
    ufrag: &str,
) -> Result<RTCPeerConnection, SfuError> {
    let mut me = MediaEngine::default();
    if let Some(v) = &choice.video {
        register(&mut me, v, RtpCodecKind::Video)?;
    }
    if let Some(a) = &choice.audio {
        register(&mut me, a, RtpCodecKind::Audio)?;
    }
    for uri in [
        rtc::sdp::extmap::SDES_MID_URI,
        rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
        rtc::sdp::extmap::SDES_REPAIR_RTP_STREAM_ID_URI,
    ] {
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            me.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                kind,
                None,
            )
            .map_err(internal)?;
        }
    }
    let registry = Registry::new()
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::from(14_000), DeliverRtcp::default());
    let registry = configure_twcc_receiver_only(registry, &mut me).map_err(internal)?;
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings(ufrag))
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(internal)
}

fn build_viewer_pc(choice: &sdp::ViewerChoice, ufrag: &str) -> Result<RTCPeerConnection, SfuError> {
    let mut me = MediaEngine::default();
    if let Some(v) = &choice.video {
        register(&mut me, v, RtpCodecKind::Video)?;
    }
    if let Some(a) = &choice.audio {
        register(&mut me, a, RtpCodecKind::Audio)?;
    }
    let registry = Registry::new().with(Slot::from(14_000), DeliverRtcp::default());
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings(ufrag))
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(internal)
}

/// Apply the offer, add our candidates, answer.
fn negotiate(
    pc: &mut RTCPeerConnection,
    offer_sdp: &str,
    candidates: &[String],
    before_answer: impl FnOnce(&mut RTCPeerConnection) -> Result<(), SfuError>,
) -> Result<String, SfuError> {
    let offer = RTCSessionDescription::offer(offer_sdp.to_owned())
        .map_err(|e| SfuError::BadSdp(e.to_string()))?;
    pc.set_remote_description(Instant::now(), offer)
        .map_err(|e| SfuError::BadSdp(e.to_string()))?;
    before_answer(pc)?;
    for c in candidates {
        pc.add_local_candidate(RTCIceCandidateInit {
            candidate: c.clone(),
            ..Default::default()
        })
        .map_err(internal)?;
    }
    let answer = pc.create_answer(None).map_err(internal)?;
    pc.set_local_description(Instant::now(), answer)
        .map_err(internal)?;
    pc.local_description()
        .map(|d| d.sdp)
        .ok_or_else(|| SfuError::Internal("no local description".into()))
}
