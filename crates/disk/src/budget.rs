//! [`Budget`]: the memory the chunk buffers of all transfers may take
//! together, so that a thousand transfers at once hold no more than a few
//! do.
//!
//! A transfer takes room for a buffer before it fills one (from its socket
//! or its file) and gives it back once the buffer is written out. When
//! there is no room it waits, first come first served, and meanwhile reads
//! nothing: its peer's socket fills up and TCP slows the peer down.
//!
//! No transfer can hold room while waiting for more room in a way that
//! others depend on: a sink waits for room only while the chunk it handed
//! over before (if any) is being written out, which ends without any room;
//! a source waits only when it holds none, and reads ahead only with room
//! that is free at once. So as long as the budget fits one buffer, every
//! transfer eventually gets one, and all make progress. That holds for
//! transfers with one end on the disk and the other on a socket, as in the
//! daemon: a task that relayed from one budgeted end to another (a source's
//! chunk in hand while it waits for a sink's buffer) would need two buffers
//! at once, and with a budget of one, would wait forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The room for the chunk buffers of every transfer that shares it (a
/// cheap handle: clones share the same room). Counted in whole buffers of
/// [`crate::BUFFER_SIZE`] bytes.
#[derive(Clone, Debug)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// `None`: no limit.
    room: Option<Arc<Semaphore>>,
    buffers: usize,
    in_use: AtomicUsize,
    waits: AtomicU64,
}

/// Room for one buffer, taken from a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    _room: Option<OwnedSemaphorePermit>,
    budget: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Budget {
    /// No limit: every buffer asked for is granted at once (a client moving
    /// a file or a few).
    pub fn unlimited() -> Budget {
        Budget::with_room(None, usize::MAX)
    }

    /// Room for `bytes` of buffers: `bytes / BUFFER_SIZE` buffers, and never
    /// fewer than one (every transfer needs one to make progress).
    pub fn new(bytes: u64) -> Budget {
        let buffers = (bytes / crate::BUFFER_SIZE as u64).clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        Budget::with_room(Some(Arc::new(Semaphore::new(buffers))), buffers)
    }

    fn with_room(room: Option<Arc<Semaphore>>, buffers: usize) -> Budget {
        Budget(Arc::new(Inner { room, buffers, in_use: AtomicUsize::new(0), waits: AtomicU64::new(0) }))
    }

    /// The most bytes of buffers in use at once, `None` for no limit.
    pub fn limit(&self) -> Option<u64> {
        self.0.room.as_ref().map(|_| self.0.buffers as u64 * crate::BUFFER_SIZE as u64)
    }

    /// Bytes of buffers in use now.
    pub fn in_use(&self) -> u64 {
        self.0.in_use.load(Ordering::Relaxed) as u64 * crate::BUFFER_SIZE as u64
    }

    /// How many times a transfer had to wait for room, since the start.
    pub fn waits(&self) -> u64 {
        self.0.waits.load(Ordering::Relaxed)
    }

    /// Room for one buffer, waiting (in turn, first come first served) if
    /// there is none now. Cancel-safe: dropping the future leaves its place.
    pub(crate) async fn take(&self) -> Permit {
        if let Some(permit) = self.try_take() {
            return permit;
        }
        let room = self.0.room.as_ref().expect("an unlimited budget always has room");
        self.0.waits.fetch_add(1, Ordering::Relaxed);
        let taken = room.clone().acquire_owned().await.expect("the budget's semaphore is never closed");
        self.granted(Some(taken))
    }

    /// Room for one buffer if there is some now and nobody is waiting for
    /// it.
    pub(crate) fn try_take(&self) -> Option<Permit> {
        match &self.0.room {
            None => Some(self.granted(None)),
            Some(room) => room.clone().try_acquire_owned().ok().map(|p| self.granted(Some(p))),
        }
    }

    fn granted(&self, room: Option<OwnedSemaphorePermit>) -> Permit {
        self.0.in_use.fetch_add(1, Ordering::Relaxed);
        Permit { _room: room, budget: self.0.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_budget_holds_whole_buffers_and_at_least_one() {
        assert_eq!(Budget::new(0).limit(), Some(MIB));
        assert_eq!(Budget::new(MIB + 1).limit(), Some(MIB));
        assert_eq!(Budget::new(64 * MIB).limit(), Some(64 * MIB));
        assert_eq!(Budget::unlimited().limit(), None);
    }

    #[tokio::test]
    async fn room_comes_back_when_a_permit_drops() {
        let budget = Budget::new(2 * MIB);
        let a = budget.take().await;
        let b = budget.try_take().expect("room for two");
        assert_eq!(budget.in_use(), 2 * MIB);
        assert!(budget.try_take().is_none(), "full");
        drop(a);
        assert_eq!(budget.in_use(), MIB);
        let c = budget.try_take().expect("room again");
        drop((b, c));
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.waits(), 0);
    }

    #[tokio::test]
    async fn an_unlimited_budget_never_waits_but_counts() {
        let budget = Budget::unlimited();
        let held: Vec<Permit> = (0..1000).map(|_| budget.try_take().unwrap()).collect();
        assert_eq!(budget.in_use(), 1000 * MIB);
        let _more = budget.take().await;
        drop(held);
        assert_eq!(budget.in_use(), MIB);
        assert_eq!(budget.waits(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_turn_and_none_is_overtaken() {
        let budget = Budget::new(MIB);
        let first = budget.take().await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..5 {
            let (budget, order) = (budget.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let permit = budget.take().await;
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(permit);
            }));
            // Queued in this order.
            tokio::task::yield_now().await;
        }
        // Nobody jumps the queue, not even one that asks without waiting.
        assert!(budget.try_take().is_none());
        drop(first);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(budget.waits(), 5);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_gives_its_turn_away() {
        let budget = Budget::new(MIB);
        let held = budget.take().await;
        let gave_up = tokio::time::timeout(Duration::from_secs(1), budget.take()).await;
        assert!(gave_up.is_err(), "no room while held");
        let next = tokio::spawn({
            let budget = budget.clone();
            async move { drop(budget.take().await) }
        });
        tokio::task::yield_now().await;
        drop(held);
        next.await.unwrap();
        assert_eq!(budget.in_use(), 0);
        assert!(budget.try_take().is_some());
    }
}
