//! The public keys sigstore signatures are made with (ECDSA P-256 and P-384, ed25519), read from SubjectPublicKeyInfo
//! (PEM or DER), and the three ways they verify: a message (cosign's payloads, DSSE), a digest computed by someone
//! else (a message signature's `messageDigest`), and an X.509 signature under its algorithm identifier.

use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::Digest as _;
use x509_cert::der::{asn1::ObjectIdentifier as Oid, Decode};
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::error::{Signed, SigstoreError};

const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");

/// The label and contents of the first PEM block of `text`. Lenient about line width: sigstore's tools write
/// certificates with the base64 on one line, which RFC 7468's strict form (and `pem-rfc7468`) refuses.
pub(crate) fn pem_decode(text: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label.to_string(), der))
}

/// A verifying key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The hash an ECDSA signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(msg).to_vec(),
        }
    }
}

impl PublicKey {
    /// A `-----BEGIN PUBLIC KEY-----` PEM (SubjectPublicKeyInfo), as cosign and `cosign_keyed.py` write it.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, SigstoreError> {
        let (label, der) = pem_decode(pem).ok_or_else(|| SigstoreError::Key("not a PEM block".into()))?;
        if label != "PUBLIC KEY" {
            return Err(SigstoreError::Key(format!("a PEM {label:?}, not a PUBLIC KEY")));
        }
        PublicKey::from_spki_der(&der)
    }

    /// A DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, SigstoreError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| SigstoreError::Key(e.to_string()))?;
        let bits = spki.subject_public_key.as_bytes().ok_or_else(|| SigstoreError::Key("unaligned key".into()))?;
        let bad = |e: &dyn std::fmt::Display| SigstoreError::Key(e.to_string());
        let alg = spki.algorithm.oid;
        if alg == ED25519 {
            let bytes: [u8; 32] =
                bits.try_into().map_err(|_| SigstoreError::Key("ed25519 key of bad length".into()))?;
            return ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(PublicKey::Ed25519).map_err(|e| bad(&e));
        }
        if alg != EC_PUBLIC_KEY {
            return Err(SigstoreError::KeyAlgorithm(alg.to_string()));
        }
        let curve: Oid = spki
            .algorithm
            .parameters
            .ok_or_else(|| SigstoreError::Key("EC key without a curve".into()))?
            .decode_as()
            .map_err(|e| bad(&e))?;
        match curve {
            c if c == SECP256R1 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits).map(PublicKey::P256),
            c if c == SECP384R1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits).map(PublicKey::P384),
            c => return Err(SigstoreError::KeyAlgorithm(format!("EC curve {c}"))),
        }
        .map_err(|e| bad(&e))
    }

    /// The hash ECDSA signatures of this key are made over when nothing else says (sigstore's defaults).
    fn default_hash(&self) -> Hash {
        match self {
            PublicKey::P384(_) => Hash::Sha384,
            _ => Hash::Sha256,
        }
    }

    /// A signature over `msg`: ECDSA (ASN.1 DER) over its key's default hash, or ed25519 over the message itself.
    pub fn verify(&self, msg: &[u8], sig: &[u8], what: Signed) -> Result<(), SigstoreError> {
        match self {
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| SigstoreError::BadSignature(what))?;
                k.verify_strict(msg, &sig).map_err(|_| SigstoreError::BadSignature(what))
            }
            _ => self.verify_prehash(&self.default_hash().digest(msg), sig, what),
        }
    }

    /// An ECDSA signature (ASN.1 DER) over a digest computed elsewhere. ed25519 signs messages, never digests.
    pub fn verify_prehash(&self, digest: &[u8], sig: &[u8], what: Signed) -> Result<(), SigstoreError> {
        let bad = |_| SigstoreError::BadSignature(what);
        match self {
            PublicKey::P256(k) => k.verify_prehash(digest, &p256::ecdsa::Signature::from_der(sig).map_err(bad)?),
            PublicKey::P384(k) => k.verify_prehash(digest, &p384::ecdsa::Signature::from_der(sig).map_err(bad)?),
            PublicKey::Ed25519(_) => return Err(SigstoreError::KeyAlgorithm("ed25519 over a digest".into())),
        }
        .map_err(bad)
    }

    /// An X.509 signature: `alg` names the hash (ECDSA with SHA-256 or SHA-384) or ed25519.
    pub fn verify_x509(&self, alg: Oid, tbs: &[u8], sig: &[u8]) -> Result<(), SigstoreError> {
        let what = Signed::Certificate;
        match (alg, self) {
            (a, PublicKey::Ed25519(_)) if a == ED25519 => self.verify(tbs, sig, what),
            (a, PublicKey::P256(_) | PublicKey::P384(_)) if a == ECDSA_SHA256 => {
                self.verify_prehash(&Hash::Sha256.digest(tbs), sig, what)
            }
            (a, PublicKey::P256(_) | PublicKey::P384(_)) if a == ECDSA_SHA384 => {
                self.verify_prehash(&Hash::Sha384.digest(tbs), sig, what)
            }
            (a, _) => Err(SigstoreError::KeyAlgorithm(format!("certificate signature algorithm {a}"))),
        }
    }
}
