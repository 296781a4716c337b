//! A repository's Notary v1 collections as a policy finding, verified by the pure `TrustedCollection` as a pull
//! verifies them: the collection's current root (what a first-use client trusts), its timestamp, the snapshot and
//! targets roles by the hashes the level above lists (no mix and match), and docker's search order for each name
//! (`targets/releases` first, then `targets`). A repository may be signed under several GUNs (one per registry
//! host name clients used); every collection that names it is verified, and any failure fails the finding.
//!
//! The web interface's trust status (`ui::trust`) runs the same code: [`open`] once per collection and page,
//! [`Collection::load_all`] (bounded), then [`Trusted::lookup`] per tag over what is loaded.

use std::future::Future;

use base64::Engine as _;
use wharf_format::notary::{
    check_threshold, parent_of, FileMeta, Gun, RoleKeys, Signed, TrustedCollection, V1MetadataError, MAX_VISITED,
};
use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::Digest;

use super::tuf::{Found, Lookup};
use super::Problem;

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
) -> Result<Option<Vec<SignedTag>>, Problem> {
    let Some(mut v) = open(docs, gun, now).await? else { return Ok(None) };
    let names = match &s.tag {
        Some(tag) => vec![tag.as_str().to_string()],
        None => v.names_for(&s.digest).await?,
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(found) = v.find(&name).await? {
            out.push(found.signed);
        }
    }
    Ok(Some(out))
}

/// `gun`'s collection verified to its top-level targets at `now`; `None` when it has no root.
pub async fn open<'a, D: NotaryDocuments>(
    docs: &'a D,
    gun: &'a Gun,
    now: i64,
) -> Result<Option<Collection<'a, D>>, Problem> {
    let Some(root) = docs.current(gun, "root").await? else { return Ok(None) };
    let root = bounded(root)?;
    let mut c = TrustedCollection::new(&root, gun.as_str(), now).map_err(refused(&root, now))?;
    let ts = bounded(docs.current(gun, "timestamp").await?.ok_or("no timestamp is stored")?)?;
    c.update_timestamp(&ts, None).map_err(refused(&ts, now))?;
    let meta = c.snapshot_meta().map_err(refused(&ts, now))?.clone();
    let snap = by_meta(docs, gun, "snapshot", &meta).await?;
    c.update_snapshot(&snap, None).map_err(refused(&snap, now))?;
    // Each of the three verified above, so each parses.
    let chain = [&root, &ts, &snap].iter().filter_map(|b| Signed::parse(b).ok()).map(|d| d.expires).min();
    let trusted =
        Trusted { c, loaded: Default::default(), keys: Default::default(), now, chain: chain.unwrap_or(i64::MIN) };
    let mut v = Collection { docs, gun, trusted };
    v.load("targets").await?;
    Ok(Some(v))
}

/// A verified collection read from `docs`, with the targets roles loaded so far.
pub struct Collection<'a, D> {
    docs: &'a D,
    gun: &'a Gun,
    trusted: Trusted,
}

/// What is verified, searched without I/O.
#[derive(Debug, Clone)]
pub struct Trusted {
    c: TrustedCollection,
    loaded: std::collections::BTreeMap<String, Signed>,
    /// The key IDs whose signatures verify on each role loaded, checked once (a page searches once per row).
    keys: std::collections::BTreeMap<String, Vec<String>>,
    now: i64,
    /// The earliest expiry of root, timestamp and snapshot.
    chain: i64,
}

impl<D: NotaryDocuments> Collection<'_, D> {
    /// docker's search for `name`, loading roles as it asks for them (at most [`MAX_VISITED`]).
    pub async fn find(&mut self, name: &str) -> Result<Option<Found>, Problem> {
        let mut loads = 0;
        loop {
            match self.trusted.lookup(name)? {
                Lookup::Need { role, .. } if loads < MAX_VISITED => {
                    loads += 1;
                    self.load(&role).await?;
                }
                Lookup::Found(found) => return Ok(Some(found)),
                Lookup::Need { .. } | Lookup::NotSigned => return Ok(None),
            }
        }
    }

    /// Every name a published role lists for `digest` (all roles loaded, breadth first, bounded).
    async fn names_for(&mut self, digest: &Digest) -> Result<Vec<String>, Problem> {
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
            if self.trusted.c.targets(&role).is_none() {
                if self.trusted.c.role_meta(&role).is_none() {
                    continue;
                }
                self.load(&role).await?;
            }
            let Some(t) = self.trusted.c.targets(&role) else { continue };
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

    /// Loads the published delegated roles reachable from targets (at most `max`), so that [`Trusted::lookup`]
    /// then searches for many names without I/O. The roles that did not load are returned with why.
    pub async fn load_all(&mut self, max: usize) -> std::collections::BTreeMap<String, Problem> {
        let children = |t: Option<&wharf_format::notary::Targets>| -> Vec<String> {
            t.map(|t| t.delegations.roles.iter().rev().map(|d| d.name.clone()).collect()).unwrap_or_default()
        };
        let mut stack = children(self.trusted.c.targets("targets"));
        let mut failed = std::collections::BTreeMap::new();
        let mut tried = std::collections::BTreeSet::new();
        while let Some(role) = stack.pop() {
            if self.trusted.c.role_meta(&role).is_none() || !tried.insert(role.clone()) {
                continue;
            }
            if tried.len() > max {
                break;
            }
            match self.load(&role).await {
                Ok(()) => stack.extend(children(self.trusted.c.targets(&role))),
                Err(why) => {
                    failed.insert(role, why);
                }
            }
        }
        failed
    }

    async fn load(&mut self, role: &str) -> Result<(), Problem> {
        let meta = self.trusted.c.role_meta(role).ok_or_else(|| format!("snapshot does not list {role}"))?.clone();
        let bytes = by_meta(self.docs, self.gun, role, &meta).await?;
        self.trusted.c.update_targets(role, &bytes).map_err(refused(&bytes, self.trusted.now))?;
        if let Ok(doc) = Signed::parse(&bytes) {
            self.trusted.loaded.insert(role.into(), doc);
            let keys = self.trusted.verified_keys(role);
            self.trusted.keys.insert(role.into(), keys);
        }
        Ok(())
    }

    /// What is verified, for searches without I/O ([`Trusted::lookup`]).
    pub fn into_trusted(self) -> Trusted {
        self.trusted
    }
}

impl Trusted {
    /// docker's search for `name` over the roles loaded, without I/O. A found name's expiry is the earliest of
    /// root, timestamp, snapshot, the role that signs it and the roles that delegate to it.
    pub fn lookup(&self, name: &str) -> Result<Lookup, Problem> {
        let found = match self.c.find(name) {
            Ok(found) => found,
            Err(Some(role)) => {
                let delegator = parent_of(&role).unwrap_or("root").to_string();
                return Ok(Lookup::Need { role, delegator });
            }
            Err(None) => return Ok(Lookup::NotSigned),
        };
        let sha = found.meta.hashes.get("sha256").ok_or_else(|| format!("{}: {name:?} has no sha256", found.role))?;
        let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| "a sha256 is not base64")?;
        let digest: Digest = format!("sha256:{}", hex::encode(raw)).parse().map_err(|_| "a sha256 is not 32 bytes")?;
        let keys = self.keys.get(&found.role).cloned().unwrap_or_else(|| self.verified_keys(&found.role));
        let mut expires = self.chain;
        let mut role = Some(found.role.as_str());
        while let Some(r) = role {
            expires = self.loaded.get(r).map_or(expires, |d| expires.min(d.expires));
            role = parent_of(r);
        }
        Ok(Lookup::Found(Found { signed: SignedTag { tag: name.into(), digest, role: found.role, keys }, expires }))
    }

    /// The names the roles loaded so far list for `digest`, sorted, at most [`MAX_NAMES`] (no I/O).
    pub fn loaded_names_for(&self, digest: &Digest) -> Vec<String> {
        let Ok(raw) = hex::decode(digest.hex()) else { return vec![] };
        let want = base64::engine::general_purpose::STANDARD.encode(raw);
        let roles = self.loaded.keys().filter_map(|r| self.c.targets(r));
        let mut names: Vec<String> = roles
            .flat_map(|t| {
                t.targets.iter().filter(|(_, m)| m.hashes.get("sha256") == Some(&want)).map(|(n, _)| n.clone())
            })
            .collect();
        names.sort();
        names.dedup();
        names.truncate(MAX_NAMES);
        names
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
async fn by_meta<D: NotaryDocuments>(docs: &D, gun: &Gun, role: &str, meta: &FileMeta) -> Result<Vec<u8>, Problem> {
    let sha = meta.hashes.get("sha256").ok_or_else(|| format!("no sha256 for {role}"))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(sha).map_err(|_| format!("bad sha256 for {role}"))?;
    let bytes = docs
        .by_hash(gun, role, &hex::encode(raw))
        .await?
        .ok_or_else(|| format!("{role} as the level above lists it is not stored (inconsistent trust data)"))?;
    bounded(bytes)
}

fn bounded(doc: Vec<u8>) -> Result<Vec<u8>, Problem> {
    if doc.len() > MAX_DOCUMENT {
        return Err(format!("a metadata document exceeds {MAX_DOCUMENT} bytes").into());
    }
    Ok(doc)
}

/// A refusal of `doc` as a problem: the format's expiry refusal ("... expired at ...") of a document whose
/// `expires` has passed is `Expired` at that time; anything else is `Invalid`.
fn refused(doc: &[u8], now: i64) -> impl FnOnce(V1MetadataError) -> Problem + '_ {
    move |e| {
        let why = e.to_string();
        match Signed::parse(doc) {
            Ok(d) if d.expires <= now && why.contains(" expired at ") => Problem::Expired { why, at: d.expires },
            _ => Problem::Invalid(why),
        }
    }
}
