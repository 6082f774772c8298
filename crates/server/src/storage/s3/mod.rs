//! Files in an S3-compatible bucket (`storage = "s3"`): the same
//! operations with the same meaning as on the data root.
//!
//! Layout under the configured prefix `P`:
//!
//! ```text
//! P/homes/<user>/<path>         a file: one object, whole and verified
//! P/homes/<user>/<dir>/\dir     an (empty) object marking a directory
//! P/partials/<user>/<id>.json   a resumable upload in progress (see upload.rs)
//! P/usage/<user>.json           the user's usage, shared by every daemon (see ledger.rs)
//! ```
//!
//! The last two are records (see records.rs): with `database` set they are
//! rows of PostgreSQL under the same names, and not in the bucket; so are
//! the locks daemons take on a file while changing it
//! (`P/locks/<user>/<id>`, database only).
//!
//! Object stores have no directories, only keys with `/` in them. A
//! directory here is a marker object named `\dir` inside it, which no user
//! can name (a name with a backslash is refused, see
//! [`ftp_proto::validate_name`]); a key prefix with objects under it counts
//! as a directory too. Listing hides the markers.
//!
//! Renames are a copy then a delete (object stores have no rename): a
//! reader may see both names for a moment, never a partial object.

mod download;
mod ledger;
mod probe;
mod records;
mod upload;

use super::db::Db;
pub use download::S3Source;
pub use ledger::Ledger;
use records::Records;
pub use upload::S3Sink;

use super::{
    Body, Discarded, Download, Error, PartialInfo, Removed, Result, SMALL_FILE, SmallFile, Swept, UploadMode, Want,
};
use ftp_proto::{Entry, EntryKind, RemotePath};
use futures::StreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::time::Duration;

/// The longest key S3 allows, in bytes.
const MAX_KEY: usize = 1024;
/// Name of the marker object of a directory.
const DIR_MARKER: &str = "\\dir";

/// Where and how to reach the bucket. The secret is never printed.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:3900` (AWS's when `None`).
    pub endpoint: Option<String>,
    /// Region (`us-east-1` when unsure; Garage wants its configured one).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Parts of one upload on their way to the store at once (at least 1).
    pub parts_in_flight: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("parts_in_flight", &self.parts_in_flight)
            .finish()
    }
}

/// An object store with multipart uploads that outlive a connection (a
/// resumable upload continues them, on any daemon).
pub(crate) trait Objects: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Objects for T {}

/// The store, shared.
type Store = Arc<dyn Objects>;

/// A connected bucket and the prefix the daemon's keys live under.
pub struct Bucket {
    store: Store,
    base: Path,
    /// How long a broken upload's partial stays counted (then swept).
    keep_for: Duration,
    what: String,
    /// Where the usage records and those of resumable uploads live.
    records: Records,
    /// Parts of one upload on their way at once.
    parts_in_flight: usize,
    /// How long an unrenewed reservation counts.
    lapse: Duration,
}

impl Bucket {
    /// Connects (lazily: the first request reaches the store).
    pub fn connect(config: &S3Config, keep_for: Duration) -> Result<Bucket> {
        // The store's HTTPS goes through rustls with the process's provider
        // (aws-lc-rs, as for the daemon's own TLS); already installed is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key);
        // A few quick retries: a client waits on each request.
        let retry = object_store::RetryConfig { max_retries: 3, ..Default::default() };
        builder = builder.with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| Error::Unavailable(format!("cannot set up the object store: {e}")))?;
        let what = format!(
            "objects in bucket {} at {} under prefix {:?}",
            config.bucket,
            config.endpoint.as_deref().unwrap_or("AWS"),
            config.prefix
        );
        let mut bucket = Bucket::new(Arc::new(store), &config.prefix, keep_for, what);
        bucket.parts_in_flight = config.parts_in_flight.max(1);
        Ok(bucket)
    }

    /// A bucket on any store (an in-memory one in tests).
    pub(crate) fn new(store: Store, prefix: &str, keep_for: Duration, what: String) -> Bucket {
        let records = Records::Bucket(store.clone());
        let base = Path::from(prefix.trim_matches('/'));
        Bucket { store, base, keep_for, what, records, parts_in_flight: 2, lapse: Duration::from_secs(600) }
    }

    /// Lets reservations left unrenewed lapse after `lapse`.
    pub(in crate::storage) fn with_lapse(mut self, lapse: Duration) -> Bucket {
        self.lapse = lapse;
        self
    }

    /// Keeps the records (usage, resumable uploads) in `db` instead of
    /// the bucket.
    pub(in crate::storage) fn with_database(mut self, db: Db) -> Bucket {
        self.what = format!("{}, records in the database", self.what);
        self.records = Records::Database(db);
        self
    }

    pub(in crate::storage) fn describe(&self) -> String {
        self.what.clone()
    }

    /// Checks that the store has every feature the design relies on
    /// (see [`probe`]): conditional writes only when the records live in
    /// the bucket. Then brings the database's schema up to date, if there
    /// is one.
    pub(in crate::storage) async fn check(&self) -> Result<()> {
        let db = self.records.database();
        probe::check(&self.store, &self.base, db.is_none()).await?;
        match db {
            Some(db) => db.migrate().await,
            None => Ok(()),
        }
    }

    /// The home of `user` (an already validated user name).
    pub fn home(&self, user: &str) -> S3Home {
        S3Home {
            store: self.store.clone(),
            records: self.records.clone(),
            locks: self.base.clone().join("locks").join(user),
            parts_in_flight: self.parts_in_flight,
            home: self.base.clone().join("homes").join(user),
            partials: self.base.clone().join("partials").join(user),
        }
    }

    /// The usage record of `user`.
    pub fn ledger(&self, user: &str) -> Ledger {
        let key = self.base.clone().join("usage").join(format!("{user}.json"));
        Ledger::new(self.home(user), key, self.keep_for, self.lapse)
    }

    /// Drops the resumable uploads, of any user, whose record has not
    /// changed for `max_age`: aborts the multipart upload (the store frees
    /// its parts) and deletes the record. Several daemons may sweep at
    /// once: each step is harmless twice.
    pub(in crate::storage) async fn sweep(&self, max_age: Duration) -> Result<Vec<Swept>> {
        let base = self.base.clone().join("partials");
        let cutoff = ledger::now_secs().saturating_sub(max_age.as_secs().min(i64::MAX as u64) as i64);
        let mut swept = Vec::new();
        for found in self.records.list::<upload::PartialRecord>(&base).await? {
            if found.modified > cutoff {
                continue;
            }
            // partials/<user>/<id>.json
            let parts: Vec<_> = found.key.prefix_match(&base).map(|p| p.collect()).unwrap_or_default();
            let [user, file] = parts.as_slice() else { continue };
            if !file.as_ref().ends_with(".json") {
                continue;
            }
            let user = decode(user.as_ref()).unwrap_or_else(|| user.as_ref().to_owned());
            let home = self.home(&user);
            let partial = upload::partial_id(&found.key);
            // Only as it was listed: an attempt may have resumed it since.
            match upload::drop_partial(&home, found).await {
                Ok(bytes) => swept.push(Swept { user, partial, bytes }),
                Err(Error::Changed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(swept)
    }
}

/// Maps the store's errors onto causes. The store's client hides the
/// HTTP status behind its message, so the cause is read from the text
/// (`... status code: 403 Forbidden: ...`; a bare number would also match
/// a port in the URL, as it once did here): a 5xx or a connection failure
/// may pass, a 507 or a store saying it has no room is
/// [`Error::NoSpace`], a 403 means the daemon's key may not write there.
pub(in crate::storage) fn from_store(e: object_store::Error) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Error::NotFound,
        E::AlreadyExists { .. } => Error::Exists,
        E::Precondition { .. } => Error::Changed,
        other => {
            let text = super::error::chain(&other);
            let has = |needle: &str| text.contains(needle);
            let status = |code: &str| has(&format!("status code: {code}"));
            if status("507") || has("InsufficientStorage") || has("No space left") || has("EntityTooLarge") {
                Error::NoSpace(std::io::Error::other(text))
            } else if status("403") || has("AccessDenied") {
                Error::ReadOnly {
                    reason: "the object store refused the daemon's access key",
                    source: std::io::Error::other(text),
                }
            } else if status("500")
                || status("502")
                || status("503")
                || status("504")
                || has("error sending request")
                || has("connect")
                || has("timed out")
                || has("Timeout")
            {
                Error::Unavailable(text)
            } else {
                Error::other(other)
            }
        }
    }
}

/// A key's last part as the name it was made from (parts are stored
/// percent-encoded); `None` for one no valid name encodes to.
fn decode(part: &str) -> Option<String> {
    percent_encoding::percent_decode_str(part).decode_utf8().ok().map(|n| n.into_owned())
}

/// One user's home in the bucket.
#[derive(Debug, Clone)]
pub struct S3Home {
    store: Store,
    records: Records,
    /// Where the locks on its files are (see [`records::KeyLock`]).
    locks: Path,
    parts_in_flight: usize,
    home: Path,
    partials: Path,
}

impl S3Home {
    /// The key of a (confined, already resolved) path.
    /// The key of a (confined, already resolved) path; one longer than
    /// an S3 key may be is refused.
    fn key(&self, path: &RemotePath) -> Result<Path> {
        let key = path.parts().fold(self.home.clone(), |key, part| key.join(part));
        if key.as_ref().len() > MAX_KEY - DIR_MARKER.len() - 1 {
            return Err(Error::NameTooLong);
        }
        Ok(key)
    }

    fn marker(&self, path: &RemotePath) -> Result<Path> {
        Ok(self.key(path)?.join(DIR_MARKER))
    }

    /// Whether `path` is a directory; `NotFound` when nothing is there
    /// (as on the filesystem).
    pub(in crate::storage) async fn is_dir(&self, path: &RemotePath) -> Result<bool> {
        if self.dir_exists(path).await? {
            return Ok(true);
        }
        match self.head(path).await? {
            Some(_) => Ok(false),
            None => Err(Error::NotFound),
        }
    }

    /// Whether `path` is a directory: the home, a marked directory, or a
    /// prefix with objects under it.
    async fn dir_exists(&self, path: &RemotePath) -> Result<bool> {
        if path.is_root() {
            return Ok(true);
        }
        match self.store.head(&self.marker(path)?).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(from_store(e)),
        }
        let listed = self.store.list_with_delimiter(Some(&self.key(path)?)).await.map_err(from_store)?;
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    /// Whether `path` is a file, and its size.
    pub(in crate::storage) async fn file_size(&self, path: &RemotePath) -> Result<Option<u64>> {
        Ok(self.file(path).await?.map(|meta| meta.size))
    }

    /// The object of the file at `path`, if there is one (a directory is
    /// never a file; asking first also spares stores that keep objects as
    /// files, s3s-fs, a HEAD on a directory).
    async fn file(&self, path: &RemotePath) -> Result<Option<object_store::ObjectMeta>> {
        if path.is_root() || self.dir_exists(path).await? {
            return Ok(None);
        }
        self.head(path).await
    }

    /// The object at `path`, if there is one. Stores that keep objects as
    /// files (s3s-fs) fail a HEAD on a key that is a directory on their
    /// disk instead of answering 404; then the parent's listing decides.
    async fn head(&self, path: &RemotePath) -> Result<Option<object_store::ObjectMeta>> {
        let key = self.key(path)?;
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(first) => {
                let parent = self.key(&path.parent())?;
                let listed = self.store.list_with_delimiter(Some(&parent)).await.map_err(|_| from_store(first))?;
                Ok(listed.objects.into_iter().find(|o| o.location == key))
            }
        }
    }

    /// The file at `path` as it would be removed or replaced now.
    /// Locks `paths` against changes by other daemons, in order (see
    /// [`records::KeyLock`]); nothing to lock without a database.
    async fn lock(&self, paths: &[&RemotePath]) -> Result<Vec<records::KeyLock>> {
        let mut names: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        names.sort();
        names.dedup();
        let mut held = Vec::new();
        for name in names {
            let id = blake3::hash(name.as_bytes()).to_hex();
            match self.records.lock(&self.locks.clone().join(&id[..32])).await {
                Ok(lock) => held.extend(lock),
                Err(e) => {
                    unlock(held).await;
                    return Err(e);
                }
            }
        }
        Ok(held)
    }

    async fn as_removed(&self, path: &RemotePath) -> Result<Removed> {
        Ok(self.file(path).await?.map(removed).unwrap_or_default())
    }

    /// Fails unless `path` is a directory (a missing one is named as such).
    async fn check_dir(&self, path: &RemotePath, missing: Error) -> Result<()> {
        if self.dir_exists(path).await? {
            return Ok(());
        }
        Err(match self.file(path).await? {
            Some(_) => Error::NotADirectory,
            None => missing,
        })
    }

    pub(in crate::storage) async fn list(&self, path: &RemotePath) -> Result<Vec<Entry>> {
        self.check_dir(path, Error::NotFound).await?;
        let dir = self.key(path)?;
        let listed = self.store.list_with_delimiter(Some(&dir)).await.map_err(from_store)?;
        let mut entries = Vec::new();
        for prefix in listed.common_prefixes {
            if let Some(name) = prefix.filename().and_then(decode) {
                entries.push(Entry { name, kind: EntryKind::Dir, size: 0, mtime: 0 });
            }
        }
        for object in listed.objects {
            match object.location.filename().and_then(decode) {
                None => {}
                Some(name) if name == DIR_MARKER => {}
                Some(name) => entries.push(Entry {
                    name,
                    kind: EntryKind::File,
                    size: object.size,
                    mtime: object.last_modified.timestamp(),
                }),
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    pub(in crate::storage) async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let name = path.file_name().unwrap_or("/").to_owned();
        if self.dir_exists(path).await? {
            return Ok(Entry { name, kind: EntryKind::Dir, size: 0, mtime: 0 });
        }
        match self.head(path).await? {
            Some(meta) => {
                let mtime = meta.last_modified.timestamp();
                Ok(Entry { name, kind: EntryKind::File, size: meta.size, mtime })
            }
            // A file where a directory should be is named as such.
            None if self.file(&path.parent()).await?.is_some() => Err(Error::NotADirectory),
            None => Err(Error::NotFound),
        }
    }

    pub(in crate::storage) async fn hash(&self, path: &RemotePath) -> Result<blake3::Hash> {
        let mut stream = self.store.get(&self.key(path)?).await.map_err(from_store)?.into_stream();
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(from_store)?);
        }
        Ok(hasher.finalize())
    }

    /// Checks that an upload or a new name can go to `path`: its parent is
    /// a directory and it is not one.
    async fn check_target(&self, path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Err(Error::IsADirectory);
        }
        self.check_dir(&path.parent(), Error::ParentNotFound).await?;
        if self.dir_exists(path).await? {
            return Err(Error::IsADirectory);
        }
        Ok(())
    }

    pub(in crate::storage) async fn create_dir(&self, path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Err(Error::Exists);
        }
        match self.check_target(path).await {
            Err(Error::IsADirectory) => return Err(Error::Exists),
            other => other?,
        }
        if self.head(path).await?.is_some() {
            return Err(Error::Exists);
        }
        self.store.put(&self.marker(path)?, PutPayload::default()).await.map_err(from_store)?;
        Ok(())
    }

    pub(in crate::storage) async fn remove_dir(&self, path: &RemotePath) -> Result<()> {
        if path.is_root() {
            return Err(Error::Denied("the home directory itself can't be changed"));
        }
        if !self.list(path).await?.is_empty() {
            return Err(Error::NotEmpty);
        }
        match self.store.delete(&self.marker(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_store(e)),
        }
    }

    pub(in crate::storage) async fn remove_file(&self, path: &RemotePath) -> Result<Removed> {
        if path.is_root() || self.dir_exists(path).await? {
            return Err(Error::IsADirectory);
        }
        let held = self.lock(&[path]).await?;
        let result = async {
            let meta = self.head(path).await?.ok_or(Error::NotFound)?;
            self.store.delete(&meta.location).await.map_err(from_store)?;
            Ok(removed(meta))
        }
        .await;
        unlock(held).await;
        result
    }

    /// Renames a file, replacing a file at `to`; returns the file
    /// replaced. A directory moves object by object (not atomic: an
    /// interrupted move of a directory leaves some of it at each name).
    pub(in crate::storage) async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Removed> {
        if from.is_root() || to.is_root() {
            return Err(Error::Denied("the home directory itself can't be changed"));
        }
        if from == to {
            self.stat(from).await?;
            return Ok(Removed::default());
        }
        if self.file(from).await?.is_some() {
            self.check_target(to).await?;
            let held = self.lock(&[from, to]).await?;
            let result = async {
                let replaced = self.as_removed(to).await?;
                self.store.copy(&self.key(from)?, &self.key(to)?).await.map_err(from_store)?;
                self.store.delete(&self.key(from)?).await.map_err(from_store)?;
                Ok(replaced)
            }
            .await;
            unlock(held).await;
            return result;
        }
        if !self.dir_exists(from).await? {
            return Err(Error::NotFound);
        }
        if to.to_string().starts_with(&format!("{}/", from.to_string().trim_end_matches('/'))) {
            return Err(Error::InvalidPath);
        }
        self.check_target(to).await?;
        if self.head(to).await?.is_some() {
            return Err(Error::Exists);
        }
        let (src, dst) = (self.key(from)?, self.key(to)?);
        let objects: Vec<_> = self.store.list(Some(&src)).collect().await;
        for object in objects {
            let object = object.map_err(from_store)?;
            let rest: Vec<_> = object.location.prefix_match(&src).into_iter().flatten().collect();
            let target = rest.into_iter().fold(dst.clone(), |key, part| key.join(part));
            self.store.copy(&object.location, &target).await.map_err(from_store)?;
            self.store.delete(&object.location).await.map_err(from_store)?;
        }
        Ok(Removed::default())
    }

    pub(in crate::storage) async fn begin_upload(
        &self,
        path: &RemotePath,
        size: u64,
        mode: UploadMode,
    ) -> Result<super::Sink> {
        self.check_target(path).await?;
        let sink = match mode {
            // An empty file holds nothing worth resuming.
            UploadMode::Resumable { hash } if size > 0 => upload::S3Sink::resumable(self, path, size, hash).await?,
            _ => upload::S3Sink::private(self, path, size).await?,
        };
        Ok(super::Sink::S3(sink))
    }

    /// Each goes up as one plain PUT (an empty file too), a few at a time.
    pub(in crate::storage) async fn store_small(&self, files: Vec<SmallFile>) -> Vec<Result<Removed>> {
        let mut results = Vec::with_capacity(files.len());
        // In order: of two uploads to one name, the later wins.
        for file in files {
            results.push(self.put_whole(&file.path, file.data).await);
        }
        results
    }

    async fn put_whole(&self, path: &RemotePath, data: Vec<u8>) -> Result<Removed> {
        self.check_target(path).await?;
        let held = self.lock(&[path]).await?;
        let result = async {
            let replaced = self.as_removed(path).await?;
            self.store.put(&self.key(path)?, PutPayload::from(data)).await.map_err(from_store)?;
            Ok(replaced)
        }
        .await;
        unlock(held).await;
        result
    }

    pub(in crate::storage) async fn open_downloads(&self, wants: Vec<Want>) -> Vec<Result<Download>> {
        let mut opened = Vec::with_capacity(wants.len());
        for want in wants {
            opened.push(self.open_download(&want).await);
        }
        opened
    }

    /// Opens a download pinned to the version of the file found now: a
    /// small file is read whole, a larger one streamed in ranges that all
    /// ask for that version (If-Match).
    async fn open_download(&self, want: &Want) -> Result<Download> {
        if want.path.is_root() || self.dir_exists(&want.path).await? {
            return Err(Error::IsADirectory);
        }
        let meta = self.head(&want.path).await?.ok_or(Error::NotFound)?;
        let (size, mtime) = (meta.size, meta.last_modified.timestamp());
        let offset = super::start_at(size, mtime, want);
        if size <= SMALL_FILE && offset == 0 {
            let data =
                download::get_pinned(self.store.clone(), meta.location.clone(), meta.e_tag.clone(), None).await?;
            if data.len() as u64 == size {
                let hash = blake3::hash(&data);
                return Ok(Download { size, mtime, offset, body: Body::Whole(data.into(), hash) });
            }
            return Err(Error::Changed);
        }
        let source = S3Source::open(self.store.clone(), meta, offset, self.parts_in_flight);
        Ok(Download { size, mtime, offset, body: Body::Stream(super::Source::S3(Box::new(source))) })
    }

    pub(in crate::storage) async fn usage(&self) -> Result<u64> {
        Ok(self.files_usage().await? + upload::partials_held(self).await?)
    }

    pub(in crate::storage) async fn partials(&self) -> Result<Vec<PartialInfo>> {
        upload::partials(self).await
    }

    /// Drops the partial kept for `path`: the store frees its parts. An
    /// upload holding it is the transfer layer's to stop first.
    pub(in crate::storage) async fn discard_partial(&self, path: &RemotePath) -> Result<Discarded> {
        let key = upload::record_key(self, path);
        let found = self.records.read(&key).await?.ok_or(Error::NotFound)?;
        match upload::drop_partial(self, found).await? {
            bytes if bytes > 0 => Ok(Discarded { partial: upload::partial_id(&key), bytes }),
            _ => Err(Error::NotFound),
        }
    }

    /// Bytes of the files in the home.
    async fn files_usage(&self) -> Result<u64> {
        let mut total = 0;
        let mut objects = self.store.list(Some(&self.home));
        while let Some(object) = objects.next().await {
            total += object.map_err(from_store)?.size;
        }
        Ok(total)
    }
}

/// Lets go of locks taken by [`S3Home::lock`].
async fn unlock(held: Vec<records::KeyLock>) {
    for lock in held {
        lock.release().await;
    }
}

/// An object as it is removed or replaced.
fn removed(meta: object_store::ObjectMeta) -> Removed {
    Removed { bytes: meta.size, key: meta.location.to_string(), tag: meta.e_tag }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_owned().into() }
    }

    #[test]
    fn a_store_error_is_read_by_its_status_not_by_numbers_in_its_url() {
        let cut =
            "Error performing PUT http://127.0.0.1:40321/bucket/ftpd/homes/alice/g in 2ms - error sending request";
        assert!(matches!(from_store(generic(cut)), Error::Unavailable(_)));
        let port507 = "Error performing PUT http://127.0.0.1:35071/b/k in 1ms - error sending request";
        assert!(matches!(from_store(generic(port507)), Error::Unavailable(_)));
        let denied = "Error performing PUT http://127.0.0.1:9000/b/k in 1ms - Server returned non-2xx status code: 403 Forbidden: <Error><Code>AccessDenied</Code></Error>";
        assert!(matches!(from_store(generic(denied)), Error::ReadOnly { .. }));
        let full = "Error performing PUT http://127.0.0.1:9000/b/k in 1ms - Server returned non-2xx status code: 507 Insufficient Storage: ";
        assert!(matches!(from_store(generic(full)), Error::NoSpace(_)));
        let busy = "Error performing GET http://127.0.0.1:9000/b/k in 1ms - Server returned non-2xx status code: 503 Service Unavailable: ";
        assert!(matches!(from_store(generic(busy)), Error::Unavailable(_)));
    }
}
