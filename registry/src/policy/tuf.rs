//! A repository's TUF 1.0 data as a policy finding: the client's workflow (specification section 5), run over
//! stored metadata at `now` by the pure `TrustedSet` and `DelegationSearch`, with the client's bounds.
//!
//! The root chain starts at version 1 of the repository's current generation (what the trust service accepted
//! first) and is walked to the newest root (5.3); then timestamp (5.4), the snapshot version it names (5.5), the
//! targets version snapshot names (5.6) and, for each name, the delegation search (5.6.7). There is no earlier
//! local state to roll back from, so the rollback references are absent; everything else (signatures, thresholds,
//! expiry, versions, lengths and hashes between levels, delegated paths, terminating roles) applies as on a pull.
//! Expired or inconsistent data is `Failed`; a repository without a root is `NoData`.

use std::future::Future;

use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::tuf::{check_threshold, DelegationSearch, Envelope, Role, TrustedSet, TufError};
use wharf_format::Digest;

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
        Err(why) => TrustFinding::Failed(why),
    }
}

async fn run<D: TufDocuments>(docs: &D, s: &Subject, now: i64) -> Result<Option<Vec<SignedTag>>, String> {
    let Some(newest) = docs.latest("root").await? else { return Ok(None) };
    let newest_version = Envelope::parse(bounded(newest)?.as_slice())
        .ok()
        .and_then(|e| e.signed.get("version").and_then(|v| v.as_u64()))
        .ok_or("the newest root has no version")?;
    if newest_version > MAX_ROOTS {
        return Err(format!("root version {newest_version}: more than {MAX_ROOTS} root versions"));
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
    let mut search = Search { docs, set, loaded: Default::default() };
    search.loaded.insert("targets".into(), targets);
    let names = match &s.tag {
        Some(tag) => vec![tag.as_str().to_string()],
        None => search.names_for(&s.digest).await?,
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(found) = search.find(&name).await? {
            out.push(found);
        }
    }
    Ok(Some(out))
}

struct Search<'a, D> {
    docs: &'a D,
    set: TrustedSet,
    /// The bytes of each targets role loaded, to name the keys whose signatures verified.
    loaded: std::collections::BTreeMap<String, Vec<u8>>,
}

impl<D: TufDocuments> Search<'_, D> {
    /// 5.6.7 for `name`, as the client's `Updater::find`: `None` when no role signs it.
    async fn find(&mut self, name: &str) -> Result<Option<SignedTag>, String> {
        let mut search = DelegationSearch::new(MAX_DELEGATIONS);
        while let Some((role, parent)) = search.next_role() {
            let loaded_now = self.load(&role, &parent).await?;
            let targets = match (role.as_str(), loaded_now) {
                ("targets", _) => self.set.targets(),
                (_, true) => self.set.delegated(&role),
                // A role reached again through another delegator is verified against that delegator's keys too.
                (_, false) => self.set.delegated_via(&role, &parent).map_err(text)?,
            };
            let Some(targets) = targets else { continue };
            if let Some(t) = targets.targets.get(name) {
                let sha = t.hashes.get("sha256").ok_or_else(|| format!("{role}: target {name:?} has no sha256"))?;
                let digest: Digest =
                    format!("sha256:{sha}").parse().map_err(|_| format!("{role}: target {name:?}: bad sha256"))?;
                let keys = self.verified_keys(&role, &parent)?;
                return Ok(Some(SignedTag { tag: name.into(), digest, role, keys }));
            }
            search.descend(&role, targets, name);
        }
        Ok(None)
    }

    /// Every name listed for `digest` by top-level targets or a delegated role reachable from it (bounded).
    async fn names_for(&mut self, digest: &Digest) -> Result<Vec<String>, String> {
        let mut queue = vec![("targets".to_string(), "root".to_string())];
        let mut names = Vec::new();
        let mut visited = 0;
        while let Some((role, parent)) = queue.pop() {
            visited += 1;
            if visited > MAX_DELEGATIONS {
                break;
            }
            // A role the snapshot does not list was revoked: it signs nothing.
            if role != "targets" && self.set.snapshot_entry(&role).is_err() {
                continue;
            }
            self.load(&role, &parent).await?;
            let t = if role == "targets" { self.set.targets() } else { self.set.delegated(&role) };
            let Some(t) = t else { continue };
            for (name, file) in &t.targets {
                if file.hashes.get("sha256").is_some_and(|h| h.eq_ignore_ascii_case(digest.hex())) {
                    names.push(name.clone());
                }
            }
            for child in t.delegations.iter().flat_map(|d| d.roles.iter()) {
                queue.push((child.name.clone(), role.clone()));
            }
        }
        names.sort();
        names.dedup();
        names.truncate(MAX_NAMES);
        Ok(names)
    }

    /// Loads `role` (5.6.7.1) as `delegator` delegates it, unless it is loaded; `true` when loaded now.
    async fn load(&mut self, role: &str, delegator: &str) -> Result<bool, String> {
        if role == "targets" || self.set.delegated(role).is_some() {
            return Ok(false);
        }
        let version = self.set.snapshot_entry(role).map_err(text)?.version;
        let bytes = need(self.docs.version(role, version).await?, role, version)?;
        self.set.update_delegated(role, &bytes, delegator).map_err(text)?;
        self.loaded.insert(role.into(), bytes);
        Ok(true)
    }

    /// The key IDs whose signatures on `role`'s metadata verify, among the keys `delegator` gives it: each key is
    /// checked alone through the shared threshold check, so no signature code is repeated here.
    fn verified_keys(&self, role: &str, delegator: &str) -> Result<Vec<String>, String> {
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

fn need(doc: Option<Vec<u8>>, role: &str, version: u64) -> Result<Vec<u8>, String> {
    match doc {
        Some(d) => bounded(d),
        None if version == 0 => Err(format!("no {role} metadata is stored")),
        None => Err(format!("{role} version {version} is not stored (inconsistent trust data)")),
    }
}

fn bounded(doc: Vec<u8>) -> Result<Vec<u8>, String> {
    if doc.len() > MAX_DOCUMENT {
        return Err(format!("a metadata document exceeds {MAX_DOCUMENT} bytes"));
    }
    Ok(doc)
}

fn text(e: TufError) -> String {
    e.to_string()
}

#[cfg(test)]
#[path = "tuf_tests.rs"]
mod tests;
