//! Uploads and downloads when the files live in object storage: the same
//! protocol as [`crate::transfer`], with the bytes going to and from the
//! bucket through [`ObjectHome`] (multipart uploads completed only after
//! the hash check; downloads streamed from the store).
//!
//! An upload sent with `resume` keeps its parts and a record in the bucket
//! when it breaks off ([`crate::objstore::Resumable`]), and the next
//! attempt, on this daemon or another, continues it.

use crate::accounts::Account;
use crate::errors::io_error;
use crate::objstore::{ObjectHome, Removed};
use crate::session::{ConnError, Flow, Outcome, Session};
use crate::transfer::Holding;
use ftp_proto::bulk::{Received, read_frame};
use ftp_proto::{
    ErrorBody, ErrorCode, Frame, FrameError, GetOk, MAX_CHUNK, PutOk, PutReady, RemotePath, Trailer, Version,
};
use futures::StreamExt;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `put` into the bucket.
    pub(crate) async fn put_object(
        &mut self,
        objects: ObjectHome,
        target: RemotePath,
        size: u64,
        resume: bool,
        hash: Option<String>,
    ) -> Result<Outcome, ConnError> {
        if resume && size > 0 {
            let key = (self.user().name.clone(), target.to_string(), size);
            let shared = self.shared.clone();
            if shared.uploads.free_or_taken_over(&key).await {
                let holding = shared.uploads.hold(key);
                return self.put_object_resumable(objects, target, size, hash, &holding).await;
            }
            // Another session here is sending this very upload: this one
            // goes to an upload of its own (from offset 0), and the last
            // to complete wins.
        }
        let quota = self.shared.users.quota(&self.user().name);
        let mut hold = match objects.reserve(size, quota, None).await {
            Ok(Ok(id)) => Hold::new(&objects, self.user().account(), id),
            Ok(Err(over)) => {
                let msg = format!(
                    "{target}: the upload needs {} more bytes but only {} are left in your quota",
                    over.needed, over.available
                );
                let err = ErrorBody::new(ErrorCode::QuotaExceeded, msg);
                return self.refuse_upload(target.to_string(), err, size, resume).await;
            }
            Err(e) => return self.refuse_upload(target.to_string(), io_error(&e, &target), size, resume).await,
        };
        let account = self.user().account().clone();
        let mut upload = match objects.upload(&target).await {
            Ok(upload) => upload,
            Err(e) => return self.refuse_upload(target.to_string(), io_error(&e, &target), size, resume).await,
        };
        if resume {
            // An empty file: nothing to hold.
            let empty = blake3::Hasher::new().finalize().to_hex().to_string();
            self.send_ok(&PutReady { offset: 0, prefix_hash: empty }).await?;
        }
        let idle = self.shared.config.idle_timeout;
        let mut buf = Vec::new();
        let trailer = loop {
            let frame = match tokio::time::timeout(idle, read_frame(&mut self.frames, &mut buf)).await {
                Err(_) => {
                    upload.abort().await;
                    self.timed_out(idle).await?;
                    return Ok(Outcome { flow: Flow::Close, ..Outcome::new(&target, Err(ErrorCode::Timeout)) });
                }
                Ok(Ok(None) | Err(FrameError::Io(_))) => {
                    warn!(path = %target, received = upload.written(), "connection lost during upload; partial discarded");
                    upload.abort().await;
                    return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(Err(e)) => {
                    upload.abort().await;
                    self.framing_error(e).await?;
                    unreachable!("framing_error always ends the session");
                }
                Ok(Ok(Some(frame))) => frame,
            };
            match frame {
                Received::Data(n) if upload.written() + n as u64 > size => {
                    upload.abort().await;
                    let msg = format!("{target}: more data than the {size} bytes declared");
                    self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
                Received::Data(n) => {
                    hold.keep_alive();
                    if let Err(e) = upload.write(&buf[..n]).await {
                        let received = upload.written() + n as u64;
                        upload.abort().await;
                        warn!(path = %target, error = %e, "object store failed during upload");
                        let err = io_error(&e, &target);
                        let code = err.code;
                        self.send_err(err).await?;
                        self.discard_data(size, received).await?;
                        return Ok(Outcome { bytes: received, ..Outcome::new(&target, Err(code)) });
                    }
                }
                Received::Other(Frame::End(json)) => break Trailer::decode(&json),
                Received::Other(_) => {
                    upload.abort().await;
                    let msg = "a request arrived in the middle of an upload".to_owned();
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
            }
        };
        let received = upload.written();
        let claimed = match trailer {
            Ok(Trailer { error: Some(err), .. }) => {
                upload.abort().await;
                let msg = format!("{target}: upload abandoned by client: {}", err.message);
                return self.refused_upload(&target, ErrorBody::new(ErrorCode::Aborted, msg), received).await;
            }
            Ok(Trailer { hash: Some(hash), .. }) => hash,
            Ok(_) => {
                upload.abort().await;
                let err = ErrorBody::new(ErrorCode::BadRequest, "the end frame of an upload must carry its hash");
                return self.refused_upload(&target, err, received).await;
            }
            Err(e) => {
                upload.abort().await;
                return self
                    .refused_upload(&target, ErrorBody::new(ErrorCode::BadRequest, e.to_string()), received)
                    .await;
            }
        };
        // Measuring the object replaced and replacing it are one step for
        // the quota (in this daemon; see the README on several daemons).
        let ops = account.ops.lock().await;
        let replaced = objects.as_removed(&target).await.ok().flatten().unwrap_or_default();
        let result = match upload.finish(size, &claimed).await {
            Ok(hash) => {
                hold.settle(size, replaced).await;
                Ok(hash.to_hex().to_string())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(ErrorBody::new(ErrorCode::Integrity, format!("{target}: {e}")))
            }
            Err(e) => Err(io_error(&e, &target)),
        };
        drop(ops);
        drop(hold);
        match result {
            Ok(hash) => {
                self.send_ok(&PutOk { path: target.to_string(), size, hash }).await?;
                Ok(Outcome { bytes: received, ..Outcome::new(&target, Ok(())) })
            }
            Err(err) => self.refused_upload(&target, err, received).await,
        }
    }

    /// `put` with `resume` into the bucket: answer with the bytes held,
    /// then take the rest.
    async fn put_object_resumable(
        &mut self,
        objects: ObjectHome,
        target: RemotePath,
        size: u64,
        hash: Option<String>,
        holding: &Holding<'_>,
    ) -> Result<Outcome, ConnError> {
        let mut upload = match objects.begin_resumable(&target, size, hash.as_deref()).await {
            Ok(upload) => upload,
            Err(e) => return self.refuse(target.to_string(), io_error(&e, &target)).await,
        };
        let offset = upload.offset();
        let account = self.user().account().clone();
        let quota = self.shared.users.quota(&self.user().name);
        // The whole size; the partial's own hold gives way to it.
        let partial_id = upload.partial_id();
        let mut hold = match objects.reserve(size, quota, Some(&partial_id)).await {
            Ok(Ok(id)) => Hold::new(&objects, self.user().account(), id),
            Ok(Err(over)) => {
                let msg = format!(
                    "{target}: the upload needs {} more bytes but only {} are left in your quota",
                    over.needed, over.available
                );
                return self.refuse(target.to_string(), ErrorBody::new(ErrorCode::QuotaExceeded, msg)).await;
            }
            Err(e) => return self.refuse(target.to_string(), io_error(&e, &target)).await,
        };
        let keep_for = self.shared.config.partial_max_age;
        hold.partial = Some(Partial { id: partial_id, held: offset, kept: true, keep_for });
        let prefix_hash = match upload.prefix_hash() {
            Ok(h) => h,
            Err(e) => {
                hold.forget_partial();
                upload.discard().await;
                return self.refuse(target.to_string(), io_error(&e, &target)).await;
            }
        };
        self.send_ok(&PutReady { offset, prefix_hash }).await?;
        let idle = self.shared.config.idle_timeout;
        let mut buf = Vec::new();
        let mut received = 0u64;
        let expected = size - offset;
        let trailer = loop {
            let next = tokio::select! {
                biased;
                _ = holding.token.cancelled() => return Err(self.taken_over(&target, received, expected).await),
                next = tokio::time::timeout(idle, read_frame(&mut self.frames, &mut buf)) => next,
            };
            let frame = match next {
                Err(_) => {
                    self.timed_out(idle).await?;
                    return Ok(Outcome { flow: Flow::Close, ..Outcome::new(&target, Err(ErrorCode::Timeout)) });
                }
                Ok(Ok(None) | Err(FrameError::Io(_))) => {
                    warn!(path = %target, received, expected, "connection lost during upload; partial kept for resume");
                    return Err(ConnError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(Err(e)) => {
                    self.framing_error(e).await?;
                    unreachable!("framing_error always ends the session");
                }
                Ok(Ok(Some(frame))) => frame,
            };
            match frame {
                Received::Data(n) if received + n as u64 > expected => {
                    hold.forget_partial();
                    upload.discard().await;
                    let msg = format!("{target}: more data than the {size} bytes declared");
                    self.send_err(ErrorBody::new(ErrorCode::Integrity, msg.clone())).await.ok();
                    return Err(ConnError::Protocol(msg));
                }
                Received::Data(n) => {
                    received += n as u64;
                    hold.keep_alive();
                    let written = upload.write(&buf[..n]).await;
                    // After the write: a part going to the store is progress.
                    holding.touch();
                    if let Some(p) = &mut hold.partial {
                        p.held = upload.offset();
                    }
                    if let Err(e) = written {
                        warn!(path = %target, error = %e, "upload stopped");
                        let code = if e.kind() == io::ErrorKind::WouldBlock {
                            ErrorCode::Aborted
                        } else {
                            io_error(&e, &target).code
                        };
                        let msg = format!("{target}: {e}");
                        self.send_err(ErrorBody::new(code, msg.clone())).await.ok();
                        return Err(ConnError::Protocol(msg));
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
        let claimed = match trailer {
            Ok(Trailer { error: Some(err), .. }) => {
                // `integrity`: the client found our bytes wrong; drop them.
                // Anything else keeps them for the next attempt.
                if err.code == ErrorCode::Integrity {
                    hold.forget_partial();
                    upload.discard().await;
                }
                let msg = format!("{target}: upload abandoned by client: {}", err.message);
                return self.refused_upload(&target, ErrorBody::new(ErrorCode::Aborted, msg), received).await;
            }
            Ok(Trailer { hash: Some(hash), .. }) => hash,
            Ok(_) => {
                let err = ErrorBody::new(ErrorCode::BadRequest, "the end frame of an upload must carry its hash");
                return self.refused_upload(&target, err, received).await;
            }
            Err(e) => {
                return self
                    .refused_upload(&target, ErrorBody::new(ErrorCode::BadRequest, e.to_string()), received)
                    .await;
            }
        };
        let ops = account.ops.lock().await;
        let replaced = objects.as_removed(&target).await.ok().flatten().unwrap_or_default();
        // However it ends, the partial is gone: completed or dropped.
        hold.forget_partial();
        let result = match upload.finish(&claimed).await {
            Ok(hash) => {
                hold.settle(size, replaced).await;
                Ok(hash.to_hex().to_string())
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(ErrorBody::new(ErrorCode::Integrity, format!("{target}: {e}")))
            }
            Err(e) => Err(io_error(&e, &target)),
        };
        drop(ops);
        drop(hold);
        match result {
            Ok(hash) => {
                self.send_ok(&PutOk { path: target.to_string(), size, hash }).await?;
                let mut outcome = Outcome { bytes: received, ..Outcome::new(&target, Ok(())) };
                if offset > 0 {
                    outcome.path = format!("{target} (resumed at {offset})");
                }
                Ok(outcome)
            }
            Err(err) => self.refused_upload(&target, err, received).await,
        }
    }

    async fn refused_upload(&mut self, target: &RemotePath, err: ErrorBody, bytes: u64) -> Result<Outcome, ConnError> {
        warn!(path = %target, error = %err, "upload rejected");
        let mut outcome = self.refuse(target.to_string(), err).await?;
        outcome.bytes = bytes;
        Ok(outcome)
    }

    /// `get` from the bucket. The whole object is read (the end frame's
    /// hash covers all of it); the bytes before `offset` are hashed only.
    pub(crate) async fn get_object(
        &mut self,
        objects: ObjectHome,
        target: RemotePath,
        offset: u64,
        since: Option<Version>,
    ) -> Result<Outcome, ConnError> {
        let mut download = match objects.download(&target, 0).await {
            Ok(d) => d,
            Err(e) => return self.refuse(target.to_string(), io_error(&e, &target)).await,
        };
        let (size, mtime) = (download.size, download.mtime);
        let unchanged = since.is_none_or(|v| v == Version { size, mtime });
        let offset = if offset <= size && unchanged { offset } else { 0 };
        self.send_ok(&GetOk { size, mtime, offset }).await?;
        let mut hasher = blake3::Hasher::new();
        let (mut position, mut sent) = (0u64, 0u64);
        let mut failure = None;
        while let Some(chunk) = download.stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            hasher.update(&chunk);
            let len = chunk.len() as u64;
            let skip = offset.saturating_sub(position).min(len) as usize;
            for piece in chunk[skip..].chunks(MAX_CHUNK) {
                self.send_data(piece).await?;
                sent += piece.len() as u64;
            }
            position += len;
        }
        if failure.is_none() && position != size {
            failure = Some(io::Error::other("the object changed during the download"));
        }
        let trailer = match failure {
            None => Trailer { hash: Some(hasher.finalize().to_hex().to_string()), ..Trailer::default() },
            Some(e) => {
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

/// An upload's reservation in the bucket's usage record: settled with the
/// space the upload added once it completes, released (adding nothing)
/// however else it ends.
///
/// A resumable upload's hold knows its partial: if the upload breaks off
/// with parts kept, the bytes they hold stay counted (until the partial
/// is stale) rather than being released.
struct Hold {
    objects: ObjectHome,
    account: Arc<Account>,
    id: Option<String>,
    partial: Option<Partial>,
    renewed: std::time::Instant,
}

/// The partial a resumable upload continues.
struct Partial {
    id: String,
    /// Bytes its parts hold, counted if the upload breaks off.
    held: u64,
    /// Whether it is kept then (not dropped or completed).
    kept: bool,
    keep_for: std::time::Duration,
}

impl Hold {
    fn new(objects: &ObjectHome, account: &Arc<Account>, id: String) -> Hold {
        let renewed = std::time::Instant::now();
        Hold { objects: objects.clone(), account: account.clone(), id: Some(id), partial: None, renewed }
    }

    /// Renews the reservation of a long upload before it would lapse.
    fn keep_alive(&mut self) {
        if self.renewed.elapsed() < crate::objstore::HOLD_FOR / 4 {
            return;
        }
        self.renewed = std::time::Instant::now();
        if let Some(id) = self.id.clone() {
            let objects = self.objects.clone();
            tokio::spawn(async move {
                if let Err(e) = objects.extend(&id).await {
                    tracing::warn!(error = %e, "cannot renew an upload's reservation");
                }
            });
        }
    }

    /// The partial's parts were dropped or completed: nothing of it stays
    /// counted.
    fn forget_partial(&mut self) {
        if let Some(p) = &mut self.partial {
            p.kept = false;
        }
    }

    /// Counts a completed upload: `added` bytes, less the object it
    /// `replaced`. A failed write is retried in the background (a
    /// settlement applies once, so retrying is safe).
    async fn settle(&mut self, added: u64, replaced: Removed) {
        let Some(id) = self.id.take() else { return };
        let partial = self.partial.take().map(|p| p.id);
        match self.objects.settle(&id, partial.as_deref(), added, &replaced).await {
            Ok(used) => self.account.set_used(used),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record an upload in the usage record yet; retrying");
                let (objects, account) = (self.objects.clone(), self.account.clone());
                tokio::spawn(async move {
                    for attempt in 1..=8u32 {
                        tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                        match objects.settle(&id, partial.as_deref(), added, &replaced).await {
                            Ok(used) => return account.set_used(used),
                            Err(e) if attempt == 8 => {
                                tracing::error!(error = %e, "cannot record an upload in the usage record")
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let objects = self.objects.clone();
            let partial = self.partial.take();
            tokio::spawn(async move {
                let result = match partial {
                    Some(p) if p.kept => objects.keep_partial(&id, &p.id, p.held, p.keep_for).await,
                    Some(p) => objects.release(&[&id, &p.id]).await.map(drop),
                    None => objects.release(&[&id]).await.map(drop),
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "cannot end an upload's reservation; it lapses by itself");
                }
            });
        }
    }
}
