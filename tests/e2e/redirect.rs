//! `storage.redirect` on S3: a blob GET answers `307` to a presigned URL, the bytes come from the S3 server, and a
//! tampered or expired URL is refused by that server; skopeo follows the redirect.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{s3, Server};

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b), &mut out).unwrap();
    out
}

#[test]
fn blob_gets_redirect_to_presigned_urls_that_s3_checks() {
    let (endpoint, bucket) = s3::bucket();
    let url = format!("s3://{bucket}/wharf");
    let s = Server::start(&[
        ("WHARF_STORAGE_URL", url.as_str()),
        ("WHARF_STORAGE_ENDPOINT", endpoint.as_str()),
        ("WHARF_STORAGE_REGION", "us-east-1"),
        ("WHARF_STORAGE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY),
        ("WHARF_STORAGE_REDIRECT", "true"),
        ("WHARF_STORAGE_REDIRECT_EXPIRY_SECS", "3"),
    ]);
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut descs = Vec::new();
    for blob in [
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        common::data(300_000, 5),
    ] {
        let d = common::sha256(&blob);
        let r = http.post(s.url(&format!("/v2/r/app/blobs/uploads/?digest={d}"))).body(blob.clone()).send().unwrap();
        assert_eq!(r.status(), 201);
        descs.push((d, blob));
    }
    let (layer, bytes) = &descs[1];
    let r = http.get(s.url(&format!("/v2/r/app/blobs/{layer}"))).send().unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&endpoint) && location.contains("X-Amz-Signature="), "{location}");
    let got = http.get(&location).send().unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(common::sha256(&got.bytes().unwrap()), *layer, "the presigned URL serves the blob");
    // HEAD is answered by the registry itself.
    assert_eq!(http.head(s.url(&format!("/v2/r/app/blobs/{layer}"))).send().unwrap().status(), 200);

    // A tampered signature, and a URL for another key under the same signature, are refused by the S3 server.
    let sig = location.split("X-Amz-Signature=").nth(1).unwrap().to_owned();
    let flipped: String = sig.chars().rev().collect();
    let tampered = location.replace(&sig, &flipped);
    assert_eq!(http.get(&tampered).send().unwrap().status(), 403, "tampered signature");
    let other_key = location.replacen(&layer[7..17], "0000000000", 1);
    assert_eq!(http.get(&other_key).send().unwrap().status(), 403, "another key under the same signature");

    // A real client follows the redirect (a whole image: config, layer, manifest).
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": descs[0].0, "size": descs[0].1.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": bytes.len() }],
    })
    .to_string();
    let r = http
        .put(s.url("/v2/r/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let out_dir = tempfile::tempdir().unwrap();
    let policy = out_dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(["copy", "--src-tls-verify=false", &format!("docker://{}/r/app:v1", s.addr)])
        .arg(format!("oci:{}:v1", out_dir.path().join("layout").display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("layout/index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let copied_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("layout/blobs/sha256").join(&m[7..])).unwrap())
            .unwrap();
    let copied_layer = copied_manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let copied = std::fs::read(out_dir.path().join("layout/blobs/sha256").join(&copied_layer[7..])).unwrap();
    // skopeo may compress the layer on the way into a layout; either way its content came through the redirect.
    let content = if copied_layer == *layer { copied } else { gunzip(&copied) };
    assert_eq!(common::sha256(&content), *layer, "the layer skopeo fetched through the redirect");

    // After its lifetime the URL is refused.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(http.get(&location).send().unwrap().status(), 403, "expired URL");
}
