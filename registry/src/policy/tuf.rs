//! A repository's TUF 1.0 data as a policy finding: the client's workflow (specification section 5), run over
//! stored metadata at `now` by the pure `TrustedSet` and `DelegationSearch`, with the client's bounds.
//!
//! The root chain starts at version 1 of the repository's current generation (what the trust service accepted
//! first) and is walked to the newest root (5.3); then timestamp (5.4), the snapshot version it names (5.5), the
//! targets version snapshot names (5.6) and, for each name, the delegation search (5.6.7). There is no earlier
//! local state to roll back from, so the rollback references are absent; everything else (signatures, thresholds,
//! expiry, versions, lengths and hashes between levels, delegated paths, terminating roles) applies as on a pull.
//! Expired or inconsistent data is `Failed`; a repository without a root is `NoData`.
//!
//! The web interface's trust status (`ui::trust`) runs the same code: [`open`] once per page, [`Verified::load_all`]
//! (bounded), then [`Trusted::step`] per tag over what is loaded, with no further I/O.

use std::collections::BTreeMap;
use std::future::Future;

use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::tuf::{check_threshold, parse_time, DelegationSearch, Envelope, Role, TrustedSet, TufError};
use wharf_format::Digest;

use super::Problem;

/// The most root versions walked (the client's `max_root_rotations` is 256; a server's own chain is shorter).
pub const MAX_ROOTS: u64 = 256;
/// The most roles one search visits, as the client's `max_delegations`.
pub const MAX_DELEGATIONS: usize = 32;
/// The largest metadata document read.
pub const MAX_DOCUMENT: usize = 16 << 20;
/// The most names a read by digest looks up.
const MAX_NAMES: usize = 64;

/// Where stored (or fetched) TUF metadata comes from. `Err`: the store failed (not: the document is absent).
pub trait TufDocuments: Sync {
    /// The newest version of `role`, if the repository has one.
    fn latest(&self, role: &str) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
    /// `role` at `version`.
    fn version(&self, role: &str, version: u64) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
}

/// The subject's tag (or, by digest, every name signed for its digest) as the verified data signs it.
pub async fn finding<D: TufDocuments>(docs: &D, s: &Subject, now: i64) -> TrustFinding {
    match run(docs, s, now).await {
        Ok(Some(signed)) => TrustFinding::Signed(signed),
        Ok(None) => TrustFinding::NoData,
        Err(why) => TrustFinding::Failed(why.to_string()),
    }
}

async fn run<D: TufDocuments>(docs: &D, s: &Subject, now: i64) -> Result<Option<Vec<SignedTag>>, Problem> {
    let Some(mut v) = open(docs, now).await? else { return Ok(None) };
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

/// The repository's data verified from its first root to top-level targets at `now` (5.2 to 5.6); `None` when it
/// has no root.
pub async fn open<D: TufDocuments>(docs: &D, now: i64) -> Result<Option<Verified<'_, D>>, Problem> {
    let Some(newest) = docs.latest("root").await? else { return Ok(None) };
    let newest_version = Envelope::parse(bounded(newest)?.as_slice())
        .ok()
        .and_then(|e| e.signed.get("version").and_then(|v| v.as_u64()))
        .ok_or("the newest root has no version")?;
    if newest_version > MAX_ROOTS {
        return Err(format!("root version {newest_version}: more than {MAX_ROOTS} root versions").into());
    }
    let first = need(docs.version("root", 1).await?, "root", 1)?;
    // 5.2: the first root, signed by its own threshold; 5.3: each next one by the previous root's and its own.
    let mut set = TrustedSet::new(&first, now).map_err(text)?;
    for v in 2..=newest_version {
        let bytes = need(docs.version("root", v).await?, "root", v)?;
        set.update_root(&bytes).map_err(text)?;
    }
    // 5.4: the timestamp (5.3.10, the root's expiry, is checked first), 5.5 snapshot, 5.6 targets.
    let ts = need(docs.latest("timestamp").await?, "timestamp", 0)?;
    let _ = set.update_timestamp(&ts, None).map_err(text)?;
    let snap_version = set.snapshot_meta().map_err(text)?.version;
    let snap = need(docs.version("snapshot", snap_version).await?, "snapshot", snap_version)?;
    set.update_snapshot(&snap, None).map_err(text)?;
    let targets_version = set.snapshot_entry("targets").map_err(text)?.version;
    let targets = need(docs.version("targets", targets_version).await?, "targets", targets_version)?;
    set.update_targets(&targets).map_err(text)?;
    let loaded = BTreeMap::from([("targets".to_string(), targets)]);
    let mut trusted = Trusted { set, loaded, via: BTreeMap::new(), keys: BTreeMap::new() };
    trusted.add_edge("targets", "root", true);
    Ok(Some(Verified { docs, trusted }))
}

/// Verified data read from `docs`, with the delegated roles loaded so far.
pub struct Verified<'a, D> {
    docs: &'a D,
    trusted: Trusted,
}

/// What is verified, searched without I/O.
#[derive(Debug, Clone)]
pub struct Trusted {
    set: TrustedSet,
    /// The bytes of each targets role loaded, to name the keys whose signatures verified.
    loaded: BTreeMap<String, Vec<u8>>,
    /// Each (role, delegator) verified: whether the role carries the delegator's threshold, and the keys whose
    /// signatures verify. Checked once, so a search that passes a role again does not verify its signatures again
    /// (a page runs one search per row over the same roles).
    via: BTreeMap<(String, String), Result<(), Problem>>,
    keys: BTreeMap<(String, String), Result<Vec<String>, Problem>>,
}

/// A name signed by verified data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub signed: SignedTag,
    /// The earliest expiry (Unix seconds) of the metadata the search relied on: root, timestamp, snapshot,
    /// targets and every delegated role it looked in on the way (one expiring fails the search, as on a pull).
    pub expires: i64,
}

/// Where a search over the roles loaded so far stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Found),
    NotSigned,
    /// `role`, as `delegator` delegates it, must be loaded ([`Verified::load`]) before the search goes on.
    Need {
        role: String,
        delegator: String,
    },
}

/// One name's delegation search (5.6.7), resumable after each role it needs is loaded.
pub struct Search {
    name: String,
    roles: DelegationSearch,
    pending: Option<(String, String)>,
    visited: Vec<String>,
}

impl Search {
    pub fn new(name: &str) -> Search {
        Search { name: name.into(), roles: DelegationSearch::new(MAX_DELEGATIONS), pending: None, visited: vec![] }
    }
}

impl<D: TufDocuments> Verified<'_, D> {
    /// 5.6.7 for `name`, as the client's `Updater::find`, loading roles as the search asks: `None` when no role
    /// signs it.
    pub async fn find(&mut self, name: &str) -> Result<Option<Found>, Problem> {
        let mut search = Search::new(name);
        loop {
            match self.trusted.step(&mut search)? {
                Lookup::Found(found) => return Ok(Some(found)),
                Lookup::NotSigned => return Ok(None),
                Lookup::Need { role, delegator } => {
                    self.load(&role, &delegator).await?;
                }
            }
        }
    }

    /// Every name listed for `digest` by top-level targets or a delegated role reachable from it (bounded).
    async fn names_for(&mut self, digest: &Digest) -> Result<Vec<String>, Problem> {
        let mut queue = vec![("targets".to_string(), "root".to_string())];
        let mut names = Vec::new();
        let mut visited = 0;
        while let Some((role, parent)) = queue.pop() {
            visited += 1;
            if visited > MAX_DELEGATIONS {
                break;
            }
            // A role the snapshot does not list was revoked: it signs nothing.
            if role != "targets" && self.trusted.set.snapshot_entry(&role).is_err() {
                continue;
            }
            self.load(&role, &parent).await?;
            let t = if role == "targets" { self.trusted.set.targets() } else { self.trusted.set.delegated(&role) };
            let Some(t) = t else { continue };
            names.extend(listed_for(t, digest));
            for child in t.delegations.iter().flat_map(|d| d.roles.iter()) {
                queue.push((child.name.clone(), role.clone()));
            }
        }
        names.sort();
        names.dedup();
        names.truncate(MAX_NAMES);
        Ok(names)
    }

    /// Loads the delegated roles reachable from top-level targets in pre-order, trying (or checking again through
    /// another delegator) at most `max` (role, delegator) pairs, so that [`Trusted::step`] then searches for many names without I/O. The pairs that did
    /// not load are returned with why: a search that needs one fails with that.
    pub async fn load_all(&mut self, max: usize) -> BTreeMap<(String, String), Problem> {
        let children = |t: Option<&wharf_format::tuf::Targets>, parent: &str| -> Vec<(String, String)> {
            let roles = t.and_then(|t| t.delegations.as_ref()).map(|d| d.roles.as_slice()).unwrap_or_default();
            roles.iter().rev().map(|r| (r.name.clone(), parent.to_string())).collect()
        };
        let mut stack = children(self.trusted.set.targets(), "targets");
        let mut failed = BTreeMap::new();
        let mut tried = 0;
        while let Some((role, parent)) = stack.pop() {
            let edge = (role.clone(), parent.clone());
            if role == "targets" || failed.contains_key(&edge) || self.trusted.via.contains_key(&edge) {
                continue;
            }
            if tried >= max {
                break;
            }
            tried += 1;
            if self.trusted.set.delegated(&role).is_some() {
                // Loaded through another delegator: verified through this one too, once.
                self.trusted.add_edge(&role, &parent, false);
                continue;
            }
            match self.load(&role, &parent).await {
                Ok(_) => stack.extend(children(self.trusted.set.delegated(&role), &role)),
                Err(why) => {
                    failed.insert((role, parent), why);
                }
            }
        }
        failed
    }

    /// Loads `role` (5.6.7.1) as `delegator` delegates it, unless it is loaded; `true` when loaded now.
    pub async fn load(&mut self, role: &str, delegator: &str) -> Result<bool, Problem> {
        if role == "targets" || self.trusted.set.delegated(role).is_some() {
            return Ok(false);
        }
        let version = self.trusted.set.snapshot_entry(role).map_err(text)?.version;
        let bytes = need(self.docs.version(role, version).await?, role, version)?;
        self.trusted.set.update_delegated(role, &bytes, delegator).map_err(text)?;
        self.trusted.loaded.insert(role.into(), bytes);
        self.trusted.add_edge(role, delegator, true);
        Ok(true)
    }

    /// What is verified, for searches without I/O ([`Trusted::step`]).
    pub fn into_trusted(self) -> Trusted {
        self.trusted
    }
}

impl Trusted {
    /// The search `s` over the roles loaded, without I/O, until it finds, ends, or needs a role loaded.
    pub fn step(&self, s: &mut Search) -> Result<Lookup, Problem> {
        loop {
            let resumed = s.pending.take();
            let loaded_now = resumed.is_some();
            let Some((role, parent)) = resumed.or_else(|| s.roles.next_role()) else { return Ok(Lookup::NotSigned) };
            let targets = if role == "targets" {
                self.set.targets()
            } else if self.set.delegated(&role).is_none() {
                s.pending = Some((role.clone(), parent.clone()));
                return Ok(Lookup::Need { role, delegator: parent });
            } else if loaded_now {
                self.set.delegated(&role)
            } else {
                // A role reached again through another delegator is verified against that delegator's keys too.
                match self.via.get(&(role.clone(), parent.clone())) {
                    Some(Ok(())) => self.set.delegated(&role),
                    Some(Err(why)) => return Err(why.clone()),
                    None => self.set.delegated_via(&role, &parent).map_err(text)?,
                }
            };
            let Some(targets) = targets else { continue };
            s.visited.push(role.clone());
            let name = s.name.as_str();
            if let Some(t) = targets.targets.get(name) {
                let sha = t.hashes.get("sha256").ok_or_else(|| format!("{role}: target {name:?} has no sha256"))?;
                let digest: Digest =
                    format!("sha256:{sha}").parse().map_err(|_| format!("{role}: target {name:?}: bad sha256"))?;
                let keys = match self.keys.get(&(role.clone(), parent.clone())) {
                    Some(keys) => keys.clone()?,
                    None => self.verified_keys(&role, &parent)?,
                };
                let expires = self.expiry(&s.visited);
                return Ok(Lookup::Found(Found {
                    signed: SignedTag { tag: name.into(), digest, role, keys },
                    expires,
                }));
            }
            s.roles.descend(&role, targets, name);
        }
    }

    /// Records `role` as verified through `delegator` (`checked`: by loading it through that delegator), with the
    /// keys whose signatures verify.
    fn add_edge(&mut self, role: &str, delegator: &str, checked: bool) {
        let edge = (role.to_string(), delegator.to_string());
        let via = match checked {
            true => Ok(()),
            false => self.set.delegated_via(role, delegator).map(|_| ()).map_err(text),
        };
        if via.is_ok() {
            self.keys.insert(edge.clone(), self.verified_keys(role, delegator));
        }
        self.via.insert(edge, via);
    }

    /// The earliest expiry of root, timestamp, snapshot and the targets roles `visited`.
    fn expiry(&self, visited: &[String]) -> i64 {
        let set = &self.set;
        let roles = visited.iter().filter_map(|r| if r == "targets" { set.targets() } else { set.delegated(r) });
        [Some(set.root().expires.0), set.timestamp().map(|t| t.expires.0), set.snapshot().map(|s| s.expires.0)]
            .into_iter()
            .flatten()
            .chain(roles.map(|t| t.expires.0))
            .min()
            .unwrap_or(i64::MIN)
    }

    /// The names the roles loaded so far list for `digest`, sorted, at most [`MAX_NAMES`] (no I/O).
    pub fn loaded_names_for(&self, digest: &Digest) -> Vec<String> {
        let set = &self.set;
        let roles = self.loaded.keys().filter_map(|r| if r == "targets" { set.targets() } else { set.delegated(r) });
        let mut names: Vec<String> = roles.flat_map(|t| listed_for(t, digest)).collect();
        names.sort();
        names.dedup();
        names.truncate(MAX_NAMES);
        names
    }

    /// The key IDs whose signatures on `role`'s metadata verify, among the keys `delegator` gives it: each key is
    /// checked alone through the shared threshold check, so no signature code is repeated here.
    fn verified_keys(&self, role: &str, delegator: &str) -> Result<Vec<String>, Problem> {
        let bytes = self.loaded.get(role).ok_or_else(|| format!("{role}: not loaded"))?;
        let env = Envelope::parse(bytes).map_err(text)?;
        let (keys, ids) = if role == "targets" {
            let root = self.set.root();
            (&root.keys, root.role(Role::Targets).map_err(text)?.keyids.clone())
        } else {
            let parent = if delegator == "targets" { self.set.targets() } else { self.set.delegated(delegator) };
            let d = parent.and_then(|p| p.delegations.as_ref()).ok_or_else(|| format!("{role}: no delegation"))?;
            let (ids, _) = d.role_keys(role).ok_or_else(|| format!("{role}: not delegated by {delegator}"))?;
            (&d.keys, ids.to_vec())
        };
        Ok(ids
            .into_iter()
            .filter(|id| check_threshold(role, &env, keys, std::slice::from_ref(id), 1).is_ok())
            .collect())
    }
}

/// The names `t` lists with `digest`'s SHA-256.
fn listed_for<'t>(t: &'t wharf_format::tuf::Targets, digest: &'t Digest) -> impl Iterator<Item = String> + 't {
    t.targets
        .iter()
        .filter(|(_, f)| f.hashes.get("sha256").is_some_and(|h| h.eq_ignore_ascii_case(digest.hex())))
        .map(|(n, _)| n.clone())
}

fn need(doc: Option<Vec<u8>>, role: &str, version: u64) -> Result<Vec<u8>, Problem> {
    match doc {
        Some(d) => bounded(d),
        None if version == 0 => Err(format!("no {role} metadata is stored").into()),
        None => Err(format!("{role} version {version} is not stored (inconsistent trust data)").into()),
    }
}

fn bounded(doc: Vec<u8>) -> Result<Vec<u8>, Problem> {
    if doc.len() > MAX_DOCUMENT {
        return Err(format!("a metadata document exceeds {MAX_DOCUMENT} bytes").into());
    }
    Ok(doc)
}

/// A refusal as a problem: an expiry says when.
fn text(e: TufError) -> Problem {
    match &e {
        TufError::Expired { expires, .. } => match parse_time(expires) {
            Ok(at) => Problem::Expired { why: e.to_string(), at },
            Err(_) => Problem::Invalid(e.to_string()),
        },
        _ => Problem::Invalid(e.to_string()),
    }
}

#[cfg(test)]
#[path = "tuf_tests.rs"]
mod tests;
