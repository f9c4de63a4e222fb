//! Whole frames from ordered RTP packets, with the rtp crate's depacketizers.

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use sfu::TapCodec;

/// A video codec a recording can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (written to WebM).
    Vp8,
    /// H.264 (written to Matroska).
    H264,
}

/// One complete video frame in the container's form (VP8 as is; H.264 as
/// 4-byte length-prefixed NAL units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Extended RTP timestamp.
    pub timestamp: i64,
    /// Decodable without earlier frames.
    pub keyframe: bool,
    /// The frame data.
    pub data: Bytes,
    /// What the track header needs, known from a keyframe.
    pub params: Option<VideoParams>,
}

/// The decoder setup a track header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// Codec.
    pub codec: VideoCodec,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Matroska `CodecPrivate` (the avcC record for H.264; none for VP8).
    pub codec_private: Option<Vec<u8>>,
}

enum Depack {
    Vp8(Vp8Packet),
    H264(H264Packet),
}

/// Assembles one video stream's frames; after a gap it drops frames until the
/// next keyframe (a frame that references a broken one would show garbage).
pub struct VideoAssembler {
    codec: VideoCodec,
    depack: Depack,
    timestamp: Option<i64>,
    data: BytesMut,
    broken: bool,
    need_keyframe: bool,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
}

impl std::fmt::Debug for VideoAssembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoAssembler")
            .field("codec", &self.codec)
            .field("timestamp", &self.timestamp)
            .field("need_keyframe", &self.need_keyframe)
            .finish_non_exhaustive()
    }
}

/// What one packet produced.
#[derive(Debug, Default)]
pub struct Assembled {
    /// A finished frame.
    pub frame: Option<VideoFrame>,
    /// The stream is broken until a keyframe: ask the publisher for one.
    pub wants_keyframe: bool,
}

impl VideoAssembler {
    /// An assembler for `codec`; `None` for audio.
    pub fn new(codec: TapCodec) -> Option<Self> {
        let (codec, depack) = match codec {
            TapCodec::Vp8 => (VideoCodec::Vp8, Depack::Vp8(Vp8Packet::default())),
            TapCodec::H264 => (
                VideoCodec::H264,
                // Annex B output (the default): split into NAL units below.
                Depack::H264(H264Packet::default()),
            ),
            TapCodec::Opus => return None,
        };
        Some(Self {
            codec,
            depack,
            timestamp: None,
            data: BytesMut::new(),
            broken: false,
            need_keyframe: true,
            sps: None,
            pps: None,
        })
    }

    /// Takes the next packet in sequence order (`after_gap`: packets before it
    /// were lost), with its extended timestamp.
    pub fn push(
        &mut self,
        timestamp: i64,
        marker: bool,
        payload: &Bytes,
        after_gap: bool,
    ) -> Assembled {
        let mut out = Assembled::default();
        if after_gap || self.timestamp.is_some_and(|t| t != timestamp) {
            // The tail of the previous frame (its marker packet) never came.
            if self.timestamp.is_some() || after_gap {
                self.broken = true;
            }
            self.finish_broken(&mut out);
        }
        self.timestamp = Some(timestamp);
        let part = match &mut self.depack {
            Depack::Vp8(d) => d.depacketize(payload),
            Depack::H264(d) => d.depacketize(payload),
        };
        match part {
            Ok(part) => self.data.extend_from_slice(&part),
            Err(_) => self.broken = true,
        }
        if marker {
            if self.broken {
                self.finish_broken(&mut out);
            } else {
                let data = self.data.split().freeze();
                self.timestamp = None;
                out.frame = self.frame(timestamp, data);
                if out.frame.is_none() {
                    out.wants_keyframe = true;
                }
            }
        }
        out
    }

    fn finish_broken(&mut self, out: &mut Assembled) {
        if self.broken {
            self.need_keyframe = true;
            out.wants_keyframe = true;
        }
        self.broken = false;
        self.data.clear();
        self.timestamp = None;
        if let Depack::H264(d) = &mut self.depack {
            // Drop a half-collected fragmented NAL unit.
            *d = H264Packet::default();
        }
    }

    /// The container frame, or `None` while waiting for a keyframe.
    fn frame(&mut self, timestamp: i64, data: Bytes) -> Option<VideoFrame> {
        let (keyframe, data, params) = match self.codec {
            VideoCodec::Vp8 => {
                let keyframe = data.first().is_some_and(|b| b & 0x01 == 0);
                let params = keyframe.then(|| vp8_params(&data)).flatten();
                (keyframe, data, params)
            }
            VideoCodec::H264 => {
                let mut keyframe = false;
                let mut avcc = BytesMut::with_capacity(data.len() + 16);
                for nal in annex_b_units(&data) {
                    match nal[0] & 0x1f {
                        5 => keyframe = true,
                        7 => self.sps = Some(Bytes::copy_from_slice(nal)),
                        8 => self.pps = Some(Bytes::copy_from_slice(nal)),
                        // Access unit delimiters mean nothing inside a container.
                        9 => continue,
                        _ => {}
                    }
                    avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    avcc.extend_from_slice(nal);
                }
                let params = if keyframe {
                    match (&self.sps, &self.pps) {
                        (Some(sps), Some(pps)) => h264_params(sps, pps),
                        _ => None,
                    }
                } else {
                    None
                };
                (keyframe, avcc.freeze(), params)
            }
        };
        if data.is_empty() {
            return None;
        }
        if self.need_keyframe {
            if !keyframe || params.is_none() {
                return None;
            }
            self.need_keyframe = false;
        }
        Some(VideoFrame {
            timestamp,
            keyframe,
            data,
            params,
        })
    }
}

/// The NAL units of an Annex B byte stream (start codes removed).
pub fn annex_b_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The start code before the next unit, and a 4-byte code's leading zero.
            let mut end = s - 3;
            while end > 0 && data[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| e > s)
        .map(move |(s, e)| &data[s..e])
}

/// A VP8 keyframe's picture size (RFC 6386 9.1: start code, then 14-bit sizes).
fn vp8_params(frame: &[u8]) -> Option<VideoParams> {
    if frame.len() < 10 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some(VideoParams {
        codec: VideoCodec::Vp8,
        width,
        height,
        codec_private: None,
    })
}

/// The picture size from the SPS, and the avcC record (ISO 14496-15 5.2.4.1).
fn h264_params(sps: &[u8], pps: &[u8]) -> Option<VideoParams> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{BitReader, decode_nal};
    if sps.len() < 4 {
        return None;
    }
    let rbsp = decode_nal(sps).ok()?;
    let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(sps);
    avcc.push(1);
    avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(pps);
    Some(VideoParams {
        codec: VideoCodec::H264,
        width,
        height,
        codec_private: Some(avcc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_splits_on_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units: Vec<&[u8]> = annex_b_units(&stream).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
    }

    /// VP8 payload descriptor (S bit set, partition 0) in front of a frame.
    fn vp8_packet(frame: &[u8], start: bool) -> Bytes {
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        p.extend_from_slice(frame);
        Bytes::from(p)
    }

    fn vp8_keyframe(width: u16, height: u16) -> Vec<u8> {
        let mut f = vec![0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&width.to_le_bytes());
        f.extend_from_slice(&height.to_le_bytes());
        f.extend_from_slice(&[7; 20]);
        f
    }

    #[test]
    fn a_vp8_keyframe_in_two_packets_becomes_one_frame_with_its_size() {
        let mut a = VideoAssembler::new(TapCodec::Vp8).unwrap();
        let key = vp8_keyframe(640, 480);
        let (head, tail) = key.split_at(12);
        assert!(
            a.push(90, false, &vp8_packet(head, true), false)
                .frame
                .is_none()
        );
        let frame = a
            .push(90, true, &vp8_packet(tail, false), false)
            .frame
            .unwrap();
        assert!(frame.keyframe);
        assert_eq!(frame.data[..], key[..]);
        let params = frame.params.unwrap();
        assert_eq!((params.width, params.height), (640, 480));
    }

    #[test]
    fn after_a_loss_frames_wait_for_the_next_keyframe() {
        let mut a = VideoAssembler::new(TapCodec::Vp8).unwrap();
        let delta = [0x51, 1, 2, 3];
        let first = a.push(0, true, &vp8_packet(&delta, true), false);
        assert!(first.frame.is_none(), "no keyframe yet");
        assert!(first.wants_keyframe);
        let key = vp8_keyframe(320, 240);
        assert!(
            a.push(3000, true, &vp8_packet(&key, true), false)
                .frame
                .is_some()
        );
        assert!(
            a.push(6000, true, &vp8_packet(&delta, true), false)
                .frame
                .is_some()
        );
        let lost = a.push(9000, true, &vp8_packet(&delta, true), true);
        assert!(lost.frame.is_none() && lost.wants_keyframe);
        assert!(
            a.push(12000, true, &vp8_packet(&delta, true), false)
                .frame
                .is_none()
        );
        assert!(
            a.push(15000, true, &vp8_packet(&key, true), false)
                .frame
                .unwrap()
                .keyframe
        );
    }
}
