//! The arithmetic of a bandwidth cap, shared by the server (which
//! enforces caps) and the client (which sends no faster than the cap the
//! server announced at login, so its progress shows the real rate).
//!
//! A cap is a token bucket holding [`BURST`] worth of its rate, kept as
//! one instant: when everything drawn so far is paid for at the rate.
//! Bytes are paid for before they go.

use std::ops::{Add, Sub};
use std::time::Duration;

/// The lowest cap a server takes, bytes per second: at it a chunk of
/// [`crate::DEFAULT_CHUNK`] goes in 16 s, well within every timeout.
pub const MIN_RATE: u64 = 64 << 10;

/// How much a full bucket holds, in time at its rate.
pub const BURST: Duration = Duration::from_millis(250);

/// Draws `n` bytes at `now` from a bucket of `rate` bytes per second
/// (at least 1) whose draws are paid until `paid_until`; returns when
/// they may go (`now` or earlier: at once). A bucket left alone refills
/// up to [`BURST`], no more.
pub fn draw<I>(paid_until: &mut I, now: I, n: usize, rate: u64) -> I
where
    I: Copy + Ord + Add<Duration, Output = I> + Sub<Duration, Output = I>,
{
    let cost = Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
    let start = (*paid_until).max(now - BURST);
    *paid_until = start + cost;
    *paid_until
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_full_bucket_lets_a_quarter_second_go_then_charges_the_rate() {
        let t0 = Instant::now();
        let mut paid = t0 - BURST;
        assert_eq!(draw(&mut paid, t0, 256 << 10, 1 << 20), t0);
        assert_eq!(draw(&mut paid, t0, 1 << 20, 1 << 20), t0 + Duration::from_secs(1));
        // Left alone for a minute, it holds a quarter second again, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(draw(&mut paid, later, 512 << 10, 1 << 20), later + Duration::from_millis(250));
    }
}
