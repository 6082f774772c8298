//! `ftpd`: a multi-user file transfer daemon.
//!
//! A request enters in [`server::run`] (one task per connection, TLS from
//! [`tls`]), is framed and checked in `session` (login gate with
//! [`throttle`], path validation), and its bytes land through [`home`]
//! (capability-confined filesystem access, partials, atomic commits) by way
//! of [`transfer`] (pipelined small uploads are written together by
//! `staged`); [`accounts`] keeps session counts and quota usage. The
//! binary in `main.rs` only parses flags, loads configuration, handles
//! signals and calls [`server::run`].

pub mod accounts;
pub mod admin;
pub mod config;
mod errors;
pub mod home;
pub mod metrics;
pub mod objstore;
mod objtransfer;
pub mod server;
mod session;
mod staged;
mod storage;
pub mod systemd;
pub mod throttle;
pub mod tls;
pub mod transfer;
pub mod users;

pub use config::Config;
pub use server::run;
