//! Manifests by digest, mirrors first: bounded, checked against the digest and the signed length, then stored.

use super::{PullError, MANIFEST_ACCEPT};
use crate::io::source::{Failure, Failures, Source};
use crate::io::store::ContentStore;
use crate::io::transport::TransportError;
use wharf_format::digest::Digest;
use wharf_format::manifest::ParsedManifest;

/// Fetches a manifest by digest (mirrors first), bounded by `max`, checked against its digest and, when signed,
/// its signed length; stores it and returns it parsed.
pub(super) async fn fetch(
    store: &ContentStore,
    srcs: &[Source],
    digest: &Digest,
    max: u64,
    signed_len: Option<u64>,
) -> Result<ParsedManifest, PullError> {
    let bytes = match store.read(digest) {
        Ok(b) => b,
        Err(_) => {
            let mut failures = Failures::default();
            let mut got = None;
            for s in srcs {
                if let Some((kind, why)) = s.given_up() {
                    failures.push(kind, why);
                    continue;
                }
                let path = format!("/v2/{}/manifests/{digest}", s.repo);
                let fetched = async {
                    let resp = s.transport.get(&path, &[("accept", MANIFEST_ACCEPT.to_string())]).await?;
                    let out = s.transport.read_bounded(resp, &s.transport.url(&path), max).await?;
                    Ok::<_, TransportError>(out.to_vec())
                }
                .await;
                let (kind, why) = match fetched {
                    Ok(b) if !digest.matches(&b) => {
                        (Failure::Verification, format!("manifest does not hash to {digest} (tampered)"))
                    }
                    Ok(b) if signed_len.is_some_and(|l| l != b.len() as u64) => {
                        (Failure::Verification, "manifest length differs from the signed length".to_string())
                    }
                    Ok(b) => {
                        got = Some(b);
                        break;
                    }
                    Err(e) => (e.failure(), crate::io::transport::report(&e)),
                };
                failures.record(s, kind, format!("{}: {why}", s.name));
            }
            let b = got.ok_or_else(|| PullError::ManifestSources { digest: digest.clone(), failures })?;
            store.put_verified(digest, &b)?;
            b
        }
    };
    ParsedManifest::parse_inferred(&bytes).map_err(|source| PullError::Manifest { digest: digest.clone(), source })
}
