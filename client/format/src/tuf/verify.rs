//! Signature thresholds, expiry and delegated paths.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest as _;

use super::{DelegatedRole, Envelope, KeyId, PublicKey, TufError};

/// Checks that `env` carries valid signatures from at least `threshold` distinct keys among `keyids`.
///
/// A key id may appear only once in `signatures` (the specification: "The keyid MUST be unique in the signatures
/// array"; python-tuf refuses such metadata when it parses it): a repeated id is refused, whatever the threshold,
/// so a signature never counts twice. A key listed under an id that is not its own is refused too, so one key
/// cannot be counted twice under two ids.
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
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    if let Some(dup) = env.signatures.iter().find(|s| !seen.insert(s.keyid.as_str())) {
        return Err(TufError::DuplicateSignature { role: role.into(), key_id: dup.keyid.clone() });
    }
    let message = env.signed_bytes()?;
    let mut counted: BTreeSet<&str> = BTreeSet::new();
    for sig in &env.signatures {
        if !keyids.contains(&sig.keyid) || counted.contains(sig.keyid.as_str()) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else { continue };
        // A key of a type or scheme Wharf does not verify is ignored, never fatal: other keys may meet the
        // threshold.
        if key.scheme().is_none() {
            continue;
        }
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

/// The key IDs among `keyids` whose signatures on `env` verify with their key in `keys`, each once (a key listed
/// under an id that is not its own never counts): who signed a document, for policies that name keys.
pub fn valid_signers(
    env: &Envelope,
    keys: &BTreeMap<KeyId, PublicKey>,
    keyids: &[KeyId],
) -> Result<Vec<KeyId>, TufError> {
    let message = env.signed_bytes()?;
    let mut out: Vec<KeyId> = Vec::new();
    for sig in &env.signatures {
        if !keyids.contains(&sig.keyid) || out.contains(&sig.keyid) {
            continue;
        }
        let Some(key) = keys.get(&sig.keyid) else { continue };
        if key.scheme().is_some() && key.key_id() == sig.keyid && key.verifies(&message, &sig.sig) {
            out.push(sig.keyid.clone());
        }
    }
    Ok(out)
}

/// Refuses metadata whose expiry is not after `now`.
pub fn check_expiry(role: &str, expires: i64, now: i64) -> Result<(), TufError> {
    if expires <= now {
        return Err(TufError::Expired { role: role.into(), expires: super::format_time(expires) });
    }
    Ok(())
}

/// The most delegated roles one targets document may list, paths or prefixes one role may list, and bytes in one
/// pattern: bounds on what a delegated signer can make every client and the trust service do.
pub const MAX_DELEGATED_ROLES: usize = 1024;
pub const MAX_ROLE_PATHS: usize = 1024;
pub const MAX_PATTERN_LEN: usize = 1024;

/// Refuses delegations over the bounds above.
pub fn check_delegation_bounds(role: &str, targets: &super::Targets) -> Result<(), TufError> {
    let Some(d) = &targets.delegations else { return Ok(()) };
    let bad = |reason: String| Err(TufError::BadRole { role: role.into(), reason });
    if d.succinct_roles.as_ref().is_some_and(|s| !s.valid() || !d.roles.is_empty()) {
        return bad("succinct_roles needs bit_length 1..=32 and no roles beside it".into());
    }
    if d.roles.len() > MAX_DELEGATED_ROLES {
        return bad(format!("{} delegated roles, at most {MAX_DELEGATED_ROLES}", d.roles.len()));
    }
    for r in &d.roles {
        // A delegated role named like a top-level one would share its metadata file name (python-tuf's rule).
        if matches!(r.name.as_str(), "root" | "targets" | "snapshot" | "timestamp") {
            return bad(format!("delegation {:?} uses a top-level role name", r.name));
        }
        let patterns = r.paths.iter().chain(r.path_hash_prefixes.iter()).flatten();
        if r.paths.as_ref().map_or(0, Vec::len) + r.path_hash_prefixes.as_ref().map_or(0, Vec::len) > MAX_ROLE_PATHS {
            return bad(format!("delegation {:?} lists more than {MAX_ROLE_PATHS} paths", r.name));
        }
        if patterns.clone().any(|p| p.len() > MAX_PATTERN_LEN) {
            return bad(format!("delegation {:?} has a pattern longer than {MAX_PATTERN_LEN} bytes", r.name));
        }
    }
    Ok(())
}

/// Whether `target` lies inside the paths a delegation grants (TUF's `paths` or `path_hash_prefixes`).
pub fn path_delegated(role: &DelegatedRole, target: &str) -> bool {
    if let Some(paths) = &role.paths {
        return paths.iter().any(|p| path_matches(p, target));
    }
    if let Some(prefixes) = &role.path_hash_prefixes {
        let h = hex::encode(sha2::Sha256::digest(target.as_bytes()));
        return prefixes.iter().any(|p| h.starts_with(p.as_str()));
    }
    false
}

/// The specification's path pattern rule, as python-tuf and go-tuf apply it: pattern and name have the same number
/// of `/`-separated segments, and each segment matches shell-style (`*` any run, `?` one character, `[...]` a
/// class). Time is at most linear in the product of the segment lengths, never exponential.
pub fn path_matches(pattern: &str, name: &str) -> bool {
    if pattern.len() > MAX_PATTERN_LEN || pattern.split('/').count() != name.split('/').count() {
        return false;
    }
    pattern.split('/').zip(name.split('/')).all(|(p, n)| segment_matches(&tokens(p.as_bytes()), n.as_bytes()))
}

enum Token<'a> {
    Byte(u8),
    Any,
    Star,
    /// A bracket class: negated, then its body (ranges `a-z` and single bytes).
    Class(bool, &'a [u8]),
}

fn tokens(p: &[u8]) -> Vec<Token<'_>> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                // Runs of stars are one star.
                if !matches!(out.last(), Some(Token::Star)) {
                    out.push(Token::Star);
                }
            }
            b'?' => out.push(Token::Any),
            b'[' => {
                let mut j = i + 1;
                let negated = j < p.len() && matches!(p[j], b'!' | b'^');
                if negated {
                    j += 1;
                }
                let body_start = j;
                // A `]` right after the opening is literal.
                if j < p.len() && p[j] == b']' {
                    j += 1;
                }
                while j < p.len() && p[j] != b']' {
                    j += 1;
                }
                if j < p.len() {
                    out.push(Token::Class(negated, &p[body_start..j]));
                    i = j;
                } else {
                    // No closing bracket: the `[` is literal, as fnmatch treats it.
                    out.push(Token::Byte(b'['));
                }
            }
            c => out.push(Token::Byte(c)),
        }
        i += 1;
    }
    out
}

fn token_matches(t: &Token<'_>, c: u8) -> bool {
    match t {
        Token::Byte(b) => *b == c,
        Token::Any => true,
        Token::Star => false,
        Token::Class(negated, body) => {
            let mut hit = false;
            let mut k = 0;
            while k < body.len() {
                if k + 2 < body.len() && body[k + 1] == b'-' {
                    hit |= (body[k]..=body[k + 2]).contains(&c);
                    k += 3;
                } else {
                    hit |= body[k] == c;
                    k += 1;
                }
            }
            hit != *negated
        }
    }
}

/// Greedy matching that remembers only the last star: on a mismatch it retries from the last star one byte
/// further, never revisiting earlier stars, so the work is bounded by pattern length times name length.
fn segment_matches(p: &[Token<'_>], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && matches!(p[pi], Token::Star) {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && token_matches(&p[pi], s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|t| matches!(t, Token::Star))
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
        // One key id twice in signatures is refused, even where one signature would meet the threshold.
        let twice = Envelope::sign(&doc, &[&a, &a]).unwrap();
        assert!(matches!(check_threshold("t", &twice, &all, &ids, 2), Err(TufError::DuplicateSignature { .. })));
        assert!(matches!(check_threshold("t", &twice, &all, &ids, 1), Err(TufError::DuplicateSignature { .. })));
        // So is a repeated id of a key the role does not list.
        let junk = Envelope::sign(&doc, &[&a, &c, &c]).unwrap();
        assert!(matches!(check_threshold("t", &junk, &all, &ids, 1), Err(TufError::DuplicateSignature { .. })));
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
    fn valid_signers_name_each_verified_key_once() {
        let (a, b, c) = (key(1), key(2), key(3));
        let all = keys(&[&a, &b, &c]);
        let ids = vec![a.key_id().clone(), b.key_id().clone()];
        let doc = serde_json::json!({"_type": "targets", "v": 1});
        let env = Envelope::sign(&doc, &[&a, &b, &c]).unwrap();
        // c signed but is not listed for the role: not a signer.
        assert_eq!(valid_signers(&env, &all, &ids).unwrap(), ids);
        let mut tampered = env.clone();
        tampered.signed["v"] = serde_json::json!(2);
        assert!(valid_signers(&tampered, &all, &ids).unwrap().is_empty());
        // A key stored under another key's id never counts.
        let mut forged = all.clone();
        forged.insert(b.key_id().clone(), a.public().clone());
        assert_eq!(valid_signers(&env, &forged, &ids).unwrap(), vec![a.key_id().clone()]);
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
        assert!(path_delegated(&role(Some(vec!["a/*/c"]), None), "a/b/c"));
        assert!(path_delegated(&role(Some(vec!["v[0-9].[!x]"]), None), "v1.2"));
        assert!(!path_delegated(&role(Some(vec!["v[0-9].[!x]"]), None), "v1.x"));
        assert!(path_delegated(&role(Some(vec!["a[b"]), None), "a[b"));
        assert!(path_delegated(&role(Some(vec!["*"]), None), ""));
        assert!(path_delegated(&role(Some(vec!["*.txt"]), None), "a.b.txt"));
        assert!(!path_delegated(&role(Some(vec!["*.txt"]), None), "a.txt.b"));
        let h = hex::encode(sha2::Sha256::digest(b"latest"));
        assert!(path_delegated(&role(None, Some(vec![&h[..2]])), "latest"));
        assert!(!path_delegated(&role(None, None), "latest"));
    }

    /// The old backtracking matcher took about 10^9 steps on this; the linear one takes microseconds.
    #[test]
    fn hostile_patterns_are_fast() {
        let start = std::time::Instant::now();
        let name = "a".repeat(40);
        for _ in 0..1000 {
            assert!(!path_matches("*a*a*a*a*a*a*a*b", &name));
        }
        assert!(!path_matches(&"*a".repeat(500), &"a".repeat(499)));
        assert!(path_matches(&"*a".repeat(500), &"a".repeat(999)));
        assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn delegation_bounds() {
        let mut t: super::super::Targets = serde_json::from_value(serde_json::json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1, "expires": "2030-01-01T00:00:00Z",
            "targets": {}, "delegations": {"keys": {}, "roles": [
                {"name": "r", "keyids": [], "threshold": 1, "paths": ["x"]}]}}))
        .unwrap();
        assert!(check_delegation_bounds("targets", &t).is_ok());
        t.delegations.as_mut().unwrap().roles[0].paths = Some(vec!["x".repeat(MAX_PATTERN_LEN + 1)]);
        assert!(check_delegation_bounds("targets", &t).is_err());
        t.delegations.as_mut().unwrap().roles[0].paths = Some(vec!["x".into(); MAX_ROLE_PATHS + 1]);
        assert!(check_delegation_bounds("targets", &t).is_err());
        // A delegated role may not take a top-level role's name (its metadata file would be that role's).
        t.delegations.as_mut().unwrap().roles[0].paths = Some(vec!["x".into()]);
        t.delegations.as_mut().unwrap().roles[0].name = "timestamp".into();
        assert!(matches!(check_delegation_bounds("targets", &t), Err(TufError::BadRole { .. })));
    }

    #[test]
    fn expiry() {
        assert!(check_expiry("t", 100, 99).is_ok());
        assert!(check_expiry("t", 100, 100).is_err());
    }
}
