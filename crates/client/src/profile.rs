//! The client profile: default server and user, so a plain `ftpc put FILE`
//! works.
//!
//! Read from `$FTPC_CONFIG`, else `<config dir>/ftpc/config.toml`
//! (`~/.config/ftpc/config.toml` on Linux):
//!
//! ```toml
//! server = "files.example.com:2121"
//! user = "alice"
//! ```
//!
//! Flags and `FTPC_*` variables win over the profile. Passwords are never
//! read from the profile: use `FTPC_PASSWORD` or the prompt.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Values from the profile file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `HOST:PORT` of the daemon.
    pub server: Option<String>,
    /// User name.
    pub user: Option<String>,
}

/// Where the profile is looked for.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FTPC_CONFIG") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("ftpc").join("config.toml"))
}

impl Profile {
    /// Loads the profile; a missing file is an empty profile.
    pub fn load(path: &Path) -> Result<Profile, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("invalid profile {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Profile::default()),
            Err(e) => Err(format!("cannot read profile {}: {e}", path.display())),
        }
    }
}
