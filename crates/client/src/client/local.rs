//! Where a download lands on the local disk.
//!
//! A regular file is received beside its target and renamed onto it only
//! once verified, so the name holds the old file or the whole new one,
//! never a part. What can't be renamed onto (a FIFO, a device, standard
//! output) is written in place as the bytes arrive. A symbolic link named
//! as the target is written through, as cp does: the file it points to is
//! replaced, the link stays.

use super::ClientError;
use ftp_proto::{GetOk, Version};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How a download treats its local side.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    /// As cp does with a target the user named: write through a symbolic
    /// link there (refusing a dangling one) and stream into a FIFO or
    /// device. Off (files of a tree, whose names come from the server),
    /// whatever is there and not a directory is replaced, as rsync does.
    pub write_through: bool,
    /// Never replace a file: if one appears at the target while the
    /// download runs, the download fails (`AlreadyExists`) and the file
    /// stays. (Skipping files that exist beforehand is the caller's.)
    pub no_clobber: bool,
    /// Give the file the server's modification time.
    pub preserve: bool,
}

/// Where a download's bytes go.
pub(crate) enum Target {
    /// A regular file at `path` (a symbolic link resolved), created or
    /// replaced whole: received into `partial` beside it (or in memory,
    /// when small) and renamed onto `path` once verified.
    File { path: PathBuf, partial: LocalPartial },
    /// A FIFO or a device, opened when the data comes (a FIFO's open waits
    /// for its reader) and written in place.
    Device(PathBuf),
    /// A stream already open (standard output); `name` shows it in errors.
    Open { file: File, name: PathBuf },
}

impl Target {
    /// What `path` holds, and so how a download writes to it.
    pub(crate) fn resolve(path: &Path, write_through: bool) -> Result<Target, ClientError> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                check_parent(path)?;
                return Target::file(path.to_owned());
            }
            Err(e) => return Err(local(path, e)),
        };
        if !write_through {
            return match meta.is_dir() {
                true => Err(local(path, io::Error::new(io::ErrorKind::IsADirectory, "is a directory"))),
                false => Target::file(path.to_owned()),
            };
        }
        let (path, meta) = match meta.file_type().is_symlink() {
            false => (path.to_owned(), meta),
            true => match std::fs::metadata(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let why = "not writing through a dangling symbolic link";
                    return Err(local(path, io::Error::new(io::ErrorKind::NotFound, why)));
                }
                Err(e) => return Err(local(path, e)),
                // The real file is staged beside, and renamed onto.
                Ok(real) if real.is_file() => (std::fs::canonicalize(path).map_err(|e| local(path, e))?, real),
                // A device or FIFO is opened through the link itself
                // (`/dev/stdout` leads to `pipe:[...]`, which is no path).
                Ok(real) => (path.to_owned(), real),
            },
        };
        let kind = meta.file_type();
        if kind.is_file() {
            Target::file(path)
        } else if kind.is_dir() {
            Err(local(&path, io::Error::new(io::ErrorKind::IsADirectory, "is a directory")))
        } else if is_device(&kind) {
            Ok(Target::Device(path))
        } else {
            Err(local(&path, io::Error::other("not a regular file, FIFO or device")))
        }
    }

    fn file(path: PathBuf) -> Result<Target, ClientError> {
        let partial = LocalPartial::for_target(&path).map_err(|e| local(&path, e))?;
        Ok(Target::File { path, partial })
    }
}

#[cfg(unix)]
fn is_device(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_fifo() || kind.is_char_device() || kind.is_block_device()
}

#[cfg(not(unix))]
fn is_device(_: &std::fs::FileType) -> bool {
    false
}

/// A new file's directory must exist: say so of the directory, not of the
/// file.
fn check_parent(path: &Path) -> Result<(), ClientError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(local(parent, io::Error::new(io::ErrorKind::NotADirectory, "not a directory"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(local(parent, io::Error::new(io::ErrorKind::NotFound, "no such directory")))
        }
        Err(e) => Err(local(parent, e)),
    }
}

fn local(path: &Path, source: io::Error) -> ClientError {
    ClientError::Local { path: path.to_owned(), source }
}

/// Opens a FIFO or device to write a download into (without truncating:
/// there is nothing to truncate).
pub(crate) async fn open_device(path: &Path) -> io::Result<File> {
    let file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
    Ok(file.into_std().await)
}

/// How a verified file takes its name.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Place {
    /// Fail with `AlreadyExists` rather than replace a file that is there.
    pub no_clobber: bool,
    /// The modification time to give the file.
    pub mtime: Option<SystemTime>,
}

impl Place {
    /// How the file `head` describes is placed under `options`.
    pub(crate) fn new(options: GetOptions, head: &GetOk) -> Place {
        let mtime = options.preserve.then(|| system_time(head.mtime)).flatten();
        Place { no_clobber: options.no_clobber, mtime }
    }

    /// Gives a new file its modification time (before it takes its name).
    pub(crate) fn stamp(&self, file: &File) -> io::Result<()> {
        match self.mtime {
            Some(time) => file.set_modified(time),
            None => Ok(()),
        }
    }

    /// Renames a staged file onto `target`.
    pub(crate) fn persist(&self, file: tempfile::NamedTempFile, target: &Path) -> io::Result<()> {
        let placed = if self.no_clobber { file.persist_noclobber(target) } else { file.persist(target) };
        placed.map(drop).map_err(|e| e.error)
    }

    /// Renames the file at `from` onto `target` (`from` stays on failure).
    fn rename(&self, from: &Path, target: &Path) -> io::Result<()> {
        if !self.no_clobber {
            return std::fs::rename(from, target);
        }
        tempfile::TempPath::try_from_path(from)?.persist_noclobber(target).map_err(|e| {
            let _ = e.path.keep();
            e.error
        })
    }
}

/// Seconds since the Unix epoch as a time (`None` out of range).
fn system_time(secs: i64) -> Option<SystemTime> {
    match u64::try_from(secs) {
        Ok(after) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
    }
}

/// Writes `data` to a new file beside `target`, syncs it (if `durable`)
/// and renames it over `target` as `place` says: readers see the old file
/// or the whole new one.
pub(crate) fn write_whole(target: &Path, data: &[u8], durable: bool, place: Place) -> io::Result<()> {
    let file = stage(target, data)?;
    place.stamp(file.as_file())?;
    if !durable {
        return place.persist(file, target);
    }
    file.as_file().sync_all()?;
    place.persist(file, target)?;
    // The new name itself, durable.
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Writes `data` to a new temporary file beside `target` (removed if
/// dropped); the caller syncs it and renames it into place.
pub(crate) fn stage(target: &Path, data: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("download");
    let stem = if name.len() <= 200 { name } else { "download" };
    let prefix = format!(".{stem}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".ftpc-part");
    // The mode a plain create would give (the umask applies).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(data)?;
    Ok(file)
}

/// The local partial of a download and its record.
pub(crate) struct LocalPartial {
    part: PathBuf,
    record: PathBuf,
}

/// What a local partial belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct PartialRecord {
    remote: String,
    size: u64,
    mtime: i64,
}

impl LocalPartial {
    fn for_target(local: &Path) -> io::Result<LocalPartial> {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no usable file name"))?;
        // Keep the partial's name within the usual 255-byte limit.
        let stem =
            if name.len() <= 200 { name.to_owned() } else { blake3::hash(name.as_bytes()).to_hex()[..32].to_owned() };
        let dir = match local.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(LocalPartial {
            part: dir.join(format!(".{stem}.ftpc-part")),
            record: dir.join(format!(".{stem}.ftpc-part.json")),
        })
    }

    /// Bytes held for `remote`, and the version of the file they came from.
    pub(crate) fn held(&self, remote: &str) -> (u64, Option<Version>) {
        // No partial (the usual case, checked once per file of a batch):
        // no record to read either.
        let len = std::fs::metadata(&self.part).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return (0, None);
        }
        let record: Option<PartialRecord> =
            std::fs::read(&self.record).ok().and_then(|b| serde_json::from_slice(&b).ok());
        match record {
            Some(r) if r.remote == remote && len <= r.size => (len, Some(Version { size: r.size, mtime: r.mtime })),
            _ => (0, None),
        }
    }

    /// Opens (creating) and locks the partial, keeps its first `offset`
    /// bytes, and records which file it belongs to.
    pub(crate) fn open(&self, remote: &str, head: &GetOk) -> io::Result<File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        // A download gets the mode a plain create would give (the umask
        // applies).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o666);
        let file = opts.open(&self.part)?;
        file.try_lock()
            .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, "another download to this file is in progress"))?;
        // Truncating on ext4, even to the length the file has, makes its
        // close write back everything written since (`auto_da_alloc`):
        // only cut a partial that is longer than what the server resumes.
        if file.metadata()?.len() != head.offset {
            file.set_len(head.offset)?;
        }
        let record = PartialRecord { remote: remote.to_owned(), size: head.size, mtime: head.mtime };
        std::fs::write(&self.record, serde_json::to_vec(&record).map_err(io::Error::other)?)?;
        Ok(file)
    }

    /// Moves the verified file into place as `place` says.
    pub(crate) fn finish(&self, local: &Path, place: Place) -> io::Result<()> {
        if place.mtime.is_some() {
            place.stamp(&File::options().write(true).open(&self.part)?)?;
        }
        place.rename(&self.part, local)?;
        let _ = std::fs::remove_file(&self.record);
        Ok(())
    }

    /// Bytes currently in the partial.
    pub(crate) fn len(&self) -> u64 {
        std::fs::metadata(&self.part).map(|m| m.len()).unwrap_or(0)
    }

    /// Deletes a partial that can't be trusted.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.part);
        let _ = std::fs::remove_file(&self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(target: Result<Target, ClientError>) -> String {
        match target {
            Ok(Target::File { path, .. }) => format!("file {}", path.display()),
            Ok(Target::Device(path)) => format!("device {}", path.display()),
            Ok(Target::Open { .. }) => "open".into(),
            Err(e) => format!("error {e}"),
        }
    }

    #[test]
    fn targets_are_resolved_as_cp_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();

        assert_eq!(kind(Target::resolve(&link, true)), format!("file {}", real.display()));
        assert_eq!(kind(Target::resolve(&link, false)), format!("file {}", link.display()));
        assert!(kind(Target::resolve(&dangling, true)).contains("dangling symbolic link"));
        assert_eq!(kind(Target::resolve(&dangling, false)), format!("file {}", dangling.display()));
        assert_eq!(kind(Target::resolve(Path::new("/dev/null"), true)), "device /dev/null");
        assert_eq!(kind(Target::resolve(Path::new("/dev/null"), false)), "file /dev/null");
        assert!(kind(Target::resolve(dir.path(), true)).contains("is a directory"));
        let orphan = dir.path().join("no/such/f.txt");
        assert_eq!(
            kind(Target::resolve(&orphan, true)),
            format!("error {}: no such directory", dir.path().join("no/such").display())
        );
    }

    #[test]
    fn times_before_and_after_the_epoch() {
        assert_eq!(system_time(0), Some(SystemTime::UNIX_EPOCH));
        assert_eq!(system_time(-5), SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(5)));
        assert_eq!(system_time(86_400), SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(86_400)));
    }
}
