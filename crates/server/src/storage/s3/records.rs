//! The small JSON records every daemon on a bucket shares (each user's
//! usage, each resumable upload), named by key, and where they live: in the
//! bucket, beside the files, or in PostgreSQL when `database` is set.
//!
//! Either way a record is written only on the version its writer read
//! (compare-and-swap) or only if absent, and a conflict is
//! [`Error::Changed`]: the writer reads again or stops. In the bucket that
//! is a conditional PUT (If-Match, If-None-Match), which only some stores
//! honour (the start-time probe checks it; Garage ignores the conditions);
//! in the database it is one statement on a row's version, whatever the
//! store.
//!
//! With the records in the database, several daemons share the bucket, and
//! a [`KeyLock`] (a record too) keeps two of them from changing one file
//! at once: each change of a file looks at what it replaces and replaces
//! it under the lock, so every replacement and removal counts exactly what
//! it took away.

use super::{Store, from_store};
use crate::storage::db::Db;
use crate::storage::{Error, Result};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// How long a lock counts if its daemon dies holding it.
const LOCK_FOR: i64 = 60;
/// How long a change waits for a lock another daemon holds.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Where the records are.
#[derive(Clone, Debug)]
pub(super) enum Records {
    Bucket(Store),
    Database(Db),
}

/// The version of a record as read: a writer passes it back to write only
/// if nobody wrote since.
#[derive(Clone, Debug)]
pub(super) enum Version {
    Object(UpdateVersion),
    Row(i64),
}

/// A record as read.
pub(super) struct Found<T> {
    pub key: Path,
    /// `None` when it can't be read as a `T` (damaged, or left by a
    /// removal cut short): it holds nothing anyone can use.
    pub value: Option<T>,
    pub version: Version,
    /// Unix seconds of the last write.
    pub modified: i64,
}

/// What a write expects to find.
pub(super) enum Expect {
    /// Nothing: the record is made.
    Absent,
    /// This version, unchanged.
    Version(Version),
}

impl Records {
    pub fn database(&self) -> Option<&Db> {
        match self {
            Records::Bucket(_) => None,
            Records::Database(db) => Some(db),
        }
    }

    pub async fn read<T: DeserializeOwned>(&self, key: &Path) -> Result<Option<Found<T>>> {
        match self {
            Records::Bucket(store) => {
                let result = match store.get(key).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(from_store(e)),
                };
                let meta = result.meta.clone();
                let bytes = result.bytes().await.map_err(from_store)?;
                Ok(Some(Found {
                    key: key.clone(),
                    value: serde_json::from_slice(&bytes).ok(),
                    version: Version::Object(UpdateVersion { e_tag: meta.e_tag, version: meta.version }),
                    modified: meta.last_modified.timestamp(),
                }))
            }
            Records::Database(db) => Ok(db.read(key.as_ref()).await?.map(|row| found(key.clone(), row))),
        }
    }

    /// The records under `prefix`, read.
    pub async fn list<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Vec<Found<T>>> {
        match self {
            Records::Bucket(store) => {
                let mut found = Vec::new();
                let mut listing = store.list(Some(prefix));
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(from_store)?;
                    // Gone since it was listed: skipped.
                    found.extend(self.read(&meta.location).await?);
                }
                Ok(found)
            }
            Records::Database(db) => {
                let rows = db.list(&format!("{prefix}/")).await?;
                // A name that is no key was not written by a daemon.
                Ok(rows.into_iter().filter_map(|row| Some(found(Path::parse(&row.name).ok()?, row))).collect())
            }
        }
    }

    /// Writes `value` at `key` only as `expect` says; [`Error::Changed`]
    /// when another writer came first.
    pub async fn swap<T: Serialize>(&self, key: &Path, value: &T, expect: Expect) -> Result<Version> {
        match self {
            Records::Bucket(store) => {
                let body = serde_json::to_vec(value).map_err(Error::other)?;
                let mode = match expect {
                    Expect::Absent => PutMode::Create,
                    Expect::Version(Version::Object(v)) => PutMode::Update(v),
                    Expect::Version(Version::Row(_)) => return Err(Error::Changed),
                };
                let opts = PutOptions { mode, ..Default::default() };
                match store.put_opts(key, PutPayload::from(body), opts).await {
                    Ok(put) => Ok(Version::Object(UpdateVersion { e_tag: put.e_tag, version: put.version })),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                        Err(Error::Changed)
                    }
                    Err(e) => Err(from_store(e)),
                }
            }
            Records::Database(db) => {
                let value = serde_json::to_value(value).map_err(Error::other)?;
                let expect = match expect {
                    Expect::Absent => None,
                    Expect::Version(Version::Row(v)) => Some(v),
                    Expect::Version(Version::Object(_)) => return Err(Error::Changed),
                };
                db.write(key.as_ref(), &value, expect).await.map(Version::Row)
            }
        }
    }

    /// Deletes the record at `key` only if it is still at `version`
    /// ([`Error::Changed`] otherwise, [`Error::NotFound`] if it is gone):
    /// whoever deletes it owns what it described.
    pub async fn remove(&self, key: &Path, version: &Version) -> Result<()> {
        match (self, version) {
            // Object stores have no conditional DELETE: the record is
            // first overwritten, conditionally, with `null` (which reads
            // as nothing), then deleted.
            (Records::Bucket(store), Version::Object(v)) => {
                let opts = PutOptions { mode: PutMode::Update(v.clone()), ..Default::default() };
                match store.put_opts(key, PutPayload::from_static(b"null"), opts).await {
                    Ok(_) => {}
                    Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound),
                    Err(object_store::Error::Precondition { .. }) => return Err(Error::Changed),
                    Err(e) => return Err(from_store(e)),
                }
                self.forget(key).await
            }
            (Records::Database(db), Version::Row(v)) => match db.delete(key.as_ref(), Some(*v)).await? {
                true => Ok(()),
                false if db.read(key.as_ref()).await?.is_some() => Err(Error::Changed),
                false => Err(Error::NotFound),
            },
            _ => Err(Error::Changed),
        }
    }

    /// Deletes the record at `key`, whatever its version.
    pub async fn forget(&self, key: &Path) -> Result<()> {
        match self {
            Records::Bucket(store) => match store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(from_store(e)),
            },
            Records::Database(db) => db.delete(key.as_ref(), None).await.map(drop),
        }
    }
}

/// A lock on one file, held across daemons (see the module's doc).
pub(super) struct KeyLock {
    records: Records,
    name: Path,
    version: Version,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LockRecord {
    /// Unix seconds after which the lock may be taken from its holder.
    until: i64,
}

impl Records {
    /// Takes the lock `name`, waiting while another daemon holds it (one
    /// left by a daemon that died is taken over after [`LOCK_FOR`]). With
    /// the records in the bucket there is one daemon per bucket, whose own
    /// path locks suffice: `None`.
    pub async fn lock(&self, name: &Path) -> Result<Option<KeyLock>> {
        let Records::Database(_) = self else { return Ok(None) };
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            let now = super::ledger::now_secs();
            let mark = LockRecord { until: now + LOCK_FOR };
            let taken = match self.swap(name, &mark, Expect::Absent).await {
                Err(Error::Changed) => match self.read::<LockRecord>(name).await? {
                    Some(held) if held.value.as_ref().is_none_or(|l| l.until < now) => {
                        self.swap(name, &mark, Expect::Version(held.version)).await
                    }
                    _ => Err(Error::Changed),
                },
                other => other,
            };
            match taken {
                Ok(version) => return Ok(Some(KeyLock { records: self.clone(), name: name.clone(), version })),
                Err(Error::Changed) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5 + rand::random::<u64>() % 20)).await;
                }
                Err(Error::Changed) => {
                    return Err(Error::Unavailable("the file is being changed on another daemon; try again".into()));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl KeyLock {
    /// Lets the lock go (a failure leaves it to lapse).
    pub async fn release(self) {
        let _ = self.records.remove(&self.name, &self.version).await;
    }
}

fn found<T: DeserializeOwned>(key: Path, row: crate::storage::db::Row) -> Found<T> {
    Found {
        key,
        value: serde_json::from_value(row.record).ok(),
        version: Version::Row(row.version),
        modified: row.modified,
    }
}
