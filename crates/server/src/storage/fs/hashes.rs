//! The BLAKE3 of files whose content ftpd knows: recorded when a verified
//! upload is put in place or a download has read a whole file, and served
//! to the next download instead of hashing the file again.
//!
//! A record holds for one version of one file: it is keyed by device and
//! inode and kept with the file's size, modification time and change time.
//! Anything that changes a file's bytes, through ftpd or not, changes its
//! change time (which no one can set back without setting the clock), so
//! a file changed since is hashed afresh. The records live in memory only:
//! after a restart, a file's first download hashes it again.
//!
//! A file rewritten in place outside ftpd within one tick of the kernel's
//! clock, keeping its size and modification time, would keep its record;
//! the client, which hashes every byte it receives, then reports the
//! mismatch instead of keeping the file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Files remembered at most (about 100 bytes each).
const MAX_RECORDS: usize = 65_536;

/// The version of a file a hash belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Where a file is, and which version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    inode: (u64, u64),
    version: Version,
}

impl Stamp {
    /// The stamp of the file `meta` describes, as it is now.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            inode: (meta.dev(), meta.ino()),
            version: Version {
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            },
        }
    }
}

/// Hashes of files as they were when recorded.
#[derive(Debug, Default)]
pub struct Hashes {
    records: Mutex<HashMap<(u64, u64), (Version, blake3::Hash)>>,
}

impl Hashes {
    /// The hash recorded for this version of the file, if any.
    pub fn get(&self, stamp: &Stamp) -> Option<blake3::Hash> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.get(&stamp.inode).filter(|(version, _)| *version == stamp.version).map(|(_, hash)| *hash)
    }

    /// Records `hash`, read from `file` as it was at `stamp`, if the file
    /// is still that version now (else it changed while being read).
    pub fn record_if_unchanged(&self, stamp: Stamp, file: &std::fs::File, hash: blake3::Hash) {
        if file.metadata().is_ok_and(|now| Stamp::of(&now) == stamp) {
            self.record(stamp, hash);
        }
    }

    /// Records the hash of this version of the file (replacing what was
    /// recorded for an older one).
    pub fn record(&self, stamp: Stamp, hash: blake3::Hash) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= MAX_RECORDS && !records.contains_key(&stamp.inode) {
            // Full: forget some (whichever come first), not all at once.
            let drop: Vec<_> = records.keys().take(MAX_RECORDS / 16).copied().collect();
            for key in drop {
                records.remove(&key);
            }
        }
        records.insert(stamp.inode, (stamp.version, hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_record_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let hashes = Hashes::default();
        let stamp = Stamp::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(hashes.get(&stamp), None);
        hashes.record(stamp, blake3::hash(b"hello"));
        assert_eq!(hashes.get(&Stamp::of(&std::fs::metadata(&path).unwrap())), Some(blake3::hash(b"hello")));

        // Rewritten in place, same size, modification time put back: the
        // change time still moved.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(b"jello").unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let now = Stamp::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(now.version.mtime, stamp.version.mtime);
        assert_eq!(hashes.get(&now), None, "a changed file is not served its old hash");
    }

    #[test]
    fn records_are_bounded() {
        let hashes = Hashes::default();
        let version = Version { size: 1, mtime: (0, 0), ctime: (0, 0) };
        for ino in 0..(MAX_RECORDS as u64 + 10) {
            hashes.record(Stamp { inode: (1, ino), version }, blake3::hash(b""));
        }
        let len = hashes.records.lock().unwrap().len();
        assert!(len <= MAX_RECORDS, "{len}");
        let last = Stamp { inode: (1, MAX_RECORDS as u64 + 9), version };
        assert_eq!(hashes.get(&last), Some(blake3::hash(b"")), "the newest record is kept");
    }
}
