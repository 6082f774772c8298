//! What a user's uploads claim of their quota, and the daemon's own count
//! of it ([`LocalAccount`]), used where this daemon is the only writer of
//! the user's files (the data root on this machine).

use super::{Error, Removed, Result};
use std::sync::Mutex;

/// Bytes stored and reserved by one user.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes stored: files, and partial uploads kept for resume.
    pub used: u64,
    /// Bytes promised to uploads in progress and not counted in `used`.
    pub reserved: u64,
}

/// What an upload claims, in the terms every account understands.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Size of the whole file.
    pub size: u64,
    /// Bytes its partial already holds (counted as used).
    pub held: u64,
    /// Size of the file it will replace, if known: only the difference
    /// is charged. 0 when unknown or none.
    pub replaces: u64,
    /// The partial it continues or starts, for a resumable upload.
    pub partial: Option<String>,
}

impl Claim {
    /// What the upload adds to what is already counted, at most: the rest
    /// of the file, less the file it replaces.
    pub fn needed(&self) -> u64 {
        self.size.saturating_sub(self.held).saturating_sub(self.replaces)
    }
}

/// Space promised to one upload, until it settles or is released. A copy
/// names the same reservation (to retry a settlement: it applies once).
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The account's name for it (empty for a local account).
    pub(crate) id: String,
    /// What was claimed.
    pub(crate) claim: Claim,
    /// Bytes set aside.
    pub(crate) bytes: u64,
}

/// A user's usage counted by this daemon: walked from the home at the
/// first login after a start (so it survives restarts and stays exact),
/// then kept up to date by every operation that adds or removes bytes.
#[derive(Debug, Default)]
pub struct LocalAccount {
    usage: tokio::sync::OnceCell<Mutex<Usage>>,
}

impl LocalAccount {
    /// Loads the usage from `used` (a count of the home), once; later
    /// calls wait for the first or return at once.
    pub async fn load(&self, used: impl Future<Output = Result<u64>>) -> Result<()> {
        self.usage
            .get_or_try_init(|| async { Ok::<_, Error>(Mutex::new(Usage { used: used.await?, reserved: 0 })) })
            .await?;
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Usage) -> T) -> Option<T> {
        let usage = self.usage.get()?;
        let mut usage = usage.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut usage))
    }

    /// The usage, if loaded.
    pub fn known_usage(&self) -> Option<Usage> {
        self.with(|u| *u)
    }

    fn adjust(&self, delta: i128) {
        self.with(|u| u.used = (u.used as i128 + delta).clamp(0, u64::MAX as i128) as u64);
    }

    pub(super) async fn usage(&self) -> Result<Usage> {
        Ok(self.known_usage().unwrap_or_default())
    }

    pub(super) async fn reserve(&self, claim: Claim, quota: Option<u64>) -> Result<Reservation> {
        let bytes = claim.needed();
        self.with(|u| {
            if let Some(quota) = quota {
                let available = quota.saturating_sub(u.used + u.reserved);
                if bytes > available {
                    return Err(Error::OverQuota { needed: bytes, available });
                }
            }
            u.reserved += bytes;
            Ok(())
        })
        .unwrap_or(Ok(()))?;
        Ok(Reservation { id: String::new(), claim, bytes })
    }

    pub(super) async fn renew(&self, _reservation: &Reservation) -> Result<()> {
        Ok(())
    }

    pub(super) async fn settle(&self, r: Reservation, replaced: &Removed) -> Result<()> {
        self.with(|u| {
            u.reserved = u.reserved.saturating_sub(r.bytes);
            // The partial's bytes became the file's; the file replaced left.
            let used = u.used as i128 + r.claim.size as i128 - r.claim.held as i128 - replaced.bytes as i128;
            u.used = used.clamp(0, u64::MAX as i128) as u64;
        });
        Ok(())
    }

    pub(super) async fn release(&self, r: Reservation, kept: u64) -> Result<()> {
        self.with(|u| {
            u.reserved = u.reserved.saturating_sub(r.bytes);
            let used = u.used as i128 + kept as i128 - r.claim.held as i128;
            u.used = used.clamp(0, u64::MAX as i128) as u64;
        });
        Ok(())
    }

    pub(super) async fn removed(&self, removed: &Removed) -> Result<()> {
        self.adjust(-(removed.bytes as i128));
        Ok(())
    }

    pub(super) async fn partial_dropped(&self, _partial: &str, bytes: u64) -> Result<()> {
        self.adjust(-(bytes as i128));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(size: u64, held: u64, replaces: u64) -> Claim {
        Claim { size, held, replaces, partial: None }
    }

    #[tokio::test]
    async fn reservations_keep_concurrent_uploads_within_the_quota() {
        let account = LocalAccount::default();
        account.load(async { Ok(100) }).await.unwrap();
        let quota = Some(1000);
        let a = account.reserve(claim(600, 0, 0), quota).await.unwrap();
        let Err(Error::OverQuota { needed, available }) = account.reserve(claim(400, 0, 0), quota).await else {
            panic!("over quota")
        };
        assert_eq!((needed, available), (400, 300));
        // A private upload that broke off keeps nothing.
        account.release(a, 0).await.unwrap();
        assert_eq!(account.known_usage(), Some(Usage { used: 100, reserved: 0 }));
        // A resumable one keeps what its partial holds.
        let b = account.reserve(Claim { partial: Some("p".into()), ..claim(600, 0, 0) }, quota).await.unwrap();
        account.release(b, 250).await.unwrap();
        assert_eq!(account.known_usage(), Some(Usage { used: 350, reserved: 0 }));
        // Resumed from 250: only the rest is reserved, and the whole file counts once settled.
        let c = account.reserve(Claim { partial: Some("p".into()), ..claim(600, 250, 0) }, quota).await.unwrap();
        assert_eq!(account.known_usage().unwrap().reserved, 350);
        account.settle(c, &Removed::default()).await.unwrap();
        assert_eq!(account.known_usage(), Some(Usage { used: 700, reserved: 0 }));
    }

    #[tokio::test]
    async fn replacing_a_file_is_charged_the_difference() {
        let account = LocalAccount::default();
        account.load(async { Ok(3 << 20) }).await.unwrap();
        let quota = Some(4 << 20);
        // The whole size does not fit; the difference with the file replaced does.
        assert!(account.reserve(claim(3 << 20, 0, 0), quota).await.is_err());
        let r = account.reserve(claim(3 << 20, 0, 3 << 20), quota).await.unwrap();
        let replaced = Removed { bytes: 3 << 20, ..Removed::default() };
        account.settle(r, &replaced).await.unwrap();
        assert_eq!(account.known_usage(), Some(Usage { used: 3 << 20, reserved: 0 }));
    }

    #[tokio::test]
    async fn an_account_not_loaded_counts_nothing_and_refuses_nothing() {
        let account = LocalAccount::default();
        let r = account.reserve(claim(10, 0, 0), Some(1)).await.unwrap();
        account.settle(r, &Removed::default()).await.unwrap();
        assert_eq!(account.known_usage(), None);
    }
}
