//! Uploads and downloads: where file bytes cross between socket and disk.
//!
//! Disk I/O and hashing run on a blocking thread connected to the session
//! by a small bounded channel, so reading the socket and writing the disk
//! overlap while memory per transfer stays constant (a few chunks).

use crate::errors::io_error;
use crate::home::read_full;
use crate::session::{ConnError, Flow, Outcome, Session};
use bytes::{Bytes, BytesMut};
use ftp_proto::{ErrorBody, ErrorCode, Frame, GetOk, PutOk, RemotePath, Trailer};
use futures::StreamExt;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::warn;

/// Chunks buffered between the socket and the disk thread.
const PIPELINE_DEPTH: usize = 4;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `put`: the client streams `size` bytes of data frames and an end
    /// frame with the hash, without waiting. The server replies once: early
    /// with an error (then discards the data up to the end frame), or after
    /// the end frame with the verdict.
    pub(crate) async fn put(&mut self, path: &str, size: u64) -> Result<Outcome, ConnError> {
        let target = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse_upload(path.to_owned(), e, size).await,
        };
        let t = target.clone();
        let (upload, file) = match self.fs(move |h| h.begin_upload(&t)).await {
            Ok(pair) => pair,
            Err(e) => return self.refuse_upload(target.to_string(), io_error(&e, &target), size).await,
        };
        let fsync = self.user().home.fsync();
        let (tx, rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || write_chunks(file, rx, fsync));
        let mut tx = Some(tx);
        let mut received: u64 = 0;
        let idle = self.shared.config.idle_timeout;

        let trailer = loop {
            let frame = match tokio::time::timeout(idle, self.frames.next()).await {
                Err(_) => {
                    self.timed_out(idle).await?;
                    return Ok(Outcome { flow: Flow::Close, ..Outcome::new(&target, Err(ErrorCode::Timeout)) });
                }
                Ok(None) => {
                    warn!(path = %target, received, size, "connection lost during upload; discarded");
                    return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(Some(Err(e))) => {
                    self.framing_error(e).await?;
                    unreachable!("framing_error always ends the session");
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Data(chunk) => {
                    received += chunk.len() as u64;
                    if received > size {
                        let msg = format!("{target}: more data than the {size} bytes declared");
                        self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                        return Err(ConnError::Protocol(msg));
                    }
                    let sent = match &tx {
                        Some(tx) => tx.send(chunk).await.is_ok(),
                        None => false,
                    };
                    if !sent && tx.take().is_some() {
                        // The disk thread failed: report it now, discard the rest.
                        let err = match writer.await {
                            Ok(Err(e)) => io_error(&e, &target),
                            _ => ErrorBody::new(ErrorCode::Internal, "upload writer failed"),
                        };
                        drop(upload);
                        let code = err.code;
                        self.send_err(err).await?;
                        self.discard_data(size, received).await?;
                        return Ok(Outcome { bytes: received, ..Outcome::new(&target, Err(code)) });
                    }
                }
                Frame::End(json) => break Trailer::decode(&json),
                Frame::Message(_) => {
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
            }
        };
        drop(tx);
        let written = writer.await.unwrap_or_else(|e| Err(io::Error::other(e)));
        let verdict = self.verify_upload(&target, size, received, trailer, written);
        let result = match verdict {
            Ok(hash) => {
                let fsync = self.user().home.fsync();
                match tokio::task::spawn_blocking(move || upload.commit(fsync)).await {
                    Ok(Ok(())) => Ok(hash),
                    Ok(Err(e)) => Err(io_error(&e, &target)),
                    Err(e) => Err(io_error(&io::Error::other(e), &target)),
                }
            }
            Err(e) => {
                drop(upload); // remove the temporary file before answering
                Err(e)
            }
        };
        match result {
            Ok(hash) => {
                self.send_ok(&PutOk { path: target.to_string(), size, hash }).await?;
                Ok(Outcome { bytes: received, ..Outcome::new(&target, Ok(())) })
            }
            Err(err) => {
                warn!(path = %target, error = %err, "upload rejected");
                let mut outcome = self.refuse(target.to_string(), err).await?;
                outcome.bytes = received;
                Ok(outcome)
            }
        }
    }

    /// Checks an upload's end against its declaration. Returns the hash.
    fn verify_upload(
        &self,
        target: &RemotePath,
        size: u64,
        received: u64,
        trailer: Result<Trailer, ftp_proto::DecodeError>,
        written: io::Result<blake3::Hash>,
    ) -> Result<String, ErrorBody> {
        let trailer = trailer.map_err(|e| ErrorBody::new(ErrorCode::BadRequest, e.to_string()))?;
        if let Some(err) = trailer.error {
            return Err(ErrorBody::new(
                ErrorCode::Aborted,
                format!("{target}: upload abandoned by client: {}", err.message),
            ));
        }
        let actual = written.map_err(|e| io_error(&e, target))?;
        if received != size {
            return Err(ErrorBody::new(
                ErrorCode::Integrity,
                format!("{target}: received {received} of {size} bytes declared"),
            ));
        }
        let Some(claimed) = trailer.hash else {
            return Err(ErrorBody::new(ErrorCode::BadRequest, "the end frame of an upload must carry its hash"));
        };
        let hex = actual.to_hex();
        if !claimed.eq_ignore_ascii_case(hex.as_str()) {
            return Err(ErrorBody::new(
                ErrorCode::Integrity,
                format!("{target}: hash mismatch: the data received hashes to {hex}"),
            ));
        }
        Ok(hex.to_string())
    }

    /// Refuses an upload before its data: reply first, then read and drop
    /// the data frames the client may already have sent, up to its end frame.
    async fn refuse_upload(&mut self, path: String, err: ErrorBody, size: u64) -> Result<Outcome, ConnError> {
        let outcome = self.refuse(path, err).await?;
        self.discard_data(size, 0).await?;
        Ok(outcome)
    }

    /// Reads and drops data frames until the end frame. More data than
    /// declared, or a request instead of data, ends the connection.
    async fn discard_data(&mut self, size: u64, mut received: u64) -> Result<(), ConnError> {
        let idle = self.shared.config.idle_timeout;
        loop {
            match tokio::time::timeout(idle, self.frames.next()).await {
                Err(_) => return self.timed_out(idle).await,
                Ok(None) => return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(Some(Err(e))) => return self.framing_error(e).await,
                Ok(Some(Ok(Frame::Data(chunk)))) => {
                    received += chunk.len() as u64;
                    if received > size {
                        return Err(ConnError::Protocol("more data than declared".into()));
                    }
                }
                Ok(Some(Ok(Frame::End(_)))) => return Ok(()),
                Ok(Some(Ok(Frame::Message(_)))) => {
                    return Err(ConnError::Protocol("a request arrived in the middle of an upload".into()));
                }
            }
        }
    }

    /// `get`: reply with the size, stream the data frames, then an end frame
    /// with the hash of exactly the bytes sent.
    pub(crate) async fn get(&mut self, path: &str) -> Result<Outcome, ConnError> {
        let target = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let t = target.clone();
        let (file, meta) = match self.fs(move |h| h.open_read(&t)).await {
            Ok(pair) => pair,
            Err(e) => return self.refuse(target.to_string(), io_error(&e, &target)).await,
        };
        let size = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.send_ok(&GetOk { size, mtime }).await?;

        let (tx, mut rx) = mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let reader = tokio::task::spawn_blocking(move || read_chunks(file.into_std(), size, tx));
        let mut sent = 0u64;
        while let Some(chunk) = rx.recv().await {
            sent += chunk.len() as u64;
            self.send(Frame::Data(chunk)).await?;
        }
        let trailer = match reader.await.unwrap_or_else(|e| Err(io::Error::other(e))) {
            Ok(hash) => Trailer { hash: Some(hash.to_hex().to_string()), ..Trailer::default() },
            Err(e) => {
                warn!(path = %target, error = %e, "read failed during download");
                Trailer { error: Some(io_error(&e, &target)), ..Trailer::default() }
            }
        };
        let ok = trailer.error.is_none();
        self.send(Frame::End(trailer.encode())).await?;
        let result = if ok { Ok(()) } else { Err(ErrorCode::Internal) };
        Ok(Outcome { bytes: sent, ..Outcome::new(&target, result) })
    }
}

/// Disk side of an upload: writes and hashes chunks until the channel closes.
fn write_chunks(mut file: std::fs::File, mut rx: mpsc::Receiver<Bytes>, fsync: bool) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = rx.blocking_recv() {
        file.write_all(&chunk)?;
        hasher.update(&chunk);
    }
    if fsync {
        file.sync_all()?;
    }
    Ok(hasher.finalize())
}

/// Disk side of a download: reads exactly `size` bytes in chunks and hashes
/// them. A file that shrank meanwhile is an error (the client then sees a
/// short transfer and refuses it).
fn read_chunks(mut file: std::fs::File, size: u64, tx: mpsc::Sender<Bytes>) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut left = size;
    while left > 0 {
        let want = left.min(ftp_proto::DEFAULT_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let got = read_full(&mut file, &mut buf)?;
        if got < want {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read"));
        }
        hasher.update(&buf);
        if tx.blocking_send(buf.freeze()).is_err() {
            return Err(io::Error::other("connection closed"));
        }
        left -= want as u64;
    }
    Ok(hasher.finalize())
}
