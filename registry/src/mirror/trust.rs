//! Trust metadata of a mirrored repository, passed through from the upstream's trust service unaltered.
//!
//! Versioned files (`N.root.json`, `N.targets.json`, targets by hash) never change, so they are cached for good.
//! Unversioned ones (`timestamp.json`, `root.json`, ...) are cached for the entry's freshness time, then asked
//! again; when the upstream cannot answer, the cached copy is served and the client's own expiry checks decide.
//! The mirror signs nothing: clients verify the publisher's signatures exactly as from the origin.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use wharf_client::RepositoryName;
use wharf_notary::route::{self, TrustPath};

use super::upstream::read_bounded;
use super::{denied, unavailable, Mirrors, Route};
use crate::error::{ApiError, Kind};
use crate::AppState;

/// The largest trust file a mirror takes from an upstream.
const MAX_FILE: usize = 16 << 20;

/// The route of `tail` (the path after `/v2/`) when it is trust data of a mirrored repository.
pub fn route_of(mirrors: &Mirrors, tail: &str) -> Option<(RepositoryName, Route, TrustPath, String)> {
    let (repo, path) = route::parse(tail).ok()?;
    let r = mirrors.route(&repo)?;
    let file = tail.split_once("/_tuf/")?.1.to_string();
    Some((repo, r, path, file))
}

pub async fn serve(st: &AppState, req: Request, found: (RepositoryName, Route, TrustPath, String)) -> Response {
    let (repo, r, path, file) = found;
    let answer = match (req.method(), &path) {
        (&Method::GET | &Method::HEAD, TrustPath::Latest(_) | TrustPath::Keys) => {
            get(st, &repo, &r, &file, false).await
        }
        (&Method::GET | &Method::HEAD, TrustPath::Version(..) | TrustPath::Target { .. }) => {
            get(st, &repo, &r, &file, true).await
        }
        _ => Err(denied(&repo, &r)),
    };
    let resp = match answer {
        Ok(bytes) => {
            let mut resp = ([("content-type", "application/json")], bytes).into_response();
            if req.method() == Method::HEAD {
                *resp.body_mut() = Body::empty();
            }
            resp
        }
        Err(e) => e.into_response(),
    };
    crate::with_api_version(resp)
}

async fn get(st: &AppState, repo: &RepositoryName, r: &Route, file: &str, forever: bool) -> Result<Vec<u8>, ApiError> {
    if r.repo.is_empty() {
        return Err(ApiError::new(Kind::NameUnknown, format!("{repo} names a mirrored namespace, not a repository")));
    }
    let key = format!("tuf:{file}");
    let now = st.clock.now();
    let cached = st.meta.mirror_cached(repo, &key).await?;
    if let Some(c) = &cached {
        if forever || now - c.fetched_at < r.upstream.settings.freshness.as_secs() as i64 {
            return Ok(c.content.clone());
        }
    }
    let upstream_path = format!("/v2/{}/_tuf/{file}", r.repo);
    let fetched = async {
        let resp = r.upstream.send(Method::GET, &upstream_path, &r.repo, &[]).await?;
        read_bounded(resp, MAX_FILE, &r.upstream.url(&upstream_path)).await
    };
    match fetched.await {
        Ok(bytes) => {
            st.meta.mirror_cache(repo, &key, &bytes, now).await?;
            Ok(bytes)
        }
        Err(e) if e.is_not_found() => Err(not_found(file)),
        Err(e) => match cached {
            Some(c) => {
                tracing::warn!(error = %e, repository = %repo, file, "upstream unavailable: serving cached trust metadata");
                Ok(c.content)
            }
            None => Err(unavailable(&e)),
        },
    }
}

fn not_found(file: &str) -> ApiError {
    ApiError::new(Kind::NameUnknown, format!("no trust metadata {file} upstream"))
}
