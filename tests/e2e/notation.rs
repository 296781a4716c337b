//! Notation signatures from an independent signer (`helpers/notation_sign.py`: pyca/cryptography and joserfc,
//! following the Notary Project specification, not our code), pushed to a real `wharf serve` over plain HTTP as
//! OCI 1.1 referrers, read back through the referrers API, and judged by the policy language (`[[policy]]` with a
//! `notation` requirement, `evaluate`, `notation::satisfies`) against a trust policy and a trust store in Notation's
//! layout, read by `Material::gather`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wharf_format::notation::{self, ARTIFACT_TYPE, COSE_MEDIA_TYPE, JWS_MEDIA_TYPE};
use wharf_format::policy::{evaluate, Evidence, Files, Material, NotationCandidate, Policy, Subject};

use crate::common::oci::Oci;
use crate::common::{self, sha256, Server};

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/helpers/notation_sign.py")
}

/// Runs the independent signer: a trust store under `out/truststore` and one envelope per case (COSE for the
/// `cose-*` cases, JWS for the others).
fn sign(out: &Path, digest: &str, size: usize) -> Value {
    let made = Command::new("python3")
        .arg(helper())
        .arg(out)
        .arg(digest)
        .arg(size.to_string())
        .output()
        .expect("python3 notation_sign.py (needs cryptography and joserfc: tests/run installs them)");
    assert!(made.status.success(), "notation_sign.py: {}", String::from_utf8_lossy(&made.stderr));
    serde_json::from_slice(&made.stdout).expect("the signer's summary")
}

/// The file system as `Material::gather` reads it.
struct Disk;

impl Files for Disk {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn walk(&self, dir: &str) -> std::io::Result<Vec<String>> {
        fn go(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let p = e?.path();
                if p.is_dir() {
                    go(root, &p, out)?;
                } else {
                    out.push(p.strip_prefix(root).expect("under the root").to_string_lossy().into_owned());
                }
            }
            Ok(())
        }
        let mut out = vec![];
        go(Path::new(dir), Path::new(dir), &mut out)?;
        Ok(out)
    }
}

/// The envelope file and media type of a case.
fn envelope_of(dir: &Path, case: &str) -> (Vec<u8>, &'static str) {
    let (ext, media_type) = if case.starts_with("cose-") { ("cose", COSE_MEDIA_TYPE) } else { ("jws", JWS_MEDIA_TYPE) };
    (std::fs::read(dir.join(format!("envelopes/{case}.{ext}"))).unwrap(), media_type)
}

/// Pushes `envelope` as a Notation signature of `subject` (the specification's signature manifest), tagged with a
/// `case` annotation so the test can tell the referrers apart; returns the signature manifest's digest.
fn push_signature(o: &Oci, repo: &str, subject: (&str, usize), case: &str, envelope: (&[u8], &str)) -> String {
    let ((subject, subject_size), (envelope, media_type)) = (subject, envelope);
    let config = o.ensure_blob(repo, b"{}", None);
    let layer = o.ensure_blob(repo, envelope, None);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2 },
        "layers": [{ "mediaType": media_type, "digest": layer, "size": envelope.len() }],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": subject_size },
        "annotations": { "io.cncf.notary.x509chain.thumbprint#S256": "[]", "org.example.case": case },
    });
    let digest = sha256(manifest.to_string().as_bytes());
    assert_eq!(o.put_manifest(repo, &digest, &manifest), 201, "push of the {case} signature");
    digest
}

/// The Notation signatures of `digest` as the referrers API lists them, by case: each referrer's manifest, then its
/// envelope layer, both checked against their digests.
fn signatures(s: &Server, repo: &str, digest: &str) -> Vec<(String, NotationCandidate)> {
    let c = reqwest::blocking::Client::new();
    let get = |path: String| {
        let r = c.get(s.url(&path)).header("accept", "application/vnd.oci.image.manifest.v1+json").send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let bytes = r.bytes().unwrap().to_vec();
        (sha256(&bytes), bytes)
    };
    let (_, index) = get(format!("/v2/{repo}/referrers/{digest}?artifactType={ARTIFACT_TYPE}"));
    let index: Value = serde_json::from_slice(&index).unwrap();
    let mut out = vec![];
    for d in index["manifests"].as_array().unwrap() {
        assert_eq!(d["artifactType"], ARTIFACT_TYPE, "the filter");
        let want = d["digest"].as_str().unwrap();
        let (got, bytes) = get(format!("/v2/{repo}/manifests/{want}"));
        assert_eq!(got, want);
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        let layer = &m["layers"][0];
        let (got, envelope) = get(format!("/v2/{repo}/blobs/{}", layer["digest"].as_str().unwrap()));
        assert_eq!(got, layer["digest"].as_str().unwrap());
        let media_type = layer["mediaType"].as_str().unwrap().to_string();
        let case = d["annotations"]["org.example.case"].as_str().unwrap().to_string();
        out.push((case, NotationCandidate { media_type, envelope }));
    }
    out
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn independent_jws_signatures_pushed_as_referrers_are_judged_by_the_trust_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&[]);
    let o = Oci::new(&s);
    let layer = common::data(5000, 7);
    let image =
        o.push("team/app", "v1", br#"{"architecture":"amd64","os":"linux"}"#, &[layer.as_slice()], None).unwrap();
    let manifest_size = reqwest::blocking::get(s.url(&format!("/v2/team/app/manifests/{}", image.digest)))
        .unwrap()
        .bytes()
        .unwrap()
        .len();
    let summary = sign(tmp.path(), &image.digest, manifest_size);
    let cases: Vec<String> = serde_json::from_value(summary["cases"].clone()).unwrap();
    for case in &cases {
        let (envelope, media_type) = envelope_of(tmp.path(), case);
        push_signature(&o, "team/app", (&image.digest, manifest_size), case, (&envelope, media_type));
    }
    // Another referrer of the image, not a Notation signature: the filter leaves it out.
    let other = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2 },
        "layers": [],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.digest, "size": manifest_size },
    });
    assert_eq!(o.put_manifest("team/app", &sha256(other.to_string().as_bytes()), &other), 201);
    let found = signatures(&s, "team/app", &image.digest);
    let mut names: Vec<&str> = found.iter().map(|(c, _)| c.as_str()).collect();
    names.sort();
    assert_eq!(names, cases.iter().map(String::as_str).collect::<Vec<_>>(), "every signature, and only those");

    // The trust policy: this registry's repository, strict, signed under the acme root by acme-rockets.io.
    let host = s.addr.clone();
    let trust_policy = json!({ "version": "1.0", "trustPolicies": [{
        "name": "acme-app",
        "registryScopes": [format!("{host}/team/app")],
        "signatureVerification": { "level": "strict" },
        "trustStores": ["ca:acme"],
        "trustedIdentities": ["x509.subject: C=US, ST=WA, O=acme-rockets.io"],
    }]});
    let policy_path = tmp.path().join("trustpolicy.json");
    std::fs::write(&policy_path, trust_policy.to_string()).unwrap();
    let store = tmp.path().join("truststore");
    let toml = format!(
        "[[policy]]\nname = \"notation\"\nrepositories = [\"team/*\"]\nrequire = {{ notation = {{ trust_policy = {:?}, trust_store = {:?} }} }}\n",
        policy_path.display().to_string(),
        store.display().to_string(),
    );
    let policy: Policy = toml::from_str(&toml).unwrap();
    let material = Material::gather(&policy.rules, &Disk).unwrap();
    let repo = "team/app".parse().unwrap();
    let rule = policy.rule_for(&repo).unwrap();
    let subject = Subject {
        repository: repo,
        tag: Some("v1".parse().unwrap()),
        digest: image.digest.parse().unwrap(),
        host: None,
    };
    let decide = |case: &str| {
        let notation = found.iter().filter(|(c, _)| c == case).map(|(_, n)| n.clone()).collect();
        evaluate(rule, &subject, &Evidence { notation, ..Evidence::default() }, &material, now())
    };

    let good = ["good-ps256", "good-ps384", "good-es256", "good-es384", "good-es512", "wrong-size"];
    for case in good.into_iter().chain(["cose-good-ps256", "cose-good-es384"]) {
        let v = decide(case);
        assert!(v.allowed, "{case}: {}", v.summary());
        assert!(
            v.outcome.reason.starts_with("signed by C=US, ST=WA, L=Seattle, O=acme-rockets.io"),
            "{case}: {}",
            v.summary()
        );
    }
    let refused = [
        ("wrong-chain", "authenticity: the chain leads to no certificate of the trust stores acme"),
        ("expired-cert", "authenticTimestamp: certificate C=US, ST=WA, L=Seattle, O=acme-rockets.io"),
        ("wrong-digest", &format!("integrity: the signature is for sha256:{}, not {}", "ab".repeat(32), image.digest)),
        (
            "untrusted-identity",
            "authenticity: the signer C=US, ST=WA, O=evil-corp.io, CN=builder is not a trusted identity",
        ),
        ("expired-signature", "expiry: the signature expired at"),
        ("server-auth-leaf", "authenticity: the signing certificate: extended key usage"),
        ("tampered", "integrity: the signature does not verify"),
        ("cose-wrong-chain", "authenticity: the chain leads to no certificate of the trust stores acme"),
        (
            "cose-wrong-digest",
            &format!("integrity: the signature is for sha256:{}, not {}", "ab".repeat(32), image.digest),
        ),
        ("cose-tampered", "integrity: the signature does not verify"),
    ];
    for (case, why) in refused {
        let v = decide(case);
        assert!(!v.allowed, "{case} was accepted: {}", v.summary());
        assert!(v.summary().contains(why), "{case}: {}\n  want {why}", v.summary());
    }
    // All of them together: one good signature is enough.
    let all = Evidence { notation: found.iter().map(|(_, n)| n.clone()).collect(), ..Evidence::default() };
    assert!(evaluate(rule, &subject, &all, &material, now()).allowed);
    // No signature at all.
    let none = evaluate(rule, &subject, &Evidence::default(), &material, now());
    assert!(!none.allowed && none.summary().ends_with("no Notation signature"), "{}", none.summary());

    // A caller that knows the host and the manifest's size: the wrong size is refused too; another host has no
    // applicable statement.
    let r = match &rule.require {
        wharf_format::policy::Requirement::Notation(r) => r.clone(),
        other => panic!("{other:?}"),
    };
    let one = |case: &str, host: &str| {
        let cands: Vec<NotationCandidate> = found.iter().filter(|(c, _)| c == case).map(|(_, n)| n.clone()).collect();
        notation::satisfies_with(&r, &subject, Some(host), Some(manifest_size as u64), &cands, &material, now())
    };
    assert!(one("good-es256", &host).is_ok());
    let err = one("wrong-size", &host).unwrap_err();
    assert!(err.contains(&format!("is for {} bytes, not {manifest_size}", manifest_size + 1)), "{err}");
    let err = one("good-es256", "registry.example").unwrap_err();
    assert!(err.contains("no trust policy statement applies to team/app"), "{err}");
}
