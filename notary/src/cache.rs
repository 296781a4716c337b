//! A small in-process cache of served metadata documents, one per service (keyed by repository for TUF 1.0, by GUN
//! for Notary v1), so that hot `timestamp.json` and `N.targets.json` reads are a map lookup and a
//! reference-counted buffer, not SQL queries and a copy.
//!
//! Entries live at most `TTL`: with several notary replicas on one database, a replica serves another's publish
//! within that time (clients judge freshness by expiry, which is hours away). In this process, publishing, renewing
//! and deleting drop the repository's entries at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 20_000;

/// Documents by (scope, key): the scope is what a write invalidates (a repository or a GUN), the key names the
/// document within it (such as `timestamp` or `3.root`).
pub struct DocCache<S> {
    map: RwLock<HashMap<(S, String), (Bytes, Instant)>>,
}

impl<S> Default for DocCache<S> {
    fn default() -> Self {
        DocCache { map: RwLock::default() }
    }
}

impl<S: Hash + Eq + Clone> DocCache<S> {
    pub fn get(&self, scope: &S, key: &str) -> Option<Bytes> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        // Building the key clones two short strings; cheaper than the SQL it saves.
        let (bytes, at) = map.get(&(scope.clone(), key.to_string()))?;
        (at.elapsed() < TTL).then(|| bytes.clone())
    }

    pub fn put(&self, scope: &S, key: String, bytes: Bytes) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert((scope.clone(), key), (bytes, Instant::now()));
    }

    /// Forgets everything about `scope`.
    pub fn invalidate(&self, scope: &S) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).retain(|(s, _), _| s != scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped() {
        let c: DocCache<String> = DocCache::default();
        let (a, b) = ("a".to_string(), "b".to_string());
        c.put(&a, "timestamp".into(), Bytes::from_static(b"1"));
        c.put(&b, "timestamp".into(), Bytes::from_static(b"2"));
        assert_eq!(c.get(&a, "timestamp").as_deref(), Some(&b"1"[..]));
        assert_eq!(c.get(&a, "root"), None);
        c.invalidate(&a);
        assert_eq!(c.get(&a, "timestamp"), None);
        assert_eq!(c.get(&b, "timestamp").as_deref(), Some(&b"2"[..]));
    }
}
