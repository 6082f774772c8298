//! The accept loop: where a connection enters the daemon, and the work
//! that runs beside the sessions (sweeping stale partials, reloading on
//! SIGHUP, the admin listener, status reports), all of it tracked so that
//! shutdown knows when the last piece is done.

use crate::config::Config;
use crate::limits::SlotKind;
use crate::shared::Shared;
use crate::tls::{CertPaths, TlsIdentity};
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
    let shared = Arc::new(Shared::open(config)?);
    let config = shared.config();
    info!(storage = %shared.engine().describe(), "storage");
    shared.start().await?;
    if shared.users().source().database().is_some() && config.users.exists() {
        warn!(users = %config.users.display(), "this users file is not read: with a database the users are there (`ftpd user` manages them)");
    }
    if config.s3.is_some() && shared.users().source().database().is_none() {
        warn!(
            "files in a bucket without `database`: the records are kept by conditional writes in the bucket; for several daemons on one bucket, set `database`"
        );
    }
    if config.recount_at_start {
        crate::usage::recount_at_start(&shared).await;
    }
    if shared.users().is_empty() {
        warn!(users = %shared.users().source().describe(), "no users yet: add one with `ftpd user add NAME`");
    }
    let tls = match config.tls {
        true => {
            let id = TlsIdentity::load(CertPaths::from_config(config)).context("cannot set up TLS")?;
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
    let tracker = TaskTracker::new();
    // Refusals are answered (inside TLS) by at most this many tasks at once;
    // beyond that a refused connection is simply closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let addr = listener.local_addr()?;
    // Work beside the sessions runs until the sessions are done.
    let done = CancellationToken::new();
    let background = TaskTracker::new();
    if let Some(admin) = shared.config().admin_listen {
        let admin = TcpListener::bind(admin).await.with_context(|| format!("cannot listen on {admin} (admin)"))?;
        let admin_addr = admin.local_addr()?;
        if !admin_addr.ip().is_loopback() {
            warn!(addr = %admin_addr, "admin listener on a non-loopback address: its metrics name your users");
        }
        info!(addr = %admin_addr, "admin listener on {admin_addr} (/metrics, /healthz, /readyz)");
        let metrics = shared.clone();
        let render = Arc::new(move || metrics.render_metrics());
        background.spawn(crate::admin::serve(admin, render, shutdown.clone(), done.clone()));
    }
    info!(%addr, root = %shared.root().display(), "listening on {addr}");
    background.spawn(remove_stale_partials(shared.clone(), done.clone()));
    background.spawn(reload_on_notice(shared.clone(), tls.clone(), reload, done.clone()));
    crate::systemd::ready();
    let status = shared.clone();
    let line = move || {
        let metrics = status.metrics();
        format!("{} sessions, {} connections", metrics.sessions(), metrics.connections())
    };
    background.spawn(crate::systemd::report_status(line, Duration::from_secs(2), done.clone()));

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
        let max_per_ip = shared.config().max_sessions_per_ip;
        let Some(slot) = shared.limits().enter_address(peer.ip(), max_per_ip) else {
            warn!(%peer, "too many sessions from this address; refusing");
            let msg = format!("too many sessions from {} (limit {max_per_ip})", peer.ip());
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::TooManySessions, msg);
            continue;
        };
        if let Some(left) = shared.throttle().address_blocked(peer.ip(), std::time::Instant::now()) {
            warn!(%peer, "address blocked after failed logins; refusing");
            let msg = format!("too many failed logins from {}; try again in {} s", peer.ip(), left.as_secs() + 1);
            refuse_within(&tracker, &refusals, stream, tls.clone(), ErrorCode::TooManyAttempts, msg);
            continue;
        }
        let per_ip = shared.config().max_unauthenticated_per_ip;
        let waiting = shared.limits().enter(peer.ip(), per_ip, SlotKind::Waiting).and_then(|slot| {
            let permit = shared.unauthenticated().clone().try_acquire_owned().ok()?;
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
                None => crate::session::serve(stream, peer, shared, shutdown, waiting, None).await,
                Some(id) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(id.config.clone());
                    let deadline = shared.config().tls_handshake_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let binding = crate::tls::key_login_binding(stream.get_ref().1);
                            crate::session::serve(stream, peer, shared, shutdown, waiting, binding).await
                        }
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
    let engine = shared.engine().tasks().clone();
    engine.close();
    let all = async {
        tracker.wait().await;
        // What sessions left to finish (a reservation to release) runs on.
        engine.wait().await;
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        warn!(sessions = tracker.len(), "grace period over; closing remaining sessions");
    }
    done.cancel();
    background.close();
    background.wait().await;
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
/// root, or from the bucket): once at start, then periodically, until the
/// daemon stops.
async fn remove_stale_partials(shared: Arc<Shared>, done: CancellationToken) {
    let max_age = shared.config().partial_max_age;
    let period = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        if let Err(e) = shared.engine().sweep(max_age).await {
            warn!(error = %e, "cannot sweep partial uploads");
        }
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Re-reads the TLS certificate and the users file on each notice (SIGHUP).
async fn reload_on_notice(
    shared: Arc<Shared>,
    tls: Option<Arc<TlsIdentity>>,
    reload: Arc<Notify>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = reload.notified() => {}
        }
        info!("reloading");
        if let Some(id) = &tls {
            match id.reload() {
                Ok(fingerprint) => info!(%fingerprint, "TLS certificate reloaded"),
                Err(e) => error!(error = %e, "cannot reload the TLS certificate; keeping the current one"),
            }
        }
        let users = shared.users().refresh().await;
        info!(users = users.users.len(), "users in force");
    }
}
