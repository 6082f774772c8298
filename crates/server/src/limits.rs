//! How many sessions each address and each user has open, and how many
//! connections each address has waiting to log in: the limits checked
//! before a connection is served and at login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Per-address counts of sessions and of connections not logged in yet,
/// and per-user counts of sessions.
#[derive(Debug, Default)]
pub struct Limits {
    users: Mutex<HashMap<String, usize>>,
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
    limits: Arc<Limits>,
    ip: IpAddr,
    kind: SlotKind,
}

/// Holds one session slot of a user; released on drop.
#[derive(Debug)]
pub struct UserSlot {
    limits: Arc<Limits>,
    user: String,
}

impl Limits {
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
        Some(AddressSlot { limits: self.clone(), ip, kind })
    }

    /// Takes a session slot for `user`, unless they already have `max`.
    pub fn enter_user(self: &Arc<Self>, user: &str, max: usize) -> Option<UserSlot> {
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(user.to_owned()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(UserSlot { limits: self.clone(), user: user.to_owned() })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.limits.counts(self.kind);
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
        let mut map = self.limits.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_slots_are_counted_and_released() {
        let limits = Arc::new(Limits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limits.enter_address(ip, 2).unwrap();
        let _b = limits.enter_address(ip, 2).unwrap();
        assert!(limits.enter_address(ip, 2).is_none());
        drop(a);
        assert!(limits.enter_address(ip, 2).is_some());

        let u = limits.enter_user("alice", 1).unwrap();
        assert!(limits.enter_user("alice", 1).is_none());
        assert!(limits.enter_user("bob", 1).is_some());
        drop(u);
        assert!(limits.enter_user("alice", 1).is_some());
    }
}
