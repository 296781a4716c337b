//! notary-server's rules for an upload, in its order (so the same error wins): root, then targets roles parents
//! first, then snapshot, then the server's own keys. Pure: the caller passes the stored state, the held key ids and
//! the time; the signing and the write happen after.

use std::collections::{BTreeMap, BTreeSet};

use wharf_format::notary::{
    self as nv, check_delegation_paths, check_file, check_root, check_targets, check_threshold, parent_of,
    restrict_paths, FileMeta, Gun, RoleKeys, RoleName, Root, Signed, Snapshot, Targets,
};

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
    let parse_stored = |role: &str| -> Result<Option<Signed>, V1Error> {
        stored
            .get(role)
            .map(|b| Signed::parse(b).map_err(|e| V1Error::Internal(format!("stored {role}: {e}"))))
            .transpose()
    };

    // Root.
    let prev_root: Option<Root> = parse_stored("root")?
        .map(|d| d.role::<Root>("root", "Root"))
        .transpose()
        .map_err(|e| V1Error::Internal(e.to_string()))?;
    let mut uploaded = Vec::new();
    let root = match parts.remove("root") {
        Some(p) => {
            let current = prev_root.as_ref().map_or(1, |r| r.version);
            if p.doc.version != current && p.doc.version != current + 1 {
                return Err(err(
                    "ErrBadRoot",
                    format!("Root modifications must increment the version. Current {current}, new {}", p.doc.version),
                ));
            }
            let root = check_root(&p.doc, gun.as_str(), now, prev_root.as_ref()).map_err(|e| err("ErrBadRoot", e))?;
            uploaded.push((p.role, p.doc.version, p.doc.raw));
            root
        }
        None => {
            prev_root.ok_or_else(|| err("ErrValidation", "no pre-existing root and no root provided in update."))?
        }
    };

    // Targets roles, parents before children.
    let mut names: Vec<String> = parts.keys().filter(|n| n.starts_with("targets")).cloned().collect();
    names.sort_by_key(|n| (n.matches('/').count(), n.clone()));
    let mut targets_docs: BTreeMap<String, (Targets, Vec<String>)> = BTreeMap::new();
    for name in names {
        let p = parts.remove(&name).expect("listed");
        let (keys, spec, paths) = if name == "targets" {
            (root.keys.clone(), root_role(&root, "targets"), vec![String::new()])
        } else {
            let parent_name = parent_of(&name).unwrap_or("targets");
            let (parent, parent_paths) = match targets_docs.get(parent_name) {
                Some(t) => t.clone(),
                None => {
                    let t = load_targets(stored, parent_name)?.ok_or_else(|| {
                        err("ErrBadTargets", format!("{name}: its parent {parent_name} does not exist"))
                    })?;
                    let paths = effective_paths(stored, parent_name)?;
                    (t, paths)
                }
            };
            let d = parent
                .delegations
                .roles
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| err("ErrBadTargets", format!("{name} is not delegated by {parent_name}")))?;
            let paths = restrict_paths(&parent_paths, &d.paths);
            (parent.delegations.keys.clone(), RoleKeys { keyids: d.keyids.clone(), threshold: d.threshold }, paths)
        };
        let t = check_targets(&name, &p.doc, &keys, &spec, now).map_err(|e| err("ErrBadTargets", e))?;
        if name != "targets" {
            check_delegation_paths(&name, &t, &paths).map_err(|e| err("ErrBadTargets", e))?;
        }
        targets_docs.insert(name, (t, paths));
        uploaded.push((p.role, p.doc.version, p.doc.raw));
    }

    // Snapshot: the client's, checked against everything it lists that we have, or the server's next one.
    let files: BTreeMap<String, &[u8]> = stored
        .iter()
        .filter(|(r, _)| *r != "snapshot" && *r != "timestamp")
        .map(|(r, b)| (r.clone(), b.as_slice()))
        .chain(uploaded.iter().map(|(r, _, b)| (r.to_string(), b.as_slice())))
        .collect();
    let snapshot = match parts.remove("snapshot") {
        Some(p) => {
            let bad = |e: nv::NotaryError| err("ErrBadSnapshot", e);
            check_threshold("snapshot", &p.doc, &root.keys, &root_role(&root, "snapshot")).map_err(bad)?;
            let snap: Snapshot = p.doc.role("snapshot", "Snapshot").map_err(bad)?;
            if p.doc.expires <= now {
                return Err(err(
                    "ErrBadSnapshot",
                    format!("snapshot expired at {}", nv::format_time(p.doc.expires, 0)),
                ));
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
            SnapshotPlan::Uploaded { version: p.doc.version, bytes: p.doc.raw }
        }
        None => {
            if !root_role(&root, "snapshot").keyids.iter().any(|id| held_snapshot.contains(id)) {
                return Err(V1Error::Invalid {
                    name: "ErrBadHierarchy",
                    msg: "no snapshot was included in update and server does not hold current snapshot key for \
                          repository"
                        .into(),
                    missing: Some("snapshot"),
                });
            }
            let prev = parse_stored("snapshot")?;
            let mut meta = match &prev {
                Some(d) => {
                    d.role::<Snapshot>("snapshot", "Snapshot").map_err(|e| V1Error::Internal(e.to_string()))?.meta
                }
                None => BTreeMap::new(),
            };
            for (role, bytes) in &files {
                let listed = meta.contains_key(role);
                if !listed || uploaded.iter().any(|(r, _, _)| r.as_str() == role) {
                    meta.insert(role.clone(), nv::file_meta(bytes));
                }
            }
            SnapshotPlan::Generate { version: prev.map_or(1, |d| d.version + 1), meta }
        }
    };
    if !root_role(&root, "timestamp").keyids.iter().any(|id| held_timestamp.contains(id)) {
        return Err(err("ErrBadRoot", "no  timestamp keys exist on the server"));
    }
    Ok(Accepted { root, uploaded, snapshot })
}

fn root_role(root: &Root, role: &str) -> RoleKeys {
    root.roles.get(role).cloned().unwrap_or(RoleKeys { keyids: vec![], threshold: 1 })
}

fn load_targets(stored: &BTreeMap<String, Vec<u8>>, role: &str) -> Result<Option<Targets>, V1Error> {
    let Some(bytes) = stored.get(role) else { return Ok(None) };
    let doc = Signed::parse(bytes).map_err(|e| V1Error::Internal(format!("stored {role}: {e}")))?;
    doc.role::<Targets>(role, "Targets").map(Some).map_err(|e| V1Error::Internal(e.to_string()))
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
        let Some(t) = load_targets(stored, parent)? else { return Ok(vec![]) };
        let Some(d) = t.delegations.roles.iter().find(|d| &d.name == child) else { return Ok(vec![]) };
        paths = restrict_paths(&paths, &d.paths);
    }
    Ok(paths)
}
