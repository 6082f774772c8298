//! Bandwidth caps: token buckets that transfers draw from, a chunk at a
//! time, and wait on (a timer, never a loop) when they run dry.
//!
//! A bucket holds up to a quarter of a second of its rate
//! ([`ftp_proto::pace`] has the arithmetic, which ftpc shares). Drawing
//! more than it holds goes into debt, and the drawer sleeps until the debt
//! is paid at the bucket's rate (bytes are paid for before they go); the
//! next drawer queues behind that debt.
//! So transfers sharing a bucket (one user's sessions, or every transfer
//! under the daemon's cap) share its rate, each moving in whole chunks.

use crate::metrics::Seconds;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// One cap, shared by every transfer that draws from it.
#[derive(Debug)]
pub struct Bucket {
    rate: u64,
    /// When the tokens drawn so far are all paid for; earlier than now
    /// by up to [`BURST`] when the bucket holds tokens.
    paid_until: Mutex<Instant>,
}

impl Bucket {
    /// A full bucket of `rate` bytes per second (at least
    /// [`ftp_proto::pace::MIN_RATE`]).
    pub fn new(rate: u64) -> Arc<Bucket> {
        // A hand-written users file may say less than `ftpd user set` takes.
        let rate = rate.max(ftp_proto::pace::MIN_RATE);
        Arc::new(Bucket { rate, paid_until: Mutex::new(Instant::now() - ftp_proto::pace::BURST) })
    }

    /// Its rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Draws `n` bytes; returns when they may go.
    fn draw(&self, n: usize, now: Instant) -> Instant {
        let mut paid_until = self.paid_until.lock().unwrap_or_else(|p| p.into_inner());
        ftp_proto::pace::draw(&mut *paid_until, now, n, self.rate)
    }
}

/// The caps one transfer goes under: its user's and the daemon's, in
/// one direction, and where the time spent waiting on them is counted.
/// No buckets: no cap.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    buckets: Vec<Arc<Bucket>>,
    waited: Option<Seconds>,
}

impl Pace {
    /// A transfer under `buckets`, its waits added to `waited`.
    pub fn new(buckets: impl IntoIterator<Item = Arc<Bucket>>, waited: Option<Seconds>) -> Pace {
        Pace { buckets: buckets.into_iter().collect(), waited }
    }

    /// Waits until `n` more bytes may go (at once when no cap applies).
    pub async fn take(&self, n: usize) {
        if self.buckets.is_empty() || n == 0 {
            return;
        }
        let now = Instant::now();
        let until = self.buckets.iter().map(|b| b.draw(n, now)).max().unwrap_or(now);
        if until > now {
            tokio::time::sleep_until(until).await;
            if let Some(waited) = &self.waited {
                waited.inc_by((until - now).as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_paces_what_is_drawn_from_it_and_shares_it() {
        let bucket = Bucket::new(1 << 20);
        let waited = Seconds::default();
        let pace = Pace::new([bucket.clone()], Some(waited.clone()));
        let start = Instant::now();
        // A full bucket lets a quarter second's worth go at once...
        pace.take(256 << 10).await;
        assert_eq!(Instant::now(), start);
        // ... then 4 MiB in 1 MiB chunks takes 4 s (the clock is paused:
        // virtual time, exact).
        for _ in 0..4 {
            pace.take(1 << 20).await;
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(4));
        assert_eq!(waited.get(), 4.0);
        // Two transfers drawing from it at once share the rate: 2 MiB
        // each is 4 s for both together.
        let other = pace.clone();
        let started = Instant::now();
        let one = tokio::spawn(async move {
            for _ in 0..8 {
                other.take(256 << 10).await;
            }
        });
        for _ in 0..8 {
            pace.take(256 << 10).await;
        }
        one.await.unwrap();
        assert_eq!(Instant::now() - started, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_cap_wins() {
        let (slow, fast) = (Bucket::new(1 << 20), Bucket::new(8 << 20));
        let pace = Pace::new([fast, slow], None);
        let start = Instant::now();
        pace.take(256 << 10).await;
        pace.take(2 << 20).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        // No cap: nothing waits.
        Pace::default().take(1 << 30).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }
}
