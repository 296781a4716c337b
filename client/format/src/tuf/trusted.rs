//! The client side of the TUF 1.0 update workflow (specification section 5), as a pure state machine: the caller
//! fetches bytes (size-bounded) and hands them in; this module decides whether to trust them. The step numbers in
//! comments are the specification's (5.3 root, 5.4 timestamp, 5.5 snapshot, 5.6 targets).

use std::collections::BTreeMap;

use super::{
    check_delegation_bounds, check_expiry, check_threshold, valid_signers, Delegations, Envelope, KeyId, MetaFile,
    Role, Root, Snapshot, Targets, Timestamp, TufError,
};
use crate::digest::Digest;

/// What [`TrustedSet::update_timestamp`] did with a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum TimestampUpdate {
    /// The new timestamp is trusted; the caller records its bytes.
    Accepted,
    /// It had the version of the previous one: it was discarded, the previous one stays trusted and recorded.
    KeptPrevious,
}

/// Metadata the client trusts, role by role, each verified against what came before it.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    root: Root,
    root_bytes: Vec<u8>,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
    /// The envelope top-level targets came in, to name its signers ([`TrustedSet::signers`]).
    targets_env: Option<Envelope>,
    /// Delegated roles by name, with the envelope they came in, so that each further delegator that names the
    /// role can check its own keys and threshold against it ([`TrustedSet::delegated_via`]).
    delegated: BTreeMap<String, (Envelope, Targets)>,
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
            targets_env: None,
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

    /// A delegated role as loaded by [`TrustedSet::update_delegated`], through the delegator given there. On a
    /// delegation search, where another delegator may name the same role, use [`TrustedSet::delegated_via`].
    pub fn delegated(&self, name: &str) -> Option<&Targets> {
        self.delegated.get(name).map(|(_, t)| t)
    }

    /// A delegated role already loaded (through any delegator), trusted through `delegator` only if it carries
    /// the threshold of signatures that `delegator`'s delegation to it asks for; `None` if it is not loaded.
    ///
    /// 5.6.7.2 on every path: in a diamond (two delegators naming one role, each with its own keys), the role
    /// loaded through the first delegator is checked again against the second one's keys when the search reaches
    /// it through the second, so it never inherits authority from another path. Diamonds are allowed, not
    /// refused: each path is verified on its own.
    pub fn delegated_via(&self, name: &str, delegator: &str) -> Result<Option<&Targets>, TufError> {
        let Some((env, targets)) = self.delegated.get(name) else { return Ok(None) };
        let d = self.delegation(name, delegator)?;
        let (keyids, threshold) = d.role_keys(name).ok_or_else(|| TufError::UnknownRole(name.into()))?;
        check_threshold(name, env, &d.keys, keyids, threshold)?;
        Ok(Some(targets))
    }

    /// The key IDs whose signatures on the loaded `role` (top-level `targets`, or a delegated role) verify, among
    /// the keys root or its delegators list for it: who signed what a search found there, for policies that name
    /// keys. Empty when the role is not loaded.
    pub fn signers(&self, role: &str) -> Result<Vec<KeyId>, TufError> {
        if role == "targets" {
            let Some(env) = &self.targets_env else { return Ok(Vec::new()) };
            let r = self.root.role(Role::Targets)?;
            return valid_signers(env, &self.root.keys, &r.keyids);
        }
        let Some((env, _)) = self.delegated.get(role) else { return Ok(Vec::new()) };
        let mut out: Vec<KeyId> = Vec::new();
        let delegators = self.targets.iter().chain(self.delegated.values().map(|(_, t)| t));
        for d in delegators.filter_map(|t| t.delegations.as_ref()) {
            if let Some((ids, _)) = d.role_keys(role) {
                out.extend(valid_signers(env, &d.keys, ids)?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
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
    /// (`previous`: one this client verified earlier, as the local cache keeps it), and not expired.
    ///
    /// 5.4.3.1: a new timestamp of the same version as `previous` is discarded and `previous` stays trusted
    /// (python-tuf's rule): a repository that re-signs a version with other content gets no say, and the caller
    /// must not record the new bytes ([`TimestampUpdate::KeptPrevious`]).
    pub fn update_timestamp(
        &mut self,
        bytes: &[u8],
        previous: Option<&Timestamp>,
    ) -> Result<TimestampUpdate, TufError> {
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
            if new.version == prev.version {
                // 5.4.4 still applies to the timestamp kept: an expired one is a freeze.
                check_expiry("timestamp", prev.expires.0, self.now)?;
                snapshot_meta(prev)?;
                self.timestamp = Some(prev.clone());
                return Ok(TimestampUpdate::KeptPrevious);
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
        Ok(TimestampUpdate::Accepted)
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
        self.targets_env = Some(env);
        Ok(())
    }

    /// 5.6.7: a delegated targets role, verified with the keys and threshold of the delegation in `delegator`.
    pub fn update_delegated(&mut self, name: &str, bytes: &[u8], delegator: &str) -> Result<(), TufError> {
        let d = self.delegation(name, delegator)?;
        let (keyids, threshold) = d.role_keys(name).ok_or_else(|| TufError::UnknownRole(name.into()))?;
        let meta = self.snapshot_entry(name)?;
        check_file(name, bytes, &meta, "snapshot")?;
        let env = Envelope::parse(bytes)?;
        check_threshold(name, &env, &d.keys, keyids, threshold)?;
        let new: Targets = decode(&env, "targets")?;
        check_delegation_bounds(name, &new)?;
        if new.version != meta.version {
            return Err(TufError::Mismatch { role: name.into(), what: "version", by: "snapshot" });
        }
        check_expiry(name, new.expires.0, self.now)?;
        self.delegated.insert(name.to_string(), (env, new));
        Ok(())
    }

    /// The delegations of `delegator` (top-level targets or a loaded delegated role) that should name `name`.
    fn delegation(&self, name: &str, delegator: &str) -> Result<&Delegations, TufError> {
        let parent =
            if delegator == "targets" { self.targets.as_ref() } else { self.delegated.get(delegator).map(|(_, t)| t) };
        let parent = parent.ok_or_else(|| TufError::BadRole {
            role: name.into(),
            reason: format!("delegator {delegator} not loaded"),
        })?;
        parent.delegations.as_ref().ok_or_else(|| TufError::UnknownRole(name.into()))
    }

    /// What the trusted timestamp says of snapshot (5.5.1: the caller downloads that version, within its length).
    pub fn snapshot_meta(&self) -> Result<&MetaFile, TufError> {
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::BadRole {
            role: "snapshot".into(),
            reason: "timestamp must be loaded first".into(),
        })?;
        snapshot_meta(ts)
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
mod tests;
