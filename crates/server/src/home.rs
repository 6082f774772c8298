//! A user's home directory: every filesystem operation a session performs.
//!
//! The home is held as a capability ([`cap_std::fs::Dir`]): every path is
//! resolved beneath it by the kernel (`openat2` with `RESOLVE_BENEATH` where
//! available, otherwise component by component without following symlinks
//! out). `..`, absolute symlinks and symlinks that climb out are refused
//! with `PermissionDenied`, including a directory swapped for a symlink
//! between two calls. Once opened, a `Home` can never reach outside.
//!
//! Uploads are written outside the home, to `<root>/.ftpd/partial/<user>/`
//! (resumable partials) or `<root>/.ftpd/staging/<user>/` (private
//! temporary files), on the same filesystem, and renamed into place only
//! after they are verified: a partial upload never appears under its final
//! name, and an existing file is replaced atomically.
//!
//! Every method here blocks: call them from `spawn_blocking`.

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, Metadata, OpenOptions};
use ftp_proto::{Entry, EntryKind, RemotePath};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Name of the daemon's private directory inside the data root. User names
/// can't contain a dot, so it never collides with a home.
pub const STATE_DIR: &str = ".ftpd";

/// One user's home, partial and staging directories.
#[derive(Debug)]
pub struct Home {
    dir: Dir,
    partials: Dir,
    staging: Dir,
    fsync: bool,
}

/// An upload in progress: a partial (or temporary) file outside the home,
/// renamed into place by [`Upload::commit`]. A private temporary file is
/// removed on drop; a resumable partial stays for the next attempt unless
/// [`Upload::discard`] is called.
#[derive(Debug)]
pub struct Upload {
    store: Dir,
    temp_name: String,
    /// Set for resumable partials: the record of what the partial is for.
    meta_name: Option<String>,
    /// For resumable partials, a handle on the locked file: the lock lasts
    /// until the upload is committed or discarded, not just while data is
    /// written, so nobody resumes (or discards) a finished partial in the
    /// moment before it is renamed into place.
    _lock: Option<std::fs::File>,
    parent: Dir,
    name: String,
    done: bool,
}

/// What [`Home::begin_upload`] hands to the transfer.
#[derive(Debug)]
pub struct UploadStart {
    /// The upload, to commit or discard.
    pub upload: Upload,
    /// The file to write, positioned at `offset`.
    pub file: std::fs::File,
    /// Bytes already held (resumed), 0 for a fresh upload.
    pub offset: u64,
    /// BLAKE3 (hex) of the bytes already held.
    pub prefix_hash: String,
    /// Hasher that has absorbed the bytes already held.
    pub hasher: blake3::Hasher,
    /// Bytes of an older partial that were thrown away (for the quota).
    pub dropped: u64,
}

/// What a resumable partial was started for, kept beside it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PartialMeta {
    path: String,
    size: u64,
    hash: Option<String>,
}

impl Home {
    /// Opens (creating if needed) `<root>/<user>/` and the user's partial
    /// and staging directories. `user` must already be a validated user name.
    pub fn open(root: &Path, user: &str, fsync: bool) -> io::Result<Home> {
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        root.create_dir_all(user)?;
        let dir = root.open_dir(user)?;
        let open_state = |kind: &str| {
            let path = Path::new(STATE_DIR).join(kind).join(user);
            root.create_dir_all(&path)?;
            root.open_dir(&path)
        };
        Ok(Home { dir, partials: open_state("partial")?, staging: open_state("staging")?, fsync })
    }

    /// Where the partial uploads of `user` live, for accounting.
    pub fn partials_path(root: &Path, user: &str) -> std::path::PathBuf {
        root.join(STATE_DIR).join("partial").join(user)
    }

    /// Whether `path` is an existing directory (following symlinks inside the home).
    pub fn is_dir(&self, path: &RemotePath) -> io::Result<bool> {
        Ok(self.dir.metadata(path.to_relative())?.is_dir())
    }

    /// Lists a directory. Entries whose names are not UTF-8 are reported
    /// with replacement characters and kind `other`, so they can't be
    /// mistaken for a name that can be addressed.
    pub fn list(&self, path: &RemotePath) -> io::Result<Vec<Entry>> {
        let dir = self.open_dir(path)?;
        let mut out = Vec::new();
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(e),
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
    pub fn stat(&self, path: &RemotePath) -> io::Result<Entry> {
        let meta =
            if path.is_root() { self.dir.dir_metadata()? } else { self.dir.symlink_metadata(path.to_relative())? };
        let name = path.file_name().unwrap_or("/").to_owned();
        Ok(entry_of(name, kind_of(&meta), &meta))
    }

    /// BLAKE3 of a file's contents, streamed.
    pub fn hash(&self, path: &RemotePath) -> io::Result<blake3::Hash> {
        let (file, _) = self.open_read(path)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(file.into_std())?;
        Ok(hasher.finalize())
    }

    /// Opens a regular file for reading.
    pub fn open_read(&self, path: &RemotePath) -> io::Result<(File, Metadata)> {
        let file = self.dir.open(path.to_relative())?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a regular file"));
        }
        // ftpd never makes hard links and users can't: one with several
        // names was planted from outside and may alias a file elsewhere.
        if cap_std::fs::MetadataExt::nlink(&meta) > 1 {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file has several hard links"));
        }
        Ok((file, meta))
    }

    /// Removes a file (or a symlink, never its target). Returns the bytes freed.
    pub fn remove_file(&self, path: &RemotePath) -> io::Result<u64> {
        let meta = self.dir.symlink_metadata(path.to_relative())?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory; use rmdir"));
        }
        self.dir.remove_file(path.to_relative())?;
        Ok(if meta.is_file() { meta.len() } else { 0 })
    }

    /// Creates a directory; its parent must exist.
    pub fn create_dir(&self, path: &RemotePath) -> io::Result<()> {
        refuse_root(path)?;
        self.dir.create_dir(path.to_relative())
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, path: &RemotePath) -> io::Result<()> {
        refuse_root(path)?;
        self.dir.remove_dir(path.to_relative())
    }

    /// Renames within the home. An existing file at `to` is replaced
    /// atomically (its size is returned, for the quota); a directory can't
    /// be moved into itself.
    pub fn rename(&self, from: &RemotePath, to: &RemotePath) -> io::Result<u64> {
        refuse_root(from)?;
        refuse_root(to)?;
        let source = self.dir.symlink_metadata(from.to_relative())?;
        let replaced = match self.dir.symlink_metadata(to.to_relative()) {
            // The same file under two names (or one): rename(2) does
            // nothing, and nothing is freed.
            Ok(m) if same_file(&m, &source) => return Ok(0),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        self.dir.rename(from.to_relative(), &self.dir, to.to_relative())?;
        Ok(replaced)
    }

    /// Starts an upload of `size` bytes to `path`: checks that the parent
    /// is a directory and that the target is not one, then opens the file
    /// that will receive the data.
    ///
    /// Without `resume`, that is a private temporary file, removed if the
    /// upload does not complete. With `resume`, it is the upload's partial:
    /// it lives at a fixed place in the user's partial directory (one per
    /// target and size), locked while an upload holds it. A partial
    /// recorded for the same target, size and (when both sides know it)
    /// hash is continued from its length on disk, and the hash of the bytes
    /// it holds is returned for the client to check; otherwise it is
    /// emptied. If another upload holds the partial, this fails with
    /// `WouldBlock`: the caller may ask the holder to stop and try again, or
    /// fall back to [`Home::begin_private_upload`].
    pub fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        resume: bool,
        hash: Option<&str>,
    ) -> io::Result<UploadStart> {
        let (parent, name) = self.upload_target(path)?;
        if !resume {
            return self.begin_temp_upload(parent, name);
        }
        let target = path.to_string();
        let key = blake3::hash(format!("{target}\0{size}").as_bytes()).to_hex()[..32].to_owned();
        let part_name = format!("{key}.part");
        let Some(mut file) = self.lock_partial(&part_name)? else {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "another upload of this file is in progress"));
        };
        let meta_name = format!("{key}.meta");
        let recorded: Option<PartialMeta> =
            self.partials.read(&meta_name).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let held = file.metadata()?.len();
        let same = recorded.is_some_and(|m| {
            m.path == target && m.size == size && (m.hash.is_none() || hash.is_none() || m.hash.as_deref() == hash)
        });
        let mut hasher = blake3::Hasher::new();
        let (offset, dropped) = if resume && same && held <= size {
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
            self.partials.write(&meta_name, serde_json::to_vec(&meta).map_err(io::Error::other)?)?;
            (0, held)
        };
        file.seek(SeekFrom::Start(offset))?;
        let prefix_hash = hasher.finalize().to_hex().to_string();
        let store = self.partials.try_clone()?;
        let lock = Some(file.try_clone()?);
        let upload =
            Upload { store, temp_name: part_name, meta_name: Some(meta_name), _lock: lock, parent, name, done: false };
        Ok(UploadStart { upload, file, offset, prefix_hash, hasher, dropped })
    }

    /// Opens and locks a partial file, making sure the locked file is still
    /// the one at that name (a finishing upload may have just renamed it
    /// into place). `None` when another upload holds it.
    fn lock_partial(&self, part_name: &str) -> io::Result<Option<std::fs::File>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true);
        for _ in 0..8 {
            let file = self.partials.open_with(part_name, &opts)?.into_std();
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            let locked = file.metadata()?;
            match self.partials.open(part_name).and_then(|f| f.into_std().metadata()) {
                Ok(now) if (now.dev(), now.ino()) == (locked.dev(), locked.ino()) => return Ok(Some(file)),
                _ => continue, // renamed away meanwhile: try the new one
            }
        }
        Err(io::Error::other("partial upload keeps changing"))
    }

    /// Starts an upload into a private temporary file, which is not
    /// resumable: for a second upload of a file whose partial is in use.
    pub fn begin_private_upload(&self, path: &RemotePath) -> io::Result<UploadStart> {
        let (parent, name) = self.upload_target(path)?;
        self.begin_temp_upload(parent, name)
    }

    /// Writes small uploads received whole, each to a private temporary
    /// file (with fsync, all of them synced before any is renamed), for
    /// [`SmallBatch::commit`] to rename into place. A directory several of
    /// them land in is opened once.
    pub fn write_small(&self, files: &[(RemotePath, Vec<u8>)]) -> SmallBatch {
        let mut dirs: std::collections::HashMap<RemotePath, Dir> = std::collections::HashMap::new();
        let mut written = Vec::with_capacity(files.len());
        for (path, data) in files {
            written.push(self.write_one_small(&mut dirs, path, data));
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
                    *entry = Err(e); // drops the upload, which removes its file
                }
            }
        }
        let uploads = written.into_iter().map(|w| w.map(|(upload, _)| upload)).collect();
        SmallBatch { uploads, dirs: dirs.into_values().collect(), fsync: self.fsync }
    }

    fn write_one_small(
        &self,
        dirs: &mut std::collections::HashMap<RemotePath, Dir>,
        path: &RemotePath,
        data: &[u8],
    ) -> io::Result<(Upload, std::fs::File)> {
        let parent = path.parent();
        let dir = match dirs.get(&parent) {
            Some(dir) => dir.try_clone()?,
            None => {
                let dir = self.open_dir(&parent)?;
                dirs.insert(parent, dir.try_clone()?);
                dir
            }
        };
        let (parent, name) = self.target_in(dir, path)?;
        let mut start = self.begin_temp_upload(parent, name)?;
        io::Write::write_all(&mut start.file, data)?;
        Ok((start.upload, start.file))
    }

    /// The directory an upload lands in and its name there, checked.
    fn upload_target(&self, path: &RemotePath) -> io::Result<(Dir, String)> {
        self.target_in(self.open_dir(&path.parent())?, path)
    }

    /// `path`'s name in `parent` (its directory, already open), checked.
    fn target_in(&self, parent: Dir, path: &RemotePath) -> io::Result<(Dir, String)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::IsADirectory, "the home is a directory"))?
            .to_owned();
        if parent.symlink_metadata(&name).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory"));
        }
        Ok((parent, name))
    }

    /// A private, non-resumable temporary file for an upload.
    fn begin_temp_upload(&self, parent: Dir, name: String) -> io::Result<UploadStart> {
        let store = self.staging.try_clone()?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        for _ in 0..16 {
            let temp_name = format!("{:016x}.tmp", rand::random::<u64>());
            match store.open_with(&temp_name, &opts) {
                Ok(file) => {
                    let upload = Upload { store, temp_name, meta_name: None, _lock: None, parent, name, done: false };
                    let hasher = blake3::Hasher::new();
                    let prefix_hash = hasher.finalize().to_hex().to_string();
                    return Ok(UploadStart {
                        upload,
                        file: file.into_std(),
                        offset: 0,
                        prefix_hash,
                        hasher,
                        dropped: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not create a unique temporary file"))
    }

    /// Removes partial uploads not written for `max_age`, skipping those in
    /// use. Returns the bytes freed.
    pub fn remove_stale_partials(&self, max_age: std::time::Duration) -> io::Result<u64> {
        let mut freed = 0;
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
                freed += meta.len();
            }
        }
        Ok(freed)
    }

    /// Whether uploads are fsynced before they are committed.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    fn open_dir(&self, path: &RemotePath) -> io::Result<Dir> {
        if path.is_root() { self.dir.try_clone() } else { self.dir.open_dir(path.to_relative()) }
    }
}

/// Small uploads written by [`Home::write_small`], not yet in place.
#[derive(Debug)]
pub struct SmallBatch {
    uploads: Vec<io::Result<Upload>>,
    /// The directories they land in, synced once after the renames.
    dirs: Vec<Dir>,
    fsync: bool,
}

impl SmallBatch {
    /// Renames each file into place, in the order given (of two uploads
    /// to one name, the later wins), and (with fsync) makes the renames
    /// durable. Returns for each the size of the file it replaced, or why
    /// it failed.
    pub fn commit(self) -> Vec<io::Result<u64>> {
        let results = self.uploads.into_iter().map(|u| u.and_then(|u| u.commit(false))).collect();
        if self.fsync {
            for dir in &self.dirs {
                if let Err(e) = dir.open(".").and_then(|d| d.sync_all()) {
                    tracing::error!(error = %e, "cannot sync the directory of an upload");
                }
            }
        }
        results
    }
}

impl Upload {
    /// Renames the verified file into place, replacing any existing file
    /// atomically, and (with fsync) makes the rename durable. Returns the
    /// size of the file it replaced.
    pub fn commit(mut self, fsync: bool) -> io::Result<u64> {
        // Re-check at commit: the target may have become a directory meanwhile.
        let replaced = match self.parent.symlink_metadata(&self.name) {
            Ok(m) if m.is_dir() => return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory")),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        };
        // The record goes first, while the lock is held: once the partial is
        // renamed away, a new upload may start a partial (and record) of
        // the same name.
        if let Some(meta) = &self.meta_name {
            let _ = self.store.remove_file(meta);
        }
        self.store.rename(&self.temp_name, &self.parent, &self.name)?;
        self.done = true;
        // The file is in place now: a failed directory sync is reported in
        // the log, not as a failed upload.
        if fsync && let Err(e) = self.parent.open(".").and_then(|d| d.sync_all()) {
            tracing::error!(name = %self.name, error = %e, "cannot sync the directory of an upload");
        }
        Ok(replaced)
    }

    /// Deletes the partial (it can't be trusted or is no longer wanted).
    pub fn discard(mut self) {
        self.remove();
    }

    /// Whether an interrupted upload leaves this file for a later resume.
    pub fn is_resumable(&self) -> bool {
        self.meta_name.is_some()
    }

    fn remove(&mut self) {
        if !self.done {
            let _ = self.store.remove_file(&self.temp_name);
            if let Some(meta) = &self.meta_name {
                let _ = self.store.remove_file(meta);
            }
            self.done = true;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.is_resumable() {
            self.remove();
        }
    }
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use cap_std::fs::MetadataExt as _;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn refuse_root(path: &RemotePath) -> io::Result<()> {
    if path.is_root() {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "the home directory itself can't be changed"))
    } else {
        Ok(())
    }
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

fn entry_of(name: String, kind: EntryKind, meta: &Metadata) -> Entry {
    let mtime = meta
        .modified()
        .ok()
        .map(|t| t.into_std())
        .and_then(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).ok(),
            Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
        })
        .unwrap_or(0);
    let size = if kind == EntryKind::Dir { 0 } else { meta.len() };
    Entry { name, kind, size, mtime }
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
        let home = Home::open(root.path(), "alice", false).unwrap();
        let h = root.path().join("alice");
        std::os::unix::fs::symlink(outside.path(), h.join("out")).unwrap();
        std::os::unix::fs::symlink("../..", h.join("up")).unwrap();
        std::fs::create_dir(h.join("d")).unwrap();
        std::os::unix::fs::symlink("d", h.join("inside")).unwrap();

        for path in ["out/secret", "up/etc/passwd"] {
            let err = home.open_read(&p(path)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{path}");
        }
        assert_eq!(home.list(&p("out")).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(home.begin_upload(&p("out/x"), 1, false, None).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(home.list(&p("inside")).unwrap().is_empty(), "a symlink inside the home works");
    }

    #[test]
    fn upload_is_invisible_until_committed() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::open(root.path(), "bob", true).unwrap();
        for resume in [false, true] {
            let mut start = home.begin_upload(&p("f"), 5, resume, None).unwrap();
            std::io::Write::write_all(&mut start.file, if resume { b"world" } else { b"hello" }).unwrap();
            let before = if resume { 1 } else { 0 };
            assert_eq!(home.list(&RemotePath::root()).unwrap().len(), before, "invisible until committed");
            assert_eq!(start.upload.commit(true).unwrap(), before as u64 * 5, "replaced bytes");
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
        let home = Home::open(root.path(), "bob", false).unwrap();
        let mut start = home.begin_upload(&p("f"), 10, true, None).unwrap();
        assert_eq!(start.offset, 0);
        std::io::Write::write_all(&mut start.file, b"hello").unwrap();
        drop(start); // interrupted

        let again = home.begin_upload(&p("f"), 10, true, None).unwrap();
        assert_eq!(again.offset, 5);
        assert_eq!(again.prefix_hash, blake3::hash(b"hello").to_hex().to_string());
        // While it is held, a second upload of the same file is told so, and
        // may write a private file instead.
        let busy = home.begin_upload(&p("f"), 10, true, None).unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);
        let other = home.begin_private_upload(&p("f")).unwrap();
        assert!(!other.upload.is_resumable());
        drop(other);
        drop(again);

        // Another size, or no resume asked: start afresh.
        assert_eq!(home.begin_upload(&p("f"), 11, true, None).unwrap().offset, 0);
        let fresh = home.begin_upload(&p("f"), 10, false, None).unwrap();
        assert_eq!(fresh.offset, 0);
        assert!(!fresh.upload.is_resumable(), "no resume asked: a private file");
        drop(fresh);
        // A different declared hash never resumes a partial recorded with another.
        let mut start = home.begin_upload(&p("g"), 10, true, Some("aa")).unwrap();
        std::io::Write::write_all(&mut start.file, b"abc").unwrap();
        drop(start);
        let afresh = home.begin_upload(&p("g"), 10, true, Some("bb")).unwrap();
        assert_eq!(afresh.offset, 0);
        assert_eq!(afresh.file.metadata().unwrap().len(), 0, "the stale bytes are gone");
    }

    #[test]
    fn stale_partials_are_removed_unless_in_use() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::open(root.path(), "bob", false).unwrap();
        let mut a = home.begin_upload(&p("a"), 10, true, None).unwrap();
        std::io::Write::write_all(&mut a.file, b"held").unwrap();
        let mut b = home.begin_upload(&p("b"), 10, true, None).unwrap();
        std::io::Write::write_all(&mut b.file, b"stale!").unwrap();
        drop(b);
        assert_eq!(home.remove_stale_partials(std::time::Duration::ZERO).unwrap(), 6);
        let left = std::fs::read_dir(root.path().join(".ftpd/partial/bob")).unwrap().count();
        assert_eq!(left, 2, "the partial in use and its record stay");
        drop(a);
    }
}
