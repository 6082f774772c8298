//! What the daemon tells systemd, and what systemd hands to it.
//!
//! Under `Type=notify` the service manager gives the daemon a
//! `NOTIFY_SOCKET`; the daemon reports `READY=1` once it listens,
//! `STOPPING=1` when it starts draining, and a `STATUS=` line with the
//! session count as it changes. Under socket activation (`ftpd.socket`)
//! the listening socket arrives as descriptor 3 (`LISTEN_FDS`). Outside
//! systemd (no such variables) every call here does nothing.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tells the service manager the daemon is serving.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// Tells the service manager the daemon is draining and will exit.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Whether a service manager listens for notifications.
pub fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Keeps the service manager's status line current: `STATUS=` with the
/// value of `line()` whenever it changes (checked every `every`), until
/// `stop` is cancelled.
pub async fn report_status(mut line: impl FnMut() -> String, every: Duration, stop: CancellationToken) {
    if !supervised() {
        return;
    }
    let mut last = String::new();
    loop {
        let now = line();
        if now != last {
            send(&[NotifyState::Status(&now)]);
            last = now;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The listening TCP socket passed by socket activation, if any. More than
/// one passed socket is refused: the daemon serves one listener.
pub fn activated_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let mut fds = sd_notify::listen_fds()?;
    let Some(fd) = fds.next() else { return Ok(None) };
    if fds.next().is_some() {
        return Err(std::io::Error::other("socket activation passed several sockets; ftpd serves exactly one"));
    }
    // SAFETY: systemd passed this descriptor to us alone (LISTEN_PID is our
    // pid, checked by listen_fds), and nothing else in the process owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    // Only a listening stream socket will do (a datagram socket, or one
    // not listening, would make the accept loop fail forever).
    let int_opt = |name| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut value).cast(), &mut len) };
        if rc == 0 { Ok(value) } else { Err(std::io::Error::last_os_error()) }
    };
    if int_opt(libc::SO_TYPE)? != libc::SOCK_STREAM || int_opt(libc::SO_ACCEPTCONN)? == 0 {
        return Err(std::io::Error::other("the passed socket is not a listening TCP socket (ListenStream=)"));
    }
    listener.local_addr()?;
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}
