//! Uploads under the data root: a private or partial file outside the
//! home ([`Upload`]), written by a disk thread ([`FsSink`]) and renamed
//! into place once verified.

use super::hashes::{Hashes, Stamp};
use super::tree::Tree;
use crate::storage::{Error, Removed, Result};
use cap_std::fs::Dir;
use ftp_disk::FileSink;
use ftp_proto::RemotePath;
use std::sync::Arc;

/// What a resumable partial was started for, kept beside it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct PartialMeta {
    pub path: String,
    pub size: u64,
    pub hash: Option<String>,
}

/// An upload in progress: a partial (or temporary) file outside the home,
/// renamed into place by [`Upload::commit`]. A private temporary file is
/// removed on drop; a resumable partial stays for the next attempt unless
/// [`Upload::discard`] is called.
#[derive(Debug)]
pub struct Upload {
    store: Dir,
    temp_name: String,
    /// Set for resumable partials: the partial's key (`<key>.part` and
    /// its record `<key>.meta`).
    key: Option<String>,
    /// For resumable partials, a handle on the locked file: the lock lasts
    /// until the upload is committed or discarded, not just while data is
    /// written, so nobody resumes (or discards) a finished partial in the
    /// moment before it is renamed into place.
    _lock: Option<std::fs::File>,
    parent: Dir,
    name: String,
    done: bool,
}

impl Upload {
    /// A private temporary file `temp_name` in `store`.
    pub(in crate::storage) fn private(store: Dir, temp_name: String, parent: Dir, name: String) -> Upload {
        Upload { store, temp_name, key: None, _lock: None, parent, name, done: false }
    }

    /// The partial `<key>.part` in `store`, locked through `lock`.
    pub(in crate::storage) fn resumable(
        store: Dir,
        key: String,
        lock: std::fs::File,
        parent: Dir,
        name: String,
    ) -> Upload {
        let temp_name = format!("{key}.part");
        Upload { store, temp_name, key: Some(key), _lock: Some(lock), parent, name, done: false }
    }

    /// Renames the verified file into place, replacing any existing file
    /// atomically, and (with fsync) makes the rename durable. Returns the
    /// file it replaced. If it can't be put in place, nothing of it stays.
    /// `mtime`, if given, becomes the file's modification time. With
    /// `stamp`, also returns the stamp of the file as put in place (`None`
    /// if it could not be read), under which its hash can be recorded.
    pub fn commit(
        mut self,
        fsync: bool,
        path: &RemotePath,
        mtime: Option<i64>,
        stamp: bool,
    ) -> Result<(Removed, Option<Stamp>)> {
        let result = self.set_mtime(mtime).and_then(|()| self.rename_into_place(fsync, path, stamp));
        if result.is_err() {
            self.remove();
        }
        result
    }

    fn set_mtime(&self, mtime: Option<i64>) -> Result<()> {
        if let Some(mtime) = mtime {
            let file = self.store.open(&self.temp_name)?.into_std();
            file.set_modified(super::tree::system_time(mtime))?;
        }
        Ok(())
    }

    fn rename_into_place(&mut self, fsync: bool, path: &RemotePath, stamp: bool) -> Result<(Removed, Option<Stamp>)> {
        // Re-check at commit: the target may have become a directory meanwhile.
        let replaced = match self.parent.symlink_metadata(&self.name) {
            Ok(m) if m.is_dir() => return Err(Error::IsADirectory),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        // The record goes first, while the lock is held: once the partial is
        // renamed away, a new upload may start a partial (and record) of
        // the same name.
        if let Some(key) = &self.key {
            let _ = self.store.remove_file(format!("{key}.meta"));
        }
        // Its blocks are freed after the reply, not during the rename.
        let old = if replaced > 0 { super::release::hold(&self.parent, &self.name) } else { None };
        // Its stamp is read through a handle opened before the rename (which
        // changes it), so it is this file's whatever takes the name next.
        let new = if stamp { self.store.open(&self.temp_name).ok() } else { None };
        self.store.rename(&self.temp_name, &self.parent, &self.name)?;
        super::release::release(old);
        let stamp = new.and_then(|f| f.into_std().metadata().ok()).map(|m| Stamp::of(&m));
        self.done = true;
        // The file is in place now: a failed directory sync is reported in
        // the log, not as a failed upload.
        if fsync && let Err(e) = self.parent.open(".").and_then(|d| d.sync_all()) {
            tracing::error!(name = %self.name, error = %e, "cannot sync the directory of an upload");
        }
        Ok((Removed { bytes: replaced, key: path.to_string(), tag: None }, stamp))
    }

    /// Deletes the partial (it can't be trusted or is no longer wanted).
    pub fn discard(mut self) {
        self.remove();
    }

    /// Bytes the file holds now.
    fn held(&self) -> u64 {
        self.store.metadata(&self.temp_name).map_or(0, |m| m.len())
    }

    fn remove(&mut self) {
        if !self.done {
            let _ = self.store.remove_file(&self.temp_name);
            if let Some(key) = &self.key {
                let _ = self.store.remove_file(format!("{key}.meta"));
            }
            self.done = true;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.key.is_none() {
            self.remove();
        }
    }
}

/// The receiving end of an upload to the data root: the chunks it is
/// handed appended and hashed, at most two buffers in flight, taken from
/// the root's budget.
pub struct FsSink {
    pub(super) tree: Arc<Tree>,
    pub(super) path: RemotePath,
    pub(super) upload: Upload,
    /// `None` once the disk thread's failure was reported.
    pub(super) writer: Option<FileSink>,
    pub(super) offset: u64,
    pub(super) prefix: blake3::Hash,
    pub(super) dropped: u64,
    pub(super) hashes: Arc<Hashes>,
}

impl FsSink {
    pub(in crate::storage) fn offset(&self) -> u64 {
        self.offset
    }

    pub(in crate::storage) fn prefix_hash(&self) -> blake3::Hash {
        self.prefix
    }

    pub(in crate::storage) fn partial(&self) -> Option<&str> {
        self.upload.key.as_deref()
    }

    pub(in crate::storage) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Why the disk thread stopped.
    async fn failure(&mut self) -> Error {
        match self.writer.take() {
            Some(writer) => match writer.finish().await {
                Err(e) => e.into(),
                Ok(_) => Error::other("the upload's disk thread stopped"),
            },
            None => Error::other("the upload's disk thread stopped"),
        }
    }

    pub(in crate::storage) async fn buffer(&mut self) -> Result<Vec<u8>> {
        let buf = match &mut self.writer {
            Some(writer) => writer.buffer().await,
            None => None,
        };
        match buf {
            Some(buf) => Ok(buf),
            None => Err(self.failure().await),
        }
    }

    pub(in crate::storage) async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<()> {
        let handed = match &mut self.writer {
            Some(writer) => writer.write(buf, n).await,
            None => false,
        };
        if handed { Ok(()) } else { Err(self.failure().await) }
    }

    pub(in crate::storage) async fn commit(mut self, hash: &blake3::Hash, mtime: Option<i64>) -> Result<Removed> {
        let written = match self.writer.take() {
            Some(writer) => writer.finish().await.map_err(Error::from),
            None => Err(Error::other("the upload's disk thread stopped")),
        };
        let actual = match written {
            Ok(actual) => actual,
            Err(e) => {
                self.upload.discard();
                return Err(e);
            }
        };
        if actual != *hash {
            self.upload.discard();
            return Err(Error::Integrity(format!("hash mismatch: the file received hashes to {}", actual.to_hex())));
        }
        let (fsync, path, upload) = (self.tree.fsync, self.path, self.upload);
        let (replaced, stamp) = tokio::task::spawn_blocking(move || upload.commit(fsync, &path, mtime, true)).await??;
        // The next download of this file is served this hash.
        if let Some(stamp) = stamp {
            self.hashes.record(stamp, *hash);
        }
        Ok(replaced)
    }

    pub(in crate::storage) async fn abort(mut self, keep: bool) -> u64 {
        if let Some(writer) = self.writer.take() {
            // What was handed over is written (or fails) first.
            let _ = writer.finish().await;
        }
        let upload = self.upload;
        let resumable = upload.key.is_some();
        tokio::task::spawn_blocking(move || {
            let held = if resumable && keep { upload.held() } else { 0 };
            if held == 0 {
                // An empty partial is not worth keeping.
                upload.discard();
            }
            held
        })
        .await
        .unwrap_or(0)
    }
}
