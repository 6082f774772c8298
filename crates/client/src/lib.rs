//! `ftpc` as a library: a typed client for the ftpd protocol.
//!
//! [`Client`] owns one connection (any `AsyncRead + AsyncWrite` stream) and
//! offers one method per request. Transfers stream with constant memory:
//! disk I/O and hashing run on a blocking thread behind a small channel.
//! Nothing the server sends is trusted: sizes, frame counts and hashes are
//! checked, and a download is renamed into place only once verified.

pub mod address;
pub mod agent;
mod client;
pub mod display;
pub mod keys;
pub mod known_hosts;
pub mod profile;
pub mod tls;
pub mod tree;

pub use client::{
    Client, ClientError, GetOptions, GetSummary, Io, Progress, PutOptions, PutSummary, RESUME_THRESHOLD, Transport,
};
