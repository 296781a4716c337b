//! X.509 for Notation: a certificate's signing key (the JWS `alg` it implies), the signatures along a chain, and the
//! signature specification's "Certificate Requirements" (basic constraints, key usage, extended key usage, key
//! length, no SHA-1). Only these extensions are honoured, as the specification says.

use rsa::signature::hazmat::PrehashVerifier;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage,
};
use x509_cert::Certificate;

/// A certificate's public key, of a kind and size the specification allows for signing.
pub enum SigningKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

/// Why a certificate chain does not meet the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("certificate {index}: unsupported public key ({reason})")]
    Key { index: usize, reason: &'static str },
    #[error("certificate {index}: signature algorithm {oid} is not allowed")]
    SignatureAlgorithm { index: usize, oid: String },
    #[error("certificate {index} is not issued and signed by the next certificate")]
    NotIssuedBy { index: usize },
    #[error("the chain does not end with a self-signed root certificate")]
    NoRoot,
    #[error("certificate {index} (a CA): {reason}")]
    Ca { index: usize, reason: &'static str },
    #[error("the signing certificate: {0}")]
    Leaf(&'static str),
    #[error("certificate {index}: a path length constraint is exceeded")]
    PathLength { index: usize },
    #[error("certificate {index}: a malformed or repeated extension")]
    Extension { index: usize },
}

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";
const ANY_EKU: &str = "2.5.29.37.0";
const OCSP: &str = "1.3.6.1.5.5.7.48.1";
/// Extended key usages a signing certificate must not have: server and client authentication, e-mail protection,
/// time stamping.
const FORBIDDEN_EKUS: [&str; 5] =
    [ANY_EKU, "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.8"];

impl SigningKey {
    pub fn from_certificate(cert: &Certificate) -> Result<SigningKey, &'static str> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let raw = spki.subject_public_key.as_bytes().ok_or("unaligned key bits")?;
        match spki.algorithm.oid.to_string().as_str() {
            RSA => {
                let der = spki.to_der().map_err(|_| "malformed RSA key")?;
                use rsa::pkcs8::DecodePublicKey as _;
                let key = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|_| "malformed RSA key")?;
                if key.size() * 8 < 2048 {
                    return Err("an RSA key under 2048 bits");
                }
                Ok(SigningKey::Rsa(key))
            }
            EC => {
                let params = spki.algorithm.parameters.as_ref().ok_or("an EC key without a named curve")?;
                let curve = params.decode_as::<ObjectIdentifier>().map_err(|_| "an EC key without a named curve")?;
                let bad = |_| "malformed EC key";
                match curve.to_string().as_str() {
                    "1.2.840.10045.3.1.7" => {
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(raw).map(Self::P256).map_err(bad)
                    }
                    "1.3.132.0.34" => p384::ecdsa::VerifyingKey::from_sec1_bytes(raw).map(Self::P384).map_err(bad),
                    "1.3.132.0.35" => p521::ecdsa::VerifyingKey::from_sec1_bytes(raw).map(Self::P521).map_err(bad),
                    _ => Err("an EC key on a curve other than P-256, P-384 or P-521"),
                }
            }
            _ => Err("neither RSA nor EC"),
        }
    }

    /// The one JWS `alg` this key signs with (the specification's table: RSASSA-PSS by key size, ECDSA by curve).
    pub fn jws_alg(&self) -> Option<&'static str> {
        match self {
            SigningKey::Rsa(k) => match k.size() * 8 {
                2048 => Some("PS256"),
                3072 => Some("PS384"),
                4096 => Some("PS512"),
                _ => None,
            },
            SigningKey::P256(_) => Some("ES256"),
            SigningKey::P384(_) => Some("ES384"),
            SigningKey::P521(_) => Some("ES512"),
        }
    }

    /// Verifies a JWS signature (`alg` already checked against [`jws_alg`](Self::jws_alg)): RSASSA-PSS with the
    /// salt as long as the hash, or ECDSA as the fixed-size `r || s` of RFC 7518.
    pub fn verify_jws(&self, message: &[u8], sig: &[u8]) -> bool {
        use rsa::pss::{Signature, VerifyingKey};
        match self {
            SigningKey::Rsa(k) => {
                let Ok(s) = Signature::try_from(sig) else { return false };
                match k.size() * 8 {
                    2048 => VerifyingKey::<Sha256>::new(k.clone()).verify(message, &s).is_ok(),
                    3072 => VerifyingKey::<Sha384>::new(k.clone()).verify(message, &s).is_ok(),
                    4096 => VerifyingKey::<Sha512>::new(k.clone()).verify(message, &s).is_ok(),
                    _ => false,
                }
            }
            SigningKey::P256(k) => p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(message, &s).is_ok()),
            SigningKey::P384(k) => p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(message, &s).is_ok()),
            SigningKey::P521(k) => p521::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }

    /// Verifies an X.509 signature made by this key: RSA PKCS #1 v1.5 or ECDSA (DER), with SHA-256, -384 or -512.
    /// `Err`: an algorithm the specification or this verifier does not allow.
    fn verify_x509(&self, algorithm: &ObjectIdentifier, tbs: &[u8], sig: &[u8]) -> Result<bool, ()> {
        use rsa::pkcs1v15::{Signature, VerifyingKey};
        let alg = algorithm.to_string();
        let prehash = match alg.as_str() {
            "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Sha256::digest(tbs).to_vec(),
            "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Sha384::digest(tbs).to_vec(),
            "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Sha512::digest(tbs).to_vec(),
            _ => return Err(()),
        };
        let rsa_alg = alg.starts_with("1.2.840.113549.");
        Ok(match (self, rsa_alg) {
            (SigningKey::Rsa(k), true) => {
                let Ok(s) = Signature::try_from(sig) else { return Ok(false) };
                match alg.as_str() {
                    "1.2.840.113549.1.1.11" => VerifyingKey::<Sha256>::new(k.clone()).verify(tbs, &s).is_ok(),
                    "1.2.840.113549.1.1.12" => VerifyingKey::<Sha384>::new(k.clone()).verify(tbs, &s).is_ok(),
                    _ => VerifyingKey::<Sha512>::new(k.clone()).verify(tbs, &s).is_ok(),
                }
            }
            (SigningKey::P256(k), false) => {
                p256::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }
            (SigningKey::P384(k), false) => {
                p384::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }
            (SigningKey::P521(k), false) => {
                p521::ecdsa::Signature::from_der(sig).is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok())
            }
            _ => false,
        })
    }
}

/// The chain checks of the specification, leaf first: each certificate issued and signed by the next, the last a
/// self-signed root; CA requirements on every certificate but the leaf, signing-certificate requirements on the
/// leaf (on the root itself when it is the whole chain).
pub fn validate_chain(chain: &[Certificate]) -> Result<(), ChainError> {
    let last = chain.len().checked_sub(1).ok_or(ChainError::NoRoot)?;
    for (index, cert) in chain.iter().enumerate() {
        let issuer = chain.get(index + 1).unwrap_or(cert);
        let key = SigningKey::from_certificate(issuer)
            .map_err(|reason| ChainError::Key { index: (index + 1).min(last), reason })?;
        let tbs = &cert.tbs_certificate;
        let oid = || ChainError::SignatureAlgorithm { index, oid: cert.signature_algorithm.oid.to_string() };
        if tbs.signature != cert.signature_algorithm {
            return Err(oid());
        }
        let tbs_der = tbs.to_der().map_err(|_| ChainError::NotIssuedBy { index })?;
        let sig = cert.signature.as_bytes().ok_or(ChainError::NotIssuedBy { index })?;
        let signed = key.verify_x509(&cert.signature_algorithm.oid, &tbs_der, sig).map_err(|_| oid())?;
        if tbs.issuer != issuer.tbs_certificate.subject || !signed {
            return Err(if index == last { ChainError::NoRoot } else { ChainError::NotIssuedBy { index } });
        }
        if index == 0 {
            leaf_requirements(cert)?;
        } else {
            ca_requirements(cert, index)?;
        }
    }
    Ok(())
}

fn leaf_requirements(cert: &Certificate) -> Result<(), ChainError> {
    let tbs = &cert.tbs_certificate;
    let ext = |_| ChainError::Extension { index: 0 };
    SigningKey::from_certificate(cert).map_err(|reason| ChainError::Key { index: 0, reason })?;
    if tbs.get::<BasicConstraints>().map_err(ext)?.is_some_and(|(_, bc)| bc.ca) {
        return Err(ChainError::Leaf("basic constraints say it is a CA"));
    }
    let Some((critical, ku)) = tbs.get::<KeyUsage>().map_err(ext)? else {
        return Err(ChainError::Leaf("no key usage extension"));
    };
    if !critical || !ku.digital_signature() {
        return Err(ChainError::Leaf("key usage is not critical with digitalSignature"));
    }
    let other = ku.key_encipherment()
        || ku.data_encipherment()
        || ku.key_agreement()
        || ku.key_cert_sign()
        || ku.crl_sign()
        || ku.encipher_only()
        || ku.decipher_only();
    if other {
        return Err(ChainError::Leaf("key usage allows more than signing"));
    }
    if let Some((_, eku)) = tbs.get::<ExtendedKeyUsage>().map_err(ext)? {
        if eku.0.iter().any(|o| FORBIDDEN_EKUS.contains(&o.to_string().as_str())) {
            return Err(ChainError::Leaf("extended key usage names a purpose other than code signing"));
        }
    }
    Ok(())
}

fn ca_requirements(cert: &Certificate, index: usize) -> Result<(), ChainError> {
    let tbs = &cert.tbs_certificate;
    let ext = |_| ChainError::Extension { index };
    let ca = |reason| ChainError::Ca { index, reason };
    let Some((critical, bc)) = tbs.get::<BasicConstraints>().map_err(ext)? else {
        return Err(ca("no basic constraints extension"));
    };
    if !critical || !bc.ca {
        return Err(ca("basic constraints are not critical with cA true"));
    }
    // The CA certificates below this one (the leaf is not counted).
    if bc.path_len_constraint.is_some_and(|n| usize::from(n) < index - 1) {
        return Err(ChainError::PathLength { index });
    }
    match tbs.get::<KeyUsage>().map_err(ext)? {
        Some((true, ku)) if ku.key_cert_sign() => Ok(()),
        _ => Err(ca("key usage is not critical with keyCertSign")),
    }
}

/// Whether `cert` is valid at `t` (Unix seconds), both bounds inclusive.
pub fn valid_at(cert: &Certificate, t: i64) -> bool {
    let v = &cert.tbs_certificate.validity;
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    secs(v.not_before.to_unix_duration()) <= t && t <= secs(v.not_after.to_unix_duration())
}

/// Whether `cert` names a way to check its revocation (CRL distribution points, an OCSP responder). Such a check
/// needs the network, which this pure verifier does not have: its status is "cannot be determined".
pub fn has_revocation_info(cert: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    let crl = !matches!(tbs.get::<CrlDistributionPoints>(), Ok(None));
    let ocsp = match tbs.get::<AuthorityInfoAccessSyntax>() {
        Ok(None) => false,
        Ok(Some((_, aia))) => aia.0.iter().any(|a| a.access_method.to_string() == OCSP),
        Err(_) => true,
    };
    crl || ocsp
}

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Result<Certificate, x509_cert::der::Error> {
    Certificate::from_der(der)
}

#[cfg(test)]
mod tests;
