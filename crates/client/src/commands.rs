//! The commands, shared by the one-shot CLI and the interactive shell.

use crate::progress::{Bar, BatchBar, Done, batch_done, file_done};
use crate::{Command, Failure, PartialsAction, exit, local};
use ftp_client::display::{escape, format_instant, format_time, human_size, kind_name, long_line, short_line};
use ftp_client::tree::{self, make_local_dirs, walk_local};
use ftp_client::{Client, ClientError, Io};
use ftp_proto::{EntryKind, ErrorCode, validate_name};
use std::collections::HashMap;
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
        Command::Put { recursive: true, local: path, remote } => put_tree(client, &path, remote, ui).await,
        Command::Put { recursive: false, local: path, remote } => match expand_local(&path)? {
            Some(files) => mput(client, &files, remote, ui).await,
            None => put(client, &path, remote, ui).await,
        },
        Command::Get { recursive: true, remote, local: path } => get_tree(client, &remote, path, ui).await,
        Command::Get { recursive: false, remote, local: path } => match expand_remote(client, &remote).await? {
            Some(names) => mget(client, &names, path, ui).await,
            None => get(client, &remote, path, ui).await,
        },
        Command::Mput { files, to } => {
            let mut all = Vec::new();
            for f in files {
                match expand_local(&f)? {
                    Some(found) => all.extend(found),
                    None => all.push(f),
                }
            }
            mput(client, &all, to, ui).await
        }
        Command::Mget { names, to } => {
            let mut all = Vec::new();
            for n in names {
                match expand_remote(client, &n).await? {
                    Some(found) => all.extend(found),
                    None => all.push(n),
                }
            }
            mget(client, &all, to, ui).await
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
        Command::Shell | Command::Completions { .. } | Command::Man | Command::Forget { .. } => {
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
    let (dir, name) = match remote.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, remote),
    };
    if !is_pattern(name) {
        return Ok(None);
    }
    let pattern = glob::Pattern::new(name).map_err(|e| local(format!("{}: bad pattern: {e}", escape(remote))))?;
    if dir == Some("") {
        return Err(Failure(
            exit::REMOTE,
            "absolute paths are not allowed; paths are relative to the working directory".into(),
        ));
    }
    let mut names: Vec<String> = client
        .list(dir)
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

async fn put(client: &mut Client<Box<dyn Io>>, path: &Path, remote: Option<String>, ui: Ui) -> Result<(), Failure> {
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
        Some(r) => r,
    };
    let mut progress = Bar::new(&escape(&remote), ui);
    let began = Instant::now();
    let result = client.put_file(path, &remote, &mut progress).await;
    progress.finish();
    let summary = result?;
    let shown = summary.stored.path.clone();
    file_done("uploaded", &shown, path, &Done::from(summary), began.elapsed(), ui);
    Ok(())
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

async fn get(client: &mut Client<Box<dyn Io>>, remote: &str, target: Option<PathBuf>, ui: Ui) -> Result<(), Failure> {
    // The local name comes from what the user typed, never from the server,
    // and is checked like any remote name before it touches the disk.
    let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let checked = validate_name(name).map(|()| name);
    let path = match target {
        Some(t) if t.is_dir() => t.join(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
        Some(t) => t,
        None => PathBuf::from(checked.map_err(|e| local(format!("cannot derive a local name: {e}")))?),
    };
    let mut progress = Bar::new(&escape(remote), ui);
    let began = Instant::now();
    let result = client.get_file(remote, &path, &mut progress).await;
    progress.finish();
    let done = Done::from(result?);
    file_done("downloaded", &path.display().to_string(), &path, &done, began.elapsed(), ui);
    Ok(())
}

async fn mput(client: &mut Client<Box<dyn Io>>, files: &[PathBuf], to: Option<String>, ui: Ui) -> Result<(), Failure> {
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
    upload_batch(client, &items, ui).await
}

/// Uploads `(local, remote)` pairs as one batch, its bar sized up front
/// from the local files.
async fn upload_batch(client: &mut Client<Box<dyn Io>>, items: &[(PathBuf, String)], ui: Ui) -> Result<(), Failure> {
    let sizes = items.iter().map(|(l, r)| (r.clone(), std::fs::metadata(l).map_or(0, |m| m.len())));
    let mut progress = BatchBar::new(sizes, ui);
    let began = Instant::now();
    let results = client.put_many(items, &mut progress).await;
    progress.finish();
    let results = results.into_iter().map(|r| r.map(Done::from)).collect();
    let names = items.iter().map(|(l, _)| (l.display().to_string(), l));
    batch_done(names, results, "uploaded", began.elapsed(), ui)
}

/// Downloads `(remote, local)` pairs as one batch, its bar sized up front
/// with each file's `size` (as listed).
async fn download_batch(
    client: &mut Client<Box<dyn Io>>,
    items: &[(String, PathBuf)],
    sizes: impl Iterator<Item = u64>,
    ui: Ui,
) -> Result<(), Failure> {
    let mut progress = BatchBar::new(items.iter().map(|(r, _)| r.clone()).zip(sizes), ui);
    let began = Instant::now();
    let results = client.get_many(items, &mut progress).await;
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

async fn mget(client: &mut Client<Box<dyn Io>>, names: &[String], to: Option<PathBuf>, ui: Ui) -> Result<(), Failure> {
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
    download_batch(client, &items, sizes.into_iter(), ui).await
}

/// `put -r DIR [REMOTE]`: the tree under DIR goes to REMOTE (default: a
/// remote directory named like DIR), directories first, then the files,
/// pipelined.
async fn put_tree(client: &mut Client<Box<dyn Io>>, dir: &Path, remote: Option<String>, ui: Ui) -> Result<(), Failure> {
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
    let base = match remote {
        Some(r) => r.trim_end_matches('/').to_owned(),
        None => {
            let name = std::fs::canonicalize(dir).ok().and_then(|p| p.file_name().map(|n| n.to_owned()));
            name.and_then(|n| n.to_str().map(str::to_owned))
                .ok_or_else(|| local(format!("{}: name the remote directory", dir.display())))?
        }
    };
    let join = |rel: &str| if base.is_empty() { rel.to_owned() } else { format!("{base}/{rel}") };
    if !base.is_empty() {
        mkdir_exists_ok(client, &base).await?;
    }
    for d in &tree.dirs {
        mkdir_exists_ok(client, &join(d)).await?;
    }
    let items: Vec<(PathBuf, String)> = tree.files.iter().map(|(p, rel)| (p.clone(), join(rel))).collect();
    let outcome = upload_batch(client, &items, ui).await;
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

/// `get -r REMOTE [LOCAL]`: the remote tree under REMOTE comes to LOCAL
/// (default: a local directory named like REMOTE; inside LOCAL when that is
/// an existing directory).
async fn get_tree(
    client: &mut Client<Box<dyn Io>>,
    remote: &str,
    target: Option<PathBuf>,
    ui: Ui,
) -> Result<(), Failure> {
    let name = remote.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let named = || validate_name(name).map(|()| name).map_err(|e| local(format!("cannot derive a local name: {e}")));
    let root = match target {
        Some(t) if t.is_dir() && !name.is_empty() && name != "." => t.join(named()?),
        Some(t) => t,
        None if name.is_empty() || name == "." => PathBuf::from("."),
        None => PathBuf::from(named()?),
    };
    let tree = client.walk_remote(remote).await?;
    for (path, why) in &tree.skipped {
        eprintln!("ftpc: skipped {}: {why}", escape(path));
    }
    make_local_dirs(&root, &tree.dirs).map_err(|e| local(e.to_string()))?;
    let base = remote.trim_end_matches('/');
    let items: Vec<(String, PathBuf)> = tree
        .files
        .iter()
        .map(|(rel, _)| {
            let remote = if base.is_empty() { rel.clone() } else { format!("{base}/{rel}") };
            (remote, tree::local_path(&root, rel))
        })
        .collect();
    let sizes = tree.files.iter().map(|(_, size)| *size);
    let outcome = download_batch(client, &items, sizes, ui).await;
    if !ui.quiet {
        eprintln!("{} directories under {}", tree.dirs.len(), root.display());
    }
    outcome
}
