//! Fulcio certificates: the chain to a CA of the trusted root (every X.509 signature checked), the validity
//! period, the code-signing usage, and the identity Fulcio certified (the OIDC issuer from its extension, the
//! subject from the SAN).

use x509_cert::der::asn1::{ObjectIdentifier as Oid, Utf8StringRef};
use x509_cert::der::{Decode, Encode, Reader, SliceReader};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::error::SigstoreError;
use super::keys::PublicKey;
use super::trusted_root::TrustedRoot;

/// Fulcio's issuer extension (a DER UTF8String) and its legacy form (the raw bytes).
const ISSUER_V2: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.8");
const ISSUER_V1: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.1");
const CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");

/// A leaf certificate, parsed, with what verification needs from it.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub key: PublicKey,
    pub not_before: i64,
    pub not_after: i64,
}

/// The identity Fulcio certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
}

fn malformed(e: impl std::fmt::Display) -> SigstoreError {
    SigstoreError::Certificate(e.to_string())
}

impl Leaf {
    pub fn parse(der: &[u8]) -> Result<Leaf, SigstoreError> {
        let cert = Certificate::from_der(der).map_err(malformed)?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs.subject_public_key_info.to_der().map_err(malformed)?;
        let key = PublicKey::from_spki_der(&spki)?;
        let not_before = tbs.validity.not_before.to_unix_duration().as_secs() as i64;
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
        Ok(Leaf { der: der.to_vec(), cert, key, not_before, not_after })
    }

    /// Checks that `time` lies inside the validity period.
    pub fn valid_at(&self, time: i64) -> Result<(), SigstoreError> {
        if time < self.not_before || time > self.not_after {
            return Err(SigstoreError::OutsideValidity {
                time,
                not_before: self.not_before,
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// Checks that the certificate chains to one of the trusted root's CAs valid at `time`: the leaf is signed by the
    /// CA's first certificate, each by the next, and the last is the CA's own (trusted as configured). The leaf
    /// must be for code signing.
    pub fn verify_chain(&self, root: &TrustedRoot, time: i64) -> Result<(), SigstoreError> {
        let eku = self.cert.tbs_certificate.get::<ExtendedKeyUsage>().map_err(malformed)?;
        if !eku.is_some_and(|(_, eku)| eku.0.contains(&CODE_SIGNING)) {
            return Err(SigstoreError::NotCodeSigning);
        }
        for ca in root.certificate_authorities.iter().filter(|ca| ca.valid.contains(time)) {
            if chains(&self.der, &self.cert, &ca.chain).is_ok() {
                return Ok(());
            }
        }
        Err(SigstoreError::UntrustedCertificate)
    }

    /// The issuer and subject Fulcio certified.
    pub fn identity(&self) -> Result<Identity, SigstoreError> {
        let exts = self.cert.tbs_certificate.extensions.as_deref().unwrap_or_default();
        let ext = |oid: Oid| exts.iter().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes());
        let issuer = match (ext(ISSUER_V2), ext(ISSUER_V1)) {
            (Some(v), _) => Utf8StringRef::from_der(v).map_err(malformed)?.as_str().to_owned(),
            (None, Some(v)) => String::from_utf8(v.to_vec()).map_err(malformed)?,
            (None, None) => return Err(SigstoreError::NoIssuer),
        };
        let san = self.cert.tbs_certificate.get::<SubjectAltName>().map_err(malformed)?;
        let subject = san
            .and_then(|(_, san)| {
                san.0.into_iter().find_map(|n| match n {
                    GeneralName::Rfc822Name(s) => Some(s.to_string()),
                    GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                    _ => None,
                })
            })
            .ok_or(SigstoreError::NoSubject)?;
        Ok(Identity { issuer, subject })
    }
}

/// The DER of a certificate's `tbsCertificate`, as signed (not re-encoded).
fn tbs_bytes(der: &[u8]) -> Result<&[u8], SigstoreError> {
    let mut outer = SliceReader::new(der).map_err(malformed)?;
    outer
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            // The algorithm and the signature, which `Certificate::from_der` reads.
            r.read_slice(r.remaining_len())?;
            Ok(tbs)
        })
        .map_err(malformed)
}

/// Checks `cert` (DER `der`) against `chain`, its issuer first, each certificate with its DER.
fn chains(der: &[u8], cert: &Certificate, chain: &[(Vec<u8>, Certificate)]) -> Result<(), SigstoreError> {
    let (mut child_der, mut child) = (der, cert);
    for (issuer_der, issuer) in chain {
        if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
            return Err(SigstoreError::UntrustedCertificate);
        }
        let spki = issuer.tbs_certificate.subject_public_key_info.to_der().map_err(malformed)?;
        let key = PublicKey::from_spki_der(&spki)?;
        let sig = child.signature.as_bytes().ok_or_else(|| malformed("unaligned signature"))?;
        key.verify_x509(child.signature_algorithm.oid, tbs_bytes(child_der)?, sig)?;
        (child_der, child) = (issuer_der.as_slice(), issuer);
    }
    Ok(())
}
