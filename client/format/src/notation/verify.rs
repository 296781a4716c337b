//! The signature verification of the trust policy specification ("Signature Verification", steps 3 to 7), for one
//! envelope under one trust policy statement: integrity, authenticity, authentic timestamp, expiry, revocation,
//! each enforced, logged or skipped as the statement's level says.
//!
//! Offline, as the format crate is: there is no RFC 3161 timestamp support, so (as the specification says for a
//! signature without one) the chain must be valid at verification time; and revocation cannot be fetched, so a
//! certificate naming a CRL or OCSP service has an undetermined status (a failure where revocation is enforced),
//! while one naming neither is not revoked.

use std::fmt;

use super::cert::{self, SigningKey};
use super::dn::DistinguishedName;
use super::envelope::{self, Envelope, EnvelopeError, SigningScheme};
use super::level::{Action, Validation};
use super::store::TrustStore;
use super::trust_policy::{Identities, StoreType, TrustPolicy};
use super::{COSE_MEDIA_TYPE, JWS_MEDIA_TYPE, MAX_ENVELOPE_BYTES};
use crate::digest::Digest;

/// A signature that verified: who signed, and the failures the level only logs.
#[derive(Debug)]
pub struct Verified {
    /// The signing certificate's subject.
    pub signer: String,
    pub logged: Vec<Failure>,
}

/// A failed validation.
#[derive(Debug, thiserror::Error)]
#[error("{validation}: {error}")]
pub struct Failure {
    pub validation: Validation,
    pub error: VerifyError,
}

/// What failed, by validation.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Envelope(#[source] EnvelopeError),
    #[error("the signing certificate's key is {0}")]
    Key(&'static str),
    #[error("alg {alg} does not match the signing key, which signs with {expected}")]
    Algorithm { alg: String, expected: &'static str },
    #[error("the signature does not verify with the signing certificate's key")]
    Signature,
    #[error("the signature is for {signed}, not {expected}")]
    Digest { signed: String, expected: String },
    #[error("the signature is for {signed} bytes, not {expected}")]
    Size { signed: u64, expected: u64 },
    #[error("{0}")]
    Chain(#[source] cert::ChainError),
    #[error("the chain leads to no certificate of the trust stores {0}")]
    Untrusted(String),
    #[error("the signer {0} is not a trusted identity")]
    Identity(String),
    #[error("certificate {subject} is not valid at {at}")]
    NotValid { subject: String, at: Time },
    #[error("the signature expired at {0}")]
    Expired(Time),
    #[error("certificate {0} names a revocation service, which cannot be consulted offline")]
    Revocation(String),
}

/// Unix seconds, shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub i64);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp(self.0, 0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            None => write!(f, "{} (Unix seconds)", self.0),
        }
    }
}

/// Verifies `envelope` (of `media_type`) for the artifact `digest` (of `size` bytes, when known) under `policy`,
/// whose trust stores are in `store`, at `now` (Unix seconds). The caller handles the `skip` level.
pub fn verify(
    policy: &TrustPolicy,
    store: &TrustStore,
    media_type: &str,
    envelope: &[u8],
    digest: &Digest,
    size: Option<u64>,
    now: i64,
) -> Result<Verified, Failure> {
    let mut logged = vec![];
    let mut check = |validation: Validation, result: Result<(), VerifyError>| -> Result<(), Failure> {
        let Err(error) = result else { return Ok(()) };
        match policy.action(validation) {
            Action::Enforce => Err(Failure { validation, error }),
            Action::Log => {
                logged.push(Failure { validation, error });
                Ok(())
            }
            Action::Skip => Ok(()),
        }
    };
    let env = parse(media_type, envelope)
        .map_err(|e| Failure { validation: Validation::Integrity, error: VerifyError::Envelope(e) })?;
    // Not empty: both envelope parsers refuse an envelope without a certificate.
    let (_, leaf) = &env.chain[0];
    let signer = DistinguishedName::from_name(&leaf.tbs_certificate.subject)
        .map_or_else(|e| format!("(an unreadable subject: {e})"), |d| d.to_string());
    check(Validation::Integrity, integrity(&env, digest, size))?;
    check(Validation::Authenticity, authenticity(policy, store, &env, &signer))?;
    let at = match env.scheme {
        SigningScheme::X509 => now,
        // Present: the envelope parser requires it for this scheme.
        SigningScheme::X509SigningAuthority => env.authentic_signing_time.unwrap_or(i64::MIN),
    };
    check(Validation::AuthenticTimestamp, validity(&env, at))?;
    let expired = env.expiry.filter(|e| now >= *e).map(|e| VerifyError::Expired(Time(e)));
    check(Validation::Expiry, expired.map_or(Ok(()), Err))?;
    if policy.action(Validation::Revocation) != Action::Skip {
        let undetermined = env.chain.iter().find(|(_, c)| cert::has_revocation_info(c)).map(|(_, c)| subject(c));
        check(Validation::Revocation, undetermined.map_or(Ok(()), |s| Err(VerifyError::Revocation(s))))?;
    }
    Ok(Verified { signer, logged })
}

fn parse(media_type: &str, envelope: &[u8]) -> Result<Envelope, EnvelopeError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::TooLarge { size: envelope.len(), limit: MAX_ENVELOPE_BYTES });
    }
    match media_type {
        JWS_MEDIA_TYPE => super::jws::parse(envelope),
        COSE_MEDIA_TYPE => super::cose::parse(envelope),
        other => Err(EnvelopeError::MediaType(other.to_string())),
    }
}

/// The signature verifies with the leaf's key under the one `alg` that key implies, and signs this artifact.
fn integrity(env: &Envelope, digest: &Digest, size: Option<u64>) -> Result<(), VerifyError> {
    let key = SigningKey::from_certificate(&env.chain[0].1).map_err(VerifyError::Key)?;
    let expected = key.jws_alg().ok_or(VerifyError::Key("an RSA key of a size without a signature algorithm"))?;
    if env.alg != expected {
        return Err(VerifyError::Algorithm { alg: env.alg.clone(), expected });
    }
    if !key.verify_jws(&env.signing_input, &env.signature) {
        return Err(VerifyError::Signature);
    }
    let target = envelope::target_artifact(&env.payload).map_err(VerifyError::Envelope)?;
    if target.digest != digest.to_string() {
        return Err(VerifyError::Digest { signed: target.digest, expected: digest.to_string() });
    }
    match size {
        Some(expected) if target.size != expected => Err(VerifyError::Size { signed: target.size, expected }),
        _ => Ok(()),
    }
}

/// The chain meets the certificate requirements, one of its certificates is in the statement's trust stores (of
/// the kind the signing scheme uses), and the signer is a trusted identity.
fn authenticity(policy: &TrustPolicy, store: &TrustStore, env: &Envelope, signer: &str) -> Result<(), VerifyError> {
    let certs: Vec<_> = env.chain.iter().map(|(_, c)| c.clone()).collect();
    cert::validate_chain(&certs).map_err(VerifyError::Chain)?;
    let kind = match env.scheme {
        SigningScheme::X509 => StoreType::Ca,
        SigningScheme::X509SigningAuthority => StoreType::SigningAuthority,
    };
    let anchored = store.certificates(&policy.trust_stores, kind).any(|t| env.chain.iter().any(|(der, _)| der == t));
    if !anchored {
        let names: Vec<&str> =
            policy.trust_stores.iter().filter(|(k, _)| *k == kind).map(|(_, n)| n.as_str()).collect();
        return Err(VerifyError::Untrusted(names.join(", ")));
    }
    match &policy.identities {
        Identities::Any => Ok(()),
        Identities::Subjects(trusted) => {
            let leaf = DistinguishedName::from_name(&env.chain[0].1.tbs_certificate.subject);
            match leaf {
                Ok(leaf) if trusted.iter().any(|t| t.is_subset_of(&leaf)) => Ok(()),
                _ => Err(VerifyError::Identity(signer.to_string())),
            }
        }
    }
}

/// Every certificate of the chain is valid at `at`.
fn validity(env: &Envelope, at: i64) -> Result<(), VerifyError> {
    match env.chain.iter().find(|(_, c)| !cert::valid_at(c, at)) {
        Some((_, c)) => Err(VerifyError::NotValid { subject: subject(c), at: Time(at) }),
        None => Ok(()),
    }
}

fn subject(c: &x509_cert::Certificate) -> String {
    DistinguishedName::from_name(&c.tbs_certificate.subject)
        .map_or_else(|_| "(an unreadable subject)".to_string(), |d| d.to_string())
}
