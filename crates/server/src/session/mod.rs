//! One client connection speaking ftpd's own protocol (PROTOCOL.md): the
//! login gate, then one request at a time.
//!
//! This is the wire only: [`connection`] frames, [`login`] lets only
//! `hello`, `login` and `quit` through before a user is known, the
//! request loop here dispatches, [`upload`] and [`download`] move file
//! bytes between frames and the transfer layer, and [`reply`] turns every
//! failure into a reply. What a request means is the transfer layer's
//! ([`crate::transfer::Files`]); where its bytes land is the storage's.
//!
//! The session is generic over the byte stream, so TLS wraps TCP (and a
//! test's in-memory pipe stands in for both) without touching this code.

mod connection;
mod download;
mod login;
mod reply;
#[cfg(test)]
mod tests;
mod upload;

use crate::limits::{AddressSlot, UserSlot};
use crate::shared::Shared;
use crate::transfer::{Files, PutOptions};
use connection::{ConnError, Connection};
use ftp_proto::{
    DfOk, DiscardOk, Empty, ErrorBody, ErrorCode, Frame, PartialEntry, RemotePath, Request, StatOk, Trailer, WorkingDir,
};
use reply::{error_body, path_error};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

/// Whether the request loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// What a finished request reports to the log.
struct Outcome {
    path: String,
    bytes: u64,
    result: Result<(), ErrorCode>,
    flow: Flow,
}

impl Outcome {
    fn new(path: impl ToString, result: Result<(), ErrorCode>) -> Outcome {
        Outcome { path: path.to_string(), bytes: 0, result, flow: Flow::Continue }
    }
}

/// A logged-in user.
struct LoggedIn {
    files: Files,
    cwd: RemotePath,
    /// Holds one of the user's session slots.
    _slot: UserSlot,
    /// Counts this session in the metrics while it lasts.
    _counted: Option<crate::metrics::GaugeGuard>,
}

/// Frames to drop after an upload refused before all its data came: the
/// client may be streaming it (data frames, then an end frame).
#[derive(Debug, Clone, Copy)]
struct Swallow {
    /// Bytes of data it may still send, when its size is known.
    left: Option<u64>,
}

/// One connection's state.
struct Session<S> {
    conn: Connection<S>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    peer: SocketAddr,
    user: Option<LoggedIn>,
    /// This connection's slots among those not logged in yet (its
    /// address's and the daemon's), held until login.
    waiting: Option<(AddressSlot, OwnedSemaphorePermit)>,
    /// Small uploads received and verified, to be stored together.
    staged: upload::Staged,
    /// Set after an upload refused before its end.
    swallow: Option<Swallow>,
    /// The request running: its path and bytes so far, for the log line
    /// if the connection breaks off during it.
    running: Option<(String, u64)>,
    /// This TLS session's key-login exporter value (`None` without TLS:
    /// no key login).
    binding: Option<[u8; ftp_proto::key_login::EXPORTER_LEN]>,
}

/// Serves one connection to its end. Never panics on input; every problem
/// is logged with the peer address. `binding` is the TLS session's
/// key-login exporter value ([`ftp_proto::key_login`]), `None` for a
/// plaintext connection.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    waiting: (AddressSlot, OwnedSemaphorePermit),
    binding: Option<[u8; ftp_proto::key_login::EXPORTER_LEN]>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("session", %peer, user = tracing::field::Empty);
    let _open = shared.metrics().connection();
    async move {
        let config = shared.config();
        let conn = Connection::new(stream, config.idle_timeout, config.login_timeout);
        let mut session = Session {
            conn,
            shared,
            shutdown,
            peer,
            user: None,
            waiting: Some(waiting),
            staged: upload::Staged::default(),
            swallow: None,
            running: None,
            binding,
        };
        match session.run().await {
            Ok(()) => debug!("connection closed"),
            Err(ConnError::Io(e)) => debug!(error = %e, "connection lost"),
            Err(ConnError::Timeout(why)) => info!(why, "closing a connection that went silent"),
            Err(ConnError::TakenOver(why)) => info!(why, "closing a connection whose upload was taken over"),
            Err(e) => warn!(error = %e, "closing connection"),
        }
        // Uploads received whole before the end are stored all the same
        // (their replies may no longer reach the client).
        let _ = session.store_staged().await;
        session.conn.close().await;
    }
    .instrument(span)
    .await
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self) -> Result<(), ConnError> {
        if !self.login().await? {
            return Ok(());
        }
        loop {
            // Staged uploads wait only while the next request is already
            // here to join them.
            if !self.staged.is_empty() && (self.staged.is_full() || !self.conn.has_whole_frame()) {
                self.store_staged().await?;
            }
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    self.send_err(ErrorBody::new(ErrorCode::ShuttingDown, "server is shutting down")).await.ok();
                    return Ok(());
                }
                next = self.conn.next() => next?,
            };
            let Some(frame) = next else { return Ok(()) };
            let json = match frame {
                Frame::Message(json) => json,
                frame => {
                    self.unexpected(frame).await?;
                    continue;
                }
            };
            self.swallow = None;
            let request = match Request::decode(&json) {
                Ok(request) => request,
                Err(e) => {
                    let text = e.to_string();
                    warn!(error = %crate::transfer::escape(&text), "bad request");
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, text)).await?;
                    // A put that could not be read may be followed by its data.
                    if e.op() == Some("put") {
                        self.swallow = Some(Swallow { left: None });
                    }
                    continue;
                }
            };
            if self.dispatch(request).await? == Flow::Close {
                return Ok(());
            }
        }
    }

    /// A data or end frame between requests: the rest of a refused upload
    /// (dropped), or a mistake (answered).
    async fn unexpected(&mut self, frame: Frame) -> Result<(), ConnError> {
        match (self.swallow, frame) {
            (Some(Swallow { left }), Frame::Data(data)) => {
                let n = data.len() as u64;
                match left {
                    Some(left) if n > left => {
                        let msg = "more data than the upload declared".to_owned();
                        return Err(self.conn.violation(ErrorCode::Integrity, msg).await);
                    }
                    Some(left) => self.swallow = Some(Swallow { left: Some(left - n) }),
                    None => {}
                }
                Ok(())
            }
            (Some(_), Frame::End(_)) => {
                self.swallow = None;
                Ok(())
            }
            _ => {
                warn!("data frame outside a transfer");
                self.send_err(ErrorBody::new(ErrorCode::BadRequest, "data frame outside a transfer")).await
            }
        }
    }

    /// Runs one request and writes its log line.
    async fn dispatch(&mut self, request: Request) -> Result<Flow, ConnError> {
        let started = Instant::now();
        let op = request.op();
        // Only another small upload may join the staged ones; anything else
        // runs once they are in place.
        if !upload::may_be_staged(&request) {
            self.store_staged().await?;
        }
        self.running = None;
        let outcome = match self.run_request(request).await {
            Ok(Some(outcome)) => outcome,
            // Staged: its reply and log line come when it is stored.
            Ok(None) => return Ok(Flow::Continue),
            Err(e) => {
                let (path, bytes) = self.running.take().unwrap_or_default();
                let label = match &e {
                    ConnError::Timeout(_) => "timeout",
                    ConnError::Io(_) => "disconnected",
                    ConnError::Protocol(_) => "bad_request",
                    ConnError::TakenOver(_) => "aborted",
                };
                self.shared.engine().finished(op, &path, bytes, Err(label), started.elapsed());
                return Err(e);
            }
        };
        let result = outcome.result.map_err(ErrorCode::as_str);
        self.shared.engine().finished(op, &outcome.path, outcome.bytes, result, started.elapsed());
        Ok(outcome.flow)
    }

    /// Runs one request; `None` for a small upload staged to be stored
    /// with the ones after it.
    async fn run_request(&mut self, request: Request) -> Result<Option<Outcome>, ConnError> {
        let outcome = match request {
            Request::Put { path, size, resume, hash, mtime, exclusive } => {
                return self
                    .put(&path, size, resume, hash, PutOptions { mtime, exclusive, ..PutOptions::default() })
                    .await;
            }
            Request::Get { path, offset, since } => self.get(path, offset, since).await?,
            Request::Ls { path } => self.ls(path.as_deref()).await?,
            Request::Stat { path } => self.stat(&path).await?,
            Request::Rm { path } => self.change(&path, Change::Rm).await?,
            Request::Mkdir { path } => self.change(&path, Change::Mkdir).await?,
            Request::Rmdir { path } => self.change(&path, Change::Rmdir).await?,
            Request::Rename { from, to } => self.rename(&from, &to).await?,
            Request::Cd { path } => self.cd(path.as_deref()).await?,
            Request::Df => self.df().await?,
            Request::Partials => self.partials().await?,
            Request::Discard { path } => self.discard(&path).await?,
            Request::Pwd => {
                let cwd = self.logged_in().cwd.to_string();
                self.send_ok(&WorkingDir { cwd: cwd.clone() }).await?;
                Outcome::new(cwd, Ok(()))
            }
            Request::Quit => {
                self.send_ok(&Empty {}).await?;
                Outcome { flow: Flow::Close, ..Outcome::new("", Ok(())) }
            }
            Request::Hello { .. } | Request::Login { .. } | Request::KeyLogin { .. } => {
                self.send_err(ErrorBody::new(ErrorCode::BadRequest, "already logged in")).await?;
                Outcome::new("", Err(ErrorCode::BadRequest))
            }
        };
        Ok(Some(outcome))
    }

    fn logged_in(&self) -> &LoggedIn {
        self.user.as_ref().expect("requests are dispatched only after login")
    }

    fn files(&self) -> Files {
        self.logged_in().files.clone()
    }

    /// Resolves a client path against the working directory.
    fn resolve(&self, path: &str) -> Result<RemotePath, ErrorBody> {
        RemotePath::resolve(&self.logged_in().cwd, path).map_err(path_error)
    }

    /// Replies to a request whose result is a body or an error.
    async fn reply<T: Serialize>(
        &mut self,
        path: &RemotePath,
        result: crate::transfer::Result<T>,
    ) -> Result<Outcome, ConnError> {
        match result {
            Ok(body) => {
                self.send_ok(&body).await?;
                Ok(Outcome::new(path, Ok(())))
            }
            Err(e) => self.refuse(path.to_string(), error_body(&e, path)).await,
        }
    }

    /// Sends an error reply and reports it as the outcome.
    async fn refuse(&mut self, path: String, err: ErrorBody) -> Result<Outcome, ConnError> {
        let code = err.code;
        self.send_err(err).await?;
        Ok(Outcome::new(path, Err(code)))
    }

    /// `rm`, `mkdir`, `rmdir`: a path and an empty reply.
    async fn change(&mut self, path: &str, change: Change) -> Result<Outcome, ConnError> {
        let path = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let files = self.files();
        let result = match change {
            Change::Rm => files.remove_file(&path).await,
            Change::Mkdir => files.create_dir(&path).await,
            Change::Rmdir => files.remove_dir(&path).await,
        };
        self.reply(&path, result.map(|()| Empty {})).await
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<Outcome, ConnError> {
        let (from, to) = match (self.resolve(from), self.resolve(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return self.refuse(format!("{from} -> {to}"), e).await,
        };
        let result = self.files().rename(&from, &to).await;
        let mut outcome = self.reply(&from, result.map(|()| Empty {})).await?;
        outcome.path = format!("{from} -> {to}");
        Ok(outcome)
    }

    async fn stat(&mut self, path: &str) -> Result<Outcome, ConnError> {
        let path = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let result = self.files().stat(&path).await;
        let result = result.map(|(entry, hash)| StatOk { entry, hash: hash.map(|h| h.to_hex().to_string()) });
        self.reply(&path, result).await
    }

    async fn cd(&mut self, path: Option<&str>) -> Result<Outcome, ConnError> {
        let target = match path {
            None => RemotePath::root(),
            Some(p) => match self.resolve(p) {
                Ok(p) => p,
                Err(e) => return self.refuse(p.to_owned(), e).await,
            },
        };
        match self.files().is_dir(&target).await {
            Ok(true) => {
                self.user.as_mut().expect("logged in").cwd = target.clone();
                self.send_ok(&WorkingDir { cwd: target.to_string() }).await?;
                Ok(Outcome::new(&target, Ok(())))
            }
            Ok(false) => {
                self.refuse(target.to_string(), error_body(&crate::transfer::Error::NotADirectory, &target)).await
            }
            Err(e) => self.refuse(target.to_string(), error_body(&e, &target)).await,
        }
    }

    async fn ls(&mut self, path: Option<&str>) -> Result<Outcome, ConnError> {
        let path = match path {
            None => self.logged_in().cwd.clone(),
            Some(p) => match self.resolve(p) {
                Ok(p) => p,
                Err(e) => return self.refuse(p.to_owned(), e).await,
            },
        };
        let entries = match self.files().list(&path).await {
            Ok(entries) => entries,
            Err(e) => return self.refuse(path.to_string(), error_body(&e, &path)).await,
        };
        let bytes = self.send_listing(&entries).await?;
        Ok(Outcome { bytes, ..Outcome::new(&path, Ok(())) })
    }

    /// An `ok` reply, the items in data frames of JSON arrays, and an end
    /// frame with their count. Returns the bytes of JSON sent.
    async fn send_listing<T: Serialize>(&mut self, items: &[T]) -> Result<u64, ConnError> {
        self.send_ok(&Empty {}).await?;
        let mut bytes = 0;
        for batch in items.chunks(ftp_proto::LIST_BATCH) {
            let json = bytes::Bytes::from(serde_json::to_vec(batch).map_err(std::io::Error::other)?);
            bytes += json.len() as u64;
            self.send(Frame::Data(json)).await?;
        }
        let trailer = Trailer { count: Some(items.len() as u64), ..Trailer::default() };
        self.send(Frame::End(trailer.encode())).await?;
        Ok(bytes)
    }

    async fn df(&mut self) -> Result<Outcome, ConnError> {
        let files = self.files();
        let usage = match files.usage().await {
            Ok(usage) => usage,
            Err(e) => return self.refuse(String::new(), error_body(&e, &RemotePath::root())).await,
        };
        let (usage, quota) = usage;
        let partials = match files.partials().await {
            Ok(partials) => partials.iter().map(|p| p.held).sum(),
            Err(e) => return self.refuse(String::new(), error_body(&e, &RemotePath::root())).await,
        };
        let available = quota.map(|q| q.saturating_sub(usage.used + usage.reserved));
        self.send_ok(&DfOk { used: usage.used, quota, available, partials: Some(partials) }).await?;
        Ok(Outcome::new("", Ok(())))
    }

    /// `partials`: sent as `ls` sends entries.
    async fn partials(&mut self) -> Result<Outcome, ConnError> {
        let partials = match self.files().partials().await {
            Ok(partials) => partials,
            Err(e) => return self.refuse(String::new(), error_body(&e, &RemotePath::root())).await,
        };
        let entries: Vec<PartialEntry> = partials
            .into_iter()
            .map(|p| PartialEntry { path: p.path.to_string(), size: p.size, held: p.held, mtime: p.mtime })
            .collect();
        let bytes = self.send_listing(&entries).await?;
        Ok(Outcome { bytes, ..Outcome::new("", Ok(())) })
    }

    async fn discard(&mut self, path: &str) -> Result<Outcome, ConnError> {
        let path = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let result = self.files().discard_partial(&path).await;
        let result = result.map(|d| DiscardOk { path: path.to_string(), freed: d.bytes });
        match result {
            Err(crate::transfer::Error::NotFound) => {
                let err = ErrorBody::new(ErrorCode::NotFound, format!("{path}: no partial upload kept for it"));
                self.refuse(path.to_string(), err).await
            }
            Err(crate::transfer::Error::Held) => {
                let why = format!("{path}: an upload in progress is sending it; try again when it ends");
                self.refuse(path.to_string(), ErrorBody::new(ErrorCode::Busy, why)).await
            }
            other => self.reply(&path, other).await,
        }
    }

    /// Sends one frame; the replies owed to staged uploads go first.
    async fn send(&mut self, frame: Frame) -> Result<(), ConnError> {
        self.store_staged().await?;
        self.conn.send(frame).await
    }

    /// Sends several frames with one flush, after the staged uploads' replies.
    async fn send_all(&mut self, frames: Vec<Frame>) -> Result<(), ConnError> {
        self.store_staged().await?;
        self.conn.send_all(frames).await
    }

    async fn send_ok<T: Serialize>(&mut self, body: &T) -> Result<(), ConnError> {
        self.send(Frame::Message(ftp_proto::encode_ok(body))).await
    }

    async fn send_err(&mut self, err: ErrorBody) -> Result<(), ConnError> {
        self.send(Frame::Message(ftp_proto::encode_err(&err))).await
    }
}

/// The requests [`Session::change`] serves.
#[derive(Debug, Clone, Copy)]
enum Change {
    Rm,
    Mkdir,
    Rmdir,
}
