//! The one place where failures become ftpd's replies.
//!
//! A failure the user can act on is told as it is (`not_found`,
//! `quota_exceeded`...). One the daemon can't fix is told by its real
//! cause (`no_space`, `permission_denied` with the reason, `busy`,
//! `unavailable`) and logged with the operating system's or the store's
//! own error. Only what nobody planned for is `internal`; its details go
//! to the log, never to the client.

use crate::transfer::Error;
use ftp_proto::{ErrorBody, ErrorCode, PathError};
use std::fmt::Display;
use tracing::{error, warn};

/// The reply to `err`, which happened to `path`.
pub(crate) fn error_body(err: &Error, path: &dyn Display) -> ErrorBody {
    let mut subject = path.to_string();
    let (code, what): (ErrorCode, String) = match err {
        Error::NotFound => (ErrorCode::NotFound, "not found".into()),
        Error::ParentNotFound => {
            // Told of the directory that is missing, not of the file.
            subject = match subject.rsplit_once('/') {
                Some((parent, _)) if !parent.is_empty() => parent.to_owned(),
                _ => "/".to_owned(),
            };
            (ErrorCode::NotFound, "no such directory".into())
        }
        Error::Exists => (ErrorCode::Exists, "already exists".into()),
        Error::NotADirectory => (ErrorCode::NotADirectory, "not a directory".into()),
        Error::IsADirectory => (ErrorCode::IsADirectory, "is a directory".into()),
        Error::NotEmpty => (ErrorCode::NotEmpty, "directory not empty".into()),
        Error::Denied(why) => (ErrorCode::PermissionDenied, format!("permission denied: {why}")),
        Error::Forbidden(why) => (ErrorCode::PermissionDenied, format!("permission denied: {why}")),
        Error::InvalidPath => (ErrorCode::BadRequest, "invalid path".into()),
        Error::NameTooLong => (ErrorCode::BadRequest, err.to_string()),
        Error::ReadOnly { reason, source } => {
            warn!(path = %path, error = %source, "storage refused a change");
            (ErrorCode::PermissionDenied, format!("permission denied: {reason}"))
        }
        Error::NoSpace(source) => {
            error!(path = %path, error = %source, "storage full");
            (ErrorCode::NoSpace, err.to_string())
        }
        Error::Exhausted(source) => {
            error!(path = %path, error = %source, "out of resources");
            (ErrorCode::Busy, err.to_string())
        }
        Error::OverQuota { .. } => (ErrorCode::QuotaExceeded, err.to_string()),
        Error::Held | Error::TakenOver | Error::Abandoned(_) => (ErrorCode::Aborted, err.to_string()),
        Error::Integrity(why) => (ErrorCode::Integrity, why.clone()),
        Error::Changed => (ErrorCode::Aborted, "the file changed while it was read; try again".into()),
        Error::Lacks(_) => (ErrorCode::Unavailable, err.to_string()),
        Error::Unavailable(why) => {
            warn!(path = %path, error = %why, "storage unavailable");
            // The database's failures say so first (storage/db.rs).
            let part = if why.starts_with("database:") { "database" } else { "storage" };
            (ErrorCode::Unavailable, format!("the server's {part} is unavailable for the moment; try again"))
        }
        Error::Other(cause) => {
            error!(path = %path, error = %crate::storage::error::chain(cause.as_ref()), "unexpected storage failure");
            (ErrorCode::Internal, "internal server error".into())
        }
    };
    ErrorBody::new(code, format!("{subject}: {what}"))
}

/// Maps a refused path to its reply.
pub(crate) fn path_error(err: PathError) -> ErrorBody {
    match err {
        PathError::Escapes(msg) => ErrorBody::new(ErrorCode::PermissionDenied, msg),
        PathError::Invalid(msg) => ErrorBody::new(ErrorCode::BadRequest, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn faults_the_daemon_cant_fix_keep_their_cause() {
        let os = |errno| Error::from(io::Error::from_raw_os_error(errno));
        let cases = [
            (os(libc::ENOSPC), ErrorCode::NoSpace),
            (os(libc::EROFS), ErrorCode::PermissionDenied),
            (os(libc::EACCES), ErrorCode::PermissionDenied),
            (os(libc::EMFILE), ErrorCode::Busy),
            (Error::Unavailable("connection refused".into()), ErrorCode::Unavailable),
            (os(libc::EIO), ErrorCode::Internal),
        ];
        for (err, code) in cases {
            let body = error_body(&err, &"/f");
            assert_eq!(body.code, code, "{err:?}");
            assert!(body.message.starts_with("/f: "), "{body}");
        }
        let body = error_body(&os(libc::EROFS), &"/f");
        assert!(body.message.contains("read-only"), "the reason is told: {body}");
    }

    #[test]
    fn a_missing_parent_is_named_not_the_file() {
        let body = error_body(&Error::ParentNotFound, &"/nosuchdir/a.txt");
        assert_eq!((body.code, body.message.as_str()), (ErrorCode::NotFound, "/nosuchdir: no such directory"));
        assert_eq!(error_body(&Error::ParentNotFound, &"/a.txt").message, "/: no such directory");
    }
}
