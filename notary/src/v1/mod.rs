//! The Notary v1 API (`docker trust`, `DOCKER_CONTENT_TRUST=1`, the `notary` CLI) beside the TUF 1.0 one: the same
//! server, key-encryption key, storage and access rules, separate documents (the two formats cannot share signed
//! bytes). Metadata is served as the exact stored bytes; timestamp (and a server-managed snapshot) are signed here
//! and renewed lazily when a read finds them expired.

pub mod keys;
pub mod route;
mod upload;
pub mod validate;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use wharf_format::notary::{self as nv, Gun, RoleName, Root, Signed, Timestamp, V1MetadataError};
use wharf_storage::{Change, ChangeQuery, Origin, TrustFormat, V1Row};

pub use route::{is_v1, V1Path};
/// The multipart parsing of an upload, reachable for the fuzz targets (`tests/fuzz`); not an API.
#[doc(hidden)]
pub use upload::read_parts;

use crate::error::V1Error;
use crate::Notary;

/// notary-server's default lifetimes of what it signs.
pub const SNAPSHOT_LIFETIME: i64 = 3 * 365 * 86_400;
pub const TIMESTAMP_LIFETIME: i64 = 14 * 86_400;
/// A read renews a timestamp this close to its expiry (at most half its lifetime), so clients never see one about to
/// lapse.
const RENEW_MARGIN: i64 = 3_600;
const CURRENT_CACHE: &str = "public, max-age=300, s-maxage=300, must-revalidate";
const FIXED_CACHE: &str = "public, max-age=2592000, s-maxage=2592000";

/// Which repositories the caller may read, put in a request's extensions by whatever authorizes it (the registry's
/// access-control gate); the global changefeed lists only collections of those. Without it, everything is visible.
#[derive(Clone)]
pub struct Visibility(pub Arc<dyn Fn(&wharf_format::RepositoryName) -> bool + Send + Sync>);

/// Answers one Notary v1 request (the path tail after `/v2/` has a `_trust` segment).
pub async fn dispatch(n: Arc<Notary>, req: Request) -> Response {
    let tail = req.uri().path().strip_prefix("/v2/").unwrap_or("").to_owned();
    let Some((gun, path)) = route::parse(&tail) else { return V1Error::NotFound.into_response() };
    let method = req.method().clone();
    let origin = crate::origin(&req);
    let result = match (method, gun, path) {
        (Method::GET, None, V1Path::Changefeed) => {
            let visible = req.extensions().get::<Visibility>().cloned();
            changefeed(&n, None, req.uri().query(), visible).await
        }
        (Method::GET, Some(g), V1Path::Changefeed) => changefeed(&n, Some(&g), req.uri().query(), None).await,
        (Method::GET | Method::HEAD, Some(g), V1Path::Current(role)) => current(&n, &g, &role).await,
        (Method::GET | Method::HEAD, Some(g), V1Path::ByHash(role, hex)) => {
            fixed(&n, &g, &role, Fixed::Hash(hex)).await
        }
        (Method::GET | Method::HEAD, Some(g), V1Path::ByVersion(role, v)) => {
            fixed(&n, &g, &role, Fixed::Version(v)).await
        }
        (Method::GET, Some(g), V1Path::Key(role)) => key(&n, &g, role.as_str(), false, &origin).await,
        (Method::POST, Some(g), V1Path::Key(role)) => key(&n, &g, role.as_str(), true, &origin).await,
        (Method::POST, Some(g), V1Path::Collection) => upload::post(&n, &g, req, &origin).await,
        (Method::DELETE, Some(g), V1Path::Collection) => delete(&n, &g, &origin).await,
        _ => Err(V1Error::NotFound),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn metadata(bytes: Bytes, cache: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, cache)], bytes).into_response()
}

fn text_json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn current(n: &Notary, gun: &Gun, role: &RoleName) -> Result<Response, V1Error> {
    let key = format!("current:{role}");
    if let Some(b) = n.v1cache.get(gun, &key) {
        return Ok(metadata(b, CURRENT_CACHE));
    }
    let row = match role.as_str() {
        "timestamp" => fresh_timestamp(n, gun).await?,
        "snapshot" => {
            let ts = fresh_timestamp(n, gun).await?;
            let hex = snapshot_hash(&ts.content)?;
            n.meta.notary_v1().by_hash(gun, role, &hex).await?.ok_or(V1Error::NotFound)?
        }
        _ => n.meta.notary_v1().current(gun, role).await?.ok_or(V1Error::NotFound)?,
    };
    let b = Bytes::from(row.content);
    n.v1cache.put(gun, key, b.clone());
    Ok(metadata(b, CURRENT_CACHE))
}

enum Fixed {
    Hash(String),
    Version(i64),
}

async fn fixed(n: &Notary, gun: &Gun, role: &RoleName, which: Fixed) -> Result<Response, V1Error> {
    let key = match &which {
        Fixed::Hash(h) => format!("hash:{role}:{h}"),
        Fixed::Version(v) => format!("version:{role}:{v}"),
    };
    if let Some(b) = n.v1cache.get(gun, &key) {
        return Ok(metadata(b, FIXED_CACHE));
    }
    let row = match which {
        // Only SHA-256 is indexed, as notary-server does; other lengths are valid routes and never found.
        Fixed::Hash(h) if h.len() == 64 => n.meta.notary_v1().by_hash(gun, role, &h).await?,
        Fixed::Hash(_) => None,
        Fixed::Version(v) => n.meta.notary_v1().by_version(gun, role, v).await?,
    };
    let b = Bytes::from(row.ok_or(V1Error::NotFound)?.content);
    n.v1cache.put(gun, key, b.clone());
    Ok(metadata(b, FIXED_CACHE))
}

/// The hex SHA-256 of the snapshot a timestamp names.
fn snapshot_hash(timestamp: &[u8]) -> Result<String, V1Error> {
    let doc = Signed::parse(timestamp).map_err(stored("timestamp"))?;
    let ts: Timestamp = doc.role("timestamp", "Timestamp").map_err(stored("timestamp"))?;
    let b64 = ts.meta.get("snapshot").and_then(|m| m.hashes.get("sha256")).ok_or(V1Error::NotFound)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| V1Error::Internal("stored timestamp has a bad snapshot hash"))?;
    Ok(hex::encode(raw))
}

/// The current timestamp, renewed first if it (or the snapshot it names, when the server signs snapshots) has
/// expired or is about to.
async fn fresh_timestamp(n: &Notary, gun: &Gun) -> Result<V1Row, V1Error> {
    let ts_role = RoleName::timestamp();
    for _ in 0..3 {
        let ts = n.meta.notary_v1().current(gun, &ts_role).await?.ok_or(V1Error::NotFound)?;
        let now = n.clock.now();
        let ts_doc = Signed::parse(&ts.content).map_err(stored("timestamp"))?;
        let snap_role = RoleName::snapshot();
        let snap = n
            .meta
            .notary_v1()
            .by_hash(gun, &snap_role, &snapshot_hash(&ts.content)?)
            .await?
            .ok_or(V1Error::NotFound)?;
        let snap_doc = Signed::parse(&snap.content).map_err(stored("snapshot"))?;
        let margin = RENEW_MARGIN.min(n.settings.notary_timestamp_lifetime / 2);
        if ts_doc.expires > now + margin && snap_doc.expires > now {
            return Ok(ts);
        }
        match renew(n, gun, &ts_doc, &snap_doc, now, margin).await {
            Ok(true) => crate::TrustCounters::count(&n.counters.v1_renewals),
            Err(V1Error::Storage(wharf_storage::Error::Conflict(_))) => continue,
            // An expired snapshot the publisher signs: only the publisher can renew it; serve what there is (a
            // client then refuses the expired snapshot, as it must).
            Ok(false) => return Ok(ts),
            Err(e) => {
                crate::TrustCounters::count(&n.counters.v1_failures);
                return Err(e);
            }
        }
    }
    Err(V1Error::Internal("timestamp renewal kept conflicting"))
}

/// Re-signs what the server may: the snapshot if it has expired and the server holds its key, and the timestamp if
/// it is within `margin` of expiry or names a snapshot just re-signed. `false`: nothing was due.
async fn renew(n: &Notary, gun: &Gun, ts: &Signed, snap: &Signed, now: i64, margin: i64) -> Result<bool, V1Error> {
    let root_row = n.meta.notary_v1().current(gun, &RoleName::root()).await?.ok_or(V1Error::NotFound)?;
    let root: Root = Signed::parse(&root_row.content).and_then(|d| d.role("root", "Root")).map_err(stored("root"))?;
    let held = keys::load(&n.meta, &n.kek, gun).await?;
    let mut rows = Vec::new();
    let mut snap_bytes = snap.raw.clone();
    let snapshot_signer = keys::signers(&held, &root, "snapshot").first().copied();
    if let (true, Some(signer)) = (snap.expires <= now, snapshot_signer) {
        let meta = snap.signed.get("meta").cloned().unwrap_or_default();
        let doc = serde_json::json!({
            "_type": "Snapshot", "expires": nv::format_time(now + SNAPSHOT_LIFETIME, 0),
            "meta": meta, "version": snap.version + 1,
        });
        snap_bytes =
            Signed::sign(&doc, &[&signer.signer]).map_err(|source| V1Error::Sign { role: "snapshot", source })?;
        rows.push(row(RoleName::snapshot(), snap.version + 1, snap_bytes.clone(), now));
    } else if ts.expires > now + margin {
        return Ok(false);
    }
    rows.push(sign_timestamp(&held, &root, ts.version + 1, &snap_bytes, now, n.settings.notary_timestamp_lifetime)?);
    n.meta.notary_v1().commit(gun, &rows, now).await?;
    n.v1cache.invalidate(gun);
    tracing::info!(gun = %gun, version = ts.version + 1, "renewed notary v1 timestamp");
    Ok(true)
}

/// The repository a collection's records name: the one its GUN signs, or the GUN itself if it names none.
pub(crate) fn repository(gun: &Gun) -> String {
    gun.repository().map_or_else(|| gun.to_string(), |r| r.to_string())
}

/// Maps a stored document's parse failure to the server fault it is: the store, not the request, is at fault.
pub(crate) fn stored(role: &str) -> impl FnOnce(V1MetadataError) -> V1Error {
    let role = role.to_owned();
    move |source| V1Error::Stored { role, source }
}

pub(crate) fn row(role: RoleName, version: i64, content: Vec<u8>, now: i64) -> V1Row {
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content));
    V1Row { role, version, sha256, content, created_at: now }
}

pub(crate) fn sign_timestamp(
    held: &[keys::HeldKey],
    root: &Root,
    version: i64,
    snapshot: &[u8],
    now: i64,
    lifetime: i64,
) -> Result<V1Row, V1Error> {
    let signer = keys::signers(held, root, "timestamp").first().copied().ok_or_else(|| V1Error::Invalid {
        name: "ErrBadRoot",
        msg: "no  timestamp keys exist on the server".into(),
        missing: None,
    })?;
    let doc = serde_json::json!({
        "_type": "Timestamp", "expires": nv::format_time(now + lifetime, 0),
        "meta": { "snapshot": nv::file_meta(snapshot) }, "version": version,
    });
    let bytes = Signed::sign(&doc, &[&signer.signer]).map_err(|source| V1Error::Sign { role: "timestamp", source })?;
    Ok(row(RoleName::timestamp(), version, bytes, now))
}

/// `GET <role>.key` answers the key the server signs with (creating one if it holds none for the role);
/// `POST` always makes a new one, which signs once a root lists it.
async fn key(n: &Notary, gun: &Gun, role: &str, rotate: bool, origin: &Origin) -> Result<Response, V1Error> {
    let held = keys::load(&n.meta, &n.kek, gun).await?;
    let existing = if rotate {
        None
    } else {
        let root = match n.meta.notary_v1().current(gun, &RoleName::root()).await? {
            Some(r) => Signed::parse(&r.content).and_then(|d| d.role::<Root>("root", "Root")).ok(),
            None => None,
        };
        keys::current(&held, root.as_ref(), role).cloned()
    };
    let k = match existing {
        Some(k) => k,
        None => {
            let change =
                Change::KeyRotation { repository: repository(gun), format: TrustFormat::NotaryV1, role: role.into() };
            let journal = n.journal(origin, &[change]);
            let k = keys::create(&n.meta, &n.kek, gun, role, &held, n.clock.now(), &journal).await?;
            tracing::info!(gun = %gun, role, key_id = %k.id, "created a notary v1 server key");
            k
        }
    };
    Ok(text_json(keys::public_json(&k)))
}

async fn delete(n: &Notary, gun: &Gun, origin: &Origin) -> Result<Response, V1Error> {
    let journal =
        n.journal(origin, &[Change::TrustDelete { repository: repository(gun), format: TrustFormat::NotaryV1 }]);
    n.meta.notary_v1().delete_recorded(gun, n.clock.now(), &journal).await?;
    n.v1cache.invalidate(gun);
    tracing::info!(gun = %gun, "deleted notary v1 collection");
    Ok(Body::empty().into_response())
}

async fn changefeed(
    n: &Notary,
    gun: Option<&Gun>,
    query: Option<&str>,
    visible: Option<Visibility>,
) -> Result<Response, V1Error> {
    let mut change_id = None;
    let mut records = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "change_id" => change_id = Some(v.into_owned()),
            "records" => records = Some(v.into_owned()),
            _ => {}
        }
    }
    let records = records.unwrap_or_default();
    let records: i64 = records
        .parse()
        .map_err(|_| V1Error::InvalidParameters(format!("invalid records parameter: {records:?} is not an integer")))?;
    let change_id = change_id.unwrap_or_default();
    let cursor: i64 = if change_id.is_empty() {
        0
    } else {
        change_id.parse().map_err(|_| {
            V1Error::InvalidParameters(format!("invalid change_id parameter: {change_id:?} is not an integer"))
        })?
    };
    let limit = match records {
        0 => 100,
        r => r.unsigned_abs().min(1000) as i64,
    };
    let backwards = records < 0 || cursor < 0;
    let after = if cursor < 0 || (backwards && cursor == 0) { None } else { Some(cursor) };
    let mut rows = n.meta.notary_v1().changes(gun, ChangeQuery { after, limit, backwards }).await?;
    if let Some(Visibility(may_read)) = visible {
        rows.retain(|r| r.gun.parse::<Gun>().ok().and_then(|g| g.repository()).is_some_and(|repo| may_read(&repo)));
    }
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "ID": r.id.to_string(), "CreatedAt": nv::format_time(r.created_at, 0), "GUN": r.gun,
                "Version": r.version, "SHA256": r.sha256, "Category": r.category,
            })
        })
        .collect();
    let body = serde_json::json!({ "count": records.len(), "records": records });
    Ok(text_json(body.to_string().into_bytes()))
}
