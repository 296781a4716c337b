//! The TUF 1.0 upload rules as table rows: each row starts from a valid upload, breaks one rule, and names the error
//! it expects (`Variant(role)`, then words its message must contain). Documents are signed with the format's own
//! `Envelope::sign` and ed25519 keys.

use std::collections::BTreeMap;

use wharf_format::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, PublicKey, Role, RoleKeys, Root, SigningKey, SuccinctRoles,
    TargetFile, Targets, TufError, SPEC_VERSION,
};

use super::{validate, Accepted, Current, ServiceKeyIds, Upload};
use crate::testing::{self, LATER, NOW};

/// The keys, each made from its own seed: root, targets, the service's timestamp and snapshot, the delegated
/// role's, and a stranger's.
#[derive(Clone, Copy)]
enum K {
    Root = 1,
    Targets,
    Timestamp,
    Snapshot,
    Team,
    Other,
}

fn key(k: K) -> SigningKey {
    SigningKey::from_bytes(&[k as u8; 32])
}

fn id(k: K) -> String {
    key(k).key_id().clone()
}

fn public(k: K) -> PublicKey {
    key(k).public().clone()
}

fn sign<T: serde::Serialize>(doc: &T, keys: &[K]) -> Envelope {
    let keys: Vec<SigningKey> = keys.iter().map(|k| key(*k)).collect();
    Envelope::sign(doc, &keys.iter().collect::<Vec<_>>()).expect("a fixture signs")
}

fn role(k: K) -> RoleKeys {
    RoleKeys { keyids: vec![id(k)], threshold: 1 }
}

fn root(version: u64) -> Root {
    Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: Expires(LATER),
        keys: [K::Root, K::Targets, K::Timestamp, K::Snapshot].into_iter().map(|s| (id(s), public(s))).collect(),
        roles: [
            (Role::Root, K::Root),
            (Role::Targets, K::Targets),
            (Role::Timestamp, K::Timestamp),
            (Role::Snapshot, K::Snapshot),
        ]
        .into_iter()
        .map(|(r, s)| (r.as_str().to_string(), role(s)))
        .collect(),
    }
}

fn target() -> TargetFile {
    TargetFile { length: 528, hashes: BTreeMap::from([("sha256".into(), "ab".repeat(32))]), custom: None }
}

/// A delegation of `v*` to `name`, signed by the key `k`.
fn delegation(name: &str, k: K) -> DelegatedRole {
    let paths = Some(vec!["v*".into()]);
    DelegatedRole {
        name: name.into(),
        keyids: vec![id(k)],
        threshold: 1,
        terminating: false,
        paths,
        path_hash_prefixes: None,
    }
}

/// Targets listing `v1` and delegating `v*` to `team`.
fn targets(version: u64) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires(LATER),
        targets: BTreeMap::from([("v1".into(), target())]),
        delegations: Some(Delegations {
            keys: BTreeMap::from([(id(K::Team), public(K::Team))]),
            roles: vec![delegation("team", K::Team)],
            succinct_roles: None,
        }),
    }
}

/// The delegated role `team`, listing `v2`.
fn team(version: u64) -> Targets {
    Targets { targets: BTreeMap::from([("v2".into(), target())]), delegations: None, ..targets(version) }
}

/// One upload: what is stored, the documents to upload with the keys that sign them, and a last edit of the
/// signed envelopes.
struct Case {
    cur: Current,
    root: Option<(Root, Vec<K>)>,
    targets: Option<(Targets, Vec<K>)>,
    delegated: Vec<(String, Targets, Vec<K>)>,
    service: ServiceKeyIds,
    tamper: fn(&mut Upload),
}

impl Case {
    /// The first publish: root, targets and `team`, nothing stored.
    fn first() -> Case {
        Case {
            cur: Current::default(),
            root: Some((root(1), vec![K::Root])),
            targets: Some((targets(1), vec![K::Targets])),
            delegated: vec![("team".into(), team(1), vec![K::Team])],
            service: ServiceKeyIds { timestamp: vec![id(K::Timestamp)], snapshot: vec![id(K::Snapshot)] },
            tamper: |_| {},
        }
    }

    /// After the first publish, uploading nothing yet.
    fn stored() -> Case {
        let cur = Current {
            root: Some(root(1)),
            targets: Some((targets(1), sign(&targets(1), &[K::Targets]))),
            delegated: BTreeMap::from([("team".into(), team(1))]),
        };
        Case { cur, root: None, targets: None, delegated: vec![], ..Case::first() }
    }

    fn run(&self) -> Result<Accepted, TufError> {
        let mut up = Upload {
            root: self.root.as_ref().map(|(r, k)| sign(r, k)),
            targets: self.targets.as_ref().map(|(t, k)| sign(t, k)),
            delegations: self.delegated.iter().map(|(n, t, k)| (n.clone(), sign(t, k))).collect(),
        };
        (self.tamper)(&mut up);
        validate(&self.cur, &up, &self.service, NOW)
    }
}

fn root_doc(c: &mut Case) -> &mut Root {
    &mut c.root.as_mut().expect("the case uploads root").0
}

fn targets_doc(c: &mut Case) -> &mut Targets {
    &mut c.targets.as_mut().expect("the case uploads targets").0
}

fn team_doc(c: &mut Case) -> &mut Targets {
    &mut c.delegated[0].1
}

fn team_role(t: &mut Targets) -> &mut DelegatedRole {
    &mut t.delegations.as_mut().expect("targets delegates").roles[0]
}

/// `Variant(role)`, the part of an error a row names.
fn tag(e: &TufError) -> String {
    let (variant, role) = match e {
        TufError::Malformed(_) => ("Malformed", ""),
        TufError::WrongType { role, .. } => ("WrongType", role.as_str()),
        TufError::UnknownRole(r) => ("UnknownRole", r.as_str()),
        TufError::Threshold { role, .. } => ("Threshold", role.as_str()),
        TufError::DuplicateSignature { role, .. } => ("DuplicateSignature", role.as_str()),
        TufError::KeyIdMismatch { role, .. } => ("KeyIdMismatch", role.as_str()),
        TufError::UnsupportedKey { role, .. } => ("UnsupportedKey", role.as_str()),
        TufError::Expired { role, .. } => ("Expired", role.as_str()),
        TufError::Version { role, .. } => ("Version", role.as_str()),
        TufError::OutsideDelegation { role, .. } => ("OutsideDelegation", role.as_str()),
        TufError::BadTarget { role, .. } => ("BadTarget", role.as_str()),
        TufError::BadRole { role, .. } => ("BadRole", role.as_str()),
        TufError::Mismatch { role, .. } => ("Mismatch", role.as_str()),
    };
    format!("{variant}({role})")
}

/// A row: what it breaks, the valid upload it starts from, the edit that breaks it, and the expected outcome.
type Row = testing::Row<Case>;

fn table(rows: &[Row]) {
    testing::table(rows, |case| match case.run() {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{} {e}", tag(&e)),
    });
}

mod targets;

#[test]
fn accepted() {
    let rows: &[Row] = &[
        ("first publish", Case::first, |_| {}, "ok"),
        ("a delegation chain, the child sorting before its parent", Case::first, nested, "ok"),
        ("targets update", Case::stored, |c| c.targets = Some((targets(2), vec![K::Targets])), "ok"),
        ("delegated update alone", Case::stored, |c| c.delegated = vec![("team".into(), team(2), vec![K::Team])], "ok"),
        ("root rotation signed by both roots", Case::stored, |c| c.root = Some((root(2), vec![K::Root])), "ok"),
    ];
    table(rows);
}

#[test]
fn root_rules() {
    let rows: &[Row] = &[
        ("no root stored or uploaded", Case::first, |c| c.root = None, "BadRole(root) no root yet"),
        ("_type is not root", Case::first, |c| root_doc(c).type_ = "targets".into(), "WrongType(root)"),
        ("a required field is missing", Case::first, |c| c.tamper = |u| drop_field(&mut u.root, "keys"), "Malformed()"),
        ("spec_version is not 1.x", Case::first, |c| root_doc(c).spec_version = "2.0.0".into(), "BadRole(root) 1.x"),
        (
            "consistent_snapshot is false",
            Case::first,
            |c| root_doc(c).consistent_snapshot = false,
            "BadRole(root) consistent_snapshot",
        ),
        (
            "a key of an unsupported type",
            Case::first,
            |c| {
                let mut k = public(K::Other);
                k.keytype = "dsa".into();
                root_doc(c).keys.insert(k.key_id(), k);
            },
            "UnsupportedKey(root)",
        ),
        (
            "a key under another key's id",
            Case::first,
            |c| _ = root_doc(c).keys.insert(id(K::Other), public(K::Team)),
            "KeyIdMismatch(root)",
        ),
        (
            "a top-level role is missing",
            Case::first,
            |c| _ = root_doc(c).roles.remove("snapshot"),
            "BadRole(root) does not define the snapshot role",
        ),
        (
            "a role's threshold is 0",
            Case::first,
            |c| root_doc(c).roles.get_mut("targets").unwrap().threshold = 0,
            "BadRole(root) threshold >= 1",
        ),
        (
            "a role names a key root does not list",
            Case::first,
            |c| root_doc(c).roles.get_mut("targets").unwrap().keyids = vec![id(K::Other)],
            "BadRole(root) keys listed in root.keys",
        ),
        (
            "roles names a delegated role",
            Case::first,
            |c| _ = root_doc(c).roles.insert("team".into(), role(K::Team)),
            "UnknownRole(team)",
        ),
        ("version 0", Case::first, |c| root_doc(c).version = 0, "Version(root) at least 1"),
        (
            "the first root is not version 1",
            Case::first,
            |c| root_doc(c).version = 2,
            "Version(root) where 1 was required",
        ),
        (
            "the same version again",
            Case::stored,
            |c| c.root = Some((root(1), vec![K::Root])),
            "Version(root) at least 2",
        ),
        (
            "a version skipped",
            Case::stored,
            |c| c.root = Some((root(3), vec![K::Root])),
            "Version(root) where 2 was required",
        ),
        (
            "not signed by its own root key",
            Case::first,
            |c| c.root.as_mut().unwrap().1 = vec![K::Other],
            "Threshold(root)",
        ),
        (
            "rotation not signed by the previous root's keys",
            Case::stored,
            |c| c.root = Some((rotated(), vec![K::Other])),
            "Threshold(root (by the previous root's keys))",
        ),
        (
            "rotation not signed by the new root's keys",
            Case::stored,
            |c| c.root = Some((rotated(), vec![K::Root])),
            "Threshold(root) threshold is 1",
        ),
        (
            "the same key signs twice",
            Case::first,
            |c| c.tamper = |u| duplicate_signature(u.root.as_mut().unwrap()),
            "DuplicateSignature(root)",
        ),
        ("expired", Case::first, |c| root_doc(c).expires = Expires(NOW), "Expired(root)"),
        (
            "timestamp names none of the service's keys",
            Case::first,
            |c| c.service.timestamp = vec![id(K::Other)],
            "BadRole(root) timestamp role must name",
        ),
        (
            "snapshot names none of the service's keys",
            Case::first,
            |c| c.service.snapshot = vec![],
            "BadRole(root) snapshot role must name",
        ),
        (
            "the stored root lacks the targets role",
            Case::stored,
            |c| {
                c.cur.root.as_mut().unwrap().roles.remove("targets");
                c.targets = Some((targets(2), vec![K::Targets]));
            },
            "BadRole(root) does not define the targets role",
        ),
        (
            "a new root's targets keys do not sign the stored targets",
            Case::stored,
            |c| {
                let mut r = root(2);
                r.keys.insert(id(K::Other), public(K::Other));
                r.roles.insert("targets".into(), role(K::Other));
                c.root = Some((r, vec![K::Root]));
            },
            "BadRole(targets) upload re-signed targets",
        ),
    ];
    table(rows);
}

/// Root version 2 with root key `K::Other` in place of `K::Root`.
fn rotated() -> Root {
    let mut r = root(2);
    r.keys.remove(&id(K::Root));
    r.keys.insert(id(K::Other), public(K::Other));
    r.roles.insert("root".into(), role(K::Other));
    r
}

/// `team` delegates `v*` to `sub`, uploaded too (`sub` sorts before `team`, so it waits for its parent).
fn nested(c: &mut Case) {
    let keys = BTreeMap::from([(id(K::Other), public(K::Other))]);
    team_doc(c).delegations =
        Some(Delegations { keys, roles: vec![delegation("sub", K::Other)], succinct_roles: None });
    c.delegated.push(("sub".into(), team(1), vec![K::Other]));
}

fn drop_field(env: &mut Option<Envelope>, field: &str) {
    env.as_mut().and_then(|e| e.signed.as_object_mut()).map(|o| o.remove(field));
}

fn duplicate_signature(env: &mut Envelope) {
    env.signatures.push(env.signatures[0].clone());
}
