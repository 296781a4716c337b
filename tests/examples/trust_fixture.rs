//! Publishes a trust repository with N tags through a running `wharf serve`, for the trust benchmark.
//!
//! Usage: cargo run --release -p wharf-e2e --example trust_fixture -- BASE_URL REPO NTAGS

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wharf_format::tuf::{Envelope, Expires, PublicKey, RoleKeys, Root, SigningKey, TargetFile, Targets, SPEC_VERSION};
use wharf_format::Digest;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: trust_fixture BASE_URL REPO NTAGS");
    let (base, repo, n): (&str, &str, usize) = (&args[1], &args[2], args[3].parse()?);
    let c = reqwest::Client::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;

    // One image: a config, a layer, a manifest.
    let mut descs = Vec::new();
    for blob in [b"{}".to_vec(), vec![7u8; 4096]] {
        let d = Digest::sha256_of(&blob);
        let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).body(blob.clone()).send().await?;
        anyhow::ensure!(r.status().is_success(), "blob push: {}", r.status());
        descs.push(json!({"digest": d.to_string(), "size": blob.len()}));
    }
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": descs[0]["digest"], "size": descs[0]["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": descs[1]["digest"], "size": descs[1]["size"]}]});
    let body = serde_json::to_vec(&manifest)?;
    let md = Digest::sha256_of(&body);
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{md}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.clone())
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "manifest push: {}", r.status());

    let keys: Value = c.post(format!("{base}/v2/{repo}/_tuf/keys")).send().await?.json().await?;
    let ts: PublicKey = serde_json::from_value(keys["timestamp"][0]["key"].clone())?;
    let snap: PublicKey = serde_json::from_value(keys["snapshot"][0]["key"].clone())?;
    let (root_key, targets_key) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
    let role = |k: &PublicKey| RoleKeys { keyids: vec![k.key_id()], threshold: 1 };
    let root = Root {
        type_: "root".into(),
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: 1,
        expires: Expires(now + 365 * 86_400),
        keys: [root_key.public(), targets_key.public(), &ts, &snap]
            .iter()
            .map(|k| (k.key_id(), (*k).clone()))
            .collect(),
        roles: BTreeMap::from([
            ("root".into(), role(root_key.public())),
            ("targets".into(), role(targets_key.public())),
            ("timestamp".into(), role(&ts)),
            ("snapshot".into(), role(&snap)),
        ]),
    };
    let target = TargetFile {
        length: body.len() as u64,
        hashes: BTreeMap::from([("sha256".to_string(), md.hex().to_string())]),
        custom: Some(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json"})),
    };
    let targets = Targets {
        type_: "targets".into(),
        spec_version: SPEC_VERSION.into(),
        version: 1,
        expires: Expires(now + 90 * 86_400),
        targets: (0..n).map(|i| (format!("tag-{i:05}"), target.clone())).collect(),
        delegations: None,
    };
    let upload =
        json!({"root": Envelope::sign(&root, &[&root_key])?, "targets": Envelope::sign(&targets, &[&targets_key])?});
    let r = c.post(format!("{base}/v2/{repo}/_tuf/publish")).json(&upload).send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "publish: {status} {text}");
    println!("{text}");
    Ok(())
}
