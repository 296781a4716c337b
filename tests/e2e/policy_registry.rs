//! Signature policy at the registry, through the real `wharf serve` with `[[policy]]` rules: reads and pushes in a
//! protected namespace, what passes as a signature and what only pretends to, `immutable_tags`, reads by digest,
//! `wharf push --sign` into a protected namespace, a policy whose files are missing, and real engines (docker,
//! podman, containerd, skopeo, through `tests/data/policy-engines`) pulling a signed tag and refused an unsigned
//! one, with `wharf trust inspect` flagging a tag moved before protection was turned on.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::client::Client;
use common::oci::Oci;
use common::{data, sha256, Server};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const RULES: &str = r#"
[[policy]]
name = "signed"
repositories = ["prot/*", "eng/*"]
require = { tuf = { roles = ["targets"] } }

[[policy]]
name = "strict"
repositories = ["strict/*"]
by_digest = true
require = { tuf = {} }

[[policy]]
name = "frozen"
repositories = ["frozen/*"]
immutable_tags = true
require = "accept"
"#;

/// A server whose configuration file is `config` (rewritten and re-read by a restart).
fn server(config: &Path) -> Server {
    std::fs::write(config, "").unwrap();
    Server::start(&[("WHARF_CONFIG", config.to_str().unwrap())])
}

/// Turns the rules on: rewrites the file and restarts on the same data and address.
fn protect(s: &mut Server, config: &Path) {
    std::fs::write(config, RULES).unwrap();
    s.restart();
}

/// Uploads a manifest's blobs to `repo` and returns the manifest (not pushed) and its digest. `layer_type`: the
/// layer's media type; `extra`: fields added to the manifest (`subject`, `artifactType`).
fn manifest(o: &Oci, repo: &str, seed: u8, layer_type: &str, extra: Value) -> (Value, String) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}").into_bytes();
    let layer = data(1000 + usize::from(seed), seed);
    let (c, l) = (o.ensure_blob(repo, &config, None), o.ensure_blob(repo, &layer, None));
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": l, "size": layer.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}],
    });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    let digest = sha256(m.to_string().as_bytes());
    (m, digest)
}

/// `GET` of a manifest: status, OCI error code and message.
fn get(s: &Server, repo: &str, reference: &str) -> (u16, String, String) {
    let r = reqwest::blocking::Client::new()
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", format!("{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or_default();
    let code = body["errors"][0]["code"].as_str().unwrap_or("").to_string();
    (status, code, body["errors"][0]["message"].as_str().unwrap_or("").to_string())
}

/// `PUT` of a manifest: status and message.
fn put(s: &Server, repo: &str, reference: &str, m: &Value) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", OCI_MANIFEST)
        .body(m.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or_default();
    (status, body["errors"][0]["message"].as_str().unwrap_or("").to_string())
}

fn denied(got: (u16, String, String), needles: &[&str], case: &str) {
    assert_eq!((got.0, got.1.as_str()), (403, "DENIED"), "{case}: {}", got.2);
    for n in needles {
        assert!(got.2.contains(n), "{case}: no {n:?} in {:?}", got.2);
    }
}

fn layout_digest(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

fn oci(images: &Path, image: &str) -> String {
    format!("oci:{}:latest", images.join(image).display())
}

#[test]
fn protected_reads_pushes_and_what_passes_as_a_signature() {
    let images = common::peers::shared_images();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("wharf.toml");
    let mut s = server(&config);
    let (o, c, host) = (Oci::new(&s), Client::new(), s.addr.clone());
    let small = layout_digest(&images.join("small"));
    let sig = "application/vnd.dev.cosign.simplesigning.v1+json";
    let runnable = "application/vnd.oci.image.layer.v1.tar";
    let referrer_of = |d: &str| {
        json!({"artifactType": "application/vnd.cncf.notary.signature",
            "subject": {"mediaType": OCI_MANIFEST, "digest": d, "size": 1}})
    };
    let notation = referrer_of(&small);
    // Before protection: an unsigned tag, a runnable image under a cosign tag and one with a signature subject.
    let (unsigned, _) = manifest(&o, "prot/app", 1, runnable, json!({}));
    assert_eq!(put(&s, "prot/app", "old", &unsigned).0, 201);
    let fake_tag = format!("sha256-{}.sig", "b".repeat(64));
    assert_eq!(put(&s, "prot/app", &fake_tag, &unsigned).0, 201);
    let (pretender, _) = manifest(&o, "prot/app", 2, runnable, notation);
    assert_eq!(put(&s, "prot/app", "pretender", &pretender).0, 201);
    protect(&mut s, &config);

    // `wharf push --sign` into the protected namespace: by digest, sign, then the tag.
    c.ok(&["trust", "init", &format!("{host}/prot/app")]);
    let out = c.ok(&["push", "--sign", &oci(images, "small"), &format!("{host}/prot/app:v1")]);
    assert!(out.contains("signed"), "{out}");
    assert_eq!(get(&s, "prot/app", "v1").0, 200);
    denied(get(&s, "prot/app", "old"), &["policy \"signed\"", "tag old is not signed"], "unsigned tag");
    denied(get(&s, "prot/app", &fake_tag), &["not signed"], "a runnable image under a cosign tag");
    denied(get(&s, "prot/app", "pretender"), &["not signed"], "an image with a signature subject");
    // Pushes: by digest always, by tag only what satisfies the rule and agrees with the tag's signature.
    let (other, other_digest) = manifest(&o, "prot/app", 3, runnable, json!({}));
    assert_eq!(put(&s, "prot/app", &other_digest, &other).0, 201, "a push by digest");
    assert_eq!(get(&s, "prot/app", &other_digest).0, 200, "a read by digest (no by_digest)");
    let (status, why) = put(&s, "prot/app", "v2", &other);
    assert!(status == 403 && why.contains("not signed"), "an unsigned push by tag: {status} {why}");
    let (status, why) = put(&s, "prot/app", "v1", &other);
    assert!(status == 403 && why.contains(&small) && why.contains("disagree"), "over a signed tag: {status} {why}");
    assert_eq!(put(&s, "prot/app", &fake_tag, &unsigned).0, 403, "a runnable image pushed under a cosign tag");
    // A real cosign signature manifest under its tag passes, by push and by read.
    let (cosign, _) = manifest(&o, "prot/app", 4, sig, json!({}));
    let sig_tag = format!("sha256-{}.sig", small.trim_start_matches("sha256:"));
    assert_eq!(put(&s, "prot/app", &sig_tag, &cosign), (201, String::new()));
    assert_eq!(get(&s, "prot/app", &sig_tag).0, 200);
    // Revoking the signature takes effect on the next read (the cached verdict is dropped with the trust write).
    c.ok(&["trust", "revoke", &format!("{host}/prot/app:v1")]);
    denied(get(&s, "prot/app", "v1"), &["tag v1 is not signed"], "a revoked tag");

    // Reads by digest under `by_digest`: the signed index and its children pass, others do not; a Notation-shaped
    // referrer is a signature, an image with the same subject and artifact type is not.
    c.ok(&["trust", "init", &format!("{host}/strict/app")]);
    c.ok(&["push", "--sign", &oci(images, "index"), &format!("{host}/strict/app:v1")]);
    let index_digest = layout_digest(&images.join("index"));
    assert_eq!(get(&s, "strict/app", &index_digest).0, 200);
    let index: Value = o_manifest(&s, "strict/app", &index_digest);
    for child in index["manifests"].as_array().unwrap() {
        assert_eq!(get(&s, "strict/app", child["digest"].as_str().unwrap()).0, 200, "{child}");
    }
    let notation = referrer_of(&index_digest);
    let (image, image_digest) = manifest(&o, "strict/app", 5, runnable, notation.clone());
    assert_eq!(put(&s, "strict/app", &image_digest, &image).0, 201);
    denied(get(&s, "strict/app", &image_digest), &["policy \"strict\"", "no signed tag names"], "image + subject");
    let (envelope, envelope_digest) = manifest(&o, "strict/app", 6, "application/jose+json", notation);
    assert_eq!(put(&s, "strict/app", &envelope_digest, &envelope).0, 201);
    assert_eq!(get(&s, "strict/app", &envelope_digest).0, 200, "a Notation signature referrer");

    // Immutable tags: the same digest again is fine; another, or a deletion, is not.
    let (a, _) = manifest(&o, "frozen/app", 7, runnable, json!({}));
    let (b, _) = manifest(&o, "frozen/app", 8, runnable, json!({}));
    assert_eq!(put(&s, "frozen/app", "v1", &a).0, 201);
    assert_eq!(put(&s, "frozen/app", "v1", &a).0, 201);
    let (status, why) = put(&s, "frozen/app", "v1", &b);
    assert!(status == 403 && why.contains("immutable"), "{status} {why}");
    assert_eq!(o.delete("frozen/app", "v1"), 403);
    assert_eq!(get(&s, "frozen/app", "v1").0, 200);
}

fn o_manifest(s: &Server, repo: &str, reference: &str) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .unwrap();
    r.json().unwrap()
}

#[test]
fn a_policy_whose_files_cannot_be_read_stops_the_server_and_config_check_shows_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("wharf.toml");
    let missing = tmp.path().join("no-such-cosign.pub");
    let rule = format!(
        "[[policy]]\nname = \"keyed\"\nrepositories = [\"team/**\"]\nrequire = {{ sigstore = {{ key = \"{}\" }} }}\n",
        missing.display()
    );
    std::fs::write(&config, &rule).unwrap();
    let out = Command::new(common::wharf_bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("WHARF_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an unreadable policy");
    assert!(text.contains("keyed") && text.contains(&missing.display().to_string()), "{text}");
    let out = Command::new(common::wharf_bin()).args(["config", "check"]).arg(&config).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains("[[policy]]") && shown.contains("keyed"), "{shown}");
    std::fs::write(&config, "[[policy]]\nrepositories = [\"team/[ab]\"]\nrequire = \"accept\"\n").unwrap();
    let out = Command::new(common::wharf_bin()).args(["config", "check"]).arg(&config).output().unwrap();
    assert!(!out.status.success(), "a bad pattern was accepted");
}

/// Docker, podman, containerd and skopeo against a protected namespace; `wharf trust inspect` flags a tag that was
/// moved under its signature before the rule was on.
#[test]
fn engines_pull_signed_tags_are_refused_unsigned_ones_and_inspect_flags_a_moved_tag() {
    let _engines = common::engines();
    let images: PathBuf = common::peers::shared_images().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("wharf.toml");
    let mut s = server(&config);
    let (c, host) = (Client::new(), s.addr.clone());
    let small = layout_digest(&images.join("small"));
    c.ok(&["trust", "init", &format!("{host}/eng/app")]);
    for tag in ["signed", "moved"] {
        c.ok(&["push", "--sign", &oci(&images, "small"), &format!("{host}/eng/app:{tag}")]);
    }
    c.ok(&["push", &oci(&images, "index"), &format!("{host}/eng/app:unsigned")]);
    // The mismatch, made with skopeo while nothing protected the tag.
    let policy = tmp.path().join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let out = Command::new("skopeo")
        .args(["--policy", policy.to_str().unwrap(), "copy", "--dest-tls-verify=false"])
        .arg(oci(&images, "index"))
        .arg(format!("docker://{host}/eng/app:moved"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    protect(&mut s, &config);

    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/policy-engines"))
        .args([&s.addr, "eng/app", "signed", "unsigned", &small, "tag unsigned is not signed"])
        .arg(format!("{}:latest", images.join("index").display()))
        .output()
        .unwrap();
    common::check_harness(&out, 10);

    let out = c.wharf(&["trust", "inspect", "--json", &format!("{host}/eng/app")]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |tag: &str| rows.as_array().unwrap().iter().find(|r| r["tag"] == tag).cloned().unwrap();
    assert_eq!(
        (row("signed")["mismatch"].clone(), row("signed")["registryDigest"].clone()),
        (json!(false), json!(small))
    );
    let moved = row("moved");
    assert_eq!(moved["mismatch"], true, "{moved}");
    assert!(moved["registryRefused"].as_str().unwrap_or("").contains("signed for"), "{moved}");
    let out = c.wharf(&["trust", "inspect", &format!("{host}/eng/app")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("moved") && l.contains("MISMATCH")), "{text}");
}
