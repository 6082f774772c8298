//! [`FileSink`]: the disk side of a receiving transfer.

use crate::budget::{Budget, Permit};
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

/// The disk side of a receiving transfer: appends the chunks it is given to
/// a file and hashes them.
///
/// Take a buffer with [`FileSink::buffer`], fill it, hand it over with
/// [`FileSink::write`], and end with [`FileSink::finish`]. At most
/// [`DEPTH`] buffers exist per sink: one being written while the next is
/// filled. Dropped without `finish`, the sink lets what was handed over be
/// written (and, if durable, the file synced) on its own.
///
/// Two ways to run: [`FileSink::spawn`] gives the transfer a thread of its
/// own (one transfer at a time goes fastest so: a client);
/// [`FileSink::budgeted`] writes each chunk in a task of its own on the
/// blocking pool, with buffers that take room in a [`Budget`] while they
/// are filled and written (many transfers at once: a daemon).
pub struct FileSink(Mode);

enum Mode {
    Thread(Thread),
    Chunks(Chunks),
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
        file: File,
        prefix: u64,
        hasher: blake3::Hasher,
        durable: bool,
        flush_behind: bool,
    ) -> FileSink {
        FileSink(Mode::Thread(Thread::spawn(file, prefix, hasher, durable, flush_behind)))
    }

    /// As [`FileSink::spawn_flushing`], without a thread of its own: each
    /// chunk is written in a task of its own, and each buffer takes room in
    /// `budget` when it is handed out, and gives it back once written.
    pub fn budgeted(
        file: File,
        prefix: u64,
        hasher: blake3::Hasher,
        durable: bool,
        flush_behind: bool,
        budget: Budget,
    ) -> FileSink {
        FileSink(Mode::Chunks(Chunks::start(file, prefix, hasher, durable, flush_behind, budget)))
    }

    /// A buffer to receive the next chunk into ([`crate::BUFFER_SIZE`]
    /// bytes long when new; it may be grown), once the budget, if any, has
    /// room for it; `None` once writing has failed (see
    /// [`FileSink::finish`] for why). Cancel-safe.
    pub async fn buffer(&mut self) -> Option<Vec<u8>> {
        match &mut self.0 {
            Mode::Thread(sink) => sink.buffer().await,
            Mode::Chunks(sink) => sink.buffer().await,
        }
    }

    /// Hands the first `n` bytes of `buf` over to be written. Returns false
    /// once writing has failed.
    pub async fn write(&mut self, buf: Vec<u8>, n: usize) -> bool {
        match &mut self.0 {
            Mode::Thread(sink) => sink.write(buf, n).await,
            Mode::Chunks(sink) => sink.write(buf, n).await,
        }
    }

    /// Waits for everything handed over to be written (and synced, if
    /// durable) and returns the hash of the whole file.
    pub async fn finish(self) -> io::Result<blake3::Hash> {
        match self.0 {
            Mode::Thread(sink) => sink.finish().await,
            Mode::Chunks(sink) => sink.finish().await,
        }
    }
}

/// A sink on a thread of its own for the whole transfer: the fastest for
/// one transfer (a client's), but a thread per transfer, and a buffer per
/// transfer that no budget bounds.
///
/// Take a buffer with [`FileSink::buffer`], fill it, hand it over with
/// [`FileSink::write`], and end with [`FileSink::finish`]. At most
/// [`DEPTH`] buffers exist per sink. Dropped without `finish`, the sink
/// lets its thread write (and, if durable, sync) what was already handed
/// over, then end on its own.
struct Thread {
    full: Option<mpsc::Sender<(Vec<u8>, usize)>>,
    free: mpsc::Receiver<Vec<u8>>,
    made: usize,
    thread: JoinHandle<io::Result<blake3::Hash>>,
    _lease: pool::Lease,
}

impl Thread {
    /// As [`FileSink::spawn`], with written ranges handed to the disk as
    /// the transfer goes when `flush_behind` (whether or not `durable`):
    /// for a file about to replace another, which the filesystem may write
    /// out whole when it is renamed into place.
    fn spawn(mut file: File, prefix: u64, mut hasher: blake3::Hasher, durable: bool, flush_behind: bool) -> Thread {
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            hash_exact(&mut file, prefix, &mut hasher)?;
            let mut disk = Disk { file, hasher, flush: FlushBehind::new(prefix, flush_behind) };
            while let Some((buf, n)) = full_rx.blocking_recv() {
                write_chunk(&mut disk, &buf[..n])?;
                let _ = free_tx.try_send(buf);
            }
            if durable {
                disk.file.sync_all()?;
            }
            Ok(disk.hasher.finalize())
        });
        Thread { full: Some(full_tx), free: free_rx, made: 0, thread, _lease: pool::Lease::new() }
    }

    /// A buffer to receive the next chunk into ([`crate::BUFFER_SIZE`]
    /// bytes long when new; it may be grown); `None` once the disk thread
    /// has failed (see [`FileSink::finish`] for why).
    async fn buffer(&mut self) -> Option<Vec<u8>> {
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
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> bool {
        match &self.full {
            Some(tx) => tx.send((buf, n)).await.is_ok(),
            None => false,
        }
    }

    /// Waits for everything handed over to be written (and synced, if
    /// durable) and returns the hash of the whole file.
    async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.full = None;
        (&mut self.thread).await.unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for Thread {
    /// The buffers the disk thread handed back go to the pool.
    fn drop(&mut self) {
        while let Ok(buf) = self.free.try_recv() {
            pool::give(buf);
        }
    }
}

/// A sink that writes each chunk in a task of its own on the blocking pool
/// (no thread waits on a transfer between chunks), its buffers taken from a
/// budget: for a daemon with many transfers at once.
struct Chunks {
    /// The file and its hash between chunks; `None` while a chunk is being
    /// written (then in `writing`) or once writing failed.
    disk: Option<Box<Disk>>,
    /// The chunk being written (first: the prefix being hashed).
    writing: Option<JoinHandle<io::Result<Box<Disk>>>>,
    /// Why writing failed, until [`FileSink::finish`] reports it.
    failed: Option<io::Error>,
    durable: bool,
    budget: Budget,
    /// The room of the buffer handed out and not written yet.
    lent: Option<Permit>,
    _lease: pool::Lease,
}

/// What the chunks of a sink go through, in turn (for a budgeted sink,
/// boxed: a hasher is large, and moves to the blocking pool and back with
/// every chunk).
struct Disk {
    file: File,
    hasher: blake3::Hasher,
    flush: FlushBehind,
}

impl Chunks {
    fn start(
        mut file: File,
        prefix: u64,
        mut hasher: blake3::Hasher,
        durable: bool,
        flush_behind: bool,
        budget: Budget,
    ) -> Chunks {
        let writing = tokio::task::spawn_blocking(move || {
            hash_exact(&mut file, prefix, &mut hasher)?;
            Ok(Box::new(Disk { file, hasher, flush: FlushBehind::new(prefix, flush_behind) }))
        });
        Chunks {
            disk: None,
            writing: Some(writing),
            failed: None,
            durable,
            budget,
            lent: None,
            _lease: pool::Lease::new(),
        }
    }

    /// A buffer to receive the next chunk into ([`crate::BUFFER_SIZE`]
    /// bytes long; it may be grown), once the budget has room for it;
    /// `None` once writing has failed (see [`FileSink::finish`] for why).
    /// Cancel-safe.
    async fn buffer(&mut self) -> Option<Vec<u8>> {
        if self.failed.is_some() {
            return None;
        }
        if self.lent.is_none() {
            // The chunk before may still be being written: that ends on
            // its own, so waiting for room meanwhile blocks nobody.
            self.lent = Some(self.budget.take().await);
        }
        Some(pool::take())
    }

    /// Hands the first `n` bytes of `buf` over to be written, once the
    /// chunk before is written. Returns false once writing has failed.
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> bool {
        let room = self.lent.take();
        let Some(mut disk) = self.settle().await else {
            pool::give(buf);
            return false;
        };
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let written = write_chunk(&mut disk, &buf[..n]);
            pool::give(buf);
            drop(room);
            written.map(|()| disk)
        }));
        true
    }

    /// Waits for the chunk being written, if any: the file and hash to go
    /// on with, or `None` once writing failed. Cancel-safe: the write stays
    /// under way.
    async fn settle(&mut self) -> Option<Box<Disk>> {
        if let Some(writing) = self.writing.as_mut() {
            let result = writing.await.unwrap_or_else(|e| Err(io::Error::other(e)));
            self.writing = None;
            match result {
                Ok(disk) => self.disk = Some(disk),
                Err(e) => self.failed = Some(e),
            }
        }
        self.disk.take()
    }

    /// Waits for everything handed over to be written (and synced, if
    /// durable) and returns the hash of the whole file.
    async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.lent = None;
        let Some(disk) = self.settle().await else {
            return Err(self.failed.take().unwrap_or_else(|| io::Error::other("the sink failed")));
        };
        if !self.durable {
            return Ok(disk.hasher.finalize());
        }
        tokio::task::spawn_blocking(move || {
            disk.file.sync_all()?;
            Ok(disk.hasher.finalize())
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

/// Appends one chunk, hashing each piece right after writing it.
fn write_chunk(disk: &mut Disk, chunk: &[u8]) -> io::Result<()> {
    for piece in chunk.chunks(WRITE_PIECE) {
        disk.file.write_all(piece)?;
        disk.hasher.update(piece);
    }
    disk.flush.wrote(&disk.file, chunk.len() as u64);
    Ok(())
}

impl Drop for Chunks {
    /// The chunk handed over last is still written; a durable file is then
    /// synced, in the background.
    fn drop(&mut self) {
        if !self.durable {
            return; // a write in progress goes on by itself
        }
        let (writing, disk) = (self.writing.take(), self.disk.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let disk = match writing {
                Some(writing) => writing.await.ok().and_then(Result::ok),
                None => disk,
            };
            if let Some(disk) = disk {
                let _ = tokio::task::spawn_blocking(move || disk.file.sync_all()).await;
            }
        });
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
