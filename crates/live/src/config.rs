//! Tunables of the live channel, with defaults meant for a modest machine
//! and phones on rural 4G.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Messages in a joining viewer's history.
    pub history_len: usize,
    /// Messages kept in memory per room, so moderators can delete or pin
    /// what viewers still see.
    pub recent_capacity: usize,
    /// Room messages kept for reconnecting clients (by count and bytes).
    pub replay_capacity: usize,
    pub replay_max_bytes: usize,
    /// Frames queued per connection before chat is dropped for it. At least
    /// `replay_capacity + 8` (raised if smaller) so a resume always fits.
    pub outbox_capacity: usize,
    /// A connection that cannot take new frames for this long is closed
    /// with 4002 `too_slow`.
    pub stall_timeout: Duration,
    pub ping_interval: Duration,
    /// Nothing received (not even a pong) for this long closes with 4003.
    pub idle_timeout: Duration,
    /// How long a closing connection gets to take its close frame.
    pub close_grace: Duration,
    /// Largest text frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// More malformed frames than this within `bad_frame_window` close 4004.
    pub max_bad_frames: u32,
    pub bad_frame_window: Duration,
    /// Per person per room: `chat_burst` messages at once, then
    /// `chat_per_minute` sustained. Applies to everyone, on top of slow mode.
    pub chat_burst: u32,
    pub chat_per_minute: u32,
    /// `flood_strikes` rate-limit refusals within `flood_window` mute the
    /// sender for `flood_mute`.
    pub flood_strikes: u32,
    pub flood_window: Duration,
    pub flood_mute: Duration,
    /// Coalescing: at most one viewer count, one card per offer, one sale
    /// ticker per interval.
    pub viewers_interval: Duration,
    pub offer_interval: Duration,
    pub sale_interval: Duration,
    pub max_pinned_offers: usize,
    /// `buy` commands one connection may have in flight.
    pub buys_in_flight: usize,
    pub buy_timeout: Duration,
    /// Room housekeeping (coalesced state, lagging connections).
    pub tick: Duration,
    /// An empty room closes (its state is in the database) after this long.
    pub room_idle_close: Duration,
    /// Writes per database transaction, and writes queued before new ones
    /// are dropped (logged) rather than slowing the room.
    pub persist_batch: usize,
    pub persist_queue: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            history_len: 50,
            recent_capacity: 500,
            replay_capacity: 256,
            replay_max_bytes: 1 << 20,
            outbox_capacity: 512,
            stall_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            close_grace: Duration::from_secs(5),
            max_frame_bytes: 4096,
            max_bad_frames: 10,
            bad_frame_window: Duration::from_secs(60),
            chat_burst: 5,
            chat_per_minute: 20,
            flood_strikes: 5,
            flood_window: Duration::from_secs(30),
            flood_mute: Duration::from_secs(60),
            viewers_interval: Duration::from_secs(1),
            offer_interval: Duration::from_secs(1),
            sale_interval: Duration::from_millis(500),
            max_pinned_offers: 3,
            buys_in_flight: 2,
            buy_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(100),
            room_idle_close: Duration::from_secs(60),
            persist_batch: 256,
            persist_queue: 65_536,
        }
    }
}

impl LiveConfig {
    /// Fixes combinations that cannot work rather than failing at run time.
    pub(crate) fn normalized(mut self) -> LiveConfig {
        self.history_len = self.history_len.max(1);
        self.recent_capacity = self.recent_capacity.max(self.history_len);
        self.replay_capacity = self.replay_capacity.max(1);
        self.outbox_capacity = self.outbox_capacity.max(self.replay_capacity + 8);
        self.max_pinned_offers = self.max_pinned_offers.max(1);
        self.buys_in_flight = self.buys_in_flight.max(1);
        self.persist_batch = self.persist_batch.max(1);
        self.persist_queue = self.persist_queue.max(self.persist_batch);
        self
    }

    /// Limits for axum's upgrade: a message cap a little above
    /// `max_frame_bytes` (so an oversized frame reaches the hub, which
    /// answers with an error instead of a dropped connection) and a small
    /// write buffer so a stalled phone holds little memory.
    pub fn max_ws_message_bytes(&self) -> usize {
        (self.max_frame_bytes * 4).max(16 * 1024)
    }
}
