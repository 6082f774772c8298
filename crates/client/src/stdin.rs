//! `ftpc put - NAME`: standard input as the source of an upload, as
//! `scp`-less pipelines (`tar c dir | ftpc put - dir.tar`) and `curl -T -`
//! use it.
//!
//! A put announces the file's size before its bytes (PROTOCOL.md §5), and
//! a broken upload resumes by comparing what both sides hold, so standard
//! input is made into a file before the connection opens: read in place
//! when it is redirected from a regular file, otherwise copied into an
//! unnamed temporary file in `$TMPDIR` that the system removes however
//! ftpc ends. Reading it all before connecting also means a slow producer
//! can't run into the server's idle timeout. (The file is reached by its
//! `/proc/self/fd` path, which is Linux's.)

use crate::{Command, Failure, local, usage};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where standard input can be read as a file, once [`prepare`] read it.
static SOURCE: OnceLock<PathBuf> = OnceLock::new();

/// Keeps the temporary copy of standard input open (so its
/// `/proc/self/fd` path stays valid) until dropped.
pub struct Spool {
    _file: Option<File>,
}

/// For a `put` with `-` among its sources: checks the form (`put - NAME`)
/// and reads standard input to its end. Anything else needs nothing.
pub fn prepare(command: &Command) -> Result<Spool, Failure> {
    let none = Spool { _file: None };
    let Command::Put { paths, recursive, .. } = command else {
        return Ok(none);
    };
    if !paths.iter().any(|p| p == "-") {
        return Ok(none);
    }
    if *recursive || paths.len() != 2 || paths[0] != "-" {
        return Err(usage("put -: standard input goes up as one file, named by the target: ftpc put - NAME"));
    }
    let stdin = std::io::stdin();
    let meta = File::from(stdin.as_fd().try_clone_to_owned().map_err(|e| local(format!("standard input: {e}")))?)
        .metadata()
        .map_err(|e| local(format!("standard input: {e}")))?;
    if meta.is_file() {
        // Redirected from a file (`< big.iso`): no copy needed.
        let _ = SOURCE.set(PathBuf::from("/proc/self/fd/0"));
        return Ok(none);
    }
    if stdin.is_terminal() {
        eprintln!("ftpc: reading standard input until end of file (Ctrl-D)");
    }
    let spool = |e: std::io::Error| {
        local(format!(
            "standard input: copying it to a temporary file in {}: {e} (set TMPDIR to a directory with room)",
            std::env::temp_dir().display()
        ))
    };
    let mut file = tempfile::tempfile().map_err(spool)?;
    std::io::copy(&mut stdin.lock(), &mut file).map_err(spool)?;
    file.flush().map_err(spool)?;
    let _ = SOURCE.set(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())));
    Ok(Spool { _file: Some(file) })
}

/// The file that holds standard input for `put -`, or why there is none:
/// only the one-shot command reads it (in the interactive session and
/// scripts, standard input holds the commands).
pub fn source() -> Result<&'static Path, Failure> {
    SOURCE.get().map(PathBuf::as_path).ok_or_else(|| {
        usage("put -: a session's standard input is not for uploading; use the one-shot ftpc put - NAME")
    })
}
