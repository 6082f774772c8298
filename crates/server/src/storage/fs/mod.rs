//! Files under the data root on this machine.
//!
//! ```text
//! <root>/<user>/...                   the user's home
//! <root>/.ftpd/partial/<user>/<key>.part   a resumable upload's bytes
//! <root>/.ftpd/partial/<user>/<key>.meta   what it is for (target, size, hash)
//! <root>/.ftpd/staging/<user>/*.tmp   private files of uploads in progress
//! ```
//!
//! Every operation blocks, so each runs on tokio's blocking threads in one
//! trip ([`tree`] holds them); transfers move a chunk at a time through
//! the blocking pool, hashing as they read or write, with at most two
//! buffers each, taken from the root's [`Budget`]. A file's hash, once
//! known, is remembered for its next download ([`hashes`]).

mod hashes;
mod release;
mod tree;
mod upload;

use super::{
    Body, Chunk, Discarded, Download, Error, PartialInfo, Removed, Result, SMALL_FILE, SmallFile, Swept, UploadMode,
    Want,
};
use ftp_disk::{Budget, FileSink, FileSource, Hashing};
use ftp_proto::{DEFAULT_CHUNK, Entry, RemotePath};
use hashes::{Hashes, Stamp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use tree::{STATE_DIR, Tree};
pub use upload::FsSink;

/// The data root.
pub struct Root {
    root: PathBuf,
    fsync: bool,
    /// The room for the chunk buffers of all transfers.
    budget: Budget,
    /// The homes open in some session: one set of directory handles per
    /// user, not per session.
    homes: Mutex<HashMap<String, Weak<FsHome>>>,
    /// Hashes of files known from their uploads and downloads.
    hashes: Arc<Hashes>,
}

/// One user's home under the data root.
#[derive(Debug)]
pub struct FsHome {
    tree: Arc<Tree>,
    hashes: Arc<Hashes>,
    budget: Budget,
    home: PathBuf,
    partials: PathBuf,
}

impl Root {
    /// Creates the data root if needed and clears the private files of
    /// uploads that raced for the same partial (they are never resumed).
    /// Resumable partials stay until resumed or stale.
    pub fn open(root: &Path, fsync: bool) -> Result<Root> {
        std::fs::create_dir_all(root.join(STATE_DIR))?;
        let staging = root.join(STATE_DIR).join("staging");
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Root::beside(root, fsync))
    }

    /// The data root as a running daemon may be using it (for `ftpd
    /// usage`): nothing is cleared.
    pub fn beside(root: &Path, fsync: bool) -> Root {
        Root {
            root: root.to_owned(),
            fsync,
            budget: Budget::unlimited(),
            homes: Mutex::default(),
            hashes: Arc::default(),
        }
    }

    /// The data root with the chunk buffers of its transfers taken from
    /// `budget`.
    pub fn with_budget(mut self, budget: Budget) -> Root {
        self.budget = budget;
        self
    }

    /// The room for the chunk buffers of its transfers.
    pub(in crate::storage) fn budget(&self) -> &Budget {
        &self.budget
    }

    pub(in crate::storage) fn describe(&self) -> String {
        format!("files under {}", self.root.display())
    }

    /// The home of `user`, shared with the user's other sessions.
    pub async fn home(&self, user: &str) -> Result<Arc<FsHome>> {
        let shared = self.homes.lock().unwrap_or_else(|p| p.into_inner()).get(user).and_then(Weak::upgrade);
        if let Some(home) = shared {
            return Ok(home);
        }
        let (root, name, fsync) = (self.root.clone(), user.to_owned(), self.fsync);
        let (budget, hashes) = (self.budget.clone(), self.hashes.clone());
        let home = tokio::task::spawn_blocking(move || {
            let tree = Tree::open(&root, &name, fsync)?;
            let partials = root.join(STATE_DIR).join("partial").join(&name);
            Ok::<_, Error>(FsHome { tree: Arc::new(tree), hashes, budget, home: root.join(&name), partials })
        })
        .await??;
        let home = Arc::new(home);
        let mut homes = self.homes.lock().unwrap_or_else(|p| p.into_inner());
        homes.retain(|_, weak| weak.strong_count() > 0);
        homes.insert(user.to_owned(), Arc::downgrade(&home));
        Ok(home)
    }

    /// Removes every user's partials not written for `max_age`.
    pub(in crate::storage) async fn sweep(&self, max_age: std::time::Duration) -> Result<Vec<Swept>> {
        let (root, fsync) = (self.root.clone(), self.fsync);
        tokio::task::spawn_blocking(move || {
            let mut swept = Vec::new();
            let Ok(entries) = std::fs::read_dir(root.join(STATE_DIR).join("partial")) else { return Ok(swept) };
            for entry in entries.flatten() {
                let user = entry.file_name().to_string_lossy().into_owned();
                // A user's, or a shared folder's (`+FOLDER`).
                if crate::users::validate_user_name(user.strip_prefix('+').unwrap_or(&user)).is_err() {
                    continue;
                }
                match Tree::open(&root, &user, fsync).and_then(|tree| tree.remove_stale_partials(max_age)) {
                    Ok(removed) => swept.extend(removed.into_iter().map(|(partial, bytes)| Swept {
                        user: user.clone(),
                        partial,
                        bytes,
                    })),
                    Err(e) => tracing::warn!(user = %user, error = %e, "cannot sweep partial uploads"),
                }
            }
            Ok(swept)
        })
        .await?
    }
}

impl FsHome {
    /// Runs `f` on the tree on a blocking thread.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Tree) -> Result<T> + Send + 'static) -> Result<T> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || f(&tree)).await?
    }

    pub(in crate::storage) async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let dir = dir.clone();
        self.blocking(move |t| t.list(&dir)).await
    }

    pub(in crate::storage) async fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        let path = path.clone();
        self.blocking(move |t| t.is_dir(&path)).await
    }

    pub(in crate::storage) async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let path = path.clone();
        self.blocking(move |t| t.stat(&path)).await
    }

    pub(in crate::storage) async fn hash(&self, path: &RemotePath) -> Result<blake3::Hash> {
        let (path, hashes) = (path.clone(), self.hashes.clone());
        self.blocking(move |t| {
            let mut file = t.open_read(&path)?.0.into_std();
            let stamp = Stamp::of(&file.metadata()?);
            if let Some(hash) = hashes.get(&stamp) {
                return Ok(hash);
            }
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(&mut file)?;
            let hash = hasher.finalize();
            hashes.record_if_unchanged(stamp, &file, hash);
            Ok(hash)
        })
        .await
    }

    pub(in crate::storage) async fn file_size(&self, path: &RemotePath) -> Result<Option<u64>> {
        let path = path.clone();
        self.blocking(move |t| t.file_size(&path)).await
    }

    pub(in crate::storage) async fn remove_file(&self, path: &RemotePath) -> Result<Removed> {
        let path = path.clone();
        self.blocking(move |t| t.remove_file(&path)).await
    }

    pub(in crate::storage) async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let path = path.clone();
        self.blocking(move |t| t.create_dir(&path)).await
    }

    pub(in crate::storage) async fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        let path = path.clone();
        self.blocking(move |t| t.remove_dir(&path)).await
    }

    pub(in crate::storage) async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Removed> {
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |t| t.rename(&from, &to)).await
    }

    pub(in crate::storage) async fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        mode: UploadMode,
    ) -> Result<super::Sink> {
        let (resumable, hash) = match mode {
            UploadMode::Private => (false, None),
            UploadMode::Resumable { hash } => (true, hash.map(|h| h.to_hex().to_string())),
        };
        let target = path.clone();
        let (start, replacing) = self
            .blocking(move |t| {
                let start = t.begin_upload(&target, size, resumable, hash.as_deref())?;
                Ok((start, t.file_size(&target).ok().flatten().is_some_and(|n| n > 0)))
            })
            .await?;
        let prefix = start.hasher.finalize();
        // A file that will replace another is handed to the disk as it is
        // written, even without fsync: ext4 writes out all of it when it is
        // renamed over the other (`auto_da_alloc`, which keeps a crash from
        // leaving neither), and that took ~0.3 s of a 1 GiB put's reply.
        let writer = FileSink::budgeted(start.file, 0, start.hasher, self.tree.fsync, replacing, self.budget.clone());
        Ok(super::Sink::Fs(FsSink {
            tree: self.tree.clone(),
            path: path.clone(),
            upload: start.upload,
            writer: Some(writer),
            offset: start.offset,
            prefix,
            dropped: start.dropped,
            hashes: self.hashes.clone(),
        }))
    }

    pub(in crate::storage) async fn store_small(&self, files: Vec<SmallFile>) -> Vec<Result<Removed>> {
        let count = files.len();
        match self.blocking(move |t| Ok(t.store_small(&files))).await {
            Ok(results) => results,
            Err(e) => {
                let why = e.to_string();
                (0..count).map(|_| Err(Error::other(why.clone()))).collect()
            }
        }
    }

    /// Opens all of them in one trip to the blocking pool, and reads the
    /// small ones whole there: with many small files, those trips are most
    /// of the cost.
    pub(in crate::storage) async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>> {
        let count = wants.len();
        let opened = self.blocking(move |t| Ok(wants.iter().map(|w| open_download(t, w)).collect::<Vec<_>>())).await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) => {
                let why = e.to_string();
                return (0..count).map(|_| Err(Error::other(why.clone()))).collect();
            }
        };
        opened
            .into_iter()
            .map(|o| {
                o.map(|(head, opened)| {
                    let body = match opened {
                        Opened::Read(data) => {
                            let hash = blake3::hash(&data);
                            Body::Whole(data, hash)
                        }
                        Opened::File(file, stamp) => {
                            let (start, len) = (head.offset, head.size - head.offset);
                            let budget = self.budget.clone();
                            let (hashing, record) = match self.hashes.get(&stamp) {
                                Some(hash) => (Hashing::Known(hash), None),
                                // Recorded at the end if the file is still this
                                // version (checked on a handle of its own).
                                None => (
                                    Hashing::Hash(blake3::Hasher::new()),
                                    file.try_clone().ok().map(|f| (self.hashes.clone(), stamp, f)),
                                ),
                            };
                            let reader = FileSource::budgeted(file, start, len, hashing, DEFAULT_CHUNK, budget);
                            Body::Stream(super::Source::Fs(FsSource { reader, record }))
                        }
                    };
                    Download { size: head.size, mtime: head.mtime, offset: head.offset, body }
                })
            })
            .collect()
    }

    pub(in crate::storage) async fn usage(&self) -> Result<u64> {
        let (home, partials) = (self.home.clone(), self.partials.clone());
        tokio::task::spawn_blocking(move || tree::usage(&home, &partials)).await?
    }

    pub(in crate::storage) async fn partials(&self) -> Result<Vec<PartialInfo>> {
        self.blocking(|t| t.partials()).await
    }

    pub(in crate::storage) async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        let path = path.clone();
        self.blocking(move |t| t.discard_partial(&path)).await
    }
}

/// Size, time and start of a download, before its body.
struct Head {
    size: u64,
    mtime: i64,
    offset: u64,
}

/// A file opened for download.
enum Opened {
    /// Small: read whole already.
    Read(Vec<u8>),
    /// Streamed from here, this version of it.
    File(std::fs::File, Stamp),
}

/// Opens a file for download (blocking): its head, and the file itself,
/// or its whole content when it is small and wanted from the start.
fn open_download(t: &Tree, want: &Want) -> Result<(Head, Opened)> {
    let (file, meta) = t.open_read(&want.path)?;
    let size = meta.len();
    let mtime = tree::mtime_of(&meta);
    let offset = super::start_at(size, mtime, want);
    let head = Head { size, mtime, offset };
    let mut file = file.into_std();
    if size <= SMALL_FILE && offset == 0 {
        let mut data = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, size), &mut data)?;
        if data.len() as u64 == size {
            return Ok((head, Opened::Read(data)));
        }
        std::io::Seek::rewind(&mut file)?; // it changed: stream it
    }
    let stamp = Stamp::of(&file.metadata()?);
    Ok((head, Opened::File(file, stamp)))
}

/// The sending end of a download from the data root: the file read a
/// chunk at a time, at most two buffers in flight, taken from the root's
/// budget, and hashed unless its hash is known.
pub struct FsSource {
    reader: FileSource,
    /// Where to record the hash, for which version, and a handle to check
    /// that the file is still that version once read.
    record: Option<(Arc<Hashes>, Stamp, std::fs::File)>,
}

impl FsSource {
    pub(in crate::storage) async fn next(&mut self) -> Option<Chunk> {
        self.reader.next().await.map(|(buf, n)| Chunk::Buffer(buf, n))
    }

    pub(in crate::storage) fn recycle(&mut self, chunk: Chunk) {
        if let Chunk::Buffer(buf, _) = chunk {
            self.reader.recycle(buf);
        }
    }

    /// Whether the file is hashed as it is read (its hash was not known).
    #[cfg(test)]
    pub(in crate::storage) fn hashes_as_it_reads(&self) -> bool {
        self.record.is_some()
    }

    pub(in crate::storage) async fn finish(self) -> Result<blake3::Hash> {
        let hash = self.reader.finish().await?;
        if let Some((hashes, stamp, file)) = self.record {
            hashes.record_if_unchanged(stamp, &file, hash);
        }
        Ok(hash)
    }
}
