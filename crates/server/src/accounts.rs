//! Per-user and per-address bookkeeping shared by all sessions: how many
//! sessions each has open, and how many bytes each user stores.
//!
//! Usage is the sum of the sizes of the regular files in the user's home
//! plus the partial uploads kept for resume. It is computed by walking the
//! home at the user's first login after a start (so it survives restarts
//! and stays exact), then kept up to date by every operation that adds or
//! removes bytes. Uploads reserve their declared size up front, so several
//! uploads of one user running at once can never together exceed the quota.

use crate::home::Home;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Bytes stored and reserved by one user.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes on disk (files in the home and partial uploads).
    pub used: u64,
    /// Bytes promised to uploads in progress but not yet written.
    pub reserved: u64,
}

/// One user's shared state.
#[derive(Debug, Default)]
pub struct Account {
    sessions: AtomicUsize,
    usage: tokio::sync::OnceCell<Mutex<Usage>>,
    /// Held around each operation that measures what it frees and then
    /// frees it (rm, rename, the commit of an upload), so that two sessions
    /// of the user can't count the same bytes twice.
    pub ops: tokio::sync::Mutex<()>,
    /// The home the user's sessions share while any is open: one set of
    /// directory handles per user, not per session.
    home: Mutex<Weak<Home>>,
}

/// All accounts, and per-address counts of sessions and of connections
/// not logged in yet.
#[derive(Debug, Default)]
pub struct Accounts {
    users: Mutex<HashMap<String, Arc<Account>>>,
    addresses: Mutex<HashMap<IpAddr, usize>>,
    waiting: Mutex<HashMap<IpAddr, usize>>,
}

/// What an [`AddressSlot`] counts.
#[derive(Debug, Clone, Copy)]
pub enum SlotKind {
    /// Any session.
    Session,
    /// A connection that has not logged in yet.
    Waiting,
}

/// Holds one slot of an address; released on drop.
#[derive(Debug)]
pub struct AddressSlot {
    accounts: Arc<Accounts>,
    ip: IpAddr,
    kind: SlotKind,
}

/// Holds one session slot of a user; released on drop.
#[derive(Debug)]
pub struct UserSlot {
    /// The user's account.
    pub account: Arc<Account>,
}

/// Space promised to one upload. Bytes written are added to the usage and
/// the reservation is released when it is dropped, however the upload ends.
#[derive(Debug)]
pub struct Reservation {
    account: Arc<Account>,
    reserved: u64,
    /// Bytes written to disk so far under this reservation.
    pub written: u64,
}

/// An upload that does not fit.
#[derive(Debug, Clone, Copy)]
pub struct OverQuota {
    /// Bytes the upload needs.
    pub needed: u64,
    /// Bytes still available.
    pub available: u64,
}

impl Accounts {
    fn counts(&self, kind: SlotKind) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let map = match kind {
            SlotKind::Session => &self.addresses,
            SlotKind::Waiting => &self.waiting,
        };
        map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a session slot for `ip`, unless it already has `max`.
    pub fn enter_address(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        self.enter(ip, max, SlotKind::Session)
    }

    /// Takes a slot of `kind` for `ip`, unless it already has `max`.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, max: usize, kind: SlotKind) -> Option<AddressSlot> {
        let mut map = self.counts(kind);
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { accounts: self.clone(), ip, kind })
    }

    /// The account of `user`, created on first use.
    pub fn account(&self, user: &str) -> Arc<Account> {
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(user.to_owned()).or_default().clone()
    }

    /// Takes a session slot for `user`, unless they already have `max`.
    pub fn enter_user(&self, user: &str, max: usize) -> Option<UserSlot> {
        let account = self.account(user);
        let taken = account.sessions.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        taken.ok().map(|_| UserSlot { account })
    }

    /// Usage of each user whose usage is loaded (they logged in since the
    /// daemon started), sorted by name.
    pub fn usage_by_user(&self) -> Vec<(String, Usage)> {
        let map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map
            .iter()
            .filter_map(|(name, account)| account.usage.get().map(|_| (name.clone(), account.usage())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Adjusts a user's usage if it is loaded (a later load sees the disk).
    pub fn adjust_if_loaded(&self, user: &str, delta: i64) {
        let account = self.users.lock().unwrap_or_else(|p| p.into_inner()).get(user).cloned();
        if let Some(account) = account {
            account.adjust(delta);
        }
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.accounts.counts(self.kind);
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.account.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Account {
    /// The home directory handles of a session of this user still open, if any.
    pub fn shared_home(&self) -> Option<Arc<Home>> {
        self.home.lock().unwrap_or_else(|p| p.into_inner()).upgrade()
    }

    /// Shares `home` with the user's later sessions while it is in use.
    pub fn share_home(&self, home: &Arc<Home>) {
        *self.home.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(home);
    }

    /// Loads the usage by walking the user's home and partial uploads, once.
    pub async fn load(&self, home: &Path, partials: &Path) -> io::Result<()> {
        let (home, partials) = (home.to_owned(), partials.to_owned());
        self.usage
            .get_or_try_init(|| async move {
                let used = tokio::task::spawn_blocking(move || {
                    Ok::<_, io::Error>(tree_size(&home)? + partials_size(&partials)?)
                })
                .await
                .map_err(io::Error::other)??;
                Ok::<_, io::Error>(Mutex::new(Usage { used, reserved: 0 }))
            })
            .await
            .map(drop)
    }

    /// Loads the usage from `used` (the object store's count), once.
    pub async fn load_from(&self, used: impl std::future::Future<Output = io::Result<u64>>) -> io::Result<()> {
        self.usage
            .get_or_try_init(|| async move { Ok::<_, io::Error>(Mutex::new(Usage { used: used.await?, reserved: 0 })) })
            .await
            .map(drop)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Usage) -> T) -> Option<T> {
        let usage = self.usage.get()?;
        let mut usage = usage.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut usage))
    }

    /// The current usage (zero before the first load).
    pub fn usage(&self) -> Usage {
        self.with(|u| *u).unwrap_or_default()
    }

    /// Adds (or, when negative, removes) bytes from the usage.
    pub fn adjust(&self, delta: i64) {
        self.with(|u| u.used = u.used.saturating_add_signed(delta));
    }

    /// Sets the bytes used (to what the object store's usage record says).
    pub fn set_used(&self, used: u64) {
        self.with(|u| u.used = used);
    }

    /// Reserves `needed` bytes, or says how much is available.
    pub fn reserve(self: &Arc<Self>, needed: u64, quota: Option<u64>) -> Result<Reservation, OverQuota> {
        self.with(|u| {
            if let Some(quota) = quota {
                let available = quota.saturating_sub(u.used + u.reserved);
                if needed > available {
                    return Err(OverQuota { needed, available });
                }
            }
            u.reserved += needed;
            Ok(())
        })
        .unwrap_or(Ok(()))?;
        Ok(Reservation { account: self.clone(), reserved: needed, written: 0 })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let (reserved, written) = (self.reserved, self.written);
        self.account.with(|u| {
            u.reserved = u.reserved.saturating_sub(reserved);
            u.used += written;
        });
    }
}

/// Sum of the sizes of the partial uploads (`*.part`) in `dir`; their small
/// records don't count.
fn partials_size(dir: &Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".part") {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Sum of the sizes of the regular files under `dir` (symlinks not followed).
pub fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_keep_concurrent_uploads_within_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![0u8; 100]).unwrap();
        let accounts = Arc::new(Accounts::default());
        let account = accounts.account("u");
        account.load(dir.path(), &dir.path().join("none")).await.unwrap();
        assert_eq!(account.usage().used, 100);

        let quota = Some(1000);
        let mut a = account.reserve(600, quota).unwrap();
        let over = account.reserve(400, quota).unwrap_err();
        assert_eq!((over.needed, over.available), (400, 300));
        a.written = 250; // the upload broke after 250 bytes
        drop(a);
        assert_eq!(account.usage(), Usage { used: 350, reserved: 0 });
        let b = account.reserve(650, quota).unwrap();
        assert!(account.reserve(1, quota).is_err());
        drop(b);
        account.adjust(-350);
        assert_eq!(account.usage().used, 0);
    }

    #[test]
    fn session_slots_are_counted_and_released() {
        let accounts = Arc::new(Accounts::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = accounts.enter_address(ip, 2).unwrap();
        let _b = accounts.enter_address(ip, 2).unwrap();
        assert!(accounts.enter_address(ip, 2).is_none());
        drop(a);
        assert!(accounts.enter_address(ip, 2).is_some());

        let u = accounts.enter_user("alice", 1).unwrap();
        assert!(accounts.enter_user("alice", 1).is_none());
        assert!(accounts.enter_user("bob", 1).is_some());
        drop(u);
        assert!(accounts.enter_user("alice", 1).is_some());
    }
}
