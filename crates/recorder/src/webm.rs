//! A Matroska/WebM muxer that writes as it goes.
//!
//! The file is written so that a crash leaves a playable file: the Segment has
//! an unknown size and every Cluster is complete when it is written (about a
//! second of media), so a reader plays everything up to the last whole
//! Cluster. A clean [`Muxer::finish`] then adds Cues (for seeking) and patches
//! the Duration, the SeekHead and the Segment size into space reserved at the
//! start. Elements are encoded with `webm-iterable`.

use webm_iterable::matroska_spec::{Master, MatroskaSpec};
use webm_iterable::{WebmWriter, WriteOptions};

use crate::frames::{VideoCodec, VideoParams};

/// Matroska track numbers.
const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;
/// Timestamps are in milliseconds.
const TIMESTAMP_SCALE: u64 = 1_000_000;
/// A cluster is closed after this much media, so a crash loses at most this.
const CLUSTER_MS: i64 = 1_000;
/// Room kept at the start for the SeekHead written at the end.
const SEEK_HEAD_SPACE: usize = 96;
/// Opus decoder delay (RFC 7845 pre-skip, 80 ms of pre-roll for seeking).
const OPUS_PRE_SKIP: u16 = 312;

/// Bytes to write at an offset of a file already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Offset from the start of the file.
    pub offset: u64,
    /// The bytes that replace what is there.
    pub bytes: Vec<u8>,
}

/// The end of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// Appended after the last cluster.
    pub tail: Vec<u8>,
    /// Written over reserved space at the start.
    pub patches: Vec<Patch>,
    /// Media duration in milliseconds.
    pub duration_ms: u64,
}

/// The container: WebM for VP8, Matroska for H.264 (WebM allows only VP8/VP9/AV1).
pub fn extension(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => "webm",
        VideoCodec::H264 => "mkv",
    }
}

/// The MIME type a browser gets for a file of `codec`.
pub fn mime_type(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => "video/webm",
        VideoCodec::H264 => "video/x-matroska",
    }
}

struct Block {
    track: u64,
    time_ms: i64,
    keyframe: bool,
    data: Vec<u8>,
}

/// Muxes one video and one Opus track into a file.
pub struct Muxer {
    written: u64,
    segment_size_at: u64,
    segment_data_at: u64,
    seek_head_at: u64,
    duration_at: u64,
    info_at: u64,
    tracks_at: u64,
    cluster: Vec<Block>,
    cluster_start: i64,
    cluster_keyframe: bool,
    cues: Vec<(u64, u64)>,
    end_ms: i64,
}

impl std::fmt::Debug for Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer")
            .field("written", &self.written)
            .field("end_ms", &self.end_ms)
            .finish_non_exhaustive()
    }
}

/// Encodes top-level elements (the EBML header).
fn encode_top(tags: &[MatroskaSpec]) -> Vec<u8> {
    let mut writer = WebmWriter::new(Vec::new());
    for tag in tags {
        writer
            .write(tag)
            .expect("writing elements into memory cannot fail");
    }
    writer
        .into_inner()
        .expect("flushing into memory cannot fail")
}

/// Encodes children of the Segment. The writer checks each element's place,
/// so it is given an open Segment whose own bytes are then cut off.
fn encode(tags: &[MatroskaSpec]) -> Vec<u8> {
    let mut writer = WebmWriter::new(Vec::new());
    writer
        .write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )
        .expect("writing elements into memory cannot fail");
    for tag in tags {
        writer
            .write(tag)
            .expect("writing elements into memory cannot fail");
    }
    let bytes = writer
        .into_inner()
        .expect("flushing into memory cannot fail");
    bytes
        .strip_prefix(&SEGMENT_START[..])
        .expect("the writer starts with the open Segment")
        .to_vec()
}

/// A Segment's ID and an unknown size (8 bytes, all value bits set).
const SEGMENT_START: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// A Void element of exactly `len` (>= 2) bytes, size field padded as needed.
fn void(len: usize) -> Vec<u8> {
    assert!(len >= 2, "a Void element takes at least two bytes");
    if len - 2 < 127 {
        let mut v = vec![0xec, 0x80 | (len - 2) as u8];
        v.resize(len, 0);
        v
    } else {
        // 8-byte size field: 0x01 then 7 bytes of length.
        let data = (len - 9) as u64;
        let mut v = vec![0xec, 0x01];
        v.extend_from_slice(&data.to_be_bytes()[1..]);
        v.resize(len, 0);
        v
    }
}

impl Muxer {
    /// Starts a file; returns the muxer and the header bytes to write first.
    pub fn start(video: &VideoParams, app: &str) -> (Self, Vec<u8>) {
        let mut out = encode_top(&[MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType(
                match video.codec {
                    VideoCodec::Vp8 => "webm",
                    VideoCodec::H264 => "matroska",
                }
                .into(),
            ),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ]))]);
        let segment_size_at = out.len() as u64 + 4;
        out.extend_from_slice(&SEGMENT_START);
        let segment_data_at = out.len() as u64;
        let seek_head_at = out.len() as u64;
        out.extend_from_slice(&void(SEEK_HEAD_SPACE));
        let info_at = out.len() as u64;
        let info = encode(&[MatroskaSpec::Info(Master::Full(vec![
            MatroskaSpec::TimestampScale(TIMESTAMP_SCALE),
            MatroskaSpec::MuxingApp(app.into()),
            MatroskaSpec::WritingApp(app.into()),
            // Where the Duration goes at the end: same size as a float Duration.
            MatroskaSpec::Void(vec![0; 9]),
        ]))]);
        // The Void is the last child, 11 bytes long.
        let duration_at = info_at + info.len() as u64 - 11;
        out.extend_from_slice(&info);
        let tracks_at = out.len() as u64;
        let mut video_entry = vec![
            MatroskaSpec::TrackNumber(VIDEO_TRACK),
            MatroskaSpec::TrackUID(VIDEO_TRACK),
            MatroskaSpec::TrackType(1),
            MatroskaSpec::FlagLacing(0),
            MatroskaSpec::CodecID(
                match video.codec {
                    VideoCodec::Vp8 => "V_VP8",
                    VideoCodec::H264 => "V_MPEG4/ISO/AVC",
                }
                .into(),
            ),
        ];
        if let Some(private) = &video.codec_private {
            video_entry.push(MatroskaSpec::CodecPrivate(private.clone()));
        }
        video_entry.push(MatroskaSpec::Video(Master::Full(vec![
            MatroskaSpec::PixelWidth(u64::from(video.width)),
            MatroskaSpec::PixelHeight(u64::from(video.height)),
        ])));
        let mut opus_head = b"OpusHead".to_vec();
        opus_head.extend_from_slice(&[1, 2]);
        opus_head.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
        opus_head.extend_from_slice(&48_000u32.to_le_bytes());
        opus_head.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&encode(&[MatroskaSpec::Tracks(Master::Full(vec![
            MatroskaSpec::TrackEntry(Master::Full(video_entry)),
            MatroskaSpec::TrackEntry(Master::Full(vec![
                MatroskaSpec::TrackNumber(AUDIO_TRACK),
                MatroskaSpec::TrackUID(AUDIO_TRACK),
                MatroskaSpec::TrackType(2),
                MatroskaSpec::FlagLacing(0),
                MatroskaSpec::CodecID("A_OPUS".into()),
                MatroskaSpec::CodecPrivate(opus_head),
                MatroskaSpec::CodecDelay(u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000),
                MatroskaSpec::SeekPreRoll(80_000_000),
                MatroskaSpec::Audio(Master::Full(vec![
                    MatroskaSpec::SamplingFrequency(48_000.0),
                    MatroskaSpec::Channels(2),
                ])),
            ])),
        ]))]));
        let muxer = Self {
            written: out.len() as u64,
            segment_size_at,
            segment_data_at,
            seek_head_at,
            duration_at,
            info_at,
            tracks_at,
            cluster: Vec::new(),
            cluster_start: 0,
            cluster_keyframe: false,
            cues: Vec::new(),
            end_ms: 0,
        };
        (muxer, out)
    }

    /// Bytes emitted so far (header and clusters).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The media time reached, in milliseconds.
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// Adds a video frame at `time_ms`; returns a finished cluster to append.
    pub fn video(&mut self, time_ms: i64, keyframe: bool, data: &[u8]) -> Option<Vec<u8>> {
        // Seeking lands on clusters that start with a keyframe.
        let flushed = if keyframe && !self.cluster.is_empty() {
            self.flush()
        } else {
            self.flush_if_due(time_ms)
        };
        if self.cluster.is_empty() {
            self.cluster_start = time_ms;
            self.cluster_keyframe = keyframe;
        }
        self.push(VIDEO_TRACK, time_ms, keyframe, data);
        flushed
    }

    /// Adds an Opus packet at `time_ms`; returns a finished cluster to append.
    pub fn audio(&mut self, time_ms: i64, data: &[u8]) -> Option<Vec<u8>> {
        let flushed = self.flush_if_due(time_ms);
        if self.cluster.is_empty() {
            self.cluster_start = time_ms;
            self.cluster_keyframe = false;
        }
        self.push(AUDIO_TRACK, time_ms, true, data);
        flushed
    }

    fn push(&mut self, track: u64, time_ms: i64, keyframe: bool, data: &[u8]) {
        // Block times are 16-bit offsets from the cluster's.
        let time_ms = time_ms.clamp(self.cluster_start - 30_000, self.cluster_start + 30_000);
        self.end_ms = self.end_ms.max(time_ms);
        self.cluster.push(Block {
            track,
            time_ms,
            keyframe,
            data: data.to_vec(),
        });
    }

    fn flush_if_due(&mut self, time_ms: i64) -> Option<Vec<u8>> {
        if !self.cluster.is_empty() && time_ms - self.cluster_start >= CLUSTER_MS {
            self.flush()
        } else {
            None
        }
    }

    /// The open cluster, encoded (`None` if empty).
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.cluster.is_empty() {
            return None;
        }
        let start = self.cluster_start.max(0);
        let mut children = vec![MatroskaSpec::Timestamp(start as u64)];
        for block in self.cluster.drain(..) {
            let mut simple = Vec::with_capacity(block.data.len() + 4);
            simple.push(0x80 | block.track as u8);
            let relative = (block.time_ms - start).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
            simple.extend_from_slice(&relative.to_be_bytes());
            simple.push(if block.keyframe { 0x80 } else { 0x00 });
            simple.extend_from_slice(&block.data);
            children.push(MatroskaSpec::SimpleBlock(simple));
        }
        if self.cluster_keyframe {
            self.cues
                .push((start as u64, self.written - self.segment_data_at));
        }
        let bytes = encode(&[MatroskaSpec::Cluster(Master::Full(children))]);
        self.written += bytes.len() as u64;
        Some(bytes)
    }

    /// Ends the file: the last cluster and Cues to append, and the patches
    /// that make it a complete, seekable file.
    pub fn finish(mut self) -> Finish {
        let mut tail = self.flush().unwrap_or_default();
        // `flush` counted the last cluster in `written` already.
        let cues_at = self.written;
        let mut cues = Vec::new();
        if !self.cues.is_empty() {
            let points = self
                .cues
                .iter()
                .map(|&(time, position)| {
                    MatroskaSpec::CuePoint(Master::Full(vec![
                        MatroskaSpec::CueTime(time),
                        MatroskaSpec::CueTrackPositions(Master::Full(vec![
                            MatroskaSpec::CueTrack(VIDEO_TRACK),
                            MatroskaSpec::CueClusterPosition(position),
                        ])),
                    ]))
                })
                .collect();
            cues = encode(&[MatroskaSpec::Cues(Master::Full(points))]);
        }
        let end = cues_at + cues.len() as u64;
        tail.extend_from_slice(&cues);
        let relative = |at: u64| at - self.segment_data_at;
        let mut seeks = vec![
            (vec![0x15, 0x49, 0xa9, 0x66], relative(self.info_at)),
            (vec![0x16, 0x54, 0xae, 0x6b], relative(self.tracks_at)),
        ];
        if !self.cues.is_empty() {
            seeks.push((vec![0x1c, 0x53, 0xbb, 0x6b], relative(cues_at)));
        }
        let mut seek_head = encode(&[MatroskaSpec::SeekHead(Master::Full(
            seeks
                .into_iter()
                .map(|(id, position)| {
                    MatroskaSpec::Seek(Master::Full(vec![
                        MatroskaSpec::SeekID(id),
                        MatroskaSpec::SeekPosition(position),
                    ]))
                })
                .collect(),
        ))]);
        seek_head.extend_from_slice(&void(SEEK_HEAD_SPACE - seek_head.len()));
        let duration_ms = self.end_ms.max(0) as u64;
        let mut duration = vec![0x44, 0x89, 0x88];
        duration.extend_from_slice(&(duration_ms as f64).to_be_bytes());
        let mut segment_size = vec![0x01];
        segment_size.extend_from_slice(&(end - self.segment_data_at).to_be_bytes()[1..]);
        Finish {
            tail,
            patches: vec![
                Patch {
                    offset: self.seek_head_at,
                    bytes: seek_head,
                },
                Patch {
                    offset: self.duration_at,
                    bytes: duration,
                },
                Patch {
                    offset: self.segment_size_at,
                    bytes: segment_size,
                },
            ],
            duration_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webm_iterable::WebmIterator;

    fn params() -> VideoParams {
        VideoParams {
            codec: VideoCodec::Vp8,
            width: 320,
            height: 240,
            codec_private: None,
        }
    }

    fn read(file: &[u8]) -> Vec<MatroskaSpec> {
        WebmIterator::new(file, &[MatroskaSpec::Info(Master::Start)])
            .map(|t| t.expect("the file parses"))
            .collect()
    }

    #[test]
    fn a_finished_file_has_its_duration_cues_and_every_block() {
        let (mut muxer, mut file) = Muxer::start(&params(), "test");
        for i in 0..50i64 {
            if let Some(c) = muxer.video(i * 40, i % 25 == 0, &[i as u8; 100]) {
                file.extend(c);
            }
            if let Some(c) = muxer.audio(i * 40 + 5, &[1; 30]) {
                file.extend(c);
            }
        }
        let finish = muxer.finish();
        file.extend(finish.tail);
        for p in finish.patches {
            let at = p.offset as usize;
            file[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
        assert_eq!(finish.duration_ms, 49 * 40 + 5);
        let tags = read(&file);
        let blocks = tags
            .iter()
            .filter(|t| matches!(t, MatroskaSpec::SimpleBlock(_)))
            .count();
        assert_eq!(blocks, 100);
        let info = tags
            .iter()
            .find_map(|t| match t {
                MatroskaSpec::Info(Master::Full(c)) => Some(c.clone()),
                _ => None,
            })
            .unwrap();
        assert!(info.contains(&MatroskaSpec::Duration(1965.0)), "{info:?}");
        let cue_points = tags
            .iter()
            .filter(|t| matches!(t, MatroskaSpec::CuePoint(Master::Start)))
            .count();
        assert_eq!(cue_points, 2, "one per keyframe cluster");
        assert!(tags.iter().any(|t| matches!(t, MatroskaSpec::SeekHead(_))));
    }

    #[test]
    fn an_unfinished_file_still_parses_up_to_its_last_cluster() {
        let (mut muxer, mut file) = Muxer::start(&params(), "test");
        for i in 0..60i64 {
            if let Some(c) = muxer.video(i * 40, i == 0, &[0; 10]) {
                file.extend(c);
            }
        }
        let blocks = read(&file)
            .iter()
            .filter(|t| matches!(t, MatroskaSpec::SimpleBlock(_)))
            .count();
        assert_eq!(
            blocks, 50,
            "two whole clusters of 25 frames; the open one is lost"
        );
    }
}
