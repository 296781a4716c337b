//! sigstore (cosign) signatures over a manifest digest: keyed simple-signing under cosign's `sha256-<hex>.sig`
//! tag scheme, and sigstore bundles (v0.3) attached as OCI 1.1 referrers, verified offline against a
//! `trusted_root.json`.
//!
//! (Skeleton: the verification is being written; until then every candidate is refused.)

use crate::policy::{Material, SigstoreCandidate, SigstoreRequirement, Subject};

/// The artifact type of a sigstore bundle attached as a referrer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The layer media type of cosign's simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// cosign's annotations on a `.sig` layer.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// cosign's tag for the signatures of `digest` (`sha256-<hex>.sig`).
pub fn signature_tag(digest: &crate::Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The requirement in words.
pub fn describe_requirement(r: &SigstoreRequirement) -> String {
    match (&r.key, &r.issuer) {
        (Some(k), _) => format!("sigstore (key {k})"),
        (None, Some(i)) => format!(
            "sigstore (keyless, issuer {i}, subject {})",
            r.subject.as_deref().or(r.subject_pattern.as_deref()).unwrap_or("?")
        ),
        (None, None) => "sigstore".into(),
    }
}

/// Whether one of `candidates` is a valid signature over the subject's digest that `r` accepts. `Ok`: who signed;
/// `Err`: why none did, naming each candidate's failure.
pub fn satisfies(
    r: &SigstoreRequirement,
    s: &Subject,
    candidates: &[SigstoreCandidate],
    m: &Material,
    now: i64,
) -> Result<String, String> {
    let _ = (r, s, m, now);
    if candidates.is_empty() {
        return Err("no sigstore signature".into());
    }
    Err("sigstore verification is not implemented yet".into())
}
