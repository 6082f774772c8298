//! Daemon configuration: each key defined once, read from four layers.
//!
//! A key is one field of [`Keys`]. Its name is the key in the TOML file,
//! the flag (`idle_timeout_secs` gives `--idle-timeout-secs`) and the
//! environment variable (`FTPD_IDLE_TIMEOUT_SECS`); its doc comment is the
//! flag's help, its type says which values it takes, and its
//! `default_value` is the built-in default.
//!
//! The layers, lowest first: built-in defaults, the TOML file (`--config`),
//! `FTPD_*` environment variables, command-line flags. A variable is read
//! by its flag's parser (`FTPD_FSYNC=no` means `--fsync no`); the file is
//! typed TOML. [figment] lays the layers over each other and tells which
//! one a bad value came from; [`Config::load`] then checks the keys that go
//! together and builds the [`Config`] the daemon uses.
//! `config/ftpd.toml` in the repository documents every key.

use crate::storage::S3Config;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// How long a reservation in a shared usage record counts unrenewed.
    pub reservation_lapse: Duration,
    /// Count the usage records again at start.
    pub recount_at_start: bool,
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
    pub s3: Option<S3Config>,
    /// PostgreSQL URL for what several daemons must agree on (with
    /// `storage = "s3"`: the usage records and those of resumable
    /// uploads); `None` keeps them in the bucket.
    pub database: Option<DatabaseUrl>,
    /// Bytes per second all uploads together may take; `None`: no cap.
    pub upload_rate: Option<u64>,
    /// Bytes per second all downloads together may take; `None`: no cap.
    pub download_rate: Option<u64>,
    /// Bytes the chunk buffers of all transfers may take together (whole
    /// 1 MiB buffers, at least one).
    pub transfer_memory: u64,
}

/// A database URL, which may hold a password: shown without it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:secret@host/db → postgres://user:<redacted>@host/db
        let shown = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &self.0[scheme + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{}{user}:<redacted>{}", &self.0[..scheme + 3], &self.0[at..]),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        };
        f.write_str(&shown)
    }
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
/// Prefix of the environment variables: `FTPD_` and the key in upper case.
const ENV_PREFIX: &str = "FTPD_";

/// Every configuration key, once. The doc comment of a field is the help
/// of its flag; keep `config/ftpd.toml` in step (a test checks that it
/// names every key).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// Address to listen on, e.g. 0.0.0.0:2121 (port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: Address,
    /// Data root; user homes are ROOT/USER/.
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Users file [default: ROOT/users.toml].
    #[arg(long)]
    users: Option<PathBuf>,
    /// Most simultaneous connections.
    #[arg(long, default_value = "1024")]
    max_connections: AtLeastOne<usize>,
    /// Seconds a new connection has to log in.
    #[arg(long, default_value = "30")]
    login_timeout_secs: AtLeastOne<u64>,
    /// Seconds a session may stay silent.
    #[arg(long, default_value = "300")]
    idle_timeout_secs: AtLeastOne<u64>,
    /// Seconds running transfers get to finish on shutdown.
    #[arg(long, default_value = "30")]
    shutdown_grace_secs: AtLeastOne<u64>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// fsync each upload before acknowledging it (true/false).
    #[arg(long, default_value = "true", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    fsync: bool,
    /// Most sessions one user may have open at once.
    #[arg(long, default_value = "32")]
    max_sessions_per_user: AtLeastOne<usize>,
    /// Most sessions from one IP address.
    #[arg(long, default_value = "128")]
    max_sessions_per_ip: AtLeastOne<usize>,
    /// Seconds after which an abandoned partial upload is removed.
    #[arg(long, default_value = "86400")]
    partial_max_age_secs: AtLeastOne<u64>,
    /// Object storage: seconds an upload's reservation in the shared usage
    /// record counts if its daemon dies (a running upload renews it every
    /// quarter of this).
    #[arg(long, default_value = "600")]
    reservation_lapse_secs: AtLeastOne<u64>,
    /// Object storage: count every user's usage record again from a
    /// listing of the bucket at start, as `ftpd usage --recount` does
    /// (true/false).
    #[arg(long, default_value = "false", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    recount_at_start: bool,
    /// Serve TLS (true/false).
    #[arg(long, default_value = "true", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    tls: bool,
    /// Certificate chain (PEM) to present instead of the self-signed one.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Seconds a new connection has to complete the TLS handshake.
    #[arg(long, default_value = "10")]
    tls_handshake_timeout_secs: AtLeastOne<u64>,
    /// Most connections waiting to log in at once.
    #[arg(long, default_value = "256")]
    max_unauthenticated: AtLeastOne<usize>,
    /// Most connections waiting to log in from one address.
    #[arg(long, default_value = "16")]
    max_unauthenticated_per_ip: AtLeastOne<usize>,
    /// Failed logins from one address before it is blocked for a while.
    #[arg(long, default_value = "10")]
    login_block_after: AtLeastOne<u32>,
    /// Seconds a blocked address (or user name) stays blocked.
    #[arg(long, default_value = "300")]
    login_block_secs: AtLeastOne<u64>,
    /// Admin HTTP listener for /metrics, /healthz and /readyz, e.g.
    /// 127.0.0.1:9121, or off.
    #[arg(long, default_value = "off")]
    admin_listen: MaybeAddress,
    /// Where files live: under the data root, or in an S3 bucket.
    #[arg(long, value_enum, default_value = "filesystem")]
    storage: Storage,
    /// S3 endpoint URL [default: AWS].
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, default_value = "us-east-1")]
    s3_region: String,
    /// S3 bucket.
    #[arg(long)]
    s3_bucket: Option<String>,
    /// Key prefix in the bucket [default: none].
    #[arg(long)]
    s3_prefix: Option<String>,
    /// S3 access key id.
    #[arg(long)]
    s3_access_key_id: Option<String>,
    /// Parts of one upload or download on their way to or from the object
    /// store at once, each 8 MiB held in memory meanwhile (more: faster to a
    /// store far away or spread over several nodes; memory per upload is
    /// this + 1 parts, per download this many).
    #[arg(long, default_value = "8")]
    s3_parts_in_flight: AtLeastOne<usize>,
    /// S3 secret access key (prefer the variable: flags show in `ps`).
    #[arg(long)]
    s3_secret_access_key: Option<String>,
    /// PostgreSQL URL (postgres://USER[:PASSWORD]@HOST:PORT/DB) holding the
    /// records that daemons sharing a bucket agree on (usage, resumable
    /// uploads), so the store needs no conditional writes (needs
    /// storage = s3) [default: none, records in the bucket].
    #[arg(long)]
    database: Option<String>,
    /// Bytes per second all uploads together may take, with units
    /// ("100 MiB"), or off (each user's own cap still applies).
    #[arg(long, default_value = "off")]
    upload_rate: Rate,
    /// Bytes per second all downloads together may take, or off.
    #[arg(long, default_value = "off")]
    download_rate: Rate,
    /// Memory the chunk buffers of all transfers may take together, with
    /// units ("64 MiB"; whole 1 MiB buffers, at least one). A transfer that
    /// finds none free waits, and reads nothing from its client meanwhile.
    #[arg(long, default_value = "64 MiB")]
    transfer_memory: Memory,
}

/// Where users' files live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Storage {
    /// Under the data root.
    #[serde(alias = "fs")]
    #[value(alias = "fs")]
    Filesystem,
    /// In an S3-compatible bucket.
    S3,
}

impl Keys {
    /// The built-in defaults (the `default_value` of each key).
    fn defaults() -> Keys {
        Keys::from_arg_matches(&keys_command().get_matches_from(["ftpd"])).expect("the defaults parse")
    }

    /// Checks the keys that go together and builds the configuration.
    fn resolve(self) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            origin: None,
            message: message.to_owned(),
        };
        if self.root.as_os_str().is_empty() {
            return Err(invalid("root", "must not be empty"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            let key = if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" };
            return Err(invalid(key, "tls_cert and tls_key go together"));
        }
        let s3 = match self.storage {
            Storage::Filesystem => None,
            Storage::S3 => {
                let need = |key: &str, value: Option<String>| {
                    value.filter(|v| !v.is_empty()).ok_or_else(|| invalid(key, "required with storage = \"s3\""))
                };
                Some(S3Config {
                    endpoint: self.s3_endpoint,
                    region: self.s3_region,
                    bucket: need("s3_bucket", self.s3_bucket)?,
                    prefix: self.s3_prefix.unwrap_or_default(),
                    access_key_id: need("s3_access_key_id", self.s3_access_key_id)?,
                    secret_access_key: need("s3_secret_access_key", self.s3_secret_access_key)?,
                    parts_in_flight: self.s3_parts_in_flight.0,
                })
            }
        };
        let database = self.database.filter(|d| !d.is_empty()).map(DatabaseUrl);
        if database.is_some() && s3.is_none() {
            return Err(invalid("database", "needs storage = \"s3\" (files on this machine have one daemon)"));
        }
        Ok(Config {
            listen: self.listen.0,
            users: self.users.unwrap_or_else(|| self.root.join(DEFAULT_USERS_FILE)),
            root: self.root,
            max_connections: self.max_connections.0,
            login_timeout: self.login_timeout_secs.secs(),
            idle_timeout: self.idle_timeout_secs.secs(),
            shutdown_grace: self.shutdown_grace_secs.secs(),
            log_format: self.log_format,
            fsync: self.fsync,
            max_sessions_per_user: self.max_sessions_per_user.0,
            max_sessions_per_ip: self.max_sessions_per_ip.0,
            partial_max_age: self.partial_max_age_secs.secs(),
            reservation_lapse: self.reservation_lapse_secs.secs(),
            recount_at_start: self.recount_at_start,
            tls: self.tls,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_handshake_timeout: self.tls_handshake_timeout_secs.secs(),
            max_unauthenticated: self.max_unauthenticated.0,
            max_unauthenticated_per_ip: self.max_unauthenticated_per_ip.0,
            upload_rate: self.upload_rate.0,
            download_rate: self.download_rate.0,
            transfer_memory: self.transfer_memory.0,
            login_block_after: self.login_block_after.0,
            login_block: self.login_block_secs.secs(),
            admin_listen: self.admin_listen.0,
            s3,
            database,
        })
    }
}

/// The keys as a command of their own: one flag each, nothing else.
fn keys_command() -> Command {
    Keys::augment_args(Command::new("ftpd").disable_help_flag(true).disable_version_flag(true))
}

/// The name of every key.
fn key_names() -> Vec<String> {
    keys_command().get_arguments().map(|arg| arg.get_id().to_string()).collect()
}

/// One configuration key as `ftpd man` describes it.
pub struct KeyDoc {
    /// The key in the TOML file, e.g. `idle_timeout_secs`.
    pub key: String,
    /// Its flag, e.g. `--idle-timeout-secs`.
    pub flag: String,
    /// Its environment variable, e.g. `FTPD_IDLE_TIMEOUT_SECS`.
    pub env: String,
    /// The built-in default, when there is one.
    pub default: Option<String>,
    /// What it does (the doc comment of its field).
    pub help: String,
}

/// Every key, in the order [`Keys`] defines them.
pub fn documented_keys() -> Vec<KeyDoc> {
    keys_command()
        .get_arguments()
        .map(|arg| {
            let key = arg.get_id().to_string();
            let defaults: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect();
            KeyDoc {
                flag: flag(&key),
                env: env_var(&key),
                default: (!defaults.is_empty()).then(|| defaults.join(" ")),
                help: arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
                key,
            }
        })
        .collect()
}

/// The environment variable of `key`.
fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The flag of `key`.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The keys that `matches` took from `source`, as figment values.
fn taken_from(matches: &ArgMatches, source: ValueSource) -> Result<Dict, String> {
    let keys = Keys::from_arg_matches(matches).map_err(|e| e.to_string())?;
    let value = Value::serialize(&keys).map_err(|e| e.to_string())?;
    let mut dict = value.into_dict().expect("a struct serializes as a dictionary");
    dict.retain(|key, _| matches.value_source(key) == Some(source));
    Ok(dict)
}

/// A whole number of at least 1: a count, or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
struct AtLeastOne<T>(T);

impl<T: PartialEq + From<u8>> AtLeastOne<T> {
    fn new(n: T) -> Result<AtLeastOne<T>, &'static str> {
        if n == T::from(0) { Err("must be at least 1") } else { Ok(AtLeastOne(n)) }
    }
}

impl AtLeastOne<u64> {
    fn secs(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl<T: FromStr<Err = std::num::ParseIntError> + PartialEq + From<u8>> FromStr for AtLeastOne<T> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let n = text.parse().map_err(|e| format!("{text:?} is not a whole number ({e})"))?;
        AtLeastOne::new(n).map_err(str::to_owned)
    }
}

impl<'de, T: Deserialize<'de> + PartialEq + From<u8>> Deserialize<'de> for AtLeastOne<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AtLeastOne::new(T::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A socket address such as `127.0.0.1:2121`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Address(SocketAddr);

/// A socket address, or `off` (or nothing) for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MaybeAddress(Option<SocketAddr>);

/// A rate in bytes per second, written with units, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate(Option<u64>);

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" | "off" => Ok(Rate(None)),
            text => match ftp_proto::size::parse_size(text) {
                Ok(n) if n < ftp_proto::pace::MIN_RATE => {
                    Err("a rate below 64 KiB (per second) would let a chunk outlast timeouts; say off for no cap"
                        .into())
                }
                Ok(n) => Ok(Rate(Some(n))),
                Err(e) => Err(format!("{text:?} is not a rate in bytes per second like \"100 MiB\" ({e})")),
            },
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(n) => f.write_str(&ftp_proto::size::exact_size(n)),
        }
    }
}

/// An amount of memory, written with units, of at least one chunk buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory(u64);

impl FromStr for Memory {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match ftp_proto::size::parse_size(text.trim()) {
            Ok(n) if n < ftp_disk::BUFFER_SIZE as u64 => {
                Err("must hold at least one 1 MiB buffer, or no transfer could move".into())
            }
            Ok(n) => Ok(Memory(n)),
            Err(e) => Err(format!("{text:?} is not an amount of memory like \"64 MiB\" ({e})")),
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ftp_proto::size::exact_size(self.0))
    }
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|e| format!("{text:?} is not an address like 127.0.0.1:2121 ({e})"))
}

impl FromStr for Address {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        parse_address(text).map(Address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MaybeAddress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" | "off" => Ok(MaybeAddress(None)),
            text => parse_address(text).map(|a| MaybeAddress(Some(a))),
        }
    }
}

impl fmt::Display for MaybeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(addr) => addr.fmt(f),
        }
    }
}

/// Serde for the types above that are written as text.
macro_rules! as_text {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
as_text!(Address, MaybeAddress, Rate, Memory);

/// The flags of `ftpd serve`: one for each key, plus `--no-tls`. Only the
/// flags given count; the other keys come from the layers below.
#[derive(Debug, Clone, Default)]
pub struct Flags(Dict);

impl Flags {
    /// `self` with `key` set as its flag would set it, if `value` is `Some`:
    /// for subcommands that take a few keys as flags of their own.
    pub fn with<T: Serialize>(mut self, key: &str, value: Option<T>) -> Result<Flags, ConfigError> {
        if let Some(value) = value {
            let value = Value::serialize(value).map_err(|e| ConfigError::Invalid {
                key: key.to_owned(),
                origin: Some(flag(key)),
                message: e.to_string(),
            })?;
            self.0.insert(key.to_owned(), value);
        }
        Ok(self)
    }

    fn layer(&self) -> Layer {
        Layer { origin: Origin::Flags, keys: self.0.clone() }
    }
}

impl Args for Flags {
    fn augment_args(cmd: Command) -> Command {
        let mut cmd = Keys::augment_args(cmd).arg(
            Arg::new("no_tls")
                .long("no-tls")
                .action(ArgAction::SetTrue)
                .conflicts_with("tls")
                .help("Serve plaintext: the same as --tls false"),
        );
        // The variables are read apart from clap (see `env_layer`), so clap
        // can't show them itself.
        for key in key_names() {
            let var = env_var(&key);
            cmd = cmd.mut_arg(key, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [env: {var}]"))
            });
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Flags::augment_args(cmd)
    }
}

impl FromArgMatches for Flags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = taken_from(matches, ValueSource::CommandLine)
            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, e))?;
        if matches.get_flag("no_tls") {
            given.insert("tls".to_owned(), false.into());
        }
        Ok(Flags(given))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Flags::from_arg_matches(matches)?;
        Ok(())
    }
}

/// One layer of keys, and where it comes from.
struct Layer {
    origin: Origin,
    keys: Dict,
}

#[derive(Clone)]
enum Origin {
    Defaults,
    File(PathBuf),
    Env,
    Flags,
}

impl Layer {
    fn defaults() -> Layer {
        let matches = keys_command().get_matches_from(["ftpd"]);
        let keys = taken_from(&matches, ValueSource::DefaultValue).expect("the defaults serialize");
        Layer { origin: Origin::Defaults, keys }
    }

    /// The TOML configuration file at `path`.
    fn file(path: &Path) -> Result<Layer, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Layer::toml(path, &text)
    }

    /// `text`, the TOML configuration file at `path`. Only the syntax is
    /// checked here; keys and values are checked with the other layers.
    fn toml(path: &Path, text: &str) -> Result<Layer, ConfigError> {
        let keys =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        Ok(Layer { origin: Origin::File(path.to_owned()), keys })
    }

    /// The `FTPD_*` variables of the keys among `vars`, each read by the
    /// parser of its flag. Other variables are left alone.
    fn env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Layer, ConfigError> {
        let vars: HashMap<OsString, OsString> = vars.into_iter().collect();
        let cmd = keys_command();
        let mut keys = Dict::new();
        for key in key_names() {
            let var = env_var(&key);
            let Some(value) = vars.get(OsStr::new(&var)) else { continue };
            let invalid = |message| ConfigError::Invalid { key: key.clone(), origin: Some(var.clone()), message };
            let mut arg = OsString::from(format!("{}=", flag(&key)));
            arg.push(value);
            let matches =
                cmd.clone().try_get_matches_from([OsString::from("ftpd"), arg]).map_err(|e| invalid(reason(&e)))?;
            keys.extend(taken_from(&matches, ValueSource::CommandLine).map_err(invalid)?);
        }
        Ok(Layer { origin: Origin::Env, keys })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        // The interpolater names the origin of a key, for errors.
        match self.origin.clone() {
            Origin::Defaults => Metadata::named("built-in defaults")
                .interpolater(|_: &Profile, _: &[&str]| "built-in default".to_owned()),
            Origin::File(path) => Metadata::from("config file", path.as_path())
                .interpolater(move |_: &Profile, _: &[&str]| path.display().to_string()),
            Origin::Env => Metadata::named("environment").interpolater(|_: &Profile, k: &[&str]| env_var(&k.join("."))),
            Origin::Flags => Metadata::named("command line").interpolater(|_: &Profile, k: &[&str]| flag(&k.join("."))),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.keys.clone()))
    }
}

/// What clap says is wrong with a value, without its usage advice.
fn reason(e: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    match (e.get(ContextKind::InvalidValue), e.get(ContextKind::ValidValue)) {
        (Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) => {
            format!("{value:?}: expected one of {}", valid.join(", "))
        }
        _ => e.kind().to_string(),
    }
}

/// An invalid configuration, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// The file has a key that is not one.
    #[error("unknown key `{key}` in {origin}")]
    Unknown {
        /// The key.
        key: String,
        /// Where it was found.
        origin: String,
    },
    /// A value is of the wrong type or out of range.
    #[error("invalid value for `{key}`{}: {message}", .origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Invalid {
        /// The key.
        key: String,
        /// Where the value came from (file, variable or flag), if one place.
        origin: Option<String>,
        /// What is wrong.
        message: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> ConfigError {
        // Extraction stops at the first bad key; report that one.
        let e = e.into_iter().next().expect("an error has a first");
        let origin = e.metadata.as_ref().map(|md| md.interpolate(&Profile::Default, &e.path));
        match e.kind {
            figment::error::Kind::UnknownField(key, _) => {
                ConfigError::Unknown { key, origin: origin.unwrap_or_else(|| "the configuration".to_owned()) }
            }
            kind => {
                let message = match kind {
                    figment::error::Kind::UnknownVariant(value, expected) => {
                        format!("{value:?}: expected one of {}", expected.join(", "))
                    }
                    kind => kind.to_string(),
                };
                ConfigError::Invalid { key: e.path.join("."), origin, message }
            }
        }
    }
}

impl Config {
    /// The configuration: the built-in defaults, then the TOML `file` (if
    /// any), then the `FTPD_*` environment variables, then `flags`.
    pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Config, ConfigError> {
        let file = file.map(Layer::file).transpose()?;
        Config::layered(file, Layer::env(std::env::vars_os())?, flags)
    }

    fn layered(file: Option<Layer>, env: Layer, flags: &Flags) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Layer::defaults());
        if let Some(file) = file {
            figment = figment.merge(file);
        }
        let keys: Keys = figment.merge(env).merge(flags.layer()).extract()?;
        keys.resolve()
    }
}

impl Default for Config {
    fn default() -> Config {
        Keys::defaults().resolve().expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Option<Layer> {
        Some(Layer::toml(Path::new("ftpd.toml"), text).unwrap())
    }

    fn env(vars: &[(&str, &str)]) -> Layer {
        Layer::env(vars.iter().map(|(k, v)| (k.into(), v.into()))).unwrap()
    }

    fn flags(args: &[&str]) -> Flags {
        let cmd = Flags::augment_args(Command::new("ftpd"));
        let matches = cmd.try_get_matches_from(std::iter::once("ftpd").chain(args.iter().copied())).unwrap();
        Flags::from_arg_matches(&matches).unwrap()
    }

    fn load(file_text: &str, vars: &[(&str, &str)], args: &[&str]) -> Result<Config, ConfigError> {
        Config::layered(file(file_text), env(vars), &flags(args))
    }

    #[test]
    fn defaults_are_loopback_and_local() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.users, PathBuf::from("ftpd-data/users.toml"));
        assert!(c.fsync && c.tls);
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.admin_listen, None);
        assert!(c.s3.is_none());
        let layered = Config::layered(None, env(&[]), &Flags::default()).unwrap();
        assert_eq!(format!("{layered:?}"), format!("{c:?}"));
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let text = "login_timeout_secs = 7\nidle_timeout_secs = 7\nshutdown_grace_secs = 7\nroot = \"/srv\"";
        let vars = [("FTPD_IDLE_TIMEOUT_SECS", "8"), ("FTPD_SHUTDOWN_GRACE_SECS", "8")];
        let c = load(text, &vars, &["--shutdown-grace-secs", "9"]).unwrap();
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(10), "default");
        assert_eq!(c.login_timeout, Duration::from_secs(7), "file over default");
        assert_eq!(c.idle_timeout, Duration::from_secs(8), "environment over file");
        assert_eq!(c.shutdown_grace, Duration::from_secs(9), "flag over environment");
        assert_eq!(c.users, PathBuf::from("/srv/users.toml"), "users follows root");
        let c = load("", &[("FTPD_LISTEN", "127.0.0.1:1")], &["--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn booleans_and_the_admin_listener_can_be_turned_off_and_on_again() {
        let c = load("fsync = true\ntls = true", &[], &["--fsync", "false", "--no-tls"]).unwrap();
        assert!(!c.fsync && !c.tls);
        let c = load("fsync = false\ntls = false", &[], &["--fsync", "true", "--tls", "true"]).unwrap();
        assert!(c.fsync && c.tls, "a flag can turn back on what the file turned off");
        let c = load("fsync = true", &[("FTPD_FSYNC", "no")], &[]).unwrap();
        assert!(!c.fsync, "variables read booleans like flags do");
        let c = load("fsync = false", &[("FTPD_FSYNC", "no")], &["--fsync", "yes"]).unwrap();
        assert!(c.fsync);
        let text = "admin_listen = \"127.0.0.1:9121\"";
        assert_eq!(load(text, &[], &[]).unwrap().admin_listen, Some("127.0.0.1:9121".parse().unwrap()));
        assert_eq!(load(text, &[("FTPD_ADMIN_LISTEN", "off")], &[]).unwrap().admin_listen, None);
        assert_eq!(load(text, &[], &["--admin-listen", ""]).unwrap().admin_listen, None);
    }

    #[test]
    fn other_variables_are_ignored_and_text_stays_text() {
        let vars = [
            ("FTPD_CONFIG", "/nowhere.toml"),
            ("FTPD_BIN", "x"),
            ("FTPD_NO_TLS", "1"),
            ("ftpd_listen", "bad"),
            ("FTPD_STORAGE", "s3"),
            ("FTPD_S3_BUCKET", "2024"),
            ("FTPD_S3_PREFIX", "007"),
            ("FTPD_S3_ACCESS_KEY_ID", "true"),
            ("FTPD_S3_SECRET_ACCESS_KEY", "-12e5"),
        ];
        let c = load("", &vars, &[]).unwrap();
        assert!(c.tls);
        let s3 = c.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("2024", "007"));
        assert_eq!((s3.access_key_id.as_str(), s3.secret_access_key.as_str()), ("true", "-12e5"));
        assert_eq!(s3.region, "us-east-1");
    }

    #[test]
    fn errors_name_the_key_and_where_it_was_set() {
        let message =
            |text: &str, vars: &[(&str, &str)], args: &[&str]| load(text, vars, args).unwrap_err().to_string();
        let err = message("listen = \"nowhere\"", &[], &[]);
        assert!(err.contains("`listen`") && err.contains("ftpd.toml") && err.contains("nowhere"), "{err}");
        let err = message("idle_timeout_secs = 0", &[], &[]);
        assert!(err.contains("`idle_timeout_secs`") && err.contains("at least 1"), "{err}");
        let err = message("max_connections = \"many\"", &[], &[]);
        assert!(err.contains("`max_connections`") && err.contains("many"), "{err}");
        let err = message("fsync = \"false\"", &[], &[]);
        assert!(err.contains("`fsync`"), "the file is typed: {err}");
        let err = message("lisen = \"x\"", &[], &[]);
        assert!(err.contains("unknown key `lisen`") && err.contains("ftpd.toml"), "{err}");
        let err = message("[s3]\nbucket = \"x\"", &[], &[]);
        assert!(err.contains("unknown key `s3`"), "{err}");
        let err = message("storage = \"nfs\"", &[], &[]);
        assert!(err.contains("`storage`") && err.contains("nfs"), "{err}");
        let err = message("storage = \"s3\"\ns3_access_key_id = \"k\"", &[], &[]);
        assert!(err.contains("`s3_bucket`") && err.contains("required"), "{err}");
        let err = message("tls_cert = \"/c.pem\"", &[], &[]);
        assert!(err.contains("`tls_key`"), "{err}");
        let err = message("root = \"\"", &[], &[]);
        assert!(err.contains("`root`"), "{err}");

        let err = Layer::env([("FTPD_LISTEN".into(), "bad".into())]).err().unwrap().to_string();
        assert!(err.contains("`listen`") && err.contains("FTPD_LISTEN") && err.contains("bad"), "{err}");
        let err = Layer::env([("FTPD_LOGIN_BLOCK_SECS".into(), "0".into())]).err().unwrap().to_string();
        assert!(err.contains("`login_block_secs`") && err.contains("FTPD_LOGIN_BLOCK_SECS"), "{err}");
        let err = Layer::env([("FTPD_FSYNC".into(), "sometimes".into())]).err().unwrap().to_string();
        assert!(err.contains("`fsync`") && err.contains("FTPD_FSYNC"), "{err}");
        let err = Layer::env([("FTPD_LOG_FORMAT".into(), "xml".into())]).err().unwrap().to_string();
        assert!(err.contains("`log_format`") && err.contains("text, json"), "{err}");

        let cmd = Flags::augment_args(Command::new("ftpd"));
        let err = cmd.clone().try_get_matches_from(["ftpd", "--max-connections", "0"]).unwrap_err().to_string();
        assert!(err.contains("--max-connections") && err.contains("at least 1"), "{err}");
        let err = cmd.try_get_matches_from(["ftpd", "--no-tls", "--tls", "true"]).unwrap_err().to_string();
        assert!(err.contains("--no-tls"), "{err}");
        let flags = Flags::default().with("admin_listen", Some("nowhere")).unwrap();
        let err = Config::layered(None, env(&[]), &flags).unwrap_err().to_string();
        assert!(err.contains("`admin_listen`") && err.contains("--admin-listen"), "{err}");
    }

    #[test]
    fn every_flag_shows_its_variable_and_default() {
        let mut cmd = Flags::augment_args(Command::new("ftpd"));
        let help = cmd.render_long_help().to_string();
        for key in key_names() {
            assert!(help.contains(&format!("{} <", flag(&key))), "{key}: {help}");
            assert!(help.contains(&format!("[env: {}]", env_var(&key))), "{key}: {help}");
        }
        assert!(help.contains("--no-tls") && help.contains("[default: 300]"), "{help}");
    }

    #[test]
    fn the_example_file_names_every_key_with_its_default() {
        let example = include_str!("../../../config/ftpd.toml");
        for key in key_names() {
            let line = |prefix: &str| example.lines().any(|l| l.starts_with(&format!("{prefix}{key} = ")));
            assert!(line("") || line("# "), "config/ftpd.toml does not document `{key}`");
        }
        let c = Config::layered(file(example), env(&[]), &Flags::default()).unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()), "the values it sets are the defaults");
    }

    #[test]
    fn a_database_password_never_shows_and_the_database_needs_a_bucket() {
        let url = DatabaseUrl("postgres://ftpd:hunter2@db.example:5432/ftpd".into());
        assert_eq!(format!("{url:?}"), "postgres://ftpd:<redacted>@db.example:5432/ftpd");
        assert_eq!(format!("{:?}", DatabaseUrl("postgres://ftpd@db/ftpd".into())), "postgres://ftpd@db/ftpd");
        let err = load("database = \"postgres://ftpd@db/ftpd\"", &[], &[]).unwrap_err().to_string();
        assert!(err.contains("`database`") && err.contains("storage = \"s3\""), "{err}");
    }
}
