//! The trust status over an in-memory store: each status, the signer and the chain's expiry, a broken or expired
//! delegation failing only the tags it is searched for, a page of 50 tags verified once (timed), and the badges.

use std::collections::BTreeMap;

use askama::Template;
use wharf_format::notary::Gun;
use wharf_format::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, MetaFile, RoleKeys, Root, SigningKey, Snapshot, TargetFile, Targets,
    Timestamp, SPEC_VERSION,
};
use wharf_format::Digest;

use super::{verify, RepoTrust, Status, TagTrust};
use crate::policy::notary::NotaryDocuments;
use crate::policy::tuf::TufDocuments;

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

impl NotaryDocuments for Docs {
    async fn guns(&self) -> Result<Vec<Gun>, String> {
        Ok(vec![])
    }
    async fn current(&self, _: &Gun, _: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    async fn by_hash(&self, _: &Gun, _: &str, _: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn sign<T: serde::Serialize>(doc: &T, keys: &[&SigningKey]) -> Vec<u8> {
    Envelope::sign(doc, keys).unwrap().to_bytes().unwrap()
}

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// How a test repository is made: targets (key 2) signs `v1` and `old` → a and `tag-0..tags` → a, and delegates
/// `rel-*` to `releases` (key 5), which signs `rel-1` → b.
struct Spec {
    ts_expires: i64,
    releases_expires: i64,
    releases_key: u8,
    tags: usize,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec { ts_expires: NOW + 100, releases_expires: NOW + 500, releases_key: 5, tags: 0 }
    }
}

fn targets(version: u64, expires: i64, entries: Vec<(String, Digest)>, deleg: bool) -> Targets {
    let file = |d: &Digest| TargetFile {
        length: 10,
        hashes: BTreeMap::from([("sha256".into(), d.hex().to_string())]),
        custom: None,
    };
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires(expires),
        targets: entries.iter().map(|(n, d)| (n.clone(), file(d))).collect(),
        delegations: deleg.then(|| Delegations {
            keys: BTreeMap::from([(key(5).key_id().clone(), key(5).public().clone())]),
            succinct_roles: None,
            roles: vec![DelegatedRole {
                name: "releases".into(),
                keyids: vec![key(5).key_id().clone()],
                threshold: 1,
                terminating: false,
                paths: Some(vec!["rel-*".into()]),
                path_hash_prefixes: None,
            }],
        }),
    }
}

fn repo(spec: &Spec) -> Docs {
    let role = |s: &SigningKey| RoleKeys { keyids: vec![s.key_id().clone()], threshold: 1 };
    let root = Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: 1,
        expires: Expires(NOW + 1000),
        keys: (1..=4).map(|n| (key(n).key_id().clone(), key(n).public().clone())).collect(),
        roles: BTreeMap::from([
            ("root".into(), role(&key(1))),
            ("targets".into(), role(&key(2))),
            ("snapshot".into(), role(&key(3))),
            ("timestamp".into(), role(&key(4))),
        ]),
    };
    let mut entries = vec![("v1".to_string(), d("a")), ("old".to_string(), d("a"))];
    entries.extend((0..spec.tags).map(|i| (format!("tag-{i}"), d("a"))));
    let meta = |v| MetaFile { version: v, length: None, hashes: None };
    let snapshot = Snapshot {
        type_: "snapshot".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(NOW + 300),
        meta: BTreeMap::from([("targets.json".into(), meta(1)), ("releases.json".into(), meta(1))]),
    };
    let timestamp = Timestamp {
        type_: "timestamp".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(spec.ts_expires),
        meta: BTreeMap::from([("snapshot.json".into(), meta(1))]),
    };
    let releases = targets(1, spec.releases_expires, vec![("rel-1".into(), d("b"))], false);
    let mut docs = Docs::default();
    docs.0.insert(("root".into(), 1), sign(&root, &[&key(1)]));
    docs.0.insert(("targets".into(), 1), sign(&targets(1, NOW + 400, entries, true), &[&key(2)]));
    docs.0.insert(("releases".into(), 1), sign(&releases, &[&key(spec.releases_key)]));
    docs.0.insert(("snapshot".into(), 1), sign(&snapshot, &[&key(3)]));
    docs.0.insert(("timestamp".into(), 1), sign(&timestamp, &[&key(4)]));
    docs
}

fn run(docs: &Docs) -> RepoTrust {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(verify(docs, NOW))
}

fn one(t: &RepoTrust, tag: &str, current: &Digest) -> TagTrust {
    let all = t.tag(tag, current);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

fn short(k: &SigningKey) -> String {
    k.key_id().to_string()[..12].to_string()
}

/// One row per status, each with what the row must say.
#[test]
fn statuses_signers_and_expiry() {
    let t = run(&repo(&Spec::default()));
    assert_eq!(t.formats(), ["TUF"]);
    let signed = one(&t, "v1", &d("a"));
    assert_eq!((signed.status, signed.format), (Status::Signed, "TUF"));
    assert_eq!(signed.signers, [format!("targets (key {})", short(&key(2)))]);
    // The earliest on the chain: timestamp (NOW + 100), not targets (400) or root (1000).
    assert_eq!(signed.expires, Some(NOW + 100));
    let moved = one(&t, "old", &d("c"));
    assert_eq!((moved.status, moved.signed_digest), (Status::Moved, Some(d("a"))));
    let delegated = one(&t, "rel-1", &d("b"));
    assert_eq!(delegated.status, Status::Signed);
    assert_eq!(delegated.signers, [format!("releases (key {})", short(&key(5)))]);
    let unsigned = one(&t, "nope", &d("a"));
    assert_eq!((unsigned.status, unsigned.signers.len(), unsigned.expires), (Status::Unsigned, 0, None));
    // An unsigned name inside the delegation's paths: searched there too, still unsigned.
    assert_eq!(one(&t, "rel-2", &d("b")).status, Status::Unsigned);

    // The delegation expiring first is the delegated tag's expiry, not the top-level one's.
    let t = run(&repo(&Spec { ts_expires: NOW + 900, releases_expires: NOW + 50, ..Spec::default() }));
    assert_eq!(one(&t, "rel-1", &d("b")).expires, Some(NOW + 50));
    assert_eq!(one(&t, "v1", &d("a")).expires, Some(NOW + 300), "snapshot");

    // No data: no format, no badge.
    let none = run(&Docs::default());
    assert!(none.formats().is_empty() && none.tag("v1", &d("a")).is_empty());
}

#[test]
fn expired_and_failing_data() {
    // An expired timestamp: every tag is expired, with when and why.
    let t = run(&repo(&Spec { ts_expires: NOW - 10, ..Spec::default() }));
    for tag in ["v1", "rel-1", "nope"] {
        let x = one(&t, tag, &d("a"));
        assert_eq!((x.status, x.expires), (Status::Expired, Some(NOW - 10)), "{tag}");
        assert!(x.problem.as_deref().unwrap_or("").contains("timestamp"), "{x:?}");
    }
    // An expired delegation fails only the names searched in it.
    let t = run(&repo(&Spec { releases_expires: NOW - 5, ..Spec::default() }));
    assert_eq!(one(&t, "v1", &d("a")).status, Status::Signed);
    let x = one(&t, "rel-1", &d("b"));
    assert_eq!((x.status, x.expires), (Status::Expired, Some(NOW - 5)));
    // A delegation signed by a key it was not given: its names fail, the others stand.
    let t = run(&repo(&Spec { releases_key: 7, ..Spec::default() }));
    assert_eq!(one(&t, "v1", &d("a")).status, Status::Signed);
    let x = one(&t, "rel-1", &d("b"));
    assert_eq!(x.status, Status::Failed);
    assert!(x.problem.as_deref().unwrap_or("").contains("releases"), "{x:?}");
    // Targets signed by another key: the whole chain fails.
    let mut forged = repo(&Spec::default());
    forged.0.insert(("targets".into(), 1), sign(&targets(1, NOW + 400, vec![], false), &[&key(7)]));
    let x = one(&run(&forged), "v1", &d("a"));
    assert_eq!((x.status, x.expires), (Status::Failed, None));
    assert!(x.problem.as_deref().unwrap_or("").contains("targets"), "{x:?}");
}

#[test]
fn names_signed_for_a_digest() {
    let t = run(&repo(&Spec::default()));
    let names: Vec<(String, Status)> = t.signed_for_digest(&d("a")).into_iter().map(|(n, s)| (n, s.status)).collect();
    assert_eq!(names, [("old".to_string(), Status::Signed), ("v1".to_string(), Status::Signed)]);
    assert_eq!(t.signed_for_digest(&d("b"))[0].0, "rel-1");
    assert!(t.signed_for_digest(&d("z")).is_empty());
}

/// A page of 50 tags on a repository with a delegation: verified once, then 50 searches without I/O. The figure
/// is printed (`--nocapture`); the bound only catches a per-row re-verification gone wild.
#[test]
fn a_page_of_fifty_tags() {
    let docs = repo(&Spec { tags: 50, ..Spec::default() });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let rounds = 20;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let t = rt.block_on(verify(&docs, NOW));
        for i in 0..50 {
            let tag = if i % 10 == 0 { "rel-1".to_string() } else { format!("tag-{i}") };
            assert!(matches!(t.tag(&tag, &d("a"))[0].status, Status::Signed | Status::Moved));
        }
    }
    let per_page = start.elapsed() / rounds;
    println!("trust status for a page of 50 tags (TUF, one delegation, in memory): {per_page:?}");
    assert!(per_page < std::time::Duration::from_secs(1), "{per_page:?}");
}

#[derive(Template)]
#[template(
    source = r#"{% import "ui/trust.html" as trust %}<td class="signed">{% call trust::badges(list) %}{% endcall %}</td>"#,
    ext = "html"
)]
struct Badges {
    list: Vec<TagTrust>,
}

#[test]
fn badges_carry_the_contract() {
    let t = run(&repo(&Spec::default()));
    let mut list = t.tag("old", &d("c"));
    list.extend(run(&repo(&Spec { ts_expires: NOW - 10, ..Spec::default() })).tag("v1", &d("a")));
    let html = Badges { list }.render().unwrap();
    for needle in [
        r#"<span class="trust-badge detailed" data-status="moved" data-format="TUF">"#,
        r#"data-status="expired""#,
        r#"<span class="signers">by targets (key "#,
        &format!("signed for <code>{}</code>", d("a")),
        r#"<span class="expires">expired 2030-03-17"#,
    ] {
        assert!(html.contains(needle), "{needle:?} not in {html}");
    }
}
