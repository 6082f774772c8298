//! Many files over one connection, pipelined.
//!
//! A session answers requests strictly in order (PROTOCOL.md §6), so the
//! client may send the next requests before the replies to the earlier
//! ones arrive. Up to [`WINDOW`] requests are in flight: enough to keep the
//! connection busy with small files, few enough that their replies always
//! fit in the socket buffers (so neither side can block the other).

use super::local::{Place, Target};
use super::{
    Client, ClientError, GetOptions, GetSummary, Got, PendingGet, Progress, PutSummary, RESUME_THRESHOLD, Result,
};
use bytes::Bytes;
use ftp_proto::{Frame, PutOk, Trailer};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Requests sent ahead of their replies, by default
/// ([`Client::set_window`] changes it).
pub const WINDOW: usize = 64;

/// Small files read ahead of the network (each under [`RESUME_THRESHOLD`]).
const READ_AHEAD: usize = 8;

/// One local file, as the reader thread found it.
enum Loaded {
    /// Read whole, with its BLAKE3 (hex) and modification time.
    Small(Bytes, String, Option<i64>),
    /// Too large to hold: sent on its own, resumably, after the small ones.
    Large,
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Uploads each `(local, remote)` pair and returns one result per pair,
    /// in order. A refused or unreadable file does not stop the others; a
    /// lost connection fails the rest.
    ///
    /// Files under [`RESUME_THRESHOLD`] are read whole by a helper thread
    /// and pipelined: each one's request, data and end frame go out without
    /// waiting for the earlier replies. Larger files follow one at a time
    /// through [`Client::put_file`], resumably. `progress` sees `start` for
    /// each file as it begins and `advance` as its bytes go out.
    pub async fn put_many(
        &mut self,
        items: &[(PathBuf, String)],
        progress: &mut dyn Progress,
    ) -> Vec<Result<PutSummary>> {
        let mut results: Vec<Option<Result<PutSummary>>> = (0..items.len()).map(|_| None).collect();
        if self.broken {
            return finish(results, Some("the connection is out of step after an earlier failure".into()));
        }
        let mut large = Vec::new();
        let mut loaded = spawn_reader(items.iter().map(|(local, _)| local.clone()).collect());
        // (index, size, hash) of each upload whose reply is due.
        let mut in_flight: VecDeque<(usize, u64, String)> = VecDeque::new();
        let mut lost: Option<String> = None;
        while let Some((index, file)) = loaded.recv().await {
            let (data, hash, mtime) = match file {
                Ok(Loaded::Small(data, hash, mtime)) => (data, hash, mtime),
                Ok(Loaded::Large) => {
                    large.push(index);
                    continue;
                }
                Err(source) => {
                    results[index] = Some(Err(ClientError::Local { path: items[index].0.clone(), source }));
                    continue;
                }
            };
            if in_flight.len() >= self.window
                && let Err(e) = self.put_reply(&mut in_flight, &mut results).await
            {
                lost = Some(e.to_string());
                break;
            }
            let size = data.len() as u64;
            progress.begin(&items[index].1);
            progress.start(0, size);
            if let Err(e) = self.feed_put(&items[index].1, data, &hash, mtime).await {
                results[index] = Some(Err(e));
                lost = Some("the connection failed during an earlier upload".into());
                break;
            }
            progress.advance(size);
            in_flight.push_back((index, size, hash));
        }
        while lost.is_none() && !in_flight.is_empty() {
            if let Err(e) = self.put_reply(&mut in_flight, &mut results).await {
                lost = Some(e.to_string());
            }
        }
        if lost.is_some() {
            self.broken = true; // replies or data may be left unread
        }
        for index in large {
            if lost.is_some() {
                break;
            }
            let (local, remote) = &items[index];
            progress.begin(remote);
            let result = self.put_file(local, remote, progress).await;
            if self.broken {
                lost = Some("the connection is out of step after an earlier failure".into());
            }
            results[index] = Some(result);
        }
        finish(results, lost)
    }

    /// Queues one small upload: request, data, end frame.
    async fn feed_put(&mut self, remote: &str, data: Bytes, hash: &str, mtime: Option<i64>) -> Result<()> {
        let request = self.put_request(remote, data.len() as u64, false, mtime);
        let trailer = Trailer { hash: Some(hash.to_owned()), ..Trailer::default() };
        let mut frames = vec![Frame::Message(request.encode())];
        if !data.is_empty() {
            frames.push(Frame::Data(data));
        }
        frames.push(Frame::End(trailer.encode()));
        for frame in frames {
            self.feed(frame).await?;
        }
        Ok(())
    }

    /// Flushes what is queued and reads the oldest upload's reply into
    /// `results`. An error return means the connection is unusable.
    async fn put_reply(
        &mut self,
        in_flight: &mut VecDeque<(usize, u64, String)>,
        results: &mut [Option<Result<PutSummary>>],
    ) -> Result<()> {
        self.flush().await?;
        let (index, size, hash) = in_flight.pop_front().expect("a reply is due");
        let reply = match self.reply::<PutOk>().await {
            Ok(ok) if ok.size == size && ok.hash.eq_ignore_ascii_case(&hash) => {
                Ok(PutSummary { stored: ok, resumed_from: 0 })
            }
            Ok(ok) => Err(ClientError::Integrity(format!(
                "server stored {} bytes hashing to {}, we sent {size} bytes hashing to {hash}",
                ok.size, ok.hash
            ))),
            Err(e) => Err(e),
        };
        let fatal = matches!(reply, Err(ClientError::Io(_) | ClientError::Timeout | ClientError::Protocol(_)));
        let message = reply.as_ref().err().map(ToString::to_string);
        results[index] = Some(reply);
        match (fatal, message) {
            (true, Some(message)) => Err(ClientError::Protocol(message)),
            _ => Ok(()),
        }
    }

    /// Downloads each `(remote, local)` pair and returns one result per
    /// pair, in order. Requests go out up to [`WINDOW`] ahead of the file
    /// being received, so the server never waits for the client between
    /// files. Each file is verified and renamed into place as by
    /// [`Client::get_file`] (including resuming a partial left beside it),
    /// as `options` say. `progress` sees `start` for each file as its data
    /// begins.
    pub async fn get_many(
        &mut self,
        items: &[(String, PathBuf)],
        options: GetOptions,
        progress: &mut dyn Progress,
    ) -> Vec<Result<GetSummary>> {
        let mut results: Vec<Option<Result<GetSummary>>> = (0..items.len()).map(|_| None).collect();
        if self.broken {
            return finish(results, Some("the connection is out of step after an earlier failure".into()));
        }
        let mut pending: VecDeque<(usize, PendingGet)> = VecDeque::new();
        let mut next = 0;
        let mut lost: Option<String> = None;
        // Small files arrive whole and verified; a helper thread writes them
        // while the next ones come in.
        let (writes, mut queue) = mpsc::channel::<Staged>(READ_AHEAD);
        let mut queued = Vec::new();
        let durable = self.durable;
        let writer = tokio::task::spawn_blocking(move || {
            let mut failed = Vec::new();
            while let Some(first) = queue.blocking_recv() {
                let mut group = vec![first];
                while group.len() < WINDOW {
                    match queue.try_recv() {
                        Ok(more) => group.push(more),
                        Err(_) => break,
                    }
                }
                failed.extend(write_group(group, durable));
            }
            failed
        });
        while lost.is_none() && (next < items.len() || !pending.is_empty()) {
            while next < items.len() && pending.len() < self.window {
                let (remote, local) = &items[next];
                let request = match Target::resolve(local, options.write_through) {
                    Ok(target) => self.queue_get(remote, target, options).await,
                    Err(e) => Err(e),
                };
                match request {
                    Ok(p) => pending.push_back((next, p)),
                    Err(e @ ClientError::Local { .. }) => results[next] = Some(Err(e)),
                    Err(e) => {
                        lost = Some(e.to_string());
                        results[next] = Some(Err(e));
                    }
                }
                next += 1;
                if lost.is_some() {
                    break;
                }
            }
            let Some((index, p)) = pending.pop_front() else { continue };
            if lost.is_some() {
                break;
            }
            // The requests queued above go out together.
            if let Err(e) = self.flush().await {
                lost = Some(e.to_string());
                results[index] = Some(Err(e));
                break;
            }
            let remote = &items[index].0;
            progress.begin(remote);
            let got = self.complete_get(remote, p, progress).await;
            let result = match self.settle(got) {
                Ok(Got::Written(summary)) => Ok(summary),
                Ok(Got::Verified { summary, data, path, place }) => {
                    match writes.send(Staged { index, path: path.clone(), data, place }).await {
                        Ok(()) => {
                            queued.push(index);
                            Ok(summary)
                        }
                        Err(_) => Err(ClientError::Local { path, source: io::Error::other("writer stopped") }),
                    }
                }
                Err(e) => Err(e),
            };
            if self.broken {
                let why = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
                lost = Some(why);
            }
            results[index] = Some(result);
        }
        drop(writes);
        if lost.is_some() {
            self.broken = true;
        }
        // A writer that died takes every file handed to it down with it.
        let failed = writer
            .await
            .unwrap_or_else(|e| queued.iter().map(|&i| (i, io::Error::other(format!("writer failed: {e}")))).collect());
        for (index, source) in failed {
            if let Some((_, local)) = items.get(index) {
                results[index] = Some(Err(ClientError::Local { path: local.clone(), source }));
            }
        }
        finish(results, lost)
    }
}

/// A small download, verified, for the writer thread: the `index`th item,
/// to be written to `path` as `place` says.
struct Staged {
    index: usize,
    path: PathBuf,
    data: Vec<u8>,
    place: Place,
}

/// Writes downloaded files each to a temporary file, syncs them all (if
/// `durable`), then renames them into place: every file is on disk before
/// its name appears, and the group shares the filesystem's journal commits
/// instead of paying one each. Returns the failures.
fn write_group(group: Vec<Staged>, durable: bool) -> Vec<(usize, io::Error)> {
    let mut failed = Vec::new();
    let mut staged = Vec::with_capacity(group.len());
    for Staged { index, path, data, place } in group {
        match super::local::stage(&path, &data).and_then(|file| place.stamp(file.as_file()).map(|()| file)) {
            Ok(file) => staged.push((index, path, file, place)),
            Err(e) => failed.push((index, e)),
        }
    }
    // Start writeback of the whole group first, so the syncs below find the
    // data on its way and mostly wait for one journal commit together.
    #[cfg(target_os = "linux")]
    for (_, _, file, _) in staged.iter().filter(|_| durable) {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the call only starts writeback.
        unsafe { libc::sync_file_range(file.as_file().as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    let mut synced = Vec::with_capacity(staged.len());
    for (index, target, file, place) in staged {
        match if durable { file.as_file().sync_all() } else { Ok(()) } {
            Ok(()) => synced.push((index, target, file, place)),
            Err(e) => failed.push((index, e)),
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    for (index, target, file, place) in synced {
        match place.persist(file, &target) {
            Ok(()) => {
                dirs.insert(target.parent().map(Path::to_owned).unwrap_or_default());
            }
            Err(e) => failed.push((index, e)),
        }
    }
    // The new names themselves, durable.
    for dir in dirs.into_iter().filter(|_| durable) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        if let Ok(handle) = std::fs::File::open(&dir) {
            let _ = handle.sync_all();
        }
    }
    failed
}

/// Fills in the files left without an answer because the connection was
/// lost (an upload among them may or may not have been stored).
fn finish<T>(results: Vec<Option<Result<T>>>, lost: Option<String>) -> Vec<Result<T>> {
    let why = lost.unwrap_or_else(|| "no reply".into());
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ClientError::Protocol(format!("not confirmed: {why}")))))
        .collect()
}

/// Reads the files in order on a blocking thread, a few ahead of the
/// network: small ones whole and hashed, large ones only classified.
fn spawn_reader(paths: Vec<PathBuf>) -> mpsc::Receiver<(usize, io::Result<Loaded>)> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for (index, path) in paths.iter().enumerate() {
            if tx.blocking_send((index, load(path))).is_err() {
                return; // the uploader stopped
            }
        }
    });
    rx
}

fn load(path: &Path) -> io::Result<Loaded> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() >= RESUME_THRESHOLD {
        return Ok(Loaded::Large);
    }
    // The file may grow while we read: never hold more than the threshold.
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(RESUME_THRESHOLD).read_to_end(&mut data)?;
    if data.len() as u64 >= RESUME_THRESHOLD {
        return Ok(Loaded::Large);
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    Ok(Loaded::Small(Bytes::from(data), hash, crate::client::mtime_of(&meta)))
}
