//! The rules both sides check: thresholds, root structure and certificates, file hashes, role names and prefix
//! delegations. Messages follow notary-server's where its clients display them.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use sha2::Digest as _;

use super::{format_time, invalid, Delegations, FileMeta, Key, RoleKeys, Root, Signed, Targets, V1MetadataError};

/// Role names are shorter than this (notary's limit).
pub const MAX_ROLE_NAME: usize = 255;
/// Delegated roles, keys and paths per targets document: bounded so a walk has a bounded cost.
pub const MAX_DELEGATION_ROLES: usize = 1024;
const MAX_PATHS: usize = 1024;
const MAX_DEPTH: usize = 16;

const BASE_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// A base role, or a delegation `targets/<name>[/<name>…]` of `[-a-z0-9_]` segments.
pub fn is_valid_role(name: &str) -> bool {
    if BASE_ROLES.contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("targets/") else { return false };
    name.len() <= MAX_ROLE_NAME
        && rest.split('/').count() <= MAX_DEPTH
        && rest
            .split('/')
            .all(|seg| !seg.is_empty() && seg.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')))
}

/// The role that delegates `name`: `targets/a/b` → `targets/a`, `targets/a` → `targets`.
pub fn parent_of(name: &str) -> Option<&str> {
    name.strip_prefix("targets/").map(|_| name.rsplit_once('/').map_or("targets", |(p, _)| p))
}

/// Counts distinct keys of `keys` (a role's key ids, resolved in `all`) with a valid signature over the canonical
/// bytes; fewer than `threshold` is an error.
pub fn check_threshold(
    role: &str,
    doc: &Signed,
    all: &BTreeMap<String, Key>,
    keys: &RoleKeys,
) -> Result<(), V1MetadataError> {
    if keys.threshold < 1 {
        return Err(invalid(format!("invalid threshold specified for {role}: {}", keys.threshold)));
    }
    let mut valid = BTreeSet::new();
    for sig in &doc.signatures {
        if !keys.keyids.contains(&sig.keyid) || valid.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = all.get(&sig.keyid) else { continue };
        if key.id() != sig.keyid {
            return Err(invalid(format!("key id {} does not match its key", sig.keyid)));
        }
        if key.verifies(&doc.canonical, sig) {
            valid.insert(sig.keyid.clone());
        }
    }
    if (valid.len() as i64) < keys.threshold {
        return Err(invalid(format!("valid signatures did not meet threshold for {role}")));
    }
    Ok(())
}

fn check_keys_named(what: &str, keys: &BTreeMap<String, Key>) -> Result<(), V1MetadataError> {
    for (id, key) in keys {
        if key.id() != *id {
            return Err(invalid(format!("{what} type metadata invalid: key id {id} does not match its key")));
        }
    }
    Ok(())
}

/// A root as notary-server accepts it: structure, X.509 root keys for `gun` valid at `now`, its own threshold of
/// them, unexpired, and (when one is given) the previous root's threshold of the previous root's keys.
pub fn check_root(doc: &Signed, gun: &str, now: i64, previous: Option<&Root>) -> Result<Root, V1MetadataError> {
    let root: Root = doc.role("root", "Root")?;
    let bad = |m: String| invalid(format!("root type metadata invalid: {m}"));
    if root.version < 1 {
        return Err(bad(format!("version {} is below 1", root.version)));
    }
    for name in BASE_ROLES {
        let spec = root.roles.get(name).ok_or_else(|| bad(format!("missing {name} role specification")))?;
        if spec.threshold < 1 {
            return Err(bad(format!("invalid threshold specified for {name}: {} ", spec.threshold)));
        }
        if let Some(id) = spec.keyids.iter().find(|id| !root.keys.contains_key(*id)) {
            return Err(bad(format!("key {id} of the {name} role is not in keys")));
        }
    }
    check_keys_named("root", &root.keys)?;
    let spec = &root.roles["root"];
    let certs: BTreeMap<String, Key> = spec
        .keyids
        .iter()
        .filter_map(|id| {
            root.keys.get(id).filter(|k| k.check_root_cert(gun, now).is_ok()).map(|k| (id.clone(), k.clone()))
        })
        .collect();
    if certs.is_empty() {
        return Err(invalid(
            "could not validate the path to a trusted root: unable to retrieve valid leaf certificates",
        ));
    }
    check_threshold("root", doc, &certs, spec)
        .map_err(|_| invalid("could not validate the path to a trusted root: failed to validate integrity of roots"))?;
    if let Some(prev) = previous {
        let old = prev.roles.get("root").cloned().unwrap_or(RoleKeys { keyids: vec![], threshold: 1 });
        check_threshold("root", doc, &prev.keys, &old).map_err(|_| {
            invalid(
                "could not rotate trust to a new trusted root: failed to validate data with current trusted certificates",
            )
        })?;
    }
    if doc.expires <= now {
        return Err(invalid(format!("root expired at {}", format_time(doc.expires, 0))));
    }
    Ok(root)
}

/// A targets document (top level or delegated) under the keys that delegate it: threshold, type, version,
/// expiry, and bounded, well-formed delegations of direct children with known keys.
pub fn check_targets(
    role: &str,
    doc: &Signed,
    keys: &BTreeMap<String, Key>,
    spec: &RoleKeys,
    now: i64,
) -> Result<Targets, V1MetadataError> {
    check_threshold(role, doc, keys, spec)?;
    let targets: Targets = doc.role(role, "Targets")?;
    if targets.version < 1 {
        return Err(invalid(format!("{role} type metadata invalid: version {} is below 1", targets.version)));
    }
    if doc.expires <= now {
        return Err(invalid(format!("{role} expired at {}", format_time(doc.expires, 0))));
    }
    check_delegations(role, &targets.delegations)?;
    Ok(targets)
}

fn check_delegations(role: &str, d: &Delegations) -> Result<(), V1MetadataError> {
    if d.roles.len() > MAX_DELEGATION_ROLES || d.keys.len() > MAX_DELEGATION_ROLES {
        return Err(invalid(format!("{role}: more than {MAX_DELEGATION_ROLES} delegated roles or keys")));
    }
    check_keys_named(role, &d.keys)?;
    for child in &d.roles {
        if !is_valid_role(&child.name) || parent_of(&child.name) != Some(role) {
            return Err(invalid(format!("{role}: {} is not a valid direct child role", child.name)));
        }
        if child.threshold < 1 {
            return Err(invalid(format!(
                "{role}: invalid threshold specified for {}: {}",
                child.name, child.threshold
            )));
        }
        if let Some(id) = child.keyids.iter().find(|id| !d.keys.contains_key(*id)) {
            return Err(invalid(format!("{role}: key {id} of {} is not in keys", child.name)));
        }
        if child.paths.len() > MAX_PATHS || child.paths.iter().any(|p| p.len() > MAX_PATHS) {
            return Err(invalid(format!("{role}: {} has too many or too long paths", child.name)));
        }
    }
    Ok(())
}

/// Whether a role with these (prefix) paths may sign `target`: `""` allows everything.
pub fn delegation_allows(paths: &[String], target: &str) -> bool {
    paths.iter().any(|p| target.starts_with(p.as_str()))
}

/// The paths a child may really use: those of its own that lie within one of its parent's (notary restricts a
/// child to its parent's paths the same way).
pub fn restrict_paths(parent: &[String], child: &[String]) -> Vec<String> {
    child.iter().filter(|c| delegation_allows(parent, c)).cloned().collect()
}

/// Refuses a delegated role that lists a target outside its (restricted) paths.
pub fn check_delegation_paths(role: &str, targets: &Targets, paths: &[String]) -> Result<(), V1MetadataError> {
    match targets.targets.keys().find(|t| !delegation_allows(paths, t)) {
        Some(t) => Err(invalid(format!("{role} lists target {t:?}, which is outside its delegated paths"))),
        None => Ok(()),
    }
}

/// Checks bytes against meta that listed them: length and every hash we know (sha256, sha512), at least one.
pub fn check_file(role: &str, bytes: &[u8], meta: &FileMeta) -> Result<(), V1MetadataError> {
    if meta.length != bytes.len() as i64 {
        return Err(invalid(format!("length of {role} did not match: expected {} got {}", meta.length, bytes.len())));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut known = 0;
    for (alg, want) in &meta.hashes {
        let got = match alg.as_str() {
            "sha256" => b64.encode(sha2::Sha256::digest(bytes)),
            "sha512" => b64.encode(sha2::Sha512::digest(bytes)),
            _ => continue,
        };
        known += 1;
        if got != *want {
            return Err(invalid(format!("{alg} checksum for {role} did not match: expected {want}")));
        }
    }
    if known == 0 {
        return Err(invalid(format!("no sha256 or sha512 hash for {role}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notary::file_meta;

    #[test]
    fn role_names() {
        for ok in ["root", "targets", "targets/releases", "targets/a/b-c_9"] {
            assert!(is_valid_role(ok), "{ok}");
        }
        for bad in ["bogus", "targets/", "targets//a", "targets/A", "targets/../x", "snapshot/x", ""] {
            assert!(!is_valid_role(bad), "{bad}");
        }
        assert_eq!(parent_of("targets/a/b"), Some("targets/a"));
        assert_eq!(parent_of("targets/a"), Some("targets"));
        assert_eq!(parent_of("targets"), None);
    }

    #[test]
    fn prefix_paths() {
        let all = vec![String::new()];
        assert!(delegation_allows(&all, "anything"));
        let rel = vec!["v1".to_string(), "stable/".into()];
        assert!(delegation_allows(&rel, "v1.2") && delegation_allows(&rel, "stable/x"));
        assert!(!delegation_allows(&rel, "latest") && !delegation_allows(&[], "v1"));
        assert_eq!(restrict_paths(&rel, &["v1.2".into(), "latest".into()]), vec!["v1.2".to_string()]);
    }

    #[test]
    fn files() {
        let meta = file_meta(b"hello");
        assert!(check_file("targets", b"hello", &meta).is_ok());
        assert!(check_file("targets", b"hellp", &meta).is_err());
        assert!(check_file("targets", b"hello!", &meta).is_err());
        let mut only512 = meta.clone();
        only512.hashes.remove("sha256");
        assert!(check_file("targets", b"hello", &only512).is_ok());
        let mut none = meta;
        none.hashes.clear();
        assert!(check_file("targets", b"hello", &none).is_err());
    }
}

#[cfg(test)]
mod captured {
    use super::*;

    const ROOT: &[u8] = include_bytes!("testdata/root-v1.json");
    const GUN: &str = "127.0.0.1:5000/library/app";
    /// 2026-11-22T06:03:04Z, when the root was made.
    const MADE: i64 = 1_795_327_384;

    /// The root `notary publish` uploaded to notary-server (PROTOCOL.md §9): its certificate passes the root-key
    /// rules for its GUN only, and its raw r‖s ECDSA signature verifies.
    #[test]
    fn notary_cli_root_passes() {
        let doc = Signed::parse(ROOT).unwrap();
        let root = check_root(&doc, GUN, MADE, None).unwrap();
        assert_eq!(root.version, 1);
        assert!(check_root(&doc, GUN, MADE, Some(&root)).is_ok());
        let leaf = |e: V1MetadataError| e.to_string().contains("unable to retrieve valid leaf certificates");
        assert!(leaf(check_root(&doc, "127.0.0.1:5000/library/other", MADE, None).unwrap_err()));
        // Expired certificate (ten years and a day later), and a certificate not yet valid.
        assert!(leaf(check_root(&doc, GUN, MADE + 3_660 * 86_400, None).unwrap_err()));
        assert!(leaf(check_root(&doc, GUN, MADE - 2 * 86_400, None).unwrap_err()));
        let tampered = String::from_utf8(ROOT.to_vec()).unwrap().replace("\"version\":1}", "\"version\":2}");
        let e = check_root(&Signed::parse(tampered.as_bytes()).unwrap(), GUN, MADE, None).unwrap_err();
        assert!(e.to_string().contains("failed to validate integrity of roots"), "{e}");
    }
}
