//! Trust metadata of a mirrored repository, passed through from the upstream's trust service unaltered.
//!
//! Only parsed, typed trust paths are forwarded ([`TrustPath`]): the upstream path is rebuilt from the role name,
//! version, hash and tag, each percent-encoded, never from the request's own text, so nothing can be resolved or
//! decoded into another path upstream. What is cached, and for how long:
//! - versioned files (`N.<role>.json`) and targets by hash never change: cached for good, a target under its hash
//!   alone, after its bytes matched that hash;
//! - `timestamp.json`, `root.json`, `keys`: cached for the entry's freshness time (`tag_freshness_secs`), then asked
//!   again; when the upstream cannot answer, the cached copy is served and the client's own expiry checks decide.
//!   Other unversioned files pass through uncached, so the cache holds at most these three per repository;
//! - the upstream's `404` for a root version (the next-root probe of every TUF client) is remembered for the
//!   freshness time, and served in place of an unreachable upstream, so verified pulls keep working through a warm
//!   mirror while the origin is down;
//! - nothing else: no error answer, no answer but `200`, nothing over the size limit.
//!
//! Cache keys start with `trust:` (`tuf:` rows of earlier versions, which could hold other answers, are never read).
//! The mirror signs nothing: clients verify the publisher's signatures exactly as from the origin.

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use wharf_format::tuf::{Role, RoleName};
use wharf_format::RepositoryName;
use wharf_notary::tuf::route::TrustPath;

use super::upstream::{read_bounded, UpstreamError};
use super::{denied, unavailable, Route};
use crate::error::{ApiError, Kind};
use crate::AppState;

/// The largest trust file a mirror takes from an upstream.
const MAX_FILE: usize = 16 << 20;

/// How one trust file is fetched and kept.
#[derive(Debug, PartialEq, Eq)]
struct File {
    /// The path under the upstream repository's `_tuf/`, built from typed parts.
    upstream: String,
    /// The cache key, or `None` when the file passes through uncached.
    key: Option<String>,
    /// Cached for good (versioned), or for the freshness time.
    forever: bool,
    /// The SHA-256 the bytes must have (a target by hash).
    sha256: Option<String>,
    /// A `404` for it is remembered (a root version).
    remember_missing: bool,
}

/// The file a read of `path` names; `None` for paths a mirror does not pass through.
fn file(path: &TrustPath) -> Option<File> {
    let unversioned = |name: String, cached: bool| File {
        key: cached.then(|| format!("trust:{name}")),
        upstream: name,
        forever: false,
        sha256: None,
        remember_missing: false,
    };
    Some(match path {
        TrustPath::Latest(role) => {
            let cached = matches!(role, RoleName::TopLevel(Role::Timestamp | Role::Root));
            unversioned(format!("{}.json", encode(role.as_str())), cached)
        }
        TrustPath::Keys => unversioned("keys".into(), true),
        TrustPath::Version(role, n) => {
            let name = format!("{n}.{}.json", encode(role.as_str()));
            File {
                key: Some(format!("trust:{name}")),
                upstream: name,
                forever: true,
                sha256: None,
                remember_missing: *role == RoleName::TopLevel(Role::Root),
            }
        }
        TrustPath::Target { sha256, name } => File {
            upstream: format!("targets/{}.{}", encode(sha256), encode(name)),
            key: Some(format!("trust:targets/{sha256}")),
            forever: true,
            sha256: Some(sha256.clone()),
            remember_missing: false,
        },
        TrustPath::RotateKey(_) | TrustPath::Publish | TrustPath::History | TrustPath::Repository => return None,
    })
}

/// Percent-encodes everything outside RFC 3986's unreserved characters. The parsed names are already within them;
/// this keeps the guarantee local.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn serve(st: &AppState, req: Request, found: (RepositoryName, Route, TrustPath)) -> Response {
    let (repo, r, path) = found;
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let answer = match (read, file(&path)) {
        (true, Some(f)) => get(st, &repo, &r, &f).await,
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

/// A trust file of the upstream repository through this cache, for the mirror's own verification
/// ([`crate::policy::upstream`]): the same keys and lifetimes as a client's read. `Ok(None)`: the upstream has no
/// such file (or answered so within the freshness time).
pub(crate) async fn fetch(
    st: &AppState,
    repo: &RepositoryName,
    r: &Route,
    path: &TrustPath,
) -> Result<Option<Vec<u8>>, ApiError> {
    let f = file(path).ok_or_else(|| ApiError::internal(format!("{path:?} is not a readable trust path")))?;
    match get(st, repo, r, &f).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind == Kind::NameUnknown => Ok(None),
        Err(e) => Err(e),
    }
}

async fn get(st: &AppState, repo: &RepositoryName, r: &Route, f: &File) -> Result<Vec<u8>, ApiError> {
    if r.repo.is_empty() {
        return Err(ApiError::new(Kind::NameUnknown, format!("{repo} names a mirrored namespace, not a repository")));
    }
    let now = st.clock.now();
    let freshness = r.upstream.settings.freshness.as_secs() as i64;
    let cached = match &f.key {
        Some(k) => st.meta.mirror().cached(repo, k).await?,
        None => None,
    };
    if let Some(c) = &cached {
        if f.forever || now - c.fetched_at < freshness {
            return Ok(c.content.clone());
        }
    }
    let missing_key = f.remember_missing.then(|| format!("tuf-missing:{}", f.upstream));
    let missing = match &missing_key {
        Some(k) => st.meta.mirror().cached(repo, k).await?,
        None => None,
    };
    if missing.as_ref().is_some_and(|m| now - m.fetched_at < freshness) {
        return Err(not_found(&f.upstream));
    }
    let upstream_path = format!("/v2/{}/_tuf/{}", upstream_repo(&r.repo), f.upstream);
    let url = r.upstream.url(&upstream_path);
    let fetched = async {
        let resp = r.upstream.send(Method::GET, &upstream_path, &r.repo, &[]).await?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(UpstreamError::Status { url: url.clone(), status: resp.status() });
        }
        let bytes = read_bounded(resp, MAX_FILE, &url).await?;
        match &f.sha256 {
            Some(want) if hex::encode(Sha256::digest(&bytes)) != *want => {
                Err(UpstreamError::Fault { url: url.clone(), reason: "target bytes do not match their hash".into() })
            }
            _ => Ok(bytes),
        }
    };
    match fetched.await {
        Ok(bytes) => {
            if let Some(k) = &f.key {
                st.meta.mirror().cache(repo, k, &bytes, now).await?;
            }
            Ok(bytes)
        }
        Err(e) if e.is_not_found() => {
            if let Some(k) = &missing_key {
                st.meta.mirror().cache(repo, k, b"", now).await?;
            }
            Err(not_found(&f.upstream))
        }
        Err(e) => match (cached, missing) {
            (Some(c), _) => {
                tracing::warn!(error = %e, repository = %repo, file = %f.upstream, "upstream unavailable: serving cached trust metadata");
                Ok(c.content)
            }
            (None, Some(_)) => {
                tracing::warn!(error = %e, repository = %repo, file = %f.upstream, "upstream unavailable: serving its last answer, not found");
                Err(not_found(&f.upstream))
            }
            (None, None) => Err(unavailable(&e)),
        },
    }
}

/// The upstream repository's name, component by component percent-encoded (names are already in the safe set).
fn upstream_repo(name: &str) -> String {
    name.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn not_found(file: &str) -> ApiError {
    ApiError::new(Kind::NameUnknown, format!("no trust metadata {file} upstream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files() {
        let h = "ab".repeat(32);
        let path = |tail: &str| wharf_notary::tuf::route::parse(&format!("m/x/_tuf/{tail}")).map(|(_, p)| p).unwrap();
        let f = file(&path("timestamp.json")).unwrap();
        assert_eq!(
            (f.upstream.as_str(), f.key.as_deref(), f.forever),
            ("timestamp.json", Some("trust:timestamp.json"), false)
        );
        let f = file(&path("release-team.json")).unwrap();
        assert_eq!(f.key, None, "other unversioned files pass through uncached");
        let f = file(&path("3.root.json")).unwrap();
        assert!(f.forever && f.remember_missing);
        assert!(!file(&path("3.targets.json")).unwrap().remember_missing);
        let f = file(&path(&format!("targets/{h}.v1.0"))).unwrap();
        assert_eq!(f.upstream, format!("targets/{h}.v1.0"));
        assert_eq!(f.key, Some(format!("trust:targets/{h}")), "a target is cached under its hash alone");
        assert_eq!(f.sha256, Some(h));
        assert!(file(&path("publish")).is_none());
        assert_eq!(encode("a/../b%"), "a%2F..%2Fb%25");
        assert_eq!(upstream_repo("team/app"), "team/app");
    }
}
