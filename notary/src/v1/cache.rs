//! Served Notary v1 documents, kept in memory for at most a second per collection (as the TUF 1.0 side's
//! `DocCache`): hot `timestamp.json` reads are a map lookup. Writes in this process drop the collection's entries;
//! other replicas' writes are seen within the TTL.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wharf_format::notary::Gun;

const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 20_000;

#[derive(Default)]
pub struct V1Cache {
    map: RwLock<HashMap<(Gun, String), (Bytes, Instant)>>,
}

impl V1Cache {
    pub fn get(&self, gun: &Gun, key: &str) -> Option<Bytes> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let (bytes, at) = map.get(&(gun.clone(), key.to_string()))?;
        (at.elapsed() < TTL).then(|| bytes.clone())
    }

    pub fn put(&self, gun: &Gun, key: String, bytes: Bytes) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert((gun.clone(), key), (bytes, Instant::now()));
    }

    pub fn invalidate(&self, gun: &Gun) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).retain(|(g, _), _| g != gun);
    }
}
