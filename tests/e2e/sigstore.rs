//! sigstore (cosign) signatures through a real `wharf serve`, made by signers independent of Wharf: keyless bundles
//! from sigstore-js (`@sigstore/sign` against `@sigstore/mock`'s Fulcio and Rekor, `helpers/sigstore_sign.mjs`)
//! attached as OCI 1.1 referrers by plain HTTP, and keyed simple-signing signatures from pyca/cryptography
//! (`helpers/cosign_keyed.py`) pushed under cosign's `.sig` tag. Both are read back from the registry (the referrers
//! API, the `.sig` tag) the way the registry's and the client's evidence sources read them, and judged by
//! `wharf_format::sigstore::satisfies`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wharf_format::policy::{Material, SigstoreCandidate, SigstoreRequirement, Subject};
use wharf_format::sigstore::{bundle_layer, parse_sig_manifest, satisfies, signature_tag, BUNDLE_MEDIA_TYPE};
use wharf_format::Digest;

use crate::common::oci::Oci;
use crate::common::{data, sha256, Server};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WHO: &str = "https://github.com/wharf-test/app/.github/workflows/release.yml@refs/heads/main";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/helpers").join(name)
}

/// Where `tests/run` installed the npm packages.
fn npm_dir() -> PathBuf {
    let dir = std::env::var_os("WHARF_TEST_NPM").map(PathBuf::from).unwrap_or_else(|| {
        let tools = std::env::var_os("WHARF_TEST_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/wharf-test-tools")
        });
        tools.join("npm")
    });
    let pkg = dir.join("node_modules/@sigstore/sign/package.json");
    assert!(pkg.exists(), "{} is missing: tests/run installs @sigstore/sign and @sigstore/mock", pkg.display());
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bundle and its trusted root from sigstore-js, for `digest`.
fn sigstore_sign(digest: &str, dir: &Path, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    run(Command::new("node")
        .arg(helper("sigstore_sign.mjs"))
        .args(["--digest", digest, "--out"])
        .arg(dir)
        .args(extra)
        .env("WHARF_TEST_NPM", npm_dir()));
    (std::fs::read(dir.join("bundle.json")).unwrap(), std::fs::read(dir.join("trusted_root.json")).unwrap())
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A server, with the credentials (if any) the test reads and pushes with.
struct Registry {
    s: Server,
    oci: Oci,
    http: reqwest::blocking::Client,
    login: Option<(&'static str, &'static str)>,
}

impl Registry {
    fn start(env: &[(&str, &str)], login: Option<(&'static str, &'static str)>) -> Registry {
        let s = Server::start(env);
        let oci = match login {
            Some((user, password)) => Oci::with_basic(&s, user, password),
            None => Oci::new(&s),
        };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Registry { s, oci, http, login }
    }

    fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let mut req = self.http.get(self.s.url(path)).header("accept", accept);
        if let Some((user, password)) = self.login {
            req = req.basic_auth(user, Some(password));
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }

    /// Pushes a small image to `repo:v1`; its manifest's digest and bytes as the registry serves them.
    fn image(&self, repo: &str) -> (String, Vec<u8>) {
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        let layer = data(512, 7);
        let pushed = self.oci.push(repo, "v1", config.to_string().as_bytes(), &[&layer[..]], None).unwrap();
        let (st, body) = self.get(&format!("/v2/{repo}/manifests/v1"), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(st, 200);
        assert_eq!(sha256(&body), pushed.digest);
        (pushed.digest, body)
    }

    /// Attaches `bundle` to the manifest `subject` as an OCI 1.1 referrer: the bundle blob, the empty config, and
    /// a manifest with `subject` and `artifactType`, put by digest.
    fn attach(&self, repo: &str, subject: &str, subject_size: usize, bundle: &[u8]) {
        let blob = self.oci.ensure_blob(repo, bundle, None);
        let empty = self.oci.ensure_blob(repo, b"{}", None);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": blob, "size": bundle.len()}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": subject_size},
        });
        let digest = sha256(manifest.to_string().as_bytes());
        assert_eq!(self.oci.put_manifest(repo, &digest, &manifest), 201, "referrer of {repo}@{subject}");
    }

    /// The bundles attached to `subject`, found as a registry's evidence source finds them: the referrers API,
    /// each referrer's bundle layer, its blob.
    fn bundles(&self, repo: &str, subject: &str) -> Vec<SigstoreCandidate> {
        let (st, index) =
            self.get(&format!("/v2/{repo}/referrers/{subject}"), "application/vnd.oci.image.index.v1+json");
        assert_eq!(st, 200);
        let index: Value = serde_json::from_slice(&index).unwrap();
        let mut out = vec![];
        for r in index["manifests"].as_array().unwrap() {
            let d = r["digest"].as_str().unwrap();
            let (st, m) = self.get(&format!("/v2/{repo}/manifests/{d}"), "application/vnd.oci.image.manifest.v1+json");
            assert_eq!(st, 200);
            if let Some(layer) = bundle_layer(&m).unwrap() {
                let (st, blob) = self.get(&format!("/v2/{repo}/blobs/{}", layer.digest), "*/*");
                assert_eq!(st, 200);
                assert!(layer.digest.matches(&blob));
                out.push(SigstoreCandidate::Bundle(blob));
            }
        }
        out
    }

    /// The signatures under cosign's `.sig` tag for `subject`, with their payload blobs.
    fn sig_tag(&self, repo: &str, subject: &str) -> Vec<SigstoreCandidate> {
        let tag = signature_tag(&subject.parse::<Digest>().unwrap());
        let (st, m) = self.get(&format!("/v2/{repo}/manifests/{tag}"), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(st, 200, "{repo}:{tag}");
        let mut out = vec![];
        for layer in parse_sig_manifest(&m).unwrap() {
            let (st, payload) = self.get(&format!("/v2/{repo}/blobs/{}", layer.payload.digest), "*/*");
            assert_eq!(st, 200);
            out.push(layer.candidate(payload).unwrap());
        }
        out
    }
}

fn subject(repo: &str, digest: &str) -> Subject {
    Subject { repository: repo.parse().unwrap(), tag: None, digest: digest.parse().unwrap(), host: None }
}

fn keyless(who: &str) -> SigstoreRequirement {
    SigstoreRequirement {
        issuer: Some(ISSUER.into()),
        subject: Some(who.into()),
        trusted_root: Some("trusted_root.json".into()),
        ..Default::default()
    }
}

fn material(path: &str, bytes: Vec<u8>) -> Material {
    Material { files: [(path.to_string(), bytes)].into(), ..Material::default() }
}

#[test]
fn keyless_bundles_from_sigstore_js_attached_as_referrers() {
    let reg = Registry::start(&[], None);
    let tmp = tempfile::tempdir().unwrap();
    let other = sha256(b"another manifest");
    // (case, how the bundle is made, what the requirement asks, the refusal expected or None)
    let cases: Vec<(&str, Vec<String>, &str, Option<&str>)> = vec![
        ("dsse", vec![], WHO, None),
        ("message", vec!["--kind".into(), "message".into(), "--manifest".into()], WHO, None),
        ("other-identity", vec![], "https://github.com/someone-else/app", Some("does not match")),
        ("other-digest", vec!["--digest".into(), other.clone()], WHO, Some("is for sha256:")),
        ("proof-cut", vec![], WHO, Some("neither an inclusion proof nor a signed entry timestamp")),
        ("cert-later", vec!["--cert-offset".into(), "3600".into()], WHO, Some("outside the certificate's validity")),
    ];
    for (case, args, who, refusal) in cases {
        let repo = format!("keyless/{case}");
        let (digest, manifest) = reg.image(&repo);
        let dir = tmp.path().join(case);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest_file = dir.join("manifest.json");
        std::fs::write(&manifest_file, &manifest).unwrap();
        let mut extra: Vec<String> = args;
        if extra.last().is_some_and(|a| a == "--manifest") {
            extra.push(manifest_file.to_str().unwrap().into());
        }
        let signed_digest = match extra.iter().position(|a| a == "--digest") {
            Some(i) => extra.drain(i..i + 2).nth(1).unwrap(),
            None => digest.clone(),
        };
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (mut bundle, root) = sigstore_sign(&signed_digest, &dir.join("out"), &extra);
        if case == "proof-cut" {
            let mut v: Value = serde_json::from_slice(&bundle).unwrap();
            let entry = v["verificationMaterial"]["tlogEntries"][0].as_object_mut().unwrap();
            assert!(entry.remove("inclusionProof").is_some() && entry.remove("inclusionPromise").is_some());
            bundle = serde_json::to_vec(&v).unwrap();
        }
        reg.attach(&repo, &digest, manifest.len(), &bundle);

        let found = reg.bundles(&repo, &digest);
        assert_eq!(found, vec![SigstoreCandidate::Bundle(bundle.clone())], "{case}: read back as attached");
        let verdict =
            satisfies(&keyless(who), &subject(&repo, &digest), &found, &material("trusted_root.json", root), now());
        match refusal {
            None => {
                let why = verdict.unwrap_or_else(|e| panic!("{case}: refused: {e}"));
                assert!(why.contains(WHO) && why.contains(&digest), "{case}: {why}");
            }
            Some(expected) => {
                let why = verdict.expect_err(case);
                assert!(why.contains(expected), "{case}: refused for another reason: {why}");
            }
        }
    }
}

#[test]
fn keyed_cosign_signatures_under_the_sig_tag() {
    const PASSWORD: &str = "sigstore-writer-password";
    // Access control on, so the signer's push answers the registry's token challenge as cosign does.
    let env = [("WHARF_AUTH", "1"), ("WHARF_ADMIN_PASSWORD", "sigstore-admin-password")];
    let reg = Registry::start(&env, Some(("writer", PASSWORD)));
    reg.s.admin(&["user", "add", "writer", "--password-stdin"], &format!("{PASSWORD}\n"));
    reg.s.admin(&["grant", "writer", "keyed/*", "push,delete"], "");
    // The server picks up new accounts within a second.
    std::thread::sleep(Duration::from_millis(2100));

    let tmp = tempfile::tempdir().unwrap();
    let py = |args: &[&str]| run(Command::new("python3").arg(helper("cosign_keyed.py")).args(args));
    let key_dir = |kind: &str| tmp.path().join("keys").join(kind);
    for kind in ["p256", "ed25519"] {
        py(&["keygen", "--type", kind, "--out", key_dir(kind).to_str().unwrap()]);
    }
    let registry = reg.s.url("");
    let other = sha256(b"another manifest");
    for (kind, other_kind) in [("p256", "ed25519"), ("ed25519", "p256")] {
        // (case, sign another digest, edit the payload after signing, verify with the other key, refusal or None)
        let cases = [
            ("good", false, false, false, None),
            ("tampered", false, true, false, Some("does not verify")),
            ("other-digest", true, false, false, Some("is for sha256:")),
            ("wrong-key", false, false, true, Some("does not verify")),
        ];
        for (case, sign_other, tamper, wrong_key, refusal) in cases {
            let repo = format!("keyed/{kind}-{case}");
            let (digest, _) = reg.image(&repo);
            let reference = format!("{}/{repo}", reg.s.addr);
            let out = tmp.path().join(format!("{kind}-{case}"));
            let (o, key) = (out.to_str().unwrap(), key_dir(kind).join("key.pem"));
            let signed = if sign_other { &other } else { &digest };
            py(&["sign", "--key", key.to_str().unwrap(), "--digest", signed, "--reference", &reference, "--out", o]);
            if tamper {
                let p = out.join("payload.json");
                let text = std::fs::read_to_string(&p).unwrap().replace(&reference, &format!("{reference}-evil"));
                std::fs::write(&p, text).unwrap();
            }
            let login = ["--user", "writer", "--password", PASSWORD];
            let push = ["push", "--registry", &registry, "--repo", &repo, "--digest", &digest, "--dir", o];
            py(&[&push[..], &login].concat());

            let found = reg.sig_tag(&repo, &digest);
            assert_eq!(found.len(), 1, "{kind} {case}: one signature under the .sig tag");
            let pem = std::fs::read(key_dir(if wrong_key { other_kind } else { kind }).join("key.pub")).unwrap();
            let r = SigstoreRequirement { key: Some("cosign.pub".into()), ..Default::default() };
            let verdict = satisfies(&r, &subject(&repo, &digest), &found, &material("cosign.pub", pem), now());
            match refusal {
                None => assert!(verdict.unwrap_or_else(|e| panic!("{kind} {case}: {e}")).contains(&digest)),
                Some(expected) => {
                    let why = verdict.expect_err(case);
                    assert!(why.contains(expected), "{kind} {case}: refused for another reason: {why}");
                }
            }
        }
    }
}
