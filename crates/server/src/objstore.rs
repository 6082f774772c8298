//! A user's home on S3-compatible object storage (`storage = "s3"`): the
//! filesystem backend's operations with the same meaning on a bucket.
//!
//! Layout under the configured prefix `P`:
//!
//! ```text
//! P/homes/<user>/<path>         a file: one object, whole and verified
//! P/homes/<user>/<dir>/\dir     an (empty) object marking a directory
//! P/partials/<user>/<id>.json   a resumable upload in progress (Resumable)
//! P/usage/<user>.json           the user's usage, shared by every daemon (Ledger)
//! ```
//!
//! Object stores have no directories, only keys with `/` in them. A
//! directory here is a marker object named `\dir` inside it, which no user
//! can name (a name with a backslash is refused, see
//! [`ftp_proto::validate_name`]); a key prefix with objects under it counts
//! as a directory too. Listing hides the markers.
//!
//! Uploads are multipart uploads, streamed in parts of [`PART_SIZE`] with
//! at most [`PARTS_IN_FLIGHT`] parts in flight, so memory stays constant.
//! The object only becomes visible when the upload is completed, which
//! happens after the whole content's BLAKE3 matched the client's; on any
//! mismatch or failure the upload is aborted and the store drops its parts.
//! Renames are a copy then a delete (object stores have no rename): a
//! reader may see both names for a moment, never a partial object.
//! Downloads fetch ranges of [`RANGE_SIZE`], [`RANGES_IN_FLIGHT`] at a time,
//! all from the version first measured.
//!
//! Quota: the usage record is changed only by conditional writes, so
//! several daemons keep one count; uploads reserve their size in it before
//! taking data (see [`ObjectHome::reserve`]).

use bytes::Bytes;
use ftp_proto::{Entry, EntryKind, RemotePath};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use std::io;
use std::sync::Arc;
use std::time::Duration;

mod ledger;
pub use ledger::{HOLD_FOR, OverQuota, Removed};
use ledger::{PARTIAL_HOLD, now_secs};

/// Size of each part of an upload (S3's minimum is 5 MiB, except the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Downloads fetch ranges of this size...
pub const RANGE_SIZE: usize = 8 << 20;
/// ...this many at a time (memory per download: their product).
pub const RANGES_IN_FLIGHT: usize = 3;
/// Name of the marker object of a directory.
pub const DIR_MARKER: &str = "\\dir";

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
            .finish()
    }
}

impl S3Config {
    /// Connects (lazily: the first request reaches the store).
    pub fn connect(&self) -> io::Result<Bucket> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key);
        // A few quick retries: a client waits on each request.
        let retry = object_store::RetryConfig { max_retries: 3, ..Default::default() };
        builder = builder.with_retry(retry);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        Ok(Arc::new(builder.build().map_err(to_io)?))
    }
}

/// A connected bucket: objects, and multipart uploads that outlive a
/// connection (resumable uploads continue them, on any daemon).
pub type Bucket = Arc<object_store::aws::AmazonS3>;

/// Maps the store's errors onto the `io::ErrorKind`s the filesystem
/// backend reports, so both answer alike.
fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, "not found"),
        object_store::Error::AlreadyExists { .. } => io::Error::new(io::ErrorKind::AlreadyExists, "already exists"),
        other => io::Error::other(other),
    }
}

/// A key's last part as the name it was made from (parts are stored
/// percent-encoded); `None` for one no valid name encodes to.
fn decode(part: &str) -> Option<String> {
    percent_encoding::percent_decode_str(part).decode_utf8().ok().map(|n| n.into_owned())
}

/// One user's home in the bucket.
#[derive(Debug, Clone)]
pub struct ObjectHome {
    store: Bucket,
    home: Path,
    partials: Path,
}

impl ObjectHome {
    /// The home of `user` (an already validated user name) under `prefix`.
    pub fn new(store: Bucket, prefix: &str, user: &str) -> ObjectHome {
        let base = Path::from(prefix.trim_matches('/'));
        let home = base.child("homes").child(user);
        let partials = base.child("partials").child(user);
        ObjectHome { store, home, partials }
    }

    /// The key of a (confined, already resolved) path.
    fn key(&self, path: &RemotePath) -> Path {
        path.parts().fold(self.home.clone(), |key, part| key.child(part))
    }

    fn marker(&self, path: &RemotePath) -> Path {
        self.key(path).child(DIR_MARKER)
    }

    /// Whether `path` is a directory: the home, a marked directory, or a
    /// prefix with objects under it.
    pub async fn is_dir(&self, path: &RemotePath) -> io::Result<bool> {
        if path.is_root() {
            return Ok(true);
        }
        match self.store.head(&self.marker(path)).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(to_io(e)),
        }
        let listed = self.store.list_with_delimiter(Some(&self.key(path))).await.map_err(to_io)?;
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    /// Whether `path` is a file, and its size.
    pub async fn file_size(&self, path: &RemotePath) -> io::Result<Option<u64>> {
        // A directory is never a file; asking first also spares stores
        // that keep objects as files (s3s-fs) a HEAD on a directory.
        if path.is_root() || self.is_dir(path).await? {
            return Ok(None);
        }
        Ok(self.head(path).await?.map(|meta| meta.size))
    }

    /// The object at `path`, if there is one. Stores that keep objects as
    /// files (s3s-fs) fail a HEAD on a key that is a directory on their
    /// disk instead of answering 404; then the parent's listing decides.
    async fn head(&self, path: &RemotePath) -> io::Result<Option<object_store::ObjectMeta>> {
        let key = self.key(path);
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(first) => {
                let parent = self.key(&path.parent());
                let listed = self.store.list_with_delimiter(Some(&parent)).await.map_err(|_| to_io(first))?;
                Ok(listed.objects.into_iter().find(|o| o.location == key))
            }
        }
    }

    /// The entries of a directory, sorted by name (markers hidden).
    pub async fn list(&self, path: &RemotePath) -> io::Result<Vec<Entry>> {
        if !self.is_dir(path).await? {
            return Err(match self.file_size(path).await? {
                Some(_) => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                None => io::Error::new(io::ErrorKind::NotFound, "not found"),
            });
        }
        let dir = self.key(path);
        let listed = self.store.list_with_delimiter(Some(&dir)).await.map_err(to_io)?;
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

    /// Describes one entry.
    pub async fn stat(&self, path: &RemotePath) -> io::Result<Entry> {
        let name = path.file_name().unwrap_or("/").to_owned();
        if self.is_dir(path).await? {
            return Ok(Entry { name, kind: EntryKind::Dir, size: 0, mtime: 0 });
        }
        match self.head(path).await? {
            Some(meta) => {
                let mtime = meta.last_modified.timestamp();
                Ok(Entry { name, kind: EntryKind::File, size: meta.size, mtime })
            }
            None => Err(io::Error::new(io::ErrorKind::NotFound, "not found")),
        }
    }

    /// The BLAKE3 of a file, read back from the store.
    pub async fn hash(&self, path: &RemotePath) -> io::Result<blake3::Hash> {
        let mut stream = self.store.get(&self.key(path)).await.map_err(to_io)?.into_stream();
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(to_io)?);
        }
        Ok(hasher.finalize())
    }

    /// Checks that `path`'s parent is a directory and `path` is not one.
    async fn check_target(&self, path: &RemotePath) -> io::Result<()> {
        if path.is_root() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "the home is a directory"));
        }
        if !self.is_dir(&path.parent()).await? {
            return Err(match self.file_size(&path.parent()).await? {
                Some(_) => io::Error::new(io::ErrorKind::NotADirectory, "a parent is not a directory"),
                None => io::Error::new(io::ErrorKind::NotFound, "the parent directory does not exist"),
            });
        }
        if self.is_dir(path).await? {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "target is a directory"));
        }
        Ok(())
    }

    /// Creates a directory (its parent must exist; nothing may have its name).
    pub async fn create_dir(&self, path: &RemotePath) -> io::Result<()> {
        match self.check_target(path).await {
            Err(e) if e.kind() == io::ErrorKind::IsADirectory && !path.is_root() => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the directory exists"));
            }
            other => other?,
        }
        if self.file_size(path).await?.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file of that name exists"));
        }
        self.store.put(&self.marker(path), PutPayload::default()).await.map_err(to_io)?;
        Ok(())
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&self, path: &RemotePath) -> io::Result<()> {
        if path.is_root() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "the home can't be removed"));
        }
        if !self.is_dir(path).await? {
            return Err(match self.file_size(path).await? {
                Some(_) => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                None => io::Error::new(io::ErrorKind::NotFound, "not found"),
            });
        }
        if !self.list(path).await?.is_empty() {
            return Err(io::Error::new(io::ErrorKind::DirectoryNotEmpty, "directory not empty"));
        }
        match self.store.delete(&self.marker(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Removes a file; returns what was removed.
    pub async fn remove_file(&self, path: &RemotePath) -> io::Result<Removed> {
        let removed = Removed::from(self.file_meta(path).await?);
        self.store.delete(&self.key(path)).await.map_err(to_io)?;
        Ok(removed)
    }

    /// The file at `path` as it would be removed or replaced now: its
    /// key, ETag and size; `None` when there is no file.
    pub async fn as_removed(&self, path: &RemotePath) -> io::Result<Option<Removed>> {
        if path.is_root() || self.is_dir(path).await? {
            return Ok(None);
        }
        Ok(self.head(path).await?.map(Removed::from))
    }

    /// The object of the file at `path`, or why there is none
    /// (`IsADirectory`, `NotFound`).
    async fn file_meta(&self, path: &RemotePath) -> io::Result<object_store::ObjectMeta> {
        if path.is_root() || self.is_dir(path).await? {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        self.head(path).await?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))
    }

    /// Renames a file, replacing a file at `to`; returns the file
    /// replaced. A directory moves object by object (not atomic: an
    /// interrupted move of a directory leaves some of it at each name).
    pub async fn rename(&self, from: &RemotePath, to: &RemotePath) -> io::Result<Removed> {
        if from == to {
            self.stat(from).await?;
            return Ok(Removed::default());
        }
        if self.file_size(from).await?.is_some() {
            self.check_target(to).await?;
            let replaced = self.as_removed(to).await?.unwrap_or_default();
            self.store.copy(&self.key(from), &self.key(to)).await.map_err(to_io)?;
            self.store.delete(&self.key(from)).await.map_err(to_io)?;
            return Ok(replaced);
        }
        if !self.is_dir(from).await? || from.is_root() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not found"));
        }
        if to.to_string().starts_with(&format!("{}/", from.to_string().trim_end_matches('/'))) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "can't move a directory into itself"));
        }
        self.check_target(to).await?;
        if self.file_size(to).await?.is_some() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file of that name exists"));
        }
        let (src, dst) = (self.key(from), self.key(to));
        let objects: Vec<_> = self.store.list(Some(&src)).collect().await;
        for object in objects {
            let object = object.map_err(to_io)?;
            let rest: Vec<_> = object.location.prefix_match(&src).into_iter().flatten().collect();
            let target = rest.into_iter().fold(dst.clone(), |key, part| key.child(part));
            self.store.copy(&object.location, &target).await.map_err(to_io)?;
            self.store.delete(&object.location).await.map_err(to_io)?;
        }
        Ok(Removed::default())
    }

    /// Starts an upload to `path`. Nothing is visible until
    /// [`ObjectUpload::finish`] has checked the hash and completed it.
    pub async fn upload(&self, path: &RemotePath) -> io::Result<ObjectUpload> {
        self.check_target(path).await?;
        let upload = self.store.put_multipart(&self.key(path)).await.map_err(to_io)?;
        Ok(ObjectUpload {
            home: self.clone(),
            path: path.clone(),
            parts: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            hasher: blake3::Hasher::new(),
            written: 0,
        })
    }

    /// Opens a file for download from `offset`: its size, modification
    /// time, and the stream of its bytes from there.
    pub async fn download(&self, path: &RemotePath, offset: u64) -> io::Result<Download> {
        let meta = self.file_meta(path).await?;
        // Ranges fetched a few at a time, each only from the version
        // measured here (If-Match): a replaced object fails the download
        // instead of mixing two versions.
        let (store, key, e_tag) = (self.store.clone(), self.key(path), meta.e_tag.clone());
        let ranges =
            (offset..meta.size).step_by(RANGE_SIZE).map(move |start| start..(start + RANGE_SIZE as u64).min(meta.size));
        let stream = futures::stream::iter(ranges)
            .map(move |range| {
                let (store, key) = (store.clone(), key.clone());
                let options = object_store::GetOptions {
                    range: Some(range.into()),
                    if_match: e_tag.clone(),
                    ..Default::default()
                };
                async move { store.get_opts(&key, options).await?.bytes().await }
            })
            .buffered(RANGES_IN_FLIGHT)
            .map(|range| range.map_err(to_io))
            .boxed();
        Ok(Download { size: meta.size, mtime: meta.last_modified.timestamp(), stream })
    }

    /// Bytes stored in the home.
    pub async fn usage(&self) -> io::Result<u64> {
        let mut total = 0;
        let mut objects = self.store.list(Some(&self.home));
        while let Some(object) = objects.next().await {
            total += object.map_err(to_io)?.size;
        }
        Ok(total)
    }
}

/// A download's size, time and bytes.
pub struct Download {
    /// Size of the whole file.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// The bytes from the requested offset on, in ranges of [`RANGE_SIZE`].
    pub stream: futures::stream::BoxStream<'static, io::Result<Bytes>>,
}

/// An upload in progress: parts go to the store as they fill.
pub struct ObjectUpload {
    home: ObjectHome,
    path: RemotePath,
    parts: WriteMultipart,
    hasher: blake3::Hasher,
    written: u64,
}

impl ObjectUpload {
    /// Adds bytes; waits while [`PARTS_IN_FLIGHT`] parts are on their way.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.parts.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(to_io)?;
        self.parts.write(data);
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the upload if `size` bytes hashing to `expected` (hex)
    /// were written, making the object visible (replacing any object of
    /// that name at once); otherwise aborts it, and nothing changes.
    /// Returns the hash.
    pub async fn finish(self, size: u64, expected: &str) -> io::Result<blake3::Hash> {
        let hash = self.hasher.finalize();
        if self.written != size || !expected.eq_ignore_ascii_case(hash.to_hex().as_str()) {
            let _ = self.parts.abort().await;
            let why = if self.written != size {
                format!("received {} of {size} bytes declared", self.written)
            } else {
                format!("hash mismatch: the data received hashes to {}", hash.to_hex())
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        // The name may have become a directory (or lost its parent) since
        // the upload began; the caller holds the user's operations lock.
        if let Err(e) = self.home.check_target(&self.path).await {
            let _ = self.parts.abort().await;
            return Err(e);
        }
        self.parts.finish().await.map_err(to_io)?;
        Ok(hash)
    }

    /// Abandons the upload: the store drops its parts.
    pub async fn abort(self) {
        let _ = self.parts.abort().await;
    }
}

/// What a resumable upload in progress holds, kept in the bucket beside the
/// homes (`<prefix>/partials/<user>/<id>.json`) so that any daemon can
/// continue it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PartialRecord {
    path: String,
    size: u64,
    hash: Option<String>,
    upload_id: String,
    /// The parts uploaded, all [`PART_SIZE`] long: their ETags and BLAKE3
    /// chaining values (hex).
    parts: Vec<PartRecord>,
    /// The BLAKE3 of the first part as a whole file (hex): the prefix hash
    /// when it is the only part held.
    first_root: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PartRecord {
    etag: String,
    cv: String,
}

/// An upload sent with `resume`: a multipart upload whose parts and record
/// survive a broken connection, continued by the next attempt on any
/// daemon. The hash of the bytes held comes from the parts' BLAKE3 chaining
/// values (each part is a whole subtree of BLAKE3's tree), so nothing is
/// read back.
pub struct Resumable {
    home: ObjectHome,
    path: RemotePath,
    key: Path,
    record_key: Path,
    record: PartialRecord,
    version: object_store::UpdateVersion,
    buf: Vec<u8>,
}

fn hex32(cv: &[u8; 32]) -> String {
    cv.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// BLAKE3's chaining value of one part of a file (`index` counts parts of
/// `part_size`, a power of two of at least 1 KiB).
pub fn part_cv(index: u64, part_size: usize, data: &[u8]) -> blake3::hazmat::ChainingValue {
    use blake3::hazmat::HasherExt;
    blake3::Hasher::new().set_input_offset(index * part_size as u64).update(data).finalize_non_root()
}

/// The BLAKE3 of a file of two or more parts from their chaining values,
/// built the way BLAKE3 builds its tree: the left subtree always takes the
/// largest power of two of parts less than the count.
pub fn root_of(cvs: &[blake3::hazmat::ChainingValue]) -> blake3::Hash {
    use blake3::hazmat::{Mode, merge_subtrees_non_root, merge_subtrees_root};
    fn split(n: usize) -> usize {
        1 << (usize::BITS - 1 - (n - 1).leading_zeros())
    }
    fn merge(cvs: &[blake3::hazmat::ChainingValue]) -> blake3::hazmat::ChainingValue {
        if cvs.len() == 1 {
            return cvs[0];
        }
        let left = split(cvs.len());
        merge_subtrees_non_root(&merge(&cvs[..left]), &merge(&cvs[left..]), Mode::Hash)
    }
    assert!(cvs.len() >= 2, "a single part is hashed as a whole");
    let left = split(cvs.len());
    merge_subtrees_root(&merge(&cvs[..left]), &merge(&cvs[left..]), Mode::Hash)
}

impl ObjectHome {
    fn record_key(&self, path: &RemotePath, size: u64) -> Path {
        let id = blake3::hash(format!("{path}\n{size}").as_bytes()).to_hex();
        self.partials.child(format!("{}.json", &id[..32]))
    }

    /// Starts or continues a resumable upload of `size` bytes to `path`.
    /// Returns it with the bytes already held and their BLAKE3 (hex). Held
    /// bytes recorded for another `size`, or under another `hash`, are
    /// dropped and the upload starts afresh.
    pub async fn begin_resumable(&self, path: &RemotePath, size: u64, hash: Option<&str>) -> io::Result<Resumable> {
        use object_store::multipart::MultipartStore;
        self.check_target(path).await?;
        let key = self.key(path);
        let record_key = self.record_key(path, size);
        if let Some((record, version)) = self.read_record(&record_key).await? {
            let same_hash = match (&record.hash, hash) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            };
            if record.path == path.to_string() && record.size == size && same_hash {
                return Ok(Resumable {
                    home: self.clone(),
                    path: path.clone(),
                    key,
                    record_key,
                    record,
                    version,
                    buf: Vec::new(),
                });
            }
            let _ = self.store.abort_multipart(&key, &record.upload_id).await;
        }
        let upload_id = self.store.create_multipart(&key).await.map_err(to_io)?;
        let record = PartialRecord {
            path: path.to_string(),
            size,
            hash: hash.map(str::to_owned),
            upload_id,
            parts: Vec::new(),
            first_root: None,
        };
        let body = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let put = self.store.put(&record_key, PutPayload::from(body)).await.map_err(to_io)?;
        let version = object_store::UpdateVersion { e_tag: put.e_tag, version: put.version };
        Ok(Resumable { home: self.clone(), path: path.clone(), key, record_key, record, version, buf: Vec::new() })
    }

    async fn read_record(&self, key: &Path) -> io::Result<Option<(PartialRecord, object_store::UpdateVersion)>> {
        match self.store.get(key).await {
            Ok(result) => {
                let meta = result.meta.clone();
                let bytes = result.bytes().await.map_err(to_io)?;
                match serde_json::from_slice(&bytes) {
                    Ok(record) => {
                        Ok(Some((record, object_store::UpdateVersion { e_tag: meta.e_tag, version: meta.version })))
                    }
                    Err(_) => Ok(None), // unreadable: start afresh
                }
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }
}

/// The id, in the usage record, of the hold of the partial whose record
/// is at `record` (`.../<id>.json`).
fn partial_hold(record: &Path) -> String {
    format!("{PARTIAL_HOLD}{}", record.filename().unwrap_or_default().trim_end_matches(".json"))
}

/// Drops the resumable uploads, of any user, whose record has not changed
/// for `max_age`: aborts the multipart upload (the store frees its parts),
/// deletes the record, and takes its bytes out of the user's usage.
/// Several daemons may sweep at once: each step is harmless twice. Each
/// removal is logged before its bytes leave the usage.
pub async fn sweep_stale_partials(store: &Bucket, prefix: &str, max_age: Duration) -> io::Result<()> {
    use object_store::multipart::MultipartStore;
    let base = Path::from(prefix.trim_matches('/')).child("partials");
    let cutoff = now_secs().saturating_sub(max_age.as_secs().min(i64::MAX as u64) as i64);
    let mut listing = store.list(Some(&base));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(to_io)?;
        if meta.last_modified.timestamp() > cutoff {
            continue;
        }
        // partials/<user>/<id>.json
        let parts: Vec<_> = meta.location.prefix_match(&base).map(|p| p.collect()).unwrap_or_default();
        let [user, file] = parts.as_slice() else { continue };
        if !file.as_ref().ends_with(".json") {
            continue;
        }
        let user = decode(user.as_ref()).unwrap_or_else(|| user.as_ref().to_owned());
        let home = ObjectHome::new(store.clone(), prefix, &user);
        // Look again just before acting: an attempt may have resumed it.
        match store.head(&meta.location).await {
            Ok(now) if now.last_modified.timestamp() > cutoff => continue,
            Err(object_store::Error::NotFound { .. }) => continue,
            _ => {}
        }
        let Some((record, _)) = home.read_record(&meta.location).await? else {
            let _ = store.delete(&meta.location).await;
            continue;
        };
        if let Ok(path) = RemotePath::resolve(&RemotePath::root(), &record.path) {
            let _ = store.abort_multipart(&home.key(&path), &record.upload_id).await;
        }
        store.delete(&meta.location).await.map_err(to_io)?;
        let bytes = record.parts.len() as u64 * PART_SIZE as u64;
        tracing::info!(user = %user, bytes, "removed stale partial uploads");
        home.release(&[&partial_hold(&meta.location)]).await?;
    }
    Ok(())
}

impl Resumable {
    /// Names the partial in the usage record (the same for every attempt
    /// at the same path and size).
    pub fn partial_id(&self) -> String {
        partial_hold(&self.record_key)
    }

    /// Bytes already held (whole parts).
    pub fn offset(&self) -> u64 {
        self.record.parts.len() as u64 * PART_SIZE as u64
    }

    /// BLAKE3 (hex) of the bytes already held.
    pub fn prefix_hash(&self) -> io::Result<String> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "unreadable partial record");
        match self.record.parts.len() {
            0 => Ok(blake3::Hasher::new().finalize().to_hex().to_string()),
            1 => self.record.first_root.clone().ok_or_else(bad),
            _ => {
                let cvs = self.cvs().ok_or_else(bad)?;
                Ok(root_of(&cvs).to_hex().to_string())
            }
        }
    }

    fn cvs(&self) -> Option<Vec<blake3::hazmat::ChainingValue>> {
        self.record.parts.iter().map(|p| unhex32(&p.cv)).collect()
    }

    /// Adds bytes; each full part goes to the store, and the record with it.
    pub async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let take = (PART_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == PART_SIZE && self.offset() + (PART_SIZE as u64) < self.record.size {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    /// Uploads the buffered full part and records it. The record is
    /// updated only if nobody else did meanwhile (another attempt took the
    /// upload over): then this one stops.
    async fn flush_part(&mut self) -> io::Result<()> {
        use object_store::multipart::MultipartStore;
        let index = self.record.parts.len();
        let data = std::mem::take(&mut self.buf);
        let cv = part_cv(index as u64, PART_SIZE, &data);
        if index == 0 {
            self.record.first_root = Some(blake3::hash(&data).to_hex().to_string());
        }
        let store = &self.home.store;
        let part =
            store.put_part(&self.key, &self.record.upload_id, index, PutPayload::from(data)).await.map_err(to_io)?;
        self.record.parts.push(PartRecord { etag: part.content_id, cv: hex32(&cv) });
        let body = serde_json::to_vec(&self.record).map_err(io::Error::other)?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Update(self.version.clone()),
            ..Default::default()
        };
        match store.put_opts(&self.record_key, PutPayload::from(body), opts).await {
            Ok(put) => {
                self.version = object_store::UpdateVersion { e_tag: put.e_tag, version: put.version };
                Ok(())
            }
            Err(object_store::Error::Precondition { .. }) => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, "a newer attempt at this upload took over"))
            }
            Err(e) => Err(to_io(e)),
        }
    }

    /// Checks the whole file against `claimed` (hex) and, if it matches,
    /// completes the upload (the object appears, whole) and forgets the
    /// record. On a mismatch, a target that became a directory meanwhile,
    /// or a failure to complete, the upload and its record are dropped.
    pub async fn finish(mut self, claimed: &str) -> io::Result<blake3::Hash> {
        use object_store::multipart::{MultipartStore, PartId};
        let held = self.offset() + self.buf.len() as u64;
        if held != self.record.size {
            let why = format!("received {held} of {} bytes declared", self.record.size);
            self.discard().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        let last = std::mem::take(&mut self.buf);
        let hash = match (self.record.parts.len(), last.is_empty()) {
            (0, _) => blake3::hash(&last),
            (1, true) => self
                .record
                .first_root
                .as_deref()
                .and_then(unhex32)
                .map(blake3::Hash::from_bytes)
                .unwrap_or(blake3::Hash::from_bytes([0; 32])),
            (n, _) => {
                let mut cvs = self.cvs().unwrap_or_default();
                if !last.is_empty() {
                    cvs.push(part_cv(n as u64, PART_SIZE, &last));
                }
                root_of(&cvs)
            }
        };
        if !claimed.eq_ignore_ascii_case(hash.to_hex().as_str()) {
            self.discard().await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("hash mismatch: the data received hashes to {}", hash.to_hex()),
            ));
        }
        if let Err(e) = self.home.check_target(&self.path).await {
            self.discard().await;
            return Err(e);
        }
        let store = self.home.store.clone();
        let mut parts: Vec<PartId> = self.record.parts.iter().map(|p| PartId { content_id: p.etag.clone() }).collect();
        let completed = async {
            if !last.is_empty() || parts.is_empty() {
                let index = parts.len();
                parts.push(store.put_part(&self.key, &self.record.upload_id, index, PutPayload::from(last)).await?);
            }
            store.complete_multipart(&self.key, &self.record.upload_id, parts).await
        };
        if let Err(e) = completed.await {
            self.discard().await;
            return Err(to_io(e));
        }
        let _ = store.delete(&self.record_key).await;
        Ok(hash)
    }

    /// Drops the upload and its record (the bytes held can't be trusted).
    pub async fn discard(self) {
        use object_store::multipart::MultipartStore;
        let _ = self.home.store.abort_multipart(&self.key, &self.record.upload_id).await;
        let _ = self.home.store.delete(&self.record_key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_hash_comes_from_its_parts_chaining_values() {
        const PART: usize = 4096;
        for len in [PART + 1, 2 * PART, 2 * PART + 7, 3 * PART, 5 * PART + 100, 8 * PART, 9 * PART + 1] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let cvs: Vec<_> = data.chunks(PART).enumerate().map(|(i, part)| part_cv(i as u64, PART, part)).collect();
            assert_eq!(root_of(&cvs), blake3::hash(&data), "length {len}");
        }
    }
}
