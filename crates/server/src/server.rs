//! The accept loop: where a connection enters the daemon.

use crate::config::Config;
use crate::home::STATE_DIR;
use crate::users::UserStore;
use ftp_proto::{ErrorBody, ErrorCode, Frame, FrameCodec, encode_err};
use futures::SinkExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
}

/// Serves connections from `listener` until `shutdown` is cancelled, then
/// stops accepting, lets running transfers finish for the configured grace
/// period, and returns.
///
/// Idle sessions are told the server is shutting down and closed at once; a
/// session in the middle of a transfer finishes it first.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&config.root)
        .with_context(|| format!("cannot create data root {}", config.root.display()))?;
    // No upload survives a restart (resume is not in protocol v1): clear
    // leftover temporary files before anyone can log in.
    let staging = config.root.join(STATE_DIR).join("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
    }
    let users = UserStore::open(&config.users).context("cannot load users")?;
    if users.is_empty() {
        warn!(users = %config.users.display(), "no users yet: add one with `ftpd user add NAME`");
    }
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared { config, users, auth_slots: Semaphore::new(4) });
    let tracker = TaskTracker::new();
    let addr = listener.local_addr()?;
    info!(%addr, root = %shared.config.root.display(), "listening on {addr}");

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
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                tracker.spawn(async move {
                    crate::session::serve(stream, peer, shared, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                warn!(%peer, "connection limit reached; refusing");
                tracker.spawn(refuse(stream, ErrorCode::Busy, "server is at its connection limit; try again later"));
            }
        }
    }
    drop(listener);
    tracker.close();
    info!(sessions = tracker.len(), grace_secs = grace.as_secs(), "shutting down");
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(sessions = tracker.len(), "grace period over; closing remaining sessions");
    }
    info!("stopped");
    Ok(())
}

/// Answers a connection that won't be served with one error frame.
async fn refuse(stream: TcpStream, code: ErrorCode, message: &str) {
    let mut frames = Framed::new(stream, FrameCodec::new(ftp_proto::MAX_FRAME_BEFORE_LOGIN));
    let frame = Frame::Message(encode_err(&ErrorBody::new(code, message)));
    let _ = tokio::time::timeout(Duration::from_secs(5), frames.send(frame)).await;
}
