//! The envelope's form, one row per rule of the JWS specification (signatures are the workflow's tests).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;

/// The leaf certificate of a fixture envelope, base64 (standard), as `x5c` holds it.
fn leaf() -> String {
    let env: Value = serde_json::from_slice(include_bytes!("../testdata/envelopes/good-es256.jws")).unwrap();
    env["header"]["x5c"][0].as_str().unwrap().to_string()
}

fn header() -> Value {
    json!({
        "alg": "ES256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": "2026-12-07T00:00:00Z",
        "crit": ["io.cncf.notary.signingScheme"],
    })
}

fn envelope(protected: &Value, x5c: Value) -> Vec<u8> {
    json!({
        "payload": URL_SAFE_NO_PAD.encode(br#"{"targetArtifact":{}}"#),
        "protected": URL_SAFE_NO_PAD.encode(protected.to_string()),
        "header": { "x5c": x5c, "io.cncf.notary.signingAgent": "test" },
        "signature": URL_SAFE_NO_PAD.encode([1u8; 64]),
    })
    .to_string()
    .into_bytes()
}

/// The header with `key` set (or removed, for `Value::Null`).
fn with(key: &str, value: Value) -> Value {
    let mut h = header();
    match value {
        Value::Null => h.as_object_mut().unwrap().remove(key),
        v => h.as_object_mut().unwrap().insert(key.to_string(), v),
    };
    h
}

fn check(bytes: &[u8], expect: &str) {
    let got = match parse(bytes) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    assert!(got.starts_with(expect), "{}\n  got {got}\n  want {expect}", String::from_utf8_lossy(bytes));
}

#[test]
fn protected_header() {
    let x5c = || json!([leaf()]);
    let scheme = "io.cncf.notary.signingScheme";
    check(&envelope(&header(), x5c()), "ok");
    check(&envelope(&with("alg", Value::Null), x5c()), r#"Missing("alg")"#);
    check(&envelope(&with("alg", json!(7)), x5c()), r#"Header { name: "alg""#);
    check(&envelope(&with("cty", json!("application/json")), x5c()), "ContentType");
    check(&envelope(&with(scheme, json!("notary.default")), x5c()), "SigningScheme");
    check(&envelope(&with(scheme, Value::Null), x5c()), r#"Missing("io.cncf.notary.signingScheme")"#);
    check(
        &envelope(&with("io.cncf.notary.signingTime", Value::Null), x5c()),
        r#"Missing("io.cncf.notary.signingTime")"#,
    );
    check(&envelope(&with("io.cncf.notary.signingTime", json!("yesterday")), x5c()), "Time");
    // The signing authority scheme needs an authentic signing time, marked critical.
    let sa = with(scheme, json!("notary.x509.signingAuthority"));
    check(&envelope(&sa, x5c()), r#"Missing("io.cncf.notary.authenticSigningTime")"#);
    let mut sa_time = sa.clone();
    sa_time["io.cncf.notary.authenticSigningTime"] = json!("2026-12-07T00:00:00Z");
    check(&envelope(&sa_time, x5c()), r#"NotCritical("io.cncf.notary.authenticSigningTime")"#);
    sa_time["crit"] = json!([scheme, "io.cncf.notary.authenticSigningTime"]);
    check(&envelope(&sa_time, x5c()), "ok");
}

#[test]
fn critical_headers() {
    let x5c = || json!([leaf()]);
    let scheme = "io.cncf.notary.signingScheme";
    check(&envelope(&with("crit", Value::Null), x5c()), r#"Missing("crit")"#);
    check(&envelope(&with("crit", json!([])), x5c()), r#"Header { name: "crit""#);
    check(&envelope(&with("crit", json!("io.cncf.notary.signingScheme")), x5c()), r#"Header { name: "crit""#);
    check(&envelope(&with("crit", json!([scheme, 1])), x5c()), r#"Header { name: "crit""#);
    // Registered headers and attributes this verifier does not understand (a plugin's) cannot be critical.
    check(&envelope(&with("crit", json!([scheme, "alg"])), x5c()), r#"UnknownCritical("alg")"#);
    let mut plugin = with("io.cncf.notary.verificationPlugin", json!("com.example.plugin"));
    plugin["crit"] = json!([scheme, "io.cncf.notary.verificationPlugin"]);
    check(&envelope(&plugin, x5c()), r#"UnknownCritical("io.cncf.notary.verificationPlugin")"#);
    // Listed but absent; present but not listed; listed and present.
    let expiry = "io.cncf.notary.expiry";
    check(&envelope(&with("crit", json!([scheme, expiry])), x5c()), r#"UnknownCritical("io.cncf.notary.expiry")"#);
    let mut exp = with(expiry, json!("2027-01-01T00:00:00Z"));
    check(&envelope(&exp, x5c()), r#"NotCritical("io.cncf.notary.expiry")"#);
    exp["crit"] = json!([scheme, expiry]);
    check(&envelope(&exp, x5c()), "ok");
    check(&envelope(&with("crit", json!([expiry])), x5c()), "UnknownCritical");
}

#[test]
fn serialization_and_chain() {
    let good = envelope(&header(), json!([leaf()]));
    // Only the flattened serialization, with no other top-level member.
    let mut general: Value = serde_json::from_slice(&good).unwrap();
    general["signatures"] = json!([]);
    check(general.to_string().as_bytes(), "Json");
    check(b"eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "Json");
    let mut padded: Value = serde_json::from_slice(&good).unwrap();
    padded["signature"] = json!(format!("{}=", padded["signature"].as_str().unwrap()));
    check(padded.to_string().as_bytes(), r#"Base64("signature")"#);
    let mut not_json: Value = serde_json::from_slice(&good).unwrap();
    not_json["protected"] = json!(URL_SAFE_NO_PAD.encode("not json"));
    check(not_json.to_string().as_bytes(), "Json");

    check(&envelope(&header(), json!([])), "NoCertificates");
    let mut no_header: Value = serde_json::from_slice(&good).unwrap();
    no_header.as_object_mut().unwrap().remove("header");
    check(no_header.to_string().as_bytes(), "NoCertificates");
    check(&envelope(&header(), json!(vec![leaf(); 11])), "TooManyCertificates(11)");
    check(&envelope(&header(), json!([URL_SAFE_NO_PAD.encode([0u8; 40])])), r#"Base64("x5c")"#);
    check(&envelope(&header(), json!([STANDARD.encode([0x30, 3, 1, 1, 0])])), "Certificate { index: 0");

    let env = parse(&good).unwrap();
    assert_eq!(env.alg, "ES256");
    assert_eq!(env.signing_time, Some(1_796_601_600));
    assert_eq!(env.expiry, None);
    let v: Value = serde_json::from_slice(&good).unwrap();
    let input = format!("{}.{}", v["protected"].as_str().unwrap(), v["payload"].as_str().unwrap());
    assert_eq!(env.signing_input, input.into_bytes());
    assert_eq!(env.chain.len(), 1);
}
