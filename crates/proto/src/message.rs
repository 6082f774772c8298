//! JSON messages: requests, replies and trailers.
//!
//! A reply is a JSON object with `"ok": true` plus the fields of its body
//! type, or `"ok": false` with a machine-readable `code` and a human
//! `message` ([`ErrorBody`]). The client knows which request it sent, so it
//! knows which body type to expect.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A request from client to server. Unknown fields are ignored (so that
/// later protocol versions can add optional fields); an unknown `op` is a
/// `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// First message of every connection: announces the protocol version.
    Hello {
        /// Must equal [`crate::PROTOCOL_VERSION`].
        version: u32,
        /// Free-form client name and version, for the server's log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Authenticates the session.
    Login {
        /// User name.
        user: String,
        /// Password in clear (the transport protects it).
        password: Password,
    },
    /// Upload: data frames follow, then an end frame with the BLAKE3 hash
    /// of the whole file.
    ///
    /// Without `resume`, all `size` bytes follow at once. With `resume`,
    /// the client first waits for a [`PutReady`] reply saying how many bytes
    /// the server already holds, and sends only the rest.
    Put {
        /// Target path.
        path: String,
        /// Size of the whole file.
        size: u64,
        /// Ask to continue an interrupted upload of the same file.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resume: bool,
        /// BLAKE3 (hex) of the whole file, if the sender knows it up front.
        /// A partial recorded with another hash is never resumed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
    },
    /// Download a file, from `offset` on.
    Get {
        /// File to read.
        path: String,
        /// Bytes the client already holds (from an interrupted download).
        #[serde(default, skip_serializing_if = "is_zero")]
        offset: u64,
        /// Size and mtime the file had when the held bytes were received;
        /// if the file changed since, the server starts again from 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Version>,
    },
    /// Space used and available in the user's quota.
    Df,
    /// List a directory (the working directory when `path` is absent).
    Ls {
        /// Directory to list.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Metadata and hash of one entry.
    Stat {
        /// Entry to describe.
        path: String,
    },
    /// Remove a file.
    Rm {
        /// File to remove.
        path: String,
    },
    /// Create a directory (its parent must exist).
    Mkdir {
        /// Directory to create.
        path: String,
    },
    /// Remove an empty directory.
    Rmdir {
        /// Directory to remove.
        path: String,
    },
    /// Rename or move a file or directory, replacing an existing file.
    Rename {
        /// Existing entry.
        from: String,
        /// New path.
        to: String,
    },
    /// Change the working directory (home when `path` is absent).
    Cd {
        /// New working directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// Report the working directory.
    Pwd,
    /// End the session; the server replies and closes.
    Quit,
}

impl Request {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Login { .. } => "login",
            Request::Put { .. } => "put",
            Request::Get { .. } => "get",
            Request::Ls { .. } => "ls",
            Request::Stat { .. } => "stat",
            Request::Rm { .. } => "rm",
            Request::Mkdir { .. } => "mkdir",
            Request::Rmdir { .. } => "rmdir",
            Request::Rename { .. } => "rename",
            Request::Cd { .. } => "cd",
            Request::Pwd => "pwd",
            Request::Df => "df",
            Request::Quit => "quit",
        }
    }

    /// Parses a request from the payload of a message frame.
    pub fn decode(json: &[u8]) -> Result<Request, DecodeError> {
        serde_json::from_slice(json).map_err(|e| {
            let op = serde_json::from_slice::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v.get("op").and_then(|op| op.as_str()).map(str::to_owned));
            DecodeError(e, op)
        })
    }

    /// Serialises the request as the payload of a message frame.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("requests always serialise"))
    }
}

/// A password. Its `Debug` and `Display` print `***`, so it can't reach a
/// log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl Password {
    /// The password in clear, for hashing or verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Stable, machine-readable error codes. Clients match on these, never on
/// the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, unknown op, wrong field type,
    /// invalid name, or a frame that is not allowed here.
    BadRequest,
    /// The peer speaks a protocol version this end does not.
    UnsupportedVersion,
    /// A request other than hello or login arrived before login.
    AuthRequired,
    /// Unknown user or wrong password (deliberately indistinguishable).
    AuthFailed,
    /// The path does not exist.
    NotFound,
    /// The target already exists (mkdir) or is in the way.
    Exists,
    /// A path component that must be a directory is not one.
    NotADirectory,
    /// A file operation was aimed at a directory.
    IsADirectory,
    /// rmdir of a directory that still has entries.
    NotEmpty,
    /// The path leads outside the user's home or is otherwise forbidden.
    PermissionDenied,
    /// Size or hash of transferred data does not match what was declared.
    Integrity,
    /// A frame or message exceeds a limit.
    TooLarge,
    /// The server is at its connection limit.
    Busy,
    /// Too many sessions for this user or from this address.
    TooManySessions,
    /// Too many failed logins: this address or user name is blocked for a while.
    TooManyAttempts,
    /// The upload does not fit in the user's quota.
    QuotaExceeded,
    /// The peer was too slow (login deadline or idle timeout).
    Timeout,
    /// The sender abandoned a transfer.
    Aborted,
    /// The server is shutting down.
    ShuttingDown,
    /// An unexpected server-side failure (details are in the server log).
    Internal,
    /// The server's storage is full (not the user's quota).
    NoSpace,
    /// The storage backend can't be reached for the moment.
    Unavailable,
    /// A code this version does not know (sent by a newer peer).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::IsADirectory => "is_a_directory",
            ErrorCode::NotEmpty => "not_empty",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Integrity => "integrity",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Busy => "busy",
            ErrorCode::TooManySessions => "too_many_sessions",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Aborted => "aborted",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody { code, message: message.into() }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ErrorBody {}

/// A reply with no fields beyond `ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Reply to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloOk {
    /// Protocol version the server speaks.
    pub version: u32,
    /// Server name and version.
    pub server: String,
    /// Largest data chunk the server accepts.
    pub max_chunk: u64,
}

/// Reply to `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOk {
    /// The authenticated user.
    pub user: String,
    /// The working directory, always `/` (the home) right after login.
    pub cwd: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Identifies one version of a remote file, for resuming a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// Interim reply to a `put` with `resume`: the client sends the data from
/// `offset` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReady {
    /// Bytes of the file the server already holds (0: start afresh).
    pub offset: u64,
    /// BLAKE3 (hex) of those `offset` bytes as they are on the server's
    /// disk. The client compares it with its own file's first `offset`
    /// bytes and abandons the upload (error code `integrity`) on a mismatch.
    pub prefix_hash: String,
}

/// Reply to `df`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DfOk {
    /// Bytes used: files in the home plus partial uploads kept for resume.
    pub used: u64,
    /// The quota in bytes; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Bytes still available (quota minus used and reserved); absent when
    /// unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<u64>,
}

/// Final reply to a successful `put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOk {
    /// Path of the stored file, from the home (`/dir/name`).
    pub path: String,
    /// Bytes stored.
    pub size: u64,
    /// BLAKE3 hash (hex) of the stored bytes, as verified by the server.
    pub hash: String,
}

/// Reply to `get`; `size - offset` bytes of data frames and a [`Trailer`]
/// with the hash of the whole file follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOk {
    /// Size of the whole file.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Where the data starts: the requested offset, or 0 when the server
    /// starts afresh (the file changed, or the offset was beyond its end).
    #[serde(default)]
    pub offset: u64,
}

/// Reply to `stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatOk {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// BLAKE3 hash (hex) of a regular file; absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Reply to `cd` and `pwd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingDir {
    /// Working directory, from the home (`/` is the home itself).
    pub cwd: String,
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (not followed by `ls`).
    Symlink,
    /// Anything else (socket, fifo, device), or a kind unknown to this version.
    #[serde(other)]
    Other,
}

/// One directory entry, as listed by `ls` and described by `stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Entry name (one component; for `stat`, the last component of the path).
    pub name: String,
    /// Kind.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// The end frame after a run of data frames.
///
/// After `put` data the client sends `{"hash": ...}`, or `{"error": ...}` to
/// abandon the upload. After `get` data the server sends `{"hash": ...}`,
/// or `{"error": ...}` if reading failed midway. After `ls` data the server
/// sends `{"count": N}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// BLAKE3 hash (64 lowercase hex digits) of all the data bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Number of entries sent (listings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The sender gave up: the data must be discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Trailer {
    /// Parses a trailer from the payload of an end frame.
    pub fn decode(json: &[u8]) -> Result<Trailer, DecodeError> {
        serde_json::from_slice(json).map_err(|e| DecodeError(e, None))
    }

    /// Serialises the trailer as the payload of an end frame.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("trailers always serialise"))
    }
}

/// A JSON message that could not be parsed. The message names the field or
/// op that was wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid message: {0}")]
pub struct DecodeError(serde_json::Error, Option<String>);

impl DecodeError {
    /// The `op` of a request that could not be decoded, if it is a JSON
    /// object with a string `op` (so that a server knows a malformed `put`
    /// may be followed by its data).
    pub fn op(&self) -> Option<&str> {
        self.1.as_deref()
    }
}

/// Encodes a successful reply: `{"ok": true, ...fields of body}`.
pub fn encode_ok<T: Serialize>(body: &T) -> Bytes {
    let mut value = serde_json::to_value(body).expect("reply bodies always serialise");
    let map = value.as_object_mut().expect("reply bodies are JSON objects");
    map.insert("ok".into(), serde_json::Value::Bool(true));
    Bytes::from(serde_json::to_vec(&value).expect("JSON values always serialise"))
}

/// Encodes a failed reply: `{"ok": false, "code": ..., "message": ...}`.
pub fn encode_err(err: &ErrorBody) -> Bytes {
    let value = serde_json::json!({ "ok": false, "code": err.code, "message": err.message });
    Bytes::from(serde_json::to_vec(&value).expect("JSON values always serialise"))
}

/// Decodes a reply whose success body is `T`. The outer `Result` is about
/// the bytes; the inner one is the server's verdict.
pub fn decode_reply<T: DeserializeOwned>(json: &[u8]) -> Result<Result<T, ErrorBody>, DecodeError> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| DecodeError(e, None))?;
    let ok = value.get("ok").and_then(serde_json::Value::as_bool);
    match ok {
        Some(true) => serde_json::from_value(value).map(Ok).map_err(|e| DecodeError(e, None)),
        Some(false) => serde_json::from_value(value).map(Err).map_err(|e| DecodeError(e, None)),
        None => Err(DecodeError(serde::de::Error::custom("reply lacks a boolean `ok` field"), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Hello { version: 1, client: Some("ftpc/0.1".into()) },
            Request::Hello { version: 1, client: None },
            Request::Login { user: "alice".into(), password: Password("s3cret".into()) },
            Request::Put { path: "a/b.txt".into(), size: 1 << 40, resume: false, hash: None },
            Request::Put { path: "a".into(), size: 9, resume: true, hash: Some("ab".repeat(32)) },
            Request::Get { path: "b.txt".into(), offset: 0, since: None },
            Request::Get { path: "b.txt".into(), offset: 7, since: Some(Version { size: 9, mtime: 3 }) },
            Request::Df,
            Request::Ls { path: None },
            Request::Ls { path: Some("dir".into()) },
            Request::Stat { path: "x".into() },
            Request::Rm { path: "x".into() },
            Request::Mkdir { path: "d".into() },
            Request::Rmdir { path: "d".into() },
            Request::Rename { from: "a".into(), to: "b".into() },
            Request::Cd { path: Some("..".into()) },
            Request::Cd { path: None },
            Request::Pwd,
            Request::Quit,
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for req in all_requests() {
            let bytes = req.encode();
            assert_eq!(Request::decode(&bytes).unwrap(), req, "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn request_wire_form_is_stable() {
        let req = Request::Put { path: "f".into(), size: 3, resume: false, hash: None };
        assert_eq!(&req.encode()[..], br#"{"op":"put","path":"f","size":3}"#);
        let req = Request::Get { path: "f".into(), offset: 0, since: None };
        assert_eq!(&req.encode()[..], br#"{"op":"get","path":"f"}"#, "v1 clients' requests are unchanged");
        assert_eq!(&Request::Pwd.encode()[..], br#"{"op":"pwd"}"#);
    }

    fn roundtrip_ok<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(body: T) {
        let bytes = encode_ok(&body);
        assert_eq!(decode_reply::<T>(&bytes).unwrap().unwrap(), body);
    }

    #[test]
    fn every_reply_round_trips() {
        roundtrip_ok(Empty {});
        roundtrip_ok(HelloOk { version: 1, server: "ftpd".into(), max_chunk: 1 << 20 });
        roundtrip_ok(LoginOk { user: "alice".into(), cwd: "/".into() });
        roundtrip_ok(PutOk { path: "/a".into(), size: 5, hash: "ab".repeat(32) });
        roundtrip_ok(GetOk { size: 5, mtime: 1_700_000_000, offset: 2 });
        roundtrip_ok(PutReady { offset: 4, prefix_hash: "cd".repeat(32) });
        roundtrip_ok(DfOk { used: 10, quota: Some(100), available: Some(90) });
        roundtrip_ok(DfOk { used: 10, quota: None, available: None });
        let entry = Entry { name: "a".into(), kind: EntryKind::File, size: 5, mtime: -3 };
        roundtrip_ok(StatOk { entry: entry.clone(), hash: Some("00".repeat(32)) });
        roundtrip_ok(StatOk { entry: Entry { kind: EntryKind::Dir, ..entry }, hash: None });
        roundtrip_ok(WorkingDir { cwd: "/x".into() });
        for code in [ErrorCode::NotFound, ErrorCode::Integrity, ErrorCode::AuthFailed, ErrorCode::Busy] {
            let err = ErrorBody::new(code, "nope");
            let back = decode_reply::<Empty>(&encode_err(&err)).unwrap().unwrap_err();
            assert_eq!(back, err);
        }
    }

    #[test]
    fn trailers_round_trip() {
        for t in [
            Trailer { hash: Some("ff".repeat(32)), ..Trailer::default() },
            Trailer { count: Some(7), ..Trailer::default() },
            Trailer { error: Some(ErrorBody::new(ErrorCode::Aborted, "bye")), ..Trailer::default() },
        ] {
            assert_eq!(Trailer::decode(&t.encode()).unwrap(), t);
        }
    }

    #[test]
    fn unknown_codes_and_kinds_decode_as_unknown() {
        let err = decode_reply::<Empty>(br#"{"ok":false,"code":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(err.unwrap_err().code, ErrorCode::Unknown);
        let e: Entry = serde_json::from_str(r#"{"name":"n","kind":"door","size":0,"mtime":0}"#).unwrap();
        assert_eq!(e.kind, EntryKind::Other);
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"op":"launch_missiles"}"#,
            br#"{"op":"put","path":7,"size":1}"#,
            br#"{"op":"put","path":"a","size":-1}"#,
            br#"{"op":"login","user":"a"}"#,
            b"\xff\xfe",
            b"[]",
        ] {
            assert!(Request::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(decode_reply::<Empty>(b"{}").is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let req = Request::decode(br#"{"op":"rm","path":"a","future":true}"#).unwrap();
        assert_eq!(req, Request::Rm { path: "a".into() });
    }

    #[test]
    fn passwords_never_print() {
        let req = Request::Login { user: "u".into(), password: Password("hunter2".into()) };
        assert!(!format!("{req:?}").contains("hunter2"));
    }
}
