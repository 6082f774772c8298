//! `ftpd`: parse flags, load configuration, set up logging, bind, run.

mod manual;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use ftp_proto::RemotePath;
use ftp_proto::size::{exact_size, human_size, parse_size};
use ftp_server::access::{NamePattern, Permissions};
use ftp_server::config::{Config, Flags, LogFormat};
use ftp_server::keys;
use ftp_server::users::{UserRecord, UserSource, hash_password, validate_user_name};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "ftpd", version, about = "Multi-user file transfer daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (defaults: 127.0.0.1:2121, data in ./ftpd-data).
    Serve {
        /// TOML configuration file (see config/ftpd.toml).
        #[arg(long, env = "FTPD_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        flags: Flags,
    },
    /// Print the SHA-256 fingerprint of the daemon's TLS certificate (made
    /// now if the daemon has none yet), for clients to pin.
    Fingerprint {
        /// TOML configuration file.
        #[arg(long, env = "FTPD_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        flags: Flags,
    },
    /// Ask a running daemon's admin listener whether it is ready (GET
    /// /readyz); exit 0 if so, 1 if not. For container health checks.
    Health {
        /// TOML configuration file, to find `admin_listen`.
        #[arg(long, env = "FTPD_CONFIG")]
        config: Option<PathBuf>,
        /// Admin listener to ask [default: admin_listen from the
        /// configuration].
        #[arg(long, env = "FTPD_ADMIN_LISTEN", value_name = "ADDR")]
        admin: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output, or write the
    /// pages of ftpd and every command (ftpd.1, ftpd-serve.1, ...) into DIR.
    Man {
        /// Directory to write the pages into, e.g. /usr/local/share/man/man1
        /// (created if missing) [default: print ftpd.1 to standard output].
        dir: Option<PathBuf>,
    },
    /// Show what users store, or count it again (--recount) from what the
    /// object store holds, for the usage records daemons sharing a bucket
    /// keep.
    Usage {
        /// TOML configuration file (the daemon's: where the files and the
        /// users are).
        #[arg(long, env = "FTPD_CONFIG")]
        config: Option<PathBuf>,
        /// Data root.
        #[arg(long, env = "FTPD_ROOT")]
        root: Option<PathBuf>,
        /// Users file.
        #[arg(long, env = "FTPD_USERS")]
        users: Option<PathBuf>,
        /// Count each user's usage record again from a listing of the
        /// bucket (files and the parts of interrupted uploads), correcting
        /// any drift; refused for a user with an upload in progress.
        #[arg(long)]
        recount: bool,
        /// Users [default: every user].
        names: Vec<String>,
    },
    /// Manage users: in the users file, or in the database when the
    /// configuration sets `database` (with storage = s3).
    User {
        #[command(flatten)]
        at: UsersAt,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage shared folders: one directory mounted at /NAME in the home
    /// of each user given it (`ftpd user set USER --folder NAME=LIST`),
    /// with a quota and name rules of its own.
    Folder {
        #[command(flatten)]
        at: UsersAt,
        #[command(subcommand)]
        action: FolderAction,
    },
}

/// Where `ftpd user` and `ftpd folder` find the users.
#[derive(clap::Args)]
struct UsersAt {
    /// TOML configuration file, to find the users file or database.
    #[arg(long, env = "FTPD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data root (the users file defaults to ROOT/users.toml).
    #[arg(long, env = "FTPD_ROOT", global = true)]
    root: Option<PathBuf>,
    /// Users file.
    #[arg(long, env = "FTPD_USERS", global = true)]
    users: Option<PathBuf>,
}

impl UsersAt {
    /// The users file or database the flags and configuration name.
    fn source(self) -> Result<UserSource> {
        let flags = Flags::default().with("root", self.root)?.with("users", self.users)?;
        let config = Config::load(self.config.as_deref(), &flags)?;
        Ok(UserSource::from_config(&config)?)
    }
}

#[derive(Subcommand)]
enum FolderAction {
    /// Make a shared folder.
    Add {
        /// Folder name (mounted at /NAME): 1-32 of a-z A-Z 0-9 _ -.
        name: String,
        #[command(flatten)]
        options: FolderOptions,
    },
    /// Change a shared folder's quota or name rules; only what is given
    /// changes.
    Set {
        /// Folder name.
        name: String,
        #[command(flatten)]
        options: FolderOptions,
    },
    /// Remove a shared folder (refused while users are given it; its
    /// files stay in the store).
    Del {
        /// Folder name.
        name: String,
    },
    /// List shared folders, their quotas and who is given each.
    List,
}

#[derive(clap::Args)]
struct FolderOptions {
    /// Most bytes the folder may hold, whoever stores them, e.g. 10GiB,
    /// or none.
    #[arg(long, value_name = "SIZE")]
    quota: Option<String>,
    /// Names new files and directories in it must match one of;
    /// repeatable, replaces the list; "" clears it.
    #[arg(long, value_name = "PATTERN")]
    allow: Vec<String>,
    /// Names new files and directories in it must not match, e.g.
    /// '*.exe'; repeatable, replaces the list; "" clears it.
    #[arg(long, value_name = "PATTERN")]
    deny: Vec<String>,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user (prompts for the password on a terminal).
    Add {
        /// User name: 1-32 of a-z A-Z 0-9 _ -.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Disk quota, e.g. 10GiB, 1.5 GiB, 600M or 600MiB (600 × 2^20 bytes),
        /// 600MB (600 × 10^6 bytes), 1048576 [default: unlimited].
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
        /// The user logs in with a key only (add one with `ftpd user
        /// add-key`): password login is refused, and no password is asked
        /// for (one given with --password-stdin is kept for later).
        #[arg(long)]
        key_only: bool,
    },
    /// Authorize OpenSSH public keys for a user's key login: the keys in
    /// FILE (`id_ed25519.pub`, or `authorized_keys` lines without options),
    /// or on standard input (`-`). Ed25519, ECDSA and RSA (2048-4096 bits).
    AddKey {
        /// User name.
        name: String,
        /// File of public keys, one a line, or `-` for standard input.
        file: PathBuf,
    },
    /// List a user's authorized keys: type, SHA256 fingerprint, comment.
    ListKeys {
        /// User name.
        name: String,
    },
    /// Remove an authorized key from a user, by its fingerprint (as
    /// `ftpd user list-keys` and `ssh-keygen -l` print it).
    DelKey {
        /// User name.
        name: String,
        /// The key's fingerprint, `SHA256:...` (the prefix may be left out).
        fingerprint: String,
    },
    /// Turn password login off (`on`: the user logs in with a key only) or
    /// back on (`off`) for a user.
    SetKeyOnly {
        /// User name.
        name: String,
        /// `on`: key login only; `off`: the password works again.
        #[arg(value_enum)]
        setting: Switch,
    },
    /// Set or clear a user's disk quota.
    SetQuota {
        /// User name.
        name: String,
        /// Quota, e.g. 10GiB, 1.5 GiB, 600M or 600MiB (600 × 2^20 bytes),
        /// 600MB (600 × 10^6 bytes), 1048576, or `none` for unlimited.
        size: String,
    },
    /// Remove a user (their files stay on disk).
    Del {
        /// User name.
        name: String,
    },
    /// Change a user's password.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their quotas (and, for those who have any, their
    /// number of keys and whether they log in with a key only).
    List,
    /// Set what a user may do: permissions (in the home and per
    /// directory), name rules, the largest file, and bandwidth caps. Only
    /// what is given changes; `ftpd user show` prints the result.
    Set {
        /// User name.
        name: String,
        /// Permissions in the home where no --path rule applies: a comma
        /// list of list, download, upload, overwrite, delete, rename, mkdir,
        /// or all, or none.
        #[arg(long, value_name = "LIST")]
        permissions: Option<Permissions>,
        /// Permissions for a directory and everything below it, e.g.
        /// /public=list,download (the longest matching path wins);
        /// repeatable.
        #[arg(long = "path", value_name = "DIR=LIST", value_parser = parse_dir_rule)]
        paths: Vec<(RemotePath, Permissions)>,
        /// Removes the rule of a directory; repeatable.
        #[arg(long = "unset-path", value_name = "DIR", value_parser = parse_dir)]
        unset_paths: Vec<RemotePath>,
        /// Names new files and directories must match one of (`*` and `?`,
        /// either case); repeatable, replaces the list; "" clears it.
        #[arg(long, value_name = "PATTERN")]
        allow: Vec<String>,
        /// Names new files and directories must not match, e.g. '*.exe';
        /// repeatable, replaces the list; "" clears it.
        #[arg(long, value_name = "PATTERN")]
        deny: Vec<String>,
        /// The largest file one upload may store, e.g. 100MiB, or none.
        #[arg(long, value_name = "SIZE")]
        max_file_size: Option<String>,
        /// Bytes per second this user's uploads may take together (all
        /// their sessions), e.g. 8MiB, or off.
        #[arg(long, value_name = "RATE")]
        upload_rate: Option<String>,
        /// Bytes per second this user's downloads may take together, or off.
        #[arg(long, value_name = "RATE")]
        download_rate: Option<String>,
        /// Gives the user a shared folder, mounted at /FOLDER, with these
        /// permissions, e.g. team=list,download,upload; repeatable.
        #[arg(long = "folder", value_name = "FOLDER=LIST", value_parser = parse_folder_grant)]
        folders: Vec<(String, Permissions)>,
        /// Takes a shared folder away from the user; repeatable.
        #[arg(long = "unset-folder", value_name = "FOLDER")]
        unset_folders: Vec<String>,
    },
    /// Show a user's record (without the password hash), as in the users
    /// file.
    Show {
        /// User name.
        name: String,
    },
}

/// `DIR=LIST` of `ftpd user set --path`.
fn parse_dir_rule(text: &str) -> Result<(RemotePath, Permissions), String> {
    let (dir, list) = text.split_once('=').ok_or("expected DIR=LIST, e.g. /public=list,download")?;
    Ok((parse_dir(dir)?, list.parse()?))
}

/// `FOLDER=LIST` of `ftpd user set --folder`.
fn parse_folder_grant(text: &str) -> Result<(String, Permissions), String> {
    let (folder, list) = text.split_once('=').ok_or("expected FOLDER=LIST, e.g. team=list,download,upload")?;
    Ok((folder.to_owned(), list.parse()?))
}

/// An absolute directory of the home.
fn parse_dir(text: &str) -> Result<RemotePath, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?}: a directory of the home starts with /"));
    }
    RemotePath::resolve(&RemotePath::root(), text).map_err(|e| format!("{text:?}: {e}"))
}

/// A size, or `none`/`off` for no limit.
fn optional_size(text: &str, none: &str) -> Result<Option<u64>> {
    match text.trim() {
        t if t == none || t == "none" || t == "off" => Ok(None),
        t => Ok(Some(parse_size(t).map_err(anyhow::Error::msg)?)),
    }
}

/// A user's record as a table of the users file, without the password
/// hash.
fn show(name: &str, record: &UserRecord) -> Result<String> {
    let mut table = toml::Table::try_from(record).context("cannot show the record")?;
    table.remove("password");
    let mut users = toml::Table::new();
    users.insert(name.to_owned(), toml::Value::Table(table));
    let mut whole = toml::Table::new();
    whole.insert("users".to_owned(), toml::Value::Table(users));
    toml::to_string(&whole).context("cannot show the record")
}

/// Name patterns from the command line: one "" clears the list.
fn patterns(given: &[String]) -> Result<Vec<NamePattern>> {
    given.iter().filter(|p| !p.is_empty()).map(|p| NamePattern::new(p).map_err(anyhow::Error::msg)).collect()
}

/// On or off.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ftpd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, flags } => {
            let config = Config::load(config.as_deref(), &flags)?;
            init_logging(config.log_format);
            return_large_allocations();
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config))
        }
        Command::Fingerprint { config, flags } => {
            let config = Config::load(config.as_deref(), &flags)?;
            let id = ftp_server::tls::TlsIdentity::load(ftp_server::tls::CertPaths::from_config(&config))?;
            println!("{}", id.fingerprint());
            Ok(())
        }
        Command::Health { config, admin, timeout } => {
            let flags = Flags::default().with("admin_listen", admin)?;
            let Some(mut addr) = Config::load(config.as_deref(), &flags)?.admin_listen else {
                bail!("no admin listener configured: pass --admin ADDR or set FTPD_ADMIN_LISTEN / admin_listen");
            };
            // A listener on every address answers on loopback too.
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
            }
            let timeout = std::time::Duration::from_secs(timeout.max(1));
            match ftp_server::admin::probe(addr, timeout) {
                Ok(()) => {
                    println!("ready");
                    Ok(())
                }
                Err(why) => bail!("not ready: {why}"),
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ftpd", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => {
            let manual = manual::manual();
            match dir {
                None => manual.render_main(&mut std::io::stdout()).context("cannot write the manual page")?,
                Some(dir) => {
                    manual
                        .write_to(&dir)
                        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
                }
            }
            Ok(())
        }
        Command::Usage { config, root, users, recount, names } => {
            let flags = Flags::default().with("root", root)?.with("users", users)?;
            let config = Config::load(config.as_deref(), &flags)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(ftp_server::usage::report(&config, recount, names))
        }
        Command::User { at, action } => {
            let source = at.source()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(user_command(&source, action))
        }
        Command::Folder { at, action } => {
            let source = at.source()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(folder_command(&source, action))
        }
    }
}

/// Raises the soft limit on open files to the hard limit: each session is a
/// descriptor, and the default soft limit (often 1024) is far below what a
/// busy daemon needs.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Makes the allocator map large blocks (transfer buffers, a password
/// check's working memory) on their own and unmap them when freed. By
/// default glibc raises that threshold after the first such block is freed
/// and keeps later ones in its heap, so the daemon's memory would stay at
/// the high-water mark of its busiest moment.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn serve(config: Config) -> Result<()> {
    raise_fd_limit();
    let listener = match ftp_server::systemd::activated_listener().context("socket activation")? {
        Some(listener) => {
            tracing::info!("serving the socket passed by the service manager (socket activation)");
            tokio::net::TcpListener::from_std(listener).context("cannot use the passed socket")?
        }
        None => tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?,
    };
    let shutdown = CancellationToken::new();
    let reload = Arc::new(Notify::new());
    let (trigger, notify) = (shutdown.clone(), reload.clone());
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => notify.notify_one(),
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!("signal received: draining");
        trigger.cancel();
    });
    ftp_server::run(listener, config, shutdown, reload).await
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn user_command(source: &UserSource, action: UserAction) -> Result<()> {
    source.prepare().await?;
    let place = source.describe();
    match action {
        UserAction::Add { name, password_stdin, quota, key_only } => {
            validate_user_name(&name)?;
            if source.get(&name).await?.is_some() {
                bail!("user {name:?} already exists (use `ftpd user passwd` to change the password)");
            }
            let password = match (key_only, password_stdin) {
                // A password no one knows: password login stays refused
                // even if key-only is turned off, until `passwd` sets one.
                (true, false) => unguessable_password(),
                _ => read_password(password_stdin)?,
            };
            let record = UserRecord { password: hash_password(&password)?, quota, key_only, ..UserRecord::default() };
            source.add(&name, record).await?;
            match key_only {
                true => println!("added user {name} to {place}, key login only (add a key with `ftpd user add-key`)"),
                false => println!("added user {name} to {place}"),
            }
        }
        UserAction::AddKey { name, file } => {
            let text = match file.as_os_str() == "-" {
                true => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                        .context("cannot read the keys from standard input")?;
                    text
                }
                false => std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?,
            };
            let from = if file.as_os_str() == "-" { "standard input".to_owned() } else { file.display().to_string() };
            let keys = keys::parse_key_file(&text).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
            let Some(record) = source.get(&name).await? else { bail!("no such user {name:?}") };
            let mut added = Vec::new();
            for key in &keys {
                let already = keys::is_authorized(&record.keys, key)
                    || added.iter().any(|k: &ssh_key::PublicKey| k.key_data() == key.key_data());
                if already {
                    println!("key {} is already authorized for {name}", keys::fingerprint(key));
                } else {
                    added.push(key.clone());
                }
            }
            let lines: Vec<String> = added.iter().map(|k| k.to_openssh()).collect::<Result<_, _>>()?;
            source
                .change(&name, |user| {
                    for line in &lines {
                        let key = ssh_key::PublicKey::from_openssh(line).expect("written just now");
                        if !keys::is_authorized(&user.keys, &key) {
                            user.keys.push(line.clone());
                        }
                    }
                })
                .await?;
            for key in &added {
                println!("added key {} to {name}", describe_key(key));
            }
        }
        UserAction::ListKeys { name } => {
            let Some(record) = source.get(&name).await? else { bail!("no such user {name:?}") };
            for line in &record.keys {
                let key = keys::parse_key(line).map_err(|e| anyhow::anyhow!("a key of {name} in {place}: {e}"))?;
                println!("{}", describe_key(&key));
            }
            if record.keys.is_empty() {
                eprintln!("{name} has no keys (add one with `ftpd user add-key {name} FILE`)");
            }
        }
        UserAction::DelKey { name, fingerprint } => {
            // As ssh-keygen -l prints it, or without its `SHA256:`.
            let fingerprint = match fingerprint.starts_with("SHA256:") {
                true => fingerprint,
                false => format!("SHA256:{fingerprint}"),
            };
            let Some(record) = source.get(&name).await? else { bail!("no such user {name:?}") };
            let matches = |line: &String| keys::parse_key(line).is_ok_and(|k| keys::fingerprint(&k) == fingerprint);
            if !record.keys.iter().any(matches) {
                bail!("{name} has no key {fingerprint} (see `ftpd user list-keys {name}`)");
            }
            source.change(&name, |user| user.keys.retain(|line| !matches(line))).await?;
            println!("removed key {fingerprint} from {name}");
            if record.key_only && record.keys.iter().filter(|l| !matches(l)).count() == 0 {
                println!(
                    "{name} logs in with a key only and now has none: add one, or `ftpd user set-key-only {name} off`"
                );
            }
        }
        UserAction::SetKeyOnly { name, setting } => {
            let on = matches!(setting, Switch::On);
            let Some(record) = source.get(&name).await? else { bail!("no such user {name:?}") };
            source.change(&name, |user| user.key_only = on).await?;
            match on {
                true if record.keys.is_empty() => println!(
                    "{name} logs in with a key only now, and has no key yet: add one with `ftpd user add-key {name} FILE`"
                ),
                true => println!("{name} logs in with a key only now"),
                false => println!(
                    "password login is on again for {name} (if they never had a password, set one with `ftpd user passwd {name}`)"
                ),
            }
        }
        UserAction::SetQuota { name, size } => {
            let quota = match size.as_str() {
                "none" | "unlimited" => None,
                text => Some(parse_size(text).map_err(anyhow::Error::msg)?),
            };
            source.change(&name, |user| user.quota = quota).await?;
            match quota {
                Some(q) => println!("quota of {name} set to {} ({q} bytes)", human_size(q)),
                None => println!("quota of {name} removed (unlimited)"),
            }
        }
        UserAction::Del { name } => {
            source.remove(&name).await?;
            println!("removed user {name} from {place} (their files are kept)");
        }
        UserAction::Passwd { name, password_stdin } => {
            if source.get(&name).await?.is_none() {
                bail!("no such user {name:?}");
            }
            let password = hash_password(&read_password(password_stdin)?)?;
            source.change(&name, |user| user.password = password.clone()).await?;
            println!("password changed for {name}");
        }
        UserAction::Set {
            name,
            permissions,
            paths,
            unset_paths,
            allow,
            deny,
            max_file_size,
            upload_rate,
            download_rate,
            folders,
            unset_folders,
        } => {
            for (folder, _) in &folders {
                if source.folder(folder).await?.is_none() {
                    bail!("no such folder {folder:?} (make it with `ftpd folder add {folder}`)");
                }
            }
            let allow_list = if allow.is_empty() { None } else { Some(patterns(&allow)?) };
            let deny_list = if deny.is_empty() { None } else { Some(patterns(&deny)?) };
            let max_file_size = max_file_size.map(|s| optional_size(&s, "none")).transpose()?;
            let upload_rate = upload_rate.map(|s| optional_size(&s, "off")).transpose()?;
            let download_rate = download_rate.map(|s| optional_size(&s, "off")).transpose()?;
            if [upload_rate, download_rate].iter().any(|r| r.flatten().is_some_and(|r| r < ftp_proto::pace::MIN_RATE)) {
                bail!("a rate below 64 KiB (per second) would let a chunk outlast timeouts; say off for no cap");
            }
            source
                .change(&name, |user| {
                    if let Some(p) = permissions {
                        user.permissions = p;
                    }
                    for dir in &unset_paths {
                        user.paths.set(dir.clone(), None);
                    }
                    for (dir, p) in &paths {
                        user.paths.set(dir.clone(), Some(*p));
                    }
                    if let Some(allow) = &allow_list {
                        user.allow = allow.clone();
                    }
                    if let Some(deny) = &deny_list {
                        user.deny = deny.clone();
                    }
                    if let Some(max) = max_file_size {
                        user.max_file_size = max;
                    }
                    if let Some(rate) = upload_rate {
                        user.upload_rate = rate;
                    }
                    if let Some(rate) = download_rate {
                        user.download_rate = rate;
                    }
                    for folder in &unset_folders {
                        user.folders.remove(folder);
                    }
                    for (folder, permissions) in &folders {
                        user.folders.insert(folder.clone(), *permissions);
                    }
                })
                .await?;
            let record = source.get(&name).await?.ok_or_else(|| anyhow::anyhow!("no such user {name:?}"))?;
            print!("{}", show(&name, &record)?);
        }
        UserAction::Show { name } => {
            let record = source.get(&name).await?.ok_or_else(|| anyhow::anyhow!("no such user {name:?}"))?;
            print!("{}", show(&name, &record)?);
        }
        UserAction::List => {
            for (name, record) in &source.load().await?.users {
                let mut line = match record.quota {
                    Some(q) => format!("{name}\tquota {}", exact_size(q)),
                    None => format!("{name}\tunlimited"),
                };
                if !record.keys.is_empty() {
                    let s = if record.keys.len() == 1 { "" } else { "s" };
                    line.push_str(&format!("\t{} key{s}", record.keys.len()));
                }
                if record.key_only {
                    line.push_str("\tkey only");
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}

async fn folder_command(source: &UserSource, action: FolderAction) -> Result<()> {
    source.prepare().await?;
    let place = source.describe();
    let (name, options, create) = match action {
        FolderAction::Add { name, options } => (name, options, true),
        FolderAction::Set { name, options } => (name, options, false),
        FolderAction::Del { name } => {
            source.remove_folder(&name).await?;
            println!("removed folder {name} from {place} (its files are kept)");
            return Ok(());
        }
        FolderAction::List => {
            let users = source.load().await?;
            for (name, folder) in &users.folders {
                let given: Vec<String> = users
                    .users
                    .iter()
                    .filter_map(|(user, u)| Some(format!("{user}={}", u.folders.get(name)?)))
                    .collect();
                let quota = folder.quota.map_or("unlimited".to_owned(), |q| format!("quota {}", exact_size(q)));
                println!("{name}\t{quota}\t{}", given.join(" "));
            }
            return Ok(());
        }
    };
    let quota = options.quota.map(|q| optional_size(&q, "none")).transpose()?;
    let allow = if options.allow.is_empty() { None } else { Some(patterns(&options.allow)?) };
    let deny = if options.deny.is_empty() { None } else { Some(patterns(&options.deny)?) };
    source
        .change_folder(&name, create, |folder| {
            if let Some(quota) = quota {
                folder.quota = quota;
            }
            if let Some(allow) = &allow {
                folder.allow = allow.clone();
            }
            if let Some(deny) = &deny {
                folder.deny = deny.clone();
            }
        })
        .await?;
    let verb = if create { "added" } else { "changed" };
    println!("{verb} folder {name} in {place}; give it to users with `ftpd user set USER --folder {name}=LIST`");
    Ok(())
}

/// `TYPE SHA256:... COMMENT`, as `ftpd user list-keys` prints a key.
fn describe_key(key: &ssh_key::PublicKey) -> String {
    let comment = key.comment();
    let mut line = format!("{} {}", key.algorithm().as_str(), keys::fingerprint(key));
    if !comment.is_empty() {
        line.push(' ');
        line.push_str(&comment.escape_debug().to_string());
    }
    line
}

/// A random password that is thrown away once hashed (for a key-only user).
fn unguessable_password() -> String {
    format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())
}

fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("empty password on stdin");
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for a password: use --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Again: ")?;
    if first != second {
        bail!("passwords do not match");
    }
    Ok(first)
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
