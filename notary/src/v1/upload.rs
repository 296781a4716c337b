//! `POST /v2/<gun>/_trust/tuf/`: the atomic multipart upload. Parts are read with bounded sizes, named by their file
//! name (a role; `.json` stripped), checked in role order by `validate`, and written with the server's snapshot (if
//! it signs one) and a new timestamp in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use wharf_format::notary::{self as nv, Gun, RoleName, Signed};
use wharf_storage::{Change, Origin, TrustFormat};

use super::validate::{self, Part, SnapshotPlan};
use super::{keys, row, sign_timestamp, SNAPSHOT_LIFETIME};
use crate::error::V1Error;
use crate::Notary;

/// At most this many parts (four base roles and delegations).
const MAX_PARTS: usize = 256;

pub async fn post(n: &Notary, gun: &Gun, req: Request, origin: &Origin) -> Result<Response, V1Error> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let parts = read_parts(&content_type, req.into_body(), n.settings.max_metadata_size).await?;
    publish(n, gun, parts, origin).await?;
    Ok(Body::empty().into_response())
}

/// Reads the parts of a `multipart/form-data` upload, each at most `max_doc` bytes (sixteen times that in all), into
/// roles and parsed documents.
pub async fn read_parts(content_type: &str, body: Body, max_doc: usize) -> Result<Vec<Part>, V1Error> {
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| V1Error::MalformedUpload("not multipart/form-data".into()))?;
    let limits = multer::SizeLimit::new().whole_stream(max_doc.saturating_mul(16) as u64).per_field(max_doc as u64);
    let stream = body.into_data_stream().map(|r| r.map_err(std::io::Error::other));
    let mut form = multer::Multipart::with_constraints(stream, boundary, multer::Constraints::new().size_limit(limits));
    let mut parts = Vec::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        if parts.len() == MAX_PARTS {
            return Err(V1Error::MalformedUpload(format!("more than {MAX_PARTS} parts")));
        }
        let name = field.file_name().unwrap_or("").to_owned();
        let name = name.strip_suffix(".json").unwrap_or(&name).to_owned();
        if name.is_empty() {
            return Err(V1Error::NoFilename);
        }
        let role: RoleName = name.parse().map_err(|_| V1Error::InvalidRole(name.clone()))?;
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let doc = Signed::parse(&bytes).map_err(V1Error::MalformedJson)?;
        parts.push(Part { role, doc });
    }
    Ok(parts)
}

fn multipart_error(e: multer::Error) -> V1Error {
    match e {
        multer::Error::StreamSizeExceeded { limit } | multer::Error::FieldSizeExceeded { limit, .. } => {
            V1Error::MalformedUpload(format!("the upload exceeds the {limit}-byte limit"))
        }
        other => V1Error::Multipart(other),
    }
}

async fn publish(n: &Notary, gun: &Gun, parts: Vec<Part>, origin: &Origin) -> Result<(), V1Error> {
    let now = n.clock.now();
    let rows = n.meta.notary_v1().current_all(gun).await?;
    let prev_ts = rows.iter().find(|r| r.role.as_str() == "timestamp").map_or(0, |r| r.version);
    let had_root = rows.iter().any(|r| r.role.as_str() == "root");
    let stored: BTreeMap<String, Vec<u8>> = rows.into_iter().map(|r| (r.role.to_string(), r.content)).collect();
    let held = keys::load(&n.meta, &n.kek, gun).await?;
    let ids =
        |role: &str| -> BTreeSet<String> { held.iter().filter(|k| k.role == role).map(|k| k.id.clone()).collect() };
    let (snap_ids, ts_ids, g) = (ids("snapshot"), ids("timestamp"), gun.clone());
    // Signature checks are CPU work: off the async workers.
    let accepted = tokio::task::spawn_blocking(move || validate::validate(&g, now, parts, &stored, &snap_ids, &ts_ids))
        .await
        .map_err(V1Error::Task)??;

    let mut new_rows: Vec<_> = accepted.uploaded.into_iter().map(|(r, v, b)| row(r, v, b, now)).collect();
    let snapshot = match accepted.snapshot {
        SnapshotPlan::Uploaded { version, bytes } => row(RoleName::snapshot(), version, bytes, now),
        SnapshotPlan::Generate { version, meta } => {
            let signer = keys::signers(&held, &accepted.root, "snapshot")
                .first()
                .copied()
                .ok_or_else(|| V1Error::Internal("snapshot key vanished"))?;
            let doc = serde_json::json!({
                "_type": "Snapshot", "expires": nv::format_time(now + SNAPSHOT_LIFETIME, 0),
                "meta": meta, "version": version,
            });
            let bytes =
                Signed::sign(&doc, &[&signer.signer]).map_err(|source| V1Error::Sign { role: "snapshot", source })?;
            row(RoleName::snapshot(), version, bytes, now)
        }
    };
    let lifetime = n.settings.notary_timestamp_lifetime;
    let timestamp = sign_timestamp(&held, &accepted.root, prev_ts + 1, &snapshot.content, now, lifetime)?;
    let versions: Vec<String> = new_rows.iter().map(|r| format!("{}={}", r.role, r.version)).collect();
    new_rows.push(snapshot);
    new_rows.push(timestamp);
    // Recorded: the publish, with the roles written; a new root over an old one is also a (root) key rotation.
    let repository = super::repository(gun);
    let format = TrustFormat::NotaryV1;
    let roles: Vec<String> = new_rows.iter().map(|r| r.role.to_string()).collect();
    let mut changes = vec![Change::TrustPublish { repository: repository.clone(), format, roles: roles.clone() }];
    if had_root && roles.iter().any(|r| r == "root") {
        changes.push(Change::KeyRotation { repository, format, role: "root".into() });
    }
    let journal = n.journal(origin, &changes);
    n.meta.notary_v1().commit_recorded(gun, &new_rows, now, &journal).await.map_err(|e| match e {
        wharf_storage::Error::Conflict(_) => V1Error::Version,
        other => V1Error::Storage(other),
    })?;
    n.v1cache.invalidate(gun);
    tracing::info!(gun = %gun, roles = %versions.join(","), timestamp = prev_ts + 1, "published notary v1 metadata");
    Ok(())
}
