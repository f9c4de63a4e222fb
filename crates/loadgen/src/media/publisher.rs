//! One synthetic WHIP publisher: VP8 at a target bitrate and frame rate with
//! periodic keyframes (and one on every PLI, as a phone's encoder does), plus
//! Opus-sized audio, each payload stamped with its send time. It runs on its
//! own thread and runtime so a busy viewer swarm cannot delay its clock.

use super::peer::{self, OPUS_PT, VP8_PT};
use super::rtp::{FrameSchedule, stamp, vp8_payload};
use crate::clock;
use crate::error::{Error, Result};
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// What the publisher sends.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Video payload bitrate, bit/s.
    pub video_bps: u64,
    /// Frames per second.
    pub fps: u32,
    /// Periodic keyframe interval.
    pub keyframe_interval: Duration,
    /// RTP payload bytes of a full video packet.
    pub packet_bytes: usize,
    /// Audio packets per second (20 ms Opus frames = 50).
    pub audio_pps: u32,
    /// Audio payload bytes (80 bytes every 20 ms = 32 kbit/s).
    pub audio_bytes: usize,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            video_bps: 1_500_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            packet_bytes: 1100,
            audio_pps: 50,
            audio_bytes: 80,
        }
    }
}

/// Live counters of the publisher.
#[derive(Debug, Default)]
pub struct PublisherCounters {
    /// Video RTP packets sent.
    pub video_packets: AtomicU64,
    /// Video payload bytes sent.
    pub video_bytes: AtomicU64,
    /// Audio RTP packets sent.
    pub audio_packets: AtomicU64,
    /// Keyframes sent.
    pub keyframes: AtomicU64,
    /// PLI/FIR received from the SFU.
    pub keyframe_requests: AtomicU64,
    /// Frames sent more than one frame interval late (the generator's thread
    /// was starved: a sign the machine was overloaded).
    pub late_frames: AtomicU64,
}

/// What the publisher did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherReport {
    /// Video RTP packets sent.
    pub video_packets: u64,
    /// Audio RTP packets sent.
    pub audio_packets: u64,
    /// Keyframes sent (periodic and requested).
    pub keyframes: u64,
    /// Keyframe requests (PLI/FIR) received from the SFU.
    pub keyframe_requests: u64,
    /// Frames sent more than a frame interval late.
    pub late_frames: u64,
    /// Average video payload bitrate while publishing, kbit/s.
    pub video_kbps: f64,
}

/// A running publisher.
pub struct Publisher {
    counters: Arc<PublisherCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    /// The WHIP session resource.
    pub location: Option<String>,
}

impl Publisher {
    /// Publishes into `whip_url` with `stream_key`; returns once ICE and DTLS
    /// are up (or with the error that prevented it).
    pub async fn start(
        whip_url: String,
        stream_key: String,
        opts: PublisherOptions,
    ) -> Result<Publisher> {
        let counters = Arc::new(PublisherCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (c, s) = (counters.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Io(e)));
                        return;
                    }
                };
                rt.block_on(run(whip_url, stream_key, opts, c, s, ready_tx));
            })?;
        let location = ready_rx
            .await
            .map_err(|_| Error::Rtc("publisher thread ended".into()))??;
        Ok(Publisher {
            counters,
            stop,
            thread: Some(thread),
            started: Instant::now(),
            location,
        })
    }

    /// Live counters.
    pub fn counters(&self) -> &PublisherCounters {
        &self.counters
    }

    /// Stops sending and returns what was sent.
    pub fn stop(mut self) -> PublisherReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let c = &self.counters;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        PublisherReport {
            video_packets: c.video_packets.load(Ordering::Relaxed),
            audio_packets: c.audio_packets.load(Ordering::Relaxed),
            keyframes: c.keyframes.load(Ordering::Relaxed),
            keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
            late_frames: c.late_frames.load(Ordering::Relaxed),
            video_kbps: c.video_bytes.load(Ordering::Relaxed) as f64 * 8.0 / secs / 1000.0,
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn add_sender(
    pc: &mut RTCPeerConnection,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Result<RTCRtpSenderId> {
    let encoding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        },
        codec,
        ..Default::default()
    };
    let track = MediaStreamTrack::new(
        "loadgen".into(),
        format!("loadgen-{kind}"),
        format!("loadgen-{kind}"),
        kind,
        vec![encoding.clone()],
    );
    let id = pc
        .add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![encoding],
            }),
        )
        .map_err(Error::rtc)?;
    Ok(RTCRtpSenderId::from(id))
}

fn negotiated_pt(pc: &mut RTCPeerConnection, sender: RTCRtpSenderId, default: u8) -> u8 {
    pc.rtp_sender(sender)
        .and_then(|mut s| {
            s.get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
        })
        .unwrap_or(default)
}

struct Io {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
    force_keyframe: bool,
    state: RTCPeerConnectionState,
}

impl Io {
    /// Reads what arrived, handles events and PLIs, sends what is queued.
    fn pump(&mut self, counters: &PublisherCounters) {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.try_recv_from(&mut self.buf) {
            peer::feed(&mut self.pc, self.local, from, &self.buf[..n], now);
        }
        while let Some(ev) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                self.state = s;
            }
        }
        while let Some(m) = self.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, pkts) = m.message {
                for p in pkts {
                    let any = p.as_any();
                    if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                        counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        self.force_keyframe = true;
                    }
                }
            }
        }
        if self.pc.poll_timeout().is_some_and(|t| t <= now) {
            let _ = self.pc.handle_timeout(now);
        }
        peer::flush(&mut self.pc, &self.socket);
    }
}

async fn run(
    whip_url: String,
    stream_key: String,
    opts: PublisherOptions,
    counters: Arc<PublisherCounters>,
    stop: Arc<AtomicBool>,
    ready: tokio::sync::oneshot::Sender<Result<Option<String>>>,
) {
    let setup = async {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut pc = peer::build_pc(peer::rtcp_to_application(), local)?;
        let video = add_sender(&mut pc, RtpCodecKind::Video, peer::vp8(), rand::random())?;
        let audio = add_sender(&mut pc, RtpCodecKind::Audio, peer::opus(), rand::random())?;
        let offer = peer::local_offer(&mut pc)?;
        let http = reqwest::Client::new();
        let ex = peer::exchange(&http, &whip_url, Some(&stream_key), None, offer).await?;
        let answer = RTCSessionDescription::answer(ex.answer).map_err(Error::rtc)?;
        pc.set_remote_description(Instant::now(), answer)
            .map_err(Error::rtc)?;
        let mut io = Io {
            pc,
            socket,
            local,
            buf: vec![0; 2048],
            force_keyframe: true,
            state: RTCPeerConnectionState::New,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while io.state != RTCPeerConnectionState::Connected {
            if Instant::now() > deadline || io.state == RTCPeerConnectionState::Failed {
                return Err(Error::Rtc(format!("publisher not connected: {}", io.state)));
            }
            io.pump(&counters);
            let wake = io
                .pc
                .poll_timeout()
                .unwrap_or(deadline)
                .min(Instant::now() + Duration::from_millis(20));
            tokio::select! {
                _ = io.socket.readable() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        Ok((io, video, audio, ex.location))
    };
    let (mut io, video, audio, location) = match setup.await {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(location));

    let video_pt = negotiated_pt(&mut io.pc, video, VP8_PT);
    let audio_pt = negotiated_pt(&mut io.pc, audio, OPUS_PT);
    let ssrc_of = |pc: &mut RTCPeerConnection, s: RTCRtpSenderId| {
        pc.rtp_sender(s)
            .and_then(|s| s.track().ssrcs().next())
            .unwrap_or_default()
    };
    let (video_ssrc, audio_ssrc) = (ssrc_of(&mut io.pc, video), ssrc_of(&mut io.pc, audio));
    let mut schedule = FrameSchedule::new(
        opts.video_bps,
        opts.fps,
        opts.keyframe_interval,
        opts.packet_bytes,
    );
    let frame_every = Duration::from_secs(1) / opts.fps.max(1);
    let audio_every = Duration::from_secs(1) / opts.audio_pps.max(1);
    let start = Instant::now();
    let (mut next_video, mut next_audio) = (start, start);
    let (mut vseq, mut aseq): (u16, u16) = (rand::random(), rand::random());
    let (mut vts, mut ats): (u32, u32) = (rand::random(), rand::random());
    let ticks_per_frame = 90_000 / opts.fps.max(1);
    let ticks_per_audio = 48_000 / opts.audio_pps.max(1);

    while !stop.load(Ordering::Relaxed) {
        io.pump(&counters);
        let now = Instant::now();
        if now >= next_video {
            if now > next_video + frame_every {
                counters.late_frames.fetch_add(1, Ordering::Relaxed);
            }
            let (key, packets) = schedule.next_frame(std::mem::take(&mut io.force_keyframe));
            if key {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            vts = vts.wrapping_add(ticks_per_frame);
            for i in 0..packets {
                let payload = vp8_payload(key, i, schedule.packet_bytes(), clock::wall_us());
                let len = payload.len() as u64;
                let pkt = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker: i + 1 == packets,
                        payload_type: video_pt,
                        sequence_number: vseq,
                        timestamp: vts,
                        ssrc: video_ssrc,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                vseq = vseq.wrapping_add(1);
                if let Some(mut s) = io.pc.rtp_sender(video)
                    && s.write_rtp(now, pkt).is_ok()
                {
                    counters.video_packets.fetch_add(1, Ordering::Relaxed);
                    counters.video_bytes.fetch_add(len, Ordering::Relaxed);
                }
                peer::flush(&mut io.pc, &io.socket);
            }
            next_video += frame_every;
        }
        if now >= next_audio {
            let mut payload = vec![0u8; opts.audio_bytes.max(16)];
            payload[0] = 0xfc; // Opus TOC: CELT fullband 20 ms
            stamp(&mut payload, clock::wall_us());
            let pkt = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: audio_pt,
                    sequence_number: aseq,
                    timestamp: ats,
                    ssrc: audio_ssrc,
                    ..Default::default()
                },
                payload: Bytes::from(payload),
            };
            aseq = aseq.wrapping_add(1);
            ats = ats.wrapping_add(ticks_per_audio);
            if let Some(mut s) = io.pc.rtp_sender(audio)
                && s.write_rtp(now, pkt).is_ok()
            {
                counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            }
            peer::flush(&mut io.pc, &io.socket);
            next_audio += audio_every;
        }
        let mut wake = next_video.min(next_audio);
        if let Some(t) = io.pc.poll_timeout() {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = io.socket.readable() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let _ = io.pc.close();
    peer::flush(&mut io.pc, &io.socket);
}
