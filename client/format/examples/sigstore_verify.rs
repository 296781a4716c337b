//! The time to verify one sigstore bundle, as a policy decision makes it: parse the `trusted_root.json` and the
//! bundle, check the certificate chain, the identity, the content's signature and digest, the Rekor entry (signed
//! entry timestamp, inclusion proof, checkpoint) and the signing time. Run by `deploy/bench/sigstore-verify`.
//!
//! Usage: sigstore_verify [BUNDLE TRUSTED_ROOT DIGEST SUBJECT ISSUER]  (default: the unit tests' DSSE fixture)

use std::time::Instant;

use wharf_format::policy::{Material, SigstoreCandidate, SigstoreRequirement, Subject};
use wharf_format::sigstore::satisfies;

const BUNDLE: &[u8] = include_bytes!("../src/sigstore/testdata/dsse/bundle.json");
const ROOT: &[u8] = include_bytes!("../src/sigstore/testdata/dsse/trusted_root.json");
const SUBJECT: &[u8] = include_bytes!("../src/sigstore/testdata/subject.json");
const WHO: &str = "https://github.com/wharf-test/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bundle, root, digest, who, issuer) = match args.as_slice() {
        [b, r, d, w, i] => (std::fs::read(b)?, std::fs::read(r)?, d.parse()?, w.clone(), i.clone()),
        [] => (BUNDLE.to_vec(), ROOT.to_vec(), wharf_format::Digest::sha256_of(SUBJECT), WHO.into(), ISSUER.into()),
        _ => return Err("usage: sigstore_verify [BUNDLE TRUSTED_ROOT DIGEST SUBJECT ISSUER]".into()),
    };
    let v: serde_json::Value = serde_json::from_slice(&bundle)?;
    let time = &v["verificationMaterial"]["tlogEntries"][0]["integratedTime"];
    let now: i64 = time.as_str().map(str::parse).transpose()?.or(time.as_i64()).ok_or("no integratedTime")? + 10;
    let req = SigstoreRequirement {
        issuer: Some(issuer),
        subject: Some(who),
        trusted_root: Some("trusted_root.json".into()),
        ..Default::default()
    };
    let material = Material { files: [("trusted_root.json".to_string(), root)].into(), ..Material::default() };
    let subject = Subject { repository: "team/app".parse()?, tag: None, digest, host: None };
    let candidates = [SigstoreCandidate::Bundle(bundle)];
    satisfies(&req, &subject, &candidates, &material, now).map_err(|e| format!("the bundle does not verify: {e}"))?;

    // Warm up, then time batches and report the best batch's mean (the least disturbed by other load).
    let (batches, per_batch) = (20, 50);
    let mut best = f64::MAX;
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            std::hint::black_box(satisfies(&req, &subject, &candidates, &material, now)).map_err(|e| e.to_string())?;
        }
        best = best.min(start.elapsed().as_secs_f64() / per_batch as f64);
    }
    println!("sigstore_bundle_verify_ms {:.3}", best * 1e3);
    Ok(())
}
