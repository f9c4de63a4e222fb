//! The bounded buffer of room messages a reconnecting client can ask for.
//!
//! Only "log" messages are kept (chat, deletions, hidden authors, clears,
//! sale tickers). State messages (viewer count, offers, settings, pinned
//! message, broadcast state) are not: after a replay the client receives the
//! current state whole, which supersedes whatever state messages it missed.
//! `floor` is the newest sequence number no longer retained; any log message
//! after it is still here, so a client whose last seq is at or above the
//! floor misses nothing by being replayed from the buffer.

use crate::fanout::Frame;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct ReplayBuffer {
    frames: VecDeque<Frame>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    floor: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Log frames after the client's seq, oldest first (maybe none).
    Replay(Vec<Frame>),
    /// Older than what is kept, or from another run of the room.
    TooOld,
}

impl ReplayBuffer {
    /// `start_seq`: the room's seq before its first message.
    pub fn new(start_seq: u64, max_frames: usize, max_bytes: usize) -> ReplayBuffer {
        ReplayBuffer {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
            floor: start_seq,
        }
    }

    pub fn push(&mut self, frame: Frame) {
        self.bytes += frame.text.len();
        self.frames.push_back(frame);
        while self.frames.len() > self.max_frames
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.text.len();
                self.floor = old.seq;
            }
        }
    }

    /// What a client that last saw `after` needs, given the room is at
    /// `current`. `limit` caps the replay (it must fit the client's queue).
    pub fn resume(&self, after: u64, current: u64, limit: usize) -> Resume {
        if after < self.floor || after > current {
            return Resume::TooOld;
        }
        let start = self.frames.partition_point(|f| f.seq <= after);
        if self.frames.len() - start > limit {
            return Resume::TooOld;
        }
        Resume::Replay(self.frames.range(start..).cloned().collect())
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::FrameKind;

    fn frame(seq: u64, len: usize) -> Frame {
        Frame::raw(seq, FrameKind::Log, "x".repeat(len))
    }

    fn seqs(r: Resume) -> Vec<u64> {
        match r {
            Resume::Replay(f) => f.iter().map(|f| f.seq).collect(),
            Resume::TooOld => panic!("too old"),
        }
    }

    #[test]
    fn replays_what_came_after_with_gaps_for_state_messages() {
        let mut b = ReplayBuffer::new(100, 10, 1 << 20);
        for seq in [101, 102, 104, 105] {
            b.push(frame(seq, 10)); // 103 was a state message: not kept
        }
        assert_eq!(seqs(b.resume(100, 106, 100)), vec![101, 102, 104, 105]);
        assert_eq!(seqs(b.resume(102, 106, 100)), vec![104, 105]);
        assert_eq!(seqs(b.resume(103, 106, 100)), vec![104, 105]);
        assert_eq!(
            seqs(b.resume(106, 106, 100)),
            Vec::<u64>::new(),
            "up to date"
        );
        assert_eq!(
            b.resume(99, 106, 100),
            Resume::TooOld,
            "before this room run"
        );
        assert_eq!(
            b.resume(107, 106, 100),
            Resume::TooOld,
            "from the future: another run"
        );
        assert_eq!(
            b.resume(100, 106, 3),
            Resume::TooOld,
            "more than fits the queue"
        );
    }

    #[test]
    fn eviction_by_count_and_bytes_raises_the_floor() {
        let mut b = ReplayBuffer::new(0, 3, 1 << 20);
        for seq in 1..=5 {
            b.push(frame(seq, 10));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.resume(1, 5, 100), Resume::TooOld, "seq 2 was evicted");
        assert_eq!(seqs(b.resume(2, 5, 100)), vec![3, 4, 5]);

        let mut b = ReplayBuffer::new(0, 100, 25);
        for seq in 1..=3 {
            b.push(frame(seq, 10));
        }
        assert_eq!(seqs(b.resume(1, 3, 100)), vec![2, 3], "bytes bound");
    }
}
