//! Wharf's OCI Distribution v1.1 server: a thin axum edge over `wharf-storage`.
//!
//! Every request under `/v2/` goes through [`dispatch`]: the path is parsed once into an [`Endpoint`] and the
//! method picks a handler. Handlers take parsed types and delegate to storage.

pub mod admin;
#[cfg(feature = "cli")]
pub mod admin_cli;
#[cfg(feature = "cli")]
pub mod admin_ops;
pub mod auth;
mod blob;
pub mod check;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod gc;
mod listing;
mod manifest;
pub mod mirror;
mod observe;
pub mod ops;
pub mod policy;
mod referrers;
pub mod retention;
pub mod route;
pub mod serve;
pub mod ui;
mod upload;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use wharf_storage::{BlobStore, Metadata, Uploads};

pub use endpoint::Endpoint;
use error::{ApiError, Kind};

pub use wharf_storage::{Clock, SystemClock};

/// Limits enforced at the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_manifest_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_manifest_size: 4 << 20 }
    }
}

pub struct Registry {
    pub blobs: BlobStore,
    pub uploads: Uploads,
    pub meta: Metadata,
    pub limits: Limits,
    pub clock: Box<dyn Clock>,
    /// Blob GETs answer `307` to a presigned URL valid this long (S3 with `storage.redirect`).
    pub redirect: Option<std::time::Duration>,
    /// Mirrored namespaces (`None`: this server mirrors nothing).
    pub mirror: Option<Arc<mirror::Mirrors>>,
    /// The signature policy of `[[policy]]` (`None`: no rules, nothing is enforced).
    pub policy: Option<Arc<policy::Enforcer>>,
    /// Metrics, the recorder of audit rows and webhook deliveries, quotas, rate limits.
    pub ops: Arc<ops::Ops>,
    /// The web interface's settings.
    pub ui: ui::UiSettings,
}

pub type AppState = Arc<Registry>;

/// Parsers of untrusted input from private modules, reachable for the fuzz targets (`tests/fuzz`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::blob::parse_range;
    pub use crate::upload::parse_content_range;
}

/// The registry's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v2", get(base))
        .route("/v2/", get(base))
        .route("/v2/{*rest}", any(dispatch))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::new(Kind::NoSuchEndpoint, "no such endpoint") })
        .layer(axum::middleware::from_fn(observe::log_requests))
        .with_state(state)
}

async fn base() -> impl IntoResponse {
    ([("docker-distribution-api-version", "registry/2.0"), ("content-type", "application/json")], "{}")
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database and the object store answer (for load balancers and Kubernetes).
async fn readyz(State(st): State<AppState>) -> Response {
    let (db, store) = tokio::join!(st.meta.ping(), st.blobs.ping());
    let mut problems = Vec::new();
    if let Err(e) = db {
        problems.push(format!("database: {}", error::chain(&e)));
    }
    if let Err(e) = store {
        problems.push(format!("storage: {}", error::chain(&e)));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        tracing::warn!(problems = %problems.join("; "), "not ready");
        ApiError::new(Kind::NotReady, format!("not ready: {}", problems.join("; "))).into_response()
    }
}

async fn dispatch(State(st): State<AppState>, req: Request) -> Response {
    let tail = req.uri().path().strip_prefix("/v2/").unwrap_or("").to_owned();
    let endpoint = match endpoint::parse(&tail) {
        Ok(e) => e,
        Err(e) => return with_api_version(ApiError::from(e).into_response()),
    };
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    if let Some(route) = endpoint.repository().and_then(|r| Some((r, st.mirror.as_ref()?.route(r)?))) {
        let (repo, route) = (route.0.clone(), route.1);
        let resp = match (method, endpoint) {
            (Method::GET | Method::HEAD, Endpoint::Manifest(_, r)) => {
                mirror::manifest(&st, &route, &repo, &r, &parts).await
            }
            (Method::GET | Method::HEAD, Endpoint::Blob(_, d)) => mirror::blob(&st, &route, &repo, &d, &parts).await,
            (Method::GET, Endpoint::Tags(_)) => mirror::tags(&st, &route, &repo, &parts).await,
            (Method::GET, Endpoint::Referrers(_, d)) => mirror::referrers(&st, &route, &repo, &d, &parts).await,
            (Method::GET | Method::HEAD, Endpoint::ManifestBadReference(_)) => Err(ApiError::new(
                Kind::ManifestUnknown,
                "manifest unknown: the reference is neither a tag nor a digest",
            )),
            _ => Err(mirror::denied(&repo, &route)),
        };
        return with_api_version(resp.unwrap_or_else(IntoResponse::into_response));
    }
    let resp = match (method, endpoint) {
        (Method::GET, Endpoint::Catalog) => listing::catalog(&st, &parts).await,
        (Method::GET, Endpoint::Tags(repo)) => listing::tags(&st, &repo, &parts).await,
        (Method::GET | Method::HEAD, Endpoint::Manifest(repo, r)) => manifest::get(&st, &repo, &r, &parts).await,
        (Method::PUT, Endpoint::Manifest(repo, r)) => manifest::put(&st, &repo, &r, &parts, body).await,
        (Method::DELETE, Endpoint::Manifest(repo, r)) => manifest::delete(&st, &repo, &r, &parts).await,
        (Method::GET | Method::HEAD | Method::DELETE, Endpoint::ManifestBadReference(_)) => {
            Err(ApiError::new(Kind::ManifestUnknown, "manifest unknown: the reference is neither a tag nor a digest"))
        }
        (Method::PUT, Endpoint::ManifestBadReference(_)) => {
            Err(ApiError::new(Kind::TagInvalid, "invalid tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"))
        }
        (Method::GET | Method::HEAD, Endpoint::Blob(repo, d)) => blob::get(&st, &repo, &d, &parts).await,
        (Method::DELETE, Endpoint::Blob(repo, d)) => blob::delete(&st, &repo, &d, &parts).await,
        (Method::POST, Endpoint::UploadStart(repo)) => upload::start(&st, &repo, &parts, body).await,
        (Method::GET, Endpoint::Upload(repo, id)) => upload::status(&st, &repo, &id).await,
        (Method::PATCH, Endpoint::Upload(repo, id)) => upload::patch(&st, &repo, &id, &parts, body).await,
        (Method::PUT, Endpoint::Upload(repo, id)) => upload::put(&st, &repo, &id, &parts, body).await,
        (Method::DELETE, Endpoint::Upload(repo, id)) => upload::cancel(&st, &repo, &id).await,
        (Method::GET, Endpoint::Referrers(repo, d)) => referrers::get(&st, &repo, &d, &parts).await,
        _ => Err(ApiError::new(Kind::MethodNotAllowed, "method not allowed here")),
    };
    with_api_version(resp.unwrap_or_else(IntoResponse::into_response))
}

pub(crate) fn with_api_version(mut resp: Response) -> Response {
    resp.headers_mut().insert("docker-distribution-api-version", header::HeaderValue::from_static("registry/2.0"));
    resp
}

/// The query string's `key=value` pairs, decoded.
fn query_pairs(req: &Parts) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

fn query_param(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn header_str(req: &Parts, name: header::HeaderName) -> Option<&str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A response with no body and the given headers.
fn empty(status: StatusCode, headers: Vec<(&'static str, String)>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    // Header values here are formatted from typed values (digests, names, numbers); a failure is our bug, answered
    // as a server fault rather than an empty 200.
    b.header("content-length", "0")
        .body(Body::empty())
        .unwrap_or_else(|e| ApiError::internal(format!("building a response: {e}")).into_response())
}
