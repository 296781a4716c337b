//! One row per rule of the trust policy specification, each naming the error it expects; then selection.

use serde_json::{json, Value};

use super::*;

fn statement(name: &str, scopes: &[&str]) -> Value {
    json!({
        "name": name,
        "registryScopes": scopes,
        "signatureVerification": { "level": "strict" },
        "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=acme"],
    })
}

fn doc(statements: Vec<Value>) -> Vec<u8> {
    json!({ "version": "1.0", "trustPolicies": statements }).to_string().into_bytes()
}

/// A document whose one statement is `statement("p", ["r.io/team/app"])` with `field` set to `value`.
fn with(field: &str, value: Value) -> Vec<u8> {
    let mut s = statement("p", &["r.io/team/app"]);
    s[field] = value;
    doc(vec![s])
}

fn check(bytes: &[u8], expect: &str) {
    let got = match TrustPolicyDocument::parse(bytes) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    assert!(got.starts_with(expect), "{}\n  got {got}\n  want {expect}", String::from_utf8_lossy(bytes));
}

#[test]
fn validation() {
    check(&doc(vec![statement("p", &["r.io/team/app"])]), "ok");
    check(&doc(vec![statement("p", &["*"])]), "ok");
    check(&doc(vec![statement("p", &["localhost:5000/team/app", "r.io/x"])]), "ok");
    check(br#"{"version":"1.0","trustPolicies":[{"name":1}]}"#, "Json");
    check(br#"{"version":"2.0","trustPolicies":[]}"#, "Version(\"2.0\")");
    check(&doc(vec![]), "NoStatements");
    check(&with("name", json!("")), "NoName");
    check(&doc(vec![statement("p", &["r.io/a"]), statement("p", &["r.io/b"])]), "DuplicateName(\"p\")");
    check(&with("registryScopes", json!([])), "NoScopes");
    check(&with("registryScopes", json!(["*", "r.io/a"])), "GlobalWithOthers");
    check(&with("registryScopes", json!(["app"])), "Scope");
    check(&with("registryScopes", json!(["r.io/"])), "Scope");
    check(&with("registryScopes", json!(["r.io/Team/App"])), "Scope");
    check(&with("registryScopes", json!(["r.io/team/*"])), "Scope");
    check(&with("registryScopes", json!(["-r.io/team"])), "Scope");
    check(&with("registryScopes", json!(["r.io:port/team"])), "Scope");
    check(&doc(vec![statement("p", &["r.io/a"]), statement("q", &["r.io/a"])]), "DuplicateScope(\"r.io/a\")");
    check(&doc(vec![statement("p", &["*"]), statement("q", &["*"])]), "DuplicateScope(\"*\")");
    check(&with("signatureVerification", json!({ "level": "lenient" })), "Level");
    check(&with("signatureVerification", json!({ "level": "strict", "override": { "integrity": "log" } })), "Level");
    check(&with("signatureVerification", json!({ "level": "skip" })), "SkipWithTrust");
    check(&with("trustStores", json!([])), "MissingTrust");
    check(&with("trustedIdentities", json!([])), "MissingTrust");
    check(&with("trustStores", json!(["acme"])), "TrustStore");
    check(&with("trustStores", json!(["x509:acme"])), "TrustStore");
    check(&with("trustStores", json!(["ca:../etc"])), "TrustStore");
    check(&with("trustStores", json!(["ca:"])), "TrustStore");
    check(&with("trustedIdentities", json!(["*", "x509.subject: C=US, ST=WA, O=acme"])), "WildcardWithOthers");
    check(&with("trustedIdentities", json!(["x509.subject: C=US, O=acme"])), "Identity");
    check(&with("trustedIdentities", json!(["x509.subject"])), "Identity");
    check(&with("trustedIdentities", json!(["x509.subject: C=US, ST=WA, O=a, O=b"])), "Identity");
    check(
        &with("trustedIdentities", json!(["x509.subject: C=US, ST=WA, O=a", "x509.subject: C=US, ST=WA, O=a, OU=b"])),
        "Overlapping",
    );
    // Two distinct subjects, and an identity kind for plugins (valid, never matched).
    check(
        &with("trustedIdentities", json!(["x509.subject: C=US, ST=WA, O=a", "x509.subject: C=US, ST=WA, O=b"])),
        "ok",
    );
    check(&with("trustedIdentities", json!(["plugin.example: anything"])), "ok");
    // A skip statement needs neither trust stores nor identities.
    let skip = json!({ "name": "s", "registryScopes": ["r.io/x"], "signatureVerification": { "level": "skip" } });
    check(&doc(vec![skip]), "ok");
}

#[test]
fn parsed_fields() {
    let d = TrustPolicyDocument::parse(&doc(vec![statement("p", &["r.io/team/app"])])).unwrap();
    let p = &d.statements[0];
    assert_eq!(p.trust_stores, vec![(StoreType::Ca, "acme".to_string())]);
    assert_eq!(p.identities, Identities::Subjects(vec![DistinguishedName::parse("C=US, ST=WA, O=acme").unwrap()]));
    assert_eq!(p.action(Validation::Expiry), Action::Enforce);
}

#[test]
fn selection() {
    let d = TrustPolicyDocument::parse(&doc(vec![
        statement("app", &["r.io/team/app", "r.io/team/lib"]),
        statement("other-host", &["s.io/team/lib"]),
        statement("global", &["*"]),
    ]))
    .unwrap();
    let check = |host: Option<&str>, repo: &str, expect: Result<&str, SelectError>| {
        let got = d.select(host, &repo.parse().unwrap()).map(|p| p.name.as_str());
        assert_eq!(got, expect, "{host:?} {repo}");
    };
    check(None, "team/app", Ok("app"));
    check(None, "team/other", Ok("global"));
    check(None, "app", Ok("global"));
    let ambiguous =
        || SelectError::Ambiguous { repository: "team/lib".into(), first: "app".into(), second: "other-host".into() };
    check(None, "team/lib", Err(ambiguous()));
    check(Some("r.io"), "team/lib", Ok("app"));
    check(Some("s.io"), "team/lib", Ok("other-host"));
    check(Some("t.io"), "team/lib", Ok("global"));
    check(Some("r.io"), "team/app", Ok("app"));

    let no_global = TrustPolicyDocument::parse(&doc(vec![statement("app", &["r.io/team/app"])])).unwrap();
    let got = no_global.select(None, &"team/other".parse().unwrap()).map(|p| p.name.clone());
    assert_eq!(got, Err(SelectError::NoPolicy("team/other".into())));
}
