//! TUF 1.0 metadata: envelopes and roles on their own, and documents fed through `TrustedSet` from a fixed trusted
//! root (the client's update workflow, specification section 5).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use wharf_format::tuf::{
    check_delegation_bounds, parse_time, path_delegated, DelegationSearch, Envelope, Root, SigningKey, Snapshot,
    Targets, Timestamp, TrustedSet,
};

use super::{documents, set_meta, sha256_hex, signed_part};

/// The time the fixtures are checked at (2030); they expire in 2100.
pub const NOW: i64 = 1_900_000_000;
const EXPIRES: &str = "2100-01-01T00:00:00Z";
/// The target name delegations are searched for.
const TARGET: &str = "app/latest";

/// The fixed keys: root, targets, snapshot, timestamp, and the one top-level targets delegates to.
pub struct Keys {
    pub root: SigningKey,
    pub targets: SigningKey,
    pub snapshot: SigningKey,
    pub timestamp: SigningKey,
    pub delegated: SigningKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let k = |n| SigningKey::from_bytes(&[n; 32]);
        Keys { root: k(1), targets: k(2), snapshot: k(3), timestamp: k(4), delegated: k(5) }
    })
}

/// The trusted root (version 1), each role one key, threshold 1.
pub fn root_bytes() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let k = keys();
        let all = [&k.root, &k.targets, &k.snapshot, &k.timestamp];
        let keys: serde_json::Map<String, Value> = all
            .iter()
            .map(|s| (s.key_id().clone(), serde_json::to_value(s.public()).expect("a key serializes")))
            .collect();
        let role = |s: &SigningKey| json!({ "keyids": [s.key_id().clone()], "threshold": 1 });
        let root = json!({ "_type": "root", "spec_version": "1.0.31", "consistent_snapshot": true, "version": 1,
            "expires": EXPIRES, "keys": keys, "roles": { "root": role(&k.root), "targets": role(&k.targets),
            "snapshot": role(&k.snapshot), "timestamp": role(&k.timestamp) } });
        resign_value(&root, &k.root).expect("the fixed root signs")
    })
}

fn resign_value(signed: &Value, key: &SigningKey) -> Option<Vec<u8>> {
    Envelope::sign(signed, &[key]).ok()?.to_bytes().ok()
}

/// `doc`'s `signed` part signed by `key`, with `meta[name]` set to the length and hash of `listed` when given.
fn resign(doc: &[u8], key: &SigningKey, listed: &[(String, &[u8])]) -> Option<Vec<u8>> {
    let mut signed = signed_part(doc)?;
    for (name, bytes) in listed {
        let version = signed.pointer(&format!("/meta/{}/version", name.replace('~', "~0").replace('/', "~1")));
        let version = version.cloned().unwrap_or(json!(1));
        set_meta(
            &mut signed,
            name,
            json!({ "version": version, "length": bytes.len(), "hashes": { "sha256": sha256_hex(bytes) } }),
        );
    }
    resign_value(&signed, key)
}

/// An envelope, its canonical bytes, and `signed` read as each role type; a targets role's delegations are
/// bounded and its path patterns matched against its own target names.
pub fn envelope(data: &[u8]) {
    let Ok(env) = Envelope::parse(data) else { return };
    let _ = env.signed_bytes();
    let _ = env.type_name();
    if let Some(e) = env.signed.get("expires").and_then(Value::as_str) {
        let _ = parse_time(e);
    }
    let _ = env.decode::<Root>();
    let _ = env.decode::<Timestamp>();
    let _ = env.decode::<Snapshot>();
    let Ok(t) = env.decode::<Targets>() else { return };
    if check_delegation_bounds("targets", &t).is_err() {
        return;
    }
    for role in t.delegations.iter().flat_map(|d| &d.roles) {
        for name in t.targets.keys().map(String::as_str).chain([TARGET]) {
            let _ = path_delegated(role, name);
        }
    }
    if let Some(d) = &t.delegations {
        let _ = d.roles_for_target(TARGET);
    }
}

/// The names of the roles a targets document delegates to, in order.
fn delegated_names(doc: &[u8]) -> Vec<String> {
    let roles = signed_part(doc).and_then(|s| s.pointer("/delegations/roles").cloned());
    let roles = roles.and_then(|r| r.as_array().cloned()).unwrap_or_default();
    roles.iter().filter_map(|r| r.get("name")?.as_str().map(str::to_owned)).collect()
}

/// One mode byte, then `TIMESTAMP NUL SNAPSHOT NUL TARGETS [NUL DELEGATED]...` (a delegated document for each role
/// named by targets, then by earlier delegated documents, in order). Mode bits: 1 re-signs every document with the
/// fixed keys; 2 (with 1) also lists each document's length and hash in the one above it, so the fuzzer gets past
/// the hash checks; 4 makes the set `strict()`; 8 feeds the first document as a new root first.
pub fn trusted(data: &[u8]) {
    trusted_reach(data);
}

/// [`trusted`], returning how many of timestamp, snapshot, targets and delegated documents were accepted.
pub fn trusted_reach(data: &[u8]) -> usize {
    let Some((&mode, rest)) = data.split_first() else { return 0 };
    let (resign_all, chain) = (mode & 1 != 0, mode & 3 == 3);
    let k = keys();
    let mut set = TrustedSet::new(root_bytes(), NOW).expect("the fixed root is trusted");
    if mode & 4 != 0 {
        set = set.strict();
    }
    let mut docs = documents(rest);
    if mode & 8 != 0 && !docs.is_empty() {
        let root = docs.remove(0);
        let root = if resign_all { resign(root, &k.root, &[]) } else { Some(root.to_vec()) };
        if set.update_root(&root.unwrap_or_default()).is_err() {
            return 0;
        }
    }
    let doc = |i: usize| docs.get(i).copied().unwrap_or(b"");
    if !resign_all {
        let delegated: BTreeMap<String, Vec<u8>> =
            delegated_names(doc(2)).into_iter().zip(docs.iter().skip(3).map(|d| d.to_vec())).collect();
        return feed(set, doc(0), doc(1), doc(2), &delegated);
    }
    let mut names = delegated_names(doc(2));
    let mut delegated = BTreeMap::new();
    for (i, d) in docs.iter().skip(3).enumerate() {
        let Some(name) = names.get(i).cloned() else { break };
        names.extend(delegated_names(d));
        if let Some(bytes) = resign(d, &k.delegated, &[]) {
            delegated.insert(name, bytes);
        }
    }
    let targets = resign(doc(2), &k.targets, &[]).unwrap_or_default();
    let mut listed: Vec<(String, &[u8])> = vec![("targets.json".into(), &targets)];
    listed.extend(delegated.iter().map(|(n, b)| (format!("{n}.json"), b.as_slice())));
    let snapshot = resign(doc(1), &k.snapshot, if chain { &listed } else { &[] }).unwrap_or_default();
    let listed: Vec<(String, &[u8])> = vec![("snapshot.json".into(), &snapshot)];
    let timestamp = resign(doc(0), &k.timestamp, if chain { &listed } else { &[] }).unwrap_or_default();
    feed(set, &timestamp, &snapshot, &targets, &delegated)
}

/// The update workflow in order, then the 5.6.7 search for `TARGET` over the delegated documents given.
/// Returns how many documents were accepted.
fn feed(
    mut set: TrustedSet,
    timestamp: &[u8],
    snapshot: &[u8],
    targets: &[u8],
    delegated: &BTreeMap<String, Vec<u8>>,
) -> usize {
    if set.update_timestamp(timestamp, None).is_err() {
        return 0;
    }
    if set.update_snapshot(snapshot, None).is_err() {
        return 1;
    }
    if set.update_targets(targets).is_err() {
        return 2;
    }
    let mut accepted = 3;
    let mut search = DelegationSearch::new(32);
    while let Some((role, delegator)) = search.next_role() {
        if role != "targets" {
            let Some(bytes) = delegated.get(&role) else { continue };
            if set.update_delegated(&role, bytes, &delegator).is_err() {
                continue;
            }
            accepted += 1;
        }
        let t = if role == "targets" { set.targets() } else { set.delegated(&role) };
        if let Some(t) = t.cloned() {
            if t.targets.contains_key(TARGET) {
                break;
            }
            search.descend(&role, &t, TARGET);
        }
    }
    accepted
}
