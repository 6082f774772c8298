//! The login gate: before a user is known, only `hello`, `login`,
//! `key_login` and `quit` pass, in small frames, all within the login
//! deadline.
//!
//! A password or a key-login signature that fails counts as a failed
//! login (throttled, and at most [`MAX_LOGIN_ATTEMPTS`] per connection); a
//! key query (`key_login` without a signature: "would you accept this
//! key?") does not, so an agent holding several keys can find the right
//! one, but a connection may ask at most [`MAX_KEY_QUERIES`].

use super::{LoggedIn, Session};
use crate::metrics::LoginResult;
use crate::throttle::Blocked;
use crate::transfer::escape;
use ftp_proto::{ErrorBody, ErrorCode, Frame, HelloOk, KeyQueryOk, LoginOk, Password, RemotePath, Request};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

/// Login attempts allowed on one connection before it is closed.
const MAX_LOGIN_ATTEMPTS: u32 = 3;

/// Key queries answered on one connection before it is closed (enough for
/// an agent full of keys, too few to probe many).
const MAX_KEY_QUERIES: u32 = ftp_proto::key_login::MAX_QUERIES;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Hello and login. Returns whether the session is logged in.
    pub(super) async fn login(&mut self) -> Result<bool, super::ConnError> {
        let mut greeted = false;
        let mut attempts = 0;
        let mut queries = 0;
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(false),
                next = self.conn.next() => next,
            };
            let frame = match next {
                Err(super::ConnError::Timeout(_)) => {
                    warn!("login deadline passed");
                    return Ok(false);
                }
                Err(super::ConnError::Protocol(_)) => return Ok(false),
                Err(e) => return Err(e),
                Ok(None) => return Ok(false),
                Ok(Some(frame)) => frame,
            };
            let Frame::Message(json) = frame else {
                if !greeted {
                    self.conn.send_err(ErrorBody::new(ErrorCode::BadRequest, "the first frame must be hello")).await?;
                    return Ok(false);
                }
                self.conn.send_err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")).await?;
                continue;
            };
            let request = match Request::decode(&json) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %escape(&e.to_string()), "bad request before login");
                    self.conn.send_err(ErrorBody::new(ErrorCode::BadRequest, e.to_string())).await?;
                    if greeted {
                        continue;
                    }
                    return Ok(false);
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
                        self.conn.send_err(ErrorBody::new(ErrorCode::UnsupportedVersion, msg)).await?;
                        return Ok(false);
                    }
                    debug!(client = client.as_deref().map(escape).unwrap_or_else(|| "?".into()), "hello");
                    greeted = true;
                    let hello = HelloOk {
                        version: ftp_proto::PROTOCOL_VERSION,
                        server: concat!("ftpd ", env!("CARGO_PKG_VERSION")).into(),
                        max_chunk: ftp_proto::MAX_CHUNK as u64,
                        revision: ftp_proto::PROTOCOL_REVISION,
                    };
                    self.conn.send_ok(&hello).await?;
                }
                _ if !greeted => {
                    self.conn
                        .send_err(ErrorBody::new(ErrorCode::BadRequest, "the first request must be hello"))
                        .await?;
                    return Ok(false);
                }
                Request::Login { user, password } => {
                    let verdict = self.check_login(&user, password).await?;
                    if let Some(done) = verdict.ends_login(&mut attempts) {
                        return Ok(done);
                    }
                }
                Request::KeyLogin { user, key, signature: None } => {
                    queries += 1;
                    if queries > MAX_KEY_QUERIES {
                        let msg = format!("too many key queries on one connection (at most {MAX_KEY_QUERIES})");
                        self.conn.send_err(ErrorBody::new(ErrorCode::TooManyAttempts, msg)).await?;
                        return Ok(false);
                    }
                    if let Verdict::Out = self.key_query(&user, &key).await? {
                        return Ok(false);
                    }
                }
                Request::KeyLogin { user, key, signature: Some(signature) } => {
                    let verdict = self.key_login(&user, &key, &signature).await?;
                    if let Some(done) = verdict.ends_login(&mut attempts) {
                        return Ok(done);
                    }
                }
                Request::Quit => {
                    self.conn.send_ok(&ftp_proto::Empty {}).await?;
                    return Ok(false);
                }
                Request::Hello { .. } => {
                    self.conn.send_err(ErrorBody::new(ErrorCode::BadRequest, "hello was already sent")).await?;
                }
                _ => {
                    self.conn.send_err(ErrorBody::new(ErrorCode::AuthRequired, "log in first")).await?;
                }
            }
        }
    }

    /// Refuses the attempt if its address or user name is blocked after
    /// failed logins. Returns whether it was refused.
    async fn blocked(&mut self, user: &str) -> Result<bool, super::ConnError> {
        let shared = self.shared.clone();
        let ip = self.peer.ip();
        let Err(blocked) = shared.throttle().check(ip, user, Instant::now()) else { return Ok(false) };
        let (who, left) = match blocked {
            Blocked::Address(left) => (format!("from {ip}"), left),
            Blocked::User(left) => (format!("for user {}", escape(user)), left),
        };
        warn!(user = %escape(user), "login refused: blocked after failed logins {who}");
        shared.metrics().login(LoginResult::Refused);
        let msg = format!("too many failed logins {who}; try again in {} s", left.as_secs() + 1);
        self.conn.send_err(ErrorBody::new(ErrorCode::TooManyAttempts, msg)).await?;
        Ok(true)
    }

    /// Counts a failed login and answers `message` after the throttle's
    /// delay (but within the deadline).
    async fn failed(&mut self, user: &str, message: &str) -> Result<Verdict, super::ConnError> {
        let shared = self.shared.clone();
        shared.metrics().login(LoginResult::Failed);
        let delay = shared.throttle().failed(self.peer.ip(), user, Instant::now());
        warn!(user = %escape(user), delay_ms = delay.as_millis() as u64, why = message, "login failed");
        tokio::time::sleep_until((tokio::time::Instant::now() + delay).min(self.conn.deadline())).await;
        self.conn.send_err(ErrorBody::new(ErrorCode::AuthFailed, message)).await?;
        Ok(Verdict::Failed)
    }

    /// The key of a `key_login`, if this session may log in with keys and
    /// the key parses; otherwise answers why not and returns `None`.
    async fn login_key(&mut self, key: &str) -> Result<Option<ssh_key::PublicKey>, super::ConnError> {
        if self.binding.is_none() {
            let msg = "key login needs TLS (its signature is bound to the TLS session) and this server runs \
                       without TLS: log in with a password";
            self.conn.send_err(ErrorBody::new(ErrorCode::BadRequest, msg)).await?;
            return Ok(None);
        }
        match crate::keys::parse_key(key) {
            Ok(key) => Ok(Some(key)),
            Err(e) => {
                self.conn.send_err(ErrorBody::new(ErrorCode::BadRequest, format!("`key`: {e}"))).await?;
                Ok(None)
            }
        }
    }

    /// Whether `key` is one of `user`'s authorized keys, in the users in
    /// force (an unknown user has none).
    async fn authorized(&self, user: &str, key: &ssh_key::PublicKey) -> bool {
        if crate::users::validate_user_name(user).is_err() {
            return false;
        }
        let users = self.shared.users().refresh_user(user).await;
        users.users.get(user).is_some_and(|record| crate::keys::is_authorized(&record.keys, key))
    }

    /// Answers a key query: would a signature by `key` log `user` in?
    async fn key_query(&mut self, user: &str, key: &str) -> Result<Verdict, super::ConnError> {
        if self.blocked(user).await? {
            return Ok(Verdict::Out);
        }
        let Some(key) = self.login_key(key).await? else { return Ok(Verdict::Answered) };
        let accepted = self.authorized(user, &key).await;
        debug!(user = %escape(user), fingerprint = %crate::keys::fingerprint(&key), accepted, "key query");
        self.conn.send_ok(&KeyQueryOk { accepted }).await?;
        Ok(Verdict::Answered)
    }

    /// Checks a key login (a signature by `key` over this session's
    /// key-login message) and, if it is good, opens the user's files.
    async fn key_login(&mut self, user: &str, key: &str, signature: &str) -> Result<Verdict, super::ConnError> {
        let started = Instant::now();
        if self.blocked(user).await? {
            return Ok(Verdict::Out);
        }
        let Some(key) = self.login_key(key).await? else { return Ok(Verdict::Answered) };
        let Some(binding) = self.binding else { return Ok(Verdict::Answered) };
        if !self.authorized(user, &key).await {
            return self.failed(user, "unknown user or key not authorized for this user").await;
        }
        if let Err(e) = crate::keys::verify(&key, &binding, user, signature) {
            return self.failed(user, &format!("key login failed: {e}")).await;
        }
        info!(fingerprint = %crate::keys::fingerprint(&key), "key accepted");
        self.enter(user, started).await
    }

    /// Checks one password login and, if it is good, opens the user's files.
    async fn check_login(&mut self, user: &str, password: Password) -> Result<Verdict, super::ConnError> {
        let started = Instant::now();
        let shared = self.shared.clone();
        if self.blocked(user).await? {
            return Ok(Verdict::Out);
        }
        // The users are looked at once per login; this login's answer
        // comes from that one snapshot.
        let users = shared.users().refresh_user(user).await;
        let name = user.to_owned();
        // Waiting for a verification slot counts against the login
        // deadline too (the connection's reads and writes are bounded by
        // it), so a login flood can't park connections forever.
        let verify = {
            let shared = shared.clone();
            async move {
                let _permit = shared.auth_slots().acquire().await.ok()?;
                let checker = shared.clone();
                tokio::task::spawn_blocking(move || {
                    let ok = crate::users::validate_user_name(&name).is_ok()
                        && checker.users().verify(&users, &name, password.expose());
                    let key_only = users.users.get(&name).is_some_and(|u| u.key_only);
                    (ok, key_only)
                })
                .await
                .ok()
            }
        };
        let deadline = self.conn.deadline();
        let (ok, key_only) = match tokio::time::timeout_at(deadline, verify).await {
            Ok(verdict) => verdict.unwrap_or((false, false)),
            Err(_) => {
                warn!("login deadline passed while verifying");
                self.conn.send_err(ErrorBody::new(ErrorCode::Timeout, "login took too long")).await.ok();
                return Ok(Verdict::Out);
            }
        };
        if !ok {
            return self.failed(user, "unknown user or wrong password").await;
        }
        if key_only {
            // Said only to whoever knows the password: a wrong one is an
            // ordinary failure above.
            warn!(user = %escape(user), "password login refused: this user logs in with a key only");
            shared.metrics().login(LoginResult::Refused);
            let msg = "password login is turned off for this user: log in with a key";
            self.conn.send_err(ErrorBody::new(ErrorCode::AuthFailed, msg)).await?;
            return Ok(Verdict::Answered);
        }
        self.enter(user, started).await
    }

    /// Lets an authenticated user in: a session slot, their files, then
    /// the reply.
    async fn enter(&mut self, user: &str, started: Instant) -> Result<Verdict, super::ConnError> {
        let shared = self.shared.clone();
        let ip = self.peer.ip();
        let max = shared.config().max_sessions_per_user;
        let Some(slot) = shared.limits().enter_user(user, max) else {
            warn!(user = %user, "too many sessions for this user");
            shared.metrics().login(LoginResult::Refused);
            let msg = format!("too many sessions for user {user} (limit {max})");
            self.conn.send_err(ErrorBody::new(ErrorCode::TooManySessions, msg)).await?;
            return Ok(Verdict::Out);
        };
        let files = match shared.engine().files(user).await {
            Ok(files) => files,
            Err(e) => {
                let err = super::reply::error_body(&e, &"your home directory");
                tracing::error!(user = %user, error = %err, "cannot open the user's files");
                self.conn.send_err(err).await?;
                return Ok(Verdict::Out);
            }
        };
        shared.throttle().succeeded(ip, user);
        self.waiting = None;
        tracing::Span::current().record("user", user);
        info!(elapsed_ms = started.elapsed().as_millis() as u64, "login");
        let (upload_rate, download_rate) = shared.engine().caps(user);
        self.conn.send_ok(&LoginOk { user: user.to_owned(), cwd: "/".into(), upload_rate, download_rate }).await?;
        let counted = shared.metrics().login(LoginResult::Ok);
        self.user = Some(LoggedIn { files, cwd: RemotePath::root(), _slot: slot, _counted: counted });
        self.conn.logged_in();
        Ok(Verdict::In)
    }
}

/// How one login went.
enum Verdict {
    /// Logged in.
    In,
    /// Refused; the connection closes.
    Out,
    /// Answered (a key query, or a request refused without counting as a
    /// failure); the gate goes on.
    Answered,
    /// Wrong name, password or signature; another attempt may follow.
    Failed,
}

impl Verdict {
    /// Whether the login phase is over after this attempt, and logged in
    /// (`Some(true)`) or not; a failure counts against `attempts`, and the
    /// last one allowed ends it.
    fn ends_login(self, attempts: &mut u32) -> Option<bool> {
        match self {
            Verdict::In => Some(true),
            Verdict::Out => Some(false),
            Verdict::Answered => None,
            Verdict::Failed => {
                *attempts += 1;
                (*attempts >= MAX_LOGIN_ATTEMPTS).then_some(false)
            }
        }
    }
}
