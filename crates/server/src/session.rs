//! One client connection: the login gate, then the request loop.
//!
//! The session is generic over the byte stream, so TLS can wrap the TCP
//! stream without touching this code. State is explicit: before login only
//! `hello` and `login` are accepted, with a small frame limit and an
//! absolute deadline; after login every request is resolved inside the
//! user's [`Home`].

use crate::accounts::{Account, AddressSlot, UserSlot};
use crate::errors::{io_error, path_error};
use crate::home::Home;
use crate::metrics::LoginResult;
use crate::objstore::ObjectHome;
use crate::server::Shared;
use crate::staged::Staged;
pub(crate) use crate::storage::Files;
use crate::storage::Storage;
use crate::throttle::Blocked;
use bytes::Bytes;
use ftp_proto::{
    DfOk, Empty, ErrorBody, ErrorCode, Frame, FrameCodec, FrameError, HelloOk, LoginOk, RemotePath, Request, StatOk,
    Trailer, WorkingDir, encode_err, encode_ok,
};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

/// Login attempts allowed on one connection before it is closed.
const MAX_LOGIN_ATTEMPTS: u32 = 3;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed or the peer went away.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol; the stream can't be trusted further.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<FrameError> for ConnError {
    fn from(e: FrameError) -> ConnError {
        match e {
            FrameError::Io(e) => ConnError::Io(e),
            other => ConnError::Protocol(other.to_string()),
        }
    }
}

/// Whether the request loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// What a finished request reports to the log.
pub(crate) struct Outcome {
    pub path: String,
    pub bytes: u64,
    pub result: Result<(), ErrorCode>,
    pub flow: Flow,
    /// A small upload staged for a batch (see `staged.rs`): its reply and
    /// log line come when the batch is written.
    pub staged: bool,
}

impl Outcome {
    pub fn new(path: impl ToString, result: Result<(), ErrorCode>) -> Outcome {
        Outcome { path: path.to_string(), bytes: 0, result, flow: Flow::Continue, staged: false }
    }
}

/// A logged-in user.
pub(crate) struct UserSession {
    pub name: String,
    pub files: Files,
    pub cwd: RemotePath,
    /// Holds one of the user's session slots; also their usage.
    pub slot: UserSlot,
    /// Counts this session in the metrics while it lasts.
    pub _counted: Option<crate::metrics::GaugeGuard>,
}

impl UserSession {
    pub fn account(&self) -> &Arc<Account> {
        &self.slot.account
    }
}

/// One connection's state.
pub(crate) struct Session<S> {
    pub frames: Framed<S, FrameCodec>,
    pub shared: Arc<Shared>,
    pub shutdown: CancellationToken,
    pub user: Option<UserSession>,
    /// When the login must be complete.
    pub login_deadline: Option<tokio::time::Instant>,
    /// The client's address.
    pub peer: SocketAddr,
    /// This connection's slots among those not logged in yet (its
    /// address's and the daemon's), held until login.
    pub waiting: Option<(AddressSlot, OwnedSemaphorePermit)>,
    /// Small uploads received and verified, to be written together.
    pub staged: Staged,
}

/// Serves one connection to its end. Never panics on input; every problem
/// is logged as a warning with the peer address.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    waiting: (AddressSlot, OwnedSemaphorePermit),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("session", %peer, user = tracing::field::Empty);
    let _open = shared.metrics.connection();
    async move {
        let frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME_BEFORE_LOGIN));
        let mut session = Session {
            frames,
            shared,
            shutdown,
            user: None,
            login_deadline: None,
            peer,
            waiting: Some(waiting),
            staged: Staged::default(),
        };
        match session.run().await {
            Ok(()) => debug!("connection closed"),
            Err(ConnError::Io(e)) => debug!(error = %e, "connection lost"),
            Err(e) => warn!(error = %e, "closing connection"),
        }
        // Uploads received whole before the end are stored all the same
        // (their replies may no longer reach the client).
        let _ = session.commit_staged().await;
        // Flush what is buffered and close cleanly (TLS sends close_notify).
        let _ = tokio::time::timeout(Duration::from_secs(2), session.frames.get_mut().shutdown()).await;
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
            if !self.staged.is_empty()
                && (self.staged.is_full() || !self.frames.codec().has_whole_frame(self.frames.read_buffer()))
            {
                self.commit_staged().await?;
            }
            let idle = self.shared.config.idle_timeout;
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    self.send_err(ErrorBody::new(ErrorCode::ShuttingDown, "server is shutting down")).await.ok();
                    return Ok(());
                }
                next = tokio::time::timeout(idle, self.frames.next()) => next,
            };
            let frame = match next {
                Err(_) => return self.timed_out(idle).await,
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame,
            };
            let json = match frame {
                Ok(Frame::Message(json)) => json,
                Ok(_) => {
                    warn!("data frame outside a transfer");
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, "data frame outside a transfer")).await?;
                    continue;
                }
                Err(e) => return self.framing_error(e).await,
            };
            let request = match Request::decode(&json) {
                Ok(request) => request,
                Err(e) => {
                    warn!(error = %escape(&e.to_string()), "bad request");
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, e.to_string())).await?;
                    continue;
                }
            };
            if self.dispatch(request).await? == Flow::Close {
                return Ok(());
            }
        }
    }

    /// Hello and login, within one absolute deadline. Returns whether the
    /// session is logged in.
    async fn login(&mut self) -> Result<bool, ConnError> {
        let deadline = tokio::time::Instant::now() + self.shared.config.login_timeout;
        self.login_deadline = Some(deadline);
        let mut greeted = false;
        let mut attempts = 0;
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(false),
                next = tokio::time::timeout_at(deadline, self.frames.next()) => next,
            };
            let frame = match next {
                Err(_) => {
                    warn!("login deadline passed");
                    self.send_err(ErrorBody::new(ErrorCode::Timeout, "login took too long")).await.ok();
                    return Ok(false);
                }
                Ok(None) => return Ok(false),
                Ok(Some(Err(e))) => {
                    self.framing_error(e).await?;
                    return Ok(false);
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Frame::Message(json) = frame else {
                if !greeted {
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, "the first frame must be hello")).await?;
                    return Ok(false);
                }
                self.send_err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")).await?;
                continue;
            };
            let request = match Request::decode(&json) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %escape(&e.to_string()), "bad request before login");
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, e.to_string())).await?;
                    if greeted { continue } else { return Ok(false) }
                }
            };
            match request {
                Request::Hello { version, client } if !greeted => {
                    if version != ftp_proto::PROTOCOL_VERSION {
                        warn!(version, "unsupported protocol version");
                        let msg = format!(
                            "protocol version {version} is not supported; this server speaks version {}",
                            ftp_proto::PROTOCOL_VERSION
                        );
                        self.send_err(ErrorBody::new(ErrorCode::UnsupportedVersion, msg)).await?;
                        return Ok(false);
                    }
                    debug!(client = client.as_deref().unwrap_or("?"), "hello");
                    greeted = true;
                    let hello = HelloOk {
                        version: ftp_proto::PROTOCOL_VERSION,
                        server: concat!("ftpd ", env!("CARGO_PKG_VERSION")).into(),
                        max_chunk: ftp_proto::MAX_CHUNK as u64,
                    };
                    self.send_ok(&hello).await?;
                }
                _ if !greeted => {
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, "the first request must be hello")).await?;
                    return Ok(false);
                }
                Request::Login { user, password } => {
                    let started = Instant::now();
                    if let Err(blocked) = self.shared.throttle.check(self.peer.ip(), &user, started) {
                        let (who, left) = match blocked {
                            Blocked::Address(left) => (format!("from {}", self.peer.ip()), left),
                            Blocked::User(left) => (format!("for user {}", escape(&user)), left),
                        };
                        warn!(user = %escape(&user), "login refused: blocked after failed logins {who}");
                        self.shared.metrics.login(LoginResult::Refused);
                        let msg = format!("too many failed logins {who}; try again in {} s", left.as_secs() + 1);
                        self.send_err(ErrorBody::new(ErrorCode::TooManyAttempts, msg)).await?;
                        return Ok(false);
                    }
                    let shared = self.shared.clone();
                    let name = user.clone();
                    // Waiting for a verification slot counts against the
                    // login deadline too, so a login flood can't park
                    // connections forever.
                    let verify = async {
                        let _permit = shared.auth_slots.acquire().await.ok()?;
                        let shared = shared.clone();
                        tokio::task::spawn_blocking(move || {
                            crate::users::validate_user_name(&name).is_ok()
                                && shared.users.verify(&name, password.expose())
                        })
                        .await
                        .ok()
                    };
                    let ok = match tokio::time::timeout_at(deadline, verify).await {
                        Ok(verdict) => verdict.unwrap_or(false),
                        Err(_) => {
                            warn!("login deadline passed while verifying");
                            self.send_err(ErrorBody::new(ErrorCode::Timeout, "login took too long")).await.ok();
                            return Ok(false);
                        }
                    };
                    if !ok {
                        self.shared.metrics.login(LoginResult::Failed);
                        attempts += 1;
                        let delay = self.shared.throttle.failed(self.peer.ip(), &user, Instant::now());
                        warn!(user = %escape(&user), attempts, delay_ms = delay.as_millis() as u64, "login failed");
                        // Answer only after the delay (but within the deadline).
                        let until = (tokio::time::Instant::now() + delay).min(deadline);
                        tokio::time::sleep_until(until).await;
                        self.send_err(ErrorBody::new(ErrorCode::AuthFailed, "unknown user or wrong password")).await?;
                        if attempts >= MAX_LOGIN_ATTEMPTS {
                            return Ok(false);
                        }
                        continue;
                    }
                    let max = shared.config.max_sessions_per_user;
                    let Some(slot) = shared.accounts.enter_user(&user, max) else {
                        warn!(user = %user, "too many sessions for this user");
                        self.shared.metrics.login(LoginResult::Refused);
                        let msg = format!("too many sessions for user {user} (limit {max})");
                        self.send_err(ErrorBody::new(ErrorCode::TooManySessions, msg)).await?;
                        return Ok(false);
                    };
                    let files = match &shared.objects {
                        Some((store, prefix)) => Files::Objects(ObjectHome::new(store.clone(), prefix, &user)),
                        None => {
                            let (root, fsync) = (shared.config.root.clone(), shared.config.fsync);
                            let name = user.clone();
                            let home = match slot.account.shared_home() {
                                Some(home) => Ok(Ok(home)),
                                None => {
                                    tokio::task::spawn_blocking(move || Home::open(&root, &name, fsync).map(Arc::new))
                                        .await
                                }
                            };
                            match home {
                                Ok(Ok(home)) => {
                                    slot.account.share_home(&home);
                                    Files::Local(home)
                                }
                                other => {
                                    tracing::error!(user = %user, error = ?other.err(), "cannot open home directory");
                                    self.send_err(ErrorBody::new(
                                        ErrorCode::Internal,
                                        "cannot open your home directory",
                                    ))
                                    .await?;
                                    return Ok(false);
                                }
                            }
                        }
                    };
                    let root = &shared.config.root;
                    let loaded = match &files {
                        Files::Local(_) => {
                            slot.account.load(&root.join(&user), &Home::partials_path(root, &user)).await
                        }
                        Files::Objects(objects) => {
                            slot.account.load_from(async { objects.ledger_usage().await.map(|(used, _)| used) }).await
                        }
                    };
                    if let Err(e) = loaded {
                        tracing::error!(user = %user, error = %e, "cannot compute disk usage");
                        self.send_err(ErrorBody::new(ErrorCode::Internal, "cannot read your home directory")).await?;
                        return Ok(false);
                    }
                    self.shared.throttle.succeeded(self.peer.ip(), &user);
                    self.waiting = None;
                    tracing::Span::current().record("user", user.as_str());
                    info!(elapsed_ms = started.elapsed().as_millis() as u64, "login");
                    self.send_ok(&LoginOk { user: user.clone(), cwd: "/".into() }).await?;
                    let counted = self.shared.metrics.login(LoginResult::Ok);
                    self.user =
                        Some(UserSession { name: user, files, cwd: RemotePath::root(), slot, _counted: counted });
                    self.frames.codec_mut().set_max_frame(ftp_proto::MAX_FRAME);
                    return Ok(true);
                }
                Request::Quit => {
                    self.send_ok(&Empty {}).await?;
                    return Ok(false);
                }
                Request::Hello { .. } => {
                    self.send_err(ErrorBody::new(ErrorCode::BadRequest, "hello was already sent")).await?;
                }
                _ => {
                    self.send_err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")).await?;
                }
            }
        }
    }

    /// Runs one request and writes its log line.
    async fn dispatch(&mut self, request: Request) -> Result<Flow, ConnError> {
        let started = Instant::now();
        let op = request.op();
        // Only another small upload may join the staged ones; anything else
        // runs once they are in place.
        if !crate::transfer::may_be_staged(&request) {
            self.commit_staged().await?;
        }
        let outcome = self.run_request(request).await;
        if matches!(&outcome, Ok(o) if o.staged) {
            return Ok(Flow::Continue);
        }
        let metrics = &self.shared.metrics;
        match &outcome {
            Ok(outcome) => metrics.request(op, Some(outcome.result), outcome.bytes, started.elapsed()),
            Err(_) => metrics.request(op, None, 0, started.elapsed()),
        }
        let outcome = outcome?;
        log_request(op, &outcome, started.elapsed());
        Ok(outcome.flow)
    }

    /// Runs one request.
    async fn run_request(&mut self, request: Request) -> Result<Outcome, ConnError> {
        Ok(match request {
            Request::Put { path, size, resume, hash } => self.put(&path, size, resume, hash).await?,
            Request::Get { path, offset, since } => self.get(&path, offset, since).await?,
            Request::Ls { path } => self.ls(path.as_deref()).await?,
            Request::Stat { path } => self.stat(&path).await?,
            Request::Rm { path } => self.simple(&path, Simple::Rm).await?,
            Request::Mkdir { path } => self.simple(&path, Simple::Mkdir).await?,
            Request::Rmdir { path } => self.simple(&path, Simple::Rmdir).await?,
            Request::Rename { from, to } => self.rename(&from, &to).await?,
            Request::Cd { path } => self.cd(path.as_deref()).await?,
            Request::Df => {
                let user = self.user();
                let quota = self.shared.users.quota(&user.name);
                let (used, reserved) = match user.files.clone().usage(user.account()).await {
                    Ok(usage) => usage,
                    Err(e) => return self.refuse(String::new(), io_error(&e, &RemotePath::root())).await,
                };
                let available = quota.map(|q| q.saturating_sub(used + reserved));
                self.send_ok(&DfOk { used, quota, available }).await?;
                Outcome::new("", Ok(()))
            }
            Request::Pwd => {
                let cwd = self.user().cwd.to_string();
                self.send_ok(&WorkingDir { cwd: cwd.clone() }).await?;
                Outcome::new(cwd, Ok(()))
            }
            Request::Quit => {
                self.send_ok(&Empty {}).await?;
                Outcome { flow: Flow::Close, ..Outcome::new("", Ok(())) }
            }
            Request::Hello { .. } | Request::Login { .. } => {
                self.send_err(ErrorBody::new(ErrorCode::BadRequest, "already logged in")).await?;
                Outcome::new("", Err(ErrorCode::BadRequest))
            }
        })
    }

    pub(crate) fn user(&self) -> &UserSession {
        self.user.as_ref().expect("requests are dispatched only after login")
    }

    /// Resolves a client path against the working directory.
    pub(crate) fn resolve(&self, path: &str) -> Result<RemotePath, ErrorBody> {
        RemotePath::resolve(&self.user().cwd, path).map_err(path_error)
    }

    /// Runs a blocking filesystem call against the home (local files only).
    pub(crate) async fn fs<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Home) -> io::Result<T> + Send + 'static,
    {
        let Files::Local(home) = &self.user().files else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "not on object storage"));
        };
        crate::storage::blocking(home, f).await
    }

    /// Replies to a request whose result is `Empty` or an error.
    async fn reply<T: Serialize>(&mut self, path: &RemotePath, result: io::Result<T>) -> Result<Outcome, ConnError> {
        match result {
            Ok(body) => {
                self.send_ok(&body).await?;
                Ok(Outcome::new(path, Ok(())))
            }
            Err(e) => self.refuse(path.to_string(), io_error(&e, path)).await,
        }
    }

    /// Sends an error reply and reports it as the outcome.
    pub(crate) async fn refuse(&mut self, path: String, err: ErrorBody) -> Result<Outcome, ConnError> {
        let code = err.code;
        self.send_err(err).await?;
        Ok(Outcome::new(path, Err(code)))
    }

    /// A request with a path and an empty reply; the bytes it frees leave
    /// the user's usage.
    async fn simple(&mut self, path: &str, op: Simple) -> Result<Outcome, ConnError> {
        let path = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let account = self.user().account().clone();
        let files = self.user().files.clone();
        let _ops = account.ops.lock().await;
        let result = match op {
            Simple::Rm => files.remove_file(&path, &account).await.map(drop),
            Simple::Mkdir => files.create_dir(&path).await,
            Simple::Rmdir => files.remove_dir(&path).await,
        };
        self.reply(&path, result.map(|()| Empty {})).await
    }

    async fn rename(&mut self, from: &str, to: &str) -> Result<Outcome, ConnError> {
        let (from, to) = match (self.resolve(from), self.resolve(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return self.refuse(format!("{from} -> {to}"), e).await,
        };
        let account = self.user().account().clone();
        let files = self.user().files.clone();
        let _ops = account.ops.lock().await;
        let result = files.rename(&from, &to, &account).await;
        let mut outcome = self.reply(&from, result.map(|_| Empty {})).await?;
        outcome.path = format!("{from} -> {to}");
        Ok(outcome)
    }

    async fn stat(&mut self, path: &str) -> Result<Outcome, ConnError> {
        let path = match self.resolve(path) {
            Ok(p) => p,
            Err(e) => return self.refuse(path.to_owned(), e).await,
        };
        let files = self.user().files.clone();
        let result = files.stat(&path).await.map(|(entry, hash)| StatOk { entry, hash });
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
        let is_dir = self.user().files.clone().is_dir(&target).await;
        match is_dir {
            Ok(true) => {
                self.user.as_mut().expect("logged in").cwd = target.clone();
                self.send_ok(&WorkingDir { cwd: target.to_string() }).await?;
                Ok(Outcome::new(&target, Ok(())))
            }
            Ok(false) => {
                let err = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
                self.refuse(target.to_string(), io_error(&err, &target)).await
            }
            Err(e) => self.refuse(target.to_string(), io_error(&e, &target)).await,
        }
    }

    async fn ls(&mut self, path: Option<&str>) -> Result<Outcome, ConnError> {
        let path = match path {
            None => self.user().cwd.clone(),
            Some(p) => match self.resolve(p) {
                Ok(p) => p,
                Err(e) => return self.refuse(p.to_owned(), e).await,
            },
        };
        let listed = self.user().files.clone().list(&path).await;
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => return self.refuse(path.to_string(), io_error(&e, &path)).await,
        };
        self.send_ok(&Empty {}).await?;
        let mut bytes = 0;
        for batch in entries.chunks(ftp_proto::LIST_BATCH) {
            let json = Bytes::from(serde_json::to_vec(batch).map_err(io::Error::other)?);
            bytes += json.len() as u64;
            self.send(Frame::Data(json)).await?;
        }
        let trailer = Trailer { count: Some(entries.len() as u64), ..Trailer::default() };
        self.send(Frame::End(trailer.encode())).await?;
        Ok(Outcome { bytes, ..Outcome::new(&path, Ok(())) })
    }

    /// Sends one frame, bounded by the idle timeout (a peer that stops
    /// reading can't hold the session forever).
    pub(crate) async fn send(&mut self, frame: Frame) -> Result<(), ConnError> {
        // The replies owed to earlier requests go first.
        self.commit_staged().await?;
        // Before login the login deadline bounds sends too.
        let mut deadline = tokio::time::Instant::now() + self.shared.config.idle_timeout;
        if let Some(login) = self.login_deadline.filter(|_| self.user.is_none()) {
            deadline = deadline.min(login);
        }
        match tokio::time::timeout_at(deadline, self.frames.send(frame)).await {
            Ok(result) => result.map_err(ConnError::from),
            Err(_) => Err(ConnError::Io(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))),
        }
    }

    /// Sends several frames with one flush (small replies that go together).
    pub(crate) async fn send_all(&mut self, frames: Vec<Frame>) -> Result<(), ConnError> {
        // The replies owed to earlier requests go first.
        self.commit_staged().await?;
        self.write_frames(frames).await
    }

    /// Writes frames with one flush, bounded by the idle timeout.
    pub(crate) async fn write_frames(&mut self, frames: Vec<Frame>) -> Result<(), ConnError> {
        let idle = self.shared.config.idle_timeout;
        let sink = &mut self.frames;
        let all = async move {
            for frame in frames {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(idle, all).await {
            Ok(result) => result.map_err(ConnError::from),
            Err(_) => Err(ConnError::Io(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))),
        }
    }

    /// Sends one data frame straight to the stream (no copy through the
    /// codec), bounded by the idle timeout like [`Session::send`].
    pub(crate) async fn send_data(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        let idle = self.shared.config.idle_timeout;
        match tokio::time::timeout(idle, ftp_proto::bulk::write_data(&mut self.frames, payload)).await {
            Ok(result) => result.map_err(ConnError::from),
            Err(_) => Err(ConnError::Io(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))),
        }
    }

    pub(crate) async fn send_ok<T: Serialize>(&mut self, body: &T) -> Result<(), ConnError> {
        self.send(Frame::Message(encode_ok(body))).await
    }

    pub(crate) async fn send_err(&mut self, err: ErrorBody) -> Result<(), ConnError> {
        self.send(Frame::Message(encode_err(&err))).await
    }

    /// Answers a frame that could not be decoded and ends the session: after
    /// a bad length prefix the stream can't be resynchronised.
    pub(crate) async fn framing_error(&mut self, err: FrameError) -> Result<(), ConnError> {
        let code = match err {
            FrameError::Io(e) => return Err(ConnError::Io(e)),
            FrameError::TooLarge { .. } | FrameError::MessageTooLarge(_) => ErrorCode::TooLarge,
            FrameError::Empty | FrameError::UnknownTag(_) => ErrorCode::BadRequest,
        };
        let msg = err.to_string();
        self.send_err(ErrorBody::new(code, msg.clone())).await.ok();
        Err(ConnError::Protocol(msg))
    }

    pub(crate) async fn timed_out(&mut self, after: Duration) -> Result<(), ConnError> {
        let msg = format!("idle for {} s", after.as_secs());
        self.send_err(ErrorBody::new(ErrorCode::Timeout, msg.clone())).await.ok();
        Err(ConnError::Protocol(msg))
    }
}

pub(crate) fn log_request(op: &str, outcome: &Outcome, elapsed: Duration) {
    let ms = elapsed.as_secs_f64() * 1000.0;
    let mib_s = if outcome.bytes > 0 && ms > 0.0 { outcome.bytes as f64 / 1_048_576.0 / (ms / 1000.0) } else { 0.0 };
    let path = escape(&outcome.path);
    match outcome.result {
        Ok(()) => {
            info!(op, path = %path, bytes = outcome.bytes, ms = format!("{ms:.1}"), mib_s = format!("{mib_s:.1}"), "ok")
        }
        Err(code) => info!(op, path = %path, bytes = outcome.bytes, ms = format!("{ms:.1}"), error = %code, "refused"),
    }
}

/// Escapes control characters so a hostile name can't forge log lines.
pub(crate) fn escape(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).collect::<String>()
}

/// The requests [`Session::simple`] serves.
#[derive(Debug, Clone, Copy)]
enum Simple {
    Rm,
    Mkdir,
    Rmdir,
}
