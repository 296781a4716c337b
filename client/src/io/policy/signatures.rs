//! Signature candidates for a manifest digest, read from the registry: sigstore bundles and Notation envelopes as
//! OCI 1.1 referrers (`/v2/<name>/referrers/<digest>?artifactType=...`), and cosign's `sha256-<hex>.sig` tag.
//! Nothing here is trusted: every manifest and blob is checked against its digest, every read is bounded, and the
//! signatures are verified by `wharf_format::sigstore` and `wharf_format::notation` when the policy is evaluated.
//! A signature that cannot be read (wrong digest, malformed) is skipped with a warning; it can only fail to help.

use crate::io::pull::MANIFEST_ACCEPT;
use crate::io::transport::{Transport, TransportError};
use wharf_format::digest::Digest;
use wharf_format::manifest::{Descriptor, ParsedManifest};
use wharf_format::name::RepositoryName;
use wharf_format::policy::{NotationCandidate, SigstoreCandidate};
use wharf_format::{notation, sigstore};

/// The most bytes of a referrers index, a signature manifest, or one signature blob.
pub const MAX_INDEX: u64 = 1 << 20;
pub const MAX_SIGNATURE: u64 = 1 << 20;
/// The most signatures of one kind read for a digest.
pub const MAX_SIGNATURES: usize = 16;

/// sigstore candidates of `d`: bundle referrers, then the layers of cosign's `.sig` tag.
pub async fn sigstore(
    t: &Transport,
    repo: &RepositoryName,
    d: &Digest,
) -> Result<Vec<SigstoreCandidate>, TransportError> {
    let mut out = Vec::new();
    for m in referrers(t, repo, d, sigstore::BUNDLE_MEDIA_TYPE).await? {
        let Some(m) = manifest(t, repo, &m.digest.to_string(), Some(&m.digest)).await? else { continue };
        if let Some(layer) = m.layers.iter().find(|l| l.media_type.as_str() == sigstore::BUNDLE_MEDIA_TYPE) {
            if let Some(b) = blob(t, repo, layer).await? {
                out.push(SigstoreCandidate::Bundle(b));
            }
        }
    }
    // cosign's tag scheme. (When `wharf_format::sigstore::parse_sig_manifest` lands, this reading of the
    // annotations can move there; the candidate's fields are the same.)
    let Some(m) = manifest(t, repo, &sigstore::signature_tag(d), None).await? else { return Ok(out) };
    let layers = m.layers.iter().filter(|l| l.media_type.as_str() == sigstore::SIMPLE_SIGNING_MEDIA_TYPE);
    for layer in layers.take(MAX_SIGNATURES) {
        let notes = layer.annotations.clone().unwrap_or_default();
        let Some(signature) = notes.get(sigstore::SIGNATURE_ANNOTATION).cloned() else {
            tracing::warn!(layer = %layer.digest, "a cosign signature layer without a signature annotation is skipped");
            continue;
        };
        let Some(payload) = blob(t, repo, layer).await? else { continue };
        out.push(SigstoreCandidate::SimpleSigning {
            payload,
            signature,
            certificate: notes.get(sigstore::CERTIFICATE_ANNOTATION).cloned(),
            chain: notes.get(sigstore::CHAIN_ANNOTATION).cloned(),
            rekor_bundle: notes.get(sigstore::BUNDLE_ANNOTATION).cloned(),
        });
    }
    Ok(out)
}

/// Notation candidates of `d`: each signature referrer's envelope (its first JWS or COSE layer).
pub async fn notation(
    t: &Transport,
    repo: &RepositoryName,
    d: &Digest,
) -> Result<Vec<NotationCandidate>, TransportError> {
    let mut out = Vec::new();
    for m in referrers(t, repo, d, notation::ARTIFACT_TYPE).await? {
        let Some(m) = manifest(t, repo, &m.digest.to_string(), Some(&m.digest)).await? else { continue };
        let envelope = m.layers.iter().find(|l| {
            let mt = l.media_type.as_str();
            mt == notation::JWS_MEDIA_TYPE || mt == notation::COSE_MEDIA_TYPE
        });
        if let Some(layer) = envelope {
            if let Some(b) = blob(t, repo, layer).await? {
                out.push(NotationCandidate { media_type: layer.media_type.to_string(), envelope: b });
            }
        }
    }
    Ok(out)
}

/// The referrers of `d` of artifact type `at` (filtered here too: a registry may ignore the filter), at most
/// [`MAX_SIGNATURES`]. A registry without the referrers API (`404`) has none.
async fn referrers(
    t: &Transport,
    repo: &RepositoryName,
    d: &Digest,
    at: &str,
) -> Result<Vec<Descriptor>, TransportError> {
    let q: String = url::form_urlencoded::byte_serialize(at.as_bytes()).collect();
    let body = match t.get_bounded(&format!("/v2/{repo}/referrers/{d}?artifactType={q}"), MAX_INDEX).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let index: Index = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "the registry's referrers index does not parse: no referrers used");
            return Ok(Vec::new());
        }
    };
    let wanted = index.manifests.into_iter().filter(|m| m.artifact_type.as_ref().is_some_and(|a| a.as_str() == at));
    Ok(wanted.take(MAX_SIGNATURES).collect())
}

/// A manifest by digest (checked) or by tag (`want`: `None`), parsed; `None` when the registry has none or it is
/// not a valid manifest of the digest.
async fn manifest(
    t: &Transport,
    repo: &RepositoryName,
    reference: &str,
    want: Option<&Digest>,
) -> Result<Option<ParsedManifest>, TransportError> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = match t.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let body = t.read_bounded(resp, &t.url(&path), MAX_SIGNATURE).await?;
    if want.is_some_and(|d| !d.matches(&body)) {
        tracing::warn!(manifest = %reference, "a signature manifest does not match its digest: skipped");
        return Ok(None);
    }
    match ParsedManifest::parse(&body, None) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            tracing::warn!(manifest = %reference, error = %e, "a signature manifest does not parse: skipped");
            Ok(None)
        }
    }
}

/// A blob the descriptor names, within its size and [`MAX_SIGNATURE`], checked against its digest.
async fn blob(t: &Transport, repo: &RepositoryName, desc: &Descriptor) -> Result<Option<Vec<u8>>, TransportError> {
    if desc.size > MAX_SIGNATURE {
        tracing::warn!(blob = %desc.digest, size = desc.size, "a signature blob over the size limit: skipped");
        return Ok(None);
    }
    let bytes = match t.get_bounded(&format!("/v2/{repo}/blobs/{}", desc.digest), desc.size).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    if !desc.digest.matches(&bytes) {
        tracing::warn!(blob = %desc.digest, "a signature blob does not match its digest: skipped");
        return Ok(None);
    }
    Ok(Some(bytes.to_vec()))
}
