//! The commands, shared by the one-shot CLI and the interactive shell.

use crate::progress::{Bar, BatchBar, Done, batch_done, file_done};
use crate::{Command, Failure, PartialsAction, exit, local, usage};
use ftp_client::display::{escape, format_instant, format_time, human_size, kind_name, long_line, short_line};
use ftp_client::tree::{self, make_local_dirs, make_target_dir, walk_local};
use ftp_client::{Client, ClientError, GetOptions, Io, PutOptions};
use ftp_proto::{EntryKind, ErrorCode, validate_name};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Refuses, naming what needs it, when the server implements an older
/// revision of the protocol than `revision` (see PROTOCOL.md §8).
fn needs_revision(client: &Client<Box<dyn Io>>, revision: u32, what: &str) -> Result<(), Failure> {
    let theirs = client.server.revision;
    if theirs >= revision {
        return Ok(());
    }
    Err(Failure(
        exit::REMOTE,
        format!("the server speaks protocol 1.{theirs}: it can't {what} (that needs 1.{revision}); upgrade ftpd"),
    ))
}

/// How results are shown.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Draw progress bars (stderr is a terminal and not quiet).
    pub bars: bool,
    /// No summary lines.
    pub quiet: bool,
    /// Print each transferred file's full BLAKE3 on stdout (`--hash`).
    pub hashes: bool,
}

/// Runs one command on a logged-in connection.
pub async fn run(client: &mut Client<Box<dyn Io>>, command: Command, ui: Ui) -> Result<(), Failure> {
    match command {
        Command::Put { recursive, no_clobber, preserve, paths } => {
            let (sources, target) = split_target(paths);
            let sources: Vec<PathBuf> = sources.into_iter().map(PathBuf::from).collect();
            let target = target.as_deref().map(remote_arg).transpose()?;
            set_put_options(client, PutOptions { preserve, no_clobber })?;
            let result = put_paths(client, &sources, target, recursive, no_clobber, ui).await;
            client.set_put_options(PutOptions::default());
            result
        }
        Command::Get { recursive, no_clobber, preserve, paths } => {
            let (sources, target) = split_target(paths);
            let sources = sources.iter().map(|s| remote_arg(s)).collect::<Result<Vec<_>, _>>()?;
            let options = GetOptions { write_through: true, no_clobber, preserve };
            get_paths(client, &sources, target.map(PathBuf::from), recursive, options, ui).await
        }
        Command::Mput { files, to, no_clobber, preserve } => {
            let mut all = Vec::new();
            for f in files {
                match expand_local(&f)? {
                    Some(found) => all.extend(found),
                    None => all.push(f),
                }
            }
            set_put_options(client, PutOptions { preserve, no_clobber })?;
            let result = mput(client, &all, to, no_clobber, ui).await;
            client.set_put_options(PutOptions::default());
            result
        }
        Command::Mget { names, to, no_clobber, preserve } => {
            let mut all = Vec::new();
            for n in names {
                match expand_remote(client, &n).await? {
                    Some(found) => all.extend(found),
                    None => all.push(n),
                }
            }
            mget(client, &all, to, GetOptions { write_through: true, no_clobber, preserve }, ui).await
        }
        Command::Ls { path, long, human, all, json, help: _ } => {
            let mut entries = client.list(path.as_deref()).await?;
            // As ls: names starting with `.` only with -a.
            entries.retain(|e| all || !e.name.starts_with('.'));
            if json {
                println!("{}", serde_json::to_string_pretty(&entries).expect("entries serialize"));
            } else {
                for entry in &entries {
                    println!("{}", if long { long_line(entry, human) } else { short_line(entry) });
                }
            }
            Ok(())
        }
        Command::Stat { path, json } => {
            let stat = client.stat(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stat).expect("stat serializes"));
                return Ok(());
            }
            // The JSON's fields, in its spelling: exact values first, then
            // in parentheses for people.
            let e = &stat.entry;
            println!("name:  {}", escape(&e.name));
            println!("kind:  {}", kind_name(e.kind));
            println!("size:  {} ({})", e.size, human_size(e.size));
            println!("mtime: {} ({})", e.mtime, format_instant(e.mtime));
            if let Some(hash) = &stat.hash {
                println!("hash:  {}", escape(hash));
            }
            Ok(())
        }
        Command::Rm { recursive, force, paths } => crate::remove::run(client, &paths, recursive, force).await,
        Command::Mkdir { parents, paths } => {
            for path in &paths {
                match parents {
                    true => mkdir_parents(client, path).await?,
                    false => client.mkdir(path).await?,
                }
            }
            Ok(())
        }
        Command::Hash { files } => crate::hash::run(&files),
        Command::Rmdir { path } => Ok(client.rmdir(&path).await?),
        Command::Mv { from, to } => Ok(client.rename(&from, &to).await?),
        Command::Df { json } => {
            let df = client.df().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&df).expect("df serializes"));
                return Ok(());
            }
            match (df.quota, df.available) {
                (Some(quota), Some(available)) => println!(
                    "used {} of {} ({} available)",
                    human_size(df.used),
                    human_size(quota),
                    human_size(available)
                ),
                _ => println!("used {} (no quota)", human_size(df.used)),
            }
            if let Some(held) = df.partials.filter(|&held| held > 0) {
                println!("of which {} in interrupted uploads kept for resume (see `ftpc partials`)", human_size(held));
            }
            Ok(())
        }
        Command::Partials { action: None, json } => {
            needs_revision(client, 2, "list partial uploads")?;
            let partials = client.partials().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&partials).expect("partials serialize"));
            } else if partials.is_empty() {
                println!("no interrupted uploads kept");
            } else {
                for p in &partials {
                    println!(
                        "{}  {} of {} held, {}",
                        escape(&p.path),
                        human_size(p.held),
                        human_size(p.size),
                        format_time(p.mtime)
                    );
                }
            }
            Ok(())
        }
        Command::Partials { action: Some(PartialsAction::Rm { paths }), .. } => {
            needs_revision(client, 2, "discard partial uploads")?;
            let mut first_failure = None;
            for path in paths {
                match client.discard(&path).await {
                    Ok(done) => println!("freed {} of {}", human_size(done.freed), escape(&done.path)),
                    Err(e) => {
                        let failure = Failure::from(e);
                        eprintln!("ftpc: {}", failure.1);
                        first_failure.get_or_insert(failure);
                    }
                }
            }
            first_failure.map_or(Ok(()), Err)
        }
        Command::Shell | Command::Completions { .. } | Command::Man { .. } | Command::Forget { .. } => {
            Err(local("not available here: run it as `ftpc <command>` from your shell"))
        }
    }
}

/// Whether a path has glob metacharacters.
fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The local files a pattern matches (sorted), or `None` when `path` is a
/// plain path (it exists, or has no metacharacters).
fn expand_local(path: &Path) -> Result<Option<Vec<PathBuf>>, Failure> {
    let text = path.to_string_lossy();
    if path.exists() || !is_pattern(&text) {
        return Ok(None);
    }
    let matches = glob::glob(&text).map_err(|e| local(format!("{text}: bad pattern: {e}")))?;
    let mut files: Vec<PathBuf> = matches.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    files.sort();
    if files.is_empty() {
        return Err(local(format!("{text}: no file matches")));
    }
    Ok(Some(files))
}

/// The remote files a pattern in the last path component matches (sorted,
/// as paths), or `None` for a plain path.
async fn expand_remote(client: &mut Client<Box<dyn Io>>, remote: &str) -> Result<Option<Vec<String>>, Failure> {
    if !is_remote_pattern(remote) {
        return Ok(None);
    }
    let (dir, name) = match remote.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, remote),
    };
    let pattern = glob::Pattern::new(name).map_err(|e| local(format!("{}: bad pattern: {e}", escape(remote))))?;
    // `/*.txt` lists the home (protocol 1.2).
    let listed = dir.map(|d| if d.is_empty() { "/" } else { d });
    let mut names: Vec<String> = client
        .list(listed)
        .await?
        .into_iter()
        .filter(|e| e.kind == EntryKind::File && pattern.matches(&e.name))
        .map(|e| match dir {
            Some(d) => format!("{d}/{}", e.name),
            None => e.name,
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Failure(exit::REMOTE, format!("{}: no file matches", escape(remote))));
    }
    Ok(Some(names))
}

/// Whether the last component of a remote path is a pattern.
fn is_remote_pattern(remote: &str) -> bool {
    is_pattern(remote.rsplit('/').next().unwrap_or(remote))
}

/// scp's reading of a transfer's arguments: with two or more, the last one
/// is the target.
fn split_target(mut paths: Vec<OsString>) -> (Vec<OsString>, Option<OsString>) {
    let target = if paths.len() >= 2 { paths.pop() } else { None };
    (paths, target)
}

/// A remote path typed on the command line.
fn remote_arg(arg: &OsStr) -> Result<String, Failure> {
    arg.to_str()
        .map(str::to_owned)
        .ok_or_else(|| usage(format!("{}: remote paths must be valid UTF-8", arg.to_string_lossy())))
}

/// Whether a path ends in a separator (`docs/`: the directory's contents,
/// or a directory that must exist).
fn ends_in_separator(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/")
}

/// Asks the uploads that follow for `options` (`-n`, `-p`), which need a
/// server of protocol 1.2; the caller sets the defaults back afterwards.
fn set_put_options(client: &mut Client<Box<dyn Io>>, options: PutOptions) -> Result<(), Failure> {
    if options.no_clobber {
        needs_revision(client, 2, "leave existing files alone (-n)")?;
    }
    if options.preserve {
        needs_revision(client, 2, "keep modification times (-p)")?;
    }
    client.set_put_options(options);
    Ok(())
}

/// With -n, an upload the server refused as `exists` was skipped, as
/// `cp -n` skips: reported here, not a failure.
fn skipped_remote<T>(no_clobber: bool, result: &Result<T, ClientError>, name: &str, ui: Ui) -> bool {
    let skipped = no_clobber && matches!(result, Err(e) if e.code() == Some(ErrorCode::Exists));
    if skipped && !ui.quiet {
        eprintln!("skipped {}: it exists on the server (-n)", escape(name));
    }
    skipped
}

/// With -n, a download whose local file exists is skipped, as `cp -n`
/// skips: reported here, not a failure.
fn skipped_local(local: &Path, options: GetOptions, ui: Ui) -> bool {
    let skipped = options.no_clobber && local.symlink_metadata().is_ok();
    if skipped && !ui.quiet {
        eprintln!("skipped {}: it exists (-n)", local.display());
    }
    skipped
}

/// `put SOURCE... [TARGET]`, as scp reads it: one source goes to TARGET
/// (see [`put`]); several (or a pattern) go into TARGET, which must be an
/// existing remote directory.
async fn put_paths(
    client: &mut Client<Box<dyn Io>>,
    sources: &[PathBuf],
    target: Option<String>,
    recursive: bool,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    if sources.iter().any(|s| s.as_os_str() == "-") {
        return put_stdin(client, target, no_clobber, ui).await;
    }
    let mut files = Vec::new();
    let mut patterns = false;
    for source in sources.iter().filter(|_| !recursive) {
        match expand_local(source)? {
            Some(found) => {
                patterns = true;
                files.extend(found);
            }
            None => files.push(source.clone()),
        }
    }
    let several = sources.len() > 1 || patterns;
    if let (true, Some(dir)) = (several, &target) {
        require_remote_dir(client, dir).await?;
    }
    if recursive {
        let mut results = Vec::new();
        for source in sources {
            results.push(put_tree(client, source, target.clone(), no_clobber, ui).await);
        }
        return trees_outcome(results, "uploaded");
    }
    match several {
        false => put(client, &sources[0], target, no_clobber, ui).await,
        true => mput(client, &files, target, no_clobber, ui).await,
    }
}

/// Refuses a target for several files that is not an existing remote
/// directory (scp's rule: never a rename of the first file).
async fn require_remote_dir(client: &mut Client<Box<dyn Io>>, target: &str) -> Result<(), Failure> {
    let dir = match target.trim_end_matches('/') {
        "" => target,
        trimmed => trimmed,
    };
    if remote_is_dir(client, dir).await? {
        return Ok(());
    }
    Err(usage(format!(
        "{}: not a remote directory; with several sources the target must be an existing directory",
        escape(target)
    )))
}

/// `get SOURCE... [TARGET]`, as scp reads it: one source goes to TARGET
/// (see [`get`]; `-` is standard output); several (or a pattern) go into
/// TARGET, which must be an existing local directory.
async fn get_paths(
    client: &mut Client<Box<dyn Io>>,
    sources: &[String],
    target: Option<PathBuf>,
    recursive: bool,
    options: GetOptions,
    ui: Ui,
) -> Result<(), Failure> {
    let several = sources.len() > 1 || (!recursive && sources.iter().any(|s| is_remote_pattern(s)));
    if target.as_deref() == Some(Path::new("-")) {
        if recursive || several {
            return Err(usage("only one file can go to standard output (-)"));
        }
        return get_to_stdout(client, &sources[0], ui).await;
    }
    if let (true, Some(dir)) = (several, &target)
        && !dir.is_dir()
    {
        return Err(usage(format!(
            "{}: not a directory; with several sources the target must be an existing directory",
            dir.display()
        )));
    }
    if recursive {
        let mut results = Vec::new();
        for source in sources {
            results.push(get_tree(client, source, target.clone(), options, ui).await);
        }
        return trees_outcome(results, "downloaded");
    }
    if !several {
        return get(client, &sources[0], target, options, ui).await;
    }
    let mut names = Vec::new();
    for source in sources {
        match expand_remote(client, source).await? {
            Some(found) => names.extend(found),
            None => names.push(source.clone()),
        }
    }
    mget(client, &names, target, options, ui).await
}

/// The outcome of several trees: a failure is reported on its own line,
/// and the exit code is the first failure's.
fn trees_outcome(results: Vec<Result<(), Failure>>, verb: &str) -> Result<(), Failure> {
    if results.len() == 1 {
        return results.into_iter().next().expect("one result");
    }
    let mut first = None;
    for Failure(code, message) in results.into_iter().filter_map(Result::err) {
        eprintln!("ftpc: {message}");
        first.get_or_insert(code);
    }
    match first {
        Some(code) => Err(Failure(code, format!("some trees were not {verb}"))),
        None => Ok(()),
    }
}

async fn put(
    client: &mut Client<Box<dyn Io>>,
    path: &Path,
    remote: Option<String>,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let meta = std::fs::metadata(path).map_err(|e| local(format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(local(format!("{}: a directory (use put -r)", path.display())));
    }
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
        Some(r) if remote_is_dir(client, &r).await? => format!("{r}/{name}"),
        Some(r) if names_another_local_file(path, &r) => {
            return Err(usage(format!(
                "put {} {}: {} is no remote directory but a local file (a shell pattern?): to upload both, \
                 use mput or name a remote directory last (put {} {} DIR/)",
                path.display(),
                escape(&r),
                escape(&r),
                path.display(),
                escape(&r)
            )));
        }
        Some(r) => r,
    };
    upload(client, path, path, &remote, no_clobber, ui).await
}

/// `put - NAME`: standard input, which `stdin::prepare` read into a file
/// before connecting, uploaded as NAME.
async fn put_stdin(
    client: &mut Client<Box<dyn Io>>,
    remote: Option<String>,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let source = crate::stdin::source()?;
    let Some(remote) = remote else {
        return Err(usage("put -: name the remote file: ftpc put - NAME"));
    };
    if remote.ends_with('/') || remote_is_dir(client, &remote).await? {
        return Err(usage(format!("put - {}: a directory; standard input needs a file name", escape(&remote))));
    }
    upload(client, source, Path::new("-"), &remote, no_clobber, ui).await
}

/// Uploads the local file at `path` as `remote`, reporting it under the
/// name `shown` (`-` for standard input, as b3sum shows it).
async fn upload(
    client: &mut Client<Box<dyn Io>>,
    path: &Path,
    shown: &Path,
    remote: &str,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let mut progress = Bar::new(&escape(remote), ui);
    let began = Instant::now();
    let result = client.put_file(path, remote, &mut progress).await;
    progress.finish();
    if skipped_remote(no_clobber, &result, remote, ui) {
        return Ok(());
    }
    let summary = result?;
    let stored = summary.stored.path.clone();
    file_done("uploaded", &stored, shown, &Done::from(summary), began.elapsed(), ui);
    Ok(())
}

/// Whether the target of a one-file `put` names a local file other than the
/// source: then the shell most likely expanded `put *.log` into
/// `put app.log db.log`, which would upload app.log as db.log.
fn names_another_local_file(source: &Path, target: &str) -> bool {
    let target = Path::new(target);
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    target.is_file() && !same(source, target)
}

/// Whether `path` is a remote directory. A `cd` there and back answers it
/// cheaply (`stat` would hash a file that is there).
async fn remote_is_dir(client: &mut Client<Box<dyn Io>>, path: &str) -> Result<bool, Failure> {
    let here = client.pwd().await?;
    match client.cd(Some(path)).await {
        Ok(_) => {
            // Paths are relative: back home, then down to where we were.
            client.cd(None).await?;
            let back = here.trim_start_matches('/');
            if !back.is_empty() {
                client.cd(Some(back)).await?;
            }
            Ok(true)
        }
        Err(ClientError::Remote(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `get REMOTE [LOCAL]`: LOCAL is the file to write (through a symbolic
/// link, into a FIFO or device), or an existing directory to put it in.
async fn get(
    client: &mut Client<Box<dyn Io>>,
    remote: &str,
    target: Option<PathBuf>,
    options: GetOptions,
    ui: Ui,
) -> Result<(), Failure> {
    // The local name comes from what the user typed, never from the server,
    // and is checked like any remote name before it touches the disk.
    let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let checked = validate_name(name).map(|()| name);
    let path = match target {
        Some(t) if t.is_dir() => t.join(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
        Some(t) if ends_in_separator(&t) => return Err(local(format!("{}: no such directory", t.display()))),
        Some(t) => t,
        None => PathBuf::from(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
    };
    if skipped_local(&path, options, ui) {
        return Ok(());
    }
    let mut progress = Bar::new(&escape(remote), ui);
    let began = Instant::now();
    let result = client.get_file(remote, &path, options, &mut progress).await;
    progress.finish();
    let done = Done::from(result?);
    file_done("downloaded", &path.display().to_string(), &path, &done, began.elapsed(), ui);
    Ok(())
}

/// `get REMOTE -`: the file streams to standard output as it arrives; the
/// bar and the closing line go to standard error (and no `--hash` line:
/// standard output carries the file).
async fn get_to_stdout(client: &mut Client<Box<dyn Io>>, remote: &str, ui: Ui) -> Result<(), Failure> {
    let out = stdout_file().map_err(|e| local(format!("standard output: {e}")))?;
    let mut progress = Bar::new(&escape(remote), ui);
    let began = Instant::now();
    let result = client.get_into(remote, out, "standard output", &mut progress).await;
    progress.finish();
    let done = Done::from(result?);
    let shown = format!("{remote} to standard output");
    file_done("downloaded", &shown, Path::new("-"), &done, began.elapsed(), Ui { hashes: false, ..ui });
    Ok(())
}

/// Standard output as a file of its own (a duplicate of the descriptor:
/// the bytes go where the shell sent them, appended if it appends).
fn stdout_file() -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    let handle = std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned()?;
    #[cfg(windows)]
    let handle = std::os::windows::io::AsHandle::as_handle(&std::io::stdout()).try_clone_to_owned()?;
    Ok(handle.into())
}

async fn mput(
    client: &mut Client<Box<dyn Io>>,
    files: &[PathBuf],
    to: Option<String>,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let dir = to.map(|d| if d.ends_with('/') { d } else { format!("{d}/") }).unwrap_or_default();
    let mut items = Vec::with_capacity(files.len());
    let mut seen = std::collections::HashSet::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| local(format!("{}: the file name is not valid UTF-8", path.display())))?;
        if !seen.insert(name) {
            return Err(local(format!("two of the files are named {}: put them separately", escape(name))));
        }
        items.push((path.clone(), format!("{dir}{name}")));
    }
    upload_batch(client, &items, no_clobber, ui).await
}

/// Uploads `(local, remote)` pairs as one batch, its bar sized up front
/// from the local files; with `no_clobber`, files that exist on the server
/// are skipped.
async fn upload_batch(
    client: &mut Client<Box<dyn Io>>,
    items: &[(PathBuf, String)],
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let sizes = items.iter().map(|(l, r)| (r.clone(), std::fs::metadata(l).map_or(0, |m| m.len())));
    let mut progress = BatchBar::new(sizes, ui);
    let began = Instant::now();
    let results = client.put_many(items, &mut progress).await;
    progress.finish();
    let (items, results): (Vec<_>, Vec<_>) = items
        .iter()
        .zip(results)
        .filter(|((l, _), result)| !skipped_remote(no_clobber, result, &l.display().to_string(), ui))
        .unzip();
    let results = results.into_iter().map(|r| r.map(Done::from)).collect();
    let names = items.iter().map(|(l, _)| (l.display().to_string(), l));
    batch_done(names, results, "uploaded", began.elapsed(), ui)
}

/// Downloads `(remote, local)` pairs as one batch, its bar sized up front
/// with each file's `size` (as listed), as `options` say (with
/// `no_clobber`, files that exist here are skipped).
async fn download_batch(
    client: &mut Client<Box<dyn Io>>,
    items: &[(String, PathBuf)],
    sizes: impl Iterator<Item = u64>,
    options: GetOptions,
    ui: Ui,
) -> Result<(), Failure> {
    let (items, sizes): (Vec<_>, Vec<_>) =
        items.iter().cloned().zip(sizes).filter(|((_, local), _)| !skipped_local(local, options, ui)).unzip();
    let mut progress = BatchBar::new(items.iter().map(|(r, _)| r.clone()).zip(sizes), ui);
    let began = Instant::now();
    let results = client.get_many(&items, options, &mut progress).await;
    progress.finish();
    let results = results.into_iter().map(|r| r.map(Done::from)).collect();
    let names = items.iter().map(|(r, l)| (r.as_str(), l));
    batch_done(names, results, "downloaded", began.elapsed(), ui)
}

/// The sizes of remote files, from one listing of each directory they
/// are in (0 for one that is not listed there: its download will say why).
async fn remote_sizes(client: &mut Client<Box<dyn Io>>, names: &[String]) -> Result<Vec<u64>, Failure> {
    let mut listings: HashMap<&str, HashMap<String, u64>> = HashMap::new();
    let mut sizes = Vec::with_capacity(names.len());
    for name in names {
        let (dir, file) = match name.rsplit_once('/') {
            Some(("", file)) => ("/", file),
            Some((dir, file)) => (dir, file),
            None => ("", name.as_str()),
        };
        if !listings.contains_key(dir) {
            let listed = match client.list((!dir.is_empty()).then_some(dir)).await {
                Ok(entries) => entries,
                Err(ClientError::Remote(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let files = listed.into_iter().filter(|e| e.kind == EntryKind::File).map(|e| (e.name, e.size));
            listings.insert(dir, files.collect());
        }
        sizes.push(listings[dir].get(file).copied().unwrap_or(0));
    }
    Ok(sizes)
}

async fn mget(
    client: &mut Client<Box<dyn Io>>,
    names: &[String],
    to: Option<PathBuf>,
    options: GetOptions,
    ui: Ui,
) -> Result<(), Failure> {
    let dir = to.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(local(format!("{}: not a directory", dir.display())));
    }
    // Local names come from what the user typed, checked like remote names.
    let mut items = Vec::with_capacity(names.len());
    let mut seen = std::collections::HashSet::new();
    for remote in names {
        let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        validate_name(name).map_err(|e| local(format!("{}: cannot derive a local name: {e}", escape(remote))))?;
        if !seen.insert(name) {
            return Err(local(format!("two of the files are named {}: get them separately", escape(name))));
        }
        items.push((remote.clone(), dir.join(name)));
    }
    let sizes = remote_sizes(client, names).await?;
    download_batch(client, &items, sizes.into_iter(), options, ui).await
}

/// `put -r DIR [REMOTE]`: the tree under DIR goes, by rsync's rule, to
/// REMOTE/NAME (DIR's name), or into REMOTE itself when DIR ends in `/`
/// (or is `.`); REMOTE is made if missing. Without REMOTE, to a remote
/// directory named like DIR. Directories first, then the files, pipelined.
async fn put_tree(
    client: &mut Client<Box<dyn Io>>,
    dir: &Path,
    remote: Option<String>,
    no_clobber: bool,
    ui: Ui,
) -> Result<(), Failure> {
    let meta = std::fs::metadata(dir).map_err(|e| local(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(local(format!("{}: not a directory", dir.display())));
    }
    let root = dir.to_owned();
    let tree = tokio::task::spawn_blocking(move || walk_local(&root))
        .await
        .map_err(|e| local(e.to_string()))?
        .map_err(|e| local(format!("{}: {e}", dir.display())))?;
    for (path, why) in &tree.skipped {
        eprintln!("ftpc: skipped {}: {why}", path.display());
    }
    let target = remote.as_deref().map(tree::remote_dir);
    let base = match (target, dir.file_name().filter(|_| !ends_in_separator(dir))) {
        (Some(target), None) => target.to_owned(),
        (Some(target), Some(name)) => {
            let name = name.to_str().ok_or_else(|| local(format!("{}: the name is not valid UTF-8", dir.display())))?;
            tree::remote_join(target, name)
        }
        (None, _) => {
            let name = std::fs::canonicalize(dir).ok().and_then(|p| p.file_name().map(|n| n.to_owned()));
            name.and_then(|n| n.to_str().map(str::to_owned))
                .ok_or_else(|| local(format!("{}: name the remote directory", dir.display())))?
        }
    };
    // Made if missing, as rsync does; the working directory and the home are there.
    let exists = |dir: &str| matches!(dir, "" | "." | "/");
    if let Some(target) = target.filter(|t| !exists(t) && *t != base) {
        mkdir_exists_ok(client, target).await?;
    }
    let join = |rel: &str| tree::remote_join(&base, rel);
    if !exists(&base) {
        mkdir_exists_ok(client, &base).await?;
    }
    for d in &tree.dirs {
        mkdir_exists_ok(client, &join(d)).await?;
    }
    let items: Vec<(PathBuf, String)> = tree.files.iter().map(|(p, rel)| (p.clone(), join(rel))).collect();
    let outcome = upload_batch(client, &items, no_clobber, ui).await;
    if !ui.quiet {
        eprintln!("{} directories under {}", tree.dirs.len(), escape(if base.is_empty() { "." } else { &base }));
    }
    outcome
}

async fn mkdir_exists_ok(client: &mut Client<Box<dyn Io>>, path: &str) -> Result<(), Failure> {
    match client.mkdir(path).await {
        Err(ClientError::Remote(e)) if e.code == ErrorCode::Exists => {
            if remote_is_dir(client, path).await? {
                Ok(())
            } else {
                Err(Failure(exit::REMOTE, format!("{}: exists and is not a directory", escape(path))))
            }
        }
        other => Ok(other?),
    }
}

/// `mkdir -p`: each missing directory on the way to `path` is created;
/// directories that exist are fine, as with mkdir -p.
async fn mkdir_parents(client: &mut Client<Box<dyn Io>>, path: &str) -> Result<(), Failure> {
    let mut prefix = if path.starts_with('/') { "/".to_owned() } else { String::new() };
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        if part != ".." {
            mkdir_exists_ok(client, &prefix).await?;
        }
    }
    Ok(())
}

/// `get -r REMOTE [LOCAL]`: the remote tree under REMOTE comes, by rsync's
/// rule, to LOCAL/NAME (REMOTE's name), or into LOCAL itself when REMOTE
/// ends in `/` (or is `.`); LOCAL is made if missing. Without LOCAL, to a
/// local directory named like REMOTE.
async fn get_tree(
    client: &mut Client<Box<dyn Io>>,
    remote: &str,
    target: Option<PathBuf>,
    options: GetOptions,
    ui: Ui,
) -> Result<(), Failure> {
    let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let named = || validate_name(name).map(|()| name).map_err(|e| local(format!("cannot derive a local name: {e}")));
    let nameless = name.is_empty() || name == ".";
    let root = match target {
        None if nameless => PathBuf::from("."),
        None => PathBuf::from(named()?),
        Some(t) => {
            make_target_dir(&t).map_err(|e| local(e.to_string()))?;
            if nameless || remote.ends_with('/') { t } else { t.join(named()?) }
        }
    };
    let tree = client.walk_remote(remote).await?;
    for (path, why) in &tree.skipped {
        eprintln!("ftpc: skipped {}: {why}", escape(path));
    }
    make_local_dirs(&root, &tree.dirs).map_err(|e| local(e.to_string()))?;
    let base = tree::remote_dir(remote);
    let items: Vec<(String, PathBuf)> = tree
        .files
        .iter()
        .map(|(rel, _)| {
            let remote = tree::remote_join(base, rel);
            (remote, tree::local_path(&root, rel))
        })
        .collect();
    let sizes = tree.files.iter().map(|(_, size)| *size);
    // Files of a tree replace what is there, symbolic links included (their
    // names come from the server): as rsync does, never written through.
    let options = GetOptions { write_through: false, ..options };
    let outcome = download_batch(client, &items, sizes, options, ui).await;
    if !ui.quiet {
        eprintln!("{} directories under {}", tree.dirs.len(), root.display());
    }
    outcome
}
