//! The viewer side of a room: joining, the fan-out of publisher media, and each
//! viewer's layer choice.

use super::peer::Peer;
use super::{NewPeer, Output, Room};
use crate::egress::{Leg, ViewerLegs, send_batch};
use crate::error::SfuError;
use crate::forward::{
    BandwidthEstimator, RateMeter, RetransmitBudget, Selection, SimulcastSelector, SourceId,
};
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Retransmissions to a viewer may use up to half its estimate, in bursts of up to
/// a second's worth (see [`RetransmitBudget`]).
const RTX_SHARE: f64 = 0.5;
const RTX_BURST: Duration = Duration::from_secs(1);

pub(super) struct Viewer {
    pub(super) peer: Peer,
    pub(super) audio: Option<Leg>,
    pub(super) video: Option<Leg>,
    pub(super) est: BandwidthEstimator,
    pub(super) selector: SimulcastSelector,
    pub(super) sent: RateMeter,
    pub(super) loss: f64,
    pub(super) rtt: Option<Duration>,
    pub(super) nacks: u64,
    pub(super) retransmits: u64,
    pub(super) rtx_budget: RetransmitBudget,
    pub(super) rtx_withheld: u64,
    pub(super) plis: u64,
}

impl Room {
    /// A new viewer (WHEP). Refused when every slot of the room is taken.
    pub fn add_viewer(
        &mut self,
        p: NewPeer,
        legs: ViewerLegs,
        now: Instant,
    ) -> Result<(), SfuError> {
        self.fan_out();
        if self.connected_viewers() >= self.cfg.max_viewers_per_room {
            let mut peer = Peer::new(p, now);
            self.close_peer(&mut peer);
            return Err(SfuError::RoomFull(self.cfg.max_viewers_per_room));
        }
        let mut v = Viewer {
            peer: Peer::new(p, now),
            audio: legs.audio.map(|l| Leg::new(l, false)),
            video: legs.video.map(|l| Leg::new(l, true)),
            est: BandwidthEstimator::new(self.cfg.initial_viewer_bitrate, 50_000, 50_000_000),
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
        v.peer.flush(&mut self.out);
        self.viewers.push(v);
        let i = self.viewers.len() - 1;
        self.select_for(i, now);
        self.publish_viewer_count();
        Ok(())
    }

    /// Send the queued publisher packets to every connected viewer: per viewer, the
    /// whole batch and then one drain (see [`send_batch`]).
    pub(super) fn fan_out(&mut self) {
        let Some(now) = self.outgoing.last().map(|o| o.at) else {
            return;
        };
        let media = &self.shared.media;
        media.fan_outs.fetch_add(1, Ordering::Relaxed);
        media
            .fanned_packets
            .fetch_add(self.outgoing.len() as u64, Ordering::Relaxed);
        let mut packets_out = 0;
        let mut bytes_out = 0;
        let out = &mut self.out;
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
                |o| {
                    out.push(Output::Transmit {
                        sockets,
                        transport: o.transport,
                        data: o.message,
                    })
                },
            );
            packets_out += taken.packets as u64;
            bytes_out += taken.bytes as u64;
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
        media.packets_out.fetch_add(packets_out, Ordering::Relaxed);
        media.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.outgoing.clear();
        for s in wants_keyframe {
            if let Some(si) = self.sources.iter().position(|x| x.ssrc == s) {
                self.request_keyframe(si, now);
            }
        }
    }

    pub(super) fn drive_viewer(&mut self, i: usize, now: Instant) {
        let v = &mut self.viewers[i];
        v.peer.flush(&mut self.out);
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
        v.peer.flush(&mut self.out);
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
    pub(super) fn followed(&self, source: SourceId) -> bool {
        self.viewers.iter().any(|v| {
            v.peer.connected()
                && v.video.as_ref().is_some_and(|l| {
                    l.fwd.current() == Some(source) || l.fwd.target() == Some(source)
                })
        })
    }

    pub(super) fn want_keyframe_for(&mut self, i: usize, now: Instant) {
        let target = self.viewers[i].video.as_ref().and_then(|l| l.fwd.target());
        if let Some(t) = target
            && let Some(si) = self.sources.iter().position(|s| s.ssrc == t)
        {
            self.request_keyframe(si, now);
        }
    }

    pub(super) fn select_for(&mut self, i: usize, now: Instant) {
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
}
