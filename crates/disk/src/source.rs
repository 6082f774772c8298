//! [`FileSource`]: the disk side of a sending transfer.

use crate::{DEPTH, hash_exact, pool, shrank};
use std::fs::File;
use std::io::{self, Read};
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

impl FileSource {
    /// Starts the thread. It first feeds the `prefix` bytes from the file's
    /// current position to `hasher` without sending them (what the other
    /// side already holds), then reads the next `len` bytes in chunks of at
    /// most `chunk` ([`crate::BUFFER_SIZE`] fills the pooled buffers
    /// exactly). A file that ends sooner is an error.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn(mut file: File, prefix: u64, len: u64, mut hasher: blake3::Hasher, chunk: usize) -> FileSource {
        let (full_tx, full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            hash_exact(&mut file, prefix, &mut hasher)?;
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
                hasher.update(&buf[..want]);
                if full_tx.blocking_send((buf, want)).is_err() {
                    return Err(io::Error::other("transfer cancelled"));
                }
                left -= want as u64;
            }
            while let Ok(buf) = free_rx.try_recv() {
                pool::give(buf);
            }
            Ok(hasher.finalize())
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
