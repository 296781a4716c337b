//! The client side of the TUF 1.0 update workflow (specification section 5), as a pure state machine: the caller
//! fetches bytes (size-bounded) and hands them in; this module decides whether to trust them. The step numbers in
//! comments are the specification's (5.3 root, 5.4 timestamp, 5.5 snapshot, 5.6 targets).

use std::collections::BTreeMap;

use super::{
    check_delegation_bounds, check_expiry, check_threshold, Envelope, MetaFile, Role, Root, Snapshot, Targets,
    Timestamp, TufError,
};
use crate::digest::Digest;

/// Metadata the client trusts, role by role, each verified against what came before it.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    root: Root,
    root_bytes: Vec<u8>,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
    delegated: BTreeMap<String, Targets>,
    now: i64,
    /// Whether a snapshot may drop a role an earlier one listed (see [`TrustedSet::strict`]).
    strict: bool,
}

fn decode<T: serde::de::DeserializeOwned>(env: &Envelope, expected: &'static str) -> Result<T, TufError> {
    if env.type_name() != Some(expected) {
        return Err(TufError::WrongType { role: expected.into(), expected });
    }
    // A major specification version other than 1, or a version below 1, is metadata this client cannot trust.
    let spec = env.signed.get("spec_version").and_then(|v| v.as_str()).unwrap_or("");
    let parts: Vec<&str> = spec.split('.').collect();
    if !(2..=3).contains(&parts.len())
        || parts[0] != "1"
        || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty())
    {
        return Err(TufError::BadRole { role: expected.into(), reason: format!("unsupported spec_version {spec:?}") });
    }
    if env.signed.get("version").and_then(|v| v.as_u64()).is_none_or(|v| v == 0) {
        return Err(TufError::BadRole { role: expected.into(), reason: "version must be a positive integer".into() });
    }
    env.decode()
}

impl TrustedSet {
    /// Starts from a trusted root (pinned or recorded on first use). It must be signed by its own threshold; it
    /// may be expired, since newer roots may follow (5.2, 5.3.1).
    pub fn new(root_bytes: &[u8], now: i64) -> Result<TrustedSet, TufError> {
        let env = Envelope::parse(root_bytes)?;
        let root: Root = decode(&env, "root")?;
        let r = root.role(Role::Root)?;
        check_threshold("root", &env, &root.keys, &r.keyids, r.threshold)?;
        Ok(TrustedSet {
            root,
            root_bytes: root_bytes.to_vec(),
            timestamp: None,
            snapshot: None,
            targets: None,
            delegated: BTreeMap::new(),
            now,
            strict: false,
        })
    }

    /// Applies the specification's 5.5.5 to the letter: every targets file the previous snapshot listed must stay
    /// listed. Wharf's own pulls leave this off, because Wharf's trust service drops a revoked delegation from
    /// snapshot; the standalone TUF client turns it on.
    pub fn strict(mut self) -> TrustedSet {
        self.strict = true;
        self
    }

    /// Checks `bytes` as `role` metadata signed by the trusted root's keys for it, without loading it: used to
    /// decide whether a locally cached timestamp or snapshot may serve as the rollback reference (5.3.11: after a
    /// key rotation, the old files no longer verify and are ignored).
    pub fn verify_signed_by_root<T: serde::de::DeserializeOwned>(
        &self,
        role: Role,
        bytes: &[u8],
    ) -> Result<T, TufError> {
        let env = Envelope::parse(bytes)?;
        let r = self.root.role(role)?;
        check_threshold(role.as_str(), &env, &self.root.keys, &r.keyids, r.threshold)?;
        decode(&env, role.as_str())
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The bytes of the newest trusted root, to record for the next run.
    pub fn root_bytes(&self) -> &[u8] {
        &self.root_bytes
    }

    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    pub fn delegated(&self, name: &str) -> Option<&Targets> {
        self.delegated.get(name)
    }

    /// 5.3.4-5.3.9: a root of version N+1, signed by the thresholds of both the trusted root and itself.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::BadRole {
                role: "root".into(),
                reason: "root must be updated before timestamp".into(),
            });
        }
        let env = Envelope::parse(bytes)?;
        let new: Root = decode(&env, "root")?;
        let old = self.root.role(Role::Root)?;
        check_threshold("root (by the trusted root's keys)", &env, &self.root.keys, &old.keyids, old.threshold)?;
        let r = new.role(Role::Root)?;
        check_threshold("root", &env, &new.keys, &r.keyids, r.threshold)?;
        if new.version != self.root.version + 1 {
            return Err(TufError::Version {
                role: "root".into(),
                expected: (self.root.version + 1).to_string(),
                got: new.version,
            });
        }
        self.root = new;
        self.root_bytes = bytes.to_vec();
        Ok(())
    }

    /// 5.3.10: after the last root update, the trusted root must not be expired (freeze attack).
    pub fn finish_root(&self) -> Result<(), TufError> {
        check_expiry("root", self.root.expires.0, self.now)
    }

    /// 5.4: the timestamp, signed by root's timestamp keys, never older than the one trusted before
    /// (`previous`, from the local cache), and not expired.
    pub fn update_timestamp(&mut self, bytes: &[u8], previous: Option<&Timestamp>) -> Result<(), TufError> {
        self.finish_root()?;
        let env = Envelope::parse(bytes)?;
        let r = self.root.role(Role::Timestamp)?;
        check_threshold("timestamp", &env, &self.root.keys, &r.keyids, r.threshold)?;
        let new: Timestamp = decode(&env, "timestamp")?;
        let meta = snapshot_meta(&new)?;
        if let Some(prev) = previous {
            // 5.4.3.1 / 5.4.3.2: rollback of the timestamp or of the snapshot version it names.
            if new.version < prev.version {
                return Err(TufError::Version {
                    role: "timestamp".into(),
                    expected: format!("at least {}", prev.version),
                    got: new.version,
                });
            }
            let prev_meta = snapshot_meta(prev)?;
            if meta.version < prev_meta.version {
                return Err(TufError::Version {
                    role: "snapshot (named by timestamp)".into(),
                    expected: format!("at least {}", prev_meta.version),
                    got: meta.version,
                });
            }
        }
        check_expiry("timestamp", new.expires.0, self.now)?;
        self.timestamp = Some(new);
        Ok(())
    }

    /// 5.5: the snapshot the timestamp names (length, hashes, version), signed by root's snapshot keys, no targets
    /// version rolled back against `previous`, and not expired.
    pub fn update_snapshot(&mut self, bytes: &[u8], previous: Option<&Snapshot>) -> Result<(), TufError> {
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::BadRole {
            role: "snapshot".into(),
            reason: "timestamp must be loaded first".into(),
        })?;
        let meta = snapshot_meta(ts)?.clone();
        check_file("snapshot", bytes, &meta, "timestamp")?;
        let env = Envelope::parse(bytes)?;
        let r = self.root.role(Role::Snapshot)?;
        check_threshold("snapshot", &env, &self.root.keys, &r.keyids, r.threshold)?;
        let new: Snapshot = decode(&env, "snapshot")?;
        if new.version != meta.version {
            return Err(TufError::Mismatch { role: "snapshot".into(), what: "version", by: "timestamp" });
        }
        if let Some(prev) = previous {
            for (name, old) in &prev.meta {
                match new.meta.get(name) {
                    Some(m) if m.version >= old.version => {}
                    Some(m) => {
                        return Err(TufError::Version {
                            role: format!("{name} (named by snapshot)"),
                            expected: format!("at least {}", old.version),
                            got: m.version,
                        })
                    }
                    None if name == "targets.json" || self.strict => {
                        return Err(TufError::BadRole {
                            role: "snapshot".into(),
                            reason: "targets.json disappeared".into(),
                        })
                    }
                    // A delegated role that is no longer listed was revoked: that is allowed.
                    None => {}
                }
            }
        }
        check_expiry("snapshot", new.expires.0, self.now)?;
        self.snapshot = Some(new);
        Ok(())
    }

    /// 5.6: top-level targets, of the version snapshot names, signed by root's targets keys, not expired.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        let meta = self.snapshot_entry("targets")?;
        check_file("targets", bytes, &meta, "snapshot")?;
        let env = Envelope::parse(bytes)?;
        let r = self.root.role(Role::Targets)?;
        check_threshold("targets", &env, &self.root.keys, &r.keyids, r.threshold)?;
        let new: Targets = decode(&env, "targets")?;
        check_delegation_bounds("targets", &new)?;
        if new.version != meta.version {
            return Err(TufError::Mismatch { role: "targets".into(), what: "version", by: "snapshot" });
        }
        check_expiry("targets", new.expires.0, self.now)?;
        self.targets = Some(new);
        Ok(())
    }

    /// 5.6.7: a delegated targets role, verified with the keys and threshold of the delegation in `delegator`.
    pub fn update_delegated(&mut self, name: &str, bytes: &[u8], delegator: &str) -> Result<(), TufError> {
        let parent = if delegator == "targets" { self.targets.as_ref() } else { self.delegated.get(delegator) };
        let parent = parent.ok_or_else(|| TufError::BadRole {
            role: name.into(),
            reason: format!("delegator {delegator} not loaded"),
        })?;
        let d = parent.delegations.as_ref().ok_or_else(|| TufError::UnknownRole(name.into()))?;
        let role = d.roles.iter().find(|r| r.name == name).ok_or_else(|| TufError::UnknownRole(name.into()))?;
        let meta = self.snapshot_entry(name)?;
        check_file(name, bytes, &meta, "snapshot")?;
        let env = Envelope::parse(bytes)?;
        check_threshold(name, &env, &d.keys, &role.keyids, role.threshold)?;
        let new: Targets = decode(&env, "targets")?;
        check_delegation_bounds(name, &new)?;
        if new.version != meta.version {
            return Err(TufError::Mismatch { role: name.into(), what: "version", by: "snapshot" });
        }
        check_expiry(name, new.expires.0, self.now)?;
        self.delegated.insert(name.to_string(), new);
        Ok(())
    }

    /// The version of `role` that snapshot names; the caller downloads `<version>.<role>.json`.
    pub fn snapshot_entry(&self, role: &str) -> Result<MetaFile, TufError> {
        let snap = self
            .snapshot
            .as_ref()
            .ok_or_else(|| TufError::BadRole { role: role.into(), reason: "snapshot must be loaded first".into() })?;
        snap.meta.get(&format!("{role}.json")).cloned().ok_or_else(|| TufError::BadRole {
            role: role.into(),
            reason: "not listed in snapshot (revoked or unknown)".into(),
        })
    }
}

fn snapshot_meta(ts: &Timestamp) -> Result<&MetaFile, TufError> {
    ts.meta
        .get("snapshot.json")
        .ok_or_else(|| TufError::BadRole { role: "timestamp".into(), reason: "no snapshot.json in meta".into() })
}

/// Checks length and every hash the referring metadata gives (sha256 and sha512; an algorithm Wharf cannot
/// compute is a mismatch, never a pass).
pub fn check_file(role: &str, bytes: &[u8], meta: &MetaFile, by: &'static str) -> Result<(), TufError> {
    if meta.length.is_some_and(|l| l != bytes.len() as u64) {
        return Err(TufError::Mismatch { role: role.into(), what: "length", by });
    }
    check_hashes(role, bytes, meta.hashes.iter().flatten(), by)
}

/// Checks `bytes` against each `(algorithm, hex)` pair.
pub fn check_hashes<'a>(
    role: &str,
    bytes: &[u8],
    hashes: impl IntoIterator<Item = (&'a String, &'a String)>,
    by: &'static str,
) -> Result<(), TufError> {
    for (alg, want) in hashes {
        let got = match alg.as_str() {
            "sha256" => Digest::sha256_of(bytes).hex().to_string(),
            "sha512" => hex::encode(<sha2::Sha512 as sha2::Digest>::digest(bytes)),
            _ => return Err(TufError::Mismatch { role: role.into(), what: "hash (unsupported algorithm)", by }),
        };
        if !got.eq_ignore_ascii_case(want) {
            return Err(TufError::Mismatch { role: role.into(), what: "hash", by });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{
        DelegatedRole, Delegations, Envelope, Expires, MetaFile, RoleKeys, Root, SigningKey, Snapshot, TargetFile,
        Targets, Timestamp, TufError, SPEC_VERSION,
    };
    use super::TrustedSet;

    const NOW: i64 = 1_900_000_000;

    struct Keys {
        root: SigningKey,
        targets: SigningKey,
        snapshot: SigningKey,
        timestamp: SigningKey,
        deleg: SigningKey,
    }

    fn keys() -> Keys {
        let k = |n| SigningKey::from_bytes(&[n; 32]);
        Keys { root: k(1), targets: k(2), snapshot: k(3), timestamp: k(4), deleg: k(5) }
    }

    fn root(k: &Keys, version: u64, root_key: &SigningKey, expires: i64) -> Root {
        let all = [root_key, &k.targets, &k.snapshot, &k.timestamp];
        let role = |s: &SigningKey| RoleKeys { keyids: vec![s.key_id().clone()], threshold: 1 };
        Root {
            type_: "root".into(),
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version,
            expires: Expires(expires),
            keys: all.iter().map(|s| (s.key_id().clone(), s.public().clone())).collect(),
            roles: BTreeMap::from([
                ("root".into(), role(root_key)),
                ("targets".into(), role(&k.targets)),
                ("snapshot".into(), role(&k.snapshot)),
                ("timestamp".into(), role(&k.timestamp)),
            ]),
        }
    }

    fn bytes<T: serde::Serialize>(doc: &T, keys: &[&SigningKey]) -> Vec<u8> {
        Envelope::sign(doc, keys).unwrap().to_bytes().unwrap()
    }

    fn targets(version: u64, tag: &str, deleg: Option<&SigningKey>) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version,
            expires: Expires(NOW + 1000),
            targets: BTreeMap::from([(
                tag.to_string(),
                TargetFile { length: 10, hashes: BTreeMap::from([("sha256".into(), "a".repeat(64))]), custom: None },
            )]),
            delegations: deleg.map(|d| Delegations {
                keys: BTreeMap::from([(d.key_id().clone(), d.public().clone())]),
                roles: vec![DelegatedRole {
                    name: "team".into(),
                    keyids: vec![d.key_id().clone()],
                    threshold: 1,
                    terminating: false,
                    paths: Some(vec!["*".into()]),
                    path_hash_prefixes: None,
                }],
            }),
        }
    }

    fn snapshot(version: u64, targets_version: u64, team: Option<u64>, expires: i64) -> Snapshot {
        let mut meta = BTreeMap::from([(
            "targets.json".to_string(),
            MetaFile { version: targets_version, length: None, hashes: None },
        )]);
        if let Some(v) = team {
            meta.insert("team.json".into(), MetaFile { version: v, length: None, hashes: None });
        }
        Snapshot {
            type_: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version,
            expires: Expires(expires),
            meta,
        }
    }

    fn timestamp(version: u64, snap: &[u8], snap_version: u64, expires: i64) -> Timestamp {
        let meta = MetaFile {
            version: snap_version,
            length: Some(snap.len() as u64),
            hashes: Some(BTreeMap::from([("sha256".into(), crate::Digest::sha256_of(snap).hex().to_string())])),
        };
        Timestamp {
            type_: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version,
            expires: Expires(expires),
            meta: BTreeMap::from([("snapshot.json".to_string(), meta)]),
        }
    }

    /// A full, valid chain: root v1, timestamp, snapshot, targets (delegating to "team"), team.
    /// Root, timestamp, snapshot, targets and the delegated role, as bytes.
    type Chain = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

    fn chain(k: &Keys) -> Chain {
        let r = bytes(&root(k, 1, &k.root, NOW + 1000), &[&k.root]);
        let t = bytes(&targets(1, "v1", Some(&k.deleg)), &[&k.targets]);
        let team = bytes(&targets(1, "v2", None), &[&k.deleg]);
        let s = bytes(&snapshot(1, 1, Some(1), NOW + 1000), &[&k.snapshot]);
        let ts = bytes(&timestamp(1, &s, 1, NOW + 100), &[&k.timestamp]);
        (r, ts, s, t, team)
    }

    #[test]
    fn a_valid_chain_loads() {
        let k = keys();
        let (r, ts, s, t, team) = chain(&k);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        set.update_timestamp(&ts, None).unwrap();
        set.update_snapshot(&s, None).unwrap();
        set.update_targets(&t).unwrap();
        set.update_delegated("team", &team, "targets").unwrap();
        assert!(set.targets().unwrap().targets.contains_key("v1"));
        assert!(set.delegated("team").unwrap().targets.contains_key("v2"));
    }

    #[test]
    fn root_rotation_needs_both_thresholds_and_the_next_version() {
        let k = keys();
        let (r, ..) = chain(&k);
        let new_key = SigningKey::from_bytes(&[9; 32]);
        let r2 = root(&k, 2, &new_key, NOW + 1000);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        assert!(matches!(set.update_root(&bytes(&r2, &[&new_key])), Err(TufError::Threshold { .. })));
        assert!(matches!(set.update_root(&bytes(&r2, &[&k.root])), Err(TufError::Threshold { .. })));
        let r3 = root(&k, 3, &new_key, NOW + 1000);
        assert!(matches!(set.update_root(&bytes(&r3, &[&k.root, &new_key])), Err(TufError::Version { .. })));
        set.update_root(&bytes(&r2, &[&k.root, &new_key])).unwrap();
        assert_eq!(set.root().version, 2);
    }

    #[test]
    fn expired_root_or_timestamp_is_a_freeze() {
        let k = keys();
        let r = bytes(&root(&k, 1, &k.root, NOW - 1), &[&k.root]);
        let set = TrustedSet::new(&r, NOW).unwrap();
        assert!(matches!(set.finish_root(), Err(TufError::Expired { .. })));
        let (r, _, s, ..) = chain(&k);
        let stale = bytes(&timestamp(1, &s, 1, NOW - 5), &[&k.timestamp]);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        assert!(matches!(set.update_timestamp(&stale, None), Err(TufError::Expired { .. })));
    }

    #[test]
    fn rollbacks_are_refused() {
        let k = keys();
        let (r, ts, s, ..) = chain(&k);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        let prev_ts = timestamp(5, &s, 3, NOW + 100);
        assert!(matches!(set.update_timestamp(&ts, Some(&prev_ts)), Err(TufError::Version { .. })));
        let prev_ts = timestamp(1, &s, 3, NOW + 100);
        assert!(matches!(set.update_timestamp(&ts, Some(&prev_ts)), Err(TufError::Version { .. })));
        set.update_timestamp(&ts, None).unwrap();
        let prev_snap = snapshot(1, 7, Some(1), NOW + 1000);
        assert!(matches!(set.update_snapshot(&s, Some(&prev_snap)), Err(TufError::Version { .. })));
    }

    #[test]
    fn mix_and_match_and_tampering_are_refused() {
        let k = keys();
        let (r, ts, s, t, _) = chain(&k);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        set.update_timestamp(&ts, None).unwrap();
        // A different (validly signed) snapshot than the one the timestamp names.
        let other = bytes(&snapshot(1, 2, Some(1), NOW + 1000), &[&k.snapshot]);
        assert!(matches!(set.update_snapshot(&other, None), Err(TufError::Mismatch { what: "length" | "hash", .. })));
        set.update_snapshot(&s, None).unwrap();
        // Targets of another version than snapshot names.
        let t2 = bytes(&targets(2, "v1", Some(&k.deleg)), &[&k.targets]);
        assert!(matches!(set.update_targets(&t2), Err(TufError::Mismatch { what: "version", .. })));
        // A tag pointed elsewhere without the targets key.
        let forged = bytes(&targets(1, "v1", Some(&k.deleg)), &[&k.deleg]);
        assert!(matches!(set.update_targets(&forged), Err(TufError::Threshold { .. })));
        set.update_targets(&t).unwrap();
    }

    #[test]
    fn revoked_delegation_is_not_loadable() {
        let k = keys();
        let r = bytes(&root(&k, 1, &k.root, NOW + 1000), &[&k.root]);
        let t = bytes(&targets(2, "v1", None), &[&k.targets]);
        let s = bytes(&snapshot(2, 2, None, NOW + 1000), &[&k.snapshot]);
        let ts = bytes(&timestamp(2, &s, 2, NOW + 100), &[&k.timestamp]);
        let team = bytes(&targets(1, "v2", None), &[&k.deleg]);
        let mut set = TrustedSet::new(&r, NOW).unwrap();
        set.update_timestamp(&ts, None).unwrap();
        set.update_snapshot(&s, Some(&snapshot(1, 1, Some(1), NOW + 1000))).unwrap();
        set.update_targets(&t).unwrap();
        assert!(matches!(set.update_delegated("team", &team, "targets"), Err(TufError::UnknownRole(_))));
    }
}
