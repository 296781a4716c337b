//! `POST /v2/<name>/_tuf/publish`: an upload of root, targets and delegated targets, read with bounded sizes,
//! checked against the stored state by `validate`, and written with a new snapshot and timestamp signed by the
//! service's keys, in one transaction.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use wharf_format::tuf::{Envelope, Role, RoleName, Root, Targets};
use wharf_format::RepositoryName;
use wharf_storage::{Change, Origin, TrustFormat};

use super::validate::{self, Current, ServiceKeyIds, Upload};
use super::{keys, renew, stored};
use crate::{Error, Notary};

/// Reads a body of at most `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(Error::Body)?;
        if out.len() + chunk.len() > max {
            return Err(Error::TooLarge { what: "upload".into(), max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn current(
    n: &Notary,
    repo: &RepositoryName,
) -> Result<(Current, BTreeMap<String, wharf_storage::MetadataRow>), Error> {
    let rows: BTreeMap<String, wharf_storage::MetadataRow> =
        n.meta.trust().latest_all(repo).await?.into_iter().map(|r| (r.role.to_string(), r)).collect();
    let mut cur = Current::default();
    for (role, row) in &rows {
        let env = Envelope::parse(&row.content).map_err(stored(role))?;
        match role.as_str() {
            "root" => cur.root = Some(env.decode::<Root>().map_err(stored(role))?),
            "targets" => cur.targets = Some((env.decode::<Targets>().map_err(stored(role))?, env)),
            "snapshot" | "timestamp" => {}
            other => {
                cur.delegated.insert(other.to_string(), env.decode::<Targets>().map_err(stored(role))?);
            }
        }
    }
    Ok((cur, rows))
}

/// Applies an upload atomically: validate, then write it with a new snapshot and timestamp in one transaction.
pub(super) async fn publish(n: &Notary, repo: &RepositoryName, body: Body, origin: &Origin) -> Result<Response, Error> {
    let max = n.settings.max_metadata_size;
    let bytes = read_body(body, max.saturating_mul(16)).await?;
    let upload: Upload = serde_json::from_slice(&bytes).map_err(Error::UploadJson)?;
    let docs = upload
        .root
        .iter()
        .map(|e| ("root".to_string(), e))
        .chain(upload.targets.iter().map(|e| ("targets".to_string(), e)))
        .chain(upload.delegations.iter().map(|(k, e)| (k.clone(), e)));
    for (name, env) in docs {
        if env.to_bytes()?.len() > max {
            return Err(Error::TooLarge { what: format!("{name} metadata"), max });
        }
    }
    if upload.root.is_none() && upload.targets.is_none() && upload.delegations.is_empty() {
        return Err(Error::Malformed("nothing to publish: give root, targets or delegations".into()));
    }
    let now = n.clock.now();
    let (cur, rows) = current(n, repo).await?;
    let cur_root_version = cur.root.as_ref().map(|r| r.version);
    let service_keys = keys::load(&n.meta, &n.kek, repo).await?;
    if service_keys.is_empty() {
        return Err(Error::NoServiceKey("timestamp"));
    }
    let ids = ServiceKeyIds {
        timestamp: service_keys.iter().filter(|k| k.role == Role::Timestamp).map(|k| k.key.key_id().clone()).collect(),
        snapshot: service_keys.iter().filter(|k| k.role == Role::Snapshot).map(|k| k.key.key_id().clone()).collect(),
    };
    // Signature checks over large metadata and the delegation walk are CPU work: off the async workers.
    let (cur, accepted) = tokio::task::spawn_blocking(move || {
        let accepted = validate::validate(&cur, &upload, &ids, now);
        (cur, accepted)
    })
    .await
    .map_err(Error::Task)?;
    let accepted = accepted?;

    // The state after this publish.
    let root = accepted.root.as_ref().map(|(r, _)| r.clone()).or(cur.root.clone()).ok_or(Error::NotFound)?;
    let mut new_rows = Vec::new();
    if let Some((r, env)) = &accepted.root {
        new_rows.push(renew::row(RoleName::TopLevel(Role::Root), r.version, env.to_bytes()?, r.expires.0));
    }
    let targets = match (&accepted.targets, &cur.targets) {
        (Some((t, env)), _) => {
            new_rows.push(renew::row(RoleName::TopLevel(Role::Targets), t.version, env.to_bytes()?, t.expires.0));
            Some(t.clone())
        }
        (None, Some((t, _))) => Some(t.clone()),
        (None, None) => None,
    };
    let mut delegated: BTreeMap<String, (Targets, u64)> =
        cur.delegated.iter().map(|(k, t)| (k.clone(), (t.clone(), t.version))).collect();
    for (name, t, env) in &accepted.delegated {
        new_rows.push(renew::row(name.parse()?, t.version, env.to_bytes()?, t.expires.0));
        delegated.insert(name.clone(), (t.clone(), t.version));
    }
    let mut versions = serde_json::json!({ "root": root.version });
    if let Some(t) = &targets {
        let reachable = validate::reachable(t, &delegated);
        let snap_version = rows.get("snapshot").map_or(1, |r| r.version + 1);
        let snap = renew::snapshot(snap_version, now + n.settings.snapshot_lifetime, t.version, &reachable);
        let snap_bytes = renew::sign(&snap, &service_keys, &root, Role::Snapshot)?;
        let ts_version = rows.get("timestamp").map_or(1, |r| r.version + 1);
        let ts = renew::timestamp(ts_version, now + n.settings.timestamp_lifetime, snap_version, &snap_bytes);
        let ts_bytes = renew::sign(&ts, &service_keys, &root, Role::Timestamp)?;
        new_rows.push(renew::row(
            RoleName::TopLevel(Role::Snapshot),
            snap_version,
            snap_bytes,
            now + n.settings.snapshot_lifetime,
        ));
        new_rows.push(renew::row(
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
    // Recorded: the publish, with the roles written; a new root over an old one is also a (root) key rotation.
    let roles = new_rows.iter().map(|r| r.role.to_string()).collect();
    let mut changes = vec![Change::TrustPublish { repository: repo.to_string(), format: TrustFormat::Tuf, roles }];
    if accepted.root.is_some() && cur_root_version.is_some() {
        changes.push(Change::KeyRotation {
            repository: repo.to_string(),
            format: TrustFormat::Tuf,
            role: "root".into(),
        });
    }
    n.meta.trust().commit_recorded(repo, &new_rows, now, &n.journal(origin, &changes)).await?;
    n.written(repo);
    tracing::info!(repository = %repo, versions = %versions, "published trust metadata");
    Ok(axum::Json(versions).into_response())
}
