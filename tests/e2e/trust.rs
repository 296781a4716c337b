//! The trust service of a real `wharf serve`: publishing TUF metadata, python-tuf's reference client (through
//! `../shared/peers/tuf-client-check`) verifying what was published, and the refusals that need the
//! binary (the validator's rules are table rows beside it, `notary/src/tuf/validate/tests.rs`).

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{data, sha256, Server};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use wharf_format::tuf::{
    DelegatedRole, Delegations, Envelope, Expires, PublicKey, RoleKeys, Root, Signature, SigningKey, TargetFile,
    Targets, SPEC_VERSION,
};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn keymap(keys: &[&PublicKey]) -> BTreeMap<String, PublicKey> {
    keys.iter().map(|k| (k.key_id(), (*k).clone())).collect()
}

struct Service {
    timestamp: PublicKey,
    snapshot: PublicKey,
}

fn root_doc(version: u64, root_keys: &[&SigningKey], threshold: u32, targets: &SigningKey, svc: &Service) -> Root {
    let mut all: Vec<&PublicKey> = root_keys.iter().map(|k| k.public()).collect();
    all.extend([targets.public(), &svc.timestamp, &svc.snapshot]);
    let ids = |ks: &[&PublicKey]| ks.iter().map(|k| k.key_id()).collect::<Vec<_>>();
    let root_pub: Vec<&PublicKey> = root_keys.iter().map(|k| k.public()).collect();
    Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: Expires(now() + 365 * 86_400),
        keys: keymap(&all),
        roles: BTreeMap::from([
            ("root".into(), RoleKeys { keyids: ids(&root_pub), threshold }),
            ("targets".into(), RoleKeys { keyids: ids(&[targets.public()]), threshold: 1 }),
            ("timestamp".into(), RoleKeys { keyids: ids(&[&svc.timestamp]), threshold: 1 }),
            ("snapshot".into(), RoleKeys { keyids: ids(&[&svc.snapshot]), threshold: 1 }),
        ]),
    }
}

fn targets_doc(version: u64, entries: &[(&str, u64, &str)], delegations: Option<Delegations>) -> Targets {
    Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: Expires(now() + 90 * 86_400),
        targets: entries
            .iter()
            .map(|(name, len, hex)| {
                let t = TargetFile {
                    length: *len,
                    hashes: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
                    custom: Some(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json"})),
                };
                (name.to_string(), t)
            })
            .collect(),
        delegations,
    }
}

fn signed<T: serde::Serialize>(doc: &T, keys: &[&SigningKey]) -> Value {
    serde_json::to_value(Envelope::sign(doc, keys).unwrap()).unwrap()
}

struct T {
    s: Server,
    c: Client,
}

impl T {
    fn new(env: &[(&str, &str)]) -> T {
        T { s: Server::start(env), c: Client::new() }
    }

    async fn service_keys(&self, repo: &str) -> Service {
        let r = self.c.post(self.s.url(&format!("/v2/{repo}/_tuf/keys"))).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        let k = |role: &str| serde_json::from_value::<PublicKey>(v[role][0]["key"].clone()).unwrap();
        Service { timestamp: k("timestamp"), snapshot: k("snapshot") }
    }

    async fn publish(&self, repo: &str, body: Value) -> (StatusCode, Value) {
        let r = self.c.post(self.s.url(&format!("/v2/{repo}/_tuf/publish"))).json(&body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn refused(&self, repo: &str, body: Value, needle: &str) {
        let (status, v) = self.publish(repo, body).await;
        let msg = v["errors"][0]["message"].as_str().unwrap_or("").to_string();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{needle}: {v}");
        assert_eq!(v["errors"][0]["code"], "TUF_REFUSED", "{needle}: {v}");
        assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
    }

    /// Pushes a small image and returns (manifest length, sha256 hex).
    async fn push_image(&self, repo: &str, seed: u8) -> (u64, String) {
        let mut digests = Vec::new();
        for blob in [format!("{{\"seed\":{seed}}}").into_bytes(), data(2000, seed)] {
            let d = sha256(&blob);
            let r = self
                .c
                .post(self.s.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            digests.push((d, blob.len()));
        }
        let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digests[0].0, "size": digests[0].1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digests[1].0, "size": digests[1].1}]});
        let body = serde_json::to_vec(&m).unwrap();
        let r = self
            .c
            .put(self.s.url(&format!("/v2/{repo}/manifests/{}", sha256(&body))))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        (body.len() as u64, sha256(&body).trim_start_matches("sha256:").to_string())
    }

    async fn get_json(&self, path: &str) -> Value {
        let r = self.c.get(self.s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }
}

/// Runs python-tuf's reference client against the repository and returns its output; asserts it passed.
fn tuf_client_check(s: &Server, repo: &str, root: &Value, target: &str, sha: &str) -> String {
    let script = common::peers::peers().join("tuf-client-check");
    let dir = tempfile::tempdir().unwrap();
    let root_file = dir.path().join("root.json");
    std::fs::write(&root_file, serde_json::to_vec(root).unwrap()).unwrap();
    let out = Command::new(&script)
        .arg(s.url(&format!("/v2/{repo}/_tuf/")))
        .arg(s.url(&format!("/v2/{repo}/_tuf/targets/")))
        .arg(&root_file)
        .arg(target)
        .arg(sha)
        .output()
        .expect("run tuf-client-check (needs python3 with tuf 7)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let last = text.lines().rfind(|l| l.contains(" passed, ")).unwrap_or("").to_string();
    assert!(out.status.success() && last.ends_with(", 0 failed"), "tuf-client-check failed:\n{text}");
    text
}

#[tokio::test]
async fn python_tuf_verifies_a_published_tag_through_rotation_and_renewal() {
    let t = T::new(&[("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", "6"), ("WHARF_TRUST_RENEW_CHECK_SECS", "1")]);
    let repo = "team/app";
    let (len, sha) = t.push_image(repo, 1).await;
    let svc = t.service_keys(repo).await;
    let (root_a, targets_key) = (key(1), key(2));
    let root1 = signed(&root_doc(1, &[&root_a], 1, &targets_key, &svc), &[&root_a]);
    let targets1 = signed(&targets_doc(1, &[("v1", len, &sha)], None), &[&targets_key]);
    let (status, v) = t.publish(repo, json!({"root": root1, "targets": targets1})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["snapshot"], 1);
    // The layout any TUF client expects.
    for path in ["root.json", "1.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"] {
        t.get_json(&format!("/v2/{repo}/_tuf/{path}")).await;
    }
    let out = tuf_client_check(&t.s, repo, &root1, "v1", &sha);
    assert!(out.contains("PASS"), "{out}");

    // Root rotation: a new root key, signed by the old and the new; the client starts from root v1.
    let root_b = key(3);
    let root2 = signed(&root_doc(2, &[&root_b], 1, &targets_key, &svc), &[&root_a, &root_b]);
    let (status, v) = t.publish(repo, json!({"root": root2})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let out = tuf_client_check(&t.s, repo, &root1, "v1", &sha);
    assert!(out.contains("root v2"), "{out}");

    // Timestamp renewal with nobody publishing: the version moves on by itself before expiry.
    let first = t.get_json(&format!("/v2/{repo}/_tuf/timestamp.json")).await["signed"]["version"].as_u64().unwrap();
    let mut renewed = first;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        renewed = t.get_json(&format!("/v2/{repo}/_tuf/timestamp.json")).await["signed"]["version"].as_u64().unwrap();
        if renewed > first {
            break;
        }
    }
    assert!(renewed > first, "timestamp was not renewed: still version {first}");
    tuf_client_check(&t.s, repo, &root1, "v1", &sha);

    // The history keeps every version.
    let h = t.get_json(&format!("/v2/{repo}/_tuf/history")).await;
    let roles: Vec<&str> = h["history"].as_array().unwrap().iter().map(|e| e["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "root").count(), 2);
    assert!(roles.iter().filter(|r| **r == "timestamp").count() >= 3);

    // Deleting the trust data stops serving it; the history stays.
    assert_eq!(t.c.delete(t.s.url(&format!("/v2/{repo}/_tuf/"))).send().await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        t.c.get(t.s.url(&format!("/v2/{repo}/_tuf/timestamp.json"))).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert!(!t.get_json(&format!("/v2/{repo}/_tuf/history")).await["history"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn service_keys_survive_restart_and_rotate() {
    let mut t = T::new(&[]);
    let svc = t.service_keys("r").await;
    t.s.restart();
    let t = T { s: t.s, c: Client::new() };
    let again = t.service_keys("r").await;
    assert_eq!(svc.timestamp, again.timestamp, "keys are persisted (sealed) and reopen after restart");
    let r = t.c.post(t.s.url("/v2/r/_tuf/keys/timestamp/rotate")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let listed = t.get_json("/v2/r/_tuf/keys").await;
    assert_eq!(listed["timestamp"].as_array().unwrap().len(), 2);
    assert_ne!(listed["timestamp"][0]["key"], serde_json::to_value(&svc.timestamp).unwrap(), "newest first");
    let r = t.c.post(t.s.url("/v2/r/_tuf/keys/root/rotate")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// The refusals that need the binary: the body's parsing and size limit, the answer's status and error body, and
/// that a refused publish stores nothing. Each validator rule is a row in `notary/src/tuf/validate/tests.rs`; the
/// two signature checks here (bytes changed after signing, a signature over non-canonical bytes) also prove that
/// the server checks signatures over the canonical form of what it received.
#[tokio::test]
async fn every_rule_has_a_refusal() {
    let t = T::new(&[("WHARF_TRUST_MAX_METADATA_SIZE", "20000")]);
    let repo = "rules";
    let (len, sha) = t.push_image(repo, 2).await;
    let svc = t.service_keys(repo).await;
    let (ra, rb, rc, tk) = (key(11), key(12), key(13), key(14));

    // Publishing before any root: refused, and nothing is stored.
    t.refused(repo, json!({"targets": signed(&targets_doc(1, &[], None), &[&tk])}), "no root yet").await;
    let r = t.c.get(t.s.url(&format!("/v2/{repo}/_tuf/timestamp.json"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a refused publish stores nothing");
    let r1 = root_doc(1, &[&ra, &rb], 2, &tk, &svc);
    // A bad signature: the bytes signed are not the bytes sent.
    let mut bad = signed(&r1, &[&ra, &rb]);
    bad["signed"]["expires"] = json!("2099-01-01T00:00:00Z");
    t.refused(repo, json!({"root": bad}), "valid signature").await;
    // A signature made over non-canonical bytes.
    let pretty = serde_json::to_vec_pretty(&serde_json::to_value(&r1).unwrap()).unwrap();
    let noncanon = json!({"signed": r1, "signatures": [
        Signature { keyid: ra.key_id().clone(), sig: ra.sign(&pretty) },
        Signature { keyid: rb.key_id().clone(), sig: rb.sign(&pretty) }]});
    t.refused(repo, noncanon_root(noncanon), "valid signature").await;
    // Malformed JSON and unknown fields.
    let r = t.c.post(t.s.url(&format!("/v2/{repo}/_tuf/publish"))).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("TUF_MALFORMED"));
    let (status, _) = t.publish(repo, json!({"snapshot": signed(&r1, &[&ra])})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Now a good first publish, with a delegation to "release" for v1.* tags.
    let dk = key(16);
    let deleg = Delegations {
        keys: keymap(&[dk.public()]),
        succinct_roles: None,
        roles: vec![DelegatedRole {
            name: "release".into(),
            keyids: vec![dk.key_id().clone()],
            threshold: 1,
            terminating: true,
            paths: Some(vec!["v1.*".into()]),
            path_hash_prefixes: None,
        }],
    };
    let root1 = signed(&r1, &[&ra, &rb]);
    let (status, v) = t.publish(repo, json!({"root": root1, "targets": signed(&targets_doc(1, &[("latest", len, &sha)], Some(deleg.clone())), &[&tk])})).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // A rule that needs the stored state (the version must go up): refused, and what is served stays.
    t.refused(
        repo,
        json!({"targets": signed(&targets_doc(1, &[("latest", len, &sha)], Some(deleg.clone())), &[&tk])}),
        "at least 2",
    )
    .await;
    assert_eq!(t.get_json(&format!("/v2/{repo}/_tuf/snapshot.json")).await["signed"]["version"], 1);
    // Metadata over the size limit.
    let many: Vec<(String, u64, String)> = (0..400).map(|i| (format!("t{i}"), len, sha.clone())).collect();
    let refs: Vec<(&str, u64, &str)> = many.iter().map(|(a, b, c)| (a.as_str(), *b, c.as_str())).collect();
    let r =
        t.c.post(t.s.url(&format!("/v2/{repo}/_tuf/publish")))
            .json(&json!({"targets": signed(&targets_doc(2, &refs, None), &[&tk])}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // The delegated role inside its paths is accepted and lands in snapshot; then revoking the delegation removes it.
    let release = targets_doc(1, &[("v1.0", len, &sha)], None);
    let (status, v) = t.publish(repo, json!({"delegations": {"release": signed(&release, &[&dk])}})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["delegations"]["release"], 1);
    let snap = t.get_json(&format!("/v2/{repo}/_tuf/snapshot.json")).await;
    assert_eq!(snap["signed"]["meta"]["release.json"]["version"], 1);
    t.get_json(&format!("/v2/{repo}/_tuf/1.release.json")).await;
    let (status, v) =
        t.publish(repo, json!({"targets": signed(&targets_doc(2, &[("latest", len, &sha)], None), &[&tk])})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let snap = t.get_json(&format!("/v2/{repo}/_tuf/snapshot.json")).await;
    assert!(snap["signed"]["meta"].get("release.json").is_none(), "{snap}");
    // Rotation with both thresholds met is accepted.
    let r2 = root_doc(2, &[&rc], 1, &tk, &svc);
    let (status, v) = t.publish(repo, json!({"root": signed(&r2, &[&ra, &rb, &rc])})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

fn noncanon_root(v: Value) -> Value {
    json!({"root": v})
}

#[tokio::test]
async fn racing_publishes_never_mix() {
    let t = T::new(&[]);
    let repo = "race";
    let (len, sha) = t.push_image(repo, 3).await;
    let svc = t.service_keys(repo).await;
    let (ra, tk) = (key(21), key(22));
    let root = signed(&root_doc(1, &[&ra], 1, &tk, &svc), &[&ra]);
    let (status, _) = t
        .publish(repo, json!({"root": root, "targets": signed(&targets_doc(1, &[("a", len, &sha)], None), &[&tk])}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut tasks = Vec::new();
    for v in 2..10u64 {
        let body = json!({"targets": signed(&targets_doc(v, &[("a", len, &sha)], None), &[&tk])});
        let url = t.s.url(&format!("/v2/{repo}/_tuf/publish"));
        tasks.push(tokio::spawn(async move { Client::new().post(url).json(&body).send().await.unwrap().status() }));
    }
    let mut ok = 0;
    for task in tasks {
        let s = task.await.unwrap();
        assert!(matches!(s.as_u16(), 200 | 409 | 400), "{s}");
        ok += (s == StatusCode::OK) as u32;
    }
    assert!(ok >= 1);
    // Whatever won, snapshot and timestamp describe exactly what is served.
    let targets = t.get_json(&format!("/v2/{repo}/_tuf/targets.json")).await;
    let snap = t.get_json(&format!("/v2/{repo}/_tuf/snapshot.json")).await;
    let ts = t.get_json(&format!("/v2/{repo}/_tuf/timestamp.json")).await;
    assert_eq!(snap["signed"]["meta"]["targets.json"]["version"], targets["signed"]["version"]);
    assert_eq!(ts["signed"]["meta"]["snapshot.json"]["version"], snap["signed"]["version"]);
    assert_eq!(snap["signed"]["version"].as_u64().unwrap(), 1 + ok as u64);
}

#[tokio::test]
async fn wharf_client_resolves_tags_through_the_trust_service() {
    use wharf_client::io::transport::Transport;
    use wharf_client::io::trust::{find_target, refresh, TrustError};
    use wharf_client::io::tuf::local::Memory;
    use wharf_client::io::tuf::updater::Options;
    use wharf_format::tuf::TufError;

    let t = T::new(&[]);
    let repo = "client/app";
    let (len, sha) = t.push_image(repo, 4).await;
    let svc = t.service_keys(repo).await;
    let (ra, tk, dk) = (key(31), key(32), key(33));
    let deleg = Delegations {
        keys: keymap(&[dk.public()]),
        succinct_roles: None,
        roles: vec![DelegatedRole {
            name: "release".into(),
            keyids: vec![dk.key_id().clone()],
            threshold: 1,
            terminating: true,
            paths: Some(vec!["v1.*".into()]),
            path_hash_prefixes: None,
        }],
    };
    let root = Envelope::sign(&root_doc(1, &[&ra], 1, &tk, &svc), &[&ra]).unwrap();
    let body = json!({"root": root, "targets": signed(&targets_doc(1, &[("v1", len, &sha)], Some(deleg.clone())), &[&tk]),
        "delegations": {"release": signed(&targets_doc(1, &[("v1.5", len, &sha)], None), &[&dk])}});
    let (status, v) = t.publish(repo, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let transport = Transport::new(&t.s.addr, &[]).unwrap();
    let name = repo.parse().unwrap();
    let opts = Options::new(now());
    let root_bytes = root.to_bytes().unwrap();
    let mut r = refresh(&transport, &name, &root_bytes, Memory::default(), &opts).await.unwrap();
    let top = find_target(&mut r, "v1").await.unwrap();
    assert_eq!((top.length, top.digest.hex(), top.role.as_str()), (len, sha.as_str(), "targets"));
    assert_eq!(top.media_type.as_deref(), Some("application/vnd.oci.image.manifest.v1+json"));
    let delegated = find_target(&mut r, "v1.5").await.unwrap();
    assert_eq!(delegated.role.as_str(), "release");
    assert!(matches!(find_target(&mut r, "v9").await, Err(TrustError::NotSigned(_))));

    // What was trusted before (kept by the updater) guards the next refresh against rollback.
    let previous = r.local().clone();
    assert!(previous.0.contains_key("timestamp") && previous.0.contains_key("snapshot"));
    let (status, _) =
        t.publish(repo, json!({"targets": signed(&targets_doc(2, &[("v1", len, &sha)], None), &[&tk])})).await;
    assert_eq!(status, StatusCode::OK);
    let mut r2 = refresh(&transport, &name, &root_bytes, previous.clone(), &opts).await.unwrap();
    // The delegation was revoked by targets v2: its tag no longer resolves.
    assert!(matches!(find_target(&mut r2, "v1.5").await, Err(TrustError::NotSigned(_))));
    // A kept timestamp newer than the served one (rollback) is refused: that row, with the other rollback, freeze,
    // rotation, delegation and limit rows, is in the updater's in-memory table (`client/src/io/tuf/tests.rs`),
    // since a real trust service never serves an older timestamp.
    // A client whose clock says the timestamp expired refuses it (freeze).
    let later = Options::new(now() + 2 * 86_400);
    let err = refresh(&transport, &name, &root_bytes, previous, &later).await.err().unwrap();
    assert!(matches!(err, TrustError::Refused(TufError::Expired { .. })), "{err}");
}
