//! Tokens made by the tests themselves: tampered, unsigned, signed by a foreign key, or by a configured external
//! issuer.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Token claims for `sub` with pull on `repo`, valid from `nbf_offset` seconds from now for `lifetime` seconds.
pub fn claims(iss: &str, aud: &str, sub: &str, nbf_offset: i64, lifetime: i64, repo: &str) -> serde_json::Value {
    let start = now() + nbf_offset;
    serde_json::json!({
        "iss": iss, "sub": sub, "aud": aud, "nbf": start - 1, "iat": start, "exp": start + lifetime, "jti": "t",
        "access": [{ "type": "repository", "name": repo, "actions": ["pull"] }],
    })
}

/// The token with `from` replaced by `to` in its payload, signature unchanged.
pub fn tamper_payload(token: &str, from: &str, to: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let changed = String::from_utf8(payload).unwrap().replace(from, to);
    format!("{}.{}.{}", parts[0], b64(changed.as_bytes()), parts[2])
}

pub fn unsigned(claims: &serde_json::Value) -> String {
    format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(claims.to_string().as_bytes()))
}

fn fresh_key() -> (jsonwebtoken::EncodingKey, p256::ecdsa::SigningKey) {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let der = key.to_pkcs8_der().unwrap();
    (jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()), key)
}

pub fn sign_foreign(claims: &serde_json::Value) -> String {
    let (enc, _) = fresh_key();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), claims, &enc).unwrap()
}

/// An external issuer's JWKS (one P-256 key, kid `idp-1`) and its signing key.
pub fn external_issuer() -> (String, jsonwebtoken::EncodingKey) {
    let (enc, key) = fresh_key();
    let point = key.verifying_key().to_encoded_point(false);
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "idp-1", "alg": "ES256", "use": "sig",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    }]});
    (jwks.to_string(), enc)
}

pub fn sign_with(key: &jsonwebtoken::EncodingKey, claims: &serde_json::Value) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("idp-1".into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}
