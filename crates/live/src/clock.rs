//! Wall-clock time for the hub, driven by tokio's clock so tests can pause
//! and advance it.

use domain::UnixMillis;
use tokio::time::Instant;

/// `wall_at_start + elapsed tokio time`: with `tokio::time::pause()` the
/// "wall" clock stands still or jumps exactly as the test says.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_at_start: UnixMillis,
    start: Instant,
}

impl Clock {
    pub fn system() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock::starting_at(wall)
    }

    pub fn starting_at(wall_at_start: UnixMillis) -> Clock {
        Clock {
            wall_at_start,
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> UnixMillis {
        self.wall_at_start + self.start.elapsed().as_millis() as i64
    }
}
