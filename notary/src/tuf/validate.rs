//! Checking an upload of root, targets and delegated targets metadata against the trusted state. Pure: the
//! caller passes the current state and the time.

use std::collections::{BTreeMap, BTreeSet};

use wharf_format::tuf::{
    check_delegation_bounds, check_expiry, check_threshold, path_delegated, DelegatedRole, Delegations, Envelope,
    KeyId, PublicKey, Role, RoleName, Root, TargetFile, Targets, TufError,
};
use wharf_format::Tag;

/// What the service holds now for a repository.
#[derive(Debug, Default, Clone)]
pub struct Current {
    pub root: Option<Root>,
    pub targets: Option<(Targets, Envelope)>,
    pub delegated: BTreeMap<String, Targets>,
}

/// What a publisher sends.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    #[serde(default)]
    pub root: Option<Envelope>,
    #[serde(default)]
    pub targets: Option<Envelope>,
    #[serde(default)]
    pub delegations: BTreeMap<String, Envelope>,
}

/// The metadata that passed every rule, ready to store.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    pub root: Option<(Root, Envelope)>,
    pub targets: Option<(Targets, Envelope)>,
    pub delegated: Vec<(String, Targets, Envelope)>,
}

/// The service's own key ids, which a root must name for timestamp and snapshot.
#[derive(Debug, Clone, Default)]
pub struct ServiceKeyIds {
    pub timestamp: Vec<KeyId>,
    pub snapshot: Vec<KeyId>,
}

pub fn validate(cur: &Current, up: &Upload, service: &ServiceKeyIds, now: i64) -> Result<Accepted, TufError> {
    let mut out = Accepted::default();
    let root = match &up.root {
        Some(env) => {
            let new = check_root(cur.root.as_ref(), env, service, now)?;
            out.root = Some((new.clone(), env.clone()));
            new
        }
        None => cur.root.clone().ok_or_else(|| TufError::BadRole {
            role: "root".into(),
            reason: "the repository has no root yet: publish root first".into(),
        })?,
    };
    let targets_keys = root.role(Role::Targets)?;
    let targets = match &up.targets {
        Some(env) => {
            let t: Targets = decode(env, "targets")?;
            check_threshold("targets", env, &root.keys, &targets_keys.keyids, targets_keys.threshold)?;
            check_version("targets", cur.targets.as_ref().map(|(t, _)| t.version), t.version)?;
            check_expiry("targets", t.expires.0, now)?;
            check_targets("targets", &t.targets, None)?;
            if let Some(d) = &t.delegations {
                check_delegations("targets", &t, d)?;
            }
            out.targets = Some((t.clone(), env.clone()));
            Some(t)
        }
        None => {
            if let (Some((_, env)), Some(_)) = (&cur.targets, &up.root) {
                // A new root may replace the targets keys: the targets clients will fetch must still verify.
                check_threshold("targets", env, &root.keys, &targets_keys.keyids, targets_keys.threshold).map_err(
                    |_| TufError::BadRole {
                        role: "targets".into(),
                        reason: "the current targets metadata is not signed by the new root's targets keys: \
                                 upload re-signed targets with the new root"
                            .into(),
                    },
                )?;
            }
            cur.targets.as_ref().map(|(t, _)| t.clone())
        }
    };
    // Delegated roles: each is checked against the delegation that names it, in the newest metadata.
    let mut delegators: Vec<(String, Targets)> = Vec::new();
    if let Some(t) = &targets {
        delegators.push(("targets".into(), t.clone()));
    }
    for (name, t) in &cur.delegated {
        if !up.delegations.contains_key(name) {
            delegators.push((name.clone(), t.clone()));
        }
    }
    let mut pending: Vec<(&String, &Envelope)> = up.delegations.iter().collect();
    // Uploaded roles may delegate to each other; check parents before children.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (name, env) in pending {
            match find_delegation(&delegators, name) {
                Some((keys, drole)) => {
                    let t = check_delegated(name, env, &keys, &drole, cur.delegated.get(name), now)?;
                    delegators.push((name.clone(), t.clone()));
                    out.delegated.push((name.clone(), t, env.clone()));
                }
                None => rest.push((name, env)),
            }
        }
        if rest.len() == before {
            let (name, _) = rest[0];
            return Err(match name.parse::<RoleName>() {
                Ok(RoleName::Delegated(_)) => TufError::BadRole {
                    role: name.clone(),
                    reason: "no targets metadata delegates to this role".into(),
                },
                _ => TufError::UnknownRole(name.clone()),
            });
        }
        pending = rest;
    }
    Ok(out)
}

/// The delegated roles reachable from the top-level targets, with the newest version of each.
pub fn reachable(targets: &Targets, delegated: &BTreeMap<String, (Targets, u64)>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut queue: Vec<&Targets> = vec![targets];
    let mut seen = BTreeSet::new();
    while let Some(t) = queue.pop() {
        for r in t.delegations.iter().flat_map(|d| d.roles.iter()) {
            if seen.insert(r.name.clone()) {
                if let Some((dt, v)) = delegated.get(&r.name) {
                    out.insert(r.name.clone(), *v);
                    queue.push(dt);
                }
            }
        }
    }
    out
}

fn decode<T: serde::de::DeserializeOwned>(env: &Envelope, expected: &'static str) -> Result<T, TufError> {
    if env.type_name() != Some(expected) {
        return Err(TufError::WrongType { role: expected.into(), expected });
    }
    env.decode()
}

fn check_version(role: &str, current: Option<u64>, got: u64) -> Result<(), TufError> {
    let min = current.map_or(1, |c| c + 1);
    if got < min {
        return Err(TufError::Version { role: role.into(), expected: format!("at least {min}"), got });
    }
    Ok(())
}

fn check_keys(role: &str, keys: &BTreeMap<KeyId, PublicKey>) -> Result<(), TufError> {
    for (id, key) in keys {
        key.check_supported(role)?;
        if key.key_id() != *id {
            return Err(TufError::KeyIdMismatch { role: role.into(), key_id: id.clone() });
        }
    }
    Ok(())
}

fn check_root(old: Option<&Root>, env: &Envelope, service: &ServiceKeyIds, now: i64) -> Result<Root, TufError> {
    let new: Root = decode(env, "root")?;
    if !new.spec_version.starts_with("1.") {
        return Err(TufError::BadRole {
            role: "root".into(),
            reason: format!("spec_version {} is not 1.x", new.spec_version),
        });
    }
    if !new.consistent_snapshot {
        return Err(TufError::BadRole { role: "root".into(), reason: "consistent_snapshot must be true".into() });
    }
    check_keys("root", &new.keys)?;
    for role in [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp] {
        let r = new.role(role)?;
        if r.threshold == 0 || r.keyids.iter().any(|k| !new.keys.contains_key(k)) {
            return Err(TufError::BadRole {
                role: "root".into(),
                reason: format!("the {} role needs threshold >= 1 and keys listed in root.keys", role.as_str()),
            });
        }
    }
    if let Some(extra) =
        new.roles.keys().find(|r| r.parse::<RoleName>().map_or(true, |n| matches!(n, RoleName::Delegated(_))))
    {
        return Err(TufError::UnknownRole(extra.clone()));
    }
    check_version("root", old.map(|r| r.version), new.version)?;
    let expected = old.map_or(1, |r| r.version + 1);
    if new.version != expected {
        return Err(TufError::Version { role: "root".into(), expected: expected.to_string(), got: new.version });
    }
    if let Some(old) = old {
        let r = old.role(Role::Root)?;
        check_threshold("root (by the previous root's keys)", env, &old.keys, &r.keyids, r.threshold)?;
    }
    let r = new.role(Role::Root)?;
    check_threshold("root", env, &new.keys, &r.keyids, r.threshold)?;
    check_expiry("root", new.expires.0, now)?;
    for (role, ids) in [(Role::Timestamp, &service.timestamp), (Role::Snapshot, &service.snapshot)] {
        let r = new.role(role)?;
        let named = r.keyids.iter().filter(|k| ids.contains(k)).count();
        if named < r.threshold as usize {
            return Err(TufError::BadRole {
                role: "root".into(),
                reason: format!(
                    "the {} role must name at least {} of the service's {} keys (see POST /v2/<name>/_tuf/keys)",
                    role.as_str(),
                    r.threshold,
                    role.as_str()
                ),
            });
        }
    }
    Ok(new)
}

fn check_targets(
    role: &str,
    targets: &BTreeMap<String, TargetFile>,
    delegation: Option<&DelegatedRole>,
) -> Result<(), TufError> {
    for (name, t) in targets {
        let bad = |reason: &str| TufError::BadTarget { role: role.into(), target: name.clone(), reason: reason.into() };
        if name.parse::<Tag>().is_err() {
            return Err(bad("a target name is a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})"));
        }
        match t.hashes.get("sha256") {
            Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {}
            _ => return Err(bad("every target needs hashes.sha256 (64 lowercase hex)")),
        }
        if t.length == 0 {
            return Err(bad("length must be the manifest's size in bytes"));
        }
        if let Some(d) = delegation {
            if !path_delegated(d, name) {
                return Err(TufError::OutsideDelegation { role: role.into(), target: name.clone() });
            }
        }
    }
    Ok(())
}

fn check_delegations(role: &str, t: &Targets, d: &Delegations) -> Result<(), TufError> {
    check_delegation_bounds(role, t)?;
    if d.succinct_roles.is_some() {
        return Err(TufError::BadRole {
            role: role.into(),
            reason: "succinct_roles (hash-bin delegations) are not accepted by this trust service".into(),
        });
    }
    check_keys(role, &d.keys)?;
    let mut names = BTreeSet::new();
    for r in &d.roles {
        match r.name.parse::<RoleName>() {
            Ok(RoleName::Delegated(_)) => {}
            _ => return Err(TufError::UnknownRole(r.name.clone())),
        }
        if !names.insert(&r.name) {
            return Err(TufError::BadRole { role: role.into(), reason: format!("delegates to {} twice", r.name) });
        }
        if r.threshold == 0 || r.keyids.iter().any(|k| !d.keys.contains_key(k)) {
            return Err(TufError::BadRole {
                role: role.into(),
                reason: format!("delegation {} needs threshold >= 1 and keys listed in delegations.keys", r.name),
            });
        }
        if r.paths.is_some() == r.path_hash_prefixes.is_some() {
            return Err(TufError::BadRole {
                role: role.into(),
                reason: format!("delegation {} needs exactly one of paths and path_hash_prefixes", r.name),
            });
        }
    }
    Ok(())
}

fn find_delegation(
    delegators: &[(String, Targets)],
    name: &str,
) -> Option<(BTreeMap<KeyId, PublicKey>, DelegatedRole)> {
    delegators.iter().find_map(|(_, t)| {
        let d = t.delegations.as_ref()?;
        let role = d.roles.iter().find(|r| r.name == name)?;
        Some((d.keys.clone(), role.clone()))
    })
}

fn check_delegated(
    name: &str,
    env: &Envelope,
    keys: &BTreeMap<KeyId, PublicKey>,
    drole: &DelegatedRole,
    current: Option<&Targets>,
    now: i64,
) -> Result<Targets, TufError> {
    check_threshold(name, env, keys, &drole.keyids, drole.threshold)?;
    let t: Targets = decode(env, "targets")?;
    check_version(name, current.map(|c| c.version), t.version)?;
    check_expiry(name, t.expires.0, now)?;
    check_targets(name, &t.targets, Some(drole))?;
    if let Some(d) = &t.delegations {
        check_delegations(name, &t, d)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests;
