//! notary-server's upload rules as table rows: each row starts from a valid upload, breaks one rule, and names the
//! error it expects (notary-server's validation error name, or `Stored(role)` for a server fault, then words its
//! message must contain). Documents are signed with the format's own `Signed::sign`; the root key is a P-256 key
//! with a self-signed certificate for the GUN, as `notary init` makes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};
use wharf_format::notary::{file_meta, format_time, Gun, Key, Signed, Signer};

use super::{validate, Accepted, Part};
use crate::error::V1Error;
use crate::testing::{self, LATER, NOW};

const GUN: &str = "example.com/team/app";

// The keys: the root certificate, a second one for the GUN, one for another GUN; then ed25519 keys by seed.
const ROOT: u8 = 1;
const ROOT2: u8 = 7;
const ELSEWHERE: u8 = 8;
const TARGETS: u8 = 2;
const SNAPSHOT: u8 = 3;
const TIMESTAMP: u8 = 4;
const TEAM: u8 = 5;
const OTHER: u8 = 6;

fn cert_signer(cn: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let pem = params.self_signed(&pair).expect("a self-signed certificate").pem();
    let key = p256::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).expect("rcgen's key reads back");
    Signer::ecdsa(key, Some(Key::x509("ecdsa-x509", &pem)))
}

fn signer(k: u8) -> Signer {
    static CERTS: OnceLock<[Signer; 3]> = OnceLock::new();
    let certs = CERTS.get_or_init(|| [cert_signer(GUN), cert_signer(GUN), cert_signer("example.com/other/app")]);
    match k {
        ROOT => certs[0].clone(),
        ROOT2 => certs[1].clone(),
        ELSEWHERE => certs[2].clone(),
        seed => Signer::ed25519(&[seed; 32]),
    }
}

fn id(k: u8) -> String {
    signer(k).key_id()
}

fn keys(ks: &[u8]) -> Value {
    ks.iter().map(|k| (id(*k), serde_json::to_value(signer(*k).public()).expect("a key serializes"))).collect()
}

fn role(k: u8) -> Value {
    json!({ "keyids": [id(k)], "threshold": 1 })
}

fn root(version: i64, root_key: u8) -> Value {
    json!({
        "_type": "Root", "consistent_snapshot": false, "expires": format_time(LATER, 0), "version": version,
        "keys": keys(&[root_key, TARGETS, SNAPSHOT, TIMESTAMP]),
        "roles": { "root": role(root_key), "targets": role(TARGETS), "snapshot": role(SNAPSHOT),
            "timestamp": role(TIMESTAMP) },
    })
}

/// Targets or a delegated role listing `target`, delegating `child` (if any) the paths `["v"]` under key `TEAM`.
fn targets(version: i64, target: &str, child: Option<&str>) -> Value {
    let roles: Vec<Value> = child
        .iter()
        .map(|name| json!({ "name": name, "keyids": [id(TEAM)], "threshold": 1, "paths": ["v"] }))
        .collect();
    let keys = if child.is_some() { keys(&[TEAM]) } else { json!({}) };
    json!({
        "_type": "Targets", "delegations": { "keys": keys, "roles": roles }, "expires": format_time(LATER, 0),
        "targets": { target: file_meta(target.as_bytes()) }, "version": version,
    })
}

/// A snapshot; `meta` is filled when the case runs, from the documents it describes.
fn snapshot(version: i64) -> Value {
    json!({ "_type": "Snapshot", "expires": format_time(LATER, 0), "meta": {}, "version": version })
}

/// A document to sign when the case runs.
struct Doc {
    role: &'static str,
    json: Value,
    signers: Vec<u8>,
}

fn doc(role: &'static str, json: Value, signers: &[u8]) -> Doc {
    Doc { role, json, signers: signers.to_vec() }
}

fn sign(json: &Value, keys: &[u8]) -> Vec<u8> {
    let signers: Vec<Signer> = keys.iter().map(|k| signer(*k)).collect();
    Signed::sign(json, &signers.iter().collect::<Vec<_>>()).expect("a fixture signs")
}

/// Signs `docs`, a snapshot last with the meta of the documents before it (and of `under`) set first, then edited
/// by `snap_edit`.
fn sign_all(docs: &[Doc], under: &BTreeMap<String, Vec<u8>>, snap_edit: fn(&mut Value)) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for d in docs.iter().filter(|d| d.role != "snapshot") {
        out.push((d.role.into(), sign(&d.json, &d.signers)));
    }
    if let Some(d) = docs.iter().find(|d| d.role == "snapshot") {
        let mut files: BTreeMap<&str, &[u8]> = under.iter().map(|(r, b)| (r.as_str(), b.as_slice())).collect();
        files.extend(out.iter().map(|(r, b)| (r.as_str(), b.as_slice())));
        files.retain(|r, _| *r != "snapshot" && *r != "timestamp");
        let mut json = d.json.clone();
        for (r, b) in files {
            json["meta"][r] = serde_json::to_value(file_meta(b)).expect("file meta serializes");
        }
        snap_edit(&mut json);
        out.push((d.role.into(), sign(&json, &d.signers)));
    }
    out
}

/// One upload: the stored documents (then raw overrides), the parts, and the server's held keys.
struct Case {
    stored: Vec<Doc>,
    stored_raw: Vec<(&'static str, Vec<u8>)>,
    parts: Vec<Doc>,
    snap_edit: fn(&mut Value),
    held_snapshot: Vec<u8>,
    held_timestamp: Vec<u8>,
}

impl Case {
    /// The first publish: root, targets and `targets/team`; the server signs snapshot.
    fn first() -> Case {
        Case {
            stored: vec![],
            stored_raw: vec![],
            parts: vec![
                doc("root", root(1, ROOT), &[ROOT]),
                doc("targets", targets(1, "v1", Some("targets/team")), &[TARGETS]),
                doc("targets/team", targets(1, "v2", None), &[TEAM]),
            ],
            snap_edit: |_| {},
            held_snapshot: vec![SNAPSHOT],
            held_timestamp: vec![TIMESTAMP],
        }
    }

    /// The first publish with the client's snapshot.
    fn first_with_snapshot() -> Case {
        let mut c = Case::first();
        c.parts.push(doc("snapshot", snapshot(1), &[SNAPSHOT]));
        c
    }

    /// After the first publish, uploading nothing yet.
    fn stored() -> Case {
        let mut c = Case::first_with_snapshot();
        c.stored = std::mem::take(&mut c.parts);
        c
    }

    fn part(&mut self, role: &str) -> &mut Doc {
        self.parts.iter_mut().find(|d| d.role == role).expect("the case uploads the role")
    }

    fn run(&self) -> Result<Accepted, V1Error> {
        let mut stored: BTreeMap<String, Vec<u8>> =
            sign_all(&self.stored, &BTreeMap::new(), |_| {}).into_iter().collect();
        stored.extend(self.stored_raw.iter().map(|(r, b)| (r.to_string(), b.clone())));
        let parts = sign_all(&self.parts, &stored, self.snap_edit)
            .into_iter()
            .map(|(r, b)| Part { role: r.parse().expect("a role"), doc: Signed::parse(&b).expect("a signed document") })
            .collect();
        let ids = |ks: &[u8]| -> BTreeSet<String> { ks.iter().map(|k| id(*k)).collect() };
        let gun: Gun = GUN.parse().expect("a GUN");
        validate(&gun, NOW, parts, &stored, &ids(&self.held_snapshot), &ids(&self.held_timestamp))
    }
}

/// The part of an error a row names: notary-server's validation error name, or the variant (and role).
fn tag(e: &V1Error) -> String {
    match e {
        V1Error::Invalid { name, missing: Some(m), .. } => format!("{name}({m})"),
        V1Error::Invalid { name, .. } => name.to_string(),
        V1Error::Stored { role, .. } => format!("Stored({role})"),
        other => format!("{other:?}").split(['(', ' ']).next().unwrap_or_default().to_string(),
    }
}

type Row = testing::Row<Case>;

fn table(rows: &[Row]) {
    testing::table(rows, |case| match case.run() {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{} {e}", tag(&e)),
    });
}

fn garbage(c: &mut Case, role: &'static str) {
    c.stored_raw.push((role, b"{}".to_vec()));
}

#[test]
fn accepted() {
    table(&[
        ("first publish, the server signs snapshot", Case::first, |_| {}, "ok"),
        ("first publish with the client's snapshot", Case::first_with_snapshot, |_| {}, "ok"),
        (
            "an uploaded timestamp is ignored",
            Case::first,
            |c| {
                let ts = json!({ "_type": "Timestamp", "expires": format_time(LATER, 0), "meta": {}, "version": 9 });
                c.parts.push(doc("timestamp", ts, &[OTHER]))
            },
            "ok",
        ),
        ("targets update", Case::stored, |c| c.parts.push(doc("targets", targets(2, "v3", None), &[TARGETS])), "ok"),
        (
            "a delegated role under the stored targets",
            Case::stored,
            |c| c.parts.push(doc("targets/team", targets(2, "v3", None), &[TEAM])),
            "ok",
        ),
        ("the same root again", Case::stored, |c| c.parts.push(doc("root", root(1, ROOT), &[ROOT])), "ok"),
        (
            "root rotation signed by both roots",
            Case::stored,
            |c| c.parts.push(doc("root", root(2, ROOT2), &[ROOT, ROOT2])),
            "ok",
        ),
    ]);
}

#[test]
fn root_rules() {
    table(&[
        ("no root stored or uploaded", Case::first, |c| _ = c.parts.remove(0), "ErrValidation no pre-existing root"),
        (
            "a version skipped",
            Case::stored,
            |c| c.parts.push(doc("root", root(3, ROOT), &[ROOT])),
            "ErrBadRoot must increment the version. Current 1, new 3",
        ),
        (
            "_type is not Root",
            Case::first,
            |c| c.part("root").json["_type"] = json!("Targets"),
            "ErrBadRoot expected type Root",
        ),
        (
            "a base role is missing",
            Case::first,
            |c| _ = c.part("root").json["roles"].as_object_mut().unwrap().remove("snapshot"),
            "ErrBadRoot missing snapshot role specification",
        ),
        (
            "a role's threshold is 0",
            Case::first,
            |c| c.part("root").json["roles"]["targets"]["threshold"] = json!(0),
            "ErrBadRoot invalid threshold specified for targets",
        ),
        (
            "not signed by its root certificate's key",
            Case::first,
            |c| c.part("root").signers = vec![OTHER],
            "ErrBadRoot failed to validate integrity of roots",
        ),
        (
            "a root certificate for another GUN",
            Case::first,
            |c| *c.part("root") = doc("root", root(1, ELSEWHERE), &[ELSEWHERE]),
            "ErrBadRoot unable to retrieve valid leaf certificates",
        ),
        (
            "rotation not signed by the previous root",
            Case::stored,
            |c| c.parts.push(doc("root", root(2, ROOT2), &[ROOT2])),
            "ErrBadRoot could not rotate trust",
        ),
        (
            "expired",
            Case::first,
            |c| c.part("root").json["expires"] = json!(format_time(NOW, 0)),
            "ErrBadRoot root expired",
        ),
        (
            "the server holds no timestamp key root names",
            Case::first,
            |c| c.held_timestamp = vec![OTHER],
            "ErrBadRoot no  timestamp keys exist on the server",
        ),
        ("the stored root does not parse", Case::stored, |c| garbage(c, "root"), "Stored(root)"),
    ]);
}

#[test]
fn targets_rules() {
    table(&[
        (
            "targets not signed by the targets key",
            Case::first,
            |c| c.part("targets").signers = vec![OTHER],
            "ErrBadTargets did not meet threshold for targets",
        ),
        (
            "targets expired",
            Case::first,
            |c| c.part("targets").json["expires"] = json!(format_time(NOW, 0)),
            "ErrBadTargets targets expired",
        ),
        ("targets version 0", Case::first, |c| c.part("targets").json["version"] = json!(0), "ErrBadTargets below 1"),
        (
            "a delegation that is not a direct child",
            Case::first,
            |c| c.part("targets").json = targets(1, "v1", Some("targets/team/sub")),
            "ErrBadTargets not a valid direct child role",
        ),
        (
            "a delegated role whose parent does not exist",
            Case::first,
            |c| c.part("targets/team").role = "targets/team/sub",
            "ErrBadTargets its parent targets/team does not exist",
        ),
        (
            "a delegated role its parent does not delegate",
            Case::first,
            |c| c.part("targets/team").role = "targets/other",
            "ErrBadTargets targets/other is not delegated by targets",
        ),
        (
            "a delegated role not signed by its key",
            Case::first,
            |c| c.part("targets/team").signers = vec![OTHER],
            "ErrBadTargets did not meet threshold for targets/team",
        ),
        (
            "a delegated target outside its paths",
            Case::first,
            |c| c.part("targets/team").json = targets(1, "latest", None),
            "ErrBadTargets outside its delegated paths",
        ),
        (
            "a grandchild's paths restricted by its stored parent's",
            Case::stored,
            |c| {
                // The stored team delegates `v` and `w` to sub; targets gave team only `v`.
                let team = c.stored.iter_mut().find(|d| d.role == "targets/team").unwrap();
                team.json = targets(1, "v2", Some("targets/team/sub"));
                team.json["delegations"]["roles"][0]["paths"] = json!(["v", "w"]);
                c.parts.push(doc("targets/team/sub", targets(1, "w1", None), &[TEAM]));
            },
            "ErrBadTargets outside its delegated paths",
        ),
        (
            "the stored parent does not parse",
            Case::stored,
            |c| {
                garbage(c, "targets");
                c.parts.push(doc("targets/team", targets(2, "v3", None), &[TEAM]));
            },
            "Stored(targets)",
        ),
    ]);
}

#[test]
fn snapshot_rules() {
    table(&[
        (
            "not signed by the snapshot key",
            Case::first_with_snapshot,
            |c| c.part("snapshot").signers = vec![OTHER],
            "ErrBadSnapshot did not meet threshold for snapshot",
        ),
        (
            "_type is not Snapshot",
            Case::first_with_snapshot,
            |c| c.part("snapshot").json["_type"] = json!("Timestamp"),
            "ErrBadSnapshot expected type Snapshot",
        ),
        (
            "expired",
            Case::first_with_snapshot,
            |c| c.part("snapshot").json["expires"] = json!(format_time(NOW, 0)),
            "ErrBadSnapshot snapshot expired",
        ),
        (
            "no sha256 for targets",
            Case::first_with_snapshot,
            |c| c.snap_edit = |s| _ = s["meta"]["targets"]["hashes"].as_object_mut().unwrap().remove("sha256"),
            "ErrBadSnapshot snapshot has no sha256 for targets",
        ),
        (
            "a listed document that does not match",
            Case::first_with_snapshot,
            |c| c.snap_edit = |s| s["meta"]["root"]["length"] = json!(1),
            "ErrBadSnapshot length of root did not match",
        ),
        (
            "none uploaded and the server holds no snapshot key root names",
            Case::first,
            |c| c.held_snapshot = vec![OTHER],
            "ErrBadHierarchy(snapshot) server does not hold current snapshot key",
        ),
        (
            "the stored snapshot does not parse",
            Case::stored,
            |c| {
                garbage(c, "snapshot");
                c.parts.push(doc("targets", targets(2, "v3", None), &[TARGETS]));
            },
            "Stored(snapshot)",
        ),
    ]);
}
