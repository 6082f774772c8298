//! Chunk buffers recycled from one transfer to the next.
//!
//! Every streamed transfer holds a few [`crate::DEFAULT_CHUNK`] buffers
//! (see [`crate::bulk`]). Allocated fresh each time, their memory comes
//! straight from the kernel, and filling it costs a page fault per 4 KiB:
//! with 200 clients putting and getting at once, faults in those buffers
//! were about a tenth of all CPU time. Transfers take their buffers from
//! this pool and give them back when they end. A buffer may come back
//! holding another user's bytes: whoever takes it reads only what it has
//! filled itself, as within one transfer.
//!
//! The pool keeps what was given back until [`release_idle`] frees the
//! buffers no transfer needed since its previous call. A daemon calls it
//! every few seconds: buffers are reused while a burst of transfers lasts
//! and freed within two periods after it ends. It never holds more than
//! the most buffers that were in use at once.

use std::sync::{Mutex, MutexGuard};

/// The size of every pooled buffer.
const SIZE: usize = crate::DEFAULT_CHUNK;

/// The process's pool.
static POOL: Pool = Pool::new();

/// A buffer of one chunk (`DEFAULT_CHUNK` bytes): an idle one, or a new one.
pub(crate) fn take() -> Vec<u8> {
    POOL.take()
}

/// Gives a buffer back for another transfer; one of another size is freed.
pub(crate) fn give(buf: Vec<u8>) {
    POOL.give(buf)
}

/// Frees the buffers that stayed idle since the previous call and returns
/// how many. Call it periodically (`ftpd` does every 10 seconds).
pub fn release_idle() -> usize {
    POOL.release_idle()
}

struct Pool(Mutex<Idle>);

struct Idle {
    bufs: Vec<Vec<u8>>,
    /// The fewest buffers idle at any moment since the last release: that
    /// many sat unused the whole time.
    low: usize,
}

impl Pool {
    const fn new() -> Pool {
        Pool(Mutex::new(Idle { bufs: Vec::new(), low: 0 }))
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        // The pool holds no invariant a panic could break.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Vec<u8> {
        let mut idle = self.lock();
        match idle.bufs.pop() {
            Some(buf) => {
                idle.low = idle.low.min(idle.bufs.len());
                buf
            }
            None => {
                idle.low = 0;
                drop(idle);
                vec![0; SIZE]
            }
        }
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.len() == SIZE {
            self.lock().bufs.push(buf);
        }
    }

    fn release_idle(&self) -> usize {
        let freed = {
            let mut idle = self.lock();
            let n = idle.low.min(idle.bufs.len());
            let freed: Vec<Vec<u8>> = idle.bufs.drain(..n).collect();
            idle.low = idle.bufs.len();
            freed
        };
        freed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_then_released_after_a_quiet_period() {
        let pool = Pool::new();
        let bufs: Vec<Vec<u8>> = (0..3).map(|_| pool.take()).collect();
        assert!(bufs.iter().all(|b| b.len() == SIZE && b.iter().all(|&x| x == 0)));
        let last = bufs[2].as_ptr();
        for buf in bufs {
            pool.give(buf);
        }
        pool.give(vec![0; 10]); // not a chunk buffer: freed, not kept
        assert_eq!(pool.lock().bufs.len(), 3);
        // All three were in use during this period: none is freed.
        assert_eq!(pool.release_idle(), 0);

        // Taken again: the same memory, not a new allocation.
        let again = pool.take();
        assert_eq!(again.as_ptr(), last);
        pool.give(again);
        // A period in which one buffer was taken: the two never taken go.
        assert_eq!(pool.release_idle(), 2);
        // A quiet period: the last one goes.
        assert_eq!(pool.release_idle(), 1);
        assert_eq!(pool.release_idle(), 0);
        assert!(pool.lock().bufs.is_empty());
    }
}
