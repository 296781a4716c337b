//! sigstore (cosign) signatures over a manifest digest: simple-signing payloads under cosign's `sha256-<hex>.sig`
//! tag scheme (keyed, or keyless with a certificate and Rekor's signed entry timestamp in annotations), and sigstore
//! bundles (v0.1 to v0.3) attached as OCI 1.1 referrers (keyless, or a public-key bundle), verified offline against
//! a public key or a `trusted_root.json`.
//!
//! The caller finds the candidates (the registry in its store, the client and the mirror over HTTP): a `.sig`
//! manifest's layers with [`parse_sig_manifest`] and their payload blobs, a referrer's bundle with [`bundle_layer`].
//! [`satisfies`] judges them for a rule; everything below it is pure and offline. The cryptography is RustCrypto's
//! (`p256`, `p384`, `ed25519-dalek`, `sha2`) and X.509 is `x509-cert`'s.

mod bundle;
mod cert;
mod error;
mod keys;
mod rekor;
mod simple;
mod trusted_root;
mod verify;

pub use bundle::{Bundle, Content, InclusionProof, Material as BundleMaterial, TlogEntry};
pub use cert::{Identity, Leaf};
pub use error::{Signed, SigstoreError};
pub use keys::PublicKey;
pub use simple::{
    bundle_layer, check_payload, parse_sig_manifest, verify_simple, SigLayer, SimpleClaim, BUNDLE_MEDIA_TYPES,
    COSIGN_PAYLOAD_TYPE,
};
pub use trusted_root::TrustedRoot;
pub use verify::{
    pae, verify_keyed_bundle, verify_keyless, verify_keyless_simple, KeylessProof, SimpleSignature, SubjectMatch,
    WantedIdentity,
};

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
    let judge = Judge::new(r, m).map_err(|e| e.to_string())?;
    if candidates.is_empty() {
        return Err("no sigstore signature".into());
    }
    let mut why = vec![];
    for (i, c) in candidates.iter().enumerate() {
        match judge.candidate(c, s, now) {
            Ok(who) => return Ok(who),
            Err(e) => why.push(format!("signature {}: {e}", i + 1)),
        }
    }
    Err(why.join("; "))
}

/// A requirement with its material read: a key, or an identity and a trusted root.
enum Judge {
    Keyed { path: String, key: PublicKey },
    Keyless { want: WantedIdentity, root: TrustedRoot },
}

impl Judge {
    fn new(r: &SigstoreRequirement, m: &Material) -> Result<Judge, SigstoreError> {
        let file = |path: &str| m.files.get(path).ok_or_else(|| SigstoreError::Material(path.into()));
        if let Some(path) = &r.key {
            return Ok(Judge::Keyed { path: path.clone(), key: PublicKey::from_pem(file(path)?)? });
        }
        let issuer = r.issuer.clone().ok_or(SigstoreError::Requirement("key and no issuer"))?;
        let subject = match (&r.subject, &r.subject_pattern) {
            (Some(s), _) => SubjectMatch::Exact(s.clone()),
            (None, Some(p)) => {
                SubjectMatch::Pattern(p.parse().map_err(|_| SigstoreError::Requirement("valid pattern"))?)
            }
            (None, None) => return Err(SigstoreError::Requirement("subject or subject pattern")),
        };
        let path = r.trusted_root.as_deref().ok_or(SigstoreError::Requirement("trusted root"))?;
        let root = TrustedRoot::parse(file(path)?)?;
        Ok(Judge::Keyless { want: WantedIdentity { issuer, subject }, root })
    }

    fn candidate(&self, c: &SigstoreCandidate, s: &Subject, now: i64) -> Result<String, SigstoreError> {
        match (self, c) {
            (Judge::Keyed { path, key }, SigstoreCandidate::SimpleSigning { payload, signature, .. }) => {
                verify_simple(key, payload, signature, &s.digest)?;
                Ok(format!("cosign signature by key {path} for {}", s.digest))
            }
            (Judge::Keyed { path, key }, SigstoreCandidate::Bundle(bytes)) => {
                verify_keyed_bundle(&Bundle::parse(bytes)?, key, &s.digest)?;
                Ok(format!("sigstore bundle signed by key {path} for {}", s.digest))
            }
            (Judge::Keyless { want, root }, SigstoreCandidate::Bundle(bytes)) => {
                let proof = verify_keyless(&Bundle::parse(bytes)?, want, root, &s.digest, now)?;
                Ok(format!(
                    "sigstore bundle by {} (issuer {}) for {}, logged at {}",
                    proof.identity.subject, proof.identity.issuer, s.digest, proof.signed_at
                ))
            }
            (
                Judge::Keyless { want, root },
                SigstoreCandidate::SimpleSigning { payload, signature, certificate, rekor_bundle, .. },
            ) => {
                let sig = SimpleSignature {
                    payload,
                    signature,
                    certificate: certificate.as_deref(),
                    rekor_bundle: rekor_bundle.as_deref(),
                };
                let proof = verify_keyless_simple(&sig, want, root, &s.digest, now)?;
                Ok(format!(
                    "cosign signature by {} (issuer {}) for {}, logged at {}",
                    proof.identity.subject, proof.identity.issuer, s.digest, proof.signed_at
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keyless;
