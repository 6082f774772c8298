//! JSON messages: requests, replies and trailers.
//!
//! A reply is a JSON object with `"ok": true` plus the fields of its body
//! type, or `"ok": false` with a machine-readable `code` and a human
//! `message` ([`ErrorBody`]). The client knows which request it sent, so it
//! knows which body type to expect.

use bytes::Bytes;
use serde::de::{DeserializeOwned, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Largest `size` or `offset` on the wire: 2^63 − 1, what a signed 64-bit
/// file offset holds. Larger values are refused at decode.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Implements `Serialize` and `Deserialize` for a type derived with
/// `#[serde(remote = "Self")]`, accepting only a JSON object (serde's derived
/// deserialisers also take a sequence of the fields in order, which the
/// protocol does not allow).
macro_rules! object_only {
    ($ty:ident, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                struct ObjectVisitor;
                impl<'de> Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty, A::Error> {
                        // The derived (remote) deserialiser, fed the object.
                        $ty::deserialize(MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(ObjectVisitor)
            }
        }
    };
}

/// A request from client to server: a JSON object (nothing else decodes).
/// Unknown fields are ignored (so that later protocol versions can add
/// optional fields); an unknown `op`, a missing field or a field of the
/// wrong type or out of range is a `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "op", rename_all = "snake_case")]
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
    /// Logs in with an OpenSSH public key (1.3; TLS only). Without
    /// `signature` it only asks whether the server would accept `key` for
    /// `user` ([`KeyQueryOk`]); with one, it logs in ([`LoginOk`]).
    KeyLogin {
        /// User name.
        user: String,
        /// The OpenSSH public key line (`ssh-ed25519 AAAA... comment`; the
        /// comment is optional and ignored), at most
        /// [`crate::key_login::MAX_KEY`] bytes.
        #[serde(deserialize_with = "key_text")]
        key: String,
        /// An armored sshsig (`-----BEGIN SSH SIGNATURE-----`...) by `key`,
        /// namespace `ftpd`, over [`crate::key_login::message`]; at most
        /// [`crate::key_login::MAX_SIGNATURE`] bytes. Absent: a query.
        #[serde(default, deserialize_with = "signature_text", skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
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
        /// Size of the whole file, at most [`MAX_SIZE`].
        #[serde(deserialize_with = "size")]
        size: u64,
        /// Ask to continue an interrupted upload of the same file.
        #[serde(default, deserialize_with = "optional_bool", skip_serializing_if = "std::ops::Not::not")]
        resume: bool,
        /// BLAKE3 (64 hex digits, either case) of the whole file, if the
        /// sender knows it up front; anything else is refused at decode. A
        /// partial recorded with another hash is never resumed, and an end
        /// frame whose hash differs from it is refused with `integrity`.
        #[serde(default, deserialize_with = "optional_hash", skip_serializing_if = "Option::is_none")]
        hash: Option<String>,
        /// Modification time to give the stored file, seconds since the
        /// Unix epoch (1.2); absent: the time it is stored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime: Option<i64>,
        /// Store only if nothing exists at `path` yet (1.2): otherwise
        /// `exists`, and nothing is replaced.
        #[serde(default, deserialize_with = "optional_bool", skip_serializing_if = "std::ops::Not::not")]
        exclusive: bool,
    },
    /// Download a file, from `offset` on.
    Get {
        /// File to read.
        path: String,
        /// Bytes the client already holds (from an interrupted download), at
        /// most [`MAX_SIZE`].
        #[serde(default, deserialize_with = "optional_size", skip_serializing_if = "is_zero")]
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
    /// List the partial uploads kept for resume (1.2): an `ok` reply, then
    /// data frames of [`PartialEntry`] arrays and an end frame with the
    /// count, as for `ls`.
    Partials,
    /// Throw away the partial upload kept for `path`, freeing its bytes
    /// (1.2).
    Discard {
        /// The target path of the interrupted upload.
        path: String,
    },
    /// End the session; the server replies and closes.
    Quit,
}

impl Request {
    /// The `op` name, for logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Login { .. } => "login",
            Request::KeyLogin { .. } => "key_login",
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
            Request::Partials => "partials",
            Request::Discard { .. } => "discard",
            Request::Df => "df",
            Request::Quit => "quit",
        }
    }

    /// Parses a request from the payload of a message frame. On failure,
    /// [`DecodeError::op`] still names the `op` of a JSON object that has a
    /// string `op` (a server needs to know that a malformed request was a
    /// `put`, whose data frames may follow).
    pub fn decode(json: &[u8]) -> Result<Request, DecodeError> {
        serde_json::from_slice(json).map_err(|error| DecodeError { error, op: probe_op(json) })
    }

    /// Serialises the request as the payload of a message frame.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("requests always serialise"))
    }
}

object_only!(Request, "a request: a JSON object with an `op`");

/// The `op` of a message that is a JSON object with a string `op`, however
/// malformed the rest of it. Only called when decoding failed.
fn probe_op(json: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("op") {
            Some(serde_json::Value::String(op)) => Some(op),
            _ => None,
        },
        _ => None,
    }
}

/// Deserialises a `size` or `offset`: an integer from 0 to [`MAX_SIZE`].
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an integer from 0 to {MAX_SIZE}")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            if n > MAX_SIZE {
                return Err(E::invalid_value(serde::de::Unexpected::Unsigned(n), &self));
            }
            Ok(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
        }
    }
    deserializer.deserialize_u64(SizeVisitor)
}

/// Deserialises an optional `offset`: like [`size`], and `null` is 0 (the
/// same as leaving it out).
fn optional_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Size(u64);
    impl<'de> Deserialize<'de> for Size {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Size, D::Error> {
            size(deserializer).map(Size)
        }
    }
    Ok(Option::<Size>::deserialize(deserializer)?.map_or(0, |s| s.0))
}

/// Deserialises an optional flag: a boolean, and `null` is `false` (the
/// same as leaving it out).
fn optional_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

/// Deserialises the `key` of a `key_login`: a string of at most
/// [`crate::key_login::MAX_KEY`] bytes (parsed by the server).
fn key_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let key = String::deserialize(deserializer)?;
    if key.len() > crate::key_login::MAX_KEY {
        return Err(serde::de::Error::custom(format_args!("`key` is longer than {} bytes", crate::key_login::MAX_KEY)));
    }
    Ok(key)
}

/// Deserialises the optional `signature` of a `key_login`: absent, `null`,
/// or a string of at most [`crate::key_login::MAX_SIGNATURE`] bytes.
fn signature_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let signature = Option::<String>::deserialize(deserializer)?;
    if signature.as_ref().is_some_and(|s| s.len() > crate::key_login::MAX_SIGNATURE) {
        return Err(serde::de::Error::custom(format_args!(
            "`signature` is longer than {} bytes",
            crate::key_login::MAX_SIGNATURE
        )));
    }
    Ok(signature)
}

/// Whether `s` is a BLAKE3 hash as the protocol writes it: exactly 64 hex
/// digits, either case.
pub fn is_hash_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Deserialises the optional `hash` of a `put`: absent, `null`, or 64 hex
/// digits.
fn optional_hash<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let hash = Option::<String>::deserialize(deserializer)?;
    match hash {
        // The value is not echoed: it came from the network.
        Some(h) if !is_hash_hex(&h) => {
            Err(serde::de::Error::custom("`hash` must be a BLAKE3 hash: exactly 64 hex digits"))
        }
        other => Ok(other),
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
/// the message text. On the wire a code is a JSON string (snake_case); a
/// string this version does not know decodes as [`ErrorCode::Unknown`],
/// anything but a string does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// The path leads outside the user's home or is otherwise forbidden
    /// (a read-only store, a file the daemon's OS user may not write).
    PermissionDenied,
    /// Size or hash of transferred data does not match what was declared.
    Integrity,
    /// A frame or message exceeds a limit.
    TooLarge,
    /// The server is at its connection limit, or out of resources (file
    /// descriptors, ...) for the moment.
    Busy,
    /// Too many sessions for this user or from this address.
    TooManySessions,
    /// Too many failed logins: this address or user name is blocked for a while.
    TooManyAttempts,
    /// The upload does not fit in the user's quota.
    QuotaExceeded,
    /// The server's storage is full (disk full, or the object store refused
    /// for lack of space); not the user's quota (that is `quota_exceeded`).
    NoSpace,
    /// The storage backend can't be reached or answered with a transient
    /// failure: try again later.
    Unavailable,
    /// The peer was too slow (login deadline or idle timeout).
    Timeout,
    /// The sender abandoned a transfer.
    Aborted,
    /// The server is shutting down.
    ShuttingDown,
    /// An unexpected server-side failure (details are in the server log).
    Internal,
    /// A code this version does not know (sent by a newer peer).
    Unknown,
}

impl ErrorCode {
    /// Every code but [`ErrorCode::Unknown`].
    pub const KNOWN: [ErrorCode; 22] = [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::AuthRequired,
        ErrorCode::AuthFailed,
        ErrorCode::NotFound,
        ErrorCode::Exists,
        ErrorCode::NotADirectory,
        ErrorCode::IsADirectory,
        ErrorCode::NotEmpty,
        ErrorCode::PermissionDenied,
        ErrorCode::Integrity,
        ErrorCode::TooLarge,
        ErrorCode::Busy,
        ErrorCode::TooManySessions,
        ErrorCode::TooManyAttempts,
        ErrorCode::QuotaExceeded,
        ErrorCode::NoSpace,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Aborted,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
    ];

    /// The code with this wire name; [`ErrorCode::Unknown`] for a name this
    /// version does not know.
    pub fn from_wire(name: &str) -> ErrorCode {
        ErrorCode::KNOWN.into_iter().find(|c| c.as_str() == name).unwrap_or(ErrorCode::Unknown)
    }

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
            ErrorCode::NoSpace => "no_space",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Aborted => "aborted",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorCode, D::Error> {
        struct CodeVisitor;
        impl Visitor<'_> for CodeVisitor {
            type Value = ErrorCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error code (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ErrorCode, E> {
                Ok(ErrorCode::from_wire(name))
            }
        }
        deserializer.deserialize_str(CodeVisitor)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a failed reply, or the `error` of a trailer: a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

object_only!(ErrorBody, "an error: a JSON object with a `code` and a `message`");

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
    /// Revision of that version the server implements
    /// ([`crate::PROTOCOL_REVISION`] for this crate); 0 from a server that
    /// does not say (revision 0, protocol 1.0).
    #[serde(default)]
    pub revision: u32,
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
    /// The bandwidth cap on this user's uploads, bytes per second, when
    /// one applies (1.3): the lower of the user's own and the server's.
    /// The server enforces it; a client that sends no faster keeps its
    /// progress display true instead of filling socket buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_rate: Option<u64>,
    /// The cap on this user's downloads, bytes per second (1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_rate: Option<u64>,
}

/// Reply to a `key_login` without a signature (1.3): whether the server
/// would accept a signature by this key for this user. An unknown user
/// gets the same answer as a key that is not authorized: `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyQueryOk {
    /// Whether a signature by the key may log the user in.
    pub accepted: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Identifies one version of a remote file, for resuming a download: a
/// JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Version {
    /// Size in bytes, at most [`MAX_SIZE`].
    #[serde(deserialize_with = "size")]
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

object_only!(Version, "a file version: a JSON object with `size` and `mtime`");

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
    /// Of `used`, the bytes held by partial uploads kept for resume (1.2;
    /// absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partials: Option<u64>,
}

/// One partial upload kept for resume, in the reply to `partials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialEntry {
    /// The upload's target, from the home (`/dir/name`).
    pub path: String,
    /// The size of the whole file being uploaded.
    pub size: u64,
    /// Bytes the server holds (where a resumed `put` continues).
    pub held: u64,
    /// When bytes were last added, seconds since the Unix epoch.
    pub mtime: i64,
}

/// Reply to `discard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscardOk {
    /// The target of the partial thrown away, from the home.
    pub path: String,
    /// Bytes freed.
    pub freed: u64,
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
    /// The modification time the file was given, when the `put` asked for
    /// one and the server's storage keeps it (1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
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
/// sends `{"count": N}`. Only a JSON object decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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

object_only!(Trailer, "a trailer: a JSON object");

impl Trailer {
    /// Parses a trailer from the payload of an end frame.
    pub fn decode(json: &[u8]) -> Result<Trailer, DecodeError> {
        serde_json::from_slice(json).map_err(DecodeError::new)
    }

    /// Serialises the trailer as the payload of an end frame.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("trailers always serialise"))
    }
}

/// A JSON message that could not be parsed. The message names the field or
/// op that was wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid message: {error}")]
pub struct DecodeError {
    error: serde_json::Error,
    op: Option<String>,
}

impl DecodeError {
    fn new(error: serde_json::Error) -> DecodeError {
        DecodeError { error, op: None }
    }

    /// For a request that failed to decode: its `op`, if the message is a
    /// JSON object with a string `op` (whether or not that op exists, and
    /// however malformed the other fields). `None` for anything else, and
    /// for replies and trailers.
    ///
    /// A server uses it to tell a malformed `put` (whose data frames and end
    /// frame may follow, to be dropped) from any other bad request.
    pub fn op(&self) -> Option<&str> {
        self.op.as_deref()
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
    let value: serde_json::Value = serde_json::from_slice(json).map_err(DecodeError::new)?;
    let ok = value.get("ok").and_then(serde_json::Value::as_bool);
    match ok {
        Some(true) => serde_json::from_value(value).map(Ok).map_err(DecodeError::new),
        Some(false) => serde_json::from_value(value).map(Err).map_err(DecodeError::new),
        None => Err(DecodeError::new(serde::de::Error::custom("reply lacks a boolean `ok` field"))),
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
            Request::KeyLogin { user: "alice".into(), key: "ssh-ed25519 AAAA a@b".into(), signature: None },
            Request::KeyLogin {
                user: "alice".into(),
                key: "ssh-ed25519 AAAA".into(),
                signature: Some("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n".into()),
            },
            Request::Put {
                path: "a/b.txt".into(),
                size: 1 << 40,
                resume: false,
                hash: None,
                mtime: None,
                exclusive: false,
            },
            Request::Put {
                path: "a".into(),
                size: 9,
                resume: true,
                hash: Some("ab".repeat(32)),
                mtime: Some(-5),
                exclusive: true,
            },
            Request::Partials,
            Request::Discard { path: "a".into() },
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
        let req = Request::Put { path: "f".into(), size: 3, resume: false, hash: None, mtime: None, exclusive: false };
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
        roundtrip_ok(HelloOk { version: 1, revision: 1, server: "ftpd".into(), max_chunk: 1 << 20 });
        roundtrip_ok(LoginOk { user: "alice".into(), cwd: "/".into(), upload_rate: None, download_rate: None });
        roundtrip_ok(LoginOk { user: "a".into(), cwd: "/".into(), upload_rate: Some(1 << 23), download_rate: None });
        roundtrip_ok(PutOk { path: "/a".into(), size: 5, hash: "ab".repeat(32), mtime: Some(7) });
        roundtrip_ok(GetOk { size: 5, mtime: 1_700_000_000, offset: 2 });
        roundtrip_ok(PutReady { offset: 4, prefix_hash: "cd".repeat(32) });
        roundtrip_ok(DfOk { used: 10, quota: Some(100), available: Some(90), partials: Some(3) });
        roundtrip_ok(DfOk { used: 10, quota: None, available: None, partials: None });
        roundtrip_ok(PartialEntry { path: "/a".into(), size: 9, held: 4, mtime: 1 });
        roundtrip_ok(DiscardOk { path: "/a".into(), freed: 4 });
        let entry = Entry { name: "a".into(), kind: EntryKind::File, size: 5, mtime: -3 };
        roundtrip_ok(StatOk { entry: entry.clone(), hash: Some("00".repeat(32)) });
        roundtrip_ok(StatOk { entry: Entry { kind: EntryKind::Dir, ..entry }, hash: None });
        roundtrip_ok(WorkingDir { cwd: "/x".into() });
        for code in ErrorCode::KNOWN {
            let err = ErrorBody::new(code, "nope");
            let back = decode_reply::<Empty>(&encode_err(&err)).unwrap().unwrap_err();
            assert_eq!(back, err);
        }
    }

    #[test]
    fn a_hello_reply_without_revision_is_revision_0() {
        let old = br#"{"ok":true,"version":1,"server":"ftpd 0.1.0","max_chunk":1048576}"#;
        let hello = decode_reply::<HelloOk>(old).unwrap().unwrap();
        assert_eq!(hello, HelloOk { version: 1, revision: 0, server: "ftpd 0.1.0".into(), max_chunk: 1 << 20 });
        let new = HelloOk { version: 1, revision: crate::PROTOCOL_REVISION, server: "s".into(), max_chunk: 1 };
        assert!(String::from_utf8(encode_ok(&new).to_vec()).unwrap().contains(r#""revision":3"#));
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

    /// JSON values of every kind but an object.
    const NOT_OBJECTS: [&str; 7] = ["[]", "[1, 2]", r#""text""#, "5", "-1.5", "true", r#"["put", "a", 5]"#];

    #[test]
    fn only_json_objects_decode_as_requests() {
        for bad in NOT_OBJECTS {
            assert!(Request::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        // What serde's derive would otherwise take: the tag, then the fields in order.
        assert!(Request::decode(br#"["put", "a", 5, false, null]"#).is_err());
        assert!(Request::decode(br#"["pwd"]"#).is_err());
        assert!(Request::decode(br#"{"op":"pwd"}"#).is_ok());
    }

    #[test]
    fn since_must_be_a_json_object() {
        for bad in NOT_OBJECTS.iter().chain(&["[5, 3]", r#"[5, 3, "x"]"#]) {
            let json = format!(r#"{{"op":"get","path":"f","offset":2,"since":{bad}}}"#);
            assert!(Request::decode(json.as_bytes()).is_err(), "{json}");
        }
        let ok = Request::decode(br#"{"op":"get","path":"f","offset":2,"since":{"size":5,"mtime":3}}"#).unwrap();
        assert_eq!(ok, Request::Get { path: "f".into(), offset: 2, since: Some(Version { size: 5, mtime: 3 }) });
        // `null` is the same as leaving the optional field out.
        let ok = Request::decode(br#"{"op":"get","path":"f","since":null}"#).unwrap();
        assert_eq!(ok, Request::Get { path: "f".into(), offset: 0, since: None });
        // Directly, too.
        assert!(serde_json::from_str::<Version>("[5, 3]").is_err());
        assert_eq!(serde_json::from_str::<Version>(r#"{"size":5,"mtime":3}"#).unwrap(), Version { size: 5, mtime: 3 });
    }

    #[test]
    fn only_json_objects_decode_as_trailers() {
        let hash = "ab".repeat(32);
        for bad in NOT_OBJECTS
            .iter()
            .map(|s| s.to_string())
            .chain([format!(r#"["{hash}"]"#), format!(r#"["{hash}", 3, null]"#)])
        {
            assert!(Trailer::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Trailer::decode(b"{}").is_ok());
    }

    #[test]
    fn a_trailer_error_must_be_a_json_object_with_a_string_code() {
        for bad in NOT_OBJECTS.iter().chain(&[r#"["aborted", "m"]"#]) {
            let json = format!(r#"{{"error":{bad}}}"#);
            assert!(Trailer::decode(json.as_bytes()).is_err(), "{json}");
        }
        // The code is a string: not a number, an array, or the map form of
        // an enum variant serde would otherwise take.
        for bad in [r#"{"aborted":null}"#, "5", r#"["aborted"]"#, "true", "{}"] {
            let json = format!(r#"{{"error":{{"code":{bad},"message":"m"}}}}"#);
            assert!(Trailer::decode(json.as_bytes()).is_err(), "{json}");
            let reply = format!(r#"{{"ok":false,"code":{bad},"message":"m"}}"#);
            assert!(decode_reply::<Empty>(reply.as_bytes()).is_err(), "{reply}");
        }
        let t = Trailer::decode(br#"{"error":{"code":"aborted","message":"m"}}"#).unwrap();
        assert_eq!(t.error, Some(ErrorBody::new(ErrorCode::Aborted, "m")));
        assert!(serde_json::from_str::<ErrorBody>(r#"["aborted", "m"]"#).is_err());
    }

    fn put_with_size(size: &str) -> Result<Request, DecodeError> {
        Request::decode(format!(r#"{{"op":"put","path":"f","size":{size}}}"#).as_bytes())
    }

    #[test]
    fn sizes_and_offsets_are_integers_from_0_to_2_pow_63_minus_1() {
        let max = MAX_SIZE.to_string();
        assert_eq!(max, "9223372036854775807");
        for good in ["0", "1", &max] {
            assert!(put_with_size(good).is_ok(), "{good}");
            let get = format!(r#"{{"op":"get","path":"f","offset":{good}}}"#);
            assert!(Request::decode(get.as_bytes()).is_ok(), "{get}");
            let since = format!(r#"{{"op":"get","path":"f","since":{{"size":{good},"mtime":0}}}}"#);
            assert!(Request::decode(since.as_bytes()).is_ok(), "{since}");
        }
        let bad = [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "-9223372036854775808",
            "1.0",
            "1e3",
            "0.5",
            r#""5""#,
            "true",
            "[5]",
            r#"{"n":5}"#,
        ];
        for bad in bad {
            let err = put_with_size(bad).unwrap_err();
            assert_eq!(err.op(), Some("put"), "{bad}");
            let get = format!(r#"{{"op":"get","path":"f","offset":{bad}}}"#);
            assert!(Request::decode(get.as_bytes()).is_err(), "{get}");
            let since = format!(r#"{{"op":"get","path":"f","since":{{"size":{bad},"mtime":0}}}}"#);
            assert!(Request::decode(since.as_bytes()).is_err(), "{since}");
        }
        // A size is required; an offset is optional (`null` is 0).
        assert!(put_with_size("null").is_err());
        assert!(Request::decode(br#"{"op":"get","path":"f","since":{"size":null,"mtime":0}}"#).is_err());
        let msg = put_with_size("9223372036854775808").unwrap_err().to_string();
        assert!(msg.contains("9223372036854775807"), "the message names the range: {msg}");
    }

    #[test]
    fn mtime_is_a_signed_64_bit_integer() {
        for good in ["0", "-1", "9223372036854775807", "-9223372036854775808"] {
            let json = format!(r#"{{"op":"get","path":"f","since":{{"size":1,"mtime":{good}}}}}"#);
            assert!(Request::decode(json.as_bytes()).is_ok(), "{json}");
        }
        for bad in ["9223372036854775808", "-9223372036854775809", "1.5", r#""1""#, "null"] {
            let json = format!(r#"{{"op":"get","path":"f","since":{{"size":1,"mtime":{bad}}}}}"#);
            assert!(Request::decode(json.as_bytes()).is_err(), "{json}");
        }
    }

    #[test]
    fn a_put_hash_is_64_hex_digits_in_either_case() {
        let put =
            |hash: &str| Request::decode(format!(r#"{{"op":"put","path":"f","size":1,"hash":{hash}}}"#).as_bytes());
        let lower = "0123456789abcdef".repeat(4);
        let upper = lower.to_uppercase();
        let mixed = "aBcDeF0123456789".repeat(4);
        for good in [&lower, &upper, &mixed] {
            match put(&format!(r#""{good}""#)).unwrap() {
                Request::Put { hash, .. } => assert_eq!(hash.as_deref(), Some(good.as_str())),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(put("null").unwrap(), Request::Put { hash: None, .. }));
        let bad = [
            format!(r#""{}""#, &lower[..63]),
            format!(r#""{lower}0""#),
            format!(r#""{}g""#, &lower[..63]),
            format!(r#""{}""#, "é".repeat(32)),
            format!(r#"" {}""#, &lower[..63]),
            r#""""#.to_owned(),
            "5".to_owned(),
            format!(r#"["{lower}"]"#),
            r#"{"hash":"x"}"#.to_owned(),
        ];
        for bad in bad {
            let err = put(&bad).unwrap_err();
            assert_eq!(err.op(), Some("put"), "{bad}");
        }
        assert!(is_hash_hex(&lower) && !is_hash_hex(&lower[1..]));
    }

    #[test]
    fn a_decode_error_names_the_op_of_an_object_with_a_string_op() {
        let cases: [(&[u8], Option<&str>); 16] = [
            (br#"{"op":"put","path":"f","size":"5"}"#, Some("put")),
            (br#"{"op":"put","path":"f","size":-5}"#, Some("put")),
            (br#"{"op":"put","path":"f"}"#, Some("put")),
            (br#"{"op":"put","path":5,"size":1}"#, Some("put")),
            (br#"{"op":"put","path":"f","size":1,"resume":"x"}"#, Some("put")),
            (br#"{"size":1,"path":"f","op":"put","hash":"nope"}"#, Some("put")),
            (br#"{"op":"get","path":"f","since":[1,2]}"#, Some("get")),
            (br#"{"op":"launch_missiles"}"#, Some("launch_missiles")),
            (br#"{"op":5,"path":"f"}"#, None),
            (br#"{"op":null}"#, None),
            (br#"{"path":"f","size":1}"#, None),
            (br#"["put","f",1]"#, None),
            (br#""put""#, None),
            (br#"{"op":"put","path":"f","size":1"#, None),
            (br#"{"op":"put"} trailing"#, None),
            (b"\xff{", None),
        ];
        for (json, op) in cases {
            let err = Request::decode(json).unwrap_err();
            assert_eq!(err.op(), op, "{}", String::from_utf8_lossy(json));
        }
        // Replies and trailers have no op.
        assert_eq!(Trailer::decode(br#"{"op":"put","hash":5}"#).unwrap_err().op(), None);
        assert_eq!(decode_reply::<Empty>(br#"{"op":"put"}"#).unwrap_err().op(), None);
    }

    #[test]
    fn null_is_the_same_as_an_absent_optional_field() {
        let put = Request::decode(br#"{"op":"put","path":"f","size":1,"resume":null,"hash":null}"#).unwrap();
        assert_eq!(
            put,
            Request::Put { path: "f".into(), size: 1, resume: false, hash: None, mtime: None, exclusive: false }
        );
        let get = Request::decode(br#"{"op":"get","path":"f","offset":null,"since":null}"#).unwrap();
        assert_eq!(get, Request::Get { path: "f".into(), offset: 0, since: None });
        let hello = Request::decode(br#"{"op":"hello","version":1,"client":null}"#).unwrap();
        assert_eq!(hello, Request::Hello { version: 1, client: None });
        assert_eq!(Request::decode(br#"{"op":"ls","path":null}"#).unwrap(), Request::Ls { path: None });
        assert_eq!(Request::decode(br#"{"op":"cd","path":null}"#).unwrap(), Request::Cd { path: None });
        let t = Trailer::decode(br#"{"hash":null,"count":null,"error":null}"#).unwrap();
        assert_eq!(t, Trailer::default());
        // Required fields are not optional.
        assert!(Request::decode(br#"{"op":"put","path":"f","size":null}"#).is_err());
        assert!(Request::decode(br#"{"op":"stat","path":null}"#).is_err());
        assert!(Request::decode(br#"{"op":"put","path":"f","size":1,"resume":"true"}"#).is_err());
        assert!(Request::decode(br#"{"op":"put","path":"f","size":1,"resume":0}"#).is_err());
    }

    #[test]
    fn every_error_code_has_a_stable_wire_name() {
        for code in ErrorCode::KNOWN {
            let wire = serde_json::to_string(&code).unwrap();
            assert_eq!(wire, format!(r#""{}""#, code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
            assert_eq!(serde_json::from_str::<ErrorCode>(&wire).unwrap(), code);
        }
        assert_eq!(ErrorCode::NoSpace.as_str(), "no_space");
        assert_eq!(ErrorCode::Unavailable.as_str(), "unavailable");
        let mut names: Vec<_> = ErrorCode::KNOWN.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::KNOWN.len());
        assert!(!names.contains(&"unknown"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let req = Request::decode(br#"{"op":"rm","path":"a","future":true}"#).unwrap();
        assert_eq!(req, Request::Rm { path: "a".into() });
    }

    #[test]
    fn key_login_fields_are_bounded() {
        let long_key = format!(r#"{{"op":"key_login","user":"u","key":"{}"}}"#, "A".repeat(3000));
        let err = Request::decode(long_key.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`key` is longer"), "{err}");
        assert_eq!(err.op(), Some("key_login"));
        let long_sig = format!(r#"{{"op":"key_login","user":"u","key":"k","signature":"{}"}}"#, "A".repeat(4000));
        assert!(Request::decode(long_sig.as_bytes()).unwrap_err().to_string().contains("`signature` is longer"));
        let query = Request::decode(br#"{"op":"key_login","user":"u","key":"k","signature":null}"#).unwrap();
        assert_eq!(query, Request::KeyLogin { user: "u".into(), key: "k".into(), signature: None });
        assert!(Request::decode(br#"{"op":"key_login","user":"u"}"#).is_err(), "key is required");
        assert!(Request::decode(br#"{"op":"key_login","user":"u","key":5}"#).is_err());
        roundtrip_ok(KeyQueryOk { accepted: true });
    }

    #[test]
    fn passwords_never_print() {
        let req = Request::Login { user: "u".into(), password: Password("hunter2".into()) };
        assert!(!format!("{req:?}").contains("hunter2"));
    }
}
