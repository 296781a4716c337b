//! The client's side of a Notary v1 collection, as a pure state machine (the caller fetches, it decides): root
//! chain (each new root signed by the previous one's threshold and its own, certificates valid for the GUN),
//! timestamp (signature, freeze by expiry, rollback against the last version seen), snapshot and targets roles (by
//! the hashes and length the level above listed: no mix and match), delegations with their restricted prefix paths,
//! and the target search docker does (`targets/releases` first, then `targets`, each subtree pre-order).

use std::collections::BTreeMap;

use super::{
    check_file, check_root, check_targets, check_threshold, delegation_allows, format_time, invalid, parent_of,
    restrict_paths, FileMeta, NotaryError, RoleKeys, Root, Signed, Snapshot, Targets, Timestamp,
};

/// Roles one search may visit.
pub const MAX_VISITED: usize = 32;

/// A verified collection, built up one document at a time.
#[derive(Debug, Clone)]
pub struct TrustedCollection {
    gun: String,
    now: i64,
    root: Root,
    root_bytes: Vec<u8>,
    timestamp: Option<(i64, Timestamp)>,
    snapshot: Option<(i64, Snapshot)>,
    /// Verified targets roles with the paths each may really sign.
    targets: BTreeMap<String, (Targets, Vec<String>)>,
    /// Delegated roles their parent lists with fewer keys than their threshold (docker leaves `targets/releases`
    /// so after its last signer is removed): they sign nothing, and the search goes on without them.
    unusable: std::collections::BTreeSet<String>,
}

/// A signed target found by [`TrustedCollection::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub role: String,
    pub meta: FileMeta,
}

impl TrustedCollection {
    /// Starts from a trusted root (recorded, pinned or accepted on first use): it must pass the root rules for
    /// `gun` at `now`.
    pub fn new(trusted_root: &[u8], gun: &str, now: i64) -> Result<TrustedCollection, NotaryError> {
        let doc = Signed::parse(trusted_root)?;
        let root = check_root(&doc, gun, now, None)?;
        Ok(TrustedCollection {
            gun: gun.into(),
            now,
            root,
            root_bytes: trusted_root.to_vec(),
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            unusable: Default::default(),
        })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn root_bytes(&self) -> &[u8] {
        &self.root_bytes
    }

    /// The next root in the chain: exactly one version newer, signed by the current root's keys and its own.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), NotaryError> {
        let doc = Signed::parse(bytes)?;
        if doc.version != self.root.version + 1 {
            return Err(invalid(format!("root version {} where {} was expected", doc.version, self.root.version + 1)));
        }
        self.root = check_root(&doc, &self.gun, self.now, Some(&self.root))?;
        self.root_bytes = bytes.to_vec();
        Ok(())
    }

    /// The timestamp: signed by root's timestamp keys, unexpired, not older than `previous` (the version last seen).
    pub fn update_timestamp(&mut self, bytes: &[u8], previous: Option<i64>) -> Result<(), NotaryError> {
        let doc = Signed::parse(bytes)?;
        check_threshold("timestamp", &doc, &self.root.keys, &self.role_keys("timestamp"))?;
        let ts: Timestamp = doc.role("timestamp", "Timestamp")?;
        self.fresh("timestamp", &doc)?;
        if let Some(p) = previous.filter(|p| doc.version < *p) {
            return Err(invalid(format!(
                "timestamp version {} is older than {p}, seen before (rollback)",
                doc.version
            )));
        }
        self.timestamp = Some((doc.version, ts));
        Ok(())
    }

    /// What the timestamp says of the snapshot.
    pub fn snapshot_meta(&self) -> Result<&FileMeta, NotaryError> {
        let (_, ts) = self.timestamp.as_ref().ok_or_else(|| invalid("no timestamp yet"))?;
        ts.meta.get("snapshot").ok_or_else(|| invalid("timestamp lists no snapshot"))
    }

    pub fn update_snapshot(&mut self, bytes: &[u8], previous: Option<i64>) -> Result<(), NotaryError> {
        check_file("snapshot", bytes, self.snapshot_meta()?)?;
        let doc = Signed::parse(bytes)?;
        check_threshold("snapshot", &doc, &self.root.keys, &self.role_keys("snapshot"))?;
        let snap: Snapshot = doc.role("snapshot", "Snapshot")?;
        self.fresh("snapshot", &doc)?;
        if let Some(p) = previous.filter(|p| doc.version < *p) {
            return Err(invalid(format!("snapshot version {} is older than {p}, seen before (rollback)", doc.version)));
        }
        if let Some(listed) = snap.meta.get("root") {
            // The snapshot must describe the root we hold (a newer one would have been fetched first).
            check_file("root", &self.root_bytes, listed).map_err(|_| invalid("snapshot lists a different root"))?;
        }
        self.snapshot = Some((doc.version, snap));
        Ok(())
    }

    /// What the snapshot says of a targets role (`None`: the role is not published).
    pub fn role_meta(&self, role: &str) -> Option<&FileMeta> {
        self.snapshot.as_ref().and_then(|(_, s)| s.meta.get(role))
    }

    /// A targets role, top-level or delegated (its parent verified first), checked against the snapshot.
    pub fn update_targets(&mut self, role: &str, bytes: &[u8]) -> Result<(), NotaryError> {
        let meta = self.role_meta(role).ok_or_else(|| invalid(format!("snapshot does not list {role}")))?;
        check_file(role, bytes, meta)?;
        let doc = Signed::parse(bytes)?;
        let (keys, spec, paths) = if role == "targets" {
            (self.root.keys.clone(), self.role_keys("targets"), vec![String::new()])
        } else {
            let parent = parent_of(role).ok_or_else(|| invalid(format!("{role} is not a targets role")))?;
            let (pt, ppaths) = self.targets.get(parent).ok_or_else(|| invalid(format!("{parent} not loaded")))?;
            let d = pt
                .delegations
                .roles
                .iter()
                .find(|d| d.name == role)
                .ok_or_else(|| invalid(format!("{role} is not delegated by {parent}")))?;
            let spec = RoleKeys { keyids: d.keyids.clone(), threshold: d.threshold };
            if (spec.keyids.len() as i64) < spec.threshold {
                self.unusable.insert(role.into());
                return Ok(());
            }
            (pt.delegations.keys.clone(), spec, restrict_paths(ppaths, &d.paths))
        };
        let t = check_targets(role, &doc, &keys, &spec, self.now)?;
        self.targets.insert(role.into(), (t, paths));
        Ok(())
    }

    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role).map(|(t, _)| t)
    }

    /// The next step of docker's search for `name` (`targets/releases`' subtree, then `targets`'): `Ok(Found)` when
    /// a loaded role signs it within its paths; `Err(Some(role))` when `role` must be loaded next; `Err(None)` when
    /// nothing signs it.
    pub fn find(&self, name: &str) -> Result<Found, Option<String>> {
        let mut visited = 0;
        for start in ["targets/releases", "targets"] {
            let mut stack = vec![start.to_string()];
            while let Some(role) = stack.pop() {
                visited += 1;
                if visited > MAX_VISITED {
                    return Err(None);
                }
                if self.role_meta(&role).is_none() || self.unusable.contains(&role) {
                    continue; // Not published, or signs nothing.
                }
                let Some((t, paths)) = self.targets.get(&role) else { return Err(Some(role)) };
                if let Some(meta) = t.targets.get(name).filter(|_| delegation_allows(paths, name)) {
                    return Ok(Found { role, meta: meta.clone() });
                }
                // Children in their listed order: pushed reversed so the first pops first.
                for d in t
                    .delegations
                    .roles
                    .iter()
                    .rev()
                    .filter(|d| delegation_allows(&restrict_paths(paths, &d.paths), name))
                {
                    stack.push(d.name.clone());
                }
            }
        }
        Err(None)
    }

    fn role_keys(&self, role: &str) -> RoleKeys {
        self.root.roles.get(role).cloned().unwrap_or(RoleKeys { keyids: vec![], threshold: 1 })
    }

    fn fresh(&self, role: &str, doc: &Signed) -> Result<(), NotaryError> {
        if doc.expires <= self.now {
            return Err(invalid(format!("{role} expired at {} (freeze)", format_time(doc.expires, 0))));
        }
        Ok(())
    }

    pub fn timestamp_version(&self) -> Option<i64> {
        self.timestamp.as_ref().map(|(v, _)| *v)
    }

    pub fn snapshot_version(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|(v, _)| *v)
    }
}
