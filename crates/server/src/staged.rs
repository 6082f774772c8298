//! Small uploads that arrive together are stored together.
//!
//! A client sending many small files pipelines them (PROTOCOL.md §6): while
//! one is received, the next requests are already waiting in the socket.
//! Each small upload is received and verified as it comes (`put_small` in
//! `transfer.rs`) and then staged here; the staged uploads are written,
//! renamed into place and answered together, in one trip to the blocking
//! pool and one flush, as soon as
//! - no further request is waiting whole in the read buffer,
//! - a request other than a small upload arrives (it runs only once the
//!   files staged before it are in place),
//! - any other reply is about to be sent, or
//! - the batch holds [`MAX_FILES`] files or [`MAX_BYTES`] bytes.
//!
//! Replies keep the order of the requests. A connection that ends with
//! uploads staged still stores them (each was received whole and verified),
//! as it would have one at a time.

use crate::accounts::Reservation;
use crate::errors::io_error;
use crate::session::{ConnError, Outcome, Session, log_request};
use ftp_proto::{Frame, PutOk, RemotePath, encode_err, encode_ok};
use std::io;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::warn;

/// Most uploads staged at once.
const MAX_FILES: usize = 64;
/// Most bytes staged at once (with one file of up to the small-file limit
/// on top, being received).
const MAX_BYTES: usize = 1 << 20;

/// A small upload received whole and verified, not yet written.
pub(crate) struct StagedPut {
    pub target: RemotePath,
    pub data: Vec<u8>,
    /// BLAKE3 (hex) of `data`, checked against the client's.
    pub hash: String,
    /// Its space in the quota, held until it is written or fails.
    pub reservation: Reservation,
    /// When its request arrived, for the log and the metrics.
    pub started: Instant,
}

/// The uploads staged in one session.
#[derive(Default)]
pub(crate) struct Staged {
    puts: Vec<StagedPut>,
    bytes: usize,
}

impl Staged {
    pub fn push(&mut self, put: StagedPut) {
        self.bytes += put.data.len();
        self.puts.push(put);
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }

    /// Whether the batch is as large as it may grow.
    pub fn is_full(&self) -> bool {
        self.puts.len() >= MAX_FILES || self.bytes >= MAX_BYTES
    }
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Writes the staged uploads, renames them into place in order, and
    /// answers each, with one flush for all the replies.
    pub(crate) async fn commit_staged(&mut self) -> Result<(), ConnError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let puts = std::mem::take(&mut self.staged).puts;
        let account = self.user().account().clone();
        let mut files = Vec::with_capacity(puts.len());
        let mut answers = Vec::with_capacity(puts.len());
        let mut reservations = Vec::with_capacity(puts.len());
        for put in puts {
            answers.push((put.target.clone(), put.hash, put.started, put.data.len() as u64));
            files.push((put.target, put.data));
            reservations.push(put.reservation);
        }
        let stored = self
            .fs(move |h| {
                let batch = h.write_small(&files);
                // Measuring the files replaced and replacing them are one
                // step for the quota: no other operation of this user in
                // between. Each file's bytes are counted before the next
                // one's replaced bytes leave (it may replace this one).
                let _ops = account.ops.blocking_lock();
                let results = batch.commit();
                for ((result, (_, data)), mut reservation) in results.iter().zip(&files).zip(reservations) {
                    if let Ok(replaced) = result {
                        reservation.written = data.len() as u64;
                        drop(reservation);
                        account.adjust(-(*replaced as i64));
                    }
                }
                Ok(results)
            })
            .await;
        let results = match stored {
            Ok(results) => results,
            Err(e) => answers.iter().map(|_| Err(io::Error::new(e.kind(), e.to_string()))).collect(),
        };
        let mut replies = Vec::with_capacity(answers.len());
        for ((target, hash, started, size), result) in answers.into_iter().zip(results) {
            let outcome = match result {
                Ok(_) => {
                    let ok = PutOk { path: target.to_string(), size, hash };
                    replies.push(Frame::Message(encode_ok(&ok)));
                    Ok(())
                }
                Err(e) => {
                    let err = io_error(&e, &target);
                    warn!(path = %target, error = %err, "upload rejected");
                    let code = err.code;
                    replies.push(Frame::Message(encode_err(&err)));
                    Err(code)
                }
            };
            let elapsed = started.elapsed();
            self.shared.metrics.request("put", Some(outcome), size, elapsed);
            log_request("put", &Outcome { bytes: size, ..Outcome::new(&target, outcome) }, elapsed);
        }
        self.write_frames(replies).await
    }
}
