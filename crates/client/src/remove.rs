//! `rm`: files, and with `-r` whole directories, removed bottom-up (the
//! tree listed first, then its files and links, then its directories
//! deepest first, the directory itself last).
//!
//! As `rm -I` does, a recursive removal asks once on a terminal (`remove
//! DIR and its N files? [y/N]`); without a terminal to ask on it needs
//! `-f`, so a script never deletes a tree by accident. `-f` also ignores
//! paths that do not exist.

use crate::{Failure, exit};
use ftp_client::display::escape;
use ftp_client::{Client, ClientError, Io};
use ftp_proto::ErrorCode;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};

/// Removes each path; a failure is reported and the others go on. The
/// exit code is the first failure's.
pub async fn run(
    client: &mut Client<Box<dyn Io>>,
    paths: &[String],
    recursive: bool,
    force: bool,
) -> Result<(), Failure> {
    let (mut first, mut last) = (None, None);
    for path in paths {
        if let Err(Failure(code, message)) = remove(client, path, recursive, force).await {
            if let Some(earlier) = last.replace(message) {
                eprintln!("ftpc: {earlier}");
            }
            first.get_or_insert(code);
        }
    }
    match (first, last) {
        (Some(code), Some(message)) => Err(Failure(code, message)),
        _ => Ok(()),
    }
}

async fn remove(client: &mut Client<Box<dyn Io>>, path: &str, recursive: bool, force: bool) -> Result<(), Failure> {
    let trimmed = path.trim_end_matches('/');
    if recursive && (trimmed.is_empty() || matches!(trimmed.rsplit('/').next(), Some("." | ".."))) {
        return Err(Failure(exit::USAGE, format!("refusing to remove {}: the home, `.` or `..`", escape(path))));
    }
    match client.remove(path).await {
        Ok(()) => Ok(()),
        Err(e) if force && e.code() == Some(ErrorCode::NotFound) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::IsADirectory) && recursive => remove_tree(client, trimmed, force).await,
        Err(e) if e.code() == Some(ErrorCode::IsADirectory) => {
            Err(Failure(exit::REMOTE, format!("{}: is a directory (use rm -r) [is_a_directory]", escape(path))))
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove_tree(client: &mut Client<Box<dyn Io>>, dir: &str, force: bool) -> Result<(), Failure> {
    let tree = client.walk_remote(dir).await?;
    let links: HashSet<&String> = tree.links.iter().collect();
    // Names ftpc can't address, or a tree deeper than it walks: the
    // directories above them could not be removed, so nothing is.
    if let Some((rel, why)) = tree.skipped.iter().find(|(rel, _)| !links.contains(rel)) {
        return Err(Failure(
            exit::REMOTE,
            format!("{}/{}: can't be removed by ftpc ({why}); nothing was removed", escape(dir), escape(rel)),
        ));
    }
    if !force {
        let files = tree.files.len() + tree.links.len();
        let dirs = match tree.dirs.len() {
            0 => String::new(),
            1 => " in 1 subdirectory".to_owned(),
            n => format!(" in {n} subdirectories"),
        };
        if !confirm(&format!("remove {} and its {files} files{dirs}?", escape(dir)))? {
            return Ok(());
        }
    }
    let join = |rel: &str| format!("{dir}/{rel}");
    let gone = |result: Result<(), ClientError>| match result {
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
        other => other,
    };
    for rel in tree.files.iter().map(|(rel, _)| rel).chain(&tree.links) {
        gone(client.remove(&join(rel)).await)?;
    }
    for rel in tree.dirs.iter().rev() {
        gone(client.rmdir(&join(rel)).await)?;
    }
    Ok(client.rmdir(dir).await?)
}

/// Asks `question` on the terminal; whether the answer is yes. Without a
/// terminal, a usage error: `-f` is needed.
fn confirm(question: &str) -> Result<bool, Failure> {
    let refuse = || Failure(exit::USAGE, "rm -r needs -f when not on a terminal (there is nobody to ask)".into());
    if !std::io::stdin().is_terminal() {
        return Err(refuse());
    }
    // The terminal itself, not stdin: the shell may hold stdin's lock.
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|_| refuse())?;
    write!(tty, "{question} [y/N] ").map_err(|e| crate::local(format!("cannot ask on the terminal: {e}")))?;
    let mut answer = String::new();
    std::io::BufReader::new(tty)
        .read_line(&mut answer)
        .map_err(|e| crate::local(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
