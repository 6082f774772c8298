//! A user's home directory: every filesystem operation a session performs.
//!
//! The home is held as a capability ([`cap_std::fs::Dir`]): every path is
//! resolved beneath it by the kernel (`openat2` with `RESOLVE_BENEATH` where
//! available, otherwise component by component without following symlinks
//! out). `..`, absolute symlinks and symlinks that climb out are refused
//! with `PermissionDenied`, including a directory swapped for a symlink
//! between two calls. Once opened, a `Home` can never reach outside.
//!
//! Uploads are written to a private staging directory outside the home
//! (`<root>/.ftpd/staging/<user>/`, on the same filesystem) and renamed into
//! place only after they are verified, so a partial upload never appears
//! under its final name and an existing file is replaced atomically.
//!
//! Every method here blocks: call them from `spawn_blocking`.

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, Metadata, OpenOptions};
use ftp_proto::{Entry, EntryKind, RemotePath};
use std::io::{self, Read};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Name of the daemon's private directory inside the data root. User names
/// can't contain a dot, so it never collides with a home.
pub const STATE_DIR: &str = ".ftpd";

/// One user's home and staging directory.
#[derive(Debug)]
pub struct Home {
    dir: Dir,
    staging: Dir,
    fsync: bool,
}

/// An upload in progress: a temporary file in the staging directory, removed
/// on drop unless committed.
#[derive(Debug)]
pub struct Upload {
    staging: Dir,
    temp_name: String,
    parent: Dir,
    name: String,
    committed: bool,
}

impl Home {
    /// Opens (creating if needed) `<root>/<user>/` and its staging directory.
    /// `user` must already be a validated user name.
    pub fn open(root: &Path, user: &str, fsync: bool) -> io::Result<Home> {
        let root = Dir::open_ambient_dir(root, ambient_authority())?;
        root.create_dir_all(user)?;
        let dir = root.open_dir(user)?;
        let staging_path = Path::new(STATE_DIR).join("staging").join(user);
        root.create_dir_all(&staging_path)?;
        let staging = root.open_dir(&staging_path)?;
        Ok(Home { dir, staging, fsync })
    }

    /// Removes leftover temporary files of this user (from a crash).
    pub fn clean_staging(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in self.staging.entries()? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                self.staging.remove_file(entry.file_name())?;
                removed += 1;
            }
        }
        Ok(removed)
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
        Ok((file, meta))
    }

    /// Removes a file (or a symlink, never its target).
    pub fn remove_file(&self, path: &RemotePath) -> io::Result<()> {
        let meta = self.dir.symlink_metadata(path.to_relative())?;
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory; use rmdir"));
        }
        self.dir.remove_file(path.to_relative())
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
    /// atomically; a directory can't be moved into itself.
    pub fn rename(&self, from: &RemotePath, to: &RemotePath) -> io::Result<()> {
        refuse_root(from)?;
        refuse_root(to)?;
        self.dir.symlink_metadata(from.to_relative())?;
        self.dir.rename(from.to_relative(), &self.dir, to.to_relative())
    }

    /// Starts an upload to `path`: checks that the parent is a directory and
    /// that the target is not one, then creates a temporary file.
    pub fn begin_upload(&self, path: &RemotePath) -> io::Result<(Upload, std::fs::File)> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::IsADirectory, "the home is a directory"))?
            .to_owned();
        let parent = self.open_dir(&path.parent())?;
        match parent.symlink_metadata(&name) {
            Ok(m) if m.is_dir() => return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory")),
            _ => {}
        }
        let staging = self.staging.try_clone()?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        for _ in 0..16 {
            let temp_name = format!("{:016x}.part", rand::random::<u64>());
            match staging.open_with(&temp_name, &opts) {
                Ok(file) => {
                    let upload = Upload { staging, temp_name, parent, name, committed: false };
                    return Ok((upload, file.into_std()));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("could not create a unique temporary file"))
    }

    /// Whether uploads are fsynced before they are committed.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    fn open_dir(&self, path: &RemotePath) -> io::Result<Dir> {
        if path.is_root() { self.dir.try_clone() } else { self.dir.open_dir(path.to_relative()) }
    }
}

impl Upload {
    /// Renames the verified temporary file into place, replacing any
    /// existing file atomically, and (with fsync) makes the rename durable.
    pub fn commit(mut self, fsync: bool) -> io::Result<()> {
        // Re-check at commit: the target may have become a directory meanwhile.
        if let Ok(m) = self.parent.symlink_metadata(&self.name) {
            if m.is_dir() {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory"));
            }
        }
        self.staging.rename(&self.temp_name, &self.parent, &self.name)?;
        self.committed = true;
        if fsync {
            self.parent.open(".")?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.staging.remove_file(&self.temp_name);
        }
    }
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

/// Reads up to `buf.len()` bytes, retrying short reads, stopping at EOF.
pub fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
        assert_eq!(home.begin_upload(&p("out/x")).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(home.list(&p("inside")).unwrap().is_empty(), "a symlink inside the home works");
    }

    #[test]
    fn upload_is_invisible_until_committed() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::open(root.path(), "bob", true).unwrap();
        let (upload, mut file) = home.begin_upload(&p("f")).unwrap();
        std::io::Write::write_all(&mut file, b"hello").unwrap();
        assert!(home.list(&RemotePath::root()).unwrap().is_empty());
        upload.commit(true).unwrap();
        let entries = home.list(&RemotePath::root()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].size, 5);

        let (upload, _file) = home.begin_upload(&p("g")).unwrap();
        drop(upload);
        assert_eq!(home.clean_staging().unwrap(), 0, "a dropped upload removes its temporary file");
    }
}
