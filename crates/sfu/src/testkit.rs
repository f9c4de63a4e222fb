//! Reusable test peers (feature `testkit`): a synthetic publisher and a counting
//! viewer, both real webrtc-rs peers (the async `webrtc` crate) over loopback; a
//! [`Relay`] that puts induced loss on the wire between a viewer and the SFU;
//! and a [`LoopbackViewer`], an SFU viewer leg connected in memory (no sockets) for
//! benches and sans-I/O tests of the send path.
//!
//! Publisher and viewer take the SDP exchange as an async closure `offer -> answer`, so the same
//! peers run against [`Sfu`](crate::Sfu) directly, over real WHIP/WHEP HTTP, or in
//! the load generator.
//!
//! Payloads are synthetic but shaped like the real thing: VP8 payload descriptors
//! with correct keyframe bits, or H.264 SPS + FU-A IDR / non-IDR NAL units, and
//! 20 ms Opus-sized audio packets. The first 8 bytes after the codec header hold
//! the send time (µs since the UNIX epoch) so a viewer can measure latency.

mod frames;
mod loopback;
mod relay;

pub use frames::FrameTracker;
pub use loopback::LoopbackViewer;
pub use relay::{BOTTLENECK_QUEUE, Impairment, LinkProfile, Relay, RelayStats};

use crate::DeliverRtcp;
use crate::forward::{VideoCodec, is_keyframe};
use bytes::{BufMut, Bytes, BytesMut};
use rtc::interceptor::{
    Interceptor, NackGeneratorBuilder, Packet, Registry, Slot, StreamInfo, TaggedPacket,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceGatheringState, RTCPeerConnectionState};
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler};

/// This machine's first non-loopback IPv4 address, if it has one: where clients
/// that gather their own candidates (GStreamer, Chromium) send from.
pub fn host_ipv4() -> Option<std::net::IpAddr> {
    rtc::shared::ifaces::ifaces()
        .ok()?
        .into_iter()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .find(|ip| match ip {
            std::net::IpAddr::V4(v4) => {
                !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified()
            }
            _ => false,
        })
}

/// Errors of the test peers are plain strings.
pub type TkResult<T> = Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Which video codec a synthetic publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthVideo {
    /// VP8
    Vp8,
    /// H.264 constrained baseline 42e01f, packetization-mode 1
    H264,
}

fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_fb(),
    }
}

fn h264(plid: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/H264".into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={plid}"
        ),
        rtcp_feedback: video_fb(),
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

fn video_fb() -> Vec<RTCPFeedback> {
    ["nack", "nack pli", "ccm fir", "goog-remb"]
        .iter()
        .map(|f| {
            let (t, p) = f.split_once(' ').unwrap_or((f, ""));
            RTCPFeedback {
                typ: t.into(),
                parameter: p.into(),
            }
        })
        .collect()
}

/// Options of a [`SyntheticPublisher`].
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Video codec (None = audio only).
    pub video: Option<SynthVideo>,
    /// Send Opus audio.
    pub audio: bool,
    /// Frames per second.
    pub fps: u32,
    /// RTP packets per video frame (~1000 bytes each).
    pub packets_per_frame: usize,
    /// Periodic keyframe interval (keyframes are also sent on PLI/FIR).
    pub keyframe_interval: Duration,
    /// Simulcast rids (e.g. `["q","h","f"]`, lowest first); empty = no simulcast.
    pub rids: Vec<String>,
    /// Padding-only packets sent after each frame of the top layer, on its media
    /// SSRC with the frame's timestamp: what Chromium does when it pads a simulcast
    /// top layer up to the layer's bitrate and RTX is not negotiated.
    pub padding_per_frame: usize,
    /// Connect (ICE, DTLS) but send no media at all: a phone whose camera never
    /// started.
    pub silent: bool,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            video: Some(SynthVideo::Vp8),
            audio: true,
            fps: 30,
            packets_per_frame: 3,
            keyframe_interval: Duration::from_secs(30),
            rids: Vec::new(),
            padding_per_frame: 0,
            silent: false,
        }
    }
}

/// Counters of a synthetic publisher.
#[derive(Debug, Default)]
pub struct PublisherCounters {
    /// PLI/FIR received from the SFU.
    pub keyframe_requests: AtomicU64,
    /// Keyframes sent.
    pub keyframes_sent: AtomicU64,
    /// RTP packets sent.
    pub packets_sent: AtomicU64,
    /// NACKed packets (the webrtc-rs responder resends them; counted here).
    pub nacks_received: AtomicU64,
    /// Padding-only packets sent.
    pub padding_sent: AtomicU64,
}

struct Handler {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    on_track: Option<OnTrack>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, st: RTCIceGatheringState) {
        if st == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
    async fn on_connection_state_change(&self, st: RTCPeerConnectionState) {
        let _ = self.state.send(st);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(f) = &self.on_track {
            f(track);
        }
    }
}

type Pc = Arc<dyn PeerConnection>;
type OnTrack = Arc<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

async fn build_pc(
    me: MediaEngine,
    registry: Registry,
    on_track: Option<OnTrack>,
) -> TkResult<(
    Pc,
    watch::Receiver<bool>,
    watch::Receiver<RTCPeerConnectionState>,
)> {
    let (gathered, g_rx) = watch::channel(false);
    let (state, s_rx) = watch::channel(RTCPeerConnectionState::New);
    let se = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_setting_engine(se)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            gathered,
            state,
            on_track,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .map_err(s)?;
    Ok((Arc::new(pc), g_rx, s_rx))
}

/// Offer, gather (non-trickle), exchange, apply the answer, wait until connected.
async fn offer_answer<F, Fut>(
    pc: &Pc,
    mut gathered: watch::Receiver<bool>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    exchange: F,
) -> TkResult<String>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = TkResult<String>>,
{
    let offer = pc.create_offer(None).await.map_err(s)?;
    pc.set_local_description(offer).await.map_err(s)?;
    tokio::time::timeout(Duration::from_secs(5), gathered.wait_for(|g| *g))
        .await
        .map_err(|_| "ICE gathering timed out".to_string())?
        .map_err(s)?;
    let local = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    let answer = exchange(local).await?;
    pc.set_remote_description(RTCSessionDescription::answer(answer.clone()).map_err(s)?)
        .await
        .map_err(s)?;
    let st = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|st| {
            matches!(
                st,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        }),
    )
    .await
    .map_err(|_| "connection timed out".to_string())?
    .map_err(s)?
    .to_owned();
    if st != RTCPeerConnectionState::Connected {
        return Err(format!("connection {st}"));
    }
    Ok(answer)
}

/// A publisher sending synthetic video (+ Opus) at realistic rates.
pub struct SyntheticPublisher {
    pc: Pc,
    /// Counters (shared with the sending tasks).
    pub counters: Arc<PublisherCounters>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The SDP answer the server returned.
    pub answer: String,
}

struct VideoLayer {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    rid: Option<String>,
    seq: u16,
}

fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, u) = rest.split_once(' ')?;
        (u.trim() == uri).then(|| id.split('/').next()?.parse().ok())?
    })
}

impl SyntheticPublisher {
    /// Connect through `exchange` (offer in, answer out) and start sending.
    pub async fn connect<F, Fut>(opts: PublisherOptions, exchange: F) -> TkResult<Self>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = TkResult<String>>,
    {
        let mut me = MediaEngine::default();
        let (video_codec, video_pt) = match opts.video {
            Some(SynthVideo::Vp8) => (Some(vp8()), 96),
            Some(SynthVideo::H264) => (Some(h264("42e01f")), 102),
            None => (None, 0),
        };
        if let Some(c) = &video_codec {
            me.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: c.clone(),
                    payload_type: video_pt,
                },
                RtpCodecKind::Video,
            )
            .map_err(s)?;
        }
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(s)?;
        let registry = register_default_interceptors(Registry::new(), &mut me).map_err(s)?;
        let registry = registry.with(Slot::from(14_000), DeliverRtcp::default());
        let (pc, g, st) = build_pc(me, registry, None).await?;

        let mut layers = Vec::new();
        if let Some(c) = &video_codec {
            let rids: Vec<Option<String>> = if opts.rids.is_empty() {
                vec![None]
            } else {
                opts.rids.iter().cloned().map(Some).collect()
            };
            let encodings: Vec<RTCRtpEncodingParameters> = rids
                .iter()
                .map(|rid| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.clone().unwrap_or_default(),
                        ssrc: Some(rand::random()),
                        ..Default::default()
                    },
                    codec: c.clone(),
                    ..Default::default()
                })
                .collect();
            let track = MediaStreamTrack::new(
                "synthetic".into(),
                "synthetic-video".into(),
                "video".into(),
                RtpCodecKind::Video,
                encodings.clone(),
            );
            let local = Arc::new(TrackLocalStaticRTP::new(track));
            pc.add_transceiver_from_track(
                local.clone(),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: encodings.clone(),
                }),
            )
            .await
            .map_err(s)?;
            for (e, rid) in encodings.iter().zip(rids) {
                layers.push(VideoLayer {
                    track: local.clone(),
                    ssrc: e.rtp_coding_parameters.ssrc.unwrap_or_default(),
                    pt: video_pt,
                    rid,
                    seq: rand::random(),
                });
            }
        }
        let mut audio = None;
        if opts.audio {
            let ssrc = rand::random();
            let enc = RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus(),
                ..Default::default()
            };
            let track = MediaStreamTrack::new(
                "synthetic".into(),
                "synthetic-audio".into(),
                "audio".into(),
                RtpCodecKind::Audio,
                vec![enc.clone()],
            );
            let local = Arc::new(TrackLocalStaticRTP::new(track));
            pc.add_transceiver_from_track(
                local.clone(),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: vec![enc],
                }),
            )
            .await
            .map_err(s)?;
            audio = Some((local, ssrc));
        }

        let answer = offer_answer(&pc, g, st, exchange).await?;
        let counters = Arc::new(PublisherCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let force_kf = Arc::new(AtomicBool::new(true));
        let mut tasks = Vec::new();

        // RTCP from the SFU: count keyframe requests.
        let mut tracks: Vec<Arc<TrackLocalStaticRTP>> =
            layers.iter().map(|l| l.track.clone()).collect();
        tracks.dedup_by(|a, b| Arc::ptr_eq(a, b));
        for t in tracks {
            let (c, f, stop) = (counters.clone(), force_kf.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match t.poll().await {
                        Some(TrackLocalEvent::OnRtcpPacket(pkts)) => {
                            for p in pkts {
                                let any = p.as_any();
                                if any.is::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                                    || any.is::<rtcp::payload_feedbacks::full_intra_request::FullIntraRequest>()
                                {
                                    c.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                                    f.store(true, Ordering::Relaxed);
                                } else if any.is::<rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack>() {
                                    c.nacks_received.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Some(_) => {}
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }

        let mid_id = extmap_id(&answer, "urn:ietf:params:rtp-hdrext:sdes:mid");
        let rid_id = extmap_id(&answer, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
        let video_mid = video_mid(&answer);

        if opts.silent {
            layers.clear();
        }
        if !layers.is_empty() {
            let (c, f, stop) = (counters.clone(), force_kf.clone(), stop.clone());
            let codec = opts.video.unwrap_or(SynthVideo::Vp8);
            let (fps, ppf, kfi, padding) = (
                opts.fps.max(1),
                opts.packets_per_frame.max(1),
                opts.keyframe_interval,
                opts.padding_per_frame,
            );
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1) / fps);
                let mut ts: u32 = rand::random();
                let mut last_kf = Instant::now();
                let n_layers = layers.len();
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let now = Instant::now();
                    let key = f.swap(false, Ordering::Relaxed) || now - last_kf >= kfi;
                    if key {
                        last_kf = now;
                        c.keyframes_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    ts = ts.wrapping_add(90_000 / fps);
                    for (li, layer) in layers.iter_mut().enumerate() {
                        // Simulcast: lower layers are smaller (fewer packets).
                        let packets = if n_layers > 1 {
                            (ppf * (li + 1) / n_layers).max(1)
                        } else {
                            ppf
                        };
                        let size = if n_layers > 1 { 300 + 350 * li } else { 1000 };
                        let pad = if li + 1 == n_layers { padding } else { 0 };
                        for i in 0..packets + pad {
                            let padding_only = i >= packets;
                            let payload = if padding_only {
                                Bytes::new()
                            } else {
                                video_payload(codec, key, i, packets, size)
                            };
                            let mut header = rtp::header::Header {
                                version: 2,
                                padding: padding_only,
                                marker: i + 1 == packets,
                                payload_type: layer.pt,
                                sequence_number: layer.seq,
                                timestamp: ts,
                                ssrc: layer.ssrc,
                                ..Default::default()
                            };
                            if let (Some(rid), Some(mid_id), Some(rid_id), Some(mid)) =
                                (&layer.rid, mid_id, rid_id, &video_mid)
                            {
                                let _ = header
                                    .set_extension(mid_id, Bytes::from(mid.clone().into_bytes()));
                                let _ = header
                                    .set_extension(rid_id, Bytes::from(rid.clone().into_bytes()));
                            }
                            layer.seq = layer.seq.wrapping_add(1);
                            if layer
                                .track
                                .write_rtp(rtp::Packet { header, payload })
                                .await
                                .is_ok()
                            {
                                c.packets_sent.fetch_add(1, Ordering::Relaxed);
                                if padding_only {
                                    c.padding_sent.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
            }));
        }
        if let Some((track, ssrc)) = audio.filter(|_| !opts.silent) {
            let (c, stop) = (counters.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let (mut seq, mut ts): (u16, u32) = (rand::random(), rand::random());
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let mut b = BytesMut::with_capacity(80);
                    b.put_u8(0xfc); // Opus TOC: CELT FB 20 ms
                    b.put_u64(now_micros());
                    b.resize(80, 0);
                    let header = rtp::header::Header {
                        version: 2,
                        payload_type: 111,
                        sequence_number: seq,
                        timestamp: ts,
                        ssrc,
                        ..Default::default()
                    };
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(960);
                    if track
                        .write_rtp(rtp::Packet {
                            header,
                            payload: b.freeze(),
                        })
                        .await
                        .is_ok()
                    {
                        c.packets_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(Self {
            pc,
            counters,
            stop,
            tasks,
            answer,
        })
    }

    /// Keyframe requests (PLI/FIR) received so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.counters.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Stop sending and close the peer connection.
    pub async fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pc.close().await;
        for t in self.tasks {
            t.abort();
        }
    }
}

fn video_mid(answer: &str) -> Option<String> {
    let mut in_video = false;
    for l in answer.lines() {
        let l = l.trim();
        if l.starts_with("m=") {
            in_video = l.starts_with("m=video");
        } else if in_video && let Some(m) = l.strip_prefix("a=mid:") {
            return Some(m.to_owned());
        }
    }
    None
}

fn video_payload(codec: SynthVideo, key: bool, i: usize, n: usize, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    match codec {
        SynthVideo::Vp8 => {
            b.put_u8(if i == 0 { 0x10 } else { 0x00 }); // S bit on the first packet
            if i == 0 {
                // VP8 frame tag: P bit 0 = keyframe; then the keyframe start code
                b.put_slice(if key {
                    &[0x00, 0x9d, 0x01, 0x2a]
                } else {
                    &[0x01, 0x00, 0x00, 0x00]
                });
            }
        }
        SynthVideo::H264 => {
            let nal_type = if key { 5 } else { 1 };
            if key && i == 0 {
                b.put_slice(&[0x67, 0x42, 0xe0, 0x1f]); // SPS
            } else {
                b.put_u8(0x7c); // FU-A indicator (NRI 3)
                let mut fu = nal_type;
                if i == usize::from(key) {
                    fu |= 0x80;
                }
                if i + 1 == n {
                    fu |= 0x40;
                }
                b.put_u8(fu);
            }
        }
    }
    b.put_u64(now_micros());
    b.resize(size.max(b.len()), 0xab);
    b.freeze()
}

/// Options of a [`CountingViewer`].
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    /// Video codecs offered (empty = no video m-line).
    pub video: Vec<SynthVideo>,
    /// Offer audio.
    pub audio: bool,
    /// Induce loss on this leg: the viewer talks to the server through a
    /// [`Relay`] that drops every n-th video RTP packet (by sequence number) the
    /// first time it passes, before the viewer's WebRTC stack sees it. The viewer's
    /// own NACK generator asks for it again; a late arrival fills the gap.
    pub drop_one_in: Option<u16>,
    /// Talk to the server through a [`Relay`] even without induced loss, so
    /// the test can narrow the viewer's downlink ([`CountingViewer::set_downlink_bps`]).
    pub through_relay: bool,
    /// Talk to the server through a [`Relay`] with this link (delay, jitter, loss).
    pub link: Option<LinkProfile>,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        Self {
            video: vec![SynthVideo::Vp8, SynthVideo::H264],
            audio: true,
            drop_one_in: None,
            through_relay: false,
            link: None,
        }
    }
}

/// Gaps in a received RTP sequence: when each opened and whether (and how fast) it
/// was filled by a late packet (a retransmission, or reordering).
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// The first sequence number received: the viewer cannot know of
    /// anything sent before it, so a loss there is never asked for.
    first: Option<u16>,
    /// Highest extended sequence number received.
    highest: Option<i64>,
    /// Missing extended sequence numbers -> when the gap was noticed.
    open: BTreeMap<i64, Instant>,
    /// Filled gaps: (sequence number, time from noticing the gap to the fill).
    filled: Vec<(u16, Duration)>,
    duplicates: u64,
}

/// What one arriving packet meant for the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next packet, or a jump forward leaving `missing` packets behind.
    New {
        /// Packets skipped by this one (0 = in order).
        missing: u64,
    },
    /// A packet that was missing arrived late.
    Filled(Duration),
    /// Already received (or too old to track).
    Duplicate,
}

/// A forward jump larger than this is a discontinuity, not loss to wait for.
const MAX_TRACKED_GAP: i64 = 1000;

impl SeqTracker {
    /// Whether `seq` comes at or after the first packet received (in RTP's
    /// wrapping order): a loss the viewer could notice.
    pub fn noticeable(&self, seq: u16) -> bool {
        self.first.is_some_and(|f| seq.wrapping_sub(f) as i16 >= 0)
    }

    /// Account one arriving packet.
    pub fn on_packet(&mut self, seq: u16, now: Instant) -> Arrival {
        let Some(h) = self.highest else {
            self.first = Some(seq);
            self.highest = Some(seq as i64);
            return Arrival::New { missing: 0 };
        };
        let ext = h + seq.wrapping_sub(h as u16) as i16 as i64;
        if ext > h {
            if ext - h > 1 && ext - h <= MAX_TRACKED_GAP {
                for m in h + 1..ext {
                    self.open.insert(m, now);
                }
            }
            self.highest = Some(ext);
            // Bound memory: gaps this far behind are never filled usefully.
            while let Some((&first, _)) = self.open.first_key_value() {
                if ext - first <= 4 * MAX_TRACKED_GAP {
                    break;
                }
                self.open.remove(&first);
            }
            return Arrival::New {
                missing: (ext - h - 1) as u64,
            };
        }
        match self.open.remove(&ext) {
            Some(at) => {
                let d = now.saturating_duration_since(at);
                self.filled.push((ext as u16, d));
                Arrival::Filled(d)
            }
            None => {
                self.duplicates += 1;
                Arrival::Duplicate
            }
        }
    }

    /// Gaps still open that were noticed at least `older_than` ago.
    pub fn open_gaps(&self, older_than: Duration) -> Vec<u16> {
        let now = Instant::now();
        self.open
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= older_than)
            .map(|(s, _)| *s as u16)
            .collect()
    }

    /// Filled gaps: (sequence number, time from noticing the gap to the fill).
    pub fn filled(&self) -> &[(u16, Duration)] {
        &self.filled
    }

    /// Packets received more than once.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// What a counting viewer saw.
#[derive(Debug, Default)]
pub struct ViewerCounters {
    /// Distinct video RTP packets received (including late ones that filled a gap).
    pub video_packets: AtomicU64,
    /// Audio RTP packets.
    pub audio_packets: AtomicU64,
    /// Keyframes (first packet of).
    pub keyframes: AtomicU64,
    /// Late video packets that filled a gap (retransmissions after a NACK).
    pub retransmissions: AtomicU64,
    /// Late packets whose RTP timestamp matches neither neighbour's (every synthetic
    /// frame spans several packets with one timestamp, so a correctly rewritten
    /// retransmission shares its timestamp with the packet before or after it).
    pub retransmissions_bad_timestamp: AtomicU64,
    /// NACK packets the viewer's NACK generator sent.
    pub nacks_sent: AtomicU64,
    /// Sequence numbers those NACKs asked for (one per lost packet and attempt).
    pub nacked_packets: AtomicU64,
    /// Video sequence-number discontinuities (forward jumps > 1 when they happened;
    /// induced loss causes them too, see [`Self::video_seq`] for whether they were filled).
    pub video_seq_gaps: AtomicU64,
    /// The video sequence as received: gaps and fills.
    pub video_seq: Mutex<SeqTracker>,
    /// Distinct video SSRCs seen.
    pub video_ssrcs: Mutex<HashSet<u32>>,
    /// When the first keyframe arrived.
    pub first_keyframe_at: Mutex<Option<Instant>>,
    /// Largest one-way latency seen (send timestamp in payload vs now), µs, over
    /// packets that arrived in order.
    pub max_latency_us: AtomicU64,
    /// Last (highest) video sequence number seen.
    pub last_video_seq: Mutex<Option<u16>>,
    /// Video frames a decoder could have shown (see [`FrameTracker`]).
    pub frames_decoded: AtomicU64,
}

/// Counts the NACKs the viewer's NACK generator writes (sits wire-ward of it).
struct CountNacks {
    counters: Arc<ViewerCounters>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for CountNacks {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        if let Packet::Rtcp(pkts) = &msg.message.packet {
            for p in pkts {
                if let Some(n) = p.as_any().downcast_ref::<TransportLayerNack>() {
                    self.counters.nacks_sent.fetch_add(1, Ordering::Relaxed);
                    let asked: usize = n.nacks.iter().map(|p| p.packet_list().len()).sum();
                    self.counters
                        .nacked_packets
                        .fetch_add(asked as u64, Ordering::Relaxed);
                }
            }
        }
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

impl Interceptor for CountNacks {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// A WHEP-style viewer that counts what it receives.
pub struct CountingViewer {
    pc: Pc,
    /// Counters.
    pub counters: Arc<ViewerCounters>,
    /// When the connection came up.
    pub connected_at: Instant,
    /// The server's answer (before any relay rewrote its candidates).
    pub answer: String,
    remb_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
    relay: Option<Relay>,
}

impl CountingViewer {
    /// Connect through `exchange` (offer in, answer out).
    pub async fn connect<F, Fut>(opts: ViewerOptions, exchange: F) -> TkResult<Self>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = TkResult<String>>,
    {
        let mut me = MediaEngine::default();
        let mut pt = 96;
        for v in &opts.video {
            let c = match v {
                SynthVideo::Vp8 => vp8(),
                SynthVideo::H264 => h264("42e01f"),
            };
            me.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: c,
                    payload_type: pt,
                },
                RtpCodecKind::Video,
            )
            .map_err(s)?;
            pt += 2;
        }
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(s)?;
        configure_simulcast_extension_headers(&mut me).map_err(s)?;
        let counters = Arc::new(ViewerCounters::default());
        // Like a browser: receiver reports, and NACKs for missing video packets (the
        // generator re-asks every 20 ms while a packet is still missing, up to 10 times).
        let registry = configure_rtcp_reports(Registry::new())
            .with(
                Slot::NackGenerator,
                NackGeneratorBuilder::new()
                    .with_interval(Duration::from_millis(20))
                    .with_max_nacks_per_packet(10)
                    .build(),
            )
            .with(
                Slot::from(6_500),
                CountNacks {
                    counters: counters.clone(),
                    read: VecDeque::new(),
                    write: VecDeque::new(),
                },
            );
        let remb_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>> = Arc::new(Mutex::new(None));
        let (c2, rt) = (counters.clone(), remb_track.clone());
        let on_track: OnTrack = Arc::new(move |track| {
            let (c, rt) = (c2.clone(), rt.clone());
            tokio::spawn(read_track(track, c, rt));
        });
        let (pc, g, st) = build_pc(me, registry, Some(on_track)).await?;
        let recv = || {
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            })
        };
        if !opts.video.is_empty() {
            pc.add_transceiver_from_kind(RtpCodecKind::Video, recv())
                .await
                .map_err(s)?;
        }
        if opts.audio {
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, recv())
                .await
                .map_err(s)?;
        }
        // With induced loss the viewer is handed an answer that points at the relay.
        let relayed: Arc<Mutex<Option<(Relay, String)>>> = Arc::new(Mutex::new(None));
        let r2 = relayed.clone();
        let drop_one_in = match opts.drop_one_in.filter(|n| *n > 0) {
            None if opts.through_relay || opts.link.is_some() => Some(0),
            other => other,
        };
        let link = opts.link.clone().unwrap_or_default();
        let answer = offer_answer(&pc, g, st, move |offer| async move {
            let answer = exchange(offer).await?;
            let Some(n) = drop_one_in else {
                return Ok(answer);
            };
            let (relay, rewritten) = Relay::start_with(&answer, n, link).await?;
            *r2.lock().unwrap_or_else(|p| p.into_inner()) = Some((relay, answer));
            Ok(rewritten)
        })
        .await?;
        let (relay, answer) = match relayed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some((relay, original)) => (Some(relay), original),
            None => (None, answer),
        };
        Ok(Self {
            pc,
            counters,
            connected_at: Instant::now(),
            answer,
            remb_track,
            relay,
        })
    }

    /// Video packets received so far.
    pub fn video_packets(&self) -> u64 {
        self.counters.video_packets.load(Ordering::Relaxed)
    }

    /// Audio packets received so far.
    pub fn audio_packets(&self) -> u64 {
        self.counters.audio_packets.load(Ordering::Relaxed)
    }

    /// Keyframes received so far.
    pub fn keyframes(&self) -> u64 {
        self.counters.keyframes.load(Ordering::Relaxed)
    }

    /// Video frames a decoder could have shown so far (see [`FrameTracker`]).
    pub fn frames_decoded(&self) -> u64 {
        self.counters.frames_decoded.load(Ordering::Relaxed)
    }

    /// Narrow this viewer's downlink to `bps` (or open it with `None`), if it was
    /// connected through a relay (`drop_one_in` or `through_relay`).
    pub fn set_downlink_bps(&self, bps: Option<u64>) {
        if let Some(r) = &self.relay {
            r.set_downlink_bps(bps);
        }
    }

    /// What the lossy relay saw, if this viewer was connected with `drop_one_in`.
    pub fn relay_stats(&self) -> Option<RelayStats> {
        self.relay.as_ref().map(|r| r.stats())
    }

    /// Video gaps still open that were noticed at least `older_than` ago.
    pub fn open_video_gaps(&self, older_than: Duration) -> Vec<u16> {
        lock(&self.counters.video_seq).open_gaps(older_than)
    }

    /// Video gaps filled by a late packet: (sequence number, time to fill).
    pub fn filled_video_gaps(&self) -> Vec<(u16, Duration)> {
        lock(&self.counters.video_seq).filled().to_vec()
    }

    /// Send a REMB (receiver bandwidth estimate) for the video stream.
    pub async fn send_remb(&self, bitrate_bps: u64) -> TkResult<()> {
        let track = self
            .remb_track
            .lock()
            .map_err(s)?
            .clone()
            .ok_or("no video track yet")?;
        let ssrcs = track.ssrcs().await;
        let remb = rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: bitrate_bps as f32,
            ssrcs,
        };
        track.write_rtcp(vec![Box::new(remb)]).await.map_err(s)
    }

    /// Close the peer connection.
    pub async fn close(self) {
        let _ = self.pc.close().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn read_track(
    track: Arc<dyn TrackRemote>,
    c: Arc<ViewerCounters>,
    remb_track: Arc<Mutex<Option<Arc<dyn TrackRemote>>>>,
) {
    let mut kind_codec: Option<(bool, Option<VideoCodec>)> = None;
    let mut frames: Option<FrameTracker> = None;
    // Recent (seq, timestamp) of received video, to check late packets against.
    let mut recent_ts = vec![None::<(u16, u32)>; 1024];
    let ts_of = |r: &[Option<(u16, u32)>], q: u16| {
        r[q as usize % 1024].and_then(|(s, t)| (s == q).then_some(t))
    };
    while let Some(ev) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(pkt) = ev else {
            continue;
        };
        if kind_codec.is_none() {
            let video = track.kind().await == RtpCodecKind::Video;
            let codec = track
                .codec(pkt.header.ssrc)
                .await
                .map(|c| c.mime_type.to_ascii_lowercase());
            let vc = match codec.as_deref() {
                Some("video/vp8") => Some(VideoCodec::Vp8),
                Some("video/h264") => Some(VideoCodec::H264),
                _ if video => Some(VideoCodec::Vp8),
                _ => None,
            };
            if video {
                *lock(&remb_track) = Some(track.clone());
            }
            frames = vc.map(FrameTracker::new);
            kind_codec = Some((video, vc));
        }
        let Some((video, vc)) = kind_codec else {
            continue;
        };
        let seq = pkt.header.sequence_number;
        if !video {
            c.audio_packets.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        lock(&c.video_ssrcs).insert(pkt.header.ssrc);
        let arrival = lock(&c.video_seq).on_packet(seq, Instant::now());
        let in_order = match arrival {
            Arrival::Duplicate => continue,
            Arrival::Filled(_) => {
                c.retransmissions.fetch_add(1, Ordering::Relaxed);
                let ts = pkt.header.timestamp;
                let (before, after) = (
                    ts_of(&recent_ts, seq.wrapping_sub(1)),
                    ts_of(&recent_ts, seq.wrapping_add(1)),
                );
                if before != Some(ts) && after != Some(ts) {
                    c.retransmissions_bad_timestamp
                        .fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Arrival::New { missing } => {
                if missing > 0 {
                    c.video_seq_gaps.fetch_add(1, Ordering::Relaxed);
                }
                *lock(&c.last_video_seq) = Some(seq);
                true
            }
        };
        recent_ts[seq as usize % 1024] = Some((seq, pkt.header.timestamp));
        c.video_packets.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = frames.as_mut() {
            f.on_packet(seq, pkt.header.timestamp, pkt.header.marker, &pkt.payload);
            c.frames_decoded.store(f.decoded(), Ordering::Relaxed);
        }
        if let Some(vc) = vc
            && is_keyframe(vc, &pkt.payload)
        {
            c.keyframes.fetch_add(1, Ordering::Relaxed);
            let mut first = lock(&c.first_keyframe_at);
            if first.is_none() {
                *first = Some(Instant::now());
            }
        }
        if !in_order {
            continue; // a late packet's age is the recovery time, not path latency
        }
        let hdr = match vc {
            Some(VideoCodec::Vp8) => {
                if pkt.payload.first().is_some_and(|b| b & 0x10 != 0) {
                    5
                } else {
                    1
                }
            }
            Some(VideoCodec::H264) => {
                if pkt.payload.first().is_some_and(|b| b & 0x1f == 7) {
                    4
                } else {
                    2
                }
            }
            None => 0,
        };
        if let Some(t) = pkt.payload.get(hdr..hdr + 8) {
            let sent = u64::from_be_bytes(t.try_into().unwrap_or([0; 8]));
            let lat = now_micros().saturating_sub(sent);
            if lat < 60_000_000 {
                c.max_latency_us.fetch_max(lat, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_tracker_gaps_fills_and_wrap() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = SeqTracker::default();
        assert_eq!(t.on_packet(65533, ms(0)), Arrival::New { missing: 0 });
        assert_eq!(t.on_packet(65534, ms(1)), Arrival::New { missing: 0 });
        // 65535 and 0 lost across the wrap
        assert_eq!(t.on_packet(1, ms(2)), Arrival::New { missing: 2 });
        assert_eq!(t.open_gaps(Duration::ZERO), vec![65535, 0]);
        assert_eq!(
            t.on_packet(0, ms(30)),
            Arrival::Filled(Duration::from_millis(28))
        );
        assert_eq!(t.on_packet(0, ms(31)), Arrival::Duplicate);
        assert_eq!(t.on_packet(1, ms(31)), Arrival::Duplicate);
        assert_eq!(t.open_gaps(Duration::ZERO), vec![65535]);
        assert_eq!(t.filled(), &[(0, Duration::from_millis(28))]);
        // a huge jump is a discontinuity, not thousands of gaps
        assert_eq!(
            t.on_packet(20_000, ms(40)),
            Arrival::New { missing: 19_998 }
        );
        assert_eq!(t.open_gaps(Duration::ZERO), Vec::<u16>::new());
    }
}
