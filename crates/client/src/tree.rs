//! Whole directory trees: what `put -r` sends and what `get -r` fetches.
//!
//! Both walks produce relative paths made of checked names only
//! ([`validate_name`]: no `/`, no `..`, no NUL), so joining them to the
//! target can't leave it, whatever a server lists. Symbolic links are never
//! followed, on either side: they are reported as skipped.

use crate::client::{Client, ClientError, Io};
use ftp_proto::{EntryKind, validate_name};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

/// Most entries a remote walk accepts (bounds memory against a server that
/// lists without end).
pub const MAX_TREE_ENTRIES: usize = 1_000_000;
/// Deepest directory level a walk descends to.
pub const MAX_DEPTH: usize = 64;

/// A local directory tree to upload.
#[derive(Debug, Default)]
pub struct LocalTree {
    /// Directories, relative, `/`-separated, each after its parent.
    pub dirs: Vec<String>,
    /// Regular files: where they are, and their relative path.
    pub files: Vec<(PathBuf, String)>,
    /// Entries left out, and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Total size of `files`.
    pub bytes: u64,
}

/// Walks `root` (a directory) without following symlinks.
pub fn walk_local(root: &Path) -> io::Result<LocalTree> {
    let mut tree = LocalTree::default();
    let mut queue = VecDeque::from([(root.to_owned(), String::new(), 0usize)]);
    while let Some((dir, rel, depth)) = queue.pop_front() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tree.skipped.push((path, "the name is not valid UTF-8".into()));
                continue;
            };
            if let Err(e) = validate_name(&name) {
                tree.skipped.push((path, e.to_string()));
                continue;
            }
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    tree.skipped.push((path, format!("deeper than {MAX_DEPTH} levels")));
                    continue;
                }
                tree.dirs.push(child.clone());
                queue.push_back((path, child, depth + 1));
            } else if kind.is_file() {
                tree.bytes += entry.metadata()?.len();
                tree.files.push((path, child));
            } else if kind.is_symlink() {
                tree.skipped.push((path, "a symbolic link (not followed)".into()));
            } else {
                tree.skipped.push((path, "not a regular file or directory".into()));
            }
        }
    }
    Ok(tree)
}

/// A remote directory tree to download.
#[derive(Debug, Default)]
pub struct RemoteTree {
    /// Directories, relative, `/`-separated, each after its parent.
    pub dirs: Vec<String>,
    /// Files: relative path and size.
    pub files: Vec<(String, u64)>,
    /// Entries left out (relative path as listed, escaped by the caller),
    /// and why.
    pub skipped: Vec<(String, String)>,
    /// Of the entries left out, the symbolic links and other entries
    /// that are neither files nor directories (relative paths): what
    /// `rm -r` removes with the files.
    pub links: Vec<String>,
    /// Total size of `files`.
    pub bytes: u64,
}

impl Client<Box<dyn Io>> {
    /// Lists the remote directory `root` and everything below it.
    pub async fn walk_remote(&mut self, root: &str) -> Result<RemoteTree, ClientError> {
        let root = remote_dir(root);
        let mut tree = RemoteTree::default();
        let mut seen = 0usize;
        let mut queue = VecDeque::from([(String::new(), 0usize)]);
        while let Some((rel, depth)) = queue.pop_front() {
            let dir = match (root.is_empty(), rel.is_empty()) {
                (true, true) => ".".to_owned(),
                (false, true) => root.to_owned(),
                (_, false) => remote_join(root, &rel),
            };
            let mut entries = self.list(Some(&dir)).await?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            seen += entries.len();
            if seen > MAX_TREE_ENTRIES {
                return Err(ClientError::Protocol(format!("more than {MAX_TREE_ENTRIES} entries under {root}")));
            }
            for entry in entries {
                let child = if rel.is_empty() { entry.name.clone() } else { format!("{rel}/{}", entry.name) };
                if let Err(e) = validate_name(&entry.name) {
                    tree.skipped.push((child, format!("refused name: {e}")));
                    continue;
                }
                match entry.kind {
                    EntryKind::Dir if depth + 1 >= MAX_DEPTH => {
                        tree.skipped.push((child, format!("deeper than {MAX_DEPTH} levels")));
                    }
                    EntryKind::Dir => {
                        tree.dirs.push(child.clone());
                        queue.push_back((child, depth + 1));
                    }
                    EntryKind::File => {
                        tree.bytes += entry.size;
                        tree.files.push((child, entry.size));
                    }
                    EntryKind::Symlink => {
                        tree.links.push(child.clone());
                        tree.skipped.push((child, "a symbolic link (not followed)".into()));
                    }
                    EntryKind::Other => {
                        tree.links.push(child.clone());
                        tree.skipped.push((child, "not a regular file or directory".into()));
                    }
                }
            }
        }
        Ok(tree)
    }
}

/// A remote directory as typed, without its trailing slashes: empty (the
/// working directory), `/` (the home) or a path.
pub fn remote_dir(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" if path.starts_with('/') => "/",
        trimmed => trimmed,
    }
}

/// The relative path `rel` under the remote directory `dir` (as
/// [`remote_dir`] gives it).
pub fn remote_join(dir: &str, rel: &str) -> String {
    match dir {
        "" => rel.to_owned(),
        "/" => format!("/{rel}"),
        _ => format!("{dir}/{rel}"),
    }
}

/// Creates `root` (see [`make_target_dir`]) and the tree's directories
/// under it, refusing to go through a symbolic link among those (their
/// names come from the server: a link there could lead anywhere).
pub fn make_local_dirs(root: &Path, dirs: &[String]) -> io::Result<()> {
    make_target_dir(root)?;
    for rel in dirs {
        let mut path = root.to_owned();
        for part in rel.split('/') {
            path.push(part);
        }
        create_real_dir(&path)?;
    }
    Ok(())
}

/// Creates the directory `path` a download goes into, unless there is one
/// (through a symbolic link too: the user named it). Its parent must
/// exist: like rsync, one level is made, not a whole path.
pub fn make_target_dir(path: &Path) -> io::Result<()> {
    let error = |kind, why: &str| io::Error::new(kind, format!("{}: {why}", path.display()));
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(error(io::ErrorKind::AlreadyExists, "not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(path);
                Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such directory", parent.display())))
            }
            other => other.map_err(|e| error(e.kind(), &e.to_string())),
        },
        Err(e) => Err(error(e.kind(), &e.to_string())),
    }
}

fn create_real_dir(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is a symbolic link: not writing through it", path.display()),
        )),
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not a directory", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(path),
        Err(e) => Err(e),
    }
}

/// `root` joined with a relative path from a walk.
pub fn local_path(root: &Path, rel: &str) -> PathBuf {
    let mut path = root.to_owned();
    for part in rel.split('/') {
        path.push(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_walk_keeps_empty_dirs_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("a/b/f.txt"), b"hi").unwrap();
        std::fs::write(root.join("top.txt"), b"top").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        let tree = walk_local(&root).unwrap();
        assert_eq!(tree.dirs, ["a", "empty", "a/b"]);
        let files: Vec<_> = tree.files.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(files, ["top.txt", "a/b/f.txt"]);
        assert_eq!(tree.bytes, 5);
        assert_eq!(tree.skipped.len(), 1);
        assert!(tree.skipped[0].1.contains("symbolic link"));
    }

    #[test]
    fn remote_paths_join_under_the_working_directory_or_the_home() {
        assert_eq!(remote_dir("docs//"), "docs");
        assert_eq!(remote_dir("/"), "/");
        assert_eq!(remote_dir(""), "");
        assert_eq!(remote_join(remote_dir("/"), "a/b"), "/a/b");
        assert_eq!(remote_join(remote_dir(""), "a"), "a");
        assert_eq!(remote_join(remote_dir("/docs/"), "a"), "/docs/a");
    }

    #[test]
    fn local_dirs_are_not_created_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let root = dir.path().join("target");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        let err = make_local_dirs(&root, &["a".into(), "a/b".into()]).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!outside.join("b").exists());
    }
}
