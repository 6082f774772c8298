//! A user's view of their files: their own home, with each shared folder
//! they are given mounted at `/<folder>` (it hides anything of theirs by
//! that name). A request is routed here to the [`Place`] holding its path
//! (the user's home or the folder), with the path as that place knows it;
//! permissions, quotas and bytes are dealt with there.

use super::{Discarded, Download, Error, PartialInfo, Place, PutOptions, Result, SmallPut, Upload, Usage, Want};
use ftp_proto::{Entry, EntryKind, RemotePath};
use std::sync::Arc;

/// One user's files, as every door sees them.
#[derive(Clone)]
pub struct Files {
    own: Place,
    /// Shared folders by name, each mounted at `/<name>`.
    mounts: Arc<[(String, Place)]>,
}

impl Files {
    pub(super) fn new(own: Place, mounts: Vec<(String, Place)>) -> Files {
        Files { own, mounts: mounts.into() }
    }

    /// The user's own home.
    #[cfg(test)]
    pub(super) fn own(&self) -> &Place {
        &self.own
    }

    /// The place holding `path`, and the path there.
    fn route(&self, path: &RemotePath) -> (&Place, RemotePath) {
        if let Some((first, rest)) = path.split_first()
            && let Some((_, place)) = self.mounts.iter().find(|(name, _)| name == first)
        {
            return (place, rest);
        }
        (&self.own, path.clone())
    }

    /// The folder mounted exactly at `path`, if any.
    fn mount_point(&self, path: &RemotePath) -> Option<&str> {
        let (first, rest) = path.split_first()?;
        let (name, _) = self.mounts.iter().find(|(name, _)| name == first)?;
        rest.is_root().then_some(name.as_str())
    }

    /// The entries of a directory, sorted by name (in the home, the shared
    /// folders among them).
    pub async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        let (place, inner) = self.route(dir);
        let mut entries = place.list(&inner).await?;
        if dir.is_root() && !self.mounts.is_empty() {
            entries.retain(|e| !self.mounts.iter().any(|(name, _)| *name == e.name));
            entries.extend(self.mounts.iter().map(|(name, _)| folder_entry(name)));
            entries.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(entries)
    }

    /// Whether `path` is a directory.
    pub async fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        let (place, inner) = self.route(path);
        place.is_dir(&inner).await
    }

    /// An entry, with the BLAKE3 of its content for a file.
    pub async fn stat(&self, path: &RemotePath) -> Result<(Entry, Option<blake3::Hash>)> {
        let (place, inner) = self.route(path);
        if let Some(name) = self.mount_point(path) {
            place.allowed(super::Permission::List, &inner)?;
            return Ok((folder_entry(name), None));
        }
        place.stat(&inner).await
    }

    /// Creates a directory.
    pub async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        if self.mount_point(path).is_some() {
            return Err(Error::Exists);
        }
        let (place, inner) = self.route(path);
        place.create_dir(&inner).await
    }

    /// Removes an empty directory (not a shared folder).
    pub async fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        if self.mount_point(path).is_some() {
            return Err(Error::Denied("a shared folder can't be removed"));
        }
        let (place, inner) = self.route(path);
        place.remove_dir(&inner).await
    }

    /// Deletes a file; its bytes leave its owner's usage.
    pub async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        let (place, inner) = self.route(path);
        place.remove_file(&inner).await
    }

    /// Renames a file or directory within the home or within one shared
    /// folder; a file it replaces leaves the usage.
    pub async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<()> {
        if self.mount_point(from).is_some() || self.mount_point(to).is_some() {
            return Err(Error::Denied("a shared folder can't be renamed or replaced"));
        }
        let ((place, from), (other, to)) = (self.route(from), self.route(to));
        if place.owner != other.owner {
            return Err(Error::Denied("can't move between a shared folder and the rest of your files; copy instead"));
        }
        place.rename(&from, &to).await
    }

    /// Space used and reserved in the user's own home, and their quota.
    pub async fn usage(&self) -> Result<(Usage, Option<u64>)> {
        self.own.usage().await
    }

    /// The partial uploads kept for resume in the user's own home.
    pub async fn partials(&self) -> Result<Vec<PartialInfo>> {
        self.own.partials().await
    }

    /// Throws away the partial upload kept for `path` (see
    /// [`Place::discard_partial`]).
    pub async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        let (place, inner) = self.route(path);
        place.discard_partial(&inner).await
    }

    /// Begins an upload (see [`Place::begin_upload`]).
    pub async fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        resume: bool,
        hash: Option<blake3::Hash>,
        options: PutOptions,
    ) -> Result<Upload> {
        let (place, inner) = self.route(path);
        place.begin_upload(&inner, size, resume, hash, options).await
    }

    /// Begins a small upload (see [`Place::begin_small`]).
    pub async fn begin_small(
        &self,
        path: &RemotePath,
        size: u64,
        hash: Option<blake3::Hash>,
        options: PutOptions,
    ) -> Result<SmallPut> {
        let (place, inner) = self.route(path);
        place.begin_small(&inner, size, hash, options).await
    }

    /// Stores small uploads received whole and verified, each in its
    /// place, in order. Returns each one's outcome.
    pub async fn store_small(&self, puts: Vec<SmallPut>) -> Vec<Result<Option<i64>>> {
        let count = puts.len();
        let mut results: Vec<Option<Result<Option<i64>>>> = (0..count).map(|_| None).collect();
        let mut rest: Vec<(usize, SmallPut)> = puts.into_iter().enumerate().collect();
        while let Some((_, first)) = rest.first() {
            let place = first.place().clone();
            let (here, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, p)| p.place().owner == place.owner);
            rest = others;
            let (indices, batch): (Vec<usize>, Vec<SmallPut>) = here.into_iter().unzip();
            for (i, result) in indices.into_iter().zip(place.store_small(batch).await) {
                results[i] = Some(result);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::other("an upload was not stored")))).collect()
    }

    /// Opens downloads, each pinned to the version of its file found now.
    pub async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>> {
        let mut results: Vec<Option<Result<Download>>> = (0..wants.len()).map(|_| None).collect();
        let mut rest: Vec<(usize, &Place, Want)> = wants
            .into_iter()
            .enumerate()
            .map(|(i, want)| {
                let (place, path) = self.route(&want.path);
                (i, place, Want { path, ..want })
            })
            .collect();
        while let Some((_, place, _)) = rest.first() {
            let place = *place;
            let (here, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, p, _)| p.owner == place.owner);
            rest = others;
            let (indices, batch): (Vec<usize>, Vec<Want>) = here.into_iter().map(|(i, _, w)| (i, w)).unzip();
            for (i, opened) in indices.into_iter().zip(place.open_downloads(batch).await) {
                results[i] = Some(opened);
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::other("a download was not opened")))).collect()
    }
}

/// How a shared folder shows in the home.
fn folder_entry(name: &str) -> Entry {
    Entry { name: name.to_owned(), kind: EntryKind::Dir, size: 0, mtime: 0 }
}
