//! The admin listener: `/metrics`, `/healthz` and `/readyz` over plain
//! HTTP, for Prometheus, load balancers, orchestrators and `ftpd health`.
//!
//! Off by default; when on it should listen on loopback (the daemon warns
//! otherwise: metrics name users). Each connection gets one `GET` answered
//! and is closed. Requests are bounded (a few KiB of head, a few seconds)
//! like everything else that comes from the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Largest request head read.
const MAX_HEAD: usize = 8 << 10;
/// Time a client gets to send its request and read the answer (a health
/// probe has a few seconds in all: a slow client must not hold a slot long).
const DEADLINE: Duration = Duration::from_secs(2);
/// Admin connections served at once; more get a quick 503.
const MAX_CLIENTS: usize = 64;

/// Serves the admin endpoints on `listener` until `stop` is cancelled.
/// `/readyz` answers 503 once `draining` is cancelled.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Full: say so at once rather than leave the caller waiting.
            let _ = stream
                .try_write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n");
            continue;
        };
        let (render, draining) = (render.clone(), draining.clone());
        tokio::spawn(async move {
            if tokio::time::timeout(DEADLINE, answer(stream, render.as_ref(), &draining)).await.is_err() {
                debug!(%peer, "admin client too slow");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, render: &(dyn Fn() -> String + Send + Sync), draining: &CancellationToken) {
    let Some(path) = read_request_path(&mut stream).await else {
        let _ = respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n").await;
        return;
    };
    let (status, kind, body) = match path.as_str() {
        "/metrics" => ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", render()),
        "/healthz" => ("200 OK", "text/plain", "alive\n".to_owned()),
        "/readyz" if draining.is_cancelled() => ("503 Service Unavailable", "text/plain", "draining\n".to_owned()),
        "/readyz" => ("200 OK", "text/plain", "ready\n".to_owned()),
        _ => ("404 Not Found", "text/plain", "not found: try /metrics, /healthz or /readyz\n".to_owned()),
    };
    let _ = respond(&mut stream, status, kind, &body).await;
}

/// Reads a request head and returns the path of a `GET` (query dropped).
async fn read_request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    if method != "GET" || !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    Some(target.split('?').next().unwrap_or_default().to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Asks the admin listener at `addr` whether the daemon is ready: `Ok` for
/// a 200 from `/readyz`, else why not. Blocking; for `ftpd health`.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default();
    match status.split(' ').nth(1) {
        Some("200") => Ok(()),
        Some(_) => Err(format!("{addr}: {status}: {}", text.rsplit("\r\n\r\n").next().unwrap_or_default().trim())),
        None => Err(format!("{addr}: not an HTTP answer")),
    }
}
