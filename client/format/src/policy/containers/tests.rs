//! containers' `policy.json` as tables: what maps to which rule for a registry, and what is refused (one row per
//! refusal, each naming the error it expects).

use base64::Engine as _;
use serde_json::json;

use super::*;

const HOST: &str = "r.example:5000";

fn map(v: &Value, host: &str) -> Mapped {
    parse(v.to_string().as_bytes(), host).unwrap_or_else(|e| panic!("{e}"))
}

/// The rule deciding `repo`: its name and requirement.
fn decides(m: &Mapped, repo: &str) -> (String, Requirement) {
    let r = m.policy.rule_for(&repo.parse().unwrap()).expect("a rule (default always matches)");
    (r.display_name(), r.require.clone())
}

fn keyed(key: &str, identity: Identity) -> Requirement {
    Requirement::Sigstore(SigstoreRequirement { key: Some(key.into()), identity: Some(identity), ..Default::default() })
}

#[test]
fn podmans_default_file_accepts_anything_and_only_that() {
    let v = json!({"default": [{"type": "insecureAcceptAnything"}],
        "transports": {"docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}});
    assert!(is_containers(&v));
    assert!(!is_containers(&json!({"policy": []})));
    let m = map(&v, HOST);
    assert_eq!(m.policy.rules.len(), 1);
    assert_eq!(decides(&m, "team/app"), ("policy.json default".into(), Requirement::Accept));
}

#[test]
fn scopes_map_most_specific_first() {
    let v = json!({"default": [{"type": "reject"}], "transports": {"docker": {
        "r.example:5000": [{"type": "insecureAcceptAnything"}],
        "r.example:5000/team": [{"type": "sigstoreSigned", "keyPath": "/team.pub"}],
        "r.example:5000/team/app": [{"type": "sigstoreSigned", "keyPaths": ["/a.pub", "/b.pub"],
            "signedIdentity": {"type": "matchRepository"}}],
        "r.example:5000/ops": [{"type": "insecureAcceptAnything"},
            {"type": "sigstoreSigned", "keyPath": "/ops.pub", "signedIdentity":
                {"type": "exactRepository", "dockerRepository": "r.example:5000/ops/signed"}}],
        "other.example/team": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/gpg"}],
        "": [{"type": "reject"}]}}});
    let m = map(&v, HOST);
    let reg = || HOST.to_string();
    let app = Requirement::AnyOf(vec![
        keyed("/a.pub", Identity::MatchRepository { registry: reg() }),
        keyed("/b.pub", Identity::MatchRepository { registry: reg() }),
    ]);
    let team = keyed("/team.pub", Identity::MatchRepoDigestOrExact { registry: reg() });
    let ops = Requirement::AllOf(vec![
        Requirement::Accept,
        keyed("/ops.pub", Identity::ExactRepository { docker_repository: "r.example:5000/ops/signed".into() }),
    ]);
    let rows = [
        ("team/app", "policy.json transports.docker[\"r.example:5000/team/app\"]", app.clone()),
        ("team/app/sub", "policy.json transports.docker[\"r.example:5000/team/app\"]", app),
        ("team/apps", "policy.json transports.docker[\"r.example:5000/team\"]", team.clone()),
        ("team/x/y", "policy.json transports.docker[\"r.example:5000/team\"]", team),
        ("ops/a", "policy.json transports.docker[\"r.example:5000/ops\"]", ops),
        ("teams/x", "policy.json transports.docker[\"r.example:5000\"]", Requirement::Accept),
        ("library/alpine", "policy.json transports.docker[\"r.example:5000\"]", Requirement::Accept),
    ];
    for (repo, name, require) in rows {
        assert_eq!(decides(&m, repo), (name.to_string(), require), "{repo}");
    }
    assert!(m.policy.validate().is_ok());
    // The same file for another registry: the transport's "" scope, never another host's entries.
    let q = map(&v, "q.example");
    assert_eq!(decides(&q, "team/app"), ("policy.json transports.docker[\"\"]".into(), Requirement::Reject));
    // For the registry whose scope holds a GPG entry, the file is refused.
    let e = parse(v.to_string().as_bytes(), "other.example").unwrap_err();
    assert!(matches!(&e, ContainersError::Unsupported { what, .. } if what.contains("signedBy")), "{e}");
}

#[test]
fn wildcard_domains_rank_below_exact_hosts() {
    let v = json!({"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {
        "*.example.com": [{"type": "reject"}],
        "*.b.example.com": [{"type": "sigstoreSigned", "keyPath": "/b.pub"}],
        "a.example.com": [{"type": "insecureAcceptAnything"}]}}});
    let name = |host: &str| decides(&map(&v, host), "x/y").0;
    assert_eq!(name("c.example.com:443"), "policy.json transports.docker[\"*.example.com\"]");
    assert_eq!(name("c.b.example.com"), "policy.json transports.docker[\"*.b.example.com\"]");
    assert_eq!(name("a.example.com"), "policy.json transports.docker[\"a.example.com\"]");
    assert_eq!(name("example.com"), "policy.json default");
}

#[test]
fn inline_key_data_becomes_material() {
    let pem = b"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
    let data = base64::engine::general_purpose::STANDARD.encode(pem);
    let v = json!({"default": [{"type": "sigstoreSigned", "keyData": data}]});
    let m = map(&v, HOST);
    assert_eq!(m.inline.len(), 1);
    let (name, bytes) = m.inline.iter().next().unwrap();
    assert_eq!(bytes.as_slice(), pem);
    assert!(name.starts_with("inline:"), "{name}");
    let expected = keyed(name, Identity::MatchRepoDigestOrExact { registry: HOST.into() });
    assert_eq!(decides(&m, "a").1, expected);
}

#[test]
fn refusals() {
    type Is = fn(&ContainersError) -> bool;
    let sig = |extra: Value| {
        let mut e = json!({"type": "sigstoreSigned"});
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"default": [e]})
    };
    let rows: Vec<(&str, Value, Is)> = vec![
        ("no default", json!({"transports": {}}), |e| matches!(e, ContainersError::NoDefault)),
        ("empty list", json!({"default": []}), |e| matches!(e, ContainersError::Empty { .. })),
        ("unknown type", json!({"default": [{"type": "signedByX"}]}), |e| {
            matches!(e, ContainersError::UnknownType { .. })
        }),
        (
            "unknown type for another registry",
            json!({"default": [{"type": "reject"}], "transports": {"docker": {"q.example": [{"type": "acceptAll"}]}}}),
            |e| matches!(e, ContainersError::UnknownType { .. }),
        ),
        ("unknown field", json!({"default": [{"type": "reject", "x": 1}]}), |e| {
            matches!(e, ContainersError::UnknownField { .. })
        }),
        ("top-level field", json!({"default": [{"type": "reject"}], "x": 1}), |e| {
            matches!(e, ContainersError::Shape(_))
        }),
        ("docker not an object", json!({"default": [{"type": "reject"}], "transports": {"docker": []}}), |e| {
            matches!(e, ContainersError::Shape(_))
        }),
        ("signedBy", json!({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]}), |e| {
            matches!(e, ContainersError::Unsupported { .. })
        }),
        (
            "keyless",
            sig(
                json!({"fulcio": {"caPath": "/ca", "oidcIssuer": "i", "subjectEmail": "e"}, "rekorPublicKeyPath": "/r"}),
            ),
            |e| matches!(e, ContainersError::Unsupported { what, .. } if what.contains("keyless")),
        ),
        ("pki", sig(json!({"pki": {}})), |e| matches!(e, ContainersError::Unsupported { .. })),
        ("keyed with rekor", sig(json!({"keyPath": "/k", "rekorPublicKeyPath": "/r"})), |e| {
            matches!(e, ContainersError::Unsupported { .. })
        }),
        ("two key sources", sig(json!({"keyPath": "/k", "keyPaths": ["/j"]})), |e| {
            matches!(e, ContainersError::Invalid { .. })
        }),
        ("no key", sig(json!({})), |e| matches!(e, ContainersError::Invalid { .. })),
        ("empty keyPaths", sig(json!({"keyPaths": []})), |e| matches!(e, ContainersError::Invalid { .. })),
        ("keyPath not a string", sig(json!({"keyPath": ["/k"]})), |e| matches!(e, ContainersError::Invalid { .. })),
        ("keyData not base64", sig(json!({"keyData": "***"})), |e| matches!(e, ContainersError::Invalid { .. })),
        ("unknown sigstore field", sig(json!({"keyPath": "/k", "keyPth": "/k"})), |e| {
            matches!(e, ContainersError::UnknownField { .. })
        }),
        (
            "remapIdentity",
            sig(
                json!({"keyPath": "/k", "signedIdentity": {"type": "remapIdentity", "prefix": "a", "signedPrefix": "b"}}),
            ),
            |e| matches!(e, ContainersError::Unsupported { .. }),
        ),
        ("unknown identity", sig(json!({"keyPath": "/k", "signedIdentity": {"type": "matchAnything"}})), |e| {
            matches!(e, ContainersError::Invalid { .. })
        }),
        (
            "identity without its field",
            sig(json!({"keyPath": "/k", "signedIdentity": {"type": "exactReference"}})),
            |e| matches!(e, ContainersError::Invalid { .. }),
        ),
        (
            "identity with an unknown field",
            sig(json!({"keyPath": "/k", "signedIdentity": {"type": "matchExact", "x": 1}})),
            |e| matches!(e, ContainersError::UnknownField { .. }),
        ),
        (
            "a tag scope",
            json!({"default": [{"type": "reject"}], "transports": {"docker": {"r.example:5000/a:v1": [{"type": "reject"}]}}}),
            |e| matches!(e, ContainersError::Unsupported { .. }),
        ),
        (
            "a digest scope",
            json!({"default": [{"type": "reject"}], "transports": {"docker":
                {format!("r.example:5000/a@sha256:{}", "a".repeat(64)): [{"type": "reject"}]}}}),
            |e| matches!(e, ContainersError::Unsupported { .. }),
        ),
        (
            "a malformed scope",
            json!({"default": [{"type": "reject"}], "transports": {"docker": {"r.example:5000//a": [{"type": "reject"}]}}}),
            |e| matches!(e, ContainersError::Invalid { .. }),
        ),
    ];
    for (what, v, expected) in rows {
        match parse(v.to_string().as_bytes(), HOST) {
            Ok(m) => panic!("{what}: accepted as {:?}", m.policy),
            Err(e) => assert!(expected(&e), "{what}: {e}"),
        }
    }
    assert!(matches!(parse(b"{not json", HOST), Err(ContainersError::Json(_))));
}
