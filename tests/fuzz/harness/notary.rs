//! Notary v1 metadata: signed documents and their keys on their own, documents fed through `TrustedCollection`
//! from a fixed trusted root, and multipart uploads through the server's part reader and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};
use wharf_format::notary::{
    cert_key_id, check_root, check_targets, delegation_allows, file_meta, format_time, restrict_paths, Gun, Key, Root,
    Signed, Signer, Snapshot, Targets, Timestamp, TrustedCollection,
};
use wharf_notary::v1::validate::{self, Part};

use super::{documents, set_meta, signed_part};

pub const GUN: &str = "example.com/team/app";
/// The time the fixtures are checked at (2027); they expire in 2100.
pub const NOW: i64 = 1_800_000_000;
const LATER: i64 = 4_102_444_800;
/// The content type the upload target sends its body with.
pub const UPLOAD_CONTENT_TYPE: &str = "multipart/form-data; boundary=XBOUNDARY";
const NAMES: &[&str] = &["v1", "latest", "stable/1"];

/// A test-only P-256 key and its self-signed certificate for `GUN` (valid 2026 to 2126), the root key.
const ROOT_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghllZgg7GMG8mr8lH
MNrbBEWyClD8ULwBdjBvmCiclB+hRANCAAS0MDxPkosB/jCQY2k3GSicxBcHJIT8
2V3fBmKpa0yWUWpFzbEf0LY4gSfqPJ9CKMe7aAPl/hR4z0VqROkYnKBW
-----END PRIVATE KEY-----
";
const ROOT_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUBhsksxj2IrXjL97hPBiMhCmdKqYwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUZXhhbXBsZS5jb20vdGVhbS9hcHAwIBcNMjYxMjA2MTg0MjAz
WhgPMjEyNjExMTIxODQyMDNaMB8xHTAbBgNVBAMMFGV4YW1wbGUuY29tL3RlYW0v
YXBwMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtDA8T5KLAf4wkGNpNxkonMQX
BySE/Nld3wZiqWtMllFqRc2xH9C2OIEn6jyfQijHu2gD5f4UeM9FakTpGJygVqNQ
ME4wHQYDVR0OBBYEFLi02oGlATc71v20VJJ17bJGnBxLMB8GA1UdIwQYMBaAFLi0
2oGlATc71v20VJJ17bJGnBxLMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAw
RQIgcEphK8f9MZRzzc+Tu9B8UMwczefjAVa7bDOzmsOB3HICIQDtQsAju3HjWq7P
m0PbbmvMn27uFP/8vOSyJ9RiLY2crg==
-----END CERTIFICATE-----
";

/// The fixed signers: root (certificate), targets, snapshot, timestamp, and the delegations' key.
pub struct Fixture {
    pub root: Signer,
    pub targets: Signer,
    pub snapshot: Signer,
    pub timestamp: Signer,
    pub delegated: Signer,
    pub root_bytes: Vec<u8>,
    pub root_doc: Root,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(ROOT_KEY_PEM).expect("the fixed root key parses");
        let root = Signer::ecdsa(key, Some(Key::x509("ecdsa-x509", ROOT_CERT_PEM)));
        let (targets, snapshot) = (Signer::ed25519(&[21; 32]), Signer::ed25519(&[22; 32]));
        let (timestamp, delegated) = (Signer::ed25519(&[23; 32]), Signer::ed25519(&[24; 32]));
        let keys: serde_json::Map<String, Value> = [&root, &targets, &snapshot, &timestamp]
            .iter()
            .map(|s| (s.key_id(), serde_json::to_value(s.public()).expect("a key serializes")))
            .collect();
        let role = |s: &Signer| json!({ "keyids": [s.key_id()], "threshold": 1 });
        let doc = json!({ "_type": "Root", "consistent_snapshot": false, "expires": format_time(LATER, 0),
            "keys": keys, "version": 1, "roles": { "root": role(&root), "targets": role(&targets),
            "snapshot": role(&snapshot), "timestamp": role(&timestamp) } });
        let root_bytes = Signed::sign(&doc, &[&root]).expect("the fixed root signs");
        let signed = Signed::parse(&root_bytes).expect("the fixed root parses");
        let root_doc = check_root(&signed, GUN, NOW, None).expect("the fixed root passes the root rules");
        Fixture { root, targets, snapshot, timestamp, delegated, root_bytes, root_doc }
    })
}

/// `signed` signed by `signer`, with `meta[name]` set to the file meta of each listed document.
fn resign_value(mut signed: Value, signer: &Signer, listed: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    for (name, bytes) in listed {
        set_meta(&mut signed, name, serde_json::to_value(file_meta(bytes)).ok()?);
    }
    Signed::sign(&signed, &[signer]).ok()
}

fn resign(doc: &[u8], signer: &Signer, listed: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    resign_value(signed_part(doc)?, signer, listed)
}

/// A signed document read as every role, checked as a root for `GUN` and as targets under the fixed root; its keys'
/// certificates and its signatures are examined.
pub fn signed(data: &[u8]) {
    let Ok(doc) = Signed::parse(data) else { return };
    let _ = doc.role::<Targets>("targets", "Targets");
    let _ = doc.role::<Snapshot>("snapshot", "Snapshot");
    let _ = doc.role::<Timestamp>("timestamp", "Timestamp");
    let fx = fixture();
    if let Some(spec) = fx.root_doc.roles.get("targets") {
        if let Ok(t) = check_targets("targets", &doc, &fx.root_doc.keys, spec, NOW) {
            let parent: Vec<String> = vec!["stable/".into()];
            for role in &t.delegations.roles {
                let paths = restrict_paths(&parent, &role.paths);
                for name in t.targets.keys().map(String::as_str).chain(NAMES.iter().copied()) {
                    let _ = delegation_allows(&paths, name);
                }
            }
        }
    }
    let _ = check_root(&doc, GUN, NOW, Some(&fx.root_doc));
    let Ok(root) = doc.role::<Root>("root", "Root") else { return };
    for key in root.keys.values() {
        let _ = (key.id(), key.kind(), cert_key_id(key), key.certificate());
        let _ = key.check_root_cert(GUN, NOW);
        for sig in &doc.signatures {
            let _ = key.verifies(&doc.canonical, sig);
        }
    }
}

/// The names of the roles a targets document delegates to, in order.
fn delegated_names(doc: &[u8]) -> Vec<String> {
    let roles = signed_part(doc).and_then(|s| s.pointer("/delegations/roles").cloned());
    let roles = roles.and_then(|r| r.as_array().cloned()).unwrap_or_default();
    roles.iter().filter_map(|r| r.get("name")?.as_str().map(str::to_owned)).collect()
}

/// One mode byte, then `TIMESTAMP NUL SNAPSHOT NUL TARGETS [NUL DELEGATED]...` (one delegated document for each
/// role named by targets, then by earlier delegated documents). Mode bits: 1 re-signs every document with the
/// fixed keys; 2 (with 1) also lists each document's file meta in the one above it; 8 feeds the first document as
/// a new root first. Then targets are searched as docker does.
pub fn trusted(data: &[u8]) {
    trusted_reach(data);
}

/// [`trusted`], returning how many of timestamp, snapshot, targets and delegated documents were accepted.
pub fn trusted_reach(data: &[u8]) -> usize {
    let Some((&mode, rest)) = data.split_first() else { return 0 };
    let (resign_all, chain) = (mode & 1 != 0, mode & 3 == 3);
    let fx = fixture();
    let mut c = TrustedCollection::new(&fx.root_bytes, GUN, NOW).expect("the fixed root is trusted");
    let mut docs = documents(rest);
    if mode & 8 != 0 && !docs.is_empty() {
        let root = docs.remove(0);
        let root = if resign_all { resign(root, &fx.root, &[]) } else { Some(root.to_vec()) };
        if c.update_root(&root.unwrap_or_default()).is_err() {
            return 0;
        }
    }
    let doc = |i: usize| docs.get(i).copied().unwrap_or(b"");
    let mut names = delegated_names(doc(2));
    let mut delegated: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, d) in docs.iter().skip(3).enumerate() {
        let Some(name) = names.get(i).cloned() else { break };
        names.extend(delegated_names(d));
        let bytes = if resign_all { resign(d, &fx.delegated, &[]) } else { Some(d.to_vec()) };
        delegated.push((name, bytes.unwrap_or_default()));
    }
    let (mut timestamp, mut snapshot, mut targets) = (doc(0).to_vec(), doc(1).to_vec(), doc(2).to_vec());
    if resign_all {
        targets = resign(&targets, &fx.targets, &[]).unwrap_or_default();
        let mut listed: Vec<(&str, &[u8])> = vec![("targets", &targets)];
        listed.extend(delegated.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        snapshot = resign(&snapshot, &fx.snapshot, if chain { &listed } else { &[] }).unwrap_or_default();
        let listed: Vec<(&str, &[u8])> = vec![("snapshot", &snapshot)];
        timestamp = resign(&timestamp, &fx.timestamp, if chain { &listed } else { &[] }).unwrap_or_default();
    }
    if c.update_timestamp(&timestamp, None).is_err() {
        return 0;
    }
    if c.update_snapshot(&snapshot, None).is_err() {
        return 1;
    }
    if c.update_targets("targets", &targets).is_err() {
        return 2;
    }
    let accepted = 3 + delegated.iter().filter(|(name, bytes)| c.update_targets(name, bytes).is_ok()).count();
    let mut wanted: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    for role in std::iter::once("targets").chain(delegated.iter().map(|(n, _)| n.as_str())) {
        wanted.extend(c.targets(role).into_iter().flat_map(|t| t.targets.keys().take(8).cloned()));
    }
    for name in &wanted {
        let _ = c.find(name);
    }
    accepted
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime"))
}

/// One mode byte, then a `multipart/form-data` body (boundary `XBOUNDARY`) read by the server's part reader and
/// validated for `GUN`. Mode bits: 1 re-signs each part with the fixed key of its role; 2 stores the fixed root
/// first; 4 has the server hold the snapshot key.
pub fn upload(data: &[u8]) {
    upload_accepted(data);
}

/// [`upload`], returning whether validation accepted the upload.
pub fn upload_accepted(data: &[u8]) -> bool {
    let Some((&mode, body)) = data.split_first() else { return false };
    let body = axum::body::Body::from(body.to_vec());
    let Ok(mut parts) = runtime().block_on(wharf_notary::v1::read_parts(UPLOAD_CONTENT_TYPE, body, 64 << 10)) else {
        return false;
    };
    let fx = fixture();
    if mode & 1 != 0 {
        parts = parts
            .into_iter()
            .filter_map(|p| {
                let signer = match p.role.as_str() {
                    "root" => &fx.root,
                    "targets" => &fx.targets,
                    "snapshot" => &fx.snapshot,
                    "timestamp" => &fx.timestamp,
                    _ => &fx.delegated,
                };
                let bytes = resign_value(p.doc.signed, signer, &[])?;
                Some(Part { role: p.role, doc: Signed::parse(&bytes).ok()? })
            })
            .collect();
    }
    let mut stored = BTreeMap::new();
    if mode & 2 != 0 {
        stored.insert("root".to_string(), fx.root_bytes.clone());
    }
    let held_snapshot: BTreeSet<String> =
        if mode & 4 != 0 { BTreeSet::from([fx.snapshot.key_id()]) } else { BTreeSet::new() };
    let held_timestamp = BTreeSet::from([fx.timestamp.key_id()]);
    let gun: Gun = GUN.parse().expect("a valid GUN");
    validate::validate(&gun, NOW, parts, &stored, &held_snapshot, &held_timestamp).is_ok()
}
