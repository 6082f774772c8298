//! Where users' files live: one [`Backend`] trait for metadata and bytes,
//! implemented by the data root on this machine ([`fs`]) and by an
//! S3-compatible bucket ([`s3`]), and one [`Quota`] trait for the space
//! each user uses and reserves (the daemon's own count, or the bucket's
//! usage record).
//!
//! Everything above this module (the transfer layer, then the doors) sees
//! [`Store`], [`Home`], [`Account`], [`Sink`] and [`Source`], which forward
//! to whichever backend the configuration chose; no code outside this
//! module names a backend.
//!
//! Paths given to a backend are already resolved and confined
//! ([`RemotePath`]); what a backend returns for a failure is an [`Error`]
//! by cause, never by backend.

pub mod db;
pub mod error;
mod fs;
mod quota;
mod s3;
#[cfg(test)]
pub(crate) mod tests;

pub use error::{Error, Result};
pub use quota::{Claim, LocalAccount, Reservation, Usage};
pub use s3::S3Config;

use bytes::Bytes;
use ftp_proto::{Entry, RemotePath, Version};
use std::sync::Arc;
use std::time::Duration;

/// A file removed from a home: deleted, or replaced by an upload or a
/// rename. Accounting takes its bytes out once, even when two daemons
/// report the same removal (`key` and `tag` name the version removed).
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// Its size.
    pub bytes: u64,
    /// Where it was, in the backend's own terms.
    pub key: String,
    /// The version removed, when the backend has versions (an ETag).
    pub tag: Option<String>,
}

/// How an upload keeps what it receives.
#[derive(Debug, Clone, Copy)]
pub enum UploadMode {
    /// In a private file that disappears unless the upload completes.
    Private,
    /// In the partial of this target, which outlives a broken connection
    /// and is continued by the next attempt. `hash` (the whole file's,
    /// when the sender knows it up front) must match the partial's record
    /// for its bytes to be continued.
    Resumable {
        /// The whole file's BLAKE3, if declared.
        hash: Option<blake3::Hash>,
    },
}

/// A small upload received whole and verified, to be stored with others.
#[derive(Debug)]
pub struct SmallFile {
    /// Where it goes.
    pub path: RemotePath,
    /// All of it.
    pub data: Vec<u8>,
    /// The modification time to give it, if the sender asked for one and
    /// the backend keeps times ([`Backend::keeps_mtime`]).
    pub mtime: Option<i64>,
}

/// A partial upload kept for resume, as [`Backend::partials`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialInfo {
    /// The upload's target.
    pub path: RemotePath,
    /// The size of the whole file.
    pub size: u64,
    /// Bytes held (where a resumed upload continues).
    pub held: u64,
    /// When it last changed, seconds since the Unix epoch.
    pub mtime: i64,
}

/// A partial upload thrown away by [`Backend::discard_partial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// Its id, for the account ([`Quota::partial_dropped`]).
    pub partial: String,
    /// Bytes it held.
    pub bytes: u64,
}

/// A download asked for.
#[derive(Debug, Clone)]
pub struct Want {
    /// The file.
    pub path: RemotePath,
    /// Bytes the client already holds.
    pub offset: u64,
    /// The version those bytes came from.
    pub since: Option<Version>,
}

/// A download opened: the version pinned, and its bytes.
pub struct Download<S = Source> {
    /// Size of the whole file.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Where the bytes sent start: the offset asked for, or 0 when the
    /// file changed since the client's bytes or is shorter.
    pub offset: u64,
    /// The bytes.
    pub body: Body<S>,
}

/// The bytes of a download.
pub enum Body<S = Source> {
    /// A small file read whole, with its BLAKE3 (offset 0).
    Whole(Vec<u8>, blake3::Hash),
    /// Larger ones, a chunk at a time.
    Stream(S),
}

/// Where a download starts: `want.offset` if the client's bytes can still
/// be part of this version of the file, else 0. The whole-file hash at the
/// end settles it either way.
pub fn start_at(size: u64, mtime: i64, want: &Want) -> u64 {
    let unchanged = want.since.is_none_or(|v| v == Version { size, mtime });
    if want.offset <= size && unchanged { want.offset } else { 0 }
}

/// Files up to this size are downloaded from one read into memory and
/// uploaded (without `resume`) through [`Backend::store_small`], together
/// with the small uploads around them.
pub const SMALL_FILE: u64 = 256 << 10;

/// One user's files on one backend.
pub trait Backend: Send + Sync {
    /// The entries of a directory, sorted by name.
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>>;
    /// Whether `path` is a directory (the home always is).
    async fn is_dir(&self, path: &RemotePath) -> Result<bool>;
    /// One entry, a final symlink described rather than followed.
    async fn stat(&self, path: &RemotePath) -> Result<Entry>;
    /// The BLAKE3 of a file's content.
    async fn hash(&self, path: &RemotePath) -> Result<blake3::Hash>;
    /// The size of the file at `path`, `None` when there is no file.
    async fn file_size(&self, path: &RemotePath) -> Result<Option<u64>>;
    /// Deletes a file (or a symlink, never its target).
    async fn remove_file(&self, path: &RemotePath) -> Result<Removed>;
    /// Creates a directory in an existing one.
    async fn create_dir(&self, path: &RemotePath) -> Result<()>;
    /// Removes an empty directory.
    async fn remove_dir(&self, path: &RemotePath) -> Result<()>;
    /// Renames a file or directory; returns the file it replaced.
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Removed>;
    /// Starts an upload of `size` bytes to `path` (its parent must be a
    /// directory, and it must not be one). A resumable upload whose
    /// partial another upload holds fails with [`Error::Held`].
    async fn begin_upload(&self, path: &RemotePath, size: u64, mode: UploadMode) -> Result<Sink>;
    /// Stores small uploads, each whole or not at all, in the order
    /// given (of two to one name, the later wins). Returns for each the
    /// file it replaced, or why it failed.
    async fn store_small(&self, files: Vec<SmallFile>) -> Vec<Result<Removed>>;
    /// Opens downloads, each pinned to the version of the file it found.
    async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>>;
    /// Bytes stored, counted afresh: files, and partial uploads kept.
    async fn usage(&self) -> Result<u64>;
    /// The partial uploads kept for resume, sorted by target path.
    async fn partials(&self) -> Result<Vec<PartialInfo>>;
    /// Throws away the partial upload kept for `path`: [`Error::NotFound`]
    /// if there is none, [`Error::Held`] while an upload holds it.
    async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded>;
    /// Whether a stored file keeps the modification time its upload asks
    /// for ([`UploadSink::commit`]); an object store keeps its own.
    fn keeps_mtime(&self) -> bool;
}

/// The space a user uses and reserves.
///
/// An upload reserves what it needs before taking data
/// ([`Quota::reserve`]), so uploads running at once can't pass the
/// quota together; it then either settles ([`Quota::settle`]: the file is
/// in place) or releases ([`Quota::release`]: what its partial keeps
/// stays counted, nothing else).
pub trait Quota: Send + Sync {
    /// Space used (files and partials kept) and reserved.
    async fn usage(&self) -> Result<Usage>;
    /// Reserves `claim` unless it would pass `quota`
    /// ([`Error::OverQuota`]).
    async fn reserve(&self, claim: Claim, quota: Option<u64>) -> Result<Reservation>;
    /// Keeps a long upload's reservation from lapsing.
    async fn renew(&self, reservation: &Reservation) -> Result<()>;
    /// The upload completed: its file counts, the one it `replaced` no
    /// longer does.
    async fn settle(&self, reservation: Reservation, replaced: &Removed) -> Result<()>;
    /// The upload ended otherwise; its partial keeps `kept` bytes (0 when
    /// it is gone or was private).
    async fn release(&self, reservation: Reservation, kept: u64) -> Result<()>;
    /// A file was deleted or replaced outside an upload.
    async fn removed(&self, removed: &Removed) -> Result<()>;
    /// A kept partial of `bytes` was dropped (stale, or superseded).
    async fn partial_dropped(&self, partial: &str, bytes: u64) -> Result<()>;
}

/// The receiving end of an upload.
pub trait UploadSink: Send {
    /// Bytes already held (resumed), 0 for a fresh upload.
    fn offset(&self) -> u64;
    /// BLAKE3 of the bytes already held.
    fn prefix_hash(&self) -> blake3::Hash;
    /// The partial this upload writes, for accounting; `None` for a
    /// private upload.
    fn partial(&self) -> Option<&str>;
    /// Bytes of an older partial of the same target dropped to begin
    /// this one (another size or hash), already counted until now.
    fn dropped(&self) -> u64;
    /// A buffer to receive the next chunk into.
    async fn buffer(&mut self) -> Result<Vec<u8>>;
    /// Appends the first `n` bytes of `buf`.
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<()>;
    /// Publishes the file under its name if its whole content hashes to
    /// `hash`, with modification time `mtime` (seconds since the epoch)
    /// if given and the backend keeps times; returns the file it
    /// replaced. However this fails, nothing of the upload stays (not
    /// even a partial).
    async fn commit(self, hash: &blake3::Hash, mtime: Option<i64>) -> Result<Removed>;
    /// Ends the upload unpublished. A resumable one keeps its partial if
    /// `keep` (and it holds any bytes); returns the bytes kept.
    async fn abort(self, keep: bool) -> u64;
}

/// The sending end of a download.
pub trait DownloadSource: Send {
    /// The next chunk, or `None` at the end or after a failure
    /// ([`DownloadSource::finish`] tells which).
    async fn next(&mut self) -> Option<Chunk>;
    /// Hands back a chunk's buffer once sent.
    fn recycle(&mut self, chunk: Chunk);
    /// The BLAKE3 of the whole file, or why reading failed.
    async fn finish(self) -> Result<blake3::Hash>;
}

/// Bytes of a download.
pub enum Chunk {
    /// The first `n` bytes of a recycled buffer.
    Buffer(Vec<u8>, usize),
    /// Shared bytes.
    Bytes(Bytes),
}

impl Chunk {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Buffer(buf, n) => &buf[..*n],
            Chunk::Bytes(bytes) => bytes,
        }
    }
}

/// The storage the daemon was configured with.
pub enum Store {
    /// Under the data root on this machine.
    Fs(fs::Root),
    /// In an S3-compatible bucket.
    S3(s3::Bucket),
}

/// A user's home on the configured store.
#[derive(Clone)]
pub enum Home {
    /// Under the data root.
    Fs(Arc<fs::FsHome>),
    /// In the bucket.
    S3(s3::S3Home),
}

/// A user's account on the configured store.
#[derive(Clone)]
pub enum Account {
    /// Counted by this daemon (the only one writing the data root).
    Local(Arc<LocalAccount>),
    /// Kept in the bucket's usage record, shared by every daemon on it.
    Ledger(s3::Ledger),
}

/// An upload's sink on the configured store.
pub enum Sink {
    /// A file under the data root.
    Fs(fs::FsSink),
    /// An object.
    S3(s3::S3Sink),
}

/// A download's source on the configured store.
pub enum Source {
    /// A file under the data root.
    Fs(fs::FsSource),
    /// An object.
    S3(Box<s3::S3Source>),
}

/// A partial upload removed by [`Store::sweep`].
#[derive(Debug)]
pub struct Swept {
    /// Whose.
    pub user: String,
    /// Which.
    pub partial: String,
    /// Bytes it held.
    pub bytes: u64,
}

impl Store {
    /// Opens the store the configuration names: checks the data root (and
    /// clears private files of uploads that can never complete), or sets
    /// up the bucket, its records in `db` if given.
    pub fn open(config: &crate::config::Config, db: Option<db::Db>) -> Result<Store> {
        match &config.s3 {
            Some(s3) => {
                let bucket = s3::Bucket::connect(s3, config.partial_max_age)?.with_lapse(config.reservation_lapse);
                match db {
                    Some(db) => Ok(Store::S3(bucket.with_database(db))),
                    None => Ok(Store::S3(bucket)),
                }
            }
            None => {
                let budget = ftp_disk::Budget::new(config.transfer_memory);
                Ok(Store::Fs(fs::Root::open(&config.root, config.fsync)?.with_budget(budget)))
            }
        }
    }

    /// The store the configuration names, as a running daemon may be
    /// using it (`ftpd usage`): a data root is only read, never cleared.
    pub fn open_beside(config: &crate::config::Config, db: Option<db::Db>) -> Result<Store> {
        match &config.s3 {
            Some(_) => Store::open(config, db),
            None => Ok(Store::Fs(fs::Root::beside(&config.root, config.fsync))),
        }
    }

    /// The room for the chunk buffers of its transfers, where it has one
    /// (an object store's parts are bounded per transfer instead).
    pub fn budget(&self) -> Option<&ftp_disk::Budget> {
        match self {
            Store::Fs(root) => Some(root.budget()),
            Store::S3(_) => None,
        }
    }

    /// Where files are, for the log.
    pub fn describe(&self) -> String {
        match self {
            Store::Fs(root) => root.describe(),
            Store::S3(bucket) => bucket.describe(),
        }
    }

    /// Checks, before serving, that the store has what the design relies
    /// on: a bucket is tried for conditional writes, pinned ranged GETs
    /// and multipart uploads ([`Error::Lacks`] names what is missing); a
    /// data root was checked when opened.
    pub async fn check(&self) -> Result<()> {
        match self {
            Store::Fs(_) => Ok(()),
            Store::S3(bucket) => bucket.check().await,
        }
    }

    /// The home of `user` (a validated user name), created if needed.
    pub async fn home(&self, user: &str) -> Result<Home> {
        match self {
            Store::Fs(root) => Ok(Home::Fs(root.home(user).await?)),
            Store::S3(bucket) => Ok(Home::S3(bucket.home(user))),
        }
    }

    /// A new account object for `user`; the transfer layer keeps one per
    /// user. A local account counts nothing until loaded (see
    /// [`LocalAccount::load`]).
    pub fn account(&self, user: &str) -> Account {
        match self {
            Store::Fs(_) => Account::Local(Arc::default()),
            Store::S3(bucket) => Account::Ledger(bucket.ledger(user)),
        }
    }

    /// What `user` uses now (`ftpd usage`): walked from the disk, or read
    /// from the usage record a bucket's daemons share.
    pub async fn usage_of(&self, user: &str) -> Result<Usage> {
        match self {
            Store::Fs(_) => Ok(Usage { used: self.home(user).await?.usage().await?, reserved: 0 }),
            Store::S3(bucket) => bucket.ledger(user).usage().await,
        }
    }

    /// Counts `user`'s shared usage record again from what the bucket
    /// holds (`ftpd usage --recount`): the usage before and after. On the
    /// filesystem nothing is kept to recount (each daemon counts the disk
    /// at the user's first login): both are the disk's count.
    pub async fn recount(&self, user: &str) -> Result<(Usage, Usage)> {
        match self {
            Store::Fs(_) => {
                let usage = self.usage_of(user).await?;
                Ok((usage, usage))
            }
            Store::S3(bucket) => bucket.ledger(user).recount().await,
        }
    }

    /// Removes partial uploads not written to for `max_age`, of any user.
    pub async fn sweep(&self, max_age: Duration) -> Result<Vec<Swept>> {
        match self {
            Store::Fs(root) => root.sweep(max_age).await,
            Store::S3(bucket) => bucket.sweep(max_age).await,
        }
    }
}

/// Calls the same method on whichever variant `$value` is.
macro_rules! forward {
    ($value:expr, $enum:ident, $b:ident => $call:expr) => {
        match $value {
            $enum::Fs($b) => $call,
            $enum::S3($b) => $call,
        }
    };
}

impl Backend for Home {
    async fn list(&self, dir: &RemotePath) -> Result<Vec<Entry>> {
        forward!(self, Home, b => b.list(dir).await)
    }
    async fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        forward!(self, Home, b => b.is_dir(path).await)
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        forward!(self, Home, b => b.stat(path).await)
    }
    async fn hash(&self, path: &RemotePath) -> Result<blake3::Hash> {
        forward!(self, Home, b => b.hash(path).await)
    }
    async fn file_size(&self, path: &RemotePath) -> Result<Option<u64>> {
        forward!(self, Home, b => b.file_size(path).await)
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<Removed> {
        forward!(self, Home, b => b.remove_file(path).await)
    }
    async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        forward!(self, Home, b => b.create_dir(path).await)
    }
    async fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        forward!(self, Home, b => b.remove_dir(path).await)
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Removed> {
        forward!(self, Home, b => b.rename(from, to).await)
    }
    async fn begin_upload(&self, path: &RemotePath, size: u64, mode: UploadMode) -> Result<Sink> {
        forward!(self, Home, b => b.begin_upload(path, size, mode).await)
    }
    async fn store_small(&self, files: Vec<SmallFile>) -> Vec<Result<Removed>> {
        forward!(self, Home, b => b.store_small(files).await)
    }
    async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>> {
        forward!(self, Home, b => b.open_downloads(wants).await)
    }
    async fn usage(&self) -> Result<u64> {
        forward!(self, Home, b => b.usage().await)
    }
    async fn partials(&self) -> Result<Vec<PartialInfo>> {
        let mut all = forward!(self, Home, b => b.partials().await)?;
        all.sort_by_key(|p| p.path.to_string());
        Ok(all)
    }
    async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        forward!(self, Home, b => b.discard_partial(path).await)
    }
    fn keeps_mtime(&self) -> bool {
        matches!(self, Home::Fs(_))
    }
}

impl Account {
    /// How often a running upload renews its reservation: a reservation
    /// in a shared record lapses unless renewed (a daemon that died can't
    /// release it); this daemon's own never do.
    pub fn renew_every(&self) -> Duration {
        match self {
            Account::Local(_) => Duration::from_secs(3600),
            Account::Ledger(l) => l.lapse() / 4,
        }
    }
}

impl Quota for Account {
    async fn usage(&self) -> Result<Usage> {
        match self {
            Account::Local(a) => a.usage().await,
            Account::Ledger(l) => l.usage().await,
        }
    }
    async fn reserve(&self, claim: Claim, quota: Option<u64>) -> Result<Reservation> {
        match self {
            Account::Local(a) => a.reserve(claim, quota).await,
            Account::Ledger(l) => l.reserve(claim, quota).await,
        }
    }
    async fn renew(&self, reservation: &Reservation) -> Result<()> {
        match self {
            Account::Local(a) => a.renew(reservation).await,
            Account::Ledger(l) => l.renew(reservation).await,
        }
    }
    async fn settle(&self, reservation: Reservation, replaced: &Removed) -> Result<()> {
        match self {
            Account::Local(a) => a.settle(reservation, replaced).await,
            Account::Ledger(l) => l.settle(reservation, replaced).await,
        }
    }
    async fn release(&self, reservation: Reservation, kept: u64) -> Result<()> {
        match self {
            Account::Local(a) => a.release(reservation, kept).await,
            Account::Ledger(l) => l.release(reservation, kept).await,
        }
    }
    async fn removed(&self, removed: &Removed) -> Result<()> {
        match self {
            Account::Local(a) => a.removed(removed).await,
            Account::Ledger(l) => l.removed(removed).await,
        }
    }
    async fn partial_dropped(&self, partial: &str, bytes: u64) -> Result<()> {
        match self {
            Account::Local(a) => a.partial_dropped(partial, bytes).await,
            Account::Ledger(l) => l.partial_dropped(partial, bytes).await,
        }
    }
}

impl Account {
    /// Loads the account's usage: a local account's from a count of
    /// `home`, once; the store's record is read (made at the first login).
    pub async fn load(&self, home: &Home) -> Result<()> {
        match self {
            Account::Local(a) => a.load(home.usage()).await,
            // The first look makes the record from a listing, if there is
            // none yet. Where the record can't be reached (the database is
            // down), the user still gets in: what needs it fails then.
            Account::Ledger(l) => {
                if let Err(e) = l.usage().await {
                    tracing::warn!(error = %e, "cannot read the usage record; it is read again when needed");
                }
                Ok(())
            }
        }
    }

    /// The usage last known, without asking the store (for metrics);
    /// `None` while unknown.
    pub fn known_usage(&self) -> Option<Usage> {
        match self {
            Account::Local(a) => a.known_usage(),
            Account::Ledger(l) => l.known_usage(),
        }
    }
}

impl UploadSink for Sink {
    fn offset(&self) -> u64 {
        forward!(self, Sink, s => s.offset())
    }
    fn prefix_hash(&self) -> blake3::Hash {
        forward!(self, Sink, s => s.prefix_hash())
    }
    fn partial(&self) -> Option<&str> {
        forward!(self, Sink, s => s.partial())
    }
    fn dropped(&self) -> u64 {
        forward!(self, Sink, s => s.dropped())
    }
    async fn buffer(&mut self) -> Result<Vec<u8>> {
        forward!(self, Sink, s => s.buffer().await)
    }
    async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<()> {
        forward!(self, Sink, s => s.write(buf, n).await)
    }
    async fn commit(self, hash: &blake3::Hash, mtime: Option<i64>) -> Result<Removed> {
        forward!(self, Sink, s => s.commit(hash, mtime).await)
    }
    async fn abort(self, keep: bool) -> u64 {
        forward!(self, Sink, s => s.abort(keep).await)
    }
}

impl DownloadSource for Source {
    async fn next(&mut self) -> Option<Chunk> {
        forward!(self, Source, s => s.next().await)
    }
    fn recycle(&mut self, chunk: Chunk) {
        forward!(self, Source, s => s.recycle(chunk))
    }
    async fn finish(self) -> Result<blake3::Hash> {
        forward!(self, Source, s => s.finish().await)
    }
}
