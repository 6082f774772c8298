//! What a bucket is checked for before the daemon serves from it: each
//! feature the design relies on, tried once on keys of the daemon's own
//! (`<prefix>/probe/`), so that a store lacking one stops the start with
//! its name instead of miscounting later.
//!
//! - Conditional writes, when the records (usage, resumable uploads) live
//!   in the bucket, that is without `database`: a PUT with
//!   `If-None-Match: *` onto an existing object, and one with `If-Match`
//!   on a stale ETag, must both be refused. The records are changed only
//!   this way; a store that accepts both (Garage 2.5 does: it honours the
//!   conditions on GET and HEAD only) would let two writers both win and
//!   the quota drift without a word.
//! - Ranged GETs pinned to a version: a download reads one version. A
//!   GET with `If-Match` on a stale ETag must be refused, or answered with
//!   the object's real ETag, which the daemon checks itself (s3s-fs
//!   ignores If-Match on GET but reports the ETag).
//! - Multipart uploads, completed: how large files go up.

use super::{Store, from_store};
use crate::storage::{Error, Result};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

/// Why conditional writes matter, for the operator reading the refusal.
const NEEDED: &str = " (without a database, the usage records and resumable uploads are changed only by \
     conditional writes, so without them quotas would drift: set `database` to keep them in PostgreSQL, \
     or use a store that honours them, such as AWS S3, MinIO or Ceph RGW)";

/// Tries each feature on `base/probe/` (conditional writes only if
/// `conditional`); the first one missing is [`Error::Lacks`]. The probe's
/// objects are deleted however it ends.
pub(super) async fn check(store: &Store, base: &Path, conditional: bool) -> Result<()> {
    let nonce = format!("{:016x}", rand::random::<u64>());
    let dir = base.clone().join("probe");
    let (single, multi) = (dir.clone().join(format!("{nonce}.cas")), dir.join(format!("{nonce}.multipart")));
    let result = features(store, &single, &multi, conditional).await;
    let _ = store.delete(&single).await;
    let _ = store.delete(&multi).await;
    result
}

async fn features(store: &Store, single: &Path, multi: &Path, conditional: bool) -> Result<()> {
    let first = store.put(single, PutPayload::from_static(b"1")).await.map_err(from_store)?;
    let stale = UpdateVersion { e_tag: Some("\"00000000000000000000000000000000\"".into()), version: None };
    if conditional {
        conditional_writes(store, single, &stale).await?;
    }
    let pinned = GetOptions { if_match: stale.e_tag, range: Some(GetRange::Bounded(0..1)), ..Default::default() };
    match store.get_opts(single, pinned).await {
        Ok(got) if got.meta.e_tag.is_some() && got.meta.e_tag == first.e_tag => {}
        Ok(_) => {
            return Err(Error::Lacks(
                "ranged GETs pinned to a version: a GET with If-Match on a stale ETag was answered, \
                 without the object's ETag"
                    .into(),
            ));
        }
        Err(object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(from_store(e)),
    }
    let lacks_multipart = |e: object_store::Error| match from_store(e) {
        Error::Other(cause) => Error::Lacks(format!("multipart uploads: {cause}")),
        other => other,
    };
    let id = store.create_multipart(multi).await.map_err(lacks_multipart)?;
    let part = store.put_part(multi, &id, 0, PutPayload::from_static(b"m")).await;
    let part = match part {
        Ok(part) => part,
        Err(e) => {
            let _ = store.abort_multipart(multi, &id).await;
            return Err(lacks_multipart(e));
        }
    };
    store.complete_multipart(multi, &id, vec![part]).await.map_err(lacks_multipart)?;
    Ok(())
}

/// A create onto an existing object and an update on a stale ETag must
/// both be refused.
async fn conditional_writes(store: &Store, single: &Path, stale: &UpdateVersion) -> Result<()> {
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    match store.put_opts(single, PutPayload::from_static(b"2"), create).await {
        Ok(_) => {
            return Err(Error::Lacks(format!(
                "conditional writes: a PUT with If-None-Match: * replaced an existing object{NEEDED}"
            )));
        }
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
        Err(e) => return Err(from_store(e)),
    }
    let update = PutOptions { mode: PutMode::Update(stale.clone()), ..Default::default() };
    match store.put_opts(single, PutPayload::from_static(b"3"), update).await {
        Ok(_) => Err(Error::Lacks(format!(
            "conditional writes: a PUT with If-Match on a stale ETag replaced the object{NEEDED}"
        ))),
        Err(object_store::Error::Precondition { .. }) => Ok(()),
        Err(e) => Err(from_store(e)),
    }
}
