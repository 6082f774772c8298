//! [`FileSource`]: the disk side of a sending transfer.

use crate::{DEPTH, hash_exact, pool, shrank};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The disk side of a sending transfer: a blocking thread that reads a file
/// in chunks and hashes them.
///
/// Take chunks with [`FileSource::next`], give each buffer back with
/// [`FileSource::recycle`] once sent, and end with [`FileSource::finish`].
/// At most [`DEPTH`] buffers exist per source; dropping the source cancels
/// the transfer (the thread stops at its next chunk).
pub struct FileSource {
    full: mpsc::Receiver<(Vec<u8>, usize)>,
    free: mpsc::Sender<Vec<u8>>,
    thread: JoinHandle<io::Result<blake3::Hash>>,
    _lease: pool::Lease,
}

/// How a source comes by the file's hash (one per transfer, moved into
/// its thread: the size difference doesn't matter).
#[allow(clippy::large_enum_variant)]
enum Hashing {
    /// Hashing what it reads.
    Hash(blake3::Hasher),
    /// Known before reading.
    Known(blake3::Hash),
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
        FileSource::start(file, prefix, len, Hashing::Hash(hasher), chunk)
    }

    /// Like [`FileSource::spawn`] for a file whose hash is already known:
    /// the prefix is skipped, not read, nothing is hashed, and
    /// [`FileSource::finish`] returns `hash`.
    pub fn spawn_known(file: File, prefix: u64, len: u64, hash: blake3::Hash, chunk: usize) -> FileSource {
        FileSource::start(file, prefix, len, Hashing::Known(hash), chunk)
    }

    fn start(mut file: File, prefix: u64, len: u64, mut hashing: Hashing, chunk: usize) -> FileSource {
        let (full_tx, full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            match &mut hashing {
                Hashing::Hash(hasher) => hash_exact(&mut file, prefix, hasher)?,
                Hashing::Known(_) => {
                    file.seek(SeekFrom::Current(i64::try_from(prefix).map_err(io::Error::other)?))?;
                }
            }
            let mut left = len;
            let mut made = 0;
            while left > 0 {
                let want = left.min(chunk as u64) as usize;
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
                file.read_exact(&mut buf[..want])
                    .map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { shrank() } else { e })?;
                if let Hashing::Hash(hasher) = &mut hashing {
                    hasher.update(&buf[..want]);
                }
                if full_tx.blocking_send((buf, want)).is_err() {
                    return Err(io::Error::other("transfer cancelled"));
                }
                left -= want as u64;
            }
            while let Ok(buf) = free_rx.try_recv() {
                pool::give(buf);
            }
            Ok(match hashing {
                Hashing::Hash(hasher) => hasher.finalize(),
                Hashing::Known(hash) => hash,
            })
        });
        FileSource { full: full_rx, free: free_tx, thread, _lease: pool::Lease::new() }
    }

    /// The next chunk: a buffer whose first `n` bytes are the data. `None`
    /// when the file is done or the thread failed ([`FileSource::finish`]
    /// tells which). Hand the buffer back with [`FileSource::recycle`].
    pub async fn next(&mut self) -> Option<(Vec<u8>, usize)> {
        self.full.recv().await
    }

    /// Returns a buffer for the thread to fill again (to the pool once the
    /// thread has read the whole file).
    pub fn recycle(&self, buf: Vec<u8>) {
        if let Err(e) = self.free.try_send(buf) {
            pool::give(e.into_inner());
        }
    }

    /// The hash of the whole file (prefix included), or why reading failed.
    pub async fn finish(mut self) -> io::Result<blake3::Hash> {
        self.full.close();
        (&mut self.thread).await.unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}

impl Drop for FileSource {
    /// Chunks read but not sent go back to the pool.
    fn drop(&mut self) {
        while let Ok((buf, _)) = self.full.try_recv() {
            pool::give(buf);
        }
    }
}
