//! The one place where failures become replies.

use ftp_proto::{ErrorBody, ErrorCode, PathError, RemotePath};
use std::io;

/// Maps a filesystem error on `path` to the reply sent to the client.
/// Unexpected errors are logged here with their details; the client gets a
/// generic message that reveals nothing about the server's layout.
pub fn io_error(err: &io::Error, path: &RemotePath) -> ErrorBody {
    use io::ErrorKind as K;
    let (code, what) = match err.kind() {
        K::NotFound => (ErrorCode::NotFound, "not found"),
        K::AlreadyExists => (ErrorCode::Exists, "already exists"),
        K::PermissionDenied => (ErrorCode::PermissionDenied, "permission denied (outside the home or not allowed)"),
        K::NotADirectory => (ErrorCode::NotADirectory, "not a directory"),
        K::IsADirectory => (ErrorCode::IsADirectory, "is a directory"),
        K::DirectoryNotEmpty => (ErrorCode::NotEmpty, "directory not empty"),
        K::InvalidInput | K::InvalidFilename => (ErrorCode::BadRequest, "invalid path"),
        K::StorageFull => {
            tracing::error!(path = %path, "storage full");
            (ErrorCode::Internal, "no space left on the server")
        }
        _ if err.raw_os_error() == Some(40) => (ErrorCode::PermissionDenied, "too many levels of symbolic links"),
        _ if err.raw_os_error() == Some(18) => (ErrorCode::PermissionDenied, "can't move across devices"),
        _ => {
            tracing::error!(path = %path, error = %err, "unexpected filesystem error");
            (ErrorCode::Internal, "internal server error")
        }
    };
    ErrorBody::new(code, format!("{path}: {what}"))
}

/// Maps a refused path to its reply.
pub fn path_error(err: PathError) -> ErrorBody {
    match err {
        PathError::Escapes(msg) => ErrorBody::new(ErrorCode::PermissionDenied, msg),
        PathError::Invalid(msg) => ErrorBody::new(ErrorCode::BadRequest, msg),
    }
}
