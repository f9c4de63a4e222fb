//! One monotonic clock for the whole generator: publisher send times inside
//! payloads, chat send times inside messages and receive times are all
//! microseconds since the same instant, so one-way delays need no
//! synchronized wall clocks (sender and receivers are in this process).

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Microseconds since the generator's clock started.
pub fn now_us() -> u64 {
    base().elapsed().as_micros() as u64
}

/// Microseconds since the UNIX epoch (the clock the kernel stamps received
/// datagrams with).
pub fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `t` on the generator's clock, in microseconds (0 if before it started).
pub fn at_us(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_now_agree() {
        let a = now_us();
        let t = Instant::now();
        let b = now_us();
        assert!(a <= at_us(t) && at_us(t) <= b);
    }
}
