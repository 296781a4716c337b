//! The verification workflow on envelopes made by an independent signer (`testdata/`, see its README): one row per
//! case and level, each naming the validation and the error it expects.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::level::Validation;
use super::*;
use crate::policy::{Material, NotationCandidate, NotationRequirement, Subject};

/// The signing time of the fixtures (`testdata/cases.json`), and the digest and size they sign.
const SIGNED_AT: i64 = 1_796_604_469;
const NOW: i64 = SIGNED_AT + 3600;
const DIGEST: &str = "sha256:b76a043c3ed7567f7a22c445b229ed1d3ad692ab55beb41e069097df7899794f";
const SIZE: u64 = 1234;
const TRUSTED: &str = "x509.subject: C=US, ST=WA, O=acme-rockets.io";

fn envelope(case: &str) -> &'static [u8] {
    match case {
        "good-ps256" => include_bytes!("testdata/envelopes/good-ps256.jws"),
        "good-ps384" => include_bytes!("testdata/envelopes/good-ps384.jws"),
        "good-es256" => include_bytes!("testdata/envelopes/good-es256.jws"),
        "good-es384" => include_bytes!("testdata/envelopes/good-es384.jws"),
        "good-es512" => include_bytes!("testdata/envelopes/good-es512.jws"),
        "wrong-chain" => include_bytes!("testdata/envelopes/wrong-chain.jws"),
        "expired-cert" => include_bytes!("testdata/envelopes/expired-cert.jws"),
        "wrong-digest" => include_bytes!("testdata/envelopes/wrong-digest.jws"),
        "wrong-size" => include_bytes!("testdata/envelopes/wrong-size.jws"),
        "untrusted-identity" => include_bytes!("testdata/envelopes/untrusted-identity.jws"),
        "expired-signature" => include_bytes!("testdata/envelopes/expired-signature.jws"),
        "server-auth-leaf" => include_bytes!("testdata/envelopes/server-auth-leaf.jws"),
        "tampered" => include_bytes!("testdata/envelopes/tampered.jws"),
        "authority-good" => include_bytes!("testdata/envelopes/authority-good.jws"),
        "authority-past-leaf" => include_bytes!("testdata/envelopes/authority-past-leaf.jws"),
        "cose-good-ps256" => include_bytes!("testdata/envelopes/cose-good-ps256.cose"),
        "cose-good-es384" => include_bytes!("testdata/envelopes/cose-good-es384.cose"),
        "cose-wrong-digest" => include_bytes!("testdata/envelopes/cose-wrong-digest.cose"),
        "cose-wrong-chain" => include_bytes!("testdata/envelopes/cose-wrong-chain.cose"),
        "cose-tampered" => include_bytes!("testdata/envelopes/cose-tampered.cose"),
        other => panic!("no fixture {other}"),
    }
}

fn trust_store() -> BTreeMap<String, Vec<u8>> {
    [
        ("x509/ca/acme/root.pem", include_bytes!("testdata/truststore/x509/ca/acme/root.pem").to_vec()),
        ("x509/ca/other/root.crt", include_bytes!("testdata/truststore/x509/ca/other/root.crt").to_vec()),
        (
            "x509/signingAuthority/acme/root.pem",
            include_bytes!("testdata/truststore/x509/signingAuthority/acme/root.pem").to_vec(),
        ),
    ]
    .into_iter()
    .map(|(p, b)| (p.to_string(), b))
    .collect()
}

/// A document with one global statement.
fn document(level: Value, stores: &[&str], identities: &[&str]) -> Vec<u8> {
    let statement = json!({
        "name": "acme",
        "registryScopes": ["*"],
        "signatureVerification": level,
        "trustStores": stores,
        "trustedIdentities": identities,
    });
    json!({ "version": "1.0", "trustPolicies": [statement] }).to_string().into_bytes()
}

fn strict() -> Vec<u8> {
    document(json!({ "level": "strict" }), &["ca:acme"], &[TRUSTED])
}

/// Verifies `case` under `doc` at `now`: `Ok(logged validations)` or `Err((validation, error variant))`.
fn run(case: &str, doc: &[u8], size: Option<u64>, now: i64) -> Result<Vec<Validation>, (Validation, String)> {
    let doc = trust_policy::TrustPolicyDocument::parse(doc).unwrap();
    let policy = &doc.statements[0];
    let store = TrustStore::parse(&trust_store(), &policy.trust_stores).unwrap();
    let digest = DIGEST.parse().unwrap();
    let media_type = if case.starts_with("cose-") { COSE_MEDIA_TYPE } else { JWS_MEDIA_TYPE };
    match verify(policy, &store, media_type, envelope(case), &digest, size, now) {
        Ok(v) => Ok(v.logged.iter().map(|f| f.validation).collect()),
        Err(f) => {
            let variant = format!("{:?}", f.error);
            Err((f.validation, variant.split(['(', ' ']).next().unwrap_or("").to_string()))
        }
    }
}

fn check(case: &str, doc: &[u8], expect: Result<Vec<Validation>, (Validation, &str)>) {
    check_at(case, doc, None, NOW, expect)
}

fn check_at(case: &str, doc: &[u8], size: Option<u64>, now: i64, expect: Result<Vec<Validation>, (Validation, &str)>) {
    let got = run(case, doc, size, now);
    let expect = expect.map_err(|(v, e)| (v, e.to_string()));
    assert_eq!(got, expect, "{case} under {}", String::from_utf8_lossy(doc));
}

#[test]
fn strict_level() {
    use Validation::*;
    for good in ["good-ps256", "good-ps384", "good-es256", "good-es384", "good-es512"] {
        check(good, &strict(), Ok(vec![]));
    }
    check("wrong-chain", &strict(), Err((Authenticity, "Untrusted")));
    check("expired-cert", &strict(), Err((AuthenticTimestamp, "NotValid")));
    check("wrong-digest", &strict(), Err((Integrity, "Digest")));
    check("untrusted-identity", &strict(), Err((Authenticity, "Identity")));
    check("expired-signature", &strict(), Err((Expiry, "Expired")));
    check("server-auth-leaf", &strict(), Err((Authenticity, "Chain")));
    check("tampered", &strict(), Err((Integrity, "Signature")));
    // COSE envelopes: the same workflow.
    check("cose-good-ps256", &strict(), Ok(vec![]));
    check("cose-good-es384", &strict(), Ok(vec![]));
    check("cose-wrong-digest", &strict(), Err((Integrity, "Digest")));
    check("cose-wrong-chain", &strict(), Err((Authenticity, "Untrusted")));
    check("cose-tampered", &strict(), Err((Integrity, "Signature")));
    // The size is checked when the caller knows it.
    check("wrong-size", &strict(), Ok(vec![]));
    check_at("wrong-size", &strict(), Some(SIZE), NOW, Err((Integrity, "Size")));
    check_at("good-ps256", &strict(), Some(SIZE), NOW, Ok(vec![]));
    // Judged at verification time: before the leaf's validity, and after it ends (30 days after signing).
    check_at("good-ps256", &strict(), None, SIGNED_AT - 8 * 86_400, Err((AuthenticTimestamp, "NotValid")));
    check_at("good-ps256", &strict(), None, SIGNED_AT + 31 * 86_400, Err((AuthenticTimestamp, "NotValid")));
}

#[test]
fn trust_stores_and_identities() {
    use Validation::*;
    // The other root (a DER `.crt`) vouches for the wrong-chain signer, not for the acme chain.
    let other = document(json!({ "level": "strict" }), &["ca:other"], &["*"]);
    check("wrong-chain", &other, Ok(vec![]));
    check("good-es256", &other, Err((Authenticity, "Untrusted")));
    let both = document(json!({ "level": "strict" }), &["ca:other", "ca:acme"], &["*"]);
    check("wrong-chain", &both, Ok(vec![]));
    check("untrusted-identity", &both, Ok(vec![]));
    // A store of another kind does not count for `notary.x509`.
    let sa = document(json!({ "level": "strict" }), &["signingAuthority:acme"], &["*"]);
    check("good-es256", &sa, Err((Authenticity, "Untrusted")));
    // The signing authority scheme: its own stores, and the chain judged at the authentic signing time (the second
    // leaf's validity ended a day before now, after that time).
    check("authority-good", &sa, Ok(vec![]));
    check("authority-past-leaf", &sa, Ok(vec![]));
    check("authority-good", &strict(), Err((Authenticity, "Untrusted")));
    check("expired-cert", &sa, Err((Authenticity, "Untrusted")));
    // The whole subject, and a subject naming an attribute the signer lacks.
    let full = "x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=builds, CN=builder";
    check("good-es256", &document(json!({ "level": "strict" }), &["ca:acme"], &[full]), Ok(vec![]));
    let other = "x509.subject: C=US, ST=WA, O=other.io";
    let two = document(json!({ "level": "strict" }), &["ca:acme"], &[other, TRUSTED]);
    check("good-es256", &two, Ok(vec![]));
    let more = "x509.subject: C=US, ST=WA, O=acme-rockets.io, OU=releases";
    let only_more = document(json!({ "level": "strict" }), &["ca:acme"], &[more]);
    check("good-es256", &only_more, Err((Authenticity, "Identity")));
}

#[test]
fn levels() {
    use Validation::*;
    let level = |l: Value| document(l, &["ca:acme"], &[TRUSTED]);
    let permissive = level(json!({ "level": "permissive" }));
    check("expired-cert", &permissive, Ok(vec![AuthenticTimestamp]));
    check("expired-signature", &permissive, Ok(vec![Expiry]));
    check("untrusted-identity", &permissive, Err((Authenticity, "Identity")));
    check("wrong-digest", &permissive, Err((Integrity, "Digest")));
    let audit = level(json!({ "level": "audit" }));
    check("wrong-chain", &audit, Ok(vec![Authenticity]));
    check("server-auth-leaf", &audit, Ok(vec![Authenticity]));
    check("tampered", &audit, Err((Integrity, "Signature")));
    check("wrong-digest", &audit, Err((Integrity, "Digest")));
    let custom = level(json!({ "level": "strict", "override": { "expiry": "log" } }));
    check("expired-signature", &custom, Ok(vec![Expiry]));
    check("expired-cert", &custom, Err((AuthenticTimestamp, "NotValid")));
    let custom = level(json!({ "level": "audit", "override": { "authenticity": "enforce" } }));
    check("wrong-chain", &custom, Err((Authenticity, "Untrusted")));
}

fn requirement() -> NotationRequirement {
    NotationRequirement {
        trust_policy: "/etc/notation/trustpolicy.json".into(),
        trust_store: "/etc/notation/ts".into(),
    }
}

fn material(doc: Vec<u8>) -> Material {
    let mut m = Material::default();
    m.files.insert(requirement().trust_policy, doc);
    m.trust_stores.insert(requirement().trust_store, trust_store());
    m
}

fn candidate(case: &str, media_type: &str) -> NotationCandidate {
    NotationCandidate { media_type: media_type.into(), envelope: envelope(case).to_vec() }
}

fn subject(repo: &str) -> Subject {
    Subject { repository: repo.parse().unwrap(), tag: None, digest: DIGEST.parse().unwrap(), host: None }
}

#[test]
fn satisfies_picks_a_statement_and_a_candidate() {
    let scoped = json!({ "version": "1.0", "trustPolicies": [
        { "name": "app", "registryScopes": ["registry.example/team/app"],
          "signatureVerification": { "level": "strict" }, "trustStores": ["ca:acme"], "trustedIdentities": [TRUSTED] },
        { "name": "legacy", "registryScopes": ["registry.example/team/legacy"],
          "signatureVerification": { "level": "skip" } },
    ]})
    .to_string()
    .into_bytes();
    let m = material(scoped);
    let r = requirement();
    let one = |repo: &str, cands: &[NotationCandidate]| satisfies(&r, &subject(repo), cands, &m, NOW);

    let good = [candidate("tampered", JWS_MEDIA_TYPE), candidate("good-es256", JWS_MEDIA_TYPE)];
    let ok = one("team/app", &good).unwrap();
    assert!(ok.starts_with("signed by C=US, ST=WA, L=Seattle, O=acme-rockets.io"), "{ok}");
    assert!(ok.contains(r#"statement "app", strict"#), "{ok}");
    assert_eq!(one("team/legacy", &[]), Ok(r#"trust policy statement "legacy" skips verification"#.into()));
    assert_eq!(one("team/app", &[]), Err("no Notation signature".into()));
    let err = one("team/other", &good).unwrap_err();
    assert!(err.contains("no trust policy statement applies to team/other"), "{err}");
    let bad = [
        candidate("tampered", JWS_MEDIA_TYPE),
        candidate("good-es256", COSE_MEDIA_TYPE),
        candidate("good-es256", "application/pgp-signature"),
    ];
    let err = one("team/app", &bad).unwrap_err();
    assert!(err.contains("integrity: the signature does not verify"), "{err}");
    assert!(err.contains("integrity: malformed COSE_Sign1: not a tagged COSE_Sign1"), "{err}");
    assert!(err.contains(r#"unsupported envelope media type "application/pgp-signature""#), "{err}");
    // The size is checked when the caller knows it; with a host, scopes match whole.
    let with = |host, size| satisfies_with(&r, &subject("team/app"), host, size, &good, &m, NOW);
    assert!(with(Some("registry.example"), Some(SIZE)).is_ok());
    assert!(with(Some("registry.example"), Some(SIZE + 1)).unwrap_err().contains("1234 bytes, not 1235"));
    assert!(with(Some("other.example"), None).unwrap_err().contains("no trust policy statement applies"));

    // Material the rule names but the caller did not read, and a malformed document.
    let err = satisfies(&r, &subject("team/app"), &good, &Material::default(), NOW).unwrap_err();
    assert_eq!(err, "trust policy /etc/notation/trustpolicy.json was not read");
    let err = satisfies(&r, &subject("team/app"), &good, &material(b"{}".to_vec()), NOW).unwrap_err();
    assert!(err.starts_with("trust policy /etc/notation/trustpolicy.json: not a trust policy document"), "{err}");
}

#[test]
fn logged_failures_are_reported() {
    let m = material(document(json!({ "level": "permissive" }), &["ca:acme"], &[TRUSTED]));
    let ok =
        satisfies(&requirement(), &subject("team/app"), &[candidate("expired-signature", JWS_MEDIA_TYPE)], &m, NOW)
            .unwrap();
    assert!(ok.contains("; logged: expiry: the signature expired at 2026-12-06T00:47:49Z"), "{ok}");
}
