//! The client profile: default server and user, so a plain `ftpc put FILE`
//! works, and named servers, as ssh's `Host` blocks.
//!
//! Read from `$FTPC_CONFIG`, else `<config dir>/ftpc/config.toml`
//! (`~/.config/ftpc/config.toml` on Linux):
//!
//! ```toml
//! server = "files.example.com"        # [USER@]HOST[:PORT], or a name below
//! user = "alice"
//! identity = "~/.ssh/id_work"          # key for key login (as --identity)
//!
//! [hosts.work]                        # `ftpc -s work ls`
//! server = "files.example.com:2200"
//! user = "a.smith"
//! ca = "~/certs/work-ca.pem"          # or no_tls = true; known_hosts = "FILE"
//! ```
//!
//! Flags and `FTPC_*` variables win over the profile. Passwords are never
//! read from the profile: use `FTPC_PASSWORD` or the prompt.

use crate::address::ServerAddr;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Values from the profile file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `[USER@]HOST[:PORT]` of the daemon, or the name of a host below.
    pub server: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// OpenSSH private key file for key login, as `--identity`.
    pub identity: Option<PathBuf>,
    /// Named servers (`[hosts.NAME]`), used by `-s NAME`.
    #[serde(default)]
    pub hosts: BTreeMap<String, Host>,
}

/// A named server: what `-s NAME` stands for.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `[USER@]HOST[:PORT]`.
    pub server: String,
    /// User name (wins over a user in `server`).
    pub user: Option<String>,
    /// Trust only certificates this CA (PEM file) signed, as `--ca`.
    pub ca: Option<PathBuf>,
    /// Plaintext, as `--no-tls`.
    #[serde(default)]
    pub no_tls: bool,
    /// The known-hosts file for this server.
    pub known_hosts: Option<PathBuf>,
    /// OpenSSH private key file for key login to this server, as `--identity`.
    pub identity: Option<PathBuf>,
}

/// Where `-s TEXT` leads: an address, and the named host it came from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address to connect to. Its `user` is the one typed with the
    /// server (`-s alice@files`), which wins over every other.
    pub addr: ServerAddr,
    /// The profile's `[hosts.NAME]` block, when TEXT named one.
    pub host: Option<Host>,
}

impl Target {
    /// The user the host block gives (its `user`, else the one in its `server`).
    pub fn host_user(&self) -> Option<String> {
        let host = self.host.as_ref()?;
        host.user.clone().or_else(|| ServerAddr::parse(&host.server).ok()?.user)
    }
}

/// Where the profile is looked for.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FTPC_CONFIG") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("ftpc").join("config.toml"))
}

impl Profile {
    /// Loads the profile; a missing file is an empty profile. Paths in it
    /// may start with `~/`; relative ones are taken from the profile's
    /// directory.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let invalid = |e: &dyn std::fmt::Display| format!("invalid profile {}: {e}", path.display());
        let mut profile: Profile = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| invalid(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profile::default()),
            Err(e) => return Err(format!("cannot read profile {}: {e}", path.display())),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, host) in &mut profile.hosts {
            ServerAddr::parse(&host.server).map_err(|e| invalid(&format!("hosts.{name}.server: {e}")))?;
            if host.no_tls && host.ca.is_some() {
                return Err(invalid(&format!("hosts.{name}: `ca` and `no_tls` exclude each other")));
            }
            for file in [&mut host.ca, &mut host.known_hosts, &mut host.identity].into_iter().flatten() {
                *file = resolve(file, base);
            }
        }
        if let Some(file) = &mut profile.identity {
            *file = resolve(file, base);
        }
        if let Some(server) = &profile.server {
            profile.target(server).map_err(|e| invalid(&format!("server: {e}")))?;
        }
        Ok(profile)
    }

    /// Resolves what was given as the server: `[USER@]NAME` of a host
    /// block, else `[USER@]HOST[:PORT]`.
    pub fn target(&self, text: &str) -> Result<Target, String> {
        let typed = ServerAddr::parse(text)?;
        let name = text.trim().rsplit_once('@').map_or(text.trim(), |(_, name)| name);
        match self.hosts.get(name) {
            Some(host) => {
                let mut addr = ServerAddr::parse(&host.server)?;
                addr.user = typed.user;
                Ok(Target { addr, host: Some(host.clone()) })
            }
            None => Ok(Target { addr: typed, host: None }),
        }
    }
}

/// `~/x` from the home directory, a relative path from `base`.
fn resolve(path: &Path, base: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => base.join(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Result<Profile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        Profile::load(&path)
    }

    #[test]
    fn a_host_block_names_a_server() {
        let p = profile("[hosts.work]\nserver = \"bob@files.example.com\"\nca = \"ca.pem\"\n").unwrap();
        let t = p.target("work").unwrap();
        assert_eq!(t.addr.to_string(), "files.example.com:2121");
        assert_eq!(t.addr.user, None, "the block's user is not a typed one");
        assert_eq!(t.host_user().as_deref(), Some("bob"));
        assert!(t.host.unwrap().ca.unwrap().is_absolute(), "relative to the profile");
        // A user typed with the name wins.
        assert_eq!(p.target("carol@work").unwrap().addr.user.as_deref(), Some("carol"));
        // Anything else is an address.
        assert_eq!(p.target("elsewhere").unwrap().addr.to_string(), "elsewhere:2121");
        assert!(p.target("elsewhere").unwrap().host.is_none());
    }

    #[test]
    fn bad_host_blocks_name_the_key() {
        let err = profile("[hosts.work]\nserver = \"files:x\"\n").unwrap_err();
        assert!(err.contains("hosts.work.server"), "{err}");
        let err = profile("[hosts.work]\nserver = \"f\"\nno_tls = true\nca = \"c\"\n").unwrap_err();
        assert!(err.contains("hosts.work") && err.contains("no_tls"), "{err}");
        let err = profile("[hosts.work]\nsever = \"f\"\n").unwrap_err();
        assert!(err.contains("sever"), "{err}");
        let err = profile("server = \"[::1\"\n").unwrap_err();
        assert!(err.contains("server:"), "{err}");
    }
}
