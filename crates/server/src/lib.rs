//! `ftpd`: a multi-user file transfer daemon.
//!
//! A request enters in [`server::run`] (one task per connection), is framed
//! and checked in `session` (login gate, path validation), and its bytes
//! land through `home` (capability-confined filesystem access, atomic
//! uploads). The binary in `main.rs` only parses flags, loads configuration
//! and calls [`server::run`].

pub mod accounts;
pub mod config;
mod errors;
pub mod home;
pub mod server;
mod session;
pub mod throttle;
pub mod tls;
pub mod transfer;
pub mod users;

pub use config::Config;
pub use server::run;
