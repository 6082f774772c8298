//! `get`: one download loop, from the transfer layer into data frames.
//!
//! The reply gives the size and where the data starts; the data frames
//! follow from there, then an end frame with the hash of the whole file.
//! The `get` requests that follow one whole in the read buffer (a client
//! fetching many files pipelines them) are opened together, and the small
//! ones answered with one flush; each is answered, and logged, in order,
//! as if alone.

use super::connection::ConnError;
use super::reply::error_body;
use super::{Outcome, Session};
use crate::transfer::{Body, Download, DownloadSource, Want};
use ftp_proto::{ErrorBody, Frame, GetOk, MAX_CHUNK, Request, Trailer, Version, encode_err, encode_ok};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

/// Most `get` requests opened together.
const MAX_GETS: usize = 64;

/// A `get` request.
struct Wanted {
    path: String,
    offset: u64,
    since: Option<Version>,
    started: Instant,
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// `get`, with the gets pipelined right behind it.
    pub(super) async fn get(
        &mut self,
        path: String,
        offset: u64,
        since: Option<Version>,
    ) -> Result<Outcome, ConnError> {
        let mut wanted = vec![Wanted { path, offset, since, started: Instant::now() }];
        self.take_pipelined_gets(&mut wanted);
        let resolved: Vec<Result<_, ErrorBody>> = wanted.iter().map(|w| self.resolve(&w.path)).collect();
        let wants = resolved
            .iter()
            .zip(&wanted)
            .filter_map(|(r, w)| Some(Want { path: r.as_ref().ok()?.clone(), offset: w.offset, since: w.since }))
            .collect();
        let mut opened = self.files().open_downloads(wants).await.into_iter();
        // Replies for small files wait here to go out together.
        let mut queued: Vec<Frame> = Vec::new();
        let count = wanted.len();
        let mut last = None;
        for (i, (want, target)) in wanted.into_iter().zip(resolved).enumerate() {
            let outcome = match target {
                Err(err) => {
                    let code = err.code;
                    queued.push(Frame::Message(encode_err(&err)));
                    Outcome::new(want.path, Err(code))
                }
                Ok(target) => match opened.next().expect("one download per path resolved") {
                    Err(e) => {
                        let err = error_body(&e, &target);
                        let code = err.code;
                        queued.push(Frame::Message(encode_err(&err)));
                        Outcome::new(&target, Err(code))
                    }
                    Ok(Download { size, mtime, offset, body: Body::Whole(data, hash) }) => {
                        queued.push(Frame::Message(encode_ok(&GetOk { size, mtime, offset })));
                        if !data.is_empty() {
                            queued.push(Frame::Data(data.into()));
                        }
                        let trailer = Trailer { hash: Some(hash.to_hex().to_string()), ..Trailer::default() };
                        queued.push(Frame::End(trailer.encode()));
                        Outcome { bytes: size, ..Outcome::new(&target, Ok(())) }
                    }
                    Ok(Download { size, mtime, offset, body: Body::Stream(source) }) => {
                        self.send_all(std::mem::take(&mut queued)).await?;
                        self.running = Some((target.to_string(), 0));
                        let mut outcome = self.stream(&target, GetOk { size, mtime, offset }, source).await?;
                        if offset > 0 {
                            outcome.path = format!("{target} (resumed at {offset})");
                        }
                        outcome
                    }
                },
            };
            if i + 1 == count {
                last = Some(outcome);
            } else {
                let result = outcome.result.map_err(ftp_proto::ErrorCode::as_str);
                self.shared.engine().finished("get", &outcome.path, outcome.bytes, result, want.started.elapsed());
            }
        }
        self.send_all(queued).await?;
        // The last one is logged by the caller, after the others.
        Ok(last.expect("at least the first get"))
    }

    /// Moves the `get` requests that follow whole in the read buffer into
    /// `wanted` (up to [`MAX_GETS`] in all). Stops at anything else, which
    /// the request loop then reads as usual.
    fn take_pipelined_gets(&mut self, wanted: &mut Vec<Wanted>) {
        while wanted.len() < MAX_GETS {
            let Some((taken, json)) = self.conn.peek_message() else { return };
            let Ok(Request::Get { path, offset, since }) = Request::decode(json) else { return };
            self.conn.skip(taken);
            wanted.push(Wanted { path, offset, since, started: Instant::now() });
        }
    }

    /// Streams a download: the reply, the data frames, then an end frame
    /// with the hash of the whole file (or why reading failed).
    async fn stream(
        &mut self,
        target: &ftp_proto::RemotePath,
        head: GetOk,
        mut source: crate::transfer::Stream,
    ) -> Result<Outcome, ConnError> {
        self.send_ok(&head).await?;
        let mut sent = 0u64;
        while let Some(chunk) = source.next().await {
            for piece in chunk.as_slice().chunks(MAX_CHUNK) {
                self.conn.send_data(piece).await?;
                sent += piece.len() as u64;
                if let Some((_, bytes)) = &mut self.running {
                    *bytes = sent;
                }
            }
            source.recycle(chunk);
        }
        let (trailer, result) = match source.finish().await {
            Ok(hash) => (Trailer { hash: Some(hash.to_hex().to_string()), ..Trailer::default() }, Ok(())),
            Err(e) => {
                warn!(path = %target, error = %e, "read failed during download");
                let err = error_body(&e, target);
                let code = err.code;
                (Trailer { error: Some(err), ..Trailer::default() }, Err(code))
            }
        };
        self.conn.send(Frame::End(trailer.encode())).await?;
        Ok(Outcome { bytes: sent, ..Outcome::new(target, result) })
    }
}
