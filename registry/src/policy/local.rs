//! Evidence from this registry's own storage: its TUF 1.0 repository and Notary v1 collections (verified by
//! [`super::tuf`] and [`super::notary`]), and the sigstore and Notation signatures stored beside the manifest.
//!
//! Everything read is bounded: how many referrers and signature layers are looked at, and how large a signature
//! blob may be. A blob is read only if its size, as the manifest and storage both give it, is within the bound,
//! and is used only if its bytes match its digest.

use futures::StreamExt;
use wharf_format::notary::Gun;
use wharf_format::policy::{NotationCandidate, SigstoreCandidate, Subject, TrustFinding};
use wharf_format::{sigstore, Descriptor, ParsedManifest, RepositoryName};

use super::notary::{NotaryDocuments, MAX_COLLECTIONS};
use super::tuf::TufDocuments;
use super::EvidenceSource;
use crate::Registry;

/// The most signature referrers of one kind read for a digest.
pub const MAX_REFERRERS: i64 = 16;
/// The most signature layers read from one manifest.
pub const MAX_LAYERS: usize = 16;
/// The largest signature payload, bundle or envelope read.
pub const MAX_SIGNATURE: u64 = 1 << 20;

/// Evidence from `registry`'s storage, judged at `now`.
pub struct LocalEvidence<'a> {
    pub registry: &'a Registry,
    pub now: i64,
}

impl EvidenceSource for LocalEvidence<'_> {
    async fn tuf(&self, s: &Subject) -> TrustFinding {
        super::tuf::finding(&Stored { registry: self.registry, repo: &s.repository }, s, self.now).await
    }

    async fn notary_v1(&self, s: &Subject) -> TrustFinding {
        super::notary::finding(&Stored { registry: self.registry, repo: &s.repository }, s, self.now).await
    }

    async fn sigstore(&self, s: &Subject) -> Vec<SigstoreCandidate> {
        let mut out = Vec::new();
        for m in self.signature_manifests(s, sigstore::BUNDLE_MEDIA_TYPE).await {
            let bundles = m.layers.iter().filter(|l| l.media_type.as_str() == sigstore::BUNDLE_MEDIA_TYPE);
            for layer in bundles.take(MAX_LAYERS) {
                if let Some(bytes) = self.blob(&s.repository, layer).await {
                    out.push(SigstoreCandidate::Bundle(bytes));
                }
            }
        }
        let tag: Option<wharf_format::Tag> = sigstore::signature_tag(&s.digest).parse().ok();
        let record = match tag {
            Some(t) => self.registry.meta.manifests().by_tag(&s.repository, &t).await.ok().flatten(),
            None => None,
        };
        let Some(m) = record.and_then(|r| ParsedManifest::parse(&r.content, Some(&r.media_type)).ok()) else {
            return out;
        };
        let layers = m.layers.iter().filter(|l| l.media_type.as_str() == sigstore::SIMPLE_SIGNING_MEDIA_TYPE);
        for layer in layers.take(MAX_LAYERS) {
            let note = |k: &str| layer.annotations.as_ref().and_then(|a| a.get(k)).cloned();
            let Some(signature) = note(sigstore::SIGNATURE_ANNOTATION) else { continue };
            let Some(payload) = self.blob(&s.repository, layer).await else { continue };
            out.push(SigstoreCandidate::SimpleSigning {
                payload,
                signature,
                certificate: note(sigstore::CERTIFICATE_ANNOTATION),
                chain: note(sigstore::CHAIN_ANNOTATION),
                rekor_bundle: note(sigstore::BUNDLE_ANNOTATION),
            });
        }
        out
    }

    async fn notation(&self, s: &Subject) -> Vec<NotationCandidate> {
        let mut out = Vec::new();
        for m in self.signature_manifests(s, wharf_format::notation::ARTIFACT_TYPE).await {
            let envelopes = m.layers.iter().filter(|l| {
                let t = l.media_type.as_str();
                t == wharf_format::notation::JWS_MEDIA_TYPE || t == wharf_format::notation::COSE_MEDIA_TYPE
            });
            for layer in envelopes.take(MAX_LAYERS) {
                if let Some(envelope) = self.blob(&s.repository, layer).await {
                    out.push(NotationCandidate { media_type: layer.media_type.to_string(), envelope });
                }
            }
        }
        out
    }
}

impl LocalEvidence<'_> {
    /// The newest referrers of the subject's digest of one artifact type, parsed (at most [`MAX_REFERRERS`]).
    async fn signature_manifests(&self, s: &Subject, artifact_type: &str) -> Vec<ParsedManifest> {
        let manifests = self.registry.meta.manifests();
        let found = manifests.referrers_of_type(&s.repository, &s.digest, artifact_type, MAX_REFERRERS).await;
        let found = found.unwrap_or_else(|e| {
            // A store failure is absence of evidence, which fails a requirement that needs it, never passes one.
            tracing::warn!(error = %e, repository = %s.repository, "reading signature referrers");
            Vec::new()
        });
        found.iter().filter_map(|r| ParsedManifest::parse(&r.content, Some(&r.media_type)).ok()).collect()
    }

    /// A signature blob of `repo`, if it is there, within [`MAX_SIGNATURE`] and matching its digest.
    async fn blob(&self, repo: &RepositoryName, d: &Descriptor) -> Option<Vec<u8>> {
        if d.size > MAX_SIGNATURE {
            return None;
        }
        let seen = self.registry.meta.blobs().seen(repo, &d.digest).await.ok().flatten()?;
        if seen.size != d.size {
            return None;
        }
        let mut read = self.registry.blobs.open_at(&d.digest, seen.location.as_deref(), None).await.ok()?;
        let mut out = Vec::new();
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk.ok()?;
            if (out.len() + chunk.len()) as u64 > MAX_SIGNATURE {
                return None;
            }
            out.extend_from_slice(&chunk);
        }
        d.digest.matches(&out).then_some(out)
    }
}

/// Trust metadata of one repository in this registry's SQL (also read by the web interface's trust status).
pub struct Stored<'a> {
    pub registry: &'a Registry,
    pub repo: &'a RepositoryName,
}

impl TufDocuments for Stored<'_> {
    async fn latest(&self, role: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::tuf::RoleName = role.parse().map_err(|_| format!("{role:?} is not a role name"))?;
        let row = self.registry.meta.trust().latest(self.repo, &role).await.map_err(|e| crate::error::chain(&e))?;
        Ok(row.map(|r| r.content))
    }

    async fn version(&self, role: &str, version: u64) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::tuf::RoleName = role.parse().map_err(|_| format!("{role:?} is not a role name"))?;
        let row =
            self.registry.meta.trust().version(self.repo, &role, version).await.map_err(|e| crate::error::chain(&e))?;
        Ok(row.map(|r| r.content))
    }
}

impl NotaryDocuments for Stored<'_> {
    async fn guns(&self) -> Result<Vec<Gun>, String> {
        self.registry.meta.notary_v1().guns_for(self.repo, MAX_COLLECTIONS).await.map_err(|e| crate::error::chain(&e))
    }

    async fn current(&self, gun: &Gun, role: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::notary::RoleName =
            role.parse().map_err(|_| format!("{role:?} is not a Notary role"))?;
        let row = self.registry.meta.notary_v1().current(gun, &role).await.map_err(|e| crate::error::chain(&e))?;
        Ok(row.map(|r| r.content))
    }

    async fn by_hash(&self, gun: &Gun, role: &str, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        let role: wharf_format::notary::RoleName =
            role.parse().map_err(|_| format!("{role:?} is not a Notary role"))?;
        let row =
            self.registry.meta.notary_v1().by_hash(gun, &role, sha256).await.map_err(|e| crate::error::chain(&e))?;
        Ok(row.map(|r| r.content))
    }
}
