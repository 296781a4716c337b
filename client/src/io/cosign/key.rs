//! The private keys a keyed cosign signature is made with: ECDSA P-256 or ed25519, read from PEM files in PKCS#8
//! form (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a passphrase, as Docker Content Trust and `openssl pkcs8
//! -topk8` write them) or P-256 in SEC1 form (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes it).
//!
//! Docker's key files carry PEM headers (`role: targets`, `gun: HOST/REPOSITORY`) that strict PEM readers refuse;
//! [`Pem::parse`] keeps them, since they say which key is which.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM file (no BEGIN line)")]
    NotPem,
    #[error("the PEM block {0:?} has no END line")]
    Unterminated(String),
    #[error("the PEM body is not base64")]
    Base64(#[source] base64::DecodeError),
    #[error("a {0:?} block: expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY")]
    Label(String),
    #[error("the key is encrypted and no passphrase was given")]
    NeedsPassphrase,
    #[error("the key would not decrypt: wrong passphrase?")]
    Decrypt(#[source] pkcs8::Error),
    #[error("not a PKCS#8 private key")]
    Pkcs8(#[source] pkcs8::Error),
    #[error("not an EC private key")]
    Sec1(#[source] p256::elliptic_curve::Error),
    #[error("key algorithm {0}: ECDSA P-256 or ed25519 is supported")]
    Algorithm(String),
    #[error("encoding the public key")]
    Public(#[source] pkcs8::spki::Error),
}

/// One PEM block: its label, its headers (`Name: value` lines before the body) and its decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    pub label: String,
    pub headers: BTreeMap<String, String>,
    pub der: Vec<u8>,
}

impl Pem {
    /// The first PEM block of `text`, headers kept.
    pub fn parse(text: &str) -> Result<Pem, KeyError> {
        let mut lines = text.lines().map(str::trim);
        let label = lines
            .by_ref()
            .find_map(|l| l.strip_prefix("-----BEGIN ").and_then(|r| r.strip_suffix("-----")))
            .ok_or(KeyError::NotPem)?
            .to_string();
        let end = format!("-----END {label}-----");
        let (mut headers, mut body, mut ended) = (BTreeMap::new(), String::new(), false);
        for line in lines {
            if line == end {
                ended = true;
                break;
            }
            match line.split_once(':') {
                Some((k, v)) if body.is_empty() => {
                    headers.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => body.push_str(line),
            }
        }
        if !ended {
            return Err(KeyError::Unterminated(label));
        }
        let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(KeyError::Base64)?;
        Ok(Pem { label, headers, der })
    }

    /// Whether the key needs a passphrase to open.
    pub fn is_encrypted(&self) -> bool {
        self.label == "ENCRYPTED PRIVATE KEY"
    }
}

/// A signing key for keyed cosign signatures.
#[derive(Clone)]
pub enum SigstoreKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for SigstoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigstoreKey::P256(_) => "SigstoreKey::P256(..)",
            SigstoreKey::Ed25519(_) => "SigstoreKey::Ed25519(..)",
        })
    }
}

/// The OIDs of the two key algorithms in a PKCS#8 `PrivateKeyInfo`.
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";

impl SigstoreKey {
    /// The key in `pem`, decrypted with `passphrase` when it is encrypted.
    pub fn from_pem(pem: &Pem, passphrase: Option<&[u8]>) -> Result<SigstoreKey, KeyError> {
        match pem.label.as_str() {
            "PRIVATE KEY" => SigstoreKey::from_pkcs8_der(&pem.der),
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(KeyError::NeedsPassphrase)?;
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(pem.der.as_slice()).map_err(KeyError::Pkcs8)?;
                let doc = info.decrypt(pass).map_err(KeyError::Decrypt)?;
                // PKCS#8 inside, as the standard says; an EC key in SEC1 form is accepted too.
                SigstoreKey::from_pkcs8_der(doc.as_bytes()).or_else(|e| {
                    p256::SecretKey::from_sec1_der(doc.as_bytes()).map(|s| SigstoreKey::P256(s.into())).map_err(|_| e)
                })
            }
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(&pem.der).map_err(KeyError::Sec1)?;
                Ok(SigstoreKey::P256(secret.into()))
            }
            other => Err(KeyError::Label(other.to_string())),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<SigstoreKey, KeyError> {
        match pkcs8::PrivateKeyInfo::try_from(der) {
            Ok(_) => SigstoreKey::from_strict_pkcs8_der(der),
            Err(e) => match notary_v1_form(der) {
                Some(v1) => SigstoreKey::from_strict_pkcs8_der(&v1),
                None => Err(KeyError::Pkcs8(e)),
            },
        }
    }

    fn from_strict_pkcs8_der(der: &[u8]) -> Result<SigstoreKey, KeyError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(KeyError::Pkcs8)?;
        match info.algorithm.oid.to_string().as_str() {
            EC_PUBLIC_KEY => {
                Ok(SigstoreKey::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(KeyError::Pkcs8)?))
            }
            ED25519 => {
                Ok(SigstoreKey::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(KeyError::Pkcs8)?))
            }
            other => Err(KeyError::Algorithm(other.to_string())),
        }
    }

    /// A signature over `payload` as cosign makes and checks it: ECDSA P-256 over the payload's SHA-256, DER
    /// encoded; ed25519 over the payload itself.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigstoreKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(payload);
                sig.to_der().as_bytes().to_vec()
            }
            SigstoreKey::Ed25519(k) => k.sign(payload).to_bytes().to_vec(),
        }
    }

    /// The public key as the PEM (`PUBLIC KEY`, SubjectPublicKeyInfo) that `cosign verify --key` takes.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        match self {
            SigstoreKey::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            SigstoreKey::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        }
        .map_err(KeyError::Public)
    }
}

/// notary (and so docker's trust client) writes its keys' `PrivateKeyInfo` with version 1, the RFC 5958 version
/// that may carry the public key, but without the public key; strict readers refuse that. The same bytes with
/// version 0 (RFC 5208) are what it means: that copy, when `der` starts as such a key does (a SEQUENCE, then the
/// INTEGER 1), and `None` otherwise. The copy is parsed strictly like any other key.
fn notary_v1_form(der: &[u8]) -> Option<Vec<u8>> {
    let header = match *der.get(1)? {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    if der.first() != Some(&0x30) || der.get(header..header + 3)? != [0x02, 0x01, 0x01] {
        return None;
    }
    let mut v0 = der.to_vec();
    v0[header + 2] = 0;
    Some(v0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey as _;

    fn p256_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn docker_style_headers_are_kept_and_the_body_decodes() {
        let der = p256_key().to_pkcs8_der().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let text = format!(
            "-----BEGIN PRIVATE KEY-----\nrole: targets\ngun: example.com/a/b\n\n{body}\n-----END PRIVATE KEY-----\n"
        );
        let pem = Pem::parse(&text).unwrap();
        assert_eq!(pem.headers.get("role").map(String::as_str), Some("targets"));
        assert_eq!(pem.headers.get("gun").map(String::as_str), Some("example.com/a/b"));
        let key = SigstoreKey::from_pem(&pem, None).unwrap();
        assert!(matches!(key, SigstoreKey::P256(k) if k == p256_key()));
    }

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        let doc = p256_key().to_pkcs8_encrypted_pem(rand_core::OsRng, b"secret", LineEnding::LF).unwrap();
        let pem = Pem::parse(&doc).unwrap();
        assert!(pem.is_encrypted());
        assert!(matches!(SigstoreKey::from_pem(&pem, None), Err(KeyError::NeedsPassphrase)));
        // A wrong passphrase fails the CBC padding check, or (one salt in 256) yields bytes that are no key.
        let wrong = SigstoreKey::from_pem(&pem, Some(b"wrong"));
        assert!(matches!(wrong, Err(KeyError::Decrypt(_) | KeyError::Pkcs8(_))), "{wrong:?}");
        assert!(matches!(SigstoreKey::from_pem(&pem, Some(b"secret")), Ok(SigstoreKey::P256(_))));
    }

    /// A key written by the notary CLI (0.7, what docker's trust client embeds): `notary key generate ecdsa --role
    /// targets`, passphrase `fixture-pass`; its public half as `openssl pkey -pubout` printed it.
    #[test]
    fn a_notary_written_key_opens_and_matches_its_public_half() {
        let pem = Pem::parse(include_str!("testdata/notary-targets.key")).unwrap();
        assert_eq!(pem.headers.get("role").map(String::as_str), Some("targets"));
        assert!(matches!(SigstoreKey::from_pem(&pem, Some(b"wrong")), Err(KeyError::Decrypt(_))));
        let key = SigstoreKey::from_pem(&pem, Some(b"fixture-pass")).unwrap();
        assert_eq!(key.public_pem().unwrap(), include_str!("testdata/notary-targets.pub"));
    }

    #[test]
    fn signatures_verify_under_the_exported_public_key() {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        use p256::ecdsa::signature::Verifier as _;
        let ec = SigstoreKey::P256(p256_key());
        let public = p256::ecdsa::VerifyingKey::from_public_key_pem(&ec.public_pem().unwrap()).unwrap();
        let sig = p256::ecdsa::DerSignature::try_from(ec.sign(b"payload").as_slice()).unwrap();
        assert!(public.verify(b"payload", &sig).is_ok());
        assert!(public.verify(b"other", &sig).is_err());
        let ed = SigstoreKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]));
        let public = ed25519_dalek::VerifyingKey::from_public_key_pem(&ed.public_pem().unwrap()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&ed.sign(b"payload")).unwrap();
        assert!(public.verify_strict(b"payload", &sig).is_ok());
        assert!(public.verify_strict(b"other", &sig).is_err());
    }

    #[test]
    fn only_a_version_1_key_is_read_as_version_0() {
        let rows: [(&[u8], Option<&[u8]>); 5] = [
            (&[0x30, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00], Some(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00])),
            (
                &[0x30, 0x81, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00],
                Some(&[0x30, 0x81, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]),
            ),
            (&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00], None),
            (&[0x31, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00], None),
            (&[0x30, 0x05, 0x02], None),
        ];
        for (der, expected) in rows {
            assert_eq!(notary_v1_form(der).as_deref(), expected, "{der:02x?}");
        }
    }

    /// A refusal row: the file's text, and the error it must give.
    type Refusal = (&'static str, fn(&KeyError) -> bool);

    #[test]
    fn refusals() {
        let rows: [Refusal; 4] = [
            ("no pem here", |e| matches!(e, KeyError::NotPem)),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n", |e| matches!(e, KeyError::Unterminated(_))),
            ("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----", |e| matches!(e, KeyError::Base64(_))),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", |e| {
                matches!(e, KeyError::Label(_))
            }),
        ];
        for (text, expected) in rows {
            let got = Pem::parse(text).and_then(|p| SigstoreKey::from_pem(&p, None));
            assert!(got.as_ref().is_err_and(expected), "{text:?}: {got:?}");
        }
    }
}
