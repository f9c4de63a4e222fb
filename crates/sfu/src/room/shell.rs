//! The task that drives a [`Room`]: its mailbox, its timer, the real clock, and the
//! sockets its outputs go to.

use super::{Outbox, Output, Room, RoomMsg, RoomShared};
use crate::config::SfuConfig;
use crate::net::Net;
use crate::{EndReason, SfuEvent};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::{broadcast, mpsc};

/// Messages handled before the room looks at its timers again: a burst of media
/// is decrypted whole and fanned out in batches.
const DRAIN_AT_ONCE: usize = 256;

/// A room core whose outputs go to `net`.
pub(crate) fn new_room(
    cfg: Arc<SfuConfig>,
    net: Arc<Net>,
    shared: Arc<RoomShared>,
    events: broadcast::Sender<SfuEvent>,
) -> Room {
    let me = shared.clone();
    let out = Outbox::new(move |o| match o {
        Output::Transmit {
            sockets,
            transport,
            data,
        } => {
            if !net.send(sockets, &transport, data) {
                me.media.send_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
        Output::Closed { session, ufrag } => net.forget(ufrag, session),
    });
    Room::new(cfg, shared, events, out, Instant::now())
}

/// Run the room until it ends; returns why.
pub(crate) async fn run(mut room: Room, mut rx: mpsc::Receiver<RoomMsg>) -> EndReason {
    let shared = room.shared.clone();
    let media = &shared.media;
    let reason = loop {
        let deadline = room.poll_timeout();
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::time::sleep_until(deadline.into()) => {
                let started = Instant::now();
                let ended = room.handle_timeout(started);
                media.busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if let Some(r) = ended { break r; }
                continue;
            }
        };
        let Some(msg) = msg else {
            break EndReason::Shutdown;
        };
        let started = Instant::now();
        let depth = rx.len() as u64;
        media.queue_depth.store(depth, Ordering::Relaxed);
        media.queue_depth_max.fetch_max(depth, Ordering::Relaxed);
        let mut ended = handle(&mut room, msg);
        // Drain what is queued before looking at timers again (batching).
        for _ in 0..DRAIN_AT_ONCE {
            if ended.is_some() {
                break;
            }
            match rx.try_recv() {
                Ok(m) => ended = handle(&mut room, m),
                Err(_) => break,
            }
        }
        if ended.is_none() {
            // Everything queued is decrypted: send it on before waiting again.
            room.flush_media();
            let now = Instant::now();
            if now >= room.poll_timeout() {
                ended = room.handle_timeout(now);
            }
        }
        media
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if let Some(r) = ended {
            break r;
        }
    };
    room.teardown(reason);
    reason
}

fn handle(room: &mut Room, msg: RoomMsg) -> Option<EndReason> {
    match msg {
        RoomMsg::Net {
            session,
            transport,
            data,
            at,
        } => room.handle_datagram(session, transport, data, at),
        RoomMsg::AddPublisher(p) => room.add_publisher(*p, Instant::now()),
        RoomMsg::AddViewer(p, legs, reply) => {
            let _ = reply.send(room.add_viewer(*p, *legs, Instant::now()));
        }
        RoomMsg::Candidates {
            session,
            candidates,
            reply,
        } => {
            let _ = reply.send(room.add_candidates(session, candidates));
        }
        RoomMsg::End { session, reply } => {
            let _ = reply.send(room.end_session(session, Instant::now()));
        }
        RoomMsg::Close(reason) => {
            room.flush_media();
            return Some(reason);
        }
        RoomMsg::AddTap(tap) => room.add_tap(tap),
        RoomMsg::RequestKeyframe => room.request_video_keyframes(Instant::now()),
    }
    None
}
