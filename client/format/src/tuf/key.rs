//! Public keys in TUF's key format, their key ids, signature verification for the schemes python-tuf and go-tuf
//! sign with, and ed25519 signing keys.
//!
//! A key is kept as the object it was received as (unknown fields included), so its id is the sha256 of the
//! canonical form of exactly what the metadata says, as the specification defines it.

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::{canonical, TufError};

/// A key id: the lowercase hex sha256 of the key's canonical JSON.
pub type KeyId = String;

/// A public key as TUF metadata writes it, with every field it arrived with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    pub scheme: String,
    pub keyval: Map<String, Value>,
    /// Fields this version does not model (`keyid_hash_algorithms`, `x-…`): kept so the key id covers them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The signature schemes Wharf verifies. Anything else is ignored when counting a threshold, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ed25519,
    EcdsaP256Sha256,
    RsaPssSha256,
}

impl PublicKey {
    pub fn ed25519(key: &ed25519_dalek::VerifyingKey) -> PublicKey {
        let mut keyval = Map::new();
        keyval.insert("public".into(), Value::String(hex::encode(key.as_bytes())));
        PublicKey { keytype: "ed25519".into(), scheme: "ed25519".into(), keyval, other: Map::new() }
    }

    /// The key id the specification assigns this key: over the key object as received.
    pub fn key_id(&self) -> KeyId {
        match canonical(self) {
            Ok(bytes) => hex::encode(sha2::Sha256::digest(bytes)),
            // A key holding a float cannot be canonicalized, so it has no id that any signature could name.
            Err(_) => String::new(),
        }
    }

    /// The scheme this key signs with, if Wharf verifies it (`keytype` and `scheme` must agree).
    pub fn scheme(&self) -> Option<Scheme> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            ("ed25519", "ed25519") => Some(Scheme::Ed25519),
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => Some(Scheme::EcdsaP256Sha256),
            ("rsa", "rsassa-pss-sha256") => Some(Scheme::RsaPssSha256),
            _ => None,
        }
    }

    /// Refuses a key Wharf cannot verify or whose public value does not parse (the trust service accepts only keys
    /// it can check).
    pub fn check_supported(&self, role: &str) -> Result<(), TufError> {
        let unsupported = || TufError::UnsupportedKey {
            role: role.to_string(),
            keytype: self.keytype.clone(),
            scheme: self.scheme.clone(),
        };
        self.verifier().ok_or_else(unsupported).map(|_| ())
    }

    /// Whether `sig_hex` is a valid signature by this key over `message`. Malformed input and unknown schemes are
    /// simply invalid.
    pub fn verifies(&self, message: &[u8], sig_hex: &str) -> bool {
        let (Some(verifier), Ok(sig)) = (self.verifier(), hex::decode(sig_hex)) else { return false };
        verifier.verify(message, &sig)
    }

    fn public(&self) -> Option<&str> {
        self.keyval.get("public").and_then(Value::as_str)
    }

    fn verifier(&self) -> Option<Verifier_> {
        let public = self.public()?;
        Some(match self.scheme()? {
            Scheme::Ed25519 => {
                let bytes: [u8; 32] = hex::decode(public).ok()?.try_into().ok()?;
                Verifier_::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?)
            }
            Scheme::EcdsaP256Sha256 => {
                use p256::pkcs8::DecodePublicKey;
                let key = match p256::PublicKey::from_public_key_pem(public) {
                    Ok(k) => k,
                    // Older metadata writes the point in hex rather than PEM.
                    Err(_) => p256::PublicKey::from_sec1_bytes(&hex::decode(public).ok()?).ok()?,
                };
                Verifier_::P256(p256::ecdsa::VerifyingKey::from(key))
            }
            Scheme::RsaPssSha256 => {
                use rsa::pkcs8::DecodePublicKey;
                Verifier_::RsaPss(rsa::RsaPublicKey::from_public_key_pem(public).ok()?)
            }
        })
    }
}

enum Verifier_ {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    RsaPss(rsa::RsaPublicKey),
}

impl Verifier_ {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Verifier_::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(sig) else { return false };
                key.verify(message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok()
            }
            Verifier_::P256(key) => {
                // securesystemslib writes DER; accept the fixed-size r‖s form too.
                let parsed = p256::ecdsa::Signature::from_der(sig).or_else(|_| p256::ecdsa::Signature::from_slice(sig));
                parsed.is_ok_and(|s| key.verify(message, &s).is_ok())
            }
            Verifier_::RsaPss(key) => {
                let verifier = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key.clone());
                rsa::pss::Signature::try_from(sig).is_ok_and(|s| {
                    use rsa::signature::Verifier as _;
                    verifier.verify(message, &s).is_ok()
                })
            }
        }
    }
}

/// A private ed25519 key with its public half in TUF form.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    id: KeyId,
}

impl SigningKey {
    pub fn from_bytes(secret: &[u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let public = PublicKey::ed25519(&key.verifying_key());
        let id = public.key_id();
        SigningKey { key, public, id }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The hex signature over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> PublicKey {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn key_id_covers_fields_we_do_not_model() {
        let plain = r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab"}}"#;
        let extra =
            r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab"},"keyid_hash_algorithms":["sha256"]}"#;
        let id_of =
            |s: &str| hex::encode(sha2::Sha256::digest(canonical(&serde_json::from_str::<Value>(s).unwrap()).unwrap()));
        assert_eq!(parse(plain).key_id(), id_of(plain));
        assert_eq!(parse(extra).key_id(), id_of(extra));
        assert_ne!(parse(plain).key_id(), parse(extra).key_id());
        // Unknown keyval members survive too.
        let odd = r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"ab","private":""}}"#;
        assert_eq!(parse(odd).key_id(), id_of(odd));
    }

    #[test]
    fn unknown_schemes_parse_and_never_verify() {
        let k = parse(r#"{"keytype":"sphincs","scheme":"sphincs-shake","keyval":{"public":"00"}}"#);
        assert_eq!(k.scheme(), None);
        assert!(!k.verifies(b"x", "00"));
        assert!(matches!(k.check_supported("r"), Err(TufError::UnsupportedKey { .. })));
        // A key whose keyval is not a string still parses (and is unusable).
        let k = parse(r#"{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":7}}"#);
        assert!(!k.verifies(b"x", "00"));
    }

    #[test]
    fn ecdsa_p256_signatures_verify() {
        use p256::ecdsa::signature::Signer as _;
        use p256::pkcs8::EncodePublicKey;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = sk.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let key = parse(
            &serde_json::json!({"keytype":"ecdsa","scheme":"ecdsa-sha2-nistp256","keyval":{"public":pem}}).to_string(),
        );
        let sig: p256::ecdsa::Signature = sk.sign(b"message");
        assert!(key.verifies(b"message", &hex::encode(sig.to_der().as_bytes())));
        assert!(key.verifies(b"message", &hex::encode(sig.to_bytes())));
        assert!(!key.verifies(b"other", &hex::encode(sig.to_der().as_bytes())));
    }
}
