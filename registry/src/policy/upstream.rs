//! The verifying mirror's evidence: trust data and signatures read from a mirror's upstream, for the one decision
//! ([`super::Enforcer::decide`]) a local repository gets too.
//!
//! - TUF 1.0: the upstream repository's `/_tuf/` metadata, read through the mirror's trust cache (versioned files
//!   cached for good, `timestamp.json` for the entry's freshness time), verified from the root the rule pins
//!   (`tuf.root`) by the same pure workflow a client runs ([`tuf`]). A rule without a pinned root is a failure, never
//!   trust on first use: the upstream is exactly what the mirror must not take on its word.
//! - Notary v1: the upstream's collection (`/v2/<host>/<repo>/_trust/tuf/`), verified from the root the rule pins
//!   (`notary_v1.root`) by `TrustedCollection` ([`notary`]); again no trust on first use.
//! - sigstore: bundle referrers from the upstream's referrers API, and cosign's `sha256-<hex>.sig` tag.
//! - Notation: signature referrers.
//!
//! Everything read is bounded (counts and sizes) and every blob is checked against its digest before use. The
//! signatures themselves are verified by `wharf_format` (`sigstore::satisfies`, `notation::satisfies`).

mod notary;
mod tuf;

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Method;
use wharf_format::policy::{NotationCandidate, Requirement, SigstoreCandidate, Subject, TrustFinding};
use wharf_format::tuf::{Snapshot, Timestamp};
use wharf_format::{notation, sigstore, Digest, ParsedManifest, RepositoryName};

use super::EvidenceSource;
use crate::mirror::upstream::{read_bounded, UpstreamError};
use crate::mirror::Route;
use crate::AppState;

/// Signature referrers (or `.sig` layers) read per subject, at most.
const MAX_CANDIDATES: usize = 16;
/// The largest signature manifest, referrers index, bundle, payload or envelope read.
const MAX_SIGNATURE_BYTES: usize = 1 << 20;
/// The largest referrers index read.
const MAX_INDEX_BYTES: usize = 4 << 20;

/// The newest TUF timestamp and snapshot trusted per upstream repository, and the Notary v1 timestamp and snapshot
/// versions seen: the rollback reference of the next refresh (5.4.3.2, 5.5.5), kept for the life of the process.
#[derive(Default)]
pub struct KeptTrust {
    tuf: Mutex<HashMap<String, (Timestamp, Snapshot)>>,
    v1: Mutex<HashMap<String, SeenV1>>,
}

/// The Notary v1 timestamp and snapshot versions seen.
type SeenV1 = (Option<i64>, Option<i64>);

/// Entries per table before it is emptied: forgetting only weakens rollback protection to a restart's.
const MAX_KEPT: usize = 10_000;

fn keep<V>(map: &Mutex<HashMap<String, V>>, repo: &RepositoryName, value: V) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > MAX_KEPT {
        map.clear();
    }
    map.insert(repo.to_string(), value);
}

impl KeptTrust {
    fn get(&self, repo: &RepositoryName) -> Option<(Timestamp, Snapshot)> {
        self.tuf.lock().unwrap_or_else(|p| p.into_inner()).get(repo.as_str()).cloned()
    }

    fn keep(&self, repo: &RepositoryName, kept: (Timestamp, Snapshot)) {
        keep(&self.tuf, repo, kept)
    }

    fn seen_v1(&self, repo: &RepositoryName) -> SeenV1 {
        self.v1.lock().unwrap_or_else(|p| p.into_inner()).get(repo.as_str()).copied().unwrap_or((None, None))
    }

    fn saw_v1(&self, repo: &RepositoryName, seen: SeenV1) {
        keep(&self.v1, repo, seen)
    }
}

/// Evidence for subjects of one mirrored repository, read from its upstream.
pub struct UpstreamSource<'a> {
    pub st: &'a AppState,
    pub route: &'a Route,
    /// The repository's name on this server (the trust cache keeps its files under it).
    pub repo: &'a RepositoryName,
    /// The pinned roots the rule names (`tuf.root`, `notary_v1.root`), their bytes.
    pub tuf_root: Option<&'a [u8]>,
    pub notary_root: Option<&'a [u8]>,
    pub kept: &'a KeptTrust,
    /// Unix seconds: expiry is judged at it.
    pub now: i64,
}

/// The first pinned TUF root in a requirement, by path (a rule names one upstream, so one root).
pub fn pinned_tuf_root(r: &Requirement) -> Option<&str> {
    match r {
        Requirement::Tuf(t) => t.root.as_deref(),
        Requirement::AnyOf(v) | Requirement::AllOf(v) => v.iter().find_map(pinned_tuf_root),
        _ => None,
    }
}

/// The first pinned Notary v1 root in a requirement, by path.
pub fn pinned_notary_root(r: &Requirement) -> Option<&str> {
    match r {
        Requirement::NotaryV1(n) => n.root.as_deref(),
        Requirement::AnyOf(v) | Requirement::AllOf(v) => v.iter().find_map(pinned_notary_root),
        _ => None,
    }
}

impl EvidenceSource for UpstreamSource<'_> {
    async fn tuf(&self, s: &Subject) -> TrustFinding {
        let Some(root) = self.tuf_root else {
            return TrustFinding::Failed(
                "the rule pins no root (tuf.root): a verifying mirror does not take its upstream's root on trust"
                    .into(),
            );
        };
        match tuf::finding(self, root, s).await {
            Ok(f) => f,
            Err(why) => TrustFinding::Failed(why),
        }
    }

    async fn notary_v1(&self, s: &Subject) -> TrustFinding {
        let Some(root) = self.notary_root else {
            return TrustFinding::Failed(
                "the rule pins no root (notary_v1.root): a verifying mirror does not take its upstream's root on trust"
                    .into(),
            );
        };
        match notary::finding(self, root, s).await {
            Ok(f) => f,
            Err(why) => TrustFinding::Failed(why),
        }
    }

    async fn sigstore(&self, s: &Subject) -> Vec<SigstoreCandidate> {
        let mut out = Vec::new();
        match self.bundles(&s.digest).await {
            Ok(mut b) => out.append(&mut b),
            Err(e) => tracing::warn!(error = %e, repository = %self.repo, "upstream sigstore referrers unreadable"),
        }
        match self.simple_signing(&s.digest).await {
            Ok(mut c) => out.append(&mut c),
            Err(e) => tracing::warn!(error = %e, repository = %self.repo, "upstream cosign signature tag unreadable"),
        }
        out
    }

    async fn notation(&self, s: &Subject) -> Vec<NotationCandidate> {
        let mut out = Vec::new();
        let found = async {
            for m in self.referrers(&s.digest, notation::ARTIFACT_TYPE).await? {
                let Some(layer) = m.layers.first() else { continue };
                let media_type = layer.media_type.as_str().to_string();
                if media_type != notation::JWS_MEDIA_TYPE && media_type != notation::COSE_MEDIA_TYPE {
                    continue;
                }
                let envelope = self.blob(&layer.digest).await?;
                out.push(NotationCandidate { media_type, envelope });
            }
            Ok::<_, UpstreamError>(())
        };
        if let Err(e) = found.await {
            tracing::warn!(error = %e, repository = %self.repo, "upstream Notation referrers unreadable");
        }
        out
    }
}

impl UpstreamSource<'_> {
    /// sigstore bundles attached to `digest` as referrers.
    async fn bundles(&self, digest: &Digest) -> Result<Vec<SigstoreCandidate>, UpstreamError> {
        let mut out = Vec::new();
        for m in self.referrers(digest, sigstore::BUNDLE_MEDIA_TYPE).await? {
            for layer in m.layers.iter().filter(|l| l.media_type.as_str() == sigstore::BUNDLE_MEDIA_TYPE).take(1) {
                out.push(SigstoreCandidate::Bundle(self.blob(&layer.digest).await?));
            }
        }
        Ok(out)
    }

    /// The layers of cosign's `sha256-<hex>.sig` tag for `digest`, each a simple-signing payload with its
    /// annotations; none when the upstream has no such tag.
    async fn simple_signing(&self, digest: &Digest) -> Result<Vec<SigstoreCandidate>, UpstreamError> {
        let Some(m) = self.manifest(&sigstore::signature_tag(digest), None).await? else { return Ok(vec![]) };
        let mut out = Vec::new();
        for layer in m.layers.iter().take(MAX_CANDIDATES) {
            let note = |k: &str| layer.annotations.as_ref().and_then(|a| a.get(k)).cloned();
            let Some(signature) = note(sigstore::SIGNATURE_ANNOTATION) else { continue };
            out.push(SigstoreCandidate::SimpleSigning {
                payload: self.blob(&layer.digest).await?,
                signature,
                certificate: note(sigstore::CERTIFICATE_ANNOTATION),
                chain: note(sigstore::CHAIN_ANNOTATION),
                rekor_bundle: note(sigstore::BUNDLE_ANNOTATION),
            });
        }
        Ok(out)
    }

    /// The manifests of `digest`'s referrers of `artifact_type` (at most [`MAX_CANDIDATES`]); none when the
    /// upstream has no referrers API.
    async fn referrers(&self, digest: &Digest, artifact_type: &str) -> Result<Vec<ParsedManifest>, UpstreamError> {
        let path = format!("/v2/{}/referrers/{digest}?artifactType={}", self.route.repo, artifact_type);
        let url = self.route.upstream.url(&path);
        let resp = match self.route.upstream.send(Method::GET, &path, &self.route.repo, &[]).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let body = read_bounded(resp, MAX_INDEX_BYTES, &url).await?;
        let index = ParsedManifest::parse_inferred(&body)
            .map_err(|e| UpstreamError::Fault { url: url.clone(), reason: format!("referrers index: {e}") })?;
        let mut out = Vec::new();
        // The upstream may ignore the filter: it is applied here again.
        let wanted =
            index.manifests.iter().filter(|d| d.artifact_type.as_ref().is_some_and(|t| t.as_str() == artifact_type));
        for d in wanted.take(MAX_CANDIDATES) {
            if let Some(m) = self.manifest(&d.digest.to_string(), Some(&d.digest)).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// A manifest of the upstream repository by tag or digest (checked against `expected`); `None` if it has none.
    async fn manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Option<ParsedManifest>, UpstreamError> {
        let path = format!("/v2/{}/manifests/{reference}", self.route.repo);
        let url = self.route.upstream.url(&path);
        let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];
        let resp = match self.route.upstream.send(Method::GET, &path, &self.route.repo, &accept).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = read_bounded(resp, MAX_SIGNATURE_BYTES, &url).await?;
        let fault = |reason: String| UpstreamError::Fault { url: url.clone(), reason };
        if expected.is_some_and(|d| !d.matches(&body)) {
            return Err(fault("a signature manifest does not match its digest".into()));
        }
        ParsedManifest::parse_inferred(&body).map(Some).map_err(|e| fault(format!("signature manifest: {e}")))
    }

    /// A signature blob of the upstream repository, checked against its digest.
    async fn blob(&self, digest: &Digest) -> Result<Vec<u8>, UpstreamError> {
        let path = format!("/v2/{}/blobs/{digest}", self.route.repo);
        let url = self.route.upstream.url(&path);
        let resp = self.route.upstream.send(Method::GET, &path, &self.route.repo, &[]).await?;
        let body = read_bounded(resp, MAX_SIGNATURE_BYTES, &url).await?;
        if !digest.matches(&body) {
            return Err(UpstreamError::Fault { url, reason: "a signature blob does not match its digest".into() });
        }
        Ok(body)
    }
}
