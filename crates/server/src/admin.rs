//! The admin listener: `/metrics`, `/healthz` and `/readyz` over plain
//! HTTP/1.1 (hyper), for Prometheus, load balancers, orchestrators and
//! `ftpd health`.
//!
//! Off by default; when on it should listen on loopback (the daemon warns
//! otherwise: metrics name users). Each connection gets one request
//! answered and is closed. Everything that comes from the network is
//! bounded: 64 connections at once (more get a quick 503), 8 KiB of request
//! head, and a few seconds per connection, so a slow client can't hold a
//! slot.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// Renders the metrics, in the OpenMetrics text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Largest request head read (hyper's smallest buffer limit).
const MAX_HEAD: usize = 8 << 10;
/// Time a client gets to send its request and read the answer (a health
/// probe has a few seconds in all: a slow client must not hold a slot long).
const DEADLINE: Duration = Duration::from_secs(2);
/// Admin connections served at once; more get a quick 503.
const MAX_CLIENTS: usize = 64;
/// The answer when all slots are taken, written without reading the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
Cache-Control: no-store\r\nConnection: close\r\n\r\nbusy\n";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain";

/// Serves the admin endpoints on `listener` until `stop` is cancelled, then
/// lets the requests in flight finish (within their deadline) and returns.
/// `/metrics` answers what `render` returns; `/readyz` answers 503 once
/// `draining` is cancelled.
pub async fn serve(listener: TcpListener, render: Render, draining: CancellationToken, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(DEADLINE).max_buf_size(MAX_HEAD).keep_alive(false);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
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
            let _ = stream.try_write(BUSY);
            // Take in what the client sent already, so that closing sends
            // a FIN and not a reset (which may discard the answer).
            let _ = stream.try_read(&mut [0; 1024]);
            continue;
        };
        let (render, draining) = (render.clone(), draining.clone());
        let service = service_fn(move |request| {
            let response = answer(&request, &render, &draining);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let served = tokio::time::timeout(DEADLINE, async {
                tokio::select! {
                    served = connection.as_mut() => served,
                    _ = stop.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                }
            });
            match served.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "admin connection failed"),
                Err(_) => debug!(%peer, "admin client too slow"),
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn answer(request: &Request<Incoming>, render: &Render, draining: &CancellationToken) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, OPENMETRICS, render()),
        "/healthz" => reply(StatusCode::OK, TEXT, "alive\n"),
        "/readyz" if draining.is_cancelled() => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n"),
        "/readyz" => reply(StatusCode::OK, TEXT, "ready\n"),
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found: try /metrics, /healthz or /readyz\n"),
    }
}

fn reply(status: StatusCode, kind: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    struct Listener {
        addr: SocketAddr,
        draining: CancellationToken,
        stop: CancellationToken,
        served: tokio::task::JoinHandle<()>,
    }

    async fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (draining, stop) = (CancellationToken::new(), CancellationToken::new());
        let render: Render = Arc::new(|| "# EOF\n".to_owned());
        let served = tokio::spawn(serve(listener, render, draining.clone(), stop.clone()));
        Listener { addr, draining, stop, served }
    }

    /// Sends `request` and reads the answer to the end (or to a reset:
    /// a refused client's request may reach a closed socket).
    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(answer).unwrap()
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")).await
    }

    #[tokio::test]
    async fn endpoints_answer_get_once_and_close() {
        let l = start().await;
        let metrics = get(l.addr, "/metrics?x=1").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        let lower = metrics.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/openmetrics-text; version=1.0.0"), "{metrics}");
        assert!(lower.contains("cache-control: no-store") && lower.contains("connection: close"), "{metrics}");
        assert!(metrics.ends_with("\r\n\r\n# EOF\n"), "{metrics}");
        assert!(get(l.addr, "/healthz").await.ends_with("\r\n\r\nalive\n"));
        assert!(get(l.addr, "/readyz").await.ends_with("\r\n\r\nready\n"));
        let missing = get(l.addr, "/nothing").await;
        assert!(missing.starts_with("HTTP/1.1 404") && missing.contains("try /metrics"), "{missing}");
        let post = exchange(l.addr, "POST /readyz HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405") && post.to_ascii_lowercase().contains("allow: get"), "{post}");
        let junk = exchange(l.addr, "hello there\r\n\r\n").await;
        assert!(junk.starts_with("HTTP/1.1 400"), "{junk}");

        l.draining.cancel();
        let draining = get(l.addr, "/readyz").await;
        assert!(draining.starts_with("HTTP/1.1 503") && draining.ends_with("draining\n"), "{draining}");
        let probed = tokio::task::spawn_blocking(move || probe(l.addr, Duration::from_secs(2))).await.unwrap();
        assert!(probed.as_ref().is_err_and(|e| e.contains("503") && e.contains("draining")), "{probed:?}");
        l.stop.cancel();
        l.served.await.unwrap();
    }

    #[tokio::test]
    async fn slow_and_surplus_clients_are_bounded() {
        let l = start().await;
        // A head that never ends is cut off after the deadline.
        let started = std::time::Instant::now();
        let mut slow = TcpStream::connect(l.addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        assert!(started.elapsed() < DEADLINE * 2, "{:?}", started.elapsed());

        // A head too large is refused.
        let huge = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(MAX_HEAD));
        let answer = exchange(l.addr, &huge).await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

        // Every slot held: the next client hears at once that it is busy.
        let mut held = Vec::new();
        for _ in 0..MAX_CLIENTS {
            held.push(TcpStream::connect(l.addr).await.unwrap());
        }
        let busy = get(l.addr, "/healthz").await;
        assert!(busy.starts_with("HTTP/1.1 503") && busy.ends_with("busy\n"), "{busy}");

        // Stopping ends the held connections too, and then `serve` returns.
        l.stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), l.served).await.expect("serve returns at once").unwrap();
        drop(held);
    }
}
