//! Keyed cosign signatures from `cosign_keyed.py`, `.sig` manifests and referrers, cosign's keyless `.sig` layers,
//! and `satisfies` as the policy calls it.

use base64::Engine as _;
use serde_json::{json, Value};

use super::tests_keyless::{fixture, ISSUER, SUBJECT, WHO};
use super::*;
use crate::policy::Material;
use crate::Digest;

const P256_PUB: &[u8] = include_bytes!("testdata/keyed-p256/key.pub");
const P256_PAYLOAD: &[u8] = include_bytes!("testdata/keyed-p256/payload.json");
const P256_SIG: &str = include_str!("testdata/keyed-p256/signature.b64");
const ED_PUB: &[u8] = include_bytes!("testdata/keyed-ed25519/key.pub");
const ED_PAYLOAD: &[u8] = include_bytes!("testdata/keyed-ed25519/payload.json");
const ED_SIG: &str = include_str!("testdata/keyed-ed25519/signature.b64");
const KEYED_BUNDLE: &[u8] = include_bytes!("testdata/keyed-bundle/bundle.json");
const KEYED_BUNDLE_PUB: &[u8] = include_bytes!("testdata/keyed-bundle/key.pub");

fn subject() -> Digest {
    Digest::sha256_of(SUBJECT)
}

#[test]
fn keyed_simple_signing_verifies() {
    for (pem, payload, sig) in [(P256_PUB, P256_PAYLOAD, P256_SIG), (ED_PUB, ED_PAYLOAD, ED_SIG)] {
        let key = PublicKey::from_pem(pem).unwrap();
        let claim = verify_simple(&key, payload, sig, &subject()).unwrap();
        assert_eq!(claim.docker_reference, "registry.example/team/app");
        assert_eq!(claim.digest, subject());
    }
}

#[test]
fn keyed_refusals() {
    let p256 = PublicKey::from_pem(P256_PUB).unwrap();
    let ed = PublicKey::from_pem(ED_PUB).unwrap();
    let tampered = String::from_utf8(P256_PAYLOAD.to_vec()).unwrap().replace("team/app", "team/ap2");
    // (case, key, payload, signature, subject digest, the refusal expected)
    type Row<'a> = (&'a str, &'a PublicKey, &'a [u8], &'a str, Digest, fn(&SigstoreError) -> bool);
    let rows: &[Row<'_>] = &[
        ("tampered payload", &p256, tampered.as_bytes(), P256_SIG, subject(), |e| {
            *e == SigstoreError::BadSignature(Signed::Content)
        }),
        ("wrong key (ed25519 for a P-256 signature)", &ed, P256_PAYLOAD, P256_SIG, subject(), |e| {
            *e == SigstoreError::BadSignature(Signed::Content)
        }),
        ("wrong key (P-256 for an ed25519 signature)", &p256, ED_PAYLOAD, ED_SIG, subject(), |e| {
            *e == SigstoreError::BadSignature(Signed::Content)
        }),
        ("another digest", &p256, P256_PAYLOAD, P256_SIG, Digest::sha256_of(b"other"), |e| {
            matches!(e, SigstoreError::OtherDigest { .. })
        }),
        ("signature not base64", &p256, P256_PAYLOAD, "%%%", subject(), |e| *e == SigstoreError::SignatureEncoding),
    ];
    for (name, key, payload, sig, digest, expected) in rows {
        let e = verify_simple(key, payload, sig, digest).unwrap_err();
        assert!(expected(&e), "{name}: got {e:?}");
    }
    let other_type = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"x"},"type":"atomic container signature"},"optional":null}"#;
    assert!(matches!(check_payload(other_type, &subject()), Err(SigstoreError::PayloadType(_))));
    assert!(matches!(check_payload(b"{}", &subject()), Err(SigstoreError::Payload(_))));
}

#[test]
fn public_keys() {
    assert!(matches!(PublicKey::from_pem(P256_PUB), Ok(PublicKey::P256(_))));
    assert!(matches!(PublicKey::from_pem(ED_PUB), Ok(PublicKey::Ed25519(_))));
    assert!(matches!(
        PublicKey::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(SigstoreError::Key(_))
    ));
    assert!(matches!(PublicKey::from_pem(b"not pem"), Err(SigstoreError::Key(_))));
}

fn sig_manifest(layers: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": Digest::sha256_of(b"{}")},
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn sig_manifests_list_their_simple_signing_layers() {
    let layer = |payload: &[u8], sig: &str| {
        json!({"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": payload.len(), "digest": Digest::sha256_of(payload),
               "annotations": {SIGNATURE_ANNOTATION: sig}})
    };
    let other = json!({"mediaType": "application/vnd.in-toto+json", "size": 2, "digest": Digest::sha256_of(b"{}")});
    let m = sig_manifest(json!([layer(P256_PAYLOAD, P256_SIG), other, layer(ED_PAYLOAD, ED_SIG)]));
    let layers = parse_sig_manifest(&m).unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[1].signature, ED_SIG);
    let c = layers[0].candidate(P256_PAYLOAD.to_vec()).unwrap();
    assert!(matches!(&c, SigstoreCandidate::SimpleSigning { signature, .. } if signature == P256_SIG));
    assert!(matches!(layers[0].candidate(b"other bytes".to_vec()), Err(SigstoreError::PayloadDigest(_))));

    let unsigned = json!([{"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": 2, "digest": Digest::sha256_of(b"{}")}]);
    assert!(matches!(parse_sig_manifest(&sig_manifest(unsigned)), Err(SigstoreError::SigManifest(_))));
    assert!(matches!(parse_sig_manifest(b"[]"), Err(SigstoreError::SigManifest(_))));
}

#[test]
fn referrers_name_their_bundle_layer() {
    let bundle = json!({"mediaType": BUNDLE_MEDIA_TYPE, "size": 10, "digest": Digest::sha256_of(b"bundle")});
    let found = bundle_layer(&sig_manifest(json!([bundle]))).unwrap().unwrap();
    assert_eq!(found.digest, Digest::sha256_of(b"bundle"));
    let other =
        json!({"mediaType": "application/vnd.cncf.notary.signature", "size": 2, "digest": Digest::sha256_of(b"x")});
    assert_eq!(bundle_layer(&sig_manifest(json!([other]))).unwrap(), None);
}

fn material(files: &[(&str, &[u8])]) -> Material {
    Material { files: files.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect(), ..Material::default() }
}

fn policy_subject() -> crate::policy::Subject {
    crate::policy::Subject { repository: "team/app".parse().unwrap(), tag: None, digest: subject(), host: None }
}

fn simple(payload: &[u8], sig: &str) -> SigstoreCandidate {
    SigstoreCandidate::SimpleSigning {
        payload: payload.to_vec(),
        signature: sig.into(),
        certificate: None,
        chain: None,
        rekor_bundle: None,
    }
}

#[test]
fn satisfies_keyed() {
    let r = SigstoreRequirement { key: Some("/k.pub".into()), ..Default::default() };
    let m = material(&[("/k.pub", P256_PUB)]);
    let s = policy_subject();
    let ok = satisfies(&r, &s, &[simple(ED_PAYLOAD, ED_SIG), simple(P256_PAYLOAD, P256_SIG)], &m, 0).unwrap();
    assert!(ok.contains("/k.pub"), "{ok}");
    let why = satisfies(&r, &s, &[simple(ED_PAYLOAD, ED_SIG)], &m, 0).unwrap_err();
    assert!(why.starts_with("signature 1: the signature over the signed content does not verify"), "{why}");
    assert_eq!(satisfies(&r, &s, &[], &m, 0).unwrap_err(), "no sigstore signature");
    let why = satisfies(&r, &s, &[simple(P256_PAYLOAD, P256_SIG)], &Material::default(), 0).unwrap_err();
    assert!(why.contains("/k.pub"), "{why}");

    // A public-key bundle for a keyed requirement.
    let m = material(&[("/k.pub", KEYED_BUNDLE_PUB)]);
    assert!(satisfies(&r, &s, &[SigstoreCandidate::Bundle(KEYED_BUNDLE.to_vec())], &m, 0).is_ok());
    let other = crate::policy::Subject { digest: Digest::sha256_of(b"other"), ..policy_subject() };
    let why = satisfies(&r, &other, &[SigstoreCandidate::Bundle(KEYED_BUNDLE.to_vec())], &m, 0).unwrap_err();
    assert!(why.contains("not sha256:"), "{why}");
}

fn keyless(subject: Option<&str>, pattern: Option<&str>) -> SigstoreRequirement {
    SigstoreRequirement {
        issuer: Some(ISSUER.into()),
        subject: subject.map(Into::into),
        subject_pattern: pattern.map(Into::into),
        trusted_root: Some("/root.json".into()),
        ..Default::default()
    }
}

#[test]
fn satisfies_keyless() {
    let (b, root) = fixture("dsse");
    let now: i64 = b["verificationMaterial"]["tlogEntries"][0]["integratedTime"].as_str().unwrap().parse().unwrap();
    let m = material(&[("/root.json", &root)]);
    let c = [SigstoreCandidate::Bundle(serde_json::to_vec(&b).unwrap())];
    let s = policy_subject();
    let ok = satisfies(&keyless(Some(WHO), None), &s, &c, &m, now).unwrap();
    assert!(ok.contains(WHO) && ok.contains(ISSUER), "{ok}");
    assert!(satisfies(&keyless(None, Some("https://github.com/wharf-test/**")), &s, &c, &m, now).is_ok());
    let why = satisfies(&keyless(Some("someone@example.com"), None), &s, &c, &m, now).unwrap_err();
    assert!(why.contains("does not match someone@example.com"), "{why}");
    let why = satisfies(&keyless(None, None), &s, &c, &m, now).unwrap_err();
    assert!(why.contains("subject"), "{why}");
    // A keyless requirement does not take a public-key bundle.
    let why = satisfies(&keyless(Some(WHO), None), &s, &[SigstoreCandidate::Bundle(KEYED_BUNDLE.to_vec())], &m, now);
    assert!(why.unwrap_err().contains("public-key bundle"));
}

/// cosign's keyless `.sig` layer: the payload, its signature, the certificate PEM and Rekor's signed entry timestamp
/// in the bundle annotation; here taken from a message-signature bundle sigstore-js made over the payload.
fn legacy_candidate(alter: impl FnOnce(&mut Value)) -> (SigstoreCandidate, Vec<u8>, i64) {
    let (b, root) = fixture("legacy");
    let e = &b["verificationMaterial"]["tlogEntries"][0];
    let b64 = base64::engine::general_purpose::STANDARD;
    let leaf = &b["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"];
    let cert = b64.decode(leaf.as_str().unwrap()).unwrap();
    let pem = x509_cert::der::pem::encode_string("CERTIFICATE", x509_cert::der::pem::LineEnding::LF, &cert).unwrap();
    let time: i64 = e["integratedTime"].as_str().unwrap().parse().unwrap();
    let mut rekor = json!({
        "SignedEntryTimestamp": e["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": e["canonicalizedBody"],
            "integratedTime": time,
            "logIndex": e["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": hex::encode(b64.decode(e["logId"]["keyId"].as_str().unwrap()).unwrap()),
        },
    });
    alter(&mut rekor);
    let c = SigstoreCandidate::SimpleSigning {
        payload: P256_PAYLOAD.to_vec(),
        signature: b["messageSignature"]["signature"].as_str().unwrap().into(),
        certificate: Some(pem),
        chain: None,
        rekor_bundle: Some(rekor.to_string()),
    };
    (c, root, time)
}

#[test]
fn keyless_sig_layers() {
    let s = policy_subject();
    let (c, root, now) = legacy_candidate(|_| {});
    let m = material(&[("/root.json", &root)]);
    let ok = satisfies(&keyless(Some(WHO), None), &s, std::slice::from_ref(&c), &m, now).unwrap();
    assert!(ok.starts_with("cosign signature by"), "{ok}");
    let why = satisfies(&keyless(Some("x@example.com"), None), &s, &[c], &m, now).unwrap_err();
    assert!(why.contains("does not match"), "{why}");
    let (c, _, _) = legacy_candidate(|r| r["Payload"]["integratedTime"] = json!(now - 5));
    let why = satisfies(&keyless(Some(WHO), None), &s, &[c], &m, now).unwrap_err();
    assert!(why.contains("signed entry timestamp"), "{why}");
    let (c, _, _) = legacy_candidate(|r| *r = json!({}));
    assert!(satisfies(&keyless(Some(WHO), None), &s, &[c], &m, now).is_err());
}
