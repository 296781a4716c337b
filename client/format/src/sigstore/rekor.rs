//! Rekor entries, offline: the signed entry timestamp (the log's promise to include the entry), the inclusion proof
//! (RFC 6962 hashing up to a root the log signed in a checkpoint), and whether the entry's body records the
//! signature being verified.

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::bundle::{InclusionProof, TlogEntry};
use super::error::{Signed, SigstoreError};
use super::keys::PublicKey;
use super::trusted_root::TrustedRoot;

/// Proves `entry` against the trusted root's log keys: a present inclusion proof must verify with its checkpoint,
/// a present signed entry timestamp must verify, and the timestamp must be there (it alone authenticates the
/// integrated time). Returns the integrated time.
pub fn verify_entry(entry: &TlogEntry, root: &TrustedRoot, now: i64) -> Result<i64, SigstoreError> {
    let log = root.log(&entry.log_id).ok_or_else(|| SigstoreError::UnknownLog(hex::encode(&entry.log_id)))?;
    if !log.valid.contains(entry.integrated_time) {
        return Err(SigstoreError::UnknownLog(format!("{} at {}", hex::encode(&entry.log_id), entry.integrated_time)));
    }
    // A minute of slack for clocks that disagree.
    if entry.integrated_time > now + 60 {
        return Err(SigstoreError::FutureEntry { time: entry.integrated_time, now });
    }
    if entry.set.is_none() && entry.proof.is_none() {
        return Err(SigstoreError::Unproven);
    }
    // The time the certificate's validity is judged at must be the log's word: only the signed entry timestamp
    // signs `integratedTime`, so without one a signer holding an expired certificate's key could pick the time.
    if entry.set.is_none() {
        return Err(SigstoreError::UntimedEntry);
    }
    if let Some(set) = &entry.set {
        // What Rekor signs: the canonical JSON (sorted keys, no spaces) of these four fields.
        let signed = json!({
            "body": base64::engine::general_purpose::STANDARD.encode(&entry.body),
            "integratedTime": entry.integrated_time,
            "logID": hex::encode(&entry.log_id),
            "logIndex": entry.log_index,
        });
        let bytes = serde_json::to_vec(&signed).map_err(|e| SigstoreError::Bundle(e.to_string()))?;
        log.key.verify(&bytes, set, Signed::EntryTimestamp)?;
    }
    if let Some(proof) = &entry.proof {
        verify_inclusion(proof, &entry.body)?;
        verify_checkpoint(proof, &log.key)?;
    }
    Ok(entry.integrated_time)
}

fn hash_children(left: &[u8], right: &[u8]) -> Vec<u8> {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().to_vec()
}

/// RFC 6962 (section 2.1.1) inclusion: the leaf hash of `body`, hashed up the path the proof gives, is its root.
pub(crate) fn verify_inclusion(p: &InclusionProof, body: &[u8]) -> Result<(), SigstoreError> {
    let bad = |why: &str| SigstoreError::InclusionProof(why.into());
    let (index, size) = (u64::try_from(p.log_index).map_err(|_| bad("negative index"))?, p.tree_size);
    let size = u64::try_from(size).map_err(|_| bad("negative tree size"))?;
    if index >= size {
        return Err(bad("index outside the tree"));
    }
    // The path's inner part (below where the leaf's and the last leaf's paths part) and its right border.
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    if p.hashes.len() != inner + border {
        return Err(bad(&format!("{} hashes, {} expected", p.hashes.len(), inner + border)));
    }
    let mut hash = Sha256::new().chain_update([0u8]).chain_update(body).finalize().to_vec();
    for (i, h) in p.hashes.iter().enumerate() {
        if h.len() != 32 {
            return Err(bad("a hash that is not 32 bytes"));
        }
        hash = if i < inner && (index >> i) & 1 == 0 { hash_children(&hash, h) } else { hash_children(h, &hash) };
    }
    if hash != p.root_hash {
        return Err(bad("the computed root is not the proof's"));
    }
    Ok(())
}

/// The checkpoint is a signed note (`origin`, tree size, base64 root hash, other lines, a blank line, then
/// `— name base64(key hint + signature)` lines) whose size and root are the proof's, signed by the log's key.
fn verify_checkpoint(p: &InclusionProof, key: &PublicKey) -> Result<(), SigstoreError> {
    let bad = |why: &str| SigstoreError::Checkpoint(why.into());
    let split = p.checkpoint.find("\n\n").ok_or_else(|| bad("no blank line before the signatures"))?;
    let (note, sigs) = (&p.checkpoint[..split + 1], &p.checkpoint[split + 2..]);
    let mut lines = note.lines();
    let (_origin, size, root) = (lines.next(), lines.next(), lines.next());
    if size.and_then(|s| s.parse::<i64>().ok()) != Some(p.tree_size) {
        return Err(bad("its tree size is not the proof's"));
    }
    let root = root.and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok());
    if root.as_deref() != Some(p.root_hash.as_slice()) {
        return Err(bad("its root hash is not the proof's"));
    }
    for line in sigs.lines().filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix("\u{2014} ").ok_or_else(|| bad("a signature line without its dash"))?;
        let b64 = rest.rsplit(' ').next().unwrap_or_default();
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else { continue };
        if raw.len() > 4 && key.verify(note.as_bytes(), &raw[4..], Signed::Checkpoint).is_ok() {
            return Ok(());
        }
    }
    Err(SigstoreError::BadSignature(Signed::Checkpoint))
}

/// What the signed content and signer the log entry must record.
pub struct Recorded<'a> {
    /// The signature, as the bundle carries it.
    pub signature: &'a [u8],
    /// The signer: the leaf certificate's DER, or the public key's SubjectPublicKeyInfo DER.
    pub signer_der: &'a [u8],
    /// A message signature's digest (hashedrekord), or the DSSE envelope's payload and type.
    pub digest: Option<&'a [u8]>,
    pub dsse: Option<(&'a [u8], &'a str)>,
}

fn b64_field(v: &Value, path: &[&str]) -> Option<Vec<u8>> {
    let s = path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// A signer as an entry writes it: base64 of a PEM certificate or public key, compared by its DER.
fn same_signer(b64: Option<Vec<u8>>, der: &[u8]) -> bool {
    let pem = b64.and_then(|b| String::from_utf8(b).ok());
    pem.and_then(|p| super::keys::pem_decode(p.as_bytes())).is_some_and(|(_, d)| d == der)
}

/// Checks that the entry's body (`hashedrekord` 0.0.1, or `dsse` 0.0.1 as Rekor stores it or as proposed) records
/// this signature by this signer over this content.
pub fn check_body(entry: &TlogEntry, r: &Recorded<'_>) -> Result<(), SigstoreError> {
    let mismatch = |what: &str| SigstoreError::EntryMismatch(what.into());
    let body: Value = serde_json::from_slice(&entry.body).map_err(|e| mismatch(&e.to_string()))?;
    let (kind, version) = (body["kind"].as_str().unwrap_or(""), body["apiVersion"].as_str().unwrap_or(""));
    if kind != entry.kind || version != entry.version {
        return Err(mismatch("the body's kind is not the entry's"));
    }
    let spec = &body["spec"];
    match (kind, version, r.digest, r.dsse) {
        ("hashedrekord", "0.0.1", Some(digest), None) => {
            if spec["data"]["hash"]["algorithm"] != "sha256"
                || spec["data"]["hash"]["value"].as_str() != Some(&hex::encode(digest))
            {
                return Err(mismatch("another digest"));
            }
            if b64_field(spec, &["signature", "content"]).as_deref() != Some(r.signature) {
                return Err(mismatch("another signature"));
            }
            if !same_signer(b64_field(spec, &["signature", "publicKey", "content"]), r.signer_der) {
                return Err(mismatch("another signer"));
            }
            Ok(())
        }
        ("dsse", "0.0.1", None, Some((payload, payload_type))) => {
            if let Some(proposed) = spec.get("proposedContent") {
                // The entry as the client proposed it (what a log that stores requests as given records).
                let env: super::bundle::RawEnvelope = serde_json::from_str(proposed["envelope"].as_str().unwrap_or(""))
                    .map_err(|e| mismatch(&format!("envelope: {e}")))?;
                let b64 = base64::engine::general_purpose::STANDARD;
                if b64.decode(&env.payload).ok().as_deref() != Some(payload) || env.payload_type != payload_type {
                    return Err(mismatch("another payload"));
                }
                if !env.signatures.iter().any(|s| b64.decode(&s.sig).ok().as_deref() == Some(r.signature)) {
                    return Err(mismatch("another signature"));
                }
                let verifiers = proposed["verifiers"].as_array().cloned().unwrap_or_default();
                if !verifiers.iter().any(|v| same_signer(v.as_str().and_then(|s| b64.decode(s).ok()), r.signer_der)) {
                    return Err(mismatch("another signer"));
                }
                return Ok(());
            }
            // Rekor's stored form: the payload's hash and the signatures with their verifiers.
            if spec["payloadHash"]["value"].as_str() != Some(&hex::encode(Sha256::digest(payload))) {
                return Err(mismatch("another payload"));
            }
            let sigs = spec["signatures"].as_array().cloned().unwrap_or_default();
            let found = sigs.iter().any(|s| {
                b64_field(s, &["signature"]).as_deref() == Some(r.signature)
                    && same_signer(b64_field(s, &["verifier"]), r.signer_der)
            });
            if !found {
                return Err(mismatch("another signature or signer"));
            }
            Ok(())
        }
        _ => Err(SigstoreError::EntryKind(format!("{kind} {version}"))),
    }
}
