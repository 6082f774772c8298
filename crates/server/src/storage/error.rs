//! What can go wrong below the doors, by cause rather than by backend.
//!
//! Both backends report every failure as an [`Error`]; a door maps it to
//! its own replies in one place (`session::reply` for ftpd's protocol). An
//! operating-system error is classified here, once, by its errno: a full
//! disk is [`Error::NoSpace`], a read-only filesystem or a file the
//! daemon may not write is [`Error::ReadOnly`], running out of descriptors
//! is [`Error::Exhausted`]; whatever is not understood stays
//! [`Error::Other`] with its cause, for the log.

use std::io;

impl From<crate::access::Refusal> for Error {
    fn from(refusal: crate::access::Refusal) -> Error {
        Error::Forbidden(refusal.0)
    }
}

/// A storage or transfer failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist.
    #[error("not found")]
    NotFound,
    /// A directory the path needs does not exist.
    #[error("the parent directory does not exist")]
    ParentNotFound,
    /// Something is already in the way.
    #[error("already exists")]
    Exists,
    /// A path component, or the target, is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// A file operation aimed at a directory.
    #[error("is a directory")]
    IsADirectory,
    /// `rmdir` of a directory with entries.
    #[error("directory not empty")]
    NotEmpty,
    /// Refused by confinement or policy: outside the home, a symlink loop,
    /// a file with several hard links, the home itself.
    #[error("{0}")]
    Denied(&'static str),
    /// Not allowed for this user by their permissions or rules (see
    /// [`crate::access`]); says what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// The path can't name anything on this store.
    #[error("invalid path")]
    InvalidPath,
    /// The path is within the protocol's limits but longer than this
    /// store can hold (a filesystem's own limit, an S3 key's).
    #[error("the path is too long for the server's storage")]
    NameTooLong,
    /// The store refuses the write: a read-only filesystem, or a file or
    /// directory the daemon's own user may not change.
    #[error("{reason}")]
    ReadOnly {
        /// What the user is told.
        reason: &'static str,
        /// The operating system's error, for the log.
        #[source]
        source: io::Error,
    },
    /// The store has no room left (not the user's quota).
    #[error("no space left in the server's storage")]
    NoSpace(#[source] io::Error),
    /// The daemon is out of descriptors or memory for the moment.
    #[error("the server is out of resources for the moment; try again")]
    Exhausted(#[source] io::Error),
    /// The upload does not fit in the user's quota.
    #[error(
        "over your quota: the upload needs {}, {} available",
        ftp_proto::size::human_size(*.needed),
        ftp_proto::size::human_size(*.available)
    )]
    OverQuota {
        /// Bytes the upload needs.
        needed: u64,
        /// Bytes left.
        available: u64,
    },
    /// Another upload holds this upload's partial.
    #[error("another upload of this file holds its partial")]
    Held,
    /// A newer attempt took this resumable upload over.
    #[error("a newer attempt at this upload took over")]
    TakenOver,
    /// The bytes do not match their declared size or hash.
    #[error("{0}")]
    Integrity(String),
    /// The sender gave up on the transfer.
    #[error("{0}")]
    Abandoned(String),
    /// The file changed while it was being read.
    #[error("the file changed during the download")]
    Changed,
    /// The store lacks a feature the daemon relies on (found at start).
    #[error("the object store lacks a feature ftpd needs: {0}")]
    Lacks(String),
    /// The store can't be reached, or failed in a way that may pass.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the cause goes to the log only.
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure nobody planned for, with its cause.
    pub fn other(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Other(cause.into())
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        use io::ErrorKind as K;
        if let Some(errno) = e.raw_os_error() {
            match errno {
                libc::ENOSPC | libc::EDQUOT => return Error::NoSpace(e),
                libc::EROFS => return Error::ReadOnly { reason: "the server's storage is read-only", source: e },
                libc::EACCES | libc::EPERM => {
                    return Error::ReadOnly { reason: "the server may not change this file", source: e };
                }
                libc::EMFILE | libc::ENFILE | libc::ENOMEM => return Error::Exhausted(e),
                libc::ELOOP => return Error::Denied("too many levels of symbolic links"),
                libc::EXDEV => return Error::Denied("can't move across devices"),
                libc::ENAMETOOLONG => return Error::NameTooLong,
                _ => {}
            }
        }
        match e.kind() {
            K::NotFound => Error::NotFound,
            K::AlreadyExists => Error::Exists,
            K::NotADirectory => Error::NotADirectory,
            K::IsADirectory => Error::IsADirectory,
            K::DirectoryNotEmpty => Error::NotEmpty,
            // Without an errno: the capability layer refused a path that
            // leads out of the home.
            K::PermissionDenied => Error::Denied("outside the home or not allowed"),
            K::InvalidInput | K::InvalidFilename => Error::InvalidPath,
            K::StorageFull | K::QuotaExceeded => Error::NoSpace(e),
            K::ReadOnlyFilesystem => Error::ReadOnly { reason: "the server's storage is read-only", source: e },
            _ => Error::Other(e.into()),
        }
    }
}

/// An error and its causes, as one line (for the log).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Error {
        Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_system_errors_keep_their_cause() {
        let os = |errno| Error::from(io::Error::from_raw_os_error(errno));
        assert!(matches!(os(libc::ENOSPC), Error::NoSpace(_)));
        assert!(matches!(os(libc::EDQUOT), Error::NoSpace(_)));
        assert!(matches!(os(libc::EROFS), Error::ReadOnly { .. }));
        assert!(matches!(os(libc::EACCES), Error::ReadOnly { .. }));
        assert!(matches!(os(libc::EMFILE), Error::Exhausted(_)));
        assert!(matches!(os(libc::ENOENT), Error::NotFound));
        assert!(matches!(os(libc::ELOOP), Error::Denied(_)));
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside of the filesystem");
        assert!(matches!(Error::from(escape), Error::Denied(_)));
        // The cause stays attached for the log.
        let Error::NoSpace(source) = os(libc::ENOSPC) else { unreachable!() };
        assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
        assert!(matches!(os(libc::EIO), Error::Other(_)));
    }
}
