//! A room's RTCP with its viewers: their feedback (keyframe requests, NACKs
//! answered from the publisher's cache, REMB, receiver reports) and the sender
//! reports that carry the publisher's clock into each viewer's timestamp space.

use super::Room;
use crate::forward::SourceId;
use rtc::rtcp;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

impl Room {
    pub(super) fn on_viewer_rtcp(
        &mut self,
        i: usize,
        pkts: Vec<Box<dyn rtcp::Packet>>,
        now: Instant,
    ) {
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

    pub(super) fn on_nack(
        &mut self,
        i: usize,
        nack: &rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack,
        now: Instant,
    ) {
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
        v.peer.flush(&mut self.out);
    }

    /// Pick (or re-pick) the video layer for viewer `i`.
    pub(super) fn send_sender_reports(&mut self, now: Instant) {
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
            v.peer.flush(&mut self.out);
        }
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
