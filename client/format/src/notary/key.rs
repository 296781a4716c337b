//! Notary keys: `{"keytype","keyval":{"private":null,"public":<base64>}}`, their ids, the signature methods that
//! go with each key type, the X.509 rules for root keys, and signing (the service's ed25519 keys; ECDSA for tests
//! and tools). Every primitive comes from a RustCrypto crate.

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use x509_cert::der::{Decode, DecodePem, Encode};

use super::{invalid, meta::Signature, V1MetadataError};
use crate::tuf::canonical;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A public key as Notary metadata writes it. `public` is base64; what it holds depends on `keytype`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
    #[serde(default)]
    pub private: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    Ecdsa,
    EcdsaX509,
    Rsa,
    RsaX509,
}

impl KeyType {
    pub fn parse(s: &str) -> Option<KeyType> {
        Some(match s {
            "ed25519" => KeyType::Ed25519,
            "ecdsa" => KeyType::Ecdsa,
            "ecdsa-x509" => KeyType::EcdsaX509,
            "rsa" => KeyType::Rsa,
            "rsa-x509" => KeyType::RsaX509,
            _ => return None,
        })
    }

    pub fn is_x509(self) -> bool {
        matches!(self, KeyType::EcdsaX509 | KeyType::RsaX509)
    }
}

/// The id notary gives a key: lowercase hex SHA-256 of the canonical JSON of the key object with `"private":null`.
pub fn key_id(keytype: &str, public_b64: &str) -> String {
    let obj = serde_json::json!({ "keytype": keytype, "keyval": { "private": null, "public": public_b64 } });
    // A key object of two strings always canonicalizes.
    canonical(&obj).map(|b| hex::encode(sha2::Sha256::digest(b))).unwrap_or_default()
}

/// The public key of an ed25519 verifying key.
pub fn ed25519_key(key: &ed25519_dalek::VerifyingKey) -> Key {
    Key::new("ed25519", B64.encode(key.as_bytes()))
}

/// The public key of a P-256 verifying key (DER SubjectPublicKeyInfo), as `notary key generate` writes it.
pub fn ecdsa_key(key: &p256::ecdsa::VerifyingKey) -> Key {
    let der = key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
    Key::new("ecdsa", B64.encode(der))
}

/// The id of the bare public key inside an `*-x509` key: what the notary CLI displays as a "canonical" id.
pub fn cert_key_id(key: &Key) -> Option<String> {
    let cert = key.certificate().ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    let bare = if key.kind() == Some(KeyType::RsaX509) { "rsa" } else { "ecdsa" };
    Some(key_id(bare, &B64.encode(spki)))
}

impl Key {
    pub fn new(keytype: &str, public_b64: String) -> Key {
        Key { keytype: keytype.into(), keyval: KeyVal { public: public_b64, private: None } }
    }

    /// A certificate key (`ecdsa-x509` or `rsa-x509`) from PEM text.
    pub fn x509(keytype: &str, pem: &str) -> Key {
        Key::new(keytype, B64.encode(pem.as_bytes()))
    }

    pub fn id(&self) -> String {
        key_id(&self.keytype, &self.keyval.public)
    }

    pub fn kind(&self) -> Option<KeyType> {
        KeyType::parse(&self.keytype)
    }

    fn public_bytes(&self) -> Result<Vec<u8>, V1MetadataError> {
        B64.decode(&self.keyval.public).map_err(|_| invalid("key's public value is not base64"))
    }

    /// The leaf certificate of an `*-x509` key (the first of its PEM blocks).
    pub fn certificate(&self) -> Result<x509_cert::Certificate, V1MetadataError> {
        let text = String::from_utf8(self.public_bytes()?).map_err(|_| invalid("certificate is not PEM text"))?;
        let first = first_pem_block(&text).ok_or_else(|| invalid("no PEM certificate in key"))?;
        x509_cert::Certificate::from_pem(first.as_bytes()).map_err(|e| invalid(format!("bad certificate: {e}")))
    }

    /// The DER SubjectPublicKeyInfo this key verifies with.
    fn spki_der(&self) -> Result<Vec<u8>, V1MetadataError> {
        match self.kind() {
            Some(KeyType::Ecdsa | KeyType::Rsa) => self.public_bytes(),
            Some(KeyType::EcdsaX509 | KeyType::RsaX509) => self
                .certificate()?
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| invalid(format!("bad key in certificate: {e}"))),
            _ => Err(invalid(format!("key type {:?} has no SubjectPublicKeyInfo", self.keytype))),
        }
    }

    /// Refuses a key that cannot verify anything (unknown type, undecodable value).
    pub fn check_usable(&self) -> Result<(), V1MetadataError> {
        self.verifier().map(|_| ())
    }

    /// Whether `sig` (method and base64 bytes) is a valid signature by this key over `message`.
    pub fn verifies(&self, message: &[u8], sig: &Signature) -> bool {
        let (Ok(verifier), Ok(bytes)) = (self.verifier(), B64.decode(&sig.sig)) else { return false };
        verifier.verify(&sig.method.to_ascii_lowercase(), message, &bytes)
    }

    fn verifier(&self) -> Result<Verifier, V1MetadataError> {
        match self.kind() {
            Some(KeyType::Ed25519) => {
                let raw: [u8; 32] =
                    self.public_bytes()?.try_into().map_err(|_| invalid("ed25519 key is not 32 bytes"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(Verifier::Ed25519)
                    .map_err(|_| invalid("bad ed25519 key"))
            }
            Some(KeyType::Ecdsa | KeyType::EcdsaX509) => p256::PublicKey::from_public_key_der(&self.spki_der()?)
                .map(|k| Verifier::P256(k.into()))
                .map_err(|_| invalid("not a P-256 public key")),
            Some(KeyType::Rsa | KeyType::RsaX509) => {
                use rsa::pkcs8::DecodePublicKey as _;
                rsa::RsaPublicKey::from_public_key_der(&self.spki_der()?)
                    .map(Verifier::Rsa)
                    .map_err(|_| invalid("not an RSA public key"))
            }
            None => Err(invalid(format!("unsupported key type {:?}", self.keytype))),
        }
    }

    /// notary-server's rules for a root key: an X.509 certificate whose leaf is not a CA, names `gun` as its
    /// common name (or a prefix of it ending in `*`), is valid at `now` (`notBefore` up to a day ahead), is not
    /// signed with SHA-1, and holds an RSA key of at least 2048 bits if RSA.
    pub fn check_root_cert(&self, gun: &str, now: i64) -> Result<(), V1MetadataError> {
        let leaf_err = || invalid("unable to retrieve valid leaf certificates");
        if !self.kind().is_some_and(KeyType::is_x509) {
            return Err(leaf_err());
        }
        let cert = self.certificate().map_err(|_| leaf_err())?;
        let tbs = &cert.tbs_certificate;
        let cn = common_name(&tbs.subject).ok_or_else(leaf_err)?;
        let named = cn == gun || cn.strip_suffix('*').is_some_and(|p| gun.starts_with(p));
        let not_before = tbs.validity.not_before.to_unix_duration().as_secs() as i64;
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
        let sha1 = ["1.2.840.113549.1.1.5", "1.2.840.10045.4.1", "1.2.840.10040.4.3"]
            .contains(&cert.signature_algorithm.oid.to_string().as_str());
        let ca = tbs.get::<x509_cert::ext::pkix::BasicConstraints>().ok().flatten().is_some_and(|(_, bc)| bc.ca);
        if !named || ca || sha1 || not_before > now + 86_400 || not_after <= now {
            return Err(leaf_err());
        }
        if let Ok(Verifier::Rsa(k)) = self.verifier() {
            use rsa::traits::PublicKeyParts;
            if k.size() * 8 < 2048 {
                return Err(leaf_err());
            }
        }
        self.check_usable().map_err(|_| leaf_err())
    }
}

fn first_pem_block(text: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[start..].find(END)? + start + END.len();
    Some(&text[start..end])
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    const CN: x509_cert::der::oid::ObjectIdentifier = x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");
    use x509_cert::der::asn1::{PrintableStringRef, Utf8StringRef};
    let atv = name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|a| a.oid == CN)?;
    let value = atv.value.to_der().ok()?;
    Utf8StringRef::from_der(&value)
        .map(|s| s.as_str().to_owned())
        .or_else(|_| PrintableStringRef::from_der(&value).map(|s| s.as_str().to_owned()))
        .ok()
}

enum Verifier {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl Verifier {
    fn verify(&self, method: &str, message: &[u8], sig: &[u8]) -> bool {
        use ed25519_dalek::Verifier as _;
        match (self, method) {
            (Verifier::Ed25519(k), "eddsa") => <[u8; 64]>::try_from(sig)
                .is_ok_and(|b| k.verify(message, &ed25519_dalek::Signature::from_bytes(&b)).is_ok()),
            // Raw r‖s, each padded to 32 bytes; the digest is SHA-256.
            (Verifier::P256(k), "ecdsa") => {
                sig.len() == 64 && p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            (Verifier::Rsa(k), "rsapss") => rsa::pss::Signature::try_from(sig)
                .is_ok_and(|s| rsa::pss::VerifyingKey::<sha2::Sha256>::new(k.clone()).verify(message, &s).is_ok()),
            (Verifier::Rsa(k), "rsapkcs1v15") => rsa::pkcs1v15::Signature::try_from(sig)
                .is_ok_and(|s| rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone()).verify(message, &s).is_ok()),
            _ => false,
        }
    }
}

/// A private key that signs Notary metadata: the service's ed25519 keys, or a P-256 key (as the notary CLI's)
/// published bare or as a certificate.
#[derive(Clone)]
pub enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    Ecdsa(p256::ecdsa::SigningKey, Key),
}

impl Signer {
    pub fn ed25519(secret: &[u8; 32]) -> Signer {
        Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// A P-256 key published as `public` (its bare `ecdsa` form, or an `ecdsa-x509` certificate of it).
    pub fn ecdsa(key: p256::ecdsa::SigningKey, public: Option<Key>) -> Signer {
        let public = public.unwrap_or_else(|| ecdsa_key(key.verifying_key()));
        Signer::Ecdsa(key, public)
    }

    pub fn public(&self) -> Key {
        match self {
            Signer::Ed25519(k) => ed25519_key(&k.verifying_key()),
            Signer::Ecdsa(_, public) => public.clone(),
        }
    }

    pub fn key_id(&self) -> String {
        self.public().id()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        let (method, sig) = match self {
            Signer::Ed25519(k) => ("eddsa", k.sign(message).to_bytes().to_vec()),
            Signer::Ecdsa(k, _) => {
                let s: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, message);
                ("ecdsa", s.to_bytes().to_vec())
            }
        };
        Signature { keyid: self.key_id(), method: method.into(), sig: B64.encode(sig) }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four keys of the captured root (PROTOCOL.md §9): ids recomputed as notary does.
    #[test]
    fn key_ids_match_notary() {
        let k = Key::new("ed25519", "D0h9ypopZ6VZsqsv6g+4Kwg+ZiW7Ku57QFg+QsO9D48=".into());
        assert_eq!(k.id(), "444df696c39761cada40afd0e199e25178b4bc95be1a10fa1ff283f2f6ace19c");
        let k = Key::new("ecdsa", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAES0Ek4Z2T1c+yM17RnFvXjMEX+kP3pjzORuEcztHkvqaclL5S27onyFkZ55MSRYr+JWN42EwIw6vgsQg02S/6iw==".into());
        assert_eq!(k.id(), "bb83632ed5f838ced1f9abc8eb5ef96691497c4eeaa6238a4b4da72bb6f249c1");
        assert!(k.check_usable().is_ok());
    }

    /// RSA keys (bare DER and certificate forms are the same key to the verifier) with both methods notary uses.
    #[test]
    fn rsa_pss_and_pkcs1v15_verify() {
        use rsa::pkcs8::EncodePublicKey as _;
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _};
        let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let der = sk.to_public_key().to_public_key_der().unwrap();
        let key = Key::new("rsa", B64.encode(der.as_bytes()));
        let pss = rsa::pss::SigningKey::<sha2::Sha256>::new(sk.clone()).sign_with_rng(&mut rand_core::OsRng, b"msg");
        let v15 = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk).sign(b"msg");
        let sig =
            |method: &str, bytes: Vec<u8>| Signature { keyid: key.id(), method: method.into(), sig: B64.encode(bytes) };
        assert!(key.verifies(b"msg", &sig("rsapss", pss.to_vec())));
        assert!(key.verifies(b"msg", &sig("rsapkcs1v15", v15.to_vec())));
        assert!(!key.verifies(b"msh", &sig("rsapss", pss.to_vec())));
        assert!(!key.verifies(b"msg", &sig("rsapkcs1v15", pss.to_vec())));
        assert!(!key.verifies(b"msg", &sig("ecdsa", v15.to_vec())));
    }

    #[test]
    fn signatures_round_trip_and_fail_when_changed() {
        let ed = Signer::ed25519(&[3u8; 32]);
        let ec = Signer::ecdsa(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap(), None);
        for s in [ed, ec] {
            let sig = s.sign(b"message");
            assert!(s.public().verifies(b"message", &sig));
            assert!(!s.public().verifies(b"messagf", &sig));
            let mut wrong = sig.clone();
            wrong.method = if sig.method == "eddsa" { "ecdsa".into() } else { "eddsa".into() };
            assert!(!s.public().verifies(b"message", &wrong));
            // Methods compare case-insensitively, as notary lower-cases them.
            let mut upper = sig.clone();
            upper.method = sig.method.to_uppercase();
            assert!(s.public().verifies(b"message", &upper));
        }
        // DER-encoded ECDSA (TUF 1.0's form) is not Notary's.
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&sk, b"message");
        let sig = Signature { keyid: String::new(), method: "ecdsa".into(), sig: B64.encode(der.to_der().as_bytes()) };
        assert!(!ecdsa_key(sk.verifying_key()).verifies(b"message", &sig));
    }
}
