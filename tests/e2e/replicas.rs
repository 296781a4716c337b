//! Two replicas on one PostgreSQL database and one S3 bucket: what one writes the other serves at once, and trust
//! renewal runs on one replica per period (a lease in the database), not on each.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;

fn replicas(extra: &[(&str, &str)]) -> (Server, Server) {
    let shared = common::shared_stack();
    let mut env: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    (Server::start(&env), Server::start(&env))
}

fn push_image(s: &Server, repo: &str, tag: &str) -> String {
    let http = reqwest::blocking::Client::new();
    let mut descs = Vec::new();
    for blob in [br#"{"architecture":"amd64","os":"linux"}"#.to_vec(), common::data(10_000, 3)] {
        let d = common::sha256(&blob);
        let r = http.post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}"))).body(blob.clone()).send().unwrap();
        assert_eq!(r.status(), 201);
        descs.push(serde_json::json!({ "digest": d, "size": blob.len() }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": descs[0]["digest"], "size": descs[0]["size"] },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": descs[1]["digest"], "size": descs[1]["size"] }],
    })
    .to_string();
    let r = http
        .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    common::sha256(manifest.as_bytes())
}

#[test]
fn a_tag_pushed_through_one_replica_is_served_by_the_other_at_once() {
    let (a, b) = replicas(&[]);
    let digest = push_image(&a, "shared/app", "v1");
    let started = Instant::now();
    let r = reqwest::blocking::Client::new()
        .get(b.url("/v2/shared/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), digest);
    assert!(started.elapsed() < Duration::from_secs(1));
    let tags: serde_json::Value = reqwest::blocking::get(b.url("/v2/shared/app/tags/list")).unwrap().json().unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
}

fn timestamp_version(s: &Server, repo: &str) -> u64 {
    let v: serde_json::Value =
        reqwest::blocking::get(s.url(&format!("/v2/{repo}/_tuf/timestamp.json"))).unwrap().json().unwrap();
    v["signed"]["version"].as_u64().unwrap()
}

#[test]
fn trust_renewal_runs_once_per_period_not_once_per_replica() {
    // Timestamps live 4 s and are renewed when half is left: a period of about 2 s; each replica checks every second.
    let (a, b) = replicas(&[("WHARF_TRUST_TIMESTAMP_LIFETIME_SECS", "4"), ("WHARF_TRUST_RENEW_CHECK_SECS", "1")]);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(common::wharf_bin())
        .args(["trust", "init", &format!("{}/shared/signed", a.addr)])
        .env("WHARF_CONFIG_DIR", home.path().join("config"))
        .env("WHARF_STORE", home.path().join("store"))
        .env("WHARF_ROOT_PASSPHRASE", "root secret")
        .env("WHARF_REPOSITORY_PASSPHRASE", "repo secret")
        .output()
        .unwrap();
    assert!(out.status.success(), "trust init: {}", String::from_utf8_lossy(&out.stderr));

    // Three periods and a little more, watched through both replicas.
    let first = timestamp_version(&b, "shared/signed");
    let mut seen = vec![first];
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(6_500) {
        std::thread::sleep(Duration::from_millis(250));
        for s in [&a, &b] {
            let v = timestamp_version(s, "shared/signed");
            assert!(v >= *seen.iter().max().unwrap() - 1, "versions went back: {seen:?} then {v}");
            seen.push(v);
        }
    }
    let last = *seen.iter().max().unwrap();
    let renewals = last - first;
    // One renewal per 2-second period: 3 in 6.5 s (allowing one for where the periods fall). Two replicas each
    // renewing would give about twice that.
    assert!((2..=4).contains(&renewals), "{renewals} renewals in 6.5 s: {seen:?}");
}
