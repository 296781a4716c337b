//! The policy language as tables: parsing (TOML and JSON, and what is refused), validation, evaluation of every
//! requirement kind alone and nested, the identity rules of signed payloads, and the words of the report.

use super::*;

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
}

fn subject(repo: &str, tag: Option<&str>, d: char) -> Subject {
    Subject { repository: repo.parse().unwrap(), tag: tag.map(|t| t.parse().unwrap()), digest: digest(d), host: None }
}

fn signed(tag: &str, d: char, role: &str, keys: &[&str]) -> SignedTag {
    SignedTag {
        tag: tag.into(),
        digest: digest(d),
        role: role.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

fn rule(require: Requirement) -> Rule {
    Rule {
        name: Some("r".into()),
        repositories: vec!["**".parse().unwrap()],
        require,
        by_digest: false,
        immutable_tags: false,
    }
}

fn req(toml_text: &str) -> Requirement {
    let p: Policy = toml::from_str(&format!("[[policy]]\nrepositories = [\"**\"]\nrequire = {toml_text}\n")).unwrap();
    p.rules[0].require.clone()
}

#[test]
fn parses_toml_and_json_alike() {
    let toml_text = r#"
        [[policy]]
        name = "releases"
        repositories = ["team/*", "infra/**"]
        by_digest = true
        require = { any_of = [
          { tuf = { roles = ["releases"], keys = ["k1", "k2"], key_threshold = 2 } },
          { all_of = [ { notary_v1 = { delegations = ["targets/releases"] } }, { sigstore = { key = "/k.pub" } } ] },
          { sigstore = { issuer = "https://issuer", subject_pattern = "https://github.com/org/*", trusted_root = "/tr.json" } },
          { notation = { trust_policy = "/tp.json", trust_store = "/ts" } },
        ] }

        [[policy]]
        repositories = ["**"]
        require = "reject"
    "#;
    let json_text = r#"{"policy": [
        {"name": "releases", "repositories": ["team/*", "infra/**"], "by_digest": true, "require": {"any_of": [
          {"tuf": {"roles": ["releases"], "keys": ["k1", "k2"], "key_threshold": 2}},
          {"all_of": [{"notary_v1": {"delegations": ["targets/releases"]}}, {"sigstore": {"key": "/k.pub"}}]},
          {"sigstore": {"issuer": "https://issuer", "subject_pattern": "https://github.com/org/*", "trusted_root": "/tr.json"}},
          {"notation": {"trust_policy": "/tp.json", "trust_store": "/ts"}}]}},
        {"repositories": ["**"], "require": "reject"}]}"#;
    let a: Policy = toml::from_str(toml_text).unwrap();
    let b: Policy = serde_json::from_str(json_text).unwrap();
    assert_eq!(a, b);
    assert!(a.validate().is_ok());
    assert_eq!(a.rules[0].display_name(), "releases");
    assert_eq!(a.rules[1].display_name(), "**");
    let needs = a.rules[0].require.needs();
    assert!(needs.tuf && needs.notary_v1 && needs.sigstore && needs.notation);
    assert!(!a.rules[1].require.needs().tuf);
    assert_eq!(a.rules[0].require.paths(), vec!["/k.pub", "/tr.json", "/tp.json"]);
    assert_eq!(a.rules[0].require.trust_stores(), vec!["/ts"]);
    // The first matching rule decides.
    let repo = |r: &str| r.parse::<RepositoryName>().unwrap();
    assert_eq!(a.rule_for(&repo("team/app")).unwrap().display_name(), "releases");
    assert_eq!(a.rule_for(&repo("infra/a/b")).unwrap().display_name(), "releases");
    assert_eq!(a.rule_for(&repo("team/a/b")).unwrap().display_name(), "**");
    assert_eq!(Policy::default().rule_for(&repo("team/app")), None);
}

#[test]
fn parse_refusals() {
    let rows = [
        ("unknown rule field", "[[policy]]\nrepositores = [\"a\"]\nrequire = \"accept\""),
        ("unknown requirement", "[[policy]]\nrepositories = [\"a\"]\nrequire = { gpg = {} }"),
        ("unknown requirement field", "[[policy]]\nrepositories = [\"a\"]\nrequire = { tuf = { role = \"x\" } }"),
        ("bad pattern", "[[policy]]\nrepositories = [\"team/[ab]\"]\nrequire = \"accept\""),
        ("no require", "[[policy]]\nrepositories = [\"a\"]"),
        (
            "notation without store",
            "[[policy]]\nrepositories = [\"a\"]\nrequire = { notation = { trust_policy = \"p\" } }",
        ),
    ];
    for (what, text) in rows {
        assert!(toml::from_str::<Policy>(text).is_err(), "{what} was accepted");
    }
}

type Is = fn(&PolicyError) -> bool;

#[test]
fn validation_refusals() {
    let rows: [(&str, &str, Is); 6] = [
        ("empty any_of", "{ any_of = [] }", |e| matches!(e, PolicyError::EmptyList { what: "any_of", .. })),
        ("empty all_of", "{ any_of = [{ all_of = [] }] }", |e| {
            matches!(e, PolicyError::EmptyList { what: "all_of", .. })
        }),
        ("sigstore naming nothing", "{ sigstore = {} }", |e| matches!(e, PolicyError::Sigstore { .. })),
        ("keyless without root", "{ sigstore = { issuer = \"i\", subject = \"s\" } }", |e| {
            matches!(e, PolicyError::Sigstore { .. })
        }),
        ("threshold 0", "{ tuf = { keys = [\"a\"], key_threshold = 0 } }", |e| {
            matches!(e, PolicyError::KeyThreshold { .. })
        }),
        ("threshold above keys", "{ tuf = { keys = [\"a\"], key_threshold = 2 } }", |e| {
            matches!(e, PolicyError::KeyThreshold { .. })
        }),
    ];
    for (what, text, expected) in rows {
        let p = Policy { rules: vec![rule(req(text))] };
        let e = p.validate().expect_err(what);
        assert!(expected(&e), "{what}: {e}");
    }
    let none = Policy { rules: vec![Rule { repositories: vec![], ..rule(Requirement::Accept) }] };
    assert!(matches!(none.validate(), Err(PolicyError::NoPatterns { .. })));
}

fn tuf(tags: Vec<SignedTag>) -> Evidence {
    Evidence { tuf: Some(TrustFinding::Signed(tags)), ..Default::default() }
}

/// One row: the requirement (TOML), the subject (tag, digest), the evidence, whether it passes, words the reason has.
fn check(what: &str, require: &str, s: &Subject, e: &Evidence, passed: bool, reason: &str) -> Verdict {
    let v = evaluate(&rule(req(require)), s, e, &Material::default(), 0);
    assert_eq!(v.allowed, passed, "{what}: {}", v.report());
    assert!(v.outcome.reason.contains(reason), "{what}: {:?} lacks {reason:?}", v.outcome.reason);
    v
}

#[test]
fn evaluation_of_every_requirement() {
    let v1 = subject("team/app", Some("v1"), 'a');
    let signed_v1 = tuf(vec![signed("v1", 'a', "targets", &["k1", "k2"])]);
    let a = digest('a');
    let b = digest('b');
    let none = Evidence::default();
    check("accept", "\"accept\"", &v1, &none, true, "every manifest is accepted");
    check("reject", "\"reject\"", &v1, &signed_v1, false, "every manifest is rejected");
    check("tuf signed", "{ tuf = {} }", &v1, &signed_v1, true, &format!("tag v1 signed by role targets for {a}"));
    let moved = subject("team/app", Some("v1"), 'b');
    check("tag moved", "{ tuf = {} }", &moved, &signed_v1, false, &format!("tag v1 is signed for {a}, not {b}"));
    let v2 = subject("team/app", Some("v2"), 'a');
    check("unsigned tag", "{ tuf = {} }", &v2, &signed_v1, false, "tag v2 is not signed");
    check(
        "wrong role",
        "{ tuf = { roles = [\"releases\"] } }",
        &v1,
        &signed_v1,
        false,
        "signed by role targets, not one of releases",
    );
    let keys = "{ tuf = { keys = [\"k1\", \"k3\"], key_threshold = 2 } }";
    check("too few keys", keys, &v1, &signed_v1, false, "role targets carries 1 of the named keys, 2 needed");
    check(
        "enough keys",
        "{ tuf = { keys = [\"k2\", \"k1\"], key_threshold = 2 } }",
        &v1,
        &signed_v1,
        true,
        "signed by role targets",
    );
    check("one named key", "{ tuf = { keys = [\"k3\", \"k2\"] } }", &v1, &signed_v1, true, "signed by role targets");
    let no_data = Evidence { tuf: Some(TrustFinding::NoData), ..Default::default() };
    check("no TUF data", "{ tuf = {} }", &v1, &no_data, false, "the repository has no TUF data");
    let failed = Evidence { tuf: Some(TrustFinding::Failed("targets expired".into())), ..Default::default() };
    check("TUF failed", "{ tuf = {} }", &v1, &failed, false, "TUF data did not verify: targets expired");
    check("not gathered", "{ tuf = {} }", &v1, &none, false, "no TUF data was gathered");
    let by_digest = subject("team/app", None, 'a');
    check("by digest", "{ tuf = {} }", &by_digest, &signed_v1, true, "tag v1 signed by role targets");
    let other = subject("team/app", None, 'b');
    check("by other digest", "{ tuf = {} }", &other, &signed_v1, false, &format!("no signed tag names {b}"));

    let notary = |role: &str| Evidence {
        notary_v1: Some(TrustFinding::Signed(vec![signed("v1", 'a', role, &[])])),
        ..Default::default()
    };
    let releases = "{ notary_v1 = { delegations = [\"targets/releases\"] } }";
    check("notary delegation", releases, &v1, &notary("targets/releases"), true, "tag v1 signed by targets/releases");
    check(
        "notary root only",
        releases,
        &v1,
        &notary("targets"),
        false,
        "signed by targets, not one of targets/releases",
    );
    check("notary any", "{ notary_v1 = {} }", &v1, &notary("targets"), true, "signed by targets");
    check("notary absent", "{ notary_v1 = {} }", &v1, &signed_v1, false, "no Notary v1 data was gathered");

    // Signatures are verified by `sigstore` and `notation`: nothing, or garbage, never passes.
    check("no sigstore", "{ sigstore = { key = \"/k.pub\" } }", &v1, &none, false, "");
    let garbage = Evidence { sigstore: vec![SigstoreCandidate::Bundle(b"{}".to_vec())], ..Default::default() };
    check("garbage bundle", "{ sigstore = { key = \"/k.pub\" } }", &v1, &garbage, false, "");
    let nota = Evidence {
        notation: vec![NotationCandidate { media_type: "application/jose+json".into(), envelope: b"{}".to_vec() }],
        ..Default::default()
    };
    check("garbage notation", "{ notation = { trust_policy = \"/p\", trust_store = \"/s\" } }", &v1, &nota, false, "");
}

#[test]
fn combinations_and_the_report() {
    let v1 = subject("team/app", Some("v1"), 'a');
    let e = tuf(vec![signed("v1", 'a', "targets", &["k1"])]);
    check("any_of first fails", "{ any_of = [\"reject\", { tuf = {} }] }", &v1, &e, true, "satisfied by tuf");
    check("any_of none", "{ any_of = [\"reject\", { notary_v1 = {} }] }", &v1, &e, false, "none of 2 satisfied");
    check("all_of", "{ all_of = [\"accept\", { tuf = {} }] }", &v1, &e, true, "all satisfied");
    check("all_of one missing", "{ all_of = [\"accept\", \"reject\"] }", &v1, &e, false, "missing: reject");
    let empty = Rule { require: Requirement::AllOf(vec![]), ..rule(Requirement::Accept) };
    let v = evaluate(&empty, &v1, &e, &Material::default(), 0);
    assert!(!v.allowed && v.outcome.reason.contains("an empty all_of accepts nothing"), "{}", v.report());
    let nested = "{ any_of = [{ all_of = [{ tuf = { roles = [\"releases\"] } }, \"accept\"] }, \
                  { all_of = [\"accept\", { tuf = {} }] }] }";
    let v = check("nested", nested, &v1, &e, true, "satisfied by all_of");
    assert_eq!(v.outcome.children.len(), 2);
    assert!(!v.outcome.children[0].passed && v.outcome.children[1].passed);
    assert_eq!(v.outcome.children[0].reason, "missing: tuf (roles: releases)");
    let a = digest('a');
    assert_eq!(v.summary(), "policy \"r\" satisfied: any_of: satisfied by all_of");
    assert_eq!(
        v.report(),
        format!(
            "rule \"r\": PASS\n  pass  any_of: satisfied by all_of\n    fail  all_of: missing: tuf (roles: releases)\n      \
             fail  tuf (roles: releases): signed by role targets, not one of releases\n      pass  accept: every manifest \
             is accepted\n    pass  all_of: all satisfied\n      pass  accept: every manifest is accepted\n      pass  \
             tuf: tag v1 signed by role targets for {a}\n"
        )
    );
    let denied = check("denied", "{ all_of = [{ tuf = {} }, \"reject\"] }", &v1, &e, false, "missing: reject");
    assert_eq!(denied.summary(), "policy \"r\" not satisfied: all_of: missing: reject");
    assert!(denied.report().starts_with("rule \"r\": FAIL\n  fail  all_of: missing: reject\n"), "{}", denied.report());
}

fn payload(reference: &str) -> SigstoreCandidate {
    let p = serde_json::json!({"critical": {"identity": {"docker-reference": reference},
        "image": {"docker-manifest-digest": digest('a').to_string()}, "type": "cosign container image signature"}});
    SigstoreCandidate::SimpleSigning {
        payload: p.to_string().into_bytes(),
        signature: "c2ln".into(),
        certificate: None,
        chain: None,
        rekor_bundle: None,
    }
}

#[test]
fn signed_identities() {
    let reg = || "r.example:5000".to_string();
    let by_tag = subject("team/app", Some("v1"), 'a');
    let by_digest = subject("team/app", None, 'a');
    let at = format!("r.example:5000/team/app@{}", digest('a'));
    let rows: Vec<(Identity, &Subject, &str, bool)> = vec![
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_tag, "r.example:5000/team/app:v1", true),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_tag, "r.example:5000/team/app:v2", false),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_tag, "r.example:5000/team/app", false),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_tag, "r.example:5000/team/other:v1", false),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_tag, "q.example:5000/team/app:v1", false),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_digest, "r.example:5000/team/app:v9", true),
        (Identity::MatchRepoDigestOrExact { registry: reg() }, &by_digest, "r.example:5000/team/app", false),
        (Identity::MatchExact { registry: reg() }, &by_digest, &at, true),
        (Identity::MatchExact { registry: reg() }, &by_digest, "r.example:5000/team/app:v1", false),
        (Identity::MatchExact { registry: reg() }, &by_tag, "r.example:5000/team/app:v1", true),
        (Identity::MatchRepository { registry: reg() }, &by_tag, "r.example:5000/team/app", true),
        (Identity::MatchRepository { registry: reg() }, &by_tag, "r.example:5000/team/app:v7", true),
        (Identity::MatchRepository { registry: reg() }, &by_tag, "r.example:5000/team/appx", false),
        (
            Identity::ExactReference { docker_reference: "r.example:5000/team/app:stable".into() },
            &by_tag,
            "r.example:5000/team/app:stable",
            true,
        ),
        (
            Identity::ExactReference { docker_reference: "r.example:5000/team/app:stable".into() },
            &by_tag,
            "r.example:5000/team/app:v1",
            false,
        ),
        (
            Identity::ExactRepository { docker_repository: "r.example:5000/team/app".into() },
            &by_tag,
            "r.example:5000/team/app:x",
            true,
        ),
        (
            Identity::ExactRepository { docker_repository: "r.example:5000/team/app".into() },
            &by_tag,
            "r.example:5000/team/b:x",
            false,
        ),
    ];
    for (id, s, signed, expected) in rows {
        assert_eq!(id.accepts(signed, s), expected, "{id:?} for {s:?} signed as {signed}");
    }
    // In a rule: candidates naming another image are dropped before verification, and the reason says so.
    let r = Requirement::Sigstore(SigstoreRequirement {
        key: Some("/k.pub".into()),
        identity: Some(Identity::MatchRepository { registry: reg() }),
        ..Default::default()
    });
    let e = Evidence {
        sigstore: vec![payload("r.example:5000/other/app:v1"), SigstoreCandidate::Bundle(b"{}".to_vec())],
        ..Default::default()
    };
    let v = evaluate(&rule(r), &by_tag, &e, &Material::default(), 0);
    assert!(!v.allowed);
    assert!(v.outcome.reason.contains("(2 signature(s) name another image or no image)"), "{}", v.report());
    assert!(v.outcome.requirement.contains("identity: its repository"), "{}", v.outcome.requirement);
}

/// Notation scopes: a subject whose host is known (the client's) matches whole scopes, so a lenient statement for
/// one host does not reach the same path under another; without a host (the registry, the mirror) scopes match by
/// path.
#[test]
fn notation_scopes_match_the_host_when_it_is_known() {
    let tp = br#"{"version": "1.0", "trustPolicies": [
        {"name": "lenient", "registryScopes": ["a.example/team/app"], "signatureVerification": {"level": "skip"}},
        {"name": "strict", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
         "trustStores": ["ca:acme"], "trustedIdentities": ["*"]}
    ]}"#;
    let mut material = Material::default();
    material.files.insert("/tp.json".into(), tp.to_vec());
    material.trust_stores.insert("/ts".into(), Default::default());
    let r =
        rule(Requirement::Notation(NotationRequirement { trust_policy: "/tp.json".into(), trust_store: "/ts".into() }));
    let judge = |host: Option<&str>| {
        let s = Subject { host: host.map(String::from), ..subject("team/app", Some("v1"), 'a') };
        evaluate(&r, &s, &Evidence::default(), &material, 0)
    };
    assert!(judge(Some("a.example")).allowed, "{}", judge(Some("a.example")).report());
    let other = judge(Some("b.example"));
    assert!(!other.allowed, "the lenient statement reached another host: {}", other.report());
    assert!(judge(None).allowed, "by path, the lenient statement applies");
}
