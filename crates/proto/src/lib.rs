//! The wire protocol shared by `ftpd` and `ftpc`.
//!
//! It turns bytes into [`Frame`]s and frames into typed [`Request`]s and
//! responses, and back; [`bulk`] moves file bytes between a stream and
//! caller-owned buffers through data frames (the disk side, reading and
//! writing files, is the `ftp-disk` crate). Every length is bounded before
//! anything is allocated. `PROTOCOL.md` at the top of the repository is the
//! prose specification; this crate is its one implementation, used by both
//! ends. [`size`] is how both ends read and show sizes to people (quotas,
//! listings, refusals). [`key_login`] fixes what a public-key login signs.
//!
//! Of tokio it enables `io-util` only (tokio-util's codec adds `sync`): it
//! reads and writes the streams it is handed and opens none itself, so it
//! brings in neither `net` nor `fs` nor a runtime (its tests take `rt` and
//! `macros` as dev-dependencies). `cargo tree -p ftp-proto -e features -i
//! tokio` shows what it enables.

pub mod bulk;
mod codec;
pub mod key_login;
mod message;
pub mod pace;
mod path;
pub mod size;

pub use codec::{Frame, FrameCodec, FrameError, Tag};
pub use message::{
    DecodeError, DfOk, DiscardOk, Empty, Entry, EntryKind, ErrorBody, ErrorCode, GetOk, HelloOk, KeyQueryOk, LoginOk,
    MAX_SIZE, PartialEntry, Password, PutOk, PutReady, Request, StatOk, Trailer, Version, WorkingDir, decode_reply,
    encode_err, encode_ok, is_hash_hex,
};
pub use path::{PathError, RemotePath, validate_name};

/// The SHA-256 fingerprint of a certificate (its DER bytes), as `ftpd`
/// logs and prints it and `ftpc` pins it: `sha256:` and 64 lowercase hex
/// digits.
pub fn cert_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(der);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Protocol version spoken by this crate. A peer announcing another version
/// is refused with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Revision of [`PROTOCOL_VERSION`] this crate implements: `PROTOCOL.md`
/// "version 1, revision 3" (1.3: public-key login, see [`key_login`]). A revision changes nothing a client of an
/// earlier revision of the same version sends or relies on; a server
/// announces its revision in its hello reply (see `PROTOCOL.md` §8).
pub const PROTOCOL_REVISION: u32 = 3;

/// Largest frame payload (tag byte included) accepted after login: one
/// maximal data chunk plus its tag.
pub const MAX_FRAME: usize = MAX_CHUNK + 1;

/// Largest frame payload accepted before login succeeds. Hello and login
/// requests are tiny; anything bigger is hostile.
pub const MAX_FRAME_BEFORE_LOGIN: usize = 4 * 1024;

/// Largest JSON message (request, response or trailer) in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Largest data chunk a peer may send.
pub const MAX_CHUNK: usize = 1024 * 1024;

/// Chunk size our own senders use: large enough to amortise per-frame costs,
/// small enough to keep memory per transfer constant and modest.
pub const DEFAULT_CHUNK: usize = 1024 * 1024;

/// Longest path (in bytes) a request may carry.
pub const MAX_PATH: usize = 4096;

/// Longest single path component (file or directory name) in bytes.
pub const MAX_NAME: usize = 255;

/// Most components a path may have.
pub const MAX_DEPTH: usize = 64;

/// Longest user name in bytes.
pub const MAX_USER: usize = 32;

/// Longest password in bytes.
pub const MAX_PASSWORD: usize = 1024;

/// Number of directory entries the server packs into one listing frame at
/// most; the frame size limit applies as well.
pub const LIST_BATCH: usize = 256;

#[cfg(test)]
mod tests {
    #[test]
    fn cert_fingerprint_is_sha256_in_lowercase_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            super::cert_fingerprint(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
