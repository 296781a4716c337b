//! The TUF finding over an in-memory store: signed by targets or a delegated role (with the keys that signed),
//! names for a digest, and the data that must fail (expired, inconsistent, a broken root chain) or is absent.

use std::collections::BTreeMap;

use wharf_format::policy::{SignedTag, Subject, TrustFinding};
use wharf_format::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, MetaFile, RoleKeys, Root, SigningKey, Snapshot, TargetFile, Targets,
    Timestamp, SPEC_VERSION,
};
use wharf_format::Digest;

use super::{finding, TufDocuments};

const NOW: i64 = 1_900_000_000;

#[derive(Default)]
struct Docs(BTreeMap<(String, u64), Vec<u8>>);

impl TufDocuments for Docs {
    async fn latest(&self, role: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.iter().rev().find(|((r, _), _)| r == role).map(|(_, b)| b.clone()))
    }
    async fn version(&self, role: &str, version: u64) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(&(role.to_string(), version)).cloned())
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn sign<T: serde::Serialize>(doc: &T, keys: &[&SigningKey]) -> Vec<u8> {
    Envelope::sign(doc, keys).unwrap().to_bytes().unwrap()
}

fn root(version: u64, root_key: &SigningKey) -> Root {
    let role = |s: &SigningKey| RoleKeys { keyids: vec![s.key_id().clone()], threshold: 1 };
    let all = [root_key, &key(2), &key(3), &key(4)];
    Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: Expires(NOW + 1000),
        keys: all.iter().map(|s| (s.key_id().clone(), s.public().clone())).collect(),
        roles: BTreeMap::from([
            ("root".into(), role(root_key)),
            ("targets".into(), role(&key(2))),
            ("snapshot".into(), role(&key(3))),
            ("timestamp".into(), role(&key(4))),
        ]),
    }
}

fn targets(entries: &[(&str, &Digest)], deleg: Option<&SigningKey>) -> Targets {
    let file = |d: &Digest| TargetFile {
        length: 10,
        hashes: BTreeMap::from([("sha256".into(), d.hex().to_string())]),
        custom: None,
    };
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(NOW + 1000),
        targets: entries.iter().map(|(n, d)| (n.to_string(), file(d))).collect(),
        delegations: deleg.map(|d| Delegations {
            keys: BTreeMap::from([(d.key_id().clone(), d.public().clone())]),
            succinct_roles: None,
            roles: vec![DelegatedRole {
                name: "releases".into(),
                keyids: vec![d.key_id().clone()],
                threshold: 1,
                terminating: false,
                paths: Some(vec!["rel-*".into()]),
                path_hash_prefixes: None,
            }],
        }),
    }
}

/// A published repository: root v1 (and v2 when `rotate`), targets signing `v1` → a and delegating `rel-*` to
/// `releases`, which signs `rel-1` → b; timestamp expiring at `ts_expires`.
fn repo(a: &Digest, b: &Digest, ts_expires: i64, rotate: bool) -> Docs {
    let mut d = Docs::default();
    d.0.insert(("root".into(), 1), sign(&root(1, &key(1)), &[&key(1)]));
    if rotate {
        d.0.insert(("root".into(), 2), sign(&root(2, &key(9)), &[&key(1), &key(9)]));
    }
    let t = sign(&targets(&[("v1", a), ("also", a)], Some(&key(5))), &[&key(2)]);
    let rel = sign(&targets(&[("rel-1", b)], None), &[&key(5)]);
    let meta = |v| MetaFile { version: v, length: None, hashes: None };
    let s = Snapshot {
        type_: "snapshot".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(NOW + 1000),
        meta: BTreeMap::from([("targets.json".into(), meta(1)), ("releases.json".into(), meta(1))]),
    };
    let s = sign(&s, &[&key(3)]);
    let ts = Timestamp {
        type_: "timestamp".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(ts_expires),
        meta: BTreeMap::from([("snapshot.json".into(), meta(1))]),
    };
    d.0.insert(("timestamp".into(), 1), sign(&ts, &[&key(4)]));
    d.0.insert(("snapshot".into(), 1), s);
    d.0.insert(("targets".into(), 1), t);
    d.0.insert(("releases".into(), 1), rel);
    d
}

fn subject(tag: Option<&str>, digest: &Digest) -> Subject {
    Subject {
        repository: "team/app".parse().unwrap(),
        tag: tag.map(|t| t.parse().unwrap()),
        digest: digest.clone(),
        host: None,
    }
}

fn run(docs: &Docs, s: &Subject) -> TrustFinding {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(finding(docs, s, NOW))
}

fn signed(tag: &str, d: &Digest, role: &str, key: &SigningKey) -> SignedTag {
    SignedTag { tag: tag.into(), digest: d.clone(), role: role.into(), keys: vec![key.key_id().clone()] }
}

#[test]
fn tags_are_found_with_their_role_and_keys() {
    let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
    for rotate in [false, true] {
        let docs = repo(&a, &b, NOW + 100, rotate);
        assert_eq!(
            run(&docs, &subject(Some("v1"), &a)),
            TrustFinding::Signed(vec![signed("v1", &a, "targets", &key(2))])
        );
        let rel = run(&docs, &subject(Some("rel-1"), &b));
        assert_eq!(rel, TrustFinding::Signed(vec![signed("rel-1", &b, "releases", &key(5))]));
        assert_eq!(run(&docs, &subject(Some("nope"), &a)), TrustFinding::Signed(vec![]));
        // By digest: every name signed for it.
        let by_digest = run(&docs, &subject(None, &a));
        let tags = |f: TrustFinding| match f {
            TrustFinding::Signed(v) => v.into_iter().map(|t| t.tag).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tags(by_digest), ["also", "v1"]);
        assert_eq!(tags(run(&docs, &subject(None, &b))), ["rel-1"]);
    }
}

/// One row per way the stored data fails, each naming what the message must say.
#[test]
fn expired_inconsistent_or_absent_data() {
    let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
    let s = subject(Some("v1"), &a);
    let mut missing_snapshot = repo(&a, &b, NOW + 100, false);
    missing_snapshot.0.remove(&("snapshot".to_string(), 1));
    let mut broken_chain = repo(&a, &b, NOW + 100, true);
    broken_chain.0.insert(("root".into(), 2), sign(&root(2, &key(9)), &[&key(9)]));
    let mut gap = repo(&a, &b, NOW + 100, true);
    gap.0.insert(("root".into(), 3), sign(&root(3, &key(9)), &[&key(9)]));
    gap.0.remove(&("root".to_string(), 2));
    let mut forged_targets = repo(&a, &b, NOW + 100, false);
    forged_targets.0.insert(("targets".into(), 1), sign(&targets(&[("v1", &b)], None), &[&key(7)]));
    let rows: Vec<(&str, Docs, &str)> = vec![
        ("expired timestamp", repo(&a, &b, NOW - 1, false), "expired"),
        ("snapshot not stored", missing_snapshot, "snapshot version 1 is not stored"),
        ("root v2 not signed by v1", broken_chain, "threshold"),
        ("a root version missing", gap, "root version 2 is not stored"),
        ("targets signed by another key", forged_targets, "targets"),
    ];
    for (case, docs, needle) in rows {
        match run(&docs, &s) {
            TrustFinding::Failed(why) => assert!(why.contains(needle), "{case}: {why}"),
            other => panic!("{case}: {other:?}"),
        }
    }
    assert_eq!(run(&Docs::default(), &s), TrustFinding::NoData);
}
