//! `ftpc`: command-line client for ftpd.

use clap::{CommandFactory, Parser, Subcommand};
use ftp_client::display::{escape, human_size, long_line, short_line};
use ftp_client::profile::{self, Profile};
use ftp_client::tls::{Trust, default_known_hosts};
use ftp_client::{Client, ClientError, Io, Progress, Transport};
use ftp_proto::{ErrorCode, validate_name};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Default server when neither flag, variable nor profile names one: the
/// daemon's own default address.
const DEFAULT_SERVER: &str = "127.0.0.1:2121";

#[derive(Parser)]
#[command(name = "ftpc", version, about = "Client for the ftpd file transfer daemon")]
struct Cli {
    /// Server address HOST:PORT [default: profile, else 127.0.0.1:2121].
    #[arg(long, short = 's', env = "FTPC_SERVER", global = true)]
    server: Option<String>,
    /// User name [default: profile].
    #[arg(long, short = 'u', env = "FTPC_USER", global = true)]
    user: Option<String>,
    /// No progress bar and no summary lines.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload a file. REMOTE defaults to the local file name; a REMOTE that
    /// is an existing directory (or ends in /) receives the file inside it.
    Put { local: PathBuf, remote: Option<String> },
    /// Download a file. LOCAL defaults to the remote file name in the current
    /// directory; a LOCAL that is a directory receives the file inside it.
    Get { remote: String, local: Option<PathBuf> },
    /// Upload several files over one connection, pipelined, each under its
    /// own name (in the remote directory DIR if given).
    Mput {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Remote directory to put them in [default: the home].
        #[arg(long, short = 't', value_name = "DIR")]
        to: Option<String>,
    },
    /// Download several files over one connection, pipelined, each under
    /// its own name (in the local directory DIR if given).
    Mget {
        #[arg(required = true)]
        names: Vec<String>,
        /// Local directory to put them in [default: the current one].
        #[arg(long, short = 't', value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// List a directory.
    Ls {
        path: Option<String>,
        /// Long format: kind, size, modification time.
        #[arg(short = 'l')]
        long: bool,
    },
    /// Show an entry's kind, size, time and BLAKE3 hash.
    Stat { path: String },
    /// Remove a file.
    Rm { path: String },
    /// Create a directory.
    Mkdir { path: String },
    /// Remove an empty directory.
    Rmdir { path: String },
    /// Rename or move a file or directory.
    Mv { from: String, to: String },
    /// Show used and available space in your quota.
    Df,
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man,
}

/// Exit codes, documented in the README.
mod exit {
    pub const LOCAL: u8 = 1;
    pub const CONNECT: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const REMOTE: u8 = 5;
    pub const INTEGRITY: u8 = 6;
    pub const IDENTITY: u8 = 7;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(exit::LOCAL, &format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => fail(code, &message),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("ftpc: {message}");
    ExitCode::from(code)
}

/// An exit code and the one line that explains it.
struct Failure(u8, String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match &e {
            ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Timeout | ClientError::Protocol(_) => {
                exit::CONNECT
            }
            ClientError::Remote(body) if matches!(body.code, ErrorCode::AuthFailed | ErrorCode::TooManyAttempts) => {
                exit::AUTH
            }
            ClientError::Remote(body) if body.code == ErrorCode::Integrity => exit::INTEGRITY,
            ClientError::Remote(_) => exit::REMOTE,
            ClientError::Integrity(_) => exit::INTEGRITY,
            ClientError::Local { .. } => exit::LOCAL,
            ClientError::Tls(_) | ClientError::UnknownHost { .. } | ClientError::HostChanged { .. } => exit::IDENTITY,
        };
        let message = match &e {
            ClientError::Remote(body) if body.code == ErrorCode::AuthFailed => {
                "login failed: unknown user or wrong password".to_owned()
            }
            ClientError::Remote(body) => format!("{} [{}]", escape(&body.message), body.code),
            other => escape(&other.to_string()).into_owned(),
        };
        Failure(code, message)
    }
}

fn local(message: impl Into<String>) -> Failure {
    Failure(exit::LOCAL, message.into())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // Offline commands: no server, no login.
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "ftpc", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            return clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| local(format!("cannot write the manual page: {e}")));
        }
        _ => {}
    }
    let profile = match profile::default_path() {
        Some(path) => Profile::load(&path).map_err(local)?,
        None => Profile::default(),
    };
    let server = cli.server.or(profile.server).unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let user = cli.user.or(profile.user).ok_or_else(|| {
        local("no user given: pass --user NAME, set FTPC_USER, or put `user = \"NAME\"` in the profile")
    })?;
    let password = read_password(&user, &server)?;
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let transport = match (cli.no_tls, cli.ca) {
        (true, _) => Transport::Plain,
        (false, Some(ca)) => Transport::Tls(Trust::Ca(ca)),
        (false, None) => {
            let file = default_known_hosts()
                .ok_or_else(|| local("no config directory for the known-hosts file: set FTPC_KNOWN_HOSTS"))?;
            Transport::Tls(Trust::KnownHosts { file, accept_new: cli.accept_new_host })
        }
    };
    let mut client = Client::connect(&server, timeout, &transport).await?;
    client.login(&user, &password).await?;
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();

    match cli.command {
        Command::Put { local: path, remote } => put(&mut client, &path, remote, show_progress, cli.quiet).await?,
        Command::Get { remote, local: path } => get(&mut client, &remote, path, show_progress, cli.quiet).await?,
        Command::Mput { files, to } => mput(&mut client, &files, to, show_progress, cli.quiet).await?,
        Command::Mget { names, to } => mget(&mut client, &names, to, show_progress, cli.quiet).await?,
        Command::Ls { path, long } => {
            let entries = client.list(path.as_deref()).await?;
            for entry in &entries {
                println!("{}", if long { long_line(entry) } else { short_line(entry) });
            }
        }
        Command::Stat { path } => {
            let stat = client.stat(&path).await?;
            let e = &stat.entry;
            println!("name:  {}", escape(&e.name));
            println!("kind:  {:?}", e.kind);
            println!("size:  {} ({})", e.size, human_size(e.size));
            println!("mtime: {}", ftp_client::display::format_time(e.mtime));
            if let Some(hash) = &stat.hash {
                println!("blake3: {}", escape(hash));
            }
        }
        Command::Rm { path } => client.remove(&path).await?,
        Command::Mkdir { path } => client.mkdir(&path).await?,
        Command::Rmdir { path } => client.rmdir(&path).await?,
        Command::Mv { from, to } => client.rename(&from, &to).await?,
        Command::Completions { .. } | Command::Man => unreachable!("handled before connecting"),
        Command::Df => {
            let df = client.df().await?;
            match (df.quota, df.available) {
                (Some(quota), Some(available)) => println!(
                    "used {} of {} ({} available)",
                    human_size(df.used),
                    human_size(quota),
                    human_size(available)
                ),
                _ => println!("used {} (no quota)", human_size(df.used)),
            }
        }
    }
    let _ = client.quit().await;
    Ok(())
}

fn read_password(user: &str, server: &str) -> Result<String, Failure> {
    if let Ok(p) = std::env::var("FTPC_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(local("no password: set FTPC_PASSWORD or run on a terminal to be asked"));
    }
    rpassword::prompt_password(format!("Password for {user}@{server}: "))
        .map_err(|e| local(format!("cannot read password: {e}")))
}

/// A progress bar (hidden when not wanted) that also announces a resume.
struct Bar {
    bar: ProgressBar,
    quiet: bool,
}

impl Bar {
    fn new(label: &str, visible: bool, quiet: bool) -> Bar {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_owned());
        Bar { bar, quiet }
    }
}

impl Progress for Bar {
    fn start(&mut self, offset: u64, total: u64) {
        if offset > 0 && !self.quiet {
            self.bar.suspend(|| eprintln!("resuming at {} of {}", human_size(offset), human_size(total)));
        }
        self.bar.set_length(total);
        self.bar.set_position(offset);
        self.bar.reset_eta();
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

async fn put(
    client: &mut Client<Box<dyn Io>>,
    path: &Path,
    remote: Option<String>,
    bar: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let meta = std::fs::metadata(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(local(format!("{}: not a regular file", path.display())));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| local(format!("{}: the file name is not valid UTF-8", path.display())))?;
    let remote = match remote {
        None => name.to_owned(),
        Some(r) if r.ends_with('/') => format!("{r}{name}"),
        // A cheap probe: `cd` succeeds only for a directory (stat would
        // hash an existing file). The session is one-shot, so moving its
        // working directory is harmless.
        Some(r) => match client.cd(Some(&r)).await {
            Ok(_) => name.to_owned(),
            Err(ClientError::Remote(_)) => r,
            Err(e) => return Err(e.into()),
        },
    };
    let mut progress = Bar::new(&escape(&remote), bar, quiet);
    let result = client.put_file(path, &remote, &mut progress).await;
    progress.bar.finish_and_clear();
    let ok = result?.stored;
    if !quiet {
        eprintln!(
            "uploaded {} ({}, blake3 {})",
            escape(&ok.path),
            human_size(ok.size),
            escape(&ok.hash[..16.min(ok.hash.len())])
        );
    }
    Ok(())
}

async fn get(
    client: &mut Client<Box<dyn Io>>,
    remote: &str,
    target: Option<PathBuf>,
    bar: bool,
    quiet: bool,
) -> Result<(), Failure> {
    // The local name comes from what the user typed, never from the server,
    // and is checked like any remote name before it touches the disk.
    let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let checked = validate_name(name).map(|()| name);
    let path = match target {
        Some(t) if t.is_dir() => t.join(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
        Some(t) => t,
        None => PathBuf::from(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
    };
    let mut progress = Bar::new(&escape(remote), bar, quiet);
    let result = client.get_file(remote, &path, &mut progress).await;
    progress.bar.finish_and_clear();
    let summary = result?;
    if !quiet {
        eprintln!("downloaded {} ({}, blake3 {})", path.display(), human_size(summary.size), &summary.hash[..16]);
    }
    Ok(())
}

/// One bar for a batch: each file's `start` adds its bytes to the total.
struct BatchBar(ProgressBar);

impl BatchBar {
    fn new(files: usize, visible: bool) -> BatchBar {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("{files} files"));
        BatchBar(bar)
    }
}

impl Progress for BatchBar {
    fn start(&mut self, offset: u64, total: u64) {
        self.0.inc_length(total);
        self.0.inc(offset);
    }

    fn advance(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Reports each failure of a batch on its own line; the exit code is the
/// first failure's.
fn batch_outcome<T>(
    names: impl Iterator<Item = String>,
    results: Vec<Result<T, ClientError>>,
    verb: &str,
    size: impl Fn(&T) -> u64,
    quiet: bool,
) -> Result<(), Failure> {
    let (mut done, mut bytes, mut first) = (0usize, 0u64, None);
    for (name, result) in names.zip(results) {
        match result {
            Ok(summary) => {
                done += 1;
                bytes += size(&summary);
            }
            Err(e) => {
                let Failure(code, message) = Failure::from(e);
                eprintln!("ftpc: {}: {message}", escape(&name));
                first.get_or_insert(code);
            }
        }
    }
    if !quiet {
        eprintln!("{verb} {done} files ({})", human_size(bytes));
    }
    match first {
        Some(code) => Err(Failure(code, format!("some files were not {verb}"))),
        None => Ok(()),
    }
}

async fn mput(
    client: &mut Client<Box<dyn Io>>,
    files: &[PathBuf],
    to: Option<String>,
    bar: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let dir = to.map(|d| if d.ends_with('/') { d } else { format!("{d}/") }).unwrap_or_default();
    let mut items = Vec::with_capacity(files.len());
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| local(format!("{}: the file name is not valid UTF-8", path.display())))?;
        if items.iter().any(|(_, r): &(PathBuf, String)| r.rsplit('/').next() == Some(name)) {
            return Err(local(format!("two of the files are named {}: put them separately", escape(name))));
        }
        items.push((path.clone(), format!("{dir}{name}")));
    }
    let mut progress = BatchBar::new(items.len(), bar);
    let results = client.put_many(&items, &mut progress).await;
    progress.0.finish_and_clear();
    let names = items.iter().map(|(l, _)| l.display().to_string());
    batch_outcome(names, results, "uploaded", |s| s.stored.size, quiet)
}

async fn mget(
    client: &mut Client<Box<dyn Io>>,
    names: &[String],
    to: Option<PathBuf>,
    bar: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let dir = to.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(local(format!("{}: not a directory", dir.display())));
    }
    // Local names come from what the user typed, checked like remote names.
    let mut items = Vec::with_capacity(names.len());
    for remote in names {
        let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        validate_name(name).map_err(|e| local(format!("{}: cannot derive a local name: {e}", escape(remote))))?;
        if items.iter().any(|(_, l): &(String, PathBuf)| l.file_name() == Some(name.as_ref())) {
            return Err(local(format!("two of the files are named {}: get them separately", escape(name))));
        }
        items.push((remote.clone(), dir.join(name)));
    }
    let mut progress = BatchBar::new(items.len(), bar);
    let results = client.get_many(&items, &mut progress).await;
    progress.0.finish_and_clear();
    batch_outcome(names.iter().cloned(), results, "downloaded", |s| s.size, quiet)
}
