//! Uploads, as every door sees them: room reserved before any data, bytes
//! taken in order, the whole content's hash checked before the file
//! appears, the reservation settled (or released) however it ends.

use super::takeover::Holding;
use super::{Error, Place, Result};
use crate::rate::Pace;
use crate::storage::{Backend, Quota, Reservation, Sink, SmallFile, UploadMode, UploadSink};
use ftp_proto::RemotePath;
use std::time::Instant;
use tracing::warn;

/// How the sender ended an upload.
#[derive(Debug)]
pub enum End {
    /// Its BLAKE3 of the whole file.
    Hash(blake3::Hash),
    /// It gave up; `integrity` when it found the bytes held wrong (then
    /// they go; otherwise a resumable upload keeps them).
    Abandoned {
        /// Why, in its words.
        message: String,
        /// The held bytes were not the sender's.
        integrity: bool,
    },
}

/// What an upload asks of the file it stores, besides its content.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// The modification time to give it (seconds since the epoch), where
    /// the store keeps one.
    pub mtime: Option<i64>,
    /// Store it only if nothing is at its path: checked before any data
    /// and again when it is published, under the path's lock.
    pub exclusive: bool,
    /// The user may not overwrite a file there (set by the engine from
    /// their permissions): checked like `exclusive`, for files.
    pub(crate) no_overwrite: bool,
}

/// A completed upload.
#[derive(Debug)]
pub struct Done {
    /// The verified BLAKE3 of the whole file.
    pub hash: blake3::Hash,
    /// The modification time it was given, if it asked for one and the
    /// store keeps times.
    pub mtime: Option<i64>,
}

/// An upload in progress. Dropped unfinished (the connection broke, the
/// session was stopped), it ends in the background: a resumable one keeps
/// its partial for the next attempt.
pub struct Upload {
    files: Place,
    path: RemotePath,
    /// Bytes this attempt is to receive, and of those still expected.
    expected: u64,
    remaining: u64,
    declared: Option<blake3::Hash>,
    options: PutOptions,
    offset: u64,
    prefix: blake3::Hash,
    renewed: Instant,
    /// The bandwidth caps it goes under.
    pace: Pace,
    /// `None` once finished.
    state: Option<Receiving>,
}

struct Receiving {
    sink: Sink,
    reservation: Reservation,
    /// Dropped after the sink (fields drop in order): the partial is let
    /// go of before a waiting attempt is told it is free.
    holding: Option<Holding>,
}

impl Place {
    /// Begins an upload of `size` bytes to `path`. With `resume`, the
    /// upload continues the target's partial (taking it over from an
    /// attempt that stalled) or starts one; if a live upload is sending
    /// the same file, this one goes to a private file from offset 0, and
    /// the last to complete wins. `hash`, when the sender declares it, is
    /// the whole file's: a partial recorded under another is not
    /// continued, and the upload must end with it.
    pub async fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        resume: bool,
        hash: Option<blake3::Hash>,
        options: PutOptions,
    ) -> Result<Upload> {
        let options = self.check_upload(path, size, options)?;
        self.check_absent(path, &options).await?;
        let options = self.keepable(options);
        let mut holding = None;
        if resume {
            holding = self.engine.holders.acquire(&self.owner, &path.to_string()).await;
        }
        let mode = match holding {
            Some(_) => UploadMode::Resumable { hash },
            None => UploadMode::Private,
        };
        let sink = match self.home.begin_upload(path, size, mode).await {
            // Held elsewhere (another daemon on the data root, or a race).
            Err(Error::Held) => {
                holding = None;
                self.home.begin_upload(path, size, UploadMode::Private).await?
            }
            other => other?,
        };
        if sink.dropped() > 0
            && let Some(partial) = sink.partial()
            && let Err(e) = self.account.partial_dropped(partial, sink.dropped()).await
        {
            warn!(user = %self.owner, error = %e, "cannot take a superseded partial out of the usage");
        }
        let (offset, prefix) = (sink.offset(), sink.prefix_hash());
        let reservation = match self.reserve(path, size, offset, sink.partial()).await {
            Ok(r) => r,
            Err(e) => {
                sink.abort(true).await;
                return Err(e);
            }
        };
        Ok(Upload {
            files: self.clone(),
            path: path.clone(),
            expected: size - offset,
            remaining: size - offset,
            declared: hash,
            options,
            offset,
            prefix,
            renewed: Instant::now(),
            pace: self.engine.pace(&self.user, super::Direction::Up),
            state: Some(Receiving { sink, reservation, holding }),
        })
    }

    /// Begins a small upload, received whole into memory before it is
    /// stored with the ones around it ([`Place::store_small`]): its room
    /// in the quota is reserved now.
    pub async fn begin_small(
        &self,
        path: &RemotePath,
        size: u64,
        hash: Option<blake3::Hash>,
        options: PutOptions,
    ) -> Result<SmallPut> {
        let options = self.check_upload(path, size, options)?;
        self.check_absent(path, &options).await?;
        let options = self.keepable(options);
        let reservation = self.reserve(path, size, 0, None).await?;
        Ok(SmallPut {
            files: self.clone(),
            path: path.clone(),
            size,
            declared: hash,
            options,
            data: Vec::with_capacity(size.min(crate::storage::SMALL_FILE) as usize),
            scratch: Vec::new(),
            pace: self.engine.pace(&self.user, super::Direction::Up),
            reservation: Some(reservation),
        })
    }

    /// The options as the store can honour them: a modification time only
    /// where the store keeps one.
    fn keepable(&self, options: PutOptions) -> PutOptions {
        PutOptions { mtime: options.mtime.filter(|_| self.home.keeps_mtime()), ..options }
    }

    /// Stores small uploads received whole and verified, in order, and
    /// settles each one's reservation. Returns each one's outcome: the
    /// modification time it was given, if any.
    pub async fn store_small(&self, mut puts: Vec<SmallPut>) -> Vec<Result<Option<i64>>> {
        let paths: Vec<RemotePath> = puts.iter().map(|p| p.path.clone()).collect();
        let locked = self.engine.locks.lock(&self.owner, &paths.iter().collect::<Vec<_>>()).await;
        // An exclusive one is refused if its target exists by now (or an
        // earlier one of these is going there); so is one that may not
        // overwrite a file there.
        let mut outcomes: Vec<Option<Result<crate::storage::Removed>>> = Vec::with_capacity(puts.len());
        let mut files = Vec::with_capacity(puts.len());
        for (i, put) in puts.iter_mut().enumerate() {
            let taken = paths[..i].contains(&put.path);
            let refused = match self.check_absent(&put.path, &put.options).await {
                Err(e) => Some(e),
                Ok(()) if taken && put.options.exclusive => Some(Error::Exists),
                Ok(()) if taken && put.options.no_overwrite => {
                    Some(self.allowed(super::Permission::Overwrite, &put.path).err().unwrap_or(Error::Exists))
                }
                Ok(()) => None,
            };
            if let Some(refused) = refused {
                outcomes.push(Some(Err(refused)));
                continue;
            }
            outcomes.push(None);
            let data = std::mem::take(&mut put.data);
            files.push(SmallFile { path: put.path.clone(), data, mtime: put.options.mtime });
        }
        let mut stored = self.home.store_small(files).await.into_iter();
        drop(locked);
        let mut results = Vec::with_capacity(puts.len());
        for (outcome, mut put) in outcomes.into_iter().zip(puts) {
            let reservation = put.reservation.take().expect("reserved until stored");
            let result = match outcome {
                Some(refused) => refused,
                None => stored.next().unwrap_or_else(|| Err(Error::other("the store skipped an upload"))),
            };
            results.push(match result {
                Ok(replaced) => {
                    self.settle(reservation, replaced).await;
                    Ok(put.options.mtime)
                }
                Err(e) => {
                    self.release(reservation, 0).await;
                    Err(e)
                }
            });
        }
        results
    }
}

/// A small upload, received whole into memory and checked before it is
/// stored with the ones around it. Dropped unstored, its reservation
/// ends in the background.
pub struct SmallPut {
    files: Place,
    path: RemotePath,
    size: u64,
    declared: Option<blake3::Hash>,
    options: PutOptions,
    data: Vec<u8>,
    /// The buffer lent out for the next chunk.
    scratch: Vec<u8>,
    pace: Pace,
    reservation: Option<Reservation>,
}

impl SmallPut {
    /// Where it goes, as the user sees it.
    pub fn path(&self) -> RemotePath {
        self.files.outer(&self.path)
    }

    /// The files it goes to.
    pub(super) fn place(&self) -> &Place {
        &self.files
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.size - self.data.len() as u64
    }

    /// A buffer to receive the next chunk into.
    pub fn buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.scratch)
    }

    /// Takes the first `n` bytes of `buf`, at most [`SmallPut::remaining`],
    /// once the bandwidth caps let them in.
    pub async fn write(&mut self, buf: Vec<u8>, n: usize) {
        self.pace.take(n).await;
        self.data.extend_from_slice(&buf[..n]);
        self.scratch = buf;
    }

    /// Checks the upload as the sender ended it: whole, and hashing to
    /// what it said (and to what it declared up front). Returns the hash.
    pub fn check(&self, end: End) -> Result<blake3::Hash> {
        let received = self.data.len() as u64;
        match end {
            End::Abandoned { message, .. } => Err(Error::Abandoned(format!("upload abandoned by client: {message}"))),
            End::Hash(_) if received != self.size => {
                Err(Error::Integrity(format!("received {received} of {} bytes declared", self.size)))
            }
            End::Hash(claimed) => {
                check_declared(self.declared, &claimed)?;
                let actual = blake3::hash(&self.data);
                if actual != claimed {
                    return Err(Error::Integrity(format!(
                        "hash mismatch: the file received hashes to {}",
                        actual.to_hex()
                    )));
                }
                Ok(actual)
            }
        }
    }
}

impl Drop for SmallPut {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let files = self.files.clone();
            self.files.engine.spawn(async move { files.release(reservation, 0).await });
        }
    }
}

/// An upload must end with the hash it declared up front, if it did.
fn check_declared(declared: Option<blake3::Hash>, claimed: &blake3::Hash) -> Result<()> {
    match declared {
        Some(declared) if declared != *claimed => Err(Error::Integrity(format!(
            "the end frame's hash {} differs from the hash the request declared, {}",
            claimed.to_hex(),
            declared.to_hex()
        ))),
        _ => Ok(()),
    }
}

impl Upload {
    /// Bytes held before this attempt (0 for a fresh upload).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// BLAKE3 of the bytes held.
    pub fn prefix_hash(&self) -> blake3::Hash {
        self.prefix
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether the partial outlives a broken connection.
    #[cfg(test)]
    pub(crate) fn resumable(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.reservation.claim.partial.is_some())
    }

    /// Resolves when a newer attempt takes this upload over (never for a
    /// private upload).
    pub fn taken_over(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.state.as_ref().and_then(|s| s.holding.as_ref()).map(Holding::stopped);
        async move {
            match token {
                Some(token) => token.cancelled_owned().await,
                None => std::future::pending().await,
            }
        }
    }

    /// A buffer to receive the next chunk into.
    pub async fn buffer(&mut self) -> Result<Vec<u8>> {
        match &mut self.state {
            Some(state) => state.sink.buffer().await,
            None => Err(Error::other("the upload is over")),
        }
    }

    /// Takes the first `n` bytes of `buf`, at most [`Upload::remaining`].
    pub async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<()> {
        let Some(state) = &mut self.state else { return Err(Error::other("the upload is over")) };
        debug_assert!(n as u64 <= self.remaining);
        self.pace.take(n).await;
        self.remaining -= n as u64;
        let written = state.sink.write(buf, n).await;
        // After the write: a part going to the store is progress.
        if let Some(holding) = &state.holding {
            holding.touch();
        }
        if self.renewed.elapsed() >= self.files.account.renew_every() {
            self.renewed = Instant::now();
            let account = self.files.account.clone();
            let id = state.reservation.clone();
            self.files.engine.spawn(async move {
                if let Err(e) = account.renew(&id).await {
                    warn!(error = %e, "cannot renew an upload's reservation");
                }
            });
        }
        written
    }

    /// Ends the upload as the sender said: publishes the file if it is
    /// whole and its hash matches, else drops or keeps what is held.
    pub async fn finish(mut self, end: End) -> Result<Done> {
        let state = self.state.take().expect("an upload finishes once");
        let Receiving { sink, reservation, holding } = state;
        let files = self.files.clone();
        let refused = match end {
            End::Abandoned { message, integrity } => {
                let kept = sink.abort(!integrity).await;
                files.release(reservation, kept).await;
                return Err(Error::Abandoned(format!("upload abandoned by client: {message}")));
            }
            End::Hash(_) if self.remaining > 0 => {
                let received = self.expected - self.remaining;
                Some(Error::Integrity(format!("received {received} of {} bytes declared", self.expected)))
            }
            End::Hash(claimed) => check_declared(self.declared, &claimed).err(),
        };
        if let Some(refused) = refused {
            sink.abort(false).await;
            files.release(reservation, 0).await;
            return Err(refused);
        }
        let End::Hash(claimed) = end else { unreachable!("abandoned uploads returned above") };
        let committed = {
            let _locked = files.engine.locks.lock(&files.owner, &[&self.path]).await;
            match files.check_absent(&self.path, &self.options).await {
                Ok(()) => sink.commit(&claimed, self.options.mtime).await,
                Err(e) => {
                    sink.abort(false).await;
                    Err(e)
                }
            }
        };
        drop(holding);
        match committed {
            Ok(replaced) => {
                files.settle(reservation, replaced).await;
                Ok(Done { hash: claimed, mtime: self.options.mtime })
            }
            Err(e) => {
                files.release(reservation, 0).await;
                Err(e)
            }
        }
    }

    /// Gives up on the upload and drops what it holds (its bytes can't be
    /// trusted, or its store failed).
    pub async fn fail(mut self) {
        if let Some(state) = self.state.take() {
            let kept = state.sink.abort(false).await;
            self.files.release(state.reservation, kept).await;
        }
    }

    /// Leaves the upload unfinished: a resumable one keeps its partial.
    /// Returns the bytes kept for resume.
    pub async fn abort(mut self) -> u64 {
        let Some(state) = self.state.take() else { return 0 };
        let kept = state.sink.abort(true).await;
        self.files.release(state.reservation, kept).await;
        kept
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            let files = self.files.clone();
            self.files.engine.spawn(async move {
                let kept = state.sink.abort(true).await;
                files.release(state.reservation, kept).await;
                drop(state.holding);
            });
        }
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("path", &self.path).field("remaining", &self.remaining).finish()
    }
}
