//! A broadcast's recording, sans I/O: tapped packets in, file operations out.
//!
//! Each publisher generation (a reconnect starts a new one, with new SSRCs,
//! sequence numbers and timestamps) becomes its own segment file, which
//! starts at its first video keyframe. Media time is the RTP timestamp
//! relative to the first packet of each track, with the tracks lined up by
//! when the room received those first packets. One simulcast layer is kept:
//! the first one that brings a keyframe.

use std::time::{Duration, Instant};

use sfu::{TapCodec, TappedPacket};

use crate::frames::{VideoAssembler, VideoCodec};
use crate::reorder::Reorder;
use crate::seq::Unwrapper;
use crate::webm::{Finish, Muxer};

/// How long a missing packet is waited for (a retransmission usually comes sooner).
const REORDER_WAIT: Duration = Duration::from_millis(300);
/// Packets held while waiting.
const REORDER_HELD: usize = 512;

/// What to do to the files.
#[derive(Debug)]
pub enum FileOp {
    /// Open segment `index` (from 1) with this header.
    Start {
        /// Segment number within the recording.
        index: u32,
        /// Its video codec (the file type follows from it).
        codec: VideoCodec,
        /// The first bytes.
        header: Vec<u8>,
        /// When the room received time zero of the segment (its first
        /// keyframe), so its media time can be put on the wall clock.
        zero: Instant,
    },
    /// Append to the open segment.
    Append(Vec<u8>),
    /// Close the open segment.
    Finish(Finish),
}

struct Stream {
    reorder: Reorder<TappedPacket>,
    timestamps: Unwrapper,
    /// The first packet's extended timestamp.
    first_ts: Option<i64>,
    /// Segment time minus RTP time, the least seen: the packet that came
    /// with the least delay. (A publisher that queued media before its
    /// connection was up sends a burst whose first packet came late.)
    offset: Option<i64>,
    /// The last time written, so time never runs backwards in a track.
    last: i64,
}

impl Stream {
    fn new() -> Self {
        Self {
            reorder: Reorder::new(REORDER_WAIT, REORDER_HELD),
            timestamps: Unwrapper::default(),
            first_ts: None,
            offset: None,
            last: i64::MIN,
        }
    }

    /// Where a packet with extended timestamp `ts` that arrived `arrived` ms
    /// after the segment's start belongs on the segment's timeline.
    fn place(&mut self, ts: i64, clock_rate: u32, arrived: i64) -> i64 {
        let first = *self.first_ts.get_or_insert(ts);
        let media = millis(ts - first, clock_rate);
        let offset = self
            .offset
            .map_or(arrived - media, |o| o.min(arrived - media));
        self.offset = Some(offset);
        media + offset
    }

    /// A video frame's time: never before the track's last frame. (Frames
    /// of a burst may share one: decoders take them in order, and spreading
    /// them out would push every later frame late.)
    fn video_time(&mut self, ts: i64, clock_rate: u32, arrived: i64) -> i64 {
        let time = self.place(ts, clock_rate, arrived).max(self.last);
        self.last = time;
        time
    }

    /// A sound packet's time, or `None` to leave it out: sound cannot be
    /// squeezed like pictures (each packet lasts its 20 ms, and a decoder
    /// given packets closer than half that stumbles), so a packet that would
    /// land on its predecessor, such as queued sound arriving in a burst, is
    /// dropped, and the sound that follows keeps the time it arrived.
    fn audio_time(&mut self, ts: i64, clock_rate: u32, arrived: i64) -> Option<i64> {
        let placed = self.place(ts, clock_rate, arrived);
        if self.last != i64::MIN && placed < self.last + MIN_SOUND_STEP_MS {
            return None;
        }
        self.last = placed;
        Some(placed)
    }
}

/// Closest two sound packets may sit (half an Opus packet's 20 ms).
const MIN_SOUND_STEP_MS: i64 = 10;

struct Generation {
    id: u64,
    rid: Option<Option<String>>,
    video: Option<(Stream, VideoAssembler)>,
    audio: Stream,
    muxer: Option<Muxer>,
    /// Arrival of the first packet of the segment's first keyframe: time zero.
    zero: Option<Instant>,
    frame_arrival: Option<Instant>,
}

/// The recording of one broadcast.
pub struct Session {
    app: String,
    generation: Option<Generation>,
    segments: u32,
    wants_keyframe: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

fn millis(d: i64, clock_rate: u32) -> i64 {
    d * 1000 / i64::from(clock_rate.max(1))
}

/// Signed milliseconds from `zero` to `at`.
fn since(zero: Instant, at: Instant) -> i64 {
    if at >= zero {
        at.duration_since(zero).as_millis() as i64
    } else {
        -(zero.duration_since(at).as_millis() as i64)
    }
}

impl Session {
    /// A recording written by `app` (the muxing application named in the files).
    pub fn new(app: &str) -> Self {
        Self {
            app: app.to_owned(),
            generation: None,
            segments: 0,
            wants_keyframe: false,
        }
    }

    /// Segments started so far.
    pub fn segments(&self) -> u32 {
        self.segments
    }

    /// Whether a keyframe should be asked for (cleared by reading it).
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.wants_keyframe)
    }

    /// Takes one tapped packet.
    pub fn push(&mut self, packet: TappedPacket, ops: &mut Vec<FileOp>) {
        if self
            .generation
            .as_ref()
            .is_none_or(|g| g.id != packet.generation)
        {
            self.end_segment(ops);
            self.generation = Some(Generation {
                id: packet.generation,
                rid: None,
                video: None,
                audio: Stream::new(),
                muxer: None,
                zero: None,
                frame_arrival: None,
            });
            self.wants_keyframe = true;
        }
        let now = packet.at;
        let seq = packet.packet.header.sequence_number;
        let generation = self.generation.as_mut().expect("set above");
        if packet.codec.is_video() {
            match &generation.rid {
                Some(rid) if *rid != packet.rid => return,
                Some(_) => {}
                None if packet.keyframe => generation.rid = Some(packet.rid.clone()),
                None => {
                    self.wants_keyframe = true;
                    return;
                }
            }
            if generation.video.is_none() {
                let Some(assembler) = VideoAssembler::new(packet.codec) else {
                    return;
                };
                generation.video = Some((Stream::new(), assembler));
            }
            let (stream, _) = generation.video.as_mut().expect("set above");
            let released = stream.reorder.push(seq, packet, now);
            for r in released {
                self.video_packet(r.item, r.after_gap, ops);
            }
        } else if packet.codec == TapCodec::Opus {
            let released = generation.audio.reorder.push(seq, packet, now);
            for r in released {
                self.audio_packet(r.item, ops);
            }
        }
    }

    fn video_packet(&mut self, packet: TappedPacket, after_gap: bool, ops: &mut Vec<FileOp>) {
        let app = self.app.clone();
        let Some(generation) = self.generation.as_mut() else {
            return;
        };
        let Some((stream, assembler)) = generation.video.as_mut() else {
            return;
        };
        let ts = stream.timestamps.timestamp(packet.packet.header.timestamp);
        if generation.frame_arrival.is_none() {
            generation.frame_arrival = Some(packet.at);
        }
        let assembled = assembler.push(
            ts,
            packet.packet.header.marker,
            &packet.packet.payload,
            after_gap,
        );
        if assembled.wants_keyframe {
            self.wants_keyframe = true;
        }
        let arrival = if packet.packet.header.marker {
            generation.frame_arrival.take().unwrap_or(packet.at)
        } else {
            packet.at
        };
        let Some(frame) = assembled.frame else {
            return;
        };
        if generation.muxer.is_none() {
            let Some(params) = &frame.params else { return };
            let (muxer, header) = Muxer::start(params, &app);
            self.segments += 1;
            ops.push(FileOp::Start {
                index: self.segments,
                codec: params.codec,
                header,
                zero: arrival,
            });
            generation.muxer = Some(muxer);
            generation.zero = Some(arrival);
        }
        let Some(zero) = generation.zero else {
            return;
        };
        let time = stream.video_time(ts, packet.clock_rate, since(zero, arrival));
        let muxer = generation.muxer.as_mut().expect("started above");
        if let Some(cluster) = muxer.video(time, frame.keyframe, &frame.data) {
            ops.push(FileOp::Append(cluster));
        }
    }

    fn audio_packet(&mut self, packet: TappedPacket, ops: &mut Vec<FileOp>) {
        let Some(generation) = self.generation.as_mut() else {
            return;
        };
        let stream = &mut generation.audio;
        let ts = stream.timestamps.timestamp(packet.packet.header.timestamp);
        let (Some(zero), Some(muxer)) = (generation.zero, generation.muxer.as_mut()) else {
            // Sound before the first picture is not kept: a segment starts with video.
            return;
        };
        let Some(time) = stream.audio_time(ts, packet.clock_rate, since(zero, packet.at)) else {
            return;
        };
        if time < 0 || packet.packet.payload.is_empty() {
            return;
        }
        if let Some(cluster) = muxer.audio(time, &packet.packet.payload) {
            ops.push(FileOp::Append(cluster));
        }
    }

    fn end_segment(&mut self, ops: &mut Vec<FileOp>) {
        if let Some(muxer) = self.generation.take().and_then(|g| g.muxer) {
            ops.push(FileOp::Finish(muxer.finish()));
        }
    }

    /// The room ended (or recording stops): close the open segment.
    pub fn finish(&mut self, ops: &mut Vec<FileOp>) {
        self.end_segment(ops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp;

    fn tapped(
        generation: u64,
        codec: TapCodec,
        seq: u16,
        ts: u32,
        at: Instant,
        payload: Vec<u8>,
    ) -> TappedPacket {
        let mut packet = rtp::Packet::default();
        packet.header.sequence_number = seq;
        packet.header.timestamp = ts;
        packet.header.marker = true;
        packet.payload = payload.into();
        let keyframe = codec.is_video() && packet.payload.get(1).is_some_and(|b| b & 1 == 0);
        TappedPacket {
            generation,
            codec,
            clock_rate: if codec.is_video() { 90_000 } else { 48_000 },
            rid: None,
            keyframe,
            at,
            packet,
        }
    }

    fn vp8(keyframe: bool) -> Vec<u8> {
        let mut p = vec![
            0x10,
            if keyframe { 0x50 } else { 0x51 },
            0,
            0,
            0x9d,
            0x01,
            0x2a,
        ];
        p.extend_from_slice(&320u16.to_le_bytes());
        p.extend_from_slice(&240u16.to_le_bytes());
        p.extend_from_slice(&[3; 40]);
        p
    }

    #[test]
    fn a_reconnect_starts_a_second_segment_and_the_first_is_finished() {
        let start = Instant::now();
        let mut session = Session::new("test");
        let mut ops = Vec::new();
        for generation in [1u64, 2] {
            let base = start + Duration::from_secs(10 * (generation - 1));
            for i in 0..100u32 {
                let at = base + Duration::from_millis(u64::from(i) * 20);
                // Audio first: it is dropped until the first picture.
                session.push(
                    tapped(
                        generation,
                        TapCodec::Opus,
                        i as u16,
                        5_000 + i * 960,
                        at,
                        vec![1; 20],
                    ),
                    &mut ops,
                );
                if i % 2 == 0 {
                    session.push(
                        tapped(
                            generation,
                            TapCodec::Vp8,
                            (i / 2) as u16,
                            7 + i * 1800,
                            at,
                            vp8(i == 10),
                        ),
                        &mut ops,
                    );
                }
            }
        }
        session.finish(&mut ops);
        let starts: Vec<u32> = ops
            .iter()
            .filter_map(|op| match op {
                FileOp::Start { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [1, 2]);
        let durations: Vec<u64> = ops
            .iter()
            .filter_map(|op| match op {
                FileOp::Finish(f) => Some(f.duration_ms),
                _ => None,
            })
            .collect();
        // Video from frame 10 (200 ms) to 98 (1960 ms), audio to 1980 ms.
        assert_eq!(durations, [1780, 1780]);
        assert!(
            matches!(ops[0], FileOp::Start { .. }),
            "nothing before the keyframe"
        );
    }

    #[test]
    fn a_burst_of_queued_sound_is_left_out_and_pictures_are_kept() {
        // 27 Opus packets (20 ms of sound each) queued by the publisher
        // arrive together, 336 ms into the segment, then sound flows live.
        let mut sound = Stream::new();
        let mut times: Vec<Option<i64>> = (0..27)
            .map(|i| sound.audio_time(i * 960, 48_000, 336))
            .collect();
        times.extend((27..60).map(|i| sound.audio_time(i * 960, 48_000, 336 + (i - 26) * 20)));
        let kept: Vec<i64> = times.iter().flatten().copied().collect();
        assert!(
            kept.windows(2).all(|w| w[1] - w[0] >= MIN_SOUND_STEP_MS),
            "sound packets too close: {kept:?}"
        );
        assert_eq!(kept[0], 336, "the burst's first packet is kept");
        assert_eq!(
            times[1..27],
            [None; 26],
            "the rest of the burst is left out"
        );
        assert_eq!(
            times[27..],
            (27..60)
                .map(|i| Some(336 + (i - 26) * 20))
                .collect::<Vec<_>>()[..],
            "live sound keeps the time it arrived"
        );
        // Pictures are all kept, in order.
        let mut video = Stream::new();
        let frames: Vec<i64> = (0..9)
            .map(|i| video.video_time(i * 3000, 90_000, 500))
            .collect();
        assert_eq!(frames, [500; 9]);
    }

    #[test]
    fn a_burst_of_queued_sound_does_not_push_the_sound_late() {
        let start = Instant::now();
        let mut session = Session::new("test");
        let mut ops = Vec::new();
        session.push(tapped(1, TapCodec::Vp8, 0, 0, start, vp8(true)), &mut ops);
        // A second of sound queued before the connection was up arrives at once...
        for i in 0..50u32 {
            let at = start + Duration::from_millis(1000);
            session.push(
                tapped(1, TapCodec::Opus, i as u16, i * 960, at, vec![1; 20]),
                &mut ops,
            );
        }
        // ...then it flows in real time.
        for i in 50..100u32 {
            let at = start + Duration::from_millis(u64::from(i) * 20);
            session.push(
                tapped(1, TapCodec::Opus, i as u16, i * 960, at, vec![1; 20]),
                &mut ops,
            );
        }
        session.finish(&mut ops);
        let Some(FileOp::Finish(finish)) = ops.last() else {
            panic!("finished: {ops:?}");
        };
        assert_eq!(
            finish.duration_ms, 1980,
            "the last packet sounds when it arrived"
        );
    }
}
