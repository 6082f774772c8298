//! Daemon configuration: one layering, documented once.
//!
//! Built-in defaults, then the TOML file (`--config`), then `FTPD_*`
//! environment variables, then command-line flags. Clap reads each flag and
//! its environment variable together (a flag wins over its variable), and
//! [`Config::build`] lays the result over the file and the defaults.
//! `config/ftpd.toml` in the repository documents every key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The effective daemon configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Data root: user homes live in `<root>/<user>/`.
    pub root: PathBuf,
    /// The users file (argon2id hashes).
    pub users: PathBuf,
    /// Most connections served at once; more are refused with `busy`.
    pub max_connections: usize,
    /// Time a new connection has to complete hello and login.
    pub login_timeout: Duration,
    /// Time a logged-in session may wait between frames.
    pub idle_timeout: Duration,
    /// Time running transfers get to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// fsync uploaded files and their directory before reporting success.
    pub fsync: bool,
    /// Most sessions one user may have open at once.
    pub max_sessions_per_user: usize,
    /// Most sessions (logged in or not) from one IP address.
    pub max_sessions_per_ip: usize,
    /// Partial uploads not written to for this long are removed.
    pub partial_max_age: Duration,
    /// Serve TLS (the default); plaintext only when turned off explicitly.
    pub tls: bool,
    /// The operator's certificate chain (PEM); a self-signed one is
    /// generated under the data root when absent.
    pub tls_cert: Option<PathBuf>,
    /// The operator's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Time a new connection has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Most connections waiting to log in at once.
    pub max_unauthenticated: usize,
    /// Most connections waiting to log in from one address.
    pub max_unauthenticated_per_ip: usize,
    /// Failed logins from one address before it is blocked.
    pub login_block_after: u32,
    /// How long a block lasts (and how long failures are remembered).
    pub login_block: Duration,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`); off when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// Where the files live: `None` for the data root's filesystem, or an
    /// S3-compatible bucket.
    pub s3: Option<crate::storage::S3Config>,
}

/// Default listening address: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2121";
/// Default data root, relative to the working directory.
pub const DEFAULT_ROOT: &str = "ftpd-data";
/// Name of the daemon's private directory inside the data root (TLS
/// identity, partial uploads, trusted addresses). User names can't contain
/// a dot, so it never collides with a home.
pub const STATE_DIR: &str = ".ftpd";
/// Name of the users file inside the data root when `users` is not set.
pub const DEFAULT_USERS_FILE: &str = "users.toml";

impl Default for Config {
    fn default() -> Config {
        let root = PathBuf::from(DEFAULT_ROOT);
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            users: root.join(DEFAULT_USERS_FILE),
            root,
            max_connections: 1024,
            login_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            log_format: LogFormat::Text,
            fsync: true,
            max_sessions_per_user: 32,
            max_sessions_per_ip: 128,
            partial_max_age: Duration::from_secs(24 * 3600),
            tls: true,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout: Duration::from_secs(10),
            max_unauthenticated: 256,
            max_unauthenticated_per_ip: 16,
            login_block_after: 10,
            login_block: Duration::from_secs(300),
            admin_listen: None,
            s3: None,
        }
    }
}

/// The keys of the TOML file; all optional. Unknown keys are an error, so
/// a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<String>,
    root: Option<PathBuf>,
    users: Option<PathBuf>,
    max_connections: Option<usize>,
    login_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    log_format: Option<LogFormat>,
    fsync: Option<bool>,
    max_sessions_per_user: Option<usize>,
    max_sessions_per_ip: Option<usize>,
    partial_max_age_secs: Option<u64>,
    tls: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_handshake_timeout_secs: Option<u64>,
    max_unauthenticated: Option<usize>,
    max_unauthenticated_per_ip: Option<usize>,
    login_block_after: Option<u32>,
    login_block_secs: Option<u64>,
    admin_listen: Option<String>,
    storage: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_bucket: Option<String>,
    s3_prefix: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
}

/// Values from flags or `FTPD_*` variables (clap merges the two). `None`
/// means "not given", so the file or default applies.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 0.0.0.0:2121 (port 0 picks a free port).
    #[arg(long, env = "FTPD_LISTEN")]
    pub listen: Option<String>,
    /// Data root; user homes are ROOT/USER/.
    #[arg(long, env = "FTPD_ROOT")]
    pub root: Option<PathBuf>,
    /// Users file [default: ROOT/users.toml].
    #[arg(long, env = "FTPD_USERS")]
    pub users: Option<PathBuf>,
    /// Most simultaneous connections.
    #[arg(long, env = "FTPD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Seconds a new connection has to log in.
    #[arg(long, env = "FTPD_LOGIN_TIMEOUT_SECS")]
    pub login_timeout_secs: Option<u64>,
    /// Seconds a session may stay silent.
    #[arg(long, env = "FTPD_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds running transfers get to finish on shutdown.
    #[arg(long, env = "FTPD_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Log format.
    #[arg(long, env = "FTPD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// fsync each upload before acknowledging it (true/false).
    #[arg(long, env = "FTPD_FSYNC", value_parser = clap::builder::BoolishValueParser::new())]
    pub fsync: Option<bool>,
    /// Most sessions one user may have open at once.
    #[arg(long, env = "FTPD_MAX_SESSIONS_PER_USER")]
    pub max_sessions_per_user: Option<usize>,
    /// Most sessions from one IP address.
    #[arg(long, env = "FTPD_MAX_SESSIONS_PER_IP")]
    pub max_sessions_per_ip: Option<usize>,
    /// Seconds after which an abandoned partial upload is removed.
    #[arg(long, env = "FTPD_PARTIAL_MAX_AGE_SECS")]
    pub partial_max_age_secs: Option<u64>,
    /// Serve TLS (true/false; default true).
    #[arg(long, env = "FTPD_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls: Option<bool>,
    /// Serve plaintext: the same as --tls false.
    #[arg(long, conflicts_with = "tls")]
    pub no_tls: bool,
    /// Certificate chain (PEM) to present instead of the self-signed one.
    #[arg(long, env = "FTPD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "FTPD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a new connection has to complete the TLS handshake.
    #[arg(long, env = "FTPD_TLS_HANDSHAKE_TIMEOUT_SECS")]
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Most connections waiting to log in at once.
    #[arg(long, env = "FTPD_MAX_UNAUTHENTICATED")]
    pub max_unauthenticated: Option<usize>,
    /// Most connections waiting to log in from one address.
    #[arg(long, env = "FTPD_MAX_UNAUTHENTICATED_PER_IP")]
    pub max_unauthenticated_per_ip: Option<usize>,
    /// Failed logins from one address before it is blocked for a while.
    #[arg(long, env = "FTPD_LOGIN_BLOCK_AFTER")]
    pub login_block_after: Option<u32>,
    /// Seconds a blocked address (or user name) stays blocked.
    #[arg(long, env = "FTPD_LOGIN_BLOCK_SECS")]
    pub login_block_secs: Option<u64>,
    /// Admin HTTP listener for /metrics, /healthz and /readyz, e.g.
    /// 127.0.0.1:9121 [default: off].
    #[arg(long, env = "FTPD_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Where files live: `filesystem` (under the data root) or `s3`.
    #[arg(long, env = "FTPD_STORAGE")]
    pub storage: Option<String>,
    /// S3 endpoint URL [default: AWS].
    #[arg(long, env = "FTPD_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "FTPD_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 bucket.
    #[arg(long, env = "FTPD_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix in the bucket [default: none].
    #[arg(long, env = "FTPD_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "FTPD_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the variable: flags show in `ps`).
    #[arg(long, env = "FTPD_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

/// An invalid configuration, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, naming the key.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }
}

impl Config {
    /// Lays the file and the overrides over the defaults and validates.
    pub fn build(file: FileConfig, over: Overrides) -> Result<Config, ConfigError> {
        let d = Config::default();
        let listen = over.listen.or(file.listen);
        let listen = match listen {
            Some(s) => s.parse().map_err(|e| ConfigError::Invalid {
                key: "listen",
                message: format!("{s:?} is not an address like 127.0.0.1:2121 ({e})"),
            })?,
            None => d.listen,
        };
        let admin_listen = match over.admin_listen.or(file.admin_listen) {
            None => None,
            Some(s) if s.is_empty() || s == "off" => None,
            Some(s) => Some(s.parse().map_err(|e| ConfigError::Invalid {
                key: "admin_listen",
                message: format!("{s:?} is not an address like 127.0.0.1:9121 ({e})"),
            })?),
        };
        let s3 = match over.storage.or(file.storage).as_deref() {
            None | Some("filesystem") | Some("fs") => None,
            Some("s3") => {
                let need = |key: &'static str, v: Option<String>| {
                    v.filter(|v| !v.is_empty())
                        .ok_or(ConfigError::Invalid { key, message: "required with storage = \"s3\"".into() })
                };
                Some(crate::storage::S3Config {
                    endpoint: over.s3_endpoint.or(file.s3_endpoint),
                    region: over.s3_region.or(file.s3_region).unwrap_or_else(|| "us-east-1".into()),
                    bucket: need("s3_bucket", over.s3_bucket.or(file.s3_bucket))?,
                    prefix: over.s3_prefix.or(file.s3_prefix).unwrap_or_default(),
                    access_key_id: need("s3_access_key_id", over.s3_access_key_id.or(file.s3_access_key_id))?,
                    secret_access_key: need(
                        "s3_secret_access_key",
                        over.s3_secret_access_key.or(file.s3_secret_access_key),
                    )?,
                })
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "storage",
                    message: format!("{other:?}: expected \"filesystem\" or \"s3\""),
                });
            }
        };
        let root = over.root.or(file.root).unwrap_or(d.root);
        let users = over.users.or(file.users).unwrap_or_else(|| root.join(DEFAULT_USERS_FILE));
        let secs = |key: &'static str, v: Option<u64>, default: Duration| match v {
            Some(0) => Err(ConfigError::Invalid { key, message: "must be at least 1 second".into() }),
            Some(n) => Ok(Duration::from_secs(n)),
            None => Ok(default),
        };
        let at_least_one = |key: &'static str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(ConfigError::Invalid { key, message: "must be at least 1".into() }),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let max_connections =
            at_least_one("max_connections", over.max_connections.or(file.max_connections), d.max_connections)?;
        let max_sessions_per_user = at_least_one(
            "max_sessions_per_user",
            over.max_sessions_per_user.or(file.max_sessions_per_user),
            d.max_sessions_per_user,
        )?;
        let max_sessions_per_ip = at_least_one(
            "max_sessions_per_ip",
            over.max_sessions_per_ip.or(file.max_sessions_per_ip),
            d.max_sessions_per_ip,
        )?;
        let tls = if over.no_tls { Some(false) } else { over.tls }.or(file.tls).unwrap_or(d.tls);
        let tls_cert = over.tls_cert.or(file.tls_cert);
        let tls_key = over.tls_key.or(file.tls_key);
        if tls_cert.is_some() != tls_key.is_some() {
            let key = if tls_cert.is_some() { "tls_key" } else { "tls_cert" };
            return Err(ConfigError::Invalid { key, message: "tls_cert and tls_key go together".into() });
        }
        if root.as_os_str().is_empty() {
            return Err(ConfigError::Invalid { key: "root", message: "must not be empty".into() });
        }
        Ok(Config {
            listen,
            admin_listen,
            s3,
            root,
            users,
            max_connections,
            login_timeout: secs(
                "login_timeout_secs",
                over.login_timeout_secs.or(file.login_timeout_secs),
                d.login_timeout,
            )?,
            idle_timeout: secs("idle_timeout_secs", over.idle_timeout_secs.or(file.idle_timeout_secs), d.idle_timeout)?,
            shutdown_grace: secs(
                "shutdown_grace_secs",
                over.shutdown_grace_secs.or(file.shutdown_grace_secs),
                d.shutdown_grace,
            )?,
            log_format: over.log_format.or(file.log_format).unwrap_or(d.log_format),
            fsync: over.fsync.or(file.fsync).unwrap_or(d.fsync),
            max_sessions_per_user,
            max_sessions_per_ip,
            tls,
            tls_cert,
            tls_key,
            max_unauthenticated: at_least_one(
                "max_unauthenticated",
                over.max_unauthenticated.or(file.max_unauthenticated),
                d.max_unauthenticated,
            )?,
            max_unauthenticated_per_ip: at_least_one(
                "max_unauthenticated_per_ip",
                over.max_unauthenticated_per_ip.or(file.max_unauthenticated_per_ip),
                d.max_unauthenticated_per_ip,
            )?,
            login_block_after: at_least_one(
                "login_block_after",
                over.login_block_after.or(file.login_block_after).map(|n| n as usize),
                d.login_block_after as usize,
            )? as u32,
            login_block: secs("login_block_secs", over.login_block_secs.or(file.login_block_secs), d.login_block)?,
            tls_handshake_timeout: secs(
                "tls_handshake_timeout_secs",
                over.tls_handshake_timeout_secs.or(file.tls_handshake_timeout_secs),
                d.tls_handshake_timeout,
            )?,
            partial_max_age: secs(
                "partial_max_age_secs",
                over.partial_max_age_secs.or(file.partial_max_age_secs),
                d.partial_max_age,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_loopback_and_local() {
        let c = Config::build(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.users, PathBuf::from("ftpd-data/users.toml"));
        assert!(c.fsync);
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let f = file("listen = \"127.0.0.1:9000\"\nroot = \"/srv\"\nfsync = false\nidle_timeout_secs = 7");
        let over = Overrides { listen: Some("127.0.0.1:0".into()), fsync: Some(true), ..Overrides::default() };
        let c = Config::build(f, over).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.root, PathBuf::from("/srv"));
        assert_eq!(c.users, PathBuf::from("/srv/users.toml"));
        assert!(c.fsync, "a flag can turn back on what the file turned off");
        assert_eq!(c.idle_timeout, Duration::from_secs(7));
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::build(file("listen = \"nowhere\""), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
        let err = Config::build(file("idle_timeout_secs = 0"), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("idle_timeout_secs"), "{err}");
        let err = toml::from_str::<FileConfig>("lisen = \"x\"").unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let err = toml::from_str::<FileConfig>("max_connections = \"many\"").unwrap_err();
        assert!(err.to_string().contains("max_connections"), "{err}");
    }
}
