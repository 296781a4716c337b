//! Limits on password verification, so that guessing is slow and its cost bounded.
//!
//! - [`Throttle`]: failed logins lock out the (account, address) pair after `after` failures, and the address, for
//!   every account, after `address_after`; each further failure doubles the lock-out (from `base`, at most `max`).
//!   An attempt counts from the moment it starts: while attempts are under way, only as many more may start as
//!   failures are left before the lock-out, so concurrent guesses cannot outrun the count.
//! - [`Slots`]: how many verifications (Argon2id, 19 MiB each) may run at once per account, per address and in
//!   all. Beyond these an attempt is refused at once, never queued.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a lock-out or a bound applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, Option<IpAddr>),
    Account(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures of one account from one address before its lock-out.
    pub after: u32,
    /// Failures from one address, over all accounts, before the address's lock-out.
    pub address_after: u32,
    pub base: Duration,
    pub max: Duration,
}

pub struct Throttle {
    limits: Limits,
    map: Mutex<HashMap<Key, Strikes>>,
}

#[derive(Debug)]
struct Strikes {
    failures: u32,
    /// Attempts started and not yet settled.
    pending: u32,
    last: Instant,
    until: Option<Instant>,
}

const MAX_ENTRIES: usize = 100_000;

/// Seconds a caller is told to wait when the attempts under way already use up what is left before a lock-out, or
/// when every verification slot is taken.
pub const BUSY_RETRY_SECS: u64 = 1;

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle { limits, map: Mutex::new(HashMap::new()) }
    }

    fn keys(account: &str, addr: Option<IpAddr>) -> Vec<Key> {
        let mut k = vec![Key::Pair(account.to_owned(), addr)];
        k.extend(addr.map(Key::Address));
        k
    }

    fn threshold(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.limits.address_after,
            _ => self.limits.after,
        }
    }

    /// `Err(seconds)` while `account` is locked out from `addr`, or `addr` is.
    pub fn check(&self, account: &str, addr: Option<IpAddr>) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let wait = Throttle::keys(account, addr)
            .iter()
            .filter_map(|k| map.get(k).and_then(|s| s.until).filter(|u| *u > now).map(|u| u - now))
            .max();
        match wait {
            Some(w) => Err(w.as_secs_f64().ceil().max(1.0) as u64),
            None => Ok(()),
        }
    }

    /// Starts an attempt of `account` from `addr`, counted until it is settled; `Err(seconds)` if locked out, or if
    /// the attempts under way already reach the lock-out.
    pub fn begin(self: &Arc<Self>, account: &str, addr: Option<IpAddr>) -> Result<Attempt, u64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_ENTRIES {
            let max = self.limits.max;
            map.retain(|_, s| s.pending > 0 || now.duration_since(s.last) < max);
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, s| s.pending > 0);
            }
        }
        let keys = Throttle::keys(account, addr);
        let mut wait = None;
        for k in &keys {
            let Some(s) = map.get_mut(k) else { continue };
            if s.pending == 0 && now.duration_since(s.last) >= self.limits.max {
                (s.failures, s.until) = (0, None);
            }
            let refused = match s.until.filter(|u| *u > now) {
                Some(u) => Some((u - now).as_secs_f64().ceil().max(1.0) as u64),
                // After a lock-out ends, one attempt at a time until one succeeds or the next lock-out.
                None => (s.pending >= self.threshold(k).saturating_sub(s.failures).max(1)).then_some(BUSY_RETRY_SECS),
            };
            wait = wait.max(refused);
        }
        if let Some(w) = wait {
            return Err(w);
        }
        for k in &keys {
            map.entry(k.clone()).or_insert(Strikes { failures: 0, pending: 0, last: now, until: None }).pending += 1;
        }
        Ok(Attempt { throttle: Arc::clone(self), keys, settled: false })
    }

    fn settle(&self, keys: &[Key], outcome: Outcome) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for k in keys {
            let threshold = self.threshold(k);
            let s = map.entry(k.clone()).or_insert(Strikes { failures: 0, pending: 0, last: now, until: None });
            s.pending = s.pending.saturating_sub(1);
            match outcome {
                Outcome::Failed => {
                    s.failures = s.failures.saturating_add(1);
                    s.last = now;
                    if s.failures >= threshold {
                        let doublings = (s.failures - threshold).min(20);
                        s.until = Some(now + self.limits.base.saturating_mul(1u32 << doublings).min(self.limits.max));
                    }
                }
                // A success clears the pair, not the address: one valid account must not reset the count of
                // guesses at others.
                Outcome::Succeeded if matches!(k, Key::Pair(..)) => (s.failures, s.until) = (0, None),
                Outcome::Succeeded | Outcome::Void => {}
            }
            if s.pending == 0 && s.failures == 0 {
                map.remove(k);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Failed,
    Succeeded,
    Void,
}

/// An attempt under way. Dropped without being settled (the request went away mid-check), it counts as a failure.
pub struct Attempt {
    throttle: Arc<Throttle>,
    keys: Vec<Key>,
    settled: bool,
}

impl Attempt {
    pub fn fail(mut self) {
        self.settle(Outcome::Failed);
    }

    pub fn succeed(mut self) {
        self.settle(Outcome::Succeeded);
    }

    /// Not a guess after all: no secret was checked, or the right secret of an expired robot.
    pub fn void(mut self) {
        self.settle(Outcome::Void);
    }

    fn settle(&mut self, outcome: Outcome) {
        if !self.settled {
            self.settled = true;
            self.throttle.settle(&self.keys, outcome);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.settle(Outcome::Failed);
    }
}

/// Verification slots, taken without waiting.
pub struct Slots {
    per_account: u32,
    per_address: u32,
    total: u32,
    taken: Mutex<(u32, HashMap<Key, u32>)>,
}

/// A verification slot, released when dropped (move it into the blocking task that does the work).
pub struct Slot {
    slots: Arc<Slots>,
    keys: Vec<Key>,
}

impl Slots {
    pub fn new(per_account: u32, per_address: u32, total: u32) -> Slots {
        Slots { per_account, per_address, total, taken: Mutex::new((0, HashMap::new())) }
    }

    /// A slot for a verification of `account` from `addr`, if every bound has room.
    pub fn try_take(self: &Arc<Self>, account: &str, addr: Option<IpAddr>) -> Option<Slot> {
        let mut keys = vec![Key::Account(account.to_owned())];
        keys.extend(addr.map(Key::Address));
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let (total, map) = &mut *taken;
        let bound = |k: &Key| if matches!(k, Key::Address(_)) { self.per_address } else { self.per_account };
        if *total >= self.total || keys.iter().any(|k| map.get(k).copied().unwrap_or(0) >= bound(k)) {
            return None;
        }
        *total += 1;
        for k in &keys {
            *map.entry(k.clone()).or_insert(0) += 1;
        }
        Some(Slot { slots: Arc::clone(self), keys })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|p| p.into_inner());
        let (total, map) = &mut *taken;
        *total = total.saturating_sub(1);
        for k in &self.keys {
            if let Some(n) = map.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(after: u32, address_after: u32, base_ms: u64) -> Arc<Throttle> {
        let limits = Limits { after, address_after, base: Duration::from_millis(base_ms), max: Duration::from_secs(5) };
        Arc::new(Throttle::new(limits))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn attempts_count_when_they_start() {
        let t = throttle(3, 100, 200);
        let a = ip("10.0.0.1");
        // Three attempts under way use up what is left before the lock-out; a fourth is refused before any settles.
        let started: Vec<Attempt> = (0..3).map(|_| t.begin("u", a).unwrap()).collect();
        assert_eq!(t.begin("u", a).err(), Some(BUSY_RETRY_SECS));
        assert!(t.begin("v", a).is_ok(), "another account from the address");
        started.into_iter().for_each(Attempt::fail);
        assert!(t.check("u", a).is_err(), "locked after three failures");
        // A void attempt and a success give back their place; a dropped one counts as a failure.
        let t = throttle(2, 100, 200);
        t.begin("u", a).unwrap().void();
        t.begin("u", a).unwrap().succeed();
        drop(t.begin("u", a).unwrap());
        assert!(t.check("u", a).is_ok());
        t.begin("u", a).unwrap().fail();
        assert!(t.check("u", a).is_err());
    }

    #[test]
    fn lockouts_are_per_account_and_address_then_per_address() {
        let t = throttle(3, 5, 200);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..3 {
            t.begin("u", a).unwrap().fail();
        }
        assert!(t.check("u", a).is_err());
        assert!(t.check("u", b).is_ok(), "the account from an address that has not failed");
        assert!(t.check("v", a).is_ok(), "another account from the address, under the address bound");
        // Spraying accounts from one address locks the address for every account.
        for name in ["v", "w"] {
            t.begin(name, a).unwrap().fail();
        }
        assert!(t.check("x", a).is_err());
        assert!(t.check("x", b).is_ok());
        // The lock-out ends; after it, one attempt at a time, and a further failure doubles it.
        std::thread::sleep(Duration::from_millis(250));
        let one = t.begin("u", b).unwrap();
        let first = t.begin("u", a).unwrap();
        assert_eq!(t.begin("u", a).err(), Some(BUSY_RETRY_SECS));
        first.fail();
        one.succeed();
        assert_eq!(t.check("u", a), Err(1));
    }

    #[test]
    fn slots_bound_per_account_per_address_and_in_all() {
        let s = Arc::new(Slots::new(2, 2, 3));
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let one = s.try_take("u", a).unwrap();
        let _two = s.try_take("u", b).unwrap();
        assert!(s.try_take("u", c).is_none(), "per account");
        let _three = s.try_take("v", a).unwrap();
        assert!(s.try_take("w", a).is_none(), "per address");
        assert!(s.try_take("w", c).is_none(), "in all");
        drop(one);
        assert!(s.try_take("w", c).is_some());
    }
}
