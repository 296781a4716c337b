//! The TUF 1.0 service: a TUF 1.0 repository per image repository.
//!
//! For repository `R` the metadata base URL is `/v2/R/_tuf/` and the targets base URL `/v2/R/_tuf/targets/`, so any
//! TUF 1.0 client can refresh it. Publishers upload root, targets and delegated targets (signed offline); the
//! service checks every rule of the specification (`validate`), then writes snapshot and timestamp with its own keys
//! (`publish`), and renews them before they expire (`renew`).

pub mod keys;
mod publish;
pub mod renew;
pub mod route;
pub mod validate;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use wharf_format::tuf::{Role, RoleName, TufError};
use wharf_format::{Digest, RepositoryName};
use wharf_storage::{Change, Origin, TrustFormat};

use crate::{Error, Notary};
use route::TrustPath;

/// A new service key of `role` for `repo`: recorded as a key rotation (the first one too).
fn rotation(repo: &RepositoryName, role: Role) -> Change {
    Change::KeyRotation { repository: repo.to_string(), format: TrustFormat::Tuf, role: role.as_str().to_owned() }
}

/// Answers one TUF 1.0 request (the path tail after `/v2/` has a `/_tuf/` segment).
pub async fn dispatch(n: Arc<Notary>, req: Request) -> Response {
    let tail = req.uri().path().strip_prefix("/v2/").unwrap_or("").to_owned();
    let (repo, path) = match route::parse(&tail) {
        Ok(p) => p,
        Err(route::RouteError::Name) => return Error::NameInvalid.into_response(),
        Err(_) => return Error::NotFound.into_response(),
    };
    let method = req.method().clone();
    let origin = crate::origin(&req);
    let result = match (method, path) {
        (Method::GET | Method::HEAD, TrustPath::Latest(role)) => latest(&n, &repo, &role).await,
        (Method::GET | Method::HEAD, TrustPath::Version(role, v)) => version(&n, &repo, &role, v).await,
        (Method::GET | Method::HEAD, TrustPath::Target { sha256, .. }) => target(&n, &repo, &sha256).await,
        (Method::GET, TrustPath::Keys) => list_keys(&n, &repo).await,
        (Method::POST, TrustPath::Keys) => ensure_keys(&n, &repo, &origin).await,
        (Method::POST, TrustPath::RotateKey(role)) => rotate_key(&n, &repo, &role, &origin).await,
        (Method::POST, TrustPath::Publish) => publish::publish(&n, &repo, req.into_body(), &origin).await,
        (Method::GET, TrustPath::History) => history(&n, &repo).await,
        (Method::DELETE, TrustPath::Repository) => delete(&n, &repo, &origin).await,
        _ => Err(Error::Method),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Maps a stored document's parse failure to the server fault it is: the store, not the request, is at fault.
pub(crate) fn stored(role: &str) -> impl Fn(TufError) -> Error {
    let role = role.to_owned();
    move |source| Error::Stored { role: role.clone(), source }
}

fn json_bytes(bytes: bytes::Bytes) -> Response {
    ([("content-type", "application/json")], bytes).into_response()
}

async fn latest(n: &Notary, repo: &RepositoryName, role: &RoleName) -> Result<Response, Error> {
    if let Some(b) = n.cache.get(repo, role.as_str()) {
        return Ok(json_bytes(b));
    }
    let row = n.meta.trust().latest(repo, role).await?.ok_or(Error::NotFound)?;
    let b = bytes::Bytes::from(row.content);
    n.cache.put(repo, role.to_string(), b.clone());
    Ok(json_bytes(b))
}

async fn version(n: &Notary, repo: &RepositoryName, role: &RoleName, v: u64) -> Result<Response, Error> {
    if role == &RoleName::TopLevel(Role::Timestamp) {
        return Err(Error::NotFound); // Timestamp is only ever served as timestamp.json.
    }
    let key = format!("{v}.{role}");
    if let Some(b) = n.cache.get(repo, &key) {
        return Ok(json_bytes(b));
    }
    let row = n.meta.trust().version(repo, role, v).await?.ok_or(Error::NotFound)?;
    let b = bytes::Bytes::from(row.content);
    n.cache.put(repo, key, b.clone());
    Ok(json_bytes(b))
}

async fn target(n: &Notary, repo: &RepositoryName, sha256: &str) -> Result<Response, Error> {
    let digest: Digest = format!("sha256:{sha256}").parse().map_err(|_| Error::NotFound)?;
    let m = n.meta.manifests().by_digest(repo, &digest).await?.ok_or(Error::NotFound)?;
    Ok(([("content-type", m.media_type.to_string())], m.content).into_response())
}

async fn list_keys(n: &Notary, repo: &RepositoryName) -> Result<Response, Error> {
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
async fn ensure_keys(n: &Notary, repo: &RepositoryName, origin: &Origin) -> Result<Response, Error> {
    let mut all = keys::load(&n.meta, &n.kek, repo).await?;
    let mut created = false;
    for role in [Role::Timestamp, Role::Snapshot] {
        if keys::newest(&all, role).is_none() {
            let journal = n.journal(origin, &[rotation(repo, role)]);
            all.push(keys::create(&n.meta, &n.kek, repo, role, n.clock.now(), &journal).await?);
            created = true;
        }
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(describe_keys(&all))).into_response())
}

async fn rotate_key(n: &Notary, repo: &RepositoryName, role: &RoleName, origin: &Origin) -> Result<Response, Error> {
    let role = match role {
        RoleName::TopLevel(r @ (Role::Timestamp | Role::Snapshot)) => *r,
        other => {
            return Err(Error::Malformed(format!("the service holds no {other} key: only timestamp and snapshot")))
        }
    };
    let journal = n.journal(origin, &[rotation(repo, role)]);
    let k = keys::create(&n.meta, &n.kek, repo, role, n.clock.now(), &journal).await?;
    Ok((StatusCode::CREATED, axum::Json(keys::describe(&k))).into_response())
}

async fn history(n: &Notary, repo: &RepositoryName) -> Result<Response, Error> {
    let rows = n.meta.trust().history(repo).await?;
    if rows.is_empty() {
        return Err(Error::NotFound);
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

async fn delete(n: &Notary, repo: &RepositoryName, origin: &Origin) -> Result<Response, Error> {
    let change = Change::TrustDelete { repository: repo.to_string(), format: TrustFormat::Tuf };
    let deleted = n.meta.trust().delete_recorded(repo, &n.journal(origin, &[change])).await?;
    n.written(repo);
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(Error::NotFound)
    }
}
