//! What a [`Change`] becomes: one event in Distribution's notification format (`notifications/event.go`: `id`,
//! `timestamp`, `action`, `target`, `request`, `actor`, `source`, with its JSON names), one delivery row per
//! endpoint whose filters want it, all carrying the same event id.
//!
//! Wharf's own actions use the same envelope: `tag` (a tag pointed at a manifest: `target.tag`, `target.digest`,
//! and `target.previousDigest` when it moved), `trust_publish` (`target.trustFormat`, `target.roles`),
//! `trust_delete` and `key_rotation` (`target.role`). Retention and collection removals of tags and manifests are
//! `delete` events made by the actor `gc` or `retention`; blob removals make none.

use serde_json::{json, Map, Value};
use wharf_storage::{Actor, Change, EventRow, Origin, UnixTime};

use super::{random_id, Action, NotifySettings};

/// The media type Distribution gives blobs whose type it does not know.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// The deliveries `change` makes: one per endpoint whose filters want it.
pub fn events(settings: &NotifySettings, origin: &Origin, change: &Change, now: UnixTime) -> Vec<EventRow> {
    if settings.endpoints.is_empty() {
        return Vec::new();
    }
    let Some((action, repository, target)) = target(settings, origin, change) else { return Vec::new() };
    let wanting: Vec<&str> =
        settings.endpoints.iter().filter(|e| e.wants(action, &repository)).map(|e| e.name.as_str()).collect();
    if wanting.is_empty() {
        return Vec::new();
    }
    let payload = event(settings, origin, action, target, now).to_string();
    wanting
        .into_iter()
        .map(|endpoint| EventRow {
            at: now,
            endpoint: endpoint.to_owned(),
            action: action.as_str().to_owned(),
            repository: repository.clone(),
            payload: payload.clone(),
        })
        .collect()
}

/// The whole event around `target`.
fn event(settings: &NotifySettings, origin: &Origin, action: Action, target: Value, now: UnixTime) -> Value {
    let timestamp = chrono::DateTime::from_timestamp(now, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut request = Map::new();
    request.insert("id".into(), origin.request_id.clone().into());
    if let Some(a) = origin.address {
        request.insert("addr".into(), a.to_string().into());
    }
    if let Some(h) = &origin.host {
        request.insert("host".into(), h.clone().into());
    }
    request.insert("method".into(), origin.method.clone().into());
    request.insert("useragent".into(), origin.user_agent.clone().unwrap_or_default().into());
    // Distribution leaves the actor's name out for anonymous requests.
    let actor = match &origin.actor {
        Actor::Anonymous => json!({}),
        a => json!({ "name": a.name() }),
    };
    json!({
        "id": random_id(),
        "timestamp": timestamp,
        "action": action.as_str(),
        "target": target,
        "request": request,
        "actor": actor,
        "source": { "addr": settings.source_addr, "instanceID": settings.instance_id },
    })
}

/// The action, repository and `target` of `change`; `None` for changes that make no event.
fn target(settings: &NotifySettings, origin: &Origin, change: &Change) -> Option<(Action, String, Value)> {
    let url = |repo: &str, kind: &str, digest: &str| match &origin.host {
        Some(host) => {
            let scheme = if settings.tls { "https" } else { "http" };
            format!("{scheme}://{host}/v2/{repo}/{kind}/{digest}")
        }
        None => String::new(),
    };
    let content = |repo: &str, kind: &str, media_type: &str, digest: &str, size: u64, tag: Option<&String>| {
        let mut t = json!({
            "mediaType": media_type, "size": size, "digest": digest, "length": size,
            "repository": repo, "url": url(repo, kind, digest),
        });
        if let Some(tag) = tag {
            t["tag"] = tag.as_str().into();
        }
        t
    };
    Some(match change {
        Change::ManifestPush { repository: r, digest, media_type, size, tag } => {
            (Action::Push, r.clone(), content(r, "manifests", media_type, digest, *size, tag.as_ref()))
        }
        Change::ManifestPull { repository: r, digest, media_type, size, tag } => {
            (Action::Pull, r.clone(), content(r, "manifests", media_type, digest, *size, tag.as_ref()))
        }
        Change::BlobPush { repository: r, digest, size } => {
            (Action::Push, r.clone(), content(r, "blobs", BLOB_MEDIA_TYPE, digest, *size, None))
        }
        Change::BlobPull { repository: r, digest, size } => {
            (Action::Pull, r.clone(), content(r, "blobs", BLOB_MEDIA_TYPE, digest, *size, None))
        }
        Change::ManifestDelete { repository: r, digest } | Change::BlobDelete { repository: r, digest } => {
            (Action::Delete, r.clone(), json!({ "digest": digest, "repository": r }))
        }
        Change::TagDelete { repository: r, tag, digest } => {
            let mut t = json!({ "repository": r, "tag": tag });
            if let Some(d) = digest {
                t["digest"] = d.as_str().into();
            }
            (Action::Delete, r.clone(), t)
        }
        Change::TagMove { repository: r, tag, from, to } => {
            let mut t = json!({ "digest": to, "repository": r, "tag": tag });
            if let Some(f) = from {
                t["previousDigest"] = f.as_str().into();
            }
            (Action::Tag, r.clone(), t)
        }
        Change::TrustPublish { repository: r, format, roles } => (
            Action::TrustPublish,
            r.clone(),
            json!({ "repository": r, "trustFormat": format.as_str(), "roles": roles }),
        ),
        Change::TrustDelete { repository: r, format } => {
            (Action::TrustDelete, r.clone(), json!({ "repository": r, "trustFormat": format.as_str() }))
        }
        Change::KeyRotation { repository: r, format, role } => {
            (Action::KeyRotation, r.clone(), json!({ "repository": r, "trustFormat": format.as_str(), "role": role }))
        }
        Change::Removal { what, repository: Some(r), digest, tag } if what != "blob" => {
            let mut t = json!({ "digest": digest, "repository": r });
            if let Some(tag) = tag {
                t["tag"] = tag.as_str().into();
            }
            (Action::Delete, r.clone(), t)
        }
        Change::Removal { .. } | Change::Login { .. } | Change::Account { .. } | Change::Grant { .. } => return None,
        Change::Admin { .. } => return None,
    })
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
