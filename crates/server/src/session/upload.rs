//! `put`: one upload loop for every upload, from data frames into the
//! transfer layer.
//!
//! Without `resume` the client streams all `size` bytes and an end frame
//! without waiting; the server replies once: early with an error (and then
//! drops the data up to the end frame), or after the end frame with the
//! verdict. With `resume` the server first answers [`PutReady`] with the
//! bytes it already holds, and the client sends the rest.
//!
//! Small uploads without `resume` arrive pipelined (PROTOCOL.md §6): each
//! is received whole and checked, then staged; the staged ones are stored
//! and answered together, in order, as soon as
//! - no further request is waiting whole in the read buffer,
//! - a request other than a small upload arrives (it runs only once the
//!   files staged before it are in place),
//! - any other reply is about to be sent, or
//! - the batch holds [`MAX_FILES`] files or [`MAX_BYTES`] bytes.

use super::connection::ConnError;
use super::reply::error_body;
use super::{Outcome, Session, Swallow};
use crate::transfer::{End, Error, PutOptions, SMALL_FILE, SmallPut, Upload};
use ftp_proto::bulk::Received;
use ftp_proto::{ErrorBody, ErrorCode, Frame, PutOk, PutReady, RemotePath, Request, Trailer, encode_err, encode_ok};
use std::pin::Pin;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

/// Most uploads staged at once.
const MAX_FILES: usize = 64;
/// Most bytes staged at once (with one file of up to the small-file limit
/// on top, being received).
const MAX_BYTES: usize = 1 << 20;

/// Whether `request` may join the small uploads staged before it: a small
/// upload that does not ask to resume.
pub(super) fn may_be_staged(request: &Request) -> bool {
    matches!(request, Request::Put { resume: false, size, .. } if *size <= SMALL_FILE)
}

/// The small uploads staged in one session.
#[derive(Default)]
pub(super) struct Staged {
    puts: Vec<(SmallPut, blake3::Hash, Instant)>,
    bytes: usize,
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }

    /// Whether the batch is as large as it may grow.
    pub fn is_full(&self) -> bool {
        self.puts.len() >= MAX_FILES || self.bytes >= MAX_BYTES
    }
}

/// What the upload loop takes data into.
trait Incoming {
    fn remaining(&self) -> u64;
    /// Resolves when a newer attempt takes the upload over.
    fn taken_over(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    async fn buffer(&mut self) -> Result<Vec<u8>, Error>;
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<(), Error>;
}

impl Incoming for Upload {
    fn remaining(&self) -> u64 {
        Upload::remaining(self)
    }
    fn taken_over(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Upload::taken_over(self))
    }
    async fn buffer(&mut self) -> Result<Vec<u8>, Error> {
        Upload::buffer(self).await
    }
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<(), Error> {
        Upload::write(self, buf, n).await
    }
}

impl Incoming for SmallPut {
    fn remaining(&self) -> u64 {
        SmallPut::remaining(self)
    }
    fn taken_over(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::pending())
    }
    async fn buffer(&mut self) -> Result<Vec<u8>, Error> {
        Ok(SmallPut::buffer(self))
    }
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<(), Error> {
        SmallPut::write(self, buf, n).await;
        Ok(())
    }
}

/// How the data of an upload ended.
enum Arrived {
    /// The end frame: how the sender ended it, or why it can't be read.
    End(Result<End, ErrorBody>),
    /// The store failed; the rest of the client's data is to be dropped.
    Failed(Error),
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `put`. Returns `None` for a small upload staged to be stored with
    /// the ones after it.
    pub(super) async fn put(
        &mut self,
        path: &str,
        size: u64,
        resume: bool,
        hash: Option<String>,
        options: PutOptions,
    ) -> Result<Option<Outcome>, ConnError> {
        let target = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse_upload(path.to_owned(), e, size, resume).await.map(Some),
        };
        let declared = match hash.as_deref().map(blake3::Hash::from_hex).transpose() {
            Ok(declared) => declared,
            Err(_) => {
                let err = ErrorBody::new(ErrorCode::BadRequest, "`hash` must be 64 hex digits");
                return self.refuse_upload(target.to_string(), err, size, resume).await.map(Some);
            }
        };
        self.running = Some((target.to_string(), 0));
        if !resume && size <= SMALL_FILE {
            return self.put_small(target, size, declared, options).await;
        }
        let mut upload = match self.files().begin_upload(&target, size, resume, declared, options).await {
            Ok(upload) => upload,
            Err(e) => {
                let err = error_body(&e, &target);
                return self.refuse_upload(target.to_string(), err, size, resume).await.map(Some);
            }
        };
        let offset = upload.offset();
        if resume {
            let prefix_hash = upload.prefix_hash().to_hex().to_string();
            self.send_ok(&PutReady { offset, prefix_hash }).await?;
        }
        let arrived = match self.receive(&mut upload, &target, size).await {
            Ok(arrived) => arrived,
            Err(e) => {
                match &e {
                    ConnError::Io(_) | ConnError::Timeout(_) => {
                        let left = upload.remaining();
                        match upload.abort().await {
                            0 => warn!(path = %target, left, "upload broke off ({e}); nothing kept"),
                            kept => {
                                warn!(path = %target, left, kept, "upload broke off ({e}); partial kept for resume")
                            }
                        }
                    }
                    // The client broke the protocol mid-upload: what it sent
                    // can't be trusted.
                    ConnError::Protocol(_) => upload.fail().await,
                    // Taken over: the partial is the newer attempt's now.
                    ConnError::TakenOver(_) => {}
                }
                // Dropped unfinished: a resumable upload keeps its partial.
                return Err(e);
            }
        };
        let received = size - offset - upload.remaining();
        let result = match arrived {
            Arrived::Failed(e) => {
                warn!(path = %target, error = %e, "upload failed");
                let left = upload.remaining();
                upload.fail().await;
                self.swallow = Some(Swallow { left: Some(left) });
                Err(error_body(&e, &target))
            }
            Arrived::End(Err(body)) => {
                upload.abort().await;
                Err(body)
            }
            Arrived::End(Ok(end)) => upload.finish(end).await.map_err(|e| error_body(&e, &target)),
        };
        let mut outcome = match result {
            Ok(done) => {
                let hash = done.hash.to_hex().to_string();
                self.send_ok(&PutOk { path: target.to_string(), size, hash, mtime: done.mtime }).await?;
                Outcome::new(&target, Ok(()))
            }
            Err(err) => {
                warn!(path = %target, error = %err, "upload rejected");
                self.refuse(target.to_string(), err).await?
            }
        };
        outcome.bytes = received;
        if offset > 0 {
            outcome.path = format!("{target} (resumed at {offset})");
        }
        Ok(Some(outcome))
    }

    /// A small upload without resume: received into memory, checked, and
    /// staged to be stored and answered with the small uploads after it.
    /// Refusals other than the quota come after the end frame.
    async fn put_small(
        &mut self,
        target: RemotePath,
        size: u64,
        declared: Option<blake3::Hash>,
        options: PutOptions,
    ) -> Result<Option<Outcome>, ConnError> {
        let started = Instant::now();
        let files = self.files();
        let mut begun = files.begin_small(&target, size, declared, options).await;
        if matches!(begun, Err(Error::OverQuota { .. })) && !self.staged.is_empty() {
            // The staged uploads still hold their whole size; once stored,
            // the files they replace are freed.
            self.store_staged().await?;
            begun = files.begin_small(&target, size, declared, options).await;
        }
        let mut put = match begun {
            Ok(put) => put,
            Err(e) => {
                let err = error_body(&e, &target);
                return self.refuse_upload(target.to_string(), err, size, false).await.map(Some);
            }
        };
        let checked = match self.receive(&mut put, &target, size).await? {
            Arrived::End(Ok(end)) => put.check(end).map_err(|e| error_body(&e, &target)),
            Arrived::End(Err(body)) => Err(body),
            Arrived::Failed(e) => Err(error_body(&e, &target)),
        };
        match checked {
            Ok(hash) => {
                self.staged.bytes += size as usize;
                self.staged.puts.push((put, hash, started));
                Ok(None)
            }
            Err(err) => {
                warn!(path = %target, error = %err, "upload rejected");
                let mut outcome = self.refuse(target.to_string(), err).await?;
                outcome.bytes = size - put.remaining();
                Ok(Some(outcome))
            }
        }
    }

    /// The one upload loop: data frames into `into` up to the end frame,
    /// within the idle timeout. More data than declared, or a request
    /// instead of data, ends the connection; so does a newer attempt
    /// taking the upload over (the client is told `aborted`).
    async fn receive(
        &mut self,
        into: &mut impl Incoming,
        target: &RemotePath,
        size: u64,
    ) -> Result<Arrived, ConnError> {
        let mut taken_over = into.taken_over();
        loop {
            // A buffer (room in the transfers' budget) only once the client
            // sends a chunk: a client that pauses holds none, and while
            // this one waits for room its socket is not read.
            let data_next = tokio::select! {
                biased;
                _ = &mut taken_over => return Err(self.taken_over(target).await),
                next = self.conn.data_next() => next?,
            };
            let mut buf = Vec::new();
            if data_next {
                buf = match into.buffer().await {
                    Ok(buf) => buf,
                    Err(e) => return Ok(Arrived::Failed(e)),
                };
            }
            let frame = tokio::select! {
                biased;
                _ = &mut taken_over => return Err(self.taken_over(target).await),
                frame = self.conn.read_frame(&mut buf) => frame?,
            };
            match frame {
                Received::Data(n) => {
                    if n as u64 > into.remaining() {
                        let msg = format!("{target}: more data than the {size} bytes declared");
                        return Err(self.conn.violation(ErrorCode::Integrity, msg).await);
                    }
                    if let Some((_, bytes)) = &mut self.running {
                        *bytes += n as u64;
                    }
                    if let Err(e) = into.write(buf, n).await {
                        return Ok(Arrived::Failed(e));
                    }
                }
                Received::Other(Frame::End(json)) => return Ok(Arrived::End(end_of(&json))),
                Received::Other(_) => {
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    return Err(self.conn.violation(ErrorCode::BadRequest, msg).await);
                }
            }
        }
    }

    /// Tells the client a newer attempt took its upload over.
    async fn taken_over(&mut self, target: &RemotePath) -> ConnError {
        warn!(path = %target, "a newer attempt took over this upload; partial kept for it");
        let msg = format!("{target}: a newer attempt at this upload took over");
        let _ = self.conn.send_err(ErrorBody::new(ErrorCode::Aborted, msg.clone())).await;
        ConnError::TakenOver(msg)
    }

    /// Refuses an upload before its data. A client that did not ask to
    /// resume has started streaming: its data frames and end frame are
    /// dropped as they come. A resuming client waits for our answer.
    async fn refuse_upload(
        &mut self,
        path: String,
        err: ErrorBody,
        size: u64,
        resume: bool,
    ) -> Result<Outcome, ConnError> {
        let outcome = self.refuse(path, err).await?;
        if !resume {
            self.swallow = Some(Swallow { left: Some(size) });
        }
        Ok(outcome)
    }

    /// Stores the staged uploads, in order, and answers each, with one
    /// flush for all the replies.
    pub(super) async fn store_staged(&mut self) -> Result<(), ConnError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staged).puts;
        let files = self.files();
        let mut answers = Vec::with_capacity(staged.len());
        let mut puts = Vec::with_capacity(staged.len());
        for (put, hash, started) in staged {
            answers.push((put.path(), put.size(), hash, started));
            puts.push(put);
        }
        let results = files.store_small(puts).await;
        let mut replies = Vec::with_capacity(answers.len());
        for ((target, size, hash, started), result) in answers.into_iter().zip(results) {
            let outcome = match result {
                Ok(mtime) => {
                    let ok = PutOk { path: target.to_string(), size, hash: hash.to_hex().to_string(), mtime };
                    replies.push(Frame::Message(encode_ok(&ok)));
                    Ok(())
                }
                Err(e) => {
                    let err = error_body(&e, &target);
                    warn!(path = %target, error = %err, "upload rejected");
                    replies.push(Frame::Message(encode_err(&err)));
                    Err(err.code.as_str())
                }
            };
            self.shared.engine().finished("put", &target.to_string(), size, outcome, started.elapsed());
        }
        self.conn.send_all(replies).await
    }
}

/// How the sender ended an upload, from its end frame.
fn end_of(json: &[u8]) -> Result<End, ErrorBody> {
    let trailer = Trailer::decode(json).map_err(|e| ErrorBody::new(ErrorCode::BadRequest, e.to_string()))?;
    if let Some(err) = trailer.error {
        // A client that found our partial's bytes wrong says so with
        // `integrity`: then the partial goes. Otherwise it stays.
        return Ok(End::Abandoned { message: err.message, integrity: err.code == ErrorCode::Integrity });
    }
    let Some(hash) = trailer.hash else {
        return Err(ErrorBody::new(ErrorCode::BadRequest, "the end frame of an upload must carry its hash"));
    };
    blake3::Hash::from_hex(&hash)
        .map(End::Hash)
        .map_err(|_| ErrorBody::new(ErrorCode::BadRequest, "the end frame's hash must be 64 hex digits"))
}
