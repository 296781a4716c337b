//! Keyless bundles made by sigstore-js against its mocks (`testdata/README.md`): accepted as signed, and one row per
//! refusal rule, each naming the error it expects.

use base64::Engine as _;
use serde_json::Value;

use super::*;
use crate::Digest;

pub(super) const SUBJECT: &[u8] = include_bytes!("testdata/subject.json");
pub(super) const ISSUER: &str = "https://token.actions.githubusercontent.com";
pub(super) const WHO: &str = "https://github.com/wharf-test/app/.github/workflows/release.yml@refs/heads/main";

/// A fixture's bundle (as JSON, to alter) and trusted root.
pub(super) fn fixture(name: &str) -> (Value, Vec<u8>) {
    macro_rules! dir {
        ($d:literal) => {
            (
                &include_bytes!(concat!("testdata/", $d, "/bundle.json"))[..],
                &include_bytes!(concat!("testdata/", $d, "/trusted_root.json"))[..],
            )
        };
    }
    let (bundle, root) = match name {
        "dsse" => dir!("dsse"),
        "message" => dir!("message"),
        "early" => dir!("early"),
        "legacy" => dir!("legacy"),
        other => panic!("no fixture {other}"),
    };
    (serde_json::from_slice(bundle).unwrap(), root.to_vec())
}

/// One part of a fixture's trusted root.
fn root_part(name: &str, part: &str) -> Value {
    serde_json::from_slice::<Value>(&fixture(name).1).unwrap()[part].clone()
}

pub(super) fn want(subject: &str) -> WantedIdentity {
    WantedIdentity { issuer: ISSUER.into(), subject: SubjectMatch::Exact(subject.into()) }
}

fn signed_at(bundle: &Value) -> i64 {
    bundle["verificationMaterial"]["tlogEntries"][0]["integratedTime"].as_str().unwrap().parse().unwrap()
}

fn check(
    bundle: &Value,
    root: &[u8],
    want: &WantedIdentity,
    digest: &Digest,
    now: i64,
) -> Result<KeylessProof, SigstoreError> {
    let b = Bundle::parse(&serde_json::to_vec(bundle).unwrap())?;
    verify_keyless(&b, want, &TrustedRoot::parse(root)?, digest, now)
}

#[test]
fn dsse_and_message_bundles_verify() {
    for name in ["dsse", "message"] {
        let (b, root) = fixture(name);
        let proof = check(&b, &root, &want(WHO), &Digest::sha256_of(SUBJECT), signed_at(&b) + 10).unwrap();
        assert_eq!(proof.identity, Identity { issuer: ISSUER.into(), subject: WHO.into() }, "{name}");
        assert_eq!(proof.signed_at, signed_at(&b), "{name}");
    }
}

#[test]
fn subject_patterns() {
    let (b, root) = fixture("dsse");
    let now = signed_at(&b) + 10;
    let pat = |p: &str| WantedIdentity { issuer: ISSUER.into(), subject: SubjectMatch::Pattern(p.parse().unwrap()) };
    let d = Digest::sha256_of(SUBJECT);
    assert!(check(&b, &root, &pat("https://github.com/wharf-test/**"), &d, now).is_ok());
    let e = check(&b, &root, &pat("https://github.com/other/**"), &d, now).unwrap_err();
    assert!(matches!(e, SigstoreError::OtherSubject { .. }), "{e}");
}

/// Alters a bundle and its trusted root.
type Mutation = fn(&mut Value, &mut Value);
/// Whether an error is the one a row expects.
type Expected = fn(&SigstoreError) -> bool;

fn entry(b: &mut Value) -> &mut Value {
    &mut b["verificationMaterial"]["tlogEntries"][0]
}

fn flip_b64(v: &mut Value) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64.decode(v.as_str().unwrap()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    *v = Value::String(b64.encode(bytes));
}

#[test]
fn refusals() {
    let other_digest = Digest::sha256_of(b"another manifest");
    let rows: &[(&str, &str, Mutation, Expected)] = &[
        (
            "no log entry",
            "dsse",
            |b, _| b["verificationMaterial"]["tlogEntries"] = Value::Array(vec![]),
            |e| matches!(e, SigstoreError::NoLogEntry),
        ),
        (
            "log proof cut",
            "dsse",
            |b, _| {
                let e = entry(b).as_object_mut().unwrap();
                e.remove("inclusionProof");
                e.remove("inclusionPromise");
            },
            |e| matches!(e, SigstoreError::Unproven),
        ),
        (
            "signed entry timestamp removed (the integrated time is then the signer's word)",
            "dsse",
            |b, _| {
                entry(b).as_object_mut().unwrap().remove("inclusionPromise");
            },
            |e| matches!(e, SigstoreError::UntimedEntry),
        ),
        (
            "proof's root altered",
            "dsse",
            |b, _| flip_b64(&mut entry(b)["inclusionProof"]["rootHash"]),
            |e| matches!(e, SigstoreError::InclusionProof(_)),
        ),
        (
            "checkpoint signature altered",
            "message",
            |b, _| {
                let cp = &mut entry(b)["inclusionProof"]["checkpoint"]["envelope"];
                let text = cp.as_str().unwrap().to_string();
                let (note, sig) = text.rsplit_once(' ').unwrap();
                let mut v = Value::String(sig.trim_end().into());
                flip_b64(&mut v);
                *cp = Value::String(format!("{note} {}\n", v.as_str().unwrap()));
            },
            |e| matches!(e, SigstoreError::BadSignature(Signed::Checkpoint)),
        ),
        (
            "entry timestamp altered",
            "dsse",
            |b, _| flip_b64(&mut entry(b)["inclusionPromise"]["signedEntryTimestamp"]),
            |e| matches!(e, SigstoreError::BadSignature(Signed::EntryTimestamp)),
        ),
        (
            "integrated time moved",
            "message",
            |b, _| {
                let t: i64 = entry(b)["integratedTime"].as_str().unwrap().parse().unwrap();
                entry(b)["integratedTime"] = (t - 60).to_string().into();
            },
            |e| matches!(e, SigstoreError::BadSignature(Signed::EntryTimestamp)),
        ),
        (
            "signature altered",
            "message",
            |b, _| flip_b64(&mut b["messageSignature"]["signature"]),
            |e| matches!(e, SigstoreError::BadSignature(Signed::Content)),
        ),
        (
            "DSSE payload altered",
            "dsse",
            |b, _| flip_b64(&mut b["dsseEnvelope"]["payload"]),
            |e| matches!(e, SigstoreError::BadSignature(Signed::Content)),
        ),
        (
            "certificate from another CA",
            "dsse",
            |_, root| root["certificateAuthorities"] = root_part("message", "certificateAuthorities"),
            |e| matches!(e, SigstoreError::UntrustedCertificate),
        ),
        (
            "log the root does not name",
            "dsse",
            |_, root| root["tlogs"] = root_part("message", "tlogs"),
            |e| matches!(e, SigstoreError::UnknownLog(_)),
        ),
        (
            "unknown media type",
            "dsse",
            |b, _| b["mediaType"] = "application/vnd.dev.sigstore.bundle.v9+json".into(),
            |e| matches!(e, SigstoreError::BundleMediaType(_)),
        ),
    ];
    for &(name, fx, mutate, expected) in rows {
        let (mut b, root) = fixture(fx);
        let mut root: Value = serde_json::from_slice(&root).unwrap();
        let now = signed_at(&b) + 10;
        mutate(&mut b, &mut root);
        let root = serde_json::to_vec(&root).unwrap();
        let e = check(&b, &root, &want(WHO), &Digest::sha256_of(SUBJECT), now).unwrap_err();
        assert!(expected(&e), "{name}: got {e:?}");
    }

    // Rows that change what is asked, not the bundle.
    let (b, root) = fixture("dsse");
    let now = signed_at(&b) + 10;
    let d = Digest::sha256_of(SUBJECT);
    let e = check(&b, &root, &want("https://github.com/other/app"), &d, now).unwrap_err();
    assert!(matches!(e, SigstoreError::OtherSubject { .. }), "other subject: {e:?}");
    let other_issuer = WantedIdentity { issuer: "https://accounts.google.com".into(), ..want(WHO) };
    let e = check(&b, &root, &other_issuer, &d, now).unwrap_err();
    assert!(matches!(e, SigstoreError::OtherIssuer { .. }), "other issuer: {e:?}");
    for fx in ["dsse", "message"] {
        let (b, root) = fixture(fx);
        let e = check(&b, &root, &want(WHO), &other_digest, signed_at(&b) + 10).unwrap_err();
        assert!(matches!(e, SigstoreError::OtherDigest { .. }), "{fx} for another digest: {e:?}");
    }
    let e = check(&b, &root, &want(WHO), &d, now - 3600).unwrap_err();
    assert!(matches!(e, SigstoreError::FutureEntry { .. }), "judged before the log's time: {e:?}");

    // The certificate starts an hour after the log integrated the signature.
    let (b, root) = fixture("early");
    let e = check(&b, &root, &want(WHO), &d, signed_at(&b) + 7200).unwrap_err();
    assert!(matches!(e, SigstoreError::OutsideValidity { .. }), "certificate not yet valid: {e:?}");
}

/// RFC 6962's recursive definitions (MTH and PATH, section 2.1), independent of the iterative check.
fn mth(leaves: &[Vec<u8>]) -> Vec<u8> {
    use sha2::Digest as _;
    match leaves.len() {
        1 => sha2::Sha256::new().chain_update([0u8]).chain_update(&leaves[0]).finalize().to_vec(),
        n => {
            let k = n.next_power_of_two() / 2;
            let (l, r) = (mth(&leaves[..k]), mth(&leaves[k..]));
            sha2::Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().to_vec()
        }
    }
}

fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let n = leaves.len();
    if n == 1 {
        return vec![];
    }
    let k = n.next_power_of_two() / 2;
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

#[test]
fn inclusion_proofs_of_every_leaf_of_small_trees() {
    for size in 1..=13usize {
        let leaves: Vec<Vec<u8>> = (0..size).map(|i| format!("entry {i}").into_bytes()).collect();
        let root = mth(&leaves);
        for index in 0..size {
            let mut p = InclusionProof {
                log_index: index as i64,
                root_hash: root.clone(),
                tree_size: size as i64,
                hashes: path(index, &leaves),
                checkpoint: String::new(),
            };
            assert!(rekor::verify_inclusion(&p, &leaves[index]).is_ok(), "leaf {index} of {size}");
            assert!(rekor::verify_inclusion(&p, b"another entry").is_err(), "other body, {index} of {size}");
            if let Some(h) = p.hashes.first_mut() {
                h[0] ^= 1;
                assert!(rekor::verify_inclusion(&p, &leaves[index]).is_err(), "altered path, {index} of {size}");
            }
        }
    }
}
