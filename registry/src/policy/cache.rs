//! Verdicts kept between requests, so that a warm read of a protected tag costs a map lookup, not a trust workflow.
//!
//! A verdict is keyed by repository, tag (none for a read by digest) and digest, and is valid while three things
//! hold: the repository's epoch is the one it was decided at (this process bumps it whenever it writes something a
//! verdict reads: a manifest or tag, a referrer, a cosign signature tag, TUF or Notary v1 metadata), the policy is
//! the one it was decided under (the policy's version is part of the entry), and it is younger than [`MAX_AGE`].
//! The age bound covers what this process does not see: another replica's writes, `wharf admin`, metadata or
//! certificates expiring. The maps are bounded: when one is full it is emptied, which only costs recomputation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_format::{Digest, RepositoryName, Tag};

/// How long a verdict is trusted without recomputation.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// The most verdicts and repository epochs kept.
const MAX_ENTRIES: usize = 50_000;

/// What a protected read or push was told: allowed, or refused with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub message: String,
}

type Key = (RepositoryName, Option<Tag>, Digest);

struct Entry {
    epoch: u64,
    policy: u64,
    at: Instant,
    decision: Arc<Decision>,
}

#[derive(Default)]
struct Epochs {
    by_repo: HashMap<RepositoryName, u64>,
    /// Added to every repository's epoch: raised past every epoch so far when the map is emptied.
    base: u64,
}

/// The verdict cache and the repositories' epochs.
#[derive(Default)]
pub struct VerdictCache {
    entries: Mutex<HashMap<Key, Entry>>,
    epochs: Mutex<Epochs>,
}

impl VerdictCache {
    /// The current epoch of `repo`.
    pub fn epoch(&self, repo: &RepositoryName) -> u64 {
        let e = lock(&self.epochs);
        e.base + e.by_repo.get(repo).copied().unwrap_or(0)
    }

    /// Records that something a verdict for `repo` reads has changed: its verdicts are recomputed.
    pub fn touch(&self, repo: &RepositoryName) {
        let mut e = lock(&self.epochs);
        if e.by_repo.len() >= MAX_ENTRIES && !e.by_repo.contains_key(repo) {
            // Past every epoch handed out so far, so that no kept entry matches a repository's epoch again.
            let top = e.by_repo.values().max().copied().unwrap_or(0);
            e.base += top + 1;
            e.by_repo.clear();
        }
        *e.by_repo.entry(repo.clone()).or_insert(0) += 1;
    }

    /// A verdict still valid for `(repo, tag, digest)` under policy version `policy`.
    pub fn get(&self, repo: &RepositoryName, tag: Option<&Tag>, digest: &Digest, policy: u64) -> Option<Arc<Decision>> {
        let epoch = self.epoch(repo);
        let key = (repo.clone(), tag.cloned(), digest.clone());
        let entries = lock(&self.entries);
        let e = entries.get(&key)?;
        (e.epoch == epoch && e.policy == policy && e.at.elapsed() < MAX_AGE).then(|| Arc::clone(&e.decision))
    }

    /// Keeps a verdict decided at `epoch` (read with [`VerdictCache::epoch`] before the evidence was gathered, so
    /// that a write during the decision leaves the entry stale rather than wrong).
    pub fn put(&self, key: (RepositoryName, Option<Tag>, Digest), epoch: u64, policy: u64, decision: Arc<Decision>) {
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Entry { epoch, policy, at: Instant::now(), decision });
    }
}

/// A poisoned lock only means another request panicked while holding it; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(allowed: bool) -> Arc<Decision> {
        Arc::new(Decision { allowed, message: String::new() })
    }

    #[test]
    fn an_entry_lives_until_its_repository_or_policy_changes() {
        let c = VerdictCache::default();
        let (repo, other): (RepositoryName, RepositoryName) = ("team/app".parse().unwrap(), "team/b".parse().unwrap());
        let tag: Tag = "v1".parse().unwrap();
        let digest = Digest::sha256_of(b"m");
        let key = (repo.clone(), Some(tag.clone()), digest.clone());
        c.put(key.clone(), c.epoch(&repo), 7, d(true));
        assert_eq!(c.get(&repo, Some(&tag), &digest, 7).map(|x| x.allowed), Some(true));
        assert!(c.get(&repo, None, &digest, 7).is_none(), "a read by digest is another key");
        assert!(c.get(&repo, Some(&tag), &digest, 8).is_none(), "another policy version");
        c.touch(&other);
        assert!(c.get(&repo, Some(&tag), &digest, 7).is_some(), "another repository's write");
        c.touch(&repo);
        assert!(c.get(&repo, Some(&tag), &digest, 7).is_none(), "this repository's write");
        // Decided before a write that landed during the decision: stale at once.
        let before = c.epoch(&repo);
        c.touch(&repo);
        c.put(key, before, 7, d(false));
        assert!(c.get(&repo, Some(&tag), &digest, 7).is_none());
    }
}
