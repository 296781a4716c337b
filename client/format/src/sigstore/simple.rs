//! cosign's signature manifests and payloads: the `sha256-<hex>.sig` tag's layers (a simple-signing payload each,
//! with its signature in an annotation), the bundle layer of a referrer, and the keyed verification of a payload.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::error::{Signed, SigstoreError};
use super::keys::PublicKey;
use super::{
    BUNDLE_ANNOTATION, BUNDLE_MEDIA_TYPE, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::manifest::{Descriptor, ParsedManifest};
use crate::policy::SigstoreCandidate;
use crate::Digest;

/// `critical.type` of a cosign payload.
pub const COSIGN_PAYLOAD_TYPE: &str = "cosign container image signature";

/// The bundle media types a referrer's layer may carry: v0.3 in both spellings, v0.2 and v0.1.
pub const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// One signature of a `.sig` manifest: where its payload is, and the annotations cosign puts beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigLayer {
    pub payload: Descriptor,
    /// `dev.cosignproject.cosign/signature`, base64.
    pub signature: String,
    pub certificate: Option<String>,
    pub chain: Option<String>,
    pub rekor_bundle: Option<String>,
}

impl SigLayer {
    /// The candidate for `evaluate`, once the caller has fetched the payload blob. The blob must be the one the
    /// layer names: a registry answering with other bytes is refused here, not trusted.
    pub fn candidate(&self, payload: Vec<u8>) -> Result<SigstoreCandidate, SigstoreError> {
        if !self.payload.digest.matches(&payload) {
            return Err(SigstoreError::PayloadDigest(self.payload.digest.to_string()));
        }
        Ok(SigstoreCandidate::SimpleSigning {
            payload,
            signature: self.signature.clone(),
            certificate: self.certificate.clone(),
            chain: self.chain.clone(),
            rekor_bundle: self.rekor_bundle.clone(),
        })
    }
}

/// The simple-signing layers of a cosign `.sig` manifest, in order. Layers of other media types are skipped (cosign
/// writes none, but attestations share the scheme); a simple-signing layer without a signature is an error.
pub fn parse_sig_manifest(bytes: &[u8]) -> Result<Vec<SigLayer>, SigstoreError> {
    let m = ParsedManifest::parse_inferred(bytes).map_err(|e| SigstoreError::SigManifest(e.to_string()))?;
    if !m.media_type.is_image_manifest() {
        return Err(SigstoreError::SigManifest(format!("a {}, not an image manifest", m.media_type)));
    }
    let mut out = vec![];
    for layer in m.layers {
        if layer.media_type.as_str() != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let notes = layer.annotations.clone().unwrap_or_default();
        let get = |k: &str| notes.get(k).cloned();
        let signature = get(SIGNATURE_ANNOTATION)
            .ok_or_else(|| SigstoreError::SigManifest(format!("layer {} has no signature", layer.digest)))?;
        let (certificate, chain) = (get(CERTIFICATE_ANNOTATION), get(CHAIN_ANNOTATION));
        out.push(SigLayer { rekor_bundle: get(BUNDLE_ANNOTATION), payload: layer, signature, certificate, chain });
    }
    Ok(out)
}

/// The bundle blob of an OCI 1.1 referrer (`@sigstore/oci` and cosign write one layer of a bundle media type), or
/// `None` for a referrer that is not a sigstore bundle.
pub fn bundle_layer(manifest: &[u8]) -> Result<Option<Descriptor>, SigstoreError> {
    let m = ParsedManifest::parse_inferred(manifest).map_err(|e| SigstoreError::SigManifest(e.to_string()))?;
    Ok(m.layers.into_iter().find(|l| BUNDLE_MEDIA_TYPES.contains(&l.media_type.as_str())))
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What a verified simple-signing payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleClaim {
    pub docker_reference: String,
    pub digest: Digest,
    pub annotations: BTreeMap<String, serde_json::Value>,
}

/// Reads a payload and checks it is cosign's and names `subject`. The signature is checked apart from this.
pub fn check_payload(payload: &[u8], subject: &Digest) -> Result<SimpleClaim, SigstoreError> {
    let p: Payload = serde_json::from_slice(payload).map_err(|e| SigstoreError::Payload(e.to_string()))?;
    if p.critical.kind != COSIGN_PAYLOAD_TYPE {
        return Err(SigstoreError::PayloadType(p.critical.kind));
    }
    let signed = p.critical.image.docker_manifest_digest;
    if signed != subject.to_string() {
        return Err(SigstoreError::OtherDigest { signed, subject: subject.to_string() });
    }
    Ok(SimpleClaim {
        docker_reference: p.critical.identity.docker_reference,
        digest: subject.clone(),
        annotations: p.optional.unwrap_or_default(),
    })
}

/// Decodes a base64 signature (standard alphabet, as cosign writes it).
pub fn decode_signature(b64: &str) -> Result<Vec<u8>, SigstoreError> {
    base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| SigstoreError::SignatureEncoding)
}

/// A keyed simple-signing signature: `signature` (base64) over the exact payload bytes under `key`, and the payload
/// names `subject`. The signature is checked first, so nothing unsigned is parsed.
pub fn verify_simple(
    key: &PublicKey,
    payload: &[u8],
    signature: &str,
    subject: &Digest,
) -> Result<SimpleClaim, SigstoreError> {
    key.verify(payload, &decode_signature(signature)?, Signed::Content)?;
    check_payload(payload, subject)
}
