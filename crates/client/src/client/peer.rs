//! Who answered, when a connection fails before the session starts: the
//! first bytes the peer sent are kept, so a wrong port is named as such
//! ("it sent "SSH-2.0-..."") instead of showing up as a bare TLS or
//! framing error.

use super::ClientError;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept from the start of a connection.
const KEEP: usize = 64;

/// The first bytes read through a [`Recorded`] stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct FirstBytes(Arc<Mutex<Vec<u8>>>);

impl FirstBytes {
    /// Wraps `stream` to record into this (emptied first: what a former
    /// connection sent does not count).
    pub(crate) fn record<S>(&self, stream: S) -> Recorded<S> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Recorded { inner: stream, first: self.clone(), full: false }
    }

    fn get(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A stream that keeps its first bytes read, then just passes through.
#[derive(Debug)]
pub(crate) struct Recorded<S> {
    inner: S,
    first: FirstBytes,
    full: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.full && matches!(poll, Poll::Ready(Ok(()))) {
            let mut kept = self.first.0.lock().unwrap_or_else(|p| p.into_inner());
            let new = &buf.filled()[before..];
            let take = new.len().min(KEEP - kept.len());
            kept.extend_from_slice(&new[..take]);
            let full = kept.len() == KEEP;
            drop(kept);
            self.full = full;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the first bytes look like.
#[derive(Debug, PartialEq)]
enum Looks {
    /// Nothing came.
    Silent,
    /// A TLS record (handshake, alert...).
    Tls,
    /// An ftpd frame: a small length, then a JSON message.
    Ftpd,
    /// Anything else.
    Foreign,
}

fn looks(first: &[u8]) -> Looks {
    match first {
        [] => Looks::Silent,
        [0x14..=0x17, 3, ..] => Looks::Tls,
        [a, b, c, d, rest @ ..]
            if (2..=65_537).contains(&u32::from_be_bytes([*a, *b, *c, *d]))
                && rest.first().is_none_or(|t| *t == b'M')
                && rest.get(1).is_none_or(|j| *j == b'{') =>
        {
            Looks::Ftpd
        }
        _ => Looks::Foreign,
    }
}

/// Whether the error is the peer closing or resetting the connection.
fn closed(e: &ClientError) -> bool {
    use io::ErrorKind::*;
    matches!(e, ClientError::Io(e) if matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe))
}

/// Explains a TLS handshake with `addr` that failed with `e`, the peer
/// having sent `first` on the wire.
pub(crate) fn explain_tls(e: ClientError, addr: &str, first: &FirstBytes) -> ClientError {
    if !matches!(e, ClientError::Io(_) | ClientError::Tls(_)) {
        return e;
    }
    let first = first.get();
    match looks(&first) {
        Looks::Silent | Looks::Tls if closed(&e) => ClientError::ClosedInHandshake { addr: addr.to_owned() },
        Looks::Silent | Looks::Tls => e,
        Looks::Ftpd => ClientError::TlsMismatch(format!(
            "{addr} does not speak TLS: it answers as an ftpd run with --no-tls; \
             if that is expected, pass --no-tls too"
        )),
        Looks::Foreign => ClientError::NotFtpd { addr: addr.to_owned(), sent: describe(&first) },
    }
}

/// Explains a `hello` exchange with `addr` that failed with `e`, the
/// session's first bytes (inside TLS when `tls`) being `first`.
pub(crate) fn explain_hello(e: ClientError, addr: &str, first: &FirstBytes, tls: bool) -> ClientError {
    if !matches!(e, ClientError::Io(_) | ClientError::Protocol(_) | ClientError::Timeout) {
        return e;
    }
    let first = first.get();
    match looks(&first) {
        Looks::Tls if !tls => ClientError::TlsMismatch(format!("{addr} speaks TLS: connect without --no-tls")),
        Looks::Silent | Looks::Ftpd => e,
        Looks::Tls | Looks::Foreign => ClientError::NotFtpd { addr: addr.to_owned(), sent: describe(&first) },
    }
}

/// The first line of what was sent, escaped and quoted, naming the
/// protocol where it is a well-known one.
fn describe(first: &[u8]) -> String {
    let line = first.split(|b| matches!(b, b'\r' | b'\n')).next().unwrap_or_default();
    let shown = &line[..line.len().min(40)];
    let more = if line.len() > shown.len() { "..." } else { "" };
    let what = if first.starts_with(b"SSH-") {
        ", an SSH server's greeting"
    } else if first.starts_with(b"HTTP/") {
        ", an HTTP server's answer"
    } else {
        ""
    };
    format!("\"{}{more}\"{what}", shown.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_are_sorted_by_what_they_look_like() {
        assert_eq!(looks(b""), Looks::Silent);
        assert_eq!(looks(&[0x15, 3, 3, 0, 2, 2, 50]), Looks::Tls);
        assert_eq!(looks(b"\0\0\0\x30M{\"ok\":false}"), Looks::Ftpd);
        assert_eq!(looks(b"\0\0\0\x30"), Looks::Ftpd, "a frame cut short");
        assert_eq!(looks(b"SSH-2.0-OpenSSH_9.6\r\n"), Looks::Foreign);
        assert_eq!(looks(b"HTTP/1.1 400 Bad Request\r\n"), Looks::Foreign);
        assert_eq!(looks(b"\0\0\0\x30X"), Looks::Foreign);
        assert_eq!(looks(b"ok"), Looks::Foreign);
    }

    #[test]
    fn what_was_sent_is_shown_escaped_and_named() {
        assert_eq!(describe(b"SSH-2.0-OpenSSH_9.6\r\n"), "\"SSH-2.0-OpenSSH_9.6\", an SSH server's greeting");
        assert_eq!(describe(b"HTTP/1.1 400 Bad Request\r\nx"), "\"HTTP/1.1 400 Bad Request\", an HTTP server's answer");
        assert_eq!(describe(b"\x1b[2J\xff"), "\"\\x1b[2J\\xff\"");
        assert_eq!(describe(&[b'a'; 64]), format!("\"{}...\"", "a".repeat(40)));
    }
}
