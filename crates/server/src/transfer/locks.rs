//! One change at a time to each path of a user: measuring the file a
//! removal, rename or upload replaces and replacing it are one step for
//! the quota, so two sessions can't count the same bytes twice. Only the
//! paths involved wait; the user's other operations go on.

use ftp_proto::RemotePath;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OwnedMutexGuard;

/// The lock of one user's path.
type Lock = tokio::sync::Mutex<()>;

/// Locks by user and path, alive while someone holds or waits for them.
#[derive(Debug, Default)]
pub struct PathLocks {
    map: Mutex<HashMap<(String, String), Weak<Lock>>>,
}

/// Map entries past which dead ones are cleared on the next lock.
const TIDY_AT: usize = 1024;

impl PathLocks {
    /// Locks `paths` of `user`, in a fixed order so that two callers
    /// locking overlapping sets can't deadlock.
    pub async fn lock(&self, user: &str, paths: &[&RemotePath]) -> Vec<OwnedMutexGuard<()>> {
        let mut keys: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        keys.sort();
        keys.dedup();
        let locks: Vec<_> = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= TIDY_AT {
                map.retain(|_, weak| weak.strong_count() > 0);
            }
            keys.into_iter()
                .map(|key| {
                    let slot = map.entry((user.to_owned(), key)).or_default();
                    slot.upgrade().unwrap_or_else(|| {
                        let lock = Arc::new(Lock::new(()));
                        *slot = Arc::downgrade(&lock);
                        lock
                    })
                })
                .collect()
        };
        let mut guards = Vec::with_capacity(locks.len());
        for lock in locks {
            guards.push(lock.lock_owned().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RemotePath {
        RemotePath::resolve(&RemotePath::root(), s).unwrap()
    }

    #[tokio::test]
    async fn a_path_is_changed_by_one_at_a_time_and_others_go_on() {
        let locks = Arc::new(PathLocks::default());
        let (a, b) = (p("a"), p("b"));
        let held = locks.lock("u", &[&a]).await;
        // Another path, or another user's same path: no wait.
        drop(locks.lock("u", &[&b]).await);
        drop(locks.lock("v", &[&a]).await);
        let waiting = {
            let locks = locks.clone();
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move { drop(locks.lock("u", &[&b, &a]).await) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits for the path held");
        drop(held);
        waiting.await.unwrap();
    }
}
