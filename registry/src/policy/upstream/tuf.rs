//! The TUF 1.0 client workflow (specification section 5) over a mirror's upstream, from the root a rule pins: every
//! decision is the pure [`TrustedSet`]'s and [`DelegationSearch`]'s, the same a `wharf pull` makes; files come
//! through the mirror's trust cache ([`crate::mirror::trust::fetch`]). The step numbers in comments are the
//! specification's.

use std::collections::{BTreeMap, BTreeSet};

use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::tuf::{DelegationSearch, Envelope, KeyId, PublicKey, Role, RoleName, Targets, TrustedSet, TufError};
use wharf_format::Digest;
use wharf_notary::tuf::route::TrustPath;

use super::UpstreamSource;

/// Root versions walked past the pinned one, at most (as the client's `max_root_rotations`).
const MAX_ROOT_ROTATIONS: u64 = 256;
/// Targets roles loaded per decision, at most (as the client's `max_delegations`).
const MAX_ROLES: usize = 32;

/// The subject's tag as the upstream's verified TUF data signs it (by digest: every tag signed for the digest).
pub async fn finding(src: &UpstreamSource<'_>, root: &[u8], s: &Subject) -> Result<TrustFinding, String> {
    let mut w = Workflow {
        src,
        set: TrustedSet::new(root, src.now).map_err(|e| format!("pinned root: {e}"))?,
        envelopes: BTreeMap::new(),
    };
    if !w.refresh().await? {
        return Ok(TrustFinding::NoData);
    }
    let names = match &s.tag {
        Some(tag) => vec![tag.to_string()],
        None => w.names_for(&s.digest).await?,
    };
    let mut signed = Vec::new();
    for name in names {
        if let Some(t) = w.find(&name).await? {
            signed.push(t);
        }
    }
    Ok(TrustFinding::Signed(signed))
}

struct Workflow<'a, 'b> {
    src: &'a UpstreamSource<'b>,
    set: TrustedSet,
    /// The bytes of each targets role loaded, to name the keys whose signatures verified.
    envelopes: BTreeMap<String, Vec<u8>>,
}

fn tuf_err(e: TufError) -> String {
    e.to_string()
}

impl Workflow<'_, '_> {
    async fn file(&self, path: TrustPath) -> Result<Option<Vec<u8>>, String> {
        crate::mirror::trust::fetch(self.src.st, self.src.repo, self.src.route, &path)
            .await
            .map_err(|e| format!("reading the upstream's trust data: {}", e.message))
    }

    /// 5.3 to 5.6 (top-level targets). `false`: the upstream repository has no TUF data (no timestamp).
    async fn refresh(&mut self) -> Result<bool, String> {
        // 5.3.2-5.3.9: each newer root, verified by the previous root's threshold and its own.
        let first = self.set.root().version + 1;
        for version in first..first + MAX_ROOT_ROTATIONS {
            match self.file(TrustPath::Version(RoleName::ROOT, version)).await? {
                Some(bytes) => self.set.update_root(&bytes).map_err(tuf_err)?,
                None => break,
            }
        }
        // 5.3.10: the final root is not expired.
        self.set.finish_root().map_err(tuf_err)?;
        // 5.4: the timestamp, never older than the one trusted before.
        let Some(ts) = self.file(TrustPath::Latest(RoleName::TIMESTAMP)).await? else { return Ok(false) };
        let kept = self.src.kept.get(self.src.repo);
        let _ = self.set.update_timestamp(&ts, kept.as_ref().map(|k| &k.0)).map_err(tuf_err)?;
        // 5.5: the snapshot the timestamp names.
        let meta = self.set.snapshot_meta().map_err(tuf_err)?.clone();
        let name = self.versioned(RoleName::SNAPSHOT, meta.version);
        let snap = self.file(name).await?.ok_or("the upstream has no snapshot the timestamp names")?;
        self.set.update_snapshot(&snap, kept.as_ref().map(|k| &k.1)).map_err(tuf_err)?;
        if let (Some(t), Some(s)) = (self.set.timestamp(), self.set.snapshot()) {
            self.src.kept.keep(self.src.repo, (t.clone(), s.clone()));
        }
        // 5.6: top-level targets.
        self.load("targets", "root").await?;
        Ok(true)
    }

    /// `<version>.<role>.json` with consistent snapshots (5.5.1, 5.6.1), else `<role>.json`.
    fn versioned(&self, role: RoleName, version: u64) -> TrustPath {
        if self.set.root().consistent_snapshot {
            TrustPath::Version(role, version)
        } else {
            TrustPath::Latest(role)
        }
    }

    /// 5.6 and 5.6.7.1: loads `role` (delegated by `delegator`) unless it already is.
    async fn load(&mut self, role: &str, delegator: &str) -> Result<(), String> {
        let top = role == "targets";
        if (top && self.set.targets().is_some()) || (!top && self.set.delegated(role).is_some()) {
            return Ok(());
        }
        let meta = self.set.snapshot_entry(role).map_err(tuf_err)?;
        let name: RoleName = role.parse().map_err(|e: TufError| e.to_string())?;
        let path = self.versioned(name, meta.version);
        let bytes = self.file(path).await?.ok_or_else(|| format!("the upstream has no {role} the snapshot names"))?;
        if top {
            self.set.update_targets(&bytes).map_err(tuf_err)?;
        } else {
            self.set.update_delegated(role, &bytes, delegator).map_err(tuf_err)?;
        }
        self.envelopes.insert(role.to_string(), bytes);
        Ok(())
    }

    /// 5.6.7: the pre-order depth-first search for `name`; `None` when no role signs it.
    async fn find(&mut self, name: &str) -> Result<Option<SignedTag>, String> {
        let mut search = DelegationSearch::new(MAX_ROLES);
        while let Some((role, parent)) = search.next_role() {
            // A role reached before through another delegator is loaded already; whether this delegator's keys
            // and threshold accept it is checked here (5.6.7.2 on every path).
            let loaded_before = role != "targets" && self.set.delegated(&role).is_some();
            self.load(&role, &parent).await?;
            let targets = match role.as_str() {
                "targets" => self.set.targets(),
                _ if loaded_before => self.set.delegated_via(&role, &parent).map_err(tuf_err)?,
                _ => self.set.delegated(&role),
            };
            let Some(targets) = targets else { continue };
            if let Some(t) = targets.targets.get(name) {
                let sha = t.hashes.get("sha256").ok_or_else(|| format!("target {name} of {role} has no sha256"))?;
                let digest: Digest =
                    format!("sha256:{sha}").parse().map_err(|_| format!("target {name} of {role}: bad sha256"))?;
                let keys = self.verified_keys(&role, &parent);
                return Ok(Some(SignedTag { tag: name.to_string(), digest, role, keys }));
            }
            search.descend(&role, targets, name);
        }
        Ok(None)
    }

    /// The names any loaded-or-reachable role lists for `digest` (each then searched for as a pull would, so a
    /// role not delegated the name does not count): top-level targets and its delegations, breadth first, bounded.
    async fn names_for(&mut self, digest: &Digest) -> Result<Vec<String>, String> {
        let mut names = BTreeSet::new();
        let mut queue = vec![("targets".to_string(), "root".to_string())];
        let mut visited = BTreeSet::new();
        while let Some((role, parent)) = queue.pop() {
            if visited.len() >= MAX_ROLES || !visited.insert(role.clone()) {
                continue;
            }
            // A role the snapshot does not list (revoked) or that does not verify signs nothing here.
            if self.load(&role, &parent).await.is_err() {
                continue;
            }
            let targets: Option<&Targets> =
                if role == "targets" { self.set.targets() } else { self.set.delegated(&role) };
            let Some(t) = targets else { continue };
            let hex = digest.hex();
            names.extend(
                t.targets
                    .iter()
                    .filter(|(_, f)| f.hashes.get("sha256").is_some_and(|h| h == hex))
                    .map(|(n, _)| n.clone()),
            );
            for d in t.delegations.iter().flat_map(|d| d.roles.iter()) {
                queue.push((d.name.clone(), role.clone()));
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The key IDs whose signatures on `role`'s metadata verify under the keys `delegator` gives it.
    fn verified_keys(&self, role: &str, delegator: &str) -> Vec<String> {
        let Some(bytes) = self.envelopes.get(role) else { return vec![] };
        let (keys, keyids): (&BTreeMap<KeyId, PublicKey>, Vec<KeyId>) = if role == "targets" {
            let root = self.set.root();
            match root.role(Role::Targets) {
                Ok(r) => (&root.keys, r.keyids.clone()),
                Err(_) => return vec![],
            }
        } else {
            let parent = if delegator == "targets" { self.set.targets() } else { self.set.delegated(delegator) };
            let Some(d) = parent.and_then(|p| p.delegations.as_ref()) else { return vec![] };
            match d.role_keys(role) {
                Some((ids, _)) => (&d.keys, ids.to_vec()),
                None => return vec![],
            }
        };
        signed_by(bytes, keys, &keyids)
    }
}

/// The key IDs among `keyids` whose signatures on `bytes` (a metadata envelope) verify.
fn signed_by(bytes: &[u8], keys: &BTreeMap<KeyId, PublicKey>, keyids: &[KeyId]) -> Vec<String> {
    let Ok(env) = Envelope::parse(bytes) else { return vec![] };
    let Ok(message) = env.signed_bytes() else { return vec![] };
    env.signatures
        .iter()
        .filter(|s| keyids.contains(&s.keyid))
        .filter(|s| keys.get(&s.keyid).is_some_and(|k| k.key_id() == s.keyid && k.verifies(&message, &s.sig)))
        .map(|s| s.keyid.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_format::tuf::SigningKey;

    #[test]
    fn signed_by_names_only_listed_keys_whose_signatures_verify() {
        let (a, b, c) =
            (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        let signed = serde_json::json!({"_type": "targets", "version": 1});
        let bytes = Envelope::sign(&signed, &[&a, &b]).unwrap().to_bytes().unwrap();
        let keys: BTreeMap<KeyId, PublicKey> =
            [&a, &b, &c].iter().map(|k| (k.key_id().clone(), k.public().clone())).collect();
        let id = |k: &SigningKey| k.key_id().clone();
        // (key IDs listed for the role, key IDs expected)
        let rows = [
            (vec![id(&a), id(&b), id(&c)], vec![id(&a), id(&b)]),
            (vec![id(&b)], vec![id(&b)]),
            (vec![id(&c)], vec![]),
            (vec![], vec![]),
        ];
        for (listed, expected) in rows {
            let mut got = signed_by(&bytes, &keys, &listed);
            got.sort();
            let mut expected = expected;
            expected.sort();
            assert_eq!(got, expected, "{listed:?}");
        }
        // A signature by a key the role lists but whose public key is another's is not counted.
        let mut swapped = keys.clone();
        swapped.insert(id(&a), c.public().clone());
        assert_eq!(signed_by(&bytes, &swapped, &[id(&a)]), Vec::<String>::new());
        assert_eq!(signed_by(b"not json", &keys, &[id(&a)]), Vec::<String>::new());
    }
}
