//! The usage record of each user in the bucket, shared by every daemon on
//! it: the [`Quota`](crate::storage::Quota) of files in object storage.
//!
//! `<prefix>/usage/<user>.json` (in the bucket, or a row of that name in
//! the database: see [`records`](super::records)) is written only on the
//! version read, or only if absent, and the change retried on conflict.
//! Uploads reserve their size in it before taking any data, so uploads on
//! several daemons at once can't pass the quota together; a reservation
//! left by a daemon that died lapses after `reservation_lapse_secs` (a
//! running upload renews it).

use super::S3Home;
use super::records::{Expect, Found};
use super::upload::PARTIAL_HOLD;
use crate::storage::{Claim, Error, Removed, Reservation, Result, Usage};
use object_store::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a removal is remembered (racing removals come within moments)...
const GONE_FOR: i64 = 600;
/// ...and how many at most, the newest kept: the record is read and
/// written whole on every change, so it must stay small even while a
/// user deletes thousands of files.
const GONE_MAX: usize = 256;

/// The record.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    used: u64,
    holds: Vec<Hold>,
    /// Objects whose bytes already left `used`, by key and ETag, for a
    /// while: two daemons removing or replacing the same object at once
    /// take its bytes out once.
    #[serde(default)]
    gone: Vec<Gone>,
    /// Reservations settled, for a while: a settlement counts once, even
    /// when its reservation had lapsed (an upload that stalled longer than
    /// the lapse, then completed) or its first write's answer was lost.
    #[serde(default)]
    settled: Vec<Settled>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Settled {
    id: String,
    /// Unix seconds after which the entry is forgotten.
    until: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Hold {
    id: String,
    bytes: u64,
    /// Unix seconds after which the hold no longer counts.
    until: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Gone {
    key: String,
    e_tag: String,
    /// Unix seconds after which the entry is forgotten.
    until: i64,
}

impl Record {
    /// Takes `removed` out of `used`, unless another change already did.
    fn remove(&mut self, removed: &Removed) {
        if removed.bytes == 0 {
            return;
        }
        if let Some(e_tag) = &removed.tag {
            if self.gone.iter().any(|g| g.key == removed.key && &g.e_tag == e_tag) {
                return;
            }
            if self.gone.len() >= GONE_MAX {
                self.gone.remove(0);
            }
            self.gone.push(Gone { key: removed.key.clone(), e_tag: e_tag.clone(), until: now_secs() + GONE_FOR });
        }
        self.used = self.used.saturating_sub(removed.bytes);
    }

    /// The space used, counting what broken uploads' partials hold (as
    /// the filesystem backend does).
    fn usage(&self) -> Usage {
        let (partials, reserved) =
            self.holds.iter().fold((0, 0), |(p, r), h| if h.kept() { (p + h.bytes, r) } else { (p, r + h.bytes) });
        Usage { used: self.used + partials, reserved }
    }
}

impl Hold {
    /// Whether this is a partial's own hold (`partial:<id>`) rather than
    /// an upload's reservation (an upload continuing a partial holds
    /// `partial:<id>#<n>`, a reservation like any other).
    fn kept(&self) -> bool {
        self.id.starts_with(PARTIAL_HOLD) && !self.id.contains('#')
    }
}

pub(in crate::storage) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn later(after: Duration) -> i64 {
    now_secs().saturating_add(after.as_secs().min(i64::MAX as u64) as i64)
}

/// One user's usage record.
#[derive(Clone)]
pub struct Ledger {
    home: S3Home,
    key: Path,
    keep_for: Duration,
    /// How long an unrenewed reservation counts.
    lapse: Duration,
    /// This daemon's changes to the record, one at a time: conflicts are
    /// then only between daemons, and a store whose conditional writes are
    /// checked but not atomic (s3s-fs) stays exact for one daemon. It
    /// guards the record alone; nothing else of the user waits on it.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// The usage last read, for metrics.
    known: Arc<Mutex<Option<Usage>>>,
}

impl Ledger {
    pub(in crate::storage) fn new(home: S3Home, key: Path, keep_for: Duration, lapse: Duration) -> Ledger {
        Ledger { home, key, keep_for, lapse, writing: Arc::default(), known: Arc::default() }
    }

    /// How long an unrenewed reservation counts.
    pub fn lapse(&self) -> Duration {
        self.lapse
    }

    pub fn known_usage(&self) -> Option<Usage> {
        *self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the record (made from a listing of the home the first time),
    /// applies `change`, and writes it back if nobody wrote meanwhile;
    /// otherwise reads again. `change` returns what to answer and whether
    /// the record changed.
    async fn change<T>(&self, mut change: impl FnMut(&mut Record) -> (T, bool)) -> Result<T> {
        let records = &self.home.records;
        let _one_at_a_time = self.writing.lock().await;
        for _ in 0..50 {
            let found = records.read::<Record>(&self.key).await?;
            let (mut record, expect, listed) = match found {
                Some(Found { value: Some(record), version, .. }) => (record, Expect::Version(version), None),
                Some(Found { value: None, .. }) => {
                    return Err(Error::other(format!("the usage record {} is unreadable", self.key)));
                }
                None => {
                    let listed = self.home.files_usage().await?;
                    (Record { used: listed, ..Record::default() }, Expect::Absent, Some(listed))
                }
            };
            let (answer, write) = self.apply(&mut record, &mut change);
            // A record made from a listing taken after the change's object
            // was stored or removed already counts it: the change's holds
            // apply, its count does not.
            if let Some(listed) = listed {
                record.used = listed;
            }
            // A record made from a listing is written even when nothing
            // changes: a later change (an rm) must start from the listing
            // taken before it, not after.
            if !write && matches!(expect, Expect::Version(_)) {
                return Ok(answer);
            }
            match records.swap(&self.key, &record, expect).await {
                Ok(_) => return Ok(answer),
                Err(Error::Changed) => {
                    tokio::time::sleep(Duration::from_millis(5 + rand::random::<u64>() % 20)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable("the usage record keeps changing; try again".into()))
    }

    /// Drops the holds and removals that lapsed, then applies `change`;
    /// remembers the usage for metrics.
    fn apply<T>(&self, record: &mut Record, change: &mut impl FnMut(&mut Record) -> (T, bool)) -> (T, bool) {
        let now = now_secs();
        record.holds.retain(|h| h.until > now);
        record.gone.retain(|g| g.until > now);
        record.settled.retain(|s| s.until > now);
        let out = change(record);
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.usage());
        out
    }

    /// Ends holds without counting anything.
    async fn end_holds(&self, ids: &[&str]) -> Result<()> {
        self.change(|l| {
            let before = l.holds.len();
            l.holds.retain(|h| !ids.contains(&h.id.as_str()));
            ((), l.holds.len() != before)
        })
        .await
    }

    pub(crate) async fn usage(&self) -> Result<Usage> {
        self.change(|l| (l.usage(), false)).await
    }

    /// Reserves the whole size, less the file replaced; an upload that
    /// continues a partial takes the place of the partial's own hold (and
    /// of earlier attempts' at it, whose release may not have landed yet).
    pub(crate) async fn reserve(&self, claim: Claim, quota: Option<u64>) -> Result<Reservation> {
        let bytes = claim.size.saturating_sub(claim.replaces);
        let partial = claim.partial.clone();
        let id = match &partial {
            Some(p) => format!("{p}#{:016x}", rand::random::<u64>()),
            None => format!("{:016x}", rand::random::<u64>()),
        };
        let replaced = |h: &Hold| partial.as_deref().is_some_and(|p| h.id == p || h.id.starts_with(&format!("{p}#")));
        self.change(|l| {
            let held: u64 = l.holds.iter().filter(|h| !replaced(h)).map(|h| h.bytes).sum();
            let taken = l.used + held;
            if let Some(q) = quota
                && taken.saturating_add(bytes) > q
            {
                return (Err(Error::OverQuota { needed: bytes, available: q.saturating_sub(taken) }), false);
            }
            l.holds.retain(|h| !replaced(h));
            l.holds.push(Hold { id: id.clone(), bytes, until: later(self.lapse) });
            (Ok(()), true)
        })
        .await??;
        Ok(Reservation { id, claim, bytes })
    }

    pub(crate) async fn renew(&self, r: &Reservation) -> Result<()> {
        self.change(|l| {
            let found = l.holds.iter_mut().find(|h| h.id == r.id).map(|h| h.until = later(self.lapse)).is_some();
            ((), found)
        })
        .await
    }

    /// Applied once, however often it is tried: the settlement is
    /// remembered. It counts even if the reservation lapsed meanwhile.
    pub(crate) async fn settle(&self, r: Reservation, replaced: &Removed) -> Result<()> {
        let partial = r.claim.partial.as_deref();
        self.change(|l| {
            if l.settled.iter().any(|s| s.id == r.id) {
                return ((), false);
            }
            l.holds.retain(|h| h.id != r.id && Some(h.id.as_str()) != partial);
            l.used = l.used.saturating_add(r.claim.size);
            l.remove(replaced);
            if l.settled.len() >= GONE_MAX {
                l.settled.remove(0);
            }
            l.settled.push(Settled { id: r.id.clone(), until: now_secs() + GONE_FOR });
            ((), true)
        })
        .await
    }

    /// A partial that keeps bytes stays counted, under its own id, until
    /// it is stale and swept.
    pub(crate) async fn release(&self, r: Reservation, kept: u64) -> Result<()> {
        let Some(partial) = r.claim.partial.clone().filter(|_| kept > 0) else {
            let mut ids = vec![r.id.as_str()];
            ids.extend(r.claim.partial.as_deref());
            return self.end_holds(&ids).await;
        };
        let until = later(self.keep_for);
        self.change(|l| {
            // Only while this attempt's own hold is there: a newer attempt
            // has taken it away when it took the partial over.
            let mine = l.holds.iter().any(|h| h.id == r.id);
            l.holds.retain(|h| h.id != r.id);
            if mine {
                l.holds.retain(|h| h.id != partial);
                l.holds.push(Hold { id: partial.clone(), bytes: kept, until });
            }
            ((), mine)
        })
        .await
    }

    /// Counts the record again from what the bucket holds: the files in
    /// the home and the parts each partial holds; forgets the removals
    /// remembered. Returns the usage before and after. Refused while an
    /// upload of the user holds a reservation (its object may or may not
    /// be in the listing yet): after its end, or after
    /// `reservation_lapse_secs` if its daemon died.
    pub(crate) async fn recount(&self) -> Result<(Usage, Usage)> {
        let records = &self.home.records;
        let _one_at_a_time = self.writing.lock().await;
        for _ in 0..50 {
            // Read before listing: a change after it fails the write below.
            let (mut record, expect) = match records.read::<Record>(&self.key).await? {
                Some(Found { value, version, .. }) => (value.unwrap_or_default(), Expect::Version(version)),
                None => (Record::default(), Expect::Absent),
            };
            let now = now_secs();
            record.holds.retain(|h| h.until > now);
            let before = record.usage();
            let running = record.holds.iter().filter(|h| !h.kept()).count();
            if running > 0 {
                return Err(Error::other(format!(
                    "{running} upload(s) of this user hold a reservation: recount when they end \
                     (a reservation left by a daemon that died lapses after reservation_lapse_secs)"
                )));
            }
            let until = |id: &str| record.holds.iter().find(|h| h.id == id).map_or(later(self.keep_for), |h| h.until);
            let holds: Vec<Hold> = super::upload::partials_by_id(&self.home)
                .await?
                .into_iter()
                .map(|(id, bytes)| Hold { until: until(&id), id, bytes })
                .collect();
            let fresh = Record { used: self.home.files_usage().await?, holds, ..Record::default() };
            match records.swap(&self.key, &fresh, expect).await {
                Ok(_) => {
                    *self.known.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.usage());
                    return Ok((before, fresh.usage()));
                }
                Err(Error::Changed) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable("the usage record keeps changing; try again".into()))
    }

    /// Takes a removed object's bytes out of the usage (once, however many
    /// daemons report it).
    pub(crate) async fn removed(&self, removed: &Removed) -> Result<()> {
        if removed.bytes == 0 {
            return Ok(());
        }
        self.change(|l| {
            let before = (l.used, l.gone.len());
            l.remove(removed);
            ((), (l.used, l.gone.len()) != before)
        })
        .await
    }

    pub(crate) async fn partial_dropped(&self, partial: &str, _bytes: u64) -> Result<()> {
        self.end_holds(&[partial]).await
    }
}
