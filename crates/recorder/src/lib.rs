//! Recording broadcasts: the SFU's media tap into WebM (VP8) or Matroska
//! (H.264) files with Opus, without transcoding.
//!
//! The sans-I/O parts ([`seq`], [`reorder`], [`frames`], [`webm`],
//! [`session`]) turn tapped RTP packets into file operations; [`disk`] applies
//! them under the data directory, within a disk quota.

pub mod disk;
pub mod frames;
pub mod reorder;
pub mod seq;
pub mod session;
pub mod webm;

pub use disk::{DiskQuota, RecordError, RecordingState, Recordings};
pub use frames::VideoCodec;
