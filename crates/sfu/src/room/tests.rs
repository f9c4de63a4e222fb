//! The room core on a simulated clock: no sockets, no task, no sleeps.

use super::{Outbox, Output, Room, RoomShared};
use crate::config::SfuConfig;
use crate::{EndReason, RoomStats, SfuError, SfuEvent};
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

struct Harness {
    room: Room,
    events: broadcast::Receiver<SfuEvent>,
    /// Datagrams and closed sessions the core asked for, as (transmits, closed ufrags).
    out: Arc<Mutex<(usize, Vec<String>)>>,
    now: Instant,
}

fn harness(cfg: SfuConfig) -> Harness {
    let shared = Arc::new(RoomShared {
        name: "b1".into(),
        stats: Mutex::new(RoomStats::default()),
        publisher_choice: Mutex::new(None),
        viewer_count: AtomicUsize::new(0),
        pending_viewers: Arc::new(AtomicUsize::new(0)),
        sessions: Mutex::new(HashMap::new()),
        media: Default::default(),
    });
    let (tx, events) = broadcast::channel(64);
    let out = Arc::new(Mutex::new((0, Vec::new())));
    let seen = out.clone();
    let outbox = Outbox::new(move |o| {
        let mut seen = seen.lock().unwrap();
        match o {
            Output::Transmit { .. } => seen.0 += 1,
            Output::Closed { ufrag, .. } => seen.1.push(ufrag.to_owned()),
        }
    });
    let now = Instant::now();
    Harness {
        room: Room::new(Arc::new(cfg), shared, tx, outbox, now),
        events,
        out,
        now,
    }
}

impl Harness {
    /// Advance the clock to `until`, firing every timer the core asks for on the way.
    fn run_until(&mut self, until: Instant) -> Option<EndReason> {
        loop {
            let next = self.room.poll_timeout().max(self.now);
            if next > until {
                self.now = until;
                return None;
            }
            self.now = next;
            if let Some(r) = self.room.handle_timeout(next) {
                return Some(r);
            }
        }
    }
}

#[test]
fn a_room_without_a_publisher_ends_when_the_grace_period_runs_out() {
    let cfg = SfuConfig {
        publisher_grace: Duration::from_secs(10),
        ..SfuConfig::loopback_for_tests()
    };
    let mut h = harness(cfg);
    let t0 = h.now;
    // Well inside the grace period the room waits for its publisher.
    assert_eq!(h.run_until(t0 + Duration::from_secs(9)), None);
    // Past it, the broadcast is over.
    let ended = h.run_until(t0 + Duration::from_secs(11));
    assert_eq!(ended, Some(EndReason::PublisherGone));
    h.room.teardown(EndReason::PublisherGone);
    let mut saw_end = false;
    while let Ok(e) = h.events.try_recv() {
        if let SfuEvent::RoomEnded {
            room,
            reason,
            was_live,
        } = e
        {
            assert_eq!(room, "b1");
            assert_eq!(reason, EndReason::PublisherGone);
            assert!(!was_live, "no media ever flowed");
            saw_end = true;
        }
    }
    assert!(saw_end, "RoomEnded was emitted");
}

#[test]
fn the_core_sleeps_between_ticks_and_sends_nothing_on_its_own() {
    let mut h = harness(SfuConfig::loopback_for_tests());
    let t0 = h.now;
    let mut wakes = 0;
    while h.now < t0 + Duration::from_secs(2) {
        let next = h.room.poll_timeout();
        assert!(next > h.now, "a fired timer is rearmed in the future");
        h.now = next;
        assert_eq!(h.room.handle_timeout(next), None);
        wakes += 1;
    }
    // Tick (250 ms) and sender-report (1 s) timers only: a few wakes a second.
    assert!(wakes <= 12, "{wakes} wakes in 2 s");
    assert_eq!(h.out.lock().unwrap().0, 0, "no peer, no datagram");
}

#[test]
fn control_calls_for_unknown_sessions_are_refused_and_change_nothing() {
    let mut h = harness(SfuConfig::loopback_for_tests());
    let now = h.now;
    assert!(matches!(
        h.room.end_session(42, now),
        Err(SfuError::UnknownSession)
    ));
    assert!(matches!(
        h.room.add_candidates(42, Vec::new()),
        Err(SfuError::UnknownSession)
    ));
    assert!(h.out.lock().unwrap().1.is_empty());
}
