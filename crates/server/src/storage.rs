//! Where a user's files live, behind one trait: [`Storage`], implemented by
//! the data root on this machine ([`Home`], whose blocking calls run on
//! tokio's blocking threads) and by a bucket ([`ObjectHome`]). Both give
//! every operation the same meaning; `session.rs` calls them without
//! knowing which it has.
//!
//! Streaming file contents is not part of the trait: uploads and downloads
//! have an engine per backend (`transfer.rs` with its disk thread,
//! `objtransfer.rs` with multipart uploads and ranged reads), chosen once
//! per request.

use crate::accounts::Account;
use crate::home::Home;
use crate::objstore::ObjectHome;
use ftp_proto::{Entry, EntryKind, RemotePath};
use std::io;
use std::sync::Arc;

/// The operations on a user's files that don't stream their contents.
/// Paths are already resolved inside the home ([`RemotePath`]).
pub(crate) trait Storage {
    /// The entries of a directory, sorted by name.
    async fn list(&self, dir: &RemotePath) -> io::Result<Vec<Entry>>;
    /// Whether `path` is a directory (the home always is).
    async fn is_dir(&self, path: &RemotePath) -> io::Result<bool>;
    /// An entry, with the BLAKE3 (hex) of its content for a file.
    async fn stat(&self, path: &RemotePath) -> io::Result<(Entry, Option<String>)>;
    /// Deletes a file and takes its bytes out of the usage (kept by
    /// `account` on the filesystem, in the bucket's usage record on object
    /// storage); returns the bytes freed.
    async fn remove_file(&self, path: &RemotePath, account: &Account) -> io::Result<u64>;
    /// Creates a directory in an existing one.
    async fn create_dir(&self, path: &RemotePath) -> io::Result<()>;
    /// Removes an empty directory.
    async fn remove_dir(&self, path: &RemotePath) -> io::Result<()>;
    /// Renames a file or directory; the bytes of a file it replaced
    /// leave the usage, as with `remove_file`.
    async fn rename(&self, from: &RemotePath, to: &RemotePath, account: &Account) -> io::Result<()>;
    /// The space used and the space reserved by uploads in progress (on
    /// object storage, by every daemon on the bucket).
    async fn usage(&self, account: &Account) -> io::Result<(u64, u64)>;
}

/// Runs `f` on the home on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    home: &Arc<Home>,
    f: impl FnOnce(&Home) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let home = home.clone();
    tokio::task::spawn_blocking(move || f(&home)).await.unwrap_or_else(|e| Err(io::Error::other(e)))
}

impl Storage for Arc<Home> {
    async fn list(&self, dir: &RemotePath) -> io::Result<Vec<Entry>> {
        let dir = dir.clone();
        blocking(self, move |h| h.list(&dir)).await
    }

    async fn is_dir(&self, path: &RemotePath) -> io::Result<bool> {
        let path = path.clone();
        blocking(self, move |h| h.is_dir(&path)).await
    }

    async fn stat(&self, path: &RemotePath) -> io::Result<(Entry, Option<String>)> {
        let path = path.clone();
        blocking(self, move |h| {
            let entry = h.stat(&path)?;
            let hash = match entry.kind {
                EntryKind::File => Some(h.hash(&path)?.to_hex().to_string()),
                _ => None,
            };
            Ok((entry, hash))
        })
        .await
    }

    async fn remove_file(&self, path: &RemotePath, account: &Account) -> io::Result<u64> {
        let path = path.clone();
        let freed = blocking(self, move |h| h.remove_file(&path)).await?;
        account.adjust(-(freed as i64));
        Ok(freed)
    }

    async fn create_dir(&self, path: &RemotePath) -> io::Result<()> {
        let path = path.clone();
        blocking(self, move |h| h.create_dir(&path)).await
    }

    async fn remove_dir(&self, path: &RemotePath) -> io::Result<()> {
        let path = path.clone();
        blocking(self, move |h| h.remove_dir(&path)).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, account: &Account) -> io::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        let replaced = blocking(self, move |h| h.rename(&from, &to)).await?;
        account.adjust(-(replaced as i64));
        Ok(())
    }

    async fn usage(&self, account: &Account) -> io::Result<(u64, u64)> {
        let usage = account.usage();
        Ok((usage.used, usage.reserved))
    }
}

impl Storage for ObjectHome {
    async fn list(&self, dir: &RemotePath) -> io::Result<Vec<Entry>> {
        ObjectHome::list(self, dir).await
    }

    async fn is_dir(&self, path: &RemotePath) -> io::Result<bool> {
        ObjectHome::is_dir(self, path).await
    }

    async fn stat(&self, path: &RemotePath) -> io::Result<(Entry, Option<String>)> {
        let entry = ObjectHome::stat(self, path).await?;
        let hash = match entry.kind {
            EntryKind::File => Some(self.hash(path).await?.to_hex().to_string()),
            _ => None,
        };
        Ok((entry, hash))
    }

    async fn remove_file(&self, path: &RemotePath, account: &Account) -> io::Result<u64> {
        let removed = ObjectHome::remove_file(self, path).await?;
        self.record_removed_for(&removed, account).await;
        Ok(removed.bytes)
    }

    async fn create_dir(&self, path: &RemotePath) -> io::Result<()> {
        ObjectHome::create_dir(self, path).await
    }

    async fn remove_dir(&self, path: &RemotePath) -> io::Result<()> {
        ObjectHome::remove_dir(self, path).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, account: &Account) -> io::Result<()> {
        let replaced = ObjectHome::rename(self, from, to).await?;
        self.record_removed_for(&replaced, account).await;
        Ok(())
    }

    async fn usage(&self, account: &Account) -> io::Result<(u64, u64)> {
        let (used, reserved) = self.ledger_usage().await?;
        account.set_used(used);
        Ok((used, reserved))
    }
}

impl ObjectHome {
    /// Takes a removed object out of the bucket's usage record (the
    /// count; this daemon's account mirrors it for the metrics).
    async fn record_removed_for(&self, removed: &crate::objstore::Removed, account: &Account) {
        if removed.bytes == 0 {
            return;
        }
        match self.record_removed(removed).await {
            Ok(used) => account.set_used(used),
            Err(e) => tracing::error!(error = %e, "cannot record freed space in the usage record"),
        }
    }
}

/// Where a user's files are: one of the two [`Storage`]s.
#[derive(Clone)]
pub(crate) enum Files {
    /// Under the data root on this machine.
    Local(Arc<Home>),
    /// In the configured bucket.
    Objects(ObjectHome),
}

/// Calls the same [`Storage`] method on whichever backend `files` is.
macro_rules! on_either {
    ($files:expr, $s:ident => $call:expr) => {
        match $files {
            Files::Local($s) => $call,
            Files::Objects($s) => $call,
        }
    };
}

impl Storage for Files {
    async fn list(&self, dir: &RemotePath) -> io::Result<Vec<Entry>> {
        on_either!(self, s => Storage::list(s, dir).await)
    }

    async fn is_dir(&self, path: &RemotePath) -> io::Result<bool> {
        on_either!(self, s => Storage::is_dir(s, path).await)
    }

    async fn stat(&self, path: &RemotePath) -> io::Result<(Entry, Option<String>)> {
        on_either!(self, s => Storage::stat(s, path).await)
    }

    async fn remove_file(&self, path: &RemotePath, account: &Account) -> io::Result<u64> {
        on_either!(self, s => Storage::remove_file(s, path, account).await)
    }

    async fn create_dir(&self, path: &RemotePath) -> io::Result<()> {
        on_either!(self, s => Storage::create_dir(s, path).await)
    }

    async fn remove_dir(&self, path: &RemotePath) -> io::Result<()> {
        on_either!(self, s => Storage::remove_dir(s, path).await)
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath, account: &Account) -> io::Result<()> {
        on_either!(self, s => Storage::rename(s, from, to, account).await)
    }

    async fn usage(&self, account: &Account) -> io::Result<(u64, u64)> {
        on_either!(self, s => Storage::usage(s, account).await)
    }
}
