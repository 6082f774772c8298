//! The accept loop: where a connection enters the daemon.

use crate::accounts::{Accounts, SlotKind};
use crate::config::Config;
use crate::home::{Home, STATE_DIR};
use crate::throttle::Throttle;
use crate::tls::{CertPaths, TlsIdentity};
use crate::users::{UserStore, validate_user_name};
use ftp_proto::{ErrorBody, ErrorCode, Frame, FrameCodec, encode_err};
use futures::SinkExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// State shared by all sessions.
#[derive(Debug)]
pub struct Shared {
    /// Effective configuration.
    pub config: Config,
    /// The users file, reloaded on change.
    pub users: UserStore,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and a core
    /// for tens of milliseconds), so a login flood can't exhaust memory.
    pub auth_slots: Semaphore,
    /// Sessions per user and address; usage per user.
    pub accounts: Arc<Accounts>,
    /// Sessions holding resumable partials.
    pub uploads: crate::transfer::Holders,
    /// Failed-login throttling.
    pub throttle: Throttle,
    /// Slots for connections that have not logged in yet.
    pub unauthenticated: Arc<Semaphore>,
    /// Counters for the admin listener's `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The bucket and key prefix, when files live in object storage.
    pub objects: Option<(crate::objstore::Bucket, String)>,
}

/// Serves connections from `listener` until `shutdown` is cancelled, then
/// stops accepting, lets running transfers finish for the configured grace
/// period, and returns.
///
/// Idle sessions are told the server is shutting down and closed at once; a
/// session in the middle of a transfer finishes it first. Each notification
/// of `reload` re-reads the TLS certificate and the users file (a broken one
/// is reported and the current one kept); sessions are not disturbed.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&config.root)
        .with_context(|| format!("cannot create data root {}", config.root.display()))?;
    // Private temporary files (of uploads that raced for the same partial)
    // are never resumed: clear leftovers before anyone can log in. Resumable
    // partials in .ftpd/partial stay until they are resumed or grow stale.
    let staging = config.root.join(STATE_DIR).join("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let users = UserStore::open(&config.users).context("cannot load users")?;
    let objects = match &config.s3 {
        Some(s3) => {
            let store = s3.connect().context("cannot set up the object store")?;
            info!(endpoint = s3.endpoint.as_deref().unwrap_or("AWS"), bucket = %s3.bucket, prefix = %s3.prefix, "files in object storage");
            Some((store, s3.prefix.clone()))
        }
        None => None,
    };
    if users.is_empty() {
        warn!(users = %config.users.display(), "no users yet: add one with `ftpd user add NAME`");
    }
    let tls = match config.tls {
        true => {
            let id = TlsIdentity::load(CertPaths::from_config(&config)).context("cannot set up TLS")?;
            info!(cert = %id.cert_path().display(), fingerprint = %id.fingerprint(), "TLS certificate");
            Some(Arc::new(id))
        }
        false => {
            if !config.listen.ip().is_loopback() {
                warn!(addr = %config.listen, "serving PLAINTEXT on a non-loopback address: passwords and files cross the network in clear");
            }
            None
        }
    };
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let grace = config.shutdown_grace;
    let config_block = (config.login_block_after, config.login_block);
    let max_unauth = config.max_unauthenticated;
    std::fs::create_dir_all(config.root.join(STATE_DIR)).context("cannot create the state directory")?;
    let trusted_file = config.root.join(STATE_DIR).join("trusted-addresses");
    let shared = Arc::new(Shared {
        config,
        users,
        auth_slots: Semaphore::new(4),
        accounts: Arc::default(),
        uploads: Default::default(),
        throttle: Throttle::new(config_block.0, config_block.1).with_trusted_file(trusted_file),
        unauthenticated: Arc::new(Semaphore::new(max_unauth)),
        metrics: Default::default(),
        objects,
    });
    let tracker = TaskTracker::new();
    // Refusals are answered (inside TLS) by at most this many tasks at once;
    // beyond that a refused connection is simply closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let addr = listener.local_addr()?;
    // Helpers (admin listener, status reports) run until the daemon returns.
    let done = CancellationToken::new();
    let _done = done.clone().drop_guard();
    if let Some(admin) = shared.config.admin_listen {
        let admin = TcpListener::bind(admin).await.with_context(|| format!("cannot listen on {admin} (admin)"))?;
        let admin_addr = admin.local_addr()?;
        if !admin_addr.ip().is_loopback() {
            warn!(addr = %admin_addr, "admin listener on a non-loopback address: its metrics name your users");
        }
        info!(addr = %admin_addr, "admin listener on {admin_addr} (/metrics, /healthz, /readyz)");
        let metrics = shared.clone();
        let render = Arc::new(move || metrics.metrics.render(&metrics.accounts, &metrics.users));
        tokio::spawn(crate::admin::serve(admin, render, shutdown.clone(), done.clone()));
    }
    info!(%addr, root = %shared.config.root.display(), "listening on {addr}");
    tokio::spawn(remove_stale_partials(shared.clone(), shutdown.clone()));
    tokio::spawn(reload_on_notice(shared.clone(), tls.clone(), reload));
    crate::systemd::ready();
    let status = shared.clone();
    let line = move || format!("{} sessions, {} connections", status.metrics.sessions(), status.metrics.connections());
    tokio::spawn(crate::systemd::report_status(line, Duration::from_secs(2), done.clone()));

    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Typically out of descriptors: back off instead of spinning.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached; refusing");
            let msg = "server is at its connection limit; try again later";
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::Busy, msg.to_owned());
            continue;
        };
        let Some(slot) = shared.accounts.enter_address(peer.ip(), shared.config.max_sessions_per_ip) else {
            warn!(%peer, "too many sessions from this address; refusing");
            let msg = format!("too many sessions from {} (limit {})", peer.ip(), shared.config.max_sessions_per_ip);
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::TooManySessions, msg);
            continue;
        };
        if let Some(left) = shared.throttle.address_blocked(peer.ip(), std::time::Instant::now()) {
            warn!(%peer, "address blocked after failed logins; refusing");
            let msg = format!("too many failed logins from {}; try again in {} s", peer.ip(), left.as_secs() + 1);
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::TooManyAttempts, msg);
            continue;
        }
        let per_ip = shared.config.max_unauthenticated_per_ip;
        let waiting = shared.accounts.enter(peer.ip(), per_ip, SlotKind::Waiting).and_then(|slot| {
            let permit = shared.unauthenticated.clone().try_acquire_owned().ok()?;
            Some((slot, permit))
        });
        let Some(waiting) = waiting else {
            warn!(%peer, "too many connections waiting to log in; refusing");
            let msg = "too many connections waiting to log in; try again later".to_owned();
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::Busy, msg);
            continue;
        };
        let (shared, shutdown, tls) = (shared.clone(), shutdown.clone(), tls.clone());
        tracker.spawn(async move {
            match tls {
                None => crate::session::serve(stream, peer, shared, shutdown, waiting).await,
                Some(id) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(id.config.clone());
                    let deadline = shared.config.tls_handshake_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => crate::session::serve(stream, peer, shared, shutdown, waiting).await,
                        Ok(Err(e)) => warn!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => warn!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop((slot, permit));
        });
    }
    drop(listener);
    crate::systemd::stopping();
    tracker.close();
    info!(sessions = tracker.len(), grace_secs = grace.as_secs(), "shutting down");
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(sessions = tracker.len(), "grace period over; closing remaining sessions");
    }
    info!("stopped");
    Ok(())
}

/// Refusals being answered at once, at most.
const MAX_REFUSALS: usize = 64;

/// Answers a refused connection if a refusal slot is free, else closes it.
fn refuse_within(
    tracker: &TaskTracker,
    refusals: &Arc<Semaphore>,
    stream: TcpStream,
    tls: Option<Arc<TlsIdentity>>,
    code: ErrorCode,
    message: String,
) {
    if let Ok(permit) = refusals.clone().try_acquire_owned() {
        tracker.spawn(async move {
            refuse(stream, tls, code, message).await;
            drop(permit);
        });
    }
}

/// Answers a connection that won't be served with one error frame (inside
/// TLS when the daemon serves TLS, so the client can read it), all within a
/// few seconds.
async fn refuse(stream: TcpStream, tls: Option<Arc<TlsIdentity>>, code: ErrorCode, message: String) {
    let frame = Frame::Message(encode_err(&ErrorBody::new(code, message)));
    let answer = async {
        match tls {
            None => {
                let mut frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME_BEFORE_LOGIN));
                let _ = frames.send(frame).await;
            }
            Some(id) => {
                let Ok(stream) = tokio_rustls::TlsAcceptor::from(id.config.clone()).accept(stream).await else {
                    return;
                };
                let mut frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME_BEFORE_LOGIN));
                let _ = frames.send(frame).await;
                let _ = frames.get_mut().shutdown().await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
}

/// Removes partial uploads older than the configured age (from the data
/// root, or from the bucket): once at start, then periodically, until
/// shutdown.
async fn remove_stale_partials(shared: Arc<Shared>, shutdown: CancellationToken) {
    let max_age = shared.config.partial_max_age;
    let period = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        if let Some((store, prefix)) = &shared.objects {
            if let Err(e) = crate::objstore::sweep_stale_partials(store, prefix, max_age).await {
                warn!(error = %e, "cannot sweep partial uploads in the bucket");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            continue;
        }
        let s = shared.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let dir = s.config.root.join(STATE_DIR).join("partial");
            let Ok(entries) = std::fs::read_dir(&dir) else { return };
            for entry in entries.flatten() {
                let user = entry.file_name().to_string_lossy().into_owned();
                if validate_user_name(&user).is_err() {
                    continue;
                }
                let freed =
                    Home::open(&s.config.root, &user, false).and_then(|home| home.remove_stale_partials(max_age));
                match freed {
                    Ok(0) => {}
                    Ok(bytes) => {
                        info!(user = %user, bytes, "removed stale partial uploads");
                        s.accounts.adjust_if_loaded(&user, -(bytes as i64));
                    }
                    Err(e) => warn!(user = %user, error = %e, "cannot sweep partial uploads"),
                }
            }
        });
        let _ = swept.await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Re-reads the TLS certificate and the users file on each notice (SIGHUP).
async fn reload_on_notice(shared: Arc<Shared>, tls: Option<Arc<TlsIdentity>>, reload: Arc<Notify>) {
    loop {
        reload.notified().await;
        info!("reloading");
        if let Some(id) = &tls {
            match id.reload() {
                Ok(fingerprint) => info!(%fingerprint, "TLS certificate reloaded"),
                Err(e) => error!(error = %e, "cannot reload the TLS certificate; keeping the current one"),
            }
        }
        let users = shared.users.snapshot();
        info!(users = users.users.len(), "users in force");
    }
}
