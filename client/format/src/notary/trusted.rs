//! The client's side of a Notary v1 collection, as a pure state machine (the caller fetches, it decides): root
//! chain (each new root signed by the previous one's threshold and its own, certificates valid for the GUN),
//! timestamp (signature, freeze by expiry, rollback against the last version seen), snapshot and targets roles (by
//! the hashes and length the level above listed: no mix and match), delegations with their restricted prefix paths,
//! and the target search docker does (`targets/releases` first, then `targets`, each subtree pre-order).

use std::collections::BTreeMap;

use super::{
    check_file, check_root, check_targets, check_threshold, delegation_allows, format_time, invalid, parent_of,
    restrict_paths, FileMeta, RoleKeys, Root, Signed, Snapshot, Targets, Timestamp, V1MetadataError,
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
    pub fn new(trusted_root: &[u8], gun: &str, now: i64) -> Result<TrustedCollection, V1MetadataError> {
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
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), V1MetadataError> {
        let doc = Signed::parse(bytes)?;
        if doc.version != self.root.version + 1 {
            return Err(invalid(format!("root version {} where {} was expected", doc.version, self.root.version + 1)));
        }
        self.root = check_root(&doc, &self.gun, self.now, Some(&self.root))?;
        self.root_bytes = bytes.to_vec();
        Ok(())
    }

    /// The timestamp: signed by root's timestamp keys, unexpired, not older than `previous` (the version last seen).
    pub fn update_timestamp(&mut self, bytes: &[u8], previous: Option<i64>) -> Result<(), V1MetadataError> {
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
    pub fn snapshot_meta(&self) -> Result<&FileMeta, V1MetadataError> {
        let (_, ts) = self.timestamp.as_ref().ok_or_else(|| invalid("no timestamp yet"))?;
        ts.meta.get("snapshot").ok_or_else(|| invalid("timestamp lists no snapshot"))
    }

    pub fn update_snapshot(&mut self, bytes: &[u8], previous: Option<i64>) -> Result<(), V1MetadataError> {
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
    pub fn update_targets(&mut self, role: &str, bytes: &[u8]) -> Result<(), V1MetadataError> {
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
                if self.role_meta(&role).is_none() || self.unusable.contains(&role) || !self.may_sign(&role, name) {
                    continue; // Not published, signs nothing, or not delegated this name.
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

    /// Whether `role`'s delegation (when its parent is loaded) covers `name`.
    fn may_sign(&self, role: &str, name: &str) -> bool {
        let Some((parent, ppaths)) = parent_of(role).and_then(|p| self.targets.get(p)) else { return true };
        parent
            .delegations
            .roles
            .iter()
            .find(|d| d.name == role)
            .is_some_and(|d| delegation_allows(&restrict_paths(ppaths, &d.paths), name))
    }

    fn role_keys(&self, role: &str) -> RoleKeys {
        self.root.roles.get(role).cloned().unwrap_or(RoleKeys { keyids: vec![], threshold: 1 })
    }

    fn fresh(&self, role: &str, doc: &Signed) -> Result<(), V1MetadataError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notary::{file_meta, Key, Signer};
    use p256::pkcs8::DecodePrivateKey;
    use serde_json::{json, Value};

    const GUN: &str = "example.com/team/app";
    const NOW: i64 = 1_800_000_000;
    const LATER: i64 = 4_102_444_800;

    fn cert_signer(cn: &str) -> Signer {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&kp).unwrap();
        let sk = p256::ecdsa::SigningKey::from_pkcs8_der(&kp.serialize_der()).unwrap();
        Signer::ecdsa(sk, Some(Key::x509("ecdsa-x509", &cert.pem())))
    }

    fn ec() -> Signer {
        Signer::ecdsa(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), None)
    }

    /// A published collection: root, targets (`v1`, and `targets/releases` delegated `stable/` with `latest`
    /// outside it and `stable/1` inside), snapshot and timestamp, with the keys that made them.
    struct Repo {
        root: Signer,
        targets: Signer,
        snapshot: Signer,
        timestamp: Signer,
        releases: Signer,
    }

    fn sign(doc: Value, by: &[&Signer]) -> Vec<u8> {
        Signed::sign(&doc, by).unwrap()
    }

    impl Repo {
        fn new() -> Repo {
            Repo {
                root: cert_signer(GUN),
                targets: ec(),
                snapshot: ec(),
                timestamp: Signer::ed25519(&[5; 32]),
                releases: ec(),
            }
        }

        fn root(&self, version: i64, root_key: &Signer, by: &[&Signer]) -> Vec<u8> {
            let keys: serde_json::Map<String, Value> = [root_key, &self.targets, &self.snapshot, &self.timestamp]
                .iter()
                .map(|s| (s.key_id(), serde_json::to_value(s.public()).unwrap()))
                .collect();
            let role = |s: &Signer| json!({ "keyids": [s.key_id()], "threshold": 1 });
            sign(
                json!({ "_type": "Root", "consistent_snapshot": false, "expires": format_time(LATER, 0), "keys": keys,
                    "version": version, "roles": { "root": role(root_key), "targets": role(&self.targets),
                    "snapshot": role(&self.snapshot), "timestamp": role(&self.timestamp) } }),
                by,
            )
        }

        /// (root, targets, releases, snapshot, timestamp) with the timestamp expiring at `ts_expires`.
        fn docs(&self, ts_expires: i64, releases_keys: bool) -> [Vec<u8>; 5] {
            let root = self.root(1, &self.root, &[&self.root]);
            let r = self.releases.public();
            let keyids = if releases_keys { json!([r.id()]) } else { json!([]) };
            let targets = sign(
                json!({ "_type": "Targets", "expires": format_time(LATER, 0), "version": 1,
                    "targets": { "v1": file_meta(b"manifest one") },
                    "delegations": { "keys": { r.id(): r }, "roles": [{ "name": "targets/releases",
                        "keyids": keyids, "threshold": 1, "paths": ["stable/"] }] } }),
                &[&self.targets],
            );
            let releases = sign(
                json!({ "_type": "Targets", "expires": format_time(LATER, 0), "version": 1,
                    "delegations": { "keys": {}, "roles": [] },
                    "targets": { "latest": file_meta(b"sneaky"), "stable/1": file_meta(b"stable one") } }),
                &[&self.releases],
            );
            let snapshot = sign(
                json!({ "_type": "Snapshot", "expires": format_time(LATER, 0), "version": 3, "meta": {
                    "root": file_meta(&root), "targets": file_meta(&targets), "targets/releases": file_meta(&releases) } }),
                &[&self.snapshot],
            );
            let timestamp = sign(
                json!({ "_type": "Timestamp", "expires": format_time(ts_expires, 0), "version": 7,
                    "meta": { "snapshot": file_meta(&snapshot) } }),
                &[&self.timestamp],
            );
            [root, targets, releases, snapshot, timestamp]
        }
    }

    fn load(c: &mut TrustedCollection, d: &[Vec<u8>; 5]) -> Result<(), V1MetadataError> {
        c.update_timestamp(&d[4], None)?;
        c.update_snapshot(&d[3], None)?;
        c.update_targets("targets", &d[1])
    }

    #[test]
    fn verifies_and_searches_like_docker() {
        let repo = Repo::new();
        let d = repo.docs(LATER, true);
        let mut c = TrustedCollection::new(&d[0], GUN, NOW).unwrap();
        load(&mut c, &d).unwrap();
        assert_eq!(c.find("v1").unwrap().role, "targets");
        // `stable/1` needs targets/releases loaded first; `latest` is outside its paths, so nothing signs it.
        assert_eq!(c.find("stable/1"), Err(Some("targets/releases".into())));
        c.update_targets("targets/releases", &d[2]).unwrap();
        assert_eq!(c.find("stable/1").unwrap().role, "targets/releases");
        assert_eq!(c.find("latest"), Err(None));
        // A release role with no keys signs nothing, and the search goes on to `targets`.
        let d = repo.docs(LATER, false);
        let mut c = TrustedCollection::new(&d[0], GUN, NOW).unwrap();
        load(&mut c, &d).unwrap();
        c.update_targets("targets/releases", &d[2]).unwrap();
        assert_eq!(c.find("stable/1"), Err(None));
        assert_eq!(c.find("v1").unwrap().role, "targets");
    }

    #[test]
    fn refuses_rollback_freeze_mix_and_match_and_foreign_keys() {
        let repo = Repo::new();
        let d = repo.docs(LATER, true);
        let fresh = || TrustedCollection::new(&d[0], GUN, NOW).unwrap();
        // Rollback: a timestamp older than one seen before.
        assert!(fresh().update_timestamp(&d[4], Some(8)).is_err());
        assert!(fresh().update_timestamp(&d[4], Some(7)).is_ok());
        // Freeze: an expired timestamp.
        let stale = repo.docs(NOW - 1, true);
        let mut c = TrustedCollection::new(&stale[0], GUN, NOW).unwrap();
        assert!(c.update_timestamp(&stale[4], None).unwrap_err().to_string().contains("freeze"));
        // Mix and match: a snapshot or targets the level above did not list.
        let other = Repo::new().docs(LATER, true);
        let mut c = fresh();
        c.update_timestamp(&d[4], None).unwrap();
        assert!(c.update_snapshot(&other[3], None).is_err());
        c.update_snapshot(&d[3], None).unwrap();
        assert!(c.update_targets("targets", &other[1]).is_err());
        // A timestamp signed by a key root does not give the role.
        let forged = Signed::sign(&Signed::parse(&d[4]).unwrap().signed, &[&repo.targets]).unwrap();
        assert!(fresh().update_timestamp(&forged, None).is_err());
        // Root rotation: the new root must carry the old root's signature too.
        let new_root = cert_signer(GUN);
        assert!(fresh().update_root(&repo.root(2, &new_root, &[&new_root])).is_err());
        let mut c = fresh();
        c.update_root(&repo.root(2, &new_root, &[&new_root, &repo.root])).unwrap();
        assert_eq!(c.root().version, 2);
        // A root for another GUN is never trusted.
        assert!(TrustedCollection::new(
            &Repo { root: cert_signer("example.com/other"), ..Repo::new() }.docs(LATER, true)[0],
            GUN,
            NOW
        )
        .is_err());
    }
}
