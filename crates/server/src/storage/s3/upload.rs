//! Uploads to the bucket.
//!
//! A private upload of at most [`PART_SIZE`] bytes is kept in memory and
//! goes up as one plain PUT (an empty one too: some stores refuse an empty
//! part); a larger one is a multipart upload streamed in parts, at most
//! `s3_parts_in_flight` on their way, so memory stays constant (that many
//! parts and the one being filled). The object
//! only becomes visible when the upload is completed, after the whole
//! content's BLAKE3 matched; otherwise the store drops the parts.
//!
//! A resumable upload is a multipart upload whose parts and record
//! (`<prefix>/partials/<user>/<id>.json`, in the bucket or the database:
//! see [`records`](super::records)) survive a broken connection, so that
//! the next attempt, on any daemon, continues it. The hash of the bytes
//! held comes from the parts' BLAKE3 chaining values (each part is a whole
//! subtree of BLAKE3's tree), so nothing is read back.
//!
//! The record is written only on the version last seen. An attempt claims
//! it as it begins (writing a new `attempt` into it), records each part it
//! stores, and completes the upload only after deleting the record on that
//! version, so of two attempts at once exactly one goes on: the other finds
//! the record changed ([`Error::TakenOver`], `aborted` on the wire) and
//! leaves the parts to the winner.

use super::records::{Expect, Found, Version};
use super::{S3Home, from_store};
use crate::storage::{Error, PartialInfo, Removed, Result};
use ftp_proto::RemotePath;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

/// Size of each part of an upload (S3's minimum is 5 MiB, except the last).
pub const PART_SIZE: usize = 8 << 20;

/// How the ids of partials begin in the usage record.
pub const PARTIAL_HOLD: &str = "partial:";

/// The receiving end of an upload to the bucket.
pub struct S3Sink {
    home: S3Home,
    path: RemotePath,
    key: Path,
    /// The buffer lent out for the next chunk.
    scratch: Vec<u8>,
    kind: Kind,
}

enum Kind {
    Private(Box<Private>),
    Resumable(Box<Resumable>),
}

struct Private {
    parts_in_flight: usize,
    /// The bytes before the multipart upload starts (at most a part).
    first: Vec<u8>,
    parts: Option<WriteMultipart>,
    hasher: blake3::Hasher,
}

struct Resumable {
    record_key: Path,
    /// The record as last written, and its version: each part's task
    /// records its part once it and every part before it are stored.
    written: Arc<Mutex<Written>>,
    size: u64,
    upload_id: String,
    /// Bytes held when this attempt began.
    held_at_start: u64,
    /// Parts recorded or on their way.
    queued: usize,
    /// Bytes of the part being filled.
    buf: Vec<u8>,
    prefix: blake3::Hash,
    dropped: u64,
    id: String,
    /// The record is deleted and the upload this attempt's alone (it is
    /// completing).
    owned: bool,
    /// The tasks of the parts on their way, oldest first.
    sending: VecDeque<JoinHandle<Result<()>>>,
    /// Says when the newest part on its way is recorded (true) or failed.
    last: Option<oneshot::Receiver<bool>>,
    /// This attempt's mark in the record.
    attempt: String,
}

struct Written {
    record: PartialRecord,
    version: Version,
}

/// What a resumable upload in progress holds, kept where every daemon can
/// read it (the bucket or the database), so that any daemon can continue
/// it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct PartialRecord {
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
    /// Who holds it: new for each attempt, so that a claim changes the
    /// record (and its version) even when nothing else does.
    #[serde(default)]
    attempt: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PartRecord {
    etag: String,
    cv: String,
}

impl PartialRecord {
    fn held(&self) -> u64 {
        self.parts.len() as u64 * PART_SIZE as u64
    }

    /// The BLAKE3 of the bytes held, if the record is readable.
    fn prefix_hash(&self) -> Option<blake3::Hash> {
        match self.parts.len() {
            0 => Some(blake3::Hasher::new().finalize()),
            1 => self.first_root.as_deref().and_then(unhex32).map(blake3::Hash::from_bytes),
            _ => Some(root_of(&self.cvs()?)),
        }
    }

    fn cvs(&self) -> Option<Vec<blake3::hazmat::ChainingValue>> {
        self.parts.iter().map(|p| unhex32(&p.cv)).collect()
    }
}

/// The record of the partial of uploads to `path` (one per target).
pub(super) fn record_key(home: &S3Home, path: &RemotePath) -> Path {
    let id = blake3::hash(path.to_string().as_bytes()).to_hex();
    home.partials.clone().join(format!("{}.json", &id[..32]))
}

/// The id, in the usage record, of the partial whose record is at `record`.
pub fn partial_id(record: &Path) -> String {
    format!("{PARTIAL_HOLD}{}", record.filename().unwrap_or_default().trim_end_matches(".json"))
}

/// Drops the partial `found` (only if its record is still as read, else
/// [`Error::Changed`]; [`Error::NotFound`] if it is gone): the store frees
/// its parts. Returns the bytes it held.
pub(super) async fn drop_partial(home: &S3Home, found: Found<PartialRecord>) -> Result<u64> {
    home.records.remove(&found.key, &found.version).await?;
    let Some(record) = found.value else { return Ok(0) };
    if let Ok(path) = RemotePath::resolve(&RemotePath::root(), &record.path) {
        let _ = home.store.abort_multipart(&home.key(&path)?, &record.upload_id).await;
    }
    Ok(record.held())
}

/// The user's partials that hold bytes.
pub(super) async fn partials(home: &S3Home) -> Result<Vec<PartialInfo>> {
    let mut found = Vec::new();
    for partial in home.records.list::<PartialRecord>(&home.partials).await? {
        let Some(record) = partial.value else { continue };
        let Ok(path) = RemotePath::resolve(&RemotePath::root(), &record.path) else { continue };
        if record.held() > 0 {
            found.push(PartialInfo { path, size: record.size, held: record.held(), mtime: partial.modified });
        }
    }
    Ok(found)
}

/// The user's partials that hold bytes, by their id in the usage record.
pub(super) async fn partials_by_id(home: &S3Home) -> Result<Vec<(String, u64)>> {
    let partials = home.records.list::<PartialRecord>(&home.partials).await?;
    Ok(partials
        .iter()
        .filter_map(|p| Some((partial_id(&p.key), p.value.as_ref()?.held())))
        .filter(|(_, held)| *held > 0)
        .collect())
}

/// Bytes held by the user's partials.
pub async fn partials_held(home: &S3Home) -> Result<u64> {
    let partials = home.records.list::<PartialRecord>(&home.partials).await?;
    Ok(partials.iter().filter_map(|p| p.value.as_ref()).map(PartialRecord::held).sum())
}

/// A record changed by another attempt: this one was overtaken.
fn overtaken(e: Error) -> Error {
    match e {
        Error::Changed | Error::NotFound => Error::TakenOver,
        other => other,
    }
}

impl S3Sink {
    /// An upload of `size` bytes that keeps nothing if it breaks off: one
    /// plain PUT if it fits in a part, else a multipart upload, started now.
    pub(in crate::storage) async fn private(home: &S3Home, path: &RemotePath, size: u64) -> Result<S3Sink> {
        let key = home.key(path)?;
        let parts = match size > PART_SIZE as u64 {
            true => {
                let upload = home.store.put_multipart(&key).await.map_err(from_store)?;
                Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE))
            }
            false => None,
        };
        let kind = Kind::Private(Box::new(Private {
            parts_in_flight: home.parts_in_flight,
            first: Vec::new(),
            parts,
            hasher: blake3::Hasher::new(),
        }));
        Ok(S3Sink { home: home.clone(), path: path.clone(), key, scratch: Vec::new(), kind })
    }

    /// Starts or continues the resumable upload of `size` bytes to
    /// `path`. Bytes held for another size or under another hash (or an
    /// unreadable record) are dropped and the upload starts afresh.
    pub(in crate::storage) async fn resumable(
        home: &S3Home,
        path: &RemotePath,
        size: u64,
        hash: Option<blake3::Hash>,
    ) -> Result<S3Sink> {
        let key = home.key(path)?;
        let record_key = record_key(home, path);
        let hash = hash.map(|h| h.to_hex().to_string());
        let mut dropped = 0;
        let attempt = format!("{:016x}", rand::random::<u64>());
        if let Some(found) = home.records.read::<PartialRecord>(&record_key).await? {
            if let Some(record) = &found.value
                && record.path == path.to_string()
                && record.size == size
                && match (&record.hash, &hash) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => true,
                }
                && let Some(prefix) = record.prefix_hash()
            {
                // Claimed: an older attempt still sending stops at its next
                // write; of two claims at once, one fails here.
                let record = PartialRecord { attempt, ..record.clone() };
                let version = home.records.swap(&record_key, &record, Expect::Version(found.version)).await;
                let version = version.map_err(overtaken)?;
                let resumable = Resumable::new(record_key, record, version, prefix, dropped);
                return Ok(S3Sink::with(home, path, key, Kind::Resumable(Box::new(resumable))));
            }
            dropped = drop_partial(home, found).await.map_err(overtaken)?;
        }
        let upload_id = home.store.create_multipart(&key).await.map_err(from_store)?;
        let record = PartialRecord {
            path: path.to_string(),
            size,
            hash,
            upload_id,
            parts: Vec::new(),
            first_root: None,
            attempt,
        };
        let version = match home.records.swap(&record_key, &record, Expect::Absent).await {
            Ok(version) => version,
            Err(e) => {
                let _ = home.store.abort_multipart(&key, &record.upload_id).await;
                return Err(overtaken(e));
            }
        };
        let prefix = blake3::Hasher::new().finalize();
        let resumable = Resumable::new(record_key, record, version, prefix, dropped);
        Ok(S3Sink::with(home, path, key, Kind::Resumable(Box::new(resumable))))
    }

    fn with(home: &S3Home, path: &RemotePath, key: Path, kind: Kind) -> S3Sink {
        S3Sink { home: home.clone(), path: path.clone(), key, scratch: Vec::new(), kind }
    }

    pub(in crate::storage) fn offset(&self) -> u64 {
        match &self.kind {
            Kind::Private(_) => 0,
            Kind::Resumable(r) => r.held_at_start,
        }
    }

    pub(in crate::storage) fn prefix_hash(&self) -> blake3::Hash {
        match &self.kind {
            Kind::Private(_) => blake3::Hasher::new().finalize(),
            Kind::Resumable(r) => r.prefix,
        }
    }

    pub(in crate::storage) fn partial(&self) -> Option<&str> {
        match &self.kind {
            Kind::Private(_) => None,
            Kind::Resumable(r) => Some(&r.id),
        }
    }

    pub(in crate::storage) fn dropped(&self) -> u64 {
        match &self.kind {
            Kind::Private(_) => 0,
            Kind::Resumable(r) => r.dropped,
        }
    }

    pub(in crate::storage) async fn buffer(&mut self) -> Result<Vec<u8>> {
        Ok(std::mem::take(&mut self.scratch))
    }

    pub(in crate::storage) async fn write(&mut self, buf: Vec<u8>, n: usize) -> Result<()> {
        let result = match &mut self.kind {
            Kind::Private(p) => p.write(&buf[..n]).await,
            Kind::Resumable(r) => r.write(&self.home, &self.key, &buf[..n]).await,
        };
        self.scratch = buf;
        result
    }

    /// Object stores keep their own modification time: `_mtime` is not
    /// kept ([`crate::storage::Backend::keeps_mtime`]).
    pub(in crate::storage) async fn commit(self, hash: &blake3::Hash, _mtime: Option<i64>) -> Result<Removed> {
        let S3Sink { home, path, key, kind, .. } = self;
        match kind {
            Kind::Private(p) => p.commit(&home, &path, &key, hash).await,
            Kind::Resumable(r) => r.commit(&home, &path, &key, hash).await,
        }
    }

    pub(in crate::storage) async fn abort(self, keep: bool) -> u64 {
        match self.kind {
            Kind::Private(p) => {
                if let Some(parts) = p.parts {
                    let _ = parts.abort().await;
                }
                0
            }
            Kind::Resumable(mut r) => {
                // What is on its way is kept too, if it lands.
                let landed = match keep {
                    true => r.land_all().await,
                    false => Ok(()),
                };
                let held = r.written.lock().await.record.held();
                match landed {
                    // Another attempt holds it now.
                    Err(Error::TakenOver) => 0,
                    _ if keep && held > 0 => held,
                    _ => {
                        r.discard(&self.home, &self.key).await;
                        0
                    }
                }
            }
        }
    }
}

impl Private {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        match &mut self.parts {
            Some(parts) => {
                parts.wait_for_capacity(self.parts_in_flight).await.map_err(from_store)?;
                parts.write(data);
            }
            // At most a part: the whole file, kept for one PUT.
            None => self.first.extend_from_slice(data),
        }
        Ok(())
    }

    async fn commit(self, home: &S3Home, path: &RemotePath, key: &Path, hash: &blake3::Hash) -> Result<Removed> {
        let actual = self.hasher.finalize();
        let checked = if actual != *hash {
            Err(Error::Integrity(format!("hash mismatch: the data received hashes to {}", actual.to_hex())))
        } else {
            // The name may have become a directory (or lost its parent)
            // since the upload began.
            home.check_target(path).await
        };
        let held = match checked {
            Ok(()) => home.lock(&[path]).await,
            Err(e) => Err(e),
        };
        let held = match held {
            Ok(held) => held,
            Err(e) => {
                if let Some(parts) = self.parts {
                    let _ = parts.abort().await;
                }
                return Err(e);
            }
        };
        // What is replaced, and the replacing, under the lock.
        let result = async {
            let replaced = match home.as_removed(path).await {
                Ok(replaced) => replaced,
                Err(e) => {
                    if let Some(parts) = self.parts {
                        let _ = parts.abort().await;
                    }
                    return Err(e);
                }
            };
            match self.parts {
                Some(parts) => parts.finish().await.map_err(from_store)?,
                None => home.store.put(key, PutPayload::from(self.first)).await.map_err(from_store)?,
            };
            Ok(replaced)
        }
        .await;
        super::unlock(held).await;
        result
    }
}

impl Resumable {
    fn new(record_key: Path, record: PartialRecord, version: Version, prefix: blake3::Hash, dropped: u64) -> Self {
        Resumable {
            id: partial_id(&record_key),
            record_key,
            size: record.size,
            upload_id: record.upload_id.clone(),
            held_at_start: record.held(),
            attempt: record.attempt.clone(),
            queued: record.parts.len(),
            written: Arc::new(Mutex::new(Written { record, version })),
            buf: Vec::new(),
            prefix,
            dropped,
            owned: false,
            sending: VecDeque::new(),
            last: None,
        }
    }

    /// Adds bytes; each full part goes to the store, and into the record
    /// once stored.
    async fn write(&mut self, home: &S3Home, key: &Path, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let take = (PART_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let queued = (self.queued * PART_SIZE) as u64;
            if self.buf.len() == PART_SIZE && queued + (PART_SIZE as u64) < self.size {
                if self.sending.len() >= home.parts_in_flight
                    && let Some(oldest) = self.sending.pop_front()
                {
                    oldest.await.map_err(Error::other)??;
                }
                self.send(home, key);
            }
        }
        Ok(())
    }

    /// Sends the buffered full part on its way, beside the others in
    /// flight: a task of its own hashes it (its BLAKE3 chaining value),
    /// stores it, waits for the part before it to be recorded, and records
    /// it. The record is written only on the version last written, so an
    /// attempt taken over by another finds it changed and stops.
    fn send(&mut self, home: &S3Home, key: &Path) {
        let index = self.queued;
        self.queued += 1;
        let data = std::mem::take(&mut self.buf);
        let (store, key, upload) = (home.store.clone(), key.clone(), self.upload_id.clone());
        let (records, record_key, written) = (home.records.clone(), self.record_key.clone(), self.written.clone());
        let attempt = self.attempt.clone();
        let before = self.last.take();
        let (recorded, next) = oneshot::channel();
        self.last = Some(next);
        self.sending.push_back(tokio::spawn(async move {
            let result = async {
                let hashed = tokio::task::spawn_blocking(move || {
                    let cv = part_cv(index as u64, PART_SIZE, &data);
                    let root = (index == 0).then(|| blake3::hash(&data).to_hex().to_string());
                    (cv, root, data)
                });
                let (cv, root, data) = hashed.await.map_err(Error::other)?;
                // Only while the upload is still this attempt's: parts of
                // two attempts share numbers, and the store keeps the last
                // sent under each.
                let current = records.read::<PartialRecord>(&record_key).await?;
                if current.and_then(|found| found.value).is_none_or(|record| record.attempt != attempt) {
                    return Err(Error::TakenOver);
                }
                let part = store.put_part(&key, &upload, index, PutPayload::from(data)).await.map_err(from_store)?;
                if let Some(before) = before
                    && before.await != Ok(true)
                {
                    // The failure is the earlier part's to report.
                    return Err(Error::other("an earlier part was not stored"));
                }
                let mut written = written.lock().await;
                let Written { record, version } = &mut *written;
                if let Some(root) = root {
                    record.first_root = Some(root);
                }
                record.parts.push(PartRecord { etag: part.content_id, cv: hex32(&cv) });
                let expect = Expect::Version(version.clone());
                *version = records.swap(&record_key, &*record, expect).await.map_err(overtaken)?;
                Ok(())
            }
            .await;
            let _ = recorded.send(result.is_ok());
            result
        }));
    }

    /// Waits for every part on its way to be recorded; at the first
    /// failure the rest are called back.
    async fn land_all(&mut self) -> Result<()> {
        let mut first = Ok(());
        // Each is let finish, even after a failure: a part stopped half
        // sent can leave the store holding a broken part under a number the
        // attempt that took over uses too.
        while let Some(oldest) = self.sending.pop_front() {
            let landed = oldest.await.map_err(Error::other).and_then(|r| r);
            if first.is_ok() {
                first = landed;
            }
        }
        first
    }

    /// Checks the whole file against `hash` and, if it matches, claims the
    /// upload for good (its record deleted on the version this attempt
    /// wrote) and completes it: the object appears, whole. On a mismatch,
    /// a target that became a directory meanwhile, or a failure to
    /// complete, the upload is dropped; an attempt overtaken meanwhile
    /// leaves it to the one that overtook it.
    async fn commit(mut self, home: &S3Home, path: &RemotePath, key: &Path, hash: &blake3::Hash) -> Result<Removed> {
        let result = self.complete(home, path, key, hash).await;
        match &result {
            Ok(_) | Err(Error::TakenOver) => {}
            Err(_) => self.discard(home, key).await,
        }
        result
    }

    async fn complete(&mut self, home: &S3Home, path: &RemotePath, key: &Path, hash: &blake3::Hash) -> Result<Removed> {
        self.land_all().await?;
        let (record, version) = {
            let written = self.written.lock().await;
            (written.record.clone(), written.version.clone())
        };
        let held = record.held() + self.buf.len() as u64;
        if held != self.size {
            return Err(Error::Integrity(format!("received {held} of {} bytes declared", self.size)));
        }
        let last = std::mem::take(&mut self.buf);
        let n = record.parts.len();
        let actual = match (n, last.is_empty()) {
            (0, _) => blake3::hash(&last),
            (_, true) => record.prefix_hash().ok_or_else(|| Error::other("unreadable partial record"))?,
            _ => {
                let mut cvs = record.cvs().ok_or_else(|| Error::other("unreadable partial record"))?;
                cvs.push(part_cv(n as u64, PART_SIZE, &last));
                root_of(&cvs)
            }
        };
        if actual != *hash {
            return Err(Error::Integrity(format!("hash mismatch: the data received hashes to {}", actual.to_hex())));
        }
        home.check_target(path).await?;
        let held = home.lock(&[path]).await?;
        let result = self.finish(home, key, path, &record, &version, last).await;
        super::unlock(held).await;
        result
    }

    /// Completes the upload, under the lock on its file: the record
    /// claimed for good, the last part stored, the parts joined.
    async fn finish(
        &mut self,
        home: &S3Home,
        key: &Path,
        path: &RemotePath,
        record: &PartialRecord,
        version: &Version,
        last: Vec<u8>,
    ) -> Result<Removed> {
        let replaced = home.as_removed(path).await?;
        home.records.remove(&self.record_key, version).await.map_err(overtaken)?;
        // From here the upload is this attempt's alone: a failure drops it.
        self.owned = true;
        let mut parts: Vec<PartId> = record.parts.iter().map(|p| PartId { content_id: p.etag.clone() }).collect();
        if !last.is_empty() || parts.is_empty() {
            let index = parts.len();
            let part = home.store.put_part(key, &self.upload_id, index, PutPayload::from(last)).await;
            parts.push(part.map_err(from_store)?);
        }
        home.store.complete_multipart(key, &self.upload_id, parts).await.map_err(from_store)?;
        Ok(replaced)
    }

    /// Drops the upload and its record (the bytes held can't be trusted,
    /// or hold nothing worth keeping), unless another attempt has taken
    /// the record over since this one last wrote it.
    async fn discard(&mut self, home: &S3Home, key: &Path) {
        let version = self.written.lock().await.version.clone();
        if self.owned || home.records.remove(&self.record_key, &version).await.is_ok() {
            self.sending.drain(..).for_each(|part| part.abort());
            let _ = home.store.abort_multipart(key, &self.upload_id).await;
        }
    }
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
fn part_cv(index: u64, part_size: usize, data: &[u8]) -> blake3::hazmat::ChainingValue {
    use blake3::hazmat::HasherExt;
    blake3::Hasher::new().set_input_offset(index * part_size as u64).update(data).finalize_non_root()
}

/// The BLAKE3 of a file of two or more parts from their chaining values,
/// built the way BLAKE3 builds its tree: the left subtree always takes the
/// largest power of two of parts less than the count.
fn root_of(cvs: &[blake3::hazmat::ChainingValue]) -> blake3::Hash {
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
