//! `TrustedSet` tests: valid chains, rotations, freezes, rollbacks, mix-and-match and revocation.

use std::collections::BTreeMap;

use super::super::{
    DelegatedRole, Delegations, Envelope, Expires, MetaFile, RoleKeys, Root, Signature, SigningKey, Snapshot,
    TargetFile, Targets, Timestamp, TufError, SPEC_VERSION,
};
use super::{TimestampUpdate, TrustedSet};

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
            succinct_roles: None,
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
    Snapshot { type_: "snapshot".into(), spec_version: SPEC_VERSION.into(), version, expires: Expires(expires), meta }
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
    assert_eq!(set.update_timestamp(&ts, None), Ok(TimestampUpdate::Accepted));
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
    // A newer timestamp naming an older snapshot.
    let ts2 = bytes(&timestamp(2, &s, 1, NOW + 100), &[&k.timestamp]);
    let prev_ts = timestamp(1, &s, 3, NOW + 100);
    assert!(matches!(set.update_timestamp(&ts2, Some(&prev_ts)), Err(TufError::Version { .. })));
    assert_eq!(set.update_timestamp(&ts, None), Ok(TimestampUpdate::Accepted));
    let prev_snap = snapshot(1, 7, Some(1), NOW + 1000);
    assert!(matches!(set.update_snapshot(&s, Some(&prev_snap)), Err(TufError::Version { .. })));
}

#[test]
fn mix_and_match_and_tampering_are_refused() {
    let k = keys();
    let (r, ts, s, t, _) = chain(&k);
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    assert_eq!(set.update_timestamp(&ts, None), Ok(TimestampUpdate::Accepted));
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
    assert_eq!(set.update_timestamp(&ts, None), Ok(TimestampUpdate::Accepted));
    set.update_snapshot(&s, Some(&snapshot(1, 1, Some(1), NOW + 1000))).unwrap();
    set.update_targets(&t).unwrap();
    assert!(matches!(set.update_delegated("team", &team, "targets"), Err(TufError::UnknownRole(_))));
}

/// 5.4.3.1: a timestamp re-signed under the trusted version with other content (here: naming snapshot v100) is
/// discarded, and the trusted one stays, unless it has expired.
#[test]
fn a_timestamp_of_the_trusted_version_is_discarded() {
    let k = keys();
    let (r, _, s, ..) = chain(&k);
    let prev = timestamp(1, &s, 1, NOW + 100);
    let resigned = bytes(&timestamp(1, &s, 100, NOW + 500), &[&k.timestamp]);
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    assert_eq!(set.update_timestamp(&resigned, Some(&prev)), Ok(TimestampUpdate::KeptPrevious));
    assert_eq!(set.timestamp(), Some(&prev));
    set.update_snapshot(&s, None).unwrap();
    // The kept timestamp is still checked for a freeze.
    let stale = timestamp(1, &s, 1, NOW - 1);
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    assert!(matches!(set.update_timestamp(&resigned, Some(&stale)), Err(TufError::Expired { .. })));
}

/// A key id twice in `signatures` is refused, even where the one key meets the threshold.
#[test]
fn duplicate_signature_key_ids_are_refused() {
    let k = keys();
    let (r, ts, s, ..) = chain(&k);
    let mut env = Envelope::parse(&s).unwrap();
    let first = env.signatures[0].clone();
    env.signatures.push(Signature { keyid: first.keyid, sig: first.sig });
    let dup = env.to_bytes().unwrap();
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    let ts_dup = bytes(&timestamp(1, &dup, 1, NOW + 100), &[&k.timestamp]);
    assert_eq!(set.update_timestamp(&ts_dup, None), Ok(TimestampUpdate::Accepted));
    assert!(matches!(set.update_snapshot(&dup, None), Err(TufError::DuplicateSignature { .. })));
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    let mut env = Envelope::parse(&ts).unwrap();
    env.signatures.push(env.signatures[0].clone());
    let err = set.update_timestamp(&env.to_bytes().unwrap(), None);
    assert!(matches!(err, Err(TufError::DuplicateSignature { .. })));
}

/// A diamond: targets delegates "pa" and "pb", each delegates "release" with a key of its own, and "release" is
/// signed by pa's key only. Loaded through pa it is trusted through pa; reached through pb, it must not be.
#[test]
fn a_role_reached_through_a_second_delegator_is_verified_against_it() {
    let k = keys();
    let (ka, kb) = (SigningKey::from_bytes(&[11; 32]), SigningKey::from_bytes(&[12; 32]));
    let delegate = |to: &[(&str, &SigningKey)]| Delegations {
        keys: to.iter().map(|(_, s)| (s.key_id().clone(), s.public().clone())).collect(),
        succinct_roles: None,
        roles: to
            .iter()
            .map(|(name, s)| DelegatedRole {
                name: name.to_string(),
                keyids: vec![s.key_id().clone()],
                threshold: 1,
                terminating: false,
                paths: Some(vec!["*".into()]),
                path_hash_prefixes: None,
            })
            .collect(),
    };
    let mut top = targets(1, "v1", None);
    top.delegations = Some(delegate(&[("pa", &k.deleg), ("pb", &k.deleg)]));
    let mut pa = targets(1, "a", None);
    pa.delegations = Some(delegate(&[("release", &ka)]));
    let mut pb = targets(1, "b", None);
    pb.delegations = Some(delegate(&[("release", &kb)]));
    let release = bytes(&targets(1, "x", None), &[&ka]);
    let mut snap = snapshot(1, 1, None, NOW + 1000);
    for role in ["pa", "pb", "release"] {
        snap.meta.insert(format!("{role}.json"), MetaFile { version: 1, length: None, hashes: None });
    }
    let r = bytes(&root(&k, 1, &k.root, NOW + 1000), &[&k.root]);
    let s = bytes(&snap, &[&k.snapshot]);
    let mut set = TrustedSet::new(&r, NOW).unwrap();
    assert_eq!(
        set.update_timestamp(&bytes(&timestamp(1, &s, 1, NOW + 100), &[&k.timestamp]), None),
        Ok(TimestampUpdate::Accepted)
    );
    set.update_snapshot(&s, None).unwrap();
    set.update_targets(&bytes(&top, &[&k.targets])).unwrap();
    set.update_delegated("pa", &bytes(&pa, &[&k.deleg]), "targets").unwrap();
    set.update_delegated("pb", &bytes(&pb, &[&k.deleg]), "targets").unwrap();
    assert!(matches!(set.delegated_via("release", "pa"), Ok(None)));
    set.update_delegated("release", &release, "pa").unwrap();
    assert!(set.delegated_via("release", "pa").unwrap().is_some_and(|t| t.targets.contains_key("x")));
    assert!(matches!(set.delegated_via("release", "pb"), Err(TufError::Threshold { valid: 0, .. })));
    assert!(matches!(set.delegated_via("release", "targets"), Err(TufError::UnknownRole(_))));
    // Loading it afresh through pb fails the same way.
    assert!(matches!(set.update_delegated("release", &release, "pb"), Err(TufError::Threshold { .. })));
}
