//! A small in-process cache of served metadata documents, so that hot `timestamp.json` and `N.targets.json` reads
//! are a map lookup and a reference-counted buffer, not two SQL queries and a copy.
//!
//! Entries live at most `TTL`: with several notary replicas on one database, a replica serves another's publish
//! within that time (clients judge freshness by expiry, which is hours away). In this process, publishing, renewing
//! and deleting drop the repository's entries at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wharf_format::RepositoryName;

const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 20_000;

/// (repository, role, version; `None` for the newest).
type Key = (RepositoryName, String, Option<u64>);

#[derive(Default)]
pub struct DocCache {
    map: RwLock<HashMap<Key, (Bytes, Instant)>>,
}

impl DocCache {
    pub fn get(&self, repo: &RepositoryName, role: &str, version: Option<u64>) -> Option<Bytes> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        // Building the key clones two short strings; cheaper than the SQL it saves.
        let (bytes, at) = map.get(&(repo.clone(), role.to_string(), version))?;
        (at.elapsed() < TTL).then(|| bytes.clone())
    }

    pub fn put(&self, repo: &RepositoryName, role: &str, version: Option<u64>, bytes: Bytes) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert((repo.clone(), role.to_string(), version), (bytes, Instant::now()));
    }

    /// Forgets everything about `repo`.
    pub fn invalidate(&self, repo: &RepositoryName) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|(r, _, _), _| r != repo);
    }
}
