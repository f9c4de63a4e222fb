//! Recording files under `<data dir>/recordings/<broadcast>/<started ms>/part-N.webm|mkv`,
//! within a disk quota. A full quota or a failing disk stops the recording
//! (the tap is dropped, so the broadcast goes on untouched) and leaves the
//! reason in the broadcast's [`RecordingState`] for the studio page.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::fs::{self, File};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::frames::VideoCodec;
use crate::session::{FileOp, Session};
use crate::webm::extension;

/// Periodic keyframes make a recording seekable (each starts a cue point).
const KEYFRAME_EVERY: Duration = Duration::from_secs(10);
/// Keyframe requests after a loss are spaced at least this much.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// The marker file that switches recording off for one broadcast.
const OFF_MARKER: &str = "recording-off";
/// Beside each `part-N.webm|mkv`: `part-N.start`, the Unix time (ms) of its
/// media time zero, so replays can put what happened live on its timeline.
const START_EXTENSION: &str = "start";

/// Why a recording stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The configured quota is used up.
    #[error(
        "the recording space is full ({used} of {limit} bytes used): recording stopped, the broadcast goes on"
    )]
    QuotaFull {
        /// Bytes used by recordings.
        used: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Writing failed (the disk is full, or the directory is not writable).
    #[error("recording stopped, the broadcast goes on: cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The recording state of a broadcast, for the studio page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingState {
    /// The farmer switched recording off.
    Off,
    /// Being recorded.
    Recording {
        /// Segment files so far.
        segments: u32,
        /// Bytes written.
        bytes: u64,
    },
    /// Recording stopped on an error; the broadcast was not affected.
    Stopped {
        /// What went wrong, for people.
        error: String,
    },
    /// The broadcast ended and its recording is complete.
    Finished {
        /// Segment files.
        segments: u32,
        /// Bytes written.
        bytes: u64,
    },
}

/// The space all recordings may use.
#[derive(Debug)]
pub struct DiskQuota {
    limit: u64,
    used: AtomicU64,
}

impl DiskQuota {
    /// A quota of `limit` bytes of which `used` are taken.
    pub fn new(limit: u64, used: u64) -> Self {
        metrics::gauge!("fieldcast_recording_quota_bytes").set(limit as f64);
        metrics::gauge!("fieldcast_recording_bytes_used").set(used as f64);
        Self {
            limit,
            used: AtomicU64::new(used),
        }
    }

    /// Takes `bytes` of the quota, or says it is full.
    pub fn reserve(&self, bytes: u64) -> Result<(), RecordError> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.limit {
                return Err(RecordError::QuotaFull {
                    used,
                    limit: self.limit,
                });
            }
            match self
                .used
                .compare_exchange(used, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    metrics::gauge!("fieldcast_recording_bytes_used").set(next as f64);
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// All recordings of this server.
#[derive(Debug, Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    quota: DiskQuota,
    states: Mutex<HashMap<String, RecordingState>>,
}

/// One segment file of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// Its size (still growing while the broadcast is live).
    pub bytes: u64,
    /// Its video codec, which decides the container.
    pub codec: VideoCodec,
    /// The Unix time (ms) of its media time zero; `None` for a file written
    /// before this was kept.
    pub started_at: Option<i64>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The bytes of every file under `dir` (none if it does not exist).
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_usage(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Broadcast ids become directory names: only plain characters.
fn is_plain_name(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= 128
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Recordings {
    /// Recordings under `root`, allowed `quota_bytes` in all (what is already
    /// there counts).
    pub fn new(root: PathBuf, quota_bytes: u64) -> Self {
        let used = disk_usage(&root);
        Self {
            inner: Arc::new(Inner {
                quota: DiskQuota::new(quota_bytes, used),
                root,
                states: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The quota all recordings share.
    pub fn quota(&self) -> &DiskQuota {
        &self.inner.quota
    }

    /// The recording state of a broadcast, if it was ever recorded (or switched off) here.
    pub fn state(&self, room: &str) -> Option<RecordingState> {
        if self.inner.root.join(room).join(OFF_MARKER).exists() && is_plain_name(room) {
            return Some(RecordingState::Off);
        }
        self.inner
            .states
            .lock()
            .expect("not poisoned")
            .get(room)
            .cloned()
    }

    fn set_state(&self, room: &str, state: RecordingState) {
        self.inner
            .states
            .lock()
            .expect("not poisoned")
            .insert(room.to_owned(), state);
    }

    /// Switches recording on or off for one broadcast (kept on disk, so it
    /// holds across restarts); it applies from the next time it goes live.
    pub async fn set_enabled(&self, room: &str, enabled: bool) -> std::io::Result<()> {
        if !is_plain_name(room) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a broadcast id",
            ));
        }
        let dir = self.inner.root.join(room);
        if enabled {
            match fs::remove_file(dir.join(OFF_MARKER)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            fs::create_dir_all(&dir).await?;
            fs::write(dir.join(OFF_MARKER), b"").await?;
        }
        Ok(())
    }

    /// Is recording on for this broadcast?
    pub fn enabled(&self, room: &str) -> bool {
        is_plain_name(room) && !self.inner.root.join(room).join(OFF_MARKER).exists()
    }

    /// The segment files of a broadcast, oldest first.
    pub fn segments(&self, room: &str) -> Vec<Segment> {
        if !is_plain_name(room) {
            return Vec::new();
        }
        let mut files = Vec::new();
        let Ok(runs) = std::fs::read_dir(self.inner.root.join(room)) else {
            return files;
        };
        let mut runs: Vec<PathBuf> = runs
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        runs.sort();
        for run in runs {
            let Ok(parts) = std::fs::read_dir(&run) else {
                continue;
            };
            let mut parts: Vec<(u32, Segment)> = parts
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let (stem, ext) = name.strip_prefix("part-")?.split_once('.')?;
                    let codec = [VideoCodec::Vp8, VideoCodec::H264]
                        .into_iter()
                        .find(|c| extension(*c) == ext)?;
                    let index = stem.parse().ok()?;
                    let bytes = e.metadata().ok()?.len();
                    let started_at = std::fs::read_to_string(
                        run.join(format!("part-{index}.{START_EXTENSION}")),
                    )
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                    Some((
                        index,
                        Segment {
                            path: e.path(),
                            bytes,
                            codec,
                            started_at,
                        },
                    ))
                })
                .collect();
            parts.sort_by_key(|(i, _)| *i);
            files.extend(parts.into_iter().map(|(_, s)| s));
        }
        files
    }

    /// Records `room` from `tap` until the room ends or recording fails.
    /// Asks the SFU for keyframes: at the start, after losses, and every
    /// [`KEYFRAME_EVERY`] so the file stays seekable.
    pub async fn record(&self, sfu: sfu::Sfu, room: String, mut tap: sfu::MediaTap) {
        if !is_plain_name(&room) {
            tracing::warn!(
                room,
                "not recording a room whose name is not a broadcast id"
            );
            return;
        }
        if !self.enabled(&room) {
            tracing::info!(broadcast = room, "recording is off for this broadcast");
            return;
        }
        {
            let mut states = self.inner.states.lock().expect("not poisoned");
            if matches!(states.get(&room), Some(RecordingState::Recording { .. })) {
                return;
            }
            states.insert(
                room.clone(),
                RecordingState::Recording {
                    segments: 0,
                    bytes: 0,
                },
            );
        }
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let dir = self.inner.root.join(&room).join(started.to_string());
        let mut writer = Writer {
            quota: &self.inner.quota,
            dir,
            file: None,
            bytes: 0,
        };
        let mut session = Session::new(concat!("fieldcast ", env!("CARGO_PKG_VERSION")));
        metrics::gauge!("fieldcast_recordings_active").increment(1.0);
        sfu.request_keyframe(&room).await;
        let mut last_keyframe_request = Instant::now();
        let mut periodic = tokio::time::interval(KEYFRAME_EVERY);
        periodic.tick().await;
        let mut ops = Vec::new();
        let outcome = loop {
            tokio::select! {
                packet = tap.recv() => {
                    let Some(packet) = packet else { break Ok(()) };
                    session.push(packet, &mut ops);
                }
                _ = periodic.tick() => {
                    sfu.request_keyframe(&room).await;
                    last_keyframe_request = Instant::now();
                    continue;
                }
            }
            if session.take_keyframe_request() && last_keyframe_request.elapsed() >= KEYFRAME_RETRY
            {
                sfu.request_keyframe(&room).await;
                last_keyframe_request = Instant::now();
            }
            if let Err(e) = writer.apply(&mut ops).await {
                break Err(e);
            }
            self.set_state(
                &room,
                RecordingState::Recording {
                    segments: session.segments(),
                    bytes: writer.bytes,
                },
            );
        };
        // Stop taking packets first: the room never waits for a recorder.
        let dropped = tap.dropped();
        drop(tap);
        if dropped > 0 {
            tracing::warn!(
                broadcast = room,
                dropped,
                "the recorder fell behind and lost packets"
            );
            metrics::counter!("fieldcast_recording_dropped_packets_total").increment(dropped);
        }
        ops.clear();
        session.finish(&mut ops);
        // Finishing adds a few KiB (cues) even over the quota: a closed file seeks.
        let finished = writer.apply_unreserved(&mut ops).await;
        metrics::gauge!("fieldcast_recordings_active").decrement(1.0);
        match outcome.and(finished) {
            Ok(()) => self.set_state(
                &room,
                RecordingState::Finished {
                    segments: session.segments(),
                    bytes: writer.bytes,
                },
            ),
            Err(e) => {
                let reason = match e {
                    RecordError::QuotaFull { .. } => "quota",
                    RecordError::Io { .. } => "io",
                };
                metrics::counter!("fieldcast_recordings_stopped_total", "reason" => reason)
                    .increment(1);
                tracing::error!(broadcast = room, error = %e, "recording stopped");
                self.set_state(
                    &room,
                    RecordingState::Stopped {
                        error: e.to_string(),
                    },
                );
            }
        }
    }
}

struct Writer<'a> {
    quota: &'a DiskQuota,
    dir: PathBuf,
    file: Option<(PathBuf, File)>,
    bytes: u64,
}

impl Writer<'_> {
    async fn apply(&mut self, ops: &mut Vec<FileOp>) -> Result<(), RecordError> {
        for op in ops.iter() {
            let len = match op {
                FileOp::Start { header, .. } => header.len(),
                FileOp::Append(bytes) => bytes.len(),
                FileOp::Finish(f) => f.tail.len(),
            };
            self.quota.reserve(len as u64)?;
        }
        self.apply_unreserved(ops).await
    }

    async fn apply_unreserved(&mut self, ops: &mut Vec<FileOp>) -> Result<(), RecordError> {
        for op in ops.drain(..) {
            match op {
                FileOp::Start {
                    index,
                    codec,
                    header,
                    zero,
                } => {
                    fs::create_dir_all(&self.dir)
                        .await
                        .map_err(io_error(&self.dir))?;
                    let started = SystemTime::now()
                        .checked_sub(zero.elapsed())
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_millis())
                        .unwrap_or_default();
                    let start = self.dir.join(format!("part-{index}.{START_EXTENSION}"));
                    fs::write(&start, started.to_string())
                        .await
                        .map_err(io_error(&start))?;
                    let path = self.dir.join(format!("part-{index}.{}", extension(codec)));
                    let mut file = File::create(&path).await.map_err(io_error(&path))?;
                    file.write_all(&header).await.map_err(io_error(&path))?;
                    file.flush().await.map_err(io_error(&path))?;
                    self.bytes += header.len() as u64;
                    self.file = Some((path, file));
                }
                FileOp::Append(bytes) => {
                    let Some((path, file)) = self.file.as_mut() else {
                        continue;
                    };
                    file.write_all(&bytes).await.map_err(io_error(path))?;
                    // Each whole cluster reaches the disk, so a crash keeps it.
                    file.flush().await.map_err(io_error(path))?;
                    self.bytes += bytes.len() as u64;
                }
                FileOp::Finish(finish) => {
                    let Some((path, mut file)) = self.file.take() else {
                        continue;
                    };
                    file.write_all(&finish.tail)
                        .await
                        .map_err(io_error(&path))?;
                    self.bytes += finish.tail.len() as u64;
                    for patch in finish.patches {
                        file.seek(SeekFrom::Start(patch.offset))
                            .await
                            .map_err(io_error(&path))?;
                        file.write_all(&patch.bytes)
                            .await
                            .map_err(io_error(&path))?;
                    }
                    file.sync_all().await.map_err(io_error(&path))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_refuses_what_does_not_fit_and_keeps_what_was_taken() {
        let quota = DiskQuota::new(1000, 900);
        quota.reserve(100).unwrap();
        let err = quota.reserve(1).unwrap_err();
        assert!(matches!(
            err,
            RecordError::QuotaFull {
                used: 1000,
                limit: 1000
            }
        ));
        assert!(err.to_string().contains("the broadcast goes on"));
        assert_eq!(quota.used(), 1000);
    }

    #[tokio::test]
    async fn recording_can_be_switched_off_per_broadcast_and_back_on() {
        let dir = tempfile::tempdir().unwrap();
        let recordings = Recordings::new(dir.path().to_owned(), 1 << 20);
        assert!(recordings.enabled("b1"));
        recordings.set_enabled("b1", false).await.unwrap();
        assert!(!recordings.enabled("b1"));
        assert!(recordings.enabled("b2"), "only that broadcast");
        assert_eq!(recordings.state("b1"), Some(RecordingState::Off));
        let again = Recordings::new(dir.path().to_owned(), 1 << 20);
        assert!(!again.enabled("b1"), "kept across a restart");
        again.set_enabled("b1", true).await.unwrap();
        assert!(again.enabled("b1"));
        assert!(again.set_enabled("../x", false).await.is_err());
    }

    #[test]
    fn segments_are_listed_in_order_with_their_codec_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let recordings = Recordings::new(dir.path().to_owned(), 1 << 20);
        let run = dir.path().join("b1").join("1700000000000");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("part-2.mkv"), b"22").unwrap();
        std::fs::write(run.join("part-1.webm"), b"1").unwrap();
        std::fs::write(run.join("part-1.start"), b"1700000000250").unwrap();
        std::fs::write(run.join("part-3.txt"), b"not media").unwrap();
        let segments = recordings.segments("b1");
        let seen: Vec<_> = segments
            .iter()
            .map(|s| (s.codec, s.bytes, s.started_at))
            .collect();
        assert_eq!(
            seen,
            [
                (VideoCodec::Vp8, 1, Some(1_700_000_000_250)),
                (VideoCodec::H264, 2, None)
            ]
        );
        assert!(recordings.segments("../b1").is_empty());
    }
}
