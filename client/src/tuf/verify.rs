//! Signature thresholds, expiry and delegated paths.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest as _;

use super::{DelegatedRole, Envelope, KeyId, PublicKey, TufError};

/// Checks that `env` carries valid signatures from at least `threshold` distinct keys among `keyids`.
///
/// A key counts once however many signatures it made, and a key listed under an id that is not its own is refused,
/// so one key cannot be counted twice under two ids.
pub fn check_threshold(
    role: &str,
    env: &Envelope,
    keys: &BTreeMap<KeyId, PublicKey>,
    keyids: &[KeyId],
    threshold: u32,
) -> Result<(), TufError> {
    if threshold == 0 {
        return Err(TufError::BadRole { role: role.into(), reason: "threshold must be at least 1".into() });
    }
    let message = env.signed_bytes()?;
    let mut counted: BTreeSet<&str> = BTreeSet::new();
    for sig in &env.signatures {
        if !keyids.contains(&sig.keyid) || counted.contains(sig.keyid.as_str()) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else { continue };
        if key.key_id() != sig.keyid {
            return Err(TufError::KeyIdMismatch { role: role.into(), key_id: sig.keyid.clone() });
        }
        if key.verifies(&message, &sig.sig) {
            counted.insert(&sig.keyid);
        }
    }
    if counted.len() < threshold as usize {
        return Err(TufError::Threshold { role: role.into(), valid: counted.len(), threshold });
    }
    Ok(())
}

/// Refuses metadata whose expiry is not after `now`.
pub fn check_expiry(role: &str, expires: i64, now: i64) -> Result<(), TufError> {
    if expires <= now {
        return Err(TufError::Expired { role: role.into(), expires: super::format_time(expires) });
    }
    Ok(())
}

/// Whether `target` lies inside the paths a delegation grants (TUF's `paths` or `path_hash_prefixes`).
pub fn path_delegated(role: &DelegatedRole, target: &str) -> bool {
    if let Some(paths) = &role.paths {
        return paths.iter().any(|p| glob(p.as_bytes(), target.as_bytes()));
    }
    if let Some(prefixes) = &role.path_hash_prefixes {
        let h = hex::encode(sha2::Sha256::digest(target.as_bytes()));
        return prefixes.iter().any(|p| h.starts_with(p.as_str()));
    }
    false
}

/// Shell-style matching as the specification asks: `*` matches any run of characters except `/`, `?` one such
/// character; everything else is literal.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (name.first().is_some_and(|c| *c != b'/') && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::SigningKey;
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn keys(ks: &[&SigningKey]) -> BTreeMap<KeyId, PublicKey> {
        ks.iter().map(|k| (k.key_id().clone(), k.public().clone())).collect()
    }

    #[test]
    fn thresholds_count_distinct_valid_keys() {
        let (a, b, c) = (key(1), key(2), key(3));
        let all = keys(&[&a, &b, &c]);
        let ids = vec![a.key_id().clone(), b.key_id().clone()];
        let doc = serde_json::json!({"_type": "targets", "v": 1});
        let env = Envelope::sign(&doc, &[&a, &b]).unwrap();
        assert!(check_threshold("t", &env, &all, &ids, 2).is_ok());
        // One key signing twice is still one key.
        let twice = Envelope::sign(&doc, &[&a, &a]).unwrap();
        assert!(matches!(check_threshold("t", &twice, &all, &ids, 2), Err(TufError::Threshold { valid: 1, .. })));
        // A key root does not list for the role does not count.
        let outsider = Envelope::sign(&doc, &[&a, &c]).unwrap();
        assert!(matches!(check_threshold("t", &outsider, &all, &ids, 2), Err(TufError::Threshold { valid: 1, .. })));
        // A signature over other bytes does not count.
        let mut tampered = env.clone();
        tampered.signed["v"] = serde_json::json!(2);
        assert!(matches!(check_threshold("t", &tampered, &all, &ids, 1), Err(TufError::Threshold { valid: 0, .. })));
        // The same key listed under a second, false id is refused.
        let mut forged = all.clone();
        forged.insert("f".repeat(64), a.public().clone());
        let mut env2 = env.clone();
        env2.signatures.push(super::super::Signature { keyid: "f".repeat(64), sig: env.signatures[0].sig.clone() });
        let ids2 = vec![a.key_id().clone(), "f".repeat(64)];
        assert!(matches!(check_threshold("t", &env2, &forged, &ids2, 2), Err(TufError::KeyIdMismatch { .. })));
        assert!(check_threshold("t", &env, &all, &ids, 0).is_err());
    }

    #[test]
    fn non_canonical_signature_is_invalid() {
        let a = key(1);
        let doc = serde_json::json!({"b": 1, "a": 2});
        // Sign the non-canonical (pretty, unsorted) text instead of the canonical form.
        let pretty = b"{\n  \"b\": 1,\n  \"a\": 2\n}";
        let env = Envelope {
            signed: doc,
            signatures: vec![super::super::Signature { keyid: a.key_id().clone(), sig: a.sign(pretty) }],
        };
        let ids = vec![a.key_id().clone()];
        assert!(check_threshold("t", &env, &keys(&[&a]), &ids, 1).is_err());
    }

    #[test]
    fn delegated_paths() {
        let role = |paths: Option<Vec<&str>>, prefixes: Option<Vec<&str>>| DelegatedRole {
            name: "r".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: paths.map(|p| p.into_iter().map(String::from).collect()),
            path_hash_prefixes: prefixes.map(|p| p.into_iter().map(String::from).collect()),
        };
        let r = role(Some(vec!["v1.*", "release-?"]), None);
        assert!(path_delegated(&r, "v1.2"));
        assert!(path_delegated(&r, "release-a"));
        assert!(!path_delegated(&r, "v2.0"));
        assert!(!path_delegated(&r, "release-ab"));
        assert!(!path_delegated(&role(Some(vec!["a/*"]), None), "a/b/c"));
        let h = hex::encode(sha2::Sha256::digest(b"latest"));
        assert!(path_delegated(&role(None, Some(vec![&h[..2]])), "latest"));
        assert!(!path_delegated(&role(None, None), "latest"));
    }

    #[test]
    fn expiry() {
        assert!(check_expiry("t", 100, 99).is_ok());
        assert!(check_expiry("t", 100, 100).is_err());
    }
}
