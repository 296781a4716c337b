//! Token buckets as the generic cell rate algorithm (GCRA): a bucket is one number, its theoretical arrival time
//! (`tat`, nanoseconds), the moment it would be full again. A bucket whose `tat` is not after `now` is full, so an
//! idle bucket can be forgotten without changing any decision. Pure: the caller passes the time.
//!
//! A decision asks for `need` and charges `cost` (both in nanoseconds of the bucket's rate): a request needs and
//! costs one interval; a blob pull needs any credit at all (1 ns) and costs its size, so the bucket may go into
//! debt and the next pull waits it out.

use std::collections::HashMap;
use std::hash::Hash;

/// The most nanoseconds one charge or one burst may stand for (about 31 years): sums with a time stay in `i64`.
pub const MAX_NS: i64 = 1_000_000_000_000_000_000;

/// A rate in nanoseconds: the interval of one unit and the burst's span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Nanoseconds per unit (a request, a byte).
    pub interval: f64,
    /// Nanoseconds of credit a full bucket holds.
    pub burst: i64,
}

impl Cell {
    pub fn new(per_sec: f64, burst: f64) -> Cell {
        // Whole nanoseconds when a unit takes at least one, so that `burst` units cost exactly the burst.
        let interval = 1e9 / per_sec;
        let interval = if interval >= 1.0 { interval.ceil() } else { interval };
        Cell { interval, burst: clamp(burst * interval) }
    }

    /// The nanoseconds `units` cost.
    pub fn cost(&self, units: u64) -> i64 {
        clamp((units as f64 * self.interval).ceil())
    }
}

fn clamp(ns: f64) -> i64 {
    // A float cast saturates; NaN (not reachable from validated settings) becomes 0.
    (ns as i64).clamp(0, MAX_NS)
}

/// A decision: the bucket's new `tat`, or how long to wait before asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow { tat: i64 },
    Wait { ns: i64 },
}

/// Decides on a bucket at `tat` at time `now`.
pub fn decide(tat: i64, now: i64, need: i64, cost: i64, burst: i64) -> Decision {
    let base = tat.max(now);
    let after = base.saturating_add(need);
    let over = after.saturating_sub(now).saturating_sub(burst);
    if over <= 0 {
        Decision::Allow { tat: base.saturating_add(cost) }
    } else {
        Decision::Wait { ns: over }
    }
}

/// Whole seconds to wait, rounded up, at least one: the `Retry-After` of a refusal.
pub fn retry_after_secs(wait_ns: i64) -> u64 {
    (wait_ns.max(1) as u64).div_ceil(1_000_000_000)
}

/// Buckets in memory, at most `max`. When full, idle buckets go; if most are still busy (many clients at once, or
/// an attacker cycling addresses), those with the least debt go too, down to three quarters, so that the next sweep
/// is at least a quarter of `max` insertions away: each insertion costs O(1) amortized, however the keys are chosen.
pub struct Table<K> {
    map: HashMap<K, i64>,
    max: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    pub fn new(max: usize) -> Table<K> {
        Table { map: HashMap::new(), max: max.max(4) }
    }

    /// The bucket's `tat` (a missing bucket is full: 0).
    pub fn tat(&self, key: &K) -> i64 {
        self.map.get(key).copied().unwrap_or(0)
    }

    /// Decides and, when allowed, charges.
    pub fn take(&mut self, key: &K, now: i64, need: i64, cost: i64, burst: i64) -> Decision {
        let d = decide(self.tat(key), now, need, cost, burst);
        if let Decision::Allow { tat } = d {
            self.set(key, tat, now);
        }
        d
    }

    /// Sets a bucket's `tat` (one not after `now` is full, and is dropped).
    pub fn set(&mut self, key: &K, tat: i64, now: i64) {
        if tat <= now {
            self.map.remove(key);
            return;
        }
        if !self.map.contains_key(key) && self.map.len() >= self.max {
            self.sweep(now);
        }
        self.map.insert(key.clone(), tat);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn sweep(&mut self, now: i64) {
        self.map.retain(|_, tat| *tat > now);
        let keep = self.max / 4 * 3;
        if self.map.len() <= keep {
            return;
        }
        let mut tats: Vec<i64> = self.map.values().copied().collect();
        // The `keep`-th largest debt: buckets below it go.
        let nth = tats.len() - keep;
        let (_, cut, _) = tats.select_nth_unstable(nth);
        let cut = *cut;
        self.map.retain(|_, tat| *tat >= cut);
        // Ties at the cut may leave a few more than `keep`; never more than `max`.
        if self.map.len() > keep {
            let extra: Vec<K> = self.map.iter().filter(|(_, t)| **t == cut).map(|(k, _)| k.clone()).collect();
            for k in extra.into_iter().take(self.map.len() - keep) {
                self.map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    /// One row: a bucket at `tat`, asked at `now` for (need, cost) with this burst, decides `want`.
    fn check(tat: i64, now: i64, need: i64, cost: i64, burst: i64, want: Decision) {
        assert_eq!(decide(tat, now, need, cost, burst), want, "tat {tat} now {now} need {need} cost {cost}");
    }

    #[test]
    fn decisions() {
        // A full bucket (1 request per second, burst 2) lets one in and moves one interval.
        check(0, 10 * S, S, S, 2 * S, Decision::Allow { tat: 11 * S });
        // The second of the burst passes; the third waits one interval.
        check(11 * S, 10 * S, S, S, 2 * S, Decision::Allow { tat: 12 * S });
        check(12 * S, 10 * S, S, S, 2 * S, Decision::Wait { ns: S });
        // Half a second later it waits half a second.
        check(12 * S, 10 * S + S / 2, S, S, 2 * S, Decision::Wait { ns: S / 2 });
        // A pull needs any credit and may go into debt by its whole size.
        check(0, 10 * S, 1, 30 * S, S, Decision::Allow { tat: 40 * S });
        // In debt, the next pull waits until the bucket holds credit again (1 ns past the debt).
        check(40 * S, 10 * S, 1, S, S, Decision::Wait { ns: 29 * S + 1 });
        check(40 * S, 39 * S, 1, S, S, Decision::Wait { ns: 1 });
        check(40 * S, 39 * S + 1, 1, S, S, Decision::Allow { tat: 41 * S });
    }

    #[test]
    fn retry_after_rounds_up() {
        for (ns, secs) in [(0, 1), (1, 1), (S, 1), (S + 1, 2), (29 * S + 1, 30)] {
            assert_eq!(retry_after_secs(ns), secs, "{ns}");
        }
    }

    #[test]
    fn cells_clamp() {
        let c = Cell::new(1.0, 1.0);
        assert_eq!((c.burst, c.cost(1)), (S, S));
        assert_eq!(Cell::new(1e-9, 1e30).burst, MAX_NS);
        assert_eq!(Cell::new(1.0, 1.0).cost(u64::MAX), MAX_NS);
        // Three a second, burst three: three requests fit the burst exactly.
        let c = Cell::new(3.0, 3.0);
        assert_eq!(c.cost(1) * 3, c.burst);
    }

    #[test]
    fn the_table_stays_bounded_whatever_the_keys() {
        let mut t = Table::new(100);
        // An attacker cycling keys, each bucket busy for a long time: never more than `max`.
        for k in 0..10_000u32 {
            t.take(&k, 0, S, S, 10 * S);
            assert!(t.len() <= 100);
        }
        // The most indebted buckets stay: a busy key keeps its debt through the sweeps.
        let mut t = Table::new(100);
        for _ in 0..5 {
            t.take(&u32::MAX, 0, S, S, 10 * S);
        }
        for k in 0..1_000u32 {
            t.take(&k, 0, S, S, 10 * S);
        }
        assert_eq!(t.tat(&u32::MAX), 5 * S);
        // Idle buckets are dropped, not kept.
        t.take(&7, 0, S, S, 10 * S);
        t.set(&7, 0, 100 * S);
        assert_eq!(t.tat(&7), 0);
    }
}
