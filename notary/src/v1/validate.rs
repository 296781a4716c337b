//! notary-server's rules for an upload, in its order (so the same error wins): root, then targets roles parents
//! first, then snapshot, then the server's own keys. Pure: the caller passes the stored state, the held key ids and
//! the time; the signing and the write happen after.

use std::collections::{BTreeMap, BTreeSet};

use wharf_format::notary::{
    self as nv, check_delegation_paths, check_file, check_root, check_targets, check_threshold, parent_of,
    restrict_paths, FileMeta, Gun, RoleKeys, RoleName, Root, Signed, Snapshot, Targets,
};

use super::stored as stored_fault;
use crate::error::V1Error;

/// One part of an upload: the role its file name gave, and the parsed document.
pub struct Part {
    pub role: RoleName,
    pub doc: Signed,
}

/// What the server will do with a valid upload.
pub struct Accepted {
    /// The root in force after the upload.
    pub root: Root,
    /// Uploaded roles to store, root and targets roles (snapshot is in `snapshot`).
    pub uploaded: Vec<(RoleName, i64, Vec<u8>)>,
    pub snapshot: SnapshotPlan,
}

pub enum SnapshotPlan {
    /// The client signed it: store as is.
    Uploaded { version: i64, bytes: Vec<u8> },
    /// The server signs the next one with this meta.
    Generate { version: i64, meta: BTreeMap<String, FileMeta> },
}

fn err(name: &'static str, e: impl std::fmt::Display) -> V1Error {
    V1Error::Invalid { name, msg: e.to_string(), missing: None }
}

/// Uploaded roles to store: (role, version, bytes).
type Uploaded = Vec<(RoleName, i64, Vec<u8>)>;

/// Checks an upload against the stored current documents (by role name) and the ids of the snapshot and timestamp
/// keys the server holds.
pub fn validate(
    gun: &Gun,
    now: i64,
    parts: Vec<Part>,
    stored: &BTreeMap<String, Vec<u8>>,
    held_snapshot: &BTreeSet<String>,
    held_timestamp: &BTreeSet<String>,
) -> Result<Accepted, V1Error> {
    let mut parts: BTreeMap<String, Part> = parts.into_iter().map(|p| (p.role.to_string(), p)).collect();
    // notary-server ignores an uploaded timestamp: it always makes its own.
    parts.remove("timestamp");
    let mut uploaded = Uploaded::new();
    let prev_root = stored_role::<Root>(stored, "root", "Root")?;
    let root = match parts.remove("root") {
        Some(p) => root_part(gun, now, p, prev_root.as_ref(), &mut uploaded)?,
        None => {
            prev_root.ok_or_else(|| err("ErrValidation", "no pre-existing root and no root provided in update."))?
        }
    };
    let targets: Vec<Part> = {
        let names: Vec<String> = parts.keys().filter(|n| n.starts_with("targets")).cloned().collect();
        names.iter().filter_map(|n| parts.remove(n)).collect()
    };
    targets_parts(&root, now, stored, targets, &mut uploaded)?;
    let files = snapshot_files(stored, &uploaded);
    let snapshot = match parts.remove("snapshot") {
        Some(p) => uploaded_snapshot(&root, now, p, &files)?,
        None => generated_snapshot(&root, stored, &files, &uploaded, held_snapshot)?,
    };
    if !root_role(&root, "timestamp").keyids.iter().any(|id| held_timestamp.contains(id)) {
        return Err(err("ErrBadRoot", "no  timestamp keys exist on the server"));
    }
    Ok(Accepted { root, uploaded, snapshot })
}

/// An uploaded root: the same version as the stored one or the next, and every rule of `check_root`.
fn root_part(gun: &Gun, now: i64, p: Part, prev: Option<&Root>, uploaded: &mut Uploaded) -> Result<Root, V1Error> {
    let current = prev.map_or(1, |r| r.version);
    if p.doc.version != current && p.doc.version != current + 1 {
        return Err(err(
            "ErrBadRoot",
            format!("Root modifications must increment the version. Current {current}, new {}", p.doc.version),
        ));
    }
    let root = check_root(&p.doc, gun.as_str(), now, prev).map_err(|e| err("ErrBadRoot", e))?;
    uploaded.push((p.role, p.doc.version, p.doc.raw));
    Ok(root)
}

/// Uploaded targets roles, parents before children: each signed by the keys its delegator names, delegated roles
/// only within the paths their ancestors allow.
fn targets_parts(
    root: &Root,
    now: i64,
    stored: &BTreeMap<String, Vec<u8>>,
    mut parts: Vec<Part>,
    uploaded: &mut Uploaded,
) -> Result<(), V1Error> {
    parts.sort_by_key(|p| (p.role.as_str().matches('/').count(), p.role.to_string()));
    // The roles checked so far, with the paths each may sign.
    let mut checked: BTreeMap<String, (Targets, Vec<String>)> = BTreeMap::new();
    for p in parts {
        let name = p.role.to_string();
        let d = if name == "targets" {
            Delegation { keys: root.keys.clone(), spec: root_role(root, "targets"), paths: vec![String::new()] }
        } else {
            delegation(&name, stored, &checked)?
        };
        let t = check_targets(&name, &p.doc, &d.keys, &d.spec, now).map_err(|e| err("ErrBadTargets", e))?;
        if name != "targets" {
            check_delegation_paths(&name, &t, &d.paths).map_err(|e| err("ErrBadTargets", e))?;
        }
        checked.insert(name, (t, d.paths));
        uploaded.push((p.role, p.doc.version, p.doc.raw));
    }
    Ok(())
}

/// What a targets role is checked with: the keys its delegator lists, its key ids and threshold, and the paths it
/// may really sign.
struct Delegation {
    keys: BTreeMap<String, nv::Key>,
    spec: RoleKeys,
    paths: Vec<String>,
}

/// The delegation of the delegated role `name`: from its parent in this upload (`checked`), else the stored parent.
fn delegation(
    name: &str,
    stored: &BTreeMap<String, Vec<u8>>,
    checked: &BTreeMap<String, (Targets, Vec<String>)>,
) -> Result<Delegation, V1Error> {
    let parent_name = parent_of(name).unwrap_or("targets");
    let (parent, parent_paths) = match checked.get(parent_name) {
        Some(t) => t.clone(),
        None => {
            let t = stored_role::<Targets>(stored, parent_name, "Targets")?
                .ok_or_else(|| err("ErrBadTargets", format!("{name}: its parent {parent_name} does not exist")))?;
            (t, effective_paths(stored, parent_name)?)
        }
    };
    let d = parent
        .delegations
        .roles
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| err("ErrBadTargets", format!("{name} is not delegated by {parent_name}")))?;
    Ok(Delegation {
        keys: parent.delegations.keys.clone(),
        spec: RoleKeys { keyids: d.keyids.clone(), threshold: d.threshold },
        paths: restrict_paths(&parent_paths, &d.paths),
    })
}

/// The documents a snapshot describes after the upload: stored and uploaded roles but snapshot and timestamp.
fn snapshot_files<'a>(stored: &'a BTreeMap<String, Vec<u8>>, uploaded: &'a Uploaded) -> BTreeMap<String, &'a [u8]> {
    stored
        .iter()
        .filter(|(r, _)| *r != "snapshot" && *r != "timestamp")
        .map(|(r, b)| (r.clone(), b.as_slice()))
        .chain(uploaded.iter().map(|(r, _, b)| (r.to_string(), b.as_slice())))
        .collect()
}

/// The client's snapshot: signed by root's snapshot keys, unexpired, with hashes of root and targets, and matching
/// every listed document we have.
fn uploaded_snapshot(root: &Root, now: i64, p: Part, files: &BTreeMap<String, &[u8]>) -> Result<SnapshotPlan, V1Error> {
    let bad = |e: nv::V1MetadataError| err("ErrBadSnapshot", e);
    check_threshold("snapshot", &p.doc, &root.keys, &root_role(root, "snapshot")).map_err(bad)?;
    let snap: Snapshot = p.doc.role("snapshot", "Snapshot").map_err(bad)?;
    if p.doc.expires <= now {
        return Err(err("ErrBadSnapshot", format!("snapshot expired at {}", nv::format_time(p.doc.expires, 0))));
    }
    for required in ["root", "targets"] {
        if !snap.meta.get(required).is_some_and(|m| m.hashes.contains_key("sha256")) {
            return Err(err("ErrBadSnapshot", format!("snapshot has no sha256 for {required}")));
        }
    }
    for (role, meta) in &snap.meta {
        if let Some(bytes) = files.get(role) {
            check_file(role, bytes, meta).map_err(bad)?;
        }
    }
    Ok(SnapshotPlan::Uploaded { version: p.doc.version, bytes: p.doc.raw })
}

/// No snapshot uploaded: the server signs the next one, if root names a snapshot key it holds.
fn generated_snapshot(
    root: &Root,
    stored: &BTreeMap<String, Vec<u8>>,
    files: &BTreeMap<String, &[u8]>,
    uploaded: &Uploaded,
    held_snapshot: &BTreeSet<String>,
) -> Result<SnapshotPlan, V1Error> {
    if !root_role(root, "snapshot").keyids.iter().any(|id| held_snapshot.contains(id)) {
        return Err(V1Error::Invalid {
            name: "ErrBadHierarchy",
            msg: "no snapshot was included in update and server does not hold current snapshot key for repository"
                .into(),
            missing: Some("snapshot"),
        });
    }
    let prev = stored_doc(stored, "snapshot")?;
    let mut meta = match &prev {
        Some(d) => d.role::<Snapshot>("snapshot", "Snapshot").map_err(stored_fault("snapshot"))?.meta,
        None => BTreeMap::new(),
    };
    for (role, bytes) in files {
        let listed = meta.contains_key(role);
        if !listed || uploaded.iter().any(|(r, _, _)| r.as_str() == role) {
            meta.insert(role.clone(), nv::file_meta(bytes));
        }
    }
    Ok(SnapshotPlan::Generate { version: prev.map_or(1, |d| d.version + 1), meta })
}

fn root_role(root: &Root, role: &str) -> RoleKeys {
    root.roles.get(role).cloned().unwrap_or(RoleKeys { keyids: vec![], threshold: 1 })
}

fn stored_doc(stored: &BTreeMap<String, Vec<u8>>, role: &str) -> Result<Option<Signed>, V1Error> {
    stored.get(role).map(|b| Signed::parse(b).map_err(stored_fault(role))).transpose()
}

/// A stored document, typed (`type_name` is its `_type`).
fn stored_role<T: serde::de::DeserializeOwned>(
    stored: &BTreeMap<String, Vec<u8>>,
    role: &str,
    type_name: &str,
) -> Result<Option<T>, V1Error> {
    stored_doc(stored, role)?.map(|d| d.role::<T>(role, type_name).map_err(stored_fault(role))).transpose()
}

/// The paths a stored delegated role may really sign: its own, restricted by each ancestor's.
fn effective_paths(stored: &BTreeMap<String, Vec<u8>>, role: &str) -> Result<Vec<String>, V1Error> {
    let mut chain = vec![role.to_string()];
    while let Some(p) = parent_of(chain.last().expect("non-empty")) {
        chain.push(p.to_string());
    }
    let mut paths = vec![String::new()];
    // From the top: targets delegates chain[n-2], which delegates chain[n-3], …
    for pair in chain.windows(2).rev() {
        let (child, parent) = (&pair[0], &pair[1]);
        let Some(t) = stored_role::<Targets>(stored, parent, "Targets")? else { return Ok(vec![]) };
        let Some(d) = t.delegations.roles.iter().find(|d| &d.name == child) else { return Ok(vec![]) };
        paths = restrict_paths(&paths, &d.paths);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests;
