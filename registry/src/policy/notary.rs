//! A repository's Notary v1 collections as a policy finding, verified by the pure `TrustedCollection` as a pull
//! verifies them: the collection's current root (what a first-use client trusts), its timestamp, the snapshot and
//! targets roles by the hashes the level above lists (no mix and match), and docker's search order for each name
//! (`targets/releases` first, then `targets`). A repository may be signed under several GUNs (one per registry
//! host name clients used); every collection that names it is verified, and any failure fails the finding.

use std::future::Future;

use base64::Engine as _;
use wharf_format::notary::{
    check_threshold, parent_of, FileMeta, Gun, RoleKeys, Signed, TrustedCollection, MAX_VISITED,
};
use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::Digest;

/// The most collections looked at for one repository.
pub const MAX_COLLECTIONS: i64 = 8;
/// The largest metadata document read.
const MAX_DOCUMENT: usize = 16 << 20;
/// The most names a read by digest looks up.
const MAX_NAMES: usize = 64;

/// Where stored (or fetched) Notary v1 metadata comes from. `Err`: the store failed.
pub trait NotaryDocuments: Sync {
    /// The collections that sign the repository.
    fn guns(&self) -> impl Future<Output = Result<Vec<Gun>, String>> + Send;
    /// The current version of `role` in `gun`'s collection.
    fn current(&self, gun: &Gun, role: &str) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
    /// The version of `role` whose bytes hash to `sha256` (lowercase hex).
    fn by_hash(
        &self,
        gun: &Gun,
        role: &str,
        sha256: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
}

/// The subject's tag (or, by digest, every name signed for its digest) in every collection of the repository.
pub async fn finding<D: NotaryDocuments>(docs: &D, s: &Subject, now: i64) -> TrustFinding {
    let guns = match docs.guns().await {
        Ok(g) => g,
        Err(why) => return TrustFinding::Failed(why),
    };
    let mut all = Vec::new();
    let mut any = false;
    for gun in guns {
        match collection(docs, &gun, s, now).await {
            Ok(Some(found)) => {
                any = true;
                all.extend(found);
            }
            Ok(None) => {}
            Err(why) => return TrustFinding::Failed(format!("collection {gun}: {why}")),
        }
    }
    if any {
        TrustFinding::Signed(all)
    } else {
        TrustFinding::NoData
    }
}

async fn collection<D: NotaryDocuments>(
    docs: &D,
    gun: &Gun,
    s: &Subject,
    now: i64,
) -> Result<Option<Vec<SignedTag>>, String> {
    let Some(root) = docs.current(gun, "root").await? else { return Ok(None) };
    let mut c = TrustedCollection::new(&bounded(root)?, gun.as_str(), now).map_err(text)?;
    let ts = docs.current(gun, "timestamp").await?.ok_or("no timestamp is stored")?;
    c.update_timestamp(&bounded(ts)?, None).map_err(text)?;
    let meta = c.snapshot_meta().map_err(text)?.clone();
    let snap = by_meta(docs, gun, "snapshot", &meta).await?;
    c.update_snapshot(&snap, None).map_err(text)?;
    let mut v = Collection { docs, gun, c, loaded: Default::default() };
    v.load("targets").await?;
    let names = match &s.tag {
        Some(tag) => vec![tag.as_str().to_string()],
        None => v.names_for(&s.digest).await?,
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(found) = v.find(&name).await? {
            out.push(found);
        }
    }
    Ok(Some(out))
}

struct Collection<'a, D> {
    docs: &'a D,
    gun: &'a Gun,
    c: TrustedCollection,
    loaded: std::collections::BTreeMap<String, Signed>,
}

impl<D: NotaryDocuments> Collection<'_, D> {
    /// docker's search for `name`, loading roles as it asks for them (at most [`MAX_VISITED`]).
    async fn find(&mut self, name: &str) -> Result<Option<SignedTag>, String> {
        let mut loads = 0;
        let found = loop {
            match self.c.find(name) {
                Ok(f) => break f,
                Err(Some(role)) if loads < MAX_VISITED => {
                    loads += 1;
                    self.load(&role).await?;
                }
                Err(_) => return Ok(None),
            }
        };
        let sha = found.meta.hashes.get("sha256").ok_or_else(|| format!("{}: {name:?} has no sha256", found.role))?;
        let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| "a sha256 is not base64")?;
        let digest: Digest = format!("sha256:{}", hex::encode(raw)).parse().map_err(|_| "a sha256 is not 32 bytes")?;
        let keys = self.verified_keys(&found.role);
        Ok(Some(SignedTag { tag: name.into(), digest, role: found.role, keys }))
    }

    /// Every name a published role lists for `digest` (all roles loaded, breadth first, bounded).
    async fn names_for(&mut self, digest: &Digest) -> Result<Vec<String>, String> {
        // Notary lists SHA-256 hashes only: a digest of another algorithm is signed under no name.
        let Ok(raw) = hex::decode(digest.hex()) else { return Ok(vec![]) };
        let want = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut queue = vec!["targets".to_string()];
        let mut names = Vec::new();
        let mut visited = 0;
        while let Some(role) = queue.pop() {
            visited += 1;
            if visited > MAX_VISITED {
                break;
            }
            if self.c.targets(&role).is_none() {
                if self.c.role_meta(&role).is_none() {
                    continue;
                }
                self.load(&role).await?;
            }
            let Some(t) = self.c.targets(&role) else { continue };
            names.extend(
                t.targets.iter().filter(|(_, m)| m.hashes.get("sha256") == Some(&want)).map(|(n, _)| n.clone()),
            );
            queue.extend(t.delegations.roles.iter().map(|d| d.name.clone()));
        }
        names.sort();
        names.dedup();
        names.truncate(MAX_NAMES);
        Ok(names)
    }

    async fn load(&mut self, role: &str) -> Result<(), String> {
        let meta = self.c.role_meta(role).ok_or_else(|| format!("snapshot does not list {role}"))?.clone();
        let bytes = by_meta(self.docs, self.gun, role, &meta).await?;
        self.c.update_targets(role, &bytes).map_err(text)?;
        if let Ok(doc) = Signed::parse(&bytes) {
            self.loaded.insert(role.into(), doc);
        }
        Ok(())
    }

    /// The key IDs whose signatures on `role` verify, among those its delegator gives it (each checked alone by the
    /// shared threshold check).
    fn verified_keys(&self, role: &str) -> Vec<String> {
        let Some(doc) = self.loaded.get(role) else { return vec![] };
        let (keys, ids) = match parent_of(role) {
            None => {
                let r = self.c.root();
                (&r.keys, r.roles.get("targets").map(|k| k.keyids.clone()).unwrap_or_default())
            }
            Some(parent) => match self.c.targets(parent) {
                Some(p) => {
                    let ids = p.delegations.roles.iter().find(|d| d.name == role).map(|d| d.keyids.clone());
                    (&p.delegations.keys, ids.unwrap_or_default())
                }
                None => return vec![],
            },
        };
        ids.into_iter()
            .filter(|id| check_threshold(role, doc, keys, &RoleKeys { keyids: vec![id.clone()], threshold: 1 }).is_ok())
            .collect()
    }
}

/// A role by the SHA-256 its meta names (Notary's consistent names are by hash), within the signed length.
async fn by_meta<D: NotaryDocuments>(docs: &D, gun: &Gun, role: &str, meta: &FileMeta) -> Result<Vec<u8>, String> {
    let sha = meta.hashes.get("sha256").ok_or_else(|| format!("no sha256 for {role}"))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| format!("bad sha256 for {role}"))?;
    let bytes = docs
        .by_hash(gun, role, &hex::encode(raw))
        .await?
        .ok_or_else(|| format!("{role} as the level above lists it is not stored (inconsistent trust data)"))?;
    bounded(bytes)
}

fn bounded(doc: Vec<u8>) -> Result<Vec<u8>, String> {
    if doc.len() > MAX_DOCUMENT {
        return Err(format!("a metadata document exceeds {MAX_DOCUMENT} bytes"));
    }
    Ok(doc)
}

fn text(e: wharf_format::notary::V1MetadataError) -> String {
    e.to_string()
}
