//! The COSE envelope's form, one row per rule of the COSE specification (signatures are the workflow's tests).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder};

use super::*;

/// The leaf certificate of a fixture envelope, DER.
fn leaf() -> Vec<u8> {
    let env: serde_json::Value =
        serde_json::from_slice(include_bytes!("../testdata/envelopes/good-es256.jws")).unwrap();
    STANDARD.decode(env["header"]["x5c"][0].as_str().unwrap()).unwrap()
}

fn protected() -> Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .content_type(PAYLOAD_CONTENT_TYPE.to_string())
        .add_critical_label(RegisteredLabel::Text(SIGNING_SCHEME.into()))
        .text_value(SIGNING_SCHEME.into(), Value::Text("notary.x509".into()))
        .text_value(SIGNING_TIME.into(), Value::Tag(1, Box::new(Value::Integer(1_796_601_600.into()))))
        .build()
}

/// The protected header changed by `f`.
fn with(f: impl FnOnce(&mut Header)) -> Header {
    let mut h = protected();
    f(&mut h);
    h
}

/// Sets a text-labelled attribute.
fn set(h: &mut Header, name: &str, v: Value) {
    h.rest.retain(|(l, _)| *l != Label::Text(name.into()));
    h.rest.push((Label::Text(name.into()), v));
}

fn chain(v: Value) -> Header {
    HeaderBuilder::new().value(X5CHAIN, v).build()
}

fn sign1(protected: Header, unprotected: Header, payload: Option<Vec<u8>>) -> CoseSign1 {
    let mut b = CoseSign1Builder::new().protected(protected).unprotected(unprotected).signature(vec![1; 64]);
    if let Some(p) = payload {
        b = b.payload(p);
    }
    b.build()
}

fn check(s: CoseSign1, expect: &str) {
    check_bytes(&s.to_tagged_vec().unwrap(), expect)
}

fn check_bytes(bytes: &[u8], expect: &str) {
    let got = match parse(bytes) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    assert!(got.starts_with(expect), "got {got}\n  want {expect}");
}

#[test]
fn form() {
    let certs = || chain(Value::Array(vec![Value::Bytes(leaf())]));
    let payload = || Some(br#"{"targetArtifact":{}}"#.to_vec());
    check(sign1(protected(), certs(), payload()), "ok");
    // One certificate as a byte string, and a protected chain.
    check(sign1(protected(), chain(Value::Bytes(leaf())), payload()), "ok");
    let protected_chain = with(|h| h.rest.push((Label::Int(X5CHAIN), Value::Bytes(leaf()))));
    check(sign1(protected_chain, Header::default(), payload()), "ok");
    // Untagged, and not CBOR.
    check_bytes(&sign1(protected(), certs(), payload()).to_vec().unwrap(), r#"Cose("not a tagged COSE_Sign1")"#);
    check_bytes(b"{}", r#"Cose("not a tagged COSE_Sign1")"#);

    check(sign1(with(|h| h.alg = None), certs(), payload()), r#"Missing("alg")"#);
    let eddsa = with(|h| h.alg = Some(Algorithm::Assigned(iana::Algorithm::EdDSA)));
    check(sign1(eddsa, certs(), payload()), r#"Header { name: "alg""#);
    check(sign1(with(|h| h.content_type = None), certs(), payload()), r#"Missing("content type")"#);
    let json = with(|h| h.content_type = Some(ContentType::Text("application/json".into())));
    check(sign1(json, certs(), payload()), "ContentType");
    let assigned_crit = with(|h| h.crit.push(RegisteredLabel::Assigned(iana::HeaderParameter::Alg)));
    check(sign1(assigned_crit, certs(), payload()), "UnknownCritical");
    check(sign1(with(|h| h.crit.clear()), certs(), payload()), r#"Header { name: "crit""#);
    let plain_time = with(|h| set(h, SIGNING_TIME, Value::Integer(1_796_601_600.into())));
    check(sign1(plain_time, certs(), payload()), "Time");
    let scheme = with(|h| set(h, SIGNING_SCHEME, Value::Text("notary.default".into())));
    check(sign1(scheme, certs(), payload()), "SigningScheme");
    let expiry = with(|h| set(h, EXPIRY, Value::Tag(1, Box::new(Value::Integer(1.into())))));
    check(sign1(expiry, certs(), payload()), r#"NotCritical("io.cncf.notary.expiry")"#);

    check(sign1(protected(), Header::default(), payload()), "NoCertificates");
    check(sign1(protected(), chain(Value::Array(vec![])), payload()), "NoCertificates");
    check(sign1(protected(), chain(Value::Array(vec![Value::Text("x".into())])), payload()), "Cose");
    check(sign1(protected(), chain(Value::Array(vec![Value::Bytes(leaf()); 11])), payload()), "TooManyCertificates");
    check(sign1(protected(), certs(), None), r#"Cose("the payload is detached")"#);

    let env = parse(&sign1(protected(), certs(), payload()).to_tagged_vec().unwrap()).unwrap();
    assert_eq!((env.alg.as_str(), env.signing_time, env.chain.len()), ("ES256", Some(1_796_601_600), 1));
}
