//! The framed connection of one session: reading and writing frames, every
//! wait bounded (the login deadline before login, the idle timeout after),
//! and the answers owed to a peer that breaks the framing or goes silent
//! before the connection is closed.

use bytes::Buf;
use ftp_proto::bulk::{Received, data_next, read_frame, write_data};
use ftp_proto::{ErrorBody, ErrorCode, Frame, FrameCodec, FrameError, encode_err, encode_ok};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed or the peer went away.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The peer stayed silent, or stopped reading, past the deadline.
    #[error("{0}")]
    Timeout(String),
    /// The peer broke the protocol; the stream can't be trusted further.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A newer attempt took over the upload this connection was sending
    /// (its client is most likely gone); it was told, and is closed.
    #[error("{0}")]
    TakenOver(String),
}

/// A session's frames, in and out.
pub(crate) struct Connection<S> {
    frames: Framed<S, FrameCodec>,
    idle: Duration,
    /// Until login: the absolute deadline of the handshake and login.
    login_deadline: Option<Instant>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A connection that has not logged in: small frames only, everything
    /// done within `login` from now.
    pub fn new(stream: S, idle: Duration, login: Duration) -> Connection<S> {
        let frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME_BEFORE_LOGIN));
        Connection { frames, idle, login_deadline: Some(Instant::now() + login) }
    }

    /// After login: full-size frames, and the idle timeout alone.
    pub fn logged_in(&mut self) {
        self.login_deadline = None;
        self.frames.codec_mut().set_max_frame(ftp_proto::MAX_FRAME);
    }

    /// When the current wait must end.
    pub fn deadline(&self) -> Instant {
        let idle = Instant::now() + self.idle;
        self.login_deadline.map_or(idle, |login| login.min(idle))
    }

    /// Tells the peer it was too slow and gives up on it.
    async fn too_slow(&mut self) -> ConnError {
        let msg = match self.login_deadline {
            Some(_) => "login took too long".to_owned(),
            None => format!("idle for {} s", self.idle.as_secs()),
        };
        let err = ErrorBody::new(ErrorCode::Timeout, msg.clone());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.frames.send(Frame::Message(encode_err(&err)))).await;
        ConnError::Timeout(msg)
    }

    /// Answers a frame that could not be decoded and gives up on the
    /// connection: after a bad length prefix the stream can't be
    /// resynchronised.
    async fn framing_error(&mut self, err: FrameError) -> ConnError {
        let code = match err {
            FrameError::Io(e) => return ConnError::Io(e),
            FrameError::TooLarge { .. } | FrameError::MessageTooLarge(_) => ErrorCode::TooLarge,
            FrameError::Empty | FrameError::UnknownTag(_) => ErrorCode::BadRequest,
        };
        self.violation(code, err.to_string()).await
    }

    /// Tells the peer it broke the protocol; the caller ends the connection.
    pub async fn violation(&mut self, code: ErrorCode, msg: String) -> ConnError {
        let _ = self.send_err(ErrorBody::new(code, msg.clone())).await;
        ConnError::Protocol(msg)
    }

    /// The next frame, `None` at a clean end of the stream.
    pub async fn next(&mut self) -> Result<Option<Frame>, ConnError> {
        match tokio::time::timeout_at(self.deadline(), self.frames.next()).await {
            Err(_) => Err(self.too_slow().await),
            Ok(None) => Ok(None),
            Ok(Some(Ok(frame))) => Ok(Some(frame)),
            Ok(Some(Err(e))) => Err(self.framing_error(e).await),
        }
    }

    /// The next frame of an upload: a data frame's payload goes straight
    /// into `buf`. The end of the stream here is an error.
    pub async fn read_frame(&mut self, buf: &mut Vec<u8>) -> Result<Received, ConnError> {
        match tokio::time::timeout_at(self.deadline(), read_frame(&mut self.frames, buf)).await {
            Err(_) => Err(self.too_slow().await),
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(Err(e)) => Err(self.framing_error(e).await),
        }
    }

    /// Waits for the next frame of an upload to begin, and says whether it
    /// carries data (and so needs a buffer): the end of the stream, like
    /// any other frame, is left to [`Connection::read_frame`].
    pub async fn data_next(&mut self) -> Result<bool, ConnError> {
        match tokio::time::timeout_at(self.deadline(), data_next(&mut self.frames)).await {
            Err(_) => Err(self.too_slow().await),
            Ok(next) => Ok(next?),
        }
    }

    /// Whether a whole frame is waiting in the read buffer.
    pub fn has_whole_frame(&self) -> bool {
        self.frames.codec().has_whole_frame(self.frames.read_buffer())
    }

    /// The message frame waiting whole at the front of the read buffer,
    /// if any, without taking it (see [`Connection::skip`]).
    pub fn peek_message(&self) -> Option<(usize, &[u8])> {
        self.frames.codec().whole_message(self.frames.read_buffer())
    }

    /// Drops `n` bytes from the front of the read buffer (a frame peeked).
    pub fn skip(&mut self, n: usize) {
        self.frames.read_buffer_mut().advance(n);
    }

    /// Runs `write` on the frames within the current deadline (a peer that
    /// stops reading can't hold the session forever).
    async fn bounded<'a, F>(
        &'a mut self,
        write: impl FnOnce(&'a mut Framed<S, FrameCodec>) -> F,
    ) -> Result<(), ConnError>
    where
        F: Future<Output = Result<(), FrameError>> + 'a,
    {
        let deadline = self.deadline();
        match tokio::time::timeout_at(deadline, write(&mut self.frames)).await {
            Ok(result) => result.map_err(|e| match e {
                FrameError::Io(e) => ConnError::Io(e),
                other => ConnError::Protocol(other.to_string()),
            }),
            Err(_) => Err(ConnError::Timeout("the peer stopped reading".into())),
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) -> Result<(), ConnError> {
        self.bounded(|frames| frames.send(frame)).await
    }

    /// Sends several frames with one flush (replies that go together).
    pub async fn send_all(&mut self, batch: Vec<Frame>) -> Result<(), ConnError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.bounded(|frames| async move {
            for frame in batch {
                frames.feed(frame).await?;
            }
            frames.flush().await
        })
        .await
    }

    /// Sends one data frame straight to the stream (no copy through the
    /// codec).
    pub async fn send_data(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        self.bounded(|frames| write_data(frames, payload)).await
    }

    /// Sends a successful reply.
    pub async fn send_ok<T: Serialize>(&mut self, body: &T) -> Result<(), ConnError> {
        self.send(Frame::Message(encode_ok(body))).await
    }

    /// Sends an error reply.
    pub async fn send_err(&mut self, err: ErrorBody) -> Result<(), ConnError> {
        self.send(Frame::Message(encode_err(&err))).await
    }

    /// Flushes what is buffered and closes (TLS sends close_notify).
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.frames.get_mut().shutdown()).await;
    }
}
