//! The login gate: before a user is known, only `hello`, `login` and
//! `quit` pass, in small frames, all within the login deadline.

use super::{LoggedIn, Session};
use crate::metrics::LoginResult;
use crate::throttle::Blocked;
use crate::transfer::escape;
use ftp_proto::{ErrorBody, ErrorCode, Frame, HelloOk, LoginOk, Password, RemotePath, Request};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

/// Login attempts allowed on one connection before it is closed.
const MAX_LOGIN_ATTEMPTS: u32 = 3;

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Hello and login. Returns whether the session is logged in.
    pub(super) async fn login(&mut self) -> Result<bool, super::ConnError> {
        let mut greeted = false;
        let mut attempts = 0;
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
                Request::Login { user, password } => match self.check_login(&user, password).await? {
                    Verdict::In => return Ok(true),
                    Verdict::Out => return Ok(false),
                    Verdict::Failed => {
                        attempts += 1;
                        if attempts >= MAX_LOGIN_ATTEMPTS {
                            return Ok(false);
                        }
                    }
                },
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

    /// Checks one login and, if it is good, opens the user's files.
    async fn check_login(&mut self, user: &str, password: Password) -> Result<Verdict, super::ConnError> {
        let started = Instant::now();
        let shared = self.shared.clone();
        let ip = self.peer.ip();
        if let Err(blocked) = shared.throttle().check(ip, user, started) {
            let (who, left) = match blocked {
                Blocked::Address(left) => (format!("from {ip}"), left),
                Blocked::User(left) => (format!("for user {}", escape(user)), left),
            };
            warn!(user = %escape(user), "login refused: blocked after failed logins {who}");
            shared.metrics().login(LoginResult::Refused);
            let msg = format!("too many failed logins {who}; try again in {} s", left.as_secs() + 1);
            self.conn.send_err(ErrorBody::new(ErrorCode::TooManyAttempts, msg)).await?;
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
                    crate::users::validate_user_name(&name).is_ok()
                        && checker.users().verify(&users, &name, password.expose())
                })
                .await
                .ok()
            }
        };
        let deadline = self.conn.deadline();
        let ok = match tokio::time::timeout_at(deadline, verify).await {
            Ok(verdict) => verdict.unwrap_or(false),
            Err(_) => {
                warn!("login deadline passed while verifying");
                self.conn.send_err(ErrorBody::new(ErrorCode::Timeout, "login took too long")).await.ok();
                return Ok(Verdict::Out);
            }
        };
        if !ok {
            shared.metrics().login(LoginResult::Failed);
            let delay = shared.throttle().failed(ip, user, Instant::now());
            warn!(user = %escape(user), delay_ms = delay.as_millis() as u64, "login failed");
            // Answer only after the delay (but within the deadline).
            tokio::time::sleep_until((tokio::time::Instant::now() + delay).min(self.conn.deadline())).await;
            self.conn.send_err(ErrorBody::new(ErrorCode::AuthFailed, "unknown user or wrong password")).await?;
            return Ok(Verdict::Failed);
        }
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
    /// Wrong name or password; another attempt may follow.
    Failed,
}
