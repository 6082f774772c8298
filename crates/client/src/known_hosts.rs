//! The known-hosts file: one line per server, `HOST:PORT sha256:<64 hex
//! digits>` (a pinned certificate) or `HOST:PORT ca` (a server verified by
//! a system root on first contact). `#` starts a comment.

use crate::ClientError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The default known-hosts file: `FTPC_KNOWN_HOSTS`, else
/// `<config dir>/ftpc/known_hosts`.
pub fn default_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FTPC_KNOWN_HOSTS") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("ftpc").join("known_hosts"))
}

/// What is recorded for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `sha256:...`, or `ca`.
    pub record: String,
    /// Its line in the file (from 1), for the user to find it.
    pub line: usize,
}

/// The entries of a known-hosts file.
pub struct KnownHosts {
    entries: Vec<(String, Pin)>,
}

impl KnownHosts {
    /// Reads `file`; a missing file has no entries.
    pub fn load(file: &Path) -> Result<KnownHosts, ClientError> {
        let text = read(file)?;
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let (host, record) = entry(line)?;
                Some((host.to_owned(), Pin { record: record.to_owned(), line: i + 1 }))
            })
            .collect();
        Ok(KnownHosts { entries })
    }

    /// The first entry for `addr` (`HOST:PORT`).
    pub fn get(&self, addr: &str) -> Option<Pin> {
        self.entries.iter().find(|(h, _)| h == addr).map(|(_, pin)| pin.clone())
    }

    /// Appends a line for `addr`, creating the file and its directory.
    /// Safe with other clients appending at the same moment.
    pub fn add(file: &Path, addr: &str, record: &str) -> Result<(), ClientError> {
        let local = |source| ClientError::Local { path: file.to_owned(), source };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(local)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file).map_err(local)?;
        // One write of the whole line: with O_APPEND, two clients pinning
        // at once each add a whole line (`writeln!` wrote it in pieces,
        // which interleaved: `HOST:PORTHOST:PORT fingerprint`).
        f.write_all(format!("{addr} {record}\n").as_bytes()).map_err(local)
    }

    /// Removes every line for `addr`, as `ssh-keygen -R` does, and returns
    /// their numbers (none: the file is left untouched). The file is
    /// replaced whole, keeping its permissions, so a failure loses nothing.
    pub fn remove(file: &Path, addr: &str) -> Result<Vec<usize>, ClientError> {
        let local = |source| ClientError::Local { path: file.to_owned(), source };
        let text = read(file)?;
        let mut removed = Vec::new();
        let mut kept = String::with_capacity(text.len());
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if entry(line).is_some_and(|(host, _)| host == addr) {
                removed.push(i + 1);
            } else {
                kept.push_str(line);
            }
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut new = tempfile::NamedTempFile::new_in(dir).map_err(local)?;
        new.write_all(kept.as_bytes()).map_err(local)?;
        let permissions = std::fs::metadata(file).map_err(local)?.permissions();
        new.as_file().set_permissions(permissions).map_err(local)?;
        new.as_file().sync_all().map_err(local)?;
        new.persist(file).map_err(|e| local(e.error))?;
        Ok(removed)
    }
}

fn read(file: &Path) -> Result<String, ClientError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ClientError::Local { path: file.to_owned(), source }),
    }
}

/// The host and record of a line, unless it is blank or a comment.
fn entry(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (host, record) = line.split_once(char::is_whitespace)?;
    Some((host, record.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_pinning_at_the_same_moment_each_add_a_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let record = format!("sha256:{}", "ab".repeat(32));
        std::thread::scope(|s| {
            for i in 0..16 {
                let (file, record) = (&file, &record);
                s.spawn(move || {
                    for _ in 0..50 {
                        KnownHosts::add(file, &format!("127.0.0.1:{}", 40000 + i), record).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 16 * 50);
        for line in text.lines() {
            let (host, pinned) = entry(line).unwrap();
            assert!(host.starts_with("127.0.0.1:4") && host.len() == "127.0.0.1:40000".len(), "{line}");
            assert_eq!(pinned, record, "{line}");
        }
    }

    #[test]
    fn remove_takes_every_line_of_the_host_and_keeps_the_rest_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let text = "# mine\na:2121 sha256:aa\nb:2121 ca\n\na:2121 sha256:bb\nab:2121 ca";
        std::fs::write(&file, text).unwrap();
        assert_eq!(KnownHosts::load(&file).unwrap().get("a:2121"), Some(Pin { record: "sha256:aa".into(), line: 2 }));
        assert_eq!(KnownHosts::load(&file).unwrap().get("b:2121").unwrap().line, 3);
        assert_eq!(KnownHosts::remove(&file, "a:2121").unwrap(), vec![2, 5]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\nb:2121 ca\n\nab:2121 ca");
        assert_eq!(KnownHosts::remove(&file, "a:2121").unwrap(), Vec::<usize>::new());
        assert_eq!(KnownHosts::remove(&dir.path().join("none"), "a:2121").unwrap(), Vec::<usize>::new());
    }
}
