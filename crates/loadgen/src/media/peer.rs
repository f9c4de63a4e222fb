//! Building the generator's WebRTC peers on webrtc-rs' sans-I/O `rtc` core,
//! and the WHIP/WHEP exchange over HTTP (RFC 9725: POST the offer, get 201,
//! the answer and a `Location`).

use crate::error::{Error, Result};
use bytes::BytesMut;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Payload type the generator offers for VP8.
pub const VP8_PT: u8 = 96;
/// Payload type the generator offers for Opus.
pub const OPUS_PT: u8 = 111;

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}

/// VP8 video and Opus audio, with the feedback a browser offers.
pub fn media_engine() -> Result<MediaEngine> {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![
                    feedback("nack", ""),
                    feedback("nack", "pli"),
                    feedback("ccm", "fir"),
                    feedback("goog-remb", ""),
                ],
            },
            payload_type: VP8_PT,
        },
        RtpCodecKind::Video,
    )
    .map_err(Error::rtc)?;
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )
    .map_err(Error::rtc)?;
    Ok(me)
}

/// Opus 48 kHz stereo, as browsers offer it.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// VP8 as registered in [`media_engine`].
pub fn vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// A peer connection with our single host candidate on `local`.
/// `registry` decides which interceptors run: the light viewers run none
/// (they write their own receiver reports), the publisher only one that
/// hands inbound RTCP (PLI) to the application.
pub fn build_pc(registry: Registry, local: SocketAddr) -> Result<RTCPeerConnection> {
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_include_loopback_candidate(true)
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                // The controlling side nominates its pair on its next check
                // tick; rtc's default 200 ms tick would add 200 ms to every
                // join that a browser (checks every few tens of ms) does not.
                .with_ice_connection_attempts(Some(Duration::from_millis(25)), Some(40))
                .build(),
        )
        .with_media_engine(media_engine()?)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(Error::rtc)?;
    pc.add_local_candidate(RTCIceCandidateInit {
        candidate: format!(
            "candidate:1 1 udp 2130706431 {} {} typ host",
            local.ip(),
            local.port()
        ),
        ..Default::default()
    })
    .map_err(Error::rtc)?;
    Ok(pc)
}

/// Registry with [`DeliverRtcp`] only.
pub fn rtcp_to_application() -> Registry {
    Registry::new().with(Slot::from(14_000), DeliverRtcp::default())
}

/// Marks inbound RTCP for delivery to the application (`rtc` consumes it in
/// its interceptors otherwise), so the publisher sees the SFU's PLIs.
#[derive(Default)]
pub struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
    fn handle_timeout(&mut self, _now: Instant) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Creates the offer, applies it locally and returns its SDP for the WHIP/WHEP
/// request (our host candidate is in it: no trickle).
pub fn local_offer(pc: &mut RTCPeerConnection) -> Result<String> {
    let offer = pc.create_offer(None).map_err(Error::rtc)?;
    pc.set_local_description(Instant::now(), offer)
        .map_err(Error::rtc)?;
    Ok(pc
        .local_description()
        .ok_or_else(|| Error::Rtc("no local description".into()))?
        .sdp)
}

/// Hands one received datagram to the peer connection.
pub fn feed(
    pc: &mut RTCPeerConnection,
    local: SocketAddr,
    from: SocketAddr,
    data: &[u8],
    now: Instant,
) {
    let _ = pc.handle_read(TaggedBytesMut {
        now,
        transport: TransportContext {
            local_addr: local,
            peer_addr: from,
            transport_protocol: TransportProtocol::UDP,
            ecn: None,
        },
        message: BytesMut::from(data),
    });
}

/// Sends everything the peer connection wants sent. A full socket buffer
/// drops the datagram, as the network would.
pub fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket) -> usize {
    let mut n = 0;
    while let Some(out) = pc.poll_write() {
        if socket
            .try_send_to(&out.message, out.transport.peer_addr)
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The result of a WHIP or WHEP POST.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// SDP answer.
    pub answer: String,
    /// Session resource (`Location`), for DELETE.
    pub location: Option<String>,
}

/// POSTs an SDP offer (with `bearer` for WHIP) and returns the answer.
pub async fn exchange(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    from: Option<std::net::Ipv4Addr>,
    offer: String,
) -> Result<Exchanged> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/sdp")
        .body(offer);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    // Each simulated viewer is its own phone to the per-address limits.
    if let Some(from) = from {
        req = req.header("x-forwarded-for", from.to_string());
    }
    let res = req.send().await?;
    let status = res.status();
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.text().await?;
    if status != reqwest::StatusCode::CREATED {
        return Err(Error::Http {
            what: format!("POST {url}"),
            status: status.as_u16(),
            body,
        });
    }
    Ok(Exchanged {
        answer: body,
        location,
    })
}
