//! What every door shares, whatever the wire: a user's files ([`Files`]:
//! their home and the shared folders mounted in it, each a [`Place`])
//! with their quota reserved and settled, uploads that are verified before
//! they appear and that a newer attempt can take over ([`Upload`]),
//! downloads pinned to one version, and the log line and metrics of each
//! request ([`Engine::finished`]).
//!
//! Nothing here knows a frame, and nothing here names a backend: bytes go
//! through [`crate::storage`].

mod files;
mod locks;
mod takeover;
#[cfg(test)]
mod tests;
mod upload;

pub use crate::storage::{Discarded, DownloadSource, Error, PartialInfo, Result, SMALL_FILE, Usage, Want};
pub use files::Files;
pub use upload::{End, PutOptions, SmallPut, Upload};

use crate::access::{Access, Permission};
use crate::metrics::Metrics;
use crate::rate::{Bucket, Pace};
use crate::storage::{Account, Backend, Chunk, Claim, Home, Quota, Reservation, Store};
use crate::users::UserStore;
use ftp_proto::{Entry, EntryKind, RemotePath};
use locks::PathLocks;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use takeover::Holders;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// The engine under every door: the store, every user's account, and the
/// bookkeeping that spans sessions.
pub struct Engine {
    store: Store,
    users: Arc<UserStore>,
    /// One account per user, for as long as the daemon runs (a local
    /// account's count must outlive the user's sessions).
    accounts: Mutex<HashMap<String, Account>>,
    holders: Arc<Holders>,
    locks: PathLocks,
    metrics: Arc<Metrics>,
    /// Work that outlives a request (a reservation released after its
    /// connection dropped, a settlement retried); shutdown waits for it.
    tasks: TaskTracker,
    /// The daemon's caps (all uploads, all downloads) and each user's.
    caps: [Option<Arc<Bucket>>; 2],
    user_caps: Mutex<HashMap<(String, Direction), Arc<Bucket>>>,
}

/// Which way bytes go, for bandwidth caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    Up = 0,
    Down = 1,
}

impl Engine {
    /// An engine on `store`, with quotas from `users`.
    pub fn new(store: Store, users: Arc<UserStore>, metrics: Arc<Metrics>) -> Engine {
        Engine {
            store,
            users,
            accounts: Mutex::default(),
            holders: Arc::default(),
            locks: PathLocks::default(),
            metrics,
            tasks: TaskTracker::new(),
            caps: [None, None],
            user_caps: Mutex::default(),
        }
    }

    /// Caps all uploads together, and all downloads, at these rates
    /// (bytes per second).
    pub fn with_caps(mut self, upload: Option<u64>, download: Option<u64>) -> Engine {
        self.caps = [upload.map(Bucket::new), download.map(Bucket::new)];
        self
    }

    /// The lowest caps on `user`'s uploads and downloads now, bytes per
    /// second (theirs or the daemon's), to tell the client.
    pub fn caps(&self, user: &str) -> (Option<u64>, Option<u64>) {
        let (up, down) = self.users.rates(user);
        let lowest = |a: Option<u64>, b: Option<&Arc<Bucket>>| match (a, b.map(|b| b.rate())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (lowest(up, self.caps[0].as_ref()), lowest(down, self.caps[1].as_ref()))
    }

    /// The caps a transfer of `user`'s goes under: the daemon's and the
    /// user's own (one bucket per user and direction, shared by their
    /// sessions, made anew when the user's rate changes).
    fn pace(&self, user: &str, direction: Direction) -> Pace {
        let (up, down) = self.users.rates(user);
        let rate = if direction == Direction::Up { up } else { down };
        let mine = rate.map(|rate| {
            let mut caps = self.user_caps.lock().unwrap_or_else(|p| p.into_inner());
            let bucket = caps.entry((user.to_owned(), direction)).or_insert_with(|| Bucket::new(rate));
            if bucket.rate() != rate {
                *bucket = Bucket::new(rate);
            }
            bucket.clone()
        });
        let waited = self.metrics.rate_wait(if direction == Direction::Up { "upload" } else { "download" });
        Pace::new(self.caps[direction as usize].iter().cloned().chain(mine), Some(waited))
    }

    /// Where files are, for the log.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Checks that the store has what the design relies on (before
    /// serving).
    pub async fn check_store(&self) -> Result<()> {
        self.store.check().await
    }

    /// The room for the chunk buffers of all transfers, where the store has
    /// one.
    pub fn budget(&self) -> Option<&ftp_disk::Budget> {
        self.store.budget()
    }

    /// The background work, for shutdown to wait on.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    fn account(&self, user: &str) -> Account {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.entry(user.to_owned()).or_insert_with(|| self.store.account(user)).clone()
    }

    /// The files of `user` (a validated name) with the shared folders
    /// mounted in their home, usage loaded.
    pub async fn files(self: &Arc<Self>, user: &str) -> Result<Files> {
        let own = self.place(user, user, None).await?;
        let mut mounts = Vec::new();
        for folder in self.users.folders_of(user) {
            let at = RemotePath::resolve(&RemotePath::root(), &folder).map_err(|_| Error::InvalidPath)?;
            mounts.push((folder.clone(), self.place(user, &format!("+{folder}"), Some(at)).await?));
        }
        Ok(Files::new(own, mounts))
    }

    /// The files of `owner` (a user, or `+FOLDER`) as `user` sees them.
    async fn place(self: &Arc<Self>, user: &str, owner: &str, at: Option<RemotePath>) -> Result<Place> {
        let home = self.store.home(owner).await?;
        let account = self.account(owner);
        account.load(&home).await?;
        Ok(Place { user: user.into(), owner: owner.into(), at, home, account, engine: self.clone() })
    }

    /// Counts `user`'s usage again from what the store holds: before and
    /// after (see [`Store::recount`]).
    pub async fn recount(&self, user: &str) -> Result<(Usage, Usage)> {
        self.store.recount(user).await
    }

    /// The usage of each user known now, sorted by name (for metrics).
    pub fn usage_by_user(&self) -> Vec<(String, Usage)> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> =
            accounts.iter().filter_map(|(user, account)| Some((user.clone(), account.known_usage()?))).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Removes partial uploads not written to for `max_age`, and takes
    /// their bytes out of their users' usage. Each removal is logged
    /// before its bytes leave the usage.
    pub async fn sweep(&self, max_age: Duration) -> Result<()> {
        for swept in self.store.sweep(max_age).await? {
            info!(user = %swept.user, bytes = swept.bytes, "removed stale partial uploads");
            if let Err(e) = self.account(&swept.user).partial_dropped(&swept.partial, swept.bytes).await {
                warn!(user = %swept.user, error = %e, "cannot take a stale partial out of the usage");
            }
        }
        Ok(())
    }

    /// Writes the log line and the metrics of a finished request: `result`
    /// is `Ok`, or the label of what refused it (`not_found`, `timeout`,
    /// `disconnected` when the connection broke off during it...).
    pub fn finished(&self, op: &'static str, path: &str, bytes: u64, result: Result<(), &'static str>, took: Duration) {
        self.metrics.request(op, result.err().unwrap_or("ok"), bytes, took);
        let ms = took.as_secs_f64() * 1000.0;
        let mib_s = if bytes > 0 && ms > 0.0 { bytes as f64 / 1_048_576.0 / (ms / 1000.0) } else { 0.0 };
        let path = escape(path);
        match result {
            Ok(()) => info!(op, path = %path, bytes, ms = format!("{ms:.1}"), mib_s = format!("{mib_s:.1}"), "ok"),
            Err(code) => info!(op, path = %path, bytes, ms = format!("{ms:.1}"), error = code, "refused"),
        }
    }

    /// Runs `work` in the background, tracked for shutdown.
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(work);
    }
}

/// Escapes control characters so a hostile name can't forge log lines.
pub fn escape(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).collect::<String>()
}

/// Files with one owner, seen by one user: the user's own home, or a
/// shared folder mounted in it. Paths here are the owner's; the user's
/// permissions are checked at the paths the user sees
/// ([`Place::outer`]).
#[derive(Clone)]
pub(crate) struct Place {
    /// Who acts (permissions, bandwidth, the log).
    user: Arc<str>,
    /// Whose files: the user, or `+FOLDER` (locks, takeovers and the
    /// account are the owner's, shared by every user of a folder).
    owner: Arc<str>,
    /// Where the user sees these files: `None` for their own home.
    at: Option<RemotePath>,
    home: Home,
    account: Account,
    engine: Arc<Engine>,
}

impl Place {
    /// The owner's quota now (changes to the users file apply from the
    /// next upload).
    fn quota(&self) -> Option<u64> {
        match self.owner.strip_prefix('+') {
            Some(folder) => self.engine.users.folder_quota(folder),
            None => self.engine.users.quota(&self.user),
        }
    }

    /// What the user may do now (changes to their record apply from the
    /// next request).
    fn access(&self) -> Access {
        self.engine.users.access(&self.user)
    }

    /// `path` as the user sees it.
    fn outer(&self, path: &RemotePath) -> RemotePath {
        match &self.at {
            None => path.clone(),
            Some(at) => at.join(path),
        }
    }

    /// Checks that the user has `permission` at `path`.
    fn allowed(&self, permission: Permission, path: &RemotePath) -> Result<()> {
        Ok(self.access().check(permission, &self.outer(path))?)
    }

    /// The entries of a directory, sorted by name.
    pub async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        self.allowed(Permission::List, dir)?;
        self.home.list(dir).await
    }

    /// Whether `path` is a directory.
    pub async fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        self.home.is_dir(path).await
    }

    /// An entry, with the BLAKE3 of its content for a file.
    pub async fn stat(&self, path: &RemotePath) -> Result<(Entry, Option<blake3::Hash>)> {
        self.allowed(Permission::List, path)?;
        let entry = self.home.stat(path).await?;
        let hash = match entry.kind {
            EntryKind::File => Some(self.home.hash(path).await?),
            _ => None,
        };
        Ok((entry, hash))
    }

    /// Creates a directory.
    pub async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        let access = self.access();
        access.check(Permission::Mkdir, &self.outer(path))?;
        access.check_name(&self.outer(path))?;
        self.home.create_dir(path).await
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        self.allowed(Permission::Delete, path)?;
        self.home.remove_dir(path).await
    }

    /// Deletes a file; its bytes leave the usage.
    pub async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.allowed(Permission::Delete, path)?;
        let removed = {
            let _locked = self.engine.locks.lock(&self.owner, &[path]).await;
            self.home.remove_file(path).await?
        };
        self.forget(&removed).await;
        Ok(())
    }

    /// Renames a file or directory; a file it replaces leaves the usage.
    /// Needs `rename` at both names, a name the rules allow, and
    /// `overwrite` to replace a file.
    pub async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<()> {
        let access = self.access();
        let (outer_from, outer_to) = (self.outer(from), self.outer(to));
        access.check(Permission::Rename, &outer_from)?;
        access.check(Permission::Rename, &outer_to)?;
        access.check_name(&outer_to)?;
        access.check_movable(&outer_from)?;
        let replaced = {
            let _locked = self.engine.locks.lock(&self.owner, &[from, to]).await;
            if let Err(refused) = access.check(Permission::Overwrite, &outer_to)
                && self.home.file_size(to).await?.is_some()
            {
                return Err(refused.into());
            }
            self.home.rename(from, to).await?
        };
        self.forget(&replaced).await;
        Ok(())
    }

    /// Takes a file that is gone out of the usage; the file is gone
    /// whatever happens to the count, so a failure is logged, not returned.
    async fn forget(&self, removed: &crate::storage::Removed) {
        if removed.bytes == 0 {
            return;
        }
        if let Err(e) = self.account.removed(removed).await {
            error!(user = %self.owner, error = %e, "cannot record freed space in the usage: it stays counted until `ftpd usage --recount`");
        }
    }

    /// Space used and reserved, and the quota.
    pub async fn usage(&self) -> Result<(Usage, Option<u64>)> {
        Ok((self.account.usage().await?, self.quota()))
    }

    /// The partial uploads kept for resume, sorted by target.
    pub async fn partials(&self) -> Result<Vec<PartialInfo>> {
        self.home.partials().await
    }

    /// Throws away the partial upload kept for `path`; its bytes leave the
    /// usage. One held by a stalled upload is taken over first (as a
    /// resumed upload would); one a live upload is sending is
    /// [`Error::Held`].
    pub async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        self.allowed(Permission::Upload, path)?;
        let Some(holding) = self.engine.holders.acquire(&self.owner, &path.to_string()).await else {
            return Err(Error::Held);
        };
        let discarded = self.home.discard_partial(path).await;
        drop(holding);
        let discarded = discarded?;
        if let Err(e) = self.account.partial_dropped(&discarded.partial, discarded.bytes).await {
            error!(user = %self.owner, error = %e, "cannot record a discarded partial in the usage");
        }
        Ok(discarded)
    }

    /// Checks an upload of `size` bytes to `path` against the user's
    /// permissions and rules. Returns the options it goes with: one the
    /// user may not overwrite with must find nothing there.
    fn check_upload(&self, path: &RemotePath, size: u64, options: PutOptions) -> Result<PutOptions> {
        let (access, outer) = (self.access(), self.outer(path));
        access.check(Permission::Upload, &outer)?;
        access.check_name(&outer)?;
        access.check_size(size)?;
        let no_overwrite = access.check(Permission::Overwrite, &outer).is_err();
        Ok(PutOptions { no_overwrite, ..options })
    }

    /// Refuses an upload that must not replace anything when something is
    /// at `path` already.
    async fn check_absent(&self, path: &RemotePath, options: &PutOptions) -> Result<()> {
        if options.exclusive && self.home.stat(path).await.is_ok() {
            return Err(Error::Exists);
        }
        if options.no_overwrite && self.home.file_size(path).await?.is_some() {
            return Err(self.allowed(Permission::Overwrite, path).err().unwrap_or(Error::Exists));
        }
        Ok(())
    }

    /// Reserves room for an upload of `size` bytes to `path` that holds
    /// `held` already (in `partial`). When the whole size does not fit,
    /// only the difference with the file it replaces needs to.
    async fn reserve(&self, path: &RemotePath, size: u64, held: u64, partial: Option<&str>) -> Result<Reservation> {
        let quota = self.quota();
        let claim = Claim { size, held, replaces: 0, partial: partial.map(str::to_owned) };
        match self.account.reserve(claim.clone(), quota).await {
            Err(Error::OverQuota { .. }) if quota.is_some() => {
                let replaces = self.home.file_size(path).await.ok().flatten().unwrap_or(0);
                self.account.reserve(Claim { replaces, ..claim }, quota).await
            }
            other => other,
        }
    }

    /// Counts a completed upload. A failed write of the count is retried
    /// in the background (a settlement applies once, so retrying is safe).
    async fn settle(&self, reservation: Reservation, replaced: crate::storage::Removed) {
        let Err(e) = self.account.settle(reservation.clone(), &replaced).await else { return };
        warn!(user = %self.owner, error = %e, "cannot record an upload in the usage yet; retrying");
        let (account, user) = (self.account.clone(), self.owner.clone());
        self.engine.spawn(async move {
            for attempt in 1..=8u32 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                match account.settle(reservation.clone(), &replaced).await {
                    Ok(()) => return,
                    Err(e) if attempt == 8 => error!(user = %user, error = %e, "cannot record an upload in the usage"),
                    Err(_) => {}
                }
            }
        });
    }

    /// Ends a reservation without counting anything but what a partial
    /// keeps; a failure lets the reservation lapse by itself.
    async fn release(&self, reservation: Reservation, kept: u64) {
        if let Err(e) = self.account.release(reservation, kept).await {
            warn!(user = %self.owner, error = %e, "cannot end an upload's reservation; it lapses by itself");
        }
    }

    /// Opens downloads, each pinned to the version of its file found now,
    /// paced by the caps that apply (a small file's bytes are drawn
    /// before it is handed over).
    pub async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>> {
        let access = self.access();
        let refused: Vec<Option<Error>> = wants
            .iter()
            .map(|w| access.check(Permission::Download, &self.outer(&w.path)).err().map(Error::from))
            .collect();
        let allowed = wants.into_iter().zip(&refused).filter(|(_, r)| r.is_none()).map(|(w, _)| w).collect();
        let mut opened = self.home.open_downloads(allowed).await.into_iter();
        let pace = self.engine.pace(&self.user, Direction::Down);
        let mut downloads = Vec::with_capacity(refused.len());
        for refusal in refused {
            let download = match refusal {
                Some(e) => Err(e),
                None => opened.next().unwrap_or_else(|| Err(Error::other("the store skipped a download"))),
            };
            downloads.push(match download {
                Ok(d) => Ok(paced(d, &pace).await),
                Err(e) => Err(e),
            });
        }
        downloads
    }
}

/// A download opened.
pub type Download = crate::storage::Download<Stream>;
/// Its bytes.
pub type Body = crate::storage::Body<Stream>;

/// A download's source under the caps that apply to it.
async fn paced(download: crate::storage::Download, pace: &Pace) -> Download {
    let crate::storage::Download { size, mtime, offset, body } = download;
    let body = match body {
        crate::storage::Body::Whole(data, hash) => {
            pace.take(data.len()).await;
            Body::Whole(data, hash)
        }
        crate::storage::Body::Stream(source) => Body::Stream(Stream { source, pace: pace.clone() }),
    };
    Download { size, mtime, offset, body }
}

/// The bytes of a larger download, a chunk at a time, each drawn from
/// the caps that apply before it is handed over.
pub struct Stream {
    source: crate::storage::Source,
    pace: Pace,
}

impl DownloadSource for Stream {
    async fn next(&mut self) -> Option<Chunk> {
        let chunk = self.source.next().await?;
        self.pace.take(chunk.as_slice().len()).await;
        Some(chunk)
    }

    fn recycle(&mut self, chunk: Chunk) {
        self.source.recycle(chunk)
    }

    async fn finish(self) -> Result<blake3::Hash> {
        self.source.finish().await
    }
}
