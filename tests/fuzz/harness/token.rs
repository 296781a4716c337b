//! Bearer tokens through the gate's verification, with a fixed signing key and one external issuer.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePrivateKey;
use wharf_registry::auth::token::{TokenKeys, TrustedIssuer};

pub const ISSUER: &str = "wharf-fuzz";
pub const SERVICE: &str = "registry.fuzz";
pub const EXTERNAL_ISSUER: &str = "external-fuzz";

fn signing_key() -> SigningKey {
    SigningKey::from_slice(&[7; 32]).expect("a valid P-256 scalar")
}

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = signing_key();
        let der = key.to_pkcs8_der().expect("encodable key");
        let point = key.verifying_key().to_encoded_point(false);
        let b64 = |b: Option<&[u8]>| URL_SAFE_NO_PAD.encode(b.expect("an uncompressed point"));
        let jwks = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "x": b64(point.x().map(|x| x.as_slice())),
              "y": b64(point.y().map(|y| y.as_slice())), "kid": "ext1", "alg": "ES256", "use": "sig" },
        ]});
        let trusted = [TrustedIssuer { issuer: EXTERNAL_ISSUER.into(), jwks: jwks.to_string() }];
        TokenKeys::from_pkcs8_der(der.as_bytes(), ISSUER, SERVICE, &trusted).expect("fixed token keys")
    })
}

/// A token signed ES256 with the fixed key over `header` and `payload` (JSON text, any).
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let sig: Signature = signing_key().sign(message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// One mode byte: even, the rest is a token; odd, the rest is `HEADER NUL PAYLOAD`, signed here with the fixed key
/// so the fuzzer reaches the claim checks. An accepted token's scopes are read.
pub fn jwt(data: &[u8]) {
    jwt_accepted(data);
}

/// [`jwt`], returning whether the token was accepted.
pub fn jwt_accepted(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else { return false };
    let token = if mode % 2 == 0 {
        let Ok(t) = std::str::from_utf8(rest) else { return false };
        t.to_owned()
    } else {
        let docs = super::documents(rest);
        let (header, payload) = (docs.first().copied().unwrap_or(b""), docs.get(1).copied().unwrap_or(b""));
        sign(header, payload)
    };
    let Ok((claims, _external)) = keys().verify(&token) else { return false };
    let _ = claims.granted();
    let _ = claims.is_refresh();
    true
}
