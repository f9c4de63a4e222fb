//! Light WHEP viewers, many to a task.
//!
//! Each viewer is a real WebRTC peer (its own UDP socket, ICE, DTLS, SRTP
//! keys from the sans-I/O `rtc` core), but media packets are counted and
//! timed from the clear RTP header without decrypting them: SRTP encrypts
//! payloads only. A viewer hands the peer connection what it must see (STUN,
//! DTLS, RTCP), every video packet until the first keyframe is confirmed
//! (join time), and one media packet in `sample_every` afterwards, whose
//! decrypted payload carries the publisher's send time (forwarding delay).
//! Once a second it sends a receiver report built from its own counts and
//! a REMB, as a browser would; it sends no NACKs, so loss is what the
//! network and the SFU lost, before any retransmission.
//!
//! Viewers run as futures in a few [`FuturesUnordered`] shards (one task
//! each), so the cost per received packet is a `recvfrom`, a 12-byte header
//! parse and some counters.

use super::peer::{self, VP8_PT};
use super::rtp::{Datagram, StreamAccount, classify, parse_rtp, send_time, vp8_keyframe_start};
use super::udp;
use crate::clock;
use crate::error::{Error, Result};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::Instrument;

/// How viewers behave.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// `…/whep` of the broadcast.
    pub whep_url: String,
    /// Address the viewers' sockets bind to and advertise.
    pub local_ip: IpAddr,
    /// Decrypt one media packet in this many for its send time (≥ 1).
    pub sample_every: u64,
    /// REMB each viewer reports, bit/s (an unconstrained link).
    pub remb_bps: u64,
    /// A viewer that has no keyframe this long after its request failed.
    pub join_timeout: Duration,
}

/// Phases of a run, as viewers see them.
pub const RAMP: u8 = 0;
/// Counting towards the measurement window.
pub const MEASURING: u8 = 1;
/// After the window.
pub const AFTER: u8 = 2;

/// State shared by every viewer of a run.
pub struct Swarm {
    cfg: ViewerConfig,
    http: reqwest::Client,
    /// RAMP, MEASURING or AFTER.
    pub phase: AtomicU8,
    stop: AtomicBool,
    /// Media packets received by all viewers.
    pub packets: AtomicU64,
    /// Packets the SFU must have sent them (from sequence numbers).
    pub expected: AtomicU64,
    /// Datagram bytes of media received.
    pub bytes: AtomicU64,
    /// Viewers that received their first keyframe.
    pub joined: AtomicUsize,
    /// Viewers that gave up (HTTP error, no connection, no keyframe).
    pub failed: AtomicUsize,
}

/// When a viewer's counters were read at a phase change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mark {
    /// When.
    pub at: Option<Instant>,
    /// Video (received, expected, bytes).
    pub video: (u64, u64, u64),
    /// Audio (received, expected, bytes).
    pub audio: (u64, u64, u64),
}

/// What one viewer saw.
#[derive(Debug, Clone, Default)]
pub struct ViewerResult {
    /// Index.
    pub id: usize,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// WHEP request → answer.
    pub answer_time: Option<Duration>,
    /// WHEP request → ICE and DTLS connected.
    pub connect_time: Option<Duration>,
    /// WHEP request → first keyframe received.
    pub join_time: Option<Duration>,
    /// The first video packet was not the start of a keyframe.
    pub first_video_not_keyframe: bool,
    /// Video totals over the whole run.
    pub video: Totals,
    /// Audio totals.
    pub audio: Totals,
    /// Counters when the measurement window opened and closed.
    pub window: (Mark, Mark),
    /// Forwarding delays of sampled video packets in the window, µs.
    pub video_delays_us: Vec<u32>,
    /// Forwarding delays of sampled audio packets in the window, µs.
    pub audio_delays_us: Vec<u32>,
    /// Kernel arrival → read by the viewer, sampled packets, µs: the
    /// generator's own lag, not part of the delays above.
    pub lag_us: Vec<u32>,
    /// WHEP session resource.
    pub location: Option<String>,
}

/// Totals of one stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Distinct packets.
    pub received: u64,
    /// Expected from sequence numbers.
    pub expected: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Bytes.
    pub bytes: u64,
    /// Frames.
    pub frames: u64,
}

impl Totals {
    fn of(a: &StreamAccount) -> Totals {
        Totals {
            received: a.received,
            expected: a.expected(),
            duplicates: a.duplicates,
            bytes: a.bytes,
            frames: a.frames,
        }
    }
}

impl Swarm {
    /// Shared state for viewers of `cfg`.
    pub fn new(cfg: ViewerConfig) -> Result<Arc<Swarm>> {
        Ok(Arc::new(Swarm {
            cfg,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            phase: AtomicU8::new(RAMP),
            stop: AtomicBool::new(false),
            packets: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            joined: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }))
    }

    /// Tells every viewer to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// (packets, expected, bytes) received so far by all viewers.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.expected.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A shard: one task running many viewers. Send viewer ids into it; drop the
/// sender and stop the swarm to end it; await the handle for the results.
pub fn spawn_shard(
    swarm: Arc<Swarm>,
) -> (
    mpsc::UnboundedSender<usize>,
    tokio::task::JoinHandle<Vec<ViewerResult>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let handle = tokio::spawn(async move {
        let mut running = FuturesUnordered::new();
        let mut results = Vec::new();
        let mut open = true;
        loop {
            tokio::select! {
                id = rx.recv(), if open => match id {
                    Some(id) => running.push(
                        run_viewer(swarm.clone(), id).instrument(tracing::debug_span!("viewer", id)),
                    ),
                    None => open = false,
                },
                Some(r) = running.next(), if !running.is_empty() => results.push(r),
                else => break,
            }
        }
        results
    });
    (tx, handle)
}

/// Counters a viewer flushes into the swarm's atomics once per wake-up,
/// not per packet.
#[derive(Default)]
struct Pending {
    packets: u64,
    expected: u64,
    bytes: u64,
}

struct Viewer {
    swarm: Arc<Swarm>,
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    res: ViewerResult,
    video: StreamAccount,
    audio: StreamAccount,
    requested_at: Instant,
    joined: bool,
    state: RTCPeerConnectionState,
    pending: Pending,
    media_count: u64,
    phase_seen: u8,
    rr_ssrc: u32,
    /// The peer connection was handed something since it was last polled.
    dirty: bool,
}

async fn run_viewer(swarm: Arc<Swarm>, id: usize) -> ViewerResult {
    let mut v = match Viewer::connect(swarm.clone(), id).await {
        Ok(v) => v,
        Err(e) => {
            swarm.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "viewer could not join");
            return ViewerResult {
                id,
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    v.run().await;
    v.finish()
}

impl Viewer {
    async fn connect(swarm: Arc<Swarm>, id: usize) -> Result<Viewer> {
        let socket = UdpSocket::bind(SocketAddr::new(swarm.cfg.local_ip, 0)).await?;
        udp::enable_timestamps(&socket)?;
        let local = socket.local_addr()?;
        let mut pc = peer::build_pc(rtc::interceptor::Registry::new(), local)?;
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .map_err(Error::rtc)?;
        }
        let offer = peer::local_offer(&mut pc)?;
        let requested_at = Instant::now();
        let ex = peer::exchange(
            &swarm.http,
            &swarm.cfg.whep_url,
            None,
            Some(crate::api::simulated_client(id)),
            offer,
        )
        .await?;
        let answer_time = requested_at.elapsed();
        pc.set_remote_description(
            Instant::now(),
            RTCSessionDescription::answer(ex.answer).map_err(Error::rtc)?,
        )
        .map_err(Error::rtc)?;
        Ok(Viewer {
            res: ViewerResult {
                id,
                answer_time: Some(answer_time),
                location: ex.location,
                ..Default::default()
            },
            swarm,
            pc,
            socket,
            local,
            video: StreamAccount::default(),
            audio: StreamAccount::default(),
            requested_at,
            joined: false,
            state: RTCPeerConnectionState::New,
            pending: Pending::default(),
            media_count: 0,
            phase_seen: RAMP,
            rr_ssrc: rand::random(),
            dirty: true,
        })
    }

    async fn run(&mut self) {
        let mut buf = vec![0u8; 2048];
        let report_every = Duration::from_secs(1);
        let mut next_report = Instant::now() + report_every;
        let join_deadline = self.requested_at + self.swarm.cfg.join_timeout;
        let sleep = tokio::time::sleep_until(next_report.into());
        tokio::pin!(sleep);
        let mut armed = next_report;
        let mut pc_deadline = None;
        self.dirty = true;
        while !self.swarm.stop.load(Ordering::Relaxed) {
            // Most wake-ups only carry media counted from headers; the peer
            // connection is polled only when it was handed something (each
            // poll walks rtc's whole handler pipeline).
            if std::mem::take(&mut self.dirty) {
                self.drive();
                pc_deadline = self.pc.poll_timeout();
            }
            self.flush_counters();
            let now = Instant::now();
            if !self.joined && self.res.error.is_none() && now > join_deadline {
                self.res.error = Some(format!(
                    "no keyframe {} s after the WHEP request (connection {})",
                    self.swarm.cfg.join_timeout.as_secs(),
                    self.state
                ));
                self.swarm.failed.fetch_add(1, Ordering::Relaxed);
            }
            let mut wake = next_report;
            if let Some(t) = pc_deadline {
                wake = wake.min(t);
            }
            if !self.joined && self.res.error.is_none() {
                wake = wake.min(join_deadline.max(now));
            }
            if wake != armed {
                sleep.as_mut().reset(wake.into());
                armed = wake;
            }
            tokio::select! {
                biased;
                r = self.socket.readable() => {
                    if r.is_err() {
                        break;
                    }
                    // Bounded, so one busy viewer cannot starve its shard.
                    for _ in 0..256 {
                        match udp::try_recv(&self.socket, &mut buf) {
                            Ok((n, from, at)) => self.on_datagram(&buf[..n], from, at),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
                _ = &mut sleep => {
                    let now = Instant::now();
                    if pc_deadline.is_some_and(|t| t <= now) {
                        let _ = self.pc.handle_timeout(now);
                        self.dirty = true;
                    }
                    if now >= next_report {
                        self.send_reports(now);
                        next_report = now + report_every;
                    }
                    // Re-arm (the deadline may have passed without a change).
                    self.dirty = true;
                }
            }
        }
        self.mark_phase(true);
        let _ = self.pc.close();
        peer::flush(&mut self.pc, &self.socket);
    }

    /// Events and sends of the peer connection.
    fn drive(&mut self) {
        while let Some(ev) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                self.state = s;
                if s == RTCPeerConnectionState::Connected && self.res.connect_time.is_none() {
                    self.res.connect_time = Some(self.requested_at.elapsed());
                }
            }
        }
        // Decrypted packets are read right where they are fed (`on_datagram`).
        while self.pc.poll_read().is_some() {}
        peer::flush(&mut self.pc, &self.socket);
    }

    fn flush_counters(&mut self) {
        let p = std::mem::take(&mut self.pending);
        if p.packets > 0 {
            self.swarm.packets.fetch_add(p.packets, Ordering::Relaxed);
            self.swarm.bytes.fetch_add(p.bytes, Ordering::Relaxed);
        }
        if p.expected > 0 {
            self.swarm.expected.fetch_add(p.expected, Ordering::Relaxed);
        }
        self.mark_phase(false);
    }

    /// Snapshots counters when the run's phase changes (or at the end).
    fn mark_phase(&mut self, ending: bool) {
        let phase = self.swarm.phase.load(Ordering::Relaxed);
        let snap = |v: &StreamAccount, a: &StreamAccount| Mark {
            at: Some(Instant::now()),
            video: (v.received, v.expected(), v.bytes),
            audio: (a.received, a.expected(), a.bytes),
        };
        if phase >= MEASURING && self.phase_seen < MEASURING {
            self.res.window.0 = snap(&self.video, &self.audio);
        }
        if (phase >= AFTER && self.phase_seen < AFTER)
            || (ending && self.phase_seen == MEASURING && self.res.window.1.at.is_none())
        {
            self.res.window.1 = snap(&self.video, &self.audio);
        }
        self.phase_seen = phase;
    }

    /// One datagram; `kernel_at` is when it reached the socket (µs since the
    /// UNIX epoch), if the kernel said.
    fn on_datagram(&mut self, data: &[u8], from: SocketAddr, kernel_at: Option<u64>) {
        let now = Instant::now();
        match classify(data) {
            Datagram::Rtp => {
                let Some(h) = parse_rtp(data) else { return };
                let video = h.pt == VP8_PT;
                let acc = if video {
                    self.video.on_packet(&h, data.len(), now)
                } else {
                    self.audio.on_packet(&h, data.len(), now)
                };
                if acc.new {
                    self.pending.packets += 1;
                    self.pending.bytes += data.len() as u64;
                }
                self.pending.expected += acc.advanced;
                self.media_count += 1;
                let measuring = self.phase_seen == MEASURING;
                let decrypt = (video && !self.joined)
                    || (measuring && self.media_count.is_multiple_of(self.swarm.cfg.sample_every));
                if decrypt && acc.new {
                    self.dirty = true;
                    peer::feed(&mut self.pc, self.local, from, data, now);
                    self.read_decrypted(now, kernel_at);
                }
            }
            _ => {
                self.dirty = true;
                peer::feed(&mut self.pc, self.local, from, data, now);
            }
        }
    }

    fn read_decrypted(&mut self, arrived: Instant, kernel_at: Option<u64>) {
        while let Some(m) = self.pc.poll_read() {
            let RTCMessage::RtpPacket(_, pkt) = m.message else {
                continue;
            };
            let video = pkt.header.payload_type == VP8_PT;
            if video && !self.joined {
                if vp8_keyframe_start(&pkt.payload) {
                    self.joined = true;
                    self.res.join_time = Some(arrived.saturating_duration_since(self.requested_at));
                    if self.res.error.is_none() {
                        self.swarm.joined.fetch_add(1, Ordering::Relaxed);
                    }
                } else if self.video.received <= 1 {
                    self.res.first_video_not_keyframe = true;
                }
            }
            if self.phase_seen == MEASURING
                && let Some(sent) = send_time(&pkt.payload)
            {
                let read_at = clock::wall_us();
                let at = kernel_at.unwrap_or(read_at);
                let delay = at.saturating_sub(sent);
                // A stamp from another clock (not our publisher) is ignored.
                if delay < 60_000_000 {
                    let d = delay as u32;
                    if video {
                        self.res.video_delays_us.push(d);
                    } else {
                        self.res.audio_delays_us.push(d);
                    }
                    if kernel_at.is_some() {
                        self.res
                            .lag_us
                            .push(read_at.saturating_sub(at).min(u64::from(u32::MAX)) as u32);
                    }
                }
            }
        }
    }

    /// A receiver report from our own counts, and a REMB, as a browser sends.
    fn send_reports(&mut self, now: Instant) {
        let mut reports = Vec::new();
        for a in [&mut self.video, &mut self.audio] {
            let Some(ssrc) = a.ssrc else { continue };
            let (fraction_lost, total_lost) = a.report();
            reports.push(ReceptionReport {
                ssrc,
                fraction_lost,
                total_lost,
                last_sequence_number: a.highest_ext(),
                jitter: 0,
                last_sender_report: 0,
                delay: 0,
            });
        }
        if reports.is_empty() {
            return;
        }
        let mut pkts: Vec<Box<dyn rtc::rtcp::Packet>> = vec![Box::new(ReceiverReport {
            ssrc: self.rr_ssrc,
            reports,
            profile_extensions: Default::default(),
        })];
        if let Some(ssrc) = self.video.ssrc {
            pkts.push(Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: self.rr_ssrc,
                bitrate: self.swarm.cfg.remb_bps as f32,
                ssrcs: vec![ssrc],
            }));
        }
        let receiver = self.pc.get_receivers().next();
        if let Some(r) = receiver
            && let Some(mut r) = self.pc.rtp_receiver(r)
        {
            let _ = r.write_rtcp(now, pkts);
        }
        peer::flush(&mut self.pc, &self.socket);
    }

    fn finish(mut self) -> ViewerResult {
        self.flush_counters();
        self.res.video = Totals::of(&self.video);
        self.res.audio = Totals::of(&self.audio);
        self.res
    }
}
