//! A room's stats (for the API) and its media counters (for `/metrics`).

use super::{Room, lock};
use crate::{LayerStats, PublisherStats, RoomStats, ViewerStats};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Monotonic media counters of one room, updated by its task and read by
/// [`Sfu::media_metrics`](crate::Sfu::media_metrics) without stopping it.
#[derive(Debug, Default)]
pub(crate) struct MediaCounters {
    /// Publisher RTP packets received (decrypted once, for every viewer).
    pub packets_in: AtomicU64,
    /// RTP packets handed to viewers' peer connections for sending.
    pub packets_out: AtomicU64,
    /// Their RTP bytes (header and payload, before SRTP).
    pub bytes_out: AtomicU64,
    /// Datagrams the kernel refused (full socket buffer) or that had no socket.
    pub send_drops: AtomicU64,
    /// Fan-outs run, and the publisher packets they carried (their ratio is the
    /// batch each viewer's send path gets).
    pub fan_outs: AtomicU64,
    pub fanned_packets: AtomicU64,
    /// Messages waiting in the room's mailbox when it last looked.
    pub queue_depth: AtomicU64,
    /// Most messages seen waiting since the room started.
    pub queue_depth_max: AtomicU64,
    /// Time the room's task spent working (not waiting), in nanoseconds: its CPU
    /// time, as the task never blocks.
    pub busy_ns: AtomicU64,
}

impl Room {
    pub(super) fn update_stats(&self, now: Instant) {
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
}
