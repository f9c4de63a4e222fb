//! The publisher side of a room: its peer connection's events and media, the
//! streams (sources) it sends, and keyframe requests upstream.

use super::peer::Peer;
use super::{MAX_BATCH, Room};
use crate::SfuEvent;
use crate::egress::Outgoing;
use crate::forward::{
    KeyframeDetector, KeyframeRequestLimiter, NackCache, RateMeter, RepairWatch, SourceId,
    VideoCodec,
};
use crate::sdp::PublisherChoice;
use crate::tap::{TapCodec, TappedPacket};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One stream the publisher sends (a simulcast layer, or its audio).
pub(super) struct Source {
    pub(super) ssrc: SourceId,
    pub(super) generation: u64,
    pub(super) video: Option<VideoCodec>,
    pub(super) keyframe_start: Option<KeyframeDetector>,
    pub(super) rid: Option<String>,
    pub(super) receiver: RTCRtpReceiverId,
    pub(super) clock_rate: u32,
    pub(super) rate: RateMeter,
    pub(super) cache: NackCache<rtp::Packet>,
    pub(super) limiter: KeyframeRequestLimiter,
    /// Uplink holes of a video stream, and when to stop waiting for their repair.
    pub(super) repair: RepairWatch,
    pub(super) last_sr: Option<(u64, u32, Instant)>,
    pub(super) keyframes: u64,
    /// Padding-only packets received (not forwarded as media).
    pub(super) padding: u64,
}

pub(super) struct Publisher {
    pub(super) peer: Peer,
    pub(super) choice: PublisherChoice,
    pub(super) generation: u64,
}

impl Room {
    pub(super) fn drive_publisher(&mut self, now: Instant) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        p.peer.flush(&mut self.out);
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
        p.peer.flush(&mut self.out);
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

    pub(super) fn on_publisher_state(&mut self, s: RTCPeerConnectionState, now: Instant) {
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

    pub(super) fn source_index(
        &mut self,
        ssrc: u32,
        track_id: &str,
        now: Instant,
    ) -> Option<usize> {
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

    pub(super) fn rebuild_layers(&mut self, now: Instant) {
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

    pub(super) fn on_publisher_rtp(&mut self, track_id: &str, mut pkt: rtp::Packet, now: Instant) {
        let Some(si) = self.source_index(pkt.header.ssrc, track_id, now) else {
            return;
        };
        self.shared.media.packets_in.fetch_add(1, Ordering::Relaxed);
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

    /// Ask the publisher for a keyframe on every current video stream (rate-limited).
    pub fn request_video_keyframes(&mut self, now: Instant) {
        self.fan_out();
        for si in 0..self.sources.len() {
            if self.sources[si].generation == self.generation {
                self.request_keyframe(si, now);
            }
        }
    }

    pub(super) fn request_keyframe(&mut self, si: usize, now: Instant) {
        let src = &mut self.sources[si];
        if src.video.is_none() {
            return;
        }
        if src.limiter.request(now) {
            let (receiver, ssrc) = (src.receiver, src.ssrc);
            self.send_pli(receiver, ssrc, now);
        }
    }

    pub(super) fn send_pli(&mut self, receiver: RTCRtpReceiverId, ssrc: u32, now: Instant) {
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
        p.peer.flush(&mut self.out);
    }
}
