//! Verifying a bundle: keyless (a Fulcio certificate of the wanted identity, chained to the trusted root, its
//! signature proven in Rekor while the certificate was valid) or with a known public key; either way the signed
//! content must name the subject's digest.

use serde::Deserialize;

use super::bundle::{Bundle, Content, Material};
use super::cert::{Identity, Leaf};
use super::error::{Signed, SigstoreError};
use super::keys::PublicKey;
use super::rekor::{self, Recorded};
use super::trusted_root::TrustedRoot;
use crate::policy::Pattern;
use crate::Digest;

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Whom a keyless signature must come from: an issuer and a subject, exact or a pattern.
#[derive(Debug, Clone)]
pub struct WantedIdentity {
    pub issuer: String,
    pub subject: SubjectMatch,
}

#[derive(Debug, Clone)]
pub enum SubjectMatch {
    Exact(String),
    Pattern(Pattern),
}

impl WantedIdentity {
    fn check(&self, got: &Identity) -> Result<(), SigstoreError> {
        if got.issuer != self.issuer {
            return Err(SigstoreError::OtherIssuer { want: self.issuer.clone(), got: got.issuer.clone() });
        }
        let (ok, want) = match &self.subject {
            SubjectMatch::Exact(s) => (*s == got.subject, s.as_str()),
            SubjectMatch::Pattern(p) => (p.matches_str(&got.subject), p.as_str()),
        };
        if !ok {
            return Err(SigstoreError::OtherSubject { want: want.into(), got: got.subject.clone() });
        }
        Ok(())
    }
}

/// What a verified keyless bundle proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessProof {
    pub identity: Identity,
    /// When the log integrated the signature (Unix seconds).
    pub signed_at: i64,
}

/// DSSE's pre-authentication encoding: what a DSSE signature is over.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks the signed content under `key`, and that it names `subject`. Returns the signature that verified, which
/// the log entry must record.
fn check_content(content: &Content, key: &PublicKey, subject: &Digest) -> Result<Vec<u8>, SigstoreError> {
    let other = |signed: String| SigstoreError::OtherDigest { signed, subject: subject.to_string() };
    match content {
        Content::MessageSignature { digest, signature } => {
            if subject.algorithm().as_str() != "sha256" || hex::encode(digest) != subject.hex() {
                return Err(other(format!("sha256:{}", hex::encode(digest))));
            }
            key.verify_prehash(digest, signature, Signed::Content)?;
            Ok(signature.clone())
        }
        Content::Dsse { payload, payload_type, signatures } => {
            let signed = pae(payload_type, payload);
            let sig = signatures
                .iter()
                .find(|s| key.verify(&signed, s, Signed::Content).is_ok())
                .ok_or(SigstoreError::BadSignature(Signed::Content))?;
            if payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(SigstoreError::Statement(format!("payload type {payload_type}")));
            }
            let st: Statement = serde_json::from_slice(payload).map_err(|e| SigstoreError::Statement(e.to_string()))?;
            if !st.kind.starts_with("https://in-toto.io/Statement/") {
                return Err(SigstoreError::Statement(format!("type {}", st.kind)));
            }
            let alg = subject.algorithm().as_str();
            if !st.subject.iter().any(|s| s.digest.get(alg).is_some_and(|h| h == subject.hex())) {
                let named: Vec<String> =
                    st.subject.iter().flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}"))).collect();
                return Err(other(named.join(", ")));
            }
            Ok(sig.clone())
        }
    }
}

fn recorded<'a>(content: &'a Content, signature: &'a [u8], signer_der: &'a [u8]) -> Recorded<'a> {
    match content {
        Content::MessageSignature { digest, .. } => {
            Recorded { signature, signer_der, digest: Some(digest.as_slice()), dsse: None }
        }
        Content::Dsse { payload, payload_type, .. } => {
            Recorded { signature, signer_der, digest: None, dsse: Some((payload.as_slice(), payload_type.as_str())) }
        }
    }
}

/// A keyless bundle: the certificate's identity is `want`'s, it chains to the trusted root, the content names
/// `subject` under the certificate's key, a log entry of the trusted root proves and records that signature, and
/// the log's time lies inside the certificate's validity.
pub fn verify_keyless(
    bundle: &Bundle,
    want: &WantedIdentity,
    root: &TrustedRoot,
    subject: &Digest,
    now: i64,
) -> Result<KeylessProof, SigstoreError> {
    let Material::Certificate(der) = &bundle.material else {
        return Err(SigstoreError::Unaccepted("public-key bundle"));
    };
    let leaf = Leaf::parse(der)?;
    let identity = leaf.identity()?;
    want.check(&identity)?;
    let signature = check_content(&bundle.content, &leaf.key, subject)?;
    let mut last = SigstoreError::NoLogEntry;
    for entry in &bundle.tlog_entries {
        let proven = rekor::verify_entry(entry, root, now)
            .and_then(|t| rekor::check_body(entry, &recorded(&bundle.content, &signature, der)).map(|()| t))
            .and_then(|t| leaf.valid_at(t).map(|()| t))
            .and_then(|t| leaf.verify_chain(root, t).map(|()| t));
        match proven {
            Ok(signed_at) => return Ok(KeylessProof { identity, signed_at }),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A bundle signed with a known key (`cosign sign --key` writing the new bundle format): the content names
/// `subject` under `key`. A log entry, if the bundle has one, is not required: keyed signatures need no log.
pub fn verify_keyed_bundle(bundle: &Bundle, key: &PublicKey, subject: &Digest) -> Result<(), SigstoreError> {
    if let Material::Certificate(_) = bundle.material {
        return Err(SigstoreError::Unaccepted("certificate bundle"));
    }
    check_content(&bundle.content, key, subject).map(|_| ())
}

/// One `.sig` layer's signature as cosign's annotations give it.
pub struct SimpleSignature<'a> {
    pub payload: &'a [u8],
    /// Base64.
    pub signature: &'a str,
    /// `dev.sigstore.cosign/certificate`, PEM.
    pub certificate: Option<&'a str>,
    /// `dev.sigstore.cosign/bundle`, JSON.
    pub rekor_bundle: Option<&'a str>,
}

/// cosign's `dev.sigstore.cosign/bundle` annotation: Rekor's signed entry timestamp and what it signs.
#[derive(Deserialize)]
struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// A keyless signature under cosign's `.sig` tag scheme (cosign's default output): the certificate annotation's
/// identity is `want`'s, it chains to the trusted root, its key signed the payload, which names `subject`, and
/// the signed entry timestamp of the bundle annotation proves a `hashedrekord` entry of that signature, made while
/// the certificate was valid.
pub fn verify_keyless_simple(
    sig: &SimpleSignature<'_>,
    want: &WantedIdentity,
    root: &TrustedRoot,
    subject: &Digest,
    now: i64,
) -> Result<KeylessProof, SigstoreError> {
    let (payload, signature) = (sig.payload, sig.signature);
    let pem = sig.certificate.ok_or(SigstoreError::Unaccepted("keyless `.sig` without a certificate"))?;
    let (_, der) = super::keys::pem_decode(pem.as_bytes())
        .ok_or_else(|| SigstoreError::Certificate("the certificate annotation is not PEM".into()))?;
    let leaf = Leaf::parse(&der)?;
    let identity = leaf.identity()?;
    want.check(&identity)?;
    let raw_sig = super::simple::decode_signature(signature)?;
    leaf.key.verify(payload, &raw_sig, Signed::Content)?;
    super::simple::check_payload(payload, subject)?;
    let rb: RekorBundle = serde_json::from_str(sig.rekor_bundle.ok_or(SigstoreError::NoLogEntry)?)
        .map_err(|e| SigstoreError::Bundle(format!("cosign bundle annotation: {e}")))?;
    let body = super::bundle::b64(&rb.payload.body)?;
    let kind: serde_json::Value = serde_json::from_slice(&body).map_err(|e| SigstoreError::Bundle(e.to_string()))?;
    let entry = super::bundle::TlogEntry {
        log_index: rb.payload.log_index,
        log_id: hex::decode(&rb.payload.log_id).map_err(|e| SigstoreError::Bundle(e.to_string()))?,
        kind: kind["kind"].as_str().unwrap_or_default().into(),
        version: kind["apiVersion"].as_str().unwrap_or_default().into(),
        integrated_time: rb.payload.integrated_time,
        set: Some(super::bundle::b64(&rb.set)?),
        proof: None,
        body,
    };
    let digest = <sha2::Sha256 as sha2::Digest>::digest(payload);
    let signed_at = rekor::verify_entry(&entry, root, now)?;
    rekor::check_body(
        &entry,
        &Recorded { signature: &raw_sig, signer_der: &der, digest: Some(digest.as_slice()), dsse: None },
    )?;
    leaf.valid_at(signed_at)?;
    leaf.verify_chain(root, signed_at)?;
    Ok(KeylessProof { identity, signed_at })
}
