//! `ftpc hash FILE...`: local files' BLAKE3, as `b3sum` prints it, to
//! compare with what `stat` or `--hash` report for the server's copies.
//! Needs no server.

use crate::{Failure, exit};
use ftp_client::display::{escape, hash_line};
use std::path::{Path, PathBuf};

/// Prints `HASH  FILE` for each file (`-` or none: standard input). A file
/// that can't be read is reported on its own line and the others go on;
/// the exit code is then 1.
pub fn run(files: &[PathBuf]) -> Result<(), Failure> {
    let stdin = [PathBuf::from("-")];
    let files = if files.is_empty() { &stdin[..] } else { files };
    let mut failed = 0;
    for file in files {
        match hash(file) {
            Ok(hex) => println!("{}", hash_line(&hex, &file.display().to_string())),
            Err(e) => {
                eprintln!("ftpc: {}: {e}", escape(&file.display().to_string()));
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(Failure(exit::LOCAL, format!("{n} of {} files could not be hashed", files.len()))),
    }
}

/// The BLAKE3 (hex) of a file's contents, or of standard input for `-`.
fn hash(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    if path == Path::new("-") {
        hasher.update_reader(std::io::stdin().lock())?;
    } else {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"));
        }
        hasher.update_reader(file)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}
