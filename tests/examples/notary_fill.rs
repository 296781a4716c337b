//! Publishes a Notary v1 collection with N targets to a trust server (Wharf or notary-server), for
//! `deploy/bench/notary-compare`: an X.509 root for the GUN, P-256 targets and snapshot keys made here, the
//! server's timestamp key, one multipart upload.
//!
//! Usage: notary_fill BASE_URL GUN N   (HTTPS certificates are not checked: a loopback benchmark)

use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Map, Value};
use wharf_format::notary::{file_meta, format_time, Key, Signed, Signer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, gun, n] = &args[..] else { panic!("usage: notary_fill BASE_URL GUN N") };
    let n: usize = n.parse().expect("N");
    let http = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let url = |rest: &str| format!("{base}/v2/{gun}/_trust/tuf/{rest}");
    let ts: Key = http.get(url("timestamp.key")).send().unwrap().json().unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, gun.as_str());
    let cert = params.self_signed(&kp).unwrap();
    let root_key = Signer::ecdsa(
        p256::ecdsa::SigningKey::from_pkcs8_der(&kp.serialize_der()).unwrap(),
        Some(Key::x509("ecdsa-x509", &cert.pem())),
    );
    let targets_key = Signer::ecdsa(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), None);
    let snapshot_key = Signer::ecdsa(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng), None);
    let later = format_time(4_102_444_800, 0);
    let keys: Map<String, Value> = [root_key.public(), targets_key.public(), snapshot_key.public(), ts.clone()]
        .iter()
        .map(|k| (k.id(), serde_json::to_value(k).unwrap()))
        .collect();
    let role = |s: &Signer| json!({ "keyids": [s.key_id()], "threshold": 1 });
    let root = json!({ "_type": "Root", "consistent_snapshot": false, "expires": later, "keys": keys, "version": 1,
        "roles": { "root": role(&root_key), "targets": role(&targets_key), "snapshot": role(&snapshot_key),
                   "timestamp": { "keyids": [ts.id()], "threshold": 1 } } });
    let root = Signed::sign(&root, &[&root_key]).unwrap();
    let files: Map<String, Value> = (0..n)
        .map(|i| (format!("tag-{i:05}"), serde_json::to_value(file_meta(format!("manifest {i}").as_bytes())).unwrap()))
        .collect();
    let targets = json!({ "_type": "Targets", "delegations": { "keys": {}, "roles": [] }, "expires": later,
        "targets": files, "version": 1 });
    let targets = Signed::sign(&targets, &[&targets_key]).unwrap();
    let snapshot = json!({ "_type": "Snapshot", "expires": later, "version": 1,
        "meta": { "root": file_meta(&root), "targets": file_meta(&targets) } });
    let snapshot = Signed::sign(&snapshot, &[&snapshot_key]).unwrap();
    let boundary = "wharfbenchboundary0123456789";
    let mut body = Vec::new();
    for (name, bytes) in [("root", &root), ("targets", &targets), ("snapshot", &snapshot)] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = http
        .post(url(""))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "upload: {status} {}", r.text().unwrap_or_default());
    println!("published {gun} with {n} targets ({} bytes of targets.json)", targets.len());
}
