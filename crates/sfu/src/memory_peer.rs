//! The client half of an in-memory session (a phone or a player as a sans-I/O
//! `rtc` peer connection), shared by the loopback bench viewer and the room's
//! simulated-clock tests.

use crate::sdp::OfferedCodec;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::time::Instant;

/// VP8 with NACK and PLI feedback, as browsers offer it.
pub(crate) fn vp8_offered() -> OfferedCodec {
    OfferedCodec {
        pt: 96,
        mime: "video/VP8".into(),
        clock_rate: 90_000,
        channels: 0,
        fmtp: String::new(),
        feedback: vec![
            ("nack".into(), String::new()),
            ("nack".into(), "pli".into()),
        ],
    }
}

/// A client peer connection that speaks VP8 and gathers loopback candidates.
pub(crate) fn vp8_client(now: Instant) -> Result<RTCPeerConnection, String> {
    client(now, &[])
}

/// [`vp8_client`] that can also name simulcast layers (mid and rid header
/// extensions), as a browser does.
#[cfg(test)]
pub(crate) fn vp8_simulcast_client(now: Instant) -> Result<RTCPeerConnection, String> {
    client(
        now,
        &[
            rtc::sdp::extmap::SDES_MID_URI,
            rtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
        ],
    )
}

fn client(now: Instant, header_extensions: &[&str]) -> Result<RTCPeerConnection, String> {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: crate::to_rtc_codec(&vp8_offered()),
            payload_type: 96,
        },
        RtpCodecKind::Video,
    )
    .map_err(|e| e.to_string())?;
    for uri in header_extensions {
        me.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: (*uri).to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )
        .map_err(|e| e.to_string())?;
    }
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_include_loopback_candidate(true)
                .build(),
        )
        .with_media_engine(me)
        .build(now)
        .map_err(|e| e.to_string())
}
