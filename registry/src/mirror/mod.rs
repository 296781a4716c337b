//! Mirror mode: repositories under a configured namespace are pull-through copies of an upstream registry.
//!
//! A miss fetches from the upstream, checks the digest while streaming, and stores the content as any pushed
//! content (so collection and retention apply). Manifests and blobs in flight are fetched once however many
//! requests want them ([`fetch::Downloads`] for blobs, a table of shared futures for manifests). Tags are asked
//! again with a `HEAD` once older than the entry's freshness time; when the upstream cannot answer, the cached copy
//! is served and the log says so. Trust metadata passes through unaltered ([`trust`]). Writes into a mirrored
//! namespace are refused with `DENIED`. With a `[[policy]]` rule over a mirrored repository, the mirror verifies
//! upstream content before serving it ([`verify`]).

pub mod fetch;
mod manifests;
pub mod trust;
pub mod upstream;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts as Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use wharf_format::{Digest, RepositoryName};

use crate::config::mirror::{MirrorSettings, Prefix};
use crate::error::{ApiError, Kind};
use crate::ops::metrics::labels::{MirrorObject, MirrorOutcome};
use crate::{blob, header_str, listing, referrers, AppState};
use upstream::{read_bounded, Upstream, UpstreamError};

/// The upstreams and what is in flight from them.
pub struct Mirrors {
    entries: Vec<Arc<Upstream>>,
    downloads: Arc<fetch::Downloads>,
    manifests: manifests::InFlight,
    /// The policy over mirrored repositories (`None`: no `[[policy]]` rule; everything is served as fetched).
    verifier: Option<verify::Verifier>,
}

/// Where a mirrored repository comes from.
#[derive(Clone)]
pub struct Route {
    pub upstream: Arc<Upstream>,
    /// The repository's name upstream; empty when the name is the bare prefix (no repository).
    pub repo: String,
}

impl Mirrors {
    /// `spool`: a directory for downloads in flight (emptied here).
    pub fn new(settings: &[MirrorSettings], spool: PathBuf) -> Result<Mirrors, String> {
        let entries = settings.iter().map(|s| Upstream::new(s.clone()).map(Arc::new)).collect::<Result<_, _>>()?;
        let _ = std::fs::remove_dir_all(&spool);
        Ok(Mirrors {
            entries,
            downloads: Arc::new(fetch::Downloads::new(spool)),
            manifests: manifests::InFlight::default(),
            verifier: None,
        })
    }

    /// Verifies upstream content in the repositories `policy`'s rules cover before serving it. `material`: the
    /// keys, pinned roots and trust stores the rules name, read at start (`Material::gather`).
    pub fn with_policy(
        mut self,
        policy: wharf_format::policy::Policy,
        material: wharf_format::policy::Material,
    ) -> Self {
        if !policy.rules.is_empty() {
            self.verifier = Some(verify::Verifier::new(policy, material));
        }
        self
    }

    pub fn verifier(&self) -> Option<&verify::Verifier> {
        self.verifier.as_ref()
    }

    /// The upstream `repo` is mirrored from: the entry with the longest matching prefix, else a `*` entry.
    pub fn route(&self, repo: &RepositoryName) -> Option<Route> {
        let name = repo.as_str();
        let mut best: Option<(usize, &Arc<Upstream>, String)> = None;
        for e in &self.entries {
            let (len, rest) = match &e.settings.prefix {
                Prefix::Any(local) if local.iter().any(|p| under(name, p)) => continue,
                Prefix::Any(_) => (0, name.to_string()),
                Prefix::Path(p) if name == p => (p.len(), String::new()),
                Prefix::Path(p) => match name.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix('/')) {
                    Some(rest) => (p.len() + 1, rest.to_string()),
                    None => continue,
                },
            };
            if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
                best = Some((len, e, rest));
            }
        }
        best.map(|(_, e, repo)| Route { upstream: Arc::clone(e), repo })
    }
}

/// Whether repository `name` is `prefix` or under it (whole components).
fn under(name: &str, prefix: &str) -> bool {
    name == prefix || name.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'))
}

/// A random hex name for spool files.
pub fn random_id() -> String {
    let mut b = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

/// The answer when an upstream could not be used and nothing is cached.
pub fn unavailable(e: &UpstreamError) -> ApiError {
    ApiError::new(Kind::UpstreamUnavailable, format!("{e}; nothing cached"))
}

/// Writes into a mirrored namespace are refused.
pub fn denied(repo: &RepositoryName, route: &Route) -> ApiError {
    ApiError::new(
        Kind::Denied,
        format!("{repo} is a mirror of {}: push to the upstream, not to the mirror", route.upstream.base),
    )
}

fn no_repository(repo: &RepositoryName) -> ApiError {
    ApiError::new(Kind::NameUnknown, format!("{repo} names a mirrored namespace, not a repository"))
}

/// `GET`/`HEAD` of a blob in a mirrored repository.
pub async fn blob(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    digest: &Digest,
    req: &Request,
) -> Result<Response, ApiError> {
    if route.repo.is_empty() {
        return Err(no_repository(repo));
    }
    if let Some(v) = st.mirror.as_ref().and_then(|m| m.verifier()) {
        v.admit_blob(repo, digest)?;
    }
    // Held here: served as any blob, with no further query.
    match blob::get(st, repo, digest, req).await {
        Err(e) if e.kind == Kind::BlobUnknown => {}
        held => {
            if held.is_ok() {
                count(st, MirrorObject::Blob, MirrorOutcome::Hit);
            }
            return held;
        }
    }
    if st.meta.mirror().adopt_referenced_blob(repo, digest, st.clock.now()).await? {
        count(st, MirrorObject::Blob, MirrorOutcome::Hit);
        return blob::get(st, repo, digest, req).await;
    }
    let mirrors = st.mirror.as_ref().ok_or_else(|| ApiError::internal("no mirrors".into()))?;
    if req.method == Method::HEAD {
        count(st, MirrorObject::Blob, MirrorOutcome::Miss);
        return head_upstream_blob(st, route, digest).await;
    }
    let (st2, route2, repo2, digest2) = (st.clone(), route.clone(), repo.clone(), digest.clone());
    let missing = || async { matches!(st.meta.blobs().seen(repo, digest).await, Ok(None)) };
    let started = std::sync::atomic::AtomicBool::new(false);
    let started_here = &started;
    let start = move |sink: fetch::Sink| {
        started_here.store(true, std::sync::atomic::Ordering::Relaxed);
        async move {
            let size = fetch::download(&route2.upstream, &route2.repo, &digest2, &sink).await;
            match size {
                Some(size) => store(&st2, &repo2, &digest2, &sink.path, size).await,
                None if !matches!(sink.tx.borrow().state, fetch::State::NotFound) => st2.ops.metrics.upstream_fault(),
                None => {}
            }
        }
    };
    let dl = mirrors
        .downloads
        .join(repo, digest, missing, start)
        .await
        .map_err(|e| ApiError::internal(format!("starting a download: {e}")))?;
    let outcome = match (&dl, started.load(std::sync::atomic::Ordering::Relaxed)) {
        (None, _) => MirrorOutcome::Hit,
        (Some(_), true) => MirrorOutcome::Miss,
        (Some(_), false) => MirrorOutcome::Coalesced,
    };
    count(st, MirrorObject::Blob, outcome);
    let Some(dl) = dl else { return blob::get(st, repo, digest, req).await };
    let p = dl.started().await;
    match &p.state {
        fetch::State::NotFound => return Err(wharf_storage::Error::BlobUnknown.into()),
        fetch::State::Failed(why) => {
            return Err(ApiError::new(Kind::UpstreamUnavailable, format!("fetching {digest} upstream: {why}")))
        }
        _ => {}
    }
    let range = match (header_str(req, header::RANGE), p.total) {
        (Some(h), Some(total)) => Some(blob::parse_range(h, total).ok_or_else(|| blob::unsatisfiable(total))?),
        _ => None,
    };
    let mut b = Response::builder()
        .header("docker-content-digest", digest.to_string())
        .header("content-type", "application/octet-stream")
        .header("etag", format!("\"{digest}\""));
    let (start, end) = match (range, p.total) {
        (Some(r), Some(total)) => {
            let end = r.end.unwrap_or(total - 1);
            b = b
                .status(StatusCode::PARTIAL_CONTENT)
                .header("content-range", format!("bytes {}-{end}/{total}", r.start))
                .header("content-length", end - r.start + 1);
            (r.start, Some(end))
        }
        (_, Some(total)) => {
            b = b.header("content-length", total).header("accept-ranges", "bytes");
            (0, None)
        }
        _ => (0, None),
    };
    b.body(Body::from_stream(dl.read(start, end))).map_err(|e| ApiError::internal(e.to_string()))
}

/// Counts a mirrored read's outcome.
fn count(st: &AppState, object: MirrorObject, outcome: MirrorOutcome) {
    st.ops.metrics.mirror(object, outcome);
}

async fn head_upstream_blob(st: &AppState, route: &Route, digest: &Digest) -> Result<Response, ApiError> {
    let path = format!("/v2/{}/blobs/{digest}", route.repo);
    match route.upstream.send(Method::HEAD, &path, &route.repo, &[]).await {
        Ok(r) => {
            let mut b = Response::builder()
                .header("docker-content-digest", digest.to_string())
                .header("content-type", "application/octet-stream");
            if let Some(n) = r.content_length() {
                b = b.header("content-length", n);
            }
            b.body(Body::empty()).map_err(|e| ApiError::internal(e.to_string()))
        }
        Err(e) if e.is_not_found() => Err(wharf_storage::Error::BlobUnknown.into()),
        Err(e) => {
            st.ops.metrics.upstream_fault();
            Err(unavailable(&e))
        }
    }
}

/// Stores a verified download as a pushed blob would be, linked into `repo`.
async fn store(st: &AppState, repo: &RepositoryName, digest: &Digest, path: &std::path::Path, size: u64) {
    let result = async {
        let committed = st.uploads.adopt_verified(path, digest, size).await?;
        st.uploads.record(repo, digest, &committed, st.clock.now()).await
    }
    .await;
    match result {
        Ok(()) => tracing::info!(repository = %repo, %digest, size, "mirrored a blob"),
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), repository = %repo, %digest, "storing a mirrored blob")
        }
    }
}

/// The tag list: the upstream's when it answers, the cached tags when it cannot.
pub async fn tags(st: &AppState, route: &Route, repo: &RepositoryName, req: &Request) -> Result<Response, ApiError> {
    if route.repo.is_empty() {
        return Err(no_repository(repo));
    }
    let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let path = format!("/v2/{}/tags/list{query}", route.repo);
    let answer = async {
        let resp = route.upstream.send(Method::GET, &path, &route.repo, &[]).await?;
        let link = resp.headers().get(header::LINK).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let url = route.upstream.url(&path);
        let body = read_bounded(resp, 16 << 20, &url).await?;
        let list: TagList = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Fault { url: url.clone(), reason: format!("tag list: {e}") })?;
        Ok::<_, UpstreamError>((list, link))
    };
    match answer.await {
        Ok((list, link)) => {
            let body = serde_json::json!({ "name": repo.as_str(), "tags": list.tags.unwrap_or_default() });
            let mut resp = axum::Json(body).into_response();
            let from = format!("/v2/{}/", route.repo);
            if let Some(v) =
                link.and_then(|l| header::HeaderValue::from_str(&l.replace(&from, &format!("/v2/{repo}/"))).ok())
            {
                resp.headers_mut().insert(header::LINK, v);
            }
            Ok(resp)
        }
        Err(e) if e.is_not_found() => {
            Err(ApiError::new(Kind::NameUnknown, format!("{repo}: the upstream has no such repository")))
        }
        Err(e) => {
            tracing::warn!(error = %e, repository = %repo, "upstream unavailable: listing cached tags");
            listing::tags(st, repo, req).await
        }
    }
}

#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

/// The referrers of a digest: the upstream's answer when it has one, the cached referrers otherwise.
pub async fn referrers(
    st: &AppState,
    route: &Route,
    repo: &RepositoryName,
    subject: &Digest,
    req: &Request,
) -> Result<Response, ApiError> {
    if !route.repo.is_empty() {
        let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let path = format!("/v2/{}/referrers/{subject}{query}", route.repo);
        let answer = async {
            let resp = route.upstream.send(Method::GET, &path, &route.repo, &[]).await?;
            let filters = resp.headers().get("oci-filters-applied").cloned();
            let url = route.upstream.url(&path);
            let body = read_bounded(resp, 4 << 20, &url).await?;
            serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| UpstreamError::Fault { url, reason: format!("referrers: {e}") })?;
            Ok::<_, UpstreamError>((body, filters))
        };
        match answer.await {
            Ok((body, filters)) => {
                let mut resp = ([("content-type", wharf_format::media_type::OCI_INDEX)], body).into_response();
                if let Some(f) = filters {
                    resp.headers_mut().insert("oci-filters-applied", f);
                }
                return Ok(resp);
            }
            Err(e) => {
                tracing::warn!(error = %e, repository = %repo, "upstream referrers unavailable: answering from cache")
            }
        }
    }
    referrers::get(st, repo, subject, req).await
}

pub use manifests::manifest;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(upstream: &str, prefix: Prefix) -> MirrorSettings {
        MirrorSettings {
            upstream: upstream.parse().unwrap(),
            prefix,
            credentials: None,
            ca_cert: None,
            freshness: std::time::Duration::from_secs(60),
            stall_timeout: std::time::Duration::from_secs(30),
            max_blob_bytes: 1 << 30,
            token_realms: Vec::new(),
            insecure_http: false,
        }
    }

    #[test]
    fn routes() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mirrors::new(
            &[
                settings("https://hub.example", Prefix::Any(vec!["team".into()])),
                settings("https://a.example", Prefix::Path("a".into())),
                settings("https://ab.example", Prefix::Path("a/b".into())),
            ],
            dir.path().join("spool"),
        )
        .unwrap();
        let route = |name: &str| {
            let r = m.route(&name.parse().unwrap()).unwrap();
            format!("{} {}", r.upstream.base.host_str().unwrap(), r.repo)
        };
        assert_eq!(route("library/alpine"), "hub.example library/alpine");
        assert_eq!(route("a/x/y"), "a.example x/y");
        assert_eq!(route("a/b/c"), "ab.example c", "the longest prefix wins");
        assert_eq!(route("a/b"), "ab.example ", "a/b is the bare namespace of the longer prefix");
        assert_eq!(route("a"), "a.example ", "the bare prefix names no repository");
        assert_eq!(route("ab/c"), "hub.example ab/c", "a prefix matches whole components");
        assert!(m.route(&"team/app".parse().unwrap()).is_none(), "excepted from *: a local repository");
        assert_eq!(route("teams/app"), "hub.example teams/app");
        let only =
            Mirrors::new(&[settings("https://a.example", Prefix::Path("a".into()))], dir.path().join("s2")).unwrap();
        assert!(only.route(&"local/app".parse().unwrap()).is_none(), "outside every namespace: a local repository");
    }
}
