//! Downloads from the bucket: ranges of [`RANGE_SIZE`], `s3_parts_in_flight`
//! at a time, each asking for the version first measured (If-Match), so a
//! file replaced meanwhile fails the download instead of mixing versions.

use super::{Store, from_store};
use crate::storage::{Chunk, Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStore;
use object_store::path::Path;

/// Downloads fetch ranges of this size, several at a time (memory per
/// download: their product).
const RANGE_SIZE: u64 = 8 << 20;

/// The sending end of a download from the bucket. The whole object is
/// read, from its start: the end's hash covers all of it, and the bytes
/// before the offset are hashed only.
pub struct S3Source {
    stream: BoxStream<'static, Result<Bytes>>,
    hasher: blake3::Hasher,
    position: u64,
    offset: u64,
    size: u64,
    failure: Option<Error>,
}

/// Reads `range` (or all) of `key`, only from the version `e_tag`: asked
/// with If-Match, and checked against the ETag of the answer, since not
/// every store honours If-Match on a GET (s3s-fs doesn't). Another
/// version is [`Error::Changed`].
pub(super) async fn get_pinned(
    store: Store,
    key: Path,
    e_tag: Option<String>,
    range: Option<object_store::GetRange>,
) -> Result<Bytes> {
    let options = object_store::GetOptions { range, if_match: e_tag.clone(), ..Default::default() };
    let got = store.get_opts(&key, options).await.map_err(from_store)?;
    if e_tag.is_some() && got.meta.e_tag != e_tag {
        return Err(Error::Changed);
    }
    got.bytes().await.map_err(from_store)
}

impl S3Source {
    /// Streams `meta`'s object, sending from `offset`, `in_flight` ranges
    /// at a time.
    pub(in crate::storage) fn open(
        store: Store,
        meta: object_store::ObjectMeta,
        offset: u64,
        in_flight: usize,
    ) -> S3Source {
        let size = meta.size;
        let (key, e_tag) = (meta.location, meta.e_tag);
        let ranges = (0..size).step_by(RANGE_SIZE as usize).map(move |start| start..(start + RANGE_SIZE).min(size));
        let stream = futures::stream::iter(ranges)
            .map(move |range| get_pinned(store.clone(), key.clone(), e_tag.clone(), Some(range.into())))
            .buffered(in_flight)
            .boxed();
        S3Source { stream, hasher: blake3::Hasher::new(), position: 0, offset, size, failure: None }
    }

    pub(in crate::storage) async fn next(&mut self) -> Option<Chunk> {
        while let Some(range) = self.stream.next().await {
            let range = match range {
                Ok(range) => range,
                Err(e) => {
                    self.failure = Some(e);
                    return None;
                }
            };
            self.hasher.update(&range);
            let len = range.len() as u64;
            let skip = self.offset.saturating_sub(self.position).min(len) as usize;
            self.position += len;
            if skip < range.len() {
                return Some(Chunk::Bytes(range.slice(skip..)));
            }
        }
        None
    }

    pub(in crate::storage) fn recycle(&mut self, _chunk: Chunk) {}

    pub(in crate::storage) async fn finish(self) -> Result<blake3::Hash> {
        if let Some(e) = self.failure {
            return Err(e);
        }
        if self.position != self.size {
            return Err(Error::Changed);
        }
        Ok(self.hasher.finalize())
    }
}
