//! One user's home under the data root: every filesystem operation, as
//! blocking calls (the async side in `mod.rs` runs them on tokio's
//! blocking threads).
//!
//! The home is held as a capability ([`cap_std::fs::Dir`]): every path is
//! resolved beneath it by the kernel (`openat2` with `RESOLVE_BENEATH` where
//! available, otherwise component by component without following symlinks
//! out). `..`, absolute symlinks and symlinks that climb out are refused,
//! including a directory swapped for a symlink between two calls. Once
//! opened, a `Tree` can never reach outside.
//!
//! Uploads are written outside the home, to `<root>/.ftpd/partial/<user>/`
//! (resumable partials) or `<root>/.ftpd/staging/<user>/` (private
//! temporary files), on the same filesystem, and renamed into place only
//! after they are verified: a partial upload never appears under its final
//! name, and an existing file is replaced atomically.

use super::upload::{PartialMeta, Upload};
use crate::storage::{Discarded, Error, PartialInfo, Removed, Result, SmallFile};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, Metadata, OpenOptions};
use ftp_proto::{Entry, EntryKind, RemotePath};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

pub use crate::config::STATE_DIR;

/// One user's home, partial and staging directories.
#[derive(Debug)]
pub struct Tree {
    dir: Dir,
    pub(super) partials: Dir,
    pub(super) staging: Dir,
    pub(super) fsync: bool,
}

/// What [`Tree::begin_upload`] hands to the transfer.
#[derive(Debug)]
pub struct UploadStart {
    /// The upload, to commit or discard.
    pub upload: Upload,
    /// The file to write, positioned at `offset`.
    pub file: std::fs::File,
    /// Bytes already held (resumed), 0 for a fresh upload.
    pub offset: u64,
    /// Hasher that has absorbed the bytes already held.
    pub hasher: blake3::Hasher,
    /// Bytes of an older partial that were thrown away (for the quota).
    pub dropped: u64,
}

impl Tree {
    /// Opens (creating if needed) `<root>/<user>/` and the user's partial
    /// and staging directories. `user` must already be a validated user name.
    pub fn open(root: &Path, user: &str, fsync: bool) -> Result<Tree> {
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        root.create_dir_all(user)?;
        let dir = root.open_dir(user)?;
        let open_state = |kind: &str| -> Result<Dir> {
            let path = Path::new(STATE_DIR).join(kind).join(user);
            root.create_dir_all(&path)?;
            Ok(root.open_dir(&path)?)
        };
        Ok(Tree { dir, partials: open_state("partial")?, staging: open_state("staging")?, fsync })
    }

    /// Whether `path` is an existing directory (following symlinks inside the home).
    pub fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        Ok(self.dir.metadata(path.to_relative())?.is_dir())
    }

    /// Lists a directory. Entries whose names are not UTF-8 are reported
    /// with replacement characters and kind `other`, so they can't be
    /// mistaken for a name that can be addressed.
    pub fn list(&self, path: &RemotePath) -> Result<Vec<Entry>> {
        let dir = self.open_dir(path)?;
        let mut out = Vec::new();
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            let (name, kind) = match name.into_string() {
                Ok(name) => (name, kind_of(&meta)),
                Err(raw) => (raw.to_string_lossy().into_owned(), EntryKind::Other),
            };
            out.push(entry_of(name, kind, &meta));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Describes one entry without following a final symlink.
    pub fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let meta =
            if path.is_root() { self.dir.dir_metadata()? } else { self.dir.symlink_metadata(path.to_relative())? };
        let name = path.file_name().unwrap_or("/").to_owned();
        Ok(entry_of(name, kind_of(&meta), &meta))
    }

    /// The size of the regular file at `path`, if there is one.
    pub fn file_size(&self, path: &RemotePath) -> Result<Option<u64>> {
        match self.dir.symlink_metadata(path.to_relative()) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a regular file for reading.
    pub fn open_read(&self, path: &RemotePath) -> Result<(File, Metadata)> {
        let file = self.dir.open(path.to_relative())?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(Error::IsADirectory);
        }
        if !meta.is_file() {
            return Err(Error::Denied("not a regular file"));
        }
        // ftpd never makes hard links and users can't: one with several
        // names was planted from outside and may alias a file elsewhere.
        if cap_std::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(Error::Denied("file has several hard links"));
        }
        Ok((file, meta))
    }

    /// Removes a file (or a symlink, never its target).
    pub fn remove_file(&self, path: &RemotePath) -> Result<Removed> {
        let meta = self.dir.symlink_metadata(path.to_relative())?;
        if meta.is_dir() {
            return Err(Error::IsADirectory);
        }
        // Its blocks are freed after the reply (see release.rs).
        let held = if meta.is_file() { super::release::hold(&self.dir, path.to_relative()) } else { None };
        self.dir.remove_file(path.to_relative())?;
        super::release::release(held);
        self.sync_dir(&path.parent());
        let bytes = if meta.is_file() { meta.len() } else { 0 };
        Ok(Removed { bytes, key: path.to_string(), tag: None })
    }

    /// Creates a directory; its parent must exist.
    pub fn create_dir(&self, path: &RemotePath) -> Result<()> {
        refuse_root(path)?;
        self.dir.create_dir(path.to_relative()).map_err(|e| match Error::from(e) {
            Error::NotFound => Error::ParentNotFound,
            other => other,
        })?;
        self.sync_dir(&path.parent());
        Ok(())
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        refuse_root(path)?;
        self.dir.remove_dir(path.to_relative())?;
        self.sync_dir(&path.parent());
        Ok(())
    }

    /// Renames within the home. An existing file at `to` is replaced
    /// atomically (and returned, for the quota); a directory can't be
    /// moved into itself.
    pub fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Removed> {
        refuse_root(from)?;
        refuse_root(to)?;
        let source = self.dir.symlink_metadata(from.to_relative())?;
        let replaced = match self.dir.symlink_metadata(to.to_relative()) {
            // The same file under two names (or one): rename(2) does
            // nothing, and nothing is freed.
            Ok(m) if same_file(&m, &source) => return Ok(Removed::default()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        let held = if replaced > 0 { super::release::hold(&self.dir, to.to_relative()) } else { None };
        self.dir.rename(from.to_relative(), &self.dir, to.to_relative())?;
        super::release::release(held);
        self.sync_dir(&to.parent());
        if from.parent() != to.parent() {
            self.sync_dir(&from.parent());
        }
        Ok(Removed { bytes: replaced, key: to.to_string(), tag: None })
    }

    /// With fsync on, makes a change to the entries of `dir` durable. The
    /// change is made already: a failure is logged, not reported.
    fn sync_dir(&self, dir: &RemotePath) {
        if !self.fsync {
            return;
        }
        if let Err(e) = self.open_dir(dir).and_then(|d| Ok(d.open(".")?.sync_all()?)) {
            tracing::error!(dir = %dir, error = %e, "cannot sync a directory");
        }
    }

    /// Starts an upload of `size` bytes to `path`: checks that the parent
    /// is a directory and that the target is not one, then opens the file
    /// that will receive the data.
    ///
    /// A private upload writes a temporary file, removed if the upload
    /// does not complete. A resumable one writes the target's partial: it
    /// lives at a fixed place in the user's partial directory (one per
    /// target), locked while an upload holds it. A partial recorded for the
    /// same target, size and (when both sides know it) hash is continued
    /// from its length on disk; any other is emptied (another size, or
    /// another file). If another upload holds the partial, this fails with
    /// [`Error::Held`].
    pub fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        resumable: bool,
        hash: Option<&str>,
    ) -> Result<UploadStart> {
        let (parent, name) = self.upload_target(path)?;
        if !resumable {
            return self.begin_temp_upload(parent, name);
        }
        let target = path.to_string();
        let key = partial_key(path);
        let part_name = format!("{key}.part");
        let Some(mut file) = self.lock_partial(&part_name)? else {
            return Err(Error::Held);
        };
        let meta_name = format!("{key}.meta");
        let recorded: Option<PartialMeta> =
            self.partials.read(&meta_name).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let held = file.metadata()?.len();
        let same = recorded.is_some_and(|m| {
            m.path == target && m.size == size && (m.hash.is_none() || hash.is_none() || m.hash.as_deref() == hash)
        });
        let mut hasher = blake3::Hasher::new();
        let (offset, dropped) = if same && held <= size {
            file.seek(SeekFrom::Start(0))?;
            ftp_disk::hash_exact(&mut file, held, &mut hasher)?;
            (held, 0)
        } else {
            // Only a stale partial needs emptying. Truncating a file on ext4
            // (even an empty one, to 0) makes its close write back all the
            // data written since (`auto_da_alloc`): a 1 GiB upload waited
            // about 0.25 s in `close` for the disk, fsync or not.
            if held != 0 {
                file.set_len(0)?;
            }
            let meta = PartialMeta { path: target, size, hash: hash.map(str::to_owned) };
            self.partials.write(&meta_name, serde_json::to_vec(&meta).map_err(Error::other)?)?;
            (0, held)
        };
        file.seek(SeekFrom::Start(offset))?;
        let upload = Upload::resumable(self.partials.try_clone()?, key, file.try_clone()?, parent, name);
        Ok(UploadStart { upload, file, offset, hasher, dropped })
    }

    /// Opens and locks a partial file, making sure the locked file is still
    /// the one at that name (a finishing upload may have just renamed it
    /// into place). `None` when another upload holds it.
    pub(super) fn lock_partial(&self, part_name: &str) -> Result<Option<std::fs::File>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true);
        for _ in 0..8 {
            let file = self.partials.open_with(part_name, &opts)?.into_std();
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
            let locked = file.metadata()?;
            match self.partials.open(part_name).and_then(|f| f.into_std().metadata()) {
                Ok(now) if (now.dev(), now.ino()) == (locked.dev(), locked.ino()) => return Ok(Some(file)),
                _ => continue, // renamed away meanwhile: try the new one
            }
        }
        Err(Error::other("partial upload keeps changing"))
    }

    /// Writes small uploads received whole, each to a private temporary
    /// file (with fsync, all of them synced before any is renamed), then
    /// renames them into place in the order given. A directory several of
    /// them land in is opened, and synced, once.
    pub fn store_small(&self, files: &[SmallFile]) -> Vec<Result<Removed>> {
        let mut dirs: std::collections::HashMap<RemotePath, Dir> = std::collections::HashMap::new();
        let mut written = Vec::with_capacity(files.len());
        for file in files {
            written.push(self.write_one_small(&mut dirs, file));
        }
        if self.fsync {
            // Writeback of all of them first, so that each sync below mostly
            // waits for a journal commit the others share.
            #[cfg(target_os = "linux")]
            for (_, file) in written.iter().flatten() {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid open descriptor; the call only starts writeback.
                unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
            }
            for entry in &mut written {
                if let Ok((_, file)) = entry
                    && let Err(e) = file.sync_all()
                {
                    *entry = Err(e.into()); // drops the upload, which removes its file
                }
            }
        }
        let results = written
            .into_iter()
            .zip(files)
            .map(|(w, file)| {
                w.and_then(|(upload, _)| upload.commit(false, &file.path, None, false).map(|(replaced, _)| replaced))
            })
            .collect();
        if self.fsync {
            for dir in dirs.values() {
                if let Err(e) = dir.open(".").and_then(|d| d.sync_all()) {
                    tracing::error!(error = %e, "cannot sync the directory of an upload");
                }
            }
        }
        results
    }

    fn write_one_small(
        &self,
        dirs: &mut std::collections::HashMap<RemotePath, Dir>,
        small: &SmallFile,
    ) -> Result<(Upload, std::fs::File)> {
        let path = &small.path;
        let parent = path.parent();
        let dir = match dirs.get(&parent) {
            Some(dir) => dir.try_clone()?,
            None => {
                let dir = self.open_parent(&parent)?;
                dirs.insert(parent, dir.try_clone()?);
                dir
            }
        };
        let (parent, name) = self.target_in(dir, path)?;
        let mut start = self.begin_temp_upload(parent, name)?;
        io::Write::write_all(&mut start.file, &small.data)?;
        if let Some(mtime) = small.mtime {
            start.file.set_modified(system_time(mtime))?;
        }
        Ok((start.upload, start.file))
    }

    /// The directory an upload lands in and its name there, checked.
    fn upload_target(&self, path: &RemotePath) -> Result<(Dir, String)> {
        self.target_in(self.open_parent(&path.parent())?, path)
    }

    /// Opens the directory an upload lands in: a missing one is reported
    /// as such, not as the file being missing.
    fn open_parent(&self, parent: &RemotePath) -> Result<Dir> {
        self.open_dir(parent).map_err(|e| if matches!(e, Error::NotFound) { Error::ParentNotFound } else { e })
    }

    /// `path`'s name in `parent` (its directory, already open), checked.
    fn target_in(&self, parent: Dir, path: &RemotePath) -> Result<(Dir, String)> {
        let name = path.file_name().ok_or(Error::IsADirectory)?.to_owned();
        if parent.symlink_metadata(&name).is_ok_and(|m| m.is_dir()) {
            return Err(Error::IsADirectory);
        }
        Ok((parent, name))
    }

    /// A private, non-resumable temporary file for an upload.
    fn begin_temp_upload(&self, parent: Dir, name: String) -> Result<UploadStart> {
        let store = self.staging.try_clone()?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        for _ in 0..16 {
            let temp_name = format!("{:016x}.tmp", rand::random::<u64>());
            match store.open_with(&temp_name, &opts) {
                Ok(file) => {
                    let upload = Upload::private(store, temp_name, parent, name);
                    let hasher = blake3::Hasher::new();
                    return Ok(UploadStart { upload, file: file.into_std(), offset: 0, hasher, dropped: 0 });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::other("could not create a unique temporary file"))
    }

    /// Removes partial uploads not written for `max_age`, skipping those in
    /// use. Returns each removed partial's key and size.
    pub fn remove_stale_partials(&self, max_age: std::time::Duration) -> Result<Vec<(String, u64)>> {
        let mut removed = Vec::new();
        for entry in self.partials.entries()? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".part") else { continue };
            let meta = entry.metadata()?;
            let age = meta.modified().ok().and_then(|t| t.into_std().elapsed().ok()).unwrap_or_default();
            if age < max_age {
                continue;
            }
            if let Some(_locked) = self.lock_partial(&name)? {
                self.partials.remove_file(&name)?;
                let _ = self.partials.remove_file(format!("{key}.meta"));
                removed.push((key.to_owned(), meta.len()));
            }
        }
        Ok(removed)
    }

    /// The partial uploads kept for resume.
    pub fn partials(&self) -> Result<Vec<PartialInfo>> {
        let mut found = Vec::new();
        for entry in self.partials.entries()? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".part") else { continue };
            let Ok(meta) = entry.metadata() else { continue }; // gone meanwhile
            let record: Option<PartialMeta> =
                self.partials.read(format!("{key}.meta")).ok().and_then(|b| serde_json::from_slice(&b).ok());
            // A partial without a readable record can't be resumed; the
            // sweep removes it in time.
            let Some(record) = record else { continue };
            let Ok(path) = RemotePath::resolve(&RemotePath::root(), &record.path) else { continue };
            if meta.len() == 0 {
                continue; // an upload starting: nothing held yet
            }
            found.push(PartialInfo { path, size: record.size, held: meta.len(), mtime: mtime_of(&meta) });
        }
        Ok(found)
    }

    /// Removes the partial kept for `path`, unless an upload holds it.
    pub fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        let key = partial_key(path);
        let part_name = format!("{key}.part");
        if self.partials.symlink_metadata(&part_name).is_err() {
            return Err(Error::NotFound);
        }
        let Some(file) = self.lock_partial(&part_name)? else { return Err(Error::Held) };
        let bytes = file.metadata()?.len();
        self.partials.remove_file(&part_name)?;
        let _ = self.partials.remove_file(format!("{key}.meta"));
        if bytes == 0 {
            return Err(Error::NotFound); // an empty one holds nothing to free
        }
        Ok(Discarded { partial: key, bytes })
    }

    fn open_dir(&self, path: &RemotePath) -> Result<Dir> {
        Ok(if path.is_root() { self.dir.try_clone()? } else { self.dir.open_dir(path.to_relative())? })
    }
}

/// The name of the partial of uploads to `path` (one per target).
pub fn partial_key(path: &RemotePath) -> String {
    blake3::hash(path.to_string().as_bytes()).to_hex()[..32].to_owned()
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use cap_std::fs::MetadataExt as _;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn refuse_root(path: &RemotePath) -> Result<()> {
    if path.is_root() { Err(Error::Denied("the home directory itself can't be changed")) } else { Ok(()) }
}

fn kind_of(meta: &Metadata) -> EntryKind {
    let ft = meta.file_type();
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

/// An entry as listed: its time from the metadata.
pub(super) fn entry_of(name: String, kind: EntryKind, meta: &Metadata) -> Entry {
    let size = if kind == EntryKind::Dir { 0 } else { meta.len() };
    Entry { name, kind, size, mtime: mtime_of(meta) }
}

/// Modification time in seconds since the epoch (negative before it).
pub(super) fn mtime_of(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .map(|t| t.into_std())
        .and_then(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok(),
            Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
        })
        .unwrap_or(0)
}

/// The instant `secs` seconds from the epoch (before it if negative);
/// saturates far outside what a filesystem holds.
pub(super) fn system_time(secs: i64) -> std::time::SystemTime {
    let offset = std::time::Duration::from_secs(secs.unsigned_abs());
    let time = if secs >= 0 { UNIX_EPOCH.checked_add(offset) } else { UNIX_EPOCH.checked_sub(offset) };
    time.unwrap_or(UNIX_EPOCH)
}

/// Sum of the sizes of the regular files under `dir` (symlinks not
/// followed), plus the partial uploads (`*.part`) in `partials`.
pub fn usage(dir: &Path, partials: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    let entries = match std::fs::read_dir(partials) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".part") {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RemotePath {
        RemotePath::resolve(&RemotePath::root(), s).unwrap()
    }

    #[test]
    fn symlinks_out_of_the_home_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let home = Tree::open(root.path(), "alice", false).unwrap();
        let h = root.path().join("alice");
        std::os::unix::fs::symlink(outside.path(), h.join("out")).unwrap();
        std::os::unix::fs::symlink("../..", h.join("up")).unwrap();
        std::fs::create_dir(h.join("d")).unwrap();
        std::os::unix::fs::symlink("d", h.join("inside")).unwrap();

        for path in ["out/secret", "up/etc/passwd"] {
            assert!(matches!(home.open_read(&p(path)), Err(Error::Denied(_))), "{path}");
        }
        assert!(matches!(home.list(&p("out")), Err(Error::Denied(_))));
        assert!(matches!(home.begin_upload(&p("out/x"), 1, false, None), Err(Error::Denied(_))));
        assert!(home.list(&p("inside")).unwrap().is_empty(), "a symlink inside the home works");
    }

    #[test]
    fn upload_is_invisible_until_committed() {
        let root = tempfile::tempdir().unwrap();
        let home = Tree::open(root.path(), "bob", true).unwrap();
        for resume in [false, true] {
            let mut start = home.begin_upload(&p("f"), 5, resume, None).unwrap();
            std::io::Write::write_all(&mut start.file, if resume { b"world" } else { b"hello" }).unwrap();
            let before = if resume { 1 } else { 0 };
            assert_eq!(home.list(&RemotePath::root()).unwrap().len(), before, "invisible until committed");
            assert_eq!(
                start.upload.commit(true, &p("f"), None, false).unwrap().0.bytes,
                before as u64 * 5,
                "replaced bytes"
            );
        }
        let entries = home.list(&RemotePath::root()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(std::fs::read(root.path().join("bob/f")).unwrap(), b"world");
        let partials = root.path().join(".ftpd/partial/bob");
        assert_eq!(std::fs::read_dir(&partials).unwrap().count(), 0, "commit leaves nothing behind");
    }

    #[test]
    fn partials_resume_only_for_the_same_upload() {
        let root = tempfile::tempdir().unwrap();
        let home = Tree::open(root.path(), "bob", false).unwrap();
        let mut start = home.begin_upload(&p("f"), 10, true, None).unwrap();
        assert_eq!(start.offset, 0);
        std::io::Write::write_all(&mut start.file, b"hello").unwrap();
        drop(start); // interrupted

        let again = home.begin_upload(&p("f"), 10, true, None).unwrap();
        assert_eq!(again.offset, 5);
        assert_eq!(again.hasher.finalize(), blake3::hash(b"hello"));
        // While it is held, a second upload of the same file is told so.
        assert!(matches!(home.begin_upload(&p("f"), 10, true, None), Err(Error::Held)));
        drop(again);

        // Another size starts afresh in the same partial, dropping the
        // bytes held for the old size.
        let other = home.begin_upload(&p("f"), 11, true, None).unwrap();
        assert_eq!((other.offset, other.dropped), (0, 5));
        assert_eq!(other.file.metadata().unwrap().len(), 0, "the stale bytes are gone");
        drop(other);
        let count = std::fs::read_dir(root.path().join(".ftpd/partial/bob")).unwrap().count();
        assert_eq!(count, 2, "one partial and its record per target, whatever the size");
        // A different declared hash never resumes a partial recorded with another.
        let mut start = home.begin_upload(&p("g"), 10, true, Some("aa")).unwrap();
        std::io::Write::write_all(&mut start.file, b"abc").unwrap();
        drop(start);
        let afresh = home.begin_upload(&p("g"), 10, true, Some("bb")).unwrap();
        assert_eq!((afresh.offset, afresh.dropped), (0, 3));
    }

    #[test]
    fn stale_partials_are_removed_unless_in_use() {
        let root = tempfile::tempdir().unwrap();
        let home = Tree::open(root.path(), "bob", false).unwrap();
        let mut a = home.begin_upload(&p("a"), 10, true, None).unwrap();
        std::io::Write::write_all(&mut a.file, b"held").unwrap();
        let mut b = home.begin_upload(&p("b"), 10, true, None).unwrap();
        std::io::Write::write_all(&mut b.file, b"stale!").unwrap();
        drop(b);
        let removed = home.remove_stale_partials(std::time::Duration::ZERO).unwrap();
        assert_eq!(removed, vec![(partial_key(&p("b")), 6)]);
        let left = std::fs::read_dir(root.path().join(".ftpd/partial/bob")).unwrap().count();
        assert_eq!(left, 2, "the partial in use and its record stay");
        drop(a);
    }

    #[test]
    fn a_missing_parent_is_reported_as_such() {
        let root = tempfile::tempdir().unwrap();
        let home = Tree::open(root.path(), "bob", false).unwrap();
        assert!(matches!(home.begin_upload(&p("no/f"), 1, false, None), Err(Error::ParentNotFound)));
        let small = home.store_small(&[SmallFile { path: p("no/f"), data: b"x".to_vec(), mtime: None }]);
        assert!(matches!(small[0], Err(Error::ParentNotFound)));
    }
}
