//! [`FileSource`]: the disk side of a sending transfer.

use crate::budget::{Budget, Permit};
use crate::{DEPTH, hash_exact, pool, shrank};
use std::fs::File;
use std::io::{self, Read as _, Seek, SeekFrom};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The disk side of a sending transfer: reads a file in chunks and hashes
/// them.
///
/// Take chunks with [`FileSource::next`], give each buffer back with
/// [`FileSource::recycle`] once sent (before asking for the next), and end
/// with [`FileSource::finish`]. At most [`DEPTH`] buffers exist per source:
/// the chunk being sent, and the next one read meanwhile. Dropping the
/// source cancels the transfer.
///
/// Two ways to run: [`FileSource::spawn`] gives the transfer a thread of
/// its own (one transfer at a time goes fastest so: a client);
/// [`FileSource::budgeted`] reads each chunk in a task of its own on the
/// blocking pool, with buffers that take room in a [`Budget`] (many
/// transfers at once: a daemon).
pub struct FileSource(Mode);

enum Mode {
    Thread(Thread),
    Chunks(Chunks),
}

impl FileSource {
    /// Starts the thread. It first feeds the `prefix` bytes from the file's
    /// current position to `hasher` without sending them (what the other
    /// side already holds), then reads the next `len` bytes in chunks of at
    /// most `chunk` ([`crate::BUFFER_SIZE`] fills the pooled buffers
    /// exactly). A file that ends sooner is an error.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn(file: File, prefix: u64, len: u64, hasher: blake3::Hasher, chunk: usize) -> FileSource {
        FileSource(Mode::Thread(Thread::spawn(file, prefix, len, hasher, chunk)))
    }

    /// As [`FileSource::spawn`], without a thread of its own: each chunk is
    /// read in a task of its own into a buffer that takes room in `budget`
    /// until it is recycled. The source waits for room only while it holds
    /// none, and reads the next chunk ahead only with room free at once.
    /// With [`Hashing::Known`], the prefix is skipped, not read, nothing is
    /// hashed, and [`FileSource::finish`] returns that hash.
    pub fn budgeted(file: File, prefix: u64, len: u64, hashing: Hashing, chunk: usize, budget: Budget) -> FileSource {
        FileSource(Mode::Chunks(Chunks::start(file, prefix, len, hashing, chunk, budget)))
    }

    /// The next chunk: a buffer whose first `n` bytes are the data. `None`
    /// when the file is done or reading failed ([`FileSource::finish`]
    /// tells which). Hand the buffer back with [`FileSource::recycle`].
    pub async fn next(&mut self) -> Option<(Vec<u8>, usize)> {
        match &mut self.0 {
            Mode::Thread(source) => source.next().await,
            Mode::Chunks(source) => source.next().await,
        }
    }

    /// Returns a buffer once its bytes are sent (with its room, if any).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        match &mut self.0 {
            Mode::Thread(source) => source.recycle(buf),
            Mode::Chunks(source) => source.recycle(buf),
        }
    }

    /// The hash of the whole file (prefix included), or why reading failed
    /// (or that it was not all taken).
    pub async fn finish(self) -> io::Result<blake3::Hash> {
        match self.0 {
            Mode::Thread(source) => source.finish().await,
            Mode::Chunks(source) => source.finish().await,
        }
    }
}

/// A source on a thread of its own for the whole transfer: the fastest for
/// one transfer (a client's), but a thread per transfer, and buffers that no
/// budget bounds.
///
/// Take chunks with [`FileSource::next`], give each buffer back with
/// [`FileSource::recycle`] once sent, and end with [`FileSource::finish`].
/// At most [`DEPTH`] buffers exist per source; dropping the source cancels
/// the transfer (the thread stops at its next chunk).
struct Thread {
    full: mpsc::Receiver<(Vec<u8>, usize)>,
    free: mpsc::Sender<Vec<u8>>,
    thread: JoinHandle<io::Result<blake3::Hash>>,
    _lease: pool::Lease,
}

impl Thread {
    fn spawn(file: File, prefix: u64, len: u64, hasher: blake3::Hasher, chunk: usize) -> Thread {
        let (full_tx, full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            let mut disk = Disk::open(file, prefix, len, Hashing::Hash(hasher))?;
            let mut made = 0;
            while disk.left > 0 {
                let want = disk.left.min(chunk as u64) as usize;
                let mut buf = match free_rx.try_recv() {
                    Ok(buf) => buf,
                    Err(_) if made < DEPTH => {
                        made += 1;
                        pool::take()
                    }
                    Err(_) => match free_rx.blocking_recv() {
                        Some(buf) => buf,
                        None => return Err(io::Error::other("transfer cancelled")),
                    },
                };
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                disk.read(&mut buf[..want])?;
                if full_tx.blocking_send((buf, want)).is_err() {
                    return Err(io::Error::other("transfer cancelled"));
                }
            }
            while let Ok(buf) = free_rx.try_recv() {
                pool::give(buf);
            }
            Ok(disk.hashing.finish())
        });
        Thread { full: full_rx, free: free_tx, thread, _lease: pool::Lease::new() }
    }

    /// The next chunk: a buffer whose first `n` bytes are the data. `None`
    /// when the file is done or the thread failed ([`FileSource::finish`]
    /// tells which). Hand the buffer back with [`FileSource::recycle`].
    async fn next(&mut self) -> Option<(Vec<u8>, usize)> {
        self.full.recv().await
    }

    /// Returns a buffer for the thread to fill again (to the pool once the
    /// thread has read the whole file).
    fn recycle(&self, buf: Vec<u8>) {
        if let Err(e) = self.free.try_send(buf) {
            pool::give(e.into_inner());
        }
    }

    /// The hash of the whole file (prefix included), or why reading failed.
    async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.full.close();
        (&mut self.thread).await.unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for Thread {
    /// Chunks read but not sent go back to the pool.
    fn drop(&mut self) {
        while let Ok((buf, _)) = self.full.try_recv() {
            pool::give(buf);
        }
    }
}

/// A source that reads each chunk in a task of its own on the blocking pool
/// (no thread waits on a transfer between chunks), its buffers taken from a
/// budget: for a daemon with many transfers at once.
struct Chunks {
    /// The file, its hash and what is left to read, between chunks;
    /// `None` while a chunk is being read (then in `reading`) or once
    /// reading failed.
    disk: Option<Box<Disk>>,
    /// The chunk being read ahead (first: the prefix being hashed).
    reading: Option<JoinHandle<io::Result<Read>>>,
    /// Why reading failed, until [`FileSource::finish`] reports it.
    failed: Option<io::Error>,
    chunk: usize,
    budget: Budget,
    /// The room of the chunk handed out and not recycled yet.
    lent: Option<Permit>,
    _lease: pool::Lease,
}

/// How a budgeted source comes by the file's hash.
#[allow(clippy::large_enum_variant)] // boxed in `Disk`
pub enum Hashing {
    /// Hashing what it reads, after the prefix (this hasher).
    Hash(blake3::Hasher),
    /// Known before reading (recorded for this version of the file).
    Known(blake3::Hash),
}

impl Hashing {
    /// The hash of the whole file.
    fn finish(self) -> blake3::Hash {
        match self {
            Hashing::Hash(hasher) => hasher.finalize(),
            Hashing::Known(hash) => hash,
        }
    }
}

/// What the chunks of a source come from, in turn (for a budgeted source,
/// boxed: a hasher is large, and moves to the blocking pool and back with
/// every chunk).
struct Disk {
    file: File,
    hashing: Hashing,
    /// Bytes still to read.
    left: u64,
}

impl Disk {
    /// Gets past the `prefix` bytes from the file's current position:
    /// hashed when hashing, skipped when the hash is known.
    fn open(mut file: File, prefix: u64, len: u64, mut hashing: Hashing) -> io::Result<Disk> {
        match &mut hashing {
            Hashing::Hash(hasher) => hash_exact(&mut file, prefix, hasher)?,
            Hashing::Known(_) => {
                file.seek(SeekFrom::Current(i64::try_from(prefix).map_err(io::Error::other)?))?;
            }
        }
        Ok(Disk { file, hashing, left: len })
    }

    /// Reads the next `buf.len()` bytes, hashing them unless the hash is
    /// known. A file that ends sooner is an error.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact(buf).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { shrank() } else { e })?;
        if let Hashing::Hash(hasher) = &mut self.hashing {
            hasher.update(buf);
        }
        self.left -= buf.len() as u64;
        Ok(())
    }
}

/// A chunk read: its buffer, the bytes it holds, and its room.
type Chunk = (Vec<u8>, usize, Permit);

/// What a read under way gives back: the file to go on with, and the chunk
/// read (none after the prefix).
type Read = (Box<Disk>, Option<Chunk>);

impl Chunks {
    fn start(file: File, prefix: u64, len: u64, hashing: Hashing, chunk: usize, budget: Budget) -> Chunks {
        let reading =
            tokio::task::spawn_blocking(move || Ok((Box::new(Disk::open(file, prefix, len, hashing)?), None)));
        Chunks {
            disk: None,
            reading: Some(reading),
            failed: None,
            chunk: chunk.max(1),
            budget,
            lent: None,
            _lease: pool::Lease::new(),
        }
    }

    /// The next chunk: a buffer whose first `n` bytes are the data. `None`
    /// when the file is done or reading failed ([`FileSource::finish`]
    /// tells which). Hand the buffer back with [`FileSource::recycle`]
    /// before asking for the next: then this waits for room in the budget
    /// only while the source holds none. Cancel-safe.
    async fn next(&mut self) -> Option<(Vec<u8>, usize)> {
        loop {
            if self.reading.is_none() {
                // Nothing read ahead: read the next chunk now.
                if self.disk.as_ref()?.left == 0 {
                    return None;
                }
                let room = self.budget.take().await;
                let (mut disk, chunk) = (self.disk.take()?, self.chunk);
                self.reading = Some(tokio::task::spawn_blocking(move || {
                    read_chunk(&mut disk, chunk, room).map(|read| (disk, Some(read)))
                }));
            }
            let (disk, read) = self.settle().await?;
            self.disk = Some(disk);
            // `None`: that was the prefix being hashed.
            if let Some((buf, n, room)) = read {
                self.lent = Some(room);
                self.read_ahead();
                return Some((buf, n));
            }
        }
    }

    /// Starts reading the next chunk while this one is sent, if there is
    /// one and the budget has room for it now.
    fn read_ahead(&mut self) {
        if self.disk.as_ref().is_none_or(|disk| disk.left == 0) {
            return;
        }
        let Some(room) = self.budget.try_take() else { return };
        let (mut disk, chunk) = (self.disk.take().expect("checked above"), self.chunk);
        self.reading = Some(tokio::task::spawn_blocking(move || {
            read_chunk(&mut disk, chunk, room).map(|read| (disk, Some(read)))
        }));
    }

    /// Waits for the read under way: the file to go on with and the chunk
    /// read, if any; `None` once reading failed. Cancel-safe: the read
    /// stays under way.
    async fn settle(&mut self) -> Option<Read> {
        let reading = self.reading.as_mut()?;
        let result = reading.await.unwrap_or_else(|e| Err(io::Error::other(e)));
        self.reading = None;
        result.map_err(|e| self.failed = Some(e)).ok()
    }

    /// Returns a buffer once its bytes are sent, and its room with it.
    fn recycle(&mut self, buf: Vec<u8>) {
        pool::give(buf);
        self.lent = None;
    }

    /// The hash of the whole file (prefix included), or why reading failed
    /// (or that it was not all taken).
    async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.lent = None;
        let mut unsent = false;
        if let Some((disk, read)) = self.settle().await {
            self.disk = Some(disk);
            if let Some((buf, _, _)) = read {
                pool::give(buf);
                unsent = true;
            }
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match self.disk.take() {
            Some(disk) if disk.left == 0 && !unsent => Ok(disk.hashing.finish()),
            _ => Err(io::Error::other("transfer cancelled")),
        }
    }
}

/// Reads the next chunk into a pooled buffer.
fn read_chunk(disk: &mut Disk, chunk: usize, room: Permit) -> io::Result<Chunk> {
    let want = disk.left.min(chunk as u64) as usize;
    let mut buf = pool::take();
    if buf.len() < want {
        buf.resize(want, 0);
    }
    if let Err(e) = disk.read(&mut buf[..want]) {
        pool::give(buf);
        return Err(e);
    }
    Ok((buf, want, room))
}
