//! `ftpd`: a multi-user file transfer daemon.
//!
//! Layers, each importing only the ones below it:
//!
//! - [`server`]: where a connection enters ([`server::run`]: the accept
//!   loop, TLS from [`tls`], limits from [`limits`] and [`throttle`]) and
//!   the work beside the sessions; state shared by all of them lives in
//!   `shared`.
//! - `session`: ftpd's own wire protocol, one connection at a time: the
//!   login gate, the request loop, one upload loop and one download loop.
//!   (Further doors, such as SFTP or HTTP, sit beside it.)
//! - `transfer`: what every door shares: quotas reserved and settled,
//!   uploads verified before they appear and taken over when stalled,
//!   the request log line and metrics.
//! - `storage`: where bytes land: the data root on this machine or an
//!   S3-compatible bucket, behind one trait.
//!
//! The binary in `main.rs` only parses flags, loads configuration, handles
//! signals and calls [`server::run`].

pub mod access;
pub mod admin;
pub mod config;
pub mod keys;
pub mod limits;
pub mod metrics;
mod rate;
pub mod server;
mod session;
mod shared;
mod storage;
pub mod systemd;
pub mod throttle;
pub mod tls;
mod transfer;
pub mod usage;
pub mod users;

pub use config::Config;
pub use server::run;
pub use storage::S3Config;
