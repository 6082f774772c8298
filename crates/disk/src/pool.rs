//! Chunk buffers passed on from one transfer to the next while transfers
//! overlap.
//!
//! Every streamed transfer holds a few [`crate::BUFFER_SIZE`] buffers
//! (see [`crate::DEPTH`]). Allocated fresh each time, their memory comes
//! straight from the kernel, and filling it costs a page fault per 4 KiB:
//! with 200 clients putting and getting at once, faults in those buffers
//! were about a tenth of all CPU time. So a transfer takes its buffers from
//! this pool and gives them back when it ends, and the next transfer reuses
//! them, as long as some transfer is running: when the last one ends, the
//! pool frees everything, so an idle process holds no buffers and one
//! transfer at a time costs what it did without the pool.
//!
//! A buffer may come back holding another user's bytes: whoever takes it
//! reads only what it has filled itself, as within one transfer.

use std::sync::{Mutex, MutexGuard};

/// The size of every pooled buffer.
const SIZE: usize = crate::BUFFER_SIZE;

/// The process's pool.
static POOL: Pool = Pool::new();

/// A buffer of [`SIZE`] bytes: an idle one, or a new one.
pub(crate) fn take() -> Vec<u8> {
    POOL.take()
}

/// Gives a buffer back for another transfer; freed if none is running or
/// if it is not a chunk buffer.
pub(crate) fn give(buf: Vec<u8>) {
    POOL.give(buf)
}

/// Held by each running transfer: while any is held, buffers given back
/// are kept for the others; when the last is dropped, the pool is emptied.
pub(crate) struct Lease(());

impl Lease {
    pub(crate) fn new() -> Lease {
        POOL.begin();
        Lease(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        POOL.end();
    }
}

struct Pool(Mutex<State>);

struct State {
    idle: Vec<Vec<u8>>,
    /// Running transfers (leases held).
    running: usize,
}

impl Pool {
    const fn new() -> Pool {
        Pool(Mutex::new(State { idle: Vec::new(), running: 0 }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The pool holds no invariant a panic could break.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Vec<u8> {
        let idle = self.lock().idle.pop();
        idle.unwrap_or_else(|| vec![0; SIZE])
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.len() == SIZE {
            let mut state = self.lock();
            if state.running > 0 {
                state.idle.push(buf);
                return;
            }
        }
        drop(buf); // outside the lock
    }

    fn begin(&self) {
        self.lock().running += 1;
    }

    fn end(&self) {
        let freed = {
            let mut state = self.lock();
            state.running = state.running.saturating_sub(1);
            if state.running > 0 {
                return;
            }
            std::mem::take(&mut state.idle)
        };
        drop(freed); // outside the lock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_pass_between_overlapping_transfers_and_are_freed_after_the_last() {
        let pool = Pool::new();
        pool.begin();
        pool.begin();
        let bufs: Vec<Vec<u8>> = (0..3).map(|_| pool.take()).collect();
        assert!(bufs.iter().all(|b| b.len() == SIZE && b.iter().all(|&x| x == 0)));
        let last = bufs[2].as_ptr();
        for buf in bufs {
            pool.give(buf);
        }
        pool.give(vec![0; 10]); // not a chunk buffer: freed, not kept
        assert_eq!(pool.lock().idle.len(), 3);

        // The first transfer ends, the second takes a buffer: the same
        // memory, not a new allocation.
        pool.end();
        assert_eq!(pool.lock().idle.len(), 3, "kept while a transfer runs");
        let again = pool.take();
        assert_eq!(again.as_ptr(), last);
        pool.give(again);

        // The last transfer ends: all freed, and nothing is kept after.
        pool.end();
        assert!(pool.lock().idle.is_empty());
        pool.give(vec![0; SIZE]);
        assert!(pool.lock().idle.is_empty());
    }
}
