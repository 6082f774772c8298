//! `ftpc`: command-line client for ftpd.
//!
//! `main.rs` parses the command line and logs in; `commands.rs` runs the
//! commands (for the one-shot CLI and the shell alike); `shell.rs` is the
//! interactive session.

mod commands;
mod hash;
mod manual;
mod progress;
mod remove;
mod shell;
mod stdin;

use clap::{CommandFactory, Parser, Subcommand};
use commands::Ui;
use ftp_client::address::ServerAddr;
use ftp_client::display::escape;
use ftp_client::keys::Keys;
use ftp_client::known_hosts::{self, KnownHosts};
use ftp_client::profile::{self, Host, Profile, Target};
use ftp_client::tls::Trust;
use ftp_client::{Client, ClientError, Io, Transport};
use ftp_proto::ErrorCode;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

/// Default server when neither flag, variable nor profile names one: the
/// daemon's own default address.
const DEFAULT_SERVER: &str = "127.0.0.1:2121";

#[derive(Parser)]
#[command(name = "ftpc", version, about = "Client for the ftpd file transfer daemon")]
#[command(after_help = "Without a command, ftpc opens an interactive session (see `ftpc shell`).")]
struct Cli {
    /// Server: [USER@]HOST[:PORT] (port 2121 when left out; IPv6 as
    /// [::1]:2121), or the NAME of a [hosts.NAME] block of the profile. A
    /// USER given here wins over --user [default: profile, else
    /// 127.0.0.1:2121].
    #[arg(long, short = 's', env = "FTPC_SERVER", global = true, value_name = "[USER@]HOST[:PORT]",
          value_parser = server_syntax)]
    server: Option<String>,
    /// User name, unless the server is given as USER@HOST [default: the
    /// profile's host block, else the profile].
    #[arg(long, short = 'u', env = "FTPC_USER", global = true)]
    user: Option<String>,
    /// No progress bar and no summary lines (what --hash asks for is still
    /// printed).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Print each transferred file's full BLAKE3 on standard output as
    /// b3sum does (`HASH  LOCAL-FILE`), to compare with `ftpc hash` or to
    /// check later with `b3sum -c`.
    #[arg(long, global = true)]
    hash: bool,
    /// Seconds to wait for the server before giving up.
    #[arg(long, default_value_t = 60, global = true)]
    timeout: u64,
    /// Connect without TLS (the server must run with --no-tls too).
    #[arg(long, global = true)]
    no_tls: bool,
    /// Trust only servers whose certificate this CA (PEM file) signed.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "no_tls")]
    ca: Option<PathBuf>,
    /// Pin an unknown server's certificate without asking (for scripts).
    #[arg(long, global = true)]
    accept_new_host: bool,
    /// OpenSSH private key for key login, tried when ssh-agent
    /// (SSH_AUTH_SOCK) has no key the server accepts; its passphrase is
    /// asked on a terminal, or read from FTPC_PASSPHRASE [default: the
    /// profile's `identity`, else ~/.ssh/id_ed25519 if it exists].
    #[arg(long, short = 'i', global = true, env = "FTPC_IDENTITY", value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Files in flight at once in mput, mget, put -r and get -r (1: one
    /// at a time, each waiting for its reply).
    #[arg(long, short = 'j', global = true, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    in_flight: u16,
    /// Sync each downloaded file to disk before it takes its name. `false`
    /// is faster with many small files, but a crash of this machine soon
    /// after may lose what was downloaded (names still appear only for
    /// whole, verified files).
    #[arg(long, global = true, env = "FTPC_FSYNC", default_value_t = true, value_name = "BOOL",
          action = clap::ArgAction::Set)]
    fsync: bool,
    /// Run the session's commands from FILE (`-`: standard input), as
    /// `sftp -b` does: the first failure stops it with its exit code,
    /// except on lines starting with `-`.
    #[arg(long, short = 'b', value_name = "FILE")]
    batch: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The commands that talk to the server (the shell adds its own).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload files, directory trees (-r), or the files a quoted pattern
    /// matches ('*.log'), as scp does: `put SOURCE [TARGET]` or
    /// `put SOURCE... DIR`. With one source, TARGET is the remote name
    /// (default: the local name), unless it is an existing remote directory
    /// or ends in /: then the file goes inside. With several sources (or a
    /// pattern), the last argument must be an existing remote directory.
    /// Trees follow rsync's trailing-slash rule: `put -r docs DIR` makes
    /// DIR/docs, `put -r docs/ DIR` puts what is in docs into DIR.
    /// `put - NAME` uploads standard input as NAME (read to its end first,
    /// unless it is a regular file). A file appears on the server only once
    /// whole and verified by its BLAKE3 hash. An interrupted upload of 1 MiB
    /// or more resumes: run the same put again and only the rest is sent.
    #[command(
        override_usage = "ftpc put [OPTIONS] SOURCE [TARGET]\n       ftpc put [OPTIONS] - NAME\n       ftpc put [OPTIONS] SOURCE... DIR"
    )]
    Put {
        /// Upload directories and everything below them.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Don't replace a remote file that exists: skip it (reported,
        /// not a failure). Needs a server of protocol 1.2.
        #[arg(short = 'n', long)]
        no_clobber: bool,
        /// Give each remote file the local file's modification time (where
        /// the server's storage keeps times). Needs protocol 1.2.
        #[arg(short = 'p', long)]
        preserve: bool,
        /// Local files (or quoted patterns, or directories with -r, or -
        /// for standard input); with two or more arguments, the last one is
        /// the remote target.
        #[arg(required = true, value_name = "SOURCE")]
        paths: Vec<OsString>,
    },
    /// Download files, directory trees (-r), or the files a pattern in the
    /// last component matches ('reports/*.csv'), as scp does:
    /// `get SOURCE [TARGET]` or `get SOURCE... DIR`. With one source,
    /// TARGET is the local name (default: the remote name, here), or an
    /// existing directory to put it in, or - for standard output. A
    /// symbolic link there is written through, a FIFO or device written
    /// into, as cp does. With several sources (or a pattern), the last
    /// argument must be an existing local directory. Trees follow rsync's
    /// trailing-slash rule: `get -r docs DIR` makes DIR/docs,
    /// `get -r docs/ DIR` puts what is in docs into DIR. A file takes its
    /// name only once whole and verified by its BLAKE3 hash. An interrupted
    /// get leaves .NAME.ftpc-part beside the target, and the same get
    /// continues from it unless the remote file changed.
    #[command(override_usage = "ftpc get [OPTIONS] SOURCE [TARGET]\n       ftpc get [OPTIONS] SOURCE... DIR")]
    Get {
        /// Download directories and everything below them.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Don't replace a local file that exists: skip it (reported,
        /// not a failure).
        #[arg(short = 'n', long)]
        no_clobber: bool,
        /// Give each local file the remote file's modification time.
        #[arg(short = 'p', long)]
        preserve: bool,
        /// Remote files (or patterns, or directories with -r); with two or
        /// more arguments, the last one is the local target (- for
        /// standard output).
        #[arg(required = true, value_name = "SOURCE")]
        paths: Vec<OsString>,
    },
    /// Upload several files over one connection, pipelined, each under its
    /// own name (in the remote directory DIR if given).
    Mput {
        /// Local files, each uploaded under its own name.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Remote directory to put them in [default: the working directory].
        #[arg(long, short = 't', value_name = "DIR")]
        to: Option<String>,
        /// Don't replace a remote file that exists: skip it (reported,
        /// not a failure). Needs a server of protocol 1.2.
        #[arg(short = 'n', long)]
        no_clobber: bool,
        /// Give each remote file the local file's modification time (where
        /// the server's storage keeps times). Needs protocol 1.2.
        #[arg(short = 'p', long)]
        preserve: bool,
    },
    /// Download several files over one connection, pipelined, each under
    /// its own name (in the local directory DIR if given).
    Mget {
        /// Remote files, each downloaded under its own name.
        #[arg(required = true)]
        names: Vec<String>,
        /// Local directory to put them in [default: the current one].
        #[arg(long, short = 't', value_name = "DIR")]
        to: Option<PathBuf>,
        /// Don't replace a local file that exists: skip it (reported,
        /// not a failure).
        #[arg(short = 'n', long)]
        no_clobber: bool,
        /// Give each local file the remote file's modification time.
        #[arg(short = 'p', long)]
        preserve: bool,
    },
    /// List a directory. Names starting with `.` are left out unless -a
    /// is given, as ls does.
    #[command(disable_help_flag = true)]
    Ls {
        /// Remote directory (or file) [default: the working directory].
        path: Option<String>,
        /// Long format: kind, size in bytes, modification time (UTC).
        #[arg(short = 'l')]
        long: bool,
        /// With -l: sizes in binary units (1.5 KiB, 3.0 GiB) instead of bytes.
        #[arg(short = 'h', long = "human-readable")]
        human: bool,
        /// Show names starting with `.` too (in every format, --json included).
        #[arg(short = 'a', long = "all")]
        all: bool,
        /// JSON: an array of {name, kind, size, mtime}.
        #[arg(long)]
        json: bool,
        /// Print help (-h is --human-readable here, as in ls).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Show an entry's name, kind, size, modification time and BLAKE3 hash
    /// (the same fields and values as --json).
    Stat {
        /// Remote file or directory.
        path: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Remove files, or whole directories with -r (asking first on a
    /// terminal).
    Rm {
        /// Remove directories and everything in them. On a terminal, asks
        /// `remove DIR and its N files?` first; elsewhere it needs -f.
        #[arg(short = 'r', short_alias = 'R', long)]
        recursive: bool,
        /// Never ask, and ignore paths that do not exist.
        #[arg(short = 'f', long)]
        force: bool,
        /// Remote files (or directories, with -r).
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create directories.
    Mkdir {
        /// Create missing parents too, and accept directories that exist.
        #[arg(short = 'p', long)]
        parents: bool,
        /// Remote directories to create.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove an empty directory.
    Rmdir {
        /// The remote directory.
        path: String,
    },
    /// Rename or move a file or directory.
    Mv {
        /// The remote file or directory to move.
        from: String,
        /// Its new remote path (a file there is replaced).
        to: String,
    },
    /// Show used and available space in your quota.
    Df {
        /// JSON: {used, quota, available}.
        #[arg(long)]
        json: bool,
    },
    /// Print local files' BLAKE3 hashes as b3sum does (`HASH  FILE`; `-`
    /// or no FILE: standard input), to compare with `stat` or `--hash`.
    /// Needs no server.
    Hash {
        /// Local files.
        files: Vec<PathBuf>,
    },
    /// Open an interactive session: one login, then commands at a prompt
    /// (the default when no command is given).
    Shell,
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output, or write the
    /// pages of ftpc and every command (ftpc.1, ftpc-put.1, ...) into DIR.
    Man {
        /// Directory to write the pages into, e.g. /usr/local/share/man/man1
        /// (created if missing) [default: print ftpc.1 to standard output].
        dir: Option<PathBuf>,
    },
    /// List the interrupted uploads the server keeps for resume (their
    /// bytes count in `df`), or throw some away with `partials rm PATH...`.
    /// A `put` of the same file resumes from what is kept.
    Partials {
        #[command(subcommand)]
        action: Option<PartialsAction>,
        /// JSON: an array of {path, size, held, mtime}.
        #[arg(long)]
        json: bool,
    },
    /// Remove a server's pinned certificate from the known-hosts file (as
    /// ssh-keygen -R), once its operator confirms the certificate changed;
    /// the next connection asks about the new one.
    Forget {
        /// The server: HOST[:PORT] (port 2121 when left out), or the NAME
        /// of a host block of the profile.
        #[arg(value_name = "HOST[:PORT]", value_parser = server_syntax)]
        host: String,
    },
}

/// What `partials` does besides listing.
#[derive(Subcommand, Debug)]
pub enum PartialsAction {
    /// Throw away what the server keeps of interrupted uploads to these
    /// remote paths, freeing the space (the next `put` starts afresh).
    Rm {
        /// The target paths of the interrupted uploads, as `partials` lists them.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
}

/// Checks `[USER@]HOST[:PORT]` as clap parses it (a name from the profile
/// passes: it is a host name too).
fn server_syntax(text: &str) -> Result<String, String> {
    ServerAddr::parse(text).map(|_| text.to_owned())
}

/// Exit codes, documented in the README.
pub mod exit {
    pub const LOCAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONNECT: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const REMOTE: u8 = 5;
    pub const INTEGRITY: u8 = 6;
    pub const IDENTITY: u8 = 7;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Offline commands: no server, no login.
    match &cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "ftpc", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Hash { files }) => {
            return match hash::run(files) {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure(code, message)) => fail(code, &message),
            };
        }
        Some(Command::Man { dir }) => {
            let manual = manual::manual();
            let written = match dir {
                None => manual.render_main(&mut std::io::stdout()),
                Some(dir) => manual.write_to(dir).map(drop),
            };
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(exit::LOCAL, &format!("cannot write the manual pages: {e}")),
            };
        }
        Some(Command::Forget { host }) => {
            return match forget(host, cli.quiet) {
                Ok(()) => ExitCode::SUCCESS,
                Err(Failure(code, message)) => fail(code, &message),
            };
        }
        Some(Command::Shell) | None => {}
        Some(_) if cli.batch.is_some() => {
            let message = "--batch runs a script of session commands: give no command with it";
            Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
        }
        _ => {}
    }
    let script = match cli.batch.as_deref().map(shell::Script::open).transpose() {
        Ok(script) => script,
        Err(Failure(code, message)) => return fail(code, &message),
    };
    // One connection needs one thread: the network side runs here (no
    // hand-over between threads at every socket event), and disk I/O and
    // hashing run on tokio's blocking threads. The shell's completion asks
    // the server from inside the line editor, through a runtime handle,
    // which only a multi-thread runtime drives.
    let mut builder = match cli.command {
        None | Some(Command::Shell) => tokio::runtime::Builder::new_multi_thread(),
        Some(_) => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(exit::LOCAL, &format!("cannot start the async runtime: {e}")),
    };
    let result = Login::from_cli(&cli).and_then(|login| {
        let ui = Ui { bars: !cli.quiet && std::io::stderr().is_terminal(), quiet: cli.quiet, hashes: cli.hash };
        match cli.command {
            None | Some(Command::Shell) => shell::run(&runtime, &login, ui, cli.in_flight.into(), script),
            Some(command) => runtime.block_on(async {
                let _stdin = stdin::prepare(&command)?; // read before connecting, for `put - NAME`
                let mut client = login.connect(cli.in_flight.into()).await?;
                let result = commands::run(&mut client, command, ui).await;
                let _ = client.quit().await;
                result
            }),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => fail(code, &message),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("ftpc: {message}");
    ExitCode::from(code)
}

/// An exit code and the one line that explains it.
pub struct Failure(pub u8, pub String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match &e {
            ClientError::Connect { .. }
            | ClientError::Io(_)
            | ClientError::Timeout
            | ClientError::Protocol(_)
            | ClientError::NotFtpd { .. }
            | ClientError::ClosedInHandshake { .. }
            | ClientError::Busy(_) => exit::CONNECT,
            ClientError::Remote(body) if matches!(body.code, ErrorCode::AuthFailed | ErrorCode::TooManyAttempts) => {
                exit::AUTH
            }
            ClientError::Remote(body) if body.code == ErrorCode::Integrity => exit::INTEGRITY,
            ClientError::Remote(_) => exit::REMOTE,
            ClientError::Integrity(_) => exit::INTEGRITY,
            ClientError::Local { .. } | ClientError::Key(_) => exit::LOCAL,
            ClientError::Tls(_)
            | ClientError::TlsMismatch(_)
            | ClientError::UnknownHost { .. }
            | ClientError::HostChanged { .. } => exit::IDENTITY,
        };
        let message = match &e {
            ClientError::Remote(body) if body.code == ErrorCode::AuthFailed => {
                format!("login failed: {}", escape(&body.message))
            }
            ClientError::Remote(body) => format!("{} [{}]", escape(&body.message), body.code),
            other => escape(&other.to_string()).into_owned(),
        };
        Failure(code, message)
    }
}

/// A local problem (exit code 1).
pub fn local(message: impl Into<String>) -> Failure {
    Failure(exit::LOCAL, message.into())
}

/// A command line that can't be carried out as written (exit code 2).
pub fn usage(message: impl Into<String>) -> Failure {
    Failure(exit::USAGE, message.into())
}

/// Everything needed to (re)connect and log in.
pub struct Login {
    /// `HOST:PORT`.
    pub server: String,
    /// User name.
    pub user: String,
    password: Secret,
    keys: Keys,
    timeout: Duration,
    transport: Transport,
    durable: bool,
}

/// Where the password comes from.
enum Secret {
    /// `FTPC_PASSWORD`: tried once.
    Given(String),
    /// Asked on the terminal (up to three times), then remembered for
    /// reconnections.
    Asked(Mutex<Option<String>>),
    /// Neither: only a key can log in.
    Missing,
}

/// Passwords asked for on one connection, as ssh does (the server closes
/// the connection after three failures).
const PASSWORD_ATTEMPTS: u32 = 3;

impl Login {
    fn from_cli(cli: &Cli) -> Result<Login, Failure> {
        let profile = load_profile()?;
        let text = cli.server.as_deref().or(profile.server.as_deref()).unwrap_or(DEFAULT_SERVER);
        let target = profile.target(text).map_err(local)?;
        // A user typed with the server wins, then --user/FTPC_USER, then the
        // host block's, then the profile's.
        let user =
            target.addr.user.clone().or_else(|| cli.user.clone()).or_else(|| target.host_user()).or(profile.user);
        let user = user.ok_or_else(|| {
            local("no user given: pass --user NAME or -s NAME@HOST, set FTPC_USER, or put `user = \"NAME\"` in the profile")
        })?;
        let identity = cli.identity.clone().or_else(|| target.host.as_ref().and_then(|h| h.identity.clone()));
        let keys = Keys::new(
            std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from),
            identity.or(profile.identity),
            dirs::home_dir().map(|home| home.join(".ssh").join("id_ed25519")),
        );
        let transport = transport(cli, &target)?;
        // Key login needs TLS (its signature is bound to the TLS session).
        let some_key = matches!(transport, Transport::Tls(_)) && keys.any();
        let password = match std::env::var("FTPC_PASSWORD") {
            Ok(p) => Secret::Given(p),
            Err(_) if std::io::stdin().is_terminal() => Secret::Asked(Mutex::new(None)),
            Err(_) if some_key => Secret::Missing,
            Err(_) => {
                return Err(local(
                    "no password: set FTPC_PASSWORD or run on a terminal to be asked (or log in with a key: ssh-agent or --identity)",
                ));
            }
        };
        let timeout = Duration::from_secs(cli.timeout.max(1));
        Ok(Login { server: target.addr.to_string(), user, password, keys, timeout, transport, durable: cli.fsync })
    }

    /// Connects and logs in. Who the server is is settled first (the TLS
    /// handshake, and the question about an unknown certificate), so a
    /// password is never asked for, let alone sent, before that.
    pub async fn connect(&self, in_flight: usize) -> Result<Client<Box<dyn Io>>, Failure> {
        let mut client = Client::connect(&self.server, self.timeout, &self.transport).await?;
        self.log_in(&mut client).await?;
        client.set_window(in_flight);
        client.set_durable(self.durable);
        Ok(client)
    }

    /// Logs in with a key (see [`ftp_client::keys`]), else with the known
    /// password, or asks for one on the terminal, again after a wrong one,
    /// up to [`PASSWORD_ATTEMPTS`] times.
    async fn log_in(&self, client: &mut Client<Box<dyn Io>>) -> Result<(), Failure> {
        let warn = |message: &str| eprintln!("ftpc: {}", escape(message));
        let mut keyed = self.keys.log_in(client, &self.user, &ask_passphrase, &warn).await;
        if keyed.is_err() && (client.was_closed_unserved() || matches!(keyed, Err(ClientError::Io(_)))) {
            // The server's login deadline passed while a passphrase was
            // typed: connect again (the key is unlocked by now).
            *client = Client::connect(&self.server, self.timeout, &self.transport).await?;
            keyed = self.keys.log_in(client, &self.user, &ask_passphrase, &warn).await;
        }
        match keyed {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            // A key accepted but its signature refused: say so, then the password.
            Err(ClientError::Remote(body)) if body.code == ErrorCode::AuthFailed => {
                warn(&format!("key login failed: {}", body.message));
            }
            Err(e) => return Err(e.into()),
        }
        let remembered = match &self.password {
            Secret::Given(p) => Some(p.clone()),
            Secret::Asked(kept) => kept.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            Secret::Missing => {
                return Err(local(
                    "no key was accepted and there is no password: set FTPC_PASSWORD or run on a terminal to be asked",
                ));
            }
        };
        if let Some(password) = remembered {
            client.login(&self.user, &password).await?;
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            let password = ask_password(&self.user, &self.server)?;
            let mut result = client.login(&self.user, &password).await;
            if result.is_err() && (client.was_closed_unserved() || matches!(result, Err(ClientError::Io(_)))) {
                // The server's login deadline passed while the password was
                // being typed: connect again (known by now) and use it.
                *client = Client::connect(&self.server, self.timeout, &self.transport).await?;
                result = client.login(&self.user, &password).await;
            }
            match result {
                Ok(_) => {
                    if let Secret::Asked(kept) = &self.password {
                        *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(password);
                    }
                    return Ok(());
                }
                Err(ClientError::Remote(body)) if body.code == ErrorCode::AuthFailed && attempt < PASSWORD_ATTEMPTS => {
                    // The server's words: a key-only user is told so.
                    eprintln!("ftpc: login failed: {}; try again", escape(&body.message));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The passphrase of an encrypted identity file: `FTPC_PASSPHRASE`, else
/// asked on the terminal; `None` without either.
fn ask_passphrase(file: &std::path::Path, again: bool) -> Result<Option<String>, ClientError> {
    if let Ok(passphrase) = std::env::var("FTPC_PASSPHRASE") {
        return Ok((!again).then_some(passphrase));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let prompt = match again {
        false => format!("Passphrase for {}: ", file.display()),
        true => format!("Wrong passphrase; passphrase for {}: ", file.display()),
    };
    rpassword::prompt_password(prompt).map(Some).map_err(|e| ClientError::Key(format!("cannot read passphrase: {e}")))
}

fn ask_password(user: &str, server: &str) -> Result<String, Failure> {
    rpassword::prompt_password(format!("Password for {}@{}: ", escape(user), escape(server)))
        .map_err(|e| local(format!("cannot read password: {e}")))
}

fn load_profile() -> Result<Profile, Failure> {
    match profile::default_path() {
        Some(path) => Profile::load(&path).map_err(local),
        None => Ok(Profile::default()),
    }
}

/// TLS as the flags say, else as the host block says, else checked
/// against the known-hosts file.
fn transport(cli: &Cli, target: &Target) -> Result<Transport, Failure> {
    let flags_say = cli.no_tls || cli.ca.is_some();
    let host = target.host.as_ref().filter(|_| !flags_say);
    let no_tls = cli.no_tls || host.is_some_and(|h| h.no_tls);
    Ok(match (no_tls, cli.ca.clone().or_else(|| host.and_then(|h| h.ca.clone()))) {
        (true, _) => Transport::Plain,
        (false, Some(ca)) => Transport::Tls(Trust::Ca(ca)),
        (false, None) => Transport::Tls(Trust::KnownHosts {
            file: known_hosts_file(target.host.as_ref())?,
            accept_new: cli.accept_new_host,
        }),
    })
}

/// `FTPC_KNOWN_HOSTS`, else the host block's `known_hosts`, else the default.
fn known_hosts_file(host: Option<&Host>) -> Result<PathBuf, Failure> {
    let file = match (std::env::var_os("FTPC_KNOWN_HOSTS"), host.and_then(|h| h.known_hosts.clone())) {
        (None, Some(file)) => Some(file),
        _ => known_hosts::default_file(),
    };
    file.ok_or_else(|| local("no config directory for the known-hosts file: set FTPC_KNOWN_HOSTS"))
}

/// `ftpc forget SERVER`: removes the server's lines from its known-hosts
/// file, saying which; a server that is not there is exit 1.
fn forget(server: &str, quiet: bool) -> Result<(), Failure> {
    let target = load_profile()?.target(server).map_err(local)?;
    let addr = target.addr.to_string();
    let file = known_hosts_file(target.host.as_ref())?;
    let removed = KnownHosts::remove(&file, &addr)?;
    if removed.is_empty() {
        return Err(local(format!("{} is not in {}", escape(&addr), file.display())));
    }
    if !quiet {
        let lines: Vec<String> = removed.iter().map(ToString::to_string).collect();
        let s = if removed.len() == 1 { "" } else { "s" };
        eprintln!("ftpc: removed {} from {} (line{s} {})", escape(&addr), file.display(), lines.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_command_and_argument_says_what_it_is() {
        ftp_manual::assert_documented(&Cli::command());
    }
}
