use std::time::Duration;

use serde_json::Value;
use wharf_storage::{Actor, Change, Origin, TrustFormat};

use super::*;
use crate::ops::notify::{Endpoint, Masked};

fn endpoint(name: &str, actions: &[Action], repositories: &[&str]) -> Endpoint {
    Endpoint {
        name: name.into(),
        url: Masked("http://ci.example/".parse().unwrap()),
        headers: Vec::new(),
        secret: None,
        actions: actions.to_vec(),
        repositories: repositories.iter().map(|p| p.parse().unwrap()).collect(),
        timeout: Duration::from_secs(1),
        backoff_min_secs: 1,
        backoff_max_secs: 10,
        batch: 10,
    }
}

fn settings() -> NotifySettings {
    NotifySettings {
        endpoints: vec![endpoint("all", &Action::ALL, &[]), endpoint("team", &Action::defaults(), &["team/*"])],
        source_addr: "reg1:5000".into(),
        ..NotifySettings::default()
    }
}

fn origin() -> Origin {
    Origin {
        actor: Actor::Account("alice".into()),
        address: Some("10.1.2.3".parse().unwrap()),
        request_id: "r1".into(),
        method: "PUT".into(),
        user_agent: Some("skopeo/1".into()),
        host: Some("reg.example".into()),
    }
}

/// The endpoints `change` goes to, and its event's action and target.
fn check(change: Change, endpoints: &[&str], action: &str, target: Value) {
    let rows = events(&settings(), &origin(), &change, 1_700_000_000);
    let names: Vec<&str> = rows.iter().map(|r| r.endpoint.as_str()).collect();
    assert_eq!(names, endpoints, "{change:?}");
    let Some(first) = rows.first() else { return };
    assert!(rows.iter().all(|r| r.payload == first.payload && r.action == action));
    let e: Value = serde_json::from_str(&first.payload).unwrap();
    assert_eq!(e["action"], action);
    assert_eq!(e["target"], target, "{change:?}");
}

#[test]
fn changes_map_to_distribution_events() {
    let d = "sha256:aa";
    let m = "application/vnd.oci.image.manifest.v1+json";
    let push = Change::ManifestPush {
        repository: "team/app".into(),
        digest: d.into(),
        media_type: m.into(),
        size: 7,
        tag: Some("v1".into()),
    };
    check(
        push,
        &["all", "team"],
        "push",
        serde_json::json!({
            "mediaType": m, "size": 7, "digest": d, "length": 7, "repository": "team/app",
            "url": "http://reg.example/v2/team/app/manifests/sha256:aa", "tag": "v1",
        }),
    );
    let pull = Change::BlobPull { repository: "team/app".into(), digest: d.into(), size: 3 };
    check(
        pull,
        &["all"],
        "pull",
        serde_json::json!({
            "mediaType": "application/octet-stream", "size": 3, "digest": d, "length": 3, "repository": "team/app",
            "url": "http://reg.example/v2/team/app/blobs/sha256:aa",
        }),
    );
    let deep = Change::ManifestDelete { repository: "team/a/b".into(), digest: d.into() };
    check(deep, &["all"], "delete", serde_json::json!({ "digest": d, "repository": "team/a/b" }));
    let untag = Change::TagDelete { repository: "team/app".into(), tag: "v1".into(), digest: None };
    check(untag, &["all", "team"], "delete", serde_json::json!({ "repository": "team/app", "tag": "v1" }));
    let moved = Change::TagMove {
        repository: "team/app".into(),
        tag: "v1".into(),
        from: Some("sha256:00".into()),
        to: d.into(),
    };
    check(
        moved,
        &["all", "team"],
        "tag",
        serde_json::json!({
            "digest": d, "repository": "team/app", "tag": "v1", "previousDigest": "sha256:00",
        }),
    );
    let publish = Change::TrustPublish {
        repository: "team/app".into(),
        format: TrustFormat::NotaryV1,
        roles: vec!["targets".into()],
    };
    check(
        publish,
        &["all", "team"],
        "trust_publish",
        serde_json::json!({
            "repository": "team/app", "trustFormat": "notary_v1", "roles": ["targets"],
        }),
    );
    let removal = Change::Removal {
        what: "tag".into(),
        repository: Some("team/app".into()),
        digest: d.into(),
        tag: Some("old".into()),
    };
    check(
        removal,
        &["all", "team"],
        "delete",
        serde_json::json!({ "digest": d, "repository": "team/app", "tag": "old" }),
    );
    let blob_delete = Change::BlobDelete { repository: "team/app".into(), digest: d.into() };
    check(blob_delete, &["all", "team"], "delete", serde_json::json!({ "digest": d, "repository": "team/app" }));
    let blob_gc = Change::Removal { what: "blob".into(), repository: None, digest: d.into(), tag: None };
    check(blob_gc, &[], "", Value::Null);
    check(Change::Login { account: "alice".into(), ok: false }, &[], "", Value::Null);
}

#[test]
fn the_envelope_fields_are_distributions() {
    let change = Change::ManifestDelete { repository: "team/app".into(), digest: "sha256:aa".into() };
    let rows = events(&settings(), &origin(), &change, 1_700_000_000);
    let e: Value = serde_json::from_str(&rows[0].payload).unwrap();
    assert_eq!(e["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        e["request"],
        serde_json::json!({
            "id": "r1", "addr": "10.1.2.3", "host": "reg.example", "method": "PUT", "useragent": "skopeo/1",
        })
    );
    assert_eq!(e["actor"], serde_json::json!({ "name": "alice" }));
    assert_eq!(e["source"]["addr"], "reg1:5000");
    assert_eq!(e["id"].as_str().unwrap().len(), 36);
    let anonymous = Origin { actor: Actor::Anonymous, ..origin() };
    let rows = events(&settings(), &anonymous, &change, 0);
    let e: Value = serde_json::from_str(&rows[0].payload).unwrap();
    assert_eq!(e["actor"], serde_json::json!({}));
    // No endpoints: nothing is built.
    assert!(events(&NotifySettings::default(), &origin(), &change, 0).is_empty());
}

#[test]
fn signature_and_backoff() {
    use crate::ops::notify::deliver::{backoff, signature};
    // RFC 4231 test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let e = endpoint("e", &[], &[]);
    let delays: Vec<i64> = (1..=6).map(|n| backoff(&e, n, 0.0)).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    assert_eq!(backoff(&e, 5, 1.0), 5);
    assert_eq!(backoff(&e, 1_000, 0.0), 10);
}
