//! The per-viewer send path: what happens to one publisher packet on one viewer leg
//! after the room decided to fan it out. The room's fan-out loop and the criterion
//! benches (through `testkit::LoopbackViewer`) run this same code.

use crate::error::{SfuError, internal};
use crate::forward::{DownlinkLoss, Drop as FwdDrop, SourceId, TrackForwarder};
use crate::sdp::{OfferedCodec, ViewerChoice};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::TaggedBytesMut;
use std::time::Instant;

/// A viewer track as negotiated: the sender, and the SSRC / payload type / clock
/// rate its packets carry.
pub(crate) struct LegSpec {
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    pub pt: u8,
    pub clock_rate: u32,
}

pub(crate) struct ViewerLegs {
    pub audio: Option<LegSpec>,
    pub video: Option<LegSpec>,
}

/// Add the viewer's send tracks (one per kind it can receive), before the answer.
pub(crate) fn add_viewer_tracks(
    pc: &mut RTCPeerConnection,
    choice: &ViewerChoice,
    to_rtc_codec: impl Fn(&OfferedCodec) -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> Result<ViewerLegs, SfuError> {
    let mut legs = ViewerLegs {
        audio: None,
        video: None,
    };
    for (kind, codec) in [
        (RtpCodecKind::Audio, choice.audio.as_ref()),
        (RtpCodecKind::Video, choice.video.as_ref()),
    ] {
        let Some(codec) = codec else { continue };
        let ssrc = rand::random::<u32>();
        let label = if kind == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let track = MediaStreamTrack::new(
            "fieldcast".to_owned(),
            format!("fieldcast-{label}"),
            label.to_owned(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: to_rtc_codec(codec),
                ..Default::default()
            }],
        );
        let sender = pc.add_track(track).map_err(internal)?;
        let spec = LegSpec {
            sender,
            ssrc,
            pt: codec.pt,
            clock_rate: codec.clock_rate,
        };
        if kind == RtpCodecKind::Audio {
            legs.audio = Some(spec);
        } else {
            legs.video = Some(spec);
        }
    }
    Ok(legs)
}

/// Why a packet did not go out on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// The forwarding decision said no.
    Skipped(FwdDrop),
    /// rtc refused it (not connected yet, SRTP not ready, ...).
    Rejected,
}

/// One viewer track: forwarding state plus per-leg counters.
pub(crate) struct Leg {
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    pub pt: u8,
    pub clock_rate: u32,
    pub fwd: TrackForwarder,
    /// The viewer's own loss on this leg, from its receiver reports.
    pub downlink: DownlinkLoss,
    pub packets: u64,
    pub octets: u64,
    /// (middle 32 bits of SR NTP, when sent) for RTT from receiver reports.
    pub srs: [(u32, Option<Instant>); 4],
    pub sr_idx: usize,
}

impl Leg {
    pub fn new(spec: LegSpec, video: bool) -> Self {
        Self {
            sender: spec.sender,
            ssrc: spec.ssrc,
            pt: spec.pt,
            clock_rate: spec.clock_rate,
            fwd: TrackForwarder::new(spec.clock_rate, video, rand::random(), rand::random()),
            downlink: DownlinkLoss::new(),
            packets: 0,
            octets: 0,
            srs: [(0, None); 4],
            sr_idx: 0,
        }
    }

    /// Forward one publisher packet on this leg: decide, rewrite the header into the
    /// leg's SSRC / payload type / sequence / timestamp space, and hand it to rtc,
    /// which SRTP-encrypts it for this viewer. Returns the RTP size for accounting.
    /// The encrypted datagram waits in `pc` until [`drain`].
    #[inline]
    pub fn send(
        &mut self,
        pc: &mut RTCPeerConnection,
        pkt: &rtp::Packet,
        source: SourceId,
        keyframe: bool,
        now: Instant,
    ) -> Result<usize, NotSent> {
        let (seq, ts) = (pkt.header.sequence_number, pkt.header.timestamp);
        let paused = self.fwd.current().is_none();
        let rw = if pkt.payload.is_empty() {
            self.fwd.forward_padding(source, seq, ts)
        } else {
            self.fwd.forward(source, seq, ts, keyframe, now)
        }
        .map_err(NotSent::Skipped)?;
        if paused {
            self.downlink.resume_at(rw.seq);
        }
        let payload = pkt.payload.len();
        write(pc, self.rewritten(pkt, rw.seq, rw.ts), now).map_err(|_| NotSent::Rejected)?;
        self.packets += 1;
        self.octets += payload as u64;
        Ok(payload + 12)
    }

    /// `pkt` in this leg's SSRC / payload type, as `seq` / `ts`. The clone does not
    /// allocate: the room strips header extensions before caching (and publishers
    /// send no CSRCs), and the payload is a shared `Bytes`.
    #[inline]
    fn rewritten(&self, pkt: &rtp::Packet, seq: u16, ts: u32) -> rtp::Packet {
        let mut out = pkt.clone();
        out.header.ssrc = self.ssrc;
        out.header.payload_type = self.pt;
        out.header.sequence_number = seq;
        out.header.timestamp = ts;
        out
    }

    /// Resend a cached publisher packet as this leg's `out_seq` (answer to a NACK).
    /// `ts_offset` is the leg's timestamp offset recorded when it was first forwarded.
    pub fn resend(
        &mut self,
        pc: &mut RTCPeerConnection,
        cached: &rtp::Packet,
        out_seq: u16,
        ts_offset: u32,
        now: Instant,
    ) -> Option<usize> {
        let ts = cached.header.timestamp.wrapping_add(ts_offset);
        let bytes = cached.payload.len() + 12;
        write(pc, self.rewritten(cached, out_seq, ts), now)
            .ok()
            .map(|_| bytes)
    }
}

/// Hand a prepared packet to rtc's RTP write path (interceptors, SRTP).
///
/// This is what `RTCRtpSender::write_rtp` ends in, minus its per-packet checks: it
/// looks up the sender's parameters to confirm the SSRC belongs to the sender and
/// the payload type and header extensions are negotiated, and converts the track id
/// to a `String`. A leg's SSRC and payload type are fixed when its track is added
/// (`add_viewer_tracks`, from the codec the viewer offered) and forwarded packets
/// carry no extensions, so the checks hold by construction.
#[inline]
fn write(
    pc: &mut RTCPeerConnection,
    pkt: rtp::Packet,
    now: Instant,
) -> Result<(), rtc::shared::error::Error> {
    pc.handle_write(TaggedRTCMessage {
        now,
        // rtc ignores the track id on the write path; an empty String does not allocate.
        message: RTCMessage::RtpPacket(String::new(), pkt),
    })
}

impl Leg {
    /// Answer a viewer's NACK for `seqs` (its leg's sequence numbers): map each back
    /// to the publisher packet it was forwarded from, take that from `cached`, and
    /// resend it if `allow` grants its size (the viewer's
    /// [`RetransmitBudget`](crate::forward::RetransmitBudget)). Sequence numbers this
    /// leg never sent, whose mapping was overwritten, or whose packet left the cache
    /// (too old) are skipped: a late retransmission is useless to the player.
    /// Returns `(packets, bytes)` resent and the packets `allow` refused.
    pub fn answer_nack<'c>(
        &mut self,
        pc: &mut RTCPeerConnection,
        seqs: impl IntoIterator<Item = u16>,
        cached: impl Fn(SourceId, u16) -> Option<&'c rtp::Packet>,
        mut allow: impl FnMut(usize) -> bool,
        now: Instant,
    ) -> (usize, usize, usize) {
        let (mut packets, mut bytes, mut refused) = (0, 0, 0);
        for out_seq in seqs {
            let Some((src, src_seq, ts_off)) = self.fwd.lookup(out_seq) else {
                continue;
            };
            let Some(pkt) = cached(src, src_seq) else {
                continue;
            };
            if !allow(pkt.payload.len() + 12) {
                refused += 1;
                continue;
            }
            if let Some(b) = self.resend(pc, pkt, out_seq, ts_off, now) {
                packets += 1;
                bytes += b;
            }
        }
        (packets, bytes, refused)
    }
}

/// A decrypted publisher packet waiting to be fanned out.
pub(crate) struct Outgoing {
    pub pkt: rtp::Packet,
    pub source: SourceId,
    pub keyframe: bool,
    pub video: bool,
    /// When it arrived (the forwarder's clock for timestamp continuity).
    pub at: Instant,
}

/// What one viewer took from a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub packets: usize,
    pub bytes: usize,
    /// The video leg waits for a keyframe of this source.
    pub wants_keyframe_of: Option<SourceId>,
}

/// Send a batch of publisher packets (in arrival order) to one viewer, then hand
/// the encrypted datagrams to `sink` in one drain.
///
/// The viewer, not the packet, is the outer loop: each `poll_write` of rtc sweeps
/// its whole handler pipeline, so draining once per viewer per batch instead of
/// once per packet saves a sweep per extra packet. The batch is whatever the room
/// found queued, so it grows with load; a viewer's first packet leaves no later
/// than with packet-by-packet fan-out.
pub(crate) fn send_batch(
    pc: &mut RTCPeerConnection,
    mut audio: Option<&mut Leg>,
    mut video: Option<&mut Leg>,
    batch: &[Outgoing],
    sink: impl FnMut(TaggedBytesMut),
) -> Taken {
    let mut taken = Taken::default();
    for o in batch {
        let leg = if o.video {
            video.as_deref_mut()
        } else {
            audio.as_deref_mut()
        };
        let Some(leg) = leg else { continue };
        match leg.send(pc, &o.pkt, o.source, o.keyframe, o.at) {
            Ok(bytes) => {
                taken.packets += 1;
                taken.bytes += bytes;
            }
            Err(NotSent::Skipped(FwdDrop::WaitingForKeyframe)) => {
                taken.wants_keyframe_of = Some(o.source)
            }
            Err(_) => {}
        }
    }
    if taken.packets > 0 {
        drain(pc, sink);
    }
    taken
}

/// Hand every datagram `pc` has ready to `sink`.
#[inline]
pub(crate) fn drain(pc: &mut RTCPeerConnection, mut sink: impl FnMut(TaggedBytesMut)) {
    while let Some(out) = pc.poll_write() {
        sink(out);
    }
}
