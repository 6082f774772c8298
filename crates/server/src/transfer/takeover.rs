//! Who holds each resumable upload's partial, so that a new attempt at the
//! same upload can take over from one whose client has gone.
//!
//! A holder is told to stop (its [`Holding::stopped`] fires) and the new
//! attempt waits for it to let go ([`Holders::acquire`]): both are
//! signals, nothing polls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a session holding a partial may go without receiving data
/// before a new attempt at the same upload may take the partial over.
pub const STALLED_AFTER: Duration = Duration::from_secs(2);
/// How long a new attempt waits for a holder to let go by itself (one
/// whose connection just dropped does so within moments)...
const GRACE: Duration = Duration::from_millis(500);
/// ...and for a stalled holder to let go once told to stop.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// A user and a target path.
type Key = (String, String);

/// The holders of partials in this daemon.
#[derive(Debug, Default)]
pub struct Holders {
    map: Mutex<HashMap<Key, Holder>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Holder {
    id: u64,
    stop: CancellationToken,
    released: CancellationToken,
    last_data: Arc<Mutex<Instant>>,
}

/// Registration of an upload as its partial's holder, ended on drop.
#[derive(Debug)]
pub struct Holding {
    holders: Arc<Holders>,
    key: Key,
    id: u64,
    last_data: Arc<Mutex<Instant>>,
    stop: CancellationToken,
    released: CancellationToken,
}

impl Holders {
    /// Registers the caller as the holder of `user`'s upload to `path`:
    /// at once if nobody holds it; after the holder lets go, if it does so
    /// within moments or, having received nothing for [`STALLED_AFTER`],
    /// once told to stop. `None` means a live upload is sending the same
    /// file (or would not let go): the caller uploads privately instead.
    pub async fn acquire(self: &Arc<Self>, user: &str, path: &str) -> Option<Holding> {
        let key = (user.to_owned(), path.to_owned());
        for _ in 0..3 {
            let (released, stop, last_data) = {
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                match map.get(&key) {
                    None => {
                        let holding = Holding {
                            holders: self.clone(),
                            key: key.clone(),
                            id: self.next_id.fetch_add(1, Ordering::Relaxed),
                            last_data: Arc::new(Mutex::new(Instant::now())),
                            stop: CancellationToken::new(),
                            released: CancellationToken::new(),
                        };
                        let holder = Holder {
                            id: holding.id,
                            stop: holding.stop.clone(),
                            released: holding.released.clone(),
                            last_data: holding.last_data.clone(),
                        };
                        map.insert(key, holder);
                        return Some(holding);
                    }
                    Some(h) => (h.released.clone(), h.stop.clone(), h.last_data.clone()),
                }
            };
            if tokio::time::timeout(GRACE, released.cancelled()).await.is_ok() {
                continue;
            }
            let idle = last_data.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
            if idle < STALLED_AFTER {
                return None;
            }
            stop.cancel();
            if tokio::time::timeout(TAKEOVER_WAIT, released.cancelled()).await.is_err() {
                return None;
            }
        }
        None
    }
}

impl Holding {
    /// Records that data arrived.
    pub fn touch(&self) {
        *self.last_data.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Fires when a newer attempt takes the upload over.
    pub fn stopped(&self) -> CancellationToken {
        self.stop.clone()
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut map = self.holders.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|h| h.id == self.id) {
            map.remove(&self.key);
        }
        drop(map);
        self.released.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_live_holder_keeps_its_partial_and_a_stalled_one_is_told_to_stop() {
        let holders = Arc::new(Holders::default());
        let first = holders.acquire("u", "/f").await.expect("free");
        // Alive: the new attempt goes private.
        first.touch();
        assert!(holders.acquire("u", "/f").await.is_none());
        // Other paths and users are not held.
        assert!(holders.acquire("u", "/g").await.is_some());
        assert!(holders.acquire("v", "/f").await.is_some());
        // Stalled: told to stop; it lets go when it sees the signal.
        tokio::time::advance(STALLED_AFTER).await;
        let stopped = first.stopped();
        let holder = tokio::spawn(async move {
            stopped.cancelled().await;
            drop(first);
        });
        let second = holders.acquire("u", "/f").await;
        assert!(second.is_some(), "took over");
        holder.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_that_lets_go_within_moments_is_waited_for() {
        let holders = Arc::new(Holders::default());
        let first = holders.acquire("u", "/f").await.unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(first);
        });
        assert!(holders.acquire("u", "/f").await.is_some());
        releaser.await.unwrap();
    }
}
