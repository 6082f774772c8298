//! Moving file bytes through data frames with as few copies as the stream
//! allows, in constant memory.
//!
//! - [`write_data`] writes a data frame's header and payload straight to the
//!   stream in one vectored write, instead of copying the payload into the
//!   codec's buffer first.
//! - [`read_frame`] reads the next frame; a data frame's payload goes
//!   straight from the stream into a caller's reusable buffer.
//! - [`FileSink`] and [`FileSource`] run the disk side of a transfer (and
//!   its BLAKE3 hash) on a blocking thread, passing a few recycled buffers
//!   back and forth: the network side fills one while the disk side drains
//!   another, and nothing is allocated per chunk.
//!
//! Both ends of the protocol use these for put and get alike.

use crate::codec::check_tag;
use crate::pool;
use crate::{Frame, FrameCodec, FrameError, Tag};
use bytes::{Buf, Bytes};
use futures::SinkExt;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// Buffers a transfer may have in flight between its network and disk
/// sides: one filled by the network while the disk drains the other. With
/// [`crate::DEFAULT_CHUNK`] chunks this bounds a transfer's memory to 2 MiB
/// whatever the file size. A single stream ran no faster with four; under
/// 200 concurrent transfers, two cut the daemon's peak RSS from about 520
/// to 360 MiB and a round's time by about 5 % (fewer pages to fault in,
/// less memory for the copies to go through).
pub const DEPTH: usize = 2;

/// The most a [`FileSink`] hands the kernel in one `write`. Linux sizes the
/// page-cache folios of a write by its length, so a 1 MiB write asks for
/// large folios. On the benchmark machine (a VM whose balloon driver
/// reports free memory to the host) those come from memory the host must
/// fault in again: 1 MiB writes into a new file mostly ran at 0.7–1.5 GB/s,
/// 256 KiB writes at 5.5–6 GB/s. Hashing each piece right after writing it
/// also reads it while it is still in the CPU cache.
const WRITE_PIECE: usize = 256 * 1024;

/// Writes one data frame carrying `payload` straight to the stream under
/// `frames`: whatever the codec still buffers is flushed first, then header
/// and payload go in one vectored write where the stream supports it.
pub async fn write_data<S>(frames: &mut Framed<S, FrameCodec>, payload: &[u8]) -> Result<(), FrameError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !frames.write_buffer().is_empty() {
        frames.flush().await?;
    }
    let len = u32::try_from(payload.len() + 1).map_err(|_| io::Error::other("chunk too large"))?;
    let mut header = [0u8; 5];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4] = Tag::Data as u8;
    let io = frames.get_mut();
    let mut head = &header[..];
    let mut body = payload;
    while !head.is_empty() {
        let n = io.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(io.write_all(body).await?)
}

/// What [`read_frame`] found.
#[derive(Debug)]
pub enum Received {
    /// A data frame whose payload is now the first `n` bytes of the buffer.
    Data(usize),
    /// A message or end frame.
    Other(Frame),
}

/// A frame of which at most this many bytes are still to come is read
/// through the codec's buffer, in reads of this size that may bring in the
/// frames after it too (a burst of small files comes in a few reads, not
/// several per file); the rest of a larger one goes straight from the
/// stream into the caller's buffer.
const BUFFERED_READ: usize = 16 * 1024;

/// Reads the next frame from `frames`, which must be at a frame boundary
/// (as it is after any frame it decoded itself). A data frame's payload is
/// placed at the start of `buf`, which grows to the payload's size if it is
/// smaller (never past the codec's limit, checked first); other frames are
/// returned whole. `Ok(None)` is a clean end of stream.
///
/// Bytes the codec already buffered are taken first, then the rest is read
/// through the codec's buffer or, for a large frame, from the stream
/// directly, so `frames` stays usable afterwards.
pub async fn read_frame<S>(
    frames: &mut Framed<S, FrameCodec>,
    buf: &mut Vec<u8>,
) -> Result<Option<Received>, FrameError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut header = [0u8; 5];
    if !fill(frames, header.len()).await? {
        if frames.read_buffer().is_empty() {
            return Ok(None);
        }
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    take_buffered(frames, &mut header);
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let max = frames.codec().max_frame();
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let body_len = len.checked_sub(1).ok_or(FrameError::Empty)?;
    let tag = check_tag(header[4], body_len)?;
    if body_len.saturating_sub(frames.read_buffer().len()) <= BUFFERED_READ && !fill(frames, body_len).await? {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
    }
    let mut small = Vec::new();
    let target = if tag == Tag::Data { buf } else { &mut small };
    if target.len() < body_len {
        target.resize(body_len, 0);
    }
    let have = take_buffered(frames, &mut target[..body_len]);
    frames.get_mut().read_exact(&mut target[have..body_len]).await?;
    Ok(Some(match tag {
        Tag::Data => Received::Data(body_len),
        Tag::Message => Received::Other(Frame::Message(Bytes::from(small))),
        Tag::End => Received::Other(Frame::End(Bytes::from(small))),
    }))
}

/// Reads from the stream into the codec's buffer until it holds at least
/// `want` bytes, asking for up to [`BUFFERED_READ`] more each time. False
/// if the stream ended first.
async fn fill<S>(frames: &mut Framed<S, FrameCodec>, want: usize) -> io::Result<bool>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while frames.read_buffer().len() < want {
        // Out of `frames` while the stream reads into it; put back whatever
        // happens. (Dropped mid-read, the connection is given up anyway:
        // every caller ends it when a read is cut short.)
        let mut buffer = std::mem::take(frames.read_buffer_mut());
        buffer.reserve(BUFFERED_READ);
        let read = frames.get_mut().read_buf(&mut buffer).await;
        *frames.read_buffer_mut() = buffer;
        if read? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Moves what the codec has buffered (at most `out.len()` bytes) into `out`.
fn take_buffered<S, C>(frames: &mut Framed<S, C>, out: &mut [u8]) -> usize {
    let buffered = frames.read_buffer_mut();
    let n = buffered.len().min(out.len());
    out[..n].copy_from_slice(&buffered[..n]);
    buffered.advance(n);
    n
}

/// Feeds the next `len` bytes of `reader` to `hasher` (the part of a file
/// already held on the other side of a resumed transfer). A reader that
/// ends sooner is an `UnexpectedEof` error.
pub fn hash_exact(reader: &mut impl Read, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    if io::copy(&mut reader.take(len), hasher)? != len {
        return Err(shrank());
    }
    Ok(())
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")
}

/// The disk side of a receiving transfer: a blocking thread that appends
/// the chunks it is given to a file and hashes them.
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
    pub fn spawn(mut file: File, prefix: u64, mut hasher: blake3::Hasher, durable: bool) -> FileSink {
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(DEPTH);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>(DEPTH);
        let thread = tokio::task::spawn_blocking(move || {
            hash_exact(&mut file, prefix, &mut hasher)?;
            let mut flush = FlushBehind::new(prefix, durable);
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

    /// A buffer to receive the next chunk into; `None` once the disk thread
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

/// The disk side of a sending transfer: a blocking thread that reads a file
/// in chunks and hashes them.
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
    /// most `chunk`. A file that ends sooner is an error.
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

/// Starts writeback of what a durable transfer has written every few MiB,
/// so the final fsync waits for the tail only, not the whole file.
struct FlushBehind {
    enabled: bool,
    /// Start of the range not handed to the disk yet.
    from: u64,
    /// End of what was written.
    to: u64,
}

impl FlushBehind {
    const EVERY: u64 = 8 * 1024 * 1024;

    fn new(at: u64, durable: bool) -> FlushBehind {
        FlushBehind { enabled: durable && cfg!(target_os = "linux"), from: at, to: at }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn hash_exact_refuses_short_readers() {
        let data = [1u8; 10];
        let mut hasher = blake3::Hasher::new();
        hash_exact(&mut &data[..], 10, &mut hasher).unwrap();
        assert_eq!(hasher.finalize(), blake3::hash(&data));
        let err = hash_exact(&mut &data[..], 11, &mut blake3::Hasher::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn direct_data_frames_interleave_with_codec_frames() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut tx = Framed::new(a, FrameCodec::new(crate::MAX_FRAME));
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let writer = tokio::spawn(async move {
            tx.send(Frame::Message(Bytes::from_static(b"{\"op\":\"pwd\"}"))).await.unwrap();
            write_data(&mut tx, &big).await.unwrap();
            write_data(&mut tx, b"").await.unwrap();
            tx.send(Frame::End(Bytes::from_static(b"{}"))).await.unwrap();
            write_data(&mut tx, b"tail").await.unwrap();
            big
        });
        // The first frame goes through the codec, which may buffer part of
        // the next one: read_frame must take those bytes first.
        assert!(matches!(rx.next().await, Some(Ok(Frame::Message(_)))));
        let mut buf = Vec::new();
        let Some(Received::Data(n)) = read_frame(&mut rx, &mut buf).await.unwrap() else { panic!("data") };
        let big = writer.await.unwrap();
        assert_eq!(&buf[..n], &big[..]);
        assert!(matches!(read_frame(&mut rx, &mut buf).await.unwrap(), Some(Received::Data(0))));
        let Some(Received::Other(Frame::End(json))) = read_frame(&mut rx, &mut buf).await.unwrap() else {
            panic!("end")
        };
        assert_eq!(&json[..], b"{}");
        assert_eq!(rx.next().await.unwrap().unwrap(), Frame::Data(Bytes::from_static(b"tail")));
        assert!(read_frame(&mut rx, &mut buf).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn read_frame_takes_bursts_of_small_frames_and_reports_truncation() {
        // A burst of small files, as a pipelined batch sends them: several
        // whole frames per read, in order.
        let (a, b) = tokio::io::duplex(256 * 1024);
        let mut tx = Framed::new(a, FrameCodec::new(crate::MAX_FRAME));
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        for i in 0..50u8 {
            write_data(&mut tx, &vec![i; 4096 + i as usize]).await.unwrap();
            tx.send(Frame::End(Bytes::from(vec![b'0' + i % 10; 3]))).await.unwrap();
        }
        drop(tx);
        let mut buf = Vec::new();
        for i in 0..50u8 {
            let Some(Received::Data(n)) = read_frame(&mut rx, &mut buf).await.unwrap() else { panic!("data {i}") };
            assert_eq!(&buf[..n], &vec![i; 4096 + i as usize][..]);
            let Some(Received::Other(Frame::End(end))) = read_frame(&mut rx, &mut buf).await.unwrap() else {
                panic!("end {i}")
            };
            assert_eq!(&end[..], &[b'0' + i % 10; 3]);
        }
        assert!(read_frame(&mut rx, &mut buf).await.unwrap().is_none(), "a clean end");

        // A stream cut inside a header, or inside a frame, is an error.
        for cut in [&[0u8, 0, 0][..], &[0, 0, 0, 9, b'D', 1, 2][..]] {
            let (mut a, b) = tokio::io::duplex(1024);
            let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
            a.write_all(cut).await.unwrap();
            drop(a);
            let err = read_frame(&mut rx, &mut buf).await.unwrap_err();
            assert!(matches!(&err, FrameError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof), "{err:?}");
        }
    }

    #[tokio::test]
    async fn read_frame_checks_lengths_before_allocating() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        a.write_all(&[0xff, 0xff, 0xff, 0xff, b'D']).await.unwrap();
        let mut buf = Vec::new();
        assert!(matches!(read_frame(&mut rx, &mut buf).await, Err(FrameError::TooLarge { .. })));
        assert_eq!(buf.capacity(), 0);
        let (mut a, b) = tokio::io::duplex(1024);
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        a.write_all(&[0, 1, 0, 2, b'M']).await.unwrap();
        assert!(matches!(read_frame(&mut rx, &mut buf).await, Err(FrameError::MessageTooLarge(_))));
        let (mut a, b) = tokio::io::duplex(1024);
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        a.write_all(&[0, 0, 0, 1, b'X', 0, 0, 0, 0]).await.unwrap();
        assert!(matches!(read_frame(&mut rx, &mut buf).await, Err(FrameError::UnknownTag(b'X'))));
    }

    #[tokio::test]
    async fn file_source_and_sink_round_trip_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(crate::DEFAULT_CHUNK * 3 + 17)).map(|i| (i * 7) as u8).collect();
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        // Send all but a 1000-byte prefix, which the hash still covers.
        let mut source = FileSource::spawn(
            File::open(&src).unwrap(),
            1000,
            data.len() as u64 - 1000,
            blake3::Hasher::new(),
            // Chunks the sink writes in two whole pieces and a short one.
            WRITE_PIECE * 2 + 4096 * 3,
        );
        let dst = dir.path().join("dst");
        std::fs::write(&dst, &data[..1000]).unwrap();
        let out = std::fs::OpenOptions::new().read(true).write(true).open(&dst).unwrap();
        let mut sink = FileSink::spawn(out, 1000, blake3::Hasher::new(), true);
        while let Some((chunk, n)) = source.next().await {
            let mut buf = sink.buffer().await.unwrap();
            buf.clear();
            buf.extend_from_slice(&chunk[..n]);
            source.recycle(chunk);
            assert!(sink.write(buf, n).await);
        }
        let sent = source.finish().await.unwrap();
        let got = sink.finish().await.unwrap();
        assert_eq!(sent, blake3::hash(&data));
        assert_eq!(got, sent);
        assert_eq!(std::fs::read(&dst).unwrap(), data);
    }

    #[tokio::test]
    async fn file_source_reports_a_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, [0u8; 10]).unwrap();
        let mut source = FileSource::spawn(File::open(&src).unwrap(), 0, 11, blake3::Hasher::new(), 4);
        while let Some((chunk, _)) = source.next().await {
            source.recycle(chunk);
        }
        assert_eq!(source.finish().await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
