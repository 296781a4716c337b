//! Manifests in a mirrored repository: by digest from the cache or the upstream; by tag from the cache while fresh,
//! else as the upstream's `HEAD` says now (the cache when the upstream cannot answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::request::Parts as Request;
use axum::http::Method;
use axum::response::Response;
use futures::future::{BoxFuture, FutureExt, Shared};
use wharf_format::{Digest, MediaType, ParsedManifest, Reference, RepositoryName, Tag};
use wharf_storage::ManifestRecord;

use super::upstream::{read_bounded, UpstreamError};
use super::{no_repository, unavailable, Route};
use crate::error::{ApiError, Kind};
use crate::ops::metrics::labels::{MirrorObject, MirrorOutcome};
use crate::AppState;

/// Every manifest type a mirror asks its upstream for.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

/// Why a manifest could not be fetched (cloneable: every request waiting on one fetch gets it).
#[derive(Debug, Clone)]
enum Miss {
    NotFound,
    Unavailable(Arc<str>),
    /// The upstream sent something wrong: a digest mismatch, a malformed manifest.
    Fault(Arc<str>),
    Internal(Arc<str>),
}

impl From<Miss> for ApiError {
    fn from(m: Miss) -> ApiError {
        match m {
            Miss::NotFound => ApiError::new(Kind::ManifestUnknown, "manifest unknown upstream"),
            Miss::Unavailable(why) => ApiError::new(Kind::UpstreamUnavailable, format!("{why}; nothing cached")),
            Miss::Fault(why) => ApiError::new(Kind::UpstreamUnavailable, format!("upstream fault: {why}")),
            Miss::Internal(why) => ApiError::internal(why.to_string()),
        }
    }
}

impl From<UpstreamError> for Miss {
    fn from(e: UpstreamError) -> Miss {
        match e {
            e if e.is_not_found() => Miss::NotFound,
            e @ UpstreamError::Fault { .. } => Miss::Fault(e.to_string().into()),
            e => Miss::Unavailable(e.to_string().into()),
        }
    }
}

type Fetch = Shared<BoxFuture<'static, Result<ManifestRecord, Miss>>>;

/// Manifest fetches in flight, by repository and reference.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<String, Fetch>>);

/// `GET`/`HEAD` of a manifest in a mirrored repository.
pub async fn manifest(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    reference: &Reference,
    req: &Request,
) -> Result<Response, ApiError> {
    if route.repo.is_empty() {
        return Err(no_repository(repo));
    }
    let record = match reference {
        Reference::Digest(d) => match st.meta.manifests().by_digest(repo, d).await? {
            Some(r) => hit(st, r),
            None => fetch(st, route, repo, d.to_string(), Some(d.clone())).await?,
        },
        Reference::Tag(t) => resolve_tag(st, route, repo, t).await?,
    };
    if let Some(v) = st.mirror.as_ref().and_then(|m| m.verifier()) {
        let tag = match reference {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        };
        v.admit(st, route, repo, tag, &record).await?;
    }
    crate::manifest::respond(record, req)
}

async fn resolve_tag(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    tag: &Tag,
) -> Result<ManifestRecord, ApiError> {
    let key = format!("tag:{tag}");
    let now = st.clock.now();
    let cached = st.meta.mirror().cached(repo, &key).await?;
    let local = st.meta.manifests().by_tag(repo, tag).await?;
    let freshness = route.upstream.settings.freshness.as_secs() as i64;
    if let (Some(c), Some(rec)) = (&cached, &local) {
        if now - c.fetched_at < freshness && c.content == rec.digest.to_string().as_bytes() {
            return Ok(hit(st, rec.clone()));
        }
    }
    let path = format!("/v2/{}/manifests/{tag}", route.repo);
    let asked = route.upstream.send(Method::HEAD, &path, &route.repo, &[("accept", ACCEPT)]).await;
    let named: Option<Digest> = match asked {
        Ok(resp) => {
            resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
        }
        Err(e) if e.is_not_found() => {
            return Err(ApiError::new(Kind::ManifestUnknown, format!("{repo}:{tag}: the upstream has no such tag")))
        }
        Err(e) => {
            st.ops.metrics.upstream_fault();
            return match local {
                Some(rec) => {
                    let rec = hit(st, rec);
                    tracing::warn!(error = %e, repository = %repo, %tag, digest = %rec.digest, "upstream unavailable: serving the cached tag");
                    Ok(rec)
                }
                None => Err(unavailable(&e)),
            };
        }
    };
    let record = match named {
        Some(d) => match st.meta.manifests().by_digest(repo, &d).await? {
            Some(r) => hit(st, r),
            None => fetch(st, route, repo, d.to_string(), Some(d.clone())).await?,
        },
        // An upstream that does not say which digest: the manifest by tag, hashed here.
        None => fetch(st, route, repo, tag.to_string(), None).await?,
    };
    st.meta.manifests().set_tag(repo, tag, &record.digest, now).await?;
    st.meta.mirror().cache(repo, &key, record.digest.to_string().as_bytes(), now).await?;
    Ok(record)
}

/// Fetches `reference` (a digest, or a tag when the upstream named no digest) once for every request that wants it
/// meanwhile, checks it, and stores it.
async fn fetch(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    reference: String,
    expected: Option<Digest>,
) -> Result<ManifestRecord, Miss> {
    let mirrors = st.mirror.as_ref().ok_or_else(|| Miss::Internal("no mirrors".into()))?;
    let key = format!("{repo}@{reference}");
    let mut leader = false;
    let shared = {
        let mut table = mirrors.manifests.0.lock().unwrap_or_else(|p| p.into_inner());
        table
            .entry(key.clone())
            .or_insert_with(|| {
                leader = true;
                let (st, route, repo) = (st.clone(), route.clone(), repo.clone());
                async move { fetch_once(&st, &route, &repo, &reference, expected).await }.boxed().shared()
            })
            .clone()
    };
    let outcome = if leader { MirrorOutcome::Miss } else { MirrorOutcome::Coalesced };
    st.ops.metrics.mirror(MirrorObject::Manifest, outcome);
    let result = shared.await;
    if leader && matches!(result, Err(Miss::Fault(_) | Miss::Unavailable(_))) {
        st.ops.metrics.upstream_fault();
    }
    mirrors.manifests.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
    result
}

/// A manifest served from what this server holds.
fn hit(st: &AppState, record: ManifestRecord) -> ManifestRecord {
    st.ops.metrics.mirror(MirrorObject::Manifest, MirrorOutcome::Hit);
    record
}

async fn fetch_once(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    reference: &str,
    expected: Option<Digest>,
) -> Result<ManifestRecord, Miss> {
    let path = format!("/v2/{}/manifests/{reference}", route.repo);
    let url = route.upstream.url(&path);
    let resp = route.upstream.send(Method::GET, &path, &route.repo, &[("accept", ACCEPT)]).await?;
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let named: Option<Digest> =
        resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = read_bounded(resp, st.limits.max_manifest_size, &url).await?;
    let fault = |why: String| {
        tracing::warn!(upstream = %route.upstream.base, repository = %route.repo, reference, "upstream fault: {why}");
        Miss::Fault(why.into())
    };
    let digest = match expected.or(named) {
        Some(d) if d.matches(&body) => d,
        Some(d) => return Err(fault(format!("the manifest {reference} does not match {d}; discarded"))),
        None => Digest::sha256_of(&body),
    };
    let media_type = match content_type.as_deref() {
        Some(h) => Some(MediaType::from_header(h).map_err(|e| fault(format!("manifest media type: {e}")))?),
        None => None,
    };
    let parsed = ParsedManifest::parse(&body, media_type.as_ref()).map_err(|e| fault(format!("manifest: {e}")))?;
    let new = crate::manifest::to_store(repo, &digest, &parsed, &body, None, true);
    st.meta.manifests().put(&new, st.clock.now()).await.map_err(|e| Miss::Internal(e.to_string().into()))?;
    tracing::info!(repository = %repo, %digest, "mirrored a manifest");
    Ok(ManifestRecord { digest, media_type: parsed.media_type.clone(), content: body })
}
