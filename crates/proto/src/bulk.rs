//! Moving file bytes through data frames with as few copies as the stream
//! allows, in constant memory.
//!
//! - [`write_data`] writes a data frame's header and payload straight to the
//!   stream in one vectored write, instead of copying the payload into the
//!   codec's buffer first.
//! - [`read_frame`] reads the next frame; a data frame's payload goes
//!   straight from the stream into a caller's reusable buffer.
//!
//! Both work on buffers the caller owns and allocate nothing per chunk.
//! The disk side of a transfer (files read and written on blocking threads,
//! hashed, synced, and the buffers they pass around) is the `ftp-disk`
//! crate's; both ends of the protocol use the two together for put and get
//! alike.

use crate::codec::check_tag;
use crate::{Frame, FrameCodec, FrameError, Tag};
use bytes::{Buf, Bytes};
use futures::SinkExt;
use std::io::{self, IoSlice};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Framed;

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

/// Waits until the header of the next frame is in the codec's buffer of
/// `frames` (which must be at a frame boundary) and says whether that frame
/// carries data, without taking anything: a receiver that must find room
/// for a chunk first can wait for its peer to send one before it does, and
/// then read it with [`read_frame`]. False for any other frame, and when
/// the stream ends first ([`read_frame`] then says how).
pub async fn data_next<S>(frames: &mut Framed<S, FrameCodec>) -> io::Result<bool>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !fill(frames, 5).await? {
        return Ok(false);
    }
    let header = &frames.read_buffer()[..5];
    Ok(header[4] == Tag::Data as u8 && u32::from_be_bytes([header[0], header[1], header[2], header[3]]) > 1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

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
    async fn data_next_peeks_at_the_next_header_without_taking_it() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut tx = Framed::new(a, FrameCodec::new(crate::MAX_FRAME));
        let mut rx = Framed::new(b, FrameCodec::new(crate::MAX_FRAME));
        write_data(&mut tx, b"abc").await.unwrap();
        write_data(&mut tx, b"").await.unwrap();
        tx.send(Frame::End(Bytes::from_static(b"{}"))).await.unwrap();
        drop(tx);
        let mut buf = Vec::new();
        assert!(data_next(&mut rx).await.unwrap());
        assert!(data_next(&mut rx).await.unwrap(), "asking again changes nothing");
        assert!(matches!(read_frame(&mut rx, &mut buf).await.unwrap(), Some(Received::Data(3))));
        assert!(!data_next(&mut rx).await.unwrap(), "an empty data frame needs no buffer");
        assert!(matches!(read_frame(&mut rx, &mut buf).await.unwrap(), Some(Received::Data(0))));
        assert!(!data_next(&mut rx).await.unwrap());
        assert!(matches!(read_frame(&mut rx, &mut buf).await.unwrap(), Some(Received::Other(Frame::End(_)))));
        assert!(!data_next(&mut rx).await.unwrap(), "the end of the stream");
        assert!(read_frame(&mut rx, &mut buf).await.unwrap().is_none());
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
}
