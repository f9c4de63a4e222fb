//! A copy of a room's publisher media for whoever records it.
//!
//! The room hands each decrypted publisher packet (header extensions already
//! stripped) to every tap with `try_send`: a slow recorder loses packets, counted
//! in [`MediaTap::dropped`], and never delays the fan-out to viewers. Packets are
//! cheap to copy (`rtp::Packet` payloads are `Bytes`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rtc::rtp;
use tokio::sync::mpsc;

use crate::forward::VideoCodec;

/// Packets a tap may fall behind before the room drops for it: about 2 s of a
/// 2.5 Mbit/s stream.
pub const TAP_QUEUE: usize = 2048;

/// The codec of a tapped stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapCodec {
    /// VP8 (RFC 7741 payloads).
    Vp8,
    /// H.264, packetization-mode 1 (RFC 6184 payloads).
    H264,
    /// Opus (RFC 7587 payloads).
    Opus,
}

impl TapCodec {
    /// Video codecs map one to one; audio is always Opus (the only one accepted).
    pub(crate) fn of(video: Option<VideoCodec>) -> Self {
        match video {
            Some(VideoCodec::Vp8) => Self::Vp8,
            Some(VideoCodec::H264) => Self::H264,
            None => Self::Opus,
        }
    }

    /// Is this a video codec?
    pub fn is_video(self) -> bool {
        !matches!(self, Self::Opus)
    }
}

/// One publisher packet, as the room received it.
#[derive(Debug, Clone)]
pub struct TappedPacket {
    /// Counts publishers of the room: a new publisher (a reconnect or a takeover)
    /// starts a new generation, with new SSRCs, sequence numbers and timestamps.
    pub generation: u64,
    /// The stream's codec.
    pub codec: TapCodec,
    /// RTP clock rate (90 kHz video, 48 kHz Opus).
    pub clock_rate: u32,
    /// Simulcast layer (`rid`), if the publisher sends several.
    pub rid: Option<String>,
    /// The packet starts a keyframe (video only).
    pub keyframe: bool,
    /// When the room received it.
    pub at: Instant,
    /// The packet, header extensions stripped.
    pub packet: rtp::Packet,
}

/// The receiving end of a tap. Dropping it removes the tap from the room.
#[derive(Debug)]
pub struct MediaTap {
    rx: mpsc::Receiver<TappedPacket>,
    dropped: Arc<AtomicU64>,
}

impl MediaTap {
    /// The next packet; `None` once the room has ended.
    pub async fn recv(&mut self) -> Option<TappedPacket> {
        self.rx.recv().await
    }

    /// Packets lost because this tap fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The room's end of a tap.
#[derive(Debug)]
pub(crate) struct TapSender {
    tx: mpsc::Sender<TappedPacket>,
    dropped: Arc<AtomicU64>,
}

impl TapSender {
    /// Offer a packet; `false` once the tap is gone (the room then forgets it).
    pub fn offer(&self, packet: &TappedPacket) -> bool {
        match self.tx.try_send(packet.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// A connected pair.
pub(crate) fn tap() -> (TapSender, MediaTap) {
    let (tx, rx) = mpsc::channel(TAP_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        TapSender {
            tx,
            dropped: dropped.clone(),
        },
        MediaTap { rx, dropped },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> TappedPacket {
        let mut packet = rtp::Packet::default();
        packet.header.sequence_number = seq;
        TappedPacket {
            generation: 1,
            codec: TapCodec::Opus,
            clock_rate: 48_000,
            rid: None,
            keyframe: false,
            at: Instant::now(),
            packet,
        }
    }

    #[tokio::test]
    async fn a_full_tap_counts_what_it_missed_and_a_dropped_one_is_forgotten() {
        let (sender, mut tap) = tap();
        for seq in 0..(TAP_QUEUE as u16 + 5) {
            assert!(sender.offer(&packet(seq)));
        }
        assert_eq!(tap.dropped(), 5);
        assert_eq!(tap.recv().await.unwrap().packet.header.sequence_number, 0);
        drop(tap);
        assert!(!sender.offer(&packet(0)));
    }
}
