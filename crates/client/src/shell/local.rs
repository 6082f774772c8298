//! The session's local side, as in sftp: `lcd`, `lpwd`, `lls`, `lmkdir`
//! and `!COMMAND`.

use super::interrupted;
use crate::{Failure, local};
use ftp_client::display::{escape, long_line, short_line};
use ftp_proto::{Entry, EntryKind};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `lcd [PATH]`: changes the local working directory (the home without
/// PATH).
pub fn lcd(path: Option<PathBuf>) -> Result<(), Failure> {
    let path = path.or_else(dirs::home_dir).unwrap_or_else(|| PathBuf::from("/"));
    std::env::set_current_dir(&path).map_err(|e| local(format!("{}: {e}", path.display())))
}

/// `lpwd`: prints the local working directory.
pub fn lpwd() -> Result<(), Failure> {
    let dir = std::env::current_dir().map_err(|e| local(format!("cannot read the local working directory: {e}")))?;
    println!("{}", escape(&dir.to_string_lossy()));
    Ok(())
}

/// `lmkdir PATH`: creates a local directory.
pub fn lmkdir(path: &Path) -> Result<(), Failure> {
    std::fs::create_dir(path).map_err(|e| local(format!("{}: {e}", path.display())))
}

/// `lls [-lha] [PATH]`: lists a local directory (or names one file) in
/// the format of `ls` (`long`, sizes `human` with it), names escaped
/// alike. Names starting with a dot are left out unless `all`.
pub fn lls(path: Option<&Path>, long: bool, human: bool, all: bool) -> Result<(), Failure> {
    let path = path.unwrap_or(Path::new("."));
    let failed = |e: std::io::Error| local(format!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    if std::fs::metadata(path).map_err(failed)?.is_dir() {
        for item in std::fs::read_dir(path).map_err(failed)? {
            let item = item.map_err(failed)?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !all && name.starts_with('.') {
                continue;
            }
            // An entry removed meanwhile is simply not listed.
            if let Ok(meta) = std::fs::symlink_metadata(item.path()) {
                entries.push(entry(name, &meta));
            }
        }
    } else {
        entries.push(entry(path.to_string_lossy().into_owned(), &std::fs::symlink_metadata(path).map_err(failed)?));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in &entries {
        println!("{}", if long { long_line(entry, human) } else { short_line(entry) });
    }
    Ok(())
}

/// A local file described as the server describes its entries.
fn entry(name: String, meta: &std::fs::Metadata) -> Entry {
    let kind = match meta.file_type() {
        t if t.is_dir() => EntryKind::Dir,
        t if t.is_file() => EntryKind::File,
        t if t.is_symlink() => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    let size = if kind == EntryKind::Dir { 0 } else { meta.len() };
    Entry { name, kind, size, mtime: meta.mtime() }
}

/// `!COMMAND`: runs COMMAND with the user's `$SHELL -c` (`/bin/sh` if
/// unset) in the local working directory; `!` alone opens that shell.
/// A command that exits non-zero is a failure; the shell opened by `!`
/// is not judged by how it ends. The child reads the terminal only when
/// the session's commands don't come from standard input.
pub fn run_shell(command: Option<&str>, stdin_free: bool) -> Result<(), Failure> {
    let shell = std::env::var_os("SHELL").filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into());
    let mut child = Command::new(&shell);
    if let Some(command) = command {
        child.arg("-c").arg(command);
    }
    if !stdin_free {
        child.stdin(Stdio::null());
    }
    let status = child.status().map_err(|e| local(format!("cannot run {}: {e}", Path::new(&shell).display())))?;
    match (command, status.code(), status.signal()) {
        (None, _, _) | (_, Some(0), _) => Ok(()),
        (Some(_), Some(code), _) => Err(local(format!("the command exited with status {code}"))),
        (Some(_), None, Some(libc::SIGINT)) => Err(interrupted()),
        (Some(_), None, signal) => Err(local(format!("the command was killed by signal {}", signal.unwrap_or(0)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_are_described_like_remote_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"12345").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let described = |name: &str| entry(name.into(), &std::fs::symlink_metadata(dir.path().join(name)).unwrap());
        assert_eq!((described("a.txt").kind, described("a.txt").size), (EntryKind::File, 5));
        assert_eq!((described("sub").kind, described("sub").size), (EntryKind::Dir, 0));
        assert_eq!(described("link").kind, EntryKind::Symlink);
    }

    #[test]
    fn a_failing_command_is_a_failure_and_a_shell_is_not_judged() {
        assert!(run_shell(Some("true"), false).is_ok());
        assert!(matches!(run_shell(Some("exit 3"), false), Err(Failure(1, m)) if m.contains("status 3")));
    }
}
