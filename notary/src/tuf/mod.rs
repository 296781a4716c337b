//! Wharf's trust service: a TUF 1.0 repository per image repository.
//!
//! For repository `R` the metadata base URL is `/v2/R/_tuf/` and the targets base URL `/v2/R/_tuf/targets/`, so any
//! TUF 1.0 client can refresh it. Publishers upload root, targets and delegated targets (signed offline); the
//! service checks every rule of the specification, then writes snapshot and timestamp with its own keys, and
//! renews them before they expire.

mod cache;
mod error;
pub mod fresh;
pub mod keys;
pub mod publish;
pub mod route;
pub mod v1;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures::StreamExt;
use wharf_format::tuf::{Envelope, Role, RoleName, Root, Targets};
use wharf_format::{Digest, RepositoryName};
use wharf_storage::{Clock, Metadata};

pub use error::NotaryError;
use publish::{Current, ServiceKeyIds, Upload};
pub use route::is_trust;
use route::TrustPath;
use wharf_format::seal::Kek;

/// Lifetimes and limits of the trust service.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// Seconds a timestamp is valid (default one day).
    pub timestamp_lifetime: i64,
    /// Seconds a snapshot is valid (default seven days).
    pub snapshot_lifetime: i64,
    /// The largest metadata document accepted, in bytes.
    pub max_metadata_size: usize,
    /// How often expiring metadata is looked for, in seconds.
    pub renew_check_secs: u64,
    /// Seconds a Notary v1 timestamp is valid (default 14 days, as notary-server's).
    pub notary_timestamp_lifetime: i64,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            timestamp_lifetime: 86_400,
            snapshot_lifetime: 7 * 86_400,
            max_metadata_size: 1 << 20,
            renew_check_secs: 60,
            notary_timestamp_lifetime: v1::TIMESTAMP_LIFETIME,
        }
    }
}

pub struct Notary {
    pub meta: Metadata,
    pub kek: Kek,
    pub clock: Box<dyn Clock>,
    pub settings: TrustSettings,
    cache: cache::DocCache,
    v1cache: v1::V1Cache,
}

impl Notary {
    pub fn new(meta: Metadata, kek: Kek, clock: Box<dyn Clock>, settings: TrustSettings) -> Notary {
        Notary { meta, kek, clock, settings, cache: cache::DocCache::default(), v1cache: v1::V1Cache::default() }
    }

    /// Drops cached documents of `repo` after a write.
    pub(crate) fn written(&self, repo: &RepositoryName) {
        self.cache.invalidate(repo);
    }
}

/// Derives the key-encryption key from `secret` and the installation's salt (created on first use).
pub async fn kek(meta: &Metadata, secret: &[u8]) -> Result<Kek, NotaryError> {
    let mut fresh = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut fresh);
    let salt = meta.setting_init("trust.kek_salt", &fresh).await?;
    let secret = secret.to_vec();
    // Argon2 is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || Kek::derive(&secret, &salt))
        .await
        .map_err(|e| NotaryError::Internal(e.to_string()))?
        .map_err(NotaryError::from)
}

/// The notary's router: every request under `/v2/` whose path has a `/_tuf/` segment.
pub fn app(state: Arc<Notary>) -> Router {
    Router::new()
        .route("/v2/{*rest}", any(dispatch))
        .route(
            "/_notary_server/health",
            axum::routing::get(|| async { ([("content-type", "text/plain; charset=utf-8")], "{}") }),
        )
        .layer(axum::middleware::from_fn(error::log_faults))
        .with_state(state)
}

async fn dispatch(State(n): State<Arc<Notary>>, req: Request) -> Response {
    let tail = req.uri().path().strip_prefix("/v2/").unwrap_or("").to_owned();
    if v1::is_v1(&tail) {
        return v1::dispatch(n, req).await;
    }
    let (repo, path) = match route::parse(&tail) {
        Ok(p) => p,
        Err(route::RouteError::Name) => return NotaryError::NameInvalid.into_response(),
        Err(_) => return NotaryError::NotFound.into_response(),
    };
    let method = req.method().clone();
    let result = match (method, path) {
        (Method::GET | Method::HEAD, TrustPath::Latest(role)) => latest(&n, &repo, &role).await,
        (Method::GET | Method::HEAD, TrustPath::Version(role, v)) => version(&n, &repo, &role, v).await,
        (Method::GET | Method::HEAD, TrustPath::Target { sha256, .. }) => target(&n, &repo, &sha256).await,
        (Method::GET, TrustPath::Keys) => list_keys(&n, &repo).await,
        (Method::POST, TrustPath::Keys) => ensure_keys(&n, &repo).await,
        (Method::POST, TrustPath::RotateKey(role)) => rotate_key(&n, &repo, &role).await,
        (Method::POST, TrustPath::Publish) => publish(&n, &repo, req.into_body()).await,
        (Method::GET, TrustPath::History) => history(&n, &repo).await,
        (Method::DELETE, TrustPath::Repository) => delete(&n, &repo).await,
        _ => Err(NotaryError::Method),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json_bytes(bytes: bytes::Bytes) -> Response {
    ([("content-type", "application/json")], bytes).into_response()
}

async fn latest(n: &Notary, repo: &RepositoryName, role: &RoleName) -> Result<Response, NotaryError> {
    if let Some(b) = n.cache.get(repo, role.as_str(), None) {
        return Ok(json_bytes(b));
    }
    let row = n.meta.trust_latest(repo, role).await?.ok_or(NotaryError::NotFound)?;
    let b = bytes::Bytes::from(row.content);
    n.cache.put(repo, role.as_str(), None, b.clone());
    Ok(json_bytes(b))
}

async fn version(n: &Notary, repo: &RepositoryName, role: &RoleName, v: u64) -> Result<Response, NotaryError> {
    if role == &RoleName::TopLevel(Role::Timestamp) {
        return Err(NotaryError::NotFound); // Timestamp is only ever served as timestamp.json.
    }
    if let Some(b) = n.cache.get(repo, role.as_str(), Some(v)) {
        return Ok(json_bytes(b));
    }
    let row = n.meta.trust_version(repo, role, v).await?.ok_or(NotaryError::NotFound)?;
    let b = bytes::Bytes::from(row.content);
    n.cache.put(repo, role.as_str(), Some(v), b.clone());
    Ok(json_bytes(b))
}

async fn target(n: &Notary, repo: &RepositoryName, sha256: &str) -> Result<Response, NotaryError> {
    let digest: Digest = format!("sha256:{sha256}").parse().map_err(|_| NotaryError::NotFound)?;
    let m = n.meta.manifest_by_digest(repo, &digest).await?.ok_or(NotaryError::NotFound)?;
    Ok(([("content-type", m.media_type.to_string())], m.content).into_response())
}

async fn list_keys(n: &Notary, repo: &RepositoryName) -> Result<Response, NotaryError> {
    let all = keys::load(&n.meta, &n.kek, repo).await?;
    Ok(axum::Json(describe_keys(&all)).into_response())
}

fn describe_keys(all: &[keys::ServiceKey]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for role in [Role::Timestamp, Role::Snapshot] {
        let mut ks: Vec<&keys::ServiceKey> = all.iter().filter(|k| k.role == role).collect();
        ks.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        out.insert(role.as_str().into(), ks.into_iter().map(keys::describe).collect());
    }
    serde_json::Value::Object(out)
}

/// Creates the service's timestamp and snapshot keys if the repository has none; answers the public keys (newest
/// first per role) for the publisher to name in root.
async fn ensure_keys(n: &Notary, repo: &RepositoryName) -> Result<Response, NotaryError> {
    let mut all = keys::load(&n.meta, &n.kek, repo).await?;
    let mut created = false;
    for role in [Role::Timestamp, Role::Snapshot] {
        if keys::newest(&all, role).is_none() {
            all.push(keys::create(&n.meta, &n.kek, repo, role, n.clock.now()).await?);
            created = true;
        }
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(describe_keys(&all))).into_response())
}

async fn rotate_key(n: &Notary, repo: &RepositoryName, role: &RoleName) -> Result<Response, NotaryError> {
    let role = match role {
        RoleName::TopLevel(r @ (Role::Timestamp | Role::Snapshot)) => *r,
        other => {
            return Err(NotaryError::Malformed(format!(
                "the service holds no {other} key: only timestamp and snapshot"
            )))
        }
    };
    let k = keys::create(&n.meta, &n.kek, repo, role, n.clock.now()).await?;
    Ok((StatusCode::CREATED, axum::Json(keys::describe(&k))).into_response())
}

/// Reads a body of at most `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, NotaryError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| NotaryError::Malformed(format!("reading body: {e}")))?;
        if out.len() + chunk.len() > max {
            return Err(NotaryError::TooLarge { what: "upload".into(), max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn current(
    n: &Notary,
    repo: &RepositoryName,
) -> Result<(Current, BTreeMap<String, wharf_storage::MetadataRow>), NotaryError> {
    let rows: BTreeMap<String, wharf_storage::MetadataRow> =
        n.meta.trust_latest_all(repo).await?.into_iter().map(|r| (r.role.to_string(), r)).collect();
    let mut cur = Current::default();
    for (role, row) in &rows {
        let env = Envelope::parse(&row.content)?;
        match role.as_str() {
            "root" => cur.root = Some(env.decode::<Root>()?),
            "targets" => cur.targets = Some((env.decode::<Targets>()?, env)),
            "snapshot" | "timestamp" => {}
            other => {
                cur.delegated.insert(other.to_string(), env.decode::<Targets>()?);
            }
        }
    }
    Ok((cur, rows))
}

/// Applies an upload atomically: validate, then write it with a new snapshot and timestamp in one transaction.
async fn publish(n: &Notary, repo: &RepositoryName, body: Body) -> Result<Response, NotaryError> {
    let max = n.settings.max_metadata_size;
    let bytes = read_body(body, max.saturating_mul(16)).await?;
    let upload: Upload = serde_json::from_slice(&bytes).map_err(|e| NotaryError::Malformed(e.to_string()))?;
    let docs = upload
        .root
        .iter()
        .map(|e| ("root".to_string(), e))
        .chain(upload.targets.iter().map(|e| ("targets".to_string(), e)))
        .chain(upload.delegations.iter().map(|(k, e)| (k.clone(), e)));
    for (name, env) in docs {
        if env.to_bytes()?.len() > max {
            return Err(NotaryError::TooLarge { what: format!("{name} metadata"), max });
        }
    }
    if upload.root.is_none() && upload.targets.is_none() && upload.delegations.is_empty() {
        return Err(NotaryError::Malformed("nothing to publish: give root, targets or delegations".into()));
    }
    let now = n.clock.now();
    let (cur, rows) = current(n, repo).await?;
    let service_keys = keys::load(&n.meta, &n.kek, repo).await?;
    if service_keys.is_empty() {
        return Err(NotaryError::NoServiceKey("timestamp"));
    }
    let ids = ServiceKeyIds {
        timestamp: service_keys.iter().filter(|k| k.role == Role::Timestamp).map(|k| k.key.key_id().clone()).collect(),
        snapshot: service_keys.iter().filter(|k| k.role == Role::Snapshot).map(|k| k.key.key_id().clone()).collect(),
    };
    // Signature checks over large metadata and the delegation walk are CPU work: off the async workers.
    let (cur, accepted) = tokio::task::spawn_blocking(move || {
        let accepted = publish::validate(&cur, &upload, &ids, now);
        (cur, accepted)
    })
    .await
    .map_err(|e| NotaryError::Internal(format!("validation task: {e}")))?;
    let accepted = accepted?;

    // The state after this publish.
    let root = accepted.root.as_ref().map(|(r, _)| r.clone()).or(cur.root.clone()).ok_or(NotaryError::NotFound)?;
    let mut new_rows = Vec::new();
    if let Some((r, env)) = &accepted.root {
        new_rows.push(fresh::row(RoleName::TopLevel(Role::Root), r.version, env.to_bytes()?, r.expires.0));
    }
    let targets = match (&accepted.targets, &cur.targets) {
        (Some((t, env)), _) => {
            new_rows.push(fresh::row(RoleName::TopLevel(Role::Targets), t.version, env.to_bytes()?, t.expires.0));
            Some(t.clone())
        }
        (None, Some((t, _))) => Some(t.clone()),
        (None, None) => None,
    };
    let mut delegated: BTreeMap<String, (Targets, u64)> =
        cur.delegated.iter().map(|(k, t)| (k.clone(), (t.clone(), t.version))).collect();
    for (name, t, env) in &accepted.delegated {
        new_rows.push(fresh::row(name.parse()?, t.version, env.to_bytes()?, t.expires.0));
        delegated.insert(name.clone(), (t.clone(), t.version));
    }
    let mut versions = serde_json::json!({ "root": root.version });
    if let Some(t) = &targets {
        let reachable = publish::reachable(t, &delegated);
        let snap_version = rows.get("snapshot").map_or(1, |r| r.version + 1);
        let snap = fresh::snapshot(snap_version, now + n.settings.snapshot_lifetime, t.version, &reachable);
        let snap_bytes = fresh::sign(&snap, &service_keys, &root, Role::Snapshot)?;
        let ts_version = rows.get("timestamp").map_or(1, |r| r.version + 1);
        let ts = fresh::timestamp(ts_version, now + n.settings.timestamp_lifetime, snap_version, &snap_bytes);
        let ts_bytes = fresh::sign(&ts, &service_keys, &root, Role::Timestamp)?;
        new_rows.push(fresh::row(
            RoleName::TopLevel(Role::Snapshot),
            snap_version,
            snap_bytes,
            now + n.settings.snapshot_lifetime,
        ));
        new_rows.push(fresh::row(
            RoleName::TopLevel(Role::Timestamp),
            ts_version,
            ts_bytes,
            now + n.settings.timestamp_lifetime,
        ));
        versions["targets"] = t.version.into();
        versions["snapshot"] = snap_version.into();
        versions["timestamp"] = ts_version.into();
        versions["delegations"] = serde_json::json!(reachable);
    }
    n.meta.trust_commit(repo, &new_rows, now).await?;
    n.written(repo);
    tracing::info!(repository = %repo, versions = %versions, "published trust metadata");
    Ok(axum::Json(versions).into_response())
}

async fn history(n: &Notary, repo: &RepositoryName) -> Result<Response, NotaryError> {
    let rows = n.meta.trust_history(repo).await?;
    if rows.is_empty() {
        return Err(NotaryError::NotFound);
    }
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "generation": r.generation, "role": r.role.as_str(), "version": r.version,
                "expires": wharf_format::tuf::format_time(r.expires),
                "created": wharf_format::tuf::format_time(r.created_at),
                "sha256": Digest::sha256_of(&r.content).hex(),
            })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "repository": repo.as_str(), "history": items })).into_response())
}

async fn delete(n: &Notary, repo: &RepositoryName) -> Result<Response, NotaryError> {
    let deleted = n.meta.trust_delete(repo).await?;
    n.written(repo);
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(NotaryError::NotFound)
    }
}
