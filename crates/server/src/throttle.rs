//! Failed-login throttling, per client address and per user name.
//!
//! Every failed login is answered only after a delay that doubles with each
//! recent failure of that address or that user name (0.25 s, 0.5 s, 1 s, ...
//! up to 8 s), so guessing is slow even across many connections. An
//! address with `block_after` recent failures is blocked for `block_for`: its
//! new connections are refused at once. A user name with `4 × block_after`
//! recent failures (from anywhere) is blocked for `block_for` too, except
//! from addresses that have logged in as that user before (remembered in
//! `<root>/.ftpd/trusted-addresses`, so across restarts): an attacker can
//! slow a user down but can't lock them out of the places they use. A
//! successful login is never delayed; it does not clear its address's
//! failures (or one account could launder guesses at others). Failures are
//! forgotten after `block_for` without a new one. Names that can't be user
//! names are all counted under one record, so a flood of made-up names
//! can't grow the tables.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest delay before a failure is answered.
const MAX_DELAY: Duration = Duration::from_secs(8);
/// First delay.
const BASE_DELAY: Duration = Duration::from_millis(250);
/// Most records kept per kind; the oldest are dropped beyond it, so a flood
/// of addresses or names can't exhaust memory.
const MAX_RECORDS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Login throttling state, shared by all sessions.
#[derive(Debug)]
pub struct Throttle {
    block_after: u32,
    block_for: Duration,
    state: Mutex<State>,
    /// Where trusted addresses are remembered, if anywhere.
    trusted_file: Option<std::path::PathBuf>,
}

/// The record all invalid user names share.
const INVALID_NAME: &str = "\0invalid";

fn key(user: &str) -> &str {
    if crate::users::validate_user_name(user).is_ok() { user } else { INVALID_NAME }
}

#[derive(Debug, Default)]
struct State {
    addresses: HashMap<IpAddr, Record>,
    users: HashMap<String, Record>,
    /// Addresses each user has logged in from.
    trusted: HashMap<String, Vec<IpAddr>>,
}

/// Why a login attempt is not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// This address failed too often.
    Address(Duration),
    /// This user name failed too often (and this address is not one the
    /// user logged in from before).
    User(Duration),
}

impl Throttle {
    /// Blocks an address after `block_after` recent failures, for `block_for`.
    pub fn new(block_after: u32, block_for: Duration) -> Throttle {
        Throttle { block_after: block_after.max(1), block_for, state: Mutex::default(), trusted_file: None }
    }

    /// Remembers trusted addresses in `file` (one `user address` a line),
    /// loading those already there.
    pub fn with_trusted_file(mut self, file: std::path::PathBuf) -> Throttle {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut state = self.state();
            for line in text.lines() {
                let Some((user, ip)) = line.split_once(' ') else { continue };
                let Ok(ip) = ip.trim().parse::<IpAddr>() else { continue };
                if crate::users::validate_user_name(user).is_ok() {
                    trust(&mut state, user, ip);
                }
            }
        }
        self.trusted_file = Some(file);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether new connections from `ip` are refused, and for how long.
    pub fn address_blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let state = self.state();
        remaining(state.addresses.get(&ip), now)
    }

    /// Whether a login as `user` from `ip` may be tried now.
    pub fn check(&self, ip: IpAddr, user: &str, now: Instant) -> Result<(), Blocked> {
        let state = self.state();
        if let Some(left) = remaining(state.addresses.get(&ip), now) {
            return Err(Blocked::Address(left));
        }
        let user = key(user);
        let trusted = state.trusted.get(user).is_some_and(|ips| ips.contains(&ip));
        match remaining(state.users.get(user), now) {
            Some(left) if !trusted => Err(Blocked::User(left)),
            _ => Ok(()),
        }
    }

    /// Records a failed login; returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr, user: &str, now: Instant) -> Duration {
        let (block_after, block_for) = (self.block_after, self.block_for);
        let mut state = self.state();
        let a = bump(&mut state.addresses, ip, now, block_for, block_after);
        let u = bump(&mut state.users, key(user).to_owned(), now, block_for, block_after.saturating_mul(4));
        let n = a.max(u).min(16);
        BASE_DELAY.saturating_mul(1 << (n - 1)).min(MAX_DELAY)
    }

    /// Records a successful login: the address becomes trusted for this user.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        let added = trust(&mut self.state(), user, ip);
        if let (true, Some(file)) = (added, &self.trusted_file) {
            use std::io::Write;
            let line = format!("{user} {ip}\n");
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = appended {
                tracing::warn!(file = %file.display(), error = %e, "cannot remember a trusted address");
            }
        }
    }
}

/// Adds `ip` to the user's trusted addresses (at most 16, newest kept).
/// Returns whether it was new.
fn trust(state: &mut State, user: &str, ip: IpAddr) -> bool {
    if !state.trusted.contains_key(user) && state.trusted.len() >= MAX_RECORDS {
        return false;
    }
    let ips = state.trusted.entry(user.to_owned()).or_default();
    if ips.contains(&ip) {
        return false;
    }
    if ips.len() >= 16 {
        ips.remove(0);
    }
    ips.push(ip);
    true
}

fn remaining(record: Option<&Record>, now: Instant) -> Option<Duration> {
    record.and_then(|r| r.blocked_until).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero())
}

/// Counts a failure for `key`; blocks it at `block_after`. Returns the
/// recent failure count.
fn bump<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Record>,
    key: K,
    now: Instant,
    forget_after: Duration,
    block_after: u32,
) -> u32 {
    if map.len() >= MAX_RECORDS && !map.contains_key(&key) {
        // Forget expired records first; if none, the oldest.
        map.retain(|_, r| now.duration_since(r.last) < forget_after);
        if map.len() >= MAX_RECORDS {
            let oldest = map.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
    }
    let record = map.entry(key).or_insert(Record { failures: 0, last: now, blocked_until: None });
    if now.duration_since(record.last) >= forget_after && remaining(Some(record), now).is_none() {
        *record = Record { failures: 0, last: now, blocked_until: None };
    }
    record.failures += 1;
    record.last = now;
    if record.failures >= block_after {
        record.blocked_until = Some(now + forget_after);
    }
    record.failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn delays_grow_then_the_address_is_blocked_for_a_while() {
        let t = Throttle::new(5, Duration::from_secs(300));
        let now = Instant::now();
        let delays: Vec<_> = (0..5).map(|_| t.failed(ip(1), "alice", now)).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(t.check(ip(1), "alice", now), Err(Blocked::Address(Duration::from_secs(300))));
        assert!(t.address_blocked(ip(1), now).is_some());
        // Another address is not affected, and the block ends.
        assert_eq!(t.check(ip(2), "alice", now), Ok(()));
        assert_eq!(t.check(ip(1), "alice", now + Duration::from_secs(301)), Ok(()));
    }

    #[test]
    fn a_user_under_attack_can_still_log_in_from_a_known_address() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.succeeded(ip(9), "alice");
        // Failures for alice from many addresses.
        for i in 0..8 {
            t.failed(ip(100 + i), "alice", now);
        }
        assert!(matches!(t.check(ip(50), "alice", now), Err(Blocked::User(_))));
        assert_eq!(t.check(ip(9), "alice", now), Ok(()), "her usual address is not locked out");
        assert_eq!(t.check(ip(50), "bob", now), Ok(()));
        assert_eq!(t.check(ip(50), "alice", now + Duration::from_secs(61)), Ok(()), "temporary");
    }

    #[test]
    fn success_does_not_launder_failures_and_records_are_bounded() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        t.failed(ip(1), "victim", now);
        t.failed(ip(1), "victim", now);
        t.succeeded(ip(1), "attacker");
        t.failed(ip(1), "victim", now);
        assert!(matches!(t.check(ip(1), "victim", now), Err(Blocked::Address(_))), "one account can't reset the count");
        for i in 0..(MAX_RECORDS as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), "x", now);
        }
        assert!(t.state().addresses.len() <= MAX_RECORDS);
        // Made-up names share one record.
        for i in 0..1000 {
            t.failed(ip(2), &format!("../name-{i}"), now);
        }
        assert!(t.state().users.len() <= 3);
    }

    #[test]
    fn trusted_addresses_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trusted");
        let t = Throttle::new(1, Duration::from_secs(60)).with_trusted_file(file.clone());
        t.succeeded(ip(9), "alice");
        t.succeeded(ip(9), "alice");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "alice 10.0.0.9\n");
        let t = Throttle::new(1, Duration::from_secs(60)).with_trusted_file(file);
        let now = Instant::now();
        for i in 0..8 {
            t.failed(ip(100 + i), "alice", now);
        }
        assert_eq!(t.check(ip(9), "alice", now), Ok(()));
    }
}
