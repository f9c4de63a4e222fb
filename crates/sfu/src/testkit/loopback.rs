//! A viewer leg without sockets: the SFU's own viewer `RTCPeerConnection` (built and
//! negotiated exactly as [`Sfu::play`](crate::Sfu::play) does), connected in memory
//! to a sans-I/O `rtc` client that plays the browser. ICE, DTLS and SRTP run for
//! real; datagrams are handed across by the harness, on a simulated clock.
//!
//! Used by the criterion benches (the per-viewer send path as the room runs it,
//! minus the socket) and by sans-I/O tests of the send path.

use super::{TkResult, s};
use crate::egress::{Leg, Outgoing, drain, send_batch};
use crate::forward::{NackCache, SourceId};
use crate::memory_peer::{vp8_client, vp8_offered};
use crate::sdp::{self, PublisherChoice};
use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One SFU viewer leg (video) connected in memory to a client.
pub struct LoopbackViewer {
    sfu: RTCPeerConnection,
    client: RTCPeerConnection,
    video: Leg,
    sfu_addr: SocketAddr,
    client_addr: SocketAddr,
    /// The simulated clock, advanced by the handshake.
    pub now: Instant,
}

fn deliver(from: &mut RTCPeerConnection, to: &mut RTCPeerConnection, now: Instant) -> usize {
    let mut n = 0;
    while let Some(out) = from.poll_write() {
        n += 1;
        let _ = to.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: out.transport.peer_addr,
                peer_addr: out.transport.local_addr,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: out.message,
        });
    }
    n
}

fn connected(pc: &mut RTCPeerConnection, state: &mut RTCPeerConnectionState) {
    while let Some(ev) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
            *state = s;
        }
    }
}

impl LoopbackViewer {
    /// Negotiate and connect one viewer (VP8 video) in memory. `n` makes the
    /// addresses of several viewers distinct.
    pub fn connect(n: u16) -> TkResult<Self> {
        let start = Instant::now();
        let client_addr: SocketAddr = format!("127.0.1.{}:{}", 1 + n / 250, 20_000 + n)
            .parse()
            .map_err(s)?;
        let sfu_addr: SocketAddr = "127.0.0.1:8189".parse().map_err(s)?;

        // The client: a recvonly VP8 offer, like a WHEP player.
        let mut client = vp8_client(start)?;
        client
            .add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .map_err(s)?;
        client
            .add_local_candidate(RTCIceCandidateInit {
                candidate: format!(
                    "candidate:1 1 udp 2130706431 {} {} typ host",
                    client_addr.ip(),
                    client_addr.port()
                ),
                ..Default::default()
            })
            .map_err(s)?;
        let offer = client.create_offer(None).map_err(s)?;
        client.set_local_description(start, offer).map_err(s)?;
        let offer = client.local_description().ok_or("no offer")?.sdp;

        // The SFU side, as `Sfu::play` builds it.
        let summary = sdp::inspect_offer(&offer).map_err(s)?;
        let choice = sdp::choose_viewer(
            &summary,
            &PublisherChoice {
                video: Some(vp8_offered()),
                audio: None,
                rids: vec![],
            },
        )
        .map_err(s)?;
        let ufrag = crate::random_token(16);
        let mut sfu = crate::build_viewer_pc(&choice, &ufrag).map_err(s)?;
        let mut legs = None;
        let answer = crate::negotiate(
            &mut sfu,
            &offer,
            &[format!(
                "candidate:1 1 udp 2130706431 {} {} typ host",
                sfu_addr.ip(),
                sfu_addr.port()
            )],
            |pc| {
                legs = Some(crate::egress::add_viewer_tracks(
                    pc,
                    &choice,
                    crate::to_rtc_codec,
                )?);
                Ok(())
            },
        )
        .map_err(s)?;
        let spec = legs.and_then(|l| l.video).ok_or("no video leg")?;
        client
            .set_remote_description(start, RTCSessionDescription::answer(answer).map_err(s)?)
            .map_err(s)?;

        // Run ICE + DTLS on a simulated clock.
        let (mut st_client, mut st_sfu) =
            (RTCPeerConnectionState::New, RTCPeerConnectionState::New);
        let mut now = start;
        for _ in 0..4000 {
            deliver(&mut client, &mut sfu, now);
            deliver(&mut sfu, &mut client, now);
            connected(&mut client, &mut st_client);
            connected(&mut sfu, &mut st_sfu);
            if st_client == RTCPeerConnectionState::Connected
                && st_sfu == RTCPeerConnectionState::Connected
            {
                // Drain what the handshake left (reads, final flights).
                deliver(&mut client, &mut sfu, now);
                deliver(&mut sfu, &mut client, now);
                while client.poll_read().is_some() {}
                while sfu.poll_read().is_some() {}
                return Ok(Self {
                    sfu,
                    client,
                    video: Leg::new(spec, true),
                    sfu_addr,
                    client_addr,
                    now,
                });
            }
            now += Duration::from_millis(5);
            let _ = client.handle_timeout(now);
            let _ = sfu.handle_timeout(now);
        }
        Err(format!(
            "loopback viewer did not connect: client {st_client}, sfu {st_sfu}"
        ))
    }

    /// Make the video leg follow `source` (from its next keyframe).
    pub fn follow(&mut self, source: SourceId) {
        self.video.fwd.set_target(Some(source));
    }

    /// The room's per-viewer send path for one publisher packet: forwarding
    /// decision, header rewrite, SRTP through rtc, and every datagram handed to
    /// `sink` (where the room would `send_to`). Returns whether the packet went out.
    pub fn send_video(
        &mut self,
        pkt: &rtp::Packet,
        source: SourceId,
        keyframe: bool,
        now: Instant,
        sink: &mut impl FnMut(&[u8]),
    ) -> bool {
        let batch = [Outgoing {
            pkt: pkt.clone(),
            source,
            keyframe,
            video: true,
            at: now,
        }];
        self.send_video_batch(&batch, sink) == 1
    }

    /// Like [`send_video`](Self::send_video) for a burst the room found queued
    /// together (e.g. the packets of one frame): one drain for all of them. Each
    /// entry is `(packet, keyframe)` from `source`. Returns how many went out.
    pub fn send_video_burst(
        &mut self,
        burst: &[(rtp::Packet, bool)],
        source: SourceId,
        now: Instant,
        sink: &mut impl FnMut(&[u8]),
    ) -> usize {
        let batch: Vec<Outgoing> = burst
            .iter()
            .map(|(pkt, keyframe)| Outgoing {
                pkt: pkt.clone(),
                source,
                keyframe: *keyframe,
                video: true,
                at: now,
            })
            .collect();
        self.send_video_batch(&batch, sink)
    }

    fn send_video_batch(&mut self, batch: &[Outgoing], sink: &mut impl FnMut(&[u8])) -> usize {
        send_batch(&mut self.sfu, None, Some(&mut self.video), batch, |out| {
            sink(&out.message)
        })
        .packets
    }

    /// Answer a NACK from this viewer for `seqs` (viewer-leg sequence numbers) from
    /// `cache`, as the room does. Returns how many packets were resent.
    pub fn answer_nack(
        &mut self,
        seqs: &[u16],
        cache: &NackCache<rtp::Packet>,
        now: Instant,
        sink: &mut impl FnMut(&[u8]),
    ) -> usize {
        let n = self
            .video
            .answer_nack(
                &mut self.sfu,
                seqs.iter().copied(),
                |_, seq| cache.get(seq, now),
                |_| true,
                now,
            )
            .0;
        drain(&mut self.sfu, |out| sink(&out.message));
        n
    }

    /// Hand everything the SFU side has written to the client and return the RTP
    /// packets the client decrypted (the viewer's view of the leg).
    pub fn deliver_to_client(&mut self, datagrams: Vec<Vec<u8>>) -> Vec<rtp::Packet> {
        for d in datagrams {
            let _ = self.client.handle_read(TaggedBytesMut {
                now: self.now,
                transport: TransportContext {
                    local_addr: self.client_addr,
                    peer_addr: self.sfu_addr,
                    transport_protocol: TransportProtocol::UDP,
                    ecn: None,
                },
                message: BytesMut::from(&d[..]),
            });
        }
        let mut out = Vec::new();
        while let Some(m) = self.client.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = m.message {
                out.push(p);
            }
        }
        out
    }

    /// The video leg's SSRC and payload type.
    pub fn video_ssrc_pt(&self) -> (u32, u8) {
        (self.video.ssrc, self.video.pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const SRC: SourceId = 0x5eed;

    fn packet(seq: u16, ts: u32, keyframe: bool) -> rtp::Packet {
        let mut payload = vec![0xab; 1100];
        payload[0] = 0x10; // VP8: start of partition
        payload[1] = if keyframe { 0x00 } else { 0x01 };
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: 100,
                sequence_number: seq,
                timestamp: ts,
                ssrc: SRC,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn forwarded_packets_decrypt_at_the_viewer_in_its_own_sequence_space() {
        let mut v = LoopbackViewer::connect(0).expect("connects in memory");
        let (ssrc, pt) = v.video_ssrc_pt();
        v.follow(SRC);
        let now = v.now;
        let mut wire = Vec::new();
        for i in 0..20u16 {
            let p = packet(40_000 + i, 777 + 3000 * (i as u32 / 3), i == 0);
            assert!(v.send_video(&p, SRC, i == 0, now, &mut |d: &[u8]| wire.push(d.to_vec())));
        }
        assert_eq!(wire.len(), 20, "one datagram per packet");
        let got = v.deliver_to_client(wire);
        assert_eq!(got.len(), 20, "the viewer decrypts every packet");
        let first = got[0].header.sequence_number;
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.header.ssrc, ssrc);
            assert_eq!(p.header.payload_type, pt);
            assert_eq!(p.header.sequence_number, first.wrapping_add(i as u16));
            assert_eq!(p.payload.len(), 1100);
        }
    }

    #[test]
    fn nack_is_answered_from_the_cache_but_not_after_the_cache_window() {
        let mut v = LoopbackViewer::connect(1).expect("connects in memory");
        v.follow(SRC);
        let t0 = v.now;
        let mut cache = NackCache::new(256, Duration::from_secs(2));
        let mut wire = Vec::new();
        for i in 0..10u16 {
            let p = packet(100 + i, 9000, i == 0);
            cache.insert(100 + i, t0, p.clone());
            v.send_video(&p, SRC, i == 0, t0, &mut |d: &[u8]| wire.push(d.to_vec()));
        }
        // The 5th datagram is lost on the way to the viewer.
        let lost_wire = wire.remove(4);
        let lost = u16::from_be_bytes([lost_wire[2], lost_wire[3]]);
        let delivered = v.deliver_to_client(wire);
        assert_eq!(delivered.len(), 9);
        let ts = delivered[3].header.timestamp; // same frame as the lost packet

        // Within the window: resent in the leg's SSRC / seq / timestamp space,
        // encrypted for this viewer, and accepted by its SRTP context.
        let mut resent = Vec::new();
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            v.answer_nack(&[lost], &cache, t1, &mut |d: &[u8]| resent.push(d.to_vec())),
            1
        );
        let got = v.deliver_to_client(resent);
        assert_eq!(got.len(), 1, "the viewer decrypts the retransmission");
        assert_eq!(got[0].header.sequence_number, lost);
        assert_eq!(got[0].header.timestamp, ts);
        assert_eq!(got[0].header.ssrc, v.video_ssrc_pt().0);

        // Older than the cache window: no resend, no panic.
        let late = t0 + Duration::from_millis(2001);
        let mut none = Vec::new();
        assert_eq!(
            v.answer_nack(&[lost], &cache, late, &mut |d: &[u8]| none.push(d.to_vec())),
            0
        );
        // Never sent on this leg, or a hostile range: nothing either.
        let first = delivered[0].header.sequence_number;
        let never: Vec<u16> = (0..=u16::MAX)
            .step_by(97)
            .filter(|s| s.wrapping_sub(first) >= 10)
            .collect();
        assert_eq!(
            v.answer_nack(&never, &cache, t1, &mut |d: &[u8]| none.push(d.to_vec())),
            0
        );
        assert!(none.is_empty());
    }
}
