//! The usage record of each user in the bucket, shared by every daemon:
//! reservations, settlements, partials' holds (see [`Ledger`]).

use super::{ObjectHome, decode, to_io};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The usage of one user, shared by every daemon on the bucket:
/// `<prefix>/usage/<user>.json`, changed only by conditional writes
/// (If-Match on the version read, or create-if-absent), retried on
/// conflict. Uploads reserve their size in it before taking any data, so
/// uploads on several daemons at once can't pass the quota together;
/// a reservation left by a daemon that died lapses after [`HOLD_FOR`].
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Ledger {
    used: u64,
    holds: Vec<Hold>,
    /// Objects whose bytes already left `used`, by key and ETag, for a
    /// while: two daemons removing or replacing the same object at once
    /// take its bytes out once.
    #[serde(default)]
    gone: Vec<Gone>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Gone {
    key: String,
    e_tag: String,
    /// Unix seconds after which the entry is forgotten.
    until: i64,
}

/// How long a removal is remembered (racing removals come within moments)...
const GONE_FOR: i64 = 600;
/// ...and how many at most, the newest kept: the record is read and
/// written whole on every change, so it must stay small even while a
/// user deletes thousands of files.
const GONE_MAX: usize = 256;

/// An object removed or replaced: its key, its ETag when the store gives
/// one, and its size.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub(crate) key: String,
    pub(crate) e_tag: Option<String>,
    /// Its size.
    pub bytes: u64,
}

impl From<object_store::ObjectMeta> for Removed {
    fn from(meta: object_store::ObjectMeta) -> Removed {
        Removed { key: meta.location.to_string(), e_tag: meta.e_tag, bytes: meta.size }
    }
}

impl Ledger {
    /// Takes `removed` out of `used`, unless another change already did.
    fn remove(&mut self, removed: &Removed) {
        if removed.bytes == 0 {
            return;
        }
        if let Some(e_tag) = &removed.e_tag {
            if self.gone.iter().any(|g| g.key == removed.key && &g.e_tag == e_tag) {
                return;
            }
            let until = now_secs() + GONE_FOR;
            if self.gone.len() >= GONE_MAX {
                self.gone.remove(0);
            }
            self.gone.push(Gone { key: removed.key.clone(), e_tag: e_tag.clone(), until });
        }
        self.used = self.used.saturating_sub(removed.bytes);
    }
}

impl Ledger {
    /// The space used, counting what broken uploads' partials hold (as
    /// the filesystem backend does).
    fn used_with_partials(&self) -> u64 {
        self.used + self.holds.iter().filter(|h| h.id.starts_with(PARTIAL_HOLD)).map(|h| h.bytes).sum::<u64>()
    }

    /// The space reserved by uploads in progress.
    fn reserved(&self) -> u64 {
        self.holds.iter().filter(|h| !h.id.starts_with(PARTIAL_HOLD)).map(|h| h.bytes).sum()
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hold {
    id: String,
    bytes: u64,
    /// Unix seconds after which the hold no longer counts.
    until: i64,
}

/// How the ids of partials' holds begin.
pub(super) const PARTIAL_HOLD: &str = "partial:";

/// How long an upload's reservation counts if it is never released (a
/// running upload renews it every quarter of this).
pub const HOLD_FOR: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy)]
pub struct OverQuota {
    /// Bytes the upload needs.
    pub needed: u64,
    /// Bytes left.
    pub available: u64,
}

/// The lock serialising this daemon's changes to the ledger at `key`.
fn ledger_lock(key: &Path) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>;
    static LOCKS: std::sync::LazyLock<std::sync::Mutex<Locks>> = std::sync::LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lock) = locks.get(key.as_ref()).and_then(std::sync::Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, weak| weak.strong_count() > 0);
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(key.to_string(), Arc::downgrade(&lock));
    lock
}

pub(super) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl ObjectHome {
    fn ledger_key(&self) -> Path {
        let user = self.home.filename().unwrap_or_default().to_owned();
        let base: Vec<_> = self.home.parts().collect();
        // <prefix>/homes/<user> -> <prefix>/usage/<user>.json
        let prefix = base[..base.len().saturating_sub(2)].iter().fold(Path::default(), |p, part| p.child(part.clone()));
        prefix.child("usage").child(format!("{}.json", decode(&user).unwrap_or(user)))
    }

    /// Reads the ledger (made from a listing of the home the first time),
    /// applies `change`, and writes it back if nobody wrote meanwhile;
    /// otherwise reads again. `change` returns what to answer and whether
    /// the ledger changed.
    async fn with_ledger<T>(&self, mut change: impl FnMut(&mut Ledger) -> (T, bool)) -> io::Result<T> {
        let key = self.ledger_key();
        // One change at a time per user within this daemon: conflicts are
        // then only between daemons, and a store whose conditional writes
        // are checked but not atomic (s3s-fs) stays exact for one daemon.
        let lock = ledger_lock(&key);
        let _one_at_a_time = lock.lock().await;
        for _ in 0..50 {
            let (mut ledger, version) = match self.store.get(&key).await {
                Ok(result) => {
                    let meta = result.meta.clone();
                    let bytes = result.bytes().await.map_err(to_io)?;
                    let ledger = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                    (ledger, Some(object_store::UpdateVersion { e_tag: meta.e_tag, version: meta.version }))
                }
                Err(object_store::Error::NotFound { .. }) => {
                    (Ledger { used: self.usage().await?, ..Ledger::default() }, None)
                }
                Err(e) => return Err(to_io(e)),
            };
            let now = now_secs();
            ledger.holds.retain(|h| h.until > now);
            ledger.gone.retain(|g| g.until > now);
            let (answer, write) = change(&mut ledger);
            // A record made from a listing is written even when nothing
            // changes: a later change (an rm) must start from the listing
            // taken before it, not after.
            if !write && version.is_some() {
                return Ok(answer);
            }
            let mode = match version {
                Some(v) => object_store::PutMode::Update(v),
                None => object_store::PutMode::Create,
            };
            let body = serde_json::to_vec(&ledger).map_err(io::Error::other)?;
            let opts = object_store::PutOptions { mode, ..Default::default() };
            match self.store.put_opts(&key, PutPayload::from(body), opts).await {
                Ok(_) => return Ok(answer),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 + rand::random::<u64>() % 20)).await;
                }
                Err(e) => return Err(to_io(e)),
            }
        }
        Err(io::Error::other("the usage record keeps changing; try again"))
    }

    /// Space used (the partials of broken uploads included, as on the
    /// filesystem), and reserved by uploads in progress on any daemon.
    pub async fn ledger_usage(&self) -> io::Result<(u64, u64)> {
        self.with_ledger(|l| ((l.used_with_partials(), l.reserved()), false)).await
    }

    /// Reserves `bytes` for an upload unless that would pass `quota`.
    /// Returns the reservation's id, for [`ObjectHome::settle`]. An
    /// upload that continues a partial names it in `continues`: the
    /// partial's own hold (see [`ObjectHome::keep_partial`]) and those of
    /// earlier attempts at it (whose release may not have landed yet)
    /// give way to the new reservation, which covers the whole size.
    pub async fn reserve(
        &self,
        bytes: u64,
        quota: Option<u64>,
        continues: Option<&str>,
    ) -> io::Result<Result<String, OverQuota>> {
        let id = match continues {
            Some(partial) => format!("{partial}#{:016x}", rand::random::<u64>()),
            None => format!("{:016x}", rand::random::<u64>()),
        };
        self.with_ledger(|l| {
            let replaced = |h: &Hold| continues.is_some_and(|p| h.id == p || h.id.starts_with(&format!("{p}#")));
            let held: u64 = l.holds.iter().filter(|h| !replaced(h)).map(|h| h.bytes).sum();
            let taken = l.used + held;
            if let Some(q) = quota
                && taken.saturating_add(bytes) > q
            {
                return (Err(OverQuota { needed: bytes, available: q.saturating_sub(taken) }), false);
            }
            l.holds.retain(|h| !replaced(h));
            l.holds.push(Hold { id: id.clone(), bytes, until: now_secs() + HOLD_FOR.as_secs() as i64 });
            (Ok(id.clone()), true)
        })
        .await
    }

    /// Makes the reservation `hold` count for [`HOLD_FOR`] from now (an
    /// upload still running when its reservation would lapse).
    pub async fn extend(&self, hold: &str) -> io::Result<()> {
        self.with_ledger(|l| {
            let until = now_secs() + HOLD_FOR.as_secs() as i64;
            let found = l.holds.iter_mut().find(|h| h.id == hold).map(|h| h.until = until).is_some();
            ((), found)
        })
        .await
    }

    /// Ends the reservation `hold` of an upload that broke off, leaving
    /// the bytes its partial keeps counted, under the partial's id, until
    /// `keep_for` from now (when the partial becomes stale and is swept).
    pub async fn keep_partial(&self, hold: &str, partial: &str, bytes: u64, keep_for: Duration) -> io::Result<()> {
        // A newer attempt may have completed the upload meanwhile.
        let record = self.partials.child(format!("{}.json", partial.trim_start_matches(PARTIAL_HOLD)));
        let bytes = match self.store.head(&record).await {
            Ok(_) => bytes,
            Err(object_store::Error::NotFound { .. }) => 0,
            Err(e) => return Err(to_io(e)),
        };
        self.with_ledger(|l| {
            // Only while this attempt's own hold is there: a newer attempt
            // has taken it away when it took the partial over.
            let mine = l.holds.iter().any(|h| h.id == hold);
            l.holds.retain(|h| h.id != hold);
            if mine && bytes > 0 {
                l.holds.retain(|h| h.id != partial);
                let until = now_secs().saturating_add(keep_for.as_secs().min(i64::MAX as u64) as i64);
                l.holds.push(Hold { id: partial.to_owned(), bytes, until });
            }
            ((), mine)
        })
        .await?;
        // The upload may have been completed, and its record deleted,
        // between the look above and the write: then nothing is held.
        if let Err(object_store::Error::NotFound { .. }) = self.store.head(&record).await {
            self.release(&[partial]).await?;
        }
        Ok(())
    }

    /// Ends reservations without counting anything (an upload that
    /// failed, a partial dropped). Returns the space used after.
    pub async fn release(&self, holds: &[&str]) -> io::Result<u64> {
        self.with_ledger(|l| {
            let before = l.holds.len();
            l.holds.retain(|h| !holds.contains(&h.id.as_str()));
            (l.used_with_partials(), l.holds.len() != before)
        })
        .await
    }

    /// Settles a completed upload: ends its reservation `hold` (and its
    /// partial's), counts the `added` bytes and takes out the object it
    /// `replaced`. Applied once: only while the reservation is there, so
    /// a write retried after an unclear failure can't count twice.
    /// Returns the space used after.
    pub async fn settle(&self, hold: &str, partial: Option<&str>, added: u64, replaced: &Removed) -> io::Result<u64> {
        self.with_ledger(|l| {
            if !l.holds.iter().any(|h| h.id == hold) {
                return (l.used_with_partials(), false);
            }
            l.holds.retain(|h| h.id != hold && Some(h.id.as_str()) != partial);
            l.used = l.used.saturating_add(added);
            l.remove(replaced);
            (l.used_with_partials(), true)
        })
        .await
    }

    /// Takes a removed object's bytes out of the usage (once, however many
    /// daemons report it). Returns the space used after.
    pub async fn record_removed(&self, removed: &Removed) -> io::Result<u64> {
        self.with_ledger(|l| {
            let before = (l.used, l.gone.len());
            l.remove(removed);
            (l.used_with_partials(), (l.used, l.gone.len()) != before)
        })
        .await
    }
}
