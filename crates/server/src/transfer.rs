//! Uploads and downloads: where file bytes cross between socket and disk.
//!
//! Disk I/O and hashing run on a blocking thread ([`ftp_disk`])
//! passing a few recycled buffers to and from the session, so reading the
//! socket and writing the disk overlap while memory per transfer stays
//! constant; data frames go between socket and buffer without a copy
//! through the codec.

use crate::accounts::{Account, Reservation};
use crate::errors::io_error;
use crate::home::{Home, Upload, UploadStart};
use crate::session::{ConnError, Files, Flow, Outcome, Session, log_request};
use crate::staged::StagedPut;
use bytes::Buf;
use ftp_disk::{FileSink, FileSource};
use ftp_proto::bulk::{Received, read_frame};
use ftp_proto::{
    DEFAULT_CHUNK, ErrorBody, ErrorCode, Frame, FrameError, GetOk, PutOk, PutReady, RemotePath, Request, Trailer,
    Version, encode_err,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::warn;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `put`. Without `resume` the client streams all `size` bytes and an
    /// end frame without waiting; the server replies once: early with an
    /// error (then discards the data up to the end frame), or after the end
    /// frame with the verdict. With `resume` the server first answers
    /// [`PutReady`] with the bytes it already holds, and the client sends
    /// the rest.
    pub(crate) async fn put(
        &mut self,
        path: &str,
        size: u64,
        resume: bool,
        hash: Option<String>,
    ) -> Result<Outcome, ConnError> {
        let target = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse_upload(path.to_owned(), e, size, resume).await,
        };
        if let Files::Objects(objects) = &self.user().files {
            return self.put_object(objects.clone(), target, size, resume, hash).await;
        }
        if !resume && size <= SMALL_FILE {
            return self.put_small(target, size).await;
        }
        let holder_key = (self.user().name.clone(), target.to_string(), size);
        let start = match self.begin_upload(&target, size, resume, hash, &holder_key).await {
            Ok(start) => start,
            Err(e) => return self.refuse_upload(target.to_string(), io_error(&e, &target), size, resume).await,
        };
        let shared = self.shared.clone();
        let holding = start.upload.is_resumable().then(|| shared.uploads.hold(holder_key));
        let taken_over = holding.as_ref().map(|h| h.token.clone()).unwrap_or_default();
        let account = self.user().account().clone();
        account.adjust(-(start.dropped as i64));
        let offset = start.offset;
        let quota = self.shared.users.quota(&self.user().name);
        let reservation = match account.reserve(size - offset, quota) {
            Ok(r) => r,
            Err(over) => {
                if offset == 0 {
                    start.upload.discard();
                }
                let msg = format!(
                    "{target}: the upload needs {} more bytes but only {} are left in your quota",
                    over.needed, over.available
                );
                return self
                    .refuse_upload(target.to_string(), ErrorBody::new(ErrorCode::QuotaExceeded, msg), size, resume)
                    .await;
            }
        };
        let mut rx_state = Receiving { upload: Some(start.upload), reservation, account, offset };
        if resume {
            self.send_ok(&PutReady { offset, prefix_hash: start.prefix_hash }).await?;
        }
        let fsync = self.shared.config.fsync;
        let mut sink = FileSink::spawn(start.file, 0, start.hasher, fsync);
        let expected = size - offset;
        let mut received: u64 = 0;
        let idle = self.shared.config.idle_timeout;

        let trailer = loop {
            let Some(mut buf) = sink.buffer().await else {
                return self.writer_failed(sink, &mut rx_state, &target, expected, received).await;
            };
            let next = tokio::select! {
                biased;
                _ = taken_over.cancelled() => return Err(self.taken_over(&target, received, expected).await),
                next = tokio::time::timeout(idle, read_frame(&mut self.frames, &mut buf)) => next,
            };
            let frame = match next {
                Err(_) => {
                    self.timed_out(idle).await?;
                    return Ok(Outcome { flow: Flow::Close, ..Outcome::new(&target, Err(ErrorCode::Timeout)) });
                }
                Ok(Ok(None) | Err(FrameError::Io(_))) => {
                    let kept = if rx_state.resumable() { "kept for resume" } else { "discarded" };
                    warn!(path = %target, received, expected, "connection lost during upload; partial {kept}");
                    return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(Err(e)) => {
                    self.framing_error(e).await?;
                    unreachable!("framing_error always ends the session");
                }
                Ok(Ok(Some(frame))) => frame,
            };
            match frame {
                Received::Data(n) => {
                    received += n as u64;
                    if received > expected {
                        rx_state.discard();
                        let msg = format!("{target}: more data than the {size} bytes declared");
                        self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                        return Err(ConnError::Protocol(msg));
                    }
                    rx_state.reservation.written = received;
                    if let Some(h) = &holding {
                        h.touch();
                    }
                    if !sink.write(buf, n).await {
                        return self.writer_failed(sink, &mut rx_state, &target, expected, received).await;
                    }
                }
                Received::Other(Frame::End(json)) => break Trailer::decode(&json),
                Received::Other(_) => {
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
            }
        };
        let written = sink.finish().await;
        let verdict = self.verify_upload(&target, expected, received, trailer, written);
        let result = match verdict {
            Ok(hash) => {
                let fsync = self.shared.config.fsync;
                let upload = rx_state.upload.take().expect("upload present until committed");
                let resumable = upload.is_resumable();
                // Measuring the file replaced and replacing it are one step
                // for the quota: no other operation of this user in between.
                let account = rx_state.account.clone();
                let _ops = account.ops.lock().await;
                match tokio::task::spawn_blocking(move || upload.commit(fsync)).await {
                    Ok(Ok(replaced)) => {
                        rx_state.account.adjust(-(replaced as i64));
                        Ok(hash)
                    }
                    failed => {
                        // A private file is gone with its upload: its bytes
                        // never count. A resumable partial stays, counted.
                        if !resumable {
                            rx_state.reservation.written = 0;
                        }
                        let e = failed.map_err(io::Error::other).and_then(|r| r).expect_err("not the Ok arm");
                        Err(io_error(&e, &target))
                    }
                }
            }
            Err((err, keep)) => {
                if !keep {
                    rx_state.discard(); // before answering: nothing is left behind
                }
                Err(err)
            }
        };
        drop(rx_state);
        let bytes = received;
        match result {
            Ok(hash) => {
                self.send_ok(&PutOk { path: target.to_string(), size, hash }).await?;
                let mut outcome = Outcome { bytes, ..Outcome::new(&target, Ok(())) };
                if offset > 0 {
                    outcome.path = format!("{target} (resumed at {offset})");
                }
                Ok(outcome)
            }
            Err(err) => {
                warn!(path = %target, error = %err, "upload rejected");
                let mut outcome = self.refuse(target.to_string(), err).await?;
                outcome.bytes = bytes;
                Ok(outcome)
            }
        }
    }

    /// A small upload without resume: the data is taken into memory first
    /// and checked, then staged to be written, renamed into place and
    /// answered together with the small uploads that follow it (see
    /// `staged.rs`). Refusals other than the quota come after the end frame.
    async fn put_small(&mut self, target: RemotePath, size: u64) -> Result<Outcome, ConnError> {
        let started = Instant::now();
        let account = self.user().account().clone();
        let quota = self.shared.users.quota(&self.user().name);
        let mut reserved = account.reserve(size, quota);
        if reserved.is_err() && !self.staged.is_empty() {
            // The staged uploads still hold their whole size; once written,
            // the files they replace are freed.
            self.commit_staged().await?;
            reserved = account.reserve(size, quota);
        }
        let reservation = match reserved {
            Ok(r) => r,
            Err(over) => {
                let msg = format!(
                    "{target}: the upload needs {} more bytes but only {} are left in your quota",
                    over.needed, over.available
                );
                let err = ErrorBody::new(ErrorCode::QuotaExceeded, msg);
                return self.refuse_upload(target.to_string(), err, size, false).await;
            }
        };
        let idle = self.shared.config.idle_timeout;
        let mut data = Vec::with_capacity(size as usize); // bounded by SMALL_FILE
        let mut buf = Vec::new();
        let trailer = loop {
            let frame = match tokio::time::timeout(idle, read_frame(&mut self.frames, &mut buf)).await {
                Err(_) => {
                    self.timed_out(idle).await?;
                    return Ok(Outcome { flow: Flow::Close, ..Outcome::new(&target, Err(ErrorCode::Timeout)) });
                }
                Ok(Ok(None) | Err(FrameError::Io(_))) => {
                    return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(Err(e)) => {
                    self.framing_error(e).await?;
                    unreachable!("framing_error always ends the session");
                }
                Ok(Ok(Some(frame))) => frame,
            };
            match frame {
                Received::Data(n) if (data.len() + n) as u64 > size => {
                    let msg = format!("{target}: more data than the {size} bytes declared");
                    self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
                Received::Data(n) => data.extend_from_slice(&buf[..n]),
                Received::Other(Frame::End(json)) => break Trailer::decode(&json),
                Received::Other(_) => {
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
            }
        };
        let received = data.len() as u64;
        let hash = blake3::hash(&data);
        match self.verify_upload(&target, size, received, trailer, Ok(hash)) {
            Ok(hash) => {
                let outcome = Outcome { staged: true, ..Outcome::new(&target, Ok(())) };
                self.staged.push(StagedPut { target, data, hash, reservation, started });
                Ok(outcome)
            }
            Err((err, _)) => {
                drop(reservation);
                warn!(path = %target, error = %err, "upload rejected");
                let mut outcome = self.refuse(target.to_string(), err).await?;
                outcome.bytes = received;
                Ok(outcome)
            }
        }
    }

    /// Opens the file an upload writes. If the upload's partial is held by
    /// another session that has received nothing for [`STALLED_AFTER`] (its
    /// client is most likely gone, though the server has not yet seen the
    /// connection drop), that session is told to stop and the partial is
    /// awaited for a few seconds. If the holder is alive (two clients
    /// uploading the same file at once), or does not let go, this upload
    /// goes to a private file instead: both complete, the last one wins.
    async fn begin_upload(
        &self,
        target: &RemotePath,
        size: u64,
        resume: bool,
        hash: Option<String>,
        holder: &HolderKey,
    ) -> io::Result<UploadStart> {
        let attempt = |hash: Option<String>| {
            let t = target.clone();
            self.fs(move |h| h.begin_upload(&t, size, resume, hash.as_deref()))
        };
        // A holder whose connection just dropped lets go within moments.
        for _ in 0..GRACE_POLLS {
            match attempt(hash.clone()).await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::time::sleep(TAKEOVER_POLL).await,
                other => return other,
            }
        }
        if !self.shared.uploads.take_over_if_stalled(holder) {
            let t = target.clone();
            return self.fs(move |h| h.begin_private_upload(&t)).await;
        }
        for _ in 0..TAKEOVER_POLLS {
            tokio::time::sleep(TAKEOVER_POLL).await;
            match attempt(hash.clone()).await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
        let t = target.clone();
        self.fs(move |h| h.begin_private_upload(&t)).await
    }

    /// A newer attempt took this resumable upload over: tell the client
    /// and end the session (the partial stays, for the newer attempt).
    pub(crate) async fn taken_over(&mut self, target: &RemotePath, received: u64, expected: u64) -> ConnError {
        warn!(path = %target, received, expected, "a newer attempt took over this upload; partial kept for resume");
        let msg = format!("{target}: a newer attempt at this upload took over");
        self.send_err(ErrorBody::new(ErrorCode::Aborted, msg.clone())).await.ok();
        ConnError::Protocol(msg)
    }

    /// The disk thread of an upload failed: report why, discard the rest
    /// of the client's data, and leave nothing behind.
    async fn writer_failed(
        &mut self,
        sink: FileSink,
        rx_state: &mut Receiving,
        target: &RemotePath,
        expected: u64,
        received: u64,
    ) -> Result<Outcome, ConnError> {
        let err = match sink.finish().await {
            Err(e) => io_error(&e, target),
            Ok(_) => ErrorBody::new(ErrorCode::Internal, "upload writer failed"),
        };
        rx_state.discard();
        let code = err.code;
        self.send_err(err).await?;
        self.discard_data(expected, received).await?;
        Ok(Outcome { bytes: received, ..Outcome::new(target, Err(code)) })
    }

    /// Checks an upload's end against its declaration. Returns the hash, or
    /// the refusal and whether the partial is worth keeping for a resume.
    fn verify_upload(
        &self,
        target: &RemotePath,
        expected: u64,
        received: u64,
        trailer: Result<Trailer, ftp_proto::DecodeError>,
        written: io::Result<blake3::Hash>,
    ) -> Result<String, (ErrorBody, bool)> {
        let trailer = trailer.map_err(|e| (ErrorBody::new(ErrorCode::BadRequest, e.to_string()), false))?;
        if let Some(err) = trailer.error {
            // A client that found our partial's bytes wrong says so with
            // `integrity`: then the partial goes. Otherwise it stays.
            let keep = err.code != ErrorCode::Integrity;
            let msg = format!("{target}: upload abandoned by client: {}", err.message);
            return Err((ErrorBody::new(ErrorCode::Aborted, msg), keep));
        }
        let actual = written.map_err(|e| (io_error(&e, target), false))?;
        if received != expected {
            let msg = format!("{target}: received {received} of {expected} bytes declared");
            return Err((ErrorBody::new(ErrorCode::Integrity, msg), false));
        }
        let Some(claimed) = trailer.hash else {
            return Err((
                ErrorBody::new(ErrorCode::BadRequest, "the end frame of an upload must carry its hash"),
                false,
            ));
        };
        let hex = actual.to_hex();
        if !claimed.eq_ignore_ascii_case(hex.as_str()) {
            let msg = format!("{target}: hash mismatch: the file received hashes to {hex}");
            return Err((ErrorBody::new(ErrorCode::Integrity, msg), false));
        }
        Ok(hex.to_string())
    }

    /// Refuses an upload before its data. A client that did not ask to
    /// resume has started streaming: read and drop its data frames up to its
    /// end frame. A resuming client waits for our answer and sends nothing.
    pub(crate) async fn refuse_upload(
        &mut self,
        path: String,
        err: ErrorBody,
        size: u64,
        resume: bool,
    ) -> Result<Outcome, ConnError> {
        let outcome = self.refuse(path, err).await?;
        if !resume {
            self.discard_data(size, 0).await?;
        }
        Ok(outcome)
    }

    /// Reads and drops data frames until the end frame. More data than
    /// declared, or a request instead of data, ends the connection.
    pub(crate) async fn discard_data(&mut self, size: u64, mut received: u64) -> Result<(), ConnError> {
        let idle = self.shared.config.idle_timeout;
        loop {
            match tokio::time::timeout(idle, self.frames.next()).await {
                Err(_) => return self.timed_out(idle).await,
                Ok(None) => return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(Some(Err(e))) => return self.framing_error(e).await,
                Ok(Some(Ok(Frame::Data(chunk)))) => {
                    received += chunk.len() as u64;
                    if received > size {
                        let msg = format!("more data than the {size} bytes declared");
                        self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                        return Err(ConnError::Protocol(msg));
                    }
                }
                Ok(Some(Ok(Frame::End(_)))) => return Ok(()),
                Ok(Some(Ok(Frame::Message(_)))) => {
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
            }
        }
    }

    /// `get`: reply with the size and where the data starts, stream the data
    /// frames from there, then an end frame with the hash of the whole file.
    ///
    /// On the filesystem, the `get` requests that follow this one whole in
    /// the read buffer (a client fetching many files pipelines them) are
    /// taken too: one trip to the blocking pool opens them all (and reads
    /// the small ones whole), and the small ones are answered with one
    /// flush. Each is answered, and logged, in order, as if alone.
    pub(crate) async fn get(&mut self, path: &str, offset: u64, since: Option<Version>) -> Result<Outcome, ConnError> {
        if let Files::Objects(objects) = &self.user().files {
            let target = match self.resolve(path) {
                Ok(p) => p,
                Err(e) => return self.refuse(path.to_owned(), e).await,
            };
            return self.get_object(objects.clone(), target, offset, since).await;
        }
        let mut wanted = vec![WantedGet { path: path.to_owned(), offset, since, started: Instant::now() }];
        self.take_pipelined_gets(&mut wanted);
        let targets: Vec<Result<RemotePath, ErrorBody>> = wanted.iter().map(|w| self.resolve(&w.path)).collect();
        let asks: Vec<_> = targets.iter().zip(&wanted).map(|(t, w)| (t.clone().ok(), w.offset, w.since)).collect();
        let opened = self
            .fs(move |h| {
                Ok(asks.into_iter().map(|(t, offset, since)| t.map(|t| open_for_get(h, &t, offset, since))).collect())
            })
            .await;
        let opened: Vec<Option<io::Result<(GetOk, Opened)>>> = match opened {
            Ok(opened) => opened,
            Err(e) => wanted.iter().map(|_| Some(Err(io::Error::new(e.kind(), e.to_string())))).collect(),
        };
        // Replies for small files wait here to go out together.
        let mut queued: Vec<Frame> = Vec::new();
        let mut last = None;
        let count = wanted.len();
        for (i, ((want, target), opened)) in wanted.into_iter().zip(targets).zip(opened).enumerate() {
            // A resolved path always has its open result; `None` stays an
            // error rather than a panic.
            let ready = match target {
                Err(e) => Err((want.path, e)),
                Ok(target) => match opened.unwrap_or_else(|| Err(io::Error::other("not opened"))) {
                    Ok(pair) => Ok((target, pair)),
                    Err(e) => Err((target.to_string(), io_error(&e, &target))),
                },
            };
            let outcome = match ready {
                Err((path, err)) => {
                    queued.push(Frame::Message(encode_err(&err)));
                    Outcome::new(path, Err(err.code))
                }
                Ok((target, (head, Opened::Read(data)))) => {
                    let hash = blake3::hash(&data).to_hex().to_string();
                    queued.push(Frame::Message(ftp_proto::encode_ok(&head)));
                    if !data.is_empty() {
                        queued.push(Frame::Data(data.into()));
                    }
                    queued.push(Frame::End(Trailer { hash: Some(hash), ..Trailer::default() }.encode()));
                    Outcome { bytes: head.size, ..Outcome::new(&target, Ok(())) }
                }
                Ok((target, (head, Opened::File(file)))) => {
                    self.send_all(std::mem::take(&mut queued)).await?;
                    self.stream_file(target, head, file).await?
                }
            };
            if i + 1 == count {
                last = Some(outcome);
            } else {
                let elapsed = want.started.elapsed();
                self.shared.metrics.request("get", Some(outcome.result), outcome.bytes, elapsed);
                log_request("get", &outcome, elapsed);
            }
        }
        self.send_all(queued).await?;
        // The last one is logged by the caller, after the others.
        Ok(last.expect("at least the first get"))
    }

    /// Moves the `get` requests that follow whole in the read buffer into
    /// `wanted` (up to [`MAX_GETS`] in all). Stops at anything else, which
    /// the request loop then reads as usual.
    fn take_pipelined_gets(&mut self, wanted: &mut Vec<WantedGet>) {
        while wanted.len() < MAX_GETS {
            let Some((taken, json)) = self.frames.codec().whole_message(self.frames.read_buffer()) else {
                return;
            };
            let Ok(Request::Get { path, offset, since }) = Request::decode(json) else {
                return;
            };
            self.frames.read_buffer_mut().advance(taken);
            wanted.push(WantedGet { path, offset, since, started: Instant::now() });
        }
    }

    /// Streams an opened file from `head.offset`: the reply, the data
    /// frames, then an end frame with the hash of the whole file.
    async fn stream_file(
        &mut self,
        target: RemotePath,
        head: GetOk,
        file: std::fs::File,
    ) -> Result<Outcome, ConnError> {
        let GetOk { size, offset, .. } = head;
        self.send_ok(&head).await?;
        let mut source = FileSource::spawn(file, offset, size - offset, blake3::Hasher::new(), DEFAULT_CHUNK);
        let mut sent = 0u64;
        while let Some((buf, n)) = source.next().await {
            sent += n as u64;
            self.send_data(&buf[..n]).await?;
            source.recycle(buf);
        }
        let trailer = match source.finish().await {
            Ok(hash) => Trailer { hash: Some(hash.to_hex().to_string()), ..Trailer::default() },
            Err(e) => {
                warn!(path = %target, error = %e, "read failed during download");
                Trailer { error: Some(io_error(&e, &target)), ..Trailer::default() }
            }
        };
        let ok = trailer.error.is_none();
        self.send(Frame::End(trailer.encode())).await?;
        let result = if ok { Ok(()) } else { Err(ErrorCode::Internal) };
        let mut outcome = Outcome { bytes: sent, ..Outcome::new(&target, result) };
        if offset > 0 {
            outcome.path = format!("{target} (resumed at {offset})");
        }
        Ok(outcome)
    }
}

/// Opens a file for `get` (blocking): its head, and the file itself, or
/// its whole content when it is small and wanted from the start. A small
/// file is read and hashed right here, in the same trip to the blocking
/// pool: with many small files those trips are most of the cost.
fn open_for_get(h: &Home, target: &RemotePath, offset: u64, since: Option<Version>) -> io::Result<(GetOk, Opened)> {
    let (file, meta) = h.open_read(target)?;
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    // Continue only where the client's bytes can still be part of this
    // file; the whole-file hash at the end settles it anyway.
    let unchanged = since.is_none_or(|v| v == Version { size, mtime });
    let offset = if offset <= size && unchanged { offset } else { 0 };
    let head = GetOk { size, mtime, offset };
    let mut file = file.into_std();
    if size <= SMALL_FILE && offset == 0 {
        let mut data = Vec::with_capacity(size as usize);
        io::Read::read_to_end(&mut io::Read::take(&mut file, size), &mut data)?;
        if data.len() as u64 == size {
            return Ok((head, Opened::Read(data)));
        }
        io::Seek::rewind(&mut file)?; // it changed: stream it
    }
    Ok((head, Opened::File(file)))
}

/// Most `get` requests opened in one trip to the blocking pool.
const MAX_GETS: usize = 64;

/// A `get` request taken from the read buffer.
struct WantedGet {
    path: String,
    offset: u64,
    since: Option<Version>,
    started: Instant,
}

/// Files up to this size are sent from one read into memory, and received
/// into memory before one write, instead of through a [`FileSource`] or
/// [`FileSink`] thread. Uploads asking to resume always stream.
const SMALL_FILE: u64 = 256 << 10;

/// Whether `request` may join the small uploads staged before it (on the
/// filesystem; nothing is staged on object storage): a small upload that
/// does not ask to resume.
pub(crate) fn may_be_staged(request: &Request) -> bool {
    matches!(request, Request::Put { resume: false, size, .. } if *size <= SMALL_FILE)
}

/// A file opened for download.
enum Opened {
    /// Small: read whole already.
    Read(Vec<u8>),
    /// Streamed from here.
    File(std::fs::File),
}

/// Identifies a resumable upload: user, target path, size.
pub(crate) type HolderKey = (String, String, u64);

/// How long a session holding a partial may go without receiving data
/// before a new attempt at the same upload may take the partial over.
pub const STALLED_AFTER: Duration = Duration::from_secs(2);

/// How often, and how many times, a new attempt at an upload checks whether
/// the session it took over from has let go of the partial.
const TAKEOVER_POLL: Duration = Duration::from_millis(50);
const TAKEOVER_POLLS: usize = 100;
/// Polls before deciding whether the holder is stalled or alive.
const GRACE_POLLS: usize = 10;

/// The sessions holding resumable partials, so that a new attempt at the
/// same upload can take over from one whose client has gone.
#[derive(Debug, Default)]
pub struct Holders {
    map: Mutex<HashMap<HolderKey, Holder>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Holder {
    id: u64,
    token: CancellationToken,
    last_data: Arc<Mutex<Instant>>,
}

/// Registration of a session as a partial's holder, removed on drop.
pub(crate) struct Holding<'a> {
    holders: &'a Holders,
    key: HolderKey,
    id: u64,
    last_data: Arc<Mutex<Instant>>,
    /// Cancelled when a newer attempt takes the partial over.
    pub token: CancellationToken,
}

impl Holders {
    /// Registers the caller as the holder of `key`.
    pub(crate) fn hold(&self, key: HolderKey) -> Holding<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let last_data = Arc::new(Mutex::new(Instant::now()));
        let holder = Holder { id, token: token.clone(), last_data: last_data.clone() };
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), holder);
        Holding { holders: self, key, id, last_data, token }
    }

    fn is_held(&self, key: &HolderKey) -> bool {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).contains_key(key)
    }

    /// Whether a new attempt at upload `key` may continue its held parts:
    /// nobody in this daemon holds them, the holder lets go within a few
    /// polls, or it has stalled and lets go once told to stop. `false`
    /// means a live session is sending the same upload (or would not let
    /// go): the new attempt goes to a private upload instead, as
    /// [`Session::put`] does on the filesystem.
    pub(crate) async fn free_or_taken_over(&self, key: &HolderKey) -> bool {
        for _ in 0..GRACE_POLLS {
            if !self.is_held(key) {
                return true;
            }
            tokio::time::sleep(TAKEOVER_POLL).await;
        }
        if !self.take_over_if_stalled(key) {
            return false;
        }
        // Told to stop: wait for it to let go, as a new attempt on the
        // filesystem waits for the partial's lock.
        for _ in 0..TAKEOVER_POLLS {
            if !self.is_held(key) {
                return true;
            }
            tokio::time::sleep(TAKEOVER_POLL).await;
        }
        false
    }

    /// Tells the holder of `key` to let go if it has received nothing for
    /// [`STALLED_AFTER`]. Returns whether it was told.
    fn take_over_if_stalled(&self, key: &HolderKey) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(holder) = map.get(key) else { return true }; // about to let go
        let idle = holder.last_data.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if idle < STALLED_AFTER {
            return false;
        }
        holder.token.cancel();
        true
    }
}

impl Holding<'_> {
    /// Records that data arrived.
    pub(crate) fn touch(&self) {
        *self.last_data.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        let mut map = self.holders.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|h| h.id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// An upload being received: its file and its space reservation, settled
/// together however the upload ends.
struct Receiving {
    upload: Option<Upload>,
    reservation: Reservation,
    account: Arc<Account>,
    offset: u64,
}

impl Receiving {
    fn resumable(&self) -> bool {
        self.upload.as_ref().is_some_and(Upload::is_resumable)
    }

    /// Deletes the partial and takes all its bytes out of the usage.
    fn discard(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.discard();
            self.reservation.written = 0;
            self.account.adjust(-(self.offset as i64));
        }
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        // A private temporary file is removed with its upload: its bytes
        // never count. A resumable partial keeps them.
        if self.upload.as_ref().is_some_and(|u| !u.is_resumable()) {
            self.reservation.written = 0;
        }
    }
}
