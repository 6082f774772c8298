//! [`FileSink`]: the disk side of a receiving transfer.

use crate::{DEPTH, hash_exact, pool};
use std::fs::File;
use std::io::{self, Write};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most a [`FileSink`] hands the kernel in one `write`. Linux sizes the
/// page-cache folios of a write by its length, so a 1 MiB write asks for
/// large folios. On the benchmark machine (a VM whose balloon driver
/// reports free memory to the host) those come from memory the host must
/// fault in again: 1 MiB writes into a new file mostly ran at 0.7–1.5 GB/s,
/// 256 KiB writes at 5.5–6 GB/s. Hashing each piece right after writing it
/// also reads it while it is still in the CPU cache.
pub(crate) const WRITE_PIECE: usize = 256 * 1024;

/// The disk side of a receiving transfer: a blocking thread that appends
/// the chunks it is given to a file and hashes them.
///
/// Take a buffer with [`FileSink::buffer`], fill it, hand it over with
/// [`FileSink::write`], and end with [`FileSink::finish`]. At most
/// [`DEPTH`] buffers exist per sink. Dropped without `finish`, the sink
/// lets its thread write (and, if durable, sync) what was already handed
/// over, then end on its own.
pub struct FileSink {
    full: Option<mpsc::Sender<(Vec<u8>, usize)>>,
    free: mpsc::Receiver<Vec<u8>>,
    made: usize,
    thread: JoinHandle<io::Result<blake3::Hash>>,
    _lease: pool::Lease,
}

impl FileSink {
    /// Starts the thread. It first feeds the `prefix` bytes from the file's
    /// current position to `hasher` (a resumed transfer's bytes already on
    /// disk), then appends what it is given there. With `durable`, written
    /// ranges are handed to the disk as the transfer goes (so the final
    /// `fsync` has little left to wait for) and the file is synced at the
    /// end.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn(file: File, prefix: u64, hasher: blake3::Hasher, durable: bool) -> FileSink {
        FileSink::spawn_flushing(file, prefix, hasher, durable, durable)
    }

    /// As [`FileSink::spawn`], with written ranges handed to the disk as
    /// the transfer goes when `flush_behind` (whether or not `durable`):
    /// for a file about to replace another, which the filesystem may write
    /// out whole when it is renamed into place.
    pub fn spawn_flushing(
        mut file: File,
        prefix: u64,
        mut hasher: blake3::Hasher,
        durable: bool,
        flush_behind: bool,
    ) -> FileSink {
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            hash_exact(&mut file, prefix, &mut hasher)?;
            let mut flush = FlushBehind::new(prefix, flush_behind);
            while let Some((buf, n)) = full_rx.blocking_recv() {
                for piece in buf[..n].chunks(WRITE_PIECE) {
                    file.write_all(piece)?;
                    hasher.update(piece);
                }
                flush.wrote(&file, n as u64);
                let _ = free_tx.try_send(buf);
            }
            if durable {
                file.sync_all()?;
            }
            Ok(hasher.finalize())
        });
        FileSink { full: Some(full_tx), free: free_rx, made: 0, thread, _lease: pool::Lease::new() }
    }

    /// A buffer to receive the next chunk into ([`crate::BUFFER_SIZE`]
    /// bytes long when new; it may be grown); `None` once the disk thread
    /// has failed (see [`FileSink::finish`] for why).
    pub async fn buffer(&mut self) -> Option<Vec<u8>> {
        if let Ok(buf) = self.free.try_recv() {
            return Some(buf);
        }
        if self.made < DEPTH {
            self.made += 1;
            return Some(pool::take());
        }
        self.free.recv().await
    }

    /// Hands the first `n` bytes of `buf` to the disk thread. Returns false
    /// once the disk thread has failed.
    pub async fn write(&mut self, buf: Vec<u8>, n: usize) -> bool {
        match &self.full {
            Some(tx) => tx.send((buf, n)).await.is_ok(),
            None => false,
        }
    }

    /// Waits for everything handed over to be written (and synced, if
    /// durable) and returns the hash of the whole file.
    pub async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.full = None;
        (&mut self.thread).await.unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for FileSink {
    /// The buffers the disk thread handed back go to the pool.
    fn drop(&mut self) {
        while let Ok(buf) = self.free.try_recv() {
            pool::give(buf);
        }
    }
}

/// Starts writeback of what a transfer has written every few MiB, so a
/// final fsync (or a rename over another file) waits for the tail only,
/// not the whole file.
struct FlushBehind {
    enabled: bool,
    /// Start of the range not handed to the disk yet.
    from: u64,
    /// End of what was written.
    to: u64,
}

impl FlushBehind {
    const EVERY: u64 = 8 * 1024 * 1024;

    fn new(at: u64, enabled: bool) -> FlushBehind {
        FlushBehind { enabled: enabled && cfg!(target_os = "linux"), from: at, to: at }
    }

    fn wrote(&mut self, file: &File, n: u64) {
        self.to += n;
        if !self.enabled || self.to - self.from < Self::EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain syscall on a descriptor we own; it only starts
            // writeback of the range and reads no memory of ours.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    self.from as libc::off64_t,
                    (self.to - self.from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.from = self.to;
    }
}
