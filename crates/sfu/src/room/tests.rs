//! The room core on a simulated clock: no sockets, no task, no sleeps.

use super::{Outbox, Output, Room, RoomShared};
use crate::config::SfuConfig;
use crate::{EndReason, RoomStats, SfuError, SfuEvent};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

struct Harness {
    room: Room,
    events: broadcast::Receiver<SfuEvent>,
    /// Datagrams and closed sessions the core asked for, as (transmits, closed ufrags).
    out: Arc<Mutex<(usize, Vec<String>)>>,
    now: Instant,
}

/// The state a room shares with its `Sfu` handle, for room "b1".
fn shared() -> Arc<RoomShared> {
    Arc::new(RoomShared {
        name: "b1".into(),
        stats: Mutex::new(RoomStats::default()),
        publisher_choice: Mutex::new(None),
        viewer_count: AtomicUsize::new(0),
        pending_viewers: Arc::new(AtomicUsize::new(0)),
        sessions: Mutex::new(HashMap::new()),
        media: Default::default(),
    })
}

fn harness(cfg: SfuConfig) -> Harness {
    let shared = shared();
    let (tx, events) = broadcast::channel(64);
    let out = Arc::new(Mutex::new((0, Vec::new())));
    let seen = out.clone();
    let outbox = Outbox::new(move |o| {
        let mut seen = seen.lock().unwrap();
        match o {
            Output::Transmit { .. } => seen.0 += 1,
            Output::Closed { ufrag, .. } => seen.1.push(ufrag.to_owned()),
        }
    });
    let now = Instant::now();
    Harness {
        room: Room::new(Arc::new(cfg), shared, tx, outbox, now),
        events,
        out,
        now,
    }
}

impl Harness {
    /// Advance the clock to `until`, firing every timer the core asks for on the way.
    fn run_until(&mut self, until: Instant) -> Option<EndReason> {
        loop {
            let next = self.room.poll_timeout().max(self.now);
            if next > until {
                self.now = until;
                return None;
            }
            self.now = next;
            if let Some(r) = self.room.handle_timeout(next) {
                return Some(r);
            }
        }
    }
}

#[test]
fn a_room_without_a_publisher_ends_when_the_grace_period_runs_out() {
    let cfg = SfuConfig {
        publisher_grace: Duration::from_secs(10),
        ..SfuConfig::loopback_for_tests()
    };
    let mut h = harness(cfg);
    let t0 = h.now;
    // Well inside the grace period the room waits for its publisher.
    assert_eq!(h.run_until(t0 + Duration::from_secs(9)), None);
    // Past it, the broadcast is over.
    let ended = h.run_until(t0 + Duration::from_secs(11));
    assert_eq!(ended, Some(EndReason::PublisherGone));
    h.room.teardown(EndReason::PublisherGone);
    let mut saw_end = false;
    while let Ok(e) = h.events.try_recv() {
        if let SfuEvent::RoomEnded {
            room,
            reason,
            was_live,
        } = e
        {
            assert_eq!(room, "b1");
            assert_eq!(reason, EndReason::PublisherGone);
            assert!(!was_live, "no media ever flowed");
            saw_end = true;
        }
    }
    assert!(saw_end, "RoomEnded was emitted");
}

#[test]
fn the_core_sleeps_between_ticks_and_sends_nothing_on_its_own() {
    let mut h = harness(SfuConfig::loopback_for_tests());
    let t0 = h.now;
    let mut wakes = 0;
    while h.now < t0 + Duration::from_secs(2) {
        let next = h.room.poll_timeout();
        assert!(next > h.now, "a fired timer is rearmed in the future");
        h.now = next;
        assert_eq!(h.room.handle_timeout(next), None);
        wakes += 1;
    }
    // Tick (250 ms) and sender-report (1 s) timers only: a few wakes a second.
    assert!(wakes <= 12, "{wakes} wakes in 2 s");
    assert_eq!(h.out.lock().unwrap().0, 0, "no peer, no datagram");
}

#[test]
fn control_calls_for_unknown_sessions_are_refused_and_change_nothing() {
    let mut h = harness(SfuConfig::loopback_for_tests());
    let now = h.now;
    assert!(matches!(
        h.room.end_session(42, now),
        Err(SfuError::UnknownSession)
    ));
    assert!(matches!(
        h.room.add_candidates(42, Vec::new()),
        Err(SfuError::UnknownSession)
    ));
    assert!(h.out.lock().unwrap().1.is_empty());
}

// ---- A room with real peers, connected in memory -------------------------------
//
// The SFU side of each session is built exactly as `Sfu::publish` / `Sfu::play`
// build it; the other side is a sans-I/O `rtc` client playing the phone or the
// player. ICE, DTLS and SRTP run for real; the harness carries the datagrams.

use super::NewPeer;
use crate::SessionId;
use crate::forward::{VideoCodec, is_keyframe};
use crate::memory_peer::{vp8_client, vp8_offered, vp8_simulcast_client};
use crate::net::{CountGuard, Counters};
use crate::pending::PendingBook;
use crate::sdp::{self, PublisherChoice};
use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;

const SFU_ADDR: &str = "127.0.0.1:8189";

fn candidate(addr: SocketAddr) -> String {
    format!(
        "candidate:1 1 udp 2130706431 {} {} typ host",
        addr.ip(),
        addr.port()
    )
}

/// The phone or the player.
struct Client {
    pc: RTCPeerConnection,
    addr: SocketAddr,
    session: u64,
    state: RTCPeerConnectionState,
    /// Publisher: its video sender and SSRC, and the next sequence number.
    sender: Option<(RTCRtpSenderId, u32, u16)>,
    /// Publisher: the RTP timestamp of its next frame (each phone its own clock).
    ts: u32,
    /// Player: every RTP packet it decrypted.
    rtp: Vec<rtp::Packet>,
    /// Simulcast phone: each layer's SSRC and next sequence number, lowest first.
    layers: Vec<(u32, u16)>,
}

impl Client {
    fn new(n: u16, send: bool, now: Instant) -> (Self, String) {
        let addr: SocketAddr = format!("127.0.1.1:{}", 20_000 + n).parse().unwrap();
        let mut pc = vp8_client(now).unwrap();
        let mut sender = None;
        if send {
            let ssrc = rand::random::<u32>();
            let track = MediaStreamTrack::new(
                "phone".into(),
                "phone-video".into(),
                "video".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: crate::to_rtc_codec(&vp8_offered()),
                    ..Default::default()
                }],
            );
            sender = Some((pc.add_track(track).unwrap(), ssrc, rand::random::<u16>()));
        } else {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .unwrap();
        }
        Self::offering(pc, addr, sender, Vec::new(), now)
    }

    /// The client with its loopback candidate, and the offer it makes.
    fn offering(
        mut pc: RTCPeerConnection,
        addr: SocketAddr,
        sender: Option<(RTCRtpSenderId, u32, u16)>,
        layers: Vec<(u32, u16)>,
        now: Instant,
    ) -> (Self, String) {
        pc.add_local_candidate(RTCIceCandidateInit {
            candidate: candidate(addr),
            ..Default::default()
        })
        .unwrap();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer).unwrap();
        let offer = pc.local_description().unwrap().sdp.clone();
        let client = Self {
            pc,
            addr,
            session: 0,
            state: RTCPeerConnectionState::New,
            sender,
            ts: rand::random(),
            rtp: Vec::new(),
            layers,
        };
        (client, offer)
    }

    /// A phone sending VP8 in three simulcast layers (rids q, h, f).
    fn simulcast(n: u16, now: Instant) -> (Self, String) {
        let addr: SocketAddr = format!("127.0.1.1:{}", 20_000 + n).parse().unwrap();
        let mut pc = vp8_simulcast_client(now).unwrap();
        let layers: Vec<(u32, u16)> = (0..3).map(|_| (rand::random(), rand::random())).collect();
        let encodings = SIMULCAST_RIDS
            .iter()
            .zip(&layers)
            .map(|(rid, (ssrc, _))| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: (*rid).to_owned(),
                    ssrc: Some(*ssrc),
                    ..Default::default()
                },
                codec: crate::to_rtc_codec(&vp8_offered()),
                ..Default::default()
            })
            .collect();
        let track = MediaStreamTrack::new(
            "phone".into(),
            "phone-video".into(),
            "video".into(),
            RtpCodecKind::Video,
            encodings,
        );
        let sender = pc.add_track(track).unwrap();
        Self::offering(pc, addr, Some((sender, 0, 0)), layers, now)
    }

    /// A simulcast phone sends one frame on every layer: `1 + layer` packets of
    /// `300 + 350 × layer` bytes each (so the layers' rates differ as a real
    /// encoder's do), each packet's last payload byte naming its layer.
    /// `keyframes` says which layers this frame is a keyframe on.
    fn send_simulcast_frame(&mut self, keyframes: [bool; 3], now: Instant) {
        let ts = self.ts;
        self.ts = ts.wrapping_add(3000);
        let answer = self.pc.remote_description().unwrap().sdp.clone();
        let mid_id = extmap_id(&answer, rtc::sdp::extmap::SDES_MID_URI).unwrap();
        let rid_id = extmap_id(&answer, rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI).unwrap();
        let sender = self.sender.unwrap().0;
        for layer in 0..3 {
            let packets = 1 + layer;
            for i in 0..packets {
                let (ssrc, seq) = &mut self.layers[layer];
                let start = i == 0;
                let key = keyframes[layer];
                let mut payload = vec![
                    if start { 0x10 } else { 0x00 },
                    if key { 0x00 } else { 0x01 },
                ];
                payload.extend_from_slice(&[0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                payload.resize(300 + 350 * layer, 0x55);
                *payload.last_mut().unwrap() = layer as u8;
                let mut header = rtp::header::Header {
                    version: 2,
                    marker: i + 1 == packets,
                    payload_type: 96,
                    sequence_number: *seq,
                    timestamp: ts,
                    ssrc: *ssrc,
                    ..Default::default()
                };
                header
                    .set_extension(mid_id, Bytes::from_static(b"0"))
                    .unwrap();
                header
                    .set_extension(rid_id, Bytes::from(SIMULCAST_RIDS[layer].as_bytes()))
                    .unwrap();
                *seq = seq.wrapping_add(1);
                self.pc
                    .rtp_sender(sender)
                    .unwrap()
                    .write_rtp(
                        now,
                        rtp::Packet {
                            header,
                            payload: Bytes::from(payload),
                        },
                    )
                    .unwrap();
            }
        }
    }

    /// The player tells the SFU what its link carries (REMB).
    fn send_remb(&mut self, bps: u64, now: Instant) {
        let ssrc = self.rtp.first().map(|p| p.header.ssrc).unwrap_or(0);
        let remb = rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: bps as f32,
            ssrcs: vec![ssrc],
        };
        let receiver = self.pc.get_receivers().next().unwrap();
        self.pc
            .rtp_receiver(receiver)
            .unwrap()
            .write_rtcp(now, vec![Box::new(remb)])
            .unwrap();
    }

    /// Send one video packet: the first of a keyframe, or of a delta frame.
    fn send_frame(&mut self, keyframe: bool, now: Instant) {
        let ts = self.ts;
        self.ts = ts.wrapping_add(3000);
        let (sender, ssrc, seq) = self.sender.as_mut().unwrap();
        let mut payload = vec![0x10, if keyframe { 0x00 } else { 0x01 }, 0, 0];
        payload.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        payload.resize(600, 0x55);
        let pkt = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: true,
                payload_type: 96,
                sequence_number: *seq,
                timestamp: ts,
                ssrc: *ssrc,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        *seq = seq.wrapping_add(1);
        let sender = *sender;
        self.pc
            .rtp_sender(sender)
            .unwrap()
            .write_rtp(now, pkt)
            .unwrap();
    }

    fn receive(&mut self) {
        while let Some(ev) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                self.state = s;
            }
        }
        while let Some(m) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, pkt) = m.message {
                self.rtp.push(pkt);
            }
        }
    }

    fn keyframes(&self) -> usize {
        self.rtp
            .iter()
            .filter(|p| is_keyframe(VideoCodec::Vp8, &p.payload))
            .count()
    }
}

type Wire = Arc<Mutex<Vec<(SocketAddr, SocketAddr, BytesMut)>>>;

struct World {
    room: Room,
    wire: Wire,
    clients: Vec<Client>,
    now: Instant,
    next_key: u64,
    counters: Arc<Counters>,
    pending: Arc<PendingBook>,
    choice: Option<PublisherChoice>,
    /// Lose the n-th (from 0) video RTP datagram to this address on the wire.
    lose_video_to: Option<(SocketAddr, usize)>,
}

/// An SRTP datagram carrying VP8 (payload type 96), not RTCP.
fn is_video_rtp(d: &[u8]) -> bool {
    d.len() > 12 && d[0] & 0xc0 == 0x80 && d[1] & 0x7f == 96
}

const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// The id an SDP gives a header extension.
fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (id, u) = l.trim().strip_prefix("a=extmap:")?.split_once(' ')?;
        (u.trim() == uri).then(|| id.split('/').next()?.parse().ok())?
    })
}

/// The simulcast layer a forwarded test packet came from.
fn layer_of(p: &rtp::Packet) -> u8 {
    *p.payload.last().unwrap()
}

impl World {
    fn new() -> Self {
        Self::with_config(SfuConfig::loopback_for_tests())
    }

    fn with_config(cfg: SfuConfig) -> Self {
        let shared = shared();
        let wire: Wire = Arc::default();
        let w = wire.clone();
        let outbox = Outbox::new(move |o| {
            if let Output::Transmit {
                transport, data, ..
            } = o
            {
                w.lock()
                    .unwrap()
                    .push((transport.local_addr, transport.peer_addr, data));
            }
        });
        let now = Instant::now();
        let (tx, _) = broadcast::channel(64);
        Self {
            room: Room::new(Arc::new(cfg), shared, tx, outbox, now),
            wire,
            clients: Vec::new(),
            now,
            next_key: 1,
            counters: Arc::new(Counters::default()),
            pending: PendingBook::new(100, 100),
            choice: None,
            lose_video_to: None,
        }
    }

    fn peer(&mut self, pc: RTCPeerConnection, ufrag: String, publisher: bool) -> NewPeer {
        let key = self.next_key;
        self.next_key += 1;
        NewPeer {
            key,
            id: SessionId::random(),
            ufrag,
            pc,
            sockets: Default::default(),
            guard: CountGuard::new(&self.counters, |c| &c.sessions),
            pending: self
                .pending
                .reserve("127.0.1.1".parse().unwrap(), None)
                .unwrap(),
            choice: publisher.then(|| self.choice.clone()).flatten(),
        }
    }

    /// A phone publishing VP8; returns its index.
    fn publish(&mut self) -> usize {
        let n = self.clients.len() as u16;
        let (client, offer) = Client::new(n, true, self.now);
        self.add_phone(client, offer)
    }

    /// A phone publishing VP8 in three simulcast layers; returns its index.
    fn publish_simulcast(&mut self) -> usize {
        let n = self.clients.len() as u16;
        let (client, offer) = Client::simulcast(n, self.now);
        self.add_phone(client, offer)
    }

    fn add_phone(&mut self, mut client: Client, offer: String) -> usize {
        let summary = sdp::inspect_offer(&offer).unwrap();
        let choice = sdp::choose_publisher(&summary).unwrap();
        self.choice = Some(choice.clone());
        let ufrag = crate::random_token(16);
        let mut pc = crate::build_publisher_pc(&choice, &ufrag).unwrap();
        let sfu: SocketAddr = SFU_ADDR.parse().unwrap();
        let answer = crate::negotiate(&mut pc, &offer, &[candidate(sfu)], |_| Ok(())).unwrap();
        client
            .pc
            .set_remote_description(self.now, RTCSessionDescription::answer(answer).unwrap())
            .unwrap();
        let peer = self.peer(pc, ufrag, true);
        client.session = peer.key;
        self.room.add_publisher(peer, self.now);
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// A player joining; returns its index.
    fn play(&mut self) -> usize {
        let n = self.clients.len() as u16;
        let (mut client, offer) = Client::new(n, false, self.now);
        let summary = sdp::inspect_offer(&offer).unwrap();
        let vchoice = sdp::choose_viewer(&summary, self.choice.as_ref().unwrap()).unwrap();
        let ufrag = crate::random_token(16);
        let mut pc = crate::build_viewer_pc(&vchoice, &ufrag).unwrap();
        let sfu: SocketAddr = SFU_ADDR.parse().unwrap();
        let mut legs = None;
        let answer = crate::negotiate(&mut pc, &offer, &[candidate(sfu)], |pc| {
            legs = Some(crate::egress::add_viewer_tracks(
                pc,
                &vchoice,
                crate::to_rtc_codec,
            )?);
            Ok(())
        })
        .unwrap();
        client
            .pc
            .set_remote_description(self.now, RTCSessionDescription::answer(answer).unwrap())
            .unwrap();
        let peer = self.peer(pc, ufrag, false);
        client.session = peer.key;
        self.room.add_viewer(peer, legs.unwrap(), self.now).unwrap();
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// Carry datagrams both ways until the wire is quiet.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = 0;
            for (from, to, data) in std::mem::take(&mut *self.wire.lock().unwrap()) {
                if let Some((addr, n)) = self.lose_video_to.as_mut()
                    && *addr == to
                    && is_video_rtp(&data)
                {
                    if *n == 0 {
                        self.lose_video_to = None;
                        continue;
                    }
                    *n -= 1;
                }
                if let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) {
                    moved += 1;
                    let _ = c.pc.handle_read(TaggedBytesMut {
                        now: self.now,
                        transport: TransportContext {
                            local_addr: to,
                            peer_addr: from,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: data,
                    });
                }
            }
            for c in &mut self.clients {
                while let Some(out) = c.pc.poll_write() {
                    moved += 1;
                    self.room.handle_datagram(
                        c.session,
                        TransportContext {
                            local_addr: out.transport.peer_addr,
                            peer_addr: c.addr,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        out.message,
                        self.now,
                    );
                }
                c.receive();
            }
            self.room.flush_media();
            if moved == 0 {
                return;
            }
        }
    }

    /// Let `d` pass in 5 ms steps, firing every timer on both sides.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.now += Duration::from_millis(5);
            for c in &mut self.clients {
                let _ = c.pc.handle_timeout(self.now);
            }
            if self.room.poll_timeout() <= self.now {
                assert_eq!(self.room.handle_timeout(self.now), None);
            }
            self.pump();
        }
    }

    /// The phone at `phone` sends `n` frames at 30 fps, the first a keyframe if
    /// `keyframe_first`.
    fn frames(&mut self, phone: usize, n: usize, keyframe_first: bool) {
        for i in 0..n {
            let now = self.now;
            self.clients[phone].send_frame(keyframe_first && i == 0, now);
            self.advance(Duration::from_millis(33));
        }
    }

    /// A room whose phone has streamed `frames` frames, its keyframe over a second
    /// old (so the keyframe-request limiter is open again).
    fn with_live_phone(frames: usize) -> (Self, usize) {
        let mut w = Self::new();
        let phone = w.publish();
        w.connect();
        w.frames(phone, frames, true);
        w.advance(Duration::from_millis(1100));
        (w, phone)
    }

    fn connect(&mut self) {
        for _ in 0..400 {
            if self
                .clients
                .iter()
                .all(|c| c.state == RTCPeerConnectionState::Connected)
            {
                return;
            }
            self.advance(Duration::from_millis(5));
        }
        panic!("peers did not connect");
    }
}

#[test]
fn a_joiner_starts_on_a_keyframe_it_asked_the_phone_for() {
    // The phone streams delta frames; its first keyframe is long gone.
    let (mut w, phone) = World::with_live_phone(10);
    let asked_before = w.room.keyframe_requests;
    let viewer = w.play();
    w.connect();
    w.frames(phone, 10, false);
    // Nothing undecodable reached the player, and the phone was asked.
    assert!(
        w.clients[viewer].rtp.is_empty(),
        "no delta frame before a keyframe"
    );
    assert!(
        w.room.keyframe_requests > asked_before,
        "the phone was sent a keyframe request"
    );
    // The phone answers with a keyframe: the player starts on it.
    w.frames(phone, 6, true);
    let got = &w.clients[viewer].rtp;
    assert_eq!(got.len(), 6);
    assert!(
        is_keyframe(VideoCodec::Vp8, &got[0].payload),
        "starts on a keyframe"
    );
}

#[test]
fn many_joiners_at_once_cost_the_phone_one_keyframe_request() {
    let (mut w, phone) = World::with_live_phone(1);
    let asked_before = w.room.keyframe_requests;
    let viewers: Vec<usize> = (0..8).map(|_| w.play()).collect();
    w.connect();
    w.frames(phone, 6, false);
    let asked = w.room.keyframe_requests - asked_before;
    // The limiter allows one request a second (plus one deferred at most).
    assert!(
        (1..=2).contains(&asked),
        "{asked} keyframe requests for 8 joiners"
    );
    w.frames(phone, 1, true);
    for v in viewers {
        assert_eq!(
            w.clients[v].keyframes(),
            1,
            "every joiner got the one keyframe"
        );
    }
}

#[test]
fn a_replaced_phone_keeps_the_players_ssrc_and_sequence_continuous() {
    let mut w = World::new();
    let first = w.publish();
    w.connect();
    let viewer = w.play();
    w.connect();
    w.frames(first, 5, true);
    // The farmer's phone reconnects as a new session (new SSRC, sequence, clock).
    let second = w.publish();
    w.connect();
    w.frames(second, 5, true);
    let got = &w.clients[viewer].rtp;
    assert_eq!(got.len(), 10, "five packets from each phone");
    let ssrc = got[0].header.ssrc;
    for pair in got.windows(2) {
        assert_eq!(pair[1].header.ssrc, ssrc, "one SSRC for the player");
        assert_eq!(
            pair[1].header.sequence_number,
            pair[0].header.sequence_number.wrapping_add(1),
            "no gap in the player's sequence"
        );
        let step = pair[1]
            .header
            .timestamp
            .wrapping_sub(pair[0].header.timestamp);
        assert!(step > 0 && step < 90_000, "timestamps move forward: {step}");
    }
}

#[test]
fn a_players_nack_is_answered_from_the_cache() {
    let mut w = World::new();
    let phone = w.publish();
    w.connect();
    let viewer = w.play();
    w.connect();
    // The player's link loses the third packet.
    w.lose_video_to = Some((w.clients[viewer].addr, 2));
    w.frames(phone, 5, true);
    let got = w.clients[viewer].rtp.clone();
    assert_eq!(got.len(), 4, "one packet lost");
    let missing = got[1].header.sequence_number.wrapping_add(1);
    assert_eq!(got[2].header.sequence_number, missing.wrapping_add(1));
    let nack = rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: got[0].header.ssrc,
        nacks: vec![rtcp::transport_feedbacks::transport_layer_nack::NackPair {
            packet_id: missing,
            lost_packets: 0,
        }],
    };
    let c = &mut w.clients[viewer];
    let receiver = c.pc.get_receivers().next().unwrap();
    let now = w.now;
    c.pc.rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(now, vec![Box::new(nack)])
        .unwrap();
    w.advance(Duration::from_millis(20));
    let again: Vec<_> = w.clients[viewer].rtp[4..].to_vec();
    assert_eq!(again.len(), 1, "one retransmission");
    assert_eq!(again[0].header.sequence_number, missing);
    // The phone's third frame, in the player's timestamp space.
    let step = got[1]
        .header
        .timestamp
        .wrapping_sub(got[0].header.timestamp);
    assert_eq!(
        again[0].header.timestamp,
        got[1].header.timestamp.wrapping_add(step)
    );
    assert_eq!(again[0].payload, got[1].payload, "same frame content");
}

#[test]
fn a_player_changes_simulcast_layer_only_on_a_keyframe_of_the_new_layer() {
    let cfg = SfuConfig {
        initial_viewer_bitrate: 3_000_000,
        layer_upgrade_hold: Duration::from_millis(500),
        ..SfuConfig::loopback_for_tests()
    };
    let mut w = World::with_config(cfg);
    let phone = w.publish_simulcast();
    w.connect();
    let frame = |w: &mut World, keyframes: [bool; 3]| {
        let now = w.now;
        w.clients[phone].send_simulcast_frame(keyframes, now);
        w.advance(Duration::from_millis(33));
    };
    // Two seconds of video, so the SFU knows each layer's rate.
    frame(&mut w, [true; 3]);
    for _ in 0..60 {
        frame(&mut w, [false; 3]);
    }
    let viewer = w.play();
    w.connect();
    for _ in 0..5 {
        frame(&mut w, [false; 3]);
    }
    frame(&mut w, [true; 3]);
    for _ in 0..30 {
        frame(&mut w, [false; 3]);
    }
    let got = &w.clients[viewer].rtp;
    assert!(!got.is_empty(), "the player receives video");
    assert!(
        is_keyframe(VideoCodec::Vp8, &got[0].payload),
        "starts on a keyframe"
    );
    assert!(
        got.iter().all(|p| layer_of(p) == 2),
        "a player whose link carries it gets the top layer: {:?}",
        got.iter().map(layer_of).collect::<Vec<_>>()
    );

    // The player's receiver was content (REMB 3 Mbit/s); then its link
    // collapses: the REMB falls to 150 kbit/s, which only the lowest layer
    // (about 70 kbit/s) fits.
    let now = w.now;
    w.clients[viewer].send_remb(3_000_000, now);
    frame(&mut w, [false; 3]);
    let asked_before = w.room.keyframe_requests;
    let before = w.clients[viewer].rtp.len();
    for _ in 0..30 {
        let now = w.now;
        w.clients[viewer].send_remb(150_000, now);
        frame(&mut w, [false; 3]);
    }
    assert!(
        w.room.keyframe_requests > asked_before,
        "the SFU asked the phone for a keyframe of the lower layer"
    );
    let waiting = &w.clients[viewer].rtp[before..];
    assert!(
        !waiting.is_empty(),
        "the picture goes on while the switch waits"
    );
    assert!(
        waiting.iter().all(|p| layer_of(p) == 2),
        "until the lower layer's keyframe the player stays on the layer it can decode: {:?}",
        waiting.iter().map(layer_of).collect::<Vec<_>>()
    );
    // The phone answers with a keyframe on the lowest layer only.
    let switch_at = w.clients[viewer].rtp.len();
    frame(&mut w, [true, false, false]);
    for _ in 0..10 {
        frame(&mut w, [false; 3]);
    }
    let got = &w.clients[viewer].rtp;
    let after = &got[switch_at..];
    assert!(!after.is_empty(), "video goes on after the switch");
    assert!(
        after.iter().all(|p| layer_of(p) == 0),
        "after the switch only the lowest layer: {:?}",
        after.iter().map(layer_of).collect::<Vec<_>>()
    );
    assert!(
        is_keyframe(VideoCodec::Vp8, &after[0].payload),
        "the switch happens on the new layer's keyframe"
    );
    let ssrc = got[0].header.ssrc;
    for pair in got.windows(2) {
        assert_eq!(pair[1].header.ssrc, ssrc, "one SSRC for the player");
        assert_eq!(
            pair[1].header.sequence_number,
            pair[0].header.sequence_number.wrapping_add(1),
            "no gap in the player's sequence across the switch"
        );
    }
}
